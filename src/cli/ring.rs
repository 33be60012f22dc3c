//! `rowsync ring`: inspect a ring file, look up where an account or
//! container lives, and build development rings.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::config::SwiftConf;
use crate::ring::{self, Device, Node, Ring};

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    rowsync ring show /etc/swift/container.ring.gz\n  \
    rowsync ring lookup --ring /etc/swift/container.ring.gz AUTH_test photos\n  \
    rowsync ring build --devices 3 --replicas 3 --part-power 6 --base-port 6201 container.ring.gz")]
pub struct RingArgs {
    #[command(subcommand)]
    pub command: RingCommand,
}

#[derive(Debug, Subcommand)]
pub enum RingCommand {
    /// Show a ring file: header, devices and partition counts per device.
    #[command(
        after_help = "Example:\n  rowsync ring show /etc/swift/container.ring.gz\n  \
                             rowsync ring show /etc/swift/container.ring.gz --json"
    )]
    Show(ShowArgs),
    /// Find the partition, primary nodes and handoffs of an account or container.
    #[command(
        long_about = "Find where an account (no CONTAINER) or a container lives: its partition,\n\
                      the primary devices in replica order and the handoff devices in the\n\
                      order Swift tries them (get_more_nodes).\n\n\
                      With --json the output is one object with the keys:\n  \
                      part          the partition number\n  \
                      primary_ids   primary device ids, in replica order\n  \
                      handoff_ids   the first N handoff device ids, in order\n  \
                      nodes         the primary devices (all ring fields plus \"index\")",
        after_help = "Example:\n  rowsync ring lookup --ring /etc/swift/container.ring.gz \\\n      \
                      --swift-conf /etc/swift/swift.conf AUTH_test photos --json"
    )]
    Lookup(LookupArgs),
    /// Write a development ring: N devices on one ip with consecutive ports.
    #[command(
        long_about = "Write a ring (format v1, readable by Swift) for a development cluster:\n\
                      device i is sdb<i+1> on port PORT+i (replication on the same ip and\n\
                      port), zone (i mod Z)+1, weight 100. Every partition's replicas are on\n\
                      distinct devices, and on distinct zones when Z >= R.",
        after_help = "Example:\n  rowsync ring build --devices 4 --replicas 3 --part-power 8 \\\n      \
                      --base-port 6011 --ip 127.0.0.1 --zones 4 /tmp/swift/container.ring.gz"
    )]
    Build(BuildArgs),
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Ring file (e.g. /etc/swift/container.ring.gz), format v1 or v2.
    pub ring: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LookupArgs {
    /// Ring file, e.g. /etc/swift/container.ring.gz.
    #[arg(long)]
    pub ring: PathBuf,
    /// swift.conf with the [swift-hash] prefix and suffix.
    #[arg(long, default_value = "/etc/swift/swift.conf")]
    pub swift_conf: PathBuf,
    /// Account name, e.g. AUTH_test.
    pub account: String,
    /// Container name; omit to look up the account itself.
    pub container: Option<String>,
    /// Print JSON (keys: part, primary_ids, handoff_ids, nodes).
    #[arg(long)]
    pub json: bool,
    /// How many handoffs to list.
    #[arg(long, default_value_t = 20)]
    pub handoffs: usize,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Number of devices.
    #[arg(long)]
    pub devices: usize,
    /// Number of replicas.
    #[arg(long)]
    pub replicas: usize,
    /// Partition power (2^P partitions), at most 24.
    #[arg(long)]
    pub part_power: u32,
    /// Port of the first device; device i listens on PORT+i.
    #[arg(long)]
    pub base_port: u16,
    /// IP address of every device.
    #[arg(long, default_value = "127.0.0.1")]
    pub ip: String,
    /// Number of zones (default: one per device).
    #[arg(long)]
    pub zones: Option<usize>,
    /// Output ring file, e.g. container.ring.gz.
    pub out: PathBuf,
}

pub fn run(args: RingArgs) -> anyhow::Result<()> {
    match args.command {
        RingCommand::Show(a) => show(a),
        RingCommand::Lookup(a) => lookup(a),
        RingCommand::Build(a) => build(a),
    }
}

fn load(path: &std::path::Path) -> anyhow::Result<Ring> {
    ring::load(path).with_context(|| format!("loading ring {}", path.display()))
}

fn node_json(n: &Node, index_key: &str) -> Value {
    let mut v = n.device.to_json();
    if let Value::Object(m) = &mut v {
        m.insert(index_key.into(), n.index.into());
    }
    v
}

