//! Where a module keeps its records: the [`Repository`] trait the handlers and guards use, and its two
//! implementations — in this process's memory, or in the modules' database (SQLite or PostgreSQL, the
//! store's database in the one command), where records survive a restart and replicas share them
//! ([`open`] picks).
//!
//! Every record is owned by one company, under an id `{company}-{n}` unique across companies (`n` counts
//! from 1 per company and kind), and may name a parent record (a booking its artist). Every read and
//! write names the company it is for, so none can reach another company's records (only [`Repository::owner`]
//! looks a record up by id alone, to say which company owns it); lists come in
//! pages, oldest first, resumed from an opaque cursor. Nothing here knows about access: the guards decide
//! before a handler calls a repository.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use async_trait::async_trait;
use kisum_client::access::CompanyId;
use kisum_client::errors::ErrorCode;
use kisum_client::server::ApiError;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::usage::{ModuleDb, Pool};

/// A record a module keeps: a JSON document in the database.
pub(crate) trait Record: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    /// The record this one belongs to (a booking's artist), which lists may be narrowed to.
    fn parent(&self) -> Option<&str> {
        None
    }
}

/// Refuses a create given every record the company already has of the kind (a limit on them).
pub(crate) type Check<T> = Box<dyn FnOnce(&[T]) -> Result<(), ApiError> + Send>;
/// Makes the new record from its fresh id.
pub(crate) type Make<T> = Box<dyn FnOnce(String) -> T + Send>;
/// Changes a record in place, or refuses (nothing is written then).
pub(crate) type Change<T> = Box<dyn FnOnce(&mut T) -> Result<(), ApiError> + Send>;
/// A repository as the handlers hold it.
pub(crate) type Repo<T> = Arc<dyn Repository<T>>;

/// One page of a list: the records, and the cursor of the next page when there is one.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Page<T> {
    pub(crate) items: Vec<T>,
    pub(crate) next: Option<String>,
}

/// The most records a page holds, and how many when the caller does not say.
pub(crate) const MAX_PAGE: u32 = 200;
pub(crate) const DEFAULT_PAGE: u32 = 50;

/// `?after=CURSOR&limit=N` of a list route.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PageQuery {
    after: Option<String>,
    limit: Option<u32>,
}

/// Where a page starts (after record number `after` of the company) and how long it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    after: u64,
    limit: u32,
}

impl Window {
    /// The first page, of the default length.
    pub(crate) const FIRST: Window = Window { after: 0, limit: DEFAULT_PAGE };

    /// This window holding `limit` records.
    pub(crate) const fn with_limit(self, limit: u32) -> Window {
        Window { limit, ..self }
    }
}

impl PageQuery {
    /// The window asked for: `422` naming the parameter for a cursor this module did not give or a limit
    /// outside 1 to [`MAX_PAGE`].
    pub(crate) fn window(&self) -> Result<Window, ApiError> {
        let after = match self.after.as_deref() {
            None => 0,
            Some(cursor) => cursor
                .parse::<u64>()
                .map_err(|_| ApiError::invalid("?after", "is not a cursor this list gave (its `next`)"))?,
        };
        let limit = self.limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(ApiError::invalid("?limit", format!("must be from 1 to {MAX_PAGE}")));
        }
        Ok(Window { after, limit })
    }
}

/// The records of one kind, each owned by one company.
#[async_trait]
pub(crate) trait Repository<T: Record>: Send + Sync {
    /// The company owning record `id`, `None` when there is none: what the guards check a path's record
    /// against.
    async fn owner(&self, id: &str) -> Result<Option<CompanyId>, ApiError>;

    /// Record `id` of `company`.
    async fn get(&self, company: &CompanyId, id: &str) -> Result<Option<T>, ApiError>;

    /// A page of `company`'s records (those of `parent` only, when given), oldest first.
    async fn page(&self, company: &CompanyId, parent: Option<&str>, window: Window) -> Result<Page<T>, ApiError>;

    /// Creates a record of `company` made by `make` from a fresh id, unless `check` refuses given the
    /// company's records. Creates of one company are serialized (across replicas too), so no concurrent
    /// create slips past a check.
    async fn create(&self, company: &CompanyId, check: Option<Check<T>>, make: Make<T>) -> Result<T, ApiError>;

