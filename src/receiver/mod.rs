//! OTLP receivers. The gRPC and HTTP front ends decode requests their own way and then
//! share [`Intake`]: per-span (and per-profile, in `profiles.rs`) validation,
//! `partial_success`, admission to the pipeline and the receiver metrics. Each front
//! end has exactly one function that turns a [`ReceiveError`] into its protocol's status.

pub mod decode;
pub mod grpc_raw;
pub mod otlp_grpc;
pub mod otlp_http;
pub mod pinpoint;
pub mod profiles;

use std::fmt::Write as _;
use std::sync::Arc;

use metrics::Counter;
use opentelemetry_proto::tonic::collector::profiles::v1development::{
    ExportProfilesPartialSuccess, ExportProfilesServiceRequest, ExportProfilesServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span};

use crate::memory::MemoryGuard;
use crate::pipeline::{Block, Pipeline, ProfileBlock, Refused};
use crate::selfmetrics as m;

/// Why a whole request was not taken.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// The body could not be decoded as an OTLP request.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// The body is larger than the limit, after decompression.
    #[error("request is larger than the limit of {limit} bytes (measured after decompression)")]
    TooLarge { limit: usize },
    /// Content-Type is neither protobuf nor JSON.
    #[error("unsupported content type `{0}` (use application/x-protobuf or application/json)")]
    UnsupportedMediaType(String),
    /// Content-Encoding is not one the receiver can undo, or the compressed data is bad.
    #[error("{0}")]
    BadEncoding(String),
    /// A content type this endpoint does not take, for the reason given.
    #[error("{0}")]
    Unsupported(&'static str),
    /// Profiles arrived, but no exporter takes profiles.
    #[error("no exporter takes OTLP profiles: configure an exporter of type pyroscope")]
    NoProfileExporter,
    /// Backpressure: retry later.
    #[error(transparent)]
    Refused(#[from] Refused),
    /// Once decoded, the request would pass the per-request memory limit (not retryable).
    #[error("{0}")]
    DecodedTooLarge(String),
    /// The gateway is at its soft memory limit: retry later.
    #[error("{0}")]
    MemoryLimit(String),
}

impl ReceiveError {
    /// Label for the requests-failed metric.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::TooLarge { .. } => "too_large",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::BadEncoding(_) => "bad_encoding",
            Self::Unsupported(_) => "unsupported_media_type",
            Self::NoProfileExporter => "no_profile_exporter",
            Self::Refused(Refused::QueueFull { .. }) => "queue_full",
            Self::Refused(Refused::ShuttingDown) => "shutting_down",
            Self::Refused(Refused::Storage { .. }) => "storage",
            Self::DecodedTooLarge(_) => "decoded_too_large",
            Self::MemoryLimit(_) => "memory_limit",
        }
    }
}

/// Why one span was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanProblem {
    TraceId,
    SpanId,
    ParentSpanId,
    EndBeforeStart,
}

impl SpanProblem {
    const ALL: [Self; 4] = [
        Self::TraceId,
        Self::SpanId,
        Self::ParentSpanId,
        Self::EndBeforeStart,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::TraceId => "invalid_trace_id",
            Self::SpanId => "invalid_span_id",
            Self::ParentSpanId => "invalid_parent_span_id",
            Self::EndBeforeStart => "end_before_start",
        }
    }
}

/// Checks one span; normalizes an all-zero parent id (some SDKs send one for roots)
/// to "no parent".
fn check_span(span: &mut Span) -> Result<(), (SpanProblem, String)> {
    if span.trace_id.len() != 16 {
        return Err((
            SpanProblem::TraceId,
            format!("trace_id has {} bytes, expected 16", span.trace_id.len()),
        ));
    }
    if span.trace_id.iter().all(|b| *b == 0) {
        return Err((SpanProblem::TraceId, "trace_id is all zeros".to_owned()));
    }
    if span.span_id.len() != 8 {
        return Err((
            SpanProblem::SpanId,
            format!("span_id has {} bytes, expected 8", span.span_id.len()),
        ));
    }
    if span.span_id.iter().all(|b| *b == 0) {
        return Err((SpanProblem::SpanId, "span_id is all zeros".to_owned()));
    }
    match span.parent_span_id.len() {
        0 => {}
        8 if span.parent_span_id.iter().all(|b| *b == 0) => span.parent_span_id.clear(),
        8 => {}
        n => {
            return Err((
                SpanProblem::ParentSpanId,
                format!("parent_span_id has {n} bytes, expected 0 or 8"),
            ));
        }
    }
    if span.end_time_unix_nano < span.start_time_unix_nano {
        return Err((
            SpanProblem::EndBeforeStart,
            "end_time_unix_nano is before start_time_unix_nano".to_owned(),
        ));
    }
    Ok(())
}

