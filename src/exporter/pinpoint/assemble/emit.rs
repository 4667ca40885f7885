//! Turning a built segment into a `PSpan`, or late spans into a `PSpanChunk`, and
//! remembering sent spans for the late children that may follow.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Instant;

use super::super::agent::AgentIdentity;
use super::super::convert::{self, EventIn, ParentLink, RemoteCall};
use super::super::proto::{PSpanMessage, p_span_message};
use super::forest::Build;
use super::{Assembler, Output};
use crate::ids::{CallerSegment, SpanId, TraceId, TransactionId};
use crate::pipeline::persist::Hold;

/// A sent segment, for late spans.
pub(super) struct Sent {
    pub span_id: i64,
    pub agent: Arc<AgentIdentity>,
    pub txid: TransactionId,
    next_sequence: AtomicI32,
    last_depth: AtomicI32,
    pub at: Instant,
}

/// What a segment's `PSpan` says about itself.
pub(super) struct Head {
    pub span_id: i64,
    pub link: ParentLink,
    pub txid: TransactionId,
}

/// Where emission writes: the spans used, the messages made.
pub(super) struct Sink<'o> {
    pub used: Vec<bool>,
    pub out: &'o mut Vec<Output>,
    pub now: Instant,
}

/// The caller segment a client call of segment `span_id` of `agent` is under.
pub(super) fn caller_of(span_id: i64, agent: &AgentIdentity, destination: &str) -> CallerSegment {
    CallerSegment {
        span_id,
        application: Arc::from(agent.application_name.as_str()),
        service_type: agent.service_type,
        destination: (!destination.is_empty()).then(|| Arc::from(destination)),
    }
}

/// The holds the spans `order` of `b` pass on to their message (the spans' own are
/// released when they leave the trace buffer).
fn holds_of(b: &Build<'_>, order: &[(usize, i32)]) -> Vec<Hold> {
    order
        .iter()
        .map(|&(i, _)| &b.spans[i].hold)
        .filter(|h| h.is_durable())
        .map(Hold::another)
        .collect()
}

impl Assembler {
    /// Remembers the caller segment of `calls` not learned before their emission.
    fn learn_calls(
        &self,
        b: &Build<'_>,
        order: &[(usize, i32)],
        calls: &[RemoteCall],
        span_id: i64,
        agent: &AgentIdentity,
    ) {
        let learned: Vec<SpanId> = order
            .iter()
            .filter(|(i, _)| b.spans[*i].learned)
            .filter_map(|(i, _)| b.spans[*i].id)
            .collect();
        for call in calls.iter().filter(|c| !learned.contains(&c.client_span)) {
            self.cache.insert_caller_segment(
                b.trace,
                call.client_span,
                caller_of(span_id, agent, &call.destination),
            );
        }
    }

    fn remember(
        &mut self,
        t: TraceId,
        b: &Build<'_>,
        order: &[(usize, i32)],
        sent: &Arc<Sent>,
        sink: &mut Sink<'_>,
    ) {
        for &(i, d) in order {
            sink.used[i] = true;
            if let Some(id) = b.spans[i].id {
                self.sent.insert((t, id), (Arc::clone(sent), d));
                self.sent_order.push_back((sink.now, (t, id)));
            }
        }
    }

    /// Emits `b` as a whole segment.
    pub(super) fn emit_span(&mut self, b: &Build<'_>, head: &Head, sink: &mut Sink<'_>) {
        let order = b.forest.descend(b.root, 0);
        let events: Vec<EventIn<'_>> = order
            .iter()
            .skip(1)
            .map(|&(i, d)| EventIn {
                span: &b.spans[i].span,
                depth: d,
            })
            .collect();
        let agent = Arc::clone(&b.spans[b.root].agent);
        let seg = convert::Segment {
            agent: &agent,
            txid: &head.txid,
            span_id: head.span_id,
            parent: &head.link,
            entry: &b.spans[b.root].span,
            events: &events,
        };
        let (pspan, extras) = convert::span(&seg, &self.cfg.convert);
        self.learn_calls(b, &order, &extras.calls, head.span_id, &agent);
        let sent = Arc::new(Sent {
            span_id: head.span_id,
            agent: Arc::clone(&agent),
            txid: head.txid,
            next_sequence: AtomicI32::new(events.len() as i32),
            last_depth: AtomicI32::new(extras.last_depth),
            at: sink.now,
        });
        self.remember(b.trace, b, &order, &sent, sink);
        self.counts.spans += 1;
        sink.out.push(Output {
            agent,
            message: PSpanMessage {
                field: Some(p_span_message::Field::Span(pspan)),
            },
            exceptions: extras.exceptions,
            // Spans claimed from another instance count there.
            spans: order.iter().filter(|(i, _)| !b.spans[*i].claimed).count(),
            holds: holds_of(b, &order),
        });
    }

    /// Emits `b` (whose root's parent was sent in `sent` at `parent_depth`) as a chunk.
    pub(super) fn emit_chunk(
        &mut self,
        b: &Build<'_>,
        sent: &Arc<Sent>,
        parent_depth: i32,
        sink: &mut Sink<'_>,
    ) {
        // Keep the merged event list valid: the first late event may be at most one
        // deeper than the last event already sent.
        let base = (parent_depth + 1)
            .min(sent.last_depth.load(Ordering::Relaxed) + 1)
            .max(1);
        let order = b.forest.descend(b.root, base);
        let events: Vec<EventIn<'_>> = order
            .iter()
            .map(|&(i, d)| EventIn {
                span: &b.spans[i].span,
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
        self.learn_calls(b, &order, &extras.calls, sent.span_id, &sent.agent);
        self.remember(b.trace, b, &order, sent, sink);
        self.counts.chunks += 1;
        sink.out.push(Output {
            agent: Arc::clone(&sent.agent),
            message: PSpanMessage {
                field: Some(p_span_message::Field::SpanChunk(chunk)),
            },
            exceptions: extras.exceptions,
            // Spans claimed from another instance count there.
            spans: order.iter().filter(|(i, _)| !b.spans[*i].claimed).count(),
            holds: holds_of(b, &order),
        });
    }

    /// The sent segment that holds the local parent of held span `i`, if any.
    pub(super) fn sent_parent(&self, b: &Build<'_>) -> Option<(Arc<Sent>, i32)> {
        let p = &b.spans[b.root];
        if p.remote {
            return None;
        }
        self.sent
            .get(&(b.trace, p.parent?))
            .filter(|(s, _)| *s.agent == *p.agent)
            .cloned()
    }

    /// Forgets sent spans past the late window or over the cap, oldest first: O(forgotten).
    pub(super) fn prune(&mut self, now: Instant) {
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
}
