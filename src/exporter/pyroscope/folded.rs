//! Trace-derived flame graphs. Pure: no I/O, time is passed in.
//!
//! Spans are held per trace until the trace settles (no new span for `settle`). Then
//! each service's segments (an entry span and its local descendants) become folded
//! stacks: span names from the entry down, optionally prefixed with the upstream
//! services (`[frontend];[checkout];GET /cart;SELECT`), each weighted by the span's
//! self time in nanoseconds. Stacks are summed per service until the interval is taken.
//!
//! Self time = the span's duration minus the *union* of its local children's intervals,
//! clipped to the span. Parallel children are not subtracted twice, so a segment's self
//! times add up to the entry's duration, and a child outliving its parent cannot make
//! the parent negative.
//!
//! Memory is bounded three ways: held spans (`max_pending_spans`: the oldest traces are
//! folded early), distinct stacks per service per interval (`max_stacks_per_service`:
//! more go to one `[overflow]` stack, counted) and services per interval
//! (`max_services`: more are left out, counted).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span};

/// The stack that collects what did not fit the per-service cap.
pub const OVERFLOW_STACK: &str = "[overflow]";
/// Frames kept per stack; deeper spans are counted at this depth.
const MAX_DEPTH: usize = 128;
/// Longest frame in bytes.
const MAX_FRAME: usize = 256;
/// Interned span names kept before the interner starts afresh.
const MAX_NAMES: usize = 50_000;

const HAS_IS_REMOTE: u32 = 0x100;
const IS_REMOTE: u32 = 0x200;

/// Aggregation settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Resource attributes that become labels, besides `service.name`.
    pub labels_from_resource: Vec<String>,
    /// Prefix stacks with the upstream services when the trace shows them.
    pub upstream_prefix: bool,
    pub max_stacks_per_service: usize,
    pub max_services: usize,
    pub max_pending_spans: usize,
    /// A trace is folded once none of its spans arrived for this long (or it has been
    /// held for three times this long).
    pub settle: Duration,
}

/// Whom a span counts for: its service and the configured resource labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    pub service: String,
    /// `(resource attribute key, value)` in config order; absent attributes left out.
    pub labels: Vec<(String, String)>,
}

/// One service's stacks for one interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceProfile {
    pub key: Arc<ServiceKey>,
    /// `(folded stack, self time in ns)`, sorted by stack.
    pub lines: Vec<(String, u64)>,
}

/// What aggregation did, for metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub folded_spans: u64,
    /// Spans counted under [`OVERFLOW_STACK`].
    pub overflow_spans: u64,
    /// Spans left out because the interval already had `max_services` services.
    pub dropped_spans: u64,
    /// Traces folded before they settled, to stay under `max_pending_spans`.
    pub early_traces: u64,
}

struct SpanRec {
    id: [u8; 8],
    parent: Option<[u8; 8]>,
    remote_parent: bool,
    name: Arc<str>,
    start: u64,
    end: u64,
    service: Arc<ServiceKey>,
}

struct TraceBuf {
    first: Instant,
    last: Instant,
    spans: Vec<SpanRec>,
}

/// Holds spans and sums folded stacks per service.
pub struct Aggregator {
    cfg: Config,
    traces: HashMap<[u8; 16], TraceBuf>,
    pending: usize,
    names: HashSet<Arc<str>>,
    window: HashMap<Arc<ServiceKey>, HashMap<String, u64>>,
    buf: String,
    pub counts: Counts,
}

impl Aggregator {
    #[must_use]
    pub fn new(cfg: Config) -> Self {
        Self {
            cfg,
            traces: HashMap::new(),
            pending: 0,
            names: HashSet::new(),
            window: HashMap::new(),
            buf: String::new(),
            counts: Counts::default(),
        }
    }

    /// Spans held now.
    #[must_use]
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// Takes in the spans of `rs` (invalid ids are skipped: receivers reject them).
    pub fn add(&mut self, rs: &ResourceSpans, now: Instant) {
        let service = Arc::new(service_key(
            rs.resource.as_ref().map_or(&[][..], |r| &r.attributes),
            &self.cfg.labels_from_resource,
        ));
        for span in rs.scope_spans.iter().flat_map(|s| &s.spans) {
            let (Ok(trace), Ok(id)) = (
                <[u8; 16]>::try_from(span.trace_id.as_slice()),
                <[u8; 8]>::try_from(span.span_id.as_slice()),
            ) else {
                continue;
            };
            let rec = SpanRec {
                id,
                parent: <[u8; 8]>::try_from(span.parent_span_id.as_slice()).ok(),
                remote_parent: has_remote_parent(span),
                name: self.intern(&span.name),
                start: span.start_time_unix_nano,
                end: span.end_time_unix_nano.max(span.start_time_unix_nano),
                service: Arc::clone(&service),
            };
            let buf = self.traces.entry(trace).or_insert_with(|| TraceBuf {
                first: now,
                last: now,
                spans: Vec::new(),
            });
            buf.last = now;
            buf.spans.push(rec);
            self.pending += 1;
        }
        if self.pending > self.cfg.max_pending_spans {
            self.fold_oldest();
        }
    }

