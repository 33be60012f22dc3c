//! `rowsync chaos`: randomized fault runs over real processes on loopback.
//!
//! Each run (one seed) lays out a cluster of N nodes ([`cluster`]): a
//! container and an account server and replicator per node, as child
//! processes, every link between two nodes through a controllable proxy
//! ([`proxy`]). A client load of object PUTs, overwrites, DELETEs and
//! metadata POSTs ([`load`]) runs while a schedule drawn from the seed
//! injects faults at random moments: kill -9 of servers and replicators,
//! partitions (refused or black-holed links, one way or both, or a node
//! isolated), a full disk, a slow disk (fail points, in builds that have
//! them), and a corrupt DB file. Then everything is healed, replication
//! runs, and the [`oracle`] checks the promise: every acknowledged write
//! on every replica with its newest value, identical replicas, intact DB
//! files, no panic; and convergence within a bounded time. A failing run
//! prints its seed and schedule, which reproduce it.
//!
//! With a Swift node (`--swift-node`), one node runs Swift 2.38's servers
//! and replicators (Python, [`swift`]) instead of rowsync's: faults hit it
//! as any other node (except the slow disk, which needs fail points; its
//! corrupt DBs are header-corrupted, see [`schedule`]), whole DBs travel by
//! rsync, and the same oracle reads its DB files.

pub mod cluster;
pub mod load;
pub mod oracle;
pub mod proxy;
pub mod swift;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use cluster::{Cluster, Disk, Role, KINDS};
use load::Load;
use proxy::Mode;

/// Knobs of a chaos session.
#[derive(Debug, Clone)]
pub struct Options {
    pub seed: u64,
    pub runs: u64,
    pub nodes: usize,
    /// Seconds of load and faults per run.
    pub duration: f64,
    pub containers: usize,
    pub writers: usize,
    /// Seconds between replication passes.
    pub interval: f64,
    /// Seconds convergence may take after healing.
    pub converge_timeout: f64,
    /// Where runs lay out their clusters (default: a temporary directory).
    pub dir: Option<PathBuf>,
    /// Keep every run's directory (failed runs' are always kept).
    pub keep: bool,
    /// Run one node as a real Swift 2.38 node.
    pub swift: Option<SwiftOptions>,
}

/// Which node of a run is the Swift node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwiftPick {
    /// This node (0-based).
    Node(usize),
    /// Node `seed mod nodes` (0-based) of each run.
    FromSeed,
}

/// A Swift node: which one, and the venv whose Python runs Swift 2.38.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwiftOptions {
    pub venv: PathBuf,
    pub node: SwiftPick,
}

impl Options {
    /// The Swift node (0-based) of the run with `seed`, if any.
    pub fn swift_node(&self, seed: u64) -> Option<usize> {
        let n = self.nodes.max(1);
        self.swift.as_ref().map(|s| match s.node {
            SwiftPick::Node(k) => k.min(n - 1),
            SwiftPick::FromSeed => (seed % n as u64) as usize,
        })
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            seed: 1,
            runs: 1,
            nodes: 3,
            duration: 6.0,
            containers: 3,
            writers: 2,
            interval: 1.0,
            converge_timeout: 90.0,
            dir: None,
            keep: false,
            swift: None,
        }
    }
}

/// One injected fault.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    KillServer {
        node: usize,
        kind: &'static str,
    },
    KillReplicator {
        node: usize,
        kind: &'static str,
    },
    /// Traffic from `from` to `to` cut (`both`: and back).
    Partition {
        from: usize,
        to: usize,
        both: bool,
        mode: Mode,
    },
    /// Every link to and from `node` cut.
    Isolate {
        node: usize,
    },
    FullDisk {
        node: usize,
    },
    SlowDisk {
        node: usize,
    },
    /// One container DB file of `node` corrupted while its processes are
    /// down (`header`: the SQLite header, else a page inside the file).
    CorruptDb {
        node: usize,
        target: usize,
        header: bool,
    },
}

impl Fault {
    /// The fault's kind, as RELIABILITY.md counts them.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::KillServer { .. } => "kill-9 server",
            Fault::KillReplicator { .. } => "kill-9 replicator",
            Fault::Partition { .. } => "partition",
            Fault::Isolate { .. } => "isolated node",
            Fault::FullDisk { .. } => "full disk",
            Fault::SlowDisk { .. } => "slow disk",
            Fault::CorruptDb { .. } => "corrupt DB",
        }
    }
}

