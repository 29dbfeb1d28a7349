//! The two tower layers every server wears, written as tower services (an axum `from_fn` middleware
//! costs a clone and two boxed futures per request each; these cost one of each for all they do):
//!
//! - [`ServeLayer`] ([`finish`](super::finish)): the request id and the W3C trace (API.md §1), the
//!   request's span and its one `served` log line, every error body as problem+json, and the request's
//!   metrics;
//! - [`BoundedLayer`] (`kisum_server::serve_with`): load shedding past the requests allowed in
//!   progress, and the time bound of each request.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;
use tracing::Instrument;

use super::error::as_problem;
use super::metrics::ServiceMetrics;
use super::request_id::{self, X_REQUEST_ID};

type BoxFuture = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

/// One request served, as a trace exporter sees it: this server's span of the request's trace.
#[derive(Debug, Clone, Copy)]
pub struct ServedSpan<'a> {
    /// The service (`auth`, `core`, `finance`…).
    pub service: &'static str,
    /// The method.
    pub method: &'a str,
    /// The route's pattern (`/v1/invoices/{id}`), never the raw path; `(no route)` when none matched.
    pub route: &'a str,
    /// The request id.
    pub request_id: &'a str,
    /// The status answered.
    pub status: u16,
    /// This server's span (its trace id, span id and flags).
    pub span: crate::trace::TraceParent,
    /// The caller's span, when the request carried a valid `traceparent`.
    pub parent: Option<crate::trace::TraceParent>,
    /// When the request arrived.
    pub start: std::time::SystemTime,
    /// When its response was ready.
    pub end: std::time::SystemTime,
}

/// Receives every request served by a [`ServeLayer`] of the process, once its response is ready: the
/// hook of a trace exporter (`kisum-server`'s feature `otel` exports them over OTLP). Must not block.
pub trait SpanSink: Send + Sync + 'static {
    /// A request was served.
    fn served(&self, span: &ServedSpan<'_>);
}

static SPAN_SINK: std::sync::OnceLock<Box<dyn SpanSink>> = std::sync::OnceLock::new();

/// Sets the process's [`SpanSink`], once; `false` when one was set already.
pub fn set_span_sink(sink: Box<dyn SpanSink>) -> bool {
    SPAN_SINK.set(sink).is_ok()
}

/// Request ids, the trace, problem bodies and metrics for the routes of `service`.
#[derive(Clone)]
pub struct ServeLayer {
    metrics: Arc<ServiceMetrics>,
}

impl ServeLayer {
    /// The layer of `service` (the `service` label of its metrics).
    pub fn new(service: &'static str) -> ServeLayer {
        ServeLayer { metrics: ServiceMetrics::new(service) }
    }
}

impl<S> tower::Layer<S> for ServeLayer {
    type Service = Serve<S>;

    fn layer(&self, inner: S) -> Serve<S> {
        Serve { inner, metrics: self.metrics.clone() }
    }
}

/// The service of [`ServeLayer`].
#[derive(Clone)]
pub struct Serve<S> {
    inner: S,
    metrics: Arc<ServiceMetrics>,
}

impl<S> tower::Service<Request> for Serve<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> BoxFuture {
        let (id, header) = request_id::take(&mut request);
        let (trace, parent) = request_id::traced(&mut request);
        let route = request.extensions().get::<MatchedPath>().cloned();
        let method = request.method().clone();
        let route_text = route.as_ref().map_or("(no route)", MatchedPath::as_str);
        let span = request_span(&method, route_text, &id, &trace);
        let metrics = self.metrics.clone();
        let arrived = SPAN_SINK.get().map(|_| std::time::SystemTime::now());
        // The clone that was polled ready serves this request; the fresh one waits for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let started = Instant::now();
        let served = async move {
            let Ok(response) = inner.call(request).await;
            as_problem(response).await
        }
        .instrument(span.clone());
        Box::pin(async move {
            let sink = SPAN_SINK.get().zip(arrived).map(|(sink, start)| (sink, start, id.clone()));
            let mut response = crate::trace::scope(trace, request_id::scope(id, served)).await;
            let latency = started.elapsed();
            log_response(&response, latency, &span);
            let route = route.as_ref().map_or("(no route)", MatchedPath::as_str);
            let status = response.status().as_u16();
            metrics.count(&method, route, status, latency.as_secs_f64());
            if let Some((sink, start, request_id)) = sink {
                let end = std::time::SystemTime::now();
                let method = method.as_str();
                let served = ServedSpan {
                    service: metrics.service(),
                    method,
                    route,
                    request_id: &request_id,
                    status,
                    span: trace,
                    parent,
                    start,
                    end,
                };
                sink.served(&served);
            }
            if let Some(header) = header {
                response.headers_mut().insert(X_REQUEST_ID, header);
            }
            Ok(response)
        })
    }
}

