//! Zipkin v2 JSON written straight from OTLP (issue 17): the same bytes as serializing
//! the [`model`](super::model) that [`convert`](super::convert) builds, without building
//! it. Tags borrow their keys and (string) values from the batch; ids, numbers and the
//! Pinpoint tags are formatted into the output. Pure, no I/O.
//!
//! The mapping's decisions stay in `convert.rs` (validation, remote endpoint,
//! annotations); this module only decides how to write them, and a test checks that
//! both paths give identical bytes.

use std::cmp::Ordering;
use std::io::Write as _;

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value as AV};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span};

use super::convert::{
    self as c, Rejected, RemoteAddr, SERVICE_NAME, TAG_DROPPED_ATTRIBUTES, TAG_DROPPED_EVENTS,
    TAG_DROPPED_LINKS, TAG_ERROR, TAG_LIBRARY_NAME, TAG_LIBRARY_VERSION, TAG_PINPOINT_SPAN_ID,
    TAG_PINPOINT_TXID, TAG_SCOPE_NAME, TAG_SCOPE_VERSION, TAG_STATUS_CODE, TAG_TRACESTATE,
    UNKNOWN_SERVICE,
};
use super::model::{Kind, to_hex};
use super::values::tag_value;
use crate::ids::{AgentId, TraceId, TransactionId, otlp};

/// A tag value, borrowed from the batch where it can be.
#[derive(Clone, Copy)]
enum Val<'a> {
    /// Written JSON-escaped.
    Str(&'a str),
    Int(i64),
    Bool(bool),
    /// An attribute whose text needs [`tag_value`] (doubles, bytes, arrays, maps).
    Other(&'a AnyValue),
    Count(u32),
    /// The span's Pinpoint transaction id (kept beside the tags: it is large).
    Txid,
    SpanId(i64),
}

impl<'a> Val<'a> {
    /// The tag value of an attribute; `None` when it has none (such an attribute sets no
    /// tag, as in [`tag_value`]).
    fn of(v: Option<&'a AnyValue>) -> Option<Self> {
        let any = v?;
        Some(match any.value.as_ref()? {
            AV::StringValue(s) => Self::Str(s),
            AV::IntValue(i) => Self::Int(*i),
            AV::BoolValue(b) => Self::Bool(*b),
            AV::StringValueStrindex(_) => return None,
            _ => Self::Other(any),
        })
    }

    /// Writes the value, quoted; `txid` is the span's, for [`Val::Txid`].
    fn write(self, out: &mut Vec<u8>, txid: Option<&TransactionId>) {
        match self {
            Self::Str(s) => str(out, s),
            Self::Int(i) => decimal(out, i),
            Self::Bool(b) => out.extend_from_slice(if b { b"\"true\"" } else { b"\"false\"" }),
            Self::Other(v) => str(out, &tag_value(Some(v)).unwrap_or_default()),
            Self::Count(n) => decimal(out, n),
            // Agent ids are `[a-zA-Z0-9._-]` and the rest are digits: nothing to escape.
            // The canonical form `agentId^agentStartTime^sequence` (ids.md section 2).
            Self::Txid => {
                out.push(b'"');
                if let Some(t) = txid {
                    let mut buf = itoa::Buffer::new();
                    out.extend_from_slice(t.agent_id.as_str().as_bytes());
                    out.push(b'^');
                    out.extend_from_slice(buf.format(t.agent_start_time).as_bytes());
                    out.push(b'^');
                    out.extend_from_slice(buf.format(t.sequence).as_bytes());
                }
                out.push(b'"');
            }
            Self::SpanId(i) => decimal(out, i),
        }
    }
}

/// A number, quoted (tag values are strings).
fn decimal(out: &mut Vec<u8>, n: impl itoa::Integer) {
    let mut buf = itoa::Buffer::new();
    let text = buf.format(n).as_bytes();
    out.push(b'"');
    out.extend_from_slice(text);
    out.push(b'"');
}

/// A tag key, with its first eight bytes read as a big-endian number: comparing those
/// settles most comparisons of keys without comparing the strings.
#[derive(Clone, Copy)]
struct Key<'a> {
    head: u64,
    text: &'a str,
}

impl<'a> Key<'a> {
    fn new(text: &'a str) -> Self {
        let b = text.as_bytes();
        // Shorter keys are padded with zero bytes: a key that is a prefix of another
        // still sorts first, and equal heads fall back to comparing the strings.
        let head = match b.first_chunk::<8>() {
            Some(h) => u64::from_be_bytes(*h),
            None => b
                .iter()
                .zip((0..8).rev())
                .fold(0, |acc, (&c, i)| acc | u64::from(c) << (8 * i)),
        };
        Self { head, text }
    }

