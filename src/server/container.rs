//! Swift's container API: `/<device>/<partition>/<account>/<container>[/<object>]`,
//! as Swift 2.38's `swift.container.server.ContainerController` serves it
//! (container PUT/POST/DELETE/HEAD/GET, object-row PUT/DELETE from the
//! object servers, `UPDATE`, shard-range PUT, `OPTIONS`).
//!
//! Requests are parsed and checked on the async side; every SQLite access
//! runs in `spawn_blocking`. Account updates (the `X-Account-*` headers of
//! container PUT/DELETE) are sent afterwards with `reqwest`.

mod listing;
mod request;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{request::Parts, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value};

use super::{split_path, AppState};
use crate::db::shard::ShardRange;
use crate::db::{files, Container, ContainerBroker, ContainerInfo, DbError, DbKind, ListingParams};
use crate::swift::merge::ObjectItem;
use crate::swift::Timestamp;

use request::{
    config_true_value, header_bytes, header_latin1, header_utf8, is_sys_or_user_meta, py_int,
    title_header, validate_names, ContentTypeError, Params, CONTAINER_LISTING_LIMIT,
    MAX_META_COUNT, MAX_META_OVERALL_SIZE, SHARDS_ACCOUNT_PREFIX,
};

pub use listing::{http_date, isoformat};

/// Non-meta headers a container keeps as metadata (Swift's `save_headers`;
/// `x-versions-location` only with the deprecated `allow_versions`, which
/// rowsync does not support).
const SAVE_HEADERS: [&str; 4] = [
    "x-container-read",
    "x-container-write",
    "x-container-sync-key",
    "x-container-sync-to",
];

/// Hosts allowed in `X-Container-Sync-To` (Swift's `allowed_sync_hosts`
/// default).
const ALLOWED_SYNC_HOSTS: [&str; 1] = ["127.0.0.1"];

/// Every method the container server answers (Swift's `allowed_methods`).
const METHODS: [&str; 8] = [
    "DELETE",
    "GET",
    "HEAD",
    "OPTIONS",
    "POST",
    "PUT",
    "REPLICATE",
    "UPDATE",
];

// ------------------------------------------------------------------ replies

/// A response under construction; also the error type of the handlers.
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Vec<u8>,
}

type Res<T> = std::result::Result<T, Reply>;

impl Reply {
    fn new(status: StatusCode) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    fn text(status: StatusCode, msg: impl Into<String>) -> Reply {
        let mut r = Reply::new(status);
        r.body = msg.into().into_bytes();
        r.header("Content-Type", "text/plain; charset=UTF-8")
    }

    /// Adds a header; values that are not valid header values are dropped.
    fn header(mut self, name: &str, value: impl ToString) -> Reply {
        self.push_header(name, value.to_string().as_bytes());
        self
    }

    fn push_header(&mut self, name: &str, value: &[u8]) {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            self.headers.retain(|(k, _)| *k != n);
            self.headers.push((n, v));
        }
    }

    fn into_response(self) -> Response {
        let mut resp = Response::new(Body::from(self.body));
        *resp.status_mut() = self.status;
        let h = resp.headers_mut();
        for (k, v) in self.headers {
            h.insert(k, v);
        }
        resp
    }
}

fn bad(msg: impl Into<String>) -> Reply {
    Reply::text(StatusCode::BAD_REQUEST, msg)
}

fn not_found() -> Reply {
    Reply::text(StatusCode::NOT_FOUND, "Not Found")
}

fn conflict() -> Reply {
    Reply::text(StatusCode::CONFLICT, "Conflict")
}

fn internal(msg: impl Into<String>) -> Reply {
    Reply::text(StatusCode::INTERNAL_SERVER_ERROR, msg)
}

fn insufficient_storage(device: &str) -> Reply {
    Reply::text(
        StatusCode::INSUFFICIENT_STORAGE,
        format!("Insufficient Storage: {device} is not mounted"),
    )
}

/// Maps a broker error: corrupt DBs are quarantined (Swift's
/// `possibly_quarantine`) and answer 500; every other error answers the
/// status its kind maps to ([`DbError::status`]: bad input 400, a lock
/// timeout 503, a full disk 507, ...).
fn db_err(e: DbError) -> Reply {
    match &e {
        DbError::NotFound(_) => not_found(),
        DbError::Invalid(m) => bad(m.clone()),
        DbError::Corrupt { path, .. } => {
            tracing::error!("{e}");
            if let Err(q) = files::quarantine(path) {
                tracing::error!("could not quarantine {}: {q}", path.display());
            }
            internal(e.to_string())
        }
        _ => {
            let code =
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            if code.is_server_error() {
                tracing::error!("{e}");
            }
            Reply::text(code, e.to_string())
        }
    }
}

trait OrReply<T> {
    fn or_reply(self) -> Res<T>;
}

