//! Signing and verification. The verifier checks, in this order: size, segments and encoding, header
//! (RFC 8725), key and pinned algorithm, signature, claims (types, issuer, kind and ids, lifetime, `act`
//! depth), what the call expects (audience, kind), and last time — so that `TOKEN_EXPIRED` is only ever
//! said of a token that was genuine and meant for the route.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};

use kisum_entitlements::Timestamp;
use serde_json::Value;

use crate::claims::{Claims, TokenKind, VerifiedClaims};
use crate::error::TokenError;
use crate::jws::{UnverifiedToken, b64_encode, header_json};
use crate::key::{Jwks, PrivateKey};

/// The largest leeway a verifier may allow, in seconds.
pub const MAX_LEEWAY_SECONDS: u32 = 60;
/// The default leeway, in seconds.
pub const DEFAULT_LEEWAY_SECONDS: u32 = 30;

/// Signs `claims` as an access token (`typ: at+jwt`) with `key`. Refuses claims a verifier would refuse
/// for their shape, so that a signer never issues a token that cannot be used.
pub fn sign(key: &PrivateKey, claims: &Claims) -> Result<String, TokenError> {
    claims.check_for_signing()?;
    let header = b64_encode(header_json(key.algorithm(), key.kid()).as_bytes());
    let payload = serde_json::to_vec(claims).map_err(|e| TokenError::Claims(e.to_string()))?;
    let signing_input = format!("{header}.{}", b64_encode(&payload));
    let signature = key.sign(signing_input.as_bytes())?;
    Ok(format!("{signing_input}.{}", b64_encode(&signature)))
}

/// Which kinds of token a route accepts. Defaults to [`Accept::User`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Accept {
    /// User tokens only.
    #[default]
    User,
    /// Service tokens only.
    Service,
    /// Both ("dual auth"): a service token is then allowed only what its scopes match
    /// ([`VerifiedClaims::scope_allows`]).
    Both,
}

impl Accept {
    /// Whether a token of `kind` is accepted.
    pub fn admits(self, kind: TokenKind) -> bool {
        matches!(
            (self, kind),
            (Accept::User | Accept::Both, TokenKind::User) | (Accept::Service | Accept::Both, TokenKind::Service)
        )
    }
}

/// What one call requires of a token, on top of what its verifier requires of every token (the
/// [`Validation`]): so one verifier — one issuer, one key set, one cache — serves routes with different
/// needs. An [`Accept`] converts into the `Expect` with that accept and the verifier's audience.
///
/// ```
/// use kisum_token::{Accept, Expect};
///
/// assert_eq!(Expect::default(), Expect::new(Accept::User));
/// let finance_dual = Expect::new(Accept::Both).with_audience("finance");
/// assert_eq!(finance_dual, Expect { accept: Accept::Both, audience: Some("finance") });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Expect<'a> {
    /// The kinds of token accepted. Defaults to [`Accept::User`].
    pub accept: Accept,
    /// The audience `aud` must name. Defaults to `None`: the verifier's [`Validation::audience`].
    pub audience: Option<&'a str>,
}

impl<'a> Expect<'a> {
    /// Tokens of the kinds `accept` names, for the verifier's audience.
    pub const fn new(accept: Accept) -> Expect<'a> {
        Expect { accept, audience: None }
    }

    /// The same, but for tokens whose `aud` names `audience` instead of the verifier's audience.
    pub const fn with_audience(self, audience: &'a str) -> Expect<'a> {
        Expect { audience: Some(audience), ..self }
    }
}

impl From<Accept> for Expect<'_> {
    fn from(accept: Accept) -> Self {
        Expect::new(accept)
    }
}

/// What a verifier requires of every token. Every field has a secure default or must be given; what
/// varies by route (the kinds of token accepted, another audience) is given per call, as an [`Expect`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validation {
    /// The required `iss`.
    pub issuer: String,
    /// The audience that `aud` must name — this service — unless a call names another
    /// ([`Expect::audience`]).
    pub audience: String,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds. Defaults to 30; at most 60.
    pub leeway: u32,
}

impl Validation {
    /// A validation for tokens from `issuer` meant for `audience`, with the defaults.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Validation {
        Validation { issuer: issuer.into(), audience: audience.into(), leeway: DEFAULT_LEEWAY_SECONDS }
    }
}

const CACHE_SHARDS: usize = 16;
/// Verified tokens kept per verifier, at most.
pub const CACHE_CAPACITY: usize = 16 * 1024;

struct CacheEntry {
    token: Box<str>,
    claims: Arc<VerifiedClaims>,
}

/// Verified tokens, keyed by a keyed hash of the token and confirmed by comparing the whole token, so a
/// token seen again costs a hash and a comparison instead of a signature check. An entry says the token
/// is genuine, not that it suits any one route: what a call expects (audience, kind) and the time rules
/// are re-checked on every hit. Entries never outlive their `exp`.
struct Cache {
    hasher: RandomState,
    shards: Vec<Mutex<HashMap<u64, CacheEntry>>>,
}

