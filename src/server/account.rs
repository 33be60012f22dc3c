//! Swift's account API: `/<device>/<partition>/<account>[/<container>]`, as
//! Swift 2.38's `swift.account.server.AccountController` serves it: account
//! PUT/POST/DELETE/HEAD/GET (listings), container stat updates
//! (`PUT /<device>/<partition>/<account>/<container>` from the container
//! servers and updaters) and `OPTIONS`. `REPLICATE` is served elsewhere.
//!
//! Requests are parsed and checked on the async side, in Swift's order of
//! checks; every SQLite access runs in `spawn_blocking`. Unlike Swift, a
//! malformed container update (a missing or unparseable header) is a 400
//! rather than a 500, and it is rejected before an internal account is
//! auto-created; metadata that cannot be stored is rejected before the
//! account DB is created or its put timestamp moves.

mod listing;
mod request;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{request::Parts, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value};

use super::container::isoformat;
use super::AppState;
use crate::db::account::{AccountListingParams, PolicyStat};
use crate::db::core::{col_int, ts_or_zero};
use crate::db::{files, Account, AccountBroker, AccountListingEntry, DbError, DbKind};
use crate::swift::Timestamp;

use request::{
    config_true_value, header_bytes, header_latin1, is_account_meta, py_int, title_header,
    valid_internal_name, ContentTypeError, Params, ACCOUNT_LISTING_LIMIT,
    AUTO_CREATE_ACCOUNT_PREFIX, MAX_META_COUNT, MAX_META_OVERALL_SIZE,
};

/// Every method the account server answers (Swift's `allowed_methods`,
/// sorted).
const METHODS: [&str; 7] = [
    "DELETE",
    "GET",
    "HEAD",
    "OPTIONS",
    "POST",
    "PUT",
    "REPLICATE",
];

/// swob's default `Content-Type`.
const HTML_UTF8: &str = "text/html; charset=UTF-8";

/// How long HEAD/GET wait for the pending file's lock before reading what
/// is committed (Swift's `pending_timeout=0.1, stale_reads_ok=True`).
const READ_PENDING_TIMEOUT: Duration = Duration::from_millis(100);

/// The pending timeout of a container update that carries `X-Trans-Id`.
const UPDATE_PENDING_TIMEOUT: Duration = Duration::from_secs(3);

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
    /// An empty-bodied response with swob's default content type.
    fn new(status: StatusCode) -> Reply {
        Reply::html(status, "")
    }

    /// A response with swob's default body for the status.
    fn swob(status: StatusCode) -> Reply {
        Reply::html(status, request::default_body(status, None))
    }

    /// A body with swob's default content type (`HTTPxxx(body=...)`).
    fn html(status: StatusCode, body: impl Into<String>) -> Reply {
        let mut r = Reply {
            status,
            headers: Vec::new(),
            body: body.into().into_bytes(),
        };
        r.push_header("Content-Type", HTML_UTF8.as_bytes());
        r
    }

    /// A `text/plain` body (`HTTPxxx(body=..., content_type='text/plain')`).
    fn text(status: StatusCode, msg: impl Into<String>) -> Reply {
        let mut r = Reply::html(status, msg);
        r.push_header("Content-Type", b"text/plain; charset=UTF-8");
        r
    }

    /// Sets a header (replacing one of the same name); names or values
    /// that are not valid in HTTP are dropped.
    fn push_header(&mut self, name: &str, value: &[u8]) {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            self.headers.retain(|(k, _)| *k != n);
            self.headers.push((n, v));
        }
    }

    fn header(mut self, name: &str, value: impl ToString) -> Reply {
        self.push_header(name, value.to_string().as_bytes());
        self
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

fn bad_text(msg: impl Into<String>) -> Reply {
    Reply::text(StatusCode::BAD_REQUEST, msg)
}

fn bad_html(msg: impl Into<String>) -> Reply {
    Reply::html(StatusCode::BAD_REQUEST, msg)
}

fn insufficient_storage(device: &str) -> Reply {
    let status = StatusCode::INSUFFICIENT_STORAGE;
    Reply::html(status, request::default_body(status, Some(device)))
}

/// Maps a broker error to Swift's status: corrupt DBs are quarantined
/// (Swift's `possibly_quarantine`); bad input is a 400 and failures a 500
/// with the error as text; the others get swob's body.
fn db_err(e: DbError) -> Reply {
    if let DbError::Corrupt { path, .. } = &e {
        if let Err(q) = files::quarantine(path) {
            tracing::error!("could not quarantine {}: {q}", path.display());
        }
    }
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match status {
        StatusCode::BAD_REQUEST => bad_text(e.to_string()),
        StatusCode::INTERNAL_SERVER_ERROR => {
            tracing::error!("account request failed: {e}");
            Reply::text(status, e.to_string())
        }
        _ => {
            tracing::warn!("account request: {e}");
            Reply::swob(status)
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
            tracing::error!("account request task failed: {e}");
            Err(Reply::text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("internal error: {e}"),
            ))
        }
    }
}

