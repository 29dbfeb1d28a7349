//! Calls to Auth, Core and the modules over their public HTTP APIs, as any frontend would: the console
//! holds no shortcut into the store or the directory. An answer is its status and JSON body; a problem
//! body is read into [`Problem`] so that pages can show the code, the rule and what was `required`.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

/// How long one upstream call may take before the page says the service is unavailable.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// One upstream answer.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub status: StatusCode,
    pub body: Value,
    /// `kisum-version` of a write: the store's sequence after it.
    pub version: Option<u64>,
}

impl Reply {
    /// The answer's problem, when it is not a success.
    pub fn problem(&self) -> Option<Problem> {
        (!self.status.is_success()).then(|| Problem::of(self.status, &self.body))
    }

    /// The body on success, the problem otherwise.
    pub fn ok(self) -> Result<Value, Problem> {
        match self.problem() {
            None => Ok(self.body),
            Some(p) => Err(p),
        }
    }
}

/// An upstream refusal or failure, as a page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub status: u16,
    /// The stable code (`FORBIDDEN`, `PERMISSION_NOT_GRANTED`, …).
    pub code: String,
    /// The human explanation (for a write, the rule that refused it).
    pub detail: String,
    /// What was missing (a permission, a module, a feature, a limit), if the service named it.
    pub required: Option<String>,
    /// Field errors (`path: message`) of a `VALIDATION_FAILED`.
    pub errors: Vec<String>,
}

impl Problem {
    fn of(status: StatusCode, body: &Value) -> Problem {
        let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
        let errors = body
            .get("errors")
            .and_then(Value::as_array)
            .map(|errors| {
                errors
                    .iter()
                    .map(|e| {
                        let path = e.get("path").and_then(Value::as_str).unwrap_or("");
                        let message = e.get("message").and_then(Value::as_str).unwrap_or("");
                        format!("{path}: {message}")
                    })
                    .collect()
            })
            .unwrap_or_default();
        Problem {
            status: status.as_u16(),
            code: text("code").unwrap_or_else(|| status.canonical_reason().unwrap_or("ERROR").to_uppercase()),
            detail: text("detail").unwrap_or_else(|| format!("the service answered {status}")),
            required: text("required"),
            errors,
        }
    }

    /// A service that did not answer (logged with its address; the page does not show internal URLs).
    pub fn unavailable(what: &str, e: &reqwest::Error) -> Problem {
        tracing::warn!(service = what, error = %e, "a call from the console failed");
        Problem {
            status: 503,
            code: "UPSTREAM_UNAVAILABLE".into(),
            detail: "a service of the platform did not answer; try again in a moment".into(),
            required: None,
            errors: Vec::new(),
        }
    }
}

/// A request to one service.
pub(crate) struct Call<'a> {
    method: Method,
    url: String,
    token: Option<&'a str>,
    json: Option<&'a Value>,
    form: Option<&'a [(&'a str, &'a str)]>,
    at_least: Option<u64>,
}

impl<'a> Call<'a> {
    pub fn new(method: Method, url: String) -> Call<'a> {
        Call { method, url, token: None, json: None, form: None, at_least: None }
    }

    pub fn get(url: String) -> Call<'a> {
        Call::new(Method::GET, url)
    }

    pub fn bearer(mut self, token: &'a str) -> Call<'a> {
        self.token = Some(token);
        self
    }

    pub fn json(mut self, body: &'a Value) -> Call<'a> {
        self.json = Some(body);
        self
    }

    pub fn form(mut self, fields: &'a [(&'a str, &'a str)]) -> Call<'a> {
        self.form = Some(fields);
        self
    }

    /// `kisum-at-least`: answered from state at least this fresh (the feed sequence the console saw).
    pub fn at_least(mut self, seq: u64) -> Call<'a> {
        self.at_least = (seq > 0).then_some(seq);
        self
    }

    /// Sends it; a service that does not answer is a `503 UPSTREAM_UNAVAILABLE` problem.
    pub async fn send(self, http: &reqwest::Client) -> Result<Reply, Problem> {
        let mut request = http.request(self.method, &self.url).timeout(CALL_TIMEOUT);
        if let Some(token) = self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = self.json {
            request = request.json(body);
        }
        if let Some(fields) = self.form {
            request = request.form(fields);
        }
        if let Some(seq) = self.at_least {
            request = request.header("kisum-at-least", seq.to_string());
        }
        let what = self.url.split("/v1").next().unwrap_or(&self.url).to_owned();
        let response = request.send().await.map_err(|e| Problem::unavailable(&what, &e))?;
        let status = response.status();
        let version =
            response.headers().get("kisum-version").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
        let bytes = response.bytes().await.map_err(|e| Problem::unavailable(&what, &e))?;
        let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
        Ok(Reply { status, body, version })
    }
}
