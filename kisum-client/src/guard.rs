//! Protecting routes: [`Kisum::layer`] verifies the bearer token of every request and puts the [`Caller`]
//! in it; [`require`] guards one route with a permission (and a resource from the path), putting the
//! caller's [`Access`] in the request for the handler. Both are tower layers, so they fit axum, tonic or
//! any tower service; [`Caller`] and [`Access`] are also axum extractors.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Request, header};
use axum::response::{IntoResponse, Response};
use kisum_access::{CompanyId, DenyReason, Principal, ResourceRef};
use kisum_entitlements::{Clock, EntitlementsSummary, LimitValue};
use kisum_errors::ErrorCode;
use kisum_token::{Accept, Caller as TokenCaller, Expect, TokenError, VerifiedClaims};

use crate::feed::Revocations;
use crate::keys::Keys;
use crate::problem::Refusal;
use crate::source::{AccessSource, Granted, Origin};

/// Decisions taken, by origin (`live`, `cache`, `stale`): the counter of API.md §5.
#[derive(Debug, Default)]
pub struct Counters {
    live: std::sync::atomic::AtomicU64,
    cache: std::sync::atomic::AtomicU64,
    stale: std::sync::atomic::AtomicU64,
}

impl Counters {
    fn count(&self, origin: Origin) {
        use std::sync::atomic::Ordering::Relaxed;
        match origin {
            Origin::Live => self.live.fetch_add(1, Relaxed),
            Origin::Cache => self.cache.fetch_add(1, Relaxed),
            Origin::Stale => self.stale.fetch_add(1, Relaxed),
        };
    }

    /// How many decisions came from each origin: `(live, cache, stale)`.
    pub fn get(&self) -> (u64, u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.live.load(Relaxed), self.cache.load(Relaxed), self.stale.load(Relaxed))
    }
}

/// The SDK: token verification, an access source, the revocations learned from the feed.
#[derive(Clone)]
pub struct Kisum {
    inner: Arc<Inner>,
}

struct Inner {
    keys: Arc<Keys>,
    source: Arc<dyn AccessSource>,
    revocations: Arc<Revocations>,
    clock: Arc<dyn Clock>,
    audience: Option<String>,
    counters: Counters,
}

impl std::fmt::Debug for Kisum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kisum").field("keys", &self.inner.keys).finish_non_exhaustive()
    }
}

impl Kisum {
    /// The SDK on `keys` and `source`, with the revocations a feed fills, at `clock`'s time. Tokens must
    /// name the verifier's audience unless [`with_audience`](Kisum::with_audience) names another.
    pub fn new(
        keys: Arc<Keys>,
        source: Arc<dyn AccessSource>,
        revocations: Arc<Revocations>,
        clock: Arc<dyn Clock>,
    ) -> Kisum {
        Kisum {
            inner: Arc::new(Inner { keys, source, revocations, clock, audience: None, counters: Counters::default() }),
        }
    }

