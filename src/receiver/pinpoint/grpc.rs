//! The gRPC front end: `v1.Agent` and `v1.Metadata` (agent port), `v1.Stat` (stat port),
//! `v1.Span` (span port), served with [`RawCodec`] so each message's bytes are kept for
//! the tee and decoded here. Every method runs on tonic's streaming path: on the wire a
//! unary or client-streaming call is a stream of one answer, so one code path serves all.
//!
//! Statuses follow the collector: bad headers → INVALID_ARGUMENT with its message; an
//! undecodable message → INTERNAL ("Invalid protobuf byte sequence"); an invalid span
//! (version ≠ 1, no transactionId) is dropped silently on `SendSpan` and reported in
//! `PPartialSuccess` on `SendSpanBatch`.

use std::convert::Infallible;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use prost::Message as _;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codec::{CompressionEncoding, Streaming};
use tonic::server::NamedService;
use tonic::{Request, Response, Status};

use super::Receiver;
use super::codec::RawCodec;
use super::headers::{AgentHeaders, validate_headers};
use super::metadata::{AgentSummary, MetaKind};
use super::tee::Forwarder;
use crate::exporter::pinpoint::proto::{
    PAgentInfo, PApiMetaData, PExceptionMetaData, PPartialSuccess, PPing, PResult, PSpanMessage,
    PSpanMessageBatch, PSpanResultBatch, PSqlMetaData, PSqlUidMetaData, PStatMessage,
    PStringMetaData,
};
use crate::selfmetrics as m;

/// Which of the three listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    Agent,
    Stat,
    Span,
}

/// Every method the receiver serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    RequestAgentInfo,
    PingSession,
    ApiMetaData,
    StringMetaData,
    SqlMetaData,
    SqlUidMetaData,
    ExceptionMetaData,
    SendSpan,
    SendSpanBatch,
    SendAgentStat,
}

impl Method {
    pub(crate) const ALL: [Self; 10] = [
        Self::RequestAgentInfo,
        Self::PingSession,
        Self::ApiMetaData,
        Self::StringMetaData,
        Self::SqlMetaData,
        Self::SqlUidMetaData,
        Self::ExceptionMetaData,
        Self::SendSpan,
        Self::SendSpanBatch,
        Self::SendAgentStat,
    ];

    /// The gRPC path.
    #[must_use]
    pub fn path(self) -> &'static str {
        match self {
            Self::RequestAgentInfo => "/v1.Agent/RequestAgentInfo",
            Self::PingSession => "/v1.Agent/PingSession",
            Self::ApiMetaData => "/v1.Metadata/RequestApiMetaData",
            Self::StringMetaData => "/v1.Metadata/RequestStringMetaData",
            Self::SqlMetaData => "/v1.Metadata/RequestSqlMetaData",
            Self::SqlUidMetaData => "/v1.Metadata/RequestSqlUidMetaData",
            Self::ExceptionMetaData => "/v1.Metadata/RequestExceptionMetaData",
            Self::SendSpan => "/v1.Span/SendSpan",
            Self::SendSpanBatch => "/v1.Span/SendSpanBatch",
            Self::SendAgentStat => "/v1.Stat/SendAgentStat",
        }
    }

    /// Metric label: the method name.
    #[must_use]
    pub fn name(self) -> &'static str {
        self.path().rsplit('/').next().unwrap_or_default()
    }

    /// The listener that serves it.
    #[must_use]
    pub fn port(self) -> Port {
        match self {
            Self::SendSpan | Self::SendSpanBatch => Port::Span,
            Self::SendAgentStat => Port::Stat,
            _ => Port::Agent,
        }
    }

    fn from_path(path: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.path() == path)
    }
}

/// A gRPC service name of the protocol (tonic routes by it).
pub trait ServiceName: Send + Sync + 'static {
    const NAME: &'static str;
}

macro_rules! service_name {
    ($t:ident, $n:literal) => {
        #[derive(Debug, Clone, Copy)]
        pub struct $t;
        impl ServiceName for $t {
            const NAME: &'static str = $n;
        }
    };
}
service_name!(AgentService, "v1.Agent");
service_name!(MetadataService, "v1.Metadata");
service_name!(SpanService, "v1.Span");
service_name!(StatService, "v1.Stat");

