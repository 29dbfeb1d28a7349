//! The console: Kisum's reference web frontend (API.md §6), a backend-for-frontend rendered on the
//! server with [maud](https://maud.lambda.xyz) (templates are Rust expressions: checked by the compiler,
//! every value escaped) and served by axum.
//!
//! It **reflects access and never decides it**: every page is built from what Auth, Core and the modules
//! answer over their public HTTP APIs with the signed-in user's token — the navigation from
//! `GET /v1/me/access`, each action's enabled state from `POST /v1/access/check-batch`, the records from
//! the modules, which enforce every action again. Nothing here reads the store or the directory, so the
//! console is also the proof that those APIs are enough for a real frontend.
//!
//! **Choices.** maud rather than askama: templates are Rust expressions beside the handlers that fill them,
//! so the compiler checks every value and branch, escaping is the default, and there is no second file or
//! template language to keep in step (askama is as safe, but splits each page in two). Sessions and CSRF
//! are a page of our own (`session`) rather than `axum-extra` private cookies and `axum_csrf`: the session
//! is server-side by design (the refresh token must never reach the browser, so a cookie can only name
//! it), which leaves a random id and a per-session token compared in constant time — less than those
//! crates' configuration, and no signing key to keep.
//!
//! Pages work without JavaScript; `/assets/live.js` (a few lines, allowed by the strict CSP) only
//! refreshes an open page when Auth's change feed says its user's access changed (the `live` module).
//!
//! | path | page |
//! | --- | --- |
//! | `/login`, `/logout`, `/company` | sign in, sign out, switch company |
//! | `/` | the company home: modules from the manifest, with why one is unavailable |
//! | `/m/{module}` | a module's records and actions (finance, artist, venue, promoters, touring; for ai, the user's conversations with the copilot) |
//! | `/m/ai/sessions/{id}` | one conversation: questions, what each tool looked up with the user's access and whether it was allowed, answers; the next question |
//! | `/access/members`, `/access/roles`, `/access/agents`, `/access/delegations` | access management through Auth's writes; each refusal shows its rule |
//! | `/explorer` | why or why not, who can, who could grant, a member's effective access, at an instant |
//! | `/staff`, `/staff/companies/{c}`, `/staff/audit` | platform staff: companies, subscriptions, overrides, support sessions, audit |
//! | `/events` | the page's live updates (server-sent events) |
#![forbid(unsafe_code)]

mod copilot;
mod explorer;
mod live;
mod manage;
mod modules;
mod pages;
mod session;
mod staff;
mod upstream;
mod view;

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};

/// Where the console finds the other services, and how it follows the change feed.
#[derive(Debug, Clone)]
pub struct Config {
    /// Auth's base URL.
    pub auth: String,
    /// Core's base URL.
    pub core: String,
    /// Each module's base URL, by module name (`finance`, `artist`, `venue`, `promoters`, `touring`, `ai`).
    pub modules: Vec<(String, String)>,
    /// A service client with scope `auth:access:read`, for the change feed (live pages).
    pub client_id: String,
    /// Its secret (redacted when printed).
    pub client_secret: kisum_client::Secret,
    /// PEM certificates to trust beside the system's roots when reaching Auth, Core and the modules.
    pub ca_bundle: Option<Vec<u8>>,
    /// Mark cookies `Secure` (the console is served over TLS).
    pub secure_cookies: bool,
}

/// The console's flags (`kisum-platform console`): how it reaches Auth, Core and the modules. Printed with
/// the client secret redacted.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Auth's and Core's URLs and the console's service client (it follows the change feed with it).
    #[command(flatten)]
    pub remote: kisum_client::RemoteArgs,
    /// A module's base URL as `NAME=URL` (repeatable); default: the module's port on 127.0.0.1.
    #[arg(long = "module-url", value_parser = module_url)]
    pub module_urls: Vec<(String, String)>,
    /// Mark cookies `Secure` and `__Host-` prefixed (when the console is served over TLS).
    #[arg(long, env = "KISUM_SECURE_COOKIES")]
    pub secure_cookies: bool,
}

impl Args {
    /// The console's configuration: modules not named by `--module-url` on their default ports of
    /// `base` (`http://127.0.0.1`) plus `port_offset`; `ca_bundle` trusted beside the system's roots.
    /// Refused without a client secret, naming the setting.
    pub fn config(&self, base: &str, port_offset: u16, ca_bundle: Option<Vec<u8>>) -> Result<Config, String> {
        let remote = self.remote.config(ca_bundle.clone())?;
        let mut modules = Config::default_modules(base, port_offset);
        for (name, url) in &self.module_urls {
            if let Some(entry) = modules.iter_mut().find(|(m, _)| m == name) {
                entry.1.clone_from(url);
            }
        }
        Ok(Config {
            auth: remote.auth_url,
            core: remote.core_url,
            modules,
            client_id: remote.client_id,
            client_secret: remote.client_secret,
            ca_bundle,
            secure_cookies: self.secure_cookies,
        })
    }
}

