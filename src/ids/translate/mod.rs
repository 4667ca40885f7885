//! Owns whole-context translation between W3C Trace Context (+ B3) and Pinpoint's HTTP
//! headers: [`translate_headers`] (the allocating entry point for the CLI `translate
//! --json` and `POST /v1/context/translate`), the reusable allocation-free
//! [`Translator`], the serializable [`Translation`] report, [`parse_header_lines`] for
//! `Name: value` text, and [`TranslateError`].
//!
//! # Direction
//! Header names are matched ASCII case-insensitively and values are trimmed of spaces and
//! tabs. If any of `Pinpoint-TraceID`, `Pinpoint-SpanID` or `Pinpoint-pSpanID` is present
//! the input is translated Pinpoint → W3C (any traceparent/B3 is ignored, with a
//! warning); otherwise, if `traceparent`, `b3` or `X-B3-*` is present, W3C/B3 → Pinpoint.
//!
//! # Precedence on the W3C side
//! A valid `traceparent` wins (B3 is ignored, with a warning). An invalid `traceparent`
//! means a new trace (W3C), so its `tracestate` is dropped; the translation then falls
//! back to B3 if present, like an OTel SDK configured with both propagators, and reports
//! the traceparent error as a warning. With no usable B3 the invalid traceparent is the
//! error: a new trace has nothing to translate. Between B3 forms the single `b3` header
//! wins; an invalid `b3` falls back to valid `X-B3-*` headers with a warning. A B3
//! sampling decision without ids (`b3: 0`) is an error for the same reason. An invalid
//! `tracestate`, `pp` or `ppb` entry never fails a translation: it is dropped with a
//! warning. Several `tracestate` headers are joined with `,`; any other header given
//! twice is an error.

mod engine;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

pub use engine::{Outcome, ParentApp, Translator, Warning};

use crate::ids::b3::B3Error;
use crate::ids::headers::HeaderBuf;
use crate::ids::hex::{snippet, trim_ows};
use crate::ids::mapping::TxidOrigin;
use crate::ids::model::{SpanId, TraceId};
use crate::ids::pinpoint::PinpointHeaderError;
use crate::ids::txid::{TransactionId, TxidError};
use crate::ids::w3c::TraceparentError;

/// What prevents a translation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    /// A line of `Name: value` text is malformed.
    #[error("header line {line}: {reason}")]
    HeaderLine {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A header other than `tracestate` appears twice.
    #[error("header {name} appears more than once")]
    DuplicateHeader {
        /// The header.
        name: &'static str,
    },
    /// No header that carries a trace context.
    #[error(
        "no trace context to translate: none of traceparent, b3, X-B3-TraceId, X-B3-SpanId, Pinpoint-TraceID, Pinpoint-SpanID, Pinpoint-pSpanID is present"
    )]
    NoContext,
    /// The traceparent is invalid and there is no B3 fallback.
    #[error("{0} (an invalid traceparent starts a new trace, so there is nothing to translate)")]
    Traceparent(TraceparentError),
    /// The traceparent is invalid and so is the B3 fallback.
    #[error("{traceparent}; the B3 fallback is invalid too: {b3}")]
    TraceparentAndB3 {
        /// The traceparent problem.
        traceparent: TraceparentError,
        /// The B3 problem.
        b3: B3Error,
    },
    /// The B3 headers are invalid.
    #[error("{0}")]
    B3(B3Error),
    /// B3 carries only a sampling decision.
    #[error(
        "B3 carries only a sampling decision ({decision}) and no trace context, so there is nothing to translate"
    )]
    B3NoContext {
        /// `sampled`, `not sampled`, `debug` or `deferred`.
        decision: &'static str,
    },
    /// The Pinpoint headers are invalid or incomplete.
    #[error("{0}")]
    Pinpoint(PinpointHeaderError),
    /// `Pinpoint-SpanID: 0` has no W3C parent-id.
    #[error("Pinpoint-SpanID: 0 maps to the all-zero W3C parent-id and cannot be translated")]
    SpanIdUnmappable,
    /// The options' marker is not a valid agent id.
    #[error("translate options: marker: {0}")]
    Marker(TxidError),
    /// The options' application name is invalid.
    #[error("translate options: app_name: {0}")]
    AppName(PinpointHeaderError),
    /// The options' target host cannot be sent as a header value.
    #[error(
        "translate options: target_host {value:?} must be 1 to 255 printable ASCII characters without spaces"
    )]
    TargetHost {
        /// The value (shortened).
        value: String,
    },
}

