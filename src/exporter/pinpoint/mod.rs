//! The Pinpoint exporter: OTel spans become Pinpoint agents, spans, span events and
//! span chunks, sent to a Pinpoint collector over its gRPC agent protocol.
//!
//! `agent.rs` (who the virtual agent is) and `semconv.rs` + `convert.rs` (what a span
//! looks like) are pure; `assemble/` holds spans until their segments are ready;
//! `client.rs` is the transport; `wire.rs` encodes each message once, by hand, and
//! `codec.rs` hands the bytes to tonic.

pub mod agent;
pub mod assemble;
pub mod client;
pub mod codec;
pub mod codes;
pub mod convert;
pub mod proto;
pub mod semconv;
pub mod wire;

use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics::{Counter, Gauge, Histogram};
use serde::Deserialize;

use super::{ExportError, Exporter};
use crate::config::{de_bytes, de_duration};
use crate::ids::{AgentId, MappingCache};
use crate::pipeline::Batch;
use crate::selfmetrics as m;
use assemble::{Assembler, Output};
use client::{Client, ClientConfig, Outgoing, SpanProtocol};
use convert::AttributeMode;

/// `exporters.<name>:` keys of `type: pinpoint`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinpointConfig {
    /// Collector host name or address. Required.
    pub host: String,
    /// Agent and metadata port. Default 9991.
    #[serde(default = "d_agent_port")]
    pub agent_port: u16,
    /// Span port. Default 9993.
    #[serde(default = "d_span_port")]
    pub span_port: u16,
    /// TLS to the collector. Default off.
    #[serde(default)]
    pub tls: client::TlsConfig,
    /// `auto` (default), `batch` (3.1+) or `stream`.
    #[serde(default)]
    pub protocol: SpanProtocol,
    /// Per-call timeout. Default 10s.
    #[serde(default = "d_timeout", deserialize_with = "de_duration")]
    pub timeout: Duration,
    /// agentId of OTel-born transaction ids. Default `otel`.
    #[serde(default = "d_marker")]
    pub marker: String,
    /// How long a waiting segment (or spans waiting for their local parent) waits,
    /// from its own arrival. Default 10s: covers the OTel SDKs' 5 s export delay.
    #[serde(default = "d_hold", deserialize_with = "de_duration")]
    pub hold: Duration,
    /// Spans held for parent resolution at most. Default 100000.
    #[serde(default = "d_max_pending")]
    pub max_pending_spans: usize,
    /// Bytes held for parent resolution at most (approximate). Default 256MiB.
    #[serde(default = "d_max_pending_bytes", deserialize_with = "de_bytes")]
    pub max_pending_bytes: usize,
    /// How long a sent segment takes late spans as chunks. Default 30s.
    #[serde(default = "d_late", deserialize_with = "de_duration")]
    pub late_window: Duration,
    /// Sent spans remembered for late children at most; the oldest are forgotten first
    /// (a later child of a forgotten span starts its own segment). Default 100000.
    #[serde(default = "d_max_late")]
    pub max_late_spans: usize,
    /// `args` (default, every version), `attributes` (3.1+) or `none`.
    #[serde(default)]
    pub attributes: AttributeMode,
    /// Attributes per span at most. Default 10.
    #[serde(default = "d_max_attrs")]
    pub max_attributes: usize,
    /// Longest attribute value in bytes. Default 256.
    #[serde(default = "d_max_value")]
    pub max_value_len: usize,
    /// Send the `http.method` annotation (3.1+). Default false.
    #[serde(default)]
    pub http_method_annotation: bool,
    /// Default 60s.
    #[serde(default = "d_ping", deserialize_with = "de_duration")]
    pub ping_interval: Duration,
    /// Default 24h.
    #[serde(default = "d_info", deserialize_with = "de_duration")]
    pub agent_info_interval: Duration,
    /// An agent not seen this long is closed and forgotten. Default 10m.
    #[serde(default = "d_idle", deserialize_with = "de_duration")]
    pub agent_idle_timeout: Duration,
}

