//! The client load of a chaos run, and its record: object PUTs (new names
//! and overwrites), DELETEs and container metadata POSTs, each sent to
//! every replica's container server as Swift's object servers and proxy
//! send them, with strictly increasing timestamps. A write is acknowledged
//! when a quorum of replicas answered 2xx.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::cluster::Cluster;
use crate::swift::Timestamp;

/// The account every run writes into.
pub const ACCOUNT: &str = "AUTH_chaos";

/// A container of the run and where its replicas are.
#[derive(Debug, Clone)]
pub struct Target {
    pub container: String,
    pub part: u32,
    pub hash: String,
    /// Node indexes of its primaries, in ring order.
    pub nodes: Vec<usize>,
}

/// What a write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    Put {
        size: i64,
        etag: String,
    },
    Delete,
    /// `X-Container-Meta-Chaos: value`.
    Meta {
        value: String,
    },
}

/// One write and how the replicas answered.
#[derive(Debug, Clone)]
pub struct Record {
    pub target: usize,
    /// Object name (empty for metadata).
    pub name: String,
    pub timestamp: String,
    pub write: Write,
    pub successes: usize,
    pub replicas: usize,
}

impl Record {
    /// A quorum of replicas answered 2xx.
    pub fn acked(&self) -> bool {
        self.successes > self.replicas / 2
    }
}

/// The load's shared state.
pub struct Load {
    pub targets: Vec<Target>,
    /// `(node index, container port, account port, device)`.
    endpoints: Vec<(u16, u16, String)>,
    account_part: u32,
    account_nodes: Vec<usize>,
    client: reqwest::Client,
    last_ts: AtomicI64,
    pub records: Mutex<Vec<Record>>,
    pub stop: AtomicBool,
}

