//! `rowsync info`: everything about one container or account DB file, in
//! the spirit of `swift-container-info` / `swift-account-info`, plus the
//! sync tables read with the meaning of each point spelled out.
//!
//! Sync points live in two different ROWID spaces:
//! - an `incoming_sync` entry `(remote_id, point)` says "this DB holds the
//!   rows of DB `remote_id` up to ROWID `point` **of that DB**"; comparing
//!   it with our own `max_row` would mix two numberings, so only the point
//!   is shown (run `rowsync status` to ask the peer how far behind it is);
//! - an `outgoing_sync` entry `(remote_id, point)` says "our rows up to our
//!   ROWID `point` were sent to `remote_id`", so `max_row - point` is how
//!   many of **our** rows that peer may still lack (`behind_rows`; ROWIDs
//!   start at 1, so a point of -1, nothing sent yet, counts as 0).
//!
//! Reading the DB commits its pending file first, as Swift's
//! `swift-container-info` / `swift-account-info` (through `get_info`) do.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::{json, Map, Value};

use super::{human_ts, iso_ts, scan};
use crate::config::SwiftConf;
use crate::db::account::PolicyStat;
use crate::db::files::hash_of;
use crate::db::{
    parse_metadata, Account, AccountBroker, AccountInfo, Broker, Container, ContainerInfo, DbInfo,
    DbKind, SyncPoint,
};
use crate::ring::{Device, Ring};

/// Where the partition number came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionSource {
    /// The ring (`--ring`).
    Ring,
    /// The DB's path (`<part>/<suffix>/<hash>/`).
    Path,
}

impl PartitionSource {
    pub fn name(self) -> &'static str {
        match self {
            PartitionSource::Ring => "ring",
            PartitionSource::Path => "path",
        }
    }
}

/// Everything `rowsync info` shows about one DB whose info is `I`
/// ([`ContainerInfo`] or [`AccountInfo`]).
#[derive(Debug, Clone)]
pub struct DbReport<I> {
    pub db_file: PathBuf,
    pub info: I,
    pub metadata: Map<String, Value>,
    /// Rows in the object table, tombstones included.
    pub rows: i64,
    /// Tombstone rows (`deleted = 1`).
    pub tombstones: i64,
    pub incoming: Vec<SyncPoint>,
    pub outgoing: Vec<SyncPoint>,
    pub partition: Option<u32>,
    pub partition_source: Option<PartitionSource>,
    /// The hash in the file's name.
    pub file_hash: Option<String>,
    /// `hash_path(account, container)` with the given swift.conf.
    pub computed_hash: Option<String>,
    pub policy_name: Option<String>,
    /// The partition's primaries in the given ring.
    pub primaries: Vec<Device>,
    /// Per-policy stats (accounts).
    pub policy_stats: Vec<PolicyStat>,
}

/// A report of either kind, as the file turned out to be.
#[derive(Debug, Clone)]
pub enum AnyReport {
    Container(DbReport<ContainerInfo>),
    Account(DbReport<AccountInfo>),
}

impl AnyReport {
    /// Reads `db_file` as the kind its tables say it is (anything else is
    /// refused before anything is written).
    pub fn read(db_file: &Path, ctx: InfoContext<'_>) -> anyhow::Result<AnyReport> {
        if !db_file.is_file() {
            anyhow::bail!("{}: no such file", db_file.display());
        }
        let kind = crate::db::kind_of_file(db_file)
            .with_context(|| format!("{} is not a readable DB", db_file.display()))?;
        match kind {
            Some(k) if k == Account::NAME => {
                let mut r = DbReport::read::<Account>(db_file, ctx)?;
                r.policy_stats = AccountBroker::open(db_file)
                    .and_then(|b| b.get_policy_stats())
                    .with_context(|| {
                        format!("{} is not a readable account DB", db_file.display())
                    })?;
                Ok(AnyReport::Account(r))
            }
            Some(_) => Ok(AnyReport::Container(DbReport::read::<Container>(
                db_file, ctx,
            )?)),
            None => anyhow::bail!(
                "{} is not a readable container or account DB",
                db_file.display()
            ),
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            AnyReport::Container(r) => r.to_json(),
            AnyReport::Account(r) => r.to_json(),
        }
    }

    pub fn render_text(&self) -> String {
        match self {
            AnyReport::Container(r) => r.render_text(),
            AnyReport::Account(r) => r.render_text(),
        }
    }
}

/// Optional context: a ring and swift.conf.
#[derive(Debug, Default, Clone, Copy)]
pub struct InfoContext<'a> {
    pub ring: Option<&'a Ring>,
    pub swift: Option<&'a SwiftConf>,
}

