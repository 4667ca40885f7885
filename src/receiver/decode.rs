//! Decoding with a memory budget, shared by both receivers: estimate the decoded size
//! first ([`crate::memory::scan`], [`crate::memory::json`]), refuse what would pass a
//! limit, then decode and admit, holding the reservation until the request's spans
//! are in the queues (which charge them from then on) and, for a persistent queue, on
//! disk. A request that a full queue would refuse is refused before decoding
//! ([`crate::pipeline::Pipeline::refuse_early`]).

use opentelemetry_proto::tonic::collector::profiles::v1development::{
    ExportProfilesServiceRequest, ExportProfilesServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;

use super::{Intake, ReceiveError};
use crate::memory::{self, MemoryError};
use crate::pipeline::Refused;

/// How a traces request is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    Protobuf,
    Json,
}

impl From<MemoryError> for ReceiveError {
    fn from(e: MemoryError) -> Self {
        match e {
            MemoryError::DecodedTooLarge { .. } => Self::DecodedTooLarge(e.to_string()),
            MemoryError::OverLimit { .. } => Self::MemoryLimit(e.to_string()),
        }
    }
}

/// The spans of an OTLP traces request, counted by walking only the request's
/// `ResourceSpans` and `ScopeSpans` and skipping each `Span` by its length: a few
/// instructions per span where the memory scan reads every byte. `None` for bytes that
/// are not a well-formed request at those levels (the scan and decode then report it).
#[must_use]
pub fn quick_span_count(bytes: &[u8]) -> Option<usize> {
    // ExportTraceServiceRequest.resource_spans = 1, ResourceSpans.scope_spans = 2,
    // ScopeSpans.spans = 2.
    const PATH: [u32; 3] = [1, 2, 2];
    fn walk(mut b: &[u8], depth: usize) -> Option<usize> {
        let mut n = 0usize;
        while !b.is_empty() {
            let key = prost::encoding::decode_varint(&mut b).ok()?;
            let (field, wire) = ((key >> 3) as u32, key & 7);
            let len = match wire {
                0 => {
                    prost::encoding::decode_varint(&mut b).ok()?;
                    continue;
                }
                1 => 8,
                5 => 4,
                2 => usize::try_from(prost::encoding::decode_varint(&mut b).ok()?).ok()?,
                _ => return None,
            };
            let (inner, rest) = (b.get(..len)?, b.get(len..)?);
            b = rest;
            if wire == 2 && PATH.get(depth) == Some(&field) {
                n += if depth + 1 == PATH.len() {
                    1
                } else {
                    walk(inner, depth + 1)?
                };
            }
        }
        Some(n)
    }
    walk(bytes, 0)
}

