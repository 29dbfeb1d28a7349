//! The finance module: invoices. A currency other than the base one needs the company's feature
//! `finance.multi_currency`, and the distinct non-base currencies a company invoices in are bounded by its
//! limit `finance.currencies`.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use kisum_client::access::{CompanyId, DenyReason};
use kisum_client::server::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
use kisum_client::{Access, Kisum, Refusal};
use serde::{Deserialize, Serialize};

use crate::records::{Check, PageQuery, Record, Repo};
use crate::usage::ModuleDb;
use kisum_client::server::routes::Route;

const READ: &str = "finance:invoice:read";
const CREATE: &str = "finance:invoice:create";
const APPROVE: &str = "finance:invoice:approve";

pub(crate) const PERMISSIONS: &[&str] = &[READ, CREATE, APPROVE];

pub(crate) const ROUTES: &[Route] = &[
    Route {
        summary: "The caller's company's invoices, oldest first, a page at a time",
        query: crate::PAGE_QUERY,
        ..Route::new("get", "/v1/invoices", READ)
    },
    Route {
        summary: "Creates an invoice (a non-base currency needs `finance.multi_currency` and room in `finance.currencies`)",
        body: &[("currency", "string"), ("amount", "integer")],
        status: 201,
        ..Route::new("post", "/v1/invoices", CREATE)
    },
    Route { summary: "One invoice", resource: Some("invoice"), ..Route::new("get", "/v1/invoices/{id}", READ) },
    Route {
        summary: "Approves an invoice (approving an approved one changes nothing)",
        resource: Some("invoice"),
        ..Route::new("post", "/v1/invoices/{id}/approve", APPROVE)
    },
];

/// The currency every company invoices in without `finance.multi_currency`.
const BASE_CURRENCY: &str = "EUR";
const MULTI_CURRENCY: &str = "finance.multi_currency";
const CURRENCIES: &str = "finance.currencies";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Invoice {
    id: String,
    company: CompanyId,
    /// ISO 4217 code.
    currency: String,
    /// In minor units.
    amount: u64,
    status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    approved_by: Option<String>,
}

impl Record for Invoice {}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Status {
    Draft,
    Approved,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewInvoice {
    currency: String,
    amount: i64,
}

#[derive(Debug, Serialize)]
struct Invoices {
    invoices: Vec<Invoice>,
    /// The cursor of the next page (`?after=`), absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

struct Finance {
    invoices: Repo<Invoice>,
}

pub(crate) async fn routes(kisum: &Kisum, companies: &[CompanyId], db: Option<&ModuleDb>) -> Result<Router, String> {
    let invoices = crate::records::open(db, "finance.invoice", companies, |company, id| Invoice {
        id,
        company: company.clone(),
        currency: BASE_CURRENCY.to_owned(),
        amount: 125_000,
        status: Status::Draft,
        approved_by: None,
    })
    .await?;
    let owners = crate::owners("invoice", invoices.clone());
    let state = Arc::new(Finance { invoices });
    let guard = |permission| kisum.require(permission).owned_by(owners.clone());
    let router = Router::new()
        .route("/v1/invoices", get(list).route_layer(guard(READ)))
        .route("/v1/invoices", post(create).route_layer(guard(CREATE)))
        .route("/v1/invoices/{id}", get(one).route_layer(guard(READ).on("invoice", "id")))
        .route("/v1/invoices/{id}/approve", post(approve).route_layer(guard(APPROVE).on("invoice", "id")))
        .with_state(state);
    Ok(router)
}

async fn list(
    State(finance): State<Arc<Finance>>,
    access: Access,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<Json<Invoices>> {
    let company = crate::company(&access)?;
    let page = finance.invoices.page(&company, None, page.window()?).await?;
    Ok(Json(Invoices { invoices: page.items, next: page.next }))
}

async fn one(
    State(finance): State<Arc<Finance>>,
    access: Access,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Invoice>> {
    let company = crate::company(&access)?;
    let invoice = finance.invoices.get(&company, &id).await?.ok_or_else(|| ApiError::not_found("not found"))?;
    Ok(Json(invoice))
}

async fn create(
    State(finance): State<Arc<Finance>>,
    access: Access,
    ApiJson(body): ApiJson<NewInvoice>,
) -> ApiResult<(StatusCode, Json<Invoice>)> {
    let company = crate::company(&access)?;
    let currency = currency(&body.currency)?;
    let amount = u64::try_from(body.amount)
        .ok()
        .filter(|a| *a > 0)
        .ok_or_else(|| ApiError::invalid("/amount", "must be a positive integer (minor units)"))?;
    if currency != BASE_CURRENCY && !access.has_feature(MULTI_CURRENCY) {
        let refusal = Refusal::of_deny(DenyReason::FeatureNotEntitled, CREATE, Some(MULTI_CURRENCY.to_owned()));
        return Err(crate::refused(&refusal));
    }
    let capacity = crate::capacity(&access, CURRENCIES);
    // Only a non-base currency is checked against the others in use.
    let check: Option<Check<Invoice>> = (currency != BASE_CURRENCY).then(|| {
        let asked = currency.clone();
        Box::new(move |mine: &[Invoice]| {
            let mut in_use: BTreeSet<&str> =
                mine.iter().map(|i| i.currency.as_str()).filter(|c| *c != BASE_CURRENCY).collect();
            in_use.insert(&asked);
            match capacity {
                Some(limit) if in_use.len() as u64 > limit => Err(crate::limit_exceeded(
                    CURRENCIES,
                    format!(
                        "`{asked}` would make {} currencies besides {BASE_CURRENCY}; the plan allows {limit}",
                        in_use.len()
                    ),
                )),
                _ => Ok(()),
            }
        }) as Check<Invoice>
    });
    let owner = company.clone();
    let make = move |id| Invoice { id, company: owner, currency, amount, status: Status::Draft, approved_by: None };
    let invoice = finance.invoices.create(&company, check, Box::new(make)).await?;
    tracing::info!(company = %company, invoice = %invoice.id, currency = %invoice.currency, "invoice created");
    Ok((StatusCode::CREATED, Json(invoice)))
}

async fn approve(
    State(finance): State<Arc<Finance>>,
    access: Access,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Invoice>> {
    let company = crate::company(&access)?;
    let approver = access.caller().principal().map(ToString::to_string);
    let approve = move |invoice: &mut Invoice| {
        if invoice.status == Status::Draft {
            invoice.status = Status::Approved;
            invoice.approved_by = approver;
        }
        Ok(())
    };
    let invoice = finance
        .invoices
        .update(&company, &id, Box::new(approve))
        .await?
        .ok_or_else(|| ApiError::not_found("not found"))?;
    Ok(Json(invoice))
}

/// An ISO 4217-shaped code: three uppercase ASCII letters.
fn currency(text: &str) -> Result<String, ApiError> {
    if text.len() == 3 && text.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(text.to_owned())
    } else {
        Err(ApiError::invalid(
            "/currency",
            format!("`{}` is not three uppercase letters", text.chars().take(16).collect::<String>().escape_debug()),
        ))
    }
}
