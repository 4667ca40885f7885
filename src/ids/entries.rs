//! Owns the two tracestate entries the bridge reads and writes (ids.md section 4):
//!
//! - Pinpoint's own `pp=svc:<serviceName>;app:<applicationName>;type:<serviceTypeCode>`
//!   ([`PpEntry`]), read and written exactly in that form;
//! - the bridge's `ppb=tx:<txid>;ps:<i64>;sp:<i64>` ([`BridgeEntry`]): the Pinpoint-born
//!   txid, the Pinpoint spanId of the sending service's segment (`ps`, the callee's future
//!   parentSpanId) and the Pinpoint spanId the sender assigned to the callee (`sp`, the
//!   value of `Pinpoint-SpanID`).
//!
//! `sp` is this module's addition to the suggested `tx`/`ps` form. OTel SDKs copy
//! tracestate unchanged to every further hop, so a `ps` written by a translating hop is
//! stale one hop later; `sp` lets a reader check that the entry was written for *this*
//! hop: it applies only when `mix(parent-id) == sp` ([`BridgeEntry::parent_span_for`]).
//! `tx` is checked the same way: it applies only when it maps to the trace id at hand.
//!
//! Readers ignore unknown fields in both entries (forward compatibility); a field given
//! twice, a field without `:` or a bad number is an [`EntryError`].

use crate::ids::hex::{AsciiSink, char_at, put_i64, snippet, split_byte, split_once_byte};
use crate::ids::mapping::{entry_span_id, txid_to_trace_id};
use crate::ids::model::{SpanId, TraceId};
use crate::ids::tracestate::MAX_VALUE_LEN;
use crate::ids::txid::{AgentId, TransactionId, TxidError};

/// What is wrong with a `pp` or `ppb` entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// A `;`-separated field without `:`.
    #[error("tracestate {entry}: field {field:?} has no ':'")]
    FieldWithoutColon {
        /// `pp` or `ppb`.
        entry: &'static str,
        /// The field (shortened).
        field: String,
    },
    /// The same field twice.
    #[error("tracestate {entry}: field {key:?} appears more than once")]
    DuplicateField {
        /// `pp` or `ppb`.
        entry: &'static str,
        /// The field key.
        key: &'static str,
    },
    /// A required field is absent or empty.
    #[error("tracestate {entry}: field {key:?} is missing")]
    Missing {
        /// `pp` or `ppb`.
        entry: &'static str,
        /// The field key.
        key: &'static str,
    },
    /// A numeric field does not parse.
    #[error("tracestate {entry}: field {key:?} value {value:?} is not a decimal {kind}")]
    NotANumber {
        /// `pp` or `ppb`.
        entry: &'static str,
        /// The field key.
        key: &'static str,
        /// The value (shortened).
        value: String,
        /// `i32` or `i64`.
        kind: &'static str,
    },
    /// `-1` (Pinpoint's "none") where a span id is required.
    #[error("tracestate ppb: field {key:?} is -1, which means \"no span\" in Pinpoint")]
    NoneSpanId {
        /// The field key.
        key: &'static str,
    },
    /// The `tx` field is not a valid transaction id.
    #[error("tracestate ppb: field \"tx\": {0}")]
    Txid(TxidError),
    /// A value to write contains a character that cannot appear in the entry.
    #[error(
        "tracestate {entry}: field {key:?} has {found:?}, which cannot be written (printable ASCII without , = ;)"
    )]
    BadChar {
        /// `pp` or `ppb`.
        entry: &'static str,
        /// The field key.
        key: &'static str,
        /// The character.
        found: char,
    },
    /// The entry would exceed the tracestate value limit.
    #[error("tracestate {entry}: value would be {len} characters long, at most 256 are allowed")]
    TooLong {
        /// `pp` or `ppb`.
        entry: &'static str,
        /// Its length.
        len: usize,
    },
}

/// The `;`-separated `key:value` fields of an entry value.
fn fields<'a>(
    entry: &'static str,
    value: &'a str,
) -> impl Iterator<Item = Result<(&'a str, &'a str), EntryError>> {
    split_byte(value, b';').map(move |field| {
        split_once_byte(field, b':').ok_or_else(|| EntryError::FieldWithoutColon {
            entry,
            field: snippet(field),
        })
    })
}

fn set_once<'a>(
    slot: &mut Option<&'a str>,
    v: &'a str,
    entry: &'static str,
    key: &'static str,
) -> Result<(), EntryError> {
    if slot.replace(v).is_some() {
        return Err(EntryError::DuplicateField { entry, key });
    }
    Ok(())
}

