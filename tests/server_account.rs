//! The account API over real HTTP: an account server on 127.0.0.1:0 (real
//! SQLite files under a temp devices dir) driven with reqwest.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use reqwest::header::HeaderValue;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::sync::oneshot;

use rowsync::config::{Ini, ServerConf, ServerType, SwiftConf};
use rowsync::db::account::AccountListingParams;
use rowsync::db::{files, AccountBroker, AccountListingEntry};
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
    dir: tempfile::TempDir,
}

/// An account server whose devices dir holds `sda`.
async fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let devices = dir.path().join("srv");
    std::fs::create_dir_all(devices.join("sda")).unwrap();
    let text = format!(
        "[DEFAULT]\ndevices = {}\nmount_check = false\n\
         [app:account-server]\nuse = egg:swift#account\nfallocate_reserve = 0\n\
         log_requests = false\n",
        devices.display()
    );
    let ini = Ini::parse(&text, "account-server.conf").unwrap();
    let conf = ServerConf::from_ini(&ini, ServerType::Account).unwrap();
    assert_eq!(conf.server_type, ServerType::Account);
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
        dir,
    }
}

fn ts(n: u32) -> String {
    format!("{}.00000", 1_700_000_000 + n)
}

/// `Timestamp(ts(n)).isoformat`.
fn iso(n: u32) -> String {
    format!("2023-11-14T22:13:{:02}.000000", 20 + n)
}

struct Resp {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }

    fn h(&self, name: &str) -> String {
        self.header(name).unwrap_or_default()
    }

    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// The per-policy headers, sorted.
    fn policy_headers(&self) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = self
            .headers
            .iter()
            .filter(|(k, _)| k.as_str().starts_with("x-account-storage-policy-"))
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        v.sort();
        v
    }
}

impl Server {
    async fn req(&self, method: &str, path: &str, headers: &[(&str, &[u8])]) -> Resp {
        let mut r = self.client.request(
            Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{}{}", self.base, path),
        );
        for (k, v) in headers {
            r = r.header(*k, HeaderValue::from_bytes(v).unwrap());
        }
        let resp = r.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.unwrap().to_vec();
        Resp {
            status,
            headers,
            body,
        }
    }

    async fn call(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
        let h: Vec<(&str, &[u8])> = headers.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
        self.req(method, path, &h).await
    }

    async fn put_account(&self, account: &str, t: u32) -> Resp {
        self.call(
            "PUT",
            &format!("/sda/0/{account}"),
            &[("X-Timestamp", &ts(t))],
        )
        .await
    }

    async fn head(&self, account: &str) -> Resp {
        self.call("HEAD", &format!("/sda/0/{account}"), &[]).await
    }

    async fn get(&self, path: &str) -> Resp {
        self.call("GET", path, &[]).await
    }

    /// A container server's account update.
    #[allow(clippy::too_many_arguments)]
    async fn update(
        &self,
        account: &str,
        container: &str,
        put: &str,
        delete: &str,
        objects: &str,
        bytes: &str,
        policy: Option<&str>,
        extra: &[(&str, &str)],
    ) -> Resp {
        let mut h = vec![
            ("X-Put-Timestamp", put),
            ("X-Delete-Timestamp", delete),
            ("X-Object-Count", objects),
            ("X-Bytes-Used", bytes),
            ("X-Trans-Id", "tx123"),
        ];
        if let Some(p) = policy {
            h.push(("X-Backend-Storage-Policy-Index", p));
        }
        h.extend_from_slice(extra);
        self.call("PUT", &format!("/sda/0/{account}/{container}"), &h)
            .await
    }

    /// Lists `path` as plain text: the names.
    async fn names(&self, path: &str) -> Vec<String> {
        let r = self.get(path).await;
        assert!(r.status.is_success(), "{path}: {} {}", r.status, r.text());
        r.text().lines().map(str::to_string).collect()
    }

    fn db_path(&self, account: &str) -> PathBuf {
        db_path(&self.devices, account)
    }

    /// Stops the server; the returned dir keeps its files.
    async fn stop(mut self) -> tempfile::TempDir {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap().unwrap();
        }
        self.dir
    }
}

fn db_path(devices: &Path, account: &str) -> PathBuf {
    let swift = SwiftConf::from_str(SWIFT_CONF).unwrap();
    let hash = swift
        .hash_path_config()
        .hash_path(account, None, None)
        .unwrap();
    files::db_path(&devices.join("sda"), "accounts", 0, &hash)
}

const DELETED: &str = "Deleted";
const ACCEPTED_BODY: &str =
    "<html><h1>Accepted</h1><p>The request is accepted for processing.</p></html>";
const NOT_FOUND_BODY: &str =
    "<html><h1>Not Found</h1><p>The resource could not be found.</p></html>";