impl<T> OrReply<T> for crate::db::Result<T> {
    fn or_reply(self) -> Res<T> {
        self.map_err(db_err)
    }
}

/// Runs SQLite work on a blocking thread.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Res<T> + Send + 'static) -> Res<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("container request task failed: {e}");
            Err(internal(format!("internal error: {e}")))
        }
    }
}

// ----------------------------------------------------------------- requests

/// The container (and object) a request is about.
#[derive(Debug, Clone)]
struct Target {
    device: String,
    partition: u32,
    account: String,
    container: String,
    obj: Option<String>,
}

/// `split_and_validate_path` + `validate_internal_*` (+ name lengths and an
/// integer partition).
fn target(path: &str, with_obj: bool) -> Res<Target> {
    let segs = if with_obj {
        split_path(path, 4, 5, true)
    } else {
        split_path(path, 4, 4, false)
    };
    let invalid = || bad(format!("Invalid path: {path}"));
    let segs = segs.ok_or_else(invalid)?;
    let get = |i: usize| segs.get(i).cloned().flatten();
    let (Some(device), Some(part), Some(account), Some(container)) =
        (get(0), get(1), get(2), get(3))
    else {
        return Err(invalid());
    };
    let obj = get(4).filter(|o| !o.is_empty());
    let partition = part
        .parse::<u32>()
        .map_err(|_| bad(format!("Invalid partition: {part}")))?;
    validate_names(&account, &container, obj.as_deref()).map_err(bad)?;
    Ok(Target {
        device,
        partition,
        account,
        container,
        obj,
    })
}

/// Swift's `valid_timestamp`.
fn req_timestamp(headers: &HeaderMap) -> Res<Timestamp> {
    match header_latin1(headers, "x-timestamp") {
        None => Err(bad("Missing X-Timestamp header")),
        Some(v) => Timestamp::parse(&v).map_err(|_| bad("Invalid X-Timestamp header")),
    }
}

/// Swift's `get_and_validate_policy_index`.
fn policy_index(state: &AppState, headers: &HeaderMap) -> Res<Option<i64>> {
    const H: &str = "X-Backend-Storage-Policy-Index";
    let Some(raw) = header_latin1(headers, H) else {
        return Ok(None);
    };
    let Some(idx) = py_int(&raw) else {
        return Err(bad(format!("Invalid {H} '{raw}'")));
    };
    match u32::try_from(idx).ok().and_then(|i| state.swift.policy(i)) {
        Some(p) => Ok(Some(i64::from(p.index))),
        None => Err(bad(format!("Invalid {H} {idx}"))),
    }
}

fn check_device(state: &AppState, device: &str) -> Res<PathBuf> {
    state
        .device_path(device)
        .ok_or_else(|| insufficient_storage(device))
}

fn check_free_space(state: &AppState, device: &str) -> Res<()> {
    if state.has_free_space(device) {
        Ok(())
    } else {
        Err(Reply::text(
            StatusCode::INSUFFICIENT_STORAGE,
            format!("Insufficient Storage: {device} is short of free space"),
        ))
    }
}

fn check_sync_to(state: &AppState, headers: &HeaderMap) -> Res<()> {
    if let Some(v) = header_latin1(headers, "x-container-sync-to") {
        if let Some(err) = request::validate_sync_to(&v, &ALLOWED_SYNC_HOSTS, &state.conf.swift_dir)
        {
            return Err(bad(err));
        }
    }
    Ok(())
}

async fn read_body(state: &AppState, body: Body) -> Res<bytes::Bytes> {
    let limit = usize::try_from(state.conf.max_body_size).unwrap_or(usize::MAX);
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let too_big = std::error::Error::source(&e)
            .is_some_and(|s| s.to_string().contains("length limit"))
            || e.to_string().contains("length limit");
        if too_big {
            Reply::text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body over {limit} bytes"),
            )
        } else {
            bad(format!("cannot read body: {e}"))
        }
    })
}

/// Where a container's DB lives: the newest DB file of its hash dir, or the
/// legacy `<hash>.db` path when there is none yet.
#[derive(Debug, Clone)]
struct Location {
    /// All DB files, oldest first (more than one while sharding).
    files: Vec<PathBuf>,
    db_file: PathBuf,
}

impl Location {
    fn exists(&self) -> bool {
        self.db_file.is_file()
    }

    fn open(&self) -> Res<ContainerBroker> {
        ContainerBroker::open(&self.db_file).or_reply()
    }
}

fn locate(state: &AppState, device_path: &Path, t: &Target) -> Res<Location> {
    let hash = state
        .swift
        .hash_path_config()
        .hash_path(&t.account, Some(&t.container), None)
        .map_err(|e| internal(e.to_string()))?;
    let dir = files::hash_dir(device_path, Container::DATADIR, t.partition, &hash);
    let found = files::db_files(&dir, &hash);
    let db_file = found
        .last()
        .cloned()
        .unwrap_or_else(|| files::db_path(device_path, Container::DATADIR, t.partition, &hash));
    Ok(Location {
        files: found,
        db_file,
    })
}

