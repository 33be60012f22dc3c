//! The DB walk of a replication pass (Swift's `roundrobin_datadirs`): one
//! lazy walker per device datadir, interleaved round-robin.
//!
//! Layout: `<datadir>/<partition>/<suffix>/<hash>/<hash>[_<epoch>].db`.
//! Each walker shuffles its partitions, removes empty partition and suffix
//! dirs and hash dirs holding no DB (one level per pass, since each level is
//! only found empty after the level below was removed), and never removes a
//! file.

use std::ffi::{OsStr, OsString};
use std::io;
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::db::files::db_files;

/// A partition filter: gets the partition dir name, true to walk it.
pub type PartitionFilter = Box<dyn Fn(&str) -> bool + Send>;

/// Walks `(datadir, context, filter)` triples, yielding
/// `(partition, db_path, context)` for every DB found; one item from each
/// device's walker in turn. Nothing is read before the first `next()`.
/// The partition order of every walker is drawn from `seed`.
pub fn roundrobin_datadirs<T: Clone>(
    datadirs: Vec<(PathBuf, T, PartitionFilter)>,
    seed: u64,
) -> impl Iterator<Item = (String, PathBuf, T)> {
    let mut rng = StdRng::seed_from_u64(seed);
    RoundRobin {
        its: datadirs
            .into_iter()
            .map(|(datadir, context, filter)| {
                let rng = StdRng::seed_from_u64(rng.gen());
                DatadirWalker::new(datadir, context, filter, rng)
            })
            .collect(),
        idx: 0,
    }
}

/// Swift's `looks_like_partition`: does `name` parse as a Python `int` that
/// is `>= 0`? (Surrounding whitespace, a sign and `_` between digits are
/// accepted as Python does; only ASCII digits are.)
pub fn looks_like_partition(name: &str) -> bool {
    let s = name.trim_matches(|c: char| c.is_whitespace() || ('\x1c'..='\x1f').contains(&c));
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    let b = digits.as_bytes();
    if b.is_empty() || b[0] == b'_' || b[b.len() - 1] == b'_' || digits.contains("__") {
        return false;
    }
    if !b.iter().all(|c| c.is_ascii_digit() || *c == b'_') {
        return false;
    }
    // "-0" is zero, hence >= 0.
    !negative || b.iter().all(|c| *c == b'0' || *c == b'_')
}

/// Swift's `round_robin_iter`, including its list-mutation quirk: when an
/// iterator is exhausted and removed, the one that slides into its slot is
/// skipped for the rest of that round.
struct RoundRobin<I> {
    its: Vec<I>,
    idx: usize,
}

impl<I: Iterator> Iterator for RoundRobin<I> {
    type Item = I::Item;

    fn next(&mut self) -> Option<I::Item> {
        loop {
            if self.its.is_empty() {
                return None;
            }
            if self.idx >= self.its.len() {
                self.idx = 0;
            }
            let i = self.idx;
            match self.its[i].next() {
                Some(item) => {
                    self.idx = i + 1;
                    return Some(item);
                }
                None => {
                    self.its.remove(i);
                    self.idx = i + 1;
                }
            }
        }
    }
}

/// One device's lazy walk (Swift's `walk_datadir` generator).
struct DatadirWalker<T> {
    datadir: PathBuf,
    context: T,
    filter: PartitionFilter,
    /// Shuffles the partitions.
    rng: StdRng,
    /// Shuffled partition names; `None` until the datadir is listed.
    partitions: Option<std::vec::IntoIter<String>>,
    partition: String,
    part_dir: PathBuf,
    suffixes: std::vec::IntoIter<Listed>,
    suffix_dir: PathBuf,
    hashes: std::vec::IntoIter<Listed>,
}

impl<T: Clone> DatadirWalker<T> {
    fn new(datadir: PathBuf, context: T, filter: PartitionFilter, rng: StdRng) -> Self {
        DatadirWalker {
            datadir,
            context,
            filter,
            rng,
            partitions: None,
            partition: String::new(),
            part_dir: PathBuf::new(),
            suffixes: Vec::new().into_iter(),
            suffix_dir: PathBuf::new(),
            hashes: Vec::new().into_iter(),
        }
    }

