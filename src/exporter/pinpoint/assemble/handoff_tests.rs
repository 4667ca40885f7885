//! Orphans handed between two instances through one (in-memory) shared store: the
//! split segment is joined exactly once, whichever of a claim and a withdraw reaches
//! the store first, and a store that is down changes nothing but the hand-off.

use super::super::proto::p_span_message;
use super::handoff::{OrphanOutcome, decode, encode};
use super::tests::{rs, span};
use super::*;
use crate::ids::CacheConfig;
use crate::ids::store::memory::MemoryStore;
use crate::ids::store::{RedisConfig, StoreConfig};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;

const HOLD: Duration = Duration::from_secs(10);

/// An instance: its own cache (with a store behind it) and assembler.
struct Instance {
    cache: Arc<MappingCache>,
    a: Assembler,
}

fn instance() -> Instance {
    let cache = Arc::new(
        MappingCache::new(&CacheConfig {
            store: Some(StoreConfig::Redis(RedisConfig {
                url: "redis://127.0.0.1:1/0".to_owned(),
                ..RedisConfig::default()
            })),
            ..CacheConfig::default()
        })
        .expect("cache"),
    );
    let mut cfg = super::tests::assembler(0, 1000).cfg;
    cfg.hold = HOLD;
    let a = Assembler::new(cfg, Arc::clone(&cache)).with_handoff_target("collector:9993");
    Instance { cache, a }
}

/// OTel spans in the messages (the entry of a span and every event).
fn otel_spans(out: &[Output]) -> usize {
    out.iter()
        .map(|o| match &o.message.field {
            Some(p_span_message::Field::Span(s)) => 1 + s.span_event.len(),
            Some(p_span_message::Field::SpanChunk(c)) => c.span_event.len(),
            None => 0,
        })
        .sum()
}

/// orders' entry (1, a root) and its two children (2 a client call, 3 internal).
fn children() -> ResourceSpans {
    rs(
        "orders",
        vec![
            span(2, Some(1), SpanKind::Client, 10, 20),
            span(3, Some(1), SpanKind::Internal, 21, 25),
        ],
    )
}

