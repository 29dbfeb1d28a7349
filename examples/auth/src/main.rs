//! `kisum-auth`: Auth on a store, until Ctrl-C. Only composes what `kisum-auth` and `kisum-server`
//! export: [`Boot`](kisum_auth::boot::Boot) opens the store, [`kisum_auth::start`] starts Auth on it.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use kisum_auth::StartError;
use kisum_auth::boot::Boot;

/// Auth: sessions, tokens, signing keys, access decisions, access writes and the change feed (API.md §2).
#[derive(Debug, Parser)]
#[command(name = "kisum-auth", version)]
struct Cli {
    /// Where to listen (any address; one off loopback without `--tls-cert` is served with a warning).
    #[arg(long, env = "KISUM_AUTH_LISTEN", default_value = "127.0.0.1:7400")]
    listen: SocketAddr,
    #[command(flatten)]
    boot: Boot,
    #[command(flatten)]
    auth: kisum_auth::Config,
    #[command(flatten)]
    limits: kisum_server::LimitArgs,
    #[command(flatten)]
    tls: kisum_server::TlsArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    kisum_server::install_crypto();
    kisum_server::init_tracing();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kisum-auth: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> Result<(), StartError> {
    // Every setting, secrets redacted.
    tracing::info!(settings = ?cli, "kisum-auth starting");
    let limits = cli.limits.limits()?;
    let tls = cli.tls.tls()?;
    let scheme = cli.tls.scheme();
    let opened = cli.boot.open().await?;
    let listener = kisum_server::bind(cli.listen).await?;
    let url = format!("{scheme}://{}", listener.local_addr()?);
    let auth = kisum_auth::start(&opened, cli.auth.settings(&url), Some(cli.boot.store.poll())).await?;
    for line in &opened.notes {
        println!("{line}");
    }
    println!("Auth on {url}  (OpenAPI: {url}/openapi.json; JWKS: {url}/.well-known/jwks.json)");
    let closing = auth.state.clone();
    let shutdown = async move {
        let _ = tokio::signal::ctrl_c().await;
        closing.close();
    };
    kisum_server::serve_with(listener, auth.router, limits, tls, shutdown).await?;
    auth.tasks.iter().for_each(tokio::task::JoinHandle::abort);
    Ok(())
}
