//! The page frame and the pieces every page uses: navigation built from the user's manifest, action
//! buttons that say why they are disabled, flashes and refusals. maud escapes every value it renders.

use maud::{DOCTYPE, Markup, html};
use serde_json::Value;

use crate::session::Flash;
use crate::upstream::Problem;

/// The modules of API.md §4, in navigation order, with their titles.
pub(crate) const MODULES: [(&str, &str); 6] = [
    ("finance", "Finance"),
    ("artist", "Artists"),
    ("venue", "Venues"),
    ("promoters", "Events"),
    ("touring", "Tours"),
    ("ai", "Copilot"),
];

/// `GET /v1/me/access`, as pages use it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Manifest {
    pub modules: Vec<String>,
    pub features: Vec<String>,
    pub permissions: Vec<String>,
    pub scoped: Vec<(String, String)>,
    pub denied: Option<String>,
    pub version: u64,
    /// When the answer next changes by time alone (RFC 3339), if ever.
    pub valid_until: Option<String>,
    pub limits: Value,
}

impl Manifest {
    pub fn parse(body: &Value) -> Manifest {
        let strings = |k: &str| -> Vec<String> {
            body.get(k)
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                .unwrap_or_default()
        };
        let scoped = body
            .get("scoped")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| {
                        let p = s.get("permission")?.as_str()?;
                        let r = s.get("resource")?.as_str()?;
                        Some((p.to_owned(), r.to_owned()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Manifest {
            modules: strings("modules"),
            features: strings("features"),
            permissions: strings("permissions"),
            scoped,
            denied: body.get("denied").and_then(Value::as_str).map(str::to_owned),
            version: body.get("version").and_then(Value::as_u64).unwrap_or(0),
            valid_until: body.get("valid_until").and_then(Value::as_str).map(str::to_owned),
            limits: body.get("limits").cloned().unwrap_or(Value::Null),
        }
    }

    /// Whether the user holds `permission` without a resource.
    pub fn allows(&self, permission: &str) -> bool {
        self.permissions.iter().any(|p| p == permission)
    }

    /// How a module shows in the navigation.
    pub fn module(&self, module: &str) -> ModuleState {
        if !self.modules.iter().any(|m| m == module) {
            return ModuleState::NotInPlan;
        }
        let prefix = format!("{module}:");
        let granted = self.permissions.iter().any(|p| p.starts_with(&prefix))
            || self.scoped.iter().any(|(p, _)| p.starts_with(&prefix));
        if granted {
            ModuleState::Available
        } else {
            ModuleState::Unavailable(self.denied.clone().unwrap_or_else(|| "PERMISSION_NOT_GRANTED".into()))
        }
    }

    /// Whether the user is platform staff (holds an `admin:` permission in a company entitled to `admin`).
    pub fn staff(&self) -> bool {
        self.modules.iter().any(|m| m == "admin") && self.permissions.iter().any(|p| p.starts_with("admin:"))
    }
}

/// A module in the navigation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ModuleState {
    Available,
    /// Entitled, but the user holds none of its permissions (the reason).
    Unavailable(String),
    /// Not entitled to the company.
    NotInPlan,
}

/// A decision on an action, from Auth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decision {
    pub allowed: bool,
    pub reason: Option<String>,
}

impl Decision {
    pub fn of(result: &Value) -> Decision {
        Decision {
            allowed: result.get("decision").and_then(Value::as_str) == Some("allow"),
            reason: result.get("reason").and_then(Value::as_str).map(str::to_owned),
        }
    }

