//! Owns the shared second tier behind the mapping cache (ids.md section 6: "with several
//! instances, put a shared store behind it"): the [`BackingStore`] seam (one pipelined
//! round trip over a batch of [`Op`]s), the [`LocalTier`] the answers go to, [`MapName`],
//! [`StoreError`], and the stable binary encoding of every key and value (first byte:
//! format version 1), so instances of different versions can share a store.
//!
//! The data path never waits here. On a local miss the cache queues a lookup, on an
//! insert it queues a write ([`queue`]); the [`worker`] sends them in batches and writes
//! what it finds into the local tier, where the next look (the assembler rescans traces
//! that wait for a caller) finds it. [`redis`] is the one implementation; [`config`] is
//! `ids.store`. Only the `txid` and `caller` maps go to the store: they are what another
//! instance needs; segments and metadata stay local.

pub mod config;
pub mod queue;
pub mod redis;
mod stats;
pub mod worker;

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use crate::ids::cache::{CallerSegment, MetadataKey, MetadataKind, SegmentRef, SpanKey};
use crate::ids::model::{SpanId, TraceId};
use crate::ids::txid::{AgentId, TransactionId};

pub use config::{RedisConfig, StoreConfig, StoreConfigError};
pub use queue::{QueueLimits, StoreQueue};
pub use stats::StoreStats;

/// Format version written as the first byte of every key and value.
pub const FORMAT_VERSION: u8 = 1;

/// The cache's maps, also its metric label values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MapName {
    /// Pinpoint-born trace id → txid.
    Txid,
    /// (trace, client span) → caller segment.
    Caller,
    /// (trace, OTel span) → segment being assembled.
    Segment,
    /// Per-agent metadata already sent.
    Metadata,
}

impl MapName {
    /// All maps, in index order.
    pub const ALL: [MapName; 4] = [Self::Txid, Self::Caller, Self::Segment, Self::Metadata];

    /// The label value (`txid`, `caller`, `segment`, `metadata`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Txid => "txid",
            Self::Caller => "caller",
            Self::Segment => "segment",
            Self::Metadata => "metadata",
        }
    }

    /// Position in [`MapName::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Whether this map goes to the shared store (`txid`, `caller`).
    pub const fn is_shared(self) -> bool {
        matches!(self, Self::Txid | Self::Caller)
    }
}

impl fmt::Display for MapName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What went wrong in the shared store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached or the round trip failed.
    #[error("shared store: {0}")]
    Connection(String),
    /// A stored value does not decode.
    #[error("shared store, map {map}: stored value is malformed ({reason})")]
    Malformed {
        /// The map.
        map: MapName,
        /// What is wrong.
        reason: &'static str,
    },
}

/// One command of a round trip. Keys and values are the encodings of this module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Read a key.
    Get {
        /// The map.
        map: MapName,
        /// The encoded key.
        key: Box<[u8]>,
    },
    /// Write a key that expires after the store's ttl.
    Set {
        /// The map.
        map: MapName,
        /// The encoded key.
        key: Box<[u8]>,
        /// The encoded value.
        value: Box<[u8]>,
        /// When it was first queued (a write is not retried past its ttl).
        since: Instant,
    },
}

impl Op {
    /// The map of the command.
    pub fn map(&self) -> MapName {
        match self {
            Self::Get { map, .. } | Self::Set { map, .. } => *map,
        }
    }
}

/// The answer to one [`Op`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `Get`: the stored value.
    Found(Vec<u8>),
    /// `Get`: no such key.
    NotFound,
    /// `Set`: written.
    Stored,
    /// The store refused this command (e.g. out of memory); the others may have worked.
    Failed(String),
}

/// A shared key-value tier (e.g. Redis) behind the local moka tier.
pub trait BackingStore: Send + Sync + 'static {
    /// Sends `ops` in one pipelined round trip and returns one reply per op, in order.
    /// The caller bounds its time.
    ///
    /// # Errors
    /// [`StoreError::Connection`] when the round trip as a whole failed.
    fn round_trip(&self, ops: &[Op])
    -> impl Future<Output = Result<Vec<Reply>, StoreError>> + Send;

    /// What it is, for logs and the status page (no secrets).
    fn describe(&self) -> String;
}

