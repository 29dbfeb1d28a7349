//! Live pages (API.md §6): the console follows Auth's change feed with a service token and tells each
//! open page whose user an event concerns to refresh itself, over server-sent events. The page's script
//! (`/assets/live.js`) then fetches the same page again and swaps the navigation and the main content:
//! no reload, and every decision still comes from Auth and the modules.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::StreamExt;
use kisum_client::sse::Decoder;
use serde_json::Value;
use tokio::sync::broadcast;

use crate::upstream::Call;

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

    /// The server-sent events of one page: `access` whenever a change concerns its user.
    pub fn stream(
        &self,
        user: String,
        company: String,
    ) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>> + use<>> {
        let rx = self.tx.subscribe();
        let stream = futures_util::stream::unfold(rx, move |mut rx| {
            let (user, company) = (user.clone(), company.clone());
            async move {
                loop {
                    match rx.recv().await {
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

/// Follows Auth's feed for as long as the console runs, reconnecting with backoff; starts at the
/// newest sequence (pages read current state when they render).
pub(crate) async fn follow(
    http: reqwest::Client,
    auth: String,
    client_id: String,
    client_secret: String,
    live: Arc<Live>,
) {
    let mut after = 0u64;
    let mut first = true;
    let mut delay = Duration::from_millis(200);
    loop {
        match follow_once(&http, &auth, &client_id, &client_secret, &live, &mut after, &mut first).await {
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
    after: &mut u64,
    first: &mut bool,
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
    if *first {
        // Start at the head: the events already in the log concern pages nobody has open.
        let events = Call::get(format!("{auth}/v1/changes?after=0")).bearer(&token).send(http).await;
        if let Ok(reply) = events
            && let Some(last) = reply.body.as_array().and_then(|a| a.last())
        {
            *after = last.get("seq").and_then(Value::as_u64).unwrap_or(0);
        }
        *first = false;
    }
    let response = http
        .get(format!("{auth}/v1/changes?after={after}"))
        .bearer_auth(&token)
        .header("accept", "text/event-stream")
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if response.status().as_u16() == 410 {
        // Older than the log keeps: every page refreshes, then follow from where Auth says.
        let body: Value = response.json().await.unwrap_or(Value::Null);
        *after = body.get("resume_after").and_then(Value::as_u64).unwrap_or(*after);
        live.publish(Change { seq: *after, company: None, principals: None });
        return Ok(());
    }
    if !response.status().is_success() {
        return Err(format!("the change feed answered {}", response.status()));
    }
    let mut decoder = Decoder::new();
    let mut body = response.bytes_stream();
    let mut events = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| e.to_string())?;
        decoder.push(&chunk, &mut events).map_err(|_| "the change feed sent a line that is not UTF-8".to_owned())?;
        for event in events.drain(..) {
            let Ok(data) = serde_json::from_str::<Value>(&event.data) else { continue };
            let seq = data.get("seq").and_then(Value::as_u64).unwrap_or(*after);
            *after = (*after).max(seq);
            if data.get("kind").and_then(Value::as_str) == Some("keys") {
                continue;
            }
            let company_wide = data.get("company_wide").and_then(Value::as_bool).unwrap_or(false);
            let principals = match data.get("principals").and_then(Value::as_array) {
                Some(p) if !company_wide => Some(p.iter().filter_map(Value::as_str).map(str::to_owned).collect()),
                _ => None,
            };
            let company = data.get("company").and_then(Value::as_str).map(str::to_owned);
            live.publish(Change { seq, company, principals });
        }
    }
    Ok(())
}
