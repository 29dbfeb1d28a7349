//! `kisum-platform`: the reference deployment (API.md §1). With no service named, Auth, Core, the console
//! and the six module servers run in one process on their ports, on the embedded SQLite store in `--data` (created
//! and seeded with the demo world on first start); it prints every URL and the demo credentials and stops
//! cleanly on Ctrl-C. Naming a service (`auth`, `core`, `finance`, …) runs that one alone, against
//! `--db sqlite://FILE` or `--db postgres://…`, so that several replicas can share one PostgreSQL.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use kisum_auth::AuthState;
use kisum_auth::boot::{Boot, Opened};
use kisum_client::{RemoteArgs, RemoteConfig};
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
    boot: Boot,
    /// Auth's and Core's claims in the one command (each service alone takes them too).
    #[command(flatten)]
    claims: kisum_auth::Config,
    /// Added to every default port (7400, 7401, 7402, 7410–7415): to run a second deployment beside one.
    #[arg(long, global = true, env = "KISUM_PORT_OFFSET", default_value_t = 0)]
    port_offset: u16,
    #[command(flatten)]
    limits: kisum_server::LimitArgs,
    #[command(flatten)]
    tls: kisum_server::TlsArgs,
    #[command(flatten)]
    copilot: CopilotArgs,
    #[command(flatten)]
    mcp: McpArgs,
}

/// The ai module's copilot: where its lookups find the other modules, and who plans (global: before or
/// after the subcommand).
#[derive(Debug, Clone, Args)]
struct CopilotArgs {
    /// A module's base URL for the copilot's lookups, as `NAME=URL` (repeatable); default: the module's
    /// port on 127.0.0.1.
    #[arg(long = "module-url", value_parser = module_url, global = true)]
    module_urls: Vec<(Module, String)>,
    /// Plan with an OpenAI-compatible chat-completions API at this base URL (up to `/chat/completions`,
    /// such as `https://api.openai.com/v1`) instead of the embedded intent rules.
    #[arg(long, env = "KISUM_COPILOT_PROVIDER_URL", global = true)]
    copilot_provider_url: Option<String>,
    /// The provider's model.
    #[arg(long, env = "KISUM_COPILOT_MODEL", default_value = "gpt-4o-mini", global = true)]
    copilot_model: String,
    /// The provider's API key (sent as a bearer token; never logged).
    #[arg(long, env = "KISUM_COPILOT_API_KEY", global = true)]
    copilot_api_key: Option<kisum_client::Secret>,
}

impl CopilotArgs {
    fn config(&self, net: &Net) -> Result<kisum_modules::CopilotConfig, Error> {
        let mut modules = std::collections::BTreeMap::new();
        for module in Module::ALL {
            modules.insert(module, format!("{}:{}", net.base(), net.port(module.default_port())?));
        }
        modules.extend(self.module_urls.iter().cloned());
        let planner = match &self.copilot_provider_url {
            None => kisum_modules::PlannerConfig::Rules,
            Some(url) => kisum_modules::PlannerConfig::OpenAi {
                base_url: url.clone(),
                model: self.copilot_model.clone(),
                api_key: self.copilot_api_key.clone(),
            },
        };
        let http = kisum_client::http_client(net.ca_bundle.as_deref())?;
        Ok(kisum_modules::CopilotConfig { modules, http, planner })
    }
}

/// The ai module's MCP endpoint: where clients reach it, and which `Host`s and `Origin`s it accepts
/// (global: before or after the subcommand).
#[derive(Debug, Clone, Args)]
struct McpArgs {
    /// The URL clients reach the ai module at, when not the one it listens on (behind a proxy): the
    /// MCP endpoint's protected-resource metadata names `<URL>/mcp`.
    #[arg(long, env = "KISUM_PUBLIC_URL", global = true)]
    public_url: Option<String>,
    /// A `Host` the MCP endpoint accepts besides loopback (`ai.example.com` or `ai.example.com:443`;
    /// repeatable). Others are refused: DNS rebinding.
    #[arg(long = "mcp-allowed-host", env = "KISUM_MCP_ALLOWED_HOSTS", value_delimiter = ',', global = true)]
    allowed_hosts: Vec<String>,
    /// A browser origin the MCP endpoint accepts (`https://app.example.com:443`; repeatable). Without
    /// one, requests that carry an `Origin` are refused.
    #[arg(long = "mcp-allowed-origin", env = "KISUM_MCP_ALLOWED_ORIGINS", value_delimiter = ',', global = true)]
    allowed_origins: Vec<String>,
}

