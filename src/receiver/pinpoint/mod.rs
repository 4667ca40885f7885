//! The Pinpoint receiver: Pinpoint agents report here as to a collector (agent, stat and
//! span ports), their spans become OTLP spans in the ordinary pipeline, and with an
//! `upstream` every call is also made to the real collector ("tee").
//!
//! Code map: [`grpc`] (services, statuses) → [`headers`] (agent headers as the collector
//! checks them) → [`tee`] (raw bytes to the upstream, bounded) and [`hold`] (holding
//! until metadata arrives) → [`convert`] + [`semconv`] (pure PSpan → OTLP, ids.md §8)
//! → [`crate::receiver::Intake`]. [`metadata`] keeps what agents registered; [`codec`]
//! keeps message bytes as received.

pub mod codec;
pub mod convert;
pub mod grpc;
pub mod headers;
pub mod hold;
pub mod metadata;
pub mod semconv;
pub mod tee;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::config::de_duration;
use crate::ids::AgentId;
use crate::pipeline::Pipeline;
use crate::receiver::Intake;
use crate::selfmetrics as m;
use grpc::{AgentService, MetadataService, Method, PinpointService, SpanService, StatService};
use hold::{Converter, HoldConfig};
use metadata::MetadataStore;
use tee::{Tee, TeeConfig};

/// `receivers.pinpoint:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinpointReceiverConfig {
    /// Agent and Metadata services. Default `0.0.0.0:9991`.
    #[serde(default = "d_agent")]
    pub agent_endpoint: String,
    /// Stat service. Default `0.0.0.0:9992`.
    #[serde(default = "d_stat")]
    pub stat_endpoint: String,
    /// Span service. Default `0.0.0.0:9993`.
    #[serde(default = "d_span")]
    pub span_endpoint: String,
    /// agentId of OTel-born transaction ids (the Pinpoint exporter's `marker`). Default `otel`.
    #[serde(default = "d_marker")]
    pub marker: String,
    /// Longest `applicationname` header. Default 24 (the collector's default).
    #[serde(default = "d_app_len")]
    pub max_application_name_length: usize,
    /// Largest message. Default 4MiB (the collector's limit).
    #[serde(
        default = "d_max_message",
        deserialize_with = "crate::config::de_bytes"
    )]
    pub max_message_bytes: usize,
    /// How long a span waits for its metadata (or an async chunk for its span). Default 2s.
    #[serde(default = "d_hold", deserialize_with = "de_duration")]
    pub hold: Duration,
    /// Span messages held at most. Default 10000.
    #[serde(default = "d_pending")]
    pub max_pending: usize,
    /// Agents whose metadata is kept at most. Default 10000.
    #[serde(default = "d_agents")]
    pub max_agents: u64,
    /// Metadata ids of each kind kept per agent at most. Default 100000.
    #[serde(default = "d_entries")]
    pub max_metadata_per_agent: usize,
    /// An agent's metadata is forgotten after this long without use. Default 24h (agents
    /// do not resend metadata).
    #[serde(default = "d_idle", deserialize_with = "de_duration")]
    pub agent_idle_timeout: Duration,
    /// The real collector that gets a copy of every call. Absent: no tee.
    #[serde(default)]
    pub upstream: Option<TeeConfig>,
}

fn d_agent() -> String {
    "0.0.0.0:9991".to_owned()
}
fn d_stat() -> String {
    "0.0.0.0:9992".to_owned()
}
fn d_span() -> String {
    "0.0.0.0:9993".to_owned()
}
fn d_marker() -> String {
    "otel".to_owned()
}
fn d_app_len() -> usize {
    24
}
fn d_max_message() -> usize {
    4 * 1024 * 1024
}
fn d_hold() -> Duration {
    Duration::from_secs(2)
}
fn d_pending() -> usize {
    10_000
}
fn d_agents() -> u64 {
    10_000
}
fn d_entries() -> usize {
    100_000
}
fn d_idle() -> Duration {
    Duration::from_secs(24 * 3600)
}

impl PinpointReceiverConfig {
    /// `(key, problem)` pairs for values that cannot work.
    #[must_use]
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        if let Err(e) = AgentId::new(&self.marker) {
            p.push(("marker".to_owned(), e.to_string()));
        }
        if !(1..=254).contains(&self.max_application_name_length) {
            p.push((
                "max_application_name_length".to_owned(),
                "must be between 1 and 254".to_owned(),
            ));
        }
        if !(1024..=(64 << 20)).contains(&self.max_message_bytes) {
            p.push((
                "max_message_bytes".to_owned(),
                "must be between 1KiB and 64MiB".to_owned(),
            ));
        }
        if self.max_pending == 0 || self.max_agents == 0 || self.max_metadata_per_agent == 0 {
            p.push((
                "max_pending".to_owned(),
                "max_pending, max_agents and max_metadata_per_agent must be greater than 0"
                    .to_owned(),
            ));
        }
        if let Some(u) = &self.upstream {
            for (k, v) in u.problems() {
                p.push((format!("upstream.{k}"), v));
            }
        }
        p
    }
}

