//! The copilot's tools. The lookups go through the other modules' public APIs with the caller's own
//! token (the platform's audience, `kisum`, which every module is part of; it is never sent anywhere
//! else, never to a model provider), so every answer holds exactly what the caller may read: a module
//! that refuses makes the tool's result that refusal. The simulation runs here, behind
//! `ai:simulation:run`. A lookup reads the first 200 records of a list (the largest page) and says when
//! there were more (`truncated`).

use std::collections::BTreeMap;
use std::time::Duration;

use kisum_client::Access;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::Module;
use crate::simulation;

/// The most records a lookup reads from a module (its first page of the largest size).
const LOOKUP_LIMIT: u32 = crate::records::MAX_PAGE;
/// Artists whose bookings a lookup reads, at most.
const ARTISTS_WITH_BOOKINGS: usize = 5;
/// How long a module has to answer a lookup.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

/// A tool: its name for planners and MCP clients, what it does, the permission it needs, and its
/// arguments as a JSON Schema.
#[derive(Debug)]
pub(crate) struct Tool {
    pub(crate) name: &'static str,
    pub(crate) description: &'static str,
    pub(crate) permission: &'static str,
    pub(crate) parameters: fn() -> Value,
}

pub(crate) const FIND_VENUES: &str = "find_venues";
pub(crate) const FIND_ARTISTS: &str = "find_artists";
pub(crate) const LIST_INVOICES: &str = "list_invoices";
pub(crate) const LIST_EVENTS: &str = "list_events";
pub(crate) const LIST_TOURS: &str = "list_tours";
pub(crate) const SIMULATE_EVENT: &str = "simulate_event";

/// Every tool of the copilot (and of the MCP endpoint, beside `copilot_ask`).
pub(crate) const TOOLS: &[Tool] = &[
    Tool {
        name: FIND_VENUES,
        description: "The company's venues: capacity, the dates already held, contracts and their status. \
            Narrow by `name`; with `date` (YYYY-MM-DD), says whether each venue is available that day.",
        permission: "venue:venue:read",
        parameters: || {
            json!({"type": "object", "additionalProperties": false, "properties": {
                "name": {"type": "string", "description": "part of the venue's name"},
                "date": {"type": "string", "description": "a day, YYYY-MM-DD, to check availability on"}
            }})
        },
    },
    Tool {
        name: FIND_ARTISTS,
        description: "The company's artists with their bookings (bookings need artist:booking:read). Narrow \
            by `name`.",
        permission: "artist:profile:read",
        parameters: || {
            json!({"type": "object", "additionalProperties": false, "properties": {
                "name": {"type": "string", "description": "part of the artist's name"}
            }})
        },
    },
    Tool {
        name: LIST_INVOICES,
        description: "The company's invoices (amounts in minor units), with totals per currency. Narrow by \
            `status` (draft or approved).",
        permission: "finance:invoice:read",
        parameters: || {
            json!({"type": "object", "additionalProperties": false, "properties": {
                "status": {"type": "string", "enum": ["draft", "approved"]}
            }})
        },
    },
    Tool {
        name: LIST_EVENTS,
        description: "The company's events and when they start.",
        permission: "promoters:event:read",
        parameters: || json!({"type": "object", "additionalProperties": false, "properties": {}}),
    },
    Tool {
        name: LIST_TOURS,
        description: "The company's tours.",
        permission: "touring:tour:read",
        parameters: || json!({"type": "object", "additionalProperties": false, "properties": {}}),
    },
    Tool {
        name: SIMULATE_EVENT,
        description: "Simulates an event's ticket sales and P&L (seeded Monte Carlo): percentiles of tickets, \
            revenue, costs and profit, the chance of a loss, break-even, explained. The same inputs and seed \
            give the same figures. Amounts in minor units.",
        permission: "ai:simulation:run",
        parameters: simulation_schema,
    },
];

fn simulation_schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["capacity", "tiers", "currency", "fixed_costs", "sell_through", "days_on_sale"],
        "properties": {
            "capacity": {"type": "integer", "minimum": 1, "maximum": 1_000_000},
            "tiers": {"type": "array", "items": {"type": "object", "required": ["name", "price", "share"],
                "properties": {"name": {"type": "string"}, "price": {"type": "integer"}, "share": {"type": "number"}}}},
            "currency": {"type": "string", "description": "ISO 4217"},
            "fixed_costs": {"type": "integer"},
            "variable_cost": {"type": "integer"},
            "sell_through": {"type": "object", "required": ["mean", "spread"],
                "properties": {"mean": {"type": "number"}, "spread": {"type": "number"}}},
            "curve": {"type": "string", "enum": ["early", "steady", "late"]},
            "days_on_sale": {"type": "integer", "minimum": 1, "maximum": 730},
            "fx": {"type": "object", "required": ["currency", "rate"],
                "properties": {"currency": {"type": "string"}, "rate": {"type": "number"}, "volatility": {"type": "number"}}},
            "runs": {"type": "integer", "minimum": 1, "maximum": 100_000},
            "seed": {"type": "integer", "minimum": 0}
        }
    })
}