    /// The SDK against a running Auth and Core: the JWKS fetched from Auth, a [`RemoteSource`](crate::RemoteSource) with the
    /// module's client credentials, and the change feed followed (the returned task; abort it to stop).
    /// Fails when Core (the catalog) cannot be reached.
    pub async fn connect(
        config: crate::source::RemoteConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<(Kisum, tokio::task::JoinHandle<()>), Refusal> {
        let http = crate::http_client(config.ca_bundle.as_deref())?;
        let validation = kisum_token::Validation::new(&config.issuer, &config.audience);
        let keys = Keys::fetch(http.clone(), format!("{}/.well-known/jwks.json", config.auth_url), validation)
            .await
            .map_err(|e| Refusal::new(ErrorCode::Internal, e.to_string()))?;
        let keys = Arc::new(keys);
        let source = Arc::new(crate::source::RemoteSource::connect(http, config, clock.clone()).await?);
        // Every revocation in force before the first request: a restart never lets a revoked session in.
        let revocations = Arc::new(Revocations::default());
        let from = crate::feed::load_revocations(&source, &revocations)
            .await
            .map_err(|e| Refusal::new(ErrorCode::UpstreamUnavailable, format!("the revocations: {e}")))?;
        let feed = crate::feed::follow(source.clone(), keys.clone(), revocations.clone(), from);
        Ok((Kisum::new(keys, source, revocations, clock), feed))
    }

    /// The same SDK requiring tokens whose `aud` names `audience` (a module's own audience) instead of the
    /// verifier's.
    pub fn with_audience(self, audience: impl Into<String>) -> Kisum {
        let i = &self.inner;
        Kisum {
            inner: Arc::new(Inner {
                keys: i.keys.clone(),
                source: i.source.clone(),
                revocations: i.revocations.clone(),
                clock: i.clock.clone(),
                audience: Some(audience.into()),
                counters: Counters::default(),
            }),
        }
    }

    /// The access source.
    pub fn source(&self) -> &Arc<dyn AccessSource> {
        &self.inner.source
    }

    /// Decisions by origin.
    pub fn counters(&self) -> &Counters {
        &self.inner.counters
    }

    /// The tower layer that verifies every request's bearer token (user or service) and puts the
    /// [`Caller`] in its extensions. No token: `401 UNAUTHENTICATED` with `WWW-Authenticate: Bearer`; a
    /// refused one: `401 TOKEN_INVALID` or `TOKEN_EXPIRED`.
    pub fn layer(&self) -> KisumLayer {
        KisumLayer { kisum: self.clone() }
    }

    /// Verifies the bearer token in `headers`.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, Refusal> {
        match headers.get(header::AUTHORIZATION) {
            None => self.authenticate_header(None).await,
            Some(value) => match value.to_str() {
                Ok(text) => self.authenticate_header(Some(text)).await,
                Err(_) => Err(Refusal::new(ErrorCode::Unauthenticated, "the Authorization header is not text")),
            },
        }
    }

    /// Verifies the value of an `Authorization` header (`None`: there was none), for frameworks with
    /// their own header types.
    pub async fn authenticate_header(&self, value: Option<&str>) -> Result<Caller, Refusal> {
        let value = value.ok_or_else(|| Refusal::new(ErrorCode::Unauthenticated, "this route needs a bearer token"))?;
        let token = bearer_token(value).ok_or_else(|| {
            Refusal::new(ErrorCode::Unauthenticated, "the Authorization header is not `Bearer <token>`")
        })?;
        let expect = match &self.inner.audience {
            Some(a) => Expect::new(Accept::Both).with_audience(a),
            None => Expect::new(Accept::Both),
        };
        let now = self.inner.clock.now();
        let claims = self.inner.keys.verify(token, expect, now).await.map_err(|e| {
            let code = match e {
                TokenError::Expired => ErrorCode::TokenExpired,
                _ => ErrorCode::TokenInvalid,
            };
            Refusal::new(code, e.to_string())
        })?;
        if let TokenCaller::User { subject, sid, .. } = claims.caller()
            && self.inner.revocations.refuses(
                sid,
                subject.as_str(),
                kisum_access::Timestamp::from_unix(claims.claims().iat),
                now,
            )
        {
            return Err(Refusal::new(ErrorCode::TokenInvalid, "the session was revoked"));
        }
        // Whose request this is, on the request's span where it declares the fields (a no-op elsewhere).
        let span = tracing::Span::current();
        match claims.caller() {
            TokenCaller::User { principal, company, .. } => {
                span.record("principal", tracing::field::display(principal));
                span.record("company", tracing::field::display(company));
            }
            TokenCaller::Service { .. } => {
                span.record("principal", tracing::field::display(&claims.claims().sub));
            }
        }
        Ok(Caller(claims))
    }

    /// The access of a user `caller` (its principal in its company, at least as fresh as its `ver`).
    pub async fn access_of(&self, caller: &Caller) -> Result<Granted, Refusal> {
        let TokenCaller::User { principal, company, ver, acting, .. } = caller.0.caller() else {
            return Err(Refusal::new(ErrorCode::Forbidden, "a service token holds no company access"));
        };
        let granted = self.inner.source.access(principal, acting.as_ref(), company, *ver).await?;
        self.inner.counters.count(granted.origin);
        Ok(granted)
    }

