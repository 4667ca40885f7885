//! Owns the small text codecs shared by the header codecs: lower-case hex and signed
//! decimal, written into caller-owned buffers so hot paths do not allocate.

use crate::ids::model::HexIdError;

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Lower-case hex digit values; `INVALID` for every other byte.
const HEX_VALUES: [u8; 256] = {
    let mut t = [INVALID; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};
const INVALID: u8 = 0xff;

/// Value of one lower-case hex digit.
#[inline]
pub(crate) fn lower_hex_value(b: u8) -> Option<u8> {
    let v = HEX_VALUES[usize::from(b)];
    (v != INVALID).then_some(v)
}

/// Decodes exactly `2 * N` lower-case hex characters into `N` bytes.
pub(crate) fn decode_lower_hex<const N: usize>(s: &str) -> Result<[u8; N], HexIdError> {
    let bytes = s.as_bytes();
    if bytes.len() != 2 * N {
        // Report a non-ASCII character before the length, so the length is in characters.
        if let Some(pos) = bytes.iter().position(|b| !b.is_ascii()) {
            return Err(HexIdError::NotLowerHex {
                index: pos,
                found: char_at(s, pos),
            });
        }
        return Err(HexIdError::Length {
            found: bytes.len(),
            expected: 2 * N,
        });
    }
    let mut out = [0u8; N];
    let mut invalid = 0u8;
    for (slot, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let (hi, lo) = (
            HEX_VALUES[usize::from(pair[0])],
            HEX_VALUES[usize::from(pair[1])],
        );
        // INVALID has its high bit set; valid digits are below 16.
        invalid |= hi | lo;
        *slot = (hi << 4) | (lo & 0x0f);
    }
    if invalid & 0x80 != 0 {
        // Slow path: find the first offending character for the message.
        for pos in 0..bytes.len() {
            digit_at(s, pos)?;
        }
    }
    Ok(out)
}

#[inline]
fn digit_at(s: &str, pos: usize) -> Result<u8, HexIdError> {
    let b = s.as_bytes().get(pos).copied().unwrap_or(0);
    lower_hex_value(b).ok_or_else(|| HexIdError::NotLowerHex {
        index: pos,
        found: char_at(s, pos),
    })
}

/// The character starting at byte `pos`, or U+FFFD when `pos` is not a boundary.
pub(crate) fn char_at(s: &str, pos: usize) -> char {
    s.get(pos..)
        .and_then(|rest| rest.chars().next())
        .unwrap_or(char::REPLACEMENT_CHARACTER)
}

/// Writes the lower-case hex form of `bytes` into `buf` and returns the used head
/// (`buf` must hold `2 * bytes.len()`; extra input is ignored).
#[inline]
pub(crate) fn hex_into<'b>(bytes: &[u8], buf: &'b mut [u8]) -> &'b [u8] {
    let mut n = 0;
    for (&b, pair) in bytes.iter().zip(buf.chunks_exact_mut(2)) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0x0f)];
        n += 2;
    }
    &buf[..n]
}

/// Where the encoders write: a `String` (validated on the way in) or the byte buffer of
/// a `HeaderBuf` (no validation on the hot path; the encoders only produce ASCII).
pub(crate) trait AsciiSink {
    /// Appends ASCII bytes.
    fn put(&mut self, ascii: &[u8]);
}

impl AsciiSink for String {
    #[inline]
    fn put(&mut self, ascii: &[u8]) {
        // Every caller passes ASCII, so the fallback never triggers.
        self.push_str(std::str::from_utf8(ascii).unwrap_or_default());
    }
}

impl AsciiSink for Vec<u8> {
    #[inline]
    fn put(&mut self, ascii: &[u8]) {
        self.extend_from_slice(ascii);
    }
}

/// Appends the lower-case hex form of `bytes`.
#[inline]
pub(crate) fn put_hex(out: &mut impl AsciiSink, bytes: &[u8]) {
    let mut buf = [0u8; 64];
    for chunk in bytes.chunks(32) {
        out.put(hex_into(chunk, &mut buf));
    }
}

