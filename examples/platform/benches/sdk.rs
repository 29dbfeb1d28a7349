//! The SDK's cost and the platform's propagation (DESIGN.md §8, BENCHMARKS.md), in one run on loopback:
//!
//! 1. `GET /v1/invoices` of the finance module behind `kisum-client` (token verified, access from the
//!    cached snapshot) against the same answer served by a bare axum route, each under the same load:
//!    32 concurrent connections for 10 s from a load generator in the same process (so, like `wrk`, it
//!    shares the 2 cores with the servers);
//!    The module is served as it runs in production: `kisum_server::finish`'s layers — request ids, the
//!    W3C trace, request metrics into the Prometheus recorder — and a tracing subscriber at `info`
//!    formatting every request's line (into a sink);
//! 2. TLS: the module over HTTPS against plain HTTP, each with a new connection per request (the
//!    handshake's cost) and with kept-alive connections;
//! 3. propagation: 200 writes through Auth (leo suspended, then active again, alternately), each timed
//!    from its committed answer until the finance module enforces it (polled every millisecond).
//!
//! Run: `cargo bench -p kisum-platform --bench sdk` (release profile; a SQLite store in a temp folder).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Json;
use axum::routing::get;
use kisum_auth::boot::Boot;
use kisum_auth::{AuthState, Settings};
use kisum_client::clients::AuthClient;
use kisum_client::{Kisum, RemoteConfig};
use kisum_entitlements::SystemClock;
use kisum_modules::Module;
use serde_json::{Value, json};

const SECRET: &str = "bench-admin-secret-0123456789abcdef";
const KEK: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

async fn serve(app: axum::Router) -> String {
    let listener = kisum_server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(axum::serve(listener, app).into_future());
    url
}

/// The module on `app`, over TLS when `tls` is given, served as the reference servers are.
async fn serve_as_deployed(app: axum::Router, tls: Option<kisum_server::Tls>) -> String {
    let listener = kisum_server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://localhost:{}", listener.local_addr().unwrap().port());
    let limits = kisum_server::Limits::default();
    tokio::spawn(kisum_server::serve_with(listener, app, limits, tls, std::future::pending()));
    url
}

/// `connections` loops of GET `url` for `seconds`: requests per second, p50 and p99 latency.
async fn load(url: &str, token: Option<&str>, connections: usize, seconds: u64) -> (f64, Duration, Duration) {
    let http = reqwest::Client::builder().pool_max_idle_per_host(connections).build().unwrap();
    load_with(&http, url, token, connections, seconds).await
}

/// [`load`] with the client `http`.
async fn load_with(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    connections: usize,
    seconds: u64,
) -> (f64, Duration, Duration) {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (http, url, token, stop) = (http.clone(), url.to_owned(), token.map(str::to_owned), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let start = Instant::now();
                let mut request = http.get(&url);
                if let Some(t) = &token {
                    request = request.bearer_auth(t);
                }
                let response = request.send().await.unwrap();
                assert!(response.status().is_success(), "{}", response.status());
                response.bytes().await.unwrap();
                latencies.push(start.elapsed());
            }
            latencies
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    (all.len() as f64 / seconds as f64, pct(0.50), pct(0.99))
}

