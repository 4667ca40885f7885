//! Turns span messages into OTLP and hands them to the pipeline, holding the ones whose
//! metadata (API names, strings, SQL) or whose span (for an async chunk's parent) has not
//! arrived yet. A held message is retried whenever metadata or a span arrives and on a
//! short tick; after `hold` it is emitted with placeholders, counted. At most
//! `max_pending` messages wait; beyond that a message is emitted at once, counted too.
//!
//! Handing on awaits the pipeline's durable submit: with a persistent queue, a converted
//! message is on disk before [`Converter::submit`] returns (the span stream reads its
//! next message only then). A caller that acknowledges per call (`SendSpanBatch`) also
//! gets a [`Handed`] per held message, which resolves once that message was handed on
//! (or given up), so the answer follows the disk write of every span it acknowledges.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use moka::sync::Cache;
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

use super::convert::{self, ConvertError, Converted, Source};
use super::headers::AgentHeaders;
use super::metadata::{AgentKey, MetadataStore};
use crate::exporter::pinpoint::proto::{PSpanMessage, p_span_message};
use crate::ids::{AgentId, TransactionId};
use crate::receiver::Intake;
use crate::selfmetrics as m;

/// The sending agent of a span stream.
#[derive(Debug, Clone)]
pub struct AgentContext {
    pub key: AgentKey,
    pub application_name: String,
    pub agent_name: Option<String>,
    pub service_type: Option<i32>,
}

impl From<AgentHeaders> for AgentContext {
    fn from(h: AgentHeaders) -> Self {
        Self {
            key: AgentKey {
                agent_id: h.agent_id,
                start_time: h.start_time,
            },
            application_name: h.application_name,
            agent_name: h.agent_name,
            service_type: h.service_type,
        }
    }
}

impl From<AgentHeaders> for Arc<AgentContext> {
    fn from(h: AgentHeaders) -> Self {
        Arc::new(h.into())
    }
}

enum Unit {
    Span(Box<crate::exporter::pinpoint::proto::PSpan>),
    Chunk(crate::exporter::pinpoint::proto::PSpanChunk),
}

struct Pending {
    agent: Arc<AgentContext>,
    unit: Unit,
    deadline: Instant,
    /// Dropped once the message was handed on (or given up): wakes a waiting caller.
    _handed: Option<oneshot::Sender<()>>,
}

/// Resolves when a held message has been handed on to the pipeline (or given up).
pub type Handed = oneshot::Receiver<()>;

/// Openers of async ids per span: `(txid, spanId) → [(asyncId, OTel id)]`.
type Openers = Cache<(TransactionId, i64), Arc<Vec<(i32, [u8; 8])>>>;

/// Conversion settings.
#[derive(Debug, Clone)]
pub struct HoldConfig {
    pub marker: AgentId,
    pub hold: Duration,
    pub max_pending: usize,
}

/// The conversion stage of the receiver.
pub struct Converter {
    pub meta: Arc<MetadataStore>,
    intake: Arc<Intake>,
    config: HoldConfig,
    openers: Openers,
    pending: Mutex<VecDeque<Pending>>,
    notify: Notify,
}

