//! Signing keys (DESIGN.md §5): stored sealed under the key-encryption key, published before they sign,
//! kept after they retire until their last token has expired plus the largest leeway. Every change to the
//! key set is a `rotate_keys` change in the log, so other replicas reload it and modules see `keys` on the
//! feed.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use kisum_access::{Actor, Change};
use kisum_entitlements::Timestamp;
use kisum_store::{Engine, SideWrite, Store, StoredKey};
use kisum_token::{Claims, Jwks, Kek, KeySet, PrivateKey, RotationPolicy, ScheduledKey, Validation, Verifier};

use crate::StartError;
use crate::state::Settings;

/// The signing keys of this Auth replica, as the store holds them.
pub struct Keys {
    kek: Kek,
    policy: RotationPolicy,
    set: ArcSwap<KeySet>,
    /// Serializes this replica's rotations (replicas serialize through the store's write lock).
    rotating: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<String> = self.set.load().keys().iter().map(|k| k.key.kid().to_owned()).collect();
        f.debug_struct("Keys").field("kids", &kids).finish_non_exhaustive()
    }
}

/// What a rotation did.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Rotation {
    /// The new key's id.
    pub kid: String,
    /// When it starts signing (it is published now).
    #[schema(value_type = String, format = DateTime)]
    pub signs_from: Timestamp,
    /// The keys it replaces, published until their last token has expired.
    pub retiring: Vec<String>,
    /// The store's sequence after the rotation.
    pub version: u64,
}

impl Keys {
    /// No keys yet, sealed under `kek`, rotated by `policy`.
    pub fn new(kek: Kek, policy: RotationPolicy) -> Keys {
        Keys { kek, policy, set: ArcSwap::from_pointee(KeySet::new(policy)), rotating: tokio::sync::Mutex::new(()) }
    }

    /// Reads the stored keys (unsealing each) into a key set, and makes it current.
    pub async fn load(&self, store: &dyn Store) -> Result<(), StartError> {
        let set = self.read(store).await?.0;
        self.set.store(Arc::new(set));
        Ok(())
    }

    async fn read(&self, store: &dyn Store) -> Result<(KeySet, Vec<StoredKey>), StartError> {
        let rows = store.signing_keys().await?;
        let mut set = KeySet::new(self.policy);
        for row in &rows {
            let key = PrivateKey::import_encrypted(&row.private_sealed, &self.kek)
                .map_err(|e| format!("signing key `{}`: {e} (is KISUM_KEK the one it was sealed with?)", row.kid))?;
            set.insert(ScheduledKey {
                key,
                published_at: Timestamp::from_unix(row.published_at),
                signs_from: Timestamp::from_unix(row.signs_from),
                signs_until: Timestamp::from_unix(row.signs_until),
            })?;
        }
        Ok((set, rows))
    }

    /// Brings the key set up to date at `now` (the first key, a successor published ahead, retired keys
    /// removed), committing any change, and makes it current. Safe to call from every replica.
    pub async fn ensure(&self, engine: &Engine, now: Timestamp) -> Result<(), StartError> {
        let _one = self.rotating.lock().await;
        let (mut set, rows) = self.read(engine.store().as_ref()).await?;
        set.rotate(now)?;
        self.commit(engine, &Actor::Platform, now, set, &rows).await?;
        Ok(())
    }

    /// An operator's rotation: a new key published now that signs from `now + lead`, the current one
    /// retired then.
    pub async fn rotate_now(
        &self,
        engine: &Engine,
        actor: &Actor,
        now: Timestamp,
        lead: i64,
    ) -> Result<Rotation, StartError> {
        let _one = self.rotating.lock().await;
        let (mut set, rows) = self.read(engine.store().as_ref()).await?;
        let retiring: Vec<String> = set.signer(now).map(|k| k.kid().to_owned()).into_iter().collect();
        let kid = set.rotate_now(now, lead)?;
        let signs_from = now.checked_add_seconds(lead.max(0)).unwrap_or(now);
        let version = self.commit(engine, actor, now, set, &rows).await?;
        Ok(Rotation { kid, signs_from, retiring, version })
    }

    /// Stores what changed between `rows` and `set` with one `rotate_keys` change, then makes `set`
    /// current. Returns the store's sequence after it.
    async fn commit(
        &self,
        engine: &Engine,
        actor: &Actor,
        now: Timestamp,
        set: KeySet,
        rows: &[StoredKey],
    ) -> Result<u64, StartError> {
        let stored: HashMap<&str, &StoredKey> = rows.iter().map(|r| (r.kid.as_str(), r)).collect();
        let mut side = Vec::new();
        for k in set.keys() {
            let row = StoredKey {
                kid: k.key.kid().to_owned(),
                public_jwk: serde_json::to_string(&k.key.public_jwk())?,
                private_sealed: match stored.get(k.key.kid()) {
                    Some(old) => old.private_sealed.clone(),
                    None => k.key.export_encrypted(&self.kek)?,
                },
                published_at: k.published_at.unix_seconds(),
                signs_from: k.signs_from.unix_seconds(),
                signs_until: k.signs_until.unix_seconds(),
            };
            if stored.get(row.kid.as_str()) != Some(&&row) {
                side.push(SideWrite::PutSigningKey(row));
            }
        }
        for r in rows {
            if !set.keys().iter().any(|k| k.key.kid() == r.kid) {
                side.push(SideWrite::RemoveSigningKey { kid: r.kid.clone() });
            }
        }
        let version = if side.is_empty() {
            engine.seq()
        } else {
            let kids = set.jwks(now)?.kids().map(str::to_owned).collect();
            let record = engine.write_with(actor, now, Change::RotateKeys { kids }, &side).await?;
            tracing::info!(seq = record.seq, changed = side.len(), "signing keys changed");
            record.seq
        };
        self.set.store(Arc::new(set));
        Ok(version)
    }

    /// Seals `plain` under the key-encryption key for `purpose`.
    pub fn seal(&self, purpose: &str, plain: &[u8]) -> Result<String, kisum_token::TokenError> {
        self.kek.seal(purpose, plain)
    }

    /// Opens what [`seal`](Keys::seal) sealed for `purpose`.
    pub fn open(&self, purpose: &str, sealed: &str) -> Result<Vec<u8>, kisum_token::TokenError> {
        self.kek.open(purpose, sealed).map(|p| p.to_vec())
    }

    /// Signs `claims` with the key that signs at `now`.
    pub fn sign(&self, claims: &Claims, now: Timestamp) -> Result<String, kisum_token::TokenError> {
        let set = self.set.load();
        let key = set.signer(now).ok_or_else(|| kisum_token::TokenError::Key("no key signs now".into()))?;
        kisum_token::sign(key, claims)
    }

    /// The key set to publish at `now`.
    pub fn jwks(&self, now: Timestamp) -> Result<Jwks, kisum_token::TokenError> {
        self.set.load().jwks(now)
    }

    /// A verifier for tokens signed by these keys.
    pub fn verifier(&self, settings: &Settings, now: Timestamp) -> Result<Verifier, kisum_token::TokenError> {
        Verifier::new(self.jwks(now)?, Validation::new(&settings.issuer, &settings.audience))
    }
}
