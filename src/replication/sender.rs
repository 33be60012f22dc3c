//! The sending side: replicate one local DB to one peer (Swift's
//! `_repl_to_node`), following Swift's decision tree with these
//! wire-compatible improvements (see the README's compatibility section):
//!
//! - progress is recorded per acknowledged batch (`outgoing_sync` moves to
//!   each batch's last ROWID), so a capped pass resumes where it stopped even
//!   against a receiver that does not advance its own point;
//! - a completed usync records `max(point, max_row)`, so a sync point never
//!   sticks below `max_row` when the highest rows were deleted;
//! - the whole-DB path is chosen from the sync point (rows the peer lacks),
//!   not from comparing the two DBs' unrelated ROWID high-water marks alone,
//!   and its deadline is at least `node_timeout`;
//! - whole DBs are shipped from a consistent snapshot;
//! - a whole DB is not shipped again to a peer that may still be merging
//!   the previous copy (a ship record with the op's deadline, kept across
//!   crashes on the local device: see [`super::ship_record`]);
//! - the sync table sent with `merge_syncs` leaves out the receiver's own id.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::client::{node_name, ClientError, ReplClient, ReplResponse};
use super::clock::{epoch_secs, Clock};
use super::policy::{incorrect_policy_index, PolicyInfo};
use super::rpc::ReplKind;
use super::stats::Stats;
use super::wire::{OpName, ReplicateOp, SyncArgs, MERGE_BATCH_GROWTH};
use crate::config::{DbTransfer, ReplicatorConf};
use crate::db::shard::ShardRange;
use crate::db::snapshot::Snapshot;
use crate::db::{parse_metadata, Broker, DbError, DbInfo, DbItem, DbKind, SyncPoint};
use crate::ring::Device;
use crate::swift::Timestamp;

/// A local DB shared by the async tasks that replicate it. SQLite calls run
/// on the current worker with `block_in_place`.
#[derive(Debug)]
pub struct LocalDb<K: DbKind> {
    broker: Mutex<Broker<K>>,
    pub path: PathBuf,
    /// The DB hash (file name without `_<epoch>` and `.db`).
    pub hash: String,
    /// The local device the DB lives on.
    pub device: String,
    /// The copy shipped to peers that get the whole DB: taken once per
    /// visit and shared by every such peer (removed with the last user).
    snapshot: tokio::sync::Mutex<Option<Arc<Snapshot>>>,
    /// The integrity check started for this visit, if any, and its result.
    audit_task: Mutex<Option<tokio::task::JoinHandle<Result<(), AuditFailure>>>>,
    audit: tokio::sync::OnceCell<Result<(), AuditFailure>>,
    /// The last `merge_items` batches read and encoded in this visit
    /// (keyed by start point and row limit): peers at the same point are
    /// sent the same bytes, read once.
    batches: Mutex<VecDeque<(i64, usize, Arc<Batch>)>>,
}

/// One encoded `merge_items` batch.
#[derive(Debug)]
pub struct Batch {
    pub body: Vec<u8>,
    /// Rows in it (0: nothing after the point).
    pub rows: u64,
    /// The ROWID of its last row (the start point when empty).
    pub last: i64,
}

/// Batches a visit keeps for its other peers.
const BATCHES_KEPT: usize = 4;

/// A failed integrity check: `corrupt` when the DB itself failed it
/// (quarantine), else it could not be run.
#[derive(Debug, Clone)]
pub struct AuditFailure {
    pub corrupt: bool,
    pub message: String,
}

impl<K: ReplKind> LocalDb<K> {
    /// The `merge_items` batch of up to `limit` rows after `point`, sent
    /// with `source`: read and encoded once for every peer of this visit
    /// that asks for the same rows. A later read from its last ROWID finds
    /// whatever was committed since.
    pub fn batch(&self, point: i64, limit: usize, source: &str) -> Result<Arc<Batch>, DbError> {
        tokio::task::block_in_place(|| {
            let mut kept = match self.batches.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            if let Some((_, _, b)) = kept.iter().find(|(p, l, _)| *p == point && *l == limit) {
                return Ok(Arc::clone(b));
            }
            let items = self.call(|b| b.get_items_since(point, limit))?;
            let last = items.last().and_then(|i| i.rowid()).unwrap_or(point);
            let rows = items.len() as u64;
            let body = ReplicateOp::MergeItems {
                items,
                source: Some(source.to_string()),
            }
            .to_body();
            let batch = Arc::new(Batch { body, rows, last });
            if kept.len() >= BATCHES_KEPT {
                kept.pop_front();
            }
            kept.push_back((point, limit, Arc::clone(&batch)));
            Ok(batch)
        })
    }
}

