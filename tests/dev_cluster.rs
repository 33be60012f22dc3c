//! `rowsync dev-cluster` as a child process: the demo converges and exits
//! 0, twice in a row in the same directory; SIGTERM stops every child; a
//! taken port is refused. After each run, no process of the cluster is
//! left (its ports are free, no process mentions its directory).

use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Three consecutive free loopback ports (bounded search).
fn free_port_range(n: u16) -> u16 {
    for _ in 0..200 {
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = probe.local_addr().unwrap().port();
        drop(probe);
        if base > 65535 - n {
            continue;
        }
        if (0..n).all(|i| TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return base;
        }
    }
    panic!("no {n} consecutive free ports found");
}

fn ports_free(base: u16, n: u16) -> bool {
    (0..n).all(|i| TcpListener::bind(("127.0.0.1", base + i)).is_ok())
}

/// Pids of processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<u32> {
    let me = std::process::id();
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            if String::from_utf8_lossy(&cmd).contains(needle) {
                found.push(pid);
            }
        }
    }
    found
}

struct Run {
    child: Child,
    out: Option<JoinHandle<String>>,
    err: Option<JoinHandle<String>>,
}

fn reader(mut r: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = r.read_to_string(&mut s);
        s
    })
}

impl Run {
    fn start(args: &[&str]) -> Run {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rowsync"))
            .arg("dev-cluster")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.stdout.take().map(reader);
        let err = child.stderr.take().map(reader);
        Run { child, out, err }
    }

    /// Waits (bounded; kills the child on timeout) and returns (success,
    /// stdout, stderr).
    fn finish(mut self, limit: Duration) -> (bool, String, String) {
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break Some(s);
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let out = self.out.take().unwrap().join().unwrap();
        let err = self.err.take().unwrap().join().unwrap();
        assert!(
            status.is_some(),
            "dev-cluster did not finish within {limit:?}\nstdout:\n{out}\nstderr:\n{err}"
        );
        (status.unwrap().success(), out, err)
    }
}

fn assert_nothing_left(dir: &Path, base: u16) {
    // The children are reaped before dev-cluster exits; allow the kernel a
    // moment to release the sockets.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ports_free(base, 12) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(ports_free(base, 12), "a port of the cluster is still taken");
    let left = processes_mentioning(dir.to_str().unwrap());
    assert!(left.is_empty(), "processes left running: {left:?}");
}

fn demo_args<'a>(dir: &'a str, base: &'a str) -> Vec<&'a str> {
    vec![
        "--nodes",
        "3",
        "--demo",
        "--exit-when-converged",
        "--timeout",
        "120",
        "--dir",
        dir,
        "--base-port",
        base,
    ]
}

#[test]
fn demo_converges_and_leaves_nothing_running_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cluster");
    let dir_s = dir.to_str().unwrap().to_string();
    let base = free_port_range(12);
    let base_s = base.to_string();
    for round in 0..2 {
        let started = Instant::now();
        let run = Run::start(&demo_args(&dir_s, &base_s));
        let (ok, out, err) = run.finish(Duration::from_secs(180));
        assert!(ok, "round {round} failed\nstdout:\n{out}\nstderr:\n{err}");
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "took {:?}",
            started.elapsed()
        );
        // Not a terminal: plain key=value progress lines, then the summary.
        assert!(out.contains("demo t="), "{out}");
        assert!(out.contains("converged=false"), "{out}");
        assert!(out.contains("identical=12/12 converged=true"), "{out}");
        let summary = out
            .lines()
            .find(|l| l.starts_with("converged in "))
            .unwrap_or_else(|| panic!("no summary in:\n{out}"));
        assert!(summary.contains("every replica of every container and account DB is identical"));
        // The account heard of every container (one replica only of one of
        // them) and converged too.
        assert!(
            out.contains(
                "AUTH_demo (account)        3 replicas      3 rows (0 tombstones, 3 containers)"
            ),
            "{out}"
        );
        assert!(out.contains("AUTH_demo/far-behind"));
        assert!(
            out.contains("2000 rows (100 tombstones, 1900 objects)"),
            "{out}"
        );
        assert!(
            out.contains("450 rows (0 tombstones, 450 objects)"),
            "{out}"
        );
        assert!(
            out.contains("400 rows (100 tombstones, 300 objects)"),
            "{out}"
        );
        assert!(out.contains(&format!(
            "the cluster's files are left in {}",
            dir.canonicalize().unwrap().display()
        )));
        if round == 1 {
            assert!(out.contains("replaced the previous cluster"), "{out}");
        }
        // The children's lines are prefixed and on stderr.
        for name in ["node1-server", "node3-replicator", "node2-account-server"] {
            assert!(err.contains(&format!("{name:<24} | ")), "{name}: {err}");
        }
        assert!(
            !out.contains("-server   | "),
            "child lines belong on stderr"
        );
        assert_nothing_left(&dir, base);
    }
    for f in [
        "swift.conf",
        "container.ring.gz",
        "rowsync-dev-cluster.json",
        "node1/container-server.conf",
        "node1/account-server.conf",
        "account.ring.gz",
        "node3/srv/sdb3/containers",
        "node3/srv/sdb3/accounts",
    ] {
        assert!(dir.join(f).exists(), "{f}");
    }
    // The replicas left behind are identical; `rowsync info` reads them.
    let mut hashes = Vec::new();
    for i in 1..=3 {
        let root = dir.join(format!("node{i}/srv/sdb{i}/containers"));
        let mut dbs = Vec::new();
        let mut stack = vec![root];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "db") {
                    dbs.push(p);
                }
            }
        }
        assert_eq!(dbs.len(), 3, "node{i}: {dbs:?}");
        let mut per_node = Vec::new();
        for db in dbs {
            let out = Command::new(env!("CARGO_BIN_EXE_rowsync"))
                .args(["info", "--json", db.to_str().unwrap()])
                .output()
                .unwrap();
            assert!(out.status.success());
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            per_node.push((
                v["container"].as_str().unwrap().to_string(),
                v["hash"].as_str().unwrap().to_string(),
                v["rows"].as_i64().unwrap(),
            ));
        }
        per_node.sort();
        hashes.push(per_node);
    }
    assert_eq!(hashes[0], hashes[1]);
    assert_eq!(hashes[1], hashes[2]);
}

