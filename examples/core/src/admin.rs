//! The Admin API (API.md §3): platform writes, each guarded by an `admin:…` permission, each committed
//! through the change log and answered with `kisum-version`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use kisum_access::doc::{AgentDoc, CompanyDoc, DelegationDoc, MembershipDoc, SupportSessionDoc};
use kisum_access::{Access, Actor, Change, CompanyId, UserId};
use kisum_entitlements::doc::{OverrideDoc, SubscriptionDoc};
use kisum_entitlements::{OverrideId, PlanDoc, SubscriptionId, SubscriptionPatch, Timestamp};
use kisum_server::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, password, random};
use kisum_store::SideWrite;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::caller::{self, Admin};
use crate::public::company_id;
use crate::state::CoreState;
use kisum_server::clip;

type Problem = kisum_server::openapi::ProblemSchema;

use kisum_server::audit::AuditPage;
use kisum_server::fresh::written;

fn to_json<T: Serialize>(value: &T) -> Option<serde_json::Value> {
    serde_json::to_value(value).ok()
}

fn user_id(text: &str) -> ApiResult<UserId> {
    UserId::parse(text).map_err(|_| ApiError::not_found(format!("no user `{}`", clip(text))))
}

/// Refuses a company that does not exist (`404`).
fn existing(state: &CoreState, company: &CompanyId) -> ApiResult<Arc<kisum_access::Company>> {
    state.engine.directory().company(company).ok_or_else(|| ApiError::not_found(format!("no company `{company}`")))
}

// ---------------------------------------------------------------- companies

/// `POST /admin/v1/companies`: a company document and its first owner, created atomically.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewCompany {
    /// The company, with any custom roles, subscriptions and overrides.
    company: CompanyDoc,
    /// The first owner: a declared user, who gets an active membership with the role `owner`.
    #[schema(value_type = String, pattern = "^[a-z0-9][a-z0-9_.-]{0,63}$")]
    owner: UserId,
}

/// A company with everything that belongs to it, as world-file documents.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CompanyView {
    /// The company, with its custom roles, subscriptions and overrides.
    company: CompanyDoc,
    /// Its memberships.
    memberships: Vec<MembershipDoc>,
    /// Its agents.
    agents: Vec<AgentDoc>,
    /// Its delegations.
    delegations: Vec<DelegationDoc>,
}

impl CompanyView {
    fn of(company: &kisum_access::Company) -> CompanyView {
        let source = company.source();
        CompanyView {
            company: source.company.clone(),
            memberships: source.memberships.clone(),
            agents: source.agents.clone(),
            delegations: source.delegations.clone(),
        }
    }
}

/// Creates a company with its first owner (`admin:company:create`).
#[utoipa::path(post, path = "/admin/v1/companies", tag = "admin",
    request_body = NewCompany,
    responses(
        (status = 201, description = "Created", body = CompanyView, headers(("kisum-version" = u64, description = "The store's sequence after the write"))),
        (status = 401, description = "No token, or a token refused", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not platform staff or a platform service", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The id is taken", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An invalid document", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn create_company(
    State(state): State<Arc<CoreState>>,
    Admin(actor, _): Admin<caller::CompanyCreate>,
    ApiJson(body): ApiJson<NewCompany>,
) -> ApiResult<Response> {
    let company = company_id(&body.company.id).map_err(|_| ApiError::invalid("/company/id", "not a company id"))?;
    let record = state.write(&actor, Change::CreateCompany { company: body.company, owner: body.owner }, &[]).await?;
    let view = existing(&state, &company).map(|c| CompanyView::of(&c))?;
    Ok(written(StatusCode::CREATED, &record, to_json(&view)))
}

/// `?cursor=&limit=` of the company listing.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct Page {
    /// The last id of the previous page (companies come sorted by id).
    cursor: Option<String>,
    /// At most this many companies (1–1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// One page of companies.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CompanyPage {
    /// The companies, sorted by id.
    companies: Vec<CompanyDoc>,
    /// The cursor of the next page, if there is one.
    next_cursor: Option<String>,
}

