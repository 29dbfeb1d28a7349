//! Access decisions over HTTP (API.md §2 "Access"): snapshots, checks, who-can, and the frontend's
//! manifest. Every read honours `kisum-at-least`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use kisum_access::{
    Access, Acting, AgentId, CompanyId, Explanation, Principal, ResourceRef, Timestamp, UserId, WireSnapshot,
};
use kisum_entitlements::EntitlementsSummary;
use kisum_server::{ApiError, ApiJson, ApiQuery, ApiResult};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::caller::{self, Who};
use crate::state::AuthState;
use kisum_server::Bearer;
use kisum_server::fresh::Fresh;

/// The most checks one batch may hold.
pub const MAX_BATCH: usize = 1000;
/// What a user needs to see company-wide access information (who can, the audit log).
pub const MEMBER_READ: &str = "core:member:read";

/// `?principal=&company=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct SnapshotQuery {
    /// `user:ID` or `agent:ID`.
    principal: String,
    /// The company id.
    company: String,
    /// With an agent `principal`: the user it acts for (a token with `act`). The access is then what
    /// that user delegated to the agent, never what others did (DESIGN.md §5).
    acting_for: Option<String>,
    /// With `acting_for`: the prior actors of the token's nested `act`, comma-separated agent ids, the
    /// one the agent took over from first. The access is intersected over every actor.
    prior_actors: Option<String>,
}

fn principal(text: &str, path: &str) -> ApiResult<Principal> {
    Principal::parse(text).map_err(|e| ApiError::invalid(path, e.to_string()))
}

/// Whose access a request asks about: `principal`, or with `acting_for` an agent acting for a user.
fn who(principal_text: &str, acting_for: Option<&str>, prior: Option<&str>, path: &str) -> ApiResult<Who> {
    let principal = principal(principal_text, &format!("{path}principal"))?;
    let acting = match (acting_for, &principal) {
        (None, _) if prior.is_some() => {
            return Err(ApiError::invalid(&format!("{path}prior_actors"), "prior actors need `acting_for`"));
        }
        (None, _) => None,
        (Some(user), Principal::Agent(agent)) => {
            let user =
                UserId::parse(user).map_err(|e| ApiError::invalid(&format!("{path}acting_for"), e.to_string()))?;
            let mut acting = Acting::new(user, agent.clone());
            for a in prior.unwrap_or_default().split(',').filter(|a| !a.is_empty()) {
                let agent =
                    AgentId::parse(a).map_err(|e| ApiError::invalid(&format!("{path}prior_actors"), e.to_string()))?;
                acting.prior.push(agent);
            }
            if acting.prior.len() >= kisum_token::MAX_ACT_DEPTH {
                return Err(ApiError::invalid(&format!("{path}prior_actors"), "at most 3 actors act for a user"));
            }
            Some(acting)
        }
        (Some(_), Principal::User(_)) => {
            return Err(ApiError::invalid(&format!("{path}acting_for"), "only an agent acts for a user"));
        }
    };
    Ok(Who { principal, acting })
}

/// `who`'s snapshot in its wire form.
fn wire(state: &AuthState, who: &Who, company: &CompanyId) -> WireSnapshot {
    let directory = state.engine.directory();
    match &who.acting {
        Some(acting) => directory.acting_wire_snapshot(acting, company, state.now()),
        None => directory.wire_snapshot(&who.principal, company, state.now()),
    }
}

/// An instant from a request (RFC 3339), or now.
pub(crate) fn instant(state: &AuthState, text: Option<&str>, path: &str) -> ApiResult<Timestamp> {
    match text {
        None => Ok(state.now()),
        Some(text) => Timestamp::parse(text).map_err(|e| ApiError::invalid(path, e.to_string())),
    }
}

fn company(text: &str, path: &str) -> ApiResult<CompanyId> {
    CompanyId::parse(text).map_err(|e| ApiError::invalid(path, e.to_string()))
}

