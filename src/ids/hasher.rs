//! Owns [`IdBuildHasher`], the hasher of the mapping cache's maps. Keys are random ids
//! (or SHA-256 output), so a few rounds of the SplitMix64 finalizer over a per-process
//! random seed spread them well and cost a fraction of SipHash. The seed keeps bucket
//! positions unpredictable to senders who choose ids; this is not a keyed PRF, so a
//! deployment that must withstand a determined hash-flooding attacker should swap in
//! `std`'s `RandomState`.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

use crate::ids::mapping::mix;

/// Seeded builder for [`IdHasher`].
#[derive(Debug, Clone, Copy)]
pub struct IdBuildHasher {
    seed: u64,
}

impl IdBuildHasher {
    /// A builder with a random per-process seed.
    pub fn new() -> Self {
        Self {
            seed: RandomState::new().hash_one(0x5eed_u64),
        }
    }

    /// A builder with a fixed seed (tests, reproducible benchmarks).
    pub fn with_seed(seed: u64) -> Self {
        Self { seed }
    }
}

impl Default for IdBuildHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl BuildHasher for IdBuildHasher {
    type Hasher = IdHasher;

    fn build_hasher(&self) -> IdHasher {
        IdHasher { state: self.seed }
    }
}

/// Word-at-a-time hasher: `state = mix(state ^ word) + golden-ratio constant`.
#[derive(Debug, Clone)]
pub struct IdHasher {
    state: u64,
}

impl Hasher for IdHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u64(&mut self, word: u64) {
        self.state = mix(self.state ^ word).wrapping_add(0x9e37_79b9_7f4a_7c15);
    }

    #[inline]
    fn finish(&self) -> u64 {
        mix(self.state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::model::TraceId;

    #[test]
    fn distinct_ids_hash_apart_and_seed_matters() {
        let a = IdBuildHasher::with_seed(1);
        let b = IdBuildHasher::with_seed(2);
        let t1 = TraceId::from_u128(1);
        let t2 = TraceId::from_u128(2);
        assert_ne!(a.hash_one(t1), a.hash_one(t2));
        assert_ne!(a.hash_one(t1), b.hash_one(t1));
        assert_eq!(a.hash_one(t1), a.hash_one(t1));
        // Sequential ids spread over the low bits used for buckets.
        let buckets: std::collections::HashSet<u64> = (0..1024u128)
            .map(|i| a.hash_one(TraceId::from_u128(i)) & 1023)
            .collect();
        assert!(
            buckets.len() > 550,
            "{} of 1024 buckets used",
            buckets.len()
        );
    }
}
