//! One exporter's queue room and live numbers: span and KiB semaphores taken together
//! (both or neither), and the counters and gauges the status page and `/metrics` show.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use metrics::{Counter, Gauge};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

/// Room held in one queue: spans (or samples) and KiB.
#[derive(Debug)]
pub(super) struct Room {
    _spans: OwnedSemaphorePermit,
    _kib: OwnedSemaphorePermit,
}

/// Queue room in KiB for `bytes`.
pub(super) fn kib(bytes: usize) -> usize {
    bytes.div_ceil(1024)
}

/// Live numbers of one exporter's queue, shared with the status page.
#[derive(Debug)]
pub struct ExporterStats {
    pub name: String,
    pub kind: &'static str,
    pub capacity: usize,
    pub(super) sem: Arc<Semaphore>,
    /// Capacity in KiB (`queue.max_bytes`).
    pub capacity_kib: usize,
    pub(super) kib_sem: Arc<Semaphore>,
    pub(super) bytes_gauge: Gauge,
    pub sent: AtomicU64,
    pub failed: AtomicU64,
    pub dropped: AtomicU64,
    pub last_error: std::sync::Mutex<Option<String>>,
    pub(super) queue_gauge: Gauge,
    pub(super) sent_counter: Counter,
    pub(super) dropped_full: Counter,
    pub(super) dropped_shutdown: Counter,
    pub(super) profiles_dropped_full: Counter,
    pub(super) profiles_dropped_shutdown: Counter,
}

impl ExporterStats {
    /// Spans queued or in flight.
    #[must_use]
    pub fn queued(&self) -> usize {
        self.capacity.saturating_sub(self.sem.available_permits())
    }

    /// Bytes queued or in flight (as charged, in whole KiB).
    #[must_use]
    pub fn queued_bytes(&self) -> usize {
        self.capacity_kib
            .saturating_sub(self.kib_sem.available_permits())
            * 1024
    }

    pub(super) fn update_gauge(&self) {
        self.queue_gauge.set(self.queued() as f64);
        self.bytes_gauge.set(self.queued_bytes() as f64);
    }

    /// Takes room for `units` spans (or samples) and `bytes`, both or neither. More
    /// than the whole queue is clamped to it (admitted when the queue is empty).
    pub(super) fn try_reserve(&self, units: usize, bytes: usize) -> Result<Room, TryAcquireError> {
        let units = units.clamp(1, self.capacity) as u32;
        let k = kib(bytes).clamp(1, self.capacity_kib) as u32;
        let spans = Arc::clone(&self.sem).try_acquire_many_owned(units)?;
        let kib = Arc::clone(&self.kib_sem).try_acquire_many_owned(k)?;
        Ok(Room {
            _spans: spans,
            _kib: kib,
        })
    }

    /// Like [`ExporterStats::try_reserve`], waiting for room (replay of a persistent
    /// queue). `None` once the queue is closed.
    pub(super) async fn reserve(&self, units: usize, bytes: usize) -> Option<Room> {
        let units = units.clamp(1, self.capacity) as u32;
        let k = kib(bytes).clamp(1, self.capacity_kib) as u32;
        let spans = Arc::clone(&self.sem).acquire_many_owned(units).await.ok()?;
        let kib = Arc::clone(&self.kib_sem).acquire_many_owned(k).await.ok()?;
        Some(Room {
            _spans: spans,
            _kib: kib,
        })
    }

    pub(super) fn record_error(&self, message: &str) {
        if let Ok(mut e) = self.last_error.lock() {
            *e = Some(message.to_owned());
        }
    }
}
