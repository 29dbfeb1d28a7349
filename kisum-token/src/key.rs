//! Keys: signing keys (private, redacted, zeroized, exported only encrypted), public keys pinned to one
//! algorithm each, key-encryption keys, and JWK sets read strictly.

use std::collections::HashMap;
use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use jsonwebtoken::DecodingKey;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use zeroize::Zeroizing;

use crate::error::TokenError;
use crate::jws::{b64, b64_encode, strict_object};

/// The signature algorithms Kisum accepts. Both are asymmetric; there is no way to ask for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Algorithm {
    /// Ed25519 (the default).
    EdDSA,
    /// ECDSA over P-256 with SHA-256, signatures as raw 64-byte r‖s.
    ES256,
}

impl Algorithm {
    /// The JOSE name (`EdDSA`, `ES256`).
    pub fn jose_name(self) -> &'static str {
        match self {
            Algorithm::EdDSA => "EdDSA",
            Algorithm::ES256 => "ES256",
        }
    }

    /// The algorithm of a JOSE name; names are case-sensitive (RFC 7515).
    pub fn from_jose(name: &str) -> Option<Algorithm> {
        match name {
            "EdDSA" => Some(Algorithm::EdDSA),
            "ES256" => Some(Algorithm::ES256),
            _ => None,
        }
    }

    fn jsonwebtoken(self) -> jsonwebtoken::Algorithm {
        match self {
            Algorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
            Algorithm::ES256 => jsonwebtoken::Algorithm::ES256,
        }
    }
}

enum Pair {
    Ed(Ed25519KeyPair),
    Ec(EcdsaKeyPair),
}

/// A signing key. Its secret never appears in `Debug` output, is zeroized when dropped (the PKCS#8
/// document here, the key schedule inside aws-lc), and leaves the process only encrypted under a
/// [`Kek`].
pub struct PrivateKey {
    kid: String,
    alg: Algorithm,
    pkcs8: Zeroizing<Vec<u8>>,
    pair: Pair,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("key", &"[redacted]")
            .finish()
    }
}

pub(crate) fn rng_fill(bytes: &mut [u8]) -> Result<(), TokenError> {
    SystemRandom::new().fill(bytes).map_err(|_| TokenError::Key("the system random generator failed".into()))
}

