//! The container API over real HTTP: a server on 127.0.0.1:0 driven with
//! reqwest.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::sync::oneshot;

use rowsync::config::{ServerConf, SwiftConf};
use rowsync::db::files;
use rowsync::server::{self, AppState};

const SWIFT_CONF: &str = "[swift-hash]\n\
    swift_hash_path_prefix = pre\n\
    swift_hash_path_suffix = suf\n\
    [storage-policy:0]\nname = gold\ndefault = yes\n\
    [storage-policy:1]\nname = silver\n";

struct Server {
    base: String,
    devices: PathBuf,
    client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _dir: tempfile::TempDir,
}

async fn start() -> Server {
    start_with("").await
}

async fn start_with(extra_conf: &str) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let devices = dir.path().join("srv");
    std::fs::create_dir_all(devices.join("sda")).unwrap();
    let conf = ServerConf::from_str(&format!(
        "[DEFAULT]\ndevices = {}\nmount_check = false\n\
         [app:container-server]\nfallocate_reserve = 0\nlog_requests = false\n{extra_conf}",
        devices.display()
    ))
    .unwrap();
    let swift = SwiftConf::from_str(SWIFT_CONF).unwrap();
    let state = Arc::new(AppState::new(conf, swift));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(server::serve(state, listener, async {
        let _ = rx.await;
    }));
    Server {
        base: format!("http://{addr}"),
        devices,
        client: reqwest::Client::new(),
        shutdown: Some(tx),
        task: Some(task),
        _dir: dir,
    }
}

/// Percent-encodes one path segment.
fn q(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

fn ts(n: u32) -> String {
    format!("{}.00000", 1_700_000_000 + n)
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    async fn req(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut r = self.client.request(
            Method::from_bytes(method.as_bytes()).unwrap(),
            self.url(path),
        );
        for (k, v) in headers {
            r = r.header(
                *k,
                reqwest::header::HeaderValue::from_bytes(v.as_bytes()).unwrap(),
            );
        }
        r.send().await.unwrap()
    }

    async fn status(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> StatusCode {
        self.req(method, path, headers).await.status()
    }

    async fn put_container(&self, c: &str, t: u32) -> StatusCode {
        let t = ts(t);
        self.status("PUT", &format!("/sda/0/a/{c}"), &[("X-Timestamp", &t)])
            .await
    }

    async fn put_obj(&self, c: &str, o: &str, t: u32, size: &str) -> StatusCode {
        let t = ts(t);
        self.status(
            "PUT",
            &format!("/sda/0/a/{c}/{}", q(o)),
            &[
                ("X-Timestamp", &t),
                ("X-Size", size),
                ("X-Content-Type", "text/plain"),
                ("X-Etag", "d41d8cd98f00b204e9800998ecf8427e"),
            ],
        )
        .await
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> (StatusCode, String, String) {
        let r = self.req("GET", path, headers).await;
        let status = r.status();
        let ct = header(&r, "content-type");
        (status, ct, r.text().await.unwrap())
    }

    async fn json(&self, path: &str) -> Vec<Value> {
        let (status, ct, body) = self.get(path, &[]).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert_eq!(ct, "application/json; charset=utf-8");
        serde_json::from_str(&body).unwrap()
    }

    async fn names(&self, path: &str) -> Vec<String> {
        let (status, _, body) = self.get(path, &[]).await;
        assert!(status.is_success(), "{path}: {status} {body}");
        body.lines().map(str::to_string).collect()
    }

    async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap().unwrap();
        }
    }
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default()
}

fn db_dir(devices: &std::path::Path, account: &str, container: &str) -> PathBuf {
    let swift = SwiftConf::from_str(SWIFT_CONF).unwrap();
    let hash = swift
        .hash_path_config()
        .hash_path(account, Some(container), None)
        .unwrap();
    files::hash_dir(&devices.join("sda"), "containers", 0, &hash)
}

#[tokio::test]
async fn container_lifecycle() {
    let s = start().await;
    assert_eq!(s.put_container("c", 1).await, StatusCode::CREATED);
    let dir = db_dir(&s.devices, "a", "c");
    let hash = dir.file_name().unwrap().to_str().unwrap().to_string();
    assert!(dir.join(format!("{hash}.db")).is_file());
    let r = s.req("PUT", "/sda/0/a/c", &[("X-Timestamp", &ts(2))]).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(header(&r, "x-backend-storage-policy-index"), "0");

    let r = s.req("HEAD", "/sda/0/a/c", &[]).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&r, "x-container-object-count"), "0");
    assert_eq!(header(&r, "x-container-bytes-used"), "0");
    assert_eq!(header(&r, "x-put-timestamp"), ts(2));
    assert_eq!(header(&r, "x-backend-put-timestamp"), ts(2));
    assert_eq!(header(&r, "x-backend-delete-timestamp"), "0000000000.00000");
    assert_eq!(header(&r, "x-backend-status-changed-at"), ts(1));
    assert_eq!(header(&r, "x-backend-storage-policy-index"), "0");
    assert_eq!(header(&r, "x-backend-sharding-state"), "unsharded");
    assert_eq!(header(&r, "content-type"), "text/plain; charset=utf-8");
    assert_eq!(header(&r, "content-length"), "0");
    assert_eq!(header(&r, "last-modified"), "Tue, 14 Nov 2023 22:13:22 GMT");
    assert!(!header(&r, "x-timestamp").is_empty());
    assert_eq!(header(&r, "x-timestamp"), header(&r, "x-backend-timestamp"));
    let r = s
        .req("HEAD", "/sda/0/a/c", &[("Accept", "application/json")])
        .await;
    assert_eq!(
        header(&r, "content-type"),
        "application/json; charset=utf-8"
    );

    // DELETE: 204, then the container is gone (404 with backend headers).
    assert_eq!(
        s.status("DELETE", "/sda/0/a/c", &[("X-Timestamp", &ts(3))])
            .await,
        StatusCode::NO_CONTENT
    );
    let r = s.req("HEAD", "/sda/0/a/c", &[]).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(header(&r, "x-backend-delete-timestamp"), ts(3));
    assert_eq!(header(&r, "x-backend-put-timestamp"), ts(2));
    assert_eq!(header(&r, "x-container-object-count"), "");
    assert_eq!(s.get("/sda/0/a/c", &[]).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        s.status("DELETE", "/sda/0/a/c", &[("X-Timestamp", &ts(4))])
            .await,
        StatusCode::NOT_FOUND
    );
    // Never-created containers.
    let r = s.req("HEAD", "/sda/0/a/nope", &[]).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(header(&r, "x-backend-put-timestamp"), "0000000000.00000");
    assert_eq!(
        s.status("DELETE", "/sda/0/a/nope", &[("X-Timestamp", &ts(4))])
            .await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.status("POST", "/sda/0/a/nope", &[("X-Timestamp", &ts(4))])
            .await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.status("POST", "/sda/0/a/c", &[("X-Timestamp", &ts(5))])
            .await,
        StatusCode::NOT_FOUND,
        "POST to a deleted container"
    );

    // A PUT older than the delete cannot revive it.
    assert_eq!(s.put_container("c", 2).await, StatusCode::CONFLICT);
    // A newer PUT recreates it, in the policy asked for.
    let r = s
        .req(
            "PUT",
            "/sda/0/a/c",
            &[
                ("X-Timestamp", &ts(6)),
                ("X-Backend-Storage-Policy-Index", "1"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(header(&r, "x-backend-storage-policy-index"), "1");
    let r = s.req("HEAD", "/sda/0/a/c", &[]).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&r, "x-backend-storage-policy-index"), "1");
    assert_eq!(header(&r, "x-backend-status-changed-at"), ts(6));
    s.stop().await;
}

