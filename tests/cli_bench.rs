//! `rowsync bench put-load` against a container server on loopback: what
//! the side-by-side harness measures Swift's and rowsync's servers with.

mod common;

use common::*;

async fn put_load(args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_rowsync"))
        .args(["bench", "put-load"])
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn put_load_reports_its_puts_and_every_acknowledged_one_is_a_row() {
    let mut node = TestNode::start(&["sda"]).await;
    let db = node.create_db("sda", 3, "a", "c");
    let dir = tempfile::tempdir().unwrap();
    let acked = dir.path().join("acked");
    let url = node.url("/sda/3/a/c");
    let out = put_load(&[
        "--url",
        &url,
        "--writers",
        "2",
        "--seconds",
        "0.3",
        "--tag",
        "t",
        "--acked",
        acked.to_str().unwrap(),
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let figures: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let names: Vec<String> = std::fs::read_to_string(&acked)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert!(!names.is_empty());
    assert_eq!(figures["puts"].as_u64(), Some(names.len() as u64));
    assert_eq!(figures["errors"].as_u64(), Some(0));
    assert!(figures["p99_ms"].as_f64().unwrap() >= figures["p50_ms"].as_f64().unwrap());
    assert!(names.iter().all(|n| n.starts_with("t/w0")));
    db.commit_pending().unwrap();
    let rows: std::collections::HashSet<String> = db
        .get_items_since(-1, 1_000_000)
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert!(names.iter().all(|n| rows.contains(n)));
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn put_load_counts_refused_puts_and_rejects_a_bad_url() {
    let mut node = TestNode::start(&["sda"]).await;
    // No such container: every PUT is refused (404) and counted.
    let url = node.url("/sda/3/a/missing");
    let out = put_load(&["--url", &url, "--writers", "1", "--seconds", "0.1"]).await;
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let figures: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(figures["puts"].as_u64(), Some(0));
    assert!(figures["errors"].as_u64().unwrap() > 0);
    // Not a container's URL: a clear error, nothing sent.
    for bad in [
        "not a url",
        "http://127.0.0.1:1/sda/3/a",
        "ftp://127.0.0.1:1/sda/3/a/c",
    ] {
        let out = put_load(&["--url", bad, "--seconds", "0.1"]).await;
        assert!(!out.status.success(), "{bad} accepted");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--url"),
            "{bad}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    node.stop().await;
}
