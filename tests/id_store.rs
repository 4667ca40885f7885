//! The mapping cache's shared tier against a real `redis-server`: batching into few
//! round trips, coalescing, the TTL of every key, and faults (Redis down, slow, full),
//! during which the data path keeps its pace and counts errors, and after which links
//! resume. Tests that kill or pause Redis start their own server.

mod redis_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use otel_pinpoint_bridge::ids::cache::Tier;
use otel_pinpoint_bridge::ids::store::{self, RedisConfig, StoreConfig, StoreStats};
use otel_pinpoint_bridge::ids::{
    AgentId, CacheConfig, CallerSegment, MappingCache, SpanId, TraceId, TransactionId,
};
use redis_support::{RedisServer, command_at, shared_url, unique_prefix};
use tokio::sync::oneshot;

struct Instance {
    cache: Arc<MappingCache>,
    _stop: oneshot::Sender<()>,
}

fn instance(url: &str, prefix: &str, tweak: impl FnOnce(&mut RedisConfig)) -> Instance {
    let mut r = RedisConfig {
        url: url.to_owned(),
        key_prefix: prefix.to_owned(),
        timeout: Duration::from_millis(300),
        lookup_interval: Duration::from_millis(50),
        ..RedisConfig::default()
    };
    tweak(&mut r);
    assert!(r.validate().is_empty(), "{:?}", r.validate());
    let cfg = CacheConfig {
        store: Some(StoreConfig::Redis(r)),
        ..CacheConfig::default()
    };
    let cache = Arc::new(MappingCache::new(&cfg).expect("valid"));
    let (tx, rx) = oneshot::channel::<()>();
    store::start(&cache, async move {
        let _ = rx.await;
    })
    .expect("client")
    .expect("store configured");
    Instance { cache, _stop: tx }
}

fn segment(n: i64) -> CallerSegment {
    CallerSegment {
        span_id: n,
        application: Arc::from("checkout"),
        service_type: 1700,
        destination: Some(Arc::from("orders:8080")),
    }
}

fn span(n: u64) -> SpanId {
    SpanId::from_u64(n + 1)
}

fn store_stats(c: &MappingCache) -> StoreStats {
    c.stats().store.expect("store configured")
}

