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
    /// The file's inode (a replaced file is another DB, whatever its times).
    #[serde(default)]
    pub ino: u64,
    /// SQLite's file change counter (header bytes 24..28); `None` in a
    /// stamp of a settled file (see [`SETTLE`]), which is compared by its
    /// inode, size and mtime alone.
    pub counter: Option<u32>,
}

/// A file not modified for this long is settled: any later write moves its
/// mtime past the recorded one (file times are at most a clock tick
/// coarse), so the change counter need not be read to see it. Within it, two
/// writes may share an mtime and the counter tells them apart.
pub const SETTLE: std::time::Duration = std::time::Duration::from_secs(2);

impl Stamp {
    /// Was the file settled when this stamp was taken, or is it now?
    pub fn settled(&self) -> bool {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        now - self.mtime_ns > SETTLE.as_nanos() as i128
    }

    fn same_file(&self, other: &Stamp) -> bool {
        self.size == other.size && self.mtime_ns == other.mtime_ns && self.ino == other.ino
    }
}

/// The stamp of `db_file`, if its pending file is empty (a DB with
/// pending rows is never "unchanged"). Two `stat`s; the DB is opened for
/// its change counter only when the file is not settled, or when `known`
/// (the stamp it is to be compared with) holds a counter.
pub fn stamp(db_file: &Path, known: Option<&Stamp>) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let pending = files::pending_path(db_file);
    if std::fs::metadata(&pending).is_ok_and(|m| m.len() > 0) {
        return None;
    }
    let meta = std::fs::metadata(db_file).ok()?;
    let mut s = Stamp {
        size: meta.len(),
        mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
        ino: meta.ino(),
        counter: None,
    };
    let compare_counter = known.is_some_and(|k| k.counter.is_some() && k.same_file(&s));
    if !s.settled() || compare_counter {
        let mut f = std::fs::File::open(db_file).ok()?;
        let mut header = [0u8; 28];
        f.read_exact(&mut header).ok()?;
        // Replaced between the stat and the open: not the file stamped.
        if f.metadata().ok()?.ino() != s.ino {
            return None;
        }
        s.counter = Some(u32::from_be_bytes([
            header[24], header[25], header[26], header[27],
        ]));
    }
    Some(s)
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
    /// The state file as this process last read or wrote it.
    file: Option<FileId>,
}

/// A file's identity and version: inode, size, mtime.
type FileId = (u64, u64, i128);

fn file_id(path: &Path) -> Option<FileId> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((
        m.ino(),
        m.len(),
        m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
    ))
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
        let file = file_id(&path);
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
            file,
        }
    }

    /// Is the state file still the one this state was loaded from or last
    /// saved to (so this state, kept in memory between passes, is at least
    /// as new)? A file deleted, replaced or rewritten by anyone else: no.
    pub fn is_current(&self) -> bool {
        file_id(&self.path) == self.file
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

    /// The DB's stamp when last in sync with every peer (what a fresh
    /// stamp is compared with).
    pub fn in_sync(&self, hash: &str) -> Option<&Stamp> {
        self.entries.get(hash).and_then(|e| e.in_sync.as_ref())
    }

    /// After a skip: a recorded stamp with a change counter whose file has
    /// since settled (and still matched, counter included) drops the
    /// counter, so later passes compare it without opening the file.
    pub fn settle(&mut self, hash: &str, fresh: Option<Stamp>) {
        let Some(fresh) = fresh.filter(|f| f.counter.is_some() && f.settled()) else {
            return;
        };
        if let Some(e) = self.entries.get_mut(hash) {
            if e.in_sync == Some(fresh) {
                e.in_sync = Some(Stamp {
                    counter: None,
                    ..fresh
                });
                self.dirty = true;
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
            self.file = file_id(&self.path);
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
            ino: 5,
            counter: Some(c),
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

    /// One committed row in `b`.
    fn add_row(b: &crate::db::ContainerBroker) {
        let row = crate::swift::merge::ObjectItem::new("o", "0000000002.00000", 1, "t", "e");
        b.merge_items(vec![row], None).unwrap();
    }

    #[test]
    fn stamps_follow_commits_and_pending_rows() {
        let dir = tempfile::tempdir().unwrap();
        let h = "0123456789abcdef0123456789abcabc";
        let path = dir.path().join(format!("sda/containers/0/abc/{h}/{h}.db"));
        let b = crate::db::ContainerBroker::create(&path, "a", "c", None, 0).unwrap();
        let s1 = stamp(&path, None).unwrap();
        assert!(s1.counter.is_some(), "a fresh file's counter is read");
        add_row(&b);
        let s2 = stamp(&path, Some(&s1)).unwrap();
        assert_ne!(s1.counter, s2.counter);
        b.put_item(&crate::swift::merge::ObjectItem::new(
            "p",
            "0000000003.00000",
            1,
            "t",
            "e",
        ))
        .unwrap();
        assert_eq!(stamp(&path, Some(&s2)), None, "pending rows");
    }

    #[test]
    fn settled_files_are_compared_without_their_counter() {
        let dir = tempfile::tempdir().unwrap();
        let h = "0123456789abcdef0123456789abcabc";
        let path = dir.path().join(format!("sda/containers/0/abc/{h}/{h}.db"));
        let b = crate::db::ContainerBroker::create(&path, "a", "c", None, 0).unwrap();
        let f = std::fs::File::options().write(true).open(&path).unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        f.set_modified(old).unwrap();
        let recent = stamp(&path, None).unwrap();
        assert!(recent.settled());
        assert_eq!(recent.counter, None, "a settled file is not opened");
        // A recorded stamp with a counter is compared with one.
        let with_counter = Stamp {
            counter: Some(7),
            ..recent
        };
        let fresh = stamp(&path, Some(&with_counter)).unwrap();
        assert!(fresh.counter.is_some());
        // settle() drops the counter of a matching recorded stamp.
        let mut s = DeviceState::load(dir.path(), "containers");
        s.visited(h, Some(fresh), 7, 100.0, true);
        s.settle(h, Some(fresh));
        assert_eq!(s.in_sync(h).and_then(|x| x.counter), None);
        assert!(s.unchanged(h, stamp(&path, s.in_sync(h)), 7, 110.0, 3600.0, 86400.0));
        // Any write moves the mtime past a settled stamp's.
        add_row(&b);
        let after = stamp(&path, s.in_sync(h)).unwrap();
        assert!(!s.unchanged(h, Some(after), 7, 110.0, 3600.0, 86400.0));
    }
}
