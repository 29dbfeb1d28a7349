//! Core and the Admin API through the router, on SQLite and on PostgreSQL: every route, every kind of
//! caller (platform service, staff user, company owner, outsider), the subscription lifecycle with its
//! refusals, cross-tenant reads, and a write seen by another replica through the change log.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use kisum_access::Access;
use kisum_core::CoreState;
use kisum_entitlements::{ManualClock, Timestamp};
use kisum_server::Tokens;
use kisum_store::{Engine, connect};
use kisum_tests::{Backend, TestDb, demo_world};
use kisum_token::{Algorithm, Audience, Claims, Jwks, PrivateKey, Validation, Verifier, sign};
use serde_json::{Value, json};
use tower::ServiceExt;

const ISSUER: &str = "http://127.0.0.1:7400";

fn now() -> Timestamp {
    Timestamp::parse("2026-03-15T12:00:00Z").unwrap()
}

struct Harness {
    app: Router,
    state: Arc<CoreState>,
    key: PrivateKey,
    engine: Arc<Engine>,
    db: TestDb,
}

async fn harness(backend: Backend) -> Harness {
    let db = TestDb::new(backend).await;
    let url = db.url.clone();
    harness_at(db, &url).await
}

/// A harness on `db`, reaching it at `url` (through a proxy, say).
async fn harness_at(db: TestDb, url: &str) -> Harness {
    let engine = Arc::new(Engine::open(connect(url).await.unwrap(), Some(&demo_world())).await.unwrap());
    let key = PrivateKey::generate(Algorithm::EdDSA, "k1").unwrap();
    let verifier = Verifier::new(Jwks::from_keys([&key]).unwrap(), Validation::new(ISSUER, "kisum")).unwrap();
    let tokens = Tokens::new(verifier, Arc::new(ManualClock::new(now())));
    let state = Arc::new(CoreState { engine: engine.clone(), tokens, platform_company: "kisum".parse().unwrap() });
    Harness { app: kisum_core::app(state.clone()), state, key, engine, db }
}

impl Harness {
    fn token(&self, claims: Claims) -> String {
        sign(&self.key, &claims).unwrap()
    }

    fn claims(&self, sub: &str) -> Claims {
        let iat = now().unix_seconds();
        Claims {
            iss: ISSUER.into(),
            sub: sub.into(),
            aud: Audience::One("kisum".into()),
            exp: iat + 600,
            iat,
            jti: format!("j-{sub}"),
            nbf: None,
            cid: None,
            sid: None,
            ver: None,
            act: None,
            client_id: None,
            scope: None,
        }
    }

    /// A user token for `user` in `company`.
    fn user(&self, user: &str, company: &str) -> String {
        let claims = Claims { cid: Some(company.into()), sid: Some("s1".into()), ver: Some(0), ..self.claims(user) };
        self.token(claims)
    }

    /// A service token with `scope`.
    fn service(&self, client: &str, scope: &str) -> String {
        let claims = Claims {
            client_id: Some(client.into()),
            scope: Some(scope.into()),
            ..self.claims(&format!("service:{client}"))
        };
        self.token(claims)
    }

    async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Answer {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = match body {
            Some(body) => request.header("content-type", "application/json").body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        }
        .unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() };
        Answer { status, headers, body }
    }
}

#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    fn version(&self) -> u64 {
        self.headers["kisum-version"].to_str().unwrap().parse().unwrap()
    }

    #[track_caller]
    fn expect(&self, status: StatusCode) -> &Self {
        assert_eq!(self.status, status, "{:#}", self.body);
        if !status.is_success() {
            assert_eq!(self.headers["content-type"], "application/problem+json", "{:#}", self.body);
            assert_eq!(self.body["status"], status.as_u16(), "{:#}", self.body);
            assert_eq!(
                self.body["request_id"].as_str(),
                self.headers["x-request-id"].to_str().ok(),
                "problem bodies carry the request id"
            );
        }
        self
    }
}

kisum_tests::on_both_backends!(
    revoked_sessions_are_refused,
    catalog_and_entitlements_by_caller,
    admin_routes_by_caller,
    companies_create_list_read_remove,
    users_and_passwords,
    the_subscription_lifecycle,
    overrides_and_plans,
    the_audit_log,
    bad_input_gets_clear_errors,
    writes_reach_another_replica_through_the_log,
    support_sessions,
    a_password_change_ends_every_session,
    every_read_honours_kisum_at_least,
    service_clients_with_least_privilege,
);

async fn support_sessions(backend: Backend) {
    let h = harness(backend).await;
    let ops = h.user("ops", "kisum");
    let open = json!({"company": "bluenote", "reason": "ticket 42: contracts missing", "minutes": 30});
    // Services and support-role staff cannot open one; `ops` can.
    let bot = h.service("ops-bot", "admin:*");
    h.call(Method::POST, "/admin/v1/support-sessions", Some(&bot), Some(open.clone()))
        .await
        .expect(StatusCode::FORBIDDEN);
    h.call(Method::POST, "/admin/v1/support-sessions", Some(&h.user("una", "kisum")), Some(open.clone()))
        .await
        .expect(StatusCode::FORBIDDEN);
    let too_long = json!({"company": "bluenote", "reason": "x", "minutes": 241});
    h.call(Method::POST, "/admin/v1/support-sessions", Some(&ops), Some(too_long))
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    let nowhere = json!({"company": "ghost", "reason": "x", "minutes": 5});
    h.call(Method::POST, "/admin/v1/support-sessions", Some(&ops), Some(nowhere)).await.expect(StatusCode::NOT_FOUND);
    let opened = h.call(Method::POST, "/admin/v1/support-sessions", Some(&ops), Some(open)).await;
    opened.expect(StatusCode::CREATED);
    let id = opened.body["session"]["id"].as_str().unwrap().to_owned();
    assert_eq!(opened.body["session"]["user"], "ops");
    assert_eq!(opened.body["session"]["expires_at"], "2026-03-15T12:30:00Z");
    // `ops` now acts inside bluenote, as its owner, until the session ends.
    let ops_user = kisum_access::Principal::parse("user:ops").unwrap();
    let directory = h.engine.directory();
    let sign = directory.permission("venue:venue:read").unwrap();
    let bluenote = "bluenote".parse().unwrap();
    assert!(directory.check(&ops_user, &bluenote, sign, None, now()).is_allowed());
    // The owners see it in the company's record (and audit log).
    let company = h.call(Method::GET, "/admin/v1/companies/bluenote", Some(&bot), None).await;
    assert_eq!(company.body["company"]["support_sessions"][0]["reason"], "ticket 42: contracts missing");
    let audit = h.call(Method::GET, "/admin/v1/audit?company=bluenote", Some(&bot), None).await;
    assert_eq!(audit.body["records"][0]["kind"], "open_support_session");
    assert_eq!(audit.body["records"][0]["actor"], json!({"staff": "ops"}));
    h.call(Method::DELETE, &format!("/admin/v1/support-sessions/{id}"), Some(&bot), None)
        .await
        .expect(StatusCode::NO_CONTENT);
    assert!(!h.engine.directory().check(&ops_user, &bluenote, sign, None, now()).is_allowed());
    h.call(Method::DELETE, "/admin/v1/support-sessions/ss-nope", Some(&bot), None).await.expect(StatusCode::NOT_FOUND);
}

