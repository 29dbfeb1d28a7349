//! `POST /mcp`: the Model Context Protocol (revision 2025-06-18) over streamable HTTP, as a small serde
//! subset of JSON-RPC 2.0. Every request is answered with one JSON body (no SSE stream, no sessions);
//! notifications and responses sent by the client get `202` without a body; JSON-RPC errors travel with
//! HTTP 200. The endpoint serves user tokens (a service acts in a company as that company's agent) and
//! decides each tool's permission itself: `tools/list` lists only the tools the caller may call, and
//! `tools/call` of any other is the JSON-RPC error [`REFUSED`] with the problem (DESIGN.md §6) in `data`.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use kisum_client::errors::ErrorCode;
use kisum_client::server::{ApiError, MAX_BODY_BYTES};
use kisum_client::{Caller, Kisum, Refusal};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::ai::{ASK, Ai};
use crate::copilot::tools::{self, Outcome, TOOLS, ToolCall};

/// The protocol revision spoken.
const PROTOCOL_VERSION: &str = "2025-06-18";

const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const METHOD_NOT_FOUND: i64 = -32601;
const INVALID_PARAMS: i64 = -32602;
/// A refusal (a server error code of JSON-RPC's reserved range): the problem is in `data`.
const REFUSED: i64 = -32001;

const COPILOT_ASK: &str = "copilot_ask";

/// `copilot_ask`, then the copilot's own tools.
fn tools() -> impl Iterator<Item = (&'static str, &'static str, Value)> {
    let ask = (
        COPILOT_ASK,
        ASK,
        json!({
            "name": COPILOT_ASK,
            "description": "Asks the copilot a question; it looks things up with your access (counts against \
                the company's ai.monthly_requests)",
            "inputSchema": {
                "type": "object",
                "properties": { "question": { "type": "string", "description": "The question" } },
                "required": ["question"],
                "additionalProperties": false
            }
        }),
    );
    std::iter::once(ask).chain(TOOLS.iter().map(|t| (t.name, t.permission, tools::describe(t))))
}

/// A JSON-RPC id: a string or a number, or null where the request's could not be read.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
enum Id {
    Number(serde_json::Number),
    Text(String),
    Null,
}

/// A message the client sent.
#[derive(Debug)]
enum Message {
    /// A request, to be answered.
    Request { id: Id, method: String, params: Map<String, Value> },
    /// A notification or a response: nothing to answer.
    Accepted,
}

#[derive(Debug, Serialize)]
struct Reply {
    jsonrpc: &'static str,
    id: Id,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<RpcError>,
}

#[derive(Debug, Serialize)]
struct RpcError {
    code: i64,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Value>,
}

impl RpcError {
    fn new(code: i64, message: impl Into<String>) -> RpcError {
        RpcError { code, message: message.into(), data: None }
    }

    /// A refusal or a rejected argument, with its problem in `data`.
    fn from_api(error: &ApiError) -> RpcError {
        let code = if error.code() == ErrorCode::ValidationFailed { INVALID_PARAMS } else { REFUSED };
        let mut problem = error.problem().clone();
        if problem.request_id.is_none() {
            problem.request_id = kisum_client::server::request_id::current();
        }
        RpcError { code, message: problem.detail.clone(), data: serde_json::to_value(problem).ok() }
    }
}

impl Reply {
    fn result(id: Id, result: Value) -> Reply {
        Reply { jsonrpc: "2.0", id, result: Some(result), error: None }
    }

    fn error(id: Id, error: RpcError) -> Reply {
        Reply { jsonrpc: "2.0", id, result: None, error: Some(error) }
    }
}

#[derive(Debug, Deserialize)]
struct CallParams {
    name: String,
    #[serde(default)]
    arguments: Map<String, Value>,
}

/// The module a company must be entitled to for the endpoint.
const AI_MODULE: &str = "ai";

