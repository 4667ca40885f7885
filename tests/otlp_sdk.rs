//! Real traces from the OpenTelemetry Python SDK, over OTLP/gRPC and OTLP/HTTP
//! (protobuf, with and without gzip), and a hand-written OTLP/JSON body, come out of the
//! file exporter with ids, attributes, events, links, status and resource intact.

mod common;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value as AV};
use serde_json::{Value, json};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn any_to_json(v: Option<&AnyValue>) -> Value {
    match v.and_then(|v| v.value.as_ref()) {
        Some(AV::StringValue(s)) => json!(s),
        Some(AV::BoolValue(b)) => json!(b),
        Some(AV::IntValue(i)) => json!(i),
        Some(AV::DoubleValue(d)) => json!(d),
        Some(AV::ArrayValue(a)) => {
            Value::Array(a.values.iter().map(|x| any_to_json(Some(x))).collect())
        }
        other => json!(format!("{other:?}")),
    }
}

fn attrs(kvs: &[KeyValue]) -> serde_json::Map<String, Value> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), any_to_json(kv.value.as_ref())))
        .collect()
}

/// Checks every span the SDK reported against the gateway's output.
fn assert_same(sent: &Value, out: &[ExportTraceServiceRequest]) {
    assert_eq!(
        sent["exports_ok"],
        json!(true),
        "the SDK's exporter reported a failure"
    );
    let sent_spans = sent["spans"].as_array().expect("spans");
    let mut found = 0;
    for rs in out.iter().flat_map(|r| &r.resource_spans) {
        let resource = attrs(&rs.resource.as_ref().expect("resource").attributes);
        for (k, v) in sent["resource"].as_object().expect("resource") {
            assert_eq!(resource.get(k), Some(v), "resource attribute {k}");
        }
        for ss in &rs.scope_spans {
            let scope = ss.scope.as_ref().expect("scope");
            assert_eq!(
                (scope.name.as_str(), scope.version.as_str()),
                ("bridge.tests", "1.2.3")
            );
            for span in &ss.spans {
                let id = hex(&span.span_id);
                let want = sent_spans
                    .iter()
                    .find(|s| s["span_id"] == json!(id))
                    .unwrap_or_else(|| panic!("unexpected span {id}"));
                found += 1;
                assert_eq!(
                    hex(&span.trace_id),
                    sent["trace_id"].as_str().expect("trace id")
                );
                assert_eq!(json!(span.name), want["name"]);
                assert_eq!(json!(hex(&span.parent_span_id)), want["parent_span_id"]);
                // Python's SpanKind starts at INTERNAL = 0; OTLP's at INTERNAL = 1.
                assert_eq!(json!(span.kind - 1), want["kind"], "kind of {}", span.name);
                assert_eq!(json!(span.start_time_unix_nano), want["start"]);
                assert_eq!(json!(span.end_time_unix_nano), want["end"]);
                assert_eq!(
                    Value::Object(attrs(&span.attributes)),
                    want["attributes"],
                    "attributes of {}",
                    span.name
                );
                let events: Vec<Value> = span
                    .events
                    .iter()
                    .map(|e| json!({"name": e.name, "attributes": Value::Object(attrs(&e.attributes))}))
                    .collect();
                assert_eq!(
                    Value::Array(events),
                    want["events"],
                    "events of {}",
                    span.name
                );
                let links: Vec<Value> = span
                    .links
                    .iter()
                    .map(|l| json!({"trace_id": hex(&l.trace_id), "span_id": hex(&l.span_id), "attributes": Value::Object(attrs(&l.attributes))}))
                    .collect();
                assert_eq!(Value::Array(links), want["links"], "links of {}", span.name);
                let status = span.status.clone().unwrap_or_default();
                assert_eq!(
                    json!({"code": status.code, "message": status.message}),
                    want["status"],
                    "status of {}",
                    span.name
                );
            }
        }
    }
    assert_eq!(found, sent_spans.len(), "every span arrives exactly once");
}