async fn catalog_and_entitlements_by_caller(backend: Backend) {
    let h = harness(backend).await;
    let maya = h.user("maya", "encore");
    let catalog = h.call(Method::GET, "/v1/catalog", Some(&maya), None).await;
    catalog.expect(StatusCode::OK);
    assert!(catalog.body["packages"].as_array().unwrap().iter().any(|p| p["id"] == "pro" && p["version"] == 2));
    h.call(Method::GET, "/v1/catalog", None, None).await.expect(StatusCode::UNAUTHORIZED);

    let path = "/v1/companies/encore/entitlements?at=2026-03-15T00:00:00Z";
    let mine = h.call(Method::GET, path, Some(&maya), None).await;
    mine.expect(StatusCode::OK);
    assert_eq!(mine.body["modules"], json!(["ai", "artist", "core", "finance", "promoters", "touring", "venue"]));
    assert_eq!(mine.body["limits"]["core.seats"], 25);
    assert!(mine.body["provenance"]["module:finance"].is_array(), "with provenance, like `kisum entitlements`");
    // The same as the CLI's shape, by construction: the engine's summary.
    let at = Timestamp::parse("2026-03-15T00:00:00Z").unwrap();
    let direct = h.engine.directory().entitlements(&"encore".parse().unwrap(), at).unwrap();
    assert_eq!(mine.body, serde_json::to_value(direct).unwrap());

    // A service with the scope reads any company; others learn nothing (404, like a company that does
    // not exist).
    let billing = h.service("billing", "core:entitlements:read");
    h.call(Method::GET, "/v1/companies/bluenote/entitlements", Some(&billing), None).await.expect(StatusCode::OK);
    let nosy = h.service("nosy", "finance:*");
    let outsider = h.call(Method::GET, "/v1/companies/bluenote/entitlements", Some(&nosy), None).await;
    outsider.expect(StatusCode::NOT_FOUND);
    let ghost = h.call(Method::GET, "/v1/companies/ghost/entitlements", Some(&billing), None).await;
    ghost.expect(StatusCode::NOT_FOUND);
    assert_eq!(
        outsider.body["detail"].as_str().map(|d| d.replace("bluenote", "X")),
        ghost.body["detail"].as_str().map(|d| d.replace("ghost", "X"))
    );
    // A member of one company does not read another's, even with a token naming it.
    let cross = h.call(Method::GET, "/v1/companies/bluenote/entitlements", Some(&maya), None).await;
    cross.expect(StatusCode::NOT_FOUND);
    let sam_in_encore = h.user("sam", "encore");
    h.call(Method::GET, "/v1/companies/encore/entitlements", Some(&sam_in_encore), None)
        .await
        .expect(StatusCode::NOT_FOUND);
    // A suspended member (kai) reads nothing.
    let kai = h.user("kai", "encore");
    h.call(Method::GET, "/v1/companies/encore/entitlements", Some(&kai), None).await.expect(StatusCode::NOT_FOUND);
    // The token is checked before the query: no token is 401 whatever the query holds.
    let anonymous = h.call(Method::GET, "/v1/companies/encore/entitlements?bogus=1&at=never", None, None).await;
    anonymous.expect(StatusCode::UNAUTHORIZED);
    // Time: a malformed instant is the caller's mistake.
    let bad = h.call(Method::GET, "/v1/companies/encore/entitlements?at=yesterday", Some(&maya), None).await;
    bad.expect(StatusCode::UNPROCESSABLE_ENTITY);
}

async fn admin_routes_by_caller(backend: Backend) {
    let h = harness(backend).await;
    let path = "/admin/v1/companies";
    // No token: 401 with the Bearer challenge.
    let none = h.call(Method::GET, path, None, None).await;
    none.expect(StatusCode::UNAUTHORIZED);
    assert_eq!(none.headers["www-authenticate"], "Bearer");
    assert_eq!(none.code(), "UNAUTHENTICATED");
    // A forged token: 401 TOKEN_INVALID.
    let other = PrivateKey::generate(Algorithm::EdDSA, "k1").unwrap();
    let user_claims = Claims { cid: Some("kisum".into()), sid: Some("s1".into()), ver: Some(0), ..h.claims("ops") };
    let forged = sign(&other, &user_claims).unwrap();
    let refused = h.call(Method::GET, path, Some(&forged), None).await;
    refused.expect(StatusCode::UNAUTHORIZED);
    assert_eq!(refused.code(), "TOKEN_INVALID");
    // An expired token: 401 TOKEN_EXPIRED.
    let old = h.token(Claims { exp: now().unix_seconds() - 120, iat: now().unix_seconds() - 700, ..user_claims });
    assert_eq!(h.call(Method::GET, path, Some(&old), None).await.code(), "TOKEN_EXPIRED");
    // A company owner is not platform staff.
    let maya = h.user("maya", "encore");
    let owner = h.call(Method::GET, path, Some(&maya), None).await;
    owner.expect(StatusCode::FORBIDDEN);
    assert_eq!(owner.body["required"], "admin:company:read");
    // A service without the scope, and one with it.
    h.call(Method::GET, path, Some(&h.service("crm", "core:*")), None).await.expect(StatusCode::FORBIDDEN);
    h.call(Method::GET, path, Some(&h.service("ops-bot", "admin:company:read")), None).await.expect(StatusCode::OK);
    // Staff: `ops` owns the platform company (everything), `una` has the support role (reads only).
    let ops = h.user("ops", "kisum");
    let una = h.user("una", "kisum");
    h.call(Method::GET, path, Some(&ops), None).await.expect(StatusCode::OK);
    h.call(Method::GET, path, Some(&una), None).await.expect(StatusCode::OK);
    let create = json!({"company": {"id": "newco"}, "owner": "leo"});
    h.call(Method::POST, path, Some(&una), Some(create.clone())).await.expect(StatusCode::FORBIDDEN);
    h.call(Method::POST, path, Some(&ops), Some(create)).await.expect(StatusCode::CREATED);
    // Staff power comes from the platform company only: `ops` in another company is nobody.
    let ops_elsewhere = h.user("ops", "encore");
    h.call(Method::GET, path, Some(&ops_elsewhere), None).await.expect(StatusCode::FORBIDDEN);
}

