//! Owns the hand-off of orphan spans between instances through the shared store: the
//! three commands ([`HandoffOp`]: offer, claim, withdraw), the per-exporter
//! [`Mailbox`] their answers land in, and [`Handoff`], the handle an exporter's
//! assembler uses to queue them without waiting.
//!
//! Offers of one trace live in one Redis hash, `<prefix>orphans:<hex key>`, whose key
//! names the exporter's target and the trace; each field is `parent span id (8 bytes)
//! ‖ instance (8) ‖ token (8)` and its value the offered spans (encoded by the
//! assembler; the store only moves bytes). The hash expires `orphan_ttl` after the
//! last offer.
//!
//! - *offer*: `HSET` the field and `PEXPIRE` the hash (one script, one reply);
//! - *claim*: atomically take (`HDEL`) and return every field whose parent is one of
//!   the claimer's held span ids (never its own offers);
//! - *withdraw*: `HDEL` of the offerer's own field: 1 means nobody claimed it (the
//!   offerer emits it), 0 means another instance did (the offerer drops it).
//!
//! Redis runs each command and script atomically, so a claim and a withdraw of one
//! field never both win: exactly one instance emits each offered span.

use std::sync::{Arc, Mutex};

use super::FORMAT_VERSION;
use super::queue::StoreQueue;
use crate::ids::model::{SpanId, TraceId};

/// One hand-off command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandoffOp {
    /// Put `value` under `field` of the trace's hash.
    Offer {
        field: Box<[u8]>,
        value: Box<[u8]>,
        /// Expiry of the hash, in ms.
        ttl_ms: u64,
    },
    /// Take every field whose parent (first 8 bytes) is one of `parents`, except the
    /// claimer's own (`instance`, the next 8 bytes).
    Claim {
        instance: [u8; 8],
        parents: Vec<[u8; 8]>,
    },
    /// Take back one's own field.
    Withdraw { field: Box<[u8]> },
}

impl HandoffOp {
    /// Bytes the command carries (for the queue's byte bound).
    pub fn bytes(&self) -> usize {
        match self {
            Self::Offer { field, value, .. } => field.len() + value.len(),
            Self::Claim { parents, .. } => parents.len() * 8 + 8,
            Self::Withdraw { field } => field.len(),
        }
    }
}

/// The answer to one hand-off command, by its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Whether the offer was stored (false: dropped, failed or timed out; it may still
    /// have reached the store in the last two cases).
    Offered { token: u64, stored: bool },
    /// The values claimed (`None`: the claim failed or was dropped; nothing was taken).
    Claimed {
        token: u64,
        values: Option<Vec<Vec<u8>>>,
    },
    /// `Some(true)`: the field was still there (now removed): the offerer owns its
    /// spans. `Some(false)`: it was gone (claimed). `None`: no answer (failed, dropped).
    Withdrawn { token: u64, mine: Option<bool> },
}

/// Where the worker puts answers for one assembler; the assembler takes them on its
/// next look. Bounded by the commands in flight (each gets exactly one answer).
#[derive(Debug, Default)]
pub struct Mailbox {
    answers: Mutex<Vec<Answer>>,
}

impl Mailbox {
    /// Puts an answer (worker side).
    pub fn put(&self, a: Answer) {
        if let Ok(mut v) = self.answers.lock() {
            v.push(a);
        }
    }

    /// Takes every answer so far.
    pub fn take(&self) -> Vec<Answer> {
        self.answers
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
    }

    /// The answer for a command that did not get a reply.
    pub fn fail(&self, token: u64, op: &HandoffOp) {
        self.put(match op {
            HandoffOp::Offer { .. } => Answer::Offered {
                token,
                stored: false,
            },
            HandoffOp::Claim { .. } => Answer::Claimed {
                token,
                values: None,
            },
            HandoffOp::Withdraw { .. } => Answer::Withdrawn { token, mine: None },
        });
    }
}

/// A queued hand-off command with where its answer goes.
#[derive(Debug, Clone)]
pub struct Routed {
    /// The versioned hash key (target and trace).
    pub key: Box<[u8]>,
    pub op: HandoffOp,
    pub token: u64,
    pub mailbox: Arc<Mailbox>,
}

