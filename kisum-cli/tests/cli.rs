//! Runs the built `kisum` binary: outputs, exit codes, and errors as one line of problem+json.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, missing_docs)]

use std::path::PathBuf;
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn kisum(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kisum")).args(args).current_dir(root()).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

/// Asserts an error: exit 2, nothing on stdout, one line of problem+json with `code` on stderr.
fn assert_problem(o: &Output, code: &str) -> serde_json::Value {
    assert_eq!(o.status.code(), Some(2), "stderr: {}", stderr(o));
    assert!(o.stdout.is_empty(), "stdout: {}", stdout(o));
    let err = stderr(o);
    assert_eq!(err.lines().count(), 1, "{err}");
    let problem: serde_json::Value = serde_json::from_str(&err).unwrap();
    assert_eq!(problem["code"], code, "{err}");
    problem
}

const WORLD: &str = "examples/demo/world.json";
const AT: &str = "2026-03-15T12:00:00Z";

fn check(principal: &str, permission: &str, extra: &[&str]) -> Output {
    let mut args = vec!["check", "--world", WORLD, "--principal", principal, "--company", "encore"];
    args.extend(["--permission", permission, "--at", AT]);
    args.extend(extra);
    kisum(&args)
}

#[test]
fn check_prints_one_json_line_and_exits_by_decision() {
    let allow = check("user:maya", "finance:invoice:approve", &[]);
    assert_eq!(allow.status.code(), Some(0));
    let line: serde_json::Value = serde_json::from_str(stdout(&allow).trim()).unwrap();
    assert_eq!(line["decision"], "allow");
    assert_eq!(line["reason"], serde_json::Value::Null);
    assert_eq!(line["explain"]["role_path"][0], "owner");
    assert!(stdout(&allow).starts_with(r#"{"decision":"allow","reason":null,"explain":"#));

    let deny = check("user:leo", "finance:invoice:approve", &[]);
    assert_eq!(deny.status.code(), Some(1));
    let line: serde_json::Value = serde_json::from_str(stdout(&deny).trim()).unwrap();
    assert_eq!((line["decision"].as_str(), line["reason"].as_str()), (Some("deny"), Some("PERMISSION_NOT_GRANTED")));

    let cross = check("user:maya", "finance:invoice:read", &["--resource", "bluenote/invoice/inv-1"]);
    assert_eq!(cross.status.code(), Some(1));
    assert!(stdout(&cross).contains("CROSS_TENANT"));

    let scoped = check("agent:copilot", "finance:invoice:read", &["--resource", "encore/invoice/inv-42"]);
    assert_eq!(scoped.status.code(), Some(0));

    let unknown = kisum(&[
        "check",
        "--world",
        WORLD,
        "--principal",
        "user:maya",
        "--company",
        "nowhere",
        "--permission",
        "core:company:read",
    ]);
    assert_eq!(unknown.status.code(), Some(1), "an unknown company is a deny");
    assert!(stdout(&unknown).contains("UNKNOWN_COMPANY"));
}

#[test]
fn errors_exit_2_with_a_problem_line() {
    assert_problem(&check("user:maya", "finance:invoice:explode", &[]), "UNKNOWN_PERMISSION");
    assert_problem(&check("user:maya", "not-a-key", &[]), "UNKNOWN_PERMISSION");
    assert_problem(&check("bob", "finance:invoice:read", &[]), "VALIDATION_FAILED");
    assert_problem(&check("user:maya", "finance:invoice:read", &["--at", "yesterday"]), "VALIDATION_FAILED");
    assert_problem(&check("user:maya", "finance:invoice:read", &["--resource", "x"]), "VALIDATION_FAILED");
    assert_problem(&check("user:maya", "finance:invoice:read", &["--bogus", "1"]), "VALIDATION_FAILED");
    assert_problem(&kisum(&["check", "--world", "missing.json"]), "VALIDATION_FAILED");
    assert_problem(
        &kisum(&["check", "--world", "no/such.json", "--principal", "user:a", "--company", "c", "--permission", "p"]),
        "NOT_FOUND",
    );
    assert_problem(&kisum(&["frobnicate"]), "VALIDATION_FAILED");
    let none = assert_problem(&kisum(&[]), "VALIDATION_FAILED");
    assert_eq!(none["detail"], "usage: no command; try `kisum help`");
    let twice = assert_problem(&check("user:maya", "finance:invoice:read", &["--at", AT]), "VALIDATION_FAILED");
    assert!(twice["detail"].as_str().unwrap().contains("--at"), "{twice}");
    assert_problem(&kisum(&["entitlements", "--world", WORLD, "--company", "nowhere"]), "NOT_FOUND");
    assert_problem(&kisum(&["scenario"]), "VALIDATION_FAILED");
    assert_problem(&kisum(&["scenario", "no/such/dir"]), "NOT_FOUND");
}

#[test]
fn help_and_version_answer_on_stdout() {
    for args in [&["--help"][..], &["help"], &["check", "--help"], &["help", "explain"], &["token", "verify", "--help"]]
    {
        let o = kisum(args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        assert!(stdout(&o).contains("Usage: kisum"), "{args:?}: {}", stdout(&o));
        assert!(o.stderr.is_empty());
    }
    let check = stdout(&kisum(&["check", "--help"]));
    for flag in ["--world", "--principal", "--company", "--permission", "--resource", "--at"] {
        assert!(check.contains(flag), "{flag}: {check}");
    }
    let version = kisum(&["--version"]);
    assert_eq!(version.status.code(), Some(0));
    assert!(stdout(&version).starts_with("kisum "));
}

#[test]
fn validate_names_every_problem() {
    let dir = std::env::temp_dir().join(format!("kisum-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = std::fs::read_to_string(root().join(WORLD)).unwrap();
    let ok = kisum(&["validate", "--world", WORLD]);
    assert_eq!(ok.status.code(), Some(0));
    assert!(ok.stdout.is_empty() && ok.stderr.is_empty());

    let mut world: serde_json::Value = serde_json::from_str(&good).unwrap();
    world["users"][0]["id"] = "Not An Id".into();
    world["memberships"][1]["roles"][0] = "ghost_role".into();
    world["delegations"][0]["expires_at"] = "2027-01-01T00:00:00Z".into();
    let bad = dir.join("bad.json");
    std::fs::write(&bad, world.to_string()).unwrap();
    let problem = assert_problem(&kisum(&["validate", "--world", bad.to_str().unwrap()]), "VALIDATION_FAILED");
    let paths: Vec<&str> = problem["errors"].as_array().unwrap().iter().map(|e| e["path"].as_str().unwrap()).collect();
    assert!(paths.contains(&"/users/0/id"), "{paths:?}");
    assert!(paths.contains(&"/memberships/1/roles/0"), "{paths:?}");
    assert!(paths.contains(&"/delegations/0/expires_at"), "{paths:?}");

    let typo = dir.join("typo.json");
    std::fs::write(&typo, good.replacen("\"memberships\"", "\"membership\"", 1)).unwrap();
    assert_problem(&kisum(&["validate", "--world", typo.to_str().unwrap()]), "VALIDATION_FAILED");
    let garbage = dir.join("garbage.json");
    std::fs::write(&garbage, "{not json").unwrap();
    assert_problem(&kisum(&["validate", "--world", garbage.to_str().unwrap()]), "VALIDATION_FAILED");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn entitlements_who_can_explain_and_demo() {
    let e = kisum(&["entitlements", "--world", WORLD, "--company", "bluenote", "--at", AT]);
    assert_eq!(e.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_str(stdout(&e).trim()).unwrap();
    assert_eq!(v["modules"], serde_json::json!(["core", "promoters", "touring", "venue"]));
    assert_eq!(v["features"], serde_json::json!([]), "venue.contracts is revoked");
    assert_eq!(v["limits"]["core.seats"], 10);
    assert_eq!(v["provenance"]["module:venue"][0], "subscription:bn-pro");

    let who = kisum(&[
        "who-can",
        "--world",
        WORLD,
        "--company",
        "encore",
        "--permission",
        "finance:invoice:approve",
        "--at",
        AT,
    ]);
    assert_eq!(stdout(&who).trim(), r#"["user:ines","user:maya"]"#);

    let explain = kisum(&[
        "explain",
        "--world",
        WORLD,
        "--principal",
        "user:leo",
        "--company",
        "encore",
        "--permission",
        "finance:invoice:read",
        "--at",
        AT,
    ]);
    assert_eq!(explain.status.code(), Some(0));
    assert!(stdout(&explain).contains("delegation chain ines-to-leo"), "{}", stdout(&explain));

    let demo = kisum(&["demo"]);
    assert_eq!(demo.status.code(), Some(0));
    assert!(stdout(&demo).contains("who can finance:invoice:approve in encore: user:ines, user:maya"));
}

#[test]
fn scenario_counts_and_reports_failures() {
    let ok = kisum(&["scenario", "tests/scenarios"]);
    assert_eq!(ok.status.code(), Some(0), "{}", stdout(&ok));
    let last = stdout(&ok).lines().last().unwrap().to_owned();
    assert!(last.ends_with(" passed, 0 failed"), "{last}");

    let dir = std::env::temp_dir().join(format!("kisum-scenario-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut s: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/scenarios/02-roles-memberships-restrictions.json")).unwrap(),
    )
    .unwrap();
    s["checks"][0]["expect"] = "RESTRICTED".into();
    std::fs::write(dir.join("wrong.json"), s.to_string()).unwrap();
    let mut broken = s.clone();
    broken["world"]["users"] = serde_json::json!([{"id": "Bad Id"}]);
    std::fs::write(dir.join("broken.json"), broken.to_string()).unwrap();
    std::fs::write(dir.join("ignored.txt"), "not a scenario").unwrap();
    let out = kisum(&["scenario", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let checks = s["checks"].as_array().unwrap().len();
    assert!(text.contains("wrong.json checks[0]: expected RESTRICTED, got allow"), "{text}");
    assert!(text.contains(&format!("broken.json checks[{}]", checks - 1)), "a rejected world fails every check");
    assert!(text.ends_with(&format!("{} passed, {} failed\n", checks - 1, checks + 1)), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn token_keygen_jwks_sign_verify() {
    let dir = std::env::temp_dir().join(format!("kisum-token-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    let kek = kisum(&["token", "kek"]);
    assert_eq!(kek.status.code(), Some(0));
    std::fs::write(path("kek"), &kek.stdout).unwrap();
    for alg in ["EdDSA", "ES256"] {
        let key = path(&format!("{alg}.key"));
        let created =
            kisum(&["token", "keygen", "--kid", alg, "--alg", alg, "--kek-file", &path("kek"), "--out", &key]);
        assert_eq!(created.status.code(), Some(0), "{}", stderr(&created));
        let stored = std::fs::read_to_string(&key).unwrap();
        // A second keygen never overwrites the stored key.
        let again = kisum(&["token", "keygen", "--kid", alg, "--kek-file", &path("kek"), "--out", &key]);
        assert_problem(&again, "CONFLICT");
        assert_eq!(std::fs::read_to_string(&key).unwrap(), stored);

        let jwks = kisum(&["token", "jwks", "--key", &key, "--kek-file", &path("kek")]);
        assert_eq!(jwks.status.code(), Some(0));
        std::fs::write(path("jwks.json"), &jwks.stdout).unwrap();
        let claims = serde_json::json!({
            "iss": "https://auth", "sub": "alice", "aud": "finance", "iat": 1_767_225_600, "exp": 1_767_226_200,
            "jti": "j", "cid": "acme", "sid": "s", "ver": 1 });
        std::fs::write(path("claims.json"), claims.to_string()).unwrap();
        let signed =
            kisum(&["token", "sign", "--key", &key, "--kek-file", &path("kek"), "--claims", &path("claims.json")]);
        assert_eq!(signed.status.code(), Some(0), "{}", stderr(&signed));
        let token = stdout(&signed);
        let verify = |aud: &str, at: &str| {
            kisum(&[
                "token",
                "verify",
                "--jwks",
                &path("jwks.json"),
                "--iss",
                "https://auth",
                "--aud",
                aud,
                "--at",
                at,
                token.trim(),
            ])
        };
        let ok = verify("finance", "2026-01-01T00:05:00Z");
        assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
        let back: serde_json::Value = serde_json::from_str(stdout(&ok).trim()).unwrap();
        assert_eq!(back, claims);
        let wrong = verify("artist", "2026-01-01T00:05:00Z");
        assert_eq!(wrong.status.code(), Some(1));
        assert!(wrong.stdout.is_empty());
        assert_eq!(serde_json::from_str::<serde_json::Value>(&stderr(&wrong)).unwrap()["code"], "TOKEN_INVALID");
        let late = verify("finance", "2026-01-01T00:10:30Z");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&stderr(&late)).unwrap()["code"], "TOKEN_EXPIRED");
    }
    let other_kek = path("other");
    std::fs::write(&other_kek, "00".repeat(32)).unwrap();
    assert_problem(
        &kisum(&["token", "jwks", "--key", &path("EdDSA.key"), "--kek-file", &other_kek]),
        "VALIDATION_FAILED",
    );
    std::fs::write(path("oct.json"), r#"{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"}]}"#).unwrap();
    assert_problem(
        &kisum(&["token", "verify", "--jwks", &path("oct.json"), "--iss", "i", "--aud", "a", "x.y.z"]),
        "VALIDATION_FAILED",
    );
    assert_problem(
        &kisum(&["token", "verify", "--jwks", &path("jwks.json"), "--iss", "i", "--aud", "a"]),
        "VALIDATION_FAILED",
    );
    assert_problem(&kisum(&["token", "keygen", "--kid", "k"]), "VALIDATION_FAILED");
    std::fs::remove_dir_all(&dir).unwrap();
}
