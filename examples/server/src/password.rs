//! Passwords, hashed with argon2id (RFC 9106; the argon2 crate's defaults: m = 19 MiB, t = 2, p = 1, the
//! OWASP recommendation) on the blocking pool, never on the async workers.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use kisum_errors::ErrorCode;

use crate::error::ApiError;

/// The shortest password accepted.
pub const MIN_LEN: usize = 8;
/// The longest password accepted (a bound on hashing work).
pub const MAX_LEN: usize = 1024;

/// Refuses a password outside the length bounds (`VALIDATION_FAILED` on `/password`).
pub fn check_policy(password: &str) -> Result<(), ApiError> {
    let n = password.chars().count();
    if n < MIN_LEN || password.len() > MAX_LEN {
        return Err(ApiError::invalid("/password", format!("a password has {MIN_LEN} to {MAX_LEN} characters")));
    }
    Ok(())
}

/// Hashes a password into a PHC string, with a fresh random salt.
pub async fn hash(password: String) -> Result<String, ApiError> {
    check_policy(&password)?;
    let hashed = tokio::task::spawn_blocking(move || {
        Argon2::default().hash_password(password.as_bytes()).map(|h| h.to_string())
    })
    .await;
    match hashed {
        Ok(Ok(h)) => Ok(h),
        _ => Err(ApiError::new(ErrorCode::Internal, "password hashing failed")),
    }
}

/// Whether `password` matches the PHC string `hash`. A malformed or empty hash matches nothing. The work
/// is the same whether or not a hash exists (pass [`DUMMY_HASH`] for unknown users), so timing does not
/// tell them apart.
pub async fn verify(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || {
        let Ok(parsed) = PasswordHash::new(&hash) else { return false };
        Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok()
    })
    .await
    .unwrap_or(false)
}

/// A well-formed argon2id hash, with the default parameters, that matches no password anyone knows:
/// verifying against it (for a user that does not exist) costs what verifying a real password costs.
pub const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0mT1pPIAoIbPWAbwzbPNWJiyaG2RB8F9rvVb4Y0h5o4";

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_the_dummy_matches_nothing() {
        let hash = hash("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(verify("correct horse".into(), hash.clone()).await);
        assert!(!verify("wrong horse".into(), hash).await);
        assert!(PasswordHash::new(DUMMY_HASH).is_ok(), "the dummy is a well-formed hash, so it costs a real check");
        assert!(!verify("correct horse".into(), DUMMY_HASH.into()).await);
        assert!(!verify("x".into(), String::new()).await);
        assert!(hash_policy_refuses("short").await);
        assert!(hash_policy_refuses(&"x".repeat(MAX_LEN + 1)).await);
    }

    async fn hash_policy_refuses(password: &str) -> bool {
        hash(password.into()).await.is_err_and(|e| e.code() == ErrorCode::ValidationFailed)
    }
}
