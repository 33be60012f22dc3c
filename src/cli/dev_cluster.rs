//! `rowsync dev-cluster`: an all-in-one cluster on 127.0.0.1.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::devcluster::layout::{ConfSettings, Params};
use crate::devcluster::{self, Options};

/// The long `--help` text (set on the subcommand in `cli/mod.rs`).
pub const LONG_ABOUT: &str =
    "Lay out and run an all-in-one cluster on 127.0.0.1: N nodes with one device\n\
                  each (DIR/node<i>/srv/sdb<i>), a swift.conf with a random hash prefix and\n\
                  suffix, a container ring, and one container-server.conf per node. Each\n\
                  node's server and replicator run as child processes in the foreground;\n\
                  their output lines are prefixed with `node<i>-server |` and\n\
                  `node<i>-replicator |`. Ctrl-C (or SIGTERM) stops them all and leaves DIR\n\
                  for inspection.\n\n\
                  Node i listens on BASE_PORT+i-1. Replicators pass every --interval seconds\n\
                  and ship whole DBs over HTTP (db_transfer = http; no rsync needed).\n\
                  Every server serves Prometheus metrics at /metrics, and every replicator at\n\
                  127.0.0.1:BASE_PORT+2N+i-1 (containers) and BASE_PORT+3N+i-1 (accounts);\n\
                  `rowsync metrics --cluster DIR --watch 2` shows them all as one live table,\n\
                  and DIR/prometheus.yml scrapes them for Prometheus and Grafana.\n\n\
                  Running again with the same --dir and the same shape reuses the data there\n\
                  (--fresh to start over); a different shape, or --demo, replaces it. A\n\
                  non-empty directory not made by dev-cluster is refused.\n\n\
                  --demo writes object rows unevenly through the container API (one replica\n\
                  far behind, one replica without the container, tombstones), then shows\n\
                  replication converging: a live table on a terminal, `demo t=... key=value`\n\
                  lines otherwise, and a summary (`converged in N s`) once every replica of\n\
                  every container holds the same rows with the same hash.";

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
                  rowsync dev-cluster --demo\n  \
                  rowsync dev-cluster --nodes 4 --replicas 3 --dir /tmp/devc --base-port 7001\n  \
                  rowsync dev-cluster --demo --exit-when-converged --timeout 120 --dir /tmp/devc\n\n\
                  Then, in another terminal:\n  \
                  rowsync status --cluster /tmp/devc")]
pub struct DevClusterArgs {
    /// Number of nodes (one device each).
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Replicas per container (at most --nodes).
    #[arg(long, default_value_t = 3)]
    pub replicas: usize,
    /// Directory for the cluster's files (default: a new temporary directory,
    /// kept afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Port of node1; node i uses BASE_PORT+i-1.
    #[arg(long, default_value_t = 6201)]
    pub base_port: u16,
    /// Ring partition power (2^P partitions).
    #[arg(long, default_value_t = 6)]
    pub part_power: u32,
    /// Write uneven demo data and show replication converging.
    #[arg(long)]
    pub demo: bool,
    /// With --demo: stop everything and exit once converged.
    #[arg(long, requires = "demo")]
    pub exit_when_converged: bool,
    /// Stop after SECS seconds (with --demo, exit 1 if not converged by then).
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<f64>,
    /// Remove a previous cluster in --dir instead of reusing its data.
    #[arg(long)]
    pub fresh: bool,
    /// Seconds between replication passes.
    #[arg(long, default_value_t = 2.0)]
    pub interval: f64,
    /// log_level of the servers and replicators (debug, info, warning, error).
    #[arg(long, default_value = "info")]
    pub log_level: String,
}

pub fn run(args: DevClusterArgs) -> anyhow::Result<()> {
    let timeout = match args.timeout {
        Some(t) if t.is_finite() && t > 0.0 => Some(Duration::from_secs_f64(t)),
        Some(_) => anyhow::bail!("--timeout must be a positive number of seconds"),
        None => None,
    };
    anyhow::ensure!(
        args.interval.is_finite() && args.interval > 0.0,
        "--interval must be a positive number of seconds"
    );
    devcluster::run(Options {
        params: Params {
            nodes: args.nodes,
            replicas: args.replicas,
            base_port: args.base_port,
            part_power: args.part_power,
        },
        dir: args.dir,
        demo: args.demo,
        exit_when_converged: args.exit_when_converged,
        timeout,
        fresh: args.fresh,
        settings: ConfSettings {
            interval: args.interval,
            log_level: args.log_level.to_ascii_uppercase(),
        },
    })
}
