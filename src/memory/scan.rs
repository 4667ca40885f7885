//! A pre-scan of the OTLP protobuf wire that estimates what a request takes in memory
//! once decoded, without decoding it: it walks the tags and lengths, counts every
//! repeated message and packed element, and adds the bytes of strings and byte fields.
//!
//! Decoding multiplies memory: an empty span is 2 bytes on the wire and a few hundred
//! in memory (and a `Vec` that grew by doubling may hold twice its elements), so the
//! estimate charges each repeated element `2 × size_of` its decoded type. The scan
//! allocates nothing, never panics, and stops as soon as the estimate passes the limit.
//! It never rejects input for being malformed: where it cannot follow the wire, it stops
//! counting that part and lets the decoder report the problem.

use std::mem::size_of;

use opentelemetry_proto::tonic::collector::profiles::v1development::ExportProfilesServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, EntityRef, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::profiles::v1development as p;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};

/// What a request would take once decoded (an upper estimate).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    /// Estimated bytes of the decoded request.
    pub bytes: usize,
    /// Spans (or profile samples) counted.
    pub items: usize,
    /// Repeated messages counted (resources, scopes, spans, attributes, events, …).
    pub messages: usize,
    /// Whether the scan stopped early because `bytes` passed the limit.
    pub stopped: bool,
}

/// Heap bookkeeping charged per allocation (allocator header, rounding).
pub const ALLOC_OVERHEAD: usize = 16;
/// Deepest nesting followed (prost's own recursion limit is 100).
const MAX_DEPTH: u32 = 100;

/// The message types whose fields the scan knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
    TraceRequest,
    ResourceSpans,
    Resource,
    ScopeSpans,
    Scope,
    Span,
    Event,
    Link,
    Status,
    KeyValue,
    AnyValue,
    ArrayValue,
    KvList,
    EntityRef,
    ProfilesRequest,
    Dictionary,
    ResourceProfiles,
    ScopeProfiles,
    Profile,
    Sample,
    Mapping,
    Location,
    Line,
    Function,
    ProfileLink,
    Stack,
    KvUnit,
    ValueType,
}

impl Ty {
    /// The decoded size of one value of this type, without what it points to.
    pub(crate) fn size(self) -> usize {
        match self {
            Self::TraceRequest => size_of::<ExportTraceServiceRequest>(),
            Self::ResourceSpans => size_of::<ResourceSpans>(),
            Self::Resource => size_of::<Resource>(),
            Self::ScopeSpans => size_of::<ScopeSpans>(),
            Self::Scope => size_of::<InstrumentationScope>(),
            Self::Span => size_of::<Span>(),
            Self::Event => size_of::<span::Event>(),
            Self::Link => size_of::<span::Link>(),
            Self::Status => size_of::<Status>(),
            Self::KeyValue => size_of::<KeyValue>(),
            Self::AnyValue => size_of::<AnyValue>(),
            Self::ArrayValue => size_of::<ArrayValue>(),
            Self::KvList => size_of::<KeyValueList>(),
            Self::EntityRef => size_of::<EntityRef>(),
            Self::ProfilesRequest => size_of::<ExportProfilesServiceRequest>(),
            Self::Dictionary => size_of::<p::ProfilesDictionary>(),
            Self::ResourceProfiles => size_of::<p::ResourceProfiles>(),
            Self::ScopeProfiles => size_of::<p::ScopeProfiles>(),
            Self::Profile => size_of::<p::Profile>(),
            Self::Sample => size_of::<p::Sample>(),
            Self::Mapping => size_of::<p::Mapping>(),
            Self::Location => size_of::<p::Location>(),
            Self::Line => size_of::<p::Line>(),
            Self::Function => size_of::<p::Function>(),
            Self::ProfileLink => size_of::<p::Link>(),
            Self::Stack => size_of::<p::Stack>(),
            Self::KvUnit => size_of::<p::KeyValueAndUnit>(),
            Self::ValueType => size_of::<p::ValueType>(),
        }
    }

    /// The largest decoded type (for input whose type cannot be known).
    pub(crate) fn largest() -> usize {
        [Self::Span, Self::Profile, Self::ResourceSpans, Self::Link]
            .iter()
            .map(|t| t.size())
            .max()
            .unwrap_or(0)
    }
}

