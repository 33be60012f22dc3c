//! The container broker against Swift-made DB files and Swift's behaviour.

mod common;

use std::path::Path;

use common::{dbs_json, fixture_node, fixtures, ts};

use rowsync::db::container::{ListingEntry, ListingParams};
use rowsync::db::{ContainerBroker, DbError, DbState, SyncPoint};
use rowsync::swift::merge::ObjectItem;
use rowsync::swift::{chexor, Timestamp};
use serde_json::{json, Value};

fn new_db(dir: &Path) -> ContainerBroker {
    let path = dir.join(
        "sda/containers/0/abc/0123456789abcdef0123456789abcabc/0123456789abcdef0123456789abcabc.db",
    );
    ContainerBroker::create(
        &path,
        "a",
        "c",
        Some(Timestamp::parse("1.00000").unwrap()),
        0,
    )
    .unwrap()
}

fn item(name: &str, t: &str, ctype: &str) -> ObjectItem {
    ObjectItem::new(name, t, 10, ctype, "etag")
}

fn with_rowids(items: Vec<ObjectItem>, first: i64) -> Vec<ObjectItem> {
    items
        .into_iter()
        .enumerate()
        .map(|(i, mut it)| {
            it.rowid = Some(first + i as i64);
            it
        })
        .collect()
}

fn item_json(it: &ObjectItem) -> Value {
    serde_json::to_value(it).unwrap()
}

#[test]
fn swift_made_dbs_read_as_swift_reads_them() {
    let node = fixture_node();
    let d = dbs_json();
    for c in d["container_dbs"].as_array().unwrap() {
        let db_path = node.path().join(c["db_path"].as_str().unwrap());
        // Without the pending file the DB is as Swift described it.
        let pending = node.path().join(c["pending_path"].as_str().unwrap());
        let saved_pending = std::fs::read(&pending).unwrap();
        std::fs::remove_file(&pending).unwrap();
        let b = ContainerBroker::open(&db_path).unwrap();
        let info = serde_json::to_value(b.get_replication_info().unwrap()).unwrap();
        assert_eq!(
            info, c["replication_info"],
            "replication info of {}",
            c["container"]
        );
        let items: Vec<Value> = b
            .get_items_since(-1, 100_000)
            .unwrap()
            .iter()
            .map(item_json)
            .collect();
        assert_eq!(Value::Array(items), c["items_since_-1"]);
        let incoming = serde_json::to_value(b.get_syncs(true).unwrap()).unwrap();
        assert_eq!(incoming, c["incoming_sync"]);
        let outgoing = serde_json::to_value(b.get_syncs(false).unwrap()).unwrap();
        assert_eq!(outgoing, c["outgoing_sync"]);
        for p in c["incoming_sync"].as_array().unwrap() {
            assert_eq!(
                b.get_sync(p["remote_id"].as_str().unwrap(), true).unwrap(),
                p["sync_point"].as_i64().unwrap()
            );
        }
        assert_eq!(b.get_sync("peer-out", false).unwrap(), 17);
        assert_eq!(b.get_sync("nobody", true).unwrap(), -1);
        assert_eq!(b.db_state().unwrap(), DbState::Unsharded);
        assert_eq!(
            b.metadata().unwrap()["X-Container-Meta-Color"],
            json!([
                "blue",
                c["replication_info"]["metadata"]
                    .as_str()
                    .unwrap()
                    .split('"')
                    .nth(5)
                    .unwrap()
            ])
        );
        drop(b);
        std::fs::write(&pending, saved_pending).unwrap();
    }
}

