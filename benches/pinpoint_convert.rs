//! The Pinpoint exporter's CPU path for one batch: segment assembly (`assemble.rs`:
//! trace buffering, parent resolution through the mapping cache), conversion to
//! `PSpan`/`PSpanChunk` (`convert.rs`, `semconv.rs`) and protobuf encoding of every
//! message (`wire.rs`, as the exporter does), i.e. everything but the gRPC write. Compare with `otlp_decode`'s
//! pass-through. A fresh assembler per batch (set-up, not measured) so that repeated
//! trace ids do not turn into late chunks; the mapping cache is shared, as in the
//! gateway.
//!
//! The blocks are shared (`Arc`), as the exporter gets them from its batch.
//!
//! Run: `cargo bench --bench pinpoint_convert`

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use otel_pinpoint_bridge::exporter::pinpoint::assemble::{Assembler, Config};
use otel_pinpoint_bridge::exporter::pinpoint::convert::Options;
use otel_pinpoint_bridge::exporter::pinpoint::wire::Writer;
use otel_pinpoint_bridge::ids::{AgentId, CacheConfig, MappingCache};
use otel_pinpoint_bridge::pipeline::{Block, SharedBlock};
use otel_pinpoint_bridge::testdata;

fn bench(c: &mut Criterion) {
    let cache =
        Arc::new(MappingCache::new(&CacheConfig::default()).unwrap_or_else(|e| panic!("{e}")));
    let cfg = Config {
        hold: Duration::from_millis(500),
        max_pending_spans: 100_000,
        max_pending_bytes: 256 << 20,
        late_window: Duration::from_secs(30),
        max_late_spans: 100_000,
        marker: AgentId::new("otel").unwrap_or_else(|e| panic!("{e}")),
        convert: Options::default(),
    };
    let mut group = c.benchmark_group("pinpoint");
    for (label, shape) in testdata::bench_shapes() {
        let batches: Vec<SharedBlock> = (0..16)
            .map(|seed| Arc::new(Block::new(testdata::resource_spans(&shape, seed))))
            .collect();
        let next = std::cell::Cell::new(0usize);
        let setup = || {
            next.set(next.get() + 1);
            (
                Assembler::new(cfg.clone(), Arc::clone(&cache)),
                &batches[next.get() % batches.len()],
            )
        };
        let mut writer = Writer::default();
        group.throughput(Throughput::Elements(shape.spans as u64));
        group.bench_function(format!("assemble_convert_encode/{label}"), |b| {
            b.iter_batched(
                setup,
                |(mut asm, batch)| {
                    let now = Instant::now();
                    asm.add_block(batch, now, None);
                    asm.flush(now, true)
                        .iter()
                        .map(|o| writer.encode(&o.message).len())
                        .sum::<usize>()
                },
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
