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
use kisum_access::{Change, FeedEvent, RevocationList, RevokedSession, Timestamp};
use kisum_errors::ErrorCode;
use kisum_server::{ApiError, ApiQuery, ApiResult};
use kisum_store::{Installed, LogEntry, StoreError};
use serde::Deserialize;
use tokio::sync::broadcast;
use utoipa::IntoParams;

use crate::caller::{self, ACCESS_READ};
use crate::state::AuthState;
use kisum_server::Bearer;

/// Changes read from the log per query.
const PAGE: u32 = 500;
/// The longest a JSON answer is.
const JSON_LIMIT: u32 = 1000;
/// Heartbeat comments at least this often.
pub const HEARTBEAT: Duration = Duration::from_secs(15);
/// How often a caught-up stream reads the log anyway (it is woken by the engine's subscription, which
/// carries every change the engine installs; this only bounds what a missed notice could cost).
const POLL: Duration = Duration::from_secs(5);

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
        at: Some(r.at),
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
    // Subscribed before the first read: whatever the engine installs from now on reaches the stream, so
    // nothing falls between the log's pages and the subscription.
    let changes = state.engine.subscribe();
    let first = store.changes_after(after, PAGE).await.map_err(read_error)?;
    let stream = Stream {
        state: state.clone(),
        after,
        pending: first.into(),
        caught_up: false,
        changes,
        closing: state.closing(),
    };
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

/// A subscriber's position in the log. Behind, it reads the log a page at a time (from any cursor the log
/// still holds); caught up, it takes each change from the engine's one subscription to the log
/// ([`kisum_store::Engine::subscribe`]) as the engine installs it — written through this process or
/// replayed from another — with no query per stream and change. A gap, a lag or a reload sends it back
/// to the log.
struct Stream {
    state: Arc<AuthState>,
    after: u64,
    pending: VecDeque<LogEntry>,
    /// Whether the last read of the log found nothing after `after`.
    caught_up: bool,
    changes: broadcast::Receiver<Installed>,
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
            if self.caught_up {
                tokio::select! {
                    installed = self.changes.recv() => match installed {
                        Ok(Installed::Change(entry)) if entry.seq() <= self.after => {}
                        Ok(Installed::Change(entry)) if entry.seq() == self.after + 1 => {
                            self.after = entry.seq();
                            return Some(LogEntry::clone(&entry));
                        }
                        // A gap (the engine installed past a change this stream has not seen), a reload
                        // from a checkpoint, or a lag past the subscription's buffer: read the log.
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => self.caught_up = false,
                        Err(broadcast::error::RecvError::Closed) => return None,
                    },
                    () = tokio::time::sleep(POLL) => self.caught_up = false,
                    _ = self.closing.changed() => return None,
                }
                continue;
            }
            match self.state.engine.store().changes_after(self.after, PAGE).await {
                Ok(entries) if !entries.is_empty() => self.pending = entries.into(),
                Ok(_) => self.caught_up = true,
                Err(e) => {
                    tracing::warn!(error = %e, after = self.after, "change feed stream ends");
                    return None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use kisum_access::{Actor, ChangeRecord, CompanyId, Principal, UserId};

    use super::*;

    fn entry(seq: u64, change: Change, company: Option<&str>, wide: bool, principals: &[&str]) -> LogEntry {
        let record = ChangeRecord {
            seq,
            actor: Actor::Platform,
            at: Timestamp::from_unix_nanos(1_800_000_000, 250_000_000).unwrap(),
            kind: change.kind().to_owned(),
            company: company.map(|c| CompanyId::parse(c).unwrap()),
            company_wide: wide,
            principals: principals.iter().map(|p| Principal::parse(p).unwrap()).collect(),
            before: None,
            after: None,
        };
        LogEntry { record, change }
    }

    /// The feed's wire format, pinned: one golden file per kind of event, compared byte for byte with what
    /// Auth sends, and read back by the type every follower parses (`kisum_access::FeedEvent`, which
    /// the SDK and the console use). `KISUM_BLESS=1` rewrites them after an intended change.
    #[test]
    fn golden_feed_events() {
        let user = || UserId::parse("leo").unwrap();
        let company = || CompanyId::parse("encore").unwrap();
        let until = Timestamp::from_unix(1_800_000_900);
        let cases = [
            (
                "access",
                entry(
                    41,
                    Change::EndMembership { company: company(), user: user() },
                    Some("encore"),
                    false,
                    &["user:leo"],
                ),
            ),
            (
                "access_company_wide",
                entry(
                    42,
                    Change::RemoveOverride { company: company(), id: "ov-1".parse().unwrap() },
                    Some("encore"),
                    true,
                    &[],
                ),
            ),
            (
                "session_revoked",
                entry(
                    43,
                    Change::RevokeSession { user: user(), session: "s-1".into(), until },
                    None,
                    false,
                    &["user:leo"],
                ),
            ),
            (
                "password_changed",
                entry(44, Change::SetPassword { user: user(), end_sessions: true }, None, false, &["user:leo"]),
            ),
            ("user_disabled", entry(45, Change::DisableUser { user: user() }, None, false, &["user:leo"])),
            ("keys", entry(46, Change::RotateKeys { kids: vec!["k2".into()] }, None, false, &[])),
        ];
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/feed");
        let bless = std::env::var_os("KISUM_BLESS").is_some();
        for (name, entry) in cases {
            let sent = event(&entry);
            let body = serde_json::to_string_pretty(&sent).unwrap() + "\n";
            let path = dir.join(format!("{name}.json"));
            if bless {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &body).unwrap();
            }
            let golden = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(body, golden, "golden mismatch for {name}");
            assert_eq!(serde_json::from_str::<FeedEvent>(&golden).unwrap(), sent, "{name} reads back");
        }
        // An event of an Auth older than `at` (and than `change`) still reads.
        let older = r#"{"seq":7,"company":"encore","principals":["user:leo"],"version":7,"kind":"access"}"#;
        let read: FeedEvent = serde_json::from_str(older).unwrap();
        assert_eq!((read.seq, read.at, read.change.as_str()), (7, None, ""));
    }
}
