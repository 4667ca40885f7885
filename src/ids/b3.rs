//! Owns the Zipkin B3 propagation headers: the single header `b3` and the multi headers
//! `X-B3-*`, their allocation-free parsers, the single-header formatter, and [`B3Error`].
//!
//! Rules: trace id is 16 or 32 lower-case hex (a 64-bit id is left-padded with zeros to
//! 128 bits), span ids are 16 lower-case hex, none all-zero. Single form:
//! `{trace}-{span}[-{1|0|d}[-{parent}]]`, or a sampling decision alone (`0`, `1`, `d`).
//! Multi form: `X-B3-Sampled` is `1`/`0` (legacy `true`/`false` accepted),
//! `X-B3-Flags: 1` means debug (which implies sampled). When both forms are present the
//! single header wins (the caller picks which one to parse).

use crate::ids::hex::{decode_lower_hex, put_hex, snippet};
use crate::ids::model::{HexIdError, SpanId, TraceId};

/// What is wrong with B3 headers. `header` names the header at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum B3Error {
    /// Empty value.
    #[error("{header}: is empty")]
    Empty {
        /// Header name.
        header: &'static str,
    },
    /// The trace id is not 16 or 32 hex characters.
    #[error("{header}: trace-id is {len} characters long, expected 16 or 32")]
    TraceIdLength {
        /// Header name.
        header: &'static str,
        /// Length found.
        len: usize,
    },
    /// The trace id is invalid.
    #[error("{header}: trace-id {source}")]
    TraceId {
        /// Header name.
        header: &'static str,
        /// The problem.
        source: HexIdError,
    },
    /// The span id is invalid.
    #[error("{header}: span-id {source}")]
    SpanId {
        /// Header name.
        header: &'static str,
        /// The problem.
        source: HexIdError,
    },
    /// The parent span id is invalid.
    #[error("{header}: parent-span-id {source}")]
    ParentSpanId {
        /// Header name.
        header: &'static str,
        /// The problem.
        source: HexIdError,
    },
    /// Unknown sampling state.
    #[error("{header}: sampling state {value:?} is not one of {allowed}")]
    Sampling {
        /// Header name.
        header: &'static str,
        /// The value (shortened).
        value: String,
        /// What is allowed.
        allowed: &'static str,
    },
    /// Too many `-` separated fields.
    #[error("b3: has {found} '-'-separated fields, expected at most 4 (trace-span-sampled-parent)")]
    TooManyFields {
        /// Fields found.
        found: usize,
    },
    /// The single header has only one id.
    #[error("b3: {value:?} is neither a sampling state (0, 1, d) nor trace-id-span-id")]
    Shape {
        /// The value (shortened).
        value: String,
    },
    /// Multi headers with a trace id but no span id, or the reverse.
    #[error("B3 multi headers: {present} is present but {missing} is missing")]
    Incomplete {
        /// The header present.
        present: &'static str,
        /// The header missing.
        missing: &'static str,
    },
}

/// A B3 sampling state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum B3Sampling {
    /// No decision was sent ("deferred").
    Deferred,
    /// `0`: not sampled.
    Deny,
    /// `1`: sampled.
    Accept,
    /// `d` / `X-B3-Flags: 1`: debug, which implies sampled.
    Debug,
}

impl B3Sampling {
    /// The W3C sampled flag for this state. A deferred decision counts as sampled
    /// (Pinpoint's convention: a missing `Pinpoint-Sampled` means sampled).
    pub fn sampled(self) -> bool {
        !matches!(self, Self::Deny)
    }
}

/// A B3 trace context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct B3Context {
    /// Trace id (a 64-bit id is left-padded with zeros).
    pub trace_id: TraceId,
    /// The sender's span id (the callee's parent).
    pub span_id: SpanId,
    /// The sender's parent span id, if sent.
    pub parent_span_id: Option<SpanId>,
    /// Sampling state.
    pub sampling: B3Sampling,
}

/// What a set of B3 headers carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum B3 {
    /// A trace context.
    Context(B3Context),
    /// Only a sampling decision (`b3: 0`, or `X-B3-Sampled` alone): no trace to continue.
    SamplingOnly(B3Sampling),
}

/// The raw multi-header values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct B3MultiValues<'a> {
    /// `X-B3-TraceId`.
    pub trace_id: Option<&'a str>,
    /// `X-B3-SpanId`.
    pub span_id: Option<&'a str>,
    /// `X-B3-ParentSpanId`.
    pub parent_span_id: Option<&'a str>,
    /// `X-B3-Sampled`.
    pub sampled: Option<&'a str>,
    /// `X-B3-Flags`.
    pub flags: Option<&'a str>,
}

impl B3MultiValues<'_> {
    /// True when no B3 multi header is present.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

fn trace_id(header: &'static str, s: &str) -> Result<TraceId, B3Error> {
    let id = match s.len() {
        16 => {
            let low =
                decode_lower_hex::<8>(s).map_err(|source| B3Error::TraceId { header, source })?;
            let mut bytes = [0u8; 16];
            bytes[8..].copy_from_slice(&low);
            TraceId(bytes)
        }
        32 => TraceId(
            decode_lower_hex::<16>(s).map_err(|source| B3Error::TraceId { header, source })?,
        ),
        len => return Err(B3Error::TraceIdLength { header, len }),
    };
    if id.is_zero() {
        return Err(B3Error::TraceId {
            header,
            source: HexIdError::AllZeros,
        });
    }
    Ok(id)
}

