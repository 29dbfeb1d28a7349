//! Platform staff pages (API.md §6): companies, their subscriptions and overrides, support sessions and
//! the platform audit log — all through Core's Admin API with the staff user's own token, which Core
//! checks against each route's `admin:` permission.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Console;
use crate::pages::{Ctx, back, outcome};
use crate::session::Flash;
use crate::upstream::{Call, Problem};
use crate::view::{self, cell};

async fn get(console: &Console, ctx: &Ctx, path: &str) -> Result<Value, Problem> {
    Call::get(format!("{}{path}", console.config.core))
        .bearer(&ctx.token)
        .at_least(ctx.at_least(console))
        .send(&console.http)
        .await
        .and_then(|r| r.ok())
}

fn table(rows: &[Value], columns: &[&str]) -> Markup {
    html! {
        table {
            thead { tr { @for c in columns { th scope="col" { (c) } } } }
            tbody { @for r in rows { tr { @for c in columns { td { (cell(view::at(r, c))) } } } } }
        }
    }
}

fn array(v: &Value, key: &str) -> Vec<Value> {
    v.get(key).and_then(Value::as_array).cloned().unwrap_or_default()
}

/// `GET /staff`: every company, and opening a support session.
pub(crate) async fn companies(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Query(q): Query<CompaniesQuery>,
) -> Response {
    let ctx = match Ctx::of(&console, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mut pairs = vec![("limit", "200")];
    if let Some(cursor) = q.cursor.as_deref().and_then(safe) {
        pairs.push(("cursor", cursor));
    }
    let list = get(&console, &ctx, &format!("/admin/v1/companies?{}", view::query(&pairs))).await;
    let csrf = ctx.session.csrf.as_str();
    let main = html! {
        @match &list {
            Err(p) => { (view::refusal(p)) }
            Ok(body) => {
                ul.companies {
                    @for c in array(body, "companies") {
                        @let id = cell(view::at(&c, "id"));
                        li { a href={ "/staff/companies/" (id) } data-company=(id) { (id) } }
                    }
                }
                @if let Some(next) = body.get("next_cursor").and_then(Value::as_str) {
                    a href={ "/staff?" (view::query(&[("cursor", next)])) } { "More companies →" }
                }
            }
        }
        section aria-labelledby="support-h" {
            h2 #support-h { "Open a support session" }
            p.muted { "You act in the company for at most 240 minutes; every action is audited and listed to its owners." }
            form method="post" action="/staff/companies/-/do/support" {
                (view::csrf(csrf))
                label for="s-company" { "Company" } input #s-company name="company" required;
                label for="s-reason" { "Reason" } input #s-reason name="reason" required;
                label for="s-minutes" { "Minutes" } input #s-minutes name="minutes" type="number" value="30" min="1" max="240";
                button type="submit" { "Open" }
            }
            h3 { "Close a support session" }
            form method="post" action="/staff/companies/-/do/close-support" {
                (view::csrf(csrf))
                label for="s-id" { "Session id (from the answer, or the company's audit log)" } input #s-id name="id" required;
                button type="submit" { "Close" }
            }
        }
    };
    ctx.render("staff", "Companies", main)
}

/// `GET /staff/companies/{c}`: subscriptions and overrides, with their forms.
pub(crate) async fn company(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Path(c): Path<String>,
) -> Response {
    let ctx = match Ctx::of(&console, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Some(c) = safe(&c) else { return crate::pages::not_found("No such company") };
    let view_ = get(&console, &ctx, &format!("/admin/v1/companies/{c}")).await;
    let overrides = get(&console, &ctx, &format!("/admin/v1/companies/{c}/overrides")).await;
    let csrf = ctx.session.csrf.as_str();
    let action = |a: &str| format!("/staff/companies/{c}/do/{a}");
    let main = html! {
        @match &view_ {
            Err(p) => { (view::refusal(p)) }
            Ok(v) => {
                section aria-labelledby="subs-h" {
                    h2 #subs-h { "Subscriptions" }
                    @let subs = array(view::at(v, "company"), "subscriptions");
                    (table(&subs, &["id", "plan", "status", "starts_at", "trial_ends_at", "ends_at", "grace_until", "quantity"]))
                    form method="post" action=(action("subscription")) {
                        (view::csrf(csrf))
                        label for="sub-id" { "Subscription" }
                        select #sub-id name="id" { @for s in &subs { option value=(cell(view::at(s, "id"))) { (cell(view::at(s, "id"))) } } }
                        label for="sub-status" { "Status" }
                        select #sub-status name="status" {
                            option value="" { "unchanged" }
                            @for s in ["trialing", "active", "past_due", "paused", "canceled"] { option value=(s) { (s) } }
                        }
                        label for="sub-trial" { "Trial ends (RFC 3339)" } input #sub-trial name="trial_ends_at";
                        label for="sub-ends" { "Ends (RFC 3339)" } input #sub-ends name="ends_at";
                        label for="sub-grace" { "Grace until (past_due)" } input #sub-grace name="grace_until";
                        label for="sub-quantity" { "Quantity" } input #sub-quantity name="quantity" type="number" min="1";
                        label for="sub-plan" { "Plan (package:ID:VERSION or addon:ID:VERSION)" } input #sub-plan name="plan";
                        button type="submit" { "Change" }
                    }
                }
                section aria-labelledby="members-h" {
                    h2 #members-h { "Members" }
                    (table(&array(v, "memberships"), &["user", "roles", "status", "expires_at"]))
                }
            }
        }
        section aria-labelledby="ov-h" {
            h2 #ov-h { "Overrides" }
            @match &overrides {
                Err(p) => { (view::refusal(p)) }
                Ok(o) => {
                    table #overrides {
                        thead { tr { @for h in ["id", "effect", "module", "feature", "expires_at", "reason", ""] { th scope="col" { (h) } } } }
                        tbody {
                            @for ov in array(o, "overrides") {
                                tr data-override=(cell(view::at(&ov, "id"))) {
                                    @for k in ["id", "effect", "module", "feature", "expires_at", "reason"] { td { (cell(view::at(&ov, k))) } }
                                    td {
                                        @if ov.get("id").is_some_and(|i| !i.is_null()) {
                                            form.inline method="post" action=(action("unoverride")) {
                                                (view::csrf(csrf)) input type="hidden" name="id" value=(cell(view::at(&ov, "id")));
                                                button type="submit" { "Remove" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h3 { "Add an override (a trial extension, a pilot, a legal hold)" }
            form #override method="post" action=(action("override")) {
                (view::csrf(csrf))
                label for="ov-effect" { "Effect" }
                select #ov-effect name="effect" { option value="grant" { "grant" } option value="revoke" { "revoke" } }
                label for="ov-module" { "Module" } input #ov-module name="module";
                label for="ov-feature" { "Feature" } input #ov-feature name="feature";
                label for="ov-limit" { "Limit" } input #ov-limit name="limit";
                label for="ov-value" { "Limit value (a number or unlimited)" } input #ov-value name="value";
                label for="ov-expires" { "Expires (RFC 3339)" } input #ov-expires name="expires_at";
                label for="ov-reason" { "Reason" } input #ov-reason name="reason" required;
                button type="submit" { "Add override" }
            }
        }
    };
    ctx.render("staff", &format!("Company {c}"), main)
}

/// `?cursor=`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct CompaniesQuery {
    cursor: Option<String>,
}

/// `?company=&after=`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct AuditQuery {
    company: Option<String>,
    after: Option<u64>,
}

/// `GET /staff/audit`: the platform audit log, a page at a time.
pub(crate) async fn audit(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Query(q): Query<AuditQuery>,
) -> Response {
    let ctx = match Ctx::of(&console, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let after = q.after.unwrap_or(0).to_string();
    let company = q.company.as_deref().and_then(safe).unwrap_or("");
    let mut pairs = vec![("limit", "100"), ("after", after.as_str())];
    if !company.is_empty() {
        pairs.push(("company", company));
    }
    let path = format!("/admin/v1/audit?{}", view::query(&pairs));
    let page = get(&console, &ctx, &path).await;
    let main = html! {
        form method="get" action="/staff/audit" {
            label for="a-company" { "Company" } input #a-company name="company" value=(q.company.clone().unwrap_or_default());
            button type="submit" { "Filter" }
        }
        @match &page {
            Err(p) => { (view::refusal(p)) }
            Ok(body) => {
                @let records = array(body, "records");
                (table(&records, &["seq", "at", "actor", "kind", "company"]))
                @if let Some(next) = body.get("next").and_then(Value::as_u64) {
                    a href={ "/staff/audit?" (view::query(&[("after", &next.to_string()), ("company", company)])) } { "Newer records →" }
                }
            }
        }
    };
    ctx.render("audit", "Audit", main)
}

/// A number where the text is one (Core refuses a string where it wants a number, with a clear error).
fn number_or_text(v: &str) -> Value {
    v.parse::<u64>().map(Value::from).unwrap_or_else(|_| Value::String(v.to_owned()))
}

fn safe(id: &str) -> Option<&str> {
    view::path_id(id)
}

/// `POST /staff/companies/{c}/do/{action}`.
pub(crate) async fn act(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Path((c, action)): Path<(String, String)>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let ctx = match Ctx::form(&console, &headers, &form).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let field = |k: &str| form.get(k).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    let Some(c) = safe(&c) else { return crate::pages::not_found("No such company") };
    let (method, path, body, to) = match action.as_str() {
        "override" => {
            let mut body =
                json!({"effect": field("effect").unwrap_or_else(|| "grant".into()), "reason": field("reason")});
            for k in ["module", "feature", "limit", "expires_at"] {
                if let Some(v) = field(k) {
                    view::set(&mut body, k, Value::String(v));
                }
            }
            if let Some(v) = field("value") {
                view::set(&mut body, "value", number_or_text(&v));
            }
            (Method::POST, format!("/admin/v1/companies/{c}/overrides"), body, format!("/staff/companies/{c}"))
        }
        "unoverride" => match field("id").as_deref().and_then(safe) {
            Some(id) => (
                Method::DELETE,
                format!("/admin/v1/companies/{c}/overrides/{id}"),
                Value::Null,
                format!("/staff/companies/{c}"),
            ),
            None => return (StatusCode::UNPROCESSABLE_ENTITY, "no override id").into_response(),
        },
        "subscription" => match field("id").as_deref().and_then(safe) {
            Some(id) => {
                let mut body = json!({});
                for k in ["status", "trial_ends_at", "ends_at", "grace_until"] {
                    if let Some(v) = field(k) {
                        view::set(&mut body, k, Value::String(v));
                    }
                }
                if let Some(v) = field("quantity") {
                    view::set(&mut body, "quantity", number_or_text(&v));
                }
                if let Some(v) = field("plan") {
                    let mut parts = v.splitn(3, ':');
                    let (kind, id, version) = (parts.next(), parts.next(), parts.next());
                    let plan = match (kind, id, version) {
                        (Some(kind), Some(id), Some(version)) => json!({kind: id, "version": number_or_text(version)}),
                        _ => Value::String(v.clone()),
                    };
                    view::set(&mut body, "plan", plan);
                }
                (
                    Method::PATCH,
                    format!("/admin/v1/companies/{c}/subscriptions/{id}"),
                    body,
                    format!("/staff/companies/{c}"),
                )
            }
            None => return (StatusCode::UNPROCESSABLE_ENTITY, "no subscription id").into_response(),
        },
        "close-support" => match field("id").as_deref().and_then(safe) {
            Some(id) => (Method::DELETE, format!("/admin/v1/support-sessions/{id}"), Value::Null, "/staff".to_owned()),
            None => return (StatusCode::UNPROCESSABLE_ENTITY, "no support session id").into_response(),
        },
        "support" => {
            let minutes = field("minutes").and_then(|m| m.parse::<u32>().ok()).unwrap_or(30);
            let body = json!({"company": field("company"), "reason": field("reason"), "minutes": minutes});
            (Method::POST, "/admin/v1/support-sessions".to_owned(), body, "/staff".to_owned())
        }
        _ => return crate::pages::not_found("No such action"),
    };
    let result = ctx.write(&console, method, format!("{}{path}", console.config.core), &body).await;
    outcome(&ctx.session, result, |v| {
        let id = match view::at(v, "session") {
            Value::Object(_) => cell(view::at(view::at(v, "session"), "id")),
            _ => cell(view::at(v, "id")),
        };
        Flash::Done(if id.is_empty() { format!("{action}: done.") } else { format!("{action}: done ({id}).") })
    });
    back(&to)
}