#[tokio::test]
async fn account_lifecycle() {
    let s = start().await;
    // Nothing there yet: 404 without X-Account-Status.
    let r = s.head("a").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.header("x-account-status"), None);
    let r = s.get("/sda/0/a").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.header("x-account-status"), None);
    assert_eq!(r.text(), "");
    let r = s
        .call("DELETE", "/sda/0/a", &[("X-Timestamp", &ts(1))])
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.header("x-account-status"), None);
    let r = s.call("POST", "/sda/0/a", &[("X-Timestamp", &ts(1))]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(
        !s.db_path("a").exists(),
        "reads and failed writes create nothing"
    );

    // PUT creates (201, no body), a second PUT is accepted (202).
    let r = s.put_account("a", 1).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.text(), "");
    assert!(s.db_path("a").is_file());
    let r = s.put_account("a", 2).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(r.text(), ACCEPTED_BODY);
    // An older PUT is accepted but does not move the put timestamp back.
    assert_eq!(s.put_account("a", 0).await.status, StatusCode::ACCEPTED);

    let r = s.head("a").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.h("x-account-container-count"), "0");
    assert_eq!(r.h("x-account-object-count"), "0");
    assert_eq!(r.h("x-account-bytes-used"), "0");
    assert_eq!(r.h("x-put-timestamp"), ts(2));
    let created = r.h("x-timestamp");
    assert_eq!(created.len(), 16, "normal form: {created}");
    assert!(created.as_str() > ts(0).as_str(), "created_at is now");
    assert_eq!(r.h("content-type"), "text/plain; charset=utf-8");
    assert_eq!(r.header("x-account-status"), None);
    assert!(r.policy_headers().is_empty(), "no policy stats yet");
    assert!(r.body.is_empty());
    let r = s
        .call("HEAD", "/sda/0/a", &[("Accept", "application/json")])
        .await;
    assert_eq!(r.h("content-type"), "application/json; charset=utf-8");

    // Empty listings: 204 as text, 200 as JSON and XML.
    let r = s.get("/sda/0/a").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.h("content-type"), "text/plain; charset=utf-8");
    assert_eq!(r.h("x-account-container-count"), "0");
    let r = s.get("/sda/0/a?format=json").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text(), "[]");
    let r = s.get("/sda/0/a?format=xml").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.h("content-type"), "application/xml; charset=utf-8");
    assert_eq!(
        r.text(),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<account name=\"a\">\n</account>"
    );

    // DELETE: 204 with X-Account-Status, then everything says deleted.
    let r = s
        .call("DELETE", "/sda/0/a", &[("X-Timestamp", &ts(3))])
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.h("x-account-status"), DELETED);
    for method in ["HEAD", "GET", "POST", "DELETE"] {
        let r = s.call(method, "/sda/0/a", &[("X-Timestamp", &ts(4))]).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{method}");
        assert_eq!(r.h("x-account-status"), DELETED, "{method}");
        assert_eq!(r.h("content-type"), "text/html; charset=utf-8", "{method}");
        assert_eq!(r.text(), "", "{method}");
    }
    // A PUT (even a newer one) cannot revive it.
    let r = s.put_account("a", 5).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.text(), "Recently deleted");
    assert_eq!(r.h("x-account-status"), DELETED);

    let b = AccountBroker::open(s.db_path("a")).unwrap();
    let info = b.get_info().unwrap();
    assert_eq!(info.status, "DELETED");
    assert_eq!(info.delete_timestamp, ts(3));
    assert_eq!(info.put_timestamp, ts(2));
    assert!(b.is_deleted().unwrap());
    s.stop().await;
}

