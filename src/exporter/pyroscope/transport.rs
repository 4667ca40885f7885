//! HTTP to Pyroscope: one POST per request, with the tenant header and credentials,
//! and the classification of answers into retryable and permanent failures. Knows
//! nothing of OTel: it sends what `mod.rs` hands it.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use reqwest::Url;

use crate::exporter::ExportError;

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
    http: reqwest::Client,
    base: Url,
    headers: HeaderMap,
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
        let base = Url::parse(endpoint).map_err(|e| format!("endpoint `{endpoint}`: {e}"))?;
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
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("otel-pinpoint-bridge/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self {
            http,
            base,
            headers,
        })
    }

    /// The full URL of `req` (the endpoint's own path, if any, is kept as a prefix).
    #[must_use]
    pub fn url(&self, req: &Outgoing) -> Url {
        let mut url = self.base.clone();
        let path = format!("{}{}", self.base.path().trim_end_matches('/'), req.path);
        url.set_path(&path);
        if req.query.is_empty() {
            url.set_query(None);
        } else {
            url.query_pairs_mut()
                .clear()
                .extend_pairs(req.query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        url
    }

    /// Sends `req` once.
    ///
    /// # Errors
    /// [`ExportError`] as [`classify`] and [`connection_error`] decide.
    pub async fn send(&self, req: &Outgoing) -> Result<Bytes, ExportError> {
        let mut body = req.body.clone();
        let mut rb = self
            .http
            .post(self.url(req))
            .headers(self.headers.clone())
            .header(header::CONTENT_TYPE, req.content_type);
        if req.gzip {
            body = gzip(&body).map_err(|e| ExportError::Permanent(format!("gzip: {e}")))?;
            rb = rb.header(header::CONTENT_ENCODING, "gzip");
        }
        let resp = rb
            .body(body)
            .send()
            .await
            .map_err(|e| connection_error(&e))?;
        let status = resp.status();
        let retry_after = resp.headers().get(header::RETRY_AFTER).cloned();
        let text = resp.bytes().await.unwrap_or_default();
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

fn gzip(data: &[u8]) -> std::io::Result<Bytes> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data)?;
    Ok(Bytes::from(enc.finish()?))
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

/// Connection refused, reset, timed out: all worth retrying.
fn connection_error(e: &reqwest::Error) -> ExportError {
    let mut message = format!("cannot reach Pyroscope: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    ExportError::Retryable {
        message,
        after: None,
    }
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
            c.url(&req).as_str(),
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
