//! Property: for generated multi-service traces, every arrival order within the hold
//! gives the call tree of in-order arrival (same links, same events in the same order,
//! no UNKNOWN, no CORRUPTED), as the web builds it from the messages sent.
//!
//! Arrival orders are those an SDK can produce: each service exports its spans in the
//! order they end (a child before its synchronous parent), cut into batches anywhere;
//! the batches of all services interleave in any order, spread over less than the hold.
use super::calltree;
use super::tests::rs;
use super::*;
use crate::ids::CacheConfig;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use proptest::prelude::*;

/// splitmix64, so one proptest seed makes one trace shape.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

struct Gen {
    rng: Rng,
    next_id: u64,
    trace: Vec<u8>,
    /// (service, span) in creation order.
    spans: Vec<(String, Span)>,
    services: usize,
}

impl Gen {
    fn span(
        &mut self,
        svc: usize,
        parent: Option<Vec<u8>>,
        kind: SpanKind,
        name: String,
        start: u64,
        end: u64,
    ) -> Vec<u8> {
        self.next_id += 1;
        let id = self.next_id.to_be_bytes().to_vec();
        let s = Span {
            trace_id: self.trace.clone(),
            span_id: id.clone(),
            parent_span_id: parent.unwrap_or_default(),
            name,
            kind: kind as i32,
            start_time_unix_nano: start * 1_000_000,
            end_time_unix_nano: end * 1_000_000,
            ..Default::default()
        };
        self.spans.push((format!("svc{svc}"), s));
        id
    }

    /// Service `me`'s segment in `[start, end]` ms, called through `caller` (a client
    /// span id), making up to `depth` more levels of calls.
    fn service(&mut self, me: usize, caller: Option<Vec<u8>>, start: u64, end: u64, depth: u32) {
        let entry = self.span(
            me,
            caller,
            SpanKind::Server,
            format!("GET /{me}"),
            start,
            end,
        );
        let children = 1 + self.rng.below(3);
        let width = (end - start) / (children + 1);
        for k in 0..children {
            let (s, e) = (start + 1 + k * width, start + (k + 1) * width);
            let kind = self.rng.below(3);
            if kind == 0 && depth > 0 && self.services < 8 && e - s > 4 {
                self.services += 1;
                let callee = self.services;
                let client = self.span(
                    me,
                    Some(entry.clone()),
                    SpanKind::Client,
                    format!("call {k}"),
                    s,
                    e,
                );
                if let Some((_, c)) = self.spans.last_mut() {
                    c.attributes.push(KeyValue {
                        key: "server.address".into(),
                        value: Some(AnyValue {
                            value: Some(Value::StringValue(format!("svc{callee}"))),
                        }),
                        ..Default::default()
                    });
                }
                self.service(callee, Some(client), s + 1, e - 1, depth - 1);
            } else {
                let internal = self.span(
                    me,
                    Some(entry.clone()),
                    SpanKind::Internal,
                    format!("work {k}"),
                    s,
                    e,
                );
                if kind == 1 && e - s > 4 {
                    self.span(
                        me,
                        Some(internal),
                        SpanKind::Internal,
                        format!("inner {k}"),
                        s + 1,
                        e - 1,
                    );
                }
            }
        }
    }
}

/// A trace over several services, as (service, span) pairs.
fn trace(seed: u64) -> Vec<(String, Span)> {
    let mut g = Gen {
        rng: Rng(seed),
        next_id: 0,
        trace: seed.to_be_bytes().repeat(2),
        spans: Vec::new(),
        services: 0,
    };
    g.service(0, None, 1_000, 1_000 + 4_000, 3);
    g.spans
}

fn assembler(hold: Duration) -> Assembler {
    let mut cfg = Config::with_defaults(AgentId::new("otel").expect("marker"));
    cfg.hold = hold;
    Assembler::new(
        cfg,
        Arc::new(MappingCache::new(&CacheConfig::default()).expect("cache")),
    )
}

