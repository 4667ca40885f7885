//! Listener hygiene shared by every server socket of the gateway (OTLP/gRPC, OTLP/HTTP,
//! admin; later the sidecar proxy and the Pinpoint receiver): the accept loop with a
//! connection limit, header/body/idle timeouts, TLS (optionally mutual) and
//! bearer/basic authentication as a tower layer.
//!
//! A server hands [`serve`] a bound `TcpListener`, its [`Options`] and a tower service
//! over `http::Request<TimedBody>` (axum routers and tonic `Routes` both are one).
//! Everything that can be refused is counted in `bridge_listener_*` metrics labelled
//! with the listener's name.
//!
//! Architecture invariant: every listener has its own connection pool; a flood on one
//! (idle, slow or many connections) closes that listener's idle connections first and
//! never takes the admin endpoint's room.

use std::path::PathBuf;
use std::sync::Arc;

pub mod auth;
mod body;
pub mod config;
mod conns;
mod serve;
pub mod tls;

pub use auth::{Auth, AuthLayer};
pub use body::{BodyTimeout, TimedBody};
pub use config::{AuthConfig, Limits, LimitsConfig, TlsConfig};
pub use serve::serve;

/// Why a listener could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    /// A secret file that cannot be read, or is empty.
    #[error("{what}: cannot read {}: {reason}", path.display())]
    Secret {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    /// A TLS file or setting that is wrong.
    #[error("{what}: {}: {reason}", path.display())]
    Tls {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
}

/// How one listener protects itself.
#[derive(Clone)]
pub struct Options {
    /// The `listener` label of its metrics (`otlp_grpc`, `otlp_http`, `admin`, ...).
    pub name: &'static str,
    pub limits: Limits,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    pub auth: Option<Arc<Auth>>,
}

/// One listener's `limits`, `tls` and `auth` keys, as the config holds them.
#[derive(Debug, Clone, Copy)]
pub struct Protection<'a> {
    pub limits: &'a LimitsConfig,
    pub tls: Option<&'a TlsConfig>,
    pub auth: Option<&'a AuthConfig>,
}

impl Options {
    /// Resolves `protection` for the listener `name`: `defaults` for unset limits, TLS
    /// files and secret files read now. `open_paths` are served without credentials.
    ///
    /// # Errors
    /// A TLS file or secret file that cannot be used.
    pub fn new(
        name: &'static str,
        defaults: Limits,
        protection: Protection<'_>,
        open_paths: &'static [&'static str],
    ) -> Result<Self, ListenerError> {
        Ok(Self {
            name,
            limits: protection.limits.resolve(defaults),
            tls: protection.tls.map(tls::acceptor).transpose()?,
            auth: protection
                .auth
                .map(|a| Auth::new(a, open_paths).map(Arc::new))
                .transpose()?,
        })
    }

    /// Plain TCP, no credentials, `limits`.
    #[must_use]
    pub fn plain(name: &'static str, limits: Limits) -> Self {
        Self {
            name,
            limits,
            tls: None,
            auth: None,
        }
    }

    /// `"https"` with TLS, else `"http"` (for logs and the status page).
    #[must_use]
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }
}

/// The soft limit on open files of this process (Linux `/proc/self/limits`), if known.
#[must_use]
pub fn open_file_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    match line.split_whitespace().nth(3)? {
        "unlimited" => Some(u64::MAX),
        soft => soft.parse().ok(),
    }
}

/// Warns when the listeners' `max_connections` add up to more than the open-file limit
/// leaves room for: past it, accepting fails on every listener (admin included) before
/// any connection limit is reached.
pub fn check_open_files(connections: usize) {
    /// Descriptors for everything that is not an accepted connection.
    const HEADROOM: u64 = 256;
    if let Some(limit) = open_file_limit()
        && (connections as u64).saturating_add(HEADROOM) > limit
    {
        tracing::warn!(
            open_file_limit = limit,
            max_connections = connections,
            "the listeners' max_connections add up to more than the open-file limit allows \
             (ulimit -n); raise the limit or lower limits.max_connections"
        );
    }
}
