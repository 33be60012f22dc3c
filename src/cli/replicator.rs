//! `rowsync replicator`: the container or account replicator daemon (the
//! config's kind).

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::config::{ReplicatorConf, ServerType, SwiftConf};
use crate::db::{Account, Container};
use crate::replication::daemon::{PassFilter, Replicator};
use crate::replication::ReplKind;
use crate::ring::RingHandle;

/// The long `--help` text (set on the subcommand in `cli/mod.rs`).
pub const LONG_ABOUT: &str =
    "Run the container or account replicator (the kind the config's [app:...]\n\
                  section names, `use = egg:swift#container|account`; --kind overrides):\n\
                  every `interval` seconds, a pass over that kind's DBs on this node's\n\
                  devices (the ring's devices on bind_ip and bind_port) that brings each DB's\n\
                  other replicas up to date: rows are sent in merge_items batches after each\n\
                  peer's sync point, or the whole DB is shipped (rsync, or HTTP with\n\
                  db_transfer = http) to a peer that lacks it. Reads [DEFAULT] and\n\
                  [<kind>-replicator] of the config and the ring <swift_dir>/<kind>.ring.gz.\n\
                  Each pass ends with Swift's stats lines in the log (stderr) and the recon\n\
                  cache <recon_cache_path>/<kind>.recon. --once runs a single pass and exits.\n\
                  With prometheus_port set, Prometheus metrics are served at\n\
                  http://<prometheus_bind_ip>:<prometheus_port>/metrics.";

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    rowsync replicator --config /etc/swift/container-server.conf\n  \
    rowsync replicator --config /etc/swift/account-server.conf --once\n  \
    rowsync replicator --config /etc/swift/container-server.conf --once --devices sdb1 --partitions 12,40")]
pub struct ReplicatorArgs {
    /// container-server.conf or account-server.conf ([DEFAULT] and
    /// [<kind>-replicator]).
    #[arg(long, short = 'c')]
    pub config: PathBuf,
    /// The kind of DBs to replicate (default: the config's [app:...] kind).
    #[arg(long, value_parser = super::parse_kind)]
    pub kind: Option<ServerType>,
    /// swift.conf (default: <swift_dir>/swift.conf).
    #[arg(long)]
    pub swift_conf: Option<PathBuf>,
    /// Run one pass and exit.
    #[arg(long)]
    pub once: bool,
    /// Only these devices (comma-separated; with --once).
    #[arg(long, value_delimiter = ',')]
    pub devices: Vec<String>,
    /// Only these partitions (comma-separated; with --once).
    #[arg(long, value_delimiter = ',')]
    pub partitions: Vec<u32>,
}

pub fn run(args: ReplicatorArgs) -> anyhow::Result<()> {
    let kind = ServerType::of_file(&args.config, args.kind)
        .with_context(|| format!("reading {}", args.config.display()))?;
    match kind {
        ServerType::Container => run_kind::<Container>(args, kind),
        ServerType::Account => run_kind::<Account>(args, kind),
    }
}

fn run_kind<K: ReplKind>(args: ReplicatorArgs, kind: ServerType) -> anyhow::Result<()> {
    let conf = ReplicatorConf::from_file_as(&args.config, kind)
        .with_context(|| format!("reading {}", args.config.display()))?;
    super::init_logging(&conf.log_level);
    for w in &conf.warnings {
        tracing::warn!("{w}");
    }
    let swift_path = args
        .swift_conf
        .unwrap_or_else(|| conf.swift_dir.join("swift.conf"));
    let swift = SwiftConf::from_file(&swift_path)
        .with_context(|| format!("reading {}", swift_path.display()))?;
    let ring_path = conf.ring_path();
    let ring = RingHandle::open(&ring_path)
        .with_context(|| format!("loading ring {}", ring_path.display()))?;
    let filter = PassFilter {
        devices: (args.once && !args.devices.is_empty())
            .then(|| args.devices.iter().cloned().collect::<BTreeSet<_>>()),
        partitions: (args.once && !args.partitions.is_empty())
            .then(|| args.partitions.iter().copied().collect::<BTreeSet<_>>()),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let metrics_addr = (conf.prometheus_port != 0)
        .then(|| format!("{}:{}", conf.prometheus_bind_ip, conf.prometheus_port));
    let replicator = Replicator::<K>::new(conf, &swift, ring);
    let metrics = replicator.metrics.clone();
    rt.block_on(async move {
        // The opt-in /metrics endpoint, stopped when the replicator stops.
        let (stop_metrics, stopped) = tokio::sync::oneshot::channel::<()>();
        let mut endpoint = None;
        if let Some(addr) = metrics_addr {
            let listener = tokio::net::TcpListener::bind(&addr)
                .await
                .with_context(|| format!("binding the metrics endpoint {addr}"))?;
            tracing::info!(%addr, "serving Prometheus metrics at /metrics");
            let render: std::sync::Arc<dyn Fn() -> Option<String> + Send + Sync> =
                std::sync::Arc::new(move || metrics.render());
            endpoint = Some(tokio::spawn(crate::server::metrics::serve_metrics(
                listener,
                render,
                async move {
                    let _ = stopped.await;
                },
            )));
        }
        if args.once {
            tokio::select! {
                _ = replicator.run_once(&filter) => {}
                _ = crate::server::shutdown_signal() => tracing::info!("interrupted"),
            }
        } else {
            replicator
                .run_forever(&filter, crate::server::shutdown_signal())
                .await;
            tracing::info!("replicator stopped");
        }
        let _ = stop_metrics.send(());
        if let Some(e) = endpoint {
            let _ = e.await;
        }
        Ok::<(), anyhow::Error>(())
    })?;
    Ok(())
}
