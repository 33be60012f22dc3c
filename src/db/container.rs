//! The container broker: one container DB file, read and written exactly as
//! Swift 2.38's `ContainerBroker` does.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::conn::{self, python_float_repr, value_text};
use super::files::{self, db_files, hash_of, parse_db_filename, pending_path};
use super::lock::lock_parent;
use super::shard::{self, merge_shards, ShardRange, SHARD_RANGE_KEYS};
use super::{schema, DbError, Result, RECLAIM_PAGE_SIZE};
use crate::swift::merge::{update_new_item_from_existing, ObjectItem};
use crate::swift::pending::{self as pending_fmt, PENDING_CAP};
use crate::swift::{pyjson, Timestamp};

/// Default wait for the directory lock around pending-file work.
pub const DEFAULT_PENDING_TIMEOUT: Duration = Duration::from_secs(10);

/// Metadata keys that survive `delete_db` (container sharding sysmeta).
const DELETE_META_WHITELIST: [&str; 3] = [
    "x-container-sysmeta-shard-quoted-root",
    "x-container-sysmeta-shard-root",
    "x-container-sysmeta-sharding",
];

/// One row of a sync table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncPoint {
    pub remote_id: String,
    pub sync_point: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

impl SyncPoint {
    pub fn new(remote_id: impl Into<String>, sync_point: i64) -> Self {
        SyncPoint {
            remote_id: remote_id.into(),
            sync_point,
            updated_at: None,
        }
    }
}

/// `get_replication_info()`: the container's info as Swift sends it in a
/// `sync` answer, keys in Swift's order. `point` is added by a receiver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ReplicationInfo {
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
    pub db_state: String,
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

impl ReplicationInfo {
    /// Is the container deleted (no objects and deleted after its last PUT)?
    pub fn is_deleted(&self) -> bool {
        self.count == 0 && ts_or_zero(&self.delete_timestamp) > ts_or_zero(&self.put_timestamp)
    }
}

/// What `merge_items` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MergeOutcome {
    /// Rows inserted (new or newer versions).
    pub inserted: usize,
    /// Older rows replaced.
    pub replaced: usize,
}

/// Options of an object listing (Swift's `list_objects_iter`).
#[derive(Debug, Clone, Default)]
pub struct ListingParams {
    pub limit: usize,
    pub marker: String,
    pub end_marker: String,
    pub prefix: Option<String>,
    pub delimiter: Option<String>,
    pub path: Option<String>,
    pub storage_policy_index: i64,
    pub reverse: bool,
    /// `Some(false)`: live rows only (default); `Some(true)`: tombstones
    /// only; `None`: both.
    pub include_deleted: Option<bool>,
    pub since_row: Option<i64>,
    pub all_policies: bool,
    pub allow_reserved: bool,
}

impl ListingParams {
    pub fn new(limit: usize) -> Self {
        ListingParams {
            limit,
            include_deleted: Some(false),
            ..Default::default()
        }
    }
}

/// One listing entry: an object row or a `subdir` (delimiter roll-up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListingEntry {
    Object(ObjectItem),
    Subdir(String),
}

fn ts_or_zero(s: &str) -> Timestamp {
    Timestamp::parse(s).unwrap_or(Timestamp::ZERO)
}

fn zero_like_text(s: &str) -> bool {
    s.is_empty() || s == "0"
}

/// A value of any SQLite type as text (Python would keep the object).
fn col_text(row: &Row<'_>, idx: usize) -> rusqlite::Result<String> {
    Ok(match row.get_ref(idx)? {
        ValueRef::Null => String::new(),
        v => value_text(v),
    })
}

/// A value of any SQLite type as an integer.
fn col_int(row: &Row<'_>, idx: usize) -> rusqlite::Result<i64> {
    Ok(match row.get_ref(idx)? {
        ValueRef::Integer(i) => i,
        ValueRef::Real(f) => f as i64,
        ValueRef::Text(t) => std::str::from_utf8(t)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0),
        _ => 0,
    })
}

/// A transaction on a shared connection, rolled back unless committed.
struct Tx<'a> {
    conn: &'a Connection,
    done: bool,
}

impl<'a> Tx<'a> {
    fn immediate(conn: &'a Connection) -> rusqlite::Result<Self> {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        Ok(Tx { conn, done: false })
    }
    fn commit(mut self) -> rusqlite::Result<()> {
        self.conn.execute_batch("COMMIT")?;
        self.done = true;
        Ok(())
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

/// A container DB.
pub struct ContainerBroker {
    db_file: PathBuf,
    pending_file: PathBuf,
    conn: Connection,
    pending_timeout: Duration,
    db_version: i32,
    /// (device, inode) of the file the connection opened.
    file_id: Option<(u64, u64)>,
}

fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

impl std::fmt::Debug for ContainerBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContainerBroker")
            .field("db_file", &self.db_file)
            .finish()
    }
}

