//! PSpan, PSpanChunk and PSpanEvent → OTLP spans, by the identity contract's reverse
//! direction (spec `ids.md` §8). Pure: no I/O, no clock, no panics on input.
//!
//! - trace id from the txid (§2), `ppb=tx:<txid>` in every span's `trace_state`;
//! - a PSpan `s` keeps id `s`; its parent is `mix⁻¹(s)` unless `parentSpanId == -1`;
//! - an event with `nextSpanId = n` is a CLIENT span with id `mix⁻¹(n)`; any other event
//!   gets `SHA-256(txid ‖ spanId ‖ asyncId ‖ sequence)[0..8]` (see [`event_span_id`]);
//! - event parents follow depth; an async chunk's depth-1 events hang under the event
//!   that opened the async id (passed in by the caller, who keeps it per span).

use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, SpanKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use sha2::{Digest, Sha256};

use super::metadata::{AgentMeta, AgentSummary};
use super::semconv::{self, annotation_attribute};
use crate::exporter::pinpoint::proto::{
    PIntStringValue, PSpan, PSpanChunk, PSpanEvent, PTransactionId, p_next_event,
};
use crate::ids::entries::BridgeEntry;
use crate::ids::mapping::{parent_id_for_pinpoint_span, txid_to_trace_id};
use crate::ids::{AgentId, TransactionId, TxidError};

/// Name given to a span or event whose API metadata never arrived (as the Pinpoint web).
pub const API_NOT_FOUND: &str = "API-METADATA-NOT-FOUND";
/// Scope of every converted span.
pub const SCOPE_NAME: &str = "otel-pinpoint-bridge/pinpoint-receiver";

const SPAN_FLAGS_HAS_IS_REMOTE: u32 = 0x100;
const SPAN_FLAGS_IS_REMOTE: u32 = 0x200;

/// Why a span message cannot be converted (the collector drops these too).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    #[error("unsupported version:{0} (expected 1)")]
    Version(i32),
    #[error("transactionId is required")]
    NoTransactionId,
    #[error("transactionId: {0}")]
    Txid(TxidError),
    #[error("PSpanMessage has neither span nor spanChunk")]
    Empty,
}

impl ConvertError {
    /// Metric label.
    #[must_use]
    pub fn label(&self) -> &'static str {
        match self {
            Self::Version(_) => "version",
            Self::NoTransactionId => "no_transaction_id",
            Self::Txid(_) => "invalid_transaction_id",
            Self::Empty => "empty",
        }
    }
}

/// The sending agent, from its gRPC headers.
#[derive(Debug, Clone)]
pub struct Source<'a> {
    pub application_name: &'a str,
    pub agent_id: &'a str,
    pub agent_name: Option<&'a str>,
    pub agent_start_time: i64,
    /// The `servicetype` header, when sent.
    pub service_type: Option<i32>,
    /// agentId of OTel-born transaction ids (§2).
    pub marker: AgentId,
}

/// Metadata a conversion needed but did not find (placeholders were used).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Missing {
    pub api: u32,
    pub string: u32,
    pub sql: u32,
    /// An async chunk whose opening event is unknown (its span has not arrived).
    pub opener: bool,
}

impl Missing {
    #[must_use]
    pub fn any(&self) -> bool {
        self.api + self.string + self.sql > 0 || self.opener
    }
}

/// The result of converting one span or chunk.
#[derive(Debug, Default)]
pub struct Converted {
    pub spans: Vec<Span>,
    pub missing: Missing,
    /// `(asyncId, OTel id of the event that opened it)`, for the span's later chunks.
    pub openers: Vec<(i32, [u8; 8])>,
    pub txid: Option<TransactionId>,
}

/// The transaction id of a span message, as the collector reads it: an empty agentId
/// is the sender's own.
///
/// # Errors
/// [`ConvertError::NoTransactionId`] or [`ConvertError::Txid`].
pub fn transaction_id(
    tx: Option<&PTransactionId>,
    src: &Source<'_>,
) -> Result<TransactionId, ConvertError> {
    let tx = tx.ok_or(ConvertError::NoTransactionId)?;
    let agent = if tx.agent_id.is_empty() {
        src.agent_id
    } else {
        &tx.agent_id
    };
    Ok(TransactionId {
        agent_id: AgentId::new(agent).map_err(ConvertError::Txid)?,
        agent_start_time: tx.agent_start_time,
        sequence: tx.sequence,
    })
}