/// Creates the DB; `Ok(false)` when it appeared meanwhile.
fn create_db(loc: &Location, t: &Target, ts: Timestamp, policy: i64) -> Res<bool> {
    match ContainerBroker::create(&loc.db_file, &t.account, &t.container, Some(ts), policy) {
        Ok(_) => Ok(true),
        Err(DbError::AlreadyExists(_)) => Ok(false),
        Err(e) => Err(db_err(e)),
    }
}

/// What `_should_autocreate` / `_maybe_autocreate` decide.
#[derive(Debug, Clone, Copy)]
struct AutoCreate {
    should: bool,
}

impl AutoCreate {
    fn of(account: &str, headers: &HeaderMap) -> AutoCreate {
        let should = match header_latin1(headers, "x-backend-auto-create").filter(|v| !v.is_empty())
        {
            Some(v) => config_true_value(&v),
            None if account.starts_with(SHARDS_ACCOUNT_PREFIX) => false,
            None => account.starts_with(request::AUTO_CREATE_ACCOUNT_PREFIX),
        };
        AutoCreate { should }
    }

    /// Creates the DB of an internal account when needed; 404 when the DB
    /// does not exist afterwards. Returns whether it was created.
    fn apply(self, loc: &Location, t: &Target, ts: Timestamp, policy: Option<i64>) -> Res<bool> {
        let mut created = false;
        if self.should && !loc.exists() {
            let Some(policy) = policy else {
                return Err(bad("X-Backend-Storage-Policy-Index header is required"));
            };
            created = create_db(loc, t, ts.with_offset(0), policy)?;
        }
        if !loc.exists() {
            return Err(not_found());
        }
        Ok(created)
    }
}

// ----------------------------------------------------------------- metadata

/// The metadata a request sets: `{key: [value, timestamp]}` for the saved
/// headers and `X-Container-(Sys)Meta-*`, keys named as Swift names them.
fn metadata_updates(headers: &HeaderMap, ts: &Timestamp) -> Res<Map<String, Value>> {
    let mut out = Map::new();
    for name in headers.keys() {
        let lower = name.as_str();
        if !(SAVE_HEADERS.contains(&lower) || is_sys_or_user_meta(lower)) {
            continue;
        }
        let Some(raw) = header_bytes(headers, lower) else {
            continue;
        };
        let value = String::from_utf8(raw).map_err(|_| bad("Metadata must be valid UTF-8"))?;
        out.insert(
            title_header(lower),
            Value::Array(vec![Value::String(value), Value::String(ts.internal())]),
        );
    }
    Ok(out)
}

fn meta_value(v: &Value) -> &str {
    v.get(0).and_then(Value::as_str).unwrap_or("")
}

fn meta_ts(v: &Value) -> &str {
    v.get(1).and_then(Value::as_str).unwrap_or("")
}

/// `DatabaseBroker.validate_metadata` on the metadata as it would be.
fn validate_metadata(md: &Map<String, Value>) -> Res<()> {
    let mut count = 0usize;
    let mut size = 0usize;
    for (key, v) in md {
        let value = meta_value(v);
        if key.contains('\0') || value.contains('\0') {
            return Err(bad("Metadata must be valid UTF-8"));
        }
        let lower = key.to_lowercase();
        let stripped = lower
            .strip_prefix("x-container-meta-")
            .or_else(|| lower.strip_prefix("x-account-meta-"));
        if let (false, Some(k)) = (value.is_empty(), stripped) {
            count += 1;
            size += k.chars().count() + value.chars().count();
        }
    }
    if count > MAX_META_COUNT {
        return Err(bad(format!(
            "Too many metadata items; max {MAX_META_COUNT}"
        )));
    }
    if size > MAX_META_OVERALL_SIZE {
        return Err(bad(format!(
            "Total metadata too large; max {MAX_META_OVERALL_SIZE}"
        )));
    }
    Ok(())
}

/// Swift's `_update_metadata`: a changed `X-Container-Sync-To` resets the
/// sync points; the merged metadata must stay within the limits.
fn apply_metadata(broker: &ContainerBroker, updates: &Map<String, Value>) -> Res<()> {
    if updates.is_empty() {
        return Ok(());
    }
    let current = broker.metadata().or_reply()?;
    let mut merged = current.clone();
    for (k, v) in updates {
        let take = match merged.get(k) {
            None => true,
            Some(old) => meta_ts(v) > meta_ts(old),
        };
        if take {
            merged.insert(k.clone(), v.clone());
        }
    }
    validate_metadata(&merged)?;
    if let Some(new) = updates.get("X-Container-Sync-To") {
        let changed = current
            .get("X-Container-Sync-To")
            .is_none_or(|old| meta_value(old) != meta_value(new));
        if changed {
            broker.set_x_container_sync_points(-1, -1).or_reply()?;
        }
    }
    broker.update_metadata(updates).or_reply()?;
    Ok(())
}

