//! The `otlp` exporter: sends spans on as OTLP, to any OTLP receiver (an OpenTelemetry
//! Collector, Tempo, Jaeger, Rotel, another bridge, Pinpoint 3.1's native ingest).
//!
//! - [`convert`] (pure): the batch as a request, the Pinpoint enrichment, the split by
//!   trace id, the encoding (protobuf or JSON, gzip);
//! - [`transport`]: [`transport::classify`], the one retry rule (OTLP spec), and the
//!   [`transport::Transport`] over [`grpc`] (tonic) or [`http_send`] (hyper), with
//!   [`tls`];
//! - [`ring`] (pure) and [`balance`]: trace-id load balancing over `endpoints:` or a
//!   re-resolved DNS name, each endpoint with its own bounded queue and backoff.
//!
//! With one `endpoint`, the pipeline's worker drives retries as for every exporter.
//! With `endpoints` or `resolve`, the worker hands each batch to the [`balance`]r, which
//! splits it by trace id into the endpoints' queues; their own workers retry.
//! Profiles never reach this exporter (`takes_profiles` is false for `otlp`).

pub mod balance;
pub mod convert;
pub mod endpoint;
pub mod grpc;
pub mod http_send;
pub mod ring;
pub mod tls;
pub mod transport;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use serde::Deserialize;

use super::{ExportError, Exporter};
use crate::config::{BatchConfig, RetryConfig, de_duration};
use crate::pipeline::Batch;
use crate::selfmetrics as m;
use transport::{Sent, Transport};

/// `exporters.<name>:` keys of `type: otlp`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpConfig {
    /// `grpc` (default), `http/protobuf` or `http/json`.
    #[serde(default)]
    pub protocol: Protocol,
    /// One receiver: `http(s)://host:port` (gRPC), or the URL to POST to (HTTP; a bare
    /// `http://host:port` gets `/v1/traces`).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Several receivers, balanced by trace id (same form as `endpoint`).
    #[serde(default)]
    pub endpoints: Vec<String>,
    /// A DNS name whose addresses are the receivers, balanced by trace id.
    #[serde(default)]
    pub resolve: Option<ResolveConfig>,
    /// `gzip` (default) or `none`.
    #[serde(default)]
    pub compression: Compression,
    /// Longest wait for one request and its answer. Default 10s.
    #[serde(default = "d_timeout", deserialize_with = "de_duration")]
    pub timeout: Duration,
    /// Extra request headers (gRPC metadata), e.g. `authorization`. Default none.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// TLS for `https://` endpoints.
    #[serde(default)]
    pub tls: tls::TlsConfig,
    /// Trace-id load balancing settings (with `endpoints` or `resolve`).
    #[serde(default)]
    pub balance: BalanceConfig,
    /// Enrich for Pinpoint 3.1's native OTLP ingest. Default false.
    #[serde(default)]
    pub pinpoint: bool,
}

fn d_timeout() -> Duration {
    Duration::from_secs(10)
}

/// See [`OtlpConfig::protocol`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum Protocol {
    #[default]
    #[serde(rename = "grpc")]
    Grpc,
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    #[serde(rename = "http/json")]
    HttpJson,
}

/// See [`OtlpConfig::compression`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    #[default]
    Gzip,
    None,
}

/// `resolve:`: receivers found by DNS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolveConfig {
    /// An endpoint URL whose host is a DNS name, e.g. `http://gateways.obs.svc:4317`;
    /// every address it resolves to becomes one endpoint (same scheme, port and path).
    pub endpoint: String,
    /// How often the name is resolved again. Default 30s.
    #[serde(default = "d_interval", deserialize_with = "de_duration")]
    pub interval: Duration,
}

fn d_interval() -> Duration {
    Duration::from_secs(30)
}

/// `balance:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BalanceConfig {
    /// Ring points per endpoint. Default 512.
    pub virtual_nodes: usize,
    /// Spans queued (and in flight) per endpoint at most. Default 20000.
    pub queue_spans: usize,
    /// An endpoint failing this long is taken off the ring and its queued traces go to
    /// the next endpoints (counted as moved). Default: never (they wait, within the
    /// retry budget `retry.max_elapsed`).
    #[serde(deserialize_with = "de_opt_duration")]
    pub reroute_after: Option<Duration>,
}

impl Default for BalanceConfig {
    fn default() -> Self {
        Self {
            virtual_nodes: ring::DEFAULT_VIRTUAL_NODES,
            queue_spans: 20_000,
            reroute_after: None,
        }
    }
}

fn de_opt_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    de_duration(d).map(Some)
}

