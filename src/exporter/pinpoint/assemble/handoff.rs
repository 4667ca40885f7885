//! Orphans handed between instances (replicas behind a balancer without trace
//! affinity). The SDK's batch boundary can split one service's spans of one trace
//! across two export batches (children end and go first, the entry later), and the
//! balancer can send the two to two instances. The instance with only the children
//! (*orphans*: their local parent is not here) offers them through the shared store;
//! an instance holding a span of that trace claims the offers whose parent it holds
//! and takes the spans in as if they had arrived here, so they join their segment.
//!
//! Rules (each instance, no I/O here: commands are queued, answers taken next look):
//! - an orphan group that waits for its local parent is *offered* once (its spans,
//!   encoded, at most `max_orphan_bytes`), and every held trace *claims* offers for
//!   its held span ids after each arrival and every `lookup_interval` while held;
//! - *gate*: a trace emits nothing until a claim asked after its latest arrival was
//!   answered (or `wait` passed, or the store is known down), so an entry that could
//!   go at once still takes in the orphans offered before it arrived;
//! - an offered span is never emitted before its offer is *withdrawn*: when its group
//!   joins a local parent, or its hold runs out, the offerer asks for its field back.
//!   1: nobody claimed it, the spans go out here (`emitted_locally`); 0: another
//!   instance claimed it and sends them, they are dropped here (`handed_off`); no
//!   answer within `wait` (store down): they go out here, as without a store.
//!
//! Exactly one instance emits each span: Redis runs a claim and a withdraw of one
//! field one after the other, and only the first finds it. Without a store, or with
//! the store down, an instance behaves as before.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::trace::v1::{ScopeSpans, Span};
use prost::Message;

use super::super::agent::AgentIdentity;
use super::flush::Look;
use super::forest::Forest;
use super::held::Pending;
use super::{Assembler, Expiry, TraceBuf};
use crate::ids::store::handoff::{Answer, Handoff};
use crate::ids::{SpanId, TraceId};

/// What happened to orphan spans, the label of `bridge_pinpoint_orphans_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrphanOutcome {
    /// Offered to other instances.
    Published,
    /// Taken in from another instance's offer.
    Claimed,
    /// Offered here, claimed and sent by another instance (dropped here).
    HandedOff,
    /// Offered here, taken back and sent here (nobody claimed them, or no answer).
    EmittedLocally,
}

impl OrphanOutcome {
    /// Every outcome, in [`OrphanCounts`] order.
    pub const ALL: [Self; 4] = [
        Self::Published,
        Self::Claimed,
        Self::HandedOff,
        Self::EmittedLocally,
    ];

    /// The metric label.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Published => "published",
            Self::Claimed => "claimed",
            Self::HandedOff => "handed_off",
            Self::EmittedLocally => "emitted_locally",
        }
    }
}

/// Orphan spans by outcome (indexed like [`OrphanOutcome::ALL`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct OrphanCounts(pub [u64; 4]);

impl OrphanCounts {
    /// The count of one outcome.
    #[must_use]
    pub fn get(&self, o: OrphanOutcome) -> u64 {
        self.0[o as usize]
    }

    fn add(&mut self, o: OrphanOutcome, n: usize) {
        self.0[o as usize] += n as u64;
    }
}

/// One trace's claims.
#[derive(Debug, Default)]
pub(super) struct Gate {
    /// The latest arrival of a span of this trace (from the pipeline, not claimed).
    pub last_arrival: Option<Instant>,
    /// When the latest claim was asked.
    asked: Option<Instant>,
    in_flight: bool,
    /// When the latest answered claim was asked.
    answered: Option<Instant>,
}

/// Where the withdrawal of an offer stands.
#[derive(Debug, Clone, Copy)]
enum Withdraw {
    NotAsked,
    Asked(Instant),
    Answered(Option<bool>),
}

struct Offer {
    trace: TraceId,
    parent: SpanId,
    withdraw: Withdraw,
}

/// The hand-off state of one assembler.
pub(super) struct Handoffs {
    link: Handoff,
    next: u64,
    offers: HashMap<u64, Offer>,
    /// Claim token → (trace, asked at).
    claims: HashMap<u64, (TraceId, Instant)>,
    /// Withdraw token → offer token.
    withdrawals: HashMap<u64, u64>,
    /// How long traces waited for their claim's answer (seconds), not yet reported.
    waits: Vec<f64>,
}

