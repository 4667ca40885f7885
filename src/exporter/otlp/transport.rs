//! What an OTLP answer means for the retry loop ([`classify`], pure), and the one
//! [`Transport`] the exporter sends encoded requests with (OTLP/gRPC or OTLP/HTTP).
//! It knows nothing about spans: it takes an encoded body and returns a [`Sent`].
//!
//! The rules are the OTLP specification's: gRPC `CANCELLED`, `DEADLINE_EXCEEDED`,
//! `ABORTED`, `OUT_OF_RANGE`, `UNAVAILABLE` and `DATA_LOSS` are retried, and
//! `RESOURCE_EXHAUSTED` only when the server sent `google.rpc.RetryInfo`; a `RetryInfo`
//! delay is honoured. HTTP 429, 502, 503 and 504 are retried, honouring `Retry-After`
//! (seconds or an HTTP-date); every other 4xx/5xx is not. No answer at all (connection
//! refused, timeout, broken connection) is retried.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use tonic::Code;

use crate::exporter::ExportError;

/// One answer (or the lack of one) from an OTLP receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// An HTTP status with its `Retry-After` header, if any.
    Http {
        status: u16,
        retry_after: Option<String>,
    },
    /// A gRPC status code with the delay of its `google.rpc.RetryInfo` detail, if any.
    Grpc {
        code: Code,
        retry_delay: Option<Duration>,
    },
    /// No answer: connection refused or broken, TLS failure, timeout.
    Unreachable,
}

/// What the retry loop should do after one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The receiver took the request (possibly with a partial success).
    Delivered,
    /// Worth trying again, after the server's delay when it gave one.
    Retry(Option<Duration>),
    /// Trying again cannot help.
    Reject,
}

/// Classifies one reply by the OTLP specification's retry rules (see the module docs).
#[must_use]
pub fn classify(reply: &Reply) -> Verdict {
    match reply {
        Reply::Http { status, .. } if (200..300).contains(status) => Verdict::Delivered,
        Reply::Http {
            status: 429 | 502 | 503 | 504,
            retry_after,
        } => Verdict::Retry(retry_after.as_deref().and_then(parse_retry_after)),
        Reply::Http { .. } => Verdict::Reject,
        Reply::Grpc { code: Code::Ok, .. } => Verdict::Delivered,
        Reply::Grpc {
            code:
                Code::Cancelled
                | Code::DeadlineExceeded
                | Code::Aborted
                | Code::OutOfRange
                | Code::Unavailable
                | Code::DataLoss,
            retry_delay,
        } => Verdict::Retry(*retry_delay),
        Reply::Grpc {
            code: Code::ResourceExhausted,
            retry_delay: Some(d),
        } => Verdict::Retry(Some(*d)),
        Reply::Grpc { .. } => Verdict::Reject,
        Reply::Unreachable => Verdict::Retry(None),
    }
}

/// `Retry-After` as delta-seconds or an HTTP-date (a date in the past means now).
#[must_use]
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// `google.rpc.Status`, as sent in the `grpc-status-details-bin` trailer (the fields
/// read here only; wire numbers from google/rpc/status.proto).
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<AnyDetail>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, prost::Message)]
struct AnyDetail {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

/// `google.rpc.RetryInfo { google.protobuf.Duration retry_delay = 1; }`.
#[derive(Clone, PartialEq, prost::Message)]
struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    retry_delay: Option<ProtoDuration>,
}

/// `google.protobuf.Duration`.
#[derive(Clone, PartialEq, prost::Message)]
struct ProtoDuration {
    #[prost(int64, tag = "1")]
    seconds: i64,
    #[prost(int32, tag = "2")]
    nanos: i32,
}

const RETRY_INFO_TYPE: &str = "type.googleapis.com/google.rpc.RetryInfo";

