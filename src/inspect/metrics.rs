//! `rowsync metrics`: the Prometheus endpoints of a set of nodes (found from
//! their configs: the server's `/metrics` when `prometheus_metrics` is on,
//! the replicator's when `prometheus_port` is set), scraped and shown as one
//! table: requests and REPLICATE ops per server, passes and rows per
//! replicator, and every peer's lag as each replicator sees it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::{ReplicatorConf, ServerConf, ServerType};

/// One `/metrics` endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// e.g. `node1 container`.
    pub label: String,
    /// `server` or `replicator`.
    pub role: &'static str,
    pub url: String,
}

/// The endpoints the configs turn on (`(label, config path)` pairs).
pub fn endpoints_of(confs: &[(String, PathBuf)]) -> Vec<Endpoint> {
    let mut out = Vec::new();
    for (label, path) in confs {
        let Ok(kind) = ServerType::of_file(path, None) else {
            continue;
        };
        let label = format!(
            "{} {}",
            label.split_whitespace().next().unwrap_or(label),
            kind.name()
        );
        if let Ok(s) = ServerConf::from_file_as(path, kind) {
            if s.prometheus_metrics {
                out.push(Endpoint {
                    label: label.clone(),
                    role: "server",
                    url: format!("http://{}/metrics", host_port(&s.bind_ip, s.bind_port)),
                });
            }
        }
        if let Ok(r) = ReplicatorConf::from_file_as(path, kind) {
            if r.prometheus_port != 0 {
                out.push(Endpoint {
                    label,
                    role: "replicator",
                    url: format!(
                        "http://{}/metrics",
                        host_port(&r.prometheus_bind_ip, r.prometheus_port)
                    ),
                });
            }
        }
    }
    out
}

fn host_port(ip: &str, port: u16) -> String {
    let ip = match ip {
        "0.0.0.0" | "" => "127.0.0.1",
        "::" => "::1",
        other => other,
    };
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// Samples of one scrape: `(name, labels without kind) -> value`.
pub type Samples = BTreeMap<(String, BTreeMap<String, String>), f64>;

/// Parses exposition text (histogram and summary samples are left out).
pub fn parse(text: &str) -> anyhow::Result<Samples> {
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .map_err(|e| anyhow::anyhow!("not Prometheus text format: {e}"))?;
    let mut out = Samples::new();
    for s in scrape.samples {
        let v = match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => continue,
        };
        let labels: BTreeMap<String, String> = s
            .labels
            .iter()
            .filter(|(k, _)| k.as_str() != "kind")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        out.insert((s.metric, labels), v);
    }
    Ok(out)
}

/// Scrapes one endpoint.
pub async fn scrape(client: &reqwest::Client, ep: &Endpoint) -> anyhow::Result<Samples> {
    let resp = client
        .get(&ep.url)
        .timeout(Duration::from_secs(3))
        .send()
        .await?
        .error_for_status()?;
    parse(&resp.text().await?)
}

fn sum(s: &Samples, name: &str, filter: impl Fn(&BTreeMap<String, String>) -> bool) -> f64 {
    // `+ 0.0`: an empty sum is -0.0, printed "-0".
    s.iter()
        .filter(|((n, l), _)| n == name && filter(l))
        .map(|(_, v)| v)
        .sum::<f64>()
        + 0.0
}

