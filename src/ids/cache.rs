//! Owns the mapping cache of ids.md section 6: four bounded, expiring moka maps
//! (Pinpoint-born trace id → txid; (trace, client span) → caller segment; (trace, OTel
//! span) → segment being assembled; per-agent metadata already sent), their counters
//! (`bridge_id_cache_{hits,misses,inserts,evictions}_total{map=...}` plus plain
//! [`CacheStats`]), [`CacheConfig`], and [`CacheError`].
//!
//! The cache is a hint, never the only copy of anything a trace needs on one instance.
//! With `store:` configured, a shared tier sits behind the `txid` and `caller` maps
//! (`store/`): a local miss queues a lookup and an insert queues a write, without
//! waiting; answers are written into the local tier later (marked [`Tier::Store`]), so
//! a caller that waits (the assembler's hold) finds them on its next look.
//!
//! Metric handles are registered when the cache is built, so build it after installing
//! the `metrics` recorder. Hits and misses count the local tier; values the store
//! answered count in [`CacheStats::store_hits`]. Evictions count only entries removed
//! for size or expiry (not replacements or explicit removals).

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use moka::sync::Cache;
use serde::{Deserialize, Serialize};

use crate::ids::duration::format_duration;
use crate::ids::hasher::IdBuildHasher;
use crate::ids::model::{SpanId, TraceId};
use crate::ids::store::{
    Codec, LocalTier, MapName, QueueLimits, StoreConfig, StoreConfigError, StoreQueue, StoreStats,
};
use crate::ids::txid::{AgentId, TransactionId};
use crate::selfmetrics::{ID_CACHE_EVICTIONS, ID_CACHE_HITS, ID_CACHE_INSERTS, ID_CACHE_MISSES};

/// Longest TTL accepted.
pub const MAX_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Cache settings. YAML example: `{max_entries: 100000, ttl: 5m}`; `ttl` takes `250ms`,
/// `300s`, `5m`, `1h` or an integer of seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Most entries in *each* of the four maps. Default 100 000 (a caller-segment entry
    /// is roughly 150 bytes, so about 15 MB for a full caller map).
    pub max_entries: u64,
    /// Time to live of every entry, from insertion. Default 5 minutes, longer than any
    /// sensible hold window and span-export delay; at most 7 days.
    #[serde(with = "crate::ids::duration")]
    pub ttl: Duration,
    /// The shared tier behind the `txid` and `caller` maps (absent = local only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreConfig>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            max_entries: 100_000,
            ttl: Duration::from_secs(300),
            store: None,
        }
    }
}

/// What is wrong with a [`CacheConfig`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CacheError {
    /// `max_entries: 0`.
    #[error("id cache: max_entries must be at least 1")]
    ZeroEntries,
    /// `ttl` of zero.
    #[error("id cache: ttl must be longer than 0")]
    ZeroTtl,
    /// `ttl` above [`MAX_TTL`].
    #[error("id cache: ttl {ttl} is longer than the 7-day maximum")]
    TtlTooLong {
        /// The ttl given.
        ttl: String,
    },
}

impl CacheConfig {
    /// Checks the settings.
    ///
    /// # Errors
    /// [`CacheError`] naming the setting.
    pub fn validate(&self) -> Result<(), CacheError> {
        if self.max_entries == 0 {
            return Err(CacheError::ZeroEntries);
        }
        if self.ttl.is_zero() {
            return Err(CacheError::ZeroTtl);
        }
        if self.ttl > MAX_TTL {
            return Err(CacheError::TtlTooLong {
                ttl: format_duration(self.ttl),
            });
        }
        Ok(())
    }

    /// Checks `store:`; every problem names its key (relative to `ids.store`).
    pub fn validate_store(&self) -> Vec<StoreConfigError> {
        match &self.store {
            Some(s) => s.redis().validate(),
            None => Vec::new(),
        }
    }
}

/// Which tier of the cache answered a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// This instance's own (local) cache.
    Local,
    /// The shared store behind it (learned by another instance).
    Store,
}

/// A local entry and where it came from.
#[derive(Debug, Clone)]
struct Stored<V> {
    value: V,
    tier: Tier,
}

/// Key of the span maps: the trace id and a span id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpanKey {
    /// Trace id.
    pub trace_id: TraceId,
    /// Span id (a client span for the caller map, any span for the segment map).
    pub span_id: SpanId,
}

