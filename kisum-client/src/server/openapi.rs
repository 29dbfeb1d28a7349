//! The pieces every server's OpenAPI 3.1 document shares: the problem+json schema and the bearer scheme.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, ToSchema};

/// An RFC 9457 problem with Kisum's members (DESIGN.md §6): the schema of every error body.
#[derive(Debug, Clone, ToSchema)]
#[schema(as = Problem)]
#[allow(dead_code)]
pub struct ProblemSchema {
    /// A URI identifying the problem type.
    #[schema(rename = "type")]
    type_uri: String,
    /// A short summary of the problem type.
    title: String,
    /// The HTTP status.
    status: u16,
    /// What went wrong in this occurrence.
    detail: String,
    /// A URI identifying this occurrence.
    instance: Option<String>,
    /// The stable error code.
    #[schema(example = "NOT_FOUND")]
    code: String,
    /// The request this answers.
    request_id: Option<String>,
    /// The access deny reason, where the caller may know it.
    reason: Option<String>,
    /// The missing module, feature or permission.
    required: Option<String>,
    /// Field errors, one per problem found in the input.
    errors: Option<Vec<FieldErrorSchema>>,
    /// Whether the same request may succeed later without change.
    retryable: bool,
    /// RFC 6749's error code, on the token endpoint.
    error: Option<String>,
}

/// One problem found in the input.
#[derive(Debug, Clone, ToSchema)]
#[schema(as = FieldError)]
#[allow(dead_code)]
pub struct FieldErrorSchema {
    /// A JSON pointer into the input (empty for the whole body).
    path: String,
    /// What is wrong there.
    message: String,
}

/// Adds the `bearer` security scheme (JWT access tokens).
#[derive(Debug, Clone, Copy)]
pub struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi.components.get_or_insert_with(Default::default).add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}

/// `router` with `GET /openapi.json` answering `api` as JSON (rendered once).
pub fn with_document<S: Clone + Send + Sync + 'static>(
    router: axum::Router<S>,
    api: &utoipa::openapi::OpenApi,
) -> axum::Router<S> {
    let document = api.to_json().unwrap_or_default();
    router.route(
        "/openapi.json",
        axum::routing::get(move || {
            let document = document.clone();
            async move { ([(axum::http::header::CONTENT_TYPE, "application/json")], document) }
        }),
    )
}
