//! W3C Trace Context (`traceparent`, <https://www.w3.org/TR/trace-context/>): a request keeps its trace
//! id from a module through the SDK to Auth and Core, so that their log lines of one request can be
//! found together.
//!
//! The servers' request layer (`kisum-server`) takes a valid incoming `traceparent` (or starts a trace),
//! names its own span in the request's header and serves the request in [`scope`]; [`KisumLayer`]
//! does the same for a module that is not built on it. Every call the SDK makes to Auth or Core while
//! serving a request carries `traceparent` with the request's trace id and the serving span's id as its
//! parent. Ids are random (not secrets: they only correlate logs). With `kisum-server`'s feature `otel`,
//! each server's span of a request is exported over OTLP with exactly these ids.
//!
//! [`KisumLayer`]: crate::KisumLayer

use std::fmt::Write as _;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

/// The header.
pub const TRACEPARENT: &str = "traceparent";

/// One `traceparent`: a trace id, the id of the span that sent it, and the trace flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    trace_id: u128,
    span_id: u64,
    flags: u8,
}

impl TraceParent {
    /// Parses a `traceparent` value: version `00` exactly (`00-` 32 hex digits `-` 16 hex digits `-` 2 hex
    /// digits, lowercase, ids not all zero); a later version by the same prefix, as the specification
    /// asks; version `ff` never. `None` for anything else.
    pub fn parse(value: &str) -> Option<TraceParent> {
        let version = value.get(0..2)?;
        let known = version == "00";
        if version == "ff" || !is_hex(version) || (known && value.len() != 55) || (!known && value.len() < 55) {
            return None;
        }
        if !known && value.len() > 55 && value.as_bytes().get(55) != Some(&b'-') {
            return None;
        }
        let (trace, span, flags) = (value.get(3..35)?, value.get(36..52)?, value.get(53..55)?);
        let dashes = [2, 35, 52].iter().all(|&i| value.as_bytes().get(i) == Some(&b'-'));
        if !dashes || !is_hex(trace) || !is_hex(span) || !is_hex(flags) {
            return None;
        }
        let trace_id = u128::from_str_radix(trace, 16).ok().filter(|&t| t != 0)?;
        let span_id = u64::from_str_radix(span, 16).ok().filter(|&s| s != 0)?;
        Some(TraceParent { trace_id, span_id, flags: u8::from_str_radix(flags, 16).ok()? })
    }

    /// A new trace (sampled), with a span of its own.
    pub fn start() -> TraceParent {
        let trace_id = (u128::from(random()) << 64) | u128::from(random());
        TraceParent { trace_id: trace_id.max(1), span_id: random().max(1), flags: 0x01 }
    }

    /// A span of this trace: same trace id and flags, a new span id.
    pub fn child(&self) -> TraceParent {
        TraceParent { span_id: random().max(1), ..*self }
    }

    /// The trace id, 32 lowercase hex digits (what log lines carry as `trace_id`).
    pub fn trace_id(&self) -> String {
        format!("{:032x}", self.trace_id)
    }

    /// The trace id as a number (for exporters).
    pub fn trace_id_bits(&self) -> u128 {
        self.trace_id
    }

    /// The span id.
    pub fn span_id(&self) -> u64 {
        self.span_id
    }

    /// Whether the trace is sampled (flag `01`): the caller asks that its spans be recorded.
    pub fn sampled(&self) -> bool {
        self.flags & 0x01 == 0x01
    }
}

impl std::fmt::Display for TraceParent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "00-{:032x}-{:016x}-{:02x}", self.trace_id, self.span_id, self.flags)
    }
}

fn is_hex(text: &str) -> bool {
    text.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

/// 128 random bits as 32 lowercase hex digits, from the same generator as trace ids: for ids that only
/// correlate (request ids), never for secrets.
pub fn random_id() -> String {
    format!("{:016x}{:016x}", random(), random())
}

/// 64 random bits: SplitMix64 over a per-thread state seeded from the standard library's random hasher
/// keys (ids only correlate logs: fast and unpredictable enough, not a secret).
fn random() -> u64 {
    static THREADS: AtomicU64 = AtomicU64::new(0);
    thread_local! {
        static STATE: std::cell::Cell<u64> =
            std::cell::Cell::new(std::hash::RandomState::new().hash_one(THREADS.fetch_add(1, Ordering::Relaxed)));
    }
    STATE.with(|state| {
        let mut z = state.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        state.set(z);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    })
}

tokio::task_local! {
    static CURRENT: TraceParent;
}

/// The span of the request this task serves, if any.
pub fn current() -> Option<TraceParent> {
    CURRENT.try_with(|t| *t).ok()
}

/// Runs `work` as span `span` of its trace: calls the SDK makes meanwhile carry its trace id.
pub async fn scope<F: std::future::Future>(span: TraceParent, work: F) -> F::Output {
    CURRENT.scope(span, work).await
}

/// The `traceparent` for a call made now: the current span as the callee's parent (the span a server
/// exports for the request, so that a trace's tree has no gap), or nothing outside a request.
pub(crate) fn outgoing() -> Option<String> {
    current().map(|span| {
        let mut text = String::with_capacity(55);
        let _ = write!(text, "{span}");
        text
    })
}

/// Adds `traceparent` to a request the SDK sends, when it is sent while serving one.
pub(crate) fn propagate(request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    match outgoing() {
        Some(value) => request.header(TRACEPARENT, value),
        None => request,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::panic)]
    use super::*;

    #[test]
    fn traceparents_parse_as_the_specification_says() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let parsed = TraceParent::parse(good).unwrap_or_else(|| panic!("{good}"));
        assert_eq!(parsed.to_string(), good);
        assert_eq!(parsed.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        let child = parsed.child();
        assert_eq!(child.trace_id(), parsed.trace_id());
        assert_ne!(child.to_string(), good, "a child has a span id of its own");
        // A later version: read by its prefix.
        assert!(TraceParent::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes").is_some());
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "0é-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad}");
        }
        let started = TraceParent::start();
        assert_eq!(TraceParent::parse(&started.to_string()), Some(started));
        assert_ne!(TraceParent::start().trace_id(), started.trace_id());
    }
}
