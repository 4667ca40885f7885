//! Retries against the capture server: 503 with Retry-After, 400, connection refused.

use std::time::{Duration, Instant};

use crate::common;
use crate::common::capture::{start_capture, wait_until};

fn retry_config(name: &str, endpoint: &str, retry: &str) -> String {
    format!(
        "receivers:\n  otlp:\n    http: {{ endpoint: 127.0.0.1:0 }}\n\
         exporters:\n  {name}:\n    type: zipkin\n    endpoint: {endpoint}\n    timeout: 2s\n    batch: {{ timeout: 20ms }}\n    retry: {retry}\n\
         admin: {{ endpoint: 127.0.0.1:0 }}\nservice: {{ shutdown_grace: 2s }}\n"
    )
}

async fn send_spans(gw: &otel_pinpoint_bridge::app::Running, n: u8) {
    let spans = (1..=n)
        .map(|i| common::span(7, i, 1_700_000_000_000_000_000, 1_700_000_000_001_000_000))
        .collect();
    let body = prost::Message::encode_to_vec(&common::request(spans));
    let resp = reqwest::Client::new()
        .post(format!("http://{}/v1/traces", gw.http_addr.expect("http")))
        .header("content-type", "application/x-protobuf")
        .body(body)
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), 200);
}

/// The value of `name{labels...}` in the gateway's /metrics, 0 when absent.
async fn metric(
    gw: &otel_pinpoint_bridge::app::Running,
    name: &str,
    labels: &[(&str, &str)],
) -> f64 {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_503_honouring_retry_after_then_delivers_once() {
    let (addr, cap) = start_capture(vec![(503, Some("1"))]).await;
    let cfg = retry_config(
        "z503",
        &format!("http://{addr}/api/v2/spans"),
        "{ initial: 10ms, max: 5s }",
    );
    let gw = common::start(&cfg).await;
    send_spans(&gw, 3).await;
    wait_until("delivery", || {
        cap.accepted_spans("/api/v2/spans").len() == 3
    })
    .await;
    let reqs = cap.requests("/api/v2/spans");
    assert_eq!(
        reqs.iter().map(|r| r.status).collect::<Vec<_>>(),
        [503, 202]
    );
    assert_eq!(reqs[0].body, reqs[1].body, "a retry sends the same body");
    let waited = reqs[1].at - reqs[0].at;
    assert!(
        waited >= Duration::from_millis(900),
        "Retry-After: 1 not honoured ({waited:?})"
    );
    assert_eq!(
        metric(
            &gw,
            "bridge_exporter_retries_total",
            &[("exporter", "z503")]
        )
        .await,
        1.0
    );
    assert_eq!(
        metric(
            &gw,
            "bridge_exporter_spans_sent_total",
            &[("exporter", "z503")]
        )
        .await,
        3.0
    );
    assert_eq!(
        metric(
            &gw,
            "bridge_exporter_http_requests_total",
            &[("exporter", "z503"), ("outcome", "5xx")]
        )
        .await,
        1.0
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_request_is_not_retried_and_counts_as_failed() {
    let (addr, cap) = start_capture(vec![(400, None)]).await;
    let cfg = retry_config(
        "z400",
        &format!("http://{addr}/api/v2/spans"),
        "{ initial: 10ms, max: 20ms }",
    );
    let gw = common::start(&cfg).await;
    send_spans(&gw, 2).await;
    let failed = || {
        metric(
            &gw,
            "bridge_exporter_spans_failed_total",
            &[("exporter", "z400"), ("reason", "permanent")],
        )
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while failed().await < 2.0 {
        assert!(Instant::now() < deadline, "never counted as failed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await; // time enough for a (wrong) retry
    assert_eq!(
        cap.requests("/api/v2/spans").len(),
        1,
        "a 400 must not be retried"
    );
    assert_eq!(
        metric(
            &gw,
            "bridge_exporter_retries_total",
            &[("exporter", "z400")]
        )
        .await,
        0.0
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_refused_is_retried() {
    // A port with nothing listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let cfg = retry_config(
        "zrefused",
        &format!("http://127.0.0.1:{port}/api/v2/spans"),
        "{ initial: 10ms, max: 20ms, max_elapsed: 300ms }",
    );
    let gw = common::start(&cfg).await;
    send_spans(&gw, 1).await;
    let exhausted = || {
        metric(
            &gw,
            "bridge_exporter_spans_failed_total",
            &[("exporter", "zrefused"), ("reason", "retries_exhausted")],
        )
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while exhausted().await < 1.0 {
        assert!(Instant::now() < deadline, "retries never ran out");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        metric(
            &gw,
            "bridge_exporter_retries_total",
            &[("exporter", "zrefused")]
        )
        .await
            >= 2.0
    );
    assert!(
        metric(
            &gw,
            "bridge_exporter_http_requests_total",
            &[("exporter", "zrefused"), ("outcome", "connect_error")]
        )
        .await
            >= 3.0
    );
    gw.shutdown().await;
}
