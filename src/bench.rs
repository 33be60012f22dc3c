//! Benchmarks behind `rowsync bench`. They use real DB files in a scratch
//! directory and report throughput; nothing here asserts on time.

use std::path::Path;
use std::time::{Duration, Instant};

mod writes;
pub use writes::{write_phase, writes_bench, Phase, WritesReport};

use crate::db::{ContainerBroker, Result};
use crate::swift::merge::ObjectItem;
use crate::swift::Timestamp;

/// One measured step.
#[derive(Debug, Clone)]
pub struct Measure {
    pub name: String,
    pub rows: usize,
    pub seconds: f64,
}

impl Measure {
    pub fn rows_per_sec(&self) -> f64 {
        self.rows as f64 / self.seconds.max(1e-9)
    }
}

/// How benchmark object names relate to their insertion order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NamePattern {
    /// Names ascend with insertion order (append-only name index).
    Sequential,
    /// Each batch's names are spread over ~1000 places in the name index,
    /// as when uploads arrive in no particular name order.
    Scattered,
}

/// Deterministic object rows `first..first+count` (data timestamp `ts_base + i`).
pub fn synthetic_rows(
    first: usize,
    count: usize,
    ts_base: i64,
    names: NamePattern,
) -> Vec<ObjectItem> {
    (first..first + count)
        .map(|i| {
            let ts = Timestamp::from_raw(ts_base + i as i64, 0)
                .map(|t| t.internal())
                .unwrap_or_else(|_| "0000000001.00000".into());
            let mut it = ObjectItem::new(
                match names {
                    NamePattern::Sequential => format!("bench/object-{i:09}"),
                    NamePattern::Scattered => format!("bench/{:03}/object-{i:09}", i % 997),
                },
                ts,
                (i as i64 * 7919) % 1_000_000,
                "application/octet-stream",
                format!("{:032x}", (i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            );
            it.rowid = Some(i as i64 + 1);
            it
        })
        .collect()
}

fn bench_db(dir: &Path, name: &str) -> Result<ContainerBroker> {
    let path = dir
        .join("bench/containers/0/aaa")
        .join(name)
        .join(format!("{name}.db"));
    if let Some(hash_dir) = path.parent() {
        let _ = std::fs::remove_dir_all(hash_dir);
    }
    ContainerBroker::create(&path, "bench", name, Some(Timestamp::now()), 0)
}

/// The floor: a plain prepared INSERT of the rows into the same schema
/// (same triggers), one transaction per batch.
pub fn insert_floor(dir: &Path, rows: &[ObjectItem], batch: usize) -> Result<Measure> {
    let b = bench_db(dir, "00000000000000000000000000floor0")?;
    let start = Instant::now();
    for chunk in rows.chunks(batch) {
        b.insert_unmerged(chunk)?;
    }
    Ok(Measure {
        name: "floor: plain INSERT".into(),
        rows: rows.len(),
        seconds: start.elapsed().as_secs_f64(),
    })
}

fn merge_all(
    b: &ContainerBroker,
    rows: &[ObjectItem],
    batch: usize,
    name: &str,
) -> Result<Measure> {
    let start = Instant::now();
    for chunk in rows.chunks(batch) {
        b.merge_items(chunk.to_vec(), Some("bench-source"))?;
    }
    Ok(Measure {
        name: name.into(),
        rows: rows.len(),
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// The merge benchmark: floor, (a) fresh rows into an empty DB, (b) the same
/// rows replayed, (c) fresh batches into the full DB.
pub fn merge_bench(
    dir: &Path,
    total: usize,
    batch: usize,
    names: NamePattern,
) -> Result<Vec<Measure>> {
    merge_bench_with(dir, total, batch, names, &mut |_| {})
}

/// [`merge_bench`], calling `on_step` with each step's name before it runs.
pub fn merge_bench_with(
    dir: &Path,
    total: usize,
    batch: usize,
    names: NamePattern,
    on_step: &mut dyn FnMut(&str),
) -> Result<Vec<Measure>> {
    let base = Timestamp::parse("1700000000")
        .map(|t| t.raw())
        .unwrap_or(170_000_000_000_000);
    on_step("generating rows");
    let rows = synthetic_rows(0, total, base, names);
    on_step("floor: plain INSERT");
    let mut out = vec![insert_floor(dir, &rows, batch)?];
    let b = bench_db(dir, "0000000000000000000000000merge00")?;
    on_step("(a) merge_items, fresh rows");
    out.push(merge_all(&b, &rows, batch, "(a) merge_items, fresh rows")?);
    on_step("(b) merge_items, replayed rows");
    out.push(merge_all(
        &b,
        &rows,
        batch,
        "(b) merge_items, replayed rows",
    )?);
    on_step("(c) merge_items, fresh batches into full DB");
    // Ten fresh batches, each into the full DB, to average out noise.
    let extra = synthetic_rows(total, batch * 10, base, names);
    out.push(merge_all(
        &b,
        &extra,
        batch,
        "(c) merge_items, fresh batches into full DB",
    )?);
    Ok(out)
}

/// An in-process loopback cluster for the replication benchmark: two
/// nodes (a server each, one device each), a 2-replica ring, replicators.
struct BenchCluster {
    root: std::path::PathBuf,
    ports: Vec<u16>,
    shutdowns: Vec<tokio::sync::oneshot::Sender<()>>,
    ring: crate::ring::Ring,
    /// Measured passes run the replicator in a child process.
    child_replicator: bool,
}

const BENCH_SWIFT_CONF: &str =
    "[swift-hash]\nswift_hash_path_prefix = bench\nswift_hash_path_suffix = mark\n";

impl BenchCluster {
    async fn start(root: &Path) -> anyhow::Result<BenchCluster> {
        use std::sync::Arc;
        let mut ports = Vec::new();
        let mut shutdowns = Vec::new();
        let mut devs = Vec::new();
        for i in 0..2 {
            let devices = root.join(format!("node{i}"));
            std::fs::create_dir_all(devices.join(format!("sd{i}")))?;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let port = listener.local_addr()?.port();
            let conf = crate::config::ServerConf::from_str(&format!(
                "[DEFAULT]\ndevices = {}\nmount_check = false\nbind_ip = 127.0.0.1\nbind_port = {port}\n\
                 [app:container-server]\nlog_requests = false\n",
                devices.display()
            ))?;
            let swift = crate::config::SwiftConf::from_str(BENCH_SWIFT_CONF)?;
            let state = Arc::new(crate::server::AppState::new(conf, swift));
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            tokio::spawn(async move {
                let _ = crate::server::serve(state, listener, async {
                    let _ = rx.await;
                })
                .await;
            });
            let mut d = crate::ring::dev_cluster_devices(1, "127.0.0.1", port, 1)?.remove(0);
            d.device = format!("sd{i}");
            d.zone = i as i64 + 1;
            devs.push(d);
            ports.push(port);
            shutdowns.push(tx);
        }
        let ring = crate::ring::build_ring(devs, 2, 8)?;
        crate::ring::write_v1(&ring, root.join("container.ring.gz"))?;
        std::fs::write(root.join("swift.conf"), BENCH_SWIFT_CONF)?;
        Ok(BenchCluster {
            root: root.to_path_buf(),
            ports,
            shutdowns,
            ring,
            child_replicator: false,
        })
    }

    fn hash_conf() -> crate::swift::HashPathConfig {
        crate::swift::HashPathConfig::new("bench", "mark")
    }

    /// Node `i`'s replicator config (`extra`: more `[container-replicator]`
    /// options).
    fn replicator_conf(&self, i: usize, extra: &str) -> String {
        format!(
            "[DEFAULT]\ndevices = {}\nmount_check = false\nbind_ip = 127.0.0.1\nbind_port = {}\n\
             swift_dir = {}\n[container-replicator]\nrecon_cache_path = {}\ndb_transfer = http\n\
             databases_per_second = 0\nnode_timeout = 60\nconcurrency = 8\nlog_level = WARNING\n{extra}\n",
            self.root.join(format!("node{i}")).display(),
            self.ports[i],
            self.root.display(),
            self.root.join(format!("node{i}")).display(),
        )
    }

    fn replicator(
        &self,
        i: usize,
        extra: &str,
    ) -> anyhow::Result<crate::replication::daemon::Replicator<crate::db::Container>> {
        let conf = crate::config::ReplicatorConf::from_str(&self.replicator_conf(i, extra))?;
        let swift = crate::config::SwiftConf::from_str(BENCH_SWIFT_CONF)?;
        let ring = crate::ring::RingHandle::open(self.root.join("container.ring.gz"))?;
        Ok(crate::replication::daemon::Replicator::new(
            conf, &swift, ring,
        ))
    }

    /// Creates `account/container` on node `i` (at its ring partition) and
    /// returns the broker; also the index of the other primary.
    fn create(&self, i: usize, container: &str) -> anyhow::Result<ContainerBroker> {
        self.create_at(i, container, Timestamp::now())
    }

    fn create_at(
        &self,
        i: usize,
        container: &str,
        created: Timestamp,
    ) -> anyhow::Result<ContainerBroker> {
        let hc = Self::hash_conf();
        let part = self.ring.get_part(&hc, "bench", Some(container), None)?;
        let hash = hc.hash_path("bench", Some(container), None)?;
        let dev = self.root.join(format!("node{i}/sd{i}"));
        let path = crate::db::files::db_path(&dev, "containers", part, &hash);
        Ok(ContainerBroker::create(
            &path,
            "bench",
            container,
            Some(created),
            0,
        )?)
    }

    fn open(&self, i: usize, container: &str) -> anyhow::Result<ContainerBroker> {
        Ok(ContainerBroker::open(self.db_file(i, container)?)?)
    }

    /// The ring partition of `bench/<container>`.
    fn part_of(&self, container: &str) -> anyhow::Result<u32> {
        Ok(self
            .ring
            .get_part(&Self::hash_conf(), "bench", Some(container), None)?)
    }

    /// The DB file of `bench/<container>` on node `i`.
    fn db_file(&self, i: usize, container: &str) -> anyhow::Result<std::path::PathBuf> {
        let hc = Self::hash_conf();
        let part = self.ring.get_part(&hc, "bench", Some(container), None)?;
        let hash = hc.hash_path("bench", Some(container), None)?;
        let dev = self.root.join(format!("node{i}/sd{i}"));
        Ok(crate::db::files::db_path(&dev, "containers", part, &hash))
    }

    /// Small DBs `small-<k>` (five rows each, the same on both nodes),
    /// created on two threads.
    fn create_small_dbs(&self, ks: impl Iterator<Item = usize>, base: i64) -> anyhow::Result<()> {
        let ks: Vec<usize> = ks.collect();
        let created = Timestamp::from_raw(base, 0)?;
        std::thread::scope(|scope| {
            let workers: Vec<_> = ks
                .chunks(ks.len().div_ceil(2).max(1))
                .map(|part| {
                    scope.spawn(move || -> anyhow::Result<()> {
                        for &k in part {
                            let name = format!("small-{k:06}");
                            let rows = synthetic_rows(k * 5, 5, base, NamePattern::Sequential);
                            // Node 1 gets a copy of node 0's file, as a
                            // whole-DB transfer (complete_rsync) leaves it.
                            let b = self.create_at(0, &name, created)?;
                            fill(&b, &rows)?;
                            drop(b);
                            let to = self.db_file(1, &name)?;
                            if let Some(dir) = to.parent() {
                                std::fs::create_dir_all(dir)?;
                            }
                            std::fs::copy(self.db_file(0, &name)?, &to)?;
                        }
                        Ok(())
                    })
                })
                .collect();
            for w in workers {
                w.join()
                    .map_err(|_| anyhow::anyhow!("a DB-creating thread panicked"))??;
            }
            Ok(())
        })
    }

    /// One new row in each of the small DBs `ks` on node 0.
    fn add_rows(&self, ks: &[usize], base: i64) -> anyhow::Result<()> {
        for &k in ks {
            let b = self.open(0, &format!("small-{k:06}"))?;
            let mut row =
                synthetic_rows(10_000_000 + k, 1, base + 1_000_000, NamePattern::Sequential);
            row[0].rowid = None;
            b.merge_items(row, None)?;
        }
        Ok(())
    }

    fn stop(self) {
        for s in self.shutdowns {
            let _ = s.send(());
        }
    }
}

fn fill(b: &ContainerBroker, rows: &[ObjectItem]) -> anyhow::Result<()> {
    for chunk in rows.chunks(10_000) {
        b.merge_items(chunk.to_vec(), None)?;
    }
    Ok(())
}

async fn timed_pass(
    cluster: &BenchCluster,
    extra: &str,
    name: &str,
    rows: usize,
) -> anyhow::Result<(Measure, crate::replication::stats::Stats)> {
    if cluster.child_replicator {
        return child_pass(cluster, extra, name, rows).await;
    }
    let r = cluster.replicator(0, extra)?;
    let start = Instant::now();
    let stats = r.run_once(&Default::default()).await;
    Ok((
        Measure {
            name: name.into(),
            rows,
            seconds: start.elapsed().as_secs_f64(),
        },
        stats,
    ))
}

/// Peak RSS (kB) of the last replicator run in a child process.
static CHILD_PEAK_RSS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Longest a child replicator pass may run before it is killed.
const CHILD_PASS_LIMIT: Duration = Duration::from_secs(3600);

/// One pass of node 0's replicator as `rowsync replicator --once` in a
/// child process (this executable); its own peak RSS is sampled from
/// `/proc` while it runs ([`wait_child`]); its stats come from its recon
/// cache.
async fn child_pass(
    cluster: &BenchCluster,
    extra: &str,
    name: &str,
    rows: usize,
) -> anyhow::Result<(Measure, crate::replication::stats::Stats)> {
    let node = cluster.root.join("node0");
    let conf = node.join("replicator.conf");
    std::fs::write(&conf, cluster.replicator_conf(0, extra))?;
    let recon = node.join("container.recon");
    let _ = std::fs::remove_file(&recon);
    let start = Instant::now();
    let child = std::process::Command::new(std::env::current_exe()?)
        .arg("replicator")
        .arg("--kind")
        .arg("container")
        .arg("--config")
        .arg(&conf)
        .arg("--swift-conf")
        .arg(cluster.root.join("swift.conf"))
        .arg("--once")
        .stdin(std::process::Stdio::null())
        .spawn()?;
    let (status, maxrss_kb) = tokio::task::spawn_blocking(move || wait_child(child)).await??;
    let seconds = start.elapsed().as_secs_f64();
    anyhow::ensure!(status == 0, "the replicator exited with status {status}");
    CHILD_PEAK_RSS.store(maxrss_kb, std::sync::atomic::Ordering::Relaxed);
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&recon)?)?;
    let st = &v["replication_stats"];
    let n = |k: &str| st[k].as_u64().unwrap_or(0);
    let stats = crate::replication::stats::Stats {
        attempted: n("attempted"),
        success: n("success"),
        failure: n("failure"),
        no_change: n("no_change"),
        hashmatch: n("hashmatch"),
        rsync: n("rsync"),
        diff: n("diff"),
        diff_capped: n("diff_capped"),
        remote_merge: n("remote_merge"),
        ..Default::default()
    };
    Ok((
        Measure {
            name: name.into(),
            rows,
            seconds,
        },
        stats,
    ))
}

/// Waits (bounded by [`CHILD_PASS_LIMIT`]; killed after it) for `child`:
/// its exit code (-1 if killed by a signal) and peak RSS in kB, the
/// child's own `VmHWM` read every 5 ms until it exits (`wait4`'s
/// `ru_maxrss` would count this process's memory too: the child starts as
/// a copy of it).
fn wait_child(mut child: std::process::Child) -> anyhow::Result<(i32, u64)> {
    let deadline = Instant::now() + CHILD_PASS_LIMIT;
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    loop {
        if let Some(kb) = std::fs::read_to_string(&status_file)
            .ok()
            .and_then(|s| status_kb(&s, "VmHWM:"))
        {
            peak = peak.max(kb);
        }
        if let Some(status) = child.try_wait()? {
            return Ok((status.code().unwrap_or(-1), peak));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!("the replicator pass ran over {CHILD_PASS_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The replication benchmark: usync, rsync_then_merge and a whole-DB ship
/// of `rows` rows, and one pass over `dbs` small in-sync DBs, each on a
/// two-node loopback cluster. Returns each step with the path the
/// replicator took.
pub async fn replication_bench(
    dir: &Path,
    rows: usize,
    dbs: usize,
    only: Option<&str>,
    repeat: usize,
    visiting_pass: bool,
    child_replicator: bool,
) -> anyhow::Result<Vec<(Measure, String)>> {
    let base = Timestamp::parse("1700000000").map(|t| t.raw()).unwrap_or(0);
    let mut out = Vec::new();
    let path = |s: &crate::replication::stats::Stats| {
        format!(
            "rsync={} diff={} diff_capped={} remote_merge={} no_change={} hashmatch={} failure={}",
            s.rsync, s.diff, s.diff_capped, s.remote_merge, s.no_change, s.hashmatch, s.failure
        )
    };
    let max_diffs = rows / 1000 + 10;
    let usync_conf = format!("per_diff = 1000\nmax_diffs = {max_diffs}");
    let want = |name: &str| only.is_none_or(|o| o == name);
    // usync: the peer has as many rows of its own, so the whole-DB rule
    // does not apply and every row goes as merge_items.
    if want("usync") {
        let root = dir.join("usync");
        let mut cluster = BenchCluster::start(&root).await?;
        cluster.child_replicator = child_replicator;
        let local = cluster.create(0, "usync")?;
        let remote = cluster.create(1, "usync")?;
        fill(
            &local,
            &synthetic_rows(0, rows, base, NamePattern::Sequential),
        )?;
        fill(
            &remote,
            &synthetic_rows(rows, rows, base, NamePattern::Sequential),
        )?;
        reset_peak_rss();
        let (m, s) = timed_pass(&cluster, &usync_conf, "usync (merge_items batches)", rows).await?;
        out.push((m, format!("{} {}", path(&s), rss_note())));
        cluster.stop();
    }
    // rsync_then_merge: the peer has 5% as many rows.
    if want("rsync_then_merge") {
        let root = dir.join("rtm");
        let mut cluster = BenchCluster::start(&root).await?;
        cluster.child_replicator = child_replicator;
        let local = cluster.create(0, "rtm")?;
        let remote = cluster.create(1, "rtm")?;
        fill(
            &local,
            &synthetic_rows(0, rows, base, NamePattern::Sequential),
        )?;
        fill(
            &remote,
            &synthetic_rows(rows, rows / 20, base, NamePattern::Sequential),
        )?;
        reset_peak_rss();
        let (m, s) = timed_pass(
            &cluster,
            &usync_conf,
            "rsync_then_merge (whole DB + remote merge)",
            rows,
        )
        .await?;
        out.push((m, format!("{} {}", path(&s), rss_note())));
        cluster.stop();
    }
    // A missing replica: the whole DB is shipped.
    if want("ship") {
        let root = dir.join("ship");
        let mut cluster = BenchCluster::start(&root).await?;
        cluster.child_replicator = child_replicator;
        let local = cluster.create(0, "ship")?;
        fill(
            &local,
            &synthetic_rows(0, rows, base, NamePattern::Sequential),
        )?;
        reset_peak_rss();
        let (m, s) = timed_pass(
            &cluster,
            &usync_conf,
            "missing replica (whole DB + complete_rsync)",
            rows,
        )
        .await?;
        out.push((m, format!("{} {}", path(&s), rss_note())));
        let _ = cluster.open(1, "ship")?;
        cluster.stop();
    }
    // Many small DBs already in sync.
    if want("many") {
        let root = dir.join("many");
        let mut cluster = BenchCluster::start(&root).await?;
        cluster.child_replicator = child_replicator;
        cluster.create_small_dbs(0..dbs, base)?;
        // A first pass records the sync points; the second is measured.
        reset_peak_rss();
        let _ = timed_pass(&cluster, "", "warm-up", 0).await?;
        if visiting_pass {
            // Every DB visited, as Swift does (`full_pass_interval = 0`); the
            // first such pass after the sync points moved fills the peer's
            // cache of sync answers, as any steady-state pass finds it.
            let _ = timed_pass(&cluster, "full_pass_interval = 0", "every DB", dbs).await?;
            let (mut m, s) =
                timed_pass(&cluster, "full_pass_interval = 0", "every DB", dbs).await?;
            m.name = "pass over in-sync DBs, each visited".into();
            out.push((m, format!("{} {}", path(&s), rss_note())));
        }
        // With nothing changed since, a pass skips them without opening
        // them (after one more pass that settles the pass state).
        let _ = timed_pass(&cluster, "", "settle", 0).await?;
        reset_peak_rss();
        let (mut m, s) = timed_pass(&cluster, "", "unchanged", dbs).await?;
        for _ in 1..repeat {
            let (again, _) = timed_pass(&cluster, "", "unchanged", dbs).await?;
            if again.seconds < m.seconds {
                m = again;
            }
        }
        m.name = "pass with nothing changed (skips)".into();
        out.push((
            m,
            format!("{} skipped={} {}", path(&s), s.skipped, rss_note()),
        ));
        // 1% of the DBs gain a row on the sending node.
        let changed: Vec<usize> = (0..dbs).step_by(100).collect();
        cluster.add_rows(&changed, base)?;
        reset_peak_rss();
        let (mut m, s) = timed_pass(&cluster, "", "1% changed", changed.len()).await?;
        m.name = format!("pass with 1% changed ({} of {dbs} DBs)", changed.len());
        out.push((
            m,
            format!("{} skipped={} {}", path(&s), s.skipped, rss_note()),
        ));
        cluster.stop();
        // The same changed DBs alone (a cluster holding only them).
        let root = dir.join("many-alone");
        let mut alone = BenchCluster::start(&root).await?;
        alone.child_replicator = child_replicator;
        alone.create_small_dbs(changed.iter().copied(), base)?;
        for _ in 0..3 {
            let _ = timed_pass(&alone, "", "warm-up", 0).await?;
        }
        alone.add_rows(&changed, base)?;
        let (mut m, s) = timed_pass(&alone, "", "alone", changed.len()).await?;
        m.name = format!("pass over those {} DBs alone", changed.len());
        out.push((m, path(&s)));
        alone.stop();
    }
    Ok(out)
}

/// This process's RSS when the peak was last reset (kB).
static RSS_AT_RESET: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A `/proc/self/status` figure in kB.
fn proc_status_kb(key: &str) -> Option<u64> {
    status_kb(&std::fs::read_to_string("/proc/self/status").ok()?, key)
}

/// A figure in kB from the text of a `/proc/<pid>/status`.
fn status_kb(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Resets this process's peak RSS (Linux `clear_refs`), so the next
/// [`rss_note`] covers what follows; notes the RSS now.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    RSS_AT_RESET.store(
        proc_status_kb("VmRSS:").unwrap_or(0),
        std::sync::atomic::Ordering::Relaxed,
    );
}

/// This process's peak RSS since the last reset (the replicator and, in
/// these in-process benchmarks, both servers), and its RSS at the reset
/// (memory the allocator kept from setting the step up).
fn rss_note() -> String {
    let child = CHILD_PEAK_RSS.swap(0, std::sync::atomic::Ordering::Relaxed);
    if child > 0 {
        return format!("replicator_peak_rss={}MB", child / 1024);
    }
    let start = RSS_AT_RESET.load(std::sync::atomic::Ordering::Relaxed);
    proc_status_kb("VmHWM:").map_or_else(String::new, |kb| {
        format!("peak_rss={}MB (at start {}MB)", kb / 1024, start / 1024)
    })
}

/// One object PUT as an object server sends it to a container server
/// (1 KiB, the empty-body etag); true if acknowledged.
async fn object_put(http: &reqwest::Client, url: &str, timeout_secs: u64) -> bool {
    http.put(url)
        .header("x-timestamp", Timestamp::now().internal())
        .header("x-size", "1024")
        .header("x-content-type", "application/octet-stream")
        .header("x-etag", "d41d8cd98f00b204e9800998ecf8427e")
        .timeout(std::time::Duration::from_secs(timeout_secs))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

/// Result of the container-server load test.
#[derive(Debug, Clone)]
pub struct LoadReport {
    pub clients: usize,
    pub seconds: f64,
    pub acknowledged: u64,
    pub errors: u64,
    /// Seconds to commit what was still pending after the load.
    pub final_commit_seconds: f64,
    /// Acknowledged rows missing from the listing afterwards.
    pub missing: u64,
}

/// `clients` concurrent clients PUT object rows into one container of an
/// in-process server on loopback for `seconds`; afterwards every
/// acknowledged row must be in the DB.
pub async fn load_bench(dir: &Path, clients: usize, seconds: f64) -> anyhow::Result<LoadReport> {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    let devices = dir.join("srv");
    std::fs::create_dir_all(devices.join("sda"))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let conf = crate::config::ServerConf::from_str(&format!(
        "[DEFAULT]\ndevices = {}\nmount_check = false\nbind_ip = 127.0.0.1\nbind_port = {}\n\
         [app:container-server]\nlog_requests = false\n",
        devices.display(),
        addr.port()
    ))?;
    let swift = crate::config::SwiftConf::from_str(BENCH_SWIFT_CONF)?;
    let state = Arc::new(crate::server::AppState::new(conf, swift));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::server::serve(state, listener, async {
        let _ = rx.await;
    }));
    let http = reqwest::Client::builder().no_proxy().build()?;
    let base = format!("http://{addr}/sda/0/bench/load");
    let r = http
        .put(&base)
        .header("x-timestamp", Timestamp::now().internal())
        .send()
        .await?;
    anyhow::ensure!(
        r.status().is_success(),
        "container PUT answered {}",
        r.status()
    );
    let acked = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + std::time::Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..clients {
        let (http, base, acked, errors) =
            (http.clone(), base.clone(), acked.clone(), errors.clone());
        tasks.spawn(async move {
            let mut mine = Vec::new();
            let mut i = 0u64;
            while Instant::now() < deadline {
                let name = format!("c{c:03}/o{i:08}");
                if object_put(&http, &format!("{base}/{name}"), 30).await {
                    mine.push(name);
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                i += 1;
            }
            if let Ok(mut a) = acked.lock() {
                a.extend(mine);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = start.elapsed().as_secs_f64();
    let acked: Vec<String> = acked.lock().map(|a| a.clone()).unwrap_or_default();
    let db_path = {
        let hc = crate::swift::HashPathConfig::new("bench", "mark");
        let hash = hc.hash_path("bench", Some("load"), None)?;
        crate::db::files::db_path(&devices.join("sda"), "containers", 0, &hash)
    };
    let commit_start = Instant::now();
    let present: std::collections::HashSet<String> = tokio::task::spawn_blocking(move || {
        let b = ContainerBroker::open(&db_path)?;
        b.commit_pending()?;
        let rows = b.items_since_no_commit(-1, usize::MAX >> 1)?;
        Ok::<_, crate::db::DbError>(rows.into_iter().map(|r| r.name).collect())
    })
    .await??;
    let final_commit_seconds = commit_start.elapsed().as_secs_f64();
    let missing = acked.iter().filter(|n| !present.contains(*n)).count() as u64;
    let _ = tx.send(());
    let _ = server.await;
    Ok(LoadReport {
        clients,
        seconds: elapsed,
        acknowledged: acked.len() as u64,
        errors: errors.load(Ordering::Relaxed),
        final_commit_seconds,
        missing,
    })
}
