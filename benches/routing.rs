//! Routing cost per span: a 20-rule table (resource, scope, span attribute, name, kind
//! and status conditions; globs, regexes, numeric comparisons; drops, route samples and
//! a sampled debug copy) over realistic batches from `testdata` (every block is split),
//! against the no-rules baseline that shares the block. Target: under 300 ns per span
//! for the 20-rule table. Cloning the input block is set-up, outside the measurement.
//!
//! Run: `cargo bench --bench routing`

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use otel_pinpoint_bridge::config;
use otel_pinpoint_bridge::pipeline::Block;
use otel_pinpoint_bridge::pipeline::router::Router;
use otel_pinpoint_bridge::testdata;

const TWENTY_RULES: &str = r#"
receivers:
  otlp:
    grpc: { endpoint: 127.0.0.1:0 }
exporters:
  pinpoint: { type: null }
  zipkin: { type: null }
  debugfile: { type: null }
routes:
  - name: health
    match: { span_name: { glob: "GET /health*" } }
    drop: true
  - name: legacy
    match: { resource: { service.name: { regex: "^legacy-(batch|cron)-" } } }
    drop: true
  - name: staging
    match: { resource: { deployment.environment.name: staging } }
    drop: true
  - name: admin-api
    match: { span: { http.route: /api/admin } }
    drop: true
  - name: errors
    match: { status: [error] }
    to: [pinpoint, zipkin]
  - name: server-5xx
    match: { kind: [server], span: { http.response.status_code: { gte: 500, lt: 600 } } }
    to: [pinpoint, zipkin]
  - name: search
    match: { resource: { service.name: search } }
    to: [zipkin]
  - name: users
    match: { resource: { service.name: { glob: "user*" } } }
    to: [zipkin]
  - name: messaging
    match: { kind: [producer, consumer] }
    to: [zipkin]
  - name: kafka
    match: { scope: { name: { glob: "*kafka*" } } }
    to: [zipkin]
  - name: writes
    match: { span_name: { regex: "^(PUT|DELETE|PATCH) " } }
    to: [pinpoint]
  - name: oracle-mysql
    match: { span: { db.system: { in: [oracle, mysql] } } }
    to: [pinpoint]
  - name: debug
    match: { span: { debug: { exists: true } } }
    sample: 0.1
    to: [debugfile]
  - name: internal-calls
    match: { span: { url.full: { glob: "*.internal/*" } } }
    to: [zipkin]
  - name: python-servers
    match: { resource: { telemetry.sdk.language: python }, kind: [server] }
    to: [zipkin]
  - name: metrics-port
    match: { span: { server.port: 9090 } }
    to: [zipkin]
  - name: batch-code
    match: { span: { code.namespace: { glob: "com.example.batch.*" } } }
    to: [pinpoint]
  - name: frontend-handlers
    match: { resource: { service.name: frontend }, span_name: { glob: "*Controller.handle" } }
    to: [pinpoint]
    pinpoint: { application_name: frontend, service_type: 1000 }
  - name: payments
    match: { resource: { service.name: { glob: "pay*" } } }
    to: [pinpoint]
    pinpoint: { application_name: payments, service_type: 1000 }
  - name: slow-db
    match: { scope: { name: { glob: "*jdbc*" } }, span: { db.collection.name: { ne: orders } } }
    to: [pinpoint, zipkin]
default_route:
  to: [pinpoint, { exporter: debugfile, sample: 0.05 }]
"#;

fn bench(c: &mut Criterion) {
    let cfg = config::parse(TWENTY_RULES, &|_| None).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(cfg.routing.routes.len(), 20);
    let rules = Router::new(&cfg.routing, &cfg.exporters);
    let shared = Router::all(3);
    let mut group = c.benchmark_group("routing");
    for (label, shape) in testdata::bench_shapes() {
        // Several batches, so that the mix includes the traces the samples keep.
        let blocks: Vec<Block> = (0..16)
            .map(|seed| Block::new(testdata::resource_spans(&shape, seed)))
            .collect();
        let next = std::cell::Cell::new(0usize);
        let pick = || {
            next.set(next.get() + 1);
            blocks[next.get() % blocks.len()].clone()
        };
        group.throughput(Throughput::Elements(shape.spans as u64));
        group.bench_function(format!("20_rules/{label}"), |b| {
            b.iter_batched(pick, |blk| rules.route(blk), BatchSize::SmallInput);
        });
        group.bench_function(format!("no_rules/{label}"), |b| {
            b.iter_batched(pick, |blk| shared.route(blk), BatchSize::SmallInput);
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
