//! `rowsync dev-cluster`: an all-in-one cluster on 127.0.0.1 for trying
//! rowsync out. Lays out N nodes ([`layout`]), starts each node's container
//! and account servers and replicators as child processes ([`procs`]), and
//! with `--demo` writes uneven data and shows replication of both kinds
//! converging ([`demo`]).

pub mod demo;
pub mod layout;
pub mod procs;

use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use layout::{ConfSettings, Layout, Params, Prepared};
use procs::{ChildProc, Console, Signals};

/// What `rowsync dev-cluster` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    pub params: Params,
    /// None: a new temporary directory (kept afterwards).
    pub dir: Option<PathBuf>,
    pub demo: bool,
    pub exit_when_converged: bool,
    /// Stop after this long (with --demo: an error unless converged).
    pub timeout: Option<Duration>,
    pub fresh: bool,
    pub settings: ConfSettings,
}

/// How the run ended.
#[derive(Debug)]
enum Ending {
    Signal(&'static str),
    Converged,
    TimedOut,
    Failed(anyhow::Error),
}

/// How long servers get to answer after starting.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a child gets to exit after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Fails with a clear message if one of the cluster's ports is taken.
pub fn check_ports(params: &Params) -> anyhow::Result<()> {
    for (i, port) in (1..=params.nodes).flat_map(|i| {
        [
            (i, params.port(i)),
            (i, params.account_port(i)),
            (i, params.metrics_port(i, "container")),
            (i, params.metrics_port(i, "account")),
        ]
    }) {
        if let Err(e) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            bail!(
                "port {port} on 127.0.0.1 (for node{i}) is not free: {e}. Is another dev \
                 cluster running? Stop it, or pick other ports with --base-port."
            );
        }
    }
    Ok(())
}

/// Runs the dev cluster until Ctrl-C / SIGTERM, the timeout, or (with
/// `--demo --exit-when-converged`) convergence.
pub fn run(opts: Options) -> anyhow::Result<()> {
    opts.params.validate()?;
    check_ports(&opts.params)?;
    let dir = match &opts.dir {
        Some(d) => d.clone(),
        None => tempfile::Builder::new()
            .prefix("rowsync-dev-")
            .tempdir()
            .context("creating a temporary directory")?
            .keep(),
    };
    let (layout, prepared) =
        layout::prepare(&dir, opts.params, opts.fresh || opts.demo, &opts.settings)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(run_async(opts, layout, prepared))
}

fn describe_layout(layout: &Layout, prepared: Prepared) -> Vec<String> {
    let p = &layout.params;
    let how = match prepared {
        Prepared::Created => "new",
        Prepared::Reused => "reusing the previous cluster's data in",
        Prepared::Replaced => "replaced the previous cluster in",
    };
    let mut lines = vec![
        format!("rowsync dev cluster ({how}) {}", layout.dir.display()),
        format!("  swift.conf  {}", layout.swift_conf.display()),
        format!(
            "  rings       {} and {} ({} devices, {} replicas, part power {})",
            layout.ring.display(),
            layout.account_ring.display(),
            p.nodes,
            p.replicas,
            p.part_power
        ),
    ];
    for n in &layout.nodes {
        lines.push(format!(
            "  {:<6} containers 127.0.0.1:{:<5} accounts 127.0.0.1:{:<5} device {:<5} configs {}/{{container,account}}-server.conf",
            n.name,
            n.port,
            n.account_port,
            n.device,
            n.dir.display()
        ));
    }
    lines
}

fn hints(layout: &Layout) -> Vec<String> {
    let d = layout.dir.display();
    let n1 = &layout.nodes[0];
    vec![
        "try, in another terminal:".into(),
        format!(
            "  rowsync ring lookup --ring {d}/container.ring.gz --swift-conf {d}/swift.conf AUTH_test c1"
        ),
        format!(
            "  curl -i -X PUT -H \"X-Timestamp: $(date +%s)\" http://127.0.0.1:{}/{}/<partition>/AUTH_test/c1",
            n1.port, n1.device
        ),
        format!(
            "  curl -i -X PUT -H \"X-Timestamp: $(date +%s)\" http://127.0.0.1:{}/{}/<partition>/AUTH_test",
            n1.account_port, n1.device
        ),
        format!("  rowsync status --cluster {d}"),
        format!("  rowsync metrics --cluster {d} --watch 2      (Prometheus: {d}/prometheus.yml)"),
        format!("  rowsync info {d}/node1/srv/sdb1/containers/<part>/<suffix>/<hash>/<hash>.db"),
        format!("  rowsync info {d}/node1/srv/sdb1/accounts/<part>/<suffix>/<hash>/<hash>.db"),
        "Ctrl-C stops every process.".into(),
    ]
}

