//! The persistent queue: an exporter's queue whose items are written to disk before
//! the sender hears "accepted", and deleted only once delivered or given up.
//!
//! It is a mirror of the in-memory queue, not a second queue: admission reserves room
//! in the span semaphore *and* bytes on disk (`max_bytes`), encodes the item (protobuf,
//! [`record::Stored`]) and hands it to the queue's writer thread ([`writer`]). The
//! writer appends every item waiting at that moment to the active segment, syncs once
//! for all of them (group commit, per [`SyncPolicy`]), then forwards each item to the
//! worker and tells its sender it is durable. The receiver answers only then.
//!
//! Each batch carries a [`Hold`] over its records; when every hold is released (the
//! batch was exported or given up, and any spans an exporter kept were sent), the
//! records are acknowledged in the segment's `.acks` file. A sealed segment whose
//! records are all acknowledged is deleted. On start ([`recover`]), every record that
//! is intact and not acknowledged is replayed into the queue ([`replay`]); damaged
//! regions are skipped, counted and logged. Delivery is at least once: a record
//! exported but not yet acknowledged when the process died is sent again (counted as
//! replayed).

mod hold;
pub mod record;
mod recover;
pub(super) mod replay;
mod writer;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc as std_mpsc};
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram};
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};

pub use hold::Hold;
use recover::Pending;
use writer::{Append, Msg, Writer};

use super::{Item, Payload, Queue, Refused};
use crate::config::OnFull;
use crate::selfmetrics as m;

/// `exporters.<name>.queue.persistent:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersistConfig {
    /// The queue's own directory (created if missing; one exporter per directory).
    pub dir: String,
    /// Disk the queue may use at most; a request that does not fit is refused with
    /// "retry later". Default 1GiB.
    #[serde(default = "d_max_bytes", deserialize_with = "de_size")]
    pub max_bytes: u64,
    /// When written items are synced to disk: `always` (default; before the sender
    /// is answered, one sync per group of concurrent requests), a duration such as
    /// `100ms` (at most that often; a crash of the process loses nothing, a power loss
    /// up to that long), or `never` (left to the OS).
    #[serde(default)]
    pub sync: SyncPolicy,
}

fn d_max_bytes() -> u64 {
    1 << 30
}

fn de_size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumOrText {
        Num(u64),
        Text(String),
    }
    match NumOrText::deserialize(d)? {
        NumOrText::Num(n) => Ok(n),
        NumOrText::Text(t) => crate::config::parse_bytes(&t)
            .map(|n| n as u64)
            .map_err(serde::de::Error::custom),
    }
}

impl PersistConfig {
    /// Problems with the values, as `(key, message)`.
    #[must_use]
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut p = Vec::new();
        if self.dir.trim().is_empty() {
            p.push(("dir", "must not be empty".to_owned()));
        }
        if self.max_bytes < 1 << 20 {
            p.push(("max_bytes", "must be at least 1MiB".to_owned()));
        }
        if let SyncPolicy::Interval(d) = self.sync
            && d.is_zero()
        {
            p.push((
                "sync",
                "an interval must be greater than 0 (or use `always`)".to_owned(),
            ));
        }
        p
    }
}

/// See [`PersistConfig::sync`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncPolicy {
    #[default]
    Always,
    Interval(Duration),
    Never,
}

impl<'de> Deserialize<'de> for SyncPolicy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        match text.trim() {
            "always" => Ok(Self::Always),
            "never" => Ok(Self::Never),
            other => crate::config::parse_duration(other)
                .map(Self::Interval)
                .map_err(|e| {
                    serde::de::Error::custom(format!(
                        "expected `always`, `never` or a duration such as `100ms` ({e})"
                    ))
                }),
        }
    }
}

impl SyncPolicy {
    /// The metric and log label.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Always => "always",
            Self::Interval(_) => "interval",
            Self::Never => "never",
        }
    }
}

/// Why a persistent queue could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("exporter `{exporter}`: queue directory `{dir}`: {source}")]
    Io {
        exporter: String,
        dir: String,
        source: std::io::Error,
    },
    #[error(
        "exporter `{exporter}`: queue directory `{dir}` is in use by another process (its LOCK file is locked)"
    )]
    Locked { exporter: String, dir: String },
}

/// What the writer, the holds and admission share.
pub(crate) struct Shared {
    name: String,
    tx: std_mpsc::Sender<Msg>,
    /// Bytes on disk plus bytes reserved by admitted items not yet written.
    used: AtomicU64,
    max_bytes: u64,
    bytes_gauge: Gauge,
    records_written: Counter,
    syncs: Counter,
    sync_duration: Histogram,
    replayed: Counter,
    damaged: Counter,
    write_errors: Counter,
    kept: Counter,
}

