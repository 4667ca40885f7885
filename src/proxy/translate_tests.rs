use proptest::prelude::*;

use super::*;
use crate::ids::mapping::{hash_txid, trace_id_to_txid, unmix};
use crate::ids::{AgentId, TransactionId, TranslateOptions};

fn opts(bad_headers: BadHeaders) -> HopOptions {
    HopOptions {
        translator: Translator::new(&TranslateOptions::default()).expect("valid"),
        app_name: "py-app".to_owned(),
        app_type: 1700,
        bad_headers,
        start_context: true,
        start_sampled: true,
    }
}

fn fresh() -> (TraceId, SpanId) {
    (TraceId::from_u128(0xabc), SpanId::from_u64(0x1234))
}

fn set_of(plan: &Plan) -> Vec<(String, String)> {
    plan.set
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect()
}

fn get<'a>(set: &'a [(String, String)], name: &str) -> Option<&'a str> {
    set.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

fn marker() -> AgentId {
    AgentId::new("otel").expect("valid")
}

/// What the real pinpoint-node-agent sends (ids.md section 9, Pinpoint → W3C).
#[test]
fn ingress_translates_pinpoint_headers_and_remembers_the_segment() {
    let input = [
        ("host", "127.0.0.1:8080"),
        ("pinpoint-traceid", "node-agent-1^1700000000000^7"),
        ("pinpoint-spanid", "2190068016026963"),
        ("pinpoint-pspanid", "8034295726950587"),
        ("pinpoint-pappname", "node-app"),
        ("pinpoint-papptype", "1400"),
        ("pinpoint-flags", "0"),
        ("pinpoint-host", "127.0.0.1:8080"),
    ];
    let plan = ingress(&input, &opts(BadHeaders::Forward), fresh(), Vec::new());
    assert_eq!(plan.action, Action::PinpointToW3c);
    let set = set_of(&plan);
    let tx = TransactionId::parse("node-agent-1^1700000000000^7").expect("valid");
    let trace = hash_txid(&tx);
    let parent = SpanId::from_u64(unmix(2_190_068_016_026_963));
    assert_eq!(
        get(&set, "traceparent"),
        Some(TraceParent::new(trace, parent, true).to_header().as_str())
    );
    assert_eq!(
        get(&set, "tracestate"),
        Some(
            "ppb=tx:node-agent-1^1700000000000^7;ps:8034295726950587;sp:2190068016026963,pp=svc:;app:node-app;type:1400"
        )
    );
    assert!(
        !plan.set.iter().any(|(n, _)| n == "host"),
        "Host is kept as it is"
    );
    assert_eq!(plan.record, Some((trace, 2_190_068_016_026_963)));
    assert!(plan.problems.is_empty());
}

#[test]
fn ingress_respects_pinpoint_sampled_s0() {
    let input = [
        ("pinpoint-traceid", "a^1^2"),
        ("pinpoint-spanid", "5"),
        ("pinpoint-pspanid", "6"),
        ("pinpoint-sampled", "s0"),
    ];
    let plan = ingress(&input, &opts(BadHeaders::Forward), fresh(), Vec::new());
    let set = set_of(&plan);
    assert!(
        get(&set, "traceparent").is_some_and(|t| t.ends_with("-00")),
        "{set:?}"
    );
}

#[test]
fn ingress_starts_a_root_context_the_bridge_resolves_statelessly() {
    let plan = ingress(
        &[("host", "x")],
        &opts(BadHeaders::Forward),
        fresh(),
        Vec::new(),
    );
    assert_eq!(plan.action, Action::Started);
    let set = set_of(&plan);
    let (trace, p) = fresh();
    assert_eq!(
        get(&set, "traceparent"),
        Some(TraceParent::new(trace, p, true).to_header().as_str())
    );
    let seg = entry_span_id(p);
    assert_eq!(
        get(&set, "tracestate"),
        Some(format!("ppb=ps:-1;sp:{seg}").as_str())
    );
    // The exporter reads ps:-1 for this hop as "root".
    let entry = BridgeEntry::parse(&format!("ps:-1;sp:{seg}")).expect("valid");
    assert_eq!(entry.parent_span_for(p), Some(-1));
    assert_eq!(plan.record, Some((trace, seg)));

    let mut no_start = opts(BadHeaders::Forward);
    no_start.start_context = false;
    let plan = ingress(&[], &no_start, fresh(), Vec::new());
    assert_eq!(
        (plan.action, plan.set.len(), plan.record),
        (Action::None, 0, None)
    );
}