impl<K: DbKind> LocalDb<K> {
    pub fn new(broker: Broker<K>, hash: String, device: String) -> Self {
        LocalDb {
            path: broker.db_file().to_path_buf(),
            broker: Mutex::new(broker),
            hash,
            device,
            snapshot: tokio::sync::Mutex::new(None),
            audit_task: Mutex::new(None),
            audit: tokio::sync::OnceCell::new(),
            batches: Mutex::new(VecDeque::new()),
        }
    }

    /// Starts `PRAGMA quick_check` of the DB on a blocking thread, with its
    /// own read-only connection.
    pub fn start_audit(&self) {
        let path = self.path.clone();
        let task = tokio::task::spawn_blocking(move || {
            crate::db::audit_file(&path).map_err(|e| AuditFailure {
                corrupt: e.is_corrupt(),
                message: e.to_string(),
            })
        });
        if let Ok(mut slot) = self.audit_task.lock() {
            *slot = Some(task);
        }
    }

    /// The started integrity check's result (waits for it); `Ok` when none
    /// was started.
    pub async fn audited(&self) -> Result<(), AuditFailure> {
        self.audit
            .get_or_init(|| async {
                let task = self.audit_task.lock().ok().and_then(|mut t| t.take());
                match task {
                    None => Ok(()),
                    Some(t) => t.await.unwrap_or_else(|e| {
                        Err(AuditFailure {
                            corrupt: false,
                            message: format!("integrity check did not finish: {e}"),
                        })
                    }),
                }
            })
            .await
            .clone()
    }

    /// The snapshot to ship (in `scratch`), taken by the first peer that
    /// needs it; the DB's rows at the visit's start are all in it.
    pub async fn snapshot(&self, scratch: &Path) -> Result<Arc<Snapshot>, DbError> {
        let mut held = self.snapshot.lock().await;
        if let Some(s) = held.as_ref() {
            return Ok(Arc::clone(s));
        }
        let s = Arc::new(tokio::task::block_in_place(|| {
            crate::db::snapshot::snapshot(&self.path, scratch)
        })?);
        *held = Some(Arc::clone(&s));
        Ok(s)
    }

    /// Runs `f` on the broker (blocking SQLite work off the async path).
    /// When the DB file was replaced under the open connection (a peer's
    /// `rsync_then_merge` renamed a new file over it: writes through the old
    /// connection fail as a read-only database), the DB is opened again and
    /// `f` runs once more on the file that is there now.
    pub fn call<R>(
        &self,
        mut f: impl FnMut(&Broker<K>) -> Result<R, DbError>,
    ) -> Result<R, DbError> {
        tokio::task::block_in_place(|| {
            let mut guard = match self.broker.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            match f(&guard) {
                Err(e) if e.is_db_moved() || guard.replaced() => {
                    tracing::info!(db = %self.path.display(), "DB file replaced under us ({e}); reopening");
                    let mut fresh = Broker::<K>::open(&self.path)?;
                    fresh.set_pending_timeout(guard.pending_timeout());
                    *guard = fresh;
                    f(&guard)
                }
                r => r,
            }
        })
    }
}

