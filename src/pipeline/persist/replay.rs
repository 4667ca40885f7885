//! Replays what the last run persisted and did not deliver, in order, into the queue
//! it belongs to. Replayed items wait for queue room like any other (so replay never
//! holds more than the queue's `max_spans` in memory) and stop at shutdown, leaving
//! the rest on disk.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::sync::Arc;
use std::time::Instant;

use prost::Message as _;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::record::{HEADER, Stored};
use super::writer::segment_path;
use super::{Pending, Store};
use crate::memory::weigh;
use crate::pipeline::{Block, Item, Payload, ProfileBlock, Queue};

/// Starts replaying `queue`'s leftovers; `None` when there are none.
pub(in crate::pipeline) fn start(
    queue: &Queue,
    stop: watch::Receiver<bool>,
) -> Option<JoinHandle<()>> {
    let store = queue.store.as_ref()?;
    let pending = store.take_pending();
    if pending.is_empty() {
        return None;
    }
    let store = Arc::clone(store);
    let tx = queue.tx.clone();
    let stats = Arc::clone(&queue.stats);
    let rt = tokio::runtime::Handle::current();
    Some(tokio::task::spawn_blocking(move || {
        let mut files: HashMap<u64, File> = HashMap::new();
        let (mut records, mut spans) = (0u64, 0u64);
        let total = pending.len();
        for p in pending {
            if *stop.borrow() {
                break;
            }
            let Some(stored) = read(&store, &mut files, p) else {
                continue;
            };
            let (payload, n, bytes) = match stored.profiles {
                Some(request) => {
                    let bytes = weigh::profiles(&request);
                    let block = ProfileBlock::new(request);
                    let n = block.sample_count;
                    (Payload::Profiles(Arc::new(block)), n, bytes)
                }
                None => {
                    let bytes = weigh::resource_spans(&stored.resource_spans);
                    let mut block = Block::new(stored.resource_spans);
                    block.overrides = stored.overrides.map(|o| Arc::new(o.to_route()));
                    spans += block.span_count as u64;
                    let n = block.span_count;
                    (Payload::Spans(Arc::new(block)), n, bytes)
                }
            };
            let mut stop = stop.clone();
            // Room in spans and bytes, like any request (waiting for it, not refused).
            let permit = rt.block_on(async {
                tokio::select! {
                    p = stats.reserve(n, bytes) => p,
                    _ = stop.wait_for(|s| *s) => None,
                }
            });
            let Some(permit) = permit else {
                break;
            };
            if let Payload::Spans(b) = &payload {
                store.shared.replayed.increment(b.span_count as u64);
            }
            let item = Item {
                payload,
                permit,
                received: Instant::now(),
                seq: Some((Arc::clone(&store.shared), p.seq)),
            };
            if tx.send(item).is_err() {
                break;
            }
            stats.update_gauge();
            records += 1;
        }
        tracing::info!(exporter = %stats.name, records, of = total, spans,
            "persistent queue: replay finished (the rest stays on disk)");
    }))
}

/// Reads and decodes one record; a record that cannot be decoded is counted, logged and
/// acknowledged (it will never decode); one that cannot be read stays for the next start.
fn read(store: &Store, files: &mut HashMap<u64, File>, p: Pending) -> Option<Stored> {
    let shared = &store.shared;
    let file = match files.entry(p.segment) {
        std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
        std::collections::hash_map::Entry::Vacant(v) => {
            match File::open(segment_path(store.dir(), p.segment)) {
                Ok(f) => v.insert(f),
                Err(e) => {
                    tracing::error!(exporter = %shared.name, error = %e, "persistent queue: cannot open a segment to replay");
                    return None;
                }
            }
        }
    };
    let mut buf = vec![0; p.payload_len as usize];
    if let Err(e) = file.read_exact_at(&mut buf, p.offset + HEADER as u64) {
        tracing::error!(exporter = %shared.name, error = %e, "persistent queue: cannot read a record to replay");
        return None;
    }
    match Stored::decode(&buf[..]) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(exporter = %shared.name, error = %e, seq = p.seq,
                "persistent queue: a record passed its checksum but does not decode; skipped");
            shared.damaged.increment(1);
            shared.ack(vec![p.seq]);
            None
        }
    }
}
