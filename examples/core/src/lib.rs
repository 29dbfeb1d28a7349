//! Core: the commercial model over HTTP (API.md §1, §3). It serves the catalog and a company's
//! entitlements to modules and members, and the Admin API through which platform staff and platform
//! services run the business: companies, users, subscriptions and their lifecycle, overrides, plan
//! publication and the platform-wide audit log.
//!
//! Core is a thin layer: every rule is the engine's (`kisum-access`, `kisum-entitlements`) and every
//! write goes through the store's change log (`kisum-store`): durable before it is visible, answered with
//! `kisum-version`, and seen by every other replica through the log.
//!
//! [`app`] builds the router (tests drive it with `tower::ServiceExt::oneshot`); [`start`] builds it on an
//! engine with its background tasks — the one boot path of the `kisum-core` binary and `kisum-platform`.
#![forbid(unsafe_code)]

mod admin;
mod caller;
mod clients;
mod public;
mod start;
mod state;

use std::sync::Arc;

use axum::Router;
use kisum_server::openapi::BearerScheme;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use caller::admin_permissions;
pub use start::{Config, Start, StartError, start};
pub use state::CoreState;

#[derive(OpenApi)]
#[openapi(
    paths(kisum_server::metrics::scrape),
    info(
        title = "Kisum Core and Admin API",
        description = "The commercial model (catalog, entitlements) and the Admin API of the Kisum platform. \
                       Every error is application/problem+json (RFC 9457) with a stable `code`.",
        version = "1.0.0"
    ),
    modifiers(&BearerScheme),
    components(schemas(kisum_server::openapi::ProblemSchema, kisum_server::openapi::FieldErrorSchema)),
    tags(
        (name = "catalog", description = "Every plan version"),
        (name = "entitlements", description = "What a company may use"),
        (name = "admin", description = "Running the business: platform staff and platform services only"),
        (name = "health", description = "Liveness and readiness")
    )
)]
struct ApiDoc;

fn routers() -> OpenApiRouter<Arc<CoreState>> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(public::catalog))
        .routes(routes!(public::entitlements))
        .routes(routes!(public::live))
        .routes(routes!(public::ready))
        .routes(routes!(admin::create_company, admin::list_companies))
        .routes(routes!(admin::get_company, admin::remove_company))
        .routes(routes!(admin::create_user))
        .routes(routes!(admin::set_password))
        .routes(routes!(admin::disable_user))
        .routes(routes!(admin::create_subscription))
        .routes(routes!(admin::update_subscription))
        .routes(routes!(admin::create_override, admin::list_overrides))
        .routes(routes!(admin::remove_override))
        .routes(routes!(admin::publish_plan))
        .routes(routes!(admin::audit))
        .routes(routes!(admin::open_support_session))
        .routes(routes!(admin::close_support_session))
        .routes(routes!(clients::register, clients::list))
        .routes(routes!(clients::rotate))
        .routes(routes!(clients::remove))
}

/// The OpenAPI 3.1 document of Core, generated from the handlers.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routers().split_for_parts().1
}

/// Core's router on `state`: every route of API.md §3, `/health/*` and `/openapi.json`, with the shared
/// fallbacks, body limit and request ids.
pub fn app(state: Arc<CoreState>) -> Router {
    let (router, api) = routers().split_for_parts();
    let router = kisum_server::openapi::with_document(router, &api);
    kisum_server::finish("core", router.with_state(state))
}
