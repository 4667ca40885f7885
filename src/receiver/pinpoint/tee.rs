//! The tee: every call an agent makes is made again to the upstream collector, with the
//! agent's headers and the message bytes exactly as received (unknown fields kept).
//!
//! Each agent call gets a [`Forwarder`]; its messages go through a bounded channel to a
//! task that owns the upstream call. The agent side never waits: a full channel or an
//! exhausted byte budget (shared by all calls) drops the message, counted. When the
//! upstream call fails, the task drops messages for a backoff period, then opens a new
//! call with the same headers, so a long-lived agent stream survives a collector restart.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::uri::PathAndQuery;
use metrics::Counter;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::StreamExt as _;
use tonic::metadata::MetadataMap;
use tonic::transport::{Channel, Endpoint};

use super::codec::RawCodec;
use super::grpc::{Method, Port};
use crate::config::{de_bytes, de_duration};
use crate::selfmetrics as m;

/// `receivers.pinpoint.upstream:`: the collector that gets a copy of everything.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeeConfig {
    /// Collector host name or address. Required.
    pub host: String,
    /// Default 9991.
    #[serde(default = "d_agent")]
    pub agent_port: u16,
    /// Default 9992.
    #[serde(default = "d_stat")]
    pub stat_port: u16,
    /// Default 9993.
    #[serde(default = "d_span")]
    pub span_port: u16,
    /// Messages waiting per agent call at most. Default 1000.
    #[serde(default = "d_queue")]
    pub queue_messages: usize,
    /// Bytes waiting for the upstream over all calls at most. Default 16MiB.
    #[serde(default = "d_buffer", deserialize_with = "de_bytes")]
    pub max_buffer_bytes: usize,
    /// Connect timeout. Default 2s.
    #[serde(default = "d_connect", deserialize_with = "de_duration")]
    pub connect_timeout: Duration,
    /// After a failed upstream call, messages of that agent call are dropped this long
    /// before a new call is tried. Default 1s.
    #[serde(default = "d_backoff", deserialize_with = "de_duration")]
    pub retry_backoff: Duration,
}

fn d_agent() -> u16 {
    9991
}
fn d_stat() -> u16 {
    9992
}
fn d_span() -> u16 {
    9993
}
fn d_queue() -> usize {
    1000
}
fn d_buffer() -> usize {
    16 * 1024 * 1024
}
fn d_connect() -> Duration {
    Duration::from_secs(2)
}
fn d_backoff() -> Duration {
    Duration::from_secs(1)
}

impl TeeConfig {
    /// `(key, problem)` pairs for values that cannot work.
    #[must_use]
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut p = Vec::new();
        if self.host.trim().is_empty() {
            p.push(("host", "must not be empty".to_owned()));
        }
        if self.queue_messages == 0 {
            p.push(("queue_messages", "must be greater than 0".to_owned()));
        }
        if self.max_buffer_bytes < 1024 {
            p.push(("max_buffer_bytes", "must be at least 1KiB".to_owned()));
        }
        if self.retry_backoff.is_zero() {
            p.push(("retry_backoff", "must be greater than 0".to_owned()));
        }
        p
    }
}

/// Bytes held for the upstream, shared by every forwarder.
#[derive(Debug)]
struct Budget {
    used: AtomicUsize,
    max: usize,
}

impl Budget {
    fn take(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                (u + n <= self.max).then_some(u + n)
            })
            .is_ok()
    }

    fn give(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }
}

/// The upstream side of the receiver.
pub struct Tee {
    channels: [Channel; 3],
    budget: Arc<Budget>,
    config: TeeConfig,
}

/// Headers a gRPC client sets itself; everything else the agent sent is forwarded.
const TRANSPORT_HEADERS: &[&str] = &[
    "te",
    "content-type",
    "user-agent",
    "grpc-encoding",
    "grpc-accept-encoding",
    "grpc-timeout",
    "content-length",
    "accept-encoding",
    "host",
];

impl Tee {
    /// Prepares lazy channels to the upstream (nothing connects until the first call).
    ///
    /// # Errors
    /// The host does not form a valid URI.
    pub fn new(config: &TeeConfig) -> Result<Self, tonic::transport::Error> {
        let ch = |port: u16| -> Result<Channel, tonic::transport::Error> {
            Ok(
                Endpoint::from_shared(format!("http://{}:{port}", config.host))?
                    .connect_timeout(config.connect_timeout)
                    .tcp_nodelay(true)
                    .connect_lazy(),
            )
        };
        Ok(Self {
            channels: [
                ch(config.agent_port)?,
                ch(config.stat_port)?,
                ch(config.span_port)?,
            ],
            budget: Arc::new(Budget {
                used: AtomicUsize::new(0),
                max: config.max_buffer_bytes,
            }),
            config: config.clone(),
        })
    }