    /// Decides `permission` (on `resource`) for `caller`: a user through its access, a service through its
    /// scopes when `services` allows them. Refusals map as DESIGN.md §6. Never allows on error.
    ///
    /// An allow under a support session is recorded first ([`AccessSource::record_support_access`],
    /// naming the permission); a failure to record refuses the request.
    pub async fn decide(
        &self,
        caller: &Caller,
        permission: &str,
        resource: Option<&ResourceRef>,
        services: bool,
    ) -> Result<Access, Refusal> {
        self.decide_route(caller, permission, resource, services, None).await
    }

    /// [`Kisum::decide`] for a route: a support session's record names `route` (`METHOD /path`).
    async fn decide_route(
        &self,
        caller: &Caller,
        permission: &str,
        resource: Option<&ResourceRef>,
        services: bool,
        route: Option<String>,
    ) -> Result<Access, Refusal> {
        let catalog = self.inner.source.catalog();
        let id = catalog.permission(permission).map_err(|_| {
            Refusal::new(
                ErrorCode::UnknownPermission,
                format!("the route names `{permission}`, which the catalog lacks"),
            )
        })?;
        match caller.0.caller() {
            TokenCaller::Service { .. } => {
                if services && caller.0.scope_allows(permission) {
                    decided("allow", "scope");
                    Ok(Access { caller: caller.clone(), granted: None, catalog })
                } else {
                    decided("deny", "scope");
                    Err(Refusal::new(ErrorCode::Forbidden, format!("this needs `{permission}`"))
                        .with_required(permission))
                }
            }
            TokenCaller::User { principal, company, .. } => {
                let granted = match self.access_of(caller).await {
                    Ok(granted) => granted,
                    Err(refusal) => {
                        decided("unavailable", "none");
                        return Err(refusal);
                    }
                };
                tracing::debug!(origin = granted.origin.as_str(), %principal, %company, permission, "decision");
                let origin = granted.origin.as_str();
                match granted.snapshot.decide(id, resource) {
                    Ok(()) => {
                        if let Some(session) = granted.snapshot.support_session() {
                            let route = route.unwrap_or_else(|| permission.to_owned());
                            let record = resource.map(ToString::to_string);
                            let recorded = self
                                .inner
                                .source
                                .record_support_access(company, session, &route, record.as_deref())
                                .await;
                            if let Err(refusal) = recorded {
                                // Not recorded, so refused: the request was not allowed.
                                decided("unavailable", origin);
                                return Err(refusal);
                            }
                        }
                        decided("allow", origin);
                        Ok(Access { caller: caller.clone(), granted: Some(granted), catalog })
                    }
                    Err(reason) => {
                        decided("deny", origin);
                        Err(refusal(reason, permission, &catalog, &granted.entitlements))
                    }
                }
            }
        }
    }
}

/// Counts a decision by outcome (`allow`, `deny`, `unavailable`: access could not be had, refused) and
/// source (`live`, `cache`, `stale`; `scope` for service tokens) in `kisum_decisions_total`.
fn decided(outcome: &'static str, source: &'static str) {
    const OUTCOMES: [&str; 3] = ["allow", "deny", "unavailable"];
    const SOURCES: [&str; 5] = ["live", "cache", "stale", "scope", "none"];
    // The handles, registered at the first decision (after the server installed its recorder): counting
    // then looks nothing up.
    static HANDLES: std::sync::OnceLock<Vec<metrics::Counter>> = std::sync::OnceLock::new();
    let handles = HANDLES.get_or_init(|| {
        OUTCOMES
            .iter()
            .flat_map(|o| SOURCES.iter().map(move |s| (*o, *s)))
            .map(|(o, s)| metrics::counter!("kisum_decisions_total", "outcome" => o, "source" => s))
            .collect()
    });
    let at = |list: &[&str], item: &str| list.iter().position(|x| *x == item);
    if let (Some(o), Some(s)) = (at(&OUTCOMES, outcome), at(&SOURCES, source))
        && let Some(counter) = handles.get(o * SOURCES.len() + s)
    {
        counter.increment(1);
    }
}

