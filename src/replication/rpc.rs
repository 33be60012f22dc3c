//! The receiving side of REPLICATE (Swift's `ReplicatorRpc` and
//! `ContainerReplicatorRpc`): ops against the local DB of a kind `K`, with
//! no HTTP in sight. Blocking; the server runs it on a blocking thread.
//!
//! Differences from Swift, all wire-compatible:
//! - only the whitelisted ops exist; bad arguments are 400, not 500;
//! - `complete_rsync` / `rsync_then_merge` take plain file names only and
//!   check that the shipped file is a readable DB of this container before
//!   it replaces anything; `complete_rsync` refuses when any
//!   `<hash>[_<epoch>].db` exists, not only the exact name;
//! - `rsync_then_merge` records the sender's sync point from the shipped
//!   file before local rows are merged into it (so the sender's later rows
//!   are not skipped), carries the local DB's timestamps over, and re-merges
//!   rows that reached the local DB during the merge under its write lock
//!   and the directory lock;
//! - `merge_syncs` drops entries naming the receiver's own DB id;
//! - re-id'd DBs take the real device name as their id suffix.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::policy::{incorrect_policy_index, PolicyInfo};
use super::sync_cache::SyncCache;
use super::wire::{OpName, ReplicateOp, SyncArgs, WireItem};
use crate::db::files::{self, db_files, is_db_filename_for, is_plain_name};
use crate::db::lock::lock_dir;
use crate::db::{
    parse_metadata, Broker, DbError, DbInfo, DbItem, DbKind, SyncPoint, DEFAULT_PENDING_TIMEOUT,
};
use crate::swift::{pyjson, HashPathConfig, Timestamp};

/// A kind of DB the engine replicates: its rows travel in `merge_items`.
pub trait ReplKind: DbKind<Item: WireItem> {}
impl<K: DbKind<Item: WireItem>> ReplKind for K {}

/// The REPLICATE receiver of a server's kind of DB.
#[derive(Debug, Clone)]
pub enum KindRpc {
    Container(ReplicatorRpc<crate::db::Container>),
    Account(ReplicatorRpc<crate::db::Account>),
}

impl KindRpc {
    pub fn new(
        kind: crate::config::ServerType,
        devices: impl Into<PathBuf>,
        mount_check: bool,
        hash_conf: HashPathConfig,
    ) -> Self {
        match kind {
            crate::config::ServerType::Container => {
                KindRpc::Container(ReplicatorRpc::new(devices, mount_check, hash_conf))
            }
            crate::config::ServerType::Account => {
                KindRpc::Account(ReplicatorRpc::new(devices, mount_check, hash_conf))
            }
        }
    }

    pub fn counters(&self) -> &Arc<RpcCounters> {
        match self {
            KindRpc::Container(r) => &r.counters,
            KindRpc::Account(r) => &r.counters,
        }
    }

    /// DBs the receiver holds open between requests.
    pub fn open_dbs(&self) -> usize {
        match self {
            KindRpc::Container(r) => r.brokers.len(),
            KindRpc::Account(r) => r.brokers.len(),
        }
    }

    /// Parses a REPLICATE body for this kind and runs the op. The op's
    /// name (when the body parsed) comes back for logging; a body that does
    /// not parse answers 400 and touches nothing.
    pub fn handle(
        &self,
        device: &str,
        partition: &str,
        hash: &str,
        body: &[u8],
    ) -> (Option<OpName>, RpcResponse) {
        match self {
            KindRpc::Container(r) => r.handle(device, partition, hash, body),
            KindRpc::Account(r) => r.handle(device, partition, hash, body),
        }
    }
}

/// A REPLICATE answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcResponse {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl RpcResponse {
    fn empty(status: u16) -> Self {
        RpcResponse {
            status,
            content_type: "text/plain; charset=UTF-8",
            body: Vec::new(),
        }
    }

    fn text(status: u16, msg: impl Into<String>) -> Self {
        RpcResponse {
            status,
            content_type: "text/plain; charset=UTF-8",
            body: msg.into().into_bytes(),
        }
    }

    fn json(status: u16, v: &Value) -> Self {
        RpcResponse {
            status,
            content_type: "application/json",
            body: pyjson::dumps(v).into_bytes(),
        }
    }
}

