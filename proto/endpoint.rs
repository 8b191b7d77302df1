//! How a client reaches the API: one function that turns a server URL and optional TLS
//! files into a tonic [`Endpoint`], shared by the CLI, the runner and the tests.
//!
//! `https://` URLs are verified against the public web roots plus, when given, a custom
//! CA file (an orchestrator with a private CA). A client certificate and key make it
//! mutual TLS, which an orchestrator may require of runners. TLS files given for an
//! `http://` URL are an error rather than silently unused: a setting must mean what it
//! says.

use std::path::{Path, PathBuf};

use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

/// The TLS files a client may present or trust.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientTls<'a> {
    /// A PEM file of CA certificates to trust besides the public web roots.
    pub ca_file: Option<&'a Path>,
    /// A PEM client certificate (chain) for mutual TLS; needs `key_file`.
    pub cert_file: Option<&'a Path>,
    /// The PEM private key of `cert_file`.
    pub key_file: Option<&'a Path>,
}

/// Why an endpoint could not be made.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// The URL does not parse or has no usable scheme.
    #[error("invalid server address `{url}`: {reason}")]
    InvalidUrl { url: String, reason: String },
    /// TLS files were configured for a plain-text URL.
    #[error("TLS files are configured but `{url}` is not an https:// address")]
    TlsWithoutHttps { url: String },
    /// Only one of the client certificate and its key was given.
    #[error("a client certificate needs both a certificate file and a key file")]
    HalfIdentity,
    /// A TLS file could not be read.
    #[error("cannot read {what} {}: {source}", path.display())]
    Read { what: &'static str, path: PathBuf, source: std::io::Error },
    /// tonic refused the TLS configuration.
    #[error("invalid TLS configuration: {0}")]
    Tls(#[from] tonic::transport::Error),
}

/// `url` as [`endpoint`] reads it: trimmed, without a trailing `/`, and with `http://`
/// when it names no scheme (`127.0.0.1:7420`). A scheme is recognised by its `://`, not by
/// a URL parser: one would read `localhost:7420` as the scheme `localhost`.
pub fn normalize(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    if url.contains("://") { url.to_owned() } else { format!("http://{url}") }
}

/// An endpoint for `url` (`http://` or `https://`; `http://` is assumed without a
/// scheme, see [`normalize`]), with TLS set up for `https://`.
pub fn endpoint(url: &str, tls: ClientTls<'_>) -> Result<Endpoint, EndpointError> {
    let url = normalize(url);
    let invalid = |reason: String| EndpointError::InvalidUrl { url: url.clone(), reason };
    let endpoint = Endpoint::from_shared(url.clone()).map_err(|err| invalid(err.to_string()))?;
    let https = match endpoint.uri().scheme_str() {
        Some("https") => true,
        Some("http") => false,
        other => return Err(invalid(format!("unsupported scheme {other:?}; use http:// or https://"))),
    };
    let any_file = tls.ca_file.is_some() || tls.cert_file.is_some() || tls.key_file.is_some();
    if !https {
        if any_file {
            return Err(EndpointError::TlsWithoutHttps { url });
        }
        return Ok(endpoint);
    }
    let mut config = ClientTlsConfig::new().with_webpki_roots();
    if let Some(path) = tls.ca_file {
        config = config.ca_certificate(Certificate::from_pem(read("CA file", path)?));
    }
    match (tls.cert_file, tls.key_file) {
        (Some(cert), Some(key)) => {
            config = config.identity(Identity::from_pem(read("certificate", cert)?, read("key", key)?));
        }
        (None, None) => {}
        _ => return Err(EndpointError::HalfIdentity),
    }
    Ok(endpoint.tls_config(config)?)
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, EndpointError> {
    std::fs::read(path).map_err(|source| EndpointError::Read { what, path: path.to_owned(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_without_scheme_is_http() {
        assert_eq!(normalize("127.0.0.1:7420"), "http://127.0.0.1:7420");
        assert_eq!(normalize("localhost:7420"), "http://localhost:7420");
        assert_eq!(normalize(" https://ci.example/ "), "https://ci.example");
    }

    #[test]
    fn plain_urls_take_no_tls_files() {
        assert!(endpoint("127.0.0.1:7420", ClientTls::default()).is_ok());
        let ca = Path::new("/nonexistent/ca.pem");
        let err = endpoint("http://127.0.0.1:7420", ClientTls { ca_file: Some(ca), ..ClientTls::default() })
            .expect_err("a CA file for http:// is refused");
        assert!(err.to_string().contains("is not an https:// address"), "{err}");
    }

    #[test]
    fn bad_inputs_name_what_is_wrong() {
        let err = endpoint("ftp://host", ClientTls::default()).expect_err("ftp is refused");
        assert!(err.to_string().contains("unsupported scheme"), "{err}");
        let ca = Path::new("/nonexistent/ca.pem");
        let err = endpoint("https://host:7420", ClientTls { ca_file: Some(ca), ..ClientTls::default() })
            .expect_err("a missing CA file is refused");
        assert!(err.to_string().contains("cannot read CA file /nonexistent/ca.pem"), "{err}");
        let err = endpoint("https://host:7420", ClientTls { cert_file: Some(ca), ..ClientTls::default() })
            .expect_err("half an identity is refused");
        assert!(matches!(err, EndpointError::HalfIdentity));
    }
}
