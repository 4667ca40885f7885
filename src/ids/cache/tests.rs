//! Mapping-cache tests: config, counters and metrics, size and expiry evictions, and the
//! shared-store seam.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};

use super::*;
use crate::ids::store::{Op, RedisConfig, Reply, StoreConfig, StoreError, worker};

fn cache(max_entries: u64, ttl: Duration) -> MappingCache {
    MappingCache::new(&CacheConfig {
        max_entries,
        ttl,
        store: None,
    })
    .expect("valid config")
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
            ttl: Duration::from_secs(300),
            store: None,
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
        let err = MappingCache::new(&CacheConfig {
            max_entries,
            ttl,
            store: None,
        })
        .expect_err(msg);
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

/// An in-memory shared store that counts round trips and can be made to fail.
#[derive(Default)]
struct FakeStore {
    data: Mutex<StoredEntries>,
    failing: std::sync::atomic::AtomicBool,
    round_trips: AtomicU64,
}

impl crate::ids::store::BackingStore for Arc<FakeStore> {
    async fn round_trip(&self, ops: &[Op]) -> Result<Vec<Reply>, StoreError> {
        self.round_trips.fetch_add(1, Relaxed);
        if self.failing.load(Relaxed) {
            return Err(StoreError::Connection("connection refused".to_owned()));
        }
        let mut data = self.data.lock().expect("not poisoned");
        Ok(ops
            .iter()
            .map(|op| match op {
                Op::Get { map, key } => data
                    .get(&(*map, key.to_vec()))
                    .map_or(Reply::NotFound, |v| Reply::Found(v.clone())),
                Op::Set {
                    map, key, value, ..
                } => {
                    data.insert((*map, key.to_vec()), value.to_vec());
                    Reply::Stored
                }
            })
            .collect())
    }

    fn describe(&self) -> String {
        "fake".to_owned()
    }
}

fn shared_cache(store: &Arc<FakeStore>) -> (Arc<MappingCache>, tokio::sync::oneshot::Sender<()>) {
    let cfg = CacheConfig {
        store: Some(StoreConfig::Redis(RedisConfig {
            url: "redis://unused".to_owned(),
            flush_interval: Duration::from_millis(2),
            lookup_interval: Duration::from_millis(20),
            ..RedisConfig::default()
        })),
        ..CacheConfig::default()
    };
    let cache = Arc::new(MappingCache::new(&cfg).expect("valid"));
    let queue = Arc::clone(cache.store_queue().expect("store configured"));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    worker::spawn(
        Arc::clone(store),
        queue,
        Arc::clone(&cache) as Arc<dyn LocalTier>,
        worker::WorkerConfig {
            timeout: Duration::from_millis(200),
            flush_interval: Duration::from_millis(2),
            max_in_flight: 2,
            max_batch: 100,
        },
        async move {
            let _ = rx.await;
        },
    );
    (cache, tx)
}

/// Polls `f` until it returns `Some` (the store answers asynchronously).
async fn eventually<T>(mut f: impl FnMut() -> Option<T>) -> Option<T> {
    for _ in 0..1000 {
        if let Some(v) = f() {
            return Some(v);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}

#[tokio::test]
async fn shared_store_fills_the_local_tier_without_waiting() {
    let store = Arc::new(FakeStore::default());
    let (a, _stop_a) = shared_cache(&store);
    let (b, _stop_b) = shared_cache(&store);
    let (t, client) = (trace(7), SpanId::from_u64(70));
    a.insert_txid(t, txid(7));
    a.insert_caller_segment(t, client, segment(-70));
    // Segments and metadata never leave the instance.
    a.insert_segment(
        t,
        client,
        SegmentRef {
            entry_span_id: client,
            pinpoint_span_id: 1,
        },
    );

    // Instance b does not wait: the first look misses and asks; a later look finds it,
    // marked as coming from the store.
    assert_eq!(b.caller_segment(&t, &client), None);
    let found = eventually(|| b.caller_segment_tier(&t, &client)).await;
    assert_eq!(found, Some((segment(-70), Tier::Store)));
    assert_eq!(eventually(|| b.txid(&t)).await, Some(txid(7)));
    assert_eq!(
        a.caller_segment_tier(&t, &client),
        Some((segment(-70), Tier::Local))
    );
    let keys: Vec<MapName> = store
        .data
        .lock()
        .expect("not poisoned")
        .keys()
        .map(|k| k.0)
        .collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(!keys.contains(&MapName::Segment));
    let s = b.stats();
    assert_eq!(s.store_hits, 2);
    assert!(s.store.is_some_and(|st| st.up && st.misses == 0));

    // Writing what is known already (learned or read) sends nothing again.
    let writes = a.stats().store.map(|s| s.writes);
    a.insert_caller_segment(t, client, segment(-70));
    b.insert_caller_segment(t, client, segment(-70));
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(a.stats().store.map(|s| s.writes), writes);
    assert_eq!(b.stats().store.map(|s| s.writes), Some(0));

    // A damaged stored value is an error counted as a miss, never a wrong answer.
    let mut key = Vec::new();
    trace(8).encode(&mut key);
    store
        .data
        .lock()
        .expect("not poisoned")
        .insert((MapName::Txid, key), vec![1, 0, 3, b'x']);
    assert_eq!(b.txid(&trace(8)), None);
    assert!(
        eventually(|| (b.stats().store_errors == 1).then_some(()))
            .await
            .is_some()
    );
    assert_eq!(b.txid(&trace(8)), None);

    // A failing store degrades to the local tier, and its failures are counted.
    store.failing.store(true, Relaxed);
    b.insert_txid(trace(9), txid(9));
    assert_eq!(b.txid(&trace(9)), Some(txid(9)));
    assert_eq!(b.txid(&trace(10)), None);
    assert!(
        eventually(|| (b.stats().store_errors >= 2).then_some(()))
            .await
            .is_some()
    );
    assert!(b.stats().store.is_some_and(|s| !s.up));
    // Back up: the write made while it was down reaches it.
    store.failing.store(false, Relaxed);
    let mut key = Vec::new();
    trace(9).encode(&mut key);
    let landed = eventually(|| {
        store
            .data
            .lock()
            .expect("not poisoned")
            .get(&(MapName::Txid, key.clone()))
            .cloned()
    })
    .await;
    assert!(landed.is_some(), "write queued again after the failure");
}

#[tokio::test]
async fn many_lookups_and_writes_share_few_round_trips() {
    let store = Arc::new(FakeStore::default());
    let (a, _stop) = shared_cache(&store);
    for i in 0..1000u64 {
        a.insert_caller_segment(trace(1), SpanId::from_u64(i + 1), segment(i as i64));
        a.caller_segment(&trace(2), &SpanId::from_u64(i + 1));
        a.caller_segment(&trace(2), &SpanId::from_u64(i + 1));
    }
    let done = eventually(|| {
        let s = a.stats().store?;
        (s.writes == 1000 && s.misses >= 1000).then_some(s)
    })
    .await
    .expect("all sent");
    let trips = store.round_trips.load(Relaxed);
    assert!(
        trips <= 40,
        "{trips} round trips for 2000 commands: {done:?}"
    );
}
