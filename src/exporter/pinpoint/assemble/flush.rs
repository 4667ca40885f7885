//! Looking at held traces: what can be emitted now, what waits, and what gives up.

use std::time::{Duration, Instant};

use super::emit::{Head, Sink};
use super::forest::{Build, Forest};
use super::held::Pending;
use super::link::{self, LinkOutcome};
use super::{Assembler, Expiry, Output, Set, TraceBuf};
use crate::ids::{TraceId, TransactionId, mapping, otlp};
use crate::pipeline::persist::Hold;

/// One look at one trace.
pub(super) struct Look {
    pub t: TraceId,
    txid: TransactionId,
    pub expiry: Expiry,
    hold: Duration,
}

impl Look {
    /// Whether the group rooted at `p` has waited its hold.
    pub fn expired(&self, p: &Pending) -> bool {
        match self.expiry {
            Expiry::All => true,
            Expiry::Due(at) => at >= p.arrived + self.hold,
        }
    }

    /// Whether an expired callee may still wait for a caller group it can see.
    fn patient(&self, p: &Pending) -> bool {
        match self.expiry {
            Expiry::All => false,
            Expiry::Due(at) => at < p.arrived + 2 * self.hold,
        }
    }
}

impl Assembler {
    /// The traces to emit early, oldest first, to get back under the span and byte caps.
    fn over_capacity(&self) -> Set<TraceId> {
        let mut early = Set::default();
        let bytes = self.account.bytes();
        if self.pending <= self.cfg.max_pending_spans && bytes <= self.cfg.max_pending_bytes {
            return early;
        }
        let mut by_age: Vec<(Instant, TraceId)> =
            self.traces.iter().map(|(t, b)| (b.oldest, *t)).collect();
        by_age.sort_by_key(|x| x.0);
        let (mut spans, mut bytes) = (self.pending, bytes);
        for (_, t) in by_age {
            if spans <= self.cfg.max_pending_spans && bytes <= self.cfg.max_pending_bytes {
                break;
            }
            let Some(b) = self.traces.get(&t) else {
                continue;
            };
            early.insert(t);
            spans = spans.saturating_sub(b.spans.len());
            bytes = bytes.saturating_sub(b.spans.iter().map(|p| self.account.share(p)).sum());
        }
        early
    }

    /// Whether a waiting entry of `b` would find its caller in the cache now.
    fn cache_answers(&self, t: &TraceId, b: &TraceBuf) -> bool {
        b.waiting
            .iter()
            .any(|p| self.cache.caller_segment(t, p).is_some())
    }

    /// Emits every segment that is ready; with `force` (shutdown) everything held.
    pub fn flush(&mut self, now: Instant, force: bool) -> Vec<Output> {
        let mut out = Vec::new();
        self.absorb_answers(now);
        let early = self.over_capacity();
        let ids: Vec<TraceId> = self
            .traces
            .iter()
            .filter(|(t, b)| {
                force || b.dirty || now >= b.due || early.contains(t) || self.cache_answers(t, b)
            })
            .map(|(t, _)| *t)
            .collect();
        let mut touched = Vec::new();
        for t in ids {
            let Some(buf) = self.traces.remove(&t) else {
                continue;
            };
            let expiry = if force || early.contains(&t) {
                if !force {
                    self.counts.early_by_capacity += 1;
                }
                Expiry::All
            } else {
                Expiry::Due(now)
            };
            let dirty = buf.dirty;
            let left = self.flush_trace(t, buf, expiry, now, &mut out);
            if !left.spans.is_empty() {
                self.traces.insert(t, left);
                if dirty {
                    touched.push(t);
                }
            }
        }
        self.account.settle(&mut self.traces, &touched);
        self.prune(now);
        out
    }

