//! The Pinpoint hold seam: a batch's records stay on disk while any of its spans is
//! held in segment assembly or waits in an unsent message, however long assembly holds
//! it, and go once the last of them is sent.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use tokio::sync::watch;

use super::*;
use crate::config::{BatchConfig, ExporterConfig, ExporterKind, OnFull, QueueConfig, RetryConfig};
use crate::exporter::pinpoint::assemble::{self, Assembler, Output};
use crate::exporter::{ExportError, Exporter};
use crate::ids::{AgentId, CacheConfig, MappingCache};
use crate::pipeline::router::Router;
use crate::pipeline::{Batch, Block, Pipeline, worker};

const HOLD: Duration = Duration::from_secs(60);

/// Assembly as the Pinpoint exporter does it, with the assembler shared with the test
/// (which decides when it flushes and which messages are "sent").
struct Assembling {
    asm: Arc<Mutex<Assembler>>,
    taken: Arc<AtomicUsize>,
}

impl Exporter for Assembling {
    async fn export(&mut self, batch: &Batch) -> Result<(), ExportError> {
        let hold = batch.hold();
        let mut asm = self.asm.lock().expect("lock");
        for b in batch.blocks() {
            asm.add_block_held(b, Instant::now(), None, &hold);
        }
        hold.release();
        self.taken.fetch_add(batch.span_count(), Ordering::SeqCst);
        Ok(())
    }
}

/// Three server spans of service `app` whose caller never arrives: assembly holds them.
fn waiting(app: &str, trace: u8) -> Block {
    let spans = (1..=3u8)
        .map(|i| Span {
            trace_id: vec![trace; 16],
            span_id: vec![trace, i, 0, 0, 0, 0, 0, 1],
            parent_span_id: vec![9, i, 9, 9, 9, 9, 9, 9],
            kind: SpanKind::Server as i32,
            start_time_unix_nano: 1_000,
            end_time_unix_nano: 2_000,
            ..Default::default()
        })
        .collect();
    let name = KeyValue {
        key: "service.name".into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(app.into())),
        }),
        ..Default::default()
    };
    Block::new(vec![ResourceSpans {
        resource: Some(Resource {
            attributes: vec![name],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans,
            ..Default::default()
        }],
        ..Default::default()
    }])
}

struct Run {
    pipeline: Arc<Pipeline>,
    store: Arc<Store>,
    asm: Arc<Mutex<Assembler>>,
    taken: Arc<AtomicUsize>,
    stop: watch::Sender<bool>,
    worker: tokio::task::JoinHandle<()>,
}

fn open(dir: &Path) -> Run {
    let cfg = ExporterConfig {
        name: "pp".into(),
        queue: QueueConfig {
            max_spans: 1000,
            on_full: OnFull::Refuse,
            persistent: Some(PersistConfig {
                dir: dir.display().to_string(),
                max_bytes: 1 << 30,
                sync: SyncPolicy::Always,
            }),
            ..QueueConfig::default()
        },
        batch: BatchConfig {
            max_spans: 3,
            timeout: Duration::from_millis(5),
        },
        retry: RetryConfig::default(),
        kind: ExporterKind::Null,
    };
    let (pipeline, mut rx) = Pipeline::open(&[cfg], Router::all(1)).expect("opens");
    let q = rx.remove(0);
    let store = q.store.clone().expect("persistent");
    let cache = Arc::new(MappingCache::new(&CacheConfig::default()).expect("cache"));
    let mut acfg = assemble::Config::with_defaults(AgentId::new("otel").expect("marker"));
    acfg.hold = HOLD;
    let asm = Arc::new(Mutex::new(Assembler::new(acfg, cache)));
    let taken = Arc::new(AtomicUsize::new(0));
    let (stop, stop_rx) = watch::channel(false);
    let _replays = pipeline.start_replay(&stop_rx);
    let exporter = Assembling {
        asm: Arc::clone(&asm),
        taken: Arc::clone(&taken),
    };
    let worker = tokio::spawn(worker::run(exporter, q, stop_rx));
    Run {
        pipeline,
        store,
        asm,
        taken,
        stop,
        worker,
    }
}

impl Run {
    async fn wait_taken(&self, n: usize) {
        for _ in 0..500 {
            if self.taken.load(Ordering::SeqCst) >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The worker finishes the batch (its own hold) right after `export`.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(self.taken.load(Ordering::SeqCst), n);
    }

    /// A flush at `after` past now (assembly gives up waiting for callers).
    fn flush(&self, after: Duration) -> Vec<Output> {
        let mut asm = self.asm.lock().expect("lock");
        asm.flush(Instant::now() + after, false)
    }

    /// Like a SIGKILL as far as the queue is concerned: nothing more is acknowledged.
    async fn crash(self) {
        self.pipeline.close();
        let _ = self.stop.send(true);
        self.worker.abort();
        let _ = self.worker.await;
        // Spans still held die with the assembler: their holds are never released.
        drop(self.asm);
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || store.close())
            .await
            .expect("closes");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_stay_until_the_last_span_of_their_batch_is_sent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = open(dir.path());
    run.pipeline
        .submit_durable(waiting("a", 1))
        .await
        .expect("durable");
    run.wait_taken(3).await;
    run.pipeline
        .submit_durable(waiting("b", 2))
        .await
        .expect("durable");
    run.wait_taken(6).await;
    // The entries wait for their callers: nothing is emitted, and every record stays
    // (however long assembly keeps them: the release follows the spans, not a clock).
    assert!(run.flush(Duration::from_secs(1)).is_empty());
    run.crash().await;

    let run = open(dir.path());
    run.wait_taken(6).await;
    // Both batches go out; only the messages of `a` are sent.
    let out = run.flush(3 * HOLD);
    assert_eq!(out.iter().map(|o| o.spans).sum::<usize>(), 6);
    for o in out {
        if o.agent.application_name == "a" {
            o.holds.into_iter().for_each(Hold::release);
        }
        // `b`'s messages are dropped unsent (as by a crash): their holds too.
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    run.crash().await;

    // Only `b` comes back.
    let run = open(dir.path());
    run.wait_taken(3).await;
    let out = run.flush(3 * HOLD);
    let apps: Vec<&str> = out
        .iter()
        .map(|o| o.agent.application_name.as_str())
        .collect();
    assert_eq!(apps, ["b"; 3]);
    out.into_iter()
        .for_each(|o| o.holds.into_iter().for_each(Hold::release));
    tokio::time::sleep(Duration::from_millis(100)).await;
    run.crash().await;

    let run = open(dir.path());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        run.taken.load(Ordering::SeqCst),
        0,
        "everything was acknowledged"
    );
    run.crash().await;
}