#[tokio::test]
async fn policy_conflicts_and_defaults() {
    let s = start().await;
    let put = |c: &'static str, t: u32, extra: Vec<(&'static str, &'static str)>| {
        let s = &s;
        async move {
            let t = ts(t);
            let mut h = vec![("X-Timestamp", t.as_str())];
            h.extend(extra);
            s.req("PUT", &format!("/sda/0/a/{c}"), &h).await
        }
    };
    let r = put("p", 1, vec![("X-Backend-Storage-Policy-Index", "1")]).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = put("p", 2, vec![("X-Backend-Storage-Policy-Index", "0")]).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(header(&r, "x-backend-storage-policy-index"), "1");
    // Without a policy, an existing container keeps its own.
    let r = put("p", 3, vec![]).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(header(&r, "x-backend-storage-policy-index"), "1");
    // The proxy's default for new containers.
    let r = put("d", 1, vec![("X-Backend-Storage-Policy-Default", "1")]).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(header(&r, "x-backend-storage-policy-index"), "1");
    // Unknown or malformed policies.
    for bad in ["7", "x", "-1"] {
        let r = put("e", 1, vec![("X-Backend-Storage-Policy-Index", bad)]).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
    assert_eq!(
        s.status("HEAD", "/sda/0/a/e", &[]).await,
        StatusCode::NOT_FOUND
    );
    s.stop().await;
}

