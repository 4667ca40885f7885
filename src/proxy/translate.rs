//! The header translation of one hop, as pure functions over a request's trace headers
//! (ids.md section 9). [`ingress`] runs for requests entering the service, [`egress`]
//! for the service's outbound calls; both return a [`Plan`]: header edits, the segment
//! to remember, and the problems found. No I/O, no clock, no randomness (a started
//! context's ids are passed in).
//!
//! - Pinpoint headers in (either side): `traceparent` = (trace by section 2,
//!   `mix⁻¹(Pinpoint-SpanID)`), `tracestate` = `ppb=tx;ps;sp` + `pp`. `Host` is untouched.
//! - W3C in, ingress: kept; the service's segment `mix(p)` is remembered and a `ppb`
//!   entry naming it (`sp`) is added unless one for this hop is there already.
//! - W3C in, egress: `Pinpoint-*` headers are added (`SpanID = mix(c)`, `pSpanID` = the
//!   calling segment, `pAppName`/`pAppType` of the service, `Host` = the target) and the
//!   tracestate gets `ppb=tx;ps;sp` and `pp` for the callee's bridge (section 5.1).
//! - Nothing in, ingress: a context is started: `traceparent` with a fresh trace and
//!   parent `p`, and `ppb=ps:-1;sp:mix(p)`, which makes the service's entry span a root.
//! - Unreadable headers: the request goes on; [`Plan::problems`] names each reason.

use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::ids::entries::{BridgeEntry, PpEntry};
use crate::ids::headers::{self as h, HeaderBuf};
use crate::ids::mapping::{TxidOrigin, entry_span_id};
use crate::ids::pinpoint::PinpointContext;
use crate::ids::tracestate::TraceState;
use crate::ids::translate::{Direction, ParentSpanSource, Source, Warning};
use crate::ids::{SpanId, TraceId, TraceParent, TranslateError, Translator};

use super::config::BadHeaders;
use super::segments::{Remembered, SegmentSource, decide};

/// The hop settings, validated once per listener.
#[derive(Debug, Clone)]
pub struct HopOptions {
    /// Parses and translates (marker only; no cache, no application).
    pub translator: Translator,
    /// The service's application name and type, for `pAppName`/`pAppType` and `pp`.
    pub app_name: String,
    pub app_type: i32,
    pub bad_headers: BadHeaders,
    pub start_context: bool,
    pub start_sampled: bool,
}

/// What a hop did with the trace headers (a metric label: `action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Pinpoint headers were translated into W3C ones.
    PinpointToW3c,
    /// Pinpoint headers were added to a W3C context (egress).
    W3cToPinpoint,
    /// A W3C context was kept (ingress; a `ppb` entry may have been added).
    W3cKept,
    /// A context was started (ingress).
    Started,
    /// No trace context, nothing done.
    None,
    /// The trace headers could not be read; forwarded or dropped by config.
    Bad,
}

impl Action {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::PinpointToW3c => "pinpoint_to_w3c",
            Self::W3cToPinpoint => "w3c_to_pinpoint",
            Self::W3cKept => "w3c_kept",
            Self::Started => "started",
            Self::None => "none",
            Self::Bad => "bad",
        }
    }
}

/// Header edits and what to count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub action: Action,
    /// Headers to remove (every value) before `set` is applied.
    pub remove: Vec<HeaderName>,
    /// Headers to set (replacing every earlier value).
    pub set: Vec<(HeaderName, HeaderValue)>,
    /// Ingress: the (trace, segment id) the service enters with.
    pub record: Option<(TraceId, i64)>,
    /// Egress: how the calling segment was found.
    pub segment: Option<SegmentSource>,
    /// Reasons of problems found (metric label `reason`); empty on the common path.
    pub problems: Vec<&'static str>,
}

impl Plan {
    fn new(action: Action) -> Self {
        Self {
            action,
            remove: Vec::new(),
            set: Vec::new(),
            record: None,
            segment: None,
            problems: Vec::new(),
        }
    }

