//! Swift's recon and healthcheck middlewares on rowsync's servers: real
//! recon cache files (written by a replicator pass and by hand), real
//! quarantined DBs and devices, real HTTP on loopback. Values are checked
//! against the files (and the text against what Python's `json.dumps`
//! writes), not only statuses.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::*;
use md5::{Digest, Md5};
use rowsync::config::ini::Ini;
use rowsync::config::{ConfigError, PipelineFilters, ServerConf, ServerType, SwiftConf};
use rowsync::replication::daemon::PassFilter;
use rowsync::server::{self, AppState};
use serde_json::Value;

const A: &str = "AUTH_test";
const C: &str = "cont";

/// A server of `kind` from a whole config text, on a loopback port.
struct Served {
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
}

impl Served {
    async fn start(conf_text: &str, kind: ServerType, swift_conf: &str) -> Served {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let ini = Ini::parse(conf_text, "server.conf").unwrap();
        let conf = ServerConf::from_ini(&ini, kind).unwrap();
        let swift = SwiftConf::from_str(swift_conf).unwrap();
        let state = Arc::new(AppState::new(conf, swift));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            let _ = server::serve(state, listener, async {
                let _ = rx.await;
            })
            .await;
        });
        Served {
            addr,
            stop: Some(tx),
            handle: Some(handle),
        }
    }

    async fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = h.await;
        }
    }

    async fn req(&self, method: &str, path: &str) -> (u16, String, String, Option<String>) {
        let client = reqwest::Client::new();
        let r = client
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                format!("http://{}{path}", self.addr),
            )
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let h = |n: &str| r.headers().get(n).map(|v| v.to_str().unwrap().to_string());
        let ctype = h("content-type").unwrap_or_default();
        let clen = h("content-length");
        (status, ctype, r.text().await.unwrap(), clen)
    }

    /// GET, expecting 200 application/json; the body text.
    async fn json_text(&self, path: &str) -> String {
        let (status, ctype, body, _) = self.req("GET", path).await;
        assert_eq!(
            (status, ctype.as_str()),
            (200, "application/json"),
            "{path}: {body}"
        );
        body
    }

    async fn json(&self, path: &str) -> Value {
        serde_json::from_str(&self.json_text(path).await).unwrap()
    }
}

/// A server config with Swift's usual pipeline (`healthcheck recon
/// <kind>-server`).
fn recon_conf(kind: ServerType, devices: &Path, swift_dir: &Path, cache: &Path) -> String {
    let k = kind.name();
    format!(
        "[DEFAULT]\ndevices = {}\nmount_check = false\nbind_ip = 127.0.0.1\nswift_dir = {}\n\
         [pipeline:main]\npipeline = healthcheck recon {k}-server\n\
         [filter:healthcheck]\nuse = egg:swift#healthcheck\ndisable_path = {}\n\
         [filter:recon]\nuse = egg:swift#recon\nrecon_cache_path = {}\n\
         [app:{k}-server]\nuse = egg:swift#{k}\nlog_requests = false\n",
        devices.display(),
        swift_dir.display(),
        cache.join("disabled").display(),
        cache.display(),
    )
}

fn md5_file(p: &Path) -> String {
    hex::encode(Md5::digest(std::fs::read(p).unwrap()))
}

fn keys(v: &Value) -> Vec<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

