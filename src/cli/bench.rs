//! `rowsync bench`: throughput benchmarks on real DB files.

use std::path::PathBuf;

use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub what: BenchCommand,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// merge_items throughput against the plain-INSERT floor.
    ///
    /// Example: rowsync bench merge --rows 1000000 --batch 1000
    Merge {
        /// Rows to merge.
        #[arg(long, default_value_t = 1_000_000)]
        rows: usize,
        /// Rows per merge_items call (Swift's per_diff).
        #[arg(long, default_value_t = 1000)]
        batch: usize,
        /// Object name pattern.
        #[arg(long, value_enum, default_value = "sequential")]
        names: crate::bench::NamePattern,
        /// Scratch directory (a temporary one by default, removed after).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.what {
        BenchCommand::Merge {
            rows,
            batch,
            names,
            dir,
        } => {
            anyhow::ensure!(rows > 0 && batch > 0, "--rows and --batch must be positive");
            let tmp;
            let dir = match dir {
                Some(d) => d,
                None => {
                    tmp = tempfile::tempdir()?;
                    tmp.path().to_path_buf()
                }
            };
            let results = crate::bench::merge_bench(&dir, rows, batch, names)?;
            let floor = results[0].rows_per_sec();
            println!(
                "{:<45} {:>10} {:>9} {:>12} {:>9}",
                "step", "rows", "seconds", "rows/s", "vs floor"
            );
            for m in &results {
                println!(
                    "{:<45} {:>10} {:>9.3} {:>12.0} {:>8.2}x",
                    m.name,
                    m.rows,
                    m.seconds,
                    m.rows_per_sec(),
                    floor / m.rows_per_sec()
                );
            }
            Ok(())
        }
    }
}