impl Handoffs {
    pub fn new(link: Handoff) -> Self {
        Self {
            link,
            next: 1,
            offers: HashMap::new(),
            claims: HashMap::new(),
            withdrawals: HashMap::new(),
            waits: Vec::new(),
        }
    }

    fn token(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    fn wait(&self) -> Duration {
        self.link.limits().wait
    }
}

/// Encodes an offer: the agent, then the spans (`ScopeSpans`, protobuf).
pub(super) fn encode(agent: &AgentIdentity, spans: Vec<Span>) -> Vec<u8> {
    let mut out = vec![1u8];
    for s in [
        &agent.application_name,
        &agent.agent_id,
        &agent.agent_name,
        &agent.language,
        &agent.hostname,
        &agent.ip,
        &agent.agent_version,
        &agent.vm_version,
    ] {
        let b = &s.as_bytes()[..s.len().min(usize::from(u16::MAX))];
        out.extend_from_slice(&(b.len() as u16).to_be_bytes());
        out.extend_from_slice(b);
    }
    out.extend_from_slice(&agent.service_type.to_be_bytes());
    out.extend_from_slice(&agent.pid.to_be_bytes());
    out.push(u8::from(agent.container));
    ScopeSpans {
        spans,
        ..Default::default()
    }
    .encode(&mut out)
    .ok();
    out
}

/// Decodes an offer; `None` for anything damaged or of another version.
pub(super) fn decode(bytes: &[u8]) -> Option<(AgentIdentity, Vec<Span>)> {
    let (&1, mut rest) = bytes.split_first()? else {
        return None;
    };
    let mut text = || -> Option<String> {
        let (len, r) = rest.split_first_chunk::<2>()?;
        let len = usize::from(u16::from_be_bytes(*len));
        let s = std::str::from_utf8(r.get(..len)?).ok()?.to_owned();
        rest = r.get(len..)?;
        Some(s)
    };
    let (application_name, agent_id, agent_name, language) = (text()?, text()?, text()?, text()?);
    let (hostname, ip, agent_version, vm_version) = (text()?, text()?, text()?, text()?);
    let (st, r) = rest.split_first_chunk::<4>()?;
    let (pid, r) = r.split_first_chunk::<4>()?;
    let (&container, r) = r.split_first()?;
    let spans = ScopeSpans::decode(r).ok()?.spans;
    let agent = AgentIdentity {
        application_name,
        agent_id,
        agent_name,
        service_type: i32::from_be_bytes(*st),
        language,
        hostname,
        ip,
        pid: i32::from_be_bytes(*pid),
        agent_version,
        vm_version,
        container: container == 1,
    };
    Some((agent, spans))
}

/// What settling a trace's offers decided before a look emits anything.
pub(super) struct Settled {
    /// Per span index: its group may not be emitted now.
    pub blocked: Vec<bool>,
    /// Per span index: claimed by another instance, to drop.
    pub handed_off: Vec<bool>,
}

impl Assembler {
    /// Takes the answers that arrived: offers stored, claims (their spans join their
    /// traces), withdrawals.
    pub(super) fn absorb_answers(&mut self, now: Instant) {
        let Some(h) = self.handoff.as_mut() else {
            return;
        };
        for a in h.link.answers() {
            match a {
                Answer::Offered { .. } => {}
                Answer::Withdrawn { token, mine } => {
                    let Some(offer) = h.withdrawals.remove(&token) else {
                        continue;
                    };
                    if let Some(o) = h.offers.get_mut(&offer) {
                        o.withdraw = Withdraw::Answered(mine);
                        if let Some(b) = self.traces.get_mut(&o.trace) {
                            b.dirty = true;
                        }
                    }
                }
                Answer::Claimed { token, values } => {
                    let Some((t, asked)) = h.claims.remove(&token) else {
                        continue;
                    };
                    let values = values.unwrap_or_default();
                    if let Some(b) = self.traces.get_mut(&t) {
                        // The wait this answer ends (arrival → answer taken in).
                        if let Some(arrived) = b.gate.last_arrival
                            && b.gate.answered < Some(arrived)
                            && asked >= arrived
                            && h.waits.len() < 10_000
                        {
                            h.waits
                                .push(now.saturating_duration_since(arrived).as_secs_f64());
                        }
                        b.gate.in_flight = false;
                        b.gate.answered = b.gate.answered.max(Some(asked));
                        b.dirty = true;
                    }
                    for v in values {
                        let Some((agent, spans)) = decode(&v) else {
                            tracing::debug!("orphan offer does not decode; ignored");
                            continue;
                        };
                        let buf = self.traces.entry(t).or_insert_with(|| TraceBuf::new(now));
                        // The agent of the parent held here (so the spans join its
                        // segment), else of the segment it was sent in, else the offer's.
                        let held = spans.iter().find_map(|s| {
                            let p = crate::ids::otlp::parent_of(s)?;
                            buf.spans
                                .iter()
                                .find(|x| x.id == Some(p))
                                .map(|x| Arc::clone(&x.agent))
                                .or_else(|| {
                                    self.sent.get(&(t, p)).map(|(s, _)| Arc::clone(&s.agent))
                                })
                        });
                        let agent = held.unwrap_or_else(|| Arc::new(agent));
                        self.counts.orphans.add(OrphanOutcome::Claimed, spans.len());
                        self.pending += spans.len();
                        for s in spans {
                            let p = Pending::claimed(Arc::clone(&agent), s, now, &mut self.account);
                            buf.spans.push(p);
                        }
                        buf.dirty = true;
                    }
                }
            }
        }
    }

