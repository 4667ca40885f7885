//! The Zipkin exporter's HTTP transport: POSTs an encoded body (gzip or not) to the
//! collector and classifies the answer for the pipeline's retry loop. It knows nothing
//! about OpenTelemetry.
//! The HTTP client itself is the shared one of `exporter::http`.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};

use crate::exporter::ExportError;
use crate::exporter::http::{self as client, HttpClient};
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
    #[error(transparent)]
    Client(#[from] client::SetupError),
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
    client: HttpClient,
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
        let client = HttpClient::new(uri.scheme_str() == Some("https"))?;
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
        client::gzip(&encoded)
    }

    /// POSTs `body` once, within the timeout.
    ///
    /// # Errors
    /// [`ExportError::Retryable`] for timeouts, connection errors, 429 and 5xx;
    /// [`ExportError::Permanent`] for other answers that are not 2xx.
    pub async fn post(&self, body: Bytes) -> Result<(), ExportError> {
        let answer = match self
            .client
            .post(self.uri.clone(), &self.headers, body, self.timeout)
            .await
        {
            Ok(a) => a,
            Err(f) => {
                self.count(f.outcome());
                return Err(ExportError::Retryable {
                    message: format!("POST {}: {f}", self.uri),
                    after: None,
                });
            }
        };
        let (status, retry_after) = (answer.status, answer.retry_after);
        let text = String::from_utf8_lossy(&answer.body[..answer.body.len().min(MAX_ERROR_BODY)])
            .into_owned();
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
            Err(e) => assert!(
                matches!(
                    e,
                    SetupError::Client(client::SetupError::NoRootCertificates(_))
                ),
                "{e}"
            ),
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