impl PrivateKey {
    /// A fresh key for `alg`, named `kid`.
    pub fn generate(alg: Algorithm, kid: &str) -> Result<PrivateKey, TokenError> {
        let rng = SystemRandom::new();
        let pkcs8 = match alg {
            Algorithm::EdDSA => Ed25519KeyPair::generate_pkcs8(&rng).map(|d| d.as_ref().to_vec()),
            Algorithm::ES256 => {
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).map(|d| d.as_ref().to_vec())
            }
        }
        .map_err(|_| TokenError::Key("key generation failed".into()))?;
        PrivateKey::from_pkcs8(alg, kid, Zeroizing::new(pkcs8))
    }

    fn from_pkcs8(alg: Algorithm, kid: &str, pkcs8: Zeroizing<Vec<u8>>) -> Result<PrivateKey, TokenError> {
        if kid.is_empty() || kid.len() > 128 {
            return Err(TokenError::Key("a kid has 1 to 128 characters".into()));
        }
        let pair = match alg {
            Algorithm::EdDSA => Ed25519KeyPair::from_pkcs8(&pkcs8).map(Pair::Ed).ok(),
            Algorithm::ES256 => EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8).map(Pair::Ec).ok(),
        }
        .ok_or_else(|| TokenError::Key(format!("not a {} private key", alg.jose_name())))?;
        Ok(PrivateKey { kid: kid.to_owned(), alg, pkcs8, pair })
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// Signs `message`: Ed25519, or ECDSA P-256 as raw r‖s.
    pub(crate) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, TokenError> {
        match &self.pair {
            Pair::Ed(pair) => Ok(pair.sign(message).as_ref().to_vec()),
            Pair::Ec(pair) => pair
                .sign(&SystemRandom::new(), message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| TokenError::Key("signing failed".into())),
        }
    }

    /// The public half as a JWK (with `kid`, `alg` and `use: sig`).
    pub fn public_jwk(&self) -> Jwk {
        match &self.pair {
            Pair::Ed(pair) => Jwk::okp(&self.kid, pair.public_key().as_ref()),
            Pair::Ec(pair) => {
                let point = pair.public_key().as_ref();
                Jwk::ec(&self.kid, point.get(1..33).unwrap_or_default(), point.get(33..65).unwrap_or_default())
            }
        }
    }

    /// The public half, ready to verify.
    pub fn public_key(&self) -> Result<PublicKey, TokenError> {
        PublicKey::from_jwk(&self.public_jwk())?.ok_or_else(|| TokenError::Key("unusable public key".into()))
    }

    /// The key encrypted under `kek` (AES-256-GCM, the kid and algorithm authenticated), as JSON.
    pub fn export_encrypted(&self, kek: &Kek) -> Result<String, TokenError> {
        let mut nonce = [0u8; 12];
        rng_fill(&mut nonce)?;
        let mut sealed = self.pkcs8.to_vec();
        kek.cipher()?
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), aad(&self.kid, self.alg), &mut sealed)
            .map_err(|_| TokenError::Key("encryption failed".into()))?;
        let file = KeyFile {
            format: KEY_FORMAT.into(),
            kid: self.kid.clone(),
            alg: self.alg,
            nonce: b64_encode(&nonce),
            ciphertext: b64_encode(&sealed),
        };
        serde_json::to_string_pretty(&file).map_err(|e| TokenError::Key(e.to_string()))
    }

    /// Reads a key exported by [`export_encrypted`](PrivateKey::export_encrypted).
    pub fn import_encrypted(text: &str, kek: &Kek) -> Result<PrivateKey, TokenError> {
        let file: KeyFile = serde_json::from_str(text).map_err(|_| TokenError::Key("not a Kisum key file".into()))?;
        if file.format != KEY_FORMAT {
            return Err(TokenError::Key(format!("unknown key file format (expected {KEY_FORMAT})")));
        }
        let nonce: [u8; 12] =
            b64(&file.nonce).ok().and_then(|n| n.try_into().ok()).ok_or_else(|| TokenError::Key("bad nonce".into()))?;
        let mut sealed = Zeroizing::new(b64(&file.ciphertext).map_err(|_| TokenError::Key("bad ciphertext".into()))?);
        let plain = kek
            .cipher()?
            .open_in_place(Nonce::assume_unique_for_key(nonce), aad(&file.kid, file.alg), &mut sealed)
            .map_err(|_| TokenError::Key("wrong key-encryption key, or the file was altered".into()))?;
        PrivateKey::from_pkcs8(file.alg, &file.kid, Zeroizing::new(plain.to_vec()))
    }
}

const KEY_FORMAT: &str = "kisum-key/v1";

fn aad(kid: &str, alg: Algorithm) -> Aad<Vec<u8>> {
    Aad::from(format!("{KEY_FORMAT}|{kid}|{}", alg.jose_name()).into_bytes())
}

fn sealed_aad(purpose: &str) -> Aad<Vec<u8>> {
    Aad::from(format!("kisum-sealed/v1|{purpose}").into_bytes())
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    format: String,
    kid: String,
    alg: Algorithm,
    nonce: String,
    ciphertext: String,
}

/// A key-encryption key: 32 bytes supplied by the operator, used to store signing keys encrypted. A clone
/// is zeroed on drop too.
#[derive(Clone)]
pub struct Kek(Zeroizing<[u8; 32]>);

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Kek([redacted])")
    }
}

