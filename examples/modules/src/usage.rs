//! Where the ai module counts `ai.monthly_requests`: in memory (a module on its own, the tests), or in a
//! database (SQLite or PostgreSQL, [`ModuleDb`]) where the count survives a restart and replicas share
//! it. Counting is one conditional upsert — the row of (company, month) gains one only while it is
//! under the limit — never a read and then a write, so concurrent replicas never count past the limit.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use kisum_client::access::CompanyId;
use kisum_client::errors::ErrorCode;
use kisum_client::server::ApiError;
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{PgPool, SqlitePool};

/// The modules' own tables in a database they may share with the platform's store (each name starts with
/// `kisum_module_`, so nothing clashes with the store's): the ai module's usage counter; every module's
/// records ([`crate::records`]: a JSON document per record, keyed by kind and id, numbered per company
/// for pages); and the last number given per kind and company, whose row every create takes first.
const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS kisum_module_ai_usage (
        company TEXT NOT NULL,
        month TEXT NOT NULL,
        used BIGINT NOT NULL,
        PRIMARY KEY (company, month)
    )",
    "CREATE TABLE IF NOT EXISTS kisum_module_records (
        kind TEXT NOT NULL,
        id TEXT NOT NULL,
        company TEXT NOT NULL,
        parent TEXT,
        n BIGINT NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (kind, id)
    )",
    "CREATE INDEX IF NOT EXISTS kisum_module_records_by_company ON kisum_module_records (kind, company, n)",
    "CREATE TABLE IF NOT EXISTS kisum_module_ids (
        kind TEXT NOT NULL,
        company TEXT NOT NULL,
        last BIGINT NOT NULL,
        PRIMARY KEY (kind, company)
    )",
];

/// The advisory lock the modules' schema is created under on PostgreSQL (`kisummod` in ASCII).
const SCHEMA_LOCK: i64 = 0x6b69_7375_6d6d_6f64;

/// Counts one request of company `$1` in month `$2` while the count is under `$3`: the new count, or no
/// row at the limit. One statement for both databases (SQLite reads `$N` as the N-th parameter too).
const COUNT: &str = "INSERT INTO kisum_module_ai_usage (company, month, used) VALUES ($1, $2, 1)
    ON CONFLICT (company, month) DO UPDATE SET used = kisum_module_ai_usage.used + 1
    WHERE kisum_module_ai_usage.used < $3
    RETURNING used";

/// A database the modules keep their state in: SQLite (`sqlite://FILE`) or PostgreSQL (`postgres://…`).
/// Its tables are created when it is connected.
#[derive(Debug, Clone)]
pub struct ModuleDb(pub(crate) Pool);

#[derive(Debug, Clone)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl ModuleDb {
    /// Connects to `url` (the store's `--db`) and creates the modules' tables where missing. The error
    /// names the setting, never the URL (it may hold a password).
    pub async fn connect(url: &str) -> Result<ModuleDb, String> {
        let failed = |e: sqlx::Error| format!("the modules' database (--db): {e}");
        let pool = if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
            let options = SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(std::time::Duration::from_secs(30));
            Pool::Sqlite(SqlitePoolOptions::new().max_connections(4).connect_with(options).await.map_err(failed)?)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Pool::Postgres(PgPoolOptions::new().max_connections(8).connect(url).await.map_err(failed)?)
        } else {
            return Err("the modules' database (--db): expected sqlite://FILE or postgres://…".to_owned());
        };
        match &pool {
            Pool::Sqlite(p) => sqlite::create_schema(p).await,
            Pool::Postgres(p) => postgres::create_schema(p).await,
        }
        .map_err(failed)?;
        Ok(ModuleDb(pool))
    }
}

/// The counter of requests per company and month.
#[derive(Debug)]
pub(crate) enum Usage {
    /// In this process only: a restart starts from zero. Per company, its current month and count.
    Memory(Mutex<HashMap<CompanyId, (String, u64)>>),
    /// In the modules' database.
    Stored(ModuleDb),
}

impl Usage {
    /// Counts one request of `company` in `month` unless the month's count has reached `limit` (`None`:
    /// unlimited): the count with this one, or `None` at the limit (nothing counted).
    pub(crate) async fn count(
        &self,
        company: &CompanyId,
        month: &str,
        limit: Option<u64>,
    ) -> Result<Option<u64>, ApiError> {
        if limit == Some(0) {
            return Ok(None);
        }
        match self {
            Usage::Memory(counts) => {
                let mut counts = counts.lock().unwrap_or_else(PoisonError::into_inner);
                let entry = counts.entry(company.clone()).or_insert_with(|| (month.to_owned(), 0));
                // A new month starts from zero.
                if entry.0 != month {
                    *entry = (month.to_owned(), 0);
                }
                if limit.is_some_and(|limit| entry.1 >= limit) {
                    return Ok(None);
                }
                entry.1 += 1;
                Ok(Some(entry.1))
            }
            Usage::Stored(db) => {
                let limit = limit.map_or(i64::MAX, |l| i64::try_from(l).unwrap_or(i64::MAX));
                let counted = match &db.0 {
                    Pool::Sqlite(pool) => sqlite::count(pool, company.as_str(), month, limit).await,
                    Pool::Postgres(pool) => postgres::count(pool, company.as_str(), month, limit).await,
                }
                .map_err(unavailable)?;
                Ok(counted.map(|n| u64::try_from(n).unwrap_or(0)))
            }
        }
    }
}

/// The database could not count: the request is refused (a copilot call is never free by accident).
fn unavailable(e: sqlx::Error) -> ApiError {
    tracing::error!(error = %e, "the usage counter failed");
    ApiError::new(ErrorCode::UpstreamUnavailable, "the usage counter is unavailable; retry")
}

/// The statements of this file, written once for each backend's pool type. Schema creation is
/// serialized: `$begin` starts its transaction and `$lock`, where given, takes a lock first.
macro_rules! usage_queries {
    ($pool:ty, begin: $begin:expr, lock: $lock:expr) => {
        /// Creates the modules' tables where missing, in one transaction that no other module's creation
        /// runs beside (modules starting together on one new database).
        pub(super) async fn create_schema(pool: &$pool) -> Result<(), sqlx::Error> {
            let mut tx = pool.begin_with($begin).await?;
            let lock: Option<&'static str> = $lock;
            if let Some(lock) = lock {
                sqlx::query(lock).bind(super::SCHEMA_LOCK).execute(&mut *tx).await?;
            }
            for statement in super::SCHEMA {
                sqlx::query(*statement).execute(&mut *tx).await?;
            }
            tx.commit().await
        }

        /// [`super::COUNT`]: the new count, or no row at the limit.
        pub(super) async fn count(
            pool: &$pool,
            company: &str,
            month: &str,
            limit: i64,
        ) -> Result<Option<i64>, sqlx::Error> {
            sqlx::query_scalar(super::COUNT).bind(company).bind(month).bind(limit).fetch_optional(pool).await
        }
    };
}

mod sqlite {
    // The write lock from the start: a deferred transaction that read the schema first could not wait
    // for another writer (SQLITE_BUSY at once, whatever the busy timeout).
    usage_queries!(sqlx::SqlitePool, begin: "BEGIN IMMEDIATE", lock: None);
}

mod postgres {
    // Concurrent `CREATE … IF NOT EXISTS` can fail on PostgreSQL's catalog: an advisory lock first.
    usage_queries!(sqlx::PgPool, begin: "BEGIN", lock: Some("SELECT pg_advisory_xact_lock($1)"));
}
