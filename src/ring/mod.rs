//! Swift's consistent-hashing ring: devices, the replica → partition →
//! device table, and placement identical to Swift 2.38's `Ring`
//! (`get_part`, `get_part_nodes`, `get_more_nodes`).
//!
//! - [`io`] reads ring files in formats v1 and v2 and writes v1.
//! - [`builder`] makes simple rings for development clusters.
//! - [`handle`] holds a ring and reloads it when its file changes.
//!
//! A [`Ring`] is immutable once built; it is validated on construction
//! (every assignment names an existing device, rows have the right lengths),
//! so look-ups never panic.

pub mod builder;
pub mod handle;
pub mod io;

use std::borrow::Borrow;
use std::collections::HashMap;
use std::iter::{Chain, StepBy};
use std::ops::Range;

use md5::{Digest, Md5};
use serde_json::{Map, Value};

use crate::swift::hash::{partition_of_digest, HashPathConfig, HashPathError};

pub use builder::{build_ring, dev_cluster_devices, BuildError};
pub use handle::{RingHandle, DEFAULT_RELOAD_INTERVAL};
pub use io::{load, load_from_gz_bytes, write_v1};

/// Why a ring could not be read, written or built.
#[derive(Debug, thiserror::Error)]
pub enum RingError {
    #[error("cannot read ring file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("ring file is not valid gzip or is truncated: {0}")]
    Gzip(#[source] std::io::Error),
    #[error("bad ring magic {0:?}: expected \"R1NG\"")]
    BadMagic(Vec<u8>),
    #[error("unsupported ring format version {0}")]
    UnsupportedVersion(u16),
    #[error("ring data truncated: {0}")]
    Truncated(String),
    #[error("bad ring JSON in {what}: {reason}")]
    BadJson { what: String, reason: String },
    #[error("v2 ring section {0:?} is missing from the index")]
    MissingSection(String),
    #[error("v2 ring section {section:?}: {reason}")]
    BadSection { section: String, reason: String },
    #[error("v2 ring section {section:?} digest mismatch: found {found}, expected {expected}")]
    DigestMismatch {
        section: String,
        found: String,
        expected: String,
    },
    #[error("bad device at index {index}: {reason}")]
    BadDevice { index: usize, reason: String },
    #[error("bad assignment table: {0}")]
    BadTable(String),
    #[error("assignment replica {replica} partition {part} names device id {dev_id}, which is not in the ring")]
    UnknownDevice {
        replica: usize,
        part: usize,
        dev_id: u32,
    },
    #[error("ring format v1 only supports device ids below 65535 (found {0})")]
    DevIdTooLarge(u32),
}

/// One device of the ring, as Swift stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    pub id: u32,
    pub region: i64,
    pub zone: i64,
    pub ip: String,
    pub port: u16,
    pub replication_ip: String,
    pub replication_port: u16,
    pub device: String,
    pub weight: f64,
    pub meta: String,
    /// Any other keys the ring file had for this device (kept so a ring
    /// written back carries them).
    pub extra: Map<String, Value>,
}

