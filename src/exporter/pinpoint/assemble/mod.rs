//! Segment assembly: spans of one trace and one service instance are joined by their
//! local parent links into segments (an entry span and its descendants). A segment is
//! emitted once its entry's parent is known (ids.md section 5): from the entry's own
//! `ppb` tracestate entry, or from the mapping cache, which learns a caller segment as
//! soon as the caller's client span and its local ancestors up to the entry have
//! arrived (not when the caller is emitted). No I/O; time is passed in.
//!
//! Holds: every waiting group of spans (a segment's entry waiting for its caller, or
//! spans waiting for their local parent) has its own clock, started by its root's
//! arrival. When it runs out, callers go before callees: spans waiting for a local
//! parent are emitted as their own segment first (their calls are learned), then
//! callees are resolved again, and only an entry whose caller's client span has not
//! arrived at all goes out under UNKNOWN. Spans that arrive after their segment was
//! sent become a chunk.
//!
//! `forest.rs` builds one trace's local structure, `link.rs` decides parent links and
//! learns callers, `emit.rs` makes the messages, `held.rs` keeps held spans and counts
//! their bytes.

mod emit;
mod flush;
mod forest;
mod handoff;
mod held;
mod link;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;

use super::agent::{self, AgentIdentity};
use super::convert::{ExceptionClass, Options};
use super::proto::PSpanMessage;
use crate::ids::{AgentId, MappingCache, SpanId, TraceId};
use crate::pipeline::persist::Hold;
use crate::pipeline::{Block, SharedBlock};
use emit::Sent;
pub use handoff::{OrphanCounts, OrphanOutcome};
use held::{Account, Pending, SpanRef};
pub use link::{LinkCounts, LinkOutcome};

/// Default hold: the OpenTelemetry SDKs' default BatchSpanProcessor schedule delay
/// (5 s) plus as much again for the caller's own work after its call returned, its
/// export and the gateway's batching (README, "Pinpoint exporter").
pub const DEFAULT_HOLD: Duration = Duration::from_secs(10);
/// Default `max_pending_spans`.
pub const DEFAULT_MAX_PENDING_SPANS: usize = 100_000;
/// Default `max_pending_bytes` (256 MiB).
pub const DEFAULT_MAX_PENDING_BYTES: usize = 256 << 20;

/// Assembly settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// How long a waiting group of spans waits, from its own arrival.
    pub hold: Duration,
    /// Spans held at most; beyond it the oldest traces are emitted early (counted).
    pub max_pending_spans: usize,
    /// Bytes held at most (see `held.rs`); beyond it likewise.
    pub max_pending_bytes: usize,
    /// How long a sent segment accepts late spans as chunks.
    pub late_window: Duration,
    /// Sent spans remembered for late children at most (oldest forgotten first).
    pub max_late_spans: usize,
    pub marker: AgentId,
    pub convert: Options,
}

impl Config {
    /// The exporter's defaults, with `marker` for OTel-born transaction ids.
    #[must_use]
    pub fn with_defaults(marker: AgentId) -> Self {
        Self {
            hold: DEFAULT_HOLD,
            max_pending_spans: DEFAULT_MAX_PENDING_SPANS,
            max_pending_bytes: DEFAULT_MAX_PENDING_BYTES,
            late_window: Duration::from_secs(30),
            max_late_spans: 100_000,
            marker,
            convert: Options::default(),
        }
    }
}

/// One message for one agent.
#[derive(Debug)]
pub struct Output {
    pub agent: Arc<AgentIdentity>,
    pub message: PSpanMessage,
    pub exceptions: Vec<ExceptionClass>,
    /// OTel spans in the message (entry and events).
    pub spans: usize,
    /// The holds of those spans' batches (persistent queues only): the exporter
    /// releases them once the message is sent or given up.
    pub holds: Vec<Hold>,
}

/// Counters of what assembly did (also exported as metrics by the exporter).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub spans: u64,
    pub chunks: u64,
    /// Entry links by outcome.
    pub links: LinkCounts,
    pub early_by_capacity: u64,
    /// Orphan spans handed between instances, by outcome (`handoff.rs`).
    pub orphans: OrphanCounts,
}

impl Counts {
    /// Links shown under UNKNOWN (both kinds of fallback).
    #[must_use]
    pub fn unresolved(&self) -> u64 {
        self.links.get(LinkOutcome::UnresolvedRemote)
            + self.links.get(LinkOutcome::LocalParentMissing)
    }
}

/// The held spans of one trace.
pub(super) struct TraceBuf {
    spans: Vec<Pending>,
    /// Spans arrived since the last look.
    dirty: bool,
    /// The earliest expiry of a waiting group (from each root's own arrival).
    due: Instant,
    /// The oldest arrival (capacity evicts the oldest traces first).
    oldest: Instant,
    /// Remote parents that waiting entries look up in the mapping cache.
    waiting: Vec<SpanId>,
    /// Claims of other instances' orphans for this trace (`handoff.rs`).
    gate: handoff::Gate,
}

impl TraceBuf {
    fn new(now: Instant) -> Self {
        Self {
            spans: Vec::new(),
            dirty: true,
            due: now,
            oldest: now,
            waiting: Vec::new(),
            gate: handoff::Gate::default(),
        }
    }
}

