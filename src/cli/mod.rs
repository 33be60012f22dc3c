//! The `rowsync` command line.

use clap::{Parser, Subcommand};

pub mod bench;
pub mod ring;

#[derive(Debug, Parser)]
#[command(
    name = "rowsync",
    version,
    about = "Swift-compatible container DB replication",
    long_about = "rowsync keeps the replicas of OpenStack Swift container databases in step.\n\
                  It reads and writes Swift 2.38's DB files, ring files and config, and speaks\n\
                  Swift's REPLICATE protocol."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Inspect ring files, look up placement, build dev rings.
    Ring(ring::RingArgs),
    /// Throughput benchmarks on real DB files.
    Bench(bench::BenchArgs),
}

/// Parses the command line and runs the command.
pub fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Ring(args) => ring::run(args),
        Command::Bench(args) => bench::run(args),
    }
}
