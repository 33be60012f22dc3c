//! Container DBs (Swift 2.38's `ContainerBroker`): the container kind of
//! the shared core (object rows and their merge rule, `container_stat`),
//! creation, listings, storage policy, reported stats and shard ranges.

use std::collections::HashMap;
use std::path::Path;

use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

use super::conn::value_text;
use super::core::{col_int, col_text, ts_or_zero, zero_like_text, Broker, MergeOutcome, Tx};
use super::files::{db_files, hash_of, parse_db_filename};
use super::kind::{DbInfo, DbItem, DbKind, DbState};
use super::shard::{self, merge_shards, ShardRange, SHARD_RANGE_KEYS};
use super::stats::{HashXor, PolicyDeltas};
use super::{schema, DbError, Result};

mod listing;
use crate::swift::merge::{update_new_item_from_existing, ObjectItem};
use crate::swift::pending::{self as pending_fmt, PendingError};
use crate::swift::{pickle, Timestamp};
pub use listing::{ListingEntry, ListingParams};

/// The container kind of DB.
#[derive(Debug, Clone, Copy)]
pub struct Container;

/// A container DB.
pub type ContainerBroker = Broker<Container>;

/// Metadata keys that survive `delete_db` (container sharding sysmeta).
const DELETE_META_WHITELIST: &[&str] = &[
    "x-container-sysmeta-shard-quoted-root",
    "x-container-sysmeta-shard-root",
    "x-container-sysmeta-sharding",
];

/// `get_replication_info()`: the container's info as Swift sends it in a
/// `sync` answer, keys in Swift's order. `point` is added by a receiver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ContainerInfo {
    pub account: String,
    pub container: String,
    pub created_at: String,
    pub put_timestamp: String,
    pub delete_timestamp: String,
    pub status: String,
    pub status_changed_at: String,
    pub bytes_used: i64,
    pub reported_put_timestamp: String,
    pub reported_delete_timestamp: String,
    pub reported_object_count: i64,
    pub reported_bytes_used: i64,
    pub hash: String,
    pub id: String,
    pub x_container_sync_point1: i64,
    pub x_container_sync_point2: i64,
    pub storage_policy_index: i64,
    #[serde(deserialize_with = "lenient_db_state")]
    pub db_state: DbState,
    /// Object count of the container's policy.
    pub count: i64,
    /// The raw metadata column (a JSON object as a string, or "").
    pub metadata: String,
    pub max_row: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard_max_row: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub point: Option<i64>,
}

impl ContainerInfo {
    /// Is the container deleted (no objects and deleted after its last PUT)?
    pub fn is_deleted(&self) -> bool {
        self.count == 0 && ts_or_zero(&self.delete_timestamp) > ts_or_zero(&self.put_timestamp)
    }
}

