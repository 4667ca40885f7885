//! The transport to a Pinpoint collector: one gRPC channel per port, the agent headers
//! on every call, AgentInfo and a ping session per virtual agent, string metadata for
//! exception classes, and spans by `SendSpanBatch` (3.1+) or the `SendSpan` stream.
//! Knows nothing of OTel: it sends what `convert` made.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::uri::PathAndQuery;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tonic::client::Grpc;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, GrpcMethod, Request, Response, Status};

use super::agent::AgentIdentity;
use super::codec::{Body, Passthrough};
use super::convert::ExceptionClass;
use super::proto::agent_client::AgentClient;
use super::proto::metadata_client::MetadataClient;
use super::proto::{PAgentInfo, PPing, PSpanResultBatch, PStringMetaData};
use crate::exporter::ExportError;
use crate::pipeline::persist::Hold;

/// One span message for one agent, encoded (`wire.rs`), kept until the collector took it.
#[derive(Debug)]
pub struct Outgoing {
    pub agent: Arc<AgentIdentity>,
    /// The encoded `PSpanMessage`.
    pub message: Bytes,
    pub exceptions: Vec<ExceptionClass>,
    /// OTel spans in the message (entry and events).
    pub spans: usize,
    /// The holds of those spans' batches (persistent queues only).
    pub holds: Vec<Hold>,
}

/// How spans are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpanProtocol {
    /// `SendSpanBatch`, falling back to the stream when the collector answers UNIMPLEMENTED.
    #[default]
    Auto,
    /// `SendSpanBatch` only (collector 3.1+).
    Batch,
    /// The `SendSpan` client stream (every 2.x/3.x collector).
    Stream,
}

/// TLS to the collector (`tls:` under a pinpoint exporter).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Use TLS. Default false (Pinpoint collectors listen in plain text by default).
    #[serde(default)]
    pub enabled: bool,
    /// PEM file of the CA to trust instead of the system roots.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// Server name to verify, when it differs from `host`.
    #[serde(default)]
    pub domain: Option<String>,
}

/// Transport settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub host: String,
    pub tls: TlsConfig,
    pub agent_port: u16,
    pub span_port: u16,
    pub protocol: SpanProtocol,
    pub timeout: Duration,
    pub ping_interval: Duration,
    pub agent_info_interval: Duration,
    pub agent_idle_timeout: Duration,
}

/// What one send did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SendReport {
    pub messages: usize,
    /// Spans the collector reported rejected (`SendSpanBatch` partial success).
    pub rejected: i64,
}

/// A send that failed part-way.
#[derive(Debug)]
pub struct SendFailure {
    pub error: ExportError,
    /// Per message given to [`Client::send`]: whether the collector took it before the
    /// failure (it must then be neither resent nor counted as failed).
    pub delivered: Vec<bool>,
}

struct AgentState {
    identity: Arc<AgentIdentity>,
    start_time: i64,
    headers: MetadataMap,
    info_sent: Option<Instant>,
    strings: HashSet<i32>,
    last_seen: Instant,
    ping: Option<JoinHandle<()>>,
}

impl Drop for AgentState {
    fn drop(&mut self) {
        if let Some(p) = self.ping.take() {
            p.abort();
        }
    }
}

/// A connection to one collector.
pub struct Client {
    cfg: ClientConfig,
    agent: AgentClient<Channel>,
    metadata: MetadataClient<Channel>,
    /// The span service, called with pre-encoded messages (`codec.rs`).
    span: Grpc<Channel>,
    batch_supported: bool,
    /// The collector answered a `SendSpanBatch`: no stream fallback will be needed, so
    /// messages need not be kept for one.
    batch_confirmed: bool,
    agents: HashMap<(String, String), AgentState>,
}

static SOCKET_IDS: AtomicI64 = AtomicI64::new(1);

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Retry classification of a gRPC status: transient ones are retried.
#[must_use]
pub fn classify(status: &Status) -> ExportError {
    let message = format!("collector: {}: {}", status.code(), status.message());
    match status.code() {
        Code::Unavailable
        | Code::DeadlineExceeded
        | Code::ResourceExhausted
        | Code::Aborted
        | Code::Cancelled
        | Code::Unknown
        | Code::Internal => ExportError::Retryable {
            message,
            after: None,
        },
        _ => ExportError::Permanent(message),
    }
}

fn valid_header(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn agent_headers(a: &AgentIdentity, start_time: i64) -> MetadataMap {
    let mut m = MetadataMap::new();
    let mut put = |k: &'static str, v: &str| {
        if let Ok(v) = MetadataValue::try_from(v) {
            m.insert(k, v);
        }
    };
    put("agentid", &a.agent_id);
    put("applicationname", &a.application_name);
    put("starttime", &start_time.to_string());
    put("servicetype", &a.service_type.to_string());
    if valid_header(&a.agent_name, 255) {
        put("agentname", &a.agent_name);
    }
    put("protocol.version", "100");
    m
}

