//! The TLS acceptor of one listener: rustls with the `ring` provider, handed to this
//! listener only (no process-wide TLS state). ALPN offers `h2` and `http/1.1`, so one
//! TLS listener serves gRPC and HTTP/1.1 clients alike.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

use super::ListenerError;
use super::config::TlsConfig;

fn certs(
    path: &std::path::Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, ListenerError> {
    let bad = |reason: String| ListenerError::Tls {
        what,
        path: path.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no PEM certificate in the file".to_owned()));
    }
    Ok(certs)
}

/// Builds the acceptor `config` describes, reading its PEM files.
///
/// # Errors
/// [`ListenerError::Tls`] naming the file or setting that is wrong.
pub fn acceptor(config: &TlsConfig) -> Result<TlsAcceptor, ListenerError> {
    let chain = certs(&config.cert_file, "tls.cert_file")?;
    let key = PrivateKeyDer::from_pem_file(&config.key_file).map_err(|e| ListenerError::Tls {
        what: "tls.key_file",
        path: config.key_file.clone(),
        reason: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| ListenerError::Tls {
            what: "tls",
            path: config.cert_file.clone(),
            reason: e.to_string(),
        })?;
    let builder = match &config.client_ca_file {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for cert in certs(path, "tls.client_ca_file")? {
                roots.add(cert).map_err(|e| ListenerError::Tls {
                    what: "tls.client_ca_file",
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| ListenerError::Tls {
                    what: "tls.client_ca_file",
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut server = builder
        .with_single_cert(chain, key)
        .map_err(|e| ListenerError::Tls {
            what: "tls.key_file",
            path: config.key_file.clone(),
            reason: format!("does not match tls.cert_file: {e}"),
        })?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(server)))
}
