//! The OTLP/JSON counterpart of [`super::scan`]: one pass over the text that estimates
//! the decoded size of an `ExportTraceServiceRequest` before `serde_json` builds it.
//!
//! Every object is charged `2 × size_of` the type its key says it becomes (`spans` →
//! `Span`, `attributes` → `KeyValue`, …; an unknown key is charged the largest type),
//! every string its length. Keys the decoder ignores cost it nothing, so this errs on
//! the high side. It stops once the estimate passes the limit, allocates nothing but
//! its nesting stack (bounded: deeper than [`MAX_DEPTH`] is left to the decoder, which
//! refuses it), and never panics.

use super::scan::{ALLOC_OVERHEAD, Estimate, Ty};

/// Nesting followed at most (`serde_json` refuses more than 128).
const MAX_DEPTH: usize = 130;

fn key_type(key: &[u8]) -> Option<Ty> {
    Some(match key {
        b"resourceSpans" | b"resource_spans" => Ty::ResourceSpans,
        b"resource" => Ty::Resource,
        b"scopeSpans" | b"scope_spans" => Ty::ScopeSpans,
        b"scope" => Ty::Scope,
        b"spans" => Ty::Span,
        b"events" => Ty::Event,
        b"links" => Ty::Link,
        b"status" => Ty::Status,
        b"attributes" => Ty::KeyValue,
        b"value" => Ty::AnyValue,
        b"arrayValue" | b"array_value" => Ty::ArrayValue,
        b"kvlistValue" | b"kvlist_value" => Ty::KvList,
        b"entityRefs" | b"entity_refs" => Ty::EntityRef,
        _ => return None,
    })
}

fn cost_of(key: Option<&[u8]>) -> usize {
    match key {
        // `values` holds AnyValues (arrays) or KeyValues (kvlists).
        Some(b"values") => Ty::AnyValue.size().max(Ty::KeyValue.size()),
        Some(k) => key_type(k).map_or_else(Ty::largest, Ty::size),
        None => Ty::largest(),
    }
}

/// Estimates the decoded size of an OTLP/JSON traces request, stopping once it passes
/// `limit` (then [`Estimate::stopped`] is set). `Estimate::items` counts span objects.
#[must_use]
pub fn traces(text: &[u8], limit: usize) -> Estimate {
    let mut est = Estimate {
        bytes: Ty::TraceRequest.size(),
        ..Estimate::default()
    };
    // Per open container: the charge of each object directly inside it, and whether
    // those objects are spans.
    let mut stack: Vec<(usize, bool)> = Vec::new();
    let mut last_string: (usize, usize) = (0, 0);
    let mut key: Option<(usize, usize)> = None;
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'"' => {
                let start = i + 1;
                i += 1;
                while i < text.len() && text[i] != b'"' {
                    i += if text[i] == b'\\' { 2 } else { 1 };
                }
                let end = i.min(text.len());
                last_string = (start, end);
                if end > start {
                    est.bytes = est
                        .bytes
                        .saturating_add((end - start).max(8) + ALLOC_OVERHEAD);
                }
            }
            b':' => key = Some(last_string),
            c @ (b'{' | b'[') => {
                if stack.len() >= MAX_DEPTH {
                    break;
                }
                let named = key.take().map(|(s, e)| &text[s..e]);
                // An object's own charge: from its key, or from the array holding it.
                let (charge, is_span) = match (c, named) {
                    (b'[', k) => (cost_of(k), k == Some(b"spans")),
                    (_, Some(k)) => (cost_of(Some(k)), k == b"spans"),
                    (_, None) => stack.last().copied().unwrap_or((0, false)),
                };
                if c == b'{' {
                    est.bytes = est.bytes.saturating_add(2 * charge);
                    est.messages += 1;
                    est.items += usize::from(is_span);
                    // Objects nested directly in an object get their charge from a key.
                    stack.push((Ty::largest(), false));
                } else {
                    // A `Vec`'s first allocation holds 4 elements.
                    est.bytes = est.bytes.saturating_add(2 * charge + ALLOC_OVERHEAD);
                    stack.push((charge, is_span));
                }
            }
            b'}' | b']' => {
                key = None;
                stack.pop();
            }
            b',' => key = None,
            _ => {}
        }
        if est.bytes > limit {
            est.stopped = true;
            break;
        }
        i += 1;
    }
    est
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::weigh;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

    #[test]
    fn counts_spans_and_stops_at_the_limit() {
        let body = format!(
            r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{}]}}]}}]}}"#,
            vec!["{}"; 1000].join(",")
        );
        let e = traces(body.as_bytes(), usize::MAX);
        assert_eq!(e.items, 1000);
        assert!(e.bytes >= 1000 * Ty::Span.size());
        assert!(traces(body.as_bytes(), 50_000).stopped);
    }

    #[test]
    fn the_estimate_covers_what_decoding_allocates() {
        let shape = crate::testdata::Shape {
            services: 3,
            spans: 120,
            ..Default::default()
        };
        let req = crate::testdata::request(&shape, 7);
        let body = serde_json::to_vec(&req).expect("json");
        let e = traces(&body, usize::MAX);
        let decoded: ExportTraceServiceRequest = serde_json::from_slice(&body).expect("decodes");
        let held = weigh::request(&decoded);
        assert_eq!(e.items, 120);
        assert!(e.bytes >= held, "estimate {} < held {held}", e.bytes);
        assert!(e.bytes <= 8 * held, "estimate {} vs held {held}", e.bytes);
    }

    #[test]
    fn strings_with_braces_and_escapes_are_skipped() {
        let e = traces(br#"{"a":"{[\"{{{","spans":[{"name":"x\\"}]}"#, usize::MAX);
        assert_eq!(e.items, 1);
        let e = traces(b"[[[[[[[[[[", usize::MAX);
        assert!(!e.stopped);
        let e = traces(&vec![b'['; 100_000], usize::MAX);
        assert!(!e.stopped);
    }
}
