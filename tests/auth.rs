//! Authenticated replication: with `replication_secret` set, replicators
//! sign every REPLICATE request and whole-DB upload, and servers refuse
//! unsigned (401), tampered, replayed or expired (403) requests, which
//! change nothing; unsigned requests from listed addresses (Swift peers)
//! pass; two secrets are valid at once during a rotation.

mod common;

use common::*;
use rowsync::config::{Secret, ServerType};
use rowsync::replication::auth::{body_digest, sign};
use rowsync::replication::daemon::PassFilter;

const A: &str = "AUTH_auth";
const C: &str = "cont";
const S1: &str = "first-secret-0123456789";
const S2: &str = "second-secret-9876543210";

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A REPLICATE request with the given extra headers.
async fn send(
    client: &reqwest::Client,
    node: &TestNode,
    path: &str,
    body: &[u8],
    headers: &[(&'static str, String)],
) -> u16 {
    let mut req = client
        .request(
            reqwest::Method::from_bytes(b"REPLICATE").unwrap(),
            node.url(path),
        )
        .header("content-type", "application/json")
        .body(body.to_vec());
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    req.send().await.unwrap().status().as_u16()
}

fn merge_body(name: &str) -> Vec<u8> {
    merge_items_body(&[name], "src")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_replication_converges_and_unsigned_passes_fail() {
    let secret = format!("replication_secret = {S1}");
    let cl = Cluster::start_kind_with(3, 3, 4, ServerType::Container, &secret).await;
    let p = cl.primaries(cl.part(A, C));
    let db = cl.create_db(p[0], A, C);
    db.merge_items(
        (0..30)
            .map(|i| obj(&format!("o{i}"), &ts(i), "t"))
            .collect(),
        None,
    )
    .unwrap();
    // A replicator without the secret gets nowhere.
    let s = cl
        .replicator(p[0], "")
        .run_once(&PassFilter::default())
        .await;
    assert_eq!(s.success, 0, "{s:?}");
    assert!(cl.open_db(p[1], A, C).is_none());
    // With it: the whole DB (signed upload + complete_rsync), then rows.
    let s = cl
        .replicator(p[0], &secret)
        .run_once(&PassFilter::default())
        .await;
    assert_eq!((s.rsync, s.success), (2, 2), "{s:?}");
    db.merge_items(vec![obj("late", &ts(100), "t")], None)
        .unwrap();
    let s = cl
        .replicator(p[0], &secret)
        .run_once(&PassFilter::default())
        .await;
    assert_eq!((s.diff, s.success), (2, 2), "{s:?}");
    for &i in &p[1..] {
        let peer = cl.open_db(i, A, C).unwrap();
        assert_eq!(all_rows(&peer), all_rows(&db));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_tampered_replayed_and_expired_requests_change_nothing() {
    let node = TestNode::start_with(&["sda"], &format!("replication_secret = {S1}")).await;
    let db = node.create_db("sda", 0, "a", "c");
    let hash = hash_conf().hash_path("a", Some("c"), None).unwrap();
    let path = format!("/sda/0/{hash}");
    let client = reqwest::Client::new();
    let key = Secret::new(S1);
    let body = merge_body("x");

    assert_eq!(send(&client, &node, &path, &body, &[]).await, 401);
    // Signed for another body.
    let h = sign(&key, "REPLICATE", &path, &body_digest(b"[]"), now());
    assert_eq!(send(&client, &node, &path, &body, &h).await, 403);
    // Signed for another path.
    let h = sign(&key, "REPLICATE", "/sda/1/x", &body_digest(&body), now());
    assert_eq!(send(&client, &node, &path, &body, &h).await, 403);
    // Signed with another secret.
    let h = sign(
        &Secret::new(S2),
        "REPLICATE",
        &path,
        &body_digest(&body),
        now(),
    );
    assert_eq!(send(&client, &node, &path, &body, &h).await, 403);
    // Expired.
    let h = sign(
        &key,
        "REPLICATE",
        &path,
        &body_digest(&body),
        now() - 3600.0,
    );
    assert_eq!(send(&client, &node, &path, &body, &h).await, 403);
    assert!(all_rows(&db).is_empty(), "a refused request wrote rows");

    // Signed right: accepted once; the same request again is a replay.
    let h = sign(&key, "REPLICATE", &path, &body_digest(&body), now());
    assert_eq!(send(&client, &node, &path, &body, &h).await, 202);
    assert_eq!(all_rows(&db).len(), 1);
    let again = merge_body("y");
    let h2: Vec<_> = h.clone();
    assert_eq!(send(&client, &node, &path, &again, &h2).await, 403);
    assert_eq!(all_rows(&db).len(), 1);

    // A whole-DB upload: signed for other bytes is refused, nothing lands.
    let up = "/sda/tmp/upload.db";
    let file = std::fs::read(node.db_path("sda", 0, "a", "c")).unwrap();
    let h = sign(&key, "REPLICATE", up, &body_digest(b"other"), now());
    let mut req = client
        .request(
            reqwest::Method::from_bytes(b"REPLICATE").unwrap(),
            node.url(up),
        )
        .header("content-type", "application/x-sqlite3")
        .body(file.clone());
    for (k, v) in &h {
        req = req.header(*k, v);
    }
    assert_eq!(req.send().await.unwrap().status().as_u16(), 403);
    assert!(!node.devices.join("sda/tmp/upload.db").exists());
    let h = sign(&key, "REPLICATE", up, &body_digest(&file), now());
    let mut req = client
        .request(
            reqwest::Method::from_bytes(b"REPLICATE").unwrap(),
            node.url(up),
        )
        .header("content-type", "application/x-sqlite3")
        .body(file);
    for (k, v) in &h {
        req = req.header(*k, v);
    }
    assert_eq!(req.send().await.unwrap().status().as_u16(), 201);
    assert!(node.devices.join("sda/tmp/upload.db").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_requests_pass_only_from_listed_addresses() {
    let listed = TestNode::start_with(
        &["sda"],
        &format!("replication_secret = {S1}\nreplication_unsigned_from = 10.1.2.0/24, 127.0.0.1"),
    )
    .await;
    let other = TestNode::start_with(
        &["sda"],
        &format!("replication_secret = {S1}\nreplication_unsigned_from = 10.1.2.3"),
    )
    .await;
    let client = reqwest::Client::new();
    let hash = hash_conf().hash_path("a", Some("c"), None).unwrap();
    let path = format!("/sda/0/{hash}");
    let db = listed.create_db("sda", 0, "a", "c");
    assert_eq!(
        send(&client, &listed, &path, &merge_body("x"), &[]).await,
        202
    );
    assert_eq!(all_rows(&db).len(), 1);
    other.create_db("sda", 0, "a", "c");
    assert_eq!(
        send(&client, &other, &path, &merge_body("x"), &[]).await,
        401
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_secrets_are_valid_during_a_rotation() {
    // Servers already know the new secret as their secondary; a replicator
    // still on the old one and one on the new one both get through.
    let server = format!("replication_secret = {S1}\nreplication_secret_secondary = {S2}");
    let cl = Cluster::start_kind_with(2, 2, 2, ServerType::Container, &server).await;
    let p = cl.primaries(cl.part(A, C));
    let db = cl.create_db(p[0], A, C);
    db.merge_items(vec![obj("a", &ts(1), "t")], None).unwrap();
    for s in [S1, S2] {
        let st = cl
            .replicator(p[0], &format!("replication_secret = {s}"))
            .run_once(&PassFilter::default())
            .await;
        assert_eq!(st.success, 1, "{s}: {st:?}");
        db.merge_items(vec![obj(s, &ts(2), "t")], None).unwrap();
    }
    let st = cl
        .replicator(p[0], "replication_secret = third-secret-000000000")
        .run_once(&PassFilter::default())
        .await;
    assert_eq!(st.success, 0, "{st:?}");
}

#[test]
fn secrets_never_appear_in_debug_output_and_short_ones_are_refused() {
    let text = format!(
        "[DEFAULT]\nreplication_secret = {S1}\n[app:container-server]\nuse = egg:swift#container\n\
         replication_secret_secondary = {S2}\n[container-replicator]\n"
    );
    let ini = rowsync::config::ini::Ini::parse(&text, "x.conf").unwrap();
    let server = rowsync::config::ServerConf::from_ini(&ini, ServerType::Container).unwrap();
    assert!(server.auth.enabled());
    let repl = rowsync::config::ReplicatorConf::from_ini(&ini, ServerType::Container).unwrap();
    assert!(repl.replication_secret.is_some());
    let dump = format!("{server:?} {repl:?}");
    assert!(!dump.contains(S1) && !dump.contains(S2), "{dump}");
    let short = "[app:container-server]\nuse = egg:swift#container\nreplication_secret = short\n";
    let ini = rowsync::config::ini::Ini::parse(short, "x.conf").unwrap();
    let err = rowsync::config::ServerConf::from_ini(&ini, ServerType::Container).unwrap_err();
    assert!(err.to_string().contains("replication_secret"), "{err}");
    assert!(!err.to_string().contains("short\""), "{err}");
}
