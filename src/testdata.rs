//! Synthetic OTLP traces, for tests, benches and the load generator.
//!
//! The batches look like what an instrumented shop sends: several services (one
//! `ResourceSpans` each, with the usual resource attributes), each with server, client
//! (HTTP and database) and internal spans under their instrumentation scopes, semantic
//! convention attributes, a few errors and health checks, and traces that cross
//! services. Within a trace, a service's spans form a chain (each the child of the
//! previous one there), so every parent a span names is in the batch. Everything is a pure function of the [`Shape`] and a seed, so a test can
//! regenerate exactly what it sent, and trace ids are random in the W3C sense (their
//! last 7 bytes are uniform), so sampling sees realistic ids.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

/// The size and mix of a generated batch.
#[derive(Debug, Clone)]
pub struct Shape {
    /// Services in the batch, one `ResourceSpans` each (names from [`SERVICES`], then
    /// `service-<n>`).
    pub services: usize,
    /// Spans in the batch, spread evenly over the services.
    pub spans: usize,
    /// Spans per trace; a trace's spans are spread over the services.
    pub spans_per_trace: usize,
    /// Fraction of spans with status ERROR (and an HTTP 5xx where there is one).
    pub error_ratio: f64,
    /// Extra string attributes per span (`app.attr.<n>`), beyond the semantic
    /// convention ones each kind of span carries.
    pub extra_attributes: usize,
    /// Length in bytes of each extra attribute's value.
    pub attribute_len: usize,
}

impl Default for Shape {
    /// 100 spans over 5 services, traces of 10 spans, 5 % errors, no extra attributes.
    fn default() -> Self {
        Self {
            services: 5,
            spans: 100,
            spans_per_trace: 10,
            error_ratio: 0.05,
            extra_attributes: 0,
            attribute_len: 16,
        }
    }
}

/// Service names used first.
pub const SERVICES: [&str; 8] = [
    "frontend",
    "checkout",
    "payments",
    "orders",
    "inventory",
    "shipping",
    "users",
    "search",
];

/// Instrumentation scopes, and the kind of span each produces.
const SCOPES: [(&str, SpanRole); 4] = [
    ("io.opentelemetry.tomcat-10.0", SpanRole::Server),
    ("io.opentelemetry.spring-webmvc-6.0", SpanRole::Internal),
    ("io.opentelemetry.jdbc", SpanRole::Database),
    ("io.opentelemetry.java-http-client", SpanRole::HttpClient),
];
const SCOPE_VERSION: &str = "2.10.0-alpha";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SpanRole {
    Server,
    Internal,
    Database,
    HttpClient,
}

/// A small deterministic random number generator (SplitMix64): no dependency, same
/// numbers on every platform.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p && p > 0.0
    }

    /// A random, non-zero 16-byte trace id.
    pub fn trace_id(&mut self) -> Vec<u8> {
        let mut id = Vec::with_capacity(16);
        id.extend_from_slice(&self.next_u64().to_be_bytes());
        id.extend_from_slice(&(self.next_u64() | 1).to_be_bytes());
        id
    }

    /// A random, non-zero 8-byte span id.
    pub fn span_id(&mut self) -> Vec<u8> {
        (self.next_u64() | 1).to_be_bytes().to_vec()
    }
}

/// A string attribute.
#[must_use]
pub fn string(key: &str, value: &str) -> KeyValue {
    attr(key, any_value::Value::StringValue(value.to_owned()))
}

/// An int attribute.
#[must_use]
pub fn int(key: &str, value: i64) -> KeyValue {
    attr(key, any_value::Value::IntValue(value))
}

/// A bool attribute.
#[must_use]
pub fn boolean(key: &str, value: bool) -> KeyValue {
    attr(key, any_value::Value::BoolValue(value))
}

