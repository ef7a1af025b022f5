//! TLS for `rediss://` URLs (the crate feature `tls`, over rustls: no
//! OpenSSL).
//!
//! The server's certificate is checked against the system's root
//! certificates, or, when a CA file is given, against that CA only. A
//! client certificate and key can be given for servers that ask for one
//! (mutual TLS). Both come from [`TlsOptions`], which by default reads
//! [`CA_ENV`], [`CERT_ENV`] and [`KEY_ENV`]; they apply to `rediss://` URLs
//! only. `rediss://host:port/#insecure` skips the check altogether: for
//! tests only, never in production.

use std::path::PathBuf;

use crate::connection::redact_url;
use crate::error::{Error, Result};

/// A PEM file of the CA (or CAs) that signed the server's certificate, trusted
/// instead of the system's roots.
pub const CA_ENV: &str = "JOBSTREAM_TLS_CA";
/// A PEM file of the client certificate (chain), for mutual TLS; needs
/// [`KEY_ENV`].
pub const CERT_ENV: &str = "JOBSTREAM_TLS_CERT";
/// A PEM file of the client certificate's private key, for mutual TLS; needs
/// [`CERT_ENV`].
pub const KEY_ENV: &str = "JOBSTREAM_TLS_KEY";

/// Whom to trust, and who to be, on a `rediss://` connection. Ignored for
/// `redis://` URLs.
///
/// The default trusts the system's root certificates and presents no
/// client certificate. [`TlsOptions::from_env`] reads the same from
/// `JOBSTREAM_TLS_CA`, `JOBSTREAM_TLS_CERT` and `JOBSTREAM_TLS_KEY`, which
/// is what every connection uses unless given options in code.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsOptions {
    /// A PEM file of the CA certificate(s) to trust instead of the system's
    /// roots (for a private CA or a self-signed server).
    pub ca_file: Option<PathBuf>,
    /// A PEM file of the client certificate (chain), for servers that
    /// require one (`tls-auth-clients yes`). Needs `client_key_file`.
    pub client_cert_file: Option<PathBuf>,
    /// A PEM file of the client certificate's private key.
    pub client_key_file: Option<PathBuf>,
}

impl TlsOptions {
    /// Trusts the CA in `path` (PEM) instead of the system's roots.
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Presents the client certificate `cert` with its private key `key`
    /// (both PEM files), for mutual TLS.
    pub fn client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.client_cert_file = Some(cert.into());
        self.client_key_file = Some(key.into());
        self
    }

    /// The options in `JOBSTREAM_TLS_CA`, `JOBSTREAM_TLS_CERT` and
    /// `JOBSTREAM_TLS_KEY` (unset or empty: not given).
    pub fn from_env() -> Self {
        let var = |name| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        Self {
            ca_file: var(CA_ENV),
            client_cert_file: var(CERT_ENV),
            client_key_file: var(KEY_ENV),
        }
    }
}

/// True for a URL that asks for TLS (`rediss://`, `valkeys://`).
pub fn is_tls_url(url: &str) -> bool {
    let scheme = url.split_once("://").map_or("", |(s, _)| s);
    scheme.eq_ignore_ascii_case("rediss") || scheme.eq_ignore_ascii_case("valkeys")
}

/// The error for a TLS URL in a build without the `tls` feature.
fn feature_missing(url: &str) -> Error {
    Error::Config(format!(
        "{} is a TLS URL, but jobstream was built without TLS support: enable the `tls` \
         feature of jobstream-worker / jobstream-producer (e.g. \
         `jobstream-worker = {{ version = \"0.1\", features = [\"tls\"] }}` in Cargo.toml)",
        redact_url(url)
    ))
}

/// Checks, without reading any file, that `url` can be used by this build.
pub(crate) fn check_supported(url: &str) -> Result<()> {
    if is_tls_url(url) && !cfg!(feature = "tls") {
        return Err(feature_missing(url));
    }
    Ok(())
}