/// A planner's request to run a tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ToolCall {
    /// Names the call in the conversation (a provider's id, or `call-N`).
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) arguments: Value,
}

/// What a tool gave: its data, the refusal of the module (or of this one) that decided, or a failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub(crate) enum Outcome {
    /// The data, as the tool describes it.
    Ok { data: Value },
    /// The problem (DESIGN.md §6) a module answered with: the caller may not.
    Refused { problem: Value },
    /// The tool could not run (a module unreachable, arguments it cannot use).
    Failed { detail: String },
}

/// Where the tools find the other modules, and the HTTP client they call them with.
#[derive(Debug, Clone)]
pub(crate) struct Reach {
    pub(crate) http: reqwest::Client,
    pub(crate) modules: BTreeMap<Module, String>,
}

impl Reach {
    /// Runs `call` for `access`, reaching the modules with `token` (the caller's own).
    pub(crate) async fn run(&self, access: &Access, token: &str, call: &ToolCall) -> Outcome {
        let args = &call.arguments;
        if let Err(detail) = check_arguments(&call.name, args) {
            return Outcome::Failed { detail };
        }
        let text = |key: &str| args.get(key).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
        match call.name.as_str() {
            FIND_VENUES => self.venues(token, text("name"), text("date")).await,
            FIND_ARTISTS => self.artists(token, text("name")).await,
            LIST_INVOICES => self.invoices(token, text("status")).await,
            LIST_EVENTS => self.list(Module::Promoters, "/v1/events", "events", token).await,
            LIST_TOURS => self.list(Module::Touring, "/v1/tours", "tours", token).await,
            SIMULATE_EVENT => simulate(access, args).await,
            other => Outcome::Failed { detail: format!("there is no tool `{other}`") },
        }
    }

    async fn venues(&self, token: &str, name: Option<&str>, date: Option<&str>) -> Outcome {
        let (venues, truncated) = match self.records(Module::Venue, "/v1/venues", "venues", token).await {
            Ok(found) => found,
            Err(outcome) => return outcome,
        };
        let venues: Vec<Value> = venues
            .into_iter()
            .filter(|v| matches(v, name))
            .map(|mut venue| {
                if let (Some(date), Some(fields)) = (date, venue.as_object_mut()) {
                    let held = fields
                        .get("held")
                        .and_then(Value::as_array)
                        .is_some_and(|held| held.iter().any(|d| d.as_str() == Some(date)));
                    fields.insert("available_on".into(), json!({ "date": date, "available": !held }));
                }
                venue
            })
            .collect();
        Outcome::Ok { data: json!({ "venues": venues, "truncated": truncated }) }
    }

    async fn artists(&self, token: &str, name: Option<&str>) -> Outcome {
        let (artists, truncated) = match self.records(Module::Artist, "/v1/artists", "artists", token).await {
            Ok(found) => found,
            Err(outcome) => return outcome,
        };
        let mut found = Vec::new();
        for (i, artist) in artists.into_iter().filter(|a| matches(a, name)).enumerate() {
            let id = artist.get("id").and_then(Value::as_str).unwrap_or_default().to_owned();
            let mut artist = artist;
            if i < ARTISTS_WITH_BOOKINGS {
                let path = format!("/v1/artists/{id}?include=bookings");
                let bookings = match self.get(Module::Artist, &path, token).await {
                    Ok(one) => one.get("bookings").cloned().unwrap_or(Value::Null),
                    // Without artist:booking:read the artist is still found; its bookings are refused.
                    Err(Outcome::Refused { problem }) => json!({ "refused": problem }),
                    Err(Outcome::Failed { detail }) => json!({ "failed": detail }),
                    Err(Outcome::Ok { data }) => data,
                };
                if let Some(fields) = artist.as_object_mut() {
                    fields.insert("bookings".into(), bookings);
                }
            }
            found.push(artist);
        }
        Outcome::Ok { data: json!({ "artists": found, "truncated": truncated }) }
    }

    async fn invoices(&self, token: &str, status: Option<&str>) -> Outcome {
        if status.is_some_and(|s| s != "draft" && s != "approved") {
            return Outcome::Failed { detail: "`status` is draft or approved".into() };
        }
        let (invoices, truncated) = match self.records(Module::Finance, "/v1/invoices", "invoices", token).await {
            Ok(found) => found,
            Err(outcome) => return outcome,
        };
        let invoices: Vec<Value> = invoices
            .into_iter()
            .filter(|i| status.is_none_or(|s| i.get("status").and_then(Value::as_str) == Some(s)))
            .collect();
        let mut totals: BTreeMap<String, u64> = BTreeMap::new();
        for invoice in &invoices {
            let currency = invoice.get("currency").and_then(Value::as_str).unwrap_or("?");
            let amount = invoice.get("amount").and_then(Value::as_u64).unwrap_or(0);
            *totals.entry(currency.to_owned()).or_insert(0) += amount;
        }
        Outcome::Ok { data: json!({ "invoices": invoices, "totals": totals, "truncated": truncated }) }
    }

