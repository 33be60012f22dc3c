//! `rowsync status`: for every DB on a node (container or account DBs, by
//! the config's kind), which of the other replicas (the partition's
//! primaries in the ring) are behind, and by how many rows.
//!
//! For each DB and peer, a `sync` REPLICATE request carrying our own
//! replication info asks the peer for its info and its `point`: how far,
//! in OUR ROWIDs, it holds our rows (its `incoming_sync` entry for our DB
//! id). Like the first step of a replication pass, the peer merges our
//! metadata and DB timestamps, and records our `max_row` as its point when
//! both hashes already match; no row is sent. The effective point is the
//! larger of the peer's point and our own `outgoing_sync` entry for the
//! peer's DB id, exactly as the replicator decides "no change".
//!
//! - `in_sync`: same hash, or the point covers our `max_row` (the peer
//!   holds every row of this DB; `hash_match = false` then means the peer
//!   has rows we lack, which that peer's own status shows);
//! - `behind`: `behind_rows = max_row - point` of our rows may be missing
//!   on the peer (a point of -1 counts as 0; an upper bound: rows it got from a third replica count
//!   as missing until sync points catch up);
//! - `missing`: the peer has no DB for this container or account (404);
//! - `unreachable`: no answer within the timeout, or an error status
//!   (e.g. 507: drive not mounted).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use serde_json::Value;

use super::scan::{list_dbs, FoundDb};
use crate::config::{Ini, ReplicatorConf, ServerConf, ServerType, SwiftConf};
use crate::db::{Account, Broker, Container, DbInfo, DbKind, SyncPoint};
use crate::replication::client::ReplClient;
use crate::replication::daemon::local_devices;
use crate::replication::sender::sync_args;
use crate::replication::wire::{ReplicateOp, SyncArgs};
use crate::ring::{Device, Ring};
use crate::swift::merge::ObjectItem;

/// The parts of a node's container- or account-server.conf that status
/// needs.
#[derive(Debug, Clone)]
pub struct NodeConf {
    /// A label for output (the config path, or `node1` in a dev cluster).
    pub label: String,
    pub conf_path: PathBuf,
    /// The kind of DBs the config is for.
    pub kind: ServerType,
    pub devices: PathBuf,
    pub bind_ip: String,
    pub bind_port: u16,
    pub swift_dir: PathBuf,
}

impl NodeConf {
    /// Reads `[<kind>-replicator]` (or, without it, the server's
    /// `[app:...]` section) of a config of the kind its `[app:...]` section
    /// names (container when none does).
    pub fn from_file(path: &Path, label: impl Into<String>) -> anyhow::Result<NodeConf> {
        let ini = Ini::from_path(path).with_context(|| format!("reading {}", path.display()))?;
        let kind = ServerType::detect(&ini).unwrap_or(ServerType::Container);
        let section = format!("{}-replicator", kind.name());
        let (devices, bind_ip, bind_port, swift_dir) = if ini.has_section(&section) {
            let c = ReplicatorConf::from_ini(&ini, kind)
                .with_context(|| format!("reading {}", path.display()))?;
            (c.devices, c.bind_ip, c.bind_port, c.swift_dir)
        } else {
            let c = ServerConf::from_ini(&ini, kind)
                .with_context(|| format!("reading {}", path.display()))?;
            (c.devices, c.bind_ip, c.bind_port, c.swift_dir)
        };
        Ok(NodeConf {
            label: label.into(),
            conf_path: path.to_path_buf(),
            kind,
            devices,
            bind_ip,
            bind_port,
            swift_dir,
        })
    }
}

/// A peer replica's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplicaState {
    InSync,
    Behind,
    Missing,
    Unreachable,
}

impl ReplicaState {
    pub fn name(self) -> &'static str {
        match self {
            ReplicaState::InSync => "in_sync",
            ReplicaState::Behind => "behind",
            ReplicaState::Missing => "missing",
            ReplicaState::Unreachable => "unreachable",
        }
    }
}