/// Stored metadata as response headers (non-empty values only).
fn add_metadata_headers(reply: &mut Reply, md: &Map<String, Value>) {
    for (key, v) in md {
        let value = meta_value(v);
        if value.is_empty() {
            continue;
        }
        let lower = key.to_ascii_lowercase();
        if SAVE_HEADERS.contains(&lower.as_str()) || is_sys_or_user_meta(&lower) {
            reply.push_header(key, value.as_bytes());
        }
    }
}

// ------------------------------------------------------------------- info

fn ts_of(s: &str) -> Timestamp {
    Timestamp::parse(s).unwrap_or(Timestamp::ZERO)
}

/// Swift's `gen_resp_headers`: backend timestamps always, counts and
/// client timestamps only for a live container.
fn info_headers(reply: &mut Reply, info: Option<&ContainerInfo>, deleted: bool) {
    let empty = ContainerInfo::default();
    let i = info.unwrap_or(&empty);
    let mut set = |k: &str, v: String| reply.push_header(k, v.as_bytes());
    set("X-Backend-Timestamp", ts_of(&i.created_at).internal());
    set(
        "X-Backend-PUT-Timestamp",
        ts_of(&i.put_timestamp).internal(),
    );
    set(
        "X-Backend-DELETE-Timestamp",
        ts_of(&i.delete_timestamp).internal(),
    );
    set(
        "X-Backend-Status-Changed-At",
        ts_of(&i.status_changed_at).internal(),
    );
    set(
        "X-Backend-Storage-Policy-Index",
        i.storage_policy_index.to_string(),
    );
    if !deleted {
        set("X-Container-Object-Count", i.count.to_string());
        set("X-Container-Bytes-Used", i.bytes_used.to_string());
        set("X-Timestamp", ts_of(&i.created_at).normal());
        set("X-PUT-Timestamp", ts_of(&i.put_timestamp).normal());
        set("X-Backend-Sharding-State", i.db_state.as_str().to_string());
    }
}

/// What the account servers are told after a container PUT or DELETE.
#[derive(Debug, Clone)]
struct AccountStats {
    put_timestamp: String,
    delete_timestamp: String,
    object_count: i64,
    bytes_used: i64,
    storage_policy_index: i64,
}

impl From<&ContainerInfo> for AccountStats {
    fn from(i: &ContainerInfo) -> Self {
        AccountStats {
            put_timestamp: i.put_timestamp.clone(),
            delete_timestamp: i.delete_timestamp.clone(),
            object_count: i.count,
            bytes_used: i.bytes_used,
            storage_policy_index: i.storage_policy_index,
        }
    }
}

const PATH_QUOTE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'_')
    .remove(b'.')
    .remove(b'-')
    .remove(b'~')
    .remove(b'/');

/// Swift's `account_update`: PUT `/<device>/<part>/<account>/<container>`
/// to every `X-Account-Host`/`X-Account-Device`. `Some(reply)` when the
/// request must fail (mismatched headers: 400; every account said 404).
async fn account_update(
    state: &AppState,
    parts: &Parts,
    t: &Target,
    stats: &AccountStats,
) -> Option<Reply> {
    let headers = &parts.headers;
    let split = |name: &str| -> Vec<String> {
        header_latin1(headers, name)
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_string())
            .collect()
    };
    let hosts = split("x-account-host");
    let devices = split("x-account-device");
    if hosts.len() != devices.len() {
        tracing::error!(
            "ERROR Account update failed: different numbers of hosts and devices in request: \
             {hosts:?} vs {devices:?}"
        );
        return Some(bad("Bad Request"));
    }
    let partition = header_latin1(headers, "x-account-partition").unwrap_or_default();
    if partition.is_empty() {
        return None;
    }
    let client = &state.http;
    let host_hdr = header_latin1(headers, "host").unwrap_or_default();
    let referer = format!("{} http://{host_hdr}{}", parts.method, parts.uri);
    let trans_id = header_latin1(headers, "x-trans-id").unwrap_or_else(|| "-".into());
    let override_deleted = header_latin1(headers, "x-account-override-deleted")
        .is_some_and(|v| v.eq_ignore_ascii_case("yes"));
    let mut answered_404 = 0usize;
    let count = hosts.len();
    for (host, device) in hosts.iter().zip(devices.iter()) {
        let Some((ip, port)) = host.rsplit_once(':') else {
            tracing::error!("ERROR account update failed with {host}/{device}: no port");
            continue;
        };
        let ip = if ip.contains(':') && !ip.starts_with('[') {
            format!("[{ip}]")
        } else {
            ip.to_string()
        };
        let path = format!("/{device}/{partition}/{}/{}", t.account, t.container);
        let url = format!(
            "http://{ip}:{port}{}",
            percent_encoding::utf8_percent_encode(&path, PATH_QUOTE)
        );
        let mut req = client
            .put(&url)
            .header("x-put-timestamp", &stats.put_timestamp)
            .header("x-delete-timestamp", &stats.delete_timestamp)
            .header("x-object-count", stats.object_count.to_string())
            .header("x-bytes-used", stats.bytes_used.to_string())
            .header("x-trans-id", &trans_id)
            .header(
                "X-Backend-Storage-Policy-Index",
                stats.storage_policy_index.to_string(),
            )
            .header(
                "user-agent",
                format!("container-server {}", std::process::id()),
            )
            .header("referer", &referer)
            .header("content-length", "0");
        if override_deleted {
            req = req.header("x-account-override-deleted", "yes");
        }
        match req.send().await {
            Ok(resp) => {
                let status = resp.status();
                let _ = resp.bytes().await;
                if status == StatusCode::NOT_FOUND {
                    answered_404 += 1;
                } else if !status.is_success() {
                    tracing::error!(
                        "ERROR Account update failed with {ip}:{port}/{device} (will retry \
                         later): Response {status}"
                    );
                }
            }
            Err(e) => tracing::error!(
                "ERROR account update failed with {ip}:{port}/{device} (will retry later): {e}"
            ),
        }
    }
    (count > 0 && answered_404 == count).then(not_found)
}

