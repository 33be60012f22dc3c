//! The DB core every kind of Swift DB shares (Swift's `DatabaseBroker`):
//! opening, creation, the pending file, `merge_items` with the incoming-sync
//! advance, sync tables, replication info, metadata, DB timestamps, `newid`,
//! the deleted state and reclaim. A [`DbKind`] supplies what differs
//! (tables, row type and merge rule, info fields); `container.rs` and
//! `account.rs` add each kind's own operations.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::conn::{self, python_float_repr, value_text};
use super::files::{self, pending_path};
use super::kind::{DbItem, DbKind};
use super::lock::lock_parent;
use super::{DbError, Result, RECLAIM_PAGE_SIZE};
use crate::swift::pending::{self as pending_fmt, PENDING_CAP};
use crate::swift::{pyjson, Timestamp};

/// Default wait for the directory lock around pending-file work.
pub const DEFAULT_PENDING_TIMEOUT: Duration = Duration::from_secs(10);

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

/// What `merge_items` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MergeOutcome {
    /// Rows inserted (new or newer versions).
    pub inserted: usize,
    /// Older rows replaced.
    pub replaced: usize,
}

pub(crate) fn ts_or_zero(s: &str) -> Timestamp {
    Timestamp::parse(s).unwrap_or(Timestamp::ZERO)
}

pub(crate) fn zero_like_text(s: &str) -> bool {
    s.is_empty() || s == "0"
}

/// A value of any SQLite type as text (Python would keep the object).
pub(crate) fn col_text(row: &Row<'_>, idx: usize) -> rusqlite::Result<String> {
    Ok(match row.get_ref(idx)? {
        ValueRef::Null => String::new(),
        v => value_text(v),
    })
}

/// A value of any SQLite type as an integer.
pub(crate) fn col_int(row: &Row<'_>, idx: usize) -> rusqlite::Result<i64> {
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
pub struct Tx<'a> {
    conn: &'a Connection,
    done: bool,
}

impl<'a> Tx<'a> {
    pub(crate) fn immediate(conn: &'a Connection) -> rusqlite::Result<Self> {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        Ok(Tx { conn, done: false })
    }
    pub(crate) fn commit(mut self) -> rusqlite::Result<()> {
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

/// One Swift DB file of kind `K` (`ContainerBroker` / `AccountBroker`).
pub struct Broker<K: DbKind> {
    pub(super) db_file: PathBuf,
    pub(super) pending_file: PathBuf,
    pub(super) conn: Connection,
    pub(super) pending_timeout: Duration,
    pub(super) db_version: i32,
    /// (device, inode) of the file the connection opened.
    file_id: Option<(u64, u64)>,
    /// Reads go on with the committed rows when the pending file's lock
    /// cannot be had (Swift's `stale_reads_ok`).
    stale_reads_ok: bool,
    /// Merges run with SQLite's triggers off (the schema is one whose
    /// trigger effects the kind applies itself).
    pub(super) trigger_free: bool,
    kind: PhantomData<K>,
}

fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

impl<K: DbKind> std::fmt::Debug for Broker<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("kind", &K::NAME)
            .field("db_file", &self.db_file)
            .finish()
    }
}

impl<K: DbKind> Broker<K> {
    /// Opens an existing DB.
    pub fn open(db_file: impl AsRef<Path>) -> Result<Self> {
        let db_file = db_file.as_ref().to_path_buf();
        let id = file_id(&db_file);
        let conn = conn::open(&db_file)?;
        let mut broker = Broker {
            pending_file: pending_path(&db_file),
            db_file,
            conn,
            pending_timeout: DEFAULT_PENDING_TIMEOUT,
            db_version: 1,
            file_id: id,
            stale_reads_ok: false,
            trigger_free: false,
            kind: PhantomData,
        };
        broker.db_version = broker.read_db_version()?;
        broker.trigger_free = K::trigger_free_schema(&broker)?;
        Ok(broker)
    }

