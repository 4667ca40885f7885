//! The load generator (`otel-pinpoint-bridge loadgen`): sends OTLP traces made by
//! [`crate::testdata`] over OTLP/gRPC (tonic's `TraceServiceClient`) or OTLP/HTTP
//! (protobuf or JSON, through the exporters' own [`HttpClient`]), optionally gzipped, at
//! a fixed rate or as fast as the target takes them, with at most `concurrency` requests
//! in flight. It reports the achieved rate, errors and retryable refusals (gRPC
//! `UNAVAILABLE`/`RESOURCE_EXHAUSTED`, HTTP 429/503) apart, and a latency histogram of
//! the export calls (hdrhistogram, microseconds).
//!
//! Every request is generated fresh from its own seed (`seed + n`), so trace ids never
//! repeat within a run, as with real traffic. With `--pool N` (gRPC only) N requests are
//! encoded once and reused with their trace ids rewritten ([`pool`]): cheap enough to
//! offer 10x what the gateway sustains from one core.

mod pool;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http::{HeaderMap, HeaderValue, Uri};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use tokio::sync::Semaphore;
use tonic::codec::CompressionEncoding;
use tonic::transport::Channel;

use crate::exporter::http::{self as http_client, HttpClient};
use crate::testdata::{self, Shape};

/// How requests travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// OTLP/gRPC (`TraceService/Export`).
    Grpc,
    /// OTLP/HTTP, protobuf body.
    HttpProtobuf,
    /// OTLP/HTTP, JSON body.
    HttpJson,
}

/// What to send, how fast and for how long.
#[derive(Debug, Clone)]
pub struct Options {
    /// `http://host:port` for gRPC; for HTTP the `/v1/traces` path is added when absent.
    pub endpoint: String,
    pub protocol: Protocol,
    pub gzip: bool,
    /// Spans per second; `None` = unbounded (as fast as `concurrency` allows).
    pub rate: Option<f64>,
    pub duration: Duration,
    /// Requests in flight at most.
    pub concurrency: usize,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Batch shape: `spans` is the batch size (spans per request).
    pub shape: Shape,
    pub seed: u64,
    /// Write the span id (16 hex digits) of every span the target acknowledged (a
    /// request answered "accepted" with no `partial_success` rejection), one a line,
    /// to this file: the ground truth for delivery tests.
    pub acked_ids: Option<std::path::PathBuf>,
    /// 0: every request is a batch of whole traces. N > 0: callee-first traffic
    /// ([`testdata::callee_first_request`]): a trace's services call each other in a
    /// chain and each service's spans arrive N requests after its callee's.
    pub callee_first_lag: u64,
    /// Stop after this many requests have been sent (`None`: only `duration` ends the
    /// run). With a count, request n (of those sent) uses seed + n, so a run sends the
    /// same bytes every time: what `benches/instructions.sh` needs.
    pub count: Option<u64>,
    /// 0: every request generated and encoded when sent. N > 0: N requests encoded at
    /// start and reused, trace ids rewritten per round ([`pool::Pool`]; gRPC only, not
    /// with `callee_first_lag` or `acked_ids`).
    pub pool: usize,
}

