//! Token costs: sign, verify cold (signature checked), verify warm (cache hit), and the JWKS lookup in a
//! set of 5 keys. See BENCHMARKS.md.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use kisum_entitlements::Timestamp;
use kisum_token::{Accept, Algorithm, Claims, Jwks, PrivateKey, Validation, Verifier, sign};

fn claims() -> Claims {
    serde_json::from_value(serde_json::json!({
        "iss": "https://auth.kisum.dev", "sub": "alice", "aud": "finance", "exp": 1_767_226_200,
        "iat": 1_767_225_600, "jti": "0f9c2d1e-7b3a-4c55-9d7e-3e2f1a6b8c90", "cid": "acme", "sid": "s-42", "ver": 7
    }))
    .unwrap()
}

fn bench(c: &mut Criterion) {
    let now = Timestamp::from_unix(1_767_225_700);
    for alg in [Algorithm::EdDSA, Algorithm::ES256] {
        let keys: Vec<PrivateKey> = (0..5).map(|i| PrivateKey::generate(alg, &format!("key-{i}")).unwrap()).collect();
        let jwks = Jwks::from_keys(&keys).unwrap();
        let validation = Validation::new("https://auth.kisum.dev", "finance");
        let cold = Verifier::new(jwks.clone(), validation.clone()).unwrap().without_cache();
        let warm = Verifier::new(jwks.clone(), validation).unwrap();
        let key = &keys[3];
        let token = sign(key, &claims()).unwrap();
        warm.verify(&token, Accept::User, now).unwrap();
        let name = alg.jose_name();
        let mut g = c.benchmark_group(format!("token {name}"));
        g.bench_function("sign", |b| b.iter(|| sign(black_box(key), &claims()).unwrap()));
        g.bench_function("verify, cold (signature checked)", |b| {
            b.iter(|| cold.verify(black_box(&token), Accept::User, now).unwrap())
        });
        g.bench_function("verify, warm (cache hit)", |b| {
            b.iter(|| warm.verify(black_box(&token), Accept::User, now).unwrap())
        });
        g.bench_function("JWKS lookup, 5 keys", |b| b.iter(|| jwks.get(black_box("key-3")).is_some()));
        // Baselines in the same run: jsonwebtoken's own decode of the same token, and the bare signature
        // check on the signing input.
        let jwk: jsonwebtoken::jwk::Jwk =
            serde_json::from_value(serde_json::to_value(key.public_jwk()).unwrap()).unwrap();
        let decoding = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
        let mut v = jsonwebtoken::Validation::new(match alg {
            Algorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
            Algorithm::ES256 => jsonwebtoken::Algorithm::ES256,
        });
        v.validate_exp = false;
        v.set_audience(&["finance"]);
        g.bench_function("baseline: jsonwebtoken::decode", |b| {
            b.iter(|| jsonwebtoken::decode::<Claims>(black_box(&token), &decoding, &v).unwrap())
        });
        let (input, signature) = token.rsplit_once('.').unwrap();
        let public = key.public_key().unwrap();
        let signature = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, signature).unwrap();
        g.bench_function("baseline: bare signature check", |b| {
            b.iter(|| assert!(public.verify(black_box(input.as_bytes()), &signature)))
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