#[test]
fn ingress_marks_a_w3c_hop_with_ppb_sp_unless_already_marked() {
    let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let parent = SpanId::from_hex("b7ad6b7169203331").expect("hex");
    let seg = entry_span_id(parent);
    let plan = ingress(
        &[("traceparent", tp), ("tracestate", "other=1")],
        &opts(BadHeaders::Forward),
        fresh(),
        Vec::new(),
    );
    assert_eq!(plan.action, Action::W3cKept);
    let set = set_of(&plan);
    assert_eq!(
        get(&set, "tracestate"),
        Some(format!("ppb=sp:{seg},other=1").as_str())
    );
    assert!(get(&set, "traceparent").is_none());
    let trace = TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").expect("hex");
    assert_eq!(plan.record, Some((trace, seg)));

    let marked = format!("ppb=ps:5;sp:{seg}");
    let plan = ingress(
        &[("traceparent", tp), ("tracestate", &marked)],
        &opts(BadHeaders::Forward),
        fresh(),
        Vec::new(),
    );
    assert!(plan.set.is_empty() && plan.remove.is_empty(), "{plan:?}");
}

/// ids.md section 9, W3C → Pinpoint, with the segment the ingress saw.
#[test]
fn egress_writes_pinpoint_headers_and_ppb_for_the_callee() {
    let trace = TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").expect("hex");
    let p = SpanId::from_u64(0x1111);
    let seg = entry_span_id(p);
    let c = SpanId::from_hex("00f067aa0ba902b7").expect("hex");
    let tp = TraceParent::new(trace, c, true).to_header();
    let ts = format!("ppb=ps:-1;sp:{seg},other=1");
    let input = [("traceparent", tp.as_str()), ("tracestate", ts.as_str())];
    let plan = egress(
        &input,
        &opts(BadHeaders::Forward),
        Some("127.0.0.1:9000"),
        |t| {
            assert_eq!(t, trace);
            Remembered::from_slice(&[seg])
        },
        Vec::new(),
    );
    assert_eq!(plan.action, Action::W3cToPinpoint);
    assert_eq!(plan.segment, Some(SegmentSource::Confirmed));
    let set = set_of(&plan);
    let txid = trace_id_to_txid(trace, marker()).to_string();
    let mixed_c = entry_span_id(c);
    assert_eq!(get(&set, "pinpoint-traceid"), Some(txid.as_str()));
    assert_eq!(
        get(&set, "pinpoint-spanid"),
        Some(mixed_c.to_string().as_str())
    );
    assert_eq!(
        get(&set, "pinpoint-pspanid"),
        Some(seg.to_string().as_str())
    );
    assert_eq!(get(&set, "pinpoint-pappname"), Some("py-app"));
    assert_eq!(get(&set, "pinpoint-papptype"), Some("1700"));
    assert_eq!(get(&set, "pinpoint-host"), Some("127.0.0.1:9000"));
    assert_eq!(get(&set, "pinpoint-flags"), Some("0"));
    assert_eq!(get(&set, "pinpoint-sampled"), None);
    assert_eq!(
        get(&set, "tracestate"),
        Some(format!("ppb=ps:{seg};sp:{mixed_c},pp=svc:;app:py-app;type:1700,other=1").as_str())
    );
    // The callee's bridge resolves its parent from that entry alone (ids.md 5.1).
    let entry = BridgeEntry::parse(&format!("ps:{seg};sp:{mixed_c}")).expect("valid");
    assert_eq!(entry.parent_span_for(c), Some(seg));
}

#[test]
fn egress_counts_what_it_cannot_decide() {
    let tp = "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01";
    let plan = egress(
        &[("traceparent", tp)],
        &opts(BadHeaders::Forward),
        None,
        |_| Remembered::default(),
        Vec::new(),
    );
    assert_eq!(plan.segment, Some(SegmentSource::Unknown));
    let set = set_of(&plan);
    assert!(
        get(&set, "pinpoint-pspanid").is_some(),
        "a stand-in is still sent"
    );
    let ts = get(&set, "tracestate").expect("tracestate");
    assert!(
        ts.starts_with("ppb=sp:"),
        "no ps without a known segment: {ts}"
    );

    let plan = egress(
        &[("traceparent", tp)],
        &opts(BadHeaders::Forward),
        None,
        |_| Remembered::from_slice(&[1, 2]),
        Vec::new(),
    );
    assert_eq!(plan.segment, Some(SegmentSource::Ambiguous));
    assert_eq!(get(&set_of(&plan), "pinpoint-pspanid"), Some("2"));
}

