//! The pipeline between receivers and exporters: routing, one bounded queue per
//! exporter, batching, retry and fan-out.
//!
//! Receivers hand a [`Block`] (the valid spans of one request) to [`Pipeline::submit`].
//! The [`router`] decides span by span, by the routes of the config ([`rules`]), which
//! exporters get what, and returns the part of the block for each; admission then
//! reserves room for every part in its queue *before* anything is enqueued, so a request
//! is either taken by every exporter it is routed to or refused as a whole with a
//! retryable status: a client retry never duplicates spans in the exporters that had
//! room. An exporter whose queue says `on_full: drop` skips its part instead (counted)
//! and never refuses on behalf of the others.
//!
//! Queue room is counted in spans and in bytes (what the decoded spans hold, in KiB),
//! with one semaphore each, taken both or neither; a queued item holds its permits until
//! the batch it joins has been exported (or given up), so "queued" includes in-flight.
//! The receiver never awaits an exporter: admission is `try_acquire`, never a wait.
//!
//! Profiles take a side door into the same queues: [`Pipeline::submit_profiles`] hands a
//! [`ProfileBlock`] (one OTLP profiles request) to every exporter whose kind takes
//! profiles, past the span router (routing rules speak of spans). It holds queue room
//! like spans do (one unit per sample), and the worker never mixes spans and profiles
//! in one batch: a profile batch is exactly one request.
//!
//! A queue configured `persistent` ([`persist`]) also writes each admitted item to disk
//! before the sender is answered ([`Pipeline::submit_durable`]) and keeps it there until
//! its batch is delivered (see [`Batch::hold`]).

pub mod persist;
pub mod router;
pub mod rules;
mod stats;
pub mod worker;

pub use stats::ExporterStats;
use stats::{Room, kib};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use opentelemetry_proto::tonic::collector::profiles::v1development::ExportProfilesServiceRequest;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use tokio::sync::{Semaphore, TryAcquireError, mpsc};

use crate::config::{BatchConfig, ExporterConfig, OnFull, RetryConfig};
use crate::selfmetrics as m;
use router::{RouteOverrides, Router};

/// The valid spans of one request (or the part of it routed to one exporter).
#[derive(Debug, Clone, Default)]
pub struct Block {
    pub resource_spans: Vec<ResourceSpans>,
    pub span_count: usize,
    /// What the route that chose these spans sets for the Pinpoint exporter; `None`
    /// when it sets nothing (and always, on a block fresh from a receiver).
    pub overrides: Option<Arc<RouteOverrides>>,
}

impl Block {
    /// Counts the spans of `resource_spans`.
    #[must_use]
    pub fn new(resource_spans: Vec<ResourceSpans>) -> Self {
        let span_count = resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        Self {
            resource_spans,
            span_count,
            overrides: None,
        }
    }
}

/// A block shared by every exporter it is routed to (no copy per exporter).
pub type SharedBlock = Arc<Block>;

/// The valid profiles of one OTLP profiles request (its dictionary included).
#[derive(Debug, Default)]
pub struct ProfileBlock {
    pub request: ExportProfilesServiceRequest,
    pub profile_count: usize,
    /// Queue room the block takes: its samples (at least 1).
    pub sample_count: usize,
}

impl ProfileBlock {
    /// Counts the profiles and samples of `request`.
    #[must_use]
    pub fn new(request: ExportProfilesServiceRequest) -> Self {
        let profiles = request
            .resource_profiles
            .iter()
            .flat_map(|r| &r.scope_profiles)
            .flat_map(|s| &s.profiles);
        let (profile_count, sample_count) =
            profiles.fold((0, 0), |(p, s), x| (p + 1, s + x.samples.len()));
        Self {
            request,
            profile_count,
            sample_count,
        }
    }
}

/// A profile block shared by every exporter that takes profiles.
pub type SharedProfiles = Arc<ProfileBlock>;