// ----------------------------------------------------------------- requests

/// The account (and container) a request is about.
#[derive(Debug, Clone)]
struct Target {
    device: String,
    partition: String,
    account: String,
    container: Option<String>,
}

/// `split_and_validate_path(req, 3[, 4])` + `validate_internal_account` /
/// `validate_internal_container`. Swift checks no name lengths here.
fn target(path: &str, with_container: bool) -> Res<Target> {
    let max = if with_container { 4 } else { 3 };
    let segs = request::split_path(path, 3, max).map_err(bad_text)?;
    let get = |i: usize| segs.get(i).cloned().flatten();
    let (Some(device), Some(partition), Some(account)) = (get(0), get(1), get(2)) else {
        return Err(bad_text(format!("Invalid path: {}", request::quote(path))));
    };
    let container = get(3);
    if !valid_internal_name(&account) {
        return Err(bad_html("Invalid reserved-namespace account"));
    }
    if let Some(c) = &container {
        if !valid_internal_name(c) {
            return Err(bad_html("Invalid reserved-namespace container"));
        }
    }
    Ok(Target {
        device,
        partition,
        account,
        container,
    })
}

/// Swift's `check_drive`: the device's path, or 507.
fn check_drive(state: &AppState, device: &str) -> Res<PathBuf> {
    state
        .device_path(device)
        .ok_or_else(|| insufficient_storage(device))
}

/// `fs_has_free_space` with `fallocate_reserve` (PUT and POST only).
fn check_free_space(state: &AppState, device: &str) -> Res<()> {
    if state.has_free_space(device) {
        Ok(())
    } else {
        Err(insufficient_storage(device))
    }
}

