//! The writer thread of one persistent queue: group commit of appends, acknowledgements,
//! segment roll-over and deletion. It owns every file of the queue but the LOCK.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use super::record::{encode_acks, encode_record};
use super::{Item, Refused, Shared, SyncPolicy};

/// Appends taken into one group at most (the rest wait for the next sync).
const MAX_GROUP: usize = 4096;

pub(super) enum Msg {
    Append(Append),
    Ack(Vec<u64>),
    Stop,
}

pub(super) struct Append {
    pub payload: Vec<u8>,
    /// Bytes reserved for the record (header included).
    pub size: u64,
    pub item: Item,
    pub done: oneshot::Sender<Result<(), Refused>>,
}

/// A segment file and its acknowledgements.
pub(super) struct Segment {
    pub bytes: u64,
    /// Records written and not yet acknowledged.
    pub live: u64,
    /// No more records will be appended.
    pub sealed: bool,
    pub acks: Option<File>,
}

pub(super) fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("seg-{first:020}.log"))
}

pub(super) fn acks_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("seg-{first:020}.acks"))
}

pub(super) struct Writer {
    dir: PathBuf,
    policy: SyncPolicy,
    segment_limit: u64,
    shared: Arc<Shared>,
    queue: mpsc::UnboundedSender<Item>,
    segments: BTreeMap<u64, Segment>,
    /// The segment being appended to: its first seq and file.
    active: Option<(u64, File)>,
    next_seq: u64,
    dirty: bool,
    last_sync: Instant,
    buf: Vec<u8>,
}

impl Writer {
    pub(super) fn new(
        dir: PathBuf,
        policy: SyncPolicy,
        segment_limit: u64,
        shared: Arc<Shared>,
        queue: mpsc::UnboundedSender<Item>,
        segments: BTreeMap<u64, Segment>,
        next_seq: u64,
    ) -> Self {
        Self {
            dir,
            policy,
            segment_limit,
            shared,
            queue,
            segments,
            active: None,
            next_seq,
            dirty: false,
            last_sync: Instant::now(),
            buf: Vec::new(),
        }
    }

    pub(super) fn run(mut self, rx: &Receiver<Msg>) {
        loop {
            let first = match self.policy {
                SyncPolicy::Interval(every) if self.dirty => {
                    let wait = every.saturating_sub(self.last_sync.elapsed());
                    match rx.recv_timeout(wait) {
                        Ok(m) => Some(m),
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => Some(Msg::Stop),
                    }
                }
                _ => Some(rx.recv().unwrap_or(Msg::Stop)),
            };
            let mut appends = Vec::new();
            let mut acks = Vec::new();
            let mut stop = false;
            let mut take = |m: Msg, appends: &mut Vec<Append>| match m {
                Msg::Append(a) => appends.push(a),
                Msg::Ack(s) => acks.extend(s),
                Msg::Stop => stop = true,
            };
            if let Some(m) = first {
                take(m, &mut appends);
                while appends.len() < MAX_GROUP {
                    match rx.try_recv() {
                        Ok(m) => take(m, &mut appends),
                        Err(_) => break,
                    }
                }
            }
            if !appends.is_empty() {
                self.write_group(appends);
            }
            if !acks.is_empty() {
                self.apply_acks(acks);
            }
            if let SyncPolicy::Interval(every) = self.policy
                && self.dirty
                && self.last_sync.elapsed() >= every
            {
                self.sync_all();
            }
            if stop {
                self.sync_all();
                tracing::debug!(exporter = %self.shared.name, "persistent queue writer stopped");
                return;
            }
        }
    }

    fn open_segment(&mut self) -> std::io::Result<()> {
        let first = self.next_seq;
        let file = File::options()
            .create_new(true)
            .append(true)
            .open(segment_path(&self.dir, first))?;
        if self.policy == SyncPolicy::Always {
            // The new name must survive a power loss too.
            File::open(&self.dir)?.sync_all()?;
        }
        self.segments.insert(
            first,
            Segment {
                bytes: 0,
                live: 0,
                sealed: false,
                acks: None,
            },
        );
        self.active = Some((first, file));
        Ok(())
    }

