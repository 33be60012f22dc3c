//! The sending side's calls to peers: REPLICATE requests
//! (`/<device>/<partition>/<hash>`), each bounded by one deadline covering
//! connect, send and the whole response, and rowsync's whole-DB upload.
//!
//! Every call goes through a [`Transport`]: [`HttpTransport`] in service
//! (pooled keep-alive HTTP), any other implementation in tests that fail,
//! delay, drop, duplicate or partition calls in process.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::replication::auth;
use crate::replication::wire::{OpName, ReplicateOp, WireItem};
use crate::ring::Device;

/// The Content-Type of rowsync's whole-DB upload
/// (`REPLICATE /<device>/tmp/<name>`).
pub const DB_UPLOAD_CONTENT_TYPE: &str = "application/x-sqlite3";

/// A REPLICATE answer: status and full body.
#[derive(Debug, Clone)]
pub struct ReplResponse {
    pub status: u16,
    pub body: Vec<u8>,
    /// The peer's [`super::wire::MERGE_ROWS_HEADER`]: `Some` from a rowsync
    /// server only.
    pub merge_rows: Option<usize>,
}

impl ReplResponse {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no response from {node} within {timeout:?}")]
    Timeout { node: String, timeout: Duration },
    #[error("HTTP error talking to {node}: {source}")]
    Http {
        node: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("cannot read {path}: {source}")]
    File {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A transport (in tests) dropped the call: no answer came back.
    #[error("call to {node} dropped: {why}")]
    Dropped { node: String, why: String },
}

/// `ip:port/device` of a ring device (for logs).
pub fn node_name(dev: &Device) -> String {
    format!(
        "{}:{}/{}",
        dev.replication_ip, dev.replication_port, dev.device
    )
}

fn host_port(dev: &Device) -> String {
    if dev.replication_ip.contains(':') {
        format!("[{}]:{}", dev.replication_ip, dev.replication_port)
    } else {
        format!("{}:{}", dev.replication_ip, dev.replication_port)
    }
}

/// A boxed future of a transport call.
pub type CallFuture<'a> =
    Pin<Box<dyn Future<Output = Result<ReplResponse, ClientError>> + Send + 'a>>;

/// How the sender reaches its peers.
pub trait Transport: Send + Sync + std::fmt::Debug {
    /// Sends one REPLICATE op (`op` names it; `body` is its JSON) to
    /// `/<device>/<partition>/<hash>` of `dev`. `Err` means no response.
    fn replicate<'a>(
        &'a self,
        dev: &'a Device,
        partition: u32,
        hash: &'a str,
        op: OpName,
        body: Vec<u8>,
        timeout: Duration,
    ) -> CallFuture<'a>;

    /// Uploads a DB file into the peer's `<device>/tmp/<name>`.
    fn upload_db<'a>(
        &'a self,
        dev: &'a Device,
        name: &'a str,
        file: &'a Path,
        timeout: Duration,
    ) -> CallFuture<'a>;
}

/// The sender's handle on its transport (cheap to clone; clones share it).
#[derive(Debug, Clone)]
pub struct ReplClient {
    transport: Arc<dyn Transport>,
    /// Call latencies go here when the daemon exports metrics.
    metrics: Option<Arc<super::metrics::ReplicatorMetrics>>,
}

impl Default for ReplClient {
    fn default() -> Self {
        Self::new()
    }
}

impl ReplClient {
    /// Pooled HTTP ([`HttpTransport`]).
    pub fn new() -> Self {
        Self::with_transport(Arc::new(HttpTransport::new()))
    }

    pub fn with_transport(transport: Arc<dyn Transport>) -> Self {
        ReplClient {
            transport,
            metrics: None,
        }
    }

    /// Records every call's latency in `metrics`.
    pub fn with_metrics(self, metrics: Arc<super::metrics::ReplicatorMetrics>) -> Self {
        ReplClient {
            metrics: Some(metrics),
            ..self
        }
    }

    /// Sends one op; `Err` means no response (connection error or timeout).
    pub async fn replicate<I: WireItem>(
        &self,
        dev: &Device,
        partition: u32,
        hash: &str,
        op: &ReplicateOp<I>,
        timeout: Duration,
    ) -> Result<ReplResponse, ClientError> {
        let start = std::time::Instant::now();
        let r = self
            .transport
            .replicate(dev, partition, hash, op.op_name(), op.to_body(), timeout)
            .await;
        if let Some(m) = &self.metrics {
            m.request(op.op_name().as_str(), start.elapsed());
        }
        r
    }

    /// Sends an op already encoded as `body` (`op` names it for metrics).
    pub async fn replicate_encoded(
        &self,
        dev: &Device,
        partition: u32,
        hash: &str,
        op: OpName,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<ReplResponse, ClientError> {
        let start = std::time::Instant::now();
        let r = self
            .transport
            .replicate(dev, partition, hash, op, body, timeout)
            .await;
        if let Some(m) = &self.metrics {
            m.request(op.as_str(), start.elapsed());
        }
        r
    }

    /// Uploads a DB file into the peer's `<device>/tmp/<name>`.
    pub async fn upload_db(
        &self,
        dev: &Device,
        name: &str,
        file: &Path,
        timeout: Duration,
    ) -> Result<ReplResponse, ClientError> {
        let start = std::time::Instant::now();
        let r = self.transport.upload_db(dev, name, file, timeout).await;
        if let Some(m) = &self.metrics {
            m.request("upload", start.elapsed());
        }
        r
    }
}

/// REPLICATE over HTTP with a pooled client (keep-alive connections are
/// reused for the requests of one DB to one peer, and across DBs).
#[derive(Debug, Clone)]
pub struct HttpTransport {
    http: reqwest::Client,
    /// `replication_secret`: every request is signed with it when set.
    secret: Option<crate::config::Secret>,
}

impl Default for HttpTransport {
    fn default() -> Self {
        Self::new()
    }
}

impl Transport for HttpTransport {
    fn replicate<'a>(
        &'a self,
        dev: &'a Device,
        partition: u32,
        hash: &'a str,
        _op: OpName,
        body: Vec<u8>,
        timeout: Duration,
    ) -> CallFuture<'a> {
        Box::pin(self.send(dev, partition, hash, body, timeout))
    }

    fn upload_db<'a>(
        &'a self,
        dev: &'a Device,
        name: &'a str,
        file: &'a Path,
        timeout: Duration,
    ) -> CallFuture<'a> {
        Box::pin(self.upload(dev, name, file, timeout))
    }
}

