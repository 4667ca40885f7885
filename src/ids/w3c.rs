//! Owns the W3C Trace Context (Level 2) `traceparent` header: the allocation-free
//! parser [`TraceParent::parse`], the formatter (always version `00`), and
//! [`TraceparentError`], one variant per way the header can be invalid.
//!
//! Rules: `00-<32 hex>-<16 hex>-<2 hex>`, lower-case, exactly 55 characters for version
//! `00`; version `ff` is invalid; all-zero ids are invalid; a higher version is parsed by
//! position and may continue after index 55 only with `-`. Any of these errors means "new
//! trace" to a W3C participant, and its tracestate is dropped with it.

use crate::ids::hex::{AsciiSink, char_at, hex_into, lower_hex_value};
use crate::ids::model::{HexIdError, SpanId, TraceId};

/// trace-flags bit: sampled.
pub const FLAG_SAMPLED: u8 = 0x01;
/// trace-flags bit (Level 2): the trace id's right-most 7 bytes are random.
pub const FLAG_RANDOM: u8 = 0x02;
/// Length of a version-00 traceparent.
pub const TRACEPARENT_LEN: usize = 55;

/// What is wrong with a traceparent header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TraceparentError {
    /// The value is empty.
    #[error("traceparent: is empty")]
    Empty,
    /// Shorter than 55 characters.
    #[error("traceparent: is {len} characters long, expected 55")]
    TooShort {
        /// Length found.
        len: usize,
    },
    /// Version is not two lower-case hex digits.
    #[error("traceparent: version starts with {found:?}, expected 2 lower-case hex characters")]
    Version {
        /// The offending character.
        found: char,
    },
    /// Version `ff` is forbidden.
    #[error("traceparent: version ff is invalid")]
    VersionFf,
    /// A field separator is not `-`.
    #[error("traceparent: expected '-' at index {index}, found {found:?}")]
    Separator {
        /// Index of the separator.
        index: usize,
        /// What was there.
        found: char,
    },
    /// The trace-id field is invalid.
    #[error("traceparent: trace-id {0}")]
    TraceId(HexIdError),
    /// The parent-id field is invalid.
    #[error("traceparent: parent-id {0}")]
    ParentId(HexIdError),
    /// The trace-flags field is not two lower-case hex digits.
    #[error("traceparent: trace-flags has {found:?}, expected 2 lower-case hex characters")]
    Flags {
        /// The offending character.
        found: char,
    },
    /// Version 00 followed by more data.
    #[error("traceparent: version 00 must be exactly 55 characters, found {len} (trailing data)")]
    TrailingData {
        /// Length found.
        len: usize,
    },
    /// A future version continues after index 55 without `-`.
    #[error(
        "traceparent: version {version:02x} continues after index 55 with {found:?}, expected '-'"
    )]
    FutureVersionSuffix {
        /// The version.
        version: u8,
        /// The character at index 55.
        found: char,
    },
}

/// A parsed traceparent. `Copy`, no heap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// Version read from the header (output is always version 00).
    pub version: u8,
    /// The trace id (never all zeros).
    pub trace_id: TraceId,
    /// The caller's span id (never all zeros).
    pub parent_id: SpanId,
    /// trace-flags as received.
    pub flags: u8,
}

impl TraceParent {
    /// A version-00 traceparent.
    pub fn new(trace_id: TraceId, parent_id: SpanId, sampled: bool) -> Self {
        Self {
            version: 0,
            trace_id,
            parent_id,
            flags: if sampled { FLAG_SAMPLED } else { 0 },
        }
    }

    /// Parses one traceparent value (no surrounding whitespace).
    ///
    /// # Errors
    /// [`TraceparentError`] for each invalid case of W3C Trace Context Level 2.
    pub fn parse(s: &str) -> Result<Self, TraceparentError> {
        let b = s.as_bytes();
        if b.is_empty() {
            return Err(TraceparentError::Empty);
        }
        if b.len() < 2 {
            return Err(TraceparentError::TooShort { len: b.len() });
        }
        let version = hex_byte(s, 0).map_err(|found| TraceparentError::Version { found })?;
        if version == 0xff {
            return Err(TraceparentError::VersionFf);
        }
        if b.len() < TRACEPARENT_LEN {
            return Err(TraceparentError::TooShort { len: b.len() });
        }
        if b.len() > TRACEPARENT_LEN {
            if version == 0 {
                return Err(TraceparentError::TrailingData { len: b.len() });
            }
            if b[TRACEPARENT_LEN] != b'-' {
                return Err(TraceparentError::FutureVersionSuffix {
                    version,
                    found: char_at(s, TRACEPARENT_LEN),
                });
            }
        }
        for index in [2, 35, 52] {
            if b[index] != b'-' {
                return Err(TraceparentError::Separator {
                    index,
                    found: char_at(s, index),
                });
            }
        }
        // The separators are ASCII, so these ranges are char boundaries.
        let field = |from: usize, to: usize| s.get(from..to).unwrap_or_default();
        let trace_id =
            TraceId::from_hex(field(3, 35)).map_err(|e| TraceparentError::TraceId(shift(e, 3)))?;
        let parent_id = SpanId::from_hex(field(36, 52))
            .map_err(|e| TraceparentError::ParentId(shift(e, 36)))?;
        let flags = hex_byte(s, 53).map_err(|found| TraceparentError::Flags { found })?;
        Ok(Self {
            version,
            trace_id,
            parent_id,
            flags,
        })
    }

    /// True when the sampled flag is set.
    pub fn sampled(&self) -> bool {
        self.flags & FLAG_SAMPLED != 0
    }

    /// Appends the version-00 form; flag bits other than sampled and random are cleared.
    pub fn write(&self, out: &mut String) {
        self.write_to(out);
    }

    /// Appends the version-00 form to a byte buffer.
    pub fn write_bytes(&self, out: &mut Vec<u8>) {
        self.write_to(out);
    }

    pub(crate) fn write_to(&self, out: &mut impl AsciiSink) {
        let mut buf = [b'-'; TRACEPARENT_LEN];
        buf[..2].copy_from_slice(b"00");
        hex_into(&self.trace_id.0, &mut buf[3..35]);
        hex_into(&self.parent_id.0, &mut buf[36..52]);
        hex_into(&[self.flags & (FLAG_SAMPLED | FLAG_RANDOM)], &mut buf[53..]);
        out.put(&buf);
    }

    /// The version-00 form.
    pub fn to_header(&self) -> String {
        let mut s = String::with_capacity(TRACEPARENT_LEN);
        self.write(&mut s);
        s
    }
}

/// Makes a field-relative error index header-relative.
fn shift(e: HexIdError, by: usize) -> HexIdError {
    match e {
        HexIdError::NotLowerHex { index, found } => HexIdError::NotLowerHex {
            index: index + by,
            found,
        },
        other => other,
    }
}

/// Two lower-case hex digits at `pos`; on failure, the first offending character.
fn hex_byte(s: &str, pos: usize) -> Result<u8, char> {
    let b = s.as_bytes();
    let digit = |i: usize| {
        b.get(i)
            .copied()
            .and_then(lower_hex_value)
            .ok_or_else(|| if i < b.len() { char_at(s, i) } else { '\0' })
    };
    Ok((digit(pos)? << 4) | digit(pos + 1)?)
}

#[cfg(test)]
mod tests;
