//! The Pinpoint exporter counts a span as failed only when it was not delivered: spans
//! given up on while the collector is down are dropped, not delivered later behind the
//! failed count's back. Uses the stand-in collector (Pinpoint's generated code).

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use prost::Message;
use serde_json::Value;

struct StandIn {
    child: Child,
    control: u16,
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn standin(port: u16) -> StandIn {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/pinpoint-collector");
    assert!(
        dir.join("node_modules").exists(),
        "run scripts/test.sh (or scripts/setup-test-peers.sh) to install the stand-in collector"
    );
    let mut child = Command::new("node")
        .arg(dir.join("server.js"))
        .args([
            "--port",
            &port.to_string(),
            "--control-port",
            "0",
            "--version",
            "3.1",
            "--exit-with-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("ports line");
    let ports: Value = serde_json::from_str(&line).expect("ports json");
    StandIn {
        child,
        control: ports["control"].as_u64().expect("control") as u16,
    }
}

async fn collector_spans(s: &StandIn) -> u64 {
    let t = reqwest::get(format!("http://127.0.0.1:{}/calltree", s.control))
        .await
        .expect("control")
        .text()
        .await
        .expect("text");
    let v: Value = serde_json::from_str(&t).expect("json");
    v["summary"]["spans"].as_u64().unwrap_or(0)
}

/// Sums a counter's samples in the Prometheus text for `exporter="pinpoint"`.
async fn metric(admin: std::net::SocketAddr, name: &str) -> u64 {
    let text = reqwest::get(format!("http://{admin}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains("exporter=\"pinpoint\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

async fn send(http: std::net::SocketAddr, traces: std::ops::Range<u8>) {
    let spans = traces
        .map(|t| common::span(t, 1, 1_700_000_000_000_000_000, 1_700_000_000_100_000_000))
        .collect();
    let r = reqwest::Client::new()
        .post(format!("http://{http}/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(common::request(spans).encode_to_vec())
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_given_up_on_are_dropped_not_delivered_later() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let yaml = format!(
        "receivers:\n  otlp:\n    http: {{ endpoint: 127.0.0.1:0 }}\n\
         exporters:\n  pinpoint:\n    type: pinpoint\n    host: 127.0.0.1\n    agent_port: {port}\n    span_port: {port}\n    \
         timeout: 1s\n    ping_interval: 20s\n    batch: {{ max_spans: 1000, timeout: 50ms }}\n    \
         retry: {{ initial: 100ms, max: 200ms, max_elapsed: 1s }}\n\
         admin: {{ endpoint: 127.0.0.1:0 }}\nservice: {{ shutdown_grace: 5s }}\n"
    );
    let gw = common::start(&yaml).await;
    let http = gw.http_addr.expect("http");
    // The collector is down: five root spans are retried for 1 s, then given up on.
    send(http, 1..6).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while metric(gw.admin_addr, "bridge_exporter_spans_failed_total").await < 5 {
        assert!(Instant::now() < deadline, "the batch was never given up on");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The collector comes up; three more spans follow.
    let s = standin(port);
    send(http, 10..13).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while collector_spans(&s).await < 3 {
        assert!(Instant::now() < deadline, "the new spans never arrived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let failed = metric(gw.admin_addr, "bridge_exporter_spans_failed_total").await;
    let delivered = collector_spans(&s).await;
    assert_eq!(failed, 5, "the given-up spans count as failed");
    assert_eq!(
        delivered, 3,
        "only the spans not counted as failed reach the collector"
    );
    gw.shutdown().await;
}
