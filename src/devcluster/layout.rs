//! The files of a dev cluster:
//!
//! ```text
//! DIR/rowsync-dev-cluster.json     what was laid out (nodes, replicas, ports)
//! DIR/swift.conf                   random hash prefix / suffix, Policy-0
//! DIR/container.ring.gz            the container ring (format v1)
//! DIR/account.ring.gz              the account ring (same devices, account ports)
//! DIR/node<i>/container-server.conf
//! DIR/node<i>/account-server.conf
//! DIR/node<i>/srv/sdb<i>/          node i's only device (containers/ and accounts/)
//! DIR/node<i>/container.recon      the replicators' recon caches
//! DIR/node<i>/account.recon
//! ```
//!
//! Node `i` serves containers on `base_port + i - 1` and accounts on
//! `base_port + nodes + i - 1`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

/// The file that marks a directory as a rowsync dev cluster.
pub const MARKER: &str = "rowsync-dev-cluster.json";

/// The shape of a dev cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Params {
    pub nodes: usize,
    pub replicas: usize,
    pub base_port: u16,
    pub part_power: u32,
}

impl Params {
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.nodes == 0 || self.nodes > 64 {
            bail!("--nodes must be between 1 and 64");
        }
        if self.replicas == 0 || self.replicas > self.nodes {
            bail!(
                "--replicas must be between 1 and --nodes ({}): each replica needs its own node",
                self.nodes
            );
        }
        if self.part_power > 16 {
            bail!("--part-power must be at most 16 for a dev cluster");
        }
        if self.base_port == 0 || usize::from(self.base_port) + 4 * self.nodes - 1 > 65535 {
            bail!(
                "--base-port {} leaves no room for {} ports",
                self.base_port,
                4 * self.nodes
            );
        }
        Ok(())
    }

    /// Node `i`'s container server port (1-based).
    pub fn port(&self, i: usize) -> u16 {
        self.base_port + (i - 1) as u16
    }

    /// Node `i`'s account server port (1-based).
    pub fn account_port(&self, i: usize) -> u16 {
        self.base_port + (self.nodes + i - 1) as u16
    }

    /// Node `i`'s replicator `/metrics` port for `kind` (`container` or
    /// `account`), after the server ports.
    pub fn metrics_port(&self, i: usize, kind: &str) -> u16 {
        let block = if kind == "account" { 3 } else { 2 };
        self.base_port + (block * self.nodes + i - 1) as u16
    }
}

/// Settings written into every node's config.
#[derive(Debug, Clone)]
pub struct ConfSettings {
    /// Seconds between replication passes.
    pub interval: f64,
    /// `log_level` of servers and replicators.
    pub log_level: String,
}

/// One node's files.
#[derive(Debug, Clone)]
pub struct NodeFiles {
    /// 1-based.
    pub index: usize,
    /// `node<i>`.
    pub name: String,
    pub dir: PathBuf,
    /// `container-server.conf`.
    pub conf: PathBuf,
    /// `account-server.conf`.
    pub account_conf: PathBuf,
    /// The devices dir (`node<i>/srv`).
    pub devices: PathBuf,
    /// `sdb<i>`.
    pub device: String,
    pub port: u16,
    pub account_port: u16,
}

impl NodeFiles {
    /// `(config, port)` of the node's servers: container, then account.
    pub fn servers(&self) -> [(&Path, u16); 2] {
        [
            (self.conf.as_path(), self.port),
            (self.account_conf.as_path(), self.account_port),
        ]
    }
}

/// A laid-out dev cluster.
#[derive(Debug, Clone)]
pub struct Layout {
    pub dir: PathBuf,
    pub params: Params,
    pub nodes: Vec<NodeFiles>,
    pub swift_conf: PathBuf,
    /// The container ring.
    pub ring: PathBuf,
    pub account_ring: PathBuf,
}

