//! The Pinpoint receiver's CPU path for span messages: protobuf decode of
//! `PSpanMessage` (the floor: the tee forwards the received bytes untouched, so decoding
//! is all a pass-through receiver must do) against decode + conversion to OTLP
//! (`convert.rs`, ids.md §8) and decode + conversion + OTLP encode.
//!
//! 100 messages, each a PSpan like a real agent's (accept event, status annotation) with
//! 9 events: nested internal calls with registered API ids, a SQL call (SQL-ID
//! annotation with bind values), and an HTTP client call with a next span id: 1000 OTLP
//! spans per iteration.
//!
//! Run: `cargo bench --bench pinpoint_receive`

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use otel_pinpoint_bridge::exporter::pinpoint::proto::{
    PAcceptEvent, PAnnotation, PAnnotationValue, PIntStringStringValue, PMessageEvent, PNextEvent,
    PSpan, PSpanEvent, PSpanMessage, PTransactionId, p_annotation_value::Field, p_next_event,
    p_span_message,
};
use otel_pinpoint_bridge::ids::AgentId;
use otel_pinpoint_bridge::receiver::pinpoint::convert::{self, Source};
use otel_pinpoint_bridge::receiver::pinpoint::metadata::AgentMeta;
use prost::Message;

fn anno(key: i32, f: Field) -> PAnnotation {
    PAnnotation {
        key,
        value: Some(PAnnotationValue { field: Some(f) }),
    }
}

fn message(i: i64) -> Vec<u8> {
    let mut events: Vec<PSpanEvent> = (0..7)
        .map(|s| PSpanEvent {
            sequence: s,
            depth: 1 + s % 3,
            start_elapsed: 1,
            end_elapsed: 3,
            service_type: 5000,
            api_id: 10 + s,
            ..PSpanEvent::default()
        })
        .collect();
    events.push(PSpanEvent {
        sequence: 7,
        depth: 2,
        start_elapsed: 1,
        end_elapsed: 4,
        service_type: 2101,
        api_id: 20,
        annotation: vec![anno(
            20,
            Field::IntStringStringValue(PIntStringStringValue {
                int_value: 1,
                string_value1: None,
                string_value2: Some("42, open".into()),
            }),
        )],
        next_event: Some(PNextEvent {
            field: Some(p_next_event::Field::MessageEvent(PMessageEvent {
                next_span_id: -1,
                end_point: String::new(),
                destination_id: "db:3306".into(),
            })),
        }),
        ..PSpanEvent::default()
    });
    events.push(PSpanEvent {
        sequence: 8,
        depth: 1,
        start_elapsed: 2,
        end_elapsed: 9,
        service_type: 9056,
        annotation: vec![
            anno(12, Field::StringValue("GET".into())),
            anno(
                40,
                Field::StringValue("http://inventory:9000/items/42".into()),
            ),
            anno(46, Field::IntValue(200)),
        ],
        next_event: Some(PNextEvent {
            field: Some(p_next_event::Field::MessageEvent(PMessageEvent {
                next_span_id: 0x1234_5678_9abc + i,
                end_point: "inventory:9000".into(),
                destination_id: "inventory:9000".into(),
            })),
        }),
        ..PSpanEvent::default()
    });
    PSpanMessage {
        field: Some(p_span_message::Field::Span(PSpan {
            version: 1,
            transaction_id: Some(PTransactionId {
                agent_id: "checkout-1".into(),
                agent_start_time: 1_700_000_000_000,
                sequence: i,
            }),
            span_id: 0x0123_4567_89ab + i,
            parent_span_id: -1,
            start_time: 1_700_000_001_000 + i,
            elapsed: 40,
            api_id: 1,
            service_type: 1400,
            accept_event: Some(PAcceptEvent {
                rpc: "/checkout".into(),
                end_point: "checkout:8080".into(),
                remote_addr: "10.0.0.7".into(),
                parent_info: None,
            }),
            annotation: vec![anno(46, Field::IntValue(200))],
            span_event: events,
            application_service_type: 1400,
            ..PSpan::default()
        })),
    }
    .encode_to_vec()
}

fn bench(c: &mut Criterion) {
    let messages: Vec<Vec<u8>> = (0..100).map(message).collect();
    let mut meta = AgentMeta::default();
    meta.api.insert(1, Arc::from("Node Server Process"));
    for id in 10..20 {
        meta.api
            .insert(id, Arc::from(format!("Service.method{id}(arg)").as_str()));
    }
    meta.api.insert(20, Arc::from("Connection.query(sql)"));
    meta.sql.insert(
        1,
        Arc::from("SELECT * FROM orders WHERE id = ? AND state = ?"),
    );
    let src = Source {
        application_name: "checkout",
        agent_id: "checkout-1",
        agent_name: None,
        agent_start_time: 1_700_000_000_000,
        service_type: None,
        marker: AgentId::new("otel").unwrap_or_else(|e| panic!("{e}")),
    };
    let decode = |b: &[u8]| -> PSpan {
        match PSpanMessage::decode(b).map(|m| m.field) {
            Ok(Some(p_span_message::Field::Span(s))) => s,
            other => panic!("not a span: {other:?}"),
        }
    };
    let mut group = c.benchmark_group("pinpoint_receive");
    group.throughput(Throughput::Elements(1000));
    group.bench_function("decode", |b| {
        b.iter(|| {
            let mut n = 0;
            for m in &messages {
                n += decode(m).span_event.len() + 1;
            }
            n
        });
    });
    group.bench_function("decode_convert", |b| {
        b.iter(|| {
            let mut n = 0;
            for m in &messages {
                let s = decode(m);
                let c = convert::convert_span(&s, &src, &meta).unwrap_or_else(|e| panic!("{e}"));
                let rs = convert::resource_spans(convert::resource(&src, None), c.spans);
                n += rs.scope_spans[0].spans.len();
            }
            assert_eq!(n, 1000);
            n
        });
    });
    group.bench_function("decode_convert_encode", |b| {
        b.iter(|| {
            let mut bytes = 0;
            for m in &messages {
                let s = decode(m);
                let c = convert::convert_span(&s, &src, &meta).unwrap_or_else(|e| panic!("{e}"));
                let req = ExportTraceServiceRequest {
                    resource_spans: vec![convert::resource_spans(
                        convert::resource(&src, None),
                        c.spans,
                    )],
                };
                bytes += req.encode_to_vec().len();
            }
            bytes
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
