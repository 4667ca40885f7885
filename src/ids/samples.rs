//! Owns deterministic sample header sets, shared by the tests, the benchmarks and (later)
//! the load generator: the same seed always gives the same ids.

use crate::ids::headers::{
    PINPOINT_FLAGS, PINPOINT_PARENT_APP_NAME, PINPOINT_PARENT_APP_TYPE, PINPOINT_PARENT_SPAN_ID,
    PINPOINT_SPAN_ID, PINPOINT_TRACE_ID, TRACEPARENT, TRACESTATE,
};
use crate::ids::mapping::mix;
use crate::ids::model::{SpanId, TraceId};
use crate::ids::w3c::TraceParent;

/// A SplitMix64 sequence.
#[derive(Debug, Clone)]
pub struct SampleRng(u64);

impl SampleRng {
    /// A sequence starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    /// A non-zero trace id.
    pub fn trace_id(&mut self) -> TraceId {
        let v = (u128::from(self.next_u64()) << 64) | u128::from(self.next_u64());
        TraceId::from_u128(v.max(1))
    }

    /// A non-zero span id whose Pinpoint forms are neither 0 nor -1.
    pub fn span_id(&mut self) -> SpanId {
        loop {
            let v = self.next_u64();
            if v != 0 && v != u64::MAX && mix(v) != u64::MAX {
                return SpanId::from_u64(v);
            }
        }
    }
}

/// An OTel-born request: `traceparent` (sampled) plus a third-party `tracestate`.
pub fn w3c_headers(seed: u64) -> Vec<(String, String)> {
    let mut rng = SampleRng::new(seed);
    let tp = TraceParent::new(rng.trace_id(), rng.span_id(), true);
    vec![
        (TRACEPARENT.to_owned(), tp.to_header()),
        (TRACESTATE.to_owned(), "congo=t61rcWkgMzE".to_owned()),
        ("content-type".to_owned(), "application/json".to_owned()),
    ]
}

/// A request from a Pinpoint agent, as its HTTP client plugin writes it.
pub fn pinpoint_headers(seed: u64) -> Vec<(String, String)> {
    let mut rng = SampleRng::new(seed);
    let start = 1_700_000_000_000 + (rng.next_u64() % 1_000_000) as i64;
    let seq = (rng.next_u64() % 100_000) as i64;
    let span = rng.span_id().to_i64();
    let parent = rng.span_id().to_i64();
    vec![
        (
            PINPOINT_TRACE_ID.to_owned(),
            format!("agent-{}^{start}^{seq}", seed % 16),
        ),
        (PINPOINT_SPAN_ID.to_owned(), span.to_string()),
        (PINPOINT_PARENT_SPAN_ID.to_owned(), parent.to_string()),
        (PINPOINT_FLAGS.to_owned(), "0".to_owned()),
        (PINPOINT_PARENT_APP_NAME.to_owned(), "shop-api".to_owned()),
        (PINPOINT_PARENT_APP_TYPE.to_owned(), "1010".to_owned()),
        ("content-type".to_owned(), "application/json".to_owned()),
    ]
}
