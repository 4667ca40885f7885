//! One balanced endpoint's worker: takes parts from its own bounded queue, sends them
//! (merged up to `batch.max_spans`) with its own exponential backoff within
//! `retry.max_elapsed`, and moves its spans to other endpoints when it leaves the
//! membership or, with `balance.reroute_after`, stays down that long. A down endpoint
//! is probed with empty requests until it answers.

use std::sync::Weak;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use tokio::sync::{Notify, OwnedSemaphorePermit, mpsc, watch};

use super::balance::Shared;
use super::transport::Transport;
use crate::exporter::ExportError;
use crate::pipeline::persist::Hold;
use crate::selfmetrics as m;

/// A span moved more often than this is given up (counted), so a flapping membership
/// cannot bounce spans forever.
pub const MAX_MOVES: u8 = 3;

/// The spans of one batch routed to one endpoint, holding their queue room.
pub struct Part {
    pub spans: Vec<ResourceSpans>,
    pub count: usize,
    pub permit: OwnedSemaphorePermit,
    /// How many times these spans were moved already.
    pub moves: u8,
    /// Its batches' records in a persistent queue, released once the part is sent
    /// or given up (counted); dropped unreleased (shutdown) they stay for replay.
    pub holds: Vec<Hold>,
}

/// Control flags between the balancer and one worker.
pub struct Ctl {
    removed: AtomicBool,
    down: AtomicBool,
    wake: Notify,
    done: watch::Sender<bool>,
}

impl Default for Ctl {
    fn default() -> Self {
        Self {
            removed: AtomicBool::new(false),
            down: AtomicBool::new(false),
            wake: Notify::new(),
            done: watch::Sender::new(false),
        }
    }
}

impl Ctl {
    /// The endpoint left the membership: the worker moves everything it holds.
    pub fn remove(&self) {
        self.removed.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    pub fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Acquire)
    }

    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Acquire)
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::Release);
    }

    /// Waits until the worker has ended.
    pub async fn finished(&self) {
        let mut rx = self.done.subscribe();
        let _ = rx.wait_for(|d| *d).await;
    }
}

/// The worker of one endpoint.
pub struct Worker {
    key: String,
    transport: Transport,
    ctl: std::sync::Arc<Ctl>,
    shared: Weak<Shared>,
    /// Copied from the balancer's settings.
    exporter: String,
    wire: super::Wire,
    max_spans: usize,
    retry: crate::config::RetryConfig,
    reroute_after: Option<Duration>,
}

/// How one batch ended.
enum Ended {
    Done,
    /// The endpoint was taken off the ring: move the rest of the queue, then probe.
    Down,
}

impl Worker {
    #[must_use]
    pub(super) fn new(
        key: String,
        transport: Transport,
        ctl: std::sync::Arc<Ctl>,
        shared: Weak<Shared>,
    ) -> Self {
        let s = shared.upgrade();
        let settings = s.as_ref().map(|s| &s.settings);
        Self {
            key,
            transport,
            ctl,
            exporter: settings.map(|s| s.exporter.clone()).unwrap_or_default(),
            wire: settings.map_or_else(
                || super::Wire {
                    protocol: super::Protocol::Grpc,
                    gzip: false,
                    timeout: Duration::from_secs(10),
                    headers: Default::default(),
                    tls: Default::default(),
                },
                |s| s.wire.clone(),
            ),
            max_spans: settings.map_or(512, |s| s.batch.max_spans),
            retry: settings.map(|s| s.retry.clone()).unwrap_or_default(),
            reroute_after: settings.and_then(|s| s.balance.reroute_after),
            shared,
        }
    }

    /// Runs until the queue is closed and empty.
    pub async fn run(self, mut rx: mpsc::UnboundedReceiver<Part>) {
        while let Some(first) = rx.recv().await {
            if self.ctl.is_removed() {
                self.move_off(first.spans, first.moves, "membership", first.holds);
                continue;
            }
            let mut count = first.count;
            let mut parts = vec![first];
            while count < self.max_spans {
                match rx.try_recv() {
                    Ok(p) => {
                        count += p.count;
                        parts.push(p);
                    }
                    Err(_) => break,
                }
            }
            if let Ended::Down = self.send(parts, count).await {
                while let Ok(p) = rx.try_recv() {
                    self.move_off(p.spans, p.moves, "endpoint_down", p.holds);
                }
                self.probe().await;
            }
            if let Some(s) = self.shared.upgrade() {
                s.refresh_gauges();
            }
        }
        self.ctl.done.send_replace(true);
    }

