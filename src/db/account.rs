//! Account DBs (Swift 2.38's `AccountBroker`): the account kind of the
//! shared core (container rows and the account merge rule,
//! `account_stat`), creation, container updates, listings and per-policy
//! stats.

use std::collections::HashMap;
use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

use super::core::{
    col_int, col_text, increment_last_char, ts_or_zero, zero_like_text, Broker, MergeOutcome,
};
use super::kind::{DbInfo, DbItem, DbKind};
use super::stats::{HashXor, PolicyDeltas};
use super::{schema, DbError, Result};
use crate::swift::container_row::{merge_container_row, ContainerItem};
use crate::swift::pending::{self as pending_fmt, PendingError};
use crate::swift::{pickle, Timestamp};

/// The account kind of DB.
#[derive(Debug, Clone, Copy)]
pub struct Account;

/// An account DB.
pub type AccountBroker = Broker<Account>;

/// `get_replication_info()` of an account, keys in Swift's order
/// (`count` is the container count). `point` is added by a receiver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct AccountInfo {
    pub account: String,
    pub created_at: String,
    pub put_timestamp: String,
    pub delete_timestamp: String,
    pub status_changed_at: String,
    pub object_count: i64,
    pub bytes_used: i64,
    pub hash: String,
    pub id: String,
    /// Live containers.
    pub count: i64,
    /// The raw metadata column (a JSON object as a string, or "").
    pub metadata: String,
    pub max_row: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub point: Option<i64>,
    /// `DELETED` once the account was deleted (not part of Swift's info).
    #[serde(skip)]
    pub status: String,
}

impl AccountInfo {
    /// Swift's account rule: status `DELETED`, or no containers and a
    /// delete newer than the last PUT.
    pub fn is_deleted(&self) -> bool {
        self.status == "DELETED"
            || (self.count == 0
                && ts_or_zero(&self.delete_timestamp) > ts_or_zero(&self.put_timestamp))
    }
}

/// Container count, object count and bytes of one storage policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PolicyStat {
    pub storage_policy_index: i64,
    /// `None` for DBs whose `policy_stat` predates the column.
    pub container_count: Option<i64>,
    pub object_count: i64,
    pub bytes_used: i64,
}

/// One account listing entry: a container (name, objects, bytes, put
/// timestamp) or a `subdir` roll-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountListingEntry {
    Container {
        name: String,
        object_count: i64,
        bytes_used: i64,
        put_timestamp: String,
        storage_policy_index: i64,
    },
    Subdir(String),
}

/// Options of a container listing (Swift's `list_containers_iter`).
#[derive(Debug, Clone, Default)]
pub struct AccountListingParams {
    pub limit: usize,
    pub marker: String,
    pub end_marker: String,
    pub prefix: Option<String>,
    pub delimiter: Option<String>,
    pub reverse: bool,
    pub allow_reserved: bool,
}

