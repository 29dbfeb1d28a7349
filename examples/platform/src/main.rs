//! `kisum-platform`: the reference deployment (API.md §1). With no service named, Auth, Core, the console
//! and the six module servers run in one process on their ports, on the embedded SQLite store in `--data` (created
//! and seeded with the demo world on first start); it prints every URL and the demo credentials and stops
//! cleanly on Ctrl-C. Naming a service (`auth`, `core`, `finance`, …) runs that one alone, against
//! `--db sqlite://FILE` or `--db postgres://…`, so that several replicas can share one PostgreSQL.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use kisum_auth::boot::{Boot, Opened};
use kisum_auth::{AuthState, Settings};
use kisum_client::{Kisum, RemoteConfig};
use kisum_entitlements::SystemClock;
use kisum_modules::Module;
use tokio::sync::watch;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The Kisum reference deployment.
#[derive(Debug, Parser)]
#[command(name = "kisum-platform", version)]
struct Cli {
    #[command(subcommand)]
    service: Option<Service>,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    limits: kisum_server::LimitArgs,
    #[command(flatten)]
    tls: kisum_server::TlsArgs,
}

/// Where the state lives and what an empty store is seeded with.
#[derive(Debug, Clone, Args)]
struct StoreArgs {
    /// The embedded store's folder (holds `kisum.db` and its key-encryption key `kek`).
    #[arg(long, global = true, env = "KISUM_DATA", default_value = "./kisum-data")]
    data: PathBuf,
    /// The store: `sqlite://FILE` or `postgres://…`; default `kisum.db` in `--data`.
    #[arg(long, global = true, env = "KISUM_DB")]
    db: Option<kisum_server::DbUrl>,
    /// A world file (scenarios/README.md format) for an empty store; default: the demo world.
    #[arg(long, global = true, env = "KISUM_SEED_WORLD")]
    seed_world: Option<PathBuf>,
    /// The password of every seeded user (empty store only); default with the demo world: `kisum-demo`.
    #[arg(long, global = true, env = "KISUM_SEED_PASSWORD", hide_env_values = true)]
    seed_password: Option<kisum_client::Secret>,
    /// A file holding the key-encryption key (`KISUM_KEK` gives it directly).
    #[arg(long, global = true, env = "KISUM_KEK_FILE")]
    kek_file: Option<PathBuf>,
    /// The key-encryption key itself: set `KISUM_KEK` in the environment (a command line is visible to
    /// every user of the machine).
    #[arg(long, global = true, env = "KISUM_KEK", hide = true, hide_env_values = true)]
    kek: Option<kisum_client::Secret>,
    /// The secret of the `platform-admin` client (scopes `*`), at least 32 characters: set
    /// `KISUM_ADMIN_CLIENT_SECRET` in the environment. Without it one is generated and shown once.
    #[arg(long, global = true, env = "KISUM_ADMIN_CLIENT_SECRET", hide = true, hide_env_values = true)]
    admin_client_secret: Option<kisum_client::Secret>,
    /// How often replicas read the change log, in milliseconds (notifications wake them sooner).
    #[arg(long, global = true, env = "KISUM_POLL_MS", default_value_t = 250)]
    poll_ms: u64,
    /// Added to every default port (7400, 7401, 7402, 7410–7415): to run a second deployment beside one.
    #[arg(long, global = true, env = "KISUM_PORT_OFFSET", default_value_t = 0)]
    port_offset: u16,
}

#[derive(Debug, Subcommand)]
enum Service {
    /// Auth alone (default 127.0.0.1:7400).
    Auth(Listen),
    /// Core and the Admin API alone (default 127.0.0.1:7401).
    Core(Listen),
    /// The console, the reference web frontend, alone (default 127.0.0.1:7402).
    Console(ConsoleArgs),
    /// The finance module alone (default 127.0.0.1:7410).
    Finance(ModuleArgs),
    /// The artist module alone (7411).
    Artist(ModuleArgs),
    /// The venue module alone (7412).
    Venue(ModuleArgs),
    /// The promoters module alone (7413).
    Promoters(ModuleArgs),
    /// The touring module alone (7414).
    Touring(ModuleArgs),
    /// The ai module alone (7415).
    Ai(ModuleArgs),
}

