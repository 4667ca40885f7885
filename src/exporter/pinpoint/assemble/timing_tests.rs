//! Arrival timing: per-segment holds, callers learned on arrival, callers before
//! callees at expiry, and the byte bound.
use super::calltree;
use super::tests::{assembler, pspan, rs, span};
use super::*;
use crate::ids::mapping;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;

/// A client span calling `dest` (a remote call with a destination).
fn client(id: u8, parent: u8, start: u64, end: u64, dest: &str) -> Span {
    let mut s = span(id, Some(parent), SpanKind::Client, start, end);
    s.attributes = vec![KeyValue {
        key: "server.address".into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(dest.into())),
        }),
        ..Default::default()
    }];
    s
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Adds `spans` of `service` at `at` and flushes like the exporter does.
fn arrive(a: &mut Assembler, out: &mut Vec<Output>, service: &str, spans: Vec<Span>, at: Instant) {
    a.add(&rs(service, spans), at, None);
    out.extend(a.flush(at, false));
}

/// Ticks every 100 ms in `(from, to]`.
fn tick(a: &mut Assembler, out: &mut Vec<Output>, from: Instant, to: Instant) {
    let mut t = from;
    while t < to {
        t += ms(100);
        out.extend(a.flush(t, false));
    }
}

fn assert_exact(a: &Assembler, out: &[Output], segments: usize) {
    let tree = calltree::check(out);
    assert_eq!(
        (tree.roots, tree.unknown, tree.corrupted, out.len()),
        (1, 0, 0, segments),
        "{}",
        tree.text
    );
    assert_eq!(a.counts.unresolved(), 0);
    assert_eq!(a.pending(), 0);
}

/// a → b → c → d exported callee-first, each gap below the hold, their sum above it.
#[test]
fn a_depth_4_chain_exported_callee_first_is_exact() {
    let mut a = assembler(1000, 1000);
    let t0 = Instant::now();
    let mut out = Vec::new();
    arrive(
        &mut a,
        &mut out,
        "d",
        vec![
            span(7, Some(6), SpanKind::Server, 30, 40),
            span(8, Some(7), SpanKind::Internal, 31, 39),
        ],
        t0,
    );
    tick(&mut a, &mut out, t0, t0 + ms(600));
    arrive(
        &mut a,
        &mut out,
        "c",
        vec![
            span(5, Some(4), SpanKind::Server, 20, 50),
            client(6, 5, 29, 41, "d"),
        ],
        t0 + ms(600),
    );
    tick(&mut a, &mut out, t0 + ms(600), t0 + ms(1200));
    arrive(
        &mut a,
        &mut out,
        "b",
        vec![
            span(3, Some(2), SpanKind::Server, 10, 60),
            client(4, 3, 19, 51, "c"),
        ],
        t0 + ms(1200),
    );
    tick(&mut a, &mut out, t0 + ms(1200), t0 + ms(1800));
    arrive(
        &mut a,
        &mut out,
        "a",
        vec![
            span(1, None, SpanKind::Server, 0, 70),
            client(2, 1, 9, 61, "b"),
        ],
        t0 + ms(1800),
    );
    tick(&mut a, &mut out, t0 + ms(1800), t0 + ms(4000));
    assert_exact(&a, &out, 4);
    assert_eq!(a.counts.links.get(LinkOutcome::LocalCache), 3);
    // Each callee went out as soon as its caller's entry arrived, not at its caller's
    // emission: d with c, c with b, b with a.
}

/// A callee joining an older buffer of its trace still gets its whole hold.
#[test]
fn a_callee_waits_its_own_hold_not_its_traces() {
    let mut a = assembler(1000, 1000);
    let t0 = Instant::now();
    let mut out = Vec::new();
    // An orphan of service x waits from t0 (its local parent never comes).
    arrive(
        &mut a,
        &mut out,
        "x",
        vec![span(20, Some(21), SpanKind::Internal, 1, 2)],
        t0,
    );
    // The callee arrives 900 ms later, its caller 600 ms after that.
    arrive(
        &mut a,
        &mut out,
        "b",
        vec![span(3, Some(2), SpanKind::Server, 10, 20)],
        t0 + ms(900),
    );
    tick(&mut a, &mut out, t0 + ms(900), t0 + ms(1500));
    arrive(
        &mut a,
        &mut out,
        "a",
        vec![
            span(1, None, SpanKind::Server, 0, 30),
            client(2, 1, 9, 21, "b"),
        ],
        t0 + ms(1500),
    );
    tick(&mut a, &mut out, t0 + ms(1500), t0 + ms(4000));
    assert_eq!(a.counts.links.get(LinkOutcome::UnresolvedRemote), 0);
    assert_eq!(a.counts.links.get(LinkOutcome::LocalParentMissing), 1);
    let callee = out
        .iter()
        .map(pspan)
        .find(|s| s.span_id == mapping::entry_span_id(SpanId([2; 8])))
        .expect("callee");
    assert_eq!(callee.parent_span_id, i64::from_be_bytes([1; 8]));
}

