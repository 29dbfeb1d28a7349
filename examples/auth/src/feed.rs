//! The change feed (API.md §2): one event per committed change, as Server-Sent Events (resumable with
//! `Last-Event-ID`) or as one JSON array; `410 RESYNC_REQUIRED` for a cursor older than the log keeps.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use kisum_access::{Change, Timestamp};
use kisum_errors::ErrorCode;
use kisum_server::{ApiError, ApiQuery, ApiResult};
use kisum_store::{LogEntry, StoreError};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::caller::{self, ACCESS_READ};
use crate::state::AuthState;
use kisum_server::Bearer;

/// Changes read from the log per query.
const PAGE: u32 = 500;
/// The longest a JSON answer is.
const JSON_LIMIT: u32 = 1000;
/// Heartbeat comments at least this often.
pub const HEARTBEAT: Duration = Duration::from_secs(15);
/// How often an idle stream reads the log when no notification woke it.
const POLL: Duration = Duration::from_millis(500);

/// One event of the feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FeedEvent {
    /// The change's sequence (the SSE `id`).
    pub seq: u64,
    /// The company written to (`null` for platform-wide changes: users, plans, keys).
    pub company: Option<String>,
    /// The principals whose decisions may have changed (`user:ID`, `agent:ID`).
    pub principals: Vec<String>,
    /// Their access version after the change (the sequence), for `access` events of a company.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// `access`, `session_revoked` or `keys`.
    pub kind: String,
    /// For `access`: every principal of the company may be affected (a subscription, an override, a
    /// role), not only `principals`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub company_wide: bool,
    /// For `session_revoked`: the session whose tokens are refused; `null` when every session of
    /// `principals` is (a user disabled, or its password changed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// For `session_revoked`: until when its tokens must be refused (when the last has expired).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub until: Option<Timestamp>,
    /// For `session_revoked` without `sid` after a password change: only tokens issued at or before this
    /// instant are refused (the user's later sign-ins are not). Absent: every token (a user disabled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub issued_through: Option<Timestamp>,
    /// The change's own kind (`put_membership`, `revoke_session`…), for logs.
    pub change: String,
}

/// The feed event of a committed change.
pub fn event(entry: &LogEntry) -> FeedEvent {
    let r = &entry.record;
    let mut e = FeedEvent {
        seq: r.seq,
        company: r.company.as_ref().map(ToString::to_string),
        principals: r.principals.iter().map(ToString::to_string).collect(),
        version: r.company.is_some().then_some(r.seq),
        kind: "access".into(),
        company_wide: r.company_wide,
        sid: None,
        until: None,
        issued_through: None,
        change: r.kind.to_owned(),
    };
    match &entry.change {
        Change::RevokeSession { user, session, until } => {
            e.kind = "session_revoked".into();
            e.principals = vec![format!("user:{user}")];
            e.sid = Some(session.clone());
            e.until = Some(*until);
        }
        Change::DisableUser { user } | Change::SetPassword { user, end_sessions: true } => {
            e.kind = "session_revoked".into();
            e.principals = vec![format!("user:{user}")];
            e.until = Some(Timestamp::from_unix(r.at.unix_seconds().saturating_add(kisum_server::revoked::REFUSE_FOR)));
            if let Change::SetPassword { .. } = &entry.change {
                e.issued_through = Some(r.at);
            }
        }
        Change::RotateKeys { .. } => e.kind = "keys".into(),
        _ => {}
    }
    e
}

/// `?after=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct FeedQuery {
    /// Events after this sequence; default: from now on. `Last-Event-ID` takes precedence.
    #[param(minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    after: Option<u64>,
}

fn resync(after: u64, from: u64) -> ApiError {
    ApiError::new(
        ErrorCode::ResyncRequired,
        format!("changes after {after} are no longer kept: reload what you cached, then follow from {from}"),
    )
    .with_member("resume_after", from)
}

fn read_error(e: StoreError) -> ApiError {
    match e {
        StoreError::ResyncRequired { after, from } => resync(after, from),
        other => other.into(),
    }
}