/// First child that has exited, as an error.
fn check_children(children: &mut [ChildProc]) -> anyhow::Result<()> {
    for c in children.iter_mut() {
        if let Some(s) = c.exited() {
            bail!("{} exited unexpectedly ({s})", c.name);
        }
    }
    Ok(())
}

async fn wait_ready(
    layout: &Layout,
    servers: &mut [ChildProc],
    deadline: Instant,
) -> anyhow::Result<()> {
    // Servers were spawned in this order: per node, container then account.
    let ports = layout
        .nodes
        .iter()
        .flat_map(|n| n.servers().map(|(_, port)| port));
    for (port, child) in ports.zip(servers.iter_mut()) {
        loop {
            if let Some(s) = child.exited() {
                bail!(
                    "{} exited ({s}) before answering on 127.0.0.1:{port} (see its output above)",
                    child.name,
                );
            }
            let connect = tokio::time::timeout(
                Duration::from_millis(500),
                tokio::net::TcpStream::connect(("127.0.0.1", port)),
            )
            .await;
            if matches!(connect, Ok(Ok(_))) {
                break;
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} did not answer on 127.0.0.1:{port} within {:?}",
                    child.name,
                    READY_TIMEOUT
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// Starts the children of a cluster.
struct Spawner {
    exe: PathBuf,
    color: bool,
    console: Arc<Console>,
}

impl Spawner {
    /// Two `server` or `replicator` children per node (containers, then
    /// accounts), appended to `children`.
    fn spawn_all(
        &self,
        what: &str,
        layout: &Layout,
        children: &mut Vec<ChildProc>,
    ) -> anyhow::Result<()> {
        for n in &layout.nodes {
            for ((conf, _), kind) in n.servers().into_iter().zip(["", "account-"]) {
                let args: Vec<OsString> =
                    vec![what.into(), "--config".into(), conf.as_os_str().to_owned()];
                children.push(ChildProc::spawn(
                    &format!("{}-{kind}{what}", n.name),
                    &self.exe,
                    &args,
                    self.color,
                    self.console.clone(),
                )?);
            }
        }
        Ok(())
    }
}

async fn run_async(opts: Options, layout: Layout, prepared: Prepared) -> anyhow::Result<()> {
    let mut signals = Signals::new().context("installing signal handlers")?;
    let console = Arc::new(Console::default());
    let start = Instant::now();
    let deadline = opts.timeout.map(|t| start + t);
    for l in describe_layout(&layout, prepared) {
        console.say(&l);
    }
    let spawner = Spawner {
        exe: std::env::current_exe().context("finding the rowsync executable")?,
        color: std::io::stderr().is_terminal(),
        console: console.clone(),
    };
    // Children are spawned from this future, which block_on runs on the
    // main thread: it outlives them (the Linux death signal is tied to the
    // spawning thread).
    let mut children: Vec<ChildProc> = Vec::new();
    let mut ending = None;
    if let Err(e) = spawner.spawn_all("server", &layout, &mut children) {
        ending = Some(Ending::Failed(e));
    }
    if ending.is_none() {
        let ready_deadline =
            deadline.map_or(start + READY_TIMEOUT, |d| d.min(start + READY_TIMEOUT));
        tokio::select! {
            s = signals.recv() => ending = Some(Ending::Signal(s)),
            r = wait_ready(&layout, &mut children, ready_deadline) => {
                if let Err(e) = r {
                    ending = Some(Ending::Failed(e));
                }
            }
        }
    }
    if ending.is_none() {
        console.say(&format!(
            "cluster up: {} container and {} account servers answering on 127.0.0.1",
            layout.nodes.len(),
            layout.nodes.len()
        ));
        let phase = main_phase(&opts, &layout, &spawner, &mut children, deadline);
        ending = Some(tokio::select! {
            s = signals.recv() => Ending::Signal(s),
            e = phase => e,
        });
    }
    let ending = ending.unwrap_or(Ending::Converged);
    if let Ending::Signal(s) = &ending {
        console.say(&format!("{s} received"));
    }
    console.set_live(None);
    // Replicators first (they talk to the servers), then the servers.
    children.reverse();
    console.say(&format!("stopping {} processes...", children.len()));
    let stopped = procs::stop_all(&mut children, STOP_GRACE).await;
    let lost: Vec<String> = stopped
        .iter()
        .filter(|(_, s)| s.is_none())
        .map(|(n, _)| n.clone())
        .collect();
    if !lost.is_empty() {
        console.say(&format!("could not reap: {}", lost.join(", ")));
    }
    console.say(&format!(
        "all processes stopped; the cluster's files are left in {} for inspection",
        layout.dir.display()
    ));
    match ending {
        Ending::Signal(_) | Ending::Converged => Ok(()),
        Ending::TimedOut if !opts.demo => Ok(()),
        Ending::TimedOut => bail!(
            "replication did not converge within {:.0} s",
            opts.timeout.map_or(0.0, |t| t.as_secs_f64())
        ),
        Ending::Failed(e) => Err(e),
    }
}

async fn main_phase(
    opts: &Options,
    layout: &Layout,
    spawner: &Spawner,
    children: &mut Vec<ChildProc>,
    deadline: Option<Instant>,
) -> Ending {
    let console = &spawner.console;
    let started = |console: &Console| {
        console.say(&format!(
            "{} container and {} account replicators running (a pass every {} s)",
            layout.nodes.len(),
            layout.nodes.len(),
            opts.settings.interval
        ))
    };
    if opts.demo {
        match run_demo(layout, spawner, children, deadline).await {
            Ok(true) if opts.exit_when_converged => return Ending::Converged,
            Ok(true) => {
                console.say("demo done; the cluster keeps running");
                for l in hints(layout) {
                    console.say(&l);
                }
            }
            Ok(false) => return Ending::TimedOut,
            Err(e) => return Ending::Failed(e),
        }
    } else {
        if let Err(e) = spawner.spawn_all("replicator", layout, children) {
            return Ending::Failed(e);
        }
        started(console);
        for l in hints(layout) {
            console.say(&l);
        }
    }
    loop {
        if let Err(e) = check_children(children) {
            return Ending::Failed(e);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ending::TimedOut;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Writes the demo data, starts the replicators and watches the replicas
/// converge. Ok(false): the deadline passed first.
async fn run_demo(
    layout: &Layout,
    spawner: &Spawner,
    children: &mut Vec<ChildProc>,
    deadline: Option<Instant>,
) -> anyhow::Result<bool> {
    let console = &spawner.console;
    let swift = crate::config::SwiftConf::from_file(&layout.swift_conf)
        .with_context(|| format!("reading {}", layout.swift_conf.display()))?;
    let ring = crate::ring::load(&layout.ring)
        .with_context(|| format!("loading ring {}", layout.ring.display()))?;
    let placed = demo::place(&ring, &swift.hash_path_config())?;
    let account_ring = crate::ring::load(&layout.account_ring)
        .with_context(|| format!("loading ring {}", layout.account_ring.display()))?;
    let account = demo::place_account(&account_ring, &swift.hash_path_config())?;
    for l in demo::describe(layout, &placed, &account) {
        console.say(&l);
    }
    let wrote = Instant::now();
    demo::write_data(layout, &placed, &account, console).await?;
    console.say(&format!(
        "demo: data written in {:.1} s; starting the replicators and watching the replicas \
         converge (reading each replica's DB file)",
        wrote.elapsed().as_secs_f64()
    ));
    spawner.spawn_all("replicator", layout, children)?;
    let watched = Arc::new(demo::watched(layout, &placed, &account));
    match demo::watch(watched, console, deadline, || check_children(children)).await? {
        Some((took, snaps)) => {
            for l in demo::summary(&snaps, took) {
                console.say(&l);
            }
            Ok(true)
        }
        None => {
            console.say("demo: not converged before the timeout");
            Ok(false)
        }
    }
}