/// Why a peer attempt failed in a way the caller must act on.
#[derive(Debug, thiserror::Error)]
pub enum ReplError {
    /// The peer answered 507: try a handoff in its place.
    #[error("Remote drive not mounted {0}")]
    DriveNotMounted(String),
    #[error("local DB error: {0}")]
    Db(#[from] DbError),
}

/// What the sender needs besides the DB.
#[derive(Debug, Clone)]
pub struct SenderCtx {
    pub conf: Arc<ReplicatorConf>,
    pub client: ReplClient,
    pub stats: Arc<Mutex<Stats>>,
    /// More than one storage policy: `sync` carries the policy arguments.
    pub multiple_policies: bool,
    /// The devices root (for snapshots in `<dev>/tmp`).
    pub devices: PathBuf,
    /// Swift's statsd metrics, when configured.
    pub statsd: Option<Arc<super::statsd::Statsd>>,
    /// The daemon's Prometheus metrics.
    pub metrics: Option<Arc<super::metrics::ReplicatorMetrics>>,
    /// The wall clock (ship-record deadlines).
    pub clock: Arc<dyn Clock>,
}

impl SenderCtx {
    fn node_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.conf.node_timeout.max(0.001))
    }

    /// Times a statsd metric (Swift's `logger.timing_since(name, start)`).
    pub fn timing_since(&self, name: &str, start: std::time::Instant) {
        if let Some(s) = &self.statsd {
            s.timing_since(name, start);
        }
    }

    /// Counts a statsd metric (Swift's `logger.increment(name)`).
    pub fn count(&self, name: &str) {
        if let Some(s) = &self.statsd {
            s.increment(name);
        }
    }

    /// The peer lacks `rows` of this DB's rows after this replication.
    pub fn lag(&self, peer: &str, rows: i64) {
        if let Some(m) = &self.metrics {
            m.peer_lag(peer, u64::try_from(rows).unwrap_or(0));
        }
    }

    pub fn stat(&self, f: impl FnOnce(&mut Stats)) {
        let mut s = match self.stats.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        f(&mut s);
    }

    /// The record of shipping `db` whole to `node`.
    fn ship_record<K: DbKind>(&self, db: &LocalDb<K>, node: &Device) -> PathBuf {
        super::ship_record::record_path(&self.devices.join(&db.device), &db.hash, node)
    }

    /// The deadline of an earlier whole-DB ship of `db` to `node` that the
    /// peer may still be acting on (a record left by a sender that got no
    /// answer, e.g. one killed while it waited). Expired or unreadable
    /// records are removed.
    fn ship_in_flight<K: DbKind>(&self, db: &LocalDb<K>, node: &Device) -> Option<SystemTime> {
        let path = self.ship_record(db, node);
        let max_ahead =
            Duration::try_from_secs_f64(self.conf.reclaim_age.max(0.0)).unwrap_or(Duration::MAX);
        let now = self.clock.now();
        tokio::task::block_in_place(|| super::ship_record::active_deadline(&path, now, max_ahead))
    }

    /// Persists the deadline of a whole-DB op about to be sent to `node`.
    fn write_ship_record<K: DbKind>(
        &self,
        db: &LocalDb<K>,
        node: &Device,
        deadline: SystemTime,
    ) -> Result<(), DbError> {
        let path = self.ship_record(db, node);
        fail::fail_point!("sender::ship_record", |a| Err(crate::db::injected(
            &path, a
        )));
        tokio::task::block_in_place(|| super::ship_record::write(&path, deadline))
    }
}

/// The `sync` request args carrying our replication info (with the policy
/// arguments when the kind has a policy and the cluster several).
/// What a peer's `sync` answer says about it.
#[derive(Debug, Clone, Copy, Default)]
pub struct PeerCaps {
    /// A rowsync server's [`super::wire::MERGE_ROWS_HEADER`] (`None`: Swift).
    pub merge_rows: Option<usize>,
}

impl PeerCaps {
    /// Rows per `merge_items`: Swift's `per_diff` to Swift peers; to a
    /// rowsync peer up to [`MERGE_BATCH_GROWTH`] times that, within what
    /// it advertises.
    pub fn batch_rows(&self, per_diff: usize) -> usize {
        match self.merge_rows {
            None => per_diff,
            Some(n) => per_diff.saturating_mul(MERGE_BATCH_GROWTH).min(n).max(1),
        }
    }

    /// Is a whole DB sent over HTTP (else rsync)?
    pub fn http_transfer(&self, conf: DbTransfer) -> bool {
        match conf {
            DbTransfer::Http => true,
            DbTransfer::Rsync => false,
            DbTransfer::Auto => self.merge_rows.is_some(),
        }
    }
}

pub fn sync_args<I: DbInfo>(info: &I, multiple_policies: bool) -> SyncArgs {
    SyncArgs {
        max_row: info.max_row(),
        hash: info.hash().to_string(),
        id: info.id().to_string(),
        created_at: info.created_at().to_string(),
        put_timestamp: info.put_timestamp().to_string(),
        delete_timestamp: info.delete_timestamp().to_string(),
        metadata: info.metadata().to_string(),
        policy: info
            .storage_policy_index()
            .filter(|_| multiple_policies)
            .map(|spi| (info.status_changed_at().to_string(), info.count(), spi)),
    }
}

