//! Property tests of the identity contract's round trips: trace id ⇄ txid, `mix` ⇄
//! `unmix`, and whole-context translation W3C → Pinpoint → W3C and Pinpoint → W3C →
//! Pinpoint; plus "no parser panics on any input".

use proptest::prelude::*;

use crate::ids::entries::{BridgeEntry, PpEntry};
use crate::ids::mapping::{
    TxidOrigin, hash_txid, mix, trace_id_to_txid, txid_origin, txid_to_trace_id, unmix,
};
use crate::ids::model::{SpanId, TraceId};
use crate::ids::tracestate::TraceStateRef;
use crate::ids::translate::{Direction, TranslateOptions, Translation, translate_headers};
use crate::ids::txid::{AgentId, TransactionId};
use crate::ids::w3c::TraceParent;

fn marker() -> AgentId {
    AgentId::new("otel").unwrap_or_else(|e| panic!("{e}"))
}

fn header<'t>(t: &'t Translation, name: &str) -> Option<&'t str> {
    t.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn pairs(list: &[(&str, String)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn translate(list: &[(&str, String)]) -> Translation {
    translate_headers(&pairs(list), &TranslateOptions::default())
        .unwrap_or_else(|e| panic!("{e}: {list:?}"))
}

/// A Pinpoint-born transaction id (agent id other than the marker).
fn pinpoint_txid() -> impl Strategy<Value = TransactionId> {
    ("[a-zA-Z0-9._-]{1,24}", any::<i64>(), any::<i64>())
        .prop_filter("not the marker", |(a, _, _)| a != "otel")
        .prop_map(|(a, start, seq)| TransactionId {
            agent_id: AgentId::new(&a).unwrap_or_else(|e| panic!("{e}")),
            agent_start_time: start,
            sequence: seq,
        })
}

/// Any txid: bridge-born (from a random trace id) or Pinpoint-born.
fn any_txid() -> impl Strategy<Value = TransactionId> {
    prop_oneof![
        (1..=u128::MAX).prop_map(|t| trace_id_to_txid(TraceId::from_u128(t), marker())),
        pinpoint_txid(),
    ]
}

/// A parent application: name, type, service name (possibly empty).
fn parent_app() -> impl Strategy<Value = (String, i32, String)> {
    ("[a-zA-Z0-9._-]{1,40}", any::<i32>(), "[a-z0-9-]{0,12}")
}

/// A W3C parent-id whose Pinpoint SpanID is not the substituted -1.
fn parent_id() -> impl Strategy<Value = u64> {
    (1..=u64::MAX).prop_filter("mix(p) != -1", |p| mix(*p) != u64::MAX)
}

proptest! {
    #[test]
    fn prop_trace_id_to_txid_to_trace_id_is_identity(t in 1..=u128::MAX) {
        let trace = TraceId::from_u128(t);
        let tx = trace_id_to_txid(trace, marker());
        prop_assert_eq!(txid_origin(&tx, marker()), TxidOrigin::Bridge);
        prop_assert_eq!(txid_to_trace_id(&tx, marker()), trace);
        // Also through the txid's text form.
        let reparsed = TransactionId::parse(&tx.to_string()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(txid_to_trace_id(&reparsed, marker()), trace);
    }

    #[test]
    fn prop_pinpoint_txid_hash_is_stable_and_never_zero(tx in pinpoint_txid()) {
        let trace = txid_to_trace_id(&tx, marker());
        prop_assert!(!trace.is_zero());
        prop_assert_eq!(trace, hash_txid(&tx));
        let reparsed = TransactionId::parse(&tx.to_string()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(reparsed, tx);
    }

    #[test]
    fn prop_mix_then_unmix_is_identity(x in any::<u64>()) {
        prop_assert_eq!(unmix(mix(x)), x);
        prop_assert_eq!(mix(unmix(x)), x);
    }

    /// W3C → Pinpoint → W3C keeps the trace id, the parent-id, sampling, and the
    /// tracestate entries Pinpoint headers can carry (pp, and ppb for a Pinpoint-born
    /// trace). Other vendors' members have no Pinpoint header to ride in.
    #[test]
    fn prop_w3c_to_pinpoint_to_w3c_keeps_trace_sampling_and_tracestate(
        otel_trace in 1..=u128::MAX,
        pinpoint_born in proptest::option::of(pinpoint_txid()),
        parent in parent_id(),
        sampled in any::<bool>(),
        app in proptest::option::of(parent_app()),
        ps in any::<i64>().prop_filter("not -1", |v| *v != -1),
    ) {
        let parent = SpanId::from_u64(parent);
        let trace = pinpoint_born.map_or(TraceId::from_u128(otel_trace), |tx| hash_txid(&tx));
        let mut tracestate = String::new();
        if let Some(tx) = pinpoint_born {
            // The entry a translating hop wrote for this very hop.
            let entry = BridgeEntry {
                txid: Some(tx),
                parent_span_id: Some(ps),
                span_id: Some(crate::ids::mapping::entry_span_id(parent)),
            };
            tracestate.push_str("ppb=");
            entry.write(&mut tracestate);
        }
        if let Some((name, ty, svc)) = &app {
            if !tracestate.is_empty() {
                tracestate.push(',');
            }
            tracestate.push_str("pp=");
            let pp = PpEntry { service_name: svc, application_name: name, service_type: *ty };
            pp.write(&mut tracestate).map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
        let mut input = vec![("traceparent", TraceParent::new(trace, parent, sampled).to_header())];
        if !tracestate.is_empty() {
            input.push(("tracestate", tracestate.clone()));
        }

        let pinpoint = translate(&input);
        prop_assert_eq!(pinpoint.direction, Direction::W3cToPinpoint);
        let back = translate_headers(&pinpoint.headers, &TranslateOptions::default())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;

        let tp = TraceParent::parse(header(&back, "traceparent").unwrap_or_default())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(tp.trace_id, trace);
        prop_assert_eq!(tp.parent_id, parent);
        prop_assert_eq!(tp.sampled(), sampled);
        let out_state = header(&back, "tracestate").unwrap_or_default();
        let out = TraceStateRef::parse(out_state).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(out.get("pp"), TraceStateRef::parse(&tracestate).ok().and_then(|t| t.get("pp")));
        if pinpoint_born.is_some() {
            // Pinpoint-born with this hop's entry: the whole tracestate comes back.
            prop_assert_eq!(out_state, tracestate.as_str());
        } else {
            let ppb = BridgeEntry::parse(out.get("ppb").unwrap_or_default())
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(ppb.txid, None);
            prop_assert!(ppb.is_for_hop(parent));
        }
    }

    /// Pinpoint → W3C → Pinpoint keeps the original txid, SpanID, pSpanID, sampling and
    /// the parent application through the tracestate entries.
    #[test]
    fn prop_pinpoint_to_w3c_to_pinpoint_keeps_txid_spans_and_parent_app(
        tx in any_txid(),
        span in any::<i64>().prop_filter("not 0 or -1", |v| *v != 0 && *v != -1),
        parent_span in any::<i64>().prop_filter("not -1", |v| *v != -1),
        sampled in any::<bool>(),
        app in proptest::option::of(parent_app()),
    ) {
        let mut input = vec![
            ("Pinpoint-TraceID", tx.to_string()),
            ("Pinpoint-SpanID", span.to_string()),
            ("Pinpoint-pSpanID", parent_span.to_string()),
            ("Pinpoint-Flags", "0".to_owned()),
        ];
        if !sampled {
            input.push(("Pinpoint-Sampled", "s0".to_owned()));
        }
        if let Some((name, ty, svc)) = &app {
            input.push(("Pinpoint-pAppName", name.clone()));
            input.push(("Pinpoint-pAppType", ty.to_string()));
            if !svc.is_empty() {
                input.push(("Pinpoint-pServiceName", svc.clone()));
            }
        }
        let w3c = translate(&input);
        prop_assert_eq!(w3c.direction, Direction::PinpointToW3c);
        let back = translate_headers(&w3c.headers, &TranslateOptions::default())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back.direction, Direction::W3cToPinpoint);
        prop_assert!(back.warnings.is_empty(), "{:?}", back.warnings);
        let mut expected: Vec<(String, String)> = pairs(&input);
        // Output order: TraceID, SpanID, pSpanID, Sampled, Flags, pAppName, pAppType, pServiceName.
        expected.sort_by_key(|(k, _)| order(k));
        prop_assert_eq!(back.headers, expected);
    }
}

/// Header names the translator reads, in mixed case.
const NAMES: [&str; 10] = [
    "traceparent",
    "TraceState",
    "b3",
    "X-B3-TraceId",
    "x-b3-spanid",
    "X-B3-Sampled",
    "Pinpoint-TraceID",
    "pinpoint-spanid",
    "Pinpoint-pSpanID",
    "Pinpoint-pAppType",
];

proptest! {
    /// Every parser returns a value or a typed error for any input; none panics.
    #[test]
    fn prop_parsers_never_panic_on_any_text(s in "\\PC{0,80}", t in "[ -~]{0,80}") {
        for text in [s.as_str(), t.as_str()] {
            let _ = TraceParent::parse(text);
            let _ = TraceStateRef::parse(text);
            let _ = crate::ids::b3::parse_single(text);
            let _ = TransactionId::parse(text);
            let _ = PpEntry::parse(text);
            let _ = BridgeEntry::parse(text);
            let _ = crate::ids::translate::parse_header_lines(text);
            let _ = crate::ids::duration::parse_duration(text);
            let _ = TraceId::from_hex(text);
        }
    }

    /// Whole-header-set translation never panics, whatever the values.
    #[test]
    fn prop_translate_never_panics(values in proptest::collection::vec((0..NAMES.len(), "[ -~]{0,70}"), 0..6)) {
        let input: Vec<(String, String)> = values
            .into_iter()
            .map(|(i, v)| (NAMES[i].to_owned(), v))
            .collect();
        let _ = translate_headers(&input, &TranslateOptions::default());
    }
}

fn order(name: &str) -> usize {
    [
        "Pinpoint-TraceID",
        "Pinpoint-SpanID",
        "Pinpoint-pSpanID",
        "Pinpoint-Sampled",
        "Pinpoint-Flags",
        "Pinpoint-pAppName",
        "Pinpoint-pAppType",
        "Pinpoint-pServiceName",
    ]
    .iter()
    .position(|n| *n == name)
    .unwrap_or(usize::MAX)
}