    /// The byte order of the keys (a `BTreeMap<String, _>`'s order).
    fn order(self, other: Self) -> Ordering {
        self.head
            .cmp(&other.head)
            .then_with(|| self.text.cmp(other.text))
    }

    fn same(self, other: Self) -> bool {
        self.head == other.head && self.text == other.text
    }
}

/// Tags as (key, value), borrowed from the batch.
type Tag<'a> = (Key<'a>, Val<'a>);

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// Whether any of the eight bytes of `w` needs an escape: a control character (below
/// 0x20), `"` or `\`. Each test sets a byte's high bit (in `HI`) only where the byte
/// matches or a lower byte matched, so the word as a whole is answered exactly.
#[inline]
fn word_needs_escape(w: u64) -> bool {
    let control = w.wrapping_sub(LO * 0x20) & !w;
    let q = w ^ (LO * u64::from(b'"'));
    let quote = q.wrapping_sub(LO) & !q;
    let b = w ^ (LO * u64::from(b'\\'));
    let backslash = b.wrapping_sub(LO) & !b;
    (control | quote | backslash) & HI != 0
}

/// Whether `bytes` holds a byte that JSON must escape: eight bytes at a time, the last
/// (partial) word read again overlapping the one before it.
#[inline]
fn needs_escape(bytes: &[u8]) -> bool {
    let word = |c: &[u8; 8]| word_needs_escape(u64::from_le_bytes(*c));
    match bytes.last_chunk::<8>() {
        Some(last) => {
            let (words, _) = bytes.as_chunks::<8>();
            words.iter().any(word) || word(last)
        }
        None => bytes.iter().any(|&b| ESCAPES[usize::from(b)] != 0),
    }
}

/// A JSON string, escaped as `serde_json` escapes it (`"`, `\\`, and control characters;
/// `\b \f \n \r \t` in short form, the others as `\u00xx`). Most strings need no
/// escape: a check eight bytes at a time finds that out and the string is copied whole.
fn str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    str_body(out, s);
    out.push(b'"');
}

/// [`str`] without the quotes.
#[inline]
fn str_body(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    if needs_escape(bytes) {
        escaped(out, bytes);
    } else {
        out.extend_from_slice(bytes);
    }
}

/// The escape of each byte: 0 for none, `u` for `\u00xx`, else the letter after `\`.
const ESCAPES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

/// [`str`]'s slow path: copies the runs between escapes whole.
#[cold]
fn escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let e = ESCAPES[usize::from(b)];
        if e == 0 {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        if e == b'u' {
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0x0f)],
            ]);
        } else {
            out.extend_from_slice(&[b'\\', e]);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// `"name":"<hex digits of id>"` (`name` given with its quotes, colon and leading comma).
fn hex_field<const N: usize>(out: &mut Vec<u8>, name: &[u8], id: &[u8; N]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [b'"'; 34];
    for (i, b) in id.iter().enumerate().take(16) {
        buf[1 + 2 * i] = DIGITS[usize::from(b >> 4)];
        buf[2 + 2 * i] = DIGITS[usize::from(b & 0x0f)];
    }
    out.extend_from_slice(name);
    out.extend_from_slice(&buf[..(2 * N + 2).min(34)]);
}

/// The resource and scope tags of one scope, written once for all its spans: sorted by
/// key, one entry per key, each as `,"key":value` in `text`.
#[derive(Default)]
struct Base<'a> {
    keys: Vec<Key<'a>>,
    /// Where each key's entry ends in `text`.
    ends: Vec<usize>,
    text: Vec<u8>,
}

