//! Where Swift 2.38's replication goes wrong (spec §10) and rowsync does
//! not, each reproduced with real servers and DB files. Every test first
//! shows that the situation is one where Swift's rule fails, then that
//! rowsync handles it.

mod common;

use common::*;
use rowsync::db::SyncPoint;
use rowsync::replication::daemon::PassFilter;
use rowsync::replication::stats::Stats;
use rowsync::replication::wire::ReplicateOp;
use rowsync::swift::merge::ObjectItem;
use rowsync::swift::Timestamp;

const A: &str = "AUTH_test";
const C: &str = "cont";

async fn pass(cluster: &Cluster, i: usize, extra: &str) -> Stats {
    cluster
        .replicator(i, extra)
        .run_once(&PassFilter::default())
        .await
}

fn objs(prefix: &str, range: std::ops::Range<u64>, ts_base: u64) -> Vec<ObjectItem> {
    range
        .map(|i| obj(&format!("{prefix}{i:05}"), &ts(ts_base + i), "t"))
        .collect()
}

/// §10 item 6: after rsync_then_merge Swift sets the receiver's point for
/// the sender to the highest ROWID *after* merging the receiver's own rows,
/// which is above the sender's high-water mark, so rows the sender writes
/// next are skipped ("no_change"). rowsync records the sender's own mark.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsync_then_merge_point_does_not_skip_later_rows() {
    let cluster = Cluster::start(2, 2, 2).await;
    let p = cluster.primaries(cluster.part(A, C));
    let local = cluster.create_db(p[0], A, C);
    let remote = cluster.create_db(p[1], A, C);
    local.merge_items(objs("l", 0..1000, 0), None).unwrap();
    remote.merge_items(objs("r", 0..50, 0), None).unwrap();
    let s = pass(&cluster, p[0], "per_diff = 100").await;
    assert_eq!(s.remote_merge, 1, "{s:?}");
    let remote = cluster.open_db(p[1], A, C).unwrap();
    let lid = local.get_info().unwrap().id;
    // Swift's point would be the merged file's top ROWID: 1050.
    let swift_point = remote.max_existing_rowid().unwrap();
    assert_eq!(swift_point, 1050);
    assert_eq!(remote.get_sync(&lid, true).unwrap(), 1000);
    // The sender writes 3 more rows (ROWIDs 1001..1003 < 1050).
    local.merge_items(objs("late", 0..3, 2000), None).unwrap();
    assert!(
        swift_point >= local.get_max_row().unwrap(),
        "Swift would answer no_change"
    );
    let s = pass(&cluster, p[0], "per_diff = 100").await;
    assert_eq!((s.diff, s.no_change), (1, 0), "{s:?}");
    assert_eq!(
        all_rows(&remote)
            .iter()
            .filter(|r| r.0.starts_with("late"))
            .count(),
        3
    );
}

/// §10 item 8: when the sender's highest rows were deleted before the peer
/// got them, Swift records the last row it sent (below max_row) and runs an
/// empty "diff" every pass. rowsync records max_row after a complete usync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_point_does_not_stick_below_max_row() {
    let cluster = Cluster::start(2, 2, 2).await;
    let p = cluster.primaries(cluster.part(A, C));
    let local = cluster.create_db(p[0], A, C);
    let remote = cluster.create_db(p[1], A, C);
    local.merge_items(objs("o", 0..20, 0), None).unwrap();
    // The peer has a row of its own, so the two hashes never match.
    remote
        .merge_items(vec![obj("peer-only", &ts(1), "t")], None)
        .unwrap();
    let s = pass(&cluster, p[0], "").await;
    assert_eq!(s.diff, 1, "{s:?}");
    // Five more rows, deleted long ago: reclaimed before anyone sees them.
    let old = Timestamp::parse("1600000000").unwrap().internal();
    local
        .merge_items(
            (0..5)
                .map(|i| ObjectItem::tombstone(format!("x{i}"), old.clone()))
                .collect(),
            None,
        )
        .unwrap();
    assert_eq!(local.get_max_row().unwrap(), 25);
    let s = pass(&cluster, p[0], "").await;
    assert_eq!(s.diff, 1, "rows 21-25 are gone: an empty usync {s:?}");
    assert_eq!(local.get_max_row().unwrap(), 25);
    assert_eq!(local.max_existing_rowid().unwrap(), 20);
    // Swift would have recorded 20 and would diff again on every pass.
    let rid = remote.get_info().unwrap().id;
    assert_eq!(local.get_sync(&rid, false).unwrap(), 25);
    let s = pass(&cluster, p[0], "").await;
    assert_eq!((s.no_change, s.diff), (1, 0), "{s:?}");
}