impl Converter {
    #[must_use]
    pub fn new(meta: Arc<MetadataStore>, intake: Arc<Intake>, config: HoldConfig) -> Self {
        Self {
            meta,
            intake,
            openers: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(300))
                .build(),
            config,
            pending: Mutex::new(VecDeque::new()),
            notify: Notify::new(),
        }
    }

    /// Metadata arrived: held messages may now convert.
    pub fn metadata_arrived(&self) {
        if !self.lock().is_empty() {
            self.notify.notify_one();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Pending>> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Converts one span message and hands it on (awaiting a persistent queue's
    /// write), or holds it. With `wait`, a held message comes with a [`Handed`].
    ///
    /// # Errors
    /// The message is invalid (the collector would drop it too).
    pub async fn submit(
        &self,
        agent: &Arc<AgentContext>,
        msg: PSpanMessage,
        wait: bool,
    ) -> Result<Option<Handed>, ConvertError> {
        let unit = match msg.field {
            Some(p_span_message::Field::Span(s)) => Unit::Span(Box::new(s)),
            Some(p_span_message::Field::SpanChunk(c)) => Unit::Chunk(c),
            None => return Err(ConvertError::Empty),
        };
        let deadline = Instant::now() + self.config.hold;
        match self.attempt(agent, &unit, false).await? {
            Attempt::Done => Ok(None),
            Attempt::Wait => {
                let full = self.lock().len() >= self.config.max_pending;
                if full {
                    metrics::counter!(m::PINPOINT_RECEIVER_HOLD_OVERFLOW).increment(1);
                    self.attempt(agent, &unit, true).await?;
                    return Ok(None);
                }
                let (tx, rx) = if wait {
                    let (tx, rx) = oneshot::channel();
                    (Some(tx), Some(rx))
                } else {
                    (None, None)
                };
                let mut q = self.lock();
                q.push_back(Pending {
                    agent: Arc::clone(agent),
                    unit,
                    deadline,
                    _handed: tx,
                });
                metrics::gauge!(m::PINPOINT_RECEIVER_HELD).set(q.len() as f64);
                Ok(rx)
            }
        }
    }

    fn source<'a>(&self, agent: &'a AgentContext) -> Source<'a> {
        Source {
            application_name: &agent.application_name,
            agent_id: &agent.key.agent_id,
            agent_name: agent.agent_name.as_deref(),
            agent_start_time: agent.key.start_time,
            service_type: agent.service_type,
            marker: self.config.marker,
        }
    }

    async fn attempt(
        &self,
        agent: &AgentContext,
        unit: &Unit,
        force: bool,
    ) -> Result<Attempt, ConvertError> {
        let src = self.source(agent);
        let (converted, info) = self.meta.read(&agent.key, |meta| {
            let c = match unit {
                Unit::Span(s) => convert::convert_span(s, &src, meta),
                Unit::Chunk(c) => {
                    let opener = self.opener_for(c, &src);
                    convert::convert_chunk(c, &src, meta, opener)
                }
            };
            (c, meta.info.clone())
        });
        let converted = converted?;
        if converted.missing.any() && !force {
            return Ok(Attempt::Wait);
        }
        let request = self.emit(&src, info.as_ref(), unit, converted);
        let n = request.resource_spans.iter().flat_map(|r| &r.scope_spans);
        let n: usize = n.map(|s| s.spans.len()).sum();
        // A persistent queue has the spans on disk once this returns.
        match self.intake.accept(request).await {
            Ok(_) => metrics::counter!(m::PINPOINT_RECEIVER_SPANS_CONVERTED).increment(n as u64),
            Err(e) => {
                self.intake.count_failed(&e);
                tracing::debug!(error = %e, "converted Pinpoint spans refused by the pipeline");
            }
        }
        Ok(Attempt::Done)
    }

    fn opener_for(
        &self,
        c: &crate::exporter::pinpoint::proto::PSpanChunk,
        src: &Source<'_>,
    ) -> Option<[u8; 8]> {
        let async_id = c.local_async_id.as_ref()?.async_id;
        let tx = convert::transaction_id(c.transaction_id.as_ref(), src).ok()?;
        let openers = self.openers.get(&(tx, c.span_id))?;
        openers
            .iter()
            .find(|(a, _)| *a == async_id)
            .map(|(_, id)| *id)
    }

    /// Counts placeholders, records async openers and builds the request to hand on.
    fn emit(
        &self,
        src: &Source<'_>,
        info: Option<&super::metadata::AgentSummary>,
        unit: &Unit,
        converted: Converted,
    ) -> opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest {
        let missing = converted.missing;
        for (kind, n) in [
            ("api", missing.api),
            ("string", missing.string),
            ("sql", missing.sql),
        ] {
            if n > 0 {
                metrics::counter!(m::PINPOINT_RECEIVER_PLACEHOLDERS, "kind" => kind)
                    .increment(u64::from(n));
            }
        }
        if missing.opener {
            metrics::counter!(m::PINPOINT_RECEIVER_PLACEHOLDERS, "kind" => "async_parent")
                .increment(1);
        }
        if let (Unit::Span(s), Some(tx)) = (unit, converted.txid)
            && !converted.openers.is_empty()
        {
            self.openers
                .insert((tx, s.span_id), Arc::new(converted.openers.clone()));
            self.notify.notify_one();
        }
        let rs = convert::resource_spans(convert::resource(src, info), converted.spans);
        opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest {
            resource_spans: vec![rs],
        }
    }

    /// Retries held messages; emits those past their deadline with placeholders.
    async fn retry(&self) {
        let now = Instant::now();
        let held: Vec<Pending> = self.lock().drain(..).collect();
        let mut keep = Vec::new();
        for p in held {
            let force = now >= p.deadline;
            match self.attempt(&p.agent, &p.unit, force).await {
                Ok(Attempt::Wait) => keep.push(p),
                Ok(Attempt::Done) | Err(_) => {}
            }
        }
        let mut q = self.lock();
        // Arrivals during the retry go after the older ones.
        for p in keep.into_iter().rev() {
            q.push_front(p);
        }
        metrics::gauge!(m::PINPOINT_RECEIVER_HELD).set(q.len() as f64);
    }

    /// Runs the retry loop until `stop` completes; then emits everything held.
    pub async fn run(self: Arc<Self>, stop: impl Future<Output = ()>) {
        let mut stop = std::pin::pin!(stop);
        let tick = Duration::from_millis(100).min(self.config.hold.max(Duration::from_millis(1)));
        loop {
            tokio::select! {
                () = &mut stop => break,
                () = self.notify.notified() => {}
                () = tokio::time::sleep(tick) => {}
            }
            if !self.lock().is_empty() {
                self.retry().await;
            }
        }
        let held: Vec<Pending> = self.lock().drain(..).collect();
        for p in held {
            let _ = self.attempt(&p.agent, &p.unit, true).await;
        }
    }

    /// Messages held now.
    #[must_use]
    pub fn held(&self) -> usize {
        self.lock().len()
    }
}

enum Attempt {
    Done,
    Wait,
}
