//! Tests of [`super`]: the OTLP → Zipkin mapping, table by table.

use super::*;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::Event;
use opentelemetry_proto::tonic::trace::v1::{ScopeSpans, Status};
use serde_json::json;

const TRACE: [u8; 16] = [
    0x0a, 0xf7, 0x65, 0x19, 0x16, 0xcd, 0x43, 0xdd, 0x84, 0x48, 0xeb, 0x21, 0x1c, 0x80, 0x31, 0x9c,
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

/// [`super::convert`], checking on the way that [`super::super::json`] writes the same
/// JSON for the batch as serializing the model.
fn convert<'a>(resource_spans: impl IntoIterator<Item = &'a ResourceSpans>) -> Converted {
    let all: Vec<ResourceSpans> = resource_spans.into_iter().cloned().collect();
    super::super::json::tests::same(&all);
    super::convert(&all)
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

/// OTLP `Span.flags` bits 8 and 9 (has-is-remote, is-remote).
const FLAG_HAS_IS_REMOTE: u32 = 0x100;
const FLAG_IS_REMOTE: u32 = 0x200;

#[test]
fn pinpoint_ids() {
    let check = |own: [u8; 8], parent: Option<[u8; 8]>, kind: SpanKind, flags: u32, want: &str| {
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
    assert_eq!(crate::ids::mix(0), 0);
    assert_eq!(
        crate::ids::mix(0x9e37_79b9_7f4a_7c15),
        0xe220_a839_7b1d_cdaf
    );
}