fn show(a: ShowArgs) -> anyhow::Result<()> {
    let ring = load(&a.ring)?;
    let counts = ring.assignment_counts();
    if a.json {
        let devs: Vec<Value> = ring
            .devs()
            .iter()
            .map(|d| d.as_ref().map_or(Value::Null, Device::to_json))
            .collect();
        let out = json!({
            "format_version": ring.format_version(),
            "version": ring.version(),
            "part_power": ring.part_power(),
            "replica_count": ring.replica_count(),
            "partitions": ring.partition_count(),
            "dev_id_bytes": ring.dev_id_bytes(),
            "next_part_power": ring.next_part_power(),
            "devs": devs,
            "partition_counts": counts,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("{}", a.ring.display());
    println!(
        "format v{}, version {}, part power {}, {} partitions, {} replicas, {} devices",
        ring.format_version(),
        ring.version().map_or("-".into(), |v| v.to_string()),
        ring.part_power(),
        ring.partition_count(),
        ring.replica_count(),
        ring.device_count()
    );
    if let Some(npp) = ring.next_part_power() {
        println!("next part power {npp}");
    }
    println!(
        "{:>4} {:>6} {:>4} {:>21} {:>21} {:<12} {:>8} {:>6}  meta",
        "id", "region", "zone", "ip:port", "replication ip:port", "device", "weight", "parts"
    );
    for (id, d) in ring.devs().iter().enumerate() {
        match d {
            None => println!("{id:>4} (removed)"),
            Some(d) => println!(
                "{:>4} {:>6} {:>4} {:>21} {:>21} {:<12} {:>8.2} {:>6}  {}",
                d.id,
                d.region,
                d.zone,
                format!("{}:{}", d.ip, d.port),
                format!("{}:{}", d.replication_ip, d.replication_port),
                d.device,
                d.weight,
                counts.get(id).copied().unwrap_or(0),
                d.meta
            ),
        }
    }
    Ok(())
}

fn lookup(a: LookupArgs) -> anyhow::Result<()> {
    let ring = load(&a.ring)?;
    let conf = SwiftConf::from_file(&a.swift_conf)
        .with_context(|| format!("reading {}", a.swift_conf.display()))?;
    let hash = conf.hash_path_config();
    let container = a.container.as_deref();
    let (part, nodes) = ring.get_nodes(&hash, &a.account, container, None)?;
    let handoffs: Vec<Node> = ring.get_more_nodes(part).take(a.handoffs).collect();
    if a.json {
        let out = json!({
            "part": part,
            "primary_ids": nodes.iter().map(|n| n.id).collect::<Vec<_>>(),
            "handoff_ids": handoffs.iter().map(|n| n.id).collect::<Vec<_>>(),
            "nodes": nodes.iter().map(|n| node_json(n, "index")).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let path = match container {
        Some(c) => format!("/{}/{}", a.account, c),
        None => format!("/{}", a.account),
    };
    let hash_hex = hash.hash_path(&a.account, container, None)?;
    println!("path      {path}");
    println!("hash      {hash_hex}");
    println!("partition {part}");
    println!("primaries:");
    for n in &nodes {
        print_node(n);
    }
    if a.handoffs > 0 {
        println!("handoffs:");
        for n in &handoffs {
            print_node(n);
        }
    }
    Ok(())
}

fn print_node(n: &Node) {
    println!(
        "  [{}] id {:>4}  region {} zone {}  {}:{}/{}  (replication {}:{})",
        n.index,
        n.id,
        n.region,
        n.zone,
        n.ip,
        n.port,
        n.device.device,
        n.replication_ip,
        n.replication_port
    );
}

fn build(a: BuildArgs) -> anyhow::Result<()> {
    if a.devices == 0 {
        bail!("--devices must be at least 1");
    }
    let zones = a.zones.unwrap_or(a.devices);
    let devs = ring::dev_cluster_devices(a.devices, &a.ip, a.base_port, zones)?;
    let r = ring::build_ring(devs, a.replicas, a.part_power)?;
    ring::write_v1(&r, &a.out).with_context(|| format!("writing {}", a.out.display()))?;
    println!(
        "wrote {}: {} devices, {} replicas, part power {}, {} zones",
        a.out.display(),
        a.devices,
        a.replicas,
        a.part_power,
        zones
    );
    Ok(())
}