    /// A decision the console could not obtain: the action shows disabled.
    pub fn unknown(code: &str) -> Decision {
        Decision { allowed: false, reason: Some(code.to_owned()) }
    }
}

/// What a deny reason means, for people.
pub(crate) fn reason_text(reason: &str) -> &'static str {
    match reason {
        "PERMISSION_NOT_GRANTED" => "no role or delegation grants this",
        "RESTRICTED" => "a restriction on the membership denies this",
        "MODULE_NOT_ENTITLED" | "NOT_ENTITLED" => "the company's plan does not include this module",
        "FEATURE_NOT_ENTITLED" => "the company's plan does not include this feature",
        "MEMBERSHIP_INACTIVE" => "the membership is not active",
        "MEMBERSHIP_EXPIRED" => "the membership has expired",
        "NOT_A_MEMBER" => "not a member of this company",
        "CROSS_TENANT" => "this record belongs to another company",
        "UNKNOWN_COMPANY" => "the company does not exist",
        _ => "the platform could not decide this",
    }
}

/// Everything the frame needs.
#[derive(Debug)]
pub(crate) struct Frame<'a> {
    pub user: &'a str,
    pub company: &'a str,
    pub companies: &'a [String],
    pub csrf: &'a str,
    pub manifest: &'a Manifest,
    pub flash: Option<Flash>,
    /// The navigation entry of this page.
    pub current: &'a str,
}

/// A whole page: header (company switch, sign-out), navigation, the flash, `main`.
pub(crate) fn page(frame: &Frame<'_>, title: &str, main: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(&format!("{title} · {}", frame.company), true))
            body data-version=(frame.manifest.version) data-valid-until=[frame.manifest.valid_until.as_deref()] {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" { "Kisum" }
                    form.inline method="post" action="/company" {
                        (csrf(frame.csrf))
                        label for="company-switch" { "Company" }
                        select #company-switch name="company" {
                            @for c in frame.companies {
                                option value=(c) selected[c == frame.company] { (c) }
                            }
                        }
                        button type="submit" { "Switch" }
                    }
                    span.who { "Signed in as " strong { (frame.user) } }
                    form.inline method="post" action="/logout" {
                        (csrf(frame.csrf))
                        button type="submit" { "Sign out" }
                    }
                }
                div.layout {
                    (nav(frame))
                    main #main tabindex="-1" {
                        @if let Some(reason) = &frame.manifest.denied {
                            p.banner.denied role="status" data-denied=(reason) {
                                "You have no access in " (frame.company) ": " (reason) " — " (reason_text(reason)) "."
                            }
                        }
                        (flash(frame.flash.as_ref()))
                        h1 { (title) }
                        (main)
                    }
                }
            }
        }
    }
}

fn nav(frame: &Frame<'_>) -> Markup {
    let m = frame.manifest;
    let link = |href: &str, key: &str, label: &str| {
        html! {
            li { a href=(href) data-nav=(key) aria-current=[(frame.current == key).then_some("page")] { (label) } }
        }
    };
    html! {
        nav #nav aria-label="Main" {
            ul {
                (link("/", "home", "Home"))
            }
            h2 { "Modules" }
            ul.modules {
                @for (module, label) in MODULES {
                    @match m.module(module) {
                        ModuleState::Available => {
                            li { a href={ "/m/" (module) } data-module=(module) aria-current=[(frame.current == module).then_some("page")] { (label) } }
                        }
                        ModuleState::Unavailable(reason) => {
                            li.unavailable data-module-state="unavailable" data-reason=(reason) title=(reason_text(&reason)) {
                                (label) " " span.tag { "unavailable" }
                                span.reason { (reason) }
                            }
                        }
                        ModuleState::NotInPlan => {
                            li.not-in-plan data-module-state="not-in-plan" title="Your company's plan does not include this module" {
                                (label) " " span.tag { "not in plan" }
                            }
                        }
                    }
                }
            }
            h2 { "Access" }
            ul {
                (link("/access/members", "members", "Members"))
                (link("/access/roles", "roles", "Roles"))
                (link("/access/agents", "agents", "Agents"))
                (link("/access/delegations", "delegations", "Delegations"))
                (link("/explorer", "explorer", "Access explorer"))
            }
            @if m.staff() {
                h2 { "Platform" }
                ul {
                    (link("/staff", "staff", "Companies"))
                    (link("/staff/audit", "audit", "Audit"))
                }
            }
        }
    }
}

