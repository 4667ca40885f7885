//! Tests of the parent module.

use super::*;
use crate::config;
use crate::testdata;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Status;

fn router(routes_yaml: &str) -> Router {
    let text = format!(
        "receivers:\n  otlp:\n    grpc: {{ endpoint: 127.0.0.1:0 }}\nexporters:\n  a: {{ type: null }}\n  b: {{ type: null }}\n  c: {{ type: null }}\n{routes_yaml}"
    );
    let c = config::parse(&text, &|_| None).unwrap_or_else(|e| panic!("{e:?}"));
    Router::new(&c.routing, &c.exporters)
}

fn s(v: &str) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(any_value::Value::StringValue(v.to_owned())),
    })
}

fn kv(k: &str, v: Option<AnyValue>) -> KeyValue {
    KeyValue {
        key: k.to_owned(),
        value: v,
        ..Default::default()
    }
}

/// A span whose id is `id` (repeated), with a kind, a status code and attributes.
fn span(id: u8, kind: i32, status: i32, attrs: Vec<KeyValue>) -> Span {
    Span {
        trace_id: vec![id; 16],
        span_id: vec![id; 8],
        kind,
        status: Some(Status {
            code: status,
            ..Default::default()
        }),
        attributes: attrs,
        name: format!("span-{id}"),
        ..Default::default()
    }
}

fn resource_spans(service: &str, scopes: Vec<(&str, Vec<Span>)>) -> ResourceSpans {
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![kv("service.name", s(service))],
            ..Default::default()
        }),
        scope_spans: scopes
            .into_iter()
            .map(|(name, spans)| ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: name.to_owned(),
                    ..Default::default()
                }),
                spans,
                ..Default::default()
            })
            .collect(),
        schema_url: String::new(),
    }
}