/// "00" to "99": two decimal digits per table lookup.
const PAIRS: [u8; 200] = {
    let mut t = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        t[2 * i] = b'0' + (i / 10) as u8;
        t[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    t
};

#[inline]
fn put_pair(buf: &mut [u8; 20], pos: usize, v: u32) {
    // v < 100, so the index stays in the table.
    let i = 2 * v as usize;
    buf[pos..pos + 2].copy_from_slice(&PAIRS[i..i + 2]);
}

/// Writes the decimal form of `v` into `buf` and returns the used tail. Four digits per
/// 64-bit division, then 32-bit arithmetic within each group.
#[inline]
pub(crate) fn i64_decimal(v: i64, buf: &mut [u8; 20]) -> &[u8] {
    let mut n = v.unsigned_abs();
    let mut pos = buf.len();
    while n >= 10_000 {
        // The remainder is below 10 000, so it fits in u32.
        let rem = (n % 10_000) as u32;
        n /= 10_000;
        pos -= 4;
        put_pair(buf, pos, rem / 100);
        put_pair(buf, pos + 2, rem % 100);
    }
    // n < 10 000 now.
    let mut n = n as u32;
    if n >= 100 {
        pos -= 2;
        put_pair(buf, pos, n % 100);
        n /= 100;
    }
    if n >= 10 {
        pos -= 2;
        put_pair(buf, pos, n);
    } else {
        pos -= 1;
        // n < 10 here.
        buf[pos] = b'0' + n as u8;
    }
    if v < 0 {
        pos -= 1;
        buf[pos] = b'-';
    }
    &buf[pos..]
}

/// Appends the decimal form of `v`.
#[inline]
pub(crate) fn put_i64(out: &mut impl AsciiSink, v: i64) {
    let mut buf = [0u8; 20];
    out.put(i64_decimal(v, &mut buf));
}

/// Trims HTTP optional whitespace (spaces and tabs) from both ends.
#[inline]
pub(crate) fn trim_ows(s: &str) -> &str {
    let b = s.as_bytes();
    let is_ows = |c: &u8| *c == b' ' || *c == b'\t';
    let start = b.iter().position(|c| !is_ows(c)).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !is_ows(c)).map_or(start, |e| e + 1);
    // Spaces and tabs are ASCII, so both ends are char boundaries.
    s.get(start..end).unwrap_or_default()
}

/// `str::split_once` for an ASCII separator: a plain byte scan, much cheaper than the
/// general char searcher on the short values of trace headers.
#[inline]
pub(crate) fn split_once_byte(s: &str, sep: u8) -> Option<(&str, &str)> {
    let i = s.bytes().position(|c| c == sep)?;
    // `sep` is ASCII, so both sides start on char boundaries.
    Some((s.get(..i)?, s.get(i + 1..)?))
}

/// `str::split` for an ASCII separator (see [`split_once_byte`]).
#[inline]
pub(crate) fn split_byte(s: &str, sep: u8) -> impl Iterator<Item = &str> {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let r = rest?;
        match split_once_byte(r, sep) {
            Some((head, tail)) => {
                rest = Some(tail);
                Some(head)
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

/// A prefix of untrusted input, short enough to quote in an error message.
pub(crate) fn snippet(s: &str) -> String {
    const MAX: usize = 64;
    match s.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &s[..cut]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_matches_std_formatting() {
        for v in [
            0,
            1,
            -1,
            9,
            10,
            -10,
            42,
            i64::MAX,
            i64::MIN,
            1_700_000_000_000,
        ] {
            let mut s = String::new();
            put_i64(&mut s, v);
            assert_eq!(s, v.to_string());
        }
    }

    #[test]
    fn hex_round_trip_and_errors() {
        let mut s = String::new();
        put_hex(&mut s, &[0x0a, 0xf7, 0x00, 0xff]);
        assert_eq!(s, "0af700ff");
        assert_eq!(decode_lower_hex::<4>(&s), Ok([0x0a, 0xf7, 0x00, 0xff]));
        assert_eq!(
            decode_lower_hex::<2>("0A00"),
            Err(HexIdError::NotLowerHex {
                index: 1,
                found: 'A'
            })
        );
        assert_eq!(
            decode_lower_hex::<2>("abc"),
            Err(HexIdError::Length {
                found: 3,
                expected: 4
            })
        );
        assert_eq!(
            decode_lower_hex::<2>("aé0"),
            Err(HexIdError::NotLowerHex {
                index: 1,
                found: 'é'
            })
        );
    }

    #[test]
    fn snippet_cuts_long_input() {
        assert_eq!(snippet("abc"), "abc");
        let long = "x".repeat(100);
        assert_eq!(snippet(&long).len(), 67);
    }

    #[test]
    fn byte_splitters_match_std() {
        for s in ["", ",", "a", "a,,b", "a,", ",a", "é,ü,", "k=v,x=y=z"] {
            assert_eq!(
                split_byte(s, b',').collect::<Vec<_>>(),
                s.split(',').collect::<Vec<_>>(),
                "{s:?}"
            );
            assert_eq!(split_once_byte(s, b'='), s.split_once('='), "{s:?}");
        }
        assert_eq!(trim_ows(" \t a b\t "), "a b");
        assert_eq!(trim_ows(" \t "), "");
    }
}
