//! The actix-web adapter (feature `actix`): the same verification and guards for a framework outside
//! tower. Register the SDK as app data, wrap the app (or a scope) with [`authenticate`] through
//! `actix_web::middleware::from_fn`, and call [`require`] at the top of each handler:
//!
//! ```rust,ignore
//! use actix_web::{App, HttpRequest, HttpResponse, middleware::from_fn, web};
//!
//! async fn tours(req: HttpRequest) -> Result<HttpResponse, kisum_client::Refusal> {
//!     let access = kisum_client::actix::require(&req, "touring:tour:read", None).await?;
//!     Ok(HttpResponse::Ok().json(access.company()))
//! }
//!
//! let app = App::new()
//!     .app_data(web::Data::new(kisum.clone()))
//!     .wrap(from_fn(kisum_client::actix::authenticate))
//!     .route("/v1/tours", web::get().to(tours));
//! ```

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, ResponseError, web};
use kisum_access::ResourceRef;
use kisum_errors::ErrorCode;

use crate::guard::{Access, Caller, Kisum};
use crate::problem::Refusal;

fn request_id(headers: &actix_web::http::header::HeaderMap) -> Option<String> {
    headers.get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// Middleware (for `actix_web::middleware::from_fn`): verifies the bearer token with the SDK registered as
/// `web::Data<Kisum>` and puts the [`Caller`] in the request's extensions; refusals are problem+json
/// (`401` with `WWW-Authenticate: Bearer`).
pub async fn authenticate<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let rid = request_id(req.headers());
    let Some(kisum) = req.app_data::<web::Data<Kisum>>().cloned() else {
        let refusal = Refusal::new(ErrorCode::Internal, "the app has no web::Data<Kisum>");
        return Ok(req.into_response(refusal.with_request_id(rid.as_deref()).error_response()).map_into_right_body());
    };
    let header = req.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
    match kisum.authenticate_header(header.as_deref()).await {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.call(req).await.map(ServiceResponse::map_into_left_body)
        }
        Err(refusal) => {
            Ok(req.into_response(refusal.with_request_id(rid.as_deref()).error_response()).map_into_right_body())
        }
    }
}

/// Decides `permission` (on `resource`) for the request's caller, as the tower guard does: user tokens
/// through their access, service tokens never (use [`require_dual`] to accept them). Refusals map as
/// DESIGN.md §6 and carry the request id.
pub async fn require(req: &HttpRequest, permission: &str, resource: Option<&ResourceRef>) -> Result<Access, Refusal> {
    decide(req, permission, resource, false).await
}

/// [`require`], also accepting service tokens whose scopes match (dual auth).
pub async fn require_dual(
    req: &HttpRequest,
    permission: &str,
    resource: Option<&ResourceRef>,
) -> Result<Access, Refusal> {
    decide(req, permission, resource, true).await
}

async fn decide(
    req: &HttpRequest,
    permission: &str,
    resource: Option<&ResourceRef>,
    services: bool,
) -> Result<Access, Refusal> {
    let rid = request_id(req.headers());
    let kisum = req
        .app_data::<web::Data<Kisum>>()
        .cloned()
        .ok_or_else(|| Refusal::new(ErrorCode::Internal, "the app has no web::Data<Kisum>"))?;
    let caller = req.extensions().get::<Caller>().cloned().ok_or_else(|| {
        Refusal::new(ErrorCode::Internal, "the route is not behind kisum_client::actix::authenticate")
    })?;
    kisum.decide(&caller, permission, resource, services).await.map_err(|r| r.with_request_id(rid.as_deref()))
}

impl ResponseError for Refusal {
    fn status_code(&self) -> actix_web::http::StatusCode {
        actix_web::http::StatusCode::from_u16(self.problem().status)
            .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        response.content_type("application/problem+json");
        if let Some(challenge) = self.challenge() {
            response.insert_header(("www-authenticate", challenge));
        }
        response.body(serde_json::to_vec(self.problem()).unwrap_or_default())
    }
}
