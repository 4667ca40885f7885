//! One task per exporter: takes blocks from its queue, forms batches (by size or
//! timeout), exports them with retry and backoff, and drains the queue on shutdown.
//! A batch holds spans or one profile request, never both: an item that cannot join
//! the batch being formed starts the next one.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::{Batch, QueueReceiver};
use crate::exporter::{ExportError, Exporter};
use crate::selfmetrics as m;

/// Runs `exporter` over its queue until the queue is closed and empty.
///
/// `stop` turning true closes the queue to new blocks; what is already queued is still
/// exported (the caller bounds that with its grace period by aborting the task).
pub async fn run<E: Exporter>(
    mut exporter: E,
    mut q: QueueReceiver,
    mut stop: watch::Receiver<bool>,
) {
    let mut stopping = *stop.borrow();
    if stopping {
        q.rx.close();
    }
    let tick_every = exporter
        .tick_interval()
        .unwrap_or(Duration::from_secs(3600));
    let mut ticker = tokio::time::interval(tick_every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let ticks = exporter.tick_interval().is_some();
    let mut carry = None;
    loop {
        let first = if let Some(item) = carry.take() {
            item
        } else {
            tokio::select! {
            item = q.rx.recv() => match item {
                Some(item) => item,
                None => break,
            },
            _ = ticker.tick(), if ticks => {
                if let Err(e) = exporter.tick().await {
                    q.stats.record_error(&e.to_string());
                    tracing::warn!(exporter = %q.stats.name, error = %e, "periodic export work failed");
                }
                count_sent(&mut exporter, &q, 0);
                continue;
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                q.rx.close();
                continue;
            }
            }
        };
        let mut batch = Batch::new(first);
        let deadline = tokio::time::Instant::now() + q.batch.timeout;
        while !batch.is_full(q.batch.max_spans) {
            tokio::select! {
                item = q.rx.recv() => match item {
                    Some(item) if batch.takes(&item) => batch.push(item),
                    Some(item) => {
                        carry = Some(item);
                        break;
                    }
                    None => break,
                },
                () = tokio::time::sleep_until(deadline), if !stopping => break,
                _ = stop.changed(), if !stopping => {
                    stopping = true;
                    q.rx.close();
                }
            }
        }
        send(&mut exporter, &batch, &q).await;
        // Exported or given up (counted): a persistent queue may forget the records
        // once every other hold on them (spans an exporter keeps) is released too.
        batch.finish();
        drop(batch);
        q.stats.update_gauge();
    }
    exporter.shutdown().await;
    count_sent(&mut exporter, &q, 0);
    tracing::debug!(exporter = %q.stats.name, "exporter stopped");
}

async fn send<E: Exporter>(exporter: &mut E, batch: &Batch, q: &QueueReceiver) {
    let name = q.stats.name.as_str();
    let spans = batch.span_count() as u64;
    let profiles = batch.profile_count() as u64;
    let started = Instant::now();
    let mut backoff = q.retry.initial;
    let duration = metrics::histogram!(m::EXPORTER_SEND_DURATION, "exporter" => name.to_owned());
    let latency = metrics::histogram!(m::PIPELINE_LATENCY, "exporter" => name.to_owned());
    for at in batch.admitted() {
        latency.record(started.saturating_duration_since(*at).as_secs_f64());
    }
    loop {
        let t = Instant::now();
        let result = exporter.export(batch).await;
        duration.record(t.elapsed().as_secs_f64());
        let error = match result {
            Ok(()) => {
                count_sent(exporter, q, spans);
                if profiles > 0 {
                    metrics::counter!(m::EXPORTER_PROFILES_SENT, "exporter" => name.to_owned())
                        .increment(profiles);
                }
                return;
            }
            Err(e) => e,
        };
        q.stats.record_error(&error.to_string());
        let wait = retry_wait(&error, backoff, q.retry.max);
        let reason = match wait {
            Some(wait) if started.elapsed() + wait <= q.retry.max_elapsed => {
                metrics::counter!(m::EXPORTER_RETRIES, "exporter" => name.to_owned()).increment(1);
                tracing::warn!(exporter = name, spans, profiles, error = %error, retry_in_ms = wait.as_millis() as u64, "export failed; will retry");
                tokio::time::sleep(wait).await;
                backoff = (backoff * 2).min(q.retry.max);
                continue;
            }
            Some(_) => "retries_exhausted",
            None => "permanent",
        };
        // Only what the exporter did not deliver (and now drops) counts as failed.
        let lost = exporter.abandon(batch).unwrap_or(spans);
        tracing::error!(exporter = name, spans, lost, profiles, error = %error, reason, "export failed; batch dropped");
        q.stats.failed.fetch_add(lost, Ordering::Relaxed);
        metrics::counter!(m::EXPORTER_SPANS_FAILED, "exporter" => name.to_owned(), "reason" => reason)
            .increment(lost);
        if profiles > 0 {
            metrics::counter!(m::EXPORTER_PROFILES_FAILED, "exporter" => name.to_owned(), "reason" => reason)
                .increment(profiles);
        }
        return;
    }
}

/// Counts the spans that left: what the exporter reports, else the batch's `spans`.
fn count_sent<E: Exporter>(exporter: &mut E, q: &QueueReceiver, spans: u64) {
    let n = exporter.take_spans_sent().unwrap_or(spans);
    if n > 0 {
        q.stats.sent.fetch_add(n, Ordering::Relaxed);
        q.stats.sent_counter.increment(n);
    }
}

/// How long to wait before retrying `error`, or `None` when it must not be retried.
fn retry_wait(error: &ExportError, backoff: Duration, max: Duration) -> Option<Duration> {
    match error {
        ExportError::Retryable { after, .. } => Some(after.unwrap_or(backoff).min(max)),
        ExportError::Permanent(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{
        BatchConfig, ExporterConfig, ExporterKind, OnFull, QueueConfig, RetryConfig,
    };
    use crate::pipeline::router::Router;
    use crate::pipeline::{Block, Pipeline};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use std::sync::{Arc, Mutex};

    /// Records batch sizes; fails the first `fail_first` calls with `error`.
    struct Probe {
        batches: Arc<Mutex<Vec<usize>>>,
        fail_first: usize,
        error: fn() -> ExportError,
    }

    impl Exporter for Probe {
        async fn export(&mut self, batch: &Batch) -> Result<(), ExportError> {
            if self.fail_first > 0 {
                self.fail_first -= 1;
                return Err((self.error)());
            }
            self.batches
                .lock()
                .map_err(|_| ExportError::Permanent("poisoned".into()))?
                .push(batch.span_count());
            Ok(())
        }
    }

    fn setup(batch_max: usize, timeout_ms: u64) -> (Arc<Pipeline>, QueueReceiver) {
        let cfg = ExporterConfig {
            name: "probe".into(),
            queue: QueueConfig {
                max_spans: 1000,
                on_full: OnFull::Refuse,
                ..QueueConfig::default()
            },
            batch: BatchConfig {
                max_spans: batch_max,
                timeout: Duration::from_millis(timeout_ms),
            },
            retry: RetryConfig {
                initial: Duration::from_millis(1),
                max: Duration::from_millis(5),
                max_elapsed: Duration::from_millis(200),
            },
            kind: ExporterKind::Null,
        };
        let (p, mut rx) = Pipeline::new(&[cfg], Router::all(1));
        (p, rx.remove(0))
    }

    fn block(n: usize) -> Block {
        Block::new(vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span::default(); n],
                ..Default::default()
            }],
            ..Default::default()
        }])
    }

    #[tokio::test]
    async fn batches_by_size_and_drains_on_stop() {
        let (p, q) = setup(4, 10_000);
        let batches = Arc::new(Mutex::new(Vec::new()));
        let probe = Probe {
            batches: Arc::clone(&batches),
            fail_first: 0,
            error: || ExportError::Permanent("x".into()),
        };
        let stats = Arc::clone(&q.stats);
        let (stop_tx, stop_rx) = watch::channel(false);
        for _ in 0..5 {
            p.submit(block(2)).expect("room");
        }
        let task = tokio::spawn(run(probe, q, stop_rx));
        // Two full batches of 4 go out at once; the last 2 spans wait for the (long)
        // timeout, and stopping flushes them without waiting.
        stop_tx.send(true).expect("worker alive");
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("drained")
            .expect("no panic");
        assert_eq!(*batches.lock().expect("lock"), vec![4, 4, 2]);
        assert_eq!(stats.sent.load(Ordering::Relaxed), 10);
        assert_eq!(stats.queued(), 0);
    }

    #[tokio::test]
    async fn batches_by_timeout() {
        let (p, q) = setup(100, 20);
        let batches = Arc::new(Mutex::new(Vec::new()));
        let probe = Probe {
            batches: Arc::clone(&batches),
            fail_first: 0,
            error: || ExportError::Permanent("x".into()),
        };
        let (_stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(run(probe, q, stop_rx));
        p.submit(block(3)).expect("room");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(*batches.lock().expect("lock"), vec![3]);
    }

    #[tokio::test]
    async fn retries_retryable_errors_and_gives_up_on_permanent_ones() {
        let (p, q) = setup(1, 10);
        let batches = Arc::new(Mutex::new(Vec::new()));
        let probe = Probe {
            batches: Arc::clone(&batches),
            fail_first: 2,
            error: || ExportError::Retryable {
                message: "503".into(),
                after: None,
            },
        };
        let stats = Arc::clone(&q.stats);
        let (stop_tx, stop_rx) = watch::channel(false);
        p.submit(block(1)).expect("room");
        let task = tokio::spawn(run(probe, q, stop_rx));
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop_tx.send(true).expect("alive");
        task.await.expect("no panic");
        assert_eq!(*batches.lock().expect("lock"), vec![1]);
        assert_eq!(stats.sent.load(Ordering::Relaxed), 1);

        let (p, q) = setup(1, 10);
        let probe = Probe {
            batches: Arc::clone(&batches),
            fail_first: 1,
            error: || ExportError::Permanent("400".into()),
        };
        let stats = Arc::clone(&q.stats);
        let (stop_tx, stop_rx) = watch::channel(false);
        p.submit(block(1)).expect("room");
        let task = tokio::spawn(run(probe, q, stop_rx));
        tokio::time::sleep(Duration::from_millis(50)).await;
        stop_tx.send(true).expect("alive");
        task.await.expect("no panic");
        assert_eq!(
            (
                stats.sent.load(Ordering::Relaxed),
                stats.failed.load(Ordering::Relaxed)
            ),
            (0, 1)
        );
    }

    /// Records `(spans, profiles)` per batch.
    struct Kinds(Arc<Mutex<Vec<(usize, usize)>>>);

    impl Exporter for Kinds {
        async fn export(&mut self, batch: &Batch) -> Result<(), ExportError> {
            if let Ok(mut v) = self.0.lock() {
                v.push((batch.span_count(), batch.profile_count()));
            }
            Ok(())
        }
    }

    #[tokio::test]
    async fn spans_and_profiles_never_share_a_batch() {
        let cfg = ExporterConfig {
            name: "pyro".into(),
            queue: QueueConfig {
                max_spans: 1000,
                on_full: OnFull::Refuse,
                ..QueueConfig::default()
            },
            batch: BatchConfig {
                max_spans: 100,
                timeout: Duration::from_secs(10),
            },
            retry: RetryConfig::default(),
            kind: ExporterKind::Pyroscope(Box::new(
                serde_saphyr::from_str("endpoint: http://127.0.0.1:1\n").expect("config"),
            )),
        };
        let (p, mut rx) = Pipeline::new(&[cfg], Router::all(1));
        p.submit(block(2)).expect("room");
        p.submit_profiles(crate::pipeline::tests::profiles(5))
            .expect("room");
        p.submit_profiles(crate::pipeline::tests::profiles(1))
            .expect("room");
        p.submit(block(3)).expect("room");
        p.submit(block(1)).expect("room");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(run(Kinds(Arc::clone(&seen)), rx.remove(0), stop_rx));
        stop_tx.send(true).expect("alive");
        task.await.expect("no panic");
        assert_eq!(
            *seen.lock().expect("lock"),
            vec![(2, 0), (0, 1), (0, 1), (4, 0)]
        );
    }

    #[test]
    fn retry_wait_honours_retry_after_up_to_max() {
        let max = Duration::from_secs(5);
        let b = Duration::from_millis(100);
        let check =
            |e: ExportError, want: Option<Duration>| assert_eq!(retry_wait(&e, b, max), want);
        check(ExportError::Permanent("bad".into()), None);
        check(
            ExportError::Retryable {
                message: String::new(),
                after: None,
            },
            Some(b),
        );
        check(
            ExportError::Retryable {
                message: String::new(),
                after: Some(Duration::from_secs(2)),
            },
            Some(Duration::from_secs(2)),
        );
        check(
            ExportError::Retryable {
                message: String::new(),
                after: Some(Duration::from_secs(60)),
            },
            Some(max),
        );
    }
}