impl AccountBroker {
    /// Creates a new account DB at `db_file` as Swift's `initialize` does
    /// (see [`Broker::create_with`]).
    pub fn create(
        db_file: impl AsRef<Path>,
        account: &str,
        put_timestamp: Option<Timestamp>,
    ) -> Result<Self> {
        if account.is_empty() {
            return Err(DbError::Invalid("a new account DB needs an account".into()));
        }
        let put_ts = put_timestamp.unwrap_or(Timestamp::ZERO).internal();
        Self::create_with(db_file.as_ref(), |conn: &Connection, db_id: &str| {
            conn.execute_batch(schema::ACCOUNT_CONTAINER_TABLE)?;
            conn.execute_batch(schema::ACCOUNT_STAT_TABLE)?;
            conn.execute(
                "INSERT INTO account_stat (account, created_at, id, put_timestamp,
                     status_changed_at, container_count)
                 VALUES (?, ?, ?, ?, ?, 0)",
                params![account, Timestamp::now().internal(), db_id, put_ts, put_ts],
            )?;
            conn.execute_batch(schema::ACCOUNT_POLICY_STAT_TABLE)?;
            conn.execute_batch(schema::ACCOUNT_POLICY_TRIGGERS)
        })
    }

    /// Records a container update through the pending file (Swift's
    /// `put_container`).
    pub fn put_container(
        &self,
        name: &str,
        put_timestamp: &str,
        delete_timestamp: &str,
        object_count: i64,
        bytes_used: i64,
        storage_policy_index: i64,
    ) -> Result<()> {
        let item = ContainerItem::update(
            name,
            put_timestamp,
            delete_timestamp,
            object_count,
            bytes_used,
            storage_policy_index,
        )
        .map_err(|e| DbError::Invalid(e.to_string()))?;
        self.put_item(&item)
    }

    /// Swift's `is_status_deleted()`: status `DELETED`, or a delete
    /// timestamp above the put timestamp (compared as text, as Swift does).
    /// Drives the account server's `X-Account-Status: Deleted`; no pending
    /// commit.
    pub fn is_status_deleted(&self) -> Result<bool> {
        let info = self.read_stat()?;
        Ok(info.status == "DELETED" || info.delete_timestamp > info.put_timestamp)
    }

    /// No live containers (commits pending first).
    pub fn empty(&self) -> Result<bool> {
        self.commit_pending()?;
        let count: String = self
            .conn
            .query_row("SELECT container_count FROM account_stat", [], |r| {
                col_text(r, 0)
            })
            .map_err(|e| self.err(e))?;
        Ok(zero_like_text(&count))
    }

    /// Per-policy stats (commits pending first); DBs without `policy_stat`
    /// have none, DBs without its `container_count` column give `None`.
    pub fn get_policy_stats(&self) -> Result<Vec<PolicyStat>> {
        self.commit_pending()?;
        let mut columns = "storage_policy_index, container_count, object_count, bytes_used";
        for _ in 0..2 {
            let sql = format!("SELECT {columns} FROM policy_stat ORDER BY storage_policy_index");
            let mut q = match self.conn.prepare(&sql) {
                Ok(q) => q,
                Err(e) if e.to_string().contains("no such table: policy_stat") => {
                    return Ok(Vec::new())
                }
                Err(e) if e.to_string().contains("no such column: container_count") => {
                    columns = "storage_policy_index, NULL, object_count, bytes_used";
                    continue;
                }
                Err(e) => return Err(self.err(e)),
            };
            let rows = q
                .query_map([], |r| {
                    Ok(PolicyStat {
                        storage_policy_index: col_int(r, 0)?,
                        container_count: match r.get_ref(1)? {
                            rusqlite::types::ValueRef::Null => None,
                            _ => Some(col_int(r, 1)?),
                        },
                        object_count: col_int(r, 2)?,
                        bytes_used: col_int(r, 3)?,
                    })
                })
                .map_err(|e| self.err(e))?;
            return rows
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(|e| self.err(e));
        }
        Ok(Vec::new())
    }

    /// Swift's `list_containers_iter`: live containers in name order (or
    /// reverse) within marker / end_marker / prefix, with delimiter
    /// roll-ups (commits pending first).
    pub fn list_containers(&self, p: &AccountListingParams) -> Result<Vec<AccountListingEntry>> {
        self.commit_pending()?;
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
        let delimiter = p.delimiter.clone().filter(|d| !d.is_empty());
        let prefix = match (&p.prefix, &delimiter) {
            (Some(pr), _) => Some(pr.clone()),
            (None, Some(_)) => Some(String::new()),
            (None, None) => None,
        };
        let nonempty_prefix = prefix.as_deref().filter(|s| !s.is_empty());
        let end_prefix = nonempty_prefix.map(increment_last_char);
        let orig_marker = marker.clone();
        let limit = p.limit;
        let mut results: Vec<AccountListingEntry> = Vec::new();
        // Account DBs from before storage policies list policy 0.
        let policy_col = if self.has_column("container", "storage_policy_index")? {
            "storage_policy_index"
        } else {
            "0"
        };
        // Bounded: each round either ends the listing or moves the marker
        // past at least one name.
        while results.len() < limit {
            let mut conds: Vec<&str> = Vec::new();
            let mut args: Vec<rusqlite::types::Value> = Vec::new();
            match &end_prefix {
                Some(ep) if end_marker.is_empty() || end_marker >= *ep => {
                    conds.push("name < ?");
                    args.push(ep.clone().into());
                }
                _ if !end_marker.is_empty() => {
                    conds.push("name < ?");
                    args.push(end_marker.clone().into());
                }
                _ => {}
            }
            if !marker.is_empty() && nonempty_prefix.is_none_or(|pr| marker.as_str() >= pr) {
                conds.push("name > ?");
                args.push(marker.clone().into());
            } else if let Some(pr) = nonempty_prefix {
                conds.push("name >= ?");
                args.push(pr.to_string().into());
            }
            if !p.allow_reserved {
                conds.push("name >= ?");
                args.push("\u{1}".to_string().into());
            }
            let deleted_cond = format!("{deleted_key} = 0");
            conds.push(&deleted_cond);
            let sql = format!(
                "SELECT name, object_count, bytes_used, put_timestamp, {policy_col}
                 FROM container WHERE {} ORDER BY name {} LIMIT ?",
                conds.join(" AND "),
                if p.reverse { "DESC" } else { "" }
            );
            args.push(((limit - results.len()) as i64).into());
            let mut q = self.conn.prepare_cached(&sql).map_err(|e| self.err(e))?;
            let rows: Vec<AccountListingEntry> = q
                .query_map(rusqlite::params_from_iter(args.iter()), |r| {
                    Ok(AccountListingEntry::Container {
                        name: col_text(r, 0)?,
                        object_count: col_int(r, 1)?,
                        bytes_used: col_int(r, 2)?,
                        put_timestamp: col_text(r, 3)?,
                        storage_policy_index: col_int(r, 4)?,
                    })
                })
                .map_err(|e| self.err(e))?
                .collect::<rusqlite::Result<_>>()
                .map_err(|e| self.err(e))?;
            let (Some(prefix), Some(delimiter)) = (prefix.as_deref(), delimiter.as_deref()) else {
                results.extend(rows);
                return Ok(results);
            };
            if rows.is_empty() {
                break;
            }
            for row in rows {
                let AccountListingEntry::Container { name, .. } = &row else {
                    continue;
                };
                let name = name.clone();
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
                if let Some(end) = end {
                    let dir_name = name[..end + delimiter.len()].to_string();
                    if p.reverse {
                        end_marker.clone_from(&dir_name);
                    } else {
                        marker = format!("{}{}", &name[..end], increment_last_char(delimiter));
                    }
                    if dir_name != orig_marker {
                        results.push(AccountListingEntry::Subdir(dir_name));
                    }
                    break;
                }
                results.push(row);
            }
        }
        Ok(results)
    }

    fn read_stat(&self) -> Result<AccountInfo> {
        let res = self
            .conn
            .query_row(
                "SELECT account, created_at, put_timestamp, delete_timestamp,
                        status_changed_at, container_count, object_count, bytes_used, hash,
                        id, status
                 FROM account_stat",
                [],
                |r| {
                    Ok(AccountInfo {
                        account: col_text(r, 0)?,
                        created_at: col_text(r, 1)?,
                        put_timestamp: col_text(r, 2)?,
                        delete_timestamp: col_text(r, 3)?,
                        status_changed_at: col_text(r, 4)?,
                        count: col_int(r, 5)?,
                        object_count: col_int(r, 6)?,
                        bytes_used: col_int(r, 7)?,
                        hash: col_text(r, 8)?,
                        id: col_text(r, 9)?,
                        status: col_text(r, 10)?,
                        ..Default::default()
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))?;
        res.ok_or_else(|| DbError::Corrupt {
            path: self.db_file.clone(),
            reason: "missing row in account_stat table",
            detail: String::new(),
        })
    }

    /// Adds `policy_stat` (seeded with policy 0 from `account_stat`), the
    /// `storage_policy_index` column and the per-policy triggers to an
    /// account DB made before storage policies (Swift's
    /// `_migrate_add_storage_policy_index`).
    fn migrate_add_storage_policy_index(&self) -> Result<()> {
        let run = || -> rusqlite::Result<()> {
            self.conn.execute_batch(schema::ACCOUNT_POLICY_STAT_TABLE)?;
            self.conn.execute_batch(
                "INSERT INTO policy_stat (storage_policy_index, container_count,
                     object_count, bytes_used)
                 SELECT 0, container_count, object_count, bytes_used FROM account_stat
                 WHERE container_count > 0;
                 ALTER TABLE container ADD COLUMN storage_policy_index INTEGER DEFAULT 0;",
            )?;
            self.conn.execute_batch(schema::ACCOUNT_POLICY_TRIGGERS)
        };
        run().map_err(|e| self.err(e))
    }
}

