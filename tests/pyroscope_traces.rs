//! Trace-derived flame graphs end to end: OTLP spans in, `/ingest?format=folded` out to
//! a stand-in Pyroscope, with exact folded lines, name and labels for a trace whose self
//! times are computed by hand; the request's shape compared with what Pyroscope's
//! official Python client sends to the same stand-in; the stack cap; a 5xx retried.

mod common;
mod pyroscope_support;

use std::collections::BTreeSet;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use pyroscope_support::{Captured, StandIn, metric, metrics_text};

const MS: u64 = 1_000_000;

fn config(standin: &StandIn, extra: &str) -> String {
    format!(
        "receivers:\n  otlp:\n    grpc: {{ endpoint: 127.0.0.1:0 }}\n    http: {{ endpoint: 127.0.0.1:0 }}\n\
         exporters:\n  pyro:\n    type: pyroscope\n    endpoint: {}\n    tenant: team-a\n    auth: {{ basic: {{ username: u, password: p }} }}\n\
         \x20   interval: 1s\n    labels_from_resource: [deployment.environment]\n    batch: {{ max_spans: 100, timeout: 20ms }}\n\
         \x20   retry: {{ initial: 100ms, max: 1s, max_elapsed: 10s }}\n{extra}\
         admin: {{ endpoint: 127.0.0.1:0 }}\nservice: {{ shutdown_grace: 5s }}\n",
        standin.url()
    )
}

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn span(id: u8, parent: u8, name: &str, kind: SpanKind, start_ms: u64, end_ms: u64) -> Span {
    let t0 = 1_700_000_000_000_000_000u64;
    Span {
        trace_id: vec![0x7e; 16],
        span_id: vec![id; 8],
        parent_span_id: if parent == 0 { vec![] } else { vec![parent; 8] },
        name: name.into(),
        kind: kind as i32,
        start_time_unix_nano: t0 + start_ms * MS,
        end_time_unix_nano: t0 + end_ms * MS,
        ..Default::default()
    }
}