impl Cache {
    fn new() -> Cache {
        Cache { hasher: RandomState::new(), shards: (0..CACHE_SHARDS).map(|_| Mutex::new(HashMap::new())).collect() }
    }

    fn shard(&self, hash: u64) -> Option<&Mutex<HashMap<u64, CacheEntry>>> {
        self.shards.get((hash % CACHE_SHARDS as u64) as usize)
    }

    fn get(&self, hash: u64, token: &str) -> Option<Arc<VerifiedClaims>> {
        let shard = self.shard(hash)?.lock().ok()?;
        shard.get(&hash).filter(|e| &*e.token == token).map(|e| e.claims.clone())
    }

    fn insert(&self, hash: u64, token: &str, claims: Arc<VerifiedClaims>, now: Timestamp) {
        let Some(Ok(mut shard)) = self.shard(hash).map(Mutex::lock) else { return };
        if shard.len() >= CACHE_CAPACITY / CACHE_SHARDS {
            shard.retain(|_, e| Timestamp::from_unix(e.claims.claims().exp) > now);
            if shard.len() >= CACHE_CAPACITY / CACHE_SHARDS {
                shard.clear();
            }
        }
        shard.insert(hash, CacheEntry { token: token.into(), claims });
    }

    fn remove(&self, hash: u64) {
        if let Some(Ok(mut shard)) = self.shard(hash).map(Mutex::lock) {
            shard.remove(&hash);
        }
    }
}

/// Verifies access tokens against a JWK set. Immutable and `Send + Sync`: build one per key set and
/// share it; swap in a new one when the key set changes.
pub struct Verifier {
    jwks: Jwks,
    validation: Validation,
    cache: Option<Cache>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").field("keys", &self.jwks.len()).field("validation", &self.validation).finish()
    }
}

impl Verifier {
    /// A verifier with a cache of verified tokens. The leeway must be at most 60 s.
    pub fn new(jwks: Jwks, validation: Validation) -> Result<Verifier, TokenError> {
        if validation.leeway > MAX_LEEWAY_SECONDS {
            return Err(TokenError::Key(format!(
                "leeway {} s is above the {MAX_LEEWAY_SECONDS} s limit",
                validation.leeway
            )));
        }
        Ok(Verifier { jwks, validation, cache: Some(Cache::new()) })
    }

    /// The same verifier without the cache (every call checks the signature).
    pub fn without_cache(mut self) -> Verifier {
        self.cache = None;
        self
    }

    /// The key set.
    pub fn jwks(&self) -> &Jwks {
        &self.jwks
    }

