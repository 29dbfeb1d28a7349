//! The in-process baselines of `scripts/load-core.sh` (BENCHMARKS.md): a company's entitlements straight
//! from the directory, and the same request through Core's router without a network (token verification
//! warm, JSON encoding included).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use criterion::{Criterion, criterion_group, criterion_main};
use kisum_access::Access;
use kisum_core::CoreState;
use kisum_entitlements::{ManualClock, Timestamp};
use kisum_server::Tokens;
use kisum_store::{Engine, connect};
use kisum_token::{Algorithm, Audience, Claims, Jwks, PrivateKey, Validation, Verifier, sign};
use tower::ServiceExt;

fn entitlements(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = std::env::temp_dir().join(format!("kisum-core-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("kisum.db").display());
    let world = serde_json::from_str(include_str!("../../demo/world.json")).unwrap();
    let engine =
        Arc::new(rt.block_on(async { Engine::open(connect(&url).await.unwrap(), Some(&world)).await.unwrap() }));
    let now = Timestamp::parse("2026-03-15T12:00:00Z").unwrap();
    let key = PrivateKey::generate(Algorithm::EdDSA, "k1").unwrap();
    let verifier =
        Verifier::new(Jwks::from_keys([&key]).unwrap(), Validation::new("http://127.0.0.1:7400", "kisum")).unwrap();
    let state = CoreState {
        engine: engine.clone(),
        tokens: Tokens::new(verifier, Arc::new(ManualClock::new(now))),
        platform_company: "kisum".parse().unwrap(),
    };
    let app = kisum_core::app(Arc::new(state));
    let claims = Claims {
        iss: "http://127.0.0.1:7400".into(),
        sub: "maya".into(),
        aud: Audience::One("kisum".into()),
        exp: now.unix_seconds() + 600,
        iat: now.unix_seconds(),
        jti: "bench".into(),
        nbf: None,
        cid: Some("encore".into()),
        sid: Some("s".into()),
        ver: Some(0),
        act: None,
        client_id: None,
        scope: None,
    };
    let token = format!("Bearer {}", sign(&key, &claims).unwrap());
    let encore = "encore".parse().unwrap();

    let mut g = c.benchmark_group("entitlements");
    g.bench_function("directory.entitlements + JSON (in process)", |b| {
        b.iter(|| serde_json::to_vec(&engine.directory().entitlements(black_box(&encore), now).unwrap()).unwrap())
    });
    g.bench_function("Core's router, no network (in process)", |b| {
        b.iter(|| {
            let request = Request::get("/v1/companies/encore/entitlements")
                .header("authorization", &token)
                .body(Body::empty())
                .unwrap();
            let response = rt.block_on(app.clone().oneshot(request)).unwrap();
            assert!(response.status().is_success());
            response
        })
    });
    g.finish();
    let _ = std::fs::remove_dir_all(dir);
}

criterion_group!(benches, entitlements);
criterion_main!(benches);
