//! What the platform's tokens name and who runs the platform: the flags Auth (which signs) and Core
//! (which verifies) share, with one default each.

use kisum_access::CompanyId;

/// `--issuer`, `--audience`, `--platform-company`, with their `KISUM_*` variables.
#[derive(Debug, Clone, clap::Args)]
pub struct ClaimsArgs {
    /// The issuer (`iss`) of the tokens. Default: Auth's URL (where Auth listens; for Core,
    /// `http://127.0.0.1:7400`, or `https://` under `--tls-cert`).
    #[arg(long, env = "KISUM_ISSUER")]
    pub issuer: Option<String>,
    /// The audience (`aud`) of the tokens.
    #[arg(long, env = "KISUM_AUDIENCE", default_value = "kisum")]
    pub audience: String,
    /// The company whose members with `admin:…` permissions are platform staff.
    #[arg(long, env = "KISUM_PLATFORM_COMPANY", default_value = "kisum")]
    pub platform_company: CompanyId,
}

impl ClaimsArgs {
    /// The issuer: `--issuer`, else Auth's URL `auth_url`.
    pub fn issuer_or(&self, auth_url: &str) -> String {
        self.issuer.clone().unwrap_or_else(|| auth_url.to_owned())
    }
}
