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
        self.minted += 1;
        let kid = format!("k{}-{}", start.unix_seconds(), self.minted);
        let key = PrivateKey::generate(self.policy.algorithm, &kid)?;
        self.add(key, now, start)
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
}
