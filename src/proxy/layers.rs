//! The tower layers over [`super::forward::Forward`], one concern each, outermost first:
//! [`MetricsLayer`] (requests, bytes, latency), [`TimeoutLayer`] (upstream response
//! headers), [`TraceLayer`] (the trace-header translation of [`super::translate`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tower::{Layer, Service};

use super::forward::{Body, ProxyError, UpstreamTime, target_of};
use super::segments::SegmentMemory;
use super::translate::{self, HopOptions, trace_headers};
use crate::ids::mapping::mix;
use crate::ids::{SpanId, TraceId};
use crate::selfmetrics as m;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Which listener a request came through (a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Ingress,
    Egress,
}

impl Side {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Ingress => "ingress",
            Self::Egress => "egress",
        }
    }
}

// ---------------------------------------------------------------- timeout

/// Fails a request with [`ProxyError::Timeout`] when the inner service gives no
/// response (headers) in time; the body then streams without a limit.
#[derive(Debug, Clone, Copy)]
pub struct TimeoutLayer(pub Duration);

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;
    fn layer(&self, inner: S) -> Timeout<S> {
        Timeout {
            inner,
            after: self.0,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Timeout<S> {
    inner: S,
    after: Duration,
}

impl<S, B> Service<Request<B>> for Timeout<S>
where
    S: Service<Request<B>, Error = ProxyError>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
{
    type Response = S::Response;
    type Error = ProxyError;
    type Future = BoxFuture<Result<S::Response, ProxyError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ProxyError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let fut = self.inner.call(req);
        let after = self.after;
        Box::pin(async move {
            tokio::time::timeout(after, fut)
                .await
                .unwrap_or(Err(ProxyError::Timeout(after)))
        })
    }
}

// ---------------------------------------------------------------- trace headers

/// Fresh trace and span ids for started contexts: SplitMix64 over a per-process
/// random seed (no crate needed; ids need to be unique, not secret).
#[derive(Debug)]
pub struct FreshIds(AtomicU64);

impl Default for FreshIds {
    fn default() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        Self(AtomicU64::new(h.finish()))
    }
}

impl FreshIds {
    fn next_u64(&self) -> u64 {
        let s = self.0.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
        mix(s).max(1)
    }

    /// A non-zero trace id and a non-zero span id.
    pub fn next(&self) -> (TraceId, SpanId) {
        let t = (u128::from(self.next_u64()) << 64) | u128::from(self.next_u64());
        (TraceId::from_u128(t), SpanId::from_u64(self.next_u64()))
    }
}

/// What [`TraceLayer`] shares between requests.
#[derive(Debug)]
pub struct TraceShared {
    pub side: Side,
    pub opts: HopOptions,
    pub memory: SegmentMemory,
    pub ids: FreshIds,
}

/// Rewrites the trace headers of each request per [`translate`]; never fails one.
#[derive(Debug, Clone)]
pub struct TraceLayer(pub Arc<TraceShared>);

impl<S> Layer<S> for TraceLayer {
    type Service = Trace<S>;
    fn layer(&self, inner: S) -> Trace<S> {
        Trace {
            inner,
            shared: Arc::clone(&self.0),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Trace<S> {
    inner: S,
    shared: Arc<TraceShared>,
}

/// Plans and applies the header edits of one request, and counts what happened.
pub fn rewrite(shared: &TraceShared, req: &mut Request<Body>) {
    let listener = shared.side.label();
    let mut problems = Vec::new();
    let plan = {
        let input = trace_headers(req.headers(), &mut problems);
        match shared.side {
            Side::Ingress => translate::ingress(&input, &shared.opts, shared.ids.next(), problems),
            Side::Egress => {
                let target = target_of(req);
                translate::egress(
                    &input,
                    &shared.opts,
                    target.as_deref(),
                    |t| shared.memory.get(t),
                    problems,
                )
            }
        }
    };
    plan.apply(req.headers_mut());
    if let Some((trace, segment)) = plan.record {
        shared.memory.record(trace, segment);
    }
    metrics::counter!(m::PROXY_TRACE_HEADERS, "listener" => listener, "action" => plan.action.label())
        .increment(1);
    for reason in &plan.problems {
        metrics::counter!(m::PROXY_BAD_TRACE_HEADERS, "listener" => listener, "reason" => *reason)
            .increment(1);
    }
    if let Some(source) = plan.segment {
        metrics::counter!(m::PROXY_EGRESS_SEGMENTS, "source" => source.label()).increment(1);
    }
}

impl<S> Service<Request<Body>> for Trace<S>
where
    S: Service<Request<Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> S::Future {
        rewrite(&self.shared, &mut req);
        self.inner.call(req)
    }
}

// ---------------------------------------------------------------- metrics

/// A body that counts its bytes into a counter as they pass.
pub struct Counted {
    inner: Body,
    counter: metrics::Counter,
}

impl HttpBody for Counted {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.counter.increment(data.len() as u64);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

fn counted(body: Body, listener: &'static str, direction: &'static str) -> Body {
    Counted {
        inner: body,
        counter: metrics::counter!(m::PROXY_BYTES, "listener" => listener, "direction" => direction),
    }
    .boxed()
}

/// Counts requests per outcome and bytes per direction, and records the time to the
/// response headers and the part of it the proxy itself added.
#[derive(Debug, Clone, Copy)]
pub struct MetricsLayer(pub Side);

impl<S> Layer<S> for MetricsLayer {
    type Service = Metrics<S>;
    fn layer(&self, inner: S) -> Metrics<S> {
        Metrics {
            inner,
            side: self.0,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Metrics<S> {
    inner: S,
    side: Side,
}

fn status_class(status: http::StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

impl<S> Service<Request<Body>> for Metrics<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = ProxyError>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = ProxyError;
    type Future = BoxFuture<Result<Response<Body>, ProxyError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ProxyError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let listener = self.side.label();
        let started = Instant::now();
        let req = req.map(|b| counted(b, listener, "request"));
        let fut = self.inner.call(req);
        Box::pin(async move {
            let result = fut.await;
            let total = started.elapsed();
            let outcome = match &result {
                Ok(r) => status_class(r.status()),
                Err(e) => e.outcome(),
            };
            metrics::counter!(m::PROXY_REQUESTS, "listener" => listener, "outcome" => outcome)
                .increment(1);
            metrics::histogram!(m::PROXY_REQUEST_DURATION, "listener" => listener)
                .record(total.as_secs_f64());
            let resp = result?;
            if let Some(UpstreamTime(upstream)) = resp.extensions().get::<UpstreamTime>() {
                metrics::histogram!(m::PROXY_ADDED_LATENCY, "listener" => listener)
                    .record(total.saturating_sub(*upstream).as_secs_f64());
            }
            Ok(resp.map(|b| counted(b, listener, "response")))
        })
    }
}
