//! The chaos suite's short sample: a few seeds of `rowsync chaos` (real
//! processes, kills, partitions, full and corrupt disks), each checked by
//! the oracle. `CHAOS_SEEDS` / `CHAOS_FIRST_SEED` run more (RELIABILITY.md
//! has the long command and its figures). With the interop venv
//! (`interop/.venv`, made by `bash interop/run.sh`), a sample with a real
//! Swift 2.38 node too (`CHAOS_SWIFT_SEEDS` / `CHAOS_SWIFT_FIRST_SEED`).

use std::path::Path;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

use rowsync::chaos::{Fault, Options, SwiftOptions, SwiftPick};

/// The samples run one at a time: two clusters at once on a small
/// machine would mostly measure the machine.
fn one_sample_at_a_time() -> MutexGuard<'static, ()> {
    static SAMPLES: Mutex<()> = Mutex::new(());
    SAMPLES.lock().unwrap_or_else(|p| p.into_inner())
}

#[test]
fn a_sample_of_chaos_seeds_loses_nothing() {
    let _one = one_sample_at_a_time();
    let seeds: u64 = std::env::var("CHAOS_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let first: u64 = std::env::var("CHAOS_FIRST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rowsync"))
        .args([
            "chaos",
            "--seed",
            &first.to_string(),
            "--runs",
            &seeds.to_string(),
        ])
        .args(["--duration", "5", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.starts_with("PASS seed="))
            .count() as u64,
        seeds,
        "{stdout}"
    );
    // Every run wrote and had writes acknowledged.
    for line in stdout.lines().filter(|l| l.starts_with("PASS")) {
        let acked: u64 = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("acked="))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        assert!(acked > 0, "{line}");
    }
}

#[test]
fn the_same_seed_draws_the_same_schedule() {
    let opts = Options::default();
    let a = rowsync::chaos::schedule(42, &opts, true);
    let b = rowsync::chaos::schedule(42, &opts, true);
    let c = rowsync::chaos::schedule(43, &opts, true);
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert!(a.len() >= 3);
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Seeds 3 and 4 by default: the Swift node (node (seed mod 3) + 1) gets
/// a full disk in both, a header-corrupted DB (quarantined by Swift and
/// restored by rsync from a rowsync peer) in seed 4.
#[test]
fn a_sample_with_a_swift_node_loses_nothing() {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/.venv");
    if !venv.join("bin/python").is_file() {
        eprintln!(
            "skipping the Swift-node chaos sample: no venv at {} (`bash interop/run.sh` makes it)",
            venv.display()
        );
        return;
    }
    if Command::new("rsync").arg("--version").output().is_err() {
        eprintln!("skipping the Swift-node chaos sample: rsync is not installed");
        return;
    }
    let _one = one_sample_at_a_time();
    let seeds = env_u64("CHAOS_SWIFT_SEEDS", 2);
    let first = env_u64("CHAOS_SWIFT_FIRST_SEED", 3);
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rowsync"))
        .args(["chaos", "--seed", &first.to_string()])
        .args(["--runs", &seeds.to_string(), "--duration", "5"])
        .args(["--swift-node", "seed", "--swift-venv"])
        .arg(&venv)
        .arg("--dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        // Keep the failed runs' files (logs, DBs) for a look.
        let kept = dir.keep();
        panic!("{stdout}\n{stderr}\n(files kept in {})", kept.display());
    }
    let passes: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("PASS seed="))
        .collect();
    assert_eq!(passes.len() as u64, seeds, "{stdout}");
    for line in passes {
        assert!(line.contains(" swift=node"), "{line}");
        assert!(!line.contains(" acked=0 "), "{line}");
    }
}

#[test]
fn a_swift_node_without_a_venv_is_refused_before_any_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rowsync"))
        .args(["chaos", "--swift-node", "2", "--swift-venv"])
        .arg(dir.path().join("no-venv"))
        .arg("--dir")
        .arg(dir.path().join("runs"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("no Swift venv"), "{stderr}");
    assert!(!dir.path().join("runs").exists());
}

#[test]
fn the_swift_node_gets_no_slow_disk_and_only_header_corruption() {
    let plain = Options::default();
    let with_swift = Options {
        swift: Some(SwiftOptions {
            venv: "unused".into(),
            node: SwiftPick::FromSeed,
        }),
        ..Options::default()
    };
    let (mut slow, mut corrupt) = (0, 0);
    for seed in 0..400 {
        let a = rowsync::chaos::schedule(seed, &plain, true);
        let b = rowsync::chaos::schedule(seed, &with_swift, true);
        let swift = with_swift.swift_node(seed);
        assert_eq!(swift, Some((seed % 3) as usize));
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            // The same draws; only the Swift node's faults differ.
            assert_eq!((x.at, x.lasts), (y.at, y.lasts));
            match (&x.fault, &y.fault) {
                (Fault::SlowDisk { node }, Fault::KillServer { node: n, .. })
                    if swift == Some(*node) && n == node =>
                {
                    slow += 1
                }
                (
                    Fault::CorruptDb { node, target, .. },
                    Fault::CorruptDb {
                        node: n,
                        target: t,
                        header: true,
                    },
                ) if swift == Some(*node) && (n, t) == (node, target) => corrupt += 1,
                (f, g) => assert_eq!(f, g, "seed {seed}"),
            }
            if let Fault::SlowDisk { node } = y.fault {
                assert_ne!(swift, Some(node), "seed {seed}");
            }
        }
    }
    assert!(slow > 0 && corrupt > 0, "{slow} {corrupt}");
}