/// What [`prepare`] did with the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prepared {
    /// New (or empty) directory.
    Created,
    /// A previous dev cluster of the same shape: its data, swift.conf and
    /// ring were kept, the node configs rewritten.
    Reused,
    /// A previous dev cluster was removed first.
    Replaced,
}

fn node_files(dir: &Path, params: &Params, i: usize) -> NodeFiles {
    let ndir = dir.join(format!("node{i}"));
    NodeFiles {
        index: i,
        name: format!("node{i}"),
        conf: ndir.join("container-server.conf"),
        account_conf: ndir.join("account-server.conf"),
        devices: ndir.join("srv"),
        device: format!("sdb{i}"),
        port: params.port(i),
        account_port: params.account_port(i),
        dir: ndir,
    }
}

fn is_node_dir_name(name: &str) -> bool {
    name.strip_prefix("node")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Removes what a previous dev cluster left in `dir` (only the entries a
/// dev cluster makes).
fn remove_previous(dir: &Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if is_node_dir_name(&name) && entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(&path)
                .with_context(|| format!("removing {}", path.display()))?;
        } else if ["swift.conf", "container.ring.gz", "account.ring.gz", MARKER]
            .contains(&name.as_str())
        {
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        }
    }
    Ok(())
}

/// Lays out (or reuses) a dev cluster in `dir`. An existing cluster with
/// the same [`Params`] is reused unless `fresh`; a different one is
/// replaced. A non-empty directory without the marker file is refused.
pub fn prepare(
    dir: &Path,
    params: Params,
    fresh: bool,
    settings: &ConfSettings,
) -> anyhow::Result<(Layout, Prepared)> {
    params.validate()?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("resolving {}", dir.display()))?;
    let marker = dir.join(MARKER);
    let non_empty = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .next()
        .is_some();
    let mut prepared = Prepared::Created;
    if marker.is_file() {
        let previous: Option<Params> = std::fs::read(&marker)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let complete = ["swift.conf", "container.ring.gz", "account.ring.gz"]
            .iter()
            .all(|f| dir.join(f).is_file());
        if !fresh && complete && previous == Some(params) {
            prepared = Prepared::Reused;
        } else {
            remove_previous(&dir)?;
            prepared = Prepared::Replaced;
        }
    } else if non_empty {
        bail!(
            "{} is not empty and holds no {MARKER}: it was not made by `rowsync dev-cluster`; \
             choose an empty or new --dir",
            dir.display()
        );
    }
    let layout = Layout {
        swift_conf: dir.join("swift.conf"),
        ring: dir.join("container.ring.gz"),
        account_ring: dir.join("account.ring.gz"),
        nodes: (1..=params.nodes)
            .map(|i| node_files(&dir, &params, i))
            .collect(),
        params,
        dir,
    };
    if prepared != Prepared::Reused {
        write_swift_conf(&layout.swift_conf)?;
        let devs = crate::ring::dev_cluster_devices(
            params.nodes,
            "127.0.0.1",
            params.base_port,
            params.nodes,
        )?;
        let ring = crate::ring::build_ring(devs.clone(), params.replicas, params.part_power)?;
        crate::ring::write_v1(&ring, &layout.ring)
            .with_context(|| format!("writing {}", layout.ring.display()))?;
        // The same devices, reached on the account servers' ports.
        let account_devs = devs
            .into_iter()
            .zip(&layout.nodes)
            .map(|(mut d, n)| {
                d.port = n.account_port;
                d.replication_port = n.account_port;
                d
            })
            .collect();
        let ring = crate::ring::build_ring(account_devs, params.replicas, params.part_power)?;
        crate::ring::write_v1(&ring, &layout.account_ring)
            .with_context(|| format!("writing {}", layout.account_ring.display()))?;
    }
    for n in &layout.nodes {
        let dev = n.devices.join(&n.device);
        std::fs::create_dir_all(&dev).with_context(|| format!("creating {}", dev.display()))?;
        for (kind, path, port) in [
            ("container", &n.conf, n.port),
            ("account", &n.account_conf, n.account_port),
        ] {
            std::fs::write(path, node_conf(&layout, n, kind, port, settings))
                .with_context(|| format!("writing {}", path.display()))?;
        }
    }
    let prom = layout.dir.join("prometheus.yml");
    std::fs::write(&prom, prometheus_yml(&layout))
        .with_context(|| format!("writing {}", prom.display()))?;
    std::fs::write(&marker, serde_json::to_vec_pretty(&params)?)
        .with_context(|| format!("writing {}", marker.display()))?;
    Ok((layout, prepared))
}