/// What a run achieved.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub protocol: Protocol,
    pub gzip: bool,
    pub target_rate: Option<f64>,
    pub batch: usize,
    pub duration_s: f64,
    pub requests: u64,
    /// Spans in requests that were accepted (minus any `partial_success` rejections).
    pub spans_accepted: u64,
    /// Spans the gateway rejected one by one (`partial_success`).
    pub spans_rejected: u64,
    /// Requests refused as "retry later" (gRPC UNAVAILABLE / RESOURCE_EXHAUSTED, HTTP 429/503).
    pub refused: u64,
    /// Requests that failed otherwise (other statuses, timeouts, connection errors).
    pub errors: u64,
    /// Ticks of a rate-limited run that found every request slot busy (the target was
    /// behind; those requests were not sent).
    pub skipped: u64,
    pub spans_per_second: f64,
    pub requests_per_second: f64,
    /// Export-call latency of answered requests, microseconds.
    pub latency_us: Latency,
    /// The first error message seen, if any.
    pub first_error: Option<String>,
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Latency {
    pub min: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        Self {
            min: h.min(),
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
        }
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let l = &self.latency_us;
        let target = self
            .target_rate
            .map_or_else(|| "unbounded".to_owned(), |r| format!("{r:.0} spans/s"));
        writeln!(
            f,
            "loadgen: {:?}{} for {:.1}s, {} spans/request, target {target}",
            self.protocol,
            if self.gzip { " +gzip" } else { "" },
            self.duration_s,
            self.batch
        )?;
        writeln!(
            f,
            "  achieved  {:.0} spans/s ({:.1} requests/s); {} requests, {} spans accepted",
            self.spans_per_second, self.requests_per_second, self.requests, self.spans_accepted
        )?;
        writeln!(
            f,
            "  problems  {} refused (retryable), {} errors, {} spans rejected, {} ticks skipped",
            self.refused, self.errors, self.spans_rejected, self.skipped
        )?;
        writeln!(
            f,
            "  latency   p50 {} µs, p90 {} µs, p99 {} µs, p99.9 {} µs, max {} µs (mean {:.0} µs)",
            l.p50, l.p90, l.p99, l.p999, l.max, l.mean
        )?;
        if let Some(e) = &self.first_error {
            writeln!(f, "  first error: {e}")?;
        }
        Ok(())
    }
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum LoadgenError {
    #[error("bad endpoint `{0}`: {1}")]
    Endpoint(String, String),
    #[error("cannot connect to {0}: {1}")]
    Connect(String, String),
    #[error("cannot make the HTTP client: {0}")]
    Client(String),
    #[error("--rate must be positive (omit it for unbounded)")]
    Rate,
    #[error("cannot write {0}: {1}")]
    AckedIds(String, String),
    #[error("--pool works with --protocol grpc only, without --callee-first-lag and --acked-ids")]
    Pool,
}

type IdSink = std::sync::Mutex<std::io::BufWriter<std::fs::File>>;

/// The span ids of `req`, as lines of hex.
fn span_id_lines(req: &ExportTraceServiceRequest) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for s in req
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
    {
        for b in &s.span_id {
            let _ = write!(out, "{b:02x}");
        }
        out.push('\n');
    }
    out
}

/// The outcome of one request.
enum Outcome {
    Accepted { rejected: u64 },
    Refused(String),
    Failed(String),
}

impl Outcome {
    /// A gRPC answer: UNAVAILABLE and RESOURCE_EXHAUSTED are refusals (retryable), any
    /// other status a failure.
    fn of_grpc(answer: Result<ExportTraceServiceResponse, tonic::Status>) -> Self {
        match answer {
            Ok(resp) => Self::Accepted {
                rejected: resp
                    .partial_success
                    .map_or(0, |p| p.rejected_spans.max(0) as u64),
            },
            Err(s) => {
                let text = format!("{:?}: {}", s.code(), s.message());
                match s.code() {
                    tonic::Code::Unavailable | tonic::Code::ResourceExhausted => {
                        Self::Refused(text)
                    }
                    _ => Self::Failed(text),
                }
            }
        }
    }
}

enum Sender {
    Grpc(Box<TraceServiceClient<Channel>>),
    /// Pre-encoded request bytes (`--pool`) over the same channel.
    GrpcRaw(Box<tonic::client::Grpc<Channel>>),
    Http(Box<HttpSender>),
}

struct HttpSender {
    client: HttpClient,
    uri: Uri,
    headers: HeaderMap,
    json: bool,
    gzip: bool,
}

