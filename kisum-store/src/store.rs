//! The persistence interface: one trait, two backends ([`SqliteStore`](crate::SqliteStore) and
//! [`PgStore`](crate::PgStore)), and what they keep — the change log and checkpoints.

use std::sync::Arc;

use async_trait::async_trait;
use kisum_access::{Change, ChangeRecord, CompanyId, UserId};
use kisum_entitlements::Timestamp;
use tokio::sync::watch;

use crate::auth::{AuthStore, ServiceClient, StoredKey};
use crate::error::StoreError;

/// One committed change as the log keeps it: the record (who, when, whom it touched) and the change
/// itself, which replay applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// What the change did; `record.seq` is its sequence number.
    pub record: ChangeRecord,
    /// The change, exactly as it was applied.
    pub change: Change,
}

impl LogEntry {
    /// The entry's sequence number.
    pub fn seq(&self) -> u64 {
        self.record.seq
    }
}

/// A write that must commit together with a change, beside the model: sign-in credentials, which the
/// model does not hold and the log never sees.
#[derive(Clone, PartialEq, Eq)]
pub enum SideWrite {
    /// Sets a user's password hash (PHC string), creating the credential if needed.
    SetPassword {
        /// The user.
        user: UserId,
        /// The hash; never the password.
        hash: String,
    },
    /// Marks a user disabled from `at` on.
    DisableUser {
        /// The user.
        user: UserId,
        /// When.
        at: Timestamp,
    },
    /// Revokes a session (Unix seconds).
    RevokeSession {
        /// The session id.
        sid: String,
        /// When.
        at: i64,
    },
    /// Revokes every live session of a user (Unix seconds).
    RevokeUserSessions {
        /// The user.
        user: UserId,
        /// When.
        at: i64,
    },
    /// Stores a signing key, or updates the schedule of a stored one.
    PutSigningKey(StoredKey),
    /// Deletes a signing key.
    RemoveSigningKey {
        /// The key id.
        kid: String,
    },
    /// Registers or replaces a service client.
    PutServiceClient(ServiceClient),
    /// Registers a new service client; one with the same id already stored fails the write (nothing is
    /// replaced).
    AddServiceClient(ServiceClient),
    /// Gives a platform service client a new secret, if it is still the one whose secret was `expected`
    /// (the one the caller was judged against); otherwise the write fails — a rotation never brings a
    /// deleted client back, nor hands out the secret of one registered again meanwhile.
    RotateServiceClientSecret {
        /// The client id.
        client_id: String,
        /// The stored form of the secret it had when checked.
        expected: String,
        /// The new secret's stored form.
        secret_hash: String,
    },
    /// Deletes a platform service client, if it is still the one whose secret was `expected`; otherwise
    /// the write fails (a client registered again meanwhile is not the one the caller was judged on).
    RemovePlatformClient {
        /// The client id.
        client_id: String,
        /// The stored form of the secret it had when checked.
        expected: String,
    },
    /// Deletes a service client.
    RemoveServiceClient {
        /// The client id.
        client_id: String,
    },
    /// Deletes every client of a company's agents (`agent` given: of that agent only), whatever their
    /// client ids: an agent unregistered, its secret rotated, or its company removed.
    RemoveAgentClients {
        /// The company.
        company: String,
        /// The agent; `None` for all of the company's.
        agent: Option<String>,
    },
}

impl std::fmt::Debug for SideWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SideWrite::SetPassword { user, .. } => write!(f, "SetPassword({user}, [redacted])"),
            SideWrite::DisableUser { user, at } => write!(f, "DisableUser({user}, {at})"),
            SideWrite::RevokeSession { sid, at } => write!(f, "RevokeSession({sid}, {at})"),
            SideWrite::RevokeUserSessions { user, at } => write!(f, "RevokeUserSessions({user}, {at})"),
            SideWrite::PutSigningKey(key) => write!(f, "PutSigningKey({key:?})"),
            SideWrite::RemoveSigningKey { kid } => write!(f, "RemoveSigningKey({kid})"),
            SideWrite::PutServiceClient(client) => write!(f, "PutServiceClient({client:?})"),
            SideWrite::AddServiceClient(client) => write!(f, "AddServiceClient({client:?})"),
            SideWrite::RotateServiceClientSecret { client_id, .. } => {
                write!(f, "RotateServiceClientSecret({client_id}, [redacted])")
            }
            SideWrite::RemovePlatformClient { client_id, .. } => write!(f, "RemovePlatformClient({client_id})"),
            SideWrite::RemoveServiceClient { client_id } => write!(f, "RemoveServiceClient({client_id})"),
            SideWrite::RemoveAgentClients { company, agent } => write!(f, "RemoveAgentClients({company}, {agent:?})"),
        }
    }
}

/// A user's sign-in credential.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// The user.
    pub user: UserId,
    /// The argon2id hash in PHC format (empty when no password was ever set).
    pub password_hash: String,
    /// Since when the user is disabled, if it is.
    pub disabled_at: Option<Timestamp>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("user", &self.user)
            .field("password_hash", &"[redacted]")
            .field("disabled_at", &self.disabled_at)
            .finish()
    }
}

/// A checkpoint: the whole world (a world file) as it was after change `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The sequence of the last change it includes.
    pub seq: u64,
    /// The world file, as JSON.
    pub world: String,
}

