//! Table-driven tests of whole-context translation, precedence, errors and the JSON
//! report.

use std::sync::Arc;

use super::*;
use crate::ids::cache::{CacheConfig, CallerSegment, MappingCache};
use crate::ids::mapping::{mix, unmix};

const TP: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
const TXID_A: &str = "agentA^1700000000000^42";
/// mix(0xb7ad6b7169203331) as i64.
const SPAN_FOR_B7AD: &str = "-3855584596117411906";

fn hs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn run(pairs: &[(&str, &str)]) -> Result<Translation, TranslateError> {
    translate_headers(&hs(pairs), &TranslateOptions::default())
}

fn headers_of(t: &Translation) -> Vec<(&str, &str)> {
    t.headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

#[test]
fn ids_md_example_w3c_to_pinpoint() {
    let t = run(&[("traceparent", TP)]).expect("translates");
    assert_eq!(t.direction, Direction::W3cToPinpoint);
    assert_eq!(t.source, Source::Traceparent);
    assert_eq!(
        headers_of(&t),
        vec![
            (
                "Pinpoint-TraceID",
                "otel^790211418057950173^-8914616934935285348"
            ),
            ("Pinpoint-SpanID", SPAN_FOR_B7AD),
            ("Pinpoint-pSpanID", "-5211391058958601423"),
            ("Pinpoint-Flags", "0"),
        ]
    );
    assert_eq!(t.ids.transaction_id_origin, TxidOrigin::Bridge);
    assert_eq!(t.ids.parent_id.hex, "b7ad6b7169203331");
    assert_eq!(t.ids.parent_span_id_source, ParentSpanSource::StandIn);
    assert!(t.ids.sampled);
    assert_eq!(t.warnings.len(), 1, "{:?}", t.warnings);
    assert!(t.warnings[0].starts_with("Pinpoint-pSpanID is a stand-in"));
}

#[test]
fn ids_md_example_pinpoint_to_w3c() {
    let t = run(&[
        ("Pinpoint-TraceID", TXID_A),
        ("Pinpoint-SpanID", SPAN_FOR_B7AD),
        ("Pinpoint-pSpanID", "5"),
        ("Pinpoint-Flags", "0"),
        ("Pinpoint-pAppName", "shop-api"),
        ("Pinpoint-pAppType", "1010"),
    ])
    .expect("translates");
    assert_eq!(t.direction, Direction::PinpointToW3c);
    assert_eq!(
        headers_of(&t),
        vec![
            (
                "traceparent",
                "00-d753c5cba22eb84c93f5d8478fd545f2-b7ad6b7169203331-01"
            ),
            (
                "tracestate",
                "ppb=tx:agentA^1700000000000^42;ps:5;sp:-3855584596117411906,pp=svc:;app:shop-api;type:1010"
            ),
        ]
    );
    assert_eq!(t.ids.transaction_id_origin, TxidOrigin::Pinpoint);
    assert_eq!(t.ids.parent_span_id.int, 5);
    assert!(t.warnings.is_empty(), "{:?}", t.warnings);
    let app = t.ids.parent_application.expect("parent app");
    assert_eq!(
        (app.name.as_str(), app.service_type),
        ("shop-api", Some(1010))
    );
}

#[test]
fn sampled_flags_both_ways() {
    let not_sampled = TP.replace("-01", "-00");
    let t = run(&[("traceparent", &not_sampled)]).expect("translates");
    assert_eq!(
        t.headers
            .iter()
            .find(|(k, _)| k == "Pinpoint-Sampled")
            .map(|(_, v)| v.as_str()),
        Some("s0")
    );
    let t = run(&[
        ("pinpoint-traceid", TXID_A),
        ("PINPOINT-SPANID", "7"),
        ("Pinpoint-PSpanId", "8"),
        ("Pinpoint-Sampled", "s0"),
    ])
    .expect("translates, names case-insensitive");
    assert!(t.headers[0].1.ends_with("-00"), "{:?}", t.headers);
    assert!(!t.ids.sampled);
}

#[test]
fn header_names_are_case_insensitive_and_values_trimmed() {
    let t = run(&[("TraceParent", &format!("  {TP}\t"))]).expect("translates");
    assert_eq!(
        t.headers[0].1,
        "otel^790211418057950173^-8914616934935285348"
    );
}

/// A valid B3 single header for the same trace as [`TP`].
const B3_SINGLE: &str = "0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1";

#[test]
fn precedence_table() {
    let bad_tp = TP.replace("-01", "-0X");
    type Case<'a> = (Vec<(&'a str, &'a str)>, Result<(Source, &'a str), &'a str>);
    let cases: Vec<Case<'_>> = vec![
        // Valid traceparent wins over B3.
        (
            vec![
                ("traceparent", TP),
                ("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"),
            ],
            Ok((
                Source::Traceparent,
                "B3 headers ignored: a valid traceparent takes precedence",
            )),
        ),
        // Invalid traceparent falls back to B3, with the reason.
        (
            vec![("traceparent", &bad_tp), ("b3", B3_SINGLE)],
            Ok((
                Source::B3Single,
                "traceparent: trace-flags has 'X', expected 2 lower-case hex characters; used the B3 headers instead and dropped tracestate with the invalid traceparent",
            )),
        ),
        (
            vec![
                ("traceparent", &bad_tp),
                ("X-B3-TraceId", "0af7651916cd43dd8448eb211c80319c"),
                ("X-B3-SpanId", "b7ad6b7169203331"),
            ],
            Ok((
                Source::B3Multi,
                "traceparent: trace-flags has 'X', expected 2 lower-case hex characters; used the B3 headers instead and dropped tracestate with the invalid traceparent",
            )),
        ),
        // Single b3 wins over multi; an invalid single falls back to multi.
        (
            vec![
                ("b3", B3_SINGLE),
                ("X-B3-TraceId", "0af7651916cd43dd8448eb211c80319c"),
                ("X-B3-SpanId", "b7ad6b7169203331"),
            ],
            Ok((Source::B3Single, "")),
        ),
        (
            vec![
                ("b3", "nonsense-x"),
                ("X-B3-TraceId", "0af7651916cd43dd8448eb211c80319c"),
                ("X-B3-SpanId", "b7ad6b7169203331"),
            ],
            Ok((
                Source::B3Multi,
                "b3: trace-id is 8 characters long, expected 16 or 32; used the X-B3-* headers instead",
            )),
        ),
        // Errors: nothing left to translate.
        (
            vec![("traceparent", &bad_tp)],
            Err(
                "traceparent: trace-flags has 'X', expected 2 lower-case hex characters (an invalid traceparent starts a new trace, so there is nothing to translate)",
            ),
        ),
        (
            vec![("traceparent", &bad_tp), ("b3", "zz-b7ad6b7169203331")],
            Err(
                "traceparent: trace-flags has 'X', expected 2 lower-case hex characters; the B3 fallback is invalid too: b3: trace-id is 2 characters long, expected 16 or 32",
            ),
        ),
        (
            vec![("traceparent", &bad_tp), ("b3", "0")],
            Err(
                "traceparent: trace-flags has 'X', expected 2 lower-case hex characters (an invalid traceparent starts a new trace, so there is nothing to translate)",
            ),
        ),
        (
            vec![("b3", "0")],
            Err(
                "B3 carries only a sampling decision (not sampled) and no trace context, so there is nothing to translate",
            ),
        ),
        (
            vec![("X-B3-Sampled", "1")],
            Err(
                "B3 carries only a sampling decision (sampled) and no trace context, so there is nothing to translate",
            ),
        ),
        (
            vec![("X-B3-TraceId", "0af7651916cd43dd8448eb211c80319c")],
            Err("B3 multi headers: X-B3-TraceId is present but X-B3-SpanId is missing"),
        ),
        (
            vec![],
            Err(
                "no trace context to translate: none of traceparent, b3, X-B3-TraceId, X-B3-SpanId, Pinpoint-TraceID, Pinpoint-SpanID, Pinpoint-pSpanID is present",
            ),
        ),
        (
            vec![("Pinpoint-Sampled", "s0"), ("tracestate", "a=1")],
            Err(
                "no trace context to translate: none of traceparent, b3, X-B3-TraceId, X-B3-SpanId, Pinpoint-TraceID, Pinpoint-SpanID, Pinpoint-pSpanID is present",
            ),
        ),
        (
            vec![("traceparent", TP), ("Traceparent", TP)],
            Err("header traceparent appears more than once"),
        ),
        (
            vec![
                ("Pinpoint-TraceID", TXID_A),
                ("Pinpoint-SpanID", "0"),
                ("Pinpoint-pSpanID", "1"),
            ],
            Err("Pinpoint-SpanID: 0 maps to the all-zero W3C parent-id and cannot be translated"),
        ),
        (
            vec![("Pinpoint-TraceID", TXID_A), ("Pinpoint-SpanID", "1")],
            Err(
                "Pinpoint-pSpanID is missing (a missing Pinpoint-TraceID, Pinpoint-SpanID or Pinpoint-pSpanID means a new trace)",
            ),
        ),
        (
            vec![
                ("Pinpoint-SpanID", "1"),
                ("Pinpoint-pSpanID", "2"),
                ("traceparent", TP),
            ],
            Err(
                "Pinpoint-TraceID is missing (a missing Pinpoint-TraceID, Pinpoint-SpanID or Pinpoint-pSpanID means a new trace)",
            ),
        ),
    ];
    for (input, expected) in cases {
        let got = run(&input);
        match (&got, expected) {
            (Ok(t), Ok((source, warning))) => {
                assert_eq!(t.source, source, "{input:?}");
                if !warning.is_empty() {
                    assert!(
                        t.warnings.iter().any(|w| w == warning),
                        "{input:?}: {:?}",
                        t.warnings
                    );
                }
                assert_eq!(t.ids.trace_id.to_hex(), "0af7651916cd43dd8448eb211c80319c");
            }
            (Err(e), Err(msg)) => assert_eq!(e.to_string(), msg, "{input:?}"),
            _ => panic!("{input:?}: got {got:?}, expected {expected:?}"),
        }
    }
}

