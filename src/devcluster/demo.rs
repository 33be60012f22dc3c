//! The dev-cluster demo: object rows written unevenly to the replicas of a
//! few containers through the container API, the containers' account
//! updates reaching one account replica each (as a proxy spreads them),
//! then replication of both kinds watched converging by reading every
//! replica's DB file directly.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::StreamExt;
use md5::{Digest, Md5};

use super::layout::Layout;
use super::procs::Console;
use crate::config::ServerType;
use crate::db::files::hash_dir;
use crate::db::{Account, Container, DbKind};
use crate::inspect::view::{lag, target_rows, ReplicaView};
use crate::ring::Ring;
use crate::swift::{HashPathConfig, Timestamp};

/// The demo's account.
pub const ACCOUNT: &str = "AUTH_demo";

/// What one replica of a demo container gets.
#[derive(Debug, Clone)]
pub struct ReplicaPlan {
    /// PUT the container on this replica at all.
    pub create: bool,
    /// Objects `obj-<i>` PUT here.
    pub puts: Vec<usize>,
    /// Objects deleted here (tombstones, newer than every PUT).
    pub deletes: Vec<usize>,
    pub describe: &'static str,
}

/// One demo container and its replicas' plans (in ring replica order).
#[derive(Debug, Clone)]
pub struct DemoContainer {
    pub name: &'static str,
    pub plans: Vec<ReplicaPlan>,
}

fn plan(create: bool, puts: Vec<usize>, deletes: Vec<usize>, d: &'static str) -> ReplicaPlan {
    ReplicaPlan {
        create,
        puts,
        deletes,
        describe: d,
    }
}

/// The demo data: one replica far behind, one container missing on a
/// replica, tombstones on every side.
pub fn demo_plan() -> Vec<DemoContainer> {
    vec![
        DemoContainer {
            name: "far-behind",
            plans: vec![
                plan(true, (0..2000).collect(), vec![], "2000 rows"),
                plan(true, (0..200).collect(), vec![], "200 rows (far behind)"),
                plan(true, vec![], (0..100).collect(), "100 tombstones only"),
            ],
        },
        DemoContainer {
            name: "missing-replica",
            plans: vec![
                plan(true, (0..300).collect(), vec![], "rows 0-299"),
                plan(true, (150..450).collect(), vec![], "rows 150-449"),
                plan(false, vec![], vec![], "no container at all"),
            ],
        },
        DemoContainer {
            name: "tombstones",
            plans: vec![
                plan(true, (0..400).collect(), vec![], "400 rows"),
                plan(
                    true,
                    (0..400).collect(),
                    (0..400).step_by(4).collect(),
                    "400 rows, 100 deleted",
                ),
                plan(true, vec![], vec![], "empty container"),
            ],
        },
    ]
}

/// A demo container placed on the ring.
#[derive(Debug, Clone)]
pub struct Placed {
    pub name: &'static str,
    pub partition: u32,
    pub hash: String,
    /// Per replica (ring order, at most the ring's replica count): node
    /// index (0-based into `layout.nodes`) and its plan.
    pub replicas: Vec<(usize, ReplicaPlan)>,
}

/// Places the demo containers on the ring.
pub fn place(ring: &Ring, hash: &HashPathConfig) -> anyhow::Result<Vec<Placed>> {
    demo_plan()
        .into_iter()
        .map(|c| {
            let (partition, nodes) = ring.get_nodes(hash, ACCOUNT, Some(c.name), None)?;
            let h = hash.hash_path(ACCOUNT, Some(c.name), None)?;
            let replicas = nodes
                .iter()
                .zip(c.plans)
                .map(|(n, p)| (n.id as usize, p))
                .collect();
            Ok(Placed {
                name: c.name,
                partition,
                hash: h,
                replicas,
            })
        })
        .collect()
}

/// The demo account placed on the account ring.
#[derive(Debug, Clone)]
pub struct PlacedAccount {
    pub partition: u32,
    pub hash: String,
    /// Node index (0-based) per replica, in ring order.
    pub nodes: Vec<usize>,
}

/// Places the demo account on the account ring.
pub fn place_account(ring: &Ring, hash: &HashPathConfig) -> anyhow::Result<PlacedAccount> {
    let (partition, nodes) = ring.get_nodes(hash, ACCOUNT, None, None)?;
    Ok(PlacedAccount {
        partition,
        hash: hash.hash_path(ACCOUNT, None, None)?,
        nodes: nodes.iter().map(|n| n.id as usize).collect(),
    })
}

