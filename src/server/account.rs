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

use axum::extract::Request;
use axum::http::{request::Parts, HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value};

use super::listing::isoformat;
use super::reply::{self, blocking, default_body, Reply, Res};
use super::request::{
    config_true_value, constrain_limit, decode_path, header_latin1, header_true,
    is_sys_or_user_meta, listing_request, py_int_digits, quote, title_header, valid_internal_name,
    valid_timestamp, ContentTypeError, Params, ACCOUNT_LISTING_LIMIT, AUTO_CREATE_ACCOUNT_PREFIX,
};
use super::{metadata, AppState};
use crate::db::account::{AccountListingParams, PolicyStat};
use crate::db::core::ts_or_zero;
use crate::db::{files, Account, AccountBroker, AccountListingEntry, DbError, DbKind};
use crate::swift::Timestamp;

/// How long HEAD/GET wait for the pending file's lock before reading what
/// is committed (Swift's `pending_timeout=0.1, stale_reads_ok=True`).
const READ_PENDING_TIMEOUT: Duration = Duration::from_millis(100);

/// The pending timeout of a container update that carries `X-Trans-Id`.
const UPDATE_PENDING_TIMEOUT: Duration = Duration::from_secs(3);

// ------------------------------------------------------------------ replies

/// No body, with swob's default content type (`HTTPxxx()` of a status
/// without a default body).
fn empty(status: StatusCode) -> Reply {
    Reply::html(status, "")
}

fn bad_text(msg: impl Into<String>) -> Reply {
    Reply::text(StatusCode::BAD_REQUEST, msg)
}

fn bad_html(msg: impl Into<String>) -> Reply {
    Reply::html(StatusCode::BAD_REQUEST, msg)
}

fn insufficient_storage(device: &str) -> Reply {
    let status = StatusCode::INSUFFICIENT_STORAGE;
    Reply::html(status, default_body(status, Some(device)))
}

/// Maps a broker error to Swift's status: corrupt DBs are quarantined
/// (Swift's `possibly_quarantine`); bad input is a 400 and failures a 500
/// with the error as text; the others get swob's body.
fn db_err(e: DbError) -> Reply {
    if let DbError::Corrupt { path, .. } = &e {
        reply::quarantine(path);
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
    let segs = self::request::split_path(path, 3, max).map_err(bad_text)?;
    let get = |i: usize| segs.get(i).cloned().flatten();
    let (Some(device), Some(partition), Some(account)) = (get(0), get(1), get(2)) else {
        return Err(bad_text(format!("Invalid path: {}", quote(path))));
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
    valid_timestamp(headers).map_err(bad_text)
}

fn open(db: &Path) -> Res<AccountBroker> {
    AccountBroker::open(db).map_err(db_err)
}

/// The broker of an account that exists and is not deleted, or Swift's
/// 404. For HEAD and GET (`read`), pending updates wait for the lock only
/// briefly and are left out when it is busy (Swift's
/// `pending_timeout=0.1, stale_reads_ok=True`).
fn open_live(db: &Path, read: bool) -> Res<AccountBroker> {
    if !db.exists() {
        return Err(deleted_response(StatusCode::NOT_FOUND, "", None));
    }
    let mut broker = open(db)?;
    if read {
        broker.set_pending_timeout(READ_PENDING_TIMEOUT);
        broker.set_stale_reads_ok(true);
    }
    if broker.is_deleted().map_err(db_err)? {
        return Err(deleted_response(StatusCode::NOT_FOUND, "", Some(&broker)));
    }
    Ok(broker)
}

/// Swift's `_deleted_response`: the body as given, `charset=utf-8`, and
/// `X-Account-Status: Deleted` when the DB exists and is status-deleted.
fn deleted_response(status: StatusCode, body: &str, broker: Option<&AccountBroker>) -> Reply {
    let mut r = Reply::html(status, body);
    r.push_header("Content-Type", b"text/html; charset=utf-8");
    if broker.is_some_and(|b| b.is_status_deleted().unwrap_or(false)) {
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
    metadata::from_headers(headers, |lower| is_sys_or_user_meta("account", lower))
        .into_iter()
        .map(|(key, value)| MetaUpdate {
            key,
            value,
            timestamp: ts.internal(),
        })
        .collect()
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
        Some(old) => u.timestamp.as_str() > metadata::timestamp(old),
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
            metadata::item(value.clone(), u.timestamp.clone()),
        );
    }
    Ok(Some(merged))
}

/// Checks that the updates can be stored over `current`.
fn check_metadata(current: &Map<String, Value>, updates: &[MetaUpdate]) -> Res<()> {
    match merged_metadata(current, updates)? {
        Some(merged) => metadata::validate(&merged).map_err(bad_html),
        None => Ok(()),
    }
}

/// `update_metadata(..., validate_metadata=True)`.
fn apply_metadata(broker: &AccountBroker, updates: &[MetaUpdate]) -> Res<()> {
    if updates.is_empty() {
        return Ok(());
    }
    let current = broker.metadata().map_err(db_err)?;
    check_metadata(&current, updates)?;
    let map: Map<String, Value> = updates
        .iter()
        .filter_map(|u| {
            let value = u.value.clone()?;
            Some((u.key.clone(), metadata::item(value, u.timestamp.clone())))
        })
        .collect();
    broker.update_metadata(&map).map_err(db_err)?;
    Ok(())
}

// ----------------------------------------------------------------- handlers

pub async fn handle(state: Arc<AppState>, req: Request) -> Response {
    let (parts, _body) = req.into_parts();
    let Some(path) = decode_path(parts.uri.path()) else {
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
    let base = empty(StatusCode::OK);
    reply::options(base, &[], state.conf.replication_server, "account-server")
}

// PUT --------------------------------------------------------------------

async fn put(state: &Arc<AppState>, parts: &Parts, path: &str) -> Res<Reply> {
    let t = target(path, true)?;
    let dev = state.check_drive(&t.device, insufficient_storage)?;
    state.check_free_space(&t.device, insufficient_storage)?;
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
            py_int_digits(v).ok_or_else(|| bad_text(format!("Invalid {name} header")))
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
        if !override_deleted && broker.is_deleted().map_err(db_err)? {
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
            .map_err(db_err)?;
        Ok(empty(status))
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
            if broker.is_status_deleted().map_err(db_err)? {
                return Err(deleted_response(
                    StatusCode::FORBIDDEN,
                    "Recently deleted",
                    Some(&broker),
                ));
            }
            check_metadata(&broker.metadata().map_err(db_err)?, &updates)?;
            let created = broker.is_deleted().map_err(db_err)?;
            broker
                .update_put_timestamp(&ts.internal())
                .map_err(db_err)?;
            if broker.is_deleted().map_err(db_err)? {
                return Err(Reply::swob(StatusCode::CONFLICT));
            }
            (created, broker)
        };
        apply_metadata(&broker, &updates)?;
        Ok(if created {
            empty(StatusCode::CREATED)
        } else {
            Reply::swob(StatusCode::ACCEPTED)
        })
    })
    .await
}

