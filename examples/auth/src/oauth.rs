//! The token endpoint (RFC 6749 §3.2, RFC 8693) and the discovery documents (RFC 8414, RFC 7517).
//!
//! Errors are problem+json with DESIGN.md §6's codes and RFC 6749's `error` member. RFC 6749 answers 400
//! for most of them; DESIGN.md §6 has no 400, so `invalid_request`, `unsupported_grant_type` and
//! `invalid_scope` are `422 VALIDATION_FAILED`, `invalid_client` is `401 UNAUTHENTICATED`, `invalid_grant`
//! is `401 TOKEN_INVALID` (API.md §2), and `unauthorized_client` is `403 FORBIDDEN`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use kisum_access::{Access, AgentId, CompanyId, DenyReason, Pattern, Principal, UserId};
use kisum_errors::ErrorCode;
use kisum_server::{ApiError, ApiResult, clip, random};
use kisum_store::{RefreshUse, ServiceClient};
use kisum_token::{Accept, Act, Audience, Caller, Claims, Expect, RefreshToken, RefreshTokenHash};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::state::AuthState;

/// RFC 8693's grant type.
pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 8693's token type of an access token.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// What a sealed refresh answer is sealed for.
const ANSWER: &str = "refresh-answer";

/// A token response (RFC 6749 §5.1).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenAnswer {
    /// The access token (a JWT, RFC 9068).
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// The next refresh token (refresh grant only); the presented one is used up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// The scopes granted (client credentials), space-separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The type of the issued token (token exchange).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_token_type: Option<String>,
}

/// The form of a token request (`application/x-www-form-urlencoded`); which fields apply depends on
/// `grant_type`.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub(crate) struct TokenRequest {
    /// `refresh_token`, `client_credentials` or `urn:ietf:params:oauth:grant-type:token-exchange`.
    grant_type: String,
    /// Refresh grant: the refresh token.
    refresh_token: Option<String>,
    /// Refresh grant: the company to issue the access token for.
    company: Option<String>,
    /// Client credentials: the scopes wanted (space-separated permission patterns), within those registered.
    scope: Option<String>,
    /// Token exchange: the user's access token.
    subject_token: Option<String>,
    /// Token exchange: `urn:ietf:params:oauth:token-type:access_token`.
    subject_token_type: Option<String>,
}

fn oauth(code: ErrorCode, error: &'static str, detail: impl Into<String>) -> ApiError {
    ApiError::new(code, detail).with_member("error", error)
}

fn invalid_request(detail: impl Into<String>) -> ApiError {
    oauth(ErrorCode::ValidationFailed, "invalid_request", detail)
}

fn invalid_grant(detail: impl Into<String>) -> ApiError {
    oauth(ErrorCode::TokenInvalid, "invalid_grant", detail)
}

fn invalid_client() -> ApiError {
    oauth(ErrorCode::Unauthenticated, "invalid_client", "unknown client or wrong secret")
        .with_header(header::WWW_AUTHENTICATE, r#"Basic realm="kisum""#)
}

/// The form's parameters; a repeated one is refused (RFC 6749 §3.2).
pub(crate) fn form(headers: &HeaderMap, body: &[u8]) -> ApiResult<HashMap<String, String>> {
    let form = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| {
        v.split(';').next().unwrap_or_default().trim().eq_ignore_ascii_case("application/x-www-form-urlencoded")
    });
    if !form {
        return Err(invalid_request("the body must be `application/x-www-form-urlencoded`"));
    }
    let mut params = HashMap::new();
    for (k, v) in form_urlencoded::parse(body) {
        if params.insert(k.clone().into_owned(), v.into_owned()).is_some() {
            return Err(invalid_request(format!("the parameter `{}` is repeated", clip(&k))));
        }
    }
    Ok(params)
}

fn required<'a>(params: &'a HashMap<String, String>, name: &str) -> ApiResult<&'a str> {
    params
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| invalid_request(format!("`{name}` is required")))
}