/// How one field decodes.
#[derive(Debug, Clone, Copy)]
enum Field {
    /// A singular message: stored inline in its parent.
    Msg(Ty),
    /// One element of a repeated message field.
    Repeated(Ty),
    /// A string or bytes field: its length on the heap.
    Heap,
    /// One element of a repeated string field.
    RepeatedHeap,
    /// A packed (or unpacked) repeated scalar of `elem` bytes; `fixed` is its wire width
    /// when packed as fixed32/fixed64 (else varints).
    Packed { elem: usize, fixed: Option<usize> },
    /// A scalar, or a field the decoder skips.
    Plain,
}

fn field(ty: Ty, number: u64) -> Field {
    use Field::{Heap, Msg, Plain, Repeated, RepeatedHeap};
    let packed_i32 = Field::Packed {
        elem: 4,
        fixed: None,
    };
    match (ty, number) {
        (Ty::TraceRequest, 1) => Repeated(Ty::ResourceSpans),
        (Ty::ResourceSpans, 1) | (Ty::ResourceProfiles, 1) => Msg(Ty::Resource),
        (Ty::ResourceSpans, 2) => Repeated(Ty::ScopeSpans),
        (Ty::ResourceSpans | Ty::ScopeSpans | Ty::ResourceProfiles | Ty::ScopeProfiles, 3) => Heap,
        (Ty::Resource, 1) => Repeated(Ty::KeyValue),
        (Ty::Resource, 3) => Repeated(Ty::EntityRef),
        (Ty::ScopeSpans, 1) | (Ty::ScopeProfiles, 1) => Msg(Ty::Scope),
        (Ty::ScopeSpans, 2) => Repeated(Ty::Span),
        (Ty::Scope, 1 | 2) => Heap,
        (Ty::Scope, 3) => Repeated(Ty::KeyValue),
        (Ty::Span, 1..=5) => Heap,
        (Ty::Span, 9) | (Ty::Event, 3) | (Ty::Link, 4) | (Ty::KvList, 1) => Repeated(Ty::KeyValue),
        (Ty::Span, 11) => Repeated(Ty::Event),
        (Ty::Span, 13) => Repeated(Ty::Link),
        (Ty::Span, 15) => Msg(Ty::Status),
        (Ty::Event, 2) | (Ty::Link, 1..=3) | (Ty::Status, 2) | (Ty::KeyValue, 1) => Heap,
        (Ty::KeyValue, 2) | (Ty::KvUnit, 2) => Msg(Ty::AnyValue),
        (Ty::AnyValue, 1 | 7) => Heap,
        (Ty::AnyValue, 5) => Msg(Ty::ArrayValue),
        (Ty::AnyValue, 6) => Msg(Ty::KvList),
        (Ty::ArrayValue, 1) => Repeated(Ty::AnyValue),
        (Ty::EntityRef, 1 | 2) => Heap,
        (Ty::EntityRef, 3 | 4) | (Ty::Dictionary, 5) => RepeatedHeap,
        (Ty::ProfilesRequest, 1) => Repeated(Ty::ResourceProfiles),
        (Ty::ProfilesRequest, 2) => Msg(Ty::Dictionary),
        (Ty::Dictionary, 1) => Repeated(Ty::Mapping),
        (Ty::Dictionary, 2) => Repeated(Ty::Location),
        (Ty::Dictionary, 3) => Repeated(Ty::Function),
        (Ty::Dictionary, 4) => Repeated(Ty::ProfileLink),
        (Ty::Dictionary, 6) => Repeated(Ty::KvUnit),
        (Ty::Dictionary, 7) => Repeated(Ty::Stack),
        (Ty::ResourceProfiles, 2) => Repeated(Ty::ScopeProfiles),
        (Ty::ScopeProfiles, 2) => Repeated(Ty::Profile),
        (Ty::Profile, 1 | 5) => Msg(Ty::ValueType),
        (Ty::Profile, 2) => Repeated(Ty::Sample),
        (Ty::Profile, 7 | 9 | 10) | (Ty::ProfileLink, 1 | 2) => Heap,
        (Ty::Profile, 11) | (Ty::Sample, 2) | (Ty::Mapping, 5) | (Ty::Location, 4) => packed_i32,
        (Ty::Stack, 1) => packed_i32,
        (Ty::Sample, 4) => Field::Packed {
            elem: 8,
            fixed: None,
        },
        (Ty::Sample, 5) => Field::Packed {
            elem: 8,
            fixed: Some(8),
        },
        (Ty::Location, 3) => Repeated(Ty::Line),
        _ => Plain,
    }
}

