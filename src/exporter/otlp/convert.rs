//! What the `otlp` exporter does to a batch before sending it. Pure (no I/O).
//!
//! - [`collect`]: the batch's `ResourceSpans` as one request, optionally enriched for
//!   Pinpoint 3.1's native OTLP ingest ([`enrich_pinpoint`]);
//! - [`split`]: a request cut by trace id into one part per endpoint, keeping each
//!   span under its own resource and scope;
//! - [`encode`]: protobuf or OTLP JSON, gzipped or not.

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};

use crate::exporter::pinpoint::agent;
use crate::ids::entries::PpEntry;
use crate::ids::headers::TRACESTATE_PP;
use crate::ids::tracestate::TraceState;
use crate::pipeline::Batch;
use crate::pipeline::router::RouteOverrides;

/// Resource attribute keys the Pinpoint option writes (the first two are the ones
/// Pinpoint 3.1's OTLP ingest reads; the service type is the code the `pinpoint`
/// exporter would send for the application).
pub const PINPOINT_APPLICATION_NAME: &str = "pinpoint.applicationName";
pub const PINPOINT_AGENT_ID: &str = "pinpoint.agentId";
pub const PINPOINT_SERVICE_TYPE: &str = "pinpoint.serviceType";

/// What [`enrich_pinpoint`] did to the spans of one resource.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Enriched {
    /// Spans that got a `pp` entry.
    pub pp_written: usize,
    /// Spans whose `trace_state` was invalid and was left as it was.
    pub bad_trace_state: usize,
}

impl std::ops::AddAssign for Enriched {
    fn add_assign(&mut self, o: Self) {
        self.pp_written += o.pp_written;
        self.bad_trace_state += o.bad_trace_state;
    }
}

/// The batch's `ResourceSpans`, in arrival order; with `pinpoint`, each resource gets
/// the identity the `pinpoint` exporter computes for it (the route's overrides applied).
#[must_use]
pub fn collect(batch: &Batch, pinpoint: bool) -> (Vec<ResourceSpans>, Enriched) {
    let mut out = Vec::new();
    let mut total = Enriched::default();
    for block in batch.blocks() {
        for rs in &block.resource_spans {
            let mut rs = rs.clone();
            if pinpoint {
                total += enrich_pinpoint(&mut rs, block.overrides.as_deref());
            }
            out.push(rs);
        }
    }
    (out, total)
}

/// Writes `pinpoint.applicationName`, `pinpoint.agentId` and `pinpoint.serviceType`
/// into the resource (replacing what was there: the values come from it, by
/// `exporter::pinpoint::agent::identify_with`), and `pp=svc:;app:<app>;type:<code>`
/// into every span's `trace_state` that has no `pp` entry (a `pp` already there was
/// written upstream, by a Pinpoint-aware hop, and is kept).
pub fn enrich_pinpoint(rs: &mut ResourceSpans, overrides: Option<&RouteOverrides>) -> Enriched {
    let id = agent::identify_with(rs.resource.as_ref(), overrides);
    let resource = rs.resource.get_or_insert_with(Resource::default);
    set_attr(
        resource,
        PINPOINT_APPLICATION_NAME,
        Value::StringValue(id.application_name.clone()),
    );
    set_attr(
        resource,
        PINPOINT_AGENT_ID,
        Value::StringValue(id.agent_id.clone()),
    );
    set_attr(
        resource,
        PINPOINT_SERVICE_TYPE,
        Value::IntValue(i64::from(id.service_type)),
    );
    let mut pp = String::new();
    let entry = PpEntry {
        service_name: "",
        application_name: &id.application_name,
        service_type: id.service_type,
    };
    // The application name is fitted to [a-zA-Z0-9._-], so the entry is always valid.
    let pp_ok = entry.write(&mut pp).is_ok();
    let mut done = Enriched::default();
    for span in rs.scope_spans.iter_mut().flat_map(|s| &mut s.spans) {
        let Ok(mut state) = TraceState::parse(&span.trace_state) else {
            done.bad_trace_state += 1;
            continue;
        };
        if state.get(TRACESTATE_PP).is_some() || !pp_ok {
            continue;
        }
        if state.upsert(TRACESTATE_PP, &pp).is_ok() {
            span.trace_state = state.to_header();
            done.pp_written += 1;
        }
    }
    done
}

fn set_attr(resource: &mut Resource, key: &str, value: Value) {
    let value = Some(AnyValue { value: Some(value) });
    if let Some(kv) = resource.attributes.iter_mut().find(|kv| kv.key == key) {
        kv.value = value;
    } else {
        resource.attributes.push(KeyValue {
            key: key.to_owned(),
            value,
            ..Default::default()
        });
    }
}

/// Spans in `resource_spans`.
#[must_use]
pub fn span_count(resource_spans: &[ResourceSpans]) -> usize {
    resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum()
}

/// Cuts `resource_spans` into `parts` requests by `pick(trace_id)` (an index below
/// `parts`; a larger one is taken modulo `parts`). Each part keeps the resource, scope
/// and schema URLs of its spans; empty resources and scopes are left out.
#[must_use]
pub fn split(
    resource_spans: Vec<ResourceSpans>,
    parts: usize,
    mut pick: impl FnMut(&[u8]) -> usize,
) -> Vec<Vec<ResourceSpans>> {
    let parts = parts.max(1);
    let mut out: Vec<Vec<ResourceSpans>> = vec![Vec::new(); parts];
    for rs in resource_spans {
        let ResourceSpans {
            resource,
            scope_spans,
            schema_url,
        } = rs;
        let mut per: Vec<Vec<ScopeSpans>> = vec![Vec::new(); parts];
        for ss in scope_spans {
            let ScopeSpans {
                scope,
                spans,
                schema_url: scope_schema,
            } = ss;
            let mut buckets = vec![Vec::new(); parts];
            for span in spans {
                let i = pick(&span.trace_id) % parts;
                buckets[i].push(span);
            }
            for (i, spans) in buckets.into_iter().enumerate() {
                if !spans.is_empty() {
                    per[i].push(ScopeSpans {
                        scope: scope.clone(),
                        spans,
                        schema_url: scope_schema.clone(),
                    });
                }
            }
        }
        for (i, scope_spans) in per.into_iter().enumerate() {
            if !scope_spans.is_empty() {
                out[i].push(ResourceSpans {
                    resource: resource.clone(),
                    scope_spans,
                    schema_url: schema_url.clone(),
                });
            }
        }
    }
    out
}

/// A request that could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("cannot encode the request as JSON: {0}")]
    Json(String),
    #[error("cannot gzip the request: {0}")]
    Gzip(String),
}

/// Encodes a request: protobuf, or OTLP JSON (hex ids, lowerCamelCase keys) with
/// `json`; gzipped with `gzip`.
///
/// # Errors
/// [`EncodeError`] (not expected for valid messages).
pub fn encode(
    req: &ExportTraceServiceRequest,
    json: bool,
    gzip: bool,
) -> Result<Bytes, EncodeError> {
    let raw = if json {
        serde_json::to_vec(req).map_err(|e| EncodeError::Json(e.to_string()))?
    } else {
        prost::Message::encode_to_vec(req)
    };
    if gzip {
        crate::exporter::http::gzip(&raw).map_err(|e| EncodeError::Gzip(e.to_string()))
    } else {
        Ok(Bytes::from(raw))
    }
}

#[cfg(test)]
#[path = "convert_tests.rs"]
mod tests;