/// Checks a device as Swift's `check_drive`: a plain name of safe
/// characters, a directory under `devices`, and a mount point when
/// `mount_check` is on. Returns the device path.
pub fn check_drive(devices: &Path, device: &str, mount_check: bool) -> Option<PathBuf> {
    let safe = !device.is_empty()
        && device != "."
        && device != ".."
        && device
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'~'));
    if !safe {
        return None;
    }
    let path = devices.join(device);
    if mount_check {
        is_mount(&path).then_some(path)
    } else {
        path.is_dir().then_some(path)
    }
}

/// Is `path` a mount point (a directory on another device than its parent,
/// or the same inode as its parent)?
pub fn is_mount(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Ok(me), Ok(parent)) = (
        std::fs::symlink_metadata(path),
        std::fs::metadata(path.join("..")),
    ) else {
        return false;
    };
    if !me.is_dir() {
        return false;
    }
    me.dev() != parent.dev() || me.ino() == parent.ino()
}

/// Per-DB in-process locks: ops on one DB run one at a time in this
/// process (a whole-DB replacement must not race a merge into the same DB).
#[derive(Debug, Default, Clone)]
pub struct DbLocks {
    inner: Arc<Mutex<HashMap<String, Arc<Mutex<()>>>>>,
}

impl DbLocks {
    pub fn get(&self, key: &str) -> Arc<Mutex<()>> {
        let mut map = match self.inner.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        if map.len() > 10_000 {
            map.retain(|_, v| Arc::strong_count(v) > 1);
        }
        map.entry(key.to_string()).or_default().clone()
    }
}

/// Counts of REPLICATE ops served (successful or not), per op, and rows
/// received through `merge_items`.
#[derive(Debug, Default)]
pub struct RpcCounters {
    ops: [AtomicU64; OpName::ALL.len()],
    pub items_received: AtomicU64,
    /// `sync` ops answered from the [`SyncCache`].
    pub cached_syncs: AtomicU64,
}

impl RpcCounters {
    fn count<I: WireItem>(&self, op: &ReplicateOp<I>) {
        if let ReplicateOp::MergeItems { items, .. } = op {
            self.items_received
                .fetch_add(items.len() as u64, Ordering::Relaxed);
        }
        let i = OpName::ALL
            .iter()
            .position(|o| *o == op.op_name())
            .unwrap_or(0);
        self.ops[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Ops served of one kind.
    pub fn get(&self, op: OpName) -> u64 {
        OpName::ALL
            .iter()
            .position(|o| *o == op)
            .map_or(0, |i| self.ops[i].load(Ordering::Relaxed))
    }

    /// A snapshot as `(name, value)` pairs: every op, then `items_received`.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        let mut v: Vec<(&'static str, u64)> = OpName::ALL
            .iter()
            .map(|o| (o.as_str(), self.get(*o)))
            .collect();
        v.push((
            "items_received",
            self.items_received.load(Ordering::Relaxed),
        ));
        v.push(("cached_syncs", self.cached_syncs.load(Ordering::Relaxed)));
        v
    }
}

/// Open brokers kept between requests (a warm SQLite page cache makes
/// consecutive `merge_items` batches into one DB much cheaper). A broker is
/// taken out while in use (under the DB's lock) and put back after; one
/// whose file was replaced is dropped.
#[derive(Debug)]
pub struct BrokerCache<K: DbKind> {
    inner: Arc<Mutex<CachedBrokers<K>>>,
}

type CachedBrokers<K> = Vec<(PathBuf, Broker<K>)>;

impl<K: DbKind> Clone for BrokerCache<K> {
    fn clone(&self) -> Self {
        BrokerCache {
            inner: self.inner.clone(),
        }
    }
}

impl<K: DbKind> Default for BrokerCache<K> {
    fn default() -> Self {
        BrokerCache {
            inner: Arc::default(),
        }
    }
}

/// Rows merged per transaction of one `merge_items` while object PUTs
/// are arriving (the pending file holds rows): what bounds how long a
/// merge holds the DB's write lock (a few milliseconds), and so how long
/// an object PUT whose pending flush waits for it can take.
pub const MERGE_SLICE: usize = 1000;

/// Rows merged per transaction while no PUT is arriving (an empty
/// pending file): fewer commits, each with its fsyncs. The first PUTs
/// after it started only append to the pending file; a flush, which needs
/// the write lock, comes hundreds of PUTs later, after this slice.
pub const MERGE_SLICE_IDLE: usize = 10_000;

/// Brokers kept open at most.
const BROKER_CACHE_SIZE: usize = 32;

impl<K: DbKind> BrokerCache<K> {
    fn lock(&self) -> std::sync::MutexGuard<'_, CachedBrokers<K>> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// The cached broker for `db_file`, if it still has that file open.
    pub fn take(&self, db_file: &Path) -> Option<Broker<K>> {
        let mut v = self.lock();
        let i = v.iter().position(|(p, _)| p == db_file)?;
        let (_, b) = v.remove(i);
        (!b.replaced()).then_some(b)
    }

