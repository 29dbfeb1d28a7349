//! The in-process baselines of `scripts/load-auth.sh` (BENCHMARKS.md): a check and a snapshot straight from
//! the directory (with JSON encoding), and the same requests through Auth's router without a network
//! (token verification warm, JSON decoding and encoding included).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, missing_docs)]

use std::hint::black_box;
use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use criterion::{Criterion, criterion_group, criterion_main};
use kisum_access::{Access, Principal};
use kisum_auth::boot::Boot;
use kisum_auth::{AuthState, Settings};
use kisum_entitlements::{ManualClock, Timestamp};
use tower::ServiceExt;

const KEK: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

fn access(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = std::env::temp_dir().join(format!("kisum-auth-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let now = Timestamp::parse("2026-03-15T12:00:00Z").unwrap();
    let boot = Boot {
        store: kisum_server::StoreConfig { data: dir.to_path_buf(), ..Default::default() },
        kek: Some(KEK.into()),
        admin_secret: Some("bench-admin-secret-0123456789abcdef".into()),
        ..Boot::default()
    };
    let state = rt.block_on(async {
        let opened = boot.open().await.unwrap();
        let settings = Settings::new("http://127.0.0.1:7400", "kisum".parse().unwrap());
        AuthState::open(opened.engine, opened.kek, settings, Arc::new(ManualClock::new(now))).await.unwrap()
    });
    let app = kisum_auth::app(state.clone());
    let token = rt.block_on(async {
        let form = "grant_type=client_credentials&scope=auth:access:read";
        let basic = "Basic cGxhdGZvcm0tYWRtaW46YmVuY2gtYWRtaW4tc2VjcmV0LTAxMjM0NTY3ODlhYmNkZWY="; // platform-admin:bench-admin-secret-0123456789abcdef
        let request = Request::post("/oauth/token")
            .header("authorization", basic)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(form))
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let bytes = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
        let answer: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        format!("Bearer {}", answer["access_token"].as_str().unwrap())
    });
    let directory = state.engine.directory().clone();
    let maya = Principal::parse("user:maya").unwrap();
    let encore = "encore".parse().unwrap();
    let permission = directory.permission("finance:invoice:approve").unwrap();
    let check = r#"{"principal":"user:maya","company":"encore","permission":"finance:invoice:approve"}"#;

    let mut g = c.benchmark_group("auth");
    g.bench_function("directory.explain + JSON (in process)", |b| {
        b.iter(|| serde_json::to_vec(&directory.explain(black_box(&maya), &encore, permission, None, now)).unwrap())
    });
    g.bench_function("directory.wire_snapshot + JSON (in process)", |b| {
        b.iter(|| serde_json::to_vec(&directory.wire_snapshot(black_box(&maya), &encore, now)).unwrap())
    });
    g.bench_function("POST /v1/access/check, Auth's router, no network", |b| {
        b.iter(|| {
            let request = Request::post("/v1/access/check")
                .header("authorization", &token)
                .header("content-type", "application/json")
                .body(Body::from(check))
                .unwrap();
            let response = rt.block_on(app.clone().oneshot(request)).unwrap();
            assert!(response.status().is_success());
            response
        })
    });
    g.bench_function("GET /v1/access/snapshot, Auth's router, no network", |b| {
        b.iter(|| {
            let request = Request::get("/v1/access/snapshot?principal=user:maya&company=encore")
                .header("authorization", &token)
                .body(Body::empty())
                .unwrap();
            let response = rt.block_on(app.clone().oneshot(request)).unwrap();
            assert!(response.status().is_success());
            response
        })
    });
    g.finish();
    // What one sign-in costs at least: one argon2id verification (m = 19456 KiB, t = 2, p = 1).
    let hash = rt.block_on(kisum_server::password::hash("kisum-demo-password".into())).unwrap();
    let mut g = c.benchmark_group("sign-in");
    g.sample_size(20);
    g.bench_function("argon2id verification (in process, one thread)", |b| {
        b.iter(|| {
            rt.block_on(kisum_server::password::verify(
                kisum_server::password::Queue::Password,
                "kisum-demo-password".into(),
                hash.clone(),
            ))
        })
    });
    g.finish();
    let _ = std::fs::remove_dir_all(dir);
}

criterion_group!(benches, access);
criterion_main!(benches);
