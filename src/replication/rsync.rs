//! Whole-DB shipping with rsync (Swift's `_rsync_file` / `_rsync_db`), and
//! the tmp-file reclaim that goes with it (`_reclaim_tmp_dbs`, run_once's
//! `<dev>/tmp` cleanup).

use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, SystemTime};

/// Why an rsync run failed. `Display` is the line Swift logs (it adds
/// `, path: <path>, db: <db file>` through its DB logger).
#[derive(Debug, thiserror::Error)]
pub enum RsyncError {
    /// Non-zero exit; `rc` is Python's `returncode` (`-signal` if killed).
    #[error("ERROR rsync failed with {rc}: {}", py_list_repr(argv))]
    Failed { rc: i32, argv: Vec<String> },
    #[error("ERROR rsync timed out after {:.1}s: {}", timeout.as_secs_f64(), py_list_repr(argv))]
    Timeout {
        timeout: Duration,
        argv: Vec<String>,
    },
    #[error("ERROR running rsync: {source}: {}", py_list_repr(argv))]
    Io {
        argv: Vec<String>,
        #[source]
        source: std::io::Error,
    },
}

impl RsyncError {
    /// The exit code for [`RsyncError::Failed`].
    pub fn returncode(&self) -> Option<i32> {
        match self {
            RsyncError::Failed { rc, .. } => Some(*rc),
            _ => None,
        }
    }
}

/// Swift's rsync argv:
/// `rsync --quiet --no-motd --timeout=<ceil(node_timeout)>
/// --contimeout=<ceil(conn_timeout)> [--whole-file] [--compress] <local> <remote>`.
/// `compress` is `rsync_compress && different_region`, decided by the caller.
pub fn rsync_args(
    node_timeout: f64,
    conn_timeout: f64,
    compress: bool,
    whole_file: bool,
    local_path: &Path,
    remote: &str,
) -> Vec<String> {
    let mut args = vec![
        "rsync".to_string(),
        "--quiet".to_string(),
        "--no-motd".to_string(),
        format!("--timeout={}", node_timeout.ceil() as i64),
        format!("--contimeout={}", conn_timeout.ceil() as i64),
    ];
    if whole_file {
        args.push("--whole-file".to_string());
    }
    if compress {
        args.push("--compress".to_string());
    }
    args.push(local_path.to_string_lossy().into_owned());
    args.push(remote.to_string());
    args
}

/// The rsync destination of a shipped DB: `<module>/<device>/tmp/<local_id>`.
pub fn remote_path(module: &str, device: &str, local_id: &str) -> String {
    format!("{module}/{device}/tmp/{local_id}")
}

/// Runs `args` (`args[0]` is the program) and waits up to `timeout`; the
/// child is killed on timeout or if the future is dropped. Stdin is
/// `/dev/null`; stdout and stderr are inherited, as in Swift.
pub async fn run_rsync(args: &[String], timeout: Duration) -> Result<(), RsyncError> {
    let io_err = |source| RsyncError::Io {
        argv: args.to_vec(),
        source,
    };
    let Some((program, rest)) = args.split_first() else {
        return Err(io_err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "empty argv",
        )));
    };
    let mut child = tokio::process::Command::new(program)
        .args(rest)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(io_err)?;
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(RsyncError::Failed {
            rc: returncode(status),
            argv: args.to_vec(),
        }),
        Ok(Err(e)) => Err(io_err(e)),
        Err(_) => {
            let _ = child.start_kill();
            let _ = child.wait().await;
            Err(RsyncError::Timeout {
                timeout,
                argv: args.to_vec(),
            })
        }
    }
}

/// Python's `Popen.returncode`: the exit code, or `-signal`.
fn returncode(status: ExitStatus) -> i32 {
    match (status.code(), status.signal()) {
        (Some(c), _) => c,
        (None, Some(s)) => -s,
        (None, None) => -1,
    }
}

