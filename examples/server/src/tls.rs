//! TLS for every server (rustls on aws-lc-rs) and the CA bundle its clients trust beside the system's.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A server's certificate chain and key, ready to accept TLS connections (HTTP/1.1 by ALPN).
#[derive(Clone)]
pub struct Tls {
    acceptor: tokio_rustls::TlsAcceptor,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls(..)")
    }
}

impl Tls {
    /// From PEM text: `cert` holds the chain (leaf first), `key` the private key (PKCS#8, PKCS#1 or SEC1).
    /// The error says which of the two is wrong and why.
    pub fn from_pem(cert: &[u8], key: &[u8]) -> Result<Tls, String> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("the certificate is not PEM: {e}"))?;
        if chain.is_empty() {
            return Err("the certificate file holds no `CERTIFICATE` block".into());
        }
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| format!("the key holds no private key: {e}"))?;
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| format!("the certificate and key do not go together: {e}"))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls { acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)) })
    }

    /// From two PEM files; the error names the file.
    pub fn from_files(cert: &Path, key: &Path) -> Result<Tls, String> {
        let read = |path: &Path| std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()));
        Tls::from_pem(&read(cert)?, &read(key)?)
    }

    pub(crate) fn acceptor(&self) -> &tokio_rustls::TlsAcceptor {
        &self.acceptor
    }
}

/// The one crypto provider of the workspace (aws-lc-rs, as `kisum-token` uses).
fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}

/// Makes aws-lc-rs the process's default rustls provider. Every binary calls it first (STACK-NOTES: two
/// providers in one process and no default panics at the first handshake); calling it again is harmless.
pub fn install_crypto() {
    let _ = provider().install_default();
}

/// TLS as command-line flags (each with its `KISUM_*` variable): the server's certificate and key, and
/// a CA bundle its clients trust beside the system's roots.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsArgs {
    /// Serve HTTPS with this certificate chain (PEM, leaf first); needs `--tls-key`.
    #[arg(long, global = true, env = "KISUM_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of `--tls-cert` (PEM).
    #[arg(long, global = true, env = "KISUM_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// PEM certificates to trust beside the system's roots when reaching Auth, Core and the modules (a
    /// private CA). PostgreSQL's is `sslrootcert=` in the `--db` URL.
    #[arg(long, global = true, env = "KISUM_CA_BUNDLE")]
    pub ca_bundle: Option<PathBuf>,
}

impl TlsArgs {
    /// The server's TLS, if asked for; the error names the setting.
    pub fn tls(&self) -> Result<Option<Tls>, String> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => {
                Tls::from_files(cert, key).map(Some).map_err(|e| format!("--tls-cert/--tls-key: {e}"))
            }
            (None, None) => Ok(None),
            (Some(_), None) => Err("--tls-cert needs --tls-key (KISUM_TLS_KEY)".into()),
            (None, Some(_)) => Err("--tls-key needs --tls-cert (KISUM_TLS_CERT)".into()),
        }
    }

    /// The CA bundle's PEM text, checked to hold at least one certificate; the error names the setting.
    pub fn ca_bundle(&self) -> Result<Option<Vec<u8>>, String> {
        let Some(path) = &self.ca_bundle else { return Ok(None) };
        let pem = std::fs::read(path).map_err(|e| format!("--ca-bundle {}: {e}", path.display()))?;
        let count = CertificateDer::pem_slice_iter(&pem)
            .try_fold(0usize, |n, c| c.map(|_| n + 1))
            .map_err(|e| format!("--ca-bundle {}: not PEM: {e}", path.display()))?;
        if count == 0 {
            return Err(format!("--ca-bundle {}: holds no `CERTIFICATE` block", path.display()));
        }
        Ok(Some(pem))
    }

    /// `https` when serving TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls_cert.is_some() { "https" } else { "http" }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_name_what_is_wrong() {
        let missing = TlsArgs { tls_cert: Some("cert.pem".into()), ..TlsArgs::default() };
        assert_eq!(missing.tls().err().as_deref(), Some("--tls-cert needs --tls-key (KISUM_TLS_KEY)"));
        let absent = TlsArgs {
            tls_cert: Some("/nonexistent/c.pem".into()),
            tls_key: Some("/nonexistent/k.pem".into()),
            ..TlsArgs::default()
        };
        assert!(absent.tls().err().is_some_and(|e| e.starts_with("--tls-cert/--tls-key: /nonexistent/c.pem")));
        assert!(Tls::from_pem(b"", b"").is_err_and(|e| e.contains("no `CERTIFICATE` block")));
    }
}