/// The outcome of validating a request span by span.
#[derive(Debug, Default)]
pub struct Sanitized {
    /// The valid spans, with emptied scopes and resources removed.
    pub resource_spans: Vec<ResourceSpans>,
    pub accepted: usize,
    /// Rejected spans per [`SpanProblem`] (in `SpanProblem::ALL` order).
    pub rejected: [usize; 4],
    /// A readable summary of the first few rejections, for `partial_success`.
    pub message: String,
}

impl Sanitized {
    #[must_use]
    pub fn rejected_total(&self) -> usize {
        self.rejected.iter().sum()
    }
}

const MAX_REPORTED: usize = 5;

/// Removes invalid spans one at a time, never failing the request for them.
#[must_use]
pub fn sanitize(request: ExportTraceServiceRequest) -> Sanitized {
    let mut out = Sanitized::default();
    let mut reported = 0;
    let mut resource_spans = request.resource_spans;
    for (ri, rs) in resource_spans.iter_mut().enumerate() {
        for (si, ss) in rs.scope_spans.iter_mut().enumerate() {
            let mut index = 0;
            ss.spans.retain_mut(|span| {
                let here = index;
                index += 1;
                match check_span(span) {
                    Ok(()) => true,
                    Err((problem, text)) => {
                        if let Some(i) = SpanProblem::ALL.iter().position(|p| *p == problem) {
                            out.rejected[i] += 1;
                        }
                        if reported < MAX_REPORTED {
                            let sep = if reported == 0 { "" } else { "; " };
                            let _ = write!(
                                out.message,
                                "{sep}resource_spans[{ri}].scope_spans[{si}].spans[{here}]: {text}"
                            );
                        }
                        reported += 1;
                        false
                    }
                }
            });
            out.accepted += ss.spans.len();
        }
        rs.scope_spans.retain(|ss| !ss.spans.is_empty());
    }
    resource_spans.retain(|rs| !rs.scope_spans.is_empty());
    let total = out.rejected_total();
    if total > 0 {
        let more = total.saturating_sub(MAX_REPORTED);
        let tail = if more > 0 {
            format!(" (and {more} more)")
        } else {
            String::new()
        };
        out.message = format!("rejected {total} invalid span(s): {}{tail}", out.message);
    }
    out.resource_spans = resource_spans;
    out
}

/// The shared back half of every OTLP receiver.
pub struct Intake {
    pipeline: Arc<Pipeline>,
    name: &'static str,
    accepted: Counter,
    refused_full: Counter,
    refused_shutdown: Counter,
    /// Spans a persistent queue could not write.
    refused_storage: Counter,
    refused_memory: Counter,
    rejected: [Counter; 4],
    profiles: ProfileCounters,
    memory: Arc<MemoryGuard>,
}

struct ProfileCounters {
    accepted: Counter,
    refused_full: Counter,
    refused_shutdown: Counter,
    refused_storage: Counter,
    rejected: Counter,
}