#[test]
fn swift_pending_files_commit_to_the_listed_rows() {
    let node = fixture_node();
    let d = dbs_json();
    for c in d["container_dbs"].as_array().unwrap() {
        let db_path = node.path().join(c["db_path"].as_str().unwrap());
        let pending = node.path().join(c["pending_path"].as_str().unwrap());
        assert!(std::fs::metadata(&pending).unwrap().len() > 0);
        let b = ContainerBroker::open(&db_path).unwrap();
        let before = &c["replication_info"];
        let rows = b.get_items_since(-1, 100_000).unwrap();
        assert_eq!(
            std::fs::metadata(&pending).unwrap().len(),
            0,
            "pending truncated"
        );
        let old = c["items_since_-1"].as_array().unwrap();
        let recs = c["pending_records_in_order"].as_array().unwrap();
        assert_eq!(rows.len(), old.len() + recs.len());
        let max_row = before["max_row"].as_i64().unwrap();
        for (i, rec) in recs.iter().enumerate() {
            let row = &rows[old.len() + i];
            assert_eq!(row.rowid, Some(max_row + 1 + i as i64));
            assert_eq!(row.name, rec[0].as_str().unwrap());
            assert_eq!(row.created_at, rec[1].as_str().unwrap());
            assert_eq!(row.size, rec[2].as_i64().unwrap());
            assert_eq!(row.content_type, rec[3].as_str().unwrap());
            assert_eq!(row.etag, rec[4].as_str().unwrap());
            assert_eq!(row.deleted, rec[5].as_i64().unwrap());
            assert_eq!(row.storage_policy_index, rec[6].as_i64().unwrap());
        }
        let info = b.get_replication_info().unwrap();
        let live_added = recs.iter().filter(|r| r[5] == 0).count() as i64;
        let bytes_added: i64 = recs.iter().map(|r| r[2].as_i64().unwrap()).sum();
        assert_eq!(info.count, before["count"].as_i64().unwrap() + live_added);
        assert_eq!(
            info.bytes_used,
            before["bytes_used"].as_i64().unwrap() + bytes_added
        );
        assert_eq!(info.max_row, max_row + recs.len() as i64);
        let mut h = before["hash"].as_str().unwrap().to_string();
        for r in recs {
            h = chexor(&h, r[0].as_str().unwrap(), r[1].as_str().unwrap()).unwrap();
        }
        assert_eq!(info.hash, h);
        // The whole hash is the XOR over every row present.
        let mut all = "0".repeat(32);
        for r in &rows {
            all = chexor(&all, &r.name, &r.created_at).unwrap();
        }
        assert_eq!(info.hash, all);
    }
}

#[test]
fn pending_records_are_written_in_swifts_exact_bytes() {
    let d = dbs_json();
    let c = &d["container_dbs"][0];
    let raw = std::fs::read(fixtures().join(c["pending_path"].as_str().unwrap())).unwrap();
    let first = raw.split(|b| *b == b':').find(|e| !e.is_empty()).unwrap();
    let rec = &c["pending_records_in_order"][0];
    let mut it = ObjectItem::new(
        rec[0].as_str().unwrap(),
        rec[1].as_str().unwrap(),
        rec[2].as_i64().unwrap(),
        rec[3].as_str().unwrap(),
        rec[4].as_str().unwrap(),
    );
    it.deleted = rec[5].as_i64().unwrap();
    it.storage_policy_index = rec[6].as_i64().unwrap();
    let ours = rowsync::swift::pending::encode_object_record(&it);
    assert_eq!(&ours[1..], first);
}

fn normalize_sql(sql: &str) -> String {
    let collapsed = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out = collapsed;
    for p in ["(", ")", ",", ";", "="] {
        out = out
            .replace(&format!(" {p}"), p)
            .replace(&format!("{p} "), p);
    }
    out.to_lowercase()
}

fn schema_of(path: &Path) -> Vec<(String, String, String, String)> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut q = conn
        .prepare("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name")
        .unwrap();
    let rows = q
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                normalize_sql(&r.get::<_, Option<String>>(3)?.unwrap_or_default()),
            ))
        })
        .unwrap();
    rows.map(|r| r.unwrap()).collect()
}

