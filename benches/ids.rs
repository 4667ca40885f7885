//! Hot paths of the identity layer: header parse + translate in both directions, txid
//! encode and decode, and mapping-cache hits and misses. One element = one operation.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use otel_pinpoint_bridge::ids::{
    cache::{CacheConfig, CallerSegment, MappingCache},
    headers::HeaderBuf,
    mapping::{trace_id_to_txid, txid_to_trace_id},
    samples::{SampleRng, pinpoint_headers, w3c_headers, w3c_headers_with_state},
    translate::{TranslateOptions, Translator, translate_headers},
    txid::{AgentId, TransactionId},
};

const POOL: usize = 1024;

fn as_refs(pairs: &[(String, String)]) -> impl Iterator<Item = (&str, &str)> {
    pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
}

fn translate(c: &mut Criterion) {
    let traceparent: Vec<_> = (0..POOL as u64).map(w3c_headers).collect();
    let with_state: Vec<_> = (0..POOL as u64).map(w3c_headers_with_state).collect();
    let pinpoint: Vec<_> = (0..POOL as u64).map(pinpoint_headers).collect();
    let opts = TranslateOptions::default();
    let translator = match Translator::new(&opts) {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    };
    let mut g = c.benchmark_group("translate");
    g.throughput(Throughput::Elements(1));
    for (name, inputs) in [
        ("traceparent_to_pinpoint", &traceparent),
        ("traceparent_tracestate_to_pinpoint", &with_state),
        ("pinpoint_to_w3c", &pinpoint),
    ] {
        let mut out = HeaderBuf::new();
        let mut i = 0;
        g.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % POOL;
                let span = translator
                    .translate_into(as_refs(&inputs[i]), &mut out)
                    .map(|o| o.span_id);
                // Consume the output as an HTTP client would: name and value bytes.
                let written: usize = out.iter_bytes().map(|(n, v)| n.len() + v.len()).sum();
                black_box((span.ok(), written))
            })
        });
    }
    for (name, inputs) in [
        ("traceparent_to_pinpoint_report", &traceparent),
        ("pinpoint_to_w3c_report", &pinpoint),
    ] {
        let mut i = 0;
        g.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % POOL;
                black_box(translate_headers(&inputs[i], &opts).ok())
            })
        });
    }
    g.finish();
}

fn txid(c: &mut Criterion) {
    let marker = match AgentId::new("otel") {
        Ok(m) => m,
        Err(e) => panic!("{e}"),
    };
    let mut rng = SampleRng::new(7);
    let traces: Vec<_> = (0..POOL).map(|_| rng.trace_id()).collect();
    let bridge_born: Vec<String> = traces
        .iter()
        .map(|t| trace_id_to_txid(*t, marker).to_string())
        .collect();
    let pinpoint_born: Vec<String> = (0..POOL)
        .map(|i| {
            format!(
                "agent-{}^{}^{}",
                i % 16,
                1_700_000_000_000_i64 + i as i64,
                i * 7
            )
        })
        .collect();
    let mut g = c.benchmark_group("txid");
    g.throughput(Throughput::Elements(1));
    let mut out = String::with_capacity(TransactionId::MAX_LEN);
    let mut i = 0;
    g.bench_function("encode", |b| {
        b.iter(|| {
            i = (i + 1) % POOL;
            out.clear();
            trace_id_to_txid(traces[i], marker).write(&mut out);
            black_box(out.len())
        })
    });
    for (name, inputs) in [
        ("decode_bridge_born", &bridge_born),
        ("decode_pinpoint_born_sha256", &pinpoint_born),
    ] {
        let mut i = 0;
        g.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % POOL;
                black_box(
                    TransactionId::parse(&inputs[i])
                        .map(|tx| txid_to_trace_id(&tx, marker))
                        .ok(),
                )
            })
        });
    }
    g.finish();
}

fn cache(c: &mut Criterion) {
    const ENTRIES: usize = 10_000;
    let cache = match MappingCache::new(&CacheConfig::default()) {
        Ok(c) => Arc::new(c),
        Err(e) => panic!("{e}"),
    };
    let mut rng = SampleRng::new(11);
    let keys: Vec<_> = (0..ENTRIES)
        .map(|_| (rng.trace_id(), rng.span_id()))
        .collect();
    let absent: Vec<_> = (0..ENTRIES)
        .map(|_| (rng.trace_id(), rng.span_id()))
        .collect();
    let marker = match AgentId::new("agentA") {
        Ok(m) => m,
        Err(e) => panic!("{e}"),
    };
    for (n, (t, s)) in keys.iter().enumerate() {
        cache.insert_txid(
            *t,
            TransactionId {
                agent_id: marker,
                agent_start_time: 1,
                sequence: n as i64,
            },
        );
        cache.insert_caller_segment(
            *t,
            *s,
            CallerSegment {
                span_id: n as i64,
                application: Arc::from("shop-api"),
                service_type: 1010,
                destination: None,
            },
        );
    }
    cache.run_pending_tasks();
    let mut g = c.benchmark_group("cache");
    g.throughput(Throughput::Elements(1));
    for (name, set) in [("txid_hit", &keys), ("txid_miss", &absent)] {
        let mut i = 0;
        g.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % ENTRIES;
                black_box(cache.txid(&set[i].0))
            })
        });
    }
    for (name, set) in [("caller_hit", &keys), ("caller_miss", &absent)] {
        let mut i = 0;
        g.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % ENTRIES;
                black_box(cache.caller_segment(&set[i].0, &set[i].1))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, translate, txid, cache);
criterion_main!(benches);
