//! The recon cache file (`<recon_cache_path>/container.recon`): one line of
//! JSON shared by several Swift daemons, updated under an exclusive `flock`
//! on the file itself (Swift's `dump_recon_cache` / `put_recon_cache_entry`).

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::stats::Stats;
use crate::swift::pyjson;

/// Swift's default `lock_timeout` for `dump_recon_cache`.
pub const RECON_LOCK_TIMEOUT: Duration = Duration::from_secs(2);

/// Merges `updates` into the recon cache file, Swift's `dump_recon_cache`
/// with its default 2 s lock timeout.
pub fn dump_recon_cache(cache_file: &Path, updates: &Map<String, Value>) -> io::Result<()> {
    dump_recon_cache_with_timeout(cache_file, updates, RECON_LOCK_TIMEOUT)
}

/// [`dump_recon_cache`] with an explicit lock timeout.
///
/// Creates the directory if needed, locks the cache file (created if
/// missing), reads its first line (empty or invalid JSON → `{}`), applies
/// [`put_recon_cache_entry`] for every update, writes the result as one
/// line of sorted, ASCII-only Python-style JSON to a temp file in the same
/// directory and renames it over the cache file.
///
/// Like Swift, a first line that is valid JSON but not an object is an
/// error (nothing is written).
pub fn dump_recon_cache_with_timeout(
    cache_file: &Path,
    updates: &Map<String, Value>,
    lock_timeout: Duration,
) -> io::Result<()> {
    let dir = match cache_file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let locked = lock_file(cache_file, lock_timeout)?;

    let mut entry = read_entry(&locked)?;
    for (key, item) in updates {
        put_recon_cache_entry(&mut entry, key, item);
    }
    let mut line = pyjson::dumps_sorted(&Value::Object(entry));
    line.push('\n');

    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(line.as_bytes())?;
    tmp.persist(cache_file).map_err(|e| e.error)?;
    // The lock (on the old inode) is released when `locked` drops, after
    // the rename; waiters then see a different inode and reopen.
    drop(locked);
    Ok(())
}

/// Reads a recon cache file's first line as a JSON object; a missing,
/// empty or invalid file gives an empty map (Swift's `load_recon_cache`).
pub fn load_recon_cache(cache_file: &Path) -> Map<String, Value> {
    let Ok(f) = File::open(cache_file) else {
        return Map::new();
    };
    match read_entry(&f) {
        Ok(m) => m,
        Err(_) => Map::new(),
    }
}

/// Swift's `put_recon_cache_entry`: a non-dict `item` replaces `key`; an
/// empty dict removes `key`; a non-empty dict is merged one level deep into
/// the existing dict under `key` (replacing it if it isn't a dict), where
/// each sub-key whose new value is `{}` is removed and every other sub-key
/// is replaced wholesale (no deeper merge).
pub fn put_recon_cache_entry(entry: &mut Map<String, Value>, key: &str, item: &Value) {
    let Value::Object(item) = item else {
        entry.insert(key.to_string(), item.clone());
        return;
    };
    if item.is_empty() {
        entry.remove(key);
        return;
    }
    if !matches!(entry.get(key), Some(Value::Object(_))) {
        entry.insert(key.to_string(), Value::Object(Map::new()));
    }
    if let Some(Value::Object(existing)) = entry.get_mut(key) {
        for (k, v) in item {
            if is_empty_object(v) {
                existing.remove(k);
            } else {
                existing.insert(k.clone(), v.clone());
            }
        }
    }
}

/// The three keys the replicator merges into the recon cache at the end of
/// a pass (`_report_stats`).
pub fn replication_recon_update(stats: &Stats, elapsed: f64, now: f64) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("replication_stats".to_string(), stats.to_json());
    m.insert("replication_time".to_string(), Value::from(elapsed));
    m.insert("replication_last".to_string(), Value::from(now));
    m
}

fn is_empty_object(v: &Value) -> bool {
    matches!(v, Value::Object(m) if m.is_empty())
}

/// The existing entry: the first line as a JSON object. Empty, unreadable
/// (non-UTF-8) or invalid JSON → `{}`; valid JSON that is not an object is
/// an error, as it is in Swift.
fn read_entry(file: &File) -> io::Result<Map<String, Value>> {
    let mut raw = Vec::new();
    BufReader::new(file).read_until(b'\n', &mut raw)?;
    if raw.is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(&raw) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "recon cache entry is not a JSON object",
        )),
        Err(_) => Ok(Map::new()),
    }
}