/// The account DB file: `<device>/accounts/<part>/<suffix>/<hash>/<hash>.db`
/// (the partition as the path gives it, as Swift's `storage_directory`).
fn db_file(state: &AppState, device_path: &Path, t: &Target) -> Res<PathBuf> {
    let hash = state
        .swift
        .hash_path_config()
        .hash_path(&t.account, None, None)
        .map_err(|e| Reply::text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(match t.partition.parse::<u32>() {
        Ok(p) if p.to_string() == t.partition => {
            files::db_path(device_path, Account::DATADIR, p, &hash)
        }
        _ => {
            let suffix = &hash[hash.len().saturating_sub(3)..];
            device_path
                .join(Account::DATADIR)
                .join(&t.partition)
                .join(suffix)
                .join(&hash)
                .join(format!("{hash}.db"))
        }
    })
}

/// Swift's `valid_timestamp`.
fn req_timestamp(headers: &HeaderMap) -> Res<Timestamp> {
    match header_latin1(headers, "x-timestamp") {
        None => Err(bad_text("Missing X-Timestamp header")),
        Some(v) => Timestamp::parse(&v).map_err(|_| bad_text("Invalid X-Timestamp header")),
    }
}

fn open(db: &Path) -> Res<AccountBroker> {
    AccountBroker::open(db).or_reply()
}

/// Swift's `is_status_deleted()`: status `DELETED`, or a delete timestamp
/// greater than the put timestamp as stored strings (no pending commit, no
/// container count).
fn is_status_deleted(broker: &AccountBroker) -> crate::db::Result<bool> {
    let info = Account::read_info(broker)?;
    Ok(info.status == "DELETED" || info.delete_timestamp > info.put_timestamp)
}

/// Swift's `_deleted_response`: the body as given, `charset=utf-8`, and
/// `X-Account-Status: Deleted` when the DB exists and is status-deleted.
fn deleted_response(status: StatusCode, body: &str, broker: Option<&AccountBroker>) -> Reply {
    let mut r = Reply::html(status, body);
    r.push_header("Content-Type", b"text/html; charset=utf-8");
    if broker.is_some_and(|b| is_status_deleted(b).unwrap_or(false)) {
        r.push_header("X-Account-Status", b"Deleted");
    }
    r
}

// ----------------------------------------------------------------- metadata

/// One metadata header of a request: its stored name, its value (`None`
/// when not UTF-8) and the request's timestamp.
#[derive(Debug, Clone)]
struct MetaUpdate {
    key: String,
    value: Option<String>,
    timestamp: String,
}

/// The `X-Account-Meta-*` / `X-Account-Sysmeta-*` headers of a request,
/// named as Swift names them; other headers are ignored whatever they hold.
fn metadata_updates(headers: &HeaderMap, ts: &Timestamp) -> Vec<MetaUpdate> {
    let mut out = Vec::new();
    for name in headers.keys() {
        let lower = name.as_str();
        if !is_account_meta(lower) {
            continue;
        }
        let Some(raw) = header_bytes(headers, lower) else {
            continue;
        };
        out.push(MetaUpdate {
            key: title_header(lower),
            value: String::from_utf8(raw).ok(),
            timestamp: ts.internal(),
        });
    }
    out
}

fn meta_value(v: &Value) -> Option<&str> {
    v.get(0).and_then(Value::as_str)
}

fn meta_ts(v: &Value) -> &str {
    v.get(1).and_then(Value::as_str).unwrap_or("")
}

/// What `update_metadata` would store: `None` when no update is new or
/// newer (Swift returns early, without validating); `Err` when an update
/// that would be taken is not UTF-8.
fn merged_metadata(
    current: &Map<String, Value>,
    updates: &[MetaUpdate],
) -> Res<Option<Map<String, Value>>> {
    let newer = |u: &MetaUpdate| match current.get(&u.key) {
        None => true,
        Some(old) => u.timestamp.as_str() > meta_ts(old),
    };
    if !updates.iter().any(newer) {
        return Ok(None);
    }
    let mut merged = current.clone();
    for u in updates.iter().filter(|u| newer(u)) {
        let Some(value) = &u.value else {
            return Err(bad_html("Metadata must be valid UTF-8"));
        };
        merged.insert(
            u.key.clone(),
            Value::Array(vec![
                Value::String(value.clone()),
                Value::String(u.timestamp.clone()),
            ]),
        );
    }
    Ok(Some(merged))
}

/// `DatabaseBroker.validate_metadata` over the metadata as it would be.
fn validate_metadata(md: &Map<String, Value>) -> Res<()> {
    let mut count = 0usize;
    let mut size = 0usize;
    for (key, v) in md {
        let value = meta_value(v).unwrap_or("");
        if key.contains('\0') || value.contains('\0') {
            return Err(bad_html("Metadata must be valid UTF-8"));
        }
        let lower = key.to_lowercase();
        let stripped = lower
            .strip_prefix("x-account-meta-")
            .or_else(|| lower.strip_prefix("x-container-meta-"));
        if let (false, Some(k)) = (value.is_empty(), stripped) {
            count += 1;
            size += k.chars().count() + value.chars().count();
        }
    }
    if count > MAX_META_COUNT {
        return Err(bad_html(format!(
            "Too many metadata items; max {MAX_META_COUNT}"
        )));
    }
    if size > MAX_META_OVERALL_SIZE {
        return Err(bad_html(format!(
            "Total metadata too large; max {MAX_META_OVERALL_SIZE}"
        )));
    }
    Ok(())
}

/// Checks that the updates can be stored over `current`.
fn check_metadata(current: &Map<String, Value>, updates: &[MetaUpdate]) -> Res<()> {
    match merged_metadata(current, updates)? {
        Some(merged) => validate_metadata(&merged),
        None => Ok(()),
    }
}

/// `update_metadata(..., validate_metadata=True)`.
fn apply_metadata(broker: &AccountBroker, updates: &[MetaUpdate]) -> Res<()> {
    if updates.is_empty() {
        return Ok(());
    }
    let current = broker.metadata().or_reply()?;
    check_metadata(&current, updates)?;
    let map: Map<String, Value> = updates
        .iter()
        .filter_map(|u| {
            let value = u.value.clone()?;
            Some((
                u.key.clone(),
                Value::Array(vec![
                    Value::String(value),
                    Value::String(u.timestamp.clone()),
                ]),
            ))
        })
        .collect();
    broker.update_metadata(&map).or_reply()?;
    Ok(())
}

// ----------------------------------------------------------------- handlers

pub async fn handle(state: Arc<AppState>, req: Request) -> Response {
    let (parts, _body) = req.into_parts();
    let Some(path) = request::decode_path(parts.uri.path()) else {
        return Reply::html(StatusCode::PRECONDITION_FAILED, "Invalid UTF8").into_response();
    };
    let result = match parts.method.as_str() {
        "PUT" => put(&state, &parts, &path).await,
        "DELETE" => delete(&state, &parts, &path).await,
        "GET" | "HEAD" => get_or_head(&state, &parts, &path).await,
        "POST" => post(&state, &parts, &path).await,
        "OPTIONS" => Ok(options(&state)),
        _ => Err(Reply::swob(StatusCode::METHOD_NOT_ALLOWED)),
    };
    match result {
        Ok(r) | Err(r) => r.into_response(),
    }
}

fn options(state: &AppState) -> Reply {
    let allow = METHODS
        .iter()
        .filter(|m| state.conf.replication_server || **m != "REPLICATE")
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    Reply::new(StatusCode::OK)
        .header("Allow", allow)
        .header(
            "Server",
            format!("account-server/rowsync-{}", env!("CARGO_PKG_VERSION")),
        )
        .header("Content-Length", 0)
}

// PUT --------------------------------------------------------------------

async fn put(state: &Arc<AppState>, parts: &Parts, path: &str) -> Res<Reply> {
    let t = target(path, true)?;
    let dev = check_drive(state, &t.device)?;
    check_free_space(state, &t.device)?;
    let db = db_file(state, &dev, &t)?;
    match t.container.clone() {
        Some(container) => put_container(parts, t, container, db).await,
        None => put_account(parts, t, db).await,
    }
}

/// A container's stats as its container server reports them.
#[derive(Debug, Clone)]
struct ContainerUpdate {
    /// `X-Put-Timestamp` / `X-Delete-Timestamp` as sent (Swift stores the
    /// header strings, not normalised).
    put_timestamp: String,
    delete_timestamp: String,
    object_count: i64,
    bytes_used: i64,
    storage_policy_index: i64,
}

impl ContainerUpdate {
    fn from_headers(h: &HeaderMap) -> Res<ContainerUpdate> {
        let required = |name: &str| {
            header_latin1(h, name).ok_or_else(|| bad_text(format!("Missing {name} header")))
        };
        let timestamp = |name: &str| -> Res<String> {
            let v = required(name)?;
            Timestamp::parse(&v).map_err(|_| bad_text(format!("Invalid {name} header")))?;
            Ok(v)
        };
        let int = |name: &str, v: &str| {
            py_int(v).ok_or_else(|| bad_text(format!("Invalid {name} header")))
        };
        let put_timestamp = timestamp("X-Put-Timestamp")?;
        let delete_timestamp = timestamp("X-Delete-Timestamp")?;
        let object_count = int("X-Object-Count", &required("X-Object-Count")?)?;
        let bytes_used = int("X-Bytes-Used", &required("X-Bytes-Used")?)?;
        const SPI: &str = "X-Backend-Storage-Policy-Index";
        let storage_policy_index = match header_latin1(h, SPI) {
            None => 0,
            Some(v) => int(SPI, &v)?,
        };
        Ok(ContainerUpdate {
            put_timestamp,
            delete_timestamp,
            object_count,
            bytes_used,
            storage_policy_index,
        })
    }
}

/// `PUT_container`: a container's stats, through the pending file;
/// internal (`.`) accounts are created on the way.
async fn put_container(parts: &Parts, t: Target, container: String, db: PathBuf) -> Res<Reply> {
    let h = &parts.headers;
    let timestamp = if h.contains_key("x-timestamp") {
        req_timestamp(h)?
    } else {
        Timestamp::now()
    };
    let update = ContainerUpdate::from_headers(h)?;
    let pending_timeout = h
        .contains_key("x-trans-id")
        .then_some(UPDATE_PENDING_TIMEOUT);
    let override_deleted = header_latin1(h, "x-account-override-deleted")
        .is_some_and(|v| v.eq_ignore_ascii_case("yes"));
    // Swift compares the header strings.
    let status = if update.delete_timestamp > update.put_timestamp {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::CREATED
    };
    blocking(move || {
        if t.account.starts_with(AUTO_CREATE_ACCOUNT_PREFIX) && !db.exists() {
            match AccountBroker::create(&db, &t.account, Some(timestamp)) {
                Ok(_) | Err(DbError::AlreadyExists(_)) => {}
                Err(e) => return Err(db_err(e)),
            }
        }
        if !db.exists() {
            return Err(Reply::swob(StatusCode::NOT_FOUND));
        }
        let mut broker = open(&db)?;
        if let Some(timeout) = pending_timeout {
            broker.set_pending_timeout(timeout);
        }
        if !override_deleted && broker.is_deleted().or_reply()? {
            return Err(Reply::swob(StatusCode::NOT_FOUND));
        }
        broker
            .put_container(
                &container,
                &update.put_timestamp,
                &update.delete_timestamp,
                update.object_count,
                update.bytes_used,
                update.storage_policy_index,
            )
            .or_reply()?;
        Ok(Reply::new(status))
    })
    .await
}

/// `PUT_account`: creates the account DB, or moves its put timestamp
/// forward; then its metadata.
async fn put_account(parts: &Parts, t: Target, db: PathBuf) -> Res<Reply> {
    let ts = req_timestamp(&parts.headers)?;
    let updates = metadata_updates(&parts.headers, &ts);
    blocking(move || {
        let (created, broker) = if !db.exists() {
            // A new DB's metadata is exactly the request's.
            check_metadata(&Map::new(), &updates)?;
            match AccountBroker::create(&db, &t.account, Some(ts)) {
                Ok(b) => (true, b),
                Err(DbError::AlreadyExists(_)) => (false, open(&db)?),
                Err(e) => return Err(db_err(e)),
            }
        } else {
            let broker = open(&db)?;
            if is_status_deleted(&broker).or_reply()? {
                return Err(deleted_response(
                    StatusCode::FORBIDDEN,
                    "Recently deleted",
                    Some(&broker),
                ));
            }
            check_metadata(&broker.metadata().or_reply()?, &updates)?;
            let created = broker.is_deleted().or_reply()?;
            broker.update_put_timestamp(&ts.internal()).or_reply()?;
            if broker.is_deleted().or_reply()? {
                return Err(Reply::swob(StatusCode::CONFLICT));
            }
            (created, broker)
        };
        apply_metadata(&broker, &updates)?;
        Ok(if created {
            Reply::new(StatusCode::CREATED)
        } else {
            Reply::swob(StatusCode::ACCEPTED)
        })
    })
    .await
}

// DELETE -----------------------------------------------------------------

async fn delete(state: &Arc<AppState>, parts: &Parts, path: &str) -> Res<Reply> {
    let t = target(path, false)?;
    let dev = check_drive(state, &t.device)?;
    let ts = req_timestamp(&parts.headers)?;
    let db = db_file(state, &dev, &t)?;
    blocking(move || {
        if !db.exists() {
            return Err(deleted_response(StatusCode::NOT_FOUND, "", None));
        }
        let broker = open(&db)?;
        if broker.is_deleted().or_reply()? {
            return Err(deleted_response(StatusCode::NOT_FOUND, "", Some(&broker)));
        }
        broker.delete_db(&ts.internal()).or_reply()?;
        Ok(deleted_response(StatusCode::NO_CONTENT, "", Some(&broker)))
    })
    .await
}

// POST -------------------------------------------------------------------

async fn post(state: &Arc<AppState>, parts: &Parts, path: &str) -> Res<Reply> {
    let t = target(path, false)?;
    let ts = req_timestamp(&parts.headers)?;
    let dev = check_drive(state, &t.device)?;
    check_free_space(state, &t.device)?;
    let db = db_file(state, &dev, &t)?;
    let updates = metadata_updates(&parts.headers, &ts);
    blocking(move || {
        if !db.exists() {
            return Err(deleted_response(StatusCode::NOT_FOUND, "", None));
        }
        let broker = open(&db)?;
        if broker.is_deleted().or_reply()? {
            return Err(deleted_response(StatusCode::NOT_FOUND, "", Some(&broker)));
        }
        apply_metadata(&broker, &updates)?;
        Ok(Reply::new(StatusCode::NO_CONTENT))
    })
    .await
}

// GET / HEAD -------------------------------------------------------------

/// The listing options of a GET.
#[derive(Debug, Clone)]
struct ListingQuery {
    limit: usize,
    marker: String,
    end_marker: String,
    prefix: Option<String>,
    delimiter: Option<String>,
    reverse: bool,
}

/// The GET parameters, read in Swift's order (prefix, delimiter, reverse,
/// limit, marker, end_marker); `format` is read with the content type.
fn listing_query(params: &Params) -> Res<ListingQuery> {
    let get = |name: &str| params.get(name).map_err(bad_text);
    let prefix = get("prefix")?;
    let delimiter = get("delimiter")?;
    let reverse = get("reverse")?.is_some_and(|r| config_true_value(&r));
    // constrain_req_limit: only an all-digit limit counts.
    let mut limit = ACCOUNT_LISTING_LIMIT;
    if let Some(l) = get("limit")? {
        if !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()) {
            limit = match l.parse::<usize>() {
                Ok(n) if n <= ACCOUNT_LISTING_LIMIT => n,
                _ => {
                    return Err(Reply::html(
                        StatusCode::PRECONDITION_FAILED,
                        format!("Maximum limit is {ACCOUNT_LISTING_LIMIT}"),
                    ))
                }
            };
        }
    }
    let marker = get("marker")?;
    let end_marker = get("end_marker")?;
    let nonempty = |v: Option<String>| v.filter(|s| !s.is_empty());
    Ok(ListingQuery {
        limit,
        marker: marker.unwrap_or_default(),
        end_marker: end_marker.unwrap_or_default(),
        prefix: nonempty(prefix),
        delimiter: nonempty(delimiter),
        reverse,
    })
}