/// The peer's `sync` answer, read leniently (a Python peer's JSON).
fn parse_remote_info<I: DbInfo>(body: &[u8]) -> Option<(I, Value)> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let info: I = serde_json::from_value(v.clone()).ok()?;
    Some((info, v))
}

/// Replicates `db` to `node`. `Ok(true)` when the peer is now at least as
/// up to date as we were when we started.
pub async fn repl_to_node<K: ReplKind>(
    ctx: &SenderCtx,
    db: &LocalDb<K>,
    info: &K::Info,
    node: &Device,
    partition: u32,
    different_region: bool,
) -> Result<bool, ReplError> {
    let peer = node_name(node);
    let timeout = ctx.node_timeout();
    let op = ReplicateOp::<K::Item>::Sync(sync_args(info, ctx.multiple_policies));
    let resp = match ctx
        .client
        .replicate(node, partition, &db.hash, &op, timeout)
        .await
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(db = %db.path.display(), %peer, "ERROR reading HTTP response from {peer}: {e}");
            return Ok(false);
        }
    };
    let caps = PeerCaps {
        merge_rows: resp.merge_rows,
    };
    match resp.status {
        404 => {
            if let Some(until) = ctx.ship_in_flight(db, node) {
                tracing::info!(
                    db = %db.path.display(), %peer, until = epoch_secs(until),
                    "peer has no replica, but may still be completing the DB shipped to it \
                     earlier (complete_rsync, until {:.0}): not shipping again this pass",
                    epoch_secs(until)
                );
                ctx.lag(&peer, info.max_row());
                return Ok(false);
            }
            ctx.stat(|s| s.rsync += 1);
            ctx.count("rsyncs");
            tracing::info!(db = %db.path.display(), %peer, "peer has no replica: shipping the whole DB");
            let ok = ship_db(
                ctx,
                db,
                info,
                node,
                partition,
                "complete_rsync",
                timeout,
                (different_region, caps),
            )
            .await;
            ctx.lag(&peer, if ok { 0 } else { info.max_row() });
            return Ok(ok);
        }
        507 => return Err(ReplError::DriveNotMounted(peer)),
        s if !(200..300).contains(&s) => {
            tracing::error!(db = %db.path.display(), %peer, status = s, "ERROR bad sync response");
            return Ok(false);
        }
        _ => {}
    }
    let Some((rinfo, raw)) = parse_remote_info::<K::Info>(&resp.body) else {
        tracing::error!(db = %db.path.display(), %peer, "ERROR unreadable sync response");
        return Ok(false);
    };
    // Storage policy, DB timestamps and shard ranges flow back to us.
    let remote_spi = raw.get("storage_policy_index").and_then(Value::as_i64);
    if let (Some(ours), Some(rp), Some(spi)) =
        (PolicyInfo::of(info), PolicyInfo::of(&rinfo), remote_spi)
    {
        let rp = PolicyInfo {
            storage_policy_index: spi,
            ..rp
        };
        if incorrect_policy_index(&ours, &rp) {
            let now = Timestamp::now().internal();
            db.call(|b| K::set_storage_policy_index(b, spi, &now))?;
        }
    }
    // The peer's DB timestamps are merged into ours after the rows are
    // sent (they commute with everything the visit does): a write here
    // would wait for the visit's integrity check to release its read lock
    // before the first row could go.
    let merge_peer_timestamps = K::SENDER_MERGES_PEER_TIMESTAMPS
        && (info.created_at() != rinfo.created_at()
            || info.put_timestamp() != rinfo.put_timestamp()
            || info.delete_timestamp() != rinfo.delete_timestamp());
    let has_shard_key = raw.get("shard_max_row").is_some();
    if K::SHARD_RANGES && rinfo.shard_max_row().unwrap_or(-1) >= 0 {
        fetch_shard_ranges(ctx, db, node, partition).await?;
    }
    let local_sync = db.call(|b| b.get_sync(rinfo.id(), false))?;
    if !rinfo.metadata().is_empty() {
        match parse_metadata(rinfo.metadata()) {
            Ok(md) if !md.is_empty() => {
                let valid: serde_json::Map<String, Value> = md
                    .into_iter()
                    .filter(
                        |(_, v)| matches!(v, Value::Array(a) if a.len() == 2 && a[1].is_string()),
                    )
                    .collect();
                db.call(|b| b.update_metadata(&valid))?;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(%peer, "unreadable remote metadata: {e}"),
        }
    }
    let mut shard_ok = true;
    if !K::SHARD_RANGES {
        // Accounts have no shard ranges.
    } else if has_shard_key {
        let ranges: Vec<ShardRange> = db.call(|b| K::shard_ranges(b))?;
        if !ranges.is_empty() {
            let op = ReplicateOp::<K::Item>::MergeShardRanges {
                ranges,
                source: Some(info.id().to_string()),
            };
            match ctx
                .client
                .replicate(node, partition, &db.hash, &op, timeout)
                .await
            {
                Ok(r) if r.is_success() => {}
                Ok(r) => {
                    tracing::error!(%peer, "Bad response {} from {peer} to merge_shard_ranges", r.status);
                    shard_ok = false;
                }
                Err(e) => {
                    tracing::error!(%peer, "merge_shard_ranges failed: {e}");
                    shard_ok = false;
                }
            }
        }
    } else {
        tracing::warn!(%peer, "unable to replicate shard ranges to peer {peer}; peer may need upgrading");
        shard_ok = false;
    }
    let merged_timestamps = || -> Result<(), ReplError> {
        if merge_peer_timestamps {
            db.call(|b| {
                b.merge_timestamps(
                    rinfo.created_at(),
                    rinfo.put_timestamp(),
                    rinfo.delete_timestamp(),
                )
            })?;
        }
        Ok(())
    };
    if db.call(|b| K::sharding_initiated(b))? {
        ctx.stat(|s| s.deferred += 1);
        merged_timestamps()?;
        return Ok(shard_ok);
    }
    let rows_ok = choose_mode(
        ctx,
        db,
        info,
        &rinfo,
        local_sync,
        node,
        partition,
        (different_region, caps),
    )
    .await;
    merged_timestamps()?;
    Ok(rows_ok? && shard_ok)
}