fn row_to_container(r: &Row<'_>, o: usize) -> rusqlite::Result<ContainerItem> {
    Ok(ContainerItem {
        rowid: None,
        name: col_text(r, o)?,
        put_timestamp: col_text(r, o + 1)?,
        delete_timestamp: col_text(r, o + 2)?,
        object_count: col_int(r, o + 3)?,
        bytes_used: col_int(r, o + 4)?,
        deleted: col_int(r, o + 5)?,
        storage_policy_index: col_int(r, o + 6)?,
    })
}

/// Swift's account merge (§5.7), one item after the other (a later item of
/// the batch sees the earlier one), within the caller's transaction. Rows
/// equal to the stored ones are not rewritten (Swift rewrites them
/// identically, which only churns ROWIDs).
fn merge_container_rows(
    b: &AccountBroker,
    items: Vec<ContainerItem>,
    trigger_free: bool,
) -> Result<MergeOutcome> {
    let guard = b.deleted_guard();
    let mut stats = trigger_free.then(AccountStats::default);
    let select = format!(
        "SELECT {} FROM container WHERE {guard} name = ?",
        Account::ITEM_COLUMNS
    );
    let mut outcome = MergeOutcome::default();
    let mut latest: HashMap<String, Option<ContainerItem>> = HashMap::new();
    for mut item in items {
        let existing = match latest.get(&item.name) {
            Some(e) => e.clone(),
            None => {
                let mut q = b.conn.prepare_cached(&select).map_err(|e| b.err(e))?;
                q.query_row([&item.name], |r| row_to_container(r, 0))
                    .optional()
                    .map_err(|e| b.err(e))?
            }
        };
        item.rowid = None;
        let write = merge_container_row(&mut item, existing.as_ref())
            .map_err(|e| DbError::Invalid(format!("container {:?}: {e}", item.name)))?;
        if !write {
            latest.insert(item.name.clone(), existing);
            continue;
        }
        if existing.is_some() {
            match stats.as_mut() {
                Some(stats) => {
                    let mut del = b
                        .conn
                        .prepare_cached(
                            "DELETE FROM container WHERE name = ? AND deleted IN (0, 1)
                             RETURNING name, put_timestamp || '-' || delete_timestamp || '-' ||
                                 object_count || '-' || bytes_used,
                                 deleted, object_count, bytes_used, storage_policy_index",
                        )
                        .map_err(|e| b.err(e))?;
                    let mut rows = del.query([&item.name]).map_err(|e| b.err(e))?;
                    while let Some(r) = rows.next().map_err(|e| b.err(e))? {
                        let row = (|| -> rusqlite::Result<_> {
                            Ok((
                                col_text(r, 0)?,
                                col_text(r, 1)?,
                                [col_int(r, 2)?, col_int(r, 3)?, col_int(r, 4)?],
                                col_int(r, 5)?,
                            ))
                        })()
                        .map_err(|e| b.err(e))?;
                        stats.delete(b, &row.0, &row.1, row.2, row.3)?;
                    }
                }
                None => {
                    b.conn
                        .prepare_cached(
                            "DELETE FROM container WHERE name = ? AND deleted IN (0, 1)",
                        )
                        .and_then(|mut s| s.execute([&item.name]))
                        .map_err(|e| b.err(e))?;
                }
            }
            outcome.replaced += 1;
        }
        b.conn
            .prepare_cached(
                "INSERT INTO container (name, put_timestamp, delete_timestamp, object_count,
                                        bytes_used, deleted, storage_policy_index)
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    item.name,
                    item.put_timestamp,
                    item.delete_timestamp,
                    item.object_count,
                    item.bytes_used,
                    item.deleted,
                    item.storage_policy_index
                ])
            })
            .map_err(|e| b.err(e))?;
        if let Some(stats) = stats.as_mut() {
            let key = format!(
                "{}-{}-{}-{}",
                item.put_timestamp, item.delete_timestamp, item.object_count, item.bytes_used
            );
            stats.insert(
                b,
                &item.name,
                &key,
                [item.deleted, item.object_count, item.bytes_used],
                item.storage_policy_index,
            )?;
        }
        outcome.inserted += 1;
        latest.insert(item.name.clone(), Some(item));
    }
    if let Some(stats) = stats {
        stats.apply(b)?;
    }
    Ok(outcome)
}