/// One protocol service (`N`) over the shared receiver state.
pub struct PinpointService<N> {
    receiver: Arc<Receiver>,
    _name: PhantomData<fn() -> N>,
}

impl<N> Clone for PinpointService<N> {
    fn clone(&self) -> Self {
        Self {
            receiver: Arc::clone(&self.receiver),
            _name: PhantomData,
        }
    }
}

impl<N> PinpointService<N> {
    #[must_use]
    pub fn new(receiver: Arc<Receiver>) -> Self {
        Self {
            receiver,
            _name: PhantomData,
        }
    }
}

impl<N: ServiceName> NamedService for PinpointService<N> {
    const NAME: &'static str = N::NAME;
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
type Answers = Pin<Box<dyn tokio_stream::Stream<Item = Result<Bytes, Status>> + Send>>;

impl<N, B> tower::Service<http::Request<B>> for PinpointService<N>
where
    N: ServiceName,
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
        let method = Method::from_path(req.uri().path()).filter(|m| {
            m.path()[1..].starts_with(N::NAME)
                && m.path().as_bytes().get(N::NAME.len() + 1) == Some(&b'/')
        });
        let receiver = Arc::clone(&self.receiver);
        Box::pin(async move {
            let Some(method) = method else {
                return Ok(status_for(&CallError::UnknownMethod).into_http());
            };
            let mut grpc = tonic::server::Grpc::new(RawCodec)
                .accept_compressed(CompressionEncoding::Gzip)
                .apply_max_message_size_config(Some(receiver.max_message_bytes), None);
            let svc = tower::service_fn(move |r: Request<Streaming<Bytes>>| {
                let receiver = Arc::clone(&receiver);
                async move { handle(receiver, method, r).await }
            });
            Ok(grpc.streaming(svc, req).await)
        })
    }
}

fn one(answer: Bytes) -> Response<Answers> {
    Response::new(Box::pin(tokio_stream::once(Ok(answer))))
}

fn result_ok() -> Bytes {
    Bytes::from(
        PResult {
            success: true,
            message: String::new(),
        }
        .encode_to_vec(),
    )
}

/// Why a call fails as a whole.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// A required header is missing or invalid (the collector's message).
    #[error("{0}")]
    Headers(String),
    /// A message is not valid protobuf for its method.
    #[error("Invalid protobuf byte sequence: {0}")]
    Malformed(#[from] prost::DecodeError),
    /// A method this listener does not serve.
    #[error("unknown method")]
    UnknownMethod,
    /// A unary call without its message.
    #[error("Missing request message.")]
    MissingMessage,
}

/// The one mapping from [`CallError`] to a gRPC status, as the collector answers.
fn status_for(error: &CallError) -> Status {
    match error {
        CallError::Headers(m) => Status::invalid_argument(m.clone()),
        CallError::Malformed(_) | CallError::MissingMessage => Status::internal(error.to_string()),
        CallError::UnknownMethod => Status::unimplemented(error.to_string()),
    }
}

fn decode_error(receiver: &Receiver, method: Method, e: prost::DecodeError) -> Status {
    receiver.count_invalid(method, "malformed");
    status_for(&CallError::Malformed(e))
}

async fn handle(
    receiver: Arc<Receiver>,
    method: Method,
    request: Request<Streaming<Bytes>>,
) -> Result<Response<Answers>, Status> {
    metrics::counter!(m::PINPOINT_RECEIVER_CALLS, "method" => method.name()).increment(1);
    let headers = match validate_headers(request.metadata(), receiver.max_app_name_len) {
        Ok(h) => Arc::new(h),
        Err(message) => {
            metrics::counter!(m::PINPOINT_RECEIVER_CALLS_REJECTED, "method" => method.name(), "reason" => "headers")
                .increment(1);
            return Err(status_for(&CallError::Headers(message)));
        }
    };
    let forward = receiver
        .tee
        .as_ref()
        .map(|t| t.open(method, request.metadata()));
    let mut stream = request.into_inner();
    match method {
        Method::PingSession => Ok(ping_session(receiver, headers, stream, forward)),
        Method::SendSpan | Method::SendAgentStat => {
            client_stream(&receiver, method, &headers, &mut stream, forward.as_ref()).await
        }
        _ => {
            let message = match stream.message().await? {
                Some(m) => m,
                None => return Err(status_for(&CallError::MissingMessage)),
            };
            if let Some(f) = &forward {
                f.send(&message);
            }
            receiver.count_message(method);
            if method == Method::SendSpanBatch {
                return span_batch(&receiver, &headers, &message).await.map(one);
            }
            unary(&receiver, method, &headers, &message).map(one)
        }
    }
}