/// The endpoint.
pub(crate) async fn endpoint(
    State(ai): State<Arc<Ai>>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if caller.company().is_none() {
        return ApiError::new(ErrorCode::Forbidden, "the MCP endpoint serves user tokens").into_response();
    }
    // The company must be entitled to the AI module before any JSON-RPC is read (API.md §4).
    let kisum = &ai.kisum;
    let granted = match kisum.access_of(&caller).await {
        Ok(granted) => granted,
        Err(refusal) => return crate::refused(&refusal).into_response(),
    };
    if let Some(reason) = granted.snapshot.denies_all() {
        return crate::refused(&Refusal::of_deny(reason, ASK, None)).into_response();
    }
    if !granted.entitlements.modules.iter().any(|m| m == AI_MODULE) {
        return ApiError::new(ErrorCode::NotEntitled, "the company is not entitled to module `ai`")
            .with_required(AI_MODULE)
            .into_response();
    }
    if let Some(version) = headers.get("mcp-protocol-version")
        && version != PROTOCOL_VERSION
    {
        let reply = Reply::error(
            Id::Null,
            RpcError::new(
                INVALID_REQUEST,
                format!("unsupported MCP-Protocol-Version; this server speaks {PROTOCOL_VERSION}"),
            ),
        );
        return (StatusCode::BAD_REQUEST, Json(reply)).into_response();
    }
    let bytes = match body {
        Ok(bytes) => bytes,
        Err(BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_))) => {
            return ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("the body is larger than {MAX_BODY_BYTES} bytes"),
            )
            .into_response();
        }
        Err(other) => return ApiError::invalid("", other.body_text()).into_response(),
    };
    let (id, method, params) = match parse(&bytes) {
        Ok(Message::Request { id, method, params }) => (id, method, params),
        Ok(Message::Accepted) => return StatusCode::ACCEPTED.into_response(),
        Err((id, error)) => return Json(Reply::error(id, error)).into_response(),
    };
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.get(7..))
        .unwrap_or_default()
        .trim()
        .to_owned();
    match answer(&ai, kisum, &caller, &token, &method, params).await {
        Ok(Ok(result)) => Json(Reply::result(id, result)).into_response(),
        Ok(Err(error)) => Json(Reply::error(id, error)).into_response(),
        Err(failure) => failure.into_response(),
    }
}

/// Whether `bytes` is one JSON-RPC message the endpoint acts on (for the fuzz targets).
pub(crate) fn accepts(bytes: &[u8]) -> bool {
    parse(bytes).is_ok()
}

/// Reads one JSON-RPC message; what cannot be read is the error to answer, with the id to answer it under.
fn parse(bytes: &[u8]) -> Result<Message, (Id, RpcError)> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| (Id::Null, RpcError::new(PARSE_ERROR, format!("the body is not JSON: {e}"))))?;
    let Value::Object(mut object) = value else {
        return Err((
            Id::Null,
            RpcError::new(INVALID_REQUEST, "a message is one JSON object (MCP 2025-06-18 has no batches)"),
        ));
    };
    let id = match object.remove("id") {
        None => None,
        Some(Value::Number(n)) => Some(Id::Number(n)),
        Some(Value::String(s)) => Some(Id::Text(s)),
        Some(_) => return Err((Id::Null, RpcError::new(INVALID_REQUEST, "`id` is a string or a number"))),
    };
    let invalid = |id: Option<Id>, message: &str| (id.unwrap_or(Id::Null), RpcError::new(INVALID_REQUEST, message));
    if object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(invalid(id, "`jsonrpc` must be \"2.0\""));
    }
    match (object.remove("method"), id) {
        (Some(Value::String(method)), Some(id)) => match object.remove("params") {
            None | Some(Value::Null) => Ok(Message::Request { id, method, params: Map::new() }),
            Some(Value::Object(params)) => Ok(Message::Request { id, method, params }),
            Some(_) => Err((id, RpcError::new(INVALID_PARAMS, "`params` is an object"))),
        },
        (Some(Value::String(_)), None) => Ok(Message::Accepted),
        (Some(_), id) => Err(invalid(id, "`method` is a string")),
        (None, Some(_)) if object.contains_key("result") || object.contains_key("error") => Ok(Message::Accepted),
        (None, id) => Err(invalid(id, "a request names a `method`")),
    }
}

