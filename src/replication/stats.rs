//! Per-pass replication statistics: Swift's `self.stats` dict
//! (`_zero_stats`, `_add_failure_stats`, `_report_stats`).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// The replicator's per-pass counters, with Swift's keys. All counters are
/// integers; `start` is the pass start as a float epoch.
///
/// `ts_repl` and `empty` are never incremented by Swift but are still
/// reported; `deferred` is only used by the container replicator.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    pub attempted: u64,
    pub success: u64,
    pub failure: u64,
    pub ts_repl: u64,
    pub no_change: u64,
    pub hashmatch: u64,
    pub rsync: u64,
    pub diff: u64,
    pub remove: u64,
    pub empty: u64,
    pub remote_merge: u64,
    /// Pass start, seconds since the epoch.
    pub start: f64,
    pub diff_capped: u64,
    pub deferred: u64,
    /// `{replication_ip: {device: failures}}`.
    pub failure_nodes: BTreeMap<String, BTreeMap<String, u64>>,
    /// rowsync: DBs the pass skipped without opening (unchanged since in
    /// sync with every peer). Not one of Swift's keys: not in the recon
    /// dict.
    pub skipped: u64,
}

impl Stats {
    /// Zeroed stats for a pass starting at `start` (`_zero_stats`).
    pub fn new(start: f64) -> Self {
        Stats {
            start,
            ..Stats::default()
        }
    }

    /// One failure against `(ip, device)` (`_add_failure_stats`).
    pub fn add_failure(&mut self, ip: &str, device: &str) {
        self.failure += 1;
        *self
            .failure_nodes
            .entry(ip.to_string())
            .or_default()
            .entry(device.to_string())
            .or_default() += 1;
    }

    /// Adds `other`'s counters (and failure nodes) into `self`; keeps the
    /// earlier of the two starts.
    pub fn merge(&mut self, other: &Stats) {
        self.attempted += other.attempted;
        self.success += other.success;
        self.failure += other.failure;
        self.ts_repl += other.ts_repl;
        self.no_change += other.no_change;
        self.hashmatch += other.hashmatch;
        self.rsync += other.rsync;
        self.diff += other.diff;
        self.remove += other.remove;
        self.empty += other.empty;
        self.remote_merge += other.remote_merge;
        self.diff_capped += other.diff_capped;
        self.deferred += other.deferred;
        self.skipped += other.skipped;
        if other.start < self.start {
            self.start = other.start;
        }
        for (ip, devs) in &other.failure_nodes {
            let mine = self.failure_nodes.entry(ip.clone()).or_default();
            for (dev, n) in devs {
                *mine.entry(dev.clone()).or_default() += n;
            }
        }
    }

