//! `REPLICATE` requests: the replication RPC (`/<device>/<partition>/<hash>`
//! with a JSON list body) and rowsync's whole-DB upload
//! (`/<device>/tmp/<name>` with the DB file as the body).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use super::{split_path, status, text, AppState};
use crate::db::files::is_plain_name;
use crate::replication::auth::{AuthError, Verified};
use crate::replication::wire::{merge_rows_for_body_limit, MERGE_ROWS_HEADER};
use sha2::Digest;

/// The content type that marks a whole-DB upload.
pub use crate::replication::client::DB_UPLOAD_CONTENT_TYPE;

pub async fn handle(state: Arc<AppState>, req: Request) -> Response {
    if !state.conf.replication_server {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "REPLICATE is not allowed here",
        );
    }
    let path = req.uri().path().to_string();
    let verified = match authenticate(&state, &req, &path) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(segs) = split_path(&path, 3, 3, false) else {
        return text(StatusCode::BAD_REQUEST, format!("Invalid path: {path}"));
    };
    let [Some(device), Some(partition), Some(name)] =
        [segs[0].clone(), segs[1].clone(), segs[2].clone()]
    else {
        return text(StatusCode::BAD_REQUEST, format!("Invalid path: {path}"));
    };
    if state.device_path(&device).is_none() {
        return text(
            StatusCode::INSUFFICIENT_STORAGE,
            format!("{device} is not mounted"),
        );
    }
    if !state.has_free_space(&device) {
        return text(
            StatusCode::INSUFFICIENT_STORAGE,
            format!("{device} is short of free space"),
        );
    }
    if partition == "tmp" {
        return upload(state, &device, &name, req, verified).await;
    }
    let limit = state.conf.max_body_size as usize;
    if let Some(len) = content_length(&req) {
        if len > limit as u64 {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body over {limit} bytes"),
            );
        }
    }
    // Read up to the limit; a body over it answers 413 (a chunked body
    // gives no Content-Length to check first).
    let mut body = bytes::BytesMut::new();
    let mut stream = req.into_body().into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => return text(StatusCode::BAD_REQUEST, format!("cannot read body: {e}")),
        };
        if body.len() + chunk.len() > limit {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body over {limit} bytes"),
            );
        }
        body.extend_from_slice(&chunk);
    }
    if let Some(v) = &verified {
        if let Err(e) = v.check_body(&body) {
            return refuse(&state, &path, e);
        }
    }
    let st = state.clone();
    let started = std::time::Instant::now();
    let res =
        tokio::task::spawn_blocking(move || st.rpc.handle(&device, &partition, &name, &body)).await;
    match res {
        Ok((op, r)) => {
            let op_name = op.map_or("(unparsed)", |o| o.as_str());
            state.metrics.replicate_op(op_name, r.status, started);
            tracing::debug!(
                op = op_name,
                status = r.status,
                %path,
                ms = started.elapsed().as_secs_f64() * 1000.0,
                "REPLICATE"
            );
            let mut resp = Response::new(Body::from(r.body));
            *resp.status_mut() =
                StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            resp.headers_mut()
                .insert("content-type", HeaderValue::from_static(r.content_type));
            let rows = merge_rows_for_body_limit(state.conf.max_body_size);
            resp.headers_mut()
                .insert(MERGE_ROWS_HEADER, HeaderValue::from(rows));
            resp
        }
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("REPLICATE failed: {e}"),
        ),
    }
}

/// Authenticated replication: `Ok(None)` when it is off, the proof
/// (to check the body against) when the request passes, else the refusal.
#[allow(clippy::result_large_err)]
fn authenticate(state: &AppState, req: &Request, path: &str) -> Result<Option<Verified>, Response> {
    let Some(verifier) = &state.auth else {
        return Ok(None);
    };
    let peer = req.extensions().get::<super::PeerAddr>().map(|p| p.0.ip());
    let headers = req.headers();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    verifier
        .verify(
            req.method().as_str(),
            path,
            |name| headers.get(name).and_then(|v| v.to_str().ok()),
            peer,
            now,
        )
        .map(Some)
        .map_err(|e| {
            let peer = peer.map(|p| p.to_string()).unwrap_or_default();
            tracing::warn!(%peer, %path, reason = e.reason(), "REPLICATE refused: {e}");
            refuse(state, path, e)
        })
}