/// What an exporter receives: the blocks that arrived within one batch window.
#[derive(Debug)]
pub struct Batch {
    /// Unique per batch in this process; a retried batch keeps its id.
    id: u64,
    blocks: Vec<SharedBlock>,
    profiles: Vec<SharedProfiles>,
    span_count: usize,
    profile_count: usize,
    /// Queue room held until the batch is done with.
    _permits: Vec<Room>,
    /// When the oldest block of the batch was admitted.
    pub first_received: Instant,
    /// When each item (block or profile request) of the batch was admitted.
    admitted: Vec<Instant>,
    /// The worker's hold on the batch's records in a persistent queue.
    hold: Option<persist::Hold>,
}

impl Batch {
    fn new(first: Item) -> Self {
        let mut b = Self {
            id: next_batch_id(),
            blocks: Vec::new(),
            profiles: Vec::new(),
            span_count: 0,
            profile_count: 0,
            _permits: Vec::new(),
            first_received: first.received,
            admitted: Vec::new(),
            hold: None,
        };
        b.push(first);
        b
    }

    fn push(&mut self, item: Item) {
        match item.payload {
            Payload::Spans(block) => {
                self.span_count += block.span_count;
                self.blocks.push(block);
            }
            Payload::Profiles(p) => {
                self.profile_count += p.profile_count;
                self.profiles.push(p);
            }
        }
        self._permits.push(item.permit);
        self.admitted.push(item.received);
        if let Some((store, seq)) = item.seq {
            match &self.hold {
                Some(h) if h.is_of(&store) => h.add(seq),
                Some(_) => {}
                None => {
                    let h = persist::Hold::first(store);
                    h.add(seq);
                    self.hold = Some(h);
                }
            }
        }
    }

    /// Another hold on this batch's records in a persistent queue (a no-op hold for an
    /// in-memory queue). An exporter that keeps spans of the batch after `export`
    /// returns takes one and releases it once those spans are sent: the records stay on
    /// disk (and are replayed after a crash) until then.
    pub fn hold(&self) -> persist::Hold {
        self.hold
            .as_ref()
            .map_or_else(persist::Hold::none, persist::Hold::another)
    }

    /// The worker is done with the batch (exported, or given up and counted): releases
    /// its own hold. A batch dropped without this (a worker aborted at shutdown) keeps
    /// its records for the next start.
    pub(crate) fn finish(&mut self) {
        if let Some(h) = self.hold.take() {
            h.release();
        }
    }

    /// When each block (or profile request) of the batch was admitted.
    #[must_use]
    pub fn admitted(&self) -> &[Instant] {
        &self.admitted
    }

    /// Whether `item` may join this batch: spans join spans; a profile request is a
    /// batch of its own.
    fn takes(&self, item: &Item) -> bool {
        matches!(item.payload, Payload::Spans(_)) && self.profiles.is_empty()
    }

    /// Whether the batch is complete without waiting for more.
    fn is_full(&self, max_spans: usize) -> bool {
        !self.profiles.is_empty() || self.span_count >= max_spans
    }

    /// Builds a batch outside a queue (tests and benchmarks).
    #[must_use]
    pub fn from_blocks(blocks: Vec<SharedBlock>) -> Self {
        let span_count = blocks.iter().map(|b| b.span_count).sum();
        Self {
            id: next_batch_id(),
            blocks,
            profiles: Vec::new(),
            span_count,
            profile_count: 0,
            _permits: Vec::new(),
            first_received: Instant::now(),
            admitted: Vec::new(),
            hold: None,
        }
    }

    /// Builds a profile batch outside a queue (tests and benchmarks).
    #[must_use]
    pub fn from_profiles(block: SharedProfiles) -> Self {
        Self {
            id: next_batch_id(),
            blocks: Vec::new(),
            profile_count: block.profile_count,
            profiles: vec![block],
            span_count: 0,
            _permits: Vec::new(),
            first_received: Instant::now(),
            admitted: Vec::new(),
            hold: None,
        }
    }

