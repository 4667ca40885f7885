//! The translation engine: header extraction and the two directions, writing into a
//! reusable [`HeaderBuf`] so that a warmed-up [`Translator`] does not allocate on the
//! common paths (a warning, several `tracestate` headers or a cache hit on a caller
//! segment allocate).

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use super::{
    Direction, ParentAppSource, ParentSpanSource, Source, TranslateError, TranslateOptions,
};
use crate::ids::b3::{self, B3, B3Context, B3Error, B3MultiValues, B3Sampling};
use crate::ids::cache::{CallerSegment, MappingCache};
use crate::ids::entries::{BridgeEntry, EntryError, PpEntry};
use crate::ids::headers::{self as h, HeaderBuf};
use crate::ids::hex::{snippet, trim_ows};
use crate::ids::mapping::{
    TxidOrigin, entry_span_id, parent_id_for_pinpoint_span, pinpoint_span_id, trace_id_to_txid,
    txid_origin, txid_to_trace_id,
};
use crate::ids::model::{SpanId, TraceId};
use crate::ids::pinpoint::{PinpointContext, PinpointValues, validate_app_name};
use crate::ids::tracestate::{TraceStateRef, TracestateError};
use crate::ids::txid::{AgentId, TransactionId};
use crate::ids::w3c::{TraceParent, TraceparentError};

/// Something the translation ignored, dropped or guessed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    /// traceparent invalid; B3 used instead.
    TraceparentInvalid(TraceparentError),
    /// `b3` invalid; `X-B3-*` used instead.
    B3SingleInvalid(B3Error),
    /// B3 present but a valid traceparent won.
    B3Ignored,
    /// W3C/B3 present but Pinpoint headers won.
    W3cIgnored,
    /// tracestate invalid and dropped.
    TracestateDropped(TracestateError),
    /// `pp` entry invalid and ignored.
    PpIgnored(EntryError),
    /// `ppb` entry invalid and ignored.
    PpbIgnored(EntryError),
    /// `ppb` `tx` belongs to another trace.
    PpbTxidMismatch(TransactionId),
    /// `Pinpoint-pSpanID` is a stand-in. Not in [`Outcome::warnings`], which shows it
    /// as [`ParentSpanSource::StandIn`]; the [`super::Translation`] report adds it.
    ParentSpanStandIn,
    /// The `pp` entry could not be written.
    PpNotWritten(Cow<'static, str>),
    /// A Pinpoint header has no W3C counterpart.
    NotCarried(&'static str),
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TraceparentInvalid(e) => write!(
                f,
                "{e}; used the B3 headers instead and dropped tracestate with the invalid traceparent"
            ),
            Self::B3SingleInvalid(e) => write!(f, "{e}; used the X-B3-* headers instead"),
            Self::B3Ignored => f.write_str("B3 headers ignored: a valid traceparent takes precedence"),
            Self::W3cIgnored => f.write_str(
                "traceparent/tracestate/B3 headers ignored: Pinpoint headers take precedence",
            ),
            Self::TracestateDropped(e) => {
                write!(f, "{e}; tracestate dropped (the traceparent is still used)")
            }
            Self::PpIgnored(e) | Self::PpbIgnored(e) => write!(f, "{e}; entry ignored"),
            Self::PpbTxidMismatch(tx) => write!(
                f,
                "tracestate ppb: tx {tx} does not map to this trace-id; ignored"
            ),
            Self::ParentSpanStandIn => f.write_str(
                "Pinpoint-pSpanID is a stand-in (the parent-id read as i64): the calling segment's spanId is unknown without a ppb entry for this hop, the caller_span_id option or a mapping-cache entry, and Pinpoint links the callee to its caller only if they agree",
            ),
            Self::PpNotWritten(why) => write!(f, "tracestate pp not written: {why}"),
            Self::NotCarried(header) => {
                write!(f, "{header} is not carried into the W3C headers (no field for it)")
            }
        }
    }
}

/// The caller's application as found during translation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentApp<'a> {
    /// Application name.
    pub name: Cow<'a, str>,
    /// Service type code.
    pub service_type: Option<i32>,
    /// Pinpoint 3.1 service name.
    pub service_name: Option<Cow<'a, str>>,
    /// Where it came from.
    pub source: ParentAppSource,
}