fn nlink(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(p).unwrap().nlink()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_stats_come_from_the_replicators_recon_cache() {
    // A real pass writes the node's container.recon.
    let cluster = Cluster::start(2, 2, 3).await;
    let p = cluster.primaries(cluster.part(A, C));
    let db = cluster.create_db(p[0], A, C);
    db.merge_items(
        (0..20)
            .map(|i| obj(&format!("o{i}"), &ts(i), "t"))
            .collect(),
        None,
    )
    .unwrap();
    let stats = cluster
        .replicator(p[0], "")
        .run_once(&PassFilter::default())
        .await;
    assert_eq!(stats.rsync, 1, "{stats:?}");
    let node = &cluster.nodes[p[0]];
    let cache = node.dir.path();
    let mut srv = Served::start(
        &recon_conf(
            ServerType::Container,
            &node.devices,
            cluster.swift_dir.path(),
            cache,
        ),
        ServerType::Container,
        SWIFT_CONF,
    )
    .await;
    let text = srv.json_text("/recon/replication/container").await;
    let got: Value = serde_json::from_str(&text).unwrap();
    let file: Value = serde_json::from_str(
        std::fs::read_to_string(cache.join("container.recon"))
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        keys(&got),
        ["replication_time", "replication_stats", "replication_last"]
    );
    for k in ["replication_time", "replication_stats", "replication_last"] {
        assert_eq!(got[k], file[k], "{k}");
    }
    assert_eq!(got["replication_stats"]["rsync"], 1);
    assert_eq!(got["replication_stats"]["success"], 1);
    // The stats dict keeps the file's key order (Swift's dict order).
    assert_eq!(
        keys(&got["replication_stats"]),
        keys(&file["replication_stats"])
    );
    // Python's separators and float repr.
    assert!(text.starts_with("{\"replication_time\": "), "{text}");
    assert!(!text.contains("\":0") && !text.contains(",\""), "{text}");
    // The account side reads account.recon, absent here: all null.
    assert_eq!(
        srv.json_text("/recon/replication/account").await,
        r#"{"replication_time": null, "replication_stats": null, "replication_last": null}"#
    );
    // Old-style /recon/replication is the object replicator's.
    assert_eq!(
        keys(&srv.json("/recon/replication").await),
        [
            "replication_time",
            "replication_stats",
            "replication_last",
            "object_replication_time",
            "object_replication_last"
        ]
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_files_are_read_as_pythons_json_load() {
    let dir = tempfile::tempdir().unwrap();
    let devices = dir.path().join("srv");
    let swift_dir = dir.path().join("etc");
    let cache = dir.path().join("cache");
    for d in [&devices, &swift_dir, &cache] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::create_dir_all(devices.join("sda")).unwrap();
    std::fs::write(swift_dir.join("swift.conf"), SWIFT_CONF).unwrap();
    // Floats that need Python's repr, an int beyond 64 bits, NaN /
    // Infinity, a duplicate key, escapes and raw non-ASCII text.
    std::fs::write(
        cache.join("container.recon"),
        "{\"replication_stats\": {\"attempted\": 3, \"start\": 1.5e3, \"big\": \
         123456789012345678901234567890, \"neg0\": -0, \"inf\": 1E400, \"nan\": NaN, \
         \"s\": \"snow\u{2603} \\ud83d\\ude00 \\\"q\\\" \\/\"}, \"replication_time\": \
         0.30000000000000004, \"replication_time\": 0.1, \"replication_last\": \
         1700000000.1234567, \"sharding_stats\": {\"sharding\": {\"a\": [1, 2.5e-7, null, \
         true]}}, \"sharding_last\": 1.0, \"container_updater_sweep\": 2.25, \
         \"container_audits_passed\": 7}\n",
    )
    .unwrap();
    std::fs::write(cache.join("account.recon"), "[1, 2]").unwrap(); // not a dict
    std::fs::write(cache.join("object.recon"), "{\"async_pending\": 1} x").unwrap(); // extra data
    std::fs::write(cache.join("drive.recon"), "{\"drive_audit_errors\": 4}").unwrap();
    std::fs::write(
        cache.join("relinker.recon"),
        "{\"workers\": {\"0\": {\"total\": 1}}}",
    )
    .unwrap();
    let mut srv = Served::start(
        &recon_conf(ServerType::Container, &devices, &swift_dir, &cache),
        ServerType::Container,
        SWIFT_CONF,
    )
    .await;
    assert_eq!(
        srv.json_text("/recon/replication/container").await,
        "{\"replication_time\": 0.1, \"replication_stats\": {\"attempted\": 3, \"start\": \
         1500.0, \"big\": 123456789012345678901234567890, \"neg0\": 0, \"inf\": Infinity, \
         \"nan\": NaN, \"s\": \"snow\\u2603 \\ud83d\\ude00 \\\"q\\\" /\"}, \
         \"replication_last\": 1700000000.1234567}"
    );
    assert_eq!(
        srv.json_text("/recon/sharding").await,
        "{\"sharding_stats\": {\"sharding\": {\"a\": [1, 2.5e-07, null, true]}}, \
         \"sharding_time\": null, \"sharding_last\": 1.0}"
    );
    assert_eq!(
        srv.json_text("/recon/updater/container").await,
        "{\"container_updater_sweep\": 2.25}"
    );
    assert_eq!(
        srv.json_text("/recon/auditor/container").await,
        "{\"container_audits_passed\": 7, \"container_auditor_pass_completed\": null, \
         \"container_audits_since\": null, \"container_audits_failed\": null}"
    );
    // Unusable files: every key null, as Swift.
    assert_eq!(
        srv.json_text("/recon/replication/account").await,
        r#"{"replication_time": null, "replication_stats": null, "replication_last": null}"#
    );
    assert_eq!(
        srv.json_text("/recon/async").await,
        r#"{"async_pending": null, "async_pending_last": null}"#
    );
    assert_eq!(
        srv.json_text("/recon/driveaudit").await,
        r#"{"drive_audit_errors": 4}"#
    );
    assert_eq!(
        srv.json_text("/recon/relinker").await,
        r#"{"devices": null, "workers": {"0": {"total": 1}}}"#
    );
    assert_eq!(
        srv.json_text("/recon/auditor/account").await,
        "{\"account_audits_passed\": null, \"account_auditor_pass_completed\": null, \
         \"account_audits_since\": null, \"account_audits_failed\": null}"
    );
    assert_eq!(
        srv.json_text("/recon/expirer/object").await,
        r#"{"object_expiration_pass": null, "expired_last_pass": null}"#
    );
    // The file goes away: nulls again.
    std::fs::remove_file(cache.join("drive.recon")).unwrap();
    assert_eq!(
        srv.json_text("/recon/driveaudit").await,
        r#"{"drive_audit_errors": null}"#
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_quarantine_rings_and_host_facts() {
    let dir = tempfile::tempdir().unwrap();
    let devices = dir.path().join("srv");
    let swift_dir = dir.path().join("etc");
    let cache = dir.path().join("cache");
    for d in [&swift_dir, &cache] {
        std::fs::create_dir_all(d).unwrap();
    }
    for d in ["sda", "sdb", "sdc"] {
        std::fs::create_dir_all(devices.join(d)).unwrap();
    }
    std::fs::write(devices.join("not-a-device"), "x").unwrap();
    // sdb is "mounted" the way Swift's check_mount allows in containers.
    std::fs::write(devices.join("sdb").join(".ismount"), "").unwrap();
    // A real quarantined container DB, plus hand-made quarantine dirs.
    let db_path = devices.join("sda").join(
        "containers/1/abc/0123456789abcdef0123456789abcabc/0123456789abcdef0123456789abcabc.db",
    );
    create_db_at(&db_path, A, C);
    rowsync::db::files::quarantine(&db_path).unwrap();
    std::fs::create_dir_all(devices.join("sda/quarantined/containers/second")).unwrap();
    for q in ["objects/o1", "objects/o2", "objects-1/o3", "accounts/a1"] {
        std::fs::create_dir_all(devices.join("sdc/quarantined").join(q)).unwrap();
    }
    std::fs::create_dir_all(devices.join("sdc/quarantined/containers")).unwrap(); // empty
    let swift_conf = format!("{SWIFT_CONF}[storage-policy:0]\nname = gold\ndefault = yes\n[storage-policy:2]\nname = silver\n");
    std::fs::write(swift_dir.join("swift.conf"), &swift_conf).unwrap();
    std::fs::write(swift_dir.join("container.ring.gz"), "container ring").unwrap();
    std::fs::write(swift_dir.join("object-2.ring.gz"), "policy 2 ring").unwrap();
    std::fs::write(swift_dir.join("object-1.ring.gz"), "no such policy").unwrap();
    let mut srv = Served::start(
        &recon_conf(ServerType::Container, &devices, &swift_dir, &cache),
        ServerType::Container,
        &swift_conf,
    )
    .await;

    let q = srv.json_text("/recon/quarantined").await;
    if nlink(&devices.join("sdc/quarantined/containers")) == 2 {
        // (Filesystems that count a directory's links as Swift assumes.)
        let v: Value = serde_json::from_str(&q).unwrap();
        assert_eq!(keys(&v), ["objects", "containers", "accounts", "policies"]);
        assert_eq!(
            (&v["objects"], &v["containers"], &v["accounts"]),
            (&Value::from(3), &Value::from(2), &Value::from(1)),
            "{q}"
        );
        assert_eq!(v["policies"]["0"], serde_json::json!({"objects": 2}));
        assert_eq!(v["policies"]["1"], serde_json::json!({"objects": 1}));
        assert_eq!(v["policies"].as_object().unwrap().len(), 2);
    }

    let d = srv.json("/recon/devices").await;
    let key = devices.to_str().unwrap();
    assert_eq!(keys(&d), [key]);
    let mut names: Vec<&str> = d[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["not-a-device", "sda", "sdb", "sdc"]);

    let un = srv.json("/recon/unmounted").await;
    let mut un: Vec<Value> = un.as_array().unwrap().clone();
    un.sort_by_key(|v| v["device"].as_str().unwrap().to_string());
    assert_eq!(
        un,
        [
            serde_json::json!({"device": "sda", "mounted": false}),
            serde_json::json!({"device": "sdc", "mounted": false})
        ]
    );
    let du = srv.json_text("/recon/diskusage").await;
    let duv: Value = serde_json::from_str(&du).unwrap();
    let arr = duv.as_array().unwrap();
    assert_eq!(arr.len(), 3, "{du}");
    for e in arr {
        assert_eq!(keys(e), ["device", "mounted", "size", "used", "avail"]);
        if e["device"] == "sdb" {
            assert_eq!(e["mounted"], true);
            let (size, used, avail) = (
                e["size"].as_u64().unwrap(),
                e["used"].as_u64().unwrap(),
                e["avail"].as_u64().unwrap(),
            );
            assert!(size > 0 && used + avail == size, "{e}");
        } else {
            assert_eq!(
                (&e["mounted"], &e["size"], &e["used"], &e["avail"]),
                (
                    &Value::Bool(false),
                    &Value::from(""),
                    &Value::from(""),
                    &Value::from("")
                ),
            );
        }
    }
    assert!(du.contains("\"size\": \"\", \"used\": \"\", \"avail\": \"\""));

    // Ring sums: account (absent), container, then each policy's object
    // ring that exists; object-1 is no policy's ring.
    let sd = swift_dir.to_str().unwrap();
    assert_eq!(
        srv.json_text("/recon/ringmd5").await,
        format!(
            "{{\"{sd}/container.ring.gz\": \"{}\", \"{sd}/object-2.ring.gz\": \"{}\"}}",
            md5_file(&swift_dir.join("container.ring.gz")),
            md5_file(&swift_dir.join("object-2.ring.gz"))
        )
    );
    // SWIFT_CONF_FILE follows the server's swift_dir, as Swift sets it.
    assert_eq!(
        srv.json_text("/recon/swiftconfmd5").await,
        format!(
            "{{\"{sd}/swift.conf\": \"{}\"}}",
            md5_file(&swift_dir.join("swift.conf"))
        )
    );
    assert_eq!(
        srv.json_text("/recon/version").await,
        r#"{"version": "2.38.3"}"#
    );

    // Host facts from /proc, with Swift's keys and types.
    let t = srv.json_text("/recon/time").await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let tv: f64 = t.parse().unwrap();
    assert!(t.contains('.') && (tv - now).abs() < 60.0, "{t}");
    if Path::new("/proc/loadavg").exists() {
        let l = srv.json("/recon/load").await;
        assert_eq!(keys(&l), ["1m", "5m", "15m", "tasks", "processes"]);
        assert!(l["1m"].is_f64() && l["15m"].is_f64());
        assert!(l["tasks"].as_str().unwrap().contains('/'));
        assert!(l["processes"].is_u64());
        let m = srv.json("/recon/mem").await;
        assert!(m["MemTotal"].as_str().unwrap().ends_with(" kB"), "{m}");
        assert_eq!(keys(&m)[0], "MemTotal");
        let mounts = srv.json("/recon/mounted").await;
        let first = &mounts.as_array().unwrap()[0];
        assert_eq!(keys(first), ["device", "path"]);
        let s = srv.json("/recon/sockstat").await;
        assert_eq!(
            keys(&s)[..4],
            [
                "tcp_in_use",
                "orphan",
                "time_wait",
                "tcp_mem_allocated_bytes"
            ]
        );
    }

    // An unknown quarantine type: Swift's KeyError, a 500.
    std::fs::create_dir_all(devices.join("sda/quarantined/strange/x")).unwrap();
    let (status, ctype, _, _) = srv.req("GET", "/recon/quarantined").await;
    assert_eq!((status, ctype.as_str()), (500, "text/plain"));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_recon_paths_methods_and_the_account_server() {
    let dir = tempfile::tempdir().unwrap();
    let devices = dir.path().join("srv");
    let cache = dir.path().join("cache");
    std::fs::create_dir_all(devices.join("sda")).unwrap();
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::write(
        cache.join("account.recon"),
        "{\"replication_last\": 12.5, \"account_audits_failed\": 0, \"replication_stats\": {\"no_change\": 4}}",
    )
    .unwrap();
    let swift_dir = PathBuf::from("/etc/swift");
    let mut srv = Served::start(
        &recon_conf(ServerType::Account, &devices, &swift_dir, &cache),
        ServerType::Account,
        SWIFT_CONF,
    )
    .await;
    assert_eq!(
        srv.json_text("/recon/replication/account").await,
        "{\"replication_time\": null, \"replication_stats\": {\"no_change\": 4}, \
         \"replication_last\": 12.5}"
    );
    assert_eq!(
        srv.json_text("/recon/auditor/account").await,
        "{\"account_audits_passed\": null, \"account_auditor_pass_completed\": null, \
         \"account_audits_since\": null, \"account_audits_failed\": 0}"
    );
    // swift_dir /etc/swift: Swift's fixed SWIFT_CONF_FILE.
    let v = srv.json("/recon/swiftconfmd5").await;
    assert_eq!(keys(&v), ["/etc/swift/swift.conf"]);
    for (path, body) in [
        ("/recon/nope", "Invalid path: /recon/nope"),
        ("/recon/", "Invalid path: /recon/"),
        ("/recon/replication/", "Invalid path: /recon/replication/"),
        ("/recon/replication/x", "Invalid path: /recon/replication/x"),
        (
            "/recon/replication/account/x",
            "Invalid path: /recon/replication/account/x",
        ),
        (
            "/recon/updater/account",
            "Invalid path: /recon/updater/account",
        ),
        ("/recon/a%20b", "Invalid path: /recon/a%20b"),
    ] {
        let (status, ctype, got, _) = srv.req("GET", path).await;
        assert_eq!(
            (status, ctype.as_str(), got.as_str()),
            (404, "text/plain", body),
            "{path}"
        );
    }
    // Any method, a quoted path and a query string: the middleware's.
    let want = r#"{"version": "2.38.3"}"#;
    for (method, path) in [
        ("POST", "/recon/version"),
        ("PUT", "/recon/version?x=1"),
        ("REPLICATE", "/recon/version"),
        ("GET", "/%72econ/%76ersion"),
    ] {
        let (status, ctype, got, _) = srv.req(method, path).await;
        assert_eq!(
            (status, ctype.as_str(), got.as_str()),
            (200, "application/json", want)
        );
    }
    let (status, _, got, clen) = srv.req("HEAD", "/recon/version").await;
    assert_eq!(
        (status, got.as_str(), clen.as_deref()),
        (200, "", Some("21"))
    );
    // /recon without the slash is the account API's.
    let (status, _, got, _) = srv.req("GET", "/recon").await;
    assert_eq!((status, got.as_str()), (400, "Invalid path: /recon"));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_answers_ok_or_disabled_by_file() {
    let dir = tempfile::tempdir().unwrap();
    let devices = dir.path().join("srv");
    std::fs::create_dir_all(devices.join("sda")).unwrap();
    let mut srv = Served::start(
        &recon_conf(ServerType::Container, &devices, dir.path(), dir.path()),
        ServerType::Container,
        SWIFT_CONF,
    )
    .await;
    for (method, path) in [
        ("GET", "/healthcheck"),
        ("PUT", "/healthcheck"),
        ("DELETE", "/healthcheck?x=1"),
        ("REPLICATE", "/%68ealthcheck"),
    ] {
        let (status, ctype, body, _) = srv.req(method, path).await;
        assert_eq!(
            (status, ctype.as_str(), body.as_str()),
            (200, "text/plain", "OK"),
            "{method} {path}"
        );
    }
    let (status, _, body, clen) = srv.req("HEAD", "/healthcheck").await;
    assert_eq!(
        (status, body.as_str(), clen.as_deref()),
        (200, "", Some("2"))
    );
    // Only the exact path: the rest goes to the container API.
    let (status, _, body, _) = srv.req("GET", "/healthcheck/").await;
    assert_eq!(
        (status, body.as_str()),
        (400, "Invalid path: /healthcheck/")
    );
    std::fs::write(dir.path().join("disabled"), "").unwrap();
    let (status, ctype, body, _) = srv.req("GET", "/healthcheck").await;
    assert_eq!(
        (status, ctype.as_str(), body.as_str()),
        (503, "text/plain", "DISABLED BY FILE")
    );
    std::fs::remove_file(dir.path().join("disabled")).unwrap();
    let (status, _, body, _) = srv.req("GET", "/healthcheck").await;
    assert_eq!((status, body.as_str()), (200, "OK"));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_filters_recon_paths_reach_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let devices = dir.path().join("srv");
    std::fs::create_dir_all(devices.join("sda")).unwrap();
    for kind in [ServerType::Container, ServerType::Account] {
        let k = kind.name();
        // Filter sections that the pipeline does not name are not loaded;
        // nor is anything without a [pipeline:main].
        for conf in [
            format!(
                "[DEFAULT]\ndevices = {}\nmount_check = false\n\
                 [pipeline:main]\npipeline = {k}-server\n\
                 [filter:recon]\nuse = egg:swift#recon\n\
                 [filter:healthcheck]\nuse = egg:swift#healthcheck\n\
                 [app:{k}-server]\nuse = egg:swift#{k}\nlog_requests = false\n",
                devices.display()
            ),
            format!(
                "[DEFAULT]\ndevices = {}\nmount_check = false\n\
                 [app:{k}-server]\nuse = egg:swift#{k}\nlog_requests = false\n",
                devices.display()
            ),
        ] {
            let mut srv = Served::start(&conf, kind, SWIFT_CONF).await;
            for path in ["/recon/version", "/healthcheck", "/recon/diskusage"] {
                let (status, ctype, body, _) = srv.req("GET", path).await;
                assert_eq!(
                    (status, ctype.as_str(), body.as_str()),
                    (400, "text/plain", format!("Invalid path: {path}").as_str()),
                    "{k} {path}"
                );
            }
            // Four segments: the API's device / partition checks.
            let (status, _, body, _) = srv.req("GET", "/recon/replication/container").await;
            match kind {
                ServerType::Container => assert_eq!(
                    (status, body.as_str()),
                    (400, "Invalid path: /recon/replication/container")
                ),
                // device "recon", partition "replication", account "container"
                ServerType::Account => assert_eq!(status, 507, "{body}"),
            }
            srv.stop().await;
        }
    }
}

#[test]
fn pipeline_filters_are_read_as_paste_deploy_reads_them() {
    let text = "[DEFAULT]\ndevices = /d\nrecon_cache_path = /default/cache\nswift_dir = /s\n\
                [pipeline:main]\npipeline = catch_errors healthcheck\n  recon backend_ratelimit container-server\n\
                [filter:catch_errors]\nuse = egg:swift#catch_errors\n\
                [filter:healthcheck]\npaste.filter_factory = swift.common.middleware.healthcheck:filter_factory\ndisable_path = /x/off\n\
                [filter:recon]\nuse = egg:swift#recon\nrecon_cache_path = /own/cache\n\
                [filter:backend_ratelimit]\nuse = egg:swift#backend_ratelimit\n\
                [app:container-server]\nuse = egg:swift#container\nset devices = /app-only\n";
    let ini = Ini::parse(text, "c.conf").unwrap();
    let f = PipelineFilters::from_ini(&ini).unwrap();
    let recon = f.recon.unwrap();
    // A [DEFAULT] value wins over the section's own (PasteDeploy).
    assert_eq!(recon.recon_cache_path, "/default/cache");
    assert_eq!(recon.devices, "/d");
    assert_eq!(recon.swift_dir, "/s");
    assert_eq!(f.healthcheck.unwrap().disable_path, "/x/off");
    let conf = ServerConf::from_ini(&ini, ServerType::Container).unwrap();
    assert_eq!(conf.devices, PathBuf::from("/app-only"));
    assert!(conf.filters.recon.is_some());

    // `set` overrides [DEFAULT]; Swift's defaults otherwise.
    let ini = Ini::parse(
        "[DEFAULT]\nrecon_cache_path = /default/cache\n[pipeline:main]\npipeline = recon account-server\n\
         [filter:recon]\nuse = egg:swift#recon\nset recon_cache_path = /mine\n\
         [app:account-server]\nuse = egg:swift#account\n",
        "a.conf",
    )
    .unwrap();
    let recon = PipelineFilters::from_ini(&ini).unwrap().recon.unwrap();
    assert_eq!(
        (
            recon.recon_cache_path.as_str(),
            recon.devices.as_str(),
            recon.swift_dir.as_str()
        ),
        ("/mine", "/srv/node", "/etc/swift")
    );

    // A filter the pipeline names must have its section (Swift does not
    // start without it).
    let ini = Ini::parse(
        "[pipeline:main]\npipeline = recon container-server\n[app:container-server]\nuse = egg:swift#container\n",
        "c.conf",
    )
    .unwrap();
    assert!(matches!(
        ServerConf::from_ini(&ini, ServerType::Container),
        Err(ConfigError::MissingSection(s)) if s == "filter:recon"
    ));
    // No pipeline: no filters.
    let ini = Ini::parse("[app:container-server]\n", "c.conf").unwrap();
    assert_eq!(
        ServerConf::from_ini(&ini, ServerType::Container)
            .unwrap()
            .filters,
        PipelineFilters::default()
    );
}
