//! The routes for members and modules: the catalog and a company's entitlements; health.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use kisum_access::Access;
use kisum_access::doc::AccessCatalogDoc;
use kisum_entitlements::{CompanyId, EntitlementsSummary, Timestamp};
use kisum_server::{ApiError, ApiPath, ApiQuery, ApiResult, clip};

use serde::Deserialize;
use utoipa::IntoParams;

use crate::caller;
use crate::state::CoreState;

/// `?at=`: the instant to answer for (RFC 3339, default now).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct At {
    /// The instant, RFC 3339 with an offset; default now.
    #[param(value_type = Option<String>, format = DateTime)]
    at: Option<String>,
}

impl At {
    fn instant(&self, state: &CoreState) -> ApiResult<Timestamp> {
        match &self.at {
            None => Ok(state.now()),
            Some(text) => Timestamp::parse(text).map_err(|e| ApiError::invalid("/at", e.to_string())),
        }
    }
}

/// Parses a company id from a path; a malformed one names no company (`404`).
pub(crate) fn company_id(text: &str) -> ApiResult<CompanyId> {
    CompanyId::parse(text).map_err(|_| ApiError::not_found(format!("no company `{}`", clip(text))))
}

/// The catalog: modules, features, limits, permissions, system roles, and every version of every
/// package and add-on. Any valid token (user or service) may read it.
#[utoipa::path(get, path = "/v1/catalog", tag = "catalog",
    responses(
        (status = 200, description = "The catalog", body = AccessCatalogDoc),
        (status = 401, description = "No token, or a token refused", body = kisum_server::openapi::ProblemSchema, content_type = "application/problem+json"),
        (status = 503, description = "`kisum-at-least` names a version this replica has not reached within 1 s", body = kisum_server::openapi::ProblemSchema, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn catalog(
    State(state): State<Arc<CoreState>>,
    _: kisum_server::Bearer,
    _: kisum_server::fresh::Fresh,
) -> ApiResult<Json<AccessCatalogDoc>> {
    Ok(Json(state.engine.directory().catalog().doc().clone()))
}

/// A company's entitlements at an instant, in the shape of `kisum entitlements` (with provenance).
/// Callers: a member's token of that company, or a service token with `core:entitlements:read`; anyone
/// else gets `404`, as for a company that does not exist.
#[utoipa::path(get, path = "/v1/companies/{c}/entitlements", tag = "entitlements",
    params(("c" = String, Path, description = "The company id"), At),
    responses(
        (status = 200, description = "The entitlements", body = EntitlementsSummary),
        (status = 401, description = "No token, or a token refused", body = kisum_server::openapi::ProblemSchema, content_type = "application/problem+json"),
        (status = 404, description = "No such company, or not the caller's", body = kisum_server::openapi::ProblemSchema, content_type = "application/problem+json"),
        (status = 422, description = "A malformed `at` or `kisum-at-least`", body = kisum_server::openapi::ProblemSchema, content_type = "application/problem+json"),
        (status = 503, description = "`kisum-at-least` names a version this replica has not reached within 1 s", body = kisum_server::openapi::ProblemSchema, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn entitlements(
    State(state): State<Arc<CoreState>>,
    kisum_server::Bearer(claims): kisum_server::Bearer,
    _: kisum_server::fresh::Fresh,
    ApiPath(c): ApiPath<String>,
    ApiQuery(at): ApiQuery<At>,
) -> ApiResult<Json<EntitlementsSummary>> {
    let company = company_id(&c)?;
    caller::entitlements_reader(&state, &claims, &company)?;
    let at = at.instant(&state)?;
    let summary = state
        .engine
        .directory()
        .entitlements(&company, at)
        .ok_or_else(|| ApiError::not_found(format!("no company `{company}`")))?;
    Ok(Json(summary))
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/health/live", tag = "health",
    responses((status = 200, description = "Alive", body = kisum_server::health::Health)))]
pub(crate) async fn live() -> Response {
    kisum_server::health::live()
}

/// Readiness: the store answers and the state is loaded.
#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses(
        (status = 200, description = "Ready", body = kisum_server::health::Health),
        (status = 503, description = "The store does not answer", body = kisum_server::health::Health),
    ))]
pub(crate) async fn ready(State(state): State<Arc<CoreState>>) -> Response {
    kisum_server::health::ready(state.engine.ready().await)
}