    /// Returns a broker to the cache (most recent last; the oldest goes).
    pub fn put(&self, db_file: PathBuf, broker: Broker<K>) {
        let mut v = self.lock();
        v.retain(|(p, _)| *p != db_file);
        if v.len() >= BROKER_CACHE_SIZE {
            v.remove(0);
        }
        v.push((db_file, broker));
    }

    /// Brokers held open.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every broker of DB files in `dir`.
    pub fn forget_dir(&self, dir: &Path) {
        self.lock().retain(|(p, _)| p.parent() != Some(dir));
    }
}

/// The REPLICATE receiver for DBs of kind `K` under a devices root.
#[derive(Debug)]
pub struct ReplicatorRpc<K: DbKind> {
    pub devices: PathBuf,
    pub mount_check: bool,
    pub hash_conf: HashPathConfig,
    pub locks: DbLocks,
    pub counters: Arc<RpcCounters>,
    pub brokers: BrokerCache<K>,
    /// `sync` answers of DBs unchanged since (see [`SyncCache`]).
    pub syncs: Arc<SyncCache<K::Info>>,
}

impl<K: DbKind> Clone for ReplicatorRpc<K> {
    fn clone(&self) -> Self {
        ReplicatorRpc {
            devices: self.devices.clone(),
            mount_check: self.mount_check,
            hash_conf: self.hash_conf.clone(),
            locks: self.locks.clone(),
            counters: self.counters.clone(),
            brokers: self.brokers.clone(),
            syncs: self.syncs.clone(),
        }
    }
}

/// The answer to a failed op. A corrupt file is dealt with where it is: a
/// local DB is quarantined (404, as Swift), a shipped file in `<dev>/tmp`
/// is removed (400: the peer's bad file never costs the local replica).
/// Other failures answer the status their kind maps to.
fn map_db_error(e: DbError, db_file: &Path) -> RpcResponse {
    match e {
        DbError::Corrupt {
            ref path,
            reason,
            ref detail,
        } => {
            let shipped = path.parent().and_then(Path::file_name) == Some("tmp".as_ref());
            if shipped {
                tracing::error!(file = %path.display(), reason, detail, "removing corrupt shipped DB");
                let _ = std::fs::remove_file(path);
                return RpcResponse::text(400, format!("shipped DB is unusable: {reason}"));
            }
            tracing::error!(db = %path.display(), reason, "Quarantining DB");
            if let Err(q) = files::quarantine(path) {
                tracing::error!(db = %path.display(), "quarantine failed: {q}");
            }
            RpcResponse::empty(404)
        }
        DbError::NotFound(_) => RpcResponse::empty(404),
        other => {
            let status = other.status();
            if status >= 500 {
                tracing::error!(db = %db_file.display(), status, "REPLICATE failed: {other}");
            }
            RpcResponse::text(status, other.to_string())
        }
    }
}

impl<K: ReplKind> ReplicatorRpc<K> {
    pub fn new(devices: impl Into<PathBuf>, mount_check: bool, hash_conf: HashPathConfig) -> Self {
        ReplicatorRpc {
            devices: devices.into(),
            mount_check,
            hash_conf,
            locks: DbLocks::default(),
            counters: Arc::new(RpcCounters::default()),
            brokers: BrokerCache::default(),
            syncs: Arc::default(),
        }
    }

