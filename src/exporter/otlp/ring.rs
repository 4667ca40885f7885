//! The consistent-hash ring of trace-id load balancing. Pure.
//!
//! Each member (an endpoint's key, e.g. `10.0.0.7:4317`) owns `virtual_nodes` points,
//! placed by SHA-256 of `key#i`. A trace id is hashed to a 64-bit position (SplitMix64's
//! finalizer over the xor of its two halves) and belongs to the member owning the first
//! point at or after it, wrapping around. Adding or removing one of N members therefore
//! moves only the traces between its points and their predecessors: about 1/N.

use sha2::{Digest, Sha256};

/// Default points per member: with 512, each of 3 members' share is within a few
/// percent of 1/3 (see the tests).
pub const DEFAULT_VIRTUAL_NODES: usize = 512;

/// A ring over a set of members, by their keys.
#[derive(Debug, Clone, Default)]
pub struct Ring {
    /// `(position, member index)`, sorted by position.
    points: Vec<(u64, u32)>,
    members: Vec<String>,
}

impl Ring {
    /// Builds the ring over `members` (their order does not matter: positions depend on
    /// the keys only).
    #[must_use]
    pub fn new(members: &[String], virtual_nodes: usize) -> Self {
        let mut points = Vec::with_capacity(members.len() * virtual_nodes);
        for (i, m) in members.iter().enumerate() {
            let index = u32::try_from(i).unwrap_or(u32::MAX);
            for v in 0..virtual_nodes {
                points.push((point(m, v), index));
            }
        }
        // Ties (astronomically rare) are broken by member key, so order is stable.
        points.sort_unstable_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| members[a.1 as usize].cmp(&members[b.1 as usize]))
        });
        Self {
            points,
            members: members.to_vec(),
        }
    }

    /// The member keys, in the order given to [`Ring::new`].
    #[must_use]
    pub fn members(&self) -> &[String] {
        &self.members
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The index (into [`Ring::members`]) of the member that owns `trace_id`; `None`
    /// on an empty ring.
    #[must_use]
    pub fn pick(&self, trace_id: &[u8]) -> Option<usize> {
        let key = trace_position(trace_id);
        let at = self.points.partition_point(|(p, _)| *p < key);
        let (_, member) = self.points.get(at).or_else(|| self.points.first())?;
        Some(*member as usize)
    }

    /// The key of the member that owns `trace_id`.
    #[must_use]
    pub fn owner(&self, trace_id: &[u8]) -> Option<&str> {
        self.pick(trace_id).map(|i| self.members[i].as_str())
    }
}

fn point(member: &str, v: usize) -> u64 {
    let mut h = Sha256::new();
    h.update(member.as_bytes());
    h.update(b"#");
    h.update((v as u64).to_be_bytes());
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_be_bytes(b)
}

/// The ring position of a trace id: any length is accepted (a malformed id still lands
/// somewhere, deterministically).
#[must_use]
pub fn trace_position(trace_id: &[u8]) -> u64 {
    let mut x = 0u64;
    for chunk in trace_id.chunks(8) {
        let mut b = [0u8; 8];
        b[..chunk.len()].copy_from_slice(chunk);
        x ^= u64::from_be_bytes(b);
    }
    splitmix64(x)
}

/// SplitMix64's finalizer (Steele, Lea, Flood 2014): constants 0x9E3779B97F4A7C15,
/// 0xBF58476D1CE4E5B9, 0x94D049BB133111EB.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace(i: u64) -> [u8; 16] {
        let mut t = [0u8; 16];
        t[..8].copy_from_slice(&splitmix64(i).to_be_bytes());
        t[8..].copy_from_slice(&splitmix64(i ^ 0xABCD).to_be_bytes());
        t
    }

    fn keys(n: usize, port0: u16) -> Vec<String> {
        (0..n)
            .map(|i| format!("127.0.0.1:{}", port0 + i as u16))
            .collect()
    }

    #[test]
    fn empty_ring_picks_nothing_and_one_member_takes_all() {
        assert_eq!(Ring::new(&[], 16).pick(&trace(1)), None);
        let r = Ring::new(&keys(1, 4317), 16);
        assert!((0..100).all(|i| r.pick(&trace(i)) == Some(0)));
    }

    #[test]
    fn placement_depends_on_keys_not_order() {
        let k = keys(3, 4000);
        let mut rev = k.clone();
        rev.reverse();
        let (a, b) = (Ring::new(&k, 64), Ring::new(&rev, 64));
        for i in 0..1000 {
            assert_eq!(a.owner(&trace(i)), b.owner(&trace(i)));
        }
    }

    /// Over many random member sets (ports as the tests bind them), every member of 3
    /// gets 1/3 ± 5 %, and removing one moves only its own traces: at most 1/3 + 5 %.
    #[test]
    fn balanced_and_removal_moves_only_the_removed_share() {
        let n_traces = 20_000u64;
        for port0 in (20_000u16..60_000).step_by(4_001) {
            let k = keys(3, port0);
            let ring = Ring::new(&k, DEFAULT_VIRTUAL_NODES);
            let owners: Vec<usize> = (0..n_traces)
                .map(|i| ring.pick(&trace(i)).expect("member"))
                .collect();
            for m in 0..3 {
                let share = owners.iter().filter(|o| **o == m).count() as f64 / n_traces as f64;
                assert!(
                    (share - 1.0 / 3.0).abs() < 0.05,
                    "{k:?}: member {m} has {share}"
                );
            }
            let smaller = Ring::new(&k[..2], DEFAULT_VIRTUAL_NODES);
            let mut moved = 0;
            for (i, before) in owners.iter().enumerate() {
                let after = smaller.owner(&trace(i as u64)).expect("member");
                if after != k[*before] {
                    assert_eq!(*before, 2, "only the removed member's traces move");
                    moved += 1;
                }
            }
            let frac = f64::from(moved) / n_traces as f64;
            assert!(frac <= 1.0 / 3.0 + 0.05, "{frac}");
        }
    }

    #[test]
    fn odd_trace_ids_still_land() {
        let r = Ring::new(&keys(2, 1), 8);
        for t in [&[][..], &[1][..], &[0u8; 32][..]] {
            assert!(r.pick(t).is_some());
        }
    }
}
