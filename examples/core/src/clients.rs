//! Platform service clients (`/admin/v1/clients`): register, list, rotate and delete the clients modules
//! and services sign in with (client credentials at Auth), each with only the scopes it needs. Every
//! write is a change in the log (`put_service_client`, `remove_service_client`: audited, seen by every
//! replica); the client and its secret's hash live in Auth's state, written in the same transaction.
//!
//! Nobody gives more than it has: a service caller only scopes both its token's scopes and its client's
//! registered scopes cover, while that client exists; a staff user only scopes whose every catalog
//! permission its own roles grant it in the platform company (the granted set of DESIGN.md §4:
//! entitlements aside, restrictions counted), and the service scopes that match no catalog permission —
//! `auth:access:read`, `auth:support:record`, `core:entitlements:read` — named exactly (no `auth:*`,
//! which would cover every service route to come). Rotating or deleting a client needs the same as
//! giving its scopes. A wildcard scope follows the catalog, as a role's wildcard grant does.
//! `platform-admin` is the operator's (`KISUM_ADMIN_CLIENT_SECRET`), and agents' clients are their
//! companies': neither is managed here.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use kisum_access::{Access, Actor, Change, Pattern};
use kisum_errors::ErrorCode;
use kisum_server::fresh::written;
use kisum_server::{ApiError, ApiJson, ApiPath, ApiResult, random};
use kisum_store::{ServiceClient, SideWrite};
use kisum_token::{Accept, Expect};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::caller::{self, Admin};
use crate::state::CoreState;

type Problem = kisum_server::openapi::ProblemSchema;

/// The operator's client, set by `KISUM_ADMIN_CLIENT_SECRET`: never registered, rotated or deleted here.
const PLATFORM_ADMIN: &str = "platform-admin";

/// Scopes of Auth's and Core's service routes, which name no catalog permission.
pub(crate) const SERVICE_SCOPES: &[&str] = &["auth:access:read", "auth:support:record", caller::ENTITLEMENTS_READ];

/// `POST /admin/v1/clients`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewClient {
    /// The client id: 1 to 64 of `[a-z0-9_.-]`, starting with a letter or digit.
    #[schema(pattern = "^[a-z0-9][a-z0-9_.-]{0,63}$")]
    client_id: String,
    /// Its scopes: permission patterns (`auth:access:read`, `finance:*`, …), 1 to 32 of them.
    #[schema(min_items = 1, max_items = 32)]
    scopes: Vec<String>,
}

/// A service client (never its secret, but once: when registered or rotated).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ClientView {
    /// The client id.
    client_id: String,
    /// Its scopes.
    scopes: Vec<String>,
    /// When it was registered (Unix seconds).
    created_at: i64,
    /// The secret, shown this once (registration and rotation only).
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<String>,
}

impl ClientView {
    fn of(client: &ServiceClient, secret: Option<String>) -> ClientView {
        ClientView {
            client_id: client.client_id.clone(),
            scopes: client.scopes.clone(),
            created_at: client.created_at,
            client_secret: secret,
        }
    }
}

/// The platform's service clients.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ClientList {
    /// Every client but agents', by id.
    clients: Vec<ClientView>,
}

fn client_id(text: &str) -> ApiResult<String> {
    let valid = kisum_access::UserId::parse(text).is_ok();
    if !valid {
        return Err(ApiError::invalid(
            "/client_id",
            "a client id is 1 to 64 of [a-z0-9_.-], starting with a letter or digit",
        ));
    }
    if text == PLATFORM_ADMIN {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "`platform-admin` is the operator's client: its secret is KISUM_ADMIN_CLIENT_SECRET",
        ));
    }
    Ok(text.to_owned())
}

/// The platform client `id` (not an agent's), or `404` (an id that cannot be one included); `409` for
/// `platform-admin`.
async fn stored(state: &CoreState, id: &str) -> ApiResult<ServiceClient> {
    let id = client_id(id).map_err(|e| match e.code() {
        ErrorCode::Conflict => e,
        _ => ApiError::not_found(format!("no service client `{}`", kisum_server::clip(id))),
    })?;
    match state.engine.store().service_client(&id).await? {
        Some(client) if client.company.is_none() => Ok(client),
        _ => Err(ApiError::not_found(format!("no service client `{id}`"))),
    }
}