/// A caller whose own caller never comes still teaches its callee at once.
#[test]
fn callers_are_learned_on_arrival_not_on_emission() {
    let mut a = assembler(1000, 1000);
    let t0 = Instant::now();
    let mut out = Vec::new();
    arrive(
        &mut a,
        &mut out,
        "b",
        vec![
            span(3, Some(2), SpanKind::Server, 10, 60),
            client(4, 3, 19, 51, "c"),
        ],
        t0,
    );
    arrive(
        &mut a,
        &mut out,
        "c",
        vec![span(5, Some(4), SpanKind::Server, 20, 50)],
        t0 + ms(10),
    );
    assert_eq!(out.len(), 1, "the callee went out while its caller waits");
    let b_id = mapping::entry_span_id(SpanId([2; 8]));
    assert_eq!(pspan(&out[0]).parent_span_id, b_id);
    tick(&mut a, &mut out, t0 + ms(10), t0 + ms(1200));
    assert_eq!(out.len(), 2);
    assert_eq!(pspan(&out[1]).span_id, b_id);
    assert_eq!(
        a.counts.links.get(LinkOutcome::UnresolvedRemote),
        1,
        "only b's own caller is missing"
    );
    assert_eq!(a.counts.links.get(LinkOutcome::LocalCache), 1);
}

/// At expiry a caller whose entry never came goes out first, as its own segment, and
/// its callee links to it instead of UNKNOWN.
#[test]
fn at_expiry_callers_go_before_callees() {
    let mut a = assembler(1000, 1000);
    let t0 = Instant::now();
    let mut out = Vec::new();
    // a's work span 2 with its client call 4 (a's entry 1 never arrives), and b's
    // entry, at the same time.
    let work = || span(2, Some(1), SpanKind::Internal, 5, 25);
    arrive(
        &mut a,
        &mut out,
        "a",
        vec![work(), client(4, 2, 9, 21, "b")],
        t0,
    );
    arrive(
        &mut a,
        &mut out,
        "b",
        vec![span(3, Some(4), SpanKind::Server, 10, 20)],
        t0,
    );
    tick(&mut a, &mut out, t0, t0 + ms(1500));
    assert_eq!(out.len(), 2);
    let callee = out
        .iter()
        .map(pspan)
        .find(|s| s.span_id == mapping::entry_span_id(SpanId([4; 8])))
        .expect("callee");
    assert_eq!(
        callee.parent_span_id,
        i64::from_be_bytes([2; 8]),
        "linked to a's split segment"
    );
    assert_eq!(a.counts.links.get(LinkOutcome::UnresolvedRemote), 0);
    assert_eq!(a.counts.links.get(LinkOutcome::LocalParentMissing), 1);
    let tree = calltree::check(&out);
    assert_eq!(
        (tree.unknown, tree.corrupted),
        (1, 0),
        "only a's missing entry shows"
    );

    // The entry arriving within the orphan's hold makes everything exact.
    let mut a = assembler(1000, 1000);
    let mut out = Vec::new();
    arrive(
        &mut a,
        &mut out,
        "a",
        vec![work(), client(4, 2, 9, 21, "b")],
        t0,
    );
    arrive(
        &mut a,
        &mut out,
        "b",
        vec![span(3, Some(4), SpanKind::Server, 10, 20)],
        t0 + ms(500),
    );
    arrive(
        &mut a,
        &mut out,
        "a",
        vec![span(1, None, SpanKind::Server, 0, 30)],
        t0 + ms(900),
    );
    tick(&mut a, &mut out, t0 + ms(900), t0 + ms(3000));
    assert_exact(&a, &out, 2);
}