impl Sender {
    async fn new(o: &Options) -> Result<Self, LoadgenError> {
        match o.protocol {
            Protocol::Grpc => {
                let channel = Channel::from_shared(o.endpoint.clone())
                    .map_err(|e| LoadgenError::Endpoint(o.endpoint.clone(), e.to_string()))?
                    .timeout(o.timeout)
                    .connect()
                    .await
                    .map_err(|e| {
                        LoadgenError::Connect(o.endpoint.clone(), http_client::error_chain(&e))
                    })?;
                if o.pool > 0 {
                    let mut g = tonic::client::Grpc::new(channel)
                        .max_decoding_message_size(64 << 20)
                        .max_encoding_message_size(64 << 20);
                    if o.gzip {
                        g = g.send_compressed(CompressionEncoding::Gzip);
                    }
                    return Ok(Self::GrpcRaw(Box::new(g)));
                }
                let mut client = TraceServiceClient::new(channel)
                    .max_decoding_message_size(64 << 20)
                    .max_encoding_message_size(64 << 20);
                if o.gzip {
                    client = client.send_compressed(CompressionEncoding::Gzip);
                }
                Ok(Self::Grpc(Box::new(client)))
            }
            Protocol::HttpProtobuf | Protocol::HttpJson => {
                let mut endpoint = o.endpoint.trim_end_matches('/').to_owned();
                if !endpoint.ends_with("/v1/traces") {
                    endpoint.push_str("/v1/traces");
                }
                let uri: Uri = endpoint.parse().map_err(|e: http::uri::InvalidUri| {
                    LoadgenError::Endpoint(endpoint.clone(), e.to_string())
                })?;
                let https = uri.scheme_str() == Some("https");
                let client =
                    HttpClient::new(https).map_err(|e| LoadgenError::Client(e.to_string()))?;
                let json = o.protocol == Protocol::HttpJson;
                let mut headers = HeaderMap::new();
                headers.insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static(if json {
                        "application/json"
                    } else {
                        "application/x-protobuf"
                    }),
                );
                if o.gzip {
                    headers.insert(
                        http::header::CONTENT_ENCODING,
                        HeaderValue::from_static("gzip"),
                    );
                }
                Ok(Self::Http(Box::new(HttpSender {
                    client,
                    uri,
                    headers,
                    json,
                    gzip: o.gzip,
                })))
            }
        }
    }

    /// Sends pre-encoded request bytes (only the `GrpcRaw` sender can).
    async fn send_raw(&self, req: Bytes) -> Outcome {
        use crate::receiver::pinpoint::codec::RawCodec;
        let Self::GrpcRaw(g) = self else {
            return Outcome::Failed("pre-encoded requests need the gRPC sender".into());
        };
        let mut g = (**g).clone();
        if let Err(e) = g.ready().await {
            return Outcome::Failed(format!("channel not ready: {e}"));
        }
        let path = http::uri::PathAndQuery::from_static(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        );
        let answer = g.unary(tonic::Request::new(req), path, RawCodec).await;
        Outcome::of_grpc(
            answer.map(|resp| {
                ExportTraceServiceResponse::decode(resp.into_inner()).unwrap_or_default()
            }),
        )
    }

    async fn send(&self, req: ExportTraceServiceRequest, timeout: Duration) -> Outcome {
        match self {
            Self::GrpcRaw(_) => self.send_raw(Bytes::from(req.encode_to_vec())).await,
            Self::Grpc(client) => {
                let mut client = (**client).clone();
                Outcome::of_grpc(client.export(req).await.map(tonic::Response::into_inner))
            }
            Self::Http(h) => {
                let HttpSender {
                    client,
                    uri,
                    headers,
                    json,
                    gzip,
                } = &**h;
                let body = if *json {
                    match serde_json::to_vec(&req) {
                        Ok(b) => b,
                        Err(e) => return Outcome::Failed(format!("cannot encode JSON: {e}")),
                    }
                } else {
                    req.encode_to_vec()
                };
                let body = if *gzip {
                    match http_client::gzip(&body) {
                        Ok(b) => b,
                        Err(e) => return Outcome::Failed(format!("cannot gzip: {e}")),
                    }
                } else {
                    Bytes::from(body)
                };
                match client.post(uri.clone(), headers, body, timeout).await {
                    Ok(a) if (200..300).contains(&a.status) => Outcome::Accepted {
                        rejected: rejected_in(&a.body, *json),
                    },
                    Ok(a) if a.status == 429 || a.status == 503 => {
                        Outcome::Refused(format!("HTTP {}", a.status))
                    }
                    Ok(a) => Outcome::Failed(format!(
                        "HTTP {}: {}",
                        a.status,
                        String::from_utf8_lossy(&a.body)
                    )),
                    Err(e) => Outcome::Failed(e.to_string()),
                }
            }
        }
    }
}

