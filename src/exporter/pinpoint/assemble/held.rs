//! Held spans and what they cost. A span arrives inside the batch's shared block and is
//! first borrowed from it (one `Arc`, no copy). Once it stays held past the flush of
//! its arrival, the block is *pinned*: its whole size counts in the pending bytes, as
//! long as at least half of its spans are held. When fewer are, the rest are copied
//! out of the block (each then counts its own size) and the block is let go, so a few
//! held spans never keep a large request alive, and the byte count is what is really
//! retained, within a factor of two of the held spans' own size.

use std::sync::Arc;
use std::time::Instant;

use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

use super::super::agent::AgentIdentity;
use super::{Map, Set, TraceBuf};
use crate::ids::{SpanId, TraceId, otlp};
use crate::pipeline::SharedBlock;
use crate::pipeline::persist::Hold;

/// A span inside a shared block.
pub(super) struct SpanRef {
    pub block: SharedBlock,
    pub resource: u32,
    pub scope: u32,
    pub index: u32,
}

impl SpanRef {
    fn get(&self) -> &Span {
        // The indices were taken from this very block, which is immutable behind its Arc.
        &self.block.resource_spans[self.resource as usize].scope_spans[self.scope as usize].spans
            [self.index as usize]
    }
}

/// Where a held span lives.
pub(super) enum Held {
    /// Borrowed from its batch's block.
    Shared(SpanRef),
    /// Copied out of it, with its approximate size in bytes.
    Owned(Box<Span>, usize),
}

impl std::ops::Deref for Held {
    type Target = Span;

    fn deref(&self) -> &Span {
        match self {
            Self::Shared(r) => r.get(),
            Self::Owned(s, _) => s,
        }
    }
}

/// One held span and what assembly knows about it.
pub(super) struct Pending {
    pub agent: Arc<AgentIdentity>,
    pub span: Held,
    /// When it reached the exporter: the clock of the group it roots.
    pub arrived: Instant,
    pub id: Option<SpanId>,
    /// Its parent (valid, non-zero), local or remote.
    pub parent: Option<SpanId>,
    /// Whether the parent is in another process (the span is a segment's entry).
    pub remote: bool,
    /// Its caller segment (if it is a client call) is in the mapping cache already.
    pub learned: bool,
    /// Its bytes are counted (in a pin or as an owned copy).
    pub counted: bool,
    /// The offer (`handoff.rs`) it is part of, until that is settled: an offered span
    /// is never emitted before its offer was withdrawn.
    pub offer: Option<u64>,
    /// It came from another instance's offer (its spans count there, not here).
    pub claimed: bool,
    /// Its batch's records in a persistent queue: passed on to the message it goes
    /// out in (a no-op hold for an in-memory queue).
    pub hold: Hold,
}

impl Pending {
    pub fn new(agent: Arc<AgentIdentity>, span: SpanRef, arrived: Instant, hold: Hold) -> Self {
        let s = span.get();
        let id = <[u8; 8]>::try_from(s.span_id.as_slice()).ok().map(SpanId);
        let parent = otlp::parent_of(s);
        let remote = otlp::remote_parent(s).is_some();
        Self {
            agent,
            span: Held::Shared(span),
            arrived,
            id,
            parent,
            remote,
            learned: false,
            counted: false,
            offer: None,
            claimed: false,
            hold,
        }
    }

    /// A span claimed from another instance (owned, its bytes counted in `account`).
    pub fn claimed(
        agent: Arc<AgentIdentity>,
        span: Span,
        arrived: Instant,
        account: &mut Account,
    ) -> Self {
        let id = <[u8; 8]>::try_from(span.span_id.as_slice())
            .ok()
            .map(SpanId);
        let parent = otlp::parent_of(&span);
        let remote = otlp::remote_parent(&span).is_some();
        let bytes = span_bytes(&span);
        account.owned += bytes;
        Self {
            agent,
            span: Held::Owned(Box::new(span), bytes),
            arrived,
            id,
            parent,
            remote,
            learned: false,
            counted: true,
            offer: None,
            claimed: true,
            // Its records, if any, are the offering instance's.
            hold: Hold::none(),
        }
    }

    /// The block it borrows from, as a map key.
    fn block_key(&self) -> Option<usize> {
        match &self.span {
            Held::Shared(r) => Some(Arc::as_ptr(&r.block) as usize),
            Held::Owned(..) => None,
        }
    }
}