/// The `RetryInfo` delay in a gRPC status's details, if there is a readable one.
#[must_use]
pub fn retry_delay(details: &[u8]) -> Option<Duration> {
    if details.is_empty() {
        return None;
    }
    let status: RpcStatus = prost::Message::decode(details).ok()?;
    let info = status
        .details
        .iter()
        .find(|d| d.type_url == RETRY_INFO_TYPE)?;
    let info: RetryInfo = prost::Message::decode(&info.value[..]).ok()?;
    let d = info.retry_delay?;
    let secs = u64::try_from(d.seconds).ok()?;
    let nanos = u32::try_from(d.nanos).ok().filter(|n| *n < 1_000_000_000)?;
    Some(Duration::new(secs, nanos))
}

/// Encodes a `google.rpc.Status` carrying a `RetryInfo` (for tests and stand-ins).
#[must_use]
pub fn status_details_with_retry(code: i32, delay: Duration) -> Vec<u8> {
    let info = RetryInfo {
        retry_delay: Some(ProtoDuration {
            seconds: i64::try_from(delay.as_secs()).unwrap_or(i64::MAX),
            nanos: i32::try_from(delay.subsec_nanos()).unwrap_or(0),
        }),
    };
    prost::Message::encode_to_vec(&RpcStatus {
        code,
        message: String::new(),
        details: vec![AnyDetail {
            type_url: RETRY_INFO_TYPE.to_owned(),
            value: prost::Message::encode_to_vec(&info),
        }],
    })
}

/// What a delivered request came back with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sent {
    /// `partial_success.rejected_spans`: spans the receiver refused (not retried).
    pub rejected_spans: i64,
    /// `partial_success.error_message`.
    pub message: String,
}

impl Sent {
    /// Reads the partial success of a response.
    #[must_use]
    pub fn of(resp: &ExportTraceServiceResponse) -> Self {
        resp.partial_success
            .as_ref()
            .map(|p| Self {
                rejected_spans: p.rejected_spans.max(0),
                message: p.error_message.clone(),
            })
            .unwrap_or_default()
    }
}

/// Turns a reply into the exporter's result, naming `what` (e.g. `gRPC 10.0.0.1:4317`).
///
/// # Errors
/// [`ExportError::Retryable`] or [`ExportError::Permanent`] by [`classify`].
pub fn verdict_to_result(reply: &Reply, what: &str, detail: &str) -> Result<(), ExportError> {
    let message = || format!("{what}: {}", detail.trim());
    match classify(reply) {
        Verdict::Delivered => Ok(()),
        Verdict::Retry(after) => Err(ExportError::Retryable {
            message: message(),
            after,
        }),
        Verdict::Reject => Err(ExportError::Permanent(message())),
    }
}

/// The wire an exporter (or one balanced endpoint) sends over.
#[derive(Clone)]
pub enum Transport {
    Grpc(Box<super::grpc::GrpcSender>),
    Http(Box<super::http_send::HttpSender>),
}

impl Transport {
    /// Sends one encoded request (the body [`super::encode`] made for this transport).
    ///
    /// # Errors
    /// By [`classify`].
    pub async fn send(&self, body: Bytes) -> Result<Sent, ExportError> {
        match self {
            Self::Grpc(g) => g.send(body).await,
            Self::Http(h) => h.send(body).await,
        }
    }

