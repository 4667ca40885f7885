//! The `otlp` exporter's own work per batch, beside the pass-through floor (decode an
//! `ExportTraceServiceRequest` from protobuf and encode it again, as in `otlp_decode`):
//!
//! - `passthrough`: decode + encode (the floor);
//! - `export`: decode + what the exporter does to a batch for OTLP/gRPC (collect the
//!   batch's spans into a request, encode it; tonic's gzip not included);
//! - `export_gzip`: the same for OTLP/HTTP protobuf with gzip (the default);
//! - `export_pinpoint`: with the Pinpoint 3.1 enrichment (identity + `pp`);
//! - `balance3`: collect, split by trace id over a 3-endpoint ring, encode each part.
//!
//! Run: `cargo bench --bench otlp_export`

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use otel_pinpoint_bridge::exporter::otlp::{convert, ring::Ring};
use otel_pinpoint_bridge::pipeline::{Batch, Block};
use otel_pinpoint_bridge::testdata;
use prost::Message;

fn batch_of(wire: &[u8]) -> Option<Batch> {
    let req = ExportTraceServiceRequest::decode(wire).ok()?;
    Some(Batch::from_blocks(vec![Arc::new(Block::new(
        req.resource_spans,
    ))]))
}

fn encode(spans: Vec<opentelemetry_proto::tonic::trace::v1::ResourceSpans>, gzip: bool) -> usize {
    let req = ExportTraceServiceRequest {
        resource_spans: spans,
    };
    convert::encode(&req, false, gzip).map_or(0, |b| b.len())
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("otlp_export");
    let ring = Ring::new(
        &[
            "10.0.0.1:4317".to_owned(),
            "10.0.0.2:4317".to_owned(),
            "10.0.0.3:4317".to_owned(),
        ],
        512,
    );
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
        group.bench_function(format!("passthrough/{label}"), |b| {
            b.iter(|| ExportTraceServiceRequest::decode(pick()).map(|r| r.encode_to_vec().len()));
        });
        group.bench_function(format!("export/{label}"), |b| {
            b.iter(|| {
                batch_of(pick()).map(|batch| encode(convert::collect(&batch, false).0, false))
            });
        });
        group.bench_function(format!("export_gzip/{label}"), |b| {
            b.iter(|| {
                batch_of(pick()).map(|batch| encode(convert::collect(&batch, false).0, true))
            });
        });
        group.bench_function(format!("export_pinpoint/{label}"), |b| {
            b.iter(|| {
                batch_of(pick()).map(|batch| encode(convert::collect(&batch, true).0, false))
            });
        });
        group.bench_function(format!("balance3/{label}"), |b| {
            b.iter(|| {
                batch_of(pick()).map(|batch| {
                    let (spans, _) = convert::collect(&batch, false);
                    let parts = convert::split(spans, 3, |t| ring.pick(t).unwrap_or(0));
                    parts.into_iter().map(|p| encode(p, false)).sum::<usize>()
                })
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
