//! The sending side's HTTP: REPLICATE requests to a peer
//! (`/<device>/<partition>/<hash>`), each bounded by one deadline covering
//! connect, send and the whole response, and rowsync's whole-DB upload.

use std::path::Path;
use std::time::Duration;

use crate::replication::wire::{ReplicateOp, WireItem};
use crate::ring::Device;

/// The Content-Type of rowsync's whole-DB upload
/// (`REPLICATE /<device>/tmp/<name>`).
pub const DB_UPLOAD_CONTENT_TYPE: &str = "application/x-sqlite3";

/// A REPLICATE answer: status and full body.
#[derive(Debug, Clone)]
pub struct ReplResponse {
    pub status: u16,
    pub body: Vec<u8>,
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

/// A pooled HTTP client for REPLICATE (keep-alive connections are reused
/// for the requests of one DB to one peer, and across DBs).
#[derive(Debug, Clone)]
pub struct ReplClient {
    http: reqwest::Client,
}

impl Default for ReplClient {
    fn default() -> Self {
        Self::new()
    }
}

impl ReplClient {
    pub fn new() -> Self {
        let http = reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(30))
            .no_proxy()
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        ReplClient { http }
    }

    fn method() -> reqwest::Method {
        reqwest::Method::from_bytes(b"REPLICATE").unwrap_or(reqwest::Method::POST)
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
        let url = format!(
            "http://{}/{}/{}/{}",
            host_port(dev),
            dev.device,
            partition,
            hash
        );
        let body = op.to_body();
        let node = node_name(dev);
        let fut = async {
            let resp = self
                .http
                .request(Self::method(), &url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await?;
            let status = resp.status().as_u16();
            let body = resp.bytes().await?.to_vec();
            Ok::<_, reqwest::Error>(ReplResponse { status, body })
        };
        match tokio::time::timeout(timeout, fut).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(source)) => Err(ClientError::Http { node, source }),
            Err(_) => Err(ClientError::Timeout { node, timeout }),
        }
    }

    /// Uploads a DB file into the peer's `<device>/tmp/<name>`.
    pub async fn upload_db(
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
        let stream = tokio_util_stream(f);
        let fut = async {
            let resp = self
                .http
                .request(Self::method(), &url)
                .header("content-type", DB_UPLOAD_CONTENT_TYPE)
                .header("content-length", len)
                .body(reqwest::Body::wrap_stream(stream))
                .send()
                .await?;
            let status = resp.status().as_u16();
            let body = resp.bytes().await?.to_vec();
            Ok::<_, reqwest::Error>(ReplResponse { status, body })
        };
        match tokio::time::timeout(timeout, fut).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(source)) => Err(ClientError::Http { node, source }),
            Err(_) => Err(ClientError::Timeout { node, timeout }),
        }
    }
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
