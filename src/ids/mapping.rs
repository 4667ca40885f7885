//! Owns the identity mappings of ids.md sections 2 and 3: trace id ⇄ transaction id
//! (lossless under the marker, SHA-256 for Pinpoint-born txids), the span-id bijection
//! [`mix`] and its exact inverse [`unmix`], the `-1` substitution, and sampled flags.
//!
//! Every function here is total and pure: no errors, no I/O, no allocation.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ids::model::{SpanId, TraceId};
use crate::ids::txid::{AgentId, TransactionId};

/// SplitMix64 finalizer, first multiplier (Steele, Lea, Flood 2014; the variant
/// popularised as "Mix13" by D. Stafford).
pub const MIX_M1: u64 = 0xbf58_476d_1ce4_e5b9;
/// SplitMix64 finalizer, second multiplier.
pub const MIX_M2: u64 = 0x94d0_49bb_1331_11eb;
/// Shift amounts of the finalizer's three xor-shifts, in order.
pub const MIX_SHIFTS: [u32; 3] = [30, 27, 31];
/// Multiplicative inverse of [`MIX_M1`] modulo 2^64.
pub const MIX_M1_INV: u64 = 0x96de_1b17_3f11_9089;
/// Multiplicative inverse of [`MIX_M2`] modulo 2^64.
pub const MIX_M2_INV: u64 = 0x3196_42b2_d24d_8ec3;

/// The fixed span-id bijection of ids.md section 3, SplitMix64's finalizer:
///
/// ```text
/// z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
/// z = (z ^ (z >> 27)) * 0x94d049bb133111eb
/// z =  z ^ (z >> 31)
/// ```
/// (wrapping multiplication). `mix(0) == 0`, and no other input maps to 0.
#[inline]
pub const fn mix(x: u64) -> u64 {
    let mut z = x;
    z = (z ^ (z >> MIX_SHIFTS[0])).wrapping_mul(MIX_M1);
    z = (z ^ (z >> MIX_SHIFTS[1])).wrapping_mul(MIX_M2);
    z ^ (z >> MIX_SHIFTS[2])
}

/// The exact inverse of [`mix`]: undo each step in reverse order (an xor-shift by `s` is
/// undone by xoring in `y >> s`, `y >> 2s`, ... and a multiplication by an odd constant by
/// multiplying with its inverse modulo 2^64).
#[inline]
pub const fn unmix(x: u64) -> u64 {
    let mut z = unxorshift(x, MIX_SHIFTS[2]);
    z = unxorshift(z.wrapping_mul(MIX_M2_INV), MIX_SHIFTS[1]);
    unxorshift(z.wrapping_mul(MIX_M1_INV), MIX_SHIFTS[0])
}

#[inline]
const fn unxorshift(y: u64, s: u32) -> u64 {
    let mut x = y;
    let mut k = s;
    while k < 64 {
        x ^= y >> k;
        k += s;
    }
    x
}

/// Where a transaction id comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxidOrigin {
    /// Born in OpenTelemetry: agentId is the marker, the mapping is lossless.
    Bridge,
    /// Born in Pinpoint: its trace id is `SHA-256(txid)[0..16]`.
    Pinpoint,
}

/// OTel-born trace → txid, lossless: `<marker>^i64(trace[0..8])^i64(trace[8..16])`.
#[inline]
pub fn trace_id_to_txid(trace: TraceId, marker: AgentId) -> TransactionId {
    let (hi, lo) = split_trace(trace);
    TransactionId {
        agent_id: marker,
        agent_start_time: hi,
        sequence: lo,
    }
}

fn split_trace(trace: TraceId) -> (i64, i64) {
    let [
        a0,
        a1,
        a2,
        a3,
        a4,
        a5,
        a6,
        a7,
        b0,
        b1,
        b2,
        b3,
        b4,
        b5,
        b6,
        b7,
    ] = trace.0;
    (
        i64::from_be_bytes([a0, a1, a2, a3, a4, a5, a6, a7]),
        i64::from_be_bytes([b0, b1, b2, b3, b4, b5, b6, b7]),
    )
}

/// Which side a txid was born on, given the bridge's marker.
///
/// `<marker>^0^0` would decode to the invalid all-zero trace id, so it counts as
/// Pinpoint-born and is hashed.
#[inline]
pub fn txid_origin(tx: &TransactionId, marker: AgentId) -> TxidOrigin {
    if tx.agent_id == marker && (tx.agent_start_time != 0 || tx.sequence != 0) {
        TxidOrigin::Bridge
    } else {
        TxidOrigin::Pinpoint
    }
}

/// txid → trace id: the exact inverse of [`trace_id_to_txid`] under the marker, else
/// [`hash_txid`]. Never returns the all-zero id.
#[inline]
pub fn txid_to_trace_id(tx: &TransactionId, marker: AgentId) -> TraceId {
    match txid_origin(tx, marker) {
        TxidOrigin::Bridge => {
            let mut bytes = [0u8; 16];
            bytes[..8].copy_from_slice(&tx.agent_start_time.to_be_bytes());
            bytes[8..].copy_from_slice(&tx.sequence.to_be_bytes());
            TraceId(bytes)
        }
        TxidOrigin::Pinpoint => hash_txid(tx),
    }
}

/// Pinpoint-born txid → trace id: `SHA-256(utf8(canonical txid))[0..16]`, with the last
/// byte set to 1 if the result were all zeros.
pub fn hash_txid(tx: &TransactionId) -> TraceId {
    let mut hasher = Sha256::new();
    tx.for_each_canonical_part(|part| hasher.update(part));
    let digest = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    if bytes == [0; 16] {
        bytes[15] = 1;
    }
    TraceId(bytes)
}

