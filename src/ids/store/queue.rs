//! Owns the hand-off between the data path and the shared tier: a bounded queue of
//! lookups and writes ([`StoreQueue`]) that the cache fills without waiting (one short
//! lock, no I/O) and the store worker drains one batch per round trip.
//!
//! - Writes are coalesced by key: a second write of a queued key replaces its value.
//! - Lookups are throttled by key: a key asked within `lookup_interval` (queued, in
//!   flight, or answered "not there") is not asked again, so a trace that waits for its
//!   caller costs one lookup per interval, not one per rescan.
//! - Everything is bounded by `max_queued`; beyond it new lookups and writes are dropped
//!   and counted (the local tier still has them).
//! - Writes of a failed round trip are queued again (unless newer ones replaced them,
//!   their key expired, or there is no room), so mappings learned while the store was
//!   down reach it when it returns.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::stats::{OpOutcome, StoreCounters, StoreStats};
use super::{MapName, Op};

/// A queued write.
struct Write {
    value: Box<[u8]>,
    since: Instant,
}

#[derive(Default)]
struct State {
    lookups: VecDeque<(MapName, Box<[u8]>)>,
    writes: HashMap<(MapName, Box<[u8]>), Write>,
}

impl State {
    fn len(&self) -> usize {
        self.lookups.len() + self.writes.len()
    }
}

/// Bounds of the queue.
#[derive(Debug, Clone, Copy)]
pub struct QueueLimits {
    /// Most lookups and writes waiting.
    pub max_queued: usize,
    /// Most commands handed out per batch.
    pub max_batch: usize,
    /// A key is asked at most this often.
    pub lookup_interval: Duration,
    /// Writes older than this are not sent again after a failure.
    pub ttl: Duration,
}

/// The bounded, coalescing queue between the cache and the store worker.
pub struct StoreQueue {
    state: Mutex<State>,
    /// Keys (map byte + encoded key) asked recently.
    asked: moka::sync::Cache<Box<[u8]>, ()>,
    limits: QueueLimits,
    pub(crate) counters: StoreCounters,
}

fn asked_key(map: MapName, key: &[u8]) -> Box<[u8]> {
    let mut k = Vec::with_capacity(key.len() + 1);
    k.push(map.index() as u8);
    k.extend_from_slice(key);
    k.into_boxed_slice()
}

impl StoreQueue {
    /// An empty queue. Registers the `bridge_id_store_*` metrics.
    pub fn new(limits: QueueLimits) -> Self {
        Self {
            state: Mutex::new(State::default()),
            asked: moka::sync::Cache::builder()
                .max_capacity(limits.max_queued as u64)
                .time_to_live(limits.lookup_interval)
                .build(),
            limits,
            counters: StoreCounters::new(),
        }
    }

    /// Asks the store for `key` unless it was asked within `lookup_interval`. Never waits.
    pub fn lookup(&self, map: MapName, key: Vec<u8>) {
        let probe = asked_key(map, &key);
        if self.asked.contains_key(&probe) {
            return;
        }
        self.asked.insert(probe, ());
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        if st.len() >= self.limits.max_queued {
            drop(st);
            self.counters.op(map, OpOutcome::Dropped);
            return;
        }
        st.lookups.push_back((map, key.into_boxed_slice()));
    }

