//! `/mcp`: the Model Context Protocol on the official Rust SDK (`rmcp`), streamable HTTP, stateless
//! (every request stands alone, so replicas need no shared session; clients of 2025-06-18 still
//! `initialize` first and get their version back), answered with one JSON body. In front of the SDK's
//! service, in this order:
//!
//! 1. `Kisum::layer` verifies the bearer token (`401` first, with `WWW-Authenticate` naming the
//!    protected-resource metadata of RFC 9728, [`metadata`]);
//! 2. [`entitled`] refuses service tokens and a company not entitled to module `ai` (`403 NOT_ENTITLED`,
//!    `required` `ai`) before any JSON-RPC is read;
//! 3. the SDK checks `Host` (DNS rebinding) and `Origin` against their allow-lists, and the body size.
//!
//! The tools are `copilot_ask` and the copilot's own ([`crate::copilot::tools`]): `tools/list` lists
//! those the caller may call (an agent acting for a user: what that user delegated to it), and
//! `tools/call` decides the tool's permission again; a refusal is JSON-RPC error [`REFUSED`] with the
//! problem (DESIGN.md §6) in `data`. Every `tools/call` that runs counts once against
//! `ai.monthly_requests`. Errors the SDK answers in plain text become problem+json.
//!
//! Tokens: the endpoint takes the platform's own access tokens (audience `kisum`, which every module
//! shares), and the lookup tools send the caller's token on to the platform's modules — never elsewhere.
//! A deployment whose MCP clients get tokens for the endpoint alone would exchange them instead (RFC 8693).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use kisum_client::errors::ErrorCode;
use kisum_client::server::{ApiError, MAX_BODY_BYTES};
use kisum_client::{Access, Caller, Kisum, Refusal};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ErrorCode as RpcCode, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Value, json};

use crate::ai::{ASK, Ai};
use crate::copilot::tools::{self, Outcome, TOOLS, Tool as CopilotTool, ToolCall};

/// A refusal (a server error code of JSON-RPC's reserved range): the problem is in `data`.
pub(crate) const REFUSED: i32 = -32001;

const COPILOT_ASK: &str = "copilot_ask";

/// The module a company must be entitled to for the endpoint.
const AI_MODULE: &str = "ai";

/// Where the MCP endpoint is reached, and who may reach it.
#[derive(Debug, Clone)]
pub struct McpConfig {
    /// The endpoint's public URL (`https://ai.example.com/mcp`): the `resource` of its RFC 9728 metadata.
    pub resource: String,
    /// The authorization servers that issue its tokens (Auth's issuer URL).
    pub authorization_servers: Vec<String>,
    /// `Host` values accepted (a name, or `name:port`); anything else is refused (DNS rebinding).
    pub allowed_hosts: Vec<String>,
    /// Browser origins accepted (`https://app.example.com:443`); a request with any other `Origin` is
    /// refused. Empty: every request that carries an `Origin` is refused (no browser calls the endpoint
    /// directly; the console talks to the modules from its server).
    pub allowed_origins: Vec<String>,
}

impl McpConfig {
    /// The endpoint on loopback at the ai module's default port plus `offset`, tokens from the Auth at
    /// `auth`; hosts `localhost`, `127.0.0.1`, `::1`.
    pub fn local(offset: u16, auth: &str) -> McpConfig {
        let port = crate::Module::Ai.default_port().saturating_add(offset);
        McpConfig {
            resource: format!("http://127.0.0.1:{port}/mcp"),
            authorization_servers: vec![auth.to_owned()],
            allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            allowed_origins: Vec::new(),
        }
    }
}

impl Default for McpConfig {
    fn default() -> McpConfig {
        McpConfig::local(0, "http://127.0.0.1:7400")
    }
}

/// The SDK's streamable HTTP service for `ai`, configured by `config`.
pub(crate) fn service(ai: Arc<Ai>, config: &McpConfig) -> StreamableHttpService<KisumMcp, LocalSessionManager> {
    let settings = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .with_allowed_hosts(config.allowed_hosts.clone())
        .with_allowed_origins(config.allowed_origins.clone())
        .enforce_origin_validation()
        .with_max_request_body_bytes(MAX_BODY_BYTES);
    StreamableHttpService::new(move || Ok(KisumMcp { ai: ai.clone() }), Arc::default(), settings)
}

/// The RFC 9728 protected-resource metadata of the endpoint.
pub(crate) fn metadata(config: &McpConfig) -> Value {
    json!({
        "resource": config.resource,
        "authorization_servers": config.authorization_servers,
        "bearer_methods_supported": ["header"],
        "resource_name": "Kisum ai module (Model Context Protocol)",
        "resource_documentation": "https://kisum.example/docs/modules#mcp"
    })
}

