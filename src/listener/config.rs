//! The listener keys shared by every listener section (`limits`, `tls`, `auth`): serde
//! types, their defaults and their validation. Nothing here reads a file.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::config::de_duration;

/// `limits:`: connection and request limits of one listener. Every key is optional; a
/// missing key takes the listener's default ([`Limits::RECEIVER`] or [`Limits::ADMIN`]).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Open connections at most; a new one then replaces the longest-idle connection, or
    /// is closed at once if every connection is busy.
    #[serde(default)]
    pub max_connections: Option<usize>,
    /// Concurrent HTTP/2 streams (gRPC calls) per connection.
    #[serde(default)]
    pub max_concurrent_streams: Option<u32>,
    /// Time from accepting a connection to its first complete request head (TLS
    /// handshake included). Later heads on a kept-alive connection fall under
    /// `idle_timeout`.
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub header_read_timeout: Option<Duration>,
    /// Time to receive a whole request body, counted from its head.
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub body_read_timeout: Option<Duration>,
    /// A kept-alive connection with no request in flight for this long is closed.
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub idle_timeout: Option<Duration>,
}

fn de_opt_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    de_duration(d).map(Some)
}

/// Resolved limits of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: usize,
    pub max_concurrent_streams: u32,
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub idle_timeout: Duration,
}

impl Limits {
    /// Defaults of the OTLP receivers.
    pub const RECEIVER: Limits = Limits {
        max_connections: 4096,
        max_concurrent_streams: 100,
        header_read_timeout: Duration::from_secs(10),
        body_read_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(120),
    };
    /// Defaults of the admin endpoint: a small pool of its own, so a flood on the
    /// receivers never takes the file descriptors that `/healthz` needs.
    pub const ADMIN: Limits = Limits {
        max_connections: 64,
        max_concurrent_streams: 16,
        header_read_timeout: Duration::from_secs(5),
        body_read_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(30),
    };
}

impl LimitsConfig {
    /// These limits, with `defaults` for the keys not set.
    #[must_use]
    pub fn resolve(&self, defaults: Limits) -> Limits {
        Limits {
            max_connections: self.max_connections.unwrap_or(defaults.max_connections),
            max_concurrent_streams: self
                .max_concurrent_streams
                .unwrap_or(defaults.max_concurrent_streams),
            header_read_timeout: self
                .header_read_timeout
                .unwrap_or(defaults.header_read_timeout),
            body_read_timeout: self.body_read_timeout.unwrap_or(defaults.body_read_timeout),
            idle_timeout: self.idle_timeout.unwrap_or(defaults.idle_timeout),
        }
    }
}

/// `tls:`: serve TLS (1.2 and 1.3, rustls with the `ring` provider).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the server certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM file with the server's private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// PEM file with the CA certificates that sign client certificates. When set, every
    /// client must present a certificate signed by one of them (mutual TLS).
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
}

/// `auth:`: credentials every request must carry in `Authorization`. With both
/// `bearer` and `basic` set, either is accepted.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// `Authorization: Bearer <token>`.
    #[serde(default)]
    pub bearer: Option<BearerConfig>,
    /// `Authorization: Basic <base64(username:password)>`.
    #[serde(default)]
    pub basic: Option<BasicConfig>,
}

/// `auth.bearer:`: the token, inline (use `${env:NAME}`) or in a file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BearerConfig {
    #[serde(default)]
    pub token: Option<String>,
    /// A file holding the token (surrounding whitespace is ignored).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}

/// `auth.basic:`: one user; the password inline (use `${env:NAME}`) or in a file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicConfig {
    pub username: String,
    #[serde(default)]
    pub password: Option<String>,
    /// A file holding the password (surrounding whitespace is ignored).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
}

/// Checks one listener's `limits`, `tls` and `auth`; each problem is `(path below the
/// listener, message)`.
#[must_use]
pub fn validate(
    limits: &LimitsConfig,
    auth: Option<&AuthConfig>,
) -> Vec<(&'static str, &'static str)> {
    let mut out = Vec::new();
    if limits.max_connections == Some(0) {
        out.push(("limits.max_connections", "must be at least 1"));
    }
    if limits.max_concurrent_streams == Some(0) {
        out.push(("limits.max_concurrent_streams", "must be at least 1"));
    }
    for (path, d) in [
        ("limits.header_read_timeout", limits.header_read_timeout),
        ("limits.body_read_timeout", limits.body_read_timeout),
        ("limits.idle_timeout", limits.idle_timeout),
    ] {
        if d.is_some_and(|d| d.is_zero()) {
            out.push((path, "must be greater than 0"));
        }
    }
    if let Some(a) = auth {
        if a.bearer.is_none() && a.basic.is_none() {
            out.push(("auth", "set `bearer` or `basic` (or remove `auth`)"));
        }
        if let Some(b) = &a.bearer {
            match (&b.token, &b.token_file) {
                (Some(_), Some(_)) | (None, None) => {
                    out.push(("auth.bearer", "set exactly one of `token` and `token_file`"));
                }
                (Some(t), None) if t.trim().is_empty() => {
                    out.push(("auth.bearer.token", "must not be empty"));
                }
                _ => {}
            }
        }
        if let Some(b) = &a.basic {
            if b.username.is_empty() || b.username.contains(':') {
                out.push(("auth.basic.username", "must be non-empty without `:`"));
            }
            match (&b.password, &b.password_file) {
                (Some(_), Some(_)) | (None, None) => out.push((
                    "auth.basic",
                    "set exactly one of `password` and `password_file`",
                )),
                (Some(p), None) if p.is_empty() => {
                    out.push(("auth.basic.password", "must not be empty"));
                }
                _ => {}
            }
        }
    }
    out
}

/// The files one listener's `tls` and `auth` name, with their paths below the listener,
/// so that `check-config` can say which is missing before start-up tries to read it.
#[must_use]
pub fn files<'a>(
    tls: Option<&'a TlsConfig>,
    auth: Option<&'a AuthConfig>,
) -> Vec<(&'static str, &'a std::path::Path)> {
    let mut out = Vec::new();
    if let Some(t) = tls {
        out.push(("tls.cert_file", t.cert_file.as_path()));
        out.push(("tls.key_file", t.key_file.as_path()));
        if let Some(ca) = &t.client_ca_file {
            out.push(("tls.client_ca_file", ca.as_path()));
        }
    }
    if let Some(a) = auth {
        if let Some(f) = a.bearer.as_ref().and_then(|b| b.token_file.as_deref()) {
            out.push(("auth.bearer.token_file", f));
        }
        if let Some(f) = a.basic.as_ref().and_then(|b| b.password_file.as_deref()) {
            out.push(("auth.basic.password_file", f));
        }
    }
    out
}