    /// Applies the edits to a request's headers.
    pub fn apply(&self, headers: &mut HeaderMap) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, value) in &self.set {
            headers.insert(name.clone(), value.clone());
        }
    }

    fn set_buf(&mut self, buf: &HeaderBuf) {
        for (name, value) in buf.iter_bytes() {
            self.set_bytes(name, value);
        }
    }

    fn set_bytes(&mut self, name: &str, value: &[u8]) {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            self.set.push((n, v));
        }
    }
}

/// True for the header names this module reads (lower-case, as `http` gives them).
pub fn is_trace_header(name: &str) -> bool {
    matches!(name, "traceparent" | "tracestate" | "b3")
        || name.starts_with("pinpoint-")
        || name.starts_with("x-b3-")
}

/// The trace headers of a request as text; a value that is not text is left out and
/// reported as `not_text`.
pub fn trace_headers<'a>(
    headers: &'a HeaderMap,
    problems: &mut Vec<&'static str>,
) -> Vec<(&'a str, &'a str)> {
    let mut out = Vec::new();
    for (name, value) in headers {
        if !is_trace_header(name.as_str()) {
            continue;
        }
        match value.to_str() {
            Ok(v) => out.push((name.as_str(), v)),
            Err(_) => problems.push("not_text"),
        }
    }
    out
}

/// The metric reason of a translation error.
fn reason(e: &TranslateError) -> &'static str {
    match e {
        TranslateError::DuplicateHeader { .. } => "duplicate_header",
        TranslateError::Traceparent(_) | TranslateError::TraceparentAndB3 { .. } => "traceparent",
        TranslateError::B3(_) | TranslateError::B3NoContext { .. } => "b3",
        TranslateError::Pinpoint(_) | TranslateError::SpanIdUnmappable => "pinpoint",
        _ => "other",
    }
}

fn warning_reason(w: &Warning) -> Option<&'static str> {
    Some(match w {
        Warning::TraceparentInvalid(_) => "traceparent",
        Warning::B3SingleInvalid(_) => "b3",
        Warning::TracestateDropped(_) => "tracestate",
        Warning::PpIgnored(_) => "pp",
        Warning::PpbIgnored(_) => "ppb",
        Warning::PpbTxidMismatch(_) => "ppb",
        _ => return None,
    })
}

/// A request whose trace headers cannot be read: forwarded as it is, or with them
/// removed (`bad_headers: drop`).
fn bad(
    input: &[(&str, &str)],
    o: &HopOptions,
    mut problems: Vec<&'static str>,
    why: &'static str,
) -> Plan {
    let mut plan = Plan::new(Action::Bad);
    problems.push(why);
    plan.problems = problems;
    if o.bad_headers == BadHeaders::Drop {
        for (name, _) in input {
            if let Ok(n) = HeaderName::from_bytes(name.as_bytes())
                && !plan.remove.contains(&n)
            {
                plan.remove.push(n);
            }
        }
    }
    plan
}

/// The request's tracestate (several headers joined), if any.
fn joined_tracestate(input: &[(&str, &str)]) -> Option<String> {
    let parts: Vec<&str> = input
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(h::TRACESTATE))
        .map(|(_, v)| *v)
        .collect();
    (!parts.is_empty()).then(|| parts.join(","))
}

fn traceparent_of(input: &[(&str, &str)]) -> Option<TraceParent> {
    input
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(h::TRACEPARENT))
        .and_then(|(_, v)| TraceParent::parse(v.trim()).ok())
}

/// Pinpoint headers in: the W3C headers the translator wrote, unless the request
/// already carries the same W3C context (it came through an egress that wrote both).
fn pinpoint_in(
    input: &[(&str, &str)],
    buf: &HeaderBuf,
    trace: TraceId,
    parent: SpanId,
    plan: &mut Plan,
) {
    let same =
        traceparent_of(input).is_some_and(|tp| tp.trace_id == trace && tp.parent_id == parent);
    if !same {
        plan.remove.push(HeaderName::from_static(h::TRACESTATE));
        plan.set_buf(buf);
    }
}

