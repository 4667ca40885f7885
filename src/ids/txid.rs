//! Owns Pinpoint's transaction id `agentId^agentStartTime^sequence`: the inline,
//! allocation-free [`AgentId`] and [`TransactionId`] types, their strict parser, the
//! canonical formatter, and [`TxidError`].
//!
//! Rules (ids.md section 1): agentId matches `[a-zA-Z0-9._-]{1,24}`; start and sequence
//! are signed decimal `i64` (an optional sign and leading zeros are accepted on input, as
//! Java's `Long.parseLong` does; output is always canonical: no leading zeros, no `+`).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ids::hex::{AsciiSink, char_at, i64_decimal, snippet, split_once_byte};

/// What is wrong with a transaction id or agent id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxidError {
    /// Nothing at all.
    #[error("transaction id is empty")]
    Empty,
    /// Not three `^`-separated parts.
    #[error(
        "transaction id {value:?} has {found} '^'-separated parts, expected 3 (agentId^agentStartTime^sequence)"
    )]
    Parts {
        /// The input (shortened).
        value: String,
        /// Number of parts found.
        found: usize,
    },
    /// Empty agent id.
    #[error("agentId is empty")]
    AgentIdEmpty,
    /// Agent id over 24 characters.
    #[error("agentId {value:?} is {len} characters long, at most 24 are allowed")]
    AgentIdTooLong {
        /// The agent id (shortened).
        value: String,
        /// Its length.
        len: usize,
    },
    /// Agent id with a character outside `[a-zA-Z0-9._-]`.
    #[error("agentId {value:?} has {found:?} at index {index}; allowed are a-z A-Z 0-9 . _ -")]
    AgentIdChar {
        /// The agent id (shortened).
        value: String,
        /// The character.
        found: char,
        /// Its byte index.
        index: usize,
    },
    /// agentStartTime is not a decimal i64.
    #[error("transaction id agentStartTime {value:?} is not a decimal i64")]
    Start {
        /// The part (shortened).
        value: String,
    },
    /// sequence is not a decimal i64.
    #[error("transaction id sequence {value:?} is not a decimal i64")]
    Sequence {
        /// The part (shortened).
        value: String,
    },
}

/// A Pinpoint agent id, stored inline (at most 24 ASCII characters), so it is `Copy`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgentId {
    len: u8,
    buf: [u8; AgentId::MAX_LEN],
}

impl AgentId {
    /// Longest agent id Pinpoint accepts.
    pub const MAX_LEN: usize = 24;

    /// Validates `[a-zA-Z0-9._-]{1,24}`.
    ///
    /// # Errors
    /// [`TxidError::AgentIdEmpty`], [`TxidError::AgentIdTooLong`] or
    /// [`TxidError::AgentIdChar`].
    pub fn new(s: &str) -> Result<Self, TxidError> {
        let bytes = s.as_bytes();
        if bytes.is_empty() {
            return Err(TxidError::AgentIdEmpty);
        }
        if let Some(index) = bytes.iter().position(|&b| !is_id_char(b)) {
            return Err(TxidError::AgentIdChar {
                value: snippet(s),
                found: char_at(s, index),
                index,
            });
        }
        if bytes.len() > Self::MAX_LEN {
            return Err(TxidError::AgentIdTooLong {
                value: snippet(s),
                len: bytes.len(),
            });
        }
        let mut buf = [0u8; Self::MAX_LEN];
        buf[..bytes.len()].copy_from_slice(bytes);
        Ok(Self {
            // At most 24, checked above.
            len: bytes.len() as u8,
            buf,
        })
    }

    /// Builds an agent id for a `const` item, where an invalid `s` fails compilation
    /// (never call it at run time with input).
    pub(crate) const fn from_const(s: &str) -> Self {
        let b = s.as_bytes();
        assert!(
            !b.is_empty() && b.len() <= Self::MAX_LEN,
            "agentId must have 1 to 24 characters"
        );
        let mut buf = [0u8; Self::MAX_LEN];
        let mut i = 0;
        while i < b.len() {
            assert!(is_id_char(b[i]), "agentId allows a-z A-Z 0-9 . _ -");
            buf[i] = b[i];
            i += 1;
        }
        Self {
            // At most 24, asserted above.
            len: b.len() as u8,
            buf,
        }
    }

    /// The agent id text.
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever stored, so this never falls back.
        std::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or_default()
    }
}

/// True for the characters Pinpoint allows in agent ids and application names.
pub(crate) const fn is_id_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AgentId({:?})", self.as_str())
    }
}

/// A Pinpoint transaction id. `Copy`, no heap.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransactionId {
    /// The agent that started the transaction (or the bridge's marker).
    pub agent_id: AgentId,
    /// `agentStartTime`, epoch ms for real agents.
    pub agent_start_time: i64,
    /// `sequence`.
    pub sequence: i64,
}

impl TransactionId {
    /// Longest canonical form: 24 + 1 + 20 + 1 + 20 characters.
    pub const MAX_LEN: usize = 66;

