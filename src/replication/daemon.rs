//! The replicator daemon for DBs of a kind `K`: a pass over every local DB
//! (Swift's `run_once`), per-DB processing (`_replicate_object`), handoff
//! and misplaced-DB clean-up, stats and the recon cache.

use std::collections::{BTreeSet, HashMap};
use std::marker::PhantomData;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::Semaphore;

use super::client::{node_name, ReplClient};
use super::clock::{Clock, SystemClock};
use super::local::{is_local_device, whataremyips};
use super::metrics::ReplicatorMetrics;
use super::pass_state::{self, DeviceState, Stamp};
use super::rpc::ReplKind;
use super::sender::{repl_to_node, LocalDb, ReplError, SenderCtx};
use super::stats::Stats;
use super::wire::ReplicateOp;
use super::{recon, rsync, ship_record, walk};
use crate::config::{ReplicatorConf, SwiftConf};
use crate::db::files::{self, hash_of};
use crate::db::{Broker, DbError, DbInfo, DbState};
use crate::replication::rpc::check_drive;
use crate::ring::{Device, MoreNodes, Ring, RingHandle};
use crate::swift::HashPathConfig;

/// Limits a pass to some devices / partitions (`--devices`, `--partitions`).
#[derive(Debug, Clone, Default)]
pub struct PassFilter {
    pub devices: Option<BTreeSet<String>>,
    pub partitions: Option<BTreeSet<u32>>,
}

/// The replicator of DBs of kind `K`.
pub struct Replicator<K: ReplKind> {
    pub conf: Arc<ReplicatorConf>,
    pub ring: RingHandle,
    pub hash_conf: HashPathConfig,
    pub client: ReplClient,
    pub multiple_policies: bool,
    /// `handoff_delete` after the replica-count check.
    handoff_delete: usize,
    /// The stats of the last finished pass.
    pub last_stats: Mutex<Option<Stats>>,
    /// Swift's statsd metrics under `<kind>-replicator.`, when configured.
    pub statsd: Option<Arc<super::statsd::Statsd>>,
    /// The Prometheus metrics (served when `prometheus_port` is set).
    pub metrics: Arc<ReplicatorMetrics>,
    /// The wall clock of passes, reclaim and ship deadlines.
    clock: Arc<dyn Clock>,
    /// The seed of `rng`.
    seed: u64,
    /// Every random choice of the daemon: the initial delay, the walk's
    /// partition order.
    rng: Mutex<StdRng>,
    /// The pass state of each device, kept between passes while its file
    /// is the one this process last read or wrote.
    device_states: Mutex<HashMap<PathBuf, Arc<Mutex<DeviceState>>>>,
    kind: PhantomData<K>,
}

/// `interval` as a duration (at most 10^12 s; NaN as 0).
fn interval_of(conf: &ReplicatorConf) -> Duration {
    Duration::try_from_secs_f64(conf.interval.clamp(0.0, 1e12)).unwrap_or_default()
}