#[test]
fn created_db_has_swifts_schema() {
    let dir = tempfile::tempdir().unwrap();
    let b = new_db(dir.path());
    let ours = schema_of(b.db_file());
    let d = dbs_json();
    let theirs = schema_of(&fixtures().join(d["container_dbs"][0]["db_path"].as_str().unwrap()));
    assert_eq!(ours, theirs);
    let info = b.get_replication_info().unwrap();
    assert_eq!(info.put_timestamp, "0000000001.00000");
    assert_eq!(info.status_changed_at, "0000000001.00000");
    assert_eq!(info.delete_timestamp, "0");
    assert_eq!(info.hash, "0".repeat(32));
    assert_eq!(info.max_row, -1);
    assert_eq!(info.shard_max_row, Some(-1));
    assert!(info.id.ends_with("-sda"), "{}", info.id);
    assert_eq!(info.db_state, DbState::Unsharded);
    // A second create of the same DB is refused and leaves no temp file.
    let again = ContainerBroker::create(b.db_file(), "a", "c", None, 0).unwrap_err();
    assert!(matches!(again, DbError::AlreadyExists(_)));
    let leftovers: Vec<_> = std::fs::read_dir(b.db_file().parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn seed_fix_sync_point_advances_even_when_nothing_is_newer() {
    let dir = tempfile::tempdir().unwrap();
    let b = new_db(dir.path());
    let newer: Vec<ObjectItem> = (0..10)
        .map(|i| item(&format!("o{i}"), &ts(100 + i), "new"))
        .collect();
    b.merge_items(newer, None).unwrap();
    let hash_before = b.get_replication_info().unwrap().hash;
    // A far-behind sender sends older versions of the same rows.
    let older = with_rowids(
        (0..10)
            .map(|i| item(&format!("o{i}"), &ts(i), "old"))
            .collect(),
        21,
    );
    let out = b.merge_items(older, Some("sender")).unwrap();
    assert_eq!(out.inserted, 0);
    assert_eq!(
        b.get_sync("sender", true).unwrap(),
        30,
        "last ROWID of the batch"
    );
    assert_eq!(b.get_replication_info().unwrap().hash, hash_before);
    // Points never move back.
    let older = with_rowids(vec![item("o1", &ts(1), "old")], 5);
    b.merge_items(older, Some("sender")).unwrap();
    assert_eq!(b.get_sync("sender", true).unwrap(), 30);
    // An empty batch changes nothing.
    b.merge_items(Vec::new(), Some("sender")).unwrap();
    b.merge_items(Vec::new(), Some("other")).unwrap();
    assert_eq!(b.get_sync("sender", true).unwrap(), 30);
    assert_eq!(b.get_sync("other", true).unwrap(), -1);
    // A source without ROWIDs is bad input.
    let e = b
        .merge_items(vec![item("x", &ts(1), "t")], Some("s"))
        .unwrap_err();
    assert!(matches!(e, DbError::Invalid(_)));
    // Every row keeps its newer version.
    let rows = b.get_items_since(-1, 100).unwrap();
    assert_eq!(rows.len(), 10);
    assert!(rows.iter().all(|r| r.content_type == "new"));
}

#[test]
fn merge_replaces_older_rows_and_handles_duplicates_in_a_batch() {
    let dir = tempfile::tempdir().unwrap();
    let b = new_db(dir.path());
    b.merge_items(vec![item("a", &ts(1), "v1"), item("b", &ts(1), "v1")], None)
        .unwrap();
    // Duplicates: the newest version of "a" wins, placed at the first
    // occurrence's position.
    let batch = vec![
        item("a", &ts(3), "v3"),
        item("c", &ts(1), "v1"),
        item("a", &ts(2), "v2"),
        item("a", &ts(4), "v4"),
        item("b", &ts(0), "v0"),
    ];
    let out = b.merge_items(batch, None).unwrap();
    assert_eq!(out.inserted, 2);
    assert_eq!(out.replaced, 1);
    let rows = b.get_items_since(-1, 100).unwrap();
    let names: Vec<(&str, &str, i64)> = rows
        .iter()
        .map(|r| (r.name.as_str(), r.content_type.as_str(), r.rowid.unwrap()))
        .collect();
    assert_eq!(names, vec![("b", "v1", 2), ("a", "v4", 3), ("c", "v1", 4)]);
    let info = b.get_replication_info().unwrap();
    assert_eq!(info.count, 3);
    assert_eq!(info.max_row, 4);
    // Same rows in other policies are distinct rows.
    let mut p1 = item("a", &ts(1), "p1");
    p1.storage_policy_index = 1;
    b.merge_items(vec![p1], None).unwrap();
    assert_eq!(b.get_items_since(4, 10).unwrap()[0].storage_policy_index, 1);
    let stats = b.get_policy_stats().unwrap();
    assert!(stats.contains(&(1, 1, 10)));
}

#[test]
fn merge_applies_content_type_and_meta_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let b = new_db(dir.path());
    b.merge_items(vec![item("o", &ts(1), "text/plain;swift_bytes=5")], None)
        .unwrap();
    // A POST-like update: same data timestamp, newer content type.
    let mut post = item("o", &ts(1), "image/png");
    post.size = 999;
    post.ctype_timestamp = Some(ts(2));
    b.merge_items(vec![post], None).unwrap();
    let rows = b.get_items_since(-1, 10).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].size, 10,
        "data attributes follow the data timestamp"
    );
    assert_eq!(rows[0].content_type, "image/png;swift_bytes=5");
    assert_eq!(rows[0].created_at, format!("{}+186a0+0", ts(1)));
    // A tombstone older than the data does nothing; a newer one wins.
    b.merge_items(vec![ObjectItem::tombstone("o", ts(0))], None)
        .unwrap();
    assert_eq!(b.get_items_since(-1, 10).unwrap()[0].deleted, 0);
    b.merge_items(vec![ObjectItem::tombstone("o", ts(5))], None)
        .unwrap();
    let rows = b.get_items_since(-1, 10).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].deleted, 1);
    assert_eq!(b.get_replication_info().unwrap().count, 0);
}

