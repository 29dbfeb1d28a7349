//! Live pages (API.md §6): the console follows Auth's change feed with a service token and tells each
//! open page whose user an event concerns to refresh itself, over server-sent events. The page's script
//! (`/assets/live.js`) then fetches the same page again and swaps the navigation and the main content:
//! no reload, and every decision still comes from Auth and the modules.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use axum::response::sse::{Event, KeepAlive, Sse};
use kisum_client::feed::FeedEvent;
use kisum_client::{FeedReader, FeedSink, ServiceToken};
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

/// The console's follower of Auth's change feed, read by the SDK ([`kisum_client::follow_with`]: SSE
/// resumed from the last event seen, polling while the stream is down, backoff with jitter): each event
/// tells the open pages it concerns; a resync (the start, or events lost) refreshes every open page and
/// follows on from the sequence Auth's revocation list is current at.
struct Pages {
    http: reqwest::Client,
    auth_url: String,
    token: ServiceToken,
    live: Arc<Live>,
}

#[async_trait]
impl FeedSink for Pages {
    fn name(&self) -> &'static str {
        "console"
    }

    fn reader(&self) -> FeedReader<'_> {
        FeedReader { http: &self.http, auth_url: &self.auth_url, token: &self.token }
    }

    async fn apply(&self, event: &FeedEvent) {
        if event.kind == FeedEvent::KEYS {
            return;
        }
        let principals = (!event.company_wide).then(|| event.principals.clone());
        self.live.publish(Change { seq: event.seq, company: event.company.clone(), principals });
    }

    async fn resync(&self) -> Result<u64, String> {
        let seq = self.reader().revocations().await?.seq;
        self.live.publish(Change { seq, company: None, principals: None });
        Ok(seq)
    }
}

/// Follows Auth's feed with the console's client (scope `auth:access:read`) for as long as the console
/// runs (abort the task to stop).
pub(crate) fn follow(
    http: reqwest::Client,
    auth_url: String,
    client_id: &str,
    client_secret: &kisum_client::Secret,
    live: Arc<Live>,
) -> tokio::task::JoinHandle<()> {
    let token = ServiceToken::new(http.clone(), &auth_url, client_id, client_secret.expose(), "auth:access:read");
    kisum_client::follow_with(Arc::new(Pages { http, auth_url, token, live }), None)
}