fn main() {
    kisum_server::install_crypto();
    // Tracing on, as deployed: every request's span and `served` line formatted at `info` (into a sink, so
    // that the terminal's speed is not measured).
    // `KISUM_BENCH_LOGS=off` leaves tracing without a subscriber (to tell its cost from the rest).
    if std::env::var("KISUM_BENCH_LOGS").as_deref() != Ok("off") {
        // The servers' own format (`kisum_server::log_subscriber`), as on a server whose log is not a terminal.
        let filter = tracing_subscriber::EnvFilter::new("info");
        tracing::subscriber::set_global_default(kisum_server::log_subscriber(filter, std::io::sink, false)).unwrap();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(run());
}

async fn run() {
    let seconds: u64 = std::env::var("KISUM_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    let writes: usize = std::env::var("KISUM_BENCH_WRITES").ok().and_then(|s| s.parse().ok()).unwrap_or(200);
    let dir = std::env::temp_dir().join(format!("kisum-sdk-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let boot = Boot {
        store: kisum_server::StoreConfig { data: dir.to_path_buf(), ..Default::default() },
        kek: Some(KEK.into()),
        admin_secret: Some(SECRET.into()),
        ..Boot::default()
    };
    let opened = boot.open().await.unwrap();
    // Auth and Core on loopback, sharing one engine (as the one-command deployment does).
    let listener = kisum_server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let auth_url = format!("http://{}", listener.local_addr().unwrap());
    let settings = Settings::new(&auth_url, "kisum".parse().unwrap());
    let kek = kisum_token::Kek::from_text(opened.kek.to_hex().as_str()).unwrap();
    let state = AuthState::open(opened.engine.clone(), kek, settings, Arc::new(SystemClock)).await.unwrap();
    kisum_auth::background(state.clone());
    tokio::spawn(axum::serve(listener, kisum_auth::app(state.clone())).into_future());
    let store = opened.engine.store().clone();
    let now = kisum_entitlements::Timestamp::now().unix_seconds();
    let verifier = kisum_token::Verifier::new(
        kisum_server::keys::jwks_from_store(store.as_ref(), now).await.unwrap(),
        kisum_token::Validation::new(&auth_url, "kisum"),
    )
    .unwrap();
    let core = Arc::new(kisum_core::CoreState {
        engine: opened.engine.clone(),
        tokens: kisum_server::Tokens::new(verifier, Arc::new(SystemClock)),
        platform_company: "kisum".parse().unwrap(),
    });
    let core_url = serve(kisum_core::app(core)).await;
    // The finance module behind the SDK.
    let config = RemoteConfig::new(&auth_url, &core_url, "platform-admin", SECRET);
    let (kisum, _feed) = Kisum::connect(config, Arc::new(SystemClock)).await.unwrap();
    let companies = opened.engine.directory().company_ids();
    let finance = serve_as_deployed(Module::Finance.router(kisum.clone(), &companies).await.unwrap(), None).await;

    let auth = AuthClient::new(reqwest::Client::new(), &auth_url);
    let login = |user: &'static str| {
        let auth = auth.clone();
        async move {
            let s = auth.login(user, "kisum-demo").await.unwrap();
            auth.refresh(&s.refresh_token, "encore").await.unwrap().access_token
        }
    };
    let maya = login("maya").await;
    let with_sdk = format!("{finance}/v1/invoices");
    let answer: Value =
        reqwest::Client::new().get(&with_sdk).bearer_auth(&maya).send().await.unwrap().json().await.unwrap();
    // The same answer from a bare route: no token, no access check.
    let bare_answer = answer.clone();
    let bare = serve(axum::Router::new().route(
        "/v1/invoices",
        get(move || {
            let body = bare_answer.clone();
            async move { Json(body) }
        }),
    ))
    .await;
    // The steps between the two, to tell where the cost is: the bare route on the deployed server
    // (`serve_with`: bounds, header timeouts, graceful shutdown), then also inside `finish`'s layers.
    let bare_route = |answer: Value| {
        axum::Router::new().route(
            "/v1/invoices",
            get(move || {
                let body = answer.clone();
                async move { Json(body) }
            }),
        )
    };
    let served = serve_as_deployed(bare_route(answer.clone()), None).await;
    let finished = serve_as_deployed(kisum_server::finish("bench", bare_route(answer.clone())), None).await;

    println!(
        "== GET /v1/invoices, 32 connections, {seconds} s each in 5 alternating rounds, load generator in process"
    );
    // The machine is shared and noisy: the two are measured in alternation, so that a slow spell weighs
    // on both alike.
    let round = (seconds / 5).max(1);
    let (mut bare_runs, mut sdk_runs) = (Vec::new(), Vec::new());
    let (mut served_runs, mut finished_runs) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        bare_runs.push(load(&format!("{bare}/v1/invoices"), None, 32, round).await);
        served_runs.push(load(&format!("{served}/v1/invoices"), None, 32, round).await);
        finished_runs.push(load(&format!("{finished}/v1/invoices"), None, 32, round).await);
        sdk_runs.push(load(&with_sdk, Some(&maya), 32, round).await);
    }
    let summary = |runs: &[(f64, Duration, Duration)]| {
        let rps = runs.iter().map(|r| r.0).sum::<f64>() / runs.len() as f64;
        let mut p50s: Vec<Duration> = runs.iter().map(|r| r.1).collect();
        let mut p99s: Vec<Duration> = runs.iter().map(|r| r.2).collect();
        p50s.sort();
        p99s.sort();
        (rps, p50s[p50s.len() / 2], p99s[p99s.len() / 2])
    };
    let (bare_rps, p50, p99) = summary(&bare_runs);
    println!(
        "bare axum route          {bare_rps:>9.0} req/s   p50 {p50:>9.2?}   p99 {p99:>9.2?}   (medians of the rounds)"
    );
    let (served_rps, p50, p99) = summary(&served_runs);
    println!(
        "  the same, on serve_with  {served_rps:>9.0} req/s   p50 {p50:>9.2?}   p99 {p99:>9.2?}   ({:.2}×)",
        served_rps / bare_rps
    );
    let (finished_rps, p50, p99) = summary(&finished_runs);
    println!(
        "  and inside finish        {finished_rps:>9.0} req/s   p50 {p50:>9.2?}   p99 {p99:>9.2?}   ({:.2}×)",
        finished_rps / bare_rps
    );
    let (sdk_rps, p50, p99) = summary(&sdk_runs);
    println!(
        "behind kisum-client      {sdk_rps:>9.0} req/s   p50 {p50:>9.2?}   p99 {p99:>9.2?}   (request ids, traces, metrics, logs {})",
        std::env::var("KISUM_BENCH_LOGS").unwrap_or_else(|_| "info".into())
    );
    println!("ratio {:.2}", sdk_rps / bare_rps);
    let (live, cache, stale) = kisum.counters().get();
    println!("decisions: live {live}, cache {cache}, stale {stale}");
    let scraped = kisum_server::metrics::handle().map(|h| h.render()).unwrap_or_default();
    let counted = scraped.lines().filter(|l| l.starts_with("kisum_decisions_total")).collect::<Vec<_>>().join("; ");
    println!("kisum_decisions_total: {counted}");

    // The same module over HTTPS (a certificate made for this run) and over plain HTTP, served alike.
    let dir_certs = dir.join("certs");
    std::fs::create_dir_all(&dir_certs).unwrap();
    let certs = kisum_tests::certs::TestCerts::generate(&dir_certs);
    let tls = kisum_server::Tls::from_files(&certs.cert, &certs.key).unwrap();
    let https = serve_as_deployed(Module::Finance.router(kisum.clone(), &companies).await.unwrap(), Some(tls)).await;
    let plain = serve_as_deployed(Module::Finance.router(kisum.clone(), &companies).await.unwrap(), None).await;
    let ca = std::fs::read(&certs.ca).unwrap();
    let client = |pool: usize| {
        let roots = reqwest::Certificate::from_pem_bundle(&ca).unwrap();
        reqwest::Client::builder().tls_certs_merge(roots).pool_max_idle_per_host(pool).build().unwrap()
    };
    println!("== TLS: the module over HTTPS and over plain HTTP, 32 connections, {seconds} s each");
    for (name, pool) in [("kept-alive connections", 32), ("a new connection per request", 0)] {
        let (rps, p50, p99) = load_with(&client(pool), &format!("{plain}/v1/invoices"), Some(&maya), 32, seconds).await;
        println!("plain HTTP, {name:<29} {rps:>9.0} req/s   p50 {p50:>9.2?}   p99 {p99:>9.2?}");
        let (rps, p50, p99) = load_with(&client(pool), &format!("{https}/v1/invoices"), Some(&maya), 32, seconds).await;
        println!("HTTPS,      {name:<29} {rps:>9.0} req/s   p50 {p50:>9.2?}   p99 {p99:>9.2?}");
    }

    println!("== propagation: {writes} writes through Auth, each until the finance module enforces it");
    // leo may read invoices as a finance manager; suspending and reactivating him flips the answer.
    let http = reqwest::Client::new();
    let put = |status: &'static str| {
        let (http, auth_url, maya) = (http.clone(), auth_url.clone(), maya.clone());
        async move {
            let body = json!({"roles": ["finance_manager"], "status": status});
            let r = http
                .put(format!("{auth_url}/v1/companies/encore/memberships/leo"))
                .bearer_auth(&maya)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "{}", r.status());
        }
    };
    put("active").await;
    let leo = login("leo").await;
    let mut times = Vec::new();
    for i in 0..writes {
        let (status, expect) = if i % 2 == 0 { ("suspended", 403) } else { ("active", 200) };
        put(status).await;
        let start = Instant::now();
        loop {
            let s = http.get(&with_sdk).bearer_auth(&leo).send().await.unwrap().status().as_u16();
            if s == expect {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(5), "write {i} not enforced after 5 s");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        times.push(start.elapsed());
    }
    times.sort();
    let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    println!(
        "write → enforced at the module: p50 {:.2?}, p99 {:.2?}, max {:.2?}",
        pct(0.5),
        pct(0.99),
        times[times.len() - 1]
    );
    let _ = std::fs::remove_dir_all(&dir);
}
