//! Verifying tokens locally against Auth's JWKS (API.md §5): fetched and cached; an unknown `kid` triggers
//! one refetch, at most once per 10 s, shared by every request waiting on it; a failed fetch keeps the last
//! good key set; each key is pinned to its algorithm (by `kisum-token`'s strict verifier).

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use kisum_entitlements::Timestamp;
use kisum_token::{Expect, Jwks, TokenError, Validation, VerifiedClaims, Verifier};

/// The least time between two fetches caused by unknown key ids.
pub const REFETCH_EVERY: Duration = Duration::from_secs(10);

/// A verifier kept in step with an issuer's JWKS.
pub struct Keys {
    verifier: ArcSwap<Verifier>,
    validation: Validation,
    remote: Option<Remote>,
}

struct Remote {
    http: reqwest::Client,
    url: String,
    /// When the last fetch started, and the lock that makes concurrent refetches one.
    last: tokio::sync::Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("url", &self.remote.as_ref().map(|r| r.url.as_str()))
            .field("keys", &self.verifier.load().jwks().len())
            .finish()
    }
}

impl Keys {
    /// Keys fetched from `url` (an issuer's `/.well-known/jwks.json`). If the first fetch fails the set
    /// starts empty, and the first token with an unknown key tries again. Refused: a leeway over 60 s.
    pub async fn fetch(
        http: reqwest::Client,
        url: impl Into<String>,
        validation: Validation,
    ) -> Result<Keys, TokenError> {
        let empty = Verifier::new(Jwks::default(), validation.clone())?;
        let keys = Keys {
            verifier: ArcSwap::from_pointee(empty),
            validation,
            remote: Some(Remote { http, url: url.into(), last: tokio::sync::Mutex::new(None) }),
        };
        keys.refetch(true).await;
        Ok(keys)
    }

    /// Fixed keys (no issuer to fetch from).
    pub fn fixed(verifier: Verifier, validation: Validation) -> Keys {
        Keys { verifier: ArcSwap::from_pointee(verifier), validation, remote: None }
    }

    /// Verifies `token`. A key id not in the cached set causes one refetch (rate-limited, single-flight)
    /// and one more try.
    pub async fn verify(
        &self,
        token: &str,
        expect: Expect<'_>,
        now: Timestamp,
    ) -> Result<Arc<VerifiedClaims>, TokenError> {
        match self.verifier.load().verify(token, expect, now) {
            Err(TokenError::UnknownKey) if self.remote.is_some() => {
                self.refetch(false).await;
                self.verifier.load().verify(token, expect, now)
            }
            other => other,
        }
    }

    /// Fetches the key set again unless a fetch started less than [`REFETCH_EVERY`] ago (`force` skips
    /// that limit: a `keys` event on the feed). Callers arriving while a fetch runs wait for it and do not
    /// fetch again. A failed fetch keeps the current set. Returns whether the set was replaced.
    pub async fn refetch(&self, force: bool) -> bool {
        let Some(remote) = &self.remote else { return false };
        let mut last = remote.last.lock().await;
        if !force && last.is_some_and(|t| t.elapsed() < REFETCH_EVERY) {
            return false;
        }
        *last = Some(Instant::now());
        match fetch(&remote.http, &remote.url)
            .await
            .and_then(|jwks| Verifier::new(jwks, self.validation.clone()).map_err(|e| e.to_string()))
        {
            Ok(verifier) => {
                tracing::debug!(keys = verifier.jwks().len(), "JWKS fetched");
                self.verifier.store(Arc::new(verifier));
                true
            }
            Err(e) => {
                tracing::warn!(url = %remote.url, error = %e, "JWKS fetch failed; keeping the last good key set");
                false
            }
        }
    }

    /// How many keys are cached.
    pub fn len(&self) -> usize {
        self.verifier.load().jwks().len()
    }

    /// Whether no key is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

async fn fetch(http: &reqwest::Client, url: &str) -> Result<Jwks, String> {
    let response = http.get(url).timeout(crate::REQUEST_TIMEOUT).send().await.map_err(|e| crate::secret::causes(&e))?;
    if !response.status().is_success() {
        return Err(format!("{url} answered {}", response.status()));
    }
    let text = response.text().await.map_err(|e| e.to_string())?;
    Jwks::parse(&text).map_err(|e| e.to_string())
}
