//! The plain forwarding service at the bottom of the stack: sends a request to its
//! upstream with hyper's pooled client in the protocol it arrived in (HTTP/1.1, or
//! HTTP/2 with prior knowledge, i.e. h2c and gRPC), streams both bodies untouched and
//! splices upgraded connections (websockets, `Upgrade:`) end to end. It knows nothing of
//! trace headers, timeouts or metrics: those are the layers above it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// The body type of every layer.
pub type Body = BoxBody<Bytes, hyper::Error>;

/// Why a request got no upstream response; each maps to one status in [`ProxyError::status`].
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The upstream could not be reached or broke the exchange.
    #[error("upstream {target}: {source}")]
    Upstream {
        target: String,
        #[source]
        source: hyper_util::client::legacy::Error,
    },
    /// No response headers within `request_timeout`.
    #[error("upstream gave no response headers within {0:?}")]
    Timeout(Duration),
    /// Forward-proxy mode and the request names no target (no absolute URI, no Host).
    #[error("the request names no target: neither an absolute URI nor a Host header")]
    NoTarget,
    /// The target is not a valid `host:port` authority.
    #[error("the target {0:?} is not a valid host:port")]
    BadTarget(String),
}

impl ProxyError {
    /// The status the client gets.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Upstream { .. } => StatusCode::BAD_GATEWAY,
            Self::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::NoTarget | Self::BadTarget(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// The metric outcome label.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Upstream { .. } => "upstream_error",
            Self::Timeout(_) => "timeout",
            Self::NoTarget | Self::BadTarget(_) => "bad_request",
        }
    }
}

/// Time spent waiting for the upstream's response headers, put into the response's
/// extensions so the metrics layer can tell the proxy's own share.
#[derive(Debug, Clone, Copy)]
pub struct UpstreamTime(pub Duration);

/// The target authority of a request: its absolute URI's, else its `Host` header.
pub fn target_of(req: &Request<Body>) -> Option<String> {
    if let Some(a) = req.uri().authority() {
        return Some(a.as_str().to_owned());
    }
    req.headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
}

/// A connector that dials a fixed address whatever the request URI says, so the URI
/// can keep the caller's authority (HTTP/1 `Host`, HTTP/2 `:authority`).
#[derive(Clone)]
pub struct Connector {
    inner: HttpConnector,
    fixed: Option<Uri>,
}

impl tower::Service<Uri> for Connector {
    type Response = TokioIo<tokio::net::TcpStream>;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let uri = self.fixed.clone().unwrap_or(uri);
        let fut = self.inner.call(uri);
        Box::pin(async move { fut.await.map_err(Into::into) })
    }
}

/// The forwarding service (cheap to clone).
#[derive(Clone)]
pub struct Forward {
    http1: Client<Connector, Body>,
    http2: Client<Connector, Body>,
    upstream: Option<Authority>,
}

/// Settings of [`Forward`].
#[derive(Debug, Clone)]
pub struct ForwardConfig {
    /// Fixed upstream `host:port`; `None` = the request's target.
    pub upstream: Option<String>,
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
}

impl Forward {
    /// Builds the two pooled clients.
    ///
    /// # Errors
    /// [`ProxyError::BadTarget`] when `upstream` is not an authority.
    pub fn new(cfg: &ForwardConfig) -> Result<Self, ProxyError> {
        let upstream = cfg
            .upstream
            .as_deref()
            .map(|u| {
                u.parse::<Authority>()
                    .map_err(|_| ProxyError::BadTarget(u.to_owned()))
            })
            .transpose()?;
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(cfg.connect_timeout));
        let connector = Connector {
            inner: http,
            fixed: upstream.as_ref().map(|a| {
                Uri::builder()
                    .scheme(Scheme::HTTP)
                    .authority(a.clone())
                    .path_and_query("/")
                    .build()
                    .unwrap_or_default()
            }),
        };
        let mut b1 = Client::builder(TokioExecutor::new());
        b1.pool_idle_timeout(cfg.idle_timeout);
        let http1 = b1.build(connector.clone());
        let mut b2 = Client::builder(TokioExecutor::new());
        b2.pool_idle_timeout(cfg.idle_timeout).http2_only(true);
        let http2 = b2.build(connector);
        Ok(Self {
            http1,
            http2,
            upstream,
        })
    }

    /// The absolute URI to send: the caller's authority (kept, it is the callee's Host)
    /// or the fixed upstream's, with the request's path.
    fn uri(&self, req: &Request<Body>) -> Result<(Uri, String), ProxyError> {
        let target = target_of(req);
        let authority = match (&target, &self.upstream) {
            (Some(t), _) => t
                .parse::<Authority>()
                .map_err(|_| ProxyError::BadTarget(t.clone()))?,
            (None, Some(u)) => u.clone(),
            (None, None) => return Err(ProxyError::NoTarget),
        };
        let dial = self
            .upstream
            .as_ref()
            .map_or_else(|| authority.to_string(), ToString::to_string);
        let path = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let uri = Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(authority)
            .path_and_query(path)
            .build()
            .map_err(|_| ProxyError::BadTarget(dial.clone()))?;
        Ok((uri, dial))
    }
}

