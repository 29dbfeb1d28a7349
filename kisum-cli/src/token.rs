//! `kisum token …`: keys, key sets, signing and verification from the command line.

use std::io::Read;

use kisum_access::Timestamp;
use kisum_errors::{ErrorCode, KisumError, Problem};
use kisum_token::{Accept, Algorithm, Claims, Jwks, Kek, PrivateKey, Validation, Verifier};

use crate::{Args, clip, usage};

pub(crate) const USAGE: &str = "\
  token kek                               prints a new random key-encryption key (64 hex digits)
  token keygen --kid KID [--alg EdDSA|ES256] (--kek-file F | --kek-env VAR) [--out FILE]
                                          a new signing key, encrypted; --out never overwrites
  token jwks   --key FILE (--kek-file F | --kek-env VAR)
                                          the public key set of a key file
  token sign   --key FILE (--kek-file F | --kek-env VAR) [--claims FILE|-]
                                          claims JSON in (stdin by default), token out
  token verify --jwks FILE --iss ISSUER --aud AUDIENCE [--accept user|service|both] [--at RFC3339] TOKEN|-
                                          verified claims as JSON (exit 0), or the refusal on stderr (exit 1)";

pub(crate) fn run(rest: &[String], out: &mut String) -> Result<u8, Problem> {
    let Some((command, rest)) = rest.split_first() else { return Err(usage("`token` needs a subcommand")) };
    match command.as_str() {
        "kek" => {
            Args::parse(rest, &[])?.no_positionals()?;
            let kek = Kek::generate().map_err(|e| e.to_problem())?;
            out.push_str(kek.to_hex().as_str());
            out.push('\n');
            Ok(0)
        }
        "keygen" => keygen(rest, out),
        "jwks" => jwks(rest, out),
        "sign" => sign(rest, out),
        "verify" => verify(rest, out),
        other => Err(usage(format!("unknown token subcommand `{}`", clip(other)))),
    }
}

fn read(path: &str) -> Result<String, Problem> {
    if path == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Problem::new(ErrorCode::ValidationFailed, format!("cannot read standard input: {e}")))?;
        return Ok(text);
    }
    std::fs::read_to_string(path).map_err(|e| {
        let code = if e.kind() == std::io::ErrorKind::NotFound { ErrorCode::NotFound } else { ErrorCode::Internal };
        Problem::new(code, format!("cannot read `{}`: {e}", clip(path)))
    })
}

fn kek(args: &Args<'_>) -> Result<Kek, Problem> {
    let text = match (args.get("kek-file"), args.get("kek-env")) {
        (Some(file), None) => read(file)?,
        (None, Some(var)) => {
            std::env::var(var).map_err(|_| usage(format!("environment variable `{}` is not set", clip(var))))?
        }
        _ => return Err(usage("give exactly one of `--kek-file` and `--kek-env`")),
    };
    Kek::from_text(&text).map_err(|e| e.to_problem())
}

fn load_key(args: &Args<'_>) -> Result<PrivateKey, Problem> {
    let text = read(args.required("key")?)?;
    PrivateKey::import_encrypted(&text, &kek(args)?).map_err(|e| e.to_problem())
}

fn keygen(rest: &[String], out: &mut String) -> Result<u8, Problem> {
    let args = Args::parse(rest, &["kid", "alg", "kek-file", "kek-env", "out"])?;
    args.no_positionals()?;
    let name = args.get("alg").unwrap_or("EdDSA");
    let alg =
        Algorithm::from_jose(name).ok_or_else(|| usage(format!("`--alg` is EdDSA or ES256, not `{}`", clip(name))))?;
    let kid = args.required("kid")?;
    let kek = kek(&args)?;
    let key = PrivateKey::generate(alg, kid).map_err(|e| e.to_problem())?;
    let file = key.export_encrypted(&kek).map_err(|e| e.to_problem())?;
    match args.get("out") {
        Some(path) => {
            // Never overwrite: a key file may be the only copy of a key that signed live tokens.
            let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(path).map_err(|e| {
                let code = if e.kind() == std::io::ErrorKind::AlreadyExists {
                    ErrorCode::Conflict
                } else {
                    ErrorCode::Internal
                };
                Problem::new(code, format!("cannot create `{}`: {e}", clip(path)))
            })?;
            std::io::Write::write_all(&mut f, file.as_bytes())
                .map_err(|e| Problem::new(ErrorCode::Internal, format!("cannot write `{}`: {e}", clip(path))))?;
        }
        None => {
            out.push_str(&file);
            out.push('\n');
        }
    }
    Ok(0)
}

fn jwks(rest: &[String], out: &mut String) -> Result<u8, Problem> {
    let args = Args::parse(rest, &["key", "kek-file", "kek-env"])?;
    args.no_positionals()?;
    let key = load_key(&args)?;
    out.push_str(&Jwks::from_keys([&key]).map_err(|e| e.to_problem())?.to_json());
    out.push('\n');
    Ok(0)
}

fn sign(rest: &[String], out: &mut String) -> Result<u8, Problem> {
    let args = Args::parse(rest, &["key", "kek-file", "kek-env", "claims"])?;
    args.no_positionals()?;
    let key = load_key(&args)?;
    let text = read(args.get("claims").unwrap_or("-"))?;
    let claims: Claims =
        serde_json::from_str(&text).map_err(|e| Problem::new(ErrorCode::ValidationFailed, format!("claims: {e}")))?;
    out.push_str(&kisum_token::sign(&key, &claims).map_err(|e| e.to_problem())?);
    out.push('\n');
    Ok(0)
}

fn verify(rest: &[String], out: &mut String) -> Result<u8, Problem> {
    let args = Args::parse(rest, &["jwks", "iss", "aud", "accept", "at"])?;
    let [token] = args.positionals.as_slice() else {
        return Err(usage("`token verify` takes one TOKEN argument, or `-` to read it from stdin"));
    };
    let accept = match args.get("accept").unwrap_or("user") {
        "user" => Accept::User,
        "service" => Accept::Service,
        "both" => Accept::Both,
        other => return Err(usage(format!("`--accept` is user, service or both, not `{}`", clip(other)))),
    };
    let validation = Validation::new(args.required("iss")?, args.required("aud")?);
    let at = match args.get("at") {
        Some(text) => Timestamp::parse(text).map_err(|e| usage(e.to_string()))?,
        None => Timestamp::now(),
    };
    let token = if *token == "-" { read("-")? } else { (*token).to_owned() };
    let jwks = Jwks::parse(&read(args.required("jwks")?)?).map_err(|e| e.to_problem())?;
    let verifier = Verifier::new(jwks, validation).map_err(|e| e.to_problem())?.without_cache();
    match verifier.verify(token.trim_end(), accept, at) {
        Ok(verified) => {
            out.push_str(&serde_json::to_string(verified.claims()).unwrap_or_default());
            out.push('\n');
            Ok(0)
        }
        Err(e) => {
            eprintln!("{}", e.to_problem().to_json());
            Ok(1)
        }
    }
}