struct Scanner {
    limit: usize,
    est: Estimate,
}

impl Scanner {
    fn charge(&mut self, bytes: usize) -> bool {
        self.est.bytes = self.est.bytes.saturating_add(bytes);
        if self.est.bytes > self.limit {
            self.est.stopped = true;
        }
        !self.est.stopped
    }

    /// Walks one message body. Returns `false` to stop everything (over the limit).
    /// A body it cannot follow ends its walk early (the decoder will say why).
    fn message(&mut self, mut buf: &[u8], ty: Ty, depth: u32) -> bool {
        if depth > MAX_DEPTH {
            return true;
        }
        // Repeated fields already seen in this message: a `Vec`'s first allocation holds
        // 4 elements, so the first element of each is charged twice as much.
        let mut seen = 0u64;
        while !buf.is_empty() {
            let Some(tag) = varint(&mut buf) else {
                return true;
            };
            let (number, wire) = (tag >> 3, tag & 7);
            let f = field(ty, number);
            let bit = u32::try_from(number)
                .ok()
                .and_then(|n| 1u64.checked_shl(n))
                .unwrap_or(0);
            let first = bit == 0 || seen & bit == 0;
            seen |= bit;
            match wire {
                0 => {
                    if varint(&mut buf).is_none() {
                        return true;
                    }
                    if let Field::Packed { elem, .. } = f
                        && !self.charge(if first {
                            4 * elem + ALLOC_OVERHEAD
                        } else {
                            2 * elem
                        })
                    {
                        return false;
                    }
                }
                1 | 5 => {
                    let width = if wire == 1 { 8 } else { 4 };
                    if buf.len() < width {
                        return true;
                    }
                    buf = &buf[width..];
                    if let Field::Packed { elem, .. } = f
                        && !self.charge(if first {
                            4 * elem + ALLOC_OVERHEAD
                        } else {
                            2 * elem
                        })
                    {
                        return false;
                    }
                }
                2 => {
                    let Some(len) = varint(&mut buf) else {
                        return true;
                    };
                    let Ok(len) = usize::try_from(len) else {
                        return true;
                    };
                    if buf.len() < len {
                        return true;
                    }
                    let (body, rest) = buf.split_at(len);
                    buf = rest;
                    if !self.field(f, body, depth, first) {
                        return false;
                    }
                }
                3 => {
                    if !skip_group(&mut buf, number, depth + 1) {
                        return true;
                    }
                }
                _ => return true,
            }
        }
        true
    }

    fn field(&mut self, f: Field, body: &[u8], depth: u32, first: bool) -> bool {
        // Each repeated element: twice its size (a doubling `Vec`), four times for the
        // first (a `Vec` starts with room for 4).
        let per = |size: usize| {
            if first {
                4 * size + ALLOC_OVERHEAD
            } else {
                2 * size
            }
        };
        match f {
            Field::Msg(t) => self.message(body, t, depth + 1),
            Field::Repeated(t) => {
                self.est.messages += 1;
                if matches!(t, Ty::Span | Ty::Sample) {
                    self.est.items += 1;
                }
                self.charge(per(t.size())) && self.message(body, t, depth + 1)
            }
            Field::Heap if body.is_empty() => true,
            Field::Heap => self.charge(body.len().max(8) + ALLOC_OVERHEAD),
            Field::RepeatedHeap => {
                self.charge(per(size_of::<String>()) + body.len().max(8) + ALLOC_OVERHEAD)
            }
            Field::Packed { elem, fixed } => {
                let n = match fixed {
                    Some(w) => body.len() / w,
                    None => body.iter().filter(|b| **b < 0x80).count(),
                };
                self.charge(2 * elem * n + per(elem) + ALLOC_OVERHEAD)
            }
            Field::Plain => true,
        }
    }
}

/// Reads one varint; `None` at a truncated or overlong one.
fn varint(buf: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for i in 0..10 {
        let (&b, rest) = buf.split_first()?;
        *buf = rest;
        value |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Some(value);
        }
    }
    None
}

