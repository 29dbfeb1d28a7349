//! What a module server needs besides the guards (feature `server`): everything that makes an axum
//! router answer as API.md §1 says, so that a module team's server is only its routes.
//!
//! - [`ApiError`]: every error is an RFC 9457 problem+json body with the code, status and request id of
//!   DESIGN.md §6, built from any [`KisumError`](kisum_errors::KisumError);
//! - [`ApiJson`], [`ApiPath`], [`ApiQuery`]: extractors that refuse what API.md §1 refuses — a body over
//!   64 KiB (`PAYLOAD_TOO_LARGE`), malformed JSON or an unknown field (`VALIDATION_FAILED`) — as problems;
//! - [`finish`]: `GET /metrics`, the fallbacks, the body limit and [`layer::ServeLayer`] (request ids,
//!   the W3C trace, one `served` log line per request, problem bodies, request metrics) in one call;
//! - [`health`] routes, [`metrics`] (the Prometheus recorder), [`openapi`] pieces every document shares
//!   (the problem schema, the bearer scheme), and [`routes`]: a module's route table with the OpenAPI
//!   document built from it.
//!
//! ```
//! use axum::{Router, routing::get};
//! use kisum_client::server::{self, ApiResult};
//!
//! async fn hello() -> ApiResult<&'static str> {
//!     Ok("hello")
//! }
//!
//! let router = server::finish("hello", Router::new().route("/hello", get(hello)));
//! # let _ = router;
//! ```

mod error;
pub mod health;
mod json;
pub mod layer;
pub mod metrics;
pub mod openapi;
pub mod request_id;
pub mod routes;
pub mod strict;

use axum::Router;
use axum::extract::DefaultBodyLimit;

pub use error::{ApiError, ApiResult, no_method, no_route};
pub use json::{ApiJson, ApiPath, ApiQuery, MAX_BODY_BYTES};

/// Finishes the router of `service` (`auth`, `core`, `finance`…, the `service` label of its metrics):
/// `GET /metrics` ([`metrics::scrape`]), problem+json fallbacks for unknown routes (404) and methods
/// (405), the 64 KiB body limit, and outermost [`ServeLayer`](layer::ServeLayer): request ids and the W3C
/// trace, the request's span and its one log line (so every response carries an id, and every log line
/// of the request its fields), every error body as problem+json, and the request's metrics. The router
/// must not have a `/metrics` route of its own (axum refuses a second one).
pub fn finish(service: &'static str, router: Router) -> Router {
    metrics::handle();
    router
        .route("/metrics", axum::routing::get(metrics::scrape))
        .fallback(no_route)
        .method_not_allowed_fallback(no_method)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(layer::ServeLayer::new(service))
}

/// Cuts client input to 64 characters, for messages that quote it.
pub fn clip(text: &str) -> String {
    text.chars().take(64).collect()
}
