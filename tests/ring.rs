//! Ring files, placement, reloading, config and the `ring` CLI, checked
//! against Swift 2.38.3's golden data.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use rowsync::config::{
    ConfigError, DbTransfer, FallocateReserve, ReplicatorConf, ServerConf, SwiftConf,
};
use rowsync::ring::io::{encode_v1, load_from_raw};
use rowsync::ring::{
    build_ring, dev_cluster_devices, load, load_from_gz_bytes, write_v1, Device, Ring, RingError,
    RingHandle,
};
use rowsync::swift::HashPathConfig;
use serde_json::Value;

fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/swift-2.38")
        .join(name)
}

fn expect() -> Value {
    let text = std::fs::read_to_string(fixture_path("ring-expect.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn hash_conf() -> HashPathConfig {
    let info: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture_path("INFO.json")).unwrap()).unwrap();
    HashPathConfig::new(
        info["hash_path_prefix"].as_str().unwrap(),
        info["hash_path_suffix"].as_str().unwrap(),
    )
}

const RINGS: [&str; 2] = ["container-v1.ring.gz", "container-v2.ring.gz"];

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    GzDecoder::new(bytes).read_to_end(&mut out).unwrap();
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

// ------------------------------------------------------------ placement

#[test]
fn every_swift_lookup_matches_both_ring_formats() {
    let expect = expect();
    let hash = hash_conf();
    let lookups = expect["lookups"].as_array().unwrap();
    assert_eq!(lookups.len(), 150);
    for name in RINGS {
        let ring = load(fixture_path(name)).unwrap();
        assert_eq!(
            ring.part_power(),
            expect["part_power"].as_u64().unwrap() as u32
        );
        assert_eq!(
            ring.replica_count(),
            expect["replica_count"].as_f64().unwrap()
        );
        for (i, l) in lookups.iter().enumerate() {
            let account = l["account"].as_str().unwrap();
            let container = l["container"].as_str();
            let ctx = format!("{name} lookup {i} {account:?}/{container:?}");
            let (part, nodes) = ring.get_nodes(&hash, account, container, None).unwrap();
            assert_eq!(u64::from(part), l["part"].as_u64().unwrap(), "{ctx}");
            let primary: Vec<u32> = nodes.iter().map(|n| n.id).collect();
            assert_eq!(primary, ids(&l["primary_ids"]), "{ctx}");
            let index: Vec<usize> = nodes.iter().map(|n| n.index).collect();
            assert_eq!(index, (0..nodes.len()).collect::<Vec<_>>(), "{ctx}");
            let handoffs: Vec<u32> = ring.get_more_nodes(part).take(20).map(|n| n.id).collect();
            assert_eq!(handoffs, ids(&l["handoff_ids"]), "{ctx}");
        }
    }
}

#[test]
fn handoff_iterator_is_lazy_and_can_own_the_ring() {
    let ring = std::sync::Arc::new(load(fixture_path("container-v2.ring.gz")).unwrap());
    let mut it = rowsync::ring::MoreNodes::new(ring.clone(), 392);
    let first = it.next().unwrap();
    assert_eq!((first.id, first.index, first.is_handoff), (0, 0, true));
    let rest: Vec<(u32, usize)> = it.map(|n| (n.id, n.index)).collect();
    assert_eq!(rest[0], (8, 1));
    assert_eq!(rest.len(), 8);
}

#[test]
fn devices_match_swift() {
    let expect = expect();
    let want = expect["devs"].as_array().unwrap();
    for name in RINGS {
        let ring = load(fixture_path(name)).unwrap();
        assert_eq!(ring.devs().len(), want.len(), "{name}");
        for (dev, w) in ring.devs().iter().zip(want) {
            let dev = dev.as_ref().unwrap();
            assert_eq!(dev.to_json(), *w, "{name}");
            assert_eq!(dev.ip, w["ip"].as_str().unwrap());
            assert_eq!(
                u64::from(dev.replication_port),
                w["replication_port"].as_u64().unwrap()
            );
            assert_eq!(dev.weight, w["weight"].as_f64().unwrap());
        }
    }
}

