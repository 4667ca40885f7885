//! An in-memory [`BackingStore`] with Redis's semantics for the commands the bridge
//! uses (GET/SET, and the hand-off's offer, claim and withdraw, each atomic), and a
//! `pump` that runs one round trip of a cache's queue through it, for tests of
//! several instances sharing one store without a server.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use super::handoff::HandoffOp;
use super::{BackingStore, MapName, Op, Reply, StoreError};
use crate::ids::MappingCache;

/// A hash's fields in insertion order.
type Fields = Vec<(Box<[u8]>, Box<[u8]>)>;

#[derive(Default)]
struct State {
    kv: HashMap<(MapName, Box<[u8]>), Vec<u8>>,
    /// Hash key → fields in insertion order.
    hashes: HashMap<Box<[u8]>, Fields>,
    down: bool,
}

/// The store.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    /// Every round trip fails while `down`.
    pub fn set_down(&self, down: bool) {
        self.state.lock().expect("lock").down = down;
    }

    /// Offers (hash fields) held now.
    pub fn offers(&self) -> usize {
        self.state
            .lock()
            .expect("lock")
            .hashes
            .values()
            .map(Vec::len)
            .sum()
    }

    /// Runs one round trip of `cache`'s queue (everything queued) through this store.
    pub fn pump(&self, cache: &MappingCache) {
        let Some(queue) = cache.store_queue() else {
            return;
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        while !queue.is_empty() {
            let ops = queue.take_batch();
            rt.block_on(super::worker::round_trip(
                self,
                ops,
                queue,
                cache,
                Duration::from_secs(1),
            ));
            if self.state.lock().expect("lock").down {
                break;
            }
        }
    }

    fn run(st: &mut State, op: &Op) -> Reply {
        match op {
            Op::Get { map, key } => st
                .kv
                .get(&(*map, key.clone()))
                .map_or(Reply::NotFound, |v| Reply::Found(v.clone())),
            Op::Set {
                map, key, value, ..
            } => {
                st.kv.insert((*map, key.clone()), value.to_vec());
                Reply::Stored
            }
            Op::Handoff(r) => {
                let fields = st.hashes.entry(r.key.clone()).or_default();
                match &r.op {
                    HandoffOp::Offer { field, value, .. } => {
                        fields.retain(|(f, _)| f != field);
                        fields.push((field.clone(), value.clone()));
                        Reply::Int(1)
                    }
                    HandoffOp::Claim { instance, parents } => {
                        let mut out = Vec::new();
                        fields.retain(|(f, v)| {
                            let take = parents.iter().any(|p| f.starts_with(p))
                                && f.get(8..16) != Some(&instance[..]);
                            if take {
                                out.push(v.to_vec());
                            }
                            !take
                        });
                        Reply::Values(out)
                    }
                    HandoffOp::Withdraw { field } => {
                        let before = fields.len();
                        fields.retain(|(f, _)| f != field);
                        Reply::Int(i64::from(fields.len() < before))
                    }
                }
            }
        }
    }
}

impl BackingStore for MemoryStore {
    async fn round_trip(&self, ops: &[Op]) -> Result<Vec<Reply>, StoreError> {
        let mut st = self.state.lock().expect("lock");
        if st.down {
            return Err(StoreError::Connection("down".to_owned()));
        }
        Ok(ops.iter().map(|op| Self::run(&mut st, op)).collect())
    }

    fn describe(&self) -> String {
        "memory".to_owned()
    }
}