/// Replaces Pinpoint's "none" value `-1` by `-2` (ids.md section 3).
#[inline]
pub const fn avoid_none(id: i64) -> i64 {
    if id == -1 { -2 } else { id }
}

/// Pinpoint spanId of a root or local span: the OTel span id as big-endian i64.
#[inline]
pub fn pinpoint_span_id(span: SpanId) -> i64 {
    avoid_none(span.to_i64())
}

/// Pinpoint spanId of an entry span whose remote parent is `remote_parent`; the same
/// value is the caller event's `nextSpanId` for client span `remote_parent`.
#[inline]
pub fn entry_span_id(remote_parent: SpanId) -> i64 {
    avoid_none(mix(remote_parent.to_u64()) as i64)
}

/// `nextSpanId` of the CLIENT/PRODUCER event for span `client` (same as
/// [`entry_span_id`]: both sides compute it from the client span id).
#[inline]
pub fn next_span_id(client: SpanId) -> i64 {
    entry_span_id(client)
}

/// The traceparent parent-id to send for `Pinpoint-SpanID: n`: `mix⁻¹(n)`.
/// `None` for `0` (it would give the invalid all-zero id) and for `-1` ("none").
#[inline]
pub fn parent_id_for_pinpoint_span(n: i64) -> Option<SpanId> {
    if n == -1 {
        return None;
    }
    let id = SpanId::from_u64(unmix(n as u64));
    (!id.is_zero()).then_some(id)
}

/// W3C sampled flag → `Pinpoint-Sampled` value: `None` (omit) when sampled, `s0` otherwise.
#[inline]
pub fn pinpoint_sampled_value(sampled: bool) -> Option<&'static str> {
    (!sampled).then_some(crate::ids::headers::PINPOINT_NOT_SAMPLED)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marker() -> AgentId {
        AgentId::new("otel").expect("valid marker")
    }

    fn trace(hex: &str) -> TraceId {
        TraceId::from_hex(hex).expect("valid trace id")
    }

    #[test]
    fn ids_md_example_otel_trace_to_txid() {
        let tx = trace_id_to_txid(trace("0af7651916cd43dd8448eb211c80319c"), marker());
        assert_eq!(
            tx.to_string(),
            "otel^790211418057950173^-8914616934935285348"
        );
        assert_eq!(txid_origin(&tx, marker()), TxidOrigin::Bridge);
        assert_eq!(
            txid_to_trace_id(&tx, marker()).to_hex(),
            "0af7651916cd43dd8448eb211c80319c"
        );
    }

    #[test]
    fn ids_md_example_pinpoint_txid_to_trace() {
        let tx = TransactionId::parse("agentA^1700000000000^42").expect("valid");
        assert_eq!(txid_origin(&tx, marker()), TxidOrigin::Pinpoint);
        assert_eq!(
            txid_to_trace_id(&tx, marker()).to_hex(),
            "d753c5cba22eb84c93f5d8478fd545f2"
        );
        // Non-canonical input hashes like its canonical form.
        let padded = TransactionId::parse("agentA^01700000000000^+42").expect("valid");
        assert_eq!(hash_txid(&padded), hash_txid(&tx));
    }

    #[test]
    fn marker_zero_txid_is_hashed_not_zero() {
        let tx = TransactionId::parse("otel^0^0").expect("valid");
        assert_eq!(txid_origin(&tx, marker()), TxidOrigin::Pinpoint);
        assert!(!txid_to_trace_id(&tx, marker()).is_zero());
    }

    #[test]
    fn mix_constants_and_golden_values() {
        assert_eq!(MIX_M1.wrapping_mul(MIX_M1_INV), 1);
        assert_eq!(MIX_M2.wrapping_mul(MIX_M2_INV), 1);
        // Reference values computed independently with Python integers.
        let golden: &[(u64, u64)] = &[
            (0, 0),
            (1, 0x5692_161d_100b_05e5),
            (0xb7ad_6b71_6920_3331, 0xca7e_363c_d2f4_27be),
            (0x8448_eb21_1c80_319c, 0xe548_1b30_1e39_d5e3),
        ];
        for &(x, y) in golden {
            assert_eq!(mix(x), y, "mix({x:#x})");
            assert_eq!(unmix(y), x, "unmix({y:#x})");
        }
    }

    #[test]
    fn span_id_rules() {
        let c = SpanId::from_hex("b7ad6b7169203331").expect("valid");
        assert_eq!(entry_span_id(c), -3_855_584_596_117_411_906);
        assert_eq!(next_span_id(c), entry_span_id(c));
        assert_eq!(parent_id_for_pinpoint_span(entry_span_id(c)), Some(c));
        assert_eq!(pinpoint_span_id(c), c.to_i64());
        // -1 is "none" in Pinpoint and is never emitted.
        assert_eq!(pinpoint_span_id(SpanId::from_i64(-1)), -2);
        assert_eq!(entry_span_id(SpanId::from_u64(unmix(u64::MAX))), -2);
        assert_eq!(parent_id_for_pinpoint_span(-1), None);
        assert_eq!(parent_id_for_pinpoint_span(0), None);
    }

    #[test]
    fn sampled_flag_mapping() {
        assert_eq!(pinpoint_sampled_value(true), None);
        assert_eq!(pinpoint_sampled_value(false), Some("s0"));
    }
}