/// The answer to a request refused by authenticated replication.
fn refuse(state: &AppState, path: &str, e: AuthError) -> Response {
    state.metrics.auth_refused(e.reason());
    if e == AuthError::Digest {
        tracing::warn!(%path, "REPLICATE refused: {e}");
    }
    let code = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::FORBIDDEN);
    text(code, e.to_string())
}

fn content_length(req: &Request) -> Option<u64> {
    req.headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// Bytes buffered between writes of an uploaded DB file.
const UPLOAD_BUFFER: usize = 1 << 20;

/// Receives a whole DB file into `<device>/tmp/<name>`: streamed to a
/// hidden part file, size-limited, fsynced, then renamed into place.
async fn upload(
    state: Arc<AppState>,
    device: &str,
    name: &str,
    req: Request,
    verified: Option<Verified>,
) -> Response {
    let path = req.uri().path().to_string();
    let ctype = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ctype != DB_UPLOAD_CONTENT_TYPE {
        return text(
            StatusCode::BAD_REQUEST,
            format!("a DB upload needs Content-Type: {DB_UPLOAD_CONTENT_TYPE}"),
        );
    }
    if !is_plain_name(name) || name.starts_with('.') {
        return text(
            StatusCode::BAD_REQUEST,
            format!("invalid upload name {name:?}"),
        );
    }
    let limit = state.conf.max_db_transfer_size;
    if content_length(&req).is_some_and(|l| l > limit) {
        return text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("DB over {limit} bytes"),
        );
    }
    let dir = state.conf.devices.join(device).join("tmp");
    if let Err(e) = tokio::fs::create_dir_all(&dir).await {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot create {}: {e}", dir.display()),
        );
    }
    let part = dir.join(format!(".{name}.{}.part", uuid::Uuid::new_v4().simple()));
    let target = dir.join(name);
    let result = async {
        // Buffered: one blocking write per MiB, not one per body chunk.
        let mut file = tokio::io::BufWriter::with_capacity(
            UPLOAD_BUFFER,
            tokio::fs::File::create(&part).await?,
        );
        let mut stream = req.into_body().into_data_stream();
        let mut written: u64 = 0;
        // The digest is only checked for a signed upload.
        let mut digest = verified.as_ref().map(|_| sha2::Sha256::new());
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| std::io::Error::other(e.to_string()))?;
            if let Some(d) = digest.as_mut() {
                d.update(&chunk);
            }
            written += chunk.len() as u64;
            if written > limit {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::FileTooLarge,
                    "too large",
                ));
            }
            file.write_all(&chunk).await?;
        }
        if let (Some(v), Some(d)) = (&verified, digest) {
            if let Err(e) = v.check_digest(&hex::encode(d.finalize())) {
                return Err(std::io::Error::new(std::io::ErrorKind::PermissionDenied, e));
            }
        }
        file.flush().await?;
        let file = file.into_inner();
        file.sync_all().await?;
        drop(file);
        tokio::fs::rename(&part, &target).await?;
        let dir2 = dir.clone();
        tokio::task::spawn_blocking(move || crate::db::files::fsync_path(&dir2))
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok::<u64, std::io::Error>(written)
    }
    .await;
    match result {
        Ok(n) => {
            tracing::info!(file = %target.display(), bytes = n, "received DB file");
            status(StatusCode::CREATED)
        }
        Err(e) => {
            let _ = tokio::fs::remove_file(&part).await;
            if e.kind() == std::io::ErrorKind::FileTooLarge {
                text(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("DB over {limit} bytes"),
                )
            } else if e.kind() == std::io::ErrorKind::PermissionDenied {
                refuse(&state, &path, AuthError::Digest)
            } else if e.raw_os_error() == Some(libc::ENOSPC) {
                text(
                    StatusCode::INSUFFICIENT_STORAGE,
                    format!("{device} is full: {e}"),
                )
            } else {
                text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("upload failed: {e}"),
                )
            }
        }
    }
}