#[derive(Debug, Clone, Args)]
struct Listen {
    /// Where to listen (any address; one off loopback without `--tls-cert` is served with a warning).
    #[arg(long, env = "KISUM_LISTEN")]
    listen: Option<SocketAddr>,
    /// The issuer Auth's tokens name; default Auth's URL (`http://127.0.0.1:7400`).
    #[arg(long, env = "KISUM_ISSUER")]
    issuer: Option<String>,
}

/// How a service that is not Auth or Core reaches them: its address, theirs, and its service client.
#[derive(Debug, Clone, Args)]
struct Reach {
    /// Where to listen (any address; one off loopback without `--tls-cert` is served with a warning).
    #[arg(long, env = "KISUM_LISTEN")]
    listen: Option<SocketAddr>,
    /// Auth's base URL.
    #[arg(long, env = "KISUM_AUTH_URL", default_value = "http://127.0.0.1:7400")]
    auth_url: String,
    /// Core's base URL.
    #[arg(long, env = "KISUM_CORE_URL", default_value = "http://127.0.0.1:7401")]
    core_url: String,
    /// The service's client (needs scope `auth:access:read`).
    #[arg(long, env = "KISUM_CLIENT_ID", default_value = "platform-admin")]
    client_id: String,
    /// Its secret; default `KISUM_ADMIN_CLIENT_SECRET`.
    #[arg(long, env = "KISUM_CLIENT_SECRET", hide_env_values = true)]
    client_secret: Option<kisum_client::Secret>,
}

impl Reach {
    /// The client secret, from `--client-secret`, else `admin` (`KISUM_ADMIN_CLIENT_SECRET`); `what` names
    /// the service.
    fn secret(&self, what: &str, admin: Option<&kisum_client::Secret>) -> Result<kisum_client::Secret, Error> {
        match self.client_secret.clone().or_else(|| admin.cloned()) {
            Some(s) => Ok(s),
            None => Err(format!("{what} needs its client secret: --client-secret or KISUM_ADMIN_CLIENT_SECRET").into()),
        }
    }
}

#[derive(Debug, Clone, Args)]
struct ModuleArgs {
    #[command(flatten)]
    reach: Reach,
    /// The issuer tokens name; default the Auth URL.
    #[arg(long, env = "KISUM_ISSUER")]
    issuer: Option<String>,
    /// How long a cached snapshot may serve while Auth is unreachable, in seconds (at most 300).
    #[arg(long, env = "KISUM_STALE_SECONDS", default_value_t = 300)]
    stale_seconds: u64,
    /// Start even when the client holds scopes beyond what a module needs (`*`, `admin:…`, such as
    /// `platform-admin`'s). Without it such a client is refused: register one with `auth:access:read`
    /// and `auth:support:record` (`POST /admin/v1/clients`).
    #[arg(long, env = "KISUM_ALLOW_ADMIN_CLIENT")]
    allow_admin_client: bool,
    /// Serve with actix-web through kisum-client's actix adapter instead of axum (touring only; built
    /// with feature `actix`).
    #[cfg(feature = "actix")]
    #[arg(long)]
    actix: bool,
}

#[derive(Debug, Clone, Args)]
struct ConsoleArgs {
    #[command(flatten)]
    reach: Reach,
    /// Each module's base URL as `NAME=URL` (repeatable); default the module's port on 127.0.0.1.
    #[arg(long = "module-url", value_parser = module_url)]
    module_urls: Vec<(String, String)>,
    /// Mark cookies `Secure` and `__Host-` prefixed (when the console is served over TLS).
    #[arg(long, env = "KISUM_SECURE_COOKIES")]
    secure_cookies: bool,
}