fn request<T>(msg: T, headers: &MetadataMap, timeout: Duration) -> Request<T> {
    let mut r = Request::new(msg);
    *r.metadata_mut() = headers.clone();
    r.set_timeout(timeout);
    r
}

impl Client {
    /// Creates lazily connecting channels (the first call connects, and reconnects
    /// happen on the next call after a failure).
    ///
    /// # Errors
    /// When the host and ports do not form a valid URI.
    pub fn new(cfg: ClientConfig) -> Result<Self, String> {
        let tls = tls_config(&cfg)?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let channel = |port: u16| -> Result<Channel, String> {
            let mut ep = Endpoint::from_shared(format!("{scheme}://{}:{port}", cfg.host))
                .map_err(|e| format!("collector address {}:{port}: {e}", cfg.host))?
                .connect_timeout(cfg.timeout)
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(30))
                .keep_alive_while_idle(false);
            if let Some(t) = &tls {
                ep = ep.tls_config(t.clone()).map_err(|e| format!("tls: {e}"))?;
            }
            Ok(ep.connect_lazy())
        };
        let agent_ch = channel(cfg.agent_port)?;
        let span_ch = channel(cfg.span_port)?;
        Ok(Self {
            agent: AgentClient::new(agent_ch.clone()),
            metadata: MetadataClient::new(agent_ch),
            span: Grpc::new(span_ch),
            batch_supported: cfg.protocol != SpanProtocol::Stream,
            batch_confirmed: cfg.protocol == SpanProtocol::Batch,
            cfg,
            agents: HashMap::new(),
        })
    }

    /// Sends `outputs`: registers new agents and exception classes first, then the span
    /// messages of each agent with that agent's headers.
    ///
    /// # Errors
    /// The first failure, classified for retry, with which messages the collector had
    /// taken before it (those of the agents already sent). Nothing is half-registered:
    /// an agent or string is only remembered once the collector accepted it.
    pub async fn send(&mut self, outputs: &[Outgoing]) -> Result<SendReport, SendFailure> {
        // foldhash: two names hashed per message; SipHash's cost is not needed here.
        let mut by_agent: HashMap<(&str, &str), Vec<usize>, foldhash::fast::RandomState> =
            HashMap::default();
        for (i, o) in outputs.iter().enumerate() {
            by_agent
                .entry((&o.agent.application_name, &o.agent.agent_id))
                .or_default()
                .push(i);
        }
        let mut report = SendReport::default();
        let mut delivered = vec![false; outputs.len()];
        for ((app, id), indices) in by_agent {
            let key = (app.to_owned(), id.to_owned());
            let outs: Vec<&Outgoing> = indices.iter().filter_map(|i| outputs.get(*i)).collect();
            match self.send_agent(&key, &outs).await {
                Ok(rejected) => {
                    report.messages += outs.len();
                    report.rejected += rejected;
                    for i in indices {
                        delivered[i] = true;
                    }
                }
                Err(error) => return Err(SendFailure { error, delivered }),
            }
        }
        Ok(report)
    }

    /// Registers what one agent's messages need, then sends them.
    async fn send_agent(
        &mut self,
        key: &(String, String),
        outs: &[&Outgoing],
    ) -> Result<i64, ExportError> {
        let Some(first) = outs.first() else {
            return Ok(0);
        };
        self.ensure_agent(key, &first.agent).await?;
        let Some(state) = self.agents.get_mut(key) else {
            return Ok(0);
        };
        let headers = state.headers.clone();
        for (id, class) in outs.iter().flat_map(|o| &o.exceptions) {
            if state.strings.contains(id) {
                continue;
            }
            let msg = PStringMetaData {
                string_id: *id,
                string_value: class.clone(),
            };
            self.metadata
                .request_string_meta_data(request(msg, &headers, self.cfg.timeout))
                .await
                .map_err(|s| classify(&s))?;
            state.strings.insert(*id);
        }
        // Shared, not copied: `Bytes` clones count references.
        let messages: Vec<Bytes> = outs.iter().map(|o| o.message.clone()).collect();
        self.send_spans(messages, &headers).await
    }

    /// `SendSpanBatch` with a `PSpanMessageBatch` of the encoded messages.
    async fn send_span_batch(
        &mut self,
        mut req: Request<Body>,
    ) -> Result<Response<PSpanResultBatch>, Status> {
        self.span
            .ready()
            .await
            .map_err(|e| Status::unknown(format!("Service was not ready: {e}")))?;
        req.extensions_mut()
            .insert(GrpcMethod::new("v1.Span", "SendSpanBatch"));
        let path = PathAndQuery::from_static("/v1.Span/SendSpanBatch");
        self.span.unary(req, path, Passthrough::default()).await
    }

    /// The `SendSpan` client stream of the encoded messages.
    async fn send_span_stream(
        &mut self,
        messages: Vec<Bytes>,
        headers: &MetadataMap,
    ) -> Result<(), Status> {
        self.span
            .ready()
            .await
            .map_err(|e| Status::unknown(format!("Service was not ready: {e}")))?;
        let stream = tokio_stream::iter(messages.into_iter().map(Body::Message));
        let mut req = request(stream, headers, self.cfg.timeout);
        req.extensions_mut()
            .insert(GrpcMethod::new("v1.Span", "SendSpan"));
        let path = PathAndQuery::from_static("/v1.Span/SendSpan");
        self.span
            .client_streaming(req, path, Passthrough::<()>::default())
            .await
            .map(|_| ())
    }

    async fn send_spans(
        &mut self,
        mut messages: Vec<Bytes>,
        headers: &MetadataMap,
    ) -> Result<i64, ExportError> {
        if self.batch_supported {
            // Keep the messages for the stream only while the collector's protocol is
            // unknown.
            let batch = if self.batch_confirmed {
                std::mem::take(&mut messages)
            } else {
                messages.clone()
            };
            match self
                .send_span_batch(request(Body::Batch(batch), headers, self.cfg.timeout))
                .await
            {
                Ok(r) => {
                    self.batch_confirmed = true;
                    return Ok(r
                        .into_inner()
                        .partial_success
                        .map_or(0, |p| p.rejected_spans));
                }
                Err(s)
                    if s.code() == Code::Unimplemented
                        && self.cfg.protocol == SpanProtocol::Auto =>
                {
                    tracing::info!(
                        "collector has no SendSpanBatch (Pinpoint < 3.1); using the SendSpan stream"
                    );
                    self.batch_supported = false;
                    self.batch_confirmed = false;
                }
                Err(s) => return Err(classify(&s)),
            }
        }
        if messages.is_empty() {
            // The collector stopped serving SendSpanBatch after it had: the outbox still
            // holds these messages, and the next attempt sends them over the stream.
            return Err(ExportError::Retryable {
                message: "collector no longer serves SendSpanBatch; retrying over the stream"
                    .to_owned(),
                after: None,
            });
        }
        self.send_span_stream(messages, headers)
            .await
            .map_err(|s| classify(&s))?;
        Ok(0)
    }

    async fn ensure_agent(
        &mut self,
        key: &(String, String),
        identity: &Arc<AgentIdentity>,
    ) -> Result<(), ExportError> {
        let now = Instant::now();
        let state = self.agents.entry(key.clone()).or_insert_with(|| {
            let start_time = now_ms();
            AgentState {
                identity: Arc::clone(identity),
                start_time,
                headers: agent_headers(identity, start_time),
                info_sent: None,
                strings: HashSet::new(),
                last_seen: now,
                ping: None,
            }
        });
        state.last_seen = now;
        let due = state
            .info_sent
            .is_none_or(|t| now >= t + self.cfg.agent_info_interval);
        if due {
            let a = &state.identity;
            let info = PAgentInfo {
                hostname: a.hostname.clone(),
                ip: a.ip.clone(),
                ports: String::new(),
                service_type: a.service_type,
                pid: a.pid,
                agent_version: a.agent_version.clone(),
                vm_version: a.vm_version.clone(),
                end_timestamp: 0,
                end_status: 0,
                server_meta_data: None,
                jvm_info: None,
                container: a.container,
            };
            let r = self
                .agent
                .request_agent_info(request(info, &state.headers, self.cfg.timeout))
                .await
                .map_err(|s| classify(&s))?;
            if !r.get_ref().success {
                tracing::warn!(agent = %a.agent_id, message = %r.get_ref().message, "collector did not accept AgentInfo");
            }
            state.info_sent = Some(now);
            tracing::info!(application = %a.application_name, agent = %a.agent_id, start_time = state.start_time, "virtual agent registered");
        }
        if state.ping.as_ref().is_none_or(JoinHandle::is_finished) {
            state.ping = Some(spawn_ping(
                self.agent.clone(),
                state.headers.clone(),
                self.cfg.ping_interval,
            ));
        }
        Ok(())
    }

    /// Closes and forgets agents not seen for the idle timeout (their ping stream ends,
    /// which the collector records as a disconnect).
    pub fn expire_idle(&mut self) -> usize {
        let now = Instant::now();
        let idle = self.cfg.agent_idle_timeout;
        let before = self.agents.len();
        self.agents.retain(|_, s| now < s.last_seen + idle);
        before - self.agents.len()
    }

    /// Virtual agents currently known.
    #[must_use]
    pub fn agent_count(&self) -> usize {
        self.agents.len()
    }
}

