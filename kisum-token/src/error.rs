//! The crate's one error type. Every refusal of a token says why in words that are safe to show: the
//! token itself is never echoed.

use kisum_errors::{ErrorCode, KisumError};

/// Everything that can go wrong with tokens, keys and key sets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The token is refused: malformed, forged, of the wrong kind, not yet valid, or not for us.
    #[error("token invalid: {0}")]
    Invalid(&'static str),
    /// The token's `kid` names no key we know (it may be new: refetch the JWKS, at a bounded rate).
    #[error("token invalid: unknown key id")]
    UnknownKey,
    /// The token was valid once but has expired.
    #[error("token expired")]
    Expired,
    /// A JWK set is unusable, and is refused whole.
    #[error("unusable JWK set: {0}")]
    Jwks(String),
    /// A key, key file or key-encryption key is unusable.
    #[error("unusable key: {0}")]
    Key(String),
    /// Claims given for signing break a rule (a signer never issues what a verifier would refuse).
    #[error("claims refused: {0}")]
    Claims(String),
}

impl KisumError for TokenError {
    fn code(&self) -> ErrorCode {
        match self {
            TokenError::Invalid(_) | TokenError::UnknownKey => ErrorCode::TokenInvalid,
            TokenError::Expired => ErrorCode::TokenExpired,
            TokenError::Jwks(_) | TokenError::Key(_) | TokenError::Claims(_) => ErrorCode::ValidationFailed,
        }
    }
}