#[test]
fn both_formats_load_the_same_ring() {
    let v1 = load(fixture_path(RINGS[0])).unwrap();
    let v2 = load(fixture_path(RINGS[1])).unwrap();
    assert_eq!(v1.format_version(), 1);
    assert_eq!(v2.format_version(), 2);
    assert_eq!(v1.table(), v2.table());
    assert_eq!(v1.devs(), v2.devs());
    assert_eq!(v1.version(), Some(13));
    assert_eq!(v2.version(), Some(13));
    assert_eq!(v1.partition_count(), 1024);
    assert_eq!(v1.assigned_device_count(), 12);
}

// ------------------------------------------------------------ writing

#[test]
fn v1_writer_reproduces_swifts_bytes() {
    let swift_raw = gunzip(&std::fs::read(fixture_path(RINGS[0])).unwrap());
    for name in RINGS {
        let ring = load(fixture_path(name)).unwrap();
        assert!(encode_v1(&ring).unwrap() == swift_raw, "{name}");
    }
}

#[test]
fn written_ring_round_trips_with_null_devices_and_fractional_replicas() {
    let dir = tempfile::tempdir().unwrap();
    let mut devs: Vec<Option<Device>> = dev_cluster_devices(4, "::1", 6000, 2)
        .unwrap()
        .into_iter()
        .map(Some)
        .collect();
    devs[2] = None;
    if let Some(d) = devs[3].as_mut() {
        d.meta = "caf\u{e9} \"quoted\"".into();
        d.weight = 12.5;
        d.extra.insert("custom".into(), Value::from(7));
    }
    let table = vec![vec![0, 1, 3, 0], vec![1, 3, 0, 1], vec![3, 0]];
    let ring = Ring::new(devs, table, 30, Some(3), Some(9), 0).unwrap();
    assert_eq!(ring.replica_count(), 2.5);
    let path = dir.path().join("container.ring.gz");
    write_v1(&ring, &path).unwrap();
    let back = load(&path).unwrap();
    assert_eq!(back.devs(), ring.devs());
    assert_eq!(back.table(), ring.table());
    assert_eq!(back.next_part_power(), Some(3));
    assert_eq!(back.version(), Some(9));
    assert_eq!(back.replica_count(), 2.5);
    assert_eq!(back.primary_ids(3), vec![0, 1]);
    // Only ASCII in the header, as Swift writes it.
    let raw = gunzip(&std::fs::read(&path).unwrap());
    let json_len = u32::from_be_bytes(raw[6..10].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&raw[10..10 + json_len]).unwrap();
    assert!(header.is_ascii(), "{header}");
    assert!(
        header.contains(r#""meta": "caf\u00e9 \"quoted\"""#),
        "{header}"
    );
}

#[test]
fn dev_ring_placement_properties() {
    let dir = tempfile::tempdir().unwrap();
    for (devices, zones, replicas, pp) in [(4, 4, 3, 8), (6, 3, 3, 10), (5, 2, 3, 7), (8, 4, 2, 6)]
    {
        let ctx = format!("{devices} devs {zones} zones {replicas} replicas pp {pp}");
        let devs = dev_cluster_devices(devices, "127.0.0.1", 6010, zones).unwrap();
        let ring = build_ring(devs, replicas, pp).unwrap();
        let path = dir.path().join(format!("r{devices}-{zones}.ring.gz"));
        write_v1(&ring, &path).unwrap();
        let ring = load(&path).unwrap();
        assert_eq!(ring.part_power(), pp, "{ctx}");
        assert_eq!(ring.replica_count(), replicas as f64, "{ctx}");
        for part in 0..ring.partition_count() as u32 {
            let prim = ring.get_part_nodes(part);
            assert_eq!(prim.len(), replicas, "{ctx} part {part}");
            let zs: HashSet<i64> = prim.iter().map(|n| n.zone).collect();
            assert_eq!(zs.len(), replicas.min(zones), "{ctx} part {part}");
            let prim_ids: HashSet<u32> = prim.iter().map(|n| n.id).collect();
            let hand: Vec<u32> = ring.get_more_nodes(part).map(|n| n.id).collect();
            let hand_set: HashSet<u32> = hand.iter().copied().collect();
            assert_eq!(hand_set.len(), hand.len(), "{ctx}: handoffs repeat");
            assert!(
                hand_set.is_disjoint(&prim_ids),
                "{ctx}: handoff is a primary"
            );
            assert_eq!(
                hand.len() + replicas,
                devices,
                "{ctx}: handoffs cover the rest"
            );
        }
        let want = (ring.partition_count() * replicas) as f64 / devices as f64;
        for (id, &c) in ring.assignment_counts().iter().enumerate() {
            assert!(
                (c as f64 - want).abs() <= 2.0,
                "{ctx}: device {id} has {c}, want {want}"
            );
        }
        // Ports and names as documented.
        let d = ring.device(1).unwrap();
        assert_eq!(
            (d.port, d.replication_port, d.device.as_str()),
            (6011, 6011, "sdb2")
        );
    }
}

// ------------------------------------------------------------ damage

fn assert_err(result: Result<Ring, RingError>, what: &str) -> RingError {
    match result {
        Ok(_) => panic!("{what}: loaded a damaged ring"),
        Err(e) => {
            assert!(!e.to_string().is_empty());
            e
        }
    }
}

#[test]
fn damaged_files_give_errors() {
    let gz1 = std::fs::read(fixture_path(RINGS[0])).unwrap();
    let gz2 = std::fs::read(fixture_path(RINGS[1])).unwrap();
    let raw1 = gunzip(&gz1);
    let raw2 = gunzip(&gz2);

    // Truncated gzip.
    for gz in [&gz1, &gz2] {
        for cut in [0, 5, 20, gz.len() / 2, gz.len() - 9, gz.len() - 1] {
            assert_err(
                load_from_gz_bytes(&gz[..cut]),
                &format!("gzip cut at {cut}"),
            );
        }
    }
    // Not gzip at all.
    assert!(matches!(
        load_from_gz_bytes(b"R1NG\x00\x01 plain"),
        Err(RingError::Gzip(_))
    ));
    // Bad magic (e.g. an old pickled ring).
    let mut bad = raw1.clone();
    bad[..4].copy_from_slice(b"\x80\x02}q");
    assert!(matches!(
        load_from_gz_bytes(&gzip(&bad)),
        Err(RingError::BadMagic(_))
    ));
    // Bad JSON in the v1 header.
    let mut bad = raw1.clone();
    bad[10] = b'[';
    bad[11] = b'}';
    assert!(matches!(
        load_from_gz_bytes(&gzip(&bad)),
        Err(RingError::BadJson { .. })
    ));
    // Short assignment table: v1 cut in the middle of the second row.
    let json_len = u32::from_be_bytes(raw1[6..10].try_into().unwrap()) as usize;
    let cut = 10 + json_len + 2048 + 100;
    let e = assert_err(load_from_gz_bytes(&gzip(&raw1[..cut])), "short v1 table");
    assert!(matches!(e, RingError::BadTable(_)), "{e}");
    // v2: a changed byte inside the devices section fails its digest.
    let at = raw2.windows(6).position(|w| w == b"\"sdb0\"").unwrap();
    let mut bad = raw2.clone();
    bad[at + 1] = b'x';
    let e = assert_err(load_from_gz_bytes(&gzip(&bad)), "v2 digest");
    assert!(matches!(e, RingError::DigestMismatch { .. }), "{e}");
    // v2: a changed assignment byte fails its digest.
    let mut bad = raw2.clone();
    bad[2200] ^= 1;
    let e = assert_err(load_from_raw(&bad), "v2 assignment digest");
    assert!(matches!(e, RingError::DigestMismatch { .. }), "{e}");
    // v2: truncated (trailer gone).
    assert_err(load_from_raw(&raw2[..raw2.len() - 40]), "v2 truncated");
    // Missing file.
    assert!(matches!(
        load("/nonexistent/container.ring.gz"),
        Err(RingError::Io { .. })
    ));
}

#[test]
fn no_damage_panics() {
    for name in RINGS {
        let raw = gunzip(&std::fs::read(fixture_path(name)).unwrap());
        for cut in (0..raw.len()).step_by(37) {
            let _ = load_from_raw(&raw[..cut]);
        }
        for at in (0..raw.len()).step_by(13) {
            let mut bad = raw.clone();
            bad[at] ^= 0x5a;
            let _ = load_from_raw(&bad);
        }
    }
}

// ------------------------------------------------------------ reloading

#[test]
fn handle_reloads_a_replaced_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("container.ring.gz");
    let ring_a = build_ring(dev_cluster_devices(3, "127.0.0.1", 6000, 3).unwrap(), 2, 4).unwrap();
    let ring_b = build_ring(dev_cluster_devices(4, "127.0.0.1", 7000, 4).unwrap(), 3, 5).unwrap();
    write_v1(&ring_a, &path).unwrap();

    let eager = RingHandle::open_with_interval(&path, Duration::ZERO).unwrap();
    let lazy = RingHandle::open_with_interval(&path, Duration::from_secs(3600)).unwrap();
    assert_eq!(
        RingHandle::open(&path).unwrap().reload_interval(),
        Duration::from_secs(15)
    );
    let held = eager.ring();
    assert_eq!(held.part_power(), 4);
    assert!(!eager.reload_if_changed().unwrap());

    write_v1(&ring_b, &path).unwrap();
    assert_eq!(eager.ring().part_power(), 5);
    assert_eq!(eager.ring().device_count(), 4);
    // A caller holding the old Arc keeps a consistent ring.
    assert_eq!(held.part_power(), 4);
    // The interval has not passed: the lazy handle still serves the old ring…
    assert_eq!(lazy.ring().part_power(), 4);
    // …until a check is forced.
    assert!(lazy.reload_if_changed().unwrap());
    assert_eq!(lazy.ring().part_power(), 5);

    // A damaged replacement keeps the loaded ring in service.
    std::fs::write(&path, b"garbage").unwrap();
    assert_eq!(eager.ring().part_power(), 5);
    assert!(eager.reload_if_changed().is_err());
    // A good file again is picked up.
    write_v1(&ring_a, &path).unwrap();
    assert_eq!(eager.ring().part_power(), 4);
}

