//! The hand-written encoding against prost's, byte for byte.
use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;
use crate::exporter::pinpoint::assemble::{Assembler, Config};
use crate::exporter::pinpoint::convert::{AttributeMode, Options};
use crate::exporter::pinpoint::proto::{
    PIntBooleanIntBooleanValue, PLocalAsyncId, PNextEvent, PStringStringValue,
};
use crate::ids::{AgentId, CacheConfig, MappingCache};
use crate::pipeline::Block;
use crate::testdata;

fn assembler(attributes: AttributeMode) -> Assembler {
    let cache = Arc::new(MappingCache::new(&CacheConfig::default()).expect("cache"));
    Assembler::new(
        Config {
            hold: Duration::from_millis(500),
            max_pending_spans: 100_000,
            max_pending_bytes: 256 << 20,
            late_window: Duration::from_secs(30),
            max_late_spans: 100_000,
            marker: AgentId::new("otel").expect("marker"),
            convert: Options {
                attributes,
                ..Options::default()
            },
        },
        cache,
    )
}

/// Every message the assembler makes of the benchmark's batches (spans, and chunks when
/// a batch comes again), in both attribute modes, errors included.
#[test]
fn same_bytes_as_prost_for_generated_traffic() {
    let mut w = Writer::default();
    let (mut spans, mut chunks) = (0, 0);
    for mode in [AttributeMode::Args, AttributeMode::Attributes] {
        for (_, mut shape) in testdata::bench_shapes() {
            shape.error_ratio = 0.2;
            shape.extra_attributes = 3;
            for seed in 0..4 {
                let mut a = assembler(mode);
                // Half the spans with a parent come after the rest was sent: late ones,
                // chunks.
                let all = testdata::resource_spans(&shape, seed);
                let part = |late: bool| {
                    let mut rs = all.clone();
                    for ss in rs.iter_mut().flat_map(|r| &mut r.scope_spans) {
                        let mut i = 0;
                        ss.spans.retain(|s| {
                            i += 1;
                            (i % 2 == 0 && !s.parent_span_id.is_empty()) == late
                        });
                    }
                    Arc::new(Block::new(rs))
                };
                let now = Instant::now();
                for block in [part(false), part(true)] {
                    a.add_block(&block, now, None);
                    for o in a.flush(now, true) {
                        match &o.message.field {
                            Some(p_span_message::Field::Span(_)) => spans += 1,
                            _ => chunks += 1,
                        }
                        assert_eq!(
                            w.encode(&o.message).as_ref(),
                            o.message.encode_to_vec().as_slice(),
                            "{:?}",
                            o.message
                        );
                    }
                }
            }
        }
    }
    assert!(
        spans > 100 && chunks > 100,
        "{spans} spans, {chunks} chunks"
    );
}

#[test]
fn grows_past_its_first_buffer_and_is_reused() {
    let big = "x".repeat(40_000);
    let msg = |n: &str| PSpanMessage {
        field: Some(p_span_message::Field::Span(PSpan {
            annotation: vec![PAnnotation {
                key: 12,
                value: Some(PAnnotationValue {
                    field: Some(p_annotation_value::Field::StringValue(n.to_owned())),
                }),
            }],
            ..Default::default()
        })),
    };
    let mut w = Writer::default();
    for m in [msg("small"), msg(&big), msg(""), msg(&big)] {
        assert_eq!(w.encode(&m).as_ref(), m.encode_to_vec().as_slice());
    }
    let empty = PSpanMessage { field: None };
    assert!(w.encode(&empty).is_empty());
}

#[test]
fn varints() {
    for v in [
        0u64,
        1,
        127,
        128,
        300,
        16_383,
        16_384,
        u64::from(u32::MAX),
        u64::MAX,
    ] {
        let mut out = [0u8; 10];
        let n = varint_into(v, &mut out);
        let mut expected = Vec::new();
        prost::encoding::encode_varint(v, &mut expected);
        assert_eq!(&out[..n], expected.as_slice(), "{v}");
    }
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[a-z0-9 .:/=-]{1,20}", "\\PC{0,200}"]
}

fn i32s() -> impl Strategy<Value = i32> {
    prop_oneof![Just(0), Just(-1), -200i32..200, any::<i32>()]
}

fn i64s() -> impl Strategy<Value = i64> {
    prop_oneof![Just(0), Just(-1), any::<i64>()]
}

fn int_string() -> impl Strategy<Value = PIntStringValue> {
    (i32s(), proptest::option::of(text())).prop_map(|(int_value, string_value)| PIntStringValue {
        int_value,
        string_value,
    })
}

fn annotation() -> impl Strategy<Value = PAnnotation> {
    use p_annotation_value::Field as F;
    let value = prop_oneof![
        text().prop_map(F::StringValue),
        any::<bool>().prop_map(F::BoolValue),
        i32s().prop_map(F::IntValue),
        i64s().prop_map(F::LongValue),
        i32s().prop_map(F::ShortValue),
        prop_oneof![Just(0.0), Just(-0.0), any::<f64>()].prop_map(F::DoubleValue),
        proptest::collection::vec(any::<u8>(), 0..8).prop_map(F::BinaryValue),
        i32s().prop_map(F::ByteValue),
        int_string().prop_map(F::IntStringValue),
        (proptest::option::of(text()), proptest::option::of(text())).prop_map(|(a, b)| {
            F::StringStringValue(PStringStringValue {
                string_value1: a,
                string_value2: b,
            })
        }),
        (i32s(), any::<bool>()).prop_map(|(i, b)| {
            F::IntBooleanIntBooleanValue(PIntBooleanIntBooleanValue {
                int_value1: i,
                bool_value1: b,
                int_value2: -i,
                bool_value2: !b,
            })
        }),
    ];
    (i32s(), proptest::option::of(proptest::option::of(value))).prop_map(|(key, v)| PAnnotation {
        key,
        value: v.map(|field| PAnnotationValue { field }),
    })
}

