use std::sync::Arc;

use super::*;
use crate::exporter::pinpoint::proto::{
    PAcceptEvent, PAnnotation, PAnnotationValue, PIntStringStringValue, PLocalAsyncId,
    PMessageEvent, PNextEvent, PParentInfo, p_annotation_value::Field,
};
use crate::ids::mapping::{hash_txid, mix};
use opentelemetry_proto::tonic::common::v1::any_value::Value;

fn src() -> Source<'static> {
    Source {
        application_name: "shop",
        agent_id: "shop-1",
        agent_name: None,
        agent_start_time: 1_700_000_000_000,
        service_type: None,
        marker: AgentId::new("otel").expect("marker"),
    }
}

fn txid() -> PTransactionId {
    PTransactionId {
        agent_id: "agentA".into(),
        agent_start_time: 1_700_000_000_000,
        sequence: 42,
    }
}

fn anno(key: i32, f: Field) -> PAnnotation {
    PAnnotation {
        key,
        value: Some(PAnnotationValue { field: Some(f) }),
    }
}

fn event(seq: i32, depth: i32, start: i32, dur: i32) -> PSpanEvent {
    PSpanEvent {
        sequence: seq,
        depth,
        start_elapsed: start,
        end_elapsed: dur,
        service_type: 5000,
        ..PSpanEvent::default()
    }
}

fn next(n: i64, dest: &str) -> Option<PNextEvent> {
    Some(PNextEvent {
        field: Some(p_next_event::Field::MessageEvent(PMessageEvent {
            next_span_id: n,
            end_point: String::new(),
            destination_id: dest.into(),
        })),
    })
}

fn meta() -> AgentMeta {
    let mut m = AgentMeta::default();
    m.api.insert(7, Arc::from("Handler.handle(req)"));
    m.api.insert(8, Arc::from("Dao.find(id)"));
    m.sql.insert(3, Arc::from("SELECT * FROM t WHERE id = ?"));
    m.strings
        .insert(9, Arc::from("java.lang.IllegalStateException"));
    m
}

fn attr<'a>(s: &'a Span, key: &str) -> Option<&'a Value> {
    s.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

fn span() -> PSpan {
    PSpan {
        version: 1,
        transaction_id: Some(txid()),
        span_id: 1000,
        parent_span_id: -1,
        start_time: 1_700_000_001_000,
        elapsed: 50,
        api_id: 7,
        service_type: 1000,
        accept_event: Some(PAcceptEvent {
            rpc: "/orders?id=1".into(),
            end_point: "shop:8080".into(),
            remote_addr: "10.0.0.9".into(),
            parent_info: None,
        }),
        annotation: vec![
            anno(46, Field::IntValue(200)),
            anno(999, Field::StringValue("x".into())),
        ],
        span_event: vec![
            PSpanEvent {
                api_id: 8,
                ..event(0, 1, 2, 30)
            },
            PSpanEvent {
                service_type: 2101,
                annotation: vec![anno(
                    20,
                    Field::IntStringStringValue(PIntStringStringValue {
                        int_value: 3,
                        string_value1: None,
                        string_value2: Some("5, abc".into()),
                    }),
                )],
                next_event: next(-1, "db:3306"),
                api_id: 8,
                ..event(1, 2, 1, 10)
            },
            PSpanEvent {
                service_type: 9056,
                annotation: vec![anno(12, Field::StringValue("GET".into()))],
                next_event: next(777, "inventory:9000"),
                ..event(2, 1, 20, 5)
            },
        ],
        ..PSpan::default()
    }
}

#[test]
fn trace_id_follows_section_2() {
    let c = convert_span(&span(), &src(), &meta()).expect("converts");
    let hex: String = c.spans[0]
        .trace_id
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(hex, "d753c5cba22eb84c93f5d8478fd545f2");
    assert!(
        c.spans
            .iter()
            .all(|s| s.trace_state == "ppb=tx:agentA^1700000000000^42")
    );
    // A bridge-born (marker) txid maps back exactly.
    let mut s = span();
    s.transaction_id = Some(PTransactionId {
        agent_id: "otel".into(),
        agent_start_time: 790_211_418_057_950_173,
        sequence: -8_914_616_934_935_285_348,
    });
    let c = convert_span(&s, &src(), &meta()).expect("converts");
    let hex: String = c.spans[0]
        .trace_id
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(hex, "0af7651916cd43dd8448eb211c80319c");
    // An empty agentId is the sender's.
    let mut s = span();
    s.transaction_id = Some(PTransactionId {
        agent_id: String::new(),
        ..txid()
    });
    let c = convert_span(&s, &src(), &meta()).expect("converts");
    let tx = TransactionId::parse("shop-1^1700000000000^42").expect("txid");
    assert_eq!(c.spans[0].trace_id, hash_txid(&tx).0.to_vec());
}