#[test]
fn large_batches_beyond_sqlite_parameter_limit() {
    let dir = tempfile::tempdir().unwrap();
    let b = new_db(dir.path());
    let batch: Vec<ObjectItem> = (0..5000)
        .map(|i| item(&format!("n{i:05}"), &ts(1), "t"))
        .collect();
    b.merge_items(batch.clone(), None).unwrap();
    let newer: Vec<ObjectItem> = (0..5000)
        .map(|i| item(&format!("n{i:05}"), &ts(2), "t2"))
        .collect();
    let out = b.merge_items(with_rowids(newer, 1), Some("peer")).unwrap();
    assert_eq!(out.inserted, 5000);
    assert_eq!(out.replaced, 5000);
    let info = b.get_replication_info().unwrap();
    assert_eq!(info.count, 5000);
    assert_eq!(info.max_row, 10000);
    assert_eq!(b.get_sync("peer", true).unwrap(), 5000);
}

#[test]
fn items_since_windows() {
    let dir = tempfile::tempdir().unwrap();
    let b = new_db(dir.path());
    b.merge_items(
        (0..5)
            .map(|i| item(&format!("o{i}"), &ts(i), "t"))
            .collect(),
        None,
    )
    .unwrap();
    let ids = |start, count| -> Vec<i64> {
        b.get_items_since(start, count)
            .unwrap()
            .iter()
            .map(|i| i.rowid.unwrap())
            .collect()
    };
    assert_eq!(ids(-1, 10), vec![1, 2, 3, 4, 5]);
    assert_eq!(ids(-1, 2), vec![1, 2]);
    assert_eq!(ids(1, 2), vec![2, 3]);
    assert_eq!(ids(3, 2), vec![4, 5]);
    assert_eq!(ids(999, 2), Vec::<i64>::new());
}

#[test]
fn sync_tables_merge_by_max_and_are_independent() {
    let dir = tempfile::tempdir().unwrap();
    let b = new_db(dir.path());
    b.merge_syncs(&[SyncPoint::new("x", 10), SyncPoint::new("y", 5)], true)
        .unwrap();
    b.merge_syncs(&[SyncPoint::new("x", 7), SyncPoint::new("y", 9)], true)
        .unwrap();
    assert_eq!(b.get_sync("x", true).unwrap(), 10);
    assert_eq!(b.get_sync("y", true).unwrap(), 9);
    assert_eq!(b.get_sync("x", false).unwrap(), -1);
    b.merge_syncs(&[SyncPoint::new("x", 3)], false).unwrap();
    assert_eq!(b.get_sync("x", false).unwrap(), 3);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for p in b.get_syncs_with_time(true).unwrap() {
        let t: u64 = p.updated_at.unwrap().parse().unwrap();
        assert!(t + 5 >= now && t <= now + 5);
    }
}