fn d_agent_port() -> u16 {
    9991
}
fn d_span_port() -> u16 {
    9993
}
fn d_timeout() -> Duration {
    Duration::from_secs(10)
}
fn d_marker() -> String {
    "otel".to_owned()
}
fn d_hold() -> Duration {
    assemble::DEFAULT_HOLD
}
fn d_max_pending() -> usize {
    assemble::DEFAULT_MAX_PENDING_SPANS
}
fn d_max_pending_bytes() -> usize {
    assemble::DEFAULT_MAX_PENDING_BYTES
}
fn d_late() -> Duration {
    Duration::from_secs(30)
}
fn d_max_late() -> usize {
    100_000
}
fn d_max_attrs() -> usize {
    10
}
fn d_max_value() -> usize {
    256
}
fn d_ping() -> Duration {
    Duration::from_secs(60)
}
fn d_info() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn d_idle() -> Duration {
    Duration::from_secs(600)
}

impl PinpointConfig {
    /// Problems with the values, as `(key, message)`.
    #[must_use]
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut p = Vec::new();
        if self.host.trim().is_empty() {
            p.push(("host", "must not be empty".to_owned()));
        }
        if let Err(e) = AgentId::new(&self.marker) {
            p.push(("marker", e.to_string()));
        }
        if self.hold.is_zero() {
            p.push(("hold", "must be greater than 0".to_owned()));
        }
        if self.max_pending_spans == 0 {
            p.push(("max_pending_spans", "must be greater than 0".to_owned()));
        }
        if self.max_pending_bytes == 0 {
            p.push(("max_pending_bytes", "must be greater than 0".to_owned()));
        }
        if self.ping_interval < Duration::from_secs(20) {
            p.push((
                "ping_interval",
                "must be at least 20s (the collector's keepalive floor)".to_owned(),
            ));
        }
        p
    }
}

/// Converts and sends spans to one Pinpoint collector.
pub struct PinpointExporter {
    assembler: Assembler,
    client: Client,
    /// Messages made but not yet accepted by the collector.
    outbox: Vec<Outgoing>,
    /// Encodes each message once, as it enters the outbox.
    writer: wire::Writer,
    last_batch: Option<u64>,
    pending_gauge: Gauge,
    pending_bytes_gauge: Gauge,
    agents_gauge: Gauge,
    unresolved: Counter,
    links: [Counter; 5],
    orphans: [Counter; 4],
    handoff_wait: Histogram,
    early: Counter,
    /// Spans in messages the collector took, not yet reported to the worker.
    spans_sent: u64,
    rejected: Counter,
    outbox_dropped: Counter,
    segments: Counter,
    chunks: Counter,
    last_counts: assemble::Counts,
}

const MAX_OUTBOX: usize = 50_000;

/// A message is with the collector, or given up (counted): the records of its spans'
/// batches may go, once no other span of those batches is held or unsent.
fn done(o: Outgoing) {
    o.holds
        .into_iter()
        .for_each(crate::pipeline::persist::Hold::release);
}

