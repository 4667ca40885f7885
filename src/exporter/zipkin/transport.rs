//! The Zipkin exporter's HTTP transport: POSTs an encoded body (gzip or not) to the
//! collector and classifies the answer for the pipeline's retry loop. It knows nothing
//! about OpenTelemetry.
//!
//! HTTP/1.1 and HTTP/2 (by ALPN over TLS) through hyper's pooled client; TLS is rustls
//! with the `ring` provider, passed explicitly (no process-wide default is installed),
//! trusting the system's CA certificates.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{
    CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER,
};
use http::{Method, Request, Uri};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::exporter::ExportError;
use crate::selfmetrics as m;

/// How much of an error response is kept for the log.
const MAX_ERROR_BODY: usize = 1024;

/// What the retry loop should do after one POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The collector took the spans (2xx).
    Delivered,
    /// Worth trying again, after the server's `Retry-After` when it gave one.
    Retry(Option<Duration>),
    /// Trying again cannot help (the collector refused the data, or answered oddly).
    Reject,
}

/// Classifies an HTTP answer: 2xx delivered; 429 and 503 retried, honouring a
/// `Retry-After` in seconds; other 5xx (502, 504, ...) retried with backoff; 400, every
/// other 4xx, and 1xx/3xx (redirects are not followed) are not retried.
#[must_use]
pub fn classify(status: u16, retry_after: Option<&str>) -> Verdict {
    match status {
        200..=299 => Verdict::Delivered,
        429 | 503 => Verdict::Retry(retry_after.and_then(parse_retry_after)),
        500..=599 => Verdict::Retry(None),
        _ => Verdict::Reject,
    }
}

/// `Retry-After` as delta-seconds; an HTTP-date is not read (the backoff applies).
fn parse_retry_after(v: &str) -> Option<Duration> {
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// A problem with the transport settings, found before any request is sent.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("endpoint `{0}` is not an http:// or https:// URL")]
    Endpoint(String),
    #[error("header `{0}`: invalid name or value")]
    Header(String),
    #[error("TLS: no CA certificates found in the system's store ({0})")]
    NoRootCertificates(String),
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
}

/// What the transport is built from (the config, minus what it does not need).
#[derive(Debug, Clone)]
pub struct Settings<'a> {
    pub endpoint: &'a str,
    pub headers: &'a BTreeMap<String, String>,
    pub timeout: Duration,
    pub content_type: &'static str,
    pub gzip: bool,
    /// Label of the exporter in metrics.
    pub exporter: &'a str,
}

/// POSTs bodies to one URL.
pub struct Transport {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    uri: Uri,
    headers: HeaderMap,
    timeout: Duration,
    gzip: bool,
    exporter: String,
}

/// Checks that `endpoint` is an absolute http(s) URL with a host.
///
/// # Errors
/// [`SetupError::Endpoint`] otherwise.
pub fn parse_endpoint(endpoint: &str) -> Result<Uri, SetupError> {
    let bad = || SetupError::Endpoint(endpoint.to_owned());
    let uri: Uri = endpoint.parse().map_err(|_| bad())?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    if !scheme_ok || uri.host().is_none_or(str::is_empty) {
        return Err(bad());
    }
    Ok(uri)
}

/// The extra request headers, checked.
///
/// # Errors
/// [`SetupError::Header`] naming the first bad header.
pub fn parse_headers(headers: &BTreeMap<String, String>) -> Result<HeaderMap, SetupError> {
    let mut out = HeaderMap::new();
    for (k, v) in headers {
        let name =
            HeaderName::from_bytes(k.as_bytes()).map_err(|_| SetupError::Header(k.clone()))?;
        let value = HeaderValue::from_str(v).map_err(|_| SetupError::Header(k.clone()))?;
        out.insert(name, value);
    }
    Ok(out)
}

impl Transport {
    /// Builds the client. Loads the system's CA certificates when the endpoint is https.
    ///
    /// # Errors
    /// [`SetupError`] for a bad endpoint or header, or an https endpoint without any
    /// CA certificate to trust.
    pub fn new(s: &Settings<'_>) -> Result<Self, SetupError> {
        let uri = parse_endpoint(s.endpoint)?;
        let mut headers = parse_headers(s.headers)?;
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(s.content_type));
        if s.gzip {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        let tls = tls_config(uri.scheme_str() == Some("https"))?;
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
        Ok(Self {
            client,
            uri,
            headers,
            timeout: s.timeout,
            gzip: s.gzip,
            exporter: s.exporter.to_owned(),
        })
    }

    /// Turns an encoded batch into the request body: gzipped when configured.
    ///
    /// # Errors
    /// Only if compression fails, which it does not do in memory.
    pub fn body(&self, encoded: Vec<u8>) -> std::io::Result<Bytes> {
        if !self.gzip {
            return Ok(Bytes::from(encoded));
        }
        let mut gz = flate2::write::GzEncoder::new(
            Vec::with_capacity(encoded.len() / 4 + 64),
            flate2::Compression::fast(),
        );
        gz.write_all(&encoded)?;
        Ok(Bytes::from(gz.finish()?))
    }

