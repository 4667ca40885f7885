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
use prost::Message;
use tokio::net::TcpListener;

use super::decode::Wire;
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
    fn wire(self) -> Wire {
        match self {
            Self::Protobuf => Wire::Protobuf,
            Self::Json => Wire::Json,
        }
    }

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

/// Serves OTLP/HTTP on `listener` with `options` (limits, TLS, auth) until `shutdown`
/// completes.
///
/// # Errors
/// A fatal listener error.
pub async fn serve(
    listener: TcpListener,
    options: crate::listener::Options,
    intake: Arc<Intake>,
    max_request_bytes: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    crate::listener::serve(
        listener,
        options,
        router(intake, max_request_bytes),
        shutdown,
    )
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
        Ok(bytes) => state.intake.receive(&bytes, format.wire()).await,
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
            Ok(bytes) => state.intake.receive_profiles(&bytes).await,
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

/// How much of an oversize body is read (and thrown away) before the 413, so the client
/// is not cut off mid-send and can read the answer; beyond it the connection is closed.
const DRAIN_MAX_BYTES: usize = 64 << 20;
/// How long draining an oversize body may take.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

async fn read_body(body: Body, headers: &HeaderMap, limit: usize) -> Result<Bytes, ReceiveError> {
    let raw = read_limited(body, headers, limit).await?;
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    match encoding.as_str() {
        "" | "identity" => Ok(raw),
        "gzip" => inflate(Codec::Gzip, &raw, limit),
        "deflate" => inflate(Codec::Deflate, &raw, limit),
        other => Err(ReceiveError::BadEncoding(format!(
            "unsupported Content-Encoding `{other}` (use gzip, deflate or identity)"
        ))),
    }
}

/// Reads at most `limit` bytes of body. A larger body (by its Content-Length, or as
/// it arrives) is [`ReceiveError::TooLarge`], after reading and discarding up to
/// [`DRAIN_MAX_BYTES`] more so the client gets to read the 413 (which closes the
/// connection). A client that waits for `100 Continue` is answered without reading.
async fn read_limited(
    body: Body,
    headers: &HeaderMap,
    limit: usize,
) -> Result<Bytes, ReceiveError> {
    use http_body_util::BodyExt;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
    let expects_continue = headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let mut body = body;
    if declared.is_some_and(|n| n > limit as u64) {
        if !expects_continue {
            drain(body).await;
        }
        return Err(ReceiveError::TooLarge { limit });
    }
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ReceiveError::Malformed(format!("cannot read body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                drain(body).await;
                return Err(ReceiveError::TooLarge { limit });
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// Reads and discards what is left of `body`, up to [`DRAIN_MAX_BYTES`] and
/// [`DRAIN_TIMEOUT`].
async fn drain(mut body: Body) {
    use http_body_util::BodyExt;
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, async move {
        let mut seen = 0usize;
        while seen <= DRAIN_MAX_BYTES {
            match body.frame().await {
                Some(Ok(frame)) => seen += frame.data_ref().map_or(0, |d| d.len()),
                _ => break,
            }
        }
    })
    .await;
}

#[derive(Clone, Copy)]
enum Codec {
    Gzip,
    Deflate,
}

/// Decompresses at most `limit` bytes; more is [`ReceiveError::TooLarge`]. Every gzip
/// member is read (RFC 1952 allows several); anything after the last member, or after
/// a deflate stream, is an error.
fn inflate(codec: Codec, raw: &[u8], limit: usize) -> Result<Bytes, ReceiveError> {
    let mut out = Vec::new();
    let (name, result, rest) = match codec {
        Codec::Gzip => {
            let mut d = flate2::bufread::MultiGzDecoder::new(raw);
            let r = (&mut d).take(limit as u64 + 1).read_to_end(&mut out);
            ("gzip", r, d.into_inner().len())
        }
        Codec::Deflate => {
            let mut d = flate2::bufread::ZlibDecoder::new(raw);
            let r = (&mut d).take(limit as u64 + 1).read_to_end(&mut out);
            ("deflate", r, d.into_inner().len())
        }
    };
    result.map_err(|e| {
        ReceiveError::BadEncoding(format!(
            "invalid {name} data: {e} (the body must be complete {name} data with nothing after it)"
        ))
    })?;
    if out.len() > limit {
        return Err(ReceiveError::TooLarge { limit });
    }
    if rest > 0 {
        return Err(ReceiveError::BadEncoding(format!(
            "invalid {name} data: {rest} byte(s) after the end of the compressed data"
        )));
    }
    Ok(Bytes::from(out))
}

/// The one mapping from [`ReceiveError`] to an HTTP response.
fn fail(intake: &Intake, error: &ReceiveError, format: Format) -> Response {
    intake.count_failed(error);
    let (status, code, retry) = match error {
        ReceiveError::Malformed(_) | ReceiveError::BadEncoding(_) => {
            (StatusCode::BAD_REQUEST, 3, false)
        }
        ReceiveError::TooLarge { .. } | ReceiveError::DecodedTooLarge(_) => {
            (StatusCode::PAYLOAD_TOO_LARGE, 8, false)
        }
        ReceiveError::MemoryLimit(_) => (StatusCode::SERVICE_UNAVAILABLE, 14, true),
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
    if matches!(error, ReceiveError::TooLarge { .. }) {
        // The rest of an oversize body was not read: this connection cannot be reused.
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
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

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(data).expect("write");
        enc.finish().expect("finish")
    }

    #[test]
    fn inflate_enforces_the_limit_after_decompression() {
        let gz = gzip(&vec![b'a'; 10_000]);
        assert!(gz.len() < 1000);
        assert_eq!(
            inflate(Codec::Gzip, &gz, 10_000).map(|b| b.len()).ok(),
            Some(10_000)
        );
        assert!(matches!(
            inflate(Codec::Gzip, &gz, 9_999),
            Err(ReceiveError::TooLarge { .. })
        ));
        assert!(matches!(
            inflate(Codec::Gzip, b"not gzip", 100),
            Err(ReceiveError::BadEncoding(_))
        ));
    }

    #[test]
    fn every_gzip_member_is_read_and_trailing_garbage_is_refused() {
        let mut two = gzip(b"first,");
        two.extend(gzip(b"second"));
        assert_eq!(
            inflate(Codec::Gzip, &two, 1000).ok().as_deref(),
            Some(&b"first,second"[..])
        );
        let mut garbage = gzip(b"data");
        garbage.extend_from_slice(b"garbage!");
        let e = inflate(Codec::Gzip, &garbage, 1000).expect_err("trailing garbage");
        assert!(
            matches!(e, ReceiveError::BadEncoding(_)) && e.to_string().contains("gzip"),
            "{e}"
        );
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), Compression::default());
        z.write_all(b"data").expect("write");
        let mut z = z.finish().expect("finish");
        assert_eq!(
            inflate(Codec::Deflate, &z, 100).ok().as_deref(),
            Some(&b"data"[..])
        );
        z.push(0);
        let e = inflate(Codec::Deflate, &z, 100).expect_err("trailing byte");
        assert!(e.to_string().contains("1 byte(s) after the end"), "{e}");
    }
}
