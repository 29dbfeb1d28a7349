//! Signing in and out, switching company, the company home, and what every page of a session shares:
//! [`Ctx`] (the session, a fresh access token, the manifest) and the CSRF guard of every form.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde_json::Value;

use crate::Console;
use crate::session::{self, CompanyEntry, Flash, Session, SessionError};
use crate::upstream::{Call, Problem};
use crate::view::{self, Frame, Manifest, ModuleState, reason_text};

/// What a signed-in page has: the session, an access token for its company, and the manifest.
pub(crate) struct Ctx {
    pub session: Arc<Session>,
    pub token: String,
    pub company: String,
    pub manifest: Manifest,
    /// A refresh by the page's script (`x-kisum-live`): the page's message stays for the next real view.
    live: bool,
}

impl Ctx {
    /// The session of the request with a fresh token and the manifest, or the answer to give instead:
    /// the sign-in page when signed out, a page that says why when the membership gives no token.
    pub async fn of(console: &Console, headers: &HeaderMap) -> Result<Ctx, Response> {
        let Some(session) = console.sessions.of(headers) else { return Err(to_login(console)) };
        let (token, company) = match session.access(&console.http, &console.config.auth).await {
            Ok(t) => t,
            Err(SessionError::SignedOut) => {
                console.sessions.remove(headers);
                return Err(to_login(console));
            }
            Err(SessionError::Company(p)) => return Err(no_company(&session, &p).await),
            Err(SessionError::Upstream(p)) => return Err(failure(&p)),
        };
        let reply = Call::get(format!("{}/v1/me/access", console.config.auth))
            .bearer(&token)
            .at_least(console.live.seq().max(session.written()))
            .send(&console.http)
            .await
            .and_then(|r| r.ok());
        let manifest = match reply {
            Ok(body) => Manifest::parse(&body),
            Err(p) if p.status == 401 => {
                console.sessions.remove(headers);
                return Err(to_login(console));
            }
            Err(p) => return Err(failure(&p)),
        };
        let live = headers.contains_key("x-kisum-live");
        Ok(Ctx { session, token, company, manifest, live })
    }

    /// The frame of a page of this context.
    pub fn frame<'a>(&'a self, companies: &'a [String], current: &'a str) -> Frame<'a> {
        Frame {
            user: &self.session.user,
            company: &self.company,
            companies,
            csrf: &self.session.csrf,
            manifest: &self.manifest,
            flash: if self.live { None } else { self.session.take_flash() },
            current,
        }
    }

    /// The whole page.
    pub fn render(&self, current: &str, title: &str, main: Markup) -> Response {
        let companies = self.session.companies.iter().map(|c| c.id.clone()).collect::<Vec<_>>();
        Html(view::page(&self.frame(&companies, current), title, main).into_string()).into_response()
    }

    /// How fresh Auth's answers must be: what the feed showed and what this session wrote.
    pub fn at_least(&self, console: &Console) -> u64 {
        console.live.seq().max(self.session.written())
    }

    /// Sends a write as the user and notes its `kisum-version`; the body, or the refusal.
    /// (A `null` body sends none.)
    pub async fn write(
        &self,
        console: &Console,
        method: reqwest::Method,
        url: String,
        body: &Value,
    ) -> Result<Value, Problem> {
        let mut call = Call::new(method, url).bearer(&self.token);
        if !body.is_null() {
            call = call.json(body);
        }
        let reply = call.send(&console.http).await?;
        self.session.wrote(reply.version);
        reply.ok()
    }

    /// Checks (as the user) each `(permission, resource)`, in order.
    pub async fn decide(&self, console: &Console, checks: &[(String, Option<String>)]) -> Vec<view::Decision> {
        if checks.is_empty() {
            return Vec::new();
        }
        let principal = format!("user:{}", self.session.user);
        let body = serde_json::json!({
            "checks": checks.iter().map(|(p, r)| {
                let mut c = serde_json::json!({"principal": principal, "company": self.company, "permission": p});
                if let Some(r) = r {
                    view::set(&mut c, "resource", Value::String(r.clone()));
                }
                c
            }).collect::<Vec<_>>()
        });
        let reply = Call::new(reqwest::Method::POST, format!("{}/v1/access/check-batch", console.config.auth))
            .bearer(&self.token)
            .json(&body)
            .at_least(self.at_least(console))
            .send(&console.http)
            .await
            .and_then(|r| r.ok());
        match reply {
            Ok(body) => {
                let results = body.get("results").and_then(Value::as_array).cloned().unwrap_or_default();
                (0..checks.len())
                    .map(|i| results.get(i).map_or_else(|| view::Decision::unknown("UNKNOWN"), view::Decision::of))
                    .collect()
            }
            Err(p) => checks.iter().map(|_| view::Decision::unknown(&p.code)).collect(),
        }
    }

    /// [`Ctx::of`] for a form: also refused without this session's CSRF token, or sent from another site.
    pub async fn form(console: &Console, headers: &HeaderMap, form: &HashMap<String, String>) -> Result<Ctx, Response> {
        let ctx = Ctx::of(console, headers).await?;
        guard(&ctx.session, headers, form).map_err(|r| *r)?;
        Ok(ctx)
    }
}

