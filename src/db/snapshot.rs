//! Consistent snapshots of a live DB (SQLite's online backup API): what a
//! whole-DB transfer ships to a peer's `<device>/tmp/<local_id>`.

use std::path::{Path, PathBuf};

use rusqlite::{ffi, Connection, OpenFlags};

use super::{DbError, Result};

/// A snapshot file, removed on drop.
#[derive(Debug)]
pub struct Snapshot {
    path: PathBuf,
}

impl Snapshot {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let mut journal = self.path.as_os_str().to_owned();
        journal.push("-journal");
        let _ = std::fs::remove_file(PathBuf::from(journal));
    }
}

/// Copies the live DB at `db_file` into a new file in `scratch_dir`: a
/// consistent image even while the DB is written. A rollback-journal DB
/// (every Swift DB) is copied byte for byte under a read lock; any other
/// through SQLite's backup API. The copy keeps the journal mode and page
/// layout of the source.
pub fn snapshot(db_file: &Path, scratch_dir: &Path) -> Result<Snapshot> {
    std::fs::create_dir_all(scratch_dir).map_err(|e| DbError::io(scratch_dir, e))?;
    let path = scratch_dir.join(format!(".snapshot-{}.db", uuid::Uuid::new_v4().simple()));
    let snap = Snapshot { path };
    let src = super::conn::connect(db_file, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| DbError::sqlite(db_file, e))?;
    src.busy_handler(Some(super::conn::busy_wait))
        .map_err(|e| DbError::sqlite(db_file, e))?;
    if copy_raw(&src, db_file, &snap.path)? {
        return Ok(snap);
    }
    backup(&src, db_file, &snap.path)?;
    Ok(snap)
}

/// The fallback for a DB not in a rollback-journal mode: SQLite's online
/// backup API, page by page.
fn backup(src: &Connection, db_file: &Path, dst_path: &Path) -> Result<()> {
    let mut dst = super::conn::connect(dst_path, OpenFlags::default())
        .map_err(|e| DbError::sqlite(dst_path, e))?;
    // A scratch file read once by the transfer: no fsync while it is
    // written (a crash leaves only a stale `.snapshot-*` in tmp, which the
    // replicator reclaims).
    dst.execute_batch("PRAGMA synchronous = OFF")
        .map_err(|e| DbError::sqlite(dst_path, e))?;
    {
        let backup = rusqlite::backup::Backup::new(src, &mut dst)
            .map_err(|e| DbError::sqlite(db_file, e))?;
        // All pages in one step under one read lock: a consistent image.
        // Busy/locked steps are retried, boundedly.
        let mut attempts = 0;
        loop {
            match backup.step(-1).map_err(|e| DbError::sqlite(db_file, e))? {
                rusqlite::backup::StepResult::Done => break,
                rusqlite::backup::StepResult::More => {}
                _ => {
                    attempts += 1;
                    if attempts > 2500 {
                        return Err(DbError::LockTimeout {
                            path: db_file.to_path_buf(),
                            timeout: std::time::Duration::from_millis(10 * 2500),
                        });
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
            }
        }
    }
    // The backup inherits the destination's journal mode; make sure the
    // file is in DELETE mode like every Swift DB.
    let _mode: String = dst
        .query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))
        .map_err(|e| DbError::sqlite(dst_path, e))?;
    drop(dst);
    Ok(())
}

