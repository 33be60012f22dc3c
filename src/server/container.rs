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
use axum::http::{request::Parts, HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value};

use super::reply::{self, blocking, Reply, Res};
use super::request::{
    config_true_value, constrain_limit, decode_path, header_latin1, header_true, header_utf8,
    is_sys_or_user_meta, listing_request, py_int, valid_timestamp, ContentTypeError, Params,
    AUTO_CREATE_ACCOUNT_PREFIX, CONTAINER_LISTING_LIMIT,
};
use super::{metadata, split_path, AppState};
use crate::db::core::ts_or_zero;
use crate::db::shard::ShardRange;
use crate::db::{files, Container, ContainerBroker, ContainerInfo, DbError, DbKind, ListingParams};
use crate::swift::merge::ObjectItem;
use crate::swift::Timestamp;

use self::request::{validate_names, validate_sync_to, SHARDS_ACCOUNT_PREFIX};

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

/// The methods the container server answers beside those both servers
/// answer (Swift's `allowed_methods`).
const EXTRA_METHODS: [&str; 1] = ["UPDATE"];

// ------------------------------------------------------------------ replies

fn bad(msg: impl Into<String>) -> Reply {
    Reply::text(StatusCode::BAD_REQUEST, msg)
}

/// swob's `HTTPNotFound()`: its default HTML body, as Swift's container
/// server answers (the proxy passes it on to clients).
fn not_found() -> Reply {
    Reply::swob(StatusCode::NOT_FOUND)
}

fn conflict() -> Reply {
    Reply::swob(StatusCode::CONFLICT)
}

fn internal(msg: impl Into<String>) -> Reply {
    Reply::text(StatusCode::INTERNAL_SERVER_ERROR, msg)
}

fn not_mounted(device: &str) -> Reply {
    Reply::text(
        StatusCode::INSUFFICIENT_STORAGE,
        format!("Insufficient Storage: {device} is not mounted"),
    )
}