/// The decoded ids of one translation; the headers went to the [`HeaderBuf`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome<'a> {
    /// Which way it went.
    pub direction: Direction,
    /// Which input headers were used.
    pub source: Source,
    /// W3C trace id.
    pub trace_id: TraceId,
    /// Pinpoint transaction id.
    pub txid: TransactionId,
    /// Bridge- or Pinpoint-born.
    pub txid_origin: TxidOrigin,
    /// W3C parent-id.
    pub parent_id: SpanId,
    /// `Pinpoint-SpanID`.
    pub span_id: i64,
    /// `Pinpoint-pSpanID`.
    pub parent_span_id: i64,
    /// Where `parent_span_id` came from.
    pub parent_span_source: ParentSpanSource,
    /// Sampled flag.
    pub sampled: bool,
    /// The caller's application.
    pub parent_app: Option<ParentApp<'a>>,
    /// Things ignored or guessed (empty, and unallocated, on the common path).
    pub warnings: Vec<Warning>,
}

/// The header values of one request that matter here.
#[derive(Debug, Default)]
struct Extracted<'a> {
    traceparent: Option<&'a str>,
    tracestate: Option<&'a str>,
    tracestate_more: Vec<&'a str>,
    b3: Option<&'a str>,
    b3_multi: B3MultiValues<'a>,
    pinpoint: PinpointValues<'a>,
}

impl<'a> Extracted<'a> {
    fn from_pairs(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, TranslateError> {
        let mut x = Self::default();
        for (name, value) in pairs {
            let value = trim_ows(value);
            if name.eq_ignore_ascii_case(h::TRACESTATE) {
                if x.tracestate.is_none() {
                    x.tracestate = Some(value);
                } else {
                    x.tracestate_more.push(value);
                }
                continue;
            }
            let Some((canonical, slot)) = x.slot(name) else {
                continue;
            };
            if slot.replace(value).is_some() {
                return Err(TranslateError::DuplicateHeader { name: canonical });
            }
        }
        Ok(x)
    }

    fn slot(&mut self, name: &str) -> Option<(&'static str, &mut Option<&'a str>)> {
        // The longest known name has 22 characters.
        let mut lower = [0u8; 22];
        let lower = lower.get_mut(..name.len())?;
        lower.copy_from_slice(name.as_bytes());
        lower.make_ascii_lowercase();
        let (p, m) = (&mut self.pinpoint, &mut self.b3_multi);
        let (canonical, slot) = match &*lower {
            b"traceparent" => (h::TRACEPARENT, &mut self.traceparent),
            b"b3" => (h::B3, &mut self.b3),
            b"x-b3-traceid" => (h::X_B3_TRACE_ID, &mut m.trace_id),
            b"x-b3-spanid" => (h::X_B3_SPAN_ID, &mut m.span_id),
            b"x-b3-parentspanid" => (h::X_B3_PARENT_SPAN_ID, &mut m.parent_span_id),
            b"x-b3-sampled" => (h::X_B3_SAMPLED, &mut m.sampled),
            b"x-b3-flags" => (h::X_B3_FLAGS, &mut m.flags),
            b"pinpoint-traceid" => (h::PINPOINT_TRACE_ID, &mut p.trace_id),
            b"pinpoint-spanid" => (h::PINPOINT_SPAN_ID, &mut p.span_id),
            b"pinpoint-pspanid" => (h::PINPOINT_PARENT_SPAN_ID, &mut p.parent_span_id),
            b"pinpoint-sampled" => (h::PINPOINT_SAMPLED, &mut p.sampled),
            b"pinpoint-flags" => (h::PINPOINT_FLAGS, &mut p.flags),
            b"pinpoint-pappname" => (h::PINPOINT_PARENT_APP_NAME, &mut p.parent_app_name),
            b"pinpoint-papptype" => (h::PINPOINT_PARENT_APP_TYPE, &mut p.parent_app_type),
            b"pinpoint-pappnamespace" => (
                h::PINPOINT_PARENT_APP_NAMESPACE,
                &mut p.parent_app_namespace,
            ),
            b"pinpoint-pservicename" => {
                (h::PINPOINT_PARENT_SERVICE_NAME, &mut p.parent_service_name)
            }
            b"pinpoint-host" => (h::PINPOINT_HOST, &mut p.host),
            _ => return None,
        };
        Some((canonical, slot))
    }

    fn has_b3(&self) -> bool {
        self.b3.is_some() || !self.b3_multi.is_empty()
    }

    fn has_w3c(&self) -> bool {
        self.traceparent.is_some() || self.tracestate.is_some() || self.has_b3()
    }
}

/// A prepared translator: options validated once, optionally backed by the mapping cache.
#[derive(Debug, Clone)]
pub struct Translator {
    marker: AgentId,
    app_name: Option<String>,
    app_type: Option<i32>,
    caller_span_id: Option<i64>,
    target_host: Option<String>,
    cache: Option<Arc<MappingCache>>,
    /// False for a translator that only reads the cache ([`Translator::with_cache_read_only`]).
    cache_writes: bool,
}

/// The W3C-side context after precedence rules.
struct W3cIn {
    source: Source,
    trace_id: TraceId,
    parent_id: SpanId,
    sampled: bool,
    use_tracestate: bool,
}

impl Translator {
    /// Validates the options.
    ///
    /// # Errors
    /// [`TranslateError::Marker`], [`TranslateError::AppName`] or
    /// [`TranslateError::TargetHost`].
    pub fn new(opts: &TranslateOptions) -> Result<Self, TranslateError> {
        let marker = AgentId::new(&opts.marker).map_err(TranslateError::Marker)?;
        if let Some(name) = &opts.app_name {
            validate_app_name(name).map_err(TranslateError::AppName)?;
        }
        let bad_host =
            |h: &&String| h.is_empty() || h.len() > 255 || !h.bytes().all(|b| b.is_ascii_graphic());
        if let Some(host) = opts.target_host.as_ref().filter(bad_host) {
            return Err(TranslateError::TargetHost {
                value: snippet(host),
            });
        }
        Ok(Self {
            marker,
            app_name: opts.app_name.clone(),
            app_type: opts.app_type,
            caller_span_id: opts.caller_span_id,
            target_host: opts.target_host.clone(),
            cache: None,
            cache_writes: false,
        })
    }

