//! Bad input and overload, over both protocols: every case gets its OTLP status and a
//! message naming the problem, is counted in /metrics, and the gateway keeps serving.

mod common;

use std::io::Write;
use std::sync::Arc;

use flate2::Compression;
use flate2::write::GzEncoder;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use otel_pinpoint_bridge::config;
use otel_pinpoint_bridge::listener::{Limits, Options};
use otel_pinpoint_bridge::pipeline::Pipeline;
use otel_pinpoint_bridge::pipeline::router::Router;
use otel_pinpoint_bridge::receiver::{Intake, otlp_grpc, otlp_http};
use prost::Message;
use serde_json::Value;
use tonic::Code;

/// `google.rpc.Status` as the HTTP receiver sends it.
#[derive(Clone, PartialEq, Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

async fn post(
    url: &str,
    ct: &str,
    encoding: Option<&str>,
    body: Vec<u8>,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", ct)
        .body(body);
    if let Some(e) = encoding {
        req = req.header("content-encoding", e);
    }
    let resp = req.send().await.expect("post");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.bytes().await.expect("body").to_vec())
}

fn raw_grpc(target: &str, args: &[&str]) -> Value {
    let mut all = vec!["--target", target];
    all.extend_from_slice(args);
    common::run_python("raw_grpc.py", &all)
}