impl Kek {
    /// A fresh random KEK.
    pub fn generate() -> Result<Kek, TokenError> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rng_fill(bytes.as_mut())?;
        Ok(Kek(bytes))
    }

    /// Reads a KEK written as 64 hex digits or as base64/base64url of 32 bytes (surrounding whitespace
    /// ignored).
    pub fn from_text(text: &str) -> Result<Kek, TokenError> {
        let text = text.trim();
        let bytes: Zeroizing<Vec<u8>> =
            Zeroizing::new(if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
                (0..32)
                    .filter_map(|i| text.get(2 * i..2 * i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
                    .collect()
            } else {
                use base64::Engine;
                let engines = [
                    base64::engine::general_purpose::STANDARD,
                    base64::engine::general_purpose::URL_SAFE,
                    base64::engine::general_purpose::URL_SAFE_NO_PAD,
                    base64::engine::general_purpose::STANDARD_NO_PAD,
                ];
                engines.iter().find_map(|e| e.decode(text).ok()).unwrap_or_default()
            });
        let array: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| TokenError::Key("a key-encryption key is 32 bytes, as 64 hex digits or base64".into()))?;
        Ok(Kek(Zeroizing::new(array)))
    }

    /// The KEK as 64 hex digits, to hand to an operator once.
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(self.0.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// Encrypts `plain` (AES-256-GCM, fresh random nonce) for `purpose`, which is authenticated: a value
    /// sealed for one purpose does not open for another. The result is `nonce.ciphertext` in base64url.
    pub fn seal(&self, purpose: &str, plain: &[u8]) -> Result<String, TokenError> {
        let mut nonce = [0u8; 12];
        rng_fill(&mut nonce)?;
        let mut sealed = plain.to_vec();
        self.cipher()?
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), sealed_aad(purpose), &mut sealed)
            .map_err(|_| TokenError::Key("encryption failed".into()))?;
        Ok(format!("{}.{}", b64_encode(&nonce), b64_encode(&sealed)))
    }

    /// Decrypts what [`seal`](Kek::seal) produced for the same `purpose`; an error if the KEK or the
    /// purpose differ or the text was altered.
    pub fn open(&self, purpose: &str, text: &str) -> Result<Zeroizing<Vec<u8>>, TokenError> {
        let altered = || TokenError::Key("wrong key-encryption key, or the sealed value was altered".into());
        let (nonce, sealed) = text.split_once('.').ok_or_else(altered)?;
        let nonce: [u8; 12] = b64(nonce).ok().and_then(|n| n.try_into().ok()).ok_or_else(altered)?;
        let mut sealed = Zeroizing::new(b64(sealed).map_err(|_| altered())?);
        let plain = self
            .cipher()?
            .open_in_place(Nonce::assume_unique_for_key(nonce), sealed_aad(purpose), &mut sealed)
            .map_err(|_| altered())?;
        Ok(Zeroizing::new(plain.to_vec()))
    }

    fn cipher(&self) -> Result<LessSafeKey, TokenError> {
        UnboundKey::new(&AES_256_GCM, self.0.as_ref())
            .map(LessSafeKey::new)
            .map_err(|_| TokenError::Key("unusable key-encryption key".into()))
    }
}

/// A public JSON Web Key as Kisum publishes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// `OKP` or `EC`.
    pub kty: String,
    /// `Ed25519` or `P-256`.
    pub crv: String,
    /// The public key (Ed25519) or its x coordinate (P-256), base64url.
    pub x: String,
    /// The y coordinate (P-256), base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// The key id.
    pub kid: String,
    /// The algorithm the key is pinned to.
    pub alg: String,
    /// Always `sig`.
    #[serde(rename = "use")]
    pub use_: String,
}

impl Jwk {
    fn okp(kid: &str, public: &[u8]) -> Jwk {
        Jwk {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x: b64_encode(public),
            y: None,
            kid: kid.into(),
            alg: "EdDSA".into(),
            use_: "sig".into(),
        }
    }

    fn ec(kid: &str, x: &[u8], y: &[u8]) -> Jwk {
        Jwk {
            kty: "EC".into(),
            crv: "P-256".into(),
            x: b64_encode(x),
            y: Some(b64_encode(y)),
            kid: kid.into(),
            alg: "ES256".into(),
            use_: "sig".into(),
        }
    }
}

/// A public key pinned to one algorithm.
#[derive(Clone)]
pub struct PublicKey {
    alg: Algorithm,
    key: DecodingKey,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey").field("alg", &self.alg).finish_non_exhaustive()
    }
}

impl PublicKey {
    /// The algorithm the key is pinned to.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// An Ed25519 public key from its 32 bytes.
    pub fn ed25519(public: &[u8]) -> Result<PublicKey, TokenError> {
        PublicKey::from_jwk(&Jwk::okp("k", public))?.ok_or_else(|| TokenError::Key("bad Ed25519 key".into()))
    }