    /// Parses a body and runs the op (see [`KindRpc::handle`]).
    pub fn handle(
        &self,
        device: &str,
        partition: &str,
        hash: &str,
        body: &[u8],
    ) -> (Option<OpName>, RpcResponse) {
        match ReplicateOp::<K::Item>::parse(body) {
            Ok(op) => {
                let name = op.op_name();
                (Some(name), self.dispatch(device, partition, hash, op))
            }
            Err(e) => (None, RpcResponse::text(400, e.to_string())),
        }
    }

    /// Runs one op for `/<device>/<partition>/<hash>`.
    pub fn dispatch(
        &self,
        device: &str,
        partition: &str,
        hash: &str,
        op: ReplicateOp<K::Item>,
    ) -> RpcResponse {
        self.counters.count(&op);
        if !K::SHARD_RANGES
            && matches!(
                op,
                ReplicateOp::GetShardRanges | ReplicateOp::MergeShardRanges { .. }
            )
        {
            return RpcResponse::text(400, format!("{} DBs have no {} op", K::NAME, op.name()));
        }
        let Some(dev_path) = check_drive(&self.devices, device, self.mount_check) else {
            return RpcResponse::text(507, format!("{device} is not mounted"));
        };
        if !files::is_db_hash(hash) {
            return RpcResponse::text(400, format!("invalid DB hash {hash:?}"));
        }
        let Ok(part) = partition.parse::<u32>() else {
            return RpcResponse::text(400, format!("invalid partition {partition:?}"));
        };
        if let ReplicateOp::PartitionDbs(parts) = op {
            return match parts {
                None => RpcResponse::json(200, &Value::from(self.partition_dbs(&dev_path, part))),
                Some(parts) => {
                    let mut m = serde_json::Map::new();
                    for p in parts {
                        m.insert(p.to_string(), Value::from(self.partition_dbs(&dev_path, p)));
                    }
                    RpcResponse::json(200, &Value::Object(m))
                }
            };
        }
        let hash_dir = files::hash_dir(&dev_path, K::DATADIR, part, hash);
        let lock = self.locks.get(hash);
        let _guard = match lock.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if matches!(
            op,
            ReplicateOp::CompleteRsync { .. } | ReplicateOp::RsyncThenMerge { .. }
        ) {
            self.brokers.forget_dir(&hash_dir);
        }
        match op {
            ReplicateOp::CompleteRsync {
                tmp_name,
                db_basename,
            } => self.complete_rsync(
                device,
                &dev_path,
                &hash_dir,
                hash,
                &tmp_name,
                db_basename.as_deref(),
            ),
            ReplicateOp::RsyncThenMerge { tmp_name, .. } => {
                self.rsync_then_merge(device, &dev_path, &hash_dir, hash, &tmp_name)
            }
            op => {
                let tmp = dev_path.join("tmp");
                if let Err(e) = std::fs::create_dir_all(&tmp) {
                    return RpcResponse::text(500, format!("cannot create {}: {e}", tmp.display()));
                }
                let Some(db_file) = db_files(&hash_dir, hash).pop() else {
                    return RpcResponse::empty(404);
                };
                if let ReplicateOp::Sync(args) = &op {
                    if let Some(body) = self.syncs.answer(&db_file, args) {
                        self.counters.cached_syncs.fetch_add(1, Ordering::Relaxed);
                        return RpcResponse {
                            status: 200,
                            content_type: "application/json",
                            body: body.into_bytes(),
                        };
                    }
                }
                let broker = match self.brokers.take(&db_file) {
                    Some(b) => b,
                    None => match Broker::<K>::open(&db_file) {
                        Ok(b) => b,
                        Err(e) => return map_db_error(e, &db_file),
                    },
                };
                match self.db_op(&broker, &db_file, op) {
                    Ok(r) => {
                        self.brokers.put(db_file, broker);
                        r
                    }
                    Err(e) => {
                        drop(broker);
                        map_db_error(e, &db_file)
                    }
                }
            }
        }
    }

