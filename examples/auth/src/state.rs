//! What Auth's handlers share: the engine, the signing keys, the sessions revoked, the settings.

use std::sync::Arc;

use kisum_access::{Actor, Change, ChangeRecord, CompanyId};
use kisum_entitlements::{Clock, Timestamp};
use kisum_server::revoked::Revoked;
use kisum_server::{ApiResult, Tokens};
use kisum_store::{Engine, SideWrite};
use kisum_token::{Kek, MAX_LIFETIME_SECONDS, RotationPolicy};

use crate::keys::Keys;

/// Auth's settings; [`Settings::new`] gives API.md's.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The issuer (`iss`) of every token, and the base of the metadata's URLs.
    pub issuer: String,
    /// The audience (`aud`) of every token.
    pub audience: String,
    /// The company whose members with `admin:…` permissions are platform staff.
    pub platform_company: CompanyId,
    /// Access-token lifetime in seconds (at most 15 minutes).
    pub access_ttl: i64,
    /// Session lifetime in seconds: refresh tokens stop working after it.
    pub session_ttl: i64,
    /// How long after its first use a refresh token's retry gets the same answer again.
    pub refresh_grace: i64,
    /// Failed sign-ins tolerated per user within [`login_window`](Settings::login_window).
    pub login_max_failures: u32,
    /// The sign-in rate-limit window in seconds.
    pub login_window: i64,
    /// The key rotation schedule.
    pub rotation: RotationPolicy,
    /// How long an operator's rotation publishes the new key before it signs, in seconds.
    pub rotation_lead: i64,
}

impl Settings {
    /// API.md's settings for `issuer`, with `platform_company`'s staff.
    pub fn new(issuer: impl Into<String>, platform_company: CompanyId) -> Settings {
        Settings {
            issuer: issuer.into(),
            audience: "kisum".into(),
            platform_company,
            access_ttl: MAX_LIFETIME_SECONDS,
            session_ttl: 30 * 24 * 3600,
            refresh_grace: 10,
            login_max_failures: 5,
            login_window: 15 * 60,
            rotation: RotationPolicy::default(),
            rotation_lead: 5,
        }
    }
}

/// How many sign-in turns there are.
const LOGIN_TURNS: usize = 64;

/// Auth's state.
#[derive(Debug)]
pub struct AuthState {
    /// The directory kept in step with the store.
    pub engine: Arc<Engine>,
    /// Verification of the tokens Auth itself is called with (its own keys).
    pub tokens: Tokens,
    /// The signing keys.
    pub keys: Keys,
    /// The settings.
    pub settings: Settings,
    /// Sign-in turns, by a hash of the user name: one verification per name at a time.
    login_turns: Vec<tokio::sync::Mutex<()>>,
    last_turn: tokio::sync::Mutex<()>,
    /// The keys of the hash that picks a name's turn (random per process).
    turn_keys: std::hash::RandomState,
    /// Set when the server is stopping: open change-feed streams end, so graceful shutdown can finish.
    closing: tokio::sync::watch::Sender<bool>,
    /// The sequence from which [`crate::background`] follows the log: everything before it was read
    /// from Auth's tables when the state was opened.
    watch_from: u64,
}

impl AuthState {
    /// Auth on `engine`, its keys sealed under `kek`, with `settings` and `clock`: loads the signing keys,
    /// creating the first one if the store has none. Call [`crate::background`] to follow other replicas.
    pub async fn open(
        engine: Arc<Engine>,
        kek: Kek,
        settings: Settings,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<AuthState>, crate::StartError> {
        let watch_from = engine.seq();
        let keys = Keys::new(kek, settings.rotation);
        let now = clock.now();
        keys.ensure(&engine, now).await?;
        let verifier = keys.verifier(&settings, now)?;
        let state = Arc::new(AuthState {
            engine,
            tokens: Tokens::new(verifier, clock),
            keys,
            settings,
            login_turns: (0..LOGIN_TURNS).map(|_| tokio::sync::Mutex::new(())).collect(),
            last_turn: tokio::sync::Mutex::new(()),
            turn_keys: std::hash::RandomState::new(),
            closing: tokio::sync::watch::Sender::new(false),
            watch_from,
        });
        state.load_revoked().await?;
        // Sign-in lists a user's companies from the directory's index of memberships: build it now, off
        // the request path (about 0.5 s at 100k companies; built on first use otherwise).
        let directory = state.engine.directory().clone();
        tokio::task::spawn_blocking(move || directory.index_memberships());
        Ok(state)
    }

    /// The sign-in turn of user name `name` (shared with the names that hash alike).
    pub(crate) fn login_turn(&self, name: &str) -> &tokio::sync::Mutex<()> {
        use std::hash::BuildHasher;
        // Keyed per process: nobody outside can aim a flood of names at the slot a victim's name takes.
        let slot = self.turn_keys.hash_one(name) as usize % LOGIN_TURNS;
        // `slot` is always in range; the shared last turn would only serve if it were not.
        self.login_turns.get(slot).unwrap_or(&self.last_turn)
    }

    /// Ends every open change-feed stream (and refuses new ones): call it when the server starts its
    /// graceful shutdown, which would otherwise wait for those endless responses.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Whether [`close`](AuthState::close) was called, as a watch.
    pub(crate) fn closing(&self) -> tokio::sync::watch::Receiver<bool> {
        self.closing.subscribe()
    }

    /// Where [`crate::background`] starts following the log.
    pub fn watch_from(&self) -> u64 {
        self.watch_from
    }

    /// Now, by the server's clock.
    pub fn now(&self) -> Timestamp {
        self.tokens.clock().now()
    }

    /// Commits a write (and what must commit with it) and returns its record.
    pub async fn write(&self, actor: &Actor, change: Change, side: &[SideWrite]) -> ApiResult<ChangeRecord> {
        Ok(self.engine.write_with(actor, self.now(), change, side).await?)
    }

    /// Sessions and users whose tokens are refused (kept by the token verifier, which refuses them).
    pub fn revoked(&self) -> &Arc<Revoked> {
        self.tokens.revoked()
    }

    /// Reads the sessions revoked recently enough that their tokens may still be presented.
    pub(crate) async fn load_revoked(&self) -> Result<(), kisum_store::StoreError> {
        kisum_server::revoked::load(self.revoked(), self.engine.store().as_ref(), self.now()).await
    }

    /// Reloads the signing keys from the store and swaps the verifier.
    pub(crate) async fn reload_keys(&self) -> Result<(), crate::StartError> {
        let now = self.now();
        self.keys.load(self.engine.store().as_ref()).await?;
        self.tokens.replace(self.keys.verifier(&self.settings, now)?);
        Ok(())
    }
}

impl kisum_server::ServerState for AuthState {
    fn tokens(&self) -> &kisum_server::Tokens {
        &self.tokens
    }

    fn installed(&self) -> tokio::sync::watch::Receiver<u64> {
        self.engine.installed()
    }

    fn behind(&self) -> Option<String> {
        self.engine.behind()
    }
}
