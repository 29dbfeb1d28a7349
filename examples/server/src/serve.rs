//! Putting a server together and running it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Serves `router` on `addr` over plain HTTP with the default [`Limits`] until `shutdown` completes,
/// then lets requests in flight finish.
pub async fn serve(
    addr: SocketAddr,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = bind(addr).await?;
    serve_with(listener, router, Limits::default(), None, shutdown).await
}

/// Binds `addr`, any address (port 0 picks a free one); the error names the address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
}

/// The servers' log format: one line per event, with the fields of the spans it is in (a request's
/// request id, trace id, principal and company), into `writer`, filtered by `filter`; colours only when
/// `ansi` (a terminal: escape codes in a log file or a collector help nobody, and cost a little on every
/// line). What [`init_tracing`] installs, and what the benchmarks measure.
pub fn log_subscriber<W>(
    filter: tracing_subscriber::EnvFilter,
    writer: W,
    ansi: bool,
) -> impl tracing::Subscriber + Send + Sync + 'static
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).with_ansi(ansi).finish()
}

/// Logs to stderr ([`log_subscriber`], colours on a terminal only), filtered by `RUST_LOG` (default
/// `info`). Built with feature `otel`, and with
/// `OTEL_EXPORTER_OTLP_ENDPOINT` set, also exports every request's span (module `otel`; call it inside
/// the runtime).
pub fn init_tracing() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing::subscriber::set_global_default(log_subscriber(
        filter,
        std::io::stderr,
        std::io::stderr().is_terminal(),
    ));
    #[cfg(feature = "otel")]
    match crate::otel::OtelConfig::from_env().map(crate::otel::start) {
        Some(Ok(_)) => tracing::info!("exporting request spans over OTLP (OTEL_EXPORTER_OTLP_ENDPOINT)"),
        Some(Err(e)) => tracing::error!(error = %e, "request spans are NOT exported"),
        None => {}
    }
}

/// The bounds every server keeps on its clients (API.md §1: slow clients are cut off, connections and
/// the work in progress are bounded; nothing queues without limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How long a client may take to send a request's headers before the connection is closed. Defaults
    /// to 10 s.
    pub header_read: Duration,
    /// How long a request may take, body included, until its response starts (an event stream then goes
    /// on): past it the answer is `503 UPSTREAM_UNAVAILABLE` with `Retry-After`. Defaults to 30 s.
    pub request: Duration,
    /// Connections held at once; one more is closed as soon as it is accepted. Defaults to 4,096.
    pub max_connections: usize,
    /// Requests served at once; one more is answered `503 UPSTREAM_UNAVAILABLE` with `Retry-After` at once
    /// (load shedding, not a queue). Defaults to 1,024.
    pub max_in_flight: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            header_read: Duration::from_secs(10),
            request: Duration::from_secs(30),
            max_connections: 4096,
            max_in_flight: 1024,
        }
    }
}