impl Load {
    pub fn new(cluster: &Cluster, containers: usize) -> anyhow::Result<Load> {
        let mut targets = Vec::new();
        for c in 0..containers {
            let container = format!("c{c}");
            let part = cluster
                .ring
                .get_part(&cluster.hash, ACCOUNT, Some(&container), None)?;
            let hash = cluster.hash.hash_path(ACCOUNT, Some(&container), None)?;
            let nodes = cluster
                .ring
                .get_part_nodes(part)
                .into_iter()
                .map(|n| n.device.id as usize)
                .collect();
            targets.push(Target {
                container,
                part,
                hash,
                nodes,
            });
        }
        let account_part = cluster
            .account_ring
            .get_part(&cluster.hash, ACCOUNT, None, None)?;
        let account_nodes = cluster
            .account_ring
            .get_part_nodes(account_part)
            .into_iter()
            .map(|n| n.device.id as usize)
            .collect();
        Ok(Load {
            targets,
            endpoints: cluster
                .nodes
                .iter()
                .map(|n| (n.ports[0], n.ports[1], n.device.clone()))
                .collect(),
            account_part,
            account_nodes,
            client: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(3))
                .pool_idle_timeout(Duration::from_secs(5))
                .build()?,
            last_ts: AtomicI64::new(0),
            records: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        })
    }

    /// A timestamp newer than every one given before.
    fn next_ts(&self) -> String {
        let now = Timestamp::now().raw();
        let mut prev = self.last_ts.load(Ordering::SeqCst);
        loop {
            let next = now.max(prev + 1);
            match self
                .last_ts
                .compare_exchange(prev, next, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => {
                    return Timestamp::from_raw(next, 0)
                        .map(|t| t.internal())
                        .unwrap_or_default()
                }
                Err(p) => prev = p,
            }
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> bool {
        matches!(req.send().await, Ok(r) if r.status().is_success())
    }

    /// Sends `req`: Ok on 2xx, else what came back (for error messages).
    async fn try_send(&self, req: reqwest::RequestBuilder) -> Result<(), String> {
        match req.send().await {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!("answered {}", r.status())),
            Err(e) => Err(format!("{e}")),
        }
    }

    /// Creates the account and the containers on every replica (retried,
    /// bounded; before any fault).
    pub async fn setup(&self) -> anyhow::Result<()> {
        let ts = self.next_ts();
        for &i in &self.account_nodes {
            let (_, aport, dev) = &self.endpoints[i];
            let url = format!(
                "http://127.0.0.1:{aport}/{dev}/{}/{ACCOUNT}",
                self.account_part
            );
            let mut last = Err(String::new());
            for _ in 0..50 {
                last = self
                    .try_send(self.client.put(&url).header("X-Timestamp", &ts))
                    .await;
                if last.is_ok() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            if let Err(e) = last {
                anyhow::bail!("cannot create the account on node{}: last PUT {e}", i + 1);
            }
        }
        for t in &self.targets {
            let ts = self.next_ts();
            for (k, &i) in t.nodes.iter().enumerate() {
                let (cport, _, dev) = &self.endpoints[i];
                let a = self.account_nodes[k % self.account_nodes.len()];
                let (_, aport, adev) = &self.endpoints[a];
                let url = format!(
                    "http://127.0.0.1:{cport}/{dev}/{}/{ACCOUNT}/{}",
                    t.part, t.container
                );
                let mut last = Err(String::new());
                for _ in 0..50 {
                    let req = self
                        .client
                        .put(&url)
                        .header("X-Timestamp", &ts)
                        .header("X-Account-Host", format!("127.0.0.1:{aport}"))
                        .header("X-Account-Partition", self.account_part.to_string())
                        .header("X-Account-Device", adev.as_str());
                    last = self.try_send(req).await;
                    if last.is_ok() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                if let Err(e) = last {
                    anyhow::bail!(
                        "cannot create {} on node{}: last PUT {e}",
                        t.container,
                        i + 1
                    );
                }
            }
        }
        Ok(())
    }

    /// One writer: random writes until `stop` (or `limit` writes).
    pub async fn writer(self: Arc<Self>, seed: u64, limit: usize) {
        let mut rng = StdRng::seed_from_u64(seed);
        for _ in 0..limit {
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            let ti = rng.gen_range(0..self.targets.len());
            let t = &self.targets[ti];
            let roll: u32 = rng.gen_range(0..100);
            let name = format!("o{:03}", rng.gen_range(0..80));
            let ts = self.next_ts();
            let (write, name) = if roll < 65 {
                let size = rng.gen_range(0..100_000);
                let etag = format!("{:032x}", rng.gen::<u128>());
                (Write::Put { size, etag }, name)
            } else if roll < 90 {
                (Write::Delete, name)
            } else {
                let value = format!("v{}", rng.gen_range(0..1_000_000));
                (Write::Meta { value }, String::new())
            };
            let sends = t.nodes.iter().map(|&i| {
                let (cport, _, dev) = &self.endpoints[i];
                let base = format!(
                    "http://127.0.0.1:{cport}/{dev}/{}/{ACCOUNT}/{}",
                    t.part, t.container
                );
                let req = match &write {
                    Write::Put { size, etag } => self
                        .client
                        .put(format!("{base}/{name}"))
                        .header("X-Timestamp", &ts)
                        .header("X-Size", size.to_string())
                        .header("X-Content-Type", "application/octet-stream")
                        .header("X-Etag", etag.as_str()),
                    Write::Delete => self
                        .client
                        .delete(format!("{base}/{name}"))
                        .header("X-Timestamp", &ts),
                    Write::Meta { value } => self
                        .client
                        .post(base)
                        .header("X-Timestamp", &ts)
                        .header("X-Container-Meta-Chaos", value.as_str()),
                };
                self.send(req)
            });
            let results = futures::future::join_all(sends).await;
            let successes = results.iter().filter(|ok| **ok).count();
            let rec = Record {
                target: ti,
                name,
                timestamp: ts,
                write,
                successes,
                replicas: t.nodes.len(),
            };
            match self.records.lock() {
                Ok(mut g) => g.push(rec),
                Err(p) => p.into_inner().push(rec),
            }
        }
    }

    pub fn records(&self) -> Vec<Record> {
        match self.records.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}