/// The table `rowsync metrics` prints for the scrapes of `endpoints`.
pub fn table(results: &[(Endpoint, anyhow::Result<Samples>)], now_epoch: f64) -> String {
    let mut servers = vec![format!(
        "{:<18} {:>9} {:>6} {:>10} {:>10} {:>8} {:>8}",
        "server", "requests", "5xx", "replicate", "rows in", "open dbs", "refused"
    )];
    let mut repls = vec![format!(
        "{:<18} {:>6} {:>9} {:>8} {:>8} {:>9} {:>7} {:>10} {:>11}",
        "replicator",
        "passes",
        "attempted",
        "success",
        "failure",
        "no_change",
        "diff",
        "rows sent",
        "last pass"
    )];
    let mut peers = vec![format!(
        "{:<18} {:<28} {:>12} {:>16}",
        "replicator", "peer", "rows behind", "in sync (s ago)"
    )];
    for (ep, res) in results {
        let s = match res {
            Ok(s) => s,
            Err(e) => {
                let line = format!("{:<18} unreachable ({}): {e}", ep.label, ep.url);
                match ep.role {
                    "server" => servers.push(line),
                    _ => repls.push(line),
                }
                continue;
            }
        };
        if ep.role == "server" {
            servers.push(format!(
                "{:<18} {:>9} {:>6} {:>10} {:>10} {:>8} {:>8}",
                ep.label,
                sum(s, "rowsync_server_requests_total", |_| true),
                sum(s, "rowsync_server_requests_total", |l| l
                    .get("status")
                    .is_some_and(|v| v.starts_with('5'))),
                sum(s, "rowsync_replicate_ops_total", |_| true),
                sum(s, "rowsync_replicate_rows_received_total", |_| true),
                sum(s, "rowsync_open_dbs", |_| true),
                sum(s, "rowsync_auth_refused_total", |_| true),
            ));
            continue;
        }
        let stat = |k: &str| sum(s, &format!("rowsync_replicator_{k}_total"), |_| true);
        let last = sum(
            s,
            "rowsync_replicator_last_pass_end_timestamp_seconds",
            |_| true,
        );
        let last = if last > 0.0 {
            format!("{:.1}s ago", (now_epoch - last).max(0.0))
        } else {
            "none yet".into()
        };
        repls.push(format!(
            "{:<18} {:>6} {:>9} {:>8} {:>8} {:>9} {:>7} {:>10} {:>11}",
            ep.label,
            sum(s, "rowsync_replicator_passes_total", |_| true),
            stat("attempted"),
            stat("success"),
            stat("failure"),
            stat("no_change"),
            stat("diff"),
            sum(s, "rowsync_replicator_rows_sent_total", |_| true),
            last
        ));
        for ((name, labels), v) in s {
            if name != "rowsync_peer_rows_behind" {
                continue;
            }
            let Some(peer) = labels.get("peer") else {
                continue;
            };
            let since = s
                .get(&(
                    "rowsync_peer_seconds_since_in_sync".to_string(),
                    labels.clone(),
                ))
                .map_or("-".to_string(), |v| format!("{v:.1}"));
            peers.push(format!(
                "{:<18} {:<28} {:>12} {:>16}",
                ep.label, peer, v, since
            ));
        }
    }
    let mut out = String::new();
    for block in [servers, repls, peers] {
        if block.len() > 1 {
            out.push_str(&block.join("\n"));
            out.push_str("\n\n");
        }
    }
    if out.is_empty() {
        out.push_str("no metrics endpoints (set prometheus_metrics = true / prometheus_port)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_tabulates_a_replicator_scrape() {
        let text = "# TYPE rowsync_replicator_passes counter\n\
                    rowsync_replicator_passes_total{kind=\"container\"} 3\n\
                    # TYPE rowsync_peer_rows_behind gauge\n\
                    rowsync_peer_rows_behind{kind=\"container\",peer=\"127.0.0.1:6202/sdb2\"} 12\n";
        let s = parse(text).unwrap();
        let ep = Endpoint {
            label: "node1 container".into(),
            role: "replicator",
            url: "http://127.0.0.1:1/metrics".into(),
        };
        let t = table(&[(ep, Ok(s))], 0.0);
        assert!(t.contains("127.0.0.1:6202/sdb2"), "{t}");
        assert!(
            t.lines()
                .any(|l| l.starts_with("node1 container") && l.contains(" 3 ")),
            "{t}"
        );
    }
}