    /// How long traces waited for their claim's answer before they could be emitted
    /// (seconds), since the last call: the latency the store adds to export.
    pub fn take_handoff_waits(&mut self) -> Vec<f64> {
        self.handoff
            .as_mut()
            .map(|h| std::mem::take(&mut h.waits))
            .unwrap_or_default()
    }

    /// Whether `buf` must not emit yet: a claim asked after its latest arrival has not
    /// been answered, within `wait`, while the store is up.
    pub(super) fn gated(&self, buf: &TraceBuf, now: Instant, expiry: Expiry) -> bool {
        let Some(h) = &self.handoff else {
            return false;
        };
        let Some(arrived) = buf.gate.last_arrival else {
            return false;
        };
        !matches!(expiry, Expiry::All)
            && buf.gate.answered < Some(arrived)
            && now < arrived + h.wait()
            && !h.link.store_down()
    }

    /// Settles the offers of `buf`'s groups that may be emitted now (their group
    /// joined a local parent, or its hold ran out): asks for them back, or applies the
    /// answer. Groups whose offers are not settled are blocked.
    pub(super) fn settle_offers(
        &mut self,
        look: &Look,
        buf: &mut TraceBuf,
        forest: &Forest,
        now: Instant,
    ) -> Option<Settled> {
        let (t, expiry) = (look.t, look.expiry);
        let h = self.handoff.as_mut()?;
        if buf.spans.iter().all(|p| p.offer.is_none()) {
            return None;
        }
        let n = buf.spans.len();
        let mut s = Settled {
            blocked: vec![false; n],
            handed_off: vec![false; n],
        };
        let force = matches!(expiry, Expiry::All);
        for &r in &forest.roots {
            let order = forest.descend(r, 0);
            let mut tokens: Vec<u64> = order
                .iter()
                .filter_map(|(i, _)| buf.spans[*i].offer)
                .collect();
            tokens.sort_unstable();
            tokens.dedup();
            if tokens.is_empty() {
                continue;
            }
            let root = &buf.spans[r];
            // Still waiting for a local parent that is neither here nor sent from here.
            let orphan = root
                .parent
                .filter(|_| !root.remote)
                .is_some_and(|p| !self.sent.contains_key(&(t, p)));
            if !(force || !orphan || look.expired(root)) {
                s.blocked[r] = true;
                continue;
            }
            for tok in tokens {
                let state = h.offers.get(&tok).map(|o| (o.withdraw, o.trace, o.parent));
                let published = state.is_some();
                let mine = match state {
                    None => Some(true),
                    Some((Withdraw::Answered(Some(mine)), ..)) => Some(mine),
                    Some((Withdraw::Answered(None), t, parent)) => {
                        // No answer: send it out here, and withdraw once more (unanswered)
                        // so a later claimer cannot take it too.
                        let again = h.token();
                        h.link.withdraw(&t, parent, tok, again);
                        Some(true)
                    }
                    Some((Withdraw::Asked(at), t, parent)) => {
                        if force || now >= at + h.wait() {
                            let again = h.token();
                            h.link.withdraw(&t, parent, tok, again);
                            Some(true)
                        } else {
                            None
                        }
                    }
                    Some((Withdraw::NotAsked, t, parent)) => {
                        let w = h.token();
                        h.link.withdraw(&t, parent, tok, w);
                        if force {
                            Some(true)
                        } else {
                            h.withdrawals.insert(w, tok);
                            if let Some(o) = h.offers.get_mut(&tok) {
                                o.withdraw = Withdraw::Asked(now);
                            }
                            None
                        }
                    }
                };
                let Some(mine) = mine else {
                    s.blocked[r] = true;
                    continue;
                };
                h.offers.remove(&tok);
                let mut count = 0;
                for (i, _) in &order {
                    let p = &mut buf.spans[*i];
                    if p.offer == Some(tok) {
                        p.offer = None;
                        count += 1;
                        s.handed_off[*i] = !mine;
                    }
                }
                let outcome = if mine {
                    OrphanOutcome::EmittedLocally
                } else {
                    OrphanOutcome::HandedOff
                };
                if published {
                    self.counts.orphans.add(outcome, count);
                }
            }
        }
        // A group with a handed-off part is looked at again without it first.
        if s.handed_off.iter().any(|d| *d) {
            for b in &mut s.blocked {
                *b = true;
            }
        }
        Some(s)
    }

