//! `kisum token …`: keys, key sets, signing and verification from the command line.

use std::io::Read;

use kisum_errors::{ErrorCode, KisumError, Problem};
use kisum_token::{Accept, Algorithm, Claims, Jwks, Kek, PrivateKey, Validation, Verifier};

use crate::{clip, instant, usage};

/// `kisum token …`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum TokenCommand {
    /// Prints a new random key-encryption key (64 hex digits).
    Kek,
    /// A new signing key, encrypted under the key-encryption key; `--out` never overwrites.
    Keygen {
        /// The key id (`kid`).
        #[arg(long)]
        kid: String,
        /// `EdDSA` or `ES256`.
        #[arg(long, default_value = "EdDSA")]
        alg: String,
        #[command(flatten)]
        kek: KekArgs,
        /// Write the key file here (never over an existing file) instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<String>,
    },
    /// The public key set of a key file.
    Jwks {
        /// The key file.
        #[arg(long, value_name = "FILE")]
        key: String,
        #[command(flatten)]
        kek: KekArgs,
    },
    /// Signs claims (JSON from a file, or stdin by default); prints the token.
    Sign {
        /// The key file.
        #[arg(long, value_name = "FILE")]
        key: String,
        #[command(flatten)]
        kek: KekArgs,
        /// The claims file, or `-` for stdin.
        #[arg(long, value_name = "FILE", default_value = "-")]
        claims: String,
    },
    /// Verifies a token: its claims as JSON (exit 0), or the refusal as problem+json on stderr (exit 1).
    Verify {
        /// The key set file.
        #[arg(long, value_name = "FILE")]
        jwks: String,
        /// The expected issuer.
        #[arg(long)]
        iss: String,
        /// The expected audience.
        #[arg(long)]
        aud: String,
        /// Which tokens to accept: `user`, `service` or `both`.
        #[arg(long, default_value = "user")]
        accept: String,
        /// The instant (RFC 3339); default now.
        #[arg(long, value_name = "RFC3339")]
        at: Option<String>,
        /// The token, or `-` to read it from stdin.
        #[arg(value_name = "TOKEN")]
        token: String,
    },
}

/// Where the key-encryption key is: exactly one of the two.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub(crate) struct KekArgs {
    /// A file holding the key-encryption key.
    #[arg(long, value_name = "FILE")]
    kek_file: Option<String>,
    /// An environment variable holding it.
    #[arg(long, value_name = "VAR")]
    kek_env: Option<String>,
}

pub(crate) fn run(command: TokenCommand, out: &mut String) -> Result<u8, Problem> {
    match command {
        TokenCommand::Kek => {
            let kek = Kek::generate().map_err(|e| e.to_problem())?;
            out.push_str(kek.to_hex().as_str());
            out.push('\n');
            Ok(0)
        }
        TokenCommand::Keygen { kid, alg, kek, out: path } => keygen(&kid, &alg, &kek, path.as_deref(), out),
        TokenCommand::Jwks { key, kek } => jwks(&key, &kek, out),
        TokenCommand::Sign { key, kek, claims } => sign(&key, &kek, &claims, out),
        TokenCommand::Verify { jwks, iss, aud, accept, at, token } => {
            verify(&jwks, &iss, &aud, &accept, at.as_deref(), &token, out)
        }
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

fn kek(args: &KekArgs) -> Result<Kek, Problem> {
    let text = match (args.kek_file.as_deref(), args.kek_env.as_deref()) {
        (Some(file), None) => read(file)?,
        (None, Some(var)) => {
            std::env::var(var).map_err(|_| usage(format!("environment variable `{}` is not set", clip(var))))?
        }
        _ => return Err(usage("give exactly one of `--kek-file` and `--kek-env`")),
    };
    Kek::from_text(&text).map_err(|e| e.to_problem())
}

fn load_key(path: &str, kek_args: &KekArgs) -> Result<PrivateKey, Problem> {
    let text = read(path)?;
    PrivateKey::import_encrypted(&text, &kek(kek_args)?).map_err(|e| e.to_problem())
}

fn keygen(kid: &str, name: &str, kek_args: &KekArgs, path: Option<&str>, out: &mut String) -> Result<u8, Problem> {
    let alg =
        Algorithm::from_jose(name).ok_or_else(|| usage(format!("`--alg` is EdDSA or ES256, not `{}`", clip(name))))?;
    let kek = kek(kek_args)?;
    let key = PrivateKey::generate(alg, kid).map_err(|e| e.to_problem())?;
    let file = key.export_encrypted(&kek).map_err(|e| e.to_problem())?;
    match path {
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

fn jwks(path: &str, kek_args: &KekArgs, out: &mut String) -> Result<u8, Problem> {
    let key = load_key(path, kek_args)?;
    out.push_str(&Jwks::from_keys([&key]).map_err(|e| e.to_problem())?.to_json());
    out.push('\n');
    Ok(0)
}

fn sign(path: &str, kek_args: &KekArgs, claims: &str, out: &mut String) -> Result<u8, Problem> {
    let key = load_key(path, kek_args)?;
    let text = read(claims)?;
    let claims: Claims =
        serde_json::from_str(&text).map_err(|e| Problem::new(ErrorCode::ValidationFailed, format!("claims: {e}")))?;
    out.push_str(&kisum_token::sign(&key, &claims).map_err(|e| e.to_problem())?);
    out.push('\n');
    Ok(0)
}

fn verify(
    jwks_path: &str,
    iss: &str,
    aud: &str,
    accept: &str,
    at: Option<&str>,
    token: &str,
    out: &mut String,
) -> Result<u8, Problem> {
    let accept = match accept {
        "user" => Accept::User,
        "service" => Accept::Service,
        "both" => Accept::Both,
        other => return Err(usage(format!("`--accept` is user, service or both, not `{}`", clip(other)))),
    };
    let validation = Validation::new(iss, aud);
    let at = instant(at)?;
    let token = if token == "-" { read("-")? } else { token.to_owned() };
    let jwks = Jwks::parse(&read(jwks_path)?).map_err(|e| e.to_problem())?;
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