    fn db_op(
        &self,
        broker: &Broker<K>,
        db_file: &Path,
        op: ReplicateOp<K::Item>,
    ) -> Result<RpcResponse, DbError> {
        match op {
            ReplicateOp::Sync(args) => self.sync(broker, db_file, args),
            ReplicateOp::MergeItems { mut items, source } => {
                // A big batch (from a rowsync sender) is merged in slices,
                // each its own transaction, and a full pending file is
                // committed before each slice, so object PUTs waiting on
                // the write lock (pending flushes) wait one slice at most
                // (a short one while PUTs arrive). The sync point goes
                // with the last slice: a failure before it leaves the
                // point where it was, and the sender sends the batch
                // again (merges are idempotent).
                loop {
                    let slice = match broker.flush_full_pending()? {
                        true => MERGE_SLICE,
                        false => MERGE_SLICE_IDLE,
                    };
                    if items.len() <= slice {
                        broker.merge_items(items, source.as_deref())?;
                        break;
                    }
                    let rest = items.split_off(slice);
                    broker.merge_items(std::mem::replace(&mut items, rest), None)?;
                }
                Ok(RpcResponse::empty(202))
            }
            ReplicateOp::MergeSyncs(points) => {
                let info = broker.get_info()?;
                let own = info.id();
                let points: Vec<_> = points.into_iter().filter(|p| p.remote_id != own).collect();
                broker.merge_syncs(&points, true)?;
                Ok(RpcResponse::empty(202))
            }
            ReplicateOp::GetShardRanges => {
                let ranges = K::shard_ranges(broker)?;
                let v = serde_json::to_value(ranges).unwrap_or_default();
                Ok(RpcResponse::json(200, &v))
            }
            ReplicateOp::MergeShardRanges { ranges, .. } => {
                K::merge_peer_shard_ranges(broker, ranges)?;
                Ok(RpcResponse::empty(202))
            }
            ReplicateOp::CompleteRsync { .. }
            | ReplicateOp::RsyncThenMerge { .. }
            | ReplicateOp::PartitionDbs(_) => Ok(RpcResponse::text(400, "not a DB op")),
        }
    }