/// A fault with its start and length (seconds from the start of the load).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub at: f64,
    pub lasts: f64,
    pub fault: Fault,
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "t={:.2}s +{:.2}s {:?}", self.at, self.lasts, self.fault)
    }
}

/// The faults of the run with `seed` (the same seed and options, the same
/// schedule). The run's Swift node, if any, gets no slow disk (Swift has
/// no fail points; a kill -9 of its server instead, as in builds without
/// them) and only header corruption: Swift runs no integrity check, so a
/// page corrupted at rest that no read touches would never be noticed by
/// Swift (and the oracle's integrity_check would report it), whereas a
/// broken header fails every open, which Swift answers by quarantining the
/// DB so its peers restore it. The random draws are the same either way:
/// a run with a Swift node has the faults, times and targets of the same
/// seed without one, but for these substitutions.
pub fn schedule(seed: u64, opts: &Options, failpoints: bool) -> Vec<Event> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed_c4a0_5000_0000);
    let n = opts.nodes;
    let swift = opts.swift_node(seed);
    let count = rng.gen_range(3..=6);
    let mut events = Vec::new();
    for _ in 0..count {
        let at = rng.gen_range(0.3..(opts.duration * 0.8).max(0.4));
        let lasts = rng.gen_range(0.5..3.0);
        let node = rng.gen_range(0..n);
        let kind = KINDS[rng.gen_range(0..KINDS.len())];
        let fault = match rng.gen_range(0..100) {
            0..=21 => Fault::KillServer { node, kind },
            22..=39 => Fault::KillReplicator { node, kind },
            40..=59 => {
                let to = (node + rng.gen_range(1..n.max(2))) % n;
                Fault::Partition {
                    from: node,
                    to,
                    both: rng.gen_bool(0.5),
                    mode: if rng.gen_bool(0.5) {
                        Mode::Refuse
                    } else {
                        Mode::BlackHole
                    },
                }
            }
            60..=67 => Fault::Isolate { node },
            68..=79 => Fault::FullDisk { node },
            80..=87 if failpoints && swift != Some(node) => Fault::SlowDisk { node },
            80..=87 => Fault::KillServer { node, kind },
            _ => {
                let target = rng.gen_range(0..opts.containers.max(1));
                let header = rng.gen_bool(0.5) || swift == Some(node);
                Fault::CorruptDb {
                    node,
                    target,
                    header,
                }
            }
        };
        events.push(Event { at, lasts, fault });
    }
    events.sort_by(|a, b| a.at.total_cmp(&b.at));
    events
}

/// What one run found.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub seed: u64,
    pub events: Vec<Event>,
    pub writes: usize,
    pub acked: usize,
    /// Seconds from healing to identical replicas (None: not converged).
    pub converged_after: Option<f64>,
    pub problems: Vec<String>,
    pub dir: PathBuf,
    /// The node (0-based) that ran Swift, if any.
    pub swift_node: Option<usize>,
}

impl RunReport {
    pub fn passed(&self) -> bool {
        self.problems.is_empty() && self.converged_after.is_some()
    }

    /// One line: PASS/FAIL, seed, writes, faults, convergence.
    pub fn line(&self, interval: f64) -> String {
        let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
        for e in &self.events {
            *kinds.entry(e.fault.kind()).or_default() += 1;
        }
        let faults: Vec<String> = kinds.iter().map(|(k, n)| format!("{k}:{n}")).collect();
        let conv = match self.converged_after {
            Some(s) => format!(
                "converged in {s:.1} s (~{} passes)",
                (s / interval).ceil() as u64 + 1
            ),
            None => "NOT converged".into(),
        };
        let swift = match self.swift_node {
            Some(i) => format!(" swift=node{}", i + 1),
            None => String::new(),
        };
        format!(
            "{} seed={}{swift} writes={} acked={} faults=[{}] {conv}",
            if self.passed() { "PASS" } else { "FAIL" },
            self.seed,
            self.writes,
            self.acked,
            faults.join(" "),
        )
    }
}

