//! Owns Pinpoint's HTTP propagation headers (`Pinpoint-TraceID`, `-SpanID`, `-pSpanID`,
//! `-Sampled`, `-Flags`, `-pAppName`, `-pAppType`, `-pAppNamespace`, `-pServiceName`,
//! `-Host`): the allocation-free parser into [`PinpointContext`], the header writer, and
//! [`PinpointHeaderError`].
//!
//! Rules (pinpoint-wire.md): `Pinpoint-SpanID` is the callee's spanId and
//! `Pinpoint-pSpanID` the caller span's spanId, both signed decimal i64 and never `-1`
//! ("none"); `Pinpoint-Sampled: s0` means not sampled, absent (or `s1`) means sampled;
//! `Pinpoint-Flags` is a decimal short; `Pinpoint-pAppName` follows Pinpoint's id
//! alphabet `[a-zA-Z0-9._-]` (1 to 254 characters); `Pinpoint-pAppType` is a decimal
//! service type code. A missing TraceID, SpanID or pSpanID means a new trace.

use crate::ids::headers::{
    HeaderBuf, PINPOINT_FLAGS, PINPOINT_HOST, PINPOINT_NOT_SAMPLED, PINPOINT_PARENT_APP_NAME,
    PINPOINT_PARENT_APP_NAMESPACE, PINPOINT_PARENT_APP_TYPE, PINPOINT_PARENT_SERVICE_NAME,
    PINPOINT_PARENT_SPAN_ID, PINPOINT_SAMPLED, PINPOINT_SAMPLED_YES, PINPOINT_SPAN_ID,
    PINPOINT_TRACE_ID,
};
use crate::ids::hex::{char_at, put_i64, snippet};
use crate::ids::txid::{TransactionId, TxidError, is_id_char};

/// Longest application name accepted (Pinpoint 3.1 uid modes allow 254).
pub const MAX_APP_NAME_LEN: usize = 254;

/// What is wrong with a set of Pinpoint headers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PinpointHeaderError {
    /// A header required for a trace context is absent.
    #[error(
        "{header} is missing (a missing Pinpoint-TraceID, Pinpoint-SpanID or Pinpoint-pSpanID means a new trace)"
    )]
    Missing {
        /// The header.
        header: &'static str,
    },
    /// Pinpoint-TraceID is not a transaction id.
    #[error("Pinpoint-TraceID: {0}")]
    TraceId(TxidError),
    /// A span id header is not a decimal i64.
    #[error("{header}: {value:?} is not a decimal i64")]
    SpanIdNotANumber {
        /// The header.
        header: &'static str,
        /// The value (shortened).
        value: String,
    },
    /// A span id header is `-1`.
    #[error("{header}: -1 means \"no span\" in Pinpoint and cannot identify a span")]
    SpanIdNone {
        /// The header.
        header: &'static str,
    },
    /// Pinpoint-Sampled is neither `s0` nor `s1`.
    #[error("Pinpoint-Sampled: {value:?} is not s0 (not sampled) or s1 (sampled)")]
    Sampled {
        /// The value (shortened).
        value: String,
    },
    /// Pinpoint-Flags is not a decimal i16.
    #[error("Pinpoint-Flags: {value:?} is not a decimal i16")]
    Flags {
        /// The value (shortened).
        value: String,
    },
    /// Pinpoint-pAppType is not a decimal i32.
    #[error("Pinpoint-pAppType: {value:?} is not a decimal service type code")]
    AppType {
        /// The value (shortened).
        value: String,
    },
    /// Pinpoint-pAppName is empty or too long.
    #[error("Pinpoint-pAppName: is {len} characters long, expected 1 to 254")]
    AppNameLength {
        /// Length found.
        len: usize,
    },
    /// Pinpoint-pAppName has a character outside `[a-zA-Z0-9._-]`.
    #[error(
        "Pinpoint-pAppName: {value:?} has {found:?} at index {index}; allowed are a-z A-Z 0-9 . _ -"
    )]
    AppNameChar {
        /// The value (shortened).
        value: String,
        /// The character.
        found: char,
        /// Its byte index.
        index: usize,
    },
}

