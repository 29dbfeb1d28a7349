//! The six module servers through their routers, with the SDK built in process (fixed keys, a local
//! access source over the demo world at 2026-03-15T12:00:00Z): every route allowed and refused as DESIGN.md
//! §6 maps denials (401, 404 across tenants, 403 FORBIDDEN / NOT_ENTITLED / MEMBERSHIP_INACTIVE), the
//! rules the handlers add (currencies, `?include=bookings`, the copilot's monthly limit), service tokens on
//! the dual-auth route, MCP, the OpenAPI documents against the route tables, and `check_catalog`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, missing_docs)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::http::{Method, StatusCode};
use kisum_client::access::doc::WorldDoc;
use kisum_client::access::{AccessCatalog, CompanyId, Directory, World};
use kisum_client::entitlements::{ManualClock, Timestamp};
use kisum_client::{Keys, Kisum, LocalSource, Revocations};
use kisum_modules::{Module, ModuleDb, Options, PlannerConfig};
use kisum_tests::demo_world;
use kisum_tests::http::{Answer, Call};
use kisum_token::{Act, Algorithm, Audience, Claims, Jwks, PrivateKey, Validation, Verifier, sign};
use serde_json::{Value, json};

const ISSUER: &str = "http://127.0.0.1:7400";

fn now() -> Timestamp {
    Timestamp::parse("2026-03-15T12:00:00Z").unwrap()
}

struct Harness {
    key: PrivateKey,
    directory: Arc<Directory>,
    kisum: Kisum,
    companies: Vec<CompanyId>,
    clock: Arc<ManualClock>,
    jti: AtomicU64,
}

fn harness() -> Harness {
    harness_on(&demo_world())
}

fn harness_on(doc: &WorldDoc) -> Harness {
    let key = PrivateKey::generate(Algorithm::EdDSA, "k1").unwrap();
    let validation = Validation::new(ISSUER, "kisum");
    let verifier = Verifier::new(Jwks::from_keys([&key]).unwrap(), validation.clone()).unwrap();
    let keys = Arc::new(Keys::fixed(verifier, validation));
    let world = World::from_doc(doc).unwrap();
    let companies = doc.companies.iter().map(|c| c.id.parse().unwrap()).collect();
    let clock = Arc::new(ManualClock::new(now()));
    let directory = Arc::new(Directory::new(world));
    let source = Arc::new(LocalSource::new(directory.clone(), clock.clone()));
    let kisum = Kisum::new(keys, source, Arc::new(Revocations::default()), clock.clone());
    Harness { key, directory, kisum, companies, clock, jti: AtomicU64::new(0) }
}

/// Options whose copilot reaches no module (no test reaches a port it did not open).
fn unreached() -> Options {
    let mut options = Options::default();
    options.copilot.modules.clear();
    options
}

/// The demo world changed by `edit` (on its JSON form).
fn world_with(edit: impl FnOnce(&mut Value)) -> WorldDoc {
    let mut value = serde_json::to_value(demo_world()).unwrap();
    edit(&mut value);
    serde_json::from_value(value).unwrap()
}

impl Harness {
    /// The module with its records in memory; the ai module's copilot reaches no other module.
    async fn app(&self, module: Module) -> Router {
        self.app_with(module, &unreached()).await
    }

    async fn app_with(&self, module: Module, options: &Options) -> Router {
        module.router_with(self.kisum.clone(), &self.companies, self.clock.clone(), options).await.unwrap()
    }

    fn claims(&self, sub: &str) -> Claims {
        let iat = self.clock_now().unix_seconds();
        Claims {
            iss: ISSUER.into(),
            sub: sub.into(),
            aud: Audience::One("kisum".into()),
            exp: iat + 600,
            iat,
            jti: format!("j-{}", self.jti.fetch_add(1, Ordering::SeqCst)),
            nbf: None,
            cid: None,
            sid: None,
            ver: None,
            act: None,
            client_id: None,
            scope: None,
        }
    }

    fn clock_now(&self) -> Timestamp {
        use kisum_client::entitlements::Clock;
        self.clock.now()
    }

    /// A user token of `user` in `company`.
    fn user(&self, user: &str, company: &str) -> String {
        let claims = Claims { cid: Some(company.into()), sid: Some("s".into()), ver: Some(0), ..self.claims(user) };
        sign(&self.key, &claims).unwrap()
    }

    /// A token of agent `agent` acting for `user` in `company` (RFC 8693 `act`).
    fn agent(&self, agent: &str, user: &str, company: &str) -> String {
        let claims = Claims {
            act: Some(Act { sub: format!("agent:{agent}"), act: None }),
            cid: Some(company.into()),
            sid: Some("s".into()),
            ver: Some(0),
            ..self.claims(user)
        };
        sign(&self.key, &claims).unwrap()
    }

    /// A service token of `client` with `scope`.
    fn service(&self, client: &str, scope: &str) -> String {
        let claims = Claims {
            client_id: Some(client.into()),
            scope: Some(scope.into()),
            ..self.claims(&format!("service:{client}"))
        };
        sign(&self.key, &claims).unwrap()
    }
}

async fn get(app: &Router, path: &str, token: &str) -> Answer {
    Call::new(Method::GET, path).bearer(Some(token)).send(app).await
}

async fn post(app: &Router, path: &str, token: &str, body: Value) -> Answer {
    Call::new(Method::POST, path).bearer(Some(token)).json(&body).send(app).await
}

fn ids(list: &Value) -> Vec<&str> {
    list.as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect()
}

/// A `404 NOT_FOUND` that says nothing about why.
#[track_caller]
fn expect_hidden(answer: &Answer) {
    answer.expect_code(StatusCode::NOT_FOUND, "NOT_FOUND");
    assert!(answer.body["reason"].is_null(), "{:#}", answer.body);
}

/// A `403` with `code` naming `required`.
#[track_caller]
fn expect_refused(answer: &Answer, code: &str, required: &str) {
    answer.expect_code(StatusCode::FORBIDDEN, code);
    assert_eq!(answer.body["required"], required, "{:#}", answer.body);
}

#[test]
fn the_module_table() {
    let names: Vec<&str> = Module::ALL.iter().map(|m| m.name()).collect();
    assert_eq!(names, ["finance", "artist", "venue", "promoters", "touring", "ai"]);
    let ports: Vec<u16> = Module::ALL.iter().map(|m| m.default_port()).collect();
    assert_eq!(ports, [7410, 7411, 7412, 7413, 7414, 7415]);
    for module in Module::ALL {
        assert_eq!(module.name().parse::<Module>().unwrap(), module);
        assert_eq!(module.to_string(), module.name());
        assert!(!module.permissions().is_empty());
        // Every permission a module names belongs to a module of the catalog; its own routes are its own.
        assert!(module.permissions().iter().any(|p| p.starts_with(&format!("{}:", module.name()))), "{module}");
    }
    assert!("billing".parse::<Module>().is_err());
    assert_eq!(
        Module::Finance.permissions(),
        ["finance:invoice:read", "finance:invoice:create", "finance:invoice:approve"]
    );
    let ai: BTreeSet<&str> = Module::Ai.permissions().iter().copied().collect();
    let expected: BTreeSet<&str> = [
        "ai:copilot:ask",
        "ai:simulation:run",
        "venue:venue:read",
        "artist:profile:read",
        "finance:invoice:read",
        "promoters:event:read",
        "touring:tour:read",
    ]
    .into();
    assert_eq!(ai, expected);
}

#[test]
fn check_catalog_names_the_missing_permission() {
    let demo = AccessCatalog::from_doc(&demo_world().catalog).unwrap();
    for module in Module::ALL {
        module.check_catalog(&demo).unwrap();
    }
    let doc = world_with(|w| {
        let permissions = w["catalog"]["permissions"].as_array_mut().unwrap();
        permissions.retain(|p| p["key"] != "venue:contract:sign" && p["key"] != "touring:tour:read");
        // The system role `viewer` names `touring:tour:read` itself; the catalog would refuse it.
        let viewer = w["catalog"]["roles"].as_array_mut().unwrap().iter_mut().find(|r| r["id"] == "viewer").unwrap();
        viewer["grants"].as_array_mut().unwrap().retain(|g| g != "touring:tour:read");
    });
    let catalog = AccessCatalog::from_doc(&doc.catalog).unwrap();
    let venue = Module::Venue.check_catalog(&catalog).unwrap_err();
    assert!(venue.contains("`venue:contract:sign`"), "{venue}");
    assert!(!venue.contains("venue:venue:read"), "{venue}");
    let touring = Module::Touring.check_catalog(&catalog).unwrap_err();
    assert!(touring.contains("`touring:tour:read`") && !touring.contains("plan"), "{touring}");
    // The ai module's MCP tool `list_tours` needs `touring:tour:read`.
    let ai = Module::Ai.check_catalog(&catalog).unwrap_err();
    assert!(ai.contains("`touring:tour:read`"), "{ai}");
    for module in [Module::Finance, Module::Artist, Module::Promoters] {
        module.check_catalog(&catalog).unwrap();
    }
}

#[tokio::test]
async fn health_and_openapi_follow_the_route_tables() {
    let h = harness();
    for module in Module::ALL {
        let app = h.app(module).await;
        let live = Call::new(Method::GET, "/health/live").send(&app).await;
        live.expect(StatusCode::OK);
        assert!(live.headers.contains_key("x-request-id"));
        Call::new(Method::GET, "/health/ready").send(&app).await.expect(StatusCode::OK);
        let doc = Call::new(Method::GET, "/openapi.json").send(&app).await;
        doc.expect(StatusCode::OK);
        assert_eq!(doc.body["openapi"], "3.1.0");
        assert_eq!(doc.body["servers"][0]["url"], format!("http://127.0.0.1:{}", module.default_port()));
        let mut named = BTreeSet::new();
        for (path, methods) in doc.body["paths"].as_object().unwrap() {
            for (method, op) in methods.as_object().unwrap() {
                if let Some(p) = op["x-kisum-permission"].as_str() {
                    named.insert(p.to_owned());
                } else if path.starts_with("/v1/") {
                    panic!("{module}: {method} {path} names no permission");
                }
                for p in op["x-kisum-also"].as_array().into_iter().flatten() {
                    named.insert(p.as_str().unwrap().to_owned());
                }
            }
        }
        let permissions: BTreeSet<String> = module.permissions().iter().map(|p| (*p).to_owned()).collect();
        assert_eq!(named, permissions, "{module}: the document and the route table differ");
    }
    let finance = Call::new(Method::GET, "/openapi.json").send(&h.app(Module::Finance).await).await;
    let create = &finance.body["paths"]["/v1/invoices"]["post"];
    assert_eq!(create["x-kisum-permission"], "finance:invoice:create");
    assert!(create["responses"]["201"].is_object());
    assert_eq!(
        create["requestBody"]["content"]["application/json"]["schema"]["required"],
        json!(["currency", "amount"])
    );
    assert_eq!(finance.body["paths"]["/v1/invoices/{id}"]["get"]["x-kisum-resource"], "invoice");
}

#[tokio::test]
async fn not_ready_when_the_catalog_lacks_a_permission() {
    let doc = world_with(|w| {
        w["catalog"]["permissions"].as_array_mut().unwrap().retain(|p| p["key"] != "touring:tour:plan");
    });
    let h = harness_on(&doc);
    let ready = Call::new(Method::GET, "/health/ready").send(&h.app(Module::Touring).await).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(ready.body["status"].as_str().unwrap().contains("touring:tour:plan"), "{:#}", ready.body);
    Call::new(Method::GET, "/health/ready").send(&h.app(Module::Finance).await).await.expect(StatusCode::OK);
}