/// Runs `opts.runs` seeds from `opts.seed`, calling `report` after each.
pub fn run(opts: &Options, mut report: impl FnMut(&RunReport)) -> anyhow::Result<Vec<RunReport>> {
    anyhow::ensure!(opts.nodes >= 3, "--nodes must be at least 3");
    anyhow::ensure!(opts.duration > 0.0, "--duration must be positive");
    if let Some(SwiftOptions {
        node: SwiftPick::Node(k),
        ..
    }) = &opts.swift
    {
        anyhow::ensure!(
            *k < opts.nodes,
            "--swift-node {} names no node (the run has {})",
            k + 1,
            opts.nodes
        );
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let swift_env = match &opts.swift {
        Some(s) => Some(rt.block_on(swift::probe(&s.venv))?),
        None => None,
    };
    let root = match &opts.dir {
        Some(d) => d.clone(),
        None => tempfile::Builder::new()
            .prefix("rowsync-chaos-")
            .tempdir()
            .context("creating a temporary directory")?
            .keep(),
    };
    let mut out = Vec::new();
    for k in 0..opts.runs {
        let seed = opts.seed.wrapping_add(k);
        let dir = root.join(format!("seed-{seed}"));
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        let swift = opts.swift_node(seed).zip(swift_env.clone());
        let r = rt.block_on(run_one(seed, opts, dir.clone(), swift))?;
        report(&r);
        if r.passed() && !opts.keep {
            let _ = std::fs::remove_dir_all(&dir);
        }
        out.push(r);
    }
    if opts.dir.is_none() && !opts.keep && out.iter().all(RunReport::passed) {
        let _ = std::fs::remove_dir_all(&root);
    }
    Ok(out)
}

/// One step of the timeline: a fault starting or ending.
#[derive(Debug, Clone)]
struct Step {
    at: f64,
    start: bool,
    event: usize,
}

async fn apply(
    cl: &mut Cluster,
    fault: &Fault,
    start: bool,
    rng: &mut StdRng,
) -> anyhow::Result<()> {
    match (fault, start) {
        (Fault::KillServer { node, kind }, true) => cl.kill9(*node, kind, Role::Server).await,
        (Fault::KillServer { node, kind }, false) => cl.start(*node, kind, Role::Server)?,
        (Fault::KillReplicator { node, kind }, true) => {
            cl.kill9(*node, kind, Role::Replicator).await
        }
        (Fault::KillReplicator { node, kind }, false) => cl.start(*node, kind, Role::Replicator)?,
        (
            Fault::Partition {
                from,
                to,
                both,
                mode,
            },
            s,
        ) => {
            let m = if s { *mode } else { Mode::Pass };
            cl.set_link(*from, *to, m);
            if *both {
                cl.set_link(*to, *from, m);
            }
        }
        (Fault::Isolate { node }, s) => {
            let m = if s { Mode::Refuse } else { Mode::Pass };
            for other in 0..cl.nodes.len() {
                if other != *node {
                    cl.set_link(*node, other, m);
                    cl.set_link(other, *node, m);
                }
            }
        }
        (Fault::FullDisk { node }, s) => {
            cl.set_disk(*node, if s { Disk::Full } else { Disk::Healthy })
                .await?
        }
        (Fault::SlowDisk { node }, s) => {
            cl.set_disk(*node, if s { Disk::Slow } else { Disk::Healthy })
                .await?
        }
        (
            Fault::CorruptDb {
                node,
                target,
                header,
            },
            true,
        ) => {
            for kind in KINDS {
                cl.kill9(*node, kind, Role::Server).await;
                cl.kill9(*node, kind, Role::Replicator).await;
            }
            corrupt(cl, *node, *target, *header, rng)?;
        }
        (Fault::CorruptDb { node, .. }, false) => {
            for kind in KINDS {
                cl.start(*node, kind, Role::Server)?;
                cl.start(*node, kind, Role::Replicator)?;
            }
        }
    }
    Ok(())
}

/// Overwrites part of one container DB file of `node` with random bytes.
fn corrupt(
    cl: &Cluster,
    node: usize,
    target: usize,
    header: bool,
    rng: &mut StdRng,
) -> anyhow::Result<()> {
    let part = cl
        .ring
        .get_part(&cl.hash, load::ACCOUNT, Some(&format!("c{target}")), None)?;
    let hash = cl
        .hash
        .hash_path(load::ACCOUNT, Some(&format!("c{target}")), None)?;
    let n = &cl.nodes[node];
    // The Swift node's DBs: the header only (see `schedule`).
    let header = header || n.swift;
    let db = crate::db::files::db_path(&n.devices.join(&n.device), "containers", part, &hash);
    let Ok(meta) = std::fs::metadata(&db) else {
        return Ok(()); // no replica here (yet): nothing to corrupt
    };
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new().write(true).open(&db)?;
    let len = meta.len();
    let (offset, size) = if header || len <= 4096 {
        (0, 100)
    } else {
        let pages = len / 4096;
        (4096 * rng.gen_range(1..pages.max(2)), 4096)
    };
    let junk: Vec<u8> = (0..size).map(|_| rng.gen()).collect();
    f.seek(SeekFrom::Start(offset))?;
    f.write_all(&junk)?;
    f.sync_all()?;
    Ok(())
}

async fn run_one(
    seed: u64,
    opts: &Options,
    dir: PathBuf,
    swift: Option<(usize, swift::SwiftEnv)>,
) -> anyhow::Result<RunReport> {
    let mut cl = Cluster::create(&dir, opts.nodes, opts.interval, swift).await?;
    let events = schedule(seed, opts, cl.failpoints);
    let mut rng = StdRng::seed_from_u64(seed);
    let result = drive(&mut cl, opts, &events, seed, &mut rng).await;
    cl.stop_all().await;
    let (load, converged_after, mut problems) = match result {
        Ok(x) => x,
        Err(e) => (None, None, vec![format!("run error: {e:#}")]),
    };
    let (writes, acked) = load.as_ref().map_or((0, 0), |l| {
        let recs = l.records();
        (recs.len(), recs.iter().filter(|r| r.acked()).count())
    });
    if let Some(l) = &load {
        problems.extend(oracle::check(&cl, l));
    }
    if converged_after.is_none() && problems.is_empty() {
        problems.push(format!(
            "replicas not identical within {} s of healing",
            opts.converge_timeout
        ));
    }
    Ok(RunReport {
        seed,
        events,
        writes,
        acked,
        converged_after,
        problems,
        dir,
        swift_node: cl.swift_node(),
    })
}

type Driven = (Option<Arc<Load>>, Option<f64>, Vec<String>);

async fn drive(
    cl: &mut Cluster,
    opts: &Options,
    events: &[Event],
    seed: u64,
    rng: &mut StdRng,
) -> anyhow::Result<Driven> {
    cl.start_all()?;
    cl.wait_servers(Duration::from_secs(30)).await?;
    let load = Arc::new(Load::new(cl, opts.containers)?);
    load.setup().await?;
    let writers: Vec<_> = (0..opts.writers)
        .map(|w| {
            tokio::spawn(
                load.clone()
                    .writer(seed.wrapping_mul(31).wrapping_add(w as u64), 1_000_000),
            )
        })
        .collect();
    let mut steps: Vec<Step> = events
        .iter()
        .enumerate()
        .flat_map(|(i, e)| {
            [
                Step {
                    at: e.at,
                    start: true,
                    event: i,
                },
                Step {
                    at: e.at + e.lasts,
                    start: false,
                    event: i,
                },
            ]
        })
        .collect();
    steps.sort_by(|a, b| a.at.total_cmp(&b.at));
    let t0 = Instant::now();
    for s in &steps {
        let due = Duration::from_secs_f64(s.at);
        if let Some(wait) = due.checked_sub(t0.elapsed()) {
            tokio::time::sleep(wait).await;
        }
        apply(cl, &events[s.event].fault, s.start, rng).await?;
    }
    if let Some(wait) = Duration::from_secs_f64(opts.duration).checked_sub(t0.elapsed()) {
        tokio::time::sleep(wait).await;
    }
    load.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for w in writers {
        let _ = tokio::time::timeout(Duration::from_secs(30), w).await;
    }
    // Heal everything.
    cl.heal_links();
    for i in 0..cl.nodes.len() {
        if cl.disk(i) != Disk::Healthy {
            cl.set_disk(i, Disk::Healthy).await?;
        }
    }
    cl.start_all()?;
    cl.wait_servers(Duration::from_secs(30)).await?;
    let healed = Instant::now();
    let limit = Duration::from_secs_f64(opts.converge_timeout);
    let mut converged_after = None;
    while healed.elapsed() < limit {
        if oracle::converged(cl, &load).unwrap_or(false) {
            converged_after = Some(healed.elapsed().as_secs_f64());
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok((Some(load), converged_after, Vec::new()))
}
