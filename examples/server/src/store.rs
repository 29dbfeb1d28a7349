//! The store every server on one shares: where it is, what an empty one is seeded with, and how often
//! other processes' writes are read (`kisum-auth`, `kisum-core` and `kisum-platform` take the same flags).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kisum_access::doc::WorldDoc;
use kisum_access::{Actor, Change, UserId};
use kisum_store::{Engine, SideWrite};

use crate::{DbUrl, Secret};

/// The demo world (API.md §1): what the embedded store is seeded with when no world is given.
pub const DEMO_WORLD: &str = include_str!("../../demo/world.json");
/// The demo users' password.
pub const DEMO_PASSWORD: &str = "kisum-demo";

/// Why a store could not be opened; the message names the setting.
pub type OpenError = Box<dyn std::error::Error + Send + Sync>;

/// Where the state lives and what an empty store is seeded with. Printed with the store's password
/// redacted.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreConfig {
    /// The store: `sqlite://FILE` or `postgres://…` (`sslmode=`/`sslrootcert=` for TLS). Default:
    /// `kisum.db` in `--data`.
    #[arg(long, global = true, env = "KISUM_DB")]
    pub db: Option<DbUrl>,
    /// The embedded store's folder (holds `kisum.db` and, for Auth, its key-encryption key `kek`).
    #[arg(long, global = true, env = "KISUM_DATA", default_value = "./kisum-data")]
    pub data: PathBuf,
    /// A world file (scenarios/README.md format) to seed an empty store with. Default: the demo world on
    /// the embedded store; with `--db`, the demo catalog and nothing else.
    #[arg(long, global = true, env = "KISUM_SEED_WORLD")]
    pub seed_world: Option<PathBuf>,
    /// The password every seeded user gets (when the store is seeded). Default with the demo world on the
    /// embedded store: `kisum-demo`; otherwise seeded users have none until one is set.
    #[arg(long, global = true, env = "KISUM_SEED_PASSWORD", hide_env_values = true)]
    pub seed_password: Option<Secret>,
    /// How often to read the change log for other processes' writes, in milliseconds (notifications wake
    /// the reader sooner on PostgreSQL).
    #[arg(long, global = true, env = "KISUM_POLL_MS", default_value_t = 250,
          value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub poll_ms: u64,
}

impl Default for StoreConfig {
    fn default() -> StoreConfig {
        StoreConfig {
            db: None,
            data: PathBuf::from("./kisum-data"),
            seed_world: None,
            seed_password: None,
            poll_ms: 250,
        }
    }
}

/// An opened store.
#[derive(Debug)]
pub struct OpenedStore {
    /// The engine on it.
    pub engine: Arc<Engine>,
    /// The world it was seeded with now: `None` when it already held state.
    pub seeded: Option<WorldDoc>,
    /// Its URL, password redacted.
    pub db: String,
}

impl StoreConfig {
    /// The store URL: `--db`, else `kisum.db` in `--data` (the folder is created).
    pub fn db_url(&self) -> Result<String, OpenError> {
        match &self.db {
            Some(url) => Ok(url.0.clone()),
            None => {
                std::fs::create_dir_all(&self.data).map_err(|e| format!("--data {}: {e}", self.data.display()))?;
                Ok(format!("sqlite://{}", self.data.join("kisum.db").display()))
            }
        }
    }

    /// How often the log is read for other processes' writes ([`Engine::follow`]).
    pub fn poll(&self) -> Duration {
        Duration::from_millis(self.poll_ms.max(1))
    }

    /// The world an empty store is seeded with: `--seed-world`; else, on the embedded store, the demo
    /// world; else (`--db` names a store of its own) the demo world's catalog and nothing else — no
    /// company, no user, no published password (API.md §1).
    pub fn seed(&self) -> Result<WorldDoc, OpenError> {
        match &self.seed_world {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|e| format!("--seed-world {}: {e}", path.display()))?;
                Ok(serde_json::from_str(&text).map_err(|e| format!("--seed-world {}: {e}", path.display()))?)
            }
            None if self.db.is_none() => Ok(serde_json::from_str(DEMO_WORLD)?),
            None => {
                let demo: WorldDoc = serde_json::from_str(DEMO_WORLD)?;
                Ok(WorldDoc { catalog: demo.catalog, ..WorldDoc::default() })
            }
        }
    }

    /// Opens the store: an empty one is created and seeded ([`StoreConfig::seed`]), its users given their
    /// password ([`StoreConfig::seed_password`]); one that holds state is opened as it is, never seeded,
    /// and a `--seed-world` given then is ignored with a warning. Whichever server opens an empty store
    /// first seeds it, Auth or Core.
    pub async fn open(&self) -> Result<OpenedStore, OpenError> {
        let db = self.db_url()?;
        let store = kisum_store::connect(&db).await?;
        let fresh = store.latest_checkpoint().await?.is_none() && store.head().await? == 0;
        let seeded = if fresh {
            Some(self.seed()?)
        } else {
            if let Some(path) = &self.seed_world {
                tracing::warn!(seed_world = %path.display(), "the store holds state: --seed-world is ignored");
            }
            None
        };
        let engine = Arc::new(Engine::open(store, seeded.as_ref()).await?);
        if let Some(seed) = &seeded {
            self.seed_passwords(&engine, seed).await?;
        }
        Ok(OpenedStore { engine, seeded, db: kisum_store::redact(&db) })
    }

    /// Gives every seeded user its password (`--seed-password`; with the demo world on the embedded
    /// store, [`DEMO_PASSWORD`]), unless one already has one (another process seeding the same store at
    /// the same time). Each is a change in the log, like any password set.
    async fn seed_passwords(&self, engine: &Engine, seed: &WorldDoc) -> Result<(), OpenError> {
        let password = match (&self.seed_password, &self.seed_world) {
            (Some(p), _) => p.expose().to_owned(),
            (None, None) if self.db.is_none() => DEMO_PASSWORD.to_owned(),
            _ => return Ok(()),
        };
        let directory = engine.directory();
        let users: Vec<UserId> =
            seed.users.iter().filter_map(|u| UserId::parse(&u.id).ok()).filter(|u| directory.has_user(u)).collect();
        for u in &users {
            if engine.store().credential(u).await?.is_some() {
                return Ok(());
            }
        }
        let hash = crate::password::hash(password).await?;
        for user in users {
            let side = [SideWrite::SetPassword { user: user.clone(), hash: hash.clone() }];
            let change = Change::SetPassword { user, end_sessions: false };
            engine.write_with(&Actor::Platform, kisum_entitlements::Timestamp::now(), change, &side).await?;
        }
        Ok(())
    }
}