fn attribute() -> impl Strategy<Value = PAttribute> {
    use p_attribute_value::Field as F;
    let value = prop_oneof![
        text().prop_map(F::StringValue),
        any::<bool>().prop_map(F::BoolValue),
        i64s().prop_map(F::LongValue),
        any::<f64>().prop_map(F::DoubleValue),
        proptest::collection::vec(any::<u8>(), 0..8).prop_map(F::BinaryValue),
    ];
    (text(), proptest::option::of(proptest::option::of(value))).prop_map(|(key, v)| PAttribute {
        key,
        value: v.map(|field| PAttributeValue { field }),
    })
}

fn txid() -> impl Strategy<Value = Option<PTransactionId>> {
    proptest::option::of(
        (text(), i64s(), i64s()).prop_map(|(agent_id, t, s)| PTransactionId {
            agent_id,
            agent_start_time: t,
            sequence: s,
        }),
    )
}

fn event() -> impl Strategy<Value = PSpanEvent> {
    let next = proptest::option::of(proptest::option::of((i64s(), text(), text()).prop_map(
        |(next_span_id, end_point, destination_id)| {
            p_next_event::Field::MessageEvent(PMessageEvent {
                next_span_id,
                end_point,
                destination_id,
            })
        },
    )))
    .prop_map(|n| n.map(|field| PNextEvent { field }));
    (
        (i32s(), i32s(), i32s(), i32s(), i32s(), i32s(), i32s()),
        proptest::collection::vec(annotation(), 0..4),
        proptest::option::of(int_string()),
        next,
        proptest::collection::vec(attribute(), 0..3),
    )
        .prop_map(
            |((sequence, depth, se, ee, st, api, asy), annotation, exc, next_event, attribute)| {
                PSpanEvent {
                    sequence,
                    depth,
                    start_elapsed: se,
                    end_elapsed: ee,
                    service_type: st,
                    annotation,
                    api_id: api,
                    exception_info: exc,
                    next_event,
                    async_event: asy,
                    attribute,
                }
            },
        )
}

fn span() -> impl Strategy<Value = PSpan> {
    let accept = proptest::option::of(
        (
            text(),
            text(),
            text(),
            proptest::option::of((text(), i32s(), text(), text())),
        )
            .prop_map(|(rpc, end_point, remote_addr, p)| PAcceptEvent {
                rpc,
                end_point,
                remote_addr,
                parent_info: p.map(|(n, t, h, s)| PParentInfo {
                    parent_application_name: n,
                    parent_application_type: t,
                    acceptor_host: h,
                    parent_service_name: s,
                }),
            }),
    );
    (
        (
            i32s(),
            txid(),
            i64s(),
            i64s(),
            i64s(),
            i32s(),
            i32s(),
            i32s(),
        ),
        accept,
        proptest::collection::vec(annotation(), 0..4),
        (i32s(), i32s(), i32s(), i32s()),
        proptest::collection::vec(event(), 0..4),
        proptest::option::of(int_string()),
        proptest::collection::vec(attribute(), 0..3),
    )
        .prop_map(
            |(
                (version, transaction_id, span_id, parent_span_id, start_time, elapsed, api_id, st),
                accept_event,
                annotation,
                (flag, err, ast, lti),
                span_event,
                exception_info,
                attribute,
            )| PSpan {
                version,
                transaction_id,
                span_id,
                parent_span_id,
                start_time,
                elapsed,
                api_id,
                service_type: st,
                accept_event,
                annotation,
                flag,
                err,
                span_event,
                exception_info,
                application_service_type: ast,
                logging_transaction_info: lti,
                attribute,
            },
        )
}

fn chunk() -> impl Strategy<Value = PSpanChunk> {
    (
        (i32s(), txid(), i64s(), text(), i32s(), i64s()),
        proptest::collection::vec(event(), 0..4),
        proptest::option::of((i32s(), i32s())),
    )
        .prop_map(
            |((version, transaction_id, span_id, end_point, ast, key_time), span_event, l)| {
                PSpanChunk {
                    version,
                    transaction_id,
                    span_id,
                    end_point,
                    span_event,
                    application_service_type: ast,
                    key_time,
                    local_async_id: l
                        .map(|(async_id, sequence)| PLocalAsyncId { async_id, sequence }),
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn same_bytes_as_prost(m in prop_oneof![
        span().prop_map(|s| PSpanMessage { field: Some(p_span_message::Field::Span(s)) }),
        chunk().prop_map(|c| PSpanMessage { field: Some(p_span_message::Field::SpanChunk(c)) }),
    ]) {
        let mut w = Writer::default();
        let expected = m.encode_to_vec();
        prop_assert_eq!(w.encode(&m).to_vec(), expected.clone());
        // A reused buffer gives the same bytes.
        prop_assert_eq!(w.encode(&m).to_vec(), expected);
    }
}
