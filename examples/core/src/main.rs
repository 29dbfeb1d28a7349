//! `kisum-core`: Core and the Admin API on a store, until Ctrl-C. Only composes what `kisum-core` and
//! `kisum-server` export: [`StoreConfig`](kisum_server::StoreConfig) opens (and, when empty, seeds) the
//! store, [`kisum_core::start`] starts Core on it.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use kisum_core::StartError;

/// Core and the Admin API of the Kisum platform (API.md §3).
#[derive(Debug, Parser)]
#[command(name = "kisum-core", version)]
struct Cli {
    /// Where to listen (any address; one off loopback without `--tls-cert` is served with a warning).
    #[arg(long, env = "KISUM_CORE_LISTEN", default_value = "127.0.0.1:7401")]
    listen: SocketAddr,
    #[command(flatten)]
    store: kisum_server::StoreConfig,
    #[command(flatten)]
    core: kisum_core::Config,
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
            eprintln!("kisum-core: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> Result<(), StartError> {
    // Every setting, secrets redacted.
    tracing::info!(settings = ?cli, "kisum-core starting");
    let limits = cli.limits.limits()?;
    let tls = cli.tls.tls()?;
    let scheme = cli.tls.scheme();
    let start = cli.core.start(&format!("{scheme}://127.0.0.1:7400"))?;
    let opened = cli.store.open().await?;
    let follower = opened.engine.follow(cli.store.poll());
    let (app, tasks) = kisum_core::start(opened.engine.clone(), start).await?;
    let listener = kisum_server::bind(cli.listen).await?;
    let url = format!("{scheme}://{}", listener.local_addr()?);
    tracing::info!(store = %opened.db, seq = opened.engine.seq(), "Core ready");
    println!("Core on {url}  (OpenAPI: {url}/openapi.json; store {})", opened.db);
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    kisum_server::serve_with(listener, app, limits, tls, shutdown).await?;
    follower.abort();
    tasks.iter().for_each(tokio::task::JoinHandle::abort);
    Ok(())
}
