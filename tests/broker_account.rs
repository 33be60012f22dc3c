//! The account broker against the Swift-made account DB and Swift's
//! account rules (`test/unit/account/test_backend.py` cases, rewritten).

mod common;

use std::path::{Path, PathBuf};

use common::{dbs_json, fixtures, ts};

use rowsync::db::account::AccountListingParams;
use rowsync::db::{AccountBroker, AccountListingEntry, DbInfo, SyncPoint};
use rowsync::swift::container_row::ContainerItem;
use rowsync::swift::{chexor, Timestamp};

const FIXTURE_DB: &str =
    "node/sdb1/accounts/5/8d2/30568ee9a7dea8e4aafb5ebcc7d698d2/30568ee9a7dea8e4aafb5ebcc7d698d2.db";

/// A temp copy of the Swift-made account DB (and its pending file).
fn fixture_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let src = fixtures().join(FIXTURE_DB);
    let dst = dir.path().join(FIXTURE_DB);
    std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
    std::fs::copy(&src, &dst).unwrap();
    let pending = src.with_extension("db.pending");
    if pending.exists() {
        std::fs::copy(&pending, dst.with_extension("db.pending")).unwrap();
    }
    (dir, dst)
}

fn new_account(dir: &Path) -> AccountBroker {
    let path = dir.join(
        "sda/accounts/0/abc/0123456789abcdef0123456789abcabc/0123456789abcdef0123456789abcabc.db",
    );
    AccountBroker::create(&path, "AUTH_test", Some(Timestamp::parse(&ts(0)).unwrap())).unwrap()
}

fn row(name: &str, put: &str, del: &str, count: i64) -> ContainerItem {
    ContainerItem::update(name, put, del, count, count * 100, 0).unwrap()
}

/// Every stored row: (ROWID, name, put, delete, objects, bytes, deleted, policy).
fn rows(b: &AccountBroker) -> Vec<ContainerItem> {
    b.get_items_since(-1, 100_000).unwrap()
}

#[test]
fn swift_made_account_db_gives_swifts_replication_info_and_rows() {
    let (_dir, path) = fixture_copy();
    let b = AccountBroker::open_checked(&path).unwrap();
    let expected = &dbs_json()["account_db"];
    let info = serde_json::to_value(b.get_replication_info().unwrap()).unwrap();
    assert_eq!(info, expected["replication_info"]);
    let got = serde_json::to_value(b.get_items_since(-1, 1000).unwrap()).unwrap();
    assert_eq!(got, expected["items_since_-1"]);
    // The stored hash is the chexor of every row, as Swift's triggers keep it.
    let mut h = "0".repeat(32);
    for r in rows(&b) {
        let key = format!(
            "{}-{}-{}-{}",
            r.put_timestamp, r.delete_timestamp, r.object_count, r.bytes_used
        );
        h = chexor(&h, &r.name, &key).unwrap();
    }
    assert_eq!(b.get_info().unwrap().hash, h);
}

#[test]
fn new_account_db_has_swifts_schema_names_and_stat_row() {
    let dir = tempfile::tempdir().unwrap();
    let b = new_account(dir.path());
    let names = |p: &Path| -> Vec<(String, String)> {
        let c = rusqlite::Connection::open(p).unwrap();
        let mut q = c
            .prepare("SELECT type, name FROM sqlite_master ORDER BY type, name")
            .unwrap();
        q.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    };
    assert_eq!(names(b.db_file()), names(&fixtures().join(FIXTURE_DB)));
    let info = b.get_replication_info().unwrap();
    assert_eq!(info.account, "AUTH_test");
    assert_eq!(info.put_timestamp, ts(0));
    assert_eq!(info.status_changed_at, ts(0));
    assert_eq!(info.delete_timestamp, "0");
    assert_eq!((info.count, info.object_count, info.max_row), (0, 0, -1));
    assert_eq!(info.hash, "0".repeat(32));
    assert!(info.id.ends_with("-sda"), "{}", info.id);
    let keys: Vec<String> = serde_json::to_value(&info)
        .unwrap()
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(
        keys,
        [
            "account",
            "created_at",
            "put_timestamp",
            "delete_timestamp",
            "status_changed_at",
            "object_count",
            "bytes_used",
            "hash",
            "id",
            "count",
            "metadata",
            "max_row"
        ]
    );
}

#[test]
fn put_container_goes_through_the_pending_file_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let b = new_account(dir.path());
    b.put_container("c1", &ts(1), "0", 3, 300, 0).unwrap();
    b.put_container("c2", &ts(2), "0", 1, 10, 1).unwrap();
    assert!(std::fs::metadata(b.pending_file()).unwrap().len() > 0);
    let info = b.get_info().unwrap();
    assert_eq!(std::fs::metadata(b.pending_file()).unwrap().len(), 0);
    assert_eq!(
        (info.count, info.object_count, info.bytes_used),
        (2, 4, 310)
    );
    let stats = b.get_policy_stats().unwrap();
    assert_eq!(stats.len(), 2);
    assert_eq!(
        (
            stats[1].storage_policy_index,
            stats[1].container_count,
            stats[1].object_count
        ),
        (1, Some(1), 1)
    );
    // A delete newer than the put, with no objects: the row is a tombstone.
    b.put_container("c1", "0", &ts(3), 0, 0, 0).unwrap();
    let info = b.get_info().unwrap();
    assert_eq!((info.count, info.object_count), (1, 1));
    let c1 = rows(&b).into_iter().find(|r| r.name == "c1").unwrap();
    assert_eq!((c1.put_timestamp.as_str(), c1.deleted), (ts(1).as_str(), 1));
    // A re-PUT after the delete revives it.
    b.put_container("c1", &ts(4), "0", 0, 0, 0).unwrap();
    assert_eq!(b.get_info().unwrap().count, 2);
}

