//! The touring module: tours.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use kisum_client::access::CompanyId;
use kisum_client::server::{ApiError, ApiJson, ApiQuery, ApiResult};
use kisum_client::{Access, Kisum};
use serde::{Deserialize, Serialize};

use crate::records::{PageQuery, Record, Repo, Window};
use crate::usage::ModuleDb;
use kisum_client::server::routes::Route;

pub(crate) const READ: &str = "touring:tour:read";
pub(crate) const PLAN: &str = "touring:tour:plan";

pub(crate) const PERMISSIONS: &[&str] = &[READ, PLAN];

pub(crate) const ROUTES: &[Route] = &[
    Route {
        summary: "The caller's company's tours, oldest first, a page at a time",
        query: crate::PAGE_QUERY,
        ..Route::new("get", "/v1/tours", READ)
    },
    Route {
        summary: "Plans a tour",
        body: &[("name", "string")],
        status: 201,
        ..Route::new("post", "/v1/tours", PLAN)
    },
];

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Tour {
    id: String,
    company: CompanyId,
    name: String,
}

impl Record for Tour {}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewTour {
    name: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct Tours {
    pub(crate) tours: Vec<Tour>,
    /// The cursor of the next page (`?after=`), absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) next: Option<String>,
}

/// The touring module's data and rules, shared by its axum and actix-web servers.
pub(crate) struct Touring {
    tours: Repo<Tour>,
}

impl Touring {
    /// The tours, in `db` when given: one per company, `{company}-1`, unless it had one already.
    pub(crate) async fn open(db: Option<&ModuleDb>, companies: &[CompanyId]) -> Result<Touring, String> {
        let tours = crate::records::open(db, "touring.tour", companies, |company, id| Tour {
            id,
            company: company.clone(),
            name: format!("{company} spring tour"),
        })
        .await?;
        Ok(Touring { tours })
    }

    /// A page of `company`'s tours.
    pub(crate) async fn list(&self, company: &CompanyId, window: Window) -> Result<Tours, ApiError> {
        let page = self.tours.page(company, None, window).await?;
        Ok(Tours { tours: page.items, next: page.next })
    }

    /// Plans a tour of `company` (the caller's, once its guard allowed `touring:tour:plan`).
    pub(crate) async fn plan(&self, company: &CompanyId, body: NewTour) -> Result<Tour, ApiError> {
        let name = crate::name_field("/name", &body.name)?;
        let owner = company.clone();
        let tour = self.tours.create(company, None, Box::new(move |id| Tour { id, company: owner, name })).await?;
        tracing::info!(company = %company, tour = %tour.id, "tour planned");
        Ok(tour)
    }
}

pub(crate) async fn routes(kisum: &Kisum, companies: &[CompanyId], db: Option<&ModuleDb>) -> Result<Router, String> {
    let touring = Touring::open(db, companies).await?;
    let owners = crate::owners("tour", touring.tours.clone());
    let guard = |permission| kisum.require(permission).owned_by(owners.clone());
    let router = Router::new()
        .route("/v1/tours", get(list).route_layer(guard(READ)))
        .route("/v1/tours", post(plan).route_layer(guard(PLAN)))
        .with_state(Arc::new(touring));
    Ok(router)
}

async fn list(
    State(touring): State<Arc<Touring>>,
    access: Access,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<Json<Tours>> {
    let company = crate::company(&access)?;
    Ok(Json(touring.list(&company, page.window()?).await?))
}

async fn plan(
    State(touring): State<Arc<Touring>>,
    access: Access,
    ApiJson(body): ApiJson<NewTour>,
) -> ApiResult<(StatusCode, Json<Tour>)> {
    let company = crate::company(&access)?;
    Ok((StatusCode::CREATED, Json(touring.plan(&company, body).await?)))
}
