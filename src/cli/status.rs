//! `rowsync status`: which replicas of a node's container or account DBs
//! are behind.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use futures::StreamExt;

use crate::inspect::status::{self, DbStatus, NodeConf};

/// The long `--help` text (set on the subcommand in `cli/mod.rs`).
pub const LONG_ABOUT: &str = "For every DB on a node's devices (container DBs for a container-server.conf,\n\
                  account DBs for an account-server.conf: the kind its [app:...] section\n\
                  names), ask each other replica (the partition's primaries in that kind's\n\
                  ring) how far it is, and show which replicas are behind and by how many\n\
                  rows. With --cluster, both kinds of every node of a dev cluster.\n\n\
                  Each peer gets a `sync` REPLICATE request carrying this DB's replication\n\
                  info: a harmless query that sends no rows, but (like the first step of a\n\
                  replication pass) lets the peer merge our metadata and DB timestamps and\n\
                  record our max_row when both hashes already match. Each request is\n\
                  bounded by --timeout. Reading a local DB commits its pending file.\n\n\
                  States of a peer replica:\n  \
                  in_sync      it holds every row of this DB (same hash, or its point\n               \
                  covers our max_row)\n  \
                  behind       behind_rows = max_row - point of our rows may be missing\n  \
                  missing      it has no DB for the container or account (404)\n  \
                  unreachable  no answer in time, or an error status (e.g. 507)\n\n\
                  `point` is how far, in OUR ROWIDs, the peer holds our rows: the larger of\n\
                  its incoming sync point for our DB id and our outgoing one for its id\n\
                  (-1: none yet; ROWIDs start at 1, so it then counts as 0).\n\n\
                  With --json: a list with one object per DB: db, kind, account, container,\n\
                  partition, max_row, node, device, replicas: [{node, device, status,\n\
                  point, behind_rows, hash_match, remote_max_row, error}].";

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
                  rowsync status --config /etc/swift/container-server.conf\n  \
                  rowsync status --config /etc/swift/account-server.conf\n  \
                  rowsync status --cluster /tmp/rowsync-dev-XXXX --json\n  \
                  rowsync status --config node1.conf --config node2.conf --timeout 2")]
pub struct StatusArgs {
    /// container- or account-server.conf of the node to check (repeat for
    /// several).
    #[arg(
        long,
        short = 'c',
        required_unless_present = "cluster",
        conflicts_with = "cluster"
    )]
    pub config: Vec<PathBuf>,
    /// A `rowsync dev-cluster` directory: check every node's DBs.
    #[arg(long, value_name = "DIR")]
    pub cluster: Option<PathBuf>,
    /// swift.conf (default: <swift_dir>/swift.conf).
    #[arg(long)]
    pub swift_conf: Option<PathBuf>,
    /// Print JSON (a list, one object per DB).
    #[arg(long)]
    pub json: bool,
    /// Seconds to wait for each peer's answer.
    #[arg(long, default_value_t = 5.0)]
    pub timeout: f64,
}

/// The node configs of a dev cluster directory, in node order: each
/// node's container-server.conf, then its account-server.conf if it has one.
pub fn cluster_configs(dir: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    let mut nodes: Vec<(u32, u8, String, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let n: u32 = name.strip_prefix("node")?.parse().ok()?;
            let conf = e.path().join("container-server.conf");
            conf.is_file().then_some((n, name, e.path()))
        })
        .flat_map(|(n, name, path)| {
            [
                (0u8, "container-server.conf", ""),
                (1, "account-server.conf", " accounts"),
            ]
            .into_iter()
            .filter_map(|(order, file, label)| {
                let conf = path.join(file);
                conf.is_file()
                    .then(|| (n, order, format!("{name}{label}"), conf))
            })
            .collect::<Vec<_>>()
        })
        .collect();
    nodes.sort();
    if nodes.is_empty() {
        bail!(
            "{} holds no node*/container-server.conf: not a rowsync dev-cluster directory",
            dir.display()
        );
    }
    Ok(nodes
        .into_iter()
        .map(|(_, _, name, conf)| (name, conf))
        .collect())
}

pub fn run(args: StatusArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.timeout.is_finite() && args.timeout > 0.0,
        "--timeout must be a positive number of seconds"
    );
    let confs: Vec<(String, PathBuf)> = match &args.cluster {
        Some(dir) => cluster_configs(dir)?,
        None => args
            .config
            .iter()
            .map(|p| (p.display().to_string(), p.clone()))
            .collect(),
    };
    let nodes = confs
        .iter()
        .map(|(label, path)| NodeConf::from_file(path, label.clone()))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let timeout = Duration::from_secs_f64(args.timeout);
    let results = rt.block_on(check_nodes(&nodes, args.swift_conf.as_deref(), timeout))?;
    if args.json {
        let text = serde_json::to_string_pretty(&results)?;
        super::print_stdout(&format!("{text}\n"))
    } else {
        super::print_stdout(&status::render_text(&results))
    }
}

async fn check_nodes(
    nodes: &[NodeConf],
    swift_conf: Option<&Path>,
    timeout: Duration,
) -> anyhow::Result<Vec<DbStatus>> {
    let mut jobs = Vec::new();
    for node in nodes {
        let ctx = status::load_context(node, swift_conf, timeout)?;
        let dbs = tokio::task::block_in_place(|| {
            status::local_dbs(node, &ctx.ring, ctx.multiple_policies)
        });
        jobs.extend(dbs.into_iter().map(|db| (ctx.clone(), db)));
    }
    // A progress bar on a terminal only; nothing on a pipe.
    let bar = if std::io::stderr().is_terminal() && jobs.len() > 1 {
        let b = indicatif::ProgressBar::new(jobs.len() as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template("checking DBs {bar:30} {pos}/{len} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let results: Vec<DbStatus> = futures::stream::iter(jobs)
        .map(|(ctx, db)| {
            let bar = bar.clone();
            async move {
                let s = status::check_db(&ctx, &db).await;
                bar.inc(1);
                s
            }
        })
        .buffered(8)
        .collect()
        .await;
    bar.finish_and_clear();
    Ok(results)
}