async fn companies_create_list_read_remove(backend: Backend) {
    let h = harness(backend).await;
    let admin = h.service("ops-bot", "admin:*");
    let created = h
        .call(Method::POST, "/admin/v1/companies", Some(&admin), Some(json!({"company": {"id": "gig", "subscriptions": [
            {"id": "g1", "plan": {"package": "starter", "version": 1}, "status": "active", "starts_at": "2026-01-01T00:00:00Z"}]},
            "owner": "leo"})))
        .await;
    created.expect(StatusCode::CREATED);
    assert_eq!(created.body["memberships"][0]["user"], "leo");
    assert_eq!(created.body["memberships"][0]["roles"], json!(["owner"]));
    assert_eq!(created.version(), h.engine.seq());
    // The new owner is allowed at once.
    let leo = kisum_access::Principal::parse("user:leo").unwrap();
    let directory = h.engine.directory();
    let read = directory.permission("core:company:read").unwrap();
    assert!(directory.check(&leo, &"gig".parse().unwrap(), read, None, now()).is_allowed());
    // Taken id, unknown owner.
    let again = json!({"company": {"id": "gig"}, "owner": "leo"});
    assert_eq!(h.call(Method::POST, "/admin/v1/companies", Some(&admin), Some(again)).await.code(), "CONFLICT");
    let nobody = json!({"company": {"id": "gig2"}, "owner": "nobody"});
    h.call(Method::POST, "/admin/v1/companies", Some(&admin), Some(nobody))
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);

    // Pages, sorted by id, with a cursor.
    let first = h.call(Method::GET, "/admin/v1/companies?limit=2", Some(&admin), None).await;
    first.expect(StatusCode::OK);
    let ids = |a: &Answer| {
        a.body["companies"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
    };
    assert_eq!(ids(&first), ["bluenote", "encore"]);
    assert_eq!(first.body["next_cursor"], "encore");
    let second = h.call(Method::GET, "/admin/v1/companies?limit=2&cursor=encore", Some(&admin), None).await;
    assert_eq!(ids(&second), ["gig", "kisum"]);
    assert_eq!(second.body["next_cursor"], Value::Null);
    h.call(Method::GET, "/admin/v1/companies?limit=0", Some(&admin), None)
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);

    let one = h.call(Method::GET, "/admin/v1/companies/encore", Some(&admin), None).await;
    one.expect(StatusCode::OK);
    assert!(one.body["delegations"].as_array().unwrap().len() >= 2);
    h.call(Method::GET, "/admin/v1/companies/nope", Some(&admin), None).await.expect(StatusCode::NOT_FOUND);

    let removed = h.call(Method::DELETE, "/admin/v1/companies/gig", Some(&admin), None).await;
    removed.expect(StatusCode::NO_CONTENT);
    assert!(removed.version() > created.version());
    h.call(Method::GET, "/admin/v1/companies/gig", Some(&admin), None).await.expect(StatusCode::NOT_FOUND);
    h.call(Method::DELETE, "/admin/v1/companies/gig", Some(&admin), None).await.expect(StatusCode::NOT_FOUND);
    // Its id is retired: a new tenant never inherits what was recorded under it (audit, module data).
    let reuse = json!({"company": {"id": "gig"}, "owner": "sam"});
    let refused = h.call(Method::POST, "/admin/v1/companies", Some(&admin), Some(reuse)).await;
    refused.expect(StatusCode::CONFLICT);
    assert!(refused.body["errors"][0]["message"].as_str().unwrap().contains("retired"), "{:#}", refused.body);
}

async fn users_and_passwords(backend: Backend) {
    let h = harness(backend).await;
    let admin = h.service("ops-bot", "admin:*");
    let created = h
        .call(Method::POST, "/admin/v1/users", Some(&admin), Some(json!({"id": "zoe", "password": "correct horse"})))
        .await;
    created.expect(StatusCode::CREATED);
    assert_eq!(created.body, json!({"id": "zoe"}));
    let zoe: kisum_access::UserId = "zoe".parse().unwrap();
    let credential = h.engine.store().credential(&zoe).await.unwrap().unwrap();
    assert!(credential.password_hash.starts_with("$argon2id$"), "stored as an argon2id hash");
    assert!(
        kisum_server::password::verify(
            kisum_server::password::Queue::Password,
            "correct horse".into(),
            credential.password_hash.clone()
        )
        .await
        .unwrap()
    );
    let taken = h
        .call(Method::POST, "/admin/v1/users", Some(&admin), Some(json!({"id": "zoe", "password": "another one"})))
        .await;
    taken.expect(StatusCode::CONFLICT);
    let short =
        h.call(Method::POST, "/admin/v1/users", Some(&admin), Some(json!({"id": "yan", "password": "short"}))).await;
    short.expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(short.body["errors"][0]["path"], "/password");
    let bad_id = h
        .call(
            Method::POST,
            "/admin/v1/users",
            Some(&admin),
            Some(json!({"id": "Not An Id", "password": "long enough"})),
        )
        .await;
    bad_id.expect(StatusCode::UNPROCESSABLE_ENTITY);

    h.call(Method::PUT, "/admin/v1/users/zoe/password", Some(&admin), Some(json!({"password": "battery staple"})))
        .await
        .expect(StatusCode::NO_CONTENT);
    let credential = h.engine.store().credential(&zoe).await.unwrap().unwrap();
    assert!(
        kisum_server::password::verify(
            kisum_server::password::Queue::Password,
            "battery staple".into(),
            credential.password_hash
        )
        .await
        .unwrap()
    );
    h.call(Method::PUT, "/admin/v1/users/ghost/password", Some(&admin), Some(json!({"password": "battery staple"})))
        .await
        .expect(StatusCode::NOT_FOUND);
    h.call(Method::POST, "/admin/v1/users/zoe/disable", Some(&admin), None).await.expect(StatusCode::NO_CONTENT);
    assert_eq!(h.engine.store().credential(&zoe).await.unwrap().unwrap().disabled_at, Some(now()));
    h.call(Method::POST, "/admin/v1/users/ghost/disable", Some(&admin), None).await.expect(StatusCode::NOT_FOUND);
    // No hash ever reaches the audit log.
    let audit = h.call(Method::GET, "/admin/v1/audit", Some(&admin), None).await;
    assert!(!audit.body.to_string().contains("argon2"));
}