impl Device {
    /// Parses one non-null entry of a ring's `devs` list. Missing
    /// `replication_ip` / `replication_port` default to `ip` / `port`, as in
    /// Swift; a missing `region` defaults to 1, `weight` to 0, `meta` to "".
    pub fn from_json(index: usize, value: &Value) -> Result<Device, RingError> {
        let bad = |reason: String| RingError::BadDevice { index, reason };
        let obj = value
            .as_object()
            .ok_or_else(|| bad(format!("expected an object, got {value}")))?;
        let int = |key: &str| -> Result<Option<i64>, RingError> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_i64()
                    .or_else(|| v.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
                    .map(Some)
                    .ok_or_else(|| bad(format!("{key} must be an integer, got {v}"))),
            }
        };
        let string = |key: &str| -> Result<Option<String>, RingError> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(v) => Err(bad(format!("{key} must be a string, got {v}"))),
            }
        };
        let port = |key: &str, v: i64| -> Result<u16, RingError> {
            u16::try_from(v).map_err(|_| bad(format!("{key} {v} out of range")))
        };
        let id = int("id")?.ok_or_else(|| bad("missing id".into()))?;
        let id = u32::try_from(id).map_err(|_| bad(format!("id {id} out of range")))?;
        if id as usize != index {
            return Err(bad(format!("device id {id} does not match its index")));
        }
        let ip = string("ip")?.ok_or_else(|| bad("missing ip".into()))?;
        let port_n = int("port")?.ok_or_else(|| bad("missing port".into()))?;
        let port_v = port("port", port_n)?;
        let replication_port = match int("replication_port")? {
            Some(p) => port("replication_port", p)?,
            None => port_v,
        };
        let weight = match obj.get("weight") {
            None | Some(Value::Null) => 0.0,
            Some(v) => v
                .as_f64()
                .ok_or_else(|| bad(format!("weight must be a number, got {v}")))?,
        };
        let known = [
            "id",
            "region",
            "zone",
            "ip",
            "port",
            "replication_ip",
            "replication_port",
            "device",
            "weight",
            "meta",
        ];
        let extra = obj
            .iter()
            .filter(|(k, _)| !known.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok(Device {
            id,
            region: int("region")?.unwrap_or(1),
            zone: int("zone")?.ok_or_else(|| bad("missing zone".into()))?,
            replication_ip: string("replication_ip")?.unwrap_or_else(|| ip.clone()),
            ip,
            port: port_v,
            replication_port,
            device: string("device")?.ok_or_else(|| bad("missing device".into()))?,
            weight,
            meta: string("meta")?.unwrap_or_default(),
            extra,
        })
    }

    /// The device as a JSON object (Swift's keys plus any extra ones).
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("device".into(), self.device.clone().into());
        m.insert("id".into(), self.id.into());
        m.insert("ip".into(), self.ip.clone().into());
        m.insert("meta".into(), self.meta.clone().into());
        m.insert("port".into(), self.port.into());
        m.insert("region".into(), self.region.into());
        m.insert("replication_ip".into(), self.replication_ip.clone().into());
        m.insert("replication_port".into(), self.replication_port.into());
        m.insert(
            "weight".into(),
            serde_json::Number::from_f64(self.weight)
                .map(Value::Number)
                .unwrap_or(Value::Null),
        );
        m.insert("zone".into(), self.zone.into());
        for (k, v) in &self.extra {
            m.entry(k.clone()).or_insert_with(|| v.clone());
        }
        Value::Object(m)
    }
}

/// A primary or handoff node: a copy of the ring's device plus its position
/// (`index` for primaries as in Swift's `index`, `handoff_index` for
/// handoffs). Derefs to the [`Device`].
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub device: Device,
    /// Primary index (0..) or handoff index (0..) across all sweeps.
    pub index: usize,
    /// True for nodes from [`Ring::get_more_nodes`].
    pub is_handoff: bool,
}

impl std::ops::Deref for Node {
    type Target = Device;
    fn deref(&self) -> &Device {
        &self.device
    }
}

/// Indices of a device's region, (region, zone) and (region, zone, ip) tiers.
#[derive(Debug, Clone, Copy, Default)]
struct Tiers {
    region: usize,
    zone: usize,
    ip: usize,
}

/// A loaded ring.
#[derive(Debug, Clone)]
pub struct Ring {
    devs: Vec<Option<Device>>,
    /// `replica2part2dev_id`: one row per replica, partition → device id.
    table: Vec<Vec<u32>>,
    part_shift: u32,
    dev_id_bytes: u8,
    next_part_power: Option<u32>,
    version: Option<u64>,
    format_version: u16,
    // Bookkeeping for `get_more_nodes`, as Swift's `_update_bookkeeping`:
    // counts only devices with at least one assignment.
    tiers: Vec<Tiers>,
    n_region_keys: usize,
    n_zone_keys: usize,
    n_ip_keys: usize,
    num_regions: usize,
    num_zones: usize,
    num_ips: usize,
    num_assigned_devs: usize,
}