/// `403` unless the form carries the session's CSRF token and comes from the console's own pages.
pub(crate) fn guard(
    session: &Session,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<(), Box<Response>> {
    let token = form.get("_csrf").map(String::as_str).unwrap_or("");
    if session::same_origin(headers) && session::same(token, &session.csrf) {
        Ok(())
    } else {
        Err(Box::new(forbidden_form()))
    }
}

fn forbidden_form() -> Response {
    let body = view::bare(
        "Refused",
        html! { p data-code="CSRF" { "This form did not come from this console (its CSRF token is missing or wrong). Reload the page and try again." } },
    );
    (StatusCode::FORBIDDEN, Html(body.into_string())).into_response()
}

/// See the page the form was on, with what happened.
pub(crate) fn back(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// The flash of an upstream answer: `done` on success, the refusal otherwise.
pub(crate) fn outcome(session: &Session, result: Result<Value, Problem>, done: impl FnOnce(&Value) -> Flash) {
    match result {
        Ok(v) => session.set_flash(done(&v)),
        Err(p) => session.set_flash(Flash::Refused(p)),
    }
}

fn to_login(console: &Console) -> Response {
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut().append(header::SET_COOKIE, console.sessions.session_cookie(None));
    r
}

/// A page for a console path that names nothing.
pub(crate) fn not_found(title: &str) -> Response {
    let body = view::bare(title, html! { p { a href="/" { "Back to the start" } } });
    (StatusCode::NOT_FOUND, Html(body.into_string())).into_response()
}

/// An upstream failure as a page.
pub(crate) fn failure(p: &Problem) -> Response {
    let status = StatusCode::from_u16(if p.status >= 500 { 502 } else { p.status }).unwrap_or(StatusCode::BAD_GATEWAY);
    let body = view::bare(
        "Something went wrong",
        html! {
            (view::refusal(p))
            p { a href="/" { "Back to the start" } }
        },
    );
    (status, Html(body.into_string())).into_response()
}

/// The page of a session whose membership in its company gives no token: why, and the other companies.
async fn no_company(session: &Session, p: &Problem) -> Response {
    let company = session.company().await;
    let others: Vec<&CompanyEntry> = session.companies.iter().filter(|c| c.id != company).collect();
    let body = view::bare(
        "No access in this company",
        html! {
            p.banner.denied role="status" data-denied=(p.code) {
                "Your membership in " strong { (company) } " gives no access now: " (p.code) " — " (p.detail)
            }
            @if !others.is_empty() {
                form method="post" action="/company" {
                    (view::csrf(&session.csrf))
                    label for="company-switch" { "Switch to" }
                    select #company-switch name="company" { @for c in &others { option value=(c.id) { (c.id) } } }
                    button type="submit" { "Switch" }
                }
            }
            form method="post" action="/logout" { (view::csrf(&session.csrf)) button type="submit" { "Sign out" } }
        },
    );
    (StatusCode::FORBIDDEN, Html(body.into_string())).into_response()
}

/// `GET /login`.
pub(crate) async fn login_form(State(console): State<Arc<Console>>, headers: HeaderMap) -> Response {
    if console.sessions.of(&headers).is_some() {
        return Redirect::to("/").into_response();
    }
    login_page(&console, StatusCode::OK, None, "")
}

fn login_page(console: &Console, status: StatusCode, error: Option<Markup>, user: &str) -> Response {
    let token = match session::random() {
        Ok(t) => t,
        Err(p) => return failure(&p),
    };
    let body = view::bare(
        "Sign in",
        html! {
            @if let Some(e) = error { (e) }
            form.login method="post" action="/login" {
                input type="hidden" name="_csrf" value=(token);
                p { label for="user" { "User" } input #user name="user" autocomplete="username" required value=(user); }
                p { label for="password" { "Password" } input #password name="password" type="password" autocomplete="current-password" required; }
                p { button type="submit" { "Sign in" } }
            }
        },
    );
    let mut r = (status, Html(body.into_string())).into_response();
    r.headers_mut().append(header::SET_COOKIE, console.sessions.login_cookie(Some(&token)));
    r
}

/// `POST /login`: signs in through Auth, then starts a session in the first active company.
pub(crate) async fn login(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let sent = form.get("_csrf").map(String::as_str).unwrap_or("");
    let cookie = console.sessions.login_token(&headers).unwrap_or_default();
    if !session::same_origin(&headers) || cookie.is_empty() || !session::same(sent, &cookie) {
        return forbidden_form();
    }
    let user = form.get("user").map(String::as_str).unwrap_or("").trim().to_owned();
    let password = form.get("password").map(String::as_str).unwrap_or("");
    let body = serde_json::json!({"user": user, "password": password});
    let reply = Call::new(reqwest::Method::POST, format!("{}/v1/sessions", console.config.auth))
        .json(&body)
        .send(&console.http)
        .await;
    let reply = match reply {
        Ok(r) => r,
        Err(p) => return login_page(&console, StatusCode::BAD_GATEWAY, Some(view::refusal(&p)), &user),
    };
    if reply.status.as_u16() != 201 {
        let p = reply.problem().unwrap_or_else(|| Problem::unavailable_text("Auth's answer was not understood"));
        let message = match p.status {
            401 => html! { p.banner.refused role="alert" data-code=(p.code) { "Wrong user or password." } },
            429 => {
                html! { p.banner.refused role="alert" data-code=(p.code) { "Too many attempts: wait a few minutes. " (p.detail) } }
            }
            _ => view::refusal(&p),
        };
        let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::BAD_GATEWAY);
        return login_page(&console, status, Some(message), &user);
    }
    let Some(refresh) = reply.body.get("refresh_token").and_then(Value::as_str) else {
        return failure(&Problem::unavailable_text("Auth's sign-in answer carried no refresh token"));
    };
    let companies: Vec<CompanyEntry> = reply
        .body
        .get("companies")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|c| {
                    Some(CompanyEntry {
                        id: c.get("id")?.as_str()?.to_owned(),
                        roles: c
                            .get("roles")
                            .and_then(Value::as_array)
                            .map(|r| r.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                            .unwrap_or_default(),
                        status: c.get("status").and_then(Value::as_str).unwrap_or("").to_owned(),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    // Start where the user owns the company, else in its first active membership.
    let company = companies
        .iter()
        .find(|c| c.status == "active" && c.roles.iter().any(|r| r == "owner"))
        .or_else(|| companies.iter().find(|c| c.status == "active"))
        .or_else(|| companies.first())
        .map(|c| c.id.clone())
        .unwrap_or_default();
    let user = reply.body.get("user").and_then(Value::as_str).unwrap_or(&user).to_owned();
    let (id, session) = match console.sessions.create(user, companies, refresh.to_owned(), company) {
        Ok(s) => s,
        Err(p) => return failure(&p),
    };
    // Signing in again ends the session this browser had (here and at Auth).
    if let Some(old) = console.sessions.remove(&headers) {
        old.revoke(&console.http, &console.config.auth).await;
    }
    // Exchange now, so that a refusal shows at once (the home page would show it too).
    let _ = session.access(&console.http, &console.config.auth).await;
    let mut r = Redirect::to("/").into_response();
    let h = r.headers_mut();
    h.append(header::SET_COOKIE, console.sessions.session_cookie(Some(&id)));
    h.append(header::SET_COOKIE, console.sessions.login_cookie(None));
    r
}

/// The session of a form that needs no access token (signing out, switching company), CSRF-checked.
fn signed_in_form(
    console: &Console,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<Arc<Session>, Box<Response>> {
    let Some(session) = console.sessions.of(headers) else { return Err(Box::new(to_login(console))) };
    guard(&session, headers, form)?;
    Ok(session)
}

/// `POST /logout`: ends the Auth session and the console's.
pub(crate) async fn logout(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let session = match signed_in_form(&console, &headers, &form) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    session.revoke(&console.http, &console.config.auth).await;
    console.sessions.remove(&headers);
    to_login(&console)
}

/// `POST /company`: switches the session to another company of the user.
pub(crate) async fn switch(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let session = match signed_in_form(&console, &headers, &form) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let company = form.get("company").map(String::as_str).unwrap_or("");
    match session.switch(&console.http, &console.config.auth, company).await {
        Ok(()) => session.set_flash(Flash::Done(format!("Now in {company}."))),
        Err(SessionError::SignedOut) => {
            console.sessions.remove(&headers);
            return to_login(&console);
        }
        Err(SessionError::Company(p) | SessionError::Upstream(p)) => session.set_flash(Flash::Refused(p)),
    }
    back("/")
}

/// `GET /events`: the live updates of the session's pages.
pub(crate) async fn events(State(console): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let Some(session) = console.sessions.of(&headers) else {
        return (StatusCode::UNAUTHORIZED, "sign in first").into_response();
    };
    let company = session.company().await;
    console.live.stream(Arc::downgrade(&session), session.user.clone(), company).into_response()
}

/// `GET /`: the company home, from the manifest.
pub(crate) async fn home(State(console): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let ctx = match Ctx::of(&console, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let m = &ctx.manifest;
    let roles =
        ctx.session.companies.iter().find(|c| c.id == ctx.company).map(|c| c.roles.join(", ")).unwrap_or_default();
    let main = html! {
        p.lead { "Your roles here: " strong data-roles { (roles) } ". Access version " (m.version) "." }
        section aria-labelledby="modules-h" {
            h2 #modules-h { "Modules" }
            ul.cards {
                @for (module, label) in view::MODULES {
                    @match m.module(module) {
                        ModuleState::Available => {
                            li.card.available { a href={ "/m/" (module) } { (label) } p { "Available" } }
                        }
                        ModuleState::Unavailable(reason) => {
                            li.card.unavailable { strong { (label) } p { "Unavailable: " (reason) " — " (reason_text(&reason)) } }
                        }
                        ModuleState::NotInPlan => {
                            li.card.not-in-plan { strong { (label) } p { "Not in your company's plan" } }
                        }
                    }
                }
            }
        }
        section aria-labelledby="plan-h" {
            h2 #plan-h { "Plan" }
            p { "Features: " @if m.features.is_empty() { "none" } @else { (m.features.join(", ")) } }
            p { "Limits: " code { (m.limits) } }
        }
        section aria-labelledby="perm-h" {
            h2 #perm-h { "What you may do" }
            @if m.permissions.is_empty() { p { "Nothing, now." } }
            @else { ul.keys { @for p in &m.permissions { li { code { (p) } } } } }
            @for (p, r) in &m.scoped { p { code { (p) } " on " code { (r) } } }
        }
    };
    ctx.render("home", "Home", main)
}

impl Problem {
    /// A problem for an answer the console could not read.
    pub(crate) fn unavailable_text(detail: &str) -> Problem {
        Problem {
            status: 502,
            code: "UPSTREAM_UNAVAILABLE".into(),
            detail: detail.into(),
            required: None,
            errors: Vec::new(),
        }
    }
}
