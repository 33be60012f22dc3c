//! Records of whole-DB ships a peer may still be acting on.
//!
//! A peer runs `rsync_then_merge` / `complete_rsync` on the file shipped as
//! `tmp/<local DB id>`; a second copy shipped under the same name while the
//! first is still being merged can be renamed into place unmerged (Swift
//! renames by path), losing rows written only on the peer. Before the op is
//! sent, the sender persists `<dev>/rowsync-ships/<hash>.<peer>` holding
//! the op's deadline (epoch seconds); it is removed when the peer answers.
//! A record still there after a crash keeps the next sender from shipping
//! the same DB to the same peer until the deadline passes.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use super::clock::{epoch_secs, from_epoch_secs};
use crate::db::DbError;
use crate::ring::Device;

/// The records' directory on a device (not under `tmp/`, which Swift
/// keeps for transfers in flight).
pub const SHIP_RECORDS_DIR: &str = "rowsync-ships";

/// `<device>/rowsync-ships`.
pub fn records_dir(device_path: &Path) -> PathBuf {
    device_path.join(SHIP_RECORDS_DIR)
}

/// A peer as one file-name-safe component: `<ip>_<port>_<device>` with
/// anything but ASCII letters, digits, `.`, `-` and `_` turned into `_`
/// (hashed when long).
pub fn peer_component(node: &Device) -> String {
    let raw = format!(
        "{}_{}_{}",
        node.replication_ip, node.replication_port, node.device
    );
    let safe: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if safe.len() > 150 {
        use md5::{Digest, Md5};
        hex::encode(Md5::digest(raw.as_bytes()))
    } else {
        safe
    }
}

/// The record of shipping DB `hash` from `device_path` to `node`.
pub fn record_path(device_path: &Path, hash: &str, node: &Device) -> PathBuf {
    records_dir(device_path).join(format!("{hash}.{}", peer_component(node)))
}

/// Writes the record atomically (temp file in the same directory, then
/// rename); the directory is created when missing.
pub fn write(path: &Path, deadline: SystemTime) -> Result<(), DbError> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let dir = path
        .parent()
        .ok_or_else(|| DbError::Invalid(format!("{} has no directory", path.display())))?;
    std::fs::create_dir_all(dir).map_err(|e| DbError::io(dir, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let text = format!("{:.6}\n", epoch_secs(deadline));
    if let Err(e) = std::fs::write(&tmp, text) {
        let _ = std::fs::remove_file(&tmp);
        return Err(DbError::io(&tmp, e));
    }
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(DbError::io(path, e));
    }
    Ok(())
}

/// The deadline of a record that still holds at `now`. A record whose
/// deadline passed, or that cannot be read or parsed, or whose deadline is
/// more than `max_ahead` after `now` (a clock that jumped back), is removed
/// and ignored.
pub fn active_deadline(path: &Path, now: SystemTime, max_ahead: Duration) -> Option<SystemTime> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(record = %path.display(), "unreadable ship record, removing it: {e}");
            remove(path);
            return None;
        }
    };
    let deadline = text.trim().parse::<f64>().ok().and_then(from_epoch_secs);
    match deadline {
        Some(d) if d > now && now.checked_add(max_ahead).is_none_or(|limit| d <= limit) => Some(d),
        Some(_) => {
            remove(path);
            None
        }
        None => {
            tracing::warn!(record = %path.display(), "unreadable ship record, removing it");
            remove(path);
            None
        }
    }
}

/// Removes a record (a missing one is fine).
pub fn remove(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(record = %path.display(), "cannot remove ship record: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(ip: &str, device: &str) -> Device {
        let mut d = crate::ring::dev_cluster_devices(1, ip, 6201, 1)
            .unwrap()
            .remove(0);
        d.replication_ip = ip.into();
        d.replication_port = 6201;
        d.device = device.into();
        d
    }

    #[test]
    fn names_are_one_safe_component() {
        let root = Path::new("/srv/node/sda");
        let p = record_path(root, "abc", &dev("10.0.0.2", "sdb1"));
        assert_eq!(
            p,
            Path::new("/srv/node/sda/rowsync-ships/abc.10.0.0.2_6201_sdb1")
        );
        assert_eq!(peer_component(&dev("::1", "d/../x")), "__1_6201_d_.._x");
        let long = peer_component(&dev("10.0.0.2", &"x".repeat(300)));
        assert_eq!(long.len(), 32);
    }

    #[test]
    fn deadlines_hold_until_they_pass() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("rowsync-ships/h.peer");
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let day = Duration::from_secs(86_400);
        assert_eq!(active_deadline(&p, now, day), None);
        let deadline = now + Duration::from_secs(30);
        write(&p, deadline).unwrap();
        let left: Vec<_> = std::fs::read_dir(p.parent().unwrap()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temp file left");
        assert_eq!(active_deadline(&p, now, day), Some(deadline));
        assert!(p.exists());
        // Too far ahead: a clock that jumped back.
        assert_eq!(active_deadline(&p, now, Duration::from_secs(10)), None);
        assert!(!p.exists());
        write(&p, deadline).unwrap();
        assert_eq!(active_deadline(&p, deadline, day), None);
        assert!(!p.exists(), "expired: removed");
        std::fs::write(&p, "not a time").unwrap();
        assert_eq!(active_deadline(&p, now, day), None);
        assert!(!p.exists(), "unreadable: removed");
        std::fs::create_dir(&p).unwrap();
        assert_eq!(active_deadline(&p, now, day), None);
        remove(&p);
        remove(&p);
    }
}