    /// This batch's id (the same across retries of it).
    #[must_use]
    pub fn id(&self) -> u64 {
        self.id
    }

    #[must_use]
    pub fn blocks(&self) -> &[SharedBlock] {
        &self.blocks
    }

    /// Every `ResourceSpans` of the batch, in arrival order.
    pub fn resource_spans(&self) -> impl Iterator<Item = &ResourceSpans> {
        self.blocks.iter().flat_map(|b| &b.resource_spans)
    }

    #[must_use]
    pub fn span_count(&self) -> usize {
        self.span_count
    }

    /// The profile requests of the batch (empty for a span batch).
    #[must_use]
    pub fn profiles(&self) -> &[SharedProfiles] {
        &self.profiles
    }

    /// Profiles in the batch (0 for a span batch).
    #[must_use]
    pub fn profile_count(&self) -> usize {
        self.profile_count
    }
}

fn next_batch_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// What one queue item carries.
enum Payload {
    Spans(SharedBlock),
    Profiles(SharedProfiles),
}

impl Payload {
    fn span_count(&self) -> usize {
        match self {
            Self::Spans(b) => b.span_count,
            Self::Profiles(_) => 0,
        }
    }
}

struct Item {
    payload: Payload,
    permit: Room,
    received: Instant,
    /// The item's record in a persistent queue.
    seq: Option<(Arc<persist::Shared>, u64)>,
}

/// Why the pipeline refused a block. Both are retryable for the sender.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the queue of exporter `{exporter}` is full; retry later")]
    QueueFull { exporter: String },
    #[error("the gateway is shutting down; retry against another instance or later")]
    ShuttingDown,
    /// A persistent queue could not write the request (disk full, I/O error).
    #[error("exporter `{exporter}`: {message}; retry later")]
    Storage { exporter: String, message: String },
}

struct Queue {
    tx: mpsc::UnboundedSender<Item>,
    on_full: OnFull,
    /// Whether this exporter's kind takes profiles.
    profiles: bool,
    stats: Arc<ExporterStats>,
    /// The disk side of a persistent queue.
    store: Option<Arc<persist::Store>>,
}

/// The consuming side of one exporter's queue, handed to its worker.
pub struct QueueReceiver {
    rx: mpsc::UnboundedReceiver<Item>,
    pub batch: BatchConfig,
    pub retry: RetryConfig,
    pub stats: Arc<ExporterStats>,
    /// The disk side, for a persistent queue.
    pub store: Option<Arc<persist::Store>>,
}

/// Routing plus one bounded queue per exporter.
pub struct Pipeline {
    router: Router,
    queues: Vec<Queue>,
    closed: AtomicBool,
}

impl Pipeline {
    /// Creates in-memory queues for `exporters` (in order; `queue.persistent` is
    /// ignored: use [`Pipeline::open`]) and returns the consuming ends.
    #[must_use]
    pub fn new(exporters: &[ExporterConfig], router: Router) -> (Arc<Self>, Vec<QueueReceiver>) {
        let (p, receivers) = Self::memory(exporters, router);
        (Arc::new(p), receivers)
    }

    /// Like [`Pipeline::new`], and opens (recovering) every persistent queue.
    ///
    /// # Errors
    /// [`persist::PersistError`] when a queue directory cannot be used.
    pub fn open(
        exporters: &[ExporterConfig],
        router: Router,
    ) -> Result<(Arc<Self>, Vec<QueueReceiver>), persist::PersistError> {
        let (mut p, mut receivers) = Self::memory(exporters, router);
        for ((e, q), r) in exporters.iter().zip(&mut p.queues).zip(&mut receivers) {
            if let Some(cfg) = &e.queue.persistent {
                let store = Arc::new(persist::Store::open(&e.name, cfg, q.tx.clone())?);
                q.store = Some(Arc::clone(&store));
                r.store = Some(store);
            }
        }
        Ok((Arc::new(p), receivers))
    }

