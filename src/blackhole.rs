//! A blackhole Pinpoint collector for benchmarks (`otel-pinpoint-bridge bench-collector`,
//! hidden from `--help`): it serves the gRPC methods the Pinpoint exporter calls
//! (`v1.Agent`, `v1.Metadata`, `v1.Span`, `v1.Stat`) on one port, answers what the
//! exporter waits for (a successful `PResult` to registrations, an echo to every ping,
//! `Empty` at the end of a stream, an empty `PSpanResultBatch` to a batch), keeps
//! nothing, and counts calls, messages, bytes, `PSpan`s and `PSpanChunk`s.
//!
//! It is not on the product's data path: it exists so that `benches/e2e.sh` and
//! `benches/instructions.sh` measure the gateway and not the peer (the Node stand-in in
//! `tests/peers/pinpoint-collector` could not take 10k spans/s on a shared core). It is a
//! subcommand of the one binary rather than an `examples/` program so the benchmarks
//! need no second build: the binary they measure (or the one whose `loadgen` they run)
//! carries it.
//!
//! Span messages are decoded shallowly: a `PSpanMessageBatch` as a list of
//! `PSpanMessage`s and each of those as its `oneof field` (1 = `PSpan`, 2 =
//! `PSpanChunk`) kept as a slice of the request, with the field numbers of
//! `proto/pinpoint/span.proto`. The unit tests check the counts against messages built
//! with the generated types. `--verify` decodes every span message fully with the
//! generated types instead (slower; undecodable ones are counted as `decode_errors`).
//!
//! Start-up prints one JSON line on stdout, in the Node stand-in's shape:
//! `{"agent":P,"stat":P,"span":P,"control":C}`; `GET /stats` on the control port answers
//! the counts as JSON, and the same JSON is printed on stdout at exit (SIGTERM, Ctrl-C).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use prost::Message as _;
use tokio_stream::StreamExt as _;
use tonic::Status;
use tonic::codec::Streaming;

use crate::exporter::pinpoint::proto::{PResult, PSpanMessage};
use crate::receiver::pinpoint::codec::RawCodec;

/// Why the collector could not start.
#[derive(Debug, thiserror::Error)]
pub enum BlackholeError {
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
}

/// Options of `bench-collector`.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where the gRPC services listen (port 0: any free port).
    pub listen: SocketAddr,
    /// Where `GET /stats` is served (port 0: any free port).
    pub control: SocketAddr,
    /// Decode every span message fully with the generated types.
    pub verify: bool,
}

/// What arrived, since start.
#[derive(Debug, Default)]
pub struct Counts {
    /// gRPC calls (a stream is one call).
    pub calls: AtomicU64,
    /// Messages in all calls (a batch counts its span messages).
    pub messages: AtomicU64,
    /// Bytes of the messages (after gRPC framing, before any decoding).
    pub bytes: AtomicU64,
    pub spans: AtomicU64,
    pub chunks: AtomicU64,
    /// Span messages with neither a span nor a chunk, or (with `--verify`) undecodable.
    pub decode_errors: AtomicU64,
    pub agent_infos: AtomicU64,
    pub pings: AtomicU64,
    pub metadata: AtomicU64,
    pub stats: AtomicU64,
}

impl Counts {
    /// The counts as one JSON object.
    #[must_use]
    pub fn json(&self) -> serde_json::Value {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        serde_json::json!({
            "calls": g(&self.calls),
            "messages": g(&self.messages),
            "bytes": g(&self.bytes),
            "spans": g(&self.spans),
            "chunks": g(&self.chunks),
            "decode_errors": g(&self.decode_errors),
            "agent_infos": g(&self.agent_infos),
            "pings": g(&self.pings),
            "metadata": g(&self.metadata),
            "stats": g(&self.stats),
        })
    }

    fn add(a: &AtomicU64, n: u64) {
        a.fetch_add(n, Ordering::Relaxed);
    }
}

/// The shallow view of `v1.PSpanMessage`: which member of its `oneof field` is set.
#[derive(Clone, PartialEq, prost::Message)]
struct ShallowSpanMessage {
    /// `PSpan span = 1`.
    #[prost(bytes = "bytes", optional, tag = "1")]
    span: Option<Bytes>,
    /// `PSpanChunk spanChunk = 2`.
    #[prost(bytes = "bytes", optional, tag = "2")]
    chunk: Option<Bytes>,
}

/// The shallow view of `v1.PSpanMessageBatch` (`repeated PSpanMessage span = 1`).
#[derive(Clone, PartialEq, prost::Message)]
struct ShallowBatch {
    #[prost(message, repeated, tag = "1")]
    span: Vec<ShallowSpanMessage>,
}

