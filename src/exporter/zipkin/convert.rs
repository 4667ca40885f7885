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

use std::collections::BTreeMap;
use std::net::IpAddr;

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value as AV};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span};
use serde_json::Value;

use super::model::{self, Annotation, Endpoint, Kind, to_hex};
use super::values::{json_value, tag_value};

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

/// OTLP `Span.flags`: bit 8 says whether bit 9 (the parent is remote) is known.
const FLAG_HAS_IS_REMOTE: u32 = 0x100;
const FLAG_IS_REMOTE: u32 = 0x200;

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

/// Maps one span; `base` holds the resource and scope tags.
fn convert_span(
    span: &Span,
    local: &Endpoint,
    base: &BTreeMap<String, String>,
) -> Result<model::Span, Reason> {
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
    let remote_endpoint = match kind {
        Some(Kind::Client | Kind::Producer) => remote_endpoint(&span.attributes),
        _ => None,
    };
    Ok(model::Span {
        trace_id,
        parent_id,
        id,
        kind,
        name: span.name.clone(),
        timestamp: start / 1000,
        duration: (elapsed / 1000).max(1),
        local_endpoint: local.clone(),
        remote_endpoint,
        annotations: annotations(span),
        tags: tags(span, &trace_id, base.clone()),
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
    // ids: the integrator replaces this body with calls into `crate::ids` (the txid with
    // the configured marker, and its span-id mapping), which this branch does not have yet.
    // Until then it is the rule of ids.md for OTel-born traces, with the marker `otel`.
    let [
        a0,
        a1,
        a2,
        a3,
        a4,
        a5,
        a6,
        a7,
        b0,
        b1,
        b2,
        b3,
        b4,
        b5,
        b6,
        b7,
    ] = *trace_id;
    let txid = format!(
        "otel^{}^{}",
        i64::from_be_bytes([a0, a1, a2, a3, a4, a5, a6, a7]),
        i64::from_be_bytes([b0, b1, b2, b3, b4, b5, b6, b7])
    );
    let own: [u8; 8] = span.span_id.as_slice().try_into().ok()?;
    let parent: Option<[u8; 8]> = nonzero_id(&span.parent_span_id);
    let remote_parent = match parent {
        // The flags say whether the parent is remote, when the sender knew it...
        Some(p) if span.flags & FLAG_HAS_IS_REMOTE != 0 => {
            (span.flags & FLAG_IS_REMOTE != 0).then_some(p)
        }
        // ...otherwise a SERVER or CONSUMER span with a parent is an entry span.
        Some(p)
            if matches!(
                SpanKind::try_from(span.kind),
                Ok(SpanKind::Server | SpanKind::Consumer)
            ) =>
        {
            Some(p)
        }
        _ => None,
    };
    let id = match remote_parent {
        // An entry span: mix(parent), the value the caller's event holds as nextSpanId.
        Some(p) => i64::from_be_bytes(splitmix64_finalizer(u64::from_be_bytes(p)).to_be_bytes()),
        // A root or local span: its own id read as a big-endian i64.
        None => i64::from_be_bytes(own),
    };
    // -1 means "none" in Pinpoint.
    let id = if id == -1 { -2 } else { id };
    Some((txid, id.to_string()))
}

/// ids: the span-id bijection `mix` of ids.md section 3, SplitMix64's output finalizer
/// (shifts 30, 27, 31; multipliers 0xbf58476d1ce4e5b9, 0x94d049bb133111eb). Replaced
/// by `crate::ids` at integration.
fn splitmix64_finalizer(x: u64) -> u64 {
    let x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The first attribute of [`REMOTE_ENDPOINT_RANKING`] that `attributes` has, as an
/// endpoint: an IP address goes to `ipv4`/`ipv6`, anything else to `serviceName`.
fn remote_endpoint(attributes: &[KeyValue]) -> Option<Endpoint> {
    let find = |key: &str| attributes.iter().find(|kv| kv.key == key);
    REMOTE_ENDPOINT_RANKING.iter().find_map(|(key, port_key)| {
        let value = tag_value(find(key)?.value.as_ref()).filter(|v| !v.is_empty())?;
        let mut e = Endpoint::default();
        match value.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => e.ipv4 = Some(ip),
            Ok(IpAddr::V6(ip)) => e.ipv6 = Some(ip),
            Err(_) => e.service_name = Some(value),
        }
        e.port = port_key
            .and_then(find)
            .and_then(|kv| port(kv.value.as_ref()));
        Some(e)
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
fn annotations(span: &Span) -> Vec<Annotation> {
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
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::span::Event;
    use opentelemetry_proto::tonic::trace::v1::{ScopeSpans, Status};
    use serde_json::json;

    const TRACE: [u8; 16] = [
        0x0a, 0xf7, 0x65, 0x19, 0x16, 0xcd, 0x43, 0xdd, 0x84, 0x48, 0xeb, 0x21, 0x1c, 0x80, 0x31,
        0x9c,
    ];

    fn kv(key: &str, value: AV) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    fn s(key: &str, value: &str) -> KeyValue {
        kv(key, AV::StringValue(value.into()))
    }

    fn span(id: u8) -> Span {
        Span {
            trace_id: TRACE.to_vec(),
            span_id: vec![0, 0, 0, 0, 0, 0, 0, id],
            name: format!("span-{id}"),
            kind: SpanKind::Internal as i32,
            start_time_unix_nano: 1_700_000_000_123_456_789,
            end_time_unix_nano: 1_700_000_000_125_456_789,
            ..Default::default()
        }
    }

    fn batch(resource: Vec<KeyValue>, spans: Vec<Span>) -> ResourceSpans {
        ResourceSpans {
            resource: Some(Resource {
                attributes: resource,
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "lib".into(),
                    version: "1.0".into(),
                    ..Default::default()
                }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn one(span: Span) -> model::Span {
        let c = convert([&batch(vec![s("service.name", "svc")], vec![span])]);
        assert_eq!(c.rejected, vec![]);
        c.spans.into_iter().next().expect("one span")
    }

    #[test]
    fn client_span_maps_field_by_field() {
        let mut sp = span(2);
        sp.parent_span_id = vec![0, 0, 0, 0, 0, 0, 0, 1];
        sp.kind = SpanKind::Client as i32;
        sp.trace_state = "pp=svc:a;app:b;type:1000,vendor=x".into();
        sp.attributes = vec![
            s("server.address", "db.internal"),
            kv("server.port", AV::IntValue(5432)),
            kv("retries", AV::IntValue(3)),
            s("host.name", "from-span"),
        ];
        sp.dropped_attributes_count = 2;
        sp.dropped_links_count = 1;
        sp.events = vec![Event {
            time_unix_nano: 1_700_000_000_124_000_999,
            name: "retry".into(),
            attributes: vec![kv("attempt", AV::IntValue(2))],
            ..Default::default()
        }];
        sp.status = Some(Status {
            code: StatusCode::Error as i32,
            message: "timeout".into(),
        });
        let rs = batch(
            vec![
                s("service.name", "checkout"),
                s("host.name", "h1"),
                s("deployment.environment", "test"),
            ],
            vec![sp],
        );
        let c = convert([&rs]);
        assert_eq!(c.rejected, vec![]);
        assert_eq!(
            serde_json::to_value(&c.spans).expect("json"),
            json!([{
                "traceId": "0af7651916cd43dd8448eb211c80319c",
                "parentId": "0000000000000001",
                "id": "0000000000000002",
                "kind": "CLIENT",
                "name": "span-2",
                "timestamp": 1_700_000_000_123_456u64,
                "duration": 2000,
                "localEndpoint": {"serviceName": "checkout"},
                "remoteEndpoint": {"serviceName": "db.internal"},
                "annotations": [{"timestamp": 1_700_000_000_124_000u64, "value": "retry: {\"attempt\":2}"}],
                "tags": {
                    "deployment.environment": "test",
                    "error": "timeout",
                    "host.name": "from-span",
                    "otel.dropped_attributes_count": "2",
                    "otel.dropped_links_count": "1",
                    "otel.library.name": "lib",
                    "otel.library.version": "1.0",
                    "otel.scope.name": "lib",
                    "otel.scope.version": "1.0",
                    "otel.status_code": "ERROR",
                    "pinpoint.span_id": "2",
                    "pinpoint.transaction_id": "otel^790211418057950173^-8914616934935285348",
                    "retries": "3",
                    "server.address": "db.internal",
                    "server.port": "5432",
                    "w3c.tracestate": "pp=svc:a;app:b;type:1000,vendor=x"
                }
            }])
        );
    }

    #[test]
    fn kinds() {
        let check = |kind: SpanKind, want: Option<Kind>| {
            let mut sp = span(1);
            sp.kind = kind as i32;
            assert_eq!(one(sp).kind, want, "{kind:?}");
        };
        check(SpanKind::Unspecified, None);
        check(SpanKind::Internal, None);
        check(SpanKind::Server, Some(Kind::Server));
        check(SpanKind::Client, Some(Kind::Client));
        check(SpanKind::Producer, Some(Kind::Producer));
        check(SpanKind::Consumer, Some(Kind::Consumer));
    }

    #[test]
    fn microsecond_timing() {
        // (start ns, end ns) -> (timestamp µs, duration µs)
        let table = [
            ((1_000_999, 1_002_998), (1_000, 1)),
            ((5_000, 5_400), (5, 1)), // positive sub-µs becomes 1
            ((5_000, 5_000), (5, 1)), // so does zero: Zipkin's minimum is 1
            ((999, 2_000_999), (0, 2_000)),
            ((1_500_000_000, 1_750_000_000), (1_500_000, 250_000)),
        ];
        for ((start, end), want) in table {
            let mut sp = span(1);
            sp.start_time_unix_nano = start;
            sp.end_time_unix_nano = end;
            let z = one(sp);
            assert_eq!((z.timestamp, z.duration), want, "{start}..{end}");
        }
    }

    #[test]
    fn invalid_spans_are_rejected_one_at_a_time() {
        let bad = |f: &dyn Fn(&mut Span), id: u8| {
            let mut sp = span(id);
            f(&mut sp);
            sp
        };
        let spans = vec![
            span(1),
            bad(&|s| s.end_time_unix_nano = s.start_time_unix_nano - 1, 2),
            bad(&|s| s.trace_id = vec![0; 16], 3),
            bad(&|s| s.trace_id.truncate(8), 4),
            bad(&|s| s.span_id = vec![0; 8], 5),
            bad(&|s| s.span_id = vec![1; 9], 6),
            bad(&|s| s.parent_span_id = vec![1; 3], 7),
            // An all-zero parent means "root", not an error.
            bad(&|s| s.parent_span_id = vec![0; 8], 8),
            span(9),
        ];
        let c = convert([&batch(vec![], spans)]);
        let reasons: Vec<&str> = c.rejected.iter().map(|r| r.reason.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "end_before_start",
                "bad_trace_id",
                "bad_trace_id",
                "bad_span_id",
                "bad_span_id",
                "bad_parent_id"
            ]
        );
        assert_eq!(c.rejected[0].span_id, "0000000000000002");
        let kept: Vec<String> = c.spans.iter().map(|s| s.name.clone()).collect();
        assert_eq!(kept, ["span-1", "span-8", "span-9"]);
        assert_eq!(c.spans[1].parent_id, None);
        // No service.name: the fallback.
        assert_eq!(
            c.spans[0].local_endpoint.service_name.as_deref(),
            Some(UNKNOWN_SERVICE)
        );
    }

    #[test]
    fn remote_endpoint_ranking() {
        let check = |kind: SpanKind, attrs: Vec<KeyValue>, want: Option<serde_json::Value>| {
            let mut sp = span(1);
            sp.kind = kind as i32;
            sp.attributes = attrs;
            let got = one(sp)
                .remote_endpoint
                .map(|e| serde_json::to_value(e).expect("json"));
            assert_eq!(got, want);
        };
        use SpanKind::{Client, Consumer, Internal, Producer, Server};
        let all = || {
            vec![
                s("db.name", "orders"),
                s("peer.address", "10.0.0.9"),
                s("net.peer.name", "legacy-host"),
                s("server.address", "api.internal"),
                s("peer.service", "payments"),
            ]
        };
        check(Client, all(), Some(json!({"serviceName": "payments"})));
        check(
            Producer,
            all()[..4].to_vec(),
            Some(json!({"serviceName": "api.internal"})),
        );
        check(
            Client,
            all()[..3].to_vec(),
            Some(json!({"serviceName": "legacy-host"})),
        );
        check(
            Client,
            all()[..2].to_vec(),
            Some(json!({"ipv4": "10.0.0.9"})),
        );
        check(
            Client,
            all()[..1].to_vec(),
            Some(json!({"serviceName": "orders"})),
        );
        check(
            Client,
            vec![
                s("network.peer.address", "2001:db8::5"),
                kv("network.peer.port", AV::IntValue(8443)),
            ],
            Some(json!({"ipv6": "2001:db8::5", "port": 8443})),
        );
        check(
            Client,
            vec![
                s("net.sock.peer.addr", "192.0.2.1"),
                s("net.sock.peer.port", "9000"),
            ],
            Some(json!({"ipv4": "192.0.2.1", "port": 9000})),
        );
        // A port alone, a port of 0, an empty value: no endpoint or no port.
        check(Client, vec![kv("network.peer.port", AV::IntValue(1))], None);
        check(
            Client,
            vec![
                s("network.peer.address", "h"),
                kv("network.peer.port", AV::IntValue(0)),
            ],
            Some(json!({"serviceName": "h"})),
        );
        check(Client, vec![s("peer.service", "")], None);
        // Only CLIENT and PRODUCER spans get one.
        for kind in [Server, Consumer, Internal] {
            check(kind, all(), None);
        }
    }

    #[test]
    fn status_and_error_tags() {
        let check =
            |status: Option<(StatusCode, &str)>, attrs: Vec<KeyValue>, want: &[(&str, &str)]| {
                let mut sp = span(1);
                sp.status = status.map(|(code, message)| Status {
                    code: code as i32,
                    message: message.into(),
                });
                sp.attributes = attrs;
                let tags = one(sp).tags;
                for key in [TAG_STATUS_CODE, TAG_ERROR] {
                    let got = tags.get(key).map(String::as_str);
                    let wanted = want.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
                    assert_eq!(got, wanted, "{key} of {status:?}");
                }
            };
        check(None, vec![], &[]);
        check(Some((StatusCode::Unset, "ignored")), vec![], &[]);
        check(
            Some((StatusCode::Ok, "ignored")),
            vec![],
            &[("otel.status_code", "OK")],
        );
        check(
            Some((StatusCode::Error, "card declined")),
            vec![],
            &[("otel.status_code", "ERROR"), ("error", "card declined")],
        );
        check(
            Some((StatusCode::Error, "")),
            vec![],
            &[("otel.status_code", "ERROR"), ("error", "")],
        );
        // An `error` attribute without an ERROR status is dropped...
        check(None, vec![kv("error", AV::BoolValue(false))], &[]);
        check(
            Some((StatusCode::Ok, "")),
            vec![s("error", "x")],
            &[("otel.status_code", "OK")],
        );
        // ...and with one, the description wins.
        check(
            Some((StatusCode::Error, "boom")),
            vec![s("error", "x")],
            &[("otel.status_code", "ERROR"), ("error", "boom")],
        );
    }

    #[test]
    fn events_become_unique_annotations() {
        let mut sp = span(1);
        let event = |t: u64, name: &str, attrs: Vec<KeyValue>| Event {
            time_unix_nano: t,
            name: name.into(),
            attributes: attrs,
            ..Default::default()
        };
        sp.events = vec![
            event(2_000_999, "plain", vec![]),
            event(2_000_001, "plain", vec![]), // same µs and value: left out
            event(
                3_000_000,
                "exception",
                vec![
                    s("exception.type", "ValueError"),
                    kv("n", AV::DoubleValue(0.5)),
                    kv("ok", AV::BoolValue(true)),
                ],
            ),
        ];
        let got: Vec<(u64, String)> = one(sp)
            .annotations
            .into_iter()
            .map(|a| (a.timestamp, a.value))
            .collect();
        assert_eq!(
            got,
            [
                (2_000, "plain".to_owned()),
                (
                    3_000,
                    r#"exception: {"exception.type":"ValueError","n":0.5,"ok":true}"#.to_owned()
                ),
            ]
        );
    }

    #[test]
    fn scope_tags_need_a_scope_and_resource_service_name_is_no_tag() {
        let mut rs = batch(
            vec![s("service.name", "svc"), s("k8s.pod.name", "p")],
            vec![span(1)],
        );
        if let Some(scope) = rs.scope_spans[0].scope.as_mut() {
            scope.version.clear();
        }
        let tags = convert([&rs]).spans.remove(0).tags;
        let keys: Vec<&str> = tags.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "k8s.pod.name",
                "otel.library.name",
                "otel.scope.name",
                "pinpoint.span_id",
                "pinpoint.transaction_id"
            ]
        );
    }

    #[test]
    fn pinpoint_ids() {
        let check =
            |own: [u8; 8], parent: Option<[u8; 8]>, kind: SpanKind, flags: u32, want: &str| {
                let sp = Span {
                    span_id: own.to_vec(),
                    parent_span_id: parent.map(|p| p.to_vec()).unwrap_or_default(),
                    kind: kind as i32,
                    flags,
                    ..Default::default()
                };
                let (txid, id) = pinpoint_tags(&TRACE, &sp).expect("ids");
                assert_eq!(txid, "otel^790211418057950173^-8914616934935285348");
                assert_eq!(id, want, "{own:?} {parent:?} {kind:?} {flags:#x}");
            };
        let own = 0xb7ad_6b71_6920_3331u64.to_be_bytes();
        let parent = Some(0x9e37_79b9_7f4a_7c15u64.to_be_bytes());
        // mix(parent) = 0xe220a8397b1dcdaf, SplitMix64's first output for seed 0.
        let mixed = i64::from_be_bytes(0xe220_a839_7b1d_cdafu64.to_be_bytes()).to_string();
        let own_id = i64::from_be_bytes(own).to_string();
        use SpanKind::{Client, Internal, Server};
        // A root span, and a local child: their own id.
        check(own, None, Server, 0, &own_id);
        check(own, parent, Internal, FLAG_HAS_IS_REMOTE, &own_id);
        // A remote parent, said by the flags or implied by the kind: mix(parent).
        check(
            own,
            parent,
            Internal,
            FLAG_HAS_IS_REMOTE | FLAG_IS_REMOTE,
            &mixed,
        );
        check(own, parent, Server, 0, &mixed);
        // The flags win over the kind when they are known.
        check(own, parent, Server, FLAG_HAS_IS_REMOTE, &own_id);
        check(own, parent, Client, 0, &own_id);
        // -1 means "none" in Pinpoint.
        check([0xff; 8], None, Internal, 0, "-2");
        assert_eq!(splitmix64_finalizer(0), 0);
    }
}