#[test]
fn metadata_newer_wins_and_blank_values_reclaim() {
    let dir = tempfile::tempdir().unwrap();
    let b = new_db(dir.path());
    let m = |pairs: &[(&str, &str, &str)]| -> serde_json::Map<String, Value> {
        pairs
            .iter()
            .map(|(k, v, t)| (k.to_string(), json!([v, t])))
            .collect()
    };
    assert!(b
        .update_metadata(&m(&[
            ("X-Container-Meta-A", "1", &ts(1)),
            ("X-Container-Meta-B", "1", &ts(1))
        ]))
        .unwrap());
    assert!(!b
        .update_metadata(&m(&[("X-Container-Meta-A", "0", &ts(0))]))
        .unwrap());
    assert!(b
        .update_metadata(&m(&[
            ("X-Container-Meta-A", "2", &ts(2)),
            ("X-Container-Meta-B", "0", &ts(0))
        ]))
        .unwrap());
    let md = b.metadata().unwrap();
    assert_eq!(md["X-Container-Meta-A"], json!(["2", ts(2)]));
    assert_eq!(md["X-Container-Meta-B"], json!(["1", ts(1)]));
    // Stored as Python's json.dumps writes it.
    let raw = b.get_raw_metadata().unwrap();
    assert!(
        raw.starts_with("{\"X-Container-Meta-A\": [\"2\", "),
        "{raw}"
    );
    // Bad shapes are refused.
    let mut bad = serde_json::Map::new();
    bad.insert("k".into(), json!("v"));
    assert!(matches!(b.update_metadata(&bad), Err(DbError::Invalid(_))));
    // Blank values older than the age are reclaimed; newer stay.
    b.update_metadata(&m(&[
        ("X-Container-Meta-A", "", &ts(3)),
        ("X-Container-Meta-B", "", &ts(10)),
    ]))
    .unwrap();
    let age = Timestamp::parse(&ts(5)).unwrap().as_f64();
    b.reclaim(age, age).unwrap();
    let md = b.metadata().unwrap();
    assert!(!md.contains_key("X-Container-Meta-A"));
    assert!(md.contains_key("X-Container-Meta-B"));
}

#[test]
fn merge_timestamps_and_deleted_state() {
    let dir = tempfile::tempdir().unwrap();
    let b = new_db(dir.path());
    let info = b.get_replication_info().unwrap();
    assert!(!b.is_deleted().unwrap());
    b.merge_timestamps(&info.created_at, "0000000001.00000", &ts(1))
        .unwrap();
    let after = b.get_replication_info().unwrap();
    assert!(b.is_deleted().unwrap());
    assert!(after.status_changed_at > info.status_changed_at);
    assert_eq!(after.delete_timestamp, ts(1));
    // Timestamps only move forward (created_at backward).
    b.merge_timestamps("0000000000.50000", "0000000000.00000", "0")
        .unwrap();
    let again = b.get_replication_info().unwrap();
    assert_eq!(again.created_at, "0000000000.50000");
    assert_eq!(again.put_timestamp, "0000000001.00000");
    assert_eq!(again.delete_timestamp, ts(1));
    assert_eq!(
        again.status_changed_at, after.status_changed_at,
        "no flip, no change"
    );
    // Re-created by a newer PUT.
    b.merge_timestamps(&again.created_at, &ts(2), "0").unwrap();
    assert!(!b.is_deleted().unwrap());
}

#[test]
fn newid_reids_and_records_the_senders_point() {
    let dir = tempfile::tempdir().unwrap();
    let b = new_db(dir.path());
    b.reported("1", "2", 3, 4).unwrap();
    let old_id = b.get_replication_info().unwrap().id;
    b.newid("sender-id").unwrap();
    let info = b.get_replication_info().unwrap();
    assert_ne!(info.id, old_id);
    assert!(info.id.ends_with("-sda"));
    assert_eq!(b.get_sync("sender-id", true).unwrap(), -1, "empty DB");
    assert_eq!(info.reported_put_timestamp, "0");
    assert_eq!(info.reported_object_count, 0);
    b.merge_items(
        (0..3)
            .map(|i| item(&format!("o{i}"), &ts(i), "t"))
            .collect(),
        None,
    )
    .unwrap();
    b.newid("sender-id").unwrap();
    assert_eq!(b.get_sync("sender-id", true).unwrap(), 3);
}

#[test]
fn reclaim_removes_old_tombstones_in_pages_and_keeps_max_row() {
    let dir = tempfile::tempdir().unwrap();
    let b = new_db(dir.path());
    let mut batch = Vec::new();
    for i in 0..12_000u64 {
        batch.push(ObjectItem::tombstone(format!("t{i:05}"), ts(i % 2)));
    }
    batch.push(item("live", &ts(0), "t"));
    batch.push(ObjectItem::tombstone("young", ts(50)));
    b.merge_items(batch, None).unwrap();
    let max_row = b.get_max_row().unwrap();
    let age = Timestamp::parse(&ts(1)).unwrap().as_f64();
    let removed = b.reclaim(age, 0.0).unwrap();
    assert_eq!(removed, 6000, "only tombstones older than the age");
    let rows = b.get_items_since(-1, 100_000).unwrap();
    assert_eq!(rows.len(), 6002);
    assert!(rows.iter().any(|r| r.name == "live") && rows.iter().any(|r| r.name == "young"));
    assert_eq!(b.get_max_row().unwrap(), max_row);
    let mut h = "0".repeat(32);
    for r in &rows {
        h = chexor(&h, &r.name, &r.created_at).unwrap();
    }
    assert_eq!(b.get_replication_info().unwrap().hash, h);
}