#[test]
fn pinpoint_headers_win_over_w3c() {
    let t = run(&[
        ("traceparent", TP),
        ("Pinpoint-TraceID", TXID_A),
        ("Pinpoint-SpanID", "7"),
        ("Pinpoint-pSpanID", "8"),
    ])
    .expect("translates");
    assert_eq!(t.direction, Direction::PinpointToW3c);
    assert!(
        t.warnings
            .iter()
            .any(|w| w.contains("Pinpoint headers take precedence"))
    );
}

#[test]
fn tracestate_problems_are_warnings_not_errors() {
    let cases: &[(&str, &str)] = &[
        (
            "a=1,a=2",
            "tracestate: key \"a\" appears more than once; tracestate dropped (the traceparent is still used)",
        ),
        (
            "pp=svc:x;app:a",
            "tracestate pp: field \"type\" is missing; entry ignored",
        ),
        (
            "ppb=ps:x",
            "tracestate ppb: field \"ps\" value \"x\" is not a decimal i64; entry ignored",
        ),
        (
            "ppb=tx:agentA^1^2",
            "tracestate ppb: tx agentA^1^2 does not map to this trace-id; ignored",
        ),
    ];
    for (ts, warning) in cases {
        let t = run(&[("traceparent", TP), ("tracestate", ts)]).expect("translates");
        assert!(
            t.warnings.iter().any(|w| w == warning),
            "{ts}: {:?}",
            t.warnings
        );
        assert_eq!(
            t.headers[0].1,
            "otel^790211418057950173^-8914616934935285348"
        );
    }
}