impl<'a> Base<'a> {
    /// Renders `tags` (sorted by key, unique).
    fn fill(&mut self, tags: &[Tag<'a>]) {
        self.keys.clear();
        self.ends.clear();
        self.text.clear();
        for &(key, value) in tags {
            self.text.push(b',');
            str(&mut self.text, key.text);
            self.text.push(b':');
            value.write(&mut self.text, None);
            self.keys.push(key);
            self.ends.push(self.text.len());
        }
    }
}

/// Writes every span of `resource_spans` as a Zipkin v2 JSON list into `out`, and
/// returns how many spans were written and the spans left out (as [`c::convert`] would).
/// Nothing is written for a batch whose every span is left out.
pub fn write<'a>(
    resource_spans: impl IntoIterator<Item = &'a ResourceSpans>,
    out: &mut Vec<u8>,
) -> (usize, Vec<Rejected>) {
    let mut rejected = Vec::new();
    let mut written = 0;
    let start = out.len();
    out.push(b'[');
    let marker = c::pinpoint_marker();
    // Lists refilled for every resource, scope and span: allocated once per batch.
    let mut resource: Vec<Tag<'_>> = Vec::new();
    let mut tags: Vec<Tag<'_>> = Vec::new();
    let mut base = Base::default();
    let mut local: Vec<u8> = Vec::new();
    for rs in resource_spans {
        let attributes = rs.resource.as_ref().map_or(&[][..], |r| &r.attributes[..]);
        let mut service: Option<Val<'_>> = None;
        resource.clear();
        for kv in attributes {
            if kv.key == SERVICE_NAME {
                service = Val::of(kv.value.as_ref());
            } else if kv.key != TAG_ERROR
                && let Some(v) = Val::of(kv.value.as_ref())
            {
                resource.push((Key::new(&kv.key), v));
            }
        }
        local.clear();
        local.extend_from_slice(b",\"localEndpoint\":{\"serviceName\":");
        match service {
            Some(v) => v.write(&mut local, None),
            None => str(&mut local, UNKNOWN_SERVICE),
        }
        local.push(b'}');
        for ss in &rs.scope_spans {
            // Resource and scope tags, sorted, deduplicated and written once for all
            // the spans of the scope.
            tags.clear();
            tags.extend_from_slice(&resource);
            if let Some(s) = &ss.scope {
                for (keys, value) in [
                    ([TAG_SCOPE_NAME, TAG_LIBRARY_NAME], &s.name),
                    ([TAG_SCOPE_VERSION, TAG_LIBRARY_VERSION], &s.version),
                ] {
                    if !value.is_empty() {
                        for k in keys {
                            tags.push((Key::new(k), Val::Str(value)));
                        }
                    }
                }
            }
            sort_last_wins(&mut tags);
            base.fill(&tags);
            for span in &ss.spans {
                let ids = match c::checked_ids(span) {
                    Ok(ids) => ids,
                    Err(reason) => {
                        rejected.push(Rejected {
                            reason,
                            trace_id: to_hex(&span.trace_id),
                            span_id: to_hex(&span.span_id),
                        });
                        continue;
                    }
                };
                if written > 0 {
                    out.push(b',');
                }
                written += 1;
                tags.clear();
                let txid = span_tags(span, &ids.trace_id, marker, &mut tags);
                // Stable: entries of one key stay in the order they were added.
                tags.sort_by(|a, b| a.0.order(b.0));
                write_span(out, span, &ids, &local);
                write_tags(out, &base, &tags, txid.as_ref());
                out.push(b'}');
            }
        }
    }
    if written == 0 {
        out.truncate(start);
    } else {
        out.push(b']');
    }
    (written, rejected)
}

/// Appends the span's own tags (attributes, then the bridge's) to `tags`; returns the
/// transaction id that [`Val::Txid`] stands for.
fn span_tags<'a>(
    span: &'a Span,
    trace_id: &[u8; 16],
    marker: Option<AgentId>,
    tags: &mut Vec<Tag<'a>>,
) -> Option<TransactionId> {
    for kv in &span.attributes {
        let KeyValue { key, value, .. } = kv;
        // `error` marks a span as failed in Zipkin: only an ERROR status may set it.
        if key != TAG_ERROR
            && let Some(v) = Val::of(value.as_ref())
        {
            tags.push((Key::new(key), v));
        }
    }
    let status = span.status.as_ref();
    match status.map(|s| StatusCode::try_from(s.code)) {
        Some(Ok(StatusCode::Ok)) => tags.push((Key::new(TAG_STATUS_CODE), Val::Str("OK"))),
        Some(Ok(StatusCode::Error)) => {
            tags.push((Key::new(TAG_STATUS_CODE), Val::Str("ERROR")));
            let message = status.map_or("", |s| &s.message);
            tags.push((Key::new(TAG_ERROR), Val::Str(message)));
        }
        _ => {}
    }
    for (key, count) in [
        (TAG_DROPPED_ATTRIBUTES, span.dropped_attributes_count),
        (TAG_DROPPED_EVENTS, span.dropped_events_count),
        (TAG_DROPPED_LINKS, span.dropped_links_count),
    ] {
        if count > 0 {
            tags.push((Key::new(key), Val::Count(count)));
        }
    }
    if !span.trace_state.is_empty() {
        tags.push((Key::new(TAG_TRACESTATE), Val::Str(&span.trace_state)));
    }
    let marker = marker?;
    let id = otlp::pinpoint_span_id(span)?;
    tags.push((Key::new(TAG_PINPOINT_TXID), Val::Txid));
    tags.push((Key::new(TAG_PINPOINT_SPAN_ID), Val::SpanId(id)));
    Some(otlp::transaction_id(TraceId(*trace_id), span, marker))
}

