//! Tests of the persistent queue through the pipeline: durability before the answer,
//! replay after a "crash", acknowledgement and deletion, holds, limits, damage.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use tokio::sync::watch;

use super::*;
use crate::config::{BatchConfig, ExporterConfig, ExporterKind, QueueConfig, RetryConfig};
use crate::exporter::{ExportError, Exporter};
use crate::pipeline::router::Router;
use crate::pipeline::{Batch, Block, Pipeline, QueueReceiver, worker};

fn config(dir: &Path, max_bytes: u64) -> ExporterConfig {
    ExporterConfig {
        name: "disk".into(),
        queue: QueueConfig {
            max_spans: 1000,
            on_full: OnFull::Refuse,
            persistent: Some(PersistConfig {
                dir: dir.display().to_string(),
                max_bytes,
                sync: SyncPolicy::Always,
            }),
            ..QueueConfig::default()
        },
        batch: BatchConfig {
            max_spans: 10,
            timeout: Duration::from_millis(10),
        },
        retry: RetryConfig {
            initial: Duration::from_millis(1),
            max: Duration::from_millis(5),
            max_elapsed: Duration::from_millis(50),
        },
        kind: ExporterKind::Null,
    }
}

/// A block of `n` spans whose span ids are `first..first + n`.
fn block(first: u64, n: u64) -> Block {
    let spans = (first..first + n)
        .map(|i| Span {
            trace_id: vec![1; 16],
            span_id: i.to_be_bytes().to_vec(),
            ..Default::default()
        })
        .collect();
    Block::new(vec![ResourceSpans {
        scope_spans: vec![ScopeSpans {
            spans,
            ..Default::default()
        }],
        ..Default::default()
    }])
}

/// Records span ids; keeps a hold on every batch (never released) when `keep`.
struct Probe {
    seen: Arc<Mutex<Vec<u64>>>,
    keep: Option<Vec<Hold>>,
}

impl Exporter for Probe {
    async fn export(&mut self, batch: &Batch) -> Result<(), ExportError> {
        let mut seen = self
            .seen
            .lock()
            .map_err(|_| ExportError::Permanent("poisoned".into()))?;
        for rs in batch.resource_spans() {
            for s in rs.scope_spans.iter().flat_map(|s| &s.spans) {
                let mut id = [0; 8];
                id.copy_from_slice(&s.span_id);
                seen.push(u64::from_be_bytes(id));
            }
        }
        if let Some(k) = &mut self.keep {
            k.push(batch.hold());
        }
        Ok(())
    }
}

struct Run {
    pipeline: Arc<Pipeline>,
    store: Arc<Store>,
    seen: Arc<Mutex<Vec<u64>>>,
    stop: watch::Sender<bool>,
    worker: tokio::task::JoinHandle<()>,
    replays: Vec<tokio::task::JoinHandle<()>>,
}

fn open(cfg: &ExporterConfig, keep: bool) -> Run {
    let (pipeline, mut rx) =
        Pipeline::open(std::slice::from_ref(cfg), Router::all(1)).expect("opens");
    let q: QueueReceiver = rx.remove(0);
    let store = q.store.clone().expect("persistent");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let probe = Probe {
        seen: Arc::clone(&seen),
        keep: keep.then(Vec::new),
    };
    let (stop, stop_rx) = watch::channel(false);
    let replays = pipeline.start_replay(&stop_rx);
    let worker = tokio::spawn(worker::run(probe, q, stop_rx));
    Run {
        pipeline,
        store,
        seen,
        stop,
        worker,
        replays,
    }
}

