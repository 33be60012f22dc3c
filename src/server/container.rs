//! Swift's container API: `/<device>/<partition>/<account>/<container>[/<object>]`.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::Response;

use super::{text, AppState};

pub async fn handle(_state: Arc<AppState>, req: Request) -> Response {
    text(
        StatusCode::NOT_IMPLEMENTED,
        format!("{} is not implemented yet", req.method()),
    )
}
