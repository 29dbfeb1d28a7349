//! Prometheus metrics: the process's recorder, `GET /metrics` on every server, and the request metrics
//! [`finish`](super::finish) records. Other crates record through the `metrics` facade (`kisum-client`'s
//! decisions and feed, `kisum-store`'s commits, the reference servers' password queues); the names are listed in
//! `docs/operations.md`.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

use axum::http::Method;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Latency buckets, in seconds: from half a millisecond (a cached decision) to ten seconds (a request
/// about to be stopped).
const BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process's Prometheus recorder, installed on first use. `None` when another recorder was installed
/// first (an embedding application's own): then `/metrics` answers 404 and the metrics go to that one.
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = match PrometheusBuilder::new().set_buckets(BUCKETS) {
                Ok(builder) => builder,
                Err(e) => {
                    tracing::warn!(error = %e, "the metrics' buckets were refused: no /metrics");
                    return None;
                }
            };
            match builder.install_recorder() {
                Ok(handle) => {
                    describe();
                    Some(handle)
                }
                Err(e) => {
                    tracing::info!(error = %e, "another metrics recorder is installed: /metrics is not served");
                    None
                }
            }
        })
        .as_ref()
}

/// What each metric measures, for the `# HELP` lines.
fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!("kisum_http_requests_total", "Requests answered, by service, method, route and status");
    describe_histogram!(
        "kisum_http_request_duration_seconds",
        Unit::Seconds,
        "Time from a request's arrival to its response's start, by service, method and route"
    );
    describe_counter!(
        "kisum_decisions_total",
        "Module decisions by outcome (allow, deny, unavailable) and source (live, cache, stale, scope)"
    );
    describe_gauge!("kisum_feed_position", "The last change-feed sequence a follower applied, by follower");
    describe_gauge!(
        "kisum_feed_lag_seconds",
        Unit::Seconds,
        "How long after its write the last change-feed event reached a follower (0 once caught up)"
    );
    describe_histogram!("kisum_store_commit_seconds", Unit::Seconds, "Time to commit one write to the change log");
    describe_gauge!("kisum_store_seq", "The change-log sequence this process's engine has applied");
    describe_gauge!("kisum_credential_hash_queue", "Credential hashes waiting or running, by queue (password, client)");
    describe_counter!("kisum_credential_hash_refused_total", "Credential checks refused because the queue was full");
    describe_counter!(
        "kisum_http_shed_total",
        "Requests answered 503 by the bounds on clients: reason `in_flight` (load shed) or `timeout`"
    );
}

/// `GET /metrics`: every metric of the process in the Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses(
        (status = 200, description = "Every metric of the process (Prometheus text format 0.0.4; names in \
                                      docs/operations.md)", content_type = "text/plain", body = String),
        (status = 404, description = "Metrics go to another recorder", body = super::openapi::ProblemSchema,
         content_type = "application/problem+json")))]
pub async fn scrape() -> Response {
    match handle() {
        Some(handle) => {
            handle.run_upkeep();
            ([(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], handle.render()).into_response()
        }
        None => super::ApiError::new(kisum_errors::ErrorCode::NotFound, "metrics are not served by this process")
            .into_response(),
    }
}

/// The request metrics of one service, their handles kept by route so that counting a request allocates
/// nothing and looks one route up (registering a metric with its labels is the slow part of the
/// facade).
pub(crate) struct ServiceMetrics {
    service: &'static str,
    routes: RwLock<HashMap<String, RouteMetrics>>,
}

/// One route's handles: a counter per (method, status) and a histogram per method.
#[derive(Default)]
struct RouteMetrics {
    counters: Vec<(Method, u16, Counter)>,
    latencies: Vec<(Method, Histogram)>,
}

impl RouteMetrics {
    fn find(&self, method: &Method, status: u16) -> Option<(&Counter, &Histogram)> {
        let counter = self.counters.iter().find(|(m, s, _)| m == method && *s == status).map(|(_, _, c)| c)?;
        let latency = self.latencies.iter().find(|(m, _)| m == method).map(|(_, h)| h)?;
        Some((counter, latency))
    }
}

impl ServiceMetrics {
    /// The service these metrics are of.
    pub(crate) fn service(&self) -> &'static str {
        self.service
    }

    pub(crate) fn new(service: &'static str) -> Arc<ServiceMetrics> {
        Arc::new(ServiceMetrics { service, routes: RwLock::new(HashMap::new()) })
    }

    pub(crate) fn count(&self, method: &Method, route: &str, status: u16, seconds: f64) {
        // Any method is a request's to choose: only the standard ones name a series, every other is
        // `OTHER`, so that nobody grows the registry by inventing methods.
        let standard = [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::HEAD,
            Method::OPTIONS,
            Method::CONNECT,
            Method::TRACE,
        ];
        static OTHER: std::sync::LazyLock<Method> =
            std::sync::LazyLock::new(|| Method::from_bytes(b"OTHER").unwrap_or(Method::GET));
        let method = if standard.contains(method) { method } else { &OTHER };
        let read = self.routes.read().unwrap_or_else(PoisonError::into_inner);
        if let Some((counter, latency)) = read.get(route).and_then(|r| r.find(method, status)) {
            counter.increment(1);
            latency.record(seconds);
            return;
        }
        drop(read);
        // The first request of its route, method and status: register its handles.
        let mut write = self.routes.write().unwrap_or_else(PoisonError::into_inner);
        let entry = write.entry(route.to_owned()).or_default();
        let labels = |with_status: bool| {
            let mut labels = vec![
                metrics::Label::new("service", self.service),
                metrics::Label::new("method", method.as_str().to_owned()),
                metrics::Label::new("route", route.to_owned()),
            ];
            if with_status {
                labels.push(metrics::Label::new("status", status.to_string()));
            }
            labels
        };
        if !entry.counters.iter().any(|(m, s, _)| m == method && *s == status) {
            let counter = metrics::counter!("kisum_http_requests_total", labels(true));
            entry.counters.push((method.clone(), status, counter));
        }
        if !entry.latencies.iter().any(|(m, _)| m == method) {
            let latency = metrics::histogram!("kisum_http_request_duration_seconds", labels(false));
            entry.latencies.push((method.clone(), latency));
        }
        if let Some((counter, latency)) = entry.find(method, status) {
            counter.increment(1);
            latency.record(seconds);
        }
    }
}
