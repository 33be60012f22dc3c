//! Shared test harness: real rowsync servers on loopback ports with their
//! own devices directories, and helpers to make container DBs on them.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rowsync::config::{ServerConf, ServerType, SwiftConf};
use rowsync::db::ContainerBroker;
use rowsync::server::{self, AppState};
use rowsync::swift::merge::ObjectItem;
use rowsync::swift::{HashPathConfig, Timestamp};

pub const SWIFT_CONF: &str =
    "[swift-hash]\nswift_hash_path_prefix = pre1\nswift_hash_path_suffix = suf1\n";

pub fn hash_conf() -> HashPathConfig {
    HashPathConfig::new("pre1", "suf1")
}

/// A running server on 127.0.0.1 with a devices dir holding `devices`.
pub struct TestNode {
    pub dir: tempfile::TempDir,
    pub devices: PathBuf,
    pub addr: SocketAddr,
    pub state: Arc<AppState>,
    pub kind: ServerType,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
}

impl TestNode {
    pub async fn start(devices: &[&str]) -> TestNode {
        Self::start_with(devices, "").await
    }

    /// `extra` is appended to `[app:container-server]`.
    pub async fn start_with(devices: &[&str], extra: &str) -> TestNode {
        Self::start_kind(devices, ServerType::Container, extra).await
    }

    /// A server of `kind`; `extra` is appended to its `[app:<kind>-server]`.
    pub async fn start_kind(devices: &[&str], kind: ServerType, extra: &str) -> TestNode {
        let dir = tempfile::tempdir().unwrap();
        for d in devices {
            std::fs::create_dir_all(dir.path().join("srv").join(d)).unwrap();
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve_on(dir, listener, kind, extra)
    }

    fn serve_on(
        dir: tempfile::TempDir,
        listener: tokio::net::TcpListener,
        kind: ServerType,
        extra: &str,
    ) -> TestNode {
        let devroot = dir.path().join("srv");
        let addr = listener.local_addr().unwrap();
        let name = kind.name();
        let text = format!(
            "[DEFAULT]\ndevices = {}\nmount_check = false\nbind_ip = 127.0.0.1\nbind_port = {}\n\
             [app:{name}-server]\nuse = egg:swift#{name}\nlog_requests = false\n{extra}\n",
            devroot.display(),
            addr.port()
        );
        let ini = rowsync::config::ini::Ini::parse(&text, "server.conf").unwrap();
        let conf = ServerConf::from_ini(&ini, kind).unwrap();
        let swift = SwiftConf::from_str(SWIFT_CONF).unwrap();
        let state = Arc::new(AppState::new(conf, swift));
        let served = state.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            let _ = server::serve(served, listener, async {
                let _ = rx.await;
            })
            .await;
        });
        TestNode {
            dir,
            devices: devroot,
            addr,
            state,
            kind,
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    /// Stops the server (if running), then serves the same devices on the
    /// same port again.
    pub async fn restart(&mut self) {
        self.stop().await;
        let listener = bind_again(self.addr.port()).await;
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        let fresh = Self::serve_on(dir, listener, self.kind, "");
        let old = std::mem::replace(self, fresh);
        drop(old);
    }

    /// The handle that stops this server when sent to (or dropped).
    pub fn take_shutdown(&mut self) -> Option<tokio::sync::oneshot::Sender<()>> {
        self.shutdown.take()
    }

    /// Object rows received through merge_items so far.
    pub fn items_received(&self) -> u64 {
        self.state
            .rpc
            .counters()
            .items_received
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// REPLICATE ops of one kind served so far.
    pub fn ops(&self, name: &str) -> u64 {
        self.state
            .rpc
            .counters()
            .snapshot()
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
            .unwrap_or(0)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Stops the server and waits for it.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), h).await;
        }
    }

    pub fn db_path(&self, device: &str, part: u32, account: &str, container: &str) -> PathBuf {
        let hash = hash_conf()
            .hash_path(account, Some(container), None)
            .unwrap();
        rowsync::db::files::db_path(&self.devices.join(device), "containers", part, &hash)
    }

    pub fn create_db(
        &self,
        device: &str,
        part: u32,
        account: &str,
        container: &str,
    ) -> ContainerBroker {
        create_db_at(
            &self.db_path(device, part, account, container),
            account,
            container,
        )
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Binds 127.0.0.1:`port` again once a stopped server has let it go
/// (bounded: 5 s).
pub async fn bind_again(port: u16) -> tokio::net::TcpListener {
    for _ in 0..50 {
        match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
            Ok(l) => return l,
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
    panic!("port {port} not free again within 5 s");
}

pub fn create_db_at(path: &Path, account: &str, container: &str) -> ContainerBroker {
    ContainerBroker::create(
        path,
        account,
        container,
        Some(Timestamp::parse("1700000000").unwrap()),
        0,
    )
    .unwrap()
}

/// Timestamp `1700000000 + i` seconds, internal form.
pub fn ts(i: u64) -> String {
    Timestamp::from_raw(170_000_000_000_000 + i as i64 * 100_000, 0)
        .unwrap()
        .internal()
}

pub fn obj(name: &str, t: &str, ctype: &str) -> ObjectItem {
    ObjectItem::new(name, t, 1, ctype, "d41d8cd98f00b204e9800998ecf8427e")
}

/// A `/metrics` text parsed with a Prometheus text-format parser:
/// `name{labels}` (labels sorted, `kind` left out) -> value.
pub fn parse_metrics(text: &str) -> std::collections::BTreeMap<String, f64> {
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid exposition text");
    let mut out = std::collections::BTreeMap::new();
    for s in scrape.samples {
        let mut labels: Vec<(String, String)> = s
            .labels
            .iter()
            .filter(|(k, _)| k.as_str() != "kind")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        labels.sort();
        let key = if labels.is_empty() {
            s.metric.clone()
        } else {
            let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("{}{{{}}}", s.metric, l.join(","))
        };
        let v = match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            prometheus_parse::Value::Histogram(h) => h.iter().map(|b| b.count).fold(0.0, f64::max),
            prometheus_parse::Value::Summary(_) => f64::NAN,
        };
        out.insert(key, v);
    }
    out
}

/// The body of a `merge_items` of `names` (ROWIDs from 1) from `source`.
pub fn merge_items_body(names: &[&str], source: &str) -> Vec<u8> {
    let items: Vec<ObjectItem> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let mut o = obj(n, &ts(5), "t");
            o.rowid = Some(i as i64 + 1);
            o
        })
        .collect();
    rowsync::replication::wire::ReplicateOp::MergeItems {
        items,
        source: Some(source.into()),
    }
    .to_body()
}

