//! Owns the humane duration syntax used by the mapping cache's config: an integer
//! followed by one unit, `ms`, `s`, `m` or `h` (`250ms`, `300s`, `5m`, `1h`), or a bare
//! integer meaning seconds (YAML `ttl: 300`). [`deserialize`] / [`serialize`] plug into
//! `#[serde(with = "crate::ids::duration")]`; [`DurationError`] says what is wrong.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};

use crate::ids::hex::snippet;

/// What is wrong with a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Nothing given.
    #[error("duration is empty; expected e.g. 300s, 5m, 250ms or 1h")]
    Empty,
    /// No leading digits.
    #[error("duration {value:?} does not start with a number; expected e.g. 300s, 5m, 250ms or 1h")]
    NoNumber {
        /// The input (shortened).
        value: String,
    },
    /// Unknown or missing unit.
    #[error(
        "duration {value:?} has unit {unit:?}; expected ms, s, m or h (or a bare number of seconds)"
    )]
    Unit {
        /// The input (shortened).
        value: String,
        /// The unit found.
        unit: String,
    },
    /// The number does not fit.
    #[error("duration {value:?} is too large")]
    Overflow {
        /// The input (shortened).
        value: String,
    },
}

/// Parses `<integer><unit>` with unit `ms`, `s`, `m` or `h`, or a bare integer of seconds.
///
/// # Errors
/// [`DurationError`] naming the problem.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(DurationError::NoNumber { value: snippet(s) });
    }
    let (number, unit) = s.split_at(digits);
    let overflow = || DurationError::Overflow { value: snippet(s) };
    let n: u64 = number.parse().map_err(|_| overflow())?;
    let secs = |mult: u64| {
        n.checked_mul(mult)
            .map(Duration::from_secs)
            .ok_or_else(overflow)
    };
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "" | "s" => secs(1),
        "m" => secs(60),
        "h" => secs(3600),
        other => Err(DurationError::Unit {
            value: snippet(s),
            unit: snippet(other),
        }),
    }
}

/// The shortest exact form: `5m`, `90s`, `250ms`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let s = d.as_secs();
    match s {
        0 => "0s".to_owned(),
        s if s.is_multiple_of(3600) => format!("{}h", s / 3600),
        s if s.is_multiple_of(60) => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "a duration such as \"300s\", \"5m\", \"250ms\", \"1h\", or an integer of seconds",
        )
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
        Ok(Duration::from_secs(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
        u64::try_from(v)
            .map(Duration::from_secs)
            .map_err(|_| E::custom(format!("duration {v} is negative")))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        parse_duration(v).map_err(E::custom)
    }
}

/// Serde: reads a duration string or an integer of seconds.
///
/// # Errors
/// A serde error carrying the [`DurationError`] message.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    d.deserialize_any(DurationVisitor)
}

/// Serde: writes the [`format_duration`] form.
///
/// # Errors
/// Whatever the serializer reports.
pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_duration(*d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_table() {
        let cases: &[(&str, Result<u64, &str>)] = &[
            ("300s", Ok(300_000)),
            ("5m", Ok(300_000)),
            ("1h", Ok(3_600_000)),
            ("250ms", Ok(250)),
            ("42", Ok(42_000)),
            (" 7s ", Ok(7_000)),
            (
                "",
                Err("duration is empty; expected e.g. 300s, 5m, 250ms or 1h"),
            ),
            (
                "s",
                Err(
                    "duration \"s\" does not start with a number; expected e.g. 300s, 5m, 250ms or 1h",
                ),
            ),
            (
                "5 m",
                Err(
                    "duration \"5 m\" has unit \" m\"; expected ms, s, m or h (or a bare number of seconds)",
                ),
            ),
            (
                "1d",
                Err(
                    "duration \"1d\" has unit \"d\"; expected ms, s, m or h (or a bare number of seconds)",
                ),
            ),
            (
                "99999999999999999999s",
                Err("duration \"99999999999999999999s\" is too large"),
            ),
            (
                "18446744073709551615h",
                Err("duration \"18446744073709551615h\" is too large"),
            ),
        ];
        for (input, expected) in cases {
            let got = parse_duration(input)
                .map(|d| d.as_millis() as u64)
                .map_err(|e| e.to_string());
            assert_eq!(got, expected.map_err(str::to_owned), "{input:?}");
        }
    }

    #[test]
    fn format_is_shortest_exact() {
        for (ms, s) in [
            (300_000, "5m"),
            (90_000, "90s"),
            (250, "250ms"),
            (7_200_000, "2h"),
            (0, "0s"),
        ] {
            assert_eq!(format_duration(Duration::from_millis(ms)), s);
            assert_eq!(parse_duration(s), Ok(Duration::from_millis(ms)));
        }
    }
}
