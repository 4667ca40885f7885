//! TLS settings of the `otlp` exporter (`tls:`): a CA file to trust instead of the
//! system's store, and a client certificate for mutual TLS. TLS is on when the endpoint
//! is `https://`. The files are read once, at start.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

/// `exporters.<name>.tls:` of `type: otlp`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file of the CA certificates to trust. Default: the system's store.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// PEM client certificate (chain) for mutual TLS; needs `key_file`.
    #[serde(default)]
    pub cert_file: Option<String>,
    /// PEM private key of `cert_file`.
    #[serde(default)]
    pub key_file: Option<String>,
    /// Name the server certificate must carry. Default: the endpoint's host (or, with
    /// `resolve`, the resolved name).
    #[serde(default)]
    pub server_name: Option<String>,
}

impl TlsConfig {
    /// Problems with the values, as `(key, message)`.
    #[must_use]
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        match (&self.cert_file, &self.key_file) {
            (Some(_), None) => vec![("tls.key_file", "needed with tls.cert_file".to_owned())],
            (None, Some(_)) => vec![("tls.cert_file", "needed with tls.key_file".to_owned())],
            _ => Vec::new(),
        }
    }
}

/// A TLS file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("tls: cannot read `{0}`: {1}")]
    Read(String, String),
    #[error("tls: `{0}` holds no PEM certificate")]
    NoCertificate(String),
    #[error("tls: `{0}` holds no PEM private key")]
    NoKey(String),
    #[error("tls: no CA certificates found in the system's store ({0})")]
    NoRoots(String),
    #[error("tls: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The PEM contents of the configured files.
#[derive(Debug, Default)]
pub struct TlsFiles {
    pub ca_pem: Option<Vec<u8>>,
    /// `(certificate chain, private key)`.
    pub identity_pem: Option<(Vec<u8>, Vec<u8>)>,
}

fn read(path: &str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::Read(path.to_owned(), e.to_string()))
}

impl TlsFiles {
    /// Reads the files `cfg` names.
    ///
    /// # Errors
    /// [`TlsError::Read`] when a file cannot be read.
    pub fn load(cfg: &TlsConfig) -> Result<Self, TlsError> {
        let ca_pem = cfg.ca_file.as_deref().map(read).transpose()?;
        let identity_pem = match (&cfg.cert_file, &cfg.key_file) {
            (Some(c), Some(k)) => Some((read(c)?, read(k)?)),
            _ => None,
        };
        Ok(Self {
            ca_pem,
            identity_pem,
        })
    }
}

/// The rustls client configuration for OTLP/HTTP over TLS (ring provider, like every
/// client of the bridge).
///
/// # Errors
/// [`TlsError`] when a file is unreadable or holds no certificate or key.
pub fn rustls_config(cfg: &TlsConfig) -> Result<rustls::ClientConfig, TlsError> {
    let files = TlsFiles::load(cfg)?;
    let mut roots = rustls::RootCertStore::empty();
    if let (Some(pem), Some(path)) = (&files.ca_pem, &cfg.ca_file) {
        let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
            .filter_map(Result::ok)
            .collect();
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(TlsError::NoCertificate(path.clone()));
        }
    } else {
        let found = rustls_native_certs::load_native_certs();
        let (added, _) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            let why = found
                .errors
                .first()
                .map_or_else(|| "none found".to_owned(), ToString::to_string);
            return Err(TlsError::NoRoots(why));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    Ok(match (&files.identity_pem, &cfg.cert_file, &cfg.key_file) {
        (Some((cert, key)), Some(cert_path), Some(key_path)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert)
                .filter_map(Result::ok)
                .collect();
            if chain.is_empty() {
                return Err(TlsError::NoCertificate(cert_path.clone()));
            }
            let key = PrivateKeyDer::from_pem_slice(key)
                .map_err(|_| TlsError::NoKey(key_path.clone()))?;
            builder.with_client_auth_cert(chain, key)?
        }
        _ => builder.with_no_client_auth(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cert_and_key_go_together() {
        let mut c = TlsConfig::default();
        assert!(c.problems().is_empty());
        c.cert_file = Some("c.pem".into());
        assert_eq!(c.problems()[0].0, "tls.key_file");
        c.key_file = Some("k.pem".into());
        assert!(c.problems().is_empty());
        c.cert_file = None;
        assert_eq!(c.problems()[0].0, "tls.cert_file");
    }

    #[test]
    fn unreadable_and_empty_files_are_named() {
        let c = TlsConfig {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..Default::default()
        };
        let e = rustls_config(&c).expect_err("missing file");
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
        let dir = tempfile::tempdir().expect("tmp");
        let empty = dir.path().join("ca.pem");
        std::fs::write(&empty, "not pem").expect("write");
        let c = TlsConfig {
            ca_file: Some(empty.display().to_string()),
            ..Default::default()
        };
        assert!(matches!(rustls_config(&c), Err(TlsError::NoCertificate(_))));
    }
}
