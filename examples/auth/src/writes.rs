//! Access writes by users in their company (API.md §2 "Writes"): memberships, custom roles, agents,
//! delegations, and the company's audit log. Every rule is the directory's (actor rules, last owner,
//! seats, validation); every write is committed to the log before it is answered with `kisum-version`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use kisum_access::doc::{AgentDoc, DelegationDoc, MembershipDoc, MembershipStatus, PrincipalDoc, ResourceDoc, RoleDoc};
use kisum_access::{Actor, AgentId, Change, CompanyId, DelegationId, RoleId, Timestamp, UserId};
use kisum_server::audit::AuditPage;
use kisum_server::fresh::written;
use kisum_server::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, clip, random};
use kisum_store::SideWrite;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::access::MEMBER_READ;
use crate::caller::{self, UserCaller};
use crate::clients;
use crate::state::AuthState;
use kisum_server::Bearer;

type Problem = kisum_server::openapi::ProblemSchema;

/// The actor of a write in `company` from the path: a user token of that company whose principal is in
/// it (else `404`, so that nobody outside learns whether it exists). Every rule about what the actor may
/// write is the directory's (DESIGN.md §4 "Writes"), an agent acting for a user included.
fn writer(
    state: &AuthState,
    claims: &kisum_token::VerifiedClaims,
    company: &str,
) -> ApiResult<(UserCaller, CompanyId, Actor)> {
    let caller = caller::user_caller(claims)?;
    let company =
        CompanyId::parse(company).map_err(|_| ApiError::not_found(format!("no company `{}`", clip(company))))?;
    caller::member_of(state, &caller, &company)?;
    let actor = match &caller.acting {
        Some(acting) => Actor::Agent { agent: acting.agent.clone(), user: caller.subject.clone() },
        None => Actor::User(caller.subject.clone()),
    };
    Ok((caller, company, actor))
}

fn body<T: Serialize>(value: &T) -> Option<serde_json::Value> {
    serde_json::to_value(value).ok()
}

/// A membership to put (the user and company come from the path).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MembershipBody {
    /// Role ids (system or custom).
    roles: Vec<String>,
    /// `invited`, `active` (default), `suspended` or `removed`.
    #[schema(value_type = Option<String>)]
    status: Option<MembershipStatus>,
    /// When it ends (RFC 3339).
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Option<Timestamp>,
    /// Patterns denied whatever else grants them.
    restrictions: Option<Vec<String>>,
}

