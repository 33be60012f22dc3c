//! Opening SQLite connections as Swift does.

use std::path::Path;

use rusqlite::functions::FunctionFlags;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use super::{DbError, Result, BROKER_TIMEOUT};
use crate::swift::hash::chexor;

/// Registers the `chexor(old, name, timestamp)` SQL function that Swift's
/// triggers call.
pub fn register_chexor(conn: &Connection) -> rusqlite::Result<()> {
    conn.create_scalar_function(
        "chexor",
        3,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let old = value_text(ctx.get_raw(0));
            let name = match ctx.get_raw(1) {
                ValueRef::Null => {
                    return Err(rusqlite::Error::UserFunctionError(
                        "chexor: name is NULL".into(),
                    ))
                }
                v => value_text(v),
            };
            let ts = value_text(ctx.get_raw(2));
            chexor(&old, &name, &ts).map_err(|e| rusqlite::Error::UserFunctionError(Box::new(e)))
        },
    )
}

/// Text of an SQLite value as Python's `str()` would give it.
pub fn value_text(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Null => "None".into(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => python_float_repr(f),
        ValueRef::Text(t) | ValueRef::Blob(t) => String::from_utf8_lossy(t).into_owned(),
    }
}

/// Python's `repr(float)`.
pub fn python_float_repr(f: f64) -> String {
    crate::swift::pyjson::float_repr(f)
}

/// SQLite's process-wide settings, applied once before its first
/// connection: no memory statistics. With them on (SQLite's default)
/// every allocation SQLite makes takes one global mutex to keep the
/// counts, which rowsync never reads; a merge allocates for every row.
/// Builds from this repository have them off already (`.cargo/config.toml`
/// compiles SQLite so); this keeps them off in a build whose environment
/// sets other `LIBSQLITE3_FLAGS`. Every connection rowsync opens goes
/// through [`connect`], which applies this first.
fn configure_sqlite_once() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: `sqlite3_config` with an int argument, as documented for
        // SQLITE_CONFIG_MEMSTATUS. Before SQLite is initialized it sets the
        // option; after (something opened a connection first), SQLite
        // refuses it with SQLITE_MISUSE and nothing changes.
        let off: std::os::raw::c_int = 0;
        let rc =
            unsafe { rusqlite::ffi::sqlite3_config(rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS, off) };
        if rc != rusqlite::ffi::SQLITE_OK {
            tracing::debug!(
                rc,
                "SQLite was initialized before its settings: memory statistics stay on"
            );
        }
    });
}

/// Opens a SQLite connection (every one rowsync opens comes through here,
/// after SQLite's process-wide settings).
pub fn connect(path: &Path, flags: OpenFlags) -> rusqlite::Result<Connection> {
    configure_sqlite_once();
    Connection::open_with_flags(path, flags)
}

/// Opens an existing DB for normal use (Swift's `get_db_connection`).
pub fn open(path: &Path) -> Result<Connection> {
    if !path.is_file() {
        return Err(DbError::NotFound(path.to_path_buf()));
    }
    let conn = connect(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )
    .map_err(|e| DbError::sqlite(path, e))?;
    configure(&conn, "NORMAL", "DELETE").map_err(|e| DbError::sqlite(path, e))?;
    Ok(conn)
}

/// SQLite's busy handler on rowsync's connections: waits up to Swift's
/// `BROKER_TIMEOUT` for a lock, trying again every millisecond at first,
/// then every 5 ms. SQLite's own (`busy_timeout`) backs off to 100 ms
/// between tries, so a writer behind a run of short transactions (the
/// slices of a big merge) can find the lock held at every try and wait
/// for the whole run.
pub fn busy_wait(prior_calls: i32) -> bool {
    const QUICK: u64 = 10;
    let n = prior_calls.max(0) as u64;
    let (waited_ms, next_ms) = if n < QUICK {
        (n, 1)
    } else {
        (QUICK + (n - QUICK) * 5, 5)
    };
    if waited_ms >= BROKER_TIMEOUT.as_millis() as u64 {
        return false;
    }
    std::thread::sleep(std::time::Duration::from_millis(next_ms));
    true
}

/// Applies Swift's pragmas, the busy handler and the `chexor` function.
pub fn configure(conn: &Connection, synchronous: &str, journal_mode: &str) -> rusqlite::Result<()> {
    conn.busy_handler(Some(busy_wait))?;
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {synchronous};
         PRAGMA count_changes = OFF;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -8192;"
    ))?;
    // journal_mode returns a row; read it to run the pragma.
    let _mode: String =
        conn.query_row(&format!("PRAGMA journal_mode = {journal_mode}"), [], |r| {
            r.get(0)
        })?;
    register_chexor(conn)?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_repr() {
        assert_eq!(python_float_repr(1699395200.0), "1699395200.0");
        assert_eq!(python_float_repr(1699395200.5871234), "1699395200.5871234");
    }

    /// The build settings in `.cargo/config.toml` reach the bundled
    /// SQLite: a page cache per connection, no memory statistics.
    #[test]
    fn sqlite_is_built_without_global_caches_or_statistics() {
        let dir = tempfile::tempdir().unwrap();
        let c = connect(&dir.path().join("t.db"), OpenFlags::default()).unwrap();
        let opts: Vec<String> = c
            .prepare("PRAGMA compile_options")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(
            !opts.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"),
            "{opts:?}"
        );
        assert!(opts.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"), "{opts:?}");
    }

    #[test]
    fn busy_wait_retries_until_swifts_broker_timeout() {
        assert!(busy_wait(0));
        assert!(busy_wait(12));
        let budget = BROKER_TIMEOUT.as_millis() as i32;
        assert!(busy_wait(10 + (budget - 10) / 5 - 1));
        assert!(!busy_wait(10 + (budget - 10) / 5));
        assert!(!busy_wait(i32::MAX));
    }

    /// A writer waits for a lock held by another connection, and writes
    /// once it is released.
    #[test]
    fn a_writer_waits_for_the_lock_and_then_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let a = Connection::open(&path).unwrap();
        configure(&a, "NORMAL", "DELETE").unwrap();
        a.execute_batch("CREATE TABLE t (x); BEGIN IMMEDIATE; INSERT INTO t VALUES (1);")
            .unwrap();
        let p2 = path.clone();
        let writer = std::thread::spawn(move || {
            let b = Connection::open(&p2).unwrap();
            configure(&b, "NORMAL", "DELETE").unwrap();
            b.execute("INSERT INTO t VALUES (2)", []).unwrap();
        });
        std::thread::sleep(std::time::Duration::from_millis(50));
        a.execute_batch("COMMIT").unwrap();
        writer.join().unwrap();
        let n: i64 = a
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 2);
    }
}
