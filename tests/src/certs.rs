//! Certificates made afresh for a test run (never committed): a CA and a leaf it signs for `localhost`
//! and `127.0.0.1`, written as PEM files.

use std::path::{Path, PathBuf};

/// PEM files of a test CA and of a server certificate it signed.
#[derive(Debug, Clone)]
pub struct TestCerts {
    /// The CA's certificate (what a client trusts: `--ca-bundle`).
    pub ca: PathBuf,
    /// The server's certificate chain (`--tls-cert`).
    pub cert: PathBuf,
    /// The server's private key (`--tls-key`).
    pub key: PathBuf,
}

impl TestCerts {
    /// Makes a CA and a leaf for `localhost` and `127.0.0.1`, and writes `ca.pem`, `cert.pem` and
    /// `key.pem` into `dir`.
    pub fn generate(dir: &Path) -> TestCerts {
        let made = (|| -> Result<(String, String, String), rcgen::Error> {
            let ca_key = rcgen::KeyPair::generate()?;
            let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
            ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            ca_params.distinguished_name.push(rcgen::DnType::CommonName, "Kisum test CA");
            let ca = ca_params.self_signed(&ca_key)?;
            let issuer = rcgen::Issuer::new(ca_params, ca_key);
            let leaf_key = rcgen::KeyPair::generate()?;
            let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?
                .signed_by(&leaf_key, &issuer)?;
            Ok((ca.pem(), leaf.pem(), leaf_key.serialize_pem()))
        })();
        let (ca, cert, key) = made.unwrap_or_else(|e| panic!("making test certificates: {e}"));
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            path
        };
        TestCerts { ca: write("ca.pem", &ca), cert: write("cert.pem", &cert), key: write("key.pem", &key) }
    }

    /// An HTTPS client trusting this CA.
    pub fn client(&self) -> reqwest::Client {
        let pem = std::fs::read(&self.ca).unwrap_or_else(|e| panic!("{}: {e}", self.ca.display()));
        let roots = reqwest::Certificate::from_pem_bundle(&pem).unwrap_or_else(|e| panic!("the test CA: {e}"));
        reqwest::Client::builder().tls_certs_merge(roots).build().unwrap_or_else(|e| panic!("a client: {e}"))
    }
}
