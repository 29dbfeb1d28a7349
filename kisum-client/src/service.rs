//! The module's own service token (client credentials at Auth), fetched when needed and renewed before it
//! expires.

use std::time::{Duration, Instant};

use kisum_errors::ErrorCode;

use crate::problem::Refusal;

/// A service token source.
pub struct ServiceToken {
    http: reqwest::Client,
    url: String,
    client_id: String,
    client_secret: crate::Secret,
    scope: String,
    current: tokio::sync::Mutex<Option<(String, Instant)>>,
}

impl std::fmt::Debug for ServiceToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceToken").field("client_id", &self.client_id).field("scope", &self.scope).finish()
    }
}

#[derive(serde::Deserialize)]
struct Answer {
    access_token: String,
    expires_in: u64,
}

impl ServiceToken {
    /// Tokens for `client_id` with `scope` from the token endpoint of `auth_url`.
    pub fn new(
        http: reqwest::Client,
        auth_url: &str,
        client_id: &str,
        client_secret: &str,
        scope: &str,
    ) -> ServiceToken {
        ServiceToken {
            http,
            url: format!("{auth_url}/oauth/token"),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            scope: scope.into(),
            current: tokio::sync::Mutex::new(None),
        }
    }

    /// A token valid for at least another minute.
    pub async fn get(&self) -> Result<String, Refusal> {
        let mut current = self.current.lock().await;
        if let Some((token, renew_at)) = current.as_ref()
            && Instant::now() < *renew_at
        {
            return Ok(token.clone());
        }
        let unavailable = |detail: String| Refusal::new(ErrorCode::UpstreamUnavailable, detail);
        let response = crate::trace::propagate(self.http.post(&self.url))
            .timeout(crate::REQUEST_TIMEOUT)
            .basic_auth(&self.client_id, Some(self.client_secret.expose()))
            .form(&[("grant_type", "client_credentials"), ("scope", self.scope.as_str())])
            .send()
            .await
            .map_err(|e| unavailable(format!("Auth is unreachable: {}", crate::secret::causes(&e))))?;
        if !response.status().is_success() {
            return Err(unavailable(format!("Auth refused the module's client credentials ({})", response.status())));
        }
        let answer: Answer = response.json().await.map_err(|e| unavailable(e.to_string()))?;
        let renew_at = Instant::now() + Duration::from_secs(answer.expires_in.saturating_sub(60).max(1));
        *current = Some((answer.access_token.clone(), renew_at));
        Ok(answer.access_token)
    }

    /// Forgets the current token (Auth refused it: keys rotated past it, or the client changed).
    pub async fn clear(&self) {
        *self.current.lock().await = None;
    }
}
