//! The plumbing every Kisum reference server shares, so that each server is only its routes. What a module
//! server needs too ([`ApiError`], the extractors, request ids, [`finish`], [`health`], [`metrics`],
//! [`openapi`]) lives in [`kisum_client::server`] and is re-exported here; the rest is for Auth, Core and
//! the console:
//!
//! - [`ApiError`]: every error is an RFC 9457 problem+json body with the code, status and request id of
//!   DESIGN.md §6, built from any [`KisumError`](kisum_errors::KisumError);
//! - [`ApiJson`]: a JSON body extractor that refuses what API.md §1 refuses — a body over 64 KiB
//!   (`PAYLOAD_TOO_LARGE`), malformed JSON or an unknown field (`VALIDATION_FAILED`);
//! - [`request_id`]: every response carries `x-request-id` (a valid incoming one is echoed), and so does
//!   every problem body;
//! - [`Tokens`]: bearer tokens verified with `kisum-token`, the verifier swappable at run time;
//! - [`finish`]: the fallbacks, the body limit and the layers in one call; [`health`] routes; the
//!   [`openapi`] pieces every document shares (the problem schema, the bearer scheme);
//! - [`password`]: argon2id hashing off the async workers; [`random`]: ids and secrets.
//!
//! - [`staff`]: who is a platform caller; [`fresh`]: `kisum-at-least` (read-your-writes).
//!
//! Servers listen on any address, over TLS with [`Tls`] (rustls on aws-lc-rs); plain HTTP off loopback is
//! served with a warning ([`serve_with`]).
#![forbid(unsafe_code)]

pub mod audit;
mod claims;
mod db_url;
pub mod fresh;
pub mod keys;
#[cfg(feature = "otel")]
pub mod otel;
pub mod password;
pub mod random;
pub mod revoked;
mod serve;
pub mod staff;
mod store;
mod tls;
mod tokens;

pub use claims::ClaimsArgs;
pub use db_url::DbUrl;
pub use kisum_client::Secret;
pub use kisum_client::server::{
    ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, MAX_BODY_BYTES, clip, finish, health, layer, metrics, openapi,
    request_id, strict,
};
pub use serve::{LimitArgs, Limits, bind, init_tracing, log_subscriber, serve, serve_with};
pub use store::{DEMO_PASSWORD, DEMO_WORLD, OpenError, OpenedStore, StoreConfig};
pub use tls::{Tls, TlsArgs, install_crypto};
pub use tokens::{Bearer, ServerState, Tokens, bearer};
