//! What a kind of Swift DB supplies to the shared core ([`super::Broker`])
//! and to the replication engine: its tables, its row type and merge rule,
//! its info fields, and the few decisions that differ between container
//! and account DBs. Everything else is written once.

use std::fmt::Debug;

use rusqlite::Row;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::core::{Broker, MergeOutcome};
use super::shard::ShardRange;
use super::Result;
use crate::swift::pending::PendingError;
use crate::swift::pickle;

/// One row of a DB (an object of a container, a container of an account):
/// as stored, sent in `merge_items` and kept in the pending file.
pub trait DbItem:
    Clone + Debug + PartialEq + Send + Sync + Serialize + DeserializeOwned + 'static
{
    /// The sender-local ROWID carried on the wire.
    fn rowid(&self) -> Option<i64>;
    fn set_rowid(&mut self, rowid: Option<i64>);
    fn name(&self) -> &str;
    /// Checks an item before it is accepted into the pending file.
    fn check(&self) -> std::result::Result<(), String>;
    /// The item as one pending-file record (`:` + base64 pickle).
    fn pending_record(&self) -> Vec<u8>;
    /// The item from a decoded pending-file tuple.
    fn from_pending(t: &[pickle::Value]) -> std::result::Result<Self, PendingError>;
    /// The item from a row selected with the kind's `ITEM_COLUMNS`,
    /// starting at column `offset`.
    fn from_row(r: &Row<'_>, offset: usize) -> rusqlite::Result<Self>;
}

/// `get_replication_info()` of a kind: the fields the engine reads (and
/// a receiver's `point`), whatever else the kind carries.
pub trait DbInfo:
    Clone + Debug + Default + Send + Sync + Serialize + DeserializeOwned + 'static
{
    fn account(&self) -> &str;
    /// The container name (containers only).
    fn container(&self) -> Option<&str>;
    fn created_at(&self) -> &str;
    fn put_timestamp(&self) -> &str;
    fn delete_timestamp(&self) -> &str;
    fn status_changed_at(&self) -> &str;
    fn hash(&self) -> &str;
    fn id(&self) -> &str;
    /// Live rows (objects of the container's policy / containers).
    fn count(&self) -> i64;
    fn bytes_used(&self) -> i64;
    fn max_row(&self) -> i64;
    /// The raw metadata column.
    fn metadata(&self) -> &str;
    /// The receiver's incoming sync point for the caller (`sync` answers).
    fn point(&self) -> Option<i64>;
    fn set_point(&mut self, point: Option<i64>);
    /// The container's storage policy (containers only).
    fn storage_policy_index(&self) -> Option<i64> {
        None
    }
    /// The shard-range table's high-water mark (containers only).
    fn shard_max_row(&self) -> Option<i64> {
        None
    }
    /// May the replicator remove this reclaimable DB now? Containers wait
    /// until their last state was reported to the account.
    fn may_delete(&self) -> bool {
        true
    }
}

/// A container DB's sharding state (Swift's `get_db_state()`), on the
/// wire as its lowercase name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DbState {
    #[default]
    Unsharded,
    Sharding,
    Sharded,
    Collapsed,
}

impl DbState {
    pub fn as_str(self) -> &'static str {
        match self {
            DbState::Unsharded => "unsharded",
            DbState::Sharding => "sharding",
            DbState::Sharded => "sharded",
            DbState::Collapsed => "collapsed",
        }
    }

    pub fn parse(s: &str) -> Option<DbState> {
        [
            DbState::Unsharded,
            DbState::Sharding,
            DbState::Sharded,
            DbState::Collapsed,
        ]
        .into_iter()
        .find(|d| d.as_str() == s)
    }
}

