//! The on-disk record formats (pure: bytes in, bytes out, no I/O).
//!
//! A segment file is a sequence of records, each
//! `magic "OPB1" | payload length u32 LE | crc32 u32 LE | seq u64 LE | payload`,
//! where the CRC covers the seq and the payload. Seqs are consecutive within a segment,
//! so [`scan`] can tell how many records a damaged region destroyed. A damaged region
//! (torn tail, junk) is skipped by searching for the next magic whose record checks out.
//!
//! An acknowledgement file (one per segment) holds records
//! `magic "OPA1" | count u32 LE | crc32 u32 LE | count × seq u64 LE`; a damaged one is
//! skipped the same way (a lost acknowledgement only means a duplicate after replay).
//!
//! The payload is [`Stored`]: the spans (or profiles) of one queue item, protobuf.

use opentelemetry_proto::tonic::collector::profiles::v1development::ExportProfilesServiceRequest;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use prost::Message;

use crate::pipeline::router::RouteOverrides;

pub const RECORD_MAGIC: [u8; 4] = *b"OPB1";
pub const ACK_MAGIC: [u8; 4] = *b"OPA1";
/// Bytes before a record's payload.
pub const HEADER: usize = 20;
/// Bytes before an acknowledgement record's seqs.
const ACK_HEADER: usize = 12;
/// A length above this is treated as damage, not as a record.
pub const MAX_PAYLOAD: usize = 1 << 30;
/// Seqs in one acknowledgement record at most (a larger list is split).
const MAX_ACKS: usize = 1 << 16;

/// One queue item as stored: the spans of one block (with the route's overrides) or
/// one profiles request.
#[derive(Clone, PartialEq, Message)]
pub struct Stored {
    #[prost(message, repeated, tag = "1")]
    pub resource_spans: Vec<ResourceSpans>,
    #[prost(message, optional, tag = "2")]
    pub overrides: Option<StoredOverrides>,
    #[prost(message, optional, tag = "3")]
    pub profiles: Option<ExportProfilesServiceRequest>,
}

/// [`RouteOverrides`] as stored.
#[derive(Clone, PartialEq, Message)]
pub struct StoredOverrides {
    #[prost(int32, optional, tag = "1")]
    pub service_type: Option<i32>,
    #[prost(string, optional, tag = "2")]
    pub application_name: Option<String>,
}

impl StoredOverrides {
    #[must_use]
    pub fn from_route(o: &RouteOverrides) -> Self {
        Self {
            service_type: o.service_type.map(i32::from),
            application_name: o.application_name.clone(),
        }
    }

    #[must_use]
    pub fn to_route(&self) -> RouteOverrides {
        RouteOverrides {
            service_type: self.service_type.and_then(|v| i16::try_from(v).ok()),
            application_name: self.application_name.clone(),
        }
    }
}

/// Encodes spans without copying them into a [`Stored`] first.
#[must_use]
pub fn encode_spans(
    resource_spans: &[ResourceSpans],
    overrides: Option<&RouteOverrides>,
) -> Vec<u8> {
    let o = overrides.map(StoredOverrides::from_route);
    let len = resource_spans
        .iter()
        .map(|r| {
            let l = r.encoded_len();
            1 + prost::encoding::encoded_len_varint(l as u64) + l
        })
        .sum::<usize>()
        + o.as_ref()
            .map_or(0, |o| prost::encoding::message::encoded_len(2, o));
    let mut buf = Vec::with_capacity(len);
    prost::encoding::message::encode_repeated(1, resource_spans, &mut buf);
    if let Some(o) = &o {
        prost::encoding::message::encode(2, o, &mut buf);
    }
    buf
}

/// Encodes one profiles request.
#[must_use]
pub fn encode_profiles(request: &ExportProfilesServiceRequest) -> Vec<u8> {
    let mut buf = Vec::with_capacity(request.encoded_len() + 8);
    prost::encoding::message::encode(3, request, &mut buf);
    buf
}

fn crc(seq: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&seq.to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// Appends one record to `out`.
pub fn encode_record(seq: u64, payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&RECORD_MAGIC);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc(seq, payload).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(payload);
}

