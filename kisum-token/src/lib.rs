#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod claims;
pub mod danger;
mod error;
mod jws;
mod key;
mod keyset;
mod refresh;
mod verify;

pub use claims::{Act, Audience, Caller, Claims, MAX_ACT_DEPTH, MAX_LIFETIME_SECONDS, TokenKind, VerifiedClaims};
pub use error::TokenError;
pub use jws::{Header, MAX_TOKEN_BYTES, UnverifiedToken};
pub use key::{Algorithm, Jwk, Jwks, Kek, PrivateKey, PublicKey};
pub use keyset::{KeySet, RETIRED_KEEP_SECONDS, RotationPolicy, ScheduledKey};
pub use refresh::{RefreshToken, RefreshTokenHash};
pub use verify::{
    Accept, CACHE_CAPACITY, DEFAULT_LEEWAY_SECONDS, Expect, MAX_LEEWAY_SECONDS, Validation, Verifier, sign,
};
