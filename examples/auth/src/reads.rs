//! What a frontend reads to manage access (beyond API.md's named routes): a company's access documents
//! and who could grant a permission. Every read honours `kisum-at-least`.
//!
//! Visibility: any active member of the company sees its members (user, roles, status), custom roles and
//! agents — teammates are not a secret inside a company. Members allowed `core:member:read` (and service
//! tokens with `auth:access:read`) also see every membership's restrictions and expiry and every
//! delegation; others see only the delegations from or to themselves.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use kisum_access::doc::{AgentDoc, DelegationDoc, MembershipDoc, PrincipalDoc, RoleDoc};
use kisum_access::{Access, CompanyId};
use kisum_server::fresh::Fresh;
use kisum_server::{ApiError, ApiPath, ApiQuery, ApiResult, Bearer, clip};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::access::MEMBER_READ;
use crate::caller::{self, ACCESS_READ};
use crate::state::AuthState;

type Problem = kisum_server::openapi::ProblemSchema;

/// A company's access documents, as far as the caller may see them.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CompanyAccess {
    /// The company.
    company: String,
    /// Its memberships (restrictions and expiry only for callers allowed `core:member:read`).
    #[schema(value_type = Vec<Object>)]
    memberships: Vec<MembershipDoc>,
    /// Its custom roles.
    #[schema(value_type = Vec<Object>)]
    roles: Vec<RoleDoc>,
    /// Its agents.
    #[schema(value_type = Vec<Object>)]
    agents: Vec<AgentDoc>,
    /// Its delegations (all of them for callers allowed `core:member:read`, else those from or to the
    /// caller).
    #[schema(value_type = Vec<Object>)]
    delegations: Vec<DelegationDoc>,
    /// Whether the caller sees everything (`core:member:read`, or a service token).
    complete: bool,
}

/// The company's memberships, custom roles, agents and delegations: what an access-management page lists.
/// Callers: an active member of `c` (see the module docs for what each sees), or a service token with
/// `auth:access:read`. Anyone else learns nothing (`404`).
#[utoipa::path(get, path = "/v1/companies/{c}/access", tag = "writes",
    params(("c" = String, Path, description = "The company")),
    responses(
        (status = 200, description = "The documents", body = CompanyAccess),
        (status = 401, description = "No token, or a token refused", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A service token without `auth:access:read`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "A company the caller is not in", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`kisum-at-least` not reached within 1 s", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn company_access(
    State(state): State<Arc<AuthState>>,
    Bearer(claims): Bearer,
    _: Fresh,
    ApiPath(c): ApiPath<String>,
) -> ApiResult<Json<CompanyAccess>> {
    let company = CompanyId::parse(&c).map_err(|_| ApiError::not_found(format!("no company `{}`", clip(&c))))?;
    // `None`: sees everything; `Some(user)`: a member without `core:member:read`.
    let limited_to = match caller::user_of(&claims) {
        None if claims.scope_allows(ACCESS_READ) => None,
        None => return Err(caller::missing_access_read()),
        Some(user) => {
            caller::member_of(&state, &user, &company)?;
            match caller::company_reader(&state, &claims, &company, MEMBER_READ) {
                Ok(()) => None,
                Err(_) => Some(user.subject.clone()),
            }
        }
    };
    let partition = state.engine.directory().company(&company);
    let Some(partition) = partition else { return Err(ApiError::not_found(format!("no company `{company}`"))) };
    let mut source = partition.documents();
    if let Some(me) = &limited_to {
        for m in &mut source.memberships {
            m.restrictions.clear();
            m.expires_at = None;
        }
        let mine = |p: &PrincipalDoc| matches!(p, PrincipalDoc::User(u) if u == me.as_str());
        source.delegations.retain(|d| mine(&d.from) || mine(&d.to));
    }
    Ok(Json(CompanyAccess {
        company: company.to_string(),
        memberships: source.memberships,
        roles: source.company.roles,
        agents: source.agents,
        delegations: source.delegations,
        complete: limited_to.is_none(),
    }))
}

/// `?company=&permission=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct GrantorsQuery {
    /// The company id.
    company: String,
    /// The permission key.
    permission: String,
    /// The instant (RFC 3339); default now.
    at: Option<String>,
}

/// Who could grant a permission.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Grantors {
    /// The permission asked about.
    permission: String,
    /// Users (`user:ID`) whose active membership holds both `core:member:invite` and the permission, sorted.
    principals: Vec<String>,
}

/// The members who could give the permission to another member now (or at `at`): an active membership whose own
/// roles grant both `core:member:invite` and the permission (DESIGN.md §4: nobody gives what they lack).
/// What a frontend shows after "ask": any active member of the company may ask, as may a service token
/// with `auth:access:read`.
#[utoipa::path(get, path = "/v1/access/grantors", tag = "access", params(GrantorsQuery),
    responses(
        (status = 200, description = "Who could grant it", body = Grantors),
        (status = 401, description = "No token, or a token refused", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A service token without `auth:access:read`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "A company the caller is not in", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A malformed company, or a malformed or undeclared permission", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`kisum-at-least` not reached within 1 s", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn grantors(
    State(state): State<Arc<AuthState>>,
    Bearer(claims): Bearer,
    _: Fresh,
    ApiQuery(q): ApiQuery<GrantorsQuery>,
) -> ApiResult<Json<Grantors>> {
    let company = CompanyId::parse(&q.company).map_err(|e| ApiError::invalid("?company", e.to_string()))?;
    match caller::user_of(&claims) {
        None if claims.scope_allows(ACCESS_READ) => {}
        None => return Err(caller::missing_access_read()),
        Some(user) => caller::member_of(&state, &user, &company)?,
    }
    let directory = state.engine.directory();
    let permission =
        directory.permission(&q.permission).map_err(|e| ApiError::invalid("?permission", e.to_string()))?;
    let at = crate::access::instant(&state, q.at.as_deref(), "?at")?;
    let principals = directory.grantors(&company, permission, at).iter().map(|u| format!("user:{u}")).collect();
    Ok(Json(Grantors { permission: q.permission, principals }))
}