/// Issues access tokens: the refresh grant (a company's access token for a signed-in user, rotating the
/// refresh token), client credentials (a service token with the client's scopes), and token exchange (an
/// agent acting for a user, RFC 8693).
#[utoipa::path(post, path = "/oauth/token", tag = "oauth",
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The token", body = TokenAnswer),
        (status = 401, description = "`invalid_client` (wrong client credentials) or `invalid_grant` (a refresh token unknown, used up or of an ended session; a subject token refused)", body = kisum_server::openapi::ProblemSchema, content_type = "application/problem+json"),
        (status = 403, description = "`MEMBERSHIP_INACTIVE` for the company asked for, or `unauthorized_client`", body = kisum_server::openapi::ProblemSchema, content_type = "application/problem+json"),
        (status = 404, description = "No active membership in the company asked for, or an agent not registered there", body = kisum_server::openapi::ProblemSchema, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_request`, `unsupported_grant_type` or `invalid_scope`", body = kisum_server::openapi::ProblemSchema, content_type = "application/problem+json"),
    ),
    security((), ("basic" = [])))]
pub(crate) async fn token(State(state): State<Arc<AuthState>>, headers: HeaderMap, body: Bytes) -> ApiResult<Response> {
    let params = form(&headers, &body)?;
    let answer = match required(&params, "grant_type")? {
        "refresh_token" => refresh(&state, &params).await?,
        "client_credentials" => client_credentials(&state, &headers, &params).await?,
        TOKEN_EXCHANGE => exchange(&state, &headers, &params).await?,
        other => {
            return Err(oauth(
                ErrorCode::ValidationFailed,
                "unsupported_grant_type",
                format!("unsupported grant type `{}`", clip(other)),
            ));
        }
    };
    Ok(([(header::CACHE_CONTROL, "no-store"), (header::PRAGMA, "no-cache")], axum::Json(answer)).into_response())
}

/// The refresh grant, with rotation: the presented token is used once. A retry within the grace period
/// (same company) gets the same answer; a later reuse revokes the whole session.
async fn refresh(state: &AuthState, params: &HashMap<String, String>) -> ApiResult<TokenAnswer> {
    let presented = required(params, "refresh_token")?;
    let company_text = required(params, "company")?;
    let hash = RefreshTokenHash::of(presented).to_hex();
    let store = state.engine.store();
    // Twice at most: a use that loses a race reads the winner's answer on the second pass.
    for _ in 0..2 {
        let record = store.refresh_token(&hash).await?.ok_or_else(|| invalid_grant("unknown refresh token"))?;
        let now = state.now().unix_seconds();
        if !record.session.is_live_at(now) {
            return Err(invalid_grant("the session is over"));
        }
        if let Some(used) = record.used_at {
            if now.saturating_sub(used) < state.settings.refresh_grace {
                return match (&record.company, &record.answer) {
                    (Some(c), Some(sealed)) if c == company_text => {
                        let plain = state.keys.open(ANSWER, sealed).map_err(|e| ApiError::from_error(&e))?;
                        serde_json::from_slice(&plain).map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))
                    }
                    _ => Err(invalid_grant("this refresh token was just used for another company")),
                };
            }
            crate::sessions::end_session(state, &record.session).await?;
            tracing::warn!(sid = %record.session.sid, "refresh token reused: session revoked");
            return Err(invalid_grant("this refresh token was already used; the session is revoked"));
        }
        let user =
            UserId::parse(&record.session.user).map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
        if store.credential(&user).await?.is_some_and(|c| c.disabled_at.is_some()) {
            return Err(invalid_grant("the user is disabled"));
        }
        let company = CompanyId::parse(company_text)
            .map_err(|_| ApiError::not_found(format!("no company `{}`", clip(company_text))))?;
        let principal = Principal::User(user.clone());
        admitted(state, &principal, &company)?;
        let access = user_token(state, &user, &company, &record.session.sid, &principal, None)?;
        let (next, next_hash) = RefreshToken::generate().map_err(|e| ApiError::from_error(&e))?;
        let answer = TokenAnswer { refresh_token: Some(next.as_str().to_owned()), ..access };
        let plain = serde_json::to_vec(&answer).map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
        let sealed = state.keys.seal(ANSWER, &plain).map_err(|e| ApiError::from_error(&e))?;
        let used =
            RefreshUse { at: now, company: company_text.to_owned(), answer: sealed, next_hash: next_hash.to_hex() };
        if store.use_refresh_token(&hash, &used).await? {
            return Ok(answer);
        }
    }
    Err(invalid_grant("this refresh token is no longer usable"))
}

/// `404` unless `principal` is an active member of `company` (or a registered agent); `403
/// MEMBERSHIP_INACTIVE` for a membership it holds that is not active.
fn admitted(state: &AuthState, principal: &Principal, company: &CompanyId) -> ApiResult<()> {
    match state.engine.directory().snapshot(principal, company, state.now()).denies_all() {
        None => Ok(()),
        Some(DenyReason::MembershipInactive | DenyReason::MembershipExpired) => {
            Err(ApiError::new(ErrorCode::MembershipInactive, format!("the membership in `{company}` is not active"))
                .with_member("error", "invalid_grant"))
        }
        Some(_) => Err(ApiError::not_found(format!("no company `{company}`")).with_member("error", "invalid_grant")),
    }
}

/// A user token for `user` in `company` carrying `principal`'s access version (the agent's, when one
/// acts through `act`).
fn user_token(
    state: &AuthState,
    user: &UserId,
    company: &CompanyId,
    sid: &str,
    principal: &Principal,
    act: Option<Act>,
) -> ApiResult<TokenAnswer> {
    let now = state.now();
    let ver = state.engine.directory().principal_version(principal, company);
    let claims = Claims {
        cid: Some(company.to_string()),
        sid: Some(sid.to_owned()),
        ver: Some(ver),
        act,
        ..base_claims(state, user.to_string(), now.unix_seconds())
    };
    sign(state, &claims, None)
}

fn base_claims(state: &AuthState, sub: String, now: i64) -> Claims {
    Claims {
        iss: state.settings.issuer.clone(),
        sub,
        aud: Audience::One(state.settings.audience.clone()),
        exp: now.saturating_add(state.settings.access_ttl),
        iat: now,
        jti: random::token_id().unwrap_or_else(|e| {
            // Unique either way; say that the operating system's random source failed.
            tracing::error!(error = %e, "the random source failed: this token's id comes from the fallback generator");
            random::request_id()
        }),
        nbf: None,
        cid: None,
        sid: None,
        ver: None,
        act: None,
        client_id: None,
        scope: None,
    }
}

fn sign(state: &AuthState, claims: &Claims, scope: Option<String>) -> ApiResult<TokenAnswer> {
    let token = state.keys.sign(claims, state.now()).map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
    Ok(TokenAnswer {
        access_token: token,
        token_type: "Bearer".into(),
        expires_in: claims.exp.saturating_sub(claims.iat),
        refresh_token: None,
        scope,
        issued_token_type: None,
    })
}

/// The client named by HTTP Basic authentication (RFC 6749 §2.3.1), its secret checked. Anything wrong
/// is `401 invalid_client`.
async fn client(state: &AuthState, headers: &HeaderMap) -> ApiResult<ServiceClient> {
    let value = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or_else(invalid_client)?;
    let encoded = match value.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("basic") => rest.trim(),
        _ => return Err(invalid_client()),
    };
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded).map_err(|_| invalid_client())?;
    let decoded = String::from_utf8(decoded).map_err(|_| invalid_client())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(invalid_client)?;
    let unescape = |s: &str| form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned());
    let (id, secret) = (unescape(id).ok_or_else(invalid_client)?, unescape(secret).ok_or_else(invalid_client)?);
    let client = state.engine.store().service_client(&id).await?;
    let hash = client.as_ref().map_or(crate::clients::DUMMY, |c| c.secret_hash.as_str()).to_owned();
    let matches = crate::clients::verify_secret(&secret, hash).await?;
    match client {
        Some(c) if matches => Ok(c),
        _ => Err(invalid_client()),
    }
}

