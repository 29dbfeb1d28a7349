//! Following Auth's change feed (API.md §2, §5): the revocations in force loaded first, then Server-Sent
//! Events from their sequence, resumed with `Last-Event-ID`; JSON polling when the stream cannot be had;
//! lost events (`410`, an event that does not parse) answered by dropping everything cached and loading
//! the revocations again. Each event drops the cached access it concerns, records revoked sessions, or
//! refetches the keys.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures_util::StreamExt;
use kisum_access::{CompanyId, Principal};
use kisum_entitlements::Timestamp;

use crate::keys::Keys;
use crate::source::RemoteSource;

/// How long the stream may stay silent (Auth's heartbeats come every 15 s) before it is reopened.
pub const HEARTBEAT_GRACE: Duration = Duration::from_secs(30);

pub use kisum_access::FeedEvent;

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

    /// Forgets what no token can outlive any more: entries whose `until` has passed.
    pub fn forget_before(&self, now: Timestamp) {
        if let Ok(mut m) = self.sessions.write() {
            m.retain(|_, until| now < *until);
        }
        if let Ok(mut m) = self.users.write() {
            m.retain(|_, (_, until)| now < *until);
        }
    }

    /// The number of sessions and users refused now (for tests and metrics).
    pub fn len(&self) -> usize {
        self.sessions.read().map_or(0, |m| m.len()) + self.users.read().map_or(0, |m| m.len())
    }

    /// Whether nothing is refused.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
    metrics::gauge!("kisum_feed_position", "follower" => "sdk").set(event.seq as f64);
    if let Some(at) = event.at {
        metrics::gauge!("kisum_feed_lag_seconds", "follower" => "sdk").set(lag_seconds(at, Timestamp::now()));
    }
    match event.kind.as_str() {
        FeedEvent::ACCESS => {
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
        FeedEvent::SESSION_REVOKED => {
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
        FeedEvent::KEYS => {
            keys.refetch(true).await;
        }
        _ => {}
    }
}

/// Loads every revocation in force from Auth into `revocations`; returns the sequence to follow the feed
/// from (API.md §5: before a module answers ready, and after every `410`).
pub async fn load_revocations(source: &RemoteSource, revocations: &Revocations) -> Result<u64, String> {
    let token = source.service_token().get().await.map_err(|e| e.to_string())?;
    let response = source
        .http()
        .get(format!("{}/v1/revocations", source.auth_url()))
        .bearer_auth(token)
        .timeout(crate::REQUEST_TIMEOUT)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if response.status() == reqwest::StatusCode::UNAUTHORIZED {
        source.service_token().clear().await;
    }
    if !response.status().is_success() {
        return Err(format!("Auth answered {} for the revocations", response.status()));
    }
    let list: kisum_access::RevocationList = response.json().await.map_err(|e| e.to_string())?;
    for s in &list.sessions {
        revocations.session(&s.sid, s.until);
    }
    Ok(list.seq)
}

/// Seconds from `at` to `now`, never negative (clocks of two machines may disagree a little).
pub fn lag_seconds(at: Timestamp, now: Timestamp) -> f64 {
    let nanos = |t: Timestamp| t.unix_seconds() as f64 + f64::from(t.subsec_nanos()) / 1e9;
    (nanos(now) - nanos(at)).max(0.0)
}

/// Nothing is waiting on the feed: the lag is zero.
fn caught_up() {
    metrics::gauge!("kisum_feed_lag_seconds", "follower" => "sdk").set(0.0);
}

/// Why a stream or a poll stopped.
enum Stop {
    /// Auth could not be read: retry, polling meanwhile.
    Down(String),
    /// Events were lost (`410`, or an event that does not parse): reload, then follow from where Auth says.
    Resync(String),
}

/// A delay around `base` (0.5× to 1.5×), so that many modules do not reconnect in step.
fn jittered(base: Duration) -> Duration {
    use std::hash::BuildHasher;
    let random = std::hash::RandomState::new().hash_one(std::time::Instant::now());
    base.mul_f64(0.5 + (random % 1000) as f64 / 1000.0)
}

/// Follows the feed from sequence `from` (the one [`load_revocations`] answered) until aborted: SSE,
/// resumed from the last event seen; JSON polling while the stream cannot be opened; reconnects back off
/// with jitter. When events were lost (`410`, or one that does not parse) everything cached is dropped,
/// the revocations are loaded again, and the feed resumes from their sequence. Revocations past their
/// `until` are forgotten as it goes.
pub fn follow(
    source: Arc<RemoteSource>,
    keys: Arc<Keys>,
    revocations: Arc<Revocations>,
    from: u64,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut cursor = from;
        source.feed_started(from);
        let mut backoff = Duration::from_millis(100);
        loop {
            revocations.forget_before(Timestamp::now());
            let stopped = match stream(&source, &keys, &revocations, &mut cursor).await {
                Stop::Down(e) => {
                    source.set_feed_connected(false);
                    tracing::debug!(error = %e, "change feed stream unavailable; polling");
                    // Polling keeps caches honest while the stream is down.
                    match poll(&source, &keys, &revocations, &mut cursor).await {
                        Ok(()) => {
                            backoff = Duration::from_millis(100);
                            None
                        }
                        Err(Stop::Down(_)) => {
                            tokio::time::sleep(jittered(backoff)).await;
                            backoff = (backoff * 2).min(Duration::from_secs(5));
                            None
                        }
                        Err(Stop::Resync(why)) => Some(why),
                    }
                }
                Stop::Resync(why) => Some(why),
            };
            if let Some(why) = stopped {
                source.set_feed_connected(false);
                source.reset();
                tracing::warn!(%why, "change feed lost events: caches dropped, revocations reloading");
                loop {
                    match load_revocations(&source, &revocations).await {
                        Ok(seq) => {
                            cursor = seq;
                            source.feed_started(seq);
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "reloading the revocations failed; retrying");
                            tokio::time::sleep(jittered(backoff)).await;
                            backoff = (backoff * 2).min(Duration::from_secs(5));
                        }
                    }
                }
            }
        }
    })
}

