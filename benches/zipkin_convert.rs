//! The Zipkin exporter's CPU path for one batch: OTLP → Zipkin v2 model (`convert.rs`)
//! and JSON encoding of the span array (what goes in the POST body, uncompressed), and
//! the JSON written straight from OTLP (`json.rs`, what the exporter runs).
//! Compare with `otlp_decode`'s pass-through.
//!
//! Run: `cargo bench --bench zipkin_convert`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use otel_pinpoint_bridge::exporter::zipkin::{convert, json};
use otel_pinpoint_bridge::testdata;

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("zipkin");
    for (label, shape) in testdata::bench_shapes() {
        let batches: Vec<_> = (0..16)
            .map(|seed| testdata::resource_spans(&shape, seed))
            .collect();
        let next = std::cell::Cell::new(0usize);
        let pick = || {
            next.set(next.get() + 1);
            &batches[next.get() % batches.len()]
        };
        group.throughput(Throughput::Elements(shape.spans as u64));
        group.bench_function(format!("convert_json/{label}"), |b| {
            b.iter(|| {
                let converted = convert::convert(pick());
                let mut out = Vec::with_capacity(512 * converted.spans.len());
                serde_json::to_writer(&mut out, &converted.spans).map(|()| out.len())
            });
        });
        // What the exporter runs for `encoding: json`: the JSON written straight from OTLP.
        group.bench_function(format!("write_json/{label}"), |b| {
            b.iter(|| {
                let mut out = Vec::with_capacity(1024 * shape.spans);
                let (written, _) = json::write(pick(), &mut out);
                (written, out.len())
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
