//! `GET /health/live` and `GET /health/ready` (API.md §1).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// A health answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, or what is not.
    pub status: String,
}

/// Liveness: the process answers.
pub fn live() -> Response {
    Json(Health { status: "ok".into() }).into_response()
}

/// Readiness: `200` when `ready` is `Ok`, else `503` naming what is not ready.
pub fn ready(ready: Result<(), String>) -> Response {
    match ready {
        Ok(()) => Json(Health { status: "ok".into() }).into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, Json(Health { status: why })).into_response(),
    }
}
