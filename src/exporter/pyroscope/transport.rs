//! HTTP to Pyroscope: one POST per request, with the tenant header and credentials,
//! and the classification of answers into retryable and permanent failures. Knows
//! nothing of OTel: it sends what `mod.rs` hands it.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, Uri, header};

use crate::exporter::ExportError;
use crate::exporter::http::{self as client, HttpClient};

/// One request to send.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Path under the endpoint, such as `/ingest`.
    pub path: &'static str,
    pub query: Vec<(&'static str, String)>,
    pub content_type: &'static str,
    pub gzip: bool,
    pub body: Bytes,
}

/// How the bridge authenticates to Pyroscope (or the proxy in front of it).
#[derive(Clone)]
pub enum Credentials {
    Basic { username: String, password: String },
    Bearer(String),
}

/// A Pyroscope server.
pub struct Client {
    http: HttpClient,
    /// The endpoint without a trailing `/`.
    base: String,
    headers: HeaderMap,
    timeout: Duration,
}

impl Client {
    /// # Errors
    /// A message when the endpoint, tenant or credentials cannot be used.
    pub fn new(
        endpoint: &str,
        tenant: Option<&str>,
        credentials: Option<&Credentials>,
        timeout: Duration,
    ) -> Result<Self, String> {
        let uri: Uri = endpoint
            .parse()
            .map_err(|e| format!("endpoint `{endpoint}`: {e}"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => {
                return Err(format!(
                    "endpoint `{endpoint}`: use an http:// or https:// URL"
                ));
            }
        };
        let mut headers = HeaderMap::new();
        if let Some(t) = tenant {
            let v = HeaderValue::from_str(t).map_err(|_| "tenant: not a valid header value")?;
            headers.insert("x-scope-orgid", v);
        }
        if let Some(c) = credentials {
            let mut v = HeaderValue::from_str(&authorization(c))
                .map_err(|_| "auth: not a valid header value")?;
            v.set_sensitive(true);
            headers.insert(header::AUTHORIZATION, v);
        }
        headers.insert(
            header::USER_AGENT,
            HeaderValue::from_static(concat!("otel-pinpoint-bridge/", env!("CARGO_PKG_VERSION"))),
        );
        let http = HttpClient::new(https).map_err(|e| e.to_string())?;
        let base = endpoint.trim_end_matches('/').to_owned();
        Ok(Self {
            http,
            base,
            headers,
            timeout,
        })
    }

    /// The full URL of `req` (the endpoint's own path, if any, is kept as a prefix); the
    /// query is form-encoded.
    #[must_use]
    pub fn url(&self, req: &Outgoing) -> String {
        let mut url = format!("{}{}", self.base, req.path);
        for (i, (k, v)) in req.query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            form_encode(k, &mut url);
            url.push('=');
            form_encode(v, &mut url);
        }
        url
    }

    /// Sends `req` once.
    ///
    /// # Errors
    /// [`ExportError`] as [`classify`] and [`connection_error`] decide.
    pub async fn send(&self, req: &Outgoing) -> Result<Bytes, ExportError> {
        let uri: Uri = self
            .url(req)
            .parse()
            .map_err(|e| ExportError::Permanent(format!("bad URL: {e}")))?;
        let mut headers = self.headers.clone();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(req.content_type),
        );
        let body = if req.gzip {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            client::gzip(&req.body).map_err(|e| ExportError::Permanent(format!("gzip: {e}")))?
        } else {
            req.body.clone()
        };
        let answer = self
            .http
            .post(uri, &headers, body, self.timeout)
            .await
            .map_err(|f| ExportError::Retryable {
                message: format!("cannot reach Pyroscope: {f}"),
                after: None,
            })?;
        let status = StatusCode::from_u16(answer.status).map_err(|_| {
            ExportError::Permanent(format!("Pyroscope answered status {}", answer.status))
        })?;
        let retry_after = answer
            .retry_after
            .as_deref()
            .and_then(|v| HeaderValue::from_str(v).ok());
        let text = answer.body;
        match classify(status, retry_after.as_ref(), SystemTime::now()) {
            None => Ok(text),
            Some(mut e) => {
                let detail = String::from_utf8_lossy(&text[..text.len().min(300)]);
                let detail = detail.trim();
                if !detail.is_empty() {
                    match &mut e {
                        ExportError::Retryable { message, .. }
                        | ExportError::Permanent(message) => {
                            message.push_str(": ");
                            message.push_str(detail);
                        }
                    }
                }
                Err(e)
            }
        }
    }
}

fn authorization(c: &Credentials) -> String {
    match c {
        Credentials::Basic { username, password } => {
            format!(
                "Basic {}",
                base64(format!("{username}:{password}").as_bytes())
            )
        }
        Credentials::Bearer(token) => format!("Bearer {token}"),
    }
}