// ----------------------------------------------------------------- handlers

pub async fn handle(state: Arc<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Some(path) = request::decode_path(parts.uri.path()) else {
        return Reply::text(
            StatusCode::PRECONDITION_FAILED,
            "Invalid UTF8 or contains NULL",
        )
        .into_response();
    };
    let result = match parts.method.as_str() {
        "PUT" => put(&state, &parts, &path, body).await,
        "DELETE" => delete(&state, &parts, &path).await,
        "GET" | "HEAD" => get_or_head(&state, &parts, &path).await,
        "POST" => post(&state, &parts, &path).await,
        "UPDATE" => update(&state, &parts, &path, body).await,
        "OPTIONS" => Ok(options(&state)),
        _ => Err(method_not_allowed(&state)),
    };
    match result {
        Ok(r) | Err(r) => r.into_response(),
    }
}

fn allowed_methods(state: &AppState) -> String {
    METHODS
        .iter()
        .filter(|m| state.conf.replication_server || **m != "REPLICATE")
        .copied()
        .collect::<Vec<_>>()
        .join(", ")
}

fn method_not_allowed(state: &AppState) -> Reply {
    Reply::text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
        .header("Allow", allowed_methods(state))
}

fn options(state: &AppState) -> Reply {
    Reply::new(StatusCode::OK)
        .header("Allow", allowed_methods(state))
        .header(
            "Server",
            format!("container-server/rowsync-{}", env!("CARGO_PKG_VERSION")),
        )
        .header("Content-Length", 0)
}

// PUT --------------------------------------------------------------------

async fn put(state: &Arc<AppState>, parts: &Parts, path: &str, body: Body) -> Res<Reply> {
    let t = target(path, true)?;
    let ts = req_timestamp(&parts.headers)?;
    check_sync_to(state, &parts.headers)?;
    let dev = check_device(state, &t.device)?;
    check_free_space(state, &t.device)?;
    let loc = locate(state, &dev, &t)?;
    if t.obj.is_some() {
        return put_object(state, parts, t, ts, loc).await;
    }
    let record_type = header_latin1(&parts.headers, "x-backend-record-type")
        .unwrap_or_default()
        .to_lowercase();
    if record_type == "shard" {
        let body = read_body(state, body).await?;
        return put_shard(state, parts, t, ts, loc, body).await;
    }
    put_container(state, parts, t, ts, loc).await
}