/// Copies the main DB file byte for byte into a new file at `dst_path`
/// through SQLite's own file handle (`SQLITE_FCNTL_FILE_POINTER`, the VFS's
/// `xRead`), inside a read transaction: in a rollback-journal mode the
/// shared lock keeps every writer from changing the file until the copy
/// is done (a hot journal is rolled back before the lock is granted), so
/// the bytes are one committed state. No second descriptor is opened on
/// the DB file, so none is closed under SQLite's POSIX locks. False (and
/// nothing copied) when the DB is in another journal mode (WAL).
fn copy_raw(src: &Connection, db_file: &Path, dst_path: &Path) -> Result<bool> {
    use std::io::Write;
    let sql = |e: rusqlite::Error| DbError::sqlite(db_file, e);
    let io = |e: std::io::Error| DbError::io(dst_path, e);
    src.execute_batch("BEGIN").map_err(sql)?;
    let copied = (|| -> Result<bool> {
        let mode: String = src
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .map_err(sql)?;
        // Takes the shared lock (reads page 1).
        let _: i64 = src
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .map_err(sql)?;
        if !matches!(
            mode.to_ascii_lowercase().as_str(),
            "delete" | "truncate" | "persist"
        ) {
            return Ok(false);
        }
        let mut out = std::fs::File::create(dst_path).map_err(io)?;
        let mut buf = vec![0u8; RAW_CHUNK];
        // SAFETY: the pointer comes from SQLite for this open connection's
        // main DB and stays valid while the connection is open and in this
        // transaction; buffer and lengths are ours and in bounds.
        unsafe {
            let db = src.handle();
            let mut file: *mut ffi::sqlite3_file = std::ptr::null_mut();
            let rc = ffi::sqlite3_file_control(
                db,
                c"main".as_ptr(),
                ffi::SQLITE_FCNTL_FILE_POINTER,
                (&mut file as *mut *mut ffi::sqlite3_file).cast(),
            );
            if rc != ffi::SQLITE_OK || file.is_null() || (*file).pMethods.is_null() {
                return Ok(false);
            }
            let methods = &*(*file).pMethods;
            let (Some(read), Some(size_of)) = (methods.xRead, methods.xFileSize) else {
                return Ok(false);
            };
            let mut size: ffi::sqlite3_int64 = 0;
            if size_of(file, &mut size) != ffi::SQLITE_OK {
                return Err(io(std::io::Error::other("cannot read the DB file's size")));
            }
            let mut offset: i64 = 0;
            while offset < size {
                let n = usize::try_from((size - offset).min(RAW_CHUNK as i64)).unwrap_or(0);
                let rc = read(file, buf.as_mut_ptr().cast(), n as i32, offset);
                if rc != ffi::SQLITE_OK {
                    return Err(DbError::io(
                        db_file,
                        std::io::Error::other(format!("read at {offset}: SQLite error {rc}")),
                    ));
                }
                out.write_all(&buf[..n]).map_err(io)?;
                offset += n as i64;
            }
        }
        Ok(true)
    })();
    let end = src.execute_batch("COMMIT").map_err(sql);
    let copied = copied?;
    end?;
    Ok(copied)
}

/// Bytes per read of a raw copy.
const RAW_CHUNK: usize = 1 << 20;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::ContainerBroker;
    use crate::swift::merge::ObjectItem;

    /// A container DB under `dir` with `n` rows.
    fn db_with_rows(dir: &Path, n: usize) -> (PathBuf, ContainerBroker) {
        let path = dir.join("sda/containers/1/abc/h/h.db");
        let b = ContainerBroker::create(&path, "a", "c", None, 0).unwrap();
        b.merge_items(
            (0..n)
                .map(|i| ObjectItem::new(format!("o{i}"), "1700000000.00000", 1, "t", "e"))
                .collect(),
            None,
        )
        .unwrap();
        (path, b)
    }

    #[test]
    fn snapshot_is_an_identical_db() {
        let dir = tempfile::tempdir().unwrap();
        let (path, b) = db_with_rows(dir.path(), 50);
        let snap = snapshot(&path, &dir.path().join("tmp")).unwrap();
        let copy = ContainerBroker::open(snap.path()).unwrap();
        let a = b.get_replication_info().unwrap();
        let c = copy.get_replication_info().unwrap();
        assert_eq!(a.id, c.id);
        assert_eq!(a.hash, c.hash);
        assert_eq!(a.max_row, c.max_row);
        let p = snap.path().to_path_buf();
        drop(copy);
        drop(snap);
        assert!(!p.exists());
    }

    #[test]
    fn a_rollback_journal_db_is_copied_byte_for_byte_and_a_wal_db_by_backup() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _b) = db_with_rows(dir.path(), 500);
        let snap = snapshot(&path, &dir.path().join("tmp")).unwrap();
        assert_eq!(
            std::fs::read(snap.path()).unwrap(),
            std::fs::read(&path).unwrap()
        );
        drop(snap);

        let wal = dir.path().join("wal.db");
        let c = Connection::open(&wal).unwrap();
        let mode: String = c
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        c.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1), (2), (3);")
            .unwrap();
        let snap = snapshot(&wal, &dir.path().join("tmp")).unwrap();
        let copy = Connection::open(snap.path()).unwrap();
        let n: i64 = copy
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 3, "the rows still in the WAL are in the copy");
        let mode: String = copy
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "delete");
    }
}
