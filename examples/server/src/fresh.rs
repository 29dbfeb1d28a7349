//! Read-your-writes across replicas (API.md §2): a request carrying `kisum-at-least: N` is answered from
//! state at least as fresh as sequence `N` — the `kisum-version` a write answered — or waits up to one
//! second for it, then `503 UPSTREAM_UNAVAILABLE`.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use kisum_errors::ErrorCode;
use tokio::sync::watch;

use crate::{ApiError, ApiResult};

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

/// `kisum-at-least` honoured as an extractor: list it after the token's extractor (a request without a
/// valid token is `401` before its headers are looked at), and the handler runs on state at least that
/// fresh, or the request is `503` after [`WAIT`]. A replica that cannot follow the change log answers
/// every read `503` too (never stale state as current). The one implementation behind every read of Auth
/// and Core.
#[derive(Debug, Clone, Copy)]
pub struct Fresh;

impl<S: crate::ServerState> axum::extract::FromRequestParts<std::sync::Arc<S>> for Fresh {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &std::sync::Arc<S>,
    ) -> Result<Self, Self::Rejection> {
        if let Some(why) = state.behind() {
            return Err(ApiError::new(ErrorCode::UpstreamUnavailable, format!("this replica is behind: {why}"))
                .with_header(axum::http::header::RETRY_AFTER, "1"));
        }
        at_least(&parts.headers, state.installed()).await.map(|()| Fresh)
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
