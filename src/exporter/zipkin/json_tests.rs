//! Tests of [`super`]: the same bytes as serializing the model, escaping.

use super::*;
use crate::testdata;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::Event;
use opentelemetry_proto::tonic::trace::v1::{ScopeSpans, Status};
use proptest::prelude::*;

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
fn the_word_check_finds_every_byte_that_needs_an_escape() {
    // Each byte alone, at every position of strings of 1 to 20 bytes among bytes
    // that need none (and next to a non-ASCII byte, which must not look like one).
    for b in 0..=255u8 {
        let want = ESCAPES[usize::from(b)] != 0;
        for len in 1..=20 {
            for at in 0..len {
                for filler in [b'a', 0xc3] {
                    let mut bytes = vec![filler; len];
                    bytes[at] = b;
                    assert_eq!(needs_escape(&bytes), want, "{b:#x} at {at} of {len}");
                }
            }
        }
    }
    assert!(!needs_escape(b""));
}

/// Text with the characters that matter to JSON: escapes, non-ASCII, and plain.
fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => prop::char::range('a', 'e'),
            1 => prop::char::range('\0', '\u{1f}'),
            1 => prop::sample::select(vec!['"', '\\', '\u{7f}', 'é', '日', '🎉', '.', '_']),
        ],
        0..24,
    )
    .prop_map(|c| c.into_iter().collect())
}

/// A key from a small set (so keys repeat within and across resource, scope and
/// span, and collide with the bridge's own tags), or any text.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "a", "a.b", "a.b.c.d.e.f", "a.b.c.d.e.g", "ab", "", "error", "service.name",
            "otel.status_code", "otel.scope.name", "otel.library.version",
            "pinpoint.span_id", "w3c.tracestate", "peer.service", "server.address",
            "network.peer.address", "network.peer.port",
        ])
        .prop_map(str::to_owned),
        1 => text(),
    ]
}

fn value() -> impl Strategy<Value = AV> {
    prop_oneof![
        4 => text().prop_map(AV::StringValue),
        1 => any::<i64>().prop_map(AV::IntValue),
        1 => any::<bool>().prop_map(AV::BoolValue),
        1 => prop::sample::select(vec![0.5, -1.0, 1e-7, f64::NAN]).prop_map(AV::DoubleValue),
        1 => prop::sample::select(vec!["10.0.0.1", "::1", "2001:db8::5", "8080"])
            .prop_map(|s| AV::StringValue(s.to_owned())),
    ]
}

fn attributes() -> impl Strategy<Value = Vec<KeyValue>> {
    attributes_in(0..12)
}

fn attributes_in(count: std::ops::Range<usize>) -> impl Strategy<Value = Vec<KeyValue>> {
    prop::collection::vec(
        (key(), value()).prop_map(|(key, v)| KeyValue {
            key,
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        }),
        count,
    )
}

fn span() -> impl Strategy<Value = Span> {
    (
        attributes(),
        text(),
        0..6i32,
        any::<[u8; 8]>(),
        prop::option::of((0..3i32, text())),
        prop::sample::select(vec!["", "ppb=tx:agent^1^2"]),
        prop::collection::vec((text(), 0..3u64, attributes()), 0..3),
    )
        .prop_map(
            |(attributes, name, kind, id, status, trace_state, events)| Span {
                trace_id: vec![7; 16],
                span_id: id.to_vec(),
                parent_span_id: if id[0] % 2 == 0 { vec![9; 8] } else { vec![] },
                name,
                kind,
                start_time_unix_nano: u64::from(id[1]) * 1_000_000_007,
                end_time_unix_nano: u64::from(id[1]) * 1_000_000_007 + u64::from(id[2]) * 999,
                attributes,
                status: status.map(|(code, message)| Status { code, message }),
                trace_state: trace_state.to_owned(),
                dropped_events_count: u32::from(id[3] % 3),
                events: events
                    .into_iter()
                    .map(|(name, time, attributes)| Event {
                        name,
                        time_unix_nano: time * 1000,
                        attributes,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            },
        )
}

fn batch() -> impl Strategy<Value = Vec<ResourceSpans>> {
    let scope = (
        prop::option::of((text(), text())),
        prop::collection::vec(span(), 0..4),
    )
        .prop_map(|(scope, spans)| ScopeSpans {
            scope: scope.map(|(name, version)| InstrumentationScope {
                name,
                version,
                ..Default::default()
            }),
            spans,
            ..Default::default()
        });
    let resource =
        (attributes(), prop::collection::vec(scope, 0..3)).prop_map(|(attributes, scope_spans)| {
            ResourceSpans {
                resource: Some(Resource {
                    attributes,
                    ..Default::default()
                }),
                scope_spans,
                ..Default::default()
            }
        });
    prop::collection::vec(resource, 0..3)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Random keys and values (escapes, non-ASCII, repeated keys): both paths give
    /// the same bytes.
    #[test]
    fn writes_what_the_model_serializes_for_random_batches(batch in batch()) {
        same(&batch);
    }

    /// Spans with many tags (more than a small-sort threshold), keys repeating.
    #[test]
    fn writes_what_the_model_serializes_for_spans_with_many_tags(
        mut span in span(),
        attributes in attributes_in(33..80),
    ) {
        span.attributes = attributes;
        same(&[ResourceSpans {
            scope_spans: vec![ScopeSpans { spans: vec![span], ..Default::default() }],
            ..Default::default()
        }]);
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them_random(text in text()) {
        let mut got = Vec::new();
        str(&mut got, &text);
        prop_assert_eq!(
            String::from_utf8_lossy(&got),
            serde_json::to_string(&text).expect("json")
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