/// The result of `method`, or its JSON-RPC error; `Err` for a failure answered over HTTP (access could not
/// be had: fail closed).
async fn answer(
    ai: &Ai,
    kisum: &Kisum,
    caller: &Caller,
    token: &str,
    method: &str,
    params: Map<String, Value>,
) -> Result<Result<Value, RpcError>, ApiError> {
    match method {
        "initialize" => Ok(Ok(json!({
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": { "tools": {} },
            "serverInfo": { "name": "kisum-ai", "title": "Kisum ai module", "version": env!("CARGO_PKG_VERSION") },
            "instructions": "Tools act in the company of your token; tools/list shows the ones you may call."
        }))),
        "ping" => Ok(Ok(json!({}))),
        "tools/list" => {
            let mut tools = Vec::new();
            for (_, permission, described) in self::tools() {
                if allowed(kisum, caller, permission).await?.is_ok() {
                    tools.push(described);
                }
            }
            Ok(Ok(json!({ "tools": tools })))
        }
        "tools/call" => call(ai, kisum, caller, token, params).await,
        other => Ok(Err(RpcError::new(METHOD_NOT_FOUND, format!("no method `{}`", truncated(other))))),
    }
}

async fn call(
    ai: &Ai,
    kisum: &Kisum,
    caller: &Caller,
    token: &str,
    params: Map<String, Value>,
) -> Result<Result<Value, RpcError>, ApiError> {
    let params: CallParams = match serde_json::from_value(Value::Object(params)) {
        Ok(params) => params,
        Err(e) => {
            return Ok(Err(RpcError::new(INVALID_PARAMS, format!("tools/call takes `name` and `arguments`: {e}"))));
        }
    };
    let Some((name, permission, _)) = tools().find(|(name, _, _)| *name == params.name) else {
        return Ok(Err(RpcError::new(INVALID_PARAMS, format!("no tool `{}`", truncated(&params.name)))));
    };
    let access = match allowed(kisum, caller, permission).await? {
        Ok(access) => access,
        Err(refusal) => return Ok(Err(RpcError::from_api(&crate::refused(&refusal)))),
    };
    let structured = if name == COPILOT_ASK {
        if let Some(extra) = params.arguments.keys().find(|k| *k != "question") {
            return Ok(Err(RpcError::new(
                INVALID_PARAMS,
                format!("`{name}` takes no argument `{}`", truncated(extra)),
            )));
        }
        let Some(question) = params.arguments.get("question").and_then(Value::as_str) else {
            return Ok(Err(RpcError::new(INVALID_PARAMS, "`copilot_ask` needs the string argument `question`")));
        };
        match ai.ask(&access, token, question).await {
            Ok(answer) => serde_json::to_value(answer).unwrap_or(Value::Null),
            Err(error) => return Ok(Err(RpcError::from_api(&error))),
        }
    } else {
        let arguments = Value::Object(params.arguments);
        if let Err(detail) = tools::check_arguments(name, &arguments) {
            return Ok(Err(RpcError::new(INVALID_PARAMS, detail)));
        }
        let call = ToolCall { id: "mcp".into(), name: name.into(), arguments };
        match ai.copilot.run(&access, token, &call).await {
            Outcome::Ok { data } => data,
            Outcome::Refused { problem } => {
                let message = problem.get("detail").and_then(Value::as_str).unwrap_or("refused").to_owned();
                return Ok(Err(RpcError { code: REFUSED, message, data: Some(problem) }));
            }
            Outcome::Failed { detail } => {
                return Ok(Ok(json!({ "content": [{ "type": "text", "text": detail }], "isError": true })));
            }
        }
    };
    Ok(Ok(json!({
        "content": [{ "type": "text", "text": structured.to_string() }],
        "structuredContent": structured,
        "isError": false
    })))
}

/// Whether `caller` may use `permission`: `Ok(Ok(access))`, or `Ok(Err(refusal))` for a denial (another
/// company's, not entitled, inactive, not granted); `Err` when access could not be had at all.
async fn allowed(
    kisum: &Kisum,
    caller: &Caller,
    permission: &str,
) -> Result<Result<kisum_client::Access, Refusal>, ApiError> {
    match kisum.decide(caller, permission, None, false).await {
        Ok(access) => Ok(Ok(access)),
        Err(refusal) => match refusal.code() {
            ErrorCode::Forbidden | ErrorCode::NotEntitled | ErrorCode::MembershipInactive | ErrorCode::NotFound => {
                Ok(Err(refusal))
            }
            _ => Err(crate::refused(&refusal)),
        },
    }
}

/// At most 64 characters of client input, for messages.
fn truncated(text: &str) -> String {
    text.chars().take(64).collect()
}
