//! Verifying Auth's tokens from the store Auth writes its keys to: a server sharing Auth's store (Core)
//! needs no JWKS file, and follows key rotations as they are committed.

use std::sync::Arc;
use std::time::Duration;

use kisum_store::{Store, StoreError};
use kisum_token::{Jwks, RETIRED_KEEP_SECONDS, TokenError, Validation, Verifier};

/// The public keys in `store` that are published at `now` (Unix seconds), as a JWKS.
pub async fn jwks_from_store(store: &dyn Store, now: i64) -> Result<Jwks, KeysError> {
    let rows = store.signing_keys().await?;
    let keys: Vec<serde_json::Value> = rows
        .iter()
        .filter(|k| k.published_at <= now && now < k.signs_until.saturating_add(RETIRED_KEEP_SECONDS))
        .filter_map(|k| serde_json::from_str(&k.public_jwk).ok())
        .collect();
    Ok(Jwks::parse(&serde_json::json!({ "keys": keys }).to_string())?)
}

/// Why the keys could not be read.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored key is unusable.
    #[error(transparent)]
    Token(#[from] TokenError),
}

/// Rebuilds the verifier whenever the published key set in `store` changes, checking every `poll`, and
/// hands each new one to `replace`. Runs until aborted.
pub fn follow_keys(
    store: Arc<dyn Store>,
    validation: Validation,
    poll: Duration,
    replace: impl Fn(Verifier) + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut current: Vec<String> = Vec::new();
        loop {
            let now = kisum_entitlements::Timestamp::now().unix_seconds();
            match jwks_from_store(store.as_ref(), now).await {
                Ok(jwks) => {
                    let mut kids: Vec<String> = jwks.kids().map(str::to_owned).collect();
                    kids.sort();
                    if kids != current {
                        match Verifier::new(jwks, validation.clone()) {
                            Ok(v) => {
                                tracing::info!(keys = kids.len(), "verification keys changed");
                                replace(v);
                                current = kids;
                            }
                            Err(e) => tracing::error!(error = %e, "unusable verification keys"),
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "reading verification keys failed"),
            }
            tokio::time::sleep(poll).await;
        }
    })
}