impl Run {
    /// Stops like a shutdown whose grace period is over at once: the worker is aborted.
    async fn crash(self) {
        self.pipeline.close();
        let _ = self.stop.send(true);
        self.worker.abort();
        let _ = self.worker.await;
        for r in self.replays {
            let _ = r.await;
        }
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || store.close())
            .await
            .expect("closes");
    }

    async fn stop(self) {
        self.pipeline.close();
        let _ = self.stop.send(true);
        let _ = self.worker.await;
        for r in self.replays {
            let _ = r.await;
        }
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || store.close())
            .await
            .expect("closes");
    }

    fn seen(&self) -> Vec<u64> {
        let mut v = self.seen.lock().expect("lock").clone();
        v.sort_unstable();
        v
    }

    async fn wait_for(&self, n: usize) {
        for _ in 0..500 {
            if self.seen.lock().expect("lock").len() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn segments(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .expect("dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".log"))
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivered_records_are_deleted_and_nothing_is_replayed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path(), 1 << 30);
    let run = open(&cfg, false);
    for i in 0..20 {
        run.pipeline
            .submit_durable(block(i * 5, 5))
            .await
            .expect("durable");
    }
    run.wait_for(100).await;
    assert_eq!(run.seen(), (0..100).collect::<Vec<_>>());
    run.stop().await;
    let again = open(&cfg, false);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(again.seen().is_empty(), "nothing to replay");
    again.stop().await;
    assert!(
        segments(dir.path()) <= 1,
        "sealed delivered segments are deleted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_records_survive_a_crash_and_are_replayed_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path(), 1 << 30);
    // The exporter "sends" everything but keeps holds (a Pinpoint segment not yet
    // sent): after a crash, all of it comes back.
    let run = open(&cfg, true);
    for i in 0..10 {
        run.pipeline
            .submit_durable(block(i * 3, 3))
            .await
            .expect("durable");
    }
    run.wait_for(30).await;
    assert_eq!(run.seen().len(), 30);
    run.crash().await;
    let again = open(&cfg, false);
    again.wait_for(30).await;
    assert_eq!(again.seen(), (0..30).collect::<Vec<_>>());
    again.stop().await;
    // Delivered and released this time: a third start replays nothing.
    let third = open(&cfg, false);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(third.seen().is_empty());
    third.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_bytes_refuses_with_retry_later_and_recovers_once_delivered() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Each record is ~ 5 spans × ~30 bytes; 1 MiB holds many, so fill with big blocks.
    let cfg = config(dir.path(), 1 << 20);
    let run = open(&cfg, true);
    let mut refused = None;
    for i in 0..10_000 {
        match run.pipeline.submit_durable(block(i * 100, 100)).await {
            Ok(()) => {}
            Err(e) => {
                refused = Some((i, e));
                break;
            }
        }
        run.wait_for(((i + 1) * 100) as usize).await;
    }
    let (at, e) = refused.expect("max_bytes is reached");
    assert!(matches!(e, Refused::QueueFull { .. }), "{e:?}");
    assert!(run.store.used_bytes() <= 1 << 20);
    assert!(
        at > 10,
        "a MiB takes more than 10 requests of 100 spans ({at})"
    );
    run.crash().await;
    // Next start: the holds are gone with the crashed exporter; replay delivers and
    // acknowledges everything, and the room comes back.
    let again = open(&cfg, false);
    again.wait_for((at * 100) as usize).await;
    assert_eq!(again.seen().len(), (at * 100) as usize);
    for _ in 0..100 {
        if again.pipeline.submit_durable(block(0, 100)).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(again.pipeline.submit_durable(block(0, 100)).await.is_ok());
    again.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_records_are_skipped_counted_and_the_rest_delivered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path(), 1 << 30);
    let run = open(&cfg, true);
    for i in 0..10 {
        run.pipeline
            .submit_durable(block(i * 2, 2))
            .await
            .expect("durable");
    }
    run.wait_for(20).await;
    run.crash().await;
    // Overwrite the 4th record with junk and cut the last one in half.
    let seg = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "log"))
        .expect("a segment");
    let mut data = std::fs::read(&seg).expect("read");
    let s = record::scan(&data);
    assert_eq!(s.records.len(), 10);
    let (a, b) = (s.records[3].offset as usize, s.records[4].offset as usize);
    data[a..b].fill(0x5A);
    let last = s.records[9].offset as usize;
    data.truncate(last + (data.len() - last) / 2);
    std::fs::write(&seg, &data).expect("write");
    let again = open(&cfg, false);
    again.wait_for(16).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let want: Vec<u64> = (0..18).filter(|i| !(6..8).contains(i)).collect();
    assert_eq!(again.seen(), want);
    again.stop().await;
}

#[test]
fn sync_policy_reads_always_never_or_a_duration() {
    let read = |t: &str| serde_saphyr::from_str::<SyncPolicy>(t).map_err(|e| e.to_string());
    assert_eq!(read("always"), Ok(SyncPolicy::Always));
    assert_eq!(read("never"), Ok(SyncPolicy::Never));
    assert_eq!(
        read("100ms"),
        Ok(SyncPolicy::Interval(Duration::from_millis(100)))
    );
    assert!(read("sometimes").is_err());
}