    /// Uses `cache` to find original txids and caller segments, and to remember the
    /// trace id → txid mapping of Pinpoint-born traces it translates.
    pub fn with_cache(mut self, cache: Arc<MappingCache>) -> Self {
        self.cache = Some(cache);
        self.cache_writes = true;
        self
    }

    /// Uses `cache` to find original txids and caller segments, but never writes to it
    /// (the admin endpoint's translations must not churn the exporters' cache).
    pub fn with_cache_read_only(mut self, cache: Arc<MappingCache>) -> Self {
        self.cache = Some(cache);
        self.cache_writes = false;
        self
    }

    /// The bridge's marker.
    pub fn marker(&self) -> AgentId {
        self.marker
    }

    /// Translates one request's headers into `out` (cleared first).
    ///
    /// # Errors
    /// [`TranslateError`] when the headers carry no translatable context.
    pub fn translate_into<'a>(
        &'a self,
        headers: impl IntoIterator<Item = (&'a str, &'a str)>,
        out: &mut HeaderBuf,
    ) -> Result<Outcome<'a>, TranslateError> {
        out.clear();
        let x = Extracted::from_pairs(headers)?;
        if x.pinpoint.has_trace_headers() {
            self.pinpoint_to_w3c(&x, out)
        } else if x.traceparent.is_some() || x.has_b3() {
            self.w3c_to_pinpoint(&x, out)
        } else {
            Err(TranslateError::NoContext)
        }
    }

    fn pinpoint_to_w3c<'a>(
        &'a self,
        x: &Extracted<'a>,
        out: &mut HeaderBuf,
    ) -> Result<Outcome<'a>, TranslateError> {
        let ctx = PinpointContext::parse(&x.pinpoint).map_err(TranslateError::Pinpoint)?;
        let mut warnings = Vec::new();
        if x.has_w3c() {
            warnings.push(Warning::W3cIgnored);
        }
        let trace_id = txid_to_trace_id(&ctx.txid, self.marker);
        let origin = txid_origin(&ctx.txid, self.marker);
        let parent_id =
            parent_id_for_pinpoint_span(ctx.span_id).ok_or(TranslateError::SpanIdUnmappable)?;
        out.push_with(h::TRACEPARENT, |s| {
            TraceParent::new(trace_id, parent_id, ctx.sampled).write_bytes(s);
        });

        let ppb = BridgeEntry {
            txid: (origin == TxidOrigin::Pinpoint).then_some(ctx.txid),
            parent_span_id: Some(ctx.parent_span_id),
            span_id: Some(ctx.span_id),
        };
        let pp = match (ctx.parent_app_name, ctx.parent_app_type) {
            (Some(app), Some(ty)) => {
                let pp = PpEntry {
                    service_name: ctx.parent_service_name.unwrap_or(""),
                    application_name: app,
                    service_type: ty,
                };
                match pp.validate() {
                    Ok(()) => Some(pp),
                    Err(e) => {
                        warnings.push(Warning::PpNotWritten(Cow::Owned(e.to_string())));
                        None
                    }
                }
            }
            (Some(_), None) => {
                warnings.push(Warning::PpNotWritten(Cow::Borrowed(
                    "Pinpoint-pAppName is present but Pinpoint-pAppType is missing",
                )));
                None
            }
            (None, Some(_)) => {
                warnings.push(Warning::PpNotWritten(Cow::Borrowed(
                    "Pinpoint-pAppType is present but Pinpoint-pAppName is missing",
                )));
                None
            }
            (None, None) => None,
        };
        out.push_with(h::TRACESTATE, |s| {
            s.extend_from_slice(h::TRACESTATE_PPB.as_bytes());
            s.push(b'=');
            ppb.write_bytes(s);
            if let Some(pp) = &pp {
                s.push(b',');
                s.extend_from_slice(h::TRACESTATE_PP.as_bytes());
                s.push(b'=');
                pp.write_validated(s);
            }
        });
        for (present, header) in [
            (ctx.host.is_some(), h::PINPOINT_HOST),
            (
                ctx.parent_app_namespace.is_some(),
                h::PINPOINT_PARENT_APP_NAMESPACE,
            ),
            (ctx.flags != 0, h::PINPOINT_FLAGS),
        ] {
            if present {
                warnings.push(Warning::NotCarried(header));
            }
        }
        let pinpoint_born = origin == TxidOrigin::Pinpoint;
        if let Some(cache) = self
            .cache
            .as_ref()
            .filter(|_| pinpoint_born && self.cache_writes)
        {
            cache.insert_txid(trace_id, ctx.txid);
        }
        Ok(Outcome {
            direction: Direction::PinpointToW3c,
            source: Source::Pinpoint,
            trace_id,
            txid: ctx.txid,
            txid_origin: origin,
            parent_id,
            span_id: ctx.span_id,
            parent_span_id: ctx.parent_span_id,
            parent_span_source: ParentSpanSource::PinpointHeader,
            sampled: ctx.sampled,
            parent_app: ctx.parent_app_name.map(|name| ParentApp {
                name: Cow::Borrowed(name),
                service_type: ctx.parent_app_type,
                service_name: ctx.parent_service_name.map(Cow::Borrowed),
                source: ParentAppSource::PinpointHeader,
            }),
            warnings,
        })
    }

    /// Applies the W3C/B3 precedence rules (module docs).
    fn w3c_context(
        x: &Extracted<'_>,
        warnings: &mut Vec<Warning>,
    ) -> Result<W3cIn, TranslateError> {
        match x.traceparent.map(TraceParent::parse) {
            Some(Ok(tp)) => {
                if x.has_b3() {
                    warnings.push(Warning::B3Ignored);
                }
                Ok(W3cIn {
                    source: Source::Traceparent,
                    trace_id: tp.trace_id,
                    parent_id: tp.parent_id,
                    sampled: tp.sampled(),
                    use_tracestate: true,
                })
            }
            Some(Err(e)) if x.has_b3() => match Self::b3_context(x, warnings) {
                Ok(w) => {
                    warnings.push(Warning::TraceparentInvalid(e));
                    Ok(w)
                }
                Err(TranslateError::B3(b3)) => {
                    Err(TranslateError::TraceparentAndB3 { traceparent: e, b3 })
                }
                Err(_) => Err(TranslateError::Traceparent(e)),
            },
            Some(Err(e)) => Err(TranslateError::Traceparent(e)),
            None => Self::b3_context(x, warnings),
        }
    }

    fn b3_context(x: &Extracted<'_>, warnings: &mut Vec<Warning>) -> Result<W3cIn, TranslateError> {
        let from = |source, c: B3Context| W3cIn {
            source,
            trace_id: c.trace_id,
            parent_id: c.span_id,
            sampled: c.sampling.sampled(),
            use_tracestate: false,
        };
        let multi = || match b3::parse_multi(&x.b3_multi) {
            Ok(Some(B3::Context(c))) => Ok(from(Source::B3Multi, c)),
            Ok(Some(B3::SamplingOnly(s))) => Err(no_context(s)),
            Ok(None) => Err(TranslateError::NoContext),
            Err(e) => Err(TranslateError::B3(e)),
        };
        match x.b3.map(b3::parse_single) {
            Some(Ok(B3::Context(c))) => Ok(from(Source::B3Single, c)),
            Some(Ok(B3::SamplingOnly(s))) => Err(no_context(s)),
            Some(Err(e)) if !x.b3_multi.is_empty() => match multi() {
                Ok(w) => {
                    warnings.push(Warning::B3SingleInvalid(e));
                    Ok(w)
                }
                Err(_) => Err(TranslateError::B3(e)),
            },
            Some(Err(e)) => Err(TranslateError::B3(e)),
            None => multi(),
        }
    }

    fn w3c_to_pinpoint<'a>(
        &'a self,
        x: &Extracted<'a>,
        out: &mut HeaderBuf,
    ) -> Result<Outcome<'a>, TranslateError> {
        let mut warnings = Vec::new();
        let w = Self::w3c_context(x, &mut warnings)?;
        let (pp, ppb) = if w.use_tracestate {
            read_tracestate(x, &mut warnings)
        } else {
            (None, None)
        };

        // Trace id -> txid: a ppb tx that maps to this trace, the cache, else lossless.
        let from_entry = ppb.and_then(|b| b.txid_for(w.trace_id, self.marker));
        if let (None, Some(tx)) = (from_entry, ppb.and_then(|b| b.txid)) {
            warnings.push(Warning::PpbTxidMismatch(tx));
        }
        let txid = from_entry
            .or_else(|| self.cache.as_ref().and_then(|c| c.txid(&w.trace_id)))
            .unwrap_or_else(|| trace_id_to_txid(w.trace_id, self.marker));

        let span_id = entry_span_id(w.parent_id);
        let for_hop = ppb.filter(|b| b.is_for_hop(w.parent_id));
        let entry_ps = ppb.and_then(|b| b.parent_span_for(w.parent_id));
        let verified_pp = pp.as_ref().filter(|_| for_hop.is_some());
        let need_cache = (entry_ps.is_none() && self.caller_span_id.is_none())
            || (verified_pp.is_none() && self.app_name.is_none());
        let cached: Option<CallerSegment> = match (&self.cache, need_cache) {
            (Some(c), true) => c.caller_segment(&w.trace_id, &w.parent_id),
            _ => None,
        };

        let (parent_span_id, parent_span_source) = if let Some(ps) = entry_ps {
            (ps, ParentSpanSource::Tracestate)
        } else if let Some(ps) = self.caller_span_id {
            (ps, ParentSpanSource::Options)
        } else if let Some(seg) = &cached {
            (seg.span_id, ParentSpanSource::Cache)
        } else {
            // Reported by `Translation` as Warning::ParentSpanStandIn; not pushed here so
            // the common path stays allocation-free.
            (pinpoint_span_id(w.parent_id), ParentSpanSource::StandIn)
        };

        let parent_app = if let Some(pp) = verified_pp {
            Some(with_source(pp.clone(), ParentAppSource::Tracestate))
        } else if let Some(name) = &self.app_name {
            Some(ParentApp {
                name: Cow::Borrowed(name.as_str()),
                service_type: self.app_type,
                service_name: None,
                source: ParentAppSource::Options,
            })
        } else if let Some(seg) = &cached {
            Some(ParentApp {
                name: Cow::Owned(seg.application.to_string()),
                service_type: Some(seg.service_type),
                service_name: None,
                source: ParentAppSource::Cache,
            })
        } else {
            pp.map(|p| with_source(p, ParentAppSource::TracestateUnverified))
        };

        let ctx = PinpointContext {
            txid,
            span_id,
            parent_span_id,
            sampled: w.sampled,
            flags: 0,
            parent_app_name: parent_app.as_ref().map(|a| a.name.as_ref()),
            parent_app_type: parent_app.as_ref().and_then(|a| a.service_type),
            parent_app_namespace: None,
            parent_service_name: parent_app
                .as_ref()
                .and_then(|a| a.service_name.as_deref())
                .filter(|s| !s.is_empty()),
            host: self.target_host.as_deref(),
        };
        ctx.write_headers(out);
        Ok(Outcome {
            direction: Direction::W3cToPinpoint,
            source: w.source,
            trace_id: w.trace_id,
            txid,
            txid_origin: txid_origin(&txid, self.marker),
            parent_id: w.parent_id,
            span_id,
            parent_span_id,
            parent_span_source,
            sampled: w.sampled,
            parent_app,
            warnings,
        })
    }
}

