//! Start-up: reads every segment of a queue directory, skips (counts, logs) damaged
//! regions, drops what was acknowledged, and lists what must be replayed.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use metrics::Counter;

use super::record::{scan, scan_acks};
use super::writer::{Segment, acks_path, segment_path};

/// A record to replay: where its payload is.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pending {
    pub seq: u64,
    /// The first seq (the name) of its segment.
    pub segment: u64,
    pub offset: u64,
    pub payload_len: u32,
}

pub(super) struct Recovered {
    pub segments: BTreeMap<u64, Segment>,
    pub pending: Vec<Pending>,
    pub next_seq: u64,
    /// Bytes of the segments kept.
    pub used: u64,
}

fn segment_name(name: &str) -> Option<u64> {
    name.strip_prefix("seg-")?
        .strip_suffix(".log")?
        .parse()
        .ok()
}

/// Reads the queue in `dir`. Only an unreadable directory is an error; a damaged or
/// unreadable segment is logged, counted in `damaged` and skipped.
pub(super) fn recover(dir: &Path, exporter: &str, damaged: &Counter) -> std::io::Result<Recovered> {
    let mut firsts: Vec<u64> = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(first) = entry.file_name().to_str().and_then(segment_name) {
            firsts.push(first);
        }
    }
    firsts.sort_unstable();
    let mut out = Recovered {
        segments: BTreeMap::new(),
        pending: Vec::new(),
        next_seq: 1,
        used: 0,
    };
    for first in firsts {
        let path = segment_path(dir, first);
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(exporter, file = %path.display(), error = %e,
                    "persistent queue: cannot read a segment; it is skipped and left in place");
                damaged.increment(1);
                continue;
            }
        };
        let s = scan(&data);
        for d in &s.damage {
            tracing::warn!(exporter, file = %path.display(), offset = d.offset, bytes = d.bytes,
                records = d.records, "persistent queue: damaged records skipped");
            damaged.increment(d.records);
        }
        let acked: HashSet<u64> = match std::fs::read(acks_path(dir, first)) {
            Ok(a) => {
                let (seqs, bad) = scan_acks(&a);
                if bad > 0 {
                    tracing::warn!(exporter, file = %path.display(), regions = bad,
                        "persistent queue: damaged acknowledgements skipped (those records are sent again)");
                }
                seqs.into_iter().collect()
            }
            Err(_) => HashSet::new(),
        };
        let mut live = 0;
        for r in &s.records {
            out.next_seq = out.next_seq.max(r.seq + 1);
            if !acked.contains(&r.seq) {
                live += 1;
                out.pending.push(Pending {
                    seq: r.seq,
                    segment: first,
                    offset: r.offset,
                    payload_len: r.payload_len,
                });
            }
        }
        out.next_seq = out.next_seq.max(first + 1);
        if live == 0 {
            let _ = std::fs::remove_file(acks_path(dir, first));
            let _ = std::fs::remove_file(&path);
            continue;
        }
        out.used += data.len() as u64;
        out.segments.insert(
            first,
            Segment {
                bytes: data.len() as u64,
                live,
                sealed: true,
                acks: None,
            },
        );
    }
    Ok(out)
}
