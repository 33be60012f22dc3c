//! The server's metrics: Swift's per-request statsd timings
//! (`timing_stats` in `swift/common/base_storage_server.py`, under
//! `[<prefix>.]<kind>-server.`), and the opt-in Prometheus `/metrics`
//! (`prometheus_metrics = true`) in the text exposition format. Also the
//! small `/metrics` listener the replicator daemon runs (replication/ knows
//! no HTTP server).

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::config::{ServerConf, ServerType};
use crate::replication::metrics::{latency_histogram, registry_for};
use crate::replication::statsd::Statsd;
use crate::replication::KindRpc;

/// The content type of the text exposition format.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodStatus {
    method: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabel {
    method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpStatus {
    op: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabel {
    op: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

/// The Prometheus side of a server.
struct Prom {
    registry: Registry,
    requests: Family<MethodStatus, Counter>,
    request_duration: Family<MethodLabel, Histogram>,
    ops: Family<OpStatus, Counter>,
    op_duration: Family<OpLabel, Histogram>,
    rows_received: Counter,
    cached_syncs: Counter,
    open_dbs: Gauge,
    auth_refused: Family<ReasonLabel, Counter>,
}

impl Prom {
    fn new(kind: ServerType) -> Prom {
        let mut registry = registry_for(kind.name(), "server");
        let requests = Family::<MethodStatus, Counter>::default();
        registry.register(
            "server_requests",
            "Requests answered, by method and status",
            requests.clone(),
        );
        let request_duration =
            Family::<MethodLabel, Histogram>::new_with_constructor(latency_histogram as fn() -> _);
        registry.register(
            "server_request_duration_seconds",
            "Request latency, by method",
            request_duration.clone(),
        );
        let ops = Family::<OpStatus, Counter>::default();
        registry.register(
            "replicate_ops",
            "REPLICATE ops served, by op and status",
            ops.clone(),
        );
        let op_duration =
            Family::<OpLabel, Histogram>::new_with_constructor(latency_histogram as fn() -> _);
        registry.register(
            "replicate_op_duration_seconds",
            "REPLICATE op latency, by op",
            op_duration.clone(),
        );
        let rows_received = Counter::default();
        registry.register(
            "replicate_rows_received",
            "Rows received through merge_items",
            rows_received.clone(),
        );
        let cached_syncs = Counter::default();
        registry.register(
            "replicate_syncs_cached",
            "sync ops answered from the file's stamp, without opening the DB",
            cached_syncs.clone(),
        );
        let open_dbs = Gauge::default();
        registry.register(
            "open_dbs",
            "DBs held open by the REPLICATE receiver",
            open_dbs.clone(),
        );
        let auth_refused = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "auth_refused",
            "REPLICATE requests refused by authenticated replication, by reason",
            auth_refused.clone(),
        );
        Prom {
            registry,
            requests,
            request_duration,
            ops,
            op_duration,
            rows_received,
            cached_syncs,
            open_dbs,
            auth_refused,
        }
    }
}

/// A server's metrics (statsd and Prometheus, each when configured).
pub struct ServerMetrics {
    kind: ServerType,
    statsd: Option<Statsd>,
    prom: Option<Prom>,
}

impl std::fmt::Debug for ServerMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerMetrics")
            .field("statsd", &self.statsd.is_some())
            .field("prometheus", &self.prom.is_some())
            .finish()
    }
}

impl ServerMetrics {
    pub fn new(conf: &ServerConf) -> ServerMetrics {
        let kind = conf.server_type;
        ServerMetrics {
            kind,
            statsd: conf
                .statsd
                .as_ref()
                .and_then(|s| Statsd::new(s, &format!("{}-server", kind.name()))),
            prom: conf.prometheus_metrics.then(|| Prom::new(kind)),
        }
    }

    /// Is `/metrics` served?
    pub fn prometheus_enabled(&self) -> bool {
        self.prom.is_some()
    }

    /// The sample rate Swift's `timing_stats` gives a method: the
    /// container server samples HEAD at 0.1 and REPLICATE at 0.01.
    fn statsd_rate(&self, method: &str) -> Option<f64> {
        match (self.kind, method) {
            (ServerType::Container, "HEAD") => Some(0.1),
            (ServerType::Container, "REPLICATE") => Some(0.01),
            _ => None,
        }
    }