#[test]
fn sigterm_stops_every_child() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let base = free_port_range(12);
    let mut child = Command::new(env!("CARGO_BIN_EXE_rowsync"))
        .args([
            "dev-cluster",
            "--dir",
            dir.to_str().unwrap(),
            "--timeout",
            "60",
        ])
        .args(["--base-port", &base.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Read stdout line by line until the replicators are up (bounded).
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let pump = std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = String::new();
    let mut up = false;
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                seen.push_str(&line);
                seen.push('\n');
                if line.contains("replicators running") {
                    up = true;
                    break;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(_) => break,
        }
    }
    if !up {
        let _ = child.kill();
        let _ = child.wait();
        panic!("cluster did not come up:\n{seen}");
    }
    assert!(processes_mentioning(dir.to_str().unwrap()).len() >= 12);
    // One command shows every server's and replicator's metrics (the
    // replicators open their endpoints as they start: bounded retries).
    let mut table = String::new();
    for _ in 0..50 {
        let out = Command::new(env!("CARGO_BIN_EXE_rowsync"))
            .args(["metrics", "--cluster", dir.to_str().unwrap()])
            .output()
            .unwrap();
        table = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{table}");
        if !table.contains("unreachable") {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(!table.contains("-0 "), "{table}");
    for label in ["node1 container", "node3 account"] {
        assert_eq!(
            table.lines().filter(|l| l.starts_with(label)).count(),
            2,
            "{label}: a server and a replicator row\n{table}"
        );
    }
    assert!(!table.contains("unreachable"), "{table}");
    assert!(dir.join("prometheus.yml").is_file());
    // SAFETY: kill(2) on our own child, which has not been reaped.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("dev-cluster ignored SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    pump.join().unwrap();
    let rest: String = rx.try_iter().collect::<Vec<_>>().join("\n");
    assert!(status.success(), "{status:?}\n{seen}{rest}");
    assert!(rest.contains("SIGTERM received"), "{rest}");
    assert!(rest.contains("left in"), "{rest}");
    assert_nothing_left(&dir, base);
}

#[test]
fn a_taken_port_is_refused_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let base = free_port_range(12);
    let _taken = TcpListener::bind(("127.0.0.1", base + 1)).unwrap();
    let run = Run::start(&[
        "--dir",
        dir.to_str().unwrap(),
        "--base-port",
        &base.to_string(),
    ]);
    let (ok, _, err) = run.finish(Duration::from_secs(30));
    assert!(!ok);
    assert!(
        err.contains(&format!(
            "port {} on 127.0.0.1 (for node2) is not free",
            base + 1
        )),
        "{err}"
    );
    assert!(!dir.exists(), "nothing is written when a port is taken");
}
