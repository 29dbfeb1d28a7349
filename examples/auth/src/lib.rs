//! Auth: identity and access over HTTP (API.md §1–2). Users sign in (`POST /v1/sessions`) and exchange
//! their session's refresh token for a company's access token at the token endpoint, which also serves
//! platform services (client credentials) and agents acting for users (token exchange, RFC 8693). Auth
//! signs with keys it rotates and publishes (`/.well-known/jwks.json`), answers access questions
//! (snapshots, checks, who-can, the frontend's manifest), takes the access writes of company members
//! (memberships, roles, agents, delegations), and publishes every committed change on a feed that modules
//! follow to drop what they cached.
//!
//! Auth is a thin layer: every rule is the engine's (`kisum-access`) and every write goes through the
//! store's change log (`kisum-store`), durable before it is visible. Several Auth processes can share one
//! PostgreSQL store: each follows the log ([`background`]), so a write through one is decided by all.
//!
//! [`app`] builds the router (tests drive it with `tower::ServiceExt::oneshot`); the `kisum-auth` binary
//! serves it.
#![forbid(unsafe_code)]

mod access;
pub mod boot;
mod caller;
pub mod clients;
mod feed;
mod keys;
pub mod oauth;
mod reads;
mod sessions;
mod start;
mod state;
mod writes;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use kisum_access::Change;
use kisum_server::openapi::BearerScheme;
use kisum_server::{ApiError, ApiResult};
use kisum_store::{Installed, StoreError};
use tokio::sync::broadcast::error::RecvError;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use access::MAX_BATCH;
pub use caller::ACCESS_READ;
pub use feed::HEARTBEAT;
pub use keys::{Keys, Rotation};
pub use kisum_access::{FeedEvent, RevocationList, RevokedSession};
pub use oauth::TokenAnswer;
pub use start::{Config, Started, start};
pub use state::{AuthState, Settings};
pub use writes::SUPPORT_RECORD;

/// What can stop Auth from starting.
pub type StartError = Box<dyn std::error::Error + Send + Sync>;

/// The permission an operator's key rotation needs.
pub const KEY_ROTATE: &str = "admin:key:rotate";

#[derive(OpenApi)]
#[openapi(
    paths(kisum_server::metrics::scrape),
    info(
        title = "Kisum Auth",
        description = "Sessions, the token endpoint, signing keys, access decisions, access writes and the \
                       change feed of the Kisum platform. Every error is application/problem+json (RFC 9457) \
                       with a stable `code`; the token endpoint's also carry RFC 6749's `error`.",
        version = "1.0.0"
    ),
    modifiers(&BearerScheme, &BasicScheme),
    components(schemas(kisum_server::openapi::ProblemSchema, kisum_server::openapi::FieldErrorSchema)),
    tags(
        (name = "sessions", description = "Signing in and out"),
        (name = "oauth", description = "The token endpoint and discovery"),
        (name = "access", description = "Access decisions"),
        (name = "writes", description = "Memberships, roles, agents, delegations and the audit log, by company members"),
        (name = "feed", description = "Every committed change, for caches"),
        (name = "admin", description = "Platform operations"),
        (name = "health", description = "Liveness and readiness")
    )
)]
struct ApiDoc;

/// HTTP Basic client authentication at the token endpoint.
struct BasicScheme;

impl utoipa::Modify for BasicScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme("basic", SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)));
        }
    }
}

fn routers() -> OpenApiRouter<Arc<AuthState>> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(sessions::login))
        .routes(routes!(sessions::revoke))
        .routes(routes!(oauth::token))
        .routes(routes!(oauth::jwks))
        .routes(routes!(oauth::metadata))
        .routes(routes!(access::snapshot))
        .routes(routes!(access::check))
        .routes(routes!(access::check_batch))
        .routes(routes!(access::who_can))
        .routes(routes!(access::me))
        .routes(routes!(reads::grantors))
        .routes(routes!(reads::company_access))
        .routes(routes!(writes::put_membership, writes::remove_membership))
        .routes(routes!(writes::put_role, writes::remove_role))
        .routes(routes!(writes::put_agent, writes::remove_agent))
        .routes(routes!(writes::rotate_agent_secret))
        .routes(routes!(writes::record_support_access))
        .routes(routes!(writes::create_delegation))
        .routes(routes!(writes::revoke_delegation))
        .routes(routes!(writes::audit))
        .routes(routes!(feed::changes))
        .routes(routes!(feed::revocations))
        .routes(routes!(rotate_keys))
        .routes(routes!(live))
        .routes(routes!(ready))
}

/// The OpenAPI 3.1 document of Auth, generated from the handlers.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routers().split_for_parts().1
}

/// Auth's router on `state`: every route of API.md §2, `/health/*` and `/openapi.json`, with the shared
/// fallbacks, body limit and request ids.
pub fn app(state: Arc<AuthState>) -> Router {
    let (router, api) = routers().split_for_parts();
    let router = kisum_server::openapi::with_document(router, &api);
    kisum_server::finish("auth", router.with_state(state))
}

