//! Where access comes from (API.md §5): an [`AccessSource`] answers a principal's compiled access in a
//! company. [`LocalSource`] evaluates in process (Auth itself, embedded use); [`RemoteSource`] fetches
//! Auth's snapshot endpoint and caches it per (principal, company), dropping an entry on a feed event for
//! it, on a token whose `ver` is newer, and at its `valid_until`; concurrent misses fetch once; a fetch
//! racing an invalidation can never make stale data current (every entry carries its version, and an
//! invalidation raises the floor it must reach).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use kisum_access::doc::AccessCatalogDoc;
use kisum_access::{Access, AccessCatalog, Acting, CompanyId, Directory, Principal, Snapshot, WireSnapshot};
use kisum_entitlements::{Clock, EntitlementsSummary, Timestamp};
use kisum_errors::ErrorCode;

use crate::problem::Refusal;

/// Where a decision's access came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// Evaluated or fetched for this request.
    Live,
    /// A cached snapshot, with the change feed connected (any change would have dropped it).
    Cache,
    /// A cached snapshot while the change feed is down (Auth unreachable): used for at most 5 minutes
    /// after it was fetched, and never past its `valid_until`.
    Stale,
}

impl Origin {
    /// `live`, `cache` or `stale`.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Live => "live",
            Origin::Cache => "cache",
            Origin::Stale => "stale",
        }
    }
}

/// A principal's access in a company, ready for checks.
#[derive(Debug, Clone)]
pub struct Granted {
    /// The compiled access.
    pub snapshot: Arc<Snapshot>,
    /// The company's entitlements when it was computed (features and limits for module rules).
    pub entitlements: Arc<EntitlementsSummary>,
    /// Where it came from.
    pub origin: Origin,
}

/// A source of compiled access.
#[async_trait]
pub trait AccessSource: Send + Sync + 'static {
    /// The catalog snapshots are interned against.
    fn catalog(&self) -> Arc<AccessCatalog>;

    /// `principal`'s access in `company` now, at least as fresh as `min_version` (a token's `ver`). With
    /// `acting` (a token with `act`; `principal` is then its current actor), the access is what the user
    /// acted for delegated to the actors, never what others did (DESIGN.md §5). Fails closed:
    /// `503 UPSTREAM_UNAVAILABLE` when it cannot be had.
    async fn access(
        &self,
        principal: &Principal,
        acting: Option<&Acting>,
        company: &CompanyId,
        min_version: u64,
    ) -> Result<Granted, Refusal>;

    /// Records, where the company's owners can list it, what a platform staff user did under open support
    /// session `session` (API.md §3): `route` (`METHOD /path`, or the permission decided) and the record
    /// it touched. The guard calls it before the handler runs and refuses the request when it fails, so
    /// nothing done under a support session goes unrecorded.
    async fn record_support_access(
        &self,
        company: &CompanyId,
        session: &str,
        route: &str,
        record: Option<&str>,
    ) -> Result<(), Refusal>;

    /// Where the change feed this source follows is, if it follows one: see
    /// [`RemoteSource::feed_position`].
    fn feed_position(&self) -> Option<(u64, u64, u64)> {
        None
    }
}

/// Access evaluated in process from a directory (always `live`).
pub struct LocalSource {
    directory: Arc<Directory>,
    clock: Arc<dyn Clock>,
}

impl LocalSource {
    /// A source on `directory`, at `clock`'s time.
    pub fn new(directory: Arc<Directory>, clock: Arc<dyn Clock>) -> LocalSource {
        LocalSource { directory, clock }
    }
}

#[async_trait]
impl AccessSource for LocalSource {
    fn catalog(&self) -> Arc<AccessCatalog> {
        self.directory.catalog()
    }