#[test]
fn merge_keeps_newest_timestamps_and_takes_incoming_counts() {
    let dir = tempfile::tempdir().unwrap();
    let b = new_account(dir.path());
    b.merge_items(vec![row("c", &ts(5), "0", 7)], None).unwrap();
    // An older put with other counts: the put stays, the counts change
    // (Swift's rule).
    b.merge_items(vec![row("c", &ts(3), "0", 2)], None).unwrap();
    let r = &rows(&b)[0];
    assert_eq!(
        (r.put_timestamp.as_str(), r.object_count),
        (ts(5).as_str(), 2)
    );
    // An older delete does not delete.
    b.merge_items(vec![row("c", "0", &ts(4), 0)], None).unwrap();
    let r = &rows(&b)[0];
    assert_eq!(
        (r.delete_timestamp.as_str(), r.deleted),
        (ts(4).as_str(), 0)
    );
    // A newer delete with no objects does.
    b.merge_items(vec![row("c", "0", &ts(6), 0)], None).unwrap();
    let r = &rows(&b)[0];
    assert_eq!(r.deleted, 1);
    assert_eq!(b.get_info().unwrap().count, 0);
}

#[test]
fn identical_rows_are_not_rewritten_and_the_sync_point_still_advances() {
    let dir = tempfile::tempdir().unwrap();
    let b = new_account(dir.path());
    let mut items: Vec<ContainerItem> = (0..5)
        .map(|i| row(&format!("c{i}"), &ts(i + 1), "0", i as i64))
        .collect();
    b.merge_items(items.clone(), None).unwrap();
    let before = rows(&b);
    let max_row = b.get_max_row().unwrap();
    for (i, it) in items.iter_mut().enumerate() {
        it.rowid = Some(40 + i as i64);
    }
    let out = b.merge_items(items, Some("peer")).unwrap();
    assert_eq!(out.inserted, 0);
    assert_eq!(rows(&b), before);
    assert_eq!(b.get_max_row().unwrap(), max_row);
    assert_eq!(b.get_sync("peer", true).unwrap(), 44);
}

#[test]
fn a_batch_with_the_same_name_twice_merges_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let b = new_account(dir.path());
    b.merge_items(
        vec![row("c", &ts(2), "0", 1), row("c", &ts(1), &ts(3), 0)],
        None,
    )
    .unwrap();
    let r = rows(&b);
    assert_eq!(r.len(), 1);
    assert_eq!(
        (
            r[0].put_timestamp.as_str(),
            r[0].delete_timestamp.as_str(),
            r[0].deleted
        ),
        (ts(2).as_str(), ts(3).as_str(), 1)
    );
}

#[test]
fn deleted_state_follows_swifts_account_rule() {
    let dir = tempfile::tempdir().unwrap();
    let b = new_account(dir.path());
    b.put_container("c", &ts(1), "0", 0, 0, 0).unwrap();
    assert!(!b.is_deleted().unwrap());
    // A newer delete timestamp alone does not delete an account with containers.
    b.merge_timestamps(&ts(0), &ts(0), &ts(9)).unwrap();
    assert!(!b.is_deleted().unwrap());
    b.put_container("c", "0", &ts(2), 0, 0, 0).unwrap();
    assert!(b.is_deleted().unwrap());
    // delete_db sets status DELETED and blanks metadata.
    let dir2 = tempfile::tempdir().unwrap();
    let b2 = new_account(dir2.path());
    b2.put_container("c", &ts(1), "0", 1, 1, 0).unwrap();
    let mut md = serde_json::Map::new();
    md.insert("X-Account-Meta-K".into(), serde_json::json!(["v", ts(1)]));
    b2.update_metadata(&md).unwrap();
    b2.delete_db(&ts(5)).unwrap();
    assert!(b2.is_deleted().unwrap());
    assert!(b2.is_status_deleted().unwrap());
    assert_eq!(b2.metadata().unwrap()["X-Account-Meta-K"][0], "");
}

#[test]
fn reclaim_removes_old_container_tombstones_by_delete_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let b = new_account(dir.path());
    b.merge_items(
        vec![
            row("old", &ts(1), &ts(2), 0),
            row("new", &ts(1), &ts(50), 0),
            row("live", &ts(1), "0", 3),
        ],
        None,
    )
    .unwrap();
    let hash_before = b.get_info().unwrap().hash;
    let max_row = b.get_max_row().unwrap();
    let age = Timestamp::parse(&ts(10)).unwrap().as_f64();
    assert_eq!(b.reclaim(age, age).unwrap(), 1);
    let names: Vec<String> = rows(&b).into_iter().map(|r| r.name).collect();
    assert_eq!(names, ["new", "live"]);
    assert_ne!(b.get_info().unwrap().hash, hash_before);
    assert_eq!(b.get_max_row().unwrap(), max_row);
}

