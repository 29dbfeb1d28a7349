//! Support for the cross-crate tests: test databases on both backends, and the demo world.
//!
//! PostgreSQL is the one the machine starts (`127.0.0.1:5432`, database `test`, trust auth), or the one
//! `KISUM_TEST_PG` names. Each test gets a database of its own, dropped when it ends; a test that
//! cannot reach PostgreSQL fails and says so.

// Test support: a panic is how a test fails, with the message saying why.
#![allow(clippy::panic)]

pub mod certs;
pub mod http;
pub mod logs;
pub mod proxy;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use kisum_access::doc::WorldDoc;
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Executor};

/// The demo world of `examples/demo/world.json`.
pub fn demo_world() -> WorldDoc {
    let text = include_str!("../../examples/demo/world.json");
    serde_json::from_str(text).unwrap_or_default()
}

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in a temporary directory.
    Sqlite,
    /// A fresh PostgreSQL database.
    Postgres,
}

static NEXT: AtomicU64 = AtomicU64::new(0);

/// The PostgreSQL server the tests use.
pub fn pg_base_url() -> String {
    std::env::var("KISUM_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A database for one test, removed when dropped.
#[derive(Debug)]
pub struct TestDb {
    /// The URL to open it with.
    pub url: String,
    dir: Option<PathBuf>,
    pg_name: Option<String>,
}

impl TestDb {
    /// Creates an empty database on `backend`.
    ///
    /// # Panics
    /// When PostgreSQL cannot be reached: the Postgres tests fail rather than skip.
    pub async fn new(backend: Backend) -> TestDb {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("kisum_t_{}_{n}", std::process::id());
        match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(&name);
                let _ = std::fs::remove_dir_all(&dir);
                std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
                let url = format!("sqlite://{}", dir.join("kisum.db").display());
                TestDb { url, dir: Some(dir), pg_name: None }
            }
            Backend::Postgres => {
                let mut admin = admin().await;
                admin
                    .execute(AssertSqlSafe(format!(r#"CREATE DATABASE "{name}""#)))
                    .await
                    .unwrap_or_else(|e| panic!("cannot create the test database `{name}`: {e}"));
                let _ = admin.close().await;
                let base = pg_base_url();
                let url = match base.rsplit_once('/') {
                    Some((server, _)) => format!("{server}/{name}"),
                    None => panic!("KISUM_TEST_PG `{base}` has no database part"),
                };
                TestDb { url, dir: None, pg_name: Some(name) }
            }
        }
    }

    /// The SQLite file (for tests that damage it on purpose).
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join("kisum.db"))
    }
}

async fn admin() -> sqlx::PgConnection {
    let base = pg_base_url();
    let options: sqlx::postgres::PgConnectOptions =
        base.parse().unwrap_or_else(|e| panic!("bad PostgreSQL url `{base}`: {e}"));
    options.connect().await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is not reachable at {base} ({e}). The store tests need it: start it, or set \
             KISUM_TEST_PG to a server where databases may be created."
        )
    })
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
        if let Some(name) = self.pg_name.take() {
            // Drop runs outside any runtime's async context: use a small runtime of its own.
            let _ = std::thread::spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
                rt.block_on(async {
                    let mut admin = admin().await;
                    let _ =
                        admin.execute(AssertSqlSafe(format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#))).await;
                    let _ = admin.close().await;
                });
            })
            .join();
        }
    }
}

/// Runs each listed async test function `name(Backend)` once per backend, as the tests `sqlite::name` and
/// `postgres::name` (multi-threaded runtime, 2 workers). The functions are looked up at the crate root, or
/// under a module path given as `@in crate::suite;` before the list.
#[macro_export]
macro_rules! on_both_backends {
    (@in $($m:ident)::+; $($name:ident),* $(,)?) => {
        mod sqlite {
            use $($m)::+ as tests;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    tests::$name($crate::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            use $($m)::+ as tests;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    tests::$name($crate::Backend::Postgres).await;
                }
            )*
        }
    };
    ($($name:ident),* $(,)?) => {
        $crate::on_both_backends!(@in crate; $($name),*);
    };
}