    /// The stats dict as Swift dumps it into the recon cache: exactly
    /// Swift's keys (in `_zero_stats` order), ints, `start` a float and
    /// `failure_nodes` nested objects.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        let mut put = |k: &str, v: u64| {
            m.insert(k.to_string(), Value::from(v));
        };
        put("attempted", self.attempted);
        put("success", self.success);
        put("failure", self.failure);
        put("ts_repl", self.ts_repl);
        put("no_change", self.no_change);
        put("hashmatch", self.hashmatch);
        put("rsync", self.rsync);
        put("diff", self.diff);
        put("remove", self.remove);
        put("empty", self.empty);
        put("remote_merge", self.remote_merge);
        m.insert("start".to_string(), Value::from(self.start));
        m.insert("diff_capped".to_string(), Value::from(self.diff_capped));
        m.insert("deferred".to_string(), Value::from(self.deferred));
        let nodes: Map<String, Value> = self
            .failure_nodes
            .iter()
            .map(|(ip, devs)| {
                let devs: Map<String, Value> = devs
                    .iter()
                    .map(|(d, n)| (d.clone(), Value::from(*n)))
                    .collect();
                (ip.clone(), Value::Object(devs))
            })
            .collect();
        m.insert("failure_nodes".to_string(), Value::Object(nodes));
        Value::Object(m)
    }

    /// Seconds since `start` at `now`.
    pub fn elapsed(&self, now: f64) -> f64 {
        now - self.start
    }

    /// Swift's four end-of-pass info lines (`_report_stats`), in order.
    pub fn report_lines(&self, now: f64) -> Vec<String> {
        let elapsed = self.elapsed(now);
        let rate = self.attempted as f64 / (elapsed + 0.0000001);
        vec![
            format!(
                "Attempted to replicate {} dbs in {:.5} seconds ({:.5}/s)",
                self.attempted, elapsed, rate
            ),
            format!("Removed {} dbs", self.remove),
            format!("{} successes, {} failures", self.success, self.failure),
            // Swift: sorted(stats.items()) filtered to these keys.
            format!(
                "diff:{} diff_capped:{} empty:{} hashmatch:{} no_change:{} \
                 remote_merge:{} rsync:{} ts_repl:{}",
                self.diff,
                self.diff_capped,
                self.empty,
                self.hashmatch,
                self.no_change,
                self.remote_merge,
                self.rsync,
                self.ts_repl
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Swift's `test_stats` (test/unit/common/test_db_replicator.py).
    #[test]
    fn report_lines_match_swift_test_stats() {
        let start = 1234.5678;
        let mut s = Stats::new(start);
        assert_eq!(
            s.report_lines(start),
            vec![
                "Attempted to replicate 0 dbs in 0.00000 seconds (0.00000/s)",
                "Removed 0 dbs",
                "0 successes, 0 failures",
                "diff:0 diff_capped:0 empty:0 hashmatch:0 no_change:0 \
                 remote_merge:0 rsync:0 ts_repl:0",
            ]
        );
        s.attempted = 30;
        s.success = 25;
        s.remove = 9;
        s.failure = 1;
        s.diff = 5;
        s.diff_capped = 4;
        s.empty = 7;
        s.hashmatch = 8;
        s.no_change = 6;
        s.remote_merge = 2;
        s.rsync = 3;
        s.ts_repl = 10;
        assert_eq!(
            s.report_lines(start + 246.813576),
            vec![
                "Attempted to replicate 30 dbs in 246.81358 seconds (0.12155/s)",
                "Removed 9 dbs",
                "25 successes, 1 failures",
                "diff:5 diff_capped:4 empty:7 hashmatch:8 no_change:6 \
                 remote_merge:2 rsync:3 ts_repl:10",
            ]
        );
    }

    #[test]
    fn add_failure_counts_per_node_and_device() {
        let mut s = Stats::new(1.0);
        s.add_failure("10.0.0.1", "sda");
        s.add_failure("10.0.0.1", "sda");
        s.add_failure("10.0.0.1", "sdb");
        s.add_failure("10.0.0.2", "sda");
        assert_eq!(s.failure, 4);
        assert_eq!(s.failure_nodes["10.0.0.1"]["sda"], 2);
        assert_eq!(s.failure_nodes["10.0.0.1"]["sdb"], 1);
        assert_eq!(s.failure_nodes["10.0.0.2"]["sda"], 1);
    }

    #[test]
    fn to_json_has_exactly_swifts_keys_and_types() {
        let mut s = Stats::new(1700000000.25);
        s.attempted = 3;
        s.add_failure("10.0.0.1", "sda");
        let v = s.to_json();
        let obj = v.as_object().unwrap();
        let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            vec![
                "attempted",
                "success",
                "failure",
                "ts_repl",
                "no_change",
                "hashmatch",
                "rsync",
                "diff",
                "remove",
                "empty",
                "remote_merge",
                "start",
                "diff_capped",
                "deferred",
                "failure_nodes"
            ]
        );
        for (k, v) in obj {
            match k.as_str() {
                "start" => assert!(v.is_f64()),
                "failure_nodes" => assert!(v.is_object()),
                _ => assert!(v.is_u64(), "{k}"),
            }
        }
        assert_eq!(obj["attempted"], 3);
        assert_eq!(obj["failure"], 1);
        assert_eq!(obj["start"], 1700000000.25);
        assert_eq!(
            obj["failure_nodes"],
            serde_json::json!({"10.0.0.1": {"sda": 1}})
        );
        // An integral start is still a float.
        assert!(Stats::new(12.0).to_json()["start"].is_f64());
    }

    #[test]
    fn merge_sums_and_keeps_earliest_start() {
        let mut a = Stats::new(100.0);
        a.attempted = 2;
        a.success = 1;
        a.deferred = 1;
        a.add_failure("ip1", "sda");
        let mut b = Stats::new(50.0);
        b.attempted = 3;
        b.rsync = 4;
        b.diff_capped = 5;
        b.add_failure("ip1", "sda");
        b.add_failure("ip2", "sdb");
        a.merge(&b);
        assert_eq!(a.start, 50.0);
        assert_eq!(a.attempted, 5);
        assert_eq!(a.success, 1);
        assert_eq!(a.rsync, 4);
        assert_eq!(a.diff_capped, 5);
        assert_eq!(a.deferred, 1);
        assert_eq!(a.failure, 3);
        assert_eq!(a.failure_nodes["ip1"]["sda"], 2);
        assert_eq!(a.failure_nodes["ip2"]["sdb"], 1);
        let later = Stats::new(200.0);
        a.merge(&later);
        assert_eq!(a.start, 50.0);
    }
}