/// Appends acknowledgement records for `seqs` to `out`.
pub fn encode_acks(seqs: &[u64], out: &mut Vec<u8>) {
    for part in seqs.chunks(MAX_ACKS) {
        let mut h = crc32fast::Hasher::new();
        let start = out.len();
        out.extend_from_slice(&ACK_MAGIC);
        out.extend_from_slice(&(part.len() as u32).to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        for s in part {
            out.extend_from_slice(&s.to_le_bytes());
        }
        h.update(&out[start + ACK_HEADER..]);
        let c = h.finalize().to_le_bytes();
        out[start + 8..start + 12].copy_from_slice(&c);
    }
}

/// A record found by [`scan`]: where its payload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub seq: u64,
    /// Offset of the record (its magic) in the file.
    pub offset: u64,
    pub payload_len: u32,
}

/// A damaged region [`scan`] skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Damage {
    pub offset: u64,
    pub bytes: u64,
    /// Records lost in it: the gap in seqs around it, at least 1.
    pub records: u64,
}

/// What a segment holds.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Scan {
    pub records: Vec<Found>,
    pub damage: Vec<Damage>,
}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    let b = data.get(at..at + 4)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn u64_at(data: &[u8], at: usize) -> Option<u64> {
    let b = data.get(at..at + 8)?;
    let mut a = [0; 8];
    a.copy_from_slice(b);
    Some(u64::from_le_bytes(a))
}

/// The record at `at`, if one that checks out starts there: `(seq, payload length)`.
fn record_at(data: &[u8], at: usize) -> Option<(u64, u32)> {
    if data.get(at..at + 4)? != RECORD_MAGIC {
        return None;
    }
    let len = u32_at(data, at + 4)?;
    if len as usize > MAX_PAYLOAD {
        return None;
    }
    let sum = u32_at(data, at + 8)?;
    let seq = u64_at(data, at + 12)?;
    let payload = data.get(at + HEADER..at + HEADER + len as usize)?;
    (crc(seq, payload) == sum).then_some((seq, len))
}

fn find_magic(data: &[u8], from: usize, magic: &[u8; 4]) -> Option<usize> {
    data.get(from..)?
        .windows(4)
        .position(|w| w == magic)
        .map(|p| p + from)
}

/// Reads every intact record of a segment, skipping (and describing) damaged regions.
#[must_use]
pub fn scan(data: &[u8]) -> Scan {
    let mut out = Scan::default();
    let mut at = 0;
    let mut next_seq: Option<u64> = None;
    while at < data.len() {
        if let Some((seq, len)) = record_at(data, at) {
            if let (Some(want), Some(d)) = (next_seq, out.damage.last_mut())
                && d.offset + d.bytes == at as u64
                && seq > want
            {
                d.records = d.records.max(seq - want);
            }
            out.records.push(Found {
                seq,
                offset: at as u64,
                payload_len: len,
            });
            next_seq = Some(seq + 1);
            at += HEADER + len as usize;
            continue;
        }
        // Damage: resynchronize at the next magic that starts a good record.
        let mut probe = at + 1;
        let next = loop {
            match find_magic(data, probe, &RECORD_MAGIC) {
                Some(p) if record_at(data, p).is_some() => break Some(p),
                Some(p) => probe = p + 1,
                None => break None,
            }
        };
        let end = next.unwrap_or(data.len());
        out.damage.push(Damage {
            offset: at as u64,
            bytes: (end - at) as u64,
            records: 1,
        });
        at = end;
    }
    out
}