    fn memory(exporters: &[ExporterConfig], router: Router) -> (Self, Vec<QueueReceiver>) {
        let mut queues = Vec::with_capacity(exporters.len());
        let mut receivers = Vec::with_capacity(exporters.len());
        for e in exporters {
            let (tx, rx) = mpsc::unbounded_channel();
            let label = [("exporter", e.name.clone())];
            metrics::gauge!(m::QUEUE_CAPACITY, &label).set(e.queue.max_spans as f64);
            let capacity_kib = kib(e.queue.max_bytes).min(u32::MAX as usize);
            metrics::gauge!(m::QUEUE_CAPACITY_BYTES, &label).set((capacity_kib * 1024) as f64);
            let stats = Arc::new(ExporterStats {
                name: e.name.clone(),
                kind: e.kind.type_name(),
                capacity: e.queue.max_spans,
                sem: Arc::new(Semaphore::new(e.queue.max_spans)),
                capacity_kib,
                kib_sem: Arc::new(Semaphore::new(capacity_kib)),
                bytes_gauge: metrics::gauge!(m::QUEUE_BYTES, &label),
                sent: AtomicU64::new(0),
                failed: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
                last_error: std::sync::Mutex::new(None),
                queue_gauge: metrics::gauge!(m::QUEUE_SPANS, &label),
                sent_counter: metrics::counter!(m::EXPORTER_SPANS_SENT, &label),
                dropped_full: metrics::counter!(m::EXPORTER_SPANS_DROPPED, "exporter" => e.name.clone(), "reason" => "queue_full"),
                dropped_shutdown: metrics::counter!(m::EXPORTER_SPANS_DROPPED, "exporter" => e.name.clone(), "reason" => "shutdown"),
                profiles_dropped_full: metrics::counter!(m::EXPORTER_PROFILES_DROPPED, "exporter" => e.name.clone(), "reason" => "queue_full"),
                profiles_dropped_shutdown: metrics::counter!(m::EXPORTER_PROFILES_DROPPED, "exporter" => e.name.clone(), "reason" => "shutdown"),
            });
            stats.update_gauge();
            queues.push(Queue {
                tx,
                on_full: e.queue.on_full,
                profiles: e.kind.takes_profiles(),
                stats: Arc::clone(&stats),
                store: None,
            });
            receivers.push(QueueReceiver {
                rx,
                batch: e.batch.clone(),
                retry: e.retry.clone(),
                stats,
                store: None,
            });
        }
        let p = Self {
            router,
            queues,
            closed: AtomicBool::new(false),
        };
        (p, receivers)
    }

    /// Starts replaying what persistent queues kept from the last run (one task per
    /// queue with leftovers; each ends by itself, or when `stop` turns true).
    #[must_use]
    pub fn start_replay(
        &self,
        stop: &tokio::sync::watch::Receiver<bool>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        self.queues
            .iter()
            .filter_map(|q| persist::replay::start(q, stop.clone()))
            .collect()
    }

    /// Routes `block` and enqueues it for every chosen exporter, or refuses it whole.
    /// A persistent queue takes it once written; this does not wait for that (see
    /// [`Pipeline::submit_durable`]).
    ///
    /// # Errors
    /// [`Refused`] when a `refuse` queue has no room, or after [`Pipeline::close`].
    pub fn submit(&self, block: Block) -> Result<(), Refused> {
        self.admit(block).map(drop)
    }

    /// [`Pipeline::submit`], then waits until every persistent queue that took the block
    /// has it on disk: only then may the sender be told "accepted".
    ///
    /// # Errors
    /// As [`Pipeline::submit`], and [`Refused::Storage`] when a write failed.
    pub async fn submit_durable(&self, block: Block) -> Result<(), Refused> {
        self.admit(block)?.wait().await
    }