    /// Changes record `id` of `company` with `change`, serialized with every other write of it: the
    /// record as changed, `None` when there is no such record.
    async fn update(&self, company: &CompanyId, id: &str, change: Change<T>) -> Result<Option<T>, ApiError>;

    /// Removes record `id` of `company`: whether there was one.
    async fn remove(&self, company: &CompanyId, id: &str) -> Result<bool, ApiError>;
}

/// Opens the records of `kind` (`finance.invoice`), in `db` when given and in memory otherwise. Every
/// company of `companies` that has never had a record of the kind gets `seed(company, "{company}-1")`;
/// a record deleted since is not made again.
pub(crate) async fn open<T: Record>(
    db: Option<&ModuleDb>,
    kind: &'static str,
    companies: &[CompanyId],
    seed: impl Fn(&CompanyId, String) -> T,
) -> Result<Repo<T>, String> {
    let seeds = companies.iter().map(|c| (c.clone(), seed(c, format!("{c}-1")))).collect();
    open_seeded(db, kind, seeds).await
}

/// Opens the records of `kind` that nobody seeds (users make them all).
pub(crate) async fn open_unseeded<T: Record>(db: Option<&ModuleDb>, kind: &'static str) -> Result<Repo<T>, String> {
    open_seeded(db, kind, Vec::new()).await
}

/// `seeds`: each company's first record, whose id is `{company}-1`.
async fn open_seeded<T: Record>(
    db: Option<&ModuleDb>,
    kind: &'static str,
    seeds: Vec<(CompanyId, T)>,
) -> Result<Repo<T>, String> {
    let Some(db) = db else {
        let mut inner = Inner { by_id: HashMap::new(), next: HashMap::new() };
        for (company, value) in seeds {
            let (n, id) = inner.fresh(&company);
            inner.by_id.insert(id, Entry { company, n, value });
        }
        return Ok(Arc::new(Memory { inner: RwLock::new(inner) }));
    };
    let failed = |e: ApiError| format!("the {kind} records cannot be seeded: {}", e.problem().detail);
    for (company, value) in seeds {
        let id = format!("{company}-1");
        let body = encode(&value).map_err(failed)?;
        let parent = value.parent().map(str::to_owned);
        match &db.0 {
            Pool::Sqlite(pool) => sqlite::seed(pool, kind, &company, &id, parent, &body).await,
            Pool::Postgres(pool) => postgres::seed(pool, kind, &company, &id, parent, &body).await,
        }
        .map_err(failed)?;
    }
    Ok(Arc::new(Stored { db: db.clone(), kind }))
}

struct Memory<T> {
    inner: RwLock<Inner<T>>,
}

struct Inner<T> {
    by_id: HashMap<String, Entry<T>>,
    /// The last number given per company.
    next: HashMap<CompanyId, u64>,
}

struct Entry<T> {
    company: CompanyId,
    n: u64,
    value: T,
}

impl<T> Inner<T> {
    /// The next number of `company` and its id.
    fn fresh(&mut self, company: &CompanyId) -> (u64, String) {
        let n = self.next.entry(company.clone()).or_insert(0);
        *n += 1;
        (*n, format!("{company}-{n}"))
    }

    fn mine<'a>(&'a self, company: &'a CompanyId) -> impl Iterator<Item = &'a Entry<T>> + 'a {
        self.by_id.values().filter(move |e| e.company == *company)
    }
}

impl<T> Memory<T> {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner<T>> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner<T>> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl<T: Record> Repository<T> for Memory<T> {
    async fn owner(&self, id: &str) -> Result<Option<CompanyId>, ApiError> {
        Ok(self.read().by_id.get(id).map(|e| e.company.clone()))
    }

    async fn get(&self, company: &CompanyId, id: &str) -> Result<Option<T>, ApiError> {
        Ok(self.read().by_id.get(id).filter(|e| e.company == *company).map(|e| e.value.clone()))
    }

    async fn page(&self, company: &CompanyId, parent: Option<&str>, window: Window) -> Result<Page<T>, ApiError> {
        let inner = self.read();
        let mut mine: Vec<&Entry<T>> = inner
            .mine(company)
            .filter(|e| e.n > window.after && (parent.is_none() || e.value.parent() == parent))
            .collect();
        mine.sort_by_key(|e| e.n);
        let rows = mine.into_iter().take(window.limit as usize + 1).map(|e| (e.n, e.value.clone())).collect();
        Ok(paged(rows, window))
    }

