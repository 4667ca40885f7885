//! Owns the small text codecs shared by the header codecs: lower-case hex and signed
//! decimal, written into caller-owned buffers so hot paths do not allocate.

use crate::ids::model::HexIdError;

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Value of one lower-case hex digit.
#[inline]
pub(crate) fn lower_hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
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
    for (i, slot) in out.iter_mut().enumerate() {
        let hi = digit_at(s, 2 * i)?;
        let lo = digit_at(s, 2 * i + 1)?;
        *slot = (hi << 4) | lo;
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

/// Appends ASCII bytes produced by this module's encoders.
#[inline]
pub(crate) fn push_ascii(out: &mut String, ascii: &[u8]) {
    // Every caller passes ASCII, so the fallback never triggers.
    out.push_str(std::str::from_utf8(ascii).unwrap_or_default());
}

/// Appends the lower-case hex form of `bytes` (at most 32 bytes per call).
#[inline]
pub(crate) fn push_hex(out: &mut String, bytes: &[u8]) {
    let mut buf = [0u8; 64];
    for chunk in bytes.chunks(32) {
        push_ascii(out, hex_into(chunk, &mut buf));
    }
}

/// Writes the decimal form of `v` into `buf` and returns the used tail.
#[inline]
pub(crate) fn i64_decimal(v: i64, buf: &mut [u8; 20]) -> &[u8] {
    let mut n = v.unsigned_abs();
    let mut pos = buf.len();
    loop {
        pos -= 1;
        // n % 10 < 10, so the cast cannot truncate.
        buf[pos] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        pos -= 1;
        buf[pos] = b'-';
    }
    &buf[pos..]
}

/// Appends the decimal form of `v`.
#[inline]
pub(crate) fn push_i64(out: &mut String, v: i64) {
    let mut buf = [0u8; 20];
    push_ascii(out, i64_decimal(v, &mut buf));
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
            push_i64(&mut s, v);
            assert_eq!(s, v.to_string());
        }
    }

    #[test]
    fn hex_round_trip_and_errors() {
        let mut s = String::new();
        push_hex(&mut s, &[0x0a, 0xf7, 0x00, 0xff]);
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
}