    fn txid(&self, t: TraceId, spans: &[Pending]) -> TransactionId {
        for p in spans.iter().filter(|p| !p.span.trace_state.is_empty()) {
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

    /// Removes the spans `used` from `buf` (they were sent).
    fn take_used(&mut self, buf: &mut TraceBuf, used: &[bool]) {
        let mut i = 0;
        let account = &mut self.account;
        let before = buf.spans.len();
        buf.spans.retain_mut(|p| {
            let keep = !used[i];
            i += 1;
            if !keep {
                account.release(p);
                // Its message carries another hold on its records.
                std::mem::replace(&mut p.hold, Hold::none()).release();
            }
            keep
        });
        self.pending -= before - buf.spans.len();
    }

    /// Emits what is ready in one trace; returns what is still held.
    fn flush_trace(
        &mut self,
        t: TraceId,
        mut buf: TraceBuf,
        expiry: Expiry,
        now: Instant,
        out: &mut Vec<Output>,
    ) -> TraceBuf {
        let look = Look {
            t,
            txid: self.txid(t, &buf.spans),
            expiry,
            hold: self.cfg.hold,
        };
        let (txid, hold) = (look.txid, look.hold);
        let gated = self.gated(&buf, now, expiry);
        loop {
            let forest = Forest::build(&buf.spans);
            // Orphans handed between instances (`handoff.rs`): offers settled first; a
            // group may not go while its offer is out, nor anything before the claim
            // after the latest arrival was answered.
            let settled = self.settle_offers(&look, &mut buf, &forest, now);
            if let Some(s) = settled.as_ref().filter(|s| s.handed_off.iter().any(|d| *d)) {
                self.take_used(&mut buf, &s.handed_off);
                if buf.spans.is_empty() {
                    return buf;
                }
                continue;
            }
            let skip: Vec<bool> = (0..buf.spans.len())
                .map(|i| gated || settled.as_ref().is_some_and(|s| s.blocked[i]))
                .collect();
            let mut sink = Sink {
                used: vec![false; buf.spans.len()],
                out,
                now,
            };
            // 1. Everything whose link is known: late spans of sent segments, roots,
            // entries resolved by tracestate or cache. Waiting entries teach the cache
            // their calls (their segment id is known already).
            let mut learned = false;
            for &r in forest.roots.iter().filter(|r| !skip[**r]) {
                let b = Build {
                    trace: t,
                    spans: &buf.spans,
                    forest: &forest,
                    root: r,
                };
                let p = &buf.spans[r];
                if p.parent.is_some() && !p.remote {
                    if let Some((sent, depth)) = self.sent_parent(&b) {
                        self.emit_chunk(&b, &sent, depth, &mut sink);
                    }
                    continue;
                }
                if let Some(link) = self.resolve(t, p) {
                    let head = Head {
                        span_id: link::entry_segment_id(p),
                        link,
                        txid,
                    };
                    self.emit_span(&b, &head, &mut sink);
                }
            }
            let emitted = sink.used.iter().any(|u| *u);
            if !emitted {
                for &r in &forest.roots {
                    let p = &buf.spans[r];
                    if (p.parent.is_none() || p.remote) && !p.learned {
                        let id = link::entry_segment_id(p);
                        learned |= self.learn(t, &mut buf.spans, &forest, r, id);
                    }
                }
                if learned {
                    continue;
                }
            }
            // 2. Callers before callees: spans whose local parent did not come in their
            // hold go out as their own segment (and teach the cache their calls).
            if !emitted {
                self.give_up_orphans(&look, &buf, &forest, &skip, &mut sink);
            }
            // 3. Then entries whose caller's client span never arrived in their hold.
            // A caller whose client span is here but which waits for its own entry
            // decides first (its group has its own clock), unless that cannot end:
            // everything must go (shutdown, capacity), or twice the hold passed.
            if !sink.used.iter().any(|u| *u) {
                self.give_up_callees(&look, &buf, &forest, (true, &skip), &mut sink);
                if !sink.used.iter().any(|u| *u) && matches!(expiry, Expiry::All) {
                    self.give_up_callees(&look, &buf, &forest, (false, &skip), &mut sink);
                }
            }
            if sink.used.iter().any(|u| *u) {
                let used = std::mem::take(&mut sink.used);
                self.take_used(&mut buf, &used);
                if buf.spans.is_empty() {
                    return buf;
                }
                continue;
            }
            // Nothing more now: when to look again, and what to ask the cache meanwhile.
            buf.dirty = false;
            buf.due = forest
                .roots
                .iter()
                .map(|&r| buf.spans[r].arrived + hold)
                .min()
                .unwrap_or(now + hold);
            buf.oldest = buf.spans.iter().map(|p| p.arrived).min().unwrap_or(now);
            buf.waiting = forest
                .roots
                .iter()
                .filter(|&&r| buf.spans[r].remote)
                .filter_map(|&r| buf.spans[r].parent)
                .collect();
            if !matches!(expiry, Expiry::All)
                && let Some(again) = self.offer_and_claim(&look, &mut buf, &forest, now)
            {
                buf.due = buf.due.min(again);
            }
            return buf;
        }
    }

    fn give_up_orphans(
        &mut self,
        look: &Look,
        buf: &TraceBuf,
        forest: &Forest,
        skip: &[bool],
        sink: &mut Sink<'_>,
    ) {
        for &r in forest.roots.iter().filter(|r| !skip[**r]) {
            let p = &buf.spans[r];
            let Some(parent) = p.parent.filter(|_| !p.remote) else {
                continue;
            };
            if !look.expired(p) {
                continue;
            }
            let b = Build {
                trace: look.t,
                spans: &buf.spans,
                forest,
                root: r,
            };
            let head = Head {
                span_id: p.id.map_or(-2, mapping::pinpoint_span_id),
                link: self.give_up(p, parent, LinkOutcome::LocalParentMissing),
                txid: look.txid,
            };
            self.emit_span(&b, &head, sink);
        }
    }

    /// `caller_first`: an entry whose caller's client span is held waits for that
    /// caller's group (which has its own clock), up to twice its own hold.
    fn give_up_callees(
        &mut self,
        look: &Look,
        buf: &TraceBuf,
        forest: &Forest,
        (caller_first, skip): (bool, &[bool]),
        sink: &mut Sink<'_>,
    ) {
        for &r in forest.roots.iter().filter(|r| !skip[**r]) {
            let p = &buf.spans[r];
            let Some(parent) = p.parent.filter(|_| p.remote) else {
                continue;
            };
            let defer = caller_first && look.patient(p) && forest.index.contains_key(&parent);
            if !look.expired(p) || defer {
                continue;
            }
            let b = Build {
                trace: look.t,
                spans: &buf.spans,
                forest,
                root: r,
            };
            let head = Head {
                span_id: link::entry_segment_id(p),
                link: self.give_up(p, parent, LinkOutcome::UnresolvedRemote),
                txid: look.txid,
            };
            self.emit_span(&b, &head, sink);
        }
    }
}