async fn fetch_shard_ranges<K: ReplKind>(
    ctx: &SenderCtx,
    db: &LocalDb<K>,
    node: &Device,
    partition: u32,
) -> Result<(), ReplError> {
    let op = ReplicateOp::<K::Item>::GetShardRanges;
    match ctx
        .client
        .replicate(node, partition, &db.hash, &op, ctx.node_timeout())
        .await
    {
        Ok(r) if r.is_success() => match serde_json::from_slice::<Vec<ShardRange>>(&r.body) {
            Ok(ranges) => {
                db.call(|b| K::merge_peer_shard_ranges(b, ranges.clone()))?;
            }
            Err(e) => tracing::warn!(peer = %node_name(node), "unreadable shard ranges: {e}"),
        },
        Ok(r) => {
            tracing::warn!(peer = %node_name(node), status = r.status, "get_shard_ranges failed")
        }
        Err(e) => tracing::warn!(peer = %node_name(node), "get_shard_ranges failed: {e}"),
    }
    Ok(())
}

/// Picks no_change / hashmatch / whole DB / usync.
#[allow(clippy::too_many_arguments)]
async fn choose_mode<K: ReplKind>(
    ctx: &SenderCtx,
    db: &LocalDb<K>,
    info: &K::Info,
    rinfo: &K::Info,
    local_sync: i64,
    node: &Device,
    partition: u32,
    (different_region, caps): (bool, PeerCaps),
) -> Result<bool, ReplError> {
    let peer = node_name(node);
    let rpoint = rinfo.point().unwrap_or(-1);
    let point = rpoint.max(local_sync);
    let max_row = info.max_row();
    if point >= max_row {
        ctx.stat(|s| s.no_change += 1);
        ctx.count("no_changes");
        ctx.lag(&peer, 0);
        tracing::debug!(db = %db.path.display(), %peer, point, max_row, "in sync (no_change)");
        return Ok(true);
    }
    if rinfo.hash() == info.hash() {
        ctx.stat(|s| s.hashmatch += 1);
        ctx.count("hashmatches");
        ctx.lag(&peer, 0);
        tracing::debug!(db = %db.path.display(), %peer, "in sync (hashmatch)");
        db.call(|b| b.merge_syncs(&[SyncPoint::new(rinfo.id(), rpoint.max(max_row))], false))?;
        return Ok(true);
    }
    let whole = wants_whole_db(
        max_row,
        rinfo.max_row(),
        point,
        ctx.conf.per_diff as i64,
        ctx.conf.max_diffs as i64,
    );
    let in_flight = if whole {
        ctx.ship_in_flight(db, node)
    } else {
        None
    };
    if let Some(until) = in_flight {
        tracing::info!(
            db = %db.path.display(), %peer, point, max_row, until = epoch_secs(until),
            "peer lacks most rows, but may still be merging the DB shipped to it earlier \
             (rsync_then_merge, until {:.0}): sending diffs this pass",
            epoch_secs(until)
        );
    } else if whole {
        ctx.stat(|s| s.remote_merge += 1);
        ctx.count("remote_merges");
        tracing::info!(
            db = %db.path.display(), %peer, point, max_row, remote_max_row = rinfo.max_row(),
            "peer lacks most rows: shipping the whole DB for rsync_then_merge"
        );
        let secs =
            ((max_row.max(0) + rinfo.max_row().max(0)) as f64 / 2000.0).max(ctx.conf.node_timeout);
        let ok = ship_db(
            ctx,
            db,
            info,
            node,
            partition,
            "rsync_then_merge",
            Duration::from_secs_f64(secs),
            (different_region, caps),
        )
        .await;
        ctx.lag(&peer, if ok { 0 } else { max_row - point });
        return Ok(ok);
    }
    usync(ctx, db, info, point, rinfo.id(), node, partition, caps).await
}