/// `_reclaim_tmp_dbs`: removes the files in a DB's hash dir whose names end
/// in `.tmp` and whose mtime is before `older_than`. Returns how many were
/// removed; errors (missing dir, races) are ignored.
pub fn reclaim_tmp_files(dir: &Path, older_than: SystemTime) -> usize {
    let paths = list_paths(dir).into_iter().filter(|p| {
        p.file_name()
            .is_some_and(|n| n.as_bytes().ends_with(b".tmp"))
    });
    unlink_paths_older_than(paths, older_than)
}

/// run_once's `unlink_older_than(<dev>/tmp, now - reclaim_age)`: removes
/// every file in `dir` whose mtime is before `older_than` (directories are
/// left alone). Returns how many were removed.
pub fn reclaim_device_tmp(dir: &Path, older_than: SystemTime) -> usize {
    unlink_paths_older_than(list_paths(dir), older_than)
}

/// Swift's `listdir` (a missing dir is empty), as full paths.
fn list_paths(dir: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .map(|e| dir.join(e.file_name()))
            .collect(),
        Err(e) => {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %dir.display(), error = %e, "cannot list dir");
            }
            Vec::new()
        }
    }
}

/// Swift's `unlink_paths_older_than`: mtime (following symlinks) strictly
/// before the cutoff → unlink; every error is ignored.
fn unlink_paths_older_than(
    paths: impl IntoIterator<Item = PathBuf>,
    older_than: SystemTime,
) -> usize {
    let mut removed = 0;
    for p in paths {
        let old = std::fs::metadata(&p)
            .and_then(|m| m.modified())
            .is_ok_and(|m| m < older_than);
        if old && std::fs::remove_file(&p).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Python's `repr()` of a list of strings, as in Swift's `%r` of the argv.
pub fn py_list_repr(items: &[String]) -> String {
    let parts: Vec<String> = items.iter().map(|s| py_str_repr(s)).collect();
    format!("[{}]", parts.join(", "))
}

/// Python 3's `repr(str)`: single quotes unless the text has `'` and no `"`;
/// `\\`, the quote, `\n`, `\r`, `\t` and other control characters escaped.
/// Non-ASCII text is kept (approximating `str.isprintable` by escaping only
/// C0/C1 controls, DEL and NBSP).
pub fn py_str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || (0x7f..=0xa0).contains(&(c as u32)) => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn argv(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn argv_variants_match_swift() {
        let local = Path::new("/srv/node/sda/containers/1/abc/h/h.db");
        let remote = remote_path("10.0.0.2::container", "sdb1", "cc52e3b5-sdb1");
        assert_eq!(remote, "10.0.0.2::container/sdb1/tmp/cc52e3b5-sdb1");
        assert_eq!(
            rsync_args(10.0, 0.5, false, true, local, &remote),
            argv(&[
                "rsync",
                "--quiet",
                "--no-motd",
                "--timeout=10",
                "--contimeout=1",
                "--whole-file",
                "/srv/node/sda/containers/1/abc/h/h.db",
                "10.0.0.2::container/sdb1/tmp/cc52e3b5-sdb1",
            ])
        );
        assert_eq!(
            rsync_args(10.1, 2.0, false, false, local, "r"),
            argv(&[
                "rsync",
                "--quiet",
                "--no-motd",
                "--timeout=11",
                "--contimeout=2",
                "/srv/node/sda/containers/1/abc/h/h.db",
                "r",
            ])
        );
        assert_eq!(
            rsync_args(10.0, 0.5, true, true, local, "r"),
            argv(&[
                "rsync",
                "--quiet",
                "--no-motd",
                "--timeout=10",
                "--contimeout=1",
                "--whole-file",
                "--compress",
                "/srv/node/sda/containers/1/abc/h/h.db",
                "r",
            ])
        );
        assert_eq!(
            rsync_args(10.0, 0.5, true, false, local, "r")[5..],
            argv(&["--compress", "/srv/node/sda/containers/1/abc/h/h.db", "r"])[..]
        );
    }

    #[test]
    fn error_line_matches_swift() {
        let e = RsyncError::Failed {
            rc: 23,
            argv: argv(&["rsync", "--quiet", "/a/b.db", "h::c/sda/tmp/x"]),
        };
        assert_eq!(
            e.to_string(),
            "ERROR rsync failed with 23: ['rsync', '--quiet', '/a/b.db', 'h::c/sda/tmp/x']"
        );
        assert_eq!(e.returncode(), Some(23));
        assert_eq!(py_str_repr("it's"), "\"it's\"");
        assert_eq!(py_str_repr("a'b\"c\\\n\u{1}"), "'a\\'b\"c\\\\\\n\\x01'");
    }

    #[tokio::test]
    async fn run_reports_exit_code_and_timeout() {
        run_rsync(&argv(&["true"]), Duration::from_secs(10))
            .await
            .unwrap();
        let e = run_rsync(&argv(&["sh", "-c", "exit 23"]), Duration::from_secs(10))
            .await
            .unwrap_err();
        assert_eq!(e.returncode(), Some(23));
        assert!(e
            .to_string()
            .starts_with("ERROR rsync failed with 23: ['sh', "));
        let e = run_rsync(&argv(&["sh", "-c", "kill -9 $$"]), Duration::from_secs(10))
            .await
            .unwrap_err();
        assert_eq!(e.returncode(), Some(-9));
        let t = std::time::Instant::now();
        let e = run_rsync(&argv(&["sleep", "5"]), Duration::from_millis(100))
            .await
            .unwrap_err();
        assert!(matches!(e, RsyncError::Timeout { .. }), "{e}");
        assert!(t.elapsed() < Duration::from_secs(3));
        let e = run_rsync(&argv(&["/nonexistent/rsync"]), Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(e, RsyncError::Io { .. }), "{e}");
        assert!(run_rsync(&[], Duration::from_secs(1)).await.is_err());
    }

    fn set_mtime(p: &Path, t: SystemTime) {
        fs::File::open(p).unwrap().set_modified(t).unwrap();
    }

    #[test]
    fn reclaims_old_tmp_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let old = now - Duration::from_secs(3600);
        let cutoff = now - Duration::from_secs(60);
        for name in [
            "a.db.tmp",
            "b.tmp",
            "new.tmp",
            "h.db",
            "h.db.pending",
            "x.tmpx",
        ] {
            fs::write(dir.path().join(name), b"").unwrap();
        }
        for name in ["a.db.tmp", "b.tmp", "h.db", "h.db.pending", "x.tmpx"] {
            set_mtime(&dir.path().join(name), old);
        }
        fs::create_dir(dir.path().join("d.tmp")).unwrap();
        set_mtime(&dir.path().join("d.tmp"), old);
        assert_eq!(reclaim_tmp_files(dir.path(), cutoff), 2);
        for gone in ["a.db.tmp", "b.tmp"] {
            assert!(!dir.path().join(gone).exists());
        }
        for kept in ["new.tmp", "h.db", "h.db.pending", "x.tmpx", "d.tmp"] {
            assert!(dir.path().join(kept).exists(), "{kept}");
        }
        assert_eq!(reclaim_tmp_files(&dir.path().join("missing"), cutoff), 0);
    }

    #[test]
    fn reclaims_every_old_file_in_device_tmp() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("tmp");
        fs::create_dir(&tmp).unwrap();
        let now = SystemTime::now();
        let old = now - Duration::from_secs(3600);
        for name in ["uuid-sda", "other", "fresh"] {
            fs::write(tmp.join(name), b"").unwrap();
        }
        set_mtime(&tmp.join("uuid-sda"), old);
        set_mtime(&tmp.join("other"), old);
        fs::create_dir(tmp.join("subdir")).unwrap();
        set_mtime(&tmp.join("subdir"), old);
        assert_eq!(reclaim_device_tmp(&tmp, now - Duration::from_secs(60)), 2);
        assert!(tmp.join("fresh").exists());
        assert!(tmp.join("subdir").exists());
        assert!(!tmp.join("other").exists());
        assert_eq!(reclaim_device_tmp(&dir.path().join("nope"), now), 0);
    }
}
