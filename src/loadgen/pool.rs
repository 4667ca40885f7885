//! Pre-encoded requests for `loadgen --pool N`: N requests are generated and encoded
//! once, and each send copies one and rewrites its trace ids in place, so a run can
//! offer several times what the gateway sustains from one core without spending that
//! core on generating and encoding (issue 17's overload scenario).
//!
//! Send n uses template `n % N` in round `r = n / N`: the last 8 bytes of every trace id
//! are XORed with `r` (round 0 sends the template as generated). Trace ids are random, so
//! ids stay distinct across rounds and the traces of one request stay whole; span ids
//! repeat across rounds, but under other trace ids.

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;

use crate::testdata::{self, Shape};

/// One encoded request and where its trace ids are.
struct Template {
    bytes: Vec<u8>,
    /// Offsets of the 16 trace-id bytes of every span.
    trace_ids: Vec<usize>,
    spans: u64,
}

/// The pre-encoded requests.
pub struct Pool {
    templates: Vec<Template>,
}

/// Where `needle` (a 16-byte id preceded by its field key and length) occurs in `hay`.
fn occurrences(hay: &[u8], needle: &[u8]) -> Vec<usize> {
    let mut at = Vec::new();
    let mut i = 0;
    while i + needle.len() <= hay.len() {
        if hay[i..].starts_with(needle) {
            at.push(i);
            i += needle.len();
        } else {
            i += 1;
        }
    }
    at
}

impl Pool {
    /// Generates and encodes `size` requests of `shape` from seeds `seed..seed + size`.
    #[must_use]
    pub fn new(shape: &Shape, seed: u64, size: usize) -> Self {
        let templates = (0..size.max(1) as u64)
            .map(|i| Self::template(&testdata::request(shape, seed.wrapping_add(i))))
            .collect();
        Self { templates }
    }

    fn template(req: &ExportTraceServiceRequest) -> Template {
        let bytes = req.encode_to_vec();
        let spans = req
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans);
        let mut ids: Vec<&[u8]> = spans
            .clone()
            .map(|s| s.trace_id.as_slice())
            .filter(|t| t.len() == 16)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let mut trace_ids = Vec::new();
        for id in ids {
            // `Span.trace_id` is field 1, length-delimited: key 0x0a, length 16.
            let mut needle = vec![0x0a, 16];
            needle.extend_from_slice(id);
            trace_ids.extend(occurrences(&bytes, &needle).into_iter().map(|o| o + 2));
        }
        Template {
            bytes,
            trace_ids,
            spans: spans.count() as u64,
        }
    }

    /// The bytes of send `n` and its span count.
    #[must_use]
    pub fn get(&self, n: u64) -> (Bytes, u64) {
        let len = self.templates.len() as u64;
        let Some(t) = self.templates.get((n % len) as usize) else {
            return (Bytes::new(), 0);
        };
        let round = (n / len).to_be_bytes();
        let mut b = t.bytes.clone();
        if n >= len {
            for &o in &t.trace_ids {
                if let Some(tail) = b.get_mut(o + 8..o + 16) {
                    for (x, r) in tail.iter_mut().zip(round) {
                        *x ^= r;
                    }
                }
            }
        }
        (Bytes::from(b), t.spans)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn decode(b: &Bytes) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest::decode(b.as_ref()).expect("decodes")
    }

    fn trace_ids(r: &ExportTraceServiceRequest) -> Vec<Vec<u8>> {
        r.resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .map(|s| s.trace_id.clone())
            .collect()
    }

    #[test]
    fn rounds_rewrite_every_trace_id_and_nothing_else() {
        let shape = Shape::default();
        let pool = Pool::new(&shape, 7, 3);
        let (first, spans) = pool.get(1);
        assert_eq!(decode(&first), testdata::request(&shape, 8));
        assert_eq!(spans, shape.spans as u64);
        let (again, _) = pool.get(4);
        let (a, b) = (decode(&first), decode(&again));
        let (ta, tb) = (trace_ids(&a), trace_ids(&b));
        assert_eq!(ta.len(), tb.len());
        // Every trace id changed, the same way for spans of one trace.
        let distinct_a: HashSet<_> = ta.iter().collect();
        let distinct_b: HashSet<_> = tb.iter().collect();
        assert_eq!(distinct_a.len(), distinct_b.len());
        assert!(ta.iter().zip(&tb).all(|(x, y)| x != y && x[..8] == y[..8]));
        // Everything else is as generated.
        let strip = |mut r: ExportTraceServiceRequest| {
            for s in r
                .resource_spans
                .iter_mut()
                .flat_map(|r| &mut r.scope_spans)
                .flat_map(|s| &mut s.spans)
            {
                s.trace_id.clear();
            }
            r
        };
        assert_eq!(strip(a), strip(b));
    }
}