    /// Folds every trace that has settled at `now` (every trace with `force`) into the
    /// current interval.
    pub fn settle(&mut self, now: Instant, force: bool) {
        let settle = self.cfg.settle;
        let ready: Vec<[u8; 16]> = self
            .traces
            .iter()
            .filter(|(_, b)| {
                force
                    || now.saturating_duration_since(b.last) >= settle
                    || now.saturating_duration_since(b.first) >= settle * 3
            })
            .map(|(t, _)| *t)
            .collect();
        for t in ready {
            if let Some(buf) = self.traces.remove(&t) {
                self.pending -= buf.spans.len();
                self.fold(&buf.spans);
            }
        }
    }

    /// Takes the interval's stacks, per service (sorted), and starts a new interval.
    pub fn take_interval(&mut self) -> Vec<ServiceProfile> {
        let mut out: Vec<ServiceProfile> = self
            .window
            .drain()
            .map(|(key, stacks)| {
                let mut lines: Vec<(String, u64)> = stacks.into_iter().collect();
                lines.sort();
                ServiceProfile { key, lines }
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }

    fn intern(&mut self, raw: &str) -> Arc<str> {
        if let Some(n) = self.names.get(raw) {
            return Arc::clone(n);
        }
        let clean: Arc<str> = Arc::from(sanitize_frame(raw).as_str());
        if &*clean != raw {
            // Not interned under the raw text: names needing a fix are rare.
            return clean;
        }
        if self.names.len() >= MAX_NAMES {
            self.names.clear();
        }
        self.names.insert(Arc::clone(&clean));
        clean
    }

    /// Folds the oldest traces until half the span budget is free.
    fn fold_oldest(&mut self) {
        let mut by_age: Vec<(Instant, [u8; 16])> =
            self.traces.iter().map(|(t, b)| (b.first, *t)).collect();
        by_age.sort();
        let target = self.cfg.max_pending_spans / 2;
        for (_, t) in by_age {
            if self.pending <= target {
                break;
            }
            if let Some(buf) = self.traces.remove(&t) {
                self.pending -= buf.spans.len();
                self.counts.early_traces += 1;
                self.fold(&buf.spans);
            }
        }
    }

    /// Folds the spans of one trace into the interval's stacks.
    fn fold(&mut self, spans: &[SpanRec]) {
        let index: HashMap<[u8; 8], usize> =
            spans.iter().enumerate().map(|(i, s)| (s.id, i)).collect();
        let local_parent: Vec<Option<usize>> = spans
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let p = *index.get(&s.parent?)?;
                let same =
                    Arc::ptr_eq(&spans[p].service, &s.service) || spans[p].service == s.service;
                (p != i && same && !s.remote_parent).then_some(p)
            })
            .collect();
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); spans.len()];
        for (i, p) in local_parent.iter().enumerate() {
            if let Some(p) = p {
                children[*p].push(i);
            }
        }
        let mut visited = vec![false; spans.len()];
        for root in (0..spans.len()).filter(|&i| local_parent[i].is_none()) {
            let prefix = if self.cfg.upstream_prefix {
                upstream(spans, root, &index, &local_parent)
            } else {
                Vec::new()
            };
            self.fold_segment(spans, root, &children, &prefix, &mut visited);
        }
        // Spans on a parent cycle (bad input) have no root: count them where they are.
        for i in 0..spans.len() {
            if !visited[i] {
                self.fold_segment(spans, i, &children, &[], &mut visited);
            }
        }
    }

    fn fold_segment(
        &mut self,
        spans: &[SpanRec],
        root: usize,
        children: &[Vec<usize>],
        prefix: &[String],
        visited: &mut [bool],
    ) {
        let key = &spans[root].service;
        if !self.window.contains_key(key) && self.window.len() >= self.cfg.max_services {
            let mut n = 0;
            let mut todo = vec![root];
            while let Some(i) = todo.pop() {
                if !std::mem::replace(&mut visited[i], true) {
                    n += 1;
                    todo.extend(&children[i]);
                }
            }
            self.counts.dropped_spans += n;
            return;
        }
        let mut stacks = self.window.remove(key).unwrap_or_default();
        let mut path: Vec<&str> = Vec::new();
        let mut todo = vec![(root, 0usize)];
        while let Some((i, depth)) = todo.pop() {
            if std::mem::replace(&mut visited[i], true) {
                continue;
            }
            path.truncate(depth.min(MAX_DEPTH - 1));
            path.push(&spans[i].name);
            todo.extend(children[i].iter().rev().map(|&c| (c, depth + 1)));
            self.counts.folded_spans += 1;
            let weight = self_time(&spans[i], children[i].iter().map(|&c| &spans[c]));
            if weight == 0 {
                continue;
            }
            self.buf.clear();
            for frame in prefix
                .iter()
                .map(String::as_str)
                .chain(path.iter().copied())
            {
                if !self.buf.is_empty() {
                    self.buf.push(';');
                }
                self.buf.push_str(frame);
            }
            if let Some(v) = stacks.get_mut(self.buf.as_str()) {
                *v = v.saturating_add(weight);
            } else if stacks.len() < self.cfg.max_stacks_per_service {
                stacks.insert(self.buf.clone(), weight);
            } else {
                self.counts.overflow_spans += 1;
                let v = stacks.entry(OVERFLOW_STACK.to_owned()).or_default();
                *v = v.saturating_add(weight);
            }
        }
        self.window.insert(Arc::clone(key), stacks);
    }
}