/// Serves `router` on `listener` within `limits`, over TLS when `tls` is given, until `shutdown`
/// completes, then stops accepting and lets the connections in flight finish (for at most 10 s).
/// HTTP/1.1 on hyper, with a header-read timeout (axum's own `serve` has none; the TLS handshake must
/// finish within it too), a bound on connections, load shedding and a time bound per request. A
/// listener on an address other than loopback without TLS is served, with a warning: tokens and
/// passwords would cross the network in clear.
pub async fn serve_with(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    tls: Option<crate::Tls>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let local = listener.local_addr()?;
    if tls.is_none() && !local.ip().is_loopback() {
        tracing::warn!(
            address = %local,
            "serving plain HTTP on an address other than loopback: tokens and passwords cross the network in \
             clear; give --tls-cert and --tls-key"
        );
    }
    // The answers of these bounds are problems too, as every error is.
    let app = router.layer(crate::layer::BoundedLayer::new(limits.max_in_flight, limits.request));
    let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was accepted: go on.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tracing::warn!(limit = limits.max_connections, "connection refused: at the limit of connections");
            drop(stream);
            continue;
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let http = hyper::server::conn::http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(limits.header_read)
            .clone();
        let watcher = graceful.watcher();
        match &tls {
            None => {
                let connection = watcher.watch(http.serve_connection(hyper_util::rt::TokioIo::new(stream), service));
                tokio::spawn(async move {
                    let _ = connection.await;
                    drop(permit);
                });
            }
            Some(tls) => {
                // The handshake runs in the connection's task (a slow one never holds the accept loop),
                // bounded as the headers are.
                let handshake = tls.acceptor().accept(stream);
                tokio::spawn(async move {
                    match tokio::time::timeout(limits.header_read, handshake).await {
                        Ok(Ok(stream)) => {
                            let io = hyper_util::rt::TokioIo::new(stream);
                            let _ = watcher.watch(http.serve_connection(io, service)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                    drop(permit);
                });
            }
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(Duration::from_secs(10)) => {
            tracing::warn!("connections still open 10 s after shutdown began: closing them");
        }
    }
    Ok(())
}

/// [`Limits`] as command-line flags (each with its `KISUM_*` variable), for every server binary.
#[derive(Debug, Clone, clap::Args)]
pub struct LimitArgs {
    /// Seconds a client may take to send a request's headers.
    #[arg(long, global = true, env = "KISUM_HEADER_TIMEOUT_SECS", default_value_t = 10)]
    pub header_timeout_secs: u64,
    /// Seconds a request may take until its response starts.
    #[arg(long, global = true, env = "KISUM_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,
    /// Connections held at once.
    #[arg(long, global = true, env = "KISUM_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,
    /// Requests served at once (more are answered 503 at once).
    #[arg(long, global = true, env = "KISUM_MAX_IN_FLIGHT", default_value_t = 1024)]
    pub max_in_flight: usize,
}

impl LimitArgs {
    /// The limits, or which setting is out of range and why.
    pub fn limits(&self) -> Result<Limits, String> {
        let positive = |name: &str, value: u64| {
            if value == 0 { Err(format!("--{name} must be at least 1")) } else { Ok(value) }
        };
        Ok(Limits {
            header_read: Duration::from_secs(positive("header-timeout-secs", self.header_timeout_secs)?),
            request: Duration::from_secs(positive("request-timeout-secs", self.request_timeout_secs)?),
            max_connections: positive("max-connections", self.max_connections as u64)? as usize,
            max_in_flight: positive("max-in-flight", self.max_in_flight as u64)? as usize,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
    use std::time::Instant;

    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;

    /// Serves `router` within `limits` on a loopback port; returns its address and the stop switch.
    async fn start(router: Router, limits: Limits) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve_with(listener, router, limits, None, async move {
            let _ = stopped.await;
        }));
        (addr, stop)
    }

    async fn get_status(addr: SocketAddr, path: &str) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer
    }

    /// Whether the server closed `stream` (end of file, or a reset) within `limit`.
    async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
        let mut byte = [0u8; 1024];
        matches!(tokio::time::timeout(limit, stream.read(&mut byte)).await, Ok(Ok(0) | Err(_)))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn slow_clients_are_cut_off_and_connections_bounded() {
        let limits = Limits { header_read: Duration::from_millis(500), max_connections: 40, ..Limits::default() };
        let (addr, _stop) = start(Router::new().route("/", get(|| async { "ok" })), limits).await;
        // 60 clients send half a request line and stop.
        let mut slow = Vec::new();
        for _ in 0..60 {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(b"GET / HT").await.unwrap();
            slow.push(s);
        }
        // Past the bound, a connection is closed as soon as it is accepted; within it, once its headers are
        // late. Every one of them ends.
        let started = Instant::now();
        for s in &mut slow {
            assert!(closed_within(s, Duration::from_secs(10)).await, "a slow client was held");
        }
        eprintln!("60 slow clients cut off within {:?}", started.elapsed());
        // The server still answers.
        assert!(get_status(addr, "/").await.starts_with("HTTP/1.1 200"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn load_is_shed_and_slow_handlers_are_stopped() {
        // A slow handler is stopped at the request bound: 503 with Retry-After, as a problem.
        let router = Router::new().route(
            "/sleep",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "late"
            }),
        );
        let (addr, _stop) = start(router, Limits { request: Duration::from_millis(300), ..Limits::default() }).await;
        let late = get_status(addr, "/sleep").await;
        assert!(late.starts_with("HTTP/1.1 503"), "{late}");
        assert!(late.to_ascii_lowercase().contains("retry-after: 1"), "{late}");
        assert!(late.contains("application/problem+json") && late.contains("UPSTREAM_UNAVAILABLE"), "{late}");

        // One request in progress holds the only slot: the next is shed at once, not queued.
        let (entered, release) = (Arc::new(tokio::sync::Notify::new()), Arc::new(tokio::sync::Notify::new()));
        let (e, r) = (entered.clone(), release.clone());
        let router = Router::new()
            .route(
                "/hold",
                get(move || async move {
                    e.notify_one();
                    r.notified().await;
                    "done"
                }),
            )
            .route("/", get(|| async { "ok" }));
        let (addr, _stop) = start(router, Limits { max_in_flight: 1, ..Limits::default() }).await;
        let holder = tokio::spawn(get_status(addr, "/hold"));
        entered.notified().await;
        let shed = get_status(addr, "/").await;
        assert!(shed.starts_with("HTTP/1.1 503"), "{shed}");
        release.notify_one();
        assert!(holder.await.unwrap().starts_with("HTTP/1.1 200"));
        assert!(get_status(addr, "/").await.starts_with("HTTP/1.1 200"));
    }

    /// Every request is logged once at `info` with its request id, route, status and latency; every
    /// line written while it is served carries the id; health routes are quieter; the raw path of an
    /// unknown route is never logged (API.md §1).
    #[tokio::test]
    async fn every_request_is_logged_once_with_its_id() {
        use tower::ServiceExt;

        // The process's global subscriber (a thread-local one races with the other tests over tracing's
        // callsite cache); this test's lines are the ones with its request id.
        #[derive(Clone, Default)]
        struct Buffer(Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber of this binary");
        let app = crate::finish(
            "test",
            Router::new()
                .route(
                    "/things/{id}",
                    get(|| async {
                        tracing::info!("inside the handler");
                        "ok"
                    }),
                )
                .route("/health/live", get(|| async { "live" })),
        );
        let trace = "0af7651916cd43dd8448eb211c80319c";
        let request = |uri: &str| {
            axum::http::Request::builder()
                .uri(uri)
                .header("x-request-id", "trace-me-1")
                .header("traceparent", format!("00-{trace}-b7ad6b7169203331-01"))
                .body(axum::body::Body::empty())
                .unwrap()
        };
        assert_eq!(app.clone().oneshot(request("/things/42")).await.unwrap().status(), 200);
        app.clone().oneshot(request("/health/live")).await.unwrap();
        assert_eq!(app.clone().oneshot(request("/nowhere/secret-path")).await.unwrap().status(), 404);

        // A method a client invents names no series of its own.
        let invented = axum::http::Request::builder().method("FOO").uri("/things/7").body(axum::body::Body::empty());
        assert_eq!(app.clone().oneshot(invented.unwrap()).await.unwrap().status(), 405);
        // `/metrics` counts them by service, route pattern and status.
        let scraped = app.oneshot(request("/metrics")).await.unwrap();
        assert_eq!(scraped.status(), 200);
        assert!(scraped.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
        let body = axum::body::to_bytes(scraped.into_body(), 1 << 20).await.unwrap();
        let metrics = String::from_utf8(body.to_vec()).unwrap();
        for line in [
            r#"kisum_http_requests_total{service="test",method="GET",route="/things/{id}",status="200"} 1"#,
            r#"kisum_http_requests_total{service="test",method="GET",route="(no route)",status="404"} 1"#,
            r#"kisum_http_request_duration_seconds_count{service="test",method="GET",route="/things/{id}"} 1"#,
        ] {
            assert!(metrics.lines().any(|l| l == line), "{line} in {metrics}");
        }
        assert!(!metrics.contains("secret-path"), "raw paths are never labels");
        assert!(metrics.contains(r#"method="OTHER""#) && !metrics.contains("FOO"), "{metrics}");
        let all = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let text: String = all.lines().filter(|l| l.contains("trace-me-1")).map(|l| format!("{l}\n")).collect();
        let lines: Vec<&str> = text.lines().collect();
        let inside = lines.iter().find(|l| l.contains("inside the handler")).unwrap();
        assert!(inside.contains("request_id=trace-me-1") && inside.contains("route=/things/{id}"), "{inside}");
        let served: Vec<&str> = lines.iter().copied().filter(|l| l.contains("served")).collect();
        assert_eq!(served.len(), 2, "one line per request, none for health at info: {text}");
        assert!(served[0].contains("status=200") && served[0].contains("latency_ms="), "{}", served[0]);
        assert!(served[0].contains("request_id=trace-me-1") && served[0].contains("method=GET"), "{}", served[0]);
        assert!(served[0].contains(&format!("trace_id={trace}")), "the incoming trace is kept: {}", served[0]);
        assert!(served[1].contains("status=404") && served[1].contains("(no route)"), "{}", served[1]);
        assert!(!all.contains("secret-path"), "the raw path of an unknown route is not logged: {all}");
    }
}