    /// A P-256 public key from its uncompressed point (65 bytes, `04‖x‖y`).
    pub fn p256(point: &[u8]) -> Result<PublicKey, TokenError> {
        match (point.first(), point.get(1..33), point.get(33..65), point.len()) {
            (Some(4), Some(x), Some(y), 65) => {
                PublicKey::from_jwk(&Jwk::ec("k", x, y))?.ok_or_else(|| TokenError::Key("bad P-256 key".into()))
            }
            _ => Err(TokenError::Key("a P-256 key is an uncompressed point of 65 bytes".into())),
        }
    }

    /// Verifies a raw signature over `message` with this key's pinned algorithm.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        self.verify_segment(message, &b64_encode(signature))
    }

    /// Verifies a base64url signature segment, through jsonwebtoken's aws-lc backend.
    pub(crate) fn verify_segment(&self, message: &[u8], signature: &str) -> bool {
        jsonwebtoken::crypto::verify(signature, message, &self.key, self.alg.jsonwebtoken()).unwrap_or(false)
    }

    /// The key of a JWK we can use, `None` for one of a type we ignore; an error for a symmetric key or
    /// one whose declared `alg` contradicts its type.
    fn from_jwk(jwk: &Jwk) -> Result<Option<PublicKey>, TokenError> {
        let (alg, key) = match (jwk.kty.as_str(), jwk.crv.as_str()) {
            ("OKP", "Ed25519") => {
                let x = b64(&jwk.x).map_err(|_| TokenError::Jwks(format!("key `{}`: bad x", jwk.kid)))?;
                if x.len() != 32 {
                    return Err(TokenError::Jwks(format!("key `{}`: an Ed25519 key is 32 bytes", jwk.kid)));
                }
                (Algorithm::EdDSA, DecodingKey::from_ed_components(&jwk.x))
            }
            ("EC", "P-256") => {
                let y = jwk.y.as_deref().ok_or_else(|| TokenError::Jwks(format!("key `{}`: no y", jwk.kid)))?;
                let lengths = (b64(&jwk.x).map(|v| v.len()), b64(y).map(|v| v.len()));
                if lengths != (Ok(32), Ok(32)) {
                    return Err(TokenError::Jwks(format!("key `{}`: P-256 coordinates are 32 bytes", jwk.kid)));
                }
                (Algorithm::ES256, DecodingKey::from_ec_components(&jwk.x, y))
            }
            _ => return Ok(None),
        };
        if Algorithm::from_jose(&jwk.alg) != Some(alg) {
            return Err(TokenError::Jwks(format!("key `{}`: alg `{}` does not match its type", jwk.kid, jwk.alg)));
        }
        let key = key.map_err(|_| TokenError::Jwks(format!("key `{}`: unusable", jwk.kid)))?;
        Ok(Some(PublicKey { alg, key }))
    }
}

/// A JWK set: public keys by `kid`, each pinned to its algorithm.
#[derive(Debug, Clone, Default)]
pub struct Jwks {
    keys: HashMap<String, PublicKey>,
    published: Vec<Jwk>,
}

