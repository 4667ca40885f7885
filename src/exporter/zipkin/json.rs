//! Zipkin v2 JSON written straight from OTLP (issue 17): the same bytes as serializing
//! the [`model`](super::model) that [`convert`](super::convert) builds, without building
//! it. Tags borrow their keys and (string) values from the batch; ids, numbers and the
//! Pinpoint tags are formatted into the output. Pure, no I/O.
//!
//! The mapping's decisions stay in `convert.rs` (validation, remote endpoint,
//! annotations); this module only decides how to write them, and a test checks that
//! both paths give identical bytes.

use std::io::Write as _;

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value as AV};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span};

use super::convert::{
    self as c, Rejected, SERVICE_NAME, TAG_DROPPED_ATTRIBUTES, TAG_DROPPED_EVENTS,
    TAG_DROPPED_LINKS, TAG_ERROR, TAG_LIBRARY_NAME, TAG_LIBRARY_VERSION, TAG_PINPOINT_SPAN_ID,
    TAG_PINPOINT_TXID, TAG_SCOPE_NAME, TAG_SCOPE_VERSION, TAG_STATUS_CODE, TAG_TRACESTATE,
    UNKNOWN_SERVICE,
};
use super::model::{Kind, to_hex};
use super::values::tag_value;
use crate::ids::{TraceId, TransactionId, otlp};

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
    Txid(TransactionId),
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

    fn write(self, out: &mut Vec<u8>) {
        match self {
            Self::Str(s) => str(out, s),
            Self::Int(i) => {
                let _ = write!(out, "\"{i}\"");
            }
            Self::Bool(b) => out.extend_from_slice(if b { b"\"true\"" } else { b"\"false\"" }),
            Self::Other(v) => str(out, &tag_value(Some(v)).unwrap_or_default()),
            Self::Count(n) => {
                let _ = write!(out, "\"{n}\"");
            }
            // Agent ids are `[a-zA-Z0-9._-]` and the rest are digits: nothing to escape.
            Self::Txid(t) => {
                out.push(b'"');
                t.write_bytes(out);
                out.push(b'"');
            }
            Self::SpanId(i) => {
                let _ = write!(out, "\"{i}\"");
            }
        }
    }
}

/// Tags as (key, value), borrowed from the batch.
type Tags<'a> = [(&'a str, Val<'a>)];

