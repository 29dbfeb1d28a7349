//! Driving a router in tests: one request, its answer, and the checks every problem answer must pass.
#![allow(clippy::indexing_slicing)] // serde_json::Value indexing never panics: a missing key reads as null.

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// A request to send.
#[derive(Debug, Clone)]
pub struct Call {
    method: Method,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<(String, String)>,
}

impl Call {
    /// `method path`, no headers, no body.
    pub fn new(method: Method, path: impl Into<String>) -> Call {
        Call { method, path: path.into(), headers: Vec::new(), body: None }
    }

    /// With `Authorization: Bearer token` (none for `None`).
    pub fn bearer(self, token: Option<&str>) -> Call {
        match token {
            Some(t) => self.header("authorization", &format!("Bearer {t}")),
            None => self,
        }
    }

    /// With a header.
    pub fn header(mut self, name: &str, value: &str) -> Call {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// With a JSON body.
    pub fn json(mut self, body: &Value) -> Call {
        self.body = Some(("application/json".into(), body.to_string()));
        self
    }

    /// With a form body (`application/x-www-form-urlencoded`).
    pub fn form(mut self, pairs: &[(&str, &str)]) -> Call {
        let text: Vec<String> = pairs.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect();
        self.body = Some(("application/x-www-form-urlencoded".into(), text.join("&")));
        self
    }

    /// With a raw body of `content_type`.
    pub fn raw(mut self, content_type: &str, body: impl Into<String>) -> Call {
        self.body = Some((content_type.into(), body.into()));
        self
    }

    /// Sends it over HTTP to the server at `base` (`http://127.0.0.1:PORT`): the same request, for a
    /// server that is not an axum router.
    pub async fn send_to(self, base: &str) -> Answer {
        let method = reqwest::Method::from_bytes(self.method.as_str().as_bytes()).unwrap_or(reqwest::Method::GET);
        let mut request = reqwest::Client::new().request(method, format!("{base}{}", self.path));
        for (k, v) in &self.headers {
            request = request.header(k.as_str(), v.as_str());
        }
        if let Some((ct, body)) = self.body {
            request = request.header("content-type", ct).body(body);
        }
        let response = request.send().await.unwrap_or_else(|e| unreachable(&e.to_string()));
        let status = StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut headers = HeaderMap::new();
        for (k, v) in response.headers() {
            if let (Ok(name), Ok(value)) = (
                axum::http::HeaderName::from_bytes(k.as_str().as_bytes()),
                axum::http::HeaderValue::from_bytes(v.as_bytes()),
            ) {
                headers.append(name, value);
            }
        }
        let bytes = response.bytes().await.unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer { status, headers, body, text }
    }

    /// Sends it to `app`.
    pub async fn send(self, app: &Router) -> Answer {
        let mut request = Request::builder().method(self.method).uri(self.path);
        for (k, v) in &self.headers {
            request = request.header(k, v);
        }
        let request = match self.body {
            Some((ct, body)) => request.header("content-type", ct).body(Body::from(body)),
            None => request.body(Body::empty()),
        }
        .unwrap_or_else(|e| unreachable(&e.to_string()));
        let response = app.clone().oneshot(request).await.unwrap_or_else(|e| unreachable(&e.to_string()));
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer { status, headers, body, text }
    }
}

#[allow(clippy::panic)]
fn unreachable(e: &str) -> ! {
    panic!("request failed: {e}")
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An answer.
#[derive(Debug)]
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body as JSON (`null` if empty or not JSON).
    pub body: Value,
    /// The body as text.
    pub text: String,
}

impl Answer {
    /// The problem's `code`, or "".
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    /// The `kisum-version` header.
    pub fn version(&self) -> u64 {
        self.headers.get("kisum-version").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).unwrap_or(0)
    }

    /// Asserts the status; a failure is a problem+json body with its status and the request id.
    #[track_caller]
    #[allow(clippy::panic)]
    pub fn expect(&self, status: StatusCode) -> &Self {
        assert_eq!(self.status, status, "{:#}", self.body);
        if !status.is_success() {
            assert_eq!(
                self.headers.get("content-type").map(|v| v.as_bytes()),
                Some(&b"application/problem+json"[..]),
                "{:#}",
                self.body
            );
            assert_eq!(self.body["status"], status.as_u16(), "{:#}", self.body);
            assert_eq!(
                self.body["request_id"].as_str(),
                self.headers.get("x-request-id").and_then(|v| v.to_str().ok()),
                "problem bodies carry the request id"
            );
        }
        self
    }

    /// Asserts the status and the problem code.
    #[track_caller]
    pub fn expect_code(&self, status: StatusCode, code: &str) -> &Self {
        self.expect(status);
        assert_eq!(self.code(), code, "{:#}", self.body);
        self
    }
}
