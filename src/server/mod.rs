//! The HTTP server: Swift's container-server or account-server API (by the
//! config's kind) and REPLICATE on one port (tokio + axum). Requests are
//! routed by hand, as Swift does
//! (`/<device>/<partition>/<account>[/<container>[/<object>]]`,
//! `REPLICATE /<device>/<partition>/<hash>`); SQLite work runs on blocking
//! threads.

pub mod account;
pub mod container;
pub mod healthcheck;
mod listing;
mod metadata;
pub mod metrics;
pub mod recon;
pub mod replicate;
mod reply;
mod request;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;

use crate::config::{FallocateReserve, ServerConf, ServerType, SwiftConf};
use crate::replication::KindRpc;

/// Everything a request handler needs.
#[derive(Debug)]
pub struct AppState {
    pub conf: ServerConf,
    pub swift: SwiftConf,
    pub rpc: KindRpc,
    /// One pooled HTTP client for the server's own outbound calls (a
    /// container server's account updates), with the config's timeouts.
    pub http: reqwest::Client,
    /// statsd and Prometheus metrics (each when configured).
    pub metrics: metrics::ServerMetrics,
    /// Authenticated replication, when `replication_secret` is set.
    pub auth: Option<crate::replication::auth::Verifier>,
}

/// The client address of a request (set by [`serve`]).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

impl AppState {
    pub fn new(conf: ServerConf, swift: SwiftConf) -> Self {
        let rpc = KindRpc::new(
            conf.server_type,
            conf.devices.clone(),
            conf.mount_check,
            swift.hash_path_config(),
        );
        let secs = |f: f64| Duration::try_from_secs_f64(f).unwrap_or(Duration::from_secs(3));
        let http = reqwest::Client::builder()
            .connect_timeout(secs(conf.conn_timeout))
            .timeout(secs(conf.node_timeout))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .unwrap_or_default();
        let metrics = metrics::ServerMetrics::new(&conf);
        let auth = crate::replication::auth::Verifier::new(&conf.auth);
        AppState {
            conf,
            swift,
            rpc,
            http,
            metrics,
            auth,
        }
    }

    /// The device's path if it passes Swift's `check_drive`.
    pub fn device_path(&self, device: &str) -> Option<PathBuf> {
        crate::replication::rpc::check_drive(&self.conf.devices, device, self.conf.mount_check)
    }

    /// Swift's `check_drive`: the device's path, or `err(device)`.
    pub fn check_drive<E>(&self, device: &str, err: impl FnOnce(&str) -> E) -> Result<PathBuf, E> {
        self.device_path(device).ok_or_else(|| err(device))
    }

    /// `fs_has_free_space` with `fallocate_reserve` (before writes): `Ok`,
    /// or `err(device)`.
    pub fn check_free_space<E>(&self, device: &str, err: impl FnOnce(&str) -> E) -> Result<(), E> {
        if self.has_free_space(device) {
            Ok(())
        } else {
            Err(err(device))
        }
    }

    /// Does the device keep its `fallocate_reserve` free?
    pub fn has_free_space(&self, device: &str) -> bool {
        let path = self.conf.devices.join(device);
        match (free_space(&path), self.conf.fallocate_reserve) {
            (None, _) => true,
            (Some((free, _)), FallocateReserve::Bytes(b)) => free >= b,
            (Some((free, total)), FallocateReserve::Percent(p)) => {
                total == 0 || (free as f64 / total as f64) * 100.0 >= p
            }
        }
    }
}

/// `(free bytes for unprivileged users, total bytes)` of a filesystem.
fn free_space(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs writes into a zeroed struct we own; c is NUL-terminated.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return None;
    }
    let frsize = st.f_frsize as u64;
    Some((st.f_bavail as u64 * frsize, st.f_blocks as u64 * frsize))
}

/// A plain-text response.
pub fn text(status: StatusCode, msg: impl Into<String>) -> Response {
    let mut r = (status, msg.into()).into_response();
    r.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("text/plain; charset=UTF-8"),
    );
    r
}

/// Swift's `split_path(path, min, max, rest_with_last)`: the segments after
/// the leading `/`; with `rest_with_last` the last segment keeps any further
/// `/`, otherwise one trailing `/` is tolerated. Missing optional segments
/// are `None`. Device and partition (the first two) must not be `.`/`..`.
pub fn split_path(
    path: &str,
    min: usize,
    max: usize,
    rest_with_last: bool,
) -> Option<Vec<Option<String>>> {
    let (minsegs, maxsegs) = (min + 1, max + 1);
    let segs: Vec<&str> = path
        .splitn(maxsegs + usize::from(!rest_with_last), '/')
        .collect();
    let count = segs.len();
    if !segs[0].is_empty() || count < minsegs || segs[1..minsegs].iter().any(|s| s.is_empty()) {
        return None;
    }
    if rest_with_last {
        if count > maxsegs {
            return None;
        }
    } else if count > maxsegs + 1 || (count == maxsegs + 1 && !segs[maxsegs].is_empty()) {
        return None;
    }
    let mut out: Vec<Option<String>> = segs[1..count.min(maxsegs)]
        .iter()
        .map(|s| Some(s.to_string()))
        .collect();
    if !rest_with_last {
        // A trailing empty segment means "absent".
        for s in out.iter_mut() {
            if s.as_deref() == Some("") {
                *s = None;
            }
        }
    }
    out.resize(max, None);
    if out
        .iter()
        .take(2)
        .flatten()
        .any(|s| s == "." || s == ".." || s.contains('/'))
    {
        return None;
    }
    Some(out)
}

