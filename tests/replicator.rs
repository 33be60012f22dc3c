//! The replicator end to end: real servers on loopback ports, real DB
//! files, each node its own devices dir, passes run in-process.

mod common;

use common::*;
use rowsync::db::SyncPoint;
use rowsync::replication::daemon::PassFilter;
use rowsync::replication::stats::Stats;
use rowsync::swift::merge::ObjectItem;
use std::sync::Arc;

const A: &str = "AUTH_test";
const C: &str = "cont";

async fn pass(cluster: &Cluster, i: usize, extra: &str) -> Stats {
    cluster
        .replicator(i, extra)
        .run_once(&PassFilter::default())
        .await
}

fn objs(range: std::ops::Range<u64>, ts_base: u64, ctype: &str) -> Vec<ObjectItem> {
    range
        .map(|i| obj(&format!("o{i}"), &ts(ts_base + i), ctype))
        .collect()
}

/// The partition's primaries for `A/C`, local node first.
fn primaries(cluster: &Cluster) -> Vec<usize> {
    cluster.primaries(cluster.part(A, C))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_replicas_get_the_whole_db() {
    let cluster = Cluster::start(3, 3, 4).await;
    let p = primaries(&cluster);
    let db = cluster.create_db(p[0], A, C);
    db.merge_items(objs(0..50, 0, "t"), None).unwrap();
    let s = pass(&cluster, p[0], "").await;
    assert_eq!(s.rsync, 2, "{s:?}");
    assert_eq!(s.success, 2);
    assert_eq!(s.failure, 0);
    let want = all_rows(&db);
    let local_id = db.get_info().unwrap().id;
    for &i in &p[1..] {
        let peer = cluster.open_db(i, A, C).expect("shipped");
        assert_eq!(all_rows(&peer), want);
        let info = peer.get_replication_info().unwrap();
        assert_ne!(info.id, local_id);
        assert!(info.id.ends_with(&format!("-sd{i}")));
        assert_eq!(peer.get_sync(&local_id, true).unwrap(), 50);
    }
    // The next pass has nothing to do: visited (as Swift does, with
    // full_pass_interval = 0) it finds both peers in sync ...
    let s = pass(&cluster, p[0], "full_pass_interval = 0").await;
    assert_eq!((s.no_change, s.rsync, s.diff), (2, 0, 0), "{s:?}");
    // Recon cache written with Swift's keys.
    let recon =
        std::fs::read_to_string(cluster.nodes[p[0]].dir.path().join("container.recon")).unwrap();
    let v: serde_json::Value = serde_json::from_str(recon.lines().next().unwrap()).unwrap();
    assert_eq!(v["replication_stats"]["no_change"], 2);
    assert!(v["replication_time"].is_number() && v["replication_last"].is_number());
    // ... and by default it is skipped without being opened.
    let s = pass(&cluster, p[0], "").await;
    assert_eq!((s.skipped, s.attempted, s.no_change), (1, 0, 0), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usync_closes_a_small_gap_and_rsync_then_merge_a_large_one() {
    let cluster = Cluster::start(2, 2, 3).await;
    let p = primaries(&cluster);
    let (l, r) = (p[0], p[1]);
    // 10% gap: the peer has 90 of 100 rows.
    let local = cluster.create_db(l, A, C);
    let remote = cluster.create_db(r, A, C);
    local.merge_items(objs(0..100, 0, "t"), None).unwrap();
    remote.merge_items(objs(0..90, 0, "t"), None).unwrap();
    let s = pass(&cluster, l, "per_diff = 100").await;
    assert_eq!((s.diff, s.remote_merge, s.rsync), (1, 0, 0), "{s:?}");
    assert_eq!(all_rows(&remote), all_rows(&local));
    // A second container, 90% gap: the peer has 100 of 1000 rows.
    let c2 = "wide";
    let local2 = cluster.create_db(l_of(&cluster, c2), A, c2);
    let lr = l_of(&cluster, c2);
    let rr = cluster.primaries(cluster.part(A, c2))[1];
    let remote2 = cluster.create_db(rr, A, c2);
    local2.merge_items(objs(0..1000, 0, "t"), None).unwrap();
    remote2.merge_items(objs(0..100, 0, "t"), None).unwrap();
    remote2
        .merge_items(vec![obj("only-remote", &ts(5), "t")], None)
        .unwrap();
    let before = cluster.nodes[rr].items_received();
    let s = pass(&cluster, lr, "per_diff = 100").await;
    assert!(s.remote_merge >= 1, "{s:?}");
    assert_eq!(
        cluster.nodes[rr].items_received(),
        before,
        "no rows sent one by one"
    );
    let merged = cluster.open_db(rr, A, c2).unwrap();
    assert_eq!(all_rows(&merged).len(), 1001);
    assert!(all_rows(&merged).iter().any(|r| r.0 == "only-remote"));
    let local_id = local2.get_info().unwrap().id;
    assert_eq!(merged.get_sync(&local_id, true).unwrap(), 1000);
}

/// The first primary of `A/<container>`.
fn l_of(cluster: &Cluster, container: &str) -> usize {
    cluster.primaries(cluster.part(A, container))[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_sync_passes_send_no_rows() {
    let cluster = Cluster::start(2, 2, 3).await;
    let p = primaries(&cluster);
    let local = cluster.create_db(p[0], A, C);
    let remote = cluster.create_db(p[1], A, C);
    // Same rows made independently: the hashes match though no sync point
    // exists; the receiver notices in `sync` and answers point = max_row.
    local.merge_items(objs(0..30, 0, "t"), None).unwrap();
    remote.merge_items(objs(0..30, 0, "t"), None).unwrap();
    let s = pass(&cluster, p[0], "").await;
    assert_eq!(
        (s.no_change, s.diff, s.rsync, s.remote_merge),
        (1, 0, 0, 0),
        "{s:?}"
    );
    assert_eq!(cluster.nodes[p[1]].items_received(), 0);
    let lid = local.get_info().unwrap().id;
    assert_eq!(remote.get_sync(&lid, true).unwrap(), 30);
    let s = pass(&cluster, p[0], "full_pass_interval = 0").await;
    assert_eq!((s.no_change, s.hashmatch, s.diff), (1, 0, 0), "{s:?}");
    assert_eq!(cluster.nodes[p[1]].items_received(), 0);
    let s = pass(&cluster, p[0], "").await;
    assert_eq!((s.skipped, s.attempted), (1, 0), "{s:?}");
}

/// The seed's scenario (Swift's test_diff_capped_sync).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_capped_far_behind_replica_converges() {
    let cluster = Cluster::start(3, 3, 3).await;
    let p = primaries(&cluster);
    let local = cluster.create_db(p[0], A, C);
    let remote = cluster.create_db(p[1], A, C);
    local
        .merge_items(objs(0..50, 1, "content-type-old"), None)
        .unwrap();
    local
        .merge_items(vec![obj("o101", &ts(151), "content-type-new")], None)
        .unwrap();
    remote
        .merge_items(objs(0..100, 51, "content-type-new"), None)
        .unwrap();
    let conf = "per_diff = 10\nmax_diffs = 3";
    let s1 = pass(&cluster, p[0], conf).await;
    assert_eq!((s1.diff, s1.diff_capped), (1, 1), "{s1:?}");
    assert_eq!(s1.rsync, 1, "the third replica got a whole copy");
    let lid = local.get_info().unwrap().id;
    assert_eq!(remote.get_sync(&lid, true).unwrap(), 30);
    let s2 = pass(&cluster, p[0], conf).await;
    assert_eq!((s2.diff, s2.diff_capped), (1, 0), "{s2:?}");
    let rows = all_rows(&remote);
    assert_eq!(rows.len(), 101);
    assert!(rows.iter().all(|r| r.3 == "content-type-new"));
    assert!(rows.iter().any(|r| r.0 == "o101"));
    assert_eq!(remote.get_replication_info().unwrap().count, 101);
    assert_eq!(
        cluster.nodes[p[1]].items_received(),
        51,
        "each row sent once"
    );
}

/// A 60,000-row DB whose peer already holds rows up to ROWID 30,000 (and
/// older versions of the rest) converges in exactly three passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_capped_backlog_resumes_each_pass() {
    let cluster = Cluster::start(2, 2, 2).await;
    let p = primaries(&cluster);
    let local = cluster.create_db(p[0], A, C);
    let remote = cluster.create_db(p[1], A, C);
    let rows: Vec<ObjectItem> = (0..60_000u64)
        .map(|i| obj(&format!("obj-{i:06}"), &ts(1000 + i), "new"))
        .collect();
    for chunk in rows.chunks(10_000) {
        local.merge_items(chunk.to_vec(), None).unwrap();
    }
    let older: Vec<ObjectItem> = (0..60_000u64)
        .map(|i| {
            let t = if i < 30_000 {
                ts(1000 + i)
            } else {
                ts(i % 1000)
            };
            obj(
                &format!("obj-{i:06}"),
                &t,
                if i < 30_000 { "new" } else { "old" },
            )
        })
        .collect();
    for chunk in older.chunks(10_000) {
        remote.merge_items(chunk.to_vec(), None).unwrap();
    }
    let lid = local.get_info().unwrap().id;
    remote
        .merge_syncs(&[SyncPoint::new(lid.clone(), 30_000)], true)
        .unwrap();
    let conf = "per_diff = 1000\nmax_diffs = 10";
    let s1 = pass(&cluster, p[0], conf).await;
    assert_eq!(
        (s1.diff, s1.diff_capped, s1.remote_merge),
        (1, 1, 0),
        "{s1:?}"
    );
    assert_eq!(cluster.nodes[p[1]].items_received(), 10_000);
    let s2 = pass(&cluster, p[0], conf).await;
    assert_eq!((s2.diff, s2.diff_capped), (1, 1), "{s2:?}");
    assert_eq!(cluster.nodes[p[1]].items_received(), 20_000);
    let s3 = pass(&cluster, p[0], conf).await;
    assert_eq!((s3.diff, s3.diff_capped), (1, 0), "{s3:?}");
    assert_eq!(
        cluster.nodes[p[1]].items_received(),
        30_000,
        "30,000 rows in total"
    );
    assert_eq!(all_rows(&remote), all_rows(&local));
    let s4 = pass(&cluster, p[0], conf).await;
    assert_eq!((s4.no_change, s4.diff), (1, 0), "{s4:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_with_disjoint_writes_converge() {
    let cluster = Cluster::start(3, 3, 3).await;
    let p = primaries(&cluster);
    let dbs: Vec<_> = p.iter().map(|&i| cluster.create_db(i, A, C)).collect();
    for (k, db) in dbs.iter().enumerate() {
        let rows: Vec<ObjectItem> = (0..40u64)
            .map(|i| obj(&format!("n{k}-{i}"), &ts(i), "t"))
            .collect();
        db.merge_items(rows, None).unwrap();
        db.merge_items(
            vec![ObjectItem::tombstone(
                format!("gone-{k}"),
                rowsync::swift::Timestamp::now().internal(),
            )],
            None,
        )
        .unwrap();
    }
    for &i in &p {
        pass(&cluster, i, "per_diff = 25").await;
    }
    for &i in &p {
        pass(&cluster, i, "per_diff = 25").await;
    }
    // Reopen: a whole-DB replacement may have swapped the files.
    let dbs: Vec<_> = p
        .iter()
        .map(|&i| cluster.open_db(i, A, C).unwrap())
        .collect();
    let want = all_rows(&dbs[0]);
    assert_eq!(want.len(), 123);
    for db in &dbs[1..] {
        assert_eq!(all_rows(db), want);
    }
    let hashes: Vec<String> = dbs
        .iter()
        .map(|d| d.get_replication_info().unwrap().hash)
        .collect();
    assert!(hashes.windows(2).all(|w| w[0] == w[1]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_points_travel_transitively() {
    let cluster = Cluster::start(3, 3, 3).await;
    let p = primaries(&cluster);
    let (a, b, c) = (p[0], p[1], p[2]);
    let dba = cluster.create_db(a, A, C);
    let dbb = cluster.create_db(b, A, C);
    let dbc = cluster.create_db(c, A, C);
    dba.merge_items(objs(0..30, 0, "a"), None).unwrap();
    dbb.merge_items(vec![obj("b-only", &ts(1), "b")], None)
        .unwrap();
    dbc.merge_items(vec![obj("c-only", &ts(1), "c")], None)
        .unwrap();
    // A -> B only: C is down for A's pass.
    let mut nodes = cluster;
    nodes.nodes[c].stop().await;
    let s = pass(&nodes, a, "").await;
    assert_eq!(s.failure, 1, "{s:?}");
    nodes.nodes[c].restart().await;
    // B -> C carries A's rows and, through merge_syncs, A's sync point.
    let dba_id = dba.get_info().unwrap().id;
    let s = pass(&nodes, b, "").await;
    assert_eq!(s.failure, 0, "{s:?}");
    let dbc = nodes.open_db(c, A, C).unwrap();
    assert!(dbc.get_sync(&dba_id, true).unwrap() >= 30);
    let before = nodes.nodes[c].items_received();
    let s = pass(&nodes, a, "").await;
    assert!(s.no_change >= 1, "{s:?}");
    let received_from_a = nodes.nodes[c].items_received() - before;
    assert!(
        received_from_a <= 1,
        "A does not resend its 30 rows to C ({received_from_a})"
    );
    assert_eq!(all_rows(&dbc).iter().filter(|r| r.3 == "a").count(), 30);
}

/// `A/C` with 20 rows on a node that is not one of its primaries: the
/// primaries, that node, its rows and the DB file.
#[allow(clippy::type_complexity)]
fn db_on_a_handoff(
    cluster: &Cluster,
) -> (
    Vec<usize>,
    usize,
    Vec<(String, String, i64, String, String, i64)>,
    std::path::PathBuf,
) {
    let prim = primaries(cluster);
    let handoff = (0..cluster.nodes.len())
        .find(|i| !prim.contains(i))
        .unwrap();
    let db = cluster.create_db(handoff, A, C);
    db.merge_items(objs(0..20, 0, "t"), None).unwrap();
    (prim, handoff, all_rows(&db), db.db_file().to_path_buf())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handoff_db_reaches_primaries_and_is_removed() {
    let cluster = Cluster::start(4, 3, 3).await;
    let (prim, handoff, want, path) = db_on_a_handoff(&cluster);
    let s = pass(&cluster, handoff, "").await;
    assert_eq!(s.remove, 1, "{s:?}");
    assert!(!path.exists());
    assert!(!path.parent().unwrap().exists());
    for &i in &prim {
        assert_eq!(all_rows(&cluster.open_db(i, A, C).unwrap()), want);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmounted_peer_is_replaced_by_a_handoff() {
    let cluster = Cluster::start(4, 3, 3).await;
    let part = cluster.part(A, C);
    let prim = cluster.primaries(part);
    let spare = (0..4).find(|i| !prim.contains(i)).unwrap();
    // The second primary's device is gone: it answers 507.
    std::fs::remove_dir_all(
        cluster.nodes[prim[1]]
            .devices
            .join(format!("sd{}", prim[1])),
    )
    .unwrap();
    let db = cluster.create_db(prim[0], A, C);
    db.merge_items(objs(0..10, 0, "t"), None).unwrap();
    let s = pass(&cluster, prim[0], "").await;
    assert!(s.failure >= 1, "{s:?}");
    let on_spare = cluster.open_db(spare, A, C).expect("handoff got the DB");
    assert_eq!(all_rows(&on_spare), all_rows(&db));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_failing_mid_pass_leaves_nothing_that_blocks_convergence() {
    let mut cluster = Cluster::start(2, 2, 2).await;
    let p = primaries(&cluster);
    let local = cluster.create_db(p[0], A, C);
    let remote = cluster.create_db(p[1], A, C);
    local.merge_items(objs(0..400, 0, "t"), None).unwrap();
    remote.merge_items(objs(0..300, 0, "t"), None).unwrap();
    // Stop the peer once it has taken two batches.
    let counters = cluster.nodes[p[1]].state.rpc.counters().clone();
    let stop = cluster.nodes[p[1]].take_shutdown().unwrap();
    let killer = tokio::spawn(async move {
        for _ in 0..5000 {
            if counters.get(rowsync::replication::wire::OpName::MergeItems) >= 2 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        let _ = stop.send(());
    });
    let s = pass(&cluster, p[0], "per_diff = 10\nmax_diffs = 100").await;
    let _ = killer.await;
    assert!(s.failure >= 1, "the pass saw the peer go away: {s:?}");
    cluster.nodes[p[1]].restart().await;
    // Whatever happened, the next passes converge.
    for _ in 0..3 {
        pass(&cluster, p[0], "per_diff = 10\nmax_diffs = 100").await;
    }
    assert_eq!(all_rows(&remote), all_rows(&local));
}

/// An rsync daemon on loopback serving each node's devices dir as module
/// `node_<port>`; killed on drop.
struct RsyncDaemon {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for RsyncDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rsync_daemon(cluster: &Cluster) -> Option<RsyncDaemon> {
    if std::process::Command::new("rsync")
        .arg("--version")
        .output()
        .is_err()
    {
        if std::env::var_os("ROWSYNC_REQUIRE_RSYNC").is_some() {
            panic!("rsync is required (ROWSYNC_REQUIRE_RSYNC is set) but not installed");
        }
        eprintln!("rsync not installed: skipping the rsync transfer check");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let uid = unsafe { libc::getuid() };
    let gid = unsafe { libc::getgid() };
    let mut conf = format!(
        "uid = {uid}\ngid = {gid}\nuse chroot = false\nmax connections = 8\npid file = {}\nlog file = {}\n",
        dir.path().join("rsyncd.pid").display(),
        dir.path().join("rsyncd.log").display()
    );
    for n in &cluster.nodes {
        conf.push_str(&format!(
            "[node_{}]\npath = {}\nread only = false\n",
            n.addr.port(),
            n.devices.display()
        ));
    }
    let conf_path = dir.path().join("rsyncd.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let child = std::process::Command::new("rsync")
        .args(["--daemon", "--no-detach", "--address=127.0.0.1"])
        .arg(format!("--port={port}"))
        .arg(format!("--config={}", conf_path.display()))
        .spawn()
        .unwrap();
    let daemon = RsyncDaemon {
        child,
        port,
        _dir: dir,
    };
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(daemon);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("rsync daemon did not start");
}

/// Swift's default transfer: the rsync binary to the peer's rsync module.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_db_ships_with_rsync_to_an_rsync_daemon() {
    let cluster = Cluster::start(2, 2, 2).await;
    let Some(daemon) = rsync_daemon(&cluster) else {
        return;
    };
    let p = primaries(&cluster);
    let db = cluster.create_db(p[0], A, C);
    db.merge_items(objs(0..300, 0, "t"), None).unwrap();
    let conf = format!(
        "db_transfer = rsync\nrsync_module = rsync://{{replication_ip}}:{}/node_{{replication_port}}\nper_diff = 50",
        daemon.port
    );
    let s = pass(&cluster, p[0], &conf).await;
    assert_eq!((s.rsync, s.failure), (1, 0), "{s:?}");
    assert_eq!(
        all_rows(&cluster.open_db(p[1], A, C).unwrap()),
        all_rows(&db)
    );
    // rsync_then_merge over rsync too.
    let c2 = "rtm";
    let l = l_of(&cluster, c2);
    let r = cluster.primaries(cluster.part(A, c2))[1];
    let local = cluster.create_db(l, A, c2);
    local.merge_items(objs(0..400, 0, "t"), None).unwrap();
    cluster
        .create_db(r, A, c2)
        .merge_items(objs(1000..1010, 0, "t"), None)
        .unwrap();
    let s = pass(&cluster, l, &conf).await;
    assert!(s.remote_merge >= 1 && s.failure == 0, "{s:?}");
    assert_eq!(all_rows(&cluster.open_db(r, A, c2).unwrap()).len(), 410);
    drop(daemon);
}

/// A DB found in the wrong partition directory (e.g. after a ring change)
/// is pushed to the right partition's primaries and removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misplaced_db_is_replicated_out_and_removed() {
    let cluster = Cluster::start(3, 3, 3).await;
    let right = cluster.part(A, C);
    let wrong = (right + 1) % 8;
    let i = cluster.primaries(right)[0];
    let path = cluster.nodes[i].db_path(&format!("sd{i}"), wrong, A, C);
    let db = create_db_at(&path, A, C);
    db.merge_items(objs(0..10, 0, "t"), None).unwrap();
    let want = all_rows(&db);
    drop(db);
    let s = pass(&cluster, i, "").await;
    assert_eq!(s.remove, 1, "{s:?}");
    assert!(!path.exists());
    // As in Swift, the other primaries got it; this node's right place is
    // filled by their next pass.
    let others: Vec<usize> = cluster
        .primaries(right)
        .into_iter()
        .filter(|n| *n != i)
        .collect();
    for &n in &others {
        assert_eq!(
            all_rows(&cluster.open_db(n, A, C).unwrap()),
            want,
            "node {n}"
        );
    }
    pass(&cluster, others[0], "").await;
    assert_eq!(all_rows(&cluster.open_db(i, A, C).unwrap()), want);
}

/// `handoffs_only` skips partitions where this device is a primary;
/// `--partitions` / `--devices` limit a pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handoffs_only_and_pass_filters() {
    let cluster = Cluster::start(4, 3, 3).await;
    let part = cluster.part(A, C);
    let prim = cluster.primaries(part);
    let db = cluster.create_db(prim[0], A, C);
    db.merge_items(objs(0..5, 0, "t"), None).unwrap();
    let s = pass(&cluster, prim[0], "handoffs_only = yes").await;
    assert_eq!(s.attempted, 0, "a primary partition is skipped: {s:?}");
    let r = cluster.replicator(prim[0], "");
    let only_other = PassFilter {
        partitions: Some([(part + 1) % 8].into_iter().collect()),
        devices: None,
    };
    assert_eq!(r.run_once(&only_other).await.attempted, 0);
    let other_dev = PassFilter {
        partitions: None,
        devices: Some(["nope".to_string()].into_iter().collect()),
    };
    assert_eq!(r.run_once(&other_dev).await.attempted, 0);
    let this = PassFilter {
        partitions: Some([part].into_iter().collect()),
        devices: Some([format!("sd{}", prim[0])].into_iter().collect()),
    };
    let s = r.run_once(&this).await;
    assert_eq!((s.attempted, s.rsync), (1, 2), "{s:?}");
}

/// A deleted container whose delete is older than reclaim_age, empty and
/// reported, is removed by the pass; a recent delete keeps replicating.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reclaimable_deleted_db_is_removed() {
    let cluster = Cluster::start(2, 2, 2).await;
    let p = primaries(&cluster);
    let db = cluster.create_db(p[0], A, C);
    db.delete_db(&ts(10)).unwrap();
    let info = db.get_replication_info().unwrap();
    db.reported(&info.put_timestamp, &info.delete_timestamp, 0, 0)
        .unwrap();
    let path = db.db_file().to_path_buf();
    drop(db);
    let s = pass(&cluster, p[0], "").await;
    assert_eq!(s.remove, 1, "{s:?}");
    assert!(!path.exists());
    // A recent delete is not reclaimable: it replicates (the peer learns it).
    let c2 = "recent";
    let l = l_of(&cluster, c2);
    let db = cluster.create_db(l, A, c2);
    db.delete_db(&rowsync::swift::Timestamp::now().internal())
        .unwrap();
    let s = pass(&cluster, l, "").await;
    assert_eq!((s.remove, s.rsync), (0, 1), "{s:?}");
}

type Hook = Box<dyn FnOnce() + Send>;

/// Node `i`'s server moves to a fresh port; a proxy on its old port (the
/// one the ring names) runs `before` once, at the first REPLICATE request,
/// then forwards every request to the server.
async fn proxy_with_hook(
    cluster: &mut Cluster,
    i: usize,
    before: impl FnOnce() + Send + 'static,
) -> tokio::sync::oneshot::Sender<()> {
    use axum::body::{to_bytes, Body};
    use axum::extract::Request;
    use axum::response::Response;
    use std::sync::Mutex;

    let node = &mut cluster.nodes[i];
    node.stop().await;
    let port = node.addr.port();
    let inner = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let inner_addr = inner.local_addr().unwrap();
    let state = node.state.clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (inner_tx, inner_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = rowsync::server::serve(state, inner, async {
            let _ = inner_rx.await;
        })
        .await;
    });
    let outer = bind_again(port).await;
    let hook: Arc<Mutex<Option<Hook>>> = Arc::new(Mutex::new(Some(Box::new(before))));
    let client = reqwest::Client::new();
    let app = axum::Router::new().fallback(move |req: Request| {
        let hook = hook.clone();
        let client = client.clone();
        async move {
            if req.method().as_str() == "REPLICATE" {
                let f = hook.lock().unwrap().take();
                if let Some(f) = f {
                    tokio::task::spawn_blocking(f).await.unwrap();
                }
            }
            let (parts, body) = req.into_parts();
            let body = to_bytes(body, usize::MAX).await.unwrap();
            let url = format!("http://{inner_addr}{}", parts.uri);
            let mut fwd = client.request(parts.method, url).body(body);
            for (k, v) in parts.headers.iter() {
                if k != "host" && k != "content-length" {
                    fwd = fwd.header(k, v);
                }
            }
            let r = fwd.send().await.unwrap();
            let mut out = Response::builder().status(r.status());
            for (k, v) in r.headers() {
                out = out.header(k, v);
            }
            out.body(Body::from(r.bytes().await.unwrap())).unwrap()
        }
    });
    tokio::spawn(async move {
        let _ = axum::serve(outer, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
                let _ = inner_tx.send(());
            })
            .await;
    });
    tx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handoff_db_that_gains_rows_during_the_pass_is_kept() {
    let mut cluster = Cluster::start(4, 3, 3).await;
    let (prim, handoff, first, path) = db_on_a_handoff(&cluster);
    // While the handoff talks to a primary, an object server's update
    // lands in the handoff DB.
    let late = path.clone();
    let stop_proxy = proxy_with_hook(&mut cluster, prim[1], move || {
        let b = rowsync::db::ContainerBroker::open(&late).unwrap();
        b.merge_items(vec![obj("late", &ts(100), "t")], None)
            .unwrap();
    })
    .await;
    let s = pass(&cluster, handoff, "").await;
    assert_eq!((s.remove, s.failure), (0, 0), "{s:?}");
    assert!(path.exists(), "the handoff DB gained a row: kept");
    for &i in &prim {
        let rows = all_rows(&cluster.open_db(i, A, C).unwrap());
        assert!(first.iter().all(|r| rows.contains(r)), "primary {i}");
    }
    // The next pass carries the late row to the primaries, then removes
    // the handoff DB.
    let s = pass(&cluster, handoff, "").await;
    assert_eq!((s.remove, s.failure), (1, 0), "{s:?}");
    assert!(!path.exists());
    for &i in &prim {
        let rows = all_rows(&cluster.open_db(i, A, C).unwrap());
        assert!(rows.iter().any(|r| r.0 == "late"), "primary {i}: {rows:?}");
        assert_eq!(rows.len(), 21);
    }
    let _ = stop_proxy.send(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rowsync_peers_get_bigger_batches_within_swifts_row_budget() {
    let cluster = Cluster::start(2, 2, 3).await;
    let p = primaries(&cluster);
    let (l, r) = (p[0], p[1]);
    let local = cluster.create_db(l, A, C);
    let remote = cluster.create_db(r, A, C);
    local.merge_items(objs(0..300, 0, "t"), None).unwrap();
    // As many rows of its own: every row of ours goes as merge_items.
    remote.merge_items(objs(1000..1300, 0, "t"), None).unwrap();
    // per_diff 10 x max_diffs 20: 200 rows a pass (Swift's budget), in
    // batches of up to 100 rows (ten times per_diff) to a rowsync peer.
    let conf = "per_diff = 10\nmax_diffs = 20";
    let s = pass(&cluster, l, conf).await;
    assert_eq!((s.diff, s.diff_capped), (1, 1), "{s:?}");
    assert_eq!(cluster.nodes[r].ops("merge_items"), 2, "two batches");
    assert_eq!(cluster.nodes[r].items_received(), 200);
    let s = pass(&cluster, l, conf).await;
    assert_eq!((s.diff, s.diff_capped), (1, 0), "{s:?}");
    assert_eq!(cluster.nodes[r].ops("merge_items"), 3);
    assert_eq!(cluster.nodes[r].items_received(), 300);
    let local_id = local.get_info().unwrap().id;
    assert_eq!(remote.get_sync(&local_id, true).unwrap(), 300);
    let names = |b: &rowsync::db::ContainerBroker| -> std::collections::BTreeSet<String> {
        all_rows(b).into_iter().map(|r| r.0).collect()
    };
    assert!(names(&local).is_subset(&names(&remote)));
}
