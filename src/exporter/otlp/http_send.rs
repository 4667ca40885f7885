//! OTLP/HTTP: `POST <endpoint>` (by default `/v1/traces`) with a protobuf or JSON body,
//! gzipped or not, over the shared hyper client of `exporter::http`. The answer's
//! `partial_success` is read in the request's encoding.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderValue};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;

use super::Protocol;
use super::tls::{TlsConfig, TlsError, rustls_config};
use super::transport::{Reply, Sent, verdict_to_result};
use crate::exporter::ExportError;
use crate::exporter::http::HttpClient;
use crate::exporter::zipkin::transport::{parse_endpoint, parse_headers};

/// How much of an error answer is kept for the log.
const MAX_ERROR_TEXT: usize = 512;

/// A problem with the HTTP settings, found before any request is sent.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("endpoint `{0}` is not an http:// or https:// URL")]
    Endpoint(String),
    #[error("header `{0}`: invalid name or value")]
    Header(String),
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// What an HTTP sender is built from.
pub struct HttpSettings<'a> {
    /// The full URL; a bare `http://host:port` gets `/v1/traces`.
    pub endpoint: &'a str,
    pub headers: &'a BTreeMap<String, String>,
    pub timeout: Duration,
    pub gzip: bool,
    pub protocol: Protocol,
    pub tls: &'a TlsConfig,
}

/// The URL requests go to: `endpoint`, with `/v1/traces` when it has no path.
///
/// # Errors
/// [`SetupError::Endpoint`] when it is not an absolute http(s) URL.
pub fn traces_url(endpoint: &str) -> Result<Uri, SetupError> {
    let uri = parse_endpoint(endpoint).map_err(|_| SetupError::Endpoint(endpoint.to_owned()))?;
    if matches!(uri.path(), "" | "/") {
        let base = endpoint.trim_end_matches('/');
        return format!("{base}/v1/traces")
            .parse()
            .map_err(|_| SetupError::Endpoint(endpoint.to_owned()));
    }
    Ok(uri)
}

/// POSTs encoded requests to one OTLP/HTTP receiver.
#[derive(Clone)]
pub struct HttpSender {
    client: HttpClient,
    uri: Uri,
    headers: HeaderMap,
    timeout: Duration,
    json: bool,
    target: String,
}

impl HttpSender {
    /// Builds the client.
    ///
    /// # Errors
    /// [`SetupError`] for a bad endpoint, header or TLS file.
    pub fn new(s: &HttpSettings<'_>) -> Result<Self, SetupError> {
        let uri = traces_url(s.endpoint)?;
        let mut headers =
            parse_headers(s.headers).map_err(|e| SetupError::Header(e.to_string()))?;
        let json = s.protocol == Protocol::HttpJson;
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static(if json {
                "application/json"
            } else {
                "application/x-protobuf"
            }),
        );
        if s.gzip {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        let client = if uri.scheme_str() == Some("https") {
            HttpClient::with_tls(rustls_config(s.tls)?)
        } else {
            HttpClient::new(false).map_err(|e| SetupError::Endpoint(e.to_string()))?
        };
        Ok(Self {
            client,
            target: format!("POST {uri}"),
            uri,
            headers,
            timeout: s.timeout,
            json,
        })
    }

    /// Where requests go, for logs.
    #[must_use]
    pub fn target(&self) -> String {
        self.target.clone()
    }

    /// POSTs one encoded body.
    ///
    /// # Errors
    /// By [`super::transport::classify`].
    pub async fn send(&self, body: Bytes) -> Result<Sent, ExportError> {
        let answer = match self
            .client
            .post(self.uri.clone(), &self.headers, body, self.timeout)
            .await
        {
            Ok(a) => a,
            Err(f) => {
                return verdict_to_result(&Reply::Unreachable, &self.target, &f.to_string())
                    .map(|()| Sent::default());
            }
        };
        let reply = Reply::Http {
            status: answer.status,
            retry_after: answer.retry_after.clone(),
        };
        if (200..300).contains(&answer.status) {
            return Ok(self.partial_success(&answer.body));
        }
        let text = String::from_utf8_lossy(&answer.body[..answer.body.len().min(MAX_ERROR_TEXT)]);
        let detail = format!("HTTP {}: {text}", answer.status);
        verdict_to_result(&reply, &self.target, &detail).map(|()| Sent::default())
    }

    /// The partial success in a 2xx body (none when the body is empty or unreadable).
    fn partial_success(&self, body: &[u8]) -> Sent {
        if body.is_empty() {
            return Sent::default();
        }
        let resp: Option<ExportTraceServiceResponse> = if self.json {
            serde_json::from_slice(body).ok()
        } else {
            prost::Message::decode(body).ok()
        };
        resp.as_ref().map(Sent::of).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_endpoints_get_the_traces_path() {
        let check = |e: &str, want: &str| {
            assert_eq!(traces_url(e).expect(e).to_string(), want, "{e}");
        };
        check("http://127.0.0.1:4318", "http://127.0.0.1:4318/v1/traces");
        check("http://127.0.0.1:4318/", "http://127.0.0.1:4318/v1/traces");
        check(
            "https://c.example:9997/v1/traces",
            "https://c.example:9997/v1/traces",
        );
        check("http://h:1/custom/path", "http://h:1/custom/path");
        assert!(traces_url("127.0.0.1:4318").is_err());
    }
}
