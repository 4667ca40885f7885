//! The OTLP/gRPC services with the request left undecoded by tonic: tonic frames,
//! decompresses and size-limits the message, and hands its bytes over, so the receiver
//! can estimate the decoded size ([`crate::memory`]) before decoding, exactly as the
//! HTTP receiver does. Behaves as the generated `TraceServiceServer` and
//! `ProfilesServiceServer` (same paths and names, gzip both ways).

use std::convert::Infallible;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use opentelemetry_proto::tonic::collector::profiles::v1development::ExportProfilesServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use tonic::codec::{
    Codec, CompressionEncoding, DecodeBuf, Decoder, EnabledCompressionEncodings, EncodeBuf, Encoder,
};
use tonic::{Code, Request, Response, Status};

use super::decode::Wire;
use super::{Intake, ReceiveError};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// One unary OTLP method.
pub trait Method: Send + Sync + 'static {
    /// The gRPC service name.
    const NAME: &'static str;
    /// The method's path.
    const PATH: &'static str;
    type Response: prost::Message + Default + Send + 'static;
    /// Handles the raw request bytes (answering once a persistent queue has them on
    /// disk).
    ///
    /// # Errors
    /// Whatever the intake refuses.
    fn handle(
        intake: &Intake,
        bytes: &[u8],
    ) -> impl Future<Output = Result<Self::Response, ReceiveError>> + Send;
}

/// `TraceService/Export`.
pub struct Traces;
/// `ProfilesService/Export`.
pub struct Profiles;

impl Method for Traces {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
    const PATH: &'static str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
    type Response = ExportTraceServiceResponse;
    async fn handle(intake: &Intake, bytes: &[u8]) -> Result<Self::Response, ReceiveError> {
        intake.receive(bytes, Wire::Protobuf).await
    }
}

impl Method for Profiles {
    const NAME: &'static str =
        "opentelemetry.proto.collector.profiles.v1development.ProfilesService";
    const PATH: &'static str =
        "/opentelemetry.proto.collector.profiles.v1development.ProfilesService/Export";
    type Response = ExportProfilesServiceResponse;
    async fn handle(intake: &Intake, bytes: &[u8]) -> Result<Self::Response, ReceiveError> {
        intake.receive_profiles(bytes).await
    }
}

/// Encodes prost responses; decodes requests to their bytes.
struct RawCodec<T>(PhantomData<fn() -> T>);

impl<T: prost::Message + Send + 'static> Codec for RawCodec<T> {
    type Encode = T;
    type Decode = Bytes;
    type Encoder = RawCodec<T>;
    type Decoder = RawCodec<T>;
    fn encoder(&mut self) -> Self::Encoder {
        RawCodec(PhantomData)
    }
    fn decoder(&mut self) -> Self::Decoder {
        RawCodec(PhantomData)
    }
}

impl<T: prost::Message> Encoder for RawCodec<T> {
    type Item = T;
    type Error = Status;
    fn encode(&mut self, item: T, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(buf)
            .map_err(|e| Status::internal(format!("encoding the response: {e}")))
    }
}

impl<T> Decoder for RawCodec<T> {
    type Item = Bytes;
    type Error = Status;
    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(buf.copy_to_bytes(buf.remaining())))
    }
}

/// What the receiver does with a request's bytes; `on_error` maps a refusal to a
/// status (the receiver's one mapping function).
pub struct Handler {
    pub intake: Arc<Intake>,
    pub on_error: fn(&Intake, &ReceiveError) -> Status,
}

/// A gRPC service serving method `M` (tonic's `NamedService`, for its router).
pub struct RawServer<M> {
    handler: Arc<Handler>,
    max_request_bytes: usize,
    _method: PhantomData<fn() -> M>,
}

impl<M> RawServer<M> {
    #[must_use]
    pub fn new(handler: Arc<Handler>, max_request_bytes: usize) -> Self {
        Self {
            handler,
            max_request_bytes,
            _method: PhantomData,
        }
    }
}

impl<M> Clone for RawServer<M> {
    fn clone(&self) -> Self {
        Self::new(Arc::clone(&self.handler), self.max_request_bytes)
    }
}

impl<M: Method> tonic::server::NamedService for RawServer<M> {
    const NAME: &'static str = M::NAME;
}

struct Unary<M> {
    handler: Arc<Handler>,
    _method: PhantomData<fn() -> M>,
}

impl<M: Method> tonic::server::UnaryService<Bytes> for Unary<M> {
    type Response = M::Response;
    type Future = BoxFuture<Result<Response<M::Response>, Status>>;
    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let handler = Arc::clone(&self.handler);
        Box::pin(async move {
            let started = std::time::Instant::now();
            let bytes = request.into_inner();
            let result = M::handle(&handler.intake, &bytes).await;
            drop(bytes);
            metrics::histogram!(crate::selfmetrics::RECEIVER_REQUEST_DURATION, "receiver" => handler.intake.name())
                .record(started.elapsed().as_secs_f64());
            result
                .map(Response::new)
                .map_err(|e| (handler.on_error)(&handler.intake, &e))
        })
    }
}

impl<M, B> tower::Service<http::Request<B>> for RawServer<M>
where
    M: Method,
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != M::PATH {
            return Box::pin(async {
                Ok(Status::new(Code::Unimplemented, "no such method").into_http())
            });
        }
        let mut gzip = EnabledCompressionEncodings::default();
        gzip.enable(CompressionEncoding::Gzip);
        let mut grpc = tonic::server::Grpc::new(RawCodec::<M::Response>(PhantomData))
            .apply_compression_config(gzip, gzip)
            .apply_max_message_size_config(Some(self.max_request_bytes), None);
        let unary = Unary::<M> {
            handler: Arc::clone(&self.handler),
            _method: PhantomData,
        };
        Box::pin(async move { Ok(grpc.unary(unary, request).await) })
    }
}
