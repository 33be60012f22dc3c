//! `rowsync metrics`: the Prometheus metrics of a dev cluster's (or any
//! nodes') servers and replicators, scraped and shown as one table.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::inspect::metrics::{endpoints_of, scrape, table, Endpoint};

/// The long `--help` text.
pub const LONG_ABOUT: &str =
    "Scrape the Prometheus /metrics endpoints of a cluster's servers and\n\
     replicators and print them as one table: requests and REPLICATE ops per\n\
     server; passes, outcomes and rows sent per replicator; and every peer's lag\n\
     as each replicator sees it (rows behind, seconds since last in sync).\n\
     The endpoints come from the node configs (prometheus_metrics = true on a\n\
     server, prometheus_port on a replicator); `rowsync dev-cluster` turns them\n\
     all on. With --watch, the table is refreshed every SECS seconds.";

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    rowsync metrics --cluster /tmp/devc --watch 2\n  \
    rowsync metrics --config /etc/swift/container-server.conf --config /etc/swift/account-server.conf")]
pub struct MetricsArgs {
    /// A `rowsync dev-cluster` directory: every node's configs.
    #[arg(long, required_unless_present = "config")]
    pub cluster: Option<PathBuf>,
    /// A server config (repeatable).
    #[arg(long, short = 'c')]
    pub config: Vec<PathBuf>,
    /// Refresh every SECS seconds (until Ctrl-C, or --count tables).
    #[arg(long, value_name = "SECS")]
    pub watch: Option<f64>,
    /// With --watch: stop after N tables.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
}

pub fn run(args: MetricsArgs) -> anyhow::Result<()> {
    let mut confs: Vec<(String, PathBuf)> = match &args.cluster {
        Some(dir) => super::status::cluster_configs(dir)?,
        None => Vec::new(),
    };
    for c in &args.config {
        let label = c
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        confs.push((label, c.clone()));
    }
    let endpoints = endpoints_of(&confs);
    let every = match args.watch {
        Some(s) if s.is_finite() && s > 0.0 => Some(Duration::from_secs_f64(s)),
        Some(_) => anyhow::bail!("--watch must be a positive number of seconds"),
        None => None,
    };
    let rounds = if every.is_some() {
        args.count.unwrap_or(u64::MAX)
    } else {
        1
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let client = reqwest::Client::builder().no_proxy().build()?;
    let tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
    rt.block_on(async {
        for round in 0..rounds {
            if round > 0 {
                if let Some(d) = every {
                    tokio::select! {
                        _ = tokio::time::sleep(d) => {}
                        _ = crate::server::shutdown_signal() => break,
                    }
                }
            }
            let results = scrape_all(&client, &endpoints).await;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            let mut text = table(&results, now);
            if tty && every.is_some() {
                text = format!("\x1b[2J\x1b[H{text}");
            }
            super::print_stdout(&text)?;
        }
        Ok(())
    })
}

async fn scrape_all(
    client: &reqwest::Client,
    endpoints: &[Endpoint],
) -> Vec<(Endpoint, anyhow::Result<crate::inspect::metrics::Samples>)> {
    let scrapes = endpoints
        .iter()
        .map(|ep| async move { (ep.clone(), scrape(client, ep).await) });
    futures::future::join_all(scrapes).await
}
