//! Following Auth's change feed (API.md §2): Server-Sent Events resumed with `Last-Event-ID`, JSON polling
//! when the stream cannot be had, `410` answered by dropping everything cached. Each event drops the
//! cached access it concerns, records revoked sessions, or refetches the keys.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures_util::StreamExt;
use kisum_access::{CompanyId, Principal};
use kisum_entitlements::Timestamp;
use serde::Deserialize;

use crate::keys::Keys;
use crate::source::RemoteSource;

/// How long the stream may stay silent (Auth's heartbeats come every 15 s) before it is reopened.
pub const HEARTBEAT_GRACE: Duration = Duration::from_secs(30);

/// One event of the feed (the fields the SDK uses).
#[derive(Debug, Clone, Deserialize)]
pub struct FeedEvent {
    /// The change's sequence.
    pub seq: u64,
    /// The company, if any.
    pub company: Option<String>,
    /// The principals concerned.
    #[serde(default)]
    pub principals: Vec<String>,
    /// Their version after the change.
    pub version: Option<u64>,
    /// `access`, `session_revoked` or `keys`.
    pub kind: String,
    /// Every principal of the company may be concerned.
    #[serde(default)]
    pub company_wide: bool,
    /// The revoked session (none: every session of `principals`).
    pub sid: Option<String>,
    /// Until when the revoked session's tokens are refused.
    pub until: Option<Timestamp>,
    /// Without `sid`: only the user's tokens issued at or before this instant are refused (a password
    /// change); absent, every token of the user is (a user disabled).
    #[serde(default)]
    pub issued_through: Option<Timestamp>,
}

/// Sessions and users whose tokens are refused until an instant (from `session_revoked` events).
#[derive(Debug, Default)]
pub struct Revocations {
    sessions: RwLock<HashMap<String, Timestamp>>,
    /// By user: tokens issued at or before the first instant (none: every token) are refused until the
    /// second.
    users: RwLock<HashMap<String, (Option<Timestamp>, Timestamp)>>,
}

impl Revocations {
    /// Refuses the tokens of session `sid` until `until`.
    pub fn session(&self, sid: &str, until: Timestamp) {
        if let Ok(mut m) = self.sessions.write() {
            m.insert(sid.to_owned(), until);
        }
    }

    /// Refuses the tokens of user `user` issued at or before `through` (`None`: every one) until `until`.
    pub fn user(&self, user: &str, through: Option<Timestamp>, until: Timestamp) {
        if let Ok(mut m) = self.users.write() {
            let entry = m.entry(user.to_owned()).or_insert((through, until));
            // Two revocations of one user: the wider one holds (`None` is every token).
            entry.0 = match (entry.0, through) {
                (Some(a), Some(b)) => Some(a.max(b)),
                _ => None,
            };
            entry.1 = entry.1.max(until);
        }
    }

    /// Whether a token of session `sid` for user `sub`, issued at `iat`, is refused at `now`. A poisoned
    /// lock refuses.
    pub fn refuses(&self, sid: &str, sub: &str, iat: Timestamp, now: Timestamp) -> bool {
        let session = self.sessions.read().map(|m| m.get(sid).is_some_and(|u| now < *u)).unwrap_or(true);
        let user = self
            .users
            .read()
            .map(|m| m.get(sub).is_some_and(|(through, until)| through.is_none_or(|t| iat <= t) && now < *until))
            .unwrap_or(true);
        session || user
    }
}

/// What a feed event changes.
pub(crate) async fn apply(event: &FeedEvent, source: &RemoteSource, keys: &Keys, revocations: &Revocations) {
    match event.kind.as_str() {
        "access" => {
            let Some(company) = event.company.as_deref().and_then(|c| CompanyId::parse(c).ok()) else { return };
            let version = event.version.unwrap_or(event.seq);
            if event.company_wide {
                source.changed(&company, None, version).await;
            } else {
                let principals: Vec<Principal> =
                    event.principals.iter().filter_map(|p| Principal::parse(p).ok()).collect();
                source.changed(&company, Some(&principals), version).await;
            }
        }
        "session_revoked" => {
            let until = event.until.unwrap_or_else(Timestamp::now);
            match &event.sid {
                Some(sid) => revocations.session(sid, until),
                None => {
                    for p in &event.principals {
                        if let Some(user) = p.strip_prefix("user:") {
                            revocations.user(user, event.issued_through, until);
                        }
                    }
                }
            }
        }
        "keys" => {
            keys.refetch(true).await;
        }
        _ => {}
    }
}