    async fn access(
        &self,
        principal: &Principal,
        acting: Option<&Acting>,
        company: &CompanyId,
        _: u64,
    ) -> Result<Granted, Refusal> {
        let now = self.clock.now();
        let snapshot = match acting {
            Some(acting) => self.directory.acting_snapshot(acting, company, now),
            None => self.directory.snapshot(principal, company, now),
        };
        let entitlements = self.directory.entitlements(company, now).unwrap_or_default();
        Ok(Granted { snapshot: Arc::new(snapshot), entitlements: Arc::new(entitlements), origin: Origin::Live })
    }

    /// Into the directory, as a platform write (a process that embeds the directory behind a store
    /// records it there).
    async fn record_support_access(
        &self,
        company: &CompanyId,
        session: &str,
        route: &str,
        record: Option<&str>,
    ) -> Result<(), Refusal> {
        let change = kisum_access::Change::RecordSupportAccess {
            company: company.clone(),
            session: session.to_owned(),
            route: route.to_owned(),
            record: record.map(str::to_owned),
        };
        self.directory.apply(&kisum_access::Actor::Platform, self.clock.now(), change).map(|_| ()).map_err(|e| {
            Refusal::new(ErrorCode::UpstreamUnavailable, format!("the support access was not recorded: {e}"))
        })
    }
}

/// The longest a fetched snapshot is used.
pub const MAX_AGE: Duration = Duration::from_secs(300);

/// Whose access in which company: an acting token's entry is apart from its agent's own. Feed events
/// name the agent; the version floor of that principal retires every entry of it.
type Key = (Principal, Option<Acting>, CompanyId);

/// A company's version floors: for all of it, and per principal.
#[derive(Debug, Default)]
struct Floors {
    company: u64,
    principals: HashMap<Principal, u64>,
}

#[derive(Debug)]
struct Entry {
    snapshot: Arc<Snapshot>,
    entitlements: Arc<EntitlementsSummary>,
    fetched: Instant,
}

/// How the remote source reaches Auth and Core.
#[derive(Debug, Clone)]
pub struct RemoteConfig {
    /// Auth's base URL (`http://127.0.0.1:7400`).
    pub auth_url: String,
    /// Core's base URL, for the catalog (`http://127.0.0.1:7401`).
    pub core_url: String,
    /// The module's service client (needs scope `auth:access:read`).
    pub client_id: String,
    /// Its secret (redacted when printed).
    pub client_secret: crate::Secret,
    /// PEM certificates to trust beside the system's roots when reaching Auth and Core over HTTPS.
    pub ca_bundle: Option<Vec<u8>>,
    /// How long a fetched snapshot is used at most (default [`MAX_AGE`]).
    pub max_age: Duration,
    /// The issuer tokens must name (Auth's `issuer`).
    pub issuer: String,
    /// The audience tokens must name.
    pub audience: String,
}

impl RemoteConfig {
    /// Auth at `auth_url`, Core at `core_url`, the module's client `client_id`/`client_secret`; issuer
    /// `auth_url`, audience `kisum`, snapshots used for at most [`MAX_AGE`].
    pub fn new(auth_url: &str, core_url: &str, client_id: &str, client_secret: &str) -> RemoteConfig {
        RemoteConfig {
            auth_url: auth_url.trim_end_matches('/').to_owned(),
            core_url: core_url.trim_end_matches('/').to_owned(),
            client_id: client_id.to_owned(),
            client_secret: client_secret.into(),
            ca_bundle: None,
            max_age: MAX_AGE,
            issuer: auth_url.trim_end_matches('/').to_owned(),
            audience: "kisum".to_owned(),
        }
    }
}

/// Access fetched from Auth's snapshot endpoint, cached, kept fresh by the change feed
/// ([`crate::feed`]).
pub struct RemoteSource {
    http: reqwest::Client,
    config: RemoteConfig,
    catalog: ArcSwap<AccessCatalog>,
    cache: moka::future::Cache<Key, Arc<Entry>>,
    /// The version each principal's access in a company (and the company's as a whole) must reach:
    /// raised by feed events.
    floors: Mutex<HashMap<CompanyId, Floors>>,
    /// Whether the feed is connected: cached answers are then `cache`, else `stale`.
    feed_connected: AtomicBool,
    /// Where the feed is: the sequence it started from (after the last resync), the last one applied, and
    /// how many events it applied since it started (equal to their difference when nothing was skipped).
    feed_from: AtomicU64,
    feed_at: AtomicU64,
    feed_applied: AtomicU64,
    token: crate::service::ServiceToken,
    /// The token that records support access (`auth:support:record`), asked for only when needed.
    support_token: crate::service::ServiceToken,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for RemoteSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteSource")
            .field("auth_url", &self.config.auth_url)
            .field("cached", &self.cache.entry_count())
            .finish_non_exhaustive()
    }
}

