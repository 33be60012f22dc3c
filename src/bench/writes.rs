//! `rowsync bench writes`: object PUTs into a big container while it is
//! being replicated into, beside the same write load with no replication.
//!
//! Two in-process servers on loopback; the measured replicator pass runs
//! as its own process (`rowsync replicator --once`), as on a storage
//! node. Node 0 holds `rows` rows of the
//! container; node 1 holds its own rows (`usync`: as many, so every row
//! goes as `merge_items`) or 5% as many (`rsync_then_merge`: the whole DB
//! is shipped and node 1 merges its own rows into it). `writers` clients
//! PUT objects into node 1's container server, first for `seconds` with
//! nothing else running (the baseline), then for as long as node 0's
//! replicator pass into node 1 runs. Afterwards node
//! 1's replicator sends the new rows back, and every acknowledged PUT must
//! be a row on both replicas.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{fill, object_put, synthetic_rows, BenchCluster, NamePattern};
use crate::swift::Timestamp;

/// Latencies of one phase.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Phase {
    pub name: String,
    pub seconds: f64,
    pub puts: usize,
    pub errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// The slowest PUTs: when each was sent (Unix time, seconds) and how
    /// long it took (ms), slowest first (at most five); to find what they
    /// waited for in the servers' logs.
    pub slowest: Vec<(f64, f64)>,
}