    /// POSTs `body` once, within the timeout.
    ///
    /// # Errors
    /// [`ExportError::Retryable`] for timeouts, connection errors, 429 and 5xx;
    /// [`ExportError::Permanent`] for other answers that are not 2xx.
    pub async fn post(&self, body: Bytes) -> Result<(), ExportError> {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(self.uri.clone())
            .body(Full::new(body))
            .map_err(|e| ExportError::Permanent(format!("cannot build request: {e}")))?;
        req.headers_mut().extend(self.headers.clone());
        let exchange = async {
            let resp = self.client.request(req).await?;
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            // Read (a bounded part of) the body: it says why, and frees the connection.
            let text = match Limited::new(resp.into_body(), MAX_ERROR_BODY)
                .collect()
                .await
            {
                Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
                Err(_) => String::from("(long body not shown)"),
            };
            Ok::<_, hyper_util::client::legacy::Error>((status, retry_after, text))
        };
        let (status, retry_after, text) = match tokio::time::timeout(self.timeout, exchange).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => {
                let outcome = if e.is_connect() {
                    "connect_error"
                } else {
                    "io_error"
                };
                self.count(outcome);
                return Err(ExportError::Retryable {
                    message: format!("POST {}: {}", self.uri, error_chain(&e)),
                    after: None,
                });
            }
            Err(_) => {
                self.count("timeout");
                return Err(ExportError::Retryable {
                    message: format!("POST {}: no answer within {:?}", self.uri, self.timeout),
                    after: None,
                });
            }
        };
        self.count(match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        });
        let message = || format!("POST {}: HTTP {status}: {}", self.uri, text.trim());
        match classify(status, retry_after.as_deref()) {
            Verdict::Delivered => Ok(()),
            Verdict::Retry(after) => Err(ExportError::Retryable {
                message: message(),
                after,
            }),
            Verdict::Reject => Err(ExportError::Permanent(message())),
        }
    }

    fn count(&self, outcome: &'static str) {
        metrics::counter!(m::EXPORTER_HTTP_REQUESTS, "exporter" => self.exporter.clone(), "outcome" => outcome)
            .increment(1);
    }
}

/// An error and its sources, `a: b: c`.
fn error_chain(e: &dyn std::error::Error) -> String {
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

    #[test]
    fn classification_per_status() {
        let secs = |s| Some(Duration::from_secs(s));
        let table: &[(u16, Option<&str>, Verdict)] = &[
            (200, None, Verdict::Delivered),
            (202, None, Verdict::Delivered),
            (429, Some("3"), Verdict::Retry(secs(3))),
            (429, None, Verdict::Retry(None)),
            (503, Some(" 0 "), Verdict::Retry(secs(0))),
            // An HTTP-date is not read: the backoff applies.
            (
                503,
                Some("Wed, 21 Oct 2015 07:28:00 GMT"),
                Verdict::Retry(None),
            ),
            (500, None, Verdict::Retry(None)),
            (502, Some("5"), Verdict::Retry(None)),
            (504, None, Verdict::Retry(None)),
            (507, None, Verdict::Retry(None)),
            (400, Some("5"), Verdict::Reject),
            (401, None, Verdict::Reject),
            (404, None, Verdict::Reject),
            (413, None, Verdict::Reject),
            (301, None, Verdict::Reject),
            (101, None, Verdict::Reject),
        ];
        for (status, retry_after, want) in table {
            assert_eq!(
                &classify(*status, *retry_after),
                want,
                "{status} {retry_after:?}"
            );
        }
    }

    #[test]
    fn endpoints_and_headers_are_checked() {
        for ok in [
            "http://127.0.0.1:9411/api/v2/spans",
            "https://zipkin.example/api/v2/spans",
        ] {
            assert!(parse_endpoint(ok).is_ok(), "{ok}");
        }
        for bad in [
            "127.0.0.1:9411",
            "ftp://x/y",
            "/api/v2/spans",
            "http://",
            "not a url",
        ] {
            assert!(parse_endpoint(bad).is_err(), "{bad}");
        }
        let h = |k: &str, v: &str| BTreeMap::from([(k.to_owned(), v.to_owned())]);
        assert!(parse_headers(&h("authorization", "Bearer x")).is_ok());
        assert!(parse_headers(&h("bad header", "x")).is_err());
        assert!(parse_headers(&h("x-ok", "line\nbreak")).is_err());
    }

    fn settings<'a>(endpoint: &'a str, headers: &'a BTreeMap<String, String>) -> Settings<'a> {
        Settings {
            endpoint,
            headers,
            timeout: Duration::from_secs(1),
            content_type: "application/json",
            gzip: true,
            exporter: "test",
        }
    }

    /// The https client builds (ring provider, system roots). Where a machine has no CA
    /// certificates at all, the error says so instead.
    #[tokio::test]
    async fn https_client_builds_and_connection_errors_are_retryable() {
        let headers = BTreeMap::new();
        match Transport::new(&settings("https://127.0.0.1:1/api/v2/spans", &headers)) {
            Ok(t) => {
                let err = t
                    .post(Bytes::from_static(b"[]"))
                    .await
                    .expect_err("nothing listens");
                assert!(matches!(err, ExportError::Retryable { .. }), "{err:?}");
            }
            Err(e) => assert!(matches!(e, SetupError::NoRootCertificates(_)), "{e}"),
        }
    }

    #[test]
    fn gzip_body_reads_back() {
        let headers = BTreeMap::new();
        let t = Transport::new(&settings("http://127.0.0.1:9411/api/v2/spans", &headers))
            .expect("builds");
        let body = t.body(b"[1,2,3]".to_vec()).expect("gzip");
        let mut back = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut back)
            .expect("gunzip");
        assert_eq!(back, "[1,2,3]");
    }
}
