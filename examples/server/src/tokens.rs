//! Bearer tokens (RFC 6750) verified with `kisum-token`: one verifier per server, swappable when the key
//! set changes, and what each route accepts given per call.

use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::http::{HeaderMap, header};
use kisum_entitlements::{Clock, Timestamp};
use kisum_token::{Caller, Expect, TokenError, VerifiedClaims, Verifier};

use crate::revoked::Revoked;

use crate::ApiError;

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
    revoked: Arc<Revoked>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens").field("verifier", &*self.verifier.load()).finish_non_exhaustive()
    }
}

impl Tokens {
    /// Tokens checked by `verifier` against `clock`.
    pub fn new(verifier: Verifier, clock: Arc<dyn Clock>) -> Tokens {
        Tokens { verifier: ArcSwap::from_pointee(verifier), clock, revoked: Arc::new(Revoked::default()) }
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

    /// The sessions and users whose tokens are refused (fill it with [`crate::revoked::follow`]).
    pub fn revoked(&self) -> &Arc<Revoked> {
        &self.revoked
    }

    /// Verifies the request's bearer token for a route that expects `expect`, refusing a user token whose
    /// session was revoked or whose user was disabled. Refusals are `401` (`UNAUTHENTICATED`,
    /// `TOKEN_INVALID`, `TOKEN_EXPIRED`) with a `Bearer` challenge.
    pub fn verify(&self, headers: &HeaderMap, expect: Expect<'_>) -> Result<Arc<VerifiedClaims>, ApiError> {
        let token = bearer(headers)?;
        let now = self.clock.now();
        let claims = self.verifier.load().verify(token, expect, now).map_err(refused)?;
        if let Caller::User { subject, sid, .. } = claims.caller()
            && self.revoked.refuses(sid, subject.as_str(), Timestamp::from_unix(claims.claims().iat), now)
        {
            return Err(refused(TokenError::Invalid("the session was revoked")));
        }
        // Every later log line of the request says whose it is.
        let span = tracing::Span::current();
        match claims.caller() {
            Caller::User { principal, company, .. } => {
                span.record("principal", tracing::field::display(principal));
                span.record("company", tracing::field::display(company));
            }
            Caller::Service { .. } => {
                span.record("principal", tracing::field::display(&claims.claims().sub));
            }
        }
        Ok(claims)
    }
}

fn refused(e: TokenError) -> ApiError {
    let challenge = match e {
        TokenError::Expired => r#"Bearer error="invalid_token", error_description="the token expired""#,
        _ => r#"Bearer error="invalid_token""#,
    };
    ApiError::from_error(&e).with_header(header::WWW_AUTHENTICATE, challenge)
}

/// What the shared extractors need of a server's state: its verifier, and the sequence of the state it
/// answers from.
pub trait ServerState: Send + Sync + 'static {
    /// The state's verifier.
    fn tokens(&self) -> &Tokens;

    /// The sequence of the last change installed, as it moves (for `kisum-at-least`).
    fn installed(&self) -> tokio::sync::watch::Receiver<u64>;

    /// Why the state cannot follow the change log, while it cannot: reads are then refused rather than
    /// answered from stale state.
    fn behind(&self) -> Option<String>;
}

/// The verified bearer token of a request (user or service), established from the headers before any
/// path, query or body is read: a request without a valid token is `401` whatever else it holds (API.md
/// §1). Put it first among a handler's extractors.
#[derive(Debug, Clone)]
pub struct Bearer(pub Arc<VerifiedClaims>);

impl<S: ServerState> axum::extract::FromRequestParts<Arc<S>> for Bearer {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &Arc<S>,
    ) -> Result<Self, Self::Rejection> {
        state.tokens().verify(&parts.headers, Expect::new(kisum_token::Accept::Both)).map(Bearer)
    }
}