/// One peer replica of a DB.
#[derive(Debug, Clone, Serialize)]
pub struct ReplicaStatus {
    /// `ip:port` of the peer (its replication address).
    pub node: String,
    pub device: String,
    pub status: ReplicaState,
    /// How far the peer holds our rows, in our ROWIDs (max of its answer
    /// and our outgoing sync point for it).
    pub point: Option<i64>,
    /// Our rows the peer may still lack (`max_row - point`, 0 when in sync).
    pub behind_rows: Option<i64>,
    pub hash_match: Option<bool>,
    pub remote_id: Option<String>,
    pub remote_max_row: Option<i64>,
    pub remote_count: Option<i64>,
    pub error: Option<String>,
}

/// One local DB and its peers.
#[derive(Debug, Clone, Serialize)]
pub struct DbStatus {
    pub db: String,
    /// `container` or `account`.
    pub kind: &'static str,
    pub account: String,
    /// Empty for account DBs.
    pub container: String,
    pub partition: u32,
    pub max_row: i64,
    pub count: i64,
    pub hash: String,
    pub id: String,
    /// This replica: `ip:port` and device.
    pub node: String,
    pub device: String,
    /// The node label (config path or dev-cluster node name).
    pub node_label: String,
    /// This device is not a primary of the partition (a handoff copy).
    pub handoff: bool,
    pub replicas: Vec<ReplicaStatus>,
    /// The DB could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What a status run needs besides the DB list.
#[derive(Debug, Clone)]
pub struct StatusContext {
    pub ring: Arc<Ring>,
    pub client: ReplClient,
    pub timeout: Duration,
    pub multiple_policies: bool,
}

/// What status needs of a local DB's info, whatever its kind.
#[derive(Debug, Clone)]
pub struct LocalInfo {
    pub account: String,
    pub container: Option<String>,
    pub max_row: i64,
    pub count: i64,
    pub hash: String,
    pub id: String,
    /// The `sync` request this DB's replicator would send.
    pub sync_args: SyncArgs,
    pub outgoing: Vec<SyncPoint>,
}

/// A DB to check, with its local info already read.
#[derive(Debug, Clone)]
pub struct LocalDb {
    pub found: FoundDb,
    pub local: Device,
    pub node_label: String,
    pub kind: ServerType,
    pub info: Result<LocalInfo, String>,
}

/// The DBs of the node's kind on its local devices (the ring's devices on
/// `bind_ip:bind_port`), their info read (pending files committed).
pub fn local_dbs(node: &NodeConf, ring: &Ring, multiple_policies: bool) -> Vec<LocalDb> {
    let mut locals: Vec<Device> = local_devices(ring, &node.bind_ip, node.bind_port)
        .into_values()
        .collect();
    locals.sort_by_key(|d| d.id);
    let names: Vec<String> = locals.iter().map(|d| d.device.clone()).collect();
    let by_name: HashMap<&str, &Device> = locals.iter().map(|d| (d.device.as_str(), d)).collect();
    let datadir = match node.kind {
        ServerType::Container => Container::DATADIR,
        ServerType::Account => Account::DATADIR,
    };
    list_dbs(&node.devices, datadir, &names)
        .into_iter()
        .map(|found| {
            let local = by_name[found.device.as_str()].clone();
            let info = match node.kind {
                ServerType::Container => read_local::<Container>(&found.path, multiple_policies),
                ServerType::Account => read_local::<Account>(&found.path, multiple_policies),
            }
            .map_err(|e| e.to_string());
            LocalDb {
                found,
                local,
                node_label: node.label.clone(),
                kind: node.kind,
                info,
            }
        })
        .collect()
}

fn read_local<K: DbKind>(path: &Path, multiple_policies: bool) -> crate::db::Result<LocalInfo> {
    let mut b = Broker::<K>::open_checked(path)?;
    b.set_pending_timeout(Duration::from_secs(5));
    let info = b.get_replication_info()?;
    let outgoing = b.get_syncs(false)?;
    Ok(LocalInfo {
        account: info.account().to_string(),
        container: info.container().map(str::to_string),
        max_row: info.max_row(),
        count: info.count(),
        hash: info.hash().to_string(),
        id: info.id().to_string(),
        sync_args: sync_args(&info, multiple_policies),
        outgoing,
    })
}

/// The parts of a peer's `sync` answer status reads (either kind).
#[derive(Debug, Clone, serde::Deserialize)]
struct RemoteInfo {
    id: String,
    hash: String,
    #[serde(default = "minus_one")]
    max_row: i64,
    #[serde(default)]
    count: i64,
    #[serde(default)]
    point: Option<i64>,
}

fn minus_one() -> i64 {
    -1
}

/// An error and its sources, `a: b: c` (repeats dropped).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = s.source();
    }
    parts.join(": ")
}