    async fn list(&self, module: Module, path: &str, key: &str, token: &str) -> Outcome {
        match self.records(module, path, key, token).await {
            Ok((records, truncated)) => Outcome::Ok { data: json!({ key: records, "truncated": truncated }) },
            Err(outcome) => outcome,
        }
    }

    /// The first page of list `path` of `module`: the array under `key`, and whether there were more.
    async fn records(&self, module: Module, path: &str, key: &str, token: &str) -> Result<(Vec<Value>, bool), Outcome> {
        let page = self.get(module, &format!("{path}?limit={LOOKUP_LIMIT}"), token).await?;
        let more = page.get("next").is_some_and(|n| !n.is_null());
        match page.get(key).and_then(Value::as_array) {
            Some(records) => Ok((records.clone(), more)),
            None => Err(Outcome::Failed { detail: format!("the {module} module answered without `{key}`") }),
        }
    }

    /// `GET path` of `module` with the caller's token: the JSON body of a success, the problem of a
    /// refusal, or what failed.
    async fn get(&self, module: Module, path: &str, token: &str) -> Result<Value, Outcome> {
        let Some(base) = self.modules.get(&module) else {
            return Err(Outcome::Failed { detail: format!("the {module} module is not configured") });
        };
        let unreachable = |e: reqwest::Error| {
            tracing::warn!(module = %module, error = %e, "a copilot lookup failed");
            Outcome::Failed { detail: format!("the {module} module cannot be reached") }
        };
        let response = self
            .http
            .get(format!("{}{path}", base.trim_end_matches('/')))
            .bearer_auth(token)
            .timeout(LOOKUP_TIMEOUT)
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status();
        let body: Value = response.json().await.map_err(unreachable)?;
        if status.is_success() {
            Ok(body)
        } else if status.is_client_error() {
            Err(Outcome::Refused { problem: body })
        } else {
            let detail = body.get("detail").and_then(Value::as_str).unwrap_or("it failed").to_owned();
            Err(Outcome::Failed { detail: format!("the {module} module answered {status}: {detail}") })
        }
    }
}

/// Refuses arguments that are not an object, or that name a property the tool's schema does not.
pub(crate) fn check_arguments(tool: &str, arguments: &Value) -> Result<(), String> {
    let Some(spec) = TOOLS.iter().find(|t| t.name == tool) else {
        return Err(format!("there is no tool `{tool}`"));
    };
    let Some(given) = arguments.as_object() else {
        return Err(format!("the arguments of `{tool}` must be a JSON object"));
    };
    let schema = (spec.parameters)();
    let known = schema.get("properties").and_then(Value::as_object);
    match given.keys().find(|k| !known.is_some_and(|known| known.contains_key(*k))) {
        Some(extra) => Err(format!("`{tool}` takes no argument `{}`", extra.chars().take(64).collect::<String>())),
        None => Ok(()),
    }
}

/// Whether `record`'s `name` contains `wanted`, ignoring case (any record when nothing is wanted).
fn matches(record: &Value, wanted: Option<&str>) -> bool {
    let Some(wanted) = wanted else { return true };
    let name = record.get("name").and_then(Value::as_str).unwrap_or_default();
    name.to_lowercase().contains(&wanted.to_lowercase())
}

/// The simulation, if `access` allows `ai:simulation:run`: its figures and explanation.
async fn simulate(access: &Access, args: &Value) -> Outcome {
    if let Err(refusal) = access.require(crate::ai::SIMULATE, None) {
        return Outcome::Refused { problem: serde_json::to_value(refusal.problem()).unwrap_or_default() };
    }
    let inputs: simulation::Inputs = match serde_json::from_value(args.clone()) {
        Ok(inputs) => inputs,
        Err(e) => return Outcome::Failed { detail: format!("the simulation's inputs: {e}") },
    };
    if let Err(e) = inputs.validate() {
        let problem = e.problem();
        let at = problem.errors.first().map(|e| format!(" ({} {})", e.path, e.message)).unwrap_or_default();
        return Outcome::Failed { detail: format!("the simulation's inputs: {}{at}", problem.detail) };
    }
    let ran = tokio::task::spawn_blocking(move || {
        let outcome = simulation::simulate(&inputs);
        let explanation = simulation::explain(&inputs, &outcome);
        (outcome, explanation)
    })
    .await;
    match ran {
        Ok((outcome, explanation)) => {
            Outcome::Ok { data: json!({ "simulation": outcome, "explanation": explanation }) }
        }
        Err(e) => Outcome::Failed { detail: format!("the simulation failed: {e}") },
    }
}
