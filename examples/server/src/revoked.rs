//! Sessions revoked, users disabled and passwords changed, as a server learns them from the change log
//! (`revoke_session`, `disable_user`, `set_password`): their tokens are refused until the last of them
//! has expired. Auth and Core keep one
//! each, inside their [`Tokens`](crate::Tokens), so every route refuses them.

use std::sync::Arc;

use kisum_access::Change;
use kisum_entitlements::Timestamp;
use kisum_store::{Engine, Installed, LogEntry, Store, StoreError};
use kisum_token::{MAX_LEEWAY_SECONDS, MAX_LIFETIME_SECONDS};
use tokio::sync::broadcast::error::RecvError;

/// How long after a revocation its session's tokens can still be presented: the longest token lifetime
/// plus the largest leeway.
pub const REFUSE_FOR: i64 = MAX_LIFETIME_SECONDS + MAX_LEEWAY_SECONDS as i64;

/// Revoked sessions and users, each until an instant: the SDK's set ([`kisum_client::Revocations`]), which
/// modules fill from the feed and the servers from the log — one refusal rule for both.
pub type Revoked = kisum_client::Revocations;

/// Learns from one committed change: a revoked session; a user disabled (every token) or whose password
/// changed with its sessions ended (tokens issued until then). Token times are whole seconds, so a token
/// issued in the very second of the change is refused too.
pub fn observe(revoked: &Revoked, entry: &LogEntry) {
    match &entry.change {
        Change::RevokeSession { session, until, .. } => revoked.session(session, *until),
        Change::DisableUser { user } => revoked.user(user.as_str(), None, refuse_until(entry.record.at)),
        Change::SetPassword { user, end_sessions: true } => {
            revoked.user(user.as_str(), Some(entry.record.at), refuse_until(entry.record.at));
        }
        _ => {}
    }
}

/// How long after `at` a token issued before it can still be presented.
fn refuse_until(at: Timestamp) -> Timestamp {
    Timestamp::from_unix(at.unix_seconds().saturating_add(REFUSE_FOR))
}

/// Reads the sessions revoked recently enough (at `now`) that their tokens may still be presented.
pub async fn load(revoked: &Revoked, store: &dyn Store, now: Timestamp) -> Result<(), StoreError> {
    let now = now.unix_seconds();
    for s in store.revoked_sessions(now.saturating_sub(REFUSE_FOR)).await? {
        let until = s.revoked_at.unwrap_or(now).saturating_add(REFUSE_FOR);
        revoked.session(&s.sid, Timestamp::from_unix(until));
    }
    Ok(())
}

/// Keeps `revoked` in step with what `engine` installs, through its subscription to the log: Auth's
/// table of revoked sessions is loaded first (after subscribing, so that nothing committed meanwhile is
/// missed), then every change is observed as it is installed. When the engine reloaded from a checkpoint
/// or this follower fell behind, the changes skipped are read from the log itself (where it still reaches
/// back; else the table is loaded again: sessions ended with their user are marked there too). While the
/// engine cannot follow the log at all, the replica is not ready and answers every read `503`, so what it
/// has not learned is never relied on. Runs until aborted.
pub fn follow(engine: Arc<Engine>, revoked: Arc<Revoked>) -> tokio::task::JoinHandle<()> {
    let mut changes = engine.subscribe();
    let mut last = engine.seq();
    tokio::spawn(async move {
        load_table(&engine, &revoked).await;
        loop {
            match changes.recv().await {
                Ok(Installed::Change(entry)) => {
                    observe(&revoked, &entry);
                    last = entry.seq();
                }
                Ok(Installed::Reloaded { .. }) | Err(RecvError::Lagged(_)) => {
                    last = replay_skipped(&engine, &revoked, last).await;
                }
                Err(RecvError::Closed) => return,
            }
        }
    })
}

async fn load_table(engine: &Engine, revoked: &Revoked) {
    if let Err(e) = load(revoked, engine.store().as_ref(), Timestamp::now()).await {
        tracing::error!(error = %e, "loading revoked sessions failed");
    }
}

/// Observes every change after `last` from the log (observing one twice is harmless); the sequence it
/// got to.
async fn replay_skipped(engine: &Engine, revoked: &Revoked, mut last: u64) -> u64 {
    loop {
        match engine.store().changes_after(last, 1000).await {
            Ok(entries) if entries.is_empty() => return last,
            Ok(entries) => {
                for entry in &entries {
                    observe(revoked, entry);
                    last = entry.seq();
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, after = last, "the log no longer reaches back: loading revoked sessions");
                load_table(engine, revoked).await;
                return engine.seq().max(last);
            }
        }
    }
}