/// Runs the translator; `Err` is a finished plan (no context or bad headers).
fn translate<'a>(
    input: &'a [(&'a str, &'a str)],
    o: &'a HopOptions,
    buf: &mut HeaderBuf,
    problems: &mut Vec<&'static str>,
) -> Result<crate::ids::translate::Outcome<'a>, Result<(), Plan>> {
    match o.translator.translate_into(input.iter().copied(), buf) {
        Ok(outcome) => {
            problems.extend(outcome.warnings.iter().filter_map(warning_reason));
            Ok(outcome)
        }
        Err(TranslateError::NoContext) => Err(Ok(())),
        Err(e) => Err(Err(bad(input, o, std::mem::take(problems), reason(&e)))),
    }
}

/// A request entering the service. `fresh` are the ids of a context to start if it
/// carries none.
pub fn ingress(
    input: &[(&str, &str)],
    o: &HopOptions,
    fresh: (TraceId, SpanId),
    problems: Vec<&'static str>,
) -> Plan {
    let mut problems = problems;
    let mut buf = HeaderBuf::new();
    let outcome = match translate(input, o, &mut buf, &mut problems) {
        Ok(outcome) => outcome,
        Err(Err(mut plan)) => {
            if o.bad_headers == BadHeaders::Drop && o.start_context {
                let started = start(o, fresh);
                plan.set = started.set;
                plan.record = started.record;
            }
            return plan;
        }
        Err(Ok(())) if o.start_context => {
            let mut plan = start(o, fresh);
            plan.problems = problems;
            return plan;
        }
        Err(Ok(())) => {
            let mut plan = Plan::new(Action::None);
            plan.problems = problems;
            return plan;
        }
    };
    let mut plan;
    if outcome.direction == Direction::PinpointToW3c {
        plan = Plan::new(Action::PinpointToW3c);
        pinpoint_in(input, &buf, outcome.trace_id, outcome.parent_id, &mut plan);
    } else {
        plan = Plan::new(Action::W3cKept);
        if outcome.source == Source::Traceparent {
            mark_hop(input, outcome.trace_id, outcome.parent_id, o, &mut plan);
        }
    }
    plan.record = Some((outcome.trace_id, outcome.span_id));
    plan.problems = problems;
    plan
}

/// Adds `ppb` `sp:mix(p)` for this hop (keeping a `tx` of this trace) unless the
/// tracestate already has a `ppb` written for it, so that the egress can tell which of
/// several segments of one trace an outbound call belongs to.
fn mark_hop(
    input: &[(&str, &str)],
    trace: TraceId,
    parent: SpanId,
    o: &HopOptions,
    plan: &mut Plan,
) {
    let joined = joined_tracestate(input);
    let mut ts = match joined.as_deref().map(TraceState::parse) {
        Some(Ok(ts)) => ts,
        Some(Err(_)) => return, // already counted as `tracestate`; left alone
        None => TraceState::new(),
    };
    let old = ts
        .get(h::TRACESTATE_PPB)
        .and_then(|v| BridgeEntry::parse(v).ok());
    if old.is_some_and(|b| b.is_for_hop(parent)) {
        return;
    }
    let entry = BridgeEntry {
        txid: old.and_then(|b| b.txid_for(trace, o.translator.marker())),
        parent_span_id: None,
        span_id: Some(entry_span_id(parent)),
    };
    let mut value = String::new();
    entry.write(&mut value);
    if ts.upsert(h::TRACESTATE_PPB, &value).is_ok() {
        plan.remove.push(HeaderName::from_static(h::TRACESTATE));
        plan.set_bytes(h::TRACESTATE, ts.to_header().as_bytes());
    }
}