/// Skips a group up to its end tag; `false` when the wire cannot be followed.
fn skip_group(buf: &mut &[u8], number: u64, depth: u32) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    while let Some(tag) = varint(buf) {
        let (n, wire) = (tag >> 3, tag & 7);
        let ok = match wire {
            0 => varint(buf).is_some(),
            1 | 5 => {
                let w = if wire == 1 { 8 } else { 4 };
                buf.len() >= w && {
                    *buf = &buf[w..];
                    true
                }
            }
            2 => match varint(buf).and_then(|l| usize::try_from(l).ok()) {
                Some(l) if buf.len() >= l => {
                    *buf = &buf[l..];
                    true
                }
                _ => false,
            },
            3 => skip_group(buf, n, depth + 1),
            4 => return n == number,
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    false
}

fn scan(buf: &[u8], ty: Ty, limit: usize) -> Estimate {
    let mut s = Scanner {
        limit,
        est: Estimate::default(),
    };
    if s.charge(ty.size()) {
        s.message(buf, ty, 0);
    }
    s.est
}

/// Estimates the decoded size of an `ExportTraceServiceRequest`, stopping once it
/// passes `limit` (then [`Estimate::stopped`] is set).
#[must_use]
pub fn traces(buf: &[u8], limit: usize) -> Estimate {
    scan(buf, Ty::TraceRequest, limit)
}

/// Estimates the decoded size of an `ExportProfilesServiceRequest`, like [`traces`].
#[must_use]
pub fn profiles(buf: &[u8], limit: usize) -> Estimate {
    scan(buf, Ty::ProfilesRequest, limit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::weigh;
    use prost::Message;

    fn empty_spans(n: usize) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span::default(); n],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn counts_empty_spans_and_stops_at_the_limit() {
        let wire = empty_spans(1000).encode_to_vec();
        let e = traces(&wire, usize::MAX);
        assert_eq!(e.items, 1000);
        assert!(!e.stopped);
        assert!(e.bytes >= 1000 * size_of::<Span>(), "{e:?}");
        let e = traces(&wire, 10_000);
        assert!(e.stopped && e.items < 1000, "{e:?}");
    }

    #[test]
    fn the_estimate_covers_what_decoding_allocates() {
        // Realistic batches: the estimate is at least what the decoded request holds,
        // and not wildly more.
        for seed in 0..5 {
            let shape = crate::testdata::Shape {
                services: 3,
                spans: 120,
                ..Default::default()
            };
            let req = crate::testdata::request(&shape, seed);
            let wire = req.encode_to_vec();
            let e = traces(&wire, usize::MAX);
            let decoded = ExportTraceServiceRequest::decode(&wire[..]).expect("decodes");
            let held = weigh::request(&decoded);
            assert!(e.bytes >= held, "estimate {} < held {held}", e.bytes);
            assert!(
                e.bytes <= 4 * held + 4096,
                "estimate {} vs held {held}",
                e.bytes
            );
            assert_eq!(e.items, 120);
        }
    }

    #[test]
    fn malformed_input_is_left_to_the_decoder() {
        for bad in [&b"\xff\xff\xff"[..], b"\x0a\x05ab", b"\x0b\x0c", b"\x0a"] {
            let e = traces(bad, usize::MAX);
            assert!(!e.stopped);
        }
    }

    #[test]
    fn groups_do_not_hide_what_follows() {
        let mut wire = vec![0x7b, 0x08, 0x01, 0x7c]; // group 15 { field 1 = 1 }
        wire.extend(empty_spans(100).encode_to_vec());
        assert_eq!(traces(&wire, usize::MAX).items, 100);
    }

    #[test]
    fn packed_profile_values_are_counted() {
        let sample = p::Sample {
            values: vec![1; 1000],
            ..Default::default()
        };
        let req = ExportProfilesServiceRequest {
            resource_profiles: vec![p::ResourceProfiles {
                scope_profiles: vec![p::ScopeProfiles {
                    profiles: vec![p::Profile {
                        samples: vec![sample],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            dictionary: None,
        };
        let e = profiles(&req.encode_to_vec(), usize::MAX);
        assert!(e.bytes >= 8000, "{e:?}");
        assert_eq!(e.items, 1);
    }
}