// ------------------------------------------------------------ config

#[test]
fn swift_conf_hash_and_policies() {
    let c = SwiftConf::from_str(
        "[swift-hash]\nswift_hash_path_suffix = suf1\nswift_hash_path_prefix = pre1\n",
    )
    .unwrap();
    assert_eq!(c.hash_path_config(), hash_conf());
    assert_eq!(c.policy_count(), 1);
    assert_eq!(c.policy_sections, 0);
    assert_eq!(c.default_policy().name, "Policy-0");

    let c = SwiftConf::from_str(
        "[swift-hash]\nswift_hash_path_suffix = s\n\
         [storage-policy:0]\nname = gold\naliases = yellow, orange\n\
         [storage-policy:1]\nname = silver\ndefault = yes\n\
         [storage-policy:2]\nname = old\ndeprecated = true\n",
    )
    .unwrap();
    assert_eq!(c.hash_path_prefix, b"");
    assert_eq!(c.policy_count(), 3);
    assert_eq!(c.policy_sections, 3);
    assert_eq!(c.default_policy().index, 1);
    assert_eq!(
        c.policy(0).unwrap().aliases,
        vec!["gold", "yellow", "orange"]
    );
    assert!(c.policy(2).unwrap().deprecated);

    // Latin-1 prefix bytes.
    let c = SwiftConf::from_str("[swift-hash]\nswift_hash_path_prefix = caf\u{e9}\n").unwrap();
    assert_eq!(c.hash_path_prefix, b"caf\xe9");

    for (text, what) in [
        ("[swift-hash]\n", "no hash"),
        ("[swift-hash]\nswift_hash_path_prefix =\nswift_hash_path_suffix =\n", "empty"),
        ("", "empty file"),
        ("[swift-hash]\nswift_hash_path_suffix = s\n[storage-policy:1]\nname = a\n", "no policy 0"),
        (
            "[swift-hash]\nswift_hash_path_suffix = s\n[storage-policy:0]\nname = a\n[storage-policy:1]\nname = b\n",
            "no default",
        ),
        (
            "[swift-hash]\nswift_hash_path_suffix = s\n[storage-policy:0]\nname = a\ndefault = maybe\n",
            "bad bool",
        ),
        ("[swift-hash]\nswift_hash_path_suffix = s\n[storage-policy:x]\nname = a\n", "bad index"),
    ] {
        assert!(SwiftConf::from_str(text).is_err(), "{what}");
    }
    assert!(matches!(
        SwiftConf::from_str("[swift-hash]\n"),
        Err(ConfigError::NoHashPath)
    ));
}