/// The client for `url`: for a `rediss://` URL, with the CA and client
/// certificate of `tls` (files read now, so a missing one is a
/// configuration error at once).
pub(crate) fn client(url: &str, tls: &TlsOptions) -> Result<redis::Client> {
    let display = redact_url(url);
    let invalid = |e: redis::RedisError| Error::Config(format!("invalid Redis URL {display}: {e}"));
    if !is_tls_url(url) {
        return redis::Client::open(url).map_err(invalid);
    }
    #[cfg(not(feature = "tls"))]
    {
        let _ = tls;
        Err(feature_missing(url))
    }
    #[cfg(feature = "tls")]
    {
        install_crypto_provider();
        let read = |path: &std::path::Path, what: &str, env: &str| {
            std::fs::read(path).map_err(|e| {
                Error::Config(format!(
                    "cannot read the TLS {what} {} (TlsOptions or {env}): {e}",
                    path.display()
                ))
            })
        };
        let client_tls = match (&tls.client_cert_file, &tls.client_key_file) {
            (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
                client_cert: read(cert, "client certificate", CERT_ENV)?,
                client_key: read(key, "client key", KEY_ENV)?,
            }),
            (None, None) => None,
            _ => {
                return Err(Error::Config(format!(
                    "a TLS client certificate needs both a certificate and a key file \
                     ({CERT_ENV} and {KEY_ENV}, or TlsOptions::client_cert)"
                )));
            }
        };
        let root_cert = match &tls.ca_file {
            Some(ca) => Some(read(ca, "CA file", CA_ENV)?),
            None => None,
        };
        if client_tls.is_none() && root_cert.is_none() {
            return redis::Client::open(url).map_err(invalid);
        }
        redis::Client::build_with_tls(
            url,
            redis::TlsCertificates {
                client_tls,
                root_cert,
            },
        )
        .map_err(|e| Error::Config(format!("TLS setup for {display}: {e}")))
    }
}

/// rustls needs a process-wide crypto provider; jobstream brings `ring`.
/// One installed already (by the application) is kept.
#[cfg(feature = "tls")]
fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race to another thread installing one is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// True when a connection error's message is rustls refusing the
/// handshake: an untrusted or mismatched certificate, a client certificate
/// the server wants or refuses, or a server that does not speak TLS.
/// Retrying cannot help. (redis-rs keeps only the text of the TLS error.)
pub(crate) fn is_tls_refusal(message: &str) -> bool {
    [
        "invalid peer certificate",
        "received fatal alert",
        "received corrupt message",
        "peer is incompatible",
        "peer sent no certificates",
        "invalid certificate",
    ]
    .iter()
    .any(|m| message.contains(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_urls_are_recognised() {
        assert!(is_tls_url("rediss://h:6380"));
        assert!(is_tls_url("REDISS://h"));
        assert!(is_tls_url("valkeys://u:p@h/0"));
        assert!(!is_tls_url("redis://h"));
        assert!(!is_tls_url("redis+unix:///s.sock"));
        assert!(!is_tls_url("h:6379"));
    }

    #[cfg(not(feature = "tls"))]
    #[test]
    fn a_tls_url_without_the_feature_is_a_clear_config_error() {
        let url = "rediss://jobs:s3cret@127.0.0.1:6380/0";
        for err in [
            crate::Redis::check_url(url).unwrap_err(),
            crate::Redis::open(url, &crate::Timings::default()).unwrap_err(),
        ] {
            let msg = err.to_string();
            assert!(matches!(err, Error::Config(_)), "{msg}");
            assert!(err.is_fatal(), "{msg}");
            assert!(msg.contains("`tls` feature"), "{msg}");
            assert!(msg.contains("rediss://127.0.0.1:6380/0"), "{msg}");
            assert!(!msg.contains("s3cret"), "{msg}");
        }
        // Plain URLs are unaffected.
        crate::Redis::check_url("redis://127.0.0.1:6379").unwrap();
    }

    #[cfg(feature = "tls")]
    #[tokio::test]
    async fn tls_files_that_cannot_be_read_are_config_errors() {
        let url = "rediss://127.0.0.1:6380";
        let t = crate::Timings::default();
        let err = crate::Redis::open_with_tls(
            url,
            &t,
            &TlsOptions::default().ca_file("/nonexistent/ca.pem"),
        )
        .unwrap_err();
        assert!(
            matches!(&err, Error::Config(m) if m.contains("/nonexistent/ca.pem") && m.contains(CA_ENV)),
            "{err}"
        );
        let half = TlsOptions {
            client_cert_file: Some("/x/cert.pem".into()),
            ..TlsOptions::default()
        };
        let err = crate::Redis::open_with_tls(url, &t, &half).unwrap_err();
        assert!(
            matches!(&err, Error::Config(m) if m.contains(KEY_ENV)),
            "{err}"
        );
        // No files: the system roots; nothing connects yet.
        crate::Redis::open_with_tls(url, &t, &TlsOptions::default()).unwrap();
        crate::Redis::open_with_tls(
            "rediss://127.0.0.1:6380/#insecure",
            &t,
            &TlsOptions::default(),
        )
        .unwrap();
    }

    #[test]
    fn tls_refusals_are_recognised_by_rustls_messages() {
        assert!(is_tls_refusal(
            "Connection refused- invalid peer certificate: UnknownIssuer"
        ));
        assert!(is_tls_refusal("received fatal alert: CertificateRequired"));
        assert!(!is_tls_refusal("Connection refused (os error 111)"));
        assert!(!is_tls_refusal("broken pipe"));
    }
}