    /// `rowsync_partition_dbs`: the hashes of the DBs under
    /// `<device>/<datadir>/<part>/` (two directory levels listed; no DB
    /// opened), sorted.
    fn partition_dbs(&self, dev_path: &Path, part: u32) -> Vec<String> {
        let part_dir = dev_path.join(K::DATADIR).join(part.to_string());
        let mut hashes: Vec<String> = Vec::new();
        // Directories only (d_type from the listing; no stat per entry).
        let list = |dir: &Path| -> Vec<(String, PathBuf)> {
            std::fs::read_dir(dir)
                .map(|rd| {
                    rd.flatten()
                        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir() || t.is_symlink()))
                        .filter_map(|e| Some((e.file_name().into_string().ok()?, e.path())))
                        .collect()
                })
                .unwrap_or_default()
        };
        for (_, suffix_dir) in list(&part_dir) {
            for (hash, hash_dir) in list(&suffix_dir) {
                if files::is_db_hash(&hash) && files::has_db(&hash_dir, &hash) {
                    hashes.push(hash);
                }
            }
        }
        hashes.sort();
        hashes
    }

    /// Swift's `sync`: adopt a better policy index (kinds with one), merge
    /// metadata and DB timestamps, answer our info with our incoming point
    /// for the caller.
    /// The answer is recorded in the [`SyncCache`] when nothing was written.
    fn sync(
        &self,
        broker: &Broker<K>,
        db_file: &Path,
        args: SyncArgs,
    ) -> Result<RpcResponse, DbError> {
        let before = self.syncs.stamp(db_file);
        let mut info = broker.get_replication_info()?;
        if let (Some((sca, count, spi)), Some(ours)) = (&args.policy, PolicyInfo::of(&info)) {
            let remote = PolicyInfo {
                put_timestamp: args.put_timestamp.clone(),
                delete_timestamp: args.delete_timestamp.clone(),
                status_changed_at: sca.clone(),
                count: *count,
                storage_policy_index: *spi,
            };
            if incorrect_policy_index(&ours, &remote) {
                K::set_storage_policy_index(broker, *spi, &Timestamp::now().internal())?;
                info = broker.get_replication_info()?;
            }
        }
        if !args.metadata.is_empty() {
            match parse_metadata(&args.metadata) {
                Ok(md) if !md.is_empty() => {
                    let valid: serde_json::Map<String, Value> = md
                        .into_iter()
                        .filter(|(_, v)| matches!(v, Value::Array(a) if a.len() == 2 && a[1].is_string()))
                        .collect();
                    broker.update_metadata(&valid)?;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!("Unable to decode remote metadata {:?}: {e}", args.metadata)
                }
            }
        }
        if info.created_at() != args.created_at
            || info.put_timestamp() != args.put_timestamp
            || info.delete_timestamp() != args.delete_timestamp
        {
            broker.merge_timestamps(
                &args.created_at,
                &args.put_timestamp,
                &args.delete_timestamp,
            )?;
        }
        let mut point = broker.get_sync(&args.id, true)?;
        if args.hash == info.hash() && point < args.max_row {
            broker.merge_syncs(&[SyncPoint::new(args.id.clone(), args.max_row)], true)?;
            point = args.max_row;
        }
        info.set_point(Some(point));
        let after = self.syncs.stamp(db_file);
        Ok(
            match self.syncs.record(db_file, before, after, &args, &info) {
                Some(text) => RpcResponse {
                    status: 200,
                    content_type: "application/json",
                    body: text.into_bytes(),
                },
                None => RpcResponse::json(200, &serde_json::to_value(&info).unwrap_or_default()),
            },
        )
    }

    /// Checks a shipped file in `<dev>/tmp/`: a plain name, an existing
    /// file, a readable DB of this kind whose account (and container) hash
    /// to `hash`.
    fn check_shipped(
        &self,
        dev_path: &Path,
        tmp_name: &str,
        hash: &str,
    ) -> Result<PathBuf, RpcResponse> {
        if !is_plain_name(tmp_name) {
            return Err(RpcResponse::text(
                400,
                format!("invalid tmp file name {tmp_name:?}"),
            ));
        }
        let tmp = dev_path.join("tmp").join(tmp_name);
        if !tmp.is_file() {
            return Err(RpcResponse::empty(404));
        }
        let reject = |why: String| {
            tracing::error!(file = %tmp.display(), "rejecting shipped DB: {why}");
            let _ = std::fs::remove_file(&tmp);
            Err(RpcResponse::text(
                400,
                format!("shipped file {tmp_name:?} {why}"),
            ))
        };
        let info = match Broker::<K>::open(&tmp).and_then(|b| b.get_info()) {
            Ok(i) => i,
            Err(e) => return reject(format!("is not {} DB: {e}", K::NAME)),
        };
        match self
            .hash_conf
            .hash_path(info.account(), info.container(), None)
        {
            Ok(h) if h == hash => Ok(tmp),
            Ok(_) => reject(format!(
                "holds {}/{}, which is not this DB",
                info.account(),
                info.container().unwrap_or_default()
            )),
            Err(e) => reject(e.to_string()),
        }
    }

    /// Swift's `complete_rsync`: a whole DB was shipped for a replica we
    /// lack; re-id it and move it into place.
    fn complete_rsync(
        &self,
        device: &str,
        dev_path: &Path,
        hash_dir: &Path,
        hash: &str,
        tmp_name: &str,
        db_basename: Option<&str>,
    ) -> RpcResponse {
        let basename = db_basename
            .map(str::to_string)
            .unwrap_or_else(|| format!("{hash}.db"));
        if !is_plain_name(&basename) || !is_db_filename_for(&basename, hash) {
            return RpcResponse::text(400, format!("invalid DB file name {basename:?}"));
        }
        if !db_files(hash_dir, hash).is_empty() {
            return RpcResponse::empty(404);
        }
        let tmp = match self.check_shipped(dev_path, tmp_name, hash) {
            Ok(t) => t,
            Err(r) => return r,
        };
        let result = (|| -> Result<(), DbError> {
            {
                // Private until renamed: written without fsyncs, synced once.
                let b = Broker::<K>::open(&tmp)?;
                b.write_unsynced()?;
                b.newid_with(tmp_name, device, None)?;
            }
            files::fsync_path(&tmp)?;
            let _lock = lock_dir(hash_dir, DEFAULT_PENDING_TIMEOUT)?;
            if !db_files(hash_dir, hash).is_empty() {
                return Err(DbError::AlreadyExists(hash_dir.join(&basename)));
            }
            let target = hash_dir.join(&basename);
            std::fs::rename(&tmp, &target).map_err(|e| DbError::io(&target, e))?;
            files::fsync_path(hash_dir)?;
            Ok(())
        })();
        match result {
            Ok(()) => RpcResponse::empty(204),
            Err(DbError::AlreadyExists(_)) => RpcResponse::empty(404),
            Err(e) => map_db_error(e, &tmp),
        }
    }

    /// Swift's `rsync_then_merge`: the sender shipped its whole DB because we
    /// are far behind; merge our rows into it and make it ours.
    fn rsync_then_merge(
        &self,
        device: &str,
        dev_path: &Path,
        hash_dir: &Path,
        hash: &str,
        tmp_name: &str,
    ) -> RpcResponse {
        if !is_plain_name(tmp_name) {
            return RpcResponse::text(400, format!("invalid tmp file name {tmp_name:?}"));
        }
        let Some(db_file) = db_files(hash_dir, hash).pop() else {
            return RpcResponse::empty(404);
        };
        if !dev_path.join("tmp").join(tmp_name).is_file() {
            return RpcResponse::empty(404);
        }
        let aborted = |db_file: &Path| -> bool {
            !db_file.exists()
                || Broker::<K>::open(db_file)
                    .and_then(|b| K::sharding_initiated(&b))
                    .unwrap_or(true)
        };
        if aborted(&db_file) {
            return RpcResponse::empty(404);
        }
        let tmp = match self.check_shipped(dev_path, tmp_name, hash) {
            Ok(t) => t,
            Err(r) => return r,
        };
        let result = (|| -> Result<bool, DbError> {
            let new = Broker::<K>::open(&tmp)?;
            // The shipped file is private until it is renamed into place:
            // it is written without fsyncs and synced once before the
            // rename (a crash before that leaves the old DB untouched).
            new.write_unsynced()?;
            let existing = Broker::<K>::open(&db_file)?;
            // The sender's high-water mark, before our rows are added.
            let sender_point = new.get_max_row()?;
            let mut point = -1;
            loop {
                let rows = existing.get_items_since(point, MERGE_CHUNK)?;
                let Some(last) = rows.last().and_then(|r| r.rowid()) else {
                    break;
                };
                new.merge_items(strip_rowids(rows), None)?;
                point = last;
            }
            new.merge_syncs(&existing.get_syncs(true)?, true)?;
            K::merge_peer_shard_ranges(&new, K::shard_ranges(&existing)?)?;
            new.newid_with(tmp_name, device, Some(sender_point))?;
            new.update_metadata(&existing.metadata()?)?;
            let ex = existing.get_info()?;
            new.merge_timestamps(ex.created_at(), ex.put_timestamp(), ex.delete_timestamp())?;
            // Final phase: no pending commits (directory lock) and no direct
            // writers (SQLite write lock) while the last rows are copied and
            // the file is replaced.
            let _lock = lock_dir(hash_dir, DEFAULT_PENDING_TIMEOUT)?;
            let write_lock = existing.write_lock()?;
            let finish = (|| -> Result<bool, DbError> {
                loop {
                    let rows = existing.items_since_no_commit(point, MERGE_CHUNK)?;
                    let Some(last) = rows.last().and_then(|r| r.rowid()) else {
                        break;
                    };
                    new.merge_items(strip_rowids(rows), None)?;
                    point = last;
                }
                if aborted(&db_file) || !tmp.exists() {
                    return Ok(false);
                }
                files::fsync_path(&tmp)?;
                fail::fail_point!("rsync_then_merge::before_rename", |a| Err(
                    crate::db::injected(&db_file, a)
                ));
                std::fs::rename(&tmp, &db_file).map_err(|e| DbError::io(&db_file, e))?;
                fail::fail_point!("rsync_then_merge::after_rename", |a| Err(
                    crate::db::injected(&db_file, a)
                ));
                files::fsync_path(hash_dir)?;
                Ok(true)
            })();
            drop(write_lock);
            finish
        })();
        match result {
            Ok(true) => RpcResponse::empty(204),
            Ok(false) => RpcResponse::empty(404),
            Err(e) => map_db_error(e, &db_file),
        }
    }
}

/// Rows per transaction when `rsync_then_merge` copies the local rows into
/// the shipped DB.
const MERGE_CHUNK: usize = 10_000;

fn strip_rowids<I: DbItem>(mut rows: Vec<I>) -> Vec<I> {
    for r in &mut rows {
        r.set_rowid(None);
    }
    rows
}