/// Sends a REPLICATE request; returns (status, body).
pub async fn replicate(
    client: &reqwest::Client,
    node: &TestNode,
    path: &str,
    body: Vec<u8>,
) -> (u16, Vec<u8>) {
    let method = reqwest::Method::from_bytes(b"REPLICATE").unwrap();
    let r = client
        .request(method, node.url(path))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.bytes().await.unwrap().to_vec())
}

/// N single-device nodes (device `sd<i>`, servers on loopback ports), a ring
/// over them written by rowsync, and per-node replicators.
pub struct Cluster {
    pub nodes: Vec<TestNode>,
    pub swift_dir: tempfile::TempDir,
    pub ring: rowsync::ring::Ring,
    pub kind: ServerType,
}

impl Cluster {
    pub async fn start(n: usize, replicas: usize, part_power: u32) -> Cluster {
        Self::start_kind(n, replicas, part_power, ServerType::Container).await
    }

    /// `n` servers of `kind`, one device each, and that kind's ring.
    pub async fn start_kind(
        n: usize,
        replicas: usize,
        part_power: u32,
        kind: ServerType,
    ) -> Cluster {
        Self::start_kind_with(n, replicas, part_power, kind, "").await
    }

    /// As [`Cluster::start_kind`], with `server_extra` appended to every
    /// server's `[app:<kind>-server]`.
    pub async fn start_kind_with(
        n: usize,
        replicas: usize,
        part_power: u32,
        kind: ServerType,
        server_extra: &str,
    ) -> Cluster {
        let mut nodes = Vec::new();
        for i in 0..n {
            nodes.push(TestNode::start_kind(&[&format!("sd{i}")], kind, server_extra).await);
        }
        let devs: Vec<rowsync::ring::Device> = nodes
            .iter()
            .enumerate()
            .map(|(i, node)| {
                let mut d = rowsync::ring::dev_cluster_devices(1, "127.0.0.1", node.addr.port(), 1)
                    .unwrap()
                    .remove(0);
                d.device = format!("sd{i}");
                d.zone = i as i64 + 1;
                d
            })
            .collect();
        let ring = rowsync::ring::build_ring(devs, replicas, part_power).unwrap();
        let swift_dir = tempfile::tempdir().unwrap();
        let ring_file = format!("{}.ring.gz", kind.name());
        rowsync::ring::write_v1(&ring, swift_dir.path().join(ring_file)).unwrap();
        std::fs::write(swift_dir.path().join("swift.conf"), SWIFT_CONF).unwrap();
        Cluster {
            nodes,
            swift_dir,
            ring,
            kind,
        }
    }

    /// The replicator config text for node `i` (`extra` goes into
    /// `[<kind>-replicator]`).
    pub fn replicator_conf(&self, i: usize, extra: &str) -> String {
        format!(
            "[DEFAULT]\ndevices = {}\nmount_check = false\nbind_ip = 127.0.0.1\nbind_port = {}\n\
             swift_dir = {}\n[{}-replicator]\nrecon_cache_path = {}\n{}\
             databases_per_second = 0\nnode_timeout = 10\n{extra}\n",
            self.nodes[i].devices.display(),
            self.nodes[i].addr.port(),
            self.swift_dir.path().display(),
            self.kind.name(),
            self.nodes[i].dir.path().display(),
            if extra.contains("db_transfer") {
                ""
            } else {
                "db_transfer = http\n"
            },
        )
    }

