//! A chaos run's cluster: N nodes on 127.0.0.1, each with a container and
//! an account server and replicator as real child processes (this
//! executable), one device, and its own copy of the rings in which every
//! other node is reached through a [`Proxy`] for that ordered pair, so
//! partitions can cut any direction between any two nodes. Processes are
//! started, killed (SIGKILL) and restarted by their own handles, each in a
//! process group of its own that is signalled as a whole (an rsync a
//! replicator runs goes with it); their output goes to one log file each.
//!
//! With a Swift node ([`super::swift`]) that node runs Swift's four
//! processes instead of rowsync's, and the run adds one rsync daemon (whole
//! DBs travel by rsync between every pair of nodes, each pair through an
//! rsync proxy of its own) and `db_transfer = rsync` on every replicator.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;

use super::proxy::{Mode, Proxy};
use super::swift::{self, SwiftEnv};
use crate::ring::Ring;
use crate::swift::HashPathConfig;

/// The two kinds of DB.
pub const KINDS: [&str; 2] = ["container", "account"];

/// What flows over a link between two nodes, each through its own proxy:
/// the two kinds' REPLICATE traffic and (in runs with a Swift node) rsync.
const LINKS: [&str; 3] = ["container", "account", "rsync"];

/// A process role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Server,
    Replicator,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Server => "server",
            Role::Replicator => "replicator",
        }
    }
}

/// How a node's disk behaves (set by restarting its processes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disk {
    Healthy,
    /// Writes fail with ENOSPC (fail points) or the free-space reserve
    /// refuses them (507).
    Full,
    /// Commits sleep (fail points).
    Slow,
}

/// One node's files and ports (0-based index).
#[derive(Debug, Clone)]
pub struct Node {
    pub index: usize,
    pub dir: PathBuf,
    pub devices: PathBuf,
    pub device: String,
    pub swift_dir: PathBuf,
    /// Container and account server ports.
    pub ports: [u16; 2],
    /// This node runs Swift's processes instead of rowsync's.
    pub swift: bool,
}

impl Node {
    pub fn conf(&self, kind: &str) -> PathBuf {
        self.dir.join(format!("{kind}-server.conf"))
    }

    pub fn port(&self, kind: &str) -> u16 {
        if kind == "account" {
            self.ports[1]
        } else {
            self.ports[0]
        }
    }

    pub fn log(&self, kind: &str, role: Role) -> PathBuf {
        self.dir.join(format!("{kind}-{}.log", role.name()))
    }
}

struct Proc {
    child: tokio::process::Child,
}

impl Proc {
    /// Sends `sig` to the child's process group (it was started as the
    /// leader of a group of its own). Only while the child is unreaped:
    /// until then its PID, hence the group ID, cannot be reused. False if
    /// nothing was signalled.
    fn signal_group(&self, sig: libc::c_int) -> bool {
        let Some(pid) = self.child.id().and_then(|p| libc::pid_t::try_from(p).ok()) else {
            return false;
        };
        // SAFETY: killpg(2) on the group our own unreaped child leads.
        unsafe { libc::killpg(pid, sig) == 0 }
    }