/// Commits the pending file unless its lock (or the DB) is busy; reads
/// then see what is committed (Swift's `stale_reads_ok`).
fn commit_stale_ok(broker: &AccountBroker) -> Res<()> {
    match broker.commit_pending() {
        Err(e) if e.status() == 503 => {
            tracing::debug!("account read without the pending updates: {e}");
            Ok(())
        }
        other => other.or_reply(),
    }
}

/// `get_policy_stats()`; when the pending file is busy, the committed
/// stats.
fn policy_stats(broker: &AccountBroker) -> Res<Vec<PolicyStat>> {
    match broker.get_policy_stats() {
        Err(e) if e.status() == 503 => committed_policy_stats(broker).or_reply(),
        other => other.or_reply(),
    }
}

/// `policy_stat` as committed (no pending commit); `container_count` is
/// `None` on DBs whose table predates it, no rows without the table.
fn committed_policy_stats(broker: &AccountBroker) -> crate::db::Result<Vec<PolicyStat>> {
    let conn = broker.connection();
    let sqlite = |e| DbError::Sqlite {
        path: broker.db_file().to_path_buf(),
        source: e,
    };
    for columns in [
        "storage_policy_index, container_count, object_count, bytes_used",
        "storage_policy_index, NULL, object_count, bytes_used",
    ] {
        let sql = format!("SELECT {columns} FROM policy_stat ORDER BY storage_policy_index");
        let mut q = match conn.prepare(&sql) {
            Ok(q) => q,
            Err(e) if e.to_string().contains("no such table") => return Ok(Vec::new()),
            Err(e) if e.to_string().contains("no such column") => continue,
            Err(e) => return Err(sqlite(e)),
        };
        let rows = q
            .query_map([], |r| {
                Ok(PolicyStat {
                    storage_policy_index: col_int(r, 0)?,
                    container_count: match r.get_ref(1)? {
                        rusqlite::types::ValueRef::Null => None,
                        _ => Some(col_int(r, 1)?),
                    },
                    object_count: col_int(r, 2)?,
                    bytes_used: col_int(r, 3)?,
                })
            })
            .map_err(sqlite)?;
        return rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sqlite);
    }
    Ok(Vec::new())
}