    pub fn replicator(
        &self,
        i: usize,
        extra: &str,
    ) -> rowsync::replication::daemon::Replicator<rowsync::db::Container> {
        self.replicator_of(i, extra)
    }

    /// The replicator of node `i` for DBs of kind `K` (the cluster's kind).
    pub fn replicator_of<K: rowsync::replication::ReplKind>(
        &self,
        i: usize,
        extra: &str,
    ) -> rowsync::replication::daemon::Replicator<K> {
        let ini =
            rowsync::config::ini::Ini::parse(&self.replicator_conf(i, extra), "replicator.conf")
                .unwrap();
        let conf = rowsync::config::ReplicatorConf::from_ini(&ini, self.kind).unwrap();
        let swift = SwiftConf::from_str(SWIFT_CONF).unwrap();
        let ring_file = format!("{}.ring.gz", self.kind.name());
        let ring = rowsync::ring::RingHandle::open(self.swift_dir.path().join(ring_file)).unwrap();
        rowsync::replication::daemon::Replicator::new(conf, &swift, ring)
    }

    pub fn part(&self, account: &str, container: &str) -> u32 {
        self.ring
            .get_part(&hash_conf(), account, Some(container), None)
            .unwrap()
    }

    /// Node indexes of the partition's primaries, in ring order.
    pub fn primaries(&self, part: u32) -> Vec<usize> {
        self.ring
            .primary_ids(part)
            .into_iter()
            .map(|id| id as usize)
            .collect()
    }

    pub fn db_path(&self, i: usize, account: &str, container: &str) -> PathBuf {
        self.nodes[i].db_path(
            &format!("sd{i}"),
            self.part(account, container),
            account,
            container,
        )
    }

    pub fn create_db(&self, i: usize, account: &str, container: &str) -> ContainerBroker {
        create_db_at(&self.db_path(i, account, container), account, container)
    }

    pub fn open_db(&self, i: usize, account: &str, container: &str) -> Option<ContainerBroker> {
        let p = self.db_path(i, account, container);
        p.exists().then(|| ContainerBroker::open(p).unwrap())
    }
}

/// Sorted (name, created_at, size, content_type, etag, deleted) of every row.
pub fn all_rows(b: &ContainerBroker) -> Vec<(String, String, i64, String, String, i64)> {
    let mut v: Vec<_> = b
        .get_items_since(-1, 10_000_000)
        .unwrap()
        .into_iter()
        .map(|r| {
            (
                r.name,
                r.created_at,
                r.size,
                r.content_type,
                r.etag,
                r.deleted,
            )
        })
        .collect();
    v.sort();
    v
}

// ------------------------------------------------------------- fixtures

/// `tests/fixtures/swift-2.38`: Swift-made DBs, rings and golden vectors.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/swift-2.38")
}

/// One JSON fixture file.
pub fn fixture_json(name: &str) -> serde_json::Value {
    let path = fixtures().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// `dbs.json`: what Swift says of its fixture DBs.
pub fn dbs_json() -> serde_json::Value {
    fixture_json("dbs.json")
}

/// Copies a directory tree.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// A temp copy of the fixture node tree (`<tmp>/node/...`, DBs and pending
/// files): reading a DB commits its pending file.
pub fn fixture_node() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&fixtures().join("node"), &dir.path().join("node"));
    dir
}

// ------------------------------------------------------------- clock

/// A replicator clock running `offset` seconds (may be negative) ahead of
/// the system's; the offset can be changed while it is in use.
#[derive(Debug, Default)]
pub struct OffsetClock {
    offset_ms: std::sync::atomic::AtomicI64,
}

impl OffsetClock {
    pub fn new(offset_secs: f64) -> Arc<OffsetClock> {
        let c = Arc::new(OffsetClock::default());
        c.set(offset_secs);
        c
    }

    pub fn set(&self, offset_secs: f64) {
        self.offset_ms.store(
            (offset_secs * 1000.0) as i64,
            std::sync::atomic::Ordering::SeqCst,
        );
    }
}

impl rowsync::replication::Clock for OffsetClock {
    fn now(&self) -> std::time::SystemTime {
        let ms = self.offset_ms.load(std::sync::atomic::Ordering::SeqCst);
        let d = std::time::Duration::from_millis(ms.unsigned_abs());
        let now = std::time::SystemTime::now();
        if ms >= 0 {
            now + d
        } else {
            now - d
        }
    }
}

/// The `sync` a sender with DB `b` sends (Swift's arguments, no policy).
pub fn sync_op(b: &ContainerBroker) -> rowsync::replication::wire::ReplicateOp {
    let i = b.get_replication_info().unwrap();
    rowsync::replication::wire::ReplicateOp::Sync(rowsync::replication::wire::SyncArgs {
        max_row: i.max_row,
        hash: i.hash,
        id: i.id,
        created_at: i.created_at,
        put_timestamp: i.put_timestamp,
        delete_timestamp: i.delete_timestamp,
        metadata: i.metadata,
        policy: None,
    })
}