/// Every acknowledged seq in an acknowledgement file (damaged records skipped), and
/// how many damaged regions there were.
#[must_use]
pub fn scan_acks(data: &[u8]) -> (Vec<u64>, usize) {
    let mut seqs = Vec::new();
    let mut damaged = 0;
    let mut at = 0;
    let good = |at: usize| -> Option<usize> {
        if data.get(at..at + 4)? != ACK_MAGIC {
            return None;
        }
        let n = u32_at(data, at + 4)? as usize;
        if n > MAX_ACKS {
            return None;
        }
        let sum = u32_at(data, at + 8)?;
        let body = data.get(at + ACK_HEADER..at + ACK_HEADER + n * 8)?;
        (crc32fast::hash(body) == sum).then_some(n)
    };
    while at < data.len() {
        if let Some(n) = good(at) {
            seqs.extend((0..n).filter_map(|i| u64_at(data, at + ACK_HEADER + i * 8)));
            at += ACK_HEADER + n * 8;
            continue;
        }
        damaged += 1;
        let mut probe = at + 1;
        at = loop {
            match find_magic(data, probe, &ACK_MAGIC) {
                Some(p) if good(p).is_some() => break p,
                Some(p) => probe = p + 1,
                None => break data.len(),
            }
        };
    }
    (seqs, damaged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(seqs: std::ops::Range<u64>) -> Vec<u8> {
        let mut out = Vec::new();
        for s in seqs {
            encode_record(s, format!("payload {s}").as_bytes(), &mut out);
        }
        out
    }

    fn seqs(s: &Scan) -> Vec<u64> {
        s.records.iter().map(|r| r.seq).collect()
    }

    #[test]
    fn intact_segment_reads_back() {
        let data = segment(10..15);
        let s = scan(&data);
        assert_eq!(seqs(&s), vec![10, 11, 12, 13, 14]);
        assert!(s.damage.is_empty());
        let r = s.records[2];
        let start = r.offset as usize + HEADER;
        assert_eq!(&data[start..start + r.payload_len as usize], b"payload 12");
    }

    #[test]
    fn torn_tail_is_one_damaged_record() {
        let data = segment(0..5);
        let cut = data.len() - 7;
        let s = scan(&data[..cut]);
        assert_eq!(seqs(&s), vec![0, 1, 2, 3]);
        assert_eq!(s.damage.len(), 1);
        assert_eq!(s.damage[0].records, 1);
        assert_eq!(s.damage[0].offset + s.damage[0].bytes, cut as u64);
    }

    #[test]
    fn junk_in_the_middle_is_skipped_and_counted_by_seq_gap() {
        let mut data = segment(0..6);
        // Overwrite records 2 and 3 (and a bit of 4's magic is untouched).
        let second = scan(&data).records[2].offset as usize;
        let fourth = scan(&data).records[4].offset as usize;
        for b in &mut data[second..fourth] {
            *b = 0xA5;
        }
        let s = scan(&data);
        assert_eq!(seqs(&s), vec![0, 1, 4, 5]);
        assert_eq!(s.damage.len(), 1);
        assert_eq!(s.damage[0].records, 2);
        assert_eq!(s.damage[0].bytes, (fourth - second) as u64);
    }

    #[test]
    fn a_flipped_payload_bit_fails_the_checksum() {
        let mut data = segment(0..3);
        let r = scan(&data).records[1];
        data[r.offset as usize + HEADER + 2] ^= 1;
        let s = scan(&data);
        assert_eq!(seqs(&s), vec![0, 2]);
        assert_eq!(s.damage[0].records, 1);
    }

    #[test]
    fn junk_only_and_empty_files() {
        assert_eq!(scan(&[]), Scan::default());
        let s = scan(&[7; 100]);
        assert!(s.records.is_empty());
        assert_eq!(s.damage.len(), 1);
        assert_eq!(s.damage[0].bytes, 100);
    }

    #[test]
    fn acks_round_trip_and_skip_damage() {
        let mut data = Vec::new();
        encode_acks(&[1, 2, 3], &mut data);
        let keep = data.len();
        encode_acks(&[9], &mut data);
        encode_acks(&[4, 5], &mut data);
        assert_eq!(scan_acks(&data), (vec![1, 2, 3, 9, 4, 5], 0));
        data[keep + ACK_HEADER] ^= 0xFF;
        assert_eq!(scan_acks(&data), (vec![1, 2, 3, 4, 5], 1));
        assert_eq!(scan_acks(&data[..data.len() - 3]), (vec![1, 2, 3], 1));
    }

    #[test]
    fn stored_spans_decode_with_their_overrides() {
        let rs = vec![ResourceSpans::default(), ResourceSpans::default()];
        let o = RouteOverrides {
            service_type: Some(1000),
            application_name: Some("app".into()),
        };
        let bytes = encode_spans(&rs, Some(&o));
        let back = Stored::decode(&bytes[..]).expect("decodes");
        assert_eq!(back.resource_spans.len(), 2);
        assert_eq!(back.overrides.map(|o| o.to_route()), Some(o));
        let p = Stored::decode(&encode_profiles(&ExportProfilesServiceRequest::default())[..])
            .expect("decodes");
        assert!(p.profiles.is_some() && p.resource_spans.is_empty());
    }
}