fn module_url(text: &str) -> Result<(String, String), String> {
    let (name, url) = text.split_once('=').ok_or("expected NAME=URL, such as finance=http://127.0.0.1:7410")?;
    if !Module::ALL.iter().any(|m| m.name() == name) {
        return Err(format!("`{name}` is not a module (finance, artist, venue, promoters, touring, ai)"));
    }
    Ok((name.to_owned(), url.trim_end_matches('/').to_owned()))
}

#[tokio::main]
async fn main() -> ExitCode {
    kisum_server::install_crypto();
    kisum_server::init_tracing();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kisum-platform: {e}");
            ExitCode::from(2)
        }
    }
}

fn boot(store: &StoreArgs) -> Boot {
    Boot {
        db: store.db.clone().map(|d| d.0),
        data: store.data.clone(),
        seed_world: store.seed_world.clone(),
        seed_password: store.seed_password.clone(),
        kek_file: store.kek_file.clone(),
        kek: store.kek.clone(),
        admin_secret: store.admin_client_secret.clone(),
    }
}

/// Ctrl-C (or SIGTERM) as a watch every server's graceful shutdown waits on.
fn shutdown_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { if let Some(t) = term.as_mut() { t.recv().await; } else { std::future::pending::<()>().await } } => {}
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        let _ = tx.send(true);
    });
    rx
}

/// What every server of this process shares: its bounds, its TLS, the CA bundle its clients trust, and
/// the offset of its default ports.
struct Net {
    limits: kisum_server::Limits,
    tls: Option<kisum_server::Tls>,
    ca_bundle: Option<Vec<u8>>,
    port_offset: u16,
}

impl Net {
    fn from(cli: &Cli) -> Result<Net, Error> {
        Ok(Net {
            limits: cli.limits.limits()?,
            tls: cli.tls.tls()?,
            ca_bundle: cli.tls.ca_bundle()?,
            port_offset: cli.store.port_offset,
        })
    }

    fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// A default port, shifted by `--port-offset`.
    fn port(&self, port: u16) -> Result<u16, Error> {
        Ok(port.checked_add(self.port_offset).ok_or("--port-offset takes the ports past 65535")?)
    }

    /// The URL of a service of this machine on its default port.
    fn local(&self, port: u16) -> Result<String, Error> {
        Ok(format!("{}://127.0.0.1:{}", self.scheme(), self.port(port)?))
    }

    /// Binds `addr`, or 127.0.0.1 on the default `port`; the listener and its URL.
    async fn listen(&self, addr: Option<SocketAddr>, port: u16) -> Result<(tokio::net::TcpListener, String), Error> {
        let addr = match addr {
            Some(addr) => addr,
            None => SocketAddr::from(([127, 0, 0, 1], self.port(port)?)),
        };
        let listener = kisum_server::bind(addr).await?;
        let url = format!("{}://{}", self.scheme(), listener.local_addr()?);
        Ok((listener, url))
    }

    /// Serves `app` on `listener` until `stop`.
    fn serve(
        &self,
        listener: tokio::net::TcpListener,
        app: axum::Router,
        mut stop: watch::Receiver<bool>,
    ) -> impl std::future::Future<Output = Result<(), Error>> + Send + 'static + use<> {
        let (limits, tls) = (self.limits, self.tls.clone());
        async move {
            kisum_server::serve_with(listener, app, limits, tls, async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await?;
            Ok(())
        }
    }

    /// The SDK's configuration for a module reaching Auth and Core.
    fn remote(&self, auth: &str, core: &str, client_id: &str, secret: &kisum_client::Secret) -> RemoteConfig {
        let mut config = RemoteConfig::new(auth, core, client_id, secret.expose());
        config.ca_bundle = self.ca_bundle.clone();
        config
    }
}

