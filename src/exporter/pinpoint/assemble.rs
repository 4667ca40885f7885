//! Segment assembly: spans of one trace and one service instance are joined by their
//! local parent links into segments (an entry span and its descendants). A segment is
//! emitted once its entry's parent is known (ids.md section 5): from the entry's own
//! `ppb` tracestate entry, from the mapping cache (learned when the caller's segment was
//! emitted), or, after a bounded hold window, with a counted fallback that Pinpoint shows
//! under an UNKNOWN node. Spans that arrive after their segment was sent become a chunk.
//! No I/O; time is passed in.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span};

use super::agent::{self, AgentIdentity};
use super::convert::{self, EventIn, ExceptionClass, Options, ParentLink};
use super::proto::{PSpanMessage, p_span_message};
use crate::ids::{
    AgentId, CallerSegment, MappingCache, SpanId, TraceId, TransactionId, mapping, otlp,
};
use crate::pipeline::{Block, SharedBlock};

/// Assembly settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// How long a segment waits for its entry's parent link.
    pub hold: Duration,
    /// Spans held at most; beyond it the oldest traces are emitted early (counted).
    pub max_pending_spans: usize,
    /// How long a sent segment accepts late spans as chunks.
    pub late_window: Duration,
    /// Sent spans remembered for late children at most (oldest forgotten first).
    pub max_late_spans: usize,
    pub marker: AgentId,
    pub convert: Options,
}

/// One message for one agent.
#[derive(Debug)]
pub struct Output {
    pub agent: Arc<AgentIdentity>,
    pub message: PSpanMessage,
    pub exceptions: Vec<ExceptionClass>,
}

/// Counters of what assembly did (also exported as metrics by the exporter).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub spans: u64,
    pub chunks: u64,
    pub unresolved_parents: u64,
    pub early_by_capacity: u64,
}

struct Pending {
    agent: Arc<AgentIdentity>,
    span: SpanRef,
}

/// A span inside a shared block: held spans borrow the batch's blocks (one `Arc` each)
/// instead of copying every span, its attributes and their strings.
struct SpanRef {
    block: SharedBlock,
    resource: u32,
    scope: u32,
    index: u32,
}

impl std::ops::Deref for SpanRef {
    type Target = Span;

    fn deref(&self) -> &Span {
        // The indices were taken from this very block, which is immutable behind its Arc.
        &self.block.resource_spans[self.resource as usize].scope_spans[self.scope as usize].spans
            [self.index as usize]
    }
}

struct TraceBuf {
    first: Instant,
    spans: Vec<Pending>,
    /// Whether a flush before the hold expires must look at this trace again: spans
    /// arrived since the last look, or an entry waits for a caller segment that the
    /// (shared) mapping cache may learn from elsewhere. A trace whose spans only wait
    /// for a local parent cannot progress until new spans arrive or its hold expires,
    /// so it is not rescanned on every export and tick.
    rescan: bool,
}

/// A sent segment, for late spans.
struct Sent {
    span_id: i64,
    agent: Arc<AgentIdentity>,
    txid: TransactionId,
    next_sequence: AtomicI32,
    last_depth: AtomicI32,
    at: Instant,
}

/// Holds spans until their segments can be emitted.
pub struct Assembler {
    cfg: Config,
    cache: Arc<MappingCache>,
    traces: HashMap<TraceId, TraceBuf>,
    pending: usize,
    sent: HashMap<(TraceId, SpanId), (Arc<Sent>, i32)>,
    /// `sent`'s keys in the order they were sent, for expiry and the size cap.
    sent_order: VecDeque<(Instant, (TraceId, SpanId))>,
    /// Set by `flush_trace` when an entry of the trace waits for the mapping cache.
    waits_for_cache: bool,
    pub counts: Counts,
}

fn trace_id(s: &Span) -> Option<TraceId> {
    <[u8; 16]>::try_from(s.trace_id.as_slice())
        .ok()
        .map(TraceId)
}

fn span_id(bytes: &[u8]) -> Option<SpanId> {
    <[u8; 8]>::try_from(bytes).ok().map(SpanId)
}

/// True when the span's parent is in another process (so the span starts a segment).
fn has_remote_parent(s: &Span) -> bool {
    otlp::remote_parent(s).is_some()
}