/// The tree when every span arrives at once.
fn in_order(spans: &[(String, Span)]) -> calltree::Tree {
    let mut a = assembler(Duration::from_secs(10));
    let now = Instant::now();
    let mut services: Vec<&String> = Vec::new();
    for (s, _) in spans {
        if !services.contains(&s) {
            services.push(s);
        }
    }
    for svc in services {
        let mine = spans
            .iter()
            .filter(|(s, _)| s == svc)
            .map(|(_, x)| x.clone())
            .collect();
        a.add(&rs(svc, mine), now, None);
    }
    let out = a.flush(now, false);
    assert_eq!(a.pending(), 0);
    calltree::check(&out)
}

/// The tree when the spans arrive in batches shaped by `seed`.
fn shuffled(spans: &[(String, Span)], seed: u64, hold: Duration) -> (calltree::Tree, Counts) {
    let mut rng = Rng(seed ^ 0x5eed);
    let mut batches: Vec<(String, Vec<Span>)> = Vec::new();
    let mut names: Vec<String> = spans.iter().map(|(s, _)| s.clone()).collect();
    names.sort();
    names.dedup();
    for svc in names {
        let mut mine: Vec<Span> = spans
            .iter()
            .filter(|(s, _)| *s == svc)
            .map(|(_, x)| x.clone())
            .collect();
        // Export order: by end time, a child before a parent that ends at the same time.
        mine.sort_by_key(|s| {
            (
                s.end_time_unix_nano,
                std::cmp::Reverse(s.start_time_unix_nano),
            )
        });
        let mut batch = Vec::new();
        for s in mine {
            batch.push(s);
            if rng.below(3) == 0 {
                batches.push((svc.clone(), std::mem::take(&mut batch)));
            }
        }
        if !batch.is_empty() {
            batches.push((svc.clone(), batch));
        }
    }
    // Interleave services in any order, keeping each service's own batch order.
    let mut queues: Vec<std::collections::VecDeque<(String, Vec<Span>)>> = Vec::new();
    for b in batches {
        match queues
            .iter_mut()
            .find(|q| q.front().is_some_and(|f| f.0 == b.0) || q.back().is_some_and(|f| f.0 == b.0))
        {
            Some(q) => q.push_back(b),
            None => queues.push(std::collections::VecDeque::from([b])),
        }
    }
    let total: usize = queues.iter().map(std::collections::VecDeque::len).sum();
    let gap = hold / (total as u32 + 1);
    let mut a = assembler(hold);
    let t0 = Instant::now();
    let mut at = t0;
    let mut out = Vec::new();
    loop {
        let live: Vec<usize> = (0..queues.len())
            .filter(|&i| !queues[i].is_empty())
            .collect();
        if live.is_empty() {
            break;
        }
        let q = live[rng.below(live.len() as u64) as usize];
        let Some((svc, batch)) = queues[q].pop_front() else {
            break;
        };
        a.add(&rs(&svc, batch), at, None);
        out.extend(a.flush(at, false));
        at += gap;
        out.extend(a.flush(at, false));
    }
    // Let every hold run out.
    out.extend(a.flush(at + 3 * hold, false));
    assert_eq!(a.pending(), 0);
    (calltree::check(&out), a.counts)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn every_arrival_order_within_the_hold_gives_the_in_order_tree(shape in any::<u64>(), order in any::<u64>()) {
        let spans = trace(shape);
        let want = in_order(&spans);
        prop_assert_eq!((want.roots, want.unknown, want.corrupted, want.orphan_chunks), (1, 0, 0, 0), "{}", want.text);
        let (got, counts) = shuffled(&spans, order, Duration::from_secs(10));
        prop_assert_eq!(counts.unresolved(), 0);
        prop_assert_eq!(&got, &want, "in order:\n{}\nshuffled:\n{}", want.text, got.text);
    }
}

#[test]
fn the_generator_makes_multi_service_traces() {
    let services: Vec<usize> = (0..50u64)
        .map(|seed| {
            let mut s: Vec<String> = trace(seed).into_iter().map(|(s, _)| s).collect();
            s.sort();
            s.dedup();
            s.len()
        })
        .collect();
    assert!(
        services.iter().filter(|&&n| n >= 3).count() > 10,
        "{services:?}"
    );
}
