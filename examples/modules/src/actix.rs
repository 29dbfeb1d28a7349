//! The touring module on actix-web (feature `actix`, on by default), through `kisum-client`'s actix adapter: the same
//! routes, data, rules and answers as the axum module, for teams whose services are not tower-based.

use std::sync::Arc;

use actix_web::middleware::from_fn;
use actix_web::{HttpRequest, HttpResponse, web};
use kisum_client::access::CompanyId;
use kisum_client::errors::{ErrorCode, Problem};
use kisum_client::{Kisum, Refusal};

use crate::ModuleDb;
use crate::records::PageQuery;
use crate::touring::{NewTour, PLAN, READ, Touring};

/// Configures an actix-web app with the touring routes (`GET`/`POST /v1/tours`), every one behind the
/// adapter's [`authenticate`](kisum_client::actix::authenticate) middleware and guard, and problem+json
/// answers for unknown routes, the tours in `db` when given (as [`Module::router_with`](crate::Module::router_with)
/// keeps them). Use it as `App::new().configure(touring(kisum, &companies, None).await?)`.
pub async fn touring(
    kisum: Kisum,
    companies: &[CompanyId],
    db: Option<&ModuleDb>,
) -> Result<impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static, String> {
    let state = web::Data::from(Arc::new(Touring::open(db, companies).await?));
    let kisum = web::Data::new(kisum);
    Ok(move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(kisum.clone()).app_data(state.clone()).service(
            web::scope("/v1")
                .wrap(from_fn(kisum_client::actix::authenticate))
                .service(web::resource("/tours").route(web::get().to(list)).route(web::post().to(plan)))
                .default_service(web::to(not_found)),
        );
        cfg.default_service(web::to(not_found));
    })
}

fn problem(problem: &Problem) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(problem.status)
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    HttpResponse::build(status)
        .content_type("application/problem+json")
        .body(serde_json::to_vec(problem).unwrap_or_default())
}

async fn not_found() -> HttpResponse {
    problem(&Problem::new(ErrorCode::NotFound, "no such route"))
}

async fn list(req: HttpRequest, touring: web::Data<Touring>) -> Result<HttpResponse, Refusal> {
    let access = kisum_client::actix::require(&req, READ, None).await?;
    let company = access
        .company()
        .cloned()
        .ok_or_else(|| Refusal::new(ErrorCode::Forbidden, "this route serves user tokens, which name a company"))?;
    let window = match web::Query::<PageQuery>::from_query(req.query_string()) {
        Ok(query) => query.window(),
        Err(e) => Err(kisum_client::server::ApiError::invalid("?", e.to_string())),
    };
    match window {
        Ok(window) => match touring.list(&company, window).await {
            Ok(tours) => Ok(HttpResponse::Ok().json(tours)),
            Err(e) => Ok(problem(e.problem())),
        },
        Err(e) => Ok(problem(e.problem())),
    }
}

async fn plan(req: HttpRequest, touring: web::Data<Touring>, body: web::Bytes) -> Result<HttpResponse, Refusal> {
    let access = kisum_client::actix::require(&req, PLAN, None).await?;
    let company = access
        .company()
        .cloned()
        .ok_or_else(|| Refusal::new(ErrorCode::Forbidden, "this route serves user tokens, which name a company"))?;
    let json = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let parsed: Result<NewTour, String> = if !json {
        Err("the body must be JSON (`Content-Type: application/json`)".into())
    } else if body.len() > kisum_client::server::MAX_BODY_BYTES {
        return Ok(problem(&Problem::new(ErrorCode::PayloadTooLarge, "the body is larger than 64 KiB")));
    } else {
        serde_json::from_slice(&body).map_err(|e| e.to_string())
    };
    let new = match parsed {
        Ok(n) => n,
        Err(e) => return Ok(problem(kisum_client::server::ApiError::invalid("", e).problem())),
    };
    match touring.plan(&company, new).await {
        Ok(tour) => Ok(HttpResponse::Created().json(tour)),
        Err(e) => Ok(problem(e.problem())),
    }
}
