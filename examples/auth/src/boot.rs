//! Starting Auth on a store (API.md §1): the store opened and seeded, the seeded users' password, the
//! key-encryption key, the platform's administration client. Shared by `kisum-auth` and the one-command
//! deployment.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kisum_access::doc::WorldDoc;
use kisum_access::{Actor, Change, UserId};
use kisum_server::Secret;
use kisum_store::{Engine, SideWrite};
use kisum_token::Kek;

use crate::StartError;

/// The fewest characters an operator-chosen `KISUM_ADMIN_CLIENT_SECRET` may have.
pub const MIN_ADMIN_SECRET: usize = 32;
use crate::clients;

/// The demo world: what an empty store is seeded with when no world is given.
pub const DEMO_WORLD: &str = include_str!("../../demo/world.json");
/// The demo users' password.
pub const DEMO_PASSWORD: &str = "kisum-demo";

/// How to start. Its secrets (the seed password, the KEK, the admin secret) print as `[redacted]`; print
/// `db` through `kisum_store::redact`.
#[derive(Debug, Clone, Default)]
pub struct Boot {
    /// The store URL (`--db`); default: `kisum.db` in `data`.
    pub db: Option<String>,
    /// The embedded store's folder (`--data`).
    pub data: PathBuf,
    /// The world to seed an empty store with (`--seed-world`); default: the demo world.
    pub seed_world: Option<PathBuf>,
    /// The seeded users' password (`--seed-password`); default with the demo world: [`DEMO_PASSWORD`].
    pub seed_password: Option<Secret>,
    /// A file holding the key-encryption key (`--kek-file`).
    pub kek_file: Option<PathBuf>,
    /// The key-encryption key itself (`KISUM_KEK`).
    pub kek: Option<Secret>,
    /// The administration client's secret (`KISUM_ADMIN_CLIENT_SECRET`).
    pub admin_secret: Option<Secret>,
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

    /// The world an empty store is seeded with: `--seed-world`; else, on the embedded store, the demo
    /// world; else (`--db` names a store of its own) the demo world's catalog and nothing else — no
    /// company, no user, no published password: the platform starts empty but for `platform-admin`.
    pub fn seed(&self) -> Result<WorldDoc, StartError> {
        match &self.seed_world {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
                Ok(serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?)
            }
            None if self.db.is_none() => Ok(serde_json::from_str(DEMO_WORLD)?),
            None => {
                let demo: WorldDoc = serde_json::from_str(DEMO_WORLD)?;
                Ok(WorldDoc { catalog: demo.catalog, ..WorldDoc::default() })
            }
        }
    }

    /// Opens the store, and readies what Auth needs beside it. An empty store is created and seeded
    /// ([`Boot::seed`]); a store that holds state is opened as it is, never seeded, and needs no seed
    /// world: a `--seed-world` given then is ignored with a warning.
    pub async fn open(&self) -> Result<Opened, StartError> {
        self.check_admin_secret()?;
        let db = self.db_url()?;
        let store = kisum_store::connect(&db).await?;
        let fresh = store.latest_checkpoint().await?.is_none() && store.head().await? == 0;
        let mut notes = Vec::new();
        let seed = if fresh {
            Some(self.seed()?)
        } else {
            if let Some(path) = &self.seed_world {
                tracing::warn!(seed_world = %path.display(), "the store holds state: --seed-world is ignored");
                notes.push(format!("The store holds state: --seed-world {} was ignored", path.display()));
            }
            None
        };
        let engine = Arc::new(Engine::open(store.clone(), seed.as_ref()).await?);
        let kek = self.kek(&mut notes)?;
        if let Some(seed) = &seed {
            self.seed_passwords(&engine, seed).await?;
        }
        if self.seed_world.is_none() {
            self.demo_note(&engine, &mut notes).await?;
        }
        self.admin_client(&engine, &mut notes).await?;
        Ok(Opened { engine, kek, db: kisum_store::redact(&db), notes })
    }

    /// Gives every seeded user its password (`--seed-password`; with the demo world, [`DEMO_PASSWORD`]),
    /// unless one already has one (another process seeding the same store at the same time).
    async fn seed_passwords(&self, engine: &Engine, seed: &WorldDoc) -> Result<(), StartError> {
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
        let hash = kisum_server::password::hash(password).await?;
        for user in users {
            let side = [SideWrite::SetPassword { user: user.clone(), hash: hash.clone() }];
            let change = Change::SetPassword { user, end_sessions: false };
            engine.write_with(&Actor::Platform, kisum_entitlements::Timestamp::now(), change, &side).await?;
        }
        Ok(())
    }

    /// Tells the demo users and their password when the demo world is in this store and its password
    /// still opens it (checked against the first demo user's stored hash): never for a store seeded with
    /// another world, nor once the password was changed.
    async fn demo_note(&self, engine: &Engine, notes: &mut Vec<String>) -> Result<(), StartError> {
        let demo: WorldDoc = serde_json::from_str(DEMO_WORLD)?;
        let users: Vec<UserId> = demo.users.iter().filter_map(|u| UserId::parse(&u.id).ok()).collect();
        let Some(first) = users.first() else { return Ok(()) };
        if !users.iter().all(|u| engine.directory().has_user(u)) {
            return Ok(());
        }
        let Some(credential) = engine.store().credential(first).await? else { return Ok(()) };
        if kisum_server::password::verify(
            kisum_server::password::Queue::Password,
            DEMO_PASSWORD.to_owned(),
            credential.password_hash,
        )
        .await?
        {
            let names: Vec<&str> = users.iter().map(UserId::as_str).collect();
            notes.push(format!("Demo users: {} — password `{DEMO_PASSWORD}`", names.join(", ")));
        }
        Ok(())
    }

    /// The key-encryption key: `KISUM_KEK`, else `--kek-file`, else (embedded store only) the `kek` file
    /// beside the database, created with mode 0600 on first start.
    fn kek(&self, notes: &mut Vec<String>) -> Result<Kek, StartError> {
        if let Some(text) = &self.kek {
            return Ok(Kek::from_text(text.expose()).map_err(|e| format!("KISUM_KEK: {e}"))?);
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

    /// An operator-chosen secret for `platform-admin` is long enough to make guessing hopeless (API.md §1:
    /// at least 32 characters); the error names the setting, the rule and what was given.
    fn check_admin_secret(&self) -> Result<(), StartError> {
        match &self.admin_secret {
            Some(secret) if secret.expose().chars().count() < MIN_ADMIN_SECRET => Err(format!(
                "KISUM_ADMIN_CLIENT_SECRET: the secret of the `platform-admin` client (scopes `*`) needs at least \
                 {MIN_ADMIN_SECRET} characters; this one has {} (`kisum token kek` prints 64 random hex digits)",
                secret.expose().chars().count()
            )
            .into()),
            _ => Ok(()),
        }
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
                    Some(c) => clients::verify_secret(secret.expose(), c.secret_hash.clone()).await?,
                    None => false,
                };
                if !current {
                    let hash = kisum_server::password::hash(secret.expose().to_owned()).await?;
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
