//! The copilot of the ai module: a conversation loop in which a planner picks tools, the tools run with
//! the caller's access (lookups through the modules' public APIs with the caller's token, the
//! simulation here), and the planner answers from what they gave. Conversations are kept per user and
//! company ([`Session`]), in the modules' database when there is one.

pub(crate) mod openai;
pub(crate) mod planner;
pub(crate) mod tools;

use std::collections::BTreeMap;
use std::sync::Arc;

use kisum_client::access::Timestamp;
use kisum_client::errors::ErrorCode;
use kisum_client::server::ApiError;
use kisum_client::{Access, Secret};
use serde::{Deserialize, Serialize};

use crate::Module;
use crate::records::Record;
use planner::{Message, Planner, Role, Rules, Step};
use tools::{Reach, TOOLS, Tool};

/// Planner rounds in one turn (each may call several tools) before the copilot answers with what it has.
const MAX_ROUNDS: usize = 4;
/// Tool calls in one round, at most.
const MAX_CALLS: usize = 8;
/// Messages a conversation holds, at most: past it, a new session is needed.
pub(crate) const MAX_MESSAGES: usize = 400;
/// The most messages one turn adds: the question, each round's calls and their results, the answer.
pub(crate) const MAX_TURN: usize = 2 + MAX_ROUNDS * (1 + MAX_CALLS);

/// How the copilot plans and where its tools find the other modules.
#[derive(Debug, Clone)]
pub struct CopilotConfig {
    /// The base URL of each module the tools look things up in (`http://127.0.0.1:7412` for venue). A
    /// module left out makes its tool fail with a message saying so.
    pub modules: BTreeMap<Module, String>,
    /// The HTTP client of the lookups and the provider (its CA bundle for TLS deployments).
    pub http: reqwest::Client,
    /// Who plans.
    pub planner: PlannerConfig,
}

/// The copilot's planner.
#[derive(Debug, Clone, Default)]
pub enum PlannerConfig {
    /// Intent rules over the question: deterministic, no network (the default).
    #[default]
    Rules,
    /// An OpenAI-compatible chat-completions API: `base_url` up to `/chat/completions`
    /// (`https://api.openai.com/v1`), the `model`, and the API key sent as a bearer token.
    OpenAi {
        /// Up to and without `/chat/completions`.
        base_url: String,
        /// The model asked for (`gpt-4o-mini`).
        model: String,
        /// Sent as `Authorization: Bearer …`; `None` for a provider that takes none (a local server).
        api_key: Option<Secret>,
    },
}

impl CopilotConfig {
    /// The modules on loopback at their default ports, plus `offset` (as the one command serves them),
    /// and the rules planner.
    pub fn local(offset: u16) -> CopilotConfig {
        let modules = Module::ALL
            .into_iter()
            .map(|m| (m, format!("http://127.0.0.1:{}", m.default_port().saturating_add(offset))))
            .collect();
        CopilotConfig { modules, http: reqwest::Client::new(), planner: PlannerConfig::Rules }
    }
}

impl Default for CopilotConfig {
    fn default() -> CopilotConfig {
        CopilotConfig::local(0)
    }
}

/// The copilot as the ai module's handlers use it.
pub(crate) struct Copilot {
    planner: Arc<dyn Planner>,
    reach: Reach,
}

/// One turn: the messages it added (the question, tool calls and results, the answer) and the answer.
#[derive(Debug)]
pub(crate) struct Turn {
    pub(crate) messages: Vec<Message>,
    pub(crate) answer: String,
}

impl Copilot {
    pub(crate) fn new(config: &CopilotConfig) -> Copilot {
        let planner: Arc<dyn Planner> = match &config.planner {
            PlannerConfig::Rules => Arc::new(Rules),
            PlannerConfig::OpenAi { base_url, model, api_key } => Arc::new(openai::OpenAi {
                http: config.http.clone(),
                base_url: base_url.clone(),
                model: model.clone(),
                api_key: api_key.clone(),
            }),
        };
        Copilot { planner, reach: Reach { http: config.http.clone(), modules: config.modules.clone() } }
    }

    /// Runs one tool for `access` (the MCP endpoint's `tools/call`).
    pub(crate) async fn run(&self, access: &Access, token: &str, call: &tools::ToolCall) -> tools::Outcome {
        self.reach.run(access, token, call).await
    }

    /// Answers `question` after `history` for `access`, the tools reaching the modules with `token`.
    pub(crate) async fn turn(
        &self,
        access: &Access,
        token: &str,
        history: &[Message],
        question: String,
        now: Timestamp,
    ) -> Result<Turn, ApiError> {
        let tools: Vec<&'static Tool> = TOOLS.iter().collect();
        let mut conversation = history.to_vec();
        conversation.push(Message::user(question, now));
        let first_new = history.len();
        for _ in 0..MAX_ROUNDS {
            match self.planner.next(&conversation, &tools).await? {
                Step::Answer(answer) => {
                    conversation.push(Message::answer(answer.clone(), now));
                    return Ok(Turn { messages: conversation.split_off(first_new), answer });
                }
                Step::Call(mut calls) => {
                    calls.truncate(MAX_CALLS);
                    conversation.push(Message::calls(calls.clone(), now));
                    for call in &calls {
                        let result = self.reach.run(access, token, call).await;
                        tracing::info!(tool = %call.name, outcome = outcome_name(&result), "copilot tool called");
                        conversation.push(Message::result(call, result, now));
                    }
                }
            }
        }
        let answer = "I could not finish looking this up in one turn; ask again, more narrowly.".to_owned();
        conversation.push(Message::answer(answer.clone(), now));
        Ok(Turn { messages: conversation.split_off(first_new), answer })
    }
}

fn outcome_name(outcome: &tools::Outcome) -> &'static str {
    match outcome {
        tools::Outcome::Ok { .. } => "ok",
        tools::Outcome::Refused { .. } => "refused",
        tools::Outcome::Failed { .. } => "failed",
    }
}

/// A conversation: its owner (who started it, in its company) and its messages.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Session {
    pub(crate) id: String,
    pub(crate) company: kisum_client::access::CompanyId,
    /// `user:maya`, or `agent:copilot for user:maya` for an agent acting for her.
    pub(crate) owner: String,
    pub(crate) title: String,
    pub(crate) created_at: Timestamp,
    pub(crate) messages: Vec<Message>,
}

impl Record for Session {
    fn parent(&self) -> Option<&str> {
        Some(&self.owner)
    }
}

/// A session as listed: no messages.
#[derive(Debug, Serialize)]
pub(crate) struct SessionSummary {
    pub(crate) id: String,
    pub(crate) title: String,
    pub(crate) created_at: Timestamp,
    pub(crate) messages: usize,
    /// The last question asked, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) last_question: Option<String>,
}

impl From<Session> for SessionSummary {
    fn from(s: Session) -> SessionSummary {
        let last_question = s.messages.iter().rev().find(|m| m.role == Role::User).map(|m| m.content.clone());
        SessionSummary { id: s.id, title: s.title, created_at: s.created_at, messages: s.messages.len(), last_question }
    }
}

/// `409 CONFLICT`: the conversation is full.
pub(crate) fn full() -> ApiError {
    ApiError::new(
        ErrorCode::Conflict,
        format!("this conversation is full (at most {MAX_MESSAGES} messages); start a new session"),
    )
}