/// Sheds load past `max_in_flight` requests in progress (503 at once, never a queue) and stops a
/// request that takes longer than `limit` (503): both with `Retry-After`, as problems.
#[derive(Clone)]
pub struct BoundedLayer {
    in_flight: Arc<Semaphore>,
    limit: Duration,
}

impl BoundedLayer {
    /// At most `max_in_flight` requests at once, each within `limit`.
    pub fn new(max_in_flight: usize, limit: Duration) -> BoundedLayer {
        BoundedLayer { in_flight: Arc::new(Semaphore::new(max_in_flight.max(1))), limit }
    }
}

impl<S> tower::Layer<S> for BoundedLayer {
    type Service = Bounded<S>;

    fn layer(&self, inner: S) -> Bounded<S> {
        Bounded { inner, in_flight: self.in_flight.clone(), limit: self.limit }
    }
}

/// The service of [`BoundedLayer`].
#[derive(Clone)]
pub struct Bounded<S> {
    inner: S,
    in_flight: Arc<Semaphore>,
    limit: Duration,
}

fn busy(reason: &'static str, detail: &str) -> Response {
    // Outside every router's own layer: counted here, so that overload shows in the metrics.
    metrics::counter!("kisum_http_shed_total", "reason" => reason).increment(1);
    super::ApiError::new(kisum_errors::ErrorCode::UpstreamUnavailable, detail)
        .with_header(axum::http::header::RETRY_AFTER, "1")
        .into_response()
}

impl<S> tower::Service<Request> for Bounded<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> BoxFuture {
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
            let response = busy("in_flight", "the server is at its limit of requests in progress; retry shortly");
            return Box::pin(std::future::ready(Ok(response)));
        };
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let limit = self.limit;
        Box::pin(async move {
            let answer = match tokio::time::timeout(limit, inner.call(request)).await {
                Ok(Ok(response)) => as_problem(response).await,
                Err(_) => busy("timeout", "the request took too long and was stopped; retry"),
            };
            drop(permit);
            Ok(answer)
        })
    }
}

/// The span every request is served in (API.md §1): method, route (the route's pattern, never the raw
/// path), request id, W3C trace id, and — once the bearer token is verified — principal and company, so
/// that every log line written while serving it carries them. Health routes and `/metrics` are served
/// in a `debug` span: quieter. Its fields are only formatted when the span is enabled.
fn request_span(
    method: &axum::http::Method,
    route: &str,
    id: &str,
    trace: &crate::trace::TraceParent,
) -> tracing::Span {
    let method = method.as_str();
    if route.starts_with("/health/") || route == "/metrics" {
        tracing::debug_span!("request", method = %method, route = %route, request_id = %id, trace_id = %trace.trace_id())
    } else {
        tracing::info_span!(
            "request",
            method = %method,
            route = %route,
            request_id = %id,
            trace_id = %trace.trace_id(),
            principal = tracing::field::Empty,
            company = tracing::field::Empty
        )
    }
}

/// The one line per request: status and latency, at the level of the request's span (its fields — the
/// request id first — come with it).
fn log_response(response: &Response, latency: Duration, span: &tracing::Span) {
    let status = response.status().as_u16();
    let latency_ms = latency.as_secs_f64() * 1000.0;
    span.in_scope(|| match span.metadata().map(|m| *m.level()) {
        Some(tracing::Level::INFO) => tracing::info!(status, latency_ms, "served"),
        Some(_) => tracing::debug!(status, latency_ms, "served"),
        None => {}
    });
}