/// When a look at a trace may give up on waiting groups.
#[derive(Clone, Copy)]
enum Expiry {
    /// Groups whose own hold ran out by then.
    Due(Instant),
    /// All of them (shutdown, capacity).
    All,
}

/// The hash maps of the per-span path: foldhash, seeded per map (span and trace ids
/// are client input), instead of std's SipHash, about three times the instructions per
/// lookup of an 8- or 16-byte key.
pub(super) type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
/// A [`Map`]'s set.
pub(super) type Set<K> = HashSet<K, foldhash::fast::RandomState>;

/// Holds spans until their segments can be emitted.
pub struct Assembler {
    cfg: Config,
    cache: Arc<MappingCache>,
    traces: Map<TraceId, TraceBuf>,
    pending: usize,
    account: Account,
    sent: Map<(TraceId, SpanId), (Arc<Sent>, i32)>,
    /// `sent`'s keys in the order they were sent, for expiry and the size cap.
    sent_order: VecDeque<(Instant, (TraceId, SpanId))>,
    /// The hand-off of orphans between instances (with a shared store only).
    handoff: Option<handoff::Handoffs>,
    pub counts: Counts,
}

fn trace_id(s: &opentelemetry_proto::tonic::trace::v1::Span) -> Option<TraceId> {
    <[u8; 16]>::try_from(s.trace_id.as_slice())
        .ok()
        .map(TraceId)
}

impl Assembler {
    #[must_use]
    pub fn new(cfg: Config, cache: Arc<MappingCache>) -> Self {
        let handoff = cache.handoff("").map(handoff::Handoffs::new);
        Self {
            cfg,
            cache,
            handoff,
            traces: Map::default(),
            pending: 0,
            account: Account::default(),
            sent: Map::default(),
            sent_order: VecDeque::new(),
            counts: Counts::default(),
        }
    }

    /// Orphan spans are handed off (through the shared store, when there is one) only
    /// between exporters that send to the same collector, `target` (`host:port`).
    #[must_use]
    pub fn with_handoff_target(mut self, target: &str) -> Self {
        self.handoff = self.cache.handoff(target).map(handoff::Handoffs::new);
        self
    }

    /// Sent spans remembered for late children.
    #[must_use]
    pub fn remembered(&self) -> usize {
        self.sent.len()
    }

    /// Spans held now.
    #[must_use]
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// Bytes held now (pinned blocks and copied spans, see `held.rs`).
    #[must_use]
    pub fn pending_bytes(&self) -> usize {
        self.account.bytes()
    }

    /// Batch blocks kept alive by held spans now.
    #[must_use]
    pub fn pinned_blocks(&self) -> usize {
        self.account.blocks()
    }

    /// Takes the spans of `rs` (cloned), with `identity` overriding the resource's.
    pub fn add(&mut self, rs: &ResourceSpans, now: Instant, identity: Option<Arc<AgentIdentity>>) {
        let block = Arc::new(Block::new(vec![rs.clone()]));
        self.add_block(&block, now, identity);
    }

    /// Takes the spans of `block` without copying them (held spans borrow the block;
    /// see `held.rs`), with `identity`, when given, overriding every resource's.
    pub fn add_block(
        &mut self,
        block: &SharedBlock,
        now: Instant,
        identity: Option<Arc<AgentIdentity>>,
    ) {
        self.add_block_held(block, now, identity, &Hold::none());
    }

    /// [`Assembler::add_block`], each span carrying another of `hold` (its batch's
    /// records in a persistent queue) into the [`Output`] it leaves in.
    pub fn add_block_held(
        &mut self,
        block: &SharedBlock,
        now: Instant,
        identity: Option<Arc<AgentIdentity>>,
        hold: &Hold,
    ) {
        let overrides = block.overrides.as_deref();
        for (ri, rs) in block.resource_spans.iter().enumerate() {
            // A route's Pinpoint overrides (application name, service type) apply to the
            // agent of every resource in the block it routed.
            let agent = identity
                .clone()
                .unwrap_or_else(|| Arc::new(agent::identify_with(rs.resource.as_ref(), overrides)));
            for (si, ss) in rs.scope_spans.iter().enumerate() {
                for (i, span) in ss.spans.iter().enumerate() {
                    let Some(t) = trace_id(span) else { continue };
                    let buf = self.traces.entry(t).or_insert_with(|| TraceBuf::new(now));
                    buf.dirty = true;
                    buf.gate.last_arrival = Some(now);
                    let r = SpanRef {
                        block: Arc::clone(block),
                        resource: ri as u32,
                        scope: si as u32,
                        index: i as u32,
                    };
                    let h = hold.another();
                    buf.spans.push(Pending::new(Arc::clone(&agent), r, now, h));
                    self.pending += 1;
                }
            }
        }
    }
}

/// The identity of a resource's agent (exposed for the exporter's AgentInfo).
#[must_use]
pub fn identity_of(resource: Option<&Resource>) -> AgentIdentity {
    agent::identify(resource)
}

#[cfg(test)]
mod calltree;
#[cfg(test)]
mod handoff_tests;
#[cfg(test)]
mod permute_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod timing_tests;
