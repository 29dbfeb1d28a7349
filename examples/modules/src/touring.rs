//! The touring module: tours.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use kisum_client::access::CompanyId;
use kisum_client::server::{ApiError, ApiJson, ApiResult};
use kisum_client::{Access, Kisum};
use serde::{Deserialize, Serialize};

use crate::records::Records;
use kisum_client::server::routes::Route;

pub(crate) const READ: &str = "touring:tour:read";
pub(crate) const PLAN: &str = "touring:tour:plan";

pub(crate) const PERMISSIONS: &[&str] = &[READ, PLAN];

pub(crate) const ROUTES: &[Route] = &[
    Route { summary: "The caller's company's tours", ..Route::new("get", "/v1/tours", READ) },
    Route {
        summary: "Plans a tour",
        body: &[("name", "string")],
        status: 201,
        ..Route::new("post", "/v1/tours", PLAN)
    },
];

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Tour {
    id: String,
    company: CompanyId,
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewTour {
    name: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct Tours {
    pub(crate) tours: Vec<Tour>,
}

/// The touring module's data and rules, shared by its axum and actix-web servers.
pub(crate) struct Touring {
    pub(crate) tours: Records<Tour>,
}

impl Touring {
    /// One tour per company, `{company}-1`.
    pub(crate) fn seeded(companies: &[CompanyId]) -> Touring {
        let tours = Records::seeded(companies, |company, id| Tour {
            id,
            company: company.clone(),
            name: format!("{company} spring tour"),
        });
        Touring { tours }
    }

    /// Plans a tour of `company` (the caller's, once its guard allowed `touring:tour:plan`).
    pub(crate) fn plan(&self, company: &CompanyId, body: &NewTour) -> Result<Tour, ApiError> {
        let name = crate::name_field("/name", &body.name)?;
        let tour =
            self.tours.create(company, |_| Ok::<_, ApiError>(()), |id| Tour { id, company: company.clone(), name })?;
        tracing::info!(company = %company, tour = %tour.id, "tour planned");
        Ok(tour)
    }
}

pub(crate) fn routes(kisum: &Kisum, companies: &[CompanyId]) -> Router {
    let state = Arc::new(Touring::seeded(companies));
    let lookup = state.clone();
    let owners = crate::owners(move |kind, id| if kind == "tour" { lookup.tours.owner(id) } else { None });
    let guard = |permission| kisum.require(permission).owned_by(owners.clone());
    Router::new()
        .route("/v1/tours", get(list).route_layer(guard(READ)))
        .route("/v1/tours", post(plan).route_layer(guard(PLAN)))
        .with_state(state)
}

async fn list(State(touring): State<Arc<Touring>>, access: Access) -> ApiResult<Json<Tours>> {
    let company = crate::company(&access)?;
    Ok(Json(Tours { tours: touring.tours.of(&company) }))
}

async fn plan(
    State(touring): State<Arc<Touring>>,
    access: Access,
    ApiJson(body): ApiJson<NewTour>,
) -> ApiResult<(StatusCode, Json<Tour>)> {
    let company = crate::company(&access)?;
    Ok((StatusCode::CREATED, Json(touring.plan(&company, &body)?)))
}
