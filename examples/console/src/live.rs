//! Live pages (API.md §6): the console follows Auth's change feed with a service token and tells each
//! open page whose user an event concerns to refresh itself, over server-sent events. The page's script
//! (`/assets/live.js`) then fetches the same page again and swaps the navigation and the main content:
//! no reload, and every decision still comes from Auth and the modules.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::StreamExt;
use kisum_client::feed::FeedEvent;
use kisum_client::sse::Decoder;
use serde_json::Value;
use tokio::sync::broadcast;

use crate::session::Session;

/// One committed change that may change what some pages show.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    pub seq: u64,
    pub company: Option<String>,
    /// `None`: everyone of the company (`company_wide`: a subscription, an override, a role).
    pub principals: Option<Vec<String>>,
}

impl Change {
    /// Whether the change may alter what `user` sees in `company`.
    pub fn concerns(&self, user: &str, company: &str) -> bool {
        let company_matches = self.company.as_deref().is_none_or(|c| c == company);
        let principal = format!("user:{user}");
        company_matches && self.principals.as_ref().is_none_or(|p| p.contains(&principal))
    }
}

/// The feed as the console sees it.
#[derive(Debug)]
pub(crate) struct Live {
    tx: broadcast::Sender<Change>,
    /// The newest sequence seen: pages read Auth with `kisum-at-least` this.
    seq: AtomicU64,
}

impl Default for Live {
    fn default() -> Live {
        Live { tx: broadcast::channel(1024).0, seq: AtomicU64::new(0) }
    }
}

impl Live {
    pub fn seq(&self) -> u64 {
        self.seq.load(Ordering::Acquire)
    }

    fn publish(&self, change: Change) {
        self.seq.fetch_max(change.seq, Ordering::AcqRel);
        let _ = self.tx.send(change);
    }

    /// The server-sent events of one page: `access` whenever a change concerns its user; the stream ends
    /// at the first change after the session has ended.
    pub fn stream(
        &self,
        session: Weak<Session>,
        user: String,
        company: String,
    ) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>> + use<>> {
        let rx = self.tx.subscribe();
        let stream = futures_util::stream::unfold(rx, move |mut rx| {
            let (user, company, session) = (user.clone(), company.clone(), session.clone());
            async move {
                loop {
                    let received = rx.recv().await;
                    if session.strong_count() == 0 {
                        return None;
                    }
                    match received {
                        Ok(change) if change.concerns(&user, &company) => {
                            let event = Event::default().event("access").data(change.seq.to_string());
                            return Some((Ok(event), rx));
                        }
                        Ok(_) => {}
                        // Missed some: refresh to be safe.
                        Err(broadcast::error::RecvError::Lagged(_)) => {
                            return Some((Ok(Event::default().event("access").data("0")), rx));
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            }
        });
        Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
    }
}

/// The longest silence on the feed before the connection is taken for dead (Auth sends a heartbeat at
/// least every 15 s).
const SILENCE: Duration = Duration::from_secs(45);

/// Follows Auth's feed for as long as the console runs, reconnecting with backoff: from now on at first
/// (pages read current state when they render), then after the last event seen. After a reconnect every
/// open page refreshes once, in case something was missed meanwhile.
pub(crate) async fn follow(
    http: reqwest::Client,
    auth: String,
    client_id: String,
    client_secret: kisum_client::Secret,
    live: Arc<Live>,
) {
    let mut after: Option<u64> = None;
    let mut delay = Duration::from_millis(200);
    let mut lost = false;
    loop {
        if lost {
            live.publish(Change { seq: 0, company: None, principals: None });
        }
        lost = true;
        match follow_once(&http, &auth, &client_id, client_secret.expose(), &live, &mut after).await {
            Ok(()) => delay = Duration::from_millis(200),
            Err(e) => {
                tracing::warn!(error = %e, "the console lost Auth's change feed; live updates resume when it is back");
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
        tokio::time::sleep(delay).await;
    }
}

async fn follow_once(
    http: &reqwest::Client,
    auth: &str,
    client_id: &str,
    client_secret: &str,
    live: &Live,
    after: &mut Option<u64>,
) -> Result<(), String> {
    let form = [("grant_type", "client_credentials"), ("scope", "auth:access:read")];
    let token = http
        .post(format!("{auth}/oauth/token"))
        .basic_auth(client_id, Some(client_secret))
        .form(&form)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = token.status();
    let token: Value = token.json().await.map_err(|e| e.to_string())?;
    let Some(token) = token.get("access_token").and_then(Value::as_str).map(str::to_owned) else {
        return Err(format!("client credentials refused ({status})"));
    };
    let url = match after {
        Some(seq) => format!("{auth}/v1/changes?after={seq}"),
        None => format!("{auth}/v1/changes"),
    };
    let response = http
        .get(url)
        .bearer_auth(&token)
        .header("accept", "text/event-stream")
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if response.status().as_u16() == 410 {
        // Older than the log keeps: every page refreshes, then follow from where Auth says.
        let body: Value = response.json().await.unwrap_or(Value::Null);
        *after = body.get("resume_after").and_then(Value::as_u64).or(*after);
        live.publish(Change { seq: after.unwrap_or(0), company: None, principals: None });
        return Ok(());
    }
    if !response.status().is_success() {
        return Err(format!("the change feed answered {}", response.status()));
    }
    let mut decoder = Decoder::new();
    let mut body = response.bytes_stream();
    let mut events = Vec::new();
    loop {
        let next = tokio::time::timeout(SILENCE, body.next()).await;
        let chunk = match next {
            Err(_) => return Err(format!("the change feed was silent for {} s", SILENCE.as_secs())),
            Ok(None) => return Ok(()),
            Ok(Some(chunk)) => chunk.map_err(|e| e.to_string())?,
        };
        decoder.push(&chunk, &mut events).map_err(|_| "the change feed sent a line that is not UTF-8".to_owned())?;
        for event in events.drain(..) {
            let Ok(event) = serde_json::from_str::<FeedEvent>(&event.data) else { continue };
            let seq = event.seq;
            *after = Some(after.map_or(seq, |a| a.max(seq)));
            if event.kind == FeedEvent::KEYS {
                continue;
            }
            let principals = (!event.company_wide).then_some(event.principals);
            let company = event.company;
            live.publish(Change { seq, company, principals });
        }
    }
}