#[test]
fn reclaim_drops_sync_rows_not_updated_since() {
    let dir = tempfile::tempdir().unwrap();
    let b = new_db(dir.path());
    b.merge_syncs(&[SyncPoint::new("x", 1)], true).unwrap();
    b.merge_syncs(&[SyncPoint::new("y", 1)], false).unwrap();
    b.reclaim(0.0, 1.0).unwrap();
    assert_eq!(b.get_sync("x", true).unwrap(), 1);
    let future = 4_000_000_000.0;
    b.reclaim(0.0, future).unwrap();
    assert_eq!(b.get_sync("x", true).unwrap(), -1);
    assert_eq!(b.get_sync("y", false).unwrap(), -1);
}

#[test]
fn reclaimable_only_when_deleted_long_enough_and_empty() {
    let dir = tempfile::tempdir().unwrap();
    let b = new_db(dir.path());
    let now = Timestamp::parse(&ts(1000)).unwrap().as_f64();
    assert!(!b.is_reclaimable(now, 10.0).unwrap());
    b.delete_db(&ts(1)).unwrap();
    let info = b.get_replication_info().unwrap();
    assert_eq!(info.status, "DELETED");
    assert!(b.is_reclaimable(now, 10.0).unwrap());
    assert!(!b.is_reclaimable(now, 5000.0).unwrap(), "not old enough");
    b.merge_items(vec![item("o", &ts(0), "t")], None).unwrap();
    assert!(!b.is_reclaimable(now, 10.0).unwrap(), "not empty");
}

#[test]
fn put_object_uses_the_pending_file_and_its_cap() {
    let dir = tempfile::tempdir().unwrap();
    let b = new_db(dir.path());
    b.put_object(&item("o1", &ts(1), "t")).unwrap();
    b.delete_object("o2", &ts(2), 0).unwrap();
    let pending_len = std::fs::metadata(b.pending_file()).unwrap().len();
    assert!(pending_len > 0);
    assert_eq!(b.items_since_no_commit(-1, 10).unwrap().len(), 0);
    assert_eq!(b.get_replication_info().unwrap().max_row, 2);
    assert_eq!(std::fs::metadata(b.pending_file()).unwrap().len(), 0);
    // Past the cap, a put commits everything directly.
    let mut i = 0;
    while std::fs::metadata(b.pending_file()).unwrap().len() <= 131_072 {
        b.put_object(&item(&format!("p{i}"), &ts(3), "t")).unwrap();
        i += 1;
    }
    b.put_object(&item("last", &ts(3), "t")).unwrap();
    assert_eq!(std::fs::metadata(b.pending_file()).unwrap().len(), 0);
    assert_eq!(b.items_since_no_commit(-1, 100_000).unwrap().len(), i + 3);
    // A bad timestamp is refused before anything is written.
    assert!(matches!(
        b.put_object(&item("bad", "yesterday", "t")),
        Err(DbError::Invalid(_))
    ));
}

#[test]
fn bad_pending_entries_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let b = new_db(dir.path());
    b.put_object(&item("good1", &ts(1), "t")).unwrap();
    std::fs::OpenOptions::new()
        .append(true)
        .open(b.pending_file())
        .and_then(|mut f| std::io::Write::write_all(&mut f, b":garbage!!:gAJ9cQAu"))
        .unwrap();
    b.put_object(&item("good2", &ts(1), "t")).unwrap();
    let rows = b.get_items_since(-1, 10).unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, vec!["good1", "good2"]);
}

#[test]
fn corrupt_or_missing_files_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.db");
    assert!(matches!(
        ContainerBroker::open(&missing),
        Err(DbError::NotFound(_))
    ));
    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![0x42u8; 8192]).unwrap();
    let e = ContainerBroker::open_checked(&garbage).unwrap_err();
    assert!(e.is_corrupt(), "{e}");
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    let e = ContainerBroker::open_checked(&empty).unwrap_err();
    assert!(e.is_corrupt(), "{e}");
    // A real DB with the object table dropped.
    let b = new_db(dir.path());
    b.connection().execute_batch("DROP TABLE object").unwrap();
    let e = b.get_items_since(-1, 1).unwrap_err();
    assert!(e.is_corrupt(), "{e}");
}

