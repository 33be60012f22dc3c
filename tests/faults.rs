//! The replicator under injected transport faults: calls to peers fail,
//! are dropped after the peer acted, are duplicated, or a peer is cut off.
//! Every acknowledged row still ends up on every replica, and the sync
//! points never claim rows a peer does not hold.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use rowsync::config::ServerType;
use rowsync::db::Account;
use rowsync::replication::client::{
    node_name, CallFuture, ClientError, HttpTransport, ReplClient, Transport,
};
use rowsync::replication::daemon::PassFilter;
use rowsync::replication::stats::Stats;
use rowsync::replication::wire::OpName;
use rowsync::ring::Device;

const A: &str = "AUTH_faults";
const C: &str = "cont";

/// What the faulty transport does to one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// The call never reaches the peer.
    Fail,
    /// The peer acts on it, but the answer is lost.
    LoseAnswer,
    /// The call is sent twice.
    Duplicate,
}

/// HTTP, with faults injected by op, peer and count.
#[derive(Debug, Default)]
struct Faulty {
    http: HttpTransport,
    /// (op, how many of its calls from now on, fault); `None` op = any.
    rules: Mutex<Vec<(Option<OpName>, usize, Fault)>>,
    /// Peers cut off (by `ip:port/device`).
    cut: Mutex<HashSet<String>>,
    calls: AtomicUsize,
}

impl Faulty {
    fn rule(&self, op: Option<OpName>, times: usize, fault: Fault) {
        self.rules.lock().unwrap().push((op, times, fault));
    }

    fn fault_for(&self, op: OpName) -> Option<Fault> {
        let mut rules = self.rules.lock().unwrap();
        for r in rules.iter_mut() {
            if r.1 > 0 && r.0.is_none_or(|o| o == op) {
                r.1 -= 1;
                return Some(r.2);
            }
        }
        None
    }
}

impl Transport for Faulty {
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
            self.calls.fetch_add(1, Ordering::Relaxed);
            let node = node_name(dev);
            if self.cut.lock().unwrap().contains(&node) {
                return Err(ClientError::Dropped {
                    node,
                    why: "partitioned".into(),
                });
            }
            match self.fault_for(op) {
                Some(Fault::Fail) => Err(ClientError::Dropped {
                    node,
                    why: format!("{} failed", op.as_str()),
                }),
                Some(Fault::LoseAnswer) => {
                    let _ = self
                        .http
                        .replicate(dev, partition, hash, op, body, timeout)
                        .await;
                    Err(ClientError::Dropped {
                        node,
                        why: format!("answer to {} lost", op.as_str()),
                    })
                }
                Some(Fault::Duplicate) => {
                    let _ = self
                        .http
                        .replicate(dev, partition, hash, op, body.clone(), timeout)
                        .await;
                    self.http
                        .replicate(dev, partition, hash, op, body, timeout)
                        .await
                }
                None => {
                    self.http
                        .replicate(dev, partition, hash, op, body, timeout)
                        .await
                }
            }
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
            let node = node_name(dev);
            if self.cut.lock().unwrap().contains(&node) {
                return Err(ClientError::Dropped {
                    node,
                    why: "partitioned".into(),
                });
            }
            self.http.upload_db(dev, name, file, timeout).await
        })
    }
}

async fn pass_with(cluster: &Cluster, i: usize, t: &Arc<Faulty>, extra: &str) -> Stats {
    let mut r = cluster.replicator(i, extra);
    r.client = ReplClient::with_transport(t.clone());
    r.run_once(&PassFilter::default()).await
}

fn peer_node(cluster: &Cluster, i: usize) -> String {
    format!("127.0.0.1:{}/sd{i}", cluster.nodes[i].addr.port())
}

/// Every replica holds every row of `want`, and their hashes agree.
fn assert_converged(cluster: &Cluster, p: &[usize], want: usize) {
    let first = cluster.open_db(p[0], A, C).unwrap();
    let rows = all_rows(&first);
    assert_eq!(rows.len(), want);
    let hash = first.get_info().unwrap().hash;
    for &i in &p[1..] {
        let db = cluster.open_db(i, A, C).expect("replica");
        assert_eq!(all_rows(&db), rows, "node {i}");
        assert_eq!(db.get_info().unwrap().hash, hash);
    }
}