/// Rotates the signing key now (DESIGN.md §5): the new key is published at once and signs after a short
/// lead (so verifiers can fetch it first); the old one is retired and stays published until its last
/// token has expired. No request fails during a rotation.
#[utoipa::path(post, path = "/admin/v1/keys/rotate", tag = "admin",
    responses(
        (status = 200, description = "Rotated", body = Rotation, headers(("kisum-version" = u64, description = "The store's sequence after the write"))),
        (status = 401, description = "No token, or a token refused", body = kisum_server::openapi::ProblemSchema, content_type = "application/problem+json"),
        (status = 403, description = "Not platform staff or a platform service with `admin:key:rotate`", body = kisum_server::openapi::ProblemSchema, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
async fn rotate_keys(State(state): State<Arc<AuthState>>, headers: HeaderMap) -> ApiResult<Response> {
    let actor = kisum_server::staff::platform_actor(
        &state.tokens,
        state.engine.directory(),
        &state.settings.platform_company,
        &headers,
        KEY_ROTATE,
    )?;
    let rotation = state
        .keys
        .rotate_now(&state.engine, &actor, state.now(), state.settings.rotation_lead)
        .await
        .map_err(|e| ApiError::new(kisum_errors::ErrorCode::Internal, format!("rotation failed: {e}")))?;
    state.reload_keys().await.map_err(|e| ApiError::new(kisum_errors::ErrorCode::Internal, e.to_string()))?;
    let version = axum::http::HeaderValue::from(rotation.version);
    Ok((StatusCode::OK, [(kisum_server::fresh::VERSION, version)], axum::Json(rotation)).into_response())
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/health/live", tag = "health",
    responses((status = 200, description = "Alive", body = kisum_server::health::Health)))]
async fn live() -> Response {
    kisum_server::health::live()
}

/// Readiness: the store answers and the state is loaded.
#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses(
        (status = 200, description = "Ready", body = kisum_server::health::Health),
        (status = 503, description = "The store does not answer", body = kisum_server::health::Health),
    ))]
async fn ready(State(state): State<Arc<AuthState>>) -> Response {
    kisum_server::health::ready(state.engine.ready().await)
}

/// Keeps a replica in step: learns what Auth's own state must (sessions revoked, users disabled, keys
/// changed) from every change its engine installs — the engine's one subscription to the log; the
/// directory itself follows the log through [`kisum_store::Engine::follow`], which the caller runs on a
/// replica — and every minute brings the key schedule up to date and forgets what has expired. What was
/// installed between opening the state and this call, or skipped after a reload or a lag, is read from
/// the log itself (or, past its retention, from Auth's tables).
pub fn background(state: Arc<AuthState>) -> tokio::task::JoinHandle<()> {
    let mut changes = state.engine.subscribe();
    tokio::spawn(async move {
        let mut last = replay_from_log(&state, state.watch_from()).await;
        let mut maintenance = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = maintenance.tick() => maintain(&state).await,
                change = changes.recv() => match change {
                    Ok(Installed::Change(entry)) => {
                        observe(&state, &entry).await;
                        last = entry.seq();
                    }
                    Ok(Installed::Reloaded { .. }) | Err(RecvError::Lagged(_)) => {
                        last = replay_from_log(&state, last).await;
                    }
                    Err(RecvError::Closed) => return,
                },
            }
        }
    })
}

/// Observes every change of the log after `after` (observing one twice is harmless); the sequence it got
/// to. Past the log's retention, what was missed is read again from Auth's tables.
async fn replay_from_log(state: &AuthState, mut after: u64) -> u64 {
    loop {
        match state.engine.store().changes_after(after, 1000).await {
            Ok(entries) if entries.is_empty() => return after,
            Ok(entries) => {
                for entry in entries {
                    observe(state, &entry).await;
                    after = entry.seq();
                }
            }
            Err(StoreError::ResyncRequired { from, .. }) => {
                if let Err(e) = state.reload_keys().await {
                    tracing::error!(error = %e, "reloading signing keys failed");
                }
                if let Err(e) = state.load_revoked().await {
                    tracing::error!(error = %e, "reloading revoked sessions failed");
                }
                after = from;
            }
            Err(e) => {
                tracing::warn!(error = %e, after, "reading the change log failed; the subscription goes on");
                return after;
            }
        }
    }
}

async fn observe(state: &AuthState, entry: &kisum_store::LogEntry) {
    match &entry.change {
        Change::RevokeSession { .. } | Change::DisableUser { .. } | Change::SetPassword { .. } => {
            kisum_server::revoked::observe(state.revoked(), entry)
        }
        Change::RotateKeys { .. } => {
            if let Err(e) = state.reload_keys().await {
                tracing::error!(error = %e, "reloading signing keys failed");
            }
        }
        _ => {}
    }
}

async fn maintain(state: &AuthState) {
    let now = state.now();
    if let Err(e) = state.keys.ensure(&state.engine, now).await {
        tracing::error!(error = %e, "key rotation failed");
    } else if let Err(e) = state.reload_keys().await {
        tracing::error!(error = %e, "reloading signing keys failed");
    }
    state.revoked().forget_before(now);
    // Sessions that ended more than a day ago, and old sign-in failures, go.
    if let Err(e) = state.engine.store().purge_auth(now.unix_seconds().saturating_sub(24 * 3600)).await {
        tracing::warn!(error = %e, "purging ended sessions failed");
    }
}

/// Entry points for the fuzz targets (`fuzz/`) and their corpus replay: the parsers of untrusted input
/// that are not public otherwise. Not an API.
#[doc(hidden)]
pub mod fuzzing {
    /// Parses a body of `POST /oauth/token` as the token endpoint does; whether it was accepted.
    pub fn token_form(body: &[u8]) -> bool {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        crate::oauth::form(&headers, body).is_ok()
    }
}
