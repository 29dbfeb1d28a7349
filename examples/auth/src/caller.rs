//! Who is calling: user tokens (refused once their session is revoked or their user disabled) and service
//! tokens with scopes.

use axum::http::HeaderMap;
use kisum_access::{Access, CompanyId, Principal, UserId};
use kisum_errors::ErrorCode;
use kisum_server::{ApiError, ApiResult};
use kisum_token::{Accept, Caller, Expect, VerifiedClaims};

use crate::state::AuthState;

/// The scope a service token needs to read access decisions and the change feed.
pub const ACCESS_READ: &str = "auth:access:read";

/// A verified user token.
#[derive(Debug, Clone)]
pub struct UserCaller {
    /// Whose access the token carries (the agent, for a token acting for a user).
    pub principal: Principal,
    /// The user the token was issued for.
    pub subject: UserId,
    /// The token's company.
    pub company: CompanyId,
    /// The token's session.
    pub sid: String,
    /// Whether an agent acts through the token.
    pub acting: bool,
}

/// Verifies a token of a kind `accept` admits, refusing a user token whose session was revoked or whose
/// user was disabled (`401 TOKEN_INVALID`).
pub fn verify(state: &AuthState, headers: &HeaderMap, accept: Accept) -> ApiResult<std::sync::Arc<VerifiedClaims>> {
    state.tokens.verify(headers, Expect::new(accept))
}

/// The verified bearer token of a request (user or service), established from the headers before any
/// path, query or body is read: a request without a valid token is `401` whatever else it holds.
pub struct Bearer(pub std::sync::Arc<VerifiedClaims>);

impl axum::extract::FromRequestParts<std::sync::Arc<AuthState>> for Bearer {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &std::sync::Arc<AuthState>,
    ) -> Result<Self, Self::Rejection> {
        verify(state, &parts.headers, Accept::Both).map(Bearer)
    }
}

/// The user token of a request.
pub fn user(state: &AuthState, headers: &HeaderMap) -> ApiResult<UserCaller> {
    let claims = verify(state, headers, Accept::User)?;
    user_of(&claims).ok_or_else(|| ApiError::unauthenticated("this route needs a user token"))
}

/// The user caller of a verified token; a service token is `401` (the route needs a user token).
pub fn user_caller(claims: &VerifiedClaims) -> ApiResult<UserCaller> {
    user_of(claims).ok_or_else(|| ApiError::unauthenticated("this route needs a user token"))
}

/// The user caller of verified claims, if they are a user token's.
pub fn user_of(claims: &VerifiedClaims) -> Option<UserCaller> {
    match claims.caller() {
        Caller::User { principal, subject, company, sid, .. } => Some(UserCaller {
            principal: principal.clone(),
            subject: subject.clone(),
            company: company.clone(),
            sid: sid.clone(),
            acting: claims.claims().act.is_some(),
        }),
        Caller::Service { .. } => None,
    }
}

/// Whether the caller may read `principal`'s access in `company`: a service token with
/// `auth:access:read`, or a user token asking about itself in its own company. Else `403`.
pub fn access_reader(claims: &VerifiedClaims, principal: &Principal, company: &CompanyId) -> ApiResult<()> {
    match user_of(claims) {
        None if claims.scope_allows(ACCESS_READ) => Ok(()),
        None => Err(ApiError::new(ErrorCode::Forbidden, "this service token lacks the scope `auth:access:read`")
            .with_required(ACCESS_READ)),
        Some(u) if &u.principal == principal && &u.company == company => Ok(()),
        Some(_) => Err(ApiError::new(ErrorCode::Forbidden, "a user token asks about itself, in its own company")),
    }
}

/// Whether the caller may read company-wide access information of `company` (who can, the audit log): a
/// service token with `auth:access:read`, or a member of `company` allowed `permission` there. Someone of
/// another company learns nothing (`404`).
pub fn company_reader(
    state: &AuthState,
    claims: &VerifiedClaims,
    company: &CompanyId,
    permission: &'static str,
) -> ApiResult<()> {
    match user_of(claims) {
        None if claims.scope_allows(ACCESS_READ) => Ok(()),
        None => Err(ApiError::new(ErrorCode::Forbidden, "this service token lacks the scope `auth:access:read`")
            .with_required(ACCESS_READ)),
        Some(u) => {
            member_of(state, &u, company)?;
            let directory = state.engine.directory();
            let allowed = directory
                .permission(permission)
                .is_ok_and(|p| directory.check(&u.principal, company, p, None, state.now()).is_allowed());
            if allowed {
                Ok(())
            } else {
                Err(ApiError::new(ErrorCode::Forbidden, format!("this needs `{permission}` in `{company}`"))
                    .with_required(permission))
            }
        }
    }
}

/// `404` unless the user token is of `company` and its principal an active member there (or a registered
/// agent acting for one).
pub fn member_of(state: &AuthState, caller: &UserCaller, company: &CompanyId) -> ApiResult<()> {
    let member = &caller.company == company
        && state.engine.directory().snapshot(&caller.principal, company, state.now()).denies_all().is_none();
    if member { Ok(()) } else { Err(ApiError::not_found(format!("no company `{company}`"))) }
}
