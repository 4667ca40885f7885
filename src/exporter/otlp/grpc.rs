//! OTLP/gRPC: `opentelemetry.proto.collector.trace.v1.TraceService/Export` over a lazily
//! connected tonic channel (reconnects by itself). The request is encoded once by the
//! exporter and sent as bytes by a pass-through codec, so a retry does not encode again.

use std::time::Duration;

use bytes::{Buf as _, BufMut as _, Bytes};
use http::uri::PathAndQuery;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Status};

use super::tls::{TlsConfig, TlsFiles};
use super::transport::{Reply, Sent, retry_delay, verdict_to_result};
use crate::exporter::ExportError;

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
/// Largest answer read (an `ExportTraceServiceResponse` is a few bytes).
const MAX_ANSWER: usize = 64 * 1024;

/// A problem with the gRPC settings, found before any request is sent.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("endpoint `{0}`: {1}")]
    Endpoint(String, String),
    #[error("header `{0}`: invalid gRPC metadata name or value")]
    Header(String),
    #[error(transparent)]
    Tls(#[from] super::tls::TlsError),
}

/// What a gRPC sender is built from.
pub struct GrpcSettings<'a> {
    /// `http://host:port` or `https://host:port`.
    pub endpoint: &'a str,
    pub headers: &'a std::collections::BTreeMap<String, String>,
    pub timeout: Duration,
    pub gzip: bool,
    pub tls: &'a TlsConfig,
    /// Name the server certificate must carry when the endpoint is an address (a
    /// resolved DNS name); `None`: the endpoint's host.
    pub server_name: Option<&'a str>,
}

/// Sends encoded `ExportTraceServiceRequest`s to one OTLP/gRPC receiver.
#[derive(Clone)]
pub struct GrpcSender {
    grpc: tonic::client::Grpc<Channel>,
    metadata: MetadataMap,
    target: String,
}

impl GrpcSender {
    /// Builds the (lazily connecting) channel.
    ///
    /// # Errors
    /// [`SetupError`] for a bad endpoint, header, or TLS file.
    pub fn new(s: &GrpcSettings<'_>) -> Result<Self, SetupError> {
        let bad =
            |e: &dyn std::fmt::Display| SetupError::Endpoint(s.endpoint.to_owned(), e.to_string());
        let mut endpoint = Endpoint::from_shared(s.endpoint.to_owned())
            .map_err(|e| bad(&e))?
            .timeout(s.timeout)
            .connect_timeout(s.timeout.min(Duration::from_secs(5)));
        let uri = endpoint.uri().clone();
        if uri.scheme_str() == Some("https") {
            let files = TlsFiles::load(s.tls)?;
            let mut tls = ClientTlsConfig::new();
            tls = match &files.ca_pem {
                Some(ca) => tls.ca_certificate(Certificate::from_pem(ca)),
                None => tls.with_native_roots(),
            };
            if let Some((cert, key)) = &files.identity_pem {
                tls = tls.identity(Identity::from_pem(cert, key));
            }
            let name = s
                .tls
                .server_name
                .as_deref()
                .or(s.server_name)
                .or(uri.host());
            if let Some(name) = name {
                tls = tls.domain_name(name);
            }
            endpoint = endpoint.tls_config(tls).map_err(|e| bad(&e))?;
        } else if uri.scheme_str() != Some("http") {
            return Err(bad(&"must start with http:// or https://"));
        }
        let mut metadata = MetadataMap::new();
        for (k, v) in s.headers {
            let key = MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes())
                .map_err(|_| SetupError::Header(k.clone()))?;
            let value: MetadataValue<_> = v.parse().map_err(|_| SetupError::Header(k.clone()))?;
            metadata.insert(key, value);
        }
        let mut grpc = tonic::client::Grpc::new(endpoint.connect_lazy())
            .accept_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(MAX_ANSWER);
        if s.gzip {
            grpc = grpc.send_compressed(CompressionEncoding::Gzip);
        }
        Ok(Self {
            grpc,
            metadata,
            target: format!("gRPC {}", s.endpoint),
        })
    }

    /// Where requests go, for logs.
    #[must_use]
    pub fn target(&self) -> String {
        self.target.clone()
    }

    /// Sends one encoded request.
    ///
    /// # Errors
    /// By [`super::transport::classify`].
    pub async fn send(&self, body: Bytes) -> Result<Sent, ExportError> {
        let mut grpc = self.grpc.clone();
        let mut req = tonic::Request::new(body);
        *req.metadata_mut() = self.metadata.clone();
        let answer = async {
            grpc.ready()
                .await
                .map_err(|e| Status::unavailable(format!("not ready: {e}")))?;
            grpc.unary(req, PathAndQuery::from_static(EXPORT_PATH), RawCodec)
                .await
        }
        .await;
        match answer {
            Ok(resp) => Ok(Sent::of(resp.get_ref())),
            Err(status) => {
                let reply = if status.code() == Code::Unknown && is_transport(&status) {
                    Reply::Unreachable
                } else {
                    Reply::Grpc {
                        code: status.code(),
                        retry_delay: retry_delay(status.details()),
                    }
                };
                let detail = format!("{:?}: {}", status.code(), status.message());
                verdict_to_result(&reply, &self.target, &detail).map(|()| Sent::default())
            }
        }
    }
}

/// tonic reports some connection failures as `Unknown` with a transport source.
fn is_transport(status: &Status) -> bool {
    std::error::Error::source(status).is_some()
}

/// Sends pre-encoded bytes; decodes the response with prost.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = ExportTraceServiceResponse;
    type Encoder = RawEncoder;
    type Decoder = ResponseDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        RawEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        ResponseDecoder
    }
}

#[derive(Debug)]
struct RawEncoder;

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

#[derive(Debug)]
struct ResponseDecoder;

impl Decoder for ResponseDecoder {
    type Item = ExportTraceServiceResponse;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Status> {
        let len = src.remaining();
        let bytes = src.copy_to_bytes(len);
        prost::Message::decode(bytes)
            .map(Some)
            .map_err(|e| Status::internal(format!("cannot decode the export response: {e}")))
    }
}
