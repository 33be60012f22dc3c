//! Bad input, generated: REPLICATE bodies (arbitrary bytes, arbitrary JSON,
//! valid ops with one argument broken), pending files, ring files and INI
//! configs never panic; a refused REPLICATE answers 4xx and writes nothing.

mod common;

use common::*;
use proptest::prelude::*;
use rowsync::config::ini::Ini;
use rowsync::config::{ReplicatorConf, ServerConf, ServerType};
use rowsync::replication::wire::ReplicateOp;
use rowsync::replication::KindRpc;
use rowsync::swift::container_row::ContainerItem;
use rowsync::swift::merge::ObjectItem;
use serde_json::{json, Value};

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        any::<f64>().prop_map(|f| json!(f)),
        "[a-z_]{0,12}".prop_map(Value::String),
        Just(json!("sync")),
        Just(json!("merge_items")),
        Just(json!("merge_syncs")),
        Just(json!("rsync_then_merge")),
        Just(json!("complete_rsync")),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map("[a-zA-Z_]{1,10}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Valid bodies of every op (for one DB), to break one argument of.
fn valid_bodies() -> Vec<Value> {
    vec![
        json!([
            "sync",
            5,
            "0123456789abcdef0123456789abcdef",
            "peer-id",
            "1700000000.00000",
            "1700000000.00000",
            "0",
            ""
        ]),
        json!(["merge_items", [{"ROWID": 3, "name": "o", "created_at": "1700000001.00000", "size": 1, "content_type": "t", "etag": "e", "deleted": 0, "storage_policy_index": 0}], "peer-id"]),
        json!(["merge_syncs", [{"remote_id": "x", "sync_point": 3}]]),
        json!(["complete_rsync", "some-id", "h.db"]),
        json!(["rsync_then_merge", "some-id", "h.db"]),
    ]
}

fn snapshot_bytes(path: &std::path::Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_default()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]

    #[test]
    fn replicate_bodies_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300), v in any_json()) {
        let _ = ReplicateOp::<ObjectItem>::parse(&bytes);
        let _ = ReplicateOp::<ContainerItem>::parse(&bytes);
        let text = serde_json::to_vec(&v).unwrap();
        let _ = ReplicateOp::<ObjectItem>::parse(&text);
        let _ = ReplicateOp::<ContainerItem>::parse(&text);
    }

    #[test]
    fn pending_files_ring_files_and_configs_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..400),
        text in "[\\[\\]a-z_=:#;% \\n.0-9-]{0,300}",
    ) {
        let _ = rowsync::swift::pending::decode_entries(&bytes);
        let _ = rowsync::ring::io::load_from_raw(&bytes);
        let _ = rowsync::ring::load_from_gz_bytes(&bytes);
        if let Ok(ini) = Ini::parse(&text, "fuzz.conf") {
            for kind in [ServerType::Container, ServerType::Account] {
                let _ = ServerConf::from_ini(&ini, kind);
                let _ = ReplicatorConf::from_ini(&ini, kind);
            }
            let _ = ServerType::detect(&ini);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    /// A valid op with one argument replaced by arbitrary JSON, against a
    /// real DB: never a panic or a 5xx; a refusal writes nothing.
    #[test]
    fn broken_ops_are_refused_without_writing(which in 0usize..5, arg in 1usize..8, v in any_json(), account in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let devices = dir.path().join("srv");
        std::fs::create_dir_all(devices.join("sda")).unwrap();
        let kind = if account { ServerType::Account } else { ServerType::Container };
        let rpc = KindRpc::new(kind, &devices, false, hash_conf());
        let (hash, db_file) = if account {
            let h = hash_conf().hash_path("a", None, None).unwrap();
            let p = rowsync::db::files::db_path(&devices.join("sda"), "accounts", 0, &h);
            rowsync::db::AccountBroker::create(&p, "a", None).unwrap();
            (h, p)
        } else {
            let h = hash_conf().hash_path("a", Some("c"), None).unwrap();
            let p = rowsync::db::files::db_path(&devices.join("sda"), "containers", 0, &h);
            create_db_at(&p, "a", "c");
            (h, p)
        };
        let mut body = valid_bodies()[which].clone();
        let list = body.as_array_mut().unwrap();
        if arg < list.len() {
            list[arg] = v;
        } else {
            list.push(v);
        }
        let before = snapshot_bytes(&db_file);
        let (_, r) = rpc.handle("sda", "0", &hash, &serde_json::to_vec(&body).unwrap());
        prop_assert!(r.status < 500, "{} {}", r.status, String::from_utf8_lossy(&r.body));
        if (400..500).contains(&r.status) {
            prop_assert_eq!(snapshot_bytes(&db_file), before);
        }
    }
}