fn addr(d: &Device) -> String {
    if d.replication_ip.contains(':') {
        format!("[{}]:{}", d.replication_ip, d.replication_port)
    } else {
        format!("{}:{}", d.replication_ip, d.replication_port)
    }
}

/// Checks every peer of one local DB (concurrently, each bounded by the
/// context's timeout).
pub async fn check_db(ctx: &StatusContext, db: &LocalDb) -> DbStatus {
    let primaries: Vec<Device> = ctx
        .ring
        .get_part_nodes(db.found.partition)
        .into_iter()
        .map(|n| n.device)
        .collect();
    let handoff = !primaries.iter().any(|d| d.id == db.local.id);
    let peers: Vec<Device> = primaries
        .into_iter()
        .filter(|d| d.id != db.local.id)
        .collect();
    let mut status = DbStatus {
        db: db.found.path.display().to_string(),
        kind: db.kind.name(),
        account: String::new(),
        container: String::new(),
        partition: db.found.partition,
        max_row: -1,
        count: 0,
        hash: String::new(),
        id: String::new(),
        node: addr(&db.local),
        device: db.local.device.clone(),
        node_label: db.node_label.clone(),
        handoff,
        replicas: Vec::new(),
        error: None,
    };
    let info = match &db.info {
        Ok(x) => x,
        Err(e) => {
            status.error = Some(e.clone());
            return status;
        }
    };
    status.account = info.account.clone();
    status.container = info.container.clone().unwrap_or_default();
    status.max_row = info.max_row;
    status.count = info.count;
    status.hash = info.hash.clone();
    status.id = info.id.clone();
    // `sync` carries no rows: its body is the same for either kind.
    let op = ReplicateOp::<ObjectItem>::Sync(info.sync_args.clone());
    let checks = peers
        .iter()
        .map(|peer| check_peer(ctx, db, info, peer, &op));
    status.replicas = futures::future::join_all(checks).await;
    status
}

async fn check_peer(
    ctx: &StatusContext,
    db: &LocalDb,
    info: &LocalInfo,
    peer: &Device,
    op: &ReplicateOp<ObjectItem>,
) -> ReplicaStatus {
    let mut r = ReplicaStatus {
        node: addr(peer),
        device: peer.device.clone(),
        status: ReplicaState::Unreachable,
        point: None,
        behind_rows: None,
        hash_match: None,
        remote_id: None,
        remote_max_row: None,
        remote_count: None,
        error: None,
    };
    let resp = match ctx
        .client
        .replicate(peer, db.found.partition, &db.found.hash, op, ctx.timeout)
        .await
    {
        Ok(resp) => resp,
        Err(e) => {
            r.error = Some(error_chain(&e));
            return r;
        }
    };
    if resp.status == 404 {
        r.status = ReplicaState::Missing;
        return r;
    }
    if !resp.is_success() {
        let body = String::from_utf8_lossy(&resp.body);
        r.error = Some(format!("HTTP {}: {}", resp.status, body.trim()));
        return r;
    }
    let rinfo: RemoteInfo = match serde_json::from_slice::<Value>(&resp.body)
        .ok()
        .and_then(|v| serde_json::from_value(v).ok())
    {
        Some(i) => i,
        None => {
            r.error = Some("unreadable sync answer".into());
            return r;
        }
    };
    let local_point = info
        .outgoing
        .iter()
        .find(|p| p.remote_id == rinfo.id)
        .map_or(-1, |p| p.sync_point);
    let point = rinfo.point.unwrap_or(-1).max(local_point);
    let hash_match = rinfo.hash == info.hash;
    // ROWIDs start at 1: a point of -1 (nothing yet) means all max_row rows.
    let behind = if hash_match {
        0
    } else {
        (info.max_row - point.max(0)).max(0)
    };
    r.status = if behind == 0 {
        ReplicaState::InSync
    } else {
        ReplicaState::Behind
    };
    r.point = Some(point);
    r.behind_rows = Some(behind);
    r.hash_match = Some(hash_match);
    r.remote_id = Some(rinfo.id);
    r.remote_max_row = Some(rinfo.max_row);
    r.remote_count = Some(rinfo.count);
    r
}

