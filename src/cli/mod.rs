//! The `rowsync` command line.

use clap::{Parser, Subcommand};

pub mod bench;
pub mod chaos;
pub mod config;
pub mod dev_cluster;
pub mod info;
pub mod metrics;
pub mod replicator;
pub mod ring;
pub mod server;
pub mod status;

#[derive(Debug, Parser)]
#[command(
    name = "rowsync",
    version,
    about = "Swift-compatible container DB replication",
    long_about = "rowsync keeps the replicas of OpenStack Swift container databases in step.\n\
                  It reads and writes Swift 2.38's DB files, ring files and config, and speaks\n\
                  Swift's REPLICATE protocol.",
    after_help = "Quick start:\n  \
                  rowsync dev-cluster --demo        a 3-node cluster on 127.0.0.1; watch replication converge\n  \
                  rowsync status --cluster DIR      which replicas of each DB are behind, by how many rows\n  \
                  rowsync info DB_FILE              everything about one container DB file\n\n\
                  On a Swift node:\n  \
                  rowsync server --config /etc/swift/container-server.conf\n  \
                  rowsync replicator --config /etc/swift/container-server.conf\n\n\
                  Every command has --help with examples (e.g. rowsync dev-cluster --help)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Inspect ring files, look up placement, build dev rings.
    Ring(ring::RingArgs),
    /// Run the container server (Swift's container API and REPLICATE).
    #[command(long_about = server::LONG_ABOUT)]
    Server(server::ServerArgs),
    /// Run the container replicator (one pass with --once, else forever).
    #[command(long_about = replicator::LONG_ABOUT)]
    Replicator(replicator::ReplicatorArgs),
    /// Throughput benchmarks on real DB files.
    Bench(bench::BenchArgs),
    /// Run an all-in-one cluster on 127.0.0.1 (with --demo: watch replication converge).
    #[command(long_about = dev_cluster::LONG_ABOUT)]
    DevCluster(dev_cluster::DevClusterArgs),
    /// Show everything about one container DB file (like swift-container-info).
    #[command(long_about = info::LONG_ABOUT)]
    Info(info::InfoArgs),
    /// Show which replicas of a node's container DBs are behind, and by how many rows.
    #[command(long_about = status::LONG_ABOUT)]
    Status(status::StatusArgs),
    /// Show the Prometheus metrics of a cluster's servers and replicators as one table.
    #[command(long_about = metrics::LONG_ABOUT)]
    Metrics(metrics::MetricsArgs),
    /// Randomized kill / partition / disk fault runs over a real cluster, checked by an oracle.
    #[command(long_about = chaos::LONG_ABOUT)]
    Chaos(chaos::ChaosArgs),
    /// Check a Swift server config: effective settings, invalid and unknown options.
    #[command(long_about = config::LONG_ABOUT)]
    Config(config::ConfigArgs),
}

/// Parses the command line and runs the command.
pub fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Ring(args) => ring::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Server(args) => server::run(args),
        Command::Replicator(args) => replicator::run(args),
        Command::DevCluster(args) => dev_cluster::run(args),
        Command::Info(args) => info::run(args),
        Command::Status(args) => status::run(args),
        Command::Metrics(args) => metrics::run(args),
        Command::Chaos(args) => chaos::run(args),
        Command::Config(args) => {
            if !config::run(args)? {
                std::process::exit(1);
            }
            Ok(())
        }
    }
}

/// Writes `text` to stdout; a closed stdout (`| head`) is not an error.
pub fn print_stdout(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// `--kind container|account`.
pub fn parse_kind(s: &str) -> Result<crate::config::ServerType, String> {
    match s {
        "container" => Ok(crate::config::ServerType::Container),
        "account" => Ok(crate::config::ServerType::Account),
        other => Err(format!("{other:?} is not a kind: container or account")),
    }
}

/// Logs to stderr; `RUST_LOG` overrides the config's level.
pub fn init_logging(level: &str) {
    let level = match level.to_ascii_lowercase().as_str() {
        "debug" => "debug",
        "warning" | "warn" => "warn",
        "error" | "critical" => "error",
        _ => "info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