impl Shared {
    /// Acknowledges delivered records (never blocks; lost if the writer is gone, which
    /// only means a duplicate after the next start).
    pub(crate) fn ack(&self, seqs: Vec<u64>) {
        let _ = self.tx.send(Msg::Ack(seqs));
    }

    fn reserve(&self, bytes: u64) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                (u + bytes <= self.max_bytes).then_some(u + bytes)
            })
            .is_ok()
    }

    fn unreserve(&self, bytes: u64) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
        self.update_gauge();
    }

    fn update_gauge(&self) {
        self.bytes_gauge
            .set(self.used.load(Ordering::Acquire) as f64);
    }
}

/// One exporter's persistent queue.
pub struct Store {
    shared: Arc<Shared>,
    dir: PathBuf,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    pending: Mutex<Vec<Pending>>,
    _lock: File,
}

impl Store {
    /// Opens (or creates) the queue in `cfg.dir`, recovers what it holds and starts the
    /// writer thread, which forwards written items to `queue`. Damaged records are
    /// skipped, counted and logged; only a directory that cannot be used fails.
    ///
    /// # Errors
    /// [`PersistError`] when the directory cannot be created, read or locked.
    pub(super) fn open(
        name: &str,
        cfg: &PersistConfig,
        queue: mpsc::UnboundedSender<Item>,
    ) -> Result<Self, PersistError> {
        let dir = PathBuf::from(&cfg.dir);
        let io = |source| PersistError::Io {
            exporter: name.to_owned(),
            dir: cfg.dir.clone(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(io)?;
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("LOCK"))
            .map_err(io)?;
        if lock.try_lock().is_err() {
            return Err(PersistError::Locked {
                exporter: name.to_owned(),
                dir: cfg.dir.clone(),
            });
        }
        let label = [("exporter", name.to_owned())];
        let damaged = metrics::counter!(m::PERSIST_DAMAGED_RECORDS, &label);
        let recovered = recover::recover(&dir, name, &damaged).map_err(io)?;
        let (tx, rx) = std_mpsc::channel();
        let shared = Arc::new(Shared {
            name: name.to_owned(),
            tx,
            used: AtomicU64::new(recovered.used),
            max_bytes: cfg.max_bytes,
            bytes_gauge: metrics::gauge!(m::PERSIST_BYTES, &label),
            records_written: metrics::counter!(m::PERSIST_RECORDS_WRITTEN, &label),
            syncs: metrics::counter!(m::PERSIST_SYNCS, &label),
            sync_duration: metrics::histogram!(m::PERSIST_SYNC_DURATION, &label),
            replayed: metrics::counter!(m::PERSIST_REPLAYED_SPANS, &label),
            damaged,
            write_errors: metrics::counter!(m::PERSIST_WRITE_ERRORS, &label),
            kept: metrics::counter!(m::PERSIST_KEPT_SPANS, &label),
        });
        shared.update_gauge();
        metrics::gauge!(m::PERSIST_CAPACITY_BYTES, &label).set(cfg.max_bytes as f64);
        if !recovered.pending.is_empty() {
            tracing::info!(
                exporter = name,
                records = recovered.pending.len(),
                bytes = recovered.used,
                "persistent queue: records from the last run will be replayed"
            );
        }
        let writer = Writer::new(
            dir.clone(),
            cfg.sync,
            (cfg.max_bytes / 8).clamp(1 << 17, 64 << 20),
            Arc::clone(&shared),
            queue,
            recovered.segments,
            recovered.next_seq,
        );
        let thread = std::thread::Builder::new()
            .name(format!("persist-{name}"))
            .spawn(move || writer.run(&rx))
            .map_err(io)?;
        Ok(Self {
            shared,
            dir,
            writer: Mutex::new(Some(thread)),
            pending: Mutex::new(recovered.pending),
            _lock: lock,
        })
    }

    /// The exporter this queue belongs to.
    #[must_use]
    pub fn exporter(&self) -> &str {
        &self.shared.name
    }

    /// The queue's directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes on disk (and reserved for items being written).
    #[must_use]
    pub fn used_bytes(&self) -> u64 {
        self.shared.used.load(Ordering::Acquire)
    }

    /// Counts spans that stay on disk for the next start (shutdown with spans undelivered).
    pub fn count_kept(&self, spans: usize) {
        self.shared.kept.increment(spans as u64);
    }

    /// Stops the writer after it has written, synced and acknowledged everything it was
    /// given. Blocks: call from a blocking context.
    pub fn close(&self) {
        let _ = self.shared.tx.send(Msg::Stop);
        let thread = self.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(t) = thread
            && t.join().is_err()
        {
            tracing::error!(exporter = %self.shared.name, "persistent queue writer panicked");
        }
    }

    fn take_pending(&self) -> Vec<Pending> {
        self.pending
            .lock()
            .map(|mut p| std::mem::take(&mut *p))
            .unwrap_or_default()
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // The writer ends when its channel closes; a store dropped without `close`
        // (tests, a failed start) still leaves consistent files.
        let _ = self.shared.tx.send(Msg::Stop);
    }
}

/// Where an admitted item goes.
pub(super) enum Stage {
    /// An in-memory queue: straight to the worker.
    Memory,
    /// A persistent queue with room: to the writer first.
    Disk(Staged),
    /// A persistent queue without room, configured `on_full: drop` (counted).
    Dropped,
}

/// Encodes `payload` for `queue`'s disk and reserves its room, if the queue is
/// persistent.
///
/// # Errors
/// [`Refused::QueueFull`] when `max_bytes` has no room and the queue refuses when full.
pub(super) fn stage(queue: &Queue, payload: &Payload) -> Result<Stage, Refused> {
    let Some(store) = &queue.store else {
        return Ok(Stage::Memory);
    };
    match Staged::new(store, payload) {
        Ok(s) => Ok(Stage::Disk(s)),
        Err(_) if queue.on_full == OnFull::Drop => {
            let s = &queue.stats;
            match payload {
                Payload::Spans(b) => {
                    s.dropped.fetch_add(b.span_count as u64, Ordering::Relaxed);
                    s.dropped_full.increment(b.span_count as u64);
                }
                Payload::Profiles(p) => s.profiles_dropped_full.increment(p.profile_count as u64),
            }
            Ok(Stage::Dropped)
        }
        Err(e) => Err(e),
    }
}

/// An item encoded for the disk, with its bytes reserved; dropped unused, it gives the
/// bytes back.
pub(super) struct Staged {
    shared: Arc<Shared>,
    payload: Vec<u8>,
    size: u64,
    spent: bool,
}

impl Staged {
    /// Encodes `payload` and reserves its room on disk.
    ///
    /// # Errors
    /// [`Refused::QueueFull`] when `max_bytes` has no room for it.
    pub(super) fn new(store: &Store, payload: &Payload) -> Result<Self, Refused> {
        let bytes = match payload {
            Payload::Spans(b) => record::encode_spans(&b.resource_spans, b.overrides.as_deref()),
            Payload::Profiles(p) => record::encode_profiles(&p.request),
        };
        let size = (record::HEADER + bytes.len()) as u64;
        if !store.shared.reserve(size) {
            return Err(Refused::QueueFull {
                exporter: store.shared.name.clone(),
            });
        }
        store.shared.update_gauge();
        Ok(Self {
            shared: Arc::clone(&store.shared),
            payload: bytes,
            size,
            spent: false,
        })
    }