impl<I: DbInfo> DbReport<I> {
    /// Opens `db_file` (it must be a DB of kind `K`: a DB of the other kind
    /// or any other file is refused before anything is written), commits
    /// its pending file and reads everything.
    pub fn read<K: DbKind<Info = I>>(
        db_file: &Path,
        ctx: InfoContext<'_>,
    ) -> anyhow::Result<DbReport<I>> {
        if !db_file.is_file() {
            anyhow::bail!("{}: no such file", db_file.display());
        }
        let not_kind = || format!("{} is not a readable {} DB", db_file.display(), K::NAME);
        // open_checked reads the stat table without committing the pending
        // file, so the other kind's pending records are never misread.
        let broker = Broker::<K>::open_checked(db_file).with_context(not_kind)?;
        let info = broker.get_replication_info().with_context(not_kind)?;
        let metadata = parse_metadata(info.metadata()).unwrap_or_default();
        let (rows, tombstones) = broker.row_counts().with_context(not_kind)?;
        let incoming = broker.get_syncs_with_time(true).with_context(not_kind)?;
        let outgoing = broker.get_syncs_with_time(false).with_context(not_kind)?;
        drop(broker);

        let file_hash = hash_of(db_file).filter(|h| crate::swift::hash::is_valid_hash(h));
        let computed_hash = match ctx.swift {
            Some(s) => Some(
                s.hash_path_config()
                    .hash_path(info.account(), info.container(), None)
                    .context("hashing the DB's path")?,
            ),
            None => None,
        };
        let (mut partition, mut partition_source) = (None, None);
        let mut primaries = Vec::new();
        if let Some(ring) = ctx.ring {
            let hash = computed_hash.as_ref().or(file_hash.as_ref()).context(
                "cannot compute the partition: the file name holds no hash; give --swift-conf",
            )?;
            let digest = crate::swift::hash::parse_hash(hash)
                .with_context(|| format!("{hash:?} is not a DB hash; give --swift-conf"))?;
            let part = ring.part_of_digest(&digest);
            partition = Some(part);
            partition_source = Some(PartitionSource::Ring);
            primaries = ring
                .get_part_nodes(part)
                .into_iter()
                .map(|n| n.device)
                .collect();
        } else if let Some(part) = scan::partition_from_path(db_file) {
            partition = Some(part);
            partition_source = Some(PartitionSource::Path);
        }
        let policy_name = ctx.swift.and_then(|s| {
            info.storage_policy_index()
                .and_then(|i| u32::try_from(i).ok())
                .and_then(|i| s.policy(i))
                .map(|p| p.name.clone())
        });
        Ok(DbReport {
            db_file: db_file.to_path_buf(),
            info,
            metadata,
            rows,
            tombstones,
            incoming,
            outgoing,
            partition,
            partition_source,
            file_hash,
            computed_hash,
            policy_name,
            primaries,
            policy_stats: Vec::new(),
        })
    }

    /// How many of our rows the peer of an outgoing entry may still lack.
    /// (ROWIDs start at 1, so a point of -1 counts like 0.)
    pub fn outgoing_behind(&self, p: &SyncPoint) -> i64 {
        (self.info.max_row() - p.sync_point.max(0)).max(0)
    }

    /// The hash in the file name differs from `hash_path(account[,
    /// container])`: the DB is not where Swift would look for it.
    pub fn misplaced(&self) -> bool {
        matches!((&self.file_hash, &self.computed_hash), (Some(f), Some(c)) if f != c)
    }

    /// The sync tables as JSON (outgoing entries with `behind_rows`).
    fn sync_json(&self, points: &[SyncPoint], outgoing: bool) -> Value {
        points
            .iter()
            .map(|p| {
                let mut o = json!({
                    "remote_id": p.remote_id,
                    "sync_point": p.sync_point,
                    "updated_at": p.updated_at,
                    "updated_at_iso": p.updated_at.as_deref().and_then(iso_ts),
                });
                if outgoing {
                    o["behind_rows"] = self.outgoing_behind(p).into();
                }
                o
            })
            .collect()
    }

