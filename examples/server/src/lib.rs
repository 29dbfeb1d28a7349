//! The plumbing every Kisum reference server shares, so that each server is only its routes:
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
mod db_url;
mod error;
pub mod fresh;
pub mod health;
mod json;
pub mod keys;
pub mod layer;
pub mod metrics;
pub mod openapi;
pub mod password;
pub mod random;
pub mod request_id;
pub mod revoked;
mod serve;
pub mod staff;
pub mod strict;
mod tls;
mod tokens;

pub use db_url::DbUrl;
pub use error::{ApiError, ApiResult};
pub use json::{ApiJson, ApiPath, ApiQuery, MAX_BODY_BYTES};
pub use kisum_client::Secret;
pub use serve::{LimitArgs, Limits, bind, finish, init_tracing, serve, serve_with};
pub use tls::{Tls, TlsArgs, install_crypto};
pub use tokens::{Bearer, ServerState, Tokens, bearer};

/// Cuts client input to 64 characters, for messages that quote it.
pub fn clip(text: &str) -> String {
    text.chars().take(64).collect()
}