/// Polls `f` every 10 ms for up to `secs`.
async fn until<T>(secs: u64, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Looks `n` caller segments up in `c` until all are found.
async fn find_all(c: &MappingCache, t: TraceId, n: u64, secs: u64) -> bool {
    until(secs, || {
        let found = (0..n)
            .filter(|&i| c.caller_segment(&t, &span(i)).is_some())
            .count();
        (found as u64 == n).then_some(())
    })
    .await
    .is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_and_lookups_are_batched_coalesced_and_expire() {
    let url = shared_url();
    let prefix = unique_prefix("batch");
    let a = instance(&url, &prefix, |r| r.ttl = Duration::from_secs(2));
    let b = instance(&url, &prefix, |_| {});
    let t = TraceId::from_u128(0x1234);

    // 1000 caller segments learned by a, each written twice (coalesced or skipped).
    for i in 0..1000 {
        a.cache.insert_caller_segment(t, span(i), segment(i as i64));
        a.cache.insert_caller_segment(t, span(i), segment(i as i64));
    }
    // b's first looks miss and queue lookups; later looks find every one.
    assert!(b.cache.caller_segment(&t, &span(0)).is_none());
    assert!(
        find_all(&b.cache, t, 1000, 10).await,
        "b never saw a's writes"
    );
    assert_eq!(
        b.cache.caller_segment_tier(&t, &span(5)),
        Some((segment(5), Tier::Store))
    );
    let sa = store_stats(&a.cache);
    let sb = store_stats(&b.cache);
    assert_eq!(sa.writes, 1000, "{sa:?}");
    // A key may be asked again while its first lookup waits (lookup_interval).
    assert!((1000..2000).contains(&sb.hits), "{sb:?}");
    assert_eq!((sa.errors, sb.errors, sa.dropped), (0, 0, 0));
    // 1000 writes in batches of at most 1000 commands, one launch per 5 ms flush.
    assert!(sa.round_trips <= 20, "{sa:?}");
    assert!(sb.round_trips <= 200, "{sb:?}");

    // Every key carries the TTL and expires.
    let key = format!(
        "{prefix}caller:01{}{}",
        "0".repeat(28) + "1234",
        "0000000000000001"
    );
    let pttl = command_at(&url, &["PTTL", &key]).expect("redis reachable");
    let ms: i64 = pttl.trim_start_matches(':').trim().parse().expect("number");
    assert!((1..=2000).contains(&ms), "PTTL {key}: {pttl:?}");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let exists = command_at(&url, &["EXISTS", &key]).expect("redis reachable");
    assert_eq!(exists.trim(), ":0", "{key} should have expired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinpoint_born_txids_are_shared() {
    let url = shared_url();
    let prefix = unique_prefix("txid");
    let a = instance(&url, &prefix, |_| {});
    let b = instance(&url, &prefix, |_| {});
    let t = TraceId::from_u128(0xfeed);
    let tx = TransactionId {
        agent_id: AgentId::new("agentA").expect("valid"),
        agent_start_time: 1_700_000_000_000,
        sequence: 42,
    };
    a.cache.insert_txid(t, tx);
    assert!(b.cache.txid(&t).is_none());
    assert_eq!(until(5, || b.cache.txid(&t)).await, Some(tx));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_counts_errors_never_stalls_and_links_resume() {
    let mut server = RedisServer::start(&[]);
    let url = server.url();
    let a = instance(&url, "p:", |_| {});
    let t = TraceId::from_u128(7);
    a.cache.insert_caller_segment(t, span(0), segment(0));
    assert!(
        until(5, || (store_stats(&a.cache).writes == 1).then_some(()))
            .await
            .is_some()
    );

    server.kill();
    // The data path keeps its pace: 20 000 inserts and lookups with Redis gone. Each
    // would take at least the 300 ms timeout if it waited for Redis.
    let started = Instant::now();
    for i in 1..10_001 {
        a.cache.insert_caller_segment(t, span(i), segment(i as i64));
        a.cache.caller_segment(&TraceId::from_u128(8), &span(i));
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "data path waited: {took:?}");
    // What this instance learned resolves locally.
    assert_eq!(a.cache.caller_segment(&t, &span(77)), Some(segment(77)));
    let down = until(5, || {
        let s = store_stats(&a.cache);
        (s.errors >= 2 && !s.up).then_some(s)
    })
    .await
    .expect("errors counted");
    assert_eq!(down.round_trips, 1, "{down:?}");

    // Redis returns (empty): the worker reconnects, the writes made while it was down
    // reach it, and another instance resolves them.
    tokio::time::sleep(Duration::from_secs(1)).await;
    server.restart();
    let b = instance(&url, "p:", |_| {});
    assert!(
        until(15, || (1..200)
            .all(|i| b.cache.caller_segment(&t, &span(i)).is_some())
            .then_some(()))
        .await
        .is_some(),
        "links did not resume: {:?} / {:?}",
        store_stats(&a.cache),
        store_stats(&b.cache)
    );
    assert!(store_stats(&a.cache).up);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_redis_times_out_and_full_redis_refuses_writes_but_answers_lookups() {
    let server = RedisServer::start(&["--maxmemory-policy", "noeviction"]);
    let url = server.url();
    let a = instance(&url, "p:", |r| r.timeout = Duration::from_millis(200));
    let t = TraceId::from_u128(9);
    a.cache.insert_caller_segment(t, span(0), segment(0));
    assert!(
        until(5, || (store_stats(&a.cache).writes == 1).then_some(()))
            .await
            .is_some()
    );

    // Slow: every client is paused for 1.5 s; round trips time out, the data path
    // does not wait, and the store is used again afterwards.
    assert_eq!(
        server
            .command(&["CLIENT", "PAUSE", "1500", "ALL"])
            .as_deref(),
        Some("+OK\r\n")
    );
    let started = Instant::now();
    for i in 1..1001 {
        a.cache.insert_caller_segment(t, span(i), segment(i as i64));
    }
    assert!(started.elapsed() < Duration::from_millis(500));
    let slow = until(5, || {
        let s = store_stats(&a.cache);
        (s.timeouts >= 1).then_some(s)
    })
    .await
    .expect("timeouts counted");
    assert!(slow.errors >= 1, "{slow:?}");
    assert!(
        until(10, || (store_stats(&a.cache).writes >= 1001).then_some(()))
            .await
            .is_some(),
        "writes resumed after the pause: {:?}",
        store_stats(&a.cache)
    );

    // Full: maxmemory below what the server uses already, no eviction; our writes
    // are refused (counted), lookups still answer.
    let full = server.command(&["CONFIG", "SET", "maxmemory", "100000"]);
    assert_eq!(full.as_deref(), Some("+OK\r\n"));
    let b = instance(&url, "p:", |_| {});
    let written = store_stats(&a.cache).writes;
    for i in 2000..2100 {
        a.cache.insert_caller_segment(t, span(i), segment(i as i64));
    }
    let full = until(5, || {
        let s = store_stats(&a.cache);
        (s.errors >= slow.errors + 100).then_some(s)
    })
    .await
    .unwrap_or_else(|| panic!("refused writes counted: {:?}", store_stats(&a.cache)));
    assert_eq!(full.writes, written, "{full:?}");
    assert!(
        find_all(&b.cache, t, 100, 5).await,
        "lookups answered while full"
    );
    assert!(
        a.cache.caller_segment(&t, &span(2050)).is_some(),
        "local tier has it"
    );
}