    /// The partition, primaries and sync tables, as text.
    fn render_location_and_syncs(&self, w: &mut String) {
        match (self.partition, self.partition_source) {
            (Some(p), Some(src)) => {
                let _ = writeln!(w, "Partition: {p} (from the {})", src.name());
            }
            _ => {
                let _ = writeln!(
                    w,
                    "Partition: unknown (the path is not <part>/<suffix>/<hash>/; give --ring)"
                );
            }
        }
        if !self.primaries.is_empty() {
            let _ = writeln!(w, "Primary nodes (from the ring):");
            for d in &self.primaries {
                let _ = writeln!(
                    w,
                    "  {}:{}/{}  (id {}, region {}, zone {})",
                    d.ip, d.port, d.device, d.id, d.region, d.zone
                );
            }
        }
        let _ = writeln!(
            w,
            "Incoming sync points: rows of another replica merged into this DB; \
             the point is a ROWID of THAT replica"
        );
        sync_table(w, &self.incoming, None);
        let max_row = self.info.max_row();
        let _ = writeln!(
            w,
            "Outgoing sync points: how far this DB's rows were pushed to each peer; \
             behind = max_row ({max_row}) - point = rows that peer may still lack"
        );
        sync_table(w, &self.outgoing, Some(max_row));
    }

    /// System and user metadata (`prefix` is `x-container-` / `x-account-`).
    fn render_metadata(&self, w: &mut String, prefix: &str) {
        let sysmeta = format!("{prefix}sysmeta-");
        let (sys, user): (Vec<_>, Vec<_>) = self
            .metadata
            .iter()
            .partition(|(k, _)| k.to_ascii_lowercase().starts_with(&sysmeta));
        for (title, items) in [("System Metadata", sys), ("User Metadata", user)] {
            if items.is_empty() {
                let _ = writeln!(w, "  No {} found in db file", title.to_lowercase());
                continue;
            }
            let _ = writeln!(w, "  {title}:");
            for (k, v) in items {
                let (value, ts) = match v {
                    Value::Array(a) if a.len() == 2 => (
                        a[0].as_str()
                            .map_or_else(|| a[0].to_string(), str::to_string),
                        a[1].as_str().map(human_ts).unwrap_or_default(),
                    ),
                    other => (other.to_string(), String::new()),
                };
                let _ = writeln!(w, "    {k}: {value:?}  set {ts}");
            }
        }
    }
}

impl DbReport<ContainerInfo> {
    pub fn is_deleted(&self) -> bool {
        self.info.is_deleted()
    }