async fn the_subscription_lifecycle(backend: Backend) {
    let h = harness(backend).await;
    let admin = h.service("billing", "admin:subscription:write admin:company:read");
    let subs = "/admin/v1/companies/bluenote/subscriptions";
    let add = json!({"id": "bn-ai", "plan": {"addon": "ai", "version": 1}, "status": "trialing",
                     "starts_at": "2026-03-01T00:00:00Z", "trial_ends_at": "2026-04-01T00:00:00Z"});
    let created = h.call(Method::POST, subs, Some(&admin), Some(add.clone())).await;
    created.expect(StatusCode::CREATED);
    assert_eq!(created.body["id"], "bn-ai");
    h.call(Method::POST, subs, Some(&admin), Some(add)).await.expect(StatusCode::CONFLICT);
    let overlap = json!({"id": "bn-ent", "plan": {"package": "enterprise", "version": 1}, "status": "active",
                         "starts_at": "2026-03-10T00:00:00Z"});
    h.call(Method::POST, subs, Some(&admin), Some(overlap)).await.expect(StatusCode::CONFLICT);
    h.call(Method::POST, "/admin/v1/companies/ghost/subscriptions", Some(&admin), Some(json!({"id": "x", "plan": {"package": "pro", "version": 1}, "status": "active", "starts_at": "2026-03-10T00:00:00Z"})))
        .await
        .expect(StatusCode::NOT_FOUND);

    let patch = |id: &'static str, body: Value| {
        let h = &h;
        let admin = admin.clone();
        async move { h.call(Method::PATCH, &format!("{subs}/{id}"), Some(&admin), Some(body)).await }
    };
    let entitled = |h: &Harness, module: &str| {
        let e = h.engine.directory().entitlements(&"bluenote".parse().unwrap(), now()).unwrap();
        e.modules.iter().any(|m| m == module)
    };
    assert!(entitled(&h, "ai"), "the add-on trial counts: `pro` is effective");
    // trial -> active
    let active = patch("bn-ai", json!({"status": "active"})).await;
    active.expect(StatusCode::OK);
    assert_eq!(active.body["status"], "active");
    // active -> past_due needs grace_until
    patch("bn-ai", json!({"status": "past_due"})).await.expect(StatusCode::CONFLICT);
    let due = patch("bn-ai", json!({"status": "past_due", "grace_until": "2026-03-20T00:00:00Z"})).await;
    due.expect(StatusCode::OK);
    assert_eq!(due.body["grace_until"], "2026-03-20T00:00:00Z");
    // past_due -> trialing is not a transition
    patch("bn-ai", json!({"status": "trialing"})).await.expect(StatusCode::CONFLICT);
    patch("bn-ai", json!({"status": "active"})).await.expect(StatusCode::OK);
    // pause, resume
    patch("bn-ai", json!({"status": "paused"})).await.expect(StatusCode::OK);
    assert!(!entitled(&h, "ai"), "a paused subscription entitles nothing");
    patch("bn-ai", json!({"status": "active"})).await.expect(StatusCode::OK);
    assert!(entitled(&h, "ai"));
    // cancel at period end, then a plan change: the add-on's package goes, the add-on stops counting.
    let ends = patch("bn-ai", json!({"ends_at": "2026-12-31T00:00:00Z"})).await;
    assert_eq!(ends.body["ends_at"], "2026-12-31T00:00:00Z");
    patch("bn-pro", json!({"plan": {"package": "starter", "version": 1}})).await.expect(StatusCode::OK);
    assert!(!entitled(&h, "ai"), "`ai` requires `pro` or `enterprise`");
    patch("bn-pro", json!({"plan": {"addon": "ai", "version": 1}})).await.expect(StatusCode::CONFLICT);
    patch("bn-pro", json!({"plan": {"package": "ghost", "version": 9}})).await.expect(StatusCode::UNPROCESSABLE_ENTITY);
    // cancel: final.
    patch("bn-ai", json!({"status": "canceled"})).await.expect(StatusCode::OK);
    patch("bn-ai", json!({"status": "active"})).await.expect(StatusCode::CONFLICT);
    patch("bn-ai", json!({"quantity": 2})).await.expect(StatusCode::CONFLICT);
    patch("nope", json!({"status": "active"})).await.expect(StatusCode::NOT_FOUND);
    patch("bn-pro", json!({"colour": "red"})).await.expect(StatusCode::UNPROCESSABLE_ENTITY);
    // A company owner cannot do any of it.
    let sam = h.user("sam", "bluenote");
    let own = h.call(Method::PATCH, &format!("{subs}/bn-pro"), Some(&sam), Some(json!({"quantity": 3}))).await;
    own.expect(StatusCode::FORBIDDEN);
}

async fn overrides_and_plans(backend: Backend) {
    let h = harness(backend).await;
    let admin = h.service("ops-bot", "admin:*");
    let path = "/admin/v1/companies/bluenote/overrides";
    let grant = json!({"effect": "grant", "module": "ai", "reason": "pilot", "expires_at": "2026-06-01T00:00:00Z"});
    let created = h.call(Method::POST, path, Some(&admin), Some(grant)).await;
    created.expect(StatusCode::CREATED);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("ov-"));
    let maya_in_bluenote = h.user("maya", "bluenote");
    let e = h.call(Method::GET, "/v1/companies/bluenote/entitlements", Some(&maya_in_bluenote), None).await;
    assert!(e.body["modules"].as_array().unwrap().contains(&json!("ai")));
    assert_eq!(e.body["provenance"]["module:ai"], json!([format!("override:{id} (pilot)")]));
    let list = h.call(Method::GET, path, Some(&admin), None).await;
    list.expect(StatusCode::OK);
    assert_eq!(list.body["overrides"].as_array().unwrap().len(), 2, "the legal hold and the pilot");
    let with_id = json!({"id": "mine", "effect": "grant", "module": "ai", "reason": "x"});
    h.call(Method::POST, path, Some(&admin), Some(with_id)).await.expect(StatusCode::UNPROCESSABLE_ENTITY);
    let no_reason = json!({"effect": "grant", "module": "ai", "reason": ""});
    h.call(Method::POST, path, Some(&admin), Some(no_reason)).await.expect(StatusCode::UNPROCESSABLE_ENTITY);
    h.call(Method::DELETE, &format!("{path}/{id}"), Some(&admin), None).await.expect(StatusCode::NO_CONTENT);
    h.call(Method::DELETE, &format!("{path}/{id}"), Some(&admin), None).await.expect(StatusCode::NOT_FOUND);
    let e = h.call(Method::GET, "/v1/companies/bluenote/entitlements", Some(&maya_in_bluenote), None).await;
    assert!(!e.body["modules"].as_array().unwrap().contains(&json!("ai")));

    // Plans: published once, immutable, usable by a subscription at once.
    let plan = json!({"package": {"id": "pro", "version": 3, "modules": ["core", "promoters", "touring", "venue", "artist"],
                      "features": ["venue.contracts"], "limits": {"core.seats": 30}}});
    let published = h.call(Method::POST, "/admin/v1/plans", Some(&admin), Some(plan.clone())).await;
    published.expect(StatusCode::CREATED);
    h.call(Method::POST, "/admin/v1/plans", Some(&admin), Some(plan)).await.expect(StatusCode::CONFLICT);
    let broken = json!({"addon": {"id": "x", "version": 1, "requires": ["nope"]}});
    h.call(Method::POST, "/admin/v1/plans", Some(&admin), Some(broken)).await.expect(StatusCode::UNPROCESSABLE_ENTITY);
    let catalog = h.call(Method::GET, "/v1/catalog", Some(&admin), None).await;
    assert!(catalog.body["packages"].as_array().unwrap().iter().any(|p| p["id"] == "pro" && p["version"] == 3));
    h.call(
        Method::PATCH,
        "/admin/v1/companies/bluenote/subscriptions/bn-pro",
        Some(&admin),
        Some(json!({"plan": {"package": "pro", "version": 3}})),
    )
    .await
    .expect(StatusCode::OK);
    let e = h.call(Method::GET, "/v1/companies/bluenote/entitlements", Some(&maya_in_bluenote), None).await;
    assert_eq!(e.body["limits"]["core.seats"], 30);
}

