//! A person's day on the reference deployment, started as processes (issue 11): the one-command
//! deployment first — sign-in, company tokens, module calls allowed and denied with the right codes, a
//! membership suspended by the owner and enforced by a module within a second, a delegation to an agent
//! used through token exchange and revoked, an override added through the Admin API, a session revoked,
//! a clean Ctrl-C — then the same store with each service in its own process: every earlier decision
//! unchanged, then Auth stopped (modules serve cached snapshots, tagged stale, then fail closed).
//!
//! The binary is built with `cargo build -p kisum-platform` (a no-op when `cargo test --workspace` built
//! it already). Ports are the defaults shifted by an offset, so a deployment on the defaults is untouched.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kisum_client::clients::{AuthClient, CallError};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const OFFSET: u16 = 21_000;
const ADMIN_SECRET: &str = "e2e-admin-secret-0123456789abcdef0123";

fn url(port: u16) -> String {
    format!("http://127.0.0.1:{}", port + OFFSET)
}

fn binary() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo).args(["build", "-q", "-p", "kisum-platform"]).current_dir(&root).status().unwrap();
    assert!(status.success(), "building kisum-platform failed");
    let target = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| root.join("target"));
    target.join("debug").join("kisum-platform")
}

/// A running process, killed when dropped.
struct Proc(Child);

impl Proc {
    fn start(bin: &Path, data: &Path, args: &[&str]) -> Proc {
        Proc::start_at(bin, data, args, OFFSET)
    }

    /// Started with its ports shifted by `offset`.
    fn start_at(bin: &Path, data: &Path, args: &[&str], offset: u16) -> Proc {
        let log = std::fs::File::create(data.join(format!("{}.log", args.first().copied().unwrap_or("all")))).unwrap();
        let child = Command::new(bin)
            .args(args)
            .args(["--data", data.to_str().unwrap(), "--port-offset", &offset.to_string(), "--poll-ms", "100"])
            .env("KISUM_ADMIN_CLIENT_SECRET", ADMIN_SECRET)
            .env("RUST_LOG", "warn")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        Proc(child)
    }