/// The caller side of a remote call, learned when the caller's segment was translated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerSegment {
    /// Pinpoint spanId of the caller's segment (the callee's parentSpanId).
    pub span_id: i64,
    /// The caller's application name (PParentInfo.parentApplicationName).
    pub application: Arc<str>,
    /// The caller's application service type (PParentInfo.parentApplicationType).
    pub service_type: i32,
    /// The client event's destinationId (the callee's acceptorHost), if any.
    pub destination: Option<Arc<str>>,
}

/// The segment an OTel span belongs to while that segment is assembled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentRef {
    /// OTel span id of the segment's entry span.
    pub entry_span_id: SpanId,
    /// Pinpoint spanId of the segment.
    pub pinpoint_span_id: i64,
}

/// Kind of per-agent metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetadataKind {
    /// PApiMetaData (apiId).
    Api,
    /// PStringMetaData (stringId).
    String,
    /// PSqlMetaData (sqlId).
    Sql,
}

/// Identifies one metadata record sent for one agent (Pinpoint keys metadata by agentId,
/// agent start time and id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MetadataKey {
    /// The (virtual) agent.
    pub agent_id: AgentId,
    /// Its `starttime` header.
    pub agent_start_time: i64,
    /// Which metadata.
    pub kind: MetadataKind,
    /// apiId / stringId / sqlId.
    pub id: i32,
}

/// Counters of one map.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MapStats {
    /// Local-tier hits.
    pub hits: u64,
    /// Local-tier misses.
    pub misses: u64,
    /// Inserts.
    pub inserts: u64,
    /// Entries removed for size or expiry.
    pub evictions: u64,
    /// Entries now (approximate until pending maintenance has run).
    pub entries: u64,
}

/// Counters of the whole cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CacheStats {
    /// Pinpoint-born trace id → txid.
    pub txid: MapStats,
    /// (trace, client span) → caller segment.
    pub caller: MapStats,
    /// (trace, span) → segment.
    pub segment: MapStats,
    /// Metadata already sent.
    pub metadata: MapStats,
    /// Lookups the shared store answered with a value.
    pub store_hits: u64,
    /// Shared-store failures, timeouts and undecodable values (each treated as a miss).
    pub store_errors: u64,
    /// The shared tier's own counters, when one is configured.
    pub store: Option<StoreStats>,
}

struct MapCounters {
    hits: AtomicU64,
    misses: AtomicU64,
    inserts: AtomicU64,
    evictions: AtomicU64,
    metric_hits: metrics::Counter,
    metric_misses: metrics::Counter,
    metric_inserts: metrics::Counter,
    metric_evictions: metrics::Counter,
}

impl MapCounters {
    fn new(map: MapName) -> Self {
        let label = map.as_str();
        Self {
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            inserts: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            metric_hits: metrics::counter!(ID_CACHE_HITS, "map" => label),
            metric_misses: metrics::counter!(ID_CACHE_MISSES, "map" => label),
            metric_inserts: metrics::counter!(ID_CACHE_INSERTS, "map" => label),
            metric_evictions: metrics::counter!(ID_CACHE_EVICTIONS, "map" => label),
        }
    }

    #[inline]
    fn hit(&self) {
        self.hits.fetch_add(1, Relaxed);
        self.metric_hits.increment(1);
    }

    #[inline]
    fn miss(&self) {
        self.misses.fetch_add(1, Relaxed);
        self.metric_misses.increment(1);
    }

    fn insert(&self) {
        self.inserts.fetch_add(1, Relaxed);
        self.metric_inserts.increment(1);
    }

    fn evict(&self) {
        self.evictions.fetch_add(1, Relaxed);
        self.metric_evictions.increment(1);
    }

    fn stats(&self, entries: u64) -> MapStats {
        MapStats {
            hits: self.hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
            inserts: self.inserts.load(Relaxed),
            evictions: self.evictions.load(Relaxed),
            entries,
        }
    }
}

type Map<K, V> = Cache<K, Stored<V>, IdBuildHasher>;

/// The shared tier as the cache sees it: its config and the queue to its worker.
struct Shared {
    config: StoreConfig,
    queue: Arc<StoreQueue>,
}

/// The mapping cache. Cheap to share behind an `Arc`; every method takes `&self`.
pub struct MappingCache {
    txid: Map<TraceId, TransactionId>,
    caller: Map<SpanKey, CallerSegment>,
    segment: Map<SpanKey, SegmentRef>,
    metadata: Map<MetadataKey, ()>,
    counters: [Arc<MapCounters>; 4],
    store: Option<Shared>,
    ttl: Duration,
}