/// The OTel id of an event without a remote child:
/// `SHA-256(canonical txid ‖ spanId ‖ asyncId ‖ sequence)[0..8]`, where spanId is 8
/// bytes and asyncId and sequence 4 bytes each, big-endian two's complement; an
/// all-zero result becomes `…01`. asyncId is 0 for a span's own events and for chunks
/// without `localAsyncId`.
#[must_use]
pub fn event_span_id(tx: &TransactionId, span_id: i64, async_id: i32, sequence: i32) -> [u8; 8] {
    let mut h = Sha256::new();
    tx.for_each_canonical_part(|p| h.update(p));
    h.update(span_id.to_be_bytes());
    h.update(async_id.to_be_bytes());
    h.update(sequence.to_be_bytes());
    let d = h.finalize();
    let mut id = [0u8; 8];
    id.copy_from_slice(&d[..8]);
    if id == [0; 8] {
        id[7] = 1;
    }
    id
}

fn trace_state(tx: &TransactionId) -> String {
    let mut s = String::from("ppb=");
    BridgeEntry {
        txid: Some(*tx),
        ..BridgeEntry::default()
    }
    .write(&mut s);
    s
}

fn ms_to_ns(ms: i64) -> u64 {
    u64::try_from(ms).unwrap_or(0).saturating_mul(1_000_000)
}

/// Converts a PSpan: the entry span and its events.
///
/// # Errors
/// The span is not a valid version-1 span with a transaction id.
pub fn convert_span(
    span: &PSpan,
    src: &Source<'_>,
    meta: &AgentMeta,
) -> Result<Converted, ConvertError> {
    if span.version != 1 {
        return Err(ConvertError::Version(span.version));
    }
    let tx = transaction_id(span.transaction_id.as_ref(), src)?;
    let trace_id = txid_to_trace_id(&tx, src.marker).0.to_vec();
    let state = trace_state(&tx);
    let mut out = Converted {
        txid: Some(tx),
        ..Converted::default()
    };
    let id = span.span_id.to_be_bytes();
    let (parent, flags) = if span.parent_span_id == -1 {
        (Vec::new(), SPAN_FLAGS_HAS_IS_REMOTE)
    } else {
        let p = parent_id_for_pinpoint_span(span.span_id).map(|p| p.0.to_vec());
        (
            p.unwrap_or_default(),
            SPAN_FLAGS_HAS_IS_REMOTE | SPAN_FLAGS_IS_REMOTE,
        )
    };
    let start = span.start_time;
    let end = start.saturating_add(i64::from(span.elapsed.max(0)));
    let api_name = semconv::api_annotation(&span.annotation);
    let name = match &span.accept_event {
        Some(a) if !a.rpc.is_empty() => a.rpc.clone(),
        _ => name_for(span.api_id, api_name, meta, &mut out.missing),
    };
    let mut attributes = vec![int_kv(
        "pinpoint.service_type",
        i64::from(span.service_type),
    )];
    if span.api_id != 0 {
        attributes.push(int_kv("pinpoint.api_id", i64::from(span.api_id)));
        if let Some(api) = meta.api.get(&span.api_id) {
            attributes.push(str_kv("code.function.name", api));
        }
    }
    if let Some(a) = &span.accept_event {
        semconv::accept_attributes(a, &mut attributes);
    }
    let mut sink = AnnotationSink {
        attributes: &mut attributes,
        meta,
        missing: &mut out.missing,
    };
    sink.annotations(&span.annotation, SpanKind::Server);
    semconv::p_attributes(&span.attribute, &mut attributes);
    let mut events = Vec::new();
    let err = exception(
        span.exception_info.as_ref(),
        end,
        meta,
        &mut out.missing,
        &mut events,
    );
    let status = error_status(span.err > 0 || err.is_some(), err);
    out.spans.push(Span {
        trace_id: trace_id.clone(),
        span_id: id.to_vec(),
        trace_state: state.clone(),
        parent_span_id: parent,
        flags,
        name,
        kind: SpanKind::Server as i32,
        start_time_unix_nano: ms_to_ns(start),
        end_time_unix_nano: ms_to_ns(end),
        attributes,
        events,
        status,
        ..Span::default()
    });
    let ctx = EventContext {
        tx: &tx,
        trace_id: &trace_id,
        trace_state: &state,
        span_id: span.span_id,
        async_id: 0,
        base_time: start,
        root: id,
    };
    convert_events(&span.span_event, &ctx, meta, &mut out);
    Ok(out)
}