fn write_swift_conf(path: &Path) -> anyhow::Result<()> {
    let prefix = uuid::Uuid::new_v4().simple().to_string();
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let text = format!(
        "# Written by `rowsync dev-cluster`: a random hash prefix and suffix.\n\
         [swift-hash]\n\
         swift_hash_path_prefix = {prefix}\n\
         swift_hash_path_suffix = {suffix}\n\
         \n\
         [storage-policy:0]\n\
         name = Policy-0\n\
         default = yes\n"
    );
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Node `n`'s `<kind>-server.conf` (`kind`: `container` or `account`).
pub fn node_conf(
    layout: &Layout,
    n: &NodeFiles,
    kind: &str,
    port: u16,
    s: &ConfSettings,
) -> String {
    format!(
        "# Node {i} of {total} of a rowsync dev cluster (written by `rowsync dev-cluster`;\n\
         # rewritten each time the cluster starts).\n\
         [DEFAULT]\n\
         devices = {devices}\n\
         mount_check = false\n\
         bind_ip = 127.0.0.1\n\
         bind_port = {port}\n\
         swift_dir = {swift_dir}\n\
         log_level = {log_level}\n\
         \n\
         [pipeline:main]\n\
         pipeline = {kind}-server\n\
         \n\
         [app:{kind}-server]\n\
         use = egg:swift#{kind}\n\
         # Set to true to log every request.\n\
         log_requests = false\n\
         # GET /metrics on this port (see `rowsync metrics --cluster`).\n\
         prometheus_metrics = true\n\
         \n\
         [{kind}-replicator]\n\
         # rowsync's HTTP whole-DB transfer: no rsync daemon needed.\n\
         db_transfer = http\n\
         interval = {interval}\n\
         databases_per_second = 0\n\
         node_timeout = 10\n\
         recon_cache_path = {recon}\n\
         prometheus_port = {metrics_port}\n",
        i = n.index,
        total = layout.nodes.len(),
        devices = n.devices.display(),
        swift_dir = layout.dir.display(),
        log_level = s.log_level,
        interval = s.interval,
        recon = n.dir.display(),
        metrics_port = layout.params.metrics_port(n.index, kind),
    )
}

/// A Prometheus scrape config for every endpoint of the cluster
/// (`DIR/prometheus.yml`).
pub fn prometheus_yml(layout: &Layout) -> String {
    let p = &layout.params;
    let targets = |ports: Vec<u16>| {
        ports
            .iter()
            .map(|port| format!("'127.0.0.1:{port}'"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let servers: Vec<u16> = (1..=p.nodes)
        .flat_map(|i| [p.port(i), p.account_port(i)])
        .collect();
    let repls: Vec<u16> = (1..=p.nodes)
        .flat_map(|i| [p.metrics_port(i, "container"), p.metrics_port(i, "account")])
        .collect();
    format!(
        "# Written by `rowsync dev-cluster`: scrape every server and replicator.\n\
         # prometheus --config.file=THIS_FILE, then import\n\
         # deploy/grafana/rowsync-dashboard.json into Grafana.\n\
         global:\n  scrape_interval: 5s\n\
         scrape_configs:\n\
         \x20 - job_name: rowsync-servers\n    static_configs:\n      - targets: [{}]\n\
         \x20 - job_name: rowsync-replicators\n    static_configs:\n      - targets: [{}]\n",
        targets(servers),
        targets(repls)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ReplicatorConf, ServerConf, SwiftConf};

    fn settings() -> ConfSettings {
        ConfSettings {
            interval: 2.0,
            log_level: "INFO".into(),
        }
    }

    #[test]
    fn lays_out_reuses_and_replaces() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("c");
        let p = Params {
            nodes: 3,
            replicas: 2,
            base_port: 7100,
            part_power: 4,
        };
        let (layout, how) = prepare(&dir, p, false, &settings()).unwrap();
        assert_eq!(how, Prepared::Created);
        let swift = SwiftConf::from_file(&layout.swift_conf).unwrap();
        let ring = crate::ring::load(&layout.ring).unwrap();
        let account_ring = crate::ring::load(&layout.account_ring).unwrap();
        assert_eq!(ring.part_power(), 4);
        assert_eq!(ring.replica_count(), 2.0);
        for n in &layout.nodes {
            let s = ServerConf::from_file(&n.conf).unwrap();
            assert_eq!(s.bind_port, n.port);
            assert!(!s.mount_check);
            assert!(!s.log_requests);
            let r = ReplicatorConf::from_file(&n.conf).unwrap();
            assert_eq!(r.db_transfer, crate::config::DbTransfer::Http);
            assert_eq!(r.interval, 2.0);
            assert_eq!(r.databases_per_second, 0.0);
            assert_eq!(r.recon_cache_path, n.dir);
            assert!(n.devices.join(&n.device).is_dir());
            let dev = ring.device(n.index as u32 - 1).unwrap();
            assert_eq!((dev.port, dev.device.as_str()), (n.port, n.device.as_str()));
            let a = ServerConf::from_file(&n.account_conf).unwrap();
            assert_eq!(a.server_type, crate::config::ServerType::Account);
            assert_eq!(a.bind_port, n.account_port);
            let r = ReplicatorConf::from_file(&n.account_conf).unwrap();
            assert_eq!(r.server_type, crate::config::ServerType::Account);
            assert_eq!(r.ring_path(), layout.account_ring);
            let adev = account_ring.device(n.index as u32 - 1).unwrap();
            assert_eq!(
                (adev.port, adev.device.as_str()),
                (n.account_port, n.device.as_str())
            );
        }
        // Same shape: reused, same hash prefix.
        std::fs::write(layout.nodes[0].devices.join("sdb1/keep"), b"x").unwrap();
        let (_, how) = prepare(&dir, p, false, &settings()).unwrap();
        assert_eq!(how, Prepared::Reused);
        assert_eq!(SwiftConf::from_file(&layout.swift_conf).unwrap(), swift);
        assert!(layout.nodes[0].devices.join("sdb1/keep").exists());
        // --fresh: replaced.
        let (_, how) = prepare(&dir, p, true, &settings()).unwrap();
        assert_eq!(how, Prepared::Replaced);
        assert!(!layout.nodes[0].devices.join("sdb1/keep").exists());
        assert_ne!(SwiftConf::from_file(&layout.swift_conf).unwrap(), swift);
        // Another shape: replaced, node3 gone.
        let p2 = Params { nodes: 2, ..p };
        let (l2, how) = prepare(&dir, p2, false, &settings()).unwrap();
        assert_eq!(how, Prepared::Replaced);
        assert_eq!(l2.nodes.len(), 2);
        assert!(!dir.join("node3").exists());
    }

    #[test]
    fn refuses_foreign_dirs_and_bad_params() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("precious.txt"), b"x").unwrap();
        let p = Params {
            nodes: 3,
            replicas: 3,
            base_port: 7100,
            part_power: 4,
        };
        let e = prepare(tmp.path(), p, false, &settings()).unwrap_err();
        assert!(e.to_string().contains("not made by"), "{e}");
        assert!(tmp.path().join("precious.txt").exists());
        for bad in [
            Params { replicas: 4, ..p },
            Params { nodes: 0, ..p },
            Params {
                base_port: 65535,
                ..p
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