/// Creates or replaces `user`'s membership in `c`. The actor may assign only roles whose entitled
/// permissions it holds itself; the company keeps an active owner; activating respects `core.seats`.
#[utoipa::path(put, path = "/v1/companies/{c}/memberships/{user}", tag = "writes",
    params(("c" = String, Path, description = "The company"), ("user" = String, Path, description = "The user")),
    request_body = MembershipBody,
    responses(
        (status = 200, description = "The membership", body = MembershipDoc, headers(("kisum-version" = u64, description = "The store's sequence after the write"))),
        (status = 401, description = "No user token, or a token refused", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`FORBIDDEN` (a role the actor does not hold) or `LIMIT_EXCEEDED` (`core.seats`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "A company the caller is not an active member of, or an unknown user", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The last active owner would go", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An invalid membership", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn put_membership(
    State(state): State<Arc<AuthState>>,
    Bearer(claims): Bearer,
    ApiPath((c, user)): ApiPath<(String, String)>,
    ApiJson(b): ApiJson<MembershipBody>,
) -> ApiResult<Response> {
    let (_, company, actor) = writer(&state, &claims, &c)?;
    let doc = MembershipDoc {
        user: user.clone(),
        company: company.to_string(),
        status: b.status.unwrap_or(MembershipStatus::Active),
        roles: b.roles,
        expires_at: b.expires_at,
        restrictions: b.restrictions.unwrap_or_default(),
    };
    let record = state.write(&actor, Change::PutMembership(doc.clone()), &[]).await?;
    Ok(written(StatusCode::OK, &record, body(&doc)))
}

/// Sets `user`'s membership in `c` to `removed` (the record stays, for the audit trail).
#[utoipa::path(delete, path = "/v1/companies/{c}/memberships/{user}", tag = "writes",
    params(("c" = String, Path, description = "The company"), ("user" = String, Path, description = "The user")),
    responses(
        (status = 204, description = "Removed", headers(("kisum-version" = u64, description = "The store's sequence after the write"))),
        (status = 401, description = "No user token, or a token refused", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A rule the actor breaks", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "A company the caller is not in, or no such membership", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The last active owner would go", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn remove_membership(
    State(state): State<Arc<AuthState>>,
    Bearer(claims): Bearer,
    ApiPath((c, user)): ApiPath<(String, String)>,
) -> ApiResult<Response> {
    let (_, company, actor) = writer(&state, &claims, &c)?;
    let not_found = || ApiError::not_found(format!("`{}` has no membership in `{company}`", clip(&user)));
    let user = UserId::parse(&user).map_err(|_| not_found())?;
    let record = state.write(&actor, Change::EndMembership { company: company.clone(), user }, &[]).await?;
    Ok(written(StatusCode::NO_CONTENT, &record, None))
}

/// A custom role (its id comes from the path).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RoleBody {
    /// Permission patterns.
    grants: Vec<String>,
    /// Role ids it inherits.
    inherits: Option<Vec<String>>,
}

/// Creates or replaces a custom role of `c`. Inheritance must stay acyclic; a system role's id is taken.
#[utoipa::path(put, path = "/v1/companies/{c}/roles/{role}", tag = "writes",
    params(("c" = String, Path, description = "The company"), ("role" = String, Path, description = "The role id")),
    request_body = RoleBody,
    responses(
        (status = 200, description = "The role", body = RoleDoc, headers(("kisum-version" = u64, description = "The store's sequence after the write"))),
        (status = 401, description = "No user token, or a token refused", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A rule the actor breaks", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "A company the caller is not in", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "An id clash", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An invalid role (pattern, cycle, unknown role inherited)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn put_role(
    State(state): State<Arc<AuthState>>,
    Bearer(claims): Bearer,
    ApiPath((c, role)): ApiPath<(String, String)>,
    ApiJson(b): ApiJson<RoleBody>,
) -> ApiResult<Response> {
    let (_, company, actor) = writer(&state, &claims, &c)?;
    let doc = RoleDoc { id: role, grants: b.grants, inherits: b.inherits.unwrap_or_default() };
    let record = state.write(&actor, Change::PutRole { company, role: doc.clone() }, &[]).await?;
    Ok(written(StatusCode::OK, &record, body(&doc)))
}

/// Removes a custom role of `c` (refused while a membership or role refers to it).
#[utoipa::path(delete, path = "/v1/companies/{c}/roles/{role}", tag = "writes",
    params(("c" = String, Path, description = "The company"), ("role" = String, Path, description = "The role id")),
    responses(
        (status = 204, description = "Removed", headers(("kisum-version" = u64, description = "The store's sequence after the write"))),
        (status = 401, description = "No user token, or a token refused", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A rule the actor breaks", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "A company the caller is not in, or no such role", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Still referred to", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn remove_role(
    State(state): State<Arc<AuthState>>,
    Bearer(claims): Bearer,
    ApiPath((c, role)): ApiPath<(String, String)>,
) -> ApiResult<Response> {
    let (_, company, actor) = writer(&state, &claims, &c)?;
    let role = RoleId::parse(&role).map_err(|_| ApiError::not_found(format!("no role `{}`", clip(&role))))?;
    let record = state.write(&actor, Change::RemoveRole { company, role }, &[]).await?;
    Ok(written(StatusCode::NO_CONTENT, &record, None))
}

/// An agent registered, with its client credentials (the secret is shown once).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AgentRegistered {
    /// The agent id.
    id: String,
    /// The company.
    company: String,
    /// The agent's client id: authenticate as it (HTTP Basic) to exchange a user's token (RFC 8693).
    client_id: String,
    /// The client secret; stored hashed, never shown again (`POST …/secret` issues a new one).
    client_secret: String,
}

/// Registers agent `agent` in `c` and issues its client credentials (needs `core:agent:manage`). An
/// agent holds nothing of its own: it acts through the delegations it receives. An agent that exists is
/// `409`: a new secret comes only from `POST …/agents/{agent}/secret`.
#[utoipa::path(put, path = "/v1/companies/{c}/agents/{agent}", tag = "writes",
    params(("c" = String, Path, description = "The company"), ("agent" = String, Path, description = "The agent id")),
    responses(
        (status = 200, description = "Registered", body = AgentRegistered, headers(("kisum-version" = u64, description = "The store's sequence after the write"))),
        (status = 401, description = "No user token, or a token refused", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`FORBIDDEN`: the actor lacks `core:agent:manage`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "A company the caller is not in", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The agent exists (rotate its secret instead)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An invalid agent id", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn put_agent(
    State(state): State<Arc<AuthState>>,
    Bearer(claims): Bearer,
    ApiPath((c, agent)): ApiPath<(String, String)>,
) -> ApiResult<Response> {
    let (_, company, actor) = writer(&state, &claims, &c)?;
    let doc = AgentDoc { id: agent.clone(), company: company.to_string() };
    agent_credentials(&state, &actor, &company, &agent, Change::PutAgent(doc)).await
}

/// Replaces the client secret of agent `agent` in `c` (needs `core:agent:manage`): the new secret is in
/// the answer, shown once; the old one stops working at once.
#[utoipa::path(post, path = "/v1/companies/{c}/agents/{agent}/secret", tag = "writes",
    params(("c" = String, Path, description = "The company"), ("agent" = String, Path, description = "The agent id")),
    responses(
        (status = 200, description = "Rotated", body = AgentRegistered, headers(("kisum-version" = u64, description = "The store's sequence after the write"))),
        (status = 401, description = "No user token, or a token refused", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`FORBIDDEN`: the actor lacks `core:agent:manage`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "A company the caller is not in, or no such agent", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn rotate_agent_secret(
    State(state): State<Arc<AuthState>>,
    Bearer(claims): Bearer,
    ApiPath((c, agent)): ApiPath<(String, String)>,
) -> ApiResult<Response> {
    let (_, company, actor) = writer(&state, &claims, &c)?;
    let agent_id = AgentId::parse(&agent).map_err(|_| ApiError::not_found(format!("no agent `{}`", clip(&agent))))?;
    let change = Change::RotateAgentSecret { company: company.clone(), agent: agent_id };
    agent_credentials(&state, &actor, &company, &agent, change).await
}

/// Writes `change` (registering an agent, or rotating its secret) with a fresh secret for the agent's
/// client in the same commit, and answers with the secret (`no-store`).
async fn agent_credentials(
    state: &AuthState,
    actor: &Actor,
    company: &CompanyId,
    agent: &str,
    change: Change,
) -> ApiResult<Response> {
    let client_id = clients::agent_client_id(company.as_str(), agent);
    let (secret, hash) = clients::generate()?;
    let client = kisum_store::ServiceClient {
        client_id: client_id.clone(),
        secret_hash: hash,
        scopes: Vec::new(),
        company: Some(company.to_string()),
        agent: Some(agent.to_owned()),
        created_at: state.now().unix_seconds(),
    };
    // Any other client of the agent (one of an earlier id scheme) goes in the same commit.
    let side = [
        SideWrite::RemoveAgentClients { company: company.to_string(), agent: Some(agent.to_owned()) },
        SideWrite::PutServiceClient(client),
    ];
    let record = state.write(actor, change, &side).await?;
    let answer =
        AgentRegistered { id: agent.to_owned(), company: company.to_string(), client_id, client_secret: secret };
    let mut response = written(StatusCode::OK, &record, body(&answer));
    response.headers_mut().insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Unregisters an agent and deletes its client (refused with `422` while a delegation, even a revoked one,
/// still names it: the loader's rule).
#[utoipa::path(delete, path = "/v1/companies/{c}/agents/{agent}", tag = "writes",
    params(("c" = String, Path, description = "The company"), ("agent" = String, Path, description = "The agent id")),
    responses(
        (status = 204, description = "Unregistered", headers(("kisum-version" = u64, description = "The store's sequence after the write"))),
        (status = 401, description = "No user token, or a token refused", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A rule the actor breaks", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "A company the caller is not in, or no such agent", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A delegation still names it", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn remove_agent(
    State(state): State<Arc<AuthState>>,
    Bearer(claims): Bearer,
    ApiPath((c, agent)): ApiPath<(String, String)>,
) -> ApiResult<Response> {
    let (_, company, actor) = writer(&state, &claims, &c)?;
    let agent_id = AgentId::parse(&agent).map_err(|_| ApiError::not_found(format!("no agent `{}`", clip(&agent))))?;
    let side = [SideWrite::RemoveAgentClients { company: company.to_string(), agent: Some(agent.clone()) }];
    let record = state.write(&actor, Change::RemoveAgent { company, agent: agent_id }, &side).await?;
    Ok(written(StatusCode::NO_CONTENT, &record, None))
}

/// A delegation from the caller (`from` and `company` are implied).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DelegationBody {
    /// The id; assigned when absent. An id in use (in any company) is a conflict.
    id: Option<String>,
    /// The delegate: `{"user": ID}` or `{"agent": ID}`.
    to: PrincipalDoc,
    /// Permission patterns.
    grants: Vec<String>,
    /// Resources it is limited to.
    resources: Option<Vec<ResourceDoc>>,
    /// Valid from (default now).
    #[schema(value_type = Option<String>, format = DateTime)]
    not_before: Option<Timestamp>,
    /// Valid until (required; at most 90 days after `not_before`).
    #[schema(value_type = String, format = DateTime)]
    expires_at: Timestamp,
    /// Whether the delegate may pass it on (default false).
    redelegable: Option<bool>,
}

/// The id of a delegation created.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Created {
    /// The id.
    id: String,
}

/// Delegates part of the caller's access in `c` to a colleague or an agent. The caller may delegate only
/// what it may pass on; non-delegable permissions are never conferred.
#[utoipa::path(post, path = "/v1/companies/{c}/delegations", tag = "writes",
    params(("c" = String, Path, description = "The company")),
    request_body = DelegationBody,
    responses(
        (status = 201, description = "Created", body = Created, headers(("kisum-version" = u64, description = "The store's sequence after the write"))),
        (status = 401, description = "No user token, or a token refused", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Delegating what the caller may not pass on", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "A company the caller is not in", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The id is in use", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An invalid delegation", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn create_delegation(
    State(state): State<Arc<AuthState>>,
    Bearer(claims): Bearer,
    ApiPath(c): ApiPath<String>,
    ApiJson(b): ApiJson<DelegationBody>,
) -> ApiResult<Response> {
    let (caller, company, actor) = writer(&state, &claims, &c)?;
    let id = match b.id {
        Some(id) => id,
        None => random::id("d")?,
    };
    let doc = DelegationDoc {
        id: id.clone(),
        company: company.to_string(),
        from: PrincipalDoc::User(caller.subject.to_string()),
        to: b.to,
        grants: b.grants,
        resources: b.resources,
        not_before: b.not_before.unwrap_or_else(|| state.now()),
        expires_at: b.expires_at,
        redelegable: b.redelegable.unwrap_or(false),
        revoked_at: None,
    };
    let record = state.write(&actor, Change::AddDelegation(doc), &[]).await?;
    Ok(written(StatusCode::CREATED, &record, body(&Created { id })))
}

/// Revokes a delegation now (only its delegator).
#[utoipa::path(delete, path = "/v1/companies/{c}/delegations/{id}", tag = "writes",
    params(("c" = String, Path, description = "The company"), ("id" = String, Path, description = "The delegation id")),
    responses(
        (status = 204, description = "Revoked", headers(("kisum-version" = u64, description = "The store's sequence after the write"))),
        (status = 401, description = "No user token, or a token refused", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not the delegator", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "A company the caller is not in, or no such delegation", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already revoked", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn revoke_delegation(
    State(state): State<Arc<AuthState>>,
    Bearer(claims): Bearer,
    ApiPath((c, id)): ApiPath<(String, String)>,
) -> ApiResult<Response> {
    let (_, company, actor) = writer(&state, &claims, &c)?;
    let delegation_id =
        DelegationId::parse(&id).map_err(|_| ApiError::not_found(format!("no delegation `{}`", clip(&id))))?;
    let record = state.write(&actor, Change::RevokeDelegation { company, delegation: delegation_id }, &[]).await?;
    Ok(written(StatusCode::NO_CONTENT, &record, None))
}

/// `?after=&limit=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditQuery {
    /// Records after this sequence (default 0).
    #[param(minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    after: Option<u64>,
    /// At most this many (1–1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// The company's audit log: every write to it (support sessions' included), with actor, instant, kind,
/// whom it touched, before and after. Callers: members allowed `core:member:read`, or a service token
/// with `auth:access:read`.
#[utoipa::path(get, path = "/v1/companies/{c}/audit", tag = "writes",
    params(("c" = String, Path, description = "The company"), AuditQuery),
    responses(
        (status = 200, description = "A page", body = AuditPage),
        (status = 401, description = "No token, or a token refused", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not allowed `core:member:read`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "A company the caller is not in", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A malformed query", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn audit(
    State(state): State<Arc<AuthState>>,
    Bearer(claims): Bearer,
    _: kisum_server::fresh::Fresh,
    ApiPath(c): ApiPath<String>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<AuditPage>> {
    let company = CompanyId::parse(&c).map_err(|_| ApiError::not_found(format!("no company `{}`", clip(&c))))?;
    caller::company_reader(&state, &claims, &company, MEMBER_READ)?;
    let store = state.engine.store();
    Ok(Json(kisum_server::audit::page(store.as_ref(), Some(&company), q.after, q.limit).await?))
}

/// The scope a module's service token needs to record what staff do under a support session.
pub const SUPPORT_RECORD: &str = "auth:support:record";

/// What a staff user did under a support session, as a module saw it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SupportAccessBody {
    /// The support session (from the snapshot's `support_session`).
    session: String,
    /// What was done: `METHOD /path`, or the permission decided.
    route: String,
    /// The record touched, `COMPANY/KIND/ID`.
    record: Option<String>,
}

/// Records an action of a platform staff user under an open support session of `c` (API.md §3: every
/// action of staff in a support session is audited and listed to the company's owners, in
/// `GET …/audit` as `support_access`). Callers: a module's service token with `auth:support:record`.
#[utoipa::path(post, path = "/v1/companies/{c}/support-access", tag = "writes",
    params(("c" = String, Path, description = "The company")),
    request_body = SupportAccessBody,
    responses(
        (status = 201, description = "Recorded", headers(("kisum-version" = u64, description = "The store's sequence after the write"))),
        (status = 401, description = "No token, or a token refused", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a service token with `auth:support:record`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such company or support session", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An invalid record", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn record_support_access(
    State(state): State<Arc<AuthState>>,
    Bearer(claims): Bearer,
    ApiPath(c): ApiPath<String>,
    ApiJson(b): ApiJson<SupportAccessBody>,
) -> ApiResult<Response> {
    let kisum_token::Caller::Service { client, .. } = claims.caller() else {
        return Err(ApiError::new(
            kisum_errors::ErrorCode::Forbidden,
            "a module's service token records support access",
        )
        .with_required(SUPPORT_RECORD));
    };
    if !claims.scope_allows(SUPPORT_RECORD) {
        return Err(ApiError::new(
            kisum_errors::ErrorCode::Forbidden,
            format!("this needs the scope `{SUPPORT_RECORD}`"),
        )
        .with_required(SUPPORT_RECORD));
    }
    let company = CompanyId::parse(&c).map_err(|_| ApiError::not_found(format!("no company `{}`", clip(&c))))?;
    let change = Change::RecordSupportAccess { company, session: b.session, route: b.route, record: b.record };
    let record = state.write(&Actor::Service(client.clone()), change, &[]).await?;
    Ok(written(StatusCode::CREATED, &record, None))
}
