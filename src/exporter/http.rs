//! The one HTTP client of the HTTP exporters (Zipkin, Pyroscope): hyper's pooled client,
//! HTTP/1.1 and HTTP/2 (by ALPN over TLS), TLS by rustls with the `ring` provider passed
//! explicitly (no process-wide default is installed) and the system's CA certificates.
//! It sends and reads answers; what an answer means is each exporter's business.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderMap, RETRY_AFTER};
use http::{Method, Request, Uri};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// How much of a response body is kept (answers are short; errors are for the log).
pub const MAX_BODY: usize = 64 * 1024;

/// A problem with the client settings, found before any request is sent.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("TLS: no CA certificates found in the system's store ({0})")]
    NoRootCertificates(String),
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
}

/// What the server answered.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<String>,
    /// At most [`MAX_BODY`] bytes of the body.
    pub body: Bytes,
}

/// Why no answer came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The connection could not be made (refused, DNS, TLS handshake).
    Connect(String),
    /// The connection broke during the exchange.
    Io(String),
    /// No answer within the timeout.
    Timeout(Duration),
}

impl Failure {
    /// Label for metrics.
    #[must_use]
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Connect(_) => "connect_error",
            Self::Io(_) => "io_error",
            Self::Timeout(_) => "timeout",
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Connect(m) | Self::Io(m) => f.write_str(m),
            Self::Timeout(t) => write!(f, "no answer within {t:?}"),
        }
    }
}

/// A pooled HTTP(S) client.
#[derive(Clone)]
pub struct HttpClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl HttpClient {
    /// Builds the client; with `https`, loads the system's CA certificates.
    ///
    /// # Errors
    /// [`SetupError`] when https is wanted and no CA certificate can be trusted.
    pub fn new(https: bool) -> Result<Self, SetupError> {
        Ok(Self::with_tls(tls_config(https)?))
    }

    /// Builds the client with the caller's TLS configuration (its own CA file, a client
    /// certificate).
    #[must_use]
    pub fn with_tls(tls: rustls::ClientConfig) -> Self {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .build();
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Self { client }
    }

    /// POSTs `body` with `headers` to `uri`, waiting at most `timeout` for the answer
    /// (body included).
    ///
    /// # Errors
    /// [`Failure`] when no answer came.
    pub async fn post(
        &self,
        uri: Uri,
        headers: &HeaderMap,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Answer, Failure> {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .body(Full::new(body))
            .map_err(|e| Failure::Io(format!("cannot build request: {e}")))?;
        req.headers_mut().extend(headers.clone());
        let exchange = async {
            let resp = self.client.request(req).await?;
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            // Read (a bounded part of) the body: it frees the connection for reuse.
            let body = match Limited::new(resp.into_body(), MAX_BODY).collect().await {
                Ok(b) => b.to_bytes(),
                Err(_) => Bytes::from_static(b"(long body not shown)"),
            };
            Ok::<_, hyper_util::client::legacy::Error>(Answer {
                status,
                retry_after,
                body,
            })
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) if e.is_connect() => Err(Failure::Connect(error_chain(&e))),
            Ok(Err(e)) => Err(Failure::Io(error_chain(&e))),
            Err(_) => Err(Failure::Timeout(timeout)),
        }
    }
}

/// Gzips `data` (fast level: the gateway's CPU matters more than a few bytes).
///
/// # Errors
/// Only if compression fails, which it does not do in memory.
pub fn gzip(data: &[u8]) -> std::io::Result<Bytes> {
    let mut gz = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 4 + 64),
        flate2::Compression::fast(),
    );
    gz.write_all(data)?;
    Ok(Bytes::from(gz.finish()?))
}

/// An error and its sources, `a: b: c`.
#[must_use]
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

/// rustls with the `ring` provider; the system's CA certificates when `https` is true.
fn tls_config(https: bool) -> Result<rustls::ClientConfig, SetupError> {
    let mut roots = rustls::RootCertStore::empty();
    if https {
        let found = rustls_native_certs::load_native_certs();
        let (added, _unparsable) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            let why = found
                .errors
                .first()
                .map_or_else(|| "none found".to_owned(), ToString::to_string);
            return Err(SetupError::NoRootCertificates(why));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connection_refused_is_a_connect_failure() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("port");
        let c = HttpClient::new(false).expect("client");
        let uri: Uri = format!("http://127.0.0.1:{port}/x").parse().expect("uri");
        let r = c
            .post(uri, &HeaderMap::new(), Bytes::new(), Duration::from_secs(5))
            .await;
        assert!(matches!(r, Err(Failure::Connect(_))), "{r:?}");
    }

    #[test]
    fn gzip_round_trips() {
        let z = gzip(b"hello hello hello").expect("gzip");
        let mut out = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&z[..]), &mut out)
            .expect("gunzip");
        assert_eq!(out, "hello hello hello");
    }
}
