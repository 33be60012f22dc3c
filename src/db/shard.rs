//! Shard range rows and Swift's shard-range merge rule (`merge_shards`).
//! rowsync stores and replicates shard ranges; it does not shard.

use serde::{Deserialize, Serialize};

/// Shard range states.
pub mod state {
    pub const FOUND: i64 = 10;
    pub const CREATED: i64 = 20;
    pub const CLEAVED: i64 = 30;
    pub const ACTIVE: i64 = 40;
    pub const SHRINKING: i64 = 50;
    pub const SHARDING: i64 = 60;
    pub const SHARDED: i64 = 70;
    pub const SHRUNK: i64 = 80;
    /// States in which a DB with other shard ranges has begun sharding.
    pub const CLEAVING: [i64; 4] = [SHRINKING, SHARDING, SHARDED, SHRUNK];
}

/// The columns of the `shard_range` table, in Swift's `SHARD_RANGE_KEYS` order.
pub const SHARD_RANGE_KEYS: &str = "name, timestamp, lower, upper, object_count, bytes_used, \
     meta_timestamp, deleted, state, state_timestamp, epoch, reported, tombstones";

/// One shard range row, as `get_shard_ranges` sends it on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardRange {
    pub name: String,
    pub timestamp: String,
    #[serde(default)]
    pub lower: String,
    #[serde(default)]
    pub upper: String,
    #[serde(default)]
    pub object_count: i64,
    #[serde(default)]
    pub bytes_used: i64,
    pub meta_timestamp: String,
    #[serde(default, deserialize_with = "bool_or_int")]
    pub deleted: i64,
    pub state: i64,
    pub state_timestamp: String,
    #[serde(default)]
    pub epoch: Option<String>,
    #[serde(default, deserialize_with = "bool_or_int")]
    pub reported: i64,
    #[serde(default = "minus_one")]
    pub tombstones: i64,
}

fn minus_one() -> i64 {
    -1
}

fn bool_or_int<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    use serde::de::Error;
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Bool(b) => Ok(b as i64),
        serde_json::Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| D::Error::custom("expected an integer")),
        v => Err(D::Error::custom(format!("expected 0/1, got {v}"))),
    }
}

impl ShardRange {
    pub fn epoch_str(&self) -> &str {
        self.epoch.as_deref().unwrap_or("")
    }
}

/// Swift's `merge_shards(new, existing)`: updates `new` from `existing`
/// where existing takes precedence; returns whether `new` carries anything
/// newer. Timestamps compare as strings, as in Swift.
pub fn merge_shards(new: &mut ShardRange, existing: Option<&ShardRange>) -> bool {
    let Some(existing) = existing else {
        return true;
    };
    if existing.timestamp < new.timestamp {
        new.reported = 0;
        return true;
    } else if existing.timestamp > new.timestamp {
        return false;
    }
    let mut new_content = false;
    new.lower.clone_from(&existing.lower);
    new.upper.clone_from(&existing.upper);
    new.deleted = existing.deleted;
    if existing.meta_timestamp >= new.meta_timestamp {
        new.object_count = existing.object_count;
        new.bytes_used = existing.bytes_used;
        new.meta_timestamp.clone_from(&existing.meta_timestamp);
        new.tombstones = existing.tombstones;
    } else {
        new_content = true;
    }
    if existing.reported != 0
        && existing.object_count == new.object_count
        && existing.bytes_used == new.bytes_used
        && existing.tombstones == new.tombstones
        && existing.state == new.state
        && existing.epoch == new.epoch
    {
        new.reported = 1;
    } else if new.reported != 0 && existing.reported == 0 {
        new_content = true;
    }
    if existing.state_timestamp == new.state_timestamp && new.state > existing.state {
        new_content = true;
    } else if existing.state_timestamp >= new.state_timestamp {
        new.state = existing.state;
        new.state_timestamp.clone_from(&existing.state_timestamp);
        new.epoch.clone_from(&existing.epoch);
    } else {
        new_content = true;
    }
    new_content
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sr(ts: &str, meta: &str, state: i64, state_ts: &str) -> ShardRange {
        ShardRange {
            name: "a/c".into(),
            timestamp: ts.into(),
            lower: String::new(),
            upper: String::new(),
            object_count: 1,
            bytes_used: 2,
            meta_timestamp: meta.into(),
            deleted: 0,
            state,
            state_timestamp: state_ts.into(),
            epoch: None,
            reported: 0,
            tombstones: -1,
        }
    }

    #[test]
    fn newer_timestamp_wins_wholesale() {
        let old = sr("1", "1", 40, "1");
        let mut new = sr("2", "1", 10, "1");
        new.reported = 1;
        assert!(merge_shards(&mut new, Some(&old)));
        assert_eq!(new.reported, 0);
        let mut older = sr("0", "5", 70, "5");
        assert!(!merge_shards(&mut older, Some(&old)));
    }

    #[test]
    fn equal_timestamp_merges_parts() {
        let existing = sr("1", "3", 40, "1");
        let mut new = sr("1", "2", 60, "2");
        new.object_count = 99;
        assert!(merge_shards(&mut new, Some(&existing)));
        assert_eq!(new.object_count, 1, "older meta loses");
        assert_eq!(new.state, 60, "newer state wins");
        let mut same = existing.clone();
        assert!(!merge_shards(&mut same, Some(&existing)));
    }
}