    /// Opens the DB and checks that it is a readable DB of this kind (the
    /// stat row exists); a corrupt file gives [`DbError::Corrupt`].
    pub fn open_checked(db_file: impl AsRef<Path>) -> Result<Self> {
        let b = Self::open(db_file)?;
        K::read_info(&b)?;
        Ok(b)
    }

    /// Creates a new DB at `db_file` as Swift's `initialize` does: `build`
    /// fills a temp file in the same dir (schema and stat row, in one
    /// transaction), which is fsynced, then renamed into place under the
    /// directory lock (failing if the DB appeared meanwhile).
    pub(crate) fn create_with(
        db_file: &Path,
        build: impl FnOnce(&Connection, &str) -> rusqlite::Result<()>,
    ) -> Result<Self> {
        let db_file = db_file.to_path_buf();
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
        let db_id = new_db_id(&device_name_of(&db_file));
        {
            let conn = conn::connect(&tmp_path, rusqlite::OpenFlags::default())
                .map_err(|e| DbError::sqlite(&tmp_path, e))?;
            let run = || -> rusqlite::Result<()> {
                conn::configure(&conn, "OFF", "MEMORY")?;
                conn.execute_batch("BEGIN")?;
                conn.execute_batch(super::schema::SYNC_TABLES)?;
                build(&conn, &db_id)?;
                conn.execute_batch("COMMIT")?;
                Ok(())
            };
            run().map_err(|e| DbError::sqlite(&tmp_path, e))?;
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

    pub fn pending_timeout(&self) -> Duration {
        self.pending_timeout
    }

    /// With `true`, reads that commit the pending file first (`get_info`,
    /// listings, ...) answer from the committed rows when the pending
    /// file's lock is not had in time, instead of failing (Swift's
    /// `stale_reads_ok`, for HEAD and GET).
    pub fn set_stale_reads_ok(&mut self, ok: bool) {
        self.stale_reads_ok = ok;
    }

    pub(crate) fn err(&self, e: rusqlite::Error) -> DbError {
        DbError::sqlite(&self.db_file, e)
    }

    fn read_db_version(&self) -> Result<i32> {
        let found: Option<i64> = self
            .conn
            .query_row(
                "SELECT 1 FROM sqlite_master WHERE name = ?",
                [K::VERSION_INDEX],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(if found.is_some() { 1 } else { 0 })
    }

    /// `deleted IN (0, 1) AND ` when the DB has the (deleted, name) index.
    pub(crate) fn deleted_guard(&self) -> &'static str {
        if self.db_version >= 1 {
            "deleted IN (0, 1) AND "
        } else {
            ""
        }
    }

    // ----------------------------------------------------------------------
    // Pending file

    /// Adds a row through the pending file (Swift's `put_object` /
    /// `put_container`): appended under the directory lock, or committed
    /// directly when the pending file is over `PENDING_CAP`.
    pub fn put_item(&self, item: &K::Item) -> Result<()> {
        if !self.db_file.exists() {
            return Err(DbError::NotFound(self.db_file.clone()));
        }
        item.check().map_err(DbError::Invalid)?;
        let _lock = lock_parent(&self.pending_file, self.pending_timeout)?;
        fail::fail_point!("pending::append", |a| Err(super::injected(
            &self.pending_file,
            a
        )));
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
            f.write_all(&item.pending_record())
                .map_err(|e| DbError::io(&self.pending_file, e))?;
        }
        Ok(())
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
        let _lock = match lock_parent(&self.pending_file, self.pending_timeout) {
            Ok(l) => l,
            Err(e @ DbError::LockTimeout { .. }) if self.stale_reads_ok => {
                tracing::debug!("reading committed rows only: {e}");
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        self.commit_pending_locked(Vec::new())
    }

    /// Between the write transactions of a long job (the slices of a big
    /// merge): commits the pending file if it is over `PENDING_CAP`. A PUT
    /// that found it that full holds the directory lock while it waits for
    /// the DB's write lock, which SQLite's busy handler polls (sleeping up
    /// to 100 ms between tries); slices taken back to back can hold the
    /// lock at every try, so that PUT, and every PUT queued behind it on
    /// the directory lock, would wait for the whole job. Taking the
    /// directory lock here (outside any transaction) waits for that PUT's
    /// commit, or commits the rows for it. A lock timeout is not an error:
    /// the job goes on. Returns whether the pending file held rows (PUTs
    /// are arriving).
    pub fn flush_full_pending(&self) -> Result<bool> {
        let len = std::fs::metadata(&self.pending_file).map_or(0, |m| m.len());
        if len > PENDING_CAP {
            match self.commit_pending() {
                Err(DbError::LockTimeout { .. }) | Ok(()) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(len > 0)
    }

    /// Has the DB file been replaced (renamed over) since we opened it?
    pub fn replaced(&self) -> bool {
        file_id(&self.db_file) != self.file_id
    }

    fn commit_pending_locked(&self, items: Vec<K::Item>) -> Result<()> {
        // A whole-DB replacement renames a new file over ours under this
        // same lock: commit into the file that is there now, not into the
        // unlinked one our connection still holds.
        if self.replaced() && self.db_file.exists() {
            let mut fresh = Self::open(&self.db_file)?;
            fresh.pending_timeout = self.pending_timeout;
            return fresh.commit_pending_unchecked(items);
        }
        self.commit_pending_unchecked(items)
    }

    fn commit_pending_unchecked(&self, mut items: Vec<K::Item>) -> Result<()> {
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
            match entry.and_then(|t| K::Item::from_pending(&t).map_err(|e| (e, String::new()))) {
                Ok(item) => items.push(item),
                Err((e, raw)) => tracing::error!(
                    file = %self.pending_file.display(),
                    entry = %raw.chars().take(200).collect::<String>(),
                    "Invalid pending entry: {e}"
                ),
            }
        }
        fail::fail_point!("pending::flush", |a| Err(super::injected(
            &self.pending_file,
            a
        )));
        if !items.is_empty() {
            self.merge_items(items, None)?;
        }
        fail::fail_point!("pending::after_merge", |a| Err(super::injected(
            &self.pending_file,
            a
        )));
        if !data.is_empty() {
            file.set_len(0)
                .map_err(|e| DbError::io(&self.pending_file, e))?;
        }
        Ok(())
    }

    // ----------------------------------------------------------------------
    // Rows

    /// Merges rows with the kind's rule. With a `source`, the incoming sync
    /// point for that source becomes max(old, ROWID of the last item), in
    /// the same transaction, whether or not any item was newer.
    pub fn merge_items(&self, items: Vec<K::Item>, source: Option<&str>) -> Result<MergeOutcome> {
        if items.is_empty() {
            return Ok(MergeOutcome::default());
        }
        let sync_point = match source {
            Some(_) => Some(items.last().and_then(|i| i.rowid()).ok_or_else(|| {
                DbError::Invalid("merge_items with a source needs a ROWID on the last item".into())
            })?),
            None => None,
        };
        let tx = Tx::immediate(&self.conn).map_err(|e| self.err(e))?;
        let outcome = if self.trigger_free {
            self.set_triggers(false)?;
            let merged = K::merge_rows(self, items, true);
            // Back on before anything else is written (the sync tables'
            // triggers keep `updated_at`), whatever the merge did.
            self.set_triggers(true)?;
            merged?
        } else {
            K::merge_rows(self, items, false)?
        };
        if let (Some(source), Some(point)) = (source, sync_point) {
            self.advance_incoming_sync(source, point)?;
        }
        fail::fail_point!("merge_items::before_commit", |a| Err(super::injected(
            &self.db_file,
            a
        )));
        tx.commit().map_err(|e| self.err(e))?;
        fail::fail_point!("merge_items::after_commit", |a| Err(super::injected(
            &self.db_file,
            a
        )));
        Ok(outcome)
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
    pub fn get_items_since(&self, start: i64, count: usize) -> Result<Vec<K::Item>> {
        self.commit_pending()?;
        self.items_since_no_commit(start, count)
    }

    /// SQLite's `PRAGMA integrity_check`: `"ok"`, or the first problem.
    pub fn integrity_check(&self) -> Result<String> {
        self.conn
            .query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))
            .map_err(|e| self.err(e))
    }

    /// As `get_items_since` without committing the pending file.
    pub fn items_since_no_commit(&self, start: i64, count: usize) -> Result<Vec<K::Item>> {
        let sql = format!(
            "SELECT ROWID, {} FROM {} WHERE ROWID > ? ORDER BY ROWID ASC LIMIT ?",
            K::ITEM_COLUMNS,
            K::ITEM_TABLE
        );
        let mut q = self.conn.prepare_cached(&sql).map_err(|e| self.err(e))?;
        let rows = q
            .query_map(params![start, count as i64], |r| {
                let mut it = K::Item::from_row(r, 1)?;
                it.set_rowid(Some(r.get(0)?));
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

    /// The row table's ROWID high-water mark, or -1.
    pub fn get_max_row(&self) -> Result<i64> {
        self.get_max_row_of(K::ITEM_TABLE)
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

    /// Swift's `get_info()` (commits pending first): the kind's info
    /// without the replication-only fields (`metadata`, `max_row`, ...).
    pub fn get_info(&self) -> Result<K::Info> {
        self.commit_pending()?;
        K::read_info(self)
    }

    /// Swift's `get_replication_info()` (commits pending first).
    pub fn get_replication_info(&self) -> Result<K::Info> {
        let mut info = self.get_info()?;
        let metadata = self.get_raw_metadata()?;
        let max_row = self.get_max_row()?;
        K::add_replication_fields(self, &mut info, metadata, max_row)?;
        Ok(info)
    }

    /// Is the DB deleted, by the kind's rule? (commits pending first)
    pub fn is_deleted(&self) -> Result<bool> {
        if !self.db_file.exists() {
            return Ok(true);
        }
        self.commit_pending()?;
        K::is_deleted_now(self)
    }

    // ----------------------------------------------------------------------
    // Metadata and timestamps

    /// The raw `metadata` column ("" when none).
    pub fn get_raw_metadata(&self) -> Result<String> {
        let r = self
            .conn
            .query_row(
                &format!("SELECT metadata FROM {}", K::STAT_TABLE),
                [],
                |r| col_text(r, 0),
            )
            .optional();
        match r {
            Ok(Some(s)) => Ok(s),
            Ok(None) => Err(DbError::Corrupt {
                path: self.db_file.clone(),
                reason: "missing row in the stat table",
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
                &format!("UPDATE {} SET metadata = ?", K::STAT_TABLE),
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
        // Nothing to raise or lower: no write (the file stays unchanged,
        // so its stamp does too).
        let unchanged: i64 = self
            .conn
            .query_row(
                &format!(
                    "SELECT MIN(?1, created_at) IS created_at
                        AND MAX(?2, put_timestamp) IS put_timestamp
                        AND MAX(?3, delete_timestamp) IS delete_timestamp FROM {}",
                    K::STAT_TABLE
                ),
                params![created_at, put_timestamp, delete_timestamp],
                |r| col_int(r, 0),
            )
            .map_err(|e| self.err(e))?;
        if unchanged == 1 {
            return Ok(());
        }
        let old = K::is_deleted_now(self)?;
        self.conn
            .execute(
                &format!(
                    "UPDATE {} SET created_at = MIN(?, created_at),
                            put_timestamp = MAX(?, put_timestamp),
                            delete_timestamp = MAX(?, delete_timestamp)",
                    K::STAT_TABLE
                ),
                params![created_at, put_timestamp, delete_timestamp],
            )
            .map_err(|e| self.err(e))?;
        if old != K::is_deleted_now(self)? {
            self.set_status_changed_at_conn(&Timestamp::now().internal())?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    fn set_status_changed_at_conn(&self, ts: &str) -> Result<()> {
        self.conn
            .execute(
                &format!(
                    "UPDATE {} SET status_changed_at = ? WHERE status_changed_at < ?",
                    K::STAT_TABLE
                ),
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
                &format!(
                    "UPDATE {} SET put_timestamp = ? WHERE put_timestamp < ?",
                    K::STAT_TABLE
                ),
                params![ts, ts],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Marks the DB deleted at `timestamp` (Swift's `delete_db`): blanks
    /// metadata (except the kind's kept keys), then sets the delete
    /// timestamp and status if newer.
    pub fn delete_db(&self, timestamp: &str) -> Result<()> {
        let mut cleared = Map::new();
        for k in self.metadata()?.keys() {
            if K::DELETE_KEEPS_META.contains(&k.to_lowercase().as_str()) {
                continue;
            }
            cleared.insert(k.clone(), Value::Array(vec!["".into(), timestamp.into()]));
        }
        self.update_metadata(&cleared)?;
        self.conn
            .execute(
                &format!(
                    "UPDATE {} SET delete_timestamp = ?, status = 'DELETED',
                            status_changed_at = ? WHERE delete_timestamp < ?",
                    K::STAT_TABLE
                ),
                params![timestamp, timestamp, timestamp],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Re-ids the DB after a whole-file transfer (Swift's `newid`): a fresh
    /// id `<uuid4>-<device>` (device from the file's location), incoming
    /// sync for `remote_id` = the highest existing ROWID, and the kind's
    /// own reset (containers: the reported stats).
    pub fn newid(&self, remote_id: &str) -> Result<String> {
        self.newid_with(remote_id, &device_name_of(&self.db_file), None)
    }

    /// `newid` with an explicit device name for the new id and, optionally,
    /// an explicit incoming sync point for `remote_id` (instead of the
    /// highest existing ROWID).
    pub fn newid_with(&self, remote_id: &str, device: &str, point: Option<i64>) -> Result<String> {
        let id = new_db_id(device);
        let tx = Tx::immediate(&self.conn).map_err(|e| self.err(e))?;
        self.conn
            .execute(&format!("UPDATE {} SET id = ?", K::STAT_TABLE), [&id])
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
        K::on_newid(self)?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(id)
    }

    /// The highest ROWID present in the row table, or -1.
    pub fn max_existing_rowid(&self) -> Result<i64> {
        let r: Option<i64> = self
            .conn
            .query_row(
                &format!(
                    "SELECT ROWID FROM {} ORDER BY ROWID DESC LIMIT 1",
                    K::ITEM_TABLE
                ),
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
    /// updated since `sync`, blank metadata older than `age`, and the
    /// kind's own clean-up. Returns the tombstones removed.
    pub fn reclaim(&self, age_timestamp: f64, sync_timestamp: f64) -> Result<usize> {
        self.commit_pending()?;
        fail::fail_point!("reclaim", |a| Err(super::injected(&self.db_file, a)));
        let age_text = python_float_repr(age_timestamp);
        let mut marker = String::new();
        let mut reclaimed = 0usize;
        loop {
            let tx = Tx::immediate(&self.conn).map_err(|e| self.err(e))?;
            let end: Option<String> = self
                .conn
                .query_row(
                    &format!(
                        "SELECT name FROM {} WHERE deleted = 1 AND name >= ?
                         ORDER BY name LIMIT 1 OFFSET ?",
                        K::ITEM_TABLE
                    ),
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
                            &format!(
                                "DELETE FROM {} WHERE deleted = 1 AND name >= ?
                                 AND {} < ? AND name < ?",
                                K::ITEM_TABLE,
                                K::TOMBSTONE_TIME
                            ),
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
                            &format!(
                                "DELETE FROM {} WHERE deleted = 1 AND name >= ? AND {} < ?",
                                K::ITEM_TABLE,
                                K::TOMBSTONE_TIME
                            ),
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
                    &format!("UPDATE {} SET metadata = ?", K::STAT_TABLE),
                    [pyjson::dumps(&Value::Object(kept))],
                )
                .map_err(|e| self.err(e))?;
        }
        K::reclaim_more(self, sync_timestamp)?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(reclaimed)
    }

    /// Direct access for read-only SQL in tests and tools.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Switches SQLite's triggers on or off for this connection.
    fn set_triggers(&self, on: bool) -> Result<()> {
        self.conn
            .set_db_config(
                rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER,
                on,
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Merges run with the triggers off when the schema allows it (the
    /// default); `false` keeps Swift's triggers on for every merge.
    pub fn set_trigger_free_merges(&mut self, on: bool) -> Result<()> {
        self.trigger_free = on && K::trigger_free_schema(self)?;
        Ok(())
    }

    /// Do merges run with the triggers off?
    pub fn trigger_free_merges(&self) -> bool {
        self.trigger_free
    }

    /// The names of the triggers on `table`, sorted.
    pub(crate) fn triggers_on(&self, table: &str) -> Result<Vec<String>> {
        let mut q = self
            .conn
            .prepare_cached(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?
                 ORDER BY name",
            )
            .map_err(|e| self.err(e))?;
        let rows = q
            .query_map([table], |r| col_text(r, 0))
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))
    }

    /// Does the DB have this table?
    pub(crate) fn has_table(&self, table: &str) -> Result<bool> {
        self.conn
            .prepare_cached("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?")
            .and_then(|mut q| q.exists([table]))
            .map_err(|e| self.err(e))
    }

    /// Does `table` have `column`?
    pub fn has_column(&self, table: &str, column: &str) -> Result<bool> {
        let mut q = self
            .conn
            .prepare_cached("SELECT 1 FROM pragma_table_info(?) WHERE name = ?")
            .map_err(|e| self.err(e))?;
        q.exists(params![table, column]).map_err(|e| self.err(e))
    }

    /// Rows in the row table, and how many of them are tombstones.
    pub fn row_counts(&self) -> Result<(i64, i64)> {
        self.conn
            .query_row(
                &format!(
                    "SELECT count(*), coalesce(sum(deleted = 1), 0) FROM {}",
                    K::ITEM_TABLE
                ),
                [],
                |r| Ok((col_int(r, 0)?, col_int(r, 1)?)),
            )
            .map_err(|e| self.err(e))
    }

    /// Holds SQLite's write lock (`BEGIN IMMEDIATE`) until the guard is
    /// dropped; nothing is written through it (it rolls back).
    pub fn write_lock(&self) -> Result<Tx<'_>> {
        Tx::immediate(&self.conn).map_err(|e| self.err(e))
    }

    /// Writes without fsyncs (`synchronous = OFF`): for a private scratch
    /// file that is synced once before it is renamed into place.
    pub fn write_unsynced(&self) -> Result<()> {
        self.conn
            .execute_batch("PRAGMA synchronous = OFF")
            .map_err(|e| self.err(e))
    }

    /// The DB format version: 1 when the (deleted, name) index exists.
    pub fn db_version(&self) -> i32 {
        self.db_version
    }
}

/// The device name a DB file lives on (`<devices>/<device>/<datadir>/...`).
pub(crate) fn device_name_of(db_file: &Path) -> String {
    files::device_path_of(db_file)
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default()
}

pub(crate) fn new_db_id(device: &str) -> String {
    format!("{}-{}", uuid::Uuid::new_v4(), device)
}

/// The timestamp of a metadata value `[value, timestamp]`.
pub(crate) fn meta_timestamp(v: &Value) -> Option<&str> {
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
pub(crate) fn increment_last_char(s: &str) -> String {
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
