//! Owns the OpenTelemetry / W3C id types: the 16-byte [`TraceId`] and the 8-byte
//! [`SpanId`], their lower-case hex forms, and [`HexIdError`], which says what is wrong
//! with a hex id (callers prefix it with the header and field, e.g.
//! "traceparent: trace-id is all zeros").

use std::fmt;
use std::hash::{Hash, Hasher};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ids::hex::{decode_lower_hex, put_hex};

/// What is wrong with a hex-encoded id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HexIdError {
    /// Wrong number of characters.
    #[error("is {found} characters long, expected {expected}")]
    Length {
        /// Characters found.
        found: usize,
        /// Characters required.
        expected: usize,
    },
    /// A character outside `0-9a-f` (upper case is invalid too).
    #[error("has {found:?} at index {index}, expected lower-case hex (0-9, a-f)")]
    NotLowerHex {
        /// Byte index of the character.
        index: usize,
        /// The character.
        found: char,
    },
    /// Every byte is zero, which W3C and B3 forbid.
    #[error("is all zeros")]
    AllZeros,
}

/// A 16-byte trace id, never all-zero when obtained from a parser.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct TraceId(pub [u8; 16]);

impl TraceId {
    /// Parses exactly 32 lower-case hex characters; rejects all zeros.
    ///
    /// # Errors
    /// [`HexIdError`] naming the length, the bad character, or all zeros.
    pub fn from_hex(s: &str) -> Result<Self, HexIdError> {
        let id = Self(decode_lower_hex::<16>(s)?);
        if id.is_zero() {
            return Err(HexIdError::AllZeros);
        }
        Ok(id)
    }

    /// True when every byte is zero (invalid in W3C).
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 16]
    }

    /// The id as a big-endian `u128`.
    pub fn to_u128(self) -> u128 {
        u128::from_be_bytes(self.0)
    }

    /// The id from a big-endian `u128`.
    pub fn from_u128(v: u128) -> Self {
        Self(v.to_be_bytes())
    }

    /// Appends the 32-character lower-case hex form.
    pub fn write_hex(&self, out: &mut String) {
        put_hex(out, &self.0);
    }

    /// The 32-character lower-case hex form.
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(32);
        self.write_hex(&mut s);
        s
    }

    fn halves(&self) -> (u64, u64) {
        let v = self.to_u128();
        // Truncation intended: split into high and low 64-bit words.
        ((v >> 64) as u64, v as u64)
    }
}

impl Hash for TraceId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let (hi, lo) = self.halves();
        state.write_u64(hi);
        state.write_u64(lo);
    }
}

/// An 8-byte span id, never all-zero when obtained from a parser.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct SpanId(pub [u8; 8]);

impl SpanId {
    /// Parses exactly 16 lower-case hex characters; rejects all zeros.
    ///
    /// # Errors
    /// [`HexIdError`] naming the length, the bad character, or all zeros.
    pub fn from_hex(s: &str) -> Result<Self, HexIdError> {
        let id = Self(decode_lower_hex::<8>(s)?);
        if id.is_zero() {
            return Err(HexIdError::AllZeros);
        }
        Ok(id)
    }

    /// True when every byte is zero (invalid in W3C).
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 8]
    }

    /// The id as a big-endian `u64`.
    pub fn to_u64(self) -> u64 {
        u64::from_be_bytes(self.0)
    }

    /// The id from a big-endian `u64`.
    pub fn from_u64(v: u64) -> Self {
        Self(v.to_be_bytes())
    }

    /// The id read as a big-endian `i64` (Pinpoint's representation).
    pub fn to_i64(self) -> i64 {
        i64::from_be_bytes(self.0)
    }

    /// The id from a big-endian `i64`.
    pub fn from_i64(v: i64) -> Self {
        Self(v.to_be_bytes())
    }

    /// Appends the 16-character lower-case hex form.
    pub fn write_hex(&self, out: &mut String) {
        put_hex(out, &self.0);
    }

    /// The 16-character lower-case hex form.
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(16);
        self.write_hex(&mut s);
        s
    }
}

impl Hash for SpanId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.to_u64());
    }
}

macro_rules! hex_id_traits {
    ($ty:ident, $len:expr) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut s = String::with_capacity($len);
                self.write_hex(&mut s);
                f.write_str(&s)
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($ty), self)
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
                $ty::from_hex(&s)
                    .map_err(|e| serde::de::Error::custom(format!("{} {}", stringify!($ty), e)))
            }
        }
    };
}

hex_id_traits!(TraceId, 32);
hex_id_traits!(SpanId, 16);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_id_hex_forms() {
        let cases: &[(&str, Result<&str, HexIdError>)] = &[
            (
                "0af7651916cd43dd8448eb211c80319c",
                Ok("0af7651916cd43dd8448eb211c80319c"),
            ),
            (
                "00000000000000000000000000000000",
                Err(HexIdError::AllZeros),
            ),
            (
                "0AF7651916CD43DD8448EB211C80319C",
                Err(HexIdError::NotLowerHex {
                    index: 1,
                    found: 'A',
                }),
            ),
            (
                "0af7651916cd43dd8448eb211c80319",
                Err(HexIdError::Length {
                    found: 31,
                    expected: 32,
                }),
            ),
        ];
        for (input, expected) in cases {
            let got = TraceId::from_hex(input).map(|t| t.to_hex());
            assert_eq!(got.as_deref(), expected.as_ref().map(|s| *s), "{input}");
        }
    }

    #[test]
    fn span_id_integer_forms() {
        let id = SpanId::from_hex("b7ad6b7169203331").unwrap_or_default();
        assert_eq!(id.to_u64(), 0xb7ad_6b71_6920_3331);
        assert_eq!(SpanId::from_i64(id.to_i64()), id);
        assert_eq!(
            SpanId::from_hex("0000000000000000"),
            Err(HexIdError::AllZeros)
        );
        assert_eq!(
            SpanId::from_hex("b7ad6b716920333").map_err(|e| e.to_string()),
            Err("is 15 characters long, expected 16".to_owned())
        );
    }

    #[test]
    fn ids_serialize_as_hex_strings() {
        let t = TraceId::from_u128(0x0af7_6519_16cd_43dd_8448_eb21_1c80_319c);
        let json = serde_json::to_string(&t).unwrap_or_default();
        assert_eq!(json, "\"0af7651916cd43dd8448eb211c80319c\"");
        let back: Result<TraceId, _> = serde_json::from_str(&json);
        assert_eq!(back.ok(), Some(t));
        let bad: Result<SpanId, _> = serde_json::from_str("\"0000000000000000\"");
        assert!(bad.is_err());
    }
}