/// The metadata's URL for an endpoint at `resource` (RFC 9728 §3.1: the well-known path inserted
/// before the resource's path).
pub(crate) fn metadata_url(resource: &str) -> String {
    match resource
        .split_once("://")
        .and_then(|(scheme, rest)| rest.split_once('/').map(|(host, path)| (scheme, host, path)))
    {
        Some((scheme, host, path)) => format!("{scheme}://{host}/.well-known/oauth-protected-resource/{path}"),
        None => format!("{}/.well-known/oauth-protected-resource", resource.trim_end_matches('/')),
    }
}

/// Before the SDK: a user token of a company entitled to module `ai` (API.md §4), else the refusal as
/// problem+json; after it: its plain-text errors (a refused `Host` or `Origin`, a wrong `Accept`) as
/// problem+json too.
pub(crate) async fn entitled(State(ai): State<Arc<Ai>>, request: Request, next: Next) -> Response {
    let Some(caller) = request.extensions().get::<Caller>().cloned() else {
        return ApiError::new(ErrorCode::Unauthenticated, "a bearer token is required").into_response();
    };
    if caller.company().is_none() {
        return ApiError::new(ErrorCode::Forbidden, "the MCP endpoint serves user tokens").into_response();
    }
    let granted = match ai.kisum.access_of(&caller).await {
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
    as_problem(next.run(request).await).await
}

/// A plain-text error of the SDK as problem+json (its JSON-RPC errors and results pass as they are).
async fn as_problem(response: Response) -> Response {
    let status = response.status();
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json") || v.contains("event-stream"));
    if !(status.is_client_error() || status.is_server_error()) || json {
        return response;
    }
    let code = match status {
        StatusCode::FORBIDDEN => ErrorCode::Forbidden,
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
        StatusCode::NOT_FOUND => ErrorCode::NotFound,
        s if s.is_server_error() => ErrorCode::Internal,
        _ => ErrorCode::ValidationFailed,
    };
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let detail = String::from_utf8_lossy(&text).trim().chars().take(300).collect::<String>();
    let detail = if detail.is_empty() { status.to_string() } else { format!("MCP: {detail}") };
    // The problem's `status` is the response's, as RFC 9457 wants (405 and 406 have no code of their own).
    let mut problem = kisum_client::errors::Problem::new(code, detail);
    problem.status = status.as_u16();
    let mut problem = ApiError::from_problem(problem).into_response();
    // Keep what the SDK said about methods (`Allow`).
    if let Some(allow) = parts.headers.get(header::ALLOW) {
        problem.headers_mut().insert(header::ALLOW, allow.clone());
    }
    *problem.status_mut() = status;
    problem
}

/// A `401` from the layer in front of `/mcp` names where to find how to get a token (RFC 9728 §5.1).
pub(crate) async fn challenge(resource: Arc<String>, request: Request, next: Next) -> Response {
    let endpoint = request.uri().path() == "/mcp" || request.uri().path().starts_with("/mcp/");
    let mut response = next.run(request).await;
    if endpoint && response.status() == StatusCode::UNAUTHORIZED {
        let given = response.headers().get(header::WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()).unwrap_or("Bearer");
        let value =
            format!("{given}, resource_metadata=\"{}\"", metadata_url(&resource)).replacen("Bearer, ", "Bearer ", 1);
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
        }
    }
    response
}

/// The MCP server of one request.
#[derive(Clone)]
pub(crate) struct KisumMcp {
    ai: Arc<Ai>,
}