    fn admit(&self, block: Block) -> Result<persist::Durability, Refused> {
        let mut durable = persist::Durability::default();
        if self.closed.load(Ordering::Acquire) {
            return Err(Refused::ShuttingDown);
        }
        if block.span_count == 0 {
            return Ok(durable);
        }
        let routed = self.router.route(block);
        let mut reserved = Vec::with_capacity(routed.len());
        // Parts shared whole by several exporters are weighed once.
        let mut weighed: Option<(SharedBlock, usize)> = None;
        for (index, part) in routed {
            let Some(q) = self.queues.get(index) else {
                continue;
            };
            let bytes = match &weighed {
                Some((b, n)) if Arc::ptr_eq(b, &part) => *n,
                _ => {
                    let n = crate::memory::weigh::resource_spans(&part.resource_spans);
                    weighed = Some((Arc::clone(&part), n));
                    n
                }
            };
            // A block larger than the whole queue is admitted when the queue is empty.
            match q.stats.try_reserve(part.span_count, bytes) {
                Ok(permit) => reserved.push((q, part, permit)),
                Err(TryAcquireError::NoPermits) if q.on_full == OnFull::Drop => {
                    q.stats
                        .dropped
                        .fetch_add(part.span_count as u64, Ordering::Relaxed);
                    q.stats.dropped_full.increment(part.span_count as u64);
                }
                Err(TryAcquireError::NoPermits) => {
                    return Err(Refused::QueueFull {
                        exporter: q.stats.name.clone(),
                    });
                }
                Err(TryAcquireError::Closed) => return Err(Refused::ShuttingDown),
            }
        }
        let mut staged = Vec::with_capacity(reserved.len());
        for (q, block, permit) in reserved {
            let payload = Payload::Spans(block);
            match persist::stage(q, &payload)? {
                persist::Stage::Memory => staged.push((q, payload, permit, None)),
                persist::Stage::Disk(d) => staged.push((q, payload, permit, Some(d))),
                persist::Stage::Dropped => {}
            }
        }
        let received = Instant::now();
        for (q, payload, permit, disk) in staged {
            let n = payload.span_count() as u64;
            let item = Item {
                payload,
                permit,
                received,
                seq: None,
            };
            if let Some(disk) = disk {
                durable.push(disk.commit(item));
            } else if q.tx.send(item).is_err() {
                // The worker closed its queue: only possible while shutting down.
                q.stats.dropped.fetch_add(n, Ordering::Relaxed);
                q.stats.dropped_shutdown.increment(n);
            }
            q.stats.update_gauge();
        }
        Ok(durable)
    }

