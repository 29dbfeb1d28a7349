//! Refresh tokens: opaque 256-bit random values, never JWTs. Only their hash is ever stored.

use std::fmt;

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use crate::error::TokenError;
use crate::jws::b64_encode;

/// A refresh token as handed to a client once. Redacted in `Debug`, zeroized on drop.
pub struct RefreshToken(Zeroizing<String>);

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshToken([redacted])")
    }
}

/// What the server stores: the SHA-256 of the token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RefreshTokenHash([u8; 32]);

impl RefreshToken {
    /// A new token and the hash to store.
    pub fn generate() -> Result<(RefreshToken, RefreshTokenHash), TokenError> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        SystemRandom::new()
            .fill(bytes.as_mut())
            .map_err(|_| TokenError::Key("the system random generator failed".into()))?;
        let token = RefreshToken(Zeroizing::new(b64_encode(bytes.as_ref())));
        let hash = RefreshTokenHash::of(token.as_str());
        Ok((token, hash))
    }

    /// The value to hand to the client.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl RefreshTokenHash {
    /// The hash of a presented token.
    pub fn of(token: &str) -> RefreshTokenHash {
        let mut out = [0u8; 32];
        out.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref().get(..32).unwrap_or(&[0; 32]));
        RefreshTokenHash(out)
    }

    /// Whether a presented token is the one this hash was made from (constant time).
    pub fn matches(&self, presented: &str) -> bool {
        verify_slices_are_equal(&self.0, &RefreshTokenHash::of(presented).0).is_ok()
    }

    /// The hash as hex, for storage.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_hash_is_kept_and_it_matches_exactly() {
        let (token, hash) = RefreshToken::generate().unwrap();
        assert_eq!(token.as_str().len(), 43, "256 bits as unpadded base64url");
        assert!(hash.matches(token.as_str()));
        assert!(!hash.matches(&token.as_str()[1..]));
        assert!(!hash.to_hex().contains(token.as_str()));
        assert_eq!(format!("{token:?}"), "RefreshToken([redacted])");
        let (other, _) = RefreshToken::generate().unwrap();
        assert_ne!(token.as_str(), other.as_str());
    }
}