    /// After a look that emitted nothing more: offers the orphan groups that wait for
    /// their local parent (once each) and claims offers for the held span ids.
    pub(super) fn offer_and_claim(
        &mut self,
        look: &Look,
        buf: &mut TraceBuf,
        forest: &Forest,
        now: Instant,
    ) -> Option<Instant> {
        let t = look.t;
        let h = self.handoff.as_mut()?;
        let limits = h.link.limits();
        for &r in &forest.roots {
            let root = &buf.spans[r];
            let Some(parent) = root.parent.filter(|_| !root.remote) else {
                continue;
            };
            if look.expired(root) || self.sent.contains_key(&(t, parent)) {
                continue;
            }
            let order = forest.descend(r, 0);
            if order.iter().any(|(i, _)| buf.spans[*i].offer.is_some()) {
                continue;
            }
            let spans: Vec<Span> = order
                .iter()
                .map(|(i, _)| (*buf.spans[*i].span).clone())
                .collect();
            let value = encode(&root.agent, spans);
            let token = h.token();
            // Too large to offer: marked with an offer nobody knows (settled at once).
            if value.len() <= limits.max_value_bytes {
                h.offers.insert(
                    token,
                    Offer {
                        trace: t,
                        parent,
                        withdraw: Withdraw::NotAsked,
                    },
                );
                h.link.offer(&t, parent, token, value);
                self.counts
                    .orphans
                    .add(OrphanOutcome::Published, order.len());
            }
            for (i, _) in &order {
                buf.spans[*i].offer = Some(token);
            }
        }
        let waiting = !buf.waiting.is_empty();
        let g = &mut buf.gate;
        if g.in_flight && g.asked.is_some_and(|a| now >= a + limits.wait) {
            g.in_flight = false;
        }
        let fresh = g.asked < g.last_arrival;
        // Entries waiting for their caller keep asking (an offer may come later).
        let again = waiting && g.asked.is_none_or(|a| now >= a + limits.lookup_interval);
        if !g.in_flight && (fresh || again) {
            let parents: Vec<[u8; 8]> = buf
                .spans
                .iter()
                .filter_map(|p| p.id.map(|s| s.0))
                .take(1024)
                .collect();
            if !parents.is_empty() {
                let token = h.token();
                h.claims.insert(token, (t, now));
                h.link.claim(&t, parents, token);
                let g = &mut buf.gate;
                g.asked = Some(now);
                g.in_flight = true;
            }
        }
        // Look again when an answer is late, or to claim again.
        let g = &buf.gate;
        if g.in_flight {
            Some(now + limits.wait)
        } else if waiting {
            Some(now + limits.lookup_interval)
        } else {
            None
        }
    }
}
