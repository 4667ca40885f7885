//! Pure conversion of an assembled segment into Pinpoint messages: the entry span
//! becomes a `PSpan`, its local descendants `PSpanEvent`s, and late descendants a
//! `PSpanChunk`. No I/O and no state: ids, parents and depths are decided by the
//! assembler and passed in.
//!
//! API names: every span and event uses `apiId = 0` with the span name in annotation
//! `API (12)`. The web renders that as is, with no metadata to register, so it costs no
//! round trip, needs no per-agent id table, and two bridge instances never disagree on
//! an id. (Registered API metadata would only save the name's bytes on the wire.)

use std::borrow::Cow;

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use sha2::{Digest, Sha256};

use super::agent::AgentIdentity;
use super::codes as c;
use super::proto::{
    PAcceptEvent, PAnnotation, PAttribute, PAttributeValue, PIntStringValue, PMessageEvent,
    PNextEvent, PParentInfo, PSpan, PSpanChunk, PSpanEvent, PTransactionId, p_attribute_value,
    p_next_event,
};
use super::semconv::{self, anno_str};
use crate::ids::{SpanId, TransactionId, mapping};

/// Where the remaining span attributes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttributeMode {
    /// `args[0..9]` string annotations, `key=value` (every collector version).
    #[default]
    Args,
    /// `PAttribute`s (Pinpoint 3.1+; older collectors ignore them).
    Attributes,
    /// Not sent.
    None,
}

/// Conversion settings (from the exporter config).
#[derive(Debug, Clone)]
pub struct Options {
    pub attributes: AttributeMode,
    /// At most this many attributes per span or event.
    pub max_attributes: usize,
    /// Longer values are cut to this many bytes (at a char boundary).
    pub max_value_len: usize,
    /// Send `http.method (50)` (a Pinpoint 3.1+ annotation).
    pub http_method_annotation: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            attributes: AttributeMode::Args,
            max_attributes: 10,
            max_value_len: 256,
            http_method_annotation: false,
        }
    }
}

/// The caller side of a segment's entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentLink {
    /// The caller segment's spanId; -1 for a root.
    pub parent_span_id: i64,
    /// Caller application name and type, for the server map's in-edge.
    pub application: Option<(String, i32)>,
    /// The host:port the caller targeted; else the entry's own endpoint is used.
    pub acceptor_host: Option<String>,
}

impl ParentLink {
    #[must_use]
    pub fn root() -> Self {
        Self {
            parent_span_id: -1,
            application: None,
            acceptor_host: None,
        }
    }
}

/// One span of a segment below the entry, in depth-first start order.
#[derive(Debug, Clone, Copy)]
pub struct EventIn<'a> {
    pub span: &'a Span,
    /// 1 for the entry's children.
    pub depth: i32,
}

/// An exception class to register with `RequestStringMetaData` under its id.
pub type ExceptionClass = (i32, String);

/// A client call made in a segment: its OTel span id and where it went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteCall {
    pub client_span: SpanId,
    pub destination: String,
}

/// What converting a segment yields besides the message.
#[derive(Debug, Default)]
pub struct Extras {
    pub exceptions: Vec<ExceptionClass>,
    pub calls: Vec<RemoteCall>,
    /// Depth of the last event (for chunks that follow).
    pub last_depth: i32,
}

fn ms(ns: u64) -> i64 {
    (ns / 1_000_000) as i64
}

fn elapsed_ms(span: &Span) -> i32 {
    let d = span
        .end_time_unix_nano
        .saturating_sub(span.start_time_unix_nano)
        / 1_000_000;
    i32::try_from(d).unwrap_or(i32::MAX)
}

/// The string-metadata id of an exception class: deterministic, so every bridge
/// instance uses the same id for the same class. First 31 bits of its SHA-256, never 0.
#[must_use]
pub fn string_id(text: &str) -> i32 {
    let h = Sha256::digest(text.as_bytes());
    let v = i32::from_be_bytes([h[0], h[1], h[2], h[3]]) & 0x7fff_ffff;
    if v == 0 { 1 } else { v }
}

fn pb_txid(t: &TransactionId) -> PTransactionId {
    PTransactionId {
        agent_id: t.agent_id.as_str().to_owned(),
        agent_start_time: t.agent_start_time,
        sequence: t.sequence,
    }
}

fn span_id_of(span: &Span) -> Option<SpanId> {
    <[u8; 8]>::try_from(span.span_id.as_slice())
        .ok()
        .map(SpanId)
}

/// Exception info for a span: its first `exception` event, else its ERROR status.
fn exception(span: &Span, extras: &mut Extras) -> Option<PIntStringValue> {
    let event = span.events.iter().find(|e| e.name == "exception");
    let (class, message) = match event {
        Some(e) => (
            text(&e.attributes, "exception.type").unwrap_or_else(|| "Exception".to_owned()),
            text(&e.attributes, "exception.message").unwrap_or_default(),
        ),
        None if is_error(span) => (
            "Error".to_owned(),
            span.status
                .as_ref()
                .map(|s| s.message.clone())
                .unwrap_or_default(),
        ),
        None => return None,
    };
    let id = string_id(&class);
    if !extras.exceptions.iter().any(|(i, _)| *i == id) {
        extras.exceptions.push((id, class));
    }
    Some(PIntStringValue {
        int_value: id,
        string_value: Some(message),
    })
}

