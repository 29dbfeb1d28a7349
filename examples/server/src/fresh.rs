//! Read-your-writes across replicas (API.md §2): a request carrying `kisum-at-least: N` is answered from
//! state at least as fresh as sequence `N` — the `kisum-version` a write answered — or waits up to one
//! second for it, then `503 UPSTREAM_UNAVAILABLE`.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use kisum_errors::ErrorCode;
use tokio::sync::watch;

use crate::error::{ApiError, ApiResult};

/// The request header.
pub const AT_LEAST: &str = "kisum-at-least";
/// The response header of writes: the store's sequence after the write.
pub const VERSION: HeaderName = HeaderName::from_static("kisum-version");
/// How long a request waits for its state.
pub const WAIT: Duration = Duration::from_secs(1);

/// Waits until `installed` (the sequence of the state this replica answers from) reaches the request's
/// `kisum-at-least`, if it names one. A malformed value is `422`.
pub async fn at_least(headers: &HeaderMap, mut installed: watch::Receiver<u64>) -> ApiResult<()> {
    let Some(value) = headers.get(AT_LEAST) else { return Ok(()) };
    let wanted: u64 = value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| ApiError::invalid("/headers/kisum-at-least", "a sequence number (a `kisum-version`)"))?;
    let reached = tokio::time::timeout(WAIT, installed.wait_for(|seq| *seq >= wanted)).await;
    match reached {
        Ok(Ok(_)) => Ok(()),
        _ => Err(ApiError::new(
            ErrorCode::UpstreamUnavailable,
            format!("this replica has not reached version {wanted} within {} ms; retry", WAIT.as_millis()),
        )
        .with_header(axum::http::header::RETRY_AFTER, "1")),
    }
}

/// A write's answer: `status`, the `kisum-version` header (the store's sequence after the write of
/// `record`), and a body (or none).
pub fn written(status: StatusCode, record: &kisum_access::ChangeRecord, body: Option<serde_json::Value>) -> Response {
    let version = HeaderValue::from(record.seq);
    match body {
        Some(body) => (status, [(VERSION, version)], Json(body)).into_response(),
        None => (status, [(VERSION, version)]).into_response(),
    }
}
