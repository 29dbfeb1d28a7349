//! Starting Core on an engine: the one boot path of the `kisum-core` binary and of `kisum-platform`
//! (standalone or in the one command).

use std::sync::Arc;

use axum::Router;
use kisum_access::CompanyId;
use kisum_entitlements::{SystemClock, Timestamp};
use kisum_store::Engine;
use kisum_token::{Jwks, Validation, Verifier};

use crate::CoreState;

/// Core's flags (the store's are [`kisum_server::StoreConfig`]'s): which tokens it accepts and who runs the
/// platform. Shared by `kisum-core` and `kisum-platform core`.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// The claims tokens must name, shared with Auth.
    #[command(flatten)]
    pub claims: kisum_server::ClaimsArgs,
    /// A JSON Web Key Set file to verify tokens with. Default: the keys Auth publishes in the same store,
    /// followed as they rotate.
    #[arg(long, env = "KISUM_JWKS")]
    pub jwks: Option<std::path::PathBuf>,
}

impl Config {
    /// What Core starts with when Auth is at `auth_url` (the issuer unless `--issuer` names one); reads
    /// `--jwks`, the error naming the setting and the file.
    pub fn start(&self, auth_url: &str) -> Result<Start, StartError> {
        let jwks = match &self.jwks {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| format!("--jwks {}: {e}", path.display()))?;
                Some(Jwks::parse(&text).map_err(|e| format!("--jwks {}: {e}", path.display()))?)
            }
            None => None,
        };
        Ok(Start {
            issuer: self.claims.issuer_or(auth_url),
            audience: self.claims.audience.clone(),
            platform_company: self.claims.platform_company.clone(),
            jwks,
        })
    }
}

/// What Core needs beside its engine.
#[derive(Debug, Clone)]
pub struct Start {
    /// The issuer (`iss`) tokens must name.
    pub issuer: String,
    /// The audience (`aud`) tokens must name.
    pub audience: String,
    /// The company whose members with `admin:…` permissions are platform staff.
    pub platform_company: CompanyId,
    /// A fixed key set to verify with; `None`: the keys Auth keeps in the store, following the log.
    pub jwks: Option<Jwks>,
}

/// Why Core could not start.
pub type StartError = Box<dyn std::error::Error + Send + Sync>;

/// Core's router on `engine`, and its background tasks (abort them to stop): tokens verified with the
/// keys Auth keeps in the store (following `rotate_keys` in the log) unless a key set is given; revoked
/// sessions and disabled users refused, from Auth's table (read now: a store that cannot be read stops
/// the start) and then from the log as `engine` installs it. Following the log itself is the caller's
/// (`Engine::follow`), so that an engine shared with Auth is followed once.
pub async fn start(
    engine: Arc<Engine>,
    start: Start,
) -> Result<(Router, Vec<tokio::task::JoinHandle<()>>), StartError> {
    let validation = Validation::new(&start.issuer, &start.audience);
    let now = kisum_entitlements::Timestamp::now().unix_seconds();
    let follow_keys = start.jwks.is_none();
    let jwks = match start.jwks {
        Some(jwks) => jwks,
        None => kisum_server::keys::jwks_from_store(engine.store().as_ref(), now).await?,
    };
    let verifier = Verifier::new(jwks, validation.clone())?;
    let state = Arc::new(CoreState {
        engine: engine.clone(),
        tokens: kisum_server::Tokens::new(verifier, Arc::new(SystemClock)),
        platform_company: start.platform_company,
    });
    kisum_server::revoked::load(state.tokens.revoked(), engine.store().as_ref(), Timestamp::from_unix(now)).await?;
    let mut tasks = vec![kisum_server::revoked::follow(engine.clone(), state.tokens.revoked().clone())];
    if follow_keys {
        let keys_state = state.clone();
        tasks.push(kisum_server::keys::follow_keys(engine, validation, move |v| keys_state.tokens.replace(v)));
    }
    Ok((crate::app(state), tasks))
}
