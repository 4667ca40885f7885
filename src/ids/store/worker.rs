//! Owns the store worker: the one background task that drains the [`StoreQueue`] into
//! pipelined round trips (at most one launch per `flush_interval` unless a batch is
//! full, at most `max_in_flight` at once, each bounded by `timeout`), writes what it
//! finds into the local tier, counts everything, and backs off after failures
//! (100 ms doubling to 2 s) so a dead store costs one attempt per backoff, not one per
//! span. The data path never waits for it.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use super::queue::StoreQueue;
use super::stats::{ErrorKind, OpOutcome, TripOutcome};
use super::{BackingStore, LocalTier, Op, Reply};

/// Timing and bounds of the worker.
#[derive(Debug, Clone, Copy)]
pub struct WorkerConfig {
    /// Longest wait for one round trip.
    pub timeout: Duration,
    /// How long queued commands wait to share a round trip.
    pub flush_interval: Duration,
    /// Most round trips in flight.
    pub max_in_flight: usize,
    /// A batch this full is sent without waiting for `flush_interval`.
    pub max_batch: usize,
}

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Starts the worker; it stops when `stop` completes (round trips in flight are
/// abandoned: the store is a hint, and the local tier already has every write).
pub fn spawn<S: BackingStore>(
    store: S,
    queue: Arc<StoreQueue>,
    tier: Arc<dyn LocalTier>,
    cfg: WorkerConfig,
    stop: impl Future<Output = ()> + Send + 'static,
) -> JoinHandle<()> {
    tokio::spawn(run(Arc::new(store), queue, tier, cfg, stop))
}

async fn run<S: BackingStore>(
    store: Arc<S>,
    queue: Arc<StoreQueue>,
    tier: Arc<dyn LocalTier>,
    cfg: WorkerConfig,
    stop: impl Future<Output = ()> + Send + 'static,
) {
    tokio::pin!(stop);
    let mut running: JoinSet<bool> = JoinSet::new();
    let mut backoff = Duration::ZERO;
    let mut retry_at = Instant::now();
    let mut last_launch = Instant::now() - cfg.flush_interval;
    let mut was_up = true;
    loop {
        let now = Instant::now();
        while running.len() < cfg.max_in_flight.max(1) && now >= retry_at {
            let waiting = queue.len();
            let due = now >= last_launch + cfg.flush_interval;
            if waiting == 0 || !(due || waiting >= cfg.max_batch) {
                break;
            }
            let ops = queue.take_batch();
            last_launch = now;
            let (store, queue, tier) = (Arc::clone(&store), Arc::clone(&queue), Arc::clone(&tier));
            running
                .spawn(async move { round_trip(&*store, ops, &queue, &*tier, cfg.timeout).await });
        }
        let wake = if now < retry_at {
            retry_at
        } else {
            now + cfg.flush_interval
        };
        tokio::select! {
            biased;
            () = &mut stop => break,
            Some(done) = running.join_next(), if !running.is_empty() => {
                let ok = done.unwrap_or(false);
                if ok {
                    backoff = Duration::ZERO;
                    if !was_up {
                        tracing::info!(store = %store.describe(), "shared id store reachable again");
                    }
                } else {
                    backoff = (backoff * 2).clamp(MIN_BACKOFF, MAX_BACKOFF);
                    retry_at = Instant::now() + backoff;
                    if was_up {
                        tracing::warn!(store = %store.describe(), "shared id store unreachable; resolving locally and retrying with backoff");
                    }
                }
                was_up = ok;
            }
            () = tokio::time::sleep_until(wake) => {}
        }
    }
    running.shutdown().await;
}

/// One pipelined round trip; true when the store answered.
async fn round_trip<S: BackingStore>(
    store: &S,
    ops: Vec<Op>,
    queue: &StoreQueue,
    tier: &dyn LocalTier,
    timeout: Duration,
) -> bool {
    let started = Instant::now();
    let result = tokio::time::timeout(timeout, store.round_trip(&ops)).await;
    let took = started.elapsed();
    let c = &queue.counters;
    let replies = match result {
        Err(_) => {
            c.trip(TripOutcome::Timeout, took);
            c.error(ErrorKind::Timeout);
            queue.requeue_writes(ops);
            return false;
        }
        Ok(Err(e)) => {
            c.trip(TripOutcome::Error, took);
            c.error(ErrorKind::Connection);
            tracing::debug!(error = %e, "shared id store round trip failed");
            queue.requeue_writes(ops);
            return false;
        }
        Ok(Ok(replies)) => replies,
    };
    c.trip(TripOutcome::Ok, took);
    let mut replies = replies.into_iter();
    for op in &ops {
        let reply = replies
            .next()
            .unwrap_or(Reply::Failed("no reply".to_owned()));
        match (op, reply) {
            (Op::Get { map, key }, Reply::Found(value)) => {
                if tier.fill(*map, key, &value) {
                    c.op(*map, OpOutcome::Hit);
                } else {
                    c.error(ErrorKind::Malformed);
                }
            }
            (Op::Get { map, .. }, Reply::NotFound) => c.op(*map, OpOutcome::Miss),
            (Op::Set { map, .. }, Reply::Stored) => c.op(*map, OpOutcome::Written),
            (Op::Get { map, .. } | Op::Set { map, .. }, Reply::Failed(msg)) => {
                c.op(*map, OpOutcome::Failed);
                c.error(ErrorKind::Server);
                tracing::debug!(error = %msg, "shared id store refused a command");
            }
            (op, _) => {
                c.op(op.map(), OpOutcome::Failed);
                c.error(ErrorKind::Server);
            }
        }
    }
    true
}
