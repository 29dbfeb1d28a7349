//! Bearer tokens (RFC 6750) verified with `kisum-token`: one verifier per server, swappable when the key
//! set changes, and what each route accepts given per call.

use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::http::{HeaderMap, header};
use kisum_entitlements::Clock;
use kisum_token::{Expect, TokenError, VerifiedClaims, Verifier};

use crate::error::ApiError;

/// The token from `Authorization: Bearer …`; `401 UNAUTHENTICATED` with the `Bearer` challenge when
/// there is none.
pub fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthenticated("this route needs a bearer token"))?;
    let text = value.to_str().map_err(|_| ApiError::unauthenticated("the Authorization header is not text"))?;
    match text.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => Ok(token.trim()),
        _ => Err(ApiError::unauthenticated("the Authorization header is not `Bearer <token>`")),
    }
}

/// The verifier of a server and its clock.
pub struct Tokens {
    verifier: ArcSwap<Verifier>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens").field("verifier", &*self.verifier.load()).finish_non_exhaustive()
    }
}

impl Tokens {
    /// Tokens checked by `verifier` against `clock`.
    pub fn new(verifier: Verifier, clock: Arc<dyn Clock>) -> Tokens {
        Tokens { verifier: ArcSwap::from_pointee(verifier), clock }
    }

    /// Replaces the verifier (a new key set); requests in flight finish with the one they loaded.
    pub fn replace(&self, verifier: Verifier) {
        self.verifier.store(Arc::new(verifier));
    }

    /// The current verifier (for a token that does not come in a header, such as RFC 8693's
    /// `subject_token`).
    pub fn verifier(&self) -> Arc<Verifier> {
        self.verifier.load_full()
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Verifies the request's bearer token for a route that expects `expect`. Refusals are `401`
    /// (`UNAUTHENTICATED`, `TOKEN_INVALID`, `TOKEN_EXPIRED`) with a `Bearer` challenge.
    pub fn verify(&self, headers: &HeaderMap, expect: Expect<'_>) -> Result<Arc<VerifiedClaims>, ApiError> {
        let token = bearer(headers)?;
        self.verifier.load().verify(token, expect, self.clock.now()).map_err(refused)
    }
}

fn refused(e: TokenError) -> ApiError {
    let challenge = match e {
        TokenError::Expired => r#"Bearer error="invalid_token", error_description="the token expired""#,
        _ => r#"Bearer error="invalid_token""#,
    };
    ApiError::from_error(&e).with_header(header::WWW_AUTHENTICATE, challenge)
}