/// Client credentials: a service token whose scopes are the client's registered ones, or those asked
/// for when each is within them.
async fn client_credentials(
    state: &AuthState,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> ApiResult<TokenAnswer> {
    let client = client(state, headers).await?;
    if client.agent.is_some() {
        return Err(oauth(
            ErrorCode::Forbidden,
            "unauthorized_client",
            "an agent's client acts for users through token exchange, not client credentials",
        ));
    }
    let scopes = match params.get("scope") {
        None => client.scopes.clone(),
        Some(asked) => {
            let mut granted = Vec::new();
            for s in asked.split_ascii_whitespace() {
                let pattern = Pattern::parse(s).map_err(|e| {
                    oauth(ErrorCode::ValidationFailed, "invalid_scope", format!("scope `{}`: {e}", clip(s)))
                })?;
                if !client.scopes.iter().any(|r| covers(r, pattern.as_str())) {
                    return Err(oauth(
                        ErrorCode::ValidationFailed,
                        "invalid_scope",
                        format!("scope `{}` is not registered for this client", clip(s)),
                    ));
                }
                granted.push(pattern.as_str().to_owned());
            }
            granted
        }
    };
    let scope = scopes.join(" ");
    let claims = Claims {
        client_id: Some(client.client_id.clone()),
        scope: Some(scope.clone()),
        ..base_claims(state, format!("service:{}", client.client_id), state.now().unix_seconds())
    };
    sign(state, &claims, Some(scope))
}

/// Whether the registered pattern `registered` covers every key the pattern `asked` matches.
pub(crate) fn covers(registered: &str, asked: &str) -> bool {
    match registered.strip_suffix('*') {
        Some(prefix) => asked.starts_with(prefix),
        None => registered == asked,
    }
}

/// Token exchange (RFC 8693): an agent's client presents a user's access token and gets a token with the
/// user's `sub` and `cid` and `act.sub` = the agent, so that access is evaluated for the agent through its
/// delegations.
async fn exchange(state: &AuthState, headers: &HeaderMap, params: &HashMap<String, String>) -> ApiResult<TokenAnswer> {
    let client = client(state, headers).await?;
    let subject_token = required(params, "subject_token")?;
    if required(params, "subject_token_type")? != ACCESS_TOKEN_TYPE {
        return Err(invalid_request(format!("`subject_token_type` must be `{ACCESS_TOKEN_TYPE}`")));
    }
    if let Some(t) = params.get("requested_token_type")
        && t != ACCESS_TOKEN_TYPE
    {
        return Err(invalid_request(format!("only `{ACCESS_TOKEN_TYPE}` can be requested")));
    }
    let (Some(agent_company), Some(agent)) = (&client.company, &client.agent) else {
        return Err(oauth(ErrorCode::Forbidden, "unauthorized_client", "only an agent's client may exchange tokens"));
    };
    let claims = state
        .tokens
        .verifier()
        .verify(subject_token, Expect::new(Accept::User), state.now())
        .map_err(|e| invalid_grant(format!("the subject token is refused: {e}")))?;
    let Caller::User { subject, company, sid, .. } = claims.caller() else {
        return Err(invalid_grant("the subject token is not a user's"));
    };
    let iat = kisum_entitlements::Timestamp::from_unix(claims.claims().iat);
    if state.revoked().refuses(sid, subject.as_str(), iat, state.now()) {
        return Err(invalid_grant("the subject token's session was revoked"));
    }
    if company.as_str() != agent_company {
        return Err(ApiError::not_found(format!("agent `{agent}` is not registered in `{company}`"))
            .with_member("error", "invalid_grant"));
    }
    // A client of an earlier id scheme (`agent.{company}.{agent}`, which could collide across companies)
    // is refused: rotating the agent's secret issues one of the current scheme.
    if client.client_id != crate::clients::agent_client_id(agent_company, agent) {
        return Err(invalid_client());
    }
    let agent_id = AgentId::parse(agent).map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
    let principal = Principal::Agent(agent_id.clone());
    admitted(state, &principal, company)?;
    // The agent acts only for a user who delegated to it, and then only with what that user delegated.
    if !state.engine.directory().delegates_to(company, subject, &agent_id, state.now()) {
        return Err(invalid_grant(format!("`{subject}` holds no valid delegation to agent `{agent}`")));
    }
    let act = Act { sub: format!("agent:{agent}"), act: claims.claims().act.clone().map(Box::new) };
    if act.depth() > kisum_token::MAX_ACT_DEPTH {
        return Err(invalid_grant("the subject token is already acted on by three agents"));
    }
    let answer = user_token(state, subject, company, sid, &principal, Some(act))?;
    Ok(TokenAnswer { issued_token_type: Some(ACCESS_TOKEN_TYPE.into()), ..answer })
}

/// Auth's public keys (RFC 7517): every key published now, including the next one before it signs and
/// retired ones until their tokens have expired.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "oauth",
    responses((status = 200, description = "The JSON Web Key Set", content_type = "application/json")))]