/// Refuses a scope the caller could not give. A service: scopes both its token's scopes and its client's
/// registered scopes cover, and only while that client exists (a deleted client's tokens manage nothing).
/// A staff user: every catalog permission the scope matches must be in its granted set in the platform
/// company; a service scope (matching no catalog permission) must be named exactly. `403` names the first
/// permission outside the caller's own.
async fn within_callers_own(state: &CoreState, actor: &Actor, headers: &HeaderMap, scopes: &[String]) -> ApiResult<()> {
    let directory = state.engine.directory();
    let catalog = directory.catalog();
    // A service's own client, as registered now.
    let own = match actor {
        Actor::Service(client) => {
            let claims = state.tokens.verify(headers, Expect::new(Accept::Both))?;
            match state.engine.store().service_client(client.as_str()).await? {
                Some(record) => Some((claims, record)),
                None => {
                    return Err(ApiError::new(
                        ErrorCode::Forbidden,
                        format!("the client `{client}` no longer exists: its tokens manage no client"),
                    ));
                }
            }
        }
        _ => None,
    };
    for (i, scope) in scopes.iter().enumerate() {
        let pattern = Pattern::parse(scope).map_err(|e| ApiError::invalid(&format!("/scopes/{i}"), e.to_string()))?;
        let refused = |what: &str| {
            ApiError::new(ErrorCode::Forbidden, format!("scope `{scope}` would give `{what}`, which you do not hold"))
                .with_required(what)
        };
        match (actor, &own) {
            (Actor::Service(_), Some((claims, record))) => {
                let registered =
                    record.scopes.iter().any(|s| Pattern::parse(s).is_ok_and(|p| p.matches(pattern.as_str())));
                if !claims.scope_allows(pattern.as_str()) || !registered {
                    return Err(refused(scope));
                }
            }
            (Actor::Staff(user), _) => {
                let now = state.now();
                let mut matched = false;
                for id in catalog.permission_ids() {
                    let key = catalog.key(id);
                    if !pattern.matches(key) {
                        continue;
                    }
                    matched = true;
                    if !directory.holds(&state.platform_company, user, id, now) {
                        return Err(refused(key));
                    }
                }
                let service = SERVICE_SCOPES.contains(&pattern.as_str());
                if let Some(wide) = SERVICE_SCOPES.iter().find(|s| !pattern.is_key() && pattern.matches(s)) {
                    // `auth:*` would cover every service route to come: name each service scope.
                    return Err(refused(wide));
                }
                if !matched && !service {
                    return Err(ApiError::invalid(
                        &format!("/scopes/{i}"),
                        format!("`{scope}` matches no permission of the catalog and no service scope"),
                    ));
                }
            }
            _ => return Err(refused(scope)),
        }
    }
    Ok(())
}

/// Why a rotation or deletion of client `id`, judged when its secret was `expected`, failed: it is gone
/// (`404`), or registered again (`409`) — nothing was written either way; else the failure as it is.
async fn changed_meanwhile(state: &CoreState, id: &str, expected: &str, error: ApiError) -> ApiError {
    match state.engine.store().service_client(id).await {
        Ok(None) => ApiError::not_found(format!("no service client `{id}`")),
        Ok(Some(now)) if now.secret_hash != expected => {
            ApiError::new(ErrorCode::Conflict, format!("the service client `{id}` changed meanwhile; read it again"))
        }
        _ => error,
    }
}