/// Shared state of the three listeners.
pub struct Receiver {
    pub(crate) converter: Arc<Converter>,
    pub(crate) tee: Option<Tee>,
    pub(crate) max_message_bytes: usize,
    pub(crate) max_app_name_len: usize,
}

impl Receiver {
    fn count_message(&self, method: Method) {
        metrics::counter!(m::PINPOINT_RECEIVER_MESSAGES, "method" => method.name()).increment(1);
    }

    fn count_invalid(&self, method: Method, reason: &'static str) {
        metrics::counter!(m::PINPOINT_RECEIVER_MESSAGES_INVALID, "method" => method.name(), "reason" => reason)
            .increment(1);
    }
}

/// The bound listeners of a running receiver.
pub struct Started {
    pub agent_addr: SocketAddr,
    pub stat_addr: SocketAddr,
    pub span_addr: SocketAddr,
    pub tasks: Vec<JoinHandle<()>>,
}

/// Binds the three ports and serves until `stop` resolves (each server gets a clone).
///
/// # Errors
/// A port cannot be bound, or the upstream address is not a valid URI.
pub async fn start<F>(
    config: &PinpointReceiverConfig,
    pipeline: Arc<Pipeline>,
    stop: impl Fn() -> F,
) -> anyhow::Result<Started>
where
    F: Future<Output = ()> + Send + 'static,
{
    grpc::register_metrics();
    let marker = AgentId::new(&config.marker).context("receivers.pinpoint.marker")?;
    let meta = Arc::new(MetadataStore::new(
        config.max_agents,
        config.max_metadata_per_agent,
        config.agent_idle_timeout,
    ));
    let intake = Arc::new(Intake::new(pipeline, "pinpoint"));
    let converter = Arc::new(Converter::new(
        meta,
        intake,
        HoldConfig {
            marker,
            hold: config.hold,
            max_pending: config.max_pending,
        },
    ));
    let tee = match &config.upstream {
        Some(u) => Some(Tee::new(u).context("receivers.pinpoint.upstream")?),
        None => None,
    };
    let receiver = Arc::new(Receiver {
        converter: Arc::clone(&converter),
        tee,
        max_message_bytes: config.max_message_bytes,
        max_app_name_len: config.max_application_name_length,
    });
    let bind = |e: &str, what: &'static str| {
        let e = e.to_owned();
        async move {
            TcpListener::bind(&e)
                .await
                .with_context(|| format!("receivers.pinpoint.{what}: cannot listen on {e}"))
        }
    };
    let agent = bind(&config.agent_endpoint, "agent_endpoint").await?;
    let stat = bind(&config.stat_endpoint, "stat_endpoint").await?;
    let span = bind(&config.span_endpoint, "span_endpoint").await?;
    let (agent_addr, stat_addr, span_addr) =
        (agent.local_addr()?, stat.local_addr()?, span.local_addr()?);
    let mut tasks = Vec::new();
    let serve = |listener: TcpListener,
                 router: tonic::transport::server::Router,
                 name: &'static str,
                 stop: F| {
        tokio::spawn(async move {
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            if let Err(e) = router.serve_with_incoming_shutdown(incoming, stop).await {
                tracing::error!(error = %e, listener = name, "Pinpoint receiver failed");
            }
        })
    };
    let builder = || {
        tonic::transport::Server::builder()
            .http2_keepalive_interval(None)
            .max_connection_age(Duration::from_secs(3 * 3600))
    };
    tasks.push(serve(
        agent,
        builder()
            .add_service(PinpointService::<AgentService>::new(Arc::clone(&receiver)))
            .add_service(PinpointService::<MetadataService>::new(Arc::clone(
                &receiver,
            ))),
        "agent",
        stop(),
    ));
    tasks.push(serve(
        stat,
        builder().add_service(PinpointService::<StatService>::new(Arc::clone(&receiver))),
        "stat",
        stop(),
    ));
    tasks.push(serve(
        span,
        builder().add_service(PinpointService::<SpanService>::new(Arc::clone(&receiver))),
        "span",
        stop(),
    ));
    let run_stop = stop();
    tasks.push(tokio::spawn(async move { converter.run(run_stop).await }));
    tracing::info!(receiver = "pinpoint", %agent_addr, %stat_addr, %span_addr, upstream = receiver.tee.is_some(), "listening");
    Ok(Started {
        agent_addr,
        stat_addr,
        span_addr,
        tasks,
    })
}
