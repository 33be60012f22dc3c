//! `rowsync info` on Swift-made DBs (the 2.38 fixtures), text and JSON,
//! every value checked against `dbs.json`; and clear errors for files
//! that are not container DBs.

mod common;

use std::process::{Command, Output};

use common::{dbs_json, fixture_node as fixture_copy, fixtures};

use serde_json::Value;

fn rowsync(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rowsync"))
        .args(args)
        .output()
        .unwrap()
}

fn info_json(args: &[&str]) -> Value {
    let out = rowsync(args);
    assert!(
        out.status.success(),
        "rowsync {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The values Swift's DB holds once its pending records are committed:
/// dbs.json's info is from before they were appended.
struct Expected {
    count: i64,
    bytes_used: i64,
    max_row: i64,
    hash: String,
    rows: i64,
    tombstones: i64,
}

fn expected_after_pending(c: &Value) -> Expected {
    let info = &c["replication_info"];
    let pending = c["pending_records_in_order"].as_array().unwrap();
    let items = c["items_since_-1"].as_array().unwrap();
    let mut hash = info["hash"].as_str().unwrap().to_string();
    let (mut live, mut bytes, mut deleted) = (0, 0, 0);
    for p in pending {
        let name = p[0].as_str().unwrap();
        let ts = p[1].as_str().unwrap();
        hash = rowsync::swift::chexor(&hash, name, ts).unwrap();
        // Swift's policy_stat trigger: object_count + (1 - deleted),
        // bytes_used + size (a tombstone's size counts too).
        bytes += p[2].as_i64().unwrap();
        if p[5].as_i64().unwrap() == 0 {
            live += 1;
        } else {
            deleted += 1;
        }
    }
    let old_tombstones = items
        .iter()
        .filter(|i| i["deleted"].as_i64() == Some(1))
        .count() as i64;
    Expected {
        count: info["count"].as_i64().unwrap() + live,
        bytes_used: info["bytes_used"].as_i64().unwrap() + bytes,
        max_row: info["max_row"].as_i64().unwrap() + pending.len() as i64,
        hash,
        rows: items.len() as i64 + pending.len() as i64,
        tombstones: old_tombstones + deleted,
    }
}

fn sync_pairs(v: &Value) -> Vec<(String, i64)> {
    let mut out: Vec<(String, i64)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["remote_id"].as_str().unwrap().to_string(),
                p["sync_point"].as_i64().unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn json_matches_swift_for_every_fixture_db() {
    let d = dbs_json();
    let dir = fixture_copy();
    for c in d["container_dbs"].as_array().unwrap() {
        let db = dir.path().join(c["db_path"].as_str().unwrap());
        let pending_before = std::fs::metadata(db.with_extension("db.pending"))
            .unwrap()
            .len();
        assert!(pending_before > 0);
        let v = info_json(&["info", db.to_str().unwrap(), "--json"]);
        let info = &c["replication_info"];
        let exp = expected_after_pending(c);
        for key in [
            "account",
            "container",
            "id",
            "put_timestamp",
            "delete_timestamp",
            "created_at",
            "status_changed_at",
            "storage_policy_index",
            "db_state",
            "reported_put_timestamp",
            "reported_delete_timestamp",
            "reported_object_count",
            "reported_bytes_used",
            "x_container_sync_point1",
            "x_container_sync_point2",
            "shard_max_row",
        ] {
            assert_eq!(v[key], info[key], "{key} of {}", c["container"]);
        }
        assert_eq!(v["count"], exp.count);
        assert_eq!(v["bytes_used"], exp.bytes_used);
        assert_eq!(v["max_row"], exp.max_row);
        assert_eq!(v["hash"], exp.hash.as_str());
        assert_eq!(v["rows"], exp.rows);
        assert_eq!(v["tombstones"], exp.tombstones);
        let md: Value = serde_json::from_str(info["metadata"].as_str().unwrap()).unwrap();
        assert_eq!(v["metadata"], md);
        assert_eq!(
            sync_pairs(&v["incoming_sync"]),
            sync_pairs(&c["incoming_sync"])
        );
        assert_eq!(
            sync_pairs(&v["outgoing_sync"]),
            sync_pairs(&c["outgoing_sync"])
        );
        for p in v["outgoing_sync"].as_array().unwrap() {
            let behind = exp.max_row - p["sync_point"].as_i64().unwrap();
            assert_eq!(p["behind_rows"], behind);
        }
        for p in v["incoming_sync"].as_array().unwrap() {
            assert!(
                p.get("behind_rows").is_none(),
                "incoming points are the peer's ROWIDs"
            );
            assert!(p["updated_at"].is_string());
        }
        assert_eq!(v["partition"], c["partition"]);
        assert_eq!(v["partition_source"], "path");
        assert_eq!(v["path_hash"], c["hash"]);
        assert_eq!(v["status"], "active");
        assert_eq!(
            v["timestamps_iso"]["put_timestamp"].as_str().unwrap(),
            rowsync::swift::Timestamp::parse(info["put_timestamp"].as_str().unwrap())
                .unwrap()
                .isoformat()
        );
        // The pending file was committed; a second read gives the same.
        assert_eq!(
            std::fs::metadata(db.with_extension("db.pending"))
                .unwrap()
                .len(),
            0
        );
        let again = info_json(&["info", db.to_str().unwrap(), "--json"]);
        assert_eq!(again, v);
    }
}

#[test]
fn text_shows_every_section() {
    let d = dbs_json();
    let c = &d["container_dbs"][0];
    let dir = fixture_copy();
    let db = dir.path().join(c["db_path"].as_str().unwrap());
    let out = rowsync(&["info", db.to_str().unwrap()]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let exp = expected_after_pending(c);
    for want in [
        "Path: /AUTH_fixture/cont1-0".to_string(),
        "  Account: AUTH_fixture".into(),
        "  Container: cont1-0".into(),
        "  Deleted: False".into(),
        format!("  Container Hash: {}", c["hash"].as_str().unwrap()),
        "  Put Timestamp: 2023-11-14T22:13:20.000000 (1700000000.00000)".into(),
        format!("  Object Count: {}", exp.count),
        format!("  Bytes Used: {}", exp.bytes_used),
        format!("  Chexor: {}", exp.hash),
        "  UUID: cc52e3b5-48e3-4619-840f-27d0cfbdb7df-sdb1".into(),
        format!("max_row (highest ROWID used): {}", exp.max_row),
        "  Status: active".into(),
        "    X-Container-Meta-Color: \"blue\"".into(),
        "  State: unsharded".into(),
        "Partition: 943 (from the path)".into(),
        "Incoming sync points".into(),
        "  peer-0".into(),
        "Outgoing sync points".into(),
    ] {
        assert!(text.contains(&want), "missing {want:?} in:\n{text}");
    }
    // The outgoing row shows how many of our rows the peer may lack.
    let out_line = text
        .lines()
        .find(|l| l.trim_start().starts_with("peer-out"))
        .unwrap();
    let fields: Vec<&str> = out_line.split_whitespace().collect();
    assert_eq!(fields[1], "17");
    assert_eq!(fields[2], (exp.max_row - 17).to_string());
}

#[test]
fn ring_and_swift_conf_give_partition_and_primaries() {
    let d = dbs_json();
    let dir = fixture_copy();
    let swift_conf = dir.path().join("swift.conf");
    std::fs::write(
        &swift_conf,
        "[swift-hash]\nswift_hash_path_prefix = pre1\nswift_hash_path_suffix = suf1\n",
    )
    .unwrap();
    let ring = fixtures().join("container-v2.ring.gz");
    for c in d["container_dbs"].as_array().unwrap() {
        // Away from its <part>/<suffix>/<hash>/ path: only the ring knows.
        let db = dir
            .path()
            .join(format!("{}.db", c["container"].as_str().unwrap()));
        std::fs::copy(dir.path().join(c["db_path"].as_str().unwrap()), &db).unwrap();
        let v = info_json(&["info", db.to_str().unwrap(), "--json"]);
        assert_eq!(v["partition"], Value::Null);
        let v = info_json(&[
            "info",
            db.to_str().unwrap(),
            "--json",
            "--ring",
            ring.to_str().unwrap(),
            "--swift-conf",
            swift_conf.to_str().unwrap(),
        ]);
        assert_eq!(v["partition"], c["partition"]);
        assert_eq!(v["partition_source"], "ring");
        assert_eq!(v["computed_hash"], c["hash"]);
        assert_eq!(v["storage_policy_name"], "Policy-0");
        assert_eq!(v["primaries"].as_array().unwrap().len(), 3);
    }
}

#[test]
fn account_db_info_has_swifts_replication_info() {
    let d = dbs_json();
    let dir = fixture_copy();
    let acct = dir
        .path()
        .join(d["account_db"]["db_path"].as_str().unwrap());
    let v = info_json(&["info", acct.to_str().unwrap(), "--json"]);
    let swift = d["account_db"]["replication_info"].as_object().unwrap();
    for (k, want) in swift {
        if k == "metadata" {
            // Swift's raw column "" is shown parsed: no items.
            assert_eq!(v[k], serde_json::json!({}), "{k}");
            continue;
        }
        assert_eq!(&v[k], want, "{k}");
    }
    assert_eq!(v["db_type"], "account");
    assert_eq!(v["status"], "active");
    assert_eq!(v["rows"], 30);
    assert_eq!(v["policy_stats"][0]["container_count"], 30);
    assert_eq!(v["partition"], 5);
    let out = rowsync(&["info", acct.to_str().unwrap()]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for line in [
        "Path: /AUTH_fixture",
        "  Account: AUTH_fixture",
        "  Deleted: False",
        "  Account Hash: 30568ee9a7dea8e4aafb5ebcc7d698d2",
        "  Container Count: 30",
        "  Object Count: 435",
        "  Bytes Used: 43500",
        "  Chexor: 3656fd35ca8d318648802f6ded441fa8",
        "  UUID: 060df505-b4ef-4b05-8c87-328ab28ae39f-sdb1",
        "  No user metadata found in db file",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
}

#[test]
fn non_db_files_fail_clearly() {
    let dir = fixture_copy();
    let text_file = dir.path().join("notes.db");
    std::fs::write(&text_file, "this is not SQLite\n".repeat(100)).unwrap();
    let out = rowsync(&["info", text_file.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not a readable DB"), "{err}");
    assert!(out.stdout.is_empty());

    // A SQLite file of neither kind is refused without being written.
    let other = dir.path().join("other.db");
    {
        let c = rusqlite::Connection::open(&other).unwrap();
        c.execute_batch("CREATE TABLE t (x)").unwrap();
    }
    let before = std::fs::read(&other).unwrap();
    let out = rowsync(&["info", other.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not a readable container or account DB"),
        "{err}"
    );
    assert_eq!(std::fs::read(&other).unwrap(), before);

    let out = rowsync(&["info", dir.path().join("nope.db").to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such file"));
}