async fn the_audit_log(backend: Backend) {
    let h = harness(backend).await;
    let ops = h.user("ops", "kisum");
    let grant = json!({"effect": "grant", "module": "ai", "reason": "pilot"});
    h.call(Method::POST, "/admin/v1/companies/bluenote/overrides", Some(&ops), Some(grant))
        .await
        .expect(StatusCode::CREATED);
    let bot = h.service("ops-bot", "admin:*");
    h.call(Method::POST, "/admin/v1/users", Some(&bot), Some(json!({"id": "zed", "password": "long enough"})))
        .await
        .expect(StatusCode::CREATED);
    let all = h.call(Method::GET, "/admin/v1/audit", Some(&bot), None).await;
    all.expect(StatusCode::OK);
    let records = all.body["records"].as_array().unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["actor"], json!({"staff": "ops"}), "staff writes name the staff user");
    assert_eq!(records[0]["kind"], "add_override");
    assert_eq!(records[0]["company"], "bluenote");
    assert_eq!(records[1]["actor"], json!({"service": "ops-bot"}));
    let mine = h.call(Method::GET, "/admin/v1/audit?company=bluenote", Some(&bot), None).await;
    assert_eq!(mine.body["records"].as_array().unwrap().len(), 1);
    let after = h.call(Method::GET, "/admin/v1/audit?after=1&limit=1", Some(&bot), None).await;
    assert_eq!(after.body["records"][0]["seq"], 2);
    assert_eq!(after.body["next"], 2);
    h.call(Method::GET, "/admin/v1/audit?company=Bad%20Id", Some(&bot), None)
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    h.call(Method::GET, "/admin/v1/audit", Some(&h.user("maya", "encore")), None).await.expect(StatusCode::FORBIDDEN);
}

