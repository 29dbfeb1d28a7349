//! Auth through the router, on SQLite and on PostgreSQL: sign-in and its rate limit, refresh-token
//! rotation (grace, reuse, races), the three grants, key rotation, access decisions by caller, the access
//! writes with every error of API.md §2, the change feed, read-your-writes, two replicas on one store, and a
//! property: random writes through HTTP leave Auth deciding what a directory loaded from the resulting
//! world decides.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{Method, StatusCode};
use kisum_access::{Access, CompanyId, Directory, Principal, World};
use kisum_auth::boot::Boot;
use kisum_auth::{AuthState, Settings};
use kisum_entitlements::{ManualClock, Timestamp};
use kisum_tests::http::{Answer, Call};
use kisum_tests::{Backend, TestDb};
use kisum_token::{Accept, Jwks, Validation, Verifier};
use serde_json::{Value, json};

const ISSUER: &str = "http://127.0.0.1:7400";
const PASSWORD: &str = "correct horse battery";
const ADMIN_SECRET: &str = "admin-secret-for-tests-0123456789abcdef";
const KEK: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";

fn now() -> Timestamp {
    Timestamp::parse("2026-03-15T12:00:00Z").unwrap()
}

struct H {
    app: Router,
    state: Arc<AuthState>,
    clock: Arc<ManualClock>,
    _db: TestDb,
    url: String,
}

async fn replica(url: &str, clock: Arc<ManualClock>) -> (Router, Arc<AuthState>) {
    let boot = Boot {
        store: kisum_server::StoreConfig {
            db: Some(kisum_server::DbUrl(url.to_owned())),
            seed_world: Some(concat!(env!("CARGO_MANIFEST_DIR"), "/../demo/world.json").into()),
            seed_password: Some(PASSWORD.into()),
            ..Default::default()
        },
        kek: Some(KEK.into()),
        admin_secret: Some(ADMIN_SECRET.into()),
        ..Boot::default()
    };
    let opened = boot.open().await.unwrap();
    let settings = Settings::new(ISSUER, "kisum".parse().unwrap());
    let state = AuthState::open(opened.engine, opened.kek, settings, clock).await.unwrap();
    (kisum_auth::app(state.clone()), state)
}

async fn harness(backend: Backend) -> H {
    let db = TestDb::new(backend).await;
    let clock = Arc::new(ManualClock::new(now()));
    let (app, state) = replica(&db.url, clock.clone()).await;
    H { app, state, clock, url: db.url.clone(), _db: db }
}

fn basic(id: &str, secret: &str) -> String {
    use base64::Engine as _;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}")))
}

impl H {
    async fn send(&self, call: Call) -> Answer {
        call.send(&self.app).await
    }

    async fn login(&self, user: &str, password: &str) -> Answer {
        self.send(Call::new(Method::POST, "/v1/sessions").json(&json!({"user": user, "password": password}))).await
    }

    /// Sends a call that checks a credential, again while the bounded hashing queue answers `503`
    /// (API.md §1: under load a credential check that cannot start within 2 s is `503` with `Retry-After`,
    /// and the whole suite runs in parallel on two cores): what any client of Auth does.
    async fn with_credentials(&self, call: impl Fn() -> Call) -> Answer {
        for _ in 0..40 {
            let a = self.send(call()).await;
            if a.status != StatusCode::SERVICE_UNAVAILABLE {
                return a;
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
        panic!("the credential queue stayed full for 10 s");
    }

    /// A refresh token of a new session of `user`.
    async fn session(&self, user: &str) -> String {
        let body = json!({"user": user, "password": PASSWORD});
        let a = self.with_credentials(|| Call::new(Method::POST, "/v1/sessions").json(&body)).await;
        a.expect(StatusCode::CREATED);
        a.body["refresh_token"].as_str().unwrap().to_owned()
    }

    async fn refresh(&self, refresh: &str, company: &str) -> Answer {
        self.send(Call::new(Method::POST, "/oauth/token").form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("company", company),
        ]))
        .await
    }

    /// An access token of `user` in `company` (a new session).
    async fn user(&self, user: &str, company: &str) -> String {
        let refresh = self.session(user).await;
        let a = self.refresh(&refresh, company).await;
        a.expect(StatusCode::OK);
        a.body["access_token"].as_str().unwrap().to_owned()
    }

    /// A service token of the platform's administration client with `scope`.
    async fn service(&self, scope: &str) -> String {
        let a = self
            .with_credentials(|| {
                Call::new(Method::POST, "/oauth/token")
                    .header("authorization", &basic("platform-admin", ADMIN_SECRET))
                    .form(&[("grant_type", "client_credentials"), ("scope", scope)])
            })
            .await;
        a.expect(StatusCode::OK);
        a.body["access_token"].as_str().unwrap().to_owned()
    }

    async fn get(&self, path: &str, token: &str) -> Answer {
        self.send(Call::new(Method::GET, path).bearer(Some(token))).await
    }

    async fn json(&self, method: Method, path: &str, token: &str, body: Value) -> Answer {
        self.send(Call::new(method, path).bearer(Some(token)).json(&body)).await
    }

    async fn check(&self, token: &str, principal: &str, company: &str, permission: &str) -> Answer {
        let body = json!({"principal": principal, "company": company, "permission": permission});
        self.json(Method::POST, "/v1/access/check", token, body).await
    }

    /// The strict verifier of `kisum-token` on the JWKS Auth publishes now.
    async fn verifier(&self) -> Verifier {
        let jwks = self.send(Call::new(Method::GET, "/.well-known/jwks.json")).await;
        Verifier::new(Jwks::parse(&jwks.text).unwrap(), Validation::new(ISSUER, "kisum")).unwrap()
    }

    async fn feed(&self, after: u64) -> Vec<Value> {
        let token = self.service("auth:access:read").await;
        let a = self
            .send(
                Call::new(Method::GET, format!("/v1/changes?after={after}"))
                    .bearer(Some(&token))
                    .header("accept", "application/json"),
            )
            .await;
        a.expect(StatusCode::OK);
        a.body.as_array().unwrap().clone()
    }
}

kisum_tests::on_both_backends!(
    sign_in_and_its_rate_limit,
    refresh_rotation_grace_and_reuse,
    concurrent_refreshes_have_one_winner,
    client_credentials,
    token_exchange_for_an_agent,
    key_rotation,
    access_decisions_by_caller,
    what_a_frontend_reads,
    access_writes_and_their_errors,
    the_management_table_over_http,
    agent_client_ids_do_not_collide,
    the_change_feed,
    read_your_writes,
    two_replicas_on_one_store,
);