    fn list_partitions(&mut self) -> Vec<String> {
        let mut parts: Vec<String> = match list_dir(&self.datadir) {
            Ok(names) => names
                .into_iter()
                .filter_map(|n| n.name.into_string().ok())
                .filter(|n| looks_like_partition(n) && (self.filter)(n))
                .collect(),
            Err(e) => {
                tracing::warn!(path = %self.datadir.display(), error = %e, "cannot list datadir");
                Vec::new()
            }
        };
        parts.shuffle(&mut self.rng);
        parts
    }

    /// Lists `dir` for the walk; an empty dir is removed. `None` when there
    /// is nothing to walk in it.
    fn list_or_rmdir(dir: &Path) -> Option<Vec<Listed>> {
        match list_dir(dir) {
            Ok(names) if names.is_empty() => {
                if let Err(e) = std::fs::remove_dir(dir) {
                    log_fs_error("cannot remove empty dir", dir, &e);
                }
                None
            }
            Ok(names) => Some(names),
            Err(e) => {
                log_fs_error("cannot list dir", dir, &e);
                None
            }
        }
    }

    /// The DB of one hash dir, or `None` (after trying to remove the hash
    /// dir if it holds no DB).
    fn visit_hash(&self, entry: &Listed) -> Option<PathBuf> {
        let name: &OsStr = &entry.name;
        let hash_dir = self.suffix_dir.join(name);
        if !entry.is_dir(&hash_dir) {
            return None;
        }
        let mut db_name = name.to_os_string();
        db_name.push(".db");
        let object_file = hash_dir.join(db_name);
        if object_file.exists() {
            return Some(object_file);
        }
        if let Some(hash) = name.to_str() {
            if let Some(last) = db_files(&hash_dir, hash).pop() {
                return Some(last);
            }
        }
        if let Err(e) = std::fs::remove_dir(&hash_dir) {
            let not_empty = matches!(e.raw_os_error(), Some(libc::ENOTEMPTY) | Some(libc::EEXIST));
            if !not_empty {
                log_fs_error("cannot remove hash dir", &hash_dir, &e);
            }
        }
        None
    }
}

impl<T: Clone> Iterator for DatadirWalker<T> {
    type Item = (String, PathBuf, T);

    fn next(&mut self) -> Option<Self::Item> {
        if self.partitions.is_none() {
            self.partitions = Some(self.list_partitions().into_iter());
        }
        loop {
            while let Some(hash) = self.hashes.next() {
                if let Some(db) = self.visit_hash(&hash) {
                    return Some((self.partition.clone(), db, self.context.clone()));
                }
            }
            if let Some(suffix) = self.suffixes.next() {
                let suffix_dir = self.part_dir.join(&suffix.name);
                if !suffix.is_dir(&suffix_dir) {
                    continue;
                }
                if let Some(hashes) = Self::list_or_rmdir(&suffix_dir) {
                    self.hashes = hashes.into_iter();
                    self.suffix_dir = suffix_dir;
                }
                continue;
            }
            let partition = self.partitions.as_mut()?.next()?;
            let part_dir = self.datadir.join(&partition);
            if !is_dir(&part_dir) {
                continue;
            }
            if let Some(suffixes) = Self::list_or_rmdir(&part_dir) {
                self.suffixes = suffixes.into_iter();
                self.part_dir = part_dir;
                self.partition = partition;
            }
        }
    }
}

/// A directory entry as listed: its name and, when the listing tells
/// (`d_type`, no extra syscall), whether it is a directory.
struct Listed {
    name: OsString,
    dir: Option<bool>,
}

impl Listed {
    /// Whether the entry at `path` is a directory (following symlinks, as
    /// `os.path.isdir`); a `stat` only when the listing did not tell.
    fn is_dir(&self, path: &Path) -> bool {
        self.dir.unwrap_or_else(|| is_dir(path))
    }
}

fn list_dir(dir: &Path) -> io::Result<Vec<Listed>> {
    std::fs::read_dir(dir)?
        .map(|e| {
            e.map(|e| {
                // A symlink (or an unknown type) is resolved with a stat.
                let dir = e
                    .file_type()
                    .ok()
                    .filter(|t| !t.is_symlink())
                    .map(|t| t.is_dir());
                Listed {
                    name: e.file_name(),
                    dir,
                }
            })
        })
        .collect()
}

fn is_dir(path: &Path) -> bool {
    std::fs::metadata(path).map(|m| m.is_dir()).unwrap_or(false)
}

