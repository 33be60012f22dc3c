//! `rowsync bench`: throughput benchmarks on real DB files.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Args, Subcommand};

#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  rowsync bench merge --rows 100000 --batch 1000 --names scattered"
)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub what: BenchCommand,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// merge_items throughput against the plain-INSERT floor.
    ///
    /// Times, on a scratch DB: the floor (plain INSERTs of the same rows),
    /// (a) merge_items of fresh rows into an empty DB, (b) the same rows
    /// replayed, (c) fresh batches into the full DB. Prints one table line
    /// per step on stdout; a spinner shows the running step on a terminal.
    #[command(after_help = "Examples:\n  \
        rowsync bench merge --rows 1000000 --batch 1000\n  \
        rowsync bench merge --rows 200000 --names scattered --dir /srv/node/sdb1/tmp")]
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
            // A spinner naming the running step, on a terminal only.
            let spinner = if std::io::stderr().is_terminal() {
                let s = indicatif::ProgressBar::new_spinner();
                s.set_style(
                    indicatif::ProgressStyle::with_template("{spinner} {elapsed} {msg}")
                        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
                );
                s.enable_steady_tick(std::time::Duration::from_millis(120));
                s
            } else {
                indicatif::ProgressBar::hidden()
            };
            let results = crate::bench::merge_bench_with(&dir, rows, batch, names, &mut |step| {
                spinner.set_message(format!("{step} ({rows} rows)"))
            })?;
            spinner.finish_and_clear();
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