impl Assembler {
    #[must_use]
    pub fn new(cfg: Config, cache: Arc<MappingCache>) -> Self {
        Self {
            cfg,
            cache,
            traces: HashMap::new(),
            pending: 0,
            sent: HashMap::new(),
            sent_order: VecDeque::new(),
            waits_for_cache: false,
            counts: Counts::default(),
        }
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

    /// Takes the spans of `rs` (cloned), with `identity` overriding the resource's.
    pub fn add(&mut self, rs: &ResourceSpans, now: Instant, identity: Option<Arc<AgentIdentity>>) {
        let block = Arc::new(Block::new(vec![rs.clone()]));
        self.add_block(&block, now, identity);
    }

    /// Takes the spans of `block` without copying them (held spans keep the block
    /// alive), with `identity`, when given, overriding every resource's.
    pub fn add_block(
        &mut self,
        block: &SharedBlock,
        now: Instant,
        identity: Option<Arc<AgentIdentity>>,
    ) {
        let overrides = block.overrides.as_deref();
        for (ri, rs) in block.resource_spans.iter().enumerate() {
            // A route's Pinpoint overrides (application name, service type) apply to the
            // agent of every resource in the block it routed.
            let agent = identity
                .clone()
                .unwrap_or_else(|| Arc::new(agent::identify_with(rs.resource.as_ref(), overrides)));
            self.add_resource(block, ri, &agent, now);
        }
    }

    fn add_resource(
        &mut self,
        block: &SharedBlock,
        ri: usize,
        agent: &Arc<AgentIdentity>,
        now: Instant,
    ) {
        let Some(rs) = block.resource_spans.get(ri) else {
            return;
        };
        let spans = rs.scope_spans.iter().enumerate().flat_map(|(si, s)| {
            s.spans
                .iter()
                .enumerate()
                .map(move |(i, span)| (si, i, span))
        });
        for (si, i, span) in spans {
            let Some(t) = trace_id(span) else { continue };
            let buf = self.traces.entry(t).or_insert_with(|| TraceBuf {
                first: now,
                spans: Vec::new(),
                rescan: true,
            });
            buf.rescan = true;
            buf.spans.push(Pending {
                agent: Arc::clone(agent),
                span: SpanRef {
                    block: Arc::clone(block),
                    resource: ri as u32,
                    scope: si as u32,
                    index: i as u32,
                },
            });
            self.pending += 1;
        }
    }

    /// Emits every segment that is ready; with `force` (shutdown) everything held.
    pub fn flush(&mut self, now: Instant, force: bool) -> Vec<Output> {
        let mut out = Vec::new();
        // Over capacity: the oldest traces go first, as if their hold had expired.
        let mut early = std::collections::HashSet::new();
        if self.pending > self.cfg.max_pending_spans {
            let mut by_age: Vec<(Instant, TraceId, usize)> = self
                .traces
                .iter()
                .map(|(t, b)| (b.first, *t, b.spans.len()))
                .collect();
            by_age.sort_by_key(|x| x.0);
            let mut excess = self.pending - self.cfg.max_pending_spans;
            for (_, t, n) in by_age {
                if excess == 0 {
                    break;
                }
                early.insert(t);
                excess = excess.saturating_sub(n);
            }
        }
        let hold = self.cfg.hold;
        let ids: Vec<TraceId> = self
            .traces
            .iter()
            .filter(|(t, b)| force || b.rescan || now >= b.first + hold || early.contains(t))
            .map(|(t, _)| *t)
            .collect();
        for t in ids {
            let Some(buf) = self.traces.remove(&t) else {
                continue;
            };
            let capacity = early.contains(&t);
            if capacity {
                self.counts.early_by_capacity += 1;
            }
            let expired = force || capacity || now >= buf.first + hold;
            let before = buf.spans.len();
            self.waits_for_cache = false;
            let left = self.flush_trace(t, buf.spans, expired, now, &mut out);
            self.pending -= before - left.len();
            if !left.is_empty() {
                self.traces.insert(
                    t,
                    TraceBuf {
                        first: buf.first,
                        spans: left,
                        rescan: self.waits_for_cache,
                    },
                );
            }
        }
        self.prune(now);
        out
    }

    /// Forgets sent spans past the late window or over the cap, oldest first: O(forgotten).
    fn prune(&mut self, now: Instant) {
        let window = self.cfg.late_window;
        while let Some(&(at, key)) = self.sent_order.front() {
            if now < at + window && self.sent_order.len() <= self.cfg.max_late_spans {
                break;
            }
            self.sent_order.pop_front();
            // A key sent again later keeps its newer entry.
            if self.sent.get(&key).is_some_and(|(s, _)| s.at <= at) {
                self.sent.remove(&key);
            }
        }
    }

    fn txid(&self, t: TraceId, spans: &[Pending]) -> TransactionId {
        for p in spans {
            if let Some(tx) =
                otlp::bridge_entry(&p.span).and_then(|b| b.txid_for(t, self.cfg.marker))
            {
                self.cache.insert_txid(t, tx);
                return tx;
            }
        }
        self.cache
            .txid(&t)
            .unwrap_or_else(|| mapping::trace_id_to_txid(t, self.cfg.marker))
    }

    /// Emits what is ready in one trace; returns the spans still held.
    fn flush_trace(
        &mut self,
        t: TraceId,
        mut spans: Vec<Pending>,
        expired: bool,
        now: Instant,
        out: &mut Vec<Output>,
    ) -> Vec<Pending> {
        let txid = self.txid(t, &spans);
        loop {
            let mut used = vec![false; spans.len()];
            let index: HashMap<SpanId, usize> = spans
                .iter()
                .enumerate()
                .filter_map(|(i, p)| Some((span_id(&p.span.span_id)?, i)))
                .collect();
            let same_agent = |a: usize, b: usize| {
                Arc::ptr_eq(&spans[a].agent, &spans[b].agent) || spans[a].agent == spans[b].agent
            };
            let mut children: HashMap<usize, Vec<usize>> = HashMap::new();
            let mut roots = Vec::new();
            for (i, p) in spans.iter().enumerate() {
                let parent = span_id(&p.span.parent_span_id);
                let local = parent
                    .and_then(|id| index.get(&id).copied())
                    .filter(|&pi| pi != i && same_agent(pi, i));
                match local {
                    Some(pi) if !has_remote_parent(&p.span) => {
                        children.entry(pi).or_default().push(i)
                    }
                    _ => roots.push(i),
                }
            }
            for list in children.values_mut() {
                list.sort_by_key(|&c| spans[c].span.start_time_unix_nano);
            }
            let mut progress = false;
            for &r in &roots {
                let span = &spans[r].span;
                let parent = span_id(&span.parent_span_id);
                // A late span: its parent was already sent in a segment of this agent.
                if let Some((sent, depth)) = parent
                    .and_then(|p| self.sent.get(&(t, p)))
                    .filter(|(s, _)| *s.agent == *spans[r].agent)
                    .cloned()
                    && !has_remote_parent(span)
                {
                    self.emit_chunk(t, &spans, r, &children, &sent, depth, &mut used, now, out);
                    progress = true;
                    continue;
                }
                let waiting_for_local_parent = parent.is_some() && !has_remote_parent(span);
                if waiting_for_local_parent && !expired {
                    continue;
                }
                let Some(link) = self.resolve(t, span, &spans[r].agent, expired) else {
                    self.waits_for_cache = true;
                    continue;
                };
                let own = span_id(&span.span_id).map_or(-2, mapping::pinpoint_span_id);
                let seg_id = match parent {
                    Some(p) if has_remote_parent(span) => mapping::entry_span_id(p),
                    _ => own,
                };
                self.emit_span(
                    t, &spans, r, &children, seg_id, &link, &txid, &mut used, now, out,
                );
                progress = true;
            }
            if !progress {
                return spans;
            }
            let mut i = 0;
            spans.retain(|_| {
                let keep = !used[i];
                i += 1;
                keep
            });
            if spans.is_empty() {
                return spans;
            }
        }
    }

    /// The parent link of an entry, or `None` to keep waiting.
    fn resolve(
        &mut self,
        t: TraceId,
        span: &Span,
        agent: &AgentIdentity,
        expired: bool,
    ) -> Option<ParentLink> {
        let Some(parent) = span_id(&span.parent_span_id) else {
            return Some(ParentLink::root());
        };
        let pp = otlp::pp_application(span);
        if has_remote_parent(span) {
            if let Some(ps) = otlp::bridge_entry(span).and_then(|b| b.parent_span_for(parent)) {
                return Some(ParentLink {
                    parent_span_id: ps,
                    application: pp,
                    acceptor_host: None,
                });
            }
            if let Some(c) = self.cache.caller_segment(&t, &parent) {
                return Some(ParentLink {
                    parent_span_id: c.span_id,
                    application: Some((c.application.to_string(), c.service_type)),
                    acceptor_host: c.destination.as_deref().map(str::to_owned),
                });
            }
        }
        if !expired {
            return None;
        }
        self.counts.unresolved_parents += 1;
        tracing::debug!(agent = %agent.agent_id, "parent segment not found in the hold window; emitting under UNKNOWN");
        Some(ParentLink {
            parent_span_id: mapping::pinpoint_span_id(parent),
            application: pp,
            acceptor_host: None,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn emit_span(
        &mut self,
        t: TraceId,
        spans: &[Pending],
        root: usize,
        children: &HashMap<usize, Vec<usize>>,
        seg_id: i64,
        link: &ParentLink,
        txid: &TransactionId,
        used: &mut [bool],
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        let mut order = Vec::new();
        descend(root, 0, children, &mut order);
        let events: Vec<EventIn<'_>> = order
            .iter()
            .skip(1)
            .map(|&(i, d)| EventIn {
                span: &spans[i].span,
                depth: d,
            })
            .collect();
        let agent = Arc::clone(&spans[root].agent);
        let seg = convert::Segment {
            agent: &agent,
            txid,
            span_id: seg_id,
            parent: link,
            entry: &spans[root].span,
            events: &events,
        };
        let (pspan, extras) = convert::span(&seg, &self.cfg.convert);
        for call in &extras.calls {
            self.cache.insert_caller_segment(
                t,
                call.client_span,
                CallerSegment {
                    span_id: seg_id,
                    application: Arc::from(agent.application_name.as_str()),
                    service_type: agent.service_type,
                    destination: (!call.destination.is_empty())
                        .then(|| Arc::from(call.destination.as_str())),
                },
            );
        }
        let sent = Arc::new(Sent {
            span_id: seg_id,
            agent: Arc::clone(&agent),
            txid: *txid,
            next_sequence: AtomicI32::new(events.len() as i32),
            last_depth: AtomicI32::new(extras.last_depth),
            at: now,
        });
        for &(i, d) in &order {
            used[i] = true;
            if let Some(id) = span_id(&spans[i].span.span_id) {
                self.sent.insert((t, id), (Arc::clone(&sent), d));
                self.sent_order.push_back((now, (t, id)));
            }
        }
        self.counts.spans += 1;
        out.push(Output {
            agent,
            message: PSpanMessage {
                field: Some(p_span_message::Field::Span(pspan)),
            },
            exceptions: extras.exceptions,
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn emit_chunk(
        &mut self,
        t: TraceId,
        spans: &[Pending],
        root: usize,
        children: &HashMap<usize, Vec<usize>>,
        sent: &Arc<Sent>,
        parent_depth: i32,
        used: &mut [bool],
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        // Keep the merged event list valid: the first late event may be at most one
        // deeper than the last event already sent.
        let base = (parent_depth + 1)
            .min(sent.last_depth.load(Ordering::Relaxed) + 1)
            .max(1);
        let mut order = Vec::new();
        descend(root, base, children, &mut order);
        let events: Vec<EventIn<'_>> = order
            .iter()
            .map(|&(i, d)| EventIn {
                span: &spans[i].span,
                depth: d,
            })
            .collect();
        let first = sent
            .next_sequence
            .fetch_add(events.len() as i32, Ordering::Relaxed);
        let late = convert::Late {
            agent: &sent.agent,
            txid: &sent.txid,
            span_id: sent.span_id,
            first_sequence: first,
            events: &events,
        };
        let (chunk, extras) = convert::chunk(&late, &self.cfg.convert);
        sent.last_depth.store(extras.last_depth, Ordering::Relaxed);
        for call in &extras.calls {
            self.cache.insert_caller_segment(
                t,
                call.client_span,
                CallerSegment {
                    span_id: sent.span_id,
                    application: Arc::from(sent.agent.application_name.as_str()),
                    service_type: sent.agent.service_type,
                    destination: (!call.destination.is_empty())
                        .then(|| Arc::from(call.destination.as_str())),
                },
            );
        }
        for &(i, d) in &order {
            used[i] = true;
            if let Some(id) = span_id(&spans[i].span.span_id) {
                self.sent.insert((t, id), (Arc::clone(sent), d));
                self.sent_order.push_back((now, (t, id)));
            }
        }
        let _ = now;
        self.counts.chunks += 1;
        out.push(Output {
            agent: Arc::clone(&sent.agent),
            message: PSpanMessage {
                field: Some(p_span_message::Field::SpanChunk(chunk)),
            },
            exceptions: extras.exceptions,
        });
    }
}

/// Depth-first order from `i`, children by start time, with depths from `depth`.
fn descend(
    i: usize,
    depth: i32,
    children: &HashMap<usize, Vec<usize>>,
    out: &mut Vec<(usize, i32)>,
) {
    // Iterative, so a deep or cyclic input cannot overflow the stack.
    let mut stack = vec![(i, depth)];
    let mut seen = std::collections::HashSet::new();
    while let Some((n, d)) = stack.pop() {
        if !seen.insert(n) {
            continue;
        }
        out.push((n, d));
        if let Some(kids) = children.get(&n) {
            for &k in kids.iter().rev() {
                stack.push((k, d + 1));
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
mod tests;
