//! Consistent snapshots of a live DB (SQLite's online backup API): what a
//! whole-DB transfer ships to a peer's `<device>/tmp/<local_id>`.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

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

/// Copies the live DB at `db_file` into a new file in `scratch_dir` with
/// SQLite's backup API: a consistent image even while the DB is written.
/// The copy keeps the rollback-journal mode and page layout of the source.
pub fn snapshot(db_file: &Path, scratch_dir: &Path) -> Result<Snapshot> {
    std::fs::create_dir_all(scratch_dir).map_err(|e| DbError::io(scratch_dir, e))?;
    let path = scratch_dir.join(format!(".snapshot-{}.db", uuid::Uuid::new_v4().simple()));
    let snap = Snapshot { path };
    let src = Connection::open_with_flags(db_file, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| DbError::sqlite(db_file, e))?;
    src.busy_timeout(super::BROKER_TIMEOUT)
        .map_err(|e| DbError::sqlite(db_file, e))?;
    let mut dst = Connection::open(&snap.path).map_err(|e| DbError::sqlite(&snap.path, e))?;
    // A scratch file read once by the transfer: no fsync while it is
    // written (a crash leaves only a stale `.snapshot-*` in tmp, which the
    // replicator reclaims).
    dst.execute_batch("PRAGMA synchronous = OFF")
        .map_err(|e| DbError::sqlite(&snap.path, e))?;
    {
        let backup = rusqlite::backup::Backup::new(&src, &mut dst)
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
        .map_err(|e| DbError::sqlite(&snap.path, e))?;
    drop(dst);
    Ok(snap)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::ContainerBroker;
    use crate::swift::merge::ObjectItem;

    #[test]
    fn snapshot_is_an_identical_db() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sda/containers/1/abc/h/h.db");
        let b = ContainerBroker::create(&path, "a", "c", None, 0).unwrap();
        b.merge_items(
            (0..50)
                .map(|i| ObjectItem::new(format!("o{i}"), "1700000000.00000", 1, "t", "e"))
                .collect(),
            None,
        )
        .unwrap();
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
}
