//! `rowsync status` (the real binary) against a three-node in-process
//! cluster on loopback, with DBs made to be in sync, behind by a known
//! number of rows, missing on a peer, and a peer that is down.

mod common;

use std::path::Path;

use common::{obj, ts, Cluster};
use rowsync::db::SyncPoint;
use rowsync::swift::merge::ObjectItem;
use serde_json::Value;

const A: &str = "AUTH_status";

fn objs(range: std::ops::Range<u64>) -> Vec<ObjectItem> {
    range
        .map(|i| obj(&format!("o{i:04}"), &ts(10 + i), "text/plain"))
        .collect()
}

/// Writes node i's config to `<dir>/node<i+1>/container-server.conf` (the
/// dev-cluster layout `status --cluster` reads).
fn write_configs(cluster: &Cluster, dir: &Path) {
    for i in 0..cluster.nodes.len() {
        let ndir = dir.join(format!("node{}", i + 1));
        std::fs::create_dir_all(&ndir).unwrap();
        std::fs::write(
            ndir.join("container-server.conf"),
            cluster.replicator_conf(i, ""),
        )
        .unwrap();
    }
}

async fn status(args: &[&str]) -> (bool, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_rowsync"))
        .arg("status")
        .args(args)
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// The replica entry of `peer` (node index) for container `c` as seen by
/// node1.
fn replica<'a>(v: &'a Value, cluster: &Cluster, c: &str, peer: usize) -> &'a Value {
    let port = cluster.nodes[peer].addr.port();
    let node1 = cluster.nodes[0].addr.to_string();
    let db = v
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["container"] == c && d["node"] == node1.as_str())
        .unwrap_or_else(|| panic!("no DB for {c} on node1 in {v:#}"));
    db["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["node"] == format!("127.0.0.1:{port}"))
        .unwrap_or_else(|| panic!("no replica on port {port} in {db:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_in_sync_behind_missing_and_unreachable() {
    let mut cluster = Cluster::start(3, 3, 4).await;
    let tmp = tempfile::tempdir().unwrap();
    write_configs(&cluster, tmp.path());

    // in-sync: the same 50 rows everywhere.
    for i in 0..3 {
        let b = cluster.create_db(i, A, "in-sync");
        b.merge_items(objs(0..50), None).unwrap();
    }
    // behind: node1 has 100 rows; node2 the first 40 and an incoming sync
    // point of 40 for node1's DB; node3 all 100 (same hash, no point yet).
    let b0 = cluster.create_db(0, A, "behind");
    b0.merge_items(objs(0..100), None).unwrap();
    let id0 = b0.get_replication_info().unwrap().id;
    let b1 = cluster.create_db(1, A, "behind");
    b1.merge_items(objs(0..40), None).unwrap();
    b1.merge_syncs(&[SyncPoint::new(id0.clone(), 40)], true)
        .unwrap();
    let b2 = cluster.create_db(2, A, "behind");
    b2.merge_items(objs(0..100), None).unwrap();
    // missing: not on node3.
    for i in 0..2 {
        let b = cluster.create_db(i, A, "missing");
        b.merge_items(objs(0..10), None).unwrap();
    }

    let conf1 = tmp.path().join("node1/container-server.conf");
    let (ok, out, err) = status(&["--config", conf1.to_str().unwrap(), "--json"]).await;
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 3, "node1's three DBs: {v:#}");
    for d in v.as_array().unwrap() {
        assert_eq!(d["account"], A);
        assert_eq!(d["handoff"], false);
        assert_eq!(d["replicas"].as_array().unwrap().len(), 2);
        let part = cluster.part(A, d["container"].as_str().unwrap());
        assert_eq!(d["partition"], part);
    }
    for peer in [1, 2] {
        let r = replica(&v, &cluster, "in-sync", peer);
        assert_eq!(r["status"], "in_sync", "{r:#}");
        assert_eq!(r["behind_rows"], 0);
        assert_eq!(r["point"], 50);
        assert_eq!(r["hash_match"], true);
    }
    let r = replica(&v, &cluster, "behind", 1);
    assert_eq!(r["status"], "behind", "{r:#}");
    assert_eq!(r["point"], 40);
    assert_eq!(r["behind_rows"], 60);
    assert_eq!(r["hash_match"], false);
    assert_eq!(r["remote_max_row"], 40);
    let r = replica(&v, &cluster, "behind", 2);
    assert_eq!(r["status"], "in_sync", "{r:#}");
    assert_eq!(r["behind_rows"], 0);
    assert_eq!(r["point"], 100, "same hash: the peer records our max_row");
    assert_eq!(replica(&v, &cluster, "missing", 1)["status"], "in_sync");
    let r = replica(&v, &cluster, "missing", 2);
    assert_eq!(r["status"], "missing", "{r:#}");
    assert_eq!(r["point"], Value::Null);
    let behind_db = v
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["container"] == "behind")
        .unwrap();
    assert_eq!(behind_db["max_row"], 100);
    assert_eq!(behind_db["node"], format!("{}", cluster.nodes[0].addr));

    // The query sent no rows: node2 still lacks them.
    let b1 = cluster.open_db(1, A, "behind").unwrap();
    assert_eq!(b1.get_replication_info().unwrap().max_row, 40);

    // The text table says the same.
    let (ok, text, _) = status(&["--config", conf1.to_str().unwrap()]).await;
    assert!(ok);
    assert!(text.contains("/AUTH_status/behind"), "{text}");
    assert!(text.contains("60 rows behind"), "{text}");
    assert!(text.contains("missing"), "{text}");
    assert!(
        text.contains("3 DBs, 6 peer replicas: 4 in_sync, 1 behind, 1 missing, 0 unreachable"),
        "{text}"
    );

    // Every node at once (--cluster), then node3 down: unreachable, and
    // the answer still comes within the per-peer timeout.
    let (ok, out, err) = status(&["--cluster", tmp.path().to_str().unwrap(), "--json"]).await;
    assert!(ok, "{err}");
    let all: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(all.len(), 3 + 3 + 2);
    let from_node2 = all
        .iter()
        .find(|d| d["node_label"] == "node2" && d["container"] == "behind")
        .unwrap();
    let to_node1 = &from_node2["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["node"] == format!("{}", cluster.nodes[0].addr))
        .unwrap();
    // node2's 40 rows are on node1 too, but no sync point says so yet:
    // behind_rows is an upper bound until replication records a point.
    assert_eq!(to_node1["status"], "behind");
    assert_eq!(to_node1["behind_rows"], 40);
    assert_eq!(to_node1["hash_match"], false);

    cluster.nodes[2].stop().await;
    let started = std::time::Instant::now();
    let (ok, out, err) = status(&[
        "--config",
        conf1.to_str().unwrap(),
        "--json",
        "--timeout",
        "2",
    ])
    .await;
    assert!(ok, "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    let v: Value = serde_json::from_str(&out).unwrap();
    for c in ["in-sync", "behind", "missing"] {
        let r = replica(&v, &cluster, c, 2);
        assert_eq!(r["status"], "unreachable", "{r:#}");
        assert!(r["error"].as_str().unwrap().contains("127.0.0.1"), "{r:#}");
    }
    assert_eq!(replica(&v, &cluster, "behind", 1)["status"], "behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_invocations_fail() {
    let tmp = tempfile::tempdir().unwrap();
    let (ok, _, err) = status(&["--cluster", tmp.path().to_str().unwrap()]).await;
    assert!(!ok);
    assert!(err.contains("not a rowsync dev-cluster directory"), "{err}");
    let (ok, _, err) = status(&[]).await;
    assert!(!ok);
    assert!(err.contains("--config"), "{err}");
}
