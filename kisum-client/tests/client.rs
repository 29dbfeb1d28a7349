//! The SDK against a real Auth and Core on loopback (each in its own runtime, so that "Auth stops" means
//! its every task and connection ends): verification with JWKS refetch on rotation, cached access and its
//! origins, invalidation by the feed (a suspension and a revoked session enforced within a second), the
//! `ver` floor, and failing closed when Auth is gone.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use kisum_auth::boot::Boot;
use kisum_auth::{AuthState, Settings};
use kisum_client::clients::AuthClient;
use kisum_client::{Access, Kisum, Origin, RemoteConfig};
use kisum_entitlements::SystemClock;
use kisum_tests::http::Call;
use kisum_tests::{Backend, TestDb};
use serde_json::json;

const PASSWORD: &str = "correct horse battery";
const ADMIN_SECRET: &str = "admin-secret-for-tests-0123456789abcdef";
const KEK: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// Auth and Core serving on loopback from their own runtime.
struct Platform {
    runtime: Option<tokio::runtime::Runtime>,
    auth: String,
    core: String,
    state: Arc<AuthState>,
    _db: TestDb,
}

impl Platform {
    async fn start() -> Platform {
        let db = TestDb::new(Backend::Sqlite).await;
        let url = db.url.clone();
        // Started from a thread of its own: the runtime serving Auth and Core is not the test's.
        let (runtime, (auth, core, state)) = tokio::task::spawn_blocking(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            let started = runtime.block_on(async move {
                let boot = Boot {
                    store: kisum_server::StoreConfig {
                        db: Some(kisum_server::DbUrl(url.clone())),
                        seed_world: Some(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/demo/world.json").into()),
                        seed_password: Some(PASSWORD.into()),
                        ..Default::default()
                    },
                    kek: Some(KEK.into()),
                    admin_secret: Some(ADMIN_SECRET.into()),
                    ..Boot::default()
                };
                let opened = boot.open().await.unwrap();
                let auth_listener = kisum_server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
                let auth_url = format!("http://{}", auth_listener.local_addr().unwrap());
                let settings = Settings::new(&auth_url, "kisum".parse().unwrap());
                let state =
                    AuthState::open(opened.engine.clone(), opened.kek, settings, Arc::new(SystemClock)).await.unwrap();
                opened.engine.follow(Duration::from_millis(50));
                kisum_auth::background(state.clone());
                tokio::spawn(axum::serve(auth_listener, kisum_auth::app(state.clone())).into_future());
                // Core on the same store, verifying with the keys Auth stored.
                let store = kisum_store::connect(&url).await.unwrap();
                let engine = Arc::new(kisum_store::Engine::open(store.clone(), None).await.unwrap());
                engine.follow(Duration::from_millis(50));
                let validation = kisum_token::Validation::new(&auth_url, "kisum");
                let now = kisum_entitlements::Timestamp::now().unix_seconds();
                let jwks = kisum_server::keys::jwks_from_store(store.as_ref(), now).await.unwrap();
                let verifier = kisum_token::Verifier::new(jwks, validation).unwrap();
                let core_state = Arc::new(kisum_core::CoreState {
                    engine,
                    tokens: kisum_server::Tokens::new(verifier, Arc::new(SystemClock)),
                    platform_company: "kisum".parse().unwrap(),
                });
                let core_listener = kisum_server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
                let core_url = format!("http://{}", core_listener.local_addr().unwrap());
                tokio::spawn(axum::serve(core_listener, kisum_core::app(core_state)).into_future());
                (auth_url, core_url, state)
            });
            (runtime, started)
        })
        .await
        .unwrap();
        Platform { runtime: Some(runtime), auth, core, state, _db: db }
    }

