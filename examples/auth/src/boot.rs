//! Starting Auth on a store (API.md §1): the store opened and seeded, the seeded users' password, the
//! key-encryption key, the platform's administration client. Shared by `kisum-auth` and the one-command
//! deployment.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kisum_access::UserId;
use kisum_access::doc::WorldDoc;
use kisum_server::{Secret, StoreConfig};
use kisum_store::Engine;
use kisum_token::Kek;

use crate::StartError;

/// The fewest characters an operator-chosen `KISUM_ADMIN_CLIENT_SECRET` may have.
pub const MIN_ADMIN_SECRET: usize = 32;
use crate::clients;

/// The demo world: what an empty store is seeded with when no world is given.
pub const DEMO_WORLD: &str = kisum_server::DEMO_WORLD;
/// The demo users' password.
pub const DEMO_PASSWORD: &str = kisum_server::DEMO_PASSWORD;

/// How Auth's store is started: the store's flags, and what Auth keeps beside it. Printed with every
/// secret (the KEK, the admin secret, the store's and the seed's passwords) redacted.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Boot {
    /// The store: where, what an empty one is seeded with, how often the log is read.
    #[command(flatten)]
    pub store: StoreConfig,
    /// A file holding the key-encryption key (64 hex digits or base64 of 32 bytes). `KISUM_KEK` gives it
    /// directly. Without either, the embedded store's `kek` file beside the database is used, created
    /// (mode 0600) on first start; a PostgreSQL store requires one.
    #[arg(long, global = true, env = "KISUM_KEK_FILE")]
    pub kek_file: Option<PathBuf>,
    /// The key-encryption key itself: set `KISUM_KEK` in the environment (a command line is visible to
    /// every user of the machine).
    #[arg(long, global = true, env = "KISUM_KEK", hide = true, hide_env_values = true)]
    pub kek: Option<Secret>,
    /// The secret of the `platform-admin` client (scopes `*`), at least 32 characters: set
    /// `KISUM_ADMIN_CLIENT_SECRET` in the environment. Without it one is generated and shown once.
    #[arg(
        long = "admin-client-secret",
        global = true,
        env = "KISUM_ADMIN_CLIENT_SECRET",
        hide = true,
        hide_env_values = true
    )]
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
    /// The world an empty store is seeded with ([`StoreConfig::seed`]).
    pub fn seed(&self) -> Result<WorldDoc, StartError> {
        self.store.seed()
    }

    /// Opens the store ([`StoreConfig::open`]: an empty one is created and seeded, its users given their
    /// password; one that holds state opened as it is), and readies what Auth needs beside it: the
    /// key-encryption key and the `platform-admin` client.
    pub async fn open(&self) -> Result<Opened, StartError> {
        self.check_admin_secret()?;
        let opened = self.store.open().await?;
        let mut notes = Vec::new();
        if opened.seeded.is_none()
            && let Some(path) = &self.store.seed_world
        {
            notes.push(format!("The store holds state: --seed-world {} was ignored", path.display()));
        }
        let engine = opened.engine;
        let kek = self.kek(&mut notes)?;
        if self.store.seed_world.is_none() {
            self.demo_note(&engine, &mut notes).await?;
        }
        self.admin_client(&engine, &mut notes).await?;
        Ok(Opened { engine, kek, db: opened.db, notes })
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
        if self.store.db.as_ref().is_some_and(|u| !u.0.starts_with("sqlite:")) {
            return Err("a PostgreSQL store needs a key-encryption key: set KISUM_KEK or --kek-file".into());
        }
        let path = self.store.data.join("kek");
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
