//! A module's route table and the OpenAPI 3.1 document generated from it: the same table that names the
//! permissions the module checks (and the catalog must hold at start-up), so the document cannot drift
//! from what is enforced. Each operation carries `x-kisum-permission`, `x-kisum-resource`, `x-kisum-also`
//! and `x-kisum-service-tokens`; every refusal is the problem+json schema.
//!
//! ```
//! use kisum_client::server::routes::{Route, document};
//!
//! const ROUTES: &[Route] = &[
//!     Route { summary: "The caller's invoices", ..Route::new("get", "/v1/invoices", "finance:invoice:read") },
//!     Route { status: 201, body: &[("amount", "integer")], ..Route::new("post", "/v1/invoices", "finance:invoice:create") },
//! ];
//! let doc = document("finance", "1.0.0", "http://127.0.0.1:7410", ROUTES);
//! assert_eq!(doc["paths"]["/v1/invoices"]["post"]["x-kisum-permission"], "finance:invoice:create");
//! ```

use serde_json::{Map, Value, json};

/// One route of a module's table.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// `get`, `post`, `delete`.
    pub method: &'static str,
    /// The axum path (`/v1/invoices/{id}`).
    pub path: &'static str,
    /// What it does.
    pub summary: &'static str,
    /// The permission its guard requires (`None`: any valid token; the handler decides).
    pub permission: Option<&'static str>,
    /// The resource kind the permission is checked on, from the path's `id`.
    pub resource: Option<&'static str>,
    /// Further permissions the handler may check (`?include=bookings`, MCP tools).
    pub also: &'static [&'static str],
    /// Whether service tokens whose scopes match are accepted (dual auth).
    pub services: bool,
    /// The body's required fields, with their JSON types; empty for no body.
    pub body: &'static [(&'static str, &'static str)],
    /// The body's optional fields, with their JSON types.
    pub optional: &'static [(&'static str, &'static str)],
    /// The query parameters, all optional: name, JSON type, what it means.
    pub query: &'static [(&'static str, &'static str, &'static str)],
    /// The status of success.
    pub status: u16,
}

impl Route {
    /// A route needing `permission`, answering 200, taking no body.
    pub const fn new(method: &'static str, path: &'static str, permission: &'static str) -> Route {
        Route {
            method,
            path,
            summary: "",
            permission: Some(permission),
            resource: None,
            also: &[],
            services: false,
            body: &[],
            optional: &[],
            query: &[],
            status: 200,
        }
    }
}

/// The OpenAPI document of the module `name` (its tag and title), at `version`, served at `server`, with
/// its route table `routes` and the health routes of [`finish`](super::finish)'s servers.
pub fn document(name: &str, version: &str, server: &str, routes: &[Route]) -> Value {
    let mut paths = Map::new();
    for route in routes {
        let entry = paths.entry(route.path).or_insert_with(|| Value::Object(Map::new()));
        if let Some(methods) = entry.as_object_mut() {
            methods.insert(route.method.to_owned(), operation(name, route));
        }
    }
    for (path, summary) in [
        ("/health/live", "Liveness"),
        ("/health/ready", "Readiness: the catalog names every permission of the route table"),
    ] {
        paths.insert(
            path.to_owned(),
            json!({ "get": {
                "summary": summary,
                "operationId": path.trim_start_matches('/').replace('/', "_"),
                "tags": ["health"],
                "security": [],
                "responses": {
                    "200": { "description": "ok", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Health" } } } },
                    "503": { "description": "not ready", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Health" } } } }
                }
            }}),
        );
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": format!("Kisum {name} module"),
            "version": version,
            "description": "A reference module server (API.md §4). Every route is guarded by kisum-client: \
                the bearer token is verified locally and the permission named in `x-kisum-permission` is \
                decided (on `{company}/{kind}/{id}` where `x-kisum-resource` names a kind) before any data \
                is touched. Errors are RFC 9457 problem+json bodies.",
        },
        "servers": [{ "url": server }],
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" } },
            "schemas": {
                "Problem": problem_schema(),
                "Health": {
                    "type": "object",
                    "required": ["status"],
                    "properties": { "status": { "type": "string" } }
                }
            }
        },
        "security": [{ "bearer": [] }],
    })
}

fn operation(name: &str, route: &Route) -> Value {
    let mut op = Map::new();
    let id = format!("{}_{}", route.method, route.path.trim_start_matches("/v1/").replace(['/', '{', '}'], "_"));
    op.insert("operationId".into(), json!(id.trim_end_matches('_')));
    op.insert("summary".into(), json!(route.summary));
    op.insert("tags".into(), json!([name]));
    if let Some(permission) = route.permission {
        op.insert("x-kisum-permission".into(), json!(permission));
    }
    if let Some(kind) = route.resource {
        op.insert("x-kisum-resource".into(), json!(kind));
    }
    if !route.also.is_empty() {
        op.insert("x-kisum-also".into(), json!(route.also));
    }
    op.insert("x-kisum-service-tokens".into(), json!(route.services));
    let parameters: Vec<Value> = route
        .path
        .split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
        .chain(route.query.iter().map(|(name, ty, description)| {
            json!({ "name": name, "in": "query", "required": false, "description": description, "schema": { "type": ty } })
        }))
        .collect();
    if !parameters.is_empty() {
        op.insert("parameters".into(), json!(parameters));
    }
    if !route.body.is_empty() {
        let properties: Map<String, Value> = route
            .body
            .iter()
            .chain(route.optional)
            .map(|(name, ty)| ((*name).to_owned(), json!({ "type": ty })))
            .collect();
        let required: Vec<&str> = route.body.iter().map(|(name, _)| *name).collect();
        op.insert(
            "requestBody".into(),
            json!({ "required": true, "content": { "application/json": { "schema": {
                "type": "object", "required": required, "properties": properties, "additionalProperties": false
            }}}}),
        );
    }
    let problem = json!({ "description": "refused", "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } } });
    let mut responses = Map::new();
    let success = if route.status == 204 {
        json!({ "description": "done" })
    } else {
        json!({ "description": "ok", "content": { "application/json": { "schema": { "type": "object" } } } })
    };
    responses.insert(route.status.to_string(), success);
    for status in ["401", "403", "404", "413", "422", "503"] {
        responses.insert(status.to_owned(), problem.clone());
    }
    op.insert("responses".into(), Value::Object(responses));
    Value::Object(op)
}

fn problem_schema() -> Value {
    json!({
        "type": "object",
        "required": ["type", "title", "status", "detail", "code", "retryable"],
        "properties": {
            "type": { "type": "string" },
            "title": { "type": "string" },
            "status": { "type": "integer" },
            "detail": { "type": "string" },
            "code": { "type": "string", "examples": ["NOT_FOUND"] },
            "request_id": { "type": "string" },
            "reason": { "type": "string" },
            "required": { "type": "string" },
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["path", "message"],
                    "properties": { "path": { "type": "string" }, "message": { "type": "string" } }
                }
            },
            "retryable": { "type": "boolean" }
        }
    })
}
