//! The ai module: the copilot, whose every question counts against the company's limit
//! `ai.monthly_requests` for the calendar month (UTC), and an MCP endpoint ([`crate::mcp`]) offering the
//! copilot and read-only tools over a small canned copy of the other modules' seed data (this module does
//! not read them).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use kisum_client::access::CompanyId;
use kisum_client::entitlements::Clock;
use kisum_client::server::{ApiError, ApiJson, ApiResult};
use kisum_client::{Access, Kisum};
use serde::{Deserialize, Serialize};

use crate::usage::{ModuleDb, Usage};
use crate::{mcp, simulation};
use kisum_client::server::routes::Route;

pub(crate) const ASK: &str = "ai:copilot:ask";
const SIMULATE: &str = "ai:simulation:run";
const MONTHLY_REQUESTS: &str = "ai.monthly_requests";

pub(crate) const PERMISSIONS: &[&str] = &[ASK, SIMULATE, mcp::LIST_INVOICES, mcp::LIST_EVENTS, mcp::LIST_TOURS];

pub(crate) const ROUTES: &[Route] = &[
    Route {
        summary: "Asks the copilot; each call counts against `ai.monthly_requests` for the month",
        body: &[("question", "string")],
        ..Route::new("post", "/v1/copilot/ask", ASK)
    },
    Route {
        summary: "Simulates an event's ticket sales and P&L (seeded Monte Carlo: capacity, price tiers, \
            sell-through and its spread, the sales curve, costs, FX) as percentiles with an explanation; the \
            same inputs and seed give the same figures; counts against `ai.monthly_requests`",
        body: &[
            ("capacity", "integer"),
            ("tiers", "array"),
            ("currency", "string"),
            ("fixed_costs", "integer"),
            ("sell_through", "object"),
            ("days_on_sale", "integer"),
        ],
        optional: &[
            ("variable_cost", "integer"),
            ("curve", "string"),
            ("fx", "object"),
            ("runs", "integer"),
            ("seed", "integer"),
        ],
        ..Route::new("post", "/v1/copilot/simulations", SIMULATE)
    },
    Route {
        summary: "Model Context Protocol (JSON-RPC 2.0, streamable HTTP, JSON answers) for user tokens: \
            `tools/list` lists the tools the caller may call, `tools/call` checks the tool's permission \
            (`x-kisum-also`); a refusal is JSON-RPC error -32001 with the problem in `data`",
        permission: None,
        also: &[ASK, mcp::LIST_INVOICES, mcp::LIST_EVENTS, mcp::LIST_TOURS],
        ..Route::new("post", "/mcp", ASK)
    },
];

/// The longest question, in characters.
const MAX_QUESTION_CHARS: usize = 4000;

/// The ai module's state.
pub(crate) struct Ai {
    /// Requests counted per company and month (`YYYY-MM`).
    usage: Usage,
    clock: Arc<dyn Clock>,
    /// The companies with canned data for the MCP tools.
    seeded: BTreeSet<CompanyId>,
    /// The SDK the MCP endpoint decides each tool with.
    pub(crate) kisum: Kisum,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Question {
    question: String,
}

/// The copilot's answer.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Answer {
    answer: String,
    /// Requests counted this month, this one included.
    used: u64,
    /// The month's limit: a number or `"unlimited"`.
    limit: serde_json::Value,
}

pub(crate) async fn routes(
    kisum: &Kisum,
    companies: &[CompanyId],
    clock: Arc<dyn Clock>,
    db: Option<&ModuleDb>,
) -> Result<Router, String> {
    let usage = match db {
        Some(db) => Usage::Stored(db.clone()),
        None => Usage::Memory(Mutex::default()),
    };
    let state = Arc::new(Ai { usage, clock, seeded: companies.iter().cloned().collect(), kisum: kisum.clone() });
    // No route names a record of this module.
    let router = Router::new()
        .route("/v1/copilot/ask", post(ask).route_layer(kisum.require(ASK)))
        .route("/v1/copilot/simulations", post(simulate).route_layer(kisum.require(SIMULATE)))
        // Any valid token reaches the endpoint; it serves user tokens and decides each tool itself.
        .route("/mcp", post(mcp::endpoint))
        .with_state(state);
    Ok(router)
}

