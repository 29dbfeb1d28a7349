//! Verifying Auth's tokens from the store Auth writes its keys to: a server sharing Auth's store (Core)
//! needs no JWKS file, and follows key rotations through the change log as they are installed.

use std::sync::Arc;
use std::time::Duration;

use kisum_access::Change;
use kisum_store::{Engine, Installed, Store, StoreError, StoredKey};
use kisum_token::{Jwks, RETIRED_KEEP_SECONDS, TokenError, Validation, Verifier};
use tokio::sync::broadcast::error::RecvError;

/// The public keys in `store` that are published at `now` (Unix seconds), as a JWKS.
pub async fn jwks_from_store(store: &dyn Store, now: i64) -> Result<Jwks, KeysError> {
    Ok(published(&store.signing_keys().await?, now)?.0)
}

/// The keys of `rows` published at `now`, and the next instant that set changes by time alone (a key
/// published ahead, or one whose retirement ends), if any.
fn published(rows: &[StoredKey], now: i64) -> Result<(Jwks, Option<i64>), KeysError> {
    let retired = |k: &StoredKey| k.signs_until.saturating_add(RETIRED_KEEP_SECONDS);
    let keys: Vec<serde_json::Value> = rows
        .iter()
        .filter(|k| k.published_at <= now && now < retired(k))
        .filter_map(|k| serde_json::from_str(&k.public_jwk).ok())
        .collect();
    let next = rows.iter().flat_map(|k| [k.published_at, retired(k)]).filter(|t| *t > now).min();
    Ok((Jwks::parse(&serde_json::json!({ "keys": keys }).to_string())?, next))
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

/// The longest the key set goes unread: a safety net under the log and the key schedule.
const REREAD_AT_MOST: Duration = Duration::from_secs(300);

/// Rebuilds the verifier whenever the published key set changes, and hands each new one to `replace`:
/// keys follow the log — a `rotate_keys` change installed by `engine` (its one subscription, shared with
/// every other in-process follower) rereads them at once — and the key schedule, the set being reread
/// when a key published ahead comes out or a retired one goes (at least every 5 minutes). Runs until
/// aborted.
pub fn follow_keys(
    engine: Arc<Engine>,
    validation: Validation,
    replace: impl Fn(Verifier) + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let mut changes = engine.subscribe();
    tokio::spawn(async move {
        let mut current: Vec<String> = Vec::new();
        loop {
            let now = kisum_entitlements::Timestamp::now().unix_seconds();
            let rows = engine.store().signing_keys().await;
            let wait = match rows.map_err(KeysError::from).and_then(|rows| published(&rows, now)) {
                Ok((jwks, next)) => {
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
                    let until_next = next.map(|t| Duration::from_secs(u64::try_from(t - now).unwrap_or(1)));
                    until_next.unwrap_or(REREAD_AT_MOST).clamp(Duration::from_secs(1), REREAD_AT_MOST)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reading verification keys failed; retrying");
                    Duration::from_secs(1)
                }
            };
            let deadline = tokio::time::sleep(wait);
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    () = &mut deadline => break,
                    change = changes.recv() => match change {
                        Ok(Installed::Change(entry)) if matches!(entry.change, Change::RotateKeys { .. }) => break,
                        Ok(Installed::Change(_)) => {}
                        Ok(Installed::Reloaded { .. }) | Err(RecvError::Lagged(_)) => break,
                        Err(RecvError::Closed) => return,
                    },
                }
            }
        }
    })
}