impl Intake {
    fn admit_memory(&self, est: memory::Estimate) -> Result<memory::Reservation<'_>, ReceiveError> {
        self.memory.admit(est).map_err(|e| {
            if matches!(e, MemoryError::OverLimit { .. }) {
                self.refused_memory.increment(est.items as u64);
            }
            e.into()
        })
    }

    /// Refuses a request that a full queue would refuse after decoding, before decoding
    /// it: under overload, refusing then costs a scan instead of a decode (issue 17).
    fn refuse_early(&self, est: memory::Estimate) -> Result<(), ReceiveError> {
        self.pipeline
            .refuse_early(est.items, est.bytes)
            .map_err(|refused| {
                let c = match refused {
                    Refused::QueueFull { .. } => &self.refused_full,
                    Refused::ShuttingDown => &self.refused_shutdown,
                    Refused::Storage { .. } => &self.refused_storage,
                };
                c.increment(est.items as u64);
                refused.into()
            })
    }

    /// Estimates, decodes, validates and admits one traces request.
    ///
    /// # Errors
    /// [`ReceiveError::DecodedTooLarge`] or [`ReceiveError::MemoryLimit`] before
    /// decoding; [`ReceiveError::Malformed`]; or what [`Intake::accept`] returns.
    pub async fn receive(
        &self,
        bytes: &[u8],
        wire: Wire,
    ) -> Result<ExportTraceServiceResponse, ReceiveError> {
        if wire == Wire::Protobuf
            && let Some(spans) = quick_span_count(bytes)
        {
            // Under overload most requests are refused: decide from a count that skips
            // over the spans before the scan that reads every byte (issue 17). The wire
            // size stands in for the decoded size: decoding never makes a request smaller.
            self.refuse_early(memory::Estimate {
                bytes: bytes.len(),
                items: spans,
                messages: spans,
                stopped: false,
            })?;
        }
        let limit = self.memory.max_decoded();
        let est = match wire {
            Wire::Protobuf => memory::scan::traces(bytes, limit),
            Wire::Json => memory::json::traces(bytes, limit),
        };
        let _reserved = self.admit_memory(est)?;
        self.refuse_early(est)?;
        let request = match wire {
            Wire::Protobuf => ExportTraceServiceRequest::decode(bytes)
                .map_err(|e| ReceiveError::Malformed(format!("invalid protobuf: {e}")))?,
            Wire::Json => serde_json::from_slice(bytes)
                .map_err(|e| ReceiveError::Malformed(format!("invalid OTLP/JSON: {e}")))?,
        };
        self.accept(request).await
    }

    /// Estimates, decodes, validates and admits one profiles request (protobuf).
    ///
    /// # Errors
    /// As [`Intake::receive`], and [`ReceiveError::NoProfileExporter`].
    pub async fn receive_profiles(
        &self,
        bytes: &[u8],
    ) -> Result<ExportProfilesServiceResponse, ReceiveError> {
        let est = memory::scan::profiles(bytes, self.memory.max_decoded());
        let _reserved = self.admit_memory(est)?;
        let request = ExportProfilesServiceRequest::decode(bytes)
            .map_err(|e| ReceiveError::Malformed(format!("invalid protobuf: {e}")))?;
        self.accept_profiles(request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BatchConfig, ExporterConfig, ExporterKind, QueueConfig, RetryConfig};
    use crate::memory::MemoryGuard;
    use crate::pipeline::Pipeline;
    use crate::pipeline::router::Router;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use std::sync::Arc;

    fn intake(guard: MemoryGuard) -> Intake {
        let cfg = ExporterConfig {
            name: "null".into(),
            queue: QueueConfig::default(),
            batch: BatchConfig::default(),
            retry: RetryConfig::default(),
            kind: ExporterKind::Null,
        };
        let (p, _rx) = Pipeline::new(&[cfg], Router::all(1));
        Intake::new(p, "test").with_memory(Arc::new(guard))
    }

    fn empty_spans(n: usize) -> Vec<u8> {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span::default(); n],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec()
    }

    #[tokio::test]
    async fn amplifying_requests_are_refused_before_decoding_with_a_message() {
        let i = intake(MemoryGuard::new(None, 1 << 20));
        let e = i
            .receive(&empty_spans(100_000), Wire::Protobuf)
            .await
            .expect_err("too large once decoded");
        assert!(matches!(e, ReceiveError::DecodedTooLarge(_)), "{e}");
        assert!(
            e.to_string().contains("at least") && e.to_string().contains("1048576"),
            "{e}"
        );
        let json = format!(
            r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{}]}}]}}]}}"#,
            vec!["{}"; 100_000].join(",")
        );
        let e = i
            .receive(json.as_bytes(), Wire::Json)
            .await
            .expect_err("json too");
        assert!(matches!(e, ReceiveError::DecodedTooLarge(_)), "{e}");
        // Small requests still pass (the spans are invalid, so all are rejected).
        let ok = i
            .receive(&empty_spans(10), Wire::Protobuf)
            .await
            .expect("fits");
        assert_eq!(ok.partial_success.map(|p| p.rejected_spans), Some(10));
    }

    #[tokio::test]
    async fn a_full_queue_refuses_before_decoding() {
        let cfg = ExporterConfig {
            name: "null".into(),
            queue: QueueConfig {
                max_spans: 150,
                ..QueueConfig::default()
            },
            batch: BatchConfig::default(),
            retry: RetryConfig::default(),
            kind: ExporterKind::Null,
        };
        let (p, _rx) = Pipeline::new(&[cfg], Router::all(1));
        let i = Intake::new(Arc::clone(&p), "test");
        let shape = crate::testdata::Shape {
            spans: 100,
            ..crate::testdata::Shape::default()
        };
        let wire = crate::testdata::request(&shape, 1).encode_to_vec();
        i.receive(&wire, Wire::Protobuf)
            .await
            .expect("room for 100");
        // 50 spans of room left: the pre-check refuses the next 100 from the scan's count.
        assert!(matches!(
            p.refuse_early(100, 1),
            Err(Refused::QueueFull { .. })
        ));
        assert!(p.refuse_early(50, 1).is_ok());
        let e = i
            .receive(&wire, Wire::Protobuf)
            .await
            .expect_err("the queue is full");
        assert!(
            matches!(e, ReceiveError::Refused(Refused::QueueFull { .. })),
            "{e}"
        );
    }

    #[test]
    fn quick_count_agrees_with_the_request() {
        for (services, spans, extra) in [(1, 1, 0), (5, 100, 0), (3, 37, 4), (7, 500, 2)] {
            let shape = crate::testdata::Shape {
                services,
                spans,
                extra_attributes: extra,
                ..crate::testdata::Shape::default()
            };
            let req = crate::testdata::request(&shape, 3);
            let want = req
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .map(|s| s.spans.len())
                .sum::<usize>();
            assert_eq!(quick_span_count(&req.encode_to_vec()), Some(want));
        }
        assert_eq!(quick_span_count(&empty_spans(10)), Some(10));
        assert_eq!(quick_span_count(b""), Some(0));
        // Truncated or not protobuf: no count (the scan and decode say what is wrong).
        let wire = empty_spans(3);
        assert_eq!(quick_span_count(&wire[..wire.len() - 1]), None);
        assert_eq!(quick_span_count(b"\x0f"), None);
    }

    #[tokio::test]
    async fn over_the_soft_limit_is_retryable() {
        let i = intake(MemoryGuard::new(Some(1), usize::MAX));
        let e = i
            .receive(&empty_spans(1), Wire::Protobuf)
            .await
            .expect_err("over the soft limit");
        assert!(matches!(e, ReceiveError::MemoryLimit(_)), "{e}");
        assert_eq!(e.reason(), "memory_limit");
    }
}
