//! Consistent sampling by trace id (OpenTelemetry's consistent-probability threshold).

/// Consistent sampling by trace id, in the style of OpenTelemetry's consistent
/// probability sampling: the trace's randomness `R` is its rightmost 56 bits (the last
/// 7 bytes, which W3C Trace Context Level 2 makes random), the rejection threshold is
/// `T = round((1 - ratio) × 2^56)`, and the trace is kept when `R ≥ T`.
///
/// The decision is a pure function of the trace id, so every instance and every
/// version of the gateway decides alike, and every span of a trace is treated alike.
/// Thresholds nest: a trace kept at 10 % is also kept at 50 %.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sampler {
    threshold: u64,
}

/// `2^56`: the size of the randomness space.
const RANDOMNESS_SPACE: u64 = 1 << 56;

impl Sampler {
    /// Keeps `ratio` (in `(0, 1]`, validated at load) of the traces.
    #[must_use]
    pub fn new(ratio: f64) -> Self {
        let reject = (1.0 - ratio.clamp(0.0, 1.0)) * RANDOMNESS_SPACE as f64;
        Self {
            threshold: (reject.round() as u64).min(RANDOMNESS_SPACE),
        }
    }

    /// The rejection threshold `T` (out of `2^56`).
    #[must_use]
    pub fn threshold(self) -> u64 {
        self.threshold
    }

    /// Whether the trace with this id is kept.
    #[must_use]
    pub fn keeps(self, trace_id: &[u8]) -> bool {
        randomness(trace_id) >= self.threshold
    }
}

/// The rightmost 56 bits of a trace id (fewer bytes, for a malformed id, read as is).
#[must_use]
pub fn randomness(trace_id: &[u8]) -> u64 {
    let tail = &trace_id[trace_id.len().saturating_sub(7)..];
    tail.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
}