/// The refusal of `reason` for `permission`, naming the missing module or feature for entitlement denials.
fn refusal(
    reason: DenyReason,
    permission: &str,
    catalog: &kisum_access::AccessCatalog,
    entitlements: &EntitlementsSummary,
) -> Refusal {
    let required = match reason {
        DenyReason::ModuleNotEntitled | DenyReason::FeatureNotEntitled => catalog
            .permission(permission)
            .ok()
            .and_then(|id| {
                let def = catalog.permission_def(id)?;
                match (def.feature(), reason) {
                    (Some(f), DenyReason::FeatureNotEntitled) => Some(f.to_string()),
                    _ => Some(def.module().to_string()),
                }
            })
            .filter(|r| !entitlements.modules.contains(r) || reason == DenyReason::FeatureNotEntitled),
        _ => None,
    };
    Refusal::of_deny(reason, permission, required)
}

/// A verified caller (user or service token): put in the request by [`Kisum::layer`]; an axum extractor.
#[derive(Debug, Clone)]
pub struct Caller(pub Arc<VerifiedClaims>);

impl Caller {
    /// The verified claims.
    pub fn claims(&self) -> &VerifiedClaims {
        &self.0
    }

    /// The company of a user token.
    pub fn company(&self) -> Option<&CompanyId> {
        self.0.company()
    }

    /// The principal of a user token (the agent, for one acting for a user).
    pub fn principal(&self) -> Option<&Principal> {
        self.0.principal()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| Refusal::new(ErrorCode::Internal, "the route is not behind Kisum::layer").into_response())
    }
}

/// What a guard allowed: the caller and (for a user) its access, for the handler's further checks
/// (features, limits, a second permission); an axum extractor.
#[derive(Debug, Clone)]
pub struct Access {
    caller: Caller,
    granted: Option<Granted>,
    catalog: Arc<kisum_access::AccessCatalog>,
}

impl Access {
    /// The caller.
    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// The caller's company (user tokens).
    pub fn company(&self) -> Option<&CompanyId> {
        self.caller.company()
    }

    /// Where the access came from (`None` for a service token).
    pub fn origin(&self) -> Option<Origin> {
        self.granted.as_ref().map(|g| g.origin)
    }

    /// Whether the caller's company is entitled to `feature` (services: no company, no features).
    pub fn has_feature(&self, feature: &str) -> bool {
        self.granted.as_ref().is_some_and(|g| g.entitlements.features.iter().any(|f| f == feature))
    }

    /// The company's limit `key` (`None`: no such limit; `Some(None)`: unlimited).
    pub fn limit(&self, key: &str) -> Option<Option<u64>> {
        let g = self.granted.as_ref()?;
        g.entitlements.limits.get(key).map(|v| match v {
            LimitValue::Unlimited => None,
            LimitValue::Finite(n) => Some(*n),
        })
    }

    /// Checks another permission with the same access (a user's), mapping a deny as DESIGN.md §6; a
    /// service token is checked against its scopes.
    pub fn require(&self, permission: &str, resource: Option<&ResourceRef>) -> Result<(), Refusal> {
        match &self.granted {
            None => {
                if self.caller.0.scope_allows(permission) {
                    Ok(())
                } else {
                    Err(Refusal::new(ErrorCode::Forbidden, format!("this needs `{permission}`"))
                        .with_required(permission))
                }
            }
            Some(g) => {
                let id = self.catalog.permission(permission).map_err(|_| {
                    Refusal::new(ErrorCode::UnknownPermission, format!("`{permission}` is not in the catalog"))
                })?;
                g.snapshot.decide(id, resource).map_err(|r| refusal(r, permission, &self.catalog, &g.entitlements))
            }
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Access {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Access>()
            .cloned()
            .ok_or_else(|| Refusal::new(ErrorCode::Internal, "the route has no `require(…)` guard").into_response())
    }
}

/// The layer of [`Kisum::layer`].
#[derive(Debug, Clone)]
pub struct KisumLayer {
    kisum: Kisum,
}

impl<S> tower::Layer<S> for KisumLayer {
    type Service = KisumService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        KisumService { kisum: self.kisum.clone(), inner }
    }
}

/// The service of [`KisumLayer`].
#[derive(Debug, Clone)]
pub struct KisumService<S> {
    kisum: Kisum,
    inner: S,
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

fn request_id(headers: &HeaderMap) -> Option<String> {
    headers.get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned)
}

impl<S, B> tower::Service<Request<B>> for KisumService<S>
where
    S: tower::Service<Request<B>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let kisum = self.kisum.clone();
        // The clone that was polled ready serves this request; the fresh one waits for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        // The request's trace, unless a layer outside (the reference servers') already set it.
        let span = match crate::trace::current() {
            Some(_) => None,
            None => {
                let parent = request.headers().get(crate::trace::TRACEPARENT).and_then(|v| v.to_str().ok());
                Some(
                    parent
                        .and_then(crate::trace::TraceParent::parse)
                        .map_or_else(crate::trace::TraceParent::start, |p| p.child()),
                )
            }
        };
        let serve = async move {
            match kisum.authenticate(request.headers()).await {
                Ok(caller) => {
                    request.extensions_mut().insert(caller);
                    inner.call(request).await
                }
                Err(refusal) => Ok(refusal.with_request_id(request_id(request.headers()).as_deref()).into_response()),
            }
        };
        match span {
            Some(span) => Box::pin(crate::trace::scope(span, serve)),
            None => Box::pin(serve),
        }
    }
}

