//! Routing end to end: one OTLP request fans out by the configured rules to two
//! stand-in backends (file exporters), which receive exactly the expected spans, and
//! /metrics counts every decision per route. Also: the shipped example configs route
//! the way their comments say.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use otel_pinpoint_bridge::config::{self, ConfigSource};
use otel_pinpoint_bridge::pipeline::Block;
use otel_pinpoint_bridge::pipeline::router::{RouteOverrides, Router};
use otel_pinpoint_bridge::testdata::{self, boolean, int, string};

const KIND_INTERNAL: i32 = 1;
const KIND_SERVER: i32 = 2;
const KIND_CLIENT: i32 = 3;

/// Span `id` (its span id is `id` repeated) of trace `trace` (repeated).
fn span(id: u8, trace: u8, name: &str, kind: i32, error: bool, attrs: Vec<KeyValue>) -> Span {
    Span {
        trace_id: vec![trace; 16],
        span_id: vec![id; 8],
        name: name.to_owned(),
        kind,
        start_time_unix_nano: 1_700_000_000_000_000_000,
        end_time_unix_nano: 1_700_000_000_100_000_000,
        attributes: attrs,
        status: error.then(|| Status {
            code: 2,
            message: "boom".to_owned(),
        }),
        ..Default::default()
    }
}

fn service(name: &str, scopes: Vec<(&str, Vec<Span>)>) -> ResourceSpans {
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![string("service.name", name)],
            ..Default::default()
        }),
        scope_spans: scopes
            .into_iter()
            .map(|(scope, spans)| ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: scope.to_owned(),
                    version: "2.10.0".to_owned(),
                    ..Default::default()
                }),
                spans,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

const ROUTES: &str = "\
routes:
  - name: e2e-health
    match: { span_name: { glob: 'GET /health*' } }
    drop: true
  - name: e2e-errors
    match: { status: [error] }
    to: [pinpoint, zipkin]
  - name: e2e-payments
    match: { resource: { service.name: { glob: 'pay*' } } }
    to: [pinpoint]
    pinpoint: { application_name: payments, service_type: 1000 }
  - name: e2e-db
    match:
      scope: { name: { glob: '*jdbc*' } }
      span: { db.system: { exists: true } }
    to: [zipkin]
  - name: e2e-debug
    match: { span: { debug: true } }
    sample: 0.5
    to: [zipkin]
default_route: { to: [zipkin] }
";

fn gateway_config(pinpoint: &Path, zipkin: &Path) -> String {
    format!(
        "receivers:\n  otlp:\n    grpc: {{ endpoint: 127.0.0.1:0 }}\n\
         exporters:\n\
         \x20 pinpoint:\n    type: file\n    path: '{}'\n    batch: {{ timeout: 50ms }}\n\
         \x20 zipkin:\n    type: file\n    path: '{}'\n    batch: {{ timeout: 50ms }}\n\
         {ROUTES}\
         admin: {{ endpoint: 127.0.0.1:0 }}\nservice: {{ shutdown_grace: 5s }}\n",
        pinpoint.display(),
        zipkin.display()
    )
}

