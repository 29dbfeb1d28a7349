//! `kisum-core`: Core and the Admin API on a store, until Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use kisum_access::doc::WorldDoc;
use kisum_token::Jwks;

/// Core and the Admin API of the Kisum platform (API.md §3).
#[derive(Debug, Parser)]
#[command(name = "kisum-core", version)]
struct Config {
    /// Where to listen (any address; one off loopback without `--tls-cert` is served with a warning).
    #[arg(long, env = "KISUM_CORE_LISTEN", default_value = "127.0.0.1:7401")]
    listen: SocketAddr,
    /// The store: `sqlite://FILE` or `postgres://…`. Defaults to `kisum.db` in `--data`.
    #[arg(long, env = "KISUM_DB")]
    db: Option<kisum_server::DbUrl>,
    /// The folder of the embedded store.
    #[arg(long, env = "KISUM_DATA", default_value = "./kisum-data")]
    data: PathBuf,
    /// A world file (scenarios/README.md format) to seed an empty store with; default: the demo world.
    #[arg(long, env = "KISUM_SEED_WORLD")]
    seed_world: Option<PathBuf>,
    /// A JSON Web Key Set file to verify tokens with. Default: the keys Auth publishes in the same store,
    /// followed as they rotate.
    #[arg(long, env = "KISUM_JWKS")]
    jwks: Option<PathBuf>,
    /// The issuer (`iss`) tokens must name.
    #[arg(long, env = "KISUM_ISSUER", default_value = "http://127.0.0.1:7400")]
    issuer: String,
    /// The audience (`aud`) tokens must name.
    #[arg(long, env = "KISUM_AUDIENCE", default_value = "kisum")]
    audience: String,
    /// The company whose members with `admin:…` permissions are platform staff.
    #[arg(long, env = "KISUM_PLATFORM_COMPANY", default_value = "kisum")]
    platform_company: String,
    /// How often to read the change log for other replicas' writes, in milliseconds (notifications
    /// wake the reader sooner on PostgreSQL).
    #[arg(long, env = "KISUM_POLL_MS", default_value_t = 250)]
    poll_ms: u64,
    #[command(flatten)]
    limits: kisum_server::LimitArgs,
    #[command(flatten)]
    tls: kisum_server::TlsArgs,
}

const DEMO_WORLD: &str = include_str!("../../demo/world.json");

#[tokio::main]
async fn main() -> ExitCode {
    kisum_server::install_crypto();
    kisum_server::init_tracing();
    let config = Config::parse();
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kisum-core: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run(config: Config) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // Every setting, secrets redacted.
    tracing::info!(settings = ?config, "kisum-core starting");
    let seed: WorldDoc = match &config.seed_world {
        Some(path) => {
            serde_json::from_str(&std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?)
                .map_err(|e| format!("{}: {e}", path.display()))?
        }
        // The demo world on the embedded default only (API.md §1); a store of its own starts with the
        // catalog and nothing else.
        None if config.db.is_none() => serde_json::from_str(DEMO_WORLD)?,
        None => {
            let demo: WorldDoc = serde_json::from_str(DEMO_WORLD)?;
            WorldDoc { catalog: demo.catalog, ..WorldDoc::default() }
        }
    };
    let limits = config.limits.limits()?;
    let tls = config.tls.tls()?;
    let scheme = config.tls.scheme();
    let db = match &config.db {
        Some(url) => url.0.clone(),
        None => {
            std::fs::create_dir_all(&config.data).map_err(|e| format!("{}: {e}", config.data.display()))?;
            format!("sqlite://{}", config.data.join("kisum.db").display())
        }
    };
    let store = kisum_store::connect(&db).await?;
    let jwks = match &config.jwks {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            Some(Jwks::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?)
        }
        None => None,
    };
    // A store that holds state is opened as it is: a seed world is only for an empty one.
    let holds_state = store.head().await? > 0 || store.latest_checkpoint().await?.is_some();
    if holds_state && let Some(path) = &config.seed_world {
        tracing::warn!(seed_world = %path.display(), "the store holds state: --seed-world is ignored");
    }
    let engine = Arc::new(kisum_store::Engine::open(store, (!holds_state).then_some(&seed)).await?);
    let follower = engine.follow(Duration::from_millis(config.poll_ms));
    let start = kisum_core::Start {
        issuer: config.issuer.clone(),
        audience: config.audience.clone(),
        platform_company: config.platform_company.parse()?,
        jwks,
    };
    let (app, tasks) = kisum_core::start(engine.clone(), start).await?;
    let listener = kisum_server::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    tracing::info!(store = %kisum_store::redact(&db), seq = engine.seq(), "Core ready");
    println!(
        "Core on {scheme}://{addr}  (OpenAPI: {scheme}://{addr}/openapi.json; store {})",
        kisum_store::redact(&db)
    );
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    kisum_server::serve_with(listener, app, limits, tls, shutdown).await?;
    follower.abort();
    tasks.iter().for_each(tokio::task::JoinHandle::abort);
    Ok(())
}