pub(crate) async fn jwks(State(state): State<Arc<AuthState>>) -> ApiResult<Response> {
    let jwks = state.keys.jwks(state.now()).map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "public, max-age=60")], jwks.to_json())
        .into_response())
}

/// Authorization server metadata (RFC 8414).
#[derive(Serialize, ToSchema)]
pub(crate) struct Metadata {
    issuer: String,
    jwks_uri: String,
    token_endpoint: String,
    grant_types_supported: Vec<&'static str>,
    token_endpoint_auth_methods_supported: Vec<&'static str>,
    response_types_supported: Vec<&'static str>,
    revocation_endpoint: String,
}

/// The authorization server's metadata (RFC 8414).
#[utoipa::path(get, path = "/.well-known/oauth-authorization-server", tag = "oauth",
    responses((status = 200, description = "The metadata", body = Metadata)))]
pub(crate) async fn metadata(State(state): State<Arc<AuthState>>) -> axum::Json<Metadata> {
    let base = state.settings.issuer.trim_end_matches('/');
    axum::Json(Metadata {
        issuer: state.settings.issuer.clone(),
        jwks_uri: format!("{base}/.well-known/jwks.json"),
        token_endpoint: format!("{base}/oauth/token"),
        grant_types_supported: vec!["refresh_token", "client_credentials", TOKEN_EXCHANGE],
        token_endpoint_auth_methods_supported: vec!["client_secret_basic"],
        response_types_supported: Vec::new(),
        revocation_endpoint: format!("{base}/v1/sessions/revoke"),
    })
}
