//! The one error type of the servers: a problem+json response.

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kisum_errors::{ErrorCode, FieldError, KisumError, Problem};

use super::request_id;

/// A handler's result.
pub type ApiResult<T> = Result<T, ApiError>;

/// An error answered as `application/problem+json` (DESIGN.md §6), with the request id filled in.
#[derive(Debug, Clone)]
pub struct ApiError(Box<Inner>);

#[derive(Debug, Clone)]
struct Inner {
    problem: Problem,
    headers: HeaderMap,
    /// Extension members beyond Kisum's (RFC 6749's `error` on the token endpoint).
    extra: serde_json::Map<String, serde_json::Value>,
}

impl ApiError {
    /// An error with `code` and a detail for people.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> ApiError {
        ApiError::from_problem(Problem::new(code, detail))
    }

    /// An error from a problem.
    pub fn from_problem(problem: Problem) -> ApiError {
        ApiError(Box::new(Inner { problem, headers: HeaderMap::new(), extra: serde_json::Map::new() }))
    }

    /// An error from any Kisum error: its code, detail, field errors and `required`.
    pub fn from_error<E: KisumError + ?Sized>(error: &E) -> ApiError {
        ApiError::from_problem(Problem::from_error(error))
    }

    /// `404 NOT_FOUND`, saying nothing about whether the thing exists elsewhere.
    pub fn not_found(what: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::NotFound, what)
    }

    /// `422 VALIDATION_FAILED` with one field error.
    pub fn invalid(path: &str, message: impl Into<String>) -> ApiError {
        let problem = Problem::new(ErrorCode::ValidationFailed, "the request is not valid")
            .with_field_error(FieldError::new(path, message));
        ApiError::from_problem(problem)
    }

    /// `401 UNAUTHENTICATED`, with the `WWW-Authenticate: Bearer` challenge.
    pub fn unauthenticated(detail: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::Unauthenticated, detail).with_header(header::WWW_AUTHENTICATE, "Bearer")
    }

    /// The same error naming what is missing (a permission, module, feature or limit).
    pub fn with_required(mut self, required: impl Into<String>) -> ApiError {
        self.0.problem.required = Some(required.into());
        self
    }

    /// The same error with a response header.
    pub fn with_header(mut self, name: HeaderName, value: &str) -> ApiError {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.0.headers.insert(name, value);
        }
        self
    }

    /// The same error with an extension member in its body.
    pub fn with_member(mut self, name: &str, value: impl Into<serde_json::Value>) -> ApiError {
        self.0.extra.insert(name.to_owned(), value.into());
        self
    }

    /// The problem.
    pub fn problem(&self) -> &Problem {
        &self.0.problem
    }

    /// The error code.
    pub fn code(&self) -> ErrorCode {
        self.0.problem.code
    }
}

impl<E: KisumError> From<E> for ApiError {
    fn from(error: E) -> ApiError {
        ApiError::from_error(&error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let Inner { mut problem, mut headers, extra } = *self.0;
        let id = request_id::current();
        if problem.request_id.is_none() {
            problem.request_id = id.clone();
        }
        let status = problem.code.http_status();
        if status.is_server_error() {
            tracing::error!(request_id = id.as_deref().unwrap_or("-"), code = %problem.code, detail = %problem.detail, "request failed");
        }
        let body = if extra.is_empty() {
            problem.to_json()
        } else {
            let mut value = serde_json::to_value(&problem).unwrap_or_default();
            if let Some(map) = value.as_object_mut() {
                map.extend(extra);
            }
            value.to_string()
        };
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kisum_errors::PROBLEM_JSON));
        if problem.code == ErrorCode::RateLimited && !headers.contains_key(header::RETRY_AFTER) {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
        }
        (status, headers, body).into_response()
    }
}

/// The fallback for routes that do not exist: `404` problem.
pub async fn no_route() -> ApiError {
    ApiError::not_found("no such route")
}

/// The fallback for a method a route does not serve: `405` with `Allow` (added by axum), answered as a
/// problem. No code of DESIGN.md §6 has status 405: the body says `VALIDATION_FAILED` (the request is not
/// one the route takes) with `status` 405, as RFC 9457 wants the member to match the response.
pub async fn no_method() -> Response {
    let mut problem = Problem::new(ErrorCode::ValidationFailed, "this route does not serve that method");
    problem.status = StatusCode::METHOD_NOT_ALLOWED.as_u16();
    let mut response = ApiError::from_problem(problem).into_response();
    *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    response
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.0.problem.code.as_str(), self.0.problem.detail)
    }
}

impl std::error::Error for ApiError {}

/// What keeps API.md §1's promise that every error body is problem+json: an error response that some
/// layer or extractor answered in another form (axum's own text rejections: a body over the limit, a form
/// or path it could not read) is answered again as a problem of the same status. JSON bodies are left
/// alone (a module's JSON-RPC errors are answers, not failures).
pub(crate) async fn as_problem(response: Response) -> Response {
    let status = response.status();
    let content_type = response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let plain = content_type.is_empty() || content_type.starts_with("text/plain");
    if !(status.is_client_error() || status.is_server_error()) || !plain {
        return response;
    }
    let code = match status {
        StatusCode::UNAUTHORIZED => ErrorCode::Unauthenticated,
        StatusCode::FORBIDDEN => ErrorCode::Forbidden,
        StatusCode::NOT_FOUND => ErrorCode::NotFound,
        StatusCode::CONFLICT => ErrorCode::Conflict,
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
        StatusCode::TOO_MANY_REQUESTS => ErrorCode::RateLimited,
        StatusCode::SERVICE_UNAVAILABLE => ErrorCode::UpstreamUnavailable,
        s if s.is_server_error() => ErrorCode::Internal,
        _ => ErrorCode::ValidationFailed,
    };
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let detail = match std::str::from_utf8(&text).map(str::trim) {
        Ok(t) if !t.is_empty() => super::clip(t),
        _ => status.canonical_reason().unwrap_or("the request failed").to_lowercase(),
    };
    let mut problem = Problem::new(code, detail);
    problem.status = status.as_u16();
    let mut answer = ApiError::from_problem(problem).into_response();
    *answer.status_mut() = status;
    // Headers the first answer set (`Allow`, `Retry-After`, `WWW-Authenticate`) stay.
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            answer.headers_mut().insert(name.clone(), value.clone());
        }
    }
    answer
}