/// The whole-DB rule. Swift ships the whole DB when the peer's high-water
/// mark is below half of ours and more than `per_diff` behind. rowsync keeps
/// that signal but also requires the sync point to say the peer really lacks
/// more than half of our rows (a peer that received our rows recently is not
/// re-shipped a whole DB because of ROWID churn), and ships whole when the
/// backlog would take more than ten capped passes.
pub fn wants_whole_db(
    max_row: i64,
    remote_max_row: i64,
    point: i64,
    per_diff: i64,
    max_diffs: i64,
) -> bool {
    let backlog = max_row - point;
    if backlog <= per_diff {
        return false;
    }
    let small_peer = (remote_max_row as f64) < 0.5 * max_row as f64;
    (small_peer && backlog * 2 > max_row) || backlog > 10 * per_diff * max_diffs
}

/// Sends rows after `point` in `merge_items` batches, up to `max_diffs`
/// times `per_diff` rows a pass (batches of `per_diff` to Swift peers,
/// larger to rowsync peers: [`PeerCaps::batch_rows`]); when done, the sync
/// table (`merge_syncs`) and the outgoing point.
#[allow(clippy::too_many_arguments)]
async fn usync<K: ReplKind>(
    ctx: &SenderCtx,
    db: &LocalDb<K>,
    info: &K::Info,
    mut point: i64,
    remote_id: &str,
    node: &Device,
    partition: u32,
    caps: PeerCaps,
) -> Result<bool, ReplError> {
    let peer = node_name(node);
    ctx.stat(|s| s.diff += 1);
    ctx.count("diffs");
    let start = std::time::Instant::now();
    let per_diff = ctx.conf.per_diff.max(1);
    let timeout = ctx.node_timeout();
    tracing::debug!(db = %db.path.display(), %peer, point, "usyncing chunks");
    let sync_table: Vec<SyncPoint> = db
        .call(|b| b.get_syncs(true))?
        .into_iter()
        .filter(|p| p.remote_id != remote_id)
        .collect();
    let start_point = point;
    // Swift's cap: max_diffs batches of per_diff rows.
    let budget = ctx.conf.max_diffs.saturating_mul(per_diff);
    let batch_rows = caps.batch_rows(per_diff).min(budget.max(1));
    let source = info.id().to_string();
    let mut batch = db.batch(point, batch_rows, &source)?;
    let mut diffs = 0usize;
    let mut sent: u64 = 0;
    let mut failed = false;
    while batch.rows > 0 && (sent as usize) < budget {
        diffs += 1;
        let (batch_len, last) = (batch.rows, batch.last);
        // Send this batch while the next one is read from the DB.
        let client = ctx.client.clone();
        let (node2, hash, body) = (node.clone(), db.hash.clone(), batch.body.clone());
        let send = tokio::spawn(async move {
            client
                .replicate_encoded(&node2, partition, &hash, OpName::MergeItems, body, timeout)
                .await
        });
        let left = budget.saturating_sub(sent as usize + batch_len as usize);
        let next = db.batch(
            last,
            if left > 0 { batch_rows.min(left) } else { 1 },
            &source,
        );
        let answer = send.await;
        match answer {
            Ok(Ok(r)) if r.is_success() => {}
            Ok(Ok(r)) => {
                tracing::error!(db = %db.path.display(), %peer, "ERROR Bad response {} from {peer}", r.status);
                failed = true;
                break;
            }
            Ok(Err(e)) => {
                tracing::error!(db = %db.path.display(), %peer, "ERROR merge_items to {peer}: {e}");
                failed = true;
                break;
            }
            Err(e) => {
                tracing::error!(db = %db.path.display(), %peer, "ERROR merge_items task: {e}");
                failed = true;
                break;
            }
        }
        sent += batch_len;
        point = last;
        batch = next?;
    }
    if let Some(m) = &ctx.metrics {
        m.rows_sent(sent, start.elapsed());
    }
    // What the peer still lacks when this usync ends early.
    ctx.lag(
        &peer,
        if failed || batch.rows > 0 {
            info.max_row() - point
        } else {
            0
        },
    );
    // Progress is kept per acknowledged batch: the last acknowledged
    // batch's ROWID becomes our outgoing point, however the usync ends.
    let record_progress = |point: i64| -> Result<(), ReplError> {
        if point > start_point {
            db.call(|b| b.merge_syncs(&[SyncPoint::new(remote_id, point)], false))?;
        }
        Ok(())
    };
    if failed {
        record_progress(point)?;
        return Ok(false);
    }
    tracing::debug!(
        db = %db.path.display(), %peer, point, batches = diffs,
        "usyncing chunks finished ({:.3}s)", start.elapsed().as_secs_f64()
    );
    if batch.rows > 0 {
        tracing::debug!(
            db = %db.path.display(), %peer,
            "Synchronization has fallen more than {} rows behind; moving on and will try again next pass",
            ctx.conf.max_diffs * per_diff
        );
        ctx.stat(|s| s.diff_capped += 1);
        ctx.count("diff_caps");
        record_progress(point)?;
        return Ok(false);
    }
    fail::fail_point!("sender::before_merge_syncs", |a| Err(ReplError::Db(
        crate::db::injected(&db.path, a)
    )));
    let op = ReplicateOp::<K::Item>::MergeSyncs(sync_table);
    match ctx
        .client
        .replicate(node, partition, &db.hash, &op, timeout)
        .await
    {
        Ok(r) if r.is_success() => {
            // Every row up to max_row (as of the start) was read and
            // acknowledged: the point can be max_row even if the top rows
            // were deleted meanwhile.
            let done = point.max(info.max_row());
            db.call(|b| b.merge_syncs(&[SyncPoint::new(remote_id, done)], false))?;
            Ok(true)
        }
        Ok(r) => {
            tracing::error!(%peer, "ERROR Bad response {} from {peer} to merge_syncs", r.status);
            record_progress(point)?;
            Ok(false)
        }
        Err(e) => {
            tracing::error!(%peer, "ERROR merge_syncs to {peer}: {e}");
            record_progress(point)?;
            Ok(false)
        }
    }
}