    fn write_group(&mut self, appends: Vec<Append>) {
        if self.active.is_none()
            && let Err(e) = self.open_segment()
        {
            self.fail(appends, &e);
            return;
        }
        let Some((first_seg, file)) = self.active.as_mut() else {
            return;
        };
        let first_seg = *first_seg;
        let first_seq = self.next_seq;
        self.buf.clear();
        for a in &appends {
            encode_record(self.next_seq, &a.payload, &mut self.buf);
            self.next_seq += 1;
        }
        let written = file.write_all(&self.buf).and_then(|()| {
            if self.policy == SyncPolicy::Always {
                let t = Instant::now();
                file.sync_data()?;
                self.shared.sync_duration.record(t.elapsed().as_secs_f64());
                self.shared.syncs.increment(1);
            }
            Ok(())
        });
        let Some(seg) = self.segments.get_mut(&first_seg) else {
            return;
        };
        if let Err(e) = written {
            // Nothing of this group may be replayed: cut it off, and start the next
            // group in a new segment (its seqs stay consecutive per segment).
            let _ = file.set_len(seg.bytes);
            self.fail(appends, &e);
            self.seal();
            return;
        }
        seg.bytes += self.buf.len() as u64;
        seg.live += appends.len() as u64;
        self.dirty = self.policy != SyncPolicy::Always;
        self.shared.records_written.increment(appends.len() as u64);
        for (i, a) in appends.into_iter().enumerate() {
            let mut item = a.item;
            item.seq = Some((Arc::clone(&self.shared), first_seq + i as u64));
            // A closed queue (shutting down) leaves the record for the next start.
            let _ = self.queue.send(item);
            let _ = a.done.send(Ok(()));
        }
        if seg.bytes >= self.segment_limit {
            self.seal();
        }
    }

    fn fail(&mut self, appends: Vec<Append>, error: &std::io::Error) {
        self.shared.write_errors.increment(1);
        tracing::error!(exporter = %self.shared.name, error = %error, requests = appends.len(),
            "persistent queue: write failed; requests refused with retry-later");
        let message = format!("cannot write the persistent queue: {error}");
        for a in appends {
            self.shared.unreserve(a.size);
            let _ = a.done.send(Err(Refused::Storage {
                exporter: self.shared.name.clone(),
                message: message.clone(),
            }));
        }
    }

    /// Closes the active segment to appends (deleting it if nothing in it is live).
    fn seal(&mut self) {
        let Some((first, file)) = self.active.take() else {
            return;
        };
        if self.policy != SyncPolicy::Always {
            let _ = file.sync_data();
        }
        if let Some(seg) = self.segments.get_mut(&first) {
            seg.sealed = true;
            if seg.live == 0 {
                self.delete(first);
            }
        }
    }

    fn apply_acks(&mut self, mut seqs: Vec<u64>) {
        seqs.sort_unstable();
        let mut at = 0;
        while at < seqs.len() {
            let seq = seqs[at];
            let Some((&first, _)) = self.segments.range(..=seq).next_back() else {
                at += 1;
                continue;
            };
            let end = self
                .segments
                .range(first + 1..)
                .next()
                .map_or(u64::MAX, |(k, _)| *k);
            let n = seqs[at..].iter().take_while(|s| **s < end).count();
            self.ack_segment(first, &seqs[at..at + n]);
            at += n;
        }
    }

    fn ack_segment(&mut self, first: u64, seqs: &[u64]) {
        let dir = self.dir.clone();
        let Some(seg) = self.segments.get_mut(&first) else {
            return;
        };
        seg.live = seg.live.saturating_sub(seqs.len() as u64);
        if seg.sealed && seg.live == 0 {
            self.delete(first);
            return;
        }
        if seg.acks.is_none() {
            match File::options()
                .create(true)
                .append(true)
                .open(acks_path(&dir, first))
            {
                Ok(f) => seg.acks = Some(f),
                Err(e) => {
                    tracing::warn!(exporter = %self.shared.name, error = %e,
                        "persistent queue: cannot record acknowledgements (they will be sent again after a restart)");
                    return;
                }
            }
        }
        let mut buf = Vec::with_capacity(12 + seqs.len() * 8);
        encode_acks(seqs, &mut buf);
        if let Some(f) = seg.acks.as_mut()
            && let Err(e) = f.write_all(&buf)
        {
            tracing::warn!(exporter = %self.shared.name, error = %e,
                "persistent queue: cannot record acknowledgements (they will be sent again after a restart)");
        }
        self.dirty = true;
    }

    fn delete(&mut self, first: u64) {
        let Some(seg) = self.segments.remove(&first) else {
            return;
        };
        drop(seg.acks);
        let _ = std::fs::remove_file(acks_path(&self.dir, first));
        if let Err(e) = std::fs::remove_file(segment_path(&self.dir, first)) {
            tracing::warn!(exporter = %self.shared.name, error = %e, "persistent queue: cannot delete a delivered segment");
        }
        self.shared.used.fetch_sub(seg.bytes, Ordering::AcqRel);
        self.shared.update_gauge();
    }

    fn sync_all(&mut self) {
        let t = Instant::now();
        if let Some((_, f)) = &self.active {
            let _ = f.sync_data();
        }
        for seg in self.segments.values() {
            if let Some(a) = &seg.acks {
                let _ = a.sync_data();
            }
        }
        self.shared.syncs.increment(1);
        self.shared.sync_duration.record(t.elapsed().as_secs_f64());
        self.dirty = false;
        self.last_sync = Instant::now();
    }
}
