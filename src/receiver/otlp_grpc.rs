//! OTLP/gRPC receiver: `opentelemetry.proto.collector.trace.v1.TraceService/Export`
//! and `opentelemetry.proto.collector.profiles.v1development.ProfilesService/Export`.
//!
//! tonic unframes and decompresses (gzip) with the configured size limit, and hands the
//! bytes to the intake (`grpc_raw.rs`), which estimates their decoded size before
//! decoding them. Two of tonic's own
//! statuses do not match the OTLP rules, so [`StatusLayer`] rewrites them on the way
//! out: an oversize message (OUT_OF_RANGE) becomes RESOURCE_EXHAUSTED without RetryInfo
//! (not retryable), and an undecodable message (INTERNAL) becomes INVALID_ARGUMENT.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::net::TcpListener;
use tonic::{Code, Status};

use super::grpc_raw::{Handler, Profiles, RawServer, Traces};
use super::{Intake, ReceiveError};
use crate::pipeline::Refused;

/// The one mapping from [`ReceiveError`] to a gRPC status.
fn status_for(error: &ReceiveError) -> Status {
    match error {
        ReceiveError::Refused(
            r @ (Refused::QueueFull { .. } | Refused::ShuttingDown | Refused::Storage { .. }),
        ) => Status::unavailable(r.to_string()),
        ReceiveError::TooLarge { .. } | ReceiveError::DecodedTooLarge(_) => {
            Status::resource_exhausted(error.to_string())
        }
        ReceiveError::MemoryLimit(_) => Status::unavailable(error.to_string()),
        ReceiveError::Malformed(_)
        | ReceiveError::UnsupportedMediaType(_)
        | ReceiveError::Unsupported(_)
        | ReceiveError::BadEncoding(_) => Status::invalid_argument(error.to_string()),
        ReceiveError::NoProfileExporter => Status::unimplemented(error.to_string()),
    }
}

/// Counts a refused request and maps it to its status.
fn refuse(intake: &Intake, error: &ReceiveError) -> Status {
    intake.count_failed(error);
    status_for(error)
}

/// Serves OTLP/gRPC on `listener` with `options` (limits, TLS, auth) until `shutdown`
/// completes, then finishes in-flight calls.
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
    // The request bytes go to the intake undecoded, so their decoded size is
    // estimated (and refused when too large) before decoding.
    let handler = Arc::new(Handler {
        intake: Arc::clone(&intake),
        on_error: refuse,
    });
    let service = RawServer::<Traces>::new(Arc::clone(&handler), max_request_bytes);
    let profiles = RawServer::<Profiles>::new(handler, max_request_bytes);
    let routes = tonic::service::Routes::new(service).add_service(profiles);
    let service = tower::Layer::layer(&StatusLayer { intake }, routes);
    crate::listener::serve(listener, options, service, shutdown).await
}

/// Rewrites tonic's decode-time statuses to the OTLP ones and counts them.
#[derive(Clone)]
struct StatusLayer {
    intake: Arc<Intake>,
}

impl<S> tower::Layer<S> for StatusLayer {
    type Service = StatusFix<S>;
    fn layer(&self, inner: S) -> Self::Service {
        StatusFix {
            inner,
            intake: Arc::clone(&self.intake),
        }
    }
}

#[derive(Clone)]
struct StatusFix<S> {
    inner: S,
    intake: Arc<Intake>,
}

impl<S, B, RB> tower::Service<http::Request<B>> for StatusFix<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let future = self.inner.call(request);
        let intake = Arc::clone(&self.intake);
        Box::pin(async move {
            let mut response = future.await?;
            fix_status(response.headers_mut(), &intake);
            Ok(response)
        })
    }
}

/// Rewrites a trailers-only error status in `headers`, if it is one of tonic's decode
/// errors. Our own handler never returns OUT_OF_RANGE or INTERNAL, so these come from
/// decoding.
fn fix_status(headers: &mut http::HeaderMap, intake: &Intake) {
    let Some(code) = headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok()?.parse::<i32>().ok())
    else {
        return;
    };
    let message = || {
        headers
            .get("grpc-message")
            .and_then(|v| v.to_str().ok())
            .map(percent_decode)
            .unwrap_or_default()
    };
    let (new_code, error) = match Code::from(code) {
        Code::OutOfRange => (Code::ResourceExhausted, ReceiveError::TooLarge { limit: 0 }),
        Code::ResourceExhausted if message().contains("size limit") => {
            (Code::ResourceExhausted, ReceiveError::TooLarge { limit: 0 })
        }
        Code::Internal => (Code::InvalidArgument, ReceiveError::Malformed(message())),
        _ => return,
    };
    intake.count_failed(&error);
    let text = match &error {
        ReceiveError::TooLarge { .. } => {
            format!("request is larger than the configured limit: {}", message())
        }
        _ => format!("malformed request: {}", message()),
    };
    let status = Status::new(new_code, text);
    if let Ok(v) = http::HeaderValue::from_str(&(new_code as i32).to_string()) {
        headers.insert("grpc-status", v);
    }
    // Re-encode the message the way gRPC requires (percent-encoded).
    let mut tmp = http::HeaderMap::new();
    if status.add_header(&mut tmp).is_ok()
        && let Some(v) = tmp.get("grpc-message")
    {
        headers.insert("grpc-message", v.clone());
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_mapping() {
        let check = |e: ReceiveError, want: Code| assert_eq!(status_for(&e).code(), want, "{e}");
        check(
            Refused::QueueFull {
                exporter: "x".into(),
            }
            .into(),
            Code::Unavailable,
        );
        check(Refused::ShuttingDown.into(), Code::Unavailable);
        check(ReceiveError::TooLarge { limit: 1 }, Code::ResourceExhausted);
        check(ReceiveError::Malformed("x".into()), Code::InvalidArgument);
        check(ReceiveError::NoProfileExporter, Code::Unimplemented);
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b%3A%"), "a b:%");
        assert_eq!(percent_decode("plain"), "plain");
    }
}