fn is_error(span: &Span) -> bool {
    span.status
        .as_ref()
        .is_some_and(|s| s.code == StatusCode::Error as i32)
}

fn text(attrs: &[KeyValue], key: &str) -> Option<String> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| value_text(kv.value.as_ref()))
}

fn value_text(v: Option<&AnyValue>) -> Option<String> {
    Some(match v?.value.as_ref()? {
        Value::StringValue(s) => s.clone(),
        Value::BoolValue(b) => b.to_string(),
        Value::IntValue(i) => i.to_string(),
        Value::DoubleValue(d) => d.to_string(),
        Value::BytesValue(b) => format!("<{} bytes>", b.len()),
        Value::ArrayValue(a) => {
            let items: Vec<String> = a
                .values
                .iter()
                .filter_map(|x| value_text(Some(x)))
                .collect();
            format!("[{}]", items.join(","))
        }
        Value::KvlistValue(kv) => {
            let items: Vec<String> = kv
                .values
                .iter()
                .map(|k| {
                    format!(
                        "{}={}",
                        k.key,
                        value_text(k.value.as_ref()).unwrap_or_default()
                    )
                })
                .collect();
            format!("{{{}}}", items.join(","))
        }
        // Dictionary-encoded strings (profiles only) carry no text here.
        Value::StringValueStrindex(i) => format!("<string #{i}>"),
    })
}

/// [`value_text`], borrowing a string value instead of copying it.
fn value_str(v: Option<&AnyValue>) -> Option<Cow<'_, str>> {
    match v?.value.as_ref()? {
        Value::StringValue(s) => Some(Cow::Borrowed(s.as_str())),
        _ => value_text(v).map(Cow::Owned),
    }
}

/// The first `max` bytes of `s` (at a char boundary), copying only those.
fn cut_str(s: &str, max: usize) -> String {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

fn cut(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// The attributes not already shown, as args annotations or PAttributes.
fn leftovers(
    span: &Span,
    consumed: &[&str],
    opts: &Options,
) -> (Vec<PAnnotation>, Vec<PAttribute>) {
    let rest = span
        .attributes
        .iter()
        .filter(|kv| !consumed.contains(&kv.key.as_str()));
    match opts.attributes {
        AttributeMode::None => (Vec::new(), Vec::new()),
        AttributeMode::Args => {
            let n = opts.max_attributes.min(c::MAX_ARGS);
            let annos = rest
                .take(n)
                .enumerate()
                .map(|(i, kv)| {
                    // One allocation per argument: the value is borrowed when it is text.
                    let v = value_str(kv.value.as_ref()).unwrap_or_default();
                    let mut arg = String::with_capacity(kv.key.len() + 1 + v.len());
                    arg.push_str(&kv.key);
                    arg.push('=');
                    arg.push_str(&v);
                    anno_str(c::ANNO_ARGS0 - i as i32, cut(arg, opts.max_value_len))
                })
                .collect();
            (annos, Vec::new())
        }
        AttributeMode::Attributes => {
            let attrs = rest
                .take(opts.max_attributes)
                .map(|kv| PAttribute {
                    key: kv.key.clone(),
                    value: Some(attr_value(kv.value.as_ref(), opts)),
                })
                .collect();
            (Vec::new(), attrs)
        }
    }
}

fn attr_value(v: Option<&AnyValue>, opts: &Options) -> PAttributeValue {
    use p_attribute_value::Field as F;
    let field = match v.and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => F::StringValue(cut_str(s, opts.max_value_len)),
        Some(Value::BoolValue(b)) => F::BoolValue(*b),
        Some(Value::IntValue(i)) => F::LongValue(*i),
        Some(Value::DoubleValue(d)) => F::DoubleValue(*d),
        _ => F::StringValue(cut(value_text(v).unwrap_or_default(), opts.max_value_len)),
    };
    PAttributeValue { field: Some(field) }
}

/// Builds one event; `prev_start_ms` is the previous event's start (or the base time).
fn event(
    input: &EventIn<'_>,
    sequence: i32,
    prev_start_ms: i64,
    language: &str,
    opts: &Options,
    extras: &mut Extras,
) -> PSpanEvent {
    let span = input.span;
    let m = semconv::map_event(span, language);
    let (args, attribute) = leftovers(span, &m.consumed, opts);
    // Sized once: no regrowth when the args are appended.
    let mut annotation = Vec::with_capacity(1 + m.annotations.len() + args.len());
    annotation.push(anno_str(c::ANNO_API, span.name.clone()));
    annotation.extend(m.annotations);
    annotation.extend(args);
    let next_span_id = match span_id_of(span) {
        Some(id) if m.remote_call => {
            extras.calls.push(RemoteCall {
                client_span: id,
                destination: m.destination_id.clone(),
            });
            mapping::next_span_id(id)
        }
        _ => -1,
    };
    // The mapped strings move into the message (no copy).
    let next_event = (m.remote_call || !m.destination_id.is_empty()).then_some(PNextEvent {
        field: Some(p_next_event::Field::MessageEvent(PMessageEvent {
            next_span_id,
            end_point: m.end_point,
            destination_id: m.destination_id,
        })),
    });
    let start = ms(span.start_time_unix_nano);
    PSpanEvent {
        sequence,
        depth: input.depth,
        start_elapsed: i32::try_from(start - prev_start_ms).unwrap_or(0),
        end_elapsed: elapsed_ms(span),
        service_type: m.service_type,
        annotation,
        api_id: 0,
        exception_info: exception(span, extras),
        next_event,
        async_event: 0,
        attribute,
    }
}

/// A whole segment: the entry and its descendants.
pub struct Segment<'a> {
    pub agent: &'a AgentIdentity,
    pub txid: &'a TransactionId,
    pub span_id: i64,
    pub parent: &'a ParentLink,
    pub entry: &'a Span,
    pub events: &'a [EventIn<'a>],
}