#[test]
fn replicator_conf_defaults_and_overrides() {
    let r = ReplicatorConf::from_str("[container-replicator]\n").unwrap();
    assert_eq!(r.devices, Path::new("/srv/node"));
    assert!(r.mount_check);
    assert_eq!(r.bind_ip, "0.0.0.0");
    assert_eq!(r.bind_port, 6201);
    assert_eq!(r.swift_dir, Path::new("/etc/swift"));
    assert_eq!(r.ring_path(), Path::new("/etc/swift/container.ring.gz"));
    assert_eq!((r.per_diff, r.max_diffs, r.concurrency), (1000, 100, 8));
    assert_eq!(r.interval, 30.0);
    assert_eq!(r.databases_per_second, 50.0);
    assert_eq!((r.node_timeout, r.conn_timeout), (10.0, 0.5));
    assert_eq!(r.reclaim_age, 604_800.0);
    assert_eq!(r.rsync_module, "{replication_ip}::container");
    assert!(!r.rsync_compress && !r.handoffs_only);
    assert_eq!(r.handoff_delete, 0);
    assert_eq!(r.recon_cache_path, Path::new("/var/cache/swift"));
    assert_eq!(r.db_transfer, DbTransfer::Auto);
    assert!(r.warnings.is_empty());

    let text = "\
[DEFAULT]
devices = /srv/1/node
mount_check = false
bind_port = 6211
swift_dir = /tmp/swift

[app:container-server]
use = egg:swift#container

[container-replicator]
bind_port = 6311
per_diff = 500
max_diffs =
concurrency = 2
run_pause = 5
databases_per_second = 0
node_timeout = 2.5
conn_timeout = 1
reclaim_age = 3600
rsync_module = {replication_ip}::container{replication_port}/
rsync_compress = Yes
handoffs_only = on
handoff_delete = 2
recon_cache_path = /tmp/recon
db_transfer = http
";
    let r = ReplicatorConf::from_str(text).unwrap();
    assert_eq!(r.devices, Path::new("/srv/1/node"));
    assert!(!r.mount_check);
    assert_eq!(r.bind_port, 6311);
    assert_eq!((r.per_diff, r.max_diffs, r.concurrency), (500, 100, 2));
    assert_eq!(r.interval, 5.0);
    assert_eq!(r.warnings.len(), 1);
    assert_eq!(r.databases_per_second, 0.0);
    assert_eq!(
        (r.node_timeout, r.conn_timeout, r.reclaim_age),
        (2.5, 1.0, 3600.0)
    );
    assert_eq!(
        r.rsync_module,
        "{replication_ip}::container{replication_port}"
    );
    assert!(r.rsync_compress && r.handoffs_only);
    assert_eq!(r.handoff_delete, 2);
    assert_eq!(r.db_transfer, DbTransfer::Http);
    let ring = load(fixture_path(RINGS[0])).unwrap();
    assert_eq!(
        r.rsync_module_for(ring.device(3).unwrap()).unwrap(),
        "127.1.1.2::container6321"
    );

    let r = ReplicatorConf::from_str("[container-replicator]\ninterval = 7\nrun_pause = 5\nmax_diffs = 0\nhandoff_delete = AUTO\n").unwrap();
    assert_eq!((r.interval, r.max_diffs, r.handoff_delete), (7.0, 100, 0));
}