/// `PUT_object`: an object row from an object server, through the pending
/// file.
async fn put_object(
    state: &Arc<AppState>,
    parts: &Parts,
    t: Target,
    ts: Timestamp,
    loc: Location,
) -> Res<Reply> {
    let h = &parts.headers;
    let policy = policy_index(state, h)?.unwrap_or(0);
    let size = match header_latin1(h, "x-size") {
        None => return Err(bad("Missing X-Size header")),
        Some(v) => py_int(&v).ok_or_else(|| bad(format!("Invalid X-Size header {v:?}")))?,
    };
    let text_header = |name: &str, label: &str| -> Res<Option<String>> {
        header_utf8(h, name).map_err(|_| bad(format!("{label} header is not valid UTF-8")))
    };
    let content_type = text_header("x-content-type", "X-Content-Type")?
        .ok_or_else(|| bad("Missing X-Content-Type header"))?;
    let etag = text_header("x-etag", "X-Etag")?.ok_or_else(|| bad("Missing X-Etag header"))?;
    let ts_header = |name: &str, label: &str| -> Res<Option<String>> {
        match text_header(name, label)? {
            None => Ok(None),
            Some(v) => match Timestamp::parse(&v) {
                Ok(_) => Ok(Some(v)),
                Err(_) => Err(bad(format!("Invalid {label} header {v:?}"))),
            },
        }
    };
    let ctype_timestamp = ts_header("x-content-type-timestamp", "X-Content-Type-Timestamp")?;
    let meta_timestamp = ts_header("x-meta-timestamp", "X-Meta-Timestamp")?;
    let auto = AutoCreate::of(&t.account, h);
    let Some(obj) = t.obj.clone() else {
        return Err(bad("Object name required"));
    };
    blocking(move || {
        auto.apply(&loc, &t, ts, Some(policy))?;
        let broker = loc.open()?;
        let mut item = ObjectItem::new(obj, ts.internal(), size, content_type, etag);
        item.storage_policy_index = policy;
        item.ctype_timestamp = ctype_timestamp;
        item.meta_timestamp = meta_timestamp;
        broker.put_object(&item).or_reply()?;
        Ok(Reply::new(StatusCode::CREATED))
    })
    .await
}

fn created_or_accepted(created: bool, policy: i64) -> Reply {
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::ACCEPTED
    };
    Reply::new(status).header("X-Backend-Storage-Policy-Index", policy)
}

/// `PUT_container`: `_update_or_create`, metadata, account update.
async fn put_container(
    state: &Arc<AppState>,
    parts: &Parts,
    t: Target,
    ts: Timestamp,
    loc: Location,
) -> Res<Reply> {
    let h = &parts.headers;
    let requested = policy_index(state, h)?;
    let new_policy = match requested {
        Some(p) => p,
        None => match header_latin1(h, "x-backend-storage-policy-default") {
            Some(v) => py_int(&v)
                .ok_or_else(|| bad(format!("Invalid X-Backend-Storage-Policy-Default '{v}'")))?,
            None => i64::from(state.swift.default_policy().index),
        },
    };
    let updates = metadata_updates(h, &ts)?;
    let tb = t.clone();
    let (created, info) = blocking(move || {
        let tsi = ts.internal();
        let mut created = !loc.exists() && create_db(&loc, &tb, ts, new_policy)?;
        let broker = loc.open()?;
        if !created {
            let recreated = broker.is_deleted().or_reply()?;
            if recreated {
                broker
                    .set_storage_policy_index(new_policy, Some(&tsi))
                    .or_reply()?;
            } else if let Some(req) = requested {
                let current = broker.get_info().or_reply()?.storage_policy_index;
                if req != current {
                    return Err(conflict().header("X-Backend-Storage-Policy-Index", current));
                }
            }
            broker.update_put_timestamp(&tsi).or_reply()?;
            if broker.is_deleted().or_reply()? {
                return Err(conflict());
            }
            if recreated {
                broker.update_status_changed_at(&tsi).or_reply()?;
            }
            created = recreated;
        }
        apply_metadata(&broker, &updates)?;
        let info = broker.get_info().or_reply()?;
        Ok((created, info))
    })
    .await?;
    if let Some(r) = account_update(state, parts, &t, &AccountStats::from(&info)).await {
        return Ok(r);
    }
    Ok(created_or_accepted(created, info.storage_policy_index))
}

/// `PUT_shard`: shard ranges from the sharder (stored and replicated;
/// rowsync does not shard).
async fn put_shard(
    state: &Arc<AppState>,
    parts: &Parts,
    t: Target,
    ts: Timestamp,
    loc: Location,
    body: bytes::Bytes,
) -> Res<Reply> {
    let h = &parts.headers;
    let requested = policy_index(state, h)?;
    let ranges: Vec<ShardRange> =
        serde_json::from_slice(&body).map_err(|e| bad(format!("Invalid body: {e}")))?;
    let updates = metadata_updates(h, &ts)?;
    let auto = AutoCreate::of(&t.account, h);
    blocking(move || {
        let created = auto.apply(&loc, &t, ts, requested)?;
        let broker = loc.open()?;
        apply_metadata(&broker, &updates)?;
        broker.merge_shard_ranges(ranges).or_reply()?;
        let info = broker.get_info().or_reply()?;
        Ok(created_or_accepted(created, info.storage_policy_index))
    })
    .await
}

// DELETE -----------------------------------------------------------------