/// The upstream services of the segment entered at `root`, outermost first, as frames
/// `[service]`, as far as the trace's held spans show them.
fn upstream(
    spans: &[SpanRec],
    root: usize,
    index: &HashMap<[u8; 8], usize>,
    local_parent: &[Option<usize>],
) -> Vec<String> {
    let mut chain = Vec::new();
    let mut entry = root;
    for _ in 0..spans.len() {
        let Some(&caller) = spans[entry].parent.as_ref().and_then(|p| index.get(p)) else {
            break;
        };
        chain.push(format!(
            "[{}]",
            sanitize_frame(&spans[caller].service.service)
        ));
        entry = caller;
        let mut steps = 0;
        while let Some(p) = local_parent[entry] {
            entry = p;
            steps += 1;
            if steps > spans.len() {
                return Vec::new();
            }
        }
    }
    chain.reverse();
    chain
}

/// Duration minus the union of the children's intervals, clipped to the span.
fn self_time<'a>(span: &SpanRec, children: impl Iterator<Item = &'a SpanRec>) -> u64 {
    let mut parts: Vec<(u64, u64)> = children
        .map(|c| (c.start.max(span.start), c.end.min(span.end)))
        .filter(|(s, e)| s < e)
        .collect();
    parts.sort_unstable();
    let mut covered = 0u64;
    let mut reach = span.start;
    for (s, e) in parts {
        let s = s.max(reach);
        if e > s {
            covered += e - s;
            reach = e;
        }
    }
    (span.end - span.start).saturating_sub(covered)
}

/// True when the span's parent is in another process (so the span starts a segment).
fn has_remote_parent(s: &Span) -> bool {
    if s.parent_span_id.is_empty() {
        return false;
    }
    if s.flags & HAS_IS_REMOTE != 0 {
        return s.flags & IS_REMOTE != 0;
    }
    matches!(
        SpanKind::try_from(s.kind),
        Ok(SpanKind::Server | SpanKind::Consumer)
    )
}

/// The service and labels of a resource.
#[must_use]
pub fn service_key(attributes: &[KeyValue], label_keys: &[String]) -> ServiceKey {
    let find = |key: &str| {
        attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| scalar(kv.value.as_ref()))
    };
    ServiceKey {
        service: find("service.name")
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "unknown_service".to_owned()),
        labels: label_keys
            .iter()
            .filter_map(|k| Some((k.clone(), find(k).filter(|v| !v.is_empty())?)))
            .collect(),
    }
}

/// A scalar attribute value as text; arrays, maps and bytes give `None`.
fn scalar(v: Option<&AnyValue>) -> Option<String> {
    match v?.value.as_ref()? {
        Value::StringValue(s) => Some(s.clone()),
        Value::IntValue(i) => Some(i.to_string()),
        Value::BoolValue(b) => Some(b.to_string()),
        Value::DoubleValue(d) => Some(d.to_string()),
        _ => None,
    }
}

/// A span name made safe as one folded frame: no `;` (the frame separator), no line
/// breaks or other control characters, trimmed, at most 256 bytes, never empty.
#[must_use]
pub fn sanitize_frame(raw: &str) -> String {
    let mut out: String = raw
        .trim()
        .chars()
        .map(|c| match c {
            ';' => '_',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect();
    if out.len() > MAX_FRAME {
        let mut end = MAX_FRAME;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
    }
    let trimmed = out.trim_end().len();
    out.truncate(trimmed);
    if out.is_empty() {
        out.push_str("<unnamed>");
    }
    out
}

/// The folded body: one `stack value` line per stack.
#[must_use]
pub fn folded_body(lines: &[(String, u64)]) -> String {
    let mut out = String::with_capacity(lines.iter().map(|(s, _)| s.len() + 12).sum());
    for (stack, value) in lines {
        out.push_str(stack);
        out.push(' ');
        out.push_str(&value.to_string());
        out.push('\n');
    }
    out
}

#[cfg(test)]
#[path = "folded_tests.rs"]
mod tests;
