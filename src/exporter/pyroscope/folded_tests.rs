use super::*;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::ScopeSpans;

const MS: u64 = 1_000_000;
const T0: u64 = 1_700_000_000_000_000_000;

fn cfg() -> Config {
    Config {
        labels_from_resource: vec!["deployment.environment".into()],
        upstream_prefix: false,
        max_stacks_per_service: 100,
        max_services: 100,
        max_pending_spans: 1000,
        settle: Duration::from_secs(1),
    }
}

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

/// A span of trace `t`: `(id, parent, name, kind, start ms, end ms)`.
fn span(t: u8, id: u8, parent: u8, name: &str, kind: SpanKind, start: u64, end: u64) -> Span {
    Span {
        trace_id: vec![t; 16],
        span_id: vec![id; 8],
        parent_span_id: if parent == 0 { vec![] } else { vec![parent; 8] },
        name: name.into(),
        kind: kind as i32,
        start_time_unix_nano: T0 + start * MS,
        end_time_unix_nano: T0 + end * MS,
        ..Default::default()
    }
}

fn resource(service: &str, spans: Vec<Span>) -> ResourceSpans {
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![
                kv("service.name", service),
                kv("deployment.environment", "prod"),
            ],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The hand-computed trace: checkout calls pricing. Self times (ms):
/// GET /cart 100 - |[10,40] ∪ [30,60] ∪ [60,90]| = 20 (a sum would give 10);
/// load cart 30 - 20 = 10; SELECT cart 20; price 30; call pricing 30 (its child is
/// remote, in pricing); POST /price 20 - 10 = 10; compute 10.
fn known_trace() -> Vec<ResourceSpans> {
    use SpanKind::*;
    vec![
        resource(
            "checkout",
            vec![
                span(1, 0xA, 0, "GET /cart", Server, 0, 100),
                span(1, 0xB, 0xA, "load cart", Internal, 10, 40),
                span(1, 0xC, 0xB, "SELECT cart", Client, 15, 35),
                span(1, 0xD, 0xA, "price", Internal, 30, 60),
                span(1, 0xE, 0xA, "call pricing", Client, 60, 90),
            ],
        ),
        resource(
            "pricing",
            vec![
                span(1, 0xF, 0xE, "POST /price", Server, 65, 85),
                span(1, 0x1F, 0xF, "compute", Internal, 70, 80),
            ],
        ),
    ]
}

/// `(service, folded lines)` per service.
type Folded = Vec<(String, Vec<(String, u64)>)>;

fn run(cfg: Config, input: &[ResourceSpans]) -> (Folded, Counts) {
    let mut a = Aggregator::new(cfg);
    let now = Instant::now();
    for rs in input {
        a.add(rs, now);
    }
    a.settle(now + Duration::from_secs(1), false);
    let out = a
        .take_interval()
        .into_iter()
        .map(|p| (p.key.service.clone(), p.lines))
        .collect();
    (out, a.counts)
}

fn lines(pairs: &[(&str, u64)]) -> Vec<(String, u64)> {
    pairs
        .iter()
        .map(|(s, v)| ((*s).to_owned(), v * MS))
        .collect()
}

#[test]
fn known_trace_gives_hand_computed_self_times() {
    let (out, counts) = run(cfg(), &known_trace());
    assert_eq!(
        out,
        vec![
            (
                "checkout".into(),
                lines(&[
                    ("GET /cart", 20),
                    ("GET /cart;call pricing", 30),
                    ("GET /cart;load cart", 10),
                    ("GET /cart;load cart;SELECT cart", 20),
                    ("GET /cart;price", 30),
                ])
            ),
            (
                "pricing".into(),
                lines(&[("POST /price", 10), ("POST /price;compute", 10)])
            ),
        ]
    );
    assert_eq!(counts.folded_spans, 7);
}

#[test]
fn upstream_prefix_names_the_calling_services() {
    let mut c = cfg();
    c.upstream_prefix = true;
    let (out, _) = run(c, &known_trace());
    assert_eq!(out[0].1[0], ("GET /cart".to_owned(), 20 * MS));
    assert_eq!(
        out[1].1,
        lines(&[
            ("[checkout];POST /price", 10),
            ("[checkout];POST /price;compute", 10)
        ])
    );
}

#[test]
fn labels_come_from_the_configured_resource_attributes() {
    let mut a = Aggregator::new(cfg());
    a.add(&known_trace()[0], Instant::now());
    a.settle(Instant::now(), true);
    let p = a.take_interval();
    assert_eq!(
        p[0].key.labels,
        vec![("deployment.environment".to_owned(), "prod".to_owned())]
    );
    let bare = service_key(&[], &["x".into()]);
    assert_eq!(
        (bare.service.as_str(), bare.labels.len()),
        ("unknown_service", 0)
    );
}

#[test]
fn traces_wait_until_they_settle() {
    let mut a = Aggregator::new(cfg());
    let t = Instant::now();
    let trace = known_trace();
    a.add(&trace[0], t);
    a.settle(t + Duration::from_millis(500), false);
    assert_eq!(a.pending(), 5);
    // A late span of the same trace restarts its wait.
    a.add(&trace[1], t + Duration::from_millis(800));
    a.settle(t + Duration::from_millis(1500), false);
    assert_eq!(a.pending(), 7);
    a.settle(t + Duration::from_millis(1800), false);
    assert_eq!(a.pending(), 0);
    assert_eq!(a.take_interval().len(), 2);
    assert!(a.take_interval().is_empty(), "a new interval starts empty");
}

#[test]
fn self_time_table() {
    let rec = |start: u64, end: u64| SpanRec {
        id: [1; 8],
        parent: None,
        remote_parent: false,
        name: Arc::from("x"),
        start,
        end,
        service: Arc::new(service_key(&[], &[])),
    };
    let check = |parent: (u64, u64), kids: &[(u64, u64)], want: u64| {
        let kids: Vec<SpanRec> = kids.iter().map(|&(s, e)| rec(s, e)).collect();
        assert_eq!(
            self_time(&rec(parent.0, parent.1), kids.iter()),
            want,
            "{parent:?} {:?}",
            kids.iter().map(|k| (k.start, k.end)).collect::<Vec<_>>()
        );
    };
    check((0, 100), &[], 100);
    check((0, 100), &[(10, 20), (30, 40)], 80);
    check((0, 100), &[(10, 50), (20, 30)], 60); // nested
    check((0, 100), &[(10, 50), (40, 60)], 50); // overlapping
    check((0, 100), &[(90, 150)], 90); // outlives the parent: clipped
    check((0, 100), &[(-5i64 as u64, 5)], 100); // nonsense interval ignored
    check((0, 100), &[(0, 100), (0, 100)], 0);
    check((5, 5), &[], 0);
}

#[test]
fn distinct_stacks_are_capped_and_the_rest_overflows() {
    let mut c = cfg();
    c.max_stacks_per_service = 2;
    let (out, counts) = run(c, &known_trace()[..1]);
    // Depth-first order: GET /cart, load cart are kept; SELECT cart, price and
    // call pricing go to [overflow] (20 + 30 + 30 ms).
    assert_eq!(
        out[0].1,
        lines(&[
            ("GET /cart", 20),
            ("GET /cart;load cart", 10),
            ("[overflow]", 80)
        ])
    );
    assert_eq!(counts.overflow_spans, 3);
}

#[test]
fn services_are_capped_and_counted() {
    let mut c = cfg();
    c.max_services = 1;
    let (out, counts) = run(c, &known_trace());
    assert_eq!(out.len(), 1);
    assert_eq!(counts.dropped_spans, 2);
}

#[test]
fn pending_spans_are_bounded_by_folding_the_oldest_traces() {
    let mut c = cfg();
    c.max_pending_spans = 4;
    let mut a = Aggregator::new(c);
    let t = Instant::now();
    for trace in 1..=3u8 {
        let rs = resource(
            "s",
            vec![
                span(trace, 1, 0, "a", SpanKind::Server, 0, 10),
                span(trace, 2, 1, "b", SpanKind::Internal, 0, 5),
            ],
        );
        a.add(&rs, t + Duration::from_millis(u64::from(trace)));
    }
    assert!(a.pending() <= 4, "{}", a.pending());
    assert_eq!(a.counts.early_traces, 2);
    a.settle(t, true);
    assert_eq!(a.take_interval()[0].lines, lines(&[("a", 15), ("a;b", 15)]));
}

#[test]
fn remote_flag_starts_a_segment_even_in_the_same_service() {
    let mut child = span(1, 2, 1, "handle", SpanKind::Internal, 10, 20);
    child.flags = HAS_IS_REMOTE | IS_REMOTE;
    let rs = resource(
        "s",
        vec![span(1, 1, 0, "call", SpanKind::Client, 0, 30), child],
    );
    let (out, _) = run(cfg(), &[rs]);
    assert_eq!(out[0].1, lines(&[("call", 30), ("handle", 10)]));
}

#[test]
fn parent_cycles_and_unknown_parents_do_not_hang_or_vanish() {
    let rs = resource(
        "s",
        vec![
            span(1, 1, 2, "x", SpanKind::Internal, 0, 10),
            span(1, 2, 1, "y", SpanKind::Internal, 0, 10),
            span(1, 3, 9, "orphan", SpanKind::Internal, 0, 7),
        ],
    );
    let (out, counts) = run(cfg(), &[rs]);
    assert_eq!(counts.folded_spans, 3);
    assert!(out[0].1.contains(&("orphan".to_owned(), 7 * MS)), "{out:?}");
}

#[test]
fn frames_are_sanitized() {
    let check = |raw: &str, want: &str| assert_eq!(sanitize_frame(raw), want, "{raw:?}");
    check("GET /a", "GET /a");
    check("a;b", "a_b");
    check("line\nbreak\r\tx", "line break  x");
    check("  padded  ", "padded");
    check("", "<unnamed>");
    check("\n", "<unnamed>");
    let long = "é".repeat(200);
    let s = sanitize_frame(&long);
    assert!(s.len() <= 256 && s.chars().all(|c| c == 'é'));
}

#[test]
fn body_is_one_line_per_stack() {
    let body = folded_body(&[("GET /a;b c".into(), 5), ("x".into(), 12)]);
    assert_eq!(body, "GET /a;b c 5\nx 12\n");
}
