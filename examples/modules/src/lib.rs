#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

#[cfg(feature = "actix")]
pub mod actix;
mod ai;
mod artist;
mod copilot;
mod finance;
mod mcp;
mod promoters;
mod records;
mod simulation;
mod touring;
mod usage;
mod venue;

use std::sync::Arc;

use axum::routing::get;
use axum::{Json, Router};
use kisum_client::access::{AccessCatalog, CompanyId};
use kisum_client::entitlements::{Clock, SystemClock};
use kisum_client::errors::ErrorCode;
use kisum_client::server::ApiError;
use kisum_client::{Access, Kisum, OwnerLookup, Owners, Refusal};

use kisum_client::server::routes::Route;

pub use copilot::{CopilotConfig, PlannerConfig};
pub use mcp::McpConfig;
pub use usage::ModuleDb;

/// What a module server keeps and reaches beyond the SDK.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Where the module keeps its records (and the ai module its usage counter and conversations):
    /// durable, shared by replicas. `None`: in this process's memory.
    pub db: Option<ModuleDb>,
    /// The ai module's copilot: its planner and where its tools find the other modules.
    pub copilot: CopilotConfig,
    /// The ai module's MCP endpoint: its public URL, Auth, and the `Host`/`Origin` allow-lists.
    pub mcp: McpConfig,
}

/// One of the six module servers of API.md §4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Module {
    /// Invoices: `finance:invoice:*`, multi-currency and the currency limit.
    Finance,
    /// Artists and their bookings, for user and service tokens.
    Artist,
    /// Venues and their contracts.
    Venue,
    /// Events.
    Promoters,
    /// Tours.
    Touring,
    /// The copilot (counted against `ai.monthly_requests`) and an MCP endpoint.
    Ai,
}

impl Module {
    /// Every module, in port order (`7410`…`7415`).
    pub const ALL: [Module; 6] =
        [Module::Finance, Module::Artist, Module::Venue, Module::Promoters, Module::Touring, Module::Ai];

