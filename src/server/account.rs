//! Swift's account-server API (placeholder until the handlers land).

use std::sync::Arc;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::Response;

use super::{text, AppState};

pub async fn handle(_state: Arc<AppState>, _req: Request) -> Response {
    text(StatusCode::NOT_IMPLEMENTED, "account API not implemented")
}