/// §10 item 5: Swift's 50% rule compares the two DBs' ROWID high-water
/// marks. A sender with heavy churn (rows rewritten many times) then ships
/// its whole DB to a peer that lacks one row. rowsync looks at the sync
/// point and sends the one row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_does_not_trigger_whole_db_shipping() {
    let cluster = Cluster::start(2, 2, 2).await;
    let p = cluster.primaries(cluster.part(A, C));
    let local = cluster.create_db(p[0], A, C);
    let remote = cluster.create_db(p[1], A, C);
    // 100 rows rewritten 30 times: max_row 3000, 100 live rows.
    for round in 0..30u64 {
        local
            .merge_items(objs("o", 0..100, round * 1000), None)
            .unwrap();
    }
    remote.merge_items(objs("o", 0..100, 29_000), None).unwrap();
    let lid = local.get_info().unwrap().id;
    remote
        .merge_syncs(&[SyncPoint::new(lid, 3000)], true)
        .unwrap();
    local
        .merge_items(vec![obj("new-one", &ts(50_000), "t")], None)
        .unwrap();
    let (lmax, rmax) = (local.get_max_row().unwrap(), remote.get_max_row().unwrap());
    let per_diff = 1000;
    let swift_ships_whole = (rmax as f64 / lmax as f64) < 0.5 && lmax - rmax > per_diff;
    assert!(
        swift_ships_whole,
        "Swift's rule picks rsync_then_merge here"
    );
    let s = pass(&cluster, p[0], "").await;
    assert_eq!((s.remote_merge, s.diff), (0, 1), "{s:?}");
    assert_eq!(cluster.nodes[p[1]].items_received(), 1);
    assert_eq!(cluster.nodes[p[1]].ops("rsync_then_merge"), 0);
}

/// §10 item 5 (deadline): Swift gives rsync_then_merge `count / 2000`
/// seconds although the receiver merges all of its own rows into the
/// shipped file; a sender with few live rows gives up after milliseconds.
/// rowsync waits at least node_timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsync_then_merge_deadline_covers_the_receivers_work() {
    let cluster = Cluster::start(2, 2, 2).await;
    let p = cluster.primaries(cluster.part(A, C));
    let local = cluster.create_db(p[0], A, C);
    let remote = cluster.create_db(p[1], A, C);
    // 10 live rows after heavy churn (max_row 5000); the peer holds 2000
    // rows of its own that it must merge into the shipped file.
    for round in 0..500u64 {
        local
            .merge_items(objs("o", 0..10, round * 100), None)
            .unwrap();
    }
    remote.merge_items(objs("peer", 0..2000, 0), None).unwrap();
    let count = local.get_replication_info().unwrap().count;
    let swift_deadline = count as f64 / 2000.0;
    let started = std::time::Instant::now();
    let s = pass(&cluster, p[0], "").await;
    let took = started.elapsed().as_secs_f64();
    assert_eq!(s.remote_merge, 1, "{s:?}");
    assert_eq!(s.failure, 0, "{s:?}");
    assert!(
        took > swift_deadline,
        "Swift's {swift_deadline}s deadline is shorter than the work ({took}s)"
    );
    assert_eq!(all_rows(&cluster.open_db(p[1], A, C).unwrap()).len(), 2010);
}