/// Loads the ring of the node's kind in its `swift_dir` and its swift.conf
/// (`swift_conf` overrides `<swift_dir>/swift.conf`).
pub fn load_context(
    node: &NodeConf,
    swift_conf: Option<&Path>,
    timeout: Duration,
) -> anyhow::Result<StatusContext> {
    let swift_path = swift_conf
        .map(Path::to_path_buf)
        .unwrap_or_else(|| node.swift_dir.join("swift.conf"));
    let swift = SwiftConf::from_file(&swift_path)
        .with_context(|| format!("reading {}", swift_path.display()))?;
    let ring_path = node.swift_dir.join(format!("{}.ring.gz", node.kind.name()));
    let ring = crate::ring::load(&ring_path)
        .with_context(|| format!("loading ring {}", ring_path.display()))?;
    Ok(StatusContext {
        ring: Arc::new(ring),
        client: ReplClient::new(),
        timeout,
        multiple_policies: swift.policy_count() > 1,
    })
}

/// Counts per state over many DBs.
pub fn tally(dbs: &[DbStatus]) -> [(ReplicaState, usize); 4] {
    let mut out = [
        (ReplicaState::InSync, 0),
        (ReplicaState::Behind, 0),
        (ReplicaState::Missing, 0),
        (ReplicaState::Unreachable, 0),
    ];
    for r in dbs.iter().flat_map(|d| &d.replicas) {
        for (s, n) in out.iter_mut() {
            if *s == r.status {
                *n += 1;
            }
        }
    }
    out
}

/// The text table for a list of DB statuses.
pub fn render_text(dbs: &[DbStatus]) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let mut last_node: Option<(String, String)> = None;
    for d in dbs {
        let node_key = (d.node_label.clone(), d.device.clone());
        if last_node.as_ref() != Some(&node_key) {
            let _ = writeln!(s, "{} ({}/{})", d.node_label, d.node, d.device);
            last_node = Some(node_key);
        }
        if let Some(e) = &d.error {
            let _ = writeln!(s, "  {}  unreadable: {e}", d.db);
            continue;
        }
        let (path, rows) = if d.kind == Account::NAME {
            (format!("/{}", d.account), "containers")
        } else {
            (format!("/{}/{}", d.account, d.container), "objects")
        };
        let _ = writeln!(
            s,
            "  {path}  partition {}  max_row {}  {rows} {}{}",
            d.partition,
            d.max_row,
            d.count,
            if d.handoff { "  (handoff copy)" } else { "" }
        );
        for r in &d.replicas {
            let peer = format!("{}/{}", r.node, r.device);
            let detail = match r.status {
                ReplicaState::InSync => format!(
                    "point {}{}",
                    r.point.unwrap_or(-1),
                    if r.hash_match == Some(false) {
                        " (has every row of ours, plus rows we lack)"
                    } else {
                        ""
                    }
                ),
                ReplicaState::Behind => format!(
                    "point {}  {} rows behind",
                    r.point.unwrap_or(-1),
                    r.behind_rows.unwrap_or(0)
                ),
                ReplicaState::Missing => "no DB (the replicator ships the whole DB)".into(),
                ReplicaState::Unreachable => r.error.clone().unwrap_or_default(),
            };
            let _ = writeln!(s, "    {peer:<28} {:<12} {detail}", r.status.name());
        }
        if d.replicas.is_empty() {
            let _ = writeln!(s, "    (no other replica in the ring)");
        }
    }
    let t = tally(dbs);
    let total: usize = t.iter().map(|(_, n)| n).sum();
    let parts: Vec<String> = t
        .iter()
        .map(|(st, n)| format!("{n} {}", st.name()))
        .collect();
    let _ = writeln!(
        s,
        "{} DBs, {total} peer replicas: {}",
        dbs.len(),
        parts.join(", ")
    );
    s
}
