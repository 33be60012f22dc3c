//! Finding DBs on a node's devices without touching anything:
//! `<devices>/<device>/<datadir>/<part>/<suffix>/<hash>/<hash>[_<epoch>].db`
//! (`<datadir>`: `containers` or `accounts`).

use std::path::{Path, PathBuf};

use crate::db::files::db_files;

/// One DB found on a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundDb {
    pub device: String,
    pub partition: u32,
    pub hash: String,
    /// The current DB file of the hash dir.
    pub path: PathBuf,
}

fn subdirs(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(String, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| Some((e.file_name().into_string().ok()?, e.path())))
        .collect();
    out.sort();
    out
}

/// Every DB in `<devices>/<device>/<datadir>` for each of `device_names`,
/// sorted by device, partition and hash. Directories that do not look like
/// partitions or hash dirs are skipped; nothing is created or removed.
pub fn list_dbs(devices: &Path, datadir: &str, device_names: &[String]) -> Vec<FoundDb> {
    let mut found = Vec::new();
    for dev in device_names {
        let datadir = devices.join(dev).join(datadir);
        let mut parts: Vec<(u32, PathBuf)> = subdirs(&datadir)
            .into_iter()
            .filter_map(|(name, p)| Some((name.parse::<u32>().ok()?, p)))
            .collect();
        parts.sort();
        for (partition, part_dir) in parts {
            for (suffix, suffix_dir) in subdirs(&part_dir) {
                for (hash, hash_dir) in subdirs(&suffix_dir) {
                    if !hash.ends_with(&suffix) {
                        continue;
                    }
                    if let Some(path) = db_files(&hash_dir, &hash).pop() {
                        found.push(FoundDb {
                            device: dev.clone(),
                            partition,
                            hash,
                            path,
                        });
                    }
                }
            }
        }
    }
    found
}

/// The partition of a DB file from its path, when the path has Swift's
/// shape `<part>/<suffix>/<hash>/<hash>[_<epoch>].db` (suffix = the last
/// three characters of the hash).
pub fn partition_from_path(db_file: &Path) -> Option<u32> {
    let name = db_file.file_name()?.to_str()?;
    let (hash, _) = crate::db::files::parse_db_filename(name)?;
    let hash_dir = db_file.parent()?;
    if hash_dir.file_name()?.to_str()? != hash {
        return None;
    }
    let suffix_dir = hash_dir.parent()?;
    let suffix = suffix_dir.file_name()?.to_str()?;
    if suffix.len() != 3 || !hash.ends_with(suffix) {
        return None;
    }
    suffix_dir.parent()?.file_name()?.to_str()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_from_paths() {
        let h = "ebc55d9bb05fefafe2d4fda7424e29c3";
        let p = PathBuf::from(format!("/srv/sdb1/containers/943/9c3/{h}/{h}.db"));
        assert_eq!(partition_from_path(&p), Some(943));
        let p = PathBuf::from(format!("/x/943/9c3/{h}/{h}_1700000000.00000.db"));
        assert_eq!(partition_from_path(&p), Some(943));
        let p = PathBuf::from(format!("/x/943/abc/{h}/{h}.db"));
        assert_eq!(partition_from_path(&p), None);
        assert_eq!(partition_from_path(Path::new("/tmp/copy.db")), None);
        let p = PathBuf::from(format!("/x/p/9c3/{h}/{h}.db"));
        assert_eq!(partition_from_path(&p), None);
    }

    #[test]
    fn lists_only_dbs() {
        let dir = tempfile::tempdir().unwrap();
        let h = "ebc55d9bb05fefafe2d4fda7424e29c3";
        let hd = dir.path().join(format!("sdb1/containers/943/9c3/{h}"));
        std::fs::create_dir_all(&hd).unwrap();
        std::fs::write(hd.join(format!("{h}.db")), b"").unwrap();
        std::fs::create_dir_all(dir.path().join("sdb1/containers/tmp/abc")).unwrap();
        std::fs::create_dir_all(dir.path().join("sdb1/containers/7/abc/empty-abc")).unwrap();
        let found = list_dbs(dir.path(), "containers", &["sdb1".into(), "sdb9".into()]);
        assert!(list_dbs(dir.path(), "accounts", &["sdb1".into()]).is_empty());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].partition, 943);
        assert_eq!(found[0].hash, h);
        assert!(dir.path().join("sdb1/containers/7/abc/empty-abc").is_dir());
    }
}
