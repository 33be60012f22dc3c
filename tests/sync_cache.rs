//! `sync` answered from the receiver's cache (by the DB file's stamp)
//! is exactly what the DB itself answers: any change to the DB (direct
//! writes, rows through the pending file, rows and sync points received,
//! several writes within one clock tick) shows in the next answer, and a
//! `sync` that must write is never answered from the cache.

mod common;

use common::*;
use rowsync::db::ContainerBroker;
use rowsync::replication::wire::ReplicateOp;
use serde_json::Value;

const PART: u32 = 3;

fn sync_body(b: &ContainerBroker) -> Vec<u8> {
    sync_op(b).to_body()
}

/// The receiver's own answer fields that must be exact.
fn answer(body: &[u8]) -> (i64, String, i64, i64, String) {
    let v: Value = serde_json::from_slice(body).unwrap();
    (
        v["max_row"].as_i64().unwrap(),
        v["hash"].as_str().unwrap().to_string(),
        v["point"].as_i64().unwrap(),
        v["count"].as_i64().unwrap(),
        v["metadata"].as_str().unwrap_or("").to_string(),
    )
}

/// Receiver DB (on the node) and a sender DB of the same container with
/// other rows and the same DB timestamps (replicas in steady state).
async fn setup() -> (
    TestNode,
    ContainerBroker,
    ContainerBroker,
    tempfile::TempDir,
    String,
) {
    let node = TestNode::start(&["sda"]).await;
    let remote = node.create_db("sda", PART, "a", "c");
    remote
        .merge_items(
            (0..5).map(|i| obj(&format!("r{i}"), &ts(i), "t")).collect(),
            None,
        )
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let local = create_db_at(&dir.path().join("local.db"), "a", "c");
    local
        .merge_items(
            (0..3).map(|i| obj(&format!("l{i}"), &ts(i), "t")).collect(),
            None,
        )
        .unwrap();
    let (li, ri) = (
        local.get_replication_info().unwrap(),
        remote.get_replication_info().unwrap(),
    );
    for b in [&local, &remote] {
        for i in [&li, &ri] {
            b.merge_timestamps(&i.created_at, &i.put_timestamp, &i.delete_timestamp)
                .unwrap();
        }
    }
    let h = hash_conf().hash_path("a", Some("c"), None).unwrap();
    (node, remote, local, dir, format!("/sda/{PART}/{h}"))
}

#[tokio::test]
async fn cached_answers_follow_every_change_to_the_db() {
    let (node, remote, local, _dir, path) = setup().await;
    let client = reqwest::Client::new();
    let (s, first) = replicate(&client, &node, &path, sync_body(&local)).await;
    assert_eq!(s, 200);
    let (_, again) = replicate(&client, &node, &path, sync_body(&local)).await;
    assert_eq!(
        String::from_utf8_lossy(&again),
        String::from_utf8_lossy(&first),
        "the cached answer is the DB's, byte for byte"
    );
    assert_eq!(
        node.ops("cached_syncs"),
        1,
        "the second answer came from the cache"
    );

    // Direct writes, several within one clock tick: each shows.
    for k in 0..5 {
        remote
            .merge_items(vec![obj(&format!("w{k}"), &ts(100 + k), "t")], None)
            .unwrap();
        let (_, body) = replicate(&client, &node, &path, sync_body(&local)).await;
        let ri = remote.get_replication_info().unwrap();
        let got = answer(&body);
        assert_eq!(
            (got.0, got.1.as_str()),
            (ri.max_row, ri.hash.as_str()),
            "write {k}"
        );
    }
    let cached = node.ops("cached_syncs");
    let (_, body) = replicate(&client, &node, &path, sync_body(&local)).await;
    assert_eq!(node.ops("cached_syncs"), cached + 1);
    assert_eq!(
        answer(&body).0,
        remote.get_replication_info().unwrap().max_row
    );

    // An object PUT through the server (the pending file).
    let put = client
        .put(node.url("/sda/3/a/c/from-a-put"))
        .header("x-timestamp", ts(500))
        .header("x-size", "1")
        .header("x-content-type", "text/plain")
        .header("x-etag", "d41d8cd98f00b204e9800998ecf8427e")
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "PUT answered {}", put.status());
    let before = answer(&body);
    let (_, body) = replicate(&client, &node, &path, sync_body(&local)).await;
    let after = answer(&body);
    assert_eq!(after.3, before.3 + 1, "the pending row is counted");
    assert!(after.0 > before.0);

    // Rows received from the sender move its incoming point.
    let li = local.get_replication_info().unwrap();
    let items = local.get_items_since(-1, 100).unwrap();
    let op = ReplicateOp::MergeItems {
        items,
        source: Some(li.id.clone()),
    };
    let (s, _) = replicate(&client, &node, &path, op.to_body()).await;
    assert_eq!(s, 202);
    let (_, body) = replicate(&client, &node, &path, sync_body(&local)).await;
    assert_eq!(answer(&body).2, li.max_row, "the point the merge recorded");

    // Newer metadata from the sender is applied, not answered from cache.
    let (_, _) = replicate(&client, &node, &path, sync_body(&local)).await;
    let md = serde_json::json!({"X-Container-Meta-Color": ["blue", ts(900)]});
    local.update_metadata(md.as_object().unwrap()).unwrap();
    let cached = node.ops("cached_syncs");
    replicate(&client, &node, &path, sync_body(&local)).await;
    assert_eq!(node.ops("cached_syncs"), cached);
    let ri = remote.get_replication_info().unwrap();
    assert!(ri.metadata.contains("blue"));
    // As Swift, an answer carries the info read before the merge; the next
    // one carries the new metadata.
    let (_, body) = replicate(&client, &node, &path, sync_body(&local)).await;
    assert!(answer(&body).4.contains("blue"));
}

#[tokio::test]
async fn a_sync_that_must_raise_the_point_is_not_answered_from_cache() {
    let (node, remote, _local, dir, path) = setup().await;
    let client = reqwest::Client::new();
    // A sender whose rows hash like the receiver's (a copy of its file,
    // with its own id) gets its point raised to its max_row.
    let copy = dir.path().join("copy.db");
    std::fs::copy(remote.db_file(), &copy).unwrap();
    let twin = ContainerBroker::open(&copy).unwrap();
    twin.newid("twin-device").unwrap();
    let ti = twin.get_replication_info().unwrap();
    let (_, first) = replicate(&client, &node, &path, sync_body(&twin)).await;
    assert_eq!(answer(&first).2, ti.max_row, "hashes match: point raised");
    // The same rows, a higher max_row claimed: raised again (a write), so
    // not from the cache.
    let mut raised = serde_json::from_slice::<Value>(&sync_body(&twin)).unwrap();
    raised[1] = Value::from(ti.max_row + 10);
    let cached = node.ops("cached_syncs");
    let (_, body) = replicate(&client, &node, &path, serde_json::to_vec(&raised).unwrap()).await;
    assert_eq!(answer(&body).2, ti.max_row + 10);
    assert_eq!(node.ops("cached_syncs"), cached);
    // Asked again: answered by the DB (which wrote nothing, so the
    // answer is recorded), then from the cache, with the raised point.
    for n in 0..2 {
        let body = serde_json::to_vec(&raised).unwrap();
        let (_, body) = replicate(&client, &node, &path, body).await;
        assert_eq!(answer(&body).2, ti.max_row + 10);
        assert_eq!(node.ops("cached_syncs"), cached + n);
    }
}
