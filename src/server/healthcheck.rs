//! Swift's healthcheck middleware (`swift/common/middleware/healthcheck.py`),
//! served when the config's `[pipeline:main]` has a `[filter:...]` with
//! `use = egg:swift#healthcheck`: a request for `/healthcheck` (any method,
//! any query) is answered `200 OK` with the body `OK`, or `503` with
//! `DISABLED BY FILE` while the filter's `disable_path` names an existing
//! file, both `text/plain`; every other path goes on to the server's API.

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;

use super::AppState;

/// `Some(response)` for `/healthcheck` when the pipeline has the filter;
/// `path` is the request's path as swob gives it
/// ([`super::recon::swob_path`]).
pub fn handle(state: &Arc<AppState>, path: &str) -> Option<Response> {
    let conf = state.conf.filters.healthcheck.as_ref()?;
    if path != "/healthcheck" {
        return None;
    }
    let disabled = !conf.disable_path.is_empty() && Path::new(&conf.disable_path).exists();
    let (status, body) = if disabled {
        (StatusCode::SERVICE_UNAVAILABLE, "DISABLED BY FILE")
    } else {
        (StatusCode::OK, "OK")
    };
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("text/plain"));
    Some(r)
}