    /// The module id of the catalog: `finance`, `artist`, `venue`, `promoters`, `touring`, `ai`.
    pub fn name(self) -> &'static str {
        match self {
            Module::Finance => "finance",
            Module::Artist => "artist",
            Module::Venue => "venue",
            Module::Promoters => "promoters",
            Module::Touring => "touring",
            Module::Ai => "ai",
        }
    }

    /// The port of API.md §1: `7410` plus the module's place in [`Module::ALL`].
    pub fn default_port(self) -> u16 {
        7410 + self as u16
    }

    /// Every permission the module's route table names, including those its handlers check beyond the
    /// route's guard (`artist:booking:read` for `?include=bookings`, the permissions of the MCP tools).
    pub fn permissions(self) -> &'static [&'static str] {
        match self {
            Module::Finance => finance::PERMISSIONS,
            Module::Artist => artist::PERMISSIONS,
            Module::Venue => venue::PERMISSIONS,
            Module::Promoters => promoters::PERMISSIONS,
            Module::Touring => touring::PERMISSIONS,
            Module::Ai => ai::PERMISSIONS,
        }
    }

    /// Refuses to start when the catalog lacks a permission of the route table: the error names every
    /// missing one.
    pub fn check_catalog(self, catalog: &AccessCatalog) -> Result<(), String> {
        let missing: Vec<String> =
            self.permissions().iter().filter(|p| catalog.permission(p).is_err()).map(|p| format!("`{p}`")).collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "the {} module's route table names {}, which the catalog lacks",
                self.name(),
                missing.join(", ")
            ))
        }
    }

    /// The module on the SDK, connected with `config` ([`Kisum::connect`]: keys, revocations, the catalog,
    /// the change feed), once the catalog names every permission of the route table: its router
    /// ([`Module::router_with`]) and the SDK's feed follower (abort it to stop). The one start of the module
    /// servers, standalone or in the one command, set up by `options`.
    pub async fn start(
        self,
        config: kisum_client::RemoteConfig,
        companies: &[CompanyId],
        options: &Options,
    ) -> Result<(Router, tokio::task::JoinHandle<()>), String> {
        let (kisum, feed) = Kisum::connect(config, Arc::new(SystemClock))
            .await
            .map_err(|e| format!("the {} module cannot reach Auth and Core: {e}", self.name()))?;
        if let Err(e) = self.check_catalog(&kisum.source().catalog()) {
            feed.abort();
            return Err(format!("the {} module cannot start: {e}", self.name()));
        }
        match self.router_with(kisum, companies, Arc::new(SystemClock), options).await {
            Ok(router) => Ok((router, feed)),
            Err(e) => {
                feed.abort();
                Err(e)
            }
        }
    }

    /// The module's router on the wall clock, its records in memory: see [`Module::router_with`].
    pub async fn router(self, kisum: Kisum, companies: &[CompanyId]) -> Result<Router, String> {
        self.router_with(kisum, companies, Arc::new(SystemClock), &Options::default()).await
    }

    /// The module's router: its routes behind `kisum.layer()` and a `kisum.require(…)` guard each (the owner of
    /// a record named in the path found in the module's records), `GET /health/live`, `GET /health/ready`
    /// (ready when the SDK's catalog names every permission of the route table) and `GET /openapi.json`,
    /// finished by [`kisum_client::server::finish`] (request ids, problem+json fallbacks, the 64 KiB body limit).
    /// Every company of `companies` that never had a record of a kind the module owns gets one, with id
    /// `{company}-1`. `clock` dates what the module records (signatures, messages) and picks the month
    /// the copilot counts in. With [`Options::db`], the module's records, the ai module's usage counter
    /// and its conversations live there ([`ModuleDb`]: durable, shared by replicas, exact under
    /// concurrency); without, in this process's memory. The error says what could not be opened or seeded.
    pub async fn router_with(
        self,
        kisum: Kisum,
        companies: &[CompanyId],
        clock: Arc<dyn Clock>,
        options: &Options,
    ) -> Result<Router, String> {
        let db = options.db.as_ref();
        let routes = match self {
            Module::Finance => finance::routes(&kisum, companies, db).await?,
            Module::Artist => artist::routes(&kisum, companies, db).await?,
            Module::Venue => venue::routes(&kisum, companies, clock, db).await?,
            Module::Promoters => promoters::routes(&kisum, companies, db).await?,
            Module::Touring => touring::routes(&kisum, companies, db).await?,
            Module::Ai => ai::routes(&kisum, clock, db, &options.copilot, &options.mcp).await?,
        };
        let mut guarded = routes.layer(kisum.layer());
        let mut open = Router::new();
        if self == Module::Ai {
            // RFC 9728: where an MCP client learns which authorization server issues the endpoint's tokens,
            // named by every `401` of the endpoint.
            let resource = Arc::new(options.mcp.resource.clone());
            guarded = guarded
                .layer(axum::middleware::from_fn(move |request, next| mcp::challenge(resource.clone(), request, next)));
            let metadata = Arc::new(mcp::metadata(&options.mcp));
            let served = move || {
                let metadata = metadata.clone();
                async move { Json(metadata.as_ref().clone()) }
            };
            open = open
                .route("/.well-known/oauth-protected-resource", get(served.clone()))
                .route("/.well-known/oauth-protected-resource/mcp", get(served));
        }
        let document = Arc::new(kisum_client::server::routes::document(
            self.name(),
            env!("CARGO_PKG_VERSION"),
            &format!("http://127.0.0.1:{}", self.default_port()),
            self.routes(),
        ));
        let open = open
            .route("/health/live", get(|| async { kisum_client::server::health::live() }))
            .route(
                "/health/ready",
                get(move || async move {
                    kisum_client::server::health::ready(self.check_catalog(&kisum.source().catalog()))
                }),
            )
            .route("/openapi.json", get(move || async move { Json(document.as_ref().clone()) }));
        Ok(kisum_client::server::finish(self.name(), open.merge(guarded)))
    }

    fn routes(self) -> &'static [Route] {
        match self {
            Module::Finance => finance::ROUTES,
            Module::Artist => artist::ROUTES,
            Module::Venue => venue::ROUTES,
            Module::Promoters => promoters::ROUTES,
            Module::Touring => touring::ROUTES,
            Module::Ai => ai::ROUTES,
        }
    }
}

impl std::fmt::Display for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not one of the six modules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownModule(pub String);

