//! SQLite brokers for Swift's account and container DBs. This is the only
//! part of rowsync that touches SQLite; everything here is synchronous.
//!
//! - [`conn`]: opening connections the way Swift does (pragmas, `chexor`).
//! - [`lock`]: Swift's directory lock (`flock` on `<dir>/.lock`).
//! - [`schema`]: Swift 2.38's container and account DB schemas.
//! - [`kind`]: what a kind of DB supplies ([`DbKind`]).
//! - [`core`]: the shared broker [`Broker<K>`]: pending file, merge_items,
//!   sync tables, replication info, metadata, timestamps, newid, reclaim.
//! - [`container`]: the container kind: object rows, listings, policy,
//!   shard ranges.
//! - [`account`]: the account kind: container rows, listings, policy stats.
//! - [`snapshot`]: consistent copies of a live DB for whole-DB transfers.
//! - [`files`]: DB file names and locations (`<hash>[_<epoch>].db`),
//!   quarantine.

pub mod account;
pub mod conn;
pub mod container;
pub mod core;
pub mod files;
pub mod kind;
pub mod lock;
pub mod schema;
pub mod shard;
pub mod snapshot;
mod stats;

use std::path::{Path, PathBuf};

pub use account::{Account, AccountBroker, AccountInfo, AccountListingEntry};
pub use container::{Container, ContainerBroker, ContainerInfo, ListingEntry, ListingParams};
pub use core::{parse_metadata, Broker, MergeOutcome, SyncPoint, DEFAULT_PENDING_TIMEOUT};
pub use kind::{DbInfo, DbItem, DbKind, DbState};

/// Swift's `BROKER_TIMEOUT`: how long to wait on SQLite locks.
pub const BROKER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(25);
/// SQLite's default bound-parameter limit, as Swift assumes it.
pub const SQLITE_ARG_LIMIT: usize = 999;
/// Tombstones are reclaimed in name-ordered pages of this many rows.
pub const RECLAIM_PAGE_SIZE: i64 = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("DB {0} doesn't exist")]
    NotFound(PathBuf),
    #[error("DB {0} already exists")]
    AlreadyExists(PathBuf),
    /// The file is not a usable container DB; callers quarantine it.
    #[error("DB {path} is unusable ({reason}): {detail}")]
    Corrupt {
        path: PathBuf,
        reason: &'static str,
        detail: String,
    },
    #[error("timed out after {timeout:?} waiting for the lock on {path}")]
    LockTimeout {
        path: PathBuf,
        timeout: std::time::Duration,
    },
    /// Bad input from a caller (a bad row, timestamp or argument).
    #[error("invalid input: {0}")]
    Invalid(String),
    #[error("SQLite error on {path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl DbError {
    /// The HTTP status Swift answers for this failure: bad input 400, a
    /// missing DB 404, a DB that exists already 409, a lock timeout or a
    /// busy DB 503, a full disk 507, anything else 500.
    pub fn status(&self) -> u16 {
        match self {
            DbError::Invalid(_) => 400,
            DbError::NotFound(_) | DbError::Corrupt { .. } => 404,
            DbError::AlreadyExists(_) => 409,
            DbError::LockTimeout { .. } => 503,
            DbError::Sqlite { source, .. } => match source.sqlite_error_code() {
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                    503
                }
                Some(rusqlite::ErrorCode::DiskFull) => 507,
                _ => 500,
            },
            DbError::Io { source, .. } => match source.raw_os_error() {
                Some(libc::ENOSPC) | Some(libc::EDQUOT) => 507,
                _ => 500,
            },
        }
    }

    /// Did a write fail because the DB file was renamed or replaced under
    /// the open connection (SQLite's `SQLITE_READONLY_DBMOVED`)?
    pub fn is_db_moved(&self) -> bool {
        match self {
            DbError::Sqlite {
                source: rusqlite::Error::SqliteFailure(e, _),
                ..
            } => e.extended_code == rusqlite::ffi::SQLITE_READONLY_DBMOVED,
            _ => false,
        }
    }

    /// Is this a full disk (the device cannot take writes)?
    pub fn is_disk_full(&self) -> bool {
        self.status() == 507
    }

    /// Should the DB be quarantined? (Swift's `possibly_quarantine` and the
    /// replicator's `no such table` check.)
    pub fn is_corrupt(&self) -> bool {
        matches!(self, DbError::Corrupt { .. })
    }

    pub(crate) fn io(path: &Path, source: std::io::Error) -> DbError {
        DbError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// Classifies a SQLite error: corruption-like messages become
    /// [`DbError::Corrupt`].
    pub(crate) fn sqlite(path: &Path, source: rusqlite::Error) -> DbError {
        let msg = source.to_string();
        let reason = if msg.contains("database disk image is malformed")
            || msg.contains("malformed database schema")
        {
            Some("malformed database")
        } else if msg.contains(" is not a database") {
            Some("corrupted database")
        } else if msg.contains("disk I/O error") {
            Some("disk error while accessing database")
        } else if msg.contains("no such table") {
            Some("missing table")
        } else if let rusqlite::Error::SqliteFailure(e, _) = &source {
            match e.code {
                rusqlite::ErrorCode::NotADatabase => Some("corrupted database"),
                rusqlite::ErrorCode::DatabaseCorrupt => Some("malformed database"),
                _ => None,
            }
        } else {
            None
        };
        match reason {
            Some(reason) => DbError::Corrupt {
                path: path.to_path_buf(),
                reason,
                detail: msg,
            },
            None => DbError::Sqlite {
                path: path.to_path_buf(),
                source,
            },
        }
    }
}

pub type Result<T> = std::result::Result<T, DbError>;

/// The error a fail point injects (feature `failpoints`): `return(enospc)`
/// a full disk, any other `return(...)` an I/O error (EIO).
#[cfg_attr(not(feature = "failpoints"), allow(dead_code))]
pub(crate) fn injected(path: &Path, arg: Option<String>) -> DbError {
    let errno = match arg.as_deref() {
        Some("enospc") => libc::ENOSPC,
        _ => libc::EIO,
    };
    DbError::io(path, std::io::Error::from_raw_os_error(errno))
}

/// `PRAGMA quick_check` of the DB file at `path`, on its own read-only
/// connection (it may run beside a broker's): `Corrupt` when it fails.
pub fn audit_file(path: &Path) -> Result<()> {
    let conn = conn::connect(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| DbError::sqlite(path, e))?;
    conn.busy_handler(Some(conn::busy_wait))
        .map_err(|e| DbError::sqlite(path, e))?;
    let first: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(|e| DbError::sqlite(path, e))?;
    if first == "ok" {
        return Ok(());
    }
    Err(DbError::Corrupt {
        path: path.to_path_buf(),
        reason: "failed PRAGMA quick_check",
        detail: first,
    })
}

/// Which kind of Swift DB a file is, by its stat table: `Some("account")`,
/// `Some("container")`, or `None` for a readable SQLite file of neither
/// kind. Opens the file read-only and writes nothing.
pub fn kind_of_file(path: &Path) -> Result<Option<&'static str>> {
    if !path.is_file() {
        return Err(DbError::NotFound(path.to_path_buf()));
    }
    let conn = conn::connect(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| DbError::sqlite(path, e))?;
    let has = |name: &str| -> Result<bool> {
        conn.query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = ?",
            [name],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n > 0)
        .map_err(|e| DbError::sqlite(path, e))
    };
    Ok(if has("account_stat")? {
        Some(Account::NAME)
    } else if has("container_stat")? {
        Some(Container::NAME)
    } else {
        None
    })
}
