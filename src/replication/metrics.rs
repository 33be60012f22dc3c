//! The replicator daemon's Prometheus metrics: counters equal to Swift's
//! per-pass stats summed over passes, pass and per-call latencies, rows
//! sent, and the per-peer lag Swift does not have (rows the peer lacked
//! at the end of the last pass, seconds since it was last in sync on every
//! DB). Rendered by whoever serves `/metrics` (the CLI, through
//! `server::metrics::serve_metrics`).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use super::stats::Stats;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildInfo {
    version: String,
    role: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabel {
    op: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabel {
    peer: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// A registry whose series are all named `rowsync_*` and carry
/// `kind="<kind>"`, holding `rowsync_build_info{version,role}`.
pub fn registry_for(kind: &str, role: &str) -> Registry {
    let mut registry = Registry::with_prefix_and_labels(
        "rowsync",
        [(Cow::Borrowed("kind"), Cow::Owned(kind.to_string()))].into_iter(),
    );
    let info = Family::<BuildInfo, Gauge>::default();
    info.get_or_create(&BuildInfo {
        version: env!("CARGO_PKG_VERSION").to_string(),
        role: role.to_string(),
    })
    .set(1);
    registry.register("build_info", "rowsync version and role", info);
    registry
}

/// Latency buckets: 0.5 ms to ~16 s.
pub fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

fn pass_histogram() -> Histogram {
    // 10 ms to ~1.5 days.
    Histogram::new(exponential_buckets(0.01, 2.0, 24))
}

fn rate_histogram() -> Histogram {
    // 10 rows/s to ~10M rows/s.
    Histogram::new(exponential_buckets(10.0, 2.0, 20))
}

/// The names of Swift's stats keys, in `_zero_stats` order, with their
/// values in a [`Stats`].
fn stat_values(s: &Stats) -> [(&'static str, u64); 13] {
    [
        ("attempted", s.attempted),
        ("success", s.success),
        ("failure", s.failure),
        ("ts_repl", s.ts_repl),
        ("no_change", s.no_change),
        ("hashmatch", s.hashmatch),
        ("rsync", s.rsync),
        ("diff", s.diff),
        ("remove", s.remove),
        ("empty", s.empty),
        ("remote_merge", s.remote_merge),
        ("diff_capped", s.diff_capped),
        ("deferred", s.deferred),
    ]
}

/// What one pass learnt of a peer.
#[derive(Debug, Default, Clone, Copy)]
struct PeerPass {
    rows_behind: u64,
    /// Some DB's lag was learnt (an unreachable peer's is not).
    known: bool,
    failed: bool,
}

#[derive(Debug, Default)]
struct PeerBook {
    /// The running pass.
    pass: HashMap<String, PeerPass>,
    /// When each peer was last found in sync on every DB at a pass end.
    last_in_sync: HashMap<String, Instant>,
}

/// The replicator's metrics.
pub struct ReplicatorMetrics {
    registry: Registry,
    stats: Vec<(&'static str, Counter)>,
    passes: Counter,
    skipped: Counter,
    rows_sent: Counter,
    pass_duration: Histogram,
    rows_per_second: Histogram,
    request_duration: Family<OpLabel, Histogram>,
    last_pass_end: FloatGauge,
    open_dbs: Gauge,
    peer_rows_behind: Family<PeerLabel, Gauge>,
    peer_since_in_sync: Family<PeerLabel, FloatGauge>,
    book: Mutex<PeerBook>,
    started: Instant,
}

impl std::fmt::Debug for ReplicatorMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReplicatorMetrics")
    }
}

impl ReplicatorMetrics {
    pub fn new(kind: &str) -> ReplicatorMetrics {
        let mut registry = registry_for(kind, "replicator");
        let mut stats = Vec::new();
        for (name, _) in stat_values(&Stats::default()) {
            let c = Counter::default();
            registry.register(
                format!("replicator_{name}"),
                format!("Swift's replication stat `{name}`, summed over passes"),
                c.clone(),
            );
            stats.push((name, c));
        }
        let passes = Counter::default();
        registry.register("replicator_passes", "Passes finished", passes.clone());
        let skipped = Counter::default();
        registry.register(
            "replicator_skipped",
            "DBs skipped without opening (unchanged since in sync with every peer)",
            skipped.clone(),
        );
        let rows_sent = Counter::default();
        registry.register(
            "replicator_rows_sent",
            "Rows acknowledged by peers in merge_items",
            rows_sent.clone(),
        );
        let pass_duration = pass_histogram();
        registry.register(
            "replicator_pass_duration_seconds",
            "Wall time of a pass",
            pass_duration.clone(),
        );
        let rows_per_second = rate_histogram();
        registry.register(
            "replicator_rows_per_second",
            "Rows per second of each DB's row sync to a peer",
            rows_per_second.clone(),
        );
        let request_duration =
            Family::<OpLabel, Histogram>::new_with_constructor(latency_histogram as fn() -> _);
        registry.register(
            "replicator_request_duration_seconds",
            "REPLICATE call latency as the sender sees it, by op",
            request_duration.clone(),
        );
        let last_pass_end = FloatGauge::default();
        registry.register(
            "replicator_last_pass_end_timestamp_seconds",
            "When the last pass ended (seconds since the epoch)",
            last_pass_end.clone(),
        );
        let open_dbs = Gauge::default();
        registry.register("open_dbs", "DBs the replicator has open", open_dbs.clone());
        let peer_rows_behind = Family::<PeerLabel, Gauge>::default();
        registry.register(
            "peer_rows_behind",
            "Rows the peer lacked at the end of the last pass that reached it, summed over DBs",
            peer_rows_behind.clone(),
        );
        let peer_since_in_sync = Family::<PeerLabel, FloatGauge>::default();
        registry.register(
            "peer_seconds_since_in_sync",
            "Seconds since a pass last found the peer in sync on every DB",
            peer_since_in_sync.clone(),
        );
        ReplicatorMetrics {
            registry,
            stats,
            passes,
            skipped,
            rows_sent,
            pass_duration,
            rows_per_second,
            request_duration,
            last_pass_end,
            open_dbs,
            peer_rows_behind,
            peer_since_in_sync,
            book: Mutex::new(PeerBook::default()),
            started: Instant::now(),
        }
    }

    fn book(&self) -> std::sync::MutexGuard<'_, PeerBook> {
        match self.book.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// A pass starts: the per-peer figures of this pass start from zero.
    pub fn pass_started(&self) {
        self.book().pass.clear();
    }

    /// A pass ended with `stats` after `elapsed`.
    pub fn pass_finished(&self, stats: &Stats, elapsed: Duration, end_epoch: f64) {
        for ((_, c), (_, v)) in self.stats.iter().zip(stat_values(stats)) {
            c.inc_by(v);
        }
        self.passes.inc();
        self.skipped.inc_by(stats.skipped);
        self.pass_duration.observe(elapsed.as_secs_f64());
        self.last_pass_end.set(end_epoch);
        let now = Instant::now();
        let mut book = self.book();
        let pass = std::mem::take(&mut book.pass);
        for (peer, p) in pass {
            // A peer not reached keeps its last known figure.
            if p.known {
                self.peer_rows_behind
                    .get_or_create(&PeerLabel { peer: peer.clone() })
                    .set(i64::try_from(p.rows_behind).unwrap_or(i64::MAX));
            }
            if !p.failed && p.rows_behind == 0 {
                book.last_in_sync.insert(peer, now);
            } else {
                book.last_in_sync.entry(peer).or_insert(self.started);
            }
        }
    }

    /// A DB's replication to `peer` ended with the peer lacking
    /// `rows_behind` of our rows (0: in sync).
    pub fn peer_lag(&self, peer: &str, rows_behind: u64) {
        let mut book = self.book();
        let p = book.pass.entry(peer.to_string()).or_default();
        p.rows_behind += rows_behind;
        p.known = true;
    }

    /// A DB's replication to `peer` ended; `ok` = it succeeded.
    pub fn peer_result(&self, peer: &str, ok: bool) {
        let mut book = self.book();
        let p = book.pass.entry(peer.to_string()).or_default();
        p.failed |= !ok;
    }

    /// `rows` acknowledged by a peer in `elapsed` (one DB's usync).
    pub fn rows_sent(&self, rows: u64, elapsed: Duration) {
        if rows == 0 {
            return;
        }
        self.rows_sent.inc_by(rows);
        let secs = elapsed.as_secs_f64();
        if secs > 0.0 {
            self.rows_per_second.observe(rows as f64 / secs);
        }
    }

    /// One REPLICATE call (or whole-DB upload, `op = "upload"`).
    pub fn request(&self, op: &str, elapsed: Duration) {
        self.request_duration
            .get_or_create(&OpLabel { op: op.to_string() })
            .observe(elapsed.as_secs_f64());
    }

    /// DBs open now (+1 / -1).
    pub fn db_opened(&self, delta: i64) {
        self.open_dbs.inc_by(delta);
    }

    /// The exposition text, with the seconds-since-in-sync gauges as of now.
    pub fn render(&self) -> Option<String> {
        let now = Instant::now();
        for (peer, at) in self.book().last_in_sync.iter() {
            self.peer_since_in_sync
                .get_or_create(&PeerLabel { peer: peer.clone() })
                .set(now.duration_since(*at).as_secs_f64());
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).ok()?;
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_follow_passes_and_peers_their_lag() {
        let m = ReplicatorMetrics::new("container");
        m.pass_started();
        m.peer_lag("127.0.0.1:1/sda", 0);
        m.peer_result("127.0.0.1:1/sda", true);
        m.peer_lag("127.0.0.2:1/sdb", 40);
        m.peer_result("127.0.0.2:1/sdb", false);
        let mut s = Stats::new(0.0);
        s.attempted = 3;
        s.diff = 2;
        m.pass_finished(&s, Duration::from_millis(20), 1.0);
        let text = m.render().unwrap();
        assert!(
            text.contains("rowsync_replicator_attempted_total{kind=\"container\"} 3"),
            "{text}"
        );
        assert!(text.contains("rowsync_replicator_diff_total{kind=\"container\"} 2"));
        assert!(text.contains("rowsync_replicator_passes_total{kind=\"container\"} 1"));
        assert!(text
            .contains("rowsync_peer_rows_behind{kind=\"container\",peer=\"127.0.0.2:1/sdb\"} 40"));
        assert!(text
            .contains("rowsync_peer_rows_behind{kind=\"container\",peer=\"127.0.0.1:1/sda\"} 0"));
        assert!(text.contains(
            "rowsync_peer_seconds_since_in_sync{kind=\"container\",peer=\"127.0.0.1:1/sda\"}"
        ));
    }
}