/// Reads the SSE stream from `cursor` until it fails or events are lost.
async fn stream(source: &RemoteSource, keys: &Keys, revocations: &Revocations, cursor: &mut u64) -> Stop {
    let token = match source.service_token().get().await {
        Ok(token) => token,
        Err(e) => return Stop::Down(e.to_string()),
    };
    let request = source
        .http()
        .get(format!("{}/v1/changes", source.auth_url()))
        .bearer_auth(token)
        .header("last-event-id", cursor.to_string());
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) => return Stop::Down(e.to_string()),
    };
    if response.status() == reqwest::StatusCode::GONE {
        return Stop::Resync("the cursor is past the log's retention".into());
    }
    if response.status() == reqwest::StatusCode::UNAUTHORIZED {
        source.service_token().clear().await;
    }
    if !response.status().is_success() {
        return Stop::Down(format!("the feed answered {}", response.status()));
    }
    source.set_feed_connected(true);
    let mut body = response.bytes_stream();
    let mut decoder = crate::sse::Decoder::new();
    let mut events = Vec::new();
    loop {
        // Auth sends a heartbeat at least every 15 s: silence for twice that means the connection is gone.
        let chunk = match tokio::time::timeout(HEARTBEAT_GRACE, body.next()).await {
            Err(_) => return Stop::Down("the feed went silent".into()),
            Ok(None) => return Stop::Down("the feed stream ended".into()),
            Ok(Some(Err(e))) => return Stop::Down(e.to_string()),
            Ok(Some(Ok(chunk))) => chunk,
        };
        if decoder.push(&chunk, &mut events).is_err() {
            return Stop::Resync("the stream is not UTF-8 text".into());
        }
        if events.is_empty() {
            // A heartbeat: nothing is waiting.
            caught_up();
        }
        for raw in events.drain(..) {
            match serde_json::from_str::<FeedEvent>(&raw.data) {
                Ok(event) => {
                    apply(&event, source, keys, revocations).await;
                    *cursor = event.seq;
                    source.feed_applied(event.seq);
                }
                Err(e) => return Stop::Resync(format!("an event that does not parse: {e}")),
            }
        }
    }
}

async fn poll(source: &RemoteSource, keys: &Keys, revocations: &Revocations, cursor: &mut u64) -> Result<(), Stop> {
    let token = source.service_token().get().await.map_err(|e| Stop::Down(e.to_string()))?;
    let request = source
        .http()
        .get(format!("{}/v1/changes", source.auth_url()))
        .bearer_auth(token)
        .timeout(crate::REQUEST_TIMEOUT)
        .header("accept", "application/json")
        .query(&[("after", cursor.to_string())]);
    let response = request.send().await.map_err(|e| Stop::Down(e.to_string()))?;
    if response.status() == reqwest::StatusCode::GONE {
        return Err(Stop::Resync("the cursor is past the log's retention".into()));
    }
    if !response.status().is_success() {
        return Err(Stop::Down(format!("the feed answered {}", response.status())));
    }
    let text = response.bytes().await.map_err(|e| Stop::Down(e.to_string()))?;
    let events: Vec<FeedEvent> =
        serde_json::from_slice(&text).map_err(|e| Stop::Resync(format!("events that do not parse: {e}")))?;
    if events.is_empty() {
        caught_up();
    }
    for event in &events {
        apply(event, source, keys, revocations).await;
        *cursor = event.seq;
        source.feed_applied(event.seq);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reconnect delays spread around the base (0.5× to 1.5×), so that modules do not reconnect in step.
    #[test]
    fn delays_are_jittered() {
        let base = Duration::from_millis(1000);
        let delays: Vec<Duration> = (0..50).map(|_| jittered(base)).collect();
        assert!(delays.iter().all(|d| *d >= base / 2 && *d < base * 3 / 2), "{delays:?}");
        let first = delays.first().copied();
        assert!(delays.iter().any(|d| Some(*d) != first), "every delay was the same: {delays:?}");
    }
}