/// A JSON string, escaped as `serde_json` escapes it (`"`, `\\`, and control characters;
/// `\b \f \n \r \t` in short form, the others as `\u00xx`). Most strings need no
/// escape: one pass without branches finds that out and the string is copied whole.
fn str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    // No early exit, so the compiler can check many bytes at once.
    let clean = bytes
        .iter()
        .fold(true, |ok, &b| ok & (b >= 0x20) & (b != b'"') & (b != b'\\'));
    if clean {
        out.extend_from_slice(bytes);
    } else {
        escaped(out, bytes);
    }
    out.push(b'"');
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
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0x0f)]);
        } else {
            out.push(b'\\');
            out.push(e);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Hex digits of an id, quoted.
fn hex_id(out: &mut Vec<u8>, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)]);
        out.push(DIGITS[usize::from(b & 0x0f)]);
    }
    out.push(b'"');
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
    // The span's own tags: one list per batch, refilled for every span.
    let mut own: Vec<(&str, Val<'_>)> = Vec::new();
    for rs in resource_spans {
        let attributes = rs.resource.as_ref().map_or(&[][..], |r| &r.attributes[..]);
        let mut service: Option<Val<'_>> = None;
        let mut resource: Vec<(&str, Val<'_>)> = Vec::with_capacity(attributes.len());
        for kv in attributes {
            if kv.key == SERVICE_NAME {
                service = Val::of(kv.value.as_ref());
            } else if kv.key != TAG_ERROR
                && let Some(v) = Val::of(kv.value.as_ref())
            {
                resource.push((&kv.key, v));
            }
        }
        for ss in &rs.scope_spans {
            let mut scope: Vec<(&str, Val<'_>)> = Vec::new();
            if let Some(s) = &ss.scope {
                for (keys, value) in [
                    ([TAG_SCOPE_NAME, TAG_LIBRARY_NAME], &s.name),
                    ([TAG_SCOPE_VERSION, TAG_LIBRARY_VERSION], &s.version),
                ] {
                    if !value.is_empty() {
                        for k in keys {
                            scope.push((k, Val::Str(value)));
                        }
                    }
                }
            }
            // Resource and scope tags, sorted and deduplicated once for all the spans.
            let mut base: Vec<(&str, Val<'_>)> = resource.iter().chain(&scope).copied().collect();
            sort_last_wins(&mut base);
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
                own.clear();
                span_tags(span, &ids.trace_id, &mut own);
                sort_last_wins(&mut own);
                write_span(out, span, &ids, service, &base, &own);
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

/// Appends the span's own tags (attributes, then the bridge's) to `tags`, and sorts
/// them by key; of several entries with one key, the last one added is the one written.
fn span_tags<'a>(span: &'a Span, trace_id: &[u8; 16], tags: &mut Vec<(&'a str, Val<'a>)>) {
    for kv in &span.attributes {
        let KeyValue { key, value, .. } = kv;
        // `error` marks a span as failed in Zipkin: only an ERROR status may set it.
        if key != TAG_ERROR
            && let Some(v) = Val::of(value.as_ref())
        {
            tags.push((key, v));
        }
    }
    let status = span.status.as_ref();
    match status.map(|s| StatusCode::try_from(s.code)) {
        Some(Ok(StatusCode::Ok)) => tags.push((TAG_STATUS_CODE, Val::Str("OK"))),
        Some(Ok(StatusCode::Error)) => {
            tags.push((TAG_STATUS_CODE, Val::Str("ERROR")));
            tags.push((TAG_ERROR, Val::Str(status.map_or("", |s| &s.message))));
        }
        _ => {}
    }
    for (key, count) in [
        (TAG_DROPPED_ATTRIBUTES, span.dropped_attributes_count),
        (TAG_DROPPED_EVENTS, span.dropped_events_count),
        (TAG_DROPPED_LINKS, span.dropped_links_count),
    ] {
        if count > 0 {
            tags.push((key, Val::Count(count)));
        }
    }
    if !span.trace_state.is_empty() {
        tags.push((TAG_TRACESTATE, Val::Str(&span.trace_state)));
    }
    if let Some(marker) = c::pinpoint_marker()
        && let Some(id) = otlp::pinpoint_span_id(span)
    {
        let txid = otlp::transaction_id(TraceId(*trace_id), span, marker);
        tags.push((TAG_PINPOINT_TXID, Val::Txid(txid)));
        tags.push((TAG_PINPOINT_SPAN_ID, Val::SpanId(id)));
    }
}

/// Sorts `tags` by key and keeps, of several entries with one key, the last one added
/// (as inserting them in order into a map would).
fn sort_last_wins(tags: &mut Vec<(&str, Val<'_>)>) {
    // Stable: entries of one key stay in the order they were added.
    tags.sort_by(|a, b| a.0.cmp(b.0));
    let mut kept = 0;
    for i in 0..tags.len() {
        if tags.get(i + 1).is_some_and(|next| next.0 == tags[i].0) {
            continue;
        }
        tags[kept] = tags[i];
        kept += 1;
    }
    tags.truncate(kept);
}

fn write_span(
    out: &mut Vec<u8>,
    span: &Span,
    ids: &c::Ids,
    service: Option<Val<'_>>,
    base: &Tags<'_>,
    own: &Tags<'_>,
) {
    out.extend_from_slice(b"{\"traceId\":");
    hex_id(out, &ids.trace_id);
    if let Some(p) = &ids.parent_id {
        out.extend_from_slice(b",\"parentId\":");
        hex_id(out, p);
    }
    out.extend_from_slice(b",\"id\":");
    hex_id(out, &ids.id);
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
    let timestamp = span.start_time_unix_nano / 1000;
    if timestamp != 0 {
        let _ = write!(out, ",\"timestamp\":{timestamp}");
    }
    let _ = write!(out, ",\"duration\":{}", ids.duration);
    out.extend_from_slice(b",\"localEndpoint\":{\"serviceName\":");
    match service {
        Some(v) => v.write(out),
        None => str(out, UNKNOWN_SERVICE),
    }
    out.push(b'}');
    if let Some(remote) = ids.kind.and_then(|k| c::remote_endpoint_of(k, span)) {
        out.extend_from_slice(b",\"remoteEndpoint\":");
        let _ = serde_json::to_writer(&mut *out, &remote);
    }
    let annotations = c::annotations(span);
    if !annotations.is_empty() {
        out.extend_from_slice(b",\"annotations\":");
        let _ = serde_json::to_writer(&mut *out, &annotations);
    }
    // Both lists are sorted with unique keys: merge them, the span's tag winning.
    let mut first = true;
    let (mut b, mut o) = (base.iter().peekable(), own.iter().peekable());
    loop {
        let next = match (b.peek(), o.peek()) {
            (Some(x), Some(y)) if x.0 < y.0 => b.next(),
            (Some(x), Some(y)) if x.0 == y.0 => {
                b.next();
                o.next()
            }
            (Some(_), None) => b.next(),
            (_, Some(_)) => o.next(),
            (None, None) => None,
        };
        let Some(&(key, value)) = next else {
            break;
        };
        out.extend_from_slice(if first { b",\"tags\":{" } else { b"," });
        first = false;
        str(out, key);
        out.push(b':');
        value.write(out);
    }
    if !first {
        out.push(b'}');
    }
    out.push(b'}');
}

#[cfg(test)]
pub(in crate::exporter::zipkin) mod tests {
    use super::*;
    use crate::testdata;

    /// Both paths, same bytes (`convert_tests.rs` checks every mapping case with it too).
    pub(in crate::exporter::zipkin) fn same(resource_spans: &[ResourceSpans]) {
        let converted = c::convert(resource_spans);
        let want = if converted.spans.is_empty() {
            Vec::new()
        } else {
            serde_json::to_vec(&converted.spans).expect("json")
        };
        let mut got = Vec::new();
        let (n, rejected) = write(resource_spans, &mut got);
        assert_eq!(n, converted.spans.len());
        assert_eq!(rejected, converted.rejected);
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want)
        );
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        for text in [
            "",
            "plain",
            "quote \" and \\ backslash",
            "\n\r\t\u{8}\u{c}\u{0}\u{1f}\u{7f} é ü 日本 🎉",
            "/path?a=1&b=<2>",
        ] {
            let mut got = Vec::new();
            str(&mut got, text);
            assert_eq!(
                String::from_utf8_lossy(&got),
                serde_json::to_string(text).expect("json"),
                "{text:?}"
            );
        }
    }

    #[test]
    fn writes_what_the_model_serializes_for_generated_batches() {
        for seed in 0..20 {
            let shape = testdata::Shape {
                services: 5,
                spans: 100,
                spans_per_trace: 10,
                error_ratio: 0.2,
                extra_attributes: 3,
                attribute_len: 8,
            };
            same(&testdata::request(&shape, seed).resource_spans);
        }
    }
}