impl Ring {
    /// Builds and validates a ring from its parts.
    ///
    /// `table` must have at least one row; every row but the last must hold
    /// exactly `2^part_power` entries and the last one at least one (a
    /// shorter last row is a fractional replica). Every entry must name a
    /// present device. `format_version` is recorded for display only.
    pub fn new(
        devs: Vec<Option<Device>>,
        table: Vec<Vec<u32>>,
        part_shift: u32,
        next_part_power: Option<u32>,
        version: Option<u64>,
        format_version: u16,
    ) -> Result<Ring, RingError> {
        if part_shift > 32 {
            return Err(RingError::BadTable(format!(
                "part_shift {part_shift} out of range 0..=32"
            )));
        }
        let part_power = 32 - part_shift;
        if part_power > 31 {
            return Err(RingError::BadTable(format!(
                "part power {part_power} too large"
            )));
        }
        let parts = 1usize << part_power;
        if table.is_empty() {
            return Err(RingError::BadTable("no replica rows".into()));
        }
        let rows = table.len();
        for (r, row) in table.iter().enumerate() {
            if r + 1 < rows && row.len() != parts {
                return Err(RingError::BadTable(format!(
                    "replica row {r} has {} partitions, expected {parts} (short assignment table)",
                    row.len()
                )));
            }
            if r + 1 == rows && (row.is_empty() || row.len() > parts) {
                return Err(RingError::BadTable(format!(
                    "last replica row {r} has {} partitions, expected 1..={parts}",
                    row.len()
                )));
            }
        }
        for (i, d) in devs.iter().enumerate() {
            if let Some(d) = d {
                if d.id as usize != i {
                    return Err(RingError::BadDevice {
                        index: i,
                        reason: format!("device id {} does not match its index", d.id),
                    });
                }
            }
        }
        let mut assigned = vec![false; devs.len()];
        for (r, row) in table.iter().enumerate() {
            for (p, &id) in row.iter().enumerate() {
                match devs.get(id as usize) {
                    Some(Some(_)) => assigned[id as usize] = true,
                    _ => {
                        return Err(RingError::UnknownDevice {
                            replica: r,
                            part: p,
                            dev_id: id,
                        })
                    }
                }
            }
        }
        let max_id = devs.len().saturating_sub(1);
        let dev_id_bytes = if max_id < 0xffff { 2 } else { 4 };

        let mut region_keys: HashMap<i64, usize> = HashMap::new();
        let mut zone_keys: HashMap<(i64, i64), usize> = HashMap::new();
        let mut ip_keys: HashMap<(i64, i64, &str), usize> = HashMap::new();
        let mut tiers = vec![Tiers::default(); devs.len()];
        let (mut regions, mut zones, mut ips) = (vec![], vec![], vec![]);
        let mut num_assigned_devs = 0;
        for (i, d) in devs.iter().enumerate() {
            let Some(d) = d else { continue };
            let n = region_keys.len();
            let region = *region_keys.entry(d.region).or_insert(n);
            let n = zone_keys.len();
            let zone = *zone_keys.entry((d.region, d.zone)).or_insert(n);
            let n = ip_keys.len();
            let ip = *ip_keys.entry((d.region, d.zone, &d.ip)).or_insert(n);
            tiers[i] = Tiers { region, zone, ip };
            if assigned[i] {
                num_assigned_devs += 1;
                regions.push(region);
                zones.push(zone);
                ips.push(ip);
            }
        }
        let distinct = |mut v: Vec<usize>| {
            v.sort_unstable();
            v.dedup();
            v.len()
        };
        let (n_region_keys, n_zone_keys, n_ip_keys) =
            (region_keys.len(), zone_keys.len(), ip_keys.len());
        Ok(Ring {
            devs,
            table,
            part_shift,
            dev_id_bytes,
            next_part_power,
            version,
            format_version,
            tiers,
            n_region_keys,
            n_zone_keys,
            n_ip_keys,
            num_regions: distinct(regions),
            num_zones: distinct(zones),
            num_ips: distinct(ips),
            num_assigned_devs,
        })
    }

    /// `32 - part_power`: how far the first 4 digest bytes are shifted.
    pub fn part_shift(&self) -> u32 {
        self.part_shift
    }

    pub fn part_power(&self) -> u32 {
        32 - self.part_shift
    }

    /// Number of partitions (length of the first replica row).
    pub fn partition_count(&self) -> usize {
        self.table[0].len()
    }

    /// Replica count, fractional when the last row is shorter
    /// (`rows - 1 + len(last) / len(first)`).
    pub fn replica_count(&self) -> f64 {
        let rows = self.table.len();
        (rows - 1) as f64 + self.table[rows - 1].len() as f64 / self.table[0].len() as f64
    }

    /// The `replica2part2dev_id` table: one row per replica.
    pub fn table(&self) -> &[Vec<u32>] {
        &self.table
    }

    /// All device slots; `None` is a removed device.
    pub fn devs(&self) -> &[Option<Device>] {
        &self.devs
    }

