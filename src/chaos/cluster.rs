//! A chaos run's cluster: N nodes on 127.0.0.1, each with a container and
//! an account server and replicator as real child processes (this
//! executable), one device, and its own copy of the rings in which every
//! other node is reached through a [`Proxy`] for that ordered pair, so
//! partitions can cut any direction between any two nodes. Processes are
//! started, killed (SIGKILL) and restarted by their own handles; their
//! output goes to one log file each.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;

use super::proxy::{Mode, Proxy};
use crate::ring::Ring;
use crate::swift::HashPathConfig;

/// The two kinds of DB.
pub const KINDS: [&str; 2] = ["container", "account"];

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
    /// Whether this build has fail points (ENOSPC / slow disk injection).
    pub failpoints: bool,
    /// Seconds between a replicator's passes.
    pub interval: f64,
}

fn free_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()
        .context("finding free loopback ports")?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

impl Cluster {
    /// Lays out `n` nodes in `dir` (which must be empty or new) and
    /// starts the proxies; no process runs yet.
    pub async fn create(dir: &Path, n: usize, interval: f64) -> anyhow::Result<Cluster> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let ports = free_ports(2 * n)?;
        let nodes: Vec<Node> = (0..n)
            .map(|i| {
                let ndir = dir.join(format!("node{}", i + 1));
                Node {
                    index: i,
                    devices: ndir.join("srv"),
                    device: format!("sdb{}", i + 1),
                    swift_dir: ndir.join("etc"),
                    ports: [ports[2 * i], ports[2 * i + 1]],
                    dir: ndir,
                }
            })
            .collect();
        let hash = HashPathConfig::new(
            format!("chaos-{}", uuid::Uuid::new_v4().simple()),
            "chaos".to_string(),
        );
        let swift_conf = format!(
            "[swift-hash]\nswift_hash_path_prefix = {}\nswift_hash_path_suffix = chaos\n\n\
             [storage-policy:0]\nname = Policy-0\ndefault = yes\n",
            String::from_utf8_lossy(&hash.prefix)
        );
        // Proxies for every ordered pair and kind.
        let mut proxies = HashMap::new();
        for a in 0..n {
            for (b, to) in nodes.iter().enumerate() {
                if a == b {
                    continue;
                }
                for kind in KINDS {
                    let p = Proxy::start(to.port(kind)).await?;
                    proxies.insert((a, b, kind), p);
                }
            }
        }
        let base_devs = crate::ring::dev_cluster_devices(n, "127.0.0.1", 1, n)?;
        let mut rings: Vec<Ring> = Vec::new();
        for node in &nodes {
            std::fs::create_dir_all(node.devices.join(&node.device))?;
            std::fs::create_dir_all(&node.swift_dir)?;
            std::fs::write(node.swift_dir.join("swift.conf"), &swift_conf)?;
            for kind in KINDS {
                // This node's view: itself directly, every other node through
                // the proxy of the pair.
                let devs: Vec<_> = base_devs
                    .iter()
                    .cloned()
                    .enumerate()
                    .map(|(j, mut d)| {
                        d.device = nodes[j].device.clone();
                        let port = if j == node.index {
                            nodes[j].port(kind)
                        } else {
                            proxies
                                .get(&(node.index, j, kind))
                                .map_or(0, |p: &Proxy| p.port)
                        };
                        d.port = port;
                        d.replication_port = port;
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
            failpoints: cfg!(feature = "failpoints"),
            interval,
        };
        for i in 0..n {
            cluster.write_confs(i)?;
        }
        Ok(cluster)
    }

    fn write_confs(&self, i: usize) -> anyhow::Result<()> {
        let node = &self.nodes[i];
        let full = self.disks[i] == Disk::Full && !self.failpoints;
        for kind in KINDS {
            let text = format!(
                "[DEFAULT]\ndevices = {devices}\nmount_check = false\nbind_ip = 127.0.0.1\n\
                 bind_port = {port}\nswift_dir = {swift_dir}\nlog_level = INFO\n\n\
                 [pipeline:main]\npipeline = {kind}-server\n\n\
                 [app:{kind}-server]\nuse = egg:swift#{kind}\nlog_requests = false\n{reserve}\n\
                 [{kind}-replicator]\ndb_transfer = http\ninterval = {interval}\n\
                 databases_per_second = 0\nnode_timeout = 3\nconn_timeout = 0.5\n\
                 per_diff = 20\nmax_diffs = 3\nrecon_cache_path = {recon}\n",
                devices = node.devices.display(),
                port = node.port(kind),
                swift_dir = node.swift_dir.display(),
                reserve = if full {
                    "fallocate_reserve = 100%\n"
                } else {
                    ""
                },
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

    /// Starts one process (if it is not running).
    pub fn start(&mut self, i: usize, kind: &'static str, role: Role) -> anyhow::Result<()> {
        if self.procs.contains_key(&(i, kind, role)) {
            return Ok(());
        }
        let node = &self.nodes[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(node.log(kind, role))?;
        let mut cmd = tokio::process::Command::new(&self.exe);
        cmd.arg(role.name())
            .arg("--config")
            .arg(node.conf(kind))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .env("NO_COLOR", "1")
            .env_remove("FAILPOINTS")
            .kill_on_drop(true)
            .process_group(0);
        if let Some(fp) = self.failpoints_env(self.disks[i]) {
            cmd.env("FAILPOINTS", fp);
        }
        #[cfg(target_os = "linux")]
        {
            let parent = std::process::id() as libc::pid_t;
            // SAFETY: runs in the forked child before exec; prctl and
            // getppid are async-signal-safe.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    if libc::getppid() != parent {
                        return Err(std::io::Error::other("parent already exited"));
                    }
                    Ok(())
                });
            }
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting node{} {kind} {}", i + 1, role.name()))?;
        self.procs.insert((i, kind, role), Proc { child });
        Ok(())
    }

    /// kill -9 of one process (if running), reaped.
    pub async fn kill9(&mut self, i: usize, kind: &'static str, role: Role) {
        if let Some(mut p) = self.procs.remove(&(i, kind, role)) {
            let _ = p.child.start_kill();
            let _ = tokio::time::timeout(Duration::from_secs(10), p.child.wait()).await;
        }
    }

    pub fn is_running(&self, i: usize, kind: &'static str, role: Role) -> bool {
        self.procs.contains_key(&(i, kind, role))
    }

    /// Every process of every node.
    pub fn start_all(&mut self) -> anyhow::Result<()> {
        for i in 0..self.nodes.len() {
            for kind in KINDS {
                self.start(i, kind, Role::Server)?;
                self.start(i, kind, Role::Replicator)?;
            }
        }
        Ok(())
    }

    /// Waits (bounded) until every running server answers TCP.
    pub async fn wait_servers(&mut self, limit: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + limit;
        let wanted: Vec<(usize, &'static str)> = self
            .procs
            .keys()
            .filter(|(_, _, r)| *r == Role::Server)
            .map(|(i, k, _)| (*i, *k))
            .collect();
        for (i, kind) in wanted {
            let port = self.nodes[i].port(kind);
            loop {
                if tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok()
                {
                    break;
                }
                if let Some(p) = self.procs.get_mut(&(i, kind, Role::Server)) {
                    if let Ok(Some(s)) = p.child.try_wait() {
                        anyhow::bail!("node{} {kind} server exited ({s}) on start", i + 1);
                    }
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

    /// Cuts (or heals) the traffic from `a` to `b`, both kinds.
    pub fn set_link(&self, a: usize, b: usize, mode: Mode) {
        for kind in KINDS {
            if let Some(p) = self.proxies.get(&(a, b, kind)) {
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

    /// Stops every process (SIGTERM, bounded wait, then SIGKILL).
    pub async fn stop_all(&mut self) {
        for ((_, _, _), p) in self.procs.iter_mut() {
            if let Some(pid) = p.child.id().and_then(|p| libc::pid_t::try_from(p).ok()) {
                // SAFETY: kill(2) on our own unreaped child.
                unsafe {
                    libc::kill(pid, libc::SIGTERM);
                }
            }
        }
        for (_, mut p) in self.procs.drain() {
            if tokio::time::timeout(Duration::from_secs(10), p.child.wait())
                .await
                .is_err()
            {
                let _ = p.child.start_kill();
                let _ = tokio::time::timeout(Duration::from_secs(5), p.child.wait()).await;
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