impl PinpointExporter {
    /// Builds the exporter (the connection is made on first use).
    ///
    /// # Errors
    /// A message when the config cannot make a client.
    pub fn new(name: &str, cfg: &PinpointConfig, cache: Arc<MappingCache>) -> Result<Self, String> {
        let marker = AgentId::new(&cfg.marker).map_err(|e| format!("marker: {e}"))?;
        let assembler = Assembler::new(
            assemble::Config {
                hold: cfg.hold,
                max_pending_spans: cfg.max_pending_spans,
                max_pending_bytes: cfg.max_pending_bytes,
                late_window: cfg.late_window,
                max_late_spans: cfg.max_late_spans,
                marker,
                convert: convert::Options {
                    attributes: cfg.attributes,
                    max_attributes: cfg.max_attributes,
                    max_value_len: cfg.max_value_len,
                    http_method_annotation: cfg.http_method_annotation,
                },
            },
            cache,
        )
        .with_handoff_target(&format!("{}:{}", cfg.host, cfg.span_port));
        let client = Client::new(ClientConfig {
            host: cfg.host.clone(),
            tls: cfg.tls.clone(),
            agent_port: cfg.agent_port,
            span_port: cfg.span_port,
            protocol: cfg.protocol,
            timeout: cfg.timeout,
            ping_interval: cfg.ping_interval,
            agent_info_interval: cfg.agent_info_interval,
            agent_idle_timeout: cfg.agent_idle_timeout,
        })?;
        let l = || [("exporter", name.to_owned())];
        Ok(Self {
            assembler,
            client,
            outbox: Vec::new(),
            writer: wire::Writer::default(),
            last_batch: None,
            pending_gauge: metrics::gauge!(m::PINPOINT_PENDING_SPANS, &l()),
            pending_bytes_gauge: metrics::gauge!(m::PINPOINT_PENDING_BYTES, &l()),
            agents_gauge: metrics::gauge!(m::PINPOINT_AGENTS, &l()),
            unresolved: metrics::counter!(m::PINPOINT_UNRESOLVED_PARENTS, &l()),
            links: assemble::LinkOutcome::ALL.map(|o| {
                metrics::counter!(m::PINPOINT_PARENT_LINKS, "exporter" => name.to_owned(), "outcome" => o.label())
            }),
            orphans: assemble::OrphanOutcome::ALL.map(|o| {
                metrics::counter!(m::PINPOINT_ORPHANS, "exporter" => name.to_owned(), "outcome" => o.label())
            }),
            handoff_wait: metrics::histogram!(m::PINPOINT_HANDOFF_WAIT, &l()),
            early: metrics::counter!(m::PINPOINT_EARLY_TRACES, &l()),
            spans_sent: 0,
            rejected: metrics::counter!(m::PINPOINT_REJECTED_SPANS, &l()),
            outbox_dropped: metrics::counter!(m::PINPOINT_MESSAGES_DROPPED, &l()),
            segments: metrics::counter!(m::PINPOINT_MESSAGES, "exporter" => name.to_owned(), "kind" => "span"),
            chunks: metrics::counter!(m::PINPOINT_MESSAGES, "exporter" => name.to_owned(), "kind" => "chunk"),
            last_counts: assemble::Counts::default(),
        })
    }

    fn collect(&mut self, force: bool) {
        let out = self.assembler.flush(Instant::now(), force);
        let writer = &mut self.writer;
        self.outbox
            .extend(out.into_iter().map(|o: Output| Outgoing {
                message: writer.encode(&o.message),
                agent: o.agent,
                exceptions: o.exceptions,
                spans: o.spans,
                holds: o.holds,
            }));
        if self.outbox.len() > MAX_OUTBOX {
            let excess = self.outbox.len() - MAX_OUTBOX;
            // Given up, counted: their records in a persistent queue may go.
            self.outbox.drain(..excess).for_each(done);
            self.outbox_dropped.increment(excess as u64);
            tracing::error!(
                dropped = excess,
                "pinpoint outbox full: oldest messages dropped"
            );
        }
        let c = self.assembler.counts;
        let (now, before) = (c.links, self.last_counts.links);
        for (i, counter) in self.links.iter().enumerate() {
            counter.increment(now.0[i] - before.0[i]);
        }
        let (now_o, before_o) = (c.orphans, self.last_counts.orphans);
        for (i, counter) in self.orphans.iter().enumerate() {
            counter.increment(now_o.0[i] - before_o.0[i]);
        }
        for w in self.assembler.take_handoff_waits() {
            self.handoff_wait.record(w);
        }
        // Spans handed off to another instance left this one: they count as sent here
        // (the other instance does not count them again).
        let handed = assemble::OrphanOutcome::HandedOff;
        self.spans_sent += now_o.get(handed) - before_o.get(handed);
        let remote = assemble::LinkOutcome::UnresolvedRemote;
        self.unresolved
            .increment(now.get(remote) - before.get(remote));
        self.early
            .increment(c.early_by_capacity - self.last_counts.early_by_capacity);
        self.segments.increment(c.spans - self.last_counts.spans);
        self.chunks.increment(c.chunks - self.last_counts.chunks);
        self.last_counts = c;
        self.pending_gauge.set(self.assembler.pending() as f64);
        self.pending_bytes_gauge
            .set(self.assembler.pending_bytes() as f64);
    }