impl std::fmt::Display for UnknownModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}` is not a module (finance, artist, venue, promoters, touring, ai)", self.0)
    }
}

impl std::error::Error for UnknownModule {}

impl std::str::FromStr for Module {
    type Err = UnknownModule;

    fn from_str(s: &str) -> Result<Module, UnknownModule> {
        Module::ALL.into_iter().find(|m| m.name() == s).ok_or_else(|| UnknownModule(s.to_owned()))
    }
}

/// The caller's company: every route but the artist reads serves user tokens only, and their guards let
/// no service token through, so this refuses only what the guard already would.
fn company(access: &Access) -> Result<CompanyId, ApiError> {
    access
        .company()
        .cloned()
        .ok_or_else(|| ApiError::new(ErrorCode::Forbidden, "this route serves user tokens, which name a company"))
}

/// An SDK refusal met in a handler, answered as the servers answer every error (with the request id).
fn refused(refusal: &Refusal) -> ApiError {
    ApiError::from_problem(refusal.problem().clone())
}

/// `403 LIMIT_EXCEEDED` naming limit `key`.
fn limit_exceeded(key: &str, detail: String) -> ApiError {
    ApiError::new(ErrorCode::LimitExceeded, detail).with_required(key)
}

/// The value of a limit for people and bodies: a number, or `"unlimited"`.
fn limit_json(limit: Option<u64>) -> serde_json::Value {
    match limit {
        Some(n) => n.into(),
        None => "unlimited".into(),
    }
}

/// The capacity of `key` for `access`: `Some(n)`, or `None` for unlimited. An absent limit means
/// capacity 0 (DESIGN.md §3).
fn capacity(access: &Access, key: &str) -> Option<u64> {
    access.limit(key).unwrap_or(Some(0))
}

/// A name-like field: trimmed, 1 to 200 characters.
fn name_field(path: &str, value: &str) -> Result<String, ApiError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(ApiError::invalid(path, "must not be empty"));
    }
    if trimmed.chars().count() > 200 {
        return Err(ApiError::invalid(path, "must be at most 200 characters"));
    }
    Ok(trimmed.to_owned())
}

/// The guards' [`Owners`] of a module's records of `kind` (`invoice`): looked up in its repository, so a
/// record in the database is found wherever it was made (another replica); a database that fails refuses.
fn owners<T: records::Record>(kind: &'static str, records: records::Repo<T>) -> Owners {
    Owners::from_lookup(RecordOwners { kind, records })
}

struct RecordOwners<T> {
    kind: &'static str,
    records: records::Repo<T>,
}

#[async_trait::async_trait]
impl<T: records::Record> OwnerLookup for RecordOwners<T> {
    async fn owner(&self, kind: &str, id: &str) -> Result<Option<CompanyId>, Refusal> {
        if kind != self.kind {
            return Ok(None);
        }
        self.records.owner(id).await.map_err(|e| {
            let problem = e.problem();
            Refusal::new(problem.code, problem.detail.clone())
        })
    }
}

/// `?after=&limit=` of every list route.
const PAGE_QUERY: &[(&str, &str, &str)] = &[
    ("after", "string", "the `next` cursor of the previous page"),
    ("limit", "integer", "records per page, 1 to 200 (default 50)"),
];

/// Entry points for the benchmarks (`benches/simulation.rs`): the simulation without HTTP. Not an API.
#[doc(hidden)]
pub mod benching {
    /// Runs the simulation `inputs` (the JSON body of `POST /v1/copilot/simulations`); its median profit.
    pub fn simulate(inputs: &serde_json::Value) -> Result<i64, String> {
        let inputs: crate::simulation::Inputs = serde_json::from_value(inputs.clone()).map_err(|e| e.to_string())?;
        inputs.validate().map_err(|e| e.to_string())?;
        Ok(crate::simulation::simulate(&inputs).profit.p50)
    }

    /// `n` standard normals from the simulation's generator, summed: the cost of its randomness alone.
    pub fn normals(seed: u64, n: u32) -> f64 {
        let mut rng = crate::simulation::Rng::new(seed);
        (0..n).map(|_| rng.normal()).sum()
    }
}

/// Entry points for the fuzz targets (`fuzz/`) and their corpus replay: the parsers of untrusted input
/// that are not public otherwise. Not an API.
#[doc(hidden)]
pub mod fuzzing {
    /// Reads one MCP JSON-RPC message as the endpoint does; whether it is one to act on.
    pub fn mcp_message(bytes: &[u8]) -> bool {
        crate::mcp::accepts(bytes)
    }
}