#[test]
fn span_and_events_ids_parents_times_names() {
    let c = convert_span(&span(), &src(), &meta()).expect("converts");
    assert_eq!(c.missing, Missing::default());
    let [entry, call, sql, client] = &c.spans[..] else {
        panic!("4 spans, got {}", c.spans.len())
    };
    assert_eq!(entry.span_id, 1000i64.to_be_bytes().to_vec());
    assert!(entry.parent_span_id.is_empty());
    assert_eq!(entry.name, "/orders?id=1");
    assert_eq!(entry.kind, SpanKind::Server as i32);
    assert_eq!(
        attr(entry, "url.path"),
        Some(&Value::StringValue("/orders".into()))
    );
    assert_eq!(
        attr(entry, "url.query"),
        Some(&Value::StringValue("id=1".into()))
    );
    assert_eq!(
        attr(entry, "http.response.status_code"),
        Some(&Value::IntValue(200))
    );
    assert_eq!(attr(entry, "server.port"), Some(&Value::IntValue(8080)));
    assert_eq!(
        attr(entry, "pinpoint.annotation.999"),
        Some(&Value::StringValue("x".into()))
    );
    assert_eq!(entry.start_time_unix_nano, 1_700_000_001_000 * 1_000_000);
    assert_eq!(entry.end_time_unix_nano, 1_700_000_001_050 * 1_000_000);

    let tx = TransactionId::parse("agentA^1700000000000^42").expect("txid");
    assert_eq!(call.span_id, event_span_id(&tx, 1000, 0, 0).to_vec());
    assert_eq!(call.parent_span_id, entry.span_id);
    assert_eq!(call.name, "Dao.find(id)");
    assert_eq!(call.kind, SpanKind::Internal as i32);
    assert_eq!(call.start_time_unix_nano, 1_700_000_001_002 * 1_000_000);

    assert_eq!(
        sql.parent_span_id, call.span_id,
        "depth 2 hangs under the depth-1 event"
    );
    assert_eq!(sql.kind, SpanKind::Client as i32);
    assert_eq!(sql.start_time_unix_nano, 1_700_000_001_003 * 1_000_000);
    assert_eq!(
        attr(sql, "db.system.name"),
        Some(&Value::StringValue("mysql".into()))
    );
    assert_eq!(
        attr(sql, "db.query.text"),
        Some(&Value::StringValue("SELECT * FROM t WHERE id = ?".into()))
    );
    assert_eq!(
        attr(sql, "db.query.parameter.1"),
        Some(&Value::StringValue("abc".into()))
    );
    assert_eq!(
        attr(sql, "server.address"),
        Some(&Value::StringValue("db".into()))
    );
    assert_eq!(attr(sql, "server.port"), Some(&Value::IntValue(3306)));

    // nextSpanId 777: the client span is mix⁻¹(777), so the callee's parent (mix⁻¹ of
    // its own id, 777) is this span.
    assert_eq!(client.kind, SpanKind::Client as i32);
    assert_eq!(client.name, "GET");
    assert_eq!(
        mix(u64::from_be_bytes(
            client.span_id[..].try_into().expect("8")
        )),
        777
    );
    assert_eq!(
        client.parent_span_id, entry.span_id,
        "depth 1 after depth 2"
    );
    let mut callee = span();
    callee.span_id = 777;
    callee.parent_span_id = 1000;
    callee.accept_event.as_mut().expect("accept").parent_info = Some(PParentInfo::default());
    let callee = convert_span(&callee, &src(), &meta()).expect("converts");
    assert_eq!(callee.spans[0].parent_span_id, client.span_id);
    assert_eq!(callee.spans[0].trace_id, client.trace_id);
}

#[test]
fn missing_metadata_uses_placeholders_and_says_so() {
    let c = convert_span(&span(), &src(), &AgentMeta::default()).expect("converts");
    assert_eq!(c.missing.api, 2);
    assert_eq!(c.missing.sql, 1);
    assert_eq!(c.spans[1].name, API_NOT_FOUND);
    assert_eq!(
        c.spans[0].name, "/orders?id=1",
        "the entry is named from its rpc"
    );
    assert_eq!(
        attr(&c.spans[2], "pinpoint.sql_id"),
        Some(&Value::IntValue(3))
    );
}