    /// Refuses, before decoding, a request of about `spans` spans and `bytes` decoded
    /// bytes that a destination queue has no room for (issue 17: refusing must cost a
    /// small fraction of accepting). Decided only when every span goes to the same
    /// exporters ([`Router::fixed_exporters`]) and for `on_full: refuse` queues; else
    /// `Ok` and [`Pipeline::submit`] decides after decoding, as always.
    ///
    /// # Errors
    /// [`Refused`], as [`Pipeline::submit`] would return it.
    pub fn refuse_early(&self, spans: usize, bytes: usize) -> Result<(), Refused> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Refused::ShuttingDown);
        }
        let Some(exporters) = self.router.fixed_exporters() else {
            return Ok(());
        };
        for q in exporters.iter().filter_map(|i| self.queues.get(*i)) {
            let s = &q.stats;
            let short = s.sem.available_permits() < spans.clamp(1, s.capacity)
                || s.kib_sem.available_permits() < kib(bytes).clamp(1, s.capacity_kib);
            if short && q.on_full == OnFull::Refuse {
                return Err(Refused::QueueFull {
                    exporter: s.name.clone(),
                });
            }
        }
        Ok(())
    }

    /// Whether any exporter takes profiles (if none, a receiver says so to the sender
    /// instead of taking profiles nobody would export).
    #[must_use]
    pub fn takes_profiles(&self) -> bool {
        self.queues.iter().any(|q| q.profiles)
    }

    /// Enqueues `block` for every exporter that takes profiles, or refuses it whole,
    /// with the same admission rules as [`Pipeline::submit`]. Returns how many
    /// exporters took it (0 when none takes profiles: check [`Pipeline::takes_profiles`]).
    ///
    /// # Errors
    /// [`Refused`] when a `refuse` queue has no room, or after [`Pipeline::close`].
    pub fn submit_profiles(&self, block: ProfileBlock) -> Result<usize, Refused> {
        self.admit_profiles(block).map(|(n, _)| n)
    }

    /// [`Pipeline::submit_profiles`], then waits until every persistent queue that took
    /// the request has it on disk.
    ///
    /// # Errors
    /// As [`Pipeline::submit_profiles`], and [`Refused::Storage`] when a write failed.
    pub async fn submit_profiles_durable(&self, block: ProfileBlock) -> Result<usize, Refused> {
        let (n, durable) = self.admit_profiles(block)?;
        durable.wait().await?;
        Ok(n)
    }

    fn admit_profiles(&self, block: ProfileBlock) -> Result<(usize, persist::Durability), Refused> {
        let mut durable = persist::Durability::default();
        if self.closed.load(Ordering::Acquire) {
            return Err(Refused::ShuttingDown);
        }
        if block.profile_count == 0 {
            return Ok((0, durable));
        }
        let mut reserved = Vec::new();
        let bytes = crate::memory::weigh::profiles(&block.request);
        for q in self.queues.iter().filter(|q| q.profiles) {
            match q.stats.try_reserve(block.sample_count, bytes) {
                Ok(permit) => reserved.push((q, permit)),
                Err(TryAcquireError::NoPermits) if q.on_full == OnFull::Drop => {
                    q.stats
                        .profiles_dropped_full
                        .increment(block.profile_count as u64);
                }
                Err(TryAcquireError::NoPermits) => {
                    return Err(Refused::QueueFull {
                        exporter: q.stats.name.clone(),
                    });
                }
                Err(TryAcquireError::Closed) => return Err(Refused::ShuttingDown),
            }
        }
        let n = block.profile_count as u64;
        let shared = Arc::new(block);
        let mut staged = Vec::with_capacity(reserved.len());
        for (q, permit) in reserved {
            let payload = Payload::Profiles(Arc::clone(&shared));
            match persist::stage(q, &payload)? {
                persist::Stage::Memory => staged.push((q, payload, permit, None)),
                persist::Stage::Disk(d) => staged.push((q, payload, permit, Some(d))),
                persist::Stage::Dropped => {}
            }
        }
        let received = Instant::now();
        let taken = staged.len();
        for (q, payload, permit, disk) in staged {
            let item = Item {
                payload,
                permit,
                received,
                seq: None,
            };
            if let Some(disk) = disk {
                durable.push(disk.commit(item));
            } else if q.tx.send(item).is_err() {
                q.stats.profiles_dropped_shutdown.increment(n);
            }
            q.stats.update_gauge();
        }
        Ok((taken, durable))
    }

    /// Refuses every later block. Workers drain what is queued once told to stop.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// Every exporter's live numbers, in config order.
    #[must_use]
    pub fn stats(&self) -> Vec<Arc<ExporterStats>> {
        self.queues.iter().map(|q| Arc::clone(&q.stats)).collect()
    }

    /// Bytes held in all queues (a block shared by several exporters counts in each).
    #[must_use]
    pub fn queued_bytes(&self) -> usize {
        self.queues.iter().map(|q| q.stats.queued_bytes()).sum()
    }

    /// How many exporters the pipeline feeds.
    #[must_use]
    pub fn exporter_count(&self) -> usize {
        self.queues.len()
    }
}

#[cfg(test)]
mod tests;
