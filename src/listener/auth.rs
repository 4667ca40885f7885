//! Bearer-token and basic authentication as a tower layer.
//!
//! [`AuthLayer`] checks `Authorization` before the inner service sees the request. A
//! request without valid credentials gets 401 with `WWW-Authenticate` (HTTP) or
//! `UNAUTHENTICATED` (gRPC, recognized by its `application/grpc` content type), and is
//! counted in `bridge_listener_auth_failures_total{listener, reason}`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{Either, Full};

use super::ListenerError;
use super::config::AuthConfig;
use crate::selfmetrics as m;

/// The credentials one listener accepts (secrets already read).
#[derive(Clone)]
pub struct Auth {
    /// Accepted `Authorization` values, compared whole (scheme case-insensitively).
    bearer: Option<Vec<u8>>,
    basic: Option<Vec<u8>>,
    /// Paths served without credentials (admin's probes).
    open_paths: &'static [&'static str],
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("bearer", &self.bearer.is_some())
            .field("basic", &self.basic.is_some())
            .field("open_paths", &self.open_paths)
            .finish()
    }
}

/// Reads a secret file; surrounding whitespace (a trailing newline) is not part of it.
fn read_secret(path: &std::path::Path, what: &'static str) -> Result<String, ListenerError> {
    let text = std::fs::read_to_string(path).map_err(|e| ListenerError::Secret {
        what,
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let text = text.trim();
    if text.is_empty() {
        return Err(ListenerError::Secret {
            what,
            path: path.to_owned(),
            reason: "the file is empty".to_owned(),
        });
    }
    Ok(text.to_owned())
}

impl Auth {
    /// Builds the checker from `config`, reading secret files. `open_paths` are served
    /// without credentials.
    ///
    /// # Errors
    /// [`ListenerError::Secret`] for a secret file that cannot be read or is empty.
    pub fn new(
        config: &AuthConfig,
        open_paths: &'static [&'static str],
    ) -> Result<Self, ListenerError> {
        let bearer = match &config.bearer {
            Some(b) => {
                let token = match (&b.token, &b.token_file) {
                    (Some(t), _) => t.trim().to_owned(),
                    (None, Some(p)) => read_secret(p, "auth.bearer.token_file")?,
                    (None, None) => String::new(),
                };
                Some(format!("bearer {token}").into_bytes())
            }
            None => None,
        };
        let basic = match &config.basic {
            Some(b) => {
                let password = match (&b.password, &b.password_file) {
                    (Some(p), _) => p.clone(),
                    (None, Some(p)) => read_secret(p, "auth.basic.password_file")?,
                    (None, None) => String::new(),
                };
                let creds = base64(format!("{}:{password}", b.username).as_bytes());
                Some(format!("basic {creds}").into_bytes())
            }
            None => None,
        };
        Ok(Self {
            bearer,
            basic,
            open_paths,
        })
    }

    /// `Ok` when the request may pass; else the failure reason (a metric label).
    fn check<B>(&self, request: &Request<B>) -> Result<(), &'static str> {
        if self.open_paths.contains(&request.uri().path()) {
            return Ok(());
        }
        let Some(value) = request.headers().get(header::AUTHORIZATION) else {
            return Err("missing");
        };
        let given = value.as_bytes();
        let matches = |want: &Option<Vec<u8>>| want.as_deref().is_some_and(|w| same(given, w));
        if matches(&self.bearer) || matches(&self.basic) {
            Ok(())
        } else {
            Err("invalid")
        }
    }
}

/// Compares an `Authorization` value with an expected one: the scheme (up to the first
/// space) case-insensitively, the credentials exactly, in time independent of where
/// they differ.
fn same(given: &[u8], want: &[u8]) -> bool {
    if given.len() != want.len() {
        return false;
    }
    let scheme = want.iter().position(|&b| b == b' ').unwrap_or(0);
    let mut diff = 0u8;
    for (i, (g, w)) in given.iter().zip(want).enumerate() {
        let g = if i < scheme {
            g.to_ascii_lowercase()
        } else {
            *g
        };
        diff |= g ^ w;
    }
    diff == 0
}

/// Standard base64 with padding (RFC 4648 section 4).
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The rejection: gRPC `UNAUTHENTICATED` (trailers-only) or HTTP 401.
fn reject<B>(request: &Request<B>, listener: &str) -> Response<Full<Bytes>> {
    let grpc = request
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    let message = format!("{listener}: missing or invalid credentials in the Authorization header");
    let mut response = if grpc {
        let mut r = Response::new(Full::new(Bytes::new()));
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        // 16 = UNAUTHENTICATED.
        h.insert("grpc-status", HeaderValue::from_static("16"));
        if let Ok(v) = HeaderValue::from_str(&message.replace(' ', "%20")) {
            h.insert("grpc-message", v);
        }
        r
    } else {
        let mut r = Response::new(Full::new(Bytes::from(message + "\n")));
        *r.status_mut() = StatusCode::UNAUTHORIZED;
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        r
    };
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer, Basic realm=\"otel-pinpoint-bridge\""),
    );
    response
}