async fn sdk_round_trip(protocol: &str, compression: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("spans.jsonl");
    let gw = common::start(&common::file_config(&out, "")).await;
    let endpoint = match protocol {
        "grpc" => format!("http://{}", gw.grpc_addr.expect("grpc")),
        _ => format!("http://{}/v1/traces", gw.http_addr.expect("http")),
    };
    let sent = tokio::task::spawn_blocking({
        let (p, c) = (protocol.to_owned(), compression.to_owned());
        move || {
            common::run_python(
                "send_trace.py",
                &[
                    "--protocol",
                    &p,
                    "--endpoint",
                    &endpoint,
                    "--compression",
                    &c,
                ],
            )
        }
    })
    .await
    .expect("python");
    let n = sent["spans"].as_array().map_or(0, Vec::len);
    assert_eq!(n, 4);
    let lines = common::wait_for_spans(&out, n).await;
    assert_same(&sent, &lines);
    let report = gw.shutdown().await;
    assert!(report.undrained.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_over_grpc_with_gzip() {
    sdk_round_trip("grpc", "gzip").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_over_grpc_plain() {
    sdk_round_trip("grpc", "none").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_over_http_protobuf() {
    sdk_round_trip("http", "none").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_over_http_protobuf_with_gzip() {
    sdk_round_trip("http", "gzip").await;
}

/// OTLP/JSON with its quirks: upper-case hex ids, integer enums, 64-bit integers as
/// strings and as numbers, an unknown field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_written_otlp_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("spans.jsonl");
    let gw = common::start(&common::file_config(&out, "")).await;
    let body = json!({
        "resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-svc"}}]},
            "scopeSpans": [{
                "scope": {"name": "hand", "version": "0.1"},
                "spans": [{
                    "traceId": "5B8EFFF798038103D269B633813FC60C",
                    "spanId": "EEE19B7EC3C1B174",
                    "parentSpanId": "",
                    "name": "GET /json",
                    "kind": 2,
                    "startTimeUnixNano": "1544712660000000000",
                    "endTimeUnixNano": 1544712661000000000u64,
                    "attributes": [
                        {"key": "http.response.status_code", "value": {"intValue": "200"}},
                        {"key": "big", "value": {"intValue": 9007199254740993i64}},
                        {"key": "ok", "value": {"boolValue": true}}
                    ],
                    "events": [{"timeUnixNano": "1544712660500000000", "name": "evt", "attributes": []}],
                    "links": [{"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331"}],
                    "status": {"code": 2, "message": "boom"},
                    "somethingNew": {"ignored": true}
                }]
            }]
        }]
    });
    let client = reqwest::Client::new();
    let resp = client
        .post(format!("http://{}/v1/traces", gw.http_addr.expect("http")))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let reply: Value = resp.json_text().await;
    assert_eq!(reply.get("partialSuccess"), None, "{reply}");

    let lines = common::wait_for_spans(&out, 1).await;
    let spans = common::spans_of(&lines);
    assert_eq!(spans.len(), 1);
    let s = &spans[0].2;
    assert_eq!(hex(&s.trace_id), "5b8efff798038103d269b633813fc60c");
    assert_eq!(hex(&s.span_id), "eee19b7ec3c1b174");
    assert_eq!(
        (s.kind, s.start_time_unix_nano, s.end_time_unix_nano),
        (2, 1_544_712_660_000_000_000, 1_544_712_661_000_000_000)
    );
    let a = attrs(&s.attributes);
    assert_eq!(a["http.response.status_code"], json!(200));
    assert_eq!(a["big"], json!(9_007_199_254_740_993i64));
    assert_eq!(
        s.status.as_ref().map(|st| (st.code, st.message.as_str())),
        Some((2, "boom"))
    );
    assert_eq!(hex(&s.links[0].span_id), "b7ad6b7169203331");
    gw.shutdown().await;
}

/// The reqwest build used here has no `json` feature; parse the text ourselves.
trait JsonText {
    async fn json_text(self) -> Value;
}

impl JsonText for reqwest::Response {
    async fn json_text(self) -> Value {
        let t = self.text().await.expect("body");
        serde_json::from_str(&t).unwrap_or_else(|e| panic!("not JSON ({e}): {t}"))
    }
}
