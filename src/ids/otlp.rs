//! The identity contract applied to OTLP spans: which spans start a segment (ids.md
//! section 3), their Pinpoint ids, and the `pp` / `ppb` entries of their tracestate.
//! Shared by every exporter that shows Pinpoint ids, so they cannot disagree.

use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;

use super::entries::{BridgeEntry, PpEntry};
use super::headers::{TRACESTATE_PP, TRACESTATE_PPB};
use super::tracestate::TraceStateRef;
use super::{AgentId, SpanId, TraceId, TransactionId, mapping};

/// `SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK`.
const HAS_IS_REMOTE: u32 = 0x100;
/// `SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK`.
const IS_REMOTE: u32 = 0x200;

/// The span's parent id, if it has a valid one (8 bytes, not all zero).
#[must_use]
pub fn parent_of(span: &Span) -> Option<SpanId> {
    <[u8; 8]>::try_from(span.parent_span_id.as_slice())
        .ok()
        .map(SpanId)
        .filter(|p| !p.is_zero())
}

/// The parent, when it is in another process (the span then starts a segment): the
/// OTLP flags say so when the sender set them; otherwise a SERVER or CONSUMER span
/// with a parent counts as having a remote one.
#[must_use]
pub fn remote_parent(span: &Span) -> Option<SpanId> {
    let parent = parent_of(span)?;
    let remote = if span.flags & HAS_IS_REMOTE != 0 {
        span.flags & IS_REMOTE != 0
    } else {
        matches!(
            SpanKind::try_from(span.kind),
            Ok(SpanKind::Server | SpanKind::Consumer)
        )
    };
    remote.then_some(parent)
}

/// The span's Pinpoint spanId when it is the entry of its segment or a root; a local
/// child has none of its own in Pinpoint, and gets its own id read as i64.
#[must_use]
pub fn pinpoint_span_id(span: &Span) -> Option<i64> {
    let own = <[u8; 8]>::try_from(span.span_id.as_slice())
        .ok()
        .map(SpanId)?;
    Some(match remote_parent(span) {
        Some(p) => mapping::entry_span_id(p),
        None => mapping::pinpoint_span_id(own),
    })
}

/// The transaction id of the span's trace: the original Pinpoint txid when its
/// tracestate carries one for this trace, else the lossless OTel-born mapping.
#[must_use]
pub fn transaction_id(trace: TraceId, span: &Span, marker: AgentId) -> TransactionId {
    bridge_entry(span)
        .and_then(|b| b.txid_for(trace, marker))
        .unwrap_or_else(|| mapping::trace_id_to_txid(trace, marker))
}

/// The bridge's `ppb` tracestate entry, if present and valid.
#[must_use]
pub fn bridge_entry(span: &Span) -> Option<BridgeEntry> {
    let ts = TraceStateRef::parse(&span.trace_state).ok()?;
    BridgeEntry::parse(ts.get(TRACESTATE_PPB)?).ok()
}

/// Pinpoint's `pp` tracestate entry as (application name, service type).
#[must_use]
pub fn pp_application(span: &Span) -> Option<(String, i32)> {
    let ts = TraceStateRef::parse(&span.trace_state).ok()?;
    let pp = PpEntry::parse(ts.get(TRACESTATE_PP)?).ok()?;
    Some((pp.application_name.to_owned(), pp.service_type))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(parent: &[u8], kind: SpanKind, flags: u32) -> Span {
        Span {
            span_id: vec![1; 8],
            parent_span_id: parent.to_vec(),
            kind: kind as i32,
            flags,
            ..Default::default()
        }
    }

    #[test]
    fn entry_spans() {
        let p = [2u8; 8];
        let cases = [
            (span(&[], SpanKind::Server, 0), None),
            (span(&[0; 8], SpanKind::Server, 0), None),
            (span(&p, SpanKind::Server, 0), Some(SpanId(p))),
            (span(&p, SpanKind::Consumer, 0), Some(SpanId(p))),
            (span(&p, SpanKind::Internal, 0), None),
            (
                span(&p, SpanKind::Internal, HAS_IS_REMOTE | IS_REMOTE),
                Some(SpanId(p)),
            ),
            (span(&p, SpanKind::Server, HAS_IS_REMOTE), None),
        ];
        for (s, want) in cases {
            assert_eq!(remote_parent(&s), want, "{s:?}");
        }
        assert_eq!(
            pinpoint_span_id(&span(&p, SpanKind::Server, 0)),
            Some(mapping::entry_span_id(SpanId(p)))
        );
        assert_eq!(
            pinpoint_span_id(&span(&[], SpanKind::Server, 0)),
            Some(i64::from_be_bytes([1; 8]))
        );
    }

    #[test]
    fn tracestate_entries() {
        let marker = AgentId::new("otel").expect("marker");
        let trace =
            mapping::hash_txid(&TransactionId::parse("agentA^1700000000000^42").expect("txid"));
        let mut s = span(&[], SpanKind::Server, 0);
        s.trace_state = "ppb=tx:agentA^1700000000000^42,pp=app:shop;type:1010".into();
        assert_eq!(
            transaction_id(trace, &s, marker).to_string(),
            "agentA^1700000000000^42"
        );
        assert_eq!(pp_application(&s), Some(("shop".to_owned(), 1010)));
        s.trace_state = "garbage==".into();
        assert_eq!(
            transaction_id(trace, &s, marker),
            mapping::trace_id_to_txid(trace, marker)
        );
    }
}
