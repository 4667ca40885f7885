//! Parent links of segment entries (ids.md section 5) and learning caller segments.
//!
//! A segment's Pinpoint spanId is known the moment its entry arrives (`mix(p)` for a
//! remote parent `p`, its own id for a root), so every client call whose local
//! ancestors reach that entry is put in the mapping cache at once, while the segment
//! itself may still wait for its own caller. Callees never wait on their caller's
//! emission, and holds do not add up along a chain.

use opentelemetry_proto::tonic::trace::v1::span::SpanKind;

use super::super::convert::ParentLink;
use super::super::semconv;
use super::Assembler;
use super::emit::caller_of;
use super::forest::Forest;
use super::held::Pending;
use crate::ids::{SpanId, Tier, TraceId, mapping, otlp};

/// How an entry's parent link was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkOutcome {
    /// The entry's own `ppb` tracestate entry named the caller segment.
    Tracestate,
    /// The caller segment was in this instance's mapping cache.
    LocalCache,
    /// The caller segment came from the shared store (another instance learned it).
    SharedStore,
    /// No caller segment within the hold: the entry is shown under UNKNOWN.
    UnresolvedRemote,
    /// A span's local parent never arrived within the hold: its subtree went out as a
    /// segment of its own (under UNKNOWN).
    LocalParentMissing,
}

impl LinkOutcome {
    /// Every outcome, in [`LinkCounts`] order.
    pub const ALL: [Self; 5] = [
        Self::Tracestate,
        Self::LocalCache,
        Self::SharedStore,
        Self::UnresolvedRemote,
        Self::LocalParentMissing,
    ];

    /// The metric label.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Tracestate => "tracestate",
            Self::LocalCache => "local_cache",
            Self::SharedStore => "shared_store",
            Self::UnresolvedRemote => "unresolved_remote",
            Self::LocalParentMissing => "local_parent_missing",
        }
    }
}

/// Links decided, by outcome (indexed like [`LinkOutcome::ALL`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LinkCounts(pub [u64; 5]);

impl LinkCounts {
    /// The count of one outcome.
    #[must_use]
    pub fn get(&self, o: LinkOutcome) -> u64 {
        self.0[o as usize]
    }

    fn add(&mut self, o: LinkOutcome) {
        self.0[o as usize] += 1;
    }
}

/// Whether span `p` may be a client call (only those can have callees).
fn may_call(p: &Pending) -> bool {
    matches!(
        SpanKind::try_from(p.span.kind),
        Ok(SpanKind::Client | SpanKind::Producer)
    )
}

/// The Pinpoint spanId of the segment an entry root starts.
pub(super) fn entry_segment_id(p: &Pending) -> i64 {
    match p.parent {
        Some(parent) if p.remote => mapping::entry_span_id(parent),
        _ => p.id.map_or(-2, mapping::pinpoint_span_id),
    }
}

impl Assembler {
    /// The link of an entry root that can be decided now: a root, the entry's
    /// tracestate, or the mapping cache (re-queried on every look: a shared tier may
    /// have filled it since). `None`: keep waiting.
    pub(super) fn resolve(&mut self, t: TraceId, p: &Pending) -> Option<ParentLink> {
        let Some(parent) = p.parent else {
            return Some(ParentLink::root());
        };
        if !p.remote {
            return None;
        }
        let span = &p.span;
        if let Some(ps) = otlp::bridge_entry(span).and_then(|b| b.parent_span_for(parent)) {
            self.counts.links.add(LinkOutcome::Tracestate);
            return Some(ParentLink {
                parent_span_id: ps,
                application: otlp::pp_application(span),
                acceptor_host: None,
            });
        }
        let (c, tier) = self.cache.caller_segment_tier(&t, &parent)?;
        self.counts.links.add(match tier {
            Tier::Local => LinkOutcome::LocalCache,
            Tier::Store => LinkOutcome::SharedStore,
        });
        Some(ParentLink {
            parent_span_id: c.span_id,
            application: Some((c.application.to_string(), c.service_type)),
            acceptor_host: c.destination.as_deref().map(str::to_owned),
        })
    }

    /// The fallback link after the hold (shown under UNKNOWN), counted as `outcome`.
    pub(super) fn give_up(
        &mut self,
        p: &Pending,
        parent: SpanId,
        outcome: LinkOutcome,
    ) -> ParentLink {
        self.counts.links.add(outcome);
        tracing::debug!(agent = %p.agent.agent_id, outcome = outcome.label(), "parent link not found in the hold window; emitting under UNKNOWN");
        ParentLink {
            parent_span_id: mapping::pinpoint_span_id(parent),
            application: otlp::pp_application(&p.span),
            acceptor_host: None,
        }
    }

    /// Puts the client calls below `root` (whose segment is `span_id`) in the mapping
    /// cache, once each. Returns whether anything new was learned.
    pub(super) fn learn(
        &self,
        t: TraceId,
        spans: &mut [Pending],
        forest: &Forest,
        root: usize,
        span_id: i64,
    ) -> bool {
        let mut any = false;
        for (i, _) in forest.descend(root, 0) {
            let p = &mut spans[i];
            if p.learned {
                continue;
            }
            p.learned = true;
            any = true;
            if i == root || !may_call(p) {
                continue;
            }
            let m = semconv::map_event(&p.span, &p.agent.language);
            if let (true, Some(id)) = (m.remote_call, p.id) {
                self.cache.insert_caller_segment(
                    t,
                    id,
                    caller_of(span_id, &p.agent, &m.destination_id),
                );
            }
        }
        any
    }
}