/// Ships a snapshot of the DB to the peer's tmp dir, then sends `op`
/// (`complete_rsync` or `rsync_then_merge`) with the local id and DB file
/// name. True iff everything succeeded.
#[allow(clippy::too_many_arguments)]
async fn ship_db<K: ReplKind>(
    ctx: &SenderCtx,
    db: &LocalDb<K>,
    info: &K::Info,
    node: &Device,
    partition: u32,
    op_name: &str,
    op_timeout: Duration,
    (different_region, caps): (bool, PeerCaps),
) -> bool {
    let peer = node_name(node);
    let scratch = ctx.devices.join(&db.device).join("tmp");
    let snap = match db.snapshot(&scratch).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(db = %db.path.display(), "ERROR snapshot failed: {e}");
            return false;
        }
    };
    let shipped = match caps.http_transfer(ctx.conf.db_transfer) {
        false => rsync_to(ctx, snap.path(), node, info.id(), different_region).await,
        true => {
            let big = Duration::from_secs_f64(ctx.conf.node_timeout.max(1.0) * 30.0);
            match ctx
                .client
                .upload_db(node, info.id(), snap.path(), big)
                .await
            {
                Ok(r) if r.is_success() => true,
                Ok(r) => {
                    tracing::error!(%peer, "ERROR DB upload to {peer} answered {}", r.status);
                    false
                }
                Err(e) => {
                    tracing::error!(%peer, "ERROR DB upload to {peer}: {e}");
                    false
                }
            }
        }
    };
    drop(snap);
    if !shipped {
        return false;
    }
    if let Err(e) = db.audited().await {
        tracing::error!(db = %db.path.display(), %peer, "not sending {op_name}: the DB failed its integrity check: {}", e.message);
        return false;
    }
    fail::fail_point!("sender::after_ship", |_| false);
    // From here until the peer answers, the peer may be acting on the
    // shipped copy: a crash must not lead to shipping another one over it.
    let op_timeout = op_timeout.max(ctx.node_timeout());
    let now = ctx.clock.now();
    let deadline = now.checked_add(op_timeout).unwrap_or(now);
    if let Err(e) = ctx.write_ship_record(db, node, deadline) {
        tracing::error!(db = %db.path.display(), %peer, "ERROR not sending {op_name}: cannot record the ship: {e}");
        return false;
    }
    let record = ctx.ship_record(db, node);
    let basename = db
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| format!("{}.db", db.hash));
    let op = if op_name == "complete_rsync" {
        ReplicateOp::<K::Item>::CompleteRsync {
            tmp_name: info.id().to_string(),
            db_basename: Some(basename),
        }
    } else {
        ReplicateOp::RsyncThenMerge {
            tmp_name: info.id().to_string(),
            db_basename: Some(basename),
        }
    };
    let r: Result<ReplResponse, ClientError> = ctx
        .client
        .replicate(node, partition, &db.hash, &op, op_timeout)
        .await;
    if r.is_ok() {
        // Answered (success or not): the peer is done with the copy. With
        // no answer the record stays until its deadline.
        tokio::task::block_in_place(|| super::ship_record::remove(&record));
    }
    match r {
        Ok(r) if r.is_success() => true,
        Ok(r) => {
            tracing::error!(%peer, "ERROR {op_name} answered {}", r.status);
            false
        }
        Err(e) => {
            tracing::error!(%peer, "ERROR {op_name}: {e}");
            false
        }
    }
}

