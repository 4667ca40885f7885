//! OTLP decode, and the pass-through baseline: decode an `ExportTraceServiceRequest`
//! from protobuf and encode it again. Nothing the gateway does to a span can cost less
//! than reading it and writing it back, so this is the physical floor that the
//! conversion benches (`pinpoint_convert`, `zipkin_convert`) are compared with.
//! Requests come from `testdata` (100 spans over 5 services, and 1000 over 12).
//!
//! Run: `cargo bench --bench otlp_decode`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use otel_pinpoint_bridge::testdata;
use prost::Message;

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("otlp");
    for (label, shape) in testdata::bench_shapes() {
        let wire: Vec<Vec<u8>> = (0..16)
            .map(|seed| testdata::request(&shape, seed).encode_to_vec())
            .collect();
        let next = std::cell::Cell::new(0usize);
        let pick = || {
            next.set(next.get() + 1);
            wire[next.get() % wire.len()].as_slice()
        };
        group.throughput(Throughput::Elements(shape.spans as u64));
        group.bench_function(format!("decode/{label}"), |b| {
            b.iter(|| ExportTraceServiceRequest::decode(pick()).map(|r| r.resource_spans.len()));
        });
        group.bench_function(format!("passthrough/{label}"), |b| {
            b.iter(|| ExportTraceServiceRequest::decode(pick()).map(|r| r.encode_to_vec().len()));
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