impl OtlpConfig {
    /// Problems with the values, as `(key, message)`, for config validation.
    #[must_use]
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut p = Vec::new();
        let targets = usize::from(self.endpoint.is_some())
            + usize::from(!self.endpoints.is_empty())
            + usize::from(self.resolve.is_some());
        if targets != 1 {
            p.push((
                "endpoint",
                "set exactly one of endpoint, endpoints or resolve".to_owned(),
            ));
        }
        for e in self.endpoint.iter().chain(&self.endpoints) {
            if let Err(why) = check_endpoint(e, self.protocol) {
                p.push(("endpoint", why));
            }
        }
        if let Some(r) = &self.resolve {
            if let Err(why) = check_endpoint(&r.endpoint, self.protocol) {
                p.push(("resolve.endpoint", why));
            }
            if r.interval.is_zero() {
                p.push(("resolve.interval", "must be greater than 0".to_owned()));
            }
            if self.protocol != Protocol::Grpc && r.endpoint.starts_with("https") {
                p.push((
                    "resolve.endpoint",
                    "https with resolve needs protocol grpc (OTLP/HTTP would check the \
                     certificate against the address)"
                        .to_owned(),
                ));
            }
        }
        if self.timeout.is_zero() {
            p.push(("timeout", "must be greater than 0".to_owned()));
        }
        if let Err(e) = crate::exporter::zipkin::transport::parse_headers(&self.headers) {
            p.push(("headers", e.to_string()));
        }
        if self.balance.virtual_nodes == 0 || self.balance.virtual_nodes > 10_000 {
            p.push(("balance.virtual_nodes", "must be 1..=10000".to_owned()));
        }
        if self.balance.queue_spans == 0 || self.balance.queue_spans > u32::MAX as usize / 2 {
            p.push(("balance.queue_spans", "must be 1..=2147483647".to_owned()));
        }
        if self.pinpoint && self.protocol == Protocol::HttpJson {
            p.push((
                "protocol",
                "Pinpoint's OTLP/HTTP ingest takes protobuf only: use http/protobuf or grpc"
                    .to_owned(),
            ));
        }
        p.extend(self.tls.problems());
        p
    }
}

fn check_endpoint(e: &str, protocol: Protocol) -> Result<(), String> {
    let uri = crate::exporter::zipkin::transport::parse_endpoint(e)
        .map_err(|_| format!("`{e}` is not an http:// or https:// URL"))?;
    if protocol == Protocol::Grpc && !matches!(uri.path(), "" | "/") {
        return Err(format!("`{e}`: a gRPC endpoint has no path"));
    }
    Ok(())
}

/// How to reach one endpoint: everything but its URL.
#[derive(Debug, Clone)]
pub struct Wire {
    pub protocol: Protocol,
    pub gzip: bool,
    pub timeout: Duration,
    pub headers: BTreeMap<String, String>,
    pub tls: tls::TlsConfig,
}

impl Wire {
    fn of(cfg: &OtlpConfig) -> Self {
        Self {
            protocol: cfg.protocol,
            gzip: cfg.compression == Compression::Gzip,
            timeout: cfg.timeout,
            headers: cfg.headers.clone(),
            tls: cfg.tls.clone(),
        }
    }

    /// The transport to `endpoint`; `server_name` is the DNS name a resolved address
    /// stands for.
    ///
    /// # Errors
    /// A message naming what is unusable.
    pub fn transport(
        &self,
        endpoint: &str,
        server_name: Option<&str>,
    ) -> Result<Transport, String> {
        Ok(match self.protocol {
            Protocol::Grpc => Transport::Grpc(Box::new(
                grpc::GrpcSender::new(&grpc::GrpcSettings {
                    endpoint,
                    headers: &self.headers,
                    timeout: self.timeout,
                    gzip: self.gzip,
                    tls: &self.tls,
                    server_name,
                })
                .map_err(|e| e.to_string())?,
            )),
            Protocol::HttpProtobuf | Protocol::HttpJson => Transport::Http(Box::new(
                http_send::HttpSender::new(&http_send::HttpSettings {
                    endpoint,
                    headers: &self.headers,
                    timeout: self.timeout,
                    gzip: self.gzip,
                    protocol: self.protocol,
                    tls: &self.tls,
                })
                .map_err(|e| e.to_string())?,
            )),
        })
    }

    /// Encodes a request for this wire (gRPC compresses in tonic, HTTP here).
    ///
    /// # Errors
    /// [`ExportError::Permanent`] if encoding fails.
    pub fn encode(&self, req: &ExportTraceServiceRequest) -> Result<Bytes, ExportError> {
        let http_gzip = self.gzip && self.protocol != Protocol::Grpc;
        convert::encode(req, self.protocol == Protocol::HttpJson, http_gzip)
            .map_err(|e| ExportError::Permanent(e.to_string()))
    }
}

/// Counts what a delivered request's partial success rejected (never retried).
pub fn count_partial(exporter: &str, target: &str, sent: &Sent) {
    if sent.rejected_spans > 0 {
        tracing::warn!(exporter, target, rejected = sent.rejected_spans, message = %sent.message, "receiver rejected part of a request (partial success; not retried)");
        metrics::counter!(m::EXPORTER_SPANS_REJECTED, "exporter" => exporter.to_owned(), "reason" => "partial_success")
            .increment(sent.rejected_spans.unsigned_abs());
    }
}

fn count_enriched(exporter: &str, e: convert::Enriched) {
    if e.bad_trace_state > 0 {
        metrics::counter!(m::OTLP_BAD_TRACE_STATE, "exporter" => exporter.to_owned())
            .increment(e.bad_trace_state as u64);
    }
}