/// What the `container` table's triggers do to `account_stat` and
/// `policy_stat`, gathered row by row for a trigger-free merge.
#[derive(Default)]
struct AccountStats {
    hash: HashXor,
    /// container_count, object_count, bytes_used added to `account_stat`.
    totals: [i64; 3],
    policies: PolicyDeltas,
}

impl AccountStats {
    fn exists(b: &AccountBroker) -> impl FnMut(i64) -> Result<bool> + '_ {
        move |p| {
            b.conn
                .prepare_cached("SELECT 1 FROM policy_stat WHERE storage_policy_index = ?")
                .and_then(|mut q| q.exists([p]))
                .map_err(|e| b.err(e))
        }
    }

    /// `[deleted, object_count, bytes_used]` of an inserted row.
    fn insert(
        &mut self,
        b: &AccountBroker,
        name: &str,
        key: &str,
        [deleted, objects, bytes]: [i64; 3],
        policy: i64,
    ) -> Result<()> {
        let add = [1 - deleted, objects, bytes];
        self.hash.add(name, key);
        for (t, v) in self.totals.iter_mut().zip(add) {
            *t += v;
        }
        self.policies.insert(policy, add, &mut Self::exists(b))
    }

    fn delete(
        &mut self,
        b: &AccountBroker,
        name: &str,
        key: &str,
        [deleted, objects, bytes]: [i64; 3],
        policy: i64,
    ) -> Result<()> {
        let sub = [1 - deleted, objects, bytes];
        self.hash.add(name, key);
        for (t, v) in self.totals.iter_mut().zip(sub) {
            *t -= v;
        }
        self.policies.delete(policy, sub, &mut Self::exists(b))
    }

    fn apply(&self, b: &AccountBroker) -> Result<()> {
        for (policy, d) in &self.policies.rows {
            let [containers, objects, bytes] = d.add;
            if d.existed {
                b.conn
                    .prepare_cached(
                        "UPDATE policy_stat SET container_count = container_count + ?,
                                object_count = object_count + ?, bytes_used = bytes_used + ?
                         WHERE storage_policy_index = ?",
                    )
                    .and_then(|mut s| s.execute(params![containers, objects, bytes, policy]))
                    .map_err(|e| b.err(e))?;
            } else if d.exists {
                b.conn
                    .prepare_cached(
                        "INSERT INTO policy_stat (storage_policy_index, container_count,
                             object_count, bytes_used) VALUES (?, ?, ?, ?)",
                    )
                    .and_then(|mut s| s.execute(params![policy, containers, objects, bytes]))
                    .map_err(|e| b.err(e))?;
            }
        }
        let old: String = b
            .conn
            .query_row("SELECT hash FROM account_stat", [], |r| col_text(r, 0))
            .map_err(|e| b.err(e))?;
        let hash = self.hash.apply(&old).ok_or_else(|| DbError::Corrupt {
            path: b.db_file.clone(),
            reason: "unreadable hash in account_stat",
            detail: old.clone(),
        })?;
        let [containers, objects, bytes] = self.totals;
        b.conn
            .prepare_cached(
                "UPDATE account_stat SET container_count = container_count + ?,
                        object_count = object_count + ?, bytes_used = bytes_used + ?, hash = ?",
            )
            .and_then(|mut s| s.execute(params![containers, objects, bytes, hash]))
            .map_err(|e| b.err(e))?;
        Ok(())
    }
}

