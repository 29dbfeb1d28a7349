//! Key rotation. A key is published (in the JWKS) before it signs, signs for a set period, then is
//! retired — still published, no longer signing — until the last token it signed has expired plus the
//! largest leeway, and only then removed. The clock is an argument, so a schedule is testable instantly.

use kisum_entitlements::Timestamp;

use crate::claims::MAX_LIFETIME_SECONDS;
use crate::error::TokenError;
use crate::key::{Algorithm, Jwks, PrivateKey};
use crate::verify::MAX_LEEWAY_SECONDS;

/// When keys are published, sign, and go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationPolicy {
    /// How long a key is published before it starts signing, in seconds: verifiers that cached the
    /// JWKS before it appeared refetch on the unknown `kid` anyway, but most will already have it.
    /// Defaults to 1 hour.
    pub publish_ahead: i64,
    /// How long a key signs, in seconds. Defaults to 7 days.
    pub sign_for: i64,
    /// The algorithm of new keys. Defaults to EdDSA.
    pub algorithm: Algorithm,
}

impl Default for RotationPolicy {
    fn default() -> Self {
        RotationPolicy { publish_ahead: 3600, sign_for: 7 * 24 * 3600, algorithm: Algorithm::EdDSA }
    }
}

/// How long a retired key stays published: the longest token lifetime plus the largest leeway.
pub const RETIRED_KEEP_SECONDS: i64 = MAX_LIFETIME_SECONDS + MAX_LEEWAY_SECONDS as i64;

/// A key and its schedule.
#[derive(Debug)]
pub struct ScheduledKey {
    /// The key.
    pub key: PrivateKey,
    /// Published from (inclusive).
    pub published_at: Timestamp,
    /// Signs from (inclusive).
    pub signs_from: Timestamp,
    /// Signs until (exclusive); retired from then on.
    pub signs_until: Timestamp,
}

impl ScheduledKey {
    /// When the key leaves the JWKS: the last token it may have signed has expired, plus leeway.
    pub fn removed_at(&self) -> Timestamp {
        self.signs_until.checked_add_seconds(RETIRED_KEEP_SECONDS).unwrap_or(self.signs_until)
    }

    fn is_published_at(&self, t: Timestamp) -> bool {
        self.published_at <= t && t < self.removed_at()
    }

    fn signs_at(&self, t: Timestamp) -> bool {
        self.signs_from <= t && t < self.signs_until
    }
}

/// The signing keys of an issuer, rotated on schedule.
#[derive(Debug, Default)]
pub struct KeySet {
    policy: RotationPolicy,
    keys: Vec<ScheduledKey>,
    minted: u64,
}

impl KeySet {
    /// An empty key set following `policy`.
    pub fn new(policy: RotationPolicy) -> KeySet {
        KeySet { policy, keys: Vec::new(), minted: 0 }
    }

    /// Brings the set up to date at `now`: removes keys past their removal instant, starts a first key
    /// (signing at once) when there is none, and publishes the successor of the current key
    /// `publish_ahead` before it takes over. Call it at least every `publish_ahead`.
    pub fn rotate(&mut self, now: Timestamp) -> Result<(), TokenError> {
        self.keys.retain(|k| now < k.removed_at());
        let current_end = self.keys.iter().filter(|k| k.signs_at(now)).map(|k| k.signs_until).max();
        let start = match current_end {
            None => now,
            Some(end) if end.checked_add_seconds(-self.policy.publish_ahead).is_some_and(|p| now >= p) => end,
            Some(_) => return Ok(()),
        };
        if self.keys.iter().any(|k| k.signs_from >= start) {
            return Ok(());
        }
        let kid = self.fresh_kid(start)?;
        let key = PrivateKey::generate(self.policy.algorithm, &kid)?;
        self.add(key, now, start)
    }

    /// A key id for a key signing from `start`, unique across processes: the start and 48 random bits.
    fn fresh_kid(&mut self, start: Timestamp) -> Result<String, TokenError> {
        self.minted += 1;
        let mut tag = [0u8; 6];
        crate::key::rng_fill(&mut tag)?;
        let tag: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        Ok(format!("k{}-{tag}", start.unix_seconds()))
    }

    /// Adds an existing key (for example one read back from encrypted storage) that signs from
    /// `signs_from` for the policy's period; it is published from `now`.
    pub fn add(&mut self, key: PrivateKey, now: Timestamp, signs_from: Timestamp) -> Result<(), TokenError> {
        if self.keys.iter().any(|k| k.key.kid() == key.kid()) {
            return Err(TokenError::Key(format!("duplicate kid `{}`", key.kid())));
        }
        let signs_until = signs_from
            .checked_add_seconds(self.policy.sign_for)
            .ok_or_else(|| TokenError::Key("signing period out of range".into()))?;
        self.keys.push(ScheduledKey { key, published_at: now.min(signs_from), signs_from, signs_until });
        Ok(())
    }

    /// Adds a key with its schedule as it was stored (the schedule is taken as given).
    pub fn insert(&mut self, key: ScheduledKey) -> Result<(), TokenError> {
        if self.keys.iter().any(|k| k.key.kid() == key.key.kid()) {
            return Err(TokenError::Key(format!("duplicate kid `{}`", key.key.kid())));
        }
        if key.signs_until < key.signs_from || key.signs_from < key.published_at {
            return Err(TokenError::Key(format!("key `{}` has an impossible schedule", key.key.kid())));
        }
        self.keys.push(key);
        Ok(())
    }