fn attr(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn service_name(i: usize) -> String {
    SERVICES
        .get(i)
        .map_or_else(|| format!("service-{i}"), |s| (*s).to_owned())
}

fn resource(i: usize) -> Resource {
    let name = service_name(i);
    let language = ["java", "python", "go"][i % 3];
    Resource {
        attributes: vec![
            string("service.name", &name),
            string("service.namespace", "shop"),
            string("service.version", "1.4.2"),
            string("service.instance.id", &format!("{name}-7d9f-{i}")),
            string("deployment.environment.name", "production"),
            string("host.name", &format!("node-{}", i % 4)),
            string("k8s.pod.name", &format!("{name}-7d9f8c-x{i}")),
            string("telemetry.sdk.name", "opentelemetry"),
            string("telemetry.sdk.language", language),
            string("telemetry.sdk.version", "1.40.0"),
        ],
        ..Default::default()
    }
}

const ROUTES: [&str; 6] = [
    "/api/orders/{id}",
    "/api/cart",
    "/api/pay",
    "/api/items",
    "/api/users/{id}",
    "/health",
];

fn span(
    rng: &mut Rng,
    role: SpanRole,
    trace_id: &[u8],
    start: u64,
    error: bool,
    extra: &[KeyValue],
    parent: Option<&[u8]>,
) -> Span {
    let route = ROUTES[rng.below(ROUTES.len())];
    let status_code = if error {
        500 + 3 * rng.below(2) as i64
    } else {
        200
    };
    let (name, kind, mut attributes) = match role {
        SpanRole::Server => (
            format!("GET {route}"),
            2,
            vec![
                string("http.request.method", "GET"),
                string("http.route", route),
                string("url.path", &route.replace("{id}", "42")),
                string("url.scheme", "https"),
                int("http.response.status_code", status_code),
                string("server.address", "shop.example.com"),
                int("server.port", 443),
                string("network.protocol.version", "1.1"),
                string("client.address", "10.1.2.3"),
                string("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64)"),
            ],
        ),
        SpanRole::Internal => (
            "OrderController.handle".to_owned(),
            1,
            vec![
                string("code.function.name", "handle"),
                string("code.namespace", "com.example.shop.OrderController"),
                string("thread.name", "http-nio-8080-exec-3"),
            ],
        ),
        SpanRole::Database => (
            "SELECT shop.orders".to_owned(),
            3,
            vec![
                string("db.system", "postgresql"),
                string("db.namespace", "shop"),
                string("db.operation.name", "SELECT"),
                string("db.collection.name", "orders"),
                string("db.query.text", "SELECT id, total FROM orders WHERE id = ?"),
                string("server.address", "postgres.shop.svc"),
                int("server.port", 5432),
            ],
        ),
        SpanRole::HttpClient => (
            "POST".to_owned(),
            3,
            vec![
                string("http.request.method", "POST"),
                string("url.full", "http://payments.shop.svc:8080/api/pay"),
                int("http.response.status_code", status_code),
                string("server.address", "payments.shop.svc"),
                int("server.port", 8080),
                string("network.peer.address", "10.4.5.6"),
            ],
        ),
    };
    attributes.extend_from_slice(extra);
    let span_id = rng.span_id();
    // Drawn whatever the parent, so that every later number (and so every trace id)
    // stays what it has always been.
    let _ = (role != SpanRole::Server).then(|| rng.span_id());
    Span {
        trace_id: trace_id.to_vec(),
        span_id,
        parent_span_id: parent.map(<[u8]>::to_vec).unwrap_or_default(),
        name,
        kind,
        start_time_unix_nano: start,
        end_time_unix_nano: start + 1_000_000 + rng.below(50_000_000) as u64,
        attributes,
        status: error.then(|| Status {
            code: 2,
            message: "Internal Server Error".to_owned(),
        }),
        ..Default::default()
    }
}

/// The extra attributes of every span: `app.attr.<n>` = `attribute_len` letters.
fn extra_attributes(shape: &Shape) -> Vec<KeyValue> {
    (0..shape.extra_attributes)
        .map(|n| {
            let value: String = (0..shape.attribute_len)
                .map(|i| char::from(b'a' + ((n + i) % 26) as u8))
                .collect();
            string(&format!("app.attr.{n}"), &value)
        })
        .collect()
}

/// The two batch shapes every hot-path benchmark measures: the OTel Collector
/// testbed's 100 spans (5 services), and a large 1000-span batch (12 services).
#[must_use]
pub fn bench_shapes() -> [(&'static str, Shape); 2] {
    [
        ("100_spans_5_services", Shape::default()),
        (
            "1000_spans_12_services",
            Shape {
                services: 12,
                spans: 1000,
                ..Shape::default()
            },
        ),
    ]
}

/// A batch shaped by `shape`; the same `seed` gives the same batch.
#[must_use]
pub fn resource_spans(shape: &Shape, seed: u64) -> Vec<ResourceSpans> {
    let mut rng = Rng::new(seed);
    let services = shape.services.max(1);
    let mut scopes: Vec<Vec<Vec<Span>>> = vec![vec![Vec::new(); SCOPES.len()]; services];
    let mut trace_id = rng.trace_id();
    let start = 1_700_000_000_000_000_000u64 + (seed % 1000) * 1_000_000_000;
    let extra = extra_attributes(shape);
    // The last span of the current trace in each service: the next span of the trace
    // in that service is its child, so every trace is a tree whose parents are present.
    let mut last_in_service: Vec<Option<Vec<u8>>> = vec![None; services];
    for i in 0..shape.spans {
        if i > 0 && i % shape.spans_per_trace.max(1) == 0 {
            trace_id = rng.trace_id();
            last_in_service.iter_mut().for_each(|l| *l = None);
        }
        let service = i % services;
        let scope = (i / services) % SCOPES.len();
        let error = rng.chance(shape.error_ratio);
        let s = span(
            &mut rng,
            SCOPES[scope].1,
            &trace_id,
            start + i as u64 * 1000,
            error,
            &extra,
            last_in_service[service].as_deref(),
        );
        last_in_service[service] = Some(s.span_id.clone());
        scopes[service][scope].push(s);
    }
    scopes
        .into_iter()
        .enumerate()
        .filter(|(_, s)| s.iter().any(|spans| !spans.is_empty()))
        .map(|(i, per_scope)| ResourceSpans {
            resource: Some(resource(i)),
            scope_spans: per_scope
                .into_iter()
                .zip(SCOPES)
                .filter(|(spans, _)| !spans.is_empty())
                .map(|(spans, (name, _))| ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: name.to_owned(),
                        version: SCOPE_VERSION.to_owned(),
                        ..Default::default()
                    }),
                    spans,
                    schema_url: "https://opentelemetry.io/schemas/1.27.0".to_owned(),
                })
                .collect(),
            schema_url: "https://opentelemetry.io/schemas/1.27.0".to_owned(),
        })
        .collect()
}