    /// `"deleted"` or `"active"`.
    pub fn status(&self) -> &'static str {
        if self.is_deleted() {
            "deleted"
        } else {
            "active"
        }
    }

    /// The JSON form: Swift's replication-info names plus `partition`,
    /// `db_state`, `status` and the sync tables.
    pub fn to_json(&self) -> Value {
        let i = &self.info;
        let sync = |points: &[SyncPoint], outgoing: bool| self.sync_json(points, outgoing);
        let human = json!({
            "created_at": iso_ts(&i.created_at),
            "put_timestamp": iso_ts(&i.put_timestamp),
            "delete_timestamp": iso_ts(&i.delete_timestamp),
            "status_changed_at": iso_ts(&i.status_changed_at),
            "reported_put_timestamp": iso_ts(&i.reported_put_timestamp),
            "reported_delete_timestamp": iso_ts(&i.reported_delete_timestamp),
        });
        json!({
            "db_file": self.db_file.display().to_string(),
            "account": i.account,
            "container": i.container,
            "hash": i.hash,
            "id": i.id,
            "max_row": i.max_row,
            "count": i.count,
            "bytes_used": i.bytes_used,
            "put_timestamp": i.put_timestamp,
            "delete_timestamp": i.delete_timestamp,
            "created_at": i.created_at,
            "status_changed_at": i.status_changed_at,
            "storage_policy_index": i.storage_policy_index,
            "storage_policy_name": self.policy_name,
            "metadata": Value::Object(self.metadata.clone()),
            "incoming_sync": sync(&self.incoming, false),
            "outgoing_sync": sync(&self.outgoing, true),
            "partition": self.partition,
            "partition_source": self.partition_source.map(PartitionSource::name),
            "db_state": i.db_state.as_str(),
            "status": self.status(),
            "status_column": i.status,
            "rows": self.rows,
            "tombstones": self.tombstones,
            "reported_put_timestamp": i.reported_put_timestamp,
            "reported_delete_timestamp": i.reported_delete_timestamp,
            "reported_object_count": i.reported_object_count,
            "reported_bytes_used": i.reported_bytes_used,
            "x_container_sync_point1": i.x_container_sync_point1,
            "x_container_sync_point2": i.x_container_sync_point2,
            "shard_max_row": i.shard_max_row,
            "path_hash": self.file_hash,
            "computed_hash": self.computed_hash,
            "primaries": self.primaries.iter().map(Device::to_json).collect::<Vec<_>>(),
            "timestamps_iso": human,
        })
    }

    /// The text form (`swift-container-info`'s layout, plus sync tables).
    pub fn render_text(&self) -> String {
        let i = &self.info;
        let mut s = String::new();
        let w = &mut s;
        let _ = writeln!(w, "DB file: {}", self.db_file.display());
        let _ = writeln!(w, "Path: /{}/{}", i.account, i.container);
        let _ = writeln!(w, "  Account: {}", i.account);
        let _ = writeln!(w, "  Container: {}", i.container);
        let _ = writeln!(
            w,
            "  Deleted: {}",
            if self.is_deleted() { "True" } else { "False" }
        );
        let hash = self
            .computed_hash
            .as_ref()
            .or(self.file_hash.as_ref())
            .cloned()
            .unwrap_or_else(|| "unknown".into());
        let _ = writeln!(w, "  Container Hash: {hash}");
        if self.misplaced() {
            let _ = writeln!(
                w,
                "  WARNING: the file is named for hash {} but the container hashes to {}",
                self.file_hash.as_deref().unwrap_or("?"),
                self.computed_hash.as_deref().unwrap_or("?"),
            );
        }
        let _ = writeln!(w, "Metadata:");
        let _ = writeln!(w, "  Created at: {}", human_ts(&i.created_at));
        let _ = writeln!(w, "  Put Timestamp: {}", human_ts(&i.put_timestamp));
        let _ = writeln!(w, "  Delete Timestamp: {}", human_ts(&i.delete_timestamp));
        let _ = writeln!(w, "  Status Timestamp: {}", human_ts(&i.status_changed_at));
        let _ = writeln!(w, "  Object Count: {}", i.count);
        let _ = writeln!(w, "  Bytes Used: {}", i.bytes_used);
        let policy = match &self.policy_name {
            Some(n) => format!("{n} ({})", i.storage_policy_index),
            None => i.storage_policy_index.to_string(),
        };
        let _ = writeln!(w, "  Storage Policy: {policy}");
        let _ = writeln!(
            w,
            "  Reported Put Timestamp: {}",
            human_ts(&i.reported_put_timestamp)
        );
        let _ = writeln!(
            w,
            "  Reported Delete Timestamp: {}",
            human_ts(&i.reported_delete_timestamp)
        );
        let _ = writeln!(w, "  Reported Object Count: {}", i.reported_object_count);
        let _ = writeln!(w, "  Reported Bytes Used: {}", i.reported_bytes_used);
        let _ = writeln!(w, "  Chexor: {}", i.hash);
        let _ = writeln!(w, "  UUID: {}", i.id);
        let _ = writeln!(
            w,
            "  X-Container-Sync-Point1: {}",
            i.x_container_sync_point1
        );
        let _ = writeln!(
            w,
            "  X-Container-Sync-Point2: {}",
            i.x_container_sync_point2
        );
        let _ = writeln!(
            w,
            "  Rows: {} ({} tombstones), max_row (highest ROWID used): {}",
            self.rows, self.tombstones, i.max_row
        );
        let _ = writeln!(w, "  Status: {}", self.status());
        self.render_metadata(w, "x-container-");
        let _ = writeln!(w, "Sharding Metadata:");
        let _ = writeln!(w, "  Type: root");
        let _ = writeln!(w, "  State: {}", i.db_state.as_str());
        self.render_location_and_syncs(w);
        s
    }
}

impl DbReport<AccountInfo> {
    pub fn is_deleted(&self) -> bool {
        self.info.is_deleted()
    }

