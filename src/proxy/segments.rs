//! The sidecar's memory of the service's current segment per trace (design (b) of the
//! proxy issue): the ingress saw the incoming parent `p` of each request, so the
//! service's entry span for it has Pinpoint spanId `mix(p)`; the egress matches an
//! outbound call to that segment by trace id, and by the `ppb` `sp` field the ingress
//! wrote into the request's tracestate, which the service's SDK copies to its calls.
//!
//! [`decide`] is pure and names every case it cannot decide exactly
//! ([`SegmentSource`]). [`SegmentMemory`] is bounded in traces and expires them.

use std::time::Duration;

use moka::sync::Cache;

use crate::ids::TraceId;

/// Segment ids remembered per trace at most (the latest win).
pub const PER_TRACE: usize = 4;

/// Segment ids one trace entered this service with, oldest first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Remembered {
    ids: [i64; PER_TRACE],
    len: usize,
}

impl Remembered {
    /// From a list (the last [`PER_TRACE`] are kept).
    pub fn from_slice(ids: &[i64]) -> Self {
        let mut r = Self::default();
        for &id in ids {
            r.push(id);
        }
        r
    }

    /// Adds `id` as the latest; an id already present moves to the end.
    pub fn push(&mut self, id: i64) {
        if let Some(pos) = self.as_slice().iter().position(|&x| x == id) {
            self.ids.copy_within(pos + 1..self.len, pos);
            self.len -= 1;
        }
        if self.len == PER_TRACE {
            self.ids.copy_within(1.., 0);
            self.len -= 1;
        }
        self.ids[self.len] = id;
        self.len += 1;
    }

    /// The ids, oldest first.
    pub fn as_slice(&self) -> &[i64] {
        &self.ids[..self.len]
    }
}

/// How the egress found the calling segment (a metric label: `source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentSource {
    /// The request's `ppb` `sp` names a segment the ingress saw for this trace: exact.
    Confirmed,
    /// No usable `ppb`, and the ingress saw exactly one segment of this trace: exact
    /// unless the service received the trace another way too.
    Single,
    /// No usable `ppb` and several segments of this trace: undecidable; the latest is used.
    Ambiguous,
    /// `ppb` `sp` names a segment the ingress has not seen (forgotten, or the request
    /// reached the service another way): used, unconfirmed.
    TracestateOnly,
    /// Nothing known: the service started the trace itself, or its entry expired.
    /// Undecidable; `Pinpoint-pSpanID` falls back to a stand-in and no `ps` is written.
    Unknown,
}

impl SegmentSource {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Confirmed => "confirmed",
            Self::Single => "single",
            Self::Ambiguous => "ambiguous",
            Self::TracestateOnly => "tracestate_only",
            Self::Unknown => "unknown",
        }
    }
}

/// The calling segment's Pinpoint spanId for an outbound call, from what the ingress
/// remembered for the trace and the `sp` of the request's `ppb` entry.
pub fn decide(remembered: &Remembered, ppb_sp: Option<i64>) -> (Option<i64>, SegmentSource) {
    let ids = remembered.as_slice();
    match (ppb_sp, ids) {
        (Some(sp), _) if ids.contains(&sp) => (Some(sp), SegmentSource::Confirmed),
        (Some(sp), _) => (Some(sp), SegmentSource::TracestateOnly),
        (None, [one]) => (Some(*one), SegmentSource::Single),
        (None, [.., last]) => (Some(*last), SegmentSource::Ambiguous),
        (None, []) => (None, SegmentSource::Unknown),
    }
}

/// Trace id → [`Remembered`], bounded and expiring.
#[derive(Clone)]
pub struct SegmentMemory {
    cache: Cache<u128, Remembered>,
}

impl SegmentMemory {
    /// At most `max_traces`, each forgotten `ttl` after its last ingress request.
    pub fn new(max_traces: u64, ttl: Duration) -> Self {
        Self {
            cache: Cache::builder()
                .max_capacity(max_traces)
                .time_to_live(ttl)
                .build(),
        }
    }

    /// Records that a request of `trace` entered the service as segment `segment`.
    pub fn record(&self, trace: TraceId, segment: i64) {
        self.cache.entry(trace.to_u128()).and_upsert_with(|old| {
            let mut r = old.map(|e| e.into_value()).unwrap_or_default();
            r.push(segment);
            r
        });
    }

    /// What the ingress saw for `trace`.
    pub fn get(&self, trace: TraceId) -> Remembered {
        self.cache.get(&trace.to_u128()).unwrap_or_default()
    }
}

impl std::fmt::Debug for SegmentMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentMemory")
            .field("traces", &self.cache.entry_count())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decide_table() {
        let r = Remembered::from_slice;
        let cases = [
            (r(&[5]), Some(5), Some(5), SegmentSource::Confirmed),
            (r(&[5, 6]), Some(5), Some(5), SegmentSource::Confirmed),
            (r(&[5]), Some(9), Some(9), SegmentSource::TracestateOnly),
            (r(&[]), Some(9), Some(9), SegmentSource::TracestateOnly),
            (r(&[5]), None, Some(5), SegmentSource::Single),
            (r(&[5, 6]), None, Some(6), SegmentSource::Ambiguous),
            (r(&[]), None, None, SegmentSource::Unknown),
        ];
        for (mem, sp, want, source) in cases {
            assert_eq!(decide(&mem, sp), (want, source), "{mem:?} {sp:?}");
        }
    }

    #[test]
    fn remembered_keeps_the_latest_distinct_ids() {
        let mut r = Remembered::default();
        for id in [1, 2, 3, 2, 4, 5] {
            r.push(id);
        }
        assert_eq!(r.as_slice(), &[3, 2, 4, 5]);
        r.push(3);
        assert_eq!(r.as_slice(), &[2, 4, 5, 3]);
    }

    #[test]
    fn memory_records_per_trace_and_is_bounded() {
        let m = SegmentMemory::new(10, Duration::from_secs(60));
        let t = TraceId::from_u128(7);
        m.record(t, 1);
        m.record(t, 2);
        assert_eq!(m.get(t).as_slice(), &[1, 2]);
        assert!(m.get(TraceId::from_u128(8)).as_slice().is_empty());
        for i in 0..1000 {
            m.record(TraceId::from_u128(100 + i), 1);
        }
        m.cache.run_pending_tasks();
        assert!(m.cache.entry_count() <= 10);
    }
}