/// Sorts `tags` by key and keeps, of several entries with one key, the last one added
/// (as inserting them in order into a map would).
fn sort_last_wins(tags: &mut Vec<Tag<'_>>) {
    // Stable: entries of one key stay in the order they were added.
    tags.sort_by(|a, b| a.0.order(b.0));
    let mut kept = 0;
    for i in 0..tags.len() {
        if tags.get(i + 1).is_some_and(|next| next.0.same(tags[i].0)) {
            continue;
        }
        tags[kept] = tags[i];
        kept += 1;
    }
    tags.truncate(kept);
}

/// The span's fields up to its tags (the closing `}` is the caller's).
fn write_span(out: &mut Vec<u8>, span: &Span, ids: &c::Ids, local: &[u8]) {
    hex_field(out, b"{\"traceId\":", &ids.trace_id);
    if let Some(p) = &ids.parent_id {
        hex_field(out, b",\"parentId\":", p);
    }
    hex_field(out, b",\"id\":", &ids.id);
    if let Some(kind) = ids.kind {
        out.extend_from_slice(match kind {
            Kind::Client => b",\"kind\":\"CLIENT\"",
            Kind::Server => b",\"kind\":\"SERVER\"",
            Kind::Producer => b",\"kind\":\"PRODUCER\"",
            Kind::Consumer => b",\"kind\":\"CONSUMER\"",
        });
    }
    if !span.name.is_empty() {
        out.extend_from_slice(b",\"name\":");
        str(out, &span.name);
    }
    let mut buf = itoa::Buffer::new();
    let timestamp = span.start_time_unix_nano / 1000;
    if timestamp != 0 {
        out.extend_from_slice(b",\"timestamp\":");
        out.extend_from_slice(buf.format(timestamp).as_bytes());
    }
    out.extend_from_slice(b",\"duration\":");
    out.extend_from_slice(buf.format(ids.duration).as_bytes());
    out.extend_from_slice(local);
    if let Some(remote) = ids.kind.and_then(|k| c::remote_of(k, span)) {
        out.extend_from_slice(b",\"remoteEndpoint\":{");
        match &remote.addr {
            RemoteAddr::Name(n) => {
                out.extend_from_slice(b"\"serviceName\":");
                str(out, n);
            }
            RemoteAddr::V4(ip) => {
                let _ = write!(out, "\"ipv4\":\"{ip}\"");
            }
            RemoteAddr::V6(ip) => {
                let _ = write!(out, "\"ipv6\":\"{ip}\"");
            }
        }
        if let Some(port) = remote.port {
            out.extend_from_slice(b",\"port\":");
            out.extend_from_slice(buf.format(port).as_bytes());
        }
        out.push(b'}');
    }
    if !span.events.is_empty() {
        let annotations = c::annotations(span);
        out.extend_from_slice(b",\"annotations\":");
        let _ = serde_json::to_writer(&mut *out, &annotations);
    }
}

/// `,"tags":{...}` from the scope's `base` and the span's `own` tags (sorted by key;
/// of several entries with one key, the last is written), merged in key order, the
/// span's tag winning over the scope's; nothing when both are empty. Runs of scope
/// tags are copied whole from their text.
fn write_tags(out: &mut Vec<u8>, base: &Base<'_>, own: &[Tag<'_>], txid: Option<&TransactionId>) {
    out.extend_from_slice(b",\"tags\":");
    let open = out.len();
    // The next scope tag to write, and where its text starts.
    let (mut next, mut from) = (0, 0);
    for (i, &(key, value)) in own.iter().enumerate() {
        if own.get(i + 1).is_some_and(|later| later.0.same(key)) {
            continue;
        }
        let mut upto = next;
        while base
            .keys
            .get(upto)
            .is_some_and(|b| b.order(key) == Ordering::Less)
        {
            upto += 1;
        }
        if upto > next {
            let end = base.ends[upto - 1];
            out.extend_from_slice(&base.text[from..end]);
            (next, from) = (upto, end);
        }
        if base.keys.get(next).is_some_and(|b| b.same(key)) {
            from = base.ends[next];
            next += 1;
        }
        out.push(b',');
        str(out, key.text);
        out.push(b':');
        value.write(out, txid);
    }
    out.extend_from_slice(&base.text[from..]);
    if out.len() == open {
        out.truncate(open - b",\"tags\":".len());
    } else {
        // The first entry's comma opens the object.
        out[open] = b'{';
        out.push(b'}');
    }
}

#[cfg(test)]
#[path = "json_tests.rs"]
pub(in crate::exporter::zipkin) mod tests;
