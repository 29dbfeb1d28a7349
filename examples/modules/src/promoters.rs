//! The promoters module: events.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use kisum_client::access::{CompanyId, Timestamp};
use kisum_client::server::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
use kisum_client::{Access, Kisum};
use serde::{Deserialize, Serialize};

use crate::records::{PageQuery, Record, Repo};
use crate::usage::ModuleDb;
use kisum_client::server::routes::Route;

const READ: &str = "promoters:event:read";
const CREATE: &str = "promoters:event:create";
const DELETE: &str = "promoters:event:delete";

pub(crate) const PERMISSIONS: &[&str] = &[READ, CREATE, DELETE];

pub(crate) const ROUTES: &[Route] = &[
    Route {
        summary: "The caller's company's events, oldest first, a page at a time",
        query: crate::PAGE_QUERY,
        ..Route::new("get", "/v1/events", READ)
    },
    Route {
        summary: "Creates an event (`starts_at` is RFC 3339)",
        body: &[("name", "string"), ("starts_at", "string")],
        status: 201,
        ..Route::new("post", "/v1/events", CREATE)
    },
    Route {
        summary: "Deletes an event",
        resource: Some("event"),
        status: 204,
        ..Route::new("delete", "/v1/events/{id}", DELETE)
    },
];

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Event {
    id: String,
    company: CompanyId,
    name: String,
    starts_at: Timestamp,
}

impl Record for Event {}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewEvent {
    name: String,
    starts_at: String,
}

#[derive(Debug, Serialize)]
struct Events {
    events: Vec<Event>,
    /// The cursor of the next page (`?after=`), absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

struct Promoters {
    events: Repo<Event>,
}

pub(crate) async fn routes(kisum: &Kisum, companies: &[CompanyId], db: Option<&ModuleDb>) -> Result<Router, String> {
    let opening = Timestamp::from_unix(1_780_340_400); // 2026-06-01T19:00:00Z
    let events = crate::records::open(db, "promoters.event", companies, |company, id| Event {
        id,
        company: company.clone(),
        name: format!("{company} opening night"),
        starts_at: opening,
    })
    .await?;
    let owners = crate::owners("event", events.clone());
    let state = Arc::new(Promoters { events });
    let guard = |permission| kisum.require(permission).owned_by(owners.clone());
    let router = Router::new()
        .route("/v1/events", get(list).route_layer(guard(READ)))
        .route("/v1/events", post(create).route_layer(guard(CREATE)))
        .route("/v1/events/{id}", delete(remove).route_layer(guard(DELETE).on("event", "id")))
        .with_state(state);
    Ok(router)
}

async fn list(
    State(promoters): State<Arc<Promoters>>,
    access: Access,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<Json<Events>> {
    let company = crate::company(&access)?;
    let page = promoters.events.page(&company, None, page.window()?).await?;
    Ok(Json(Events { events: page.items, next: page.next }))
}

async fn create(
    State(promoters): State<Arc<Promoters>>,
    access: Access,
    ApiJson(body): ApiJson<NewEvent>,
) -> ApiResult<(StatusCode, Json<Event>)> {
    let company = crate::company(&access)?;
    let name = crate::name_field("/name", &body.name)?;
    let starts_at = Timestamp::parse(&body.starts_at)
        .map_err(|_| ApiError::invalid("/starts_at", "must be an RFC 3339 instant with an offset"))?;
    let owner = company.clone();
    let make = move |id| Event { id, company: owner, name, starts_at };
    let event = promoters.events.create(&company, None, Box::new(make)).await?;
    tracing::info!(company = %company, event = %event.id, "event created");
    Ok((StatusCode::CREATED, Json(event)))
}

async fn remove(
    State(promoters): State<Arc<Promoters>>,
    access: Access,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let company = crate::company(&access)?;
    if promoters.events.remove(&company, &id).await? {
        tracing::info!(company = %company, event = %id, "event deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("not found"))
    }
}