    /// Does Swift's server time this method (`@timing_stats`)?
    fn timed_method(&self, method: &str) -> bool {
        match method {
            "PUT" | "GET" | "HEAD" | "DELETE" | "POST" | "REPLICATE" => true,
            "UPDATE" => self.kind == ServerType::Container,
            _ => false,
        }
    }

    /// One answered request: `<METHOD>.timing` (or `.errors.timing` for a
    /// 5xx) to statsd, and the Prometheus request counters.
    pub fn request(&self, method: &str, status: u16, start: Instant) {
        if self.timed_method(method) {
            self.timing(method, status, start, self.statsd_rate(method));
        }
        if let Some(p) = &self.prom {
            let method = if self.timed_method(method) || method == "OPTIONS" {
                method.to_string()
            } else {
                "other".to_string()
            };
            p.requests
                .get_or_create(&MethodStatus {
                    method: method.clone(),
                    status: status.to_string(),
                })
                .inc();
            p.request_duration
                .get_or_create(&MethodLabel { method })
                .observe(start.elapsed().as_secs_f64());
        }
    }

    /// A timed step inside a method, as Swift's decorated helpers
    /// (`PUT_object`, `PUT_container`, `PUT_shard`, `GET_object`) send it.
    pub fn step(&self, name: &str, status: u16, start: Instant) {
        self.timing(name, status, start, None);
    }

    /// Swift's `timing_stats`: `<name>.timing`, or `<name>.errors.timing`
    /// when the answer is a 5xx (the server's fault).
    fn timing(&self, name: &str, status: u16, start: Instant, rate: Option<f64>) {
        if let Some(s) = &self.statsd {
            let metric = if (500..600).contains(&status) {
                format!("{name}.errors.timing")
            } else {
                format!("{name}.timing")
            };
            s.timing_since_rate(&metric, start, rate);
        }
    }

    /// One REPLICATE op served.
    pub fn replicate_op(&self, op: &str, status: u16, start: Instant) {
        if let Some(p) = &self.prom {
            p.ops
                .get_or_create(&OpStatus {
                    op: op.to_string(),
                    status: status.to_string(),
                })
                .inc();
            p.op_duration
                .get_or_create(&OpLabel { op: op.to_string() })
                .observe(start.elapsed().as_secs_f64());
        }
    }

    /// A REPLICATE request refused by authenticated replication.
    pub fn auth_refused(&self, reason: &str) {
        if let Some(p) = &self.prom {
            p.auth_refused
                .get_or_create(&ReasonLabel {
                    reason: reason.to_string(),
                })
                .inc();
        }
    }

    /// The exposition text (`None` when Prometheus is off).
    pub fn render(&self, rpc: &KindRpc) -> Option<String> {
        let p = self.prom.as_ref()?;
        let counters = rpc.counters();
        for (total, counter) in [
            (&counters.items_received, &p.rows_received),
            (&counters.cached_syncs, &p.cached_syncs),
        ] {
            let total = total.load(std::sync::atomic::Ordering::Relaxed);
            let seen = counter.get();
            if total > seen {
                counter.inc_by(total - seen);
            }
        }
        p.open_dbs.set(rpc.open_dbs() as i64);
        render_registry(&p.registry)
    }
}

/// Encodes a registry in the text format.
pub fn render_registry(registry: &Registry) -> Option<String> {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry).ok()?;
    Some(out)
}

/// A `/metrics` answer.
pub fn metrics_response(text: Option<String>) -> Response {
    match text {
        Some(t) => {
            let mut r = Response::new(Body::from(t));
            r.headers_mut().insert(
                "content-type",
                HeaderValue::from_static(PROMETHEUS_CONTENT_TYPE),
            );
            r
        }
        None => super::text(StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics"),
    }
}

/// Serves `GET /metrics` (and 404 for anything else) from `render` until
/// `shutdown` resolves: the replicator daemon's endpoint.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    render: Arc<dyn Fn() -> Option<String> + Send + Sync>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let render = render.clone();
        async move {
            if req.uri().path() == "/metrics" && req.method() == axum::http::Method::GET {
                metrics_response(render())
            } else {
                super::text(StatusCode::NOT_FOUND, "Not Found")
            }
        }
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}
