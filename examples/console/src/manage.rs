//! Access management (API.md §6): members, custom roles, agents and delegations, read from Auth's
//! `GET /v1/companies/{c}/access` and written through Auth's routes. The controls follow the user's
//! management permissions (DESIGN.md §4) — a member without them sees none — but Auth decides every
//! write: a refusal comes back with the rule that refused it and what was required.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use maud::{Markup, html};
use reqwest::Method;
use serde_json::{Value, json};

use crate::Console;
use crate::pages::{Ctx, back, outcome};
use crate::session::Flash;
use crate::upstream::{Call, Problem};
use crate::view::{self, cell};

const INVITE: &str = "core:member:invite";
const REMOVE: &str = "core:member:remove";
const ROLES: &str = "core:role:manage";
const AGENTS: &str = "core:agent:manage";

fn list(text: &str) -> Vec<String> {
    text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// A path segment from a form: an id, never anything that would change the URL's shape.
fn id(form: &HashMap<String, String>, key: &str) -> Option<String> {
    form.get(key).and_then(|v| view::path_id(v)).map(str::to_owned)
}

/// `GET /access/{section}`.
pub(crate) async fn page(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Path(section): Path<String>,
) -> Response {
    let ctx = match Ctx::of(&console, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let reply = Call::get(format!("{}/v1/companies/{}/access", console.config.auth, ctx.company))
        .bearer(&ctx.token)
        .at_least(ctx.at_least(&console))
        .send(&console.http)
        .await
        .and_then(|r| r.ok());
    let docs = match reply {
        Ok(d) => d,
        Err(p) => {
            let title = section_title(&section);
            return ctx.render(&section, title, view::refusal(&p));
        }
    };
    let csrf = ctx.session.csrf.as_str();
    let m = &ctx.manifest;
    let main = match section.as_str() {
        "members" => members(csrf, &docs, m.allows(INVITE), m.allows(REMOVE), &ctx.session.user),
        "roles" => roles(csrf, &docs, m.allows(ROLES)),
        "agents" => agents(csrf, &docs, m.allows(AGENTS)),
        "delegations" => delegations(csrf, &docs, &ctx.session.user),
        _ => return crate::pages::not_found("No such page"),
    };
    ctx.render(&section, section_title(&section), main)
}

fn section_title(section: &str) -> &'static str {
    match section {
        "members" => "Members",
        "roles" => "Roles",
        "agents" => "Agents",
        "delegations" => "Delegations",
        _ => "Access",
    }
}

fn rows<'a>(docs: &'a Value, key: &str) -> Vec<&'a Value> {
    docs.get(key).and_then(Value::as_array).map(|a| a.iter().collect()).unwrap_or_default()
}

fn lacking(permission: &str, what: &str) -> Markup {
    html! { p.muted data-lacks=(permission) { "You cannot " (what) ": that needs " code { (permission) } "." } }
}