#[tokio::test]
async fn container_updates_change_counts() {
    let s = start().await;
    let zero = "0";
    // No account: 404 (swob body, no X-Account-Status), nothing created.
    let r = s
        .update("a", "c1", &ts(1), zero, "1", "10", None, &[])
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.text(), NOT_FOUND_BODY);
    assert_eq!(r.header("x-account-status"), None);
    assert!(!s.db_path("a").exists());

    assert_eq!(s.put_account("a", 1).await.status, StatusCode::CREATED);
    let r = s
        .update("a", "c1", &ts(2), zero, "3", "30", None, &[])
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.text(), "");
    let r = s
        .update("a", "c2", &ts(2), zero, "2", "5", Some("1"), &[])
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    // A policy swift.conf does not know: counted, but no headers.
    let r = s
        .update("a", "c3", &ts(2), zero, "1", "1", Some("7"), &[])
        .await;
    assert_eq!(r.status, StatusCode::CREATED);

    let r = s.head("a").await;
    assert_eq!(r.h("x-account-container-count"), "3");
    assert_eq!(r.h("x-account-object-count"), "6");
    assert_eq!(r.h("x-account-bytes-used"), "36");
    assert_eq!(
        r.policy_headers(),
        vec![
            (
                "x-account-storage-policy-gold-bytes-used".into(),
                "30".into()
            ),
            (
                "x-account-storage-policy-gold-container-count".into(),
                "1".into()
            ),
            (
                "x-account-storage-policy-gold-object-count".into(),
                "3".into()
            ),
            (
                "x-account-storage-policy-silver-bytes-used".into(),
                "5".into()
            ),
            (
                "x-account-storage-policy-silver-container-count".into(),
                "1".into()
            ),
            (
                "x-account-storage-policy-silver-object-count".into(),
                "2".into()
            ),
        ]
    );
    // GET carries the same headers.
    let g = s.get("/sda/0/a?format=json").await;
    assert_eq!(g.policy_headers(), r.policy_headers());
    assert_eq!(g.h("x-account-bytes-used"), "36");

    // A newer report replaces the counts; so does an older one (Swift's
    // account rule), but the put timestamp stays the newest.
    let r = s
        .update("a", "c1", &ts(4), zero, "5", "50", None, &[])
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = s
        .update("a", "c1", &ts(3), zero, "4", "40", None, &[])
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = s.head("a").await;
    assert_eq!(r.h("x-account-container-count"), "3");
    assert_eq!(r.h("x-account-object-count"), "7");
    assert_eq!(r.h("x-account-bytes-used"), "46");
    let listing = s.get("/sda/0/a?format=json").await.json();
    assert_eq!(listing[0]["name"], "c1");
    assert_eq!(listing[0]["count"], 4);
    assert_eq!(listing[0]["last_modified"], iso(4));

    // The container is deleted: 204; it leaves the listing and the counts;
    // its policy keeps a row of zeros.
    let r = s
        .update("a", "c1", &ts(4), &ts(5), "0", "0", None, &[])
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.text(), "");
    let r = s.head("a").await;
    assert_eq!(r.h("x-account-container-count"), "2");
    assert_eq!(r.h("x-account-object-count"), "3");
    assert_eq!(r.h("x-account-bytes-used"), "6");
    assert_eq!(r.h("x-account-storage-policy-gold-container-count"), "0");
    assert_eq!(r.h("x-account-storage-policy-gold-object-count"), "0");
    assert_eq!(s.names("/sda/0/a").await, vec!["c2", "c3"]);

    // 204 vs 201 compares the header strings, as Swift does.
    let r = s
        .update("a", "c4", "1700000009", "1700000008.5", "0", "0", None, &[])
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = s
        .update("a", "c5", "1700000008.5", "1700000009", "1", "0", None, &[])
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "the string is greater");
    // ... but the row is not a tombstone while it has objects.
    assert_eq!(s.names("/sda/0/a").await, vec!["c2", "c3", "c4", "c5"]);

    // Internal accounts are created by their first container update; only
    // the account's prefix counts.
    let r = s
        .update(".internal", "c", &ts(1), zero, "0", "0", None, &[])
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert!(s.db_path(".internal").is_file());
    assert_eq!(
        s.head(".internal").await.h("x-account-container-count"),
        "1"
    );
    let r = s.update("b", ".c", &ts(1), zero, "0", "0", None, &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(!s.db_path("b").exists());

    // A deleted account takes updates only with X-Account-Override-Deleted.
    let r = s
        .call("DELETE", "/sda/0/a", &[("X-Timestamp", &ts(20))])
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = s
        .update("a", "c6", &ts(21), zero, "1", "1", None, &[])
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.header("x-account-status"), None);
    let r = s
        .update(
            "a",
            "c6",
            &ts(21),
            zero,
            "1",
            "1",
            None,
            &[("X-Account-Override-Deleted", "yes")],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let b = AccountBroker::open(s.db_path("a")).unwrap();
    let names: Vec<String> = b
        .list_containers(&AccountListingParams {
            limit: 100,
            ..Default::default()
        })
        .unwrap()
        .into_iter()
        .map(|e| match e {
            AccountListingEntry::Container { name, .. } => name,
            AccountListingEntry::Subdir(d) => d,
        })
        .collect();
    assert_eq!(names, vec!["c2", "c3", "c4", "c5", "c6"]);
    s.stop().await;
}