    /// Verifies `token` at `now` for a call that `expect`s what it names: an [`Accept`] alone (the
    /// verifier's audience), or an [`Expect`] that also names another audience.
    pub fn verify<'a>(
        &self,
        token: &str,
        expect: impl Into<Expect<'a>>,
        now: Timestamp,
    ) -> Result<Arc<VerifiedClaims>, TokenError> {
        let expect = expect.into();
        if token.len() > crate::jws::MAX_TOKEN_BYTES {
            return Err(TokenError::Invalid("token larger than 8 KiB"));
        }
        let Some(cache) = &self.cache else {
            let claims = Arc::new(self.verify_uncached(token)?);
            self.check_call(&claims, expect, now)?;
            return Ok(claims);
        };
        let hash = cache.hasher.hash_one(token);
        if let Some(claims) = cache.get(hash, token) {
            if let Err(e) = self.check_call(&claims, expect, now) {
                if e == TokenError::Expired {
                    cache.remove(hash);
                }
                return Err(e);
            }
            return Ok(claims);
        }
        let claims = Arc::new(self.verify_uncached(token)?);
        self.check_call(&claims, expect, now)?;
        cache.insert(hash, token, claims.clone(), now);
        Ok(claims)
    }

    /// Everything that does not depend on the call or the time: what a cache entry vouches for.
    fn verify_uncached(&self, token: &str) -> Result<VerifiedClaims, TokenError> {
        let parsed = UnverifiedToken::parse(token)?;
        let key = self.jwks.get(&parsed.header.kid).ok_or(TokenError::UnknownKey)?;
        if key.algorithm() != parsed.header.alg {
            return Err(TokenError::Invalid("alg does not match the key's algorithm"));
        }
        if !key.verify_segment(parsed.signing_input.as_bytes(), parsed.signature) {
            return Err(TokenError::Invalid("bad signature"));
        }
        let object = crate::jws::strict_object(&parsed.payload, "claims are not a JSON object without duplicate keys")?;
        let claims: Claims = serde_json::from_value(Value::Object(object))
            .map_err(|_| TokenError::Invalid("a claim is missing or of the wrong type"))?;
        if claims.iss != self.validation.issuer {
            return Err(TokenError::Invalid("wrong issuer"));
        }
        VerifiedClaims::new(claims).map_err(TokenError::Invalid)
    }

    /// What this call expects (audience, kind), then time: checked on every call, cached or not.
    fn check_call(&self, verified: &VerifiedClaims, expect: Expect<'_>, now: Timestamp) -> Result<(), TokenError> {
        let audience = expect.audience.unwrap_or(&self.validation.audience);
        if !verified.claims().aud.contains(audience) {
            return Err(TokenError::Invalid("wrong audience"));
        }
        if !expect.accept.admits(verified.kind()) {
            return Err(TokenError::Invalid(match verified.kind() {
                TokenKind::User => "a user token where a service token is required",
                TokenKind::Service => "a service token where a user token is required",
            }));
        }
        self.check_time(verified.claims(), now)
    }

    /// `TOKEN_EXPIRED` iff now ≥ exp + leeway; `TOKEN_INVALID` if `nbf` or `iat` is later than
    /// now + leeway.
    fn check_time(&self, claims: &Claims, now: Timestamp) -> Result<(), TokenError> {
        let leeway = i64::from(self.validation.leeway);
        let at = |secs: i64| Timestamp::from_unix(secs);
        if now >= at(claims.exp.saturating_add(leeway)) {
            return Err(TokenError::Expired);
        }
        let latest = now.checked_add_seconds(leeway).unwrap_or(now);
        let future = |secs: i64| at(secs) > latest;
        if claims.nbf.is_some_and(future) {
            return Err(TokenError::Invalid("not valid yet (nbf)"));
        }
        if future(claims.iat) {
            return Err(TokenError::Invalid("issued in the future (iat)"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::Algorithm;

    #[test]
    fn the_cache_serves_repeats_but_never_past_exp() {
        let key = PrivateKey::generate(Algorithm::EdDSA, "k").unwrap();
        let verifier = Verifier::new(Jwks::from_keys([&key]).unwrap(), Validation::new("iss", "aud")).unwrap();
        let claims: Claims = serde_json::from_value(serde_json::json!({
            "iss": "iss", "sub": "alice", "aud": "aud", "exp": 1000, "iat": 500, "jti": "j",
            "cid": "acme", "sid": "s", "ver": 1 }))
        .unwrap();
        let token = sign(&key, &claims).unwrap();
        let first = verifier.verify(&token, Accept::User, Timestamp::from_unix(600)).unwrap();
        let second = verifier.verify(&token, Accept::User, Timestamp::from_unix(601)).unwrap();
        assert!(Arc::ptr_eq(&first, &second), "served from the cache");
        assert_eq!(verifier.verify(&token, Accept::User, Timestamp::from_unix(1030)).unwrap_err(), TokenError::Expired);
        assert_eq!(verifier.verify(&token, Accept::User, Timestamp::from_unix(1100)).unwrap_err(), TokenError::Expired);
        // A token differing in one character is never taken for a cached one.
        let mut bytes = token.clone().into_bytes();
        let last = bytes.len() - 1;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(bytes).unwrap();
        assert!(verifier.verify(&altered, Accept::User, Timestamp::from_unix(600)).is_err());
    }

    #[test]
    fn a_cache_hit_is_checked_against_what_each_call_expects() {
        let key = PrivateKey::generate(Algorithm::EdDSA, "k").unwrap();
        let verifier = Verifier::new(Jwks::from_keys([&key]).unwrap(), Validation::new("iss", "aud")).unwrap();
        let claims: Claims = serde_json::from_value(serde_json::json!({
            "iss": "iss", "sub": "service:billing", "aud": ["aud", "other"], "exp": 1000, "iat": 500, "jti": "j",
            "client_id": "billing", "scope": "finance:*" }))
        .unwrap();
        let token = sign(&key, &claims).unwrap();
        let now = Timestamp::from_unix(600);
        let first = verifier.verify(&token, Accept::Both, now).unwrap();
        let cache = verifier.cache.as_ref().unwrap();
        let cached = cache.get(cache.hasher.hash_one(&token), &token).unwrap();
        assert!(Arc::ptr_eq(&first, &cached), "cached after the first call");
        // Served from the cache, yet refused for a kind or an audience it does not satisfy.
        let wrong_kind = verifier.verify(&token, Accept::User, now).unwrap_err();
        assert_eq!(wrong_kind, TokenError::Invalid("a service token where a user token is required"));
        let elsewhere = Expect::new(Accept::Service).with_audience("elsewhere");
        assert_eq!(verifier.verify(&token, elsewhere, now).unwrap_err(), TokenError::Invalid("wrong audience"));
        // And still served to calls it does satisfy, by default audience or by another it names.
        let other = verifier.verify(&token, Expect::new(Accept::Service).with_audience("other"), now).unwrap();
        assert!(Arc::ptr_eq(&first, &other), "the same cache entry");
        assert!(Arc::ptr_eq(&first, &verifier.verify(&token, Accept::Service, now).unwrap()));
    }
}