impl RemoteSource {
    /// A source fetching from Auth with the module's client credentials; reads the catalog from Core.
    pub async fn connect(
        http: reqwest::Client,
        config: RemoteConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<RemoteSource, Refusal> {
        let token = crate::service::ServiceToken::new(
            http.clone(),
            &config.auth_url,
            &config.client_id,
            config.client_secret.expose(),
            "auth:access:read",
        );
        let support_token = crate::service::ServiceToken::new(
            http.clone(),
            &config.auth_url,
            &config.client_id,
            config.client_secret.expose(),
            "auth:support:record",
        );
        let catalog = fetch_catalog(&http, &config.core_url, &token).await?;
        let cache = moka::future::Cache::builder()
            .max_capacity(100_000)
            .time_to_live(config.max_age)
            .support_invalidation_closures()
            .build();
        Ok(RemoteSource {
            http,
            config,
            catalog: ArcSwap::from_pointee(catalog),
            cache,
            floors: Mutex::new(HashMap::new()),
            feed_connected: AtomicBool::new(false),
            feed_from: AtomicU64::new(0),
            feed_at: AtomicU64::new(0),
            feed_applied: AtomicU64::new(0),
            token,
            support_token,
            clock,
        })
    }

    /// The floor `principal`'s access in `company` must reach: the larger of its own and its company's.
    fn floor(&self, principal: &Principal, company: &CompanyId) -> u64 {
        let floors = self.floors.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        floors.get(company).map_or(0, |f| f.company.max(f.principals.get(principal).copied().unwrap_or(0)))
    }

    /// A feed event: the access of `principals` in `company` changed at `version` (all of the company's
    /// when `principals` is `None`). Their entries are dropped, and nothing older can come back.
    pub async fn changed(&self, company: &CompanyId, principals: Option<&[Principal]>, version: u64) {
        {
            let mut floors = self.floors.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let f = floors.entry(company.clone()).or_default();
            match principals {
                Some(ps) => {
                    for p in ps {
                        let own = f.principals.entry(p.clone()).or_insert(0);
                        *own = (*own).max(version);
                    }
                }
                None => f.company = f.company.max(version),
            }
        }
        match principals {
            Some(ps) => {
                for p in ps {
                    self.cache.invalidate(&(p.clone(), None, company.clone())).await;
                }
                // Entries of agents acting for users are retired by the floors raised above.
            }
            None => {
                let company = company.clone();
                if let Err(e) = self.cache.invalidate_entries_if(move |k, _| k.2 == company) {
                    tracing::error!(error = %e, "cache invalidation failed; dropping everything");
                    self.cache.invalidate_all();
                }
            }
        }
    }

    /// The feed lost events (`410`): everything cached is dropped.
    pub fn reset(&self) {
        self.cache.invalidate_all();
    }

    /// Whether the feed is connected.
    pub fn set_feed_connected(&self, connected: bool) {
        self.feed_connected.store(connected, Ordering::SeqCst);
    }

    /// The feed (re)starts from sequence `seq` (after loading the revocations).
    pub(crate) fn feed_started(&self, seq: u64) {
        self.feed_from.store(seq, Ordering::SeqCst);
        self.feed_at.store(seq, Ordering::SeqCst);
        self.feed_applied.store(0, Ordering::SeqCst);
    }

    /// The feed applied the event of sequence `seq`.
    pub(crate) fn feed_applied(&self, seq: u64) {
        self.feed_at.store(seq, Ordering::SeqCst);
        self.feed_applied.fetch_add(1, Ordering::SeqCst);
    }

    /// Where the feed is: `(from, at, applied)` — the sequence it started from after its last resync, the
    /// last one applied, and how many events it applied since. Auth's feed has one event per committed
    /// change, so `applied == at - from` means no event was skipped (and none applied twice).
    pub fn position(&self) -> (u64, u64, u64) {
        (
            self.feed_from.load(Ordering::SeqCst),
            self.feed_at.load(Ordering::SeqCst),
            self.feed_applied.load(Ordering::SeqCst),
        )
    }

    /// Auth's base URL.
    pub fn auth_url(&self) -> &str {
        &self.config.auth_url
    }

    /// How this source reads Auth's change feed (its client, Auth's URL, its service token).
    pub fn feed(&self) -> crate::feed::FeedReader<'_> {
        crate::feed::FeedReader { http: &self.http, auth_url: &self.config.auth_url, token: &self.token }
    }

