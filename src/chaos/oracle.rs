//! The chaos oracle: after the faults are healed and replication ran,
//! every acknowledged write is on every replica with its newest value, the
//! replicas of each DB are identical, every DB file passes SQLite's
//! integrity check, and no process panicked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::cluster::Cluster;
use super::load::{Load, Record, Write, ACCOUNT};
use crate::db::files;
use crate::db::{AccountBroker, ContainerBroker, DbInfo};

/// One replica of a container: rows by name, hash, metadata value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerState {
    /// name -> (created_at, deleted, size, etag)
    pub rows: BTreeMap<String, (String, i64, i64, String)>,
    pub hash: String,
    pub meta: Option<(String, String)>,
    pub pending: u64,
}

fn pending_len(db: &Path) -> u64 {
    std::fs::metadata(files::pending_path(db)).map_or(0, |m| m.len())
}

/// Reads a container replica (`None`: no DB there) without committing its
/// pending file (whose size is reported: convergence waits for it to be
/// empty).
pub fn read_container(db: &Path) -> anyhow::Result<Option<ContainerState>> {
    if !db.is_file() {
        return Ok(None);
    }
    let b = ContainerBroker::open(db)?;
    let items = b.items_since_no_commit(-1, 10_000_000)?;
    let rows = items
        .into_iter()
        .map(|i| (i.name, (i.created_at, i.deleted, i.size, i.etag)))
        .collect();
    let hash = b.get_info()?.hash().to_string();
    let meta = b.metadata()?.get("X-Container-Meta-Chaos").and_then(|v| {
        let a = v.as_array()?;
        Some((
            a.first()?.as_str()?.to_string(),
            a.get(1)?.as_str()?.to_string(),
        ))
    });
    Ok(Some(ContainerState {
        rows,
        hash,
        meta,
        pending: pending_len(db),
    }))
}

/// An account replica's container rows: name -> (put, delete timestamps,
/// deleted).
pub type AccountRows = BTreeMap<String, (String, String, i64)>;

/// An account replica: its container rows and pending bytes.
pub fn read_account(db: &Path) -> anyhow::Result<Option<(AccountRows, u64)>> {
    if !db.is_file() {
        return Ok(None);
    }
    let b = AccountBroker::open(db)?;
    let rows = b
        .items_since_no_commit(-1, 10_000_000)?
        .into_iter()
        .map(|i| (i.name, (i.put_timestamp, i.delete_timestamp, i.deleted)))
        .collect();
    Ok(Some((rows, pending_len(db))))
}

fn db_of(cluster: &Cluster, node: usize, datadir: &str, part: u32, hash: &str) -> PathBuf {
    let n = &cluster.nodes[node];
    files::db_path(&n.devices.join(&n.device), datadir, part, hash)
}

/// Are all replicas of every container and of the account identical, with
/// nothing left in pending files? (What convergence waits for.)
pub fn converged(cluster: &Cluster, load: &Load) -> anyhow::Result<bool> {
    for t in &load.targets {
        let mut first: Option<ContainerState> = None;
        for &i in &t.nodes {
            let Some(s) = read_container(&db_of(cluster, i, "containers", t.part, &t.hash))? else {
                return Ok(false);
            };
            if s.pending > 0 {
                return Ok(false);
            }
            match &first {
                None => first = Some(s),
                Some(f) if *f != s => return Ok(false),
                Some(_) => {}
            }
        }
    }
    let (apart, ahash) = account_place(cluster)?;
    let mut first = None;
    for i in account_nodes(cluster, apart) {
        let Some((rows, pending)) = read_account(&db_of(cluster, i, "accounts", apart, &ahash))?
        else {
            return Ok(false);
        };
        if pending > 0 {
            return Ok(false);
        }
        match &first {
            None => first = Some(rows),
            Some(f) if *f != rows => return Ok(false),
            Some(_) => {}
        }
    }
    Ok(true)
}

fn account_place(cluster: &Cluster) -> anyhow::Result<(u32, String)> {
    Ok((
        cluster
            .account_ring
            .get_part(&cluster.hash, ACCOUNT, None, None)?,
        cluster.hash.hash_path(ACCOUNT, None, None)?,
    ))
}

fn account_nodes(cluster: &Cluster, part: u32) -> Vec<usize> {
    cluster
        .account_ring
        .get_part_nodes(part)
        .into_iter()
        .map(|n| n.device.id as usize)
        .collect()
}