/// Registers a service client with its scopes (`admin:client:manage`); the answer carries its secret,
/// shown this once. A caller gives only scopes within its own.
#[utoipa::path(post, path = "/admin/v1/clients", tag = "admin",
    request_body = NewClient,
    responses(
        (status = 201, description = "Registered; `client_secret` is shown this once", body = ClientView, headers(("kisum-version" = u64, description = "The store's sequence after the write"))),
        (status = 401, description = "No token, or a token refused", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not platform staff or a platform service, or a scope beyond the caller's own (`required` names it)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The id is taken, or is `platform-admin`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An invalid id or scope", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn register(
    State(state): State<Arc<CoreState>>,
    Admin(actor, _): Admin<caller::ClientManage>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<NewClient>,
) -> ApiResult<Response> {
    let id = client_id(&body.client_id)?;
    if body.scopes.is_empty() || body.scopes.len() > 32 {
        return Err(ApiError::invalid("/scopes", "a client has 1 to 32 scopes"));
    }
    within_callers_own(&state, &actor, &headers, &body.scopes).await?;
    let taken = || ApiError::new(ErrorCode::Conflict, format!("the client id `{id}` is taken"));
    if state.engine.store().service_client(&id).await?.is_some() {
        return Err(taken());
    }
    let (secret, hash) = random::client_secret()?;
    let client = ServiceClient {
        client_id: id.clone(),
        secret_hash: hash,
        scopes: body.scopes.clone(),
        company: None,
        agent: None,
        created_at: state.now().unix_seconds(),
    };
    let change = Change::PutServiceClient { client_id: id.clone(), scopes: body.scopes, rotated: false };
    let side = [SideWrite::AddServiceClient(client.clone())];
    let record = match state.write(&actor, change, &side).await {
        Ok(record) => record,
        // Registered by someone else meanwhile: the insert failed, and nothing was written.
        Err(_) if state.engine.store().service_client(&id).await?.is_some() => return Err(taken()),
        Err(e) => return Err(e),
    };
    let view = serde_json::to_value(ClientView::of(&client, Some(secret))).ok();
    Ok(written(StatusCode::CREATED, &record, view))
}

/// Lists the platform's service clients, without secrets (`admin:client:manage`).
#[utoipa::path(get, path = "/admin/v1/clients", tag = "admin",
    responses(
        (status = 200, description = "The clients", body = ClientList),
        (status = 401, description = "No token, or a token refused", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not platform staff or a platform service", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn list(
    State(state): State<Arc<CoreState>>,
    Admin(actor, _): Admin<caller::ClientManage>,
    headers: HeaderMap,
) -> ApiResult<Json<ClientList>> {
    // A deleted client's token reads nothing here either.
    within_callers_own(&state, &actor, &headers, &[]).await?;
    let clients = state.engine.store().service_clients().await?;
    Ok(Json(ClientList { clients: clients.iter().map(|c| ClientView::of(c, None)).collect() }))
}

/// Gives a client a new secret (`admin:client:manage`, and its scopes within the caller's own): the old
/// one stops working at once; the answer shows the new one this once.
#[utoipa::path(post, path = "/admin/v1/clients/{id}/secret", tag = "admin",
    params(("id" = String, Path, description = "The client id")),
    responses(
        (status = 200, description = "Rotated; `client_secret` is shown this once", body = ClientView, headers(("kisum-version" = u64, description = "The store's sequence after the write"))),
        (status = 401, description = "No token, or a token refused", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not platform staff or a platform service, or the client's scopes are beyond the caller's own", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such client", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`platform-admin`, or the client changed meanwhile (deleted or registered again)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn rotate(
    State(state): State<Arc<CoreState>>,
    Admin(actor, _): Admin<caller::ClientManage>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Response> {
    let mut client = stored(&state, &id).await?;
    // Holding a client's secret is holding its scopes.
    within_callers_own(&state, &actor, &headers, &client.scopes).await?;
    let (secret, hash) = random::client_secret()?;
    let expected = std::mem::replace(&mut client.secret_hash, hash.clone());
    let change =
        Change::PutServiceClient { client_id: client.client_id.clone(), scopes: client.scopes.clone(), rotated: true };
    // Only the secret changes, and only if the client is still the one just judged (a deletion or a new
    // registration meanwhile wins).
    let client_id = client.client_id.clone();
    let side = [SideWrite::RotateServiceClientSecret { client_id, expected: expected.clone(), secret_hash: hash }];
    let record = match state.write(&actor, change, &side).await {
        Ok(record) => record,
        Err(e) => return Err(changed_meanwhile(&state, &client.client_id, &expected, e).await),
    };
    let view = serde_json::to_value(ClientView::of(&client, Some(secret))).ok();
    Ok(written(StatusCode::OK, &record, view))
}

/// Deletes a client (`admin:client:manage`, and its scopes within the caller's own): no token is issued
/// to it any more, and those issued manage no client (the rest run out within their lifetime).
#[utoipa::path(delete, path = "/admin/v1/clients/{id}", tag = "admin",
    params(("id" = String, Path, description = "The client id")),
    responses(
        (status = 204, description = "Deleted", headers(("kisum-version" = u64, description = "The store's sequence after the write"))),
        (status = 401, description = "No token, or a token refused", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not platform staff or a platform service, or the client's scopes are beyond the caller's own", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such client", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`platform-admin`, or the client changed meanwhile (deleted or registered again)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn remove(
    State(state): State<Arc<CoreState>>,
    Admin(actor, _): Admin<caller::ClientManage>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Response> {
    let client = stored(&state, &id).await?;
    // Taking a service down is for those who could give it what it holds.
    within_callers_own(&state, &actor, &headers, &client.scopes).await?;
    let side =
        [SideWrite::RemovePlatformClient { client_id: client.client_id.clone(), expected: client.secret_hash.clone() }];
    let change = Change::RemoveServiceClient { client_id: client.client_id.clone() };
    let record = match state.write(&actor, change, &side).await {
        Ok(record) => record,
        Err(e) => return Err(changed_meanwhile(&state, &client.client_id, &client.secret_hash, e).await),
    };
    Ok(written(StatusCode::NO_CONTENT, &record, None))
}