/// Swift's `lock_file(path, timeout, unlink=False)`: open (creating) the
/// file, poll an exclusive non-blocking `flock` until `timeout`, and start
/// over if the path no longer names the locked inode (another writer
/// renamed a new file over it while we waited).
fn lock_file(path: &Path, timeout: Duration) -> io::Result<File> {
    loop {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let start = Instant::now();
        loop {
            // SAFETY: flock on a valid file descriptor owned by `file`.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc == 0 {
                break;
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EWOULDBLOCK) | Some(libc::EINTR) => {}
                _ => return Err(err),
            }
            if start.elapsed() >= timeout {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{} seconds: {}", timeout.as_secs_f64(), path.display()),
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        match std::fs::metadata(path) {
            Ok(m) if m.ino() == file.metadata()?.ino() => return Ok(file),
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap()
    }

    #[test]
    fn float_repr_matches_python() {
        let cases = [
            (1700000000.123456, "1700000000.123456"),
            (0.5, "0.5"),
            (12.0, "12.0"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (100.0, "100.0"),
            (246.813576, "246.813576"),
            (0.1 + 0.2, "0.30000000000000004"),
            (0.0001, "0.0001"),
            (1e-5, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (1e16, "1e+16"),
            (1234567890123456.7, "1234567890123456.8"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (1e22, "1e+22"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (-2.5, "-2.5"),
            (1286065912525275.2, "1286065912525275.2"),
            (-760296827402178.2, "-760296827402178.2"),
            (1e15, "1000000000000000.0"),
            (123.0e-20, "1.23e-18"),
        ];
        for (x, want) in cases {
            assert_eq!(pyjson::float_repr(x), want, "{x:e}");
        }
    }

    #[test]
    fn dumps_sorted_matches_python_json_dumps() {
        // Expected text from Python 3:
        // json.dumps(..., sort_keys=True, ensure_ascii=True)
        let start = 1234.5678;
        let now = start + 246.813576;
        let mut s = Stats::new(start);
        s.attempted = 30;
        s.success = 25;
        s.remove = 9;
        s.diff = 5;
        s.diff_capped = 4;
        s.empty = 7;
        s.hashmatch = 8;
        s.no_change = 6;
        s.remote_merge = 2;
        s.rsync = 3;
        s.ts_repl = 10;
        s.add_failure("10.0.0.1", "sdb");
        let mut m = replication_recon_update(&s, now - start, now);
        m.insert("x".into(), json!("caf\u{e9}\u{7f}"));
        assert_eq!(
            pyjson::dumps_sorted(&Value::Object(m)),
            r#"{"replication_last": 1481.381376, "replication_stats": {"attempted": 30, "deferred": 0, "diff": 5, "diff_capped": 4, "empty": 7, "failure": 1, "failure_nodes": {"10.0.0.1": {"sdb": 1}}, "hashmatch": 8, "no_change": 6, "remote_merge": 2, "remove": 9, "rsync": 3, "start": 1234.5678, "success": 25, "ts_repl": 10}, "replication_time": 246.813576, "x": "caf\u00e9\u007f"}"#
        );
    }

    #[test]
    fn recon_file_for_swift_test_stats_zero_case() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("container.recon");
        let s = Stats::new(1234.5678);
        dump_recon_cache(&path, &replication_recon_update(&s, 0.0, 1234.5678)).unwrap();
        // No failures: failure_nodes ({}) is dropped from replication_stats.
        assert_eq!(
            read(&path),
            "{\"replication_last\": 1234.5678, \"replication_stats\": {\"attempted\": 0, \
             \"deferred\": 0, \"diff\": 0, \"diff_capped\": 0, \"empty\": 0, \"failure\": 0, \
             \"hashmatch\": 0, \"no_change\": 0, \"remote_merge\": 0, \"remove\": 0, \
             \"rsync\": 0, \"start\": 1234.5678, \"success\": 0, \"ts_repl\": 0}, \
             \"replication_time\": 0.0}\n"
        );
    }

    #[test]
    fn put_entry_follows_swift() {
        let mut e = obj(json!({
            "a": {"x": 1, "y": {"deep": 1}, "z": 3},
            "b": 5,
            "c": {"k": 1},
            "d": [1],
        }));
        // Non-dict replaces.
        put_recon_cache_entry(&mut e, "b", &json!("s"));
        assert_eq!(e["b"], json!("s"));
        // Dict merges one level; {} removes a sub-key; deeper dicts replace.
        put_recon_cache_entry(&mut e, "a", &json!({"x": 2, "y": {"new": 2}, "z": {}}));
        assert_eq!(e["a"], json!({"x": 2, "y": {"new": 2}}));
        // {} removes the key.
        put_recon_cache_entry(&mut e, "c", &json!({}));
        assert!(!e.contains_key("c"));
        put_recon_cache_entry(&mut e, "missing", &json!({}));
        assert!(!e.contains_key("missing"));
        // Dict over a non-dict replaces it with a fresh dict.
        put_recon_cache_entry(&mut e, "d", &json!({"q": 1, "r": {}}));
        assert_eq!(e["d"], json!({"q": 1}));
        // A dict whose only values are {} leaves an empty dict behind.
        put_recon_cache_entry(&mut e, "new", &json!({"gone": {}}));
        assert_eq!(e["new"], json!({}));
    }

    #[test]
    fn merges_with_other_daemons_keys_and_drops_failure_nodes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("container.recon");
        std::fs::write(
            &path,
            "{\"container_auditor_pass_completed\": 12.5, \"replication_stats\": \
             {\"failure_nodes\": {\"10.0.0.9\": {\"sdz\": 4}}, \"old_key\": 1}}\n",
        )
        .unwrap();
        let s = Stats::new(100.0);
        dump_recon_cache(&path, &replication_recon_update(&s, 2.0, 102.0)).unwrap();
        let got = load_recon_cache(&path);
        assert_eq!(got["container_auditor_pass_completed"], json!(12.5));
        let rs = got["replication_stats"].as_object().unwrap();
        assert!(!rs.contains_key("failure_nodes"));
        assert_eq!(rs["old_key"], json!(1));
        assert_eq!(rs["attempted"], json!(0));
        assert_eq!(got["replication_time"], json!(2.0));
        assert_eq!(got["replication_last"], json!(102.0));

        let mut s = Stats::new(100.0);
        s.add_failure("10.0.0.1", "sda");
        dump_recon_cache(&path, &replication_recon_update(&s, 2.0, 102.0)).unwrap();
        let got = load_recon_cache(&path);
        assert_eq!(
            got["replication_stats"]["failure_nodes"],
            json!({"10.0.0.1": {"sda": 1}})
        );
        let text = read(&path);
        assert!(text.ends_with("}\n"));
        assert_eq!(text.lines().count(), 1);
    }

    #[test]
    fn invalid_or_empty_existing_file_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("container.recon");
        let up = obj(json!({"k": 1}));
        let junks: [&[u8]; 4] = [b"", b"not json\n", b"{\"a\": \n", b"\xff\xfegarbage\n"];
        for junk in junks {
            std::fs::write(&path, junk).unwrap();
            dump_recon_cache(&path, &up).unwrap();
            assert_eq!(read(&path), "{\"k\": 1}\n", "{junk:?}");
        }
        // Only the first line counts.
        std::fs::write(&path, "{\"a\": 1}\n{\"b\": 2}\n").unwrap();
        dump_recon_cache(&path, &up).unwrap();
        assert_eq!(read(&path), "{\"a\": 1, \"k\": 1}\n");
        // Valid JSON that is not an object is an error, file untouched.
        std::fs::write(&path, "[1, 2]\n").unwrap();
        assert!(dump_recon_cache(&path, &up).is_err());
        assert_eq!(read(&path), "[1, 2]\n");
    }

    #[test]
    fn lock_timeout_when_held() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("container.recon");
        let held = lock_file(&path, Duration::from_millis(50)).unwrap();
        let err =
            dump_recon_cache_with_timeout(&path, &obj(json!({"k": 1})), Duration::from_millis(50))
                .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        drop(held);
        dump_recon_cache_with_timeout(&path, &obj(json!({"k": 1})), Duration::from_millis(50))
            .unwrap();
        assert_eq!(read(&path), "{\"k\": 1}\n");
    }

    #[test]
    fn concurrent_writers_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("container.recon");
        let n = 25;
        let handles: Vec<_> = ["a", "b"]
            .into_iter()
            .map(|who| {
                let path = path.clone();
                std::thread::spawn(move || {
                    for i in 0..n {
                        let up = obj(json!({
                            format!("{who}_{i}"): i,
                            "shared": {who: i},
                        }));
                        dump_recon_cache(&path, &up).unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let got = load_recon_cache(&path);
        for who in ["a", "b"] {
            for i in 0..n {
                assert_eq!(got[&format!("{who}_{i}")], json!(i), "{who}_{i}");
            }
            assert_eq!(got["shared"][who], json!(n - 1));
        }
        // No temp files left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("container.recon")]);
    }
}