    /// Queues a write of `key`, replacing a queued write of the same key. Never waits.
    pub fn write(&self, map: MapName, key: Vec<u8>, value: Vec<u8>) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        let full = st.len() >= self.limits.max_queued;
        let write = Write {
            value: value.into_boxed_slice(),
            since: Instant::now(),
        };
        let key = (map, key.into_boxed_slice());
        let outcome = if let Some(queued) = st.writes.get_mut(&key) {
            *queued = write;
            OpOutcome::Coalesced
        } else if full {
            OpOutcome::Dropped
        } else {
            st.writes.insert(key, write);
            return;
        };
        drop(st);
        self.counters.op(map, outcome);
    }

    /// Forgets which keys were asked recently, so the next miss of each asks again
    /// (used at shutdown, for a last look before held segments are flushed).
    pub fn reset_throttle(&self) {
        self.asked.invalidate_all();
    }

    /// Lookups and writes waiting.
    pub fn len(&self) -> usize {
        self.state.lock().map_or(0, |s| s.len())
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes up to `max_batch` commands: writes first, but at least half the batch for
    /// lookups when both wait, so neither starves the other.
    pub fn take_batch(&self) -> Vec<Op> {
        let Ok(mut st) = self.state.lock() else {
            return Vec::new();
        };
        let max = self.limits.max_batch;
        let lookups = st
            .lookups
            .len()
            .min(max.div_ceil(2).max(max - st.writes.len().min(max)));
        let n_writes = st.writes.len().min(max - lookups);
        let mut ops = Vec::with_capacity(n_writes + lookups);
        if n_writes == st.writes.len() {
            for ((map, key), w) in st.writes.drain() {
                ops.push(Op::Set {
                    map,
                    key,
                    value: w.value,
                    since: w.since,
                });
            }
        } else {
            let keys: Vec<_> = st.writes.keys().take(n_writes).cloned().collect();
            for k in keys {
                if let Some(w) = st.writes.remove(&k) {
                    ops.push(Op::Set {
                        map: k.0,
                        key: k.1,
                        value: w.value,
                        since: w.since,
                    });
                }
            }
        }
        for (map, key) in st.lookups.drain(..lookups) {
            ops.push(Op::Get { map, key });
        }
        self.counters.set_queued(st.len());
        ops
    }

    /// Queues the writes of a failed round trip again, where a newer write did not
    /// replace them, their key has not expired, and there is room. Lookups are not
    /// queued again: the next local miss after `lookup_interval` asks anew.
    pub fn requeue_writes(&self, ops: Vec<Op>) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        let now = Instant::now();
        for op in ops {
            let Op::Set {
                map,
                key,
                value,
                since,
            } = op
            else {
                continue;
            };
            if now.duration_since(since) >= self.limits.ttl {
                continue;
            }
            if st.len() >= self.limits.max_queued {
                self.counters.op(map, OpOutcome::Dropped);
                continue;
            }
            st.writes
                .entry((map, key))
                .or_insert(Write { value, since });
        }
        self.counters.set_queued(st.len());
    }

    /// The counters now.
    pub fn stats(&self) -> StoreStats {
        self.counters.snapshot(self.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(max_queued: usize, max_batch: usize) -> StoreQueue {
        StoreQueue::new(QueueLimits {
            max_queued,
            max_batch,
            lookup_interval: Duration::from_secs(60),
            ttl: Duration::from_secs(60),
        })
    }

    fn sets(ops: &[Op]) -> usize {
        ops.iter().filter(|o| matches!(o, Op::Set { .. })).count()
    }

    #[test]
    fn writes_coalesce_lookups_are_throttled_and_the_queue_is_bounded() {
        let q = queue(4, 10);
        q.write(MapName::Caller, vec![1], vec![10]);
        q.write(MapName::Caller, vec![1], vec![11]);
        q.write(MapName::Txid, vec![1], vec![12]);
        q.lookup(MapName::Caller, vec![2]);
        q.lookup(MapName::Caller, vec![2]);
        assert_eq!(q.len(), 3);
        q.lookup(MapName::Caller, vec![3]);
        q.lookup(MapName::Caller, vec![4]);
        q.write(MapName::Caller, vec![5], vec![1]);
        let s = q.stats();
        assert_eq!((s.coalesced, s.dropped, s.queued), (1, 2, 4));

        let ops = q.take_batch();
        assert_eq!(ops.len(), 4);
        assert!(ops.iter().any(|o| matches!(o,
            Op::Set { map: MapName::Caller, key, value, .. } if **key == [1] && **value == [11])));
        assert!(q.is_empty());
        // Asked recently: not asked again, even though the queue is empty now.
        q.lookup(MapName::Caller, vec![2]);
        assert!(q.is_empty());
        // Same bytes in another map are another key.
        q.lookup(MapName::Txid, vec![2]);
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn batches_are_bounded_and_share_room_between_writes_and_lookups() {
        let q = queue(1000, 10);
        for i in 0..30u8 {
            q.write(MapName::Caller, vec![i], vec![i]);
            q.lookup(MapName::Caller, vec![i]);
        }
        let ops = q.take_batch();
        assert_eq!((ops.len(), sets(&ops)), (10, 5));
        let mut total = ops.len();
        while !q.is_empty() {
            let ops = q.take_batch();
            assert!(ops.len() <= 10);
            total += ops.len();
        }
        assert_eq!(total, 60);

        for i in 0..30u8 {
            q.write(MapName::Caller, vec![i], vec![i]);
        }
        q.lookup(MapName::Caller, vec![200]);
        let ops = q.take_batch();
        assert_eq!(
            (ops.len(), sets(&ops)),
            (10, 9),
            "writes fill what lookups leave"
        );
    }

    #[test]
    fn failed_writes_come_back_unless_replaced_or_expired() {
        let q = StoreQueue::new(QueueLimits {
            max_queued: 100,
            max_batch: 100,
            lookup_interval: Duration::from_secs(60),
            ttl: Duration::from_millis(50),
        });
        q.write(MapName::Caller, vec![1], vec![1]);
        q.write(MapName::Caller, vec![2], vec![2]);
        q.lookup(MapName::Caller, vec![3]);
        let ops = q.take_batch();
        q.write(MapName::Caller, vec![2], vec![22]);
        q.requeue_writes(ops);
        let again = q.take_batch();
        assert_eq!(again.len(), 2, "two writes back, the lookup not");
        assert!(again.iter().any(|o| matches!(o,
            Op::Set { key, value, .. } if **key == [2] && **value == [22])));
        std::thread::sleep(Duration::from_millis(60));
        q.requeue_writes(again);
        assert!(q.is_empty(), "expired writes are not sent again");
    }
}