async fn bad_input_gets_clear_errors(backend: Backend) {
    let h = harness(backend).await;
    let admin = h.service("ops-bot", "admin:*");
    let before = h.engine.seq();
    // Malformed JSON, a wrong type, an unknown field, no content type: 422, nothing written.
    let request = |body: &'static str, content_type: Option<&'static str>| {
        let mut r = Request::builder()
            .method(Method::POST)
            .uri("/admin/v1/users")
            .header("authorization", format!("Bearer {admin}"));
        if let Some(t) = content_type {
            r = r.header("content-type", t);
        }
        r.body(Body::from(body)).unwrap()
    };
    for (body, content_type) in [
        ("{not json", Some("application/json")),
        (r#"{"id": 7, "password": "long enough"}"#, Some("application/json")),
        (r#"{"id": "x1", "password": "long enough", "admin": true}"#, Some("application/json")),
        (r#"{"id": "x1", "password": "long enough"}"#, None),
        (r#"["x1", "long enough"]"#, Some("application/json")),
    ] {
        let response = h.app.clone().oneshot(request(body, content_type)).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(response.headers()["content-type"], "application/problem+json");
    }
    // Nested objects are objects too: serde's array form of a struct is refused where it is, with a path.
    for (path, body, at) in [
        ("/admin/v1/companies", json!({"company": ["gig2"], "owner": "leo"}), "/company"),
        (
            "/admin/v1/companies",
            json!({"company": {"id": "gig2", "subscriptions": [["s", {"package": "starter", "version": 1}]]}, "owner": "leo"}),
            "/company/subscriptions/0",
        ),
        (
            "/admin/v1/companies/encore/subscriptions",
            json!({"id": "s9", "plan": ["pro", 2], "status": "active", "starts_at": "2026-01-01T00:00:00Z"}),
            "/plan",
        ),
    ] {
        let refused = h.call(Method::POST, path, Some(&admin), Some(body)).await;
        refused.expect(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(refused.body["errors"][0]["path"], at, "{:#}", refused.body);
    }
    // Over 64 KiB: 413 PAYLOAD_TOO_LARGE.
    let big = json!({"id": "x1", "password": "p".repeat(70 * 1024)});
    let too_large = h.call(Method::POST, "/admin/v1/users", Some(&admin), Some(big)).await;
    too_large.expect(StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(too_large.code(), "PAYLOAD_TOO_LARGE");
    assert_eq!(h.engine.seq(), before, "nothing was written");
    // Unknown routes and methods answer problems too; request ids are echoed when valid.
    h.call(Method::GET, "/v1/nowhere", None, None).await.expect(StatusCode::NOT_FOUND);
    let wrong = h.call(Method::PUT, "/v1/catalog", Some(&admin), None).await;
    wrong.expect(StatusCode::METHOD_NOT_ALLOWED);
    let echo = Request::get("/health/live").header("x-request-id", "abc-123").body(Body::empty()).unwrap();
    assert_eq!(h.app.clone().oneshot(echo).await.unwrap().headers()["x-request-id"], "abc-123");
    let odd = Request::get("/health/live").header("x-request-id", "<script>").body(Body::empty()).unwrap();
    assert_ne!(h.app.clone().oneshot(odd).await.unwrap().headers()["x-request-id"], "<script>");
    h.call(Method::GET, "/health/ready", None, None).await.expect(StatusCode::OK);
    let doc = h.call(Method::GET, "/openapi.json", None, None).await;
    doc.expect(StatusCode::OK);
    assert_eq!(doc.body["openapi"], "3.1.0");
    for path in [
        "/v1/catalog",
        "/v1/companies/{c}/entitlements",
        "/admin/v1/companies",
        "/admin/v1/companies/{c}",
        "/admin/v1/users",
        "/admin/v1/users/{u}/password",
        "/admin/v1/users/{u}/disable",
        "/admin/v1/companies/{c}/subscriptions",
        "/admin/v1/companies/{c}/subscriptions/{id}",
        "/admin/v1/companies/{c}/overrides",
        "/admin/v1/companies/{c}/overrides/{id}",
        "/admin/v1/plans",
        "/admin/v1/audit",
        "/health/live",
        "/health/ready",
    ] {
        assert!(doc.body["paths"][path].is_object(), "the document describes {path}");
    }
}

async fn writes_reach_another_replica_through_the_log(backend: Backend) {
    let h = harness(backend).await;
    // A second replica on the same store, following the log as a server does.
    let replica = Arc::new(Engine::open(connect(&h.db.url).await.unwrap(), None).await.unwrap());
    let follow = replica.follow(Duration::from_millis(250));
    let admin = h.service("ops-bot", "admin:*");
    let revoke = json!({"effect": "revoke", "module": "finance", "reason": "unpaid"});
    let written = h.call(Method::POST, "/admin/v1/companies/encore/overrides", Some(&admin), Some(revoke)).await;
    written.expect(StatusCode::CREATED);
    let seq = written.version();
    let mut installed = replica.installed();
    let started = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(1), installed.wait_for(|s| *s >= seq))
        .await
        .unwrap_or_else(|_| panic!("the replica did not see write {seq} within 1 s"))
        .unwrap();
    let directory = replica.directory();
    let maya = kisum_access::Principal::parse("user:maya").unwrap();
    let read = directory.permission("finance:invoice:read").unwrap();
    let decision = directory.check(&maya, &"encore".parse().unwrap(), read, None, now());
    assert_eq!(decision.reason(), Some(kisum_access::DenyReason::ModuleNotEntitled), "after {:?}", started.elapsed());
    follow.abort();
}

async fn revoked_sessions_are_refused(backend: Backend) {
    let h = harness(backend).await;
    let ops = h.user("ops", "kisum");
    h.call(Method::GET, "/admin/v1/companies", Some(&ops), None).await.expect(StatusCode::OK);
    let follower = kisum_server::revoked::follow(h.engine.clone(), h.state.tokens.revoked().clone());
    // Auth revokes the session (`s1`, the harness's): Core refuses its tokens within a second.
    let until = now().checked_add_seconds(900).unwrap();
    let revoke = kisum_access::Change::RevokeSession { user: "ops".parse().unwrap(), session: "s1".into(), until };
    h.engine.write(&kisum_access::Actor::User("ops".parse().unwrap()), now(), revoke).await.unwrap();
    let start = std::time::Instant::now();
    loop {
        let a = h.call(Method::GET, "/admin/v1/companies", Some(&ops), None).await;
        if a.status == StatusCode::UNAUTHORIZED {
            assert_eq!(a.code(), "TOKEN_INVALID");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(1), "still {} after a second", a.status);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    follower.abort();
}

async fn a_password_change_ends_every_session(backend: Backend) {
    let h = harness(backend).await;
    let admin = h.service("ops-bot", "admin:*");
    let maya = h.user("maya", "encore");
    h.call(Method::GET, "/v1/companies/encore/entitlements", Some(&maya), None).await.expect(StatusCode::OK);
    let follower = kisum_server::revoked::follow(h.engine.clone(), h.state.tokens.revoked().clone());
    h.call(Method::PUT, "/admin/v1/users/maya/password", Some(&admin), Some(json!({"password": "battery staple"})))
        .await
        .expect(StatusCode::NO_CONTENT);
    // Every token issued until the change is refused within a second, here as in Auth and the modules.
    let start = std::time::Instant::now();
    loop {
        let a = h.call(Method::GET, "/v1/companies/encore/entitlements", Some(&maya), None).await;
        if a.status == StatusCode::UNAUTHORIZED {
            assert_eq!(a.code(), "TOKEN_INVALID");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(1), "still {} after a second", a.status);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A token issued after the change works: the user signs in again with the new password.
    let later = Claims {
        cid: Some("encore".into()),
        sid: Some("s2".into()),
        ver: Some(0),
        iat: now().unix_seconds() + 1,
        exp: now().unix_seconds() + 601,
        ..h.claims("maya")
    };
    let later = h.token(later);
    let a = h.call(Method::GET, "/v1/companies/encore/entitlements", Some(&later), None).await;
    assert_ne!(a.status, StatusCode::UNAUTHORIZED, "{:#}", a.body);
    // The change is recorded so that Auth's feed tells the modules (`session_revoked` with
    // `issued_through`).
    let audit = h.call(Method::GET, "/admin/v1/audit", Some(&admin), None).await;
    let record = audit.body["records"].as_array().unwrap().iter().rev().find(|r| r["kind"] == "set_password").cloned();
    assert!(record.is_some(), "{:#}", audit.body);
    follower.abort();
}

async fn every_read_honours_kisum_at_least(backend: Backend) {
    let h = harness(backend).await;
    let admin = h.service("ops-bot", "admin:*");
    let maya = h.user("maya", "encore");
    let ahead = (h.engine.seq() + 1000).to_string();
    let now = h.engine.seq().to_string();
    let get = |path: &str, token: Option<&str>, at_least: &str| {
        let mut request = Request::get(path).header("kisum-at-least", at_least);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        h.app.clone().oneshot(request.body(Body::empty()).unwrap())
    };
    for (path, token) in [
        ("/v1/catalog", &maya),
        ("/v1/companies/encore/entitlements", &maya),
        ("/admin/v1/companies", &admin),
        ("/admin/v1/companies/encore", &admin),
        ("/admin/v1/companies/encore/overrides", &admin),
        ("/admin/v1/audit", &admin),
    ] {
        assert_eq!(get(path, Some(token), &now).await.unwrap().status(), StatusCode::OK, "{path}");
        let waited = get(path, Some(token), &ahead).await.unwrap();
        assert_eq!(waited.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert!(waited.headers().contains_key("retry-after"), "{path}");
        assert_eq!(get(path, Some(token), "soon").await.unwrap().status(), StatusCode::UNPROCESSABLE_ENTITY, "{path}");
        // The token first: no token is 401 whatever the header says.
        assert_eq!(get(path, None, "soon").await.unwrap().status(), StatusCode::UNAUTHORIZED, "{path}");
    }
}

/// docs/deploy.md, "PostgreSQL goes away", through a fault-injecting TCP proxy between Core and PostgreSQL
/// (issue 17): while it is cut, writes fail with 503 and change nothing, reads and checks keep answering
/// from memory, `/health/ready` is 503; after it heals (and after resets and stalls) writes go through
/// again, and every acknowledged write is in the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_going_away_through_a_proxy() {
    let db = TestDb::new(Backend::Postgres).await;
    let target: std::net::SocketAddr = "127.0.0.1:5432".parse().unwrap();
    let proxy = kisum_tests::proxy::Proxy::start(target).await.unwrap();
    let url = db.url.replace("127.0.0.1:5432", &proxy.addr().to_string());
    assert_ne!(url, db.url, "the test database is on 127.0.0.1:5432");
    let direct = db.url.clone();
    let h = harness_at(db, &url).await;
    let admin = h.service("ops-bot", "admin:*");
    let maya = h.user("maya", "encore");
    let mut acked = Vec::new();
    let write = |n: usize| {
        let body = json!({"effect": "grant", "feature": "finance.multi_currency", "reason": format!("fault {n}")});
        h.call(Method::POST, "/admin/v1/companies/encore/overrides", Some(&admin), Some(body))
    };
    let stored = || async {
        let engine = Engine::open(connect(&direct).await.unwrap(), None).await.unwrap();
        let company = engine.directory().company(&"encore".parse().unwrap()).unwrap();
        company.source().company.overrides.iter().filter_map(|o| o.id.clone()).collect::<Vec<_>>()
    };
    let before = stored().await.len();
    let first = write(0).await;
    first.expect(StatusCode::CREATED);
    acked.push(first.body["id"].as_str().unwrap().to_owned());

    // Cut: writes fail with 503 and change nothing; reads answer from memory; not ready.
    proxy.cut();
    let refused = write(1).await;
    refused.expect(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.code(), "UPSTREAM_UNAVAILABLE");
    h.call(Method::GET, "/v1/companies/encore/entitlements", Some(&maya), None).await.expect(StatusCode::OK);
    h.call(Method::GET, "/admin/v1/companies/encore", Some(&admin), None).await.expect(StatusCode::OK);
    assert_eq!(h.call(Method::GET, "/health/ready", None, None).await.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(stored().await.len(), before + 1, "the refused write changed nothing");

    // Heal: writes go through again (the pool reconnects).
    proxy.heal();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let a = write(2).await;
        if a.status == StatusCode::CREATED {
            acked.push(a.body["id"].as_str().unwrap().to_owned());
            break;
        }
        assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{:#}", a.body);
        assert!(attempts < 20, "writes never came back after the proxy healed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    h.call(Method::GET, "/health/ready", None, None).await.expect(StatusCode::OK);

    // Resets and a stall: every answer is a success or a 503, never anything else, and every success is
    // kept (a 503 after a lost answer may or may not have committed).
    for round in 0..3 {
        proxy.reset();
        let a = write(10 + round).await;
        assert!(matches!(a.status, StatusCode::CREATED | StatusCode::SERVICE_UNAVAILABLE), "{:#}", a.body);
        if a.status == StatusCode::CREATED {
            acked.push(a.body["id"].as_str().unwrap().to_owned());
        }
    }
    proxy.stall();
    let stalled = tokio::spawn({
        let app = h.app.clone();
        let admin = admin.clone();
        async move {
            let body = json!({"effect": "grant", "feature": "finance.multi_currency", "reason": "stalled"});
            let request = Request::post("/admin/v1/companies/encore/overrides")
                .header("authorization", format!("Bearer {admin}"))
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .unwrap();
            let response = app.oneshot(request).await.unwrap();
            let status = response.status();
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            (status, serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null))
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.heal();
    let (status, body) = stalled.await.unwrap();
    assert!(matches!(status, StatusCode::CREATED | StatusCode::SERVICE_UNAVAILABLE), "{status} {body:#}");
    if status == StatusCode::CREATED {
        acked.push(body["id"].as_str().unwrap().to_owned());
    }
    let kept = stored().await;
    for id in &acked {
        assert!(kept.contains(id), "acknowledged write {id} is not in the log");
    }
    // The replica behind the proxy is in step with the log.
    h.engine.sync().await.unwrap();
    let replica = h.engine.directory().company(&"encore".parse().unwrap()).unwrap();
    let theirs: Vec<_> = replica.source().company.overrides.iter().filter_map(|o| o.id.clone()).collect();
    assert_eq!(theirs, kept);
}

/// `/admin/v1/clients` (issue 19): register, list, rotate and delete platform service clients, each
/// write in the change log; nobody gives scopes beyond its own — a service beyond its token's scopes, a
/// staff user beyond the permissions it holds; `platform-admin` and agents' clients are not managed here.
async fn service_clients_with_least_privilege(backend: Backend) {
    let h = harness(backend).await;
    let path = "/admin/v1/clients";
    let body = |id: &str, scopes: &[&str]| Some(json!({"client_id": id, "scopes": scopes}));
    let module = ["auth:access:read", "auth:support:record"];
    // Who may call.
    h.call(Method::GET, path, None, None).await.expect(StatusCode::UNAUTHORIZED);
    // 401 before the body is read, however wrong it is.
    let garbage = Some(json!({"nonsense": true}));
    h.call(Method::POST, path, None, garbage.clone()).await.expect(StatusCode::UNAUTHORIZED);
    h.call(Method::DELETE, &format!("{path}/Not%20an%20id"), None, None).await.expect(StatusCode::UNAUTHORIZED);
    let maya = h.call(Method::GET, path, Some(&h.user("maya", "encore")), None).await;
    maya.expect(StatusCode::FORBIDDEN);
    assert_eq!(maya.body["required"], "admin:client:manage");
    let una = h.user("una", "kisum");
    h.call(Method::POST, path, Some(&una), body("x", &module)).await.expect(StatusCode::FORBIDDEN);
    // Service callers act through clients that exist, with their registered scopes.
    let store = h.engine.store();
    let registered = |id: &str, scopes: &[&str]| kisum_store::ServiceClient {
        client_id: id.into(),
        secret_hash: "sha256:00".into(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        company: None,
        agent: None,
        created_at: 0,
    };
    store.put_service_client(&registered("root", &["*"])).await.unwrap();
    store.put_service_client(&registered("manager", &["admin:client:manage"])).await.unwrap();
    store.put_service_client(&registered("narrow", &["admin:client:manage", "finance:*"])).await.unwrap();
    // A deleted client's token manages nothing, whatever its scopes said.
    let ghost = h.call(Method::POST, path, Some(&h.service("ghost", "*")), body("g", &module)).await;
    ghost.expect(StatusCode::FORBIDDEN);
    // What the token's scopes allow but the client's registered scopes do not is refused.
    let wide_token = h.call(Method::POST, path, Some(&h.service("narrow", "*")), body("n", &module)).await;
    wide_token.expect(StatusCode::FORBIDDEN);
    assert_eq!(wide_token.body["required"], "auth:access:read");
    // A service gives only what its own scopes cover.
    let manager = h.service("manager", "admin:client:manage");
    let beyond = h.call(Method::POST, path, Some(&manager), body("finance-svc", &module)).await;
    beyond.expect(StatusCode::FORBIDDEN);
    assert_eq!(beyond.body["required"], "auth:access:read");
    let root = h.service("root", "*");
    let created = h.call(Method::POST, path, Some(&root), body("finance-svc", &module)).await;
    created.expect(StatusCode::CREATED);
    assert!(created.version() > 0);
    assert_eq!(created.body["scopes"], json!(module));
    let secret = created.body["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 64);
    let stored = store.service_client("finance-svc").await.unwrap().unwrap();
    assert_eq!(stored.secret_hash, kisum_server::random::hash_client_secret(&secret));
    assert_eq!((stored.company.as_deref(), stored.scopes.len()), (None, 2));
    // Refusals, nothing written by any of them.
    let head = store.head().await.unwrap();
    let again = h.call(Method::POST, path, Some(&root), body("finance-svc", &["*"])).await;
    again.expect(StatusCode::CONFLICT);
    h.call(Method::POST, path, Some(&root), body("platform-admin", &module)).await.expect(StatusCode::CONFLICT);
    for (id, scopes) in [("Bad id", &module[..]), ("bot@encore", &module[..]), ("x", &["finance"][..]), ("x", &[][..])]
    {
        h.call(Method::POST, path, Some(&root), body(id, scopes)).await.expect(StatusCode::UNPROCESSABLE_ENTITY);
    }
    assert_eq!(store.service_client("finance-svc").await.unwrap().unwrap(), stored, "the first client is untouched");
    assert_eq!(store.head().await.unwrap(), head);
    // A staff user gives only permissions it holds in the platform company.
    let role = kisum_access::doc::RoleDoc {
        id: "client_admin".into(),
        grants: vec!["admin:client:manage".into()],
        inherits: vec![],
    };
    let platform = kisum_access::Actor::Platform;
    let kisum: kisum_access::CompanyId = "kisum".parse().unwrap();
    h.engine.write(&platform, now(), kisum_access::Change::PutRole { company: kisum.clone(), role }).await.unwrap();
    let membership: kisum_access::doc::MembershipDoc = serde_json::from_value(
        json!({"user": "una", "company": "kisum", "status": "active", "roles": ["support", "client_admin"]}),
    )
    .unwrap();
    h.engine.write(&platform, now(), kisum_access::Change::PutMembership(membership)).await.unwrap();
    // A service scope is named exactly: `auth:*` would cover every service route to come.
    let service_wildcard = h.call(Method::POST, path, Some(&una), body("una-bot", &["auth:*"])).await;
    service_wildcard.expect(StatusCode::FORBIDDEN);
    assert_eq!(service_wildcard.body["required"], "auth:access:read");
    let wide = h.call(Method::POST, path, Some(&una), body("una-bot", &["finance:*"])).await;
    wide.expect(StatusCode::FORBIDDEN);
    assert!(wide.body["required"].as_str().unwrap().starts_with("finance:"), "{:#}", wide.body);
    h.call(Method::POST, path, Some(&una), body("una-bot", &["admin:audit:read", "auth:access:read"]))
        .await
        .expect(StatusCode::CREATED);
    let ops = h.user("ops", "kisum");
    h.call(Method::POST, path, Some(&ops), body("ops-bot", &["finance:*"])).await.expect(StatusCode::CREATED);
    // Taking a service down needs what giving its scopes needs.
    h.call(Method::DELETE, &format!("{path}/ops-bot"), Some(&una), None).await.expect(StatusCode::FORBIDDEN);
    // An id that cannot be a client's is no client.
    h.call(Method::DELETE, &format!("{path}/Not%20an%20id"), Some(&root), None).await.expect(StatusCode::NOT_FOUND);
    // The list: no secrets, no agents' clients.
    let list = h.call(Method::GET, path, Some(&root), None).await;
    list.expect(StatusCode::OK);
    let ids: Vec<&str> =
        list.body["clients"].as_array().unwrap().iter().map(|c| c["client_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["finance-svc", "manager", "narrow", "ops-bot", "root", "una-bot"]);
    assert!(!list.body.to_string().contains("secret"), "{:#}", list.body);
    // Rotation: a new secret, the old one's hash gone; only by a caller holding the client's scopes.
    let rotate = format!("{path}/finance-svc/secret");
    h.call(Method::POST, &format!("{path}/ops-bot/secret"), Some(&una), None).await.expect(StatusCode::FORBIDDEN);
    let rotated = h.call(Method::POST, &rotate, Some(&root), None).await;
    rotated.expect(StatusCode::OK);
    let fresh = rotated.body["client_secret"].as_str().unwrap();
    assert_ne!(fresh, secret);
    let hash = store.service_client("finance-svc").await.unwrap().unwrap().secret_hash;
    assert_eq!(hash, kisum_server::random::hash_client_secret(fresh));
    h.call(Method::POST, &format!("{path}/platform-admin/secret"), Some(&root), None)
        .await
        .expect(StatusCode::CONFLICT);
    // Deletion.
    h.call(Method::DELETE, &format!("{path}/finance-svc"), Some(&root), None).await.expect(StatusCode::NO_CONTENT);
    assert!(store.service_client("finance-svc").await.unwrap().is_none());
    h.call(Method::DELETE, &format!("{path}/finance-svc"), Some(&root), None).await.expect(StatusCode::NOT_FOUND);
    h.call(Method::POST, &rotate, Some(&root), None).await.expect(StatusCode::NOT_FOUND);
    // A rotation or deletion judged on a client that changed meanwhile writes nothing.
    let head = store.head().await.unwrap();
    let platform = kisum_access::Actor::Platform;
    let stale = "sha256:not-the-current-secret".to_owned();
    let rotate_stale = kisum_store::SideWrite::RotateServiceClientSecret {
        client_id: "manager".into(),
        expected: stale.clone(),
        secret_hash: "sha256:new".into(),
    };
    let change = kisum_access::Change::PutServiceClient { client_id: "manager".into(), scopes: vec![], rotated: true };
    assert!(h.engine.write_with(&platform, now(), change, &[rotate_stale]).await.is_err());
    let remove_stale = kisum_store::SideWrite::RemovePlatformClient { client_id: "manager".into(), expected: stale };
    let change = kisum_access::Change::RemoveServiceClient { client_id: "manager".into() };
    assert!(h.engine.write_with(&platform, now(), change, &[remove_stale]).await.is_err());
    assert_eq!(store.head().await.unwrap(), head);
    assert_eq!(store.service_client("manager").await.unwrap().unwrap().secret_hash, "sha256:00");
    // Every write is in the audit log.
    let audit = h.call(Method::GET, "/admin/v1/audit", Some(&root), None).await;
    let kinds = audit.body.to_string();
    assert!(kinds.contains("put_service_client") && kinds.contains("remove_service_client"), "{kinds}");
}