async fn delete(state: &Arc<AppState>, parts: &Parts, path: &str) -> Res<Reply> {
    let t = target(path, true)?;
    let ts = req_timestamp(&parts.headers)?;
    let dev = check_device(state, &t.device)?;
    let loc = locate(state, &dev, &t)?;
    if let Some(obj) = t.obj.clone() {
        let h = &parts.headers;
        let policy = policy_index(state, h)?.unwrap_or(0);
        let auto = AutoCreate::of(&t.account, h);
        // Swift records the header as sent, not normalized.
        let raw_ts = header_latin1(h, "x-timestamp").unwrap_or_else(|| ts.internal());
        return blocking(move || {
            auto.apply(&loc, &t, ts, Some(policy))?;
            let broker = loc.open()?;
            broker.delete_object(&obj, &raw_ts, policy).or_reply()?;
            Ok(Reply::new(StatusCode::NO_CONTENT))
        })
        .await;
    }
    let (existed, info) = blocking(move || {
        if !loc.exists() {
            return Err(not_found());
        }
        let broker = loc.open()?;
        if !broker.empty().or_reply()? {
            return Err(conflict());
        }
        let info = broker.get_info().or_reply()?;
        let existed = !ts_of(&info.put_timestamp).is_zero() && !broker.is_deleted().or_reply()?;
        broker.delete_db(&ts.internal()).or_reply()?;
        if !broker.is_deleted().or_reply()? {
            return Err(conflict());
        }
        let info = broker.get_info().or_reply()?;
        Ok((existed, info))
    })
    .await?;
    if let Some(r) = account_update(state, parts, &t, &AccountStats::from(&info)).await {
        return Ok(r);
    }
    if existed {
        Ok(Reply::new(StatusCode::NO_CONTENT))
    } else {
        Err(not_found())
    }
}

// POST -------------------------------------------------------------------

async fn post(state: &Arc<AppState>, parts: &Parts, path: &str) -> Res<Reply> {
    let t = target(path, false)?;
    let ts = req_timestamp(&parts.headers)?;
    check_sync_to(state, &parts.headers)?;
    let dev = check_device(state, &t.device)?;
    check_free_space(state, &t.device)?;
    let loc = locate(state, &dev, &t)?;
    let h = &parts.headers;
    let touch =
        !header_latin1(h, "x-backend-no-timestamp-update").is_some_and(|v| config_true_value(&v));
    let updates = metadata_updates(h, &ts)?;
    blocking(move || {
        if !loc.exists() {
            return Err(not_found());
        }
        let broker = loc.open()?;
        if broker.is_deleted().or_reply()? {
            return Err(not_found());
        }
        if touch {
            broker.update_put_timestamp(&ts.internal()).or_reply()?;
        }
        apply_metadata(&broker, &updates)?;
        Ok(Reply::new(StatusCode::NO_CONTENT))
    })
    .await
}

// UPDATE -----------------------------------------------------------------

/// `UPDATE`: a JSON list of object rows merged directly (`merge_items`).
async fn update(state: &Arc<AppState>, parts: &Parts, path: &str, body: Body) -> Res<Reply> {
    let t = target(path, false)?;
    let ts = req_timestamp(&parts.headers)?;
    let dev = check_device(state, &t.device)?;
    check_free_space(state, &t.device)?;
    let requested = policy_index(state, &parts.headers)?;
    let loc = locate(state, &dev, &t)?;
    let body = read_body(state, body).await?;
    let items: Vec<ObjectItem> = serde_json::from_slice(&body).map_err(|e| bad(e.to_string()))?;
    for item in &items {
        Timestamp::parse(&item.created_at)
            .map_err(|_| bad(format!("invalid created_at {:?}", item.created_at)))?;
    }
    let auto = AutoCreate::of(&t.account, &parts.headers);
    blocking(move || {
        auto.apply(&loc, &t, ts, requested)?;
        let broker = loc.open()?;
        broker.merge_items(items, None).or_reply()?;
        Ok(Reply::new(StatusCode::ACCEPTED))
    })
    .await
}

// GET / HEAD -------------------------------------------------------------

/// The listing options of a GET (`validate_container_params`).
#[derive(Debug, Clone)]
struct ListingQuery {
    limit: usize,
    marker: String,
    end_marker: String,
    prefix: Option<String>,
    delimiter: Option<String>,
    path: Option<String>,
    reverse: bool,
}

