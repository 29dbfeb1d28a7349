//! One page per module (API.md §4): its records through the module's API, each action enabled or
//! disabled by Auth's decision for the user (with the reason), and the forms that call the module —
//! which enforces every action again, so a forged form is refused there too.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use maud::{Markup, html};
use reqwest::Method;
use serde_json::{Value, json};

use crate::Console;
use crate::pages::{Ctx, back, outcome};
use crate::session::Flash;
use crate::upstream::{Call, Problem};
use crate::view::{self, Decision, ModuleState, reason_text};

/// A form field: name, label, input type, default.
type Field = (&'static str, &'static str, &'static str, &'static str);

/// An action on one record.
struct RowAction {
    key: &'static str,
    label: &'static str,
    permission: &'static str,
    /// The resource kind the module checks it on, and the record field naming the resource's id.
    kind: &'static str,
    id_field: &'static str,
}

/// An action that makes a record (or asks the copilot).
struct Create {
    key: &'static str,
    label: &'static str,
    permission: &'static str,
    /// The resource kind and id (`{c}` is the company) the module checks it on, if any.
    resource: Option<(&'static str, &'static str)>,
    fields: &'static [Field],
}

/// What a module page shows.
struct Spec {
    module: &'static str,
    title: &'static str,
    /// What listing needs, and where to list (`{c}` is the company).
    read: Option<(&'static str, &'static str)>,
    /// Which field of the answer holds the rows, and the columns shown.
    rows: &'static str,
    columns: &'static [&'static str],
    row_actions: &'static [RowAction],
    create: Option<Create>,
}

const SPECS: [Spec; 6] = [
    Spec {
        module: "finance",
        title: "Invoices",
        read: Some(("finance:invoice:read", "/v1/invoices")),
        rows: "invoices",
        columns: &["id", "currency", "amount", "status", "approved_by"],
        row_actions: &[RowAction {
            key: "approve",
            label: "Approve",
            permission: "finance:invoice:approve",
            kind: "invoice",
            id_field: "id",
        }],
        create: Some(Create {
            key: "create",
            label: "Create invoice",
            permission: "finance:invoice:create",
            resource: None,
            fields: &[("currency", "Currency", "text", "EUR"), ("amount", "Amount (minor units)", "number", "")],
        }),
    },
    Spec {
        module: "artist",
        title: "Artists",
        read: Some(("artist:profile:read", "/v1/artists/{c}-1")),
        rows: "bookings",
        columns: &["id", "artist", "date"],
        row_actions: &[],
        create: Some(Create {
            key: "book",
            label: "Book",
            permission: "artist:booking:create",
            resource: Some(("artist", "{c}-1")),
            fields: &[("date", "Date (YYYY-MM-DD)", "date", "")],
        }),
    },
    Spec {
        module: "venue",
        title: "Venues",
        read: Some(("venue:venue:read", "/v1/venues")),
        rows: "contracts",
        columns: &["venue", "id", "status", "signed_by"],
        row_actions: &[RowAction {
            key: "sign",
            label: "Sign",
            permission: "venue:contract:sign",
            kind: "venue",
            id_field: "venue",
        }],
        create: None,
    },
    Spec {
        module: "promoters",
        title: "Events",
        read: Some(("promoters:event:read", "/v1/events")),
        rows: "events",
        columns: &["id", "name", "starts_at"],
        row_actions: &[RowAction {
            key: "delete",
            label: "Delete",
            permission: "promoters:event:delete",
            kind: "event",
            id_field: "id",
        }],
        create: Some(Create {
            key: "create",
            label: "Create event",
            permission: "promoters:event:create",
            resource: None,
            fields: &[
                ("name", "Name", "text", ""),
                ("starts_at", "Starts at (RFC 3339)", "text", "2027-01-15T20:00:00Z"),
            ],
        }),
    },
    Spec {
        module: "touring",
        title: "Tours",
        read: Some(("touring:tour:read", "/v1/tours")),
        rows: "tours",
        columns: &["id", "name"],
        row_actions: &[],
        create: Some(Create {
            key: "plan",
            label: "Plan tour",
            permission: "touring:tour:plan",
            resource: None,
            fields: &[("name", "Name", "text", "")],
        }),
    },
    // Your conversations with the copilot: each opens at `/m/ai/sessions/{id}` ([`crate::copilot`]).
    Spec {
        module: "ai",
        title: "Copilot",
        read: Some(("ai:copilot:ask", "/v1/copilot/sessions")),
        rows: "sessions",
        columns: &["id", "title", "messages", "last_question"],
        row_actions: &[],
        create: Some(Create {
            key: "start",
            label: "Start a conversation",
            permission: "ai:copilot:ask",
            resource: None,
            fields: &[("title", "Title", "text", "")],
        }),
    },
];

