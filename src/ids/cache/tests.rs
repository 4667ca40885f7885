//! Mapping-cache tests: config, counters and metrics, size and expiry evictions, and the
//! shared-store seam.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};

use super::*;
use crate::ids::store::StoreError;

fn cache(max_entries: u64, ttl: Duration) -> MappingCache {
    MappingCache::new(&CacheConfig { max_entries, ttl }).expect("valid config")
}

fn trace(n: u128) -> TraceId {
    TraceId::from_u128(n)
}

fn txid(n: i64) -> TransactionId {
    TransactionId {
        agent_id: AgentId::new("agentA").expect("valid"),
        agent_start_time: 1_700_000_000_000,
        sequence: n,
    }
}

fn segment(span_id: i64) -> CallerSegment {
    CallerSegment {
        span_id,
        application: Arc::from("shop-api"),
        service_type: 1010,
        destination: Some(Arc::from("orders:8080")),
    }
}

#[test]
fn config_defaults_parsing_and_validation() {
    assert_eq!(
        CacheConfig::default(),
        CacheConfig {
            max_entries: 100_000,
            ttl: Duration::from_secs(300)
        }
    );
    let cfg: CacheConfig =
        serde_json::from_str(r#"{"max_entries": 10, "ttl": "90s"}"#).expect("valid");
    assert_eq!((cfg.max_entries, cfg.ttl), (10, Duration::from_secs(90)));
    let cfg: CacheConfig = serde_json::from_str(r#"{"ttl": 30}"#).expect("integer seconds");
    assert_eq!(
        (cfg.max_entries, cfg.ttl),
        (100_000, Duration::from_secs(30))
    );
    assert_eq!(
        serde_json::to_string(&CacheConfig::default()).expect("serializes"),
        r#"{"max_entries":100000,"ttl":"5m"}"#
    );
    let unknown = serde_json::from_str::<CacheConfig>(r#"{"max_entry": 1}"#)
        .expect_err("unknown field")
        .to_string();
    assert!(unknown.contains("unknown field `max_entry`"), "{unknown}");
    let bad_ttl = serde_json::from_str::<CacheConfig>(r#"{"ttl": "5 minutes"}"#)
        .expect_err("bad ttl")
        .to_string();
    assert!(bad_ttl.contains("has unit \" minutes\""), "{bad_ttl}");

    let cases = [
        (
            0,
            Duration::from_secs(1),
            "id cache: max_entries must be at least 1",
        ),
        (1, Duration::ZERO, "id cache: ttl must be longer than 0"),
        (
            1,
            Duration::from_secs(8 * 24 * 3600),
            "id cache: ttl 192h is longer than the 7-day maximum",
        ),
    ];
    for (max_entries, ttl, msg) in cases {
        let err = MappingCache::new(&CacheConfig { max_entries, ttl }).expect_err(msg);
        assert_eq!(err.to_string(), msg);
    }
}

#[test]
fn hits_misses_and_inserts_are_counted_per_map() {
    let c = cache(100, Duration::from_secs(60));
    assert_eq!(c.txid(&trace(1)), None);
    c.insert_txid(trace(1), txid(1));
    assert_eq!(c.txid(&trace(1)), Some(txid(1)));
    assert_eq!(c.txid(&trace(1)), Some(txid(1)));

    let (t, client) = (trace(2), SpanId::from_u64(9));
    assert_eq!(c.caller_segment(&t, &client), None);
    c.insert_caller_segment(t, client, segment(-5));
    assert_eq!(c.caller_segment(&t, &client), Some(segment(-5)));
    // The key includes the trace id: the same span id in another trace is a miss.
    assert_eq!(c.caller_segment(&trace(3), &client), None);

    let seg = SegmentRef {
        entry_span_id: SpanId::from_u64(1),
        pinpoint_span_id: 77,
    };
    c.insert_segment(t, SpanId::from_u64(4), seg);
    assert_eq!(c.segment_of(&t, &SpanId::from_u64(4)), Some(seg));

    let meta = MetadataKey {
        agent_id: AgentId::new("otel-agent").expect("valid"),
        agent_start_time: 1,
        kind: MetadataKind::Api,
        id: 12,
    };
    assert!(!c.metadata_sent(&meta));
    c.mark_metadata_sent(meta);
    assert!(c.metadata_sent(&meta));
    assert!(!c.metadata_sent(&MetadataKey {
        kind: MetadataKind::Sql,
        ..meta
    }));

    c.run_pending_tasks();
    let s = c.stats();
    assert_eq!(
        (s.txid.hits, s.txid.misses, s.txid.inserts, s.txid.entries),
        (2, 1, 1, 1)
    );
    assert_eq!(
        (s.caller.hits, s.caller.misses, s.caller.inserts),
        (1, 2, 1)
    );
    assert_eq!(
        (s.segment.hits, s.segment.misses, s.segment.inserts),
        (1, 0, 1)
    );
    assert_eq!(
        (s.metadata.hits, s.metadata.misses, s.metadata.inserts),
        (1, 2, 1)
    );
    assert_eq!((s.store_hits, s.store_errors), (0, 0));
}

#[test]
fn size_and_expiry_evictions_are_counted_but_replacements_are_not() {
    let c = cache(10, Duration::from_secs(60));
    c.insert_txid(trace(1), txid(1));
    c.insert_txid(trace(1), txid(2));
    c.run_pending_tasks();
    assert_eq!(
        c.stats().txid.evictions,
        0,
        "a replacement is not an eviction"
    );
    for i in 2..200 {
        c.insert_txid(trace(i), txid(i as i64));
    }
    c.run_pending_tasks();
    let s = c.stats().txid;
    assert!(s.entries <= 10, "{s:?}");
    assert!(s.evictions >= 189, "{s:?}");

    let c = cache(10, Duration::from_millis(50));
    c.insert_txid(trace(1), txid(1));
    std::thread::sleep(Duration::from_millis(120));
    assert_eq!(c.txid(&trace(1)), None);
    c.run_pending_tasks();
    assert_eq!(c.stats().txid.evictions, 1);
}

/// Records counters by `name{map}`.
#[derive(Default)]
struct TestRecorder {
    counters: Mutex<HashMap<String, Arc<AtomicU64>>>,
}

impl TestRecorder {
    fn value(&self, name: &str, map: &str) -> u64 {
        self.counters
            .lock()
            .expect("not poisoned")
            .get(&format!("{name}{{map={map}}}"))
            .map_or(0, |c| c.load(Relaxed))
    }
}

impl Recorder for TestRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        let id = format!("{}{{{}}}", key.name(), labels.join(","));
        let cell = Arc::clone(
            self.counters
                .lock()
                .expect("not poisoned")
                .entry(id)
                .or_default(),
        );
        Counter::from_arc(cell)
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

#[test]
fn metrics_use_selfmetrics_names_and_map_label() {
    let recorder = TestRecorder::default();
    let c = metrics::with_local_recorder(&recorder, || cache(2, Duration::from_secs(60)));
    c.insert_txid(trace(1), txid(1));
    c.txid(&trace(1));
    c.txid(&trace(2));
    c.caller_segment(&trace(1), &SpanId::from_u64(1));
    for i in 10..20 {
        c.insert_txid(trace(i), txid(1));
    }
    c.run_pending_tasks();
    assert_eq!(recorder.value(ID_CACHE_HITS, "txid"), 1);
    assert_eq!(recorder.value(ID_CACHE_MISSES, "txid"), 1);
    assert_eq!(recorder.value(ID_CACHE_MISSES, "caller"), 1);
    assert_eq!(recorder.value(ID_CACHE_INSERTS, "txid"), 11);
    assert_eq!(
        recorder.value(ID_CACHE_EVICTIONS, "txid"),
        c.stats().txid.evictions
    );
    assert!(c.stats().txid.evictions >= 9);
}

type StoredEntries = HashMap<(MapName, Vec<u8>), Vec<u8>>;

/// An in-memory shared store that can be made to fail.
#[derive(Default)]
struct FakeStore {
    data: Mutex<StoredEntries>,
    failing: std::sync::atomic::AtomicBool,
}

impl BackingStore for FakeStore {
    fn get(&self, map: MapName, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if self.failing.load(Relaxed) {
            return Err(StoreError::Backend {
                map,
                message: "connection refused".to_owned(),
            });
        }
        Ok(self
            .data
            .lock()
            .expect("not poisoned")
            .get(&(map, key.to_vec()))
            .cloned())
    }

    fn put(
        &self,
        map: MapName,
        key: &[u8],
        value: &[u8],
        _ttl: Duration,
    ) -> Result<(), StoreError> {
        if self.failing.load(Relaxed) {
            return Err(StoreError::Backend {
                map,
                message: "connection refused".to_owned(),
            });
        }
        self.data
            .lock()
            .expect("not poisoned")
            .insert((map, key.to_vec()), value.to_vec());
        Ok(())
    }
}

#[test]
fn shared_store_reads_and_writes_through() {
    let store = Arc::new(FakeStore::default());
    let cfg = CacheConfig::default();
    let a = MappingCache::with_store(&cfg, store.clone()).expect("valid");
    let b = MappingCache::with_store(&cfg, store.clone()).expect("valid");
    let (t, client) = (trace(7), SpanId::from_u64(70));
    a.insert_txid(t, txid(7));
    a.insert_caller_segment(t, client, segment(-70));

    // Instance b learns what instance a stored, then serves it locally.
    assert_eq!(b.txid(&t), Some(txid(7)));
    assert_eq!(b.caller_segment(&t, &client), Some(segment(-70)));
    assert_eq!(b.txid(&t), Some(txid(7)));
    let s = b.stats();
    assert_eq!((s.txid.misses, s.txid.hits, s.store_hits), (1, 1, 2));

    // A damaged stored value is an error counted as a miss, never a wrong answer.
    let mut key = Vec::new();
    trace(8).encode(&mut key);
    store
        .data
        .lock()
        .expect("not poisoned")
        .insert((MapName::Txid, key), vec![1, 0, 3, b'x']);
    assert_eq!(b.txid(&trace(8)), None);
    assert_eq!(b.stats().store_errors, 1);

    // A failing store degrades to the local tier.
    store.failing.store(true, Relaxed);
    b.insert_txid(trace(9), txid(9));
    assert_eq!(b.txid(&trace(9)), Some(txid(9)));
    assert_eq!(b.txid(&trace(10)), None);
    assert_eq!(b.stats().store_errors, 3);
}