/// A kind of Swift DB.
pub trait DbKind: Sized + Send + Sync + Debug + 'static {
    type Item: DbItem;
    type Info: DbInfo;
    /// `container` / `account`: the server type (recon file, ring, config
    /// sections).
    const NAME: &'static str;
    /// The datadir under a device: `containers` / `accounts`.
    const DATADIR: &'static str;
    /// The one-row stat table (or view) the core reads and updates.
    const STAT_TABLE: &'static str;
    /// The row table (`object` / `container`).
    const ITEM_TABLE: &'static str;
    /// The row columns [`DbItem::from_row`] reads, in its order.
    const ITEM_COLUMNS: &'static str;
    /// The (deleted, name) index whose presence makes a DB version 1.
    const VERSION_INDEX: &'static str;
    /// The row column a tombstone's age is read from by reclaim.
    const TOMBSTONE_TIME: &'static str;
    /// Metadata keys (lowercase) that `delete_db` keeps.
    const DELETE_KEEPS_META: &'static [&'static str];
    /// Does the kind store and replicate shard ranges?
    const SHARD_RANGES: bool;
    /// Does the kind have a storage policy of its own (sent in `sync`)?
    const HAS_POLICY: bool;
    /// Does a sender merge the DB timestamps of a peer's `sync` answer into
    /// its own DB? Swift's container replicator does; its account
    /// replicator does not (an account learns a peer's delete only when the
    /// peer pushes).
    const SENDER_MERGES_PEER_TIMESTAMPS: bool;

    /// The info as `get_info()` gives it (pending already committed).
    fn read_info(b: &Broker<Self>) -> Result<Self::Info>;
    /// Adds what `get_replication_info()` has beyond `get_info()`.
    fn add_replication_fields(
        b: &Broker<Self>,
        info: &mut Self::Info,
        metadata: String,
        max_row: i64,
    ) -> Result<()>;
    /// The kind's deleted rule, on the stored state (no pending commit).
    fn is_deleted_now(b: &Broker<Self>) -> Result<bool>;
    /// Merges rows with the kind's rule, inside the caller's transaction.
    /// With `trigger_free`, SQLite's triggers are off and the merge applies
    /// itself what the row table's triggers would have done.
    fn merge_rows(
        b: &Broker<Self>,
        items: Vec<Self::Item>,
        trigger_free: bool,
    ) -> Result<MergeOutcome>;
    /// Is the DB's schema the one whose triggers [`DbKind::merge_rows`]
    /// knows how to stand in for? (Older schemas merge with triggers on.)
    fn trigger_free_schema(_b: &Broker<Self>) -> Result<bool> {
        Ok(false)
    }
    /// Deleted long enough ago (and empty) for the replicator to remove it.
    fn is_reclaimable(b: &Broker<Self>, now: f64, reclaim_age: f64) -> Result<bool>;
    /// Extra work of `newid`, inside its transaction.
    fn on_newid(_b: &Broker<Self>) -> Result<()> {
        Ok(())
    }
    /// Extra work of `reclaim`, inside its last transaction.
    fn reclaim_more(_b: &Broker<Self>, _sync_timestamp: f64) -> Result<()> {
        Ok(())
    }
    /// Adopts a peer's storage policy (kinds with one).
    fn set_storage_policy_index(_b: &Broker<Self>, _policy: i64, _ts: &str) -> Result<()> {
        Ok(())
    }
    /// Every shard range row (kinds with shard ranges).
    fn shard_ranges(_b: &Broker<Self>) -> Result<Vec<ShardRange>> {
        Ok(Vec::new())
    }
    /// Merges shard ranges from a peer, dropping own ranges without an
    /// epoch when ours has one (kinds with shard ranges).
    fn merge_peer_shard_ranges(_b: &Broker<Self>, _ranges: Vec<ShardRange>) -> Result<()> {
        Ok(())
    }
    /// Has sharding started (rows then stop flowing by replication)?
    fn sharding_initiated(_b: &Broker<Self>) -> Result<bool> {
        Ok(false)
    }
    fn db_state(_b: &Broker<Self>) -> Result<DbState> {
        Ok(DbState::Unsharded)
    }
}