async fn sign_in_and_its_rate_limit(backend: Backend) {
    let h = Arc::new(harness(backend).await);
    // Parallel sign-ins with the right password all succeed; parallel guesses get exactly 5 tries.
    let mut tasks = Vec::new();
    for i in 0..16 {
        let h = h.clone();
        let (user, password) = if i % 2 == 0 { ("sam", PASSWORD) } else { ("kai", "a wrong guess") };
        tasks.push(tokio::spawn(async move { (user, h.login(user, password).await.status) }));
    }
    let mut statuses = std::collections::HashMap::<(&str, StatusCode), usize>::new();
    for t in tasks {
        *statuses.entry(t.await.unwrap()).or_default() += 1;
    }
    assert_eq!(statuses.get(&("sam", StatusCode::CREATED)), Some(&8), "{statuses:?}");
    assert_eq!(statuses.get(&("kai", StatusCode::UNAUTHORIZED)), Some(&5), "{statuses:?}");
    assert_eq!(statuses.get(&("kai", StatusCode::TOO_MANY_REQUESTS)), Some(&3), "{statuses:?}");
    let ok = h.login("maya", PASSWORD).await;
    ok.expect(StatusCode::CREATED);
    assert_eq!(ok.body["user"], "maya");
    let companies = ok.body["companies"].as_array().unwrap();
    assert!(companies.iter().any(|c| c["id"] == "encore" && c["roles"] == json!(["owner"]) && c["status"] == "active"));
    assert!(ok.body["session"].as_str().unwrap().starts_with("s-"));
    // Unknown user and wrong password: the same answer.
    let wrong = h.login("maya", "not the password").await;
    wrong.expect_code(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED");
    let unknown = h.login("nobody", PASSWORD).await;
    unknown.expect_code(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED");
    assert_eq!(wrong.body["detail"], unknown.body["detail"]);
    h.send(Call::new(Method::POST, "/v1/sessions").json(&json!({"user": "maya"})))
        .await
        .expect_code(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED");
    h.send(Call::new(Method::POST, "/v1/sessions").json(&json!({"user": "maya", "password": "x", "extra": 1})))
        .await
        .expect_code(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED");
    // Five failures for leo within 15 minutes: then 429 whatever the password, with Retry-After.
    for _ in 0..5 {
        h.login("leo", "wrong password").await.expect(StatusCode::UNAUTHORIZED);
    }
    let limited = h.login("leo", PASSWORD).await;
    limited.expect_code(StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED");
    let retry: i64 = limited.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=900).contains(&retry), "{retry}");
    // Unknown names are limited alike (no enumeration through the limit).
    for _ in 0..5 {
        h.login("ghost", "x").await.expect(StatusCode::UNAUTHORIZED);
    }
    h.login("ghost", "x").await.expect(StatusCode::TOO_MANY_REQUESTS);
    // Other users are not affected; after the window leo may try again.
    h.login("ines", PASSWORD).await.expect(StatusCode::CREATED);
    h.clock.advance(15 * 60 + 1);
    h.login("leo", PASSWORD).await.expect(StatusCode::CREATED);
}

async fn refresh_rotation_grace_and_reuse(backend: Backend) {
    let h = harness(backend).await;
    let r1 = h.session("maya").await;
    let first = h.refresh(&r1, "encore").await;
    first.expect(StatusCode::OK);
    assert_eq!(first.body["token_type"], "Bearer");
    assert_eq!(first.body["expires_in"], 900);
    assert_eq!(first.headers["cache-control"], "no-store");
    let access = first.body["access_token"].as_str().unwrap();
    let r2 = first.body["refresh_token"].as_str().unwrap().to_owned();
    // The token passes kisum-token's strict verifier with the published keys.
    let claims = h.verifier().await.verify(access, Accept::User, h.clock_now()).unwrap();
    assert_eq!(claims.claims().sub, "maya");
    assert_eq!(claims.claims().cid.as_deref(), Some("encore"));
    let ver = h
        .state
        .engine
        .directory()
        .principal_version(&Principal::parse("user:maya").unwrap(), &"encore".parse().unwrap());
    assert_eq!(claims.claims().ver, Some(ver));
    // A retry within 10 s gets the same answer again.
    h.clock.advance(9);
    let again = h.refresh(&r1, "encore").await;
    again.expect(StatusCode::OK);
    assert_eq!(again.body, first.body, "a lost response must not log the user out");
    // The same token for another company within the grace: refused, but the session lives.
    h.refresh(&r1, "bluenote").await.expect_code(StatusCode::UNAUTHORIZED, "TOKEN_INVALID");
    // Membership checks: none in globex (404), and r2 still works for a company maya is in.
    h.refresh(&r2, "globex").await.expect_code(StatusCode::NOT_FOUND, "NOT_FOUND");
    let third = h.refresh(&r2, "bluenote").await;
    third.expect(StatusCode::OK);
    let r3 = third.body["refresh_token"].as_str().unwrap().to_owned();
    // A reuse after the grace revokes the whole session: every refresh token of it dies.
    h.clock.advance(11);
    let reuse = h.refresh(&r1, "encore").await;
    reuse.expect_code(StatusCode::UNAUTHORIZED, "TOKEN_INVALID");
    assert_eq!(reuse.body["error"], "invalid_grant");
    h.refresh(&r3, "encore").await.expect_code(StatusCode::UNAUTHORIZED, "TOKEN_INVALID");
    // Its access tokens are refused by Auth, and the feed says so.
    h.get("/v1/me/access", access).await.expect_code(StatusCode::UNAUTHORIZED, "TOKEN_INVALID");
    let events = h.feed(0).await;
    let revoked = events.iter().find(|e| e["kind"] == "session_revoked").expect("a session_revoked event");
    assert_eq!(revoked["sid"], claims.claims().sid.clone().unwrap());
    assert_eq!(revoked["principals"], json!(["user:maya"]));
    assert!(revoked["until"].is_string());
    // Logout by refresh token and by access token.
    let r = h.session("leo").await;
    let t = h.refresh(&r, "encore").await;
    let next = t.body["refresh_token"].as_str().unwrap();
    h.send(Call::new(Method::POST, "/v1/sessions/revoke").json(&json!({"refresh_token": next})))
        .await
        .expect(StatusCode::NO_CONTENT);
    h.refresh(next, "encore").await.expect_code(StatusCode::UNAUTHORIZED, "TOKEN_INVALID");
    let token = h.user("ines", "encore").await;
    h.send(Call::new(Method::POST, "/v1/sessions/revoke").bearer(Some(&token))).await.expect(StatusCode::NO_CONTENT);
    h.get("/v1/me/access", &token).await.expect(StatusCode::UNAUTHORIZED);
    h.send(Call::new(Method::POST, "/v1/sessions/revoke")).await.expect(StatusCode::UNAUTHORIZED);
    // Unknown refresh tokens, malformed requests.
    h.refresh("no-such-token", "encore").await.expect_code(StatusCode::UNAUTHORIZED, "TOKEN_INVALID");
    let missing = h.send(Call::new(Method::POST, "/oauth/token").form(&[("grant_type", "refresh_token")])).await;
    missing.expect_code(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED");
    assert_eq!(missing.body["error"], "invalid_request");
}

impl H {
    fn clock_now(&self) -> Timestamp {
        use kisum_entitlements::Clock;
        self.clock.now()
    }
}

async fn concurrent_refreshes_have_one_winner(backend: Backend) {
    let h = Arc::new(harness(backend).await);
    let r1 = h.session("maya").await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (h, r1) = (h.clone(), r1.clone());
        tasks.push(tokio::spawn(async move { h.refresh(&r1, "encore").await }));
    }
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    for a in &answers {
        a.expect(StatusCode::OK);
    }
    let successor = &answers[0].body["refresh_token"];
    assert!(answers.iter().all(|a| &a.body["refresh_token"] == successor), "one winner; the others get its answer");
    h.refresh(successor.as_str().unwrap(), "encore").await.expect(StatusCode::OK);
}

async fn client_credentials(backend: Backend) {
    let h = harness(backend).await;
    let call = |auth: String, form: Vec<(&'static str, &'static str)>| {
        Call::new(Method::POST, "/oauth/token").header("authorization", &auth).form(&form)
    };
    let ok = h
        .send(call(
            basic("platform-admin", ADMIN_SECRET),
            vec![("grant_type", "client_credentials"), ("scope", "admin:company:read finance:*")],
        ))
        .await;
    ok.expect(StatusCode::OK);
    assert_eq!(ok.body["scope"], "admin:company:read finance:*");
    let claims =
        h.verifier().await.verify(ok.body["access_token"].as_str().unwrap(), Accept::Service, h.clock_now()).unwrap();
    assert_eq!(claims.claims().sub, "service:platform-admin");
    assert!(claims.scope_allows("finance:invoice:read") && !claims.scope_allows("venue:venue:read"));
    let all = h.send(call(basic("platform-admin", ADMIN_SECRET), vec![("grant_type", "client_credentials")])).await;
    assert_eq!(all.body["scope"], "*");
    let wrong = h.send(call(basic("platform-admin", "wrong"), vec![("grant_type", "client_credentials")])).await;
    wrong.expect_code(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED");
    assert_eq!(wrong.body["error"], "invalid_client");
    h.send(call(basic("nobody", "x"), vec![("grant_type", "client_credentials")]))
        .await
        .expect(StatusCode::UNAUTHORIZED);
    let no_auth = h.send(Call::new(Method::POST, "/oauth/token").form(&[("grant_type", "client_credentials")])).await;
    assert_eq!(no_auth.body["error"], "invalid_client");
    let bad_scope = h
        .send(call(
            basic("platform-admin", ADMIN_SECRET),
            vec![("grant_type", "client_credentials"), ("scope", "not a pattern")],
        ))
        .await;
    bad_scope.expect_code(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED");
    assert_eq!(bad_scope.body["error"], "invalid_scope");
    let grant = h.send(call(basic("platform-admin", ADMIN_SECRET), vec![("grant_type", "password")])).await;
    assert_eq!(grant.body["error"], "unsupported_grant_type");
    let twice = h
        .send(
            Call::new(Method::POST, "/oauth/token")
                .raw("application/x-www-form-urlencoded", "grant_type=a&grant_type=b"),
        )
        .await;
    assert_eq!(twice.body["error"], "invalid_request");
    let json_body =
        h.send(Call::new(Method::POST, "/oauth/token").json(&json!({"grant_type": "client_credentials"}))).await;
    json_body.expect_code(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED");
    // Discovery.
    let meta = h.send(Call::new(Method::GET, "/.well-known/oauth-authorization-server")).await;
    meta.expect(StatusCode::OK);
    assert_eq!(meta.body["issuer"], ISSUER);
    assert_eq!(meta.body["token_endpoint"], format!("{ISSUER}/oauth/token"));
    assert_eq!(meta.body["jwks_uri"], format!("{ISSUER}/.well-known/jwks.json"));
    assert!(meta.body["grant_types_supported"].as_array().unwrap().contains(&json!(EXCHANGE)));
}

async fn token_exchange_for_an_agent(backend: Backend) {
    let h = harness(backend).await;
    let maya = h.user("maya", "encore").await;
    let reg = h.send(Call::new(Method::PUT, "/v1/companies/encore/agents/helper").bearer(Some(&maya))).await;
    reg.expect(StatusCode::OK);
    let (client_id, secret) = (reg.body["client_id"].as_str().unwrap(), reg.body["client_secret"].as_str().unwrap());
    let expires = "2026-04-01T00:00:00Z";
    let created = h
        .json(
            Method::POST,
            "/v1/companies/encore/delegations",
            &maya,
            json!({"to": {"agent": "helper"}, "grants": ["finance:invoice:read"], "expires_at": expires}),
        )
        .await;
    created.expect(StatusCode::CREATED);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let exchange = |subject: String| {
        Call::new(Method::POST, "/oauth/token").header("authorization", &basic(client_id, secret)).form(&[
            ("grant_type", EXCHANGE),
            ("subject_token", subject.as_str()),
            ("subject_token_type", ACCESS_TOKEN),
        ])
    };
    // Leo delegated nothing to the agent: it may not act for him.
    let leo = h.user("leo", "encore").await;
    let refused = h.send(exchange(leo.clone())).await;
    refused.expect_code(StatusCode::UNAUTHORIZED, "TOKEN_INVALID");
    assert_eq!(refused.body["error"], "invalid_grant");
    // Once he delegates something else, acting for Maya still uses only what Maya delegated (no confused
    // deputy), and acting for Leo only what Leo delegated.
    h.json(
        Method::POST,
        "/v1/companies/encore/delegations",
        &leo,
        json!({"to": {"agent": "helper"}, "grants": ["artist:profile:read"], "expires_at": expires}),
    )
    .await
    .expect(StatusCode::CREATED);
    let for_leo = h.send(exchange(leo.clone())).await;
    for_leo.expect(StatusCode::OK);
    let for_leo = for_leo.body["access_token"].as_str().unwrap().to_owned();
    let me = h.get("/v1/me/access", &for_leo).await;
    assert_eq!(me.body["permissions"], json!(["artist:profile:read"]));
    // Company-wide reads are never delegable: with `core:member:read` delegated to the agent by Maya,
    // its token acting for Leo still reads neither who-can nor the audit log.
    let reader = h
        .json(
            Method::POST,
            "/v1/companies/encore/delegations",
            &maya,
            json!({"to": {"agent": "helper"}, "grants": ["core:member:read"], "expires_at": expires}),
        )
        .await;
    reader.expect(StatusCode::CREATED);
    for path in ["/v1/access/who-can?company=encore&permission=finance:invoice:read", "/v1/companies/encore/audit"] {
        h.get(path, &for_leo).await.expect_code(StatusCode::FORBIDDEN, "FORBIDDEN");
    }
    let reader = format!("/v1/companies/encore/delegations/{}", reader.body["id"].as_str().unwrap());
    h.send(Call::new(Method::DELETE, &reader).bearer(Some(&maya))).await.expect(StatusCode::NO_CONTENT);
    let a = h.send(exchange(maya.clone())).await;
    a.expect(StatusCode::OK);
    assert_eq!(a.body["issued_token_type"], ACCESS_TOKEN);
    let acting = a.body["access_token"].as_str().unwrap().to_owned();
    let claims = h.verifier().await.verify(&acting, Accept::User, h.clock_now()).unwrap();
    assert_eq!(claims.claims().sub, "maya");
    assert_eq!(claims.claims().act.as_ref().unwrap().sub, "agent:helper");
    assert_eq!(claims.principal().unwrap().to_string(), "agent:helper");
    // Access is the agent's: only what was delegated.
    let me = h.get("/v1/me/access", &acting).await;
    me.expect(StatusCode::OK);
    assert_eq!(me.body["permissions"], json!(["finance:invoice:read"]));
    h.check(&acting, "agent:helper", "encore", "finance:invoice:read").await.expect(StatusCode::OK);
    // The agent cannot manage access with it.
    h.json(Method::PUT, "/v1/companies/encore/roles/x", &acting, json!({"grants": []}))
        .await
        .expect_code(StatusCode::FORBIDDEN, "FORBIDDEN");
    // A user token of another company, a wrong secret, a wrong token type.
    let leo_bluenote = h.user("maya", "bluenote").await;
    h.send(exchange(leo_bluenote)).await.expect(StatusCode::NOT_FOUND);
    let bad = h
        .send(Call::new(Method::POST, "/oauth/token").header("authorization", &basic(client_id, "wrong")).form(&[
            ("grant_type", EXCHANGE),
            ("subject_token", maya.as_str()),
            ("subject_token_type", ACCESS_TOKEN),
        ]))
        .await;
    assert_eq!(bad.body["error"], "invalid_client");
    h.send(exchange("not-a-token".into())).await.expect_code(StatusCode::UNAUTHORIZED, "TOKEN_INVALID");
    // An agent's client may not use client credentials.
    let cc = h
        .send(
            Call::new(Method::POST, "/oauth/token")
                .header("authorization", &basic(client_id, secret))
                .form(&[("grant_type", "client_credentials")]),
        )
        .await;
    assert_eq!(cc.body["error"], "unauthorized_client");
    // Revoked: the delegation no longer confers anything.
    h.send(Call::new(Method::DELETE, format!("/v1/companies/encore/delegations/{id}")).bearer(Some(&maya)))
        .await
        .expect(StatusCode::NO_CONTENT);
    let denied = h.check(&acting, "agent:helper", "encore", "finance:invoice:read").await;
    assert_eq!(denied.body["decision"], "deny");
    assert_eq!(denied.body["reason"], "PERMISSION_NOT_GRANTED");
    // Agents acting for agents: each needs Maya's delegation; at most three nested `act`; a fourth
    // exchange is refused, not a fault.
    let mut subject = maya.clone();
    for i in 1..=4 {
        let reg =
            h.send(Call::new(Method::PUT, format!("/v1/companies/encore/agents/chain{i}")).bearer(Some(&maya))).await;
        let (id, secret) = (reg.body["client_id"].as_str().unwrap(), reg.body["client_secret"].as_str().unwrap());
        h.json(
            Method::POST,
            "/v1/companies/encore/delegations",
            &maya,
            json!({"to": {"agent": format!("chain{i}")}, "grants": ["finance:invoice:read"], "expires_at": expires}),
        )
        .await
        .expect(StatusCode::CREATED);
        let a = h
            .send(Call::new(Method::POST, "/oauth/token").header("authorization", &basic(id, secret)).form(&[
                ("grant_type", EXCHANGE),
                ("subject_token", subject.as_str()),
                ("subject_token_type", ACCESS_TOKEN),
            ]))
            .await;
        if i < 4 {
            a.expect(StatusCode::OK);
            subject = a.body["access_token"].as_str().unwrap().to_owned();
        } else {
            a.expect_code(StatusCode::UNAUTHORIZED, "TOKEN_INVALID");
            assert_eq!(a.body["error"], "invalid_grant");
        }
    }
    // Unregistering an agent takes the delegations to it along (revoked ones included: they could never
    // confer anything again), and its client is gone with it.
    let temp = h.send(Call::new(Method::PUT, "/v1/companies/encore/agents/temp").bearer(Some(&maya))).await;
    temp.expect(StatusCode::OK);
    let (temp_id, temp_secret) =
        (temp.body["client_id"].as_str().unwrap(), temp.body["client_secret"].as_str().unwrap());
    let to_temp = json!({"to": {"agent": "temp"}, "grants": ["finance:invoice:read"], "expires_at": expires});
    let created = h.json(Method::POST, "/v1/companies/encore/delegations", &maya, to_temp.clone()).await;
    created.expect(StatusCode::CREATED);
    let revoked = format!("/v1/companies/encore/delegations/{}", created.body["id"].as_str().unwrap());
    h.send(Call::new(Method::DELETE, &revoked).bearer(Some(&maya))).await.expect(StatusCode::NO_CONTENT);
    h.json(Method::POST, "/v1/companies/encore/delegations", &maya, to_temp).await.expect(StatusCode::CREATED);
    h.send(Call::new(Method::DELETE, "/v1/companies/encore/agents/temp").bearer(Some(&maya)))
        .await
        .expect(StatusCode::NO_CONTENT);
    let docs = h.get("/v1/companies/encore/access", &maya).await;
    let delegations = docs.body["delegations"].as_array().unwrap();
    assert!(delegations.iter().all(|d| d["to"]["agent"] != "temp"), "{delegations:?}");
    assert!(delegations.iter().any(|d| d["to"]["agent"] == "helper"), "others stay");
    let gone = h
        .send(Call::new(Method::POST, "/oauth/token").header("authorization", &basic(temp_id, temp_secret)).form(&[
            ("grant_type", EXCHANGE),
            ("subject_token", maya.as_str()),
            ("subject_token_type", ACCESS_TOKEN),
        ]))
        .await;
    assert_eq!(gone.body["error"], "invalid_client");
    // Registering is creating: an agent that exists is a conflict, and its secret stays what it was.
    h.send(Call::new(Method::PUT, "/v1/companies/encore/agents/helper").bearer(Some(&maya)))
        .await
        .expect_code(StatusCode::CONFLICT, "CONFLICT");
    assert_eq!(client_id, "helper@encore", "client ids cannot collide across companies");
    h.json(
        Method::POST,
        "/v1/companies/encore/delegations",
        &maya,
        json!({"to": {"agent": "helper"}, "grants": ["finance:invoice:read"], "expires_at": expires}),
    )
    .await
    .expect(StatusCode::CREATED);
    h.send(exchange(maya.clone())).await.expect(StatusCode::OK);
    // Rotation: needs `core:agent:manage` (Leo, a booker, lacks it); the old secret stops at once.
    h.send(Call::new(Method::POST, "/v1/companies/encore/agents/helper/secret").bearer(Some(&leo)))
        .await
        .expect_code(StatusCode::FORBIDDEN, "FORBIDDEN");
    let rotated =
        h.send(Call::new(Method::POST, "/v1/companies/encore/agents/helper/secret").bearer(Some(&maya))).await;
    rotated.expect(StatusCode::OK);
    let new_secret = rotated.body["client_secret"].as_str().unwrap();
    assert_ne!(new_secret, secret);
    assert_eq!(h.send(exchange(maya.clone())).await.body["error"], "invalid_client");
    let renewed = h
        .send(Call::new(Method::POST, "/oauth/token").header("authorization", &basic(client_id, new_secret)).form(&[
            ("grant_type", EXCHANGE),
            ("subject_token", maya.as_str()),
            ("subject_token_type", ACCESS_TOKEN),
        ]))
        .await;
    renewed.expect(StatusCode::OK);
    h.send(Call::new(Method::POST, "/v1/companies/encore/agents/nobody/secret").bearer(Some(&maya)))
        .await
        .expect_code(StatusCode::NOT_FOUND, "NOT_FOUND");
}

async fn key_rotation(backend: Backend) {
    let h = harness(backend).await;
    let before = h.user("maya", "encore").await;
    let old_verifier = h.verifier().await;
    assert_eq!(old_verifier.jwks().len(), 1);
    // Users without `admin:key:rotate` may not; the platform client may.
    h.send(Call::new(Method::POST, "/admin/v1/keys/rotate").bearer(Some(&before))).await.expect(StatusCode::FORBIDDEN);
    let admin = h.service("admin:key:rotate").await;
    let rotated = h.send(Call::new(Method::POST, "/admin/v1/keys/rotate").bearer(Some(&admin))).await;
    rotated.expect(StatusCode::OK);
    assert!(rotated.version() > 0);
    let new_kid = rotated.body["kid"].as_str().unwrap().to_owned();
    let jwks = h.verifier().await;
    assert_eq!(jwks.jwks().len(), 2, "published before it signs, the old one kept");
    // During the lead the old key still signs; tokens of both verify throughout.
    let during = h.user("maya", "encore").await;
    h.get("/v1/me/access", &before).await.expect(StatusCode::OK);
    h.get("/v1/me/access", &during).await.expect(StatusCode::OK);
    h.clock.advance(6);
    let after = h.user("maya", "encore").await;
    let header: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, after.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["kid"], new_kid.as_str(), "the new key signs after the lead");
    h.get("/v1/me/access", &before).await.expect(StatusCode::OK);
    // Past the retired key's last token plus leeway it leaves the JWKS: its tokens are refused.
    h.clock.advance(kisum_token::RETIRED_KEEP_SECONDS);
    h.state.keys.ensure(&h.state.engine, h.clock_now()).await.unwrap();
    let fresh = h.verifier().await;
    assert_eq!(fresh.jwks().len(), 1);
    assert!(fresh.verify(&before, Accept::User, h.clock_now()).is_err());
    let events = h.feed(0).await;
    assert!(events.iter().filter(|e| e["kind"] == "keys").count() >= 2, "rotation and removal are on the feed");
}

/// The console's reads: another member's access for an admin, who could grant, the company's documents
/// as far as each caller may see them, and why a manifest is empty.
async fn what_a_frontend_reads(backend: Backend) {
    let h = harness(backend).await;
    let leo = h.user("leo", "encore").await;
    let maya = h.user("maya", "encore").await;
    let reader = h.service("auth:access:read").await;
    // An owner (allowed `core:member:read`) explores anyone of her company, never another company.
    let own = h.get("/v1/access/snapshot?principal=user:leo&company=encore", &leo).await;
    let by_owner = h.get("/v1/access/snapshot?principal=user:leo&company=encore", &maya).await;
    by_owner.expect(StatusCode::OK);
    assert_eq!(by_owner.body["permissions"], own.body["permissions"]);
    let check = h.check(&maya, "user:leo", "encore", "finance:invoice:approve").await;
    assert_eq!(check.body["reason"], "PERMISSION_NOT_GRANTED");
    h.get("/v1/access/snapshot?principal=user:sam&company=bluenote", &maya).await.expect(StatusCode::FORBIDDEN);
    let refused = h.get("/v1/access/snapshot?principal=user:maya&company=encore", &leo).await;
    refused.expect_code(StatusCode::FORBIDDEN, "FORBIDDEN");
    assert_eq!(refused.body["required"], "core:member:read");
    // Who could grant it: any member may ask; only active members holding the permission and
    // `core:member:invite` are named.
    let grantors = h.get("/v1/access/grantors?company=encore&permission=finance:invoice:approve", &leo).await;
    grantors.expect(StatusCode::OK);
    assert_eq!(grantors.body["principals"], json!(["user:maya"]));
    let by_service = h.get("/v1/access/grantors?company=encore&permission=artist:booking:create", &reader).await;
    assert_eq!(by_service.body["principals"], json!(["user:maya"]), "kai is suspended, leo cannot invite");
    // At an instant: who can and who could grant (kai's admin membership is suspended at every instant).
    let at = "/v1/access/grantors?company=encore&permission=artist:booking:create&at=2026-03-15T12:00:00Z";
    assert_eq!(h.get(at, &leo).await.body["principals"], json!(["user:maya"]));
    h.get("/v1/access/grantors?company=encore&permission=artist:booking:create&at=yesterday", &leo)
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    let who = "/v1/access/who-can?company=encore&permission=finance:invoice:read&at=2026-03-15T12:00:00Z";
    let then = h.get(who, &maya).await;
    assert!(
        then.body["principals"].as_array().unwrap().contains(&json!("user:leo")),
        "ines' delegation: {:?}",
        then.body
    );
    let who = "/v1/access/who-can?company=encore&permission=finance:invoice:read&at=2026-05-15T12:00:00Z";
    assert!(!h.get(who, &maya).await.body["principals"].as_array().unwrap().contains(&json!("user:leo")));
    h.get("/v1/access/grantors?company=bluenote&permission=finance:invoice:approve", &leo)
        .await
        .expect(StatusCode::NOT_FOUND);
    h.get("/v1/access/grantors?company=encore&permission=finance:nothing", &leo)
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    h.send(Call::new(Method::GET, "/v1/access/grantors?company=!!&permission=?"))
        .await
        .expect_code(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED");
    // The company's documents: everything for the owner, a member's view for leo.
    let all = h.get("/v1/companies/encore/access", &maya).await;
    all.expect(StatusCode::OK);
    assert_eq!(all.body["complete"], true);
    assert_eq!(all.body["delegations"].as_array().unwrap().len(), 3);
    let leo_row =
        |body: &Value| body["memberships"].as_array().unwrap().iter().find(|m| m["user"] == "leo").cloned().unwrap();
    assert_eq!(leo_row(&all.body)["restrictions"], json!(["promoters:event:delete"]));
    assert_eq!(all.body["roles"][0]["id"], "tour_accountant");
    assert_eq!(all.body["agents"][0]["id"], "copilot");
    let limited = h.get("/v1/companies/encore/access", &leo).await;
    limited.expect(StatusCode::OK);
    assert_eq!(limited.body["complete"], false);
    assert_eq!(limited.body["memberships"].as_array().unwrap().len(), 4);
    assert!(leo_row(&limited.body).get("restrictions").is_none_or(|r| r == &json!([])));
    let delegations = limited.body["delegations"].as_array().unwrap();
    assert_eq!(delegations.len(), 1, "only the one to leo: {delegations:?}");
    assert_eq!(delegations[0]["id"], "ines-to-leo");
    h.get("/v1/companies/bluenote/access", &leo).await.expect(StatusCode::NOT_FOUND);
    h.get("/v1/companies/encore/access", &h.service("finance:*").await).await.expect(StatusCode::FORBIDDEN);
    // A suspended member's manifest says why it is empty.
    let body = json!({"roles": ["booker"], "status": "suspended"});
    h.json(Method::PUT, "/v1/companies/encore/memberships/leo", &maya, body).await.expect(StatusCode::OK);
    let manifest = h.get("/v1/me/access", &leo).await;
    manifest.expect(StatusCode::OK);
    assert_eq!(manifest.body["denied"], "MEMBERSHIP_INACTIVE");
    assert_eq!(manifest.body["permissions"], json!([]));
    assert_eq!(h.get("/v1/me/access", &maya).await.body["denied"], Value::Null);
}

async fn access_decisions_by_caller(backend: Backend) {
    let h = harness(backend).await;
    let leo = h.user("leo", "encore").await;
    let reader = h.service("auth:access:read").await;
    let other = h.service("finance:*").await;
    // Snapshot: about itself, or by a reading service.
    let own = h.get("/v1/access/snapshot?principal=user:leo&company=encore", &leo).await;
    own.expect(StatusCode::OK);
    for field in ["principal", "company", "version", "valid_until", "permissions", "scoped", "entitlements"] {
        assert!(own.body.get(field).is_some(), "{field}");
    }
    let by_service = h.get("/v1/access/snapshot?principal=user:leo&company=encore", &reader).await;
    assert_eq!(by_service.body["permissions"], own.body["permissions"]);
    h.get("/v1/access/snapshot?principal=user:maya&company=encore", &leo)
        .await
        .expect_code(StatusCode::FORBIDDEN, "FORBIDDEN");
    h.get("/v1/access/snapshot?principal=user:leo&company=bluenote", &leo).await.expect(StatusCode::FORBIDDEN);
    h.get("/v1/access/snapshot?principal=user:leo&company=encore", &other).await.expect(StatusCode::FORBIDDEN);
    h.get("/v1/access/snapshot?principal=leo&company=encore", &reader).await.expect(StatusCode::UNPROCESSABLE_ENTITY);
    h.send(Call::new(Method::GET, "/v1/access/snapshot?principal=user:leo&company=encore"))
        .await
        .expect_code(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED");
    // Check: the CLI's JSON; 200 for deny too; an undeclared permission is 422.
    let allow = h.check(&reader, "user:maya", "encore", "finance:invoice:approve").await;
    allow.expect(StatusCode::OK);
    assert_eq!(allow.body["decision"], "allow");
    assert!(allow.body["explain"]["roles"].is_array());
    let deny = h.check(&reader, "user:nobody", "encore", "finance:invoice:read").await;
    assert_eq!(deny.body["reason"], "NOT_A_MEMBER");
    h.check(&reader, "user:maya", "encore", "finance:nothing:here")
        .await
        .expect_code(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED");
    h.check(&reader, "user:maya", "encore", "Bad Key").await.expect(StatusCode::UNPROCESSABLE_ENTITY);
    // Batch: in order, at most 1000.
    let one = json!({"principal": "user:maya", "company": "encore", "permission": "finance:invoice:read"});
    let two = json!({"principal": "user:leo", "company": "encore", "permission": "finance:invoice:approve"});
    let batch = h.json(Method::POST, "/v1/access/check-batch", &reader, json!({"checks": [one, two]})).await;
    batch.expect(StatusCode::OK);
    let results = batch.body["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["decision"], "allow");
    let too_many: Vec<Value> =
        (0..=kisum_auth::MAX_BATCH).map(|_| json!({"principal":"user:a","company":"b","permission":"c:d:e"})).collect();
    let over = h.json(Method::POST, "/v1/access/check-batch", &reader, json!({"checks": too_many})).await;
    assert!(
        matches!(over.status, StatusCode::UNPROCESSABLE_ENTITY | StatusCode::PAYLOAD_TOO_LARGE),
        "{:?}",
        over.status
    );
    // Who can: services with the scope, members with core:member:read; others learn nothing.
    let who = h.get("/v1/access/who-can?company=encore&permission=finance:invoice:approve", &reader).await;
    who.expect(StatusCode::OK);
    assert!(who.body["principals"].as_array().unwrap().contains(&json!("user:maya")));
    let maya = h.user("maya", "encore").await;
    h.get("/v1/access/who-can?company=encore&permission=finance:invoice:approve", &maya).await.expect(StatusCode::OK);
    h.get("/v1/access/who-can?company=globex&permission=finance:invoice:approve", &maya)
        .await
        .expect(StatusCode::NOT_FOUND);
    // The manifest.
    let me = h.get("/v1/me/access", &leo).await;
    me.expect(StatusCode::OK);
    for field in ["modules", "features", "limits", "permissions", "version", "valid_until"] {
        assert!(me.body.get(field).is_some(), "{field}");
    }
    h.get("/v1/me/access", &reader).await.expect(StatusCode::UNAUTHORIZED);
}

async fn access_writes_and_their_errors(backend: Backend) {
    let h = harness(backend).await;
    let maya = h.user("maya", "encore").await;
    let leo = h.user("leo", "encore").await;
    let put = |who: &str, user: &str, body: Value| {
        Call::new(Method::PUT, format!("/v1/companies/encore/memberships/{user}")).bearer(Some(who)).json(&body)
    };
    // The owner suspends leo; leo's decisions change at once, and the write answers its version.
    let w = h.send(put(&maya, "leo", json!({"roles": ["booker"], "status": "suspended"}))).await;
    w.expect(StatusCode::OK);
    assert!(w.version() > 0);
    let reader = h.service("auth:access:read").await;
    assert_eq!(
        h.check(&reader, "user:leo", "encore", "artist:profile:read").await.body["reason"],
        "MEMBERSHIP_INACTIVE"
    );
    h.get("/v1/me/access", &leo).await.expect(StatusCode::OK);
    h.send(put(&maya, "leo", json!({"roles": ["booker"]}))).await.expect(StatusCode::OK);
    // A company the caller is not in: 404; a malformed company: 404.
    h.send(
        Call::new(Method::PUT, "/v1/companies/globex/memberships/leo").bearer(Some(&maya)).json(&json!({"roles": []})),
    )
    .await
    .expect_code(StatusCode::NOT_FOUND, "NOT_FOUND");
    // A rule the actor breaks: leo cannot make himself owner.
    h.send(put(&leo, "leo", json!({"roles": ["owner"]}))).await.expect_code(StatusCode::FORBIDDEN, "FORBIDDEN");
    // Last owner: 409.
    h.send(put(&maya, "maya", json!({"roles": ["viewer"]}))).await.expect_code(StatusCode::CONFLICT, "CONFLICT");
    h.send(Call::new(Method::DELETE, "/v1/companies/encore/memberships/maya").bearer(Some(&maya)))
        .await
        .expect_code(StatusCode::CONFLICT, "CONFLICT");
    // Invalid documents: one error per problem.
    let invalid = h.send(put(&maya, "leo", json!({"roles": ["no_such_role"], "restrictions": ["Bad Pattern"]}))).await;
    invalid.expect_code(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED");
    assert!(!invalid.body["errors"].as_array().unwrap().is_empty());
    h.send(put(&maya, "leo", json!({"roles": [], "bogus": 1}))).await.expect(StatusCode::UNPROCESSABLE_ENTITY);
    // Nested objects are objects too: serde's array form of a struct is refused where it is.
    let arrays = [
        ("/v1/access/check-batch", json!({"checks": [["user:maya", "encore", "finance:invoice:read"]]}), "/checks/0"),
        (
            "/v1/companies/encore/delegations",
            json!({"to": {"user": "leo"}, "grants": ["finance:invoice:read"], "expires_at": "2026-04-01T00:00:00Z",
                   "resources": [["encore", "invoice", "encore-1"]]}),
            "/resources/0",
        ),
    ];
    for (path, body, at) in arrays {
        let refused = h.json(Method::POST, path, &maya, body).await;
        refused.expect_code(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED");
        assert_eq!(refused.body["errors"][0]["path"], at, "{}", refused.text);
    }
    // Seats: an override sets encore's seats to the active memberships it has; activating one more is
    // LIMIT_EXCEEDED naming `core.seats`.
    let active = h.get("/v1/access/who-can?company=encore&permission=core:company:read", &reader).await;
    let n = active.body["principals"].as_array().unwrap().len();
    let seats = kisum_access::Change::AddOverride {
        company: "encore".parse().unwrap(),
        item: serde_json::from_value(
            json!({"id": "seats", "effect": "grant", "limit": "core.seats", "value": n, "reason": "test"}),
        )
        .unwrap(),
    };
    h.state.engine.write(&kisum_access::Actor::Platform, h.clock_now(), seats).await.unwrap();
    h.send(put(&maya, "kai", json!({"roles": ["viewer"], "status": "invited"}))).await.expect(StatusCode::OK);
    let full = h.send(put(&maya, "kai", json!({"roles": ["viewer"]}))).await;
    full.expect_code(StatusCode::FORBIDDEN, "LIMIT_EXCEEDED");
    assert_eq!(full.body["required"], "core.seats");
    // Roles.
    h.json(
        Method::PUT,
        "/v1/companies/encore/roles/night_crew",
        &maya,
        json!({"grants": ["promoters:event:read"], "inherits": ["member"]}),
    )
    .await
    .expect(StatusCode::OK);
    h.json(Method::PUT, "/v1/companies/encore/roles/loop", &maya, json!({"grants": [], "inherits": ["loop"]}))
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    h.send(Call::new(Method::DELETE, "/v1/companies/encore/roles/night_crew").bearer(Some(&maya)))
        .await
        .expect(StatusCode::NO_CONTENT);
    h.send(Call::new(Method::DELETE, "/v1/companies/encore/roles/night_crew").bearer(Some(&maya)))
        .await
        .expect(StatusCode::NOT_FOUND);
    // Delegations: an id clash is 409; only the delegator revokes.
    let body = json!({"id": "d-test", "to": {"user": "leo"}, "grants": ["finance:invoice:read"], "expires_at": "2026-04-01T00:00:00Z"});
    h.json(Method::POST, "/v1/companies/encore/delegations", &maya, body.clone()).await.expect(StatusCode::CREATED);
    h.json(Method::POST, "/v1/companies/encore/delegations", &maya, body)
        .await
        .expect_code(StatusCode::CONFLICT, "CONFLICT");
    h.send(Call::new(Method::DELETE, "/v1/companies/encore/delegations/d-test").bearer(Some(&leo)))
        .await
        .expect_code(StatusCode::FORBIDDEN, "FORBIDDEN");
    let too_long =
        json!({"to": {"user": "leo"}, "grants": ["finance:invoice:read"], "expires_at": "2027-04-01T00:00:00Z"});
    h.json(Method::POST, "/v1/companies/encore/delegations", &maya, too_long)
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    // Delegating what one may not pass on.
    let escalate =
        json!({"to": {"user": "maya"}, "grants": ["finance:invoice:approve"], "expires_at": "2026-04-01T00:00:00Z"});
    h.json(Method::POST, "/v1/companies/encore/delegations", &leo, escalate)
        .await
        .expect_code(StatusCode::FORBIDDEN, "FORBIDDEN");
    // The audit log: members with core:member:read.
    let audit = h.get("/v1/companies/encore/audit?after=0", &maya).await;
    audit.expect(StatusCode::OK);
    let records = audit.body["records"].as_array().unwrap();
    assert!(
        records.iter().any(|r| r["kind"] == "put_membership" && r["actor"] == json!({"user": "maya"})),
        "{records:#?}"
    );
    h.get("/v1/companies/encore/audit", &leo).await.expect(StatusCode::FORBIDDEN);
    h.get("/v1/companies/bluenote/audit", &maya).await.expect(StatusCode::NOT_FOUND);
}

/// DESIGN.md §4 "Writes", row by row, over HTTP: each management permission allowed and refused, no
/// escalation, no self-widening, and a paused plan that opens nothing.
async fn the_management_table_over_http(backend: Backend) {
    let h = harness(backend).await;
    let maya = h.user("maya", "encore").await;
    let leo = h.user("leo", "encore").await;
    let put = |who: &str, user: &str, body: Value| {
        Call::new(Method::PUT, format!("/v1/companies/encore/memberships/{user}")).bearer(Some(who)).json(&body)
    };
    let delete = |who: &str, path: &str| Call::new(Method::DELETE, path.to_owned()).bearer(Some(who));
    let refused = |a: &Answer, required: &str| {
        a.expect_code(StatusCode::FORBIDDEN, "FORBIDDEN");
        assert_eq!(a.body["required"], required, "{}", a.text);
    };
    // Leo, a booker, holds no management permission: every management write is refused, naming it.
    refused(&h.send(put(&leo, "sam", json!({"roles": ["member"], "status": "invited"}))).await, "core:member:invite");
    let ines = json!({"roles": ["tour_accountant"], "status": "suspended"});
    refused(&h.send(put(&leo, "ines", ines.clone())).await, "core:member:remove");
    refused(&h.send(delete(&leo, "/v1/companies/encore/memberships/ines")).await, "core:member:remove");
    let role = json!({"grants": ["artist:profile:read"]});
    refused(&h.json(Method::PUT, "/v1/companies/encore/roles/crew", &leo, role.clone()).await, "core:role:manage");
    let agent = Call::new(Method::PUT, "/v1/companies/encore/agents/scout").bearer(Some(&leo));
    refused(&h.send(agent).await, "core:agent:manage");
    h.send(Call::new(Method::PUT, "/v1/companies/encore/agents/scout").bearer(Some(&maya)))
        .await
        .expect(StatusCode::OK);
    let rotate = Call::new(Method::POST, "/v1/companies/encore/agents/scout/secret").bearer(Some(&leo));
    refused(&h.send(rotate).await, "core:agent:manage");
    refused(&h.send(delete(&leo, "/v1/companies/encore/agents/scout")).await, "core:agent:manage");
    // A restricted member does not lift its own restriction; a member neither extends nor drops its end.
    let own = |body: Value| put(&leo, "leo", body);
    h.send(put(
        &maya,
        "leo",
        json!({"roles": ["booker"], "restrictions": ["artist:booking:create"], "expires_at": "2026-03-30T00:00:00Z"}),
    ))
    .await
    .expect(StatusCode::OK);
    for body in [
        json!({"roles": ["booker"], "expires_at": "2026-03-30T00:00:00Z"}),
        json!({"roles": ["booker"], "restrictions": ["artist:booking:create"], "expires_at": "2026-04-30T00:00:00Z"}),
        json!({"roles": ["booker"], "restrictions": ["artist:booking:create"]}),
        json!({"roles": ["booker", "owner"], "restrictions": ["artist:booking:create"], "expires_at": "2026-03-30T00:00:00Z"}),
    ] {
        let a = h.send(own(body)).await;
        a.expect_code(StatusCode::FORBIDDEN, "FORBIDDEN");
        assert!(a.body["detail"].as_str().unwrap().contains("its own membership"), "{}", a.text);
    }
    // Narrowing one's own needs nothing.
    h.send(own(
        json!({"roles": ["booker"], "restrictions": ["artist:booking:create"], "expires_at": "2026-03-25T00:00:00Z"}),
    ))
    .await
    .expect(StatusCode::OK);

    // The owner makes Leo a people manager: he may invite and remove, within what he holds himself.
    h.json(
        Method::PUT,
        "/v1/companies/encore/roles/people",
        &maya,
        json!({"grants": ["core:member:invite", "core:member:remove", "core:member:read"]}),
    )
    .await
    .expect(StatusCode::OK);
    h.send(put(&maya, "leo", json!({"roles": ["booker", "people"]}))).await.expect(StatusCode::OK);
    h.send(put(&leo, "sam", json!({"roles": ["member"], "status": "invited"}))).await.expect(StatusCode::OK);
    // Never more than he holds: a viewer reads invoices, which a booker does not.
    refused(&h.send(put(&leo, "sam", json!({"roles": ["viewer"], "status": "invited"}))).await, "finance:invoice:read");
    let owner = h.send(put(&leo, "sam", json!({"roles": ["owner"], "status": "invited"}))).await;
    owner.expect_code(StatusCode::FORBIDDEN, "FORBIDDEN");
    assert!(owner.body["detail"].as_str().unwrap().contains("does not hold itself"), "{}", owner.text);
    // He suspends Ines, but may not make her active again: she holds what he does not.
    h.send(put(&leo, "ines", ines)).await.expect(StatusCode::OK);
    let back = h.send(put(&leo, "ines", json!({"roles": ["tour_accountant"]}))).await;
    back.expect_code(StatusCode::FORBIDDEN, "FORBIDDEN");
    h.send(put(&maya, "ines", json!({"roles": ["tour_accountant"]}))).await.expect(StatusCode::OK);
    // He ends Kai's membership; the record stays, `removed`.
    h.send(delete(&leo, "/v1/companies/encore/memberships/kai")).await.expect(StatusCode::NO_CONTENT);
    let audit = h.get("/v1/companies/encore/audit?after=0", &maya).await;
    let ended = audit.body["records"].as_array().unwrap().iter().any(|r| r["kind"] == "end_membership");
    assert!(ended, "{}", audit.text);

    // A paused plan entitles nothing, and opens nothing: a member still may not make itself or a peer
    // owner; the owner still administers.
    let pause = kisum_access::Change::UpdateSubscription {
        company: "encore".parse().unwrap(),
        subscription: "enc-pro".parse().unwrap(),
        patch: serde_json::from_value(json!({"status": "paused"})).unwrap(),
    };
    h.state.engine.write(&kisum_access::Actor::Platform, h.clock_now(), pause).await.unwrap();
    let paused = h.get("/v1/me/access", &leo).await;
    assert!(!paused.body["modules"].as_array().unwrap().iter().any(|m| m == "touring"), "{}", paused.text);
    h.send(own(json!({"roles": ["owner"]}))).await.expect_code(StatusCode::FORBIDDEN, "FORBIDDEN");
    h.send(put(&leo, "ines", json!({"roles": ["owner"]}))).await.expect_code(StatusCode::FORBIDDEN, "FORBIDDEN");
    h.json(Method::PUT, "/v1/companies/encore/roles/crew", &maya, role).await.expect(StatusCode::OK);
}

/// Agent client ids are `agent@company`: dotted ids of two companies cannot meet (they did as
/// `agent.{company}.{agent}`: `seca`/`io.bot` and `seca.io`/`bot`).
async fn agent_client_ids_do_not_collide(backend: Backend) {
    let h = harness(backend).await;
    for id in ["seca", "seca.io"] {
        let create = kisum_access::Change::CreateCompany {
            company: serde_json::from_value(json!({"id": id})).unwrap(),
            owner: "sam".parse().unwrap(),
        };
        h.state.engine.write(&kisum_access::Actor::Platform, h.clock_now(), create).await.unwrap();
    }
    let seca = h.user("sam", "seca").await;
    let seca_io = h.user("sam", "seca.io").await;
    let a = h.send(Call::new(Method::PUT, "/v1/companies/seca/agents/io.bot").bearer(Some(&seca))).await;
    a.expect(StatusCode::OK);
    let b = h.send(Call::new(Method::PUT, "/v1/companies/seca.io/agents/bot").bearer(Some(&seca_io))).await;
    b.expect(StatusCode::OK);
    assert_ne!(a.body["client_id"], b.body["client_id"]);
    // Removing one leaves the other's client whole: its secret still authenticates (the exchange then
    // fails on the missing delegation, not on the client).
    h.send(Call::new(Method::DELETE, "/v1/companies/seca.io/agents/bot").bearer(Some(&seca_io)))
        .await
        .expect(StatusCode::NO_CONTENT);
    let exchange = h
        .send(
            Call::new(Method::POST, "/oauth/token")
                .header(
                    "authorization",
                    &basic(a.body["client_id"].as_str().unwrap(), a.body["client_secret"].as_str().unwrap()),
                )
                .form(&[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
                    ("subject_token", seca.as_str()),
                    ("subject_token_type", "urn:ietf:params:oauth:token-type:access_token"),
                ]),
        )
        .await;
    assert_eq!(exchange.body["error"], "invalid_grant", "{}", exchange.text);
    // A body over the limit on the token endpoint is a problem too.
    let big = format!("grant_type=client_credentials&pad={}", "x".repeat(70_000));
    let too_big = h.send(Call::new(Method::POST, "/oauth/token").raw("application/x-www-form-urlencoded", &big)).await;
    too_big.expect_code(StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE");
}

async fn the_change_feed(backend: Backend) {
    let h = harness(backend).await;
    let maya = h.user("maya", "encore").await;
    let start = h.state.engine.seq();
    let w = h
        .send(
            Call::new(Method::PUT, "/v1/companies/encore/memberships/leo")
                .bearer(Some(&maya))
                .json(&json!({"roles": ["viewer"]})),
        )
        .await;
    w.expect(StatusCode::OK);
    let events = h.feed(start).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["seq"], w.version());
    assert_eq!(events[0]["kind"], "access");
    assert_eq!(events[0]["company"], "encore");
    assert!(events[0]["principals"].as_array().unwrap().contains(&json!("user:leo")));
    // Only reading services.
    h.send(Call::new(Method::GET, "/v1/changes").bearer(Some(&maya))).await.expect(StatusCode::FORBIDDEN);
    let finance = h.service("finance:*").await;
    h.send(Call::new(Method::GET, "/v1/changes").bearer(Some(&finance))).await.expect(StatusCode::FORBIDDEN);
    // Past retention: 410 with where to resume.
    let head = h.state.engine.checkpoint().await.unwrap();
    h.state.engine.store().prune(head).await.unwrap();
    let token = h.service("auth:access:read").await;
    let gone = h
        .send(Call::new(Method::GET, "/v1/changes?after=0").bearer(Some(&token)).header("accept", "application/json"))
        .await;
    gone.expect_code(StatusCode::GONE, "RESYNC_REQUIRED");
    assert!(gone.body["resume_after"].as_u64().unwrap() >= head.saturating_sub(1));
    let sse = h.send(Call::new(Method::GET, "/v1/changes").bearer(Some(&token)).header("last-event-id", "0")).await;
    sse.expect(StatusCode::GONE);
    h.send(Call::new(Method::GET, "/v1/changes").bearer(Some(&token)).header("last-event-id", "x"))
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
}

async fn read_your_writes(backend: Backend) {
    let h = harness(backend).await;
    let leo = h.user("leo", "encore").await;
    let seq = h.state.engine.seq();
    let call =
        |n: u64| Call::new(Method::GET, "/v1/me/access").bearer(Some(&leo)).header("kisum-at-least", &n.to_string());
    h.send(call(seq)).await.expect(StatusCode::OK);
    h.send(call(seq + 1000)).await.expect_code(StatusCode::SERVICE_UNAVAILABLE, "UPSTREAM_UNAVAILABLE");
    h.send(Call::new(Method::GET, "/v1/me/access").bearer(Some(&leo)).header("kisum-at-least", "soon"))
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
}

async fn two_replicas_on_one_store(backend: Backend) {
    let h = harness(backend).await;
    let (app_b, state_b) = replica(&h.url, h.clock.clone()).await;
    let follow_b = state_b.engine.follow(Duration::from_millis(100));
    let bg_b = kisum_auth::background(state_b.clone());
    // A session on A, its token used on B (the same keys).
    let maya = h.user("maya", "encore").await;
    let leo = h.user("leo", "encore").await;
    Call::new(Method::GET, "/v1/me/access").bearer(Some(&leo)).send(&app_b).await.expect(StatusCode::OK);
    // A write through A is decided by B within a second.
    let w = h
        .send(
            Call::new(Method::PUT, "/v1/companies/encore/memberships/leo")
                .bearer(Some(&maya))
                .json(&json!({"roles": ["viewer"], "status": "suspended"})),
        )
        .await;
    w.expect(StatusCode::OK);
    let reader = h.service("auth:access:read").await;
    let body = json!({"principal": "user:leo", "company": "encore", "permission": "promoters:event:read"});
    let on_b = Call::new(Method::POST, "/v1/access/check")
        .bearer(Some(&reader))
        .header("kisum-at-least", &w.version().to_string())
        .json(&body)
        .send(&app_b)
        .await;
    on_b.expect(StatusCode::OK);
    assert_eq!(on_b.body["reason"], "MEMBERSHIP_INACTIVE");
    // A write through Core (another engine on the same store) is decided by B too.
    let core = kisum_store::Engine::open(kisum_store::connect(&h.url).await.unwrap(), None).await.unwrap();
    let revoke_finance = kisum_access::Change::AddOverride {
        company: "encore".parse().unwrap(),
        item: serde_json::from_value(
            json!({"id": "no-fin", "effect": "revoke", "module": "finance", "reason": "test"}),
        )
        .unwrap(),
    };
    let record = core.write(&kisum_access::Actor::Platform, h.clock_now(), revoke_finance).await.unwrap();
    let body = json!({"principal": "user:maya", "company": "encore", "permission": "finance:invoice:read"});
    let on_b = Call::new(Method::POST, "/v1/access/check")
        .bearer(Some(&reader))
        .header("kisum-at-least", &record.seq.to_string())
        .json(&body)
        .send(&app_b)
        .await;
    on_b.expect(StatusCode::OK);
    assert_eq!(on_b.body["reason"], "MODULE_NOT_ENTITLED");
    // A session revoked through A is refused by B within a second.
    h.send(Call::new(Method::POST, "/v1/sessions/revoke").bearer(Some(&maya))).await.expect(StatusCode::NO_CONTENT);
    let mut refused = false;
    for _ in 0..20 {
        let a = Call::new(Method::GET, "/v1/me/access").bearer(Some(&maya)).send(&app_b).await;
        if a.status == StatusCode::UNAUTHORIZED {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused, "B refuses the revoked session's token within a second");
    // A rotation through A: B verifies the new key's tokens within a second.
    let admin = h.service("admin:key:rotate").await;
    h.send(Call::new(Method::POST, "/admin/v1/keys/rotate").bearer(Some(&admin))).await.expect(StatusCode::OK);
    h.clock.advance(6);
    let after = h.user("ines", "encore").await;
    let mut verified = false;
    for _ in 0..20 {
        if Call::new(Method::GET, "/v1/me/access").bearer(Some(&after)).send(&app_b).await.status == StatusCode::OK {
            verified = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(verified, "B verifies tokens of the new key");
    follow_b.abort();
    bg_b.abort();
}

// ------------------------------------------------------------------------------------------------
// Property: random writes through HTTP leave Auth deciding exactly what a directory loaded from the
// resulting world decides.

#[test]
fn random_writes_through_http_match_a_reloaded_world() {
    use proptest::prelude::*;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let h = runtime.block_on(harness(Backend::Sqlite));
    let maya = runtime.block_on(h.user("maya", "encore"));
    let users = ["leo", "ines", "sam", "kai"];
    let roles = ["viewer", "booker", "admin", "finance_manager", "member", "venue_manager"];
    let statuses = ["active", "suspended", "invited", "removed"];
    let grants = ["finance:invoice:read", "venue:*", "artist:profile:read", "promoters:event:create"];
    let write = (0..4usize, 0..users.len(), 0..roles.len(), 0..statuses.len(), 0..grants.len());
    let config = ProptestConfig { cases: 12, failure_persistence: None, ..ProptestConfig::default() };
    proptest!(config, |(writes in proptest::collection::vec(write, 1..8))| {
        runtime.block_on(async {
            for (kind, u, r, s, g) in writes {
                let call = match kind {
                    0 => Call::new(Method::PUT, format!("/v1/companies/encore/memberships/{}", users[u]))
                        .json(&json!({"roles": [roles[r]], "status": statuses[s]})),
                    1 => Call::new(Method::PUT, format!("/v1/companies/encore/roles/custom{r}"))
                        .json(&json!({"grants": [grants[g]], "inherits": [roles[s % roles.len()]]})),
                    2 => Call::new(Method::POST, "/v1/companies/encore/delegations")
                        .json(&json!({"to": {"user": users[u]}, "grants": [grants[g]], "expires_at": "2026-04-01T00:00:00Z"})),
                    _ => Call::new(Method::DELETE, format!("/v1/companies/encore/memberships/{}", users[u])),
                };
                let a = h.send(call.bearer(Some(&maya))).await;
                // Refusals are fine (they must change nothing); faults are not.
                assert!(a.status.as_u16() < 500, "{:#}", a.body);
            }
        });
        let live = h.state.engine.directory();
        let reloaded = Directory::new(World::from_doc(&live.to_doc()).unwrap());
        let company: CompanyId = "encore".parse().unwrap();
        let catalog = live.catalog();
        for user in users.iter().chain(["maya"].iter()) {
            let p = Principal::parse(&format!("user:{user}")).unwrap();
            for key in catalog.doc().permissions.iter().map(|p| p.key.clone()) {
                let id = live.permission(&key).unwrap();
                let a = live.check(&p, &company, id, None, h.clock_now()).reason();
                let b = reloaded.check(&p, &company, reloaded.permission(&key).unwrap(), None, h.clock_now()).reason();
                prop_assert_eq!(a, b, "{} {}", p, key);
            }
        }
    });
}

/// A folder of its own for one test, removed when dropped.
struct Folder(std::path::PathBuf);

impl Folder {
    fn new(name: &str) -> Folder {
        let dir = std::env::temp_dir().join(format!(
            "kisum-{name}-{}-{}",
            std::process::id(),
            kisum_server::random::request_id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Folder(dir)
    }
}

impl Drop for Folder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An operator-chosen admin secret shorter than 32 characters is refused at start, naming the setting,
/// before anything is created.
#[tokio::test]
async fn a_short_admin_secret_is_refused_by_name() {
    let folder = Folder::new("short-secret");
    let boot = Boot {
        store: kisum_server::StoreConfig { data: folder.0.clone(), ..Default::default() },
        kek: Some(KEK.into()),
        admin_secret: Some("s3cr3t".into()),
        ..Boot::default()
    };
    let Err(error) = boot.open().await else { panic!("a 6-character secret was accepted") };
    let error = error.to_string();
    assert!(error.starts_with("KISUM_ADMIN_CLIENT_SECRET:"), "{error}");
    assert!(error.contains("at least 32 characters") && error.contains("this one has 6"), "{error}");
    assert!(!folder.0.join("kisum.db").exists(), "nothing was created");
}

/// API.md §1: a store that holds state is opened, never seeded, and needs no seed world; demo
/// credentials are told only where the demo world is in the store and its password still works.
#[tokio::test]
async fn restarts_open_the_store_as_it_is() {
    let demo_note = |o: &kisum_auth::boot::Opened| o.notes.iter().any(|n| n.starts_with("Demo users:"));
    // Seeded with a world of its own, then restarted with only `--data`: it opens, decisions unchanged.
    let custom = Folder::new("custom");
    let world = custom.0.join("world.json");
    let mut doc: Value = serde_json::from_str(kisum_auth::boot::DEMO_WORLD).unwrap();
    doc["users"] = json!([{"id": "zed"}]);
    doc["companies"] = json!([{"id": "zeta", "subscriptions": [{"id": "z1", "plan": {"package": "pro", "version": 2},
        "status": "active", "starts_at": "2026-01-01T00:00:00Z"}]}]);
    doc["memberships"] = json!([{"user": "zed", "company": "zeta", "status": "active", "roles": ["owner"]}]);
    doc["delegations"] = json!([]);
    doc["agents"] = json!([]);
    std::fs::write(&world, doc.to_string()).unwrap();
    let boot = |seed: Option<std::path::PathBuf>| Boot {
        store: kisum_server::StoreConfig {
            data: custom.0.clone(),
            seed_world: seed,
            seed_password: Some(PASSWORD.into()),
            ..Default::default()
        },
        kek: Some(KEK.into()),
        admin_secret: Some(ADMIN_SECRET.into()),
        ..Boot::default()
    };
    let first = boot(Some(world.clone())).open().await.unwrap();
    assert!(!demo_note(&first), "{:?}", first.notes);
    let zed = kisum_access::Principal::parse("user:zed").unwrap();
    let zeta: kisum_access::CompanyId = "zeta".parse().unwrap();
    let read = first.engine.directory().permission("core:company:read").unwrap();
    let before = first.engine.directory().check(&zed, &zeta, read, None, kisum_access::Timestamp::now());
    assert!(before.is_allowed());
    drop(first);
    let again = boot(None).open().await.unwrap();
    assert!(!demo_note(&again), "{:?}", again.notes);
    assert_eq!(again.engine.directory().check(&zed, &zeta, read, None, kisum_access::Timestamp::now()), before);
    assert!(!again.engine.directory().has_user(&"maya".parse().unwrap()), "never seeded twice");
    drop(again);
    // A seed world given for a store with state is ignored, with a warning.
    let demo = std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../demo/world.json"));
    let ignored = boot(Some(demo)).open().await.unwrap();
    assert!(ignored.notes.iter().any(|n| n.contains("was ignored")), "{:?}", ignored.notes);
    assert!(!ignored.engine.directory().has_user(&"maya".parse().unwrap()));
    drop(ignored);

    // The embedded default with the demo world: the credentials are told at every start while they work.
    let embedded = Folder::new("demo");
    let boot = Boot {
        store: kisum_server::StoreConfig { data: embedded.0.clone(), ..Default::default() },
        kek: Some(KEK.into()),
        admin_secret: Some(ADMIN_SECRET.into()),
        ..Boot::default()
    };
    assert!(demo_note(&boot.open().await.unwrap()));
    let reopened = boot.open().await.unwrap();
    assert!(demo_note(&reopened));
    // Once the demo password is changed, they are not.
    let maya: kisum_access::UserId = "maya".parse().unwrap();
    let hash = kisum_server::password::hash("something else entirely".into()).await.unwrap();
    let side = [kisum_store::SideWrite::SetPassword { user: maya.clone(), hash }];
    let change = kisum_access::Change::SetPassword { user: maya, end_sessions: true };
    reopened
        .engine
        .write_with(&kisum_access::Actor::Platform, kisum_access::Timestamp::now(), change, &side)
        .await
        .unwrap();
    drop(reopened);
    assert!(!demo_note(&boot.open().await.unwrap()));

    // A store of its own (`--db`) without a seed world starts with the catalog and nothing else.
    let own = Folder::new("own");
    let boot = Boot {
        store: kisum_server::StoreConfig {
            db: Some(kisum_server::DbUrl(format!("sqlite://{}", own.0.join("k.db").display()))),
            ..Default::default()
        },
        kek: Some(KEK.into()),
        admin_secret: Some(ADMIN_SECRET.into()),
        ..Boot::default()
    };
    let opened = boot.open().await.unwrap();
    assert!(!demo_note(&opened));
    assert!(opened.engine.directory().company_ids().is_empty());
    assert!(opened.engine.directory().permission("finance:invoice:read").is_ok(), "the catalog is there");
}

/// API.md §1 "Credentials under attack": 300 concurrent wrong client secrets (argon2id-hashed, the
/// operator-chosen `platform-admin` secret) are each answered 401 or 503 — never a hang, never anything
/// else — and a correct sign-in still succeeds during the flood (its queue is its own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_wrong_client_secrets_is_bounded() {
    let h = harness(Backend::Sqlite).await;
    let flood: Vec<_> = (0..300)
        .map(|i| {
            let app = h.app.clone();
            tokio::spawn(async move {
                Call::new(Method::POST, "/oauth/token")
                    .header("authorization", &basic("platform-admin", &format!("guess-{i}")))
                    .form(&[("grant_type", "client_credentials")])
                    .send(&app)
                    .await
            })
        })
        .collect();
    let signed_in = h.login("maya", PASSWORD).await;
    signed_in.expect(StatusCode::CREATED);
    let mut statuses = std::collections::BTreeMap::new();
    for answer in flood {
        let answer = answer.await.unwrap();
        assert!(
            matches!(answer.status, StatusCode::UNAUTHORIZED | StatusCode::SERVICE_UNAVAILABLE),
            "{} {}",
            answer.status,
            answer.text
        );
        if answer.status == StatusCode::SERVICE_UNAVAILABLE {
            assert!(answer.headers.contains_key("retry-after"));
            assert_eq!(answer.code(), "UPSTREAM_UNAVAILABLE");
        }
        *statuses.entry(answer.status.as_u16()).or_insert(0) += 1;
    }
    eprintln!("answers to 300 wrong secrets: {statuses:?}");
    // The right secret still works afterwards.
    h.service("admin:*").await;
}

/// docs/deploy.md, "PostgreSQL goes away", for Auth, through a fault-injecting TCP proxy (issue 17):
/// while it is cut, sign-ins and writes fail with 503 and change nothing, decisions keep answering from
/// memory, `/health/ready` is 503; once healed, writes go through again and another replica that reads
/// the store directly sees every acknowledged one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_going_away_under_auth() {
    let db = TestDb::new(Backend::Postgres).await;
    let proxy = kisum_tests::proxy::Proxy::start("127.0.0.1:5432".parse().unwrap()).await.unwrap();
    let url = db.url.replace("127.0.0.1:5432", &proxy.addr().to_string());
    assert_ne!(url, db.url, "the test database is on 127.0.0.1:5432");
    let clock = Arc::new(ManualClock::new(now()));
    let (app, state) = replica(&url, clock.clone()).await;
    let h = H { app, state, clock: clock.clone(), url: url.clone(), _db: db };
    let maya = h.user("maya", "encore").await;
    let reader = h.service("auth:access:read").await;
    let put = |roles: Value| {
        Call::new(Method::PUT, "/v1/companies/encore/memberships/leo")
            .bearer(Some(&maya))
            .json(&json!({"roles": roles}))
    };
    h.send(put(json!(["booker", "viewer"]))).await.expect(StatusCode::OK);
    let seq = h.state.engine.seq();

    proxy.cut();
    h.send(put(json!(["booker"]))).await.expect_code(StatusCode::SERVICE_UNAVAILABLE, "UPSTREAM_UNAVAILABLE");
    h.login("leo", PASSWORD).await.expect_code(StatusCode::SERVICE_UNAVAILABLE, "UPSTREAM_UNAVAILABLE");
    h.get("/v1/me/access", &maya).await.expect(StatusCode::OK);
    let check = h.check(&reader, "user:leo", "encore", "finance:invoice:read").await;
    check.expect(StatusCode::OK);
    assert_eq!(check.body["decision"], "allow", "the viewer role still holds: nothing changed");
    assert_eq!(h.send(Call::new(Method::GET, "/health/ready")).await.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(h.state.engine.seq(), seq, "the refused write changed nothing");

    proxy.heal();
    let started = std::time::Instant::now();
    let written = loop {
        let a = h.send(put(json!(["booker"]))).await;
        if a.status == StatusCode::OK {
            break a.version();
        }
        assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{}", a.text);
        assert!(started.elapsed() < Duration::from_secs(20), "writes never came back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    h.send(Call::new(Method::GET, "/health/ready")).await.expect(StatusCode::OK);
    // Another replica on the store itself has every acknowledged write.
    let (_, other) = replica(&h._db.url, clock).await;
    other.engine.sync().await.unwrap();
    assert!(other.engine.seq() >= written);
    let leo = kisum_access::Principal::parse("user:leo").unwrap();
    let read = other.engine.directory().permission("finance:invoice:read").unwrap();
    let encore: kisum_access::CompanyId = "encore".parse().unwrap();
    let decided = other.engine.directory().check(&leo, &encore, read, None, now());
    let here = h.state.engine.directory().check(&leo, &encore, read, None, now());
    assert_eq!(decided, here);
}

/// A feed stream that has caught up takes each change from the engine's subscription as it is installed;
/// one that fell further behind than the subscription buffers (4,096 changes) goes back to the log. Either
/// way every change arrives once, in order, with nothing skipped.
#[tokio::test]
async fn feed_streams_follow_the_engine_and_fall_back_to_the_log() {
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    let h = harness(Backend::Sqlite).await;
    let token = h.service("auth:access:read").await;
    let start = h.state.engine.seq();
    let request = axum::http::Request::get("/v1/changes")
        .header("authorization", format!("Bearer {token}"))
        .header("last-event-id", start.to_string())
        .body(axum::body::Body::empty())
        .unwrap();
    let response = h.app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let mut text = String::new();
    // The sequence numbers of the events read until `last` arrives (heartbeats skipped).
    let mut read_until = async |last: u64| -> Vec<u64> {
        let mut seqs = Vec::new();
        loop {
            while let Some(end) = text.find("\n\n") {
                let event: String = text.drain(..end + 2).collect();
                if let Some(id) = event.lines().find_map(|l| l.strip_prefix("id:")) {
                    seqs.push(id.trim().parse::<u64>().unwrap());
                }
            }
            if seqs.last() == Some(&last) {
                return seqs;
            }
            let frame = tokio::time::timeout(Duration::from_secs(30), body.frame()).await.unwrap().unwrap().unwrap();
            if let Ok(data) = frame.into_data() {
                text.push_str(std::str::from_utf8(&data).unwrap());
            }
        }
    };
    let add = |i: u64| kisum_access::Change::AddUser { user: format!("feed-user-{i}").parse().unwrap() };
    // Caught up: three changes, as they are installed.
    for i in 0..3 {
        h.state.engine.write(&kisum_access::Actor::Platform, h.clock_now(), add(i)).await.unwrap();
    }
    assert_eq!(read_until(start + 3).await, vec![start + 1, start + 2, start + 3]);
    // Not read while 4,200 more are written: the subscription lags, and the stream reads the log.
    let lagging = 4_200;
    for i in 3..3 + lagging {
        h.state.engine.write(&kisum_access::Actor::Platform, h.clock_now(), add(i)).await.unwrap();
    }
    let last = start + 3 + lagging;
    let seqs = read_until(last).await;
    assert_eq!(seqs, (start + 4..=last).collect::<Vec<_>>(), "every change once, in order");
    // Caught up again: the next change comes from the subscription.
    h.state.engine.write(&kisum_access::Actor::Platform, h.clock_now(), add(9_999)).await.unwrap();
    assert_eq!(read_until(last + 1).await, vec![last + 1]);
}