/// Where the store's answers go: the local tier of the mapping cache.
pub trait LocalTier: Send + Sync {
    /// Puts a value found in the store into the local tier unless the local tier has
    /// one already. False when the value does not decode.
    fn fill(&self, map: MapName, key: &[u8], value: &[u8]) -> bool;
}

/// Starts the configured shared tier of `cache` (if any): builds its client and spawns
/// its worker, which stops when `stop` completes.
///
/// # Errors
/// [`StoreError::Connection`] when the client cannot be built from the config.
pub fn start(
    cache: &Arc<crate::ids::MappingCache>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<Option<tokio::task::JoinHandle<()>>, StoreError> {
    let (Some(cfg), Some(queue)) = (cache.store_config(), cache.store_queue()) else {
        return Ok(None);
    };
    let StoreConfig::Redis(r) = cfg;
    let store = self::redis::RedisStore::new(r)?;
    tracing::info!(store = %store.describe(), "shared id store configured");
    let tier: Arc<dyn LocalTier> = Arc::clone(cache) as Arc<dyn LocalTier>;
    Ok(Some(worker::spawn(
        store,
        Arc::clone(queue),
        tier,
        worker::WorkerConfig {
            timeout: r.timeout,
            flush_interval: r.flush_interval,
            max_in_flight: r.max_in_flight,
            max_batch: r.max_batch,
        },
        stop,
    )))
}

/// Binary encoding of one cache key or value.
pub trait Codec: Sized {
    /// Appends the versioned encoding.
    fn encode(&self, out: &mut Vec<u8>);
    /// Reads a versioned encoding; `None` for anything damaged or of another version.
    fn decode(bytes: &[u8]) -> Option<Self>;
}

/// A reader over a versioned byte string.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn versioned(bytes: &'a [u8]) -> Option<Self> {
        match bytes.split_first() {
            Some((&FORMAT_VERSION, rest)) => Some(Self(rest)),
            _ => None,
        }
    }
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
    fn i64(&mut self) -> Option<i64> {
        self.take().map(i64::from_be_bytes)
    }
    fn i32(&mut self) -> Option<i32> {
        self.take().map(i32::from_be_bytes)
    }
    fn str(&mut self) -> Option<&'a str> {
        let len = usize::from(u16::from_be_bytes(self.take()?));
        let (s, rest) = (self.0.get(..len)?, self.0.get(len..)?);
        self.0 = rest;
        std::str::from_utf8(s).ok()
    }
    fn end(self) -> Option<()> {
        self.0.is_empty().then_some(())
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    // Longer strings are cut at a char boundary: cache entries are hints, never truth.
    let mut len = s.len().min(usize::from(u16::MAX));
    while !s.is_char_boundary(len) {
        len -= 1;
    }
    out.extend_from_slice(&(len as u16).to_be_bytes());
    out.extend_from_slice(&s.as_bytes()[..len]);
}

impl Codec for TraceId {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&self.0);
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        let mut r = Reader::versioned(bytes)?;
        let id = TraceId(r.take()?);
        r.end()?;
        Some(id)
    }
}

impl Codec for SpanKey {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&self.trace_id.0);
        out.extend_from_slice(&self.span_id.0);
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        let mut r = Reader::versioned(bytes)?;
        let key = SpanKey {
            trace_id: TraceId(r.take()?),
            span_id: SpanId(r.take()?),
        };
        r.end()?;
        Some(key)
    }
}

