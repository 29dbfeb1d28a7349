//! Refusals as problem+json responses (DESIGN.md §6), and how a deny reason becomes one.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kisum_access::DenyReason;
use kisum_errors::{ErrorCode, Problem};

/// A refusal of the SDK: a problem (with the request's id when it has one) and, for `401`, the `Bearer`
/// challenge.
#[derive(Debug, Clone)]
pub struct Refusal {
    problem: Box<Problem>,
    challenge: Option<&'static str>,
}

impl Refusal {
    /// A refusal with `code` and a detail.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Refusal {
        let challenge = match code {
            ErrorCode::Unauthenticated => Some("Bearer"),
            ErrorCode::TokenInvalid => Some(r#"Bearer error="invalid_token""#),
            ErrorCode::TokenExpired => Some(r#"Bearer error="invalid_token", error_description="the token expired""#),
            _ => None,
        };
        Refusal { problem: Box::new(Problem::new(code, detail)), challenge }
    }

    /// The same refusal naming what is missing (`required`).
    pub fn with_required(mut self, required: impl Into<String>) -> Refusal {
        self.problem.required = Some(required.into());
        self
    }

    /// The same refusal keeping the deny reason.
    pub fn with_reason(mut self, reason: DenyReason) -> Refusal {
        self.problem.reason = Some(reason);
        self
    }

    /// The same refusal carrying the request id.
    pub fn with_request_id(mut self, id: Option<&str>) -> Refusal {
        if let Some(id) = id {
            self.problem.request_id = Some(id.to_owned());
        }
        self
    }

    /// The error code.
    pub fn code(&self) -> ErrorCode {
        self.problem.code
    }

    /// The problem.
    pub fn problem(&self) -> &Problem {
        &self.problem
    }

    /// The `WWW-Authenticate` challenge of a `401`, if any.
    pub fn challenge(&self) -> Option<&'static str> {
        self.challenge
    }

    /// The refusal of a deny, as DESIGN.md §6 maps it: `NOT_FOUND` (without the reason) for an unknown
    /// company, a non-member and another tenant's resource; `NOT_ENTITLED` with `required`;
    /// `MEMBERSHIP_INACTIVE`; `FORBIDDEN` naming the permission.
    pub fn of_deny(reason: DenyReason, permission: &str, required: Option<String>) -> Refusal {
        match reason {
            DenyReason::UnknownCompany | DenyReason::NotAMember | DenyReason::CrossTenant => {
                Refusal::new(ErrorCode::NotFound, "not found")
            }
            DenyReason::ModuleNotEntitled | DenyReason::FeatureNotEntitled => {
                let r = Refusal::new(ErrorCode::NotEntitled, "the company's plan does not include this")
                    .with_reason(reason);
                match required {
                    Some(req) => r.with_required(req),
                    None => r,
                }
            }
            DenyReason::MembershipInactive | DenyReason::MembershipExpired => {
                Refusal::new(ErrorCode::MembershipInactive, "the membership is not active").with_reason(reason)
            }
            DenyReason::Restricted | DenyReason::PermissionNotGranted => {
                Refusal::new(ErrorCode::Forbidden, format!("this needs `{permission}`"))
                    .with_reason(reason)
                    .with_required(permission)
            }
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.problem.code.as_str(), self.problem.detail)
    }
}

impl std::error::Error for Refusal {}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self.problem).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(challenge) = self.challenge {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        response
    }
}
