//! The access explorer (API.md §6): why or why not — the decision, its reason and provenance (roles and
//! the inheritance path, the delegation chain, the subscription or override behind the entitlement) —
//! who can, who could grant it, and a principal's effective access as a module × permission table, all
//! at a chosen instant. Every answer is Auth's (`/v1/access/check`, `check-batch`, `who-can`,
//! `grantors`): the same decision and explanation `kisum explain` prints for the same question.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Console;
use crate::pages::Ctx;
use crate::upstream::{Call, Problem};
use crate::view::{self, cell, reason_text};

/// `?principal=&permission=&resource=&at=`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Question {
    principal: Option<String>,
    permission: Option<String>,
    resource: Option<String>,
    at: Option<String>,
    /// With an agent `principal`: the user it acts for (what that user delegated to it).
    acting_for: Option<String>,
}

fn nonempty(v: &Option<String>) -> Option<String> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned)
}

/// `GET /explorer`.
pub(crate) async fn page(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Query(q): Query<Question>,
) -> Response {
    let ctx = match Ctx::of(&console, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let me = format!("user:{}", ctx.session.user);
    let principal = match nonempty(&q.principal) {
        None => me.clone(),
        Some(p) if p == "me" => me.clone(),
        Some(p) => p,
    };
    let permission = nonempty(&q.permission);
    let resource = nonempty(&q.resource);
    let at = nonempty(&q.at);
    let acting_for = nonempty(&q.acting_for).map(|u| u.trim_start_matches("user:").to_owned());
    let catalog = Call::get(format!("{}/v1/catalog", console.config.core))
        .bearer(&ctx.token)
        .send(&console.http)
        .await
        .and_then(|r| r.ok())
        .ok();
    let keys: Vec<String> = catalog
        .as_ref()
        .and_then(|c| c.get("permissions"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|p| p.get("key").and_then(Value::as_str)).map(str::to_owned).collect())
        .unwrap_or_default();
    let question = |permission: &str| {
        let mut c = json!({"principal": principal, "company": ctx.company, "permission": permission});
        if let Some(r) = &resource {
            view::set(&mut c, "resource", Value::String(r.clone()));
        }
        if let Some(at) = &at {
            view::set(&mut c, "at", Value::String(at.clone()));
        }
        if let Some(user) = &acting_for {
            view::set(&mut c, "acting_for", Value::String(user.clone()));
        }
        c
    };
    let auth = &console.config.auth;
    // The questions are independent: asked together, the page waits for the slowest, not the sum.
    let explained = async {
        let Some(p) = &permission else { return (None, None, None) };
        let body = question(p);
        let mut who_pairs = vec![("company", ctx.company.as_str()), ("permission", p.as_str())];
        let mut grant_pairs = who_pairs.clone();
        if let Some(r) = &resource {
            who_pairs.push(("resource", r.as_str()));
        }
        if let Some(at) = &at {
            who_pairs.push(("at", at.as_str()));
            grant_pairs.push(("at", at.as_str()));
        }
        let (why, who, grantors) = tokio::join!(
            post(&console, &ctx, format!("{auth}/v1/access/check"), &body),
            get(&console, &ctx, format!("{auth}/v1/access/who-can?{}", view::query(&who_pairs))),
            get(&console, &ctx, format!("{auth}/v1/access/grantors?{}", view::query(&grant_pairs))),
        );
        (Some(why), Some(who), Some(grantors))
    };
    // The effective table: every permission of the catalog for the principal, at the instant.
    let effective_table = async {
        if keys.is_empty() {
            return None;
        }
        let checks: Vec<Value> = keys
            .iter()
            .map(|k| {
                let mut c = question(k);
                if let Some(o) = c.as_object_mut() {
                    o.remove("resource");
                }
                c
            })
            .collect();
        Some(post(&console, &ctx, format!("{auth}/v1/access/check-batch"), &json!({"checks": checks})).await)
    };
    let ((why, who, grantors), table) = tokio::join!(explained, effective_table);
    let form = html! {
        form.explorer method="get" action="/explorer" {
            label for="x-principal" { "Principal (user:ID or agent:ID)" }
            input #x-principal name="principal" value=(principal);
            label for="x-permission" { "Permission" }
            select #x-permission name="permission" {
                option value="" { "—" }
                @for k in &keys { option value=(k) selected[permission.as_deref() == Some(k.as_str())] { (k) } }
            }
            label for="x-resource" { "Resource (COMPANY/KIND/ID, optional)" }
            input #x-resource name="resource" value=(resource.clone().unwrap_or_default());
            label for="x-acting" { "Acting for (with an agent: the user it acts for)" }
            input #x-acting name="acting_for" value=(acting_for.clone().unwrap_or_default());
            label for="x-at" { "At (RFC 3339, default now)" }
            input #x-at name="at" value=(at.clone().unwrap_or_default());
            button type="submit" { "Explain" }
        }
    };
    let main = html! {
        (form)
        @if let Some(answer) = &why {
            section #why aria-labelledby="why-h" {
                h2 #why-h { "Why" @if answer.as_ref().is_ok_and(|a| view::at(a, "decision") == "deny") { " not" } }
                @match answer {
                    Ok(a) => { (explanation(a)) }
                    Err(p) => { (view::refusal(p)) }
                }
            }
        }
        @if let Some(grantors) = &grantors {
            section #grantors aria-labelledby="grant-h" {
                h2 #grant-h { "Who could grant it" }
                @match grantors {
                    Ok(g) => {
                        @let names = cell(view::at(g, "principals"));
                        @if names.is_empty() { p { "Nobody in this company holds it together with " code { "core:member:invite" } "." } }
                        @else { p { "Members who may give it (they hold it and " code { "core:member:invite" } "): " strong data-grantors { (names) } } }
                    }
                    Err(p) => { (view::refusal(p)) }
                }
            }
        }
        @if let Some(who) = &who {
            section #who aria-labelledby="who-h" {
                h2 #who-h { "Who can" @if let Some(at) = &at { " at " (at) } @else { ", now" } }
                @match who {
                    Ok(w) => { p data-who-can { (cell(view::at(w, "principals"))) } }
                    Err(p) => { p.muted { "Hidden: " (p.detail) } }
                }
            }
        }
        @if let Some(table) = &table {
            section #effective aria-labelledby="eff-h" {
                h2 #eff-h { "Effective access of " (principal) @if let Some(at) = &at { " at " (at) } }
                @match table {
                    Ok(t) => { (effective(&keys, t)) }
                    Err(p) => { (view::refusal(p)) }
                }
            }
        }
    };
    ctx.render("explorer", "Access explorer", main)
}