#[test]
fn a_pinpoint_born_txid_survives_the_otel_service() {
    let input = [
        ("pinpoint-traceid", "agentA^1700000000000^42"),
        ("pinpoint-spanid", "77"),
        ("pinpoint-pspanid", "66"),
    ];
    let o = opts(BadHeaders::Forward);
    let inp = ingress(&input, &o, fresh(), Vec::new());
    let set = set_of(&inp);
    let (trace, seg) = inp.record.expect("recorded");
    // The service's client span c, with the tracestate its SDK copied.
    let c = SpanId::from_u64(0x42);
    let tp = TraceParent::new(trace, c, true).to_header();
    let ts = get(&set, "tracestate").expect("tracestate").to_owned();
    let out = egress(
        &[("traceparent", &tp), ("tracestate", &ts)],
        &o,
        None,
        |_| Remembered::from_slice(&[seg]),
        Vec::new(),
    );
    let out_set = set_of(&out);
    assert_eq!(
        get(&out_set, "pinpoint-traceid"),
        Some("agentA^1700000000000^42")
    );
    assert_eq!(get(&out_set, "pinpoint-pspanid"), Some("77"));
    assert_eq!(out.segment, Some(SegmentSource::Confirmed));
}

#[test]
fn bad_headers_are_forwarded_or_dropped_and_counted() {
    let input = [("traceparent", "00-zz-01"), ("tracestate", "a=1")];
    let plan = ingress(&input, &opts(BadHeaders::Forward), fresh(), Vec::new());
    assert_eq!(plan.action, Action::Bad);
    assert_eq!(plan.problems, ["traceparent"]);
    assert!(plan.set.is_empty() && plan.remove.is_empty());

    let plan = ingress(&input, &opts(BadHeaders::Drop), fresh(), Vec::new());
    let removed: Vec<&str> = plan.remove.iter().map(HeaderName::as_str).collect();
    assert_eq!(removed, ["traceparent", "tracestate"]);
    assert!(
        plan.record.is_some(),
        "a dropped context is replaced by a started one"
    );

    let plan = egress(
        &[("pinpoint-traceid", "a^1^2"), ("pinpoint-traceid", "a^1^3")],
        &opts(BadHeaders::Forward),
        None,
        |_| Remembered::default(),
        Vec::new(),
    );
    assert_eq!(plan.problems, ["duplicate_header"]);
}

fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("traceparent".to_owned()),
        Just("tracestate".to_owned()),
        Just("b3".to_owned()),
        Just("x-b3-traceid".to_owned()),
        Just("x-b3-spanid".to_owned()),
        Just("x-b3-sampled".to_owned()),
        Just("pinpoint-traceid".to_owned()),
        Just("pinpoint-spanid".to_owned()),
        Just("pinpoint-pspanid".to_owned()),
        Just("pinpoint-sampled".to_owned()),
        Just("pinpoint-pappname".to_owned()),
        Just("pinpoint-papptype".to_owned()),
        Just("pinpoint-host".to_owned()),
        Just("x-other".to_owned()),
    ]
}

fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_owned()),
        Just("ppb=tx:a^1^2;ps:-1;sp:5,pp=svc:;app:x;type:1".to_owned()),
        Just("agentA^1700000000000^42".to_owned()),
        Just("-1".to_owned()),
        Just("0".to_owned()),
        Just("s0".to_owned()),
        "-?[0-9]{1,20}",
        "[ -~]{0,80}",
    ]
}

proptest! {
    /// Random trace header sets: planning never panics, and the plan only ever touches
    /// trace headers.
    #[test]
    fn prop_plans_touch_only_trace_headers(
        headers in proptest::collection::vec((header_name(), header_value()), 0..8),
        drop_bad in any::<bool>(),
    ) {
        let o = opts(if drop_bad { BadHeaders::Drop } else { BadHeaders::Forward });
        // What `trace_headers` hands over: the trace headers only.
        let input: Vec<(&str, &str)> = headers
            .iter()
            .filter(|(n, _)| is_trace_header(n))
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        for plan in [
            ingress(&input, &o, fresh(), Vec::new()),
            egress(&input, &o, Some("h:1"), |_| Remembered::from_slice(&[3]), Vec::new()),
        ] {
            for n in plan.remove.iter().chain(plan.set.iter().map(|(n, _)| n)) {
                prop_assert!(is_trace_header(n.as_str()), "{n}");
            }
        }
    }
}