#[test]
fn several_tracestate_headers_form_one_list() {
    let t = run(&[
        ("traceparent", TP),
        ("tracestate", "congo=t61rcWkgMzE"),
        ("tracestate", "pp=svc:orders;app:shop-api;type:1010"),
    ])
    .expect("translates");
    let app = t
        .ids
        .parent_application
        .clone()
        .expect("pp read from the second header");
    assert_eq!(app.name, "shop-api");
    assert_eq!(app.service_name.as_deref(), Some("orders"));
    assert_eq!(app.source, ParentAppSource::TracestateUnverified);
    assert!(headers_of(&t).contains(&("Pinpoint-pServiceName", "orders")));
}

#[test]
fn pinpoint_born_txid_survives_an_otel_hop() {
    // Pinpoint agent A calls OTel service B through a translating hop.
    let into_otel = run(&[
        ("Pinpoint-TraceID", TXID_A),
        ("Pinpoint-SpanID", "1234"),
        ("Pinpoint-pSpanID", "5678"),
        ("Pinpoint-pAppName", "agent-a-app"),
        ("Pinpoint-pAppType", "1010"),
    ])
    .expect("translates");
    let trace = into_otel.ids.trace_id;
    let tracestate = into_otel.headers[1].1.clone();
    // B's SDK propagates the tracestate untouched but sends its own client span id.
    let b_client = "00f067aa0ba902b7";
    let from_b = format!("00-{trace}-{b_client}-01");
    let opts = TranslateOptions {
        app_name: Some("service-b".to_owned()),
        app_type: Some(1220),
        ..TranslateOptions::default()
    };
    let t = translate_headers(
        &hs(&[("traceparent", &from_b), ("tracestate", &tracestate)]),
        &opts,
    )
    .expect("translates");
    assert_eq!(
        t.headers[0],
        ("Pinpoint-TraceID".to_owned(), TXID_A.to_owned())
    );
    assert_eq!(t.ids.span_id.int, mix(0x00f0_67aa_0ba9_02b7) as i64);
    // The ppb entry names A's hop, not this one: ps is stale and not used.
    assert_eq!(t.ids.parent_span_id_source, ParentSpanSource::StandIn);
    assert_eq!(t.ids.parent_span_id.int, 0x00f0_67aa_0ba9_02b7);
    let app = t.ids.parent_application.expect("app");
    assert_eq!(
        (app.name.as_str(), app.source),
        ("service-b", ParentAppSource::Options)
    );
}