impl Intake {
    /// `name` labels this receiver's metrics (`otlp_grpc`, `otlp_http`).
    #[must_use]
    pub fn new(pipeline: Arc<Pipeline>, name: &'static str) -> Self {
        let rejected = SpanProblem::ALL.map(|p| {
            metrics::counter!(m::RECEIVER_SPANS_REJECTED, "receiver" => name, "reason" => p.label())
        });
        Self {
            pipeline,
            name,
            accepted: metrics::counter!(m::RECEIVER_SPANS_ACCEPTED, "receiver" => name),
            refused_full: metrics::counter!(m::RECEIVER_SPANS_REFUSED, "receiver" => name, "reason" => "queue_full"),
            refused_shutdown: metrics::counter!(m::RECEIVER_SPANS_REFUSED, "receiver" => name, "reason" => "shutting_down"),
            refused_storage: metrics::counter!(m::RECEIVER_SPANS_REFUSED, "receiver" => name, "reason" => "storage"),
            refused_memory: metrics::counter!(m::RECEIVER_SPANS_REFUSED, "receiver" => name, "reason" => "memory_limit"),
            rejected,
            profiles: ProfileCounters {
                accepted: metrics::counter!(m::RECEIVER_PROFILES_ACCEPTED, "receiver" => name),
                refused_full: metrics::counter!(m::RECEIVER_PROFILES_REFUSED, "receiver" => name, "reason" => "queue_full"),
                refused_shutdown: metrics::counter!(m::RECEIVER_PROFILES_REFUSED, "receiver" => name, "reason" => "shutting_down"),
                refused_storage: metrics::counter!(m::RECEIVER_PROFILES_REFUSED, "receiver" => name, "reason" => "storage"),
                rejected: metrics::counter!(m::RECEIVER_PROFILES_REJECTED, "receiver" => name, "reason" => "invalid"),
            },
            memory: Arc::new(MemoryGuard::default()),
        }
    }

    /// Uses `memory` (the process's limits) instead of the default per-request limit
    /// without a soft limit.
    #[must_use]
    pub fn with_memory(mut self, memory: Arc<MemoryGuard>) -> Self {
        self.memory = memory;
        self
    }

    /// Whether any exporter takes profiles (checked before reading a profiles request).
    #[must_use]
    pub fn takes_profiles(&self) -> bool {
        self.pipeline.takes_profiles()
    }

    /// Validates and admits one decoded profiles request.
    ///
    /// # Errors
    /// [`ReceiveError::NoProfileExporter`] when no exporter takes profiles;
    /// [`ReceiveError::Refused`] when the pipeline has no room (nothing was taken).
    pub async fn accept_profiles(
        &self,
        request: ExportProfilesServiceRequest,
    ) -> Result<ExportProfilesServiceResponse, ReceiveError> {
        if !self.pipeline.takes_profiles() {
            return Err(ReceiveError::NoProfileExporter);
        }
        let s = profiles::sanitize_profiles(request);
        let c = &self.profiles;
        if s.rejected > 0 {
            c.rejected.increment(s.rejected as u64);
        }
        match self
            .pipeline
            .submit_profiles_durable(ProfileBlock::new(s.request))
            .await
        {
            Ok(_) => c.accepted.increment(s.accepted as u64),
            Err(refused) => {
                let counter = match refused {
                    Refused::QueueFull { .. } => &c.refused_full,
                    Refused::ShuttingDown => &c.refused_shutdown,
                    Refused::Storage { .. } => &c.refused_storage,
                };
                counter.increment(s.accepted as u64);
                return Err(refused.into());
            }
        }
        Ok(ExportProfilesServiceResponse {
            partial_success: (s.rejected > 0).then_some(ExportProfilesPartialSuccess {
                rejected_profiles: s.rejected as i64,
                error_message: s.message,
            }),
        })
    }

    /// Validates and admits one decoded request.
    ///
    /// # Errors
    /// [`ReceiveError::Refused`] when the pipeline has no room (nothing was taken).
    pub async fn accept(
        &self,
        request: ExportTraceServiceRequest,
    ) -> Result<ExportTraceServiceResponse, ReceiveError> {
        let s = sanitize(request);
        for (counter, n) in self.rejected.iter().zip(s.rejected) {
            if n > 0 {
                counter.increment(n as u64);
            }
        }
        let rejected = s.rejected_total();
        let block = Block {
            resource_spans: s.resource_spans,
            span_count: s.accepted,
            overrides: None,
        };
        // A persistent queue has the spans on disk before the sender hears "accepted".
        match self.pipeline.submit_durable(block).await {
            Ok(()) => self.accepted.increment(s.accepted as u64),
            Err(refused) => {
                let c = match refused {
                    Refused::QueueFull { .. } => &self.refused_full,
                    Refused::ShuttingDown => &self.refused_shutdown,
                    Refused::Storage { .. } => &self.refused_storage,
                };
                c.increment(s.accepted as u64);
                return Err(refused.into());
            }
        }
        Ok(ExportTraceServiceResponse {
            partial_success: (rejected > 0).then_some(ExportTracePartialSuccess {
                rejected_spans: rejected as i64,
                error_message: s.message,
            }),
        })
    }