fn build<K, V>(cfg: &CacheConfig, counters: &Arc<MapCounters>, hasher: IdBuildHasher) -> Map<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    let counters = Arc::clone(counters);
    Cache::builder()
        .max_capacity(cfg.max_entries)
        .time_to_live(cfg.ttl)
        .eviction_listener(move |_key, _value, cause| {
            if cause.was_evicted() {
                counters.evict();
            }
        })
        .build_with_hasher(hasher)
}

impl MappingCache {
    /// The cache `cfg` describes. With `store:`, lookups and writes of the shared maps
    /// are queued for the store's worker, which [`crate::ids::store::start`] starts.
    ///
    /// # Errors
    /// [`CacheError`] when the config is invalid.
    pub fn new(cfg: &CacheConfig) -> Result<Self, CacheError> {
        cfg.validate()?;
        let store = cfg.store.as_ref().map(|config| {
            let r = config.redis();
            Shared {
                config: config.clone(),
                queue: Arc::new(StoreQueue::new(QueueLimits {
                    max_queued: r.max_queued,
                    max_batch: r.max_batch,
                    lookup_interval: r.lookup_interval,
                    ttl: r.ttl,
                })),
            }
        });
        let counters = MapName::ALL.map(|m| Arc::new(MapCounters::new(m)));
        let hasher = IdBuildHasher::new();
        Ok(Self {
            txid: build(cfg, &counters[MapName::Txid.index()], hasher),
            caller: build(cfg, &counters[MapName::Caller.index()], hasher),
            segment: build(cfg, &counters[MapName::Segment.index()], hasher),
            metadata: build(cfg, &counters[MapName::Metadata.index()], hasher),
            counters,
            store,
            ttl: cfg.ttl,
        })
    }

    /// The shared tier's config, when one is configured.
    pub fn store_config(&self) -> Option<&StoreConfig> {
        self.store.as_ref().map(|s| &s.config)
    }

    /// The queue to the shared tier's worker, when one is configured.
    pub fn store_queue(&self) -> Option<&Arc<StoreQueue>> {
        self.store.as_ref().map(|s| &s.queue)
    }

    #[inline]
    fn lookup<K, V>(&self, map: MapName, cache: &Map<K, V>, key: &K) -> Option<(V, Tier)>
    where
        K: Codec + Copy + Hash + Eq + Send + Sync + 'static,
        V: Codec + Clone + Send + Sync + 'static,
    {
        let counters = &self.counters[map.index()];
        if let Some(v) = cache.get(key) {
            counters.hit();
            return Some((v.value, v.tier));
        }
        counters.miss();
        if let Some(shared) = &self.store
            && map.is_shared()
        {
            // Never waits: the answer lands in the local tier for the next look.
            let mut k = Vec::with_capacity(32);
            key.encode(&mut k);
            shared.queue.lookup(map, k);
        }
        None
    }

    fn put<K, V>(&self, map: MapName, cache: &Map<K, V>, key: K, value: V)
    where
        K: Codec + Hash + Eq + Send + Sync + 'static,
        V: Codec + Clone + PartialEq + Send + Sync + 'static,
    {
        self.counters[map.index()].insert();
        if let Some(shared) = &self.store
            && map.is_shared()
            // Known already (written or read before): nothing new for the store.
            && cache.get(&key).is_none_or(|old| old.value != value)
        {
            let (mut k, mut v) = (Vec::with_capacity(32), Vec::with_capacity(64));
            key.encode(&mut k);
            value.encode(&mut v);
            shared.queue.write(map, k, v);
        }
        cache.insert(
            key,
            Stored {
                value,
                tier: Tier::Local,
            },
        );
    }

    fn fill_map<K, V>(cache: &Map<K, V>, key: &[u8], value: &[u8]) -> bool
    where
        K: Codec + Hash + Eq + Send + Sync + 'static,
        V: Codec + Clone + Send + Sync + 'static,
    {
        let (Some(k), Some(v)) = (K::decode(key), V::decode(value)) else {
            return false;
        };
        // What this instance learned itself wins over the store's copy.
        cache.entry(k).or_insert(Stored {
            value: v,
            tier: Tier::Store,
        });
        true
    }

    /// The original txid of a Pinpoint-born trace.
    pub fn txid(&self, trace_id: &TraceId) -> Option<TransactionId> {
        self.lookup(MapName::Txid, &self.txid, trace_id)
            .map(|(v, _)| v)
    }