fn with_source(mut app: ParentApp<'_>, source: ParentAppSource) -> ParentApp<'_> {
    app.source = source;
    app
}

fn no_context(s: B3Sampling) -> TranslateError {
    TranslateError::B3NoContext {
        decision: match s {
            B3Sampling::Deny => "not sampled",
            B3Sampling::Accept => "sampled",
            B3Sampling::Debug => "debug",
            B3Sampling::Deferred => "deferred",
        },
    }
}

/// Reads `pp` and `ppb` from the tracestate, dropping what is invalid with a warning.
fn read_tracestate<'a>(
    x: &Extracted<'a>,
    warnings: &mut Vec<Warning>,
) -> (Option<ParentApp<'a>>, Option<BridgeEntry>) {
    let Some(first) = x.tracestate else {
        return (None, None);
    };
    if x.tracestate_more.is_empty() {
        return entries(first, warnings, Cow::Borrowed);
    }
    let joined = std::iter::once(first)
        .chain(x.tracestate_more.iter().copied())
        .collect::<Vec<_>>()
        .join(",");
    entries(&joined, warnings, |s| Cow::Owned(s.to_owned()))
}

fn entries<'t, 'a>(
    value: &'t str,
    warnings: &mut Vec<Warning>,
    keep: impl Fn(&'t str) -> Cow<'a, str>,
) -> (Option<ParentApp<'a>>, Option<BridgeEntry>) {
    let found = TraceStateRef::parse_finding(value, [h::TRACESTATE_PP, h::TRACESTATE_PPB]);
    let (pp, ppb) = match found {
        Ok((_, [pp, ppb])) => (pp, ppb),
        Err(e) => {
            warnings.push(Warning::TracestateDropped(e));
            return (None, None);
        }
    };
    let pp = pp.and_then(|v| match PpEntry::parse(v) {
        Ok(pp) => Some(ParentApp {
            name: keep(pp.application_name),
            service_type: Some(pp.service_type),
            service_name: (!pp.service_name.is_empty()).then(|| keep(pp.service_name)),
            source: ParentAppSource::TracestateUnverified,
        }),
        Err(e) => {
            warnings.push(Warning::PpIgnored(e));
            None
        }
    });
    let ppb = ppb.and_then(|v| match BridgeEntry::parse(v) {
        Ok(b) => Some(b),
        Err(e) => {
            warnings.push(Warning::PpbIgnored(e));
            None
        }
    });
    (pp, ppb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_header_constant_is_recognised_in_any_case() {
        let names = [
            h::TRACEPARENT,
            h::B3,
            h::X_B3_TRACE_ID,
            h::X_B3_SPAN_ID,
            h::X_B3_PARENT_SPAN_ID,
            h::X_B3_SAMPLED,
            h::X_B3_FLAGS,
            h::PINPOINT_TRACE_ID,
            h::PINPOINT_SPAN_ID,
            h::PINPOINT_PARENT_SPAN_ID,
            h::PINPOINT_SAMPLED,
            h::PINPOINT_FLAGS,
            h::PINPOINT_PARENT_APP_NAME,
            h::PINPOINT_PARENT_APP_TYPE,
            h::PINPOINT_PARENT_APP_NAMESPACE,
            h::PINPOINT_PARENT_SERVICE_NAME,
            h::PINPOINT_HOST,
        ];
        let mut x = Extracted::default();
        for name in names {
            for spelling in [name.to_owned(), name.to_uppercase(), name.to_lowercase()] {
                let found = x.slot(&spelling).map(|(canonical, _)| canonical);
                assert_eq!(found, Some(name), "{spelling}");
            }
        }
        assert!(x.slot("content-type").is_none());
        assert!(x.slot("pinpoint-pappnamespace-and-more").is_none());
        assert!(x.slot("").is_none());
    }
}