    /// The device with this id, if present.
    pub fn device(&self, id: u32) -> Option<&Device> {
        self.devs.get(id as usize).and_then(Option::as_ref)
    }

    /// Number of present (non-null) devices.
    pub fn device_count(&self) -> usize {
        self.devs.iter().flatten().count()
    }

    /// Number of devices with at least one assignment.
    pub fn assigned_device_count(&self) -> usize {
        self.num_assigned_devs
    }

    /// Bytes per device id in the assignment table (2 unless ids need 4).
    pub fn dev_id_bytes(&self) -> u8 {
        self.dev_id_bytes
    }

    pub fn next_part_power(&self) -> Option<u32> {
        self.next_part_power
    }

    /// The builder's version counter, if the file had one.
    pub fn version(&self) -> Option<u64> {
        self.version
    }

    /// The file format the ring was read from (1 or 2; 0 if built in memory).
    pub fn format_version(&self) -> u16 {
        self.format_version
    }

    /// Number of assignments per device id (index = device id).
    pub fn assignment_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.devs.len()];
        for row in &self.table {
            for &id in row {
                counts[id as usize] += 1;
            }
        }
        counts
    }

    /// The partition of a raw `hash_path` digest.
    pub fn part_of_digest(&self, digest: &[u8; 16]) -> u32 {
        // part_power <= 31 is checked in `new`, so this cannot fail.
        partition_of_digest(digest, self.part_power()).unwrap_or(0)
    }

    /// Swift's `get_part(account, container, obj)`.
    pub fn get_part(
        &self,
        hash: &HashPathConfig,
        account: &str,
        container: Option<&str>,
        object: Option<&str>,
    ) -> Result<u32, HashPathError> {
        Ok(self.part_of_digest(&hash.hash_path_raw(account, container, object)?))
    }

    /// Swift's `get_nodes`: the partition and its primary nodes.
    pub fn get_nodes(
        &self,
        hash: &HashPathConfig,
        account: &str,
        container: Option<&str>,
        object: Option<&str>,
    ) -> Result<(u32, Vec<Node>), HashPathError> {
        let part = self.get_part(hash, account, container, object)?;
        Ok((part, self.get_part_nodes(part)))
    }

    /// The primary device ids of `part` in replica order, each once.
    pub fn primary_ids(&self, part: u32) -> Vec<u32> {
        let part = part as usize;
        let mut ids: Vec<u32> = Vec::with_capacity(self.table.len());
        for row in &self.table {
            if let Some(&id) = row.get(part) {
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
        ids
    }

    /// Swift's `get_part_nodes(part)`: the primaries in replica order,
    /// skipping a device already listed, annotated with `index`. A partition
    /// out of range has no primaries.
    pub fn get_part_nodes(&self, part: u32) -> Vec<Node> {
        self.primary_ids(part)
            .into_iter()
            .enumerate()
            .filter_map(|(index, id)| {
                self.device(id).map(|d| Node {
                    device: d.clone(),
                    index,
                    is_handoff: false,
                })
            })
            .collect()
    }

    /// Swift's `get_more_nodes(part)`: the lazy handoff sequence.
    pub fn get_more_nodes(&self, part: u32) -> MoreNodes<&Ring> {
        MoreNodes::new(self, part)
    }
}

/// The handoff partition sequence: `start, start+inc, .. < parts`, then
/// `inc - ((parts - start) % inc), .. < start`, stepping by `inc`.
type PartSeq = Chain<StepBy<Range<u64>>, StepBy<Range<u64>>>;

fn part_seq(start: u64, parts: u64, inc: u64) -> PartSeq {
    let second = inc - ((parts - start) % inc);
    (start..parts)
        .step_by(inc as usize)
        .chain((second..start).step_by(inc as usize))
}

/// Lazy iterator over a partition's handoff nodes, in Swift's order.
///
/// Four sweeps over the handoff partition sequence, each visiting every
/// replica row: (1) devices in a region not yet used, (2) in a
/// (region, zone) not yet used, (3) on a (region, zone, ip) not yet used,
/// (4) any unused device. A sweep stops once every region (zone, ip,
/// assigned device) is covered. Generic over how the ring is held, so it
/// can borrow (`&Ring`) or own (`Arc<Ring>`) it.
#[derive(Debug, Clone)]
pub struct MoreNodes<R> {
    ring: R,
    used: Vec<bool>,
    seen_regions: Vec<bool>,
    seen_zones: Vec<bool>,
    seen_ips: Vec<bool>,
    n_used: usize,
    n_regions: usize,
    n_zones: usize,
    n_ips: usize,
    start: u64,
    parts: u64,
    inc: u64,
    sweep: u8,
    seq: Option<PartSeq>,
    cur_part: Option<u64>,
    row: usize,
    next_index: usize,
}

impl<R: Borrow<Ring>> MoreNodes<R> {
    /// Starts the handoff sequence of `part` (Swift's `get_more_nodes`).
    pub fn new(ring: R, part: u32) -> Self {
        let r: &Ring = ring.borrow();
        let mut it = MoreNodes {
            used: vec![false; r.devs.len()],
            seen_regions: vec![false; r.n_region_keys],
            seen_zones: vec![false; r.n_zone_keys],
            seen_ips: vec![false; r.n_ip_keys],
            n_used: 0,
            n_regions: 0,
            n_zones: 0,
            n_ips: 0,
            start: 0,
            parts: r.partition_count() as u64,
            inc: 1,
            sweep: 0,
            seq: None,
            cur_part: None,
            row: 0,
            next_index: 0,
            ring,
        };
        let r: &Ring = it.ring.borrow();
        let primaries = r.primary_ids(part);
        let digest: [u8; 16] = Md5::digest(part.to_string().as_bytes()).into();
        let start = u64::from(partition_of_digest(&digest, r.part_power()).unwrap_or(0));
        let parts = it.parts;
        it.start = start.min(parts.saturating_sub(1));
        it.inc = (parts / 65536).max(1);
        for id in primaries {
            it.mark(id);
        }
        it
    }

    fn mark(&mut self, id: u32) {
        let i = id as usize;
        let t = self.ring.borrow().tiers[i];
        if !self.used[i] {
            self.used[i] = true;
            self.n_used += 1;
        }
        if !self.seen_regions[t.region] {
            self.seen_regions[t.region] = true;
            self.n_regions += 1;
        }
        if !self.seen_zones[t.zone] {
            self.seen_zones[t.zone] = true;
            self.n_zones += 1;
        }
        if !self.seen_ips[t.ip] {
            self.seen_ips[t.ip] = true;
            self.n_ips += 1;
        }
    }

    /// Has the current sweep covered everything it looks for?
    fn sweep_complete(&self) -> bool {
        let r: &Ring = self.ring.borrow();
        match self.sweep {
            0 => self.n_regions >= r.num_regions,
            1 => self.n_zones >= r.num_zones,
            2 => self.n_ips >= r.num_ips,
            _ => self.n_used >= r.num_assigned_devs,
        }
    }

    fn next_sweep(&mut self) {
        self.sweep += 1;
        self.seq = None;
        self.cur_part = None;
    }
}

impl<R: Borrow<Ring>> Iterator for MoreNodes<R> {
    type Item = Node;

    fn next(&mut self) -> Option<Node> {
        loop {
            if self.sweep >= 4 {
                return None;
            }
            if self.sweep_complete() {
                self.next_sweep();
                continue;
            }
            let rows = self.ring.borrow().table.len();
            if self.seq.is_none() {
                self.seq = Some(part_seq(self.start, self.parts, self.inc));
            }
            if self.cur_part.is_none() || self.row >= rows {
                self.cur_part = self.seq.as_mut().and_then(Iterator::next);
                self.row = 0;
                if self.cur_part.is_none() {
                    self.next_sweep();
                    continue;
                }
            }
            let part = self.cur_part.unwrap_or(0) as usize;
            let r = self.row;
            self.row += 1;
            let ring: &Ring = self.ring.borrow();
            let Some(&id) = ring.table[r].get(part) else {
                continue;
            };
            let i = id as usize;
            if self.used[i] {
                continue;
            }
            let t = ring.tiers[i];
            let wanted = match self.sweep {
                0 => !self.seen_regions[t.region],
                1 => !self.seen_zones[t.zone],
                2 => !self.seen_ips[t.ip],
                _ => true,
            };
            if !wanted {
                continue;
            }
            let Some(device) = ring.device(id).cloned() else {
                continue;
            };
            self.mark(id);
            let index = self.next_index;
            self.next_index += 1;
            return Some(Node {
                device,
                index,
                is_handoff: true,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(id: u32, region: i64, zone: i64, ip: &str) -> Device {
        Device {
            id,
            region,
            zone,
            ip: ip.into(),
            port: 6200 + id as u16,
            replication_ip: ip.into(),
            replication_port: 6200 + id as u16,
            device: format!("d{id}"),
            weight: 1.0,
            meta: String::new(),
            extra: Map::new(),
        }
    }

    #[test]
    fn rejects_unknown_and_null_devices() {
        let devs = vec![Some(dev(0, 1, 1, "a")), None];
        assert!(matches!(
            Ring::new(devs.clone(), vec![vec![0, 1]], 31, None, None, 0),
            Err(RingError::UnknownDevice { dev_id: 1, .. })
        ));
        assert!(matches!(
            Ring::new(devs, vec![vec![0, 7]], 31, None, None, 0),
            Err(RingError::UnknownDevice { dev_id: 7, .. })
        ));
    }

    #[test]
    fn rejects_short_rows() {
        let devs = vec![Some(dev(0, 1, 1, "a")), Some(dev(1, 1, 2, "b"))];
        assert!(Ring::new(devs.clone(), vec![vec![0], vec![1, 0]], 31, None, None, 0).is_err());
        assert!(Ring::new(devs.clone(), vec![vec![0, 1], vec![]], 31, None, None, 0).is_err());
        assert!(Ring::new(devs.clone(), vec![], 31, None, None, 0).is_err());
        let ring = Ring::new(devs, vec![vec![0, 1], vec![1]], 31, None, None, 0).unwrap();
        assert_eq!(ring.replica_count(), 1.5);
        assert_eq!(ring.primary_ids(1), vec![1]);
        assert_eq!(ring.primary_ids(0), vec![0, 1]);
        assert!(ring.get_part_nodes(5).is_empty());
    }

    #[test]
    fn duplicate_primaries_are_skipped_and_handoffs_cover_the_rest() {
        let devs = (0..4)
            .map(|i| Some(dev(i, 1, i64::from(i), "x")))
            .collect::<Vec<_>>();
        let table = vec![vec![0, 1, 2, 3], vec![0, 2, 3, 1]];
        let ring = Ring::new(devs, table, 30, None, None, 0).unwrap();
        let nodes = ring.get_part_nodes(0);
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0].index, 0);
        let hand: Vec<u32> = ring.get_more_nodes(0).map(|n| n.id).collect();
        let mut sorted = hand.clone();
        sorted.sort();
        assert_eq!(sorted, vec![1, 2, 3]);
        let idx: Vec<usize> = ring.get_more_nodes(0).map(|n| n.index).collect();
        assert_eq!(idx, vec![0, 1, 2]);
    }

    #[test]
    fn unassigned_devices_are_never_handoffs_and_do_not_count() {
        // Device 3 is in its own region and zone but has no assignments.
        let devs = vec![
            Some(dev(0, 1, 1, "a")),
            Some(dev(1, 1, 2, "b")),
            Some(dev(2, 2, 1, "c")),
            Some(dev(3, 3, 1, "d")),
        ];
        let table = vec![vec![0, 1, 2, 0], vec![1, 2, 0, 2]];
        let ring = Ring::new(devs, table, 30, None, None, 0).unwrap();
        assert_eq!(ring.assigned_device_count(), 3);
        assert_eq!((ring.num_regions, ring.num_zones, ring.num_ips), (2, 3, 3));
        for part in 0..4 {
            let prim = ring.primary_ids(part);
            let hand: Vec<u32> = ring.get_more_nodes(part).map(|n| n.id).collect();
            assert_eq!(prim.len() + hand.len(), 3, "part {part}");
            assert!(!hand.contains(&3));
            assert!(hand.iter().all(|h| !prim.contains(h)));
        }
    }

    #[test]
    fn part_power_zero_has_one_partition() {
        let devs = vec![Some(dev(0, 1, 1, "a")), Some(dev(1, 1, 2, "b"))];
        let ring = Ring::new(devs, vec![vec![0]], 32, None, None, 0).unwrap();
        assert_eq!(ring.partition_count(), 1);
        assert_eq!(ring.part_of_digest(&[0xff; 16]), 0);
        assert_eq!(ring.get_more_nodes(0).count(), 0);
        assert_eq!(ring.get_more_nodes(99).count(), 1);
    }
}