fn entry() -> ResourceSpans {
    rs("orders", vec![span(1, None, SpanKind::Server, 0, 30)])
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A holds the children, offers them; B gets the entry 5 s later.
fn split(store: &MemoryStore, t0: Instant) -> (Instance, Instance) {
    let (mut a, mut b) = (instance(), instance());
    a.a.add(&children(), t0, None);
    assert!(a.a.flush(t0, false).is_empty());
    store.pump(&a.cache);
    assert!(a.a.flush(t0 + ms(1), false).is_empty(), "orphans wait");
    assert_eq!(store.offers(), 2, "one offer per orphan group");
    let t1 = t0 + Duration::from_secs(5);
    b.a.add(&entry(), t1, None);
    assert!(
        b.a.flush(t1, false).is_empty(),
        "a root could go at once, but waits for its claim's answer"
    );
    (a, b)
}

#[test]
fn orphans_split_across_two_instances_join_their_segment_once() {
    let store = MemoryStore::default();
    let t0 = Instant::now();
    let (mut a, mut b) = split(&store, t0);
    let t1 = t0 + Duration::from_secs(5);
    store.pump(&b.cache);
    let out = b.a.flush(t1 + ms(5), false);
    assert_eq!(out.len(), 1);
    let s = tests::pspan(&out[0]);
    assert_eq!((s.parent_span_id, s.span_event.len()), (-1, 2), "{s:?}");
    assert_eq!(
        out[0].spans, 1,
        "claimed spans count where they were received"
    );
    assert_eq!(b.a.counts.orphans.get(OrphanOutcome::Claimed), 2);
    assert_eq!(b.a.pending(), 0);

    // A's hold runs out: it asks for its offers back, finds them claimed, drops them.
    let t2 = t0 + HOLD + ms(1);
    assert!(a.a.flush(t2, false).is_empty());
    store.pump(&a.cache);
    assert!(
        a.a.flush(t2 + ms(5), false).is_empty(),
        "handed off, not sent"
    );
    let c = a.a.counts.orphans;
    assert_eq!(
        (
            c.get(OrphanOutcome::Published),
            c.get(OrphanOutcome::HandedOff)
        ),
        (2, 2)
    );
    assert_eq!(a.a.pending(), 0);
    assert_eq!(a.a.counts.links.get(LinkOutcome::LocalParentMissing), 0);
    assert_eq!(store.offers(), 0);
}

#[test]
fn a_claim_and_a_withdraw_racing_give_each_span_to_exactly_one_instance() {
    for claim_first in [true, false] {
        let store = MemoryStore::default();
        let t0 = Instant::now();
        let (mut a, mut b) = split(&store, t0);
        // A's hold ran out while B's claim is still queued: both reach the store.
        let t2 = t0 + HOLD + ms(1);
        assert!(
            a.a.flush(t2, false).is_empty(),
            "withdraw asked, nothing sent"
        );
        if claim_first {
            store.pump(&b.cache);
            store.pump(&a.cache);
        } else {
            store.pump(&a.cache);
            store.pump(&b.cache);
        }
        let from_a = a.a.flush(t2 + ms(5), false);
        let from_b = b.a.flush(t2 + ms(5), false);
        assert_eq!(
            otel_spans(&from_a) + otel_spans(&from_b),
            3,
            "every span once (claim first: {claim_first})"
        );
        let (ca, cb) = (a.a.counts.orphans, b.a.counts.orphans);
        if claim_first {
            assert!(from_a.is_empty());
            assert_eq!(tests::pspan(&from_b[0]).span_event.len(), 2);
            assert_eq!(ca.get(OrphanOutcome::HandedOff), 2);
            assert_eq!(cb.get(OrphanOutcome::Claimed), 2);
        } else {
            // Taken back first: A sends them as before (their own segments), B the
            // entry alone.
            assert_eq!(from_a.len(), 2);
            assert_eq!(otel_spans(&from_b), 1);
            assert_eq!(ca.get(OrphanOutcome::EmittedLocally), 2);
            assert_eq!(cb.get(OrphanOutcome::Claimed), 0);
            assert_eq!(a.a.counts.links.get(LinkOutcome::LocalParentMissing), 2);
        }
        assert_eq!((a.a.pending(), b.a.pending()), (0, 0));
    }
}

#[test]
fn with_the_store_down_each_instance_behaves_as_without_one() {
    let store = MemoryStore::default();
    store.set_down(true);
    let t0 = Instant::now();
    let (mut a, mut b) = (instance(), instance());
    a.a.add(&children(), t0, None);
    assert!(a.a.flush(t0, false).is_empty());
    store.pump(&a.cache);
    let t1 = t0 + Duration::from_secs(5);
    b.a.add(&entry(), t1, None);
    assert!(b.a.flush(t1, false).is_empty());
    store.pump(&b.cache);
    // The claim failed: the store is known down, nothing waits for it any more.
    let out = b.a.flush(t1 + ms(1), false);
    assert_eq!(otel_spans(&out), 1);
    let t2 = t0 + HOLD + ms(1);
    assert!(a.a.flush(t2, false).is_empty());
    store.pump(&a.cache);
    let out = a.a.flush(t2 + ms(1), false);
    assert_eq!(otel_spans(&out), 2, "sent here, as without a store");
    assert_eq!(a.a.counts.orphans.get(OrphanOutcome::EmittedLocally), 2);
    assert_eq!(a.a.counts.links.get(LinkOutcome::LocalParentMissing), 2);
    assert_eq!(a.a.pending(), 0);

    // No answer at all (a store that never answers): the wait is bounded.
    let mut c = instance();
    c.a.add(&children(), t0, None);
    c.a.flush(t0, false);
    assert!(c.a.flush(t2, false).is_empty());
    let out = c.a.flush(t2 + Duration::from_secs(1), false);
    assert_eq!(otel_spans(&out), 2);
}

#[test]
fn offers_round_trip_and_damage_is_refused() {
    let agent = agent::identify(children().resource.as_ref());
    let spans = children().scope_spans[0].spans.clone();
    let bytes = encode(&agent, spans.clone());
    assert_eq!(decode(&bytes), Some((agent, spans)));
    assert_eq!(decode(&bytes[..bytes.len() / 2]), None);
    assert_eq!(decode(&[2]), None, "unknown version");
    assert_eq!(decode(&[]), None);
}