/// A principal's access in a company, compiled: permission keys, resource-scoped grants, entitlements,
/// `version` (compare with a token's `ver`) and `valid_until` (the next instant the answer can change by
/// time alone; `null` if none). A company the principal is not in gives an empty snapshot with `denied`.
#[utoipa::path(get, path = "/v1/access/snapshot", tag = "access", params(SnapshotQuery),
    responses(
        (status = 200, description = "The snapshot", body = WireSnapshot),
        (status = 401, description = "No token, or a token refused", body = kisum_server::openapi::ProblemSchema, content_type = "application/problem+json"),
        (status = 403, description = "A user token asking about someone else, or a service token without `auth:access:read`", body = kisum_server::openapi::ProblemSchema, content_type = "application/problem+json"),
        (status = 422, description = "A malformed principal or company", body = kisum_server::openapi::ProblemSchema, content_type = "application/problem+json"),
        (status = 503, description = "`kisum-at-least` not reached within 1 s", body = kisum_server::openapi::ProblemSchema, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn snapshot(
    State(state): State<Arc<AuthState>>,
    Bearer(claims): Bearer,
    _: Fresh,
    ApiQuery(q): ApiQuery<SnapshotQuery>,
) -> ApiResult<Json<WireSnapshot>> {
    let who = who(&q.principal, q.acting_for.as_deref(), q.prior_actors.as_deref(), "?")?;
    let company = company(&q.company, "?company")?;
    let who = caller::access_reader(&state, &claims, who, &company)?;
    Ok(Json(wire(&state, &who, &company)))
}

/// One check.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CheckRequest {
    /// `user:ID` or `agent:ID`.
    principal: String,
    /// The company id.
    company: String,
    /// The permission key (declared in the catalog).
    permission: String,
    /// The resource, `COMPANY/KIND/ID`.
    resource: Option<String>,
    /// The instant (RFC 3339); default now.
    at: Option<String>,
    /// With an agent `principal`: the user it acts for (see the snapshot's `acting_for`).
    acting_for: Option<String>,
    /// With `acting_for`: the prior actors, comma-separated agent ids.
    prior_actors: Option<String>,
}

/// A decision, as `kisum check` prints it: `decision` and `reason` are normative, `explain` is for people.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CheckAnswer {
    /// `allow` or `deny`.
    decision: &'static str,
    /// The deny reason (DESIGN.md §4), if denied.
    #[schema(value_type = Option<String>)]
    reason: Option<kisum_access::DenyReason>,
    /// What granted and entitled it, or why not.
    explain: Explanation,
}

/// Decides one check for a caller, refusing what it may not ask (the same rules as the snapshot).
fn decide(
    state: &AuthState,
    claims: &kisum_token::VerifiedClaims,
    check: &CheckRequest,
    path: &str,
) -> ApiResult<CheckAnswer> {
    let who = who(&check.principal, check.acting_for.as_deref(), check.prior_actors.as_deref(), &format!("{path}/"))?;
    let company = company(&check.company, &format!("{path}/company"))?;
    let who = caller::access_reader(state, claims, who, &company)?;
    let directory = state.engine.directory();
    let permission = directory
        .permission(&check.permission)
        .map_err(|e| ApiError::invalid(&format!("{path}/permission"), format!("{e}")))?;
    let resource = match &check.resource {
        None => None,
        Some(text) => {
            Some(ResourceRef::parse(text).map_err(|e| ApiError::invalid(&format!("{path}/resource"), e.to_string()))?)
        }
    };
    let at = instant(state, check.at.as_deref(), &format!("{path}/at"))?;
    let explain = match &who.acting {
        Some(acting) => directory.acting_explain(acting, &company, permission, resource.as_ref(), at),
        None => directory.explain(&who.principal, &company, permission, resource.as_ref(), at),
    };
    Ok(CheckAnswer { decision: explain.decision, reason: explain.reason, explain })
}

/// Decides a check: `200` for allow and deny alike. An undeclared or malformed permission is the caller's
/// mistake (`422`).
#[utoipa::path(post, path = "/v1/access/check", tag = "access", request_body = CheckRequest,
    responses(
        (status = 200, description = "The decision", body = CheckAnswer),
        (status = 401, description = "No token, or a token refused", body = kisum_server::openapi::ProblemSchema, content_type = "application/problem+json"),
        (status = 403, description = "A user token asking about someone else, or a service token without `auth:access:read`", body = kisum_server::openapi::ProblemSchema, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = kisum_server::openapi::ProblemSchema, content_type = "application/problem+json"),
        (status = 422, description = "A malformed or undeclared permission, principal, company, resource or instant", body = kisum_server::openapi::ProblemSchema, content_type = "application/problem+json"),
        (status = 503, description = "`kisum-at-least` not reached within 1 s", body = kisum_server::openapi::ProblemSchema, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn check(
    State(state): State<Arc<AuthState>>,
    Bearer(claims): Bearer,
    _: Fresh,
    ApiJson(body): ApiJson<CheckRequest>,
) -> ApiResult<Json<CheckAnswer>> {
    decide(&state, &claims, &body, "").map(Json)
}

/// Up to 1,000 checks.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Batch {
    /// The checks.
    checks: Vec<CheckRequest>,
}

/// The decisions, in the order of the checks.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BatchAnswer {
    /// One per check.
    results: Vec<CheckAnswer>,
}

/// Decides up to 1,000 checks, answering in their order. One check the caller may not ask or that is
/// malformed refuses the whole batch, naming it (`/checks/N/…`).
#[utoipa::path(post, path = "/v1/access/check-batch", tag = "access", request_body = Batch,
    responses(
        (status = 200, description = "The decisions", body = BatchAnswer),
        (status = 401, description = "No token, or a token refused", body = kisum_server::openapi::ProblemSchema, content_type = "application/problem+json"),
        (status = 403, description = "A check the caller may not ask", body = kisum_server::openapi::ProblemSchema, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = kisum_server::openapi::ProblemSchema, content_type = "application/problem+json"),
        (status = 422, description = "More than 1,000 checks, or a malformed one", body = kisum_server::openapi::ProblemSchema, content_type = "application/problem+json"),
        (status = 503, description = "`kisum-at-least` not reached within 1 s", body = kisum_server::openapi::ProblemSchema, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn check_batch(
    State(state): State<Arc<AuthState>>,
    Bearer(claims): Bearer,
    _: Fresh,
    ApiJson(body): ApiJson<Batch>,
) -> ApiResult<Json<BatchAnswer>> {
    if body.checks.len() > MAX_BATCH {
        return Err(ApiError::invalid("/checks", format!("at most {MAX_BATCH} checks per batch")));
    }
    let results = body
        .checks
        .iter()
        .enumerate()
        .map(|(i, c)| decide(&state, &claims, c, &format!("/checks/{i}")))
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(BatchAnswer { results }))
}

/// `?company=&permission=&resource=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct WhoCanQuery {
    /// The company id.
    company: String,
    /// The permission key.
    permission: String,
    /// A resource, `COMPANY/KIND/ID`.
    resource: Option<String>,
    /// The instant (RFC 3339); default now.
    at: Option<String>,
}