/// A vanished entry is a normal race (a DB deleted during the pass);
/// anything else is worth a warning.
fn log_fs_error(what: &str, path: &Path, e: &io::Error) {
    if e.kind() == io::ErrorKind::NotFound {
        tracing::debug!(path = %path.display(), error = %e, "{what}");
    } else {
        tracing::warn!(path = %path.display(), error = %e, "{what}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::fs;

    const H1: &str = "00000000000000000000000000000abc";
    const H2: &str = "11111111111111111111111111111abc";
    const H3: &str = "22222222222222222222222222222ghi";

    fn all() -> PartitionFilter {
        Box::new(|_| true)
    }

    fn mk_db(datadir: &Path, part: &str, hash: &str, name: &str) -> PathBuf {
        let dir = datadir.join(part).join(&hash[hash.len() - 3..]).join(hash);
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        fs::write(&p, b"x").unwrap();
        p
    }

    fn walk(dirs: Vec<(PathBuf, u32, PartitionFilter)>) -> Vec<(String, PathBuf, u32)> {
        roundrobin_datadirs(dirs, rand::random()).collect()
    }

    #[test]
    fn the_seed_decides_the_partition_order() {
        let dir = tempfile::tempdir().unwrap();
        let dd = dir.path().join("containers");
        for p in 0..40 {
            mk_db(&dd, &p.to_string(), H1, &format!("{H1}.db"));
        }
        let order = |seed: u64| -> Vec<String> {
            roundrobin_datadirs(vec![(dd.clone(), 0u32, all())], seed)
                .map(|(p, _, _)| p)
                .collect()
        };
        assert_eq!(order(7).len(), 40);
        assert_eq!(order(7), order(7));
        assert_ne!(order(7), order(8));
    }

    #[test]
    fn partition_names() {
        for ok in ["0", "123", "+5", "-0", " 7 ", "1_000", "007"] {
            assert!(looks_like_partition(ok), "{ok:?}");
        }
        for bad in [
            "-5", "", "abc", "1.5", "_1", "1_", "1__0", "-", "+", "12a", "0x10",
        ] {
            assert!(!looks_like_partition(bad), "{bad:?}");
        }
    }

    #[test]
    fn round_robin_follows_pythons_list_removal_quirk() {
        let rr = RoundRobin {
            its: vec![
                vec!["a1"].into_iter(),
                vec!["b1", "b2"].into_iter(),
                vec!["c1", "c2"].into_iter(),
            ],
            idx: 0,
        };
        // Python: round 2 removes `a`, skips `b` (slid into slot 0) and
        // visits `c`; round 3 resumes with `b`.
        assert_eq!(rr.collect::<Vec<_>>(), vec!["a1", "b1", "c1", "c2", "b2"]);
        let rr = RoundRobin {
            its: vec![vec!["a1", "a2", "a3"].into_iter(), vec!["b1"].into_iter()],
            idx: 0,
        };
        assert_eq!(rr.collect::<Vec<_>>(), vec!["a1", "b1", "a2", "a3"]);
    }

    #[test]
    fn finds_dbs_interleaving_devices() {
        let root = tempfile::tempdir().unwrap();
        let sda = root.path().join("sda/containers");
        let sdb = root.path().join("sdb/containers");
        let mut want = BTreeSet::new();
        for d in [&sda, &sdb] {
            want.insert(mk_db(d, "123", H1, &format!("{H1}.db")));
            want.insert(mk_db(d, "789", H3, &format!("{H3}.db")));
            // Stray files at each level are not DBs.
            fs::write(d.join("123").join("def.db"), b"").unwrap();
            fs::write(d.join("123/abc").join(H2), b"").unwrap();
            fs::write(d.join("456"), b"").unwrap();
        }
        let got = walk(vec![(sda.clone(), 1, all()), (sdb.clone(), 2, all())]);
        assert_eq!(got.len(), 4);
        // Strict alternation between the two devices.
        let ctxs: Vec<u32> = got.iter().map(|g| g.2).collect();
        assert_eq!(ctxs, vec![1, 2, 1, 2]);
        for (part, path, ctx) in &got {
            let dev = if *ctx == 1 { &sda } else { &sdb };
            assert!(path.starts_with(dev));
            assert!(path.starts_with(dev.join(part)));
        }
        let paths: BTreeSet<PathBuf> = got.into_iter().map(|g| g.1).collect();
        assert_eq!(paths, want);
        // Stray files are untouched.
        assert!(sda.join("456").exists());
        assert!(sda.join("123/def.db").exists());
    }

    #[test]
    fn prefers_legacy_db_then_last_epoch_db() {
        let root = tempfile::tempdir().unwrap();
        let dd = root.path().join("containers");
        let e1 = format!("{H1}_0000001000.00000.db");
        let e2 = format!("{H1}_0000002000.00000.db");
        mk_db(&dd, "1", H1, &e1);
        let last = mk_db(&dd, "1", H1, &e2);
        // Not valid DB names for this hash.
        mk_db(&dd, "1", H1, "000000000000000000000000000other.db");
        mk_db(&dd, "1", H1, &format!("{H1}_bogus.db"));
        let got = walk(vec![(dd.clone(), 0, all())]);
        assert_eq!(got, vec![("1".to_string(), last, 0)]);
        let legacy = mk_db(&dd, "1", H1, &format!("{H1}.db"));
        let got = walk(vec![(dd.clone(), 0, all())]);
        assert_eq!(got, vec![("1".to_string(), legacy, 0)]);
    }

    #[test]
    fn ignores_bad_partitions_and_honours_filter() {
        let root = tempfile::tempdir().unwrap();
        let dd = root.path().join("containers");
        for p in ["-5", "not-a-partition", "1", "2", "3"] {
            mk_db(&dd, p, H1, &format!("{H1}.db"));
        }
        let filter: PartitionFilter = Box::new(|p| p != "2");
        let parts: BTreeSet<String> = walk(vec![(dd.clone(), 0, filter)])
            .into_iter()
            .map(|g| g.0)
            .collect();
        assert_eq!(
            parts,
            ["1", "3"]
                .iter()
                .map(|s| s.to_string())
                .collect::<BTreeSet<_>>()
        );
        // Rejected partitions are not even cleaned.
        assert!(dd.join("-5").exists());
        assert!(dd.join("2").exists());
    }

    #[test]
    fn removes_empty_dirs_one_level_per_pass_never_files() {
        let root = tempfile::tempdir().unwrap();
        let dd = root.path().join("containers");
        // 5/abc/<H1>/ is empty; 6/abc/<H1>/ holds only a non-DB file;
        // 7/ is empty; 8/ghi/ is empty.
        let h1_dir = dd.join("5/abc").join(H1);
        fs::create_dir_all(&h1_dir).unwrap();
        let keep = dd.join("6/abc").join(H1);
        fs::create_dir_all(&keep).unwrap();
        fs::write(keep.join(format!("{H1}.db.pending")), b"p").unwrap();
        fs::create_dir_all(dd.join("7")).unwrap();
        fs::create_dir_all(dd.join("8/ghi")).unwrap();

        let pass = || walk(vec![(dd.clone(), 0, all())]);
        assert!(pass().is_empty());
        assert!(!h1_dir.exists());
        assert!(dd.join("5/abc").exists());
        assert!(!dd.join("7").exists());
        assert!(!dd.join("8/ghi").exists());
        assert!(dd.join("8").exists());
        assert!(keep.join(format!("{H1}.db.pending")).exists());

        assert!(pass().is_empty());
        assert!(!dd.join("5/abc").exists());
        assert!(dd.join("5").exists());
        assert!(!dd.join("8").exists());

        assert!(pass().is_empty());
        assert!(!dd.join("5").exists());
        // The non-empty hash dir and its file survive every pass.
        assert!(keep.join(format!("{H1}.db.pending")).exists());
        assert!(dd.exists());
    }

    #[test]
    fn lazy_and_tolerant_of_missing_datadirs() {
        let root = tempfile::tempdir().unwrap();
        let dd = root.path().join("containers");
        let missing = root.path().join("nope");
        let mut it = roundrobin_datadirs(vec![(missing, 1u32, all()), (dd.clone(), 2, all())], 1);
        // Created after the iterator: found, since nothing is listed yet.
        let db = mk_db(&dd, "4", H1, &format!("{H1}.db"));
        assert_eq!(it.next(), Some(("4".to_string(), db, 2)));
        assert_eq!(it.next(), None);
    }

    #[test]
    fn walker_is_send() {
        fn assert_send<S: Send>(_: &S) {}
        let it = roundrobin_datadirs(vec![(PathBuf::from("/nonexistent"), 1u32, all())], 1);
        assert_send(&it);
    }
}