async fn run(cli: Cli) -> Result<(), Error> {
    // Every setting, secrets redacted.
    tracing::info!(settings = ?cli, "kisum-platform starting");
    let net = Net::from(&cli)?;
    let stop = shutdown_signal();
    match cli.service {
        None => all(&cli.store, &net, stop).await,
        Some(Service::Auth(l)) => {
            let opened = boot(&cli.store).open().await?;
            let (listener, url) = net.listen(l.listen, 7400).await?;
            let (state, tasks) =
                start_auth(&opened, l.issuer.unwrap_or_else(|| url.clone()), cli.store.poll_ms).await?;
            notes(&opened);
            println!("Auth       {url}   (store {})", opened.db);
            close_on(&stop, state.clone(), Vec::new());
            let served = net.serve(listener, kisum_auth::app(state), stop).await;
            tasks.into_iter().for_each(|t| t.abort());
            served
        }
        Some(Service::Core(l)) => {
            let opened = boot(&cli.store).open().await?;
            let (listener, url) = net.listen(l.listen, 7401).await?;
            let issuer = match l.issuer {
                Some(issuer) => issuer,
                None => net.local(7400)?,
            };
            let (app, tasks) = start_core(&opened, &issuer, cli.store.poll_ms, true).await?;
            println!("Core       {url}   (store {})", opened.db);
            let served = net.serve(listener, app, stop).await;
            tasks.into_iter().for_each(|t| t.abort());
            served
        }
        Some(Service::Console(c)) => console(c, cli.store.admin_client_secret.as_ref(), &net, stop).await,
        Some(Service::Finance(m)) => module(Module::Finance, m, &cli.store, &net, stop).await,
        Some(Service::Artist(m)) => module(Module::Artist, m, &cli.store, &net, stop).await,
        Some(Service::Venue(m)) => module(Module::Venue, m, &cli.store, &net, stop).await,
        Some(Service::Promoters(m)) => module(Module::Promoters, m, &cli.store, &net, stop).await,
        Some(Service::Touring(m)) => module(Module::Touring, m, &cli.store, &net, stop).await,
        Some(Service::Ai(m)) => module(Module::Ai, m, &cli.store, &net, stop).await,
    }
}

/// The console alone, reaching the other services by URL.
async fn console(
    c: ConsoleArgs,
    admin: Option<&kisum_client::Secret>,
    net: &Net,
    stop: watch::Receiver<bool>,
) -> Result<(), Error> {
    let secret = c.reach.secret("the console", admin)?;
    let mut modules = kisum_console::Config::default_modules(&format!("{}://127.0.0.1", net.scheme()), net.port_offset);
    for (name, url) in c.module_urls {
        if let Some(entry) = modules.iter_mut().find(|(m, _)| *m == name) {
            entry.1 = url;
        }
    }
    let config = kisum_console::Config {
        auth: c.reach.auth_url.trim_end_matches('/').to_owned(),
        core: c.reach.core_url.trim_end_matches('/').to_owned(),
        modules,
        client_id: c.reach.client_id,
        client_secret: secret,
        ca_bundle: net.ca_bundle.clone(),
        secure_cookies: c.secure_cookies,
    };
    let console = kisum_console::Console::new(config)?;
    let feed = console.follow();
    let (listener, url) = net.listen(c.reach.listen, 7402).await?;
    println!("Console    {url}");
    let served = net.serve(listener, kisum_console::app(console), stop).await;
    feed.abort();
    served
}

/// When `stop` fires: abort `feeds` (the modules' change-feed followers) and close Auth's streams.
fn close_on(stop: &watch::Receiver<bool>, auth: Arc<AuthState>, feeds: Vec<tokio::task::JoinHandle<()>>) {
    let mut stop = stop.clone();
    tokio::spawn(async move {
        let _ = stop.wait_for(|s| *s).await;
        feeds.iter().for_each(tokio::task::JoinHandle::abort);
        auth.close();
    });
}

fn notes(opened: &Opened) {
    for line in &opened.notes {
        println!("{line}");
    }
}

async fn start_auth(
    opened: &Opened,
    issuer: String,
    poll_ms: u64,
) -> Result<(Arc<AuthState>, Vec<tokio::task::JoinHandle<()>>), Error> {
    let settings = Settings::new(issuer, "kisum".parse()?);
    let kek = kisum_token::Kek::from_text(opened.kek.to_hex().as_str())?;
    let state = AuthState::open(opened.engine.clone(), kek, settings, Arc::new(SystemClock)).await?;
    let poll = Duration::from_millis(poll_ms);
    let tasks = vec![opened.engine.follow(poll), kisum_auth::background(state.clone())];
    Ok((state, tasks))
}