    async fn create(&self, company: &CompanyId, check: Option<Check<T>>, make: Make<T>) -> Result<T, ApiError> {
        let mut inner = self.write();
        if let Some(check) = check {
            let mine: Vec<T> = inner.mine(company).map(|e| e.value.clone()).collect();
            check(&mine)?;
        }
        let (n, id) = inner.fresh(company);
        let value = make(id.clone());
        inner.by_id.insert(id, Entry { company: company.clone(), n, value: value.clone() });
        Ok(value)
    }

    async fn update(&self, company: &CompanyId, id: &str, change: Change<T>) -> Result<Option<T>, ApiError> {
        let mut inner = self.write();
        let Some(entry) = inner.by_id.get_mut(id).filter(|e| e.company == *company) else { return Ok(None) };
        // Changed on a copy, so that a refusal leaves the record as it was.
        let mut value = entry.value.clone();
        change(&mut value)?;
        entry.value = value.clone();
        Ok(Some(value))
    }

    async fn remove(&self, company: &CompanyId, id: &str) -> Result<bool, ApiError> {
        let mut inner = self.write();
        match inner.by_id.get(id) {
            Some(e) if e.company == *company => Ok(inner.by_id.remove(id).is_some()),
            _ => Ok(false),
        }
    }
}

/// `limit + 1` rows at most, numbered: the page and, when the extra row came, the cursor past the last.
fn paged<T>(mut rows: Vec<(u64, T)>, window: Window) -> Page<T> {
    let more = rows.len() > window.limit as usize;
    rows.truncate(window.limit as usize);
    let next = if more { rows.last().map(|(n, _)| n.to_string()) } else { None };
    Page { items: rows.into_iter().map(|(_, value)| value).collect(), next }
}

struct Stored {
    db: ModuleDb,
    kind: &'static str,
}

/// Runs one of the query functions on whichever database the repository is in.
macro_rules! on_db {
    ($self:ident, $f:ident($($arg:expr),*)) => {
        match &$self.db.0 {
            Pool::Sqlite(pool) => sqlite::$f(pool, $self.kind, $($arg),*).await,
            Pool::Postgres(pool) => postgres::$f(pool, $self.kind, $($arg),*).await,
        }
    };
}

#[async_trait]
impl<T: Record> Repository<T> for Stored {
    async fn owner(&self, id: &str) -> Result<Option<CompanyId>, ApiError> {
        let owner = on_db!(self, owner(id))?;
        owner.map(|c| c.parse().map_err(|_| corrupt(self.kind, id, "its company is not an id"))).transpose()
    }

    async fn get(&self, company: &CompanyId, id: &str) -> Result<Option<T>, ApiError> {
        on_db!(self, get(company, id))?.map(|body| decode(self.kind, id, &body)).transpose()
    }

    async fn page(&self, company: &CompanyId, parent: Option<&str>, window: Window) -> Result<Page<T>, ApiError> {
        let rows = on_db!(self, page(company, parent, window.after, window.limit))?;
        let rows = rows
            .into_iter()
            .map(|(n, id, body)| Ok((n, decode(self.kind, &id, &body)?)))
            .collect::<Result<Vec<_>, ApiError>>()?;
        Ok(paged(rows, window))
    }

    async fn create(&self, company: &CompanyId, check: Option<Check<T>>, make: Make<T>) -> Result<T, ApiError> {
        let kind = self.kind;
        let needs_records = check.is_some();
        let build = move |id: String, mine: Option<Vec<(String, String)>>| -> Result<(T, String), ApiError> {
            if let (Some(check), Some(mine)) = (check, mine) {
                let mine =
                    mine.iter().map(|(id, body)| decode(kind, id, body)).collect::<Result<Vec<T>, ApiError>>()?;
                check(&mine)?;
            }
            let value = make(id);
            let body = encode(&value)?;
            Ok((value, body))
        };
        on_db!(self, create(company, needs_records, build))
    }

    async fn update(&self, company: &CompanyId, id: &str, change: Change<T>) -> Result<Option<T>, ApiError> {
        let kind = self.kind;
        let apply = move |body: String| -> Result<(T, String), ApiError> {
            let mut value: T = decode(kind, id, &body)?;
            change(&mut value)?;
            let body = encode(&value)?;
            Ok((value, body))
        };
        on_db!(self, update(company, id, apply))
    }