impl Serialize for TranslateError {
    /// Serializes as its message.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The bridge's own settings for translation. Deserializable from config
/// (`deny_unknown_fields`); every field has a default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TranslateOptions {
    /// agentId of bridge-born transaction ids (ids.md section 2). Default `otel`.
    pub marker: String,
    /// Parent application written as `Pinpoint-pAppName` when the W3C input carries none
    /// for this hop (e.g. a sidecar naming the service it fronts). Default none.
    pub app_name: Option<String>,
    /// Service type code written as `Pinpoint-pAppType` with `app_name`. Default none.
    pub app_type: Option<i32>,
    /// Pinpoint spanId of the calling segment, when the caller of the translation knows
    /// it; used as `Pinpoint-pSpanID` unless the tracestate has a `ppb` entry for this
    /// hop. Default none (the mapping cache, then a stand-in, are used).
    pub caller_span_id: Option<i64>,
    /// Written as `Pinpoint-Host` (the callee's acceptorHost). Default none.
    pub target_host: Option<String>,
}

impl Default for TranslateOptions {
    fn default() -> Self {
        Self {
            marker: "otel".to_owned(),
            app_name: None,
            app_type: None,
            caller_span_id: None,
            target_host: None,
        }
    }
}

/// Which way a translation went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// W3C traceparent/tracestate or B3 in, Pinpoint headers out.
    W3cToPinpoint,
    /// Pinpoint headers in, traceparent + tracestate out.
    PinpointToW3c,
}

/// Which input headers the context was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// `traceparent` (+ `tracestate`).
    Traceparent,
    /// The single `b3` header.
    B3Single,
    /// The `X-B3-*` headers.
    B3Multi,
    /// The `Pinpoint-*` headers.
    Pinpoint,
}

/// Where `Pinpoint-pSpanID` came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParentSpanSource {
    /// The input's `Pinpoint-pSpanID` header.
    PinpointHeader,
    /// A `ppb` tracestate entry written for this hop.
    Tracestate,
    /// [`TranslateOptions::caller_span_id`].
    Options,
    /// The mapping cache (client span → caller segment).
    Cache,
    /// The parent-id read as i64: exact only when the caller's outgoing span is its
    /// segment's root.
    StandIn,
}

/// Where the parent application came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParentAppSource {
    /// The input's `Pinpoint-pAppName` / `-pAppType` headers.
    PinpointHeader,
    /// A `pp` entry written by the same hop as a matching `ppb` entry.
    Tracestate,
    /// [`TranslateOptions::app_name`] / `app_type`.
    Options,
    /// The mapping cache (client span → caller segment).
    Cache,
    /// A `pp` entry that may have been written several hops upstream.
    TracestateUnverified,
}

/// A span id in both notations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpanIdForms {
    /// Signed (Pinpoint) form.
    pub int: i64,
    /// 16 lower-case hex characters (W3C form of the same 64 bits).
    pub hex: String,
}

impl SpanIdForms {
    fn from_i64(v: i64) -> Self {
        Self {
            int: v,
            hex: SpanId::from_i64(v).to_hex(),
        }
    }
}

/// The caller's application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentApplication {
    /// Application name.
    pub name: String,
    /// Service type code, if known.
    pub service_type: Option<i32>,
    /// Pinpoint 3.1 service name, if known.
    pub service_name: Option<String>,
    /// Where it came from.
    pub source: ParentAppSource,
}

/// The ids of the hop, decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecodedIds {
    /// W3C trace id (32 hex).
    pub trace_id: TraceId,
    /// Pinpoint transaction id.
    pub transaction_id: TransactionId,
    /// Whether the txid is bridge-born (marker, lossless) or Pinpoint-born (hashed).
    pub transaction_id_origin: TxidOrigin,
    /// W3C parent-id (the caller's client span; B3 span id) = `mix⁻¹(span_id)`.
    pub parent_id: SpanIdForms,
    /// `Pinpoint-SpanID`: the callee's Pinpoint spanId = `mix(parent_id)`.
    pub span_id: SpanIdForms,
    /// `Pinpoint-pSpanID`: the calling segment's Pinpoint spanId.
    pub parent_span_id: SpanIdForms,
    /// Where `parent_span_id` came from.
    pub parent_span_id_source: ParentSpanSource,
    /// Sampled flag.
    pub sampled: bool,
    /// The caller's application, when known.
    pub parent_application: Option<ParentApplication>,
}