/// Reads `--module-url NAME=URL`.
fn module_url(text: &str) -> Result<(String, String), String> {
    let (name, url) = text.split_once('=').ok_or("expected NAME=URL, such as finance=http://127.0.0.1:7410")?;
    if !view::MODULES.iter().any(|(m, _)| *m == name) {
        let names: Vec<&str> = view::MODULES.iter().map(|(m, _)| *m).collect();
        return Err(format!("`{name}` is not a module ({})", names.join(", ")));
    }
    Ok((name.to_owned(), url.trim_end_matches('/').to_owned()))
}

impl Config {
    /// The six modules on the default ports of `base` (`http://127.0.0.1`), as the reference deployment
    /// starts them: finance 7410 … ai 7415, plus `offset`.
    pub fn default_modules(base: &str, offset: u16) -> Vec<(String, String)> {
        view::MODULES
            .iter()
            .zip(7410u16..)
            .map(|((m, _), port)| ((*m).to_owned(), format!("{base}:{}", port.saturating_add(offset))))
            .collect()
    }

    pub(crate) fn module(&self, name: &str) -> Option<&str> {
        self.modules.iter().find(|(m, _)| m == name).map(|(_, url)| url.as_str())
    }
}

/// The console's state.
#[derive(Debug)]
pub struct Console {
    pub(crate) config: Config,
    pub(crate) http: reqwest::Client,
    pub(crate) sessions: session::Sessions,
    pub(crate) live: Arc<live::Live>,
}

impl Console {
    /// A console for `config`; fails when its CA bundle holds no certificate.
    pub fn new(config: Config) -> Result<Arc<Console>, kisum_client::Refusal> {
        let sessions = session::Sessions::new(config.secure_cookies);
        let http = kisum_client::http_client(config.ca_bundle.as_deref())?;
        Ok(Arc::new(Console { config, http, sessions, live: Arc::new(live::Live::default()) }))
    }

    /// Follows Auth's change feed, telling open pages when their user's access changed; runs until
    /// aborted, reconnecting with backoff.
    pub fn follow(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let c = &self.config;
        live::follow(self.http.clone(), c.auth.clone(), &c.client_id, &c.client_secret, self.live.clone())
    }
}

/// The console for `config`: its router ([`app`]) and its follower of Auth's change feed (abort it to
/// stop). The one start of the console, standalone or in the one command.
pub fn start(config: Config) -> Result<(Router, tokio::task::JoinHandle<()>), kisum_client::Refusal> {
    let console = Console::new(config)?;
    let feed = console.follow();
    Ok((app(console), feed))
}

/// The console's router (with the shared fallbacks, limits and request ids of `kisum-server`).
pub fn app(console: Arc<Console>) -> Router {
    let router = Router::new()
        .route("/", get(pages::home))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/company", post(pages::switch))
        .route("/events", get(pages::events))
        .route("/assets/console.css", get(css))
        .route("/assets/live.js", get(js))
        .route("/m/{module}", get(modules::page))
        .route("/m/{module}/do/{action}", post(modules::act))
        .route("/m/ai/sessions/{id}", get(copilot::page))
        .route("/m/ai/sessions/{id}/ask", post(copilot::ask))
        .route("/access/{section}", get(manage::page))
        .route("/access/{section}/do/{action}", post(manage::act))
        .route("/explorer", get(explorer::page))
        .route("/staff", get(staff::companies))
        .route("/staff/audit", get(staff::audit))
        .route("/staff/companies/{c}", get(staff::company))
        .route("/staff/companies/{c}/do/{action}", post(staff::act))
        .route("/health/live", get(|| async { "live" }))
        .route("/health/ready", get(|| async { "ready" }))
        .with_state(console);
    kisum_server::finish("console", router).layer(axum::middleware::from_fn(security_headers))
}

/// The headers every answer carries: a strict CSP (no inline script or style, nothing from elsewhere),
/// no framing, same-origin referrers, no sniffing.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

const CSS: &str = include_str!("../assets/console.css");
const JS: &str = include_str!("../assets/live.js");

async fn css() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

async fn js() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = Response::new(axum::body::Body::from(body));
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    response
}
