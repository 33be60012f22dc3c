//! Per-device pass state: what a pass needs to skip, without opening it, a
//! DB that nothing happened to since it was last in sync with every peer.
//!
//! For each DB the state keeps the file's stamp when it was last found in
//! sync with all its peers (size, modification time and SQLite's file
//! change counter, which every committed transaction bumps; the pending
//! file must have been empty), a digest of its partition's primaries
//! (devices and addresses) then, and when it was last visited and last
//! integrity-checked. A DB is skipped only if all of these still hold, its
//! visit is not older than `full_pass_interval`, and (checked by the
//! daemon) its partition's peers are rowsync nodes that still list it.
//!
//! The state lives in `<device>/rowsync-<datadir>.state` (JSON), written
//! at the end of a pass to a temporary file, fsynced and renamed into
//! place. A missing, stale or unreadable file only costs a full pass: an
//! entry is a promise that was true when written, and any later write to
//! the DB changes its stamp.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::db::files;

/// What a DB file looked like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    pub size: u64,
    pub mtime_ns: i128,
    /// SQLite's file change counter (header bytes 24..28).
    pub counter: u32,
}

/// The stamp of `db_file`, if its pending file is empty (a DB with
/// pending rows is never "unchanged").
pub fn stamp(db_file: &Path) -> Option<Stamp> {
    let pending = files::pending_path(db_file);
    if std::fs::metadata(&pending).is_ok_and(|m| m.len() > 0) {
        return None;
    }
    let mut f = std::fs::File::open(db_file).ok()?;
    let meta = f.metadata().ok()?;
    let mut header = [0u8; 28];
    f.read_exact(&mut header).ok()?;
    let mtime_ns = meta
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_nanos() as i128;
    Some(Stamp {
        size: meta.len(),
        mtime_ns,
        counter: u32::from_be_bytes([header[24], header[25], header[26], header[27]]),
    })
}

/// One DB's entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The stamp when last found in sync with every peer (None: not in
    /// sync at the last visit).
    pub in_sync: Option<Stamp>,
    /// Digest of the partition's primaries then.
    pub placement: u64,
    /// When it was last visited (epoch seconds).
    pub visited_at: f64,
    /// When it last passed its integrity check (epoch seconds).
    pub audited_at: f64,
    /// Loaded from the file (written before this process started).
    #[serde(skip)]
    pub from_file: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct FileFormat {
    version: u32,
    entries: HashMap<String, Entry>,
}

const VERSION: u32 = 1;

/// The state of one device's datadir.
#[derive(Debug)]
pub struct DeviceState {
    path: PathBuf,
    entries: HashMap<String, Entry>,
    /// Hashes seen by this pass (to drop entries of DBs gone).
    seen: std::collections::HashSet<String>,
    dirty: bool,
}

impl DeviceState {
    /// The state file of `datadir` on a device.
    pub fn path_for(dev_path: &Path, datadir: &str) -> PathBuf {
        dev_path.join(format!("rowsync-{datadir}.state"))
    }