#[test]
fn options_feed_the_pinpoint_headers() {
    let opts = TranslateOptions {
        marker: "bridge1".to_owned(),
        app_name: Some("edge".to_owned()),
        app_type: Some(1220),
        caller_span_id: Some(99),
        target_host: Some("orders:8080".to_owned()),
    };
    let t = translate_headers(&hs(&[("traceparent", TP)]), &opts).expect("translates");
    assert_eq!(
        headers_of(&t),
        vec![
            (
                "Pinpoint-TraceID",
                "bridge1^790211418057950173^-8914616934935285348"
            ),
            ("Pinpoint-SpanID", SPAN_FOR_B7AD),
            ("Pinpoint-pSpanID", "99"),
            ("Pinpoint-Flags", "0"),
            ("Pinpoint-pAppName", "edge"),
            ("Pinpoint-pAppType", "1220"),
            ("Pinpoint-Host", "orders:8080"),
        ]
    );
    assert!(t.warnings.is_empty(), "{:?}", t.warnings);
}

#[test]
fn invalid_options_are_reported() {
    let cases: Vec<(TranslateOptions, &str)> = vec![
        (
            TranslateOptions {
                marker: "bad marker".to_owned(),
                ..TranslateOptions::default()
            },
            "translate options: marker: agentId \"bad marker\" has ' ' at index 3; allowed are a-z A-Z 0-9 . _ -",
        ),
        (
            TranslateOptions {
                app_name: Some("a/b".to_owned()),
                ..TranslateOptions::default()
            },
            "translate options: app_name: Pinpoint-pAppName: \"a/b\" has '/' at index 1; allowed are a-z A-Z 0-9 . _ -",
        ),
        (
            TranslateOptions {
                target_host: Some("a b".to_owned()),
                ..TranslateOptions::default()
            },
            "translate options: target_host \"a b\" must be 1 to 255 printable ASCII characters without spaces",
        ),
    ];
    for (opts, msg) in cases {
        assert_eq!(
            translate_headers(&hs(&[("traceparent", TP)]), &opts).map_err(|e| e.to_string()),
            Err(msg.to_owned())
        );
    }
}

#[test]
fn pinpoint_extras_that_w3c_cannot_carry_are_reported() {
    let t = run(&[
        ("Pinpoint-TraceID", TXID_A),
        ("Pinpoint-SpanID", "7"),
        ("Pinpoint-pSpanID", "8"),
        ("Pinpoint-Host", "b:80"),
        ("Pinpoint-pAppNamespace", "ns"),
        ("Pinpoint-pAppName", "a"),
    ])
    .expect("translates");
    for w in [
        "Pinpoint-Host is not carried into the W3C headers (no field for it)",
        "Pinpoint-pAppNamespace is not carried into the W3C headers (no field for it)",
        "tracestate pp not written: Pinpoint-pAppName is present but Pinpoint-pAppType is missing",
    ] {
        assert!(t.warnings.iter().any(|x| x == w), "{w}: {:?}", t.warnings);
    }
    assert!(!t.headers[1].1.contains("pp="), "{:?}", t.headers);
}

