//! Injected failures at the named fail points (run with
//! `cargo test --features failpoints --test failpoints`): a full disk, an
//! I/O error or a crash at any of them leaves every DB as it was, or
//! consistent, and replication carries on afterwards.
#![cfg(feature = "failpoints")]

mod common;

use common::*;
use rowsync::db::{ContainerBroker, SyncPoint};
use rowsync::replication::daemon::PassFilter;
use rowsync::swift::merge::ObjectItem;

const A: &str = "AUTH_fp";
const C: &str = "cont";

fn objs(range: std::ops::Range<u64>) -> Vec<ObjectItem> {
    range
        .map(|i| {
            let mut o = obj(&format!("o{i:04}"), &ts(i), "t");
            o.rowid = Some(i as i64 + 1);
            o
        })
        .collect()
}

fn new_db(dir: &std::path::Path) -> ContainerBroker {
    let h = "0123456789abcdef0123456789abcabc";
    create_db_at(&dir.join(format!("sda/containers/0/abc/{h}/{h}.db")), A, C)
}

#[test]
fn a_full_disk_or_a_crash_inside_merge_items_changes_nothing() {
    let _scenario = fail::FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let db = new_db(dir.path());
    db.merge_items(objs(0..10), Some("peer")).unwrap();
    let before = (all_rows(&db), db.get_info().unwrap().hash);
    {
        fail::cfg("merge_items::before_commit", "return(enospc)").unwrap();
        let e = db.merge_items(objs(10..20), Some("peer")).unwrap_err();
        assert_eq!(e.status(), 507, "{e}");
        fail::cfg("merge_items::before_commit", "panic").unwrap();
        let crashed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            db.merge_items(objs(10..20), Some("peer"))
        }));
        assert!(crashed.is_err());
        fail::remove("merge_items::before_commit");
    }
    assert_eq!((all_rows(&db), db.get_info().unwrap().hash), before);
    assert_eq!(db.get_sync("peer", true).unwrap(), 10);
    // The failure passed: the same batch merges.
    db.merge_items(objs(10..20), Some("peer")).unwrap();
    assert_eq!(all_rows(&db).len(), 20);
    let c = db
        .connection()
        .query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))
        .unwrap();
    assert_eq!(c, "ok");
}

#[test]
fn a_failed_pending_flush_keeps_the_records_for_the_next_one() {
    let _scenario = fail::FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let db = new_db(dir.path());
    for o in objs(0..5) {
        let mut o = o;
        o.rowid = None;
        db.put_object(&o).unwrap();
    }
    {
        // The merge committed, then the truncation failed (EIO).
        fail::cfg("pending::after_merge", "return(eio)").unwrap();
        assert!(db.commit_pending().is_err());
        // A full disk while appending: refused, nothing half-written.
        fail::cfg("pending::append", "return(enospc)").unwrap();
        let e = db.put_object(&obj("late", &ts(99), "t")).unwrap_err();
        assert_eq!(e.status(), 507);
        fail::remove("pending::after_merge");
        fail::remove("pending::append");
    }
    assert!(std::fs::metadata(db.pending_file()).unwrap().len() > 0);
    db.commit_pending().unwrap();
    assert_eq!(std::fs::metadata(db.pending_file()).unwrap().len(), 0);
    // Replayed records merge to the same rows: each object once.
    let rows = all_rows(&db);
    assert_eq!(rows.len(), 5);
    assert!(rows.iter().all(|r| r.0 != "late"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_between_steps_of_a_pass_are_made_good_by_the_next_pass() {
    let _scenario = fail::FailScenario::setup();
    let cl = Cluster::start(3, 3, 4).await;
    let p = cl.primaries(cl.part(A, C));
    let db = cl.create_db(p[0], A, C);
    db.merge_items(objs(0..300), None).unwrap();
    let pass = |extra: &'static str| {
        let r = cl.replicator(p[0], extra);
        async move { r.run_once(&PassFilter::default()).await }
    };
    {
        // Whole DBs shipped, then the sender dies before complete_rsync.
        fail::cfg("sender::after_ship", "return").unwrap();
        let s = pass("").await;
        assert_eq!(s.failure, 2, "{s:?}");
        for &i in &p[1..] {
            assert!(cl.open_db(i, A, C).is_none());
        }
        fail::remove("sender::after_ship");
        pass("").await;
        db.merge_items(objs(300..450), None).unwrap();
        // Every batch merged, then the pass fails before merge_syncs.
        fail::cfg("sender::before_merge_syncs", "return(eio)").unwrap();
        let s = pass("per_diff = 50").await;
        assert_eq!(s.failure, 2, "{s:?}");
        fail::remove("sender::after_ship");
        fail::remove("sender::before_merge_syncs");
    }
    // The peers hold every row and say so (their incoming points): the
    // next pass finds nothing to send.
    let s = pass("per_diff = 50").await;
    assert_eq!((s.failure, s.no_change, s.diff), (0, 2, 0), "{s:?}");
    let want = all_rows(&db);
    let our_id = db.get_info().unwrap().id;
    for &i in &p[1..] {
        let peer = cl.open_db(i, A, C).unwrap();
        assert_eq!(all_rows(&peer), want);
        assert!(peer.get_sync(&our_id, true).unwrap() >= 450);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsync_then_merge_failing_around_the_rename_leaves_a_whole_db() {
    let _scenario = fail::FailScenario::setup();
    let node = TestNode::start(&["sda"]).await;
    let client = reqwest::Client::new();
    let h = hash_conf().hash_path("a", Some("c"), None).unwrap();
    let path = format!("/sda/0/{h}");
    let existing = node.create_db("sda", 0, "a", "c");
    existing.merge_items(objs(0..20), None).unwrap();
    drop(existing);
    let src_dir = tempfile::tempdir().unwrap();
    let src = create_db_at(&src_dir.path().join("src.db"), "a", "c");
    src.merge_items(objs(100..160), None).unwrap();
    let id = src.get_info().unwrap().id;
    let ship = |name: String| {
        let tmp = node.devices.join("sda/tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        std::fs::copy(src.db_file(), tmp.join(name)).unwrap();
    };
    let op = |name: &str| format!(r#"["rsync_then_merge", "{name}", "{h}.db"]"#).into_bytes();
    {
        fail::cfg("rsync_then_merge::before_rename", "return(eio)").unwrap();
        ship(id.clone());
        let (st, _) = replicate(&client, &node, &path, op(&id)).await;
        assert_eq!(st, 500);
        let db = ContainerBroker::open(node.db_path("sda", 0, "a", "c")).unwrap();
        assert_eq!(all_rows(&db).len(), 20, "the local DB is untouched");
        fail::remove("rsync_then_merge::before_rename");
        fail::cfg("rsync_then_merge::after_rename", "return(enospc)").unwrap();
        ship(id.clone());
        let (st, _) = replicate(&client, &node, &path, op(&id)).await;
        assert_eq!(st, 507);
        fail::remove("rsync_then_merge::after_rename");
        fail::remove("rsync_then_merge::before_rename");
    }
    // Renamed before the failure: the merged DB is in place and whole.
    let db = ContainerBroker::open(node.db_path("sda", 0, "a", "c")).unwrap();
    assert_eq!(all_rows(&db).len(), 80);
    let c = db
        .connection()
        .query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))
        .unwrap();
    assert_eq!(c, "ok");
    assert!(db.merge_syncs(&[SyncPoint::new("x", 1)], true).is_ok());
}