/// Core on the opened store, verifying with the keys Auth keeps there (followed as they rotate); `follow`
/// when its engine is its own (not shared with Auth in this process).
async fn start_core(
    opened: &Opened,
    issuer: &str,
    poll_ms: u64,
    follow: bool,
) -> Result<(axum::Router, Vec<tokio::task::JoinHandle<()>>), Error> {
    let start = kisum_core::Start {
        issuer: issuer.to_owned(),
        audience: "kisum".into(),
        platform_company: "kisum".parse()?,
        jwks: None,
    };
    let (app, mut tasks) = kisum_core::start(opened.engine.clone(), start).await?;
    if follow {
        tasks.push(opened.engine.follow(Duration::from_millis(poll_ms)));
    }
    Ok((app, tasks))
}

/// The SDK of a module, and its router, once the catalog names every permission of its route table.
async fn module_app(
    module: Module,
    config: RemoteConfig,
    companies: &[kisum_access::CompanyId],
) -> Result<(axum::Router, tokio::task::JoinHandle<()>), Error> {
    let (kisum, feed) = Kisum::connect(config, Arc::new(SystemClock)).await?;
    if let Err(e) = module.check_catalog(&kisum.source().catalog()) {
        feed.abort();
        return Err(format!("the {} module cannot start: {e}", module.name()).into());
    }
    Ok((module.router(kisum, companies), feed))
}

fn seed_companies(store: &StoreArgs) -> Result<Vec<kisum_access::CompanyId>, Error> {
    let world = boot(store).seed()?;
    Ok(world.companies.iter().filter_map(|c| c.id.parse().ok()).collect())
}

async fn module(
    module: Module,
    m: ModuleArgs,
    store: &StoreArgs,
    net: &Net,
    stop: watch::Receiver<bool>,
) -> Result<(), Error> {
    let secret = m.reach.secret("a module", store.admin_client_secret.as_ref())?;
    let mut config = net.remote(&m.reach.auth_url, &m.reach.core_url, &m.reach.client_id, &secret);
    if let Some(issuer) = m.issuer {
        config.issuer = issuer;
    }
    config.max_age = Duration::from_secs(m.stale_seconds.clamp(1, 300));
    if !m.allow_admin_client {
        least_privilege(&config, net).await?;
    }
    let companies = seed_companies(store)?;
    #[cfg(feature = "actix")]
    if m.actix {
        return actix_touring(module, config, &companies, m.reach.listen, net, stop).await;
    }
    let (app, feed) = module_app(module, config, &companies).await?;
    let (listener, url) = net.listen(m.reach.listen, module.default_port()).await?;
    println!("{:<10} {url}", module.name());
    let served = net.serve(listener, app, stop).await;
    feed.abort();
    served
}

/// Refuses a module's client whose scopes reach beyond what a module needs: a client that may administer
/// the platform must not sit in every module.
async fn least_privilege(config: &RemoteConfig, net: &Net) -> Result<(), Error> {
    let http = kisum_client::http_client(net.ca_bundle.as_deref())?;
    let auth = kisum_client::clients::AuthClient::new(http, config.auth_url.clone());
    let token = auth.client_credentials(&config.client_id, config.client_secret.expose(), None).await.map_err(|e| {
        format!("the module's client `{}` cannot sign in at {}: {e}", config.client_id, config.auth_url)
    })?;
    // Auth always names the scopes of a client-credentials token: an answer without them proves nothing.
    let scopes = token.scope.ok_or_else(|| format!("Auth did not say which scopes `{}` holds", config.client_id))?;
    let needed = [kisum_auth::ACCESS_READ, kisum_auth::SUPPORT_RECORD];
    let beyond: Vec<&str> = scopes.split_whitespace().filter(|s| !needed.contains(s)).collect();
    if beyond.iter().any(|s| *s == "*" || s.starts_with("admin:")) {
        return Err(format!(
            "--client-id {}: the client holds `{}`, far more than a module needs ({}); register a client with \
             only those (POST /admin/v1/clients) or start with --allow-admin-client",
            config.client_id,
            beyond.join(" "),
            needed.join(", ")
        )
        .into());
    }
    Ok(())
}

