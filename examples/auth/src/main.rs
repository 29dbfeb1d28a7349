//! `kisum-auth`: Auth on a store, until Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use kisum_auth::{AuthState, Settings, StartError};
use kisum_entitlements::SystemClock;

/// Auth: sessions, tokens, signing keys, access decisions, access writes and the change feed (API.md §2).
#[derive(Debug, Parser)]
#[command(name = "kisum-auth", version)]
struct Config {
    /// Where to listen (any address; one off loopback without `--tls-cert` is served with a warning).
    #[arg(long, env = "KISUM_AUTH_LISTEN", default_value = "127.0.0.1:7400")]
    listen: SocketAddr,
    /// The store: `sqlite://FILE` or `postgres://…`. Defaults to `kisum.db` in `--data`.
    #[arg(long, env = "KISUM_DB")]
    db: Option<kisum_server::DbUrl>,
    /// The folder of the embedded store (and of its generated key-encryption key).
    #[arg(long, env = "KISUM_DATA", default_value = "./kisum-data")]
    data: PathBuf,
    /// A world file (scenarios/README.md format) to seed an empty store with; default: the demo world.
    #[arg(long, env = "KISUM_SEED_WORLD")]
    seed_world: Option<PathBuf>,
    /// The password every seeded user gets (on an empty store only). Default with the demo world:
    /// `kisum-demo`.
    #[arg(long, env = "KISUM_SEED_PASSWORD", hide_env_values = true)]
    seed_password: Option<kisum_server::Secret>,
    /// A file holding the key-encryption key (64 hex digits or base64 of 32 bytes). `KISUM_KEK` gives it
    /// directly. Without either, the embedded store's `kek` file beside the database is used, created
    /// (mode 0600) on first start; a PostgreSQL store requires one.
    #[arg(long, env = "KISUM_KEK_FILE")]
    kek_file: Option<PathBuf>,
    /// The key-encryption key itself: set `KISUM_KEK` in the environment (a command line is visible to
    /// every user of the machine).
    #[arg(long, env = "KISUM_KEK", hide = true, hide_env_values = true)]
    kek: Option<kisum_server::Secret>,
    /// The secret of the `platform-admin` client (scopes `*`), at least 32 characters: set
    /// `KISUM_ADMIN_CLIENT_SECRET` in the environment. Without it one is generated and shown once.
    #[arg(long, env = "KISUM_ADMIN_CLIENT_SECRET", hide = true, hide_env_values = true)]
    admin_client_secret: Option<kisum_server::Secret>,
    /// The issuer (`iss`) of Auth's tokens; default `http://` and the listening address.
    #[arg(long, env = "KISUM_ISSUER")]
    issuer: Option<String>,
    /// The audience (`aud`) of Auth's tokens.
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

#[tokio::main]
async fn main() -> ExitCode {
    kisum_server::install_crypto();
    kisum_server::init_tracing();
    let config = Config::parse();
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kisum-auth: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run(config: Config) -> Result<(), StartError> {
    // Every setting, secrets redacted.
    tracing::info!(settings = ?config, "kisum-auth starting");
    let limits = config.limits.limits()?;
    let tls = config.tls.tls()?;
    let scheme = config.tls.scheme();
    let boot = kisum_auth::boot::Boot {
        db: config.db.clone().map(|d| d.0),
        data: config.data.clone(),
        seed_world: config.seed_world.clone(),
        seed_password: config.seed_password.clone(),
        kek_file: config.kek_file.clone(),
        kek: config.kek.clone(),
        admin_secret: config.admin_client_secret.clone(),
    };
    let opened = boot.open().await?;
    let listener = kisum_server::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let mut settings = Settings::new(
        config.issuer.clone().unwrap_or_else(|| format!("{scheme}://{addr}")),
        config.platform_company.parse()?,
    );
    settings.audience = config.audience.clone();
    let follower = opened.engine.follow(Duration::from_millis(config.poll_ms));
    let state = AuthState::open(opened.engine.clone(), opened.kek, settings, Arc::new(SystemClock)).await?;
    let background = kisum_auth::background(state.clone());
    for line in &opened.notes {
        println!("{line}");
    }
    println!(
        "Auth on {scheme}://{addr}  (OpenAPI: {scheme}://{addr}/openapi.json; JWKS: {scheme}://{addr}/.well-known/jwks.json)"
    );
    let closing = state.clone();
    let shutdown = async move {
        let _ = tokio::signal::ctrl_c().await;
        closing.close();
    };
    kisum_server::serve_with(listener, kisum_auth::app(state), limits, tls, shutdown).await?;
    follower.abort();
    background.abort();
    Ok(())
}
