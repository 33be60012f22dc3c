//! A replicator killed (kill -9) while a peer may still be merging the
//! whole DB it shipped must not, once restarted, ship the same DB to that
//! peer again before the first ship's deadline: the peer could rename the
//! second, unmerged copy into place (same `tmp/<local id>` name) and lose
//! the rows written only on it. The deadline is kept in a small record on
//! the sender's device (`<dev>/rowsync-ships/`).

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use rowsync::db::Container;
use rowsync::replication::client::{CallFuture, HttpTransport, ReplClient, Transport};
use rowsync::replication::daemon::{PassFilter, Replicator};
use rowsync::replication::wire::OpName;
use rowsync::ring::Device;

const A: &str = "AUTH_reship";
const C: &str = "cont";

/// The node timeout of these tests: the deadline of a whole-DB op (small,
/// so that the test can wait for it to pass).
const NODE_TIMEOUT: f64 = 3.0;

/// One test at a time: a fail point configured by one (with the
/// `failpoints` feature) would act on the others' passes.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// HTTP that counts uploads and ops, and can hang one whole-DB op forever
/// (the sender is then killed while it waits for the answer).
#[derive(Debug, Default)]
struct Crashy {
    http: HttpTransport,
    uploads: AtomicUsize,
    ops: Mutex<Vec<OpName>>,
    /// The next call of this op never reaches the peer nor returns.
    hang: Mutex<Option<OpName>>,
    /// Signalled when the hung call was made.
    entered: tokio::sync::Notify,
}

impl Crashy {
    fn ops_of(&self, op: OpName) -> usize {
        self.ops
            .lock()
            .unwrap()
            .iter()
            .filter(|o| **o == op)
            .count()
    }

    fn uploads(&self) -> usize {
        self.uploads.load(Ordering::SeqCst)
    }
}

impl Transport for Crashy {
    fn replicate<'a>(
        &'a self,
        dev: &'a Device,
        partition: u32,
        hash: &'a str,
        op: OpName,
        body: Vec<u8>,
        timeout: Duration,
    ) -> CallFuture<'a> {
        Box::pin(async move {
            self.ops.lock().unwrap().push(op);
            let hang = {
                let mut h = self.hang.lock().unwrap();
                if *h == Some(op) {
                    *h = None;
                    true
                } else {
                    false
                }
            };
            if hang {
                self.entered.notify_one();
                std::future::pending::<()>().await;
            }
            self.http
                .replicate(dev, partition, hash, op, body, timeout)
                .await
        })
    }

    fn upload_db<'a>(
        &'a self,
        dev: &'a Device,
        name: &'a str,
        file: &'a Path,
        timeout: Duration,
    ) -> CallFuture<'a> {
        Box::pin(async move {
            self.uploads.fetch_add(1, Ordering::SeqCst);
            self.http.upload_db(dev, name, file, timeout).await
        })
    }
}

/// A fresh replicator of node `i` (a restarted process) over `t`.
fn replicator(cl: &Cluster, i: usize, t: &Arc<Crashy>, extra: &str) -> Replicator<Container> {
    let mut r = cl.replicator(i, extra);
    let mut conf = (*r.conf).clone();
    conf.node_timeout = NODE_TIMEOUT;
    r.conf = Arc::new(conf);
    r.client = ReplClient::with_transport(t.clone());
    r
}

/// Runs a pass of a replicator of node `i` until the whole-DB op `op` is
/// sent, then drops the pass (what a kill -9 looks like to the disks).
async fn pass_killed_during(cl: &Cluster, i: usize, t: &Arc<Crashy>, extra: &str, op: OpName) {
    kill_during(replicator(cl, i, t, extra), t, op).await
}

/// Runs a pass of `r` until the whole-DB op `op` is sent, then drops it.
async fn kill_during(r: Replicator<Container>, t: &Arc<Crashy>, op: OpName) {
    *t.hang.lock().unwrap() = Some(op);
    let all = PassFilter::default();
    tokio::select! {
        s = r.run_once(&all) => panic!("the pass ended: {s:?}"),
        _ = t.entered.notified() => {}
    }
}

