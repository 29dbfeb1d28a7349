//! The ai module: the copilot — one-shot questions, conversations kept per user and company, tools that
//! look things up through the other modules' public APIs with the caller's token, and simulations —
//! whose every question and simulation counts against the company's limit `ai.monthly_requests` for the
//! calendar month (UTC); and an MCP endpoint ([`crate::mcp`]) offering the same tools.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, post};
use axum::{Json, Router};
use kisum_client::access::CompanyId;
use kisum_client::entitlements::Clock;
use kisum_client::errors::ErrorCode;
use kisum_client::server::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
use kisum_client::{Access, Kisum};
use serde::{Deserialize, Serialize};

use crate::copilot::planner::Message;
use crate::copilot::{Copilot, CopilotConfig, MAX_MESSAGES, MAX_TURN, Session, SessionSummary};
use crate::mcp::McpConfig;
use crate::records::{PageQuery, Repo};
use crate::usage::{ModuleDb, Usage};
use crate::{mcp, simulation};
use kisum_client::server::routes::Route;

pub(crate) const ASK: &str = "ai:copilot:ask";
pub(crate) const SIMULATE: &str = "ai:simulation:run";
const MONTHLY_REQUESTS: &str = "ai.monthly_requests";

/// The module's own permissions, then those of the tools' lookups (checked by the modules they call).
pub(crate) const PERMISSIONS: &[&str] = &[
    ASK,
    SIMULATE,
    "venue:venue:read",
    "artist:profile:read",
    "finance:invoice:read",
    "promoters:event:read",
    "touring:tour:read",
];

