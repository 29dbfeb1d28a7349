//! Putting a server together and running it.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

use crate::error::{no_method, no_route, problem_bodies};
use crate::json::MAX_BODY_BYTES;

/// Finishes a router: problem+json fallbacks for unknown routes (404) and methods (405), the 64 KiB
/// body limit, every other error answered as problem+json, tracing, and request ids (outermost, so
/// that every response carries one).
pub fn finish(router: Router) -> Router {
    router
        .fallback(no_route)
        .method_not_allowed_fallback(no_method)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(problem_bodies))
        .layer(TraceLayer::new_for_http())
        .layer(axum::middleware::from_fn(crate::request_id::layer))
}

/// Serves `router` on `addr` until `shutdown` completes, then lets requests in flight finish. Refuses an
/// address that is not a loopback address: the reference servers are for this machine.
pub async fn serve(
    addr: SocketAddr,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = bind(addr).await?;
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await
}

/// Binds a loopback address (port 0 picks a free one).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    if !addr.ip().is_loopback() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{addr} is not a loopback address: the reference servers bind to 127.0.0.1 or [::1] only"),
        ));
    }
    TcpListener::bind(addr).await
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}