    /// SIGKILL to the group (else to the child alone), reaped (bounded).
    async fn kill9(mut self) {
        if !self.signal_group(libc::SIGKILL) {
            let _ = self.child.start_kill();
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}

/// The rsync daemon of a run with a Swift node.
struct Rsyncd {
    port: u16,
    conf: PathBuf,
    log: PathBuf,
    proc: Option<Proc>,
}

/// The cluster of one run.
pub struct Cluster {
    pub dir: PathBuf,
    pub nodes: Vec<Node>,
    pub hash: HashPathConfig,
    /// The container ring (placement; every node's copy places alike).
    pub ring: Ring,
    pub account_ring: Ring,
    proxies: HashMap<(usize, usize, &'static str), Proxy>,
    procs: HashMap<(usize, &'static str, Role), Proc>,
    disks: Vec<Disk>,
    exe: PathBuf,
    /// The venv of the Swift node, if the run has one.
    swift: Option<SwiftEnv>,
    rsyncd: Option<Rsyncd>,
    /// Whether this build has fail points (ENOSPC / slow disk injection).
    pub failpoints: bool,
    /// Seconds between a replicator's passes.
    pub interval: f64,
}

/// `n` free loopback ports, with the listeners that hold them: kept while
/// the proxies bind (port 0) so that no proxy is given a port a server is
/// about to take, dropped before the servers start.
fn free_ports(n: usize) -> anyhow::Result<(Vec<u16>, Vec<std::net::TcpListener>)> {
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()
        .context("finding free loopback ports")?;
    let ports = listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect::<anyhow::Result<_>>()?;
    Ok((ports, listeners))
}

impl Cluster {
    /// Lays out `n` nodes in `dir` (which must be empty or new) and
    /// starts the proxies; no process runs yet. With `swift`, node
    /// `swift.0` runs Swift 2.38 from that venv.
    pub async fn create(
        dir: &Path,
        n: usize,
        interval: f64,
        swift: Option<(usize, SwiftEnv)>,
    ) -> anyhow::Result<Cluster> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        // Absolute: Swift's daemons chdir to / once up.
        let dir =
            &std::path::absolute(dir).with_context(|| format!("resolving {}", dir.display()))?;
        let swift_node = swift.as_ref().map(|(i, _)| *i);
        let (ports, reserved) = free_ports(2 * n + 1)?;
        let nodes: Vec<Node> = (0..n)
            .map(|i| {
                let ndir = dir.join(format!("node{}", i + 1));
                Node {
                    index: i,
                    devices: ndir.join("srv"),
                    device: format!("sdb{}", i + 1),
                    swift_dir: ndir.join("etc"),
                    ports: [ports[2 * i], ports[2 * i + 1]],
                    swift: swift_node == Some(i),
                    dir: ndir,
                }
            })
            .collect();
        let rsync_port = ports[2 * n];
        let hash = HashPathConfig::new(
            format!("chaos-{}", uuid::Uuid::new_v4().simple()),
            "chaos".to_string(),
        );
        let swift_conf = format!(
            "[swift-hash]\nswift_hash_path_prefix = {}\nswift_hash_path_suffix = chaos\n\n\
             [storage-policy:0]\nname = Policy-0\ndefault = yes\n",
            String::from_utf8_lossy(&hash.prefix)
        );
        // Proxies for every ordered pair and kind (and, with a Swift node,
        // rsync: a pair's whole-DB transfers go to the rsync daemon through
        // a proxy of their own, so a cut link cuts them too).
        let links: &[&'static str] = if swift.is_some() { &LINKS } else { &KINDS };
        let mut proxies = HashMap::new();
        for a in 0..n {
            for (b, to) in nodes.iter().enumerate() {
                if a == b {
                    continue;
                }
                for &link in links {
                    let target = if link == "rsync" {
                        rsync_port
                    } else {
                        to.port(link)
                    };
                    let p = Proxy::start(target).await?;
                    proxies.insert((a, b, link), p);
                }
            }
        }
        drop(reserved);
        let base_devs = crate::ring::dev_cluster_devices(n, "127.0.0.1", 1, n)?;
        let mut rings: Vec<Ring> = Vec::new();
        for node in &nodes {
            let dev = node.devices.join(&node.device);
            std::fs::create_dir_all(dev.join("tmp"))?;
            std::fs::create_dir_all(&node.swift_dir)?;
            std::fs::write(node.swift_dir.join("swift.conf"), &swift_conf)?;
            let proxy_port = |j: usize, link: &str| {
                proxies
                    .get(&(node.index, j, link))
                    .map_or(0, |p: &Proxy| p.port)
            };
            for kind in KINDS {
                // This node's view: itself directly, every other node through
                // the proxy of the pair. With a Swift node, `meta` holds the
                // port rsync reaches the device's module on
                // (`swift::RSYNC_MODULE`).
                let devs: Vec<_> = base_devs
                    .iter()
                    .cloned()
                    .enumerate()
                    .map(|(j, mut d)| {
                        d.device = nodes[j].device.clone();
                        let port = if j == node.index {
                            nodes[j].port(kind)
                        } else {
                            proxy_port(j, kind)
                        };
                        d.port = port;
                        d.replication_port = port;
                        if swift.is_some() {
                            let rport = if j == node.index {
                                rsync_port
                            } else {
                                proxy_port(j, "rsync")
                            };
                            d.meta = rport.to_string();
                        }
                        d
                    })
                    .collect();
                let ring = crate::ring::build_ring(devs, n.min(3), 4)?;
                crate::ring::write_v1(&ring, node.swift_dir.join(format!("{kind}.ring.gz")))?;
                if node.index == 0 {
                    rings.push(ring);
                }
            }
        }
        let account_ring = rings.pop().context("no account ring")?;
        let ring = rings.pop().context("no container ring")?;
        let (swift, rsyncd) = match swift {
            None => (None, None),
            Some((_, env)) => {
                std::fs::write(dir.join("swift-run.py"), swift::BOOTSTRAP)?;
                let conf = dir.join("rsyncd.conf");
                let log = dir.join("rsyncd.log");
                let modules: Vec<(String, PathBuf)> = nodes
                    .iter()
                    .map(|n| (n.device.clone(), n.devices.clone()))
                    .collect();
                std::fs::write(&conf, swift::rsyncd_conf(&env, &log, &modules))?;
                let rsyncd = Rsyncd {
                    port: rsync_port,
                    conf,
                    log,
                    proc: None,
                };
                (Some(env), Some(rsyncd))
            }
        };
        let cluster = Cluster {
            dir: dir.to_path_buf(),
            nodes,
            hash,
            ring,
            account_ring,
            proxies,
            procs: HashMap::new(),
            disks: vec![Disk::Healthy; n],
            exe: std::env::current_exe().context("finding the rowsync executable")?,
            swift,
            rsyncd,
            failpoints: cfg!(feature = "failpoints"),
            interval,
        };
        for i in 0..n {
            cluster.write_confs(i)?;
        }
        Ok(cluster)
    }

    /// The node running Swift, if any.
    pub fn swift_node(&self) -> Option<usize> {
        self.nodes.iter().position(|n| n.swift)
    }

    fn write_confs(&self, i: usize) -> anyhow::Result<()> {
        let node = &self.nodes[i];
        let full = self.disks[i] == Disk::Full;
        // Swift has no fail points: its full disk is always the reserve
        // (`fallocate_reserve`, 507 for every write; 0 otherwise, as its
        // default of 1% could refuse writes on a nearly full test disk).
        let reserve = if node.swift {
            if full {
                "fallocate_reserve = 100%\n"
            } else {
                "fallocate_reserve = 0\n"
            }
        } else if full && !self.failpoints {
            "fallocate_reserve = 100%\n"
        } else {
            ""
        };
        let transfer = match &self.rsyncd {
            Some(_) => format!(
                "db_transfer = rsync\nrsync_module = {}\n",
                swift::RSYNC_MODULE
            ),
            None => "db_transfer = http\n".to_string(),
        };
        for kind in KINDS {
            // Swift's servers: one process (`workers = 0`), as our user.
            let swift_opts = match (&self.swift, node.swift) {
                (Some(env), true) => format!(
                    "user = {}\nworkers = 0\nlog_name = node{}-{kind}\n",
                    env.user,
                    i + 1
                ),
                _ => String::new(),
            };
            let text = format!(
                "[DEFAULT]\ndevices = {devices}\nmount_check = false\nbind_ip = 127.0.0.1\n\
                 bind_port = {port}\nswift_dir = {swift_dir}\nlog_level = INFO\n{swift_opts}\n\
                 [pipeline:main]\npipeline = {kind}-server\n\n\
                 [app:{kind}-server]\nuse = egg:swift#{kind}\nlog_requests = false\n{reserve}\n\
                 [{kind}-replicator]\n{transfer}interval = {interval}\n\
                 databases_per_second = 0\nnode_timeout = 3\nconn_timeout = 0.5\n\
                 per_diff = 20\nmax_diffs = 3\nrecon_cache_path = {recon}\n",
                devices = node.devices.display(),
                port = node.port(kind),
                swift_dir = node.swift_dir.display(),
                interval = self.interval,
                recon = node.dir.display(),
            );
            std::fs::write(node.conf(kind), text)?;
        }
        Ok(())
    }

    /// The fail points a disk state sets (`FAILPOINTS`), in builds that
    /// have them.
    fn failpoints_env(&self, disk: Disk) -> Option<&'static str> {
        if !self.failpoints {
            return None;
        }
        match disk {
            Disk::Healthy => None,
            Disk::Full => Some(
                "pending::append=return(enospc);pending::flush=return(enospc);\
                 merge_items::before_commit=return(enospc);rsync_then_merge::before_rename=return(enospc)",
            ),
            Disk::Slow => Some(
                "merge_items::before_commit=sleep(150);pending::flush=sleep(100);\
                 pending::append=sleep(20)",
            ),
        }
    }

    /// Spawns `cmd` as the leader of a process group of its own, killed
    /// with us (PR_SET_PDEATHSIG), its output appended to `log`.
    fn spawn(mut cmd: tokio::process::Command, log: &Path, what: &str) -> anyhow::Result<Proc> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        cmd.stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .kill_on_drop(true)
            .process_group(0);
        crate::devcluster::procs::die_with_parent(&mut cmd, libc::SIGKILL);
        let child = cmd.spawn().with_context(|| format!("starting {what}"))?;
        if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(log) {
            use std::io::Write;
            let _ = writeln!(
                f,
                "--- rowsync chaos: started {what} (pid {})",
                child.id().unwrap_or(0)
            );
        }
        Ok(Proc { child })
    }

    /// Starts one process (if it is not running).
    pub fn start(&mut self, i: usize, kind: &'static str, role: Role) -> anyhow::Result<()> {
        if self.procs.contains_key(&(i, kind, role)) {
            return Ok(());
        }
        let node = &self.nodes[i];
        let what = format!("node{} {kind} {}", i + 1, role.name());
        let cmd = match (&self.swift, node.swift) {
            (Some(env), true) => {
                let mut cmd = tokio::process::Command::new(&env.python);
                cmd.arg(self.dir.join("swift-run.py"))
                    .arg(&node.swift_dir)
                    .arg(format!("{kind}-{}", role.name()))
                    .arg(node.conf(kind))
                    .env("PYTHONUNBUFFERED", "1")
                    .env("PYTHONDONTWRITEBYTECODE", "1");
                cmd
            }
            _ => {
                let mut cmd = tokio::process::Command::new(&self.exe);
                cmd.arg(role.name())
                    .arg("--config")
                    .arg(node.conf(kind))
                    .env("NO_COLOR", "1")
                    .env_remove("FAILPOINTS");
                if let Some(fp) = self.failpoints_env(self.disks[i]) {
                    cmd.env("FAILPOINTS", fp);
                }
                cmd
            }
        };
        let p = Self::spawn(cmd, &node.log(kind, role), &what)?;
        self.procs.insert((i, kind, role), p);
        Ok(())
    }

    /// Starts the rsync daemon (runs with a Swift node; if not running).
    fn start_rsyncd(&mut self) -> anyhow::Result<()> {
        let Some(r) = self.rsyncd.as_mut() else {
            return Ok(());
        };
        if r.proc.is_some() {
            return Ok(());
        }
        let mut cmd = tokio::process::Command::new("rsync");
        cmd.arg("--daemon")
            .arg("--no-detach")
            .arg(format!("--config={}", r.conf.display()))
            .arg(format!("--port={}", r.port))
            .arg("--address=127.0.0.1");
        r.proc = Some(Self::spawn(cmd, &r.log, "the rsync daemon")?);
        Ok(())
    }

    /// kill -9 of one process (if running; with its process group), reaped.
    pub async fn kill9(&mut self, i: usize, kind: &'static str, role: Role) {
        if let Some(p) = self.procs.remove(&(i, kind, role)) {
            let pid = p.child.id().unwrap_or(0);
            p.kill9().await;
            let log = self.nodes[i].log(kind, role);
            if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(log) {
                use std::io::Write;
                let _ = writeln!(f, "--- rowsync chaos: kill -9 (pid {pid} and its group)");
            }
        }
    }

    pub fn is_running(&self, i: usize, kind: &'static str, role: Role) -> bool {
        self.procs.contains_key(&(i, kind, role))
    }

    /// Every process of every node (and the rsync daemon).
    pub fn start_all(&mut self) -> anyhow::Result<()> {
        self.start_rsyncd()?;
        for i in 0..self.nodes.len() {
            for kind in KINDS {
                self.start(i, kind, Role::Server)?;
                self.start(i, kind, Role::Replicator)?;
            }
        }
        Ok(())
    }

    /// Waits (bounded) until every running server (and the rsync daemon)
    /// answers TCP.
    pub async fn wait_servers(&mut self, limit: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + limit;
        if let Some(r) = self.rsyncd.as_mut() {
            loop {
                if tokio::net::TcpStream::connect(("127.0.0.1", r.port))
                    .await
                    .is_ok()
                {
                    break;
                }
                if let Some(p) = r.proc.as_mut() {
                    if let Ok(Some(s)) = p.child.try_wait() {
                        anyhow::bail!(
                            "the rsync daemon exited ({s}) on start (log {})",
                            r.log.display()
                        );
                    }
                }
                if tokio::time::Instant::now() >= deadline {
                    anyhow::bail!("the rsync daemon did not answer on port {}", r.port);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let wanted: Vec<(usize, &'static str)> = self
            .procs
            .keys()
            .filter(|(_, _, r)| *r == Role::Server)
            .map(|(i, k, _)| (*i, *k))
            .collect();
        for (i, kind) in wanted {
            let port = self.nodes[i].port(kind);
            loop {
                let up = tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok();
                // Checked after the connect too: a server that could not
                // bind its port has exited, whoever answered there.
                if let Some(p) = self.procs.get_mut(&(i, kind, Role::Server)) {
                    if let Ok(Some(s)) = p.child.try_wait() {
                        anyhow::bail!(
                            "node{} {kind} server exited ({s}) on start (log {})",
                            i + 1,
                            self.nodes[i].log(kind, Role::Server).display()
                        );
                    }
                }
                if up {
                    break;
                }
                if tokio::time::Instant::now() >= deadline {
                    anyhow::bail!("node{} {kind} server did not answer on port {port}", i + 1);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }

    /// Sets a node's disk state: its processes are killed and restarted
    /// with it (a config change or fail points).
    pub async fn set_disk(&mut self, i: usize, disk: Disk) -> anyhow::Result<()> {
        self.disks[i] = disk;
        self.write_confs(i)?;
        for kind in KINDS {
            for role in [Role::Server, Role::Replicator] {
                if self.is_running(i, kind, role) {
                    self.kill9(i, kind, role).await;
                    self.start(i, kind, role)?;
                }
            }
        }
        Ok(())
    }

    pub fn disk(&self, i: usize) -> Disk {
        self.disks[i]
    }

    /// Cuts (or heals) the traffic from `a` to `b`: both kinds, and rsync.
    pub fn set_link(&self, a: usize, b: usize, mode: Mode) {
        for link in LINKS {
            if let Some(p) = self.proxies.get(&(a, b, link)) {
                p.set(mode);
            }
        }
    }

    /// Every link passes again.
    pub fn heal_links(&self) {
        for p in self.proxies.values() {
            p.set(Mode::Pass);
        }
    }

    /// Stops every process and the rsync daemon (SIGTERM to each process
    /// group, bounded wait, then SIGKILL to the group).
    pub async fn stop_all(&mut self) {
        for p in self.proxies.values() {
            p.stop();
        }
        let mut procs: Vec<Proc> = self.procs.drain().map(|(_, p)| p).collect();
        if let Some(p) = self.rsyncd.as_mut().and_then(|r| r.proc.take()) {
            procs.push(p);
        }
        for p in &procs {
            if !p.signal_group(libc::SIGTERM) {
                if let Some(pid) = p.child.id().and_then(|p| libc::pid_t::try_from(p).ok()) {
                    // SAFETY: kill(2) on our own unreaped child.
                    unsafe {
                        libc::kill(pid, libc::SIGTERM);
                    }
                }
            }
        }
        // Every member of each group (a replicator's rsync too) got the
        // SIGTERM; a leader still running after the wait gets SIGKILL with
        // its group (before it is reaped, so the group ID is still its).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        for mut p in procs {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if tokio::time::timeout(left, p.child.wait()).await.is_err() {
                p.kill9().await;
            }
        }
    }

    /// Log lines that say a process panicked.
    pub fn panics(&self) -> Vec<String> {
        let mut out = Vec::new();
        for node in &self.nodes {
            for kind in KINDS {
                for role in [Role::Server, Role::Replicator] {
                    let path = node.log(kind, role);
                    let Ok(text) = std::fs::read_to_string(&path) else {
                        continue;
                    };
                    for line in text.lines().filter(|l| l.contains("panicked")) {
                        out.push(format!("{}: {line}", path.display()));
                    }
                }
            }
        }
        out
    }
}
