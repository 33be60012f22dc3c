//! Merges with SQLite's triggers switched off write exactly what Swift's
//! triggers would have: random merges (new rows, overwrites, deletes,
//! reverts, policy changes, pending records) applied both ways give the
//! same rows, counts, bytes, per-policy stats and hash.

mod common;

use common::ts;
use proptest::prelude::*;
use rowsync::db::{AccountBroker, ContainerBroker};
use rowsync::swift::container_row::ContainerItem;
use rowsync::swift::merge::ObjectItem;
use rowsync::swift::Timestamp;

/// Every row and every stat of a DB, read with plain SQL.
fn dump(
    conn: &rusqlite::Connection,
    rows_sql: &str,
    stat_sql: &str,
) -> (Vec<String>, Vec<String>, String) {
    let all = |sql: &str| -> Vec<String> {
        let mut q = conn.prepare(sql).unwrap();
        let n = q.column_count();
        q.query_map([], |r| {
            Ok((0..n)
                .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
                .collect::<Vec<_>>()
                .join("|"))
        })
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
    };
    let stat = all(stat_sql).join("\n");
    (
        all(rows_sql),
        all("SELECT * FROM policy_stat ORDER BY storage_policy_index"),
        stat,
    )
}

#[derive(Debug, Clone)]
struct Obj {
    name: u8,
    t: u64,
    deleted: bool,
    size: i64,
    policy: i64,
    meta: Option<u64>,
}

fn obj_strategy() -> impl Strategy<Value = Obj> {
    (
        0u8..12,
        0u64..20,
        any::<bool>(),
        0i64..5000,
        0i64..3,
        proptest::option::of(0u64..25),
    )
        .prop_map(|(name, t, deleted, size, policy, meta)| Obj {
            name,
            t,
            deleted,
            size,
            policy,
            meta,
        })
}

fn to_item(o: &Obj, rowid: i64) -> ObjectItem {
    let name = format!("o{}", o.name);
    let mut it = if o.deleted {
        ObjectItem::tombstone(name, ts(o.t))
    } else {
        ObjectItem::new(name, ts(o.t), o.size, "text/plain", "etag")
    };
    it.storage_policy_index = o.policy;
    it.meta_timestamp = o.meta.map(ts);
    it.rowid = Some(rowid);
    it
}

fn container(dir: &std::path::Path, name: &str, trigger_free: bool) -> ContainerBroker {
    let path = dir.join(format!("sda/containers/0/{name}/{name}.db"));
    let mut b = ContainerBroker::create(
        &path,
        "a",
        "c",
        Some(Timestamp::parse("1.00000").unwrap()),
        0,
    )
    .unwrap();
    b.set_trigger_free_merges(trigger_free).unwrap();
    assert_eq!(b.trigger_free_merges(), trigger_free);
    b
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn container_merges_without_triggers_match_swifts_triggers(
        batches in proptest::collection::vec(proptest::collection::vec(obj_strategy(), 1..40), 1..6),
        pending in proptest::collection::vec(obj_strategy(), 0..10),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let with = container(dir.path(), "aaa", false);
        let without = container(dir.path(), "bbb", true);
        let mut rowid = 0;
        for batch in &batches {
            let items: Vec<ObjectItem> = batch.iter().map(|o| { rowid += 1; to_item(o, rowid) }).collect();
            for b in [&with, &without] {
                b.merge_items(items.clone(), Some("peer")).unwrap();
            }
        }
        for o in &pending {
            let mut it = to_item(o, 0);
            it.rowid = None;
            for b in [&with, &without] {
                b.put_object(&it).unwrap();
            }
        }
        let rows = "SELECT ROWID, name, created_at, size, content_type, etag, deleted, storage_policy_index FROM object ORDER BY ROWID";
        let stat = "SELECT hash, object_count, bytes_used FROM container_stat";
        for b in [&with, &without] {
            b.commit_pending().unwrap();
        }
        let a = dump(with.connection(), rows, stat);
        let b = dump(without.connection(), rows, stat);
        prop_assert_eq!(&a, &b);
        prop_assert_eq!(with.get_info().unwrap().hash, without.get_info().unwrap().hash);
        prop_assert_eq!(with.get_sync("peer", true).unwrap(), without.get_sync("peer", true).unwrap());
    }
}

#[derive(Debug, Clone)]
struct Cont {
    name: u8,
    put: u64,
    del: Option<u64>,
    objects: i64,
    bytes: i64,
    policy: i64,
}