/// [`resource_spans`] with the services of each trace calling each other in a chain
/// (service 0 → 1 → …): in each trace, the last span of service k−1 becomes an HTTP
/// client call to service k and service k's first span its SERVER entry (a remote
/// child of that call). Span counts stay those of the shape.
#[must_use]
pub fn linked_resource_spans(shape: &Shape, seed: u64) -> Vec<ResourceSpans> {
    let mut out = resource_spans(shape, seed);
    if out.len() < 2 {
        return out;
    }
    // (trace, service) -> (first span's place, last span's place)
    type Place = (usize, usize, usize);
    let mut ends: std::collections::HashMap<(Vec<u8>, usize), (Place, Place)> =
        std::collections::HashMap::new();
    for (k, rs) in out.iter().enumerate() {
        for (si, ss) in rs.scope_spans.iter().enumerate() {
            for (i, s) in ss.spans.iter().enumerate() {
                let e = ends
                    .entry((s.trace_id.clone(), k))
                    .or_insert(((k, si, i), (k, si, i)));
                let start = |p: &Place| out[p.0].scope_spans[p.1].spans[p.2].start_time_unix_nano;
                if s.start_time_unix_nano < start(&e.0) {
                    e.0 = (k, si, i);
                }
                if s.start_time_unix_nano >= start(&e.1) {
                    e.1 = (k, si, i);
                }
            }
        }
    }
    let links: Vec<(Place, Place, usize)> = ends
        .iter()
        .filter(|((_, k), _)| *k > 0)
        .filter_map(|((t, k), (first, _))| {
            let (_, caller_last) = ends.get(&(t.clone(), k - 1))?;
            Some((*caller_last, *first, *k))
        })
        .collect();
    for (call, entry, k) in links {
        let target = service_name(k);
        let c = &mut out[call.0].scope_spans[call.1].spans[call.2];
        c.kind = 3;
        c.attributes = vec![
            string("http.request.method", "GET"),
            string("url.full", &format!("http://{target}:8080/api")),
            string("server.address", &target),
            int("server.port", 8080),
            int("http.response.status_code", 200),
        ];
        let id = c.span_id.clone();
        let e = &mut out[entry.0].scope_spans[entry.1].spans[entry.2];
        e.kind = 2;
        e.parent_span_id = id;
    }
    out
}

