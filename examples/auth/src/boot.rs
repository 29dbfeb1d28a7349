//! Starting Auth on a store (API.md §1): the store opened and seeded, the seeded users' password, the
//! key-encryption key, the platform's administration client. Shared by `kisum-auth` and the one-command
//! deployment.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kisum_access::doc::WorldDoc;
use kisum_access::{Actor, Change, UserId};
use kisum_store::{Engine, SideWrite};
use kisum_token::Kek;

use crate::StartError;
use crate::clients;

/// The demo world: what an empty store is seeded with when no world is given.
pub const DEMO_WORLD: &str = include_str!("../../demo/world.json");
/// The demo users' password.
pub const DEMO_PASSWORD: &str = "kisum-demo";

/// How to start.
#[derive(Debug, Clone, Default)]
pub struct Boot {
    /// The store URL (`--db`); default: `kisum.db` in `data`.
    pub db: Option<String>,
    /// The embedded store's folder (`--data`).
    pub data: PathBuf,
    /// The world to seed an empty store with (`--seed-world`); default: the demo world.
    pub seed_world: Option<PathBuf>,
    /// The seeded users' password (`--seed-password`); default with the demo world: [`DEMO_PASSWORD`].
    pub seed_password: Option<String>,
    /// A file holding the key-encryption key (`--kek-file`).
    pub kek_file: Option<PathBuf>,
    /// The key-encryption key itself (`KISUM_KEK`).
    pub kek: Option<String>,
    /// The administration client's secret (`KISUM_ADMIN_CLIENT_SECRET`).
    pub admin_secret: Option<String>,
}

/// A started store.
#[derive(Debug)]
pub struct Opened {
    /// The engine on it.
    pub engine: Arc<Engine>,
    /// The key-encryption key.
    pub kek: Kek,
    /// The store URL, password redacted.
    pub db: String,
    /// What the operator must be told once (generated secrets, demo credentials).
    pub notes: Vec<String>,
}

impl Boot {
    /// The store URL this boot opens.
    pub fn db_url(&self) -> Result<String, StartError> {
        match &self.db {
            Some(url) => Ok(url.clone()),
            None => {
                std::fs::create_dir_all(&self.data).map_err(|e| format!("{}: {e}", self.data.display()))?;
                Ok(format!("sqlite://{}", self.data.join("kisum.db").display()))
            }
        }
    }

    /// The world an empty store is seeded with.
    pub fn seed(&self) -> Result<WorldDoc, StartError> {
        match &self.seed_world {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
                Ok(serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?)
            }
            None => Ok(serde_json::from_str(DEMO_WORLD)?),
        }
    }

    /// Opens (creating and seeding if empty) the store, and readies what Auth needs beside it.
    pub async fn open(&self) -> Result<Opened, StartError> {
        let seed = self.seed()?;
        let db = self.db_url()?;
        let store = kisum_store::connect(&db).await?;
        let fresh = store.latest_checkpoint().await?.is_none() && store.head().await? == 0;
        let engine = Arc::new(Engine::open(store.clone(), Some(&seed)).await?);
        let mut notes = Vec::new();
        let kek = self.kek(&mut notes)?;
        let password = match (&self.seed_password, &self.seed_world) {
            (Some(p), _) => Some(p.clone()),
            (None, None) => Some(DEMO_PASSWORD.to_owned()),
            (None, Some(_)) => None,
        };
        let users: Vec<UserId> = seed.users.iter().filter_map(|u| UserId::parse(&u.id).ok()).collect();
        if let Some(password) = password {
            let mut none_has_one = true;
            for u in &users {
                if store.credential(u).await?.is_some() {
                    none_has_one = false;
                    break;
                }
            }
            if fresh || none_has_one {
                let hash = kisum_server::password::hash(password.clone()).await?;
                for user in &users {
                    let side = [SideWrite::SetPassword { user: user.clone(), hash: hash.clone() }];
                    engine
                        .write_with(
                            &Actor::Platform,
                            kisum_entitlements::Timestamp::now(),
                            Change::SetPassword { user: user.clone(), end_sessions: false },
                            &side,
                        )
                        .await?;
                }
            }
            if self.seed_world.is_none() {
                let names: Vec<&str> = users.iter().map(UserId::as_str).collect();
                notes.push(format!("Demo users: {} — password `{password}`", names.join(", ")));
            }
        }
        self.admin_client(&engine, &mut notes).await?;
        Ok(Opened { engine, kek, db: kisum_store::redact(&db), notes })
    }

    /// The key-encryption key: `KISUM_KEK`, else `--kek-file`, else (embedded store only) the `kek` file
    /// beside the database, created with mode 0600 on first start.
    fn kek(&self, notes: &mut Vec<String>) -> Result<Kek, StartError> {
        if let Some(text) = &self.kek {
            return Ok(Kek::from_text(text).map_err(|e| format!("KISUM_KEK: {e}"))?);
        }
        if let Some(path) = &self.kek_file {
            let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            return Ok(Kek::from_text(&text).map_err(|e| format!("{}: {e}", path.display()))?);
        }
        if self.db.as_deref().is_some_and(|u| !u.starts_with("sqlite:")) {
            return Err("a PostgreSQL store needs a key-encryption key: set KISUM_KEK or --kek-file".into());
        }
        let path = self.data.join("kek");
        if path.exists() {
            let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            return Ok(Kek::from_text(&text).map_err(|e| format!("{}: {e}", path.display()))?);
        }
        let kek = Kek::generate()?;
        write_private(&path, kek.to_hex().as_str())?;
        notes.push(format!(
            "Generated the key-encryption key in {} (mode 0600): back it up with the database",
            path.display()
        ));
        Ok(kek)
    }

    /// The `platform-admin` client (scopes `*`): its secret is `KISUM_ADMIN_CLIENT_SECRET` when set (stored
    /// argon2id-hashed), else generated once and shown.
    async fn admin_client(&self, engine: &Engine, notes: &mut Vec<String>) -> Result<(), StartError> {
        let store = engine.store();
        let now = kisum_entitlements::Timestamp::now().unix_seconds();
        match &self.admin_secret {
            Some(secret) => {
                let existing = store.service_client(clients::PLATFORM_ADMIN).await?;
                let current = match &existing {
                    Some(c) => clients::verify_secret(secret, c.secret_hash.clone()).await,
                    None => false,
                };
                if !current {
                    let hash = kisum_server::password::hash(secret.clone()).await?;
                    store.put_service_client(&clients::platform_admin(hash, now)).await?;
                }
            }
            None => {
                if store.service_client(clients::PLATFORM_ADMIN).await?.is_none() {
                    let (secret, hash) = clients::generate()?;
                    store.put_service_client(&clients::platform_admin(hash, now)).await?;
                    notes.push(format!(
                        "Service client `{}` (scopes `*`), secret shown once: {secret}",
                        clients::PLATFORM_ADMIN
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Writes `text` to a new file readable by its owner only.
fn write_private(path: &Path, text: &str) -> Result<(), StartError> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    Ok(())
}