    async fn fetch(
        &self,
        principal: &Principal,
        acting: Option<&Acting>,
        company: &CompanyId,
        floor: u64,
    ) -> Result<Arc<Entry>, Refusal> {
        let unavailable = |detail: String| Refusal::new(ErrorCode::UpstreamUnavailable, detail);
        let mut query = vec![("principal", principal.to_string()), ("company", company.to_string())];
        if let Some(acting) = acting {
            query.push(("acting_for", acting.user.to_string()));
            if !acting.prior.is_empty() {
                let prior: Vec<String> = acting.prior.iter().map(ToString::to_string).collect();
                query.push(("prior_actors", prior.join(",")));
            }
        }
        for attempt in 0..2 {
            let token = self.token.get().await?;
            let mut request =
                crate::trace::propagate(self.http.get(format!("{}/v1/access/snapshot", self.config.auth_url)))
                    .query(&query)
                    .timeout(crate::REQUEST_TIMEOUT)
                    .bearer_auth(token);
            if floor > 0 {
                request = request.header("kisum-at-least", floor.to_string());
            }
            let response = request
                .send()
                .await
                .map_err(|e| unavailable(format!("Auth is unreachable: {}", crate::secret::causes(&e))))?;
            if response.status() == reqwest::StatusCode::UNAUTHORIZED && attempt == 0 {
                self.token.clear().await;
                continue;
            }
            if !response.status().is_success() {
                return Err(unavailable(format!("Auth answered {} for a snapshot", response.status())));
            }
            let wire: WireSnapshot =
                response.json().await.map_err(|e| unavailable(format!("a snapshot that does not parse: {e}")))?;
            let catalog = self.catalog.load_full();
            let snapshot = match Snapshot::from_wire(&wire, &catalog) {
                Ok(s) => s,
                Err(_) if attempt == 0 => {
                    // Another catalog (a plan was published): read it again, then the snapshot.
                    let fresh = fetch_catalog(&self.http, &self.config.core_url, &self.token).await?;
                    self.catalog.store(Arc::new(fresh));
                    continue;
                }
                Err(e) => return Err(unavailable(format!("a snapshot for another catalog: {e}"))),
            };
            return Ok(Arc::new(Entry {
                snapshot: Arc::new(snapshot),
                entitlements: Arc::new(wire.entitlements),
                fetched: Instant::now(),
            }));
        }
        Err(unavailable("Auth refused the module's credentials".into()))
    }
}

#[async_trait]
impl AccessSource for RemoteSource {
    fn catalog(&self) -> Arc<AccessCatalog> {
        self.catalog.load_full()
    }