    /// Where requests go, for logs.
    #[must_use]
    pub fn target(&self) -> String {
        match self {
            Self::Grpc(g) => g.target(),
            Self::Http(h) => h.target(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_classification() {
        let secs = |s| Some(Duration::from_secs(s));
        let table: &[(u16, Option<&str>, Verdict)] = &[
            (200, None, Verdict::Delivered),
            (202, None, Verdict::Delivered),
            (429, Some("3"), Verdict::Retry(secs(3))),
            (429, None, Verdict::Retry(None)),
            (502, Some("2"), Verdict::Retry(secs(2))),
            (503, Some(" 0 "), Verdict::Retry(secs(0))),
            (504, None, Verdict::Retry(None)),
            (503, Some("soon"), Verdict::Retry(None)),
            (
                503,
                Some("Wed, 21 Oct 2015 07:28:00 GMT"),
                Verdict::Retry(Some(Duration::ZERO)),
            ),
            (500, None, Verdict::Reject),
            (501, None, Verdict::Reject),
            (507, None, Verdict::Reject),
            (400, Some("5"), Verdict::Reject),
            (401, None, Verdict::Reject),
            (404, None, Verdict::Reject),
            (413, None, Verdict::Reject),
            (415, None, Verdict::Reject),
            (301, None, Verdict::Reject),
        ];
        for (status, retry_after, want) in table {
            let reply = Reply::Http {
                status: *status,
                retry_after: retry_after.map(str::to_owned),
            };
            assert_eq!(&classify(&reply), want, "{status} {retry_after:?}");
        }
    }

    #[test]
    fn http_date_in_the_future_is_waited_for() {
        let at = SystemTime::now() + Duration::from_secs(30);
        let d = parse_retry_after(&httpdate::fmt_http_date(at)).expect("date");
        assert!(
            d > Duration::from_secs(25) && d <= Duration::from_secs(30),
            "{d:?}"
        );
    }

    #[test]
    fn grpc_classification() {
        let d = Some(Duration::from_millis(1500));
        let table: &[(Code, Option<Duration>, Verdict)] = &[
            (Code::Ok, None, Verdict::Delivered),
            (Code::Unavailable, None, Verdict::Retry(None)),
            (Code::Unavailable, d, Verdict::Retry(d)),
            (Code::Cancelled, None, Verdict::Retry(None)),
            (Code::DeadlineExceeded, None, Verdict::Retry(None)),
            (Code::Aborted, None, Verdict::Retry(None)),
            (Code::OutOfRange, None, Verdict::Retry(None)),
            (Code::DataLoss, None, Verdict::Retry(None)),
            (Code::ResourceExhausted, None, Verdict::Reject),
            (Code::ResourceExhausted, d, Verdict::Retry(d)),
            (Code::InvalidArgument, None, Verdict::Reject),
            (Code::InvalidArgument, d, Verdict::Reject),
            (Code::Unauthenticated, None, Verdict::Reject),
            (Code::PermissionDenied, None, Verdict::Reject),
            (Code::Unimplemented, None, Verdict::Reject),
            (Code::Internal, None, Verdict::Reject),
            (Code::Unknown, None, Verdict::Reject),
        ];
        for (code, retry_delay, want) in table {
            let reply = Reply::Grpc {
                code: *code,
                retry_delay: *retry_delay,
            };
            assert_eq!(&classify(&reply), want, "{code:?} {retry_delay:?}");
        }
        assert_eq!(classify(&Reply::Unreachable), Verdict::Retry(None));
    }

    #[test]
    fn retry_info_is_read_from_status_details() {
        let details = status_details_with_retry(14, Duration::from_millis(2500));
        assert_eq!(retry_delay(&details), Some(Duration::from_millis(2500)));
        assert_eq!(retry_delay(&[]), None);
        assert_eq!(retry_delay(b"\xff\xff garbage"), None);
        // A status whose details hold something else.
        let other = prost::Message::encode_to_vec(&RpcStatus {
            code: 8,
            message: "busy".into(),
            details: vec![AnyDetail {
                type_url: "type.googleapis.com/google.rpc.DebugInfo".into(),
                value: vec![1, 2, 3],
            }],
        });
        assert_eq!(retry_delay(&other), None);
    }

    #[test]
    fn partial_success_is_read() {
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess;
        let resp = ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: 3,
                error_message: "too old".into(),
            }),
        };
        assert_eq!(
            Sent::of(&resp),
            Sent {
                rejected_spans: 3,
                message: "too old".into()
            }
        );
        assert_eq!(
            Sent::of(&ExportTraceServiceResponse::default()),
            Sent::default()
        );
    }
}