impl ServerHandler for KisumMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("kisum-ai", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Tools act in the company of your token, with your access; tools/list shows the ones you may call.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let (caller, _) = caller(&context)?;
        let mut listed = Vec::new();
        for tool in catalog() {
            if allowed(&self.ai.kisum, &caller, tool.permission).await?.is_ok() {
                let schema = (tool.parameters)().as_object().cloned().unwrap_or_default();
                listed.push(Tool::new(tool.name, tool.description, Arc::new(schema)));
            }
        }
        Ok(ListToolsResult::with_all_items(listed))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let (caller, token) = caller(&context)?;
        let Some(tool) = catalog().find(|t| t.name == request.name) else {
            return Err(ErrorData::invalid_params(format!("no tool `{}`", truncated(&request.name)), None));
        };
        let (name, permission) = (tool.name, tool.permission);
        let access = match allowed(&self.ai.kisum, &caller, permission).await? {
            Ok(access) => access,
            Err(refusal) => return Err(refused(&crate::refused(&refusal))),
        };
        let arguments = Value::Object(request.arguments.unwrap_or_default());
        let result = if name == COPILOT_ASK {
            let question = match arguments.as_object().map(|a| (a.get("question"), a.len())) {
                Some((Some(Value::String(q)), 1)) => q.clone(),
                _ => {
                    return Err(ErrorData::invalid_params("`copilot_ask` takes one string argument, `question`", None));
                }
            };
            let answer = self.ai.ask(&access, &token, &question).await.map_err(|e| refused(&e))?;
            CallToolResult::structured(serde_json::to_value(answer).unwrap_or(Value::Null))
        } else {
            tools::check_arguments(name, &arguments).map_err(|detail| ErrorData::invalid_params(detail, None))?;
            // Every call of a copilot tool counts against the month, as a question does.
            self.ai.count_for(&access).await.map_err(|e| refused(&e))?;
            let call = ToolCall { id: "mcp".into(), name: name.into(), arguments };
            match self.ai.copilot.run(&access, &token, &call).await {
                Outcome::Ok { data } => CallToolResult::structured(data),
                Outcome::Refused { problem } => {
                    let message = problem.get("detail").and_then(Value::as_str).unwrap_or("refused").to_owned();
                    return Err(ErrorData::new(RpcCode(REFUSED), message, Some(problem)));
                }
                Outcome::Failed { detail } => CallToolResult::error(vec![ContentBlock::text(detail)]),
            }
        };
        Ok(result.into())
    }
}

/// `copilot_ask`, as the endpoint offers it beside the copilot's own tools.
const ASK_TOOL: CopilotTool = CopilotTool {
    name: COPILOT_ASK,
    description: "Asks the copilot a question; it looks things up with your access (counts against the \
        company's ai.monthly_requests)",
    permission: ASK,
    parameters: || {
        json!({
            "type": "object",
            "properties": { "question": { "type": "string", "description": "The question" } },
            "required": ["question"],
            "additionalProperties": false
        })
    },
};

/// `copilot_ask`, then the copilot's own tools.
fn catalog() -> impl Iterator<Item = &'static CopilotTool> {
    std::iter::once(&ASK_TOOL).chain(TOOLS.iter())
}

/// The verified caller of the HTTP request behind `context`, and its bearer token.
fn caller(context: &RequestContext<RoleServer>) -> Result<(Caller, String), ErrorData> {
    let parts = context
        .extensions
        .get::<Parts>()
        .ok_or_else(|| ErrorData::internal_error("the request's HTTP parts are missing", None))?;
    let caller = parts
        .extensions
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| ErrorData::internal_error("the request was not authenticated", None))?;
    let token = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(kisum_client::bearer_token)
        .ok_or_else(|| ErrorData::internal_error("the request's bearer token is missing", None))?
        .to_owned();
    Ok((caller, token))
}

/// Whether `caller` may use `permission`: `Ok(Ok(access))`, or `Ok(Err(refusal))` for a denial;
/// `Err` when access could not be had at all (fail closed).
async fn allowed(
    kisum: &Kisum,
    caller: &Caller,
    permission: &'static str,
) -> Result<Result<Access, Refusal>, ErrorData> {
    match kisum.decide(caller, permission, None, false).await {
        Ok(access) => Ok(Ok(access)),
        Err(refusal) if refusal.problem().code == ErrorCode::UpstreamUnavailable => {
            Err(refused(&crate::refused(&refusal)))
        }
        Err(refusal) => Ok(Err(refusal)),
    }
}

/// An error answered as JSON-RPC error [`REFUSED`] with its problem in `data` (invalid input: -32602).
fn refused(error: &ApiError) -> ErrorData {
    let mut problem = error.problem().clone();
    if problem.request_id.is_none() {
        problem.request_id = kisum_client::server::request_id::current();
    }
    let code = if problem.code == ErrorCode::ValidationFailed { RpcCode::INVALID_PARAMS } else { RpcCode(REFUSED) };
    ErrorData::new(code, problem.detail.clone(), serde_json::to_value(&problem).ok())
}

fn truncated(text: &str) -> String {
    text.chars().take(64).collect()
}

/// Whether `bytes` is a JSON-RPC message of a client as the SDK reads it (for the fuzz targets).
pub(crate) fn accepts(bytes: &[u8]) -> bool {
    serde_json::from_slice::<rmcp::model::ClientJsonRpcMessage>(bytes).is_ok()
}