/// `(exporter, sorted span ids)` for every part, sorted.
fn ids(routed: &[(usize, SharedBlock)]) -> Vec<(usize, Vec<u8>)> {
    let mut out: Vec<(usize, Vec<u8>)> = routed
        .iter()
        .map(|(e, b)| {
            let mut ids: Vec<u8> = b
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .flat_map(|s| &s.spans)
                .map(|s| s.span_id[0])
                .collect();
            ids.sort_unstable();
            assert_eq!(ids.len(), b.span_count, "span_count is exact");
            (*e, ids)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn no_routes_shares_one_block_with_every_exporter() {
    let r = Router::all(3);
    let block = Block::new(vec![resource_spans(
        "x",
        vec![("s", vec![span(1, 2, 0, vec![])])],
    )]);
    let routed = r.route(block);
    assert_eq!(routed.len(), 3);
    assert!(routed.iter().all(|(_, b)| Arc::ptr_eq(b, &routed[0].1)));
    assert_eq!(
        routed.iter().map(|(e, _)| *e).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    // Same through the config path without a routes section.
    let routed = router("").route(Block::new(vec![resource_spans(
        "x",
        vec![("s", vec![span(1, 2, 0, vec![])])],
    )]));
    assert_eq!(routed.len(), 3);
    assert!(
        Router::all(0)
            .route(Block::new(vec![resource_spans(
                "x",
                vec![("s", vec![span(1, 2, 0, vec![])])]
            )]))
            .is_empty()
    );
}

#[test]
fn whole_block_on_one_route_is_shared_not_copied() {
    let r = router(
        "routes:\n  - name: pay\n    match: { resource: { service.name: { glob: 'pay*' } } }\n    to: [a, c]\n",
    );
    let block = Block::new(vec![
        resource_spans(
            "payments",
            vec![("s", vec![span(1, 2, 0, vec![]), span(2, 3, 2, vec![])])],
        ),
        resource_spans("payroll", vec![("t", vec![span(3, 1, 0, vec![])])]),
    ]);
    let first_span: *const Span = &block.resource_spans[0].scope_spans[0].spans[0];
    let routed = r.route(block);
    assert_eq!(ids(&routed), vec![(0, vec![1, 2, 3]), (2, vec![1, 2, 3])]);
    assert!(
        Arc::ptr_eq(&routed[0].1, &routed[1].1),
        "one Arc for both exporters"
    );
    // The very same allocation: nothing was moved or copied.
    assert!(std::ptr::eq(
        &routed[0].1.resource_spans[0].scope_spans[0].spans[0],
        first_span
    ));
    // Routes with the same exporters share a destination: still one block.
    let r = router(
        "routes:\n  - name: one\n    match: { kind: [server] }\n    to: [b]\n  - name: two\n    match: { kind: [client] }\n    to: [b]\ndefault_route: { to: [b] }\n",
    );
    let block = Block::new(vec![resource_spans(
        "x",
        vec![(
            "s",
            vec![
                span(1, 2, 0, vec![]),
                span(2, 3, 0, vec![]),
                span(3, 1, 0, vec![]),
            ],
        )],
    )]);
    let routed = r.route(block);
    assert_eq!(ids(&routed), vec![(1, vec![1, 2, 3])]);
}

#[test]
fn mixed_block_is_split_per_destination_first_match_wins() {
    let r = router(
        "routes:\n\
             \x20 - name: errors\n    match: { status: [error] }\n    to: [a, b]\n\
             \x20 - name: servers\n    match: { kind: [server] }\n    to: [b]\n\
             \x20 - name: health\n    match: { span: { http.route: { eq: /health } } }\n    drop: true\n\
             \x20 - name: jdbc\n    match: { scope: { name: { glob: '*jdbc*' } } }\n    to: [c]\n\
             default_route: { to: [a] }\n",
    );
    let health = || vec![kv("http.route", s("/health"))];
    let block = Block::new(vec![
        resource_spans(
            "payments",
            vec![
                // error server span: first match (errors) wins over servers
                (
                    "web",
                    vec![
                        span(1, 2, 2, vec![]),
                        span(2, 2, 0, vec![]),
                        span(3, 1, 0, health()),
                    ],
                ),
                (
                    "io.opentelemetry.jdbc",
                    vec![span(4, 3, 0, vec![]), span(5, 3, 0, vec![])],
                ),
            ],
        ),
        resource_spans("orders", vec![("web", vec![span(6, 1, 0, vec![])])]),
    ]);
    let routed = r.route(block);
    assert_eq!(
        ids(&routed),
        vec![
            (0, vec![1]),
            (0, vec![6]),
            (1, vec![1]),
            (1, vec![2]),
            (2, vec![4, 5])
        ]
    );
    // The part for one destination is shared by its exporters.
    let errors: Vec<&SharedBlock> = routed
        .iter()
        .filter(|(_, b)| {
            b.span_count == 1 && b.resource_spans[0].scope_spans[0].spans[0].span_id[0] == 1
        })
        .map(|(_, b)| b)
        .collect();
    assert_eq!(errors.len(), 2);
    assert!(Arc::ptr_eq(errors[0], errors[1]));
    // Rebuilt resources and scopes keep their headers; a whole scope moves as is.
    let jdbc = &routed.iter().find(|(e, _)| *e == 2).expect("c").1;
    assert_eq!(jdbc.resource_spans.len(), 1);
    assert_eq!(
        jdbc.resource_spans[0]
            .resource
            .as_ref()
            .map(|r| r.attributes[0].value.clone()),
        Some(s("payments"))
    );
    assert_eq!(
        jdbc.resource_spans[0].scope_spans[0]
            .scope
            .as_ref()
            .map(|s| s.name.as_str()),
        Some("io.opentelemetry.jdbc")
    );
    let web_errors = &errors[0].resource_spans[0];
    assert_eq!(
        web_errors.scope_spans[0]
            .scope
            .as_ref()
            .map(|s| s.name.as_str()),
        Some("web")
    );
    assert_eq!(
        web_errors.resource.as_ref().map(|r| r.attributes.len()),
        Some(1)
    );
}

#[test]
fn everything_dropped_yields_nothing() {
    let r = router("routes:\n  - name: all\n    drop: true\n");
    let block = Block::new(vec![resource_spans(
        "x",
        vec![("s", vec![span(1, 2, 0, vec![])])],
    )]);
    assert!(r.route(block).is_empty());
    assert!(r.route(Block::default()).is_empty());
}

#[test]
fn sampling_keeps_whole_traces_by_trace_id() {
    let r = router(
        "routes:\n  - name: half\n    match: { kind: [server] }\n    sample: 0.5\n    to: [a]\ndefault_route: { drop: true }\n",
    );
    // Trace 0xff.. has randomness above 2^55 (kept), trace 0x01.. below (sampled out).
    let spans = vec![span(0xff, 2, 0, vec![]), span(0x01, 2, 0, vec![])];
    let mut kept_twin = span(0xff, 2, 0, vec![]);
    kept_twin.span_id = vec![0xfe; 8];
    let mut spans = spans;
    spans.push(kept_twin);
    let block = Block::new(vec![resource_spans("x", vec![("s", spans)])]);
    assert_eq!(ids(&r.route(block)), vec![(0, vec![0xfe, 0xff])]);
}

#[test]
fn an_exporter_can_sample_its_own_copy() {
    // Every span goes to a; b gets the traces its sample keeps (a debug copy).
    let r = router(
        "routes:\n  - name: only-b\n    match: { kind: [client] }\n    to: [{ exporter: b, sample: 0.5 }]\n\
             default_route: { to: [a, { exporter: b, sample: 0.5 }] }\n",
    );
    let block = Block::new(vec![resource_spans(
        "x",
        vec![(
            "s",
            vec![
                span(0xff, 2, 0, vec![]),
                span(0x01, 2, 0, vec![]),
                span(0xfe, 3, 0, vec![]),
                span(0x02, 3, 0, vec![]),
            ],
        )],
    )]);
    let routed = r.route(block);
    // 0x01 and 0x02 are sampled out of b; the client span of 0x02 has nowhere to go.
    assert_eq!(
        ids(&routed),
        vec![(0, vec![0x01, 0xff]), (1, vec![0xfe, 0xff])]
    );
    // When all spans take the default route, a's part is the block itself, not a
    // copy: only the sampled copy for b is cloned.
    let block = Block::new(vec![resource_spans(
        "x",
        vec![(
            "s",
            vec![span(0xff, 2, 0, vec![]), span(0x01, 2, 0, vec![])],
        )],
    )]);
    let first_span: *const Span = &block.resource_spans[0].scope_spans[0].spans[0];
    let routed = r.route(block);
    assert_eq!(ids(&routed), vec![(0, vec![0x01, 0xff]), (1, vec![0xff])]);
    let a = &routed.iter().find(|(e, _)| *e == 0).expect("a").1;
    assert!(std::ptr::eq(
        &a.resource_spans[0].scope_spans[0].spans[0],
        first_span
    ));
}

#[test]
fn pinpoint_overrides_arrive_in_the_block() {
    let r = router(
        "routes:\n\
             \x20 - name: pay\n    match: { resource: { service.name: payments } }\n    to: [a, b]\n    pinpoint: { service_type: 1210, application_name: pay-app }\n\
             \x20 - name: plain\n    match: { resource: { service.name: orders } }\n    to: [a]\n",
    );
    let block = Block::new(vec![
        resource_spans("payments", vec![("s", vec![span(1, 2, 0, vec![])])]),
        resource_spans("orders", vec![("s", vec![span(2, 2, 0, vec![])])]),
    ]);
    let routed = r.route(block);
    // Exporter a gets two parts: one with overrides, one without.
    assert_eq!(ids(&routed), vec![(0, vec![1]), (0, vec![2]), (1, vec![1])]);
    for (_, b) in &routed {
        let id = b.resource_spans[0].scope_spans[0].spans[0].span_id[0];
        let want = (id == 1).then(|| RouteOverrides {
            service_type: Some(1210),
            application_name: Some("pay-app".into()),
        });
        assert_eq!(b.overrides.as_deref(), want.as_ref(), "span {id}");
    }
}

#[test]
fn spans_without_attributes_and_scopes_route_by_default() {
    let r = router(
        "routes:\n  - name: attr\n    match: { span: { k: { exists: true } }, scope: { version: { exists: false } } }\n    to: [b]\ndefault_route: { to: [c] }\n",
    );
    let mut rs = resource_spans(
        "x",
        vec![(
            "s",
            vec![span(1, 2, 0, vec![kv("k", None)]), span(2, 2, 0, vec![])],
        )],
    );
    rs.resource = None;
    rs.scope_spans[0].scope = None;
    assert_eq!(
        ids(&r.route(Block::new(vec![rs]))),
        vec![(1, vec![1]), (2, vec![2])]
    );
}

#[test]
fn agrees_with_naive_first_match_on_generated_batches() {
    let text = "receivers:\n  otlp:\n    grpc: { endpoint: 127.0.0.1:0 }\nexporters:\n  a: { type: null }\n  b: { type: null }\n  c: { type: null }\n\
             routes:\n\
             \x20 - name: health\n    match: { span: { http.route: /health } }\n    drop: true\n\
             \x20 - name: errors\n    match: { status: [error] }\n    to: [a, b]\n\
             \x20 - name: db\n    match: { span: { db.system: { exists: true } }, resource: { service.name: { ne: orders } } }\n    to: [c]\n\
             \x20 - name: pay\n    match: { resource: { service.name: { glob: 'pay*' } } }\n    to: [b]\n\
             \x20 - name: jdbc\n    match: { scope: { name: { regex: 'jdbc$' } } }\n    to: [a]\n\
             \x20 - name: internal\n    match: { kind: [internal] }\n    sample: 0.5\n    to: [a, { exporter: c, sample: 0.3 }]\n\
             default_route: { to: [c, { exporter: b, sample: 0.2 }] }\n";
    let c = config::parse(text, &|_| None).unwrap_or_else(|e| panic!("{e:?}"));
    let r = Router::new(&c.routing, &c.exporters);
    for seed in 0..40 {
        let batch = testdata::resource_spans(&testdata::Shape::default(), seed);
        // The naive reading of the rules: every route tried on every span in order.
        let mut want: Vec<(usize, Vec<u8>)> = Vec::new();
        for rs in &batch {
            for ss in &rs.scope_spans {
                for sp in &ss.spans {
                    let route = c.routing.routes.iter().find(|rt| {
                        rt.matcher.resource_matches(rs.resource.as_ref())
                            && rt.matcher.scope_matches(ss.scope.as_ref())
                            && rt.matcher.span_matches(sp)
                    });
                    let action = route.map_or(c.routing.default.as_ref(), |rt| Some(&rt.action));
                    let keeps = |ratio: Option<f64>| {
                        ratio.is_none_or(|r| Sampler::new(r).keeps(&sp.trace_id))
                    };
                    let Some(action) = action.filter(|a| keeps(a.sample)) else {
                        continue;
                    };
                    if let Destination::Exporters(refs) = &action.destination {
                        for n in refs.iter().filter(|n| keeps(n.sample)) {
                            let e = c
                                .exporters
                                .iter()
                                .position(|x| x.name == n.exporter)
                                .expect("known");
                            want.push((e, sp.span_id.clone()));
                        }
                    }
                }
            }
        }
        let mut got: Vec<(usize, Vec<u8>)> = r
            .route(Block::new(batch))
            .iter()
            .flat_map(|(e, b)| {
                b.resource_spans
                    .iter()
                    .flat_map(|r| &r.scope_spans)
                    .flat_map(|s| &s.spans)
                    .map(move |s| (*e, s.span_id.clone()))
            })
            .collect();
        want.sort();
        got.sort();
        assert_eq!(got, want, "seed {seed}");
    }
}