impl HttpTransport {
    pub fn new() -> Self {
        let http = reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(30))
            .no_proxy()
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        HttpTransport { http, secret: None }
    }

    /// Signs every request with `secret` (authenticated replication).
    pub fn with_secret(secret: Option<crate::config::Secret>) -> Self {
        HttpTransport {
            secret,
            ..Self::new()
        }
    }

    /// The signature headers of a request, when a secret is set.
    fn signed(
        &self,
        req: reqwest::RequestBuilder,
        url: &str,
        digest: impl FnOnce() -> String,
    ) -> reqwest::RequestBuilder {
        let Some(secret) = &self.secret else {
            return req;
        };
        let path = reqwest::Url::parse(url)
            .map(|u| u.path().to_string())
            .unwrap_or_default();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        auth::sign(secret, "REPLICATE", &path, &digest(), now)
            .into_iter()
            .fold(req, |r, (k, v)| r.header(k, v))
    }

    fn method() -> reqwest::Method {
        reqwest::Method::from_bytes(b"REPLICATE").unwrap_or(reqwest::Method::POST)
    }

    async fn send(
        &self,
        dev: &Device,
        partition: u32,
        hash: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<ReplResponse, ClientError> {
        let url = format!(
            "http://{}/{}/{}/{}",
            host_port(dev),
            dev.device,
            partition,
            hash
        );
        let node = node_name(dev);
        let req = self
            .http
            .request(Self::method(), &url)
            .header("content-type", "application/json");
        let req = self.signed(req, &url, || auth::body_digest(&body));
        let fut = async {
            let resp = req.body(body).send().await?;
            let status = resp.status().as_u16();
            let merge_rows = resp
                .headers()
                .get(super::wire::MERGE_ROWS_HEADER)
                .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
                .filter(|n| *n > 0);
            let body = resp.bytes().await?.to_vec();
            Ok::<_, reqwest::Error>(ReplResponse {
                status,
                body,
                merge_rows,
            })
        };
        match tokio::time::timeout(timeout, fut).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(source)) => Err(ClientError::Http { node, source }),
            Err(_) => Err(ClientError::Timeout { node, timeout }),
        }
    }

    async fn upload(
        &self,
        dev: &Device,
        name: &str,
        file: &Path,
        timeout: Duration,
    ) -> Result<ReplResponse, ClientError> {
        let url = format!("http://{}/{}/tmp/{}", host_port(dev), dev.device, name);
        let node = node_name(dev);
        let f = tokio::fs::File::open(file)
            .await
            .map_err(|source| ClientError::File {
                path: file.display().to_string(),
                source,
            })?;
        let len = f
            .metadata()
            .await
            .map_err(|source| ClientError::File {
                path: file.display().to_string(),
                source,
            })?
            .len();
        let digest = match &self.secret {
            None => String::new(),
            Some(_) => file_digest(file)
                .await
                .map_err(|source| ClientError::File {
                    path: file.display().to_string(),
                    source,
                })?,
        };
        let stream = tokio_util_stream(f);
        let req = self
            .http
            .request(Self::method(), &url)
            .header("content-type", DB_UPLOAD_CONTENT_TYPE)
            .header("content-length", len);
        let req = self.signed(req, &url, || digest);
        let fut = async {
            let resp = req.body(reqwest::Body::wrap_stream(stream)).send().await?;
            let status = resp.status().as_u16();
            let merge_rows = resp
                .headers()
                .get(super::wire::MERGE_ROWS_HEADER)
                .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
                .filter(|n| *n > 0);
            let body = resp.bytes().await?.to_vec();
            Ok::<_, reqwest::Error>(ReplResponse {
                status,
                body,
                merge_rows,
            })
        };
        match tokio::time::timeout(timeout, fut).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(source)) => Err(ClientError::Http { node, source }),
            Err(_) => Err(ClientError::Timeout { node, timeout }),
        }
    }
}

/// The hex SHA-256 of a file (read on a blocking thread).
async fn file_digest(file: &Path) -> std::io::Result<String> {
    let file = file.to_path_buf();
    let res = tokio::task::spawn_blocking(move || {
        use sha2::Digest;
        use std::io::Read;
        let mut f = std::fs::File::open(&file)?;
        let mut h = sha2::Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        Ok(hex::encode(h.finalize()))
    })
    .await;
    res.unwrap_or_else(|e| Err(std::io::Error::other(e)))
}

/// A file as a stream of 256 KiB chunks.
fn tokio_util_stream(
    file: tokio::fs::File,
) -> impl futures::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static {
    use tokio::io::AsyncReadExt;
    futures::stream::unfold(Some(file), |state| async move {
        let mut file = state?;
        let mut buf = vec![0u8; 256 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(bytes::Bytes::from(buf)), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    })
}