impl Jwks {
    /// The key ids, in publication order.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.published.iter().map(|k| k.kid.as_str())
    }

    /// The set of the given keys (what Auth publishes).
    pub fn from_keys<'a>(keys: impl IntoIterator<Item = &'a PrivateKey>) -> Result<Jwks, TokenError> {
        let mut set = Jwks::default();
        for key in keys {
            let jwk = key.public_jwk();
            if set.keys.contains_key(&jwk.kid) {
                return Err(TokenError::Jwks(format!("duplicate kid `{}`", jwk.kid)));
            }
            set.keys.insert(jwk.kid.clone(), key.public_key()?);
            set.published.push(jwk);
        }
        Ok(set)
    }

    /// Reads any standard RFC 7517 JWK set. Refused whole: not JSON, duplicate keys in an object, no
    /// `keys` array, a symmetric (`oct`) key, a duplicate `kid`, or a key whose `alg` contradicts its
    /// type. Ignored: keys of other types or curves, keys with `use` other than `sig`, keys without a
    /// `kid` (a token must name its key). The algorithm of each key is pinned from its `alg`, or from
    /// `kty`/`crv` when absent.
    pub fn parse(text: &str) -> Result<Jwks, TokenError> {
        let doc = strict_object(text.as_bytes(), "x").map_err(|_| TokenError::Jwks("not a JSON object".into()))?;
        let Some(Value::Array(entries)) = doc.get("keys") else {
            return Err(TokenError::Jwks("no `keys` array".into()));
        };
        let mut set = Jwks::default();
        let mut kids = std::collections::HashSet::new();
        for (i, entry) in entries.iter().enumerate() {
            let Value::Object(obj) = entry else { return Err(TokenError::Jwks(format!("key {i} is not an object"))) };
            let text = |k: &str| obj.get(k).and_then(Value::as_str);
            let kty = text("kty").ok_or_else(|| TokenError::Jwks(format!("key {i} has no kty")))?;
            if kty == "oct" {
                return Err(TokenError::Jwks("a JWK set never holds a symmetric key".into()));
            }
            let Some(kid) = text("kid") else { continue };
            if !kids.insert(kid.to_owned()) {
                return Err(TokenError::Jwks(format!("duplicate kid `{}`", clip(kid))));
            }
            if text("use").is_some_and(|u| u != "sig") {
                continue;
            }
            let crv = text("crv").unwrap_or_default();
            let pinned = match (kty, crv) {
                ("OKP", "Ed25519") => "EdDSA",
                ("EC", "P-256") => "ES256",
                _ => continue,
            };
            let jwk = Jwk {
                kty: kty.into(),
                crv: crv.into(),
                x: text("x").unwrap_or_default().into(),
                y: text("y").map(str::to_owned),
                kid: kid.into(),
                alg: text("alg").unwrap_or(pinned).into(),
                use_: "sig".into(),
            };
            if let Some(key) = PublicKey::from_jwk(&jwk)? {
                set.keys.insert(jwk.kid.clone(), key);
                set.published.push(jwk);
            }
        }
        Ok(set)
    }

    /// The key named `kid`.
    pub fn get(&self, kid: &str) -> Option<&PublicKey> {
        self.keys.get(kid)
    }

    /// The number of usable keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set has no usable key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The set as JSON, `{"keys":[…]}`, as published at `/.well-known/jwks.json`.
    pub fn to_json(&self) -> String {
        serde_json::json!({ "keys": self.published }).to_string()
    }
}