/// §10 item 4: Swift's progress through a capped backlog lives only in the
/// receiver's incoming point; if that is lost (an older receiver, or the
/// row reclaimed), Swift restarts from the beginning. rowsync also keeps
/// its outgoing point per acknowledged batch and resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capped_progress_survives_a_receiver_that_forgets() {
    let cluster = Cluster::start(2, 2, 2).await;
    let p = cluster.primaries(cluster.part(A, C));
    let local = cluster.create_db(p[0], A, C);
    let remote = cluster.create_db(p[1], A, C);
    local.merge_items(objs("o", 0..50, 0), None).unwrap();
    remote.merge_items(objs("o", 0..40, 0), None).unwrap();
    let conf = "per_diff = 10\nmax_diffs = 3";
    let s = pass(&cluster, p[0], conf).await;
    assert_eq!((s.diff, s.diff_capped), (1, 1), "{s:?}");
    assert_eq!(cluster.nodes[p[1]].items_received(), 30);
    // The receiver forgets its point for us.
    remote
        .connection()
        .execute_batch("DELETE FROM incoming_sync")
        .unwrap();
    let s = pass(&cluster, p[0], conf).await;
    assert_eq!((s.diff, s.diff_capped), (1, 0), "{s:?}");
    assert_eq!(
        cluster.nodes[p[1]].items_received(),
        50,
        "resumed at row 31, not row 1"
    );
    assert_eq!(all_rows(&remote), all_rows(&local));
}

/// §10 item 7: Swift renames the merged file over the local DB at the end
/// of rsync_then_merge, losing rows that reached the local DB during the
/// merge. rowsync re-merges them under the DB's locks before the rename,
/// and pending commits follow the file that is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_written_during_rsync_then_merge_survive() {
    let node = TestNode::start(&["sda"]).await;
    let client = reqwest::Client::new();
    let part = 3;
    let existing = node.create_db("sda", part, A, C);
    existing
        .merge_items(objs("mine", 0..20_000, 0), None)
        .unwrap();
    let src_dir = tempfile::tempdir().unwrap();
    let src = create_db_at(&src_dir.path().join("src.db"), A, C);
    src.merge_items(objs("theirs", 0..100, 0), None).unwrap();
    let src_id = src.get_info().unwrap().id;
    std::fs::create_dir_all(node.devices.join("sda/tmp")).unwrap();
    std::fs::copy(src.db_file(), node.devices.join("sda/tmp").join(&src_id)).unwrap();
    let hash = hash_conf().hash_path(A, Some(C), None).unwrap();
    // A writer puts rows through the pending file and commits them, each
    // time with a fresh broker, while the merge runs.
    let db_path = existing.db_file().to_path_buf();
    let writer = std::thread::spawn(move || {
        for i in 0..150u64 {
            let b = rowsync::db::ContainerBroker::open(&db_path).unwrap();
            b.put_object(&obj(&format!("during{i:03}"), &ts(i), "t"))
                .unwrap();
            if i % 10 == 0 {
                b.get_info().unwrap();
            }
        }
    });
    let op = ReplicateOp::<rowsync::swift::merge::ObjectItem>::RsyncThenMerge {
        tmp_name: src_id,
        db_basename: None,
    };
    let (st, _) = replicate(&client, &node, &format!("/sda/{part}/{hash}"), op.to_body()).await;
    writer.join().unwrap();
    assert_eq!(st, 204);
    let fin = rowsync::db::ContainerBroker::open(node.db_path("sda", part, A, C)).unwrap();
    let rows = all_rows(&fin);
    assert_eq!(
        rows.iter().filter(|r| r.0.starts_with("during")).count(),
        150
    );
    assert_eq!(rows.len(), 20_000 + 100 + 150);
}
