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

/// Opens an existing DB for normal use (Swift's `get_db_connection`).
pub fn open(path: &Path) -> Result<Connection> {
    if !path.is_file() {
        return Err(DbError::NotFound(path.to_path_buf()));
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )
    .map_err(|e| DbError::sqlite(path, e))?;
    configure(&conn, "NORMAL", "DELETE").map_err(|e| DbError::sqlite(path, e))?;
    Ok(conn)
}

/// Applies Swift's pragmas, the busy timeout and the `chexor` function.
pub fn configure(conn: &Connection, synchronous: &str, journal_mode: &str) -> rusqlite::Result<()> {
    conn.busy_timeout(BROKER_TIMEOUT)?;
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
}
