//! statsd packets a replicator pass sends, received on a loopback UDP
//! socket: Swift's metric names and counts under
//! `<log_statsd_metric_prefix>.<kind>-replicator.`.

mod common;

use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::time::Duration;

use common::*;
use rowsync::replication::daemon::PassFilter;

const A: &str = "AUTH_statsd";
const C: &str = "cont";

/// Every datagram received until the socket has been quiet for a while,
/// counted by `name|type` (timings by name only).
fn drain(sock: &UdpSocket) -> BTreeMap<String, usize> {
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut seen = BTreeMap::new();
    let mut buf = [0u8; 1500];
    for _ in 0..10_000 {
        let Ok(n) = sock.recv(&mut buf) else { break };
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        let (name, rest) = text.split_once(':').expect("name:value|type");
        let (value, kind) = rest.split_once('|').expect("value|type");
        if kind == "ms" {
            assert!(value.parse::<f64>().unwrap() >= 0.0, "{text}");
            *seen.entry(format!("{name}|ms")).or_default() += 1;
        } else {
            assert_eq!(value, "1", "{text}");
            *seen.entry(format!("{name}|{kind}")).or_default() += 1;
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_sends_swifts_replicator_metrics() {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    let cl = Cluster::start(3, 3, 4).await;
    let p = cl.primaries(cl.part(A, C));
    let db = cl.create_db(p[0], A, C);
    db.merge_items(vec![obj("o", &ts(1), "t")], None).unwrap();
    // Every pass visits every DB, as Swift's (the default skips DBs in sync).
    let extra = format!(
        "log_statsd_host = 127.0.0.1\nlog_statsd_port = {port}\nlog_statsd_metric_prefix = tst\n\
         full_pass_interval = 0"
    );
    let pass = || async {
        cl.replicator(p[0], &extra)
            .run_once(&PassFilter::default())
            .await
    };
    let s = pass().await;
    assert_eq!(s.rsync, 2);
    let got = drain(&sock);
    let want: BTreeMap<String, usize> = [
        ("tst.container-replicator.attempts|c", 1),
        ("tst.container-replicator.rsyncs|c", 2),
        ("tst.container-replicator.successes|c", 2),
        ("tst.container-replicator.timing|ms", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(got, want);
    // In sync now: no_changes, still one attempt and one timing.
    let s = pass().await;
    assert_eq!(s.no_change, 2);
    let got = drain(&sock);
    assert_eq!(got.get("tst.container-replicator.no_changes|c"), Some(&2));
    assert_eq!(got.get("tst.container-replicator.attempts|c"), Some(&1));
    assert_eq!(got.get("tst.container-replicator.rsyncs|c"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diffs_are_counted_and_without_a_prefix_names_start_at_the_logger() {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    let cl = Cluster::start(3, 3, 4).await;
    let p = cl.primaries(cl.part(A, C));
    let db = cl.create_db(p[0], A, C);
    db.merge_items(
        (0..20)
            .map(|i| obj(&format!("o{i}"), &ts(i), "t"))
            .collect(),
        None,
    )
    .unwrap();
    let extra = format!("log_statsd_host = 127.0.0.1\nlog_statsd_port = {port}");
    cl.replicator(p[0], &extra)
        .run_once(&PassFilter::default())
        .await;
    drain(&sock);
    db.merge_items(vec![obj("late", &ts(100), "t")], None)
        .unwrap();
    cl.replicator(p[0], &extra)
        .run_once(&PassFilter::default())
        .await;
    let got = drain(&sock);
    // No prefix configured: the names start at the logger's.
    assert_eq!(got.get("container-replicator.diffs|c"), Some(&2));
    assert_eq!(got.get("container-replicator.successes|c"), Some(&2));
}

/// The server's per-request timings (Swift's `timing_stats`): every
/// decorated method sends `<METHOD>.timing`, a 5xx `<METHOD>.errors.timing`,
/// and the object / container helpers their own names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_sends_swifts_per_request_timings() {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    // The factor makes HEAD (0.1) and REPLICATE (0.01) always sent.
    let extra = format!(
        "log_statsd_host = 127.0.0.1\nlog_statsd_port = {port}\nlog_statsd_metric_prefix = srv\n\
         log_statsd_sample_rate_factor = 100"
    );
    let node = TestNode::start_with(&["sda"], &extra).await;
    let client = reqwest::Client::new();
    let put = |path: &str, t: u64| {
        client
            .put(node.url(path))
            .header("X-Timestamp", ts(t))
            .header("X-Size", "1")
            .header("X-Content-Type", "text/plain")
            .header("X-Etag", "d41d8cd98f00b204e9800998ecf8427e")
            .send()
    };
    assert_eq!(put("/sda/0/a/c", 1).await.unwrap().status().as_u16(), 201);
    assert_eq!(
        put("/sda/0/a/c/o1", 2).await.unwrap().status().as_u16(),
        201
    );
    assert_eq!(
        put("/sda/0/a/c/o2", 3).await.unwrap().status().as_u16(),
        201
    );
    // An unmounted device: 507, an error that is the server's.
    assert_eq!(put("/sdz/0/a/c/o", 4).await.unwrap().status().as_u16(), 507);
    let r = client.get(node.url("/sda/0/a/c")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = client.head(node.url("/sda/0/a/c")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let hash = hash_conf().hash_path("a", Some("c"), None).unwrap();
    let (st, _) = replicate(
        &client,
        &node,
        &format!("/sda/0/{hash}"),
        b"[\"sync\"]".to_vec(),
    )
    .await;
    assert_eq!(st, 400);
    // OPTIONS is not timed by Swift.
    let r = client
        .request(reqwest::Method::OPTIONS, node.url("/sda/0/a/c"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let got = drain(&sock);
    let want: BTreeMap<String, usize> = [
        ("srv.container-server.PUT.timing|ms", 3),
        ("srv.container-server.PUT.errors.timing|ms", 1),
        ("srv.container-server.PUT_container.timing|ms", 1),
        ("srv.container-server.PUT_object.timing|ms", 2),
        ("srv.container-server.GET.timing|ms", 1),
        ("srv.container-server.GET_object.timing|ms", 1),
        ("srv.container-server.HEAD.timing|ms", 1),
        ("srv.container-server.REPLICATE.timing|ms", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(got, want);
}
