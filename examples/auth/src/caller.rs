//! Who is calling: user tokens (refused once their session is revoked or their user disabled) and service
//! tokens with scopes.

use axum::http::HeaderMap;
use kisum_access::{Access, Acting, CompanyId, Principal, UserId};
use kisum_errors::ErrorCode;
use kisum_server::{ApiError, ApiResult};
use kisum_token::{Accept, Caller, Expect, VerifiedClaims};

use crate::access::MEMBER_READ;
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
    /// The agents acting for the subject through the token (`act`), if any.
    pub acting: Option<Acting>,
}

impl UserCaller {
    /// Whose access the token carries, as the access routes name it.
    pub fn who(&self) -> Who {
        Who { principal: self.principal.clone(), acting: self.acting.clone() }
    }
}

/// Whose access a question is about: a principal on its own, or agents acting for a user (an `act`
/// token: what that user delegated to them, DESIGN.md §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Who {
    /// The principal (the current actor, for an acting token).
    pub principal: Principal,
    /// The user acted for and the actors, when agents act for a user.
    pub acting: Option<Acting>,
}

/// Verifies a token of a kind `accept` admits, refusing a user token whose session was revoked or whose
/// user was disabled (`401 TOKEN_INVALID`).
pub fn verify(state: &AuthState, headers: &HeaderMap, accept: Accept) -> ApiResult<std::sync::Arc<VerifiedClaims>> {
    state.tokens.verify(headers, Expect::new(accept))
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
        Caller::User { principal, subject, company, sid, acting, .. } => Some(UserCaller {
            principal: principal.clone(),
            subject: subject.clone(),
            company: company.clone(),
            sid: sid.clone(),
            acting: acting.clone(),
        }),
        Caller::Service { .. } => None,
    }
}

/// Whether the caller may read `who`'s access in `company`, and whose it then reads: a service token with
/// `auth:access:read` reads anyone's; a user token reads its own, in its own company, and — when it is
/// allowed `core:member:read` there — anyone's in that company (the access explorer of an admin); `403`
/// otherwise. A token of an agent acting for a user that names the agent reads exactly what it holds
/// as it acts (what that user delegated), never the agent's whole access.
pub fn access_reader(state: &AuthState, claims: &VerifiedClaims, who: Who, company: &CompanyId) -> ApiResult<Who> {
    match user_of(claims) {
        None if claims.scope_allows(ACCESS_READ) => Ok(who),
        None => Err(missing_access_read()),
        Some(u)
            if &u.company == company && (u.who() == who || (who.acting.is_none() && who.principal == u.principal)) =>
        {
            Ok(u.who())
        }
        Some(u) if &u.company == company && u.acting.is_none() && allowed(state, &u, company, MEMBER_READ) => Ok(who),
        Some(_) => Err(ApiError::new(
            ErrorCode::Forbidden,
            format!("a user token asks about itself, or about others with `{MEMBER_READ}`, in its own company"),
        )
        .with_required(MEMBER_READ)),
    }
}

/// `403`: a service token without `auth:access:read`.
pub fn missing_access_read() -> ApiError {
    ApiError::new(ErrorCode::Forbidden, "this service token lacks the scope `auth:access:read`")
        .with_required(ACCESS_READ)
}

/// Whether the user caller is allowed `permission` (no resource) in `company` now. A token of an agent
/// acting for a user never is: company-wide reads are not part of what a user can delegate.
fn allowed(state: &AuthState, u: &UserCaller, company: &CompanyId, permission: &str) -> bool {
    if u.acting.is_some() {
        return false;
    }
    let directory = state.engine.directory();
    directory
        .permission(permission)
        .is_ok_and(|p| directory.check(&u.principal, company, p, None, state.now()).is_allowed())
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
        None => Err(missing_access_read()),
        Some(u) => {
            member_of(state, &u, company)?;
            if allowed(state, &u, company, permission) {
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