    /// Starts forwarding one agent call.
    #[must_use]
    pub fn open(&self, method: Method, headers: &MetadataMap) -> Forwarder {
        let mut forwarded = http::HeaderMap::new();
        for (k, v) in headers.clone().into_headers() {
            if let Some(k) = k
                && !TRANSPORT_HEADERS.contains(&k.as_str())
            {
                forwarded.append(k, v);
            }
        }
        let channel = match method.port() {
            Port::Agent => self.channels[0].clone(),
            Port::Stat => self.channels[1].clone(),
            Port::Span => self.channels[2].clone(),
        };
        let (tx, rx) = mpsc::channel(self.config.queue_messages);
        let counters = Counters::new(method);
        let call = UpstreamCall {
            method,
            headers: MetadataMap::from_headers(forwarded),
            channel,
            budget: Arc::clone(&self.budget),
            backoff: self.config.retry_backoff,
            counters: counters.clone(),
        };
        tokio::spawn(call.run(rx));
        Forwarder {
            tx,
            budget: Arc::clone(&self.budget),
            counters,
        }
    }
}

#[derive(Clone)]
struct Counters {
    forwarded: Counter,
    dropped_full: Counter,
    dropped_down: Counter,
    failed_calls: Counter,
}

impl Counters {
    fn new(method: Method) -> Self {
        let name = method.name();
        Self {
            forwarded: metrics::counter!(m::PINPOINT_TEE_MESSAGES_FORWARDED, "method" => name),
            dropped_full: metrics::counter!(m::PINPOINT_TEE_MESSAGES_DROPPED, "method" => name, "reason" => "buffer_full"),
            dropped_down: metrics::counter!(m::PINPOINT_TEE_MESSAGES_DROPPED, "method" => name, "reason" => "upstream_unavailable"),
            failed_calls: metrics::counter!(m::PINPOINT_TEE_CALLS_FAILED, "method" => name),
        }
    }
}

/// The agent-facing end of one forwarded call. Dropping it ends the upstream call.
pub struct Forwarder {
    tx: mpsc::Sender<Bytes>,
    budget: Arc<Budget>,
    counters: Counters,
}

impl Forwarder {
    /// Queues one message for the upstream; never waits. A message that does not fit
    /// is dropped and counted.
    pub fn send(&self, message: &Bytes) {
        let n = message.len().max(1);
        if !self.budget.take(n) {
            self.counters.dropped_full.increment(1);
            return;
        }
        if self.tx.try_send(message.clone()).is_err() {
            self.budget.give(n);
            self.counters.dropped_full.increment(1);
        }
    }
}

struct UpstreamCall {
    method: Method,
    headers: MetadataMap,
    channel: Channel,
    budget: Arc<Budget>,
    backoff: Duration,
    counters: Counters,
}

impl UpstreamCall {
    /// Owns the upstream call(s) of one agent call until the agent call ends.
    async fn run(self, mut rx: mpsc::Receiver<Bytes>) {
        let mut down_until: Option<Instant> = None;
        loop {
            let Some(first) = rx.recv().await else { return };
            self.budget.give(first.len().max(1));
            if down_until.is_some_and(|t| Instant::now() < t) {
                self.counters.dropped_down.increment(1);
                continue;
            }
            let (itx, irx) = mpsc::channel::<Bytes>(8);
            // Capacity 8, empty: cannot fail.
            let _ = itx.try_send(first);
            self.counters.forwarded.increment(1);
            let mut call = tokio::spawn(self.call(irx));
            let ok = loop {
                tokio::select! {
                    msg = rx.recv() => match msg {
                        Some(msg) => {
                            self.budget.give(msg.len().max(1));
                            if itx.send(msg).await.is_err() {
                                self.counters.dropped_down.increment(1);
                                break false;
                            }
                            self.counters.forwarded.increment(1);
                        }
                        None => {
                            drop(itx);
                            let ok = matches!((&mut call).await, Ok(true));
                            if !ok {
                                self.counters.failed_calls.increment(1);
                            }
                            return;
                        }
                    },
                    done = &mut call => break matches!(done, Ok(true)),
                }
            };
            if !ok {
                self.counters.failed_calls.increment(1);
                tracing::debug!(
                    method = self.method.name(),
                    "upstream call ended; retrying after backoff"
                );
                down_until = Some(Instant::now() + self.backoff);
            }
        }
    }

    /// One upstream call fed by `rx`; true when it ended with OK.
    fn call(&self, rx: mpsc::Receiver<Bytes>) -> impl Future<Output = bool> + Send + 'static {
        let channel = self.channel.clone();
        let headers = self.headers.clone();
        let path = PathAndQuery::from_static(self.method.path());
        async move {
            let mut grpc = tonic::client::Grpc::new(channel);
            if grpc.ready().await.is_err() {
                return false;
            }
            let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
            let request = tonic::Request::from_parts(headers, http::Extensions::default(), stream);
            match grpc.streaming(request, path, RawCodec).await {
                Ok(response) => {
                    let mut answers = response.into_inner();
                    loop {
                        match answers.next().await {
                            Some(Ok(_)) => {}
                            Some(Err(_)) => return false,
                            None => return true,
                        }
                    }
                }
                Err(status) => {
                    tracing::debug!(code = ?status.code(), message = status.message(), "upstream call failed");
                    false
                }
            }
        }
    }
}
