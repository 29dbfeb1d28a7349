//! Ids and secrets from the operating system's random source.

use kisum_errors::ErrorCode;

use crate::ApiError;

fn hex(n: usize) -> Option<String> {
    use std::fmt::Write;
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).ok()?;
    let mut text = String::with_capacity(2 * n);
    for b in bytes {
        let _ = write!(text, "{b:02x}");
    }
    Some(text)
}

/// A request id: 128 random bits as hex, from a fast generator seeded by the operating system (no system
/// call per request: request ids correlate logs, they guard nothing).
pub fn request_id() -> String {
    kisum_client::trace::random_id()
}

/// A token's unique id (`jti`): 16 bytes from the operating system's random source, as hex.
pub fn token_id() -> Result<String, ApiError> {
    hex(16).ok_or_else(|| ApiError::new(ErrorCode::Internal, "the random source failed"))
}

/// A secret (client secrets, refresh tokens): 32 random bytes as hex. Fails rather than ever returning
/// a guessable value.
pub fn secret() -> Result<String, ApiError> {
    hex(32).ok_or_else(|| ApiError::new(ErrorCode::Internal, "the random source failed"))
}

/// A server-assigned id with a prefix, such as `ov-3f9a0c2e1b7d` (6 random bytes).
pub fn id(prefix: &str) -> Result<String, ApiError> {
    hex(6)
        .map(|h| format!("{prefix}-{h}"))
        .ok_or_else(|| ApiError::new(ErrorCode::Internal, "the random source failed"))
}

/// A fresh client secret and its stored form. Generated secrets are 256 random bits: a SHA-256 of them
/// (`sha256:HEX`) is as safe to store as a slow hash, and checking it costs nothing.
pub fn client_secret() -> Result<(String, String), ApiError> {
    let secret = secret()?;
    let hash = hash_client_secret(&secret);
    Ok((secret, hash))
}

/// The stored form of a generated client secret (`sha256:HEX`).
pub fn hash_client_secret(secret: &str) -> String {
    format!("sha256:{}", kisum_token::RefreshTokenHash::of(secret).to_hex())
}