#[test]
fn reclaimable_only_when_empty_and_deleted_long_ago() {
    let dir = tempfile::tempdir().unwrap();
    let b = new_account(dir.path());
    let now = Timestamp::parse(&ts(1000)).unwrap().as_f64();
    b.put_container("c", &ts(1), "0", 0, 0, 0).unwrap();
    b.delete_db(&ts(2)).unwrap();
    use rowsync::db::DbKind;
    // Still has a live container.
    assert!(!rowsync::db::Account::is_reclaimable(&b, now, 10.0).unwrap());
    b.put_container("c", "0", &ts(3), 0, 0, 0).unwrap();
    assert!(rowsync::db::Account::is_reclaimable(&b, now, 10.0).unwrap());
    // Not yet past reclaim_age.
    assert!(!rowsync::db::Account::is_reclaimable(&b, now, 1e9).unwrap());
}

#[test]
fn listings_with_prefix_delimiter_markers_and_reverse() {
    let dir = tempfile::tempdir().unwrap();
    let b = new_account(dir.path());
    let names = ["a", "a/1", "a/2", "b", "b-1", "c", "gone"];
    let items = names
        .iter()
        .enumerate()
        .map(|(i, n)| row(n, &ts(i as u64 + 1), "0", 1))
        .collect();
    b.merge_items(items, None).unwrap();
    b.put_container("gone", "0", &ts(99), 0, 0, 0).unwrap();
    let list = |p: AccountListingParams| -> Vec<String> {
        b.list_containers(&p)
            .unwrap()
            .into_iter()
            .map(|e| match e {
                AccountListingEntry::Container { name, .. } => name,
                AccountListingEntry::Subdir(d) => format!("{d}*"),
            })
            .collect()
    };
    let p = |limit: usize| AccountListingParams {
        limit,
        ..Default::default()
    };
    assert_eq!(list(p(100)), ["a", "a/1", "a/2", "b", "b-1", "c"]);
    assert_eq!(list(p(2)), ["a", "a/1"]);
    assert_eq!(
        list(AccountListingParams {
            marker: "a/2".into(),
            end_marker: "c".into(),
            ..p(100)
        }),
        ["b", "b-1"]
    );
    assert_eq!(
        list(AccountListingParams {
            delimiter: Some("/".into()),
            ..p(100)
        }),
        ["a", "a/*", "b", "b-1", "c"]
    );
    assert_eq!(
        list(AccountListingParams {
            prefix: Some("b".into()),
            delimiter: Some("-".into()),
            ..p(100)
        }),
        ["b", "b-*"]
    );
    assert_eq!(
        list(AccountListingParams {
            reverse: true,
            ..p(3)
        }),
        ["c", "b-1", "b"]
    );
}

#[test]
fn sync_tables_and_newid_are_shared_with_containers() {
    let dir = tempfile::tempdir().unwrap();
    let b = new_account(dir.path());
    b.merge_items(vec![row("c", &ts(1), "0", 1)], None).unwrap();
    b.merge_syncs(&[SyncPoint::new("x", 5)], true).unwrap();
    b.merge_syncs(&[SyncPoint::new("x", 3)], true).unwrap();
    assert_eq!(b.get_sync("x", true).unwrap(), 5);
    let old = b.get_info().unwrap().id;
    let new = b.newid("shipper").unwrap();
    assert_ne!(old, new);
    assert_eq!(b.get_sync("shipper", true).unwrap(), 1);
    assert_eq!(b.get_replication_info().unwrap().id(), new);
}

#[test]
fn pre_policy_account_db_is_migrated_on_first_merge() {
    let dir = tempfile::tempdir().unwrap();
    let b = new_account(dir.path());
    b.put_container("c", &ts(1), "0", 2, 20, 0).unwrap();
    b.get_info().unwrap();
    drop(b);
    let path = dir.path().join(
        "sda/accounts/0/abc/0123456789abcdef0123456789abcabc/0123456789abcdef0123456789abcabc.db",
    );
    {
        // Make it look like a DB from before storage policies.
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(
            "DROP TRIGGER container_insert_ps; DROP TRIGGER container_delete_ps;
             DROP TABLE policy_stat;
             ALTER TABLE container DROP COLUMN storage_policy_index;",
        )
        .unwrap();
    }
    let b = AccountBroker::open(&path).unwrap();
    b.merge_items(vec![row("d", &ts(2), "0", 1)], None).unwrap();
    let info = b.get_info().unwrap();
    assert_eq!((info.count, info.object_count), (2, 3));
    let stats = b.get_policy_stats().unwrap();
    assert_eq!(stats.len(), 1);
    assert_eq!(stats[0].container_count, Some(2));
    assert_eq!(stats[0].object_count, 3);
}