/// The token of an `Authorization` header's value `Bearer <token>` (the scheme in any case), as
/// [`Kisum::authenticate`] reads it: what a module forwards when it calls another with its caller's token.
pub fn bearer_token(value: &str) -> Option<&str> {
    value
        .split_once(' ')
        .filter(|(scheme, t)| scheme.eq_ignore_ascii_case("bearer") && !t.trim().is_empty())
        .map(|(_, t)| t.trim())
}

/// Which company owns a module's record. Put them on the guards ([`Require::owned_by`]) so that guards
/// with [`Require::on`] check the record's own company (another tenant's record is then `CROSS_TENANT`,
/// answered `404`). Records in memory: [`Owners::new`] with a closure; records in a database:
/// [`Owners::from_lookup`] with an [`OwnerLookup`], awaited by the guard.
#[derive(Clone)]
pub struct Owners(Arc<dyn OwnerLookup>);

/// Finds the company that owns a record, wherever the records are (a database query, a cache).
#[async_trait::async_trait]
pub trait OwnerLookup: Send + Sync + 'static {
    /// The company owning record `id` of `kind`: `Ok(None)` when there is no such record (the request is
    /// answered `404`); `Err` when it cannot be known now (a database down: the refusal is answered, and
    /// nothing is ever allowed on a guess).
    async fn owner(&self, kind: &str, id: &str) -> Result<Option<CompanyId>, Refusal>;
}

/// An owner lookup by a function of `(kind, id)` (records in memory).
struct ByFunction<F>(F);

#[async_trait::async_trait]
impl<F> OwnerLookup for ByFunction<F>
where
    F: Fn(&str, &str) -> Option<CompanyId> + Send + Sync + 'static,
{
    async fn owner(&self, kind: &str, id: &str) -> Result<Option<CompanyId>, Refusal> {
        Ok((self.0)(kind, id))
    }
}

impl Owners {
    /// Owners found by `find(kind, id)`: the company that owns a record, `None` when there is no such
    /// record.
    pub fn new(find: impl Fn(&str, &str) -> Option<CompanyId> + Send + Sync + 'static) -> Owners {
        Owners(Arc::new(ByFunction(find)))
    }

    /// Owners found by `lookup`, awaited (a database).
    pub fn from_lookup(lookup: impl OwnerLookup) -> Owners {
        Owners(Arc::new(lookup))
    }
}

impl std::fmt::Debug for Owners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Owners")
    }
}

/// A guard for one route, made by [`Kisum::require`]: `kisum.require("finance:invoice:approve")`,
/// optionally with a resource from the path (`.on("invoice", "id")` → `{owner}/invoice/{id}`, its owner
/// found by [`Require::owned_by`]) and accepting service tokens whose scopes match (`.services()`: dual
/// auth). Apply it with axum's `route_layer`. The guard carries the SDK it decides with: nothing is looked
/// up at run time that a router could have forgotten (under [`Kisum::layer`] it reuses the caller the layer
/// verified; without it, it verifies the token itself).
#[derive(Clone)]
pub struct Require {
    kisum: Kisum,
    owners: Option<Owners>,
    permission: &'static str,
    resource: Option<(&'static str, &'static str)>,
    services: bool,
}