/// Our outgoing point for a peer never claims more than the peer holds.
fn assert_points_honest(cluster: &Cluster, from: usize, to: usize) {
    let src = cluster.open_db(from, A, C).unwrap();
    let Some(dst) = cluster.open_db(to, A, C) else {
        return;
    };
    let dst_id = dst.get_info().unwrap().id;
    let point = src.get_sync(&dst_id, false).unwrap();
    let held: HashSet<String> = all_rows(&dst).into_iter().map(|r| r.0).collect();
    for item in src.get_items_since(-1, 1_000_000).unwrap() {
        if item.rowid.unwrap_or(0) <= point {
            assert!(held.contains(&item.name), "{} claimed, not held", item.name);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_and_unanswered_batches_resume_without_loss() {
    let cl = Cluster::start(3, 3, 4).await;
    let p = cl.primaries(cl.part(A, C));
    let db = cl.create_db(p[0], A, C);
    db.merge_items(
        (0..400)
            .map(|i| obj(&format!("o{i:03}"), &ts(i), "t"))
            .collect(),
        None,
    )
    .unwrap();
    let t = Arc::new(Faulty::default());
    pass_with(&cl, p[0], &t, "").await; // whole DBs to both peers
    db.merge_items(
        (400..700)
            .map(|i| obj(&format!("o{i:03}"), &ts(i), "t"))
            .collect(),
        None,
    )
    .unwrap();
    // Batch 3 fails outright, batch 5's answer is lost after the peer merged
    // it, and one merge_syncs fails.
    t.rule(Some(OpName::MergeItems), 2, Fault::Duplicate);
    t.rule(Some(OpName::MergeItems), 1, Fault::Fail);
    t.rule(Some(OpName::MergeItems), 1, Fault::Duplicate);
    t.rule(Some(OpName::MergeItems), 1, Fault::LoseAnswer);
    t.rule(Some(OpName::MergeSyncs), 1, Fault::Fail);
    let s = pass_with(&cl, p[0], &t, "per_diff = 50").await;
    assert!(s.failure >= 1, "{s:?}");
    for &i in &p[1..] {
        assert_points_honest(&cl, p[0], i);
    }
    // Bounded: faults are used up; a few passes converge.
    for _ in 0..4 {
        pass_with(&cl, p[0], &t, "per_diff = 50").await;
    }
    assert_converged(&cl, &p, 700);
    for &i in &p[1..] {
        assert_points_honest(&cl, p[0], i);
    }
    assert!(t.calls.load(Ordering::Relaxed) > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_peer_catches_up_after_the_heal() {
    let cl = Cluster::start(3, 3, 4).await;
    let p = cl.primaries(cl.part(A, C));
    let db = cl.create_db(p[0], A, C);
    db.merge_items(
        (0..20)
            .map(|i| obj(&format!("o{i:03}"), &ts(i), "t"))
            .collect(),
        None,
    )
    .unwrap();
    let t = Arc::new(Faulty::default());
    pass_with(&cl, p[0], &t, "").await;
    t.cut.lock().unwrap().insert(peer_node(&cl, p[1]));
    db.merge_items(
        (20..120)
            .map(|i| obj(&format!("o{i:03}"), &ts(i), "t"))
            .collect(),
        None,
    )
    .unwrap();
    let s = pass_with(&cl, p[0], &t, "").await;
    assert_eq!(s.failure, 1, "{s:?}");
    assert_eq!(all_rows(&cl.open_db(p[1], A, C).unwrap()).len(), 20);
    assert_eq!(all_rows(&cl.open_db(p[2], A, C).unwrap()).len(), 120);
    assert_points_honest(&cl, p[0], p[1]);
    // Heal: the next pass brings the cut-off peer up to date.
    t.cut.lock().unwrap().clear();
    let s = pass_with(&cl, p[0], &t, "").await;
    assert_eq!(s.failure, 0, "{s:?}");
    assert_converged(&cl, &p, 120);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seam_serves_account_replication_too() {
    let cl = Cluster::start_kind(3, 3, 4, ServerType::Account).await;
    let part = cl.ring.get_part(&hash_conf(), A, None, None).unwrap();
    let p = cl.primaries(part);
    let hash = hash_conf().hash_path(A, None, None).unwrap();
    let path = |i: usize| {
        rowsync::db::files::db_path(
            &cl.nodes[i].devices.join(format!("sd{i}")),
            "accounts",
            part,
            &hash,
        )
    };
    let db = rowsync::db::AccountBroker::create(path(p[0]), A, None).unwrap();
    for i in 0..30 {
        db.put_container(&format!("c{i}"), &ts(i), "0", i as i64, 1, 0)
            .unwrap();
    }
    let t = Arc::new(Faulty::default());
    t.cut.lock().unwrap().insert(peer_node(&cl, p[2]));
    let run = |t: Arc<Faulty>| {
        let mut r = cl.replicator_of::<Account>(p[0], "");
        r.client = ReplClient::with_transport(t);
        r
    };
    let s = run(t.clone()).run_once(&PassFilter::default()).await;
    assert_eq!((s.rsync, s.failure), (1, 1), "{s:?}");
    assert!(!path(p[2]).exists());
    t.cut.lock().unwrap().clear();
    let s = run(t.clone()).run_once(&PassFilter::default()).await;
    assert_eq!((s.rsync, s.failure), (1, 0), "{s:?}");
    let peer = rowsync::db::AccountBroker::open(path(p[2])).unwrap();
    assert_eq!(peer.get_info().unwrap().count, 30);
}
