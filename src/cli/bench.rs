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
    /// Container-server load: concurrent clients PUT object rows into one
    /// container for a while; then every acknowledged row must be listed.
    ///
    /// Example: rowsync bench load --clients 50 --seconds 10
    Load {
        #[arg(long, default_value_t = 50)]
        clients: usize,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Scratch directory (a temporary one by default, removed after).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Replication throughput on a two-node loopback cluster: usync,
    /// rsync_then_merge and a whole-DB ship of --rows rows; over --dbs small
    /// in-sync DBs a pass visiting each, a pass with nothing changed, one
    /// with 1% of them changed, and a pass over those 1% alone. Each line
    /// ends with the process's peak RSS during that step (replicator and
    /// both servers), or with --replicator-process the replicator's own.
    ///
    /// Example: rowsync bench replication --rows 1000000 --dbs 100000
    Replication {
        #[arg(long, default_value_t = 100_000)]
        rows: usize,
        #[arg(long, default_value_t = 2000)]
        dbs: usize,
        /// Only one scenario: usync, rsync_then_merge, ship or many.
        #[arg(long)]
        only: Option<String>,
        /// Scratch directory (a temporary one by default, removed after).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Runs the pass with nothing changed this many times and reports
        /// the fastest.
        #[arg(long, default_value_t = 1)]
        repeat: usize,
        /// Leaves out the pass that visits every DB (`full_pass_interval =
        /// 0`; minutes over 100,000 DBs).
        #[arg(long)]
        no_visiting_pass: bool,
        /// Runs each measured pass as `rowsync replicator --once` in a
        /// child process, and reports the replicator's own peak RSS
        /// (`replicator_peak_rss`) instead of the whole process's.
        #[arg(long)]
        replicator_process: bool,
    },
    /// Object PUTs into a big container while it is replicated into:
    /// --writers clients PUT into node 1's container for --seconds with
    /// nothing else running, then for as long as node 0's replicator pass
    /// (usync of --rows rows, or rsync_then_merge) into node 1 runs. Prints
    /// PUT latency (p50/p99/max) and errors of both phases, and checks that
    /// every acknowledged PUT is on both replicas afterwards.
    ///
    /// Example: rowsync bench writes --rows 1000000 --writers 16 --mode usync
    Writes {
        #[arg(long, default_value_t = 1_000_000)]
        rows: usize,
        #[arg(long, default_value_t = 16)]
        writers: usize,
        /// The baseline's length (the second phase lasts as long as the pass).
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// usync or rsync_then_merge.
        #[arg(long, default_value = "usync")]
        mode: String,
        /// Scratch directory (a temporary one by default, removed after).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// The write load of `bench writes` against a container server this
    /// command does not start (Swift's or rowsync's; the side-by-side
    /// harness runs it against both): --writers clients PUT objects into
    /// the container at --url for at least --seconds and, with
    /// --until-eof, until stdin is closed. Prints the phase's figures as
    /// one JSON line (`puts`, `errors`, `p50_ms`, `p99_ms`, `max_ms`,
    /// `seconds`, and `slowest`: the five slowest PUTs as [sent at (Unix
    /// time), ms]); --acked FILE gets the acknowledged object names, one a
    /// line.
    ///
    /// Example: rowsync bench put-load --url http://127.0.0.1:6201/sdb1/3/AUTH_test/busy --seconds 10
    PutLoad {
        /// The container's URL on a container server:
        /// `http://HOST:PORT/DEVICE/PARTITION/ACCOUNT/CONTAINER`.
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 16)]
        writers: usize,
        /// The least the load lasts.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Goes on after --seconds until stdin is closed (at most ten
        /// minutes).
        #[arg(long)]
        until_eof: bool,
        /// First part of the object names (`TAG/wNN/oNNNNNNNN`).
        #[arg(long, default_value = "load")]
        tag: String,
        /// Writes the acknowledged object names here, one a line.
        #[arg(long)]
        acked: Option<PathBuf>,
    },
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

