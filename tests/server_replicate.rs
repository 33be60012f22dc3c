//! REPLICATE over real HTTP on loopback: every op, every bad input, and a
//! hand-driven exchange between two servers.

mod common;

use common::*;
use rowsync::db::shard::ShardRange;
use rowsync::db::{ContainerBroker, SyncPoint};
use rowsync::replication::wire::ReplicateOp;
use rowsync::swift::merge::ObjectItem;
use serde_json::Value;

const PART: u32 = 7;

fn hash_of(a: &str, c: &str) -> String {
    hash_conf().hash_path(a, Some(c), None).unwrap()
}

fn rows(b: &ContainerBroker) -> Vec<(String, String, String)> {
    let mut v: Vec<_> = b
        .get_items_since(-1, 1_000_000)
        .unwrap()
        .into_iter()
        .map(|r| (r.name, r.created_at, r.content_type))
        .collect();
    v.sort();
    v
}

async fn upload(
    client: &reqwest::Client,
    node: &TestNode,
    device: &str,
    name: &str,
    file: &std::path::Path,
) -> u16 {
    let method = reqwest::Method::from_bytes(b"REPLICATE").unwrap();
    client
        .request(method, node.url(&format!("/{device}/tmp/{name}")))
        .header("content-type", "application/x-sqlite3")
        .body(std::fs::read(file).unwrap())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn sync_answers_info_and_merges_metadata_and_timestamps() {
    let mut node = TestNode::start(&["sda"]).await;
    let client = reqwest::Client::new();
    let h = hash_of("a", "c");
    let path = format!("/sda/{PART}/{h}");
    // Missing DB: 404, and the tmp dir now exists for an incoming transfer.
    let local_dir = tempfile::tempdir().unwrap();
    let local = create_db_at(&local_dir.path().join("x.db"), "a", "c");
    local
        .merge_items(
            (0..5).map(|i| obj(&format!("o{i}"), &ts(i), "t")).collect(),
            None,
        )
        .unwrap();
    let meta: serde_json::Map<String, Value> = serde_json::from_str(&format!(
        r#"{{"X-Container-Meta-Color": ["red", "{}"]}}"#,
        ts(9)
    ))
    .unwrap();
    local.update_metadata(&meta).unwrap();
    local
        .merge_timestamps("1600000000.00000", &ts(3), "0")
        .unwrap();
    let (st, _) = replicate(&client, &node, &path, sync_op(&local).to_body()).await;
    assert_eq!(st, 404);
    assert!(node.devices.join("sda/tmp").is_dir());

    let remote = node.create_db("sda", PART, "a", "c");
    let (st, body) = replicate(&client, &node, &path, sync_op(&local).to_body()).await;
    assert_eq!(st, 200);
    let info: Value = serde_json::from_slice(&body).unwrap();
    for key in [
        "account",
        "container",
        "created_at",
        "put_timestamp",
        "delete_timestamp",
        "status",
        "status_changed_at",
        "bytes_used",
        "reported_put_timestamp",
        "reported_delete_timestamp",
        "reported_object_count",
        "reported_bytes_used",
        "hash",
        "id",
        "x_container_sync_point1",
        "x_container_sync_point2",
        "storage_policy_index",
        "db_state",
        "count",
        "metadata",
        "max_row",
        "shard_max_row",
        "point",
    ] {
        assert!(info.get(key).is_some(), "sync answer lacks {key}: {info}");
    }
    assert_eq!(info["point"], -1);
    assert_eq!(info["max_row"], -1);
    // The answer is the info from before the merge; the DB has merged since.
    let after = remote.get_replication_info().unwrap();
    assert_eq!(after.created_at, "1600000000.00000");
    assert_eq!(after.put_timestamp, ts(3));
    assert_eq!(
        remote.metadata().unwrap()["X-Container-Meta-Color"][0],
        "red"
    );
    // Equal hashes advance the receiver's point to the sender's max_row.
    remote
        .merge_items(local.get_items_since(-1, 100).unwrap(), None)
        .unwrap();
    let (st, body) = replicate(&client, &node, &path, sync_op(&local).to_body()).await;
    assert_eq!(st, 200);
    let info: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(info["point"], 5);
    assert_eq!(
        remote
            .get_sync(&local.get_info().unwrap().id, true)
            .unwrap(),
        5
    );
    node.stop().await;
}

#[tokio::test]
async fn merge_items_and_merge_syncs_over_http() {
    let mut node = TestNode::start(&["sda"]).await;
    let client = reqwest::Client::new();
    let h = hash_of("a", "c");
    let path = format!("/sda/{PART}/{h}");
    let remote = node.create_db("sda", PART, "a", "c");
    remote
        .merge_items(
            (0..10)
                .map(|i| obj(&format!("o{i}"), &ts(100 + i), "new"))
                .collect(),
            None,
        )
        .unwrap();
    // The seed's case: older rows only; the point still moves to the last ROWID.
    let mut items: Vec<ObjectItem> = (0..10)
        .map(|i| obj(&format!("o{i}"), &ts(i), "old"))
        .collect();
    for (i, it) in items.iter_mut().enumerate() {
        it.rowid = Some(11 + i as i64);
    }
    let op = ReplicateOp::<rowsync::swift::merge::ObjectItem>::MergeItems {
        items,
        source: Some("sender-db".into()),
    };
    let (st, _) = replicate(&client, &node, &path, op.to_body()).await;
    assert_eq!(st, 202);
    assert_eq!(remote.get_sync("sender-db", true).unwrap(), 20);
    assert!(rows(&remote).iter().all(|r| r.2 == "new"));
    // Empty batch: accepted, nothing changes.
    let op = ReplicateOp::<rowsync::swift::merge::ObjectItem>::MergeItems {
        items: vec![],
        source: Some("sender-db".into()),
    };
    assert_eq!(replicate(&client, &node, &path, op.to_body()).await.0, 202);
    assert_eq!(remote.get_sync("sender-db", true).unwrap(), 20);
    // merge_syncs: max wins, and the receiver's own id is dropped.
    let own = remote.get_info().unwrap().id;
    let op = ReplicateOp::<rowsync::swift::merge::ObjectItem>::MergeSyncs(vec![
        SyncPoint::new("sender-db", 7),
        SyncPoint::new("third", 42),
        SyncPoint::new(own.clone(), 99),
    ]);
    assert_eq!(replicate(&client, &node, &path, op.to_body()).await.0, 202);
    assert_eq!(remote.get_sync("sender-db", true).unwrap(), 20);
    assert_eq!(remote.get_sync("third", true).unwrap(), 42);
    assert_eq!(remote.get_sync(&own, true).unwrap(), -1);
    node.stop().await;
}

#[tokio::test]
async fn shard_range_ops() {
    let mut node = TestNode::start(&["sda"]).await;
    let client = reqwest::Client::new();
    let path = format!("/sda/{PART}/{}", hash_of("a", "c"));
    let remote = node.create_db("sda", PART, "a", "c");
    let (st, body) = replicate(
        &client,
        &node,
        &path,
        ReplicateOp::<rowsync::swift::merge::ObjectItem>::GetShardRanges.to_body(),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap(),
        Value::Array(vec![])
    );
    let sr = ShardRange {
        name: ".shards_a/c-1".into(),
        timestamp: ts(1),
        lower: "".into(),
        upper: "m".into(),
        object_count: 3,
        bytes_used: 4,
        meta_timestamp: ts(1),
        deleted: 0,
        state: 20,
        state_timestamp: ts(1),
        epoch: None,
        reported: 0,
        tombstones: -1,
    };
    let op = ReplicateOp::<rowsync::swift::merge::ObjectItem>::MergeShardRanges {
        ranges: vec![sr.clone()],
        source: Some("x".into()),
    };
    assert_eq!(replicate(&client, &node, &path, op.to_body()).await.0, 202);
    let (_, body) = replicate(
        &client,
        &node,
        &path,
        ReplicateOp::<rowsync::swift::merge::ObjectItem>::GetShardRanges.to_body(),
    )
    .await;
    let got: Vec<ShardRange> = serde_json::from_slice(&body).unwrap();
    assert_eq!(got, vec![sr]);
    assert_eq!(
        remote.get_replication_info().unwrap().shard_max_row,
        Some(1)
    );
    node.stop().await;
}

#[tokio::test]
async fn complete_rsync_takes_a_checked_file() {
    let mut node = TestNode::start(&["sda"]).await;
    let client = reqwest::Client::new();
    let h = hash_of("a", "c");
    let path = format!("/sda/{PART}/{h}");
    let src_dir = tempfile::tempdir().unwrap();
    let src = create_db_at(&src_dir.path().join("src.db"), "a", "c");
    src.merge_items(
        (0..4).map(|i| obj(&format!("o{i}"), &ts(i), "t")).collect(),
        None,
    )
    .unwrap();
    let src_id = src.get_info().unwrap().id;
    // A missing tmp file: 404.
    let op = ReplicateOp::<rowsync::swift::merge::ObjectItem>::CompleteRsync {
        tmp_name: src_id.clone(),
        db_basename: Some(format!("{h}.db")),
    };
    assert_eq!(replicate(&client, &node, &path, op.to_body()).await.0, 404);
    // Unsafe names are refused.
    for (tmp, base) in [
        ("../x", format!("{h}.db")),
        ("ok", "../../evil.db".to_string()),
        ("ok", "other.db".into()),
    ] {
        let op = ReplicateOp::<rowsync::swift::merge::ObjectItem>::CompleteRsync {
            tmp_name: tmp.into(),
            db_basename: Some(base),
        };
        assert_eq!(replicate(&client, &node, &path, op.to_body()).await.0, 400);
    }
    // A DB of another container is refused and removed.
    let other = create_db_at(&src_dir.path().join("other.db"), "a", "other");
    assert_eq!(
        upload(&client, &node, "sda", "wrong", other.db_file()).await,
        201
    );
    let op = ReplicateOp::<rowsync::swift::merge::ObjectItem>::CompleteRsync {
        tmp_name: "wrong".into(),
        db_basename: None,
    };
    assert_eq!(replicate(&client, &node, &path, op.to_body()).await.0, 400);
    assert!(!node.devices.join("sda/tmp/wrong").exists());
    // Not a DB at all.
    std::fs::write(node.devices.join("sda/tmp/junk"), b"junk junk junk").unwrap();
    let op = ReplicateOp::<rowsync::swift::merge::ObjectItem>::CompleteRsync {
        tmp_name: "junk".into(),
        db_basename: None,
    };
    assert_eq!(replicate(&client, &node, &path, op.to_body()).await.0, 400);
    // The real thing.
    assert_eq!(
        upload(&client, &node, "sda", &src_id, src.db_file()).await,
        201
    );
    let op = ReplicateOp::<rowsync::swift::merge::ObjectItem>::CompleteRsync {
        tmp_name: src_id.clone(),
        db_basename: Some(format!("{h}.db")),
    };
    assert_eq!(replicate(&client, &node, &path, op.to_body()).await.0, 204);
    let db = ContainerBroker::open(node.db_path("sda", PART, "a", "c")).unwrap();
    assert_eq!(rows(&db), rows(&src));
    let info = db.get_info().unwrap();
    assert_ne!(info.id, src_id);
    assert!(info.id.ends_with("-sda"), "{}", info.id);
    assert_eq!(db.get_sync(&src_id, true).unwrap(), 4);
    // A second ship finds the DB in place: 404, nothing replaced.
    assert_eq!(
        upload(&client, &node, "sda", &src_id, src.db_file()).await,
        201
    );
    assert_eq!(replicate(&client, &node, &path, op.to_body()).await.0, 404);
    node.stop().await;
}

#[tokio::test]
async fn rsync_then_merge_keeps_local_rows_and_the_senders_point() {
    let mut node = TestNode::start(&["sda"]).await;
    let client = reqwest::Client::new();
    let h = hash_of("a", "c");
    let path = format!("/sda/{PART}/{h}");
    let existing = node.create_db("sda", PART, "a", "c");
    existing
        .merge_items(
            (0..5)
                .map(|i| obj(&format!("mine{i}"), &ts(i), "t"))
                .collect(),
            None,
        )
        .unwrap();
    let meta: serde_json::Map<String, Value> = serde_json::from_str(&format!(
        r#"{{"X-Container-Meta-Keep": ["yes", "{}"]}}"#,
        ts(1)
    ))
    .unwrap();
    existing.update_metadata(&meta).unwrap();
    let src_dir = tempfile::tempdir().unwrap();
    let src = create_db_at(&src_dir.path().join("src.db"), "a", "c");
    src.merge_items(
        (0..10)
            .map(|i| obj(&format!("theirs{i}"), &ts(i), "t"))
            .collect(),
        None,
    )
    .unwrap();
    let src_id = src.get_info().unwrap().id;
    // No tmp file yet: 404.
    let op = ReplicateOp::<rowsync::swift::merge::ObjectItem>::RsyncThenMerge {
        tmp_name: src_id.clone(),
        db_basename: Some(format!("{h}.db")),
    };
    assert_eq!(replicate(&client, &node, &path, op.to_body()).await.0, 404);
    assert_eq!(
        upload(&client, &node, "sda", &src_id, src.db_file()).await,
        201
    );
    assert_eq!(replicate(&client, &node, &path, op.to_body()).await.0, 204);
    drop(existing);
    let db = ContainerBroker::open(node.db_path("sda", PART, "a", "c")).unwrap();
    assert_eq!(rows(&db).len(), 15);
    assert_eq!(db.metadata().unwrap()["X-Container-Meta-Keep"][0], "yes");
    // The sender's point is its own high-water mark (10), not 15: rows it
    // writes later with ROWIDs 11.. are not skipped.
    assert_eq!(db.get_sync(&src_id, true).unwrap(), 10);
    // No rows lost: a DB without the local rows would have 10.
    assert!(rows(&db).iter().any(|r| r.0 == "mine4"));
    node.stop().await;
}

#[tokio::test]
async fn bad_requests_get_4xx_and_touch_nothing() {
    let mut node = TestNode::start_with(&["sda"], "max_body_size = 4096").await;
    let client = reqwest::Client::new();
    let h = hash_of("a", "c");
    let path = format!("/sda/{PART}/{h}");
    let db = node.create_db("sda", PART, "a", "c");
    db.merge_items(vec![obj("o", &ts(1), "t")], None).unwrap();
    let before = std::fs::read(db.db_file()).unwrap();
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (path.as_str(), b"not json".to_vec(), 400),
        (path.as_str(), b"{\"a\": 1}".to_vec(), 400),
        (path.as_str(), b"[]".to_vec(), 400),
        (path.as_str(), b"[5]".to_vec(), 400),
        (path.as_str(), br#"["__class__"]"#.to_vec(), 400),
        (path.as_str(), br#"["reclaim", 1, 2]"#.to_vec(), 400),
        (path.as_str(), br#"["sync"]"#.to_vec(), 400),
        (path.as_str(), br#"["sync", "x", "h", "i", "1", "1", "0", ""]"#.to_vec(), 400),
        (path.as_str(), br#"["merge_items", "notalist", "s"]"#.to_vec(), 400),
        (path.as_str(), br#"["merge_items", [{"name": "o"}], "s"]"#.to_vec(), 400),
        (path.as_str(), br#"["merge_items", [{"name": "o", "created_at": "bad", "size": 1, "content_type": "t", "etag": "e", "deleted": 0, "ROWID": 1}], "s"]"#.to_vec(), 400),
        (path.as_str(), br#"["merge_syncs", [{"remote_id": 1}]]"#.to_vec(), 400),
        (path.as_str(), br#"["complete_rsync"]"#.to_vec(), 400),
        (path.as_str(), br#"["rsync_then_merge", "../../etc/passwd"]"#.to_vec(), 400),
        (path.as_str(), vec![b' '; 5000], 413),
        ("/sda/7", b"[\"get_shard_ranges\"]".to_vec(), 400),
        ("/sda/7/x/y", b"[\"get_shard_ranges\"]".to_vec(), 400),
        ("/../7/abc", b"[\"get_shard_ranges\"]".to_vec(), 400),
        ("/sdz/7/0123456789abcdef0123456789abcdef", b"[\"get_shard_ranges\"]".to_vec(), 507),
        ("/sda/notapart/0123456789abcdef0123456789abcdef", b"[\"get_shard_ranges\"]".to_vec(), 400),
        ("/sda/7/not-a-hash", b"[\"get_shard_ranges\"]".to_vec(), 400),
    ];
    for (p, body, want) in cases {
        let (st, resp) = replicate(&client, &node, p, body.clone()).await;
        assert_eq!(
            st,
            want,
            "{p} {:?} -> {}",
            String::from_utf8_lossy(&body[..body.len().min(80)]),
            String::from_utf8_lossy(&resp)
        );
    }
    // Uploads: wrong type, bad names.
    let method = reqwest::Method::from_bytes(b"REPLICATE").unwrap();
    let r = client
        .request(method.clone(), node.url("/sda/tmp/x"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let r = client
        .request(method, node.url("/sda/tmp/.hidden"))
        .header("content-type", "application/x-sqlite3")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(
        std::fs::read(db.db_file()).unwrap(),
        before,
        "the DB was not touched"
    );
    assert_eq!(rows(&db).len(), 1);
    node.stop().await;
    // A server with replication turned off answers 405.
    let mut off = TestNode::start_with(&["sda"], "replication_server = false").await;
    let (st, _) = replicate(
        &client,
        &off,
        &path,
        ReplicateOp::<rowsync::swift::merge::ObjectItem>::GetShardRanges.to_body(),
    )
    .await;
    assert_eq!(st, 405);
    off.stop().await;
}

#[tokio::test]
async fn corrupt_db_is_quarantined_and_answers_404() {
    let mut node = TestNode::start(&["sda"]).await;
    let client = reqwest::Client::new();
    let h = hash_of("a", "c");
    let path = format!("/sda/{PART}/{h}");
    let db = node.create_db("sda", PART, "a", "c");
    db.connection()
        .execute_batch("DROP VIEW container_stat")
        .unwrap();
    let db_file = db.db_file().to_path_buf();
    drop(db);
    let local_dir = tempfile::tempdir().unwrap();
    let local = create_db_at(&local_dir.path().join("x.db"), "a", "c");
    let (st, _) = replicate(&client, &node, &path, sync_op(&local).to_body()).await;
    assert_eq!(st, 404);
    assert!(!db_file.exists());
    assert!(node
        .devices
        .join("sda/quarantined/containers")
        .join(&h)
        .is_dir());
    node.stop().await;
}

/// Two servers, driven by hand through a full usync exchange: sync, then
/// merge_items in batches of 10, then merge_syncs, both ways.
#[tokio::test]
async fn hand_driven_exchange_between_two_servers() {
    let mut n1 = TestNode::start(&["sda"]).await;
    let mut n2 = TestNode::start(&["sdb"]).await;
    let client = reqwest::Client::new();
    let h = hash_of("acct", "cont");
    let db1 = n1.create_db("sda", PART, "acct", "cont");
    let db2 = n2.create_db("sdb", PART, "acct", "cont");
    db1.merge_items(
        (0..25)
            .map(|i| obj(&format!("a{i:02}"), &ts(i), "one"))
            .collect(),
        None,
    )
    .unwrap();
    db2.merge_items(
        (0..13)
            .map(|i| obj(&format!("b{i:02}"), &ts(i), "two"))
            .collect(),
        None,
    )
    .unwrap();
    db1.merge_syncs(&[SyncPoint::new("third-db", 77)], true)
        .unwrap();

    async fn push(
        client: &reqwest::Client,
        from: &ContainerBroker,
        to: &TestNode,
        dev: &str,
        h: &str,
    ) -> usize {
        let path = format!("/{dev}/{PART}/{h}");
        let (st, body) = replicate(client, to, &path, sync_op(from).to_body()).await;
        assert_eq!(st, 200);
        let rinfo: Value = serde_json::from_slice(&body).unwrap();
        let rid = rinfo["id"].as_str().unwrap().to_string();
        let mut point = rinfo["point"]
            .as_i64()
            .unwrap()
            .max(from.get_sync(&rid, false).unwrap());
        let my_id = from.get_info().unwrap().id;
        let mut batches = 0;
        loop {
            let items = from.get_items_since(point, 10).unwrap();
            let Some(last) = items.last().and_then(|i| i.rowid) else {
                break;
            };
            let op = ReplicateOp::<rowsync::swift::merge::ObjectItem>::MergeItems {
                items,
                source: Some(my_id.clone()),
            };
            assert_eq!(replicate(client, to, &path, op.to_body()).await.0, 202);
            point = last;
            batches += 1;
        }
        let op = ReplicateOp::<rowsync::swift::merge::ObjectItem>::MergeSyncs(
            from.get_syncs(true).unwrap(),
        );
        assert_eq!(replicate(client, to, &path, op.to_body()).await.0, 202);
        from.merge_syncs(&[SyncPoint::new(rid, point)], false)
            .unwrap();
        batches
    }

    assert_eq!(push(&client, &db1, &n2, "sdb", &h).await, 3);
    assert_eq!(
        push(&client, &db2, &n1, "sda", &h).await,
        4,
        "13 own rows + 25 merged"
    );
    assert_eq!(rows(&db1), rows(&db2));
    assert_eq!(
        db1.get_replication_info().unwrap().hash,
        db2.get_replication_info().unwrap().hash
    );
    // Transitive sync points: db2 learned third-db's point from db1.
    assert_eq!(db2.get_sync("third-db", true).unwrap(), 77);
    assert_eq!(db2.get_sync(&db1.get_info().unwrap().id, true).unwrap(), 25);
    // A second push sends nothing new.
    assert_eq!(push(&client, &db1, &n2, "sdb", &h).await, 0);
    n1.stop().await;
    n2.stop().await;
}

#[tokio::test]
async fn a_corrupt_shipped_db_never_costs_the_local_replica() {
    let mut node = TestNode::start(&["sda"]).await;
    let client = reqwest::Client::new();
    let h = hash_of("a", "c");
    let path = format!("/sda/{PART}/{h}");
    let existing = node.create_db("sda", PART, "a", "c");
    existing
        .merge_items(
            (0..50)
                .map(|i| obj(&format!("mine{i}"), &ts(i), "t"))
                .collect(),
            None,
        )
        .unwrap();
    let before = rows(&existing);
    drop(existing);
    // A shipped DB whose stat row reads fine but whose object pages are
    // garbage: it passes the first check and breaks in the merge.
    let src_dir = tempfile::tempdir().unwrap();
    let src_path = src_dir.path().join("src.db");
    let src = create_db_at(&src_path, "a", "c");
    src.merge_items(
        (0..3000)
            .map(|i| obj(&format!("theirs{i:05}"), &ts(i), "t"))
            .collect(),
        None,
    )
    .unwrap();
    let src_id = src.get_info().unwrap().id;
    drop(src);
    let mut bytes = std::fs::read(&src_path).unwrap();
    let len = bytes.len();
    for b in &mut bytes[len - 40 * 4096..] {
        *b = 0xA5;
    }
    let shipped = src_dir.path().join("shipped.db");
    std::fs::write(&shipped, &bytes).unwrap();
    assert_eq!(upload(&client, &node, "sda", &src_id, &shipped).await, 201);
    let op = ReplicateOp::<rowsync::swift::merge::ObjectItem>::RsyncThenMerge {
        tmp_name: src_id.clone(),
        db_basename: Some(format!("{h}.db")),
    };
    let (status, body) = replicate(&client, &node, &path, op.to_body()).await;
    assert_eq!(status, 400, "the peer's bad file is refused");
    // Refused in the merge (the corruption was met there), not up front.
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("shipped DB is unusable"), "{body}");
    // The local DB is where it was, whole; the bad file is gone.
    let db = ContainerBroker::open(node.db_path("sda", PART, "a", "c")).unwrap();
    assert_eq!(rows(&db), before);
    assert!(!node.devices.join("sda/quarantined").exists());
    assert!(!node.devices.join("sda/tmp").join(&src_id).exists());
    node.stop().await;
}

/// A PUT that finds the pending file full commits it, and needs the DB's
/// write lock for that; a big `merge_items` merged in slices back to back
/// must let that commit in between its slices (it commits a full pending
/// file itself before each slice), not hold the PUTs off for the whole
/// merge.
#[tokio::test]
async fn a_big_merge_commits_a_full_pending_file_between_its_slices() {
    use rowsync::replication::rpc::MERGE_SLICE;
    use rowsync::swift::pending::PENDING_CAP;
    let mut node = TestNode::start(&["sda"]).await;
    let client = reqwest::Client::new();
    let h = hash_of("a", "c");
    let path = format!("/sda/{PART}/{h}");
    let db = node.create_db("sda", PART, "a", "c");
    let pending = rowsync::db::files::pending_path(db.db_file());
    let pending_len = || std::fs::metadata(&pending).map_or(0, |m| m.len());
    let mut put: u64 = 0;
    while pending_len() <= PENDING_CAP {
        db.put_object(&obj(&format!("put{put:05}"), &ts(5000 + put), "put"))
            .unwrap();
        put += 1;
    }
    let items: Vec<ObjectItem> = (0..3 * MERGE_SLICE as i64)
        .map(|i| {
            let mut o = obj(&format!("merged{i:06}"), &ts(i as u64), "merged");
            o.rowid = Some(i + 1);
            o
        })
        .collect();
    let op = ReplicateOp::<ObjectItem>::MergeItems {
        items,
        source: Some("sender-db".into()),
    };
    let (st, _) = replicate(&client, &node, &path, op.to_body()).await;
    assert_eq!(st, 202);
    // The merge committed the full pending file.
    assert_eq!(pending_len(), 0);
    let names: std::collections::HashSet<String> = rows(&db).into_iter().map(|r| r.0).collect();
    assert_eq!(names.len(), put as usize + 3 * MERGE_SLICE);
    assert!((0..put).all(|i| names.contains(&format!("put{i:05}"))));
    assert_eq!(
        db.get_sync("sender-db", true).unwrap(),
        3 * MERGE_SLICE as i64
    );
    node.stop().await;
}
