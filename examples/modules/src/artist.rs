//! The artist module: artists and their bookings. Reading an artist is dual auth: a member of the
//! artist's company, or a service whose scopes match (a service has no company and may read any artist);
//! its bookings need `artist:booking:read` as well.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use kisum_client::access::{CompanyId, ResourceRef, Timestamp};
use kisum_client::server::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
use kisum_client::{Access, Kisum};
use serde::{Deserialize, Serialize};

use crate::records::{MAX_PAGE, PageQuery, Record, Repo, Window};
use crate::usage::ModuleDb;
use kisum_client::server::routes::Route;

const PROFILE_READ: &str = "artist:profile:read";
const BOOKING_READ: &str = "artist:booking:read";
const BOOKING_CREATE: &str = "artist:booking:create";

pub(crate) const PERMISSIONS: &[&str] = &[PROFILE_READ, BOOKING_READ, BOOKING_CREATE];

pub(crate) const ROUTES: &[Route] = &[
    Route {
        summary: "The caller's company's artists, oldest first, a page at a time",
        query: crate::PAGE_QUERY,
        ..Route::new("get", "/v1/artists", PROFILE_READ)
    },
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

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Artist {
    id: String,
    company: CompanyId,
    name: String,
}

impl Record for Artist {}

/// A booking: a record of its own, whose parent is its artist.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Booking {
    id: String,
    artist: String,
    /// `YYYY-MM-DD`.
    date: String,
}

impl Record for Booking {
    fn parent(&self) -> Option<&str> {
        Some(&self.artist)
    }
}

/// An artist as answered: its bookings only when asked for (and allowed).
#[derive(Debug, Serialize)]
struct ArtistView {
    id: String,
    company: CompanyId,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    bookings: Option<Vec<Booking>>,
    /// More bookings than one answer holds (the first 200 are listed).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    bookings_truncated: bool,
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
    artists: Repo<Artist>,
    bookings: Repo<Booking>,
}

pub(crate) async fn routes(kisum: &Kisum, companies: &[CompanyId], db: Option<&ModuleDb>) -> Result<Router, String> {
    let artists = crate::records::open(db, "artist.artist", companies, |company, id| Artist {
        id,
        company: company.clone(),
        name: format!("The {company} house band"),
    })
    .await?;
    let bookings = crate::records::open(db, "artist.booking", companies, |company, id| Booking {
        id,
        artist: format!("{company}-1"),
        date: "2026-06-01".to_owned(),
    })
    .await?;
    let owners = crate::owners("artist", artists.clone());
    let state = Arc::new(Artists { artists, bookings });
    let guard = |permission| kisum.require(permission).owned_by(owners.clone());
    let router = Router::new()
        .route("/v1/artists", get(list).route_layer(guard(PROFILE_READ)))
        .route("/v1/artists/{id}", get(one).route_layer(guard(PROFILE_READ).on("artist", "id").services()))
        .route("/v1/artists/{id}/bookings", post(book).route_layer(guard(BOOKING_CREATE).on("artist", "id")))
        .with_state(state);
    Ok(router)
}

#[derive(Debug, Serialize)]
struct ArtistList {
    artists: Vec<Artist>,
    /// The cursor of the next page (`?after=`), absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

async fn list(
    State(artists): State<Arc<Artists>>,
    access: Access,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<Json<ArtistList>> {
    let company = crate::company(&access)?;
    let page = artists.artists.page(&company, None, page.window()?).await?;
    Ok(Json(ArtistList { artists: page.items, next: page.next }))
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
    let not_found = || ApiError::not_found("not found");
    let owner = match access.company() {
        Some(company) => company.clone(),
        None => artists.artists.owner(&id).await?.ok_or_else(not_found)?,
    };
    let artist = artists.artists.get(&owner, &id).await?.ok_or_else(not_found)?;
    let (bookings, bookings_truncated) = if with_bookings {
        let resource = ResourceRef::parse(&format!("{owner}/artist/{id}")).map_err(|_| not_found())?;
        access.require(BOOKING_READ, Some(&resource)).map_err(|r| crate::refused(&r))?;
        let window = Window::FIRST.with_limit(MAX_PAGE);
        let page = artists.bookings.page(&owner, Some(&id), window).await?;
        (Some(page.items), page.next.is_some())
    } else {
        (None, false)
    };
    Ok(Json(ArtistView { id: artist.id, company: artist.company, name: artist.name, bookings, bookings_truncated }))
}

async fn book(
    State(artists): State<Arc<Artists>>,
    access: Access,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<NewBooking>,
) -> ApiResult<(StatusCode, Json<Booking>)> {
    let company = crate::company(&access)?;
    let date = date(&body.date)?;
    // The guard found the artist in the caller's company; it is read again here, in the company.
    let artist = artists.artists.get(&company, &id).await?.ok_or_else(|| ApiError::not_found("not found"))?;
    let make = move |id| Booking { id, artist: artist.id, date };
    let booking = artists.bookings.create(&company, None, Box::new(make)).await?;
    tracing::info!(company = %company, artist = %booking.artist, booking = %booking.id, "artist booked");
    Ok((StatusCode::CREATED, Json(booking)))
}

/// A calendar date, `YYYY-MM-DD`.
fn date(text: &str) -> Result<String, ApiError> {
    let valid = text.len() == 10 && Timestamp::parse(&format!("{text}T00:00:00Z")).is_ok();
    if valid { Ok(text.to_owned()) } else { Err(ApiError::invalid("/date", "must be a date `YYYY-MM-DD`")) }
}