/// Who may do it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WhoCan {
    /// Every member and agent allowed now, sorted.
    principals: Vec<String>,
}

/// Every principal of the company allowed the permission now (or at `at`). Callers: a service token with
/// `auth:access:read`, or a member allowed `core:member:read` there.
#[utoipa::path(get, path = "/v1/access/who-can", tag = "access", params(WhoCanQuery),
    responses(
        (status = 200, description = "Who may", body = WhoCan),
        (status = 401, description = "No token, or a token refused", body = kisum_server::openapi::ProblemSchema, content_type = "application/problem+json"),
        (status = 403, description = "Not allowed to see it", body = kisum_server::openapi::ProblemSchema, content_type = "application/problem+json"),
        (status = 404, description = "A company the caller is not in", body = kisum_server::openapi::ProblemSchema, content_type = "application/problem+json"),
        (status = 422, description = "A malformed or undeclared permission, company or resource", body = kisum_server::openapi::ProblemSchema, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn who_can(
    State(state): State<Arc<AuthState>>,
    Bearer(claims): Bearer,
    _: Fresh,
    ApiQuery(q): ApiQuery<WhoCanQuery>,
) -> ApiResult<Json<WhoCan>> {
    let company = company(&q.company, "?company")?;
    caller::company_reader(&state, &claims, &company, MEMBER_READ)?;
    let directory = state.engine.directory();
    let permission =
        directory.permission(&q.permission).map_err(|e| ApiError::invalid("?permission", e.to_string()))?;
    let resource = match &q.resource {
        None => None,
        Some(text) => Some(ResourceRef::parse(text).map_err(|e| ApiError::invalid("?resource", e.to_string()))?),
    };
    let at = instant(&state, q.at.as_deref(), "?at")?;
    let principals =
        directory.who_can(&company, permission, resource.as_ref(), at).iter().map(ToString::to_string).collect();
    Ok(Json(WhoCan { principals }))
}

/// The frontend's manifest: what the caller may see and do in its token's company.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Manifest {
    /// The principal (`user:ID`, or `agent:ID` for an agent acting for a user).
    principal: String,
    /// The company.
    company: String,
    /// Entitled modules.
    modules: Vec<String>,
    /// Entitled features.
    features: Vec<String>,
    /// Limits by key.
    #[schema(value_type = Object)]
    limits: serde_json::Value,
    /// The permission keys allowed without a resource, sorted.
    permissions: Vec<String>,
    /// Permissions allowed on one resource only.
    scoped: Vec<kisum_access::WireScoped>,
    /// The reason every check is denied (not a member, membership suspended, invited or expired), if
    /// any: a frontend shows it instead of the modules.
    #[schema(value_type = Option<String>)]
    denied: Option<kisum_access::DenyReason>,
    /// The access version.
    version: u64,
    /// The next instant the answer can change by time alone.
    #[schema(value_type = Option<String>, format = DateTime)]
    valid_until: Option<Timestamp>,
}

/// The caller's own manifest (user tokens): modules, features, limits, permission keys, version and
/// `valid_until` — what the frontend shows and hides (modules enforce the same on every call).
#[utoipa::path(get, path = "/v1/me/access", tag = "access",
    responses(
        (status = 200, description = "The manifest", body = Manifest),
        (status = 401, description = "No user token, or a token refused", body = kisum_server::openapi::ProblemSchema, content_type = "application/problem+json"),
        (status = 503, description = "`kisum-at-least` not reached within 1 s", body = kisum_server::openapi::ProblemSchema, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn me(
    State(state): State<Arc<AuthState>>,
    Bearer(claims): Bearer,
    _: Fresh,
) -> ApiResult<Json<Manifest>> {
    let user = caller::user_caller(&claims)?;
    Ok(Json(manifest(wire(&state, &user.who(), &user.company))))
}

fn manifest(wire: WireSnapshot) -> Manifest {
    let EntitlementsSummary { modules, features, limits, .. } = wire.entitlements;
    Manifest {
        principal: wire.principal,
        company: wire.company.to_string(),
        modules,
        features,
        limits: serde_json::to_value(limits).unwrap_or_default(),
        permissions: wire.permissions,
        scoped: wire.scoped,
        denied: wire.denied,
        version: wire.version,
        valid_until: wire.valid_until,
    }
}