/// Raw Pinpoint header values, as found in a request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PinpointValues<'a> {
    /// `Pinpoint-TraceID`.
    pub trace_id: Option<&'a str>,
    /// `Pinpoint-SpanID`.
    pub span_id: Option<&'a str>,
    /// `Pinpoint-pSpanID`.
    pub parent_span_id: Option<&'a str>,
    /// `Pinpoint-Sampled`.
    pub sampled: Option<&'a str>,
    /// `Pinpoint-Flags`.
    pub flags: Option<&'a str>,
    /// `Pinpoint-pAppName`.
    pub parent_app_name: Option<&'a str>,
    /// `Pinpoint-pAppType`.
    pub parent_app_type: Option<&'a str>,
    /// `Pinpoint-pAppNamespace`.
    pub parent_app_namespace: Option<&'a str>,
    /// `Pinpoint-pServiceName`.
    pub parent_service_name: Option<&'a str>,
    /// `Pinpoint-Host`.
    pub host: Option<&'a str>,
}

impl PinpointValues<'_> {
    /// True when any of the trace-defining headers (TraceID, SpanID, pSpanID) is present.
    pub fn has_trace_headers(&self) -> bool {
        self.trace_id.is_some() || self.span_id.is_some() || self.parent_span_id.is_some()
    }
}

/// A Pinpoint trace context as carried by the HTTP headers. Borrowed text, no heap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PinpointContext<'a> {
    /// `Pinpoint-TraceID`.
    pub txid: TransactionId,
    /// `Pinpoint-SpanID`: the callee's spanId.
    pub span_id: i64,
    /// `Pinpoint-pSpanID`: the caller span's spanId.
    pub parent_span_id: i64,
    /// `Pinpoint-Sampled` (absent means sampled).
    pub sampled: bool,
    /// `Pinpoint-Flags` (0 when absent).
    pub flags: i16,
    /// `Pinpoint-pAppName`.
    pub parent_app_name: Option<&'a str>,
    /// `Pinpoint-pAppType`.
    pub parent_app_type: Option<i32>,
    /// `Pinpoint-pAppNamespace`.
    pub parent_app_namespace: Option<&'a str>,
    /// `Pinpoint-pServiceName`.
    pub parent_service_name: Option<&'a str>,
    /// `Pinpoint-Host`.
    pub host: Option<&'a str>,
}

fn parse_span_id(header: &'static str, v: Option<&str>) -> Result<i64, PinpointHeaderError> {
    let v = v.ok_or(PinpointHeaderError::Missing { header })?;
    match v.parse::<i64>() {
        Ok(-1) => Err(PinpointHeaderError::SpanIdNone { header }),
        Ok(n) => Ok(n),
        Err(_) => Err(PinpointHeaderError::SpanIdNotANumber {
            header,
            value: snippet(v),
        }),
    }
}

/// Checks a Pinpoint application name: `[a-zA-Z0-9._-]{1,254}`.
///
/// # Errors
/// [`PinpointHeaderError::AppNameLength`] or [`PinpointHeaderError::AppNameChar`].
pub fn validate_app_name(name: &str) -> Result<(), PinpointHeaderError> {
    if let Some(index) = name.bytes().position(|b| !is_id_char(b)) {
        return Err(PinpointHeaderError::AppNameChar {
            value: snippet(name),
            found: char_at(name, index),
            index,
        });
    }
    if name.is_empty() || name.len() > MAX_APP_NAME_LEN {
        return Err(PinpointHeaderError::AppNameLength { len: name.len() });
    }
    Ok(())
}