/// The approximate heap size of a span: its encoded size plus the struct.
fn span_bytes(s: &Span) -> usize {
    s.encoded_len() + std::mem::size_of::<Span>()
}

struct Pin {
    block: SharedBlock,
    held: usize,
    bytes: usize,
    /// Traces holding its spans (may repeat; used to find them for copying out).
    traces: Vec<TraceId>,
}

/// The byte account of everything held.
#[derive(Default)]
pub(super) struct Account {
    pins: Map<usize, Pin>,
    /// Pins that fell under half held since the last settle.
    thin: Vec<usize>,
    owned: usize,
    pinned: usize,
}

impl Account {
    /// Bytes held now.
    pub fn bytes(&self) -> usize {
        self.owned + self.pinned
    }

    /// Blocks pinned now.
    pub fn blocks(&self) -> usize {
        self.pins.len()
    }

    /// The bytes that sending `p` would free, about (its share of a pinned block).
    pub fn share(&self, p: &Pending) -> usize {
        match (&p.span, p.counted) {
            (Held::Owned(_, b), true) => *b,
            (Held::Shared(_), true) => p
                .block_key()
                .and_then(|k| self.pins.get(&k))
                .map_or(0, |pin| pin.bytes / pin.held.max(1)),
            _ => 0,
        }
    }

    /// Forgets a span that leaves the buffer (sent).
    pub fn release(&mut self, p: &Pending) {
        if !p.counted {
            return;
        }
        match &p.span {
            Held::Owned(_, b) => self.owned -= b,
            Held::Shared(_) => {
                let Some(key) = p.block_key() else { return };
                let Some(pin) = self.pins.get_mut(&key) else {
                    return;
                };
                pin.held -= 1;
                if pin.held == 0 {
                    self.pinned -= pin.bytes;
                    self.pins.remove(&key);
                } else if pin.held * 2 < pin.block.span_count && !self.thin.contains(&key) {
                    self.thin.push(key);
                }
            }
        }
    }

    /// Counts the spans of `traces` that stayed held past their first flush: a block
    /// mostly held is pinned, the spans of a block mostly sent are copied out. Then
    /// copies out the spans of pins that have thinned out.
    pub fn settle(&mut self, traces: &mut Map<TraceId, TraceBuf>, touched: &[TraceId]) {
        let mut fresh: Map<usize, usize> = Map::default();
        for t in touched {
            for p in traces.get(t).into_iter().flat_map(|b| &b.spans) {
                if !p.counted
                    && let Some(k) = p.block_key()
                {
                    *fresh.entry(k).or_default() += 1;
                }
            }
        }
        for t in touched {
            let Some(buf) = traces.get_mut(t) else {
                continue;
            };
            for p in buf.spans.iter_mut().filter(|p| !p.counted) {
                p.counted = true;
                let Held::Shared(r) = &p.span else { continue };
                let key = Arc::as_ptr(&r.block) as usize;
                let n = fresh.get(&key).copied().unwrap_or(0);
                let existing = self.pins.contains_key(&key);
                if existing || n * 2 >= r.block.span_count {
                    let pin = self.pins.entry(key).or_insert_with(|| {
                        let bytes = r
                            .block
                            .resource_spans
                            .iter()
                            .map(Message::encoded_len)
                            .sum::<usize>()
                            + r.block.span_count * std::mem::size_of::<Span>();
                        self.pinned += bytes;
                        Pin {
                            block: Arc::clone(&r.block),
                            held: 0,
                            bytes,
                            traces: Vec::new(),
                        }
                    });
                    pin.held += 1;
                    if pin.traces.last() != Some(t) {
                        pin.traces.push(*t);
                    }
                } else {
                    let copy = Box::new(r.get().clone());
                    let b = span_bytes(&copy);
                    self.owned += b;
                    p.span = Held::Owned(copy, b);
                }
            }
        }
        for key in std::mem::take(&mut self.thin) {
            let Some(pin) = self.pins.remove(&key) else {
                continue;
            };
            self.pinned -= pin.bytes;
            let mut seen = Set::default();
            for t in pin.traces.iter().filter(|t| seen.insert(**t)) {
                for p in traces.get_mut(t).into_iter().flat_map(|b| &mut b.spans) {
                    if p.counted && p.block_key() == Some(key) {
                        let Held::Shared(r) = &p.span else { continue };
                        let copy = Box::new(r.get().clone());
                        let b = span_bytes(&copy);
                        self.owned += b;
                        p.span = Held::Owned(copy, b);
                    }
                }
            }
        }
    }
}