impl std::fmt::Debug for Require {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Require")
            .field("permission", &self.permission)
            .field("resource", &self.resource)
            .field("services", &self.services)
            .field("owners", &self.owners.is_some())
            .finish_non_exhaustive()
    }
}

impl Kisum {
    /// A guard for one route needing `permission` (see [`Require`]).
    pub fn require(&self, permission: &'static str) -> Require {
        Require { kisum: self.clone(), owners: None, permission, resource: None, services: false }
    }
}

impl Require {
    /// The checked resource is `{owner}/{kind}/{path parameter param}`: its owner found by the
    /// [`Owners`] of [`Require::owned_by`] (a record of another company is `CROSS_TENANT` and a missing
    /// one `404`, both before the handler runs), or, without them, taken to be the caller's company.
    pub fn on(self, kind: &'static str, param: &'static str) -> Require {
        Require { resource: Some((kind, param)), ..self }
    }

    /// Which company owns each record the module holds (for [`Require::on`]).
    pub fn owned_by(self, owners: Owners) -> Require {
        Require { owners: Some(owners), ..self }
    }

    /// Service tokens whose scopes match the permission are accepted too.
    pub fn services(self) -> Require {
        Require { services: true, ..self }
    }

    /// The permission.
    pub fn permission(&self) -> &'static str {
        self.permission
    }
}

impl<S> tower::Layer<S> for Require {
    type Service = RequireService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireService { require: self.clone(), inner }
    }
}

/// The service of [`Require`].
#[derive(Debug, Clone)]
pub struct RequireService<S> {
    require: Require,
    inner: S,
}

impl<S, B> tower::Service<Request<B>> for RequireService<S>
where
    S: tower::Service<Request<B>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let require = self.require.clone();
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            let rid = request_id(&parts.headers);
            let decided = guard(&mut parts, &require).await;
            match decided {
                Ok(access) => {
                    parts.extensions.insert(access);
                    inner.call(Request::from_parts(parts, body)).await
                }
                Err(refusal) => Ok(refusal.with_request_id(rid.as_deref()).into_response()),
            }
        })
    }
}

async fn guard(parts: &mut Parts, require: &Require) -> Result<Access, Refusal> {
    let kisum = &require.kisum;
    // The caller `Kisum::layer` verified, or (a route outside it, or a guard with an audience of its own)
    // the token verified here.
    let caller = match parts.extensions.get::<Caller>().cloned().filter(|_| kisum.inner.audience.is_none()) {
        Some(caller) => caller,
        None => {
            let caller = kisum.authenticate(&parts.headers).await?;
            parts.extensions.insert(caller.clone());
            caller
        }
    };
    let resource = match (require.resource, caller.company()) {
        (Some((kind, param)), Some(company)) => {
            let params = axum::extract::RawPathParams::from_request_parts(parts, &())
                .await
                .map_err(|_| Refusal::new(ErrorCode::NotFound, "not found"))?;
            let id =
                params.iter().find(|(name, _)| *name == param).map(|(_, v)| v.to_owned()).ok_or_else(|| {
                    Refusal::new(ErrorCode::Internal, format!("the route has no `{param}` parameter"))
                })?;
            let owner = match &require.owners {
                Some(owners) => {
                    owners.0.owner(kind, &id).await?.ok_or_else(|| Refusal::new(ErrorCode::NotFound, "not found"))?
                }
                None => company.clone(),
            };
            Some(
                ResourceRef::parse(&format!("{owner}/{kind}/{id}"))
                    .map_err(|_| Refusal::new(ErrorCode::NotFound, "not found"))?,
            )
        }
        _ => None,
    };
    let route = format!("{} {}", parts.method, parts.uri.path());
    kisum.decide_route(&caller, require.permission, resource.as_ref(), require.services, Some(route)).await
}