    /// Counts a request rejected whole.
    pub fn count_failed(&self, error: &ReceiveError) {
        metrics::counter!(m::RECEIVER_REQUESTS_FAILED, "receiver" => self.name, "reason" => error.reason()).increment(1);
    }

    #[must_use]
    pub fn name(&self) -> &'static str {
        self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::trace::v1::ScopeSpans;

    fn span(trace: Vec<u8>, id: Vec<u8>, parent: Vec<u8>, start: u64, end: u64) -> Span {
        Span {
            trace_id: trace,
            span_id: id,
            parent_span_id: parent,
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            ..Default::default()
        }
    }

    fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn rejects_each_bad_span_and_keeps_the_rest() {
        let t = vec![1u8; 16];
        let s = vec![2u8; 8];
        let cases: Vec<(Span, Option<SpanProblem>)> = vec![
            (span(t.clone(), s.clone(), vec![], 1, 2), None),
            (span(t.clone(), s.clone(), vec![0; 8], 1, 1), None),
            (
                span(vec![1; 15], s.clone(), vec![], 1, 2),
                Some(SpanProblem::TraceId),
            ),
            (
                span(vec![0; 16], s.clone(), vec![], 1, 2),
                Some(SpanProblem::TraceId),
            ),
            (
                span(t.clone(), vec![0; 8], vec![], 1, 2),
                Some(SpanProblem::SpanId),
            ),
            (
                span(t.clone(), vec![2; 9], vec![], 1, 2),
                Some(SpanProblem::SpanId),
            ),
            (
                span(t.clone(), s.clone(), vec![3; 4], 1, 2),
                Some(SpanProblem::ParentSpanId),
            ),
            (
                span(t.clone(), s.clone(), vec![], 2, 1),
                Some(SpanProblem::EndBeforeStart),
            ),
        ];
        for (sp, want) in cases {
            let mut sp2 = sp.clone();
            assert_eq!(check_span(&mut sp2).err().map(|e| e.0), want, "{sp:?}");
        }
        let spans = vec![
            span(t.clone(), s.clone(), vec![], 1, 2),
            span(vec![0; 16], s.clone(), vec![], 1, 2),
            span(t.clone(), s.clone(), vec![0; 8], 5, 3),
            span(t, s, vec![0; 8], 1, 3),
        ];
        let out = sanitize(request(spans));
        assert_eq!(out.accepted, 2);
        assert_eq!(out.rejected, [1, 0, 0, 1]);
        assert!(
            out.resource_spans[0].scope_spans[0].spans[1]
                .parent_span_id
                .is_empty()
        );
        assert!(out.message.starts_with("rejected 2 invalid span(s): resource_spans[0].scope_spans[0].spans[1]: trace_id is all zeros"), "{}", out.message);
        assert!(
            out.message
                .contains("spans[2]: end_time_unix_nano is before"),
            "{}",
            out.message
        );
    }

    #[test]
    fn fully_rejected_scopes_and_resources_disappear() {
        let out = sanitize(request(vec![span(vec![], vec![], vec![], 0, 0)]));
        assert_eq!((out.accepted, out.rejected_total()), (0, 1));
        assert!(out.resource_spans.is_empty());
    }

    #[test]
    fn message_is_bounded() {
        let bad: Vec<Span> = (0..50)
            .map(|_| span(vec![], vec![], vec![], 0, 0))
            .collect();
        let out = sanitize(request(bad));
        assert!(out.message.ends_with("(and 45 more)"), "{}", out.message);
        assert!(out.message.len() < 600);
    }
}