pub(crate) const ROUTES: &[Route] = &[
    Route {
        summary: "Asks the copilot one question (no conversation is kept): it looks things up with the \
            caller's access and answers; counts against `ai.monthly_requests` for the month",
        body: &[("question", "string")],
        ..Route::new("post", "/v1/copilot/ask", ASK)
    },
    Route {
        summary: "Starts a conversation with the copilot, kept for the caller in its company (counts nothing)",
        optional: &[("title", "string")],
        status: 201,
        ..Route::new("post", "/v1/copilot/sessions", ASK)
    },
    Route {
        summary: "The caller's own conversations in its company, newest last, a page at a time",
        query: crate::PAGE_QUERY,
        ..Route::new("get", "/v1/copilot/sessions", ASK)
    },
    Route {
        summary: "One of the caller's conversations with every message (tool calls and results included); \
            another user's is `404`",
        resource: Some("session"),
        ..Route::new("get", "/v1/copilot/sessions/{id}", ASK)
    },
    Route {
        summary: "Asks a question in a conversation: the copilot plans, calls its tools with the caller's \
            access and answers; the turn's messages are kept; counts against `ai.monthly_requests`",
        resource: Some("session"),
        body: &[("question", "string")],
        status: 201,
        ..Route::new("post", "/v1/copilot/sessions/{id}/messages", ASK)
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
        summary: "Model Context Protocol on the official SDK (rmcp; streamable HTTP, stateless, JSON answers; \
            protocols 2025-03-26 to 2026-07-28; without `MCP-Protocol-Version`, 2025-03-26) for user tokens of companies entitled to `ai`: `tools/list` lists \
            the tools the caller may call, `tools/call` checks the tool's permission (`x-kisum-also`); a \
            refusal is JSON-RPC error -32001 with the problem in `data`. Host and Origin are checked; a `401` \
            names the protected-resource metadata (RFC 9728)",
        permission: None,
        also: PERMISSIONS,
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
    /// The SDK the MCP endpoint decides each tool with.
    pub(crate) kisum: Kisum,
    pub(crate) copilot: Copilot,
    sessions: Repo<Session>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSession {
    title: Option<String>,
}

/// A turn of a conversation, as answered.
#[derive(Debug, Serialize)]
struct Said {
    session: String,
    answer: String,
    /// The messages this turn added: the question, tool calls and their results, the answer.
    messages: Vec<Message>,
    used: u64,
    limit: serde_json::Value,
}

#[derive(Debug, Serialize)]
struct Sessions {
    sessions: Vec<SessionSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
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
    /// The turn's messages: the question, tool calls and their results, the answer.
    messages: Vec<Message>,
    /// Requests counted this month, this one included.
    used: u64,
    /// The month's limit: a number or `"unlimited"`.
    limit: serde_json::Value,
}

pub(crate) async fn routes(
    kisum: &Kisum,
    clock: Arc<dyn Clock>,
    db: Option<&ModuleDb>,
    copilot: &CopilotConfig,
    mcp_config: &McpConfig,
) -> Result<Router, String> {
    let usage = match db {
        Some(db) => Usage::Stored(db.clone()),
        None => Usage::Memory(Mutex::default()),
    };
    // Conversations are made by users: none is seeded.
    let sessions = crate::records::open_unseeded(db, "ai.session").await?;
    let owners = crate::owners("session", sessions.clone());
    let state =
        Arc::new(Ai { usage, clock, kisum: kisum.clone(), copilot: Copilot::new(copilot), sessions: sessions.clone() });
    let guard = |permission| kisum.require(permission).owned_by(owners.clone());
    let router = Router::new()
        .route("/v1/copilot/ask", post(ask).route_layer(guard(ASK)))
        .route("/v1/copilot/sessions", post(start).route_layer(guard(ASK)))
        .route("/v1/copilot/sessions", get(list).route_layer(guard(ASK)))
        .route("/v1/copilot/sessions/{id}", get(one).route_layer(guard(ASK).on("session", "id")))
        .route("/v1/copilot/sessions/{id}/messages", post(say).route_layer(guard(ASK).on("session", "id")))
        .route("/v1/copilot/simulations", post(simulate).route_layer(guard(SIMULATE)))
        .with_state(state.clone());
    // Any valid token of an entitled company reaches the SDK's service; it decides each tool itself.
    let endpoint = Router::new()
        .nest_service("/mcp", mcp::service(state.clone(), mcp_config))
        .layer(axum::middleware::from_fn_with_state(state, mcp::entitled));
    Ok(router.merge(endpoint))
}

async fn ask(
    State(ai): State<Arc<Ai>>,
    access: Access,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Question>,
) -> ApiResult<Json<Answer>> {
    ai.ask(&access, bearer(&headers)?, &body.question).await.map(Json)
}

/// `POST /v1/copilot/sessions`: an empty conversation of the caller.
async fn start(
    State(ai): State<Arc<Ai>>,
    access: Access,
    ApiJson(body): ApiJson<NewSession>,
) -> ApiResult<(StatusCode, Json<Session>)> {
    let company = crate::company(&access)?;
    let owner = owner(&access)?;
    let title = match body.title {
        Some(title) => crate::name_field("/title", &title)?,
        None => "New conversation".to_owned(),
    };
    let created_at = ai.clock.now();
    let made = company.clone();
    let make = move |id| Session { id, company: made, owner, title, created_at, messages: Vec::new() };
    let session = ai.sessions.create(&company, None, Box::new(make)).await?;
    tracing::info!(company = %company, session = %session.id, "copilot session started");
    Ok((StatusCode::CREATED, Json(session)))
}

/// `GET /v1/copilot/sessions`: the caller's own.
async fn list(
    State(ai): State<Arc<Ai>>,
    access: Access,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<Json<Sessions>> {
    let company = crate::company(&access)?;
    let owner = owner(&access)?;
    let page = ai.sessions.page(&company, Some(&owner), page.window()?).await?;
    Ok(Json(Sessions { sessions: page.items.into_iter().map(SessionSummary::from).collect(), next: page.next }))
}

/// `GET /v1/copilot/sessions/{id}`: the caller's own, else `404` (as for another company's).
async fn one(State(ai): State<Arc<Ai>>, access: Access, ApiPath(id): ApiPath<String>) -> ApiResult<Json<Session>> {
    Ok(Json(ai.session_of(&access, &id).await?))
}

/// `POST /v1/copilot/sessions/{id}/messages`: a turn of the caller's conversation.
async fn say(
    State(ai): State<Arc<Ai>>,
    access: Access,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<Question>,
) -> ApiResult<(StatusCode, Json<Said>)> {
    let company = crate::company(&access)?;
    let question = question(&body.question)?;
    let token = bearer(&headers)?;
    let session = ai.session_of(&access, &id).await?;
    // Refused before anything is counted when a whole turn might not fit.
    if session.messages.len() + MAX_TURN > MAX_MESSAGES {
        return Err(crate::copilot::full());
    }
    let limit = crate::capacity(&access, MONTHLY_REQUESTS);
    let used = ai.count(&company, limit).await?;
    let turn = ai.copilot.turn(&access, token, &session.messages, question, ai.clock.now()).await?;
    // Appended to the conversation as it is now (another turn may have been kept meanwhile).
    let added = turn.messages.clone();
    let owner = session.owner.clone();
    let append = move |s: &mut Session| {
        if s.owner != owner {
            return Err(ApiError::not_found("not found"));
        }
        if s.messages.len() + added.len() > MAX_MESSAGES {
            return Err(crate::copilot::full());
        }
        s.messages.extend(added);
        Ok(())
    };
    ai.sessions.update(&company, &id, Box::new(append)).await?.ok_or_else(|| ApiError::not_found("not found"))?;
    tracing::info!(company = %company, session = %id, used, "copilot answered");
    let said =
        Said { session: id, answer: turn.answer, messages: turn.messages, used, limit: crate::limit_json(limit) };
    Ok((StatusCode::CREATED, Json(said)))
}

/// Whom a conversation belongs to: `user:maya`; or, for an agent acting for a user, the agent *for that
/// user* (`agent:copilot for user:maya`), so that one agent acting for two users never shows one the
/// other's conversations.
fn owner(access: &Access) -> Result<String, ApiError> {
    let principal = access
        .caller()
        .principal()
        .ok_or_else(|| ApiError::new(ErrorCode::Forbidden, "conversations belong to users and agents"))?;
    let claims = access.caller().claims().claims();
    Ok(match &claims.act {
        Some(_) => format!("{principal} for user:{}", claims.sub),
        None => principal.to_string(),
    })
}

/// The caller's bearer token, which the layer verified: the tools reach the modules with it.
fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(kisum_client::bearer_token)
        .ok_or_else(|| ApiError::new(ErrorCode::Unauthenticated, "a bearer token is required"))
}

/// A question: trimmed, 1 to [`MAX_QUESTION_CHARS`] characters.
fn question(text: &str) -> Result<String, ApiError> {
    let question = text.trim();
    if question.is_empty() {
        return Err(ApiError::invalid("/question", "must not be empty"));
    }
    if question.chars().count() > MAX_QUESTION_CHARS {
        return Err(ApiError::invalid("/question", format!("must be at most {MAX_QUESTION_CHARS} characters")));
    }
    Ok(question.to_owned())
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
    /// Answers `question` for `access` (allowed `ai:copilot:ask`), its tools reaching the modules with
    /// `token`, counting it against the company's month; past the limit nothing is counted and the answer
    /// is `403 LIMIT_EXCEEDED`.
    pub(crate) async fn ask(&self, access: &Access, token: &str, question: &str) -> Result<Answer, ApiError> {
        let company = crate::company(access)?;
        let question = self::question(question)?;
        let limit = crate::capacity(access, MONTHLY_REQUESTS);
        let used = self.count(&company, limit).await?;
        let turn = self.copilot.turn(access, token, &[], question, self.clock.now()).await?;
        tracing::info!(company = %company, used, "copilot asked");
        Ok(Answer { answer: turn.answer, messages: turn.messages, used, limit: crate::limit_json(limit) })
    }

    /// The caller's own session `id`: another principal's is `404`, as another company's is.
    async fn session_of(&self, access: &Access, id: &str) -> Result<Session, ApiError> {
        let company = crate::company(access)?;
        let owner = owner(access)?;
        match self.sessions.get(&company, id).await? {
            Some(session) if session.owner == owner => Ok(session),
            _ => Err(ApiError::not_found("not found")),
        }
    }

    /// Counts one request of the caller's company against its `ai.monthly_requests` (an MCP tool call).
    pub(crate) async fn count_for(&self, access: &Access) -> Result<u64, ApiError> {
        let company = crate::company(access)?;
        self.count(&company, crate::capacity(access, MONTHLY_REQUESTS)).await
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
}

/// `YYYY-MM` of an RFC 3339 instant in UTC.
fn month(instant: &str) -> String {
    let date = instant.split('T').next().unwrap_or(instant);
    date.rsplit_once('-').map_or(date, |(month, _)| month).to_owned()
}