#[test]
fn quarantine_moves_the_hash_dir() {
    let dir = tempfile::tempdir().unwrap();
    let b = new_db(dir.path());
    let path = b.db_file().to_path_buf();
    drop(b);
    let q = rowsync::db::files::quarantine(&path).unwrap();
    assert_eq!(
        q,
        dir.path()
            .join("sda/quarantined/containers/0123456789abcdef0123456789abcabc")
    );
    assert!(!path.exists());
    let b2 = new_db(dir.path());
    let q2 = rowsync::db::files::quarantine(b2.db_file()).unwrap();
    assert_ne!(q, q2);
    assert!(q2
        .to_string_lossy()
        .contains("0123456789abcdef0123456789abcabc-"));
}

fn names(entries: &[ListingEntry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| match e {
            ListingEntry::Object(o) => o.name.clone(),
            ListingEntry::Subdir(s) => format!("{s}(dir)"),
        })
        .collect()
}

#[test]
fn listings_follow_swifts_order_and_options() {
    let dir = tempfile::tempdir().unwrap();
    let b = new_db(dir.path());
    let all = [
        "a", "a/b", "a/b/c", "a/c", "b", "b/x", "c-1", "c-2", "c/d", "déjà", "z",
    ];
    b.merge_items(all.iter().map(|n| item(n, &ts(1), "t")).collect(), None)
        .unwrap();
    b.merge_items(vec![ObjectItem::tombstone("gone", ts(2))], None)
        .unwrap();
    let list = |f: &dyn Fn(&mut ListingParams)| {
        let mut p = ListingParams::new(10_000);
        f(&mut p);
        names(&b.list_objects(&p).unwrap())
    };
    assert_eq!(
        list(&|_| {}),
        all.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    );
    assert_eq!(list(&|p| p.limit = 3), vec!["a", "a/b", "a/b/c"]);
    assert_eq!(
        list(&|p| p.marker = "b".into()),
        vec!["b/x", "c-1", "c-2", "c/d", "déjà", "z"]
    );
    assert_eq!(
        list(&|p| p.end_marker = "b".into()),
        vec!["a", "a/b", "a/b/c", "a/c"]
    );
    assert_eq!(
        list(&|p| p.prefix = Some("a/".into())),
        vec!["a/b", "a/b/c", "a/c"]
    );
    assert_eq!(
        list(&|p| p.delimiter = Some("/".into())),
        vec!["a", "a/(dir)", "b", "b/(dir)", "c-1", "c-2", "c/(dir)", "déjà", "z"]
    );
    assert_eq!(
        list(&|p| {
            p.prefix = Some("a/".into());
            p.delimiter = Some("/".into());
        }),
        vec!["a/b", "a/b/(dir)", "a/c"]
    );
    assert_eq!(
        list(&|p| p.delimiter = Some("-".into())),
        vec!["a", "a/b", "a/b/c", "a/c", "b", "b/x", "c-(dir)", "c/d", "déjà", "z"]
    );
    assert_eq!(
        list(&|p| p.reverse = true),
        all.iter().rev().map(|s| s.to_string()).collect::<Vec<_>>()
    );
    assert_eq!(
        list(&|p| {
            p.reverse = true;
            p.marker = "c-1".into();
            p.limit = 2;
        }),
        vec!["b/x", "b"]
    );
    assert_eq!(
        list(&|p| {
            p.reverse = true;
            p.delimiter = Some("/".into());
        }),
        vec!["z", "déjà", "c/(dir)", "c-2", "c-1", "b/(dir)", "b", "a/(dir)", "a"]
    );
    assert_eq!(list(&|p| p.path = Some("a".into())), vec!["a/b", "a/c"]);
    assert_eq!(list(&|p| p.include_deleted = Some(true)), vec!["gone"]);
    assert_eq!(
        list(&|p| {
            p.delimiter = Some("/".into());
            p.marker = "a/".into();
        }),
        vec!["b", "b/(dir)", "c-1", "c-2", "c/(dir)", "déjà", "z"]
    );
}
