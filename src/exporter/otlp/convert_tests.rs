use super::*;
use crate::pipeline::Block;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::trace::v1::Span;
use std::sync::Arc;

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn span(trace: u8, id: u8, state: &str) -> Span {
    Span {
        trace_id: vec![trace; 16],
        span_id: vec![id; 8],
        trace_state: state.into(),
        ..Default::default()
    }
}

fn rs(attrs: &[(&str, &str)], scopes: Vec<(&str, Vec<Span>)>) -> ResourceSpans {
    ResourceSpans {
        resource: Some(Resource {
            attributes: attrs.iter().map(|(k, v)| kv(k, v)).collect(),
            ..Default::default()
        }),
        scope_spans: scopes
            .into_iter()
            .map(|(name, spans)| ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: name.into(),
                    ..Default::default()
                }),
                spans,
                schema_url: format!("scope-{name}"),
            })
            .collect(),
        schema_url: "res".into(),
    }
}

fn attr<'a>(r: &'a ResourceSpans, key: &str) -> Option<&'a Value> {
    r.resource
        .as_ref()?
        .attributes
        .iter()
        .find(|kv| kv.key == key)?
        .value
        .as_ref()?
        .value
        .as_ref()
}

#[test]
fn pinpoint_identity_and_pp_are_written_where_missing() {
    let mut r = rs(
        &[
            ("service.name", "checkout"),
            (
                "service.instance.id",
                "3f1c2a4e-8b7d-4c6e-9f10-112233445566",
            ),
            ("telemetry.sdk.language", "python"),
        ],
        vec![(
            "s",
            vec![
                span(1, 1, ""),
                span(1, 2, "vendor=x"),
                span(1, 3, "pp=svc:a;app:upstream;type:1010"),
                span(1, 4, "bad state without equals"),
            ],
        )],
    );
    let done = enrich_pinpoint(&mut r, None);
    assert_eq!(
        done,
        Enriched {
            pp_written: 2,
            bad_trace_state: 1
        }
    );
    assert_eq!(
        attr(&r, PINPOINT_APPLICATION_NAME),
        Some(&Value::StringValue("checkout".into()))
    );
    assert_eq!(
        attr(&r, PINPOINT_AGENT_ID),
        Some(&Value::StringValue("PxwqTot9TG6fEBEiM0RVZg".into()))
    );
    assert_eq!(
        attr(&r, PINPOINT_SERVICE_TYPE),
        Some(&Value::IntValue(1700))
    );
    let states: Vec<&str> = r.scope_spans[0]
        .spans
        .iter()
        .map(|s| s.trace_state.as_str())
        .collect();
    assert_eq!(
        states,
        [
            "pp=svc:;app:checkout;type:1700",
            "pp=svc:;app:checkout;type:1700,vendor=x",
            "pp=svc:a;app:upstream;type:1010",
            "bad state without equals",
        ]
    );
}

#[test]
fn pinpoint_route_overrides_and_existing_keys() {
    let mut r = rs(
        &[
            ("service.name", "a very long name with spaces in it"),
            ("pinpoint.agentId", "agent-7"),
        ],
        vec![("s", vec![span(1, 1, "")])],
    );
    let o = RouteOverrides {
        service_type: Some(1010),
        application_name: None,
    };
    enrich_pinpoint(&mut r, Some(&o));
    let app = match attr(&r, PINPOINT_APPLICATION_NAME) {
        Some(Value::StringValue(s)) => s.clone(),
        other => panic!("{other:?}"),
    };
    // Fitted like the pinpoint exporter's virtual agent.
    assert_eq!(app, agent::fit_id("a very long name with spaces in it"));
    assert_eq!(
        attr(&r, PINPOINT_SERVICE_TYPE),
        Some(&Value::IntValue(1010))
    );
    // The key was there: replaced in place, not duplicated.
    let n = r.resource.as_ref().map_or(0, |res| {
        res.attributes
            .iter()
            .filter(|kv| kv.key == PINPOINT_AGENT_ID)
            .count()
    });
    assert_eq!(n, 1);
    assert_eq!(
        r.scope_spans[0].spans[0].trace_state,
        format!("pp=svc:;app:{app};type:1010")
    );
}

#[test]
fn split_keeps_resources_scopes_and_every_span() {
    let input = vec![
        rs(
            &[("service.name", "a")],
            vec![
                ("x", vec![span(1, 1, ""), span(2, 2, ""), span(1, 3, "")]),
                ("y", vec![span(2, 4, "")]),
            ],
        ),
        rs(&[("service.name", "b")], vec![("z", vec![span(3, 5, "")])]),
    ];
    let parts = split(input.clone(), 3, |t| usize::from(t[0]) - 1);
    assert_eq!(parts.len(), 3);
    // Part 0: trace 1 only, under resource a, scope x.
    assert_eq!(parts[0].len(), 1);
    assert_eq!(parts[0][0].scope_spans.len(), 1);
    assert_eq!(parts[0][0].scope_spans[0].spans.len(), 2);
    assert_eq!(parts[0][0].scope_spans[0].schema_url, "scope-x");
    assert_eq!(parts[0][0].schema_url, "res");
    // Part 1: trace 2 in scopes x and y of resource a.
    assert_eq!(parts[1][0].scope_spans.len(), 2);
    assert_eq!(parts[1][0].resource, input[0].resource);
    // Part 2: resource b.
    assert_eq!(parts[2][0].resource, input[1].resource);
    let total: usize = parts.iter().map(|p| span_count(p)).sum();
    assert_eq!(total, span_count(&input));
    // Every span of a trace is in one part.
    for (i, p) in parts.iter().enumerate() {
        for s in p.iter().flat_map(|r| &r.scope_spans).flat_map(|s| &s.spans) {
            assert_eq!(usize::from(s.trace_id[0]) - 1, i);
        }
    }
}

#[test]
fn collect_applies_block_overrides_and_encode_round_trips() {
    let block = Block {
        overrides: Some(Arc::new(RouteOverrides {
            service_type: None,
            application_name: Some("shop".into()),
        })),
        ..Block::new(vec![rs(
            &[("service.name", "a")],
            vec![("x", vec![span(1, 1, "")])],
        )])
    };
    let batch = Batch::from_blocks(vec![Arc::new(block)]);
    let (plain, _) = collect(&batch, false);
    assert!(attr(&plain[0], PINPOINT_APPLICATION_NAME).is_none());
    let (spans, e) = collect(&batch, true);
    assert_eq!(e.pp_written, 1);
    assert_eq!(
        attr(&spans[0], PINPOINT_APPLICATION_NAME),
        Some(&Value::StringValue("shop".into()))
    );
    let req = ExportTraceServiceRequest {
        resource_spans: spans,
    };
    for (json, gzip) in [(false, false), (false, true), (true, false), (true, true)] {
        let body = encode(&req, json, gzip).expect("encodes");
        let raw = if gzip {
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut out)
                .expect("gunzip");
            out
        } else {
            body.to_vec()
        };
        let back: ExportTraceServiceRequest = if json {
            serde_json::from_slice(&raw).expect("json")
        } else {
            prost::Message::decode(&raw[..]).expect("proto")
        };
        assert_eq!(back, req, "json={json} gzip={gzip}");
    }
}