/// Builds the `otlp` exporter `cfg` describes: one endpoint, or the balancer.
///
/// # Errors
/// A message when an endpoint, header or TLS file is unusable.
pub fn build(
    name: &str,
    cfg: &OtlpConfig,
    batch: &BatchConfig,
    retry: &RetryConfig,
) -> Result<OtlpExporter, String> {
    let wire = Wire::of(cfg);
    let mode = if let Some(endpoint) = &cfg.endpoint {
        Mode::Single {
            transport: wire.transport(endpoint, None)?,
            prepared: None,
        }
    } else {
        let members = match &cfg.resolve {
            Some(r) => balance::Members::Dns {
                endpoint: r.endpoint.clone(),
                interval: r.interval,
            },
            None => balance::Members::Static(cfg.endpoints.clone()),
        };
        Mode::Balanced(balance::Balancer::start(balance::Settings {
            exporter: name.to_owned(),
            wire: wire.clone(),
            members,
            balance: cfg.balance.clone(),
            batch: batch.clone(),
            retry: retry.clone(),
        })?)
    };
    Ok(OtlpExporter {
        name: name.to_owned(),
        wire,
        pinpoint: cfg.pinpoint,
        mode,
    })
}

/// Sends batches as OTLP.
pub struct OtlpExporter {
    name: String,
    wire: Wire,
    pinpoint: bool,
    mode: Mode,
}

enum Mode {
    Single {
        transport: Transport,
        /// The encoded body of a batch being retried, by batch id.
        prepared: Option<(u64, Bytes)>,
    },
    Balanced(balance::Balancer),
}

impl Exporter for OtlpExporter {
    async fn export(&mut self, batch: &Batch) -> Result<(), ExportError> {
        match &mut self.mode {
            Mode::Single {
                transport,
                prepared,
            } => {
                let body = match prepared.take() {
                    Some((id, body)) if id == batch.id() => body,
                    _ => {
                        let (spans, enriched) = convert::collect(batch, self.pinpoint);
                        count_enriched(&self.name, enriched);
                        self.wire.encode(&ExportTraceServiceRequest {
                            resource_spans: spans,
                        })?
                    }
                };
                match transport.send(body.clone()).await {
                    Ok(sent) => {
                        count_partial(&self.name, &transport.target(), &sent);
                        Ok(())
                    }
                    Err(e) => {
                        if matches!(e, ExportError::Retryable { .. }) {
                            *prepared = Some((batch.id(), body));
                        }
                        Err(e)
                    }
                }
            }
            Mode::Balanced(b) => {
                let pinpoint = self.pinpoint;
                let name = &self.name;
                b.export(batch, |batch| {
                    let (spans, enriched) = convert::collect(batch, pinpoint);
                    count_enriched(name, enriched);
                    spans
                })
            }
        }
    }

    async fn shutdown(&mut self) {
        if let Mode::Balanced(b) = &mut self.mode {
            b.shutdown().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(yaml: &str) -> Vec<&'static str> {
        let cfg: OtlpConfig = serde_saphyr::from_str(yaml).expect("parses");
        cfg.problems().into_iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn config_problems_name_their_key() {
        let none: Vec<&str> = Vec::new();
        assert_eq!(problems("endpoint: http://127.0.0.1:4317\n"), none);
        assert_eq!(
            problems(
                "endpoints: [http://a:4317, http://b:4317]\nbalance: { reroute_after: 30s }\n"
            ),
            none
        );
        assert_eq!(
            problems("resolve: { endpoint: http://gw.svc:4317 }\n"),
            none
        );
        assert_eq!(
            problems(
                "protocol: http/protobuf\nendpoint: http://h:9997/v1/traces\npinpoint: true\n"
            ),
            none
        );
        assert_eq!(problems("{}\n"), ["endpoint"]);
        assert_eq!(
            problems("endpoint: http://a:1\nendpoints: [http://b:1]\n"),
            ["endpoint"]
        );
        assert_eq!(problems("endpoint: a:4317\n"), ["endpoint"]);
        assert_eq!(
            problems("endpoint: http://a:4317/v1/traces\n"),
            ["endpoint"]
        );
        assert_eq!(
            problems("protocol: http/json\nendpoint: http://a:1\npinpoint: true\n"),
            ["protocol"]
        );
        assert_eq!(
            problems("protocol: http/protobuf\nresolve: { endpoint: https://gw:4318 }\n"),
            ["resolve.endpoint"]
        );
        assert_eq!(
            problems("endpoint: http://a:1\nbalance: { virtual_nodes: 0 }\n"),
            ["balance.virtual_nodes"]
        );
        assert_eq!(
            problems("endpoint: http://a:1\ntls: { cert_file: c.pem }\n"),
            ["tls.key_file"]
        );
        assert_eq!(problems("endpoint: http://a:1\ntimeout: 0s\n"), ["timeout"]);
        assert!(serde_saphyr::from_str::<OtlpConfig>("endpoint: http://a:1\nbogus: 1\n").is_err());
    }
}
