//! `rowsync chaos`: randomized kill / partition / disk fault runs over a
//! real cluster on loopback, checked by an oracle.

use std::path::PathBuf;

use clap::Args;

use crate::chaos::{self, Options};

/// The long `--help` text.
pub const LONG_ABOUT: &str =
    "Randomized fault runs over real processes on 127.0.0.1. Each run (one seed)\n\
     starts N nodes, each with a container and an account server and replicator\n\
     (child processes of this executable), every link between two nodes through\n\
     a controllable proxy; writes objects, overwrites, deletes and metadata to\n\
     every replica while faults drawn from the seed hit at random moments:\n\
     kill -9 of servers and replicators, partitions (one way or both, refused or\n\
     black-holed, a node isolated), a full disk (ENOSPC through fail points in a\n\
     `--features failpoints` build, else a free-space reserve that refuses\n\
     writes with 507), a slow disk (fail points), a corrupt DB file. Then it heals\n\
     everything and checks the oracle: every write a quorum acknowledged is on\n\
     every replica with its newest value, the replicas are identical, every DB\n\
     file passes PRAGMA integrity_check, no process panicked, and replicas\n\
     converge within --converge-timeout. One line per run; a failing run prints\n\
     its seed, its schedule and its problems, and keeps its directory (logs, DBs).\n\
     The same seed draws the same schedule. Exit status 1 if any run failed.";

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    rowsync chaos --seed 1 --runs 20\n  \
    rowsync chaos --seed 4242 --runs 1 --keep --dir /tmp/chaos   # re-run one seed, keep its files")]
pub struct ChaosArgs {
    /// First seed; run k uses SEED + k.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Number of runs.
    #[arg(long, default_value_t = 1)]
    pub runs: u64,
    /// Nodes per run (at least 3).
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Seconds of load and faults per run.
    #[arg(long, default_value_t = 6.0)]
    pub duration: f64,
    /// Seconds between replication passes.
    #[arg(long, default_value_t = 1.0)]
    pub interval: f64,
    /// Seconds the replicas get to become identical after healing.
    #[arg(long, default_value_t = 90.0)]
    pub converge_timeout: f64,
    /// Directory for the runs' clusters (default: a new temporary one).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Keep every run's directory (a failed run's is always kept).
    #[arg(long)]
    pub keep: bool,
}

pub fn run(args: ChaosArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.interval.is_finite() && args.interval > 0.0,
        "--interval must be positive"
    );
    anyhow::ensure!(
        args.duration.is_finite() && args.duration > 0.0 && args.duration <= 3600.0,
        "--duration must be between 0 and 3600 seconds"
    );
    let opts = Options {
        seed: args.seed,
        runs: args.runs,
        nodes: args.nodes,
        duration: args.duration,
        interval: args.interval,
        converge_timeout: args.converge_timeout,
        dir: args.dir,
        keep: args.keep,
        ..Options::default()
    };
    let interval = opts.interval;
    let reports = chaos::run(&opts, |r| {
        let mut text = r.line(interval);
        if !r.passed() {
            text.push_str(&format!("\n  schedule (seed {}):", r.seed));
            for e in &r.events {
                text.push_str(&format!("\n    {e}"));
            }
            text.push_str("\n  problems:");
            for p in r.problems.iter().take(20) {
                text.push_str(&format!("\n    {p}"));
            }
            if r.problems.len() > 20 {
                text.push_str(&format!("\n    ... and {} more", r.problems.len() - 20));
            }
            text.push_str(&format!("\n  files kept in {}", r.dir.display()));
        }
        text.push('\n');
        let _ = super::print_stdout(&text);
    })?;
    let failed = reports.iter().filter(|r| !r.passed()).count();
    let max_conv = reports
        .iter()
        .filter_map(|r| r.converged_after)
        .fold(0.0, f64::max);
    super::print_stdout(&format!(
        "{} runs: {} passed, {} failed; slowest convergence {:.1} s; fail points {}\n",
        reports.len(),
        reports.len() - failed,
        failed,
        max_conv,
        if cfg!(feature = "failpoints") {
            "on (ENOSPC and slow-disk injection)"
        } else {
            "off (full disk as a 507 reserve; no slow disk)"
        }
    ))?;
    if failed > 0 {
        std::process::exit(1);
    }
    Ok(())
}
