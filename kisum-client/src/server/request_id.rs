//! `x-request-id` on every response (API.md §1): a valid incoming id is echoed, any other is replaced by
//! a fresh one; the id is also in every problem body built while the request is served. The request's
//! W3C `traceparent` is taken (or a trace started) here too: the request carries this server's span in
//! its header, and is served in [`crate::trace::scope`], so that calls to Auth and Core made
//! meanwhile carry the trace on.

use crate::trace::TraceParent;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};

/// The header.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being served by this task, if any.
pub fn current() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// Whether an incoming id is one to echo: 1 to 128 characters of `[A-Za-z0-9._:-]`.
pub fn is_valid(value: &[u8]) -> bool {
    !value.is_empty()
        && value.len() <= 128
        && value.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b':'))
}

/// The request's id: its one valid incoming `x-request-id`, else a fresh one; written into the request,
/// and returned with the header value the response carries.
pub(crate) fn take(req: &mut Request) -> (String, Option<HeaderValue>) {
    let incoming = req.headers().get_all(&X_REQUEST_ID).iter().collect::<Vec<_>>();
    let id = match incoming.as_slice() {
        [one] if is_valid(one.as_bytes()) => one.to_str().map(str::to_owned).ok(),
        _ => None,
    }
    .unwrap_or_else(crate::trace::random_id);
    let value = HeaderValue::from_str(&id).ok();
    if let Some(value) = &value {
        req.headers_mut().insert(X_REQUEST_ID, value.clone());
    }
    (id, value)
}

/// Runs `work` as the request with id `id` ([`current`] answers it).
pub(crate) async fn scope<F: std::future::Future>(id: String, work: F) -> F::Output {
    REQUEST_ID.scope(id, work).await
}

/// This server's span of the request's trace: a child of a valid incoming `traceparent` (exactly one),
/// else the start of a trace; written into the request's header, where the request span reads its id.
/// Returned with the incoming parent, if any.
pub(crate) fn traced(req: &mut Request) -> (TraceParent, Option<TraceParent>) {
    let incoming = req.headers().get_all(crate::trace::TRACEPARENT).iter().collect::<Vec<_>>();
    let parent = match incoming.as_slice() {
        [one] => one.to_str().ok().and_then(TraceParent::parse),
        _ => None,
    };
    let span = parent.map_or_else(TraceParent::start, |p| p.child());
    if let Ok(value) = HeaderValue::from_str(&span.to_string()) {
        req.headers_mut().insert(crate::trace::TRACEPARENT, value);
    }
    (span, parent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_ids_are_echoed() {
        for good in ["abc-123", "a", "req_1.2:3", &"x".repeat(128)] {
            assert!(is_valid(good.as_bytes()), "{good}");
        }
        for bad in ["", "<script>", "a b", "é", &"x".repeat(129), "a\nb"] {
            assert!(!is_valid(bad.as_bytes()), "{bad}");
        }
    }
}
