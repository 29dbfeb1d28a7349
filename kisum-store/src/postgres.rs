//! The multi-replica backend: PostgreSQL. Writers serialize on a transaction-scoped advisory lock, so
//! sequence numbers have no gaps; every commit sends `NOTIFY kisum_changes` with its sequence, which
//! other processes take as a hint to read the log (the log, not the notification, is the truth).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kisum_access::{ChangeRecord, CompanyId, UserId};
use sqlx::PgConnection;
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use tokio::sync::watch;

use crate::error::StoreError;
use crate::store::{Checkpoint, Credential, LogEntry, SideWrite, Store, WriteTx};

mod q {
    crate::sql::log_queries!(sqlx::PgConnection);
    crate::auth::auth_queries!(sqlx::PgConnection, sqlx::postgres::PgRow);
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The advisory lock every writer takes ("kisum" in ASCII).
const WRITE_LOCK: i64 = 0x6b_6973_756d;
/// The notification channel.
const CHANNEL: &str = "kisum_changes";
/// Appends a change only if its sequence follows the head (of the log, or of a newer checkpoint), and
/// notifies listeners at commit — one round trip.
const APPEND: &str = "WITH appended AS ( \
       INSERT INTO change_log (seq, at, actor, kind, company, record, change, committed_at) \
       SELECT $1, $2, $3, $4, $5, $6, $7, $8 \
       WHERE $1 = GREATEST((SELECT COALESCE(MAX(seq), 0) FROM change_log), (SELECT COALESCE(MAX(seq), 0) FROM checkpoint)) + 1 \
       RETURNING seq) \
     SELECT pg_notify('kisum_changes', seq::text) FROM appended";

/// A store in a PostgreSQL database, shared by any number of processes.
#[derive(Debug)]
pub struct PgStore {
    pool: PgPool,
    commits: Arc<watch::Sender<u64>>,
    listener: tokio::task::JoinHandle<()>,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl PgStore {
    /// Connects to `url`, runs the migrations, refuses a database of another application or a newer
    /// schema, and starts listening for other processes' commits.
    pub async fn open(url: &str) -> Result<PgStore, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(|e| StoreError::Database(format!("cannot reach PostgreSQL: {e}")))?;
        {
            // Migrations take a session-level lock that a failure may leave held: use a connection
            // that is closed afterwards.
            let mut conn = pool.acquire().await.map_err(StoreError::db)?;
            conn.close_on_drop();
            let tables = q::user_tables(
                &mut conn,
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = current_schema() ORDER BY 1",
            )
            .await?;
            q::check_identity(&mut conn, &tables).await?;
            q::migrate(&MIGRATOR, &mut conn).await?;
        }
        let head = q::head(&mut *pool.acquire().await.map_err(StoreError::db)?).await?;
        let commits = Arc::new(watch::Sender::new(head));
        let listener = tokio::spawn(listen(pool.clone(), commits.clone()));
        Ok(PgStore { pool, commits, listener })
    }

    async fn conn(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Postgres>, StoreError> {
        self.pool.acquire().await.map_err(StoreError::db)
    }
}

fn raise(commits: &watch::Sender<u64>, seq: u64) {
    commits.send_if_modified(|head| {
        let newer = seq > *head;
        *head = (*head).max(seq);
        newer
    });
}

/// Forwards `NOTIFY kisum_changes` to the watch channel, reconnecting after failures.
async fn listen(pool: PgPool, commits: Arc<watch::Sender<u64>>) {
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "change notifications unavailable; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(CHANNEL).await {
            tracing::warn!(error = %e, "LISTEN failed; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        loop {
            match listener.recv().await {
                Ok(n) => {
                    if let Ok(seq) = n.payload().parse::<u64>() {
                        raise(&commits, seq);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "change notifications interrupted; reconnecting");
                    break;
                }
            }
        }
    }
}

crate::auth::auth_store_impl!(PgStore, sqlx::Postgres, q, "BEGIN ISOLATION LEVEL READ COMMITTED");

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn head(&self) -> Result<u64, StoreError> {
        q::head(&mut *self.conn().await?).await
    }

    async fn latest_checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
        q::latest_checkpoint(&mut *self.conn().await?).await
    }

    async fn changes_after(&self, after: u64, limit: u32) -> Result<Vec<LogEntry>, StoreError> {
        // REPEATABLE READ: the range and its check see one snapshot of the log.
        let mut tx =
            self.pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await.map_err(StoreError::db)?;
        q::changes_after(&mut tx, after, limit).await
    }

    async fn audit(
        &self,
        company: Option<&CompanyId>,
        after: u64,
        limit: u32,
    ) -> Result<Vec<ChangeRecord>, StoreError> {
        q::audit(&mut *self.conn().await?, company, after, limit).await
    }

    async fn credential(&self, user: &UserId) -> Result<Option<Credential>, StoreError> {
        q::credential(&mut *self.conn().await?, user).await
    }

    async fn begin_write(&self) -> Result<Box<dyn WriteTx>, StoreError> {
        // READ COMMITTED whatever the server's default: each statement after the lock must see every
        // change committed before the lock was granted.
        let mut tx = self.pool.begin_with("BEGIN ISOLATION LEVEL READ COMMITTED").await.map_err(StoreError::db)?;
        lock(&mut tx).await?;
        Ok(Box::new(PgWrite { tx }))
    }

    async fn prune(&self, before: u64) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN ISOLATION LEVEL READ COMMITTED").await.map_err(StoreError::db)?;
        lock(&mut tx).await?;
        let n = q::prune(&mut tx, before).await?;
        tx.commit().await.map_err(StoreError::db)?;
        Ok(n)
    }

    fn commits(&self) -> watch::Receiver<u64> {
        self.commits.subscribe()
    }

    fn notify_committed(&self, seq: u64) {
        raise(&self.commits, seq);
    }
}

async fn lock(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(WRITE_LOCK).execute(conn).await.map_err(StoreError::db)?;
    Ok(())
}

struct PgWrite {
    tx: sqlx::Transaction<'static, sqlx::Postgres>,
}

impl PgWrite {
    fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }
}

#[async_trait]
impl WriteTx for PgWrite {
    async fn head(&mut self) -> Result<u64, StoreError> {
        q::head(self.conn()).await
    }

    async fn changes_after(&mut self, after: u64) -> Result<Vec<LogEntry>, StoreError> {
        q::changes_after(self.conn(), after, u32::MAX).await
    }

    async fn append(&mut self, entry: &LogEntry) -> Result<bool, StoreError> {
        q::append(self.conn(), entry, APPEND).await
    }

    async fn side_write(&mut self, write: &SideWrite) -> Result<(), StoreError> {
        q::side_write(self.conn(), write).await
    }

    async fn seed(&mut self, world: &str) -> Result<bool, StoreError> {
        q::seed(self.conn(), world).await
    }

    async fn put_checkpoint(&mut self, seq: u64, world: &str) -> Result<(), StoreError> {
        q::put_checkpoint(self.conn(), seq, world).await
    }

    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        self.tx.commit().await.map_err(StoreError::db)
    }
}