/// Counts one `PSpanMessage`.
fn count_span_message(counts: &Counts, bytes: &Bytes, verify: bool) {
    if verify {
        use crate::exporter::pinpoint::proto::p_span_message::Field;
        match PSpanMessage::decode(bytes.clone()) {
            Ok(PSpanMessage {
                field: Some(Field::Span(_)),
            }) => Counts::add(&counts.spans, 1),
            Ok(PSpanMessage {
                field: Some(Field::SpanChunk(_)),
            }) => Counts::add(&counts.chunks, 1),
            _ => Counts::add(&counts.decode_errors, 1),
        }
        return;
    }
    match ShallowSpanMessage::decode(bytes.clone()) {
        Ok(m) => tally_shallow(counts, &m),
        Err(_) => Counts::add(&counts.decode_errors, 1),
    }
}

fn tally_shallow(counts: &Counts, m: &ShallowSpanMessage) {
    match (m.span.is_some(), m.chunk.is_some()) {
        (true, _) => Counts::add(&counts.spans, 1),
        (false, true) => Counts::add(&counts.chunks, 1),
        (false, false) => Counts::add(&counts.decode_errors, 1),
    }
}

/// Counts the span messages of one `PSpanMessageBatch`; returns how many it held.
fn count_batch(counts: &Counts, bytes: &Bytes, verify: bool) -> u64 {
    if verify {
        match crate::exporter::pinpoint::proto::PSpanMessageBatch::decode(bytes.clone()) {
            Ok(b) => {
                for m in &b.span {
                    count_span_message(counts, &Bytes::from(m.encode_to_vec()), false);
                }
                b.span.len() as u64
            }
            Err(_) => {
                Counts::add(&counts.decode_errors, 1);
                0
            }
        }
    } else {
        match ShallowBatch::decode(bytes.clone()) {
            Ok(b) => {
                for m in &b.span {
                    tally_shallow(counts, m);
                }
                b.span.len() as u64
            }
            Err(_) => {
                Counts::add(&counts.decode_errors, 1);
                0
            }
        }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
type Answers = Pin<Box<dyn tokio_stream::Stream<Item = Result<Bytes, Status>> + Send>>;

/// Every method on one service: routing by path inside.
#[derive(Clone)]
struct Collector {
    counts: Arc<Counts>,
    verify: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    AgentInfo,
    Ping,
    Metadata,
    SpanStream,
    SpanBatch,
    StatStream,
}

impl Kind {
    fn of(path: &str) -> Option<Self> {
        Some(match path {
            "/v1.Agent/RequestAgentInfo" => Self::AgentInfo,
            "/v1.Agent/PingSession" => Self::Ping,
            "/v1.Metadata/RequestApiMetaData"
            | "/v1.Metadata/RequestStringMetaData"
            | "/v1.Metadata/RequestSqlMetaData"
            | "/v1.Metadata/RequestSqlUidMetaData"
            | "/v1.Metadata/RequestExceptionMetaData" => Self::Metadata,
            "/v1.Span/SendSpan" => Self::SpanStream,
            "/v1.Span/SendSpanBatch" => Self::SpanBatch,
            "/v1.Stat/SendAgentStat" => Self::StatStream,
            _ => return None,
        })
    }
}

fn one(answer: Bytes) -> tonic::Response<Answers> {
    tonic::Response::new(Box::pin(tokio_stream::once(Ok(answer))))
}

impl Collector {
    async fn handle(
        &self,
        kind: Kind,
        req: tonic::Request<Streaming<Bytes>>,
    ) -> Result<tonic::Response<Answers>, Status> {
        let c = &self.counts;
        Counts::add(&c.calls, 1);
        let mut stream = req.into_inner();
        if kind == Kind::Ping {
            let counts = Arc::clone(&self.counts);
            // PPing has no fields: its encoding is empty.
            let echo = stream.map(move |m| {
                let m = m?;
                Counts::add(&counts.pings, 1);
                Counts::add(&counts.messages, 1);
                Counts::add(&counts.bytes, m.len() as u64);
                Ok(Bytes::new())
            });
            return Ok(tonic::Response::new(Box::pin(echo)));
        }
        while let Some(m) = stream.message().await? {
            Counts::add(&c.bytes, m.len() as u64);
            match kind {
                Kind::SpanStream => {
                    Counts::add(&c.messages, 1);
                    count_span_message(c, &m, self.verify);
                }
                Kind::SpanBatch => {
                    let n = count_batch(c, &m, self.verify);
                    Counts::add(&c.messages, n);
                }
                Kind::StatStream => {
                    Counts::add(&c.messages, 1);
                    Counts::add(&c.stats, 1);
                }
                Kind::AgentInfo | Kind::Metadata | Kind::Ping => {
                    Counts::add(&c.messages, 1);
                    Counts::add(
                        if kind == Kind::AgentInfo {
                            &c.agent_infos
                        } else {
                            &c.metadata
                        },
                        1,
                    );
                    break;
                }
            }
        }
        Ok(one(match kind {
            Kind::AgentInfo | Kind::Metadata => Bytes::from(
                PResult {
                    success: true,
                    message: String::new(),
                }
                .encode_to_vec(),
            ),
            // Empty, and a PSpanResultBatch without partial_success: both encode empty.
            _ => Bytes::new(),
        }))
    }
}

impl<B> tower::Service<http::Request<B>> for Collector
where
    B: tonic::codegen::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<tonic::codegen::StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let kind = Kind::of(req.uri().path());
        let this = self.clone();
        Box::pin(async move {
            let Some(kind) = kind else {
                return Ok(Status::unimplemented("unknown method").into_http());
            };
            let mut grpc = tonic::server::Grpc::new(RawCodec)
                .apply_max_message_size_config(Some(64 << 20), None);
            let svc = tower::service_fn(move |r: tonic::Request<Streaming<Bytes>>| {
                let this = this.clone();
                async move { this.handle(kind, r).await }
            });
            Ok(grpc.streaming(svc, req).await)
        })
    }
}