    /// Loads the state (a missing or unreadable file: an empty state, so
    /// a full pass).
    pub fn load(dev_path: &Path, datadir: &str) -> DeviceState {
        let path = Self::path_for(dev_path, datadir);
        let entries = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<FileFormat>(&bytes) {
                Ok(f) if f.version == VERSION => f.entries,
                Ok(_) | Err(_) => {
                    tracing::warn!(file = %path.display(), "unreadable pass state: a full pass");
                    HashMap::new()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
            Err(e) => {
                tracing::warn!(file = %path.display(), "cannot read pass state ({e}): a full pass");
                HashMap::new()
            }
        };
        DeviceState {
            path,
            entries: entries
                .into_iter()
                .map(|(k, mut e)| {
                    e.from_file = true;
                    (k, e)
                })
                .collect(),
            seen: Default::default(),
            dirty: false,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Marks a DB as present in this pass.
    pub fn seen(&mut self, hash: &str) {
        if !self.seen.contains(hash) {
            self.seen.insert(hash.to_string());
        }
    }

    /// May the DB be skipped on local evidence (its stamp, placement and
    /// the intervals)? The daemon still asks the peers.
    pub fn unchanged(
        &self,
        hash: &str,
        stamp: Option<Stamp>,
        placement: u64,
        now: f64,
        full_pass_interval: f64,
        integrity_interval: f64,
    ) -> bool {
        let (Some(e), Some(stamp)) = (self.entries.get(hash), stamp) else {
            return false;
        };
        e.in_sync == Some(stamp)
            && e.placement == placement
            && now - e.visited_at < full_pass_interval
            && now >= e.visited_at
            && (integrity_interval <= 0.0 || now - e.audited_at < integrity_interval)
    }

    /// Is the DB due for its integrity check on this visit? Never checked,
    /// checked more than `interval` ago, or changed while no replicator of
    /// this process was watching it (an entry from the file whose stamp
    /// differs: written, or damaged, across a restart).
    pub fn audit_due(&self, hash: &str, stamp: Option<Stamp>, now: f64, interval: f64) -> bool {
        if interval <= 0.0 {
            return false;
        }
        match self.entries.get(hash) {
            None => true,
            Some(e) => {
                now - e.audited_at >= interval
                    || now < e.audited_at
                    || (e.from_file && stamp.is_none_or(|s| e.in_sync != Some(s)))
            }
        }
    }

    /// Records a visit: `in_sync` is the stamp taken before the visit if
    /// every peer is now in sync, else `None`.
    pub fn visited(
        &mut self,
        hash: &str,
        in_sync: Option<Stamp>,
        placement: u64,
        now: f64,
        audited: bool,
    ) {
        let prev_audit = self.entries.get(hash).map_or(0.0, |e| e.audited_at);
        self.entries.insert(
            hash.to_string(),
            Entry {
                in_sync,
                placement,
                visited_at: now,
                audited_at: if audited { now } else { prev_audit },
                from_file: false,
            },
        );
        self.dirty = true;
    }

    /// Forgets a DB (removed, quarantined, moved away).
    pub fn forget(&mut self, hash: &str) {
        if self.entries.remove(hash).is_some() {
            self.dirty = true;
        }
    }

    /// Writes the state (temp file, fsync, rename, fsync of the dir).
    /// With `complete`, entries of DBs this pass did not see are dropped.
    pub fn save(&mut self, complete: bool) -> std::io::Result<()> {
        if complete {
            let before = self.entries.len();
            let seen = std::mem::take(&mut self.seen);
            self.entries.retain(|h, _| seen.contains(h));
            self.dirty |= self.entries.len() != before;
        }
        self.seen.clear();
        if !self.dirty {
            return Ok(());
        }
        fail::fail_point!("pass_state::save", |a| Err(
            std::io::Error::from_raw_os_error(if a.as_deref() == Some("enospc") {
                libc::ENOSPC
            } else {
                libc::EIO
            })
        ));
        let body = serde_json::to_vec(&FileFormat {
            version: VERSION,
            entries: self.entries.clone(),
        })
        .map_err(std::io::Error::other)?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let tmp = dir.join(format!(
            ".{}.{}.tmp",
            self.path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            uuid::Uuid::new_v4().simple()
        ));
        let result = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&body)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            files::fsync_path(dir).map_err(std::io::Error::other)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        } else {
            self.dirty = false;
        }
        result
    }
}

/// A digest of a partition's primaries (ids, replication addresses,
/// devices): any change re-checks the partition's DBs.
pub fn placement_digest(nodes: &[crate::ring::Device]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for d in nodes {
        d.id.hash(&mut h);
        d.replication_ip.hash(&mut h);
        d.replication_port.hash(&mut h);
        d.device.hash(&mut h);
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(c: u32) -> Stamp {
        Stamp {
            size: 4096,
            mtime_ns: 1,
            counter: c,
        }
    }

    #[test]
    fn unchanged_needs_every_condition() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = DeviceState::load(dir.path(), "containers");
        assert!(s.is_empty());
        s.visited("h", Some(st(1)), 7, 100.0, true);
        assert!(s.unchanged("h", Some(st(1)), 7, 110.0, 3600.0, 86400.0));
        assert!(
            !s.unchanged("h", Some(st(2)), 7, 110.0, 3600.0, 86400.0),
            "written since"
        );
        assert!(
            !s.unchanged("h", None, 7, 110.0, 3600.0, 86400.0),
            "pending rows"
        );
        assert!(
            !s.unchanged("h", Some(st(1)), 8, 110.0, 3600.0, 86400.0),
            "ring change"
        );
        assert!(
            !s.unchanged("h", Some(st(1)), 7, 4000.0, 3600.0, 86400.0),
            "full pass due"
        );
        assert!(
            !s.unchanged("h", Some(st(1)), 7, 110.0, 3600.0, 5.0),
            "audit due"
        );
        assert!(
            !s.unchanged("x", Some(st(1)), 7, 110.0, 3600.0, 86400.0),
            "unknown"
        );
        s.visited("h", None, 7, 120.0, false);
        assert!(
            !s.unchanged("h", Some(st(1)), 7, 130.0, 3600.0, 86400.0),
            "not in sync"
        );
    }

    #[test]
    fn saved_state_reloads_and_bad_files_mean_a_full_pass() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = DeviceState::load(dir.path(), "containers");
        s.seen("h");
        s.visited("h", Some(st(1)), 7, 100.0, true);
        s.visited("gone", Some(st(1)), 7, 100.0, true);
        s.save(true).unwrap();
        let again = DeviceState::load(dir.path(), "containers");
        assert_eq!(again.len(), 1, "entries of DBs not seen are dropped");
        assert!(again.unchanged("h", Some(st(1)), 7, 110.0, 3600.0, 86400.0));
        // Changed across the restart: audited on the visit.
        assert!(again.audit_due("h", Some(st(2)), 110.0, 86400.0));
        assert!(!again.audit_due("h", Some(st(1)), 110.0, 86400.0));
        std::fs::write(DeviceState::path_for(dir.path(), "containers"), b"{garbage").unwrap();
        assert!(DeviceState::load(dir.path(), "containers").is_empty());
    }

    #[test]
    fn stamps_follow_commits_and_pending_rows() {
        let dir = tempfile::tempdir().unwrap();
        let h = "0123456789abcdef0123456789abcabc";
        let path = dir.path().join(format!("sda/containers/0/abc/{h}/{h}.db"));
        let b = crate::db::ContainerBroker::create(&path, "a", "c", None, 0).unwrap();
        let s1 = stamp(&path).unwrap();
        b.merge_items(
            vec![crate::swift::merge::ObjectItem::new(
                "o",
                "0000000002.00000",
                1,
                "t",
                "e",
            )],
            None,
        )
        .unwrap();
        let s2 = stamp(&path).unwrap();
        assert_ne!(s1.counter, s2.counter);
        b.put_item(&crate::swift::merge::ObjectItem::new(
            "p",
            "0000000003.00000",
            1,
            "t",
            "e",
        ))
        .unwrap();
        assert_eq!(stamp(&path), None, "pending rows");
    }
}
