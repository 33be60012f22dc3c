//! A simple ring builder for development clusters.
//!
//! This is **not** Swift's rebalance algorithm (no partition movement
//! history, no overload, no dispersion report); it makes a fresh, valid,
//! balanced ring in one pass, which is all a dev cluster needs:
//!
//! - Only devices with a positive weight get assignments. Each device
//!   wants `partitions × replicas × weight / total_weight` assignments.
//! - Partitions are filled in order; each replica of a partition goes to
//!   the eligible device that (1) is not already used by this partition,
//!   then minimises how often its region, then its zone, then its ip are
//!   already used by this partition, then has the largest remaining want
//!   (wanted minus assigned so far), then the lowest id.
//!
//! So every partition's replicas are on distinct devices, on distinct zones
//! whenever there are at least as many zones as replicas (and spread as
//! evenly as possible otherwise), and with equal weights every device ends
//! within one or two assignments of its share — a weight-proportional
//! round-robin over zones. With unequal zone weights and as many zones as
//! replicas, zone distinctness wins over exact weight proportions.

use serde_json::Map;

use super::{Device, Ring, RingError};

/// Why a dev ring could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("replicas must be at least 1")]
    NoReplicas,
    #[error("part power {0} out of range 0..=24 for the dev builder")]
    PartPower(u32),
    #[error(
        "{replicas} replicas need at least {replicas} devices with weight > 0, have {devices}"
    )]
    TooFewDevices { replicas: usize, devices: usize },
    #[error("zones must be between 1 and the number of devices")]
    Zones,
    #[error("device ports starting at {base} for {count} devices overflow 65535")]
    Ports { base: u16, count: usize },
    #[error(transparent)]
    Ring(#[from] RingError),
}

/// `count` devices for a dev cluster on one ip: device `i` is
/// `sdb{i+1}` on port `base_port + i` (replication on the same ip and port),
/// region 1, zone `i % zones + 1`, weight 100, meta "".
pub fn dev_cluster_devices(
    count: usize,
    ip: &str,
    base_port: u16,
    zones: usize,
) -> Result<Vec<Device>, BuildError> {
    if zones == 0 || zones > count.max(1) {
        return Err(BuildError::Zones);
    }
    (0..count)
        .map(|i| {
            let port = u16::try_from(i)
                .ok()
                .and_then(|i| base_port.checked_add(i))
                .ok_or(BuildError::Ports {
                    base: base_port,
                    count,
                })?;
            Ok(Device {
                id: i as u32,
                region: 1,
                zone: (i % zones) as i64 + 1,
                ip: ip.to_string(),
                port,
                replication_ip: ip.to_string(),
                replication_port: port,
                device: format!("sdb{}", i + 1),
                weight: 100.0,
                meta: String::new(),
                extra: Map::new(),
            })
        })
        .collect()
}

/// Builds a ring over `devs` (their ids are reset to their positions) with
/// `replicas` replicas and `2^part_power` partitions; see the module doc.
pub fn build_ring(
    mut devs: Vec<Device>,
    replicas: usize,
    part_power: u32,
) -> Result<Ring, BuildError> {
    if replicas == 0 {
        return Err(BuildError::NoReplicas);
    }
    if part_power > 24 {
        return Err(BuildError::PartPower(part_power));
    }
    for (i, d) in devs.iter_mut().enumerate() {
        d.id = i as u32;
    }
    let weighted: Vec<usize> = (0..devs.len()).filter(|&i| devs[i].weight > 0.0).collect();
    if weighted.len() < replicas {
        return Err(BuildError::TooFewDevices {
            replicas,
            devices: weighted.len(),
        });
    }
    let parts = 1usize << part_power;
    let total_weight: f64 = weighted.iter().map(|&i| devs[i].weight).sum();
    let total = (parts * replicas) as f64;
    let mut want: Vec<f64> = devs
        .iter()
        .map(|d| {
            if d.weight > 0.0 {
                total * d.weight / total_weight
            } else {
                0.0
            }
        })
        .collect();

    // Tier keys as small integers.
    let key_of = |vals: Vec<String>| -> Vec<usize> {
        let mut uniq = vals.clone();
        uniq.sort();
        uniq.dedup();
        vals.iter()
            .map(|v| uniq.binary_search(v).unwrap_or(0))
            .collect()
    };
    let region = key_of(devs.iter().map(|d| d.region.to_string()).collect());
    let zone = key_of(
        devs.iter()
            .map(|d| format!("{}/{}", d.region, d.zone))
            .collect(),
    );
    let ip = key_of(
        devs.iter()
            .map(|d| format!("{}/{}/{}", d.region, d.zone, d.ip))
            .collect(),
    );

    let mut table = vec![vec![0u32; parts]; replicas];
    let n = devs.len();
    let mut used_region = vec![0usize; n];
    let mut used_zone = vec![0usize; n];
    let mut used_ip = vec![0usize; n];
    let mut chosen: Vec<usize> = Vec::with_capacity(replicas);
    for p in 0..parts {
        chosen.clear();
        for row in table.iter_mut() {
            let best = weighted
                .iter()
                .copied()
                .filter(|i| !chosen.contains(i))
                .min_by(|&a, &b| {
                    (used_region[region[a]], used_zone[zone[a]], used_ip[ip[a]])
                        .cmp(&(used_region[region[b]], used_zone[zone[b]], used_ip[ip[b]]))
                        .then(want[b].total_cmp(&want[a]))
                        .then(a.cmp(&b))
                });
            // `weighted.len() >= replicas`, so a device is always left.
            let Some(best) = best else { break };
            chosen.push(best);
            used_region[region[best]] += 1;
            used_zone[zone[best]] += 1;
            used_ip[ip[best]] += 1;
            want[best] -= 1.0;
            row[p] = best as u32;
        }
        for &c in &chosen {
            used_region[region[c]] = 0;
            used_zone[zone[c]] = 0;
            used_ip[ip[c]] = 0;
        }
    }
    Ok(Ring::new(
        devs.into_iter().map(Some).collect(),
        table,
        32 - part_power,
        None,
        Some(1),
        0,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors() {
        let devs = dev_cluster_devices(2, "127.0.0.1", 6000, 2).unwrap();
        assert!(matches!(
            build_ring(devs.clone(), 3, 4),
            Err(BuildError::TooFewDevices { .. })
        ));
        assert!(matches!(
            build_ring(devs.clone(), 0, 4),
            Err(BuildError::NoReplicas)
        ));
        assert!(matches!(
            build_ring(devs, 1, 30),
            Err(BuildError::PartPower(30))
        ));
        assert!(dev_cluster_devices(2, "127.0.0.1", 6000, 3).is_err());
        assert!(dev_cluster_devices(2, "127.0.0.1", 65535, 1).is_err());
    }

    #[test]
    fn weights_are_respected() {
        let mut devs = dev_cluster_devices(4, "127.0.0.1", 6000, 2).unwrap();
        devs[0].weight = 300.0;
        devs[3].weight = 0.0;
        let ring = build_ring(devs, 1, 8).unwrap();
        let counts = ring.assignment_counts();
        assert_eq!(counts[3], 0);
        assert!((counts[0] as i64 - 154).abs() <= 1, "{counts:?}");
        assert!((counts[1] as i64 - 51).abs() <= 1, "{counts:?}");
    }
}