/// Converts a PSpanChunk. `opener` is the OTel id of the event that opened the chunk's
/// async id, when its span has been seen; without it the chunk's top events hang under
/// the span itself and [`Missing::opener`] is set.
///
/// # Errors
/// The chunk is not a valid version-1 chunk with a transaction id.
pub fn convert_chunk(
    chunk: &PSpanChunk,
    src: &Source<'_>,
    meta: &AgentMeta,
    opener: Option<[u8; 8]>,
) -> Result<Converted, ConvertError> {
    if chunk.version != 1 {
        return Err(ConvertError::Version(chunk.version));
    }
    let tx = transaction_id(chunk.transaction_id.as_ref(), src)?;
    let trace_id = txid_to_trace_id(&tx, src.marker).0.to_vec();
    let state = trace_state(&tx);
    let mut out = Converted {
        txid: Some(tx),
        ..Converted::default()
    };
    let async_id = chunk.local_async_id.as_ref().map_or(0, |a| a.async_id);
    let root = match (async_id, opener) {
        (0, _) => chunk.span_id.to_be_bytes(),
        (_, Some(o)) => o,
        (_, None) => {
            out.missing.opener = true;
            chunk.span_id.to_be_bytes()
        }
    };
    let base_time = if chunk.key_time > 0 {
        chunk.key_time
    } else {
        0
    };
    let ctx = EventContext {
        tx: &tx,
        trace_id: &trace_id,
        trace_state: &state,
        span_id: chunk.span_id,
        async_id,
        base_time,
        root,
    };
    convert_events(&chunk.span_event, &ctx, meta, &mut out);
    Ok(out)
}

struct EventContext<'a> {
    tx: &'a TransactionId,
    trace_id: &'a [u8],
    trace_state: &'a str,
    span_id: i64,
    async_id: i32,
    base_time: i64,
    /// Parent of depth-1 events.
    root: [u8; 8],
}

fn next_span_id(e: &PSpanEvent) -> Option<&crate::exporter::pinpoint::proto::PMessageEvent> {
    match e.next_event.as_ref()?.field.as_ref()? {
        p_next_event::Field::MessageEvent(m) => Some(m),
    }
}

fn convert_events(
    events: &[PSpanEvent],
    ctx: &EventContext<'_>,
    meta: &AgentMeta,
    out: &mut Converted,
) {
    let mut order: Vec<&PSpanEvent> = events.iter().collect();
    order.sort_by_key(|e| e.sequence);
    // (depth, id) of the open ancestors.
    let mut stack: Vec<(i32, [u8; 8])> = Vec::new();
    let mut prev_start = ctx.base_time;
    let mut prev_depth = 1;
    for e in order {
        let depth = if e.depth <= 0 { prev_depth } else { e.depth };
        prev_depth = depth;
        let start = prev_start.saturating_add(i64::from(e.start_elapsed));
        prev_start = start;
        let end = start.saturating_add(i64::from(e.end_elapsed.max(0)));
        let message = next_span_id(e);
        let remote = message
            .filter(|m| m.next_span_id != -1 && m.next_span_id != 0)
            .and_then(|m| parent_id_for_pinpoint_span(m.next_span_id));
        let id = match remote {
            Some(r) => r.0,
            None => event_span_id(ctx.tx, ctx.span_id, ctx.async_id, e.sequence),
        };
        while stack.last().is_some_and(|(d, _)| *d >= depth) {
            stack.pop();
        }
        let parent = stack.last().map_or(ctx.root, |(_, p)| *p);
        stack.push((depth, id));
        if e.async_event != 0 {
            out.openers.push((e.async_event, id));
        }
        let kind = semconv::event_kind(e, remote.is_some());
        let api_name = semconv::api_annotation(&e.annotation);
        let name = name_for(e.api_id, api_name, meta, &mut out.missing);
        let mut attributes = vec![int_kv("pinpoint.service_type", i64::from(e.service_type))];
        if e.api_id != 0 {
            attributes.push(int_kv("pinpoint.api_id", i64::from(e.api_id)));
        }
        if matches!(kind, SpanKind::Client | SpanKind::Producer)
            && let Some(m) = message
        {
            semconv::destination_attributes(&m.destination_id, &mut attributes);
        }
        semconv::system_attributes(e.service_type, &mut attributes);
        let mut sink = AnnotationSink {
            attributes: &mut attributes,
            meta,
            missing: &mut out.missing,
        };
        sink.annotations(&e.annotation, kind);
        semconv::p_attributes(&e.attribute, &mut attributes);
        let mut span_events = Vec::new();
        let err = exception(
            e.exception_info.as_ref(),
            end,
            meta,
            &mut out.missing,
            &mut span_events,
        );
        let status = error_status(err.is_some(), err);
        out.spans.push(Span {
            trace_id: ctx.trace_id.to_vec(),
            span_id: id.to_vec(),
            trace_state: ctx.trace_state.to_owned(),
            parent_span_id: parent.to_vec(),
            flags: SPAN_FLAGS_HAS_IS_REMOTE,
            name,
            kind: kind as i32,
            start_time_unix_nano: ms_to_ns(start),
            end_time_unix_nano: ms_to_ns(end),
            attributes,
            events: span_events,
            status,
            ..Span::default()
        });
    }
}

