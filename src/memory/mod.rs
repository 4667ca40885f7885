//! Memory bounded by configuration, whatever the input.
//!
//! Three things keep the gateway's memory within its config:
//! - **Before a request is decoded**, [`scan`] (protobuf) or [`json`] estimates what it
//!   will take once decoded, allocating nothing. More than the per-request limit
//!   (`receivers.otlp.max_decoded_bytes`) is refused for good (413 /
//!   RESOURCE_EXHAUSTED); more than the process has left under its soft limit is
//!   refused for now (503 / UNAVAILABLE, retryable).
//! - **The soft limit** (`memory.limit`, like the Collector's `memory_limiter`) is
//!   checked against the live heap, which [`ALLOCATOR`] counts exactly (mimalloc or the system
//!   allocator, wrapped), plus what admitted-but-not-yet-decoded requests reserved.
//!   Above it the receivers refuse with retryable codes; nothing aborts.
//! - **Queues** are bounded in bytes as well as spans (`queue.max_bytes`), charged
//!   with [`weigh`] (what a decoded block holds, by capacity).
//!
//! Separately, [`trim`] hands the executable's start-up pages back once the gateway runs.

pub mod json;
pub mod scan;
pub mod trim;
pub mod weigh;

use std::sync::atomic::{AtomicUsize, Ordering};

use metrics::Gauge;
use serde::Deserialize;

pub use scan::Estimate;

use crate::selfmetrics as m;

/// The process's allocator: mimalloc (feature `mimalloc`, on by default) or the system
/// one, counting live bytes (one relaxed atomic add per allocation) so the soft limit
/// can be checked against the real heap.
#[global_allocator]
pub static ALLOCATOR: cap::Cap<Inner> = cap::Cap::new(Inner {}, usize::MAX);

/// The allocator [`ALLOCATOR`] counts for.
#[cfg(feature = "mimalloc")]
pub type Inner = mimalloc::MiMalloc;
/// The allocator [`ALLOCATOR`] counts for.
#[cfg(not(feature = "mimalloc"))]
pub type Inner = std::alloc::System;

/// Bytes currently allocated on the heap by this process.
#[must_use]
pub fn heap_bytes() -> usize {
    ALLOCATOR.allocated()
}

/// Per-request decoded limit when neither it nor a memory limit is configured.
pub const DEFAULT_MAX_DECODED: usize = 256 << 20;

/// `memory:`: the process-wide soft limit.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryConfig {
    /// A size (`1GiB`) or a share of the memory the process may use (`80%`: of its
    /// cgroup's limit when it has one, else of the machine's memory). Default `80%`.
    #[serde(deserialize_with = "de_limit")]
    pub limit: Limit,
    /// Once everything has started, hand the executable's read-only pages back to the
    /// kernel ([`trim`]): they stay in the page cache and come back on use, so the idle
    /// RSS is what the running gateway uses, not what start-up touched. Default `true`.
    pub release_startup_pages: bool,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self {
            limit: Limit::Percent(80.0),
            release_startup_pages: true,
        }
    }
}

/// See [`MemoryConfig::limit`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit {
    Bytes(usize),
    Percent(f64),
}

fn de_limit<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Limit, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumOrText {
        Num(usize),
        Text(String),
    }
    match NumOrText::deserialize(d)? {
        NumOrText::Num(n) => Ok(Limit::Bytes(n)),
        NumOrText::Text(t) => parse_limit(&t).map_err(serde::de::Error::custom),
    }
}

/// Reads `80%` or a size.
///
/// # Errors
/// A message naming what is wrong.
pub fn parse_limit(text: &str) -> Result<Limit, String> {
    if let Some(p) = text.trim().strip_suffix('%') {
        return match p.trim().parse::<f64>() {
            Ok(v) if v > 0.0 && v <= 100.0 => Ok(Limit::Percent(v)),
            _ => Err(format!("`{text}`: a percentage must be in (0%, 100%]")),
        };
    }
    match crate::config::parse_bytes(text) {
        Ok(n) if n >= 16 << 20 => Ok(Limit::Bytes(n)),
        Ok(_) => Err(format!("`{text}` is too small (at least 16MiB)")),
        Err(e) => Err(format!("{e}, or a percentage such as 80%")),
    }
}

impl MemoryConfig {
    /// The limit in bytes; `None` when it is a share and the memory available cannot be
    /// read (then there is no soft limit).
    #[must_use]
    pub fn resolve(&self) -> Option<usize> {
        match self.limit {
            Limit::Bytes(n) => Some(n),
            Limit::Percent(p) => available().map(|a| (a as f64 * p / 100.0) as usize),
        }
    }
}

/// The memory this process may use: its cgroup's limit or the machine's, the smaller.
#[must_use]
pub fn available() -> Option<usize> {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    let cgroup = read("/sys/fs/cgroup/memory.max")
        .or_else(|| read("/sys/fs/cgroup/memory/memory.limit_in_bytes"))
        .and_then(|t| t.trim().parse::<usize>().ok());
    let machine = read("/proc/meminfo").and_then(|t| {
        t.lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
            .map(|kb| kb * 1024)
    });
    match (cgroup, machine) {
        (Some(c), Some(m)) => Some(c.min(m)),
        (c, m) => c.or(m),
    }
}

/// Why a request was refused for memory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemoryError {
    /// The request alone would pass the per-request limit: not retryable.
    #[error(
        "request would take {at_least}{} bytes of memory once decoded ({} spans or samples, {} repeated messages counted), more than the limit of {limit} bytes per request",
        est.bytes, est.items, est.messages,
        at_least = if est.stopped { "at least " } else { "" }
    )]
    DecodedTooLarge { est: Estimate, limit: usize },
    /// The process is at its soft limit: retry later.
    #[error(
        "the gateway is at its memory limit ({heap} bytes in use, {reserved} reserved, this request needs about {want}, limit {limit}); retry later"
    )]
    OverLimit {
        heap: usize,
        reserved: usize,
        want: usize,
        limit: usize,
    },
}