impl<'a> PinpointContext<'a> {
    /// Parses a set of Pinpoint headers.
    ///
    /// # Errors
    /// [`PinpointHeaderError`] naming the header at fault, checked in the order TraceID,
    /// SpanID, pSpanID, Sampled, Flags, pAppName, pAppType.
    pub fn parse(v: &PinpointValues<'a>) -> Result<Self, PinpointHeaderError> {
        let txid = v.trace_id.ok_or(PinpointHeaderError::Missing {
            header: PINPOINT_TRACE_ID,
        })?;
        let txid = TransactionId::parse(txid).map_err(PinpointHeaderError::TraceId)?;
        let span_id = parse_span_id(PINPOINT_SPAN_ID, v.span_id)?;
        let parent_span_id = parse_span_id(PINPOINT_PARENT_SPAN_ID, v.parent_span_id)?;
        let sampled = match v.sampled {
            None | Some(PINPOINT_SAMPLED_YES) => true,
            Some(PINPOINT_NOT_SAMPLED) => false,
            Some(other) => {
                return Err(PinpointHeaderError::Sampled {
                    value: snippet(other),
                });
            }
        };
        let flags = v
            .flags
            .map(|f| {
                f.parse::<i16>()
                    .map_err(|_| PinpointHeaderError::Flags { value: snippet(f) })
            })
            .transpose()?
            .unwrap_or(0);
        if let Some(name) = v.parent_app_name {
            validate_app_name(name)?;
        }
        let parent_app_type = v
            .parent_app_type
            .map(|t| {
                t.parse::<i32>()
                    .map_err(|_| PinpointHeaderError::AppType { value: snippet(t) })
            })
            .transpose()?;
        Ok(Self {
            txid,
            span_id,
            parent_span_id,
            sampled,
            flags,
            parent_app_name: v.parent_app_name,
            parent_app_type,
            parent_app_namespace: v.parent_app_namespace,
            parent_service_name: v.parent_service_name,
            host: v.host,
        })
    }