/// The configured policy of an index, if any: (name as configured).
fn policy_name(state: &AppState, index: i64) -> Option<String> {
    let idx = u32::try_from(index).ok()?;
    state.swift.policy(idx).map(|p| p.name.clone())
}

/// Swift's `get_response_headers`: counts, timestamps, per-policy stats of
/// configured policies, then every metadata item with a value.
fn account_headers(
    reply: &mut Reply,
    state: &AppState,
    info: &crate::db::AccountInfo,
    stats: &[PolicyStat],
    metadata: &Map<String, Value>,
) {
    let mut set = |k: &str, v: String| reply.push_header(k, v.as_bytes());
    set("X-Account-Container-Count", info.count.to_string());
    set("X-Account-Object-Count", info.object_count.to_string());
    set("X-Account-Bytes-Used", info.bytes_used.to_string());
    set("X-Timestamp", ts_or_zero(&info.created_at).normal());
    set("X-PUT-Timestamp", ts_or_zero(&info.put_timestamp).normal());
    for s in stats {
        let Some(name) = policy_name(state, s.storage_policy_index) else {
            continue;
        };
        let prefix = format!("X-Account-Storage-Policy-{name}-");
        if let Some(c) = s.container_count {
            set(
                &title_header(&format!("{prefix}container-count")),
                c.to_string(),
            );
        }
        set(
            &title_header(&format!("{prefix}object-count")),
            s.object_count.to_string(),
        );
        set(
            &title_header(&format!("{prefix}bytes-used")),
            s.bytes_used.to_string(),
        );
    }
    for (key, v) in metadata {
        match meta_value(v) {
            Some(value) if !value.is_empty() => reply.push_header(key, value.as_bytes()),
            _ => {}
        }
    }
}