/// An account with containers `names` (all at ts(1), one object of 10
/// bytes each, policy 0).
async fn account_with(s: &Server, account: &str, names: &[&str]) {
    assert_eq!(s.put_account(account, 1).await.status, StatusCode::CREATED);
    for n in names {
        let path = percent_encoding::utf8_percent_encode(n, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
        let r = s
            .update(account, &path, &ts(1), "0", "1", "10", None, &[])
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{n}");
    }
}

#[tokio::test]
async fn listings_in_all_formats() {
    let s = start().await;
    account_with(&s, "a", &["b&<>\"", "c\u{e9}", "d-1", "d-2", "d-x-1", "e"]).await;
    let r = s
        .update("a", "f", &ts(2), "0", "3", "7", Some("1"), &[])
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = s
        .update("a", "g", &ts(2), "0", "0", "0", Some("9"), &[])
        .await;
    assert_eq!(r.status, StatusCode::CREATED);

    // Text.
    let r = s.get("/sda/0/a").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.h("content-type"), "text/plain; charset=utf-8");
    assert_eq!(r.text(), "b&<>\"\nc\u{e9}\nd-1\nd-2\nd-x-1\ne\nf\ng\n");
    assert_eq!(r.h("x-account-container-count"), "8");

    // JSON: Python's json.dumps (ASCII, key order, storage_policy only for
    // configured policies).
    let r = s.get("/sda/0/a?format=json&prefix=c").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.h("content-type"), "application/json; charset=utf-8");
    assert_eq!(
        r.text(),
        format!(
            "[{{\"name\": \"c\\u00e9\", \"count\": 1, \"bytes\": 10, \"last_modified\": \"{}\", \
             \"storage_policy\": \"gold\"}}]",
            iso(1)
        )
    );
    let all = s.get("/sda/0/a?format=json").await.json();
    assert_eq!(all.as_array().unwrap().len(), 8);
    assert_eq!(all[6]["name"], "f");
    assert_eq!(all[6]["storage_policy"], "silver");
    assert_eq!(all[6]["count"], 3);
    assert_eq!(all[6]["bytes"], 7);
    assert_eq!(all[6]["last_modified"], iso(2));
    assert_eq!(all[7]["name"], "g");
    assert!(
        all[7].get("storage_policy").is_none(),
        "policy 9 is unknown"
    );

    // XML (format=xml, or Accept), with ElementTree's escaping and layout.
    let r = s
        .call(
            "GET",
            "/sda/0/a?delimiter=-&end_marker=e",
            &[("Accept", "text/xml")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.h("content-type"), "text/xml; charset=utf-8");
    let c = |name: &str| {
        format!(
            "<container><name>{name}</name><count>1</count><bytes>10</bytes>\
             <last_modified>{}</last_modified><storage_policy>gold</storage_policy>\
             </container>\n",
            iso(1)
        )
    };
    assert_eq!(
        r.text(),
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<account name=\"a\">\n{}{}\
             <subdir name=\"d-\" />\n</account>",
            c("b&amp;&lt;&gt;\""),
            c("c\u{e9}")
        )
    );

    // Prefix, delimiter, marker, end_marker, reverse, limit.
    assert_eq!(
        s.names("/sda/0/a?prefix=d-").await,
        vec!["d-1", "d-2", "d-x-1"]
    );
    assert_eq!(
        s.names("/sda/0/a?prefix=d-&delimiter=-").await,
        vec!["d-1", "d-2", "d-x-"]
    );
    assert_eq!(
        s.names("/sda/0/a?delimiter=-").await,
        vec!["b&<>\"", "c\u{e9}", "d-", "e", "f", "g"]
    );
    assert_eq!(
        s.names("/sda/0/a?delimiter=-&marker=d-").await,
        vec!["e", "f", "g"],
        "the subdir equal to the marker is left out"
    );
    assert_eq!(
        s.names("/sda/0/a?delimiter=-&reverse=on&marker=e").await,
        vec!["d-", "c\u{e9}", "b&<>\""]
    );
    assert_eq!(
        s.names("/sda/0/a?marker=d-2&end_marker=f").await,
        vec!["d-x-1", "e"]
    );
    assert_eq!(
        s.names("/sda/0/a?reverse=true&limit=3").await,
        vec!["g", "f", "e"]
    );
    assert_eq!(
        s.names("/sda/0/a?reverse=yes&marker=d-2&end_marker=c")
            .await,
        vec!["d-1", "c\u{e9}"]
    );
    assert_eq!(s.names("/sda/0/a?limit=2").await, vec!["b&<>\"", "c\u{e9}"]);
    assert_eq!(s.names("/sda/0/a?limit=2&marker=e").await, vec!["f", "g"]);
    // Non-digit limits are ignored; limit=0 lists nothing (204).
    assert_eq!(s.names("/sda/0/a?limit=-1").await.len(), 8);
    assert_eq!(s.names("/sda/0/a?limit=abc").await.len(), 8);
    assert_eq!(
        s.get("/sda/0/a?limit=0").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(s.names("/sda/0/a?limit=10000").await.len(), 8);
    // Empty parameters count as unset.
    assert_eq!(
        s.names("/sda/0/a?prefix=&delimiter=&marker=").await.len(),
        8
    );
    // Nothing matches: 204 as text, [] as JSON.
    let r = s.get("/sda/0/a?prefix=zz").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.h("x-account-container-count"), "8");
    assert_eq!(s.get("/sda/0/a?prefix=zz&format=json").await.text(), "[]");
    // Non-ASCII parameters filter.
    assert_eq!(s.names("/sda/0/a?prefix=c%C3%A9").await, vec!["c\u{e9}"]);

    // Over the limit: 412, even for an account that does not exist.
    for path in ["/sda/0/a?limit=10001", "/sda/0/nope?limit=10001"] {
        let r = s.get(path).await;
        assert_eq!(r.status, StatusCode::PRECONDITION_FAILED, "{path}");
        assert_eq!(r.text(), "Maximum limit is 10000");
    }

    // Content negotiation.
    let ct = |accept: &'static str, query: &'static str| {
        let s = &s;
        async move {
            let r = s
                .call("GET", &format!("/sda/0/a{query}"), &[("Accept", accept)])
                .await;
            (r.status, r.h("content-type"))
        }
    };
    assert_eq!(
        ct("application/json", "?format=plain").await,
        (StatusCode::OK, "text/plain; charset=utf-8".into())
    );
    assert_eq!(
        ct("application/json", "").await,
        (StatusCode::OK, "application/json; charset=utf-8".into())
    );
    assert_eq!(
        ct("*/*", "").await,
        (StatusCode::OK, "text/plain; charset=utf-8".into())
    );
    assert_eq!(
        ct("application/*", "").await,
        (StatusCode::OK, "application/json; charset=utf-8".into())
    );
    assert_eq!(
        ct("application/xml*", "").await.0,
        StatusCode::NOT_ACCEPTABLE
    );
    assert_eq!(
        ct("application/plain", "").await.0,
        StatusCode::NOT_ACCEPTABLE
    );
    let r = s
        .call("GET", "/sda/0/a", &[("Accept", "text/plain;q=1;q=2")])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.text(), "Invalid Accept header");
    let r = s
        .call("HEAD", "/sda/0/a", &[("Accept", "application/plain")])
        .await;
    assert_eq!(r.status, StatusCode::NOT_ACCEPTABLE);
    s.stop().await;
}

