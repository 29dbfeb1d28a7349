//! Operations that bypass the safeguards of this crate, for tests and interoperability work only: they
//! let a caller sign arbitrary bytes, which is how forged and malformed tokens are made for attack suites.

use crate::error::TokenError;
use crate::key::PrivateKey;

/// Signs arbitrary `message` bytes with `key` (Ed25519, or ECDSA P-256 as raw r‖s). Nothing about the
/// message is checked: never use this to issue tokens; use [`sign`](crate::sign).
pub fn sign_raw(key: &PrivateKey, message: &[u8]) -> Result<Vec<u8>, TokenError> {
    key.sign(message)
}
