//! OTLP/HTTP receiver: `POST /v1/traces`, protobuf or JSON, identity, gzip or deflate;
//! and `POST /v1development/profiles`, protobuf only (the OTLP/JSON mapping of the
//! profiles types in opentelemetry-proto 0.33 needs every field present and reads ids as
//! byte arrays, so JSON profiles get a clear 415 instead of a misleading 400).
//!
//! The body is read with the size limit, decompressed with the same limit, decoded, and
//! handed to [`Intake`]. The response uses the request's content type; errors carry a
//! `google.rpc.Status` body.

use std::future::Future;
use std::io::Read;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::profiles::v1development::ExportProfilesServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use tokio::net::TcpListener;

use super::{Intake, ReceiveError};
use crate::pipeline::Refused;
use crate::selfmetrics as m;

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";
/// Seconds a refused client is asked to wait.
const RETRY_AFTER_SECONDS: &str = "1";

/// `google.rpc.Status`, the body of every error response.
#[derive(Clone, PartialEq, Message, serde::Serialize)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Protobuf,
    Json,
}

impl Format {
    fn content_type(self) -> &'static str {
        match self {
            Self::Protobuf => PROTOBUF,
            Self::Json => JSON,
        }
    }
}

struct AppState {
    intake: Arc<Intake>,
    max_request_bytes: usize,
}

/// Builds the OTLP/HTTP routes.
pub fn router(intake: Arc<Intake>, max_request_bytes: usize) -> Router {
    Router::new()
        .route("/v1/traces", post(export))
        .route("/v1development/profiles", post(export_profiles))
        .layer(DefaultBodyLimit::disable())
        .with_state(Arc::new(AppState {
            intake,
            max_request_bytes,
        }))
}

/// Serves OTLP/HTTP on `listener` until `shutdown` completes.
///
/// # Errors
/// An I/O error from the server.
pub async fn serve(
    listener: TcpListener,
    intake: Arc<Intake>,
    max_request_bytes: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(intake, max_request_bytes))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn export(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    // Until the content type is known, answer in protobuf (the OTLP/HTTP default).
    let format = match content_format(&headers) {
        Ok(f) => f,
        Err(e) => return fail(&state.intake, &e, Format::Protobuf),
    };
    let result = match read_body(body, &headers, state.max_request_bytes).await {
        Ok(bytes) => match decode(&bytes, format) {
            Ok(req) => state.intake.accept(req).await,
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    let response = match result {
        Ok(ok) => {
            let body = match format {
                Format::Protobuf => ok.encode_to_vec(),
                // An absent partial_success is `{}`, not `{"partialSuccess":null}`.
                Format::Json if ok.partial_success.is_none() => b"{}".to_vec(),
                Format::Json => serde_json::to_vec(&ok).unwrap_or_else(|_| b"{}".to_vec()),
            };
            ([(header::CONTENT_TYPE, format.content_type())], body).into_response()
        }
        Err(e) => fail(&state.intake, &e, format),
    };
    metrics::histogram!(m::RECEIVER_REQUEST_DURATION, "receiver" => state.intake.name())
        .record(started.elapsed().as_secs_f64());
    response
}

async fn export_profiles(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let format = match content_format(&headers) {
        Ok(f) => f,
        Err(e) => return fail(&state.intake, &e, Format::Protobuf),
    };
    let result = if format == Format::Json {
        Err(ReceiveError::Unsupported(
            "OTLP/JSON profiles are not supported: send application/x-protobuf",
        ))
    } else if !state.intake.takes_profiles() {
        Err(ReceiveError::NoProfileExporter)
    } else {
        match read_body(body, &headers, state.max_request_bytes).await {
            Ok(bytes) => match ExportProfilesServiceRequest::decode(&bytes[..]) {
                Ok(req) => state.intake.accept_profiles(req).await,
                Err(e) => Err(ReceiveError::Malformed(format!("invalid protobuf: {e}"))),
            },
            Err(e) => Err(e),
        }
    };
    let response = match result {
        Ok(ok) => ([(header::CONTENT_TYPE, PROTOBUF)], ok.encode_to_vec()).into_response(),
        Err(e) => fail(&state.intake, &e, format),
    };
    metrics::histogram!(m::RECEIVER_REQUEST_DURATION, "receiver" => state.intake.name())
        .record(started.elapsed().as_secs_f64());
    response
}

fn content_format(headers: &HeaderMap) -> Result<Format, ReceiveError> {
    let raw = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = raw
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        PROTOBUF => Ok(Format::Protobuf),
        JSON => Ok(Format::Json),
        _ => Err(ReceiveError::UnsupportedMediaType(raw.to_owned())),
    }
}

async fn read_body(body: Body, headers: &HeaderMap, limit: usize) -> Result<Bytes, ReceiveError> {
    let raw = axum::body::to_bytes(body, limit).await.map_err(|e| {
        // `to_bytes` fails for the length limit or for a broken connection.
        if std::error::Error::source(&e).is_some_and(|s| s.to_string().contains("length limit")) {
            ReceiveError::TooLarge { limit }
        } else {
            ReceiveError::Malformed(format!("cannot read body: {e}"))
        }
    })?;
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    match encoding.as_str() {
        "" | "identity" => Ok(raw),
        "gzip" => inflate(flate2::read::GzDecoder::new(&raw[..]), limit, "gzip"),
        "deflate" => inflate(flate2::read::ZlibDecoder::new(&raw[..]), limit, "deflate"),
        other => Err(ReceiveError::BadEncoding(format!(
            "unsupported Content-Encoding `{other}` (use gzip, deflate or identity)"
        ))),
    }
}

/// Decompresses at most `limit` bytes; more is [`ReceiveError::TooLarge`].
fn inflate(reader: impl Read, limit: usize, name: &str) -> Result<Bytes, ReceiveError> {
    let mut out = Vec::new();
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| ReceiveError::BadEncoding(format!("invalid {name} data: {e}")))?;
    if out.len() > limit {
        return Err(ReceiveError::TooLarge { limit });
    }
    Ok(Bytes::from(out))
}