async fn route(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let start = std::time::Instant::now();
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    if path == "/metrics" && method == "GET" && state.metrics.prometheus_enabled() {
        return metrics::metrics_response(state.metrics.render(&state.rpc));
    }
    // The pipeline's middlewares (healthcheck, recon) come first, as in
    // Swift's paste pipeline.
    let swob_path = recon::swob_path(&req);
    let filtered = match healthcheck::handle(&state, &swob_path) {
        Some(r) => Some(r),
        None => recon::handle(&state, swob_path).await,
    };
    let resp = match (filtered, method.as_str()) {
        (Some(r), _) => r,
        (None, m) => {
            let resp = if m == "REPLICATE" {
                replicate::handle(state.clone(), req).await
            } else {
                match state.conf.server_type {
                    ServerType::Container => container::handle(state.clone(), req).await,
                    ServerType::Account => account::handle(state.clone(), req).await,
                }
            };
            state.metrics.request(m, resp.status().as_u16(), start);
            resp
        }
    };
    if state.conf.log_requests {
        tracing::info!(%method, %path, status = resp.status().as_u16(), "request");
    }
    resp
}

/// The router: every request goes through [`route`].
pub fn app(state: Arc<AppState>) -> Router {
    Router::new().fallback(route).with_state(state)
}

/// The most request headers accepted, as Swift's servers accept them:
/// `http.client`'s limit as Swift raises it, `MAX_HEADER_COUNT * 1.6` with
/// `MAX_HEADER_COUNT = MAX_META_COUNT (90) + 36` (a proxy's container PUT
/// carries up to 90 metadata headers besides its own).
pub const MAX_HEADER_COUNT: usize = 201;

/// Serves until `shutdown` resolves, then finishes in-flight requests.
/// HTTP/1.1 with keep-alive; a request over [`MAX_HEADER_COUNT`] headers
/// is answered 431 by the HTTP layer and logged.
pub async fn serve(
    state: Arc<AppState>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;
    use tower::ServiceExt;

    let router = app(state);
    // Dropped when shutdown starts: connections see it and close gracefully.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(());
    // Every connection task holds a clone; all gone = all finished.
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<()>(1);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(x) => x,
                Err(e) => {
                    // Out of descriptors and the like: back off, go on.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service =
            router
                .clone()
                .map_request(move |req: axum::http::Request<hyper::body::Incoming>| {
                    let mut req = req.map(Body::new);
                    req.extensions_mut().insert(PeerAddr(peer));
                    req
                });
        let mut stop = stop_rx.clone();
        let done = done_tx.clone();
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.max_headers(MAX_HEADER_COUNT);
            let conn =
                builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    conn.as_mut().await
                }
            };
            if let Err(e) = result {
                if e.is_parse_too_large() {
                    tracing::warn!(%peer, "request refused: {e} (more than {MAX_HEADER_COUNT} headers or a header too large)");
                } else if e.is_parse() {
                    tracing::warn!(%peer, "malformed request refused: {e}");
                } else {
                    tracing::debug!(%peer, "connection ended: {e}");
                }
            }
            drop(done);
        });
    }
    drop(listener);
    drop(stop_rx);
    drop(stop_tx);
    drop(done_tx);
    let _ = done_rx.recv().await;
    Ok(())
}

/// Binds `bind_ip:bind_port` from the config.
pub async fn bind(conf: &ServerConf) -> std::io::Result<tokio::net::TcpListener> {
    let ip: std::net::IpAddr = conf.bind_ip.parse().map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("bad bind_ip {:?}: {e}", conf.bind_ip),
        )
    })?;
    tokio::net::TcpListener::bind(SocketAddr::new(ip, conf.bind_port)).await
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// An empty body response with a status.
pub fn status(code: StatusCode) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = code;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_paths() {
        let s = |v: &[&str]| v.iter().map(|x| Some(x.to_string())).collect::<Vec<_>>();
        assert_eq!(
            split_path("/d/1/h", 3, 3, false).unwrap(),
            s(&["d", "1", "h"])
        );
        assert_eq!(
            split_path("/d/1/h/", 3, 3, false).unwrap(),
            s(&["d", "1", "h"])
        );
        assert_eq!(split_path("/d/1/h/x", 3, 3, false), None);
        assert_eq!(
            split_path("/d/1/a/c/o/x", 4, 5, true).unwrap(),
            s(&["d", "1", "a", "c", "o/x"])
        );
        let mut v = s(&["d", "1", "a", "c"]);
        v.push(None);
        assert_eq!(split_path("/d/1/a/c", 4, 5, true).unwrap(), v);
        assert_eq!(split_path("/d//h", 3, 3, false), None);
        assert_eq!(split_path("/../1/h", 3, 3, false), None);
        assert_eq!(split_path("/d/1", 3, 3, false), None);
        assert_eq!(split_path("d/1/h", 3, 3, false), None);
    }
}