/// Serves until SIGTERM or Ctrl-C, then prints the counts.
///
/// # Errors
/// [`BlackholeError`] when a port cannot be bound.
pub async fn run(o: Options) -> Result<(), BlackholeError> {
    let counts = Arc::new(Counts::default());
    let grpc = tokio::net::TcpListener::bind(o.listen)
        .await
        .map_err(|e| BlackholeError::Bind(o.listen, e))?;
    let control = tokio::net::TcpListener::bind(o.control)
        .await
        .map_err(|e| BlackholeError::Bind(o.control, e))?;
    let port = |l: &tokio::net::TcpListener| l.local_addr().map_or(0, |a| a.port());
    let (gp, cp) = (port(&grpc), port(&control));
    println!(r#"{{"agent":{gp},"stat":{gp},"span":{gp},"control":{cp}}}"#);

    let svc = Collector {
        counts: Arc::clone(&counts),
        verify: o.verify,
    };
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = grpc.accept().await else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let svc = hyper_util::service::TowerToHyperService::new(svc.clone());
            tokio::spawn(async move {
                let _ =
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                        .await;
            });
        }
    });
    let stats = Arc::clone(&counts);
    let app = axum::Router::new()
        .route(
            "/stats",
            axum::routing::get(move || {
                let stats = Arc::clone(&stats);
                async move { axum::Json(stats.json()) }
            }),
        )
        .route("/healthz", axum::routing::get(|| async { "ok" }));
    tokio::spawn(async move {
        let _ = axum::serve(control, app).await;
    });
    shutdown_signal().await;
    println!("{}", counts.json());
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exporter::pinpoint::proto::{
        PSpan, PSpanChunk, PSpanMessageBatch, p_span_message::Field,
    };

    fn span() -> PSpanMessage {
        PSpanMessage {
            field: Some(Field::Span(PSpan {
                version: 1,
                span_id: 7,
                ..PSpan::default()
            })),
        }
    }

    fn chunk() -> PSpanMessage {
        PSpanMessage {
            field: Some(Field::SpanChunk(PSpanChunk {
                version: 1,
                ..PSpanChunk::default()
            })),
        }
    }

    fn counts_of(verify: bool) -> Counts {
        let c = Counts::default();
        let batch = PSpanMessageBatch {
            span: vec![span(), chunk(), span(), PSpanMessage { field: None }],
        };
        let n = count_batch(&c, &Bytes::from(batch.encode_to_vec()), verify);
        assert_eq!(n, 4);
        count_span_message(&c, &Bytes::from(chunk().encode_to_vec()), verify);
        count_span_message(&c, &Bytes::from_static(b"\xff\xff"), verify);
        c
    }

    #[test]
    fn shallow_decoding_counts_what_the_generated_types_encoded() {
        for verify in [false, true] {
            let c = counts_of(verify);
            let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
            assert_eq!(
                (g(&c.spans), g(&c.chunks), g(&c.decode_errors)),
                (2, 2, 2),
                "verify {verify}"
            );
        }
    }

    #[test]
    fn routes_every_method_the_exporter_calls() {
        for (path, kind) in [
            ("/v1.Agent/RequestAgentInfo", Kind::AgentInfo),
            ("/v1.Agent/PingSession", Kind::Ping),
            ("/v1.Metadata/RequestStringMetaData", Kind::Metadata),
            ("/v1.Span/SendSpan", Kind::SpanStream),
            ("/v1.Span/SendSpanBatch", Kind::SpanBatch),
            ("/v1.Stat/SendAgentStat", Kind::StatStream),
        ] {
            assert_eq!(Kind::of(path), Some(kind), "{path}");
        }
        assert_eq!(Kind::of("/v1.Span/Nope"), None);
    }
}