    /// Hands `item` to the writer; the receiver learns when it is durable.
    pub(super) fn commit(mut self, item: Item) -> oneshot::Receiver<Result<(), Refused>> {
        let (done, rx) = oneshot::channel();
        self.spent = true;
        let append = Append {
            payload: std::mem::take(&mut self.payload),
            size: self.size,
            item,
            done,
        };
        if let Err(std_mpsc::SendError(Msg::Append(a))) = self.shared.tx.send(Msg::Append(append)) {
            self.shared.unreserve(a.size);
            let _ = a.done.send(Err(Refused::ShuttingDown));
        }
        rx
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.spent {
            self.shared.unreserve(self.size);
        }
    }
}

/// What the sender of a request waits for: every persistent queue it went to has it
/// on disk (per its sync policy).
#[derive(Default)]
#[must_use = "the request is durable only once `wait` returns"]
pub struct Durability(Vec<oneshot::Receiver<Result<(), Refused>>>);

impl Durability {
    pub(super) fn push(&mut self, rx: oneshot::Receiver<Result<(), Refused>>) {
        self.0.push(rx);
    }

    /// Waits until every part is written.
    ///
    /// # Errors
    /// [`Refused::Storage`] when a write failed (disk full, I/O error) and
    /// [`Refused::ShuttingDown`] when the writer stopped first: both retryable.
    pub async fn wait(self) -> Result<(), Refused> {
        for rx in self.0 {
            rx.await.unwrap_or(Err(Refused::ShuttingDown))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod seam_tests;
#[cfg(test)]
mod tests;