    /// Remembers the original txid of a Pinpoint-born trace.
    pub fn insert_txid(&self, trace_id: TraceId, txid: TransactionId) {
        self.put(MapName::Txid, &self.txid, trace_id, txid);
    }

    /// The caller segment of client span `client_span` (ids.md section 5, step 2).
    pub fn caller_segment(
        &self,
        trace_id: &TraceId,
        client_span: &SpanId,
    ) -> Option<CallerSegment> {
        let key = SpanKey {
            trace_id: *trace_id,
            span_id: *client_span,
        };
        self.lookup(MapName::Caller, &self.caller, &key)
            .map(|(v, _)| v)
    }

    /// [`MappingCache::caller_segment`], also saying which tier answered (for the
    /// link-outcome metrics: resolved by the local cache or by the shared store).
    pub fn caller_segment_tier(
        &self,
        trace_id: &TraceId,
        client_span: &SpanId,
    ) -> Option<(CallerSegment, Tier)> {
        let key = SpanKey {
            trace_id: *trace_id,
            span_id: *client_span,
        };
        self.lookup(MapName::Caller, &self.caller, &key)
    }

    /// Remembers the caller segment of client span `client_span`.
    pub fn insert_caller_segment(
        &self,
        trace_id: TraceId,
        client_span: SpanId,
        segment: CallerSegment,
    ) {
        let key = SpanKey {
            trace_id,
            span_id: client_span,
        };
        self.put(MapName::Caller, &self.caller, key, segment);
    }

    /// The segment OTel span `span` belongs to.
    pub fn segment_of(&self, trace_id: &TraceId, span: &SpanId) -> Option<SegmentRef> {
        let key = SpanKey {
            trace_id: *trace_id,
            span_id: *span,
        };
        self.lookup(MapName::Segment, &self.segment, &key)
            .map(|(v, _)| v)
    }

    /// Remembers the segment OTel span `span` belongs to.
    pub fn insert_segment(&self, trace_id: TraceId, span: SpanId, segment: SegmentRef) {
        let key = SpanKey {
            trace_id,
            span_id: span,
        };
        self.put(MapName::Segment, &self.segment, key, segment);
    }

    /// True when this metadata was already sent for this agent.
    pub fn metadata_sent(&self, key: &MetadataKey) -> bool {
        self.lookup(MapName::Metadata, &self.metadata, key)
            .is_some()
    }

    /// Records that this metadata was sent for this agent.
    pub fn mark_metadata_sent(&self, key: MetadataKey) {
        self.put(MapName::Metadata, &self.metadata, key, ());
    }

    /// Runs moka's pending maintenance (evictions, expirations) now; it otherwise runs
    /// during normal operations. Useful before reading [`MappingCache::stats`].
    pub fn run_pending_tasks(&self) {
        self.txid.run_pending_tasks();
        self.caller.run_pending_tasks();
        self.segment.run_pending_tasks();
        self.metadata.run_pending_tasks();
    }

    /// Counters, readable without a metrics recorder.
    pub fn stats(&self) -> CacheStats {
        let c = |m: MapName| &self.counters[m.index()];
        let store = self.store.as_ref().map(|s| s.queue.stats());
        CacheStats {
            txid: c(MapName::Txid).stats(self.txid.entry_count()),
            caller: c(MapName::Caller).stats(self.caller.entry_count()),
            segment: c(MapName::Segment).stats(self.segment.entry_count()),
            metadata: c(MapName::Metadata).stats(self.metadata.entry_count()),
            store_hits: store.map_or(0, |s| s.hits),
            store_errors: store.map_or(0, |s| s.errors),
            store,
        }
    }

    /// The configured time to live.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}

impl LocalTier for MappingCache {
    fn fill(&self, map: MapName, key: &[u8], value: &[u8]) -> bool {
        match map {
            MapName::Txid => Self::fill_map(&self.txid, key, value),
            MapName::Caller => Self::fill_map(&self.caller, key, value),
            // Never queued for the store: nothing to fill.
            MapName::Segment | MapName::Metadata => false,
        }
    }
}

impl fmt::Debug for MappingCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MappingCache")
            .field("ttl", &self.ttl)
            .field("shared_store", &self.store.is_some())
            .field("stats", &self.stats())
            .finish()
    }
}

#[cfg(test)]
mod tests;