#[test]
fn translator_uses_and_feeds_the_cache() {
    let cache = Arc::new(MappingCache::new(&CacheConfig::default()).expect("valid config"));
    let translator = Translator::new(&TranslateOptions::default())
        .expect("valid")
        .with_cache(Arc::clone(&cache));
    let mut out = HeaderBuf::new();
    // Pinpoint -> W3C remembers the Pinpoint-born txid.
    let input = hs(&[
        ("Pinpoint-TraceID", TXID_A),
        ("Pinpoint-SpanID", "7"),
        ("Pinpoint-pSpanID", "8"),
    ]);
    let o = translator
        .translate_into(
            input.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            &mut out,
        )
        .expect("translates");
    let trace = o.trace_id;
    assert_eq!(cache.stats().txid.inserts, 1);
    // A later W3C request without tracestate still gets the original txid, and the
    // caller segment learned by the exporter gives pSpanID and the parent app.
    let client = crate::ids::model::SpanId::from_u64(0xabc);
    cache.insert_caller_segment(
        trace,
        client,
        CallerSegment {
            span_id: -42,
            application: Arc::from("service-b"),
            service_type: 1220,
            destination: None,
        },
    );
    let tp = format!("00-{trace}-{client}-01");
    let input = hs(&[("traceparent", &tp)]);
    let o = translator
        .translate_into(
            input.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            &mut out,
        )
        .expect("translates");
    assert_eq!(o.txid.to_string(), TXID_A);
    assert_eq!(
        (o.parent_span_id, o.parent_span_source),
        (-42, ParentSpanSource::Cache)
    );
    assert_eq!(out.get("Pinpoint-pAppName"), Some("service-b"));
    assert_eq!(out.get("Pinpoint-pAppType"), Some("1220"));
    let stats = cache.stats();
    assert_eq!((stats.txid.hits, stats.caller.hits), (1, 1));
}

#[test]
fn translation_json_round_trips() {
    let t =
        run(&[("traceparent", TP), ("tracestate", "pp=svc:;app:a;type:1")]).expect("translates");
    let json = serde_json::to_value(&t).expect("serializes");
    assert_eq!(json["direction"], "w3c_to_pinpoint");
    assert_eq!(json["source"], "traceparent");
    assert_eq!(json["headers"][0][0], "Pinpoint-TraceID");
    assert_eq!(json["ids"]["trace_id"], "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(
        json["ids"]["span_id"]["int"],
        -3_855_584_596_117_411_906_i64
    );
    assert_eq!(json["ids"]["parent_id"]["hex"], "b7ad6b7169203331");
    assert_eq!(
        json["ids"]["parent_application"]["source"],
        "tracestate_unverified"
    );
    let back: Translation = serde_json::from_value(json).expect("deserializes");
    assert_eq!(back, t);
    let err = run(&[]).expect_err("no context");
    assert_eq!(
        serde_json::to_value(&err).expect("serializes"),
        serde_json::Value::String(err.to_string())
    );
}