#[test]
fn config_errors_name_section_key_and_value() {
    let cases = [
        (
            "[container-replicator]\nmount_check = maybe\n",
            ["container-replicator", "mount_check", "maybe"],
        ),
        (
            "[container-replicator]\nper_diff = lots\n",
            ["container-replicator", "per_diff", "lots"],
        ),
        (
            "[container-replicator]\nconcurrency = 0\n",
            ["container-replicator", "concurrency", "0"],
        ),
        (
            "[container-replicator]\nnode_timeout = -1\n",
            ["container-replicator", "node_timeout", "-1"],
        ),
        (
            "[container-replicator]\nbind_port = 70000\n",
            ["container-replicator", "bind_port", "70000"],
        ),
        (
            "[container-replicator]\nhandoff_delete = some\n",
            ["container-replicator", "handoff_delete", "some"],
        ),
        (
            "[container-replicator]\ndb_transfer = ftp\n",
            ["container-replicator", "db_transfer", "ftp"],
        ),
        (
            "[container-replicator]\nrsync_module = {bogus}::c\n",
            ["rsync_module", "bogus", "{bogus}::c"],
        ),
    ];
    for (text, words) in cases {
        let msg = ReplicatorConf::from_str(text).unwrap_err().to_string();
        for w in words {
            assert!(msg.contains(w), "{msg:?} lacks {w:?}");
        }
    }
    assert!(matches!(
        ReplicatorConf::from_str("[DEFAULT]\n"),
        Err(ConfigError::MissingSection(_))
    ));
    assert!(matches!(
        ServerConf::from_str("[container-replicator]\n"),
        Err(ConfigError::MissingSection(_))
    ));
    let msg = ServerConf::from_str("[app:container-server]\nfallocate_reserve = 5 GB\n")
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("fallocate_reserve") && msg.contains("5 GB"),
        "{msg}"
    );
}