/// `now - reclaim_age` (the epoch if that is before it).
fn reclaim_before(now: SystemTime, reclaim_age: f64) -> SystemTime {
    Duration::try_from_secs_f64(reclaim_age.max(0.0))
        .ok()
        .and_then(|age| now.checked_sub(age))
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// What the pass state says of a DB being visited.
struct Visit {
    state: Arc<Mutex<DeviceState>>,
    hash: String,
    /// The DB's stamp before the visit (None: pending rows or unreadable).
    stamp: Option<Stamp>,
    placement: u64,
    /// Run the integrity check on this visit.
    audit: bool,
}

/// The answers of rowsync peers to `rowsync_partition_dbs` during one
/// pass: `(peer's device id, partition)` -> the DB hashes it holds (None:
/// not a rowsync peer, or no answer).
#[derive(Default)]
struct PeerListings {
    lists: HashMap<(u32, u32), Option<std::collections::HashSet<String>>>,
    /// Peers that answered the op 400 (Swift): not asked again this pass.
    not_rowsync: std::collections::HashSet<u32>,
    /// Peers already counted in sync in this pass's metrics (by a skip).
    counted: std::collections::HashSet<u32>,
}

impl PeerListings {
    /// Fetches the listing of `part` from the `peers` not asked yet this
    /// pass (all at once).
    async fn fetch(
        &mut self,
        client: &ReplClient,
        peers: &[&Device],
        part: u32,
        timeout: Duration,
    ) {
        let wanted: HashMap<u32, (Device, Vec<u32>)> = peers
            .iter()
            .filter(|p| {
                !self.not_rowsync.contains(&p.id) && !self.lists.contains_key(&(p.id, part))
            })
            .map(|p| (p.id, ((*p).clone(), vec![part])))
            .collect();
        if !wanted.is_empty() {
            self.prefetch(client, wanted, timeout).await;
        }
    }

    /// Fetches the listings of many partitions at once: for each peer,
    /// the partitions it shares with us, a few thousand per request, all
    /// peers concurrently.
    async fn prefetch(
        &mut self,
        client: &ReplClient,
        wanted: HashMap<u32, (Device, Vec<u32>)>,
        timeout: Duration,
    ) {
        let op_for = |parts: &[u32]| ReplicateOp::<K0>::PartitionDbs(Some(parts.to_vec()));
        let zero = "0".repeat(32);
        let mut calls = Vec::new();
        for (id, (dev, parts)) in &wanted {
            for chunk in parts.chunks(super::wire::MAX_LISTED_PARTITIONS) {
                calls.push((*id, dev.clone(), chunk.to_vec()));
            }
        }
        let answers = futures::future::join_all(calls.iter().map(|(_, dev, chunk)| {
            let op = op_for(chunk);
            let zero = zero.clone();
            async move {
                let part = chunk.first().copied().unwrap_or(0);
                client.replicate(dev, part, &zero, &op, timeout).await
            }
        }))
        .await;
        for ((id, _, chunk), answer) in calls.into_iter().zip(answers) {
            match answer {
                Ok(r) if r.is_success() => {
                    let Ok(map) = serde_json::from_slice::<HashMap<String, Vec<String>>>(&r.body)
                    else {
                        continue;
                    };
                    for p in chunk {
                        let list = map.get(&p.to_string()).map(|v| v.iter().cloned().collect());
                        self.lists.insert((id, p), list);
                    }
                }
                Ok(r) if (400..500).contains(&r.status) => {
                    // A Swift peer answers 400 or 404 (no DB under the
                    // zero hash): not asked again this pass.
                    self.not_rowsync.insert(id);
                }
                // No answer: not asked again for these partitions.
                _ => {
                    for p in chunk {
                        self.lists.insert((id, p), None);
                    }
                }
            }
        }
    }

    /// Does every one of `peers` hold the DB `hash` of `part`, by its own
    /// listing?
    async fn all_hold(
        &mut self,
        client: &ReplClient,
        peers: &[&Device],
        part: u32,
        hash: &str,
        timeout: Duration,
    ) -> bool {
        self.fetch(client, peers, part, timeout).await;
        peers.iter().all(|p| {
            self.lists
                .get(&(p.id, part))
                .and_then(|l| l.as_ref())
                .is_some_and(|l| l.contains(hash))
        })
    }
}

/// One DB in `rowsync_open_dbs` for as long as this lives.
struct OpenDb(Option<Arc<ReplicatorMetrics>>);

impl OpenDb {
    fn new(metrics: Option<Arc<ReplicatorMetrics>>) -> OpenDb {
        if let Some(m) = &metrics {
            m.db_opened(1);
        }
        OpenDb(metrics)
    }
}

impl Drop for OpenDb {
    fn drop(&mut self) {
        if let Some(m) = &self.0 {
            m.db_opened(-1);
        }
    }
}

/// DBs walked (and stamped) per batch sent by the walking thread.
const WALK_BATCH: usize = 256;
/// Batches the walk may run ahead of the visits: room for a whole
/// device's walk (about 200 bytes a DB) while the peers' listings, which
/// the first visit waits for, are being made.
const WALK_AHEAD: usize = 1024;

/// A walked DB: partition, file, local device id, its hash (from the
/// path), stamp.
type Walked = (String, PathBuf, u32, Option<String>, Option<Stamp>);

/// A partition's primaries and their digest (computed once per pass).
struct Placement {
    part: u32,
    nodes: Vec<Device>,
    digest: u64,
}

impl Placement {
    fn of(ring: &Ring, part: u32) -> Placement {
        let nodes: Vec<Device> = ring
            .get_part_nodes(part)
            .into_iter()
            .map(|n| n.device)
            .collect();
        Placement {
            part,
            digest: pass_state::placement_digest(&nodes),
            nodes,
        }
    }
}

/// The row type used for ops that carry no rows.
type K0 = crate::swift::merge::ObjectItem;

/// What one DB's replication did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbOutcome {
    pub success: bool,
    pub responses: Vec<bool>,
}

