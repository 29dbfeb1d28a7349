//! The console in a real browser (issue 18's five journeys), against the one-command deployment this
//! package builds, started on its own ports with the demo world. Debian's chromium is driven through
//! chromedriver with `fantoccini`: WebDriver from Rust, on the hyper and tokio the servers already use, so
//! the tests need no Node.js and no second toolchain (`playwright-core` would), and it is lighter than
//! `thirtyfour`, whose extras (driver download, a component layer) we would not use.
//! `scripts/install-browser.sh` installs both when they are missing.
//!
//! The harness is our own (`libtest-mimic`): the deployment and the driver start once, every journey is
//! one test, and both processes are stopped whatever the outcome. Screenshots of every state go to
//! `target/tmp/console-screenshots/` (with the deployment's log, `platform.log`). Nothing here asserts a wall-clock time: the live journeys wait (at
//! most 15 s) for the page to change and print how long it took.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, missing_docs)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::{Value, json};

const PASSWORD: &str = "kisum-demo";
const ADMIN_SECRET: &str = "console-test-admin-secret-0123456789abcdef";
/// How long a live change may take before the journey fails (the contract says 1 s; the test prints
/// what it measured rather than asserting time on a shared machine).
const LIVE_WAIT: Duration = Duration::from_secs(15);

/// A child process stopped on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Env {
    console: String,
    auth: String,
    core: String,
    touring: String,
    driver: String,
    data: PathBuf,
    _platform: Proc,
    _driver: Proc,
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn shots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The deployment on ports of its own (a port offset no other test uses) and chromedriver.
fn start() -> Env {
    if !std::path::Path::new("/usr/bin/chromedriver").exists() {
        let status = Command::new(root().join("scripts/install-browser.sh")).status().expect("run install-browser.sh");
        assert!(status.success(), "chromium and chromium-driver are needed: scripts/install-browser.sh failed");
    }
    let data = std::env::temp_dir().join(format!("kisum-console-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    // Offsets 3000–3980 in steps of 20: ports 10400–11395, away from the defaults and other runs.
    let offset = 3000 + (std::process::id() % 50) * 20;
    let mut platform = Command::new(env!("CARGO_BIN_EXE_kisum-platform"))
        .args(["--data", data.to_str().unwrap(), "--port-offset", &offset.to_string()])
        .env("KISUM_ADMIN_CLIENT_SECRET", ADMIN_SECRET)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(shots().join("platform.log")).unwrap())
        .spawn()
        .expect("start kisum-platform");
    let stdout = platform.stdout.take().unwrap();
    let platform = Proc(platform);
    let (mut console, mut auth, mut core, mut touring) = (None, None, None, None);
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        let url = |service: &str| {
            line.trim().strip_prefix(service).and_then(|r| r.split_whitespace().next()).map(str::to_owned)
        };
        console = console.or_else(|| url("Console"));
        auth = auth.or_else(|| url("Auth"));
        core = core.or_else(|| url("Core"));
        touring = touring.or_else(|| url("touring"));
        if line.starts_with("Ctrl-C") {
            break;
        }
    }
    let console = console.expect("the deployment printed the console's URL");
    let (auth, core, touring) = (auth.expect("Auth's URL"), core.expect("Core's URL"), touring.expect("touring's URL"));
    let port = free_port();
    let driver = Proc(
        Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver"),
    );
    let driver_url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    Env { console, auth, core, touring, driver: driver_url, data, _platform: platform, _driver: driver }
}

/// A new browser (its own profile: a second browser is a second, separate context).
async fn browser(env: &Env) -> Client {
    let profile = std::env::temp_dir().join(format!("kisum-chromium-{}-{}", std::process::id(), free_port()));
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--window-size=1280,900", format!("--user-data-dir={}", profile.display()),
            ]
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&env.driver)
        .await
        .expect("a chromium session")
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(shots().join(format!("{name}.png")), png).unwrap();
}

async fn css(c: &Client, selector: &str) -> fantoccini::elements::Element {
    match c.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css(selector)).await {
        Ok(e) => e,
        Err(e) => {
            let url = c.current_url().await.map(|u| u.to_string()).unwrap_or_default();
            let source = c.source().await.unwrap_or_default();
            panic!("no `{selector}` on {url}: {e}\n{}", source.chars().take(4000).collect::<String>())
        }
    }
}

