//! Tests of the parent module.
use super::super::proto::p_span_message;
use super::*;
use crate::ids::{CacheConfig, mapping};
use opentelemetry_proto::tonic::trace::v1::ScopeSpans;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;

pub(super) fn assembler(hold_ms: u64, max_pending: usize) -> Assembler {
    let cache = Arc::new(MappingCache::new(&CacheConfig::default()).expect("cache"));
    Assembler::new(
        Config {
            hold: Duration::from_millis(hold_ms),
            max_pending_spans: max_pending,
            max_pending_bytes: usize::MAX,
            late_window: Duration::from_secs(60),
            max_late_spans: 1000,
            marker: AgentId::new("otel").expect("marker"),
            convert: Options::default(),
        },
        cache,
    )
}

pub(super) fn span(id: u8, parent: Option<u8>, kind: SpanKind, start: u64, end: u64) -> Span {
    Span {
        trace_id: vec![7; 16],
        span_id: vec![id; 8],
        parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
        name: format!("s{id}"),
        kind: kind as i32,
        start_time_unix_nano: start * 1_000_000,
        end_time_unix_nano: end * 1_000_000,
        ..Default::default()
    }
}

pub(super) fn rs(service: &str, spans: Vec<Span>) -> ResourceSpans {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![KeyValue {
                key: "service.name".into(),
                value: Some(AnyValue {
                    value: Some(Value::StringValue(service.into())),
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans,
            ..Default::default()
        }],
        ..Default::default()
    }
}

pub(super) fn pspan(o: &Output) -> &super::super::proto::PSpan {
    match &o.message.field {
        Some(p_span_message::Field::Span(s)) => s,
        other => panic!("expected a span, got {other:?}"),
    }
}

#[test]
fn a_segment_with_its_events_in_depth_first_order() {
    let mut a = assembler(1000, 100);
    let now = Instant::now();
    // root(1) ─ child(2) ─ grandchild(3); root ─ child(4) (starts later)
    a.add(
        &rs(
            "svc",
            vec![
                span(3, Some(2), SpanKind::Client, 12, 13),
                span(4, Some(1), SpanKind::Internal, 20, 25),
                span(2, Some(1), SpanKind::Internal, 10, 15),
                span(1, None, SpanKind::Server, 0, 30),
            ],
        ),
        now,
        None,
    );
    let out = a.flush(now, false);
    assert_eq!(out.len(), 1);
    let s = pspan(&out[0]);
    assert_eq!(
        (s.parent_span_id, s.span_id),
        (-1, i64::from_be_bytes([1; 8]))
    );
    let events: Vec<(i32, i32, i32, i32)> = s
        .span_event
        .iter()
        .map(|e| (e.sequence, e.depth, e.start_elapsed, e.end_elapsed))
        .collect();
    assert_eq!(events, vec![(0, 1, 10, 5), (1, 2, 2, 1), (2, 1, 8, 5)]);
    assert_eq!(a.pending(), 0);
}

#[test]
fn an_unknown_caller_waits_for_the_hold_window_then_falls_back() {
    let mut a = assembler(50, 100);
    let t0 = Instant::now();
    let mut entry = span(5, Some(9), SpanKind::Server, 0, 10);
    entry.trace_state = "pp=app:caller;type:1010,other=x".into();
    a.add(&rs("callee", vec![entry]), t0, None);
    assert!(
        a.flush(t0, false).is_empty(),
        "held while the caller may still arrive"
    );
    assert_eq!(a.pending(), 1);
    let out = a.flush(t0 + Duration::from_millis(60), false);
    assert_eq!(out.len(), 1);
    let s = pspan(&out[0]);
    // spanId = mix(parent), parentSpanId = the parent read as i64 (UNKNOWN in the web).
    assert_eq!(s.span_id, mapping::entry_span_id(SpanId([9; 8])));
    assert_eq!(s.parent_span_id, i64::from_be_bytes([9; 8]));
    let info = s
        .accept_event
        .as_ref()
        .and_then(|e| e.parent_info.as_ref())
        .expect("parent info from pp");
    assert_eq!(
        (
            info.parent_application_name.as_str(),
            info.parent_application_type
        ),
        ("caller", 1010)
    );
    assert_eq!(a.counts.links.get(LinkOutcome::UnresolvedRemote), 1);
}

#[test]
fn the_caller_resolves_the_callee_in_one_flush() {
    let mut a = assembler(10_000, 100);
    let now = Instant::now();
    a.add(
        &rs("b", vec![span(5, Some(2), SpanKind::Server, 1, 9)]),
        now,
        None,
    );
    assert!(a.flush(now, false).is_empty());
    let mut client = span(2, Some(1), SpanKind::Client, 1, 9);
    client.attributes = vec![opentelemetry_proto::tonic::common::v1::KeyValue {
        key: "server.address".into(),
        value: Some(opentelemetry_proto::tonic::common::v1::AnyValue {
            value: Some(
                opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue("b".into()),
            ),
        }),
        ..Default::default()
    }];
    a.add(
        &rs("a", vec![span(1, None, SpanKind::Server, 0, 10), client]),
        now,
        None,
    );
    let out = a.flush(now, false);
    assert_eq!(out.len(), 2);
    let (caller, callee) = (pspan(&out[0]), pspan(&out[1]));
    assert_eq!(callee.parent_span_id, caller.span_id);
    let next = caller.span_event[0]
        .next_event
        .as_ref()
        .and_then(|n| n.field.clone());
    let super::super::proto::p_next_event::Field::MessageEvent(m) = next.expect("next event");
    assert_eq!(m.next_span_id, callee.span_id);
    let info = callee
        .accept_event
        .as_ref()
        .and_then(|e| e.parent_info.clone())
        .expect("parent info");
    assert_eq!(
        (
            info.parent_application_name.as_str(),
            info.acceptor_host.as_str()
        ),
        ("a", "b")
    );
    assert_eq!(a.counts.unresolved(), 0);
    assert_eq!(a.counts.links.get(LinkOutcome::LocalCache), 1);
}

#[test]
fn capacity_forces_the_oldest_traces_out() {
    let mut a = assembler(60_000, 2);
    let now = Instant::now();
    for i in 0..3u8 {
        let mut s = span(10 + i, Some(99), SpanKind::Server, 0, 1);
        s.trace_id = vec![i + 1; 16];
        a.add(
            &rs("x", vec![s]),
            now + Duration::from_millis(u64::from(i)),
            None,
        );
    }
    let out = a.flush(now, false);
    assert_eq!(out.len(), 1, "one trace over the cap is emitted early");
    assert_eq!(a.pending(), 2);
    assert_eq!(a.counts.early_by_capacity, 1);
    assert_eq!(a.flush(now, true).len(), 2, "shutdown emits the rest");
}

#[test]
fn sent_spans_are_forgotten_by_age_and_by_cap() {
    let mut a = assembler(1000, 100);
    let t0 = Instant::now();
    // 3 roots with 2 children each: 9 spans remembered for late children.
    for i in 0..3u8 {
        let mut spans = vec![
            span(10 * i + 1, None, SpanKind::Server, 0, 10),
            span(10 * i + 2, Some(10 * i + 1), SpanKind::Internal, 1, 2),
            span(10 * i + 3, Some(10 * i + 1), SpanKind::Internal, 3, 4),
        ];
        for s in &mut spans {
            s.trace_id = vec![i + 1; 16];
        }
        a.add(&rs("svc", spans), t0, None);
    }
    assert_eq!(a.flush(t0, false).len(), 3);
    assert_eq!(a.remembered(), 9);
    // Past the late window (60 s in these tests) everything is forgotten.
    a.flush(t0 + Duration::from_secs(61), false);
    assert_eq!(a.remembered(), 0);

    let mut capped = Assembler::new(
        Config {
            max_late_spans: 4,
            ..a.cfg.clone()
        },
        Arc::new(MappingCache::new(&CacheConfig::default()).expect("cache")),
    );
    let spans: Vec<Span> = (1..=8u8)
        .map(|i| {
            let mut s = span(i, None, SpanKind::Server, 0, 1);
            s.trace_id = vec![i; 16];
            s
        })
        .collect();
    capped.add(&rs("svc", spans), t0, None);
    capped.flush(t0, false);
    assert_eq!(capped.remembered(), 4, "the cap holds");
}
