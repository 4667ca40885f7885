//! The `zipkin` exporter: sends each batch to a Zipkin collector's `POST /api/v2/spans`,
//! as Zipkin v2 JSON (default) or proto3 `ListOfSpans`, gzipped by default.
//!
//! [`convert`] maps OTLP to the Zipkin [`model`] (pure); [`proto`] encodes it as proto3;
//! [`json`] writes the same JSON as serializing the model, straight from OTLP;
//! [`transport`] POSTs and classifies answers (2xx delivered; 429, 5xx, timeouts and
//! connection errors retried by the pipeline's worker; 400 and other 4xx given up).
//! A span that cannot be mapped is left out of the batch and counted in
//! `bridge_exporter_spans_rejected_total{exporter,reason}`.

pub mod convert;
pub mod json;
pub mod model;
pub mod proto;
pub mod transport;
pub mod values;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Deserialize;

use super::{ExportError, Exporter};
use crate::pipeline::Batch;
use crate::selfmetrics as m;

/// `exporters.<name>:` keys of `type: zipkin`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZipkinConfig {
    /// The collector's span endpoint, e.g. `http://127.0.0.1:9411/api/v2/spans`. Required.
    pub endpoint: String,
    /// Body format. Default `json`.
    #[serde(default)]
    pub encoding: Encoding,
    /// Body compression. Default `gzip`.
    #[serde(default)]
    pub compression: Compression,
    /// Longest wait for one POST and its answer. Default 10s.
    #[serde(
        default = "default_timeout",
        deserialize_with = "crate::config::de_duration"
    )]
    pub timeout: Duration,
    /// Extra request headers (e.g. `authorization`). Default none.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

/// See [`ZipkinConfig::encoding`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// Zipkin v2 JSON, `application/json`.
    #[default]
    Json,
    /// proto3 `zipkin.proto3.ListOfSpans`, `application/x-protobuf`.
    Proto,
}

/// See [`ZipkinConfig::compression`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    #[default]
    Gzip,
    None,
}

impl ZipkinConfig {
    /// Problems with the values, as `(key, message)`, for config validation.
    #[must_use]
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Err(e) = transport::parse_endpoint(&self.endpoint) {
            out.push(("endpoint", e.to_string()));
        }
        if let Err(e) = transport::parse_headers(&self.headers) {
            out.push(("headers", e.to_string()));
        }
        if self.timeout.is_zero() {
            out.push(("timeout", "must be greater than 0".to_owned()));
        }
        out
    }
}

/// Sends batches to Zipkin.
pub struct ZipkinExporter {
    name: String,
    encoding: Encoding,
    transport: transport::Transport,
    /// The body of a batch whose export will be retried, kept for the retry: it is not
    /// converted again, and its rejected spans are not counted twice.
    prepared: Option<Prepared>,
    /// JSON bytes per span to allocate for the next batch: the last batch's average and
    /// an eighth more, so that the output buffer is allocated once and never regrown.
    json_per_span: usize,
}

/// [`ZipkinExporter::json_per_span`] before the first batch, and its bounds.
const JSON_PER_SPAN: (usize, std::ops::RangeInclusive<usize>) = (1024, 256..=16 * 1024);

struct Prepared {
    batch: BatchKey,
    /// `None` when no span of the batch could be mapped: nothing to send.
    body: Option<Bytes>,
}

/// Tells one batch from the next: its first block (alive while the batch is) and when it
/// was received.
#[derive(PartialEq, Eq)]
struct BatchKey(usize, Instant, usize);

impl BatchKey {
    fn of(batch: &Batch) -> Self {
        let first = batch
            .blocks()
            .first()
            .map_or(0, |b| std::sync::Arc::as_ptr(b) as usize);
        Self(first, batch.first_received, batch.span_count())
    }
}

impl ZipkinExporter {
    /// Builds the HTTP client for `cfg`.
    ///
    /// # Errors
    /// A message when the endpoint, headers or TLS set-up are unusable.
    pub fn new(name: &str, cfg: &ZipkinConfig) -> Result<Self, String> {
        let transport = transport::Transport::new(&transport::Settings {
            endpoint: &cfg.endpoint,
            headers: &cfg.headers,
            timeout: cfg.timeout,
            content_type: match cfg.encoding {
                Encoding::Json => "application/json",
                Encoding::Proto => "application/x-protobuf",
            },
            gzip: cfg.compression == Compression::Gzip,
            exporter: name,
        })
        .map_err(|e| e.to_string())?;
        Ok(Self {
            name: name.to_owned(),
            encoding: cfg.encoding,
            transport,
            prepared: None,
            json_per_span: JSON_PER_SPAN.0,
        })
    }

    fn prepare(&mut self, batch: &Batch) -> Result<Option<Bytes>, ExportError> {
        let fail = |e: String| ExportError::Permanent(format!("cannot encode batch: {e}"));
        let encoded = match self.encoding {
            Encoding::Json => {
                let mut encoded = Vec::with_capacity(self.json_per_span * batch.span_count());
                let (written, rejected) = json::write(batch.resource_spans(), &mut encoded);
                count_rejected(&self.name, &rejected);
                if written == 0 {
                    return Ok(None);
                }
                let average = encoded.len() / written;
                self.json_per_span =
                    (average + average / 8).clamp(*JSON_PER_SPAN.1.start(), *JSON_PER_SPAN.1.end());
                encoded
            }
            Encoding::Proto => {
                let converted = convert::convert(batch.resource_spans());
                count_rejected(&self.name, &converted.rejected);
                if converted.spans.is_empty() {
                    return Ok(None);
                }
                let mut encoded = Vec::with_capacity(512 * converted.spans.len());
                proto::encode(&converted.spans, &mut encoded).map_err(|e| fail(e.to_string()))?;
                encoded
            }
        };
        let body = self
            .transport
            .body(encoded)
            .map_err(|e| fail(e.to_string()))?;
        Ok(Some(body))
    }
}

/// Counts (and logs at debug) the spans a conversion left out.
pub fn count_rejected(exporter: &str, rejected: &[convert::Rejected]) {
    for r in rejected {
        tracing::debug!(exporter, reason = r.reason.as_str(), trace_id = %r.trace_id, span_id = %r.span_id, "span rejected: cannot be mapped to Zipkin");
        metrics::counter!(m::EXPORTER_SPANS_REJECTED, "exporter" => exporter.to_owned(), "reason" => r.reason.as_str())
            .increment(1);
    }
}

impl Exporter for ZipkinExporter {
    async fn export(&mut self, batch: &Batch) -> Result<(), ExportError> {
        let key = BatchKey::of(batch);
        let body = match self.prepared.take() {
            Some(p) if p.batch == key => p.body,
            _ => self.prepare(batch)?,
        };
        let result = match &body {
            Some(b) => self.transport.post(b.clone()).await,
            None => Ok(()),
        };
        if matches!(result, Err(ExportError::Retryable { .. })) {
            self.prepared = Some(Prepared { batch: key, body });
        }
        result
    }
}
