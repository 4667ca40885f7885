//! [`Hold`]: the token that keeps a batch's records on disk until whoever holds its
//! spans says they are delivered.
//!
//! A batch from a persistent queue starts with one hold, the worker's. An exporter that
//! keeps spans past `export` (Pinpoint's segment assembly) takes another with
//! [`crate::pipeline::Batch::hold`] and calls [`Hold::release`] once those spans are sent.
//! The batch's records are acknowledged (and may be deleted) when every hold has been
//! released. A hold dropped without `release` (a task aborted at shutdown, a crash path)
//! marks the batch abandoned: its records stay on disk and are replayed on the next start.
//! For an in-memory queue every hold is a no-op.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::Shared;

/// See the module docs.
#[must_use = "a hold dropped without `release` keeps its records for replay"]
pub struct Hold {
    inner: Option<Arc<Inner>>,
    released: bool,
}

struct Inner {
    store: Arc<Shared>,
    seqs: Mutex<Vec<u64>>,
    holds: AtomicUsize,
    abandoned: AtomicBool,
}

impl Hold {
    /// A hold on nothing (in-memory queues, batches built outside a queue).
    pub fn none() -> Self {
        Self {
            inner: None,
            released: false,
        }
    }

    /// The first hold of a batch whose records live in `store`.
    pub(crate) fn first(store: Arc<Shared>) -> Self {
        Self {
            inner: Some(Arc::new(Inner {
                store,
                seqs: Mutex::new(Vec::new()),
                holds: AtomicUsize::new(1),
                abandoned: AtomicBool::new(false),
            })),
            released: false,
        }
    }

    /// Whether this hold covers records of `store`.
    pub(crate) fn is_of(&self, store: &Arc<Shared>) -> bool {
        self.inner
            .as_ref()
            .is_some_and(|i| Arc::ptr_eq(&i.store, store))
    }

    /// Adds a record to what this hold (and its siblings) cover.
    pub(crate) fn add(&self, seq: u64) {
        if let Some(i) = &self.inner
            && let Ok(mut s) = i.seqs.lock()
        {
            s.push(seq);
        }
    }

    /// Another hold on the same records.
    pub fn another(&self) -> Self {
        if let Some(i) = &self.inner {
            i.holds.fetch_add(1, Ordering::AcqRel);
        }
        Self {
            inner: self.inner.clone(),
            released: false,
        }
    }

    /// Whether this hold covers any records (false for in-memory queues).
    #[must_use]
    pub fn is_durable(&self) -> bool {
        self.inner.is_some()
    }

    /// The spans this hold covers are delivered (or given up, counted): once every
    /// hold is released, the records are acknowledged.
    pub fn release(mut self) {
        self.released = true;
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        let Some(i) = self.inner.take() else {
            return;
        };
        if !self.released {
            i.abandoned.store(true, Ordering::Release);
        }
        if i.holds.fetch_sub(1, Ordering::AcqRel) == 1 && !i.abandoned.load(Ordering::Acquire) {
            let seqs = i.seqs.lock().map(|mut s| std::mem::take(&mut *s));
            if let Ok(seqs) = seqs
                && !seqs.is_empty()
            {
                i.store.ack(seqs);
            }
        }
    }
}

impl std::fmt::Debug for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hold")
            .field("durable", &self.inner.is_some())
            .finish()
    }
}