fn base64(input: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ABC[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `application/x-www-form-urlencoded` encoding of one key or value.
fn form_encode(text: &str, out: &mut String) {
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 15)]));
            }
        }
    }
}

/// What an answer means for the request: `None` when it was accepted; otherwise
/// 429 and 503 are retried after `Retry-After` (seconds or an HTTP date), 408 and every
/// other 5xx are retried with backoff, and every other status (400, 401, 403, 404, 413,
/// 422, ...) is permanent: sending the same data again cannot succeed.
#[must_use]
pub fn classify(
    status: StatusCode,
    retry_after: Option<&HeaderValue>,
    now: SystemTime,
) -> Option<ExportError> {
    if status.is_success() {
        return None;
    }
    let message = format!("Pyroscope answered {status}");
    Some(match status.as_u16() {
        429 | 503 => ExportError::Retryable {
            message,
            after: retry_after.and_then(|v| parse_retry_after(v, now)),
        },
        408 | 500..=599 => ExportError::Retryable {
            message,
            after: None,
        },
        _ => ExportError::Permanent(message),
    })
}

/// `Retry-After` as a wait: delay-seconds or an HTTP date (a past date means now).
fn parse_retry_after(v: &HeaderValue, now: SystemTime) -> Option<Duration> {
    let text = v.to_str().ok()?.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(text).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hv(s: &str) -> HeaderValue {
        HeaderValue::from_str(s).expect("header")
    }

    /// `(retryable, after)` or `None` for success.
    fn outcome(status: u16, retry_after: Option<&str>) -> Option<(bool, Option<Duration>)> {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let status = StatusCode::from_u16(status).expect("status");
        classify(status, retry_after.map(hv).as_ref(), now).map(|e| match e {
            ExportError::Retryable { after, .. } => (true, after),
            ExportError::Permanent(_) => (false, None),
        })
    }

    #[test]
    fn one_case_per_status() {
        let secs = |s| Some(Duration::from_secs(s));
        assert_eq!(outcome(200, None), None);
        assert_eq!(outcome(204, None), None);
        assert_eq!(outcome(429, Some("7")), Some((true, secs(7))));
        assert_eq!(outcome(429, None), Some((true, None)));
        assert_eq!(outcome(503, Some("2")), Some((true, secs(2))));
        // An HTTP date 30 s after "now"; a past one means "now".
        assert_eq!(
            outcome(503, Some("Tue, 14 Nov 2023 22:13:50 GMT")),
            Some((true, secs(30)))
        );
        assert_eq!(
            outcome(429, Some("Tue, 14 Nov 2023 22:00:00 GMT")),
            Some((true, Some(Duration::ZERO)))
        );
        assert_eq!(outcome(429, Some("soon")), Some((true, None)));
        assert_eq!(outcome(500, Some("9")), Some((true, None)));
        assert_eq!(outcome(502, None), Some((true, None)));
        assert_eq!(outcome(504, None), Some((true, None)));
        assert_eq!(outcome(408, None), Some((true, None)));
        for permanent in [400, 401, 403, 404, 413, 415, 422] {
            assert_eq!(
                outcome(permanent, Some("1")),
                Some((false, None)),
                "{permanent}"
            );
        }
    }

    #[test]
    fn urls_keep_the_endpoint_path_and_encode_the_query() {
        let c = Client::new("http://h:4040/prefix/", None, None, Duration::from_secs(1))
            .expect("client");
        let req = Outgoing {
            path: "/ingest",
            query: vec![("name", "a.wall{k=v w}".into()), ("from", "1".into())],
            content_type: "binary/octet-stream",
            gzip: false,
            body: Bytes::new(),
        };
        assert_eq!(
            c.url(&req),
            "http://h:4040/prefix/ingest?name=a.wall%7Bk%3Dv+w%7D&from=1"
        );
    }

    #[test]
    fn credentials_and_tenant_headers() {
        assert_eq!(base64(b"u:p"), "dTpw");
        assert_eq!(base64(b"user:pass"), "dXNlcjpwYXNz");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b""), "");
        let basic = Credentials::Basic {
            username: "u".into(),
            password: "p".into(),
        };
        let c = Client::new(
            "http://h",
            Some("team-a"),
            Some(&basic),
            Duration::from_secs(1),
        )
        .expect("client");
        assert_eq!(c.headers["x-scope-orgid"], "team-a");
        assert_eq!(c.headers[header::AUTHORIZATION], "Basic dTpw");
        assert!(c.headers[header::AUTHORIZATION].is_sensitive());
        let bearer = Credentials::Bearer("tok".into());
        let c =
            Client::new("http://h", None, Some(&bearer), Duration::from_secs(1)).expect("client");
        assert_eq!(c.headers[header::AUTHORIZATION], "Bearer tok");
        assert!(Client::new("http://h", Some("bad\nvalue"), None, Duration::from_secs(1)).is_err());
    }
}