/// The scratch directory: `dir`, or a temporary one (removed when the
/// returned guard is dropped).
fn scratch(dir: Option<PathBuf>) -> anyhow::Result<(PathBuf, Option<tempfile::TempDir>)> {
    Ok(match dir {
        Some(d) => (d, None),
        None => {
            let t = tempfile::tempdir()?;
            (t.path().to_path_buf(), Some(t))
        }
    })
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.what {
        BenchCommand::Load {
            clients,
            seconds,
            dir,
        } => {
            anyhow::ensure!(
                clients > 0 && seconds > 0.0 && seconds <= 3600.0,
                "bad --clients/--seconds"
            );
            let (dir, _scratch) = scratch(dir)?;
            super::init_logging("warning");
            let rt = runtime()?;
            let r = rt.block_on(crate::bench::load_bench(&dir, clients, seconds))?;
            println!("clients:                {}", r.clients);
            println!("duration:               {:.2} s", r.seconds);
            println!("object PUTs acknowledged: {}", r.acknowledged);
            println!("errors:                 {}", r.errors);
            println!(
                "requests/s:             {:.0}",
                (r.acknowledged + r.errors) as f64 / r.seconds
            );
            println!(
                "rows committed/s:       {:.0}",
                r.acknowledged as f64 / (r.seconds + r.final_commit_seconds)
            );
            println!("final pending commit:   {:.3} s", r.final_commit_seconds);
            println!("acknowledged rows missing afterwards: {}", r.missing);
            anyhow::ensure!(r.missing == 0 && r.errors == 0, "load test failed");
            Ok(())
        }
        BenchCommand::Replication {
            rows,
            dbs,
            only,
            dir,
            repeat,
            no_visiting_pass,
            replicator_process,
        } => {
            anyhow::ensure!(rows > 0, "--rows must be positive");
            anyhow::ensure!((1..=10_000).contains(&repeat), "--repeat must be 1..=10000");
            let (dir, _scratch) = scratch(dir)?;
            super::init_logging("warning");
            let rt = runtime()?;
            let results = rt.block_on(crate::bench::replication_bench(
                &dir,
                rows,
                dbs,
                only.as_deref(),
                repeat,
                !no_visiting_pass,
                replicator_process,
            ))?;
            println!(
                "{:<45} {:>9} {:>9} {:>12}  path",
                "scenario", "rows", "seconds", "rows/s"
            );
            for (m, path) in &results {
                println!(
                    "{:<45} {:>9} {:>9.3} {:>12.0}  {path}",
                    m.name,
                    m.rows,
                    m.seconds,
                    m.rows_per_sec()
                );
            }
            Ok(())
        }
        BenchCommand::Writes {
            rows,
            writers,
            seconds,
            mode,
            dir,
        } => {
            anyhow::ensure!(
                rows > 0 && (1..=256).contains(&writers) && seconds > 0.0 && seconds <= 600.0,
                "bad --rows/--writers/--seconds"
            );
            let (dir, _scratch) = scratch(dir)?;
            super::init_logging("warning");
            let rt = runtime()?;
            let r = rt.block_on(crate::bench::writes_bench(
                &dir, rows, writers, seconds, &mode,
            ))?;
            println!(
                "{:<20} {:>8} {:>8} {:>7} {:>9} {:>9} {:>9}",
                "phase", "seconds", "PUTs", "errors", "p50 ms", "p99 ms", "max ms"
            );
            for p in [&r.baseline, &r.replicating] {
                println!(
                    "{:<20} {:>8.2} {:>8} {:>7} {:>9.2} {:>9.2} {:>9.2}",
                    p.name, p.seconds, p.puts, p.errors, p.p50_ms, p.p99_ms, p.max_ms
                );
            }
            println!(
                "replication pass: {:.2} s ({}); p99 ratio {:.2}x",
                r.pass_seconds,
                r.pass_path,
                r.replicating.p99_ms / r.baseline.p99_ms.max(1e-9)
            );
            println!(
                "acknowledged PUTs missing afterwards: {} on node 0, {} on node 1",
                r.missing.0, r.missing.1
            );
            anyhow::ensure!(
                r.missing == (0, 0) && r.baseline.errors == 0 && r.replicating.errors == 0,
                "writes bench failed: lost or refused PUTs"
            );
            Ok(())
        }
        BenchCommand::PutLoad {
            url,
            writers,
            seconds,
            until_eof,
            tag,
            acked,
        } => {
            anyhow::ensure!(
                (1..=256).contains(&writers) && seconds > 0.0 && seconds <= 600.0,
                "bad --writers/--seconds (1..=256 writers, up to 600 s)"
            );
            let parsed =
                reqwest::Url::parse(&url).map_err(|e| anyhow::anyhow!("--url {url:?}: {e}"))?;
            anyhow::ensure!(
                parsed.scheme() == "http"
                    && parsed
                        .path_segments()
                        .map_or(0, |s| s.filter(|p| !p.is_empty()).count())
                        == 4,
                "--url must be http://HOST:PORT/DEVICE/PARTITION/ACCOUNT/CONTAINER"
            );
            anyhow::ensure!(
                !tag.is_empty() && !tag.contains(['/', '?', '#']),
                "--tag must be a non-empty name without '/', '?' or '#'"
            );
            super::init_logging("warning");
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(!until_eof));
            if until_eof {
                // Stops when stdin ends (the caller closes it, or dies).
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
                    stop.store(true, std::sync::atomic::Ordering::Relaxed);
                });
            }
            let rt = runtime()?;
            let (phase, names) = rt.block_on(crate::bench::write_phase(
                "put-load",
                url.trim_end_matches('/'),
                writers,
                std::time::Duration::from_secs_f64(seconds),
                stop,
                &tag,
            ));
            if let Some(path) = acked {
                let mut text = names.join("\n");
                text.push('\n');
                std::fs::write(&path, text)
                    .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
            }
            println!("{}", serde_json::to_string(&phase)?);
            Ok(())
        }
        BenchCommand::Merge {
            rows,
            batch,
            names,
            dir,
        } => {
            anyhow::ensure!(rows > 0 && batch > 0, "--rows and --batch must be positive");
            let (dir, _scratch) = scratch(dir)?;
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