enum Kind {
    Put { size: i64, etag: String },
    Delete,
}

struct Write {
    url: String,
    ts: String,
    kind: Kind,
}

fn object_name(i: usize) -> String {
    format!("obj-{i:05}")
}

fn etag(name: &str) -> String {
    hex::encode(Md5::digest(name.as_bytes()))
}

/// Writes the demo data through the nodes' account and container APIs:
/// the account on every account replica, then each container replica
/// (whose PUT tells account replica `j` about container replica `j`, as a
/// proxy does), then the object rows. Returns how many requests were sent.
pub async fn write_data(
    layout: &Layout,
    placed: &[Placed],
    account: &PlacedAccount,
    console: &Console,
) -> anyhow::Result<usize> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()?;
    let base = Timestamp::now().raw();
    let ts = |delta: i64| -> anyhow::Result<String> {
        Ok(Timestamp::from_raw(base + delta, 0)?.internal())
    };
    let url = |node: usize, part: u32, container: &str, obj: Option<&str>| -> String {
        let n = &layout.nodes[node];
        let mut u = format!(
            "http://127.0.0.1:{}/{}/{part}/{ACCOUNT}/{container}",
            n.port, n.device
        );
        if let Some(o) = obj {
            u.push('/');
            u.push_str(o);
        }
        u
    };
    // The account on every replica, then the containers, all with one
    // timestamp.
    let container_ts = ts(0)?;
    let mut sent = 0;
    for &node in &account.nodes {
        let n = &layout.nodes[node];
        let url = format!(
            "http://127.0.0.1:{}/{}/{}/{ACCOUNT}",
            n.account_port, n.device, account.partition
        );
        let r = client
            .put(&url)
            .header("X-Timestamp", &container_ts)
            .send()
            .await
            .with_context(|| format!("PUT account {ACCOUNT} on node{}", node + 1))?;
        if !r.status().is_success() {
            bail!(
                "PUT account {ACCOUNT} on node{}: HTTP {}",
                node + 1,
                r.status()
            );
        }
        sent += 1;
    }
    for c in placed {
        for (j, (node, p)) in c.replicas.iter().enumerate() {
            if !p.create {
                continue;
            }
            let a = &layout.nodes[account.nodes[j % account.nodes.len().max(1)]];
            let r = client
                .put(url(*node, c.partition, c.name, None))
                .header("X-Timestamp", &container_ts)
                .header("X-Account-Host", format!("127.0.0.1:{}", a.account_port))
                .header("X-Account-Device", &a.device)
                .header("X-Account-Partition", account.partition.to_string())
                .send()
                .await
                .with_context(|| format!("PUT container {} on node{}", c.name, node + 1))?;
            if !r.status().is_success() {
                bail!(
                    "PUT container {} on node{}: HTTP {}",
                    c.name,
                    node + 1,
                    r.status()
                );
            }
            sent += 1;
        }
    }
    let mut writes = Vec::new();
    for c in placed {
        for (node, p) in &c.replicas {
            if !p.create {
                continue;
            }
            for &i in &p.puts {
                let name = object_name(i);
                writes.push(Write {
                    url: url(*node, c.partition, c.name, Some(&name)),
                    ts: ts(1 + i as i64)?,
                    kind: Kind::Put {
                        size: ((i * 7919) % 100_000) as i64 + 1,
                        etag: etag(&name),
                    },
                });
            }
            for &i in &p.deletes {
                let name = object_name(i);
                writes.push(Write {
                    url: url(*node, c.partition, c.name, Some(&name)),
                    ts: ts(100_000 + i as i64)?,
                    kind: Kind::Delete,
                });
            }
        }
    }
    let total = writes.len();
    let bar = if std::io::stdout().is_terminal() {
        let b = indicatif::ProgressBar::new(total as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "writing demo rows {bar:40} {pos}/{len} ({per_sec})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let client = &client;
    let results: Vec<Result<(), String>> = futures::stream::iter(writes)
        .map(|w| {
            let bar = bar.clone();
            async move {
                let req = match &w.kind {
                    Kind::Put { size, etag } => client
                        .put(&w.url)
                        .header("X-Size", size.to_string())
                        .header("X-Content-Type", "application/octet-stream")
                        .header("X-Etag", etag),
                    Kind::Delete => client.delete(&w.url),
                };
                let r = req.header("X-Timestamp", &w.ts).send().await;
                bar.inc(1);
                match r {
                    Ok(r) if r.status().is_success() => Ok(()),
                    Ok(r) => Err(format!("{}: HTTP {}", w.url, r.status())),
                    Err(e) => Err(format!("{}: {e}", w.url)),
                }
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    bar.finish_and_clear();
    let failed: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    if let Some(first) = failed.first() {
        bail!(
            "{} of {total} demo writes failed, e.g. {first}",
            failed.len()
        );
    }
    sent += total;
    console.say(&format!("demo: {sent} requests sent ({total} object rows)"));
    Ok(sent)
}

/// Describes the demo's starting point.
pub fn describe(layout: &Layout, placed: &[Placed], account: &PlacedAccount) -> Vec<String> {
    let mut lines = vec![format!(
        "demo: writing object rows unevenly to {} containers of account {ACCOUNT}:",
        placed.len()
    )];
    for c in placed {
        let parts: Vec<String> = c
            .replicas
            .iter()
            .map(|(n, p)| format!("{}: {}", layout.nodes[*n].name, p.describe))
            .collect();
        lines.push(format!(
            "  {:<16} partition {:<3} {}",
            c.name,
            c.partition,
            parts.join(", ")
        ));
    }
    let acct: Vec<String> = account
        .nodes
        .iter()
        .map(|n| layout.nodes[*n].name.clone())
        .collect();
    lines.push(format!(
        "  account {ACCOUNT} partition {} on {}: each hears only of the containers its \
         container replica holds",
        account.partition,
        acct.join(", ")
    ));
    lines
}

// ------------------------------------------------------------------ watch

/// Where to read one DB's replicas.
#[derive(Debug, Clone)]
pub struct Watched {
    pub name: String,
    pub kind: ServerType,
    /// `(node name, hash dir)` per replica.
    pub replicas: Vec<(String, PathBuf)>,
    pub hash: String,
}

pub fn watched(layout: &Layout, placed: &[Placed], account: &PlacedAccount) -> Vec<Watched> {
    let mut out: Vec<Watched> = placed
        .iter()
        .map(|c| Watched {
            name: c.name.to_string(),
            kind: ServerType::Container,
            hash: c.hash.clone(),
            replicas: c
                .replicas
                .iter()
                .map(|(n, _)| {
                    let node = &layout.nodes[*n];
                    (
                        node.name.clone(),
                        hash_dir(
                            &node.devices.join(&node.device),
                            Container::DATADIR,
                            c.partition,
                            &c.hash,
                        ),
                    )
                })
                .collect(),
        })
        .collect();
    out.push(Watched {
        name: "(account)".to_string(),
        kind: ServerType::Account,
        hash: account.hash.clone(),
        replicas: account
            .nodes
            .iter()
            .map(|n| {
                let node = &layout.nodes[*n];
                (
                    node.name.clone(),
                    hash_dir(
                        &node.devices.join(&node.device),
                        Account::DATADIR,
                        account.partition,
                        &account.hash,
                    ),
                )
            })
            .collect(),
    });
    out
}

/// One DB's replicas at one moment.
#[derive(Debug, Clone)]
pub struct ContainerSnap {
    pub name: String,
    pub kind: ServerType,
    pub nodes: Vec<String>,
    pub views: Vec<ReplicaView>,
    /// Distinct rows over all replicas (newest version of each).
    pub target: usize,
    /// Per replica: rows of the target it lacks or holds in an older version.
    pub lags: Vec<usize>,
    pub identical: bool,
}

/// Reads every replica of every watched container (blocking).
pub fn snapshot(watched: &[Watched]) -> Vec<ContainerSnap> {
    watched
        .iter()
        .map(|w| {
            let views: Vec<ReplicaView> = w
                .replicas
                .iter()
                .map(|(_, dir)| match w.kind {
                    ServerType::Container => {
                        ReplicaView::read::<Container>(dir, &w.hash, Duration::from_secs(1))
                    }
                    ServerType::Account => {
                        ReplicaView::read::<Account>(dir, &w.hash, Duration::from_secs(1))
                    }
                })
                .collect();
            let refs: Vec<&ReplicaView> = views.iter().collect();
            let target = target_rows(&refs);
            let lags = views.iter().map(|v| lag(v, &target)).collect();
            let identical = views.iter().all(|v| v.identical(&views[0]));
            ContainerSnap {
                name: w.name.clone(),
                kind: w.kind,
                nodes: w.replicas.iter().map(|(n, _)| n.clone()).collect(),
                target: target.len(),
                lags,
                identical,
                views,
            }
        })
        .collect()
}

/// `node1@2000 node3@99`: the incoming sync points of `v` whose remote id
/// is one of the current replicas, by node name, joined by `sep`; other
/// ids (e.g. of DB copies shipped whole) are counted as `+N other`.
fn incoming_text(v: &ReplicaView, ids: &HashMap<String, String>, sep: &str) -> String {
    let mut known: Vec<String> = Vec::new();
    let mut other = 0;
    for p in &v.incoming {
        match ids.get(&p.remote_id) {
            Some(n) => known.push(format!("{n}@{}", p.sync_point)),
            None => other += 1,
        }
    }
    known.sort();
    if other > 0 {
        known.push(format!("+{other}{sep}other"));
    }
    if known.is_empty() {
        "-".into()
    } else {
        known.join(sep)
    }
}

fn ids_of(s: &ContainerSnap) -> HashMap<String, String> {
    s.views
        .iter()
        .zip(&s.nodes)
        .filter(|(v, _)| !v.id.is_empty())
        .map(|(v, n)| (v.id.clone(), n.clone()))
        .collect()
}

/// Replicas identical to their container's first replica / all replicas.
pub fn progress(snaps: &[ContainerSnap]) -> (usize, usize) {
    let mut same = 0;
    let mut total = 0;
    for s in snaps {
        for v in &s.views {
            total += 1;
            if v.identical(&s.views[0]) {
                same += 1;
            }
        }
    }
    (same, total)
}

pub fn converged(snaps: &[ContainerSnap]) -> bool {
    snaps.iter().all(|s| s.identical)
}

/// One plain line per replica: `key=value` fields.
pub fn plain_lines(snaps: &[ContainerSnap], elapsed: Duration) -> Vec<String> {
    let t = elapsed.as_secs_f64();
    let mut out = Vec::new();
    for s in snaps {
        let ids = ids_of(s);
        for ((v, node), lag) in s.views.iter().zip(&s.nodes).zip(&s.lags) {
            let state = if !v.exists() {
                "missing"
            } else if v.error.is_some() {
                "busy"
            } else {
                "ok"
            };
            let num = |n: i64| {
                if v.exists() {
                    n.to_string()
                } else {
                    "-".into()
                }
            };
            out.push(format!(
                "demo t={t:.1}s container={} node={node} db={state} rows={} max_row={} lag={lag} \
                 tombstones={} in={} hash={}",
                s.name,
                num(v.rows),
                num(v.max_row),
                num(v.tombstones),
                incoming_text(v, &ids, ","),
                v.hash.get(..8).unwrap_or("-"),
            ));
        }
    }
    let (same, total) = progress(snaps);
    out.push(format!(
        "demo t={t:.1}s identical={same}/{total} converged={}",
        converged(snaps)
    ));
    out
}

/// The live table on a terminal: one bar per replica.
pub struct LiveTable {
    pub mp: indicatif::MultiProgress,
    header: indicatif::ProgressBar,
    rows: Vec<Vec<indicatif::ProgressBar>>,
    footer: indicatif::ProgressBar,
}

impl LiveTable {
    pub fn new(watched: &[Watched]) -> LiveTable {
        let mp = indicatif::MultiProgress::with_draw_target(
            indicatif::ProgressDrawTarget::stdout_with_hz(4),
        );
        let text = indicatif::ProgressStyle::with_template("{msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner());
        let bar = indicatif::ProgressStyle::with_template("{prefix:<28} {bar:24.green/red} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> ");
        let header = mp.add(indicatif::ProgressBar::new(1).with_style(text.clone()));
        header.set_message(format!(
            "{:<28} {:<24} {:>5} / {:<7} {:>5}  incoming sync points (node@their ROWID)",
            "container / replica", "rows of the merged set", "rows", "max_row", "lag"
        ));
        let rows = watched
            .iter()
            .map(|w| {
                w.replicas
                    .iter()
                    .map(|(node, _)| {
                        let b = mp.add(indicatif::ProgressBar::new(1).with_style(bar.clone()));
                        b.set_prefix(format!("{} {node}", w.name));
                        b
                    })
                    .collect()
            })
            .collect();
        let footer = mp.add(indicatif::ProgressBar::new(1).with_style(text));
        LiveTable {
            mp,
            header,
            rows,
            footer,
        }
    }

    pub fn update(&self, snaps: &[ContainerSnap], elapsed: Duration) {
        for (s, bars) in snaps.iter().zip(&self.rows) {
            let ids = ids_of(s);
            for ((v, lag), b) in s.views.iter().zip(&s.lags).zip(bars) {
                b.set_length(s.target.max(1) as u64);
                b.set_position((s.target - lag.min(&s.target)) as u64);
                let msg = if !v.exists() {
                    "no DB yet".to_string()
                } else if let Some(e) = &v.error {
                    format!("busy: {}", e.chars().take(40).collect::<String>())
                } else {
                    format!(
                        "{:>5} / {:<7} {:>5}  {}",
                        v.rows,
                        v.max_row,
                        lag,
                        incoming_text(v, &ids, " ")
                    )
                };
                b.set_message(msg);
            }
        }
        let (same, total) = progress(snaps);
        self.footer.set_message(format!(
            "{:.1} s since the data was written: {same}/{total} replicas identical to their \
             container's first replica",
            elapsed.as_secs_f64()
        ));
    }

    pub fn finish(&self) {
        for b in self.rows.iter().flatten() {
            b.abandon();
        }
        self.header.abandon();
        self.footer.abandon();
    }
}

/// The convergence summary.
pub fn summary(snaps: &[ContainerSnap], took: Duration) -> Vec<String> {
    let mut out = vec![format!(
        "converged in {:.1} s: every replica of every container and account DB is identical \
         (same rows, same hash)",
        took.as_secs_f64()
    )];
    for s in snaps {
        let v = &s.views[0];
        let (path, what) = match s.kind {
            ServerType::Container => (format!("{ACCOUNT}/{}", s.name), "objects"),
            ServerType::Account => (format!("{ACCOUNT} (account)"), "containers"),
        };
        out.push(format!(
            "  {path:<26} {} replicas  {:>5} rows ({} tombstones, {} {what})  hash {}",
            s.views.len(),
            v.rows,
            v.tombstones,
            v.count,
            v.hash
        ));
    }
    out
}

/// Watches replication until every replica is identical, refreshing about
/// twice a second. Returns how long it took, or None when `deadline`
/// passed first.
pub async fn watch(
    watched: Arc<Vec<Watched>>,
    console: &Console,
    deadline: Option<Instant>,
    mut check_children: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Option<(Duration, Vec<ContainerSnap>)>> {
    let start = Instant::now();
    let live = std::io::stdout().is_terminal();
    let table = live.then(|| LiveTable::new(&watched));
    if let Some(t) = &table {
        console.set_live(Some(t.mp.clone()));
    }
    let mut last_plain: Option<(Instant, Vec<String>)> = None;
    let result = loop {
        if let Err(e) = check_children() {
            break Err(e);
        }
        let w = watched.clone();
        let snaps = tokio::task::spawn_blocking(move || snapshot(&w))
            .await
            .context("reading the replicas")?;
        let elapsed = start.elapsed();
        match &table {
            Some(t) => t.update(&snaps, elapsed),
            None => {
                // Quiet when nothing changed; at most one block every 2 s.
                let lines = plain_lines(&snaps, elapsed);
                let strip = |ls: &[String]| -> Vec<String> {
                    ls.iter()
                        .map(|l| l.split_once(' ').map_or(l.clone(), |x| x.1.to_string()))
                        .collect()
                };
                let due = match &last_plain {
                    None => true,
                    Some((at, prev)) => {
                        at.elapsed() >= Duration::from_secs(2) && strip(prev) != strip(&lines)
                    }
                };
                if due || converged(&snaps) {
                    for l in &lines {
                        console.say(l);
                    }
                    last_plain = Some((Instant::now(), lines));
                }
            }
        }
        if converged(&snaps) {
            break Ok(Some((elapsed, snaps)));
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    if let Some(t) = &table {
        t.finish();
        console.set_live(None);
        // indicatif leaves the cursor at the end of the last line.
        console.say("");
    }
    result
}
