//! A ring that reloads itself when its file changes, as Swift's `Ring` does.
//!
//! [`RingHandle::ring`] hands out an `Arc<Ring>`. At most once per reload
//! interval (default 15 s, Swift's `DEFAULT_RELOAD_TIME`) it stats the file;
//! when the file's mtime (or size or inode) differs from the loaded one it
//! re-reads it. A file that fails to load keeps the old ring in service (a
//! warning is logged) and is retried at the next check. Callers holding an
//! `Arc<Ring>` keep a consistent ring for as long as they hold it.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use super::{io, Ring, RingError};

/// Swift's default ring reload check interval.
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(15);

/// What identifies one version of the file on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    mtime: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl FileStamp {
    fn of(path: &Path) -> Result<FileStamp, RingError> {
        let md = fs::metadata(path).map_err(|source| RingError::Io {
            path: path.display().to_string(),
            source,
        })?;
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&md);
        #[cfg(not(unix))]
        let inode = 0;
        Ok(FileStamp {
            mtime: md.modified().ok(),
            len: md.len(),
            inode,
        })
    }
}

#[derive(Debug)]
struct State {
    ring: Arc<Ring>,
    stamp: FileStamp,
    next_check: Instant,
}

/// A shared, self-reloading ring. Cheap to call from many threads.
#[derive(Debug)]
pub struct RingHandle {
    path: PathBuf,
    reload_interval: Duration,
    state: Mutex<State>,
}

impl RingHandle {
    /// Loads the ring at `path`, checking for changes every 15 s.
    pub fn open(path: impl Into<PathBuf>) -> Result<RingHandle, RingError> {
        Self::open_with_interval(path, DEFAULT_RELOAD_INTERVAL)
    }

    /// Loads the ring at `path`, checking for changes at most once per
    /// `reload_interval` (zero: on every call).
    pub fn open_with_interval(
        path: impl Into<PathBuf>,
        reload_interval: Duration,
    ) -> Result<RingHandle, RingError> {
        let path = path.into();
        let stamp = FileStamp::of(&path)?;
        let ring = Arc::new(io::load(&path)?);
        Ok(RingHandle {
            state: Mutex::new(State {
                ring,
                stamp,
                next_check: Instant::now() + reload_interval,
            }),
            path,
            reload_interval,
        })
    }

    /// The ring file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn reload_interval(&self) -> Duration {
        self.reload_interval
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current ring, reloaded first if the check interval has passed
    /// and the file changed.
    pub fn ring(&self) -> Arc<Ring> {
        let mut state = self.lock();
        if Instant::now() >= state.next_check {
            if let Err(e) = self.check(&mut state) {
                tracing::warn!(path = %self.path.display(), error = %e,
                    "ring reload failed; keeping the loaded ring");
            }
        }
        state.ring.clone()
    }

    /// Checks the file now, whatever the interval. `Ok(true)` if a new ring
    /// was loaded; on error the old ring stays.
    pub fn reload_if_changed(&self) -> Result<bool, RingError> {
        let mut state = self.lock();
        self.check(&mut state)
    }

    fn check(&self, state: &mut State) -> Result<bool, RingError> {
        state.next_check = Instant::now() + self.reload_interval;
        let stamp = FileStamp::of(&self.path)?;
        if stamp == state.stamp {
            return Ok(false);
        }
        let ring = io::load(&self.path)?;
        // The stamp was taken before reading: if the file was replaced
        // while we read it, the next check sees a new stamp and reloads.
        state.stamp = stamp;
        state.ring = Arc::new(ring);
        tracing::info!(path = %self.path.display(), "reloaded ring");
        Ok(true)
    }
}