/// The ship records on node `i`'s device.
fn ship_records(cl: &Cluster, i: usize) -> Vec<PathBuf> {
    let dir = cl.nodes[i]
        .devices
        .join(format!("sd{i}"))
        .join("rowsync-ships");
    match std::fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

fn add_rows(db: &rowsync::db::ContainerBroker, prefix: &str, range: std::ops::Range<u64>) {
    db.merge_items(
        range
            .map(|i| obj(&format!("{prefix}{i:04}"), &ts(i), "t"))
            .collect(),
        None,
    )
    .unwrap();
}

/// Waits until `NODE_TIMEOUT` (and a margin) has passed since `since`.
async fn wait_past_deadline(since: Instant) {
    let until = since + Duration::from_secs_f64(NODE_TIMEOUT + 0.5);
    tokio::time::sleep_until(tokio::time::Instant::from_std(until)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_replicator_does_not_reship_to_a_peer_that_may_still_merge() {
    let _serial = SERIAL.lock().await;
    let cl = Cluster::start(2, 2, 4).await;
    let p = cl.primaries(cl.part(A, C));
    let (src, dst) = (p[0], p[1]);
    let db = cl.create_db(src, A, C);
    add_rows(&db, "o", 0..400);
    // Rows written only on the peer: a second, unmerged copy renamed into
    // place over them would lose them.
    let peer = cl.create_db(dst, A, C);
    add_rows(&peer, "peer-only-", 1000..1003);
    drop(peer);
    // Small batches: the peer is far behind (whole DB), and the diffs of a
    // pass are capped.
    let extra = "per_diff = 10\nmax_diffs = 1";
    let t = Arc::new(Crashy::default());
    pass_killed_during(&cl, src, &t, extra, OpName::RsyncThenMerge).await;
    let killed = Instant::now();
    assert_eq!(t.uploads(), 1);
    assert_eq!(t.ops_of(OpName::RsyncThenMerge), 1);

    // Restarted at once: no second whole DB while the peer may still be
    // merging the first; diffs instead.
    let s = replicator(&cl, src, &t, extra)
        .run_once(&PassFilter::default())
        .await;
    assert_eq!(t.uploads(), 1, "re-shipped the whole DB: {s:?}");
    assert_eq!(t.ops_of(OpName::RsyncThenMerge), 1, "{s:?}");
    assert_eq!(s.remote_merge, 0, "{s:?}");
    assert_eq!((s.diff, s.diff_capped), (1, 1), "{s:?}");
    assert!(t.ops_of(OpName::MergeItems) >= 1, "{s:?}");
    let rows = all_rows(&cl.open_db(dst, A, C).unwrap());
    assert_eq!(rows.len(), 13, "the peer's 3 rows and one batch of 10");
    assert_eq!(ship_records(&cl, src).len(), 1, "the record stays");

    // Once the deadline passed, the whole DB is shipped again.
    wait_past_deadline(killed).await;
    let s = replicator(&cl, src, &t, extra)
        .run_once(&PassFilter::default())
        .await;
    assert_eq!(t.uploads(), 2, "{s:?}");
    assert_eq!(t.ops_of(OpName::RsyncThenMerge), 2, "{s:?}");
    assert_eq!((s.remote_merge, s.failure), (1, 0), "{s:?}");
    assert!(
        ship_records(&cl, src).is_empty(),
        "answered: record removed"
    );
    assert_eq!(all_rows(&cl.open_db(dst, A, C).unwrap()).len(), 403);

    // Both ways: every row on both replicas.
    for _ in 0..2 {
        cl.replicator(dst, "")
            .run_once(&PassFilter::default())
            .await;
        cl.replicator(src, "")
            .run_once(&PassFilter::default())
            .await;
    }
    let a = cl.open_db(src, A, C).unwrap();
    let b = cl.open_db(dst, A, C).unwrap();
    assert_eq!(all_rows(&a).len(), 403);
    assert_eq!(all_rows(&a), all_rows(&b));
    assert_eq!(a.get_info().unwrap().hash, b.get_info().unwrap().hash);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_replicator_skips_a_peer_that_may_still_complete_the_rsync() {
    let _serial = SERIAL.lock().await;
    let cl = Cluster::start(2, 2, 4).await;
    let p = cl.primaries(cl.part(A, C));
    let (src, dst) = (p[0], p[1]);
    let db = cl.create_db(src, A, C);
    add_rows(&db, "o", 0..50);
    let t = Arc::new(Crashy::default());
    pass_killed_during(&cl, src, &t, "", OpName::CompleteRsync).await;
    let killed = Instant::now();
    assert_eq!(t.uploads(), 1);
    assert!(cl.open_db(dst, A, C).is_none());

    // Restarted at once: the peer (no DB yet) is skipped this pass.
    let s = replicator(&cl, src, &t, "")
        .run_once(&PassFilter::default())
        .await;
    assert_eq!(t.uploads(), 1, "re-shipped the whole DB: {s:?}");
    assert_eq!(t.ops_of(OpName::CompleteRsync), 1, "{s:?}");
    assert_eq!((s.rsync, s.success, s.failure), (0, 0, 1), "{s:?}");
    assert!(cl.open_db(dst, A, C).is_none());
    assert_eq!(ship_records(&cl, src).len(), 1, "the record stays");

    wait_past_deadline(killed).await;
    let s = replicator(&cl, src, &t, "")
        .run_once(&PassFilter::default())
        .await;
    assert_eq!(t.uploads(), 2, "{s:?}");
    assert_eq!((s.rsync, s.failure), (1, 0), "{s:?}");
    assert!(
        ship_records(&cl, src).is_empty(),
        "answered: record removed"
    );
    let peer = cl.open_db(dst, A, C).unwrap();
    assert_eq!(all_rows(&peer), all_rows(&db));
}

/// The record of shipping the test DB from `src` to `dst`.
fn record_of(cl: &Cluster, src: usize, dst: usize) -> PathBuf {
    let hash = hash_conf().hash_path(A, Some(C), None).unwrap();
    cl.nodes[src]
        .devices
        .join(format!("sd{src}/rowsync-ships"))
        .join(format!(
            "{hash}.127.0.0.1_{}_sd{dst}",
            cl.nodes[dst].addr.port()
        ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deadline_is_read_by_the_replicators_clock() {
    use rowsync::replication::clock::epoch_secs;
    let _serial = SERIAL.lock().await;
    let cl = Cluster::start(2, 2, 4).await;
    let p = cl.primaries(cl.part(A, C));
    let (src, dst) = (p[0], p[1]);
    add_rows(&cl.create_db(src, A, C), "o", 0..50);
    let t = Arc::new(Crashy::default());
    let with_clock = |offset: f64| {
        let mut r = cl.replicator(src, "").with_clock(OffsetClock::new(offset));
        r.client = ReplClient::with_transport(t.clone());
        r
    };
    // node_timeout = 10: complete_rsync's deadline is 10 s after it is sent.
    let sent = epoch_secs(std::time::SystemTime::now());
    kill_during(with_clock(0.0), &t, OpName::CompleteRsync).await;
    let record = record_of(&cl, src, dst);
    assert_eq!(ship_records(&cl, src), vec![record.clone()]);
    let deadline: f64 = std::fs::read_to_string(&record)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        (deadline - (sent + 10.0)).abs() < 5.0,
        "{deadline} vs {sent}"
    );
    // Five seconds later by the clock: still held.
    let s = with_clock(5.0).run_once(&PassFilter::default()).await;
    assert_eq!((t.uploads(), s.rsync, s.failure), (1, 0, 1), "{s:?}");
    assert!(record.exists());
    // Past the deadline by the clock: shipped, answered, record removed.
    let s = with_clock(15.0).run_once(&PassFilter::default()).await;
    assert_eq!((t.uploads(), s.rsync, s.failure), (2, 1, 0), "{s:?}");
    assert!(!record.exists());
    assert_eq!(all_rows(&cl.open_db(dst, A, C).unwrap()).len(), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_ship_record_counts_as_expired() {
    let _serial = SERIAL.lock().await;
    let cl = Cluster::start(2, 2, 4).await;
    let p = cl.primaries(cl.part(A, C));
    let (src, dst) = (p[0], p[1]);
    add_rows(&cl.create_db(src, A, C), "o", 0..50);
    let record = record_of(&cl, src, dst);
    std::fs::create_dir_all(record.parent().unwrap()).unwrap();
    std::fs::write(&record, b"\x00garbage").unwrap();
    let t = Arc::new(Crashy::default());
    let s = replicator(&cl, src, &t, "")
        .run_once(&PassFilter::default())
        .await;
    assert_eq!((t.uploads(), s.rsync, s.failure), (1, 1, 0), "{s:?}");
    assert!(!record.exists());
    assert_eq!(all_rows(&cl.open_db(dst, A, C).unwrap()).len(), 50);
}

/// With the `failpoints` feature
/// (`cargo test --features failpoints --test reship_guard`).
#[cfg(feature = "failpoints")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_op_is_sent_when_the_ship_record_cannot_be_written() {
    let _serial = SERIAL.lock().await;
    let _scenario = fail::FailScenario::setup();
    let cl = Cluster::start(2, 2, 4).await;
    let p = cl.primaries(cl.part(A, C));
    let (src, dst) = (p[0], p[1]);
    add_rows(&cl.create_db(src, A, C), "o", 0..50);
    let t = Arc::new(Crashy::default());
    fail::cfg("sender::ship_record", "return(enospc)").unwrap();
    let s = replicator(&cl, src, &t, "")
        .run_once(&PassFilter::default())
        .await;
    fail::remove("sender::ship_record");
    assert_eq!(t.uploads(), 1, "{s:?}");
    assert_eq!(t.ops_of(OpName::CompleteRsync), 0, "{s:?}");
    assert_eq!(s.failure, 1, "{s:?}");
    assert!(cl.open_db(dst, A, C).is_none());
    assert!(ship_records(&cl, src).is_empty());
    let s = replicator(&cl, src, &t, "")
        .run_once(&PassFilter::default())
        .await;
    assert_eq!((t.uploads(), s.rsync, s.failure), (2, 1, 0), "{s:?}");
    assert_eq!(all_rows(&cl.open_db(dst, A, C).unwrap()).len(), 50);
}