impl<K: ReplKind> Replicator<K> {
    pub fn new(conf: ReplicatorConf, swift: &SwiftConf, ring: RingHandle) -> Self {
        let replicas = ring.ring().replica_count();
        let mut handoff_delete = conf.handoff_delete as usize;
        if handoff_delete > 0 && handoff_delete as f64 >= replicas {
            tracing::warn!(
                "handoff_delete={handoff_delete} is too high to have an effect on a ring with \
                 replica count {replicas}. Disabling."
            );
            handoff_delete = 0;
        }
        let statsd = conf
            .statsd
            .as_ref()
            .and_then(|s| super::statsd::Statsd::new(s, &format!("{}-replicator", K::NAME)))
            .map(Arc::new);
        let metrics = Arc::new(ReplicatorMetrics::new(K::NAME));
        let client = ReplClient::with_transport(Arc::new(
            super::client::HttpTransport::with_secret(conf.replication_secret.clone()),
        ))
        .with_metrics(metrics.clone());
        let seed = rand::random::<u64>();
        Replicator {
            conf: Arc::new(conf),
            ring,
            hash_conf: swift.hash_path_config(),
            client,
            multiple_policies: swift.policy_count() > 1,
            handoff_delete,
            last_stats: Mutex::new(None),
            statsd,
            metrics,
            clock: Arc::new(SystemClock),
            seed,
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            device_states: Mutex::default(),
            kind: PhantomData,
        }
    }

