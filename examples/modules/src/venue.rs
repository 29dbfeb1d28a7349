//! The venue module: venues and their contracts. Signing is checked on the venue (`venue:contract:sign`,
//! which the catalog ties to the feature `venue.contracts`); a contract is signed once, by its first
//! signer.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use kisum_client::access::{CompanyId, Timestamp};
use kisum_client::entitlements::Clock;
use kisum_client::server::{ApiError, ApiPath, ApiResult};
use kisum_client::{Access, Kisum};
use serde::Serialize;

use crate::records::Records;
use kisum_client::server::routes::Route;

const READ: &str = "venue:venue:read";
const SIGN: &str = "venue:contract:sign";

pub(crate) const PERMISSIONS: &[&str] = &[READ, SIGN];

pub(crate) const ROUTES: &[Route] = &[
    Route { summary: "The caller's company's venues, with their contracts", ..Route::new("get", "/v1/venues", READ) },
    Route {
        summary: "Signs a contract of a venue (signing a signed one changes nothing)",
        resource: Some("venue"),
        ..Route::new("post", "/v1/venues/{id}/contracts/{contract}/sign", SIGN)
    },
];

#[derive(Debug, Clone, Serialize)]
struct Venue {
    id: String,
    company: CompanyId,
    name: String,
    contracts: Vec<Contract>,
}

#[derive(Debug, Clone, Serialize)]
struct Contract {
    id: String,
    venue: String,
    status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    signed_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    signed_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Status {
    Draft,
    Signed,
}

#[derive(Debug, Serialize)]
struct Venues {
    venues: Vec<Venue>,
}

struct VenueState {
    venues: Records<Venue>,
    clock: Arc<dyn Clock>,
}

pub(crate) fn routes(kisum: &Kisum, companies: &[CompanyId], clock: Arc<dyn Clock>) -> Router {
    let venues = Records::seeded(companies, |company, id| Venue {
        id: id.clone(),
        company: company.clone(),
        name: format!("{company} hall"),
        contracts: vec![Contract {
            id: format!("{company}-1"),
            venue: id,
            status: Status::Draft,
            signed_by: None,
            signed_at: None,
        }],
    });
    let state = Arc::new(VenueState { venues, clock });
    let lookup = state.clone();
    let owners = crate::owners(move |kind, id| if kind == "venue" { lookup.venues.owner(id) } else { None });
    let guard = |permission| kisum.require(permission).owned_by(owners.clone());
    Router::new()
        .route("/v1/venues", get(list).route_layer(guard(READ)))
        .route("/v1/venues/{id}/contracts/{contract}/sign", post(sign).route_layer(guard(SIGN).on("venue", "id")))
        .with_state(state)
}

async fn list(State(state): State<Arc<VenueState>>, access: Access) -> ApiResult<Json<Venues>> {
    let company = crate::company(&access)?;
    Ok(Json(Venues { venues: state.venues.of(&company) }))
}

async fn sign(
    State(state): State<Arc<VenueState>>,
    access: Access,
    ApiPath((id, contract)): ApiPath<(String, String)>,
) -> ApiResult<Json<Contract>> {
    let company = crate::company(&access)?;
    let signer = access.caller().principal().map(ToString::to_string);
    let now = state.clock.now();
    let signed = state
        .venues
        .update(Some(&company), &id, |venue| {
            let contract = venue.contracts.iter_mut().find(|c| c.id == contract)?;
            if contract.status == Status::Draft {
                contract.status = Status::Signed;
                contract.signed_by = signer;
                contract.signed_at = Some(now);
            }
            Some(contract.clone())
        })
        .flatten()
        .ok_or_else(|| ApiError::not_found("not found"))?;
    tracing::info!(company = %company, venue = %id, contract = %signed.id, "contract signed");
    Ok(Json(signed))
}