fn clip(text: &str) -> String {
    text.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_kek_and_purpose() {
        let kek = Kek::generate().unwrap();
        let sealed = kek.seal("answer", b"secret answer").unwrap();
        assert!(!sealed.contains("secret"));
        assert_eq!(kek.open("answer", &sealed).unwrap().as_slice(), b"secret answer");
        assert_ne!(kek.seal("answer", b"secret answer").unwrap(), sealed, "a fresh nonce each time");
        assert!(kek.open("other", &sealed).is_err(), "the purpose is authenticated");
        assert!(Kek::generate().unwrap().open("answer", &sealed).is_err());
        let mut altered = sealed.clone();
        altered.push('A');
        assert!(kek.open("answer", &altered).is_err());
        assert!(kek.open("answer", "no-dot").is_err());
    }

    #[test]
    fn keys_are_redacted_and_exported_only_encrypted() {
        let key = PrivateKey::generate(Algorithm::EdDSA, "k1").unwrap();
        let debug = format!("{key:?}");
        assert!(debug.contains("[redacted]") && debug.contains("k1"));
        let kek = Kek::generate().unwrap();
        assert_eq!(format!("{kek:?}"), "Kek([redacted])");
        let file = key.export_encrypted(&kek).unwrap();
        assert!(!file.contains(&b64_encode(&key.pkcs8)), "the secret is not in the file");
        let back = PrivateKey::import_encrypted(&file, &kek).unwrap();
        assert_eq!(back.public_jwk(), key.public_jwk());
        // Another KEK, a tampered ciphertext or a changed kid all fail.
        assert!(PrivateKey::import_encrypted(&file, &Kek::generate().unwrap()).is_err());
        let mut doc: serde_json::Value = serde_json::from_str(&file).unwrap();
        doc["kid"] = "k2".into();
        assert!(PrivateKey::import_encrypted(&doc.to_string(), &kek).is_err(), "the kid is authenticated");
        assert!(PrivateKey::import_encrypted("{}", &kek).is_err());
        // The KEK reads back from its hex and base64 forms; anything else is refused.
        let hex = kek.to_hex();
        let again = Kek::from_text(&format!("  {}\n", hex.as_str())).unwrap();
        assert_eq!(PrivateKey::import_encrypted(&file, &again).unwrap().kid(), "k1");
        assert!(Kek::from_text("too short").is_err());
        assert!(Kek::from_text(&"00".repeat(31)).is_err());
    }

    #[test]
    fn es256_keys_round_trip_too() {
        let key = PrivateKey::generate(Algorithm::ES256, "ec").unwrap();
        let jwk = key.public_jwk();
        assert_eq!((jwk.kty.as_str(), jwk.crv.as_str(), jwk.alg.as_str()), ("EC", "P-256", "ES256"));
        let sig = key.sign(b"msg").unwrap();
        assert_eq!(sig.len(), 64, "raw r||s");
        assert!(key.public_key().unwrap().verify(b"msg", &sig));
        assert!(!key.public_key().unwrap().verify(b"msh", &sig));
    }

    #[test]
    fn foreign_jwk_sets_are_read_strictly() {
        let ed = PrivateKey::generate(Algorithm::EdDSA, "a").unwrap().public_jwk();
        let ec = PrivateKey::generate(Algorithm::ES256, "b").unwrap().public_jwk();
        let mut ed_no_alg = serde_json::to_value(&ed).unwrap();
        ed_no_alg.as_object_mut().unwrap().remove("alg");
        ed_no_alg["kid"] = "c".into();
        let set = serde_json::json!({ "keys": [
            ed, ec, ed_no_alg,
            { "kty": "RSA", "kid": "r", "n": "AQAB", "e": "AQAB" },
            { "kty": "OKP", "crv": "X25519", "kid": "x", "x": "AAAA" },
            { "kty": "EC", "crv": "P-384", "kid": "p", "x": "AA", "y": "AA" },
            { "kty": "OKP", "crv": "Ed25519", "x": ed_no_alg["x"] },
            { "kty": "OKP", "crv": "Ed25519", "kid": "enc", "use": "enc", "x": ed_no_alg["x"] }
        ]});
        let jwks = Jwks::parse(&set.to_string()).unwrap();
        assert_eq!(jwks.len(), 3, "RSA, other curves, kid-less and encryption keys are ignored");
        assert_eq!(jwks.get("c").unwrap().algorithm(), Algorithm::EdDSA, "pinned from kty/crv");
        assert_eq!(jwks.get("b").unwrap().algorithm(), Algorithm::ES256);
        let reparsed = Jwks::parse(&jwks.to_json()).unwrap();
        assert_eq!(reparsed.len(), 3);

        let refuse = |keys: serde_json::Value| Jwks::parse(&serde_json::json!({ "keys": keys }).to_string()).is_err();
        let ed = serde_json::to_value(PrivateKey::generate(Algorithm::EdDSA, "a").unwrap().public_jwk()).unwrap();
        assert!(refuse(serde_json::json!([{ "kty": "oct", "kid": "h", "k": "c2VjcmV0" }])), "symmetric");
        assert!(refuse(serde_json::json!([ed, ed])), "duplicate kid");
        let mut lying = ed.clone();
        lying["alg"] = "HS256".into();
        assert!(refuse(serde_json::json!([lying])), "alg contradicts the key type");
        let mut short = ed.clone();
        short["x"] = "AAAA".into();
        assert!(refuse(serde_json::json!([short])), "wrong key length");
        assert!(refuse(serde_json::json!([{ "kid": "no-kty" }])));
        assert!(Jwks::parse("{\"keys\":{}}").is_err());
        assert!(Jwks::parse("not json").is_err());
        assert!(Jwks::parse(r#"{"keys":[],"keys":[]}"#).is_err());
    }
}