    /// Parses `agentId^agentStartTime^sequence`.
    ///
    /// # Errors
    /// [`TxidError`] naming the part that is wrong.
    pub fn parse(s: &str) -> Result<Self, TxidError> {
        if s.is_empty() {
            return Err(TxidError::Empty);
        }
        let parts = split_once_byte(s, b'^')
            .and_then(|(agent, rest)| {
                split_once_byte(rest, b'^').map(|(start, seq)| (agent, start, seq))
            })
            .filter(|(_, _, seq)| !seq.bytes().any(|b| b == b'^'));
        let Some((agent, start, seq)) = parts else {
            return Err(TxidError::Parts {
                value: snippet(s),
                found: s.split('^').count(),
            });
        };
        let agent_id = AgentId::new(agent)?;
        let agent_start_time = start.parse::<i64>().map_err(|_| TxidError::Start {
            value: snippet(start),
        })?;
        let sequence = seq.parse::<i64>().map_err(|_| TxidError::Sequence {
            value: snippet(seq),
        })?;
        Ok(Self {
            agent_id,
            agent_start_time,
            sequence,
        })
    }

    /// Appends the canonical form.
    pub fn write(&self, out: &mut String) {
        self.write_to(out);
    }

    /// Appends the canonical form to a byte buffer.
    pub fn write_bytes(&self, out: &mut Vec<u8>) {
        self.write_to(out);
    }

    pub(crate) fn write_to(&self, out: &mut impl AsciiSink) {
        let mut buf = [0u8; Self::MAX_LEN];
        let mut len = 0;
        self.for_each_canonical_part(|part| {
            buf[len..len + part.len()].copy_from_slice(part);
            len += part.len();
        });
        out.put(&buf[..len]);
    }

    /// Feeds the canonical form's UTF-8 bytes to `sink` without allocating.
    pub(crate) fn for_each_canonical_part(&self, mut sink: impl FnMut(&[u8])) {
        let mut buf = [0u8; 20];
        sink(self.agent_id.as_str().as_bytes());
        sink(b"^");
        sink(i64_decimal(self.agent_start_time, &mut buf));
        sink(b"^");
        sink(i64_decimal(self.sequence, &mut buf));
    }
}

impl fmt::Display for TransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(Self::MAX_LEN);
        self.write(&mut s);
        f.write_str(&s)
    }
}

impl fmt::Debug for TransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TransactionId({self})")
    }
}

impl std::str::FromStr for TransactionId {
    type Err = TxidError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for TransactionId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TransactionId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txid_parse_table() {
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("agentA^1700000000000^42", Ok("agentA^1700000000000^42")),
            (
                "otel^790211418057950173^-8914616934935285348",
                Ok("otel^790211418057950173^-8914616934935285348"),
            ),
            ("a.b_c-D9^-1^0", Ok("a.b_c-D9^-1^0")),
            // Accepted like Long.parseLong, written canonically.
            ("agentA^+0017^007", Ok("agentA^17^7")),
            ("", Err("transaction id is empty")),
            (
                "agentA^1",
                Err(
                    "transaction id \"agentA^1\" has 2 '^'-separated parts, expected 3 (agentId^agentStartTime^sequence)",
                ),
            ),
            (
                "agentA^1^2^3",
                Err(
                    "transaction id \"agentA^1^2^3\" has 4 '^'-separated parts, expected 3 (agentId^agentStartTime^sequence)",
                ),
            ),
            ("^1^2", Err("agentId is empty")),
            (
                "agent A^1^2",
                Err("agentId \"agent A\" has ' ' at index 5; allowed are a-z A-Z 0-9 . _ -"),
            ),
            (
                "abcdefghijklmnopqrstuvwxy^1^2",
                Err(
                    "agentId \"abcdefghijklmnopqrstuvwxy\" is 25 characters long, at most 24 are allowed",
                ),
            ),
            (
                "agentA^x^2",
                Err("transaction id agentStartTime \"x\" is not a decimal i64"),
            ),
            (
                "agentA^1^",
                Err("transaction id sequence \"\" is not a decimal i64"),
            ),
            (
                "agentA^1^9223372036854775808",
                Err("transaction id sequence \"9223372036854775808\" is not a decimal i64"),
            ),
        ];
        for (input, expected) in cases {
            let got = TransactionId::parse(input)
                .map(|t| t.to_string())
                .map_err(|e| e.to_string());
            let expected = expected.map(str::to_owned).map_err(str::to_owned);
            assert_eq!(got, expected, "input {input:?}");
        }
    }

    #[test]
    fn canonical_parts_match_display() {
        let tx = TransactionId::parse("agentA^-5^9223372036854775807").expect("valid");
        let mut bytes = Vec::new();
        tx.for_each_canonical_part(|p| bytes.extend_from_slice(p));
        assert_eq!(String::from_utf8(bytes).expect("ascii"), tx.to_string());
    }

    #[test]
    fn txid_serde_is_a_string() {
        let tx = TransactionId::parse("agentA^1^2").expect("valid");
        let json = serde_json::to_string(&tx).expect("serialize");
        assert_eq!(json, "\"agentA^1^2\"");
        let back: TransactionId = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, tx);
    }
}