impl McpArgs {
    /// The endpoint of an ai module listening at `url`, its tokens issued by `issuer`.
    fn config(&self, url: &str, issuer: &str) -> kisum_modules::McpConfig {
        let public = self.public_url.as_deref().unwrap_or(url).trim_end_matches('/');
        let mut allowed_hosts: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
        // The host it is reached at, when that is not loopback.
        if let Some(host) = public.split_once("://").map(|(_, rest)| rest.split('/').next().unwrap_or(rest)) {
            allowed_hosts.push(host.to_owned());
        }
        allowed_hosts.extend(self.allowed_hosts.iter().cloned());
        kisum_modules::McpConfig {
            resource: format!("{public}/mcp"),
            authorization_servers: vec![issuer.to_owned()],
            allowed_hosts,
            allowed_origins: self.allowed_origins.clone(),
        }
    }
}

fn module_url(text: &str) -> Result<(Module, String), String> {
    let (name, url) = text.split_once('=').ok_or("expected NAME=URL, such as venue=http://127.0.0.1:7412")?;
    let module = name.parse::<Module>().map_err(|e| e.to_string())?;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!("`{url}` is not an http:// or https:// URL"));
    }
    Ok((module, url.trim_end_matches('/').to_owned()))
}

#[derive(Debug, Subcommand)]
enum Service {
    /// Auth alone (default 127.0.0.1:7400).
    Auth(AuthArgs),
    /// Core and the Admin API alone (default 127.0.0.1:7401).
    Core(CoreArgs),
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

/// Where a service listens: any address (one off loopback without `--tls-cert` is served with a
/// warning); default its port on 127.0.0.1.
#[derive(Debug, Clone, Args)]
struct Listen {
    /// Where to listen.
    #[arg(long, env = "KISUM_LISTEN")]
    listen: Option<SocketAddr>,
}

#[derive(Debug, Clone, Args)]
struct AuthArgs {
    #[command(flatten)]
    listen: Listen,
    #[command(flatten)]
    auth: kisum_auth::Config,
}

#[derive(Debug, Clone, Args)]
struct CoreArgs {
    #[command(flatten)]
    listen: Listen,
    #[command(flatten)]
    core: kisum_core::Config,
}

#[derive(Debug, Clone, Args)]
struct ConsoleArgs {
    #[command(flatten)]
    listen: Listen,
    #[command(flatten)]
    console: kisum_console::Args,
}

#[derive(Debug, Clone, Args)]
struct ModuleArgs {
    #[command(flatten)]
    listen: Listen,
    #[command(flatten)]
    remote: RemoteArgs,
    #[command(flatten)]
    verify: kisum_client::VerifyArgs,
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

/// `remote` with the client secret `KISUM_ADMIN_CLIENT_SECRET` when it names none (a module or console
/// started beside a `platform-admin` of the operator's choosing).
fn with_admin_secret(remote: &RemoteArgs, admin: Option<&kisum_client::Secret>) -> RemoteArgs {
    let mut remote = remote.clone();
    if remote.client_secret.is_none() {
        remote.client_secret = admin.cloned();
    }
    remote
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
            port_offset: cli.port_offset,
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

    /// The SDK's configuration for a service of the one command reaching Auth and Core.
    fn remote(&self, auth: &str, core: &str, client_id: &str, secret: &kisum_client::Secret) -> RemoteConfig {
        let mut config = RemoteConfig::new(auth, core, client_id, secret.expose());
        config.ca_bundle = self.ca_bundle.clone();
        config
    }

    /// The base of the modules' default URLs (`http://127.0.0.1`).
    fn base(&self) -> String {
        format!("{}://127.0.0.1", self.scheme())
    }
}

async fn run(cli: Cli) -> Result<(), Error> {
    // Every setting, secrets redacted.
    tracing::info!(settings = ?cli, "kisum-platform starting");
    let net = Net::from(&cli)?;
    let stop = shutdown_signal();
    let admin = cli.boot.admin_secret.as_ref();
    match cli.service {
        None => all(&cli.boot, &cli.claims, &cli.copilot, &cli.mcp, &net, stop).await,
        Some(Service::Auth(a)) => {
            let opened = cli.boot.open().await?;
            let (listener, url) = net.listen(a.listen.listen, 7400).await?;
            let auth = kisum_auth::start(&opened, a.auth.settings(&url), Some(cli.boot.store.poll())).await?;
            notes(&opened);
            println!("Auth       {url}   (store {})", opened.db);
            close_on(&stop, auth.state.clone(), Vec::new());
            let served = net.serve(listener, auth.router, stop).await;
            auth.tasks.iter().for_each(tokio::task::JoinHandle::abort);
            served
        }
        Some(Service::Core(c)) => {
            let start = c.core.start(&net.local(7400)?)?;
            let opened = cli.boot.store.open().await?;
            let (listener, url) = net.listen(c.listen.listen, 7401).await?;
            let (app, mut tasks) = kisum_core::start(opened.engine.clone(), start).await?;
            tasks.push(opened.engine.follow(cli.boot.store.poll()));
            println!("Core       {url}   (store {})", opened.db);
            let served = net.serve(listener, app, stop).await;
            tasks.iter().for_each(tokio::task::JoinHandle::abort);
            served
        }
        Some(Service::Console(c)) => {
            let mut args = c.console.clone();
            args.remote = with_admin_secret(&args.remote, admin);
            let config = args.config(&net.base(), net.port_offset, net.ca_bundle.clone())?;
            let (app, feed) = kisum_console::start(config)?;
            let (listener, url) = net.listen(c.listen.listen, 7402).await?;
            println!("Console    {url}");
            let served = net.serve(listener, app, stop).await;
            feed.abort();
            served
        }
        Some(Service::Finance(m)) => module(Module::Finance, m, &cli.boot, (&cli.copilot, &cli.mcp), &net, stop).await,
        Some(Service::Artist(m)) => module(Module::Artist, m, &cli.boot, (&cli.copilot, &cli.mcp), &net, stop).await,
        Some(Service::Venue(m)) => module(Module::Venue, m, &cli.boot, (&cli.copilot, &cli.mcp), &net, stop).await,
        Some(Service::Promoters(m)) => {
            module(Module::Promoters, m, &cli.boot, (&cli.copilot, &cli.mcp), &net, stop).await
        }
        Some(Service::Touring(m)) => module(Module::Touring, m, &cli.boot, (&cli.copilot, &cli.mcp), &net, stop).await,
        Some(Service::Ai(m)) => module(Module::Ai, m, &cli.boot, (&cli.copilot, &cli.mcp), &net, stop).await,
    }
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

/// The companies of the seed world: a module standalone gives each one record of each kind.
fn seed_companies(boot: &Boot) -> Result<Vec<kisum_access::CompanyId>, Error> {
    let world = boot.seed()?;
    Ok(world.companies.iter().filter_map(|c| c.id.parse().ok()).collect())
}

async fn module(
    module: Module,
    m: ModuleArgs,
    boot: &Boot,
    (copilot, mcp): (&CopilotArgs, &McpArgs),
    net: &Net,
    stop: watch::Receiver<bool>,
) -> Result<(), Error> {
    let mut config = with_admin_secret(&m.remote, boot.admin_secret.as_ref()).config(net.ca_bundle.clone())?;
    m.verify.apply(&mut config);
    if !m.allow_admin_client {
        least_privilege(&config, net).await?;
    }
    let companies = seed_companies(boot)?;
    // The module's records live in the store's database, in tables of their own.
    let db = kisum_modules::ModuleDb::connect(&boot.store.db_url()?).await?;
    #[cfg(feature = "actix")]
    if m.actix {
        return actix_touring(module, config, &companies, &db, m.listen.listen, net, stop).await;
    }
    let (listener, url) = net.listen(m.listen.listen, module.default_port()).await?;
    let options =
        kisum_modules::Options { db: Some(db), copilot: copilot.config(net)?, mcp: mcp.config(&url, &config.issuer) };
    let (app, feed) = module.start(config, &companies, &options).await?;
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
    db: &kisum_modules::ModuleDb,
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
    let (kisum, feed) = kisum_client::Kisum::connect(config, Arc::new(kisum_entitlements::SystemClock)).await?;
    module.check_catalog(&kisum.source().catalog())?;
    let addr = match listen_on {
        Some(addr) => addr,
        None => SocketAddr::from(([127, 0, 0, 1], net.port(module.default_port())?)),
    };
    let configure = kisum_modules::actix::touring(kisum, companies, Some(db)).await?;
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
async fn all(
    boot: &Boot,
    claims: &kisum_auth::Config,
    copilot: &CopilotArgs,
    mcp: &McpArgs,
    net: &Net,
    stop: watch::Receiver<bool>,
) -> Result<(), Error> {
    let opened = boot.open().await?;
    let (auth_listener, auth_url) = net.listen(None, 7400).await?;
    let (core_listener, core_url) = net.listen(None, 7401).await?;
    let settings = claims.settings(&auth_url);
    let core_start = kisum_core::Start {
        issuer: settings.issuer.clone(),
        audience: settings.audience.clone(),
        platform_company: settings.platform_company.clone(),
        jwks: None,
    };
    let (issuer, audience) = (settings.issuer.clone(), settings.audience.clone());
    let started = kisum_auth::start(&opened, settings, Some(boot.store.poll())).await?;
    let (auth, mut tasks) = (started.state, started.tasks);
    // Core shares the engine with Auth (one process, one writer): it needs no follower of its own.
    let (core, core_tasks) = kisum_core::start(opened.engine.clone(), core_start).await?;
    tasks.extend(core_tasks);
    let mut servers = tokio::task::JoinSet::new();
    servers.spawn(net.serve(auth_listener, started.router, stop.clone()));
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
    // What the modules keep (their records, the ai module's usage and conversations) lives in the same
    // database as the store, in tables of their own, through one pool they share.
    let mut options = kisum_modules::Options {
        db: Some(kisum_modules::ModuleDb::connect(&boot.store.db_url()?).await?),
        copilot: copilot.config(net)?,
        mcp: kisum_modules::McpConfig::default(),
    };
    let mut feeds = Vec::new();
    let (console_listener, console_url) = net.listen(None, 7402).await?;
    let mut lines = vec![
        format!("Console    {console_url}   (open it in a browser)"),
        format!("Auth       {auth_url}   (OpenAPI {auth_url}/openapi.json)"),
        format!("Core       {core_url}   (Admin API {core_url}/admin/v1)"),
    ];
    for module in Module::ALL {
        let id = module_client(module);
        let mut config = net.remote(&auth_url, &core_url, &id, &secret_of(&id)?);
        config.issuer.clone_from(&issuer);
        config.audience.clone_from(&audience);
        let (listener, url) = net.listen(None, module.default_port()).await?;
        options.mcp = mcp.config(&url, &config.issuer);
        let (app, feed) = module.start(config, &companies, &options).await?;
        feeds.push(feed);
        lines.push(format!("{:<10} {url}", module.name()));
        servers.spawn(net.serve(listener, app, stop.clone()));
    }
    // The console reaches everything over loopback with the users' tokens, and follows the feed with
    // the modules' client.
    let (console, feed) = kisum_console::start(kisum_console::Config {
        auth: auth_url.clone(),
        core: core_url.clone(),
        modules: kisum_console::Config::default_modules(&net.base(), net.port_offset),
        client_id: CONSOLE_CLIENT.into(),
        client_secret: secret_of(CONSOLE_CLIENT)?,
        ca_bundle: net.ca_bundle.clone(),
        // Over TLS the cookies are `Secure` and `__Host-` prefixed.
        secure_cookies: net.tls.is_some(),
    })?;
    feeds.push(feed);
    servers.spawn(net.serve(console_listener, console, stop.clone()));
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