/// The change feed (service tokens with `auth:access:read`). `text/event-stream` by default: one event per
/// committed change (`id:` its sequence, `event:` its kind, `data:` the event as JSON) and a heartbeat
/// comment at least every 15 s. With `Accept: application/json`: the events after `after` (at most 1,000)
/// as one array. A cursor older than the log keeps: `410 RESYNC_REQUIRED` with `resume_after`, the
/// sequence to follow from once everything cached has been reloaded.
#[utoipa::path(get, path = "/v1/changes", tag = "feed", params(FeedQuery,
        ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this sequence (SSE)")),
    responses(
        (status = 200, description = "The events: an SSE stream, or with `Accept: application/json` one array", content(
            (Vec<FeedEvent> = "application/json"),
            (String = "text/event-stream"),
        )),
        (status = 401, description = "No token, or a token refused", body = kisum_server::openapi::ProblemSchema, content_type = "application/problem+json"),
        (status = 403, description = "Not a service token with `auth:access:read` (a user token included)", body = kisum_server::openapi::ProblemSchema, content_type = "application/problem+json"),
        (status = 410, description = "The cursor is older than the log's retention", body = kisum_server::openapi::ProblemSchema, content_type = "application/problem+json"),
        (status = 422, description = "A malformed cursor", body = kisum_server::openapi::ProblemSchema, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn changes(
    State(state): State<Arc<AuthState>>,
    Bearer(claims): Bearer,
    ApiQuery(q): ApiQuery<FeedQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    if caller::user_of(&claims).is_some() || !claims.scope_allows(ACCESS_READ) {
        return Err(ApiError::new(ErrorCode::Forbidden, "the feed needs the scope `auth:access:read`")
            .with_required(ACCESS_READ));
    }
    let last_event = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| ApiError::invalid("/headers/last-event-id", "a sequence number"))?,
        ),
    };
    let store = state.engine.store().clone();
    let after = match last_event.or(q.after) {
        Some(after) => after,
        None => store.head().await?,
    };
    if i64::try_from(after).is_err() {
        return Err(ApiError::invalid("/after", "a sequence is at most 2^63 - 1"));
    }
    let json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json") && !v.contains("text/event-stream"));
    if json {
        let entries = store.changes_after(after, JSON_LIMIT).await.map_err(read_error)?;
        let events: Vec<FeedEvent> = entries.iter().map(event).collect();
        return Ok(axum::Json(events).into_response());
    }
    // The first page is read before answering, so a cursor past retention is a 410, not a closed stream.
    let first = store.changes_after(after, PAGE).await.map_err(read_error)?;
    let stream =
        Stream { state: state.clone(), after, pending: first.into(), wake: store.commits(), closing: state.closing() };
    let events = futures_util::stream::unfold(stream, |mut s| async move {
        let entry = s.next().await?;
        let e = event(&entry);
        let sse = Event::default()
            .id(e.seq.to_string())
            .event(e.kind.clone())
            .data(serde_json::to_string(&e).unwrap_or_default());
        Some((Ok::<Event, Infallible>(sse), s))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(HEARTBEAT)).into_response())
}

/// The revocations in force, and the sequence they are current at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RevocationList {
    /// Follow the feed from here (`?after=` or `Last-Event-ID`): every revocation committed later is in it.
    pub seq: u64,
    /// Sessions whose tokens are refused, each until its last token has expired.
    pub sessions: Vec<RevokedSession>,
}

/// One revoked session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RevokedSession {
    /// The session (`sid` in its tokens).
    pub sid: String,
    /// Its user.
    pub user: String,
    /// Until when its tokens are refused.
    #[schema(value_type = String, format = DateTime)]
    pub until: Timestamp,
}

/// Every revocation still in force — sessions logged out, reused, or ended with their user (disabled, or
/// a password change) — with the sequence it is current at (API.md §5): a module loads it before it
/// answers ready and after every `410`, then follows the feed from `seq`, so a restart never lets a
/// revoked session back in. Service tokens with `auth:access:read`.
#[utoipa::path(get, path = "/v1/revocations", tag = "feed",
    responses(
        (status = 200, description = "The revocations in force", body = RevocationList),
        (status = 401, description = "No token, or a token refused", body = kisum_server::openapi::ProblemSchema, content_type = "application/problem+json"),
        (status = 403, description = "Not a service token with `auth:access:read`", body = kisum_server::openapi::ProblemSchema, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn revocations(
    State(state): State<Arc<AuthState>>,
    Bearer(claims): Bearer,
) -> ApiResult<axum::Json<RevocationList>> {
    if caller::user_of(&claims).is_some() || !claims.scope_allows(ACCESS_READ) {
        return Err(ApiError::new(ErrorCode::Forbidden, "revocations need the scope `auth:access:read`")
            .with_required(ACCESS_READ));
    }
    let store = state.engine.store();
    // The head first: a revocation committed after it is in the feed after it; one before, in the table
    // (the session row and its log entry commit together).
    let seq = store.head().await?;
    let now = state.now().unix_seconds();
    let refuse_for = kisum_server::revoked::REFUSE_FOR;
    let sessions = store
        .revoked_sessions(now.saturating_sub(refuse_for))
        .await?
        .into_iter()
        .filter_map(|s| {
            let until = s.revoked_at?.saturating_add(refuse_for).min(s.expires_at.saturating_add(refuse_for));
            (until > now).then(|| RevokedSession { sid: s.sid, user: s.user, until: Timestamp::from_unix(until) })
        })
        .collect();
    Ok(axum::Json(RevocationList { seq, sessions }))
}

/// A subscriber's position in the log.
struct Stream {
    state: Arc<AuthState>,
    after: u64,
    pending: VecDeque<LogEntry>,
    wake: tokio::sync::watch::Receiver<u64>,
    closing: tokio::sync::watch::Receiver<bool>,
}

impl Stream {
    /// The next committed change, waiting for one; `None` ends the stream (the log was pruned past the
    /// cursor, the store failed, or the server is stopping: the client reconnects with `Last-Event-ID`).
    async fn next(&mut self) -> Option<LogEntry> {
        loop {
            if *self.closing.borrow() {
                return None;
            }
            if let Some(entry) = self.pending.pop_front() {
                self.after = entry.seq();
                return Some(entry);
            }
            match self.state.engine.store().changes_after(self.after, PAGE).await {
                Ok(entries) if !entries.is_empty() => self.pending = entries.into(),
                Ok(_) => {
                    tokio::select! {
                        woke = self.wake.changed() => {
                            if woke.is_err() {
                                tokio::time::sleep(POLL).await;
                            }
                        }
                        () = tokio::time::sleep(POLL) => {}
                        _ = self.closing.changed() => return None,
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, after = self.after, "change feed stream ends");
                    return None;
                }
            }
        }
    }
}
