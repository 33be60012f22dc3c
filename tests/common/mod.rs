//! Shared test harness: real rowsync servers on loopback ports with their
//! own devices directories, and helpers to make container DBs on them.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rowsync::config::{ServerConf, SwiftConf};
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
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
}

impl TestNode {
    pub async fn start(devices: &[&str]) -> TestNode {
        Self::start_with(devices, "").await
    }

    /// `extra` is appended to `[app:container-server]`.
    pub async fn start_with(devices: &[&str], extra: &str) -> TestNode {
        let dir = tempfile::tempdir().unwrap();
        let devroot = dir.path().join("srv");
        for d in devices {
            std::fs::create_dir_all(devroot.join(d)).unwrap();
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conf = ServerConf::from_str(&format!(
            "[DEFAULT]\ndevices = {}\nmount_check = false\nbind_ip = 127.0.0.1\nbind_port = {}\n\
             [app:container-server]\nlog_requests = false\n{extra}\n",
            devroot.display(),
            addr.port()
        ))
        .unwrap();
        let swift = SwiftConf::from_str(SWIFT_CONF).unwrap();
        let state = Arc::new(AppState::new(conf, swift));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            let _ = server::serve(state, listener, async {
                let _ = rx.await;
            })
            .await;
        });
        TestNode {
            dir,
            devices: devroot,
            addr,
            shutdown: Some(tx),
            handle: Some(handle),
        }
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
        rowsync::db::files::db_path(&self.devices.join(device), part, &hash)
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
