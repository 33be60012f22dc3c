//! Prometheus `/metrics` of the server and the replicator daemon, read over
//! HTTP on loopback and parsed with a Prometheus text-format parser: the
//! server's request and REPLICATE counters follow the requests made, the
//! replicator's counters equal its passes' stats, and the per-peer lag
//! gauges say which peer is behind.

mod common;

use std::sync::Arc;

use common::*;
use rowsync::config::ServerType;
use rowsync::replication::daemon::PassFilter;

const A: &str = "AUTH_metrics";
const C: &str = "cont";

async fn scrape(client: &reqwest::Client, url: &str) -> std::collections::BTreeMap<String, f64> {
    let r = client.get(url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let ctype = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    parse_metrics(&r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_metrics_count_requests_and_replicate_ops() {
    let node =
        TestNode::start_kind(&["sda"], ServerType::Container, "prometheus_metrics = true").await;
    let client = reqwest::Client::new();
    let r = client
        .put(node.url("/sda/0/a/c"))
        .header("X-Timestamp", ts(1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    for i in 0..3 {
        let r = client
            .put(node.url(&format!("/sda/0/a/c/o{i}")))
            .header("X-Timestamp", ts(2 + i))
            .header("X-Size", "1")
            .header("X-Content-Type", "text/plain")
            .header("X-Etag", "d41d8cd98f00b204e9800998ecf8427e")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
    }
    let r = client.get(node.url("/sda/0/a/c")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = client.head(node.url("/sda/0/a/nope")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
    // A REPLICATE merge_items with two rows (and one that does not parse).
    let hash = hash_conf().hash_path("a", Some("c"), None).unwrap();
    let body = merge_items_body(&["x", "y"], "src-id");
    let (st, _) = replicate(&client, &node, &format!("/sda/0/{hash}"), body).await;
    assert_eq!(st, 202);
    let (st, _) = replicate(
        &client,
        &node,
        &format!("/sda/0/{hash}"),
        b"[\"nope\"]".to_vec(),
    )
    .await;
    assert_eq!(st, 400);

    let m = scrape(&client, &node.url("/metrics")).await;
    assert_eq!(
        m["rowsync_server_requests_total{method=PUT,status=201}"], 4.0,
        "{m:#?}"
    );
    assert_eq!(
        m["rowsync_server_requests_total{method=GET,status=200}"],
        1.0
    );
    assert_eq!(
        m["rowsync_server_requests_total{method=HEAD,status=404}"],
        1.0
    );
    assert_eq!(
        m["rowsync_server_requests_total{method=REPLICATE,status=202}"],
        1.0
    );
    assert_eq!(
        m["rowsync_server_requests_total{method=REPLICATE,status=400}"],
        1.0
    );
    assert_eq!(
        m["rowsync_replicate_ops_total{op=merge_items,status=202}"],
        1.0
    );
    assert_eq!(
        m["rowsync_replicate_ops_total{op=(unparsed),status=400}"],
        1.0
    );
    assert_eq!(m["rowsync_replicate_rows_received_total"], 2.0);
    // Histograms: one observation per PUT.
    assert_eq!(
        m["rowsync_server_request_duration_seconds_count{method=PUT}"],
        4.0
    );
    assert_eq!(
        m["rowsync_replicate_op_duration_seconds_count{op=merge_items}"],
        1.0
    );
    assert!(m.contains_key("rowsync_open_dbs"));
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        m[&format!("rowsync_build_info{{role=server,version={version}}}")],
        1.0
    );
    // /metrics itself is not counted as a request.
    let m2 = scrape(&client, &node.url("/metrics")).await;
    assert_eq!(
        m2.keys().filter(|k| k.contains("method=GET")).count(),
        m.keys().filter(|k| k.contains("method=GET")).count()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_option_there_is_no_metrics_endpoint() {
    let node = TestNode::start(&["sda"]).await;
    let r = reqwest::get(node.url("/metrics")).await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicator_counters_equal_the_pass_stats_and_lag_names_the_peer_behind() {
    let mut cl = Cluster::start(3, 3, 4).await;
    let p = cl.primaries(cl.part(A, C));
    let db = cl.create_db(p[0], A, C);
    db.merge_items(
        (0..50)
            .map(|i| obj(&format!("o{i}"), &ts(i), "t"))
            .collect(),
        None,
    )
    .unwrap();
    let rep = cl.replicator(p[0], "per_diff = 10\nmax_diffs = 2");
    let endpoint_metrics = rep.metrics.clone();
    // The daemon's endpoint, as `rowsync replicator` serves it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let render: Arc<dyn Fn() -> Option<String> + Send + Sync> =
        Arc::new(move || endpoint_metrics.render());
    let server = tokio::spawn(rowsync::server::metrics::serve_metrics(
        listener,
        render,
        async {
            let _ = stopped.await;
        },
    ));
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/metrics");

    // Pass 1: both peers lack the DB: whole-DB ships.
    let s1 = rep.run_once(&PassFilter::default()).await;
    assert_eq!(s1.rsync, 2);
    let m = scrape(&client, &url).await;
    let stat = |m: &std::collections::BTreeMap<String, f64>, k: &str| {
        m[&format!("rowsync_replicator_{k}_total")] as u64
    };
    let keys = [
        ("attempted", s1.attempted),
        ("success", s1.success),
        ("failure", s1.failure),
        ("no_change", s1.no_change),
        ("hashmatch", s1.hashmatch),
        ("rsync", s1.rsync),
        ("diff", s1.diff),
        ("remove", s1.remove),
        ("remote_merge", s1.remote_merge),
        ("diff_capped", s1.diff_capped),
        ("empty", s1.empty),
        ("ts_repl", s1.ts_repl),
        ("deferred", s1.deferred),
    ];
    for (k, v) in keys {
        assert_eq!(stat(&m, k), v, "{k}");
    }
    assert_eq!(m["rowsync_replicator_passes_total"], 1.0);
    // Every DB opened by the pass was let go.
    assert_eq!(m["rowsync_open_dbs"], 0.0);
    assert_eq!(m["rowsync_replicator_pass_duration_seconds_count"], 1.0);
    let peers: Vec<String> = p[1..]
        .iter()
        .map(|&i| format!("127.0.0.1:{}/sd{i}", cl.nodes[i].addr.port()))
        .collect();
    for peer in &peers {
        assert_eq!(m[&format!("rowsync_peer_rows_behind{{peer={peer}}}")], 0.0);
        assert!(m[&format!("rowsync_peer_seconds_since_in_sync{{peer={peer}}}")] < 60.0);
    }
    assert!(m["rowsync_replicator_request_duration_seconds_count{op=complete_rsync}"] >= 2.0);

    // Pass 2: 50 new rows, 20 per pass per peer (per_diff 10 x max_diffs 2):
    // diff-capped, each peer 30 rows behind; the counters add up.
    db.merge_items(
        (50..100)
            .map(|i| obj(&format!("o{i}"), &ts(i), "t"))
            .collect(),
        None,
    )
    .unwrap();
    let s2 = rep.run_once(&PassFilter::default()).await;
    assert_eq!(s2.diff_capped, 2, "{s2:?}");
    let m = scrape(&client, &url).await;
    assert_eq!(stat(&m, "diff_capped"), s1.diff_capped + s2.diff_capped);
    assert_eq!(stat(&m, "attempted"), s1.attempted + s2.attempted);
    assert_eq!(m["rowsync_replicator_rows_sent_total"], 40.0);
    for peer in &peers {
        assert_eq!(
            m[&format!("rowsync_peer_rows_behind{{peer={peer}}}")],
            30.0,
            "{peer}"
        );
    }

    // A peer that stops answering: its last known lag stays, and the time
    // since it was in sync grows; the other peer catches up to 0.
    cl.nodes[p[2]].stop().await;
    let s3 = rep.run_once(&PassFilter::default()).await;
    assert!(s3.failure >= 1, "{s3:?}");
    let m = scrape(&client, &url).await;
    assert_eq!(
        m[&format!("rowsync_peer_rows_behind{{peer={}}}", peers[0])],
        10.0
    );
    assert_eq!(
        m[&format!("rowsync_peer_rows_behind{{peer={}}}", peers[1])],
        30.0
    );
    let r = client
        .get(format!("http://{addr}/other"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