fn cont_strategy() -> impl Strategy<Value = Cont> {
    (
        0u8..10,
        0u64..20,
        proptest::option::of(0u64..25),
        0i64..4,
        0i64..1000,
        0i64..3,
    )
        .prop_map(|(name, put, del, objects, bytes, policy)| Cont {
            name,
            put,
            del,
            objects,
            bytes,
            policy,
        })
}

fn to_row(c: &Cont, rowid: i64) -> ContainerItem {
    let mut it = ContainerItem::update(
        format!("c{}", c.name),
        ts(c.put),
        c.del.map(ts).unwrap_or_else(|| "0".into()),
        c.objects,
        c.bytes,
        c.policy,
    )
    .unwrap();
    it.rowid = Some(rowid);
    it
}

fn account(dir: &std::path::Path, name: &str, trigger_free: bool) -> AccountBroker {
    let path = dir.join(format!("sda/accounts/0/{name}/{name}.db"));
    let mut b =
        AccountBroker::create(&path, "AUTH_a", Some(Timestamp::parse("1.00000").unwrap())).unwrap();
    b.set_trigger_free_merges(trigger_free).unwrap();
    assert_eq!(b.trigger_free_merges(), trigger_free);
    b
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn account_merges_without_triggers_match_swifts_triggers(
        batches in proptest::collection::vec(proptest::collection::vec(cont_strategy(), 1..30), 1..6),
        pending in proptest::collection::vec(cont_strategy(), 0..10),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let with = account(dir.path(), "aaa", false);
        let without = account(dir.path(), "bbb", true);
        let mut rowid = 0;
        for batch in &batches {
            let items: Vec<ContainerItem> = batch.iter().map(|c| { rowid += 1; to_row(c, rowid) }).collect();
            for b in [&with, &without] {
                b.merge_items(items.clone(), Some("peer")).unwrap();
            }
        }
        for c in &pending {
            let it = to_row(c, 0);
            for b in [&with, &without] {
                b.put_container(&it.name, &it.put_timestamp, &it.delete_timestamp, it.object_count, it.bytes_used, it.storage_policy_index).unwrap();
            }
        }
        for b in [&with, &without] {
            b.commit_pending().unwrap();
        }
        let rows = "SELECT ROWID, name, put_timestamp, delete_timestamp, object_count, bytes_used, deleted, storage_policy_index FROM container ORDER BY ROWID";
        let stat = "SELECT hash, container_count, object_count, bytes_used FROM account_stat";
        let a = dump(with.connection(), rows, stat);
        let b = dump(without.connection(), rows, stat);
        prop_assert_eq!(&a, &b);
        prop_assert_eq!(with.get_sync("peer", true).unwrap(), without.get_sync("peer", true).unwrap());
    }
}

#[test]
fn triggers_stay_in_the_schema_and_work_for_other_writers() {
    let dir = tempfile::tempdir().unwrap();
    let b = container(dir.path(), "ccc", true);
    b.merge_items(
        vec![to_item(
            &Obj {
                name: 1,
                t: 1,
                deleted: false,
                size: 10,
                policy: 0,
                meta: None,
            },
            1,
        )],
        None,
    )
    .unwrap();
    // Another writer (Swift, say) inserting with plain SQL still gets the
    // triggers' bookkeeping: they were only off inside the merge.
    b.connection()
        .execute(
            "INSERT INTO object (name, created_at, size, content_type, etag, deleted, storage_policy_index)
             VALUES ('x', '1700000000.00000', 5, 't', 'e', 0, 0)",
            [],
        )
        .unwrap();
    let info = b.get_info().unwrap();
    assert_eq!((info.count, info.bytes_used), (2, 15));
    let n: i64 = b
        .connection()
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'trigger'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(n >= 7, "{n} triggers");
}

#[test]
fn sync_tables_keep_their_updated_at_after_a_trigger_free_merge() {
    let dir = tempfile::tempdir().unwrap();
    let b = container(dir.path(), "ddd", true);
    b.merge_items(
        vec![to_item(
            &Obj {
                name: 1,
                t: 1,
                deleted: false,
                size: 10,
                policy: 0,
                meta: None,
            },
            7,
        )],
        Some("peer"),
    )
    .unwrap();
    let at = b.get_syncs_with_time(true).unwrap();
    assert_eq!(at.len(), 1);
    assert_ne!(at[0].updated_at.as_deref(), Some("0"), "{at:?}");
}