fn single_sampling(s: &str) -> Result<B3Sampling, B3Error> {
    match s {
        "0" => Ok(B3Sampling::Deny),
        "1" => Ok(B3Sampling::Accept),
        "d" => Ok(B3Sampling::Debug),
        _ => Err(B3Error::Sampling {
            header: "b3",
            value: snippet(s),
            allowed: "0, 1, d",
        }),
    }
}

/// Parses the single `b3` header.
///
/// # Errors
/// [`B3Error`] naming the field at fault.
pub fn parse_single(s: &str) -> Result<B3, B3Error> {
    const H: &str = "b3";
    if s.is_empty() {
        return Err(B3Error::Empty { header: H });
    }
    let mut parts = s.split('-');
    let first = parts.next().unwrap_or_default();
    let Some(second) = parts.next() else {
        return match single_sampling(first) {
            Ok(sampling) => Ok(B3::SamplingOnly(sampling)),
            Err(_) => Err(B3Error::Shape { value: snippet(s) }),
        };
    };
    let third = parts.next();
    let fourth = parts.next();
    if parts.next().is_some() {
        return Err(B3Error::TooManyFields {
            found: s.split('-').count(),
        });
    }
    let trace_id = trace_id(H, first)?;
    let span_id =
        SpanId::from_hex(second).map_err(|source| B3Error::SpanId { header: H, source })?;
    let sampling = third.map_or(Ok(B3Sampling::Deferred), single_sampling)?;
    let parent_span_id = fourth
        .map(SpanId::from_hex)
        .transpose()
        .map_err(|source| B3Error::ParentSpanId { header: H, source })?;
    Ok(B3::Context(B3Context {
        trace_id,
        span_id,
        parent_span_id,
        sampling,
    }))
}

/// Parses the multi headers. Returns `None` when none is present.
///
/// # Errors
/// [`B3Error`] naming the header at fault.
pub fn parse_multi(v: &B3MultiValues<'_>) -> Result<Option<B3>, B3Error> {
    use crate::ids::headers::{
        X_B3_FLAGS, X_B3_PARENT_SPAN_ID, X_B3_SAMPLED, X_B3_SPAN_ID, X_B3_TRACE_ID,
    };
    if v.is_empty() {
        return Ok(None);
    }
    let debug = match v.flags {
        None | Some("0") => false,
        Some("1") => true,
        Some(other) => {
            return Err(B3Error::Sampling {
                header: X_B3_FLAGS,
                value: snippet(other),
                allowed: "1 (debug), 0",
            });
        }
    };
    let sampling = match (debug, v.sampled) {
        (true, _) => B3Sampling::Debug,
        (false, None) => B3Sampling::Deferred,
        (false, Some("1" | "true")) => B3Sampling::Accept,
        (false, Some("0" | "false")) => B3Sampling::Deny,
        (false, Some(other)) => {
            return Err(B3Error::Sampling {
                header: X_B3_SAMPLED,
                value: snippet(other),
                allowed: "1, 0 (or legacy true, false)",
            });
        }
    };
    let (trace, span) = match (v.trace_id, v.span_id) {
        (Some(t), Some(s)) => (t, s),
        (None, None) if v.parent_span_id.is_none() => return Ok(Some(B3::SamplingOnly(sampling))),
        (Some(_), None) => {
            return Err(B3Error::Incomplete {
                present: X_B3_TRACE_ID,
                missing: X_B3_SPAN_ID,
            });
        }
        (None, Some(_)) => {
            return Err(B3Error::Incomplete {
                present: X_B3_SPAN_ID,
                missing: X_B3_TRACE_ID,
            });
        }
        (None, None) => {
            return Err(B3Error::Incomplete {
                present: X_B3_PARENT_SPAN_ID,
                missing: X_B3_TRACE_ID,
            });
        }
    };
    Ok(Some(B3::Context(B3Context {
        trace_id: trace_id(X_B3_TRACE_ID, trace)?,
        span_id: SpanId::from_hex(span).map_err(|source| B3Error::SpanId {
            header: X_B3_SPAN_ID,
            source,
        })?,
        parent_span_id: v
            .parent_span_id
            .map(SpanId::from_hex)
            .transpose()
            .map_err(|source| B3Error::ParentSpanId {
                header: X_B3_PARENT_SPAN_ID,
                source,
            })?,
        sampling,
    })))
}

/// Appends the single-header form `{trace32}-{span}[-{1|0|d}][-{parent}]`. A deferred
/// decision omits the sampling field, and then the parent too (the format has no slot).
pub fn write_single(ctx: &B3Context, out: &mut String) {
    put_hex(out, &ctx.trace_id.0);
    out.push('-');
    put_hex(out, &ctx.span_id.0);
    let flag = match ctx.sampling {
        B3Sampling::Deferred => return,
        B3Sampling::Deny => "-0",
        B3Sampling::Accept => "-1",
        B3Sampling::Debug => "-d",
    };
    out.push_str(flag);
    if let Some(p) = &ctx.parent_span_id {
        out.push('-');
        put_hex(out, &p.0);
    }
}

#[cfg(test)]
mod tests;