    /// Ctrl-C: the process must stop by itself, cleanly.
    fn interrupt(mut self) {
        let pid = self.0.id().to_string();
        Command::new("kill").args(["-INT", &pid]).status().unwrap();
        let start = Instant::now();
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                assert!(status.success(), "stopped with {status}");
                return;
            }
            assert!(start.elapsed() < Duration::from_secs(15), "still running 15 s after Ctrl-C");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn ready(base: &str) {
    ready_with(&reqwest::Client::new(), base).await;
}

async fn ready_with(http: &reqwest::Client, base: &str) {
    let start = Instant::now();
    loop {
        if http.get(format!("{base}/health/ready")).send().await.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{base} did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One call: status and JSON body.
async fn call(method: Method, url: &str, token: Option<&str>, body: Option<Value>) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new().request(method, url);
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    if let Some(b) = body {
        request = request.json(&b);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// Polls until `url` answers `status` to `token`, for at most `limit`.
async fn eventually(url: &str, token: &str, status: StatusCode, limit: Duration) -> Value {
    let start = Instant::now();
    loop {
        let (s, body) = call(Method::GET, url, Some(token), None).await;
        if s == status {
            return body;
        }
        assert!(start.elapsed() < limit, "{url}: still {s} after {limit:?}: {body:#}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn token(auth: &AuthClient, user: &str, company: &str) -> String {
    let session = auth.login(user, "kisum-demo").await.unwrap();
    auth.refresh(&session.refresh_token, company).await.unwrap().access_token
}

fn code(e: &CallError) -> String {
    e.code().map(|c| c.as_str().to_owned()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_on_the_reference_deployment() {
    let bin = binary();
    let dir = std::env::temp_dir().join(format!("kisum-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (auth_url, core_url, finance) = (url(7400), url(7401), url(7410));
    let auth = AuthClient::new(reqwest::Client::new(), &auth_url);

    // ---- One command: everything in one process.
    let all = Proc::start(&bin, &dir, &[]);
    for port in [7400, 7401, 7410, 7411, 7412, 7413, 7414, 7415] {
        ready(&url(port)).await;
    }
    // Wrong password, then sign-in and company tokens.
    let wrong = auth.login("maya", "nope").await.unwrap_err();
    assert_eq!((wrong.status, code(&wrong).as_str()), (401, "UNAUTHENTICATED"));
    let maya = token(&auth, "maya", "encore").await;
    let leo = token(&auth, "leo", "encore").await;
    // Module calls allowed and denied with the right codes.
    let (s, invoices) = call(Method::GET, &format!("{finance}/v1/invoices"), Some(&maya), None).await;
    assert_eq!(s, StatusCode::OK, "{invoices:#}");
    let (s, body) = call(Method::GET, &format!("{finance}/v1/invoices"), None, None).await;
    assert_eq!((s, body["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("UNAUTHENTICATED")));
    let (s, body) = call(Method::GET, &format!("{finance}/v1/invoices/bluenote-1"), Some(&maya), None).await;
    assert_eq!((s, body["code"].as_str()), (StatusCode::NOT_FOUND, Some("NOT_FOUND")), "another company's invoice");
    assert!(body.get("reason").is_none());
    let (s, body) = call(Method::POST, &format!("{finance}/v1/invoices/encore-1/approve"), Some(&leo), None).await;
    assert_eq!((s, body["code"].as_str()), (StatusCode::FORBIDDEN, Some("FORBIDDEN")), "{body:#}");
    assert_eq!(body["required"], "finance:invoice:approve");

    // The owner gives leo the finance role, then suspends him: the module follows within a second.
    let put = |body: Value| {
        let (auth_url, maya) = (auth_url.clone(), maya.clone());
        async move {
            call(Method::PUT, &format!("{auth_url}/v1/companies/encore/memberships/leo"), Some(&maya), Some(body)).await
        }
    };
    let (s, _) = put(json!({"roles": ["finance_manager"]})).await;
    assert_eq!(s, StatusCode::OK);
    eventually(&format!("{finance}/v1/invoices"), &leo, StatusCode::OK, Duration::from_secs(1)).await;
    let (s, _) = put(json!({"roles": ["finance_manager"], "status": "suspended"})).await;
    assert_eq!(s, StatusCode::OK);
    let refused =
        eventually(&format!("{finance}/v1/invoices"), &leo, StatusCode::FORBIDDEN, Duration::from_secs(1)).await;
    assert_eq!(refused["code"], "MEMBERSHIP_INACTIVE");

    // A delegation to an agent, used through token exchange, then revoked.
    let (s, agent) =
        call(Method::PUT, &format!("{auth_url}/v1/companies/encore/agents/copilot2"), Some(&maya), None).await;
    assert_eq!(s, StatusCode::OK, "{agent:#}");
    let expires = kisum_entitlements::Timestamp::now().checked_add_seconds(30 * 86_400).unwrap().to_string();
    let delegation = json!({"to": {"agent": "copilot2"}, "grants": ["finance:invoice:read"], "expires_at": expires});
    let (s, created) =
        call(Method::POST, &format!("{auth_url}/v1/companies/encore/delegations"), Some(&maya), Some(delegation)).await;
    assert_eq!(s, StatusCode::CREATED, "{created:#}");
    let acting = auth
        .exchange(agent["client_id"].as_str().unwrap(), agent["client_secret"].as_str().unwrap(), &maya)
        .await
        .unwrap()
        .access_token;
    eventually(&format!("{finance}/v1/invoices"), &acting, StatusCode::OK, Duration::from_secs(1)).await;
    let (s, body) = call(Method::POST, &format!("{finance}/v1/invoices/encore-1/approve"), Some(&acting), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "the agent has only what was delegated: {body:#}");
    let id = created["id"].as_str().unwrap();
    let (s, _) =
        call(Method::DELETE, &format!("{auth_url}/v1/companies/encore/delegations/{id}"), Some(&maya), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    eventually(&format!("{finance}/v1/invoices"), &acting, StatusCode::FORBIDDEN, Duration::from_secs(1)).await;

    // An override through the Admin API: finance revoked for encore, enforced, then removed again.
    let admin = auth.client_credentials("platform-admin", ADMIN_SECRET, Some("admin:*")).await.unwrap().access_token;
    let item = json!({"effect": "revoke", "module": "finance", "reason": "e2e: billing dispute"});
    let (s, added) =
        call(Method::POST, &format!("{core_url}/admin/v1/companies/encore/overrides"), Some(&admin), Some(item)).await;
    assert_eq!(s, StatusCode::CREATED, "{added:#}");
    let denied =
        eventually(&format!("{finance}/v1/invoices"), &maya, StatusCode::FORBIDDEN, Duration::from_secs(1)).await;
    assert_eq!((denied["code"].as_str(), denied["required"].as_str()), (Some("NOT_ENTITLED"), Some("finance")));
    let override_id = added["id"].as_str().unwrap();
    let (s, _) = call(
        Method::DELETE,
        &format!("{core_url}/admin/v1/companies/encore/overrides/{override_id}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    eventually(&format!("{finance}/v1/invoices"), &maya, StatusCode::OK, Duration::from_secs(1)).await;

    // A session revoked: its tokens are refused by the module within a second.
    let ines = token(&auth, "ines", "encore").await;
    eventually(&format!("{finance}/v1/invoices"), &ines, StatusCode::OK, Duration::from_secs(1)).await;
    auth.revoke(&ines).await.unwrap();
    eventually(&format!("{finance}/v1/invoices"), &ines, StatusCode::UNAUTHORIZED, Duration::from_secs(1)).await;

    // A client for the standalone finance module, with only what a module needs (least privilege).
    let module_client = json!({"client_id": "e2e-finance", "scopes": ["auth:access:read", "auth:support:record"]});
    // A token scoped `admin:*` cannot give `auth:access:read`: nobody gives more than it holds.
    let (s, body) =
        call(Method::POST, &format!("{core_url}/admin/v1/clients"), Some(&admin), Some(module_client.clone())).await;
    assert_eq!((s, body["required"].as_str()), (StatusCode::FORBIDDEN, Some("auth:access:read")), "{body:#}");
    let operator = auth.client_credentials("platform-admin", ADMIN_SECRET, None).await.unwrap().access_token;
    let (s, registered) =
        call(Method::POST, &format!("{core_url}/admin/v1/clients"), Some(&operator), Some(module_client)).await;
    assert_eq!(s, StatusCode::CREATED, "{registered:#}");
    let module_secret = registered["client_secret"].as_str().unwrap().to_owned();
    // The one command gave each of its modules, and the console, a client with only what it needs.
    let (s, clients) = call(Method::GET, &format!("{core_url}/admin/v1/clients"), Some(&operator), None).await;
    assert_eq!(s, StatusCode::OK);
    let scopes_of = |id: &str| {
        clients["clients"].as_array().unwrap().iter().find(|c| c["client_id"] == id).unwrap()["scopes"].clone()
    };
    assert_eq!(scopes_of("kisum-module-finance"), json!(["auth:access:read", "auth:support:record"]));
    assert_eq!(scopes_of("kisum-console"), json!(["auth:access:read"]));

    // Ctrl-C stops everything cleanly.
    all.interrupt();

    // ---- The same store, each service in its own process.
    let stale = "3";
    let _core = Proc::start(&bin, &dir, &["core"]);
    let auth_proc = Proc::start(&bin, &dir, &["auth"]);
    ready(&auth_url).await;
    ready(&core_url).await;
    let module_args = ["--auth-url", auth_url.as_str(), "--core-url", core_url.as_str(), "--stale-seconds", stale];
    // A module refuses `platform-admin` (scopes `*`) unless told --allow-admin-client.
    let refused = Command::new(&bin)
        .args(["finance", "--auth-url", auth_url.as_str(), "--core-url", core_url.as_str()])
        .args(["--data", dir.to_str().unwrap(), "--port-offset", &OFFSET.to_string()])
        .env("KISUM_ADMIN_CLIENT_SECRET", ADMIN_SECRET)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("--client-id platform-admin") && said.contains("--allow-admin-client"), "{said}");
    let mut finance_args = vec!["finance", "--client-id", "e2e-finance", "--client-secret", module_secret.as_str()];
    finance_args.extend(module_args);
    let _finance = Proc::start(&bin, &dir, &finance_args);
    ready(&finance).await;
    // Every earlier decision is unchanged, for new tokens and for those issued before the restart.
    let maya = token(&auth, "maya", "encore").await;
    let session = auth.login("leo", "kisum-demo").await.unwrap();
    let suspended = auth.refresh(&session.refresh_token, "encore").await.unwrap_err();
    assert_eq!((suspended.status, code(&suspended).as_str()), (403, "MEMBERSHIP_INACTIVE"));
    let (s, _) = call(Method::GET, &format!("{finance}/v1/invoices"), Some(&maya), None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, body) = call(Method::GET, &format!("{finance}/v1/invoices"), Some(&leo), None).await;
    assert_eq!((s, body["code"].as_str()), (StatusCode::FORBIDDEN, Some("MEMBERSHIP_INACTIVE")));
    let (s, body) = call(Method::GET, &format!("{finance}/v1/invoices/bluenote-1"), Some(&maya), None).await;
    assert_eq!((s, body["code"].as_str()), (StatusCode::NOT_FOUND, Some("NOT_FOUND")));
    let (s, _) = call(Method::GET, &format!("{finance}/v1/invoices"), Some(&acting), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "the revoked delegation still confers nothing");

    // Auth stops: the module serves maya from its cache, then fails closed; never allows on error.
    drop(auth_proc);
    let (s, _) = call(Method::GET, &format!("{finance}/v1/invoices"), Some(&maya), None).await;
    assert_eq!(s, StatusCode::OK, "a cached snapshot serves while Auth is away");
    let start = Instant::now();
    loop {
        let (s, body) = call(Method::GET, &format!("{finance}/v1/invoices"), Some(&maya), None).await;
        if s == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(body["code"], "UPSTREAM_UNAVAILABLE");
            break;
        }
        assert_eq!(s, StatusCode::OK, "{body:#}");
        assert!(start.elapsed() < Duration::from_secs(10), "still served long after the stale bound");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The one command over TLS (issue 19): every server answers HTTPS with the given certificate, the modules
/// and the console reach Auth and Core over HTTPS trusting `--ca-bundle`, a client that does not trust
/// the CA and a plain-HTTP request are refused, the console's cookies are `__Host-` and `Secure`; and a
/// TLS setting given wrong stops the start with a message naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deployment_over_tls() {
    const TLS_OFFSET: u16 = 22_000;
    let bin = binary();
    let dir = std::env::temp_dir().join(format!("kisum-e2e-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let certs = kisum_tests::certs::TestCerts::generate(&dir);
    let (cert, key, ca) = (certs.cert.to_str().unwrap(), certs.key.to_str().unwrap(), certs.ca.to_str().unwrap());

    // Wrong settings: each refused at start, exit code 2, the message naming the setting.
    let refused = |args: &[&str]| {
        let out = Command::new(&bin).args(args).args(["--data", dir.to_str().unwrap()]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(refused(&["--tls-cert", cert]).contains("--tls-cert needs --tls-key"));
    assert!(
        refused(&["--tls-cert", cert, "--tls-key", ca]).contains("--tls-cert/--tls-key: the key holds no private key")
    );
    assert!(refused(&["--ca-bundle", key]).contains("--ca-bundle"));

    let https = |port: u16| format!("https://127.0.0.1:{}", port + TLS_OFFSET);
    let all = Proc::start_at(&bin, &dir, &["--tls-cert", cert, "--tls-key", key, "--ca-bundle", ca], TLS_OFFSET);
    let trusting = certs.client();
    for port in [7400, 7401, 7402, 7410, 7411, 7412, 7413, 7414, 7415] {
        ready_with(&trusting, &https(port)).await;
    }
    // A module verifies the user's token with keys it fetched over HTTPS and asks Auth over HTTPS.
    let auth = AuthClient::new(trusting.clone(), https(7400));
    let session = auth.login("maya", "kisum-demo").await.unwrap();
    let maya = auth.refresh(&session.refresh_token, "encore").await.unwrap().access_token;
    let answer = trusting.get(format!("{}/v1/invoices", https(7410))).bearer_auth(&maya).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let answer = trusting.get(format!("{}/v1/invoices/bluenote-1", https(7410))).bearer_auth(&maya).send().await;
    assert_eq!(answer.unwrap().status(), StatusCode::NOT_FOUND);
    // Without the CA, the handshake fails; plain HTTP to a TLS port gets no answer.
    let stranger = reqwest::Client::new().get(format!("{}/health/live", https(7400))).send().await;
    assert!(stranger.is_err_and(|e| e.is_connect()), "a client that does not trust the CA is refused");
    let plain = reqwest::Client::new().get(format!("http://127.0.0.1:{}/health/live", 7400 + TLS_OFFSET)).send().await;
    assert!(plain.is_err(), "plain HTTP on the TLS port: {plain:?}");
    // The console over HTTPS: secure cookies, and it signs in through Auth over HTTPS.
    let login = trusting.get(format!("{}/login", https(7402))).send().await.unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let cookies: Vec<String> =
        login.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
    assert!(
        !cookies.is_empty() && cookies.iter().all(|c| c.starts_with("__Host-") && c.contains("Secure")),
        "{cookies:?}"
    );
    all.interrupt();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Keys follow the log (issue 19): a Core replica on its own engine learns of a rotation written through
/// Auth from the `rotate_keys` change its engine installs — within a second, where it used to poll the key
/// table (it now rereads the table only when the key schedule says the set changes, or every 5 minutes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_follows_key_rotations_through_the_log() {
    use kisum_tests::http::Call;
    use std::sync::{Arc, Mutex};
    let db = kisum_tests::TestDb::new(kisum_tests::Backend::Sqlite).await;
    let boot = kisum_auth::boot::Boot {
        store: kisum_server::StoreConfig {
            db: Some(kisum_server::DbUrl(db.url.clone())),
            seed_world: Some(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/demo/world.json").into()),
            ..Default::default()
        },
        kek: Some("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f".into()),
        admin_secret: Some(ADMIN_SECRET.into()),
        ..kisum_auth::boot::Boot::default()
    };
    let opened = boot.open().await.unwrap();
    let issuer = "http://127.0.0.1:7400";
    let settings = kisum_auth::Settings::new(issuer, "kisum".parse().unwrap());
    let clock = Arc::new(kisum_entitlements::SystemClock);
    let auth = kisum_auth::AuthState::open(opened.engine.clone(), opened.kek, settings, clock).await.unwrap();
    let app = kisum_auth::app(auth);
    // Core's own replica of the store, following the log.
    let store = kisum_store::connect(&db.url).await.unwrap();
    let core = Arc::new(kisum_store::Engine::open(store, None).await.unwrap());
    let following = core.follow(Duration::from_millis(50));
    let kids = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = kids.clone();
    let keys = kisum_server::keys::follow_keys(core.clone(), kisum_token::Validation::new(issuer, "kisum"), move |v| {
        *seen.lock().unwrap() = v.jwks().kids().map(str::to_owned).collect();
    });
    let current = || kids.lock().unwrap().clone();
    let start = Instant::now();
    while current().is_empty() {
        assert!(start.elapsed() < Duration::from_secs(5), "no keys read");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before = current();
    // Rotate through Auth.
    let form = [("grant_type", "client_credentials"), ("scope", "admin:key:rotate")];
    let basic = Call::new(Method::POST, "/oauth/token").header(
        "authorization",
        &format!(
            "Basic {}",
            base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                format!("platform-admin:{ADMIN_SECRET}")
            )
        ),
    );
    let token = basic.form(&form).send(&app).await;
    token.expect(StatusCode::OK);
    let admin = token.body["access_token"].as_str().unwrap().to_owned();
    Call::new(Method::POST, "/admin/v1/keys/rotate").bearer(Some(&admin)).send(&app).await.expect(StatusCode::OK);
    let start = Instant::now();
    while current() == before {
        assert!(start.elapsed() < Duration::from_secs(1), "Core did not follow the rotation within a second");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(current().len() > before.len(), "the new key is published beside the old: {:?}", current());
    eprintln!("Core followed the rotation after {:?}", start.elapsed());
    keys.abort();
    following.abort();
}