async fn metrics_text(admin: std::net::SocketAddr) -> String {
    reqwest::get(format!("http://{admin}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

/// Sum of a counter's samples whose label set contains every `labels` pair.
fn counter(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|x| l.contains(x)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_over_http() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("spans.jsonl");
    let gw = common::start(&common::file_config(&out, "")).await;
    let url = format!("http://{}/v1/traces", gw.http_addr.expect("http"));
    let before = metrics_text(gw.admin_addr).await;

    // Malformed protobuf: 400 with a google.rpc.Status naming the problem.
    let (code, h, body) = post(
        &url,
        "application/x-protobuf",
        None,
        vec![0x0a, 0xff, 0xff, 0xff],
    )
    .await;
    assert_eq!(code, 400);
    assert_eq!(h["content-type"], "application/x-protobuf");
    let st = RpcStatus::decode(&body[..]).expect("rpc status");
    assert!(st.message.contains("invalid protobuf"), "{}", st.message);

    // Malformed JSON: 400 with a JSON status.
    let (code, h, body) = post(
        &url,
        "application/json",
        None,
        b"{\"resourceSpans\": [{".to_vec(),
    )
    .await;
    assert_eq!(
        (code, h["content-type"].to_str().ok()),
        (400, Some("application/json"))
    );
    let st: Value = serde_json::from_slice(&body).expect("json status");
    assert!(
        st["message"]
            .as_str()
            .is_some_and(|m| m.contains("invalid OTLP/JSON")),
        "{st}"
    );

    // A bad hex id is undecodable JSON, not a per-span rejection.
    let bad_hex =
        r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz","spanId":"01"}]}]}]}"#;
    assert_eq!(
        post(&url, "application/json", None, bad_hex.into()).await.0,
        400
    );

    // Oversize, plain and as a small gzip body that inflates past the limit (64 KiB).
    let big = common::request(vec![common::span(1, 1, 1, 2); 2000]).encode_to_vec();
    assert!(big.len() > 64 * 1024);
    let (code, _, body) = post(&url, "application/x-protobuf", None, big.clone()).await;
    assert_eq!(code, 413);
    assert!(
        RpcStatus::decode(&body[..])
            .expect("status")
            .message
            .contains("larger than the limit")
    );
    let bomb = gzip(&big);
    assert!(bomb.len() < 64 * 1024);
    assert_eq!(
        post(&url, "application/x-protobuf", Some("gzip"), bomb)
            .await
            .0,
        413
    );

    // Broken gzip, unknown encoding, unknown content type.
    assert_eq!(
        post(
            &url,
            "application/x-protobuf",
            Some("gzip"),
            b"nope".to_vec()
        )
        .await
        .0,
        400
    );
    let (code, _, body) = post(&url, "application/x-protobuf", Some("br"), vec![]).await;
    assert_eq!(code, 400);
    assert!(
        RpcStatus::decode(&body[..])
            .expect("status")
            .message
            .contains("unsupported Content-Encoding `br`")
    );
    assert_eq!(post(&url, "text/plain", None, b"hi".to_vec()).await.0, 415);

    // Per-span rejection: one good span, one all-zero trace id, one ending before it starts.
    let req = common::request(vec![
        common::span(7, 1, 10, 20),
        common::span(0, 2, 10, 20),
        common::span(7, 3, 30, 20),
    ]);
    let (code, _, body) = post(
        &url,
        "application/x-protobuf",
        Some("gzip"),
        gzip(&req.encode_to_vec()),
    )
    .await;
    assert_eq!(code, 200);
    let resp = ExportTraceServiceResponse::decode(&body[..]).expect("response");
    let ps = resp.partial_success.expect("partial success");
    assert_eq!(ps.rejected_spans, 2);
    assert!(
        ps.error_message.contains("spans[1]: trace_id is all zeros"),
        "{}",
        ps.error_message
    );
    assert!(
        ps.error_message
            .contains("spans[2]: end_time_unix_nano is before"),
        "{}",
        ps.error_message
    );
    // ...and the good span still arrives.
    let spans = common::spans_of(&common::wait_for_spans(&out, 1).await);
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].2.span_id, vec![1; 8]);

    // An empty request succeeds.
    assert_eq!(
        post(&url, "application/x-protobuf", None, vec![]).await.0,
        200
    );

    let after = metrics_text(gw.admin_addr).await;
    let delta = |name: &str, labels: &[&str]| {
        counter(&after, name, labels) - counter(&before, name, labels)
    };
    let failed = "bridge_receiver_requests_failed_total";
    let r = "receiver=\"otlp_http\"";
    assert!(
        delta(failed, &[r, "reason=\"malformed\""]) >= 3.0,
        "{after}"
    );
    assert!(delta(failed, &[r, "reason=\"too_large\""]) >= 2.0);
    assert!(delta(failed, &[r, "reason=\"bad_encoding\""]) >= 2.0);
    assert!(delta(failed, &[r, "reason=\"unsupported_media_type\""]) >= 1.0);
    let rejected = "bridge_receiver_spans_rejected_total";
    assert!(delta(rejected, &[r, "reason=\"invalid_trace_id\""]) >= 1.0);
    assert!(delta(rejected, &[r, "reason=\"end_before_start\""]) >= 1.0);
    assert!(delta("bridge_receiver_spans_accepted_total", &[r]) >= 1.0);
    assert!(
        after.contains("bridge_receiver_request_duration_seconds_bucket"),
        "histogram exported"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_over_grpc() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("spans.jsonl");
    let gw = common::start(&common::file_config(&out, "")).await;
    let target = gw.grpc_addr.expect("grpc").to_string();
    let before = metrics_text(gw.admin_addr).await;

    let t = target.clone();
    let (malformed, big, bomb) = tokio::task::spawn_blocking(move || {
        (
            raw_grpc(&t, &["--hex", "0affffff"]),
            raw_grpc(&t, &["--zeros", "100000"]),
            raw_grpc(&t, &["--zeros", "100000", "--gzip"]),
        )
    })
    .await
    .expect("python");
    assert_eq!(malformed["code"], "INVALID_ARGUMENT", "{malformed}");
    assert!(
        malformed["details"]
            .as_str()
            .is_some_and(|d| d.contains("malformed request")),
        "{malformed}"
    );
    assert_eq!(big["code"], "RESOURCE_EXHAUSTED", "{big}");
    assert!(
        big["details"].as_str().is_some_and(|d| d.contains("limit")),
        "{big}"
    );
    assert_eq!(bomb["code"], "RESOURCE_EXHAUSTED", "{bomb}");

    // Partial success over gRPC.
    let mut client = TraceServiceClient::connect(format!("http://{target}"))
        .await
        .expect("connect");
    let req = common::request(vec![common::span(9, 1, 10, 20), common::span(9, 0, 10, 20)]);
    let resp = client.export(req).await.expect("export").into_inner();
    let ps = resp.partial_success.expect("partial success");
    assert_eq!(ps.rejected_spans, 1);
    assert!(
        ps.error_message.contains("span_id is all zeros"),
        "{}",
        ps.error_message
    );
    assert_eq!(
        common::spans_of(&common::wait_for_spans(&out, 1).await).len(),
        1
    );

    let after = metrics_text(gw.admin_addr).await;
    let delta = |name: &str, labels: &[&str]| {
        counter(&after, name, labels) - counter(&before, name, labels)
    };
    let r = "receiver=\"otlp_grpc\"";
    assert!(
        delta(
            "bridge_receiver_requests_failed_total",
            &[r, "reason=\"malformed\""]
        ) >= 1.0,
        "{after}"
    );
    assert!(
        delta(
            "bridge_receiver_requests_failed_total",
            &[r, "reason=\"too_large\""]
        ) >= 2.0,
        "{after}"
    );
    assert!(
        delta(
            "bridge_receiver_spans_rejected_total",
            &[r, "reason=\"invalid_span_id\""]
        ) >= 1.0
    );
    gw.shutdown().await;
}

/// With no worker draining it, a queue fills up; both receivers then answer with a
/// retryable status, and nothing is taken for any exporter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_queue_is_refused_with_a_retryable_status() {
    let yaml = "receivers:\n  otlp:\n    grpc: { endpoint: 127.0.0.1:0 }\nexporters:\n  stuck:\n    type: null\n    queue: { max_spans: 4 }\n    batch: { max_spans: 4 }\n  other:\n    type: null\n";
    let cfg = config::parse(yaml, &|_| None).expect("config");
    // The queues exist but nothing consumes them: an exporter that never finishes.
    let (pipeline, _queues) = Pipeline::new(&cfg.exporters, Router::all(2));
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let http = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let (ga, ha) = (
        grpc.local_addr().expect("addr"),
        http.local_addr().expect("addr"),
    );
    let gi = Arc::new(Intake::new(Arc::clone(&pipeline), "otlp_grpc"));
    let hi = Arc::new(Intake::new(Arc::clone(&pipeline), "otlp_http"));
    let plain = |name| Options::plain(name, Limits::RECEIVER);
    tokio::spawn(otlp_grpc::serve(
        grpc,
        plain("otlp_grpc"),
        gi,
        1 << 20,
        std::future::pending(),
    ));
    tokio::spawn(otlp_http::serve(
        http,
        plain("otlp_http"),
        hi,
        1 << 20,
        std::future::pending(),
    ));

    let three = || {
        common::request(vec![
            common::span(5, 1, 1, 2),
            common::span(5, 2, 1, 2),
            common::span(5, 3, 1, 2),
        ])
    };
    let mut client = TraceServiceClient::connect(format!("http://{ga}"))
        .await
        .expect("connect");
    client.export(three()).await.expect("first fits");
    let err = client
        .export(three())
        .await
        .expect_err("second does not fit");
    assert_eq!(err.code(), Code::Unavailable);
    assert!(
        err.message().contains("queue of exporter `stuck` is full"),
        "{}",
        err.message()
    );

    let url = format!("http://{ha}/v1/traces");
    let (code, headers, body) = post(
        &url,
        "application/x-protobuf",
        None,
        three().encode_to_vec(),
    )
    .await;
    assert_eq!(code, 429);
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(RpcStatus::decode(&body[..]).expect("status").code, 14);

    // The refused requests took nothing from the exporter that had room.
    let stats = pipeline.stats();
    assert_eq!((stats[0].queued(), stats[1].queued()), (3, 3));

    pipeline.close();
    let (code, headers, _) = post(
        &url,
        "application/x-protobuf",
        None,
        three().encode_to_vec(),
    )
    .await;
    assert_eq!((code, headers.get("retry-after").is_some()), (503, true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gw = common::start(&common::file_config(&dir.path().join("s.jsonl"), "")).await;
    let get = |p: &str| reqwest::get(format!("http://{}{p}", gw.admin_addr));
    assert_eq!(get("/healthz").await.expect("healthz").status(), 200);
    assert_eq!(get("/readyz").await.expect("readyz").status(), 200);
    let page = get("/").await.expect("status").text().await.expect("text");
    assert!(page.contains("<td>out</td><td>file</td>"), "{page}");
    assert!(page.contains("otlp_grpc") && page.contains("otlp_http"));
    let m = get("/metrics")
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        m.contains("bridge_queue_capacity_spans{exporter=\"out\"} 100000"),
        "{m}"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn translate_endpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gw = common::start(&common::file_config(&dir.path().join("s.jsonl"), "")).await;
    let url = format!("http://{}/v1/context/translate", gw.admin_addr);
    let post = |body: String| {
        let url = url.clone();
        async move {
            let r = reqwest::Client::new()
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .expect("post");
            let code = r.status().as_u16();
            (
                code,
                serde_json::from_str::<Value>(&r.text().await.expect("text")).expect("json"),
            )
        }
    };
    let (code, t) = post(r#"{"headers": {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"}}"#.into()).await;
    assert_eq!(code, 200, "{t}");
    assert_eq!(t["direction"], "w3c_to_pinpoint", "{t}");
    assert!(
        t["headers"]
            .to_string()
            .contains("\"Pinpoint-Sampled\",\"s0\""),
        "unsampled flows through: {t}"
    );
    let (code, e) = post(r#"{"headers": {"traceparent": "00-00000000000000000000000000000000-b7ad6b7169203331-01"}}"#.into()).await;
    assert_eq!(code, 400);
    assert!(
        e["error"].as_str().is_some_and(|m| m.contains("all zero")),
        "{e}"
    );
    let (code, e) = post("{\"nope\": 1}".into()).await;
    assert_eq!(code, 400);
    assert!(
        e["error"]
            .as_str()
            .is_some_and(|m| m.contains("invalid request body")),
        "{e}"
    );
    gw.shutdown().await;
}