/// Converts a segment into a `PSpan`.
#[must_use]
pub fn span(seg: &Segment<'_>, opts: &Options) -> (PSpan, Extras) {
    let mut extras = Extras::default();
    let e = seg.entry;
    let entry = semconv::map_entry(e, seg.agent.service_type, opts.http_method_annotation);
    let start = ms(e.start_time_unix_nano);
    let mut prev = start;
    let mut events = Vec::with_capacity(seg.events.len());
    for (i, input) in seg.events.iter().enumerate() {
        events.push(event(
            input,
            i as i32,
            prev,
            &seg.agent.language,
            opts,
            &mut extras,
        ));
        prev = ms(input.span.start_time_unix_nano);
        extras.last_depth = input.depth;
    }
    let (args, attribute) = leftovers(e, &entry.consumed, opts);
    let mut annotation = Vec::with_capacity(1 + entry.annotations.len() + args.len());
    annotation.push(anno_str(c::ANNO_API, e.name.clone()));
    annotation.extend(entry.annotations);
    annotation.extend(args);
    let parent_info = seg
        .parent
        .application
        .as_ref()
        .map(|(name, ty)| PParentInfo {
            parent_application_name: name.clone(),
            parent_application_type: *ty,
            acceptor_host: seg
                .parent
                .acceptor_host
                .clone()
                .unwrap_or_else(|| entry.end_point.clone()),
            parent_service_name: String::new(),
        });
    let exception_info = exception(e, &mut extras);
    let span = PSpan {
        version: 1,
        transaction_id: Some(pb_txid(seg.txid)),
        span_id: seg.span_id,
        parent_span_id: seg.parent.parent_span_id,
        start_time: start,
        elapsed: elapsed_ms(e),
        api_id: 0,
        service_type: entry.service_type,
        accept_event: Some(PAcceptEvent {
            rpc: entry.rpc,
            end_point: entry.end_point,
            remote_addr: entry.remote_addr,
            parent_info,
        }),
        annotation,
        flag: 0,
        err: i32::from(is_error(e)),
        span_event: events,
        exception_info,
        application_service_type: seg.agent.service_type,
        logging_transaction_info: 0,
        attribute,
    };
    (span, extras)
}

/// Late events of an already sent segment.
pub struct Late<'a> {
    pub agent: &'a AgentIdentity,
    pub txid: &'a TransactionId,
    /// The segment's spanId.
    pub span_id: i64,
    /// The sequence number the first late event takes.
    pub first_sequence: i32,
    pub events: &'a [EventIn<'a>],
}

/// Converts late events into a `PSpanChunk` whose events continue the span's sequence.
#[must_use]
pub fn chunk(late: &Late<'_>, opts: &Options) -> (PSpanChunk, Extras) {
    let mut extras = Extras::default();
    let key_time = late
        .events
        .iter()
        .map(|e| ms(e.span.start_time_unix_nano))
        .min()
        .unwrap_or(0);
    let mut prev = key_time;
    let mut events = Vec::with_capacity(late.events.len());
    for (i, input) in late.events.iter().enumerate() {
        events.push(event(
            input,
            late.first_sequence + i as i32,
            prev,
            &late.agent.language,
            opts,
            &mut extras,
        ));
        prev = ms(input.span.start_time_unix_nano);
        extras.last_depth = input.depth;
    }
    let chunk = PSpanChunk {
        version: 1,
        transaction_id: Some(pb_txid(late.txid)),
        span_id: late.span_id,
        end_point: String::new(),
        span_event: events,
        application_service_type: late.agent.service_type,
        key_time,
        local_async_id: None,
    };
    (chunk, extras)
}
