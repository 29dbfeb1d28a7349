//! Who may call what: the Admin API's `admin:…` permissions, and the callers of the public routes.

use std::marker::PhantomData;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use kisum_access::{Access, Actor, CompanyId};
use kisum_server::{ApiError, ApiResult};
use kisum_token::Caller;

use crate::state::CoreState;

/// The permission each Admin API route needs, as `(route, permission)`: a service token whose scopes
/// match it, or a platform staff user whose access in the platform company allows it.
pub fn admin_permissions() -> &'static [(&'static str, &'static str)] {
    &[
        ("POST /admin/v1/companies", COMPANY_CREATE),
        ("GET /admin/v1/companies, GET /admin/v1/companies/{c}", COMPANY_READ),
        ("DELETE /admin/v1/companies/{c}", COMPANY_DELETE),
        ("POST /admin/v1/users", USER_CREATE),
        ("PUT /admin/v1/users/{u}/password, POST /admin/v1/users/{u}/disable", USER_UPDATE),
        ("POST, PATCH …/subscriptions", SUBSCRIPTION_WRITE),
        ("POST, DELETE …/overrides", OVERRIDE_WRITE),
        ("GET …/overrides", OVERRIDE_READ),
        ("POST /admin/v1/plans", PLAN_PUBLISH),
        ("GET /admin/v1/audit", AUDIT_READ),
        ("POST /admin/v1/support-sessions", SUPPORT_OPEN),
        ("DELETE /admin/v1/support-sessions/{id}", SUPPORT_CLOSE),
        ("POST, GET /admin/v1/clients, POST …/clients/{id}/secret, DELETE …/clients/{id}", CLIENT_MANAGE),
    ]
}

/// An Admin API permission, as a type: the [`Admin`] extractor of a route names the one it needs.
pub(crate) trait AdminPermission: Send + Sync {
    const KEY: &'static str;
}

macro_rules! admin_permissions {
    ($($(#[$doc:meta])* $name:ident = $const:ident = $key:literal;)*) => {
        $(
            pub(crate) const $const: &str = $key;
            $(#[$doc])*
            pub(crate) struct $name;
            impl AdminPermission for $name {
                const KEY: &'static str = $key;
            }
        )*
    };
}

admin_permissions! {
    /// Create companies.
    CompanyCreate = COMPANY_CREATE = "admin:company:create";
    /// Read and list companies.
    CompanyRead = COMPANY_READ = "admin:company:read";
    /// Remove companies.
    CompanyDelete = COMPANY_DELETE = "admin:company:delete";
    /// Create users.
    UserCreate = USER_CREATE = "admin:user:create";
    /// Set passwords, disable users.
    UserUpdate = USER_UPDATE = "admin:user:update";
    /// Add and update subscriptions.
    SubscriptionWrite = SUBSCRIPTION_WRITE = "admin:subscription:write";
    /// Add and remove overrides.
    OverrideWrite = OVERRIDE_WRITE = "admin:override:write";
    /// List overrides.
    OverrideRead = OVERRIDE_READ = "admin:override:read";
    /// Publish plans.
    PlanPublish = PLAN_PUBLISH = "admin:plan:publish";
    /// Read the audit log.
    AuditRead = AUDIT_READ = "admin:audit:read";
    /// Open support sessions (staff users only: a session is a person acting inside a company).
    SupportOpen = SUPPORT_OPEN = "admin:support:open";
    /// Close support sessions.
    SupportClose = SUPPORT_CLOSE = "admin:support:close";
    /// Register, list, rotate and delete platform service clients.
    ClientManage = CLIENT_MANAGE = "admin:client:manage";
}

/// The actor of an Admin API call that needs permission `P`, established from the request's headers
/// before its body is read: a caller without a valid token gets `401`, one without the permission `403`,
/// whatever the body holds.
pub(crate) struct Admin<P>(pub Actor, pub PhantomData<P>);

impl<P: AdminPermission> FromRequestParts<Arc<CoreState>> for Admin<P> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<CoreState>) -> Result<Self, Self::Rejection> {
        admin(state, &parts.headers, P::KEY).map(|actor| Admin(actor, PhantomData))
    }
}
/// What a service token needs to read any company's entitlements.
pub(crate) const ENTITLEMENTS_READ: &str = "core:entitlements:read";

/// The actor of an Admin API call that needs `permission` ([`kisum_server::staff::platform_actor`]).
fn admin(state: &CoreState, headers: &HeaderMap, permission: &'static str) -> ApiResult<Actor> {
    kisum_server::staff::platform_actor(
        &state.tokens,
        state.engine.directory(),
        &state.platform_company,
        headers,
        permission,
    )
}

/// Whether the caller may read company `c`'s entitlements: a service token with
/// `core:entitlements:read`, or a token of `c` whose principal is an active member there (or a
/// registered agent). Anyone else learns nothing: `404`, as for a company that does not exist.
pub(crate) fn entitlements_reader(
    state: &CoreState,
    claims: &kisum_token::VerifiedClaims,
    company: &CompanyId,
) -> ApiResult<()> {
    let member = match claims.caller() {
        Caller::Service { .. } => claims.scope_allows(ENTITLEMENTS_READ),
        Caller::User { principal, company: theirs, .. } => {
            theirs == company
                && state.engine.directory().snapshot(principal, company, state.now()).denies_all().is_none()
        }
    };
    if member { Ok(()) } else { Err(ApiError::not_found(format!("no company `{company}`"))) }
}
