//! Service clients (client credentials): the platform's own (`platform-admin`, scopes `*`) and agents'.
//!
//! Secrets Auth generates are 256 random bits: a SHA-256 of them (`sha256:HEX`) is as safe to store as a
//! slow hash, and checking it costs nothing. A secret an operator chose (`KISUM_ADMIN_CLIENT_SECRET`) may
//! be guessable, so it is stored as an argon2id hash, like a password.

use kisum_server::{ApiResult, password, random};
use kisum_store::ServiceClient;
use kisum_token::RefreshTokenHash;

/// The platform's administration client.
pub const PLATFORM_ADMIN: &str = "platform-admin";

/// A well-formed hash no secret matches: what an unknown client's secret is checked against.
pub const DUMMY: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

/// Whether `secret` matches the stored `hash` (either form).
pub async fn verify_secret(secret: &str, hash: String) -> ApiResult<bool> {
    match hash.strip_prefix("sha256:") {
        Some(hex) => {
            let presented = RefreshTokenHash::of(secret).to_hex();
            // Both sides are hashes: comparing them leaks nothing about the secret.
            Ok(presented.len() == hex.len() && presented == hex)
        }
        None => password::verify(password::Queue::ClientSecret, secret.to_owned(), hash).await,
    }
}

/// A fresh secret and its stored form ([`random::client_secret`]).
pub fn generate() -> ApiResult<(String, String)> {
    random::client_secret()
}

/// The client id of `company`'s agent `agent`: `agent@company`. Ids never hold `@`, so no two
/// (company, agent) pairs share a client id (`agent.{company}.{agent}`, the earlier scheme, let
/// `seca`/`io.bot` and `seca.io`/`bot` collide).
pub fn agent_client_id(company: &str, agent: &str) -> String {
    format!("{agent}@{company}")
}

/// The platform's administration client with `hash`, registered at `now`.
pub fn platform_admin(hash: String, now: i64) -> ServiceClient {
    ServiceClient {
        client_id: PLATFORM_ADMIN.into(),
        secret_hash: hash,
        scopes: vec!["*".into()],
        company: None,
        agent: None,
        created_at: now,
    }
}