async fn rsync_to(
    ctx: &SenderCtx,
    file: &Path,
    node: &Device,
    local_id: &str,
    different_region: bool,
) -> bool {
    let module = match ctx.conf.rsync_module_for(node) {
        Ok(m) => m,
        Err(e) => {
            tracing::error!("ERROR bad rsync_module: {e}");
            return false;
        }
    };
    let remote = super::rsync::remote_path(&module, &node.device, local_id);
    let args = super::rsync::rsync_args(
        ctx.conf.node_timeout,
        ctx.conf.conn_timeout,
        ctx.conf.rsync_compress && different_region,
        true,
        file,
        &remote,
    );
    let limit = Duration::from_secs_f64(ctx.conf.node_timeout.max(1.0) * 60.0);
    match super::rsync::run_rsync(&args, limit).await {
        Ok(()) => true,
        Err(e) => {
            tracing::error!("ERROR rsync failed: {e}");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::ContainerBroker;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_reach_a_db_file_replaced_under_the_connection() {
        let dir = tempfile::tempdir().unwrap();
        let hash = "0123456789abcdef0123456789abcabc";
        let path = dir
            .path()
            .join(format!("sda/containers/1/abc/{hash}/{hash}.db"));
        let b = ContainerBroker::create(&path, "a", "c", None, 0).unwrap();
        let db = LocalDb::new(b, hash.into(), "sda".into());
        // A peer's rsync_then_merge renames a new file over ours.
        let shipped = dir.path().join("sda/tmp/shipped.db");
        let new = ContainerBroker::create(&shipped, "a", "c", None, 0).unwrap();
        let new_id = new.get_info().unwrap().id;
        drop(new);
        std::fs::rename(&shipped, &path).unwrap();
        db.call(|b| b.merge_syncs(&[SyncPoint::new("peer", 5)], false))
            .unwrap();
        let now = ContainerBroker::open(&path).unwrap();
        assert_eq!(now.get_info().unwrap().id, new_id);
        assert_eq!(now.get_sync("peer", false).unwrap(), 5);
    }
}