    /// `"deleted"` or `"active"`.
    pub fn status(&self) -> &'static str {
        if self.is_deleted() {
            "deleted"
        } else {
            "active"
        }
    }

    /// The JSON form: every key of Swift's account `get_replication_info()`
    /// (`count` is the container count), plus the per-policy stats,
    /// `partition`, `status` and the sync tables.
    pub fn to_json(&self) -> Value {
        let i = &self.info;
        let policies: Vec<Value> = self
            .policy_stats
            .iter()
            .map(|p| {
                json!({
                    "storage_policy_index": p.storage_policy_index,
                    "container_count": p.container_count,
                    "object_count": p.object_count,
                    "bytes_used": p.bytes_used,
                })
            })
            .collect();
        json!({
            "db_file": self.db_file.display().to_string(),
            "db_type": "account",
            "account": i.account,
            "created_at": i.created_at,
            "put_timestamp": i.put_timestamp,
            "delete_timestamp": i.delete_timestamp,
            "status_changed_at": i.status_changed_at,
            "object_count": i.object_count,
            "bytes_used": i.bytes_used,
            "hash": i.hash,
            "id": i.id,
            "count": i.count,
            "container_count": i.count,
            "metadata": Value::Object(self.metadata.clone()),
            "max_row": i.max_row,
            "policy_stats": policies,
            "incoming_sync": self.sync_json(&self.incoming, false),
            "outgoing_sync": self.sync_json(&self.outgoing, true),
            "partition": self.partition,
            "partition_source": self.partition_source.map(PartitionSource::name),
            "status": self.status(),
            "status_column": i.status,
            "rows": self.rows,
            "tombstones": self.tombstones,
            "path_hash": self.file_hash,
            "computed_hash": self.computed_hash,
            "primaries": self.primaries.iter().map(Device::to_json).collect::<Vec<_>>(),
            "timestamps_iso": json!({
                "created_at": iso_ts(&i.created_at),
                "put_timestamp": iso_ts(&i.put_timestamp),
                "delete_timestamp": iso_ts(&i.delete_timestamp),
                "status_changed_at": iso_ts(&i.status_changed_at),
            }),
        })
    }

    /// The text form (`swift-account-info`'s layout, plus per-policy stats
    /// and sync tables).
    pub fn render_text(&self) -> String {
        let i = &self.info;
        let mut s = String::new();
        let w = &mut s;
        let _ = writeln!(w, "DB file: {}", self.db_file.display());
        let _ = writeln!(w, "Path: /{}", i.account);
        let _ = writeln!(w, "  Account: {}", i.account);
        let _ = writeln!(
            w,
            "  Deleted: {}",
            if self.is_deleted() { "True" } else { "False" }
        );
        let hash = self
            .computed_hash
            .as_ref()
            .or(self.file_hash.as_ref())
            .cloned()
            .unwrap_or_else(|| "unknown".into());
        let _ = writeln!(w, "  Account Hash: {hash}");
        if self.misplaced() {
            let _ = writeln!(
                w,
                "  WARNING: the file is named for hash {} but the account hashes to {}",
                self.file_hash.as_deref().unwrap_or("?"),
                self.computed_hash.as_deref().unwrap_or("?"),
            );
        }
        let _ = writeln!(w, "Metadata:");
        let _ = writeln!(w, "  Created at: {}", human_ts(&i.created_at));
        let _ = writeln!(w, "  Put Timestamp: {}", human_ts(&i.put_timestamp));
        let _ = writeln!(w, "  Delete Timestamp: {}", human_ts(&i.delete_timestamp));
        let _ = writeln!(w, "  Status Timestamp: {}", human_ts(&i.status_changed_at));
        let _ = writeln!(w, "  Container Count: {}", i.count);
        let _ = writeln!(w, "  Object Count: {}", i.object_count);
        let _ = writeln!(w, "  Bytes Used: {}", i.bytes_used);
        let _ = writeln!(w, "  Chexor: {}", i.hash);
        let _ = writeln!(w, "  UUID: {}", i.id);
        let _ = writeln!(
            w,
            "  Rows: {} ({} tombstones), max_row (highest ROWID used): {}",
            self.rows, self.tombstones, i.max_row
        );
        let _ = writeln!(w, "  Status: {}", self.status());
        self.render_metadata(w, "x-account-");
        if !self.policy_stats.is_empty() {
            let _ = writeln!(w, "Storage policies:");
            for p in &self.policy_stats {
                let containers = p
                    .container_count
                    .map_or_else(|| "?".to_string(), |c| c.to_string());
                let _ = writeln!(
                    w,
                    "  {}: {containers} containers, {} objects, {} bytes",
                    p.storage_policy_index, p.object_count, p.bytes_used
                );
            }
        }
        self.render_location_and_syncs(w);
        s
    }
}

fn sync_table(w: &mut String, points: &[SyncPoint], max_row: Option<i64>) {
    if points.is_empty() {
        let _ = writeln!(w, "  (none)");
        return;
    }
    let width = points
        .iter()
        .map(|p| p.remote_id.len())
        .max()
        .unwrap_or(9)
        .max(9);
    let _ = write!(w, "  {:<width$}  {:>10}", "remote id", "point");
    if max_row.is_some() {
        let _ = write!(w, "  {:>10}", "behind");
    }
    let _ = writeln!(w, "  updated at");
    for p in points {
        let _ = write!(w, "  {:<width$}  {:>10}", p.remote_id, p.sync_point);
        if let Some(m) = max_row {
            let _ = write!(w, "  {:>10}", (m - p.sync_point.max(0)).max(0));
        }
        let updated = p.updated_at.as_deref().map(human_ts).unwrap_or_default();
        let _ = writeln!(w, "  {updated}");
    }
}