#[test]
fn server_conf_defaults_and_paste_overrides() {
    let s = ServerConf::from_str("[app:container-server]\n").unwrap();
    assert_eq!(s.bind_ip, "0.0.0.0");
    assert_eq!(s.bind_port, 6201);
    assert!(s.mount_check && s.replication_server && s.log_requests);
    assert_eq!(s.fallocate_reserve, FallocateReserve::Percent(1.0));
    assert_eq!((s.node_timeout, s.conn_timeout), (3.0, 0.5));
    assert_eq!(s.max_body_size, 64 << 20);
    assert_eq!(s.log_level, "INFO");

    let s = ServerConf::from_str(
        "[DEFAULT]\nbind_ip = 127.0.0.1\nbind_port = 6211\nlog_level = WARNING\n\
         [app:container-server]\nbind_port = 9999\nset log_level = DEBUG\n\
         replication_server = false\nfallocate_reserve = 1048576\nmax_body_size = 1024\n\
         devices = /srv/2/node\n",
    )
    .unwrap();
    assert_eq!(s.bind_ip, "127.0.0.1");
    // PasteDeploy: DEFAULT wins over a plain key, `set` overrides it.
    assert_eq!(s.bind_port, 6211);
    assert_eq!(s.log_level, "DEBUG");
    assert!(!s.replication_server);
    assert_eq!(s.fallocate_reserve, FallocateReserve::Bytes(1_048_576));
    assert_eq!(s.max_body_size, 1024);
    assert_eq!(s.devices, Path::new("/srv/2/node"));
    let s = ServerConf::from_str("[app:container-server]\nfallocate_reserve = 2.5%\n").unwrap();
    assert_eq!(s.fallocate_reserve, FallocateReserve::Percent(2.5));
}

#[test]
fn config_from_files_and_directories() {
    let dir = tempfile::tempdir().unwrap();
    let conf_d = dir.path().join("container-server.conf.d");
    std::fs::create_dir(&conf_d).unwrap();
    std::fs::write(conf_d.join("00.conf"), "[DEFAULT]\nbind_port = 6221\n").unwrap();
    std::fs::write(
        conf_d.join("10.conf"),
        "[container-replicator]\nconcurrency = 3\n[app:container-server]\n",
    )
    .unwrap();
    std::fs::write(conf_d.join(".hidden.conf"), "garbage").unwrap();
    let r = ReplicatorConf::from_file(&conf_d).unwrap();
    assert_eq!((r.bind_port, r.concurrency), (6221, 3));
    assert_eq!(ServerConf::from_file(&conf_d).unwrap().bind_port, 6221);
    let swift = dir.path().join("swift.conf");
    std::fs::write(
        &swift,
        "[swift-hash]\nswift_hash_path_prefix = pre1\nswift_hash_path_suffix = suf1\n",
    )
    .unwrap();
    assert_eq!(
        SwiftConf::from_file(&swift).unwrap().hash_path_config(),
        hash_conf()
    );
    assert!(matches!(
        SwiftConf::from_file(dir.path().join("missing.conf")),
        Err(ConfigError::Io { .. })
    ));
}

// ------------------------------------------------------------ CLI

