//! Secrets that never reach a log, and the HTTP client every part of the SDK reaches Auth and Core with.

use kisum_errors::ErrorCode;

use crate::problem::Refusal;

/// A secret (a client secret, a password): `Debug` and `Display` print `[redacted]`, so a configuration
/// printed at start or logged on error never shows it. [`Secret::expose`] is the one way to read it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `text`.
    pub fn new(text: impl Into<String>) -> Secret {
        Secret(text.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<String> for Secret {
    fn from(text: String) -> Secret {
        Secret(text)
    }
}

impl From<&str> for Secret {
    fn from(text: &str) -> Secret {
        Secret(text.to_owned())
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Secret, Self::Err> {
        Ok(Secret(text.to_owned()))
    }
}

/// The HTTP client to reach Auth, Core and the modules with: HTTPS through rustls (aws-lc-rs) trusting the
/// system's roots and, beside them, the PEM certificates of `ca_bundle` (a private CA); a connect timeout
/// of [`REQUEST_TIMEOUT`](crate::REQUEST_TIMEOUT) and no overall timeout (the feed's stream lives for hours;
/// every other request sets its own). A bundle that holds no certificate is refused.
pub fn http_client(ca_bundle: Option<&[u8]>) -> Result<reqwest::Client, Refusal> {
    let invalid = |detail: String| Refusal::new(ErrorCode::ValidationFailed, detail);
    let mut builder = reqwest::Client::builder().connect_timeout(crate::REQUEST_TIMEOUT);
    if let Some(pem) = ca_bundle {
        let certificates = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| invalid(format!("the CA bundle is not PEM: {e}")))?;
        if certificates.is_empty() {
            return Err(invalid("the CA bundle holds no certificate".into()));
        }
        builder = builder.tls_certs_merge(certificates);
    }
    builder.build().map_err(|e| Refusal::new(ErrorCode::Internal, format!("the HTTP client: {e}")))
}

/// An error with every cause under it (`error sending request: … : invalid peer certificate: …`): a
/// request's error alone rarely says why it failed.
pub(crate) fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let secret = Secret::new("hunter2-hunter2");
        assert_eq!(format!("{secret:?} {secret}"), "[redacted] [redacted]");
        assert_eq!(format!("{:?}", Some(secret.clone())), "Some([redacted])");
        assert_eq!(secret.expose(), "hunter2-hunter2");
        assert!(http_client(Some(b"not a certificate")).is_err(), "a CA bundle without a certificate is refused");
    }
}
