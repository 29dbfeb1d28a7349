//! The copilot's answer latency (issue 20), with the deterministic planner: `POST /v1/copilot/ask` through
//! the ai module's router, its lookups going over loopback HTTP to the venue module (as deployed), side
//! by side in the same run with the baseline — the same lookup (`GET /v1/venues` over loopback with the
//! same token) made directly. Three questions: a venue lookup (one tool call), a simulation (a venue
//! lookup, then 10,000 runs), and one that needs no tool. Each measured `ROUNDS` times, alternating; p50
//! and p99 printed. The SDK is in process (fixed keys, the demo world at 2026-03-15, as in the tests).
//! Run: `cargo bench -p kisum-modules --bench copilot`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::print_stdout, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use kisum_client::access::{CompanyId, Directory, World};
use kisum_client::entitlements::{ManualClock, Timestamp};
use kisum_client::{Keys, Kisum, LocalSource, Revocations};
use kisum_modules::{Module, Options, PlannerConfig};
use kisum_token::{Algorithm, Audience, Claims, Jwks, PrivateKey, Validation, Verifier, sign};
use tower::ServiceExt;

const ROUNDS: usize = 2_000;
const ISSUER: &str = "http://127.0.0.1:7400";

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(run());
}

async fn run() {
    // encore's ai add-on, active, with room for every question of the run.
    let mut doc = serde_json::to_value(kisum_tests::demo_world()).unwrap();
    for addon in doc["catalog"]["addons"].as_array_mut().unwrap() {
        if addon["id"] == "ai" {
            addon["limits"]["ai.monthly_requests"] = serde_json::json!(10_000_000);
        }
    }
    let doc: kisum_client::access::doc::WorldDoc = serde_json::from_value(doc).unwrap();
    let key = PrivateKey::generate(Algorithm::EdDSA, "k1").unwrap();
    let validation = Validation::new(ISSUER, "kisum");
    let verifier = Verifier::new(Jwks::from_keys([&key]).unwrap(), validation.clone()).unwrap();
    let keys = Arc::new(Keys::fixed(verifier, validation));
    let now = Timestamp::parse("2026-03-15T12:00:00Z").unwrap();
    let clock = Arc::new(ManualClock::new(now));
    let directory = Arc::new(Directory::new(World::from_doc(&doc).unwrap()));
    let source = Arc::new(LocalSource::new(directory, clock.clone()));
    let kisum = Kisum::new(keys, source, Arc::new(Revocations::default()), clock.clone());
    let companies: Vec<CompanyId> = doc.companies.iter().map(|c| c.id.parse().unwrap()).collect();

    let mut options = Options::default();
    options.copilot.planner = PlannerConfig::Rules;
    options.copilot.modules.clear();
    let venue = Module::Venue.router_with(kisum.clone(), &companies, clock.clone(), &options).await.unwrap();
    let venue_url = serve(venue).await;
    options.copilot.modules.insert(Module::Venue, venue_url.clone());
    let ai = Module::Ai.router_with(kisum.clone(), &companies, clock.clone(), &options).await.unwrap();

    let iat = now.unix_seconds();
    let claims = Claims {
        iss: ISSUER.into(),
        sub: "maya".into(),
        aud: Audience::One("kisum".into()),
        exp: iat + 900,
        iat,
        jti: "bench".into(),
        nbf: None,
        cid: Some("encore".into()),
        sid: Some("s".into()),
        ver: Some(0),
        act: None,
        client_id: None,
        scope: None,
    };
    let token = sign(&key, &claims).unwrap();
    let http = reqwest::Client::new();

    let mut lookup = Vec::with_capacity(ROUNDS);
    let mut venues = Vec::with_capacity(ROUNDS);
    let mut simulate = Vec::with_capacity(ROUNDS / 10);
    let mut plain = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        let started = Instant::now();
        let answer = http.get(format!("{venue_url}/v1/venues?limit=200")).bearer_auth(&token).send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
        answer.bytes().await.unwrap();
        lookup.push(started.elapsed());

        venues.push(ask(&ai, &token, "Which venues are free on 2026-09-12?").await);
        plain.push(ask(&ai, &token, "Hello there").await);
        if round % 10 == 0 {
            simulate.push(ask(&ai, &token, "Simulate a show at 45 EUR").await);
        }
    }
    println!(
        "copilot answer latency, deterministic planner ({ROUNDS} rounds, alternating; the lookup over loopback HTTP):"
    );
    report("baseline: GET /v1/venues over loopback (the tool's lookup alone)", &mut lookup);
    report("ask, no tool (planner and counting only)", &mut plain);
    report("ask, venue lookup (one tool call over HTTP)", &mut venues);
    report("ask, simulation (a venue lookup + 10,000 runs)", &mut simulate);
    let ratio = percentile(&venues, 50).as_secs_f64() / percentile(&lookup, 50).as_secs_f64();
    println!("  venue question / its lookup alone, p50: {ratio:.2}x");
}

/// One question through the router: its latency.
async fn ask(ai: &Router, token: &str, question: &str) -> Duration {
    let body = serde_json::json!({ "question": question }).to_string();
    let request = Request::post("/v1/copilot/ask")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    let started = Instant::now();
    let response = ai.clone().oneshot(request).await.unwrap();
    let status = response.status();
    axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    let took = started.elapsed();
    assert_eq!(status, StatusCode::OK, "{question}");
    took
}

fn percentile(samples: &[Duration], p: usize) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

fn report(what: &str, samples: &mut [Duration]) {
    println!(
        "  {what:<62} p50 {:>8.1} µs   p99 {:>8.1} µs   (n = {})",
        percentile(samples, 50).as_secs_f64() * 1e6,
        percentile(samples, 99).as_secs_f64() * 1e6,
        samples.len()
    );
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}