    /// Rotates now, off schedule (an operator's request): a new key is published at once and signs from
    /// `now + lead`; every key signing then stops at that instant and is retired (kept published for
    /// [`RETIRED_KEEP_SECONDS`]). Tokens in flight stay valid, and a verifier that has not seen the new
    /// key yet has `lead` seconds to fetch it. Returns the new key's id.
    pub fn rotate_now(&mut self, now: Timestamp, lead: i64) -> Result<String, TokenError> {
        let start = now.checked_add_seconds(lead.max(0)).ok_or_else(|| TokenError::Key("lead out of range".into()))?;
        // A successor already scheduled after `start` would take over later; it is superseded.
        self.keys.retain(|k| k.signs_from <= start);
        for k in &mut self.keys {
            if k.signs_until > start {
                k.signs_until = start.max(k.signs_from);
            }
        }
        let kid = self.fresh_kid(start)?;
        let key = PrivateKey::generate(self.policy.algorithm, &kid)?;
        self.add(key, now, start)?;
        Ok(kid)
    }

    /// The key that signs at `now`: the most recently started of those in their signing period.
    pub fn signer(&self, now: Timestamp) -> Option<&PrivateKey> {
        self.keys.iter().filter(|k| k.signs_at(now)).max_by_key(|k| k.signs_from).map(|k| &k.key)
    }

    /// The JWKS to publish at `now`: every key published and not yet removed.
    pub fn jwks(&self, now: Timestamp) -> Result<Jwks, TokenError> {
        Jwks::from_keys(self.keys.iter().filter(|k| k.is_published_at(now)).map(|k| &k.key))
    }

    /// Every key with its schedule.
    pub fn keys(&self) -> &[ScheduledKey] {
        &self.keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_published_before_they_sign_and_kept_after() {
        let policy = RotationPolicy { publish_ahead: 600, sign_for: 3600, algorithm: Algorithm::EdDSA };
        let mut set = KeySet::new(policy);
        let t0 = Timestamp::from_unix(1_767_225_600);
        let at = |s: i64| t0.checked_add_seconds(s).unwrap();
        set.rotate(t0).unwrap();
        let first = set.signer(t0).unwrap().kid().to_owned();
        set.rotate(at(3600 - 601)).unwrap();
        assert_eq!(set.keys().len(), 1, "not yet time to publish the successor");
        set.rotate(at(3600 - 600)).unwrap();
        assert_eq!(set.keys().len(), 2, "the successor is published 10 minutes ahead");
        let second = set.keys()[1].key.kid().to_owned();
        assert!(set.jwks(at(3000)).unwrap().get(&second).is_some(), "published");
        assert_eq!(set.signer(at(3599)).unwrap().kid(), first, "but not signing yet");
        assert_eq!(set.signer(at(3600)).unwrap().kid(), second, "takes over at the end of the period");
        // The retired key stays published until its last token expired plus the largest leeway.
        let gone = 3600 + RETIRED_KEEP_SECONDS;
        set.rotate(at(gone - 1)).unwrap();
        assert!(set.jwks(at(gone - 1)).unwrap().get(&first).is_some());
        set.rotate(at(gone)).unwrap();
        assert!(set.jwks(at(gone)).unwrap().get(&first).is_none());
        assert!(set.keys().iter().all(|k| k.key.kid() != first), "and then removed");
        set.rotate(at(gone)).unwrap();
        assert_eq!(set.keys().len(), 1, "rotation is idempotent");
    }

    #[test]
    fn an_operator_rotation_publishes_first_and_retires_the_old_key() {
        let mut set = KeySet::new(RotationPolicy::default());
        let t0 = Timestamp::from_unix(1_767_225_600);
        let at = |s: i64| t0.checked_add_seconds(s).unwrap();
        set.rotate(t0).unwrap();
        let old = set.signer(t0).unwrap().kid().to_owned();
        let new = set.rotate_now(at(100), 5).unwrap();
        assert_ne!(old, new);
        assert!(set.jwks(at(100)).unwrap().get(&new).is_some(), "published at once");
        assert_eq!(set.signer(at(104)).unwrap().kid(), old, "the old key signs during the lead");
        assert_eq!(set.signer(at(105)).unwrap().kid(), new);
        let gone = 105 + RETIRED_KEEP_SECONDS;
        assert!(set.jwks(at(gone - 1)).unwrap().get(&old).is_some(), "kept until its tokens expired");
        assert!(set.jwks(at(gone)).unwrap().get(&old).is_none());
        // A stored key comes back with its schedule; a duplicate or impossible one is refused.
        let mut copy = KeySet::new(RotationPolicy::default());
        let k = &set.keys()[1];
        let again = PrivateKey::import_encrypted(
            &k.key.export_encrypted(&crate::Kek::generate().unwrap()).unwrap(),
            &crate::Kek::generate().unwrap(),
        );
        assert!(again.is_err(), "another KEK does not open it");
        let kek = crate::Kek::generate().unwrap();
        let key = PrivateKey::import_encrypted(&k.key.export_encrypted(&kek).unwrap(), &kek).unwrap();
        let sched =
            ScheduledKey { key, published_at: k.published_at, signs_from: k.signs_from, signs_until: k.signs_until };
        copy.insert(sched).unwrap();
        assert_eq!(copy.signer(at(105)).unwrap().kid(), new);
        let key = PrivateKey::import_encrypted(&k.key.export_encrypted(&kek).unwrap(), &kek).unwrap();
        let dup =
            ScheduledKey { key, published_at: k.published_at, signs_from: k.signs_from, signs_until: k.signs_until };
        assert!(copy.insert(dup).is_err());
    }
}