/// A translation report, for `translate --json` and `POST /v1/context/translate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Translation {
    /// Which way it went.
    pub direction: Direction,
    /// Which input headers were used.
    pub source: Source,
    /// Output headers in order, as `[name, value]` pairs.
    pub headers: Vec<(String, String)>,
    /// The decoded ids.
    pub ids: DecodedIds,
    /// Things ignored or guessed, one sentence each.
    pub warnings: Vec<String>,
}

impl Translation {
    /// Builds the owned report from a [`Translator`] outcome and its output headers.
    pub fn from_outcome(o: &Outcome<'_>, headers: &HeaderBuf) -> Self {
        Self {
            direction: o.direction,
            source: o.source,
            headers: headers.to_pairs(),
            ids: DecodedIds {
                trace_id: o.trace_id,
                transaction_id: o.txid,
                transaction_id_origin: o.txid_origin,
                parent_id: SpanIdForms::from_i64(o.parent_id.to_i64()),
                span_id: SpanIdForms::from_i64(o.span_id),
                parent_span_id: SpanIdForms::from_i64(o.parent_span_id),
                parent_span_id_source: o.parent_span_source,
                sampled: o.sampled,
                parent_application: o.parent_app.as_ref().map(|a| ParentApplication {
                    name: a.name.to_string(),
                    service_type: a.service_type,
                    service_name: a.service_name.as_ref().map(|s| s.to_string()),
                    source: a.source,
                }),
            },
            warnings: o
                .warnings
                .iter()
                .chain(
                    (o.parent_span_source == ParentSpanSource::StandIn)
                        .then_some(&Warning::ParentSpanStandIn),
                )
                .map(ToString::to_string)
                .collect(),
        }
    }
}

/// Translates one request's headers; see the module docs for direction and precedence.
///
/// # Errors
/// [`TranslateError`] when the options are invalid or the headers carry no translatable
/// context.
pub fn translate_headers(
    input: &[(String, String)],
    opts: &TranslateOptions,
) -> Result<Translation, TranslateError> {
    let translator = Translator::new(opts)?;
    let mut out = HeaderBuf::new();
    let outcome = translator.translate_into(
        input.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        &mut out,
    )?;
    Ok(Translation::from_outcome(&outcome, &out))
}

/// The JSON body of `POST /v1/context/translate`: `{"headers": {"name": "value"}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TranslateRequest {
    /// Request headers by name.
    pub headers: BTreeMap<String, String>,
}

impl TranslateRequest {
    /// The headers as pairs for [`translate_headers`].
    pub fn pairs(&self) -> Vec<(String, String)> {
        self.headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// True for an HTTP token character (RFC 9110 `tchar`).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Parses `Name: value` lines (as printed by `curl -v` or typed into the CLI). Blank
/// lines and lines starting with `#` are skipped; `\r\n` line ends are accepted.
///
/// # Errors
/// [`TranslateError::HeaderLine`] with the 1-based line number of the first bad line.
pub fn parse_header_lines(text: &str) -> Result<Vec<(String, String)>, TranslateError> {
    let mut out = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let bad = |reason: String| TranslateError::HeaderLine {
            line: i + 1,
            reason,
        };
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            return Err(bad(
                "starts with whitespace (obsolete line folding is not supported)".to_owned(),
            ));
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(bad(format!(
                "{:?} has no ':' between name and value",
                snippet(line)
            )));
        };
        if let Some(c) = name.chars().find(|&c| !c.is_ascii() || !is_tchar(c as u8)) {
            return Err(bad(format!(
                "header name {:?} has {c:?}, which is not allowed in a header name",
                snippet(name)
            )));
        }
        if name.is_empty() {
            return Err(bad("header name is empty".to_owned()));
        }
        let value = trim_ows(value);
        if let Some(c) = value.chars().find(|&c| c.is_control() && c != '\t') {
            return Err(bad(format!("value of {name} has control character {c:?}")));
        }
        out.push((name.to_owned(), value.to_owned()));
    }
    Ok(out)
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::W3cToPinpoint => "w3c_to_pinpoint",
            Self::PinpointToW3c => "pinpoint_to_w3c",
        })
    }
}

#[cfg(test)]
mod tests;