    /// Appends the headers in Pinpoint's usual order. `Pinpoint-Sampled` is written only
    /// when not sampled (`s0`); optional headers only when set.
    pub fn write_headers(&self, out: &mut HeaderBuf) {
        out.push_with(PINPOINT_TRACE_ID, |s| self.txid.write_bytes(s));
        out.push_with(PINPOINT_SPAN_ID, |s| put_i64(s, self.span_id));
        out.push_with(PINPOINT_PARENT_SPAN_ID, |s| put_i64(s, self.parent_span_id));
        if !self.sampled {
            out.push(PINPOINT_SAMPLED, PINPOINT_NOT_SAMPLED);
        }
        out.push_with(PINPOINT_FLAGS, |s| put_i64(s, i64::from(self.flags)));
        if let Some(name) = self.parent_app_name {
            out.push(PINPOINT_PARENT_APP_NAME, name);
        }
        if let Some(ty) = self.parent_app_type {
            out.push_with(PINPOINT_PARENT_APP_TYPE, |s| put_i64(s, i64::from(ty)));
        }
        if let Some(svc) = self.parent_service_name {
            out.push(PINPOINT_PARENT_SERVICE_NAME, svc);
        }
        if let Some(ns) = self.parent_app_namespace {
            out.push(PINPOINT_PARENT_APP_NAMESPACE, ns);
        }
        if let Some(host) = self.host {
            out.push(PINPOINT_HOST, host);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> PinpointValues<'static> {
        PinpointValues {
            trace_id: Some("agentA^1700000000000^42"),
            span_id: Some("-3855584596117411906"),
            parent_span_id: Some("5"),
            ..PinpointValues::default()
        }
    }

    #[test]
    fn pinpoint_header_forms() {
        let ctx = PinpointContext::parse(&base()).expect("valid");
        assert_eq!(ctx.txid.to_string(), "agentA^1700000000000^42");
        assert_eq!(
            (ctx.span_id, ctx.parent_span_id),
            (-3_855_584_596_117_411_906, 5)
        );
        assert!(ctx.sampled);
        assert_eq!(ctx.flags, 0);

        let full = PinpointValues {
            sampled: Some("s0"),
            flags: Some("0"),
            parent_app_name: Some("shop-api"),
            parent_app_type: Some("1010"),
            parent_app_namespace: Some("ns"),
            parent_service_name: Some("orders"),
            host: Some("orders:8080"),
            ..base()
        };
        let ctx = PinpointContext::parse(&full).expect("valid");
        assert!(!ctx.sampled);
        assert_eq!(ctx.parent_app_name, Some("shop-api"));
        assert_eq!(ctx.parent_app_type, Some(1010));
        let mut out = HeaderBuf::new();
        ctx.write_headers(&mut out);
        let written: Vec<_> = out.iter().collect();
        assert_eq!(
            written,
            vec![
                ("Pinpoint-TraceID", "agentA^1700000000000^42"),
                ("Pinpoint-SpanID", "-3855584596117411906"),
                ("Pinpoint-pSpanID", "5"),
                ("Pinpoint-Sampled", "s0"),
                ("Pinpoint-Flags", "0"),
                ("Pinpoint-pAppName", "shop-api"),
                ("Pinpoint-pAppType", "1010"),
                ("Pinpoint-pServiceName", "orders"),
                ("Pinpoint-pAppNamespace", "ns"),
                ("Pinpoint-Host", "orders:8080"),
            ]
        );
        let s1 = PinpointValues {
            sampled: Some("s1"),
            ..base()
        };
        assert!(PinpointContext::parse(&s1).expect("valid").sampled);
    }

    #[test]
    fn pinpoint_header_errors() {
        let cases: Vec<(PinpointValues<'static>, &str)> = vec![
            (
                PinpointValues {
                    trace_id: None,
                    ..base()
                },
                "Pinpoint-TraceID is missing (a missing Pinpoint-TraceID, Pinpoint-SpanID or Pinpoint-pSpanID means a new trace)",
            ),
            (
                PinpointValues {
                    span_id: None,
                    ..base()
                },
                "Pinpoint-SpanID is missing (a missing Pinpoint-TraceID, Pinpoint-SpanID or Pinpoint-pSpanID means a new trace)",
            ),
            (
                PinpointValues {
                    parent_span_id: None,
                    ..base()
                },
                "Pinpoint-pSpanID is missing (a missing Pinpoint-TraceID, Pinpoint-SpanID or Pinpoint-pSpanID means a new trace)",
            ),
            (
                PinpointValues {
                    trace_id: Some("agentA^1^x"),
                    ..base()
                },
                "Pinpoint-TraceID: transaction id sequence \"x\" is not a decimal i64",
            ),
            (
                PinpointValues {
                    span_id: Some("12a"),
                    ..base()
                },
                "Pinpoint-SpanID: \"12a\" is not a decimal i64",
            ),
            (
                PinpointValues {
                    span_id: Some("-1"),
                    ..base()
                },
                "Pinpoint-SpanID: -1 means \"no span\" in Pinpoint and cannot identify a span",
            ),
            (
                PinpointValues {
                    parent_span_id: Some("-1"),
                    ..base()
                },
                "Pinpoint-pSpanID: -1 means \"no span\" in Pinpoint and cannot identify a span",
            ),
            (
                PinpointValues {
                    parent_span_id: Some("99999999999999999999"),
                    ..base()
                },
                "Pinpoint-pSpanID: \"99999999999999999999\" is not a decimal i64",
            ),
            (
                PinpointValues {
                    sampled: Some("0"),
                    ..base()
                },
                "Pinpoint-Sampled: \"0\" is not s0 (not sampled) or s1 (sampled)",
            ),
            (
                PinpointValues {
                    flags: Some("40000"),
                    ..base()
                },
                "Pinpoint-Flags: \"40000\" is not a decimal i16",
            ),
            (
                PinpointValues {
                    parent_app_name: Some("shop api"),
                    ..base()
                },
                "Pinpoint-pAppName: \"shop api\" has ' ' at index 4; allowed are a-z A-Z 0-9 . _ -",
            ),
            (
                PinpointValues {
                    parent_app_name: Some(""),
                    ..base()
                },
                "Pinpoint-pAppName: is 0 characters long, expected 1 to 254",
            ),
            (
                PinpointValues {
                    parent_app_type: Some("TOMCAT"),
                    ..base()
                },
                "Pinpoint-pAppType: \"TOMCAT\" is not a decimal service type code",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(
                PinpointContext::parse(&input).map_err(|e| e.to_string()),
                Err(expected.to_owned()),
                "{input:?}"
            );
        }
    }
}