    fn move_off(
        &self,
        spans: Vec<ResourceSpans>,
        moves: u8,
        reason: &'static str,
        holds: Vec<Hold>,
    ) {
        match self.shared.upgrade() {
            Some(s) => s.reroute(spans, moves, reason, holds),
            // Shutting down: the holds go unreleased, so a persistent queue keeps these.
            None => self.fail(super::convert::span_count(&spans), "shutdown"),
        }
    }

    fn fail(&self, spans: usize, reason: &'static str) {
        metrics::counter!(m::EXPORTER_SPANS_FAILED, "exporter" => self.exporter.clone(), "reason" => reason)
            .increment(spans as u64);
    }

    /// Sends one merged batch with retries.
    async fn send(&self, parts: Vec<Part>, count: usize) -> Ended {
        let moves = parts.iter().map(|p| p.moves).max().unwrap_or(0);
        let mut spans = Vec::new();
        let mut permits: Vec<OwnedSemaphorePermit> = Vec::with_capacity(parts.len());
        let mut holds = Vec::new();
        for p in parts {
            spans.extend(p.spans);
            permits.push(p.permit);
            holds.extend(p.holds);
        }
        // Sent or given up (counted): the records of these spans may go.
        let done = |holds: Vec<Hold>| holds.into_iter().for_each(Hold::release);
        let req = ExportTraceServiceRequest {
            resource_spans: spans,
        };
        let body = match self.wire.encode(&req) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(exporter = %self.exporter, endpoint = %self.key, error = %e, "cannot encode; batch dropped");
                self.fail(count, "permanent");
                done(holds);
                return Ended::Done;
            }
        };
        let started = Instant::now();
        let mut backoff = self.retry.initial;
        loop {
            if self.ctl.is_removed() {
                self.move_off(req.resource_spans, moves, "membership", holds);
                return Ended::Done;
            }
            let error = match self.transport.send(body.clone()).await {
                Ok(sent) => {
                    super::count_partial(&self.exporter, &self.key, &sent);
                    metrics::counter!(m::OTLP_DELIVERED, "exporter" => self.exporter.clone())
                        .increment(count as u64);
                    done(holds);
                    return Ended::Done;
                }
                Err(e) => e,
            };
            let after = match error {
                ExportError::Permanent(message) => {
                    tracing::error!(exporter = %self.exporter, endpoint = %self.key, error = %message, spans = count, "export refused; batch dropped");
                    self.fail(count, "permanent");
                    done(holds);
                    return Ended::Done;
                }
                ExportError::Retryable { message, after } => {
                    tracing::warn!(exporter = %self.exporter, endpoint = %self.key, error = %message, spans = count, "export failed; will retry");
                    after
                }
            };
            metrics::counter!(m::EXPORTER_RETRIES, "exporter" => self.exporter.clone())
                .increment(1);
            if self.reroute_after.is_some_and(|d| started.elapsed() >= d)
                && self
                    .shared
                    .upgrade()
                    .is_some_and(|s| s.mark_down(&self.key))
            {
                self.move_off(req.resource_spans, moves, "endpoint_down", holds);
                return Ended::Down;
            }
            let wait = after.unwrap_or(backoff).min(self.retry.max);
            if started.elapsed() + wait > self.retry.max_elapsed {
                tracing::error!(exporter = %self.exporter, endpoint = %self.key, spans = count, "retries exhausted; batch dropped");
                self.fail(count, "retries_exhausted");
                done(holds);
                return Ended::Done;
            }
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.ctl.wake.notified() => {}
            }
            backoff = (backoff * 2).min(self.retry.max);
        }
    }

    /// Sends empty requests until the endpoint answers (or leaves), then puts it back.
    async fn probe(&self) {
        let Ok(empty) = self.wire.encode(&ExportTraceServiceRequest::default()) else {
            return;
        };
        let mut wait = self.retry.initial;
        while !self.ctl.is_removed() {
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.ctl.wake.notified() => {}
            }
            if self.ctl.is_removed() {
                return;
            }
            if self.transport.send(empty.clone()).await.is_ok() {
                if let Some(s) = self.shared.upgrade() {
                    s.mark_up(&self.key);
                }
                return;
            }
            wait = (wait * 2).min(self.retry.max);
        }
    }
}