/// Spans rejected according to an OTLP/HTTP answer's `partial_success` (0 if none or
/// unreadable).
fn rejected_in(body: &[u8], json: bool) -> u64 {
    let resp = if json {
        serde_json::from_slice::<ExportTraceServiceResponse>(body).ok()
    } else {
        ExportTraceServiceResponse::decode(body).ok()
    };
    resp.and_then(|r| r.partial_success)
        .map_or(0, |p| p.rejected_spans.max(0) as u64)
}

#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    accepted: AtomicU64,
    rejected: AtomicU64,
    refused: AtomicU64,
    errors: AtomicU64,
    first_error: std::sync::Mutex<Option<String>>,
    latency: std::sync::Mutex<Option<Histogram<u64>>>,
}

impl Tally {
    /// Counts one answered request; `acked`: where to write its span ids if accepted.
    fn record(&self, outcome: Outcome, spans: u64, us: u64, acked: Option<(&IdSink, &str)>) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        match outcome {
            Outcome::Accepted { rejected } => {
                self.accepted
                    .fetch_add(spans.saturating_sub(rejected), Ordering::Relaxed);
                self.rejected.fetch_add(rejected, Ordering::Relaxed);
                if rejected == 0
                    && let Some((sink, ids)) = acked
                    && let Ok(mut w) = sink.lock()
                {
                    use std::io::Write as _;
                    let _ = w.write_all(ids.as_bytes());
                }
                if let Ok(mut h) = self.latency.lock()
                    && let Some(h) = h.as_mut()
                {
                    h.saturating_record(us.max(1));
                }
            }
            Outcome::Refused(e) => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                self.note_error(e);
            }
            Outcome::Failed(e) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                self.note_error(e);
            }
        }
    }

    fn note_error(&self, e: String) {
        if let Ok(mut first) = self.first_error.lock() {
            first.get_or_insert(e);
        }
    }
}