/// Lists companies, sorted by id, a page at a time (`admin:company:read`).
#[utoipa::path(get, path = "/admin/v1/companies", tag = "admin",
    params(Page),
    responses(
        (status = 200, description = "A page of companies", body = CompanyPage),
        (status = 401, description = "No token, or a token refused", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not platform staff or a platform service", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A malformed limit", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn list_companies(
    State(state): State<Arc<CoreState>>,
    _: Admin<caller::CompanyRead>,
    _: kisum_server::fresh::Fresh,
    ApiQuery(page): ApiQuery<Page>,
) -> ApiResult<Json<CompanyPage>> {
    let limit = page.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("/limit", "a limit is 1 to 1000"));
    }
    let directory = state.engine.directory();
    let ids = directory.company_ids();
    let start = match &page.cursor {
        Some(cursor) => ids.partition_point(|id| id.as_str() <= cursor.as_str()),
        None => 0,
    };
    let companies: Vec<CompanyDoc> = ids
        .iter()
        .skip(start)
        .take(limit as usize)
        .filter_map(|id| directory.company(id))
        .map(|c| c.source().company.clone())
        .collect();
    let last = start + companies.len();
    let next_cursor = (last < ids.len()).then(|| companies.last().map(|c| c.id.clone())).flatten();
    Ok(Json(CompanyPage { companies, next_cursor }))
}

