//! The artist module: artists and their bookings. Reading an artist is dual auth: a member of the
//! artist's company, or a service whose scopes match (a service has no company and may read any artist);
//! its bookings need `artist:booking:read` as well.

use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use kisum_client::access::{CompanyId, ResourceRef, Timestamp};
use kisum_client::server::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
use kisum_client::{Access, Kisum};
use serde::{Deserialize, Serialize};

use crate::records::{Ids, Records};
use kisum_client::server::routes::Route;

const PROFILE_READ: &str = "artist:profile:read";
const BOOKING_READ: &str = "artist:booking:read";
const BOOKING_CREATE: &str = "artist:booking:create";

pub(crate) const PERMISSIONS: &[&str] = &[PROFILE_READ, BOOKING_READ, BOOKING_CREATE];

pub(crate) const ROUTES: &[Route] = &[
    Route {
        summary: "One artist; `?include=bookings` adds its bookings and needs `artist:booking:read` too (dual auth)",
        resource: Some("artist"),
        also: &[BOOKING_READ],
        services: true,
        ..Route::new("get", "/v1/artists/{id}", PROFILE_READ)
    },
    Route {
        summary: "Books an artist on a date (`YYYY-MM-DD`)",
        resource: Some("artist"),
        body: &[("date", "string")],
        status: 201,
        ..Route::new("post", "/v1/artists/{id}/bookings", BOOKING_CREATE)
    },
];

#[derive(Debug, Clone)]
struct Artist {
    id: String,
    company: CompanyId,
    name: String,
    bookings: Vec<Booking>,
}

#[derive(Debug, Clone, Serialize)]
struct Booking {
    id: String,
    artist: String,
    /// `YYYY-MM-DD`.
    date: String,
}

/// An artist as answered: its bookings only when asked for (and allowed).
#[derive(Debug, Serialize)]
struct ArtistView {
    id: String,
    company: CompanyId,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    bookings: Option<Vec<Booking>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ArtistQuery {
    include: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewBooking {
    date: String,
}

struct Artists {
    artists: Records<Artist>,
    booking_ids: Mutex<Ids>,
}

pub(crate) fn routes(kisum: &Kisum, companies: &[CompanyId]) -> Router {
    let mut booking_ids = Ids::default();
    let artists = Records::seeded(companies, |company, id| Artist {
        id: id.clone(),
        company: company.clone(),
        name: format!("The {company} house band"),
        bookings: vec![Booking { id: booking_ids.next(company), artist: id, date: "2026-06-01".to_owned() }],
    });
    let state = Arc::new(Artists { artists, booking_ids: Mutex::new(booking_ids) });
    let lookup = state.clone();
    let owners = crate::owners(move |kind, id| if kind == "artist" { lookup.artists.owner(id) } else { None });
    let guard = |permission| kisum.require(permission).owned_by(owners.clone());
    Router::new()
        .route("/v1/artists/{id}", get(one).route_layer(guard(PROFILE_READ).on("artist", "id").services()))
        .route("/v1/artists/{id}/bookings", post(book).route_layer(guard(BOOKING_CREATE).on("artist", "id")))
        .with_state(state)
}

async fn one(
    State(artists): State<Arc<Artists>>,
    access: Access,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<ArtistQuery>,
) -> ApiResult<Json<ArtistView>> {
    let with_bookings = match query.include.as_deref() {
        None | Some("") => false,
        Some("bookings") => true,
        Some(_) => return Err(ApiError::invalid("?include", "the only thing to include is `bookings`")),
    };
    // A user's guard already refused another company's artist; a service (no company) reads any.
    let (owner, artist) = artists.artists.get(access.company(), &id).ok_or_else(|| ApiError::not_found("not found"))?;
    let bookings = if with_bookings {
        let resource =
            ResourceRef::parse(&format!("{owner}/artist/{id}")).map_err(|_| ApiError::not_found("not found"))?;
        access.require(BOOKING_READ, Some(&resource)).map_err(|r| crate::refused(&r))?;
        Some(artist.bookings)
    } else {
        None
    };
    Ok(Json(ArtistView { id: artist.id, company: artist.company, name: artist.name, bookings }))
}

async fn book(
    State(artists): State<Arc<Artists>>,
    access: Access,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<NewBooking>,
) -> ApiResult<(StatusCode, Json<Booking>)> {
    let company = crate::company(&access)?;
    let date = date(&body.date)?;
    let booking = artists
        .artists
        .update(Some(&company), &id, |artist| {
            let id = artists.booking_ids.lock().unwrap_or_else(PoisonError::into_inner).next(&company);
            let booking = Booking { id, artist: artist.id.clone(), date };
            artist.bookings.push(booking.clone());
            booking
        })
        .ok_or_else(|| ApiError::not_found("not found"))?;
    tracing::info!(company = %company, artist = %booking.artist, booking = %booking.id, "artist booked");
    Ok((StatusCode::CREATED, Json(booking)))
}

/// A calendar date, `YYYY-MM-DD`.
fn date(text: &str) -> Result<String, ApiError> {
    let valid = text.len() == 10 && Timestamp::parse(&format!("{text}T00:00:00Z")).is_ok();
    if valid { Ok(text.to_owned()) } else { Err(ApiError::invalid("/date", "must be a date `YYYY-MM-DD`")) }
}