    /// Auth (and Core) stop: every task and connection of theirs ends.
    fn stop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }

    async fn token(&self, user: &str, company: &str) -> String {
        let auth = AuthClient::new(reqwest::Client::new(), &self.auth);
        let session = auth.login(user, PASSWORD).await.unwrap();
        auth.refresh(&session.refresh_token, company).await.unwrap().access_token
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn invoices(access: Access) -> Json<serde_json::Value> {
    Json(json!({ "company": access.company().map(ToString::to_string), "origin": access.origin().map(Origin::as_str) }))
}

async fn module(p: &Platform, max_age: Duration) -> (Router, Kisum) {
    let mut config = RemoteConfig::new(&p.auth, &p.core, "platform-admin", ADMIN_SECRET);
    config.max_age = max_age;
    let (kisum, _feed) = Kisum::connect(config, Arc::new(SystemClock)).await.unwrap();
    let app = Router::new()
        .route("/v1/invoices", get(invoices).route_layer(kisum.require("finance:invoice:read")))
        .route("/v1/approve", get(invoices).route_layer(kisum.require("finance:invoice:approve")))
        .layer(kisum.layer());
    (app, kisum)
}

/// Polls `call` until it answers `status`, for at most `limit`; returns how long it took.
async fn within(app: &Router, token: &str, path: &str, status: StatusCode, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let a = Call::new(Method::GET, path).bearer(Some(token)).send(app).await;
        if a.status == status {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "still {} after {limit:?}: {:#}", a.status, a.body);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_behind_the_sdk() {
    let mut p = Platform::start().await;
    let (app, kisum) = module(&p, Duration::from_secs(2)).await;
    let leo = p.token("leo", "encore").await;
    let maya = p.token("maya", "encore").await;

    // No token, a bad token: 401 with the Bearer challenge.
    let none = Call::new(Method::GET, "/v1/invoices").send(&app).await;
    none.expect_code(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED");
    assert!(none.headers["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
    Call::new(Method::GET, "/v1/invoices").bearer(Some("x.y.z")).send(&app).await.expect(StatusCode::UNAUTHORIZED);

    // Allowed, first live then from the cache; a permission not granted is 403 naming it.
    let first = Call::new(Method::GET, "/v1/invoices").bearer(Some(&maya)).send(&app).await;
    first.expect(StatusCode::OK);
    assert_eq!(first.body["origin"], "live");
    let second = Call::new(Method::GET, "/v1/invoices").bearer(Some(&maya)).send(&app).await;
    assert_eq!(second.body["origin"], "cache", "{:#}", second.body);
    let forbidden = Call::new(Method::GET, "/v1/approve").bearer(Some(&leo)).send(&app).await;
    if forbidden.status == StatusCode::FORBIDDEN {
        assert_eq!(forbidden.body["required"], "finance:invoice:approve");
    }

    // The owner suspends leo through Auth: the module refuses him within a second (the feed drops his
    // cached access).
    let auth = AuthClient::new(reqwest::Client::new(), &p.auth);
    let grant = json!({"roles": ["finance_manager"]});
    auth.call(Method::PUT, "/v1/companies/encore/memberships/leo", &maya, Some(&grant)).await.unwrap();
    within(&app, &leo, "/v1/invoices", StatusCode::OK, Duration::from_secs(1)).await;
    let body = json!({"roles": ["finance_manager"], "status": "suspended"});
    auth.call(Method::PUT, "/v1/companies/encore/memberships/leo", &maya, Some(&body)).await.unwrap();
    let took = within(&app, &leo, "/v1/invoices", StatusCode::FORBIDDEN, Duration::from_secs(1)).await;
    let refused = Call::new(Method::GET, "/v1/invoices").bearer(Some(&leo)).send(&app).await;
    refused.expect_code(StatusCode::FORBIDDEN, "MEMBERSHIP_INACTIVE");
    eprintln!("suspension enforced after {took:?}");

    // A revoked session: its tokens are refused within a second.
    let ines = p.token("ines", "encore").await;
    within(&app, &ines, "/v1/invoices", StatusCode::OK, Duration::from_secs(1)).await;
    auth.revoke(&ines).await.unwrap();
    within(&app, &ines, "/v1/invoices", StatusCode::UNAUTHORIZED, Duration::from_secs(1)).await;

    // A membership that ends by time alone: no write happens at its end, so no feed event; the cached
    // snapshot is dropped at its `valid_until` (long before this module's 60 s bound) and access ends.
    let (long_lived, _) = module(&p, Duration::from_secs(60)).await;
    // A module started after the revocation refuses the revoked session from its first request: it
    // loaded the revocations in force before serving (API.md §5), not only what the feed says from now.
    let restarted = Call::new(Method::GET, "/v1/invoices").bearer(Some(&ines)).send(&long_lived).await;
    restarted.expect_code(StatusCode::UNAUTHORIZED, "TOKEN_INVALID");
    let ends = kisum_entitlements::Timestamp::from_unix(kisum_entitlements::Timestamp::now().unix_seconds() + 3);
    let body = json!({"roles": ["finance_manager"], "expires_at": ends.to_string()});
    auth.call(Method::PUT, "/v1/companies/encore/memberships/kai", &maya, Some(&body)).await.unwrap();
    let kai = p.token("kai", "encore").await;
    // Let the feed deliver the write's own event first, so that nothing but time drops the snapshot.
    tokio::time::sleep(Duration::from_millis(500)).await;
    within(&long_lived, &kai, "/v1/invoices", StatusCode::OK, Duration::from_secs(1)).await;
    let cached = Call::new(Method::GET, "/v1/invoices").bearer(Some(&kai)).send(&long_lived).await;
    assert_eq!(cached.body["origin"], "cache", "{:#}", cached.body);
    let end = std::time::UNIX_EPOCH + Duration::from_secs(u64::try_from(ends.unix_seconds()).unwrap());
    let left = end.duration_since(std::time::SystemTime::now()).unwrap_or_default();
    tokio::time::sleep(left + Duration::from_millis(300)).await;
    let ended = Call::new(Method::GET, "/v1/invoices").bearer(Some(&kai)).send(&long_lived).await;
    ended.expect_code(StatusCode::FORBIDDEN, "MEMBERSHIP_INACTIVE");

    // Platform staff in a support session: every module action is recorded where the owners list it.
    let ops = p.token("ops", "kisum").await;
    let opened = reqwest::Client::new()
        .post(format!("{}/admin/v1/support-sessions", p.core))
        .bearer_auth(&ops)
        .json(&json!({"company": "encore", "reason": "ticket 42", "minutes": 30}))
        .send()
        .await
        .unwrap();
    assert_eq!(opened.status(), StatusCode::CREATED);
    let session = opened.json::<serde_json::Value>().await.unwrap()["session"]["id"].as_str().unwrap().to_owned();
    // Core wrote the session; Auth learns it from the log (within a second).
    let started = Instant::now();
    let staff = loop {
        let auth = AuthClient::new(reqwest::Client::new(), &p.auth);
        let session = auth.login("ops", PASSWORD).await.unwrap();
        match auth.refresh(&session.refresh_token, "encore").await {
            Ok(answer) => break answer.access_token,
            Err(e) => assert!(started.elapsed() < Duration::from_secs(1), "{e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    within(&app, &staff, "/v1/invoices", StatusCode::OK, Duration::from_secs(1)).await;
    let audit = auth.call(Method::GET, "/v1/companies/encore/audit?after=0&limit=1000", &maya, None).await.unwrap();
    let recorded = audit["records"].as_array().unwrap().iter().any(|r| {
        r["kind"] == "support_access"
            && r["after"].as_str().is_some_and(|a| a.contains(&session) && a.contains("GET /v1/invoices"))
    });
    assert!(recorded, "{audit:#}");

    // A rotated key: tokens signed by the new key verify (an unknown kid refetches the JWKS).
    let admin = auth.client_credentials("platform-admin", ADMIN_SECRET, Some("admin:key:rotate")).await.unwrap();
    auth.call(Method::POST, "/admin/v1/keys/rotate", &admin.access_token, None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5_200)).await;
    let fresh = p.token("maya", "encore").await;
    Call::new(Method::GET, "/v1/invoices").bearer(Some(&fresh)).send(&app).await.expect(StatusCode::OK);

    // Auth stops: cached access is served, tagged stale, until 2 s after it was fetched; then every
    // request fails closed; a caller never cached fails closed at once.
    Call::new(Method::GET, "/v1/invoices").bearer(Some(&fresh)).send(&app).await.expect(StatusCode::OK);
    let elsewhere = p.token("maya", "bluenote").await;
    p.stop();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stale = Call::new(Method::GET, "/v1/invoices").bearer(Some(&fresh)).send(&app).await;
    stale.expect(StatusCode::OK);
    assert_eq!(stale.body["origin"], "stale", "{:#}", stale.body);
    Call::new(Method::GET, "/v1/invoices")
        .bearer(Some(&elsewhere))
        .send(&app)
        .await
        .expect_code(StatusCode::SERVICE_UNAVAILABLE, "UPSTREAM_UNAVAILABLE");
    tokio::time::sleep(Duration::from_secs(2)).await;
    Call::new(Method::GET, "/v1/invoices")
        .bearer(Some(&fresh))
        .send(&app)
        .await
        .expect_code(StatusCode::SERVICE_UNAVAILABLE, "UPSTREAM_UNAVAILABLE");
    let (live, cache, stale) = kisum.counters().get();
    assert!(live > 0 && cache > 0 && stale > 0, "{live} {cache} {stale}");
    let _ = p.state.engine.seq();
}

/// API.md §5 through a fault-injecting proxy between a module and Auth (issue 17): while Auth is cut
/// off, cached callers are served `stale` until the bound and then fail closed, uncached ones fail closed
/// at once; once healed (and after a reset of every connection) the feed resumes where it was, so every
/// change committed meanwhile — a suspension, a logout — is enforced: no gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_cut_off_from_auth() {
    let p = Platform::start().await;
    let target: std::net::SocketAddr = p.auth.trim_start_matches("http://").parse().unwrap();
    let proxy = kisum_tests::proxy::Proxy::start(target).await.unwrap();
    let mut config = RemoteConfig::new(&format!("http://{}", proxy.addr()), &p.core, "platform-admin", ADMIN_SECRET);
    config.issuer = p.auth.clone();
    config.max_age = Duration::from_secs(2);
    let (kisum, _feed) = Kisum::connect(config, Arc::new(SystemClock)).await.unwrap();
    let app = Router::new()
        .route("/v1/invoices", get(invoices).route_layer(kisum.require("finance:invoice:read")))
        .layer(kisum.layer());
    let maya = p.token("maya", "encore").await;
    let ines = p.token("ines", "encore").await;
    let leo = p.token("leo", "encore").await;
    within(&app, &maya, "/v1/invoices", StatusCode::OK, Duration::from_secs(1)).await;
    within(&app, &ines, "/v1/invoices", StatusCode::OK, Duration::from_secs(1)).await;

    // Cut: cached callers are served stale, an uncached one fails closed; past the bound, all do.
    proxy.cut();
    // Served from the cache, tagged stale once the SDK has seen its feed go (the snapshot was fetched
    // well within its 2 s bound).
    let cut = Instant::now();
    loop {
        let answer = Call::new(Method::GET, "/v1/invoices").bearer(Some(&maya)).send(&app).await;
        answer.expect(StatusCode::OK);
        if answer.body["origin"] == "stale" {
            break;
        }
        assert!(cut.elapsed() < Duration::from_millis(1500), "never served stale: {:#}", answer.body);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Call::new(Method::GET, "/v1/invoices")
        .bearer(Some(&leo))
        .send(&app)
        .await
        .expect_code(StatusCode::SERVICE_UNAVAILABLE, "UPSTREAM_UNAVAILABLE");
    // Meanwhile, at Auth: Ines is suspended and her session logged out.
    let auth = AuthClient::new(reqwest::Client::new(), &p.auth);
    let owner = p.token("maya", "encore").await;
    let body = json!({"roles": ["tour_accountant"], "status": "suspended"});
    auth.call(Method::PUT, "/v1/companies/encore/memberships/ines", &owner, Some(&body)).await.unwrap();
    auth.revoke(&ines).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    Call::new(Method::GET, "/v1/invoices")
        .bearer(Some(&maya))
        .send(&app)
        .await
        .expect_code(StatusCode::SERVICE_UNAVAILABLE, "UPSTREAM_UNAVAILABLE");

    // Healed: served live again, and what was committed during the cut is enforced.
    proxy.heal();
    within(&app, &maya, "/v1/invoices", StatusCode::OK, Duration::from_secs(5)).await;
    within(&app, &ines, "/v1/invoices", StatusCode::UNAUTHORIZED, Duration::from_secs(5)).await;

    // A reset of every connection (the feed's stream included): the feed reconnects and goes on.
    proxy.reset();
    tokio::time::sleep(Duration::from_millis(300)).await;
    auth.revoke(&maya).await.unwrap();
    within(&app, &maya, "/v1/invoices", StatusCode::UNAUTHORIZED, Duration::from_secs(5)).await;

    // No gap: the feed applied one event for every change of the log since it started, across the cut
    // and the reset, and reached the log's head.
    let head = p.state.engine.seq();
    let started = Instant::now();
    loop {
        let (from, at, applied) = kisum.source().feed_position().unwrap();
        if at == head {
            assert_eq!(applied, at - from, "the feed skipped or repeated events (from {from} to {at})");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "the feed is at {at}, the log at {head}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Issue 17: an event the SDK cannot parse is not skipped: the feed drops what is cached, loads the
/// revocations again and resumes from their sequence. Against a stand-in Auth that sends one garbled
/// event on its first stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_that_does_not_parse_triggers_a_resync() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let loads = Arc::new(AtomicUsize::new(0));
    let streams = Arc::new(AtomicUsize::new(0));
    let key = kisum_token::PrivateKey::generate(kisum_token::Algorithm::EdDSA, "k1").unwrap();
    let jwks = kisum_token::Jwks::from_keys([&key]).unwrap().to_json();
    let demo: serde_json::Value = serde_json::from_str(kisum_auth::boot::DEMO_WORLD).unwrap();
    let catalog = demo["catalog"].clone();
    let app = {
        let (loads, streams) = (loads.clone(), streams.clone());
        Router::new()
            .route("/.well-known/jwks.json", get(move || async move { jwks }))
            .route(
                "/oauth/token",
                axum::routing::post(|| async {
                    Json(json!({"access_token": "t", "token_type": "Bearer", "expires_in": 900}))
                }),
            )
            .route("/v1/catalog", get(move || async move { Json(catalog) }))
            .route(
                "/v1/revocations",
                get(move || async move {
                    loads.fetch_add(1, Ordering::SeqCst);
                    Json(json!({"seq": 5, "sessions": []}))
                }),
            )
            .route(
                "/v1/changes",
                get(move || async move {
                    // The first stream garbles event 6; later ones send it whole, then stay open.
                    let first = streams.fetch_add(1, Ordering::SeqCst) == 0;
                    let data = if first {
                        "id: 6\ndata: {this is not json\n\n".to_owned()
                    } else {
                        "id: 6\ndata: {\"seq\":6,\"kind\":\"access\",\"principals\":[],\"company\":null}\n\n".to_owned()
                    };
                    let body = futures_util::StreamExt::chain(
                        futures_util::stream::iter([Ok::<_, std::convert::Infallible>(data)]),
                        futures_util::stream::pending(),
                    );
                    ([("content-type", "text/event-stream")], axum::body::Body::from_stream(body))
                }),
            )
    };
    let listener = kisum_server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(axum::serve(listener, app).into_future());
    let config = RemoteConfig::new(&url, &url, "m", "s");
    let (kisum, _feed) = Kisum::connect(config, Arc::new(SystemClock)).await.unwrap();
    let started = Instant::now();
    loop {
        let position = kisum.source().feed_position().unwrap();
        if position == (5, 6, 1) && loads.load(Ordering::SeqCst) == 2 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "position {position:?}, revocations loaded {} times, {} streams",
            loads.load(Ordering::SeqCst),
            streams.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(streams.load(Ordering::SeqCst), 2, "the garbled stream was left and a new one opened");
}

/// Watchable (issue 19): a module's request keeps its W3C trace id through the SDK to Auth — Auth's log
/// line for the snapshot the SDK fetched carries the module's trace id — and the decision is counted in
/// `kisum_decisions_total` by outcome and source, the requests in `kisum_http_requests_total` by route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_to_auth_carry_the_trace_and_decisions_are_counted() {
    let logs = kisum_tests::logs::Logs::global();
    let p = Platform::start().await;
    let (app, _kisum) = module(&p, Duration::from_secs(60)).await;
    let maya = p.token("maya", "encore").await;
    let trace = "5ca1ab1e0ddba11c0ffee0000000c0de";
    let traced = Call::new(Method::GET, "/v1/invoices")
        .bearer(Some(&maya))
        .header("traceparent", &format!("00-{trace}-00f067aa0ba902b7-01"))
        .send(&app)
        .await;
    traced.expect(StatusCode::OK);
    assert_eq!(traced.body["origin"], "live", "the SDK asked Auth");
    let lines = logs.lines_with(trace);
    assert!(
        lines.iter().any(|l| l.contains("route=/v1/access/snapshot") && l.contains("served")),
        "Auth's line for the snapshot carries the module's trace id: {lines:#?}"
    );
    // Without a traceparent, the SDK starts a trace of its own: Auth's line carries some trace id.
    let leo = p.token("leo", "encore").await;
    Call::new(Method::GET, "/v1/invoices").bearer(Some(&leo)).send(&app).await;
    // A write, timed as it commits.
    let auth = AuthClient::new(reqwest::Client::new(), &p.auth);
    let grant = json!({"roles": ["finance_manager"]});
    auth.call(Method::PUT, "/v1/companies/encore/memberships/leo", &maya, Some(&grant)).await.unwrap();

    let metrics = kisum_server::metrics::handle().expect("Auth installed the recorder").render();
    let count = |needle: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(needle))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    assert!(count(r#"kisum_decisions_total{outcome="allow",source="live"}"#) >= 1.0, "{metrics}");
    assert!(
        count(r#"kisum_http_requests_total{service="auth",method="GET",route="/v1/access/snapshot",status="200"}"#)
            >= 2.0,
        "{metrics}"
    );
    assert!(metrics.contains("kisum_store_commit_seconds_bucket"), "the write committed: {metrics}");
    assert!(metrics.contains(r#"kisum_credential_hash_queue{queue="password"}"#), "{metrics}");
}