fn rowsync(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rowsync"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn cli_lookup_json_matches_swift() {
    let dir = tempfile::tempdir().unwrap();
    let swift_conf = dir.path().join("swift.conf");
    std::fs::write(
        &swift_conf,
        "[swift-hash]\nswift_hash_path_prefix = pre1\nswift_hash_path_suffix = suf1\n",
    )
    .unwrap();
    let swift_conf = swift_conf.to_str().unwrap();
    let expect = expect();
    for (n, l) in expect["lookups"].as_array().unwrap().iter().enumerate() {
        // Every look-up against one ring or the other, alternating.
        let ring = fixture_path(RINGS[n % 2]);
        let mut args = vec![
            "ring",
            "lookup",
            "--ring",
            ring.to_str().unwrap(),
            "--swift-conf",
            swift_conf,
            "--json",
            l["account"].as_str().unwrap(),
        ];
        if let Some(c) = l["container"].as_str() {
            args.push(c);
        }
        let (ok, stdout, stderr) = rowsync(&args);
        assert!(ok, "{args:?}: {stderr}");
        let got: Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(got["part"], l["part"], "{args:?}");
        assert_eq!(got["primary_ids"], l["primary_ids"], "{args:?}");
        assert_eq!(got["handoff_ids"], l["handoff_ids"], "{args:?}");
        let nodes = got["nodes"].as_array().unwrap();
        for (i, (node, id)) in nodes.iter().zip(ids(&l["primary_ids"])).enumerate() {
            assert_eq!(node["id"].as_u64(), Some(u64::from(id)));
            assert_eq!(node["index"].as_u64(), Some(i as u64));
            assert_eq!(node["ip"], expect["devs"][id as usize]["ip"]);
        }
    }
    // --handoffs limits the list.
    let ring = fixture_path(RINGS[0]);
    let (ok, stdout, _) = rowsync(&[
        "ring",
        "lookup",
        "--ring",
        ring.to_str().unwrap(),
        "--swift-conf",
        swift_conf,
        "--json",
        "--handoffs",
        "2",
        "a0",
    ]);
    assert!(ok);
    let got: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(ids(&got["handoff_ids"]), vec![0, 8]);
    // Plain text output and errors.
    let (ok, stdout, _) = rowsync(&[
        "ring",
        "lookup",
        "--ring",
        ring.to_str().unwrap(),
        "--swift-conf",
        swift_conf,
        "a0",
    ]);
    assert!(ok && stdout.contains("partition 392"), "{stdout}");
    let (ok, _, stderr) = rowsync(&[
        "ring",
        "lookup",
        "--ring",
        "/nonexistent.ring.gz",
        "--swift-conf",
        swift_conf,
        "a0",
    ]);
    assert!(!ok && stderr.contains("nonexistent"), "{stderr}");
}

#[test]
fn cli_build_then_show() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("container.ring.gz");
    let out_s = out.to_str().unwrap();
    let (ok, _, stderr) = rowsync(&[
        "ring",
        "build",
        "--devices",
        "4",
        "--replicas",
        "3",
        "--part-power",
        "6",
        "--base-port",
        "6011",
        "--ip",
        "127.0.0.1",
        "--zones",
        "4",
        out_s,
    ]);
    assert!(ok, "{stderr}");
    let (ok, stdout, stderr) = rowsync(&["ring", "show", out_s, "--json"]);
    assert!(ok, "{stderr}");
    let got: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(got["part_power"], 6);
    assert_eq!(got["partitions"], 64);
    assert_eq!(got["replica_count"], 3.0);
    assert_eq!(got["devs"].as_array().unwrap().len(), 4);
    assert_eq!(got["devs"][3]["port"], 6014);
    assert_eq!(got["partition_counts"], serde_json::json!([48, 48, 48, 48]));
    let (ok, stdout, _) = rowsync(&["ring", "show", fixture_path(RINGS[1]).to_str().unwrap()]);
    assert!(
        ok && stdout.contains("part power 10") && stdout.contains("sdc1"),
        "{stdout}"
    );
    let (ok, stdout, _) = rowsync(&["ring", "lookup", "--help"]);
    assert!(
        ok && stdout.contains("primary_ids") && stdout.contains("Example"),
        "{stdout}"
    );
    let (ok, _, _) = rowsync(&[
        "ring",
        "build",
        "--devices",
        "2",
        "--replicas",
        "3",
        "--part-power",
        "4",
        "--base-port",
        "6011",
        out_s,
    ]);
    assert!(!ok);
}