#[test]
fn errors_and_exceptions() {
    let mut s = span();
    s.err = 1;
    s.span_event[0].exception_info = Some(PIntStringValue {
        int_value: 9,
        string_value: Some("boom".into()),
    });
    let c = convert_span(&s, &src(), &meta()).expect("converts");
    assert_eq!(
        c.spans[0].status.as_ref().map(|s| s.code),
        Some(StatusCode::Error as i32)
    );
    let e = &c.spans[1];
    assert_eq!(e.status.as_ref().map(|s| s.message.as_str()), Some("boom"));
    assert_eq!(e.events[0].name, "exception");
    let ty = e.events[0]
        .attributes
        .iter()
        .find(|a| a.key == "exception.type");
    assert_eq!(
        ty.and_then(|a| a.value.as_ref()?.value.clone()),
        Some(Value::StringValue("java.lang.IllegalStateException".into()))
    );
    // Unknown exception class: placeholder, counted.
    let c = convert_span(&s, &src(), &AgentMeta::default()).expect("converts");
    assert_eq!(c.missing.string, 1);
}

#[test]
fn async_chunk_hangs_under_its_opener() {
    let mut s = span();
    s.span_event[0].async_event = 1;
    let c = convert_span(&s, &src(), &meta()).expect("converts");
    let (async_id, opener) = c.openers[0];
    assert_eq!(async_id, 1);
    assert_eq!(opener.to_vec(), c.spans[1].span_id);
    let chunk = PSpanChunk {
        version: 1,
        transaction_id: Some(txid()),
        span_id: 1000,
        key_time: 1_700_000_001_010,
        local_async_id: Some(PLocalAsyncId {
            async_id: 1,
            sequence: 0,
        }),
        span_event: vec![event(0, 1, 0, 4), event(1, 2, 1, 2)],
        application_service_type: 1000,
        ..PSpanChunk::default()
    };
    let k = convert_chunk(&chunk, &src(), &meta(), Some(opener)).expect("converts");
    assert_eq!(k.spans[0].parent_span_id, opener.to_vec());
    assert_eq!(k.spans[1].parent_span_id, k.spans[0].span_id);
    assert_eq!(
        k.spans[1].start_time_unix_nano,
        1_700_000_001_011 * 1_000_000
    );
    let tx = TransactionId::parse("agentA^1700000000000^42").expect("txid");
    assert_eq!(k.spans[0].span_id, event_span_id(&tx, 1000, 1, 0).to_vec());
    // Before its span arrived: under the span itself, and flagged.
    let k = convert_chunk(&chunk, &src(), &meta(), None).expect("converts");
    assert!(k.missing.opener);
    assert_eq!(k.spans[0].parent_span_id, 1000i64.to_be_bytes().to_vec());
}

#[test]
fn invalid_messages_are_refused_like_the_collector() {
    let mut s = span();
    s.version = 2;
    assert_eq!(
        convert_span(&s, &src(), &meta()).err(),
        Some(ConvertError::Version(2))
    );
    let mut s = span();
    s.transaction_id = None;
    assert_eq!(
        convert_span(&s, &src(), &meta()).err(),
        Some(ConvertError::NoTransactionId)
    );
    let mut s = span();
    s.transaction_id = Some(PTransactionId {
        agent_id: "bad id".into(),
        ..txid()
    });
    assert!(matches!(
        convert_span(&s, &src(), &meta()),
        Err(ConvertError::Txid(_))
    ));
}

#[test]
fn resource_from_headers_and_agent_info() {
    let info = AgentSummary {
        hostname: "h1".into(),
        ip: "10.0.0.1".into(),
        pid: 42,
        service_type: 1400,
        agent_version: "0.8.7".into(),
        vm_version: String::new(),
    };
    let r = resource(&src(), Some(&info));
    let get = |k: &str| {
        r.attributes
            .iter()
            .find(|a| a.key == k)
            .and_then(|a| a.value.as_ref()?.value.clone())
    };
    assert_eq!(get("service.name"), Some(Value::StringValue("shop".into())));
    assert_eq!(
        get("service.instance.id"),
        Some(Value::StringValue("shop-1".into()))
    );
    assert_eq!(get("host.name"), Some(Value::StringValue("h1".into())));
    assert_eq!(
        get("telemetry.sdk.language"),
        Some(Value::StringValue("nodejs".into()))
    );
}