fn listing_query(params: &Params) -> Res<ListingQuery> {
    let get = |name: &str| params.get(name).map_err(bad);
    let marker = get("marker")?;
    let end_marker = get("end_marker")?;
    let prefix = get("prefix")?;
    let delimiter = get("delimiter")?;
    let path = get("path")?;
    get("format")?;
    let reverse = get("reverse")?;
    get("states")?;
    get("includes")?;
    let mut limit = CONTAINER_LISTING_LIMIT;
    if let Some(l) = get("limit")? {
        if !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()) {
            limit = match l.parse::<usize>() {
                Ok(n) if n <= CONTAINER_LISTING_LIMIT => n,
                _ => {
                    return Err(Reply::text(
                        StatusCode::PRECONDITION_FAILED,
                        format!("Maximum limit is {CONTAINER_LISTING_LIMIT}"),
                    ))
                }
            };
        }
    }
    Ok(ListingQuery {
        limit,
        marker: marker.unwrap_or_default(),
        end_marker: end_marker.unwrap_or_default(),
        prefix,
        delimiter,
        path,
        reverse: reverse.is_some_and(|r| config_true_value(&r)),
    })
}

async fn get_or_head(state: &Arc<AppState>, parts: &Parts, path: &str) -> Res<Reply> {
    let is_get = parts.method == axum::http::Method::GET;
    let t = target(path, true)?;
    let params = Params::parse(parts.uri.query());
    let query = if is_get {
        Some(listing_query(&params)?)
    } else {
        None
    };
    let accept = header_latin1(&parts.headers, "accept");
    let out_type =
        request::listing_content_type(&params, accept.as_deref()).map_err(|e| match e {
            ContentTypeError::Bad(m) => bad(m),
            ContentTypeError::NotAcceptable => {
                Reply::text(StatusCode::NOT_ACCEPTABLE, "Not Acceptable")
            }
        })?;
    let dev = check_device(state, &t.device)?;
    let loc = locate(state, &dev, &t)?;
    let record_type = header_latin1(&parts.headers, "x-backend-record-type")
        .unwrap_or_default()
        .to_lowercase();
    // GET_object checks the policy before looking at the DB's state.
    let requested = if is_get && record_type != "shard" {
        policy_index(state, &parts.headers)?
    } else {
        None
    };
    let allow_reserved = header_latin1(&parts.headers, "x-backend-allow-reserved-names")
        .is_some_and(|v| config_true_value(&v));
    let container = t.container.clone();
    blocking(move || {
        let not_found_with = |info: Option<&ContainerInfo>| {
            let mut r = not_found();
            info_headers(&mut r, info, true);
            r
        };
        if !loc.exists() {
            return Err(not_found_with(None));
        }
        let broker = loc.open()?;
        let info = broker.get_info().or_reply()?;
        let deleted = info.is_deleted();
        if deleted {
            return Err(not_found_with(Some(&info)));
        }
        let metadata = broker.metadata().or_reply()?;
        let content_type = format!("{out_type}; charset=utf-8");
        let last_modified = listing::last_modified(&ts_of(&info.put_timestamp));
        let Some(q) = query else {
            let mut r = Reply::new(StatusCode::NO_CONTENT);
            info_headers(&mut r, Some(&info), false);
            add_metadata_headers(&mut r, &metadata);
            return Ok(r
                .header("Content-Type", content_type)
                .header("Content-Length", 0)
                .header("Last-Modified", last_modified));
        };
        let shard_state = matches!(info.db_state.as_str(), "sharding" | "sharded");
        if record_type == "shard" || (record_type == "auto" && shard_state) {
            return Err(Reply::text(
                StatusCode::NOT_IMPLEMENTED,
                "shard range listings are not supported by rowsync",
            ));
        }
        let policy = requested.unwrap_or(info.storage_policy_index);
        let params = ListingParams {
            limit: q.limit,
            marker: q.marker,
            end_marker: q.end_marker,
            prefix: q.prefix,
            delimiter: q.delimiter,
            path: q.path,
            storage_policy_index: policy,
            reverse: q.reverse,
            include_deleted: Some(false),
            allow_reserved,
            ..Default::default()
        };
        // While sharding, objects are listed from the retiring (oldest) DB.
        let entries = match loc.files.first().filter(|_| loc.files.len() > 1) {
            Some(old) => ContainerBroker::open(old)
                .or_reply()?
                .list_objects(&params)
                .or_reply()?,
            None => broker.list_objects(&params).or_reply()?,
        };
        let records: Vec<listing::Record> = entries.iter().map(listing::record_of).collect();
        let body = if out_type.ends_with("/xml") {
            listing::to_xml(&records, &container)
        } else if out_type.ends_with("/json") {
            listing::to_json(&records)
        } else {
            listing::to_text(&records)
        };
        let status = if body.is_empty() {
            StatusCode::NO_CONTENT
        } else {
            StatusCode::OK
        };
        let mut r = Reply::new(status);
        info_headers(&mut r, Some(&info), false);
        r.push_header("X-Backend-Record-Type", b"object");
        r.push_header(
            "X-Backend-Record-Storage-Policy-Index",
            policy.to_string().as_bytes(),
        );
        add_metadata_headers(&mut r, &metadata);
        r.body = body;
        Ok(r.header("Content-Type", content_type)
            .header("Last-Modified", last_modified))
    })
    .await
}
