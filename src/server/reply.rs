//! Responses both servers build: [`Reply`] (a response under
//! construction, also the handlers' error type), swob's default bodies,
//! the blocking-thread runner for SQLite work and the `OPTIONS` answer.

use std::path::Path;

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;

use crate::db::files;

/// swob's default `Content-Type`.
pub const HTML_UTF8: &str = "text/html; charset=UTF-8";

/// A response under construction; also the error type of the handlers.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Vec<u8>,
}

/// A handler's result: both arms are answers.
pub type Res<T> = std::result::Result<T, Reply>;

impl Reply {
    /// No body, no headers.
    pub fn new(status: StatusCode) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A body with swob's default content type (`HTTPxxx(body=...)`).
    pub fn html(status: StatusCode, body: impl Into<String>) -> Reply {
        let mut r = Reply::new(status);
        r.body = body.into().into_bytes();
        r.push_header("Content-Type", HTML_UTF8.as_bytes());
        r
    }

    /// A response with swob's default body for the status.
    pub fn swob(status: StatusCode) -> Reply {
        Reply::html(status, default_body(status, None))
    }

    /// A `text/plain` body (`HTTPxxx(body=..., content_type='text/plain')`).
    pub fn text(status: StatusCode, msg: impl Into<String>) -> Reply {
        let mut r = Reply::new(status);
        r.body = msg.into().into_bytes();
        r.push_header("Content-Type", b"text/plain");
        r
    }

    /// Sets a header (replacing one of the same name); names or values
    /// that are not valid in HTTP are dropped.
    pub fn push_header(&mut self, name: &str, value: &[u8]) {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            self.headers.retain(|(k, _)| *k != n);
            self.headers.push((n, v));
        }
    }

    /// [`Reply::push_header`], builder style.
    pub fn header(mut self, name: &str, value: impl ToString) -> Reply {
        self.push_header(name, value.to_string().as_bytes());
        self
    }

    pub fn into_response(self) -> Response {
        let mut resp = Response::new(Body::from(self.body));
        *resp.status_mut() = self.status;
        let h = resp.headers_mut();
        for (k, v) in self.headers {
            h.insert(k, v);
        }
        resp
    }
}

/// Runs SQLite work on a blocking thread; a task that panics answers 500.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Res<T> + Send + 'static) -> Res<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("request task failed: {e}");
            Err(Reply::text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("internal error: {e}"),
            ))
        }
    }
}

/// Moves a corrupt DB aside (Swift's `possibly_quarantine`).
pub fn quarantine(path: &Path) {
    if let Err(q) = files::quarantine(path) {
        tracing::error!("could not quarantine {}: {q}", path.display());
    }
}

/// The methods both servers answer.
const METHODS: [&str; 7] = [
    "DELETE",
    "GET",
    "HEAD",
    "OPTIONS",
    "POST",
    "PUT",
    "REPLICATE",
];

/// `OPTIONS`: `base` with the server's methods (`REPLICATE` only on a
/// replication server), its name and no body.
pub fn options(base: Reply, extra: &[&str], replication_server: bool, server: &str) -> Reply {
    base.header("Allow", allowed_methods(extra, replication_server))
        .header(
            "Server",
            format!("{server}/rowsync-{}", env!("CARGO_PKG_VERSION")),
        )
        .header("Content-Length", 0)
}

/// Swift's `allowed_methods` as an `Allow` header: the methods both
/// servers answer and the server's `extra` ones, sorted.
pub fn allowed_methods(extra: &[&str], replication_server: bool) -> String {
    let mut methods: Vec<&str> = METHODS
        .iter()
        .chain(extra)
        .filter(|m| replication_server || **m != "REPLICATE")
        .copied()
        .collect();
    methods.sort_unstable();
    methods.join(", ")
}

// ------------------------------------------------------------ swob bodies

/// swob's `RESPONSE_REASONS` (title, explanation) of the statuses the
/// servers answer with swob's bodies.
fn reason(status: StatusCode) -> (&'static str, &'static str) {
    match status.as_u16() {
        202 => ("Accepted", "The request is accepted for processing."),
        400 => (
            "Bad Request",
            "The server could not comply with the request since it is either malformed or \
             otherwise incorrect.",
        ),
        403 => ("Forbidden", "Access was denied to this resource."),
        404 => ("Not Found", "The resource could not be found."),
        405 => (
            "Method Not Allowed",
            "The method is not allowed for this resource.",
        ),
        406 => (
            "Not Acceptable",
            "The resource is not available in a format acceptable to your browser.",
        ),
        409 => (
            "Conflict",
            "There was a conflict when trying to complete your request.",
        ),
        412 => (
            "Precondition Failed",
            "A precondition for this request was not met.",
        ),
        500 => (
            "Internal Error",
            "The server has either erred or is incapable of performing the requested operation.",
        ),
        503 => (
            "Service Unavailable",
            "The server is currently unavailable. Please try again at a later time.",
        ),
        507 => (
            "Insufficient Storage",
            "There was not enough space to save the resource.",
        ),
        _ => ("", ""),
    }
}

/// swob's default body of a status without one: `<html><h1>{title}</h1>
/// <p>{explanation}</p></html>`, empty for statuses without an
/// explanation (200, 201, 204). `drive` fills 507's `Drive: ...`.
pub fn default_body(status: StatusCode, drive: Option<&str>) -> String {
    let (title, explanation) = reason(status);
    if explanation.is_empty() {
        return String::new();
    }
    let explanation = if status == StatusCode::INSUFFICIENT_STORAGE {
        format!("{explanation} Drive: {}", drive.unwrap_or("unknown"))
    } else {
        explanation.to_string()
    };
    format!("<html><h1>{title}</h1><p>{explanation}</p></html>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies() {
        assert_eq!(
            default_body(StatusCode::INSUFFICIENT_STORAGE, Some("sdz")),
            "<html><h1>Insufficient Storage</h1><p>There was not enough space to save the \
             resource. Drive: sdz</p></html>"
        );
        assert_eq!(default_body(StatusCode::NO_CONTENT, None), "");
    }

    #[test]
    fn headers() {
        let r = Reply::text(StatusCode::BAD_REQUEST, "no")
            .header("X-A", 1)
            .header("x-a", 2)
            .header("Bad Name", 3);
        let names: Vec<_> = r
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("content-type", HeaderValue::from_static("text/plain")),
                ("x-a", HeaderValue::from_static("2")),
            ]
        );
        let r = Reply::swob(StatusCode::NOT_FOUND);
        assert_eq!(
            r.body,
            b"<html><h1>Not Found</h1><p>The resource could not be found.</p></html>"
        );
        assert_eq!(
            allowed_methods(&[], false),
            "DELETE, GET, HEAD, OPTIONS, POST, PUT"
        );
        assert_eq!(
            allowed_methods(&["UPDATE"], true),
            "DELETE, GET, HEAD, OPTIONS, POST, PUT, REPLICATE, UPDATE"
        );
    }
}