/// The touring module on actix-web (its own thread and actix system), until `stop`.
#[cfg(feature = "actix")]
async fn actix_touring(
    module: Module,
    config: RemoteConfig,
    companies: &[kisum_access::CompanyId],
    listen_on: Option<SocketAddr>,
    net: &Net,
    mut stop: watch::Receiver<bool>,
) -> Result<(), Error> {
    if module != Module::Touring {
        return Err("--actix serves the touring module only".into());
    }
    if net.tls.is_some() {
        return Err("--actix serves plain HTTP only: leave out --tls-cert, or serve touring on axum".into());
    }
    let (kisum, feed) = Kisum::connect(config, Arc::new(SystemClock)).await?;
    module.check_catalog(&kisum.source().catalog())?;
    let addr = match listen_on {
        Some(addr) => addr,
        None => SocketAddr::from(([127, 0, 0, 1], net.port(module.default_port())?)),
    };
    let configure = kisum_modules::actix::touring(kisum, companies);
    // actix-web runs on its own (single-threaded) system, in a thread of its own.
    let (tx, rx) = tokio::sync::oneshot::channel();
    let thread = std::thread::spawn(move || -> std::io::Result<()> {
        actix_web::rt::System::new().block_on(async move {
            let bound = actix_web::HttpServer::new(move || actix_web::App::new().configure(configure.clone()))
                .workers(1)
                .disable_signals()
                .bind(addr);
            let server = match bound {
                Ok(s) => s,
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    return Ok(());
                }
            };
            let bound_to = server.addrs().first().copied().unwrap_or(addr);
            let server = server.run();
            let _ = tx.send(Ok((server.handle(), bound_to)));
            server.await
        })
    });
    let (handle, bound_to) = rx.await.map_err(|_| "actix-web did not start")??;
    println!("{:<10} http://{bound_to}   (actix-web)", module.name());
    let _ = stop.wait_for(|s| *s).await;
    handle.stop(true).await;
    feed.abort();
    thread.join().map_err(|_| "the actix-web thread panicked")??;
    Ok(())
}

/// The client the one command's console follows the feed with (`auth:access:read` only).
const CONSOLE_CLIENT: &str = "kisum-console";

/// The client of `module` in the one command: `kisum-module-finance`, ….
fn module_client(module: Module) -> String {
    format!("kisum-module-{}", module.name())
}

/// The clients the one command registers for its own services, with the least each needs: a module
/// reads access (snapshots, the feed, revocations) and records support sessions' actions; the console
/// only follows the feed.
fn own_clients() -> Vec<(String, Vec<String>)> {
    let module = vec![kisum_auth::ACCESS_READ.to_owned(), kisum_auth::SUPPORT_RECORD.to_owned()];
    let mut clients: Vec<(String, Vec<String>)> =
        Module::ALL.iter().map(|m| (module_client(*m), module.clone())).collect();
    clients.push((CONSOLE_CLIENT.to_owned(), vec![kisum_auth::ACCESS_READ.to_owned()]));
    clients
}