/// A durable change log with checkpoints. Implemented for SQLite and PostgreSQL; open one with
/// [`connect`](crate::connect).
///
/// The log holds every committed change in sequence order without gaps, from the oldest one kept
/// (see [`prune`](Store::prune)) to the head. Writers serialize through [`begin_write`](Store::begin_write),
/// across processes. Auth's state beside the model is the supertrait [`AuthStore`].
#[async_trait]
pub trait Store: AuthStore + std::fmt::Debug + Send + Sync + 'static {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// The sequence of the last committed change (or of the newest checkpoint, if later); 0 when empty.
    async fn head(&self) -> Result<u64, StoreError>;

    /// The newest checkpoint, if any.
    async fn latest_checkpoint(&self) -> Result<Option<Checkpoint>, StoreError>;

    /// At most `limit` changes after sequence `after`, in order. [`StoreError::ResyncRequired`] if some
    /// of them are no longer kept.
    async fn changes_after(&self, after: u64, limit: u32) -> Result<Vec<LogEntry>, StoreError>;

    /// At most `limit` change records after sequence `after`, of one company or of all: the audit log.
    async fn audit(&self, company: Option<&CompanyId>, after: u64, limit: u32)
    -> Result<Vec<ChangeRecord>, StoreError>;

    /// A user's credential, if one was ever stored.
    async fn credential(&self, user: &UserId) -> Result<Option<Credential>, StoreError>;

    /// Starts an exclusive write: until it commits or is dropped (which rolls it back), no other writer,
    /// in this process or another, can append.
    async fn begin_write(&self) -> Result<Box<dyn WriteTx>, StoreError>;

    /// Deletes changes with a sequence below `before` that the newest checkpoint already includes;
    /// returns how many went. Cursors older than what is left get [`StoreError::ResyncRequired`].
    async fn prune(&self, before: u64) -> Result<u64, StoreError>;

    /// Wake-ups: the newest committed sequence this store has heard of (its own commits, and on
    /// PostgreSQL other processes' through `LISTEN/NOTIFY`). A hint only: the log is the truth, so
    /// followers also poll.
    fn commits(&self) -> watch::Receiver<u64>;

    /// Tells [`commits`](Store::commits) listeners that `seq` was committed by this process.
    fn notify_committed(&self, seq: u64);
}

/// An exclusive write in progress. Dropping it without [`commit`](WriteTx::commit) rolls it back.
#[async_trait]
pub trait WriteTx: Send {
    /// The head, as seen under the lock.
    async fn head(&mut self) -> Result<u64, StoreError>;

    /// Every change after `after`, in order (to catch up before validating a write).
    async fn changes_after(&mut self, after: u64) -> Result<Vec<LogEntry>, StoreError>;

    /// Appends one change if its sequence is the head's successor; `false` (and nothing written) if it
    /// is not — another process committed first, and the caller must catch up and try again.
    async fn append(&mut self, entry: &LogEntry) -> Result<bool, StoreError>;

    /// Writes beside the change, in the same transaction.
    async fn side_write(&mut self, write: &SideWrite) -> Result<(), StoreError>;

    /// Stores `world` as checkpoint 0 unless a checkpoint 0 exists; `false` if it did (another process
    /// seeded the store first).
    async fn seed(&mut self, world: &str) -> Result<bool, StoreError>;

    /// Stores a checkpoint of the world after change `seq`.
    async fn put_checkpoint(&mut self, seq: u64, world: &str) -> Result<(), StoreError>;

    /// Makes everything written durable, or nothing.
    async fn commit(self: Box<Self>) -> Result<(), StoreError>;
}

/// Opens the store at `url`: `sqlite://PATH` (created if missing) or `postgres://…`. Runs the
/// migrations, and refuses a database that is not a Kisum store or was written by a newer version.
pub async fn connect(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
        Ok(Arc::new(crate::SqliteStore::open(std::path::Path::new(path)).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(crate::PgStore::open(url).await?))
    } else {
        Err(StoreError::UnsupportedUrl(clip(url)))
    }
}

/// A store URL without its password (`user:password@`, and a `password=` or `sslpassword=` query
/// parameter), for logs and start-up lines.
pub fn redact(url: &str) -> String {
    let url = match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => match url.get(scheme + 3..at).and_then(|c| c.split_once(':')) {
            Some((user, _)) => format!(
                "{}{user}:[redacted]{}",
                url.get(..scheme + 3).unwrap_or_default(),
                url.get(at..).unwrap_or_default()
            ),
            None => url.to_owned(),
        },
        _ => url.to_owned(),
    };
    match url.split_once('?') {
        Some((base, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _))
                        if key.eq_ignore_ascii_case("password") || key.eq_ignore_ascii_case("sslpassword") =>
                    {
                        format!("{key}=[redacted]")
                    }
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{base}?{}", query.join("&"))
        }
        None => url,
    }
}

/// Cuts user input to a length fit for a message.
pub(crate) fn clip(text: &str) -> String {
    text.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(super::redact("postgres://kisum:s3cret@db:5432/k"), "postgres://kisum:[redacted]@db:5432/k");
        assert_eq!(super::redact("postgres://kisum@db/k"), "postgres://kisum@db/k");
        assert_eq!(super::redact("sqlite://./kisum-data/kisum.db"), "sqlite://./kisum-data/kisum.db");
        assert_eq!(
            super::redact("postgres://db/k?sslmode=require&password=s3cret&SSLPassword=x"),
            "postgres://db/k?sslmode=require&password=[redacted]&SSLPassword=[redacted]"
        );
    }
}