async fn present(c: &Client, selector: &str) -> bool {
    !c.find_all(Locator::Css(selector)).await.unwrap().is_empty()
}

async fn sign_in(env: &Env, c: &Client, user: &str) {
    c.goto(&format!("{}/login", env.console)).await.unwrap();
    css(c, "#user").await.send_keys(user).await.unwrap();
    css(c, "#password").await.send_keys(PASSWORD).await.unwrap();
    css(c, "form.login button[type=submit]").await.click().await.unwrap();
    css(c, "nav#nav").await;
}

async fn open(env: &Env, c: &Client, path: &str) {
    c.goto(&format!("{}{path}", env.console)).await.unwrap();
    css(c, "main#main").await;
}

async fn text(c: &Client, selector: &str) -> String {
    css(c, selector).await.text().await.unwrap()
}

async fn attr(c: &Client, selector: &str, name: &str) -> Option<String> {
    css(c, selector).await.attr(name).await.unwrap()
}

/// Waits (bounded) until the element's text contains `part` (after a form posts, the old page may still
/// be there for a moment); the text.
async fn text_with(c: &Client, selector: &str, part: &str) -> String {
    let start = Instant::now();
    loop {
        if let Ok(e) = c.find(Locator::Css(selector)).await
            && let Ok(t) = e.text().await
            && t.contains(part)
        {
            return t;
        }
        if start.elapsed() > Duration::from_secs(10) {
            let main = match c.find(Locator::Css("main")).await {
                Ok(m) => m.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            panic!("`{selector}` never said `{part}`; the page says:\n{main}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits (bounded) until `done` holds, polling the page; how long it took.
async fn until(c: &Client, what: &str, done: impl AsyncFn(&Client) -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if done(c).await {
            return start.elapsed();
        }
        assert!(start.elapsed() < LIVE_WAIT, "{what}: not within {LIVE_WAIT:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Marks the open document: a reload would lose the mark.
async fn mark(c: &Client) {
    c.execute("window.__kisumMark = 'kept'; return true;", vec![]).await.unwrap();
}

async fn still_marked(c: &Client) -> bool {
    c.execute("return window.__kisumMark === 'kept';", vec![]).await.unwrap() == Value::Bool(true)
}

/// Posts a form from inside the page (as a forged request would), with or without the CSRF token;
/// the status and the page answered.
async fn forge(c: &Client, path: &str, fields: Value, with_csrf: bool) -> (u64, String) {
    let script = r#"
        const [path, fields, withCsrf, done] = arguments;
        const body = new URLSearchParams(fields);
        if (withCsrf) body.set('_csrf', document.querySelector('input[name=_csrf]').value);
        fetch(path, {method: 'POST', body, credentials: 'same-origin'})
            .then(r => r.text().then(t => done([r.status, t])))
            .catch(e => done([0, String(e)]));
    "#;
    let answer = c.execute_async(script, vec![json!(path), fields, json!(with_csrf)]).await.unwrap();
    (answer[0].as_u64().unwrap(), answer[1].as_str().unwrap().to_owned())
}

fn rfc3339_in(days: u64) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    kisum_entitlements::Timestamp::from_unix((now + days * 86_400) as i64).to_string()
}

// ------------------------------------------------------------------------------------------ journeys

/// Journey 1: the demo owner signs in, sees finance, creates and approves an invoice.
async fn owner_creates_and_approves_an_invoice(env: &Env) {
    let c = browser(env).await;
    sign_in(env, &c, "maya").await;
    assert_eq!(attr(&c, "select#company-switch option[selected]", "value").await.as_deref(), Some("encore"));
    shot(&c, "1-owner-home").await;
    css(&c, "nav a[data-module=finance]").await.click().await.unwrap();
    css(&c, "#finance-amount").await.send_keys("4200").await.unwrap();
    css(&c, "button[data-action='Create invoice']").await.click().await.unwrap();
    let done = text_with(&c, "p.banner.done", "create: done").await;
    let id = done.split('(').nth(1).and_then(|s| s.split(')').next()).unwrap().to_owned();
    assert!(id.starts_with("encore-"), "{done}");
    let row = format!("tr[data-id='{id}']");
    assert!(text(&c, &row).await.contains("draft"));
    css(&c, &format!("{row} button[data-action=Approve]")).await.click().await.unwrap();
    text_with(&c, "p.banner.done", "approve: done").await;
    text_with(&c, &row, "approved").await;
    shot(&c, "1-owner-approved-invoice").await;
    c.close().await.unwrap();
}

/// Journey 2: a booker: no Approve (disabled, `PERMISSION_NOT_GRANTED`); the explorer says why and who could
/// grant it, with the reason and provenance `kisum explain` gives for the same question.
async fn booker_sees_why_not(env: &Env) {
    let c = browser(env).await;
    sign_in(env, &c, "leo").await;
    assert_eq!(
        attr(&c, "nav li[data-module-state=unavailable]", "data-reason").await.as_deref(),
        Some("PERMISSION_NOT_GRANTED")
    );
    open(env, &c, "/m/finance").await;
    let approve = "span.summary[data-permission='finance:invoice:approve'] button[data-action=Approve]";
    assert_eq!(attr(&c, approve, "aria-disabled").await.as_deref(), Some("true"));
    assert_eq!(attr(&c, approve, "data-reason").await.as_deref(), Some("PERMISSION_NOT_GRANTED"));
    // Focus shows the reason too (keyboard users): the disabled action stays focusable.
    css(&c, approve).await.send_keys("").await.unwrap();
    assert!(attr(&c, approve, "title").await.unwrap().starts_with("PERMISSION_NOT_GRANTED"));
    shot(&c, "2-booker-finance-disabled").await;
    css(&c, "span.summary[data-permission='finance:invoice:approve'] a").await.click().await.unwrap();
    let reason = text(&c, "#why code[data-reason]").await;
    let roles = text(&c, "#why dd[data-explain=roles]").await;
    let grantors = text(&c, "#grantors strong[data-grantors]").await;
    assert_eq!(attr(&c, "#why p.decision", "data-decision").await.as_deref(), Some("deny"));
    assert_eq!(grantors, "user:maya", "the owner holds it and may invite");
    // `kisum explain` on the same world, at this instant.
    let world =
        kisum_access::World::from_json(&std::fs::read_to_string(root().join("examples/demo/world.json")).unwrap())
            .unwrap();
    let leo = kisum_access::Principal::parse("user:leo").unwrap();
    let encore = "encore".parse().unwrap();
    let permission = kisum_access::Access::permission(&world, "finance:invoice:approve").unwrap();
    let explained =
        kisum_access::Access::explain(&world, &leo, &encore, permission, None, kisum_entitlements::Timestamp::now());
    assert_eq!(reason, explained.reason.unwrap().as_str());
    assert_eq!(roles, explained.roles.join(", "));
    for (key, expected) in [
        ("role_path", &explained.role_path),
        ("delegations", &explained.delegations),
        ("entitled_by", &explained.entitled_by),
    ] {
        let shown = present(&c, &format!("#why dd[data-explain={key}]")).await;
        if expected.is_empty() {
            assert!(!shown, "{key} is empty for kisum explain");
        } else {
            assert_eq!(text(&c, &format!("#why dd[data-explain={key}]")).await, expected.join(", "), "{key}");
        }
    }
    shot(&c, "2-explorer-why-not").await;
    c.close().await.unwrap();
}

/// Journey 3: in a second browser the owner suspends the booker: the booker's open page loses the module, no
/// reload.
async fn suspension_reaches_the_open_page(env: &Env) {
    let owner = browser(env).await;
    let booker = browser(env).await;
    sign_in(env, &booker, "leo").await;
    open(env, &booker, "/m/touring").await;
    css(&booker, "nav a[data-module=touring]").await;
    mark(&booker).await;
    sign_in(env, &owner, "maya").await;
    open(env, &owner, "/access/members").await;
    css(&owner, "tr[data-user=leo] summary").await.click().await.unwrap();
    css(&owner, "tr[data-user=leo] select[name=status] option[value=suspended]").await.click().await.unwrap();
    shot(&owner, "3-owner-suspends-booker").await;
    css(&owner, "tr[data-user=leo] button[data-action=save]").await.click().await.unwrap();
    let took =
        until(&booker, "the booker's page drops touring", async |c| !present(c, "nav a[data-module=touring]").await)
            .await;
    println!("    the suspension reached the open page {} ms after the owner's save returned", took.as_millis());
    assert!(still_marked(&booker).await, "the page was not reloaded");
    assert_eq!(attr(&booker, "p.banner.denied", "data-denied").await.as_deref(), Some("MEMBERSHIP_INACTIVE"));
    shot(&booker, "3-booker-page-after-suspension").await;
    // Back to active, with the same roles and restrictions (the form carries them).
    text_with(&owner, "p.banner.done", "Saved").await;
    css(&owner, "tr[data-user=leo] summary").await.click().await.unwrap();
    css(&owner, "tr[data-user=leo] select[name=status] option[value=active]").await.click().await.unwrap();
    css(&owner, "tr[data-user=leo] button[data-action=save]").await.click().await.unwrap();
    until(&booker, "the booker's page gets touring back", async |c| present(c, "nav a[data-module=touring]").await)
        .await;
    owner.close().await.unwrap();
    booker.close().await.unwrap();
}

/// Journey 4: a plain member sees no invite/remove controls; a forged write is refused by Auth (with its rule)
/// and, without the CSRF token, by the console.
async fn member_cannot_manage(env: &Env) {
    let c = browser(env).await;
    sign_in(env, &c, "ines").await;
    open(env, &c, "/access/members").await;
    css(&c, "tr[data-user=leo]").await;
    assert!(!present(&c, "form#invite").await);
    assert!(!present(&c, "button[data-action=remove]").await);
    assert!(!present(&c, "button[data-action=save]").await);
    css(&c, "p[data-lacks='core:member:invite']").await;
    shot(&c, "4-member-no-controls").await;
    let grant = json!({"user": "leo", "roles": "owner", "status": "active"});
    let (status, page) = forge(&c, "/access/members/do/put", grant.clone(), true).await;
    assert_eq!(status, 200, "the console forwards it and shows the page");
    assert!(page.contains(r#"data-code="FORBIDDEN""#), "Auth refused it");
    assert!(page.contains(r#"data-required="core:member:invite""#), "naming the rule's permission");
    let (status, page) = forge(&c, "/access/members/do/put", grant, false).await;
    assert_eq!(status, 403);
    assert!(page.contains(r#"data-code="CSRF""#));
    open(env, &c, "/access/members").await;
    assert!(text(&c, "tr[data-user=leo]").await.contains("booker"), "nothing changed");
    c.close().await.unwrap();
}

/// Journey 5: staff extend a trial through the overrides page; the member's navigation gains the module.
async fn staff_override_reaches_the_member(env: &Env) {
    let staff = browser(env).await;
    let member = browser(env).await;
    sign_in(env, &member, "leo").await;
    css(&member, "nav li[data-module-state=not-in-plan]").await;
    assert!(!present(&member, "nav a[data-module=artist]").await, "the artist pilot has ended");
    mark(&member).await;
    sign_in(env, &staff, "ops").await;
    css(&staff, "nav a[data-nav=staff]").await.click().await.unwrap();
    css(&staff, "a[data-company=encore]").await.click().await.unwrap();
    css(&staff, "#ov-module").await.send_keys("artist").await.unwrap();
    css(&staff, "#ov-expires").await.send_keys(&rfc3339_in(30)).await.unwrap();
    css(&staff, "#ov-reason").await.send_keys("artist pilot extended").await.unwrap();
    css(&staff, "form#override button[type=submit]").await.click().await.unwrap();
    text_with(&staff, "p.banner.done", "override: done").await;
    shot(&staff, "5-staff-override").await;
    let took =
        until(&member, "the member's navigation gains artist", async |c| present(c, "nav a[data-module=artist]").await)
            .await;
    println!("    the override reached the member's open page {} ms after staff's save returned", took.as_millis());
    assert!(still_marked(&member).await, "the page was not reloaded");
    shot(&member, "5-member-gains-artists").await;
    // Remove it again.
    let id = attr(&staff, "table#overrides tr[data-override^='ov-']", "data-override").await.unwrap();
    css(&staff, &format!("tr[data-override='{id}'] button")).await.click().await.unwrap();
    until(&member, "the member's navigation drops artist again", async |c| {
        !present(c, "nav a[data-module=artist]").await
    })
    .await;
    staff.close().await.unwrap();
    member.close().await.unwrap();
}

/// The owner registers an agent (its secret shown once), delegates to it, and the explorer shows the
/// agent acting for her allowed through that delegation; then everything is undone.
async fn owner_manages_an_agent(env: &Env) {
    let c = browser(env).await;
    sign_in(env, &c, "maya").await;
    open(env, &c, "/access/agents").await;
    css(&c, "#agent-id").await.send_keys("helper-bot").await.unwrap();
    css(&c, "#agent-id").await.send_keys("\u{e007}").await.unwrap();
    let secret = text(&c, "#client-secret").await;
    assert_eq!(secret.len(), 64, "a 32-byte secret: {secret}");
    assert_eq!(text(&c, "#client-id").await, "helper-bot@encore");
    shot(&c, "6-agent-secret-shown-once").await;
    open(env, &c, "/access/agents").await;
    assert!(!present(&c, "#client-secret").await, "shown once");
    css(&c, "tr[data-agent=helper-bot]").await;
    open(env, &c, "/access/delegations").await;
    css(&c, "#del-to").await.send_keys("agent:helper-bot").await.unwrap();
    css(&c, "#del-grants").await.send_keys("finance:invoice:read").await.unwrap();
    css(&c, "#del-expires").await.send_keys(&rfc3339_in(7)).await.unwrap();
    css(&c, "#del-to").await.send_keys("\u{e007}").await.unwrap();
    text_with(&c, "p.banner.done", "Saved").await;
    let row = "tr[data-delegation] td";
    assert!(present(&c, row).await);
    open(env, &c, "/explorer?principal=agent:helper-bot&acting_for=maya&permission=finance:invoice:read").await;
    assert_eq!(attr(&c, "#why p.decision", "data-decision").await.as_deref(), Some("allow"));
    let chain = text(&c, "#why dd[data-explain=delegations]").await;
    assert!(chain.contains("maya") && chain.contains("helper-bot"), "{chain}");
    shot(&c, "6-explorer-agent-acting").await;
    // Undo: revoke the delegation, delete the agent.
    open(env, &c, "/access/delegations").await;
    let mine = c.find_all(Locator::Css("tr[data-delegation] button")).await.unwrap();
    let before = mine.len();
    let revoke = c.find(Locator::XPath("//tr[td[contains(., 'agent:helper-bot')]]//button")).await.unwrap();
    revoke.click().await.unwrap();
    text_with(&c, "p.banner.done", "Saved").await;
    assert_eq!(c.find_all(Locator::Css("tr[data-delegation] button")).await.unwrap().len(), before - 1);
    assert!(present(&c, "tr[data-delegation] span[data-revoked]").await, "shown as revoked");
    open(env, &c, "/access/agents").await;
    css(&c, "tr[data-agent=helper-bot] form[action$=delete] button").await.click().await.unwrap();
    text_with(&c, "p.banner.done", "Saved").await;
    assert!(!present(&c, "tr[data-agent=helper-bot]").await);
    c.close().await.unwrap();
}

/// The console's own guarantees, over plain HTTP: headers, cookies, CSRF on sign-in, escaping.
async fn headers_cookies_and_escaping(env: &Env) {
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let login = http.get(format!("{}/login", env.console)).send().await.unwrap();
    let h = login.headers();
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline")
    );
    assert_eq!(h["referrer-policy"], "same-origin");
    let cookie = h["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"), "{cookie}");
    let token = cookie.split(';').next().unwrap().split_once('=').unwrap().1.to_owned();
    let jar = format!("kisum_console_login={token}");
    // Sign-in without the form's token, or from another site: refused before Auth is asked.
    let form = [("user", "maya"), ("password", PASSWORD)];
    let no_token = http.post(format!("{}/login", env.console)).header("cookie", &jar).form(&form).send().await.unwrap();
    assert_eq!(no_token.status(), 403);
    let with = [("user", "maya"), ("password", PASSWORD), ("_csrf", token.as_str())];
    let cross = http
        .post(format!("{}/login", env.console))
        .header("cookie", &jar)
        .header("sec-fetch-site", "cross-site")
        .form(&with)
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 403);
    // A wrong password: the same page, a 401, and what was typed comes back escaped.
    let evil = [("user", "<script>alert(1)</script>"), ("password", "nope"), ("_csrf", token.as_str())];
    let wrong = http.post(format!("{}/login", env.console)).header("cookie", &jar).form(&evil).send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let page = wrong.text().await.unwrap();
    assert!(!page.contains("<script>alert"), "escaped");
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    // The right one: a session cookie, and no token ever reaches the browser.
    let ok = http.post(format!("{}/login", env.console)).header("cookie", &jar).form(&with).send().await.unwrap();
    assert_eq!(ok.status(), 303);
    let session = ok
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("kisum_console="))
        .unwrap();
    let session = session.split(';').next().unwrap().to_owned();
    let home = http.get(format!("{}/", env.console)).header("cookie", &session).send().await.unwrap();
    assert_eq!(home.status(), 200);
    let page = home.text().await.unwrap();
    assert!(!page.contains("eyJ"), "no JWT in the page");
    for path in ["/m/nope", "/access/nope", "/staff/companies/-bad"] {
        let missing = http.get(format!("{}{path}", env.console)).header("cookie", &session).send().await.unwrap();
        assert_eq!(missing.status(), 404, "{path}");
    }
    // Pages without a session go to sign-in; a state change without the session's token is refused.
    let anonymous = http.get(format!("{}/m/finance", env.console)).send().await.unwrap();
    assert_eq!(anonymous.headers()["location"], "/login");
    let forged = http
        .post(format!("{}/m/finance/do/create", env.console))
        .header("cookie", &session)
        .form(&[("currency", "EUR"), ("amount", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    // Static assets allowed by the CSP, served from the binary.
    let js = http.get(format!("{}/assets/live.js", env.console)).send().await.unwrap();
    assert_eq!(js.headers()["content-type"], "text/javascript; charset=utf-8");
}

/// The JSON body of `request`'s answer.
async fn json_of(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

/// Issue 20: a module's list comes a page at a time (the module's cursor): 60 tours make two pages.
async fn lists_come_in_pages(env: &Env) {
    let http = reqwest::Client::new();
    let session =
        json_of(http.post(format!("{}/v1/sessions", env.auth)).json(&json!({"user": "maya", "password": PASSWORD})))
            .await;
    let refresh = session["refresh_token"].as_str().unwrap();
    let form = [("grant_type", "refresh_token"), ("refresh_token", refresh), ("company", "encore")];
    let token = json_of(http.post(format!("{}/oauth/token", env.auth)).form(&form)).await;
    let token = token["access_token"].as_str().unwrap();
    for n in 0..60 {
        let planned = http
            .post(format!("{}/v1/tours", env.touring))
            .bearer_auth(token)
            .json(&json!({"name": format!("Paged tour {n}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(planned.status(), 201);
    }
    let c = browser(env).await;
    sign_in(env, &c, "maya").await;
    open(env, &c, "/m/touring").await;
    assert!(!text(&c, "table").await.contains("Paged tour 59"), "the first page holds the oldest 50");
    css(&c, "a[data-page=next]").await.click().await.unwrap();
    text_with(&c, "table", "Paged tour 59").await;
    assert!(present(&c, "a[data-page=first]").await);
    assert!(!present(&c, "a[data-page=next]").await, "two pages in all");
    c.close().await.unwrap();
}

/// Issue 20: the owner holds a conversation with the copilot in the console: it looks up her venues with
/// her access and runs a simulation, every turn kept and listed.
async fn owner_converses_with_the_copilot(env: &Env) {
    // By the wall clock encore's AI trial has ended: platform staff make it a plan (the Admin API).
    let http = reqwest::Client::new();
    let token = json_of(
        http.post(format!("{}/oauth/token", env.auth))
            .basic_auth("platform-admin", Some(ADMIN_SECRET))
            .form(&[("grant_type", "client_credentials")]),
    )
    .await;
    let activated = http
        .patch(format!("{}/admin/v1/companies/encore/subscriptions/enc-ai", env.core))
        .bearer_auth(token["access_token"].as_str().unwrap())
        .json(&json!({"status": "active"}))
        .send()
        .await
        .unwrap();
    assert!(activated.status().is_success(), "{}", activated.text().await.unwrap());

    let c = browser(env).await;
    sign_in(env, &c, "maya").await;
    open(env, &c, "/m/ai").await;
    css(&c, "#ai-title").await.send_keys("Autumn planning").await.unwrap();
    css(&c, "button[data-action='Start a conversation']").await.click().await.unwrap();
    text_with(&c, "main h1", "Autumn planning").await;
    css(&c, "h2#conversation-h[data-session]").await;
    css(&c, "#question").await.send_keys("Which venues are free on 2026-09-12?").await.unwrap();
    css(&c, "button[data-action=Ask]").await.click().await.unwrap();
    let answer = text_with(&c, "ol.conversation li.answer", "encore hall").await;
    assert!(answer.contains("available on 2026-09-12"), "{answer}");
    assert!(present(&c, "li.tool[data-tool=find_venues][data-outcome=ok]").await);
    css(&c, "#question").await.send_keys("Simulate a show at 45 EUR").await.unwrap();
    css(&c, "button[data-action=Ask]").await.click().await.unwrap();
    text_with(&c, "ol.conversation", "Across 10000 runs").await;
    assert!(present(&c, "li.tool[data-tool=simulate_event][data-outcome=ok]").await);
    shot(&c, "6-owner-converses-with-the-copilot").await;
    // The conversation is listed on the copilot's page, and opens again whole.
    open(env, &c, "/m/ai").await;
    let row = text_with(&c, "table", "Autumn planning").await;
    assert!(row.contains("Simulate a show at 45 EUR"), "{row}");
    css(&c, "table a[href^='/m/ai/sessions/']").await.click().await.unwrap();
    text_with(&c, "ol.conversation", "Which venues are free on 2026-09-12?").await;
    c.close().await.unwrap();
}

fn main() {
    let mut args = Arguments::from_args();
    // One deployment, one driver: the journeys run one after another.
    args.test_threads = Some(1);
    type Journey = for<'a> fn(&'a Env) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + 'a>>;
    let journeys: Vec<(&str, Journey)> = vec![
        ("journey_1_owner_creates_and_approves_an_invoice", |e| Box::pin(owner_creates_and_approves_an_invoice(e))),
        ("journey_2_booker_sees_why_not", |e| Box::pin(booker_sees_why_not(e))),
        ("journey_3_suspension_reaches_the_open_page", |e| Box::pin(suspension_reaches_the_open_page(e))),
        ("journey_4_member_cannot_manage", |e| Box::pin(member_cannot_manage(e))),
        ("journey_5_staff_override_reaches_the_member", |e| Box::pin(staff_override_reaches_the_member(e))),
        ("owner_manages_an_agent", |e| Box::pin(owner_manages_an_agent(e))),
        ("headers_cookies_and_escaping", |e| Box::pin(headers_cookies_and_escaping(e))),
        ("lists_come_in_pages", |e| Box::pin(lists_come_in_pages(e))),
        // Last: it turns encore's AI trial into a plan.
        ("owner_converses_with_the_copilot", |e| Box::pin(owner_converses_with_the_copilot(e))),
    ];
    let selected = journeys.iter().any(|(name, _)| args.filter.as_deref().is_none_or(|f| name.contains(f)));
    let env = if selected && !args.list { Some(Arc::new(start())) } else { None };
    let trials = journeys
        .into_iter()
        .map(|(name, journey)| {
            let env = env.clone();
            Trial::test(name, move || {
                let env = env.ok_or_else(|| Failed::from("the deployment did not start"))?;
                let runtime =
                    tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
                runtime.block_on(journey(&env));
                Ok(())
            })
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    drop(env);
    conclusion.exit();
}