/// The TLS settings, reading the CA file at start-up.
fn tls_config(cfg: &ClientConfig) -> Result<Option<tonic::transport::ClientTlsConfig>, String> {
    if !cfg.tls.enabled {
        return Ok(None);
    }
    let mut t = tonic::transport::ClientTlsConfig::new()
        .domain_name(cfg.tls.domain.clone().unwrap_or_else(|| cfg.host.clone()));
    t = match &cfg.tls.ca_file {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| format!("tls.ca_file {path}: {e}"))?;
            t.ca_certificate(tonic::transport::Certificate::from_pem(pem))
        }
        None => t.with_native_roots(),
    };
    Ok(Some(t))
}

/// One ping session: a ping now and every `interval`, echoes read; reopened on failure.
fn spawn_ping(
    client: AgentClient<Channel>,
    headers: MetadataMap,
    interval: Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut client = client;
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let (tx, rx) = mpsc::channel::<PPing>(2);
            let mut req = Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
            *req.metadata_mut() = headers.clone();
            let socket = SOCKET_IDS.fetch_add(1, Ordering::Relaxed);
            if let Ok(v) = MetadataValue::try_from(socket.to_string()) {
                req.metadata_mut().insert("socketid", v);
            }
            if tx.send(PPing {}).await.is_err() {
                continue;
            }
            let mut inbound = match client.ping_session(req).await {
                Ok(r) => r.into_inner(),
                Err(e) => {
                    tracing::debug!(error = %e, "ping session failed; retrying at the next interval");
                    continue;
                }
            };
            loop {
                match inbound.message().await {
                    Ok(Some(_)) => {}
                    _ => break,
                }
                tick.tick().await;
                if tx.send(PPing {}).await.is_err() {
                    break;
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classification() {
        for code in [
            Code::Unavailable,
            Code::DeadlineExceeded,
            Code::ResourceExhausted,
            Code::Aborted,
            Code::Internal,
            Code::Unknown,
        ] {
            assert!(
                matches!(
                    classify(&Status::new(code, "x")),
                    ExportError::Retryable { .. }
                ),
                "{code:?}"
            );
        }
        for code in [
            Code::InvalidArgument,
            Code::PermissionDenied,
            Code::Unauthenticated,
            Code::Unimplemented,
            Code::NotFound,
        ] {
            assert!(
                matches!(classify(&Status::new(code, "x")), ExportError::Permanent(_)),
                "{code:?}"
            );
        }
    }

    fn config(tls: TlsConfig) -> ClientConfig {
        ClientConfig {
            host: "collector.example".into(),
            tls,
            agent_port: 9991,
            span_port: 9993,
            protocol: SpanProtocol::Auto,
            timeout: Duration::from_secs(1),
            ping_interval: Duration::from_secs(60),
            agent_info_interval: Duration::from_secs(3600),
            agent_idle_timeout: Duration::from_secs(600),
        }
    }

    #[tokio::test]
    async fn tls_options() {
        assert!(Client::new(config(TlsConfig::default())).is_ok());
        let with_roots = TlsConfig {
            enabled: true,
            ca_file: None,
            domain: Some("pinpoint".into()),
        };
        assert!(Client::new(config(with_roots)).is_ok());
        let missing = TlsConfig {
            enabled: true,
            ca_file: Some("/nonexistent/ca.pem".into()),
            domain: None,
        };
        let err = Client::new(config(missing))
            .err()
            .expect("missing CA file is an error");
        assert!(err.contains("tls.ca_file /nonexistent/ca.pem"), "{err}");
    }

    #[test]
    fn headers_follow_the_collector_rules() {
        let a = AgentIdentity {
            application_name: "shop".into(),
            agent_id: "PxwqTot9TG6fEBEiM0RVZg".into(),
            agent_name: "has space".into(),
            service_type: 1700,
            language: "python".into(),
            hostname: String::new(),
            ip: String::new(),
            pid: 0,
            agent_version: String::new(),
            vm_version: String::new(),
            container: false,
        };
        let h = agent_headers(&a, 1_700_000_000_000);
        let get = |k: &str| h.get(k).and_then(|v| v.to_str().ok()).map(str::to_owned);
        assert_eq!(get("agentid").as_deref(), Some("PxwqTot9TG6fEBEiM0RVZg"));
        assert_eq!(get("applicationname").as_deref(), Some("shop"));
        assert_eq!(get("starttime").as_deref(), Some("1700000000000"));
        assert_eq!(get("servicetype").as_deref(), Some("1700"));
        assert_eq!(get("agentname"), None, "an invalid agentname is left out");
    }
}