/// Pinpoint's `pp` entry: the sending application as Pinpoint knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PpEntry<'a> {
    /// `svc` (Pinpoint 3.1 service name); empty when unknown.
    pub service_name: &'a str,
    /// `app`: the application name (never empty).
    pub application_name: &'a str,
    /// `type`: the application's service type code.
    pub service_type: i32,
}

impl<'a> PpEntry<'a> {
    /// Entry label in error messages.
    const ENTRY: &'static str = "pp";

    /// Parses the value of a `pp` entry. `app` and `type` are required, `svc` may be
    /// absent or empty, fields may come in any order, unknown fields are ignored.
    ///
    /// # Errors
    /// [`EntryError`] naming the field.
    pub fn parse(value: &'a str) -> Result<Self, EntryError> {
        let (mut svc, mut app, mut ty) = (None, None, None);
        for field in fields(Self::ENTRY, value) {
            let (k, v) = field?;
            match k {
                "svc" => set_once(&mut svc, v, Self::ENTRY, "svc")?,
                "app" => set_once(&mut app, v, Self::ENTRY, "app")?,
                "type" => set_once(&mut ty, v, Self::ENTRY, "type")?,
                _ => {}
            }
        }
        let application_name = app.filter(|a| !a.is_empty()).ok_or(EntryError::Missing {
            entry: Self::ENTRY,
            key: "app",
        })?;
        let ty = ty.ok_or(EntryError::Missing {
            entry: Self::ENTRY,
            key: "type",
        })?;
        let service_type = ty.parse::<i32>().map_err(|_| EntryError::NotANumber {
            entry: Self::ENTRY,
            key: "type",
            value: snippet(ty),
            kind: "i32",
        })?;
        Ok(Self {
            service_name: svc.unwrap_or(""),
            application_name,
            service_type,
        })
    }

    /// Checks that the entry can be written: no `,` `=` `;`, printable ASCII, non-empty
    /// application, at most 256 characters in all.
    ///
    /// # Errors
    /// [`EntryError::BadChar`], [`EntryError::Missing`] or [`EntryError::TooLong`].
    pub fn validate(&self) -> Result<(), EntryError> {
        if self.application_name.is_empty() {
            return Err(EntryError::Missing {
                entry: Self::ENTRY,
                key: "app",
            });
        }
        for (key, text) in [("svc", self.service_name), ("app", self.application_name)] {
            if let Some(i) = text
                .bytes()
                .position(|b| !(0x21..=0x7e).contains(&b) || matches!(b, b',' | b'=' | b';'))
            {
                return Err(EntryError::BadChar {
                    entry: Self::ENTRY,
                    key,
                    found: char_at(text, i),
                });
            }
        }
        let len = self.written_len();
        if len > MAX_VALUE_LEN {
            return Err(EntryError::TooLong {
                entry: Self::ENTRY,
                len,
            });
        }
        Ok(())
    }

    fn written_len(&self) -> usize {
        let mut digits = [0u8; 20];
        "svc:;app:;type:".len()
            + self.service_name.len()
            + self.application_name.len()
            + crate::ids::hex::i64_decimal(i64::from(self.service_type), &mut digits).len()
    }

    /// Appends the entry value `svc:..;app:..;type:..` after validating it.
    ///
    /// # Errors
    /// See [`PpEntry::validate`]; nothing is written then.
    pub fn write(&self, out: &mut String) -> Result<(), EntryError> {
        self.validate()?;
        self.write_validated(out);
        Ok(())
    }

    /// Appends the entry value to a byte buffer after validating it.
    ///
    /// # Errors
    /// See [`PpEntry::validate`]; nothing is written then.
    pub fn write_bytes(&self, out: &mut Vec<u8>) -> Result<(), EntryError> {
        self.validate()?;
        self.write_validated(out);
        Ok(())
    }

    /// Writes an entry that passed [`PpEntry::validate`] (so its text is ASCII).
    pub(crate) fn write_validated(&self, out: &mut impl AsciiSink) {
        out.put(b"svc:");
        out.put(self.service_name.as_bytes());
        out.put(b";app:");
        out.put(self.application_name.as_bytes());
        out.put(b";type:");
        put_i64(out, i64::from(self.service_type));
    }
}

/// The bridge's `ppb` entry. `Copy`, no heap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BridgeEntry {
    /// `tx`: the original (Pinpoint-born) transaction id.
    pub txid: Option<TransactionId>,
    /// `ps`: Pinpoint spanId of the sending segment (the callee's parentSpanId); `-1`
    /// says the callee is a root (written by a proxy ingress that starts a trace).
    pub parent_span_id: Option<i64>,
    /// `sp`: Pinpoint spanId the sender assigned to the callee (`Pinpoint-SpanID`).
    pub span_id: Option<i64>,
}

