//! Owns the shared tier's counters: plain atomics readable without a metrics recorder
//! ([`StoreStats`], for tests and the status page) mirrored into the
//! `bridge_id_store_*` metrics of `selfmetrics.rs`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram};
use serde::Serialize;

use super::MapName;
use crate::selfmetrics as m;

/// Counters of the shared tier.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StoreStats {
    /// Round trips answered.
    pub round_trips: u64,
    /// Round trips that failed (connection or protocol error).
    pub round_trip_errors: u64,
    /// Round trips not answered within `timeout`.
    pub timeouts: u64,
    /// Lookups the store answered with a value.
    pub hits: u64,
    /// Lookups the store answered with nothing.
    pub misses: u64,
    /// Writes the store took.
    pub writes: u64,
    /// Writes merged into one already queued for the same key.
    pub coalesced: u64,
    /// Lookups and writes dropped because the queue was full.
    pub dropped: u64,
    /// Every failure: failed and timed-out round trips, commands the server refused
    /// (e.g. OOM), and stored values that do not decode.
    pub errors: u64,
    /// Lookups and writes waiting now.
    pub queued: u64,
    /// Whether the last round trip succeeded.
    pub up: bool,
}

/// Outcome of one lookup or write, for the per-map counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpOutcome {
    Hit,
    Miss,
    Written,
    Coalesced,
    Dropped,
    Failed,
}

impl OpOutcome {
    const ALL: [Self; 6] = [
        Self::Hit,
        Self::Miss,
        Self::Written,
        Self::Coalesced,
        Self::Dropped,
        Self::Failed,
    ];
    fn label(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Written => "written",
            Self::Coalesced => "coalesced",
            Self::Dropped => "dropped",
            Self::Failed => "error",
        }
    }
    fn is_lookup(self) -> bool {
        matches!(self, Self::Hit | Self::Miss)
    }
}

/// Outcome of one round trip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TripOutcome {
    Ok,
    Error,
    Timeout,
}

/// The maps that go to the shared tier (the others stay local).
pub(crate) const SHARED_MAPS: [MapName; 2] = [MapName::Txid, MapName::Caller];

/// Why a failure was counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    /// The round trip failed (connection refused or lost, protocol error).
    Connection,
    /// The round trip took longer than `timeout`.
    Timeout,
    /// The server refused one command (e.g. OOM when full).
    Server,
    /// A stored value does not decode.
    Malformed,
}

impl ErrorKind {
    const ALL: [Self; 4] = [
        Self::Connection,
        Self::Timeout,
        Self::Server,
        Self::Malformed,
    ];
    fn label(self) -> &'static str {
        match self {
            Self::Connection => "connection",
            Self::Timeout => "timeout",
            Self::Server => "server",
            Self::Malformed => "malformed",
        }
    }
}

pub(crate) struct StoreCounters {
    round_trips: AtomicU64,
    round_trip_errors: AtomicU64,
    timeouts: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    writes: AtomicU64,
    coalesced: AtomicU64,
    dropped: AtomicU64,
    errors: AtomicU64,
    up: AtomicBool,
    trips: [Counter; 3],
    ops: Vec<Counter>,
    error_kinds: [Counter; 4],
    latency: Histogram,
    queued: Gauge,
    up_gauge: Gauge,
}

impl StoreCounters {
    pub(crate) fn new() -> Self {
        let trip = |o: &'static str| metrics::counter!(m::ID_STORE_ROUND_TRIPS, "outcome" => o);
        let ops = SHARED_MAPS
            .iter()
            .flat_map(|map| {
                OpOutcome::ALL.iter().map(move |o| {
                    let name = if o.is_lookup() {
                        m::ID_STORE_LOOKUPS
                    } else {
                        m::ID_STORE_OPS
                    };
                    metrics::counter!(name, "map" => map.as_str(), "outcome" => o.label())
                })
            })
            .collect();
        let this = Self {
            round_trips: AtomicU64::new(0),
            round_trip_errors: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            coalesced: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            up: AtomicBool::new(false),
            trips: [trip("ok"), trip("error"), trip("timeout")],
            ops,
            error_kinds: ErrorKind::ALL
                .map(|k| metrics::counter!(m::ID_STORE_ERRORS, "reason" => k.label())),
            latency: metrics::histogram!(m::ID_STORE_ROUND_TRIP_DURATION),
            queued: metrics::gauge!(m::ID_STORE_QUEUED),
            up_gauge: metrics::gauge!(m::ID_STORE_UP),
        };
        // On /metrics from the start, so alerts can be written before the first event.
        this.trips
            .iter()
            .chain(&this.ops)
            .chain(&this.error_kinds)
            .for_each(|c| c.increment(0));
        this.queued.set(0.0);
        this.up_gauge.set(0.0);
        this
    }

    pub(crate) fn op(&self, map: MapName, outcome: OpOutcome) {
        let cell = match outcome {
            OpOutcome::Hit => &self.hits,
            OpOutcome::Miss => &self.misses,
            OpOutcome::Written => &self.writes,
            OpOutcome::Coalesced => &self.coalesced,
            OpOutcome::Dropped => &self.dropped,
            OpOutcome::Failed => &self.errors,
        };
        cell.fetch_add(1, Relaxed);
        let Some(mi) = SHARED_MAPS.iter().position(|m| *m == map) else {
            return;
        };
        let oi = OpOutcome::ALL
            .iter()
            .position(|o| *o == outcome)
            .unwrap_or(0);
        if let Some(c) = self.ops.get(mi * OpOutcome::ALL.len() + oi) {
            c.increment(1);
        }
    }

    pub(crate) fn error(&self, kind: ErrorKind) {
        if kind != ErrorKind::Server {
            // Server refusals are counted per op (OpOutcome::Failed) already.
            self.errors.fetch_add(1, Relaxed);
        }
        self.error_kinds[ErrorKind::ALL.iter().position(|k| *k == kind).unwrap_or(0)].increment(1);
    }

    pub(crate) fn trip(&self, outcome: TripOutcome, took: Duration) {
        self.latency.record(took.as_secs_f64());
        let (cell, i) = match outcome {
            TripOutcome::Ok => (&self.round_trips, 0),
            TripOutcome::Error => (&self.round_trip_errors, 1),
            TripOutcome::Timeout => (&self.timeouts, 2),
        };
        cell.fetch_add(1, Relaxed);
        self.trips[i].increment(1);
        let up = outcome == TripOutcome::Ok;
        self.up.store(up, Relaxed);
        self.up_gauge.set(if up { 1.0 } else { 0.0 });
    }

    pub(crate) fn set_queued(&self, n: usize) {
        self.queued.set(n as f64);
    }

    pub(crate) fn snapshot(&self, queued: usize) -> StoreStats {
        StoreStats {
            round_trips: self.round_trips.load(Relaxed),
            round_trip_errors: self.round_trip_errors.load(Relaxed),
            timeouts: self.timeouts.load(Relaxed),
            hits: self.hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
            writes: self.writes.load(Relaxed),
            coalesced: self.coalesced.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            errors: self.errors.load(Relaxed),
            queued: queued as u64,
            up: self.up.load(Relaxed),
        }
    }
}
