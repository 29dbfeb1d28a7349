//! One function per parser of untrusted input (STYLE rule 8), shared by the `cargo fuzz` targets in
//! `fuzz/` and by the replay of their corpora in `cargo test` (`tests/fuzz/main.rs`). None may panic,
//! whatever the bytes; each returns whether the input was accepted.

use std::sync::OnceLock;

use kisum_access::{Actor, Change, Directory, World};

/// A fuzz target: its name (its folder under `fuzz/corpus/`) and the function it runs.
pub struct Target {
    /// The name.
    pub name: &'static str,
    /// Runs one input; whether it was accepted.
    pub run: fn(&[u8]) -> bool,
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target { name: "jws", run: jws },
    Target { name: "jwks", run: jwks },
    Target { name: "world", run: world },
    Target { name: "change", run: change },
    Target { name: "sse", run: sse },
    Target { name: "token_form", run: token_form },
    Target { name: "mcp", run: mcp },
    Target { name: "body", run: body },
];

/// A compact JWS/JWT: parsed, then verified against a fixed key set (every refusal is an answer);
/// whether it parsed.
pub fn jws(data: &[u8]) -> bool {
    static VERIFIER: OnceLock<Option<kisum_token::Verifier>> = OnceLock::new();
    let Ok(text) = std::str::from_utf8(data) else { return false };
    if kisum_token::UnverifiedToken::parse(text).is_err() {
        return false;
    }
    let verifier = VERIFIER.get_or_init(|| {
        let key = kisum_token::PrivateKey::generate(kisum_token::Algorithm::EdDSA, "k1").ok()?;
        let jwks = kisum_token::Jwks::from_keys([&key]).ok()?;
        kisum_token::Verifier::new(jwks, kisum_token::Validation::new("https://auth", "kisum")).ok()
    });
    let now = kisum_entitlements::Timestamp::from_unix(1_773_576_000);
    if let Some(v) = verifier {
        let _refused = v.verify(text, kisum_token::Expect::new(kisum_token::Accept::Both), now);
    }
    true
}

/// A JSON Web Key Set.
pub fn jwks(data: &[u8]) -> bool {
    std::str::from_utf8(data).is_ok_and(|text| kisum_token::Jwks::parse(text).is_ok())
}

/// A world file: validated and loaded; a valid one also round-trips through a directory.
pub fn world(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else { return false };
    let Ok(world) = World::from_json(text) else { return false };
    let directory = Directory::new(world);
    World::from_doc(&directory.to_doc()).is_ok()
}

/// A change-log record: decoded, then applied to a small directory as the platform (a log entry that no
/// longer validates is refused, never installed).
pub fn change(data: &[u8]) -> bool {
    let Ok(change) = serde_json::from_slice::<Change>(data) else { return false };
    let doc: kisum_access::doc::WorldDoc = match serde_json::from_str(include_str!("../../examples/demo/world.json")) {
        Ok(doc) => doc,
        Err(_) => return false,
    };
    let Ok(world) = World::from_doc(&doc) else { return false };
    let directory = Directory::new(world);
    let at = kisum_entitlements::Timestamp::from_unix(1_773_576_000);
    let before = directory.seq();
    let applied = directory.apply(&Actor::Platform, at, change).is_ok();
    // A refused change leaves the directory as it was.
    applied || directory.seq() == before
}

/// A server-sent event stream, cut in two at a place the input chooses.
pub fn sse(data: &[u8]) -> bool {
    let cut = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
    let (a, b) = data.split_at(cut);
    let mut decoder = kisum_client::sse::Decoder::new();
    let mut events = Vec::new();
    decoder.push(a, &mut events).is_ok() && decoder.push(b, &mut events).is_ok()
}

/// A form body of `POST /oauth/token`.
pub fn token_form(data: &[u8]) -> bool {
    kisum_auth::fuzzing::token_form(data)
}

/// An MCP JSON-RPC message.
pub fn mcp(data: &[u8]) -> bool {
    kisum_modules::fuzzing::mcp_message(data)
}

/// A strict JSON request body (a delegation, whose nested objects must be objects too).
pub fn body(data: &[u8]) -> bool {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return false };
    kisum_server::strict::from_value::<kisum_access::doc::DelegationDoc>(value).is_ok()
}
