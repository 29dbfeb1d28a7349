//! What each layer of a module server costs per request, in process (no network): a bare axum route,
//! the same route inside `kisum_server::finish` (request ids, trace, metrics, the request span), and the
//! finance module behind `kisum-client` and `finish` — each driven through `tower::ServiceExt::oneshot`
//! on one thread, alternating, with tracing's subscriber at `info` into a sink or (`KISUM_BENCH_LOGS=off`)
//! none. Run: `cargo bench -p kisum-platform --bench layers`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use axum::routing::get;
use kisum_access::{Directory, World};
use kisum_client::{Keys, Kisum, LocalSource, Revocations};
use kisum_entitlements::SystemClock;
use kisum_modules::Module;
use kisum_token::{Algorithm, Audience, Claims, Jwks, PrivateKey, Validation, Verifier};
use tower::ServiceExt;

fn main() {
    if std::env::var("KISUM_BENCH_LOGS").as_deref() != Ok("off") {
        // The servers' own format (`kisum_server::log_subscriber`), as on a server whose log is not a terminal.
        let filter = tracing_subscriber::EnvFilter::new("info");
        tracing::subscriber::set_global_default(kisum_server::log_subscriber(filter, std::io::sink, false)).unwrap();
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(run());
}

async fn per_request(app: &axum::Router, request: impl Fn() -> Request<Body>, n: u32) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        let response = app.clone().oneshot(request()).await.unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        let _ = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    }
    start.elapsed() / n
}

async fn run() {
    let doc = kisum_tests::demo_world();
    let key = PrivateKey::generate(Algorithm::EdDSA, "k1").unwrap();
    let validation = Validation::new("http://127.0.0.1:7400", "kisum");
    let verifier = Verifier::new(Jwks::from_keys([&key]).unwrap(), validation.clone()).unwrap();
    let keys = Arc::new(Keys::fixed(verifier, validation));
    let clock = Arc::new(SystemClock);
    let source = Arc::new(LocalSource::new(Arc::new(Directory::new(World::from_doc(&doc).unwrap())), clock.clone()));
    let kisum = Kisum::new(keys, source, Arc::new(Revocations::default()), clock);
    let companies: Vec<_> = doc.companies.iter().map(|c| c.id.parse().unwrap()).collect();
    let module = Module::Finance.router(kisum, &companies).await.unwrap();
    let now = kisum_entitlements::Timestamp::now().unix_seconds();
    let claims = Claims {
        iss: "http://127.0.0.1:7400".into(),
        sub: "maya".into(),
        aud: Audience::One("kisum".into()),
        exp: now + 900,
        iat: now,
        jti: "j1".into(),
        nbf: None,
        cid: Some("encore".into()),
        sid: Some("s1".into()),
        ver: Some(0),
        act: None,
        client_id: None,
        scope: None,
    };
    let token = kisum_token::sign(&key, &claims).unwrap();
    let body = axum::body::to_bytes(
        module
            .clone()
            .oneshot(
                Request::get("/v1/invoices")
                    .header("authorization", format!("Bearer {token}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap()
            .into_body(),
        1 << 20,
    )
    .await
    .unwrap();
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let bare = axum::Router::new().route(
        "/v1/invoices",
        get(move || {
            let a = answer.clone();
            async move { axum::Json(a) }
        }),
    );
    let finished = kisum_server::finish("bench", bare.clone());
    let plain = || Request::get("/v1/invoices").body(Body::empty()).unwrap();
    let authed =
        || Request::get("/v1/invoices").header("authorization", format!("Bearer {token}")).body(Body::empty()).unwrap();
    let n = 20_000;
    let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..5 {
        b.push(per_request(&finished, plain, n).await);
        a.push(per_request(&bare, plain, n).await);
        c.push(per_request(&module, authed, n).await);
    }
    for v in [&mut a, &mut b, &mut c] {
        v.sort();
    }
    println!("logs {}", std::env::var("KISUM_BENCH_LOGS").unwrap_or_else(|_| "info".into()));
    println!("bare axum route                    {:>8.2?} a request (median of 5 × {n})", a[2]);
    println!("the same inside kisum_server::finish {:>8.2?}", b[2]);
    println!("the finance module behind the SDK  {:>8.2?}", c[2]);
}