#[test]
fn request_and_options_json() {
    let req: TranslateRequest = serde_json::from_str(&format!(
        r#"{{"headers": {{"traceparent": "{TP}", "X-Other": "1"}}}}"#
    ))
    .expect("valid request");
    let t = translate_headers(&req.pairs(), &TranslateOptions::default()).expect("translates");
    assert_eq!(t.direction, Direction::W3cToPinpoint);
    assert!(serde_json::from_str::<TranslateRequest>(r#"{"headers": {}, "x": 1}"#).is_err());

    let opts: TranslateOptions = serde_json::from_str(r#"{"app_name": "edge"}"#).expect("valid");
    assert_eq!(opts.marker, "otel");
    assert_eq!(opts.app_name.as_deref(), Some("edge"));
    assert!(serde_json::from_str::<TranslateOptions>(r#"{"market": "x"}"#).is_err());
}

#[test]
fn header_lines_table() {
    let ok = "# captured with curl -v\r\ntraceparent: 00-x\r\n\r\nPinpoint-Flags:0\nX-Empty:\n";
    assert_eq!(
        parse_header_lines(ok),
        Ok(hs(&[
            ("traceparent", "00-x"),
            ("Pinpoint-Flags", "0"),
            ("X-Empty", "")
        ]))
    );
    let cases: &[(&str, &str)] = &[
        (
            "traceparent: a\nbroken line",
            "header line 2: \"broken line\" has no ':' between name and value",
        ),
        (
            "a: 1\n  folded",
            "header line 2: starts with whitespace (obsolete line folding is not supported)",
        ),
        (
            "traceparent : x",
            "header line 1: header name \"traceparent \" has ' ', which is not allowed in a header name",
        ),
        (": x", "header line 1: header name is empty"),
        (
            "a: x\u{1}y",
            "header line 1: value of a has control character '\\u{1}'",
        ),
    ];
    for (input, msg) in cases {
        assert_eq!(
            parse_header_lines(input).map_err(|e| e.to_string()),
            Err((*msg).to_owned()),
            "{input:?}"
        );
    }
}

#[test]
fn pass_through_hop_restores_pinpoint_headers_exactly() {
    let input = [
        ("Pinpoint-TraceID", TXID_A),
        ("Pinpoint-SpanID", "-77"),
        ("Pinpoint-pSpanID", "123"),
        ("Pinpoint-Sampled", "s0"),
        ("Pinpoint-pAppName", "caller"),
        ("Pinpoint-pAppType", "1800"),
        ("Pinpoint-pServiceName", "svc1"),
    ];
    let w3c = run(&input).expect("translates");
    assert_eq!(w3c.ids.parent_id.int, unmix(-77_i64 as u64) as i64);
    let back = translate_headers(&w3c.headers, &TranslateOptions::default()).expect("translates");
    assert_eq!(
        headers_of(&back),
        vec![
            ("Pinpoint-TraceID", TXID_A),
            ("Pinpoint-SpanID", "-77"),
            ("Pinpoint-pSpanID", "123"),
            ("Pinpoint-Sampled", "s0"),
            ("Pinpoint-Flags", "0"),
            ("Pinpoint-pAppName", "caller"),
            ("Pinpoint-pAppType", "1800"),
            ("Pinpoint-pServiceName", "svc1"),
        ]
    );
    assert!(back.warnings.is_empty(), "{:?}", back.warnings);
}

#[test]
fn tracestate_is_read_only_with_a_valid_traceparent() {
    let pp = "pp=svc:;app:upstream;type:1010";
    let with_b3 = run(&[("b3", B3_SINGLE), ("tracestate", pp)]).expect("translates");
    assert_eq!(with_b3.ids.parent_application, None);
    let with_tp = run(&[("traceparent", TP), ("tracestate", pp)]).expect("translates");
    assert_eq!(
        with_tp.ids.parent_application.map(|a| a.name),
        Some("upstream".to_owned())
    );
}

#[test]
fn a_read_only_translator_reads_the_cache_but_never_writes_it() {
    let cache = Arc::new(MappingCache::new(&CacheConfig::default()).expect("valid config"));
    let translator = Translator::new(&TranslateOptions::default())
        .expect("valid")
        .with_cache_read_only(Arc::clone(&cache));
    let mut out = HeaderBuf::new();
    let input = hs(&[
        ("Pinpoint-TraceID", TXID_A),
        ("Pinpoint-SpanID", "7"),
        ("Pinpoint-pSpanID", "8"),
    ]);
    for _ in 0..3 {
        translator
            .translate_into(
                input.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                &mut out,
            )
            .expect("translates");
    }
    assert_eq!(cache.stats().txid.inserts, 0);
    // What the exporters learned is still used.
    let writer = Translator::new(&TranslateOptions::default())
        .expect("valid")
        .with_cache(Arc::clone(&cache));
    let o = writer
        .translate_into(
            input.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            &mut out,
        )
        .expect("translates");
    assert_eq!(cache.stats().txid.inserts, 1);
    let hits = cache.stats().txid.hits;
    let w3c = [(
        "traceparent".to_owned(),
        format!("00-{}-00000000000000ab-01", o.trace_id),
    )];
    translator
        .translate_into(w3c.iter().map(|(k, v)| (k.as_str(), v.as_str())), &mut out)
        .expect("translates");
    assert_eq!(cache.stats().txid.hits, hits + 1);
    assert_eq!(cache.stats().txid.inserts, 1);
}