/// A request for callee-first load: each trace of [`linked_resource_spans`] reaches the
/// gateway service by service from the last callee to the root, `lag` requests apart
/// (request `seed` carries service S−1 of batch `seed`, service S−2 of batch
/// `seed − lag`, …, never of batches before `first_seed`).
#[must_use]
pub fn callee_first_request(
    shape: &Shape,
    seed: u64,
    first_seed: u64,
    lag: u64,
) -> ExportTraceServiceRequest {
    let services = shape.services.max(1);
    let mut resource_spans = Vec::new();
    for j in 0..services as u64 {
        let Some(batch) = seed.checked_sub(j * lag).filter(|b| *b >= first_seed) else {
            break;
        };
        let k = services - 1 - j as usize;
        if let Some(rs) = linked_resource_spans(shape, batch).into_iter().nth(k) {
            resource_spans.push(rs);
        }
    }
    ExportTraceServiceRequest { resource_spans }
}

/// [`resource_spans`] as an OTLP export request.
#[must_use]
pub fn request(shape: &Shape, seed: u64) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: resource_spans(shape, seed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_deterministic_and_shaped() {
        let shape = Shape::default();
        let a = resource_spans(&shape, 1);
        assert_eq!(a, resource_spans(&shape, 1));
        assert_ne!(a, resource_spans(&shape, 2));
        assert_eq!(a.len(), 5);
        let spans: Vec<&Span> = a
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .collect();
        assert_eq!(spans.len(), 100);
        let traces: std::collections::HashSet<&Vec<u8>> =
            spans.iter().map(|s| &s.trace_id).collect();
        assert_eq!(traces.len(), 10);
        let ids: std::collections::HashSet<(&Vec<u8>, &Vec<u8>)> =
            spans.iter().map(|s| (&s.trace_id, &s.span_id)).collect();
        assert!(
            spans
                .iter()
                .filter(|s| !s.parent_span_id.is_empty())
                .all(|s| ids.contains(&(&s.trace_id, &s.parent_span_id)))
        );
        assert_eq!(
            spans.iter().filter(|s| s.parent_span_id.is_empty()).count(),
            50
        );
        assert!(
            spans
                .iter()
                .all(|s| s.trace_id.len() == 16 && s.span_id.len() == 8)
        );
        assert!(
            spans
                .iter()
                .all(|s| s.end_time_unix_nano >= s.start_time_unix_nano)
        );
        assert!(
            spans
                .iter()
                .any(|s| s.status.as_ref().is_some_and(|st| st.code == 2))
        );
        let big = Shape {
            services: 12,
            spans: 1000,
            extra_attributes: 3,
            attribute_len: 40,
            ..Shape::default()
        };
        let b = resource_spans(&big, 3);
        assert_eq!(b.len(), 12);
        assert!(b.iter().any(|r| {
            r.resource
                .as_ref()
                .is_some_and(|r| r.attributes[0].value == string("", "service-11").value)
        }));
        let first = &b[0].scope_spans[0].spans[0];
        let extra: Vec<&KeyValue> = first
            .attributes
            .iter()
            .filter(|kv| kv.key.starts_with("app.attr."))
            .collect();
        assert_eq!(extra.len(), 3);
        assert!(extra.iter().all(|kv| {
            matches!(&kv.value, Some(AnyValue { value: Some(any_value::Value::StringValue(v)) }) if v.len() == 40)
        }));
    }
}