async fn get_or_head(state: &Arc<AppState>, parts: &Parts, path: &str) -> Res<Reply> {
    let is_get = parts.method == Method::GET;
    let t = target(path, false)?;
    let params = Params::parse(parts.uri.query());
    let query = if is_get {
        Some(listing_query(&params)?)
    } else {
        None
    };
    let accept = header_latin1(&parts.headers, "accept");
    let out_type =
        request::listing_content_type(&params, accept.as_deref()).map_err(|e| match e {
            ContentTypeError::BadParam(m) => bad_text(m),
            ContentTypeError::BadAccept => bad_html("Invalid Accept header"),
            ContentTypeError::NotAcceptable => Reply::swob(StatusCode::NOT_ACCEPTABLE),
        })?;
    let dev = check_drive(state, &t.device)?;
    let db = db_file(state, &dev, &t)?;
    let allow_reserved = header_latin1(&parts.headers, "x-backend-allow-reserved-names")
        .is_some_and(|v| config_true_value(&v));
    let state = state.clone();
    let account = t.account;
    blocking(move || {
        if !db.exists() {
            return Err(deleted_response(StatusCode::NOT_FOUND, "", None));
        }
        let mut broker = open(&db)?;
        broker.set_pending_timeout(READ_PENDING_TIMEOUT);
        commit_stale_ok(&broker)?;
        if Account::is_deleted_now(&broker).or_reply()? {
            return Err(deleted_response(StatusCode::NOT_FOUND, "", Some(&broker)));
        }
        let info = Account::read_info(&broker).or_reply()?;
        let stats = policy_stats(&broker)?;
        let metadata = broker.metadata().or_reply()?;
        let content_type = format!("{out_type}; charset=utf-8");
        let Some(q) = query else {
            let mut r = Reply::new(StatusCode::NO_CONTENT);
            account_headers(&mut r, &state, &info, &stats, &metadata);
            return Ok(r
                .header("Content-Type", content_type)
                .header("Content-Length", 0));
        };
        let entries = broker
            .list_containers(&AccountListingParams {
                limit: q.limit,
                marker: q.marker,
                end_marker: q.end_marker,
                prefix: q.prefix,
                delimiter: q.delimiter,
                reverse: q.reverse,
                allow_reserved,
            })
            .or_reply()?;
        let records: Vec<listing::Record> = entries
            .iter()
            .map(|e| match e {
                AccountListingEntry::Subdir(name) => listing::Record::Subdir(name.clone()),
                AccountListingEntry::Container {
                    name,
                    object_count,
                    bytes_used,
                    put_timestamp,
                    storage_policy_index,
                } => listing::Record::Container {
                    name: name.clone(),
                    count: *object_count,
                    bytes: *bytes_used,
                    last_modified: isoformat(&ts_or_zero(put_timestamp)),
                    storage_policy: policy_name(&state, *storage_policy_index),
                },
            })
            .collect();
        let (status, body) = if out_type.ends_with("/xml") {
            (StatusCode::OK, listing::to_xml(&records, &account))
        } else if out_type.ends_with("/json") {
            (StatusCode::OK, listing::to_json(&records))
        } else if records.is_empty() {
            (StatusCode::NO_CONTENT, Vec::new())
        } else {
            (StatusCode::OK, listing::to_text(&records))
        };
        let mut r = Reply::new(status);
        account_headers(&mut r, &state, &info, &stats, &metadata);
        r.body = body;
        Ok(r.header("Content-Type", content_type))
    })
    .await
}