/// What `bench writes` measured.
#[derive(Debug, Clone)]
pub struct WritesReport {
    pub baseline: Phase,
    pub replicating: Phase,
    /// The replicator pass into node 1 and what it did.
    pub pass_seconds: f64,
    pub pass_path: String,
    /// Acknowledged PUTs not on node 0 / node 1 afterwards.
    pub missing: (usize, usize),
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Runs `writers` PUT loops against `base` (a container's URL on a
/// container server, Swift's or rowsync's) until `stop` says so (and at
/// least `min` has passed); returns the phase's figures and the names
/// acknowledged (`tag/wNN/oNNNNNNNN`). The load of `bench writes`, and of
/// `bench put-load` for a server this process did not start.
pub async fn write_phase(
    name: &str,
    base: &str,
    writers: usize,
    min: Duration,
    stop: Arc<std::sync::atomic::AtomicBool>,
    tag: &str,
) -> (Phase, Vec<String>) {
    let http = match reqwest::Client::builder().no_proxy().build() {
        Ok(h) => h,
        Err(_) => reqwest::Client::new(),
    };
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let lat = Arc::new(Mutex::new(Vec::<(f64, f64)>::new()));
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    // Bounded whatever `stop` does: ten minutes at most.
    let hard_stop = start + Duration::from_secs(600);
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..writers {
        let (http, base, acked, lat, errors, stop) = (
            http.clone(),
            base.to_string(),
            acked.clone(),
            lat.clone(),
            errors.clone(),
            stop.clone(),
        );
        let tag = tag.to_string();
        tasks.spawn(async move {
            let mut mine = Vec::new();
            let mut times = Vec::new();
            let mut i = 0u64;
            loop {
                let now = Instant::now();
                if now >= hard_stop
                    || (now.duration_since(start) >= min && stop.load(Ordering::Relaxed))
                {
                    break;
                }
                let obj = format!("{tag}/w{w:02}/o{i:08}");
                let sent = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64());
                let t = Instant::now();
                let ok = object_put(&http, &format!("{base}/{obj}"), 60).await;
                times.push((t.elapsed().as_secs_f64() * 1000.0, sent));
                if ok {
                    mine.push(obj);
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                i += 1;
            }
            if let Ok(mut a) = acked.lock() {
                a.extend(mine);
            }
            if let Ok(mut l) = lat.lock() {
                l.extend(times);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let seconds = start.elapsed().as_secs_f64();
    let mut timed = lat.lock().map(|l| l.clone()).unwrap_or_default();
    timed.sort_by(|a, b| a.0.total_cmp(&b.0));
    let slowest = timed
        .iter()
        .rev()
        .take(5)
        .map(|&(ms, at)| (at, ms))
        .collect();
    let lat: Vec<f64> = timed.into_iter().map(|(ms, _)| ms).collect();
    let acked = acked.lock().map(|a| a.clone()).unwrap_or_default();
    (
        Phase {
            name: name.into(),
            seconds,
            puts: acked.len(),
            errors: errors.load(Ordering::Relaxed),
            p50_ms: percentile(&lat, 0.50),
            p99_ms: percentile(&lat, 0.99),
            max_ms: lat.last().copied().unwrap_or(0.0),
            slowest,
        },
        acked,
    )
}

/// The benchmark (see the module doc). `mode` is `usync` or
/// `rsync_then_merge`.
pub async fn writes_bench(
    dir: &std::path::Path,
    rows: usize,
    writers: usize,
    seconds: f64,
    mode: &str,
) -> anyhow::Result<WritesReport> {
    let base_ts = Timestamp::parse("1700000000").map(|t| t.raw()).unwrap_or(0);
    let peer_rows = match mode {
        "usync" => rows,
        "rsync_then_merge" => rows / 20,
        other => anyhow::bail!("unknown mode {other:?} (usync or rsync_then_merge)"),
    };
    let cluster = BenchCluster::start(&dir.join("writes")).await?;
    let container = "busy";
    let (local, remote) = (cluster.create(0, container)?, cluster.create(1, container)?);
    let (l2, r2) = (
        local.db_file().to_path_buf(),
        remote.db_file().to_path_buf(),
    );
    drop((local, remote));
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let local = crate::db::ContainerBroker::open(&l2)?;
        fill(
            &local,
            &synthetic_rows(0, rows, base_ts, NamePattern::Sequential),
        )?;
        let remote = crate::db::ContainerBroker::open(&r2)?;
        fill(
            &remote,
            &synthetic_rows(rows, peer_rows, base_ts, NamePattern::Sequential),
        )?;
        Ok(())
    })
    .await??;
    let part = cluster.part_of(container)?;
    let base = format!(
        "http://127.0.0.1:{}/sd1/{part}/bench/{container}",
        cluster.ports[1]
    );
    let min = Duration::from_secs_f64(seconds.max(0.1));
    // Baseline: the same writers, nothing else running.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let (baseline, mut acked) =
        write_phase("no replication", &base, writers, min, stop, "base").await;
    // Replicating: node 0's pass into node 1, writers until it ends.
    let max_diffs = rows / 1000 + 10;
    let conf = format!("per_diff = 1000\nmax_diffs = {max_diffs}");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // (Only while the pass runs: a phase that outlasted it would mix in
    // PUTs with nothing else running.)
    let writes = tokio::spawn({
        let (base, stop) = (base.clone(), stop.clone());
        async move {
            write_phase(
                "while replicating",
                &base,
                writers,
                Duration::ZERO,
                stop,
                "repl",
            )
            .await
        }
    });
    // The replicator runs as its own process, as on a storage node.
    let (pass, stats) = super::child_pass(&cluster, &conf, "pass", rows).await?;
    let pass_seconds = pass.seconds;
    stop.store(true, Ordering::Relaxed);
    let (replicating, more) = writes.await?;
    acked.extend(more);
    let pass_path = format!(
        "rsync={} diff={} remote_merge={} failure={}",
        stats.rsync, stats.diff, stats.remote_merge, stats.failure
    );
    // Node 1's new rows go back to node 0; then both must hold them all.
    // (A few passes: node 1 now holds more rows than one pass's budget.)
    let back = cluster.replicator(1, &conf)?;
    for _ in 0..10 {
        if back.run_once(&Default::default()).await.diff_capped == 0 {
            break;
        }
    }
    let files = (
        cluster.db_file(0, container)?,
        cluster.db_file(1, container)?,
    );
    let acked = Arc::new(acked);
    let missing = {
        let acked = acked.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<(usize, usize)> {
            let count = |path: &std::path::Path| -> anyhow::Result<usize> {
                let b = crate::db::ContainerBroker::open(path)?;
                b.commit_pending()?;
                let names: std::collections::HashSet<String> = b
                    .items_since_no_commit(-1, usize::MAX >> 1)?
                    .into_iter()
                    .map(|r| r.name)
                    .collect();
                Ok(acked.iter().filter(|n| !names.contains(*n)).count())
            };
            Ok((count(&files.0)?, count(&files.1)?))
        })
        .await??
    };
    cluster.stop();
    Ok(WritesReport {
        baseline,
        replicating,
        pass_seconds,
        pass_path,
        missing,
    })
}
