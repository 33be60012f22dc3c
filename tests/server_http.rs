//! The HTTP layer both servers share: header limits as Swift's, keep-alive,
//! graceful stop.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_put_with_many_metadata_headers_is_accepted() {
    let node = TestNode::start(&["sda"]).await;
    let client = reqwest::Client::new();
    // A proxy's container PUT: up to 90 metadata items plus its own headers.
    let mut req = client
        .put(node.url("/sda/0/a/many-meta"))
        .header("X-Timestamp", ts(1));
    for i in 0..90 {
        req = req.header(format!("X-Container-Meta-K{i}"), "v");
    }
    for i in 0..40 {
        req = req.header(format!("X-Proxy-Extra-{i}"), "x");
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status().as_u16(), 201);
    // Every item was stored (a HEAD would answer them all, more than
    // reqwest's own client reads).
    let part = 0;
    let db =
        rowsync::db::ContainerBroker::open(node.db_path("sda", part, "a", "many-meta")).unwrap();
    assert_eq!(db.metadata().unwrap().len(), 90);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_headers_than_swift_accepts_get_431_and_nothing_is_written() {
    let node = TestNode::start(&["sda"]).await;
    let client = reqwest::Client::new();
    let mut req = client
        .put(node.url("/sda/0/a/too-many"))
        .header("X-Timestamp", ts(1));
    for i in 0..300 {
        req = req.header(format!("X-Junk-{i}"), "x");
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status().as_u16(), 431);
    let r = client
        .head(node.url("/sda/0/a/too-many"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_finishes_and_frees_the_port() {
    let mut node = TestNode::start(&["sda"]).await;
    let client = reqwest::Client::new();
    // A kept-alive connection is open when the server stops.
    let r = client
        .put(node.url("/sda/0/a/c"))
        .header("X-Timestamp", ts(1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let port = node.addr.port();
    tokio::time::timeout(std::time::Duration::from_secs(10), node.stop())
        .await
        .expect("the server stops with an idle kept-alive connection open");
    let again = bind_again(port).await;
    drop(again);
}