/// Admission of requests by their decoded size.
#[derive(Debug)]
pub struct MemoryGuard {
    /// Soft limit in bytes; `None` = none.
    limit: Option<usize>,
    max_decoded: usize,
    reserved: AtomicUsize,
    heap_gauge: Gauge,
}

impl Default for MemoryGuard {
    /// No soft limit; the default per-request limit.
    fn default() -> Self {
        Self::new(None, DEFAULT_MAX_DECODED)
    }
}

impl MemoryGuard {
    /// `limit`: the soft limit (`None`: none); `max_decoded`: the per-request limit.
    #[must_use]
    pub fn new(limit: Option<usize>, max_decoded: usize) -> Self {
        if let Some(l) = limit {
            metrics::gauge!(m::MEMORY_LIMIT).set(l as f64);
        }
        Self {
            limit,
            max_decoded,
            reserved: AtomicUsize::new(0),
            heap_gauge: metrics::gauge!(m::MEMORY_HEAP),
        }
    }

    /// The guard a config asks for: its soft limit, and the per-request limit
    /// `max_decoded` or, without one, a quarter of the soft limit (at most
    /// [`DEFAULT_MAX_DECODED`]).
    #[must_use]
    pub fn from_config(memory: &MemoryConfig, max_decoded: Option<usize>) -> Self {
        let limit = memory.resolve();
        let per_request = max_decoded.unwrap_or_else(|| {
            limit.map_or(DEFAULT_MAX_DECODED, |l| (l / 4).min(DEFAULT_MAX_DECODED))
        });
        Self::new(limit, per_request)
    }

    /// The per-request decoded limit, where a scan may stop.
    #[must_use]
    pub fn max_decoded(&self) -> usize {
        self.max_decoded
    }

    /// The soft limit, if any.
    #[must_use]
    pub fn limit(&self) -> Option<usize> {
        self.limit
    }

    /// Admits a request whose decoded form was estimated as `est`, reserving its
    /// bytes until the returned guard is dropped.
    ///
    /// # Errors
    /// [`MemoryError::DecodedTooLarge`] (for good) or [`MemoryError::OverLimit`] (for now).
    pub fn admit(&self, est: Estimate) -> Result<Reservation<'_>, MemoryError> {
        if est.stopped || est.bytes > self.max_decoded {
            return Err(MemoryError::DecodedTooLarge {
                est,
                limit: self.max_decoded,
            });
        }
        let heap = heap_bytes();
        self.heap_gauge.set(heap as f64);
        let reserved = self.reserved.fetch_add(est.bytes, Ordering::AcqRel);
        let reservation = Reservation {
            guard: self,
            bytes: est.bytes,
        };
        if let Some(limit) = self.limit
            && heap.saturating_add(reserved).saturating_add(est.bytes) > limit
        {
            return Err(MemoryError::OverLimit {
                heap,
                reserved,
                want: est.bytes,
                limit,
            });
        }
        Ok(reservation)
    }

    /// Whether the heap is over the soft limit now (for requests whose size is known
    /// only after decoding, such as gRPC streams of small messages).
    #[must_use]
    pub fn over_limit(&self) -> bool {
        self.limit
            .is_some_and(|l| heap_bytes().saturating_add(self.reserved.load(Ordering::Acquire)) > l)
    }
}

/// Bytes reserved for a request being decoded and admitted; released on drop.
#[derive(Debug)]
pub struct Reservation<'a> {
    guard: &'a MemoryGuard,
    bytes: usize,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.guard.reserved.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn est(bytes: usize) -> Estimate {
        Estimate {
            bytes,
            ..Estimate::default()
        }
    }

    #[test]
    fn limits_parse() {
        assert_eq!(parse_limit("80%"), Ok(Limit::Percent(80.0)));
        assert_eq!(parse_limit("1GiB"), Ok(Limit::Bytes(1 << 30)));
        assert!(parse_limit("0%").is_err());
        assert!(parse_limit("150%").is_err());
        assert!(parse_limit("1KiB").is_err());
        assert!(parse_limit("lots").is_err());
    }

    #[test]
    fn a_share_of_the_machine_resolves() {
        let c = MemoryConfig::default();
        let (Some(all), Some(share)) = (available(), c.resolve()) else {
            panic!("Linux exposes /proc/meminfo");
        };
        assert!(share < all && share > all / 2);
    }

    #[test]
    fn per_request_and_soft_limits() {
        let g = MemoryGuard::new(None, 1000);
        assert!(g.admit(est(1000)).is_ok());
        assert!(matches!(
            g.admit(est(1001)),
            Err(MemoryError::DecodedTooLarge { .. })
        ));
        let stopped = Estimate {
            stopped: true,
            ..est(10)
        };
        assert!(g.admit(stopped).is_err());

        // A soft limit just above the current heap: reservations add up.
        let limit = heap_bytes() + (64 << 20);
        let g = MemoryGuard::new(Some(limit), usize::MAX);
        let a = g.admit(est(40 << 20)).expect("room");
        let err = g.admit(est(40 << 20)).expect_err("over");
        assert!(
            err.to_string().contains("memory limit") && err.to_string().contains("retry later"),
            "{err}"
        );
        drop(a);
        assert!(g.admit(est(40 << 20)).is_ok(), "released on drop");
        assert_eq!(g.reserved.load(Ordering::Acquire), 0);
    }
}
