//! `rowsync chaos`: randomized kill / partition / disk fault runs over a
//! real cluster on loopback, checked by an oracle.

use std::path::PathBuf;

use clap::Args;

use crate::chaos::{self, Options, SwiftOptions, SwiftPick};

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
     The same seed draws the same schedule. Exit status 1 if any run failed.\n\
     \n\
     --swift-node K makes node K a real Swift 2.38 node: Swift's container and\n\
     account servers and replicators (Python, from the venv --swift-venv names;\n\
     `bash interop/run.sh` creates interop/.venv) run there instead of rowsync's,\n\
     on the same devices, ring copy and proxied links, each process logging to\n\
     its own file as rowsync's do. Swift ships whole DBs with rsync, so such a\n\
     run also starts an rsync daemon on a free loopback port (a module per node;\n\
     each pair of nodes reaches it through a proxy of its own, so partitions cut\n\
     transfers too) and every replicator, rowsync's too, uses db_transfer = rsync\n\
     (runs without a Swift node use db_transfer = http). Faults hit the Swift node\n\
     as any other (kill -9 of its Python processes, partitions, a full disk as\n\
     fallocate_reserve = 100% and a restart) except the slow disk, which needs\n\
     fail points (a kill -9 instead), and its DB corruption is always of the\n\
     SQLite header: Swift runs no integrity check, so it would never notice a\n\
     corrupt page that no read touches, but fails every open of a broken header\n\
     and quarantines the DB. --swift-node seed picks node (SEED mod N) + 1 in each\n\
     run. The oracle is the same. Without a venv that imports Swift 2.38, or\n\
     without rsync, the command fails before any run.";

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    rowsync chaos --seed 1 --runs 20\n  \
    rowsync chaos --seed 4242 --runs 1 --keep --dir /tmp/chaos   # re-run one seed, keep its files\n  \
    rowsync chaos --seed 1 --runs 5 --duration 5 --swift-node seed   # one Swift 2.38 node per run")]
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
    /// Node K (1..=N) runs Swift 2.38's servers and replicators instead of
    /// rowsync's; `seed`: node (SEED mod N) + 1 of each run.
    #[arg(long, value_name = "K|seed", value_parser = parse_swift_node)]
    pub swift_node: Option<SwiftPick>,
    /// The Python venv with swift==2.38.* for --swift-node.
    #[arg(long, value_name = "DIR", default_value = "interop/.venv")]
    pub swift_venv: PathBuf,
}

fn parse_swift_node(s: &str) -> Result<SwiftPick, String> {
    if s.eq_ignore_ascii_case("seed") {
        return Ok(SwiftPick::FromSeed);
    }
    match s.parse::<usize>() {
        Ok(k) if k >= 1 => Ok(SwiftPick::Node(k - 1)),
        _ => Err(format!("{s:?}: a node number (1 is the first) or `seed`")),
    }
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
        swift: args.swift_node.map(|node| SwiftOptions {
            venv: args.swift_venv.clone(),
            node,
        }),
        ..Options::default()
    };
    let interval = opts.interval;
    let swift = opts.swift.is_some();
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
        "{} runs: {} passed, {} failed; slowest convergence {:.1} s; fail points {}{}\n",
        reports.len(),
        reports.len() - failed,
        failed,
        max_conv,
        if cfg!(feature = "failpoints") {
            "on (ENOSPC and slow-disk injection)"
        } else {
            "off (full disk as a 507 reserve; no slow disk)"
        },
        if swift {
            "; a Swift 2.38 node per run (whole DBs by rsync)"
        } else {
            ""
        }
    ))?;
    if failed > 0 {
        std::process::exit(1);
    }
    Ok(())
}
