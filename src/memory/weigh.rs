//! What decoded OTLP data holds in memory: its structs plus what they point to, by
//! capacity (what was allocated, not what is used). Used to charge queues in bytes.
//! Walks the data without allocating.

use std::mem::size_of;

use opentelemetry_proto::tonic::collector::profiles::v1development::ExportProfilesServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, EntityRef, InstrumentationScope, KeyValue, any_value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, span};
use prost::Message;

use super::scan::ALLOC_OVERHEAD;

/// One allocation of `capacity` elements of `T` (none when the capacity is 0).
fn heap<T>(capacity: usize) -> usize {
    if capacity == 0 {
        0
    } else {
        capacity * size_of::<T>() + ALLOC_OVERHEAD
    }
}

fn text(s: &String) -> usize {
    heap::<u8>(s.capacity())
}

fn bytes(b: &Vec<u8>) -> usize {
    heap::<u8>(b.capacity())
}

fn attributes(a: &Vec<KeyValue>) -> usize {
    heap::<KeyValue>(a.capacity())
        + a.iter()
            .map(|kv| text(&kv.key) + kv.value.as_ref().map_or(0, value))
            .sum::<usize>()
}

fn value(v: &AnyValue) -> usize {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => text(s),
        Some(any_value::Value::BytesValue(b)) => bytes(b),
        Some(any_value::Value::ArrayValue(a)) => {
            heap::<AnyValue>(a.values.capacity()) + a.values.iter().map(value).sum::<usize>()
        }
        Some(any_value::Value::KvlistValue(l)) => attributes(&l.values),
        _ => 0,
    }
}

fn resource(r: Option<&Resource>) -> usize {
    r.map_or(0, |r| {
        attributes(&r.attributes) + heap::<EntityRef>(r.entity_refs.capacity())
    })
}

fn scope(s: Option<&InstrumentationScope>) -> usize {
    s.map_or(0, |s| {
        text(&s.name) + text(&s.version) + attributes(&s.attributes)
    })
}

fn span(s: &Span) -> usize {
    let ids = [&s.trace_id, &s.span_id, &s.parent_span_id]
        .iter()
        .map(|b| bytes(b))
        .sum::<usize>();
    let events = heap::<span::Event>(s.events.capacity())
        + s.events
            .iter()
            .map(|e| text(&e.name) + attributes(&e.attributes))
            .sum::<usize>();
    let links = heap::<span::Link>(s.links.capacity())
        + s.links
            .iter()
            .map(|l| {
                bytes(&l.trace_id)
                    + bytes(&l.span_id)
                    + text(&l.trace_state)
                    + attributes(&l.attributes)
            })
            .sum::<usize>();
    let status = s.status.as_ref().map_or(0, |st| text(&st.message));
    ids + text(&s.trace_state) + text(&s.name) + attributes(&s.attributes) + events + links + status
}

/// Bytes held by these `ResourceSpans` (their own structs included).
#[must_use]
pub fn resource_spans(rs: &[ResourceSpans]) -> usize {
    rs.iter()
        .map(|r| {
            size_of::<ResourceSpans>()
                + resource(r.resource.as_ref())
                + text(&r.schema_url)
                + heap::<ScopeSpans>(r.scope_spans.capacity())
                + r.scope_spans
                    .iter()
                    .map(|s| {
                        scope(s.scope.as_ref())
                            + text(&s.schema_url)
                            + heap::<Span>(s.spans.capacity())
                            + s.spans.iter().map(span).sum::<usize>()
                    })
                    .sum::<usize>()
        })
        .sum()
}

/// Bytes held by a decoded traces request.
#[must_use]
pub fn request(r: &ExportTraceServiceRequest) -> usize {
    size_of::<ExportTraceServiceRequest>()
        + heap::<ResourceSpans>(r.resource_spans.capacity())
        + resource_spans(&r.resource_spans)
}

/// Bytes held by a decoded profiles request: its estimate from its encoding (profiles
/// are few and rare next to spans, so they are not walked field by field).
#[must_use]
pub fn profiles(r: &ExportProfilesServiceRequest) -> usize {
    super::scan::profiles(&r.encode_to_vec(), usize::MAX).bytes
}