impl PartialEq for Routed {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
            && self.op == other.op
            && self.token == other.token
            && Arc::ptr_eq(&self.mailbox, &other.mailbox)
    }
}

impl Eq for Routed {}

/// Settings of the hand-off, from `ids.store`.
#[derive(Debug, Clone, Copy)]
pub struct HandoffLimits {
    pub ttl_ms: u64,
    /// Largest offer value.
    pub max_value_bytes: usize,
    /// How long an answer is waited for at most (the store's timeout and a little).
    pub wait: std::time::Duration,
    /// A held trace asks for offers at most this often.
    pub lookup_interval: std::time::Duration,
}

/// An assembler's handle on the hand-off: queues commands (never waits) and takes
/// their answers.
#[derive(Clone)]
pub struct Handoff {
    queue: Arc<StoreQueue>,
    mailbox: Arc<Mailbox>,
    scope: [u8; 8],
    instance: [u8; 8],
    limits: HandoffLimits,
}

impl std::fmt::Debug for Handoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handoff")
            .field("scope", &self.scope)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Handoff {
    /// A handle for one exporter; `target` (its collector, e.g. `host:port`) keeps the
    /// offers of exporters that send to different collectors apart.
    pub fn new(queue: Arc<StoreQueue>, target: &str, limits: HandoffLimits) -> Self {
        use std::hash::{BuildHasher, Hasher};
        // A stable hash of the target (every replica must compute the same).
        let mut scope = 0xcbf2_9ce4_8422_2325_u64;
        for b in target.bytes() {
            scope = (scope ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        // This instance: random, so fields of different instances never collide.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.write_u32(std::process::id());
        Self {
            queue,
            mailbox: Arc::new(Mailbox::default()),
            scope: scope.to_be_bytes(),
            instance: h.finish().to_be_bytes(),
            limits,
        }
    }

    /// The limits it was made with.
    pub fn limits(&self) -> HandoffLimits {
        self.limits
    }

    /// Whether the last round trips failed (the store is down): nothing is waited for.
    pub fn store_down(&self) -> bool {
        self.queue.counters.known_down()
    }

    fn key(&self, t: &TraceId) -> Box<[u8]> {
        let mut k = Vec::with_capacity(25);
        k.push(FORMAT_VERSION);
        k.extend_from_slice(&self.scope);
        k.extend_from_slice(&t.0);
        k.into_boxed_slice()
    }

    /// The field of this instance's offer `token` of spans whose parent is `parent`.
    pub fn field(&self, parent: SpanId, token: u64) -> Box<[u8]> {
        let mut f = Vec::with_capacity(24);
        f.extend_from_slice(&parent.0);
        f.extend_from_slice(&self.instance);
        f.extend_from_slice(&token.to_be_bytes());
        f.into_boxed_slice()
    }

    fn send(&self, t: &TraceId, op: HandoffOp, token: u64) {
        self.queue.handoff(Routed {
            key: self.key(t),
            op,
            token,
            mailbox: Arc::clone(&self.mailbox),
        });
    }

    /// Offers `value` (spans whose parent is `parent`) as `token`.
    pub fn offer(&self, t: &TraceId, parent: SpanId, token: u64, value: Vec<u8>) {
        let op = HandoffOp::Offer {
            field: self.field(parent, token),
            value: value.into_boxed_slice(),
            ttl_ms: self.limits.ttl_ms,
        };
        self.send(t, op, token);
    }

    /// Claims the offers of trace `t` whose parent is one of `parents`.
    pub fn claim(&self, t: &TraceId, parents: Vec<[u8; 8]>, token: u64) {
        let instance = self.instance;
        self.send(t, HandoffOp::Claim { instance, parents }, token);
    }

    /// Withdraws this instance's offer `offer_token` (answered as `token`).
    pub fn withdraw(&self, t: &TraceId, parent: SpanId, offer_token: u64, token: u64) {
        let op = HandoffOp::Withdraw {
            field: self.field(parent, offer_token),
        };
        self.send(t, op, token);
    }

    /// The answers that arrived since the last call.
    pub fn answers(&self) -> Vec<Answer> {
        self.mailbox.take()
    }
}