async fn ask(State(ai): State<Arc<Ai>>, access: Access, ApiJson(body): ApiJson<Question>) -> ApiResult<Json<Answer>> {
    ai.ask(&access, &body.question).await.map(Json)
}

/// A simulation's answer: the figures, what they mean, and the month's count.
#[derive(Debug, Serialize)]
struct Simulated {
    simulation: simulation::Outcome,
    explanation: String,
    /// Requests counted this month, this one included.
    used: u64,
    /// The month's limit: a number or `"unlimited"`.
    limit: serde_json::Value,
}

/// `POST /v1/copilot/simulations`: validated first (a refused input counts nothing), then counted
/// against the month, then run off the async workers (100,000 runs take a few milliseconds).
async fn simulate(
    State(ai): State<Arc<Ai>>,
    access: Access,
    ApiJson(inputs): ApiJson<simulation::Inputs>,
) -> ApiResult<Json<Simulated>> {
    let company = crate::company(&access)?;
    inputs.validate()?;
    let limit = crate::capacity(&access, MONTHLY_REQUESTS);
    let used = ai.count(&company, limit).await?;
    let (outcome, explanation) = tokio::task::spawn_blocking(move || {
        let outcome = simulation::simulate(&inputs);
        let explanation = simulation::explain(&inputs, &outcome);
        (outcome, explanation)
    })
    .await
    .map_err(|e| ApiError::new(kisum_client::errors::ErrorCode::Internal, format!("the simulation failed: {e}")))?;
    tracing::info!(company = %company, used, runs = outcome.runs, "simulation run");
    Ok(Json(Simulated { simulation: outcome, explanation, used, limit: crate::limit_json(limit) }))
}

impl Ai {
    /// Answers `question` for `access` (allowed `ai:copilot:ask`), counting it against the company's
    /// month; past the limit nothing is counted and the answer is `403 LIMIT_EXCEEDED`.
    pub(crate) async fn ask(&self, access: &Access, question: &str) -> Result<Answer, ApiError> {
        let company = crate::company(access)?;
        let question = question.trim();
        if question.is_empty() {
            return Err(ApiError::invalid("/question", "must not be empty"));
        }
        if question.chars().count() > MAX_QUESTION_CHARS {
            return Err(ApiError::invalid("/question", format!("must be at most {MAX_QUESTION_CHARS} characters")));
        }
        let limit = crate::capacity(access, MONTHLY_REQUESTS);
        let used = self.count(&company, limit).await?;
        tracing::info!(company = %company, used, "copilot asked");
        Ok(Answer {
            answer: format!(
                "You asked: \"{question}\". This reference copilot has no model behind it; \
                 it answers every question the same way, and counted this one."
            ),
            used,
            limit: crate::limit_json(limit),
        })
    }

    /// Counts one request of `company` in the current month (UTC, by the clock), unless that would pass
    /// `limit` (`None`: unlimited). Returns the month's count with it.
    async fn count(&self, company: &CompanyId, limit: Option<u64>) -> Result<u64, ApiError> {
        let month = month(&self.clock.now().to_string());
        match self.usage.count(company, &month, limit).await? {
            Some(used) => Ok(used),
            None => Err(crate::limit_exceeded(
                MONTHLY_REQUESTS,
                format!("the company has used its {} copilot requests of {month}", limit.unwrap_or(0)),
            )),
        }
    }

    /// The canned records of `company` for the MCP tool `tool` (none for a company not seeded).
    pub(crate) fn canned(&self, tool: &str, company: &CompanyId) -> serde_json::Value {
        if !self.seeded.contains(company) {
            return serde_json::json!([]);
        }
        let id = format!("{company}-1");
        match tool {
            "list_invoices" => serde_json::json!([
                { "id": id, "company": company, "currency": "EUR", "amount": 125_000, "status": "draft" }
            ]),
            "list_events" => serde_json::json!([
                { "id": id, "company": company, "name": format!("{company} opening night"), "starts_at": "2026-06-01T19:00:00Z" }
            ]),
            "list_tours" => {
                serde_json::json!([{ "id": id, "company": company, "name": format!("{company} spring tour") }])
            }
            _ => serde_json::json!([]),
        }
    }
}

/// `YYYY-MM` of an RFC 3339 instant in UTC.
fn month(instant: &str) -> String {
    let date = instant.split('T').next().unwrap_or(instant);
    date.rsplit_once('-').map_or(date, |(month, _)| month).to_owned()
}
