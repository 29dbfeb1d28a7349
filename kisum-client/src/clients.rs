//! Typed clients of Auth, Core and the Admin API (API.md §2–3), for services, tools and tests.

use kisum_errors::Problem;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A call that failed: the status and, when the server sent one, its problem.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status}: {detail}")]
pub struct CallError {
    /// The HTTP status (0 when the server was not reached).
    pub status: u16,
    /// The problem+json body, if any.
    pub problem: Option<Box<Problem>>,
    /// What went wrong.
    pub detail: String,
}

impl CallError {
    /// The problem's `code`, if the server sent one.
    pub fn code(&self) -> Option<kisum_errors::ErrorCode> {
        self.problem.as_ref().map(|p| p.code)
    }
}

async fn answer<T: DeserializeOwned>(result: Result<reqwest::Response, reqwest::Error>) -> Result<T, CallError> {
    let response = result.map_err(|e| CallError { status: 0, problem: None, detail: e.to_string() })?;
    let status = response.status().as_u16();
    let bytes = response.bytes().await.map_err(|e| CallError { status, problem: None, detail: e.to_string() })?;
    if (200..300).contains(&status) {
        let body = if bytes.is_empty() { &b"null"[..] } else { &bytes[..] };
        return serde_json::from_slice(body).map_err(|e| CallError { status, problem: None, detail: e.to_string() });
    }
    let problem: Option<Problem> = Problem::from_json(&bytes).ok();
    let detail = problem.as_ref().map_or_else(|| String::from_utf8_lossy(&bytes).into_owned(), |p| p.detail.clone());
    Err(CallError { status, problem: problem.map(Box::new), detail })
}

/// `method base+path` with a bearer token and an optional JSON body, answered as JSON.
async fn json_call(
    http: &reqwest::Client,
    base: &str,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> Result<Value, CallError> {
    let mut request = http.request(method, format!("{base}{path}")).bearer_auth(token);
    if let Some(b) = body {
        request = request.json(b);
    }
    answer(request.send().await).await
}

/// A session started (`POST /v1/sessions`).
#[derive(Debug, Clone, Deserialize)]
pub struct Session {
    /// The session id.
    pub session: String,
    /// Its first refresh token.
    pub refresh_token: String,
    /// The user.
    pub user: String,
    /// The user's companies.
    pub companies: Vec<Value>,
}

/// A token response.
#[derive(Debug, Clone, Deserialize)]
pub struct Token {
    /// The access token.
    pub access_token: String,
    /// Seconds until it expires.
    pub expires_in: i64,
    /// The next refresh token (refresh grant).
    pub refresh_token: Option<String>,
    /// The scopes (client credentials).
    pub scope: Option<String>,
}

/// Auth's API.
#[derive(Debug, Clone)]
pub struct AuthClient {
    http: reqwest::Client,
    base: String,
}

impl AuthClient {
    /// A client of the Auth at `base` (`http://127.0.0.1:7400`).
    pub fn new(http: reqwest::Client, base: impl Into<String>) -> AuthClient {
        AuthClient { http, base: base.into() }
    }

    /// Signs in.
    pub async fn login(&self, user: &str, password: &str) -> Result<Session, CallError> {
        let body = serde_json::json!({ "user": user, "password": password });
        answer(self.http.post(format!("{}/v1/sessions", self.base)).json(&body).send().await).await
    }

    /// A company's access token for a session (rotating its refresh token).
    pub async fn refresh(&self, refresh_token: &str, company: &str) -> Result<Token, CallError> {
        let form = [("grant_type", "refresh_token"), ("refresh_token", refresh_token), ("company", company)];
        answer(self.http.post(format!("{}/oauth/token", self.base)).form(&form).send().await).await
    }

    /// A service token (client credentials), for `scope` if given.
    pub async fn client_credentials(&self, id: &str, secret: &str, scope: Option<&str>) -> Result<Token, CallError> {
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(s) = scope {
            form.push(("scope", s));
        }
        answer(
            self.http.post(format!("{}/oauth/token", self.base)).basic_auth(id, Some(secret)).form(&form).send().await,
        )
        .await
    }

    /// A token acting for the user of `subject_token`, as the agent whose client this is (RFC 8693).
    pub async fn exchange(&self, id: &str, secret: &str, subject_token: &str) -> Result<Token, CallError> {
        let form = [
            ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
            ("subject_token", subject_token),
            ("subject_token_type", "urn:ietf:params:oauth:token-type:access_token"),
        ];
        answer(
            self.http.post(format!("{}/oauth/token", self.base)).basic_auth(id, Some(secret)).form(&form).send().await,
        )
        .await
    }

    /// Ends the session of a user access token.
    pub async fn revoke(&self, access_token: &str) -> Result<(), CallError> {
        answer::<Value>(
            self.http.post(format!("{}/v1/sessions/revoke", self.base)).bearer_auth(access_token).send().await,
        )
        .await
        .map(|_| ())
    }

    /// Any Auth route, as JSON (`method`, path, bearer token, body).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> Result<Value, CallError> {
        json_call(&self.http, &self.base, method, path, token, body).await
    }
}

/// Core's API and the Admin API.
#[derive(Debug, Clone)]
pub struct CoreClient {
    http: reqwest::Client,
    base: String,
}

impl CoreClient {
    /// A client of the Core at `base` (`http://127.0.0.1:7401`).
    pub fn new(http: reqwest::Client, base: impl Into<String>) -> CoreClient {
        CoreClient { http, base: base.into() }
    }

    /// Every plan version.
    pub async fn catalog(&self, token: &str) -> Result<Value, CallError> {
        answer(self.http.get(format!("{}/v1/catalog", self.base)).bearer_auth(token).send().await).await
    }

    /// A company's entitlements now.
    pub async fn entitlements(&self, token: &str, company: &str) -> Result<Value, CallError> {
        answer(
            self.http.get(format!("{}/v1/companies/{company}/entitlements", self.base)).bearer_auth(token).send().await,
        )
        .await
    }

    /// Adds an override to a company (Admin API); the answer carries its `id`.
    pub async fn add_override(&self, token: &str, company: &str, item: &Value) -> Result<Value, CallError> {
        answer(
            self.http
                .post(format!("{}/admin/v1/companies/{company}/overrides", self.base))
                .bearer_auth(token)
                .json(item)
                .send()
                .await,
        )
        .await
    }

    /// Removes an override (Admin API).
    pub async fn remove_override(&self, token: &str, company: &str, id: &str) -> Result<(), CallError> {
        answer::<Value>(
            self.http
                .delete(format!("{}/admin/v1/companies/{company}/overrides/{id}", self.base))
                .bearer_auth(token)
                .send()
                .await,
        )
        .await
        .map(|_| ())
    }

    /// Any Core or Admin route, as JSON.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> Result<Value, CallError> {
        json_call(&self.http, &self.base, method, path, token, body).await
    }
}
