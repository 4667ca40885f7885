//! Pure mapping of OTLP spans to the Zipkin v2 [`model`], following the decisions of
//! `shared/spec/otel-zipkin-pyroscope.md` (section "OTel → Zipkin v2"). No I/O.
//!
//! - ids: lower-case hex; the trace id always has 32 digits; an all-zero parent means root.
//! - kind: SERVER/CLIENT/PRODUCER/CONSUMER; INTERNAL and UNSPECIFIED are left out.
//! - time: microseconds, rounded down; a duration under 1 µs (also 0) becomes 1, Zipkin's
//!   minimum; an end before the start rejects the span.
//! - `localEndpoint.serviceName` = resource `service.name` (else `unknown_service`);
//!   `remoteEndpoint` (CLIENT and PRODUCER only) from the first attribute of
//!   [`REMOTE_ENDPOINT_RANKING`] that the span has.
//! - tags: resource attributes (except `service.name`), then span attributes (a span
//!   attribute wins over a resource attribute of the same key), then the bridge's own tags
//!   (status, scope, dropped counts, tracestate, Pinpoint ids), which win over both.
//! - events: annotations `"<name>: <attributes as a JSON object>"`, or just the name.
//!
//! A span that cannot be mapped (bad ids, end before start) is left out and reported in
//! [`Converted::rejected`]; the rest of the batch is mapped as usual.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value as AV};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span};
use serde_json::Value;

use super::model::{self, Annotation, Endpoint, Kind, to_hex};
use super::values::{json_value, tag_value};
use crate::ids::{AgentId, TraceId, otlp};

/// Resource attribute naming the service.
pub const SERVICE_NAME: &str = "service.name";
/// `localEndpoint.serviceName` when the resource has no `service.name`.
pub const UNKNOWN_SERVICE: &str = "unknown_service";
/// Tag holding the status code name (`OK`, `ERROR`); absent when unset.
pub const TAG_STATUS_CODE: &str = "otel.status_code";
/// Tag holding the status description; present only when the status is ERROR.
pub const TAG_ERROR: &str = "error";
pub const TAG_SCOPE_NAME: &str = "otel.scope.name";
pub const TAG_SCOPE_VERSION: &str = "otel.scope.version";
/// The deprecated names of the scope tags, still read by older tools.
pub const TAG_LIBRARY_NAME: &str = "otel.library.name";
pub const TAG_LIBRARY_VERSION: &str = "otel.library.version";
pub const TAG_DROPPED_ATTRIBUTES: &str = "otel.dropped_attributes_count";
pub const TAG_DROPPED_EVENTS: &str = "otel.dropped_events_count";
pub const TAG_DROPPED_LINKS: &str = "otel.dropped_links_count";
/// The span's W3C tracestate, when it has one.
pub const TAG_TRACESTATE: &str = "w3c.tracestate";
/// Pinpoint transaction id of the trace, to jump from Zipkin to Pinpoint.
pub const TAG_PINPOINT_TXID: &str = "pinpoint.transaction_id";
/// Pinpoint span id of the span (decimal i64).
pub const TAG_PINPOINT_SPAN_ID: &str = "pinpoint.span_id";

/// Where `remoteEndpoint` comes from, best first (the OTel Zipkin mapping's ranking):
/// the attribute, and the attribute that gives its port, if any.
pub const REMOTE_ENDPOINT_RANKING: &[(&str, Option<&str>)] = &[
    ("peer.service", None),
    ("server.address", None),
    ("net.peer.name", None),
    ("network.peer.address", Some("network.peer.port")),
    ("server.socket.domain", None),
    ("server.socket.address", Some("server.socket.port")),
    ("net.sock.peer.name", None),
    ("net.sock.peer.addr", Some("net.sock.peer.port")),
    ("peer.hostname", None),
    ("peer.address", None),
    ("db.name", None),
];

/// The result of mapping a batch.
#[derive(Debug, Default)]
pub struct Converted {
    pub spans: Vec<model::Span>,
    pub rejected: Vec<Rejected>,
}

