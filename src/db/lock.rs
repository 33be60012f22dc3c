//! Swift's directory lock: an exclusive `flock` on `<dir>/.lock`, polled
//! until a timeout. Python and rowsync processes sharing a disk exclude each
//! other through the same file.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{DbError, Result};

/// A held directory lock; released on drop (closing the file drops the flock).
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    path: PathBuf,
}

impl DirLock {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Locks `dir` (creating it if needed), waiting up to `timeout`.
pub fn lock_dir(dir: &Path, timeout: Duration) -> Result<DirLock> {
    std::fs::create_dir_all(dir).map_err(|e| DbError::io(dir, e))?;
    let path = dir.join(".lock");
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| DbError::io(&path, e))?;
    let start = Instant::now();
    let mut sleep = Duration::from_millis(10);
    loop {
        // SAFETY: flock on a valid, owned file descriptor.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(DirLock { _file: file, path });
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EWOULDBLOCK) && err.raw_os_error() != Some(libc::EINTR)
        {
            return Err(DbError::io(&path, err));
        }
        let elapsed = start.elapsed();
        if elapsed >= timeout {
            return Err(DbError::LockTimeout { path, timeout });
        }
        if elapsed > timeout / 100 {
            sleep = (timeout / 100).max(Duration::from_millis(10));
        }
        std::thread::sleep(sleep.min(timeout.saturating_sub(elapsed)));
    }
}

/// Locks the directory containing `file`.
pub fn lock_parent(file: &Path, timeout: Duration) -> Result<DirLock> {
    let dir = file.parent().unwrap_or(Path::new("."));
    lock_dir(dir, timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_times_out_until_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock_dir(dir.path(), Duration::from_millis(100)).unwrap();
        let e = lock_dir(dir.path(), Duration::from_millis(50)).unwrap_err();
        assert!(matches!(e, DbError::LockTimeout { .. }));
        drop(held);
        lock_dir(dir.path(), Duration::from_millis(50)).unwrap();
        assert!(dir.path().join(".lock").exists());
    }
}