fn members(csrf: &str, docs: &Value, invite: bool, remove: bool, me: &str) -> Markup {
    let complete = docs.get("complete").and_then(Value::as_bool).unwrap_or(false);
    html! {
        table #members {
            thead { tr { th scope="col" { "User" } th scope="col" { "Roles" } th scope="col" { "Status" }
                @if complete { th scope="col" { "Expires" } th scope="col" { "Restrictions" } }
                @if complete && (invite || remove) { th scope="col" { "Manage" } } } }
            tbody {
                @for m in rows(docs, "memberships") {
                    @let user = cell(view::at(m, "user"));
                    tr data-user=(user) {
                        td { (user) @if user == me { " (you)" } }
                        td { (cell(view::at(m, "roles"))) }
                        td data-status=(cell(view::at(m, "status"))) { (cell(view::at(m, "status"))) }
                        @if complete { td { (cell(view::at(m, "expires_at"))) } td { (cell(view::at(m, "restrictions"))) } }
                        @if complete && (invite || remove) {
                            td {
                                details {
                                    summary { "Edit " (user) }
                                    form.edit method="post" action="/access/members/do/put" {
                                        (view::csrf(csrf))
                                        input type="hidden" name="user" value=(user);
                                        label { "Roles " input name="roles" value=(cell(view::at(m, "roles"))); }
                                        label { "Status "
                                            select name="status" {
                                                @for s in ["active", "invited", "suspended"] {
                                                    option value=(s) selected[cell(view::at(m, "status")) == s] { (s) }
                                                }
                                            }
                                        }
                                        label { "Expires (RFC 3339) " input name="expires_at" value=(cell(view::at(m, "expires_at"))); }
                                        label { "Restrictions " input name="restrictions" value=(cell(view::at(m, "restrictions"))); }
                                        button type="submit" data-action="save" { "Save" }
                                    }
                                }
                                @if remove && user != me {
                                    form.inline method="post" action="/access/members/do/remove" {
                                        (view::csrf(csrf))
                                        input type="hidden" name="user" value=(user);
                                        button type="submit" data-action="remove" { "Remove" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if invite {
            section aria-labelledby="invite-h" {
                h2 #invite-h { "Add a member" }
                form #invite method="post" action="/access/members/do/put" {
                    (view::csrf(csrf))
                    label for="invite-user" { "User" } input #invite-user name="user" required;
                    label for="invite-roles" { "Roles (comma-separated)" } input #invite-roles name="roles" value="member";
                    input type="hidden" name="status" value="active";
                    button type="submit" { "Add" }
                }
            }
        } @else {
            (lacking(INVITE, "add members or widen their access"))
        }
        @if !remove { (lacking(REMOVE, "suspend or remove members")) }
        @if !complete {
            p.muted {
                "Restrictions, expiry and others' delegations — and so editing a membership, which carries them — are for members allowed "
                code { "core:member:read" } "."
            }
        }
    }
}

fn roles(csrf: &str, docs: &Value, manage: bool) -> Markup {
    html! {
        table {
            thead { tr { th scope="col" { "Role" } th scope="col" { "Grants" } th scope="col" { "Inherits" } @if manage { th scope="col" { "Manage" } } } }
            tbody {
                @for r in rows(docs, "roles") {
                    tr data-role=(cell(view::at(r, "id"))) {
                        td { (cell(view::at(r, "id"))) } td { (cell(view::at(r, "grants"))) } td { (cell(view::at(r, "inherits"))) }
                        @if manage {
                            td {
                                form.inline method="post" action="/access/roles/do/delete" {
                                    (view::csrf(csrf)) input type="hidden" name="role" value=(cell(view::at(r, "id")));
                                    button type="submit" { "Delete" }
                                }
                            }
                        }
                    }
                }
            }
        }
        p.muted { "System roles (owner, admin, member, …) come with the catalog." }
        @if manage {
            section aria-labelledby="role-h" {
                h2 #role-h { "Define a custom role" }
                form method="post" action="/access/roles/do/put" {
                    (view::csrf(csrf))
                    label for="role-id" { "Id" } input #role-id name="role" required;
                    label for="role-grants" { "Grants (patterns, comma-separated)" } input #role-grants name="grants";
                    label for="role-inherits" { "Inherits" } input #role-inherits name="inherits";
                    button type="submit" { "Save role" }
                }
            }
        } @else { (lacking(ROLES, "define roles")) }
    }
}

fn agents(csrf: &str, docs: &Value, manage: bool) -> Markup {
    html! {
        table {
            thead { tr { th scope="col" { "Agent" } @if manage { th scope="col" { "Manage" } } } }
            tbody {
                @for a in rows(docs, "agents") {
                    @let agent = cell(view::at(a, "id"));
                    tr data-agent=(agent) {
                        td { (agent) }
                        @if manage {
                            td {
                                form.inline method="post" action="/access/agents/do/rotate" {
                                    (view::csrf(csrf)) input type="hidden" name="agent" value=(agent);
                                    button type="submit" { "New secret" }
                                }
                                form.inline method="post" action="/access/agents/do/delete" {
                                    (view::csrf(csrf)) input type="hidden" name="agent" value=(agent);
                                    button type="submit" { "Delete" }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if manage {
            section aria-labelledby="agent-h" {
                h2 #agent-h { "Register an agent" }
                form method="post" action="/access/agents/do/put" {
                    (view::csrf(csrf))
                    label for="agent-id" { "Id" } input #agent-id name="agent" required;
                    button type="submit" { "Register" }
                }
            }
        } @else { (lacking(AGENTS, "register agents")) }
        p.muted { "An agent holds nothing of its own: it acts through the delegations it receives." }
    }
}

fn delegations(csrf: &str, docs: &Value, me: &str) -> Markup {
    let party = |p: &Value| {
        p.as_object().and_then(|o| o.iter().next()).map(|(k, v)| format!("{k}:{}", cell(v))).unwrap_or_default()
    };
    html! {
        table {
            thead { tr { th scope="col" { "Id" } th scope="col" { "From" } th scope="col" { "To" } th scope="col" { "Grants" }
                th scope="col" { "Valid" } th scope="col" { "Manage" } } }
            tbody {
                @for d in rows(docs, "delegations") {
                    tr data-delegation=(cell(view::at(d, "id"))) {
                        td { (cell(view::at(d, "id"))) } td { (party(view::at(d, "from"))) } td { (party(view::at(d, "to"))) } td { (cell(view::at(d, "grants"))) }
                        @let revoked = cell(view::at(d, "revoked_at"));
                        td { (cell(view::at(d, "not_before"))) " – " (cell(view::at(d, "expires_at"))) }
                        td {
                            @if !revoked.is_empty() {
                                span.muted data-revoked=(revoked) { "revoked at " (revoked) }
                            } @else if party(view::at(d, "from")) == format!("user:{me}") {
                                form.inline method="post" action="/access/delegations/do/revoke" {
                                    (view::csrf(csrf)) input type="hidden" name="id" value=(cell(view::at(d, "id")));
                                    button type="submit" { "Revoke" }
                                }
                            } @else { span.muted { "only its delegator revokes it" } }
                        }
                    }
                }
            }
        }
        section aria-labelledby="del-h" {
            h2 #del-h { "Delegate part of your access" }
            form method="post" action="/access/delegations/do/create" {
                (view::csrf(csrf))
                label for="del-to" { "To (user:ID or agent:ID)" } input #del-to name="to" required;
                label for="del-grants" { "Grants (patterns, comma-separated)" } input #del-grants name="grants" required;
                label for="del-expires" { "Expires (RFC 3339, at most 90 days)" } input #del-expires name="expires_at" required;
                button type="submit" { "Delegate" }
            }
        }
    }
}

/// What a management form sends to Auth: method, path (under the company) and body.
fn request(section: &str, action: &str, form: &HashMap<String, String>) -> Result<(Method, String, Value), Problem> {
    let field = |k: &str| form.get(k).map(|v| v.trim().to_owned()).unwrap_or_default();
    let need = |k: &str| id(form, k).ok_or_else(|| invalid(k));
    Ok(match (section, action) {
        ("members", "put") => {
            let mut body = json!({"roles": list(&field("roles"))});
            if !field("status").is_empty() {
                view::set(&mut body, "status", Value::String(field("status")));
            }
            if !field("expires_at").is_empty() {
                view::set(&mut body, "expires_at", Value::String(field("expires_at")));
            }
            if form.contains_key("restrictions") {
                view::set(&mut body, "restrictions", json!(list(&field("restrictions"))));
            }
            (Method::PUT, format!("/memberships/{}", need("user")?), body)
        }
        ("members", "remove") => (Method::DELETE, format!("/memberships/{}", need("user")?), Value::Null),
        ("roles", "put") => {
            let body = json!({"grants": list(&field("grants")), "inherits": list(&field("inherits"))});
            (Method::PUT, format!("/roles/{}", need("role")?), body)
        }
        ("roles", "delete") => (Method::DELETE, format!("/roles/{}", need("role")?), Value::Null),
        ("agents", "put") => (Method::PUT, format!("/agents/{}", need("agent")?), Value::Null),
        ("agents", "rotate") => (Method::POST, format!("/agents/{}/secret", need("agent")?), Value::Null),
        ("agents", "delete") => (Method::DELETE, format!("/agents/{}", need("agent")?), Value::Null),
        ("delegations", "create") => {
            let to = field("to");
            let Some((kind, who)) = to.split_once(':').filter(|(k, _)| *k == "user" || *k == "agent") else {
                return Err(invalid("to"));
            };
            let body = json!({"to": {kind: who}, "grants": list(&field("grants")), "expires_at": field("expires_at")});
            (Method::POST, "/delegations".into(), body)
        }
        ("delegations", "revoke") => (Method::DELETE, format!("/delegations/{}", need("id")?), Value::Null),
        _ => return Err(Problem::unavailable_text("no such action")),
    })
}

fn invalid(field: &str) -> Problem {
    Problem {
        status: 422,
        code: "VALIDATION_FAILED".into(),
        detail: format!("`{field}` is missing or not an id"),
        required: None,
        errors: vec![format!("{field}: missing or not an id")],
    }
}

/// `POST /access/{section}/do/{action}`: one write through Auth, as the user.
pub(crate) async fn act(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Path((section, action)): Path<(String, String)>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let ctx = match Ctx::form(&console, &headers, &form).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let result = match request(&section, &action, &form) {
        Err(p) => Err(p),
        Ok((method, path, body)) => {
            let url = format!("{}/v1/companies/{}{path}", console.config.auth, ctx.company);
            ctx.write(&console, method, url, &body).await
        }
    };
    outcome(&ctx.session, result, |v| match (v.get("client_id"), v.get("client_secret")) {
        (Some(id), Some(secret)) => Flash::Secret {
            what: format!("Agent {} has new credentials.", cell(view::at(v, "id"))),
            client_id: cell(id),
            secret: cell(secret),
        },
        _ => Flash::Done(format!("Saved ({section}: {action}).")),
    });
    back(&format!("/access/{section}"))
}