/// What the oracle found wrong (empty: the run passed).
pub fn check(cluster: &Cluster, load: &Load) -> Vec<String> {
    let mut bad = Vec::new();
    let records = load.records();
    for (ti, t) in load.targets.iter().enumerate() {
        let mut states = Vec::new();
        for &i in &t.nodes {
            match read_container(&db_of(cluster, i, "containers", t.part, &t.hash)) {
                Ok(Some(s)) => states.push((i, s)),
                Ok(None) => bad.push(format!("{}: no replica on node{}", t.container, i + 1)),
                Err(e) => bad.push(format!("{}: node{} unreadable: {e:#}", t.container, i + 1)),
            }
        }
        for w in states.windows(2) {
            if w[0].1 != w[1].1 {
                bad.push(format!(
                    "{}: node{} and node{} differ ({} vs {} rows, hash {} vs {})",
                    t.container,
                    w[0].0 + 1,
                    w[1].0 + 1,
                    w[0].1.rows.len(),
                    w[1].1.rows.len(),
                    w[0].1.hash,
                    w[1].1.hash
                ));
            }
        }
        let mine: Vec<&Record> = records.iter().filter(|r| r.target == ti).collect();
        for (i, s) in &states {
            bad.extend(lost_writes(&t.container, *i, s, &mine));
        }
    }
    bad.extend(integrity(cluster));
    bad.extend(cluster.panics());
    bad
}

/// Acknowledged writes a replica does not hold with their newest value.
fn lost_writes(container: &str, node: usize, s: &ContainerState, recs: &[&Record]) -> Vec<String> {
    let mut bad = Vec::new();
    // Per object: the newest acknowledged write, and every write sent.
    let mut by_name: BTreeMap<&str, Vec<&Record>> = BTreeMap::new();
    let mut meta: Vec<&Record> = Vec::new();
    for r in recs {
        match r.write {
            Write::Meta { .. } => meta.push(r),
            _ => by_name.entry(r.name.as_str()).or_default().push(r),
        }
    }
    for (name, writes) in by_name {
        let newest_acked = writes
            .iter()
            .filter(|r| r.acked())
            .map(|r| &r.timestamp)
            .max();
        let row = s.rows.get(name);
        match (newest_acked, row) {
            (None, None) => {}
            (Some(t), None) => bad.push(format!(
                "{container} node{}: acknowledged write of {name} at {t} is missing",
                node + 1
            )),
            (_, Some((created, deleted, size, etag))) => {
                if newest_acked.is_some_and(|t| created < t) {
                    bad.push(format!(
                        "{container} node{}: {name} is at {created}, older than the acknowledged {}",
                        node + 1,
                        newest_acked.map_or("", |t| t.as_str())
                    ));
                }
                let matches = writes.iter().any(|r| {
                    r.timestamp == *created
                        && match &r.write {
                            Write::Put { size: sz, etag: e } => {
                                *deleted == 0 && sz == size && e == etag
                            }
                            Write::Delete => *deleted == 1,
                            Write::Meta { .. } => false,
                        }
                });
                if !matches {
                    bad.push(format!(
                        "{container} node{}: {name} row ({created}, deleted={deleted}) matches no write",
                        node + 1
                    ));
                }
            }
        }
    }
    if let Some(t) = meta
        .iter()
        .filter(|r| r.acked())
        .map(|r| &r.timestamp)
        .max()
    {
        match &s.meta {
            Some((_, mt)) if mt >= t => {}
            other => bad.push(format!(
                "{container} node{}: metadata {other:?} is older than the acknowledged write at {t}",
                node + 1
            )),
        }
    }
    bad
}

/// `PRAGMA integrity_check` of every DB file on every node.
fn integrity(cluster: &Cluster) -> Vec<String> {
    let mut bad = Vec::new();
    for n in &cluster.nodes {
        for datadir in ["containers", "accounts"] {
            let root = n.devices.join(&n.device).join(datadir);
            for db in db_files_under(&root) {
                let res = if datadir == "containers" {
                    ContainerBroker::open(&db).and_then(|b| b.integrity_check())
                } else {
                    AccountBroker::open(&db).and_then(|b| b.integrity_check())
                };
                match res {
                    Ok(s) if s == "ok" => {}
                    Ok(s) => bad.push(format!("{}: integrity_check: {s}", db.display())),
                    Err(e) => bad.push(format!("{}: {e}", db.display())),
                }
            }
        }
    }
    bad
}

/// `*.db` files below `root` (bounded depth: part/suffix/hash/file).
fn db_files_under(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![(root.to_path_buf(), 0)];
    while let Some((d, depth)) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() && depth < 3 {
                dirs.push((p, depth + 1));
            } else if p.extension().is_some_and(|x| x == "db") {
                out.push(p);
            }
        }
    }
    out
}