/// Name from `apiId` (registered metadata) or the `API(12)` annotation (with apiId 0).
fn name_for(
    api_id: i32,
    api_annotation: Option<&str>,
    meta: &AgentMeta,
    missing: &mut Missing,
) -> String {
    if api_id != 0 {
        if let Some(n) = meta.api.get(&api_id) {
            return n.to_string();
        }
        missing.api += 1;
        return API_NOT_FOUND.to_owned();
    }
    api_annotation.map_or_else(|| "pinpoint.event".to_owned(), str::to_owned)
}

/// Adds the `exception` event for exceptionInfo; returns the status message.
fn exception(
    info: Option<&PIntStringValue>,
    at_ms: i64,
    meta: &AgentMeta,
    missing: &mut Missing,
    events: &mut Vec<Event>,
) -> Option<String> {
    let info = info?;
    let class = match meta.strings.get(&info.int_value) {
        Some(c) => c.to_string(),
        None => {
            missing.string += 1;
            format!("unknown exception (string id {})", info.int_value)
        }
    };
    let message = info.string_value.clone().unwrap_or_default();
    events.push(Event {
        time_unix_nano: ms_to_ns(at_ms),
        name: "exception".to_owned(),
        attributes: vec![
            str_kv("exception.type", &class),
            str_kv("exception.message", &message),
        ],
        dropped_attributes_count: 0,
    });
    Some(if message.is_empty() { class } else { message })
}

fn error_status(error: bool, message: Option<String>) -> Option<Status> {
    error.then(|| Status {
        message: message.unwrap_or_default(),
        code: StatusCode::Error as i32,
    })
}

/// Reads annotations into attributes, resolving SQL ids from metadata.
pub(super) struct AnnotationSink<'a> {
    pub attributes: &'a mut Vec<KeyValue>,
    pub meta: &'a AgentMeta,
    pub missing: &'a mut Missing,
}

impl AnnotationSink<'_> {
    fn annotations(
        &mut self,
        annotations: &[crate::exporter::pinpoint::proto::PAnnotation],
        kind: SpanKind,
    ) {
        for a in annotations {
            annotation_attribute(a, kind, self);
        }
    }
}

pub(super) fn str_kv(key: &str, v: &str) -> KeyValue {
    KeyValue {
        key_strindex: 0,
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.to_owned())),
        }),
    }
}

pub(super) fn int_kv(key: &str, v: i64) -> KeyValue {
    KeyValue {
        key_strindex: 0,
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(v)),
        }),
    }
}

/// The resource of an agent's spans (§8 Identity).
#[must_use]
pub fn resource(src: &Source<'_>, info: Option<&AgentSummary>) -> Resource {
    let mut a = vec![
        str_kv("service.name", src.application_name),
        str_kv("service.instance.id", src.agent_id),
        str_kv("pinpoint.agent_id", src.agent_id),
        int_kv("pinpoint.agent_start_time", src.agent_start_time),
    ];
    if let Some(n) = src.agent_name.filter(|n| !n.is_empty()) {
        a.push(str_kv("pinpoint.agent_name", n));
    }
    let service_type = src
        .service_type
        .or_else(|| info.map(|i| i.service_type))
        .unwrap_or(0);
    if service_type != 0 {
        a.push(int_kv("pinpoint.service_type", i64::from(service_type)));
    }
    if let Some(lang) = semconv::sdk_language(service_type) {
        a.push(str_kv("telemetry.sdk.language", lang));
    }
    if let Some(i) = info {
        if !i.hostname.is_empty() {
            a.push(str_kv("host.name", &i.hostname));
        }
        if !i.ip.is_empty() {
            a.push(KeyValue {
                key_strindex: 0,
                key: "host.ip".to_owned(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::ArrayValue(
                        opentelemetry_proto::tonic::common::v1::ArrayValue {
                            values: vec![AnyValue {
                                value: Some(any_value::Value::StringValue(i.ip.clone())),
                            }],
                        },
                    )),
                }),
            });
        }
        if i.pid > 0 {
            a.push(int_kv("process.pid", i64::from(i.pid)));
        }
        if !i.agent_version.is_empty() {
            a.push(str_kv("pinpoint.agent_version", &i.agent_version));
        }
    }
    Resource {
        attributes: a,
        ..Resource::default()
    }
}

/// Wraps converted spans of one agent in one ResourceSpans.
#[must_use]
pub fn resource_spans(resource: Resource, spans: Vec<Span>) -> ResourceSpans {
    ResourceSpans {
        resource: Some(resource),
        scope_spans: vec![ScopeSpans {
            scope: Some(InstrumentationScope {
                name: SCOPE_NAME.to_owned(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                ..InstrumentationScope::default()
            }),
            spans,
            schema_url: String::new(),
        }],
        schema_url: String::new(),
    }
}

#[cfg(test)]
#[path = "convert_tests.rs"]
mod tests;