/// Follows the feed until aborted: SSE, resumed from the last event seen; JSON polling while the stream
/// cannot be opened; on `410` everything cached is dropped and the feed resumes where Auth says.
pub fn follow(
    source: Arc<RemoteSource>,
    keys: Arc<Keys>,
    revocations: Arc<Revocations>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut cursor: Option<u64> = None;
        let mut backoff = Duration::from_millis(100);
        loop {
            match stream(&source, &keys, &revocations, &mut cursor).await {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(e) => {
                    source.set_feed_connected(false);
                    tracing::debug!(error = %e, "change feed stream unavailable; polling");
                    // Polling keeps caches honest while the stream is down.
                    if poll(&source, &keys, &revocations, &mut cursor).await.is_ok() {
                        backoff = Duration::from_millis(100);
                    } else {
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(2));
                    }
                }
            }
        }
    })
}

async fn stream(
    source: &RemoteSource,
    keys: &Keys,
    revocations: &Revocations,
    cursor: &mut Option<u64>,
) -> Result<(), String> {
    let token = source.service_token().get().await.map_err(|e| e.to_string())?;
    let mut request = source.http().get(format!("{}/v1/changes", source.auth_url())).bearer_auth(token);
    if let Some(c) = cursor {
        request = request.header("last-event-id", c.to_string());
    }
    let response = request.send().await.map_err(|e| e.to_string())?;
    if response.status() == reqwest::StatusCode::GONE {
        resync(source, cursor, response).await;
        return Ok(());
    }
    if response.status() == reqwest::StatusCode::UNAUTHORIZED {
        source.service_token().clear().await;
    }
    if !response.status().is_success() {
        return Err(format!("the feed answered {}", response.status()));
    }
    source.set_feed_connected(true);
    let mut body = response.bytes_stream();
    let mut buffer = String::new();
    let mut data = String::new();
    // Auth sends a heartbeat at least every 15 s: silence for twice that means the connection is gone.
    let silence = crate::feed::HEARTBEAT_GRACE;
    while let Some(chunk) =
        tokio::time::timeout(silence, body.next()).await.map_err(|_| "the feed went silent".to_owned())?
    {
        let chunk = chunk.map_err(|e| e.to_string())?;
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find('\n') {
            let line: String = buffer.drain(..=end).collect();
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if !data.is_empty() {
                    if let Ok(event) = serde_json::from_str::<FeedEvent>(&data) {
                        apply(&event, source, keys, revocations).await;
                        *cursor = Some(event.seq);
                    }
                    data.clear();
                }
            } else if let Some(rest) = line.strip_prefix("data:") {
                data.push_str(rest.trim_start());
            }
        }
    }
    source.set_feed_connected(false);
    Err("the feed stream ended".into())
}

async fn poll(
    source: &RemoteSource,
    keys: &Keys,
    revocations: &Revocations,
    cursor: &mut Option<u64>,
) -> Result<(), String> {
    let token = source.service_token().get().await.map_err(|e| e.to_string())?;
    let mut request = source
        .http()
        .get(format!("{}/v1/changes", source.auth_url()))
        .bearer_auth(token)
        .timeout(crate::REQUEST_TIMEOUT)
        .header("accept", "application/json");
    if let Some(c) = cursor {
        request = request.query(&[("after", c.to_string())]);
    }
    let response = request.send().await.map_err(|e| e.to_string())?;
    if response.status() == reqwest::StatusCode::GONE {
        resync(source, cursor, response).await;
        return Ok(());
    }
    if !response.status().is_success() {
        return Err(format!("the feed answered {}", response.status()));
    }
    let events: Vec<FeedEvent> = response.json().await.map_err(|e| e.to_string())?;
    for event in &events {
        apply(event, source, keys, revocations).await;
        *cursor = Some(event.seq);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(())
}

/// `410`: the log no longer holds what was missed: drop everything cached and go on from where Auth says.
async fn resync(source: &RemoteSource, cursor: &mut Option<u64>, response: reqwest::Response) {
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    source.reset();
    *cursor = body.get("resume_after").and_then(serde_json::Value::as_u64);
    tracing::warn!(resume_after = ?cursor, "change feed past retention: caches dropped");
}