/// Messages say how many OTel spans they carry (what the exporter counts as sent).
#[test]
fn outputs_count_their_spans() {
    let mut a = assembler(1000, 1000);
    let t0 = Instant::now();
    a.add(
        &rs(
            "a",
            vec![
                span(1, None, SpanKind::Server, 0, 30),
                span(2, Some(1), SpanKind::Internal, 1, 2),
            ],
        ),
        t0,
        None,
    );
    let out = a.flush(t0, false);
    assert_eq!(out.iter().map(|o| o.spans).sum::<usize>(), 2);
    a.add(
        &rs("a", vec![span(3, Some(1), SpanKind::Internal, 3, 40)]),
        t0,
        None,
    );
    let out = a.flush(t0, false);
    assert_eq!((a.counts.chunks, out[0].spans), (1, 1));
}

fn waiting_block(n: u8) -> Arc<Block> {
    // n callee entries of n traces, all waiting for callers.
    let spans = (1..=n)
        .map(|i| {
            let mut s = span(i, Some(200), SpanKind::Server, 0, 1);
            s.trace_id = vec![i; 16];
            s
        })
        .collect();
    Arc::new(Block::new(vec![rs("b", spans)]))
}

#[test]
fn held_bytes_are_bounded_and_a_block_mostly_sent_is_let_go() {
    let t0 = Instant::now();
    // A block whose spans all wait stays pinned and counts whole.
    let mut a = assembler(1000, 1000);
    a.add_block(&waiting_block(10), t0, None);
    a.flush(t0, false);
    assert_eq!((a.pending(), a.pinned_blocks()), (10, 1));
    let pinned = a.pending_bytes();
    assert!(pinned > 0);

    // One waiting span in a block of 51 is copied out: the block is not kept.
    let mut spans: Vec<Span> = (1..=50u8)
        .map(|i| {
            let mut s = span(i, None, SpanKind::Server, 0, 1);
            s.trace_id = vec![i; 16];
            s
        })
        .collect();
    let mut w = span(99, Some(200), SpanKind::Server, 0, 1);
    w.trace_id = vec![99; 16];
    spans.push(w);
    let block = Arc::new(Block::new(vec![rs("b", spans)]));
    let mut a = assembler(1000, 1000);
    a.add_block(&block, t0, None);
    assert_eq!(a.flush(t0, false).len(), 50);
    assert_eq!((a.pending(), a.pinned_blocks()), (1, 0));
    assert_eq!(
        Arc::strong_count(&block),
        1,
        "no held span keeps the block alive"
    );
    assert!(a.pending_bytes() > 0 && a.pending_bytes() < pinned);

    // Over max_pending_bytes the oldest traces go out early.
    let mut a = Assembler::new(
        Config {
            max_pending_bytes: pinned / 2,
            ..assembler(1000, 1000).cfg
        },
        Arc::new(MappingCache::new(&crate::ids::CacheConfig::default()).expect("cache")),
    );
    a.add_block(&waiting_block(10), t0, None);
    a.flush(t0, false);
    let out = a.flush(t0 + ms(1), false);
    assert!(!out.is_empty() && a.counts.early_by_capacity > 0);
    assert!(a.pending_bytes() <= pinned / 2 || a.pinned_blocks() == 0);
}

/// loadgen's callee-first traffic links every service of a trace to its caller.
#[test]
fn callee_first_load_links_every_service() {
    let shape = crate::testdata::Shape::default();
    let mut a = assembler(10_000, 1_000_000);
    let t0 = Instant::now();
    for seed in 1..=20 {
        let req = crate::testdata::callee_first_request(&shape, seed, 1, 2);
        a.add_block(&Arc::new(Block::new(req.resource_spans)), t0, None);
        a.flush(t0, false);
    }
    // Batches 1..=12 have all five services: 10 traces × 4 links each.
    assert_eq!(a.counts.unresolved(), 0);
    assert!(
        a.counts.links.get(LinkOutcome::LocalCache) >= 480,
        "{:?}",
        a.counts
    );
    assert!(a.pending() > 0, "the newest traces wait for their callers");
}