    async fn remove(&self, company: &CompanyId, id: &str) -> Result<bool, ApiError> {
        on_db!(self, remove(company, id))
    }
}

fn encode<T: Serialize>(value: &T) -> Result<String, ApiError> {
    serde_json::to_string(value).map_err(|e| {
        tracing::error!(error = %e, "a record cannot be encoded");
        ApiError::new(ErrorCode::Internal, "the record cannot be stored")
    })
}

fn decode<T: DeserializeOwned>(kind: &str, id: &str, body: &str) -> Result<T, ApiError> {
    serde_json::from_str(body).map_err(|e| corrupt(kind, id, &e.to_string()))
}

/// A stored record this version cannot read: refused, never guessed at.
fn corrupt(kind: &str, id: &str, detail: &str) -> ApiError {
    tracing::error!(kind, id, detail, "a stored record cannot be read");
    ApiError::new(ErrorCode::Internal, format!("stored {kind} `{id}` cannot be read"))
}

/// The database failed: `503`, to retry (nothing was written, or the write is whole).
fn unavailable(e: sqlx::Error) -> ApiError {
    tracing::error!(error = %e, "the modules' database failed");
    ApiError::new(ErrorCode::UpstreamUnavailable, "the module's records are unavailable; retry")
}

fn number(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The query functions, written once for each backend's pool type. The statements are the same text on
/// both (`$N` placeholders work on SQLite too).
macro_rules! record_queries {
    ($pool:ty) => {
        use kisum_client::access::CompanyId;
        use kisum_client::server::ApiError;
        use sqlx::Row as _;

        use super::{number, signed, unavailable};

        /// Gives record `id` (number 1) to `company` unless the company has had a record of the kind.
        pub(super) async fn seed(
            pool: &$pool,
            kind: &str,
            company: &CompanyId,
            id: &str,
            parent: Option<String>,
            body: &str,
        ) -> Result<(), ApiError> {
            let mut tx = pool.begin().await.map_err(unavailable)?;
            let first = sqlx::query(
                "INSERT INTO kisum_module_ids (kind, company, last) VALUES ($1, $2, 1) ON CONFLICT (kind, company) DO NOTHING",
            )
            .bind(kind)
            .bind(company.as_str())
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?
            .rows_affected()
                == 1;
            if first {
                sqlx::query(
                    "INSERT INTO kisum_module_records (kind, id, company, parent, n, body) VALUES ($1, $2, $3, $4, 1, $5)",
                )
                .bind(kind)
                .bind(id)
                .bind(company.as_str())
                .bind(parent)
                .bind(body)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
            }
            tx.commit().await.map_err(unavailable)
        }

        pub(super) async fn owner(pool: &$pool, kind: &str, id: &str) -> Result<Option<String>, ApiError> {
            sqlx::query_scalar("SELECT company FROM kisum_module_records WHERE kind = $1 AND id = $2")
                .bind(kind)
                .bind(id)
                .fetch_optional(pool)
                .await
                .map_err(unavailable)
        }

        pub(super) async fn get(
            pool: &$pool,
            kind: &str,
            company: &CompanyId,
            id: &str,
        ) -> Result<Option<String>, ApiError> {
            sqlx::query_scalar("SELECT body FROM kisum_module_records WHERE kind = $1 AND id = $2 AND company = $3")
                .bind(kind)
                .bind(id)
                .bind(company.as_str())
                .fetch_optional(pool)
                .await
                .map_err(unavailable)
        }

        /// `limit + 1` rows after number `after`: (number, id, body).
        pub(super) async fn page(
            pool: &$pool,
            kind: &str,
            company: &CompanyId,
            parent: Option<&str>,
            after: u64,
            limit: u32,
        ) -> Result<Vec<(u64, String, String)>, ApiError> {
            let rows = match parent {
                None => sqlx::query(
                    "SELECT n, id, body FROM kisum_module_records WHERE kind = $1 AND company = $2 AND n > $3 \
                     ORDER BY n LIMIT $4",
                )
                .bind(kind)
                .bind(company.as_str())
                .bind(signed(after))
                .bind(i64::from(limit) + 1)
                .fetch_all(pool)
                .await,
                Some(parent) => sqlx::query(
                    "SELECT n, id, body FROM kisum_module_records WHERE kind = $1 AND company = $2 AND parent = $3 \
                     AND n > $4 ORDER BY n LIMIT $5",
                )
                .bind(kind)
                .bind(company.as_str())
                .bind(parent)
                .bind(signed(after))
                .bind(i64::from(limit) + 1)
                .fetch_all(pool)
                .await,
            }
            .map_err(unavailable)?;
            rows.iter()
                .map(|row| {
                    let n: i64 = row.try_get("n")?;
                    Ok((number(n), row.try_get("id")?, row.try_get("body")?))
                })
                .collect::<Result<_, sqlx::Error>>()
                .map_err(unavailable)
        }

        /// Takes the company's next number first — the write that serializes its creates, on SQLite (the
        /// database's write lock) and PostgreSQL (the counter's row lock) alike — then reads the company's
        /// records for `build`'s check when it has one, and inserts what it builds.
        pub(super) async fn create<T>(
            pool: &$pool,
            kind: &str,
            company: &CompanyId,
            check: bool,
            build: impl FnOnce(String, Option<Vec<(String, String)>>) -> Result<(T, String), ApiError>,
        ) -> Result<T, ApiError>
        where
            T: super::Record,
        {
            let mut tx = pool.begin().await.map_err(unavailable)?;
            let n: i64 = sqlx::query_scalar(
                "INSERT INTO kisum_module_ids (kind, company, last) VALUES ($1, $2, 1) \
                 ON CONFLICT (kind, company) DO UPDATE SET last = kisum_module_ids.last + 1 RETURNING last",
            )
            .bind(kind)
            .bind(company.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(unavailable)?;
            let mine = if check {
                let rows = sqlx::query("SELECT id, body FROM kisum_module_records WHERE kind = $1 AND company = $2")
                    .bind(kind)
                    .bind(company.as_str())
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(unavailable)?;
                Some(
                    rows.iter()
                        .map(|row| Ok((row.try_get("id")?, row.try_get("body")?)))
                        .collect::<Result<Vec<(String, String)>, sqlx::Error>>()
                        .map_err(unavailable)?,
                )
            } else {
                None
            };
            let id = format!("{company}-{n}");
            // A refusal drops the transaction: the number is not taken.
            let (value, body) = build(id.clone(), mine)?;
            sqlx::query(
                "INSERT INTO kisum_module_records (kind, id, company, parent, n, body) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(kind)
            .bind(&id)
            .bind(company.as_str())
            .bind(value.parent().map(str::to_owned))
            .bind(n)
            .bind(body)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
            tx.commit().await.map_err(unavailable)?;
            Ok(value)
        }

        /// Locks the record with a write that changes nothing (so that no other writer can change it in
        /// between, on either database), reads it, and writes what `apply` makes of it.
        pub(super) async fn update<T>(
            pool: &$pool,
            kind: &str,
            company: &CompanyId,
            id: &str,
            apply: impl FnOnce(String) -> Result<(T, String), ApiError>,
        ) -> Result<Option<T>, ApiError> {
            let mut tx = pool.begin().await.map_err(unavailable)?;
            let locked =
                sqlx::query("UPDATE kisum_module_records SET n = n WHERE kind = $1 AND id = $2 AND company = $3")
                    .bind(kind)
                    .bind(id)
                    .bind(company.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?
                    .rows_affected();
            if locked == 0 {
                return Ok(None);
            }
            let body: String =
                sqlx::query_scalar("SELECT body FROM kisum_module_records WHERE kind = $1 AND id = $2 AND company = $3")
                    .bind(kind)
                    .bind(id)
                    .bind(company.as_str())
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(unavailable)?;
            let (value, body) = apply(body)?;
            sqlx::query("UPDATE kisum_module_records SET body = $4 WHERE kind = $1 AND id = $2 AND company = $3")
                .bind(kind)
                .bind(id)
                .bind(company.as_str())
                .bind(body)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
            tx.commit().await.map_err(unavailable)?;
            Ok(Some(value))
        }

        pub(super) async fn remove(pool: &$pool, kind: &str, company: &CompanyId, id: &str) -> Result<bool, ApiError> {
            let removed = sqlx::query("DELETE FROM kisum_module_records WHERE kind = $1 AND id = $2 AND company = $3")
                .bind(kind)
                .bind(id)
                .bind(company.as_str())
                .execute(pool)
                .await
                .map_err(unavailable)?
                .rows_affected();
            Ok(removed > 0)
        }
    };
}

mod sqlite {
    record_queries!(sqlx::SqlitePool);
}

mod postgres {
    record_queries!(sqlx::PgPool);
}
