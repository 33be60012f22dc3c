//! The chaos suite's short sample: a few seeds of `rowsync chaos` (real
//! processes, kills, partitions, full and corrupt disks), each checked by
//! the oracle. `CHAOS_SEEDS` / `CHAOS_FIRST_SEED` run more (RELIABILITY.md
//! has the long command and its figures).

use std::process::Command;

#[test]
fn a_sample_of_chaos_seeds_loses_nothing() {
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
    let opts = rowsync::chaos::Options::default();
    let a = rowsync::chaos::schedule(42, &opts, true);
    let b = rowsync::chaos::schedule(42, &opts, true);
    let c = rowsync::chaos::schedule(43, &opts, true);
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert!(a.len() >= 3);
}