fn unary(
    receiver: &Receiver,
    method: Method,
    h: &AgentHeaders,
    message: &Bytes,
) -> Result<Bytes, Status> {
    let bad = |e: prost::DecodeError| decode_error(receiver, method, e);
    let key = h.key();
    let store = &receiver.converter.meta;
    let stored = match method {
        Method::RequestAgentInfo => {
            let info = PAgentInfo::decode(message.as_ref()).map_err(bad)?;
            store.set_info(&key, AgentSummary::from(&info));
            true
        }
        Method::ApiMetaData => {
            let m = PApiMetaData::decode(message.as_ref()).map_err(bad)?;
            store.put(&key, MetaKind::Api, m.api_id, &m.api_info)
        }
        Method::StringMetaData => {
            let m = PStringMetaData::decode(message.as_ref()).map_err(bad)?;
            store.put(&key, MetaKind::String, m.string_id, &m.string_value)
        }
        Method::SqlMetaData => {
            let m = PSqlMetaData::decode(message.as_ref()).map_err(bad)?;
            store.put(&key, MetaKind::Sql, m.sql_id, &m.sql)
        }
        Method::SqlUidMetaData => {
            let m = PSqlUidMetaData::decode(message.as_ref()).map_err(bad)?;
            store.put_sql_uid(&key, &m.sql_uid, &m.sql)
        }
        Method::ExceptionMetaData => {
            // Tee only: the exception chain is shown by exceptionInfo on the spans.
            PExceptionMetaData::decode(message.as_ref()).map_err(bad)?;
            true
        }
        Method::PingSession | Method::SendSpan | Method::SendAgentStat | Method::SendSpanBatch => {
            true
        }
    };
    if !stored {
        metrics::counter!(m::PINPOINT_RECEIVER_METADATA_REFUSED, "kind" => method.name())
            .increment(1);
    }
    if method != Method::RequestAgentInfo {
        receiver.converter.metadata_arrived();
    }
    Ok(result_ok())
}

/// `SendSpanBatch`: the one call that acknowledges spans. It answers once every span of
/// the batch was handed on to the pipeline (held ones included), so with a persistent
/// queue the answer follows their disk write.
async fn span_batch(
    receiver: &Receiver,
    h: &AgentHeaders,
    message: &Bytes,
) -> Result<Bytes, Status> {
    let method = Method::SendSpanBatch;
    let batch = PSpanMessageBatch::decode(message.as_ref())
        .map_err(|e| decode_error(receiver, method, e))?;
    let mut rejected = 0i64;
    let mut reasons = String::new();
    let mut held = Vec::new();
    let agent: Arc<super::hold::AgentContext> = h.clone().into();
    for msg in batch.span {
        match receiver.converter.submit(&agent, msg, true).await {
            Ok(handed) => held.extend(handed),
            Err(e) => {
                receiver.count_invalid(method, e.label());
                if rejected < 5 {
                    if !reasons.is_empty() {
                        reasons.push_str("; ");
                    }
                    reasons.push_str(&e.to_string());
                }
                rejected += 1;
            }
        }
    }
    for handed in held {
        // An error only means the message was given up (dropped at shutdown).
        let _ = handed.await;
    }
    let answer = PSpanResultBatch {
        partial_success: (rejected > 0).then(|| PPartialSuccess {
            rejected_spans: rejected,
            error_id: 0,
            error_message: format!("rejected {rejected} span(s): {reasons}"),
        }),
    };
    Ok(Bytes::from(answer.encode_to_vec()))
}

