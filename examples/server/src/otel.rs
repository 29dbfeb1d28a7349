//! OpenTelemetry export (feature `otel`): every request a server answers becomes one server span,
//! exported over OTLP/HTTP (protobuf) to the collector `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) names, in batches.
//!
//! The spans carry exactly the ids the servers already log and propagate (`kisum_client::trace`): the
//! trace id of the request's `traceparent`, this server's span id, the caller's span as parent. The SDK
//! sends the serving span as the parent of its calls to Auth and Core, so a module's request, the
//! snapshot it fetched and Core's catalog read form one tree. Only sampled traces are exported (flag
//! `01`: every trace a server starts, and those whose caller sampled them).
//!
//! Each service is its own OTel resource (`service.name` = `kisum-auth`, `kisum-core`,
//! `kisum-finance`…; in the one command, one process exports for all). Export never slows a request:
//! spans wait in a bounded queue (4,096); past it they are dropped and counted
//! (`kisum_otel_spans_dropped_total`); a batch goes out every `OTEL_BSP_SCHEDULE_DELAY` milliseconds
//! (default 5,000) or at 512 spans.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Duration;

use kisum_client::server::layer::{ServedSpan, SpanSink};
use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use tokio::sync::mpsc;

/// Spans waiting for export at most.
const QUEUE: usize = 4096;
/// Spans per export at most.
const BATCH: usize = 512;

/// Where and how often spans are exported.
#[derive(Debug, Clone)]
pub struct OtelConfig {
    /// The collector's traces URL (`http://collector:4318/v1/traces`); `None`: from the
    /// `OTEL_EXPORTER_OTLP_*` variables.
    pub endpoint: Option<String>,
    /// How long spans wait before a batch goes out.
    pub delay: Duration,
    /// PEM certificates to trust beside the system's roots when the collector is reached over HTTPS.
    pub ca_bundle: Option<Vec<u8>>,
}

impl OtelConfig {
    /// The configuration the environment gives: `Some` when `OTEL_EXPORTER_OTLP_ENDPOINT` or
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set (and not empty); the collector's certificate must chain
    /// to the system's roots.
    pub fn from_env() -> Option<OtelConfig> {
        let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
        if !set("OTEL_EXPORTER_OTLP_ENDPOINT") && !set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            return None;
        }
        let delay = std::env::var("OTEL_BSP_SCHEDULE_DELAY").ok().and_then(|v| v.trim().parse().ok()).unwrap_or(5000);
        Some(OtelConfig { endpoint: None, delay: Duration::from_millis(delay.max(1)), ca_bundle: None })
    }
}

/// Why export could not start (the message names the setting).
pub type OtelError = Box<dyn std::error::Error + Send + Sync>;

/// Starts exporting the spans of every [`ServeLayer`](kisum_client::server::layer::ServeLayer) of the
/// process (call it once, inside the runtime); the task ends with the runtime. Fails when the
/// collector's URL is not one, or when export was started already.
pub fn start(config: OtelConfig) -> Result<tokio::task::JoinHandle<()>, OtelError> {
    let http = kisum_client::http_client(config.ca_bundle.as_deref())?;
    // Built once here so that a bad URL is refused at start, naming the setting.
    exporter(&config, &http, "kisum")?;
    let (tx, rx) = mpsc::channel(QUEUE);
    if !kisum_client::server::layer::set_span_sink(Box::new(Queue(tx))) {
        return Err("OpenTelemetry export was started already".into());
    }
    Ok(tokio::spawn(export(config, http, rx)))
}

fn exporter(
    config: &OtelConfig,
    http: &reqwest::Client,
    service: &str,
) -> Result<opentelemetry_otlp::SpanExporter, OtelError> {
    let mut builder = opentelemetry_otlp::SpanExporter::builder().with_http().with_http_client(http.clone());
    if let Some(endpoint) = &config.endpoint {
        builder = builder.with_endpoint(endpoint.clone());
    }
    let mut exporter = builder.build().map_err(|e| format!("OTEL_EXPORTER_OTLP_ENDPOINT: {e}"))?;
    exporter.set_resource(&Resource::builder_empty().with_service_name(format!("kisum-{service}")).build());
    Ok(exporter)
}