fn resource(service: &str, spans: Vec<Span>) -> ResourceSpans {
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![
                kv("service.name", service),
                kv("deployment.environment", "prod"),
            ],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// `shop.checkout` handles GET /cart and calls `pricing`. Self times by hand (ms):
/// GET /cart: 100 - |[10,40] ∪ [30,60] ∪ [60,90]| = 20; load cart: 30 - 20 = 10;
/// SELECT cart: 20; price;list (sanitized to price_list): 30; call pricing: 30 (its
/// child is in another service); POST /price: 20 - 10 = 10; compute: 10.
fn known_trace() -> ExportTraceServiceRequest {
    use SpanKind::*;
    ExportTraceServiceRequest {
        resource_spans: vec![
            resource(
                "shop.checkout",
                vec![
                    span(0xA, 0, "GET /cart", Server, 0, 100),
                    span(0xB, 0xA, "load cart", Internal, 10, 40),
                    span(0xC, 0xB, "SELECT cart", Client, 15, 35),
                    span(0xD, 0xA, "price;list", Internal, 30, 60),
                    span(0xE, 0xA, "call pricing", Client, 60, 90),
                ],
            ),
            resource(
                "pricing",
                vec![
                    span(0xF, 0xE, "POST /price", Server, 65, 85),
                    span(0x1F, 0xF, "compute", Internal, 70, 80),
                ],
            ),
        ],
    }
}

async fn post_traces(http: std::net::SocketAddr, req: &ExportTraceServiceRequest) {
    let resp = reqwest::Client::new()
        .post(format!("http://{http}/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(req.encode_to_vec())
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), 200);
}

fn ours(c: &Captured) -> bool {
    c.param("spyName") == Some("otel-pinpoint-bridge")
}

fn lines(body: &[u8]) -> Vec<String> {
    String::from_utf8(body.to_vec())
        .expect("utf8")
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_trace_gives_exact_folded_lines_name_and_labels() {
    let standin = StandIn::start().await;
    let gw = common::start(&config(&standin, "    upstream_prefix: true\n")).await;
    post_traces(gw.http_addr.expect("http"), &known_trace()).await;
    let got = standin.wait_for(2, ours).await;
    assert_eq!(got.len(), 2, "one request per service: {got:?}");
    let by_service = |s: &str| {
        got.iter()
            .find(|c| c.param("name").is_some_and(|n| n.starts_with(s)))
            .unwrap_or_else(|| panic!("no request for {s}: {got:?}"))
    };

    let checkout = by_service("shop.checkout.");
    assert_eq!(
        checkout.param("name"),
        Some("shop.checkout.wall{service_name=shop.checkout,deployment_environment=prod}")
    );
    assert_eq!(
        lines(&checkout.body),
        [
            "GET /cart 20000000",
            "GET /cart;call pricing 30000000",
            "GET /cart;load cart 10000000",
            "GET /cart;load cart;SELECT cart 20000000",
            "GET /cart;price_list 30000000",
        ]
    );
    let pricing = by_service("pricing.");
    assert_eq!(
        pricing.param("name"),
        Some("pricing.wall{service_name=pricing,deployment_environment=prod}")
    );
    assert_eq!(
        lines(&pricing.body),
        [
            "[shop.checkout];POST /price 10000000",
            "[shop.checkout];POST /price;compute 10000000"
        ]
    );
    for c in [checkout, pricing] {
        assert_eq!((c.method.as_str(), c.path.as_str()), ("POST", "/ingest"));
        let p = |k| c.param(k).unwrap_or_default();
        assert_eq!(
            (
                p("format"),
                p("sampleRate"),
                p("units"),
                p("aggregationType")
            ),
            ("folded", "1000000000", "samples", "sum")
        );
        let (from, until): (u64, u64) = (
            p("from").parse().expect("from"),
            p("until").parse().expect("until"),
        );
        assert!(until > from && until - from <= 3, "{from}..{until}");
        assert_eq!(c.header("x-scope-orgid"), Some("team-a"));
        assert_eq!(c.header("authorization"), Some("Basic dTpw"));
        assert_eq!(c.header("content-type"), Some("binary/octet-stream"));
    }
    gw.shutdown().await;
}

/// Pyroscope's official Python client (pyroscope-io 0.8.16, the last line that pushes
/// to `/ingest`) and the exporter, against the same stand-in with the same tenant and
/// credentials: same path and method, same content type, same tenant and
/// authorization headers, and the client's query parameters are all in ours (ours add
/// `units` and `aggregationType`, which the client leaves to their defaults).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_shape_matches_the_official_python_client() {
    let standin = StandIn::start().await;
    let gw = common::start(&config(&standin, "")).await;
    post_traces(gw.http_addr.expect("http"), &known_trace()).await;
    let server = standin.url();
    let python = tokio::task::spawn_blocking(move || {
        common::run_python(
            "pyroscope_client.py",
            &[
                "--server",
                &server,
                "--app",
                "my.app",
                "--tenant",
                "team-a",
                "--user",
                "u",
                "--password",
                "p",
            ],
        )
    });
    let bridge = standin.wait_for(1, ours).await;
    assert_eq!(python.await.expect("python")["ok"], true);
    let official = standin
        .wait_for(1, |c| c.param("spyName") == Some("pyspy"))
        .await;
    assert!(!official.is_empty(), "the Python client sent nothing");
    let (theirs, ours) = (&official[0], &bridge[0]);

    assert_eq!(
        (theirs.method.as_str(), theirs.path.as_str()),
        (ours.method.as_str(), ours.path.as_str())
    );
    for h in ["content-type", "x-scope-orgid", "authorization"] {
        assert_eq!(theirs.header(h), ours.header(h), "header {h}");
    }
    let keys = |c: &Captured| {
        c.query
            .iter()
            .map(|(k, _)| k.clone())
            .collect::<BTreeSet<_>>()
    };
    let (tk, ok) = (keys(theirs), keys(ours));
    assert!(tk.is_subset(&ok), "client sends {tk:?}, we send {ok:?}");
    let extra: Vec<&String> = ok.difference(&tk).collect();
    assert_eq!(extra, ["aggregationType", "units"]);
    for c in [theirs, ours] {
        let n = |k| c.param(k).and_then(|v| v.parse::<u64>().ok());
        let (from, until) = (n("from").expect("from"), n("until").expect("until"));
        assert!(until >= from && from > 1_600_000_000, "{c:?}");
        assert!(n("sampleRate").is_some_and(|r| r > 0), "{c:?}");
    }
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stack_overflow_is_counted_and_kept_under_one_stack() {
    let standin = StandIn::start().await;
    let yaml = config(&standin, "    max_stacks_per_service: 2\n").replace("pyro:", "pyro-cap:");
    let gw = common::start(&yaml).await;
    let mut trace = known_trace();
    trace.resource_spans.truncate(1);
    post_traces(gw.http_addr.expect("http"), &trace).await;
    let got = standin.wait_for(1, ours).await;
    // Depth first: GET /cart and load cart fit; SELECT cart (20), price_list (30) and
    // call pricing (30) go to [overflow].
    assert_eq!(
        lines(&got[0].body),
        [
            "GET /cart 20000000",
            "GET /cart;load cart 10000000",
            "[overflow] 80000000"
        ]
    );
    let text = metrics_text(gw.admin_addr).await;
    assert_eq!(
        metric(
            &text,
            "bridge_pyroscope_stack_overflow_spans_total",
            &[("exporter", "pyro-cap")]
        ),
        3.0,
        "{text}"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried_and_counted() {
    let standin = StandIn::start().await;
    standin.answer_next(&[(502, None), (429, Some("1"))]);
    let yaml = config(&standin, "").replace("pyro:", "pyro-5xx:");
    let gw = common::start(&yaml).await;
    let mut trace = known_trace();
    trace.resource_spans.truncate(1);
    post_traces(gw.http_addr.expect("http"), &trace).await;
    let got = standin.wait_for(3, ours).await;
    assert_eq!(got.len(), 3, "502, then 429, then accepted");
    assert!(
        got.iter().all(|c| c.body == got[0].body),
        "the same request each time"
    );
    let waited = got[2].at - got[1].at;
    assert!(
        waited >= Duration::from_millis(950),
        "Retry-After: 1 honoured ({waited:?})"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let text = metrics_text(gw.admin_addr).await;
    let count = |outcome| {
        metric(
            &text,
            "bridge_pyroscope_requests_total",
            &[
                ("exporter", "pyro-5xx"),
                ("format", "folded"),
                ("outcome", outcome),
            ],
        )
    };
    assert_eq!(
        (count("retry"), count("ok"), count("rejected")),
        (2.0, 1.0, 0.0)
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_push_is_not_retried() {
    let standin = StandIn::start().await;
    standin.answer_next(&[(400, None)]);
    let yaml = config(&standin, "").replace("pyro:", "pyro-400:");
    let gw = common::start(&yaml).await;
    let mut trace = known_trace();
    trace.resource_spans.truncate(1);
    post_traces(gw.http_addr.expect("http"), &trace).await;
    let got = standin.wait_for(1, ours).await;
    assert_eq!(got.len(), 1);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        standin.wait_for(1, ours).await.len(),
        1,
        "no retry after a 400"
    );
    let text = metrics_text(gw.admin_addr).await;
    let count = |outcome| {
        metric(
            &text,
            "bridge_pyroscope_requests_total",
            &[
                ("exporter", "pyro-400"),
                ("format", "folded"),
                ("outcome", outcome),
            ],
        )
    };
    assert_eq!(
        (count("rejected"), count("retry"), count("ok")),
        (1.0, 0.0, 0.0)
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_pushes_what_is_held() {
    let standin = StandIn::start().await;
    let yaml = config(&standin, "")
        .replace("pyro:", "pyro-drain:")
        .replace("interval: 1s", "interval: 60s");
    let gw = common::start(&yaml).await;
    post_traces(gw.http_addr.expect("http"), &known_trace()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        standin.requests().is_empty(),
        "nothing before the interval ends"
    );
    let report = gw.shutdown().await;
    assert!(report.undrained.is_empty());
    let got = standin.requests();
    assert_eq!(got.len(), 2, "both services pushed on shutdown: {got:?}");
    assert!(got.iter().all(ours));
}
