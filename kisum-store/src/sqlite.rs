//! The embedded backend: one SQLite file in WAL mode with `synchronous=FULL`, so a commit that returned
//! survives a crash or power loss. Writers serialize on SQLite's own write lock (`BEGIN IMMEDIATE`),
//! across processes too; readers never wait for them.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use kisum_access::{ChangeRecord, CompanyId, UserId};
use sqlx::SqliteConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use tokio::sync::watch;

use crate::error::StoreError;
use crate::store::{Checkpoint, Credential, LogEntry, SideWrite, Store, WriteTx};

mod q {
    crate::sql::log_queries!(sqlx::SqliteConnection);
    crate::auth::auth_queries!(sqlx::SqliteConnection, sqlx::sqlite::SqliteRow);
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Appends a change only if its sequence follows the head (of the log, or of a newer checkpoint).
const APPEND: &str = "INSERT INTO change_log (seq, at, actor, kind, company, record, change, committed_at) \
     SELECT $1, $2, $3, $4, $5, $6, $7, $8 \
     WHERE $1 = MAX((SELECT COALESCE(MAX(seq), 0) FROM change_log), (SELECT COALESCE(MAX(seq), 0) FROM checkpoint)) + 1 \
     RETURNING seq";

/// SQLite's result code for "file is not a database".
const SQLITE_NOTADB: &str = "26";

/// A store in one SQLite file.
#[derive(Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    commits: watch::Sender<u64>,
}

impl SqliteStore {
    /// Opens (creating if missing) the store in `path`, runs its migrations, and refuses a file that
    /// is not a database, a database of another application, or a newer schema.
    pub async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true);
        let not_a_db = |e: sqlx::Error| match e.as_database_error().and_then(|d| d.code()).as_deref() {
            Some(SQLITE_NOTADB) => StoreError::NotADatabase(path.display().to_string()),
            _ => StoreError::db(e),
        };
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(options).await.map_err(not_a_db)?;
        let mut conn = pool.acquire().await.map_err(not_a_db)?;
        let tables = q::user_tables(
            &mut conn,
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )
        .await?;
        q::check_identity(&mut conn, &tables).await?;
        q::migrate(&MIGRATOR, &mut conn).await?;
        let head = q::head(&mut conn).await?;
        drop(conn);
        Ok(SqliteStore { pool, commits: watch::Sender::new(head) })
    }

    async fn conn(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Sqlite>, StoreError> {
        self.pool.acquire().await.map_err(StoreError::db)
    }
}

crate::auth::auth_store_impl!(SqliteStore, sqlx::Sqlite, q, "BEGIN IMMEDIATE");

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn head(&self) -> Result<u64, StoreError> {
        q::head(&mut *self.conn().await?).await
    }

    async fn latest_checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
        q::latest_checkpoint(&mut *self.conn().await?).await
    }

    async fn changes_after(&self, after: u64, limit: u32) -> Result<Vec<LogEntry>, StoreError> {
        // One read transaction, so the range and its check see one state of the file.
        let mut tx = self.pool.begin().await.map_err(StoreError::db)?;
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
        let tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(StoreError::db)?;
        Ok(Box::new(SqliteWrite { tx }))
    }

    async fn prune(&self, before: u64) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(StoreError::db)?;
        let n = q::prune(&mut tx, before).await?;
        tx.commit().await.map_err(StoreError::db)?;
        Ok(n)
    }

    fn commits(&self) -> watch::Receiver<u64> {
        self.commits.subscribe()
    }

    fn notify_committed(&self, seq: u64) {
        self.commits.send_if_modified(|head| {
            let newer = seq > *head;
            *head = (*head).max(seq);
            newer
        });
    }
}

struct SqliteWrite {
    tx: sqlx::Transaction<'static, sqlx::Sqlite>,
}

impl SqliteWrite {
    fn conn(&mut self) -> &mut SqliteConnection {
        &mut self.tx
    }
}

#[async_trait]
impl WriteTx for SqliteWrite {
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
