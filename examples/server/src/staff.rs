//! Platform callers (API.md §3): a service token whose scopes match an `admin:…` permission, or a staff
//! user — a user token of the platform company, for the user itself, whose access there allows it.

use axum::http::HeaderMap;
use kisum_access::{Access, Actor, CompanyId, Directory, Principal};
use kisum_errors::ErrorCode;
use kisum_token::{Accept, Caller, Expect};

use crate::tokens::Tokens;
use crate::{ApiError, ApiResult};

/// The actor of a platform call that needs `permission`: [`Actor::Service`] for a service whose token's
/// scopes match it, [`Actor::Staff`] for a user of `platform_company` whose access there allows it (an
/// agent acting for a user is never staff). Anyone else: `403 FORBIDDEN` naming the permission; no or a bad
/// token: `401`.
pub fn platform_actor(
    tokens: &Tokens,
    directory: &Directory,
    platform_company: &CompanyId,
    headers: &HeaderMap,
    permission: &'static str,
) -> ApiResult<Actor> {
    let claims = tokens.verify(headers, Expect::new(Accept::Both))?;
    let now = tokens.clock().now();
    match claims.caller() {
        Caller::Service { client, .. } if claims.scope_allows(permission) => Ok(Actor::Service(client.clone())),
        Caller::User { principal: Principal::User(user), company, .. }
            if company == platform_company
                && directory.permission(permission).is_ok_and(|p| {
                    directory.check(&Principal::User(user.clone()), company, p, None, now).is_allowed()
                }) =>
        {
            Ok(Actor::Staff(user.clone()))
        }
        _ => Err(ApiError::new(ErrorCode::Forbidden, "this route is for platform staff and platform services")
            .with_required(permission)),
    }
}