/// A company with its memberships, agents and delegations (`admin:company:read`).
#[utoipa::path(get, path = "/admin/v1/companies/{c}", tag = "admin",
    params(("c" = String, Path, description = "The company id")),
    responses(
        (status = 200, description = "The company", body = CompanyView),
        (status = 401, description = "No token, or a token refused", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not platform staff or a platform service", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such company", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn get_company(
    State(state): State<Arc<CoreState>>,
    _: Admin<caller::CompanyRead>,
    _: kisum_server::fresh::Fresh,
    ApiPath(c): ApiPath<String>,
) -> ApiResult<Json<CompanyView>> {
    let company = existing(&state, &company_id(&c)?)?;
    Ok(Json(CompanyView::of(&company)))
}

/// Removes a company with everything that belongs to it (`admin:company:delete`).
#[utoipa::path(delete, path = "/admin/v1/companies/{c}", tag = "admin",
    params(("c" = String, Path, description = "The company id")),
    responses(
        (status = 204, description = "Removed", headers(("kisum-version" = u64, description = "The store's sequence after the write"))),
        (status = 401, description = "No token, or a token refused", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not platform staff or a platform service", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such company", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn remove_company(
    State(state): State<Arc<CoreState>>,
    Admin(actor, _): Admin<caller::CompanyDelete>,
    ApiPath(c): ApiPath<String>,
) -> ApiResult<Response> {
    let company = company_id(&c)?;
    // Its agents' clients go with it; its id is retired (the directory refuses it to a new company).
    let side = [SideWrite::RemoveAgentClients { company: company.to_string(), agent: None }];
    let record = state.write(&actor, Change::RemoveCompany { company }, &side).await?;
    Ok(written(StatusCode::NO_CONTENT, &record, None))
}

// ---------------------------------------------------------------- users

/// `POST /admin/v1/users`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewUser {
    /// The user id.
    #[schema(value_type = String, pattern = "^[a-z0-9][a-z0-9_.-]{0,63}$")]
    id: UserId,
    /// The password (8 to 1024 characters); stored as an argon2id hash only.
    #[schema(min_length = 8, max_length = 1024)]
    password: String,
}

/// A created user.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UserView {
    /// The user id.
    #[schema(value_type = String)]
    id: UserId,
}

/// `PUT /admin/v1/users/{u}/password`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewPassword {
    /// The password (8 to 1024 characters).
    #[schema(min_length = 8, max_length = 1024)]
    password: String,
}

/// Declares a user with a password (`admin:user:create`).
#[utoipa::path(post, path = "/admin/v1/users", tag = "admin",
    request_body = NewUser,
    responses(
        (status = 201, description = "Created", body = UserView, headers(("kisum-version" = u64, description = "The store's sequence after the write"))),
        (status = 401, description = "No token, or a token refused", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not platform staff or a platform service", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The id is taken", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An invalid id or password", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn create_user(
    State(state): State<Arc<CoreState>>,
    Admin(actor, _): Admin<caller::UserCreate>,
    ApiJson(body): ApiJson<NewUser>,
) -> ApiResult<Response> {
    password::check_policy(&body.password)?;
    if state.engine.directory().has_user(&body.id) {
        return Err(ApiError::new(kisum_errors::ErrorCode::Conflict, format!("duplicate user `{}`", body.id)));
    }
    let hash = password::hash(body.password).await?;
    let side = [SideWrite::SetPassword { user: body.id.clone(), hash }];
    let record = state.write(&actor, Change::AddUser { user: body.id.clone() }, &side).await?;
    Ok(written(StatusCode::CREATED, &record, to_json(&UserView { id: body.id })))
}

/// Sets a user's password (`admin:user:update`).
#[utoipa::path(put, path = "/admin/v1/users/{u}/password", tag = "admin",
    params(("u" = String, Path, description = "The user id")),
    request_body = NewPassword,
    responses(
        (status = 204, description = "Set", headers(("kisum-version" = u64, description = "The store's sequence after the write"))),
        (status = 401, description = "No token, or a token refused", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not platform staff or a platform service", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An invalid password", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn set_password(
    State(state): State<Arc<CoreState>>,
    Admin(actor, _): Admin<caller::UserUpdate>,
    ApiPath(u): ApiPath<String>,
    ApiJson(body): ApiJson<NewPassword>,
) -> ApiResult<Response> {
    let user = user_id(&u)?;
    if !state.engine.directory().has_user(&user) {
        return Err(ApiError::not_found(format!("no user `{user}`")));
    }
    let hash = password::hash(body.password).await?;
    // Every session of the user ends with the old password (Auth's feed tells modules: `session_revoked`).
    let side = [
        SideWrite::SetPassword { user: user.clone(), hash },
        SideWrite::RevokeUserSessions { user: user.clone(), at: state.now().unix_seconds() },
    ];
    let record = state.write(&actor, Change::SetPassword { user, end_sessions: true }, &side).await?;
    Ok(written(StatusCode::NO_CONTENT, &record, None))
}

/// Disables a user: it may no longer sign in, and its sessions end (`admin:user:update`).
#[utoipa::path(post, path = "/admin/v1/users/{u}/disable", tag = "admin",
    params(("u" = String, Path, description = "The user id")),
    responses(
        (status = 204, description = "Disabled", headers(("kisum-version" = u64, description = "The store's sequence after the write"))),
        (status = 401, description = "No token, or a token refused", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not platform staff or a platform service", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn disable_user(
    State(state): State<Arc<CoreState>>,
    Admin(actor, _): Admin<caller::UserUpdate>,
    ApiPath(u): ApiPath<String>,
) -> ApiResult<Response> {
    let user = user_id(&u)?;
    // Disabled, and every session of the user ended with it (Auth's feed tells modules: `session_revoked`).
    let side = [
        SideWrite::DisableUser { user: user.clone(), at: state.now() },
        SideWrite::RevokeUserSessions { user: user.clone(), at: state.now().unix_seconds() },
    ];
    let record = state.write(&actor, Change::DisableUser { user }, &side).await?;
    Ok(written(StatusCode::NO_CONTENT, &record, None))
}

// ---------------------------------------------------------------- subscriptions

/// Adds a subscription to a company (`admin:subscription:write`).
#[utoipa::path(post, path = "/admin/v1/companies/{c}/subscriptions", tag = "admin",
    params(("c" = String, Path, description = "The company id")),
    request_body = SubscriptionDoc,
    responses(
        (status = 201, description = "Created", body = SubscriptionDoc, headers(("kisum-version" = u64, description = "The store's sequence after the write"))),
        (status = 401, description = "No token, or a token refused", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not platform staff or a platform service", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such company", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The id is taken, or a package subscription would overlap another", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An invalid subscription", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn create_subscription(
    State(state): State<Arc<CoreState>>,
    Admin(actor, _): Admin<caller::SubscriptionWrite>,
    ApiPath(c): ApiPath<String>,
    ApiJson(subscription): ApiJson<SubscriptionDoc>,
) -> ApiResult<Response> {
    let company = company_id(&c)?;
    let body = to_json(&subscription);
    let record = state.write(&actor, Change::AddSubscription { company, subscription }, &[]).await?;
    Ok(written(StatusCode::CREATED, &record, body))
}

/// Moves a subscription through its lifecycle (`admin:subscription:write`): trial → active,
/// active → past due (with `grace_until`), pause/resume, cancel at period end (`ends_at`), plan change,
/// cancel or expire. A transition the lifecycle does not allow is `409`.
#[utoipa::path(patch, path = "/admin/v1/companies/{c}/subscriptions/{id}", tag = "admin",
    params(("c" = String, Path, description = "The company id"), ("id" = String, Path, description = "The subscription id")),
    request_body = SubscriptionPatch,
    responses(
        (status = 200, description = "The subscription after the change", body = SubscriptionDoc, headers(("kisum-version" = u64, description = "The store's sequence after the write"))),
        (status = 401, description = "No token, or a token refused", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not platform staff or a platform service", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such company or subscription", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A transition the lifecycle does not allow, or an overlap", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An invalid result", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn update_subscription(
    State(state): State<Arc<CoreState>>,
    Admin(actor, _): Admin<caller::SubscriptionWrite>,
    ApiPath((c, id)): ApiPath<(String, String)>,
    ApiJson(patch): ApiJson<SubscriptionPatch>,
) -> ApiResult<Response> {
    let company = company_id(&c)?;
    let subscription =
        SubscriptionId::parse(&id).map_err(|_| ApiError::not_found(format!("no subscription `{}`", clip(&id))))?;
    let change = Change::UpdateSubscription { company: company.clone(), subscription: subscription.clone(), patch };
    let record = state.write(&actor, change, &[]).await?;
    let after = existing(&state, &company)?
        .source()
        .company
        .subscriptions
        .iter()
        .find(|s| s.id == subscription.as_str())
        .cloned();
    Ok(written(StatusCode::OK, &record, after.as_ref().and_then(to_json)))
}

// ---------------------------------------------------------------- overrides

/// The overrides of a company.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct OverrideList {
    /// The overrides, each with its id.
    overrides: Vec<OverrideDoc>,
}

/// Adds an override (`admin:override:write`); the server assigns its `id` (an `id` in the body is
/// refused).
#[utoipa::path(post, path = "/admin/v1/companies/{c}/overrides", tag = "admin",
    params(("c" = String, Path, description = "The company id")),
    request_body = OverrideDoc,
    responses(
        (status = 201, description = "Created, with its id", body = OverrideDoc, headers(("kisum-version" = u64, description = "The store's sequence after the write"))),
        (status = 401, description = "No token, or a token refused", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not platform staff or a platform service", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such company", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An invalid override", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn create_override(
    State(state): State<Arc<CoreState>>,
    Admin(actor, _): Admin<caller::OverrideWrite>,
    ApiPath(c): ApiPath<String>,
    ApiJson(mut item): ApiJson<OverrideDoc>,
) -> ApiResult<Response> {
    let company = company_id(&c)?;
    if item.id.is_some() {
        return Err(ApiError::invalid("/id", "the server assigns override ids"));
    }
    item.id = Some(random::id("ov")?);
    let body = to_json(&item);
    let record = state.write(&actor, Change::AddOverride { company, item }, &[]).await?;
    Ok(written(StatusCode::CREATED, &record, body))
}

/// Lists a company's overrides (`admin:override:read`).
#[utoipa::path(get, path = "/admin/v1/companies/{c}/overrides", tag = "admin",
    params(("c" = String, Path, description = "The company id")),
    responses(
        (status = 200, description = "The overrides", body = OverrideList),
        (status = 401, description = "No token, or a token refused", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not platform staff or a platform service", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such company", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn list_overrides(
    State(state): State<Arc<CoreState>>,
    _: Admin<caller::OverrideRead>,
    _: kisum_server::fresh::Fresh,
    ApiPath(c): ApiPath<String>,
) -> ApiResult<Json<OverrideList>> {
    let company = existing(&state, &company_id(&c)?)?;
    Ok(Json(OverrideList { overrides: company.source().company.overrides.clone() }))
}

/// Removes an override (`admin:override:write`).
#[utoipa::path(delete, path = "/admin/v1/companies/{c}/overrides/{id}", tag = "admin",
    params(("c" = String, Path, description = "The company id"), ("id" = String, Path, description = "The override id")),
    responses(
        (status = 204, description = "Removed", headers(("kisum-version" = u64, description = "The store's sequence after the write"))),
        (status = 401, description = "No token, or a token refused", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not platform staff or a platform service", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such company or override", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn remove_override(
    State(state): State<Arc<CoreState>>,
    Admin(actor, _): Admin<caller::OverrideWrite>,
    ApiPath((c, id)): ApiPath<(String, String)>,
) -> ApiResult<Response> {
    let company = company_id(&c)?;
    let id = OverrideId::parse(&id).map_err(|_| ApiError::not_found(format!("no override `{}`", clip(&id))))?;
    let record = state.write(&actor, Change::RemoveOverride { company, id }, &[]).await?;
    Ok(written(StatusCode::NO_CONTENT, &record, None))
}

// ---------------------------------------------------------------- plans

/// Publishes a new, immutable version of a package or add-on (`admin:plan:publish`); an existing
/// `(id, version)` is `409`.
#[utoipa::path(post, path = "/admin/v1/plans", tag = "admin",
    request_body = PlanDoc,
    responses(
        (status = 201, description = "Published", body = PlanDoc, headers(("kisum-version" = u64, description = "The store's sequence after the write"))),
        (status = 401, description = "No token, or a token refused", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not platform staff or a platform service", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "That version exists", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An invalid plan", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn publish_plan(
    State(state): State<Arc<CoreState>>,
    Admin(actor, _): Admin<caller::PlanPublish>,
    ApiJson(plan): ApiJson<PlanDoc>,
) -> ApiResult<Response> {
    let body = to_json(&plan);
    let record = state.write(&actor, Change::PublishPlan { plan }, &[]).await?;
    Ok(written(StatusCode::CREATED, &record, body))
}

// ---------------------------------------------------------------- audit

/// `?after=&company=&limit=` of the audit log.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditQuery {
    /// Records after this sequence (default 0: from the oldest kept).
    #[param(minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    after: Option<u64>,
    /// Only this company's records.
    #[param(pattern = "^[a-z0-9][a-z0-9_.-]{0,63}$")]
    company: Option<String>,
    /// At most this many records (1–1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// Every write, platform-wide (`admin:audit:read`): actor, instant, kind, company, whom it touched,
/// before and after.
#[utoipa::path(get, path = "/admin/v1/audit", tag = "admin",
    params(AuditQuery),
    responses(
        (status = 200, description = "A page of records", body = AuditPage),
        (status = 401, description = "No token, or a token refused", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not platform staff or a platform service", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A malformed query", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn audit(
    State(state): State<Arc<CoreState>>,
    _: Admin<caller::AuditRead>,
    _: kisum_server::fresh::Fresh,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> ApiResult<Json<AuditPage>> {
    let company = match &query.company {
        Some(c) => Some(CompanyId::parse(c).map_err(|e| ApiError::invalid("/company", e.to_string()))?),
        None => None,
    };
    let store = state.engine.store();
    Ok(Json(kisum_server::audit::page(store.as_ref(), company.as_ref(), query.after, query.limit).await?))
}

// ---------------------------------------------------------------- support sessions

/// `POST /admin/v1/support-sessions`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewSupportSession {
    /// The company to act in.
    #[schema(pattern = "^[a-z0-9][a-z0-9_.-]{0,63}$")]
    company: String,
    /// Why; shown to the company's owners in its audit log.
    #[schema(min_length = 1)]
    reason: String,
    /// How long, in minutes (1 to 240).
    #[schema(minimum = 1, maximum = 240)]
    minutes: u32,
    /// The roles the staff user holds meanwhile (default `["owner"]`).
    roles: Option<Vec<String>>,
}

/// An open support session.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SupportSessionView {
    /// The company.
    company: String,
    /// The session.
    session: SupportSessionDoc,
}

/// Opens a support session (`admin:support:open`, staff users only): the caller acts inside the
/// company with the given roles until the session ends (at most 4 hours) or is closed. It takes no seat
/// and never counts as the company's owner; it and everything done in it is in the company's audit log.
#[utoipa::path(post, path = "/admin/v1/support-sessions", tag = "admin",
    request_body = NewSupportSession,
    responses(
        (status = 201, description = "Opened", body = SupportSessionView, headers(("kisum-version" = u64, description = "The store's sequence after the write"))),
        (status = 401, description = "No token, or a token refused", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a platform staff user with the permission", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such company", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The staff user is already a member of the company", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An invalid session", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn open_support_session(
    State(state): State<Arc<CoreState>>,
    Admin(actor, _): Admin<caller::SupportOpen>,
    ApiJson(body): ApiJson<NewSupportSession>,
) -> ApiResult<Response> {
    let Actor::Staff(user) = &actor else {
        return Err(ApiError::new(kisum_errors::ErrorCode::Forbidden, "support sessions are opened by a staff user")
            .with_required(caller::SUPPORT_OPEN));
    };
    if !(1..=240).contains(&body.minutes) {
        return Err(ApiError::invalid("/minutes", "a support session lasts 1 to 240 minutes"));
    }
    let company = CompanyId::parse(&body.company).map_err(|e| ApiError::invalid("/company", e.to_string()))?;
    let opened_at = state.now();
    let session = SupportSessionDoc {
        id: random::id("ss")?,
        user: user.to_string(),
        reason: body.reason,
        roles: body.roles.unwrap_or_else(|| vec!["owner".into()]),
        opened_at,
        expires_at: Timestamp::from_unix(opened_at.unix_seconds() + i64::from(body.minutes) * 60),
        closed_at: None,
    };
    let view = SupportSessionView { company: company.to_string(), session: session.clone() };
    let record = state.write(&actor, Change::OpenSupportSession { company, session }, &[]).await?;
    Ok(written(StatusCode::CREATED, &record, to_json(&view)))
}

/// Closes a support session (`admin:support:close`): the staff user's access ends at once.
#[utoipa::path(delete, path = "/admin/v1/support-sessions/{id}", tag = "admin",
    params(("id" = String, Path, description = "The session id")),
    responses(
        (status = 204, description = "Closed", headers(("kisum-version" = u64, description = "The store's sequence after the write"))),
        (status = 401, description = "No token, or a token refused", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not platform staff or a platform service", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such session", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The session is already over", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn close_support_session(
    State(state): State<Arc<CoreState>>,
    Admin(actor, _): Admin<caller::SupportClose>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Response> {
    // Session ids are not tied to a company in the route: the directory indexes them.
    let company = state
        .engine
        .directory()
        .support_session_company(&id)
        .ok_or_else(|| ApiError::not_found(format!("no support session `{}`", clip(&id))))?;
    let record = state.write(&actor, Change::CloseSupportSession { company, id }, &[]).await?;
    Ok(written(StatusCode::NO_CONTENT, &record, None))
}
