//! Following Auth's change feed (API.md §2, §5): the revocations in force loaded first, then Server-Sent
//! Events from their sequence, resumed with `Last-Event-ID`; JSON polling when the stream cannot be had;
//! lost events (`410`, an event that does not parse) answered by dropping everything cached and loading
//! the revocations again. Each event drops the cached access it concerns, records revoked sessions, or
//! refetches the keys.
//!
//! The reading itself ([`follow_with`]) serves any follower through a [`FeedSink`]: the SDK's caches
//! ([`follow`]), and anything else that must hear of changes — the console's live pages do.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use kisum_access::{CompanyId, Principal, RevocationList};
use kisum_entitlements::Timestamp;

use crate::keys::Keys;
use crate::service::ServiceToken;
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

/// What a feed event changes in the SDK's caches.
pub(crate) async fn apply(event: &FeedEvent, source: &RemoteSource, keys: &Keys, revocations: &Revocations) {
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
    let list = source.feed().revocations().await?;
    for s in &list.sessions {
        revocations.session(&s.sid, s.until);
    }
    Ok(list.seq)
}

/// Auth's change feed as a service reads it: an HTTP client, Auth's URL, and the service's token (scope
/// `auth:access:read`).
#[derive(Debug, Clone, Copy)]
pub struct FeedReader<'a> {
    /// The HTTP client.
    pub http: &'a reqwest::Client,
    /// Auth's base URL.
    pub auth_url: &'a str,
    /// The service's token.
    pub token: &'a ServiceToken,
}

impl FeedReader<'_> {
    /// `GET /v1/revocations`: every revocation in force, and the sequence of the log they are current at
    /// (where a follower starts, or resumes after losing events).
    pub async fn revocations(&self) -> Result<RevocationList, String> {
        let token = self.token.get().await.map_err(|e| e.to_string())?;
        let response = self
            .http
            .get(format!("{}/v1/revocations", self.auth_url))
            .bearer_auth(token)
            .timeout(crate::REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(|e| crate::secret::causes(&e))?;
        if response.status() == reqwest::StatusCode::UNAUTHORIZED {
            self.token.clear().await;
        }
        if !response.status().is_success() {
            return Err(format!("Auth answered {} for the revocations", response.status()));
        }
        response.json().await.map_err(|e| e.to_string())
    }
}

/// What a follower of the change feed does with it ([`follow_with`] reads the feed for it).
#[async_trait]
pub trait FeedSink: Send + Sync + 'static {
    /// The follower's name: the `follower` label of `kisum_feed_position` and `kisum_feed_lag_seconds`.
    fn name(&self) -> &'static str;
    /// How the feed is read.
    fn reader(&self) -> FeedReader<'_>;
    /// One event, in the log's order.
    async fn apply(&self, event: &FeedEvent);
    /// Events were lost (the cursor is past the log's retention, or an event did not parse), or the
    /// follower starts with no sequence: drop whatever may be stale, and answer the sequence to follow
    /// from (retried with backoff while it fails).
    async fn resync(&self) -> Result<u64, String>;
    /// The feed (re)starts after `seq` (after a resync).
    fn started(&self, _seq: u64) {}
    /// The stream is open (`true`), or was lost and the feed is polled meanwhile (`false`).
    fn connected(&self, _connected: bool) {}
}

/// The SDK's follower: events drop cached access, record revoked sessions, or refetch the keys.
struct Caches {
    source: Arc<RemoteSource>,
    keys: Arc<Keys>,
    revocations: Arc<Revocations>,
}

#[async_trait]
impl FeedSink for Caches {
    fn name(&self) -> &'static str {
        "sdk"
    }

    fn reader(&self) -> FeedReader<'_> {
        self.source.feed()
    }

    async fn apply(&self, event: &FeedEvent) {
        apply(event, &self.source, &self.keys, &self.revocations).await;
        self.source.feed_applied(event.seq);
    }

    async fn resync(&self) -> Result<u64, String> {
        self.source.reset();
        load_revocations(&self.source, &self.revocations).await
    }

    fn started(&self, seq: u64) {
        self.source.feed_started(seq);
    }

    fn connected(&self, connected: bool) {
        self.source.set_feed_connected(connected);
        self.revocations.forget_before(Timestamp::now());
    }
}

/// Seconds from `at` to `now`, never negative (clocks of two machines may disagree a little).
pub fn lag_seconds(at: Timestamp, now: Timestamp) -> f64 {
    let nanos = |t: Timestamp| t.unix_seconds() as f64 + f64::from(t.subsec_nanos()) / 1e9;
    (nanos(now) - nanos(at)).max(0.0)
}