fn spec(module: &str) -> Option<&'static Spec> {
    SPECS.iter().find(|s| s.module == module)
}

fn fill(template: &str, company: &str) -> String {
    template.replace("{c}", company)
}

/// The rows of a list answer: `rows` of the answer, or of each venue for contracts.
fn rows_of(spec: &Spec, body: &Value) -> Vec<Value> {
    if spec.module == "venue" {
        let venues = body.get("venues").and_then(Value::as_array).cloned().unwrap_or_default();
        return venues
            .iter()
            .flat_map(|v| v.get("contracts").and_then(Value::as_array).cloned().unwrap_or_default())
            .collect();
    }
    body.get(spec.rows).and_then(Value::as_array).cloned().unwrap_or_default()
}

/// `GET /m/{module}`.
pub(crate) async fn page(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Path(module): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let ctx = match Ctx::of(&console, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let (Some(spec), Some(base)) = (spec(&module), console.config.module(&module)) else {
        return crate::pages::not_found("No such module");
    };
    let c = ctx.company.as_str();
    let state = ctx.manifest.module(spec.module);
    // The records, when the module is available and the user may list them.
    let mut listed: Option<Result<Vec<Value>, Problem>> = None;
    let mut header_extra = None;
    // Lists come a page at a time: `?after=` is the module's cursor of the next page.
    let after = query.get("after").and_then(|a| view::path_id(a)).map(str::to_owned);
    let mut next_page = None;
    if state == ModuleState::Available
        && let Some((read, path)) = spec.read
        && ctx.manifest.allows(read)
    {
        // Bookings only for who may read them (the module refuses the include otherwise).
        let include = if spec.module == "artist" && ctx.manifest.allows("artist:booking:read") {
            "?include=bookings"
        } else {
            ""
        };
        let cursor = match &after {
            Some(a) => format!("{}after={a}", if include.is_empty() { '?' } else { '&' }),
            None => String::new(),
        };
        let reply =
            Call::get(format!("{base}{}{include}{cursor}", fill(path, c))).bearer(&ctx.token).send(&console.http).await;
        let body = reply.and_then(|r| r.ok());
        if let Ok(b) = &body {
            next_page = b.get("next").and_then(Value::as_str).and_then(view::path_id).map(str::to_owned);
        }
        if spec.module == "artist"
            && let Ok(b) = &body
        {
            header_extra = Some(format!("{} ({})", view::cell(view::at(b, "name")), view::cell(view::at(b, "id"))));
        }
        listed = Some(body.map(|b| rows_of(spec, &b)));
    }
    let rows = match &listed {
        Some(Ok(rows)) => rows.clone(),
        _ => Vec::new(),
    };
    // Every action's decision, in one batch: the create first, then each row's actions.
    let mut checks = Vec::new();
    if let Some(create) = &spec.create {
        let resource = create.resource.map(|(kind, id)| format!("{c}/{kind}/{}", fill(id, c)));
        checks.push((create.permission.to_owned(), resource));
    }
    for row in &rows {
        for a in spec.row_actions {
            let id = view::cell(view::at(row, a.id_field));
            checks.push((a.permission.to_owned(), Some(format!("{c}/{}/{id}", a.kind))));
        }
    }
    // The module-level view of each row action, for when there are no rows to act on.
    for a in spec.row_actions {
        checks.push((a.permission.to_owned(), None));
    }
    let decisions = ctx.decide(&console, &checks).await;
    let mut next = decisions.into_iter();
    let create_decision = spec.create.as_ref().map(|_| next.next().unwrap_or_else(|| Decision::unknown("UNKNOWN")));
    let mut row_decisions = Vec::new();
    for _ in &rows {
        let per_row: Vec<Decision> =
            spec.row_actions.iter().map(|_| next.next().unwrap_or_else(|| Decision::unknown("UNKNOWN"))).collect();
        row_decisions.push(per_row);
    }
    let module_decisions: Vec<Decision> =
        spec.row_actions.iter().map(|_| next.next().unwrap_or_else(|| Decision::unknown("UNKNOWN"))).collect();
    let csrf = ctx.session.csrf.as_str();
    let main = html! {
        @match &state {
            ModuleState::NotInPlan => {
                p.banner.denied data-module-state="not-in-plan" { "Your company's plan does not include this module (MODULE_NOT_ENTITLED)." }
            }
            ModuleState::Unavailable(reason) => {
                p.banner.denied data-module-state="unavailable" data-reason=(reason) {
                    "This module is unavailable to you: " (reason) " — " (reason_text(reason)) "."
                }
            }
            ModuleState::Available => {}
        }
        section aria-labelledby="actions-h" {
            h2 #actions-h { "What you can do here" }
            ul.actions {
                @for (a, d) in spec.row_actions.iter().zip(&module_decisions) {
                    li {
                        (action_summary(a.label, a.permission, d, c))
                    }
                }
            }
            @if let (Some(create), Some(d)) = (&spec.create, &create_decision) {
                (create_form(csrf, spec, create, d))
            }
        }
        @if let Some(title) = &header_extra { h2 { (title) } }
        @match &listed {
            None => {
                @if let Some((read, _)) = spec.read {
                    p.muted data-list="hidden" { "You cannot list these records (" code { (read) } ")." }
                }
            }
            Some(Err(p)) => { (view::refusal(p)) }
            Some(Ok(rows)) => {
                (table(csrf, spec, rows, &row_decisions, c))
                p.pages {
                    @if after.is_some() { a data-page="first" href={ "/m/" (spec.module) } { "← First page" } " " }
                    @if let Some(next) = &next_page {
                        a data-page="next" href={ "/m/" (spec.module) "?after=" (next) } { "Next page →" }
                    }
                }
            }
        }
    };
    ctx.render(spec.module, spec.title, main)
}

/// A row action at the module level: whether the user may do it at all, and why not.
fn action_summary(label: &str, permission: &str, d: &Decision, company: &str) -> Markup {
    html! {
        span.summary data-permission=(permission) data-decision=(if d.allowed { "allow" } else { "deny" }) {
            @if d.allowed {
                span.ok { (label) ": allowed" } " (" code { (permission) } ")"
            } @else {
                @let reason = d.reason.clone().unwrap_or_default();
                button type="button" aria-disabled="true" data-action=(label) data-reason=(reason)
                    title={ (reason) ": " (reason_text(&reason)) } { (label) }
                " " span.reason-inline { (reason) ": " (reason_text(&reason)) }
                " · " a href={ "/explorer?" (view::query(&[("permission", permission), ("principal", "me"), ("company", company)])) } { "Why? Who could grant it?" }
            }
        }
    }
}

fn create_form(csrf: &str, spec: &Spec, create: &Create, d: &Decision) -> Markup {
    let fields = html! {
        @for (name, label, kind, default) in create.fields {
            @let id = format!("{}-{}", spec.module, name);
            label for=(id) { (label) }
            input #(id) name=(name) type=(kind) value=(default) required;
        }
    };
    html! {
        div.create {
            (view::action(csrf, &format!("/m/{}/do/{}", spec.module, create.key), create.label, d, fields))
        }
    }
}

fn table(csrf: &str, spec: &Spec, rows: &[Value], decisions: &[Vec<Decision>], company: &str) -> Markup {
    html! {
        @if rows.is_empty() { p { "No records yet." } }
        @else {
            table {
                thead { tr { @for c in spec.columns { th scope="col" { (c) } } @if !spec.row_actions.is_empty() { th scope="col" { "Actions" } } } }
                tbody {
                    @for (row, ds) in rows.iter().zip(decisions) {
                        tr data-id=(view::cell(view::at(row, "id"))) {
                            @for c in spec.columns {
                                @let text = view::cell(view::at(row, c));
                                @match (spec.module, *c, view::path_id(&text)) {
                                    ("ai", "id", Some(id)) => td { a href={ "/m/ai/sessions/" (id) } { (id) } },
                                    _ => td { (text) },
                                }
                            }
                            @if !spec.row_actions.is_empty() {
                                td {
                                    @for (a, d) in spec.row_actions.iter().zip(ds) {
                                        @let fields = html! {
                                            input type="hidden" name="id" value=(view::cell(view::at(row, "id")));
                                            input type="hidden" name="venue" value=(view::cell(view::at(row, "venue")));
                                        };
                                        (view::action(csrf, &format!("/m/{}/do/{}", spec.module, a.key), a.label, d, fields))
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        p.muted { "Records of " (company) " only; the module enforces every action again." }
    }
}

/// What a module action sends: method, path and body.
fn request(
    module: &str,
    action: &str,
    company: &str,
    form: &HashMap<String, String>,
) -> Option<(Method, String, Value)> {
    let field = |k: &str| form.get(k).map(|v| v.trim().to_owned()).unwrap_or_default();
    let seg = |k: &str| form.get(k).and_then(|v| view::path_id(v)).map(str::to_owned);
    Some(match (module, action) {
        ("finance", "create") => {
            let amount =
                field("amount").parse::<u64>().map(Value::from).unwrap_or_else(|_| Value::String(field("amount")));
            (Method::POST, "/v1/invoices".into(), json!({"currency": field("currency"), "amount": amount}))
        }
        ("finance", "approve") => (Method::POST, format!("/v1/invoices/{}/approve", seg("id")?), Value::Null),
        ("artist", "book") => {
            (Method::POST, format!("/v1/artists/{company}-1/bookings"), json!({"date": field("date")}))
        }
        ("venue", "sign") => {
            (Method::POST, format!("/v1/venues/{}/contracts/{}/sign", seg("venue")?, seg("id")?), Value::Null)
        }
        ("promoters", "create") => {
            (Method::POST, "/v1/events".into(), json!({"name": field("name"), "starts_at": field("starts_at")}))
        }
        ("promoters", "delete") => (Method::DELETE, format!("/v1/events/{}", seg("id")?), Value::Null),
        ("touring", "plan") => (Method::POST, "/v1/tours".into(), json!({"name": field("name")})),
        ("ai", "start") => (Method::POST, "/v1/copilot/sessions".into(), json!({"title": field("title")})),
        _ => return None,
    })
}

/// `POST /m/{module}/do/{action}`: calls the module with the user's token; the page shows what it said.
pub(crate) async fn act(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Path((module, action)): Path<(String, String)>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let ctx = match Ctx::form(&console, &headers, &form).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let (Some(base), Some((method, path, body))) =
        (console.config.module(&module), request(&module, &action, &ctx.company, &form))
    else {
        return crate::pages::not_found("No such action");
    };
    let result = ctx.write(&console, method, format!("{base}{path}"), &body).await;
    // A conversation started opens at once.
    if module == "ai"
        && let Ok(started) = &result
        && let Some(id) = started.get("id").and_then(Value::as_str).and_then(view::path_id)
    {
        return back(&format!("/m/ai/sessions/{id}"));
    }
    outcome(&ctx.session, result, |v| {
        if v.is_null() {
            Flash::Done(format!("{action}: done."))
        } else {
            Flash::Done(format!("{action}: done ({}).", view::cell(view::at(v, "id"))))
        }
    });
    back(&format!("/m/{module}"))
}