/// A span left out of the export, with enough to find it in a debug log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub reason: Reason,
    /// Hex of the ids as received (possibly malformed).
    pub trace_id: String,
    pub span_id: String,
}

/// Why a span cannot be exported to Zipkin. [`Reason::as_str`] is its metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Not 16 bytes, or all zero.
    BadTraceId,
    /// Not 8 bytes, or all zero.
    BadSpanId,
    /// Neither empty nor 8 bytes.
    BadParentId,
    /// `end_time_unix_nano < start_time_unix_nano`.
    EndBeforeStart,
}

impl Reason {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadTraceId => "bad_trace_id",
            Self::BadSpanId => "bad_span_id",
            Self::BadParentId => "bad_parent_id",
            Self::EndBeforeStart => "end_before_start",
        }
    }
}

/// Maps every span of `resource_spans` to Zipkin.
pub fn convert<'a>(resource_spans: impl IntoIterator<Item = &'a ResourceSpans>) -> Converted {
    let mut out = Converted::default();
    for rs in resource_spans {
        let attributes = rs.resource.as_ref().map_or(&[][..], |r| &r.attributes[..]);
        let mut service = None;
        let mut resource_tags = BTreeMap::new();
        for kv in attributes {
            if kv.key == SERVICE_NAME {
                service = tag_value(kv.value.as_ref());
            } else if let Some(v) = tag_value(kv.value.as_ref()) {
                resource_tags.insert(kv.key.clone(), v);
            }
        }
        let local = Endpoint {
            service_name: Some(service.unwrap_or_else(|| UNKNOWN_SERVICE.to_owned())),
            ..Endpoint::default()
        };
        for ss in &rs.scope_spans {
            let mut base = resource_tags.clone();
            if let Some(scope) = &ss.scope {
                for (keys, value) in [
                    ([TAG_SCOPE_NAME, TAG_LIBRARY_NAME], &scope.name),
                    ([TAG_SCOPE_VERSION, TAG_LIBRARY_VERSION], &scope.version),
                ] {
                    if !value.is_empty() {
                        for k in keys {
                            base.insert(k.to_owned(), value.clone());
                        }
                    }
                }
            }
            for span in &ss.spans {
                match convert_span(span, &local, &base) {
                    Ok(z) => out.spans.push(z),
                    Err(reason) => out.rejected.push(Rejected {
                        reason,
                        trace_id: to_hex(&span.trace_id),
                        span_id: to_hex(&span.span_id),
                    }),
                }
            }
        }
    }
    out
}

/// What a span's checks give: its ids, kind and duration (µs, at least 1).
#[derive(Debug, Clone, Copy)]
pub(super) struct Ids {
    pub trace_id: [u8; 16],
    pub parent_id: Option<[u8; 8]>,
    pub id: [u8; 8],
    pub kind: Option<Kind>,
    pub duration: u64,
}

/// Checks the span's ids and times, or says why it cannot be mapped.
pub(super) fn checked_ids(span: &Span) -> Result<Ids, Reason> {
    let trace_id: [u8; 16] = nonzero_id(&span.trace_id).ok_or(Reason::BadTraceId)?;
    let id: [u8; 8] = nonzero_id(&span.span_id).ok_or(Reason::BadSpanId)?;
    let parent_id = match span.parent_span_id.len() {
        0 => None,
        8 => nonzero_id(&span.parent_span_id),
        _ => return Err(Reason::BadParentId),
    };
    let (start, end) = (span.start_time_unix_nano, span.end_time_unix_nano);
    let elapsed = end.checked_sub(start).ok_or(Reason::EndBeforeStart)?;
    let kind = match SpanKind::try_from(span.kind) {
        Ok(SpanKind::Server) => Some(Kind::Server),
        Ok(SpanKind::Client) => Some(Kind::Client),
        Ok(SpanKind::Producer) => Some(Kind::Producer),
        Ok(SpanKind::Consumer) => Some(Kind::Consumer),
        _ => None,
    };
    Ok(Ids {
        trace_id,
        parent_id,
        id,
        kind,
        duration: (elapsed / 1000).max(1),
    })
}

