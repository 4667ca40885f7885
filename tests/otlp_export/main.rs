//! The `otlp` exporter against real receivers:
//!
//! - `foreign`: Rotel (a foreign OTLP collector, from PyPI `rotel`) receives the
//!   bridge's spans over gRPC and over HTTP and forwards them to a second bridge
//!   instance's file exporter; a third bridge takes OTLP/JSON directly. Every span
//!   arrives intact field by field (ids, attributes, events, links, status, resource,
//!   scope);
//! - `balance`: three downstream bridges behind trace-id balancing: every trace whole on
//!   exactly one; one endpoint fewer moves at most 1/3 + 5 % of traces; a downstream
//!   killed for 10 s loses nothing and its retries are counted;
//! - `retries`: a scripted OTLP/gRPC receiver: RetryInfo honoured, partial success
//!   counted and not retried, INVALID_ARGUMENT and RESOURCE_EXHAUSTED without RetryInfo
//!   not retried; OTLP/HTTP 503 + Retry-After honoured, 400 not retried;
//! - `two_tier`: five services (real SDK at defaults), each with its own bridge
//!   forwarding by trace id to two gateway bridges that export to the stand-in Pinpoint
//!   collector: every trace whole, without Redis.

mod balance;
#[path = "../common/mod.rs"]
mod common;
mod foreign;
mod retries;
mod two_tier;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value::Value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use otel_pinpoint_bridge::app::Running;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn s(v: &str) -> Value {
    Value::StringValue(v.to_owned())
}

/// A trace id that is `n` in its last 8 bytes and mixed in its first 8.
pub fn trace_id(n: u64) -> Vec<u8> {
    let mut t = n.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes().to_vec();
    t.extend_from_slice(&n.to_be_bytes());
    t
}

pub fn span_id(trace: u64, i: u64) -> Vec<u8> {
    ((trace << 8) | i | 1 << 62).to_be_bytes().to_vec()
}

/// Spans with every kind of field filled: attributes of each value type, events,
/// links, status, trace_state, flags, dropped counts; two resources, two scopes.
pub fn rich_request(traces: std::ops::Range<u64>) -> ExportTraceServiceRequest {
    let resource = |name: &str| Resource {
        attributes: vec![
            kv("service.name", s(name)),
            kv("service.instance.id", s(&format!("{name}-1"))),
            kv("host.name", s("node-7")),
            kv("process.pid", Value::IntValue(4242)),
        ],
        dropped_attributes_count: 1,
        ..Default::default()
    };
    let scope = |name: &str| InstrumentationScope {
        name: name.to_owned(),
        version: "1.2.3".to_owned(),
        attributes: vec![kv("scope.attr", s("x"))],
        dropped_attributes_count: 0,
    };
    let mut front = Vec::new();
    let mut back = Vec::new();
    for t in traces {
        let tid = trace_id(t);
        let base = 1_700_000_000_000_000_000 + t * 1_000_000;
        let mk = |i: u64, parent: Option<u64>, kind: i32| Span {
            trace_id: tid.clone(),
            span_id: span_id(t, i),
            parent_span_id: parent.map(|p| span_id(t, p)).unwrap_or_default(),
            trace_state: if i == 1 {
                "vendor=abc,other=1".into()
            } else {
                String::new()
            },
            flags: 0x101,
            name: format!("op-{i}"),
            kind,
            start_time_unix_nano: base + i * 1000,
            end_time_unix_nano: base + i * 1000 + 777_777,
            attributes: vec![
                kv("http.request.method", s("GET")),
                kv("count", Value::IntValue(-(i as i64))),
                kv("ratio", Value::DoubleValue(0.25 * i as f64)),
                kv("ok", Value::BoolValue(i.is_multiple_of(2))),
                kv("raw", Value::BytesValue(vec![0, 1, 2, 255])),
                kv(
                    "list",
                    Value::ArrayValue(ArrayValue {
                        values: vec![
                            AnyValue {
                                value: Some(s("a")),
                            },
                            AnyValue {
                                value: Some(Value::IntValue(2)),
                            },
                        ],
                    }),
                ),
                kv(
                    "map",
                    Value::KvlistValue(KeyValueList {
                        values: vec![kv("inner", s("v"))],
                    }),
                ),
            ],
            dropped_attributes_count: 2,
            events: vec![Event {
                time_unix_nano: base + i * 1000 + 10,
                name: "exception".into(),
                attributes: vec![kv("exception.message", s("boom"))],
                dropped_attributes_count: 1,
            }],
            dropped_events_count: 3,
            links: vec![Link {
                trace_id: trace_id(t + 1_000_000),
                span_id: span_id(t + 1_000_000, 9),
                trace_state: "linked=1".into(),
                attributes: vec![kv("link.kind", s("follows"))],
                dropped_attributes_count: 0,
                flags: 0x301,
            }],
            dropped_links_count: 4,
            status: Some(Status {
                message: if i == 3 {
                    "failed".into()
                } else {
                    String::new()
                },
                code: if i == 3 { 2 } else { 1 },
            }),
        };
        // Callee spans come in a different resource than the caller's.
        front.push(mk(1, None, 2));
        front.push(mk(2, Some(1), 3));
        back.push(mk(3, Some(2), 2));
    }
    let rs = |name: &str, spans: Vec<Span>| ResourceSpans {
        resource: Some(resource(name)),
        scope_spans: vec![ScopeSpans {
            scope: Some(scope(&format!("{name}-lib"))),
            spans,
            schema_url: "https://opentelemetry.io/schemas/1.30.0".into(),
        }],
        schema_url: "https://opentelemetry.io/schemas/1.29.0".into(),
    };
    ExportTraceServiceRequest {
        resource_spans: vec![rs("frontend", front), rs("backend", back)],
    }
}

