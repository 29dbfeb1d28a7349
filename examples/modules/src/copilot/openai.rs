//! The production planner: an OpenAI-compatible chat-completions provider (`POST {base}/chat/completions`
//! with the model, the conversation and the tools as functions). The provider sees the questions, the
//! answers and what the tools gave — never a token. Any failure of the provider (unreachable, an error
//! status, an answer that is neither tool calls nor text) is `503 UPSTREAM_UNAVAILABLE`.

use std::time::Duration;

use async_trait::async_trait;
use kisum_client::Secret;
use kisum_client::errors::ErrorCode;
use kisum_client::server::ApiError;
use serde_json::{Value, json};

use super::planner::{Message, Planner, Role, Step};
use super::tools::{Tool, ToolCall};

/// How long the provider has to answer one step.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(60);
/// The most messages of a conversation sent, the latest ones (with the system prompt before them).
const HISTORY: usize = 40;
/// The most characters of one tool result sent; past it the result is cut, and says so.
const MAX_TOOL_CONTENT: usize = 16_000;

const SYSTEM: &str = "You are Kisum's event-intelligence copilot for a live-music company. Answer from the \
    tools' results only; call a tool to look something up. When a tool was refused, say so and why (the \
    caller's access decides, not you). Amounts are in minor units of their currency.";

/// Where the provider is, which model, and the key it takes.
#[derive(Debug, Clone)]
pub(crate) struct OpenAi {
    pub(crate) http: reqwest::Client,
    /// The API's base URL, up to and without `/chat/completions` (`https://api.openai.com/v1`).
    pub(crate) base_url: String,
    pub(crate) model: String,
    pub(crate) api_key: Option<Secret>,
}

#[async_trait]
impl Planner for OpenAi {
    async fn next(&self, messages: &[Message], tools: &[&'static Tool]) -> Result<Step, ApiError> {
        let body = request(&self.model, messages, tools);
        let mut request = self
            .http
            .post(format!("{}/chat/completions", self.base_url.trim_end_matches('/')))
            .timeout(PROVIDER_TIMEOUT)
            .json(&body);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key.expose());
        }
        // reqwest's errors name the URL (which may hold credentials): logged here, never answered.
        let response = request.send().await.map_err(|e| {
            tracing::warn!(error = %e.without_url(), "the copilot's model provider cannot be reached");
            failed("cannot be reached")
        })?;
        let status = response.status();
        if !status.is_success() {
            return Err(failed(&format!("answered {status}")));
        }
        let answer: Value = response.json().await.map_err(|e| {
            tracing::warn!(error = %e.without_url(), "the copilot's model provider answered no JSON");
            failed("answered no JSON")
        })?;
        step(&answer)
    }
}

/// The chat-completions request for `messages` with `tools` as functions.
pub(crate) fn request(model: &str, messages: &[Message], tools: &[&'static Tool]) -> Value {
    // Earlier turns are sent as their questions and answers only: what a tool gave then was read with the
    // caller's access then, and the provider must not answer from it now (the caller may have lost it).
    let current = messages.iter().rposition(|m| m.role == Role::User).unwrap_or(0);
    let messages: Vec<&Message> = messages
        .iter()
        .enumerate()
        .filter(|(i, m)| *i >= current || (m.role != Role::Tool && m.tool_calls.is_empty()))
        .map(|(_, m)| m)
        .collect();
    let start = messages.len().saturating_sub(HISTORY);
    // A cut never starts on a tool result whose call was cut off.
    let start = messages
        .get(start..)
        .and_then(|kept| kept.iter().position(|m| m.role == Role::User))
        .map_or(start, |i| start + i);
    let mut sent = vec![json!({ "role": "system", "content": SYSTEM })];
    sent.extend(messages.get(start..).unwrap_or_default().iter().map(|m| message(m)));
    let functions: Vec<Value> = tools
        .iter()
        .map(|t| {
            json!({ "type": "function", "function": {
                "name": t.name, "description": t.description, "parameters": (t.parameters)()
            }})
        })
        .collect();
    json!({ "model": model, "messages": sent, "tools": functions, "tool_choice": "auto" })
}

fn message(m: &Message) -> Value {
    match m.role {
        Role::User => json!({ "role": "user", "content": m.content }),
        Role::Assistant if m.tool_calls.is_empty() => json!({ "role": "assistant", "content": m.content }),
        Role::Assistant => json!({
            "role": "assistant",
            "content": null,
            "tool_calls": m.tool_calls.iter().map(|c| json!({
                "id": c.id,
                "type": "function",
                "function": { "name": c.name, "arguments": c.arguments.to_string() }
            })).collect::<Vec<_>>()
        }),
        Role::Tool => {
            let mut content = m.result.as_ref().map_or_else(|| m.content.clone(), |r| json!(r).to_string());
            if let Some((cut, _)) = content.char_indices().nth(MAX_TOOL_CONTENT) {
                content.truncate(cut);
                content.push_str("… (cut: the result was longer)");
            }
            json!({ "role": "tool", "tool_call_id": m.tool_call_id, "content": content })
        }
    }
}

/// The step in a chat-completions answer: its tool calls, or else its text.
pub(crate) fn step(answer: &Value) -> Result<Step, ApiError> {
    let message =
        answer.pointer("/choices/0/message").ok_or_else(|| failed("answered without `choices[0].message`"))?;
    let calls = message.get("tool_calls").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    if !calls.is_empty() {
        let calls = calls
            .iter()
            .map(|c| {
                let id =
                    c.get("id").and_then(Value::as_str).ok_or_else(|| failed("answered a tool call without `id`"))?;
                let name = c
                    .pointer("/function/name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| failed("answered a tool call without a function name"))?;
                // Arguments come as a JSON text; one that is not JSON is passed on as is and the tool refuses it.
                let arguments = c.pointer("/function/arguments").and_then(Value::as_str).unwrap_or("{}");
                let arguments = serde_json::from_str(arguments).unwrap_or_else(|_| Value::String(arguments.to_owned()));
                Ok(ToolCall { id: id.to_owned(), name: name.to_owned(), arguments })
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        return Ok(Step::Call(calls));
    }
    match message.get("content").and_then(Value::as_str) {
        Some(text) if !text.trim().is_empty() => Ok(Step::Answer(text.to_owned())),
        _ => Err(failed("answered neither tool calls nor text")),
    }
}

fn failed(what: &str) -> ApiError {
    tracing::warn!(provider = what, "the copilot's model provider failed");
    ApiError::new(ErrorCode::UpstreamUnavailable, format!("the copilot's model provider {what}; retry later"))
}