/// Everything in one process on the default ports.
async fn all(store: &StoreArgs, net: &Net, stop: watch::Receiver<bool>) -> Result<(), Error> {
    let opened = boot(store).open().await?;
    let (auth_listener, auth_url) = net.listen(None, 7400).await?;
    let (core_listener, core_url) = net.listen(None, 7401).await?;
    let (auth, mut tasks) = start_auth(&opened, auth_url.clone(), store.poll_ms).await?;
    // Core shares the engine with Auth (one process, one writer): it needs no follower of its own.
    let (core, core_tasks) = start_core(&opened, &auth_url, store.poll_ms, false).await?;
    tasks.extend(core_tasks);
    let mut servers = tokio::task::JoinSet::new();
    servers.spawn(net.serve(auth_listener, kisum_auth::app(auth.clone()), stop.clone()));
    servers.spawn(net.serve(core_listener, core, stop.clone()));
    // The modules and the console reach Auth and Core over loopback like any would, each with a service
    // client of its own holding only what it needs, whose secret is made afresh at every start.
    let store = opened.engine.store();
    let mut secrets = std::collections::HashMap::new();
    for (client_id, scopes) in own_clients() {
        let (secret, hash) = kisum_auth::clients::generate()?;
        let client = kisum_store::ServiceClient {
            client_id: client_id.clone(),
            secret_hash: hash,
            scopes,
            company: None,
            agent: None,
            created_at: kisum_entitlements::Timestamp::now().unix_seconds(),
        };
        store.put_service_client(&client).await?;
        secrets.insert(client_id, kisum_client::Secret::from(secret));
    }
    let secret_of = |id: &str| secrets.get(id).cloned().ok_or_else(|| format!("no client `{id}` was made"));
    let companies = opened.engine.directory().company_ids();
    let mut feeds = Vec::new();
    let (console_listener, console_url) = net.listen(None, 7402).await?;
    let mut lines = vec![
        format!("Console    {console_url}   (open it in a browser)"),
        format!("Auth       {auth_url}   (OpenAPI {auth_url}/openapi.json)"),
        format!("Core       {core_url}   (Admin API {core_url}/admin/v1)"),
    ];
    for module in Module::ALL {
        let id = module_client(module);
        let config = net.remote(&auth_url, &core_url, &id, &secret_of(&id)?);
        let (app, feed) = module_app(module, config, &companies).await?;
        feeds.push(feed);
        let (listener, url) = net.listen(None, module.default_port()).await?;
        lines.push(format!("{:<10} {url}", module.name()));
        servers.spawn(net.serve(listener, app, stop.clone()));
    }
    // The console reaches everything over loopback with the users' tokens, and follows the feed with
    // the modules' client.
    let console = kisum_console::Console::new(kisum_console::Config {
        auth: auth_url.clone(),
        core: core_url.clone(),
        modules: kisum_console::Config::default_modules(&format!("{}://127.0.0.1", net.scheme()), net.port_offset),
        client_id: CONSOLE_CLIENT.into(),
        client_secret: secret_of(CONSOLE_CLIENT)?,
        ca_bundle: net.ca_bundle.clone(),
        // Over TLS the cookies are `Secure` and `__Host-` prefixed.
        secure_cookies: net.tls.is_some(),
    })?;
    feeds.push(console.follow());
    servers.spawn(net.serve(console_listener, kisum_console::app(console), stop.clone()));
    // On Ctrl-C the modules stop following the feed and Auth ends its streams, so that every server's
    // graceful shutdown can finish (an open event stream would hold it forever).
    close_on(&stop, auth, feeds);
    println!("Kisum reference deployment (store {}):", opened.db);
    for line in lines {
        println!("  {line}");
    }
    notes(&opened);
    // The demo sign-in, only where the demo users' password still opens this store.
    if opened.notes.iter().any(|n| n.starts_with("Demo users:")) {
        println!(
            "Sign in:  open {console_url} as maya (owner), leo (booker) or ops (platform staff), password {}",
            kisum_auth::boot::DEMO_PASSWORD
        );
        println!(
            "   or:    curl -s {auth_url}/v1/sessions -H 'content-type: application/json' -d '{{\"user\":\"maya\",\"password\":\"{}\"}}'",
            kisum_auth::boot::DEMO_PASSWORD
        );
    }
    println!("Ctrl-C stops everything.");
    let mut result = Ok(());
    while let Some(done) = servers.join_next().await {
        if let Ok(Err(e)) = done {
            result = Err(e);
        }
    }
    tasks.into_iter().for_each(|t| t.abort());
    println!("Stopped.");
    result
}