impl ContainerBroker {
    /// Creates a new container DB at `db_file` as Swift's `initialize` does
    /// (see [`Broker::create_with`]).
    pub fn create(
        db_file: impl AsRef<Path>,
        account: &str,
        container: &str,
        put_timestamp: Option<Timestamp>,
        storage_policy_index: i64,
    ) -> Result<Self> {
        if account.is_empty() || container.is_empty() {
            return Err(DbError::Invalid(
                "a new container DB needs an account and a container".into(),
            ));
        }
        let put_ts = put_timestamp.unwrap_or(Timestamp::ZERO).internal();
        Self::create_with(db_file.as_ref(), |conn: &Connection, db_id: &str| {
            conn.execute_batch(schema::OBJECT_TABLE)?;
            conn.execute_batch(schema::POLICY_STAT_TABLE)?;
            conn.execute(
                "INSERT INTO policy_stat (storage_policy_index) VALUES (?)",
                [storage_policy_index],
            )?;
            conn.execute_batch(schema::CONTAINER_INFO)?;
            conn.execute(
                "INSERT INTO container_info (account, container, created_at, id,
                     put_timestamp, status_changed_at, storage_policy_index)
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
                params![
                    account,
                    container,
                    Timestamp::now().normal(),
                    db_id,
                    put_ts,
                    put_ts,
                    storage_policy_index
                ],
            )?;
            conn.execute_batch(schema::SHARD_RANGE_TABLE)
        })
    }

    /// INSERTs rows as they are, in one transaction, without the merge rule
    /// or any sync point: the floor `rowsync bench merge` compares merges
    /// with. Not for DBs that may already hold the rows' names.
    pub fn insert_unmerged(&self, rows: &[ObjectItem]) -> Result<()> {
        let tx = self.write_lock()?;
        insert_object_rows(self, rows)?;
        tx.commit().map_err(|e| self.err(e))
    }

    /// Adds an object row through the pending file (Swift's `put_object`).
    pub fn put_object(&self, item: &ObjectItem) -> Result<()> {
        self.put_item(item)
    }

    /// Records a tombstone through the pending file (`delete_object`).
    pub fn delete_object(
        &self,
        name: &str,
        timestamp: &str,
        storage_policy_index: i64,
    ) -> Result<()> {
        let mut item = ObjectItem::tombstone(name, timestamp);
        item.storage_policy_index = storage_policy_index;
        self.put_item(&item)
    }

    fn read_info(&self) -> Result<ContainerInfo> {
        let mut sync_cols = "x_container_sync_point1, x_container_sync_point2";
        let mut policy_col = "storage_policy_index";
        for _ in 0..3 {
            let sql = format!(
                "SELECT account, container, created_at, put_timestamp, delete_timestamp, status,
                        status_changed_at, object_count, bytes_used, reported_put_timestamp,
                        reported_delete_timestamp, reported_object_count, reported_bytes_used,
                        hash, id, {sync_cols}, {policy_col}
                 FROM container_stat"
            );
            let res = self
                .conn
                .query_row(&sql, [], |r| {
                    Ok(ContainerInfo {
                        account: col_text(r, 0)?,
                        container: col_text(r, 1)?,
                        created_at: col_text(r, 2)?,
                        put_timestamp: col_text(r, 3)?,
                        delete_timestamp: col_text(r, 4)?,
                        status: col_text(r, 5)?,
                        status_changed_at: col_text(r, 6)?,
                        count: col_int(r, 7)?,
                        bytes_used: col_int(r, 8)?,
                        reported_put_timestamp: col_text(r, 9)?,
                        reported_delete_timestamp: col_text(r, 10)?,
                        reported_object_count: col_int(r, 11)?,
                        reported_bytes_used: col_int(r, 12)?,
                        hash: col_text(r, 13)?,
                        id: col_text(r, 14)?,
                        x_container_sync_point1: col_int(r, 15)?,
                        x_container_sync_point2: col_int(r, 16)?,
                        storage_policy_index: col_int(r, 17)?,
                        ..Default::default()
                    })
                })
                .optional();
            match res {
                Ok(Some(info)) => return Ok(info),
                Ok(None) => {
                    return Err(DbError::Corrupt {
                        path: self.db_file.clone(),
                        reason: "missing row in container_stat table",
                        detail: String::new(),
                    })
                }
                Err(e) => {
                    let msg = e.to_string();
                    if msg.contains("no such column: storage_policy_index")
                        && policy_col == "storage_policy_index"
                    {
                        policy_col = "0 AS storage_policy_index";
                    } else if msg.contains("no such column: x_container_sync_point")
                        && sync_cols.starts_with('x')
                    {
                        sync_cols = "-1 AS x_container_sync_point1, -1 AS x_container_sync_point2";
                    } else {
                        return Err(self.err(e));
                    }
                }
            }
        }
        Err(DbError::Corrupt {
            path: self.db_file.clone(),
            reason: "unreadable container_stat",
            detail: String::new(),
        })
    }

    /// Object count and bytes per storage policy.
    pub fn get_policy_stats(&self) -> Result<Vec<(i64, i64, i64)>> {
        let mut q = self
            .conn
            .prepare("SELECT storage_policy_index, object_count, bytes_used FROM policy_stat")
            .map_err(|e| self.err(e))?;
        let rows = q
            .query_map([], |r| Ok((col_int(r, 0)?, col_int(r, 1)?, col_int(r, 2)?)))
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))
    }

    /// No live rows in any policy (commits pending first).
    pub fn empty(&self) -> Result<bool> {
        self.commit_pending()?;
        let max: Option<i64> = self
            .conn
            .query_row("SELECT max(object_count) FROM policy_stat", [], |r| {
                r.get(0)
            })
            .map_err(|e| self.err(e))?;
        Ok(max.unwrap_or(0) == 0)
    }

    /// Deleted for longer than `reclaim_age` and empty: the replicator may
    /// remove the DB.
    pub fn is_reclaimable(&self, now: f64, reclaim_age: f64) -> Result<bool> {
        let (put, delete): (String, String) = self
            .conn
            .query_row(
                "SELECT put_timestamp, delete_timestamp FROM container_stat",
                [],
                |r| Ok((col_text(r, 0)?, col_text(r, 1)?)),
            )
            .map_err(|e| self.err(e))?;
        let limit = Timestamp::from_f64((now - reclaim_age).max(0.0)).unwrap_or(Timestamp::ZERO);
        let (put, delete) = (ts_or_zero(&put), ts_or_zero(&delete));
        if !(limit > delete && delete > put) {
            return Ok(false);
        }
        if self.has_other_shard_ranges()? || self.db_state()? == DbState::Sharding {
            return Ok(false);
        }
        self.empty()
    }

    /// Sets the container's storage policy (and `status_changed_at`).
    pub fn set_storage_policy_index(&self, policy: i64, timestamp: Option<&str>) -> Result<()> {
        let ts = timestamp
            .map(str::to_string)
            .unwrap_or_else(|| Timestamp::now().internal());
        let tx = Tx::immediate(&self.conn).map_err(|e| self.err(e))?;
        self.conn
            .execute(
                "INSERT OR IGNORE INTO policy_stat (storage_policy_index) VALUES (?)",
                [policy],
            )
            .map_err(|e| self.err(e))?;
        self.conn
            .execute(
                "UPDATE container_stat SET storage_policy_index = ?,
                        status_changed_at = MAX(?, status_changed_at)
                 WHERE storage_policy_index <> ?",
                params![policy, ts, policy],
            )
            .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))
    }

    /// Records what was last reported to the account.
    pub fn reported(
        &self,
        put: &str,
        delete: &str,
        object_count: i64,
        bytes_used: i64,
    ) -> Result<()> {
        self.conn
            .execute(
                "UPDATE container_stat SET reported_put_timestamp = ?,
                        reported_delete_timestamp = ?, reported_object_count = ?,
                        reported_bytes_used = ?",
                params![put, delete, object_count, bytes_used],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    // ----------------------------------------------------------------------
    // Shard ranges (stored and replicated; rowsync does not shard)

    /// `<account>/<container>` from the stat table.
    pub fn own_path(&self) -> Result<String> {
        let (a, c): (String, String) = self
            .conn
            .query_row("SELECT account, container FROM container_stat", [], |r| {
                Ok((col_text(r, 0)?, col_text(r, 1)?))
            })
            .map_err(|e| self.err(e))?;
        Ok(format!("{a}/{c}"))
    }

    /// Every shard range row, including the own one and deleted ones.
    pub fn get_all_shard_ranges(&self) -> Result<Vec<ShardRange>> {
        let sql = format!("SELECT {SHARD_RANGE_KEYS} FROM shard_range ORDER BY ROWID");
        let mut q = match self.conn.prepare(&sql) {
            Ok(q) => q,
            Err(e) if e.to_string().contains("no such table: shard_range") => return Ok(Vec::new()),
            Err(e) => return Err(self.err(e)),
        };
        let rows = q
            .query_map([], row_to_shard_range)
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))
    }

    /// The own shard range, if stored.
    pub fn get_own_shard_range(&self) -> Result<Option<ShardRange>> {
        let path = self.own_path()?;
        let sql = format!("SELECT {SHARD_RANGE_KEYS} FROM shard_range WHERE name = ? LIMIT 1");
        match self
            .conn
            .query_row(&sql, [&path], row_to_shard_range)
            .optional()
        {
            Ok(r) => Ok(r),
            Err(e) if e.to_string().contains("no such table: shard_range") => Ok(None),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Any undeleted shard range other than the own one?
    pub fn has_other_shard_ranges(&self) -> Result<bool> {
        let path = self.own_path()?;
        match self
            .conn
            .query_row(
                "SELECT 1 FROM shard_range WHERE deleted = 0 AND name != ? LIMIT 1",
                [&path],
                |_| Ok(()),
            )
            .optional()
        {
            Ok(r) => Ok(r.is_some()),
            Err(e) if e.to_string().contains("no such table: shard_range") => Ok(false),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Has sharding been initiated (own range cleaving and other ranges)?
    pub fn sharding_initiated(&self) -> Result<bool> {
        let own_state = self
            .get_own_shard_range()?
            .map(|s| s.state)
            .unwrap_or(shard::state::ACTIVE);
        if shard::state::CLEAVING.contains(&own_state) {
            return self.has_other_shard_ranges();
        }
        Ok(false)
    }

    /// Swift's `get_db_state()`.
    pub fn db_state(&self) -> Result<DbState> {
        let Some(hash) = hash_of(&self.db_file) else {
            return Ok(DbState::Unsharded);
        };
        let dir = self.db_file.parent().unwrap_or(Path::new("."));
        let found = db_files(dir, &hash);
        if found.len() > 1 {
            return Ok(DbState::Sharding);
        }
        let name = self
            .db_file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let epoch = parse_db_filename(name).and_then(|(_, e)| e);
        let Some(epoch) = epoch else {
            return Ok(DbState::Unsharded);
        };
        let own_epoch = self.get_own_shard_range()?.and_then(|s| s.epoch);
        if own_epoch.as_deref() != Some(epoch) {
            return Ok(DbState::Unsharded);
        }
        Ok(if self.has_other_shard_ranges()? {
            DbState::Sharded
        } else {
            DbState::Collapsed
        })
    }

    /// Swift's `check_merge_own_shard_range`: when our own shard range has
    /// an epoch, drop incoming own ranges without one.
    pub fn filter_own_shard_range(&self, ranges: Vec<ShardRange>) -> Result<Vec<ShardRange>> {
        let Some(own) = self.get_own_shard_range()? else {
            return Ok(ranges);
        };
        if own.epoch.is_none() {
            return Ok(ranges);
        }
        Ok(ranges
            .into_iter()
            .filter(|r| {
                if r.name == own.name && r.epoch.as_deref().unwrap_or("").is_empty() {
                    let mut copy = r.clone();
                    if merge_shards(&mut copy, Some(&own)) && copy.epoch.is_none() {
                        tracing::warn!(name = %r.name, "Ignoring remote osr w/o epoch");
                    }
                    false
                } else {
                    true
                }
            })
            .collect())
    }

    /// Merges shard ranges with Swift's rule (`merge_shard_ranges`).
    pub fn merge_shard_ranges(&self, ranges: Vec<ShardRange>) -> Result<()> {
        if ranges.is_empty() {
            return Ok(());
        }
        let exists: Option<i64> = self
            .conn
            .query_row(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'shard_range'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        if exists.is_none() {
            self.conn
                .execute_batch(schema::SHARD_RANGE_TABLE)
                .map_err(|e| self.err(e))?;
        }
        let tx = Tx::immediate(&self.conn).map_err(|e| self.err(e))?;
        let mut existing: HashMap<String, ShardRange> = HashMap::new();
        {
            let sql = format!(
                "SELECT {SHARD_RANGE_KEYS} FROM shard_range WHERE deleted IN (0, 1) AND name = ?"
            );
            let mut q = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
            for r in &ranges {
                let rows = q
                    .query_map([&r.name], row_to_shard_range)
                    .map_err(|e| self.err(e))?;
                for row in rows {
                    let row = row.map_err(|e| self.err(e))?;
                    existing.insert(row.name.clone(), row);
                }
            }
        }
        let mut to_delete: Vec<String> = Vec::new();
        let mut queue: Vec<ShardRange> = Vec::new();
        let mut pos: HashMap<String, usize> = HashMap::new();
        for mut item in ranges {
            let cur = existing.get(&item.name);
            if merge_shards(&mut item, cur) {
                if cur.is_some() && !to_delete.contains(&item.name) {
                    to_delete.push(item.name.clone());
                }
                match pos.get(&item.name) {
                    None => {
                        pos.insert(item.name.clone(), queue.len());
                        queue.push(item);
                    }
                    Some(&i) => {
                        if merge_shards(&mut item, Some(&queue[i])) {
                            queue[i] = item;
                        }
                    }
                }
            }
        }
        for name in &to_delete {
            self.conn
                .execute(
                    "DELETE FROM shard_range WHERE deleted IN (0, 1) AND name = ?",
                    [name],
                )
                .map_err(|e| self.err(e))?;
        }
        for s in &queue {
            self.conn
                .execute(
                    &format!(
                        "INSERT INTO shard_range ({SHARD_RANGE_KEYS})
                         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    ),
                    params![
                        s.name,
                        s.timestamp,
                        s.lower,
                        s.upper,
                        s.object_count,
                        s.bytes_used,
                        s.meta_timestamp,
                        s.deleted,
                        s.state,
                        s.state_timestamp,
                        s.epoch,
                        s.reported,
                        s.tombstones
                    ],
                )
                .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    // ----------------------------------------------------------------------
    // Container-server helpers

    /// Swift's `set_x_container_sync_points(p1, p2)` (both set): the
    /// container-sync positions, reset to -1 when `X-Container-Sync-To`
    /// changes. Adds the columns to a DB too old to have them.
    pub fn set_x_container_sync_points(&self, sync_point1: i64, sync_point2: i64) -> Result<()> {
        let update = || {
            self.conn.execute(
                "UPDATE container_stat SET x_container_sync_point1 = ?,
                        x_container_sync_point2 = ?",
                params![sync_point1, sync_point2],
            )
        };
        match update() {
            Ok(_) => Ok(()),
            Err(e)
                if e.to_string()
                    .contains("no such column: x_container_sync_point") =>
            {
                self.conn
                    .execute_batch(
                        "BEGIN;
                         ALTER TABLE container_stat
                             ADD COLUMN x_container_sync_point1 INTEGER DEFAULT -1;
                         ALTER TABLE container_stat
                             ADD COLUMN x_container_sync_point2 INTEGER DEFAULT -1;
                         COMMIT;",
                    )
                    .map_err(|e| self.err(e))?;
                update().map_err(|e| self.err(e))?;
                Ok(())
            }
            Err(e) => Err(self.err(e)),
        }
    }
}

/// INSERTs object rows as they are (the one INSERT of the object table),
/// within the caller's transaction.
fn insert_object_rows(b: &ContainerBroker, rows: &[ObjectItem]) -> Result<()> {
    let mut ins = b
        .conn
        .prepare_cached(
            "INSERT INTO object (name, created_at, size, content_type, etag, deleted,
                                 storage_policy_index)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .map_err(|e| b.err(e))?;
    for it in rows {
        ins.execute(params![
            it.name,
            it.created_at,
            it.size,
            it.content_type,
            it.etag,
            it.deleted,
            it.storage_policy_index
        ])
        .map_err(|e| b.err(e))?;
    }
    Ok(())
}

/// Swift's container merge (§5.2): per (name, policy), the rule of
/// `update_new_item_from_existing`; newer rows replace older ones (DELETE +
/// INSERT), within the caller's transaction.
fn merge_object_rows(
    b: &ContainerBroker,
    items: Vec<ObjectItem>,
    trigger_free: bool,
) -> Result<MergeOutcome> {
    let guard = b.deleted_guard();
    // Existing rows for the batch's names, as they are before the merge.
    let mut existing: HashMap<(String, i64), ObjectItem> = HashMap::new();
    {
        let mut q = b
            .conn
            .prepare_cached(&format!(
                "SELECT name, created_at, size, content_type, etag, deleted,
                            storage_policy_index
                     FROM object WHERE {guard} name = ?"
            ))
            .map_err(|e| b.err(e))?;
        let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::new();
        for item in &items {
            if !seen.insert(item.name.as_str()) {
                continue;
            }
            let rows = q
                .query_map([&item.name], row_to_item)
                .map_err(|e| b.err(e))?;
            for row in rows {
                let row = row.map_err(|e| b.err(e))?;
                existing.insert((row.name.clone(), row.storage_policy_index), row);
            }
        }
    }
    let mut to_delete: Vec<(String, i64)> = Vec::new();
    let mut deleting: std::collections::HashSet<(String, i64)> = std::collections::HashSet::new();
    let mut queue: Vec<ObjectItem> = Vec::new();
    let mut queued_at: HashMap<(String, i64), usize> = HashMap::new();
    for mut item in items {
        let ident = (item.name.clone(), item.storage_policy_index);
        let current = existing.get(&ident);
        let newer = update_new_item_from_existing(&mut item, current)
            .map_err(|e| DbError::Invalid(format!("object {:?}: {e}", item.name)))?;
        if !newer {
            continue;
        }
        if current.is_some() && deleting.insert(ident.clone()) {
            to_delete.push(ident.clone());
        }
        match queued_at.get(&ident) {
            Some(&pos) => {
                update_new_item_from_existing(&mut item, Some(&queue[pos]))
                    .map_err(|e| DbError::Invalid(format!("object {:?}: {e}", item.name)))?;
                queue[pos] = item;
            }
            None => {
                queued_at.insert(ident, queue.len());
                queue.push(item);
            }
        }
    }
    if trigger_free {
        // What the triggers would do, row by row, applied once at the end.
        let mut hash = HashXor::default();
        let mut policies = PolicyDeltas::default();
        let mut exists = |p: i64| policy_row_exists(b, p);
        {
            let mut del = b
                .conn
                .prepare_cached(&format!(
                    "DELETE FROM object WHERE {guard} name = ? AND storage_policy_index = ?
                     RETURNING name, created_at, size, deleted, storage_policy_index"
                ))
                .map_err(|e| b.err(e))?;
            for (name, policy) in &to_delete {
                let mut rows = del.query(params![name, policy]).map_err(|e| b.err(e))?;
                while let Some(r) = rows.next().map_err(|e| b.err(e))? {
                    let (n, created, size, deleted, spi) = (
                        col_text(r, 0).map_err(|e| b.err(e))?,
                        col_text(r, 1).map_err(|e| b.err(e))?,
                        col_int(r, 2).map_err(|e| b.err(e))?,
                        col_int(r, 3).map_err(|e| b.err(e))?,
                        col_int(r, 4).map_err(|e| b.err(e))?,
                    );
                    hash.add(&n, &created);
                    policies.delete(spi, [0, 1 - deleted, size], &mut exists)?;
                }
            }
        }
        insert_object_rows(b, &queue)?;
        for it in &queue {
            hash.add(&it.name, &it.created_at);
            policies.insert(
                it.storage_policy_index,
                [0, 1 - it.deleted, it.size],
                &mut exists,
            )?;
        }
        apply_object_stats(b, &hash, &policies)?;
    } else {
        let mut del = b
            .conn
            .prepare_cached(&format!(
                "DELETE FROM object WHERE {guard} name = ? AND storage_policy_index = ?"
            ))
            .map_err(|e| b.err(e))?;
        for (name, policy) in &to_delete {
            del.execute(params![name, policy]).map_err(|e| b.err(e))?;
        }
        insert_object_rows(b, &queue)?;
    }
    Ok(MergeOutcome {
        inserted: queue.len(),
        replaced: to_delete.len(),
    })
}

/// Is there a `policy_stat` row for `policy`?
fn policy_row_exists(b: &ContainerBroker, policy: i64) -> Result<bool> {
    b.conn
        .prepare_cached("SELECT 1 FROM policy_stat WHERE storage_policy_index = ?")
        .and_then(|mut q| q.exists([policy]))
        .map_err(|e| b.err(e))
}

/// Writes what the object triggers would have: per-policy counts and bytes
/// (`object_insert_policy_stat` / `object_delete_policy_stat`) and the
/// `chexor` hash in `container_info`.
fn apply_object_stats(b: &ContainerBroker, hash: &HashXor, policies: &PolicyDeltas) -> Result<()> {
    for (policy, d) in &policies.rows {
        let [_, count, bytes] = d.add;
        if d.existed {
            if count != 0 || bytes != 0 {
                b.conn
                    .prepare_cached(
                        "UPDATE policy_stat SET object_count = object_count + ?,
                                bytes_used = bytes_used + ?
                         WHERE storage_policy_index = ?",
                    )
                    .and_then(|mut s| s.execute(params![count, bytes, policy]))
                    .map_err(|e| b.err(e))?;
            }
        } else if d.exists {
            b.conn
                .prepare_cached(
                    "INSERT INTO policy_stat (storage_policy_index, object_count, bytes_used)
                     VALUES (?, ?, ?)",
                )
                .and_then(|mut s| s.execute(params![policy, count, bytes]))
                .map_err(|e| b.err(e))?;
        }
    }
    if !hash.is_zero() {
        let old: String = b
            .conn
            .query_row("SELECT hash FROM container_info", [], |r| col_text(r, 0))
            .map_err(|e| b.err(e))?;
        let new = hash.apply(&old).ok_or_else(|| DbError::Corrupt {
            path: b.db_file.clone(),
            reason: "unreadable hash in container_info",
            detail: old.clone(),
        })?;
        b.conn
            .execute("UPDATE container_info SET hash = ?", [new])
            .map_err(|e| b.err(e))?;
    }
    Ok(())
}

impl DbKind for Container {
    type Item = ObjectItem;
    type Info = ContainerInfo;
    const NAME: &'static str = "container";
    const DATADIR: &'static str = "containers";
    const STAT_TABLE: &'static str = "container_stat";
    const ITEM_TABLE: &'static str = "object";
    const ITEM_COLUMNS: &'static str =
        "name, created_at, size, content_type, etag, deleted, storage_policy_index";
    const VERSION_INDEX: &'static str = "ix_object_deleted_name";
    const TOMBSTONE_TIME: &'static str = "created_at";
    const DELETE_KEEPS_META: &'static [&'static str] = DELETE_META_WHITELIST;
    const SHARD_RANGES: bool = true;
    const HAS_POLICY: bool = true;
    const SENDER_MERGES_PEER_TIMESTAMPS: bool = true;

    fn read_info(b: &ContainerBroker) -> Result<ContainerInfo> {
        let mut info = b.read_info()?;
        info.db_state = b.db_state()?;
        Ok(info)
    }

    fn add_replication_fields(
        b: &ContainerBroker,
        info: &mut ContainerInfo,
        metadata: String,
        max_row: i64,
    ) -> Result<()> {
        info.metadata = metadata;
        info.max_row = max_row;
        info.shard_max_row = Some(b.get_max_row_of("shard_range")?);
        Ok(())
    }

    fn is_deleted_now(b: &ContainerBroker) -> Result<bool> {
        let (put, delete, count): (String, String, String) = b
            .conn
            .query_row(
                "SELECT put_timestamp, delete_timestamp, object_count FROM container_stat",
                [],
                |r| Ok((col_text(r, 0)?, col_text(r, 1)?, col_text(r, 2)?)),
            )
            .map_err(|e| b.err(e))?;
        Ok(zero_like_text(&count) && ts_or_zero(&delete) > ts_or_zero(&put))
    }

    fn merge_rows(
        b: &ContainerBroker,
        items: Vec<ObjectItem>,
        trigger_free: bool,
    ) -> Result<MergeOutcome> {
        merge_object_rows(b, items, trigger_free)
    }

    /// Swift 2.38's schema: `container_info` with the two policy-stat
    /// triggers on `object` and nothing else but `object_update`.
    fn trigger_free_schema(b: &ContainerBroker) -> Result<bool> {
        let triggers = b.triggers_on("object")?;
        Ok(b.has_table("container_info")?
            && triggers
                == [
                    "object_delete_policy_stat",
                    "object_insert_policy_stat",
                    "object_update",
                ])
    }

    fn is_reclaimable(b: &ContainerBroker, now: f64, reclaim_age: f64) -> Result<bool> {
        b.is_reclaimable(now, reclaim_age)
    }

    /// The reported stats are reset (forces a re-report to the account).
    fn on_newid(b: &ContainerBroker) -> Result<()> {
        b.conn
            .execute(
                "UPDATE container_stat SET reported_put_timestamp = 0,
                        reported_delete_timestamp = 0, reported_object_count = 0,
                        reported_bytes_used = 0",
                [],
            )
            .map_err(|e| b.err(e))?;
        Ok(())
    }

    /// Deleted shard ranges older than `sync_timestamp` (not the own one).
    fn reclaim_more(b: &ContainerBroker, sync_timestamp: f64) -> Result<()> {
        let path = b.own_path()?;
        if let Err(e) = b.conn.execute(
            "DELETE FROM shard_range WHERE deleted = 1 AND timestamp < ? AND name != ?",
            params![sync_timestamp, path],
        ) {
            if !e.to_string().contains("no such table: shard_range") {
                return Err(b.err(e));
            }
        }
        Ok(())
    }

    fn set_storage_policy_index(b: &ContainerBroker, policy: i64, ts: &str) -> Result<()> {
        b.set_storage_policy_index(policy, Some(ts))
    }

    fn shard_ranges(b: &ContainerBroker) -> Result<Vec<ShardRange>> {
        b.get_all_shard_ranges()
    }

    fn merge_peer_shard_ranges(b: &ContainerBroker, ranges: Vec<ShardRange>) -> Result<()> {
        let ranges = b.filter_own_shard_range(ranges)?;
        b.merge_shard_ranges(ranges)
    }

    fn sharding_initiated(b: &ContainerBroker) -> Result<bool> {
        b.sharding_initiated()
    }

    fn db_state(b: &ContainerBroker) -> Result<DbState> {
        b.db_state()
    }
}

impl DbItem for ObjectItem {
    fn rowid(&self) -> Option<i64> {
        self.rowid
    }
    fn set_rowid(&mut self, rowid: Option<i64>) {
        self.rowid = rowid;
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn check(&self) -> std::result::Result<(), String> {
        Timestamp::parse(&self.created_at)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
    fn pending_record(&self) -> Vec<u8> {
        pending_fmt::encode_object_record(self)
    }
    fn from_pending(t: &[pickle::Value]) -> std::result::Result<Self, PendingError> {
        pending_fmt::object_item_from_tuple(t)
    }
    fn from_row(r: &Row<'_>, offset: usize) -> rusqlite::Result<Self> {
        row_to_item_at(r, offset)
    }
}

impl DbInfo for ContainerInfo {
    fn account(&self) -> &str {
        &self.account
    }
    fn container(&self) -> Option<&str> {
        Some(&self.container)
    }
    fn created_at(&self) -> &str {
        &self.created_at
    }
    fn put_timestamp(&self) -> &str {
        &self.put_timestamp
    }
    fn delete_timestamp(&self) -> &str {
        &self.delete_timestamp
    }
    fn status_changed_at(&self) -> &str {
        &self.status_changed_at
    }
    fn hash(&self) -> &str {
        &self.hash
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn count(&self) -> i64 {
        self.count
    }
    fn bytes_used(&self) -> i64 {
        self.bytes_used
    }
    fn max_row(&self) -> i64 {
        self.max_row
    }
    fn metadata(&self) -> &str {
        &self.metadata
    }
    fn point(&self) -> Option<i64> {
        self.point
    }
    fn set_point(&mut self, point: Option<i64>) {
        self.point = point;
    }
    fn storage_policy_index(&self) -> Option<i64> {
        Some(self.storage_policy_index)
    }
    fn shard_max_row(&self) -> Option<i64> {
        self.shard_max_row
    }
    /// Container: every `reported_*` equals its live value.
    fn may_delete(&self) -> bool {
        self.reported_put_timestamp == self.put_timestamp
            && self.reported_delete_timestamp == self.delete_timestamp
            && self.reported_bytes_used == self.bytes_used
            && self.reported_object_count == self.count
    }
}

/// A peer's `db_state`; a state this version does not know reads as
/// `unsharded` rather than failing the whole answer.
fn lenient_db_state<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<DbState, D::Error> {
    let s = Option::<String>::deserialize(d)?.unwrap_or_default();
    Ok(DbState::parse(&s).unwrap_or(DbState::Unsharded))
}

fn row_to_item(r: &Row<'_>) -> rusqlite::Result<ObjectItem> {
    row_to_item_at(r, 0)
}

fn row_to_item_at(r: &Row<'_>, o: usize) -> rusqlite::Result<ObjectItem> {
    Ok(ObjectItem {
        rowid: None,
        name: col_text(r, o)?,
        created_at: col_text(r, o + 1)?,
        size: col_int(r, o + 2)?,
        content_type: col_text(r, o + 3)?,
        etag: col_text(r, o + 4)?,
        deleted: col_int(r, o + 5)?,
        storage_policy_index: col_int(r, o + 6)?,
        ctype_timestamp: None,
        meta_timestamp: None,
        data_timestamp: None,
    })
}

fn row_to_shard_range(r: &Row<'_>) -> rusqlite::Result<ShardRange> {
    Ok(ShardRange {
        name: col_text(r, 0)?,
        timestamp: col_text(r, 1)?,
        lower: col_text(r, 2)?,
        upper: col_text(r, 3)?,
        object_count: col_int(r, 4)?,
        bytes_used: col_int(r, 5)?,
        meta_timestamp: col_text(r, 6)?,
        deleted: col_int(r, 7)?,
        state: col_int(r, 8)?,
        state_timestamp: col_text(r, 9)?,
        epoch: match r.get_ref(10)? {
            ValueRef::Null => None,
            v => Some(value_text(v)),
        },
        reported: col_int(r, 11)?,
        tombstones: col_int(r, 12)?,
    })
}