#[tokio::test]
async fn tokens_are_required_and_verified() {
    let h = harness();
    let app = h.app(Module::Finance).await;
    let none = Call::new(Method::GET, "/v1/invoices").send(&app).await;
    none.expect_code(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED");
    assert_eq!(none.headers["www-authenticate"], "Bearer");
    let basic = Call::new(Method::GET, "/v1/invoices").header("authorization", "Basic bWF5YTpwdw==").send(&app).await;
    basic.expect_code(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED");
    // Signed by a key the module does not know.
    let stranger = PrivateKey::generate(Algorithm::EdDSA, "k2").unwrap();
    let claims = Claims { cid: Some("encore".into()), sid: Some("s".into()), ver: Some(0), ..h.claims("maya") };
    let forged = sign(&stranger, &claims).unwrap();
    let answer = get(&app, "/v1/invoices", &forged).await;
    answer.expect_code(StatusCode::UNAUTHORIZED, "TOKEN_INVALID");
    assert!(answer.headers["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
    get(&app, "/v1/invoices", "not.a.token").await.expect_code(StatusCode::UNAUTHORIZED, "TOKEN_INVALID");
    // The same key, a token past its expiry.
    let old = h.user("maya", "encore");
    h.clock.advance(3600);
    get(&app, "/v1/invoices", &old).await.expect_code(StatusCode::UNAUTHORIZED, "TOKEN_EXPIRED");
    get(&app, "/v1/invoices", &h.user("maya", "encore")).await.expect(StatusCode::OK);
    // The request id is echoed, in the header and the problem.
    let traced = Call::new(Method::GET, "/v1/invoices").header("x-request-id", "trace-123").send(&app).await;
    traced.expect(StatusCode::UNAUTHORIZED);
    assert_eq!(traced.body["request_id"], "trace-123");
}

/// Every line written while a module serves a request names the caller the SDK verified (on the span
/// `kisum-server` opens for each request), with the request id.
#[tokio::test]
async fn log_lines_name_the_verified_caller() {
    let logs = kisum_tests::logs::Logs::global();
    let h = harness();
    let app = h.app(Module::Finance).await;
    let maya = h.user("maya", "encore");
    let call = Call::new(Method::GET, "/v1/invoices").bearer(Some(&maya)).header("x-request-id", "find-me-7");
    call.send(&app).await.expect(StatusCode::OK);
    let lines = logs.lines_with("request_id=find-me-7");
    let served = lines.iter().find(|l| l.contains("served")).unwrap_or_else(|| panic!("no request line: {lines:?}"));
    for field in ["request_id=find-me-7", "route=/v1/invoices", "principal=user:maya", "company=encore", "status=200"] {
        assert!(served.contains(field), "{field}: {served}");
    }
}

#[tokio::test]
async fn finance_reads_within_the_callers_company() {
    let h = harness();
    let app = h.app(Module::Finance).await;
    let maya = h.user("maya", "encore");
    let list = get(&app, "/v1/invoices", &maya).await;
    list.expect(StatusCode::OK);
    assert_eq!(ids(&list.body["invoices"]), ["encore-1"]);
    assert_eq!(list.body["invoices"][0]["currency"], "EUR");
    let one = get(&app, "/v1/invoices/encore-1", &maya).await;
    one.expect(StatusCode::OK);
    assert_eq!(one.body["id"], "encore-1");
    assert_eq!(one.body["company"], "encore");
    // Another company's invoice, a missing one, and a company the caller is not in: all the same 404.
    expect_hidden(&get(&app, "/v1/invoices/bluenote-1", &maya).await);
    expect_hidden(&get(&app, "/v1/invoices/encore-99", &maya).await);
    expect_hidden(&get(&app, "/v1/invoices", &h.user("ines", "bluenote")).await);
    // leo reads through ines's delegation, but may not create.
    let leo = h.user("leo", "encore");
    get(&app, "/v1/invoices/encore-1", &leo).await.expect(StatusCode::OK);
    let refused = post(&app, "/v1/invoices", &leo, json!({"currency": "EUR", "amount": 100})).await;
    expect_refused(&refused, "FORBIDDEN", "finance:invoice:create");
    assert_eq!(refused.body["reason"], "PERMISSION_NOT_GRANTED");
    // bluenote has no finance module; maya's membership there grants `finance:invoice:read` as a viewer.
    expect_refused(&get(&app, "/v1/invoices", &h.user("sam", "bluenote")).await, "NOT_ENTITLED", "finance");
    expect_refused(&get(&app, "/v1/invoices", &h.user("maya", "bluenote")).await, "NOT_ENTITLED", "finance");
    // kai's membership is suspended.
    let kai = get(&app, "/v1/invoices", &h.user("kai", "encore")).await;
    kai.expect_code(StatusCode::FORBIDDEN, "MEMBERSHIP_INACTIVE");
    // A service token is refused on user-only routes.
    let service = h.service("billing", "finance:*");
    expect_refused(&get(&app, "/v1/invoices", &service).await, "FORBIDDEN", "finance:invoice:read");
}

#[tokio::test]
async fn finance_creates_and_approves() {
    let h = harness();
    let app = h.app(Module::Finance).await;
    let maya = h.user("maya", "encore");
    let created = post(&app, "/v1/invoices", &maya, json!({"currency": "EUR", "amount": 4200})).await;
    created.expect(StatusCode::CREATED);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(id, "encore-2");
    assert_eq!(created.body["amount"], 4200);
    assert_eq!(created.body["status"], "draft");
    let list = get(&app, "/v1/invoices", &maya).await;
    assert_eq!(ids(&list.body["invoices"]), ["encore-1", "encore-2"]);

    for (body, path) in [
        (json!({"currency": "EUR", "amount": 0}), "/amount"),
        (json!({"currency": "EUR", "amount": -5}), "/amount"),
        (json!({"currency": "eur", "amount": 5}), "/currency"),
        (json!({"currency": "EURO", "amount": 5}), "/currency"),
    ] {
        let answer = post(&app, "/v1/invoices", &maya, body.clone()).await;
        answer.expect_code(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED");
        assert_eq!(answer.body["errors"][0]["path"], path, "{body}");
    }
    for body in [
        json!({"currency": "EUR", "amount": 5, "memo": "x"}),
        json!({"currency": "EUR"}),
        json!({"currency": "EUR", "amount": 1.5}),
    ] {
        post(&app, "/v1/invoices", &maya, body)
            .await
            .expect_code(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED");
    }
    let malformed =
        Call::new(Method::POST, "/v1/invoices").bearer(Some(&maya)).raw("application/json", "{").send(&app).await;
    malformed.expect_code(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED");
    let huge = json!({"currency": "EUR", "amount": 5, "pad": "x".repeat(70 * 1024)});
    post(&app, "/v1/invoices", &maya, huge).await.expect_code(StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE");
    assert_eq!(ids(&get(&app, "/v1/invoices", &maya).await.body["invoices"]), ["encore-1", "encore-2"]);

    // ines (a tour accountant: `finance:invoice:*`) approves; approving again changes nothing.
    let ines = h.user("ines", "encore");
    let approved = post(&app, &format!("/v1/invoices/{id}/approve"), &ines, json!({})).await;
    approved.expect(StatusCode::OK);
    assert_eq!(approved.body["status"], "approved");
    assert_eq!(approved.body["approved_by"], "user:ines");
    let again = post(&app, &format!("/v1/invoices/{id}/approve"), &maya, json!({})).await;
    again.expect(StatusCode::OK);
    assert_eq!(again.body["approved_by"], "user:ines");
    assert_eq!(get(&app, &format!("/v1/invoices/{id}"), &maya).await.body["status"], "approved");
    expect_refused(
        &post(&app, "/v1/invoices/encore-1/approve", &h.user("leo", "encore"), json!({})).await,
        "FORBIDDEN",
        "finance:invoice:approve",
    );
    expect_hidden(&post(&app, "/v1/invoices/bluenote-1/approve", &maya, json!({})).await);
    assert_eq!(get(&app, "/v1/invoices/encore-1", &maya).await.body["status"], "draft");
}

#[tokio::test]
async fn finance_currencies_are_bounded_by_the_limit() {
    // encore: the finance add-on gives `finance.multi_currency` and `finance.currencies` = 5.
    let h = harness();
    let app = h.app(Module::Finance).await;
    let maya = h.user("maya", "encore");
    for currency in ["USD", "GBP", "CHF", "JPY", "SEK", "USD"] {
        post(&app, "/v1/invoices", &maya, json!({"currency": currency, "amount": 100}))
            .await
            .expect(StatusCode::CREATED);
    }
    let sixth = post(&app, "/v1/invoices", &maya, json!({"currency": "NOK", "amount": 100})).await;
    expect_refused(&sixth, "LIMIT_EXCEEDED", "finance.currencies");
    // The base currency and those in use still go.
    post(&app, "/v1/invoices", &maya, json!({"currency": "EUR", "amount": 100})).await.expect(StatusCode::CREATED);
    post(&app, "/v1/invoices", &maya, json!({"currency": "GBP", "amount": 100})).await.expect(StatusCode::CREATED);
    let list = get(&app, "/v1/invoices", &maya).await;
    assert_eq!(list.body["invoices"].as_array().unwrap().len(), 9);
    assert!(list.body["invoices"].as_array().unwrap().iter().all(|i| i["currency"] != "NOK"));
}

#[tokio::test]
async fn finance_multi_currency_needs_the_feature() {
    let doc = world_with(|w| {
        let encore = w["companies"].as_array_mut().unwrap().iter_mut().find(|c| c["id"] == "encore").unwrap();
        encore["overrides"].as_array_mut().unwrap().push(json!({
            "effect": "revoke", "feature": "finance.multi_currency", "expires_at": null, "reason": "test"
        }));
    });
    let h = harness_on(&doc);
    let app = h.app(Module::Finance).await;
    let maya = h.user("maya", "encore");
    let usd = post(&app, "/v1/invoices", &maya, json!({"currency": "USD", "amount": 100})).await;
    expect_refused(&usd, "NOT_ENTITLED", "finance.multi_currency");
    assert_eq!(usd.body["reason"], "FEATURE_NOT_ENTITLED");
    post(&app, "/v1/invoices", &maya, json!({"currency": "EUR", "amount": 100})).await.expect(StatusCode::CREATED);
}

#[tokio::test]
async fn artist_bookings_need_their_own_permission() {
    let h = harness();
    let app = h.app(Module::Artist).await;
    // leo is a booker (`artist:*`).
    let leo = h.user("leo", "encore");
    let full = get(&app, "/v1/artists/encore-1?include=bookings", &leo).await;
    full.expect(StatusCode::OK);
    assert_eq!(ids(&full.body["bookings"]), ["encore-1"]);
    // ines is a viewer: profiles, not bookings.
    let ines = h.user("ines", "encore");
    let plain = get(&app, "/v1/artists/encore-1", &ines).await;
    plain.expect(StatusCode::OK);
    assert_eq!(plain.body["id"], "encore-1");
    assert!(plain.body.get("bookings").is_none(), "{:#}", plain.body);
    expect_refused(
        &get(&app, "/v1/artists/encore-1?include=bookings", &ines).await,
        "FORBIDDEN",
        "artist:booking:read",
    );
    get(&app, "/v1/artists/encore-1?include=everything", &leo)
        .await
        .expect_code(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED");
    get(&app, "/v1/artists/encore-1?expand=1", &leo)
        .await
        .expect_code(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED");
    expect_hidden(&get(&app, "/v1/artists/bluenote-1", &leo).await);
    expect_hidden(&get(&app, "/v1/artists/nobody", &leo).await);
    // bluenote has no artist module.
    expect_refused(&get(&app, "/v1/artists/bluenote-1", &h.user("sam", "bluenote")).await, "NOT_ENTITLED", "artist");

    let booked = post(&app, "/v1/artists/encore-1/bookings", &leo, json!({"date": "2026-07-01"})).await;
    booked.expect(StatusCode::CREATED);
    assert_eq!(booked.body["id"], "encore-2");
    assert_eq!(booked.body["artist"], "encore-1");
    let full = get(&app, "/v1/artists/encore-1?include=bookings", &leo).await;
    assert_eq!(ids(&full.body["bookings"]), ["encore-1", "encore-2"]);
    for date in ["2026-13-01", "2026-07-01T00:00:00Z", "tomorrow", ""] {
        let answer = post(&app, "/v1/artists/encore-1/bookings", &leo, json!({"date": date})).await;
        answer.expect_code(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED");
        assert_eq!(answer.body["errors"][0]["path"], "/date");
    }
    expect_refused(
        &post(&app, "/v1/artists/encore-1/bookings", &ines, json!({"date": "2026-07-02"})).await,
        "FORBIDDEN",
        "artist:booking:create",
    );
    expect_hidden(&post(&app, "/v1/artists/bluenote-1/bookings", &leo, json!({"date": "2026-07-02"})).await);
}

#[tokio::test]
async fn artist_reads_accept_service_tokens_whose_scopes_match() {
    let h = harness();
    let app = h.app(Module::Artist).await;
    // A service has no company: it may read any company's artist.
    let reader = h.service("catalog-sync", "artist:profile:read");
    let bluenote = get(&app, "/v1/artists/bluenote-1", &reader).await;
    bluenote.expect(StatusCode::OK);
    assert_eq!(bluenote.body["company"], "bluenote");
    get(&app, "/v1/artists/encore-1", &reader).await.expect(StatusCode::OK);
    expect_refused(
        &get(&app, "/v1/artists/encore-1?include=bookings", &reader).await,
        "FORBIDDEN",
        "artist:booking:read",
    );
    expect_hidden(&get(&app, "/v1/artists/nobody-1", &reader).await);
    let all = h.service("catalog-sync", "artist:*");
    let full = get(&app, "/v1/artists/bluenote-1?include=bookings", &all).await;
    full.expect(StatusCode::OK);
    assert_eq!(ids(&full.body["bookings"]), ["bluenote-1"]);
    // Scopes that do not match, and a route without dual auth.
    expect_refused(
        &get(&app, "/v1/artists/encore-1", &h.service("billing", "finance:*")).await,
        "FORBIDDEN",
        "artist:profile:read",
    );
    expect_refused(
        &post(&app, "/v1/artists/encore-1/bookings", &all, json!({"date": "2026-07-01"})).await,
        "FORBIDDEN",
        "artist:booking:create",
    );
}

#[tokio::test]
async fn venue_contracts_are_signed_once() {
    let h = harness();
    let app = h.app(Module::Venue).await;
    let maya = h.user("maya", "encore");
    let list = get(&app, "/v1/venues", &maya).await;
    list.expect(StatusCode::OK);
    assert_eq!(ids(&list.body["venues"]), ["encore-1"]);
    assert_eq!(ids(&list.body["venues"][0]["contracts"]), ["encore-1"]);
    assert_eq!(list.body["venues"][0]["contracts"][0]["status"], "draft");
    let signed = post(&app, "/v1/venues/encore-1/contracts/encore-1/sign", &maya, json!({})).await;
    signed.expect(StatusCode::OK);
    assert_eq!(signed.body["status"], "signed");
    assert_eq!(signed.body["signed_by"], "user:maya");
    assert_eq!(signed.body["signed_at"], "2026-03-15T12:00:00Z");
    h.clock.advance(60);
    let again = post(&app, "/v1/venues/encore-1/contracts/encore-1/sign", &h.user("maya", "encore"), json!({})).await;
    assert_eq!(again.body["signed_at"], "2026-03-15T12:00:00Z");
    assert_eq!(get(&app, "/v1/venues", &maya).await.body["venues"][0]["contracts"][0]["status"], "signed");
    expect_hidden(&post(&app, "/v1/venues/encore-1/contracts/encore-9/sign", &maya, json!({})).await);
    expect_hidden(&post(&app, "/v1/venues/bluenote-1/contracts/bluenote-1/sign", &maya, json!({})).await);
    // leo reads venues but signs nothing; bluenote's `venue.contracts` is revoked (legal hold).
    let leo = h.user("leo", "encore");
    get(&app, "/v1/venues", &leo).await.expect(StatusCode::OK);
    expect_refused(
        &post(&app, "/v1/venues/encore-1/contracts/encore-1/sign", &leo, json!({})).await,
        "FORBIDDEN",
        "venue:contract:sign",
    );
    let sam = h.user("sam", "bluenote");
    assert_eq!(ids(&get(&app, "/v1/venues", &sam).await.body["venues"]), ["bluenote-1"]);
    expect_refused(
        &post(&app, "/v1/venues/bluenote-1/contracts/bluenote-1/sign", &sam, json!({})).await,
        "NOT_ENTITLED",
        "venue.contracts",
    );
}

#[tokio::test]
async fn promoters_events() {
    let h = harness();
    let app = h.app(Module::Promoters).await;
    let maya = h.user("maya", "encore");
    let created =
        post(&app, "/v1/events", &maya, json!({"name": "Summer gala", "starts_at": "2026-07-04T20:00:00+02:00"})).await;
    created.expect(StatusCode::CREATED);
    assert_eq!(created.body["id"], "encore-2");
    assert_eq!(created.body["starts_at"], "2026-07-04T18:00:00Z");
    assert_eq!(ids(&get(&app, "/v1/events", &maya).await.body["events"]), ["encore-1", "encore-2"]);
    for body in [
        json!({"name": "x", "starts_at": "July 4th"}),
        json!({"name": "  ", "starts_at": "2026-07-04T20:00:00Z"}),
        json!({"name": "x"}),
    ] {
        post(&app, "/v1/events", &maya, body).await.expect_code(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED");
    }
    // leo is a member (reads events) whose membership restricts deletes.
    let leo = h.user("leo", "encore");
    get(&app, "/v1/events", &leo).await.expect(StatusCode::OK);
    let restricted = Call::new(Method::DELETE, "/v1/events/encore-1").bearer(Some(&leo)).send(&app).await;
    expect_refused(&restricted, "FORBIDDEN", "promoters:event:delete");
    assert_eq!(restricted.body["reason"], "RESTRICTED");
    expect_refused(
        &post(&app, "/v1/events", &leo, json!({"name": "x", "starts_at": "2026-07-04T20:00:00Z"})).await,
        "FORBIDDEN",
        "promoters:event:create",
    );
    expect_hidden(&Call::new(Method::DELETE, "/v1/events/bluenote-1").bearer(Some(&maya)).send(&app).await);
    let deleted = Call::new(Method::DELETE, "/v1/events/encore-2").bearer(Some(&maya)).send(&app).await;
    deleted.expect(StatusCode::NO_CONTENT);
    assert!(deleted.text.is_empty());
    expect_hidden(&Call::new(Method::DELETE, "/v1/events/encore-2").bearer(Some(&maya)).send(&app).await);
    assert_eq!(ids(&get(&app, "/v1/events", &maya).await.body["events"]), ["encore-1"]);
    // starter-era bluenote still has promoters (pro now).
    assert_eq!(ids(&get(&app, "/v1/events", &h.user("sam", "bluenote")).await.body["events"]), ["bluenote-1"]);
    // The platform company has no promoters module.
    expect_refused(&get(&app, "/v1/events", &h.user("ops", "kisum")).await, "NOT_ENTITLED", "promoters");
}

#[tokio::test]
async fn touring_tours() {
    let h = harness();
    touring_tours_on(&h, Target::Axum(h.app(Module::Touring).await)).await;
}

/// The same tests, on the touring module served by actix-web through kisum-client's actix adapter.
#[tokio::test]
async fn touring_tours_on_actix_web() {
    let h = harness();
    let base = actix_touring(&h).await;
    touring_tours_on(&h, Target::Http(base)).await;
}

/// Where a test sends its requests: an axum router in process, or a server over loopback HTTP.
enum Target {
    Axum(Router),
    Http(String),
}

impl Target {
    async fn send(&self, call: Call) -> Answer {
        match self {
            Target::Axum(app) => call.send(app).await,
            Target::Http(base) => call.send_to(base).await,
        }
    }
}

/// Starts the actix-web touring module on a free loopback port (its own thread and actix system).
async fn actix_touring(h: &Harness) -> String {
    let configure = kisum_modules::actix::touring(h.kisum.clone(), &h.companies, None).await.unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = actix_web::HttpServer::new(move || actix_web::App::new().configure(configure.clone()))
                .workers(1)
                .bind(("127.0.0.1", 0))
                .unwrap();
            tx.send(server.addrs()[0]).unwrap();
            server.run().await.unwrap();
        });
    });
    format!("http://{}", rx.recv().unwrap())
}

async fn touring_tours_on(h: &Harness, app: Target) {
    let get = |token: String| Call::new(Method::GET, "/v1/tours").bearer(Some(&token)).clone();
    let post = |token: &str, body: Value| Call::new(Method::POST, "/v1/tours").bearer(Some(token)).json(&body);
    let sam = h.user("sam", "bluenote");
    // No token, a bad token.
    let none = app.send(Call::new(Method::GET, "/v1/tours")).await;
    none.expect_code(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED");
    assert!(none.headers["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
    app.send(Call::new(Method::GET, "/v1/tours").bearer(Some("x.y.z")))
        .await
        .expect_code(StatusCode::UNAUTHORIZED, "TOKEN_INVALID");
    let planned = app.send(post(&sam, json!({"name": "Autumn run"}))).await;
    planned.expect(StatusCode::CREATED);
    assert_eq!(planned.body["id"], "bluenote-2");
    assert_eq!(planned.body["company"], "bluenote");
    assert_eq!(ids(&app.send(get(sam.clone())).await.body["tours"]), ["bluenote-1", "bluenote-2"]);
    assert_eq!(ids(&app.send(get(h.user("maya", "encore"))).await.body["tours"]), ["encore-1"]);
    app.send(post(&h.user("leo", "encore"), json!({"name": "Leo's run"}))).await.expect(StatusCode::CREATED);
    expect_refused(
        &app.send(post(&h.user("ines", "encore"), json!({"name": "x"}))).await,
        "FORBIDDEN",
        "touring:tour:plan",
    );
    let kai = app.send(get(h.user("kai", "encore"))).await;
    kai.expect_code(StatusCode::FORBIDDEN, "MEMBERSHIP_INACTIVE");
    app.send(get(h.user("maya", "globex"))).await.expect_code(StatusCode::NOT_FOUND, "NOT_FOUND");
    app.send(post(&sam, json!({"name": ""}))).await.expect_code(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED");
    app.send(post(&sam, json!({"name": "x", "extra": 1})))
        .await
        .expect_code(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED");
    // A method the route does not serve, and a route that does not exist.
    let put = app.send(Call::new(Method::PUT, "/v1/tours").bearer(Some(&sam))).await;
    assert_eq!(put.status, StatusCode::METHOD_NOT_ALLOWED);
    app.send(Call::new(Method::GET, "/v1/nothing").bearer(Some(&sam)))
        .await
        .expect_code(StatusCode::NOT_FOUND, "NOT_FOUND");
}

#[tokio::test]
async fn the_copilot_counts_every_question() {
    let h = harness();
    let app = h.app(Module::Ai).await;
    let maya = h.user("maya", "encore");
    let first = post(&app, "/v1/copilot/ask", &maya, json!({"question": "Which venue is free in May?"})).await;
    first.expect(StatusCode::OK);
    // The harness's copilot reaches no module: the lookup fails, and the answer says so.
    assert!(first.body["answer"].as_str().unwrap().contains("I could not look up your venues"), "{:#}", first.body);
    assert_eq!(first.body["used"], 1);
    // encore's ai add-on (trialing until April) gives 1000 a month.
    assert_eq!(first.body["limit"], 1000);
    post(&app, "/v1/copilot/ask", &maya, json!({"question": " "}))
        .await
        .expect_code(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED");
    post(&app, "/v1/copilot/ask", &maya, json!({"prompt": "x"}))
        .await
        .expect_code(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED");
    let second = post(&app, "/v1/copilot/ask", &maya, json!({"question": "And in June?"})).await;
    assert_eq!(second.body["used"], 2, "refused questions are not counted");
    expect_refused(
        &post(&app, "/v1/copilot/ask", &h.user("leo", "encore"), json!({"question": "q"})).await,
        "FORBIDDEN",
        "ai:copilot:ask",
    );
    expect_refused(
        &post(&app, "/v1/copilot/ask", &h.user("sam", "bluenote"), json!({"question": "q"})).await,
        "NOT_ENTITLED",
        "ai",
    );
}

/// The demo world with an ai add-on of `limit` requests a month, active (not trialing) for encore and
/// bluenote.
fn small_ai_world(limit: u64) -> WorldDoc {
    world_with(|w| {
        let addon = w["catalog"]["addons"].as_array_mut().unwrap().iter_mut().find(|a| a["id"] == "ai").unwrap();
        addon["limits"]["ai.monthly_requests"] = json!(limit);
        let companies = w["companies"].as_array_mut().unwrap();
        let encore = companies.iter_mut().find(|c| c["id"] == "encore").unwrap();
        let sub = encore["subscriptions"].as_array_mut().unwrap().iter_mut().find(|s| s["id"] == "enc-ai").unwrap();
        sub["status"] = json!("active");
        let bluenote = companies.iter_mut().find(|c| c["id"] == "bluenote").unwrap();
        bluenote["subscriptions"].as_array_mut().unwrap().push(json!({
            "id": "bn-ai", "plan": {"addon": "ai", "version": 1}, "status": "active", "starts_at": "2026-01-01T00:00:00Z"
        }));
    })
}

/// One MCP message as a 2025-06-18 client over streamable HTTP sends it, to the ai module's default
/// address.
async fn mcp(app: &Router, token: &str, message: Value) -> Answer {
    Call::new(Method::POST, "/mcp")
        .bearer(Some(token))
        .header("host", "127.0.0.1:7415")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .json(&message)
        .send(app)
        .await
}

fn call_tool(id: u64, name: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name, "arguments": arguments}})
}

#[tokio::test]
async fn the_copilot_stops_at_the_monthly_limit_and_starts_again_next_month() {
    let h = harness_on(&small_ai_world(2));
    let app = h.app(Module::Ai).await;
    let maya = h.user("maya", "encore");
    let ask = json!({"question": "q"});
    assert_eq!(post(&app, "/v1/copilot/ask", &maya, ask.clone()).await.body["used"], 1);
    // Through MCP too: the same counter.
    let by_tool = mcp(&app, &maya, call_tool(1, "copilot_ask", json!({"question": "q"}))).await;
    by_tool.expect(StatusCode::OK);
    assert_eq!(by_tool.body["result"]["structuredContent"]["used"], 2, "{:#}", by_tool.body);
    assert_eq!(by_tool.body["result"]["structuredContent"]["limit"], 2);
    let third = post(&app, "/v1/copilot/ask", &maya, ask.clone()).await;
    expect_refused(&third, "LIMIT_EXCEEDED", "ai.monthly_requests");
    let refused = mcp(&app, &maya, call_tool(2, "copilot_ask", json!({"question": "q"}))).await;
    refused.expect(StatusCode::OK);
    assert_eq!(refused.body["error"]["code"], -32001, "{:#}", refused.body);
    assert_eq!(refused.body["error"]["data"]["code"], "LIMIT_EXCEEDED");
    assert_eq!(refused.body["error"]["data"]["required"], "ai.monthly_requests");
    // Every other tool too: a simulation over MCP is refused at the limit, and runs nothing.
    let simulation = mcp(&app, &maya, call_tool(3, "simulate_event", simulation_of(7))).await;
    assert_eq!(simulation.body["error"]["data"]["code"], "LIMIT_EXCEEDED", "{:#}", simulation.body);
    // Each company counts on its own.
    let sam = post(&app, "/v1/copilot/ask", &h.user("sam", "bluenote"), ask.clone()).await;
    sam.expect(StatusCode::OK);
    assert_eq!(sam.body["used"], 1);
    // A new month starts from zero.
    h.clock.set(Timestamp::parse("2026-04-01T00:00:00Z").unwrap());
    let april = post(&app, "/v1/copilot/ask", &h.user("maya", "encore"), ask).await;
    april.expect(StatusCode::OK);
    assert_eq!(april.body["used"], 1);
}

/// A simulation request: 2,000 seats in two tiers, 75% ± 15 points expected to sell late in a 60-day
/// sale, 60,000.00 of fixed costs, and the P&L in dollars too.
fn simulation_of(seed: u64) -> Value {
    json!({
        "capacity": 2000,
        "tiers": [{"name": "GA", "price": 4500, "share": 0.8}, {"name": "VIP", "price": 12000, "share": 0.2}],
        "currency": "EUR",
        "fixed_costs": 6_000_000,
        "variable_cost": 500,
        "sell_through": {"mean": 0.75, "spread": 0.15},
        "curve": "late",
        "days_on_sale": 60,
        "fx": {"currency": "USD", "rate": 1.08, "volatility": 0.05},
        "runs": 10000,
        "seed": seed
    })
}

/// Issue 20: the copilot's simulation flow is reproducible from its inputs and seed, reports what the
/// model says, explains it, counts against `ai.monthly_requests` (a refused input counts nothing), and
/// needs `ai:simulation:run`.
#[tokio::test]
async fn simulations_are_reproducible_explained_counted_and_guarded() {
    let h = harness_on(&small_ai_world(3));
    let app = h.app(Module::Ai).await;
    let maya = h.user("maya", "encore");
    let first = post(&app, "/v1/copilot/simulations", &maya, simulation_of(42)).await;
    first.expect(StatusCode::OK);
    assert_eq!(first.body["used"], 1);
    let sim = &first.body["simulation"];
    let (p5, p50, p95) = (
        sim["tickets"]["p5"].as_i64().unwrap(),
        sim["tickets"]["p50"].as_i64().unwrap(),
        sim["tickets"]["p95"].as_i64().unwrap(),
    );
    assert!(p5 <= p50 && p50 <= p95 && p95 <= 2000, "{sim:#}");
    assert!((1400..=1600).contains(&p50), "75% of 2,000 seats expected: {sim:#}");
    assert!(sim["profit"]["p5"].as_i64() < sim["profit"]["p50"].as_i64(), "{sim:#}");
    // An average price of 6,000 less 500 a ticket covers 6,000,000 at 1,091 tickets.
    assert_eq!(sim["break_even_tickets"], 1091);
    let loss = sim["loss_probability"].as_f64().unwrap();
    assert!(loss > 0.0 && loss < 0.5, "{loss}");
    let curve = sim["sales_curve"].as_array().unwrap();
    assert_eq!((curve[0]["day"].as_i64(), curve[0]["p50"].as_i64()), (Some(0), Some(0)));
    assert_eq!((curve[10]["day"].as_i64(), curve[10]["p50"].as_i64()), (Some(60), Some(p50)));
    assert!(curve[5]["p50"].as_i64().unwrap() < p50 / 2, "a late curve is below the diagonal: {curve:?}");
    assert_eq!(sim["fx"]["currency"], "USD");
    let explanation = first.body["explanation"].as_str().unwrap();
    assert!(explanation.contains("seed 42") && explanation.contains("breaks even at 1091 tickets"), "{explanation}");
    // Refused inputs, named by their place, count nothing.
    let mut crowded = simulation_of(42);
    crowded["tiers"][0]["share"] = json!(0.9);
    let refused = post(&app, "/v1/copilot/simulations", &maya, crowded).await;
    refused.expect_code(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED");
    assert_eq!(refused.body["errors"][0]["path"], "/tiers");
    let mut too_many = simulation_of(42);
    too_many["runs"] = json!(100_001);
    let refused = post(&app, "/v1/copilot/simulations", &maya, too_many).await;
    assert_eq!(refused.body["errors"][0]["path"], "/runs");
    let mut unknown = simulation_of(42);
    unknown["budget"] = json!(1);
    post(&app, "/v1/copilot/simulations", &maya, unknown)
        .await
        .expect_code(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED");
    // The same inputs and seed: the same figures; another seed: other runs.
    let again = post(&app, "/v1/copilot/simulations", &maya, simulation_of(42)).await;
    assert_eq!(again.body["used"], 2, "refused inputs were not counted");
    assert_eq!(again.body["simulation"], first.body["simulation"]);
    let other = post(&app, "/v1/copilot/simulations", &maya, simulation_of(43)).await;
    assert_eq!(other.body["used"], 3);
    assert_ne!(other.body["simulation"]["profit"], first.body["simulation"]["profit"]);
    // The month's requests are spent, the copilot's questions and simulations alike.
    expect_refused(
        &post(&app, "/v1/copilot/simulations", &maya, simulation_of(42)).await,
        "LIMIT_EXCEEDED",
        "ai.monthly_requests",
    );
    expect_refused(
        &post(&app, "/v1/copilot/ask", &maya, json!({"question": "q"})).await,
        "LIMIT_EXCEEDED",
        "ai.monthly_requests",
    );
    // A sure sell-out has no spread: every figure is the arithmetic of the inputs.
    let mut certain = simulation_of(1);
    certain["sell_through"] = json!({"mean": 1.0, "spread": 0.0});
    let sure = post(&app, "/v1/copilot/simulations", &h.user("sam", "bluenote"), certain).await;
    sure.expect(StatusCode::OK);
    assert_eq!(sure.body["simulation"]["tickets"], json!({"p5": 2000, "p50": 2000, "p95": 2000, "mean": 2000}));
    // 1,600 × 45.00 + 400 × 120.00 − 60,000.00 − 2,000 × 5.00.
    assert_eq!(sure.body["simulation"]["profit"]["p50"], 7_200_000 + 4_800_000 - 6_000_000 - 1_000_000);
    assert_eq!(sure.body["simulation"]["loss_probability"], 0.0);
    // A booker may not run simulations.
    expect_refused(
        &post(&app, "/v1/copilot/simulations", &h.user("leo", "encore"), simulation_of(42)).await,
        "FORBIDDEN",
        "ai:simulation:run",
    );
}

/// Issue 20: MCP on the official SDK. A 2025-06-18 client's `initialize` → `notifications/initialized`
/// → `tools/list` → `tools/call`; `tools/list` shows only what the caller may call and `tools/call`
/// decides it again (a refusal is -32001 with the problem); the company's `ai` entitlement and a user
/// token come before any JSON-RPC; `Host` and `Origin` are checked; a `401` names the RFC 9728 metadata.
#[tokio::test]
async fn mcp_lists_and_calls_only_what_the_caller_may() {
    let h = harness();
    let app = h.copilot(PlannerConfig::Rules, None).await;
    let maya = h.user("maya", "encore");
    let init = mcp(
        &app,
        &maya,
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}
        }}),
    )
    .await;
    init.expect(StatusCode::OK);
    assert_eq!(init.body["jsonrpc"], "2.0");
    assert_eq!(init.body["id"], 1);
    assert_eq!(init.body["result"]["protocolVersion"], "2025-06-18");
    assert!(init.body["result"]["capabilities"]["tools"].is_object(), "{:#}", init.body);
    assert_eq!(init.body["result"]["serverInfo"]["name"], "kisum-ai");
    let note = mcp(&app, &maya, json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await;
    assert_eq!(note.status, StatusCode::ACCEPTED);

    let tools = |answer: &Answer| -> Vec<String> {
        answer.body["result"]["tools"]
            .as_array()
            .unwrap_or_else(|| panic!("{:#}", answer.body))
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let list = json!({"jsonrpc": "2.0", "id": "l", "method": "tools/list"});
    let all = mcp(&app, &maya, list.clone()).await;
    all.expect(StatusCode::OK);
    assert_eq!(all.body["id"], "l");
    assert_eq!(
        tools(&all),
        ["copilot_ask", "find_venues", "find_artists", "list_invoices", "list_events", "list_tours", "simulate_event"]
    );
    assert_eq!(all.body["result"]["tools"][0]["inputSchema"]["required"], json!(["question"]));
    // leo: venues and artists (booker), events, tours, invoices (ines's delegation); no ai.
    assert_eq!(
        tools(&mcp(&app, &h.user("leo", "encore"), list.clone()).await),
        ["find_venues", "find_artists", "list_invoices", "list_events", "list_tours"]
    );
    // sam: bluenote is not entitled to ai: refused before any JSON-RPC is read, whatever the message.
    for message in [list.clone(), call_tool(4, "list_events", json!({})), json!("not even JSON-RPC")] {
        let refused = mcp(&app, &h.user("sam", "bluenote"), message).await;
        refused.expect_code(StatusCode::FORBIDDEN, "NOT_ENTITLED");
        assert_eq!(refused.body["required"], "ai");
    }
    // kai's membership is suspended: refused as such.
    mcp(&app, &h.user("kai", "encore"), list.clone()).await.expect_code(StatusCode::FORBIDDEN, "MEMBERSHIP_INACTIVE");

    // A tool reads the finance module with maya's access.
    let invoices = mcp(&app, &maya, call_tool(3, "list_invoices", json!({}))).await;
    invoices.expect(StatusCode::OK);
    assert_eq!(invoices.body["result"]["isError"], false, "{:#}", invoices.body);
    assert_eq!(ids(&invoices.body["result"]["structuredContent"]["invoices"]), ["encore-1"]);
    let text: Value = serde_json::from_str(invoices.body["result"]["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(text, invoices.body["result"]["structuredContent"]);

    let refused = mcp(&app, &h.user("leo", "encore"), call_tool(5, "copilot_ask", json!({"question": "q"}))).await;
    refused.expect(StatusCode::OK);
    assert_eq!(refused.body["id"], 5);
    assert_eq!(refused.body["error"]["code"], -32001);
    assert_eq!(refused.body["error"]["data"]["code"], "FORBIDDEN");
    assert_eq!(refused.body["error"]["data"]["required"], "ai:copilot:ask");
    assert!(refused.body["result"].is_null());

    // Every tool call counts against the month: list_invoices was the first.
    let maya_asks = mcp(&app, &maya, call_tool(7, "copilot_ask", json!({"question": "Our tours?"}))).await;
    assert_eq!(maya_asks.body["result"]["structuredContent"]["used"], 2, "{:#}", maya_asks.body);
    assert!(maya_asks.body["result"]["structuredContent"]["answer"].as_str().unwrap().contains("encore spring tour"));
    let rest = post(&app, "/v1/copilot/ask", &maya, json!({"question": "q"})).await;
    assert_eq!(rest.body["used"], 3);

    for (message, code) in [
        (call_tool(8, "delete_everything", json!({})), -32602),
        (call_tool(9, "copilot_ask", json!({})), -32602),
        (call_tool(10, "list_tours", json!({"company": "bluenote"})), -32602),
        (json!({"jsonrpc": "2.0", "id": 12, "method": "resources/list"}), -32601),
    ] {
        let answer = mcp(&app, &maya, message.clone()).await;
        assert_eq!(answer.status, StatusCode::OK, "{message}");
        assert_eq!(answer.body["error"]["code"], code, "{message}: {:#}", answer.body);
    }
    // What is not a JSON-RPC message is refused by the SDK, as problem+json or a JSON-RPC error.
    for garbage in ["{\"jsonrpc\":", "[1, 2]", "{\"id\": 13, \"method\": \"tools/list\"}"] {
        let answer = Call::new(Method::POST, "/mcp")
            .bearer(Some(&maya))
            .header("host", "127.0.0.1:7415")
            .header("accept", "application/json, text/event-stream")
            .raw("application/json", garbage)
            .send(&app)
            .await;
        assert!(answer.status.is_client_error() || answer.body["error"]["code"].is_i64(), "{garbage}: {answer:?}");
        assert!(answer.body.is_object(), "{garbage}: {}", answer.text);
    }

    // Host and Origin: DNS rebinding and browsers are refused, as problem+json.
    let from = |host: &str, origin: Option<&str>| {
        let mut call = Call::new(Method::POST, "/mcp")
            .bearer(Some(&maya))
            .header("host", host)
            .header("accept", "application/json, text/event-stream")
            .json(&list);
        if let Some(origin) = origin {
            call = call.header("origin", origin);
        }
        call
    };
    let rebound = from("attacker.example", None).send(&app).await;
    rebound.expect_code(StatusCode::FORBIDDEN, "FORBIDDEN");
    let browser = from("127.0.0.1:7415", Some("https://attacker.example")).send(&app).await;
    browser.expect_code(StatusCode::FORBIDDEN, "FORBIDDEN");
    from("localhost:7415", None).send(&app).await.expect(StatusCode::OK);

    // A current client (2026-07-28): no handshake, the version and client in every request.
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "test", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {}
    });
    let current = |method: &str, name: Option<&str>, params: Value| {
        let mut call = Call::new(Method::POST, "/mcp")
            .bearer(Some(&maya))
            .header("host", "127.0.0.1:7415")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", method);
        if let Some(name) = name {
            call = call.header("mcp-name", name);
        }
        call.json(&json!({"jsonrpc": "2.0", "id": 20, "method": method, "params": params}))
    };
    let listed = current("tools/list", None, json!({"_meta": meta})).send(&app).await;
    listed.expect(StatusCode::OK);
    assert_eq!(tools(&listed).len(), 7, "{:#}", listed.body);
    let called =
        current("tools/call", Some("list_tours"), json!({"name": "list_tours", "arguments": {}, "_meta": meta}))
            .send(&app)
            .await;
    assert_eq!(ids(&called.body["result"]["structuredContent"]["tours"]), ["encore-1"], "{:#}", called.body);

    let huge = json!({"jsonrpc": "2.0", "id": 16, "method": "ping", "params": {"pad": "x".repeat(70 * 1024)}});
    mcp(&app, &maya, huge).await.expect_code(StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE");
    let ping = mcp(&app, &maya, json!({"jsonrpc": "2.0", "id": 17, "method": "ping"})).await;
    assert_eq!(ping.body["result"], json!({}));

    // The endpoint needs a user token, and says where to learn how to get one (RFC 9728).
    let none = Call::new(Method::POST, "/mcp").json(&list).send(&app).await;
    none.expect_code(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED");
    let metadata_url = "http://127.0.0.1:7415/.well-known/oauth-protected-resource/mcp";
    assert_eq!(none.headers["www-authenticate"], format!("Bearer resource_metadata=\"{metadata_url}\""));
    for path in ["/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"] {
        let metadata = Call::new(Method::GET, path).send(&app).await;
        metadata.expect(StatusCode::OK);
        assert_eq!(metadata.body["resource"], "http://127.0.0.1:7415/mcp");
        assert_eq!(metadata.body["authorization_servers"], json!(["http://127.0.0.1:7400"]));
        assert_eq!(metadata.body["bearer_methods_supported"], json!(["header"]));
    }
    // Other routes' 401 stay as they were.
    let plain = Call::new(Method::POST, "/v1/copilot/ask").json(&json!({"question": "q"})).send(&app).await;
    assert_eq!(plain.headers["www-authenticate"], "Bearer");
    mcp(&app, &h.service("robot", "*"), list).await.expect_code(StatusCode::FORBIDDEN, "FORBIDDEN");
    let get = Call::new(Method::GET, "/mcp").bearer(Some(&maya)).header("host", "127.0.0.1:7415").send(&app).await;
    assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED, "{get:?}");
}

/// Issue 20: an agent's conversations are its own *for the user it acts for*: acting for leo, it sees
/// none of those it held for maya, and neither user sees the agent's.
#[tokio::test]
async fn an_agents_conversations_are_kept_per_user() {
    let doc = world_with(|w| {
        let leo = w["memberships"].as_array_mut().unwrap().iter_mut().find(|m| m["user"] == "leo").unwrap();
        leo["roles"] = json!(["owner"]);
        w["delegations"].as_array_mut().unwrap().push(json!({
            "id": "leo-ai-to-copilot", "company": "encore", "from": {"user": "leo"}, "to": {"agent": "copilot"},
            "grants": ["ai:*"], "not_before": "2026-03-01T00:00:00Z",
            "expires_at": "2026-05-01T00:00:00Z", "redelegable": false
        }));
    });
    let h = harness_on(&doc);
    let app = h.app(Module::Ai).await;
    let for_maya = h.agent("copilot", "maya", "encore");
    let for_leo = h.agent("copilot", "leo", "encore");
    let started = post(&app, "/v1/copilot/sessions", &for_maya, json!({"title": "For maya"})).await;
    started.expect(StatusCode::CREATED);
    assert_eq!(started.body["owner"], "agent:copilot for user:maya");
    let path = format!("/v1/copilot/sessions/{}", started.body["id"].as_str().unwrap());
    get(&app, &path, &for_maya).await.expect(StatusCode::OK);
    expect_hidden(&get(&app, &path, &for_leo).await);
    expect_hidden(&get(&app, &path, &h.user("maya", "encore")).await);
    assert!(get(&app, "/v1/copilot/sessions", &for_leo).await.body["sessions"].as_array().unwrap().is_empty());
    assert_eq!(get(&app, "/v1/copilot/sessions", &for_maya).await.body["sessions"].as_array().unwrap().len(), 1);
}

/// Issue 20: an agent's token over MCP sees the tools of what the user it acts for delegated to it —
/// never what another user delegated to the same agent.
#[tokio::test]
async fn mcp_agents_see_their_delegators_tools() {
    let doc = world_with(|w| {
        w["delegations"].as_array_mut().unwrap().push(json!({
            "id": "leo-tours-to-copilot", "company": "encore", "from": {"user": "leo"}, "to": {"agent": "copilot"},
            "grants": ["touring:tour:read"], "not_before": "2026-03-01T00:00:00Z",
            "expires_at": "2026-05-01T00:00:00Z", "redelegable": false
        }));
    });
    let h = harness_on(&doc);
    let app = h.copilot(PlannerConfig::Rules, None).await;
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    let names = |answer: Answer| -> Vec<String> {
        answer.body["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect()
    };
    // For maya: `ai:*` (her grant on invoice inv-42 names one record, no list).
    let for_maya = h.agent("copilot", "maya", "encore");
    assert_eq!(names(mcp(&app, &for_maya, list.clone()).await), ["copilot_ask", "simulate_event"]);
    // For leo: his tours only.
    let for_leo = h.agent("copilot", "leo", "encore");
    assert_eq!(names(mcp(&app, &for_leo, list).await), ["list_tours"]);
    let tours = mcp(&app, &for_leo, call_tool(2, "list_tours", json!({}))).await;
    assert_eq!(ids(&tours.body["result"]["structuredContent"]["tours"]), ["encore-1"]);
    let refused = mcp(&app, &for_leo, call_tool(3, "copilot_ask", json!({"question": "q"}))).await;
    assert_eq!(refused.body["error"]["data"]["required"], "ai:copilot:ask");
    // maya's agent may not list tours for her: she did not delegate them.
    let refused = mcp(&app, &for_maya, call_tool(4, "list_tours", json!({}))).await;
    assert_eq!(refused.body["error"]["code"], -32001);
    assert_eq!(refused.body["error"]["data"]["required"], "touring:tour:read");
}

/// The demo world where maya's agent `copilot` holds, besides `ai:*`, grants scoped to single records:
/// `finance:invoice:read` on invoice `encore-1`, and delete, profile and signing rights on event, artist
/// and venue `encore-1`.
fn scoped_agent_world() -> WorldDoc {
    world_with(|w| {
        let delegations = w["delegations"].as_array_mut().unwrap();
        let invoice = delegations.iter_mut().find(|d| d["id"] == "maya-invoice-to-copilot").unwrap();
        invoice["resources"] = json!([{"company": "encore", "kind": "invoice", "id": "encore-1"}]);
        delegations.push(json!({
            "id": "maya-records-to-copilot",
            "company": "encore",
            "from": {"user": "maya"},
            "to": {"agent": "copilot"},
            "grants": ["promoters:event:delete", "artist:profile:read", "venue:contract:sign"],
            "resources": [
                {"company": "encore", "kind": "event", "id": "encore-1"},
                {"company": "encore", "kind": "artist", "id": "encore-1"},
                {"company": "encore", "kind": "venue", "id": "encore-1"}
            ],
            "not_before": "2026-03-01T00:00:00Z",
            "expires_at": "2026-05-01T00:00:00Z",
            "redelegable": false
        }));
    })
}

#[tokio::test]
async fn grants_scoped_to_a_record_are_checked_on_that_record() {
    let h = harness_on(&scoped_agent_world());
    let maya = h.user("maya", "encore");
    let copilot = h.agent("copilot", "maya", "encore");

    let finance = h.app(Module::Finance).await;
    post(&finance, "/v1/invoices", &maya, json!({"currency": "EUR", "amount": 1})).await.expect(StatusCode::CREATED);
    get(&finance, "/v1/invoices/encore-1", &copilot).await.expect(StatusCode::OK);
    expect_refused(&get(&finance, "/v1/invoices/encore-2", &copilot).await, "FORBIDDEN", "finance:invoice:read");
    // A list names no record: a grant scoped to one does not open it.
    expect_refused(&get(&finance, "/v1/invoices", &copilot).await, "FORBIDDEN", "finance:invoice:read");

    let promoters = h.app(Module::Promoters).await;
    post(&promoters, "/v1/events", &maya, json!({"name": "x", "starts_at": "2026-07-04T20:00:00Z"}))
        .await
        .expect(StatusCode::CREATED);
    let other = Call::new(Method::DELETE, "/v1/events/encore-2").bearer(Some(&copilot)).send(&promoters).await;
    expect_refused(&other, "FORBIDDEN", "promoters:event:delete");
    Call::new(Method::DELETE, "/v1/events/encore-1")
        .bearer(Some(&copilot))
        .send(&promoters)
        .await
        .expect(StatusCode::NO_CONTENT);

    let artist = h.app(Module::Artist).await;
    get(&artist, "/v1/artists/encore-1", &copilot).await.expect(StatusCode::OK);
    expect_refused(
        &get(&artist, "/v1/artists/encore-1?include=bookings", &copilot).await,
        "FORBIDDEN",
        "artist:booking:read",
    );

    let venue = h.app(Module::Venue).await;
    let signed = post(&venue, "/v1/venues/encore-1/contracts/encore-1/sign", &copilot, json!({})).await;
    signed.expect(StatusCode::OK);
    assert_eq!(signed.body["signed_by"], "agent:copilot");
    expect_refused(&get(&venue, "/v1/venues", &copilot).await, "FORBIDDEN", "venue:venue:read");

    // Over MCP the agent may ask (`ai:*`), but not list invoices (its grant names one record).
    let ai = h.app(Module::Ai).await;
    let tools = mcp(&ai, &copilot, json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})).await;
    let names: Vec<&str> =
        tools.body["result"]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["copilot_ask", "simulate_event"]);
}

/// A guard carries the SDK it decides with (issue 19): on a route that is not behind `Kisum::layer`, it
/// verifies the token itself — no token is `401`, another company's record `404`, an allowed caller gets
/// through — instead of answering `500` for a missing extension.
#[tokio::test]
async fn a_guard_outside_the_layer_verifies_the_token_itself() {
    let h = harness();
    let owners = kisum_client::Owners::new(|kind: &str, id: &str| {
        (kind == "invoice").then(|| id.split('-').next().and_then(|c| c.parse().ok())).flatten()
    });
    let app = Router::new().route(
        "/v1/invoices/{id}",
        axum::routing::get(|access: kisum_client::Access| async move {
            access.company().map(ToString::to_string).unwrap_or_default()
        })
        .route_layer(h.kisum.require("finance:invoice:read").on("invoice", "id").owned_by(owners)),
    );
    Call::new(Method::GET, "/v1/invoices/encore-1")
        .send(&app)
        .await
        .expect_code(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED");
    let maya = h.user("maya", "encore");
    Call::new(Method::GET, "/v1/invoices/encore-1").bearer(Some(&maya)).send(&app).await.expect(StatusCode::OK);
    Call::new(Method::GET, "/v1/invoices/bluenote-1")
        .bearer(Some(&maya))
        .send(&app)
        .await
        .expect(StatusCode::NOT_FOUND);
}

/// Records in a database: the guard awaits an [`OwnerLookup`](kisum_client::OwnerLookup). A record found
/// is decided on its own company (another tenant's is `404`, a missing one `404`); a lookup that fails
/// (the database is down) is answered with its refusal — `503`, never an allow.
#[tokio::test]
async fn guards_await_owner_lookups_and_fail_closed() {
    struct Table {
        down: std::sync::atomic::AtomicBool,
    }
    #[async_trait::async_trait]
    impl kisum_client::OwnerLookup for Table {
        async fn owner(&self, kind: &str, id: &str) -> Result<Option<CompanyId>, kisum_client::Refusal> {
            tokio::task::yield_now().await;
            if self.down.load(Ordering::SeqCst) {
                return Err(kisum_client::Refusal::new(
                    kisum_client::errors::ErrorCode::UpstreamUnavailable,
                    "the records' database is unreachable",
                ));
            }
            Ok(match (kind, id) {
                ("invoice", "inv-a") => Some("encore".parse().unwrap()),
                ("invoice", "inv-b") => Some("bluenote".parse().unwrap()),
                _ => None,
            })
        }
    }
    let h = harness();
    let table = Arc::new(Table { down: std::sync::atomic::AtomicBool::new(false) });
    struct Shared(Arc<Table>);
    #[async_trait::async_trait]
    impl kisum_client::OwnerLookup for Shared {
        async fn owner(&self, kind: &str, id: &str) -> Result<Option<CompanyId>, kisum_client::Refusal> {
            self.0.owner(kind, id).await
        }
    }
    let owners = kisum_client::Owners::from_lookup(Shared(table.clone()));
    let app = Router::new()
        .route(
            "/v1/invoices/{id}",
            axum::routing::get(|| async { "the invoice" })
                .route_layer(h.kisum.require("finance:invoice:read").on("invoice", "id").owned_by(owners)),
        )
        .layer(h.kisum.layer());
    let maya = h.user("maya", "encore");
    let get = |id: &str| Call::new(Method::GET, format!("/v1/invoices/{id}")).bearer(Some(&maya)).send(&app);
    get("inv-a").await.expect(StatusCode::OK);
    get("inv-b").await.expect_code(StatusCode::NOT_FOUND, "NOT_FOUND");
    get("inv-c").await.expect_code(StatusCode::NOT_FOUND, "NOT_FOUND");
    table.down.store(true, Ordering::SeqCst);
    get("inv-a").await.expect_code(StatusCode::SERVICE_UNAVAILABLE, "UPSTREAM_UNAVAILABLE");
}

kisum_tests::on_both_backends!(
    the_copilots_count_survives_a_restart,
    the_quota_is_exact_across_replicas,
    module_records_survive_a_restart,
    module_lists_come_in_pages,
    currency_limits_hold_across_replicas,
    conversations_survive_a_restart,
    modules_start_together_on_one_database
);

/// Issue 20: modules starting at once on one new database all create (or find) their tables.
async fn modules_start_together_on_one_database(backend: kisum_tests::Backend) {
    let db = kisum_tests::TestDb::new(backend).await;
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let url = db.url.clone();
            tokio::spawn(async move { ModuleDb::connect(&url).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
}

impl Harness {
    /// The module with what it keeps in `db`.
    async fn app_on(&self, module: Module, db: kisum_modules::ModuleDb) -> Router {
        self.app_with(module, &Options { db: Some(db), ..unreached() }).await
    }
}

/// Issue 20: the ai module's usage counter, kept in the database, survives a restart of the module.
async fn the_copilots_count_survives_a_restart(backend: kisum_tests::Backend) {
    let db = kisum_tests::TestDb::new(backend).await;
    let h = harness_on(&small_ai_world(3));
    let maya = h.user("maya", "encore");
    let ask = json!({"question": "q"});
    let first = h.app_on(Module::Ai, kisum_modules::ModuleDb::connect(&db.url).await.unwrap()).await;
    assert_eq!(post(&first, "/v1/copilot/ask", &maya, ask.clone()).await.body["used"], 1);
    assert_eq!(post(&first, "/v1/copilot/ask", &maya, ask.clone()).await.body["used"], 2);
    drop(first);
    // A new process on the same database: the month's count goes on from where it was.
    let restarted = h.app_on(Module::Ai, kisum_modules::ModuleDb::connect(&db.url).await.unwrap()).await;
    assert_eq!(post(&restarted, "/v1/copilot/ask", &maya, ask.clone()).await.body["used"], 3);
    expect_refused(
        &post(&restarted, "/v1/copilot/ask", &maya, ask.clone()).await,
        "LIMIT_EXCEEDED",
        "ai.monthly_requests",
    );
    // Each company and each month counts on its own.
    assert_eq!(post(&restarted, "/v1/copilot/ask", &h.user("sam", "bluenote"), ask.clone()).await.body["used"], 1);
    h.clock.set(Timestamp::parse("2026-04-01T00:00:00Z").unwrap());
    assert_eq!(post(&restarted, "/v1/copilot/ask", &h.user("maya", "encore"), ask).await.body["used"], 1);
}

/// Issue 20: two replicas of the ai module on one database, 24 concurrent questions across both against
/// a limit of 5: exactly 5 are answered (counted 1 to 5, once each) and 19 refused — the count is one
/// conditional update, never a read and then a write.
async fn the_quota_is_exact_across_replicas(backend: kisum_tests::Backend) {
    let db = kisum_tests::TestDb::new(backend).await;
    let h = harness_on(&small_ai_world(5));
    let maya = h.user("maya", "encore");
    let replicas = [
        h.app_on(Module::Ai, kisum_modules::ModuleDb::connect(&db.url).await.unwrap()).await,
        h.app_on(Module::Ai, kisum_modules::ModuleDb::connect(&db.url).await.unwrap()).await,
    ];
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let (app, maya) = (replicas[i % 2].clone(), maya.clone());
            tokio::spawn(async move { post(&app, "/v1/copilot/ask", &maya, json!({"question": "q"})).await })
        })
        .collect();
    let mut used = Vec::new();
    let mut refused = 0;
    for task in tasks {
        let answer = task.await.unwrap();
        if answer.status == StatusCode::OK {
            used.push(answer.body["used"].as_u64().unwrap());
        } else {
            expect_refused(&answer, "LIMIT_EXCEEDED", "ai.monthly_requests");
            refused += 1;
        }
    }
    used.sort_unstable();
    assert_eq!(used, [1, 2, 3, 4, 5], "exactly the limit, each count once");
    assert_eq!(refused, 19);
}

/// The modules of `Module::ALL` but ai, on `db` (a process of each).
async fn record_modules_on(h: &Harness, url: &str) -> Vec<Router> {
    let db = kisum_modules::ModuleDb::connect(url).await.unwrap();
    let mut apps = Vec::new();
    for module in [Module::Finance, Module::Artist, Module::Venue, Module::Promoters, Module::Touring] {
        apps.push(h.app_on(module, db.clone()).await);
    }
    apps
}

/// Issue 20: every module's records live in the database: what users created, changed and deleted is
/// still so after a restart, the seed is not made again, and each company sees its own.
async fn module_records_survive_a_restart(backend: kisum_tests::Backend) {
    let db = kisum_tests::TestDb::new(backend).await;
    let h = harness();
    let maya = h.user("maya", "encore");
    let apps = record_modules_on(&h, &db.url).await;
    let [finance, artist, venue, promoters, touring] = &apps[..] else { unreachable!() };
    let invoice = post(finance, "/v1/invoices", &maya, json!({"currency": "USD", "amount": 900})).await;
    assert_eq!(invoice.body["id"], "encore-2");
    post(finance, "/v1/invoices/encore-2/approve", &maya, json!({})).await.expect(StatusCode::OK);
    let booking = post(artist, "/v1/artists/encore-1/bookings", &maya, json!({"date": "2026-09-12"})).await;
    booking.expect(StatusCode::CREATED);
    assert_eq!(booking.body["id"], "encore-2");
    post(venue, "/v1/venues/encore-1/contracts/encore-1/sign", &maya, json!({})).await.expect(StatusCode::OK);
    let event =
        post(promoters, "/v1/events", &maya, json!({"name": "Gala", "starts_at": "2026-07-04T20:00:00Z"})).await;
    assert_eq!(event.body["id"], "encore-2");
    Call::new(Method::DELETE, "/v1/events/encore-1")
        .bearer(Some(&maya))
        .send(promoters)
        .await
        .expect(StatusCode::NO_CONTENT);
    post(touring, "/v1/tours", &maya, json!({"name": "Autumn"})).await.expect(StatusCode::CREATED);
    drop(apps);

    // A new process of every module on the same database.
    let apps = record_modules_on(&h, &db.url).await;
    let [finance, artist, venue, promoters, touring] = &apps[..] else { unreachable!() };
    let invoices = get(finance, "/v1/invoices", &maya).await;
    assert_eq!(ids(&invoices.body["invoices"]), ["encore-1", "encore-2"]);
    assert_eq!(invoices.body["invoices"][1]["status"], "approved");
    assert_eq!(invoices.body["invoices"][1]["approved_by"], "user:maya");
    assert_eq!(invoices.body["invoices"][1]["currency"], "USD");
    let band = get(artist, "/v1/artists/encore-1?include=bookings", &maya).await;
    assert_eq!(ids(&band.body["bookings"]), ["encore-1", "encore-2"]);
    assert_eq!(band.body["bookings"][1]["date"], "2026-09-12");
    let venues = get(venue, "/v1/venues", &maya).await;
    assert_eq!(venues.body["venues"][0]["contracts"][0]["status"], "signed");
    assert_eq!(venues.body["venues"][0]["capacity"], 1800);
    // The deleted seed event is not made again; numbering goes on past what was given.
    assert_eq!(ids(&get(promoters, "/v1/events", &maya).await.body["events"]), ["encore-2"]);
    let next = post(promoters, "/v1/events", &maya, json!({"name": "Late", "starts_at": "2026-08-01T20:00:00Z"})).await;
    assert_eq!(next.body["id"], "encore-3");
    assert_eq!(ids(&get(touring, "/v1/tours", &maya).await.body["tours"]), ["encore-1", "encore-2"]);
    // Every query is the caller's company's: bluenote sees its own seed, and none of encore's.
    let sam = h.user("sam", "bluenote");
    assert_eq!(ids(&get(venue, "/v1/venues", &sam).await.body["venues"]), ["bluenote-1"]);
    expect_hidden(&post(venue, "/v1/venues/encore-1/contracts/encore-1/sign", &sam, json!({})).await);
    assert_eq!(ids(&get(touring, "/v1/tours", &sam).await.body["tours"]), ["bluenote-1"]);
}

/// Issue 20: list routes answer a page at a time, oldest first, with a cursor to the next; a cursor or
/// limit the module did not give is `422`.
async fn module_lists_come_in_pages(backend: kisum_tests::Backend) {
    let db = kisum_tests::TestDb::new(backend).await;
    let h = harness();
    let maya = h.user("maya", "encore");
    let touring = h.app_on(Module::Touring, kisum_modules::ModuleDb::connect(&db.url).await.unwrap()).await;
    for n in 2..=5 {
        post(&touring, "/v1/tours", &maya, json!({"name": format!("Tour {n}")})).await.expect(StatusCode::CREATED);
    }
    let mut seen = Vec::new();
    let mut path = "/v1/tours?limit=2".to_owned();
    loop {
        let page = get(&touring, &path, &maya).await;
        page.expect(StatusCode::OK);
        assert!(page.body["tours"].as_array().unwrap().len() <= 2);
        seen.extend(ids(&page.body["tours"]).into_iter().map(str::to_owned));
        match page.body["next"].as_str() {
            Some(cursor) => path = format!("/v1/tours?limit=2&after={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, ["encore-1", "encore-2", "encore-3", "encore-4", "encore-5"]);
    // The default page holds them all; no `next` on the last page.
    let all = get(&touring, "/v1/tours", &maya).await;
    assert_eq!(all.body["tours"].as_array().unwrap().len(), 5);
    assert!(all.body.get("next").is_none());
    for bad in ["/v1/tours?limit=0", "/v1/tours?limit=201", "/v1/tours?after=abc", "/v1/tours?page=2"] {
        get(&touring, bad, &maya).await.expect_code(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED");
    }
}

/// Issue 20: two finance replicas on one database, the same company creating invoices in 8 currencies
/// at once against `finance.currencies` = 5: exactly 5 distinct non-base currencies end up in use — each
/// create checks and inserts under the company's lock, never on a stale read.
async fn currency_limits_hold_across_replicas(backend: kisum_tests::Backend) {
    let db = kisum_tests::TestDb::new(backend).await;
    let h = harness();
    let maya = h.user("maya", "encore");
    let replicas = [
        h.app_on(Module::Finance, kisum_modules::ModuleDb::connect(&db.url).await.unwrap()).await,
        h.app_on(Module::Finance, kisum_modules::ModuleDb::connect(&db.url).await.unwrap()).await,
    ];
    let currencies = ["USD", "GBP", "CHF", "JPY", "SEK", "NOK", "DKK", "PLN"];
    let tasks: Vec<_> = currencies
        .iter()
        .enumerate()
        .map(|(i, currency)| {
            let (app, maya) = (replicas[i % 2].clone(), maya.clone());
            let body = json!({"currency": currency, "amount": 100});
            tokio::spawn(async move { post(&app, "/v1/invoices", &maya, body).await })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        let answer = task.await.unwrap();
        if answer.status == StatusCode::CREATED {
            created += 1;
        } else {
            expect_refused(&answer, "LIMIT_EXCEEDED", "finance.currencies");
        }
    }
    assert_eq!(created, 5);
    let list = get(&replicas[0], "/v1/invoices", &maya).await;
    let in_use: std::collections::BTreeSet<&str> =
        list.body["invoices"].as_array().unwrap().iter().filter_map(|i| i["currency"].as_str()).collect();
    assert_eq!(in_use.len(), 6, "EUR and five others: {in_use:?}");
}

/// Serves `app` on a free loopback port until the test ends: its base URL.
async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

impl Harness {
    /// The ai module planning with `planner`, its copilot reaching the other five modules (in memory),
    /// each served on a loopback port of its own; its usage and conversations in `db` when given.
    async fn copilot(&self, planner: PlannerConfig, db: Option<ModuleDb>) -> Router {
        let mut options = Options { db, ..Options::default() };
        options.copilot.planner = planner;
        options.copilot.modules.clear();
        for module in [Module::Finance, Module::Artist, Module::Venue, Module::Promoters, Module::Touring] {
            options.copilot.modules.insert(module, serve(self.app(module).await).await);
        }
        self.app_with(Module::Ai, &options).await
    }

    /// maya's membership in encore from now on denies `pattern` (a change of the directory, as Auth
    /// would write it).
    fn restrict_maya(&self, pattern: &str) {
        use kisum_client::access::{Actor, Change};
        let membership = serde_json::from_value(json!({
            "user": "maya", "company": "encore", "status": "active", "roles": ["owner"], "restrictions": [pattern]
        }))
        .unwrap();
        self.directory.apply(&Actor::Platform, self.clock_now(), Change::PutMembership(membership)).unwrap();
    }
}

/// The tool calls of a turn's messages, with their outcomes: `(tool, outcome)`.
fn tool_outcomes(messages: &Value) -> Vec<(String, String)> {
    messages
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| (m["tool"].as_str().unwrap().to_owned(), m["result"]["outcome"].as_str().unwrap().to_owned()))
        .collect()
}

/// Issue 20: a conversation with the copilot (rules planner): it looks things up through the modules'
/// public APIs with the caller's token, so its venue answer changes when the caller loses
/// `venue:venue:read` (the lookup is refused and the answer says why); simulations are reproducible;
/// every turn is counted and kept, and a conversation is its owner's only.
#[tokio::test]
async fn the_copilot_converses_with_the_callers_access() {
    let h = harness();
    let app = h.copilot(PlannerConfig::Rules, None).await;
    let maya = h.user("maya", "encore");
    let session = post(&app, "/v1/copilot/sessions", &maya, json!({"title": "Planning"})).await;
    session.expect(StatusCode::CREATED);
    assert_eq!(session.body["title"], "Planning");
    assert_eq!(session.body["owner"], "user:maya");
    let id = session.body["id"].as_str().unwrap().to_owned();
    let say = |question: &str| {
        let (app, maya, path) = (app.clone(), maya.clone(), format!("/v1/copilot/sessions/{id}/messages"));
        let body = json!({ "question": question });
        async move { post(&app, &path, &maya, body).await }
    };

    let venues = say("Which venues are free on 2026-06-01 and 2026-06-02?").await;
    venues.expect(StatusCode::CREATED);
    let answer = venues.body["answer"].as_str().unwrap();
    assert!(answer.contains("encore hall (encore-1): capacity 1800"), "{answer}");
    assert!(answer.contains("not available on 2026-06-01"), "{answer}");
    assert_eq!(tool_outcomes(&venues.body["messages"]), [("find_venues".to_owned(), "ok".to_owned())]);
    assert_eq!(venues.body["used"], 1);

    let artists = say("Who are our artists, with their bookings?").await;
    let answer = artists.body["answer"].as_str().unwrap();
    assert!(answer.contains("The encore house band (encore-1): booked on 2026-06-01"), "{answer}");
    let books = say("How do our invoices, events and tours look?").await;
    let answer = books.body["answer"].as_str().unwrap();
    assert!(answer.contains("1 invoice(s), 1 of them draft; totals: EUR 1250.00"), "{answer}");
    assert!(answer.contains("encore opening night"), "{answer}");
    assert!(answer.contains("encore spring tour"), "{answer}");

    // A simulation takes the capacity of the first venue; the same question gives the same figures.
    let simulated = say("Simulate a show at 45 EUR").await;
    let answer = simulated.body["answer"].as_str().unwrap().to_owned();
    assert!(answer.contains("capacity of your venue encore hall (encore-1): 1800"), "{answer}");
    assert_eq!(
        tool_outcomes(&simulated.body["messages"]),
        [("find_venues".to_owned(), "ok".to_owned()), ("simulate_event".to_owned(), "ok".to_owned())]
    );
    let again = say("Simulate a show at 45 EUR").await;
    assert_eq!(again.body["answer"], answer.as_str());
    let figures = |said: &Answer| said.body["messages"][4]["result"]["data"]["simulation"].clone();
    assert_eq!(figures(&simulated), figures(&again));
    assert!(figures(&simulated)["tickets"]["p50"].as_i64().unwrap() <= 1800);

    // Numbers as people write them: a decimal comma, thousands grouped; the capacity given needs no venue.
    let written = say("Simulate a show at 45,50 EUR with 1.200 tickets").await;
    let calls: Vec<&Value> = written.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| m["tool_calls"].as_array().into_iter().flatten())
        .collect();
    assert_eq!(calls.len(), 1, "{:#}", written.body);
    assert_eq!(calls[0]["name"], "simulate_event");
    assert_eq!(calls[0]["arguments"]["capacity"], 1200);
    assert_eq!(calls[0]["arguments"]["tiers"][0]["price"], 4550);
    // Words that only contain an intent's word ask for nothing.
    let nothing = say("However, should we prevent that?").await;
    assert!(tool_outcomes(&nothing.body["messages"]).is_empty(), "{:#}", nothing.body);
    assert!(nothing.body["answer"].as_str().unwrap().starts_with("I can look up"));

    // maya loses `venue:venue:read`: the venue module refuses the lookup, and the answer says so.
    h.restrict_maya("venue:venue:read");
    let refused = say("Which venues are free on 2026-06-02?").await;
    refused.expect(StatusCode::CREATED);
    let answer = refused.body["answer"].as_str().unwrap();
    assert!(
        answer.contains("I could not look up your venues: your access does not include `venue:venue:read`"),
        "{answer}"
    );
    assert!(!answer.contains("encore hall"), "{answer}");
    assert_eq!(tool_outcomes(&refused.body["messages"]), [("find_venues".to_owned(), "refused".to_owned())]);
    assert_eq!(refused.body["used"], 8);

    // The conversation is kept, in order, every turn whole; its owner's only.
    let kept = get(&app, &format!("/v1/copilot/sessions/{id}"), &maya).await;
    kept.expect(StatusCode::OK);
    let messages = kept.body["messages"].as_array().unwrap();
    let questions: Vec<&str> =
        messages.iter().filter(|m| m["role"] == "user").map(|m| m["content"].as_str().unwrap()).collect();
    assert_eq!(questions.len(), 8);
    assert_eq!(messages.last().unwrap()["content"], refused.body["answer"]);
    let mine = get(&app, "/v1/copilot/sessions", &maya).await;
    assert_eq!(ids(&mine.body["sessions"]), [id.as_str()]);
    assert_eq!(mine.body["sessions"][0]["messages"], messages.len());
    // Another principal of the company (maya's agent) and maya in another company see nothing of it.
    let hidden = |token: String| {
        let (app, path) = (app.clone(), format!("/v1/copilot/sessions/{id}"));
        async move { get(&app, &path, &token).await }
    };
    expect_hidden(&hidden(h.agent("copilot", "maya", "encore")).await);
    expect_hidden(&hidden(h.user("maya", "bluenote")).await);
    // Bad input is refused before anything is counted.
    for body in [json!({"question": ""}), json!({"question": "x", "extra": 1}), json!({})] {
        post(&app, &format!("/v1/copilot/sessions/{id}/messages"), &maya, body)
            .await
            .expect_code(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED");
    }
    expect_hidden(&post(&app, "/v1/copilot/sessions/encore-99/messages", &maya, json!({"question": "q"})).await);
    let counted = post(&app, "/v1/copilot/ask", &maya, json!({"question": "Our tours?"})).await;
    assert_eq!(counted.body["used"], 9);
}

/// Issue 20: a conversation kept in the database is still there, whole, after a restart, and goes on.
async fn conversations_survive_a_restart(backend: kisum_tests::Backend) {
    let db = kisum_tests::TestDb::new(backend).await;
    let h = harness();
    let maya = h.user("maya", "encore");
    let first = h.copilot(PlannerConfig::Rules, Some(ModuleDb::connect(&db.url).await.unwrap())).await;
    let id = post(&first, "/v1/copilot/sessions", &maya, json!({})).await.body["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/copilot/sessions/{id}/messages");
    let said = post(&first, &path, &maya, json!({"question": "Our venues?"})).await;
    said.expect(StatusCode::CREATED);
    let before = get(&first, &format!("/v1/copilot/sessions/{id}"), &maya).await.body;
    drop(first);

    let restarted = h.copilot(PlannerConfig::Rules, Some(ModuleDb::connect(&db.url).await.unwrap())).await;
    let after = get(&restarted, &format!("/v1/copilot/sessions/{id}"), &maya).await;
    after.expect(StatusCode::OK);
    assert_eq!(after.body, before);
    assert_eq!(after.body["title"], "New conversation");
    let next = post(&restarted, &path, &maya, json!({"question": "And our tours?"})).await;
    assert_eq!(next.body["used"], 2, "the month's count went on too");
    let messages = get(&restarted, &format!("/v1/copilot/sessions/{id}"), &maya).await.body["messages"].clone();
    let questions: Vec<&str> = messages
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "user")
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(questions, ["Our venues?", "And our tours?"]);
    assert_eq!(ids(&get(&restarted, "/v1/copilot/sessions", &maya).await.body["sessions"]), [id.as_str()]);
}

/// A request the stub saw: its `Authorization` header and body.
type Seen = (Option<String>, Value);

/// A chat-completions stub: answers each request with the next of `answers` (status, body), and keeps
/// every request (its authorization header and body).
#[derive(Clone, Default)]
struct Provider {
    answers: Arc<std::sync::Mutex<std::collections::VecDeque<(StatusCode, Value)>>>,
    seen: Arc<std::sync::Mutex<Vec<Seen>>>,
}

impl Provider {
    async fn serve(&self) -> String {
        let provider = self.clone();
        let app = Router::new().route(
            "/v1/chat/completions",
            axum::routing::post(move |headers: axum::http::HeaderMap, axum::Json(body): axum::Json<Value>| {
                let provider = provider.clone();
                async move {
                    let auth = headers.get("authorization").map(|v| v.to_str().unwrap().to_owned());
                    provider.seen.lock().unwrap().push((auth, body));
                    let (status, answer) = provider.answers.lock().unwrap().pop_front().unwrap();
                    (status, axum::Json(answer))
                }
            }),
        );
        format!("{}/v1", serve(app).await)
    }

    fn answer(&self, status: StatusCode, body: Value) {
        self.answers.lock().unwrap().push_back((status, body));
    }
}

/// Issue 20: the OpenAI-compatible planner against a local stub: the request's shape (model, system
/// prompt, the conversation, the tools as functions, the key), a tool call run with the caller's access
/// and its result sent back under its id, the provider's text as the answer; the caller's token never
/// reaches the provider; a provider error is `503 UPSTREAM_UNAVAILABLE`.
#[tokio::test]
async fn the_openai_compatible_planner_calls_tools_through_the_provider() {
    let h = harness();
    let provider = Provider::default();
    let planner = PlannerConfig::OpenAi {
        base_url: provider.serve().await,
        model: "kisum-test-model".into(),
        api_key: Some(kisum_client::Secret::new("sk-test")),
    };
    let app = h.copilot(planner, None).await;
    let maya = h.user("maya", "encore");
    provider.answer(
        StatusCode::OK,
        json!({"choices": [{"message": {"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_abc", "type": "function", "function": {"name": "find_venues", "arguments": "{\"date\":\"2026-06-02\"}"}}
        ]}}]}),
    );
    provider.answer(
        StatusCode::OK,
        json!({"choices": [{"message": {"role": "assistant", "content": "encore hall is free on 2026-06-02."}}]}),
    );
    let asked = post(&app, "/v1/copilot/ask", &maya, json!({"question": "Is our hall free on 2026-06-02?"})).await;
    asked.expect(StatusCode::OK);
    assert_eq!(asked.body["answer"], "encore hall is free on 2026-06-02.");
    assert_eq!(tool_outcomes(&asked.body["messages"]), [("find_venues".to_owned(), "ok".to_owned())]);

    let seen = provider.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    let (auth, first) = &seen[0];
    assert_eq!(auth.as_deref(), Some("Bearer sk-test"));
    assert_eq!(first["model"], "kisum-test-model");
    assert_eq!(first["tool_choice"], "auto");
    assert_eq!(first["messages"][0]["role"], "system");
    assert_eq!(first["messages"][1], json!({"role": "user", "content": "Is our hall free on 2026-06-02?"}));
    let functions: Vec<&str> =
        first["tools"].as_array().unwrap().iter().map(|t| t["function"]["name"].as_str().unwrap()).collect();
    assert_eq!(
        functions,
        ["find_venues", "find_artists", "list_invoices", "list_events", "list_tours", "simulate_event"]
    );
    assert_eq!(first["tools"][0]["type"], "function");
    assert_eq!(first["tools"][0]["function"]["parameters"]["type"], "object");
    let (_, second) = &seen[1];
    let sent = second["messages"].as_array().unwrap();
    assert_eq!(sent[2]["role"], "assistant");
    assert_eq!(sent[2]["tool_calls"][0]["id"], "call_abc");
    assert_eq!(sent[2]["tool_calls"][0]["function"]["name"], "find_venues");
    assert_eq!(sent[3]["role"], "tool");
    assert_eq!(sent[3]["tool_call_id"], "call_abc");
    let result: Value = serde_json::from_str(sent[3]["content"].as_str().unwrap()).unwrap();
    assert_eq!(result["outcome"], "ok");
    assert_eq!(result["data"]["venues"][0]["available_on"], json!({"date": "2026-06-02", "available": true}));
    // The user's token went to the venue module only, never to the provider.
    for (auth, body) in &seen {
        assert!(!auth.as_deref().unwrap_or_default().contains(&maya));
        assert!(!body.to_string().contains(&maya));
    }

    // A tool the caller may not use: refused by the module, and the provider is told so.
    h.restrict_maya("venue:*");
    provider.answer(
        StatusCode::OK,
        json!({"choices": [{"message": {"tool_calls": [
            {"id": "call_2", "type": "function", "function": {"name": "find_venues", "arguments": "{}"}}
        ]}}]}),
    );
    provider.answer(StatusCode::OK, json!({"choices": [{"message": {"content": "You may not see venues."}}]}));
    let refused = post(&app, "/v1/copilot/ask", &maya, json!({"question": "Venues?"})).await;
    assert_eq!(tool_outcomes(&refused.body["messages"]), [("find_venues".to_owned(), "refused".to_owned())]);
    let told = provider.seen.lock().unwrap()[3].1["messages"].clone();
    let told: Value = serde_json::from_str(told[3]["content"].as_str().unwrap()).unwrap();
    assert_eq!(told["problem"]["required"], "venue:venue:read");

    // The provider fails: 503, retryable; a malformed answer too.
    provider.answer(StatusCode::INTERNAL_SERVER_ERROR, json!({"error": {"message": "overloaded"}}));
    let failed = post(&app, "/v1/copilot/ask", &maya, json!({"question": "Tours?"})).await;
    failed.expect_code(StatusCode::SERVICE_UNAVAILABLE, "UPSTREAM_UNAVAILABLE");
    assert_eq!(failed.body["retryable"], true);
    provider.answer(StatusCode::OK, json!({"choices": []}));
    post(&app, "/v1/copilot/ask", &maya, json!({"question": "Tours?"}))
        .await
        .expect_code(StatusCode::SERVICE_UNAVAILABLE, "UPSTREAM_UNAVAILABLE");
}