/// Every span by span id, with its resource and scope (schema URLs included).
pub type Found = BTreeMap<
    Vec<u8>,
    (
        Option<Resource>,
        String,
        Option<InstrumentationScope>,
        String,
        Span,
    ),
>;

pub fn index(reqs: &[ExportTraceServiceRequest]) -> Found {
    let mut out = BTreeMap::new();
    for req in reqs {
        for rs in &req.resource_spans {
            for ss in &rs.scope_spans {
                for sp in &ss.spans {
                    out.insert(
                        sp.span_id.clone(),
                        (
                            rs.resource.clone(),
                            rs.schema_url.clone(),
                            ss.scope.clone(),
                            ss.schema_url.clone(),
                            sp.clone(),
                        ),
                    );
                }
            }
        }
    }
    out
}

/// Posts a protobuf request to a gateway's OTLP/HTTP receiver.
pub async fn post(gw: &Running, req: &ExportTraceServiceRequest) {
    let body = prost::Message::encode_to_vec(req);
    let resp = reqwest::Client::new()
        .post(format!("http://{}/v1/traces", gw.http_addr.expect("http")))
        .header("content-type", "application/x-protobuf")
        .body(body)
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
}

/// Polls the file at `path` until it holds `want` spans (or `within` passes).
pub async fn wait_spans(path: &Path, want: usize, within: Duration) -> Found {
    let deadline = Instant::now() + within;
    loop {
        let found = index(&common::read_lines(path));
        if found.len() >= want || Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The value of `name{labels...}` in a gateway's /metrics (summed), 0 when absent.
pub async fn metric(gw: &Running, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = reqwest::get(format!("http://{}/metrics", gw.admin_addr))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A gateway with a file exporter writing to `out`, OTLP receivers on free ports (or
/// the given gRPC port).
pub async fn file_gateway(out: &Path, grpc_port: u16) -> Running {
    common::start(&format!(
        "receivers:\n  otlp:\n    grpc: {{ endpoint: 127.0.0.1:{grpc_port} }}\n    http: {{ endpoint: 127.0.0.1:0 }}\n\
         exporters:\n  out:\n    type: file\n    path: '{}'\n    batch: {{ max_spans: 5000, timeout: 50ms }}\n\
         admin: {{ endpoint: 127.0.0.1:0 }}\nservice: {{ shutdown_grace: 2s }}\n",
        out.display()
    ))
    .await
}

pub fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("tmp")
}

pub fn out_path(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(format!("{name}.jsonl"))
}