/// The remote endpoint of a span of `kind` (CLIENT and PRODUCER only).
pub(super) fn remote_endpoint_of(kind: Kind, span: &Span) -> Option<Endpoint> {
    remote_of(kind, span).map(Remote::into_endpoint)
}

/// A remote endpoint as found, its name borrowed from the span where it can be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Remote<'a> {
    pub addr: RemoteAddr<'a>,
    /// Never 0.
    pub port: Option<u16>,
}

/// Where [`Remote`] goes: an IP address to `ipv4`/`ipv6`, anything else to `serviceName`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum RemoteAddr<'a> {
    Name(Cow<'a, str>),
    V4(Ipv4Addr),
    V6(Ipv6Addr),
}

impl Remote<'_> {
    fn into_endpoint(self) -> Endpoint {
        let mut e = Endpoint {
            port: self.port,
            ..Endpoint::default()
        };
        match self.addr {
            RemoteAddr::Name(n) => e.service_name = Some(n.into_owned()),
            RemoteAddr::V4(ip) => e.ipv4 = Some(ip),
            RemoteAddr::V6(ip) => e.ipv6 = Some(ip),
        }
        e
    }
}

/// The remote endpoint of a span of `kind` (CLIENT and PRODUCER only), borrowed.
pub(super) fn remote_of(kind: Kind, span: &Span) -> Option<Remote<'_>> {
    match kind {
        Kind::Client | Kind::Producer => remote_endpoint(&span.attributes),
        _ => None,
    }
}

/// Maps one span; `base` holds the resource and scope tags.
fn convert_span(
    span: &Span,
    local: &Endpoint,
    base: &BTreeMap<String, String>,
) -> Result<model::Span, Reason> {
    let ids = checked_ids(span)?;
    Ok(model::Span {
        trace_id: ids.trace_id,
        parent_id: ids.parent_id,
        id: ids.id,
        kind: ids.kind,
        name: span.name.clone(),
        timestamp: span.start_time_unix_nano / 1000,
        duration: ids.duration,
        local_endpoint: local.clone(),
        remote_endpoint: ids.kind.and_then(|k| remote_endpoint_of(k, span)),
        annotations: annotations(span),
        tags: tags(span, &ids.trace_id, base.clone()),
    })
}

/// `bytes` as an id of `N` bytes, unless its length is wrong or it is all zero.
fn nonzero_id<const N: usize>(bytes: &[u8]) -> Option<[u8; N]> {
    let id: [u8; N] = bytes.try_into().ok()?;
    id.iter().any(|b| *b != 0).then_some(id)
}

/// The tags of `span`, added over `tags` (resource and scope tags).
fn tags(
    span: &Span,
    trace_id: &[u8; 16],
    mut tags: BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    for kv in &span.attributes {
        if let Some(v) = tag_value(kv.value.as_ref()) {
            tags.insert(kv.key.clone(), v);
        }
    }
    // `error` marks a span as failed in Zipkin: only an ERROR status may set it, so an
    // attribute of that name (such as `error: false`) is dropped.
    tags.remove(TAG_ERROR);
    let status = span.status.as_ref();
    match status.map(|s| StatusCode::try_from(s.code)) {
        Some(Ok(StatusCode::Ok)) => {
            tags.insert(TAG_STATUS_CODE.to_owned(), "OK".to_owned());
        }
        Some(Ok(StatusCode::Error)) => {
            tags.insert(TAG_STATUS_CODE.to_owned(), "ERROR".to_owned());
            let message = status.map(|s| s.message.clone()).unwrap_or_default();
            tags.insert(TAG_ERROR.to_owned(), message);
        }
        _ => {}
    }
    for (key, count) in [
        (TAG_DROPPED_ATTRIBUTES, span.dropped_attributes_count),
        (TAG_DROPPED_EVENTS, span.dropped_events_count),
        (TAG_DROPPED_LINKS, span.dropped_links_count),
    ] {
        if count > 0 {
            tags.insert(key.to_owned(), count.to_string());
        }
    }
    if !span.trace_state.is_empty() {
        tags.insert(TAG_TRACESTATE.to_owned(), span.trace_state.clone());
    }
    if let Some((txid, span_id)) = pinpoint_tags(trace_id, span) {
        tags.insert(TAG_PINPOINT_TXID.to_owned(), txid);
        tags.insert(TAG_PINPOINT_SPAN_ID.to_owned(), span_id);
    }
    tags
}

