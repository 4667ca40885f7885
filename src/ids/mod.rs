//! Identity translation between OpenTelemetry/W3C and Pinpoint: header codecs, id
//! mappings and the mapping cache, following the identity contract (spec `ids.md`).
//!
//! Everything here is pure except [`cache`]. Code map:
//!
//! - [`headers`]: header-name and tracestate-key constants, the reusable [`HeaderBuf`];
//! - [`model`]: [`TraceId`] and [`SpanId`]; [`txid`]: [`TransactionId`] and [`AgentId`];
//! - [`w3c`]: `traceparent`; [`tracestate`]: `tracestate`; [`entries`]: its `pp` and
//!   `ppb` entries; [`b3`]: B3 single and multi; [`pinpoint`]: `Pinpoint-*` headers;
//! - [`mapping`]: trace id ⇄ txid, span-id `mix`/`unmix`, sampled flags;
//! - [`translate`]: whole-context translation in both directions;
//! - [`cache`]: the moka mapping cache, [`store`]: its shared tier (Redis),
//!   [`hasher`]: the cache's hasher, [`duration`]: `5m`-style durations;
//! - [`samples`]: deterministic header sets for tests, benchmarks and load generation.
//!
//! Architecture invariant: nothing in this module performs I/O, reads the environment or
//! panics on input; every parser returns its module's error enum, whose message names
//! the header and field at fault.

pub mod b3;
pub mod cache;
pub mod duration;
pub mod entries;
pub mod hasher;
pub mod headers;
mod hex;
pub mod mapping;
pub mod model;
pub mod otlp;
pub mod pinpoint;
pub mod samples;
pub mod store;
pub mod tracestate;
pub mod translate;
pub mod txid;
pub mod w3c;

#[cfg(test)]
mod roundtrip_tests;

pub use cache::{CacheConfig, CacheError, CacheStats, CallerSegment, MappingCache, Tier};
pub use headers::HeaderBuf;
pub use mapping::{TxidOrigin, mix, unmix};
pub use model::{HexIdError, SpanId, TraceId};
pub use translate::{
    TranslateError, TranslateOptions, Translation, Translator, parse_header_lines,
    translate_headers,
};
pub use txid::{AgentId, TransactionId, TxidError};
pub use w3c::TraceParent;