/// The CSRF field of a form.
pub(crate) fn csrf(token: &str) -> Markup {
    html! { input type="hidden" name="_csrf" value=(token); }
}

fn flash(flash: Option<&Flash>) -> Markup {
    html! {
        @match flash {
            None => {}
            Some(Flash::Done(text)) => { p.banner.done role="status" data-flash { (text) } }
            Some(Flash::Secret { what, client_id, secret }) => {
                div.banner.secret role="status" data-flash {
                    p { (what) " Copy the secret now: it is shown once." }
                    dl {
                        dt { "client_id" } dd { code #client-id { (client_id) } }
                        dt { "client_secret" } dd { code #client-secret { (secret) } }
                    }
                }
            }
            Some(Flash::Refused(problem)) => { div data-flash { (refusal(problem)) } }
        }
    }
}

/// A refusal, with its code, the rule and what was required.
pub(crate) fn refusal(p: &Problem) -> Markup {
    html! {
        div.banner.refused role="alert" data-code=(p.code) {
            p { strong { "Refused (" (p.status) " " (p.code) ")" } ": " (p.detail) }
            @if let Some(required) = &p.required {
                p { "Required: " code data-required=(required) { (required) } }
            }
            @if !p.errors.is_empty() {
                ul { @for e in &p.errors { li { (e) } } }
            }
        }
    }
}

/// A form that posts to `action`, its button enabled or disabled by `decision`. A disabled action stays
/// focusable (`aria-disabled`, a plain button that submits nothing) and says why on hover and focus.
pub(crate) fn action(csrf_token: &str, action: &str, label: &str, decision: &Decision, fields: Markup) -> Markup {
    let id = format!("why-{}", action.replace(['/', '.', '{', '}'], "-"));
    html! {
        form.action method="post" action=(action) {
            (csrf(csrf_token))
            (fields)
            @if decision.allowed {
                button type="submit" data-action=(label) { (label) }
            } @else {
                @let reason = decision.reason.clone().unwrap_or_else(|| "PERMISSION_NOT_GRANTED".into());
                button type="button" aria-disabled="true" data-action=(label) data-reason=(reason)
                    aria-describedby=(id) title={ (reason) ": " (reason_text(&reason)) } { (label) }
                span.reason #(id) role="note" { (reason) ": " (reason_text(&reason)) }
            }
        }
    }
}

/// The document head: the title, the stylesheet and, on live pages, the script.
fn head(title: &str, live: bool) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · Kisum" }
            link rel="stylesheet" href="/assets/console.css";
            @if live { script src="/assets/live.js" defer {} }
        }
    }
}

/// A page shown without a session frame (sign-in, errors).
pub(crate) fn bare(title: &str, main: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, false))
            body.bare {
                main #main {
                    h1 { (title) }
                    (main)
                }
            }
        }
    }
}

/// A JSON value as short text for a table cell.
pub(crate) fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(cell).collect::<Vec<_>>().join(", "),
        Value::Object(_) => v.to_string(),
        other => other.to_string(),
    }
}

/// Field `key` of a JSON object (`null` when absent or not an object).
pub(crate) fn at<'a>(v: &'a Value, key: &str) -> &'a Value {
    v.get(key).unwrap_or(&Value::Null)
}

/// Sets field `key` of a JSON object (nothing for anything else).
pub(crate) fn set(v: &mut Value, key: &str, value: Value) {
    if let Some(o) = v.as_object_mut() {
        o.insert(key.to_owned(), value);
    }
}

/// A path segment from user input: an id (letters, digits, `-`, `_`, `.`, starting with a letter or
/// digit), never anything that would change the URL's shape (`/`, `..`, `?`, `#`).
pub(crate) fn path_id(text: &str) -> Option<&str> {
    let text = text.trim();
    let first = text.chars().next()?;
    (first.is_ascii_alphanumeric() && text.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)))
        .then_some(text)
}

/// A query string from pairs, every value percent-encoded.
pub(crate) fn query(pairs: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        q.append_pair(k, v);
    }
    q.finish()
}
