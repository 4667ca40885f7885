//! Owns deterministic sample header sets, shared by the tests, the benchmarks and (later)
//! the load generator: the same seed always gives the same ids.

use crate::ids::entries::BridgeEntry;
use crate::ids::headers::{
    PINPOINT_FLAGS, PINPOINT_PARENT_APP_NAME, PINPOINT_PARENT_APP_TYPE, PINPOINT_PARENT_SPAN_ID,
    PINPOINT_SPAN_ID, PINPOINT_TRACE_ID, TRACEPARENT, TRACESTATE,
};
use crate::ids::mapping::{entry_span_id, hash_txid, mix};
use crate::ids::model::{SpanId, TraceId};
use crate::ids::txid::{AgentId, TransactionId};
use crate::ids::w3c::TraceParent;

/// The agent of [`w3c_headers_with_state`]'s Pinpoint-born transactions.
const SAMPLE_AGENT: AgentId = AgentId::from_const("agent-7");

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

/// An OTel-born request: `traceparent` only (sampled).
pub fn w3c_headers(seed: u64) -> Vec<(String, String)> {
    let mut rng = SampleRng::new(seed);
    let tp = TraceParent::new(rng.trace_id(), rng.span_id(), true);
    vec![(TRACEPARENT.to_owned(), tp.to_header())]
}

/// A request one hop after a translating hop, for a Pinpoint-born trace: `traceparent`
/// plus a `tracestate` holding this hop's `ppb` entry, a `pp` entry and another vendor's.
pub fn w3c_headers_with_state(seed: u64) -> Vec<(String, String)> {
    let mut rng = SampleRng::new(seed);
    let txid = TransactionId {
        agent_id: SAMPLE_AGENT,
        agent_start_time: 1_700_000_000_000 + (rng.next_u64() % 1_000_000) as i64,
        sequence: (rng.next_u64() % 100_000) as i64,
    };
    let parent = rng.span_id();
    let entry = BridgeEntry {
        txid: Some(txid),
        parent_span_id: Some(rng.span_id().to_i64()),
        span_id: Some(entry_span_id(parent)),
    };
    let mut state = String::from("ppb=");
    entry.write(&mut state);
    state.push_str(",pp=svc:orders;app:shop-api;type:1010,congo=t61rcWkgMzE");
    let tp = TraceParent::new(hash_txid(&txid), parent, true);
    vec![
        (TRACEPARENT.to_owned(), tp.to_header()),
        (TRACESTATE.to_owned(), state),
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
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::translate::{Direction, TranslateOptions, translate_headers};

    #[test]
    fn samples_translate_cleanly() {
        for seed in 0..64 {
            for (input, direction) in [
                (w3c_headers(seed), Direction::W3cToPinpoint),
                (w3c_headers_with_state(seed), Direction::W3cToPinpoint),
                (pinpoint_headers(seed), Direction::PinpointToW3c),
            ] {
                let t = translate_headers(&input, &TranslateOptions::default())
                    .unwrap_or_else(|e| panic!("{e}: {input:?}"));
                assert_eq!(t.direction, direction);
            }
            let t = translate_headers(&w3c_headers_with_state(seed), &TranslateOptions::default())
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(t.warnings.is_empty(), "{:?}", t.warnings);
            assert_eq!(t.ids.transaction_id.agent_id.as_str(), "agent-7");
        }
    }
}