impl ContainerBroker {
    /// Opens an existing container DB.
    pub fn open(db_file: impl AsRef<Path>) -> Result<Self> {
        let db_file = db_file.as_ref().to_path_buf();
        let id = file_id(&db_file);
        let conn = conn::open(&db_file)?;
        let mut broker = ContainerBroker {
            pending_file: pending_path(&db_file),
            db_file,
            conn,
            pending_timeout: DEFAULT_PENDING_TIMEOUT,
            db_version: 1,
            file_id: id,
        };
        broker.db_version = broker.read_db_version()?;
        Ok(broker)
    }

    /// Opens the DB and checks that it is a readable container DB (the stat
    /// row exists); a corrupt file gives [`DbError::Corrupt`].
    pub fn open_checked(db_file: impl AsRef<Path>) -> Result<Self> {
        let b = Self::open(db_file)?;
        b.read_info()?;
        Ok(b)
    }

    /// Creates a new container DB at `db_file` as Swift's `initialize` does:
    /// build it in a temp file in the same dir, fsync, then rename into place
    /// under the directory lock (failing if the DB appeared meanwhile).
    pub fn create(
        db_file: impl AsRef<Path>,
        account: &str,
        container: &str,
        put_timestamp: Option<Timestamp>,
        storage_policy_index: i64,
    ) -> Result<Self> {
        let db_file = db_file.as_ref().to_path_buf();
        if account.is_empty() || container.is_empty() {
            return Err(DbError::Invalid(
                "a new container DB needs an account and a container".into(),
            ));
        }
        let dir = db_file
            .parent()
            .ok_or_else(|| DbError::Invalid("DB path has no directory".into()))?;
        std::fs::create_dir_all(dir).map_err(|e| DbError::io(dir, e))?;
        let tmp = tempfile::Builder::new()
            .prefix("tmp")
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(|e| DbError::io(dir, e))?;
        let tmp_path = tmp.path().to_path_buf();
        let put_ts = put_timestamp.unwrap_or(Timestamp::ZERO).internal();
        let device = files::device_path_of(&db_file)
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_default();
        {
            let conn = Connection::open(&tmp_path).map_err(|e| DbError::sqlite(&tmp_path, e))?;
            let build = || -> rusqlite::Result<()> {
                conn::configure(&conn, "OFF", "MEMORY")?;
                conn.execute_batch("BEGIN")?;
                conn.execute_batch(schema::SYNC_TABLES)?;
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
                        new_db_id(&device),
                        put_ts,
                        put_ts,
                        storage_policy_index
                    ],
                )?;
                conn.execute_batch(schema::SHARD_RANGE_TABLE)?;
                conn.execute_batch("COMMIT")?;
                Ok(())
            };
            build().map_err(|e| DbError::sqlite(&tmp_path, e))?;
        }
        tmp.as_file()
            .sync_all()
            .map_err(|e| DbError::io(&tmp_path, e))?;
        {
            let _lock = lock_parent(&db_file, DEFAULT_PENDING_TIMEOUT)?;
            if db_file.exists() {
                return Err(DbError::AlreadyExists(db_file));
            }
            tmp.persist(&db_file)
                .map_err(|e| DbError::io(&db_file, e.error))?;
            files::fsync_path(dir)?;
        }
        Self::open(db_file)
    }

    pub fn db_file(&self) -> &Path {
        &self.db_file
    }

    pub fn pending_file(&self) -> &Path {
        &self.pending_file
    }

    /// How long pending-file work waits for the directory lock.
    pub fn set_pending_timeout(&mut self, timeout: Duration) {
        self.pending_timeout = timeout;
    }

    fn err(&self, e: rusqlite::Error) -> DbError {
        DbError::sqlite(&self.db_file, e)
    }

    fn read_db_version(&self) -> Result<i32> {
        let found: Option<i64> = self
            .conn
            .query_row(
                "SELECT 1 FROM sqlite_master WHERE name = 'ix_object_deleted_name'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(if found.is_some() { 1 } else { 0 })
    }

    /// `deleted IN (0, 1) AND ` when the DB has the (deleted, name) index.
    fn deleted_guard(&self) -> &'static str {
        if self.db_version >= 1 {
            "deleted IN (0, 1) AND "
        } else {
            ""
        }
    }

    // ----------------------------------------------------------------------
    // Pending file

    /// Adds a row through the pending file (Swift's `put_object`): appended
    /// under the directory lock, or committed directly when the pending file
    /// is over `PENDING_CAP`.
    pub fn put_object(&self, item: &ObjectItem) -> Result<()> {
        if !self.db_file.exists() {
            return Err(DbError::NotFound(self.db_file.clone()));
        }
        Timestamp::parse(&item.created_at).map_err(|e| DbError::Invalid(e.to_string()))?;
        let _lock = lock_parent(&self.pending_file, self.pending_timeout)?;
        let size = match std::fs::metadata(&self.pending_file) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(DbError::io(&self.pending_file, e)),
        };
        if size > PENDING_CAP {
            self.commit_pending_locked(vec![item.clone()])?;
        } else {
            let mut f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.pending_file)
                .map_err(|e| DbError::io(&self.pending_file, e))?;
            f.write_all(&pending_fmt::encode_object_record(item))
                .map_err(|e| DbError::io(&self.pending_file, e))?;
        }
        Ok(())
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
        self.put_object(&item)
    }

    /// Commits the pending file into the DB (under the directory lock).
    pub fn commit_pending(&self) -> Result<()> {
        // Nothing to commit (Swift truncates the file after a commit, so an
        // empty one is the usual case): no lock. A record appended after
        // this look is committed by the next call, as it would be had it
        // come after the lock.
        match std::fs::metadata(&self.pending_file) {
            Ok(m) if m.len() > 0 => {}
            _ => return Ok(()),
        }
        let _lock = lock_parent(&self.pending_file, self.pending_timeout)?;
        self.commit_pending_locked(Vec::new())
    }

    /// Has the DB file been replaced (renamed over) since we opened it?
    pub fn replaced(&self) -> bool {
        file_id(&self.db_file) != self.file_id
    }

    fn commit_pending_locked(&self, items: Vec<ObjectItem>) -> Result<()> {
        // A whole-DB replacement renames a new file over ours under this
        // same lock: commit into the file that is there now, not into the
        // unlinked one our connection still holds.
        if self.replaced() && self.db_file.exists() {
            let mut fresh = ContainerBroker::open(&self.db_file)?;
            fresh.pending_timeout = self.pending_timeout;
            return fresh.commit_pending_unchecked(items);
        }
        self.commit_pending_unchecked(items)
    }

    fn commit_pending_unchecked(&self, mut items: Vec<ObjectItem>) -> Result<()> {
        let mut file = match OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.pending_file)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !items.is_empty() {
                    self.merge_items(items, None)?;
                }
                return Ok(());
            }
            Err(e) => return Err(DbError::io(&self.pending_file, e)),
        };
        let mut data = Vec::new();
        file.read_to_end(&mut data)
            .map_err(|e| DbError::io(&self.pending_file, e))?;
        for entry in pending_fmt::decode_entries(&data) {
            match entry.and_then(|t| {
                pending_fmt::object_item_from_tuple(&t).map_err(|e| (e, String::new()))
            }) {
                Ok(item) => items.push(item),
                Err((e, raw)) => tracing::error!(
                    file = %self.pending_file.display(),
                    entry = %raw.chars().take(200).collect::<String>(),
                    "Invalid pending entry: {e}"
                ),
            }
        }
        if !items.is_empty() {
            self.merge_items(items, None)?;
        }
        if !data.is_empty() {
            file.set_len(0)
                .map_err(|e| DbError::io(&self.pending_file, e))?;
        }
        Ok(())
    }

    // ----------------------------------------------------------------------
    // Rows

    /// Merges rows with Swift's rule (§5.2). With a `source`, the incoming
    /// sync point for that source becomes max(old, ROWID of the last item),
    /// in the same transaction, whether or not any item was newer.
    pub fn merge_items(
        &self,
        items: Vec<ObjectItem>,
        source: Option<&str>,
    ) -> Result<MergeOutcome> {
        if items.is_empty() {
            return Ok(MergeOutcome::default());
        }
        let sync_point = match source {
            Some(_) => Some(items.last().and_then(|i| i.rowid).ok_or_else(|| {
                DbError::Invalid("merge_items with a source needs a ROWID on the last item".into())
            })?),
            None => None,
        };
        let guard = self.deleted_guard();
        let tx = Tx::immediate(&self.conn).map_err(|e| self.err(e))?;
        // Existing rows for the batch's names, as they are before the merge.
        let mut existing: HashMap<(String, i64), ObjectItem> = HashMap::new();
        {
            let mut q = self
                .conn
                .prepare_cached(&format!(
                    "SELECT name, created_at, size, content_type, etag, deleted,
                            storage_policy_index
                     FROM object WHERE {guard} name = ?"
                ))
                .map_err(|e| self.err(e))?;
            let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::new();
            for item in &items {
                if !seen.insert(item.name.as_str()) {
                    continue;
                }
                let rows = q
                    .query_map([&item.name], row_to_item)
                    .map_err(|e| self.err(e))?;
                for row in rows {
                    let row = row.map_err(|e| self.err(e))?;
                    existing.insert((row.name.clone(), row.storage_policy_index), row);
                }
            }
        }
        let mut to_delete: Vec<(String, i64)> = Vec::new();
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
            if current.is_some() && !to_delete.contains(&ident) {
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
        {
            let mut del = self
                .conn
                .prepare_cached(&format!(
                    "DELETE FROM object WHERE {guard} name = ? AND storage_policy_index = ?"
                ))
                .map_err(|e| self.err(e))?;
            for (name, policy) in &to_delete {
                del.execute(params![name, policy])
                    .map_err(|e| self.err(e))?;
            }
            let mut ins = self
                .conn
                .prepare_cached(
                    "INSERT INTO object (name, created_at, size, content_type, etag, deleted,
                                         storage_policy_index)
                     VALUES (?, ?, ?, ?, ?, ?, ?)",
                )
                .map_err(|e| self.err(e))?;
            for it in &queue {
                ins.execute(params![
                    it.name,
                    it.created_at,
                    it.size,
                    it.content_type,
                    it.etag,
                    it.deleted,
                    it.storage_policy_index
                ])
                .map_err(|e| self.err(e))?;
            }
        }
        if let (Some(source), Some(point)) = (source, sync_point) {
            self.advance_incoming_sync(source, point)?;
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(MergeOutcome {
            inserted: queue.len(),
            replaced: to_delete.len(),
        })
    }

    /// incoming_sync[source] = max(old, point); inserted when absent.
    fn advance_incoming_sync(&self, source: &str, point: i64) -> Result<()> {
        let changed = self
            .conn
            .prepare_cached(
                "UPDATE incoming_sync SET sync_point = max(?, sync_point) WHERE remote_id = ?",
            )
            .and_then(|mut s| s.execute(params![point, source]))
            .map_err(|e| self.err(e))?;
        if changed == 0 {
            self.conn
                .prepare_cached("INSERT INTO incoming_sync (sync_point, remote_id) VALUES (?, ?)")
                .and_then(|mut s| s.execute(params![point, source]))
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// Rows with ROWID > `start`, in ROWID order, at most `count` (commits
    /// pending records first).
    pub fn get_items_since(&self, start: i64, count: usize) -> Result<Vec<ObjectItem>> {
        self.commit_pending()?;
        self.items_since_no_commit(start, count)
    }

    /// As `get_items_since` without committing the pending file.
    pub fn items_since_no_commit(&self, start: i64, count: usize) -> Result<Vec<ObjectItem>> {
        let mut q = self
            .conn
            .prepare_cached(
                "SELECT ROWID, name, created_at, size, content_type, etag, deleted,
                        storage_policy_index
                 FROM object WHERE ROWID > ? ORDER BY ROWID ASC LIMIT ?",
            )
            .map_err(|e| self.err(e))?;
        let rows = q
            .query_map(params![start, count as i64], |r| {
                let mut it = row_to_item_at(r, 1)?;
                it.rowid = Some(r.get(0)?);
                Ok(it)
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))
    }

    /// The highest ROWID ever used in `table` (`sqlite_sequence`), or -1.
    pub fn get_max_row_of(&self, table: &str) -> Result<i64> {
        let r: Option<i64> = self
            .conn
            .query_row(
                "SELECT seq FROM sqlite_sequence WHERE name = ? LIMIT 1",
                [table],
                |r| col_int(r, 0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(r.unwrap_or(-1))
    }

    /// The object table's ROWID high-water mark, or -1.
    pub fn get_max_row(&self) -> Result<i64> {
        self.get_max_row_of("object")
    }

    // ----------------------------------------------------------------------
    // Sync tables

    fn sync_table(incoming: bool) -> &'static str {
        if incoming {
            "incoming_sync"
        } else {
            "outgoing_sync"
        }
    }

    /// The sync point for `remote_id`, or -1.
    pub fn get_sync(&self, remote_id: &str, incoming: bool) -> Result<i64> {
        let sql = format!(
            "SELECT sync_point FROM {} WHERE remote_id = ?",
            Self::sync_table(incoming)
        );
        let r: Option<i64> = self
            .conn
            .query_row(&sql, [remote_id], |r| col_int(r, 0))
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(r.unwrap_or(-1))
    }

    /// The whole sync table (without `updated_at`).
    pub fn get_syncs(&self, incoming: bool) -> Result<Vec<SyncPoint>> {
        self.read_syncs(incoming, false)
    }

    /// The whole sync table with `updated_at`.
    pub fn get_syncs_with_time(&self, incoming: bool) -> Result<Vec<SyncPoint>> {
        self.read_syncs(incoming, true)
    }

    fn read_syncs(&self, incoming: bool, with_time: bool) -> Result<Vec<SyncPoint>> {
        let cols = if with_time {
            "remote_id, sync_point, updated_at"
        } else {
            "remote_id, sync_point"
        };
        let sql = format!("SELECT {cols} FROM {}", Self::sync_table(incoming));
        let mut q = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let rows = q
            .query_map([], |r| {
                Ok(SyncPoint {
                    remote_id: col_text(r, 0)?,
                    sync_point: col_int(r, 1)?,
                    updated_at: if with_time {
                        Some(col_text(r, 2)?)
                    } else {
                        None
                    },
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))
    }

    /// Merges sync points: insert, or keep the larger point.
    pub fn merge_syncs(&self, points: &[SyncPoint], incoming: bool) -> Result<()> {
        let table = Self::sync_table(incoming);
        let tx = Tx::immediate(&self.conn).map_err(|e| self.err(e))?;
        for p in points {
            let changed = self
                .conn
                .prepare_cached(&format!(
                    "UPDATE {table} SET sync_point = max(?, sync_point) WHERE remote_id = ?"
                ))
                .and_then(|mut s| s.execute(params![p.sync_point, p.remote_id]))
                .map_err(|e| self.err(e))?;
            if changed == 0 {
                self.conn
                    .prepare_cached(&format!(
                        "INSERT INTO {table} (sync_point, remote_id) VALUES (?, ?)"
                    ))
                    .and_then(|mut s| s.execute(params![p.sync_point, p.remote_id]))
                    .map_err(|e| self.err(e))?;
            }
        }
        tx.commit().map_err(|e| self.err(e))
    }

    // ----------------------------------------------------------------------
    // Info

    fn read_info(&self) -> Result<ReplicationInfo> {
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
                    Ok(ReplicationInfo {
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

    /// Swift's `get_info()` (commits pending first): the replication info
    /// without `metadata`, `max_row` and `shard_max_row`.
    pub fn get_info(&self) -> Result<ReplicationInfo> {
        self.commit_pending()?;
        let mut info = self.read_info()?;
        info.db_state = self.db_state()?.to_string();
        Ok(info)
    }

    /// Swift's `get_replication_info()` (commits pending first).
    pub fn get_replication_info(&self) -> Result<ReplicationInfo> {
        let mut info = self.get_info()?;
        info.metadata = self.get_raw_metadata()?;
        info.max_row = self.get_max_row()?;
        info.shard_max_row = Some(self.get_max_row_of("shard_range")?);
        Ok(info)
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

    /// Is the container deleted? (commits pending first)
    pub fn is_deleted(&self) -> Result<bool> {
        if !self.db_file.exists() {
            return Ok(true);
        }
        self.commit_pending()?;
        self.is_deleted_no_commit()
    }

    fn is_deleted_no_commit(&self) -> Result<bool> {
        let (put, delete, count): (String, String, String) = self
            .conn
            .query_row(
                "SELECT put_timestamp, delete_timestamp, object_count FROM container_stat",
                [],
                |r| Ok((col_text(r, 0)?, col_text(r, 1)?, col_text(r, 2)?)),
            )
            .map_err(|e| self.err(e))?;
        Ok(zero_like_text(&count) && ts_or_zero(&delete) > ts_or_zero(&put))
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
        if self.has_other_shard_ranges()? || self.db_state()? == "sharding" {
            return Ok(false);
        }
        self.empty()
    }

    // ----------------------------------------------------------------------
    // Metadata and timestamps

    /// The raw `metadata` column ("" when none).
    pub fn get_raw_metadata(&self) -> Result<String> {
        let r = self
            .conn
            .query_row("SELECT metadata FROM container_stat", [], |r| {
                col_text(r, 0)
            })
            .optional();
        match r {
            Ok(Some(s)) => Ok(s),
            Ok(None) => Err(DbError::Corrupt {
                path: self.db_file.clone(),
                reason: "missing row in container_stat table",
                detail: String::new(),
            }),
            Err(e) if e.to_string().contains("no such column: metadata") => Ok(String::new()),
            Err(e) => Err(self.err(e)),
        }
    }

    /// The metadata `{key: [value, timestamp]}`.
    pub fn metadata(&self) -> Result<Map<String, Value>> {
        parse_metadata(&self.get_raw_metadata()?).map_err(|e| {
            DbError::Invalid(format!(
                "stored metadata of {}: {e}",
                self.db_file.display()
            ))
        })
    }

    /// Swift's `update_metadata`: each key is taken when absent or when its
    /// timestamp is newer (string comparison). Nothing is written when no key
    /// is new or newer.
    pub fn update_metadata(&self, updates: &Map<String, Value>) -> Result<bool> {
        for (k, v) in updates {
            meta_timestamp(v).ok_or_else(|| {
                DbError::Invalid(format!("metadata {k:?} is not a [value, timestamp] pair"))
            })?;
        }
        let old = self.metadata()?;
        let needs_write = updates.iter().any(|(k, v)| match old.get(k) {
            None => true,
            Some(o) => meta_timestamp(v) > meta_timestamp(o),
        });
        if !needs_write {
            return Ok(false);
        }
        let tx = Tx::immediate(&self.conn).map_err(|e| self.err(e))?;
        let mut md = self.metadata()?;
        for (k, v) in updates {
            let take = match md.get(k) {
                None => true,
                Some(o) => meta_timestamp(v) > meta_timestamp(o),
            };
            if take {
                md.insert(k.clone(), v.clone());
            }
        }
        self.conn
            .execute(
                "UPDATE container_stat SET metadata = ?",
                [pyjson::dumps(&Value::Object(md))],
            )
            .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(true)
    }

    /// Merges DB timestamps from a peer (`MIN` created_at, `MAX` put and
    /// delete, as text); `status_changed_at` moves to now when the deleted
    /// state flipped.
    pub fn merge_timestamps(
        &self,
        created_at: &str,
        put_timestamp: &str,
        delete_timestamp: &str,
    ) -> Result<()> {
        let tx = Tx::immediate(&self.conn).map_err(|e| self.err(e))?;
        let old = self.is_deleted_no_commit()?;
        self.conn
            .execute(
                "UPDATE container_stat SET created_at = MIN(?, created_at),
                        put_timestamp = MAX(?, put_timestamp),
                        delete_timestamp = MAX(?, delete_timestamp)",
                params![created_at, put_timestamp, delete_timestamp],
            )
            .map_err(|e| self.err(e))?;
        if old != self.is_deleted_no_commit()? {
            self.set_status_changed_at_conn(&Timestamp::now().internal())?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    fn set_status_changed_at_conn(&self, ts: &str) -> Result<()> {
        self.conn
            .execute(
                "UPDATE container_stat SET status_changed_at = ? WHERE status_changed_at < ?",
                params![ts, ts],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Moves `status_changed_at` forward to `ts` (never back).
    pub fn update_status_changed_at(&self, ts: &str) -> Result<()> {
        self.set_status_changed_at_conn(ts)
    }

    /// Moves `put_timestamp` forward to `ts` (never back).
    pub fn update_put_timestamp(&self, ts: &str) -> Result<()> {
        self.conn
            .execute(
                "UPDATE container_stat SET put_timestamp = ? WHERE put_timestamp < ?",
                params![ts, ts],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Marks the container deleted at `timestamp` (Swift's `delete_db`):
    /// blanks metadata (except sharding sysmeta), then sets the delete
    /// timestamp and status if newer.
    pub fn delete_db(&self, timestamp: &str) -> Result<()> {
        let mut cleared = Map::new();
        for k in self.metadata()?.keys() {
            if DELETE_META_WHITELIST.contains(&k.to_lowercase().as_str()) {
                continue;
            }
            cleared.insert(k.clone(), Value::Array(vec!["".into(), timestamp.into()]));
        }
        self.update_metadata(&cleared)?;
        self.conn
            .execute(
                "UPDATE container_stat SET delete_timestamp = ?, status = 'DELETED',
                        status_changed_at = ? WHERE delete_timestamp < ?",
                params![timestamp, timestamp, timestamp],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
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

    /// Re-ids the DB after a whole-file transfer (Swift's `newid`): a fresh
    /// id `<uuid4>-<device>` (device from the file's location), incoming
    /// sync for `remote_id` = the highest existing ROWID, reported stats
    /// reset.
    pub fn newid(&self, remote_id: &str) -> Result<String> {
        let device = files::device_path_of(&self.db_file)
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_default();
        self.newid_with(remote_id, &device, None)
    }

    /// `newid` with an explicit device name for the new id and, optionally,
    /// an explicit incoming sync point for `remote_id` (instead of the
    /// highest existing ROWID).
    pub fn newid_with(&self, remote_id: &str, device: &str, point: Option<i64>) -> Result<String> {
        let id = new_db_id(device);
        let tx = Tx::immediate(&self.conn).map_err(|e| self.err(e))?;
        self.conn
            .execute("UPDATE container_stat SET id = ?", [&id])
            .map_err(|e| self.err(e))?;
        let point = match point {
            Some(p) => p,
            None => self.max_existing_rowid()?,
        };
        self.conn
            .execute(
                "INSERT OR REPLACE INTO incoming_sync (sync_point, remote_id) VALUES (?, ?)",
                params![point, remote_id],
            )
            .map_err(|e| self.err(e))?;
        self.conn
            .execute(
                "UPDATE container_stat SET reported_put_timestamp = 0,
                        reported_delete_timestamp = 0, reported_object_count = 0,
                        reported_bytes_used = 0",
                [],
            )
            .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(id)
    }

    /// The highest ROWID present in the object table, or -1.
    pub fn max_existing_rowid(&self) -> Result<i64> {
        let r: Option<i64> = self
            .conn
            .query_row(
                "SELECT ROWID FROM object ORDER BY ROWID DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(r.unwrap_or(-1))
    }

    // ----------------------------------------------------------------------
    // Reclaim

    /// Swift's `reclaim(age_timestamp, sync_timestamp)`: commit pending,
    /// delete tombstones older than `age` (in name pages), sync rows not
    /// updated since `sync`, blank metadata older than `age`, and deleted
    /// shard ranges older than `sync`. Returns the tombstones removed.
    pub fn reclaim(&self, age_timestamp: f64, sync_timestamp: f64) -> Result<usize> {
        self.commit_pending()?;
        let age_text = python_float_repr(age_timestamp);
        let mut marker = String::new();
        let mut reclaimed = 0usize;
        loop {
            let tx = Tx::immediate(&self.conn).map_err(|e| self.err(e))?;
            let end: Option<String> = self
                .conn
                .query_row(
                    "SELECT name FROM object WHERE deleted = 1 AND name >= ?
                     ORDER BY name LIMIT 1 OFFSET ?",
                    params![marker, RECLAIM_PAGE_SIZE],
                    |r| col_text(r, 0),
                )
                .optional()
                .map_err(|e| self.err(e))?;
            match end.filter(|e| !e.is_empty()) {
                Some(end) => {
                    reclaimed += self
                        .conn
                        .execute(
                            "DELETE FROM object WHERE deleted = 1 AND name >= ?
                             AND created_at < ? AND name < ?",
                            params![marker, age_text, end],
                        )
                        .map_err(|e| self.err(e))?;
                    tx.commit().map_err(|e| self.err(e))?;
                    marker = end;
                }
                None => {
                    reclaimed += self
                        .conn
                        .execute(
                            "DELETE FROM object WHERE deleted = 1 AND name >= ? AND created_at < ?",
                            params![marker, age_text],
                        )
                        .map_err(|e| self.err(e))?;
                    tx.commit().map_err(|e| self.err(e))?;
                    break;
                }
            }
        }
        let tx = Tx::immediate(&self.conn).map_err(|e| self.err(e))?;
        for table in ["outgoing_sync", "incoming_sync"] {
            if let Err(e) = self.conn.execute(
                &format!("DELETE FROM {table} WHERE updated_at < ?"),
                [sync_timestamp],
            ) {
                if !e.to_string().contains("no such column: updated_at") {
                    return Err(self.err(e));
                }
            }
        }
        let md = self.metadata()?;
        let age = Timestamp::from_f64(age_timestamp.max(0.0)).unwrap_or(Timestamp::ZERO);
        let mut kept = Map::new();
        let mut dropped = false;
        for (k, v) in md {
            let blank = v.get(0).and_then(Value::as_str) == Some("");
            let old = meta_timestamp(&v)
                .and_then(|t| Timestamp::parse(t).ok())
                .is_some_and(|t| t < age);
            if blank && old {
                dropped = true;
            } else {
                kept.insert(k, v);
            }
        }
        if dropped {
            self.conn
                .execute(
                    "UPDATE container_stat SET metadata = ?",
                    [pyjson::dumps(&Value::Object(kept))],
                )
                .map_err(|e| self.err(e))?;
        }
        let path = self.own_path()?;
        if let Err(e) = self.conn.execute(
            "DELETE FROM shard_range WHERE deleted = 1 AND timestamp < ? AND name != ?",
            params![sync_timestamp, path],
        ) {
            if !e.to_string().contains("no such table: shard_range") {
                return Err(self.err(e));
            }
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(reclaimed)
    }

    // ----------------------------------------------------------------------
    // Listing

    /// Swift's `list_objects_iter`: rows in name order (or reverse) within
    /// marker / end_marker / prefix, with delimiter roll-ups.
    pub fn list_objects(&self, p: &ListingParams) -> Result<Vec<ListingEntry>> {
        self.commit_pending()?;
        let deleted_arg = match p.include_deleted {
            Some(true) => " = 1",
            Some(false) => " = 0",
            None => " IN (0, 1)",
        };
        let deleted_key = if self.db_version >= 1 {
            "deleted"
        } else {
            "+deleted"
        };
        let (mut marker, mut end_marker) = if p.reverse {
            (p.end_marker.clone(), p.marker.clone())
        } else {
            (p.marker.clone(), p.end_marker.clone())
        };
        let mut prefix = p.prefix.clone();
        let mut delimiter = p.delimiter.clone().filter(|d| !d.is_empty());
        let mut path = p.path.clone();
        if let Some(pa) = path.as_mut() {
            if !pa.is_empty() {
                *pa = format!("{}/", pa.trim_end_matches('/'));
            }
            prefix = Some(pa.clone());
            delimiter = Some("/".to_string());
        } else if delimiter.is_some() && prefix.as_deref().unwrap_or("").is_empty() {
            prefix = Some(String::new());
        }
        let end_prefix = prefix
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(increment_last_char);
        let orig_marker = marker.clone();
        let mut delim_force_gte = false;
        let mut results: Vec<ListingEntry> = Vec::new();
        let limit = p.limit;
        let nonempty_prefix = prefix.as_deref().filter(|s| !s.is_empty());
        // Bounded: each round either ends the listing or moves the marker
        // past at least one name.
        while results.len() < limit {
            let mut conds: Vec<String> = Vec::new();
            let mut args: Vec<rusqlite::types::Value> = Vec::new();
            match (&end_prefix, nonempty_prefix) {
                (Some(ep), Some(_)) if end_marker.is_empty() || end_marker >= *ep => {
                    conds.push("name < ?".into());
                    args.push(ep.clone().into());
                }
                _ if !end_marker.is_empty() => {
                    conds.push("name < ?".into());
                    args.push(end_marker.clone().into());
                }
                _ => {}
            }
            if delim_force_gte {
                conds.push("name >= ?".into());
                args.push(marker.clone().into());
                delim_force_gte = false;
            } else if !marker.is_empty() && nonempty_prefix.is_none_or(|pr| marker.as_str() >= pr) {
                conds.push("name > ?".into());
                args.push(marker.clone().into());
            } else if let Some(pr) = nonempty_prefix {
                conds.push("name >= ?".into());
                args.push(pr.to_string().into());
            }
            if !p.allow_reserved {
                conds.push("name >= ?".into());
                args.push("\u{1}".to_string().into());
            }
            conds.push(format!("{deleted_key}{deleted_arg}"));
            if let Some(since) = p.since_row.filter(|s| *s != 0) {
                conds.push("ROWID > ?".into());
                args.push(since.into());
            }
            if !p.all_policies {
                conds.push("storage_policy_index = ?".into());
                args.push(p.storage_policy_index.into());
            }
            let sql = format!(
                "SELECT name, created_at, size, content_type, etag, deleted, storage_policy_index
                 FROM object WHERE {} ORDER BY name {} LIMIT ?",
                conds.join(" AND "),
                if p.reverse { "DESC" } else { "" }
            );
            args.push(((limit - results.len()) as i64).into());
            let mut q = self.conn.prepare_cached(&sql).map_err(|e| self.err(e))?;
            let rows: Vec<ObjectItem> = q
                .query_map(rusqlite::params_from_iter(args.iter()), row_to_item)
                .map_err(|e| self.err(e))?
                .collect::<rusqlite::Result<_>>()
                .map_err(|e| self.err(e))?;
            let (Some(prefix), Some(delimiter)) = (prefix.as_deref(), delimiter.as_deref()) else {
                results.extend(rows.into_iter().map(ListingEntry::Object));
                return Ok(results);
            };
            if rows.is_empty() {
                break;
            }
            let mut broke = false;
            for row in rows {
                let name = row.name.clone();
                if p.reverse {
                    end_marker.clone_from(&name);
                } else {
                    marker.clone_from(&name);
                }
                if results.len() >= limit {
                    return Ok(results);
                }
                let end = name
                    .get(prefix.len()..)
                    .and_then(|rest| rest.find(delimiter))
                    .map(|i| i + prefix.len());
                if path.is_some() {
                    if Some(name.as_str()) == path.as_deref() {
                        continue;
                    }
                    if let Some(end) = end {
                        if name.len() > end + delimiter.len() {
                            if p.reverse {
                                end_marker = name[..end + delimiter.len()].to_string();
                            } else {
                                marker =
                                    format!("{}{}", &name[..end], increment_last_char(delimiter));
                            }
                            broke = true;
                            break;
                        }
                    }
                } else if let Some(end) = end {
                    if p.reverse {
                        end_marker = name[..end + delimiter.len()].to_string();
                    } else {
                        marker = format!("{}{}", &name[..end], increment_last_char(delimiter));
                        delim_force_gte = true;
                    }
                    let dir_name = name[..end + delimiter.len()].to_string();
                    if dir_name != orig_marker {
                        results.push(ListingEntry::Subdir(dir_name));
                    }
                    broke = true;
                    break;
                }
                results.push(ListingEntry::Object(row));
            }
            let _ = broke;
        }
        Ok(results)
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

    /// Swift's `get_db_state()`: `unsharded`, `sharding`, `sharded`,
    /// `collapsed` (or `not_found`).
    pub fn db_state(&self) -> Result<&'static str> {
        let Some(hash) = hash_of(&self.db_file) else {
            return Ok("unsharded");
        };
        let dir = self.db_file.parent().unwrap_or(Path::new("."));
        let found = db_files(dir, &hash);
        if found.len() > 1 {
            return Ok("sharding");
        }
        let name = self
            .db_file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let epoch = parse_db_filename(name).and_then(|(_, e)| e);
        let Some(epoch) = epoch else {
            return Ok("unsharded");
        };
        let own_epoch = self.get_own_shard_range()?.and_then(|s| s.epoch);
        if own_epoch.as_deref() != Some(epoch) {
            return Ok("unsharded");
        }
        Ok(if self.has_other_shard_ranges()? {
            "sharded"
        } else {
            "collapsed"
        })
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

    /// Direct access for read-only SQL in tests and tools.
    pub fn connection(&self) -> &Connection {
        &self.conn
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

fn new_db_id(device: &str) -> String {
    format!("{}-{}", uuid::Uuid::new_v4(), device)
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

/// The timestamp of a metadata value `[value, timestamp]`.
fn meta_timestamp(v: &Value) -> Option<&str> {
    match v {
        Value::Array(a) if a.len() == 2 => a[1].as_str(),
        _ => None,
    }
}

/// Parses a metadata column ("" = empty).
pub fn parse_metadata(raw: &str) -> std::result::Result<Map<String, Value>, String> {
    if raw.is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_str::<Value>(raw) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err("not a JSON object".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// `s[:-1] + chr(ord(s[-1]) + 1)`.
fn increment_last_char(s: &str) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    if let Some(last) = chars.pop() {
        let mut n = last as u32 + 1;
        if (0xD800..0xE000).contains(&n) {
            n = 0xE000;
        }
        chars.push(char::from_u32(n).unwrap_or(char::MAX));
    }
    chars.into_iter().collect()
}