#[tokio::test]
async fn metadata_round_trip() {
    let s = start().await;
    let r = s
        .req(
            "PUT",
            "/sda/0/a/m",
            &[
                ("X-Timestamp", &ts(1)),
                ("X-Container-Meta-Color", "blue"),
                ("x-container-meta-two-words", "caf\u{e9}"),
                ("X-Container-Read", ".r:*"),
                ("X-Container-Write", "acct"),
                ("X-Container-Sysmeta-Thing", "sys"),
                ("X-Container-Sync-Key", "secret"),
                ("X-Container-Sync-To", "http://127.0.0.1/v1/a/c2"),
                ("X-Object-Meta-Nope", "ignored"),
                ("X-Versions-Location", "ignored"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = s.req("HEAD", "/sda/0/a/m", &[]).await;
    assert_eq!(header(&r, "x-container-meta-color"), "blue");
    assert_eq!(header(&r, "x-container-meta-two-words"), "caf\u{e9}");
    assert_eq!(header(&r, "x-container-read"), ".r:*");
    assert_eq!(header(&r, "x-container-write"), "acct");
    assert_eq!(header(&r, "x-container-sysmeta-thing"), "sys");
    assert_eq!(header(&r, "x-container-sync-key"), "secret");
    assert_eq!(
        header(&r, "x-container-sync-to"),
        "http://127.0.0.1/v1/a/c2"
    );
    assert_eq!(header(&r, "x-object-meta-nope"), "");
    assert_eq!(header(&r, "x-versions-location"), "");

    // Stored as Swift stores it: title-cased keys, [value, timestamp].
    let dir = db_dir(&s.devices, "a", "m");
    let hash = dir.file_name().unwrap().to_str().unwrap().to_string();
    let broker = rowsync::db::ContainerBroker::open(dir.join(format!("{hash}.db"))).unwrap();
    let md = broker.metadata().unwrap();
    assert_eq!(
        md["X-Container-Meta-Color"],
        serde_json::json!(["blue", ts(1)])
    );
    assert!(md.contains_key("X-Container-Meta-Two-Words"));
    drop(broker);

    // Newer POST wins, older POST does not; an empty value hides the key.
    let post = |t: u32, h: Vec<(&'static str, &'static str)>| {
        let s = &s;
        async move {
            let t = ts(t);
            let mut hs = vec![("X-Timestamp", t.as_str())];
            hs.extend(h);
            s.status("POST", "/sda/0/a/m", &hs).await
        }
    };
    assert_eq!(
        post(3, vec![("X-Container-Meta-Color", "red")]).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        post(2, vec![("X-Container-Meta-Color", "green")]).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        post(4, vec![("X-Container-Read", "")]).await,
        StatusCode::NO_CONTENT
    );
    let r = s.req("HEAD", "/sda/0/a/m", &[]).await;
    assert_eq!(header(&r, "x-container-meta-color"), "red");
    assert_eq!(header(&r, "x-container-read"), "");
    assert_eq!(
        header(&r, "x-put-timestamp"),
        ts(4),
        "POST moves put_timestamp"
    );
    assert_eq!(
        post(
            5,
            vec![
                ("X-Container-Meta-Color", "black"),
                ("X-Backend-No-Timestamp-Update", "true")
            ]
        )
        .await,
        StatusCode::NO_CONTENT
    );
    let r = s.req("HEAD", "/sda/0/a/m", &[]).await;
    assert_eq!(header(&r, "x-container-meta-color"), "black");
    assert_eq!(header(&r, "x-put-timestamp"), ts(4));
    // GET carries the metadata too.
    let r = s.req("GET", "/sda/0/a/m?format=json", &[]).await;
    assert_eq!(header(&r, "x-container-meta-color"), "black");

    // Limits on the merged metadata (Swift's validate_metadata).
    let t = ts(6);
    let mut many: Vec<(String, String)> = (0..91)
        .map(|i| (format!("X-Container-Meta-K{i}"), "v".to_string()))
        .collect();
    many.push(("X-Timestamp".into(), t.clone()));
    let hs: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let r = s.req("POST", "/sda/0/a/m", &hs).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("Too many metadata items"));
    let big = "x".repeat(4090);
    assert_eq!(
        s.status(
            "POST",
            "/sda/0/a/m",
            &[("X-Timestamp", &t), ("X-Container-Meta-Big", &big)]
        )
        .await,
        StatusCode::BAD_REQUEST
    );
    // Sync-To must point at an allowed host.
    let r = s
        .req(
            "POST",
            "/sda/0/a/m",
            &[
                ("X-Timestamp", &t),
                ("X-Container-Sync-To", "http://10.9.9.9/v1/a/c"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("Invalid host"));
    // Metadata must be UTF-8.
    let mut req = s.client.post(s.url("/sda/0/a/m")).header("X-Timestamp", &t);
    req = req.header(
        "X-Container-Meta-Bin",
        reqwest::header::HeaderValue::from_bytes(b"\xff\xfe").unwrap(),
    );
    assert_eq!(req.send().await.unwrap().status(), StatusCode::BAD_REQUEST);
    s.stop().await;
}

#[tokio::test]
async fn objects_and_listings() {
    let s = start().await;
    assert_eq!(s.put_container("c", 1).await, StatusCode::CREATED);
    for (i, name) in ["a", "b/1", "b/2", "c", "d/x/y", "e\u{e9}"]
        .iter()
        .enumerate()
    {
        assert_eq!(
            s.put_obj("c", name, 10 + i as u32, &(i * 10).to_string())
                .await,
            StatusCode::CREATED,
            "{name}"
        );
    }
    // Rows go through the pending file and are committed on read.
    let dir = db_dir(&s.devices, "a", "c");
    let hash = dir.file_name().unwrap().to_str().unwrap().to_string();
    let pending = dir.join(format!("{hash}.db.pending"));
    assert!(std::fs::metadata(&pending).unwrap().len() > 0);
    let r = s.req("HEAD", "/sda/0/a/c", &[]).await;
    assert_eq!(header(&r, "x-container-object-count"), "6");
    assert_eq!(header(&r, "x-container-bytes-used"), "150");
    assert_eq!(std::fs::metadata(&pending).unwrap().len(), 0);

    // Plain text is the default.
    let (status, ct, body) = s.get("/sda/0/a/c", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ct, "text/plain; charset=utf-8");
    assert_eq!(body, "a\nb/1\nb/2\nc\nd/x/y\ne\u{e9}\n");

    // JSON records.
    let list = s.json("/sda/0/a/c?format=json&limit=1").await;
    assert_eq!(
        list,
        vec![serde_json::json!({
            "bytes": 0, "hash": "d41d8cd98f00b204e9800998ecf8427e", "name": "a",
            "content_type": "text/plain", "last_modified": "2023-11-14T22:13:30.000000"
        })]
    );
    let r = s.req("GET", "/sda/0/a/c?format=json&limit=1", &[]).await;
    assert_eq!(header(&r, "x-backend-record-type"), "object");
    assert_eq!(header(&r, "x-backend-record-storage-policy-index"), "0");
    assert_eq!(header(&r, "x-container-object-count"), "6");
    // Listing another policy's rows.
    let r1 = s
        .req(
            "GET",
            "/sda/0/a/c?format=json",
            &[("X-Backend-Storage-Policy-Index", "1")],
        )
        .await;
    assert_eq!(header(&r1, "x-backend-record-storage-policy-index"), "1");
    assert_eq!(r1.text().await.unwrap(), "[]");
    // Python's json.dumps layout, ASCII only.
    let raw = r.text().await.unwrap();
    assert!(raw.starts_with("[{\"bytes\": 0, \"hash\": "), "{raw}");
    let (_, _, raw) = s.get("/sda/0/a/c?format=json&prefix=e", &[]).await;
    assert!(raw.contains("\"name\": \"e\\u00e9\""), "{raw}");

    // Accept negotiation and format=.
    let ct_of = |accept: &'static str, qs: &'static str| {
        let s = &s;
        async move {
            let (st, ct, _) = s
                .get(&format!("/sda/0/a/c{qs}"), &[("Accept", accept)])
                .await;
            (st, ct)
        }
    };
    assert_eq!(
        ct_of("application/json", "").await.1,
        "application/json; charset=utf-8"
    );
    assert_eq!(
        ct_of("application/xml", "").await.1,
        "application/xml; charset=utf-8"
    );
    assert_eq!(ct_of("text/xml", "").await.1, "text/xml; charset=utf-8");
    assert_eq!(ct_of("*/*", "").await.1, "text/plain; charset=utf-8");
    assert_eq!(
        ct_of("application/json", "?format=plain").await.1,
        "text/plain; charset=utf-8"
    );
    assert_eq!(
        ct_of("text/plain", "?format=xml").await.1,
        "application/xml; charset=utf-8"
    );
    assert_eq!(ct_of("image/png", "").await.0, StatusCode::NOT_ACCEPTABLE);
    assert_eq!(ct_of("garbage", "").await.0, StatusCode::BAD_REQUEST);

    // XML.
    let (status, _, xml) = s.get("/sda/0/a/c?format=xml&prefix=b/", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        xml,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<container name=\"c\">\
         <object><name>b/1</name><hash>d41d8cd98f00b204e9800998ecf8427e</hash>\
         <bytes>10</bytes><content_type>text/plain</content_type>\
         <last_modified>2023-11-14T22:13:31.000000</last_modified></object>\
         <object><name>b/2</name><hash>d41d8cd98f00b204e9800998ecf8427e</hash>\
         <bytes>20</bytes><content_type>text/plain</content_type>\
         <last_modified>2023-11-14T22:13:32.000000</last_modified></object></container>"
    );
    let (_, _, xml) = s
        .get("/sda/0/a/c?format=xml&delimiter=/&prefix=d/", &[])
        .await;
    assert!(
        xml.ends_with("<subdir name=\"d/x/\"><name>d/x/</name></subdir></container>"),
        "{xml}"
    );

    // marker, end_marker, prefix, delimiter, path, reverse, limit.
    assert_eq!(
        s.names("/sda/0/a/c?marker=b/2").await,
        ["c", "d/x/y", "e\u{e9}"]
    );
    assert_eq!(s.names("/sda/0/a/c?end_marker=b/2").await, ["a", "b/1"]);
    assert_eq!(s.names("/sda/0/a/c?prefix=b/").await, ["b/1", "b/2"]);
    assert_eq!(
        s.names("/sda/0/a/c?delimiter=/").await,
        ["a", "b/", "c", "d/", "e\u{e9}"]
    );
    assert_eq!(s.names("/sda/0/a/c?path=b").await, ["b/1", "b/2"]);
    // path= lists direct children only (no subdirs), as Swift does.
    assert!(s.names("/sda/0/a/c?path=d").await.is_empty());
    assert_eq!(
        s.names("/sda/0/a/c?reverse=on&limit=3").await,
        ["e\u{e9}", "d/x/y", "c"]
    );
    assert_eq!(
        s.names(&format!("/sda/0/a/c?prefix={}", q("e\u{e9}")))
            .await,
        ["e\u{e9}"]
    );
    let list = s.json("/sda/0/a/c?format=json&delimiter=/&prefix=b").await;
    assert_eq!(list, vec![serde_json::json!({"subdir": "b/"})]);
    // Swift ignores a limit that is not all digits; over 10000 is a 412.
    assert_eq!(s.names("/sda/0/a/c?limit=abc").await.len(), 6);
    assert_eq!(s.names("/sda/0/a/c?limit=").await.len(), 6);
    assert_eq!(s.names("/sda/0/a/c?limit=10000").await.len(), 6);
    let r = s.req("GET", "/sda/0/a/c?limit=10001", &[]).await;
    assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(r.text().await.unwrap(), "Maximum limit is 10000");
    assert_eq!(
        s.status("GET", "/sda/0/a/c?marker=%ff", &[]).await,
        StatusCode::BAD_REQUEST
    );

    // Empty listings: 204 for plain text, 200 for JSON and XML.
    let (st, ct, body) = s.get("/sda/0/a/c?prefix=zzz", &[]).await;
    assert_eq!((st, body.as_str()), (StatusCode::NO_CONTENT, ""));
    assert_eq!(ct, "text/plain; charset=utf-8");
    let (st, _, body) = s.get("/sda/0/a/c?prefix=zzz&format=json", &[]).await;
    assert_eq!((st, body.as_str()), (StatusCode::OK, "[]"));
    let (st, _, body) = s.get("/sda/0/a/c?prefix=zzz&format=xml", &[]).await;
    assert_eq!(st, StatusCode::OK);
    assert!(body.ends_with("<container name=\"c\" />"), "{body}");

    // swift_bytes and the content-type / metadata timestamps.
    let t = ts(50);
    let r = s
        .req(
            "PUT",
            "/sda/0/a/c/slo",
            &[
                ("X-Timestamp", &t),
                ("X-Size", "5"),
                ("X-Content-Type", "application/x-thing;swift_bytes=12345"),
                ("X-Etag", "abc"),
                ("X-Content-Type-Timestamp", &ts(51)),
                ("X-Meta-Timestamp", &ts(52)),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let list = s.json("/sda/0/a/c?format=json&prefix=slo").await;
    assert_eq!(list[0]["bytes"], 12345);
    assert_eq!(list[0]["content_type"], "application/x-thing");
    assert_eq!(list[0]["last_modified"], "2023-11-14T22:14:12.000000");

    // DELETE of an object row.
    assert_eq!(
        s.status("DELETE", "/sda/0/a/c/slo", &[("X-Timestamp", &ts(60))])
            .await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        s.status("DELETE", "/sda/0/a/c/a", &[("X-Timestamp", &ts(60))])
            .await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(s.names("/sda/0/a/c?limit=2").await, ["b/1", "b/2"]);
    let r = s.req("HEAD", "/sda/0/a/c", &[]).await;
    assert_eq!(header(&r, "x-container-object-count"), "5");

    // A non-empty container cannot be deleted.
    assert_eq!(
        s.status("DELETE", "/sda/0/a/c", &[("X-Timestamp", &ts(70))])
            .await,
        StatusCode::CONFLICT
    );
    for name in ["b/1", "b/2", "c", "d/x/y", "e\u{e9}"] {
        assert_eq!(
            s.status(
                "DELETE",
                &format!("/sda/0/a/c/{}", q(name)),
                &[("X-Timestamp", &ts(71))]
            )
            .await,
            StatusCode::NO_CONTENT
        );
    }
    assert_eq!(
        s.status("DELETE", "/sda/0/a/c", &[("X-Timestamp", &ts(72))])
            .await,
        StatusCode::NO_CONTENT
    );
    s.stop().await;
}

#[tokio::test]
async fn object_rows_need_a_container_unless_internal() {
    let s = start().await;
    assert_eq!(s.put_obj("nope", "o", 1, "1").await, StatusCode::NOT_FOUND);
    assert_eq!(
        s.status("DELETE", "/sda/0/a/nope/o", &[("X-Timestamp", &ts(1))])
            .await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.status("HEAD", "/sda/0/a/nope", &[]).await,
        StatusCode::NOT_FOUND
    );
    // Internal accounts (".…") are created on the first object update.
    let t = ts(1);
    let h = [
        ("X-Timestamp", t.as_str()),
        ("X-Size", "0"),
        ("X-Content-Type", "text/plain"),
        ("X-Etag", "x"),
    ];
    assert_eq!(
        s.status("PUT", "/sda/0/.expiring_objects/1700000000/o", &h)
            .await,
        StatusCode::CREATED
    );
    assert_eq!(s.names("/sda/0/.expiring_objects/1700000000").await, ["o"]);
    // ...but not .shards_ accounts, nor with X-Backend-Auto-Create: false.
    assert_eq!(
        s.status("PUT", "/sda/0/.shards_a/c/o", &h).await,
        StatusCode::NOT_FOUND
    );
    let mut h2 = h.to_vec();
    h2.push(("X-Backend-Auto-Create", "false"));
    assert_eq!(
        s.status("PUT", "/sda/0/.other/c/o", &h2).await,
        StatusCode::NOT_FOUND
    );
    // UTF-8 names, percent-encoded on the wire.
    let c = "caf\u{e9}";
    assert_eq!(
        s.status(
            "PUT",
            &format!("/sda/0/a/{}", q(c)),
            &[("X-Timestamp", &ts(2))]
        )
        .await,
        StatusCode::CREATED
    );
    assert_eq!(
        s.put_obj(c, "\u{fc}/\u{f1} x+y", 3, "1").await,
        StatusCode::CREATED
    );
    assert_eq!(
        s.names(&format!("/sda/0/a/{}", q(c))).await,
        ["\u{fc}/\u{f1} x+y"]
    );
    assert!(db_dir(&s.devices, "a", c).is_dir());
    s.stop().await;
}

#[tokio::test]
async fn update_merges_rows() {
    let s = start().await;
    assert_eq!(s.put_container("u", 1).await, StatusCode::CREATED);
    let body = serde_json::json!([
        {"name": "x", "created_at": ts(2), "size": 3, "content_type": "text/plain",
         "etag": "e", "deleted": 0, "storage_policy_index": 0},
        {"name": "y", "created_at": ts(2), "size": 4, "content_type": "text/plain",
         "etag": "e", "deleted": 0, "storage_policy_index": 0}
    ]);
    let r = s
        .client
        .request(Method::from_bytes(b"UPDATE").unwrap(), s.url("/sda/0/a/u"))
        .header("X-Timestamp", ts(2))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(s.names("/sda/0/a/u").await, ["x", "y"]);
    let r = s
        .client
        .request(Method::from_bytes(b"UPDATE").unwrap(), s.url("/sda/0/a/u"))
        .header("X-Timestamp", ts(2))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    s.stop().await;
}

#[tokio::test]
async fn bad_requests() {
    let s = start().await;
    assert_eq!(s.put_container("c", 1).await, StatusCode::CREATED);
    let t = ts(2);
    let obj = |extra: Vec<(&'static str, &'static str)>| {
        let s = &s;
        let t = t.clone();
        async move {
            let mut h = vec![("X-Timestamp", t.as_str())];
            h.extend(extra);
            let r = s.req("PUT", "/sda/0/a/c/o", &h).await;
            let st = r.status();
            (st, r.text().await.unwrap())
        }
    };
    let full = vec![
        ("X-Size", "1"),
        ("X-Content-Type", "text/plain"),
        ("X-Etag", "e"),
    ];
    assert_eq!(obj(full.clone()).await.0, StatusCode::CREATED);
    for (drop, what) in [(0, "X-Size"), (1, "X-Content-Type"), (2, "X-Etag")] {
        let mut h = full.clone();
        h.remove(drop);
        let (st, body) = obj(h).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{what}");
        assert!(body.contains(what), "{body}");
    }
    for (k, v) in [
        ("X-Size", "12x"),
        ("X-Content-Type-Timestamp", "soon"),
        ("X-Meta-Timestamp", "-1"),
        ("X-Backend-Storage-Policy-Index", "9"),
    ] {
        let mut h: Vec<(&str, &str)> = full.iter().filter(|(n, _)| *n != k).cloned().collect();
        h.push((k, v));
        assert_eq!(obj(h).await.0, StatusCode::BAD_REQUEST, "{k}: {v}");
    }

    // Timestamps.
    let r = s.req("PUT", "/sda/0/a/c", &[]).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.text().await.unwrap(), "Missing X-Timestamp header");
    for m in ["PUT", "POST", "DELETE", "UPDATE"] {
        let r = s
            .req(m, "/sda/0/a/c", &[("X-Timestamp", "yesterday")])
            .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{m}");
        assert_eq!(r.text().await.unwrap(), "Invalid X-Timestamp header");
        assert_eq!(
            s.status(m, "/sda/0/a/c", &[]).await,
            StatusCode::BAD_REQUEST,
            "{m}"
        );
    }

    // Paths and names.
    // (Long names are the proxy's to refuse: see
    // long_names_are_containers_that_do_not_exist.)
    for path in [
        "/sda/0/a".to_string(),
        "/sda/0".to_string(),
        "/sda/x/a/c".to_string(),
        "/sda/-1/a/c".to_string(),
        "/sda/0//c".to_string(),
        "/../0/a/c".to_string(),
        "/sda/0/a/c%00x".to_string(),
        "/sda/0/a%00/c".to_string(),
        "/sda/0/a/c/o%00".to_string(),
        "/sda/0/a/%00c/o".to_string(),
    ] {
        assert_eq!(
            s.status("PUT", &path, &[("X-Timestamp", &t)]).await,
            StatusCode::BAD_REQUEST,
            "{path}"
        );
    }
    // POST and UPDATE take no object part.
    assert_eq!(
        s.status("POST", "/sda/0/a/c/o", &[("X-Timestamp", &t)])
            .await,
        StatusCode::BAD_REQUEST
    );
    // Reserved names are fine where Swift allows them.
    assert_eq!(
        s.status("PUT", "/sda/0/a/%00versions%00c", &[("X-Timestamp", &t)])
            .await,
        StatusCode::CREATED
    );
    // Invalid UTF-8 in the path: Swift's 412.
    let r = s.req("PUT", "/sda/0/a/%ff", &[("X-Timestamp", &t)]).await;
    assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(r.text().await.unwrap(), "Invalid UTF8 or contains NULL");

    // Devices: missing, or an unsafe name.
    for path in ["/sdz/0/a/c", "/sd%20a/0/a/c"] {
        for m in ["PUT", "POST", "DELETE", "HEAD", "GET"] {
            assert_eq!(
                s.status(m, path, &[("X-Timestamp", &t)]).await,
                StatusCode::INSUFFICIENT_STORAGE,
                "{m} {path}"
            );
        }
    }

    // Methods.
    // An unknown method: swob's default body, no Allow header (as Swift).
    let r = s.req("PATCH", "/sda/0/a/c", &[]).await;
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(r.headers().get("allow").is_none());
    assert!(r
        .text()
        .await
        .unwrap()
        .starts_with("<html><h1>Method Not Allowed</h1>"));
    let r = s.req("OPTIONS", "/sda/0/a/c", &[]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(header(&r, "allow").contains("PUT"));
    assert!(header(&r, "server").starts_with("container-server/"));
    let r = s
        .req(
            "GET",
            "/sda/0/a/c",
            &[("X-Backend-Storage-Policy-Index", "x")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // As in Swift, the policy is checked before the container's existence.
    assert_eq!(
        s.status(
            "GET",
            "/sda/0/a/missing",
            &[("X-Backend-Storage-Policy-Index", "5")]
        )
        .await,
        StatusCode::BAD_REQUEST
    );
    s.stop().await;
}

#[tokio::test]
async fn mount_check_gives_507() {
    let s = start_with("set mount_check = true\n").await;
    assert_eq!(
        s.put_container("c", 1).await,
        StatusCode::INSUFFICIENT_STORAGE
    );
    assert_eq!(
        s.status("HEAD", "/sda/0/a/c", &[]).await,
        StatusCode::INSUFFICIENT_STORAGE
    );
    s.stop().await;
}

#[tokio::test]
async fn concurrent_object_puts() {
    let s = Arc::new(start().await);
    assert_eq!(s.put_container("busy", 1).await, StatusCode::CREATED);
    let mut tasks = Vec::new();
    for i in 0..20u32 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.put_obj("busy", &format!("obj-{i:02}"), 10 + i, "7").await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::CREATED);
    }
    let names = s.names("/sda/0/a/busy").await;
    let want: Vec<String> = (0..20).map(|i| format!("obj-{i:02}")).collect();
    assert_eq!(names, want);
    let r = s.req("HEAD", "/sda/0/a/busy", &[]).await;
    assert_eq!(header(&r, "x-container-object-count"), "20");
    assert_eq!(header(&r, "x-container-bytes-used"), "140");
    let s = Arc::try_unwrap(s).ok().unwrap();
    s.stop().await;
}

/// What the fake account server saw: (method, path, headers) per request.
type Seen = Arc<Mutex<Vec<(String, String, HashMap<String, String>)>>>;

/// A fake account server recording what it is sent.
async fn fake_account_server(status: u16) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let rec = seen.clone();
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let rec = rec.clone();
        async move {
            let headers = req
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            rec.lock().unwrap().push((
                req.method().to_string(),
                req.uri().path().to_string(),
                headers,
            ));
            axum::http::StatusCode::from_u16(status).unwrap()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr.to_string(), seen)
}

#[tokio::test]
async fn account_updates() {
    let s = start().await;
    let (host, seen) = fake_account_server(201).await;
    let t = ts(1);
    let r = s
        .req(
            "PUT",
            &format!("/sda/0/a/{}", q("c d")),
            &[
                ("X-Timestamp", &t),
                ("X-Account-Host", &host),
                ("X-Account-Device", "sdb"),
                ("X-Account-Partition", "7"),
                ("X-Trans-Id", "tx1"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        let (method, path, h) = &seen[0];
        assert_eq!(method, "PUT");
        assert_eq!(path, "/sdb/7/a/c%20d");
        assert_eq!(h["x-put-timestamp"], t);
        assert_eq!(h["x-delete-timestamp"], "0");
        assert_eq!(h["x-object-count"], "0");
        assert_eq!(h["x-bytes-used"], "0");
        assert_eq!(h["x-trans-id"], "tx1");
        assert_eq!(h["x-backend-storage-policy-index"], "0");
    }
    // Every account server says 404: so does the container server.
    let (host404, _) = fake_account_server(404).await;
    let r = s
        .req(
            "DELETE",
            &format!("/sda/0/a/{}", q("c d")),
            &[
                ("X-Timestamp", &ts(2)),
                ("X-Account-Host", &host404),
                ("X-Account-Device", "sdb"),
                ("X-Account-Partition", "7"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // Mismatched hosts and devices.
    let r = s
        .req(
            "PUT",
            "/sda/0/a/other",
            &[
                ("X-Timestamp", &t),
                ("X-Account-Host", &format!("{host},{host}")),
                ("X-Account-Device", "sdb"),
                ("X-Account-Partition", "7"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // An unreachable account server is logged, not fatal.
    let r = s
        .req(
            "PUT",
            "/sda/0/a/third",
            &[
                ("X-Timestamp", &t),
                ("X-Account-Host", "127.0.0.1:1"),
                ("X-Account-Device", "sdb"),
                ("X-Account-Partition", "7"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    s.stop().await;
}

#[tokio::test]
async fn shard_range_put() {
    let s = start().await;
    assert_eq!(s.put_container("sh", 1).await, StatusCode::CREATED);
    let body = serde_json::json!([{
        "name": ".shards_a/sh-0", "timestamp": ts(2), "lower": "", "upper": "m",
        "object_count": 0, "bytes_used": 0, "meta_timestamp": ts(2), "deleted": 0,
        "state": 10, "state_timestamp": ts(2), "epoch": null, "reported": 0,
        "tombstones": -1
    }]);
    let r = s
        .client
        .put(s.url("/sda/0/a/sh"))
        .header("X-Timestamp", ts(2))
        .header("X-Backend-Record-Type", "shard")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let dir = db_dir(&s.devices, "a", "sh");
    let hash = dir.file_name().unwrap().to_str().unwrap().to_string();
    let broker = rowsync::db::ContainerBroker::open(dir.join(format!("{hash}.db"))).unwrap();
    let ranges = broker.get_all_shard_ranges().unwrap();
    assert_eq!(ranges.len(), 1);
    assert_eq!(ranges[0].upper, "m");
    s.stop().await;
}

#[tokio::test]
async fn corrupt_db_is_quarantined() {
    let s = start().await;
    assert_eq!(s.put_container("bad", 1).await, StatusCode::CREATED);
    let dir = db_dir(&s.devices, "a", "bad");
    let hash = dir.file_name().unwrap().to_str().unwrap().to_string();
    std::fs::write(dir.join(format!("{hash}.db")), vec![b'x'; 4096]).unwrap();
    assert_eq!(
        s.status("HEAD", "/sda/0/a/bad", &[]).await,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert!(!dir.exists());
    assert!(s
        .devices
        .join("sda/quarantined/containers")
        .join(&hash)
        .is_dir());
    assert_eq!(
        s.status("HEAD", "/sda/0/a/bad", &[]).await,
        StatusCode::NOT_FOUND
    );
    s.stop().await;
}

#[tokio::test]
async fn long_names_are_containers_that_do_not_exist() {
    // The container server leaves name lengths to the proxy, as Swift's
    // does: HEAD / GET / POST / DELETE of a long name answer 404 (a 400 made
    // the proxy turn an object PUT into a 503).
    let s = start().await;
    let long = "c".repeat(300);
    let path = format!("/sda/0/a/{long}");
    for method in ["HEAD", "GET", "POST", "DELETE"] {
        let r = s.req(method, &path, &[("X-Timestamp", &ts(1))]).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{method}");
    }
    let r = s.req("PUT", &path, &[("X-Timestamp", &ts(1))]).await;
    assert_eq!(r.status(), StatusCode::CREATED);
}