    async fn access(
        &self,
        principal: &Principal,
        acting: Option<&Acting>,
        company: &CompanyId,
        min_version: u64,
    ) -> Result<Granted, Refusal> {
        let now: Timestamp = self.clock.now();
        let key = (principal.clone(), acting.cloned(), company.clone());
        let floor = self.floor(principal, company).max(min_version);
        let usable = |e: &Entry| {
            e.snapshot.version() >= floor
                && e.snapshot.valid_until().is_none_or(|end| now < end)
                && e.fetched.elapsed() < self.config.max_age
        };
        if let Some(entry) = self.cache.get(&key).await {
            if usable(&entry) {
                let origin = if self.feed_connected.load(Ordering::SeqCst) { Origin::Cache } else { Origin::Stale };
                return Ok(Granted {
                    snapshot: entry.snapshot.clone(),
                    entitlements: entry.entitlements.clone(),
                    origin,
                });
            }
            self.cache.invalidate(&key).await;
        }
        // One fetch per key at a time: concurrent misses wait for it.
        let entry = self
            .cache
            .try_get_with(key.clone(), self.fetch(principal, acting, company, floor))
            .await
            .map_err(|e: Arc<Refusal>| (*e).clone())?;
        if !usable(&entry) {
            // Fetched by a request with a lower floor, or raced by an invalidation: fetch for this floor.
            self.cache.invalidate(&key).await;
            let fresh = self.fetch(principal, acting, company, floor).await?;
            if fresh.snapshot.version() < floor {
                return Err(Refusal::new(ErrorCode::UpstreamUnavailable, "Auth has not reached the needed version"));
            }
            return Ok(Granted {
                snapshot: fresh.snapshot.clone(),
                entitlements: fresh.entitlements.clone(),
                origin: Origin::Live,
            });
        }
        Ok(Granted { snapshot: entry.snapshot.clone(), entitlements: entry.entitlements.clone(), origin: Origin::Live })
    }

    fn feed_position(&self) -> Option<(u64, u64, u64)> {
        Some(self.position())
    }

    /// With Auth (`POST /v1/companies/{c}/support-access`): the module's client needs the scope
    /// `auth:support:record`.
    async fn record_support_access(
        &self,
        company: &CompanyId,
        session: &str,
        route: &str,
        record: Option<&str>,
    ) -> Result<(), Refusal> {
        let unavailable = |detail: String| Refusal::new(ErrorCode::UpstreamUnavailable, detail);
        let body = serde_json::json!({ "session": session, "route": route, "record": record });
        for attempt in 0..2 {
            let url = format!("{}/v1/companies/{company}/support-access", self.config.auth_url);
            let response = crate::trace::propagate(self.http.post(url))
                .timeout(crate::REQUEST_TIMEOUT)
                .bearer_auth(self.support_token.get().await?)
                .json(&body)
                .send()
                .await
                .map_err(|e| unavailable(format!("Auth is unreachable: {}", crate::secret::causes(&e))))?;
            if response.status() == reqwest::StatusCode::UNAUTHORIZED && attempt == 0 {
                self.support_token.clear().await;
                continue;
            }
            if !response.status().is_success() {
                return Err(unavailable(format!("Auth answered {} recording support access", response.status())));
            }
            return Ok(());
        }
        Err(unavailable("Auth refused the module's credentials".into()))
    }
}

/// Reads the catalog from Core.
async fn fetch_catalog(
    http: &reqwest::Client,
    core_url: &str,
    token: &crate::service::ServiceToken,
) -> Result<AccessCatalog, Refusal> {
    let unavailable = |detail: String| Refusal::new(ErrorCode::UpstreamUnavailable, detail);
    let response = crate::trace::propagate(http.get(format!("{core_url}/v1/catalog")))
        .timeout(crate::REQUEST_TIMEOUT)
        .bearer_auth(token.get().await?)
        .send()
        .await
        .map_err(|e| unavailable(format!("Core is unreachable: {}", crate::secret::causes(&e))))?;
    if !response.status().is_success() {
        return Err(unavailable(format!("Core answered {} for the catalog", response.status())));
    }
    let doc: AccessCatalogDoc =
        response.json().await.map_err(|e| unavailable(format!("a catalog that does not parse: {e}")))?;
    AccessCatalog::from_doc(&doc).map_err(|e| unavailable(format!("an unusable catalog: {e}")))
}
