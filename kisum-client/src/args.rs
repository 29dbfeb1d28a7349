//! The SDK's flags (feature `cli`): how a module server (or the console) reaches Auth and Core, as clap
//! arguments with their `KISUM_*` variables, for a `main` to flatten.

use std::time::Duration;

use crate::{RemoteConfig, Secret};

/// How a service that is not Auth or Core reaches them: their URLs and its service client. Printed with
/// the secret redacted.
///
/// ```
/// use clap::Parser;
///
/// #[derive(Parser)]
/// struct Cli {
///     #[command(flatten)]
///     remote: kisum_client::RemoteArgs,
/// }
///
/// let cli = Cli::parse_from(["finance", "--client-id", "kisum-module-finance", "--client-secret", "s"]);
/// let config = cli.remote.config(None).unwrap();
/// assert_eq!(config.auth_url, "http://127.0.0.1:7400");
/// assert_eq!(config.issuer, "http://127.0.0.1:7400");
/// assert!(Cli::try_parse_from(["finance", "--unknown"]).is_err());
/// ```
#[derive(Debug, Clone, clap::Args)]
pub struct RemoteArgs {
    /// Auth's base URL.
    #[arg(long, env = "KISUM_AUTH_URL", default_value = "http://127.0.0.1:7400")]
    pub auth_url: String,
    /// Core's base URL.
    #[arg(long, env = "KISUM_CORE_URL", default_value = "http://127.0.0.1:7401")]
    pub core_url: String,
    /// The service's client (needs scope `auth:access:read`; a module also `auth:support:record`).
    #[arg(long, env = "KISUM_CLIENT_ID", default_value = "platform-admin")]
    pub client_id: String,
    /// Its secret; set `KISUM_CLIENT_SECRET` in the environment rather than on a command line.
    #[arg(long, env = "KISUM_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<Secret>,
}

/// What the tokens a module verifies must name, and how long a cached snapshot may serve while Auth is
/// unreachable: the flags of a service that verifies tokens (a module; not the console).
#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// The issuer tokens must name. Default: `--auth-url`.
    #[arg(long, env = "KISUM_ISSUER")]
    pub issuer: Option<String>,
    /// The audience tokens must name.
    #[arg(long, env = "KISUM_AUDIENCE", default_value = "kisum")]
    pub audience: String,
    /// How long a cached snapshot may serve while Auth is unreachable, in seconds (1 to 300).
    #[arg(long, env = "KISUM_STALE_SECONDS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..=300))]
    pub stale_seconds: u64,
}

impl RemoteArgs {
    /// The SDK's configuration, trusting `ca_bundle` beside the system's roots (issuer `--auth-url`,
    /// audience `kisum`, snapshots for at most 5 minutes unless [`VerifyArgs::apply`] says otherwise);
    /// refused without a client secret, naming the setting.
    pub fn config(&self, ca_bundle: Option<Vec<u8>>) -> Result<RemoteConfig, String> {
        let secret = self.client_secret.as_ref().ok_or_else(|| {
            format!("--client-secret (KISUM_CLIENT_SECRET): the secret of client `{}` is needed", self.client_id)
        })?;
        let mut config = RemoteConfig::new(&self.auth_url, &self.core_url, &self.client_id, secret.expose());
        config.ca_bundle = ca_bundle;
        Ok(config)
    }
}

impl VerifyArgs {
    /// Sets `config`'s issuer (when given), audience and the longest a snapshot serves.
    pub fn apply(&self, config: &mut RemoteConfig) {
        if let Some(issuer) = &self.issuer {
            config.issuer = issuer.clone();
        }
        config.audience = self.audience.clone();
        config.max_age = Duration::from_secs(self.stale_seconds);
    }
}
