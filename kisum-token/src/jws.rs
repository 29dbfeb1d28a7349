//! Strict parsing of compact JWS: exactly three segments of unpadded base64url, JSON objects without
//! duplicate keys (at any depth), and a protected header checked against RFC 8725 before anything else
//! is looked at. Nothing here verifies a signature: the output is an [`UnverifiedToken`].

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::error::TokenError;
use crate::key::Algorithm;

/// The largest token accepted, in bytes; larger ones are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Header parameters that make a verifier fetch keys or certificates from elsewhere, embed a key, or
/// demand extensions we do not implement: their presence refuses the token.
const FORBIDDEN_HEADERS: [&str; 5] = ["crit", "jku", "x5u", "x5c", "jwk"];

/// Decodes unpadded base64url, refusing padding, the standard alphabet and non-canonical trailing bits.
pub(crate) fn b64(segment: &str) -> Result<Vec<u8>, TokenError> {
    URL_SAFE_NO_PAD.decode(segment).map_err(|_| TokenError::Invalid("a segment is not unpadded base64url"))
}

/// Encodes unpadded base64url.
pub(crate) fn b64_encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A JSON value parsed with every object checked for duplicate keys.
pub(crate) struct Strict(pub Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom("duplicate key"));
            }
            let Strict(value) = map.next_value()?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

/// Parses bytes as one strict JSON object.
pub(crate) fn strict_object(bytes: &[u8], what: &'static str) -> Result<Map<String, Value>, TokenError> {
    match serde_json::from_slice::<Strict>(bytes) {
        Ok(Strict(Value::Object(map))) => Ok(map),
        _ => Err(TokenError::Invalid(what)),
    }
}

/// The protected header, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The algorithm the token claims; verifiers compare it with the key's, never trust it.
    pub alg: Algorithm,
    /// The key id.
    pub kid: String,
}

/// A token split and parsed, with a well-formed header, whose signature has NOT been verified.
#[derive(Debug)]
pub struct UnverifiedToken<'a> {
    /// The checked header.
    pub header: Header,
    /// `header.payload`, the bytes the signature covers.
    pub(crate) signing_input: &'a str,
    /// The signature segment, still base64url.
    pub(crate) signature: &'a str,
    /// The decoded payload bytes (not yet parsed).
    pub(crate) payload: Vec<u8>,
}

impl<'a> UnverifiedToken<'a> {
    /// Splits and checks a compact JWS: size, segments, encoding, and the header rules of DESIGN.md §5
    /// (`typ` `at+jwt`, a supported asymmetric `alg`, a `kid`, none of `crit`/`jku`/`x5u`/`x5c`/`jwk`).
    pub fn parse(token: &'a str) -> Result<UnverifiedToken<'a>, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Invalid("token larger than 8 KiB"));
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(TokenError::Invalid("not a compact JWS of three segments"));
        };
        if h.is_empty() || p.is_empty() || s.is_empty() {
            return Err(TokenError::Invalid("empty segment"));
        }
        let header = parse_header(&b64(h)?)?;
        let payload = b64(p)?;
        b64(s)?;
        let signing_input = token.get(..h.len() + 1 + p.len()).ok_or(TokenError::Invalid("malformed token"))?;
        Ok(UnverifiedToken { header, signing_input, signature: s, payload })
    }
}

fn parse_header(bytes: &[u8]) -> Result<Header, TokenError> {
    let map = strict_object(bytes, "header is not a JSON object without duplicate keys")?;
    if FORBIDDEN_HEADERS.iter().any(|h| map.contains_key(*h)) {
        return Err(TokenError::Invalid("forbidden header parameter (crit, jku, x5u, x5c or jwk)"));
    }
    let alg = match map.get("alg") {
        Some(Value::String(alg)) if alg.eq_ignore_ascii_case("none") => {
            return Err(TokenError::Invalid("unsigned tokens (alg none) are refused"));
        }
        Some(Value::String(alg)) => {
            Algorithm::from_jose(alg).ok_or(TokenError::Invalid("algorithm not accepted (EdDSA or ES256 only)"))?
        }
        _ => return Err(TokenError::Invalid("header lacks alg")),
    };
    match map.get("typ") {
        Some(Value::String(typ))
            if typ.eq_ignore_ascii_case("at+jwt") || typ.eq_ignore_ascii_case("application/at+jwt") => {}
        _ => return Err(TokenError::Invalid("typ is not at+jwt")),
    }
    let kid = match map.get("kid") {
        Some(Value::String(kid)) if !kid.is_empty() && kid.len() <= 128 => kid.clone(),
        _ => return Err(TokenError::Invalid("header lacks a usable kid")),
    };
    Ok(Header { alg, kid })
}

/// A header for signing: `{"alg":…,"typ":"at+jwt","kid":…}`.
pub(crate) fn header_json(alg: Algorithm, kid: &str) -> String {
    let mut map = BTreeMap::new();
    map.insert("alg", alg.jose_name());
    map.insert("kid", kid);
    map.insert("typ", "at+jwt");
    serde_json::to_string(&map).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_json_refuses_duplicates_at_any_depth() {
        assert!(strict_object(br#"{"a":1,"b":{"c":[{"d":1}]}}"#, "x").is_ok());
        assert!(strict_object(br#"{"a":1,"a":2}"#, "x").is_err());
        assert!(strict_object(br#"{"a":{"b":1,"b":1}}"#, "x").is_err());
        assert!(strict_object(br#"{"a":[{"b":1,"b":1}]}"#, "x").is_err());
        assert!(strict_object(br#"[1]"#, "x").is_err());
        assert!(strict_object(br#"{"a":1} x"#, "x").is_err());
    }

    #[test]
    fn base64_is_strict() {
        assert_eq!(b64("YWI").unwrap(), b"ab");
        assert!(b64("YWI=").is_err(), "padding");
        assert!(b64("YW+/").is_err(), "standard alphabet");
        assert!(b64("YWJ").is_err(), "non-canonical trailing bits");
    }
}
