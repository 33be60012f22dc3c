//! DB file names and locations:
//! `<devices>/<device>/<datadir>/<part>/<hash[-3:]>/<hash>/<hash>[_<epoch>].db`
//! with `<datadir>` `containers` or `accounts` (the kind's `DATADIR`).

use std::path::{Path, PathBuf};

use super::{DbError, Result};
use crate::swift::hash::is_valid_hash;
use crate::swift::Timestamp;

/// Splits a DB file name into `(hash, epoch)`: `<hash>[_<epoch>].db`.
/// Returns `None` for names that are not DB file names.
pub fn parse_db_filename(name: &str) -> Option<(&str, Option<&str>)> {
    let stem = name.strip_suffix(".db")?;
    match stem.split_once('_') {
        Some((hash, epoch)) => Some((hash, Some(epoch))),
        None => Some((stem, None)),
    }
}

/// Is `name` a valid DB file name for `hash` (`<hash>.db` or
/// `<hash>_<normal timestamp>.db`)?
pub fn is_db_filename_for(name: &str, hash: &str) -> bool {
    match parse_db_filename(name) {
        Some((h, None)) => h == hash,
        Some((h, Some(epoch))) => {
            h == hash && Timestamp::parse(epoch).is_ok() && !epoch.contains('_')
        }
        None => false,
    }
}

/// All valid DB files for `hash` in `dir`, sorted (the last is current).
pub fn db_files(dir: &Path, hash: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| is_db_filename_for(n, hash))
        .collect();
    names.sort();
    names.into_iter().map(|n| dir.join(n)).collect()
}

/// Whether `dir` holds a DB file of `hash`: one `stat` of the legacy
/// name, a listing only when that is absent (epoch-named DBs).
pub fn has_db(dir: &Path, hash: &str) -> bool {
    dir.join(format!("{hash}.db")).is_file() || !db_files(dir, hash).is_empty()
}

/// The hash dir of a DB in `datadir` on a device.
pub fn hash_dir(device_path: &Path, datadir: &str, partition: u32, hash: &str) -> PathBuf {
    let suffix = &hash[hash.len().saturating_sub(3)..];
    device_path
        .join(datadir)
        .join(partition.to_string())
        .join(suffix)
        .join(hash)
}

/// The legacy (epoch-less) DB path of a DB in `datadir` on a device.
pub fn db_path(device_path: &Path, datadir: &str, partition: u32, hash: &str) -> PathBuf {
    hash_dir(device_path, datadir, partition, hash).join(format!("{hash}.db"))
}

/// The device directory of a DB file: four levels above its directory
/// (`<device>/<datadir>/<part>/<suffix>/<hash>/file`).
pub fn device_path_of(db_file: &Path) -> Option<PathBuf> {
    db_file.ancestors().nth(5).map(Path::to_path_buf)
}

/// The hash of a DB file from its name.
pub fn hash_of(db_file: &Path) -> Option<String> {
    let name = db_file.file_name()?.to_str()?;
    let (hash, _) = parse_db_filename(name)?;
    Some(hash.to_string())
}

/// The pending file of a DB: always `<hash>.db.pending` beside it.
pub fn pending_path(db_file: &Path) -> PathBuf {
    let dir = db_file.parent().unwrap_or(Path::new("."));
    match hash_of(db_file) {
        Some(hash) => dir.join(format!("{hash}.db.pending")),
        None => {
            let mut p = db_file.as_os_str().to_owned();
            p.push(".pending");
            PathBuf::from(p)
        }
    }
}

/// Moves a DB's whole hash dir to `<device>/quarantined/<datadir>/<hash>`
/// (with a random suffix if that exists). Returns the new location.
pub fn quarantine(db_file: &Path) -> Result<PathBuf> {
    fail::fail_point!("quarantine", |a| Err(super::injected(db_file, a)));
    let hash_dir = db_file
        .parent()
        .ok_or_else(|| DbError::Invalid(format!("{} has no directory", db_file.display())))?;
    let device = device_path_of(db_file)
        .ok_or_else(|| DbError::Invalid(format!("{} is not under a device", db_file.display())))?;
    let name = hash_dir
        .file_name()
        .ok_or_else(|| DbError::Invalid(format!("{} has no hash dir", db_file.display())))?;
    let datadir = db_file
        .ancestors()
        .nth(4)
        .and_then(Path::file_name)
        .ok_or_else(|| DbError::Invalid(format!("{} is not in a datadir", db_file.display())))?;
    let qdir = device.join("quarantined").join(datadir);
    std::fs::create_dir_all(&qdir).map_err(|e| DbError::io(&qdir, e))?;
    let mut target = qdir.join(name);
    if target.exists() {
        let mut n = name.to_os_string();
        n.push(format!("-{}", uuid::Uuid::new_v4().simple()));
        target = qdir.join(n);
    }
    std::fs::rename(hash_dir, &target).map_err(|e| DbError::io(hash_dir, e))?;
    tracing::error!(
        from = %hash_dir.display(),
        to = %target.display(),
        "quarantined DB"
    );
    Ok(target)
}

/// fsyncs a file, or a directory (after a rename into it).
pub fn fsync_path(path: &Path) -> Result<()> {
    let f = std::fs::File::open(path).map_err(|e| DbError::io(path, e))?;
    f.sync_all().map_err(|e| DbError::io(path, e))
}

/// A name that is safe as a single path component (no separators, not
/// `.`/`..`, not empty, no NUL).
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.contains('\0')
        && name.len() <= 255
}

/// Is `s` a hash suitable for a DB name?
pub fn is_db_hash(s: &str) -> bool {
    is_valid_hash(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let h = "0123456789abcdef0123456789abcdef";
        assert!(is_db_filename_for(&format!("{h}.db"), h));
        assert!(is_db_filename_for(&format!("{h}_1700000000.00000.db"), h));
        assert!(!is_db_filename_for(&format!("{h}_x.db"), h));
        assert!(!is_db_filename_for(&format!("{h}.db.pending"), h));
        assert!(!is_db_filename_for("other.db", h));
        let p = Path::new("/srv/node/sdb1/containers/1/def/h/h_1.00000.db");
        assert_eq!(device_path_of(p).unwrap(), Path::new("/srv/node/sdb1"));
        assert_eq!(
            pending_path(p),
            Path::new("/srv/node/sdb1/containers/1/def/h/h.db.pending")
        );
        assert!(is_plain_name("abc-1") && !is_plain_name("../x") && !is_plain_name("a/b"));
    }
}