    /// Reads the wall clock from `clock` (tests).
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        Replicator { clock, ..self }
    }

    /// Draws every random choice from a generator seeded with `seed`
    /// (by default the seed comes from the system's entropy).
    pub fn with_seed(self, seed: u64) -> Self {
        Replicator {
            seed,
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            ..self
        }
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The delay before the first pass of [`Replicator::run_forever`]: a
    /// random fraction of `interval` (from the replicator's generator).
    pub fn initial_delay(&self) -> Duration {
        let interval = interval_of(&self.conf);
        interval.mul_f64(lock(&self.rng).gen::<f64>())
    }

    /// One replication pass. Returns its stats.
    pub async fn run_once(&self, filter: &PassFilter) -> Stats {
        let start = self.clock.now_secs();
        let stats = Arc::new(Mutex::new(Stats::new(start)));
        self.metrics.pass_started();
        let pass_clock = Instant::now();
        let ctx = SenderCtx {
            conf: self.conf.clone(),
            client: self.client.clone(),
            stats: stats.clone(),
            multiple_policies: self.multiple_policies,
            devices: self.conf.devices.clone(),
            statsd: self.statsd.clone(),
            metrics: Some(self.metrics.clone()),
            clock: self.clock.clone(),
        };
        if let Err(e) = self.ring.reload_if_changed() {
            tracing::warn!("ring reload failed, keeping the loaded ring: {e}");
        }
        let ring = self.ring.ring();
        let ips: Vec<IpAddr> = whataremyips(&self.conf.bind_ip);
        if ips.is_empty() {
            tracing::error!("ERROR Failed to get my own IPs?");
            return self.finish(stats, start);
        }
        if self.conf.handoffs_only || self.handoff_delete > 0 {
            tracing::warn!(
                "Starting replication pass with handoffs_only and/or handoffs_delete enabled. \
                 These modes are not intended for normal operation; use these options with care."
            );
        }
        let mut dirs: Vec<(PathBuf, u32, walk::PartitionFilter)> = Vec::new();
        let mut states: HashMap<u32, Arc<Mutex<DeviceState>>> = HashMap::new();
        let mut prefetch_parts: Vec<(u32, Vec<u32>)> = Vec::new();
        let mut found_local = false;
        let reclaim_before = reclaim_before(self.clock.now(), self.conf.reclaim_age);
        for dev in ring.devs().iter().flatten() {
            if !is_local_device(
                &ips,
                Some(self.conf.bind_port),
                &dev.replication_ip,
                dev.replication_port,
            ) {
                continue;
            }
            found_local = true;
            let Some(dev_path) =
                check_drive(&self.conf.devices, &dev.device, self.conf.mount_check)
            else {
                tracing::warn!("Skipping: {} is not mounted", dev.device);
                let mut s = lock(&stats);
                for d in ring.devs().iter().flatten() {
                    s.add_failure(&d.replication_ip, &d.device);
                }
                continue;
            };
            if let Some(only) = &filter.devices {
                if !only.contains(&dev.device) {
                    tracing::debug!("Skipping device {} due to given arguments", dev.device);
                    continue;
                }
            }
            let tmp = dev_path.join("tmp");
            let removed = rsync::reclaim_device_tmp(&tmp, reclaim_before)
                + rsync::reclaim_device_tmp(&ship_record::records_dir(&dev_path), reclaim_before);
            if removed > 0 {
                tracing::info!(dir = %tmp.display(), removed, "reclaimed old tmp files");
            }
            let datadir = dev_path.join(K::DATADIR);
            states.insert(dev.id, self.device_state(&dev_path));
            if datadir.is_dir() {
                // Partitions worth asking peers about: a device whose pass
                // state knows DBs (a first pass skips nothing).
                let known = states.get(&dev.id).is_some_and(|st| !lock(st).is_empty());
                if known && self.conf.full_pass_interval > 0.0 {
                    let parts: Vec<u32> = std::fs::read_dir(&datadir)
                        .map(|rd| {
                            rd.flatten()
                                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                                .filter(|p| {
                                    filter.partitions.as_ref().is_none_or(|ps| ps.contains(p))
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    prefetch_parts.push((dev.id, parts));
                }
                let ring2 = ring.clone();
                let dev_id = dev.id;
                let handoffs_only = self.conf.handoffs_only;
                let parts = filter.partitions.clone();
                let filt: walk::PartitionFilter = Box::new(move |p: &str| {
                    let Ok(part) = p.parse::<u32>() else {
                        return false;
                    };
                    if handoffs_only && ring2.primary_ids(part).contains(&dev_id) {
                        return false;
                    }
                    parts.as_ref().is_none_or(|ps| ps.contains(&part))
                });
                dirs.push((datadir, dev.id, filt));
            }
        }
        if !found_local {
            let ips_text: Vec<String> = ips.iter().map(|i| i.to_string()).collect();
            tracing::error!(
                "Can't find itself {} with port {} in ring file, not replicating",
                ips_text.join(", "),
                self.conf.bind_port
            );
        }
        tracing::info!("Beginning replication run");
        let sem = Arc::new(Semaphore::new(self.conf.concurrency.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        let rate = self.conf.databases_per_second;
        let pass_start = Instant::now();
        let walk_seed = lock(&self.rng).gen::<u64>();
        // The walk and the files' stamps run ahead on a blocking thread (no
        // DB is opened there), overlapping the peers' listings and the
        // visits; the thread ends with the walk or when the pass is dropped.
        let (walked_tx, mut walked) = tokio::sync::mpsc::channel::<Vec<Walked>>(WALK_AHEAD);
        let walk_states = states.clone();
        let walk = tokio::task::spawn_blocking(move || {
            let mut walker = walk::roundrobin_datadirs(dirs, walk_seed);
            loop {
                let mut batch = Vec::with_capacity(WALK_BATCH);
                for (part, db_file, node_id) in walker.by_ref().take(WALK_BATCH) {
                    let hash = hash_of(&db_file);
                    let known = walk_states
                        .get(&node_id)
                        .zip(hash.as_deref())
                        .and_then(|(state, hash)| lock(state).in_sync(hash).copied());
                    let stamp = pass_state::stamp(&db_file, known.as_ref());
                    batch.push((part, db_file, node_id, hash, stamp));
                }
                let last = batch.len() < WALK_BATCH;
                if batch.is_empty() || walked_tx.blocking_send(batch).is_err() || last {
                    break;
                }
            }
        });
        let mut n: u64 = 0;
        let mut skipped: u64 = 0;
        let mut listings = PeerListings::default();
        let mut places: HashMap<u32, Arc<Placement>> = HashMap::new();
        if self.conf.full_pass_interval > 0.0 {
            let wanted = self.listings_wanted(&ring, &states, &prefetch_parts, &mut places);
            let timeout = Duration::from_secs_f64(self.conf.node_timeout.max(0.001));
            listings.prefetch(&self.client, wanted, timeout).await;
        }
        let mut batch: std::collections::VecDeque<Walked> = Default::default();
        loop {
            if batch.is_empty() {
                match walked.recv().await {
                    Some(b) => batch.extend(b),
                    None => break,
                }
            }
            let Some((part, db_file, node_id, hash, stamp)) = batch.pop_front() else {
                break;
            };
            let visit = match (states.get(&node_id), hash) {
                (Some(state), Some(hash)) => {
                    let place = part.parse::<u32>().ok().map(|p| {
                        places
                            .entry(p)
                            .or_insert_with(|| Arc::new(Placement::of(&ring, p)))
                            .clone()
                    });
                    let v = self
                        .plan_visit(state, place, stamp, hash, node_id, &mut listings)
                        .await;
                    match v {
                        Some(v) => Some(v),
                        None => {
                            skipped += 1;
                            continue;
                        }
                    }
                }
                _ => None,
            };
            if rate > 0.0 {
                let due = Duration::from_secs_f64(n as f64 / rate);
                let elapsed = pass_start.elapsed();
                if due > elapsed {
                    tokio::time::sleep(due - elapsed).await;
                }
            }
            n += 1;
            let Ok(permit) = sem.clone().acquire_owned().await else {
                break;
            };
            let this = self.clone_parts(ring.clone(), ctx.clone());
            tasks.spawn(async move {
                let _permit = permit;
                this.replicate_db(&part, &db_file, node_id, visit).await
            });
            while let Some(r) = tasks.try_join_next() {
                if let Err(e) = r {
                    tracing::error!("ERROR replication task failed: {e}");
                }
            }
        }
        while let Some(r) = tasks.join_next().await {
            if let Err(e) = r {
                tracing::error!("ERROR replication task failed: {e}");
            }
        }
        drop(walked);
        if let Err(e) = walk.await {
            tracing::error!("ERROR the walk failed: {e}");
        }
        let complete =
            filter.devices.is_none() && filter.partitions.is_none() && !self.conf.handoffs_only;
        for (id, state) in &states {
            let mut st = lock(state);
            if let Err(e) = tokio::task::block_in_place(|| st.save(complete)) {
                tracing::error!(
                    device = id,
                    "ERROR writing the pass state: {e} (the next pass visits every DB)"
                );
            }
        }
        lock(&stats).skipped = skipped;
        if skipped > 0 {
            tracing::info!("Skipped {skipped} dbs unchanged since in sync with every peer");
        }
        tracing::info!("Replication run OVER");
        if self.conf.handoffs_only || self.handoff_delete > 0 {
            tracing::warn!(
                "Finished replication pass with handoffs_only and/or handoffs_delete enabled. \
                 If these are no longer required, disable them."
            );
        }
        let s = self.finish(stats, start);
        self.metrics
            .pass_finished(&s, pass_clock.elapsed(), self.clock.now_secs());
        s
    }

    /// The pass state of a device: the one kept from the last pass while
    /// its file is unchanged since, else loaded from the file.
    fn device_state(&self, dev_path: &Path) -> Arc<Mutex<DeviceState>> {
        let path = DeviceState::path_for(dev_path, K::DATADIR);
        let mut kept = lock(&self.device_states);
        if let Some(state) = kept.get(&path) {
            if lock(state).is_current() {
                return state.clone();
            }
        }
        let state = Arc::new(Mutex::new(DeviceState::load(dev_path, K::DATADIR)));
        kept.insert(path, state.clone());
        state
    }

    /// Decides a DB's fate from the pass state: `None` to skip it (its
    /// stamp, placement and intervals say nothing changed since it was in
    /// sync with every peer, this device is a primary, and every peer is a
    /// rowsync node that still lists it), else the visit to make.
    async fn plan_visit(
        &self,
        state: &Arc<Mutex<DeviceState>>,
        place: Option<Arc<Placement>>,
        stamp: Option<Stamp>,
        hash: String,
        node_id: u32,
        listings: &mut PeerListings,
    ) -> Option<Visit> {
        let now = self.clock.now_secs();
        let placement = place.as_ref().map_or(0, |p| p.digest);
        let (unchanged, audit) = {
            let mut st = lock(state);
            st.seen(&hash);
            let unchanged = self.conf.full_pass_interval > 0.0
                && st.unchanged(
                    &hash,
                    stamp,
                    placement,
                    now,
                    self.conf.full_pass_interval,
                    self.conf.integrity_check_interval,
                );
            let audit =
                !unchanged && st.audit_due(&hash, stamp, now, self.conf.integrity_check_interval);
            (unchanged, audit)
        };
        if let Some(place) = place.filter(|p| unchanged && p.nodes.iter().any(|n| n.id == node_id))
        {
            let timeout = Duration::from_secs_f64(self.conf.node_timeout.max(0.001));
            let peers: Vec<&Device> = place.nodes.iter().filter(|n| n.id != node_id).collect();
            if listings
                .all_hold(&self.client, &peers, place.part, &hash, timeout)
                .await
            {
                lock(state).settle(&hash, stamp);
                // (Once a pass per peer: what it records is the same.)
                for peer in &peers {
                    if listings.counted.insert(peer.id) {
                        let name = node_name(peer);
                        self.metrics.peer_lag(&name, 0);
                        self.metrics.peer_result(&name, true);
                    }
                }
                return None;
            }
        }
        Some(Visit {
            state: state.clone(),
            hash,
            stamp,
            placement,
            audit,
        })
    }

    /// For each peer: the partitions (of those given per local device)
    /// where the local device is a primary beside it.
    fn listings_wanted(
        &self,
        ring: &Arc<Ring>,
        _states: &HashMap<u32, Arc<Mutex<DeviceState>>>,
        parts: &[(u32, Vec<u32>)],
        places: &mut HashMap<u32, Arc<Placement>>,
    ) -> HashMap<u32, (Device, Vec<u32>)> {
        let mut wanted: HashMap<u32, (Device, Vec<u32>)> = HashMap::new();
        for (dev_id, list) in parts {
            for &p in list {
                let place = places
                    .entry(p)
                    .or_insert_with(|| Arc::new(Placement::of(ring, p)))
                    .clone();
                if !place.nodes.iter().any(|n| n.id == *dev_id) {
                    continue;
                }
                for peer in place.nodes.iter().filter(|n| n.id != *dev_id) {
                    wanted
                        .entry(peer.id)
                        .or_insert_with(|| (peer.clone(), Vec::new()))
                        .1
                        .push(p);
                }
            }
        }
        wanted
    }

    fn clone_parts(&self, ring: Arc<Ring>, ctx: SenderCtx) -> DbJob<K> {
        DbJob {
            ring,
            ctx,
            hash_conf: self.hash_conf.clone(),
            handoff_delete: self.handoff_delete,
            kind: PhantomData,
        }
    }

    /// Logs the end-of-pass lines and writes the recon cache.
    fn finish(&self, stats: Arc<Mutex<Stats>>, start: f64) -> Stats {
        let s = lock(&stats).clone();
        let now = self.clock.now_secs();
        for line in s.report_lines(now) {
            tracing::info!("{line}");
        }
        let cache = self
            .conf
            .recon_cache_path
            .join(format!("{}.recon", K::NAME));
        let update = recon::replication_recon_update(&s, now - start, now);
        if let Err(e) = recon::dump_recon_cache(&cache, &update) {
            tracing::error!(file = %cache.display(), "ERROR writing recon cache: {e}");
        }
        *lock(&self.last_stats) = Some(s.clone());
        s
    }

    /// Passes until `shutdown` resolves: a random initial delay up to
    /// `interval` ([`Replicator::initial_delay`]), then a pass every
    /// `interval` seconds.
    pub async fn run_forever(
        &self,
        filter: &PassFilter,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        let interval = interval_of(&self.conf);
        let first = self.initial_delay();
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(first) => {}
        }
        loop {
            let begin = Instant::now();
            tokio::select! {
                _ = &mut shutdown => return,
                _ = self.run_once(filter) => {}
            }
            let elapsed = begin.elapsed();
            if elapsed < interval {
                tokio::select! {
                    _ = &mut shutdown => return,
                    _ = tokio::time::sleep(interval - elapsed) => {}
                }
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// What a spawned per-DB task owns.
struct DbJob<K: ReplKind> {
    ring: Arc<Ring>,
    ctx: SenderCtx,
    hash_conf: HashPathConfig,
    handoff_delete: usize,
    kind: PhantomData<K>,
}

impl<K: ReplKind> DbJob<K> {
    /// A DB that could not be read, or failed its integrity check
    /// (`corrupt`: quarantined, so its peers restore it): a failure for
    /// every primary.
    fn unreadable(
        &self,
        db_file: &Path,
        corrupt: bool,
        e: &dyn std::fmt::Display,
        primaries: &[Device],
    ) -> DbOutcome {
        if corrupt {
            tracing::error!(db = %db_file.display(), "Quarantining DB: {e}");
            if let Err(q) = files::quarantine(db_file) {
                tracing::error!(db = %db_file.display(), "quarantine failed: {q}");
            }
        } else {
            tracing::error!(db = %db_file.display(), "ERROR reading db: {e}");
        }
        self.fail_all(primaries);
        self.ctx.count("failures");
        DbOutcome {
            success: false,
            responses: vec![],
        }
    }

    fn fail_all(&self, nodes: &[Device]) {
        self.ctx.stat(|s| {
            for n in nodes {
                s.add_failure(&n.replication_ip, &n.device);
            }
        });
    }

    /// Swift's `_replicate_object`.
    async fn replicate_db(
        &self,
        partition: &str,
        db_file: &Path,
        node_id: u32,
        visit: Option<Visit>,
    ) -> DbOutcome {
        // Counted in `rowsync_open_dbs` while being replicated (also when
        // the pass is dropped in mid-DB).
        let _open = OpenDb::new(self.ctx.metrics.clone());
        let outcome = self
            .replicate_db_inner(partition, db_file, node_id, visit.as_ref())
            .await;
        if let Some(v) = visit {
            let now = self.ctx.clock.now_secs();
            let mut st = lock(&v.state);
            if db_file.exists() {
                let in_sync = (outcome.success && !outcome.responses.is_empty())
                    .then_some(v.stamp)
                    .flatten();
                st.visited(
                    &v.hash,
                    in_sync,
                    v.placement,
                    now,
                    v.audit && db_file.exists(),
                );
            } else {
                st.forget(&v.hash);
            }
        }
        outcome
    }

    async fn replicate_db_inner(
        &self,
        partition: &str,
        db_file: &Path,
        node_id: u32,
        visit: Option<&Visit>,
    ) -> DbOutcome {
        let audit = visit.is_none_or(|v| v.audit);
        let conf = &self.ctx.conf;
        let wall = self.ctx.clock.now();
        let now = super::clock::epoch_secs(wall);
        let started = Instant::now();
        self.ctx.stat(|s| s.attempted += 1);
        self.ctx.count("attempts");
        tracing::debug!(db = %db_file.display(), "Replicating db");
        let mut part: u32 = partition.parse().unwrap_or(0);
        let primaries = |p: u32| -> Vec<Device> {
            self.ring
                .get_part_nodes(p)
                .into_iter()
                .map(|n| n.device)
                .collect()
        };
        let Some(hash) = hash_of(db_file) else {
            return DbOutcome {
                success: false,
                responses: vec![],
            };
        };
        let device = files::device_path_of(db_file)
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_default();
        // Open, reclaim, read info.
        let opened = tokio::task::block_in_place(|| -> Result<(Broker<K>, K::Info), DbError> {
            let mut b = Broker::<K>::open(db_file)?;
            b.set_pending_timeout(Duration::from_secs(30));
            if let Some(dir) = db_file.parent() {
                rsync::reclaim_tmp_files(dir, reclaim_before(wall, conf.reclaim_age));
            }
            b.reclaim(now - conf.reclaim_age, now - 2.0 * conf.reclaim_age)?;
            let info = b.get_replication_info()?;
            Ok((b, info))
        });
        let (broker, info) = match opened {
            Ok(x) => x,
            Err(e) => return self.unreadable(db_file, e.is_corrupt(), &e, &primaries(part)),
        };
        let mut shouldbehere = true;
        match self
            .hash_conf
            .hash_path_raw(info.account(), info.container(), None)
        {
            Ok(digest) => {
                let bpart = self.ring.part_of_digest(&digest);
                if bpart != part {
                    tracing::error!(
                        db = %db_file.display(),
                        "Found db that should be on partition {bpart}; will replicate out and remove"
                    );
                    part = bpart;
                    shouldbehere = false;
                }
            }
            Err(e) => tracing::error!(db = %db_file.display(), "bad account/container: {e}"),
        }
        let reclaimable =
            tokio::task::block_in_place(|| K::is_reclaimable(&broker, now, conf.reclaim_age));
        if matches!(reclaimable, Ok(true)) {
            if info.may_delete() {
                tokio::task::block_in_place(|| self.delete_db(db_file));
            }
            self.ctx.timing_since("timing", started);
            return DbOutcome {
                success: true,
                responses: vec![],
            };
        }
        let nodes = primaries(part);
        let local_dev: Option<Device> =
            nodes.iter().find(|n| n.id == node_id).cloned().or_else(|| {
                self.ring
                    .get_more_nodes(part)
                    .map(|n| n.device)
                    .find(|d| d.id == node_id)
            });
        if shouldbehere {
            shouldbehere = nodes.iter().any(|n| n.id == node_id);
        }
        let mut repl_nodes: Vec<Device> = if nodes.len() > 1 {
            let i = nodes
                .iter()
                .position(|n| n.id == node_id)
                .unwrap_or(nodes.len());
            nodes[(i + 1).min(nodes.len())..]
                .iter()
                .chain(nodes[..i].iter())
                .cloned()
                .collect()
        } else {
            nodes.clone()
        };
        let mut more_nodes = MoreNodes::new(self.ring.clone(), part);
        let db = LocalDb::new(broker, hash.clone(), device);
        if audit {
            // The integrity check runs on its own connection while the
            // peers are contacted; what would hand our data over whole
            // (complete_rsync, rsync_then_merge, a handoff's removal) and
            // the visit's outcome wait for it.
            db.start_audit();
        }
        let mut responses: Vec<bool> = Vec::new();
        let mut failures: BTreeSet<(String, String)> = BTreeSet::new();
        let mut i = 0;
        // The peers are replicated to at once (Swift goes one after the
        // other): a wave of the nodes not yet tried, then a wave of the
        // handoffs that stand in for the ones that answered 507. Bounded:
        // each 507 adds at most one node, and handoffs run out.
        while i < repl_nodes.len() {
            let wave: Vec<Device> = repl_nodes[i..].to_vec();
            i = repl_nodes.len();
            let results = futures::future::join_all(wave.iter().map(|node| {
                let different_region = local_dev.as_ref().is_some_and(|l| l.region != node.region);
                repl_to_node(&self.ctx, &db, &info, node, part, different_region)
            }))
            .await;
            for (node, result) in wave.into_iter().zip(results) {
                let success = match result {
                    Ok(ok) => ok,
                    Err(ReplError::DriveNotMounted(peer)) => {
                        match more_nodes.next() {
                            Some(n) => repl_nodes.push(n.device),
                            None => tracing::error!(
                                db = %db_file.display(),
                                "ERROR There are not enough handoff nodes to reach replica count for partition {part}"
                            ),
                        }
                        tracing::error!(db = %db_file.display(), "ERROR Remote drive not mounted {peer}");
                        false
                    }
                    Err(e) => {
                        tracing::error!(db = %db_file.display(), peer = %node_name(&node), "ERROR syncing with {}: {e}", node_name(&node));
                        false
                    }
                };
                if !success {
                    failures.insert((node.replication_ip.clone(), node.device.clone()));
                }
                if let Some(m) = &self.ctx.metrics {
                    m.peer_result(&node_name(&node), success);
                }
                self.ctx
                    .count(if success { "successes" } else { "failures" });
                responses.push(success);
            }
        }
        if let Err(e) = db.audited().await {
            drop(db);
            return self.unreadable(db_file, e.corrupt, &e.message, &primaries(part));
        }
        if !shouldbehere && !self.cleanup_post_replicate(&db, &info, &responses) {
            for n in &repl_nodes {
                failures.insert((n.replication_ip.clone(), n.device.clone()));
            }
        }
        let targets: BTreeSet<(String, String)> = repl_nodes
            .iter()
            .map(|n| (n.replication_ip.clone(), n.device.clone()))
            .collect();
        let ok_count = targets.difference(&failures).count() as u64;
        self.ctx.stat(|s| {
            s.success += ok_count;
            for (ip, dev) in &failures {
                s.add_failure(ip, dev);
            }
        });
        self.ctx.timing_since("timing", started);
        if shouldbehere {
            responses.push(true);
        }
        DbOutcome {
            success: responses.iter().all(|r| *r),
            responses,
        }
    }

    /// Removes a handoff / misplaced DB once its peers have it (Swift's
    /// `cleanup_post_replicate`). False only when a delete failed.
    fn cleanup_post_replicate(&self, db: &LocalDb<K>, orig: &K::Info, responses: &[bool]) -> bool {
        let path = db.path.clone();
        let state = db.call(|b| -> Result<(bool, i64), DbError> {
            let state = K::db_state(b)?;
            let sharding = state == DbState::Sharding
                || (state == DbState::Unsharded && K::sharding_initiated(b)?);
            Ok((sharding, b.get_max_row()?))
        });
        let (sharding_required, max_row) = match state {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(db = %path.display(), "Not deleting db ({e})");
                return true;
            }
        };
        if sharding_required {
            tracing::debug!(db = %path.display(), "Not deleting db (requires sharding)");
            return true;
        }
        let delta = max_row - orig.max_row();
        if delta < 0 {
            tracing::error!(db = %path.display(), "Not deleting db (negative max_row_delta: {delta})");
            return true;
        }
        if delta > 0 {
            tracing::debug!(db = %path.display(), "Not deleting db ({delta} new rows)");
            return true;
        }
        let ok = responses.iter().filter(|r| **r).count();
        let delete = if self.handoff_delete > 0 {
            ok >= self.handoff_delete
        } else {
            !responses.is_empty() && ok == responses.len()
        };
        if !delete {
            tracing::debug!(db = %path.display(), "Not deleting db ({ok}/{} success)", responses.len());
            return true;
        }
        let deleted = tokio::task::block_in_place(|| self.delete_db(&path));
        if deleted {
            tracing::info!(db = %path.display(), "Successfully deleted db");
        } else {
            tracing::error!(db = %path.display(), "Failed to delete db");
        }
        deleted
    }

    /// Removes the DB's hash dir (under its lock), then the suffix and
    /// partition dirs when empty (Swift's `delete_db`).
    fn delete_db(&self, db_file: &Path) -> bool {
        let Some(hash_dir) = db_file.parent() else {
            return false;
        };
        let suffix_dir = hash_dir.parent().map(Path::to_path_buf);
        match crate::db::lock::lock_dir(hash_dir, Duration::from_secs(10)) {
            Ok(_lock) => {
                let _ = std::fs::remove_dir_all(hash_dir);
            }
            Err(e) => {
                tracing::error!(db = %db_file.display(), "ERROR locking for delete: {e}");
                return false;
            }
        }
        self.ctx.stat(|s| s.remove += 1);
        let device = files::device_path_of(db_file)
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_default();
        self.ctx.count(&format!("removes.{device}"));
        let Some(suffix_dir) = suffix_dir else {
            return true;
        };
        let part_dir = suffix_dir.parent().map(Path::to_path_buf);
        for dir in [Some(suffix_dir), part_dir].into_iter().flatten() {
            match std::fs::remove_dir(&dir) {
                Ok(()) => {}
                Err(e)
                    if e.raw_os_error() == Some(libc::ENOTEMPTY)
                        || e.raw_os_error() == Some(libc::EEXIST) =>
                {
                    break
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    tracing::error!("ERROR while trying to clean up {}: {e}", dir.display());
                    return false;
                }
            }
        }
        true
    }
}

/// A map from device id to device of this node's local devices (for tools).
pub fn local_devices(ring: &Ring, bind_ip: &str, bind_port: u16) -> HashMap<u32, Device> {
    let ips = whataremyips(bind_ip);
    ring.devs()
        .iter()
        .flatten()
        .filter(|d| is_local_device(&ips, Some(bind_port), &d.replication_ip, d.replication_port))
        .map(|d| (d.id, d.clone()))
        .collect()
}