impl DbKind for Account {
    type Item = ContainerItem;
    type Info = AccountInfo;
    const NAME: &'static str = "account";
    const DATADIR: &'static str = "accounts";
    const STAT_TABLE: &'static str = "account_stat";
    const ITEM_TABLE: &'static str = "container";
    const ITEM_COLUMNS: &'static str =
        "name, put_timestamp, delete_timestamp, object_count, bytes_used, deleted, \
         storage_policy_index";
    const VERSION_INDEX: &'static str = "ix_container_deleted_name";
    const TOMBSTONE_TIME: &'static str = "delete_timestamp";
    const DELETE_KEEPS_META: &'static [&'static str] = &[];
    const SHARD_RANGES: bool = false;
    const HAS_POLICY: bool = false;
    const SENDER_MERGES_PEER_TIMESTAMPS: bool = false;

    fn read_info(b: &AccountBroker) -> Result<AccountInfo> {
        b.read_stat()
    }

    fn add_replication_fields(
        _b: &AccountBroker,
        info: &mut AccountInfo,
        metadata: String,
        max_row: i64,
    ) -> Result<()> {
        info.metadata = metadata;
        info.max_row = max_row;
        Ok(())
    }

    fn is_deleted_now(b: &AccountBroker) -> Result<bool> {
        Ok(b.read_stat()?.is_deleted())
    }

    fn merge_rows(
        b: &AccountBroker,
        items: Vec<ContainerItem>,
        trigger_free: bool,
    ) -> Result<MergeOutcome> {
        // A DB from before storage policies is migrated first, as Swift
        // does on its first merge (its schema is never trigger-free).
        if !trigger_free && !b.has_column("container", "storage_policy_index")? {
            b.migrate_add_storage_policy_index()?;
        }
        merge_container_rows(b, items, trigger_free)
    }

    /// Swift 2.38's schema: the five triggers on `container` and a
    /// `policy_stat` with `container_count`.
    fn trigger_free_schema(b: &AccountBroker) -> Result<bool> {
        let triggers = b.triggers_on("container")?;
        Ok(b.has_column("policy_stat", "container_count")?
            && triggers
                == [
                    "container_delete",
                    "container_delete_ps",
                    "container_insert",
                    "container_insert_ps",
                    "container_update",
                ])
    }

    /// No containers, and deleted longer than `reclaim_age` ago.
    fn is_reclaimable(b: &AccountBroker, now: f64, reclaim_age: f64) -> Result<bool> {
        let info = b.get_info()?;
        let limit = Timestamp::from_f64((now - reclaim_age).max(0.0)).unwrap_or(Timestamp::ZERO);
        let (put, delete) = (
            ts_or_zero(&info.put_timestamp),
            ts_or_zero(&info.delete_timestamp),
        );
        Ok(info.count == 0 && limit > delete && delete > put)
    }
}

impl DbItem for ContainerItem {
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
        ContainerItem::check(self).map_err(|e| e.to_string())
    }
    fn pending_record(&self) -> Vec<u8> {
        pending_fmt::encode_container_record(self)
    }
    fn from_pending(t: &[pickle::Value]) -> std::result::Result<Self, PendingError> {
        pending_fmt::container_item_from_tuple(t)
    }
    fn from_row(r: &Row<'_>, offset: usize) -> rusqlite::Result<Self> {
        row_to_container(r, offset)
    }
}

impl DbInfo for AccountInfo {
    fn account(&self) -> &str {
        &self.account
    }
    fn container(&self) -> Option<&str> {
        None
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
}