impl Codec for MetadataKey {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(FORMAT_VERSION);
        put_str(out, self.agent_id.as_str());
        out.extend_from_slice(&self.agent_start_time.to_be_bytes());
        out.push(match self.kind {
            MetadataKind::Api => b'a',
            MetadataKind::String => b's',
            MetadataKind::Sql => b'q',
        });
        out.extend_from_slice(&self.id.to_be_bytes());
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        let mut r = Reader::versioned(bytes)?;
        let agent_id = AgentId::new(r.str()?).ok()?;
        let agent_start_time = r.i64()?;
        let kind = match r.take::<1>()? {
            [b'a'] => MetadataKind::Api,
            [b's'] => MetadataKind::String,
            [b'q'] => MetadataKind::Sql,
            _ => return None,
        };
        let id = r.i32()?;
        r.end()?;
        Some(Self {
            agent_id,
            agent_start_time,
            kind,
            id,
        })
    }
}

impl Codec for TransactionId {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(FORMAT_VERSION);
        let mut s = String::with_capacity(TransactionId::MAX_LEN);
        self.write(&mut s);
        put_str(out, &s);
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        let mut r = Reader::versioned(bytes)?;
        let tx = TransactionId::parse(r.str()?).ok()?;
        r.end()?;
        Some(tx)
    }
}

impl Codec for CallerSegment {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&self.span_id.to_be_bytes());
        out.extend_from_slice(&self.service_type.to_be_bytes());
        put_str(out, &self.application);
        match &self.destination {
            Some(d) => {
                out.push(1);
                put_str(out, d);
            }
            None => out.push(0),
        }
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        let mut r = Reader::versioned(bytes)?;
        let span_id = r.i64()?;
        let service_type = r.i32()?;
        let application: Arc<str> = Arc::from(r.str()?);
        let destination = match r.take::<1>()? {
            [0] => None,
            [1] => Some(Arc::from(r.str()?)),
            _ => return None,
        };
        r.end()?;
        Some(Self {
            span_id,
            application,
            service_type,
            destination,
        })
    }
}

impl Codec for SegmentRef {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&self.entry_span_id.0);
        out.extend_from_slice(&self.pinpoint_span_id.to_be_bytes());
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        let mut r = Reader::versioned(bytes)?;
        let entry_span_id = SpanId(r.take()?);
        let pinpoint_span_id = r.i64()?;
        r.end()?;
        Some(Self {
            entry_span_id,
            pinpoint_span_id,
        })
    }
}

impl Codec for () {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(FORMAT_VERSION);
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        Reader::versioned(bytes)?.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: Codec + PartialEq + fmt::Debug>(v: T) {
        let mut bytes = Vec::new();
        v.encode(&mut bytes);
        assert_eq!(bytes[0], FORMAT_VERSION);
        assert_eq!(T::decode(&bytes).as_ref(), Some(&v));
        // Truncated or extended input is rejected, never misread.
        assert_eq!(T::decode(&bytes[..bytes.len() - 1]), None);
        bytes.push(0);
        assert_eq!(T::decode(&bytes), None);
    }

    #[test]
    fn codecs_round_trip_and_reject_damage() {
        let trace = TraceId::from_u128(0x0af7_6519_16cd_43dd_8448_eb21_1c80_319c);
        round_trip(trace);
        round_trip(SpanKey {
            trace_id: trace,
            span_id: SpanId::from_u64(7),
        });
        round_trip(TransactionId::parse("agentA^1700000000000^42").expect("valid"));
        round_trip(CallerSegment {
            span_id: -9,
            application: Arc::from("shop-api"),
            service_type: 1010,
            destination: Some(Arc::from("orders:8080")),
        });
        round_trip(CallerSegment {
            span_id: 1,
            application: Arc::from("a"),
            service_type: 1800,
            destination: None,
        });
        round_trip(SegmentRef {
            entry_span_id: SpanId::from_u64(3),
            pinpoint_span_id: -2,
        });
        round_trip(MetadataKey {
            agent_id: AgentId::new("agentA").expect("valid"),
            agent_start_time: 1_700_000_000_000,
            kind: MetadataKind::Sql,
            id: -17,
        });
        assert_eq!(<()>::decode(&[FORMAT_VERSION]), Some(()));
        assert_eq!(<()>::decode(&[2]), None, "unknown version");
    }
}