// DELETE -----------------------------------------------------------------

async fn delete(state: &Arc<AppState>, parts: &Parts, path: &str) -> Res<Reply> {
    let t = target(path, false)?;
    let dev = state.check_drive(&t.device, insufficient_storage)?;
    let ts = req_timestamp(&parts.headers)?;
    let db = db_file(state, &dev, &t)?;
    blocking(move || {
        let broker = open_live(&db, false)?;
        broker.delete_db(&ts.internal()).map_err(db_err)?;
        Ok(deleted_response(StatusCode::NO_CONTENT, "", Some(&broker)))
    })
    .await
}

// POST -------------------------------------------------------------------

async fn post(state: &Arc<AppState>, parts: &Parts, path: &str) -> Res<Reply> {
    let t = target(path, false)?;
    let ts = req_timestamp(&parts.headers)?;
    let dev = state.check_drive(&t.device, insufficient_storage)?;
    state.check_free_space(&t.device, insufficient_storage)?;
    let db = db_file(state, &dev, &t)?;
    let updates = metadata_updates(&parts.headers, &ts);
    blocking(move || {
        let broker = open_live(&db, false)?;
        apply_metadata(&broker, &updates)?;
        Ok(empty(StatusCode::NO_CONTENT))
    })
    .await
}

// GET / HEAD -------------------------------------------------------------

/// The listing options of a GET's parameters, read in Swift's order
/// (prefix, delimiter, reverse, limit, marker, end_marker); `format` is
/// read with the content type.
fn listing_query(params: &Params) -> Res<AccountListingParams> {
    let get = |name: &str| params.get(name).map_err(bad_text);
    let prefix = get("prefix")?;
    let delimiter = get("delimiter")?;
    let reverse = get("reverse")?.is_some_and(|r| config_true_value(&r));
    let limit = constrain_limit(get("limit")?.as_deref(), ACCOUNT_LISTING_LIMIT)
        .map_err(|m| Reply::html(StatusCode::PRECONDITION_FAILED, m))?;
    let marker = get("marker")?;
    let end_marker = get("end_marker")?;
    let nonempty = |v: Option<String>| v.filter(|s| !s.is_empty());
    Ok(AccountListingParams {
        limit,
        marker: marker.unwrap_or_default(),
        end_marker: end_marker.unwrap_or_default(),
        prefix: nonempty(prefix),
        delimiter: nonempty(delimiter),
        reverse,
        allow_reserved: false,
    })
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
    for (key, value) in metadata::nonempty(metadata) {
        reply.push_header(key, value.as_bytes());
    }
}

async fn get_or_head(state: &Arc<AppState>, parts: &Parts, path: &str) -> Res<Reply> {
    let t = target(path, false)?;
    let (query, out_type) = listing_request(parts, listing_query, |e| match e {
        ContentTypeError::BadParam(m) => bad_text(m),
        ContentTypeError::BadAccept => bad_html("Invalid Accept header"),
        ContentTypeError::NotAcceptable => Reply::swob(StatusCode::NOT_ACCEPTABLE),
    })?;
    let dev = state.check_drive(&t.device, insufficient_storage)?;
    let db = db_file(state, &dev, &t)?;
    let allow_reserved = header_true(&parts.headers, "x-backend-allow-reserved-names");
    let state = state.clone();
    let account = t.account;
    blocking(move || {
        let broker = open_live(&db, true)?;
        let info = broker.get_info().map_err(db_err)?;
        let stats = broker.get_policy_stats().map_err(db_err)?;
        let metadata = broker.metadata().map_err(db_err)?;
        let content_type = format!("{out_type}; charset=utf-8");
        let Some(q) = query else {
            let mut r = empty(StatusCode::NO_CONTENT);
            account_headers(&mut r, &state, &info, &stats, &metadata);
            return Ok(r
                .header("Content-Type", content_type)
                .header("Content-Length", 0));
        };
        let entries = broker
            .list_containers(&AccountListingParams {
                allow_reserved,
                ..q
            })
            .map_err(db_err)?;
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
        let mut r = empty(status);
        account_headers(&mut r, &state, &info, &stats, &metadata);
        r.body = body;
        Ok(r.header("Content-Type", content_type))
    })
    .await
}