/// The span ids (first byte) a file exporter wrote.
fn ids_in(path: &Path) -> BTreeSet<u8> {
    common::spans_of(&common::read_lines(path))
        .iter()
        .map(|(_, _, s)| s.span_id[0])
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_fans_out_by_the_rules() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (pinpoint, zipkin) = (
        dir.path().join("pinpoint.jsonl"),
        dir.path().join("zipkin.jsonl"),
    );
    let gw = common::start(&gateway_config(&pinpoint, &zipkin)).await;

    let debug = || vec![boolean("debug", true)];
    let db = || vec![string("db.system", "postgresql")];
    let request = ExportTraceServiceRequest {
        resource_spans: vec![
            service(
                "payments",
                vec![
                    (
                        "io.opentelemetry.tomcat-10.0",
                        vec![
                            // error: e2e-errors, to both
                            span(
                                1,
                                0xaa,
                                "POST /pay",
                                KIND_SERVER,
                                true,
                                vec![int("http.response.status_code", 503)],
                            ),
                            // health check: dropped
                            span(2, 0xaa, "GET /health", KIND_SERVER, false, vec![]),
                            // e2e-payments, to pinpoint
                            span(3, 0xaa, "POST /pay", KIND_SERVER, false, vec![]),
                        ],
                    ),
                    // a db span of payments: e2e-payments comes before e2e-db
                    (
                        "io.opentelemetry.jdbc",
                        vec![span(4, 0xaa, "SELECT", KIND_CLIENT, false, db())],
                    ),
                ],
            ),
            service(
                "orders",
                vec![
                    // e2e-db, to zipkin
                    (
                        "io.opentelemetry.jdbc",
                        vec![span(5, 0xaa, "SELECT", KIND_CLIENT, false, db())],
                    ),
                    (
                        "io.opentelemetry.tomcat-10.0",
                        vec![
                            // e2e-debug: trace 0xff.. is in the sampled half, 0x01.. is not
                            span(6, 0xff, "GET /orders", KIND_SERVER, false, debug()),
                            span(7, 0x01, "GET /orders", KIND_SERVER, false, debug()),
                            // no route: default, to zipkin
                            span(8, 0xaa, "render", KIND_INTERNAL, false, vec![]),
                            // first match wins: a failing health check is still dropped
                            span(9, 0xaa, "GET /healthz", KIND_SERVER, true, vec![]),
                        ],
                    ),
                ],
            ),
        ],
    };
    let mut client = TraceServiceClient::connect(format!("http://{}", gw.grpc_addr.expect("grpc")))
        .await
        .expect("connect");
    let resp = client.export(request).await.expect("export").into_inner();
    assert!(resp.partial_success.is_none(), "{resp:?}");

    common::wait_for_spans(&pinpoint, 3).await;
    common::wait_for_spans(&zipkin, 4).await;
    let metrics = reqwest::get(format!("http://{}/metrics", gw.admin_addr))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    // Draining on shutdown flushes anything still queued, so the files are final.
    let report = gw.shutdown().await;
    assert!(report.undrained.is_empty());

    assert_eq!(ids_in(&pinpoint), BTreeSet::from([1, 3, 4]));
    assert_eq!(ids_in(&zipkin), BTreeSet::from([1, 5, 6, 8]));
    // Split resources keep their service name in each part.
    for (resource, _, s) in common::spans_of(&common::read_lines(&pinpoint)) {
        assert!(
            resource
                .iter()
                .any(|(k, v)| k == "service.name" && v.contains("payments")),
            "span {} lost its resource: {resource:?}",
            s.span_id[0]
        );
    }

    let count = |route: &str, action: &str| -> f64 {
        let want = format!("route=\"{route}\"");
        let act = format!("action=\"{action}\"");
        metrics
            .lines()
            .filter(|l| {
                l.starts_with("bridge_route_spans_total{") && l.contains(&want) && l.contains(&act)
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let expected = [
        ("e2e-health", "drop", 2.0),
        ("e2e-errors", "export", 1.0),
        ("e2e-payments", "export", 2.0),
        ("e2e-db", "export", 1.0),
        ("e2e-debug", "export", 1.0),
        ("e2e-debug", "sampled_out", 1.0),
    ];
    for (route, action, n) in expected {
        assert_eq!(count(route, action), n, "{route} {action}\n{metrics}");
    }
    assert!(count("default", "export") >= 1.0, "{metrics}");
}

fn route_shipped(file: &str, batch: Vec<ResourceSpans>) -> Vec<(String, Block)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config")
        .join(file);
    let cfg = config::load(ConfigSource::File(&path)).unwrap_or_else(|e| panic!("{e}"));
    let router = Router::new(&cfg.routing, &cfg.exporters);
    router
        .route(Block::new(batch))
        .into_iter()
        .map(|(e, b)| (cfg.exporters[e].name.clone(), (*b).clone()))
        .collect()
}

fn spans_to(parts: &[(String, Block)], exporter: &str) -> usize {
    parts
        .iter()
        .filter(|(e, _)| e == exporter)
        .map(|(_, b)| b.span_count)
        .sum()
}

#[test]
fn shipped_configs_route_as_documented() {
    let shape = testdata::Shape {
        services: 8,
        spans: 4000,
        ..testdata::Shape::default()
    };
    let batch = testdata::resource_spans(&shape, 42);

    // debug-sample: Pinpoint gets everything; the debug file a sampled share, whole traces.
    let parts = route_shipped("debug-sample.yaml", batch.clone());
    assert_eq!(spans_to(&parts, "pinpoint"), 4000);
    let copied = spans_to(&parts, "debugfile");
    assert!(
        (200..=1200).contains(&copied),
        "debug copy of {copied} spans"
    );

    // pinpoint-zipkin: one shared part per backend, health checks dropped.
    let parts = route_shipped("pinpoint-zipkin.yaml", batch.clone());
    let (p, z) = (spans_to(&parts, "pinpoint"), spans_to(&parts, "zipkin"));
    assert!(p == z && p < 4000 && p > 3000, "{p} {z}");

    // per-service: the payments part carries the Pinpoint overrides.
    let parts = route_shipped("per-service.yaml", batch);
    let overridden: Vec<&Block> = parts
        .iter()
        .filter(|(_, b)| b.overrides.is_some())
        .map(|(_, b)| b)
        .collect();
    assert!(!overridden.is_empty());
    for b in overridden {
        assert_eq!(
            b.overrides.as_deref(),
            Some(&RouteOverrides {
                service_type: Some(1000),
                application_name: Some("payments".into()),
            })
        );
        for rs in &b.resource_spans {
            assert_eq!(
                rs.resource.as_ref().map(|r| &r.attributes[0]),
                Some(&string("service.name", "payments"))
            );
        }
    }
}