/// Runs the load described by `o` and reports what it achieved.
///
/// # Errors
/// [`LoadgenError`] when the options are unusable or the target cannot be reached at
/// start; failures during the run are counted, not returned.
pub async fn run(o: Options) -> Result<Report, LoadgenError> {
    if o.rate.is_some_and(|r| r.is_nan() || r <= 0.0) {
        return Err(LoadgenError::Rate);
    }
    if o.pool > 0
        && (o.protocol != Protocol::Grpc || o.callee_first_lag > 0 || o.acked_ids.is_some())
    {
        return Err(LoadgenError::Pool);
    }
    let pool = (o.pool > 0).then(|| Arc::new(pool::Pool::new(&o.shape, o.seed, o.pool)));
    let sender = Arc::new(Sender::new(&o).await?);
    let acked_ids: Option<Arc<IdSink>> = match &o.acked_ids {
        Some(path) => {
            let f = std::fs::File::create(path)
                .map_err(|e| LoadgenError::AckedIds(path.display().to_string(), e.to_string()))?;
            Some(Arc::new(std::sync::Mutex::new(std::io::BufWriter::new(f))))
        }
        None => None,
    };
    let tally = Arc::new(Tally {
        // 1 µs .. 60 s, 3 significant digits.
        latency: std::sync::Mutex::new(Histogram::new_with_bounds(1, 60_000_000, 3).ok()),
        ..Tally::default()
    });
    let slots = Arc::new(Semaphore::new(o.concurrency.max(1)));
    let batch = o.shape.spans.max(1);
    let mut ticker = o.rate.map(|rate| {
        let period = Duration::from_secs_f64(batch as f64 / rate);
        let mut t = tokio::time::interval(period);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        t
    });
    let started = Instant::now();
    let end = tokio::time::Instant::now() + o.duration;
    let mut skipped = 0u64;
    let mut sent = 0u64;
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0u64.. {
        if o.count.is_some_and(|c| sent >= c) {
            break;
        }
        let permit = if let Some(t) = ticker.as_mut() {
            tokio::select! {
                _ = t.tick() => {}
                () = tokio::time::sleep_until(end) => break,
            }
            if let Ok(p) = Arc::clone(&slots).try_acquire_owned() {
                p
            } else {
                skipped += 1;
                continue;
            }
        } else {
            tokio::select! {
                p = Arc::clone(&slots).acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
                () = tokio::time::sleep_until(end) => break,
            }
        };
        if tokio::time::Instant::now() >= end {
            break;
        }
        // Reap finished tasks so the set stays small.
        while tasks.try_join_next().is_some() {}
        let sender = Arc::clone(&sender);
        let tally = Arc::clone(&tally);
        let shape = o.shape.clone();
        let seed = o
            .seed
            .wrapping_add(if o.count.is_some() { sent } else { n });
        sent += 1;
        let (first_seed, lag) = (o.seed, o.callee_first_lag);
        let timeout = o.timeout;
        let acked_ids = acked_ids.clone();
        if let Some(pool) = &pool {
            let (bytes, spans) = pool.get(seed.wrapping_sub(o.seed));
            let tally = Arc::clone(&tally);
            tasks.spawn(async move {
                let t = Instant::now();
                let outcome = sender.send_raw(bytes).await;
                let us = t.elapsed().as_micros() as u64;
                drop(permit);
                tally.record(outcome, spans, us, None);
            });
            continue;
        }
        tasks.spawn(async move {
            let req = if lag == 0 {
                testdata::request(&shape, seed)
            } else {
                testdata::callee_first_request(&shape, seed, first_seed, lag)
            };
            let ids = acked_ids.as_ref().map(|_| span_id_lines(&req));
            let spans = req
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .map(|s| s.spans.len() as u64)
                .sum::<u64>();
            let t = Instant::now();
            let outcome = sender.send(req, timeout).await;
            let us = t.elapsed().as_micros() as u64;
            drop(permit);
            let acked = match (&acked_ids, &ids) {
                (Some(sink), Some(ids)) => Some((&**sink, ids.as_str())),
                _ => None,
            };
            tally.record(outcome, spans, us, acked);
        });
    }
    // Requests still in flight finish (each is bounded by its timeout).
    while tasks.join_next().await.is_some() {}
    if let Some(sink) = &acked_ids
        && let Ok(mut w) = sink.lock()
    {
        use std::io::Write as _;
        w.flush()
            .map_err(|e| LoadgenError::AckedIds("acked ids".into(), e.to_string()))?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let requests = tally.requests.load(Ordering::Relaxed);
    let accepted = tally.accepted.load(Ordering::Relaxed);
    let latency = tally
        .latency
        .lock()
        .ok()
        .and_then(|h| h.as_ref().map(Latency::of))
        .unwrap_or_default();
    let first_error = tally.first_error.lock().ok().and_then(|e| e.clone());
    Ok(Report {
        protocol: o.protocol,
        gzip: o.gzip,
        target_rate: o.rate,
        batch,
        duration_s: elapsed,
        requests,
        spans_accepted: accepted,
        spans_rejected: tally.rejected.load(Ordering::Relaxed),
        refused: tally.refused.load(Ordering::Relaxed),
        errors: tally.errors.load(Ordering::Relaxed),
        skipped,
        spans_per_second: accepted as f64 / elapsed,
        requests_per_second: requests as f64 / elapsed,
        latency_us: latency,
        first_error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTracePartialSuccess, ExportTraceServiceResponse,
    };

    #[test]
    fn reads_partial_success_from_http_answers() {
        let resp = ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: 7,
                error_message: "bad".into(),
            }),
        };
        assert_eq!(rejected_in(&resp.encode_to_vec(), false), 7);
        let json = serde_json::to_vec(&resp).expect("json");
        assert_eq!(rejected_in(&json, true), 7);
        assert_eq!(rejected_in(b"", false), 0);
        assert_eq!(rejected_in(b"{}", true), 0);
        assert_eq!(rejected_in(b"not json", true), 0);
    }

    #[test]
    fn latency_percentiles() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
        for us in 1..=1000 {
            h.record(us).expect("in range");
        }
        let l = Latency::of(&h);
        assert_eq!((l.min, l.max), (1, 1000));
        assert!((495..=505).contains(&l.p50), "{l:?}");
        assert!((985..=1000).contains(&l.p99), "{l:?}");
        assert_eq!(Latency::of(&Histogram::new(3).expect("h")).p99, 0);
    }
}
