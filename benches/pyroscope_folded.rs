//! The trace-derived flame graph's hot path: taking spans in and folding settled traces
//! into per-service stacks (`exporter::pyroscope::folded`).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use otel_pinpoint_bridge::exporter::pyroscope::folded::{Aggregator, Config};

const TRACES: usize = 200;
const SPANS_PER_TRACE: usize = 20;

/// Traces of one entry span with a chain of children, names from a small set.
fn payload() -> Vec<ResourceSpans> {
    (0..TRACES)
        .map(|t| {
            let spans = (0..SPANS_PER_TRACE)
                .map(|i| Span {
                    trace_id: (t as u128 + 1).to_be_bytes().to_vec(),
                    span_id: (i as u64 + 1).to_be_bytes().to_vec(),
                    parent_span_id: if i == 0 {
                        vec![]
                    } else {
                        (i as u64 / 2 + 1).to_be_bytes().to_vec()
                    },
                    name: format!("op-{}", i % 7),
                    kind: if i == 0 { 2 } else { 1 },
                    start_time_unix_nano: 1_000 + i as u64 * 10,
                    end_time_unix_nano: 100_000 - i as u64 * 10,
                    ..Default::default()
                })
                .collect();
            ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![KeyValue {
                        key: "service.name".into(),
                        value: Some(AnyValue {
                            value: Some(Value::StringValue(format!("svc-{}", t % 5))),
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }
        })
        .collect()
}

fn fold(c: &mut Criterion) {
    let input = payload();
    let mut g = c.benchmark_group("pyroscope_folded");
    g.throughput(Throughput::Elements((TRACES * SPANS_PER_TRACE) as u64));
    g.bench_function("add_settle_take", |b| {
        b.iter(|| {
            let mut a = Aggregator::new(Config {
                labels_from_resource: vec![],
                upstream_prefix: true,
                max_stacks_per_service: 10_000,
                max_services: 1000,
                max_pending_spans: 100_000,
                settle: Duration::from_secs(1),
            });
            let now = Instant::now();
            for rs in &input {
                a.add(rs, now);
            }
            a.settle(now, true);
            black_box(a.take_interval())
        });
    });
    g.finish();
}

criterion_group!(benches, fold);
criterion_main!(benches);