/// A started context: trace `fresh.0`, parent `fresh.1`, `ppb` marking a root.
fn start(o: &HopOptions, (trace, parent): (TraceId, SpanId)) -> Plan {
    let mut plan = Plan::new(Action::Started);
    plan.set_bytes(
        h::TRACEPARENT,
        TraceParent::new(trace, parent, o.start_sampled)
            .to_header()
            .as_bytes(),
    );
    let segment = entry_span_id(parent);
    let entry = BridgeEntry {
        txid: None,
        parent_span_id: Some(-1),
        span_id: Some(segment),
    };
    let mut value = String::from("ppb=");
    entry.write(&mut value);
    plan.remove.push(HeaderName::from_static(h::TRACESTATE));
    plan.set_bytes(h::TRACESTATE, value.as_bytes());
    plan.record = Some((trace, segment));
    plan
}

/// An outbound call of the service to `target` (the host:port it addressed).
/// `remembered` looks up what the ingress saw for a trace.
pub fn egress(
    input: &[(&str, &str)],
    o: &HopOptions,
    target: Option<&str>,
    remembered: impl FnOnce(TraceId) -> Remembered,
    problems: Vec<&'static str>,
) -> Plan {
    let mut problems = problems;
    let mut buf = HeaderBuf::new();
    let outcome = match translate(input, o, &mut buf, &mut problems) {
        Ok(outcome) => outcome,
        Err(Err(plan)) => return plan,
        Err(Ok(())) => {
            let mut plan = Plan::new(Action::None);
            plan.problems = problems;
            return plan;
        }
    };
    if outcome.direction == Direction::PinpointToW3c {
        let mut plan = Plan::new(Action::PinpointToW3c);
        pinpoint_in(input, &buf, outcome.trace_id, outcome.parent_id, &mut plan);
        plan.problems = problems;
        return plan;
    }
    let mut plan = Plan::new(Action::W3cToPinpoint);
    let joined = (outcome.source == Source::Traceparent)
        .then(|| joined_tracestate(input))
        .flatten();
    let mut ts = match joined.as_deref().map(TraceState::parse) {
        Some(Ok(ts)) => Some(ts),
        Some(Err(_)) => None,
        None => Some(TraceState::new()),
    };
    let old = ts
        .as_ref()
        .and_then(|t| t.get(h::TRACESTATE_PPB))
        .and_then(|v| BridgeEntry::parse(v).ok());
    let (segment, source) = if outcome.parent_span_source == ParentSpanSource::Tracestate {
        // A ppb written for this very call (by another translating hop): exact.
        (Some(outcome.parent_span_id), SegmentSource::Confirmed)
    } else {
        decide(&remembered(outcome.trace_id), old.and_then(|b| b.span_id))
    };
    plan.segment = Some(source);
    let host = target
        .filter(|t| !t.is_empty() && t.len() <= 255 && t.bytes().all(|b| b.is_ascii_graphic()));
    let ctx = PinpointContext {
        txid: outcome.txid,
        span_id: outcome.span_id,
        parent_span_id: segment.unwrap_or(outcome.parent_span_id),
        sampled: outcome.sampled,
        flags: 0,
        parent_app_name: Some(&o.app_name),
        parent_app_type: Some(o.app_type),
        parent_app_namespace: None,
        parent_service_name: None,
        host,
    };
    buf.clear();
    ctx.write_headers(&mut buf);
    plan.set_buf(&buf);
    if let Some(ts) = ts.as_mut() {
        let pp = PpEntry {
            service_name: "",
            application_name: &o.app_name,
            service_type: o.app_type,
        };
        let mut value = String::new();
        if pp.write(&mut value).is_ok() {
            let _ = ts.upsert(h::TRACESTATE_PP, &value);
        }
        let entry = BridgeEntry {
            txid: (outcome.txid_origin == TxidOrigin::Pinpoint).then_some(outcome.txid),
            parent_span_id: segment,
            span_id: Some(outcome.span_id),
        };
        value.clear();
        entry.write(&mut value);
        if ts.upsert(h::TRACESTATE_PPB, &value).is_ok() {
            plan.remove.push(HeaderName::from_static(h::TRACESTATE));
            plan.set_bytes(h::TRACESTATE, ts.to_header().as_bytes());
        }
    }
    plan.problems = problems;
    plan
}

#[cfg(test)]
#[path = "translate_tests.rs"]
mod tests;