/// Checks credentials before the inner service; see the module docs.
#[derive(Clone)]
pub struct AuthLayer {
    auth: Arc<Auth>,
    listener: &'static str,
}

impl AuthLayer {
    /// Guards a listener named `listener` (the metric label) with `auth`.
    #[must_use]
    pub fn new(auth: Arc<Auth>, listener: &'static str) -> Self {
        Self { auth, listener }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            auth: Arc::clone(&self.auth),
            listener: self.listener,
        }
    }
}

/// The service [`AuthLayer`] builds.
#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    auth: Arc<Auth>,
    listener: &'static str,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, RB> tower::Service<Request<B>> for AuthService<S>
where
    S: tower::Service<Request<B>, Response = Response<RB>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    RB: Send + 'static,
{
    type Response = Response<Either<RB, Full<Bytes>>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        match self.auth.check(&request) {
            Ok(()) => {
                let future = self.inner.call(request);
                Box::pin(async move { Ok(future.await?.map(Either::Left)) })
            }
            Err(reason) => {
                metrics::counter!(m::LISTENER_AUTH_FAILURES, "listener" => self.listener, "reason" => reason)
                    .increment(1);
                let response = reject(&request, self.listener).map(Either::Right);
                Box::pin(std::future::ready(Ok(response)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listener::config::{BasicConfig, BearerConfig};

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
            ("Aladdin:open sesame", "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
        ] {
            assert_eq!(base64(input.as_bytes()), want, "{input}");
        }
    }

    fn request(path: &str, authorization: Option<&str>) -> Request<()> {
        let mut b = Request::builder().uri(path);
        if let Some(a) = authorization {
            b = b.header(header::AUTHORIZATION, a);
        }
        b.body(()).expect("request")
    }

    #[test]
    fn credentials_table() {
        let auth = Auth::new(
            &AuthConfig {
                bearer: Some(BearerConfig {
                    token: Some("s3cret".to_owned()),
                    token_file: None,
                }),
                basic: Some(BasicConfig {
                    username: "Aladdin".to_owned(),
                    password: Some("open sesame".to_owned()),
                    password_file: None,
                }),
            },
            &["/healthz"],
        )
        .expect("auth");
        let check = |path: &str, a: Option<&str>, want: Result<(), &str>| {
            assert_eq!(auth.check(&request(path, a)), want, "{path} {a:?}");
        };
        check("/v1/traces", Some("Bearer s3cret"), Ok(()));
        check("/v1/traces", Some("bearer s3cret"), Ok(()));
        check("/v1/traces", Some("BEARER s3cret"), Ok(()));
        check("/v1/traces", Some("Bearer S3cret"), Err("invalid"));
        check("/v1/traces", Some("Bearer s3cre"), Err("invalid"));
        check("/v1/traces", Some("Bearer s3crett"), Err("invalid"));
        check("/v1/traces", Some("s3cret"), Err("invalid"));
        check(
            "/v1/traces",
            Some("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
            Ok(()),
        );
        check(
            "/v1/traces",
            Some("Basic QWxhZGRpbjpvcGVuIHNlc2FtZR=="),
            Err("invalid"),
        );
        check("/v1/traces", None, Err("missing"));
        check("/healthz", None, Ok(()));
        check("/healthz/x", None, Err("missing"));
    }

    #[test]
    fn secrets_come_from_files_without_surrounding_whitespace() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        std::fs::write(&path, "from-file\n").expect("write");
        let auth = Auth::new(
            &AuthConfig {
                bearer: Some(BearerConfig {
                    token: None,
                    token_file: Some(path.clone()),
                }),
                basic: None,
            },
            &[],
        )
        .expect("auth");
        assert_eq!(auth.check(&request("/", Some("Bearer from-file"))), Ok(()));
        std::fs::write(&path, " \n").expect("write");
        let empty = Auth::new(
            &AuthConfig {
                bearer: Some(BearerConfig {
                    token: None,
                    token_file: Some(path),
                }),
                basic: None,
            },
            &[],
        );
        assert!(
            matches!(empty, Err(ListenerError::Secret { .. })),
            "{empty:?}"
        );
    }
}