/// True when the request asks for a protocol upgrade (`Connection: upgrade` + `Upgrade`).
fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Removes hop-by-hop headers (RFC 9110 section 7.6.1), keeping `Upgrade` and
/// `Connection: upgrade` for an upgrade and `TE: trailers` (gRPC needs it).
fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .filter(|n| !(upgrade && n == header::UPGRADE))
        .collect();
    for name in listed {
        headers.remove(name);
    }
    for name in [
        header::HeaderName::from_static("keep-alive"),
        header::HeaderName::from_static("proxy-connection"),
        header::PROXY_AUTHORIZATION,
        header::TRAILER,
        header::TRANSFER_ENCODING,
    ] {
        headers.remove(name);
    }
    let te_trailers = headers
        .get(header::TE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
        });
    headers.remove(header::TE);
    if te_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::CONNECTION);
        headers.remove(header::UPGRADE);
    }
}

/// Splices the client's and the upstream's upgraded connections until both close.
fn splice(client: hyper::upgrade::OnUpgrade, upstream: hyper::upgrade::OnUpgrade) {
    tokio::spawn(async move {
        let (Ok(c), Ok(u)) = (client.await, upstream.await) else {
            tracing::debug!("an upgrade did not complete on both sides");
            return;
        };
        let (mut c, mut u) = (TokioIo::new(c), TokioIo::new(u));
        if let Err(e) = tokio::io::copy_bidirectional(&mut c, &mut u).await {
            tracing::debug!(error = %e, "upgraded connection ended with an error");
        }
    });
}

impl tower::Service<Request<Body>> for Forward {
    type Response = Response<Body>;
    type Error = ProxyError;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let (uri, dial) = this.uri(&req)?;
            let h2 = req.version() == Version::HTTP_2;
            let upgrade = !h2 && wants_upgrade(req.headers());
            let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
            strip_hop_by_hop(req.headers_mut(), upgrade);
            *req.uri_mut() = uri;
            let client = if h2 {
                *req.version_mut() = Version::HTTP_2;
                &this.http2
            } else {
                *req.version_mut() = Version::HTTP_11;
                &this.http1
            };
            let started = Instant::now();
            let mut resp = client
                .request(req)
                .await
                .map_err(|source| ProxyError::Upstream {
                    target: dial,
                    source,
                })?;
            let waited = started.elapsed();
            let upgraded = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
            if let (true, Some(c)) = (upgraded, client_upgrade) {
                splice(c, hyper::upgrade::on(&mut resp));
            }
            strip_hop_by_hop(resp.headers_mut(), upgraded);
            resp.extensions_mut().insert(UpstreamTime(waited));
            Ok(resp.map(BodyExt::boxed))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_are_removed_but_upgrade_and_te_trailers_kept() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("trailers, deflate"));
        h.insert("traceparent", HeaderValue::from_static("x"));
        strip_hop_by_hop(&mut h, false);
        let mut names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["te", "traceparent"]);
        assert_eq!(h[header::TE], "trailers");

        let mut u = HeaderMap::new();
        u.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        u.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(wants_upgrade(&u));
        strip_hop_by_hop(&mut u, true);
        assert_eq!(u[header::UPGRADE], "websocket");
        assert_eq!(u[header::CONNECTION], "upgrade");
    }
}
