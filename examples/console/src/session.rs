//! The backend-for-frontend session (API.md §6). The browser holds one cookie naming a server-side
//! session; the session holds the user's refresh token and current access token, which never reach the
//! browser. Access tokens are refreshed here shortly before they expire, one refresh at a time per
//! session (Auth rotates the refresh token on every use, and a second use of a spent one would end the
//! session). Every state-changing request carries the session's CSRF token; the sign-in form, which has
//! no session yet, carries a double-submit token of its own cookie.
//!
//! Sessions live in this process's memory: a restart of the console signs everyone out (their Auth
//! sessions stay valid until they expire), and replicas of the console need sticky sessions. Both are
//! the trade-off for a frontend that keeps no store of its own.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, header};
use serde_json::Value;

use crate::upstream::{Call, Problem};

/// The session cookie (`__Host-` prefixed under TLS: no subdomain can plant or overwrite it).
const COOKIE: [&str; 2] = ["kisum_console", "__Host-kisum_console"];
/// The sign-in form's double-submit cookie.
const LOGIN_COOKIE: [&str; 2] = ["kisum_console_login", "__Host-kisum_console_login"];
/// A session unused this long is gone.
const IDLE: Duration = Duration::from_secs(8 * 3600);
/// Refresh an access token this long before it expires.
const REFRESH_AHEAD: Duration = Duration::from_secs(30);
/// The most sessions one console holds; past it, the least recently used go first.
const MAX_SESSIONS: usize = 50_000;

/// A company the user belongs to, as Auth's sign-in lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CompanyEntry {
    pub id: String,
    pub roles: Vec<String>,
    pub status: String,
}

/// The tokens of a session.
#[derive(Debug)]
struct Tokens {
    refresh: String,
    company: String,
    access: Option<(String, Instant)>,
}

/// A signed-in browser.
#[derive(Debug)]
pub(crate) struct Session {
    pub user: String,
    pub companies: Vec<CompanyEntry>,
    /// The CSRF token every form of this session carries.
    pub csrf: String,
    tokens: tokio::sync::Mutex<Tokens>,
    last_seen: Mutex<Instant>,
    /// The newest `kisum-version` this session's writes were answered with: its reads ask for state at
    /// least that fresh (read-your-writes across replicas).
    written: AtomicU64,
    /// A message for the next page (what a form did, or why it was refused).
    flash: Mutex<Option<Flash>>,
}

/// What the last form did.
#[derive(Debug, Clone)]
pub(crate) enum Flash {
    Done(String),
    /// A secret shown once (an agent's client secret).
    Secret {
        what: String,
        client_id: String,
        secret: String,
    },
    Refused(Problem),
}

/// Why a page cannot be served for a session.
#[derive(Debug)]
pub(crate) enum SessionError {
    /// Not signed in, or the Auth session has ended: sign in again.
    SignedOut,
    /// The user's membership in the current company does not give a token (suspended, removed).
    Company(Problem),
    /// Auth failed.
    Upstream(Problem),
}

impl Session {
    /// The current company.
    pub async fn company(&self) -> String {
        self.tokens.lock().await.company.clone()
    }

    /// A valid access token for the current company, refreshed when it is about to expire.
    pub async fn access(&self, http: &reqwest::Client, auth: &str) -> Result<(String, String), SessionError> {
        let mut tokens = self.tokens.lock().await;
        if let Some((token, expires)) = &tokens.access
            && Instant::now() + REFRESH_AHEAD < *expires
        {
            return Ok((token.clone(), tokens.company.clone()));
        }
        let company = tokens.company.clone();
        refresh(http, auth, &mut tokens, &company).await?;
        match &tokens.access {
            Some((token, _)) => Ok((token.clone(), company)),
            None => Err(SessionError::SignedOut),
        }
    }

    /// Switches to `company`: a token for it, or the refusal (the current company stays).
    pub async fn switch(&self, http: &reqwest::Client, auth: &str, company: &str) -> Result<(), SessionError> {
        let mut tokens = self.tokens.lock().await;
        refresh(http, auth, &mut tokens, company).await
    }

    /// Ends the Auth session (its refresh tokens die at once, its access tokens within a second).
    pub async fn revoke(&self, http: &reqwest::Client, auth: &str) {
        let tokens = self.tokens.lock().await;
        let body = serde_json::json!({"refresh_token": tokens.refresh});
        if let Err(e) =
            Call::new(reqwest::Method::POST, format!("{auth}/v1/sessions/revoke")).json(&body).send(http).await
        {
            tracing::warn!(detail = %e.detail, "signing out at Auth failed; the console session ends anyway");
        }
    }

    pub fn set_flash(&self, flash: Flash) {
        *self.flash.lock().unwrap_or_else(PoisonError::into_inner) = Some(flash);
    }

    /// Notes the `kisum-version` a write of this session was answered with.
    pub fn wrote(&self, version: Option<u64>) {
        if let Some(v) = version {
            self.written.fetch_max(v, Ordering::AcqRel);
        }
    }

