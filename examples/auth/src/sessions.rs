//! Sign-in and sign-out (API.md §2): `POST /v1/sessions`, `POST /v1/sessions/revoke`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kisum_access::doc::MembershipStatus;
use kisum_access::{Actor, Change, UserId};
use kisum_errors::ErrorCode;
use kisum_server::{ApiError, ApiJson, ApiResult, password, random};
use kisum_store::{LoginAttempt, SideWrite};
use kisum_token::{RefreshToken, RefreshTokenHash};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::caller;
use crate::state::AuthState;

/// A sign-in.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Login {
    /// The user id.
    user: String,
    /// The password.
    password: String,
}

/// A session started: its id, its first refresh token (shown once) and the user's companies.
#[derive(Serialize, ToSchema)]
pub(crate) struct SessionStarted {
    /// The session id (`sid` in its tokens).
    session: String,
    /// The refresh token: exchange it at `POST /oauth/token` for a company's access token.
    refresh_token: String,
    /// The user.
    user: String,
    /// Every company where the user has a membership.
    companies: Vec<CompanyEntry>,
}

/// A company of the user's.
#[derive(Serialize, ToSchema)]
pub(crate) struct CompanyEntry {
    /// The company id.
    id: String,
    /// The user's roles there.
    roles: Vec<String>,
    /// The membership's status.
    #[schema(value_type = String)]
    status: MembershipStatus,
}

/// Signs a user in. Unknown user and wrong password get the same `401`; after 5 failures for one user
/// name within 15 minutes every attempt gets `429` with `Retry-After`, whatever the password. The
/// failures are kept in the store, so every replica counts them.
#[utoipa::path(post, path = "/v1/sessions", tag = "sessions", request_body = Login,
    responses(
        (status = 201, description = "Signed in", body = SessionStarted),
        (status = 401, description = "Unknown user or wrong password", body = kisum_server::openapi::ProblemSchema, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = kisum_server::openapi::ProblemSchema, content_type = "application/problem+json"),
        (status = 422, description = "Malformed body", body = kisum_server::openapi::ProblemSchema, content_type = "application/problem+json"),
        (status = 429, description = "Too many failures for this user", body = kisum_server::openapi::ProblemSchema, content_type = "application/problem+json"),
    ))]
pub(crate) async fn login(State(state): State<Arc<AuthState>>, ApiJson(body): ApiJson<Login>) -> ApiResult<Response> {
    let settings = &state.settings;
    let name: String = body.user.chars().take(256).collect();
    let store = state.engine.store();
    // One attempt per user name at a time in this replica: the limit is checked and the failure recorded
    // around each verification, so parallel guesses cannot slip past it together.
    let _turn = state.login_turn(&name).lock().await;
    let now = state.now().unix_seconds();
    if let LoginAttempt::Limited { retry_after } =
        store.login_attempt(&name, now, settings.login_window, settings.login_max_failures).await?
    {
        return Err(ApiError::new(ErrorCode::RateLimited, "too many failed sign-ins for this user; try again later")
            .with_header(header::RETRY_AFTER, &retry_after.to_string()));
    }
    let user = UserId::parse(&name).ok().filter(|u| state.engine.directory().has_user(u));
    let credential = match &user {
        Some(u) => store.credential(u).await?,
        None => None,
    };
    let (hash, usable) = match &credential {
        Some(c) if c.disabled_at.is_none() && !c.password_hash.is_empty() => (c.password_hash.clone(), true),
        _ => (password::DUMMY_HASH.to_owned(), false),
    };
    // The same work whether or not the user exists, so timing does not tell.
    let matches = password::verify(password::Queue::Password, body.password, hash).await?;
    let (Some(user), true, true) = (user, usable, matches) else {
        store.login_failed(&name, now).await?;
        return Err(ApiError::new(ErrorCode::Unauthenticated, "unknown user or wrong password"));
    };
    store.login_succeeded(&name).await?;
    let sid = random::id("s")?;
    let (refresh, hash) = RefreshToken::generate().map_err(|e| ApiError::from_error(&e))?;
    let session = kisum_store::Session {
        sid: sid.clone(),
        user: user.to_string(),
        created_at: now,
        expires_at: now.saturating_add(settings.session_ttl),
        revoked_at: None,
    };
    store.create_session(&session, &hash.to_hex()).await?;
    let companies = state
        .engine
        .directory()
        .memberships_of(&user)
        .into_iter()
        .map(|(id, m)| CompanyEntry { id: id.to_string(), roles: m.roles, status: m.status })
        .collect();
    tracing::info!(user = %user, sid = %sid, "signed in");
    let body =
        SessionStarted { session: sid, refresh_token: refresh.as_str().to_owned(), user: user.to_string(), companies };
    Ok((StatusCode::CREATED, [(header::CACHE_CONTROL, "no-store")], axum::Json(body)).into_response())
}

/// Which session to end: by its refresh token, or (with no body field) the session of the bearer user
/// token.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct Revoke {
    /// A refresh token of the session.
    refresh_token: Option<String>,
}

/// Ends a session: its refresh tokens die at once, and its access tokens are refused by every module
/// within a second (the change feed carries `session_revoked` until its last token has expired). A
/// refresh token that names no session is answered `204` too (RFC 7009 §2.2).
#[utoipa::path(post, path = "/v1/sessions/revoke", tag = "sessions", request_body = Revoke,
    responses(
        (status = 204, description = "The session is over"),
        (status = 401, description = "Neither a refresh token nor a valid user token", body = kisum_server::openapi::ProblemSchema, content_type = "application/problem+json"),
        (status = 422, description = "Malformed body", body = kisum_server::openapi::ProblemSchema, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = [])))]
pub(crate) async fn revoke(
    State(state): State<Arc<AuthState>>,
    headers: HeaderMap,
    body: Option<ApiJson<Revoke>>,
) -> ApiResult<StatusCode> {
    let body = body.map(|b| b.0).unwrap_or_default();
    let session = match body.refresh_token {
        Some(token) => {
            let hash = RefreshTokenHash::of(&token).to_hex();
            match state.engine.store().refresh_token(&hash).await? {
                Some(record) => record.session,
                None => return Ok(StatusCode::NO_CONTENT),
            }
        }
        None => {
            let user = caller::user(&state, &headers)?;
            match state.engine.store().session(&user.sid).await? {
                Some(s) => s,
                None => return Ok(StatusCode::NO_CONTENT),
            }
        }
    };
    end_session(&state, &session).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes `session` (if it is not already) with a `revoke_session` change, so every replica and module
/// learns of it.
pub(crate) async fn end_session(state: &AuthState, session: &kisum_store::Session) -> ApiResult<()> {
    if session.revoked_at.is_some() {
        return Ok(());
    }
    let now = state.now().unix_seconds();
    let until = now.saturating_add(kisum_server::revoked::REFUSE_FOR);
    let user = UserId::parse(&session.user).map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
    let change = Change::RevokeSession {
        user: user.clone(),
        session: session.sid.clone(),
        until: kisum_entitlements::Timestamp::from_unix(until),
    };
    state.write(&Actor::User(user), change, &[SideWrite::RevokeSession { sid: session.sid.clone(), at: now }]).await?;
    state.revoked().session(&session.sid, kisum_entitlements::Timestamp::from_unix(until));
    tracing::info!(sid = %session.sid, "session revoked");
    Ok(())
}
