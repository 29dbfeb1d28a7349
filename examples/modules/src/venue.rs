//! The venue module: venues and their contracts. Signing is checked on the venue (`venue:contract:sign`,
//! which the catalog ties to the feature `venue.contracts`); a contract is signed once, by its first
//! signer.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use kisum_client::access::{CompanyId, Timestamp};
use kisum_client::entitlements::Clock;
use kisum_client::server::{ApiError, ApiPath, ApiQuery, ApiResult};
use kisum_client::{Access, Kisum};
use serde::{Deserialize, Serialize};

use crate::records::{PageQuery, Record, Repo};
use crate::usage::ModuleDb;
use kisum_client::server::routes::Route;

const READ: &str = "venue:venue:read";
const SIGN: &str = "venue:contract:sign";

pub(crate) const PERMISSIONS: &[&str] = &[READ, SIGN];

pub(crate) const ROUTES: &[Route] = &[
    Route {
        summary: "The caller's company's venues (capacity, the dates held, contracts), oldest first, a page at a time",
        query: crate::PAGE_QUERY,
        ..Route::new("get", "/v1/venues", READ)
    },
    Route {
        summary: "Signs a contract of a venue (signing a signed one changes nothing)",
        resource: Some("venue"),
        ..Route::new("post", "/v1/venues/{id}/contracts/{contract}/sign", SIGN)
    },
];

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Venue {
    id: String,
    company: CompanyId,
    name: String,
    /// Standing capacity.
    capacity: u32,
    /// The dates (`YYYY-MM-DD`) the venue is already held on: any other is available.
    held: Vec<String>,
    contracts: Vec<Contract>,
}

impl Record for Venue {}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Contract {
    id: String,
    venue: String,
    status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    signed_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    signed_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Status {
    Draft,
    Signed,
}

#[derive(Debug, Serialize)]
struct Venues {
    venues: Vec<Venue>,
    /// The cursor of the next page (`?after=`), absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

struct VenueState {
    venues: Repo<Venue>,
    clock: Arc<dyn Clock>,
}

pub(crate) async fn routes(
    kisum: &Kisum,
    companies: &[CompanyId],
    clock: Arc<dyn Clock>,
    db: Option<&ModuleDb>,
) -> Result<Router, String> {
    let venues = crate::records::open(db, "venue.venue", companies, |company, id| Venue {
        id: id.clone(),
        company: company.clone(),
        name: format!("{company} hall"),
        capacity: 1_800,
        held: vec!["2026-06-01".to_owned()],
        contracts: vec![Contract {
            id: format!("{company}-1"),
            venue: id,
            status: Status::Draft,
            signed_by: None,
            signed_at: None,
        }],
    })
    .await?;
    let owners = crate::owners("venue", venues.clone());
    let state = Arc::new(VenueState { venues, clock });
    let guard = |permission| kisum.require(permission).owned_by(owners.clone());
    let router = Router::new()
        .route("/v1/venues", get(list).route_layer(guard(READ)))
        .route("/v1/venues/{id}/contracts/{contract}/sign", post(sign).route_layer(guard(SIGN).on("venue", "id")))
        .with_state(state);
    Ok(router)
}

async fn list(
    State(state): State<Arc<VenueState>>,
    access: Access,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<Json<Venues>> {
    let company = crate::company(&access)?;
    let page = state.venues.page(&company, None, page.window()?).await?;
    Ok(Json(Venues { venues: page.items, next: page.next }))
}

async fn sign(
    State(state): State<Arc<VenueState>>,
    access: Access,
    ApiPath((id, contract)): ApiPath<(String, String)>,
) -> ApiResult<Json<Contract>> {
    let company = crate::company(&access)?;
    let signer = access.caller().principal().map(ToString::to_string);
    let now = state.clock.now();
    let wanted = contract.clone();
    let sign = move |venue: &mut Venue| {
        let contract =
            venue.contracts.iter_mut().find(|c| c.id == wanted).ok_or_else(|| ApiError::not_found("not found"))?;
        if contract.status == Status::Draft {
            contract.status = Status::Signed;
            contract.signed_by = signer;
            contract.signed_at = Some(now);
        }
        Ok(())
    };
    let venue =
        state.venues.update(&company, &id, Box::new(sign)).await?.ok_or_else(|| ApiError::not_found("not found"))?;
    let signed =
        venue.contracts.into_iter().find(|c| c.id == contract).ok_or_else(|| ApiError::not_found("not found"))?;
    tracing::info!(company = %company, venue = %id, contract = %signed.id, "contract signed");
    Ok(Json(signed))
}