    async fn send_outbox(&mut self) -> Result<(), ExportError> {
        if self.outbox.is_empty() {
            return Ok(());
        }
        let report = match self.client.send(&self.outbox).await {
            Ok(report) => report,
            Err(failure) => {
                // What the collector took is neither resent nor counted as failed, and it
                // counts as sent.
                let mut delivered = failure.delivered.into_iter();
                let mut sent = 0u64;
                let (took, kept) = std::mem::take(&mut self.outbox)
                    .into_iter()
                    .partition::<Vec<_>, _>(|_| delivered.next().unwrap_or(false));
                self.outbox = kept;
                for o in took {
                    sent += o.spans as u64;
                    done(o);
                }
                self.spans_sent += sent;
                return Err(failure.error);
            }
        };
        self.spans_sent += self.outbox.iter().map(|o| o.spans as u64).sum::<u64>();
        self.outbox.drain(..).for_each(done);
        if report.rejected > 0 {
            self.rejected.increment(report.rejected as u64);
            tracing::warn!(
                rejected = report.rejected,
                "collector rejected spans (SendSpanBatch partial success)"
            );
        }
        self.agents_gauge.set(self.client.agent_count() as f64);
        Ok(())
    }
}

impl Exporter for PinpointExporter {
    async fn export(&mut self, batch: &Batch) -> Result<(), ExportError> {
        // A retried batch was already taken in: only its messages are resent.
        if self.last_batch != Some(batch.id()) {
            let now = Instant::now();
            // Persisted before assembly; each span carries its batch's hold into the
            // message it leaves in, released once that message is sent or given up.
            let hold = batch.hold();
            for block in batch.blocks() {
                self.assembler.add_block_held(block, now, None, &hold);
            }
            hold.release();
            self.last_batch = Some(batch.id());
        }
        self.collect(false);
        self.send_outbox().await
    }

    fn take_spans_sent(&mut self) -> Option<u64> {
        Some(std::mem::take(&mut self.spans_sent))
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(Duration::from_millis(100))
    }

    /// The worker gave up on a batch: the messages still waiting in the outbox are
    /// dropped (not sent later, after they were counted as failed), and their OTel
    /// spans are what failed.
    fn abandon(&mut self, _batch: &Batch) -> Option<u64> {
        let lost = self.outbox.iter().map(|o| o.spans as u64).sum();
        if !self.outbox.is_empty() {
            self.outbox_dropped.increment(self.outbox.len() as u64);
            self.outbox.drain(..).for_each(done);
        }
        Some(lost)
    }

    async fn tick(&mut self) -> Result<(), ExportError> {
        self.collect(false);
        let closed = self.client.expire_idle();
        if closed > 0 {
            tracing::info!(agents = closed, "idle virtual agents closed");
        }
        self.send_outbox().await
    }

    async fn shutdown(&mut self) {
        self.collect(true);
        // What is not sent keeps its holds unreleased when the exporter is dropped: a
        // persistent queue replays those batches on the next start.
        if let Err(e) = self.send_outbox().await {
            tracing::error!(error = %e, messages = self.outbox.len(), "pinpoint: final send failed");
        }
    }
}