#[tokio::test]
async fn delimiter_listing_like_swift() {
    // Swift's test_list_containers_iter: names 0-0000 .. 3-0004.
    let s = start().await;
    let mut names = Vec::new();
    for a in 0..4 {
        for b in 0..5 {
            names.push(format!("{a}-{b:04}"));
        }
    }
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    account_with(&s, "a", &refs).await;
    assert_eq!(
        s.names("/sda/0/a?delimiter=-").await,
        vec!["0-", "1-", "2-", "3-"]
    );
    assert_eq!(
        s.names("/sda/0/a?delimiter=-&reverse=1").await,
        vec!["3-", "2-", "1-", "0-"]
    );
    assert_eq!(s.names("/sda/0/a?delimiter=-&marker=2-").await, vec!["3-"]);
    assert_eq!(
        s.names("/sda/0/a?delimiter=-&marker=2-&reverse=t").await,
        vec!["1-", "0-"]
    );
    assert_eq!(
        s.names("/sda/0/a?prefix=2-&limit=2&marker=2-0001").await,
        vec!["2-0002", "2-0003"]
    );
    let json = s.get("/sda/0/a?delimiter=-&limit=2&format=json").await;
    assert_eq!(json.text(), "[{\"subdir\": \"0-\"}, {\"subdir\": \"1-\"}]");
    s.stop().await;
}