/// The Pinpoint transaction id and span id of `span`, as tag values (ids.md sections 2
/// and 3, for traces born in OpenTelemetry).
///
/// `None` when the span id is not 8 bytes (never the case for a converted span).
fn pinpoint_tags(trace_id: &[u8; 16], span: &Span) -> Option<(String, String)> {
    let marker = pinpoint_marker()?;
    let txid = otlp::transaction_id(TraceId(*trace_id), span, marker);
    let id = otlp::pinpoint_span_id(span)?;
    Some((txid.to_string(), id.to_string()))
}

/// The agentId of OTel-born transaction ids in the tags (the Pinpoint exporter's default).
const PINPOINT_MARKER: &str = "otel";

/// [`PINPOINT_MARKER`] as an agent id.
pub(super) fn pinpoint_marker() -> Option<AgentId> {
    AgentId::new(PINPOINT_MARKER).ok()
}

/// The first attribute of [`REMOTE_ENDPOINT_RANKING`] that `attributes` has, as an
/// endpoint: an IP address goes to `ipv4`/`ipv6`, anything else to `serviceName`.
fn remote_endpoint(attributes: &[KeyValue]) -> Option<Remote<'_>> {
    let find = |key: &str| attributes.iter().find(|kv| kv.key == key);
    REMOTE_ENDPOINT_RANKING.iter().find_map(|(key, port_key)| {
        let value = find(key)?.value.as_ref();
        let value: Cow<'_, str> = match value.and_then(|v| v.value.as_ref()) {
            Some(AV::StringValue(s)) => Cow::Borrowed(s),
            _ => Cow::Owned(tag_value(value)?),
        };
        if value.is_empty() {
            return None;
        }
        let addr = match value.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => RemoteAddr::V4(ip),
            Ok(IpAddr::V6(ip)) => RemoteAddr::V6(ip),
            Err(_) => RemoteAddr::Name(value),
        };
        let port = port_key
            .and_then(find)
            .and_then(|kv| port(kv.value.as_ref()));
        Some(Remote { addr, port })
    })
}

/// A port number from an int or string attribute; 0 and out-of-range values are none.
fn port(v: Option<&AnyValue>) -> Option<u16> {
    let n = match v?.value.as_ref()? {
        AV::IntValue(i) => u16::try_from(*i).ok()?,
        AV::StringValue(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    (n != 0).then_some(n)
}

/// Events as annotations (exact duplicates left out: Zipkin wants them unique).
pub(super) fn annotations(span: &Span) -> Vec<Annotation> {
    let mut out: Vec<Annotation> = Vec::with_capacity(span.events.len());
    for event in &span.events {
        let value = if event.attributes.is_empty() {
            event.name.clone()
        } else {
            let attrs: serde_json::Map<String, Value> = event
                .attributes
                .iter()
                .map(|kv| (kv.key.clone(), json_value(kv.value.as_ref())))
                .collect();
            format!("{}: {}", event.name, Value::Object(attrs))
        };
        let a = Annotation {
            timestamp: event.time_unix_nano / 1000,
            value,
        };
        if !out.contains(&a) {
            out.push(a);
        }
    }
    out
}

#[cfg(test)]
#[path = "convert_tests.rs"]
mod tests;