impl BridgeEntry {
    const ENTRY: &'static str = "ppb";

    /// Parses the value of a `ppb` entry; every field is optional.
    ///
    /// # Errors
    /// [`EntryError`] naming the field.
    pub fn parse(value: &str) -> Result<Self, EntryError> {
        let (mut tx, mut ps, mut sp) = (None, None, None);
        for field in fields(Self::ENTRY, value) {
            let (k, v) = field?;
            match k {
                "tx" => set_once(&mut tx, v, Self::ENTRY, "tx")?,
                "ps" => set_once(&mut ps, v, Self::ENTRY, "ps")?,
                "sp" => set_once(&mut sp, v, Self::ENTRY, "sp")?,
                _ => {}
            }
        }
        let span = |key: &'static str, v: Option<&str>| -> Result<Option<i64>, EntryError> {
            let Some(v) = v else { return Ok(None) };
            match v.parse::<i64>() {
                // `ps:-1` says the callee is a root (its parentSpanId is Pinpoint's
                // "none"); only `sp`, a span the callee gets, can never be -1.
                Ok(-1) if key == "sp" => Err(EntryError::NoneSpanId { key }),
                Ok(n) => Ok(Some(n)),
                Err(_) => Err(EntryError::NotANumber {
                    entry: Self::ENTRY,
                    key,
                    value: snippet(v),
                    kind: "i64",
                }),
            }
        };
        Ok(Self {
            txid: tx
                .map(TransactionId::parse)
                .transpose()
                .map_err(EntryError::Txid)?,
            parent_span_id: span("ps", ps)?,
            span_id: span("sp", sp)?,
        })
    }

    /// True when no field is set (nothing to write).
    pub fn is_empty(&self) -> bool {
        self.txid.is_none() && self.parent_span_id.is_none() && self.span_id.is_none()
    }

    /// Appends the entry value, fields in the order `tx`, `ps`, `sp`. Every field's
    /// alphabet is valid in tracestate and the longest value is 116 characters.
    pub fn write(&self, out: &mut String) {
        self.write_to(out);
    }

    /// Appends the entry value to a byte buffer.
    pub fn write_bytes(&self, out: &mut Vec<u8>) {
        self.write_to(out);
    }

    pub(crate) fn write_to(&self, out: &mut impl AsciiSink) {
        let mut sep: &[u8] = b"";
        if let Some(tx) = &self.txid {
            out.put(b"tx:");
            tx.write_to(out);
            sep = b";";
        }
        if let Some(ps) = self.parent_span_id {
            out.put(sep);
            out.put(b"ps:");
            put_i64(out, ps);
            sep = b";";
        }
        if let Some(sp) = self.span_id {
            out.put(sep);
            out.put(b"sp:");
            put_i64(out, sp);
        }
    }

    /// True when this entry was written for the hop whose traceparent parent-id is
    /// `parent_id`, i.e. `sp == mix(parent_id)`.
    pub fn is_for_hop(&self, parent_id: SpanId) -> bool {
        self.span_id == Some(entry_span_id(parent_id))
    }

    /// The callee's parentSpanId (ids.md section 5, step 1) for a span whose remote
    /// parent is `parent_id`: `ps` when `sp` confirms the entry belongs to this hop, or
    /// when `sp` is absent (an entry written without it cannot be checked and is
    /// trusted, as ids.md section 5 says). `None` when `sp` names another hop.
    pub fn parent_span_for(&self, parent_id: SpanId) -> Option<i64> {
        match self.span_id {
            Some(_) if !self.is_for_hop(parent_id) => None,
            _ => self.parent_span_id,
        }
    }

    /// The original txid, when `tx` maps to `trace` (so it belongs to this trace).
    pub fn txid_for(&self, trace: TraceId, marker: AgentId) -> Option<TransactionId> {
        self.txid.filter(|tx| txid_to_trace_id(tx, marker) == trace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::mapping::unmix;

    #[test]
    fn pp_entry_table() {
        type Case<'a> = (&'a str, Result<(&'a str, &'a str, i32), &'a str>);
        let cases: &[Case<'_>] = &[
            (
                "svc:orders;app:shop-api;type:1010",
                Ok(("orders", "shop-api", 1010)),
            ),
            ("app:shop-api;type:1800", Ok(("", "shop-api", 1800))),
            ("type:-5;svc:;app:a.b_c", Ok(("", "a.b_c", -5))),
            ("svc:x;app:a;type:1;future:1", Ok(("x", "a", 1))),
            (
                "svc:x;type:1",
                Err("tracestate pp: field \"app\" is missing"),
            ),
            (
                "svc:x;app:;type:1",
                Err("tracestate pp: field \"app\" is missing"),
            ),
            (
                "svc:x;app:a",
                Err("tracestate pp: field \"type\" is missing"),
            ),
            (
                "svc:x;app:a;type:web",
                Err("tracestate pp: field \"type\" value \"web\" is not a decimal i32"),
            ),
            (
                "svc:x;app:a;app:b;type:1",
                Err("tracestate pp: field \"app\" appears more than once"),
            ),
            (
                "svc:x;app:a;type:1;",
                Err("tracestate pp: field \"\" has no ':'"),
            ),
        ];
        for (input, expected) in cases {
            let got = PpEntry::parse(input)
                .map(|e| (e.service_name, e.application_name, e.service_type))
                .map_err(|e| e.to_string());
            assert_eq!(got, expected.map_err(str::to_owned), "{input}");
        }
    }

    #[test]
    fn pp_entry_writes_exact_form_and_rejects_bad_text() {
        let pp = PpEntry {
            service_name: "orders",
            application_name: "shop-api",
            service_type: 1010,
        };
        let mut out = String::new();
        pp.write(&mut out).expect("valid");
        assert_eq!(out, "svc:orders;app:shop-api;type:1010");
        let bad = PpEntry {
            application_name: "a;b",
            ..pp
        };
        assert_eq!(
            bad.write(&mut out).map_err(|e| e.to_string()),
            Err("tracestate pp: field \"app\" has ';', which cannot be written (printable ASCII without , = ;)".to_owned())
        );
        let long = "a".repeat(250);
        let too_long = PpEntry {
            application_name: &long,
            ..pp
        };
        assert!(matches!(
            too_long.validate(),
            Err(EntryError::TooLong { len: 275, .. })
        ));
    }

    #[test]
    fn bridge_entry_table() {
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("tx:agentA^1^2;ps:-5;sp:7", Ok("tx:agentA^1^2;ps:-5;sp:7")),
            ("ps:9;tx:agentA^1^2", Ok("tx:agentA^1^2;ps:9")),
            ("sp:3;later:field", Ok("sp:3")),
            ("ps:-1;sp:5", Ok("ps:-1;sp:5")),
            (
                "sp:-1",
                Err("tracestate ppb: field \"sp\" is -1, which means \"no span\" in Pinpoint"),
            ),
            (
                "ps:x",
                Err("tracestate ppb: field \"ps\" value \"x\" is not a decimal i64"),
            ),
            (
                "tx:agentA^1",
                Err(
                    "tracestate ppb: field \"tx\": transaction id \"agentA^1\" has 2 '^'-separated parts, expected 3 (agentId^agentStartTime^sequence)",
                ),
            ),
            (
                "sp:1;sp:2",
                Err("tracestate ppb: field \"sp\" appears more than once"),
            ),
            ("tx", Err("tracestate ppb: field \"tx\" has no ':'")),
        ];
        for (input, expected) in cases {
            let got = BridgeEntry::parse(input)
                .map(|e| {
                    let mut s = String::new();
                    e.write(&mut s);
                    s
                })
                .map_err(|e| e.to_string());
            let expected = expected.map(str::to_owned).map_err(str::to_owned);
            assert_eq!(got, expected, "{input}");
        }
    }

    #[test]
    fn bridge_entry_applies_only_to_its_hop_and_trace() {
        let marker = AgentId::new("otel").expect("valid");
        let sp = 123_456_789_i64;
        let hop_parent = SpanId::from_u64(unmix(sp as u64));
        let tx = TransactionId::parse("agentA^1700000000000^42").expect("valid");
        let entry = BridgeEntry {
            txid: Some(tx),
            parent_span_id: Some(-77),
            span_id: Some(sp),
        };
        assert!(entry.is_for_hop(hop_parent));
        assert_eq!(entry.parent_span_for(hop_parent), Some(-77));
        // One hop later the parent-id differs: ps is stale and not used.
        let next_hop_parent = SpanId::from_u64(0x1234);
        assert_eq!(entry.parent_span_for(next_hop_parent), None);
        // An entry without sp cannot be checked and is trusted.
        let legacy = BridgeEntry {
            span_id: None,
            ..entry
        };
        assert_eq!(legacy.parent_span_for(next_hop_parent), Some(-77));
        // tx applies only to the trace it hashes to.
        let trace = crate::ids::mapping::hash_txid(&tx);
        assert_eq!(entry.txid_for(trace, marker), Some(tx));
        assert_eq!(entry.txid_for(TraceId::from_u128(5), marker), None);
    }
}
