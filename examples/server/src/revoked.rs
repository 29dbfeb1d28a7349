//! Sessions revoked, users disabled and passwords changed, as a server learns them from the change log
//! (`revoke_session`, `disable_user`, `set_password`): their tokens are refused until the last of them
//! has expired. Auth and Core keep one
//! each, inside their [`Tokens`](crate::Tokens), so every route refuses them.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use kisum_access::{Change, UserId};
use kisum_store::{Engine, Installed, LogEntry, Store, StoreError};
use kisum_token::{MAX_LEEWAY_SECONDS, MAX_LIFETIME_SECONDS};
use tokio::sync::broadcast::error::RecvError;

/// How long after a revocation its session's tokens can still be presented: the longest token lifetime
/// plus the largest leeway.
pub const REFUSE_FOR: i64 = MAX_LIFETIME_SECONDS + MAX_LEEWAY_SECONDS as i64;

/// Revoked sessions and users, each until an instant (Unix seconds).
#[derive(Debug, Default)]
pub struct Revoked {
    sessions: RwLock<HashMap<String, i64>>,
    /// By user: tokens issued at or before the first instant are refused until the second.
    users: RwLock<HashMap<UserId, (i64, i64)>>,
}

impl Revoked {
    /// Records that session `sid` is revoked; its tokens are refused until `until`.
    pub fn session(&self, sid: &str, until: i64) {
        if let Ok(mut map) = self.sessions.write() {
            map.insert(sid.to_owned(), until);
        }
    }

    /// Records that every session of `user` ended at `through` (its password changed; `i64::MAX`: it was
    /// disabled): its tokens issued at or before `through` are refused until `until`. Token times are
    /// whole seconds, so a token issued in the very second of the change is refused too.
    pub fn user(&self, user: &UserId, through: i64, until: i64) {
        if let Ok(mut map) = self.users.write() {
            let entry = map.entry(user.clone()).or_insert((through, until));
            *entry = (entry.0.max(through), entry.1.max(until));
        }
    }

    /// Whether a token of `sid`, issued to `user` at `iat`, is refused at `now`. A poisoned lock refuses.
    pub fn refuses(&self, sid: &str, user: &UserId, iat: i64, now: i64) -> bool {
        let session = self.sessions.read().map(|m| m.get(sid).is_some_and(|&until| now < until)).unwrap_or(true);
        let user = self
            .users
            .read()
            .map(|m| m.get(user).is_some_and(|&(through, until)| iat <= through && now < until))
            .unwrap_or(true);
        session || user
    }

    /// Forgets what no token can outlive any more.
    pub fn forget_before(&self, now: i64) {
        if let Ok(mut map) = self.sessions.write() {
            map.retain(|_, until| now < *until);
        }
        if let Ok(mut map) = self.users.write() {
            map.retain(|_, (_, until)| now < *until);
        }
    }

    /// Learns from one committed change.
    pub fn observe(&self, entry: &LogEntry) {
        match &entry.change {
            Change::RevokeSession { session, until, .. } => self.session(session, until.unix_seconds()),
            Change::DisableUser { user } => {
                self.user(user, i64::MAX, entry.record.at.unix_seconds().saturating_add(REFUSE_FOR));
            }
            Change::SetPassword { user, end_sessions: true } => {
                let at = entry.record.at.unix_seconds();
                self.user(user, at, at.saturating_add(REFUSE_FOR));
            }
            _ => {}
        }
    }

    /// Reads the sessions revoked recently enough (at `now`) that their tokens may still be presented.
    pub async fn load(&self, store: &dyn Store, now: i64) -> Result<(), StoreError> {
        for s in store.revoked_sessions(now.saturating_sub(REFUSE_FOR)).await? {
            self.session(&s.sid, s.revoked_at.unwrap_or(now).saturating_add(REFUSE_FOR));
        }
        Ok(())
    }
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
                    revoked.observe(&entry);
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
    let now = kisum_entitlements::Timestamp::now().unix_seconds();
    if let Err(e) = revoked.load(engine.store().as_ref(), now).await {
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
                    revoked.observe(entry);
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