/// The sink the request layer hands spans to: a bounded queue, never waited on.
struct Queue(mpsc::Sender<(&'static str, SpanData)>);

impl SpanSink for Queue {
    fn served(&self, served: &ServedSpan<'_>) {
        if !served.span.sampled() {
            return;
        }
        if self.0.try_send((served.service, span_data(served))).is_err() {
            metrics::counter!("kisum_otel_spans_dropped_total").increment(1);
        }
    }
}

/// One served request as an OTel server span (HTTP semantic conventions).
fn span_data(served: &ServedSpan<'_>) -> SpanData {
    let trace_id = TraceId::from(served.span.trace_id_bits());
    let context = SpanContext::new(
        trace_id,
        SpanId::from(served.span.span_id()),
        TraceFlags::SAMPLED,
        false,
        TraceState::default(),
    );
    let parent = served.parent.map_or(SpanId::INVALID, |p| SpanId::from(p.span_id()));
    let status =
        if served.status >= 500 { Status::error(format!("answered {}", served.status)) } else { Status::Unset };
    SpanData {
        span_context: context,
        parent_span_id: parent,
        parent_span_is_remote: served.parent.is_some(),
        span_kind: SpanKind::Server,
        name: Cow::Owned(format!("{} {}", served.method, served.route)),
        start_time: served.start,
        end_time: served.end,
        attributes: vec![
            KeyValue::new("http.request.method", served.method.to_owned()),
            KeyValue::new("http.route", served.route.to_owned()),
            KeyValue::new("http.response.status_code", i64::from(served.status)),
            KeyValue::new("kisum.request_id", served.request_id.to_owned()),
        ],
        dropped_attributes_count: 0,
        events: Default::default(),
        links: Default::default(),
        status,
        instrumentation_scope: InstrumentationScope::builder("kisum-server").build(),
    }
}

/// Gathers spans and exports them by service, a batch every `delay` or at [`BATCH`] spans.
async fn export(config: OtelConfig, http: reqwest::Client, mut rx: mpsc::Receiver<(&'static str, SpanData)>) {
    let mut exporters: HashMap<&'static str, opentelemetry_otlp::SpanExporter> = HashMap::new();
    let mut pending: HashMap<&'static str, Vec<SpanData>> = HashMap::new();
    let mut tick = tokio::time::interval(config.delay);
    loop {
        let full = tokio::select! {
            received = rx.recv() => match received {
                Some((service, span)) => {
                    let spans = pending.entry(service).or_default();
                    spans.push(span);
                    spans.len() >= BATCH
                }
                None => true,
            },
            _ = tick.tick() => true,
        };
        if !full {
            continue;
        }
        for (service, spans) in pending.iter_mut().filter(|(_, spans)| !spans.is_empty()) {
            let exporter = match exporters.get(service) {
                Some(exporter) => exporter,
                None => match exporter(&config, &http, service) {
                    Ok(exporter) => exporters.entry(service).or_insert(exporter),
                    Err(e) => {
                        tracing::warn!(error = %e, "OpenTelemetry export is not possible");
                        spans.clear();
                        continue;
                    }
                },
            };
            let batch = std::mem::take(spans);
            let count = batch.len();
            if let Err(e) = exporter.export(batch).await {
                metrics::counter!("kisum_otel_spans_dropped_total").increment(count as u64);
                tracing::warn!(error = %e, spans = count, "exporting spans to the OpenTelemetry collector failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

    use std::sync::{Arc, Mutex};

    use axum::Router;
    use axum::body::Bytes;
    use axum::routing::{get, post};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message;

    use super::*;

    /// A collector stand-in: every export it receives, decoded.
    async fn collector() -> (String, Arc<Mutex<Vec<ExportTraceServiceRequest>>>) {
        let received = Arc::new(Mutex::new(Vec::new()));
        let store = received.clone();
        let app = Router::new().route(
            "/v1/traces",
            post(move |body: Bytes| {
                let store = store.clone();
                async move {
                    store.lock().unwrap().push(ExportTraceServiceRequest::decode(body).unwrap());
                    ""
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (url, received)
    }

    /// A served request is exported as a server span with the trace's ids: the caller's trace id, the
    /// caller's span as parent, and the span id the server propagated; its route pattern, method and
    /// status; its service as the resource. An unsampled trace is not exported.
    #[tokio::test]
    async fn served_requests_are_exported_with_the_traces_ids() {
        let (endpoint, received) = collector().await;
        start(OtelConfig { endpoint: Some(endpoint), delay: Duration::from_millis(100), ca_bundle: None }).unwrap();
        let seen = Arc::new(Mutex::new(None));
        let inside = seen.clone();
        let router = crate::finish(
            "finance",
            Router::new().route(
                "/v1/invoices/{id}",
                get(move || {
                    let inside = inside.clone();
                    async move {
                        *inside.lock().unwrap() = kisum_client::trace::current();
                        "ok"
                    }
                }),
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        let http = reqwest::Client::new();
        let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let unsampled = "00-11111111111111111111111111111111-2222222222222222-00";
        for traceparent in [unsampled, caller] {
            let answer = http
                .get(format!("http://{addr}/v1/invoices/inv-1"))
                .header("traceparent", traceparent)
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status(), 200);
        }
        let served = seen.lock().unwrap().expect("the handler ran in the request's trace");
        // Bounded: the batch goes out every 100 ms.
        let mut spans = Vec::new();
        for _ in 0..100 {
            spans = received
                .lock()
                .unwrap()
                .iter()
                .flat_map(|r| r.resource_spans.iter())
                .flat_map(|rs| {
                    let service = rs
                        .resource
                        .as_ref()
                        .and_then(|r| r.attributes.iter().find(|a| a.key == "service.name"))
                        .and_then(|a| a.value.clone())
                        .map(|v| format!("{v:?}"))
                        .unwrap_or_default();
                    rs.scope_spans.iter().flat_map(move |ss| {
                        ss.spans.iter().map({
                            let service = service.clone();
                            move |s| (service.clone(), s.clone())
                        })
                    })
                })
                .collect::<Vec<_>>();
            if !spans.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(spans.len(), 1, "one sampled request, one span: {spans:?}");
        let (service, span) = &spans[0];
        assert!(service.contains("kisum-finance"), "{service}");
        assert_eq!(hex(&span.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(hex(&span.parent_span_id), "00f067aa0ba902b7");
        assert_eq!(u64::from_str_radix(&hex(&span.span_id), 16).unwrap(), served.span_id());
        assert_eq!(span.name, "GET /v1/invoices/{id}");
        assert_eq!(span.kind, 2, "a server span");
        let attribute = |key: &str| {
            span.attributes.iter().find(|a| a.key == key).and_then(|a| a.value.clone()).map(|v| format!("{v:?}"))
        };
        assert!(attribute("http.route").unwrap().contains("/v1/invoices/{id}"));
        assert!(attribute("http.response.status_code").unwrap().contains("200"));
        assert!(attribute("http.request.method").unwrap().contains("GET"));
        assert!(span.end_time_unix_nano >= span.start_time_unix_nano);
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}