fn decode(bytes: &[u8], format: Format) -> Result<ExportTraceServiceRequest, ReceiveError> {
    match format {
        Format::Protobuf => ExportTraceServiceRequest::decode(bytes)
            .map_err(|e| ReceiveError::Malformed(format!("invalid protobuf: {e}"))),
        Format::Json => serde_json::from_slice(bytes)
            .map_err(|e| ReceiveError::Malformed(format!("invalid OTLP/JSON: {e}"))),
    }
}

/// The one mapping from [`ReceiveError`] to an HTTP response.
fn fail(intake: &Intake, error: &ReceiveError, format: Format) -> Response {
    intake.count_failed(error);
    let (status, code, retry) = match error {
        ReceiveError::Malformed(_) | ReceiveError::BadEncoding(_) => {
            (StatusCode::BAD_REQUEST, 3, false)
        }
        ReceiveError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, 8, false),
        ReceiveError::UnsupportedMediaType(_) | ReceiveError::Unsupported(_) => {
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, 3, false)
        }
        ReceiveError::NoProfileExporter => (StatusCode::NOT_FOUND, 12, false),
        ReceiveError::Refused(Refused::QueueFull { .. }) => {
            (StatusCode::TOO_MANY_REQUESTS, 14, true)
        }
        ReceiveError::Refused(Refused::ShuttingDown | Refused::Storage { .. }) => {
            (StatusCode::SERVICE_UNAVAILABLE, 14, true)
        }
    };
    let body = RpcStatus {
        code,
        message: error.to_string(),
    };
    let bytes = match format {
        Format::Protobuf => body.encode_to_vec(),
        Format::Json => serde_json::to_vec(&body).unwrap_or_default(),
    };
    let mut response = (
        status,
        [(header::CONTENT_TYPE, format.content_type())],
        bytes,
    )
        .into_response();
    if retry {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from_static(RETRY_AFTER_SECONDS),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use std::io::Write;

    #[test]
    fn content_types() {
        let check = |ct: &str, ok: bool| {
            let mut h = HeaderMap::new();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_str(ct).expect("header"),
            );
            assert_eq!(content_format(&h).is_ok(), ok, "{ct}");
        };
        check("application/x-protobuf", true);
        check("application/json; charset=utf-8", true);
        check("Application/JSON", true);
        check("text/plain", false);
    }

    #[test]
    fn inflate_enforces_the_limit_after_decompression() {
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(&vec![b'a'; 10_000]).expect("write");
        let gz = enc.finish().expect("finish");
        assert!(gz.len() < 1000);
        assert_eq!(
            inflate(flate2::read::GzDecoder::new(&gz[..]), 10_000, "gzip")
                .map(|b| b.len())
                .ok(),
            Some(10_000)
        );
        assert!(matches!(
            inflate(flate2::read::GzDecoder::new(&gz[..]), 9_999, "gzip"),
            Err(ReceiveError::TooLarge { .. })
        ));
        assert!(matches!(
            inflate(flate2::read::GzDecoder::new(&b"not gzip"[..]), 100, "gzip"),
            Err(ReceiveError::BadEncoding(_))
        ));
    }
}