fn short_of_space(device: &str) -> Reply {
    Reply::text(
        StatusCode::INSUFFICIENT_STORAGE,
        format!("Insufficient Storage: {device} is short of free space"),
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
            reply::quarantine(path);
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
    valid_timestamp(headers).map_err(bad)
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

fn check_sync_to(state: &AppState, headers: &HeaderMap) -> Res<()> {
    if let Some(v) = header_latin1(headers, "x-container-sync-to") {
        if let Some(err) = validate_sync_to(&v, &ALLOWED_SYNC_HOSTS, &state.conf.swift_dir) {
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
        ContainerBroker::open(&self.db_file).map_err(db_err)
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
            None => account.starts_with(AUTO_CREATE_ACCOUNT_PREFIX),
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

/// Is a header (lower-case) one a container keeps as metadata?
fn is_metadata_header(lower: &str) -> bool {
    SAVE_HEADERS.contains(&lower) || is_sys_or_user_meta("container", lower)
}

/// The metadata a request sets: `{key: [value, timestamp]}` for the saved
/// headers and `X-Container-(Sys)Meta-*`, keys named as Swift names them.
fn metadata_updates(headers: &HeaderMap, ts: &Timestamp) -> Res<Map<String, Value>> {
    let mut out = Map::new();
    for (key, value) in metadata::from_headers(headers, is_metadata_header) {
        let value = value.ok_or_else(|| bad("Metadata must be valid UTF-8"))?;
        out.insert(key, metadata::item(value, ts.internal()));
    }
    Ok(out)
}

fn meta_value(v: &Value) -> &str {
    metadata::value(v).unwrap_or("")
}

/// Swift's `_update_metadata`: a changed `X-Container-Sync-To` resets the
/// sync points; the merged metadata must stay within the limits.
fn apply_metadata(broker: &ContainerBroker, updates: &Map<String, Value>) -> Res<()> {
    if updates.is_empty() {
        return Ok(());
    }
    let current = broker.metadata().map_err(db_err)?;
    let mut merged = current.clone();
    for (k, v) in updates {
        let take = match merged.get(k) {
            None => true,
            Some(old) => metadata::timestamp(v) > metadata::timestamp(old),
        };
        if take {
            merged.insert(k.clone(), v.clone());
        }
    }
    metadata::validate(&merged).map_err(bad)?;
    if let Some(new) = updates.get("X-Container-Sync-To") {
        let changed = current
            .get("X-Container-Sync-To")
            .is_none_or(|old| meta_value(old) != meta_value(new));
        if changed {
            broker.set_x_container_sync_points(-1, -1).map_err(db_err)?;
        }
    }
    broker.update_metadata(updates).map_err(db_err)?;
    Ok(())
}

/// Stored metadata as response headers (non-empty values only).
fn add_metadata_headers(reply: &mut Reply, md: &Map<String, Value>) {
    for (key, value) in metadata::nonempty(md) {
        if is_metadata_header(&key.to_ascii_lowercase()) {
            reply.push_header(key, value.as_bytes());
        }
    }
}

// ------------------------------------------------------------------- info

/// Swift's `gen_resp_headers`: backend timestamps always, counts and
/// client timestamps only for a live container.
fn info_headers(reply: &mut Reply, info: Option<&ContainerInfo>, deleted: bool) {
    let empty = ContainerInfo::default();
    let i = info.unwrap_or(&empty);
    let mut set = |k: &str, v: String| reply.push_header(k, v.as_bytes());
    set("X-Backend-Timestamp", ts_or_zero(&i.created_at).internal());
    set(
        "X-Backend-PUT-Timestamp",
        ts_or_zero(&i.put_timestamp).internal(),
    );
    set(
        "X-Backend-DELETE-Timestamp",
        ts_or_zero(&i.delete_timestamp).internal(),
    );
    set(
        "X-Backend-Status-Changed-At",
        ts_or_zero(&i.status_changed_at).internal(),
    );
    set(
        "X-Backend-Storage-Policy-Index",
        i.storage_policy_index.to_string(),
    );
    if !deleted {
        set("X-Container-Object-Count", i.count.to_string());
        set("X-Container-Bytes-Used", i.bytes_used.to_string());
        set("X-Timestamp", ts_or_zero(&i.created_at).normal());
        set("X-PUT-Timestamp", ts_or_zero(&i.put_timestamp).normal());
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
    let Some(path) = decode_path(parts.uri.path()) else {
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

/// swob's `HTTPMethodNotAllowed()`, as Swift's server answers an unknown
/// method: the default HTML body and no `Allow` header (OPTIONS lists the
/// methods).
fn method_not_allowed(_state: &AppState) -> Reply {
    Reply::swob(StatusCode::METHOD_NOT_ALLOWED)
}

fn options(state: &AppState) -> Reply {
    let base = Reply::new(StatusCode::OK);
    reply::options(
        base,
        &EXTRA_METHODS,
        state.conf.replication_server,
        "container-server",
    )
}

// PUT --------------------------------------------------------------------

async fn put(state: &Arc<AppState>, parts: &Parts, path: &str, body: Body) -> Res<Reply> {
    let t = target(path, true)?;
    let ts = req_timestamp(&parts.headers)?;
    check_sync_to(state, &parts.headers)?;
    let dev = state.check_drive(&t.device, not_mounted)?;
    state.check_free_space(&t.device, short_of_space)?;
    let loc = locate(state, &dev, &t)?;
    let start = std::time::Instant::now();
    let (step, result) = if t.obj.is_some() {
        ("PUT_object", put_object(state, parts, t, ts, loc).await)
    } else {
        let record_type = header_latin1(&parts.headers, "x-backend-record-type")
            .unwrap_or_default()
            .to_lowercase();
        if record_type == "shard" {
            let body = read_body(state, body).await?;
            ("PUT_shard", put_shard(state, parts, t, ts, loc, body).await)
        } else {
            (
                "PUT_container",
                put_container(state, parts, t, ts, loc).await,
            )
        }
    };
    // Swift times these helpers too (`@timing_stats()` on each).
    let status = match &result {
        Ok(r) | Err(r) => r.status.as_u16(),
    };
    state.metrics.step(step, status, start);
    result
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
        broker.put_object(&item).map_err(db_err)?;
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
            let recreated = broker.is_deleted().map_err(db_err)?;
            if recreated {
                broker
                    .set_storage_policy_index(new_policy, Some(&tsi))
                    .map_err(db_err)?;
            } else if let Some(req) = requested {
                let current = broker.get_info().map_err(db_err)?.storage_policy_index;
                if req != current {
                    return Err(conflict().header("X-Backend-Storage-Policy-Index", current));
                }
            }
            broker.update_put_timestamp(&tsi).map_err(db_err)?;
            if broker.is_deleted().map_err(db_err)? {
                return Err(conflict());
            }
            if recreated {
                broker.update_status_changed_at(&tsi).map_err(db_err)?;
            }
            created = recreated;
        }
        apply_metadata(&broker, &updates)?;
        let info = broker.get_info().map_err(db_err)?;
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
        broker.merge_shard_ranges(ranges).map_err(db_err)?;
        let info = broker.get_info().map_err(db_err)?;
        Ok(created_or_accepted(created, info.storage_policy_index))
    })
    .await
}

// DELETE -----------------------------------------------------------------

async fn delete(state: &Arc<AppState>, parts: &Parts, path: &str) -> Res<Reply> {
    let t = target(path, true)?;
    let ts = req_timestamp(&parts.headers)?;
    let dev = state.check_drive(&t.device, not_mounted)?;
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
            broker
                .delete_object(&obj, &raw_ts, policy)
                .map_err(db_err)?;
            Ok(Reply::new(StatusCode::NO_CONTENT))
        })
        .await;
    }
    let (existed, info) = blocking(move || {
        if !loc.exists() {
            return Err(not_found());
        }
        let broker = loc.open()?;
        if !broker.empty().map_err(db_err)? {
            return Err(conflict());
        }
        let info = broker.get_info().map_err(db_err)?;
        let existed =
            !ts_or_zero(&info.put_timestamp).is_zero() && !broker.is_deleted().map_err(db_err)?;
        broker.delete_db(&ts.internal()).map_err(db_err)?;
        if !broker.is_deleted().map_err(db_err)? {
            return Err(conflict());
        }
        let info = broker.get_info().map_err(db_err)?;
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
    let dev = state.check_drive(&t.device, not_mounted)?;
    state.check_free_space(&t.device, short_of_space)?;
    let loc = locate(state, &dev, &t)?;
    let h = &parts.headers;
    let touch = !header_true(h, "x-backend-no-timestamp-update");
    let updates = metadata_updates(h, &ts)?;
    blocking(move || {
        if !loc.exists() {
            return Err(not_found());
        }
        let broker = loc.open()?;
        if broker.is_deleted().map_err(db_err)? {
            return Err(not_found());
        }
        if touch {
            broker
                .update_put_timestamp(&ts.internal())
                .map_err(db_err)?;
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
    let dev = state.check_drive(&t.device, not_mounted)?;
    state.check_free_space(&t.device, short_of_space)?;
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
        broker.merge_items(items, None).map_err(db_err)?;
        Ok(Reply::new(StatusCode::ACCEPTED))
    })
    .await
}

// GET / HEAD -------------------------------------------------------------

/// The listing options of a GET's parameters
/// (`validate_container_params`); the caller adds the policy and flags.
fn listing_query(params: &Params) -> Res<ListingParams> {
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
    let limit = constrain_limit(get("limit")?.as_deref(), CONTAINER_LISTING_LIMIT)
        .map_err(|m| Reply::text(StatusCode::PRECONDITION_FAILED, m))?;
    Ok(ListingParams {
        limit,
        marker: marker.unwrap_or_default(),
        end_marker: end_marker.unwrap_or_default(),
        prefix,
        delimiter,
        path,
        reverse: reverse.is_some_and(|r| config_true_value(&r)),
        ..Default::default()
    })
}

async fn get_or_head(state: &Arc<AppState>, parts: &Parts, path: &str) -> Res<Reply> {
    let t = target(path, true)?;
    let (query, out_type) = listing_request(parts, listing_query, |e| match e {
        ContentTypeError::BadParam(m) => bad(m),
        ContentTypeError::BadAccept => bad("Invalid Accept header"),
        ContentTypeError::NotAcceptable => {
            Reply::text(StatusCode::NOT_ACCEPTABLE, "Not Acceptable")
        }
    })?;
    let dev = state.check_drive(&t.device, not_mounted)?;
    let loc = locate(state, &dev, &t)?;
    let record_type = header_latin1(&parts.headers, "x-backend-record-type")
        .unwrap_or_default()
        .to_lowercase();
    // GET_object checks the policy before looking at the DB's state.
    let requested = if query.is_some() && record_type != "shard" {
        policy_index(state, &parts.headers)?
    } else {
        None
    };
    let allow_reserved = header_true(&parts.headers, "x-backend-allow-reserved-names");
    let container = t.container.clone();
    let start = std::time::Instant::now();
    let result = blocking(move || {
        let not_found_with = |info: Option<&ContainerInfo>| {
            let mut r = not_found();
            info_headers(&mut r, info, true);
            r
        };
        if !loc.exists() {
            return Err(not_found_with(None));
        }
        let broker = loc.open()?;
        let info = broker.get_info().map_err(db_err)?;
        let deleted = info.is_deleted();
        if deleted {
            return Err(not_found_with(Some(&info)));
        }
        let metadata = broker.metadata().map_err(db_err)?;
        let content_type = format!("{out_type}; charset=utf-8");
        let last_modified = super::listing::last_modified(&ts_or_zero(&info.put_timestamp));
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
            storage_policy_index: policy,
            include_deleted: Some(false),
            allow_reserved,
            ..q
        };
        // While sharding, objects are listed from the retiring (oldest) DB.
        let entries = match loc.files.first().filter(|_| loc.files.len() > 1) {
            Some(old) => ContainerBroker::open(old)
                .map_err(db_err)?
                .list_objects(&params)
                .map_err(db_err)?,
            None => broker.list_objects(&params).map_err(db_err)?,
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
    .await;
    // An object listing went through Swift's `GET_object` (timed there).
    if let Ok(r) = &result {
        if r.headers
            .iter()
            .any(|(k, v)| k == "x-backend-record-type" && v == "object")
        {
            state.metrics.step("GET_object", r.status.as_u16(), start);
        }
    }
    result
}