/// Nothing is waiting on the feed: the lag is zero.
fn caught_up(sink: &dyn FeedSink) {
    metrics::gauge!("kisum_feed_lag_seconds", "follower" => sink.name()).set(0.0);
}

/// Hands `event` to `sink`, recording the follower's position and lag.
async fn deliver(sink: &dyn FeedSink, event: &FeedEvent, cursor: &mut u64) {
    metrics::gauge!("kisum_feed_position", "follower" => sink.name()).set(event.seq as f64);
    if let Some(at) = event.at {
        metrics::gauge!("kisum_feed_lag_seconds", "follower" => sink.name()).set(lag_seconds(at, Timestamp::now()));
    }
    sink.apply(event).await;
    *cursor = event.seq;
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

/// Follows the feed from sequence `from` (the one [`load_revocations`] answered) until aborted, into the
/// SDK's caches: see [`follow_with`]. When events were lost everything cached is dropped, the
/// revocations are loaded again, and the feed resumes from their sequence. Revocations past their `until`
/// are forgotten as it goes.
pub fn follow(
    source: Arc<RemoteSource>,
    keys: Arc<Keys>,
    revocations: Arc<Revocations>,
    from: u64,
) -> tokio::task::JoinHandle<()> {
    follow_with(Arc::new(Caches { source, keys, revocations }), Some(from))
}

/// Follows the feed for `sink` until aborted, from sequence `from` (`None`: from where
/// [`FeedSink::resync`] says): SSE, resumed from the last event seen; JSON polling while the stream cannot
/// be opened; reconnects back off with jitter; a stream silent past [`HEARTBEAT_GRACE`] is reopened. When
/// events were lost (`410`, or one that does not parse) the sink resyncs and the feed resumes from the
/// sequence it answers.
pub fn follow_with(sink: Arc<dyn FeedSink>, from: Option<u64>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let sink = sink.as_ref();
        let mut backoff = Duration::from_millis(100);
        let mut cursor = match from {
            Some(from) => from,
            None => resync(sink, "starting", &mut backoff).await,
        };
        sink.started(cursor);
        loop {
            let stopped = match stream(sink, &mut cursor).await {
                Stop::Down(e) => {
                    sink.connected(false);
                    tracing::debug!(follower = sink.name(), error = %e, "change feed stream unavailable; polling");
                    // Polling keeps caches honest while the stream is down.
                    match poll(sink, &mut cursor).await {
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
                sink.connected(false);
                tracing::warn!(follower = sink.name(), %why, "change feed lost events: resyncing");
                cursor = resync(sink, &why, &mut backoff).await;
                sink.started(cursor);
            }
        }
    })
}

/// The sequence `sink` resyncs to, retried with backoff until it is had.
async fn resync(sink: &dyn FeedSink, why: &str, backoff: &mut Duration) -> u64 {
    loop {
        match sink.resync().await {
            Ok(seq) => return seq,
            Err(e) => {
                tracing::warn!(follower = sink.name(), error = %e, %why, "resyncing with the change feed failed; retrying");
                tokio::time::sleep(jittered(*backoff)).await;
                *backoff = (*backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Reads the SSE stream from `cursor` until it fails or events are lost.
async fn stream(sink: &dyn FeedSink, cursor: &mut u64) -> Stop {
    let reader = sink.reader();
    let token = match reader.token.get().await {
        Ok(token) => token,
        Err(e) => return Stop::Down(e.to_string()),
    };
    let request = reader
        .http
        .get(format!("{}/v1/changes", reader.auth_url))
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
        reader.token.clear().await;
    }
    if !response.status().is_success() {
        return Stop::Down(format!("the feed answered {}", response.status()));
    }
    sink.connected(true);
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
            caught_up(sink);
        }
        for raw in events.drain(..) {
            match serde_json::from_str::<FeedEvent>(&raw.data) {
                Ok(event) => deliver(sink, &event, cursor).await,
                Err(e) => return Stop::Resync(format!("an event that does not parse: {e}")),
            }
        }
    }
}

async fn poll(sink: &dyn FeedSink, cursor: &mut u64) -> Result<(), Stop> {
    let reader = sink.reader();
    let token = reader.token.get().await.map_err(|e| Stop::Down(e.to_string()))?;
    let request = reader
        .http
        .get(format!("{}/v1/changes", reader.auth_url))
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
        caught_up(sink);
    }
    for event in &events {
        deliver(sink, event, cursor).await;
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