#[tokio::test]
async fn metadata_post_and_limits() {
    let s = start().await;
    // PUT with metadata on create; other headers are ignored, even bad ones.
    let r = s
        .req(
            "PUT",
            "/sda/0/a",
            &[
                ("X-Timestamp", ts(1).as_bytes()),
                ("X-Account-Meta-Color", b"blue"),
                ("X-Will-Not-Be-Saved", b"\xff"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(s.head("a").await.h("x-account-meta-color"), "blue");

    // POST: user and system metadata, 204, no put timestamp change.
    let r = s
        .call(
            "POST",
            "/sda/0/a",
            &[
                ("X-Timestamp", &ts(2)),
                ("x-account-meta-size", "Large \u{e9}"),
                ("X-Account-Sysmeta-Quota", "100"),
                ("X-Container-Meta-Nope", "x"),
                ("X-Account-Meta-", "too short"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.text(), "");
    let r = s.head("a").await;
    assert_eq!(r.h("x-account-meta-color"), "blue");
    assert_eq!(
        r.headers.get("x-account-meta-size").unwrap().as_bytes(),
        "Large \u{e9}".as_bytes()
    );
    assert_eq!(r.h("x-account-sysmeta-quota"), "100");
    assert_eq!(r.header("x-container-meta-nope"), None);
    assert_eq!(r.h("x-put-timestamp"), ts(1));
    // A POST without metadata is still 204.
    let r = s.call("POST", "/sda/0/a", &[("X-Timestamp", &ts(3))]).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);

    // Older values lose; an empty value hides the item.
    let r = s
        .call(
            "POST",
            "/sda/0/a",
            &[("X-Timestamp", &ts(1)), ("X-Account-Meta-Color", "red")],
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(s.head("a").await.h("x-account-meta-color"), "blue");
    let r = s
        .call(
            "POST",
            "/sda/0/a",
            &[("X-Timestamp", &ts(4)), ("X-Account-Meta-Color", "")],
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = s.head("a").await;
    assert_eq!(r.header("x-account-meta-color"), None);
    assert_eq!(r.h("x-account-sysmeta-quota"), "100");

    let stored = || {
        AccountBroker::open(s.db_path("a"))
            .unwrap()
            .metadata()
            .unwrap()
    };
    let before = stored();
    assert_eq!(
        before["X-Account-Meta-Color"],
        serde_json::json!(["", ts(4)])
    );
    assert_eq!(
        before["X-Account-Meta-Size"],
        serde_json::json!(["Large \u{e9}", ts(2)])
    );

    // Too many items: 400 and nothing stored. 89 more fit (90 with Size).
    let many: Vec<(String, String)> = (0..90)
        .map(|i| (format!("X-Account-Meta-K{i}"), "v".to_string()))
        .collect();
    let mut h: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let t5 = ts(5);
    h.push(("X-Timestamp", &t5));
    let r = s.call("POST", "/sda/0/a", &h).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.text(), "Too many metadata items; max 90");
    assert_eq!(stored(), before);
    let r = s.call("POST", "/sda/0/a", &h[1..]).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    assert_eq!(stored().len(), before.len() + 89);

    // Too large in total (sysmeta does not count): 400, nothing stored.
    let big = "x".repeat(4096);
    let r = s
        .call(
            "POST",
            "/sda/1/b",
            &[("X-Timestamp", &ts(6)), ("X-Account-Meta-Big", &big)],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "no such account");
    assert_eq!(s.put_account("b", 1).await.status, StatusCode::CREATED);
    let r = s
        .call(
            "POST",
            "/sda/0/b",
            &[("X-Timestamp", &ts(6)), ("X-Account-Meta-Big", &big)],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.text(), "Total metadata too large; max 4096");
    let small = "x".repeat(4093);
    let r = s
        .call(
            "POST",
            "/sda/0/b",
            &[
                ("X-Timestamp", &ts(6)),
                ("X-Account-Meta-Big", &small),
                ("X-Account-Sysmeta-Big", &big),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "3 + 4093 fits");
    assert_eq!(s.head("b").await.h("x-account-meta-big").len(), 4093);

    // Metadata that is not UTF-8: 400, nothing stored.
    let r = s
        .req(
            "POST",
            "/sda/0/b",
            &[
                ("X-Timestamp", ts(7).as_bytes()),
                ("X-Account-Meta-Bad", b"\xff\xfe"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.text(), "Metadata must be valid UTF-8");
    assert_eq!(s.head("b").await.header("x-account-meta-bad"), None);

    // A new account whose metadata cannot be stored is not created.
    let r = s
        .call(
            "PUT",
            "/sda/0/c",
            &[("X-Timestamp", &ts(1)), ("X-Account-Meta-Big", &big)],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(!s.db_path("c").exists());
    // ... nor does an existing one's put timestamp move.
    let r = s
        .call(
            "PUT",
            "/sda/0/b",
            &[("X-Timestamp", &ts(9)), ("X-Account-Meta-Big2", &big)],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(s.head("b").await.h("x-put-timestamp"), ts(1));

    // DELETE blanks every item.
    let r = s
        .call("DELETE", "/sda/0/b", &[("X-Timestamp", &ts(10))])
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let md = AccountBroker::open(s.db_path("b"))
        .unwrap()
        .metadata()
        .unwrap();
    assert!(!md.is_empty());
    for (k, v) in &md {
        assert_eq!(v, &serde_json::json!(["", ts(10)]), "{k}");
    }
    s.stop().await;
}

/// (method, path, headers, expected status, expected body or "").
type BadCase<'a> = (
    &'a str,
    &'a str,
    Vec<(&'a str, &'a [u8])>,
    StatusCode,
    &'a str,
);

#[tokio::test]
async fn bad_input_is_rejected_without_writing() {
    let s = start().await;
    let accounts = s.devices.join("sda").join("accounts");
    let t = ts(1);
    let cases: Vec<BadCase> = vec![
        (
            "PUT",
            "/sda/0",
            vec![],
            StatusCode::BAD_REQUEST,
            "Invalid path: /sda/0",
        ),
        (
            "PUT",
            "/sda/0/a/c/o",
            vec![],
            StatusCode::BAD_REQUEST,
            "Invalid path: /sda/0/a/c/o",
        ),
        ("HEAD", "/sda/0/a/c", vec![], StatusCode::BAD_REQUEST, ""),
        (
            "GET",
            "/sda/0/a/c",
            vec![],
            StatusCode::BAD_REQUEST,
            "Invalid path: /sda/0/a/c",
        ),
        (
            "POST",
            "/sda//a",
            vec![],
            StatusCode::BAD_REQUEST,
            "Invalid path: /sda//a",
        ),
        (
            "PUT",
            "/sda/0/a%ff",
            vec![],
            StatusCode::PRECONDITION_FAILED,
            "Invalid UTF8",
        ),
        (
            "PUT",
            "/sda/0/a",
            vec![],
            StatusCode::BAD_REQUEST,
            "Missing X-Timestamp header",
        ),
        (
            "PUT",
            "/sda/0/a",
            vec![("X-Timestamp", b"yesterday")],
            StatusCode::BAD_REQUEST,
            "Invalid X-Timestamp header",
        ),
        (
            "PUT",
            "/sda/0/a",
            vec![("X-Timestamp", b"-1")],
            StatusCode::BAD_REQUEST,
            "Invalid X-Timestamp header",
        ),
        (
            "PUT",
            "/sda/0/a",
            vec![("X-Timestamp", b"10000000000")],
            StatusCode::BAD_REQUEST,
            "Invalid X-Timestamp header",
        ),
        (
            "POST",
            "/sda/0/a",
            vec![],
            StatusCode::BAD_REQUEST,
            "Missing X-Timestamp header",
        ),
        (
            "DELETE",
            "/sda/0/a",
            vec![("X-Timestamp", b"x")],
            StatusCode::BAD_REQUEST,
            "Invalid X-Timestamp header",
        ),
        (
            "PUT",
            "/sda/0/a%00b",
            vec![("X-Timestamp", t.as_bytes())],
            StatusCode::BAD_REQUEST,
            "Invalid reserved-namespace account",
        ),
        (
            "PUT",
            "/sda/0/a/c%00d",
            vec![],
            StatusCode::BAD_REQUEST,
            "Invalid reserved-namespace container",
        ),
        (
            "PUT",
            "/nodev/0/a",
            vec![("X-Timestamp", t.as_bytes())],
            StatusCode::INSUFFICIENT_STORAGE,
            "<html><h1>Insufficient Storage</h1><p>There was not enough space to save the \
             resource. Drive: nodev</p></html>",
        ),
        (
            "GET",
            "/nodev/0/a",
            vec![],
            StatusCode::INSUFFICIENT_STORAGE,
            "",
        ),
        // Container updates with missing or malformed stats: 400, and an
        // internal account is not auto-created for them.
        (
            "PUT",
            "/sda/0/.auto/c",
            vec![("X-Put-Timestamp", t.as_bytes())],
            StatusCode::BAD_REQUEST,
            "Missing X-Delete-Timestamp header",
        ),
        (
            "PUT",
            "/sda/0/.auto/c",
            vec![
                ("X-Put-Timestamp", b"soon"),
                ("X-Delete-Timestamp", b"0"),
                ("X-Object-Count", b"0"),
                ("X-Bytes-Used", b"0"),
            ],
            StatusCode::BAD_REQUEST,
            "Invalid X-Put-Timestamp header",
        ),
        (
            "PUT",
            "/sda/0/.auto/c",
            vec![
                ("X-Put-Timestamp", t.as_bytes()),
                ("X-Delete-Timestamp", b"0"),
                ("X-Object-Count", b"many"),
                ("X-Bytes-Used", b"0"),
            ],
            StatusCode::BAD_REQUEST,
            "Invalid X-Object-Count header",
        ),
        (
            "PUT",
            "/sda/0/.auto/c",
            vec![
                ("X-Put-Timestamp", t.as_bytes()),
                ("X-Delete-Timestamp", b"0"),
                ("X-Object-Count", b"0"),
                ("X-Bytes-Used", b"0"),
                ("X-Backend-Storage-Policy-Index", b"gold"),
            ],
            StatusCode::BAD_REQUEST,
            "Invalid X-Backend-Storage-Policy-Index header",
        ),
        (
            "PUT",
            "/sda/0/.auto/c",
            vec![
                ("X-Put-Timestamp", t.as_bytes()),
                ("X-Delete-Timestamp", b"0"),
                ("X-Object-Count", b"0"),
                ("X-Bytes-Used", b"0"),
                ("X-Timestamp", b"bad"),
            ],
            StatusCode::BAD_REQUEST,
            "Invalid X-Timestamp header",
        ),
        // Query parameters that are not UTF-8.
        (
            "GET",
            "/sda/0/a?prefix=%ff",
            vec![],
            StatusCode::BAD_REQUEST,
            "\"prefix\" parameter not valid UTF-8",
        ),
        (
            "GET",
            "/sda/0/a?delimiter=%ff",
            vec![],
            StatusCode::BAD_REQUEST,
            "\"delimiter\" parameter not valid UTF-8",
        ),
        (
            "GET",
            "/sda/0/a?limit=%ff",
            vec![],
            StatusCode::BAD_REQUEST,
            "\"limit\" parameter not valid UTF-8",
        ),
        (
            "GET",
            "/sda/0/a?marker=%ff",
            vec![],
            StatusCode::BAD_REQUEST,
            "\"marker\" parameter not valid UTF-8",
        ),
        (
            "GET",
            "/sda/0/a?end_marker=%ff",
            vec![],
            StatusCode::BAD_REQUEST,
            "\"end_marker\" parameter not valid UTF-8",
        ),
        (
            "GET",
            "/sda/0/a?format=%ff",
            vec![],
            StatusCode::BAD_REQUEST,
            "\"format\" parameter not valid UTF-8",
        ),
        (
            "PATCH",
            "/sda/0/a",
            vec![("X-Timestamp", t.as_bytes())],
            StatusCode::METHOD_NOT_ALLOWED,
            "<html><h1>Method Not Allowed</h1><p>The method is not allowed for this \
             resource.</p></html>",
        ),
    ];
    for (method, path, headers, status, body) in cases {
        let r = s.req(method, path, &headers).await;
        assert_eq!(r.status, status, "{method} {path}: {}", r.text());
        if method != "HEAD" && !body.is_empty() {
            assert_eq!(r.text(), body, "{method} {path}");
        }
        assert!(
            !accounts.exists(),
            "{method} {path} wrote {}",
            accounts.display()
        );
    }
    // Unparseable input still checks the drive first for writes, and the
    // timestamp is checked before the drive for POST (Swift's orders).
    let r = s
        .call("POST", "/nodev/0/a", &[("X-Timestamp", "bad")])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = s
        .call("DELETE", "/nodev/0/a", &[("X-Timestamp", "bad")])
        .await;
    assert_eq!(r.status, StatusCode::INSUFFICIENT_STORAGE);

    // With an existing account, bad requests leave it as it was.
    assert_eq!(s.put_account("a", 1).await.status, StatusCode::CREATED);
    let b = AccountBroker::open(s.db_path("a")).unwrap();
    let before = b.get_replication_info().unwrap();
    for (method, path, headers) in [
        ("PUT", "/sda/0/a", vec![("X-Timestamp", "later")]),
        (
            "PUT",
            "/sda/0/a/c",
            vec![
                ("X-Put-Timestamp", "1700000002.00000"),
                ("X-Delete-Timestamp", "0"),
                ("X-Object-Count", "1"),
            ],
        ),
        (
            "PUT",
            "/sda/0/a/c",
            vec![
                ("X-Put-Timestamp", "1700000002.00000"),
                ("X-Delete-Timestamp", "0"),
                ("X-Object-Count", "1"),
                ("X-Bytes-Used", "1.5"),
            ],
        ),
        ("DELETE", "/sda/0/a", vec![]),
        ("POST", "/sda/0/a", vec![("X-Account-Meta-A", "b")]),
    ] {
        let r = s.call(method, path, &headers).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{method} {path}");
    }
    let after = b.get_replication_info().unwrap();
    assert_eq!(after, before);
    assert_eq!(after.max_row, -1, "no container row was ever added");
    let pending = files::pending_path(&s.db_path("a"));
    assert!(std::fs::metadata(&pending).map(|m| m.len()).unwrap_or(0) == 0);
    s.stop().await;
}

#[tokio::test]
async fn server_made_db_opens_with_a_fresh_broker() {
    let s = start().await;
    let r = s
        .call(
            "PUT",
            "/sda/0/acct",
            &[("X-Timestamp", &ts(1)), ("X-Account-Meta-Owner", "me")],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    for (c, spi, objs, bytes) in [("c1", "0", "2", "20"), ("c2", "1", "3", "30")] {
        let r = s
            .update("acct", c, &ts(2), "0", objs, bytes, Some(spi), &[])
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    let r = s
        .update("acct", "c3", &ts(2), &ts(3), "0", "0", None, &[])
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    // Read it through the server once (which commits the pending file),
    // then stop the server before opening the file ourselves.
    assert_eq!(s.head("acct").await.h("x-account-container-count"), "2");
    let path = s.db_path("acct");
    let devices = s.devices.clone();
    let _dir = s.stop().await;

    assert!(path.starts_with(devices.join("sda").join("accounts").join("0")));
    let b = AccountBroker::open(&path).unwrap();
    let info = b.get_replication_info().unwrap();
    assert_eq!(info.account, "acct");
    assert_eq!(info.put_timestamp, ts(1));
    assert_eq!(info.status_changed_at, ts(1));
    assert_eq!(info.delete_timestamp, "0");
    assert_eq!(info.count, 2);
    assert_eq!(info.object_count, 5);
    assert_eq!(info.bytes_used, 50);
    assert_eq!(info.status, "");
    assert!(info.id.ends_with("-sda"), "{}", info.id);
    assert_eq!(info.max_row, 3);
    assert_ne!(info.hash, "0".repeat(32));
    assert!(!b.is_deleted().unwrap());
    let md = b.metadata().unwrap();
    assert_eq!(md["X-Account-Meta-Owner"], serde_json::json!(["me", ts(1)]));
    let stats: Vec<(i64, Option<i64>, i64, i64)> = b
        .get_policy_stats()
        .unwrap()
        .into_iter()
        .map(|p| {
            (
                p.storage_policy_index,
                p.container_count,
                p.object_count,
                p.bytes_used,
            )
        })
        .collect();
    assert_eq!(stats, vec![(0, Some(1), 2, 20), (1, Some(1), 3, 30)]);
    let rows = b.get_items_since(-1, 10).unwrap();
    let mut summary: Vec<(String, String, String, i64, i64)> = rows
        .into_iter()
        .map(|r| {
            (
                r.name,
                r.put_timestamp,
                r.delete_timestamp,
                r.deleted,
                r.storage_policy_index,
            )
        })
        .collect();
    summary.sort();
    assert_eq!(
        summary,
        vec![
            ("c1".into(), ts(2), "0".into(), 0, 0),
            ("c2".into(), ts(2), "0".into(), 0, 1),
            ("c3".into(), ts(2), ts(3), 1, 0),
        ]
    );
}

#[tokio::test]
async fn options_and_methods() {
    let s = start().await;
    let r = s.call("OPTIONS", "/sda/0/a", &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.h("allow"),
        "DELETE, GET, HEAD, OPTIONS, POST, PUT, REPLICATE"
    );
    assert!(
        r.h("server").starts_with("account-server/"),
        "{}",
        r.h("server")
    );
    // OPTIONS needs no valid path.
    assert_eq!(s.call("OPTIONS", "/", &[]).await.status, StatusCode::OK);
    s.stop().await;
}

#[tokio::test]
async fn head_and_get_read_committed_rows_while_the_pending_file_is_locked() {
    let s = start().await;
    assert_eq!(s.put_account("a", 1).await.status, StatusCode::CREATED);
    let r = s.update("a", "c1", &ts(2), "0", "1", "1", None, &[]).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(s.head("a").await.h("x-account-container-count"), "1");
    let r = s
        .update("a", "c2", &ts(2), "0", "2", "2", Some("1"), &[])
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let db = s.db_path("a");
    let pending = files::pending_path(&db);
    assert!(std::fs::metadata(&pending).unwrap().len() > 0);

    // Someone holds the pending lock: HEAD answers from what is committed
    // (Swift's stale_reads_ok) instead of failing.
    let lock = rowsync::db::lock::lock_parent(&db, std::time::Duration::from_secs(1)).unwrap();
    let started = std::time::Instant::now();
    let r = s.head("a").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.h("x-account-container-count"), "1");
    assert_eq!(r.h("x-account-object-count"), "1");
    assert_eq!(
        r.policy_headers(),
        vec![
            (
                "x-account-storage-policy-gold-bytes-used".into(),
                "1".into()
            ),
            (
                "x-account-storage-policy-gold-container-count".into(),
                "1".into()
            ),
            (
                "x-account-storage-policy-gold-object-count".into(),
                "1".into()
            ),
        ]
    );
    // GET lists the committed containers too, rather than answering 503.
    let r = s.get("/sda/0/a?format=json").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.h("x-account-container-count"), "1");
    assert_eq!(
        r.json(),
        serde_json::json!([
            {"name": "c1", "count": 1, "bytes": 1, "last_modified": iso(2),
             "storage_policy": "gold"}
        ])
    );
    assert_eq!(s.names("/sda/0/a").await, vec!["c1"]);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    drop(lock);

    let r = s.head("a").await;
    assert_eq!(r.h("x-account-container-count"), "2");
    assert_eq!(r.h("x-account-object-count"), "3");
    assert_eq!(r.h("x-account-storage-policy-silver-object-count"), "2");
    assert_eq!(std::fs::metadata(&pending).unwrap().len(), 0);
    assert_eq!(s.names("/sda/0/a").await, vec!["c1", "c2"]);
    s.stop().await;
}