async fn client_stream(
    receiver: &Arc<Receiver>,
    method: Method,
    headers: &Arc<AgentHeaders>,
    stream: &mut Streaming<Bytes>,
    forward: Option<&Forwarder>,
) -> Result<Response<Answers>, Status> {
    let agent = Arc::new(super::hold::AgentContext::from((**headers).clone()));
    loop {
        let message = match stream.message().await {
            Ok(Some(m)) => m,
            Ok(None) => break,
            // The agent went away or sent garbage framing: nothing to answer.
            Err(status) => return Err(status),
        };
        if let Some(f) = forward {
            f.send(&message);
        }
        receiver.count_message(method);
        if method == Method::SendAgentStat {
            PStatMessage::decode(message.as_ref())
                .map_err(|e| decode_error(receiver, method, e))?;
            continue;
        }
        let msg = PSpanMessage::decode(message.as_ref())
            .map_err(|e| decode_error(receiver, method, e))?;
        // No per-span answer on this stream: the next message is read once this one
        // is handed on (on disk, with a persistent queue).
        if let Err(e) = receiver.converter.submit(&agent, msg, false).await {
            // The collector drops it silently and keeps the stream open.
            receiver.count_invalid(method, e.label());
        }
    }
    // google.protobuf.Empty
    Ok(one(Bytes::new()))
}

fn ping_session(
    receiver: Arc<Receiver>,
    headers: Arc<AgentHeaders>,
    mut stream: Streaming<Bytes>,
    forward: Option<Forwarder>,
) -> Response<Answers> {
    let (tx, rx) = mpsc::channel::<Result<Bytes, Status>>(4);
    tokio::spawn(async move {
        let _headers = headers;
        loop {
            let message = match stream.message().await {
                Ok(Some(m)) => m,
                Ok(None) | Err(_) => return,
            };
            if let Some(f) = &forward {
                f.send(&message);
            }
            receiver.count_message(Method::PingSession);
            let answer = match PPing::decode(message.as_ref()) {
                // The collector answers each ping with an (empty) ping.
                Ok(_) => Ok(Bytes::new()),
                Err(e) => Err(decode_error(&receiver, Method::PingSession, e)),
            };
            let end = answer.is_err();
            if tx.send(answer).await.is_err() || end {
                return;
            }
        }
    });
    Response::new(Box::pin(ReceiverStream::new(rx)))
}

/// Registers, at zero, the receiver's and the tee's documented series for every method,
/// so `/metrics` shows them from the start.
pub fn register_metrics() {
    use metrics::{counter, gauge};
    for method in Method::ALL {
        let name = method.name();
        counter!(m::PINPOINT_RECEIVER_CALLS, "method" => name).increment(0);
        counter!(m::PINPOINT_RECEIVER_CALLS_REJECTED, "method" => name, "reason" => "headers")
            .increment(0);
        counter!(m::PINPOINT_RECEIVER_MESSAGES, "method" => name).increment(0);
        counter!(m::PINPOINT_RECEIVER_MESSAGES_INVALID, "method" => name, "reason" => "malformed")
            .increment(0);
        counter!(m::PINPOINT_TEE_MESSAGES_FORWARDED, "method" => name).increment(0);
        for reason in ["buffer_full", "upstream_unavailable"] {
            counter!(m::PINPOINT_TEE_MESSAGES_DROPPED, "method" => name, "reason" => reason)
                .increment(0);
        }
        counter!(m::PINPOINT_TEE_CALLS_FAILED, "method" => name).increment(0);
    }
    for kind in ["api", "string", "sql", "async_parent"] {
        counter!(m::PINPOINT_RECEIVER_PLACEHOLDERS, "kind" => kind).increment(0);
    }
    for kind in [
        Method::ApiMetaData,
        Method::StringMetaData,
        Method::SqlMetaData,
        Method::SqlUidMetaData,
        Method::ExceptionMetaData,
    ] {
        counter!(m::PINPOINT_RECEIVER_METADATA_REFUSED, "kind" => kind.name()).increment(0);
    }
    counter!(m::PINPOINT_RECEIVER_SPANS_CONVERTED).increment(0);
    counter!(m::PINPOINT_RECEIVER_HOLD_OVERFLOW).increment(0);
    gauge!(m::PINPOINT_RECEIVER_HELD).increment(0.0);
}