    /// The newest version this session wrote.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Acquire)
    }

    pub fn take_flash(&self) -> Option<Flash> {
        self.flash.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

/// Exchanges the session's refresh token for an access token of `company`, keeping the new refresh
/// token. On `401` the Auth session has ended; on `403`/`404` the membership gives no token.
async fn refresh(http: &reqwest::Client, auth: &str, tokens: &mut Tokens, company: &str) -> Result<(), SessionError> {
    let form = [("grant_type", "refresh_token"), ("refresh_token", tokens.refresh.as_str()), ("company", company)];
    let reply = Call::new(reqwest::Method::POST, format!("{auth}/oauth/token"))
        .form(&form)
        .send(http)
        .await
        .map_err(SessionError::Upstream)?;
    match reply.status.as_u16() {
        200 => {
            let text = |k: &str| reply.body.get(k).and_then(Value::as_str).map(str::to_owned);
            let (Some(access), Some(refresh)) = (text("access_token"), text("refresh_token")) else {
                return Err(SessionError::Upstream(reply.problem().unwrap_or_else(|| malformed("token answer"))));
            };
            let seconds = reply.body.get("expires_in").and_then(Value::as_u64).unwrap_or(60);
            tokens.refresh = refresh;
            tokens.company = company.to_owned();
            tokens.access = Some((access, Instant::now() + Duration::from_secs(seconds)));
            Ok(())
        }
        401 => Err(SessionError::SignedOut),
        403 | 404 => {
            tokens.access = None;
            Err(SessionError::Company(reply.problem().unwrap_or_else(|| malformed("refusal"))))
        }
        _ => Err(SessionError::Upstream(reply.problem().unwrap_or_else(|| malformed("token answer")))),
    }
}

fn malformed(what: &str) -> Problem {
    Problem {
        status: 502,
        code: "UPSTREAM_UNAVAILABLE".into(),
        detail: format!("Auth's {what} was not understood"),
        required: None,
        errors: Vec::new(),
    }
}

/// Every session of this console.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    map: Mutex<HashMap<String, Arc<Session>>>,
    /// Served over TLS: cookies are `Secure` and `__Host-` prefixed.
    secure: bool,
}

impl Sessions {
    pub fn new(secure: bool) -> Sessions {
        Sessions { map: Mutex::default(), secure }
    }

    fn names(&self) -> (&'static str, &'static str) {
        let i = usize::from(self.secure);
        (
            COOKIE.get(i).copied().unwrap_or("kisum_console"),
            LOGIN_COOKIE.get(i).copied().unwrap_or("kisum_console_login"),
        )
    }

    /// The `Set-Cookie` of the session cookie (`None` clears it).
    pub fn session_cookie(&self, id: Option<&str>) -> HeaderValue {
        set_cookie(self.names().0, id, self.secure)
    }

    /// The `Set-Cookie` of the sign-in form's token (`None` clears it).
    pub fn login_cookie(&self, token: Option<&str>) -> HeaderValue {
        set_cookie(self.names().1, token, self.secure)
    }

    /// The sign-in form's token the browser sent back.
    pub fn login_token(&self, headers: &HeaderMap) -> Option<String> {
        cookie(headers, self.names().1)
    }

    /// A new session for `user`, signed in with `refresh` (not yet exchanged), in `company`; its id.
    pub fn create(
        &self,
        user: String,
        companies: Vec<CompanyEntry>,
        refresh: String,
        company: String,
    ) -> Result<(String, Arc<Session>), Problem> {
        let id = random()?;
        let session = Arc::new(Session {
            user,
            companies,
            csrf: random()?,
            tokens: tokio::sync::Mutex::new(Tokens { refresh, company, access: None }),
            last_seen: Mutex::new(Instant::now()),
            written: AtomicU64::new(0),
            flash: Mutex::new(None),
        });
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_SESSIONS {
            let now = Instant::now();
            map.retain(|_, s| now.duration_since(*s.last_seen.lock().unwrap_or_else(PoisonError::into_inner)) < IDLE);
            if map.len() >= MAX_SESSIONS {
                let oldest = map
                    .iter()
                    .min_by_key(|(_, s)| *s.last_seen.lock().unwrap_or_else(PoisonError::into_inner))
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    map.remove(&k);
                }
            }
        }
        map.insert(id.clone(), session.clone());
        Ok((id, session))
    }

    /// The session the request's cookie names, if it is live.
    pub fn of(&self, headers: &HeaderMap) -> Option<Arc<Session>> {
        let id = cookie(headers, self.names().0)?;
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let session = map.get(&id)?.clone();
        let mut seen = session.last_seen.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.elapsed() >= IDLE {
            drop(seen);
            map.remove(&id);
            return None;
        }
        *seen = Instant::now();
        drop(seen);
        Some(session)
    }

    /// Ends the session the request's cookie names.
    pub fn remove(&self, headers: &HeaderMap) -> Option<Arc<Session>> {
        let id = cookie(headers, self.names().0)?;
        self.map.lock().unwrap_or_else(PoisonError::into_inner).remove(&id)
    }
}

/// 32 random bytes as hex.
pub(crate) fn random() -> Result<String, Problem> {
    kisum_server::random::secret().map_err(|_| Problem {
        status: 500,
        code: "INTERNAL".into(),
        detail: "the random source failed".into(),
        required: None,
        errors: Vec::new(),
    })
}

/// The value of cookie `name` in the request.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Lax`, `Path=/`, `Secure` under TLS; `None` clears it.
fn set_cookie(name: &str, value: Option<&str>, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = match value {
        Some(v) => format!("{name}={v}; Path=/; HttpOnly; SameSite=Lax{secure}"),
        None => format!("{name}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}"),
    };
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("kisum_console=; Max-Age=0"))
}

/// Compares two secrets in time independent of where they differ.
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether an unsafe request comes from this console's own pages: a browser that says where a request
/// comes from (`Sec-Fetch-Site`, `Origin`) must say same-origin. The CSRF token is checked besides.
pub(crate) fn same_origin(headers: &HeaderMap) -> bool {
    let site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if let Some(site) = site {
        return site == "same-origin" || site == "none";
    }
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    match (origin, host) {
        (None, _) => true,
        (Some(o), Some(h)) => o.split_once("://").is_some_and(|(_, rest)| rest == h),
        (Some(_), None) => false,
    }
}