async fn post(console: &Console, ctx: &Ctx, url: String, body: &Value) -> Result<Value, Problem> {
    Call::new(reqwest::Method::POST, url)
        .bearer(&ctx.token)
        .json(body)
        .at_least(ctx.at_least(console))
        .send(&console.http)
        .await
        .and_then(|r| r.ok())
}

async fn get(console: &Console, ctx: &Ctx, url: String) -> Result<Value, Problem> {
    Call::get(url).bearer(&ctx.token).at_least(ctx.at_least(console)).send(&console.http).await.and_then(|r| r.ok())
}

/// A decision with its provenance, as `kisum explain` gives it.
fn explanation(a: &Value) -> Markup {
    let e = view::at(a, "explain");
    let decision = cell(view::at(a, "decision"));
    let reason = cell(view::at(a, "reason"));
    let row = |label: &str, key: &str| {
        let v = cell(view::at(e, key));
        html! { @if !v.is_empty() { dt { (label) } dd data-explain=(key) { (v) } } }
    };
    html! {
        p.decision data-decision=(decision) {
            strong { (decision) }
            @if !reason.is_empty() { " — " code data-reason=(reason) { (reason) } ": " (reason_text(&reason)) }
        }
        dl.provenance {
            (row("Roles", "roles"))
            (row("Granted through", "role_path"))
            (row("Delegation chain", "delegations"))
            (row("Entitled by", "entitled_by"))
        }
    }
}

/// The module × permission table of a batch answer.
fn effective(keys: &[String], answer: &Value) -> Markup {
    let results = answer.get("results").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut by_module: BTreeMap<String, Vec<(String, Value)>> = BTreeMap::new();
    for (k, r) in keys.iter().zip(results) {
        let module = k.split(':').next().unwrap_or("").to_owned();
        by_module.entry(module).or_default().push((k.clone(), r));
    }
    html! {
        table.effective {
            thead { tr { th scope="col" { "Module" } th scope="col" { "Permission" } th scope="col" { "Decision" } th scope="col" { "Reason" } } }
            tbody {
                @for (module, rows) in &by_module {
                    @for (i, (k, r)) in rows.iter().enumerate() {
                        @let d = cell(view::at(r, "decision"));
                        tr data-permission=(k) data-decision=(d) {
                            @if i == 0 { th scope="row" rowspan=(rows.len()) { (module) } }
                            td { code { (k) } }
                            td class=(d) { (d) }
                            td { (cell(view::at(r, "reason"))) }
                        }
                    }
                }
            }
        }
    }
}
