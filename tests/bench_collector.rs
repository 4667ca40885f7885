//! The benchmark peers of issue 17, as the benchmarks run them: the real binary's
//! `bench-collector` (a blackhole Pinpoint collector) behind a gateway's Pinpoint
//! exporter on its defaults, fed by `loadgen --pool` (pre-encoded requests with their
//! trace ids rewritten per round). Every span loadgen had accepted is exported, and the
//! collector counts exactly the span and chunk messages the exporter says it built.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use otel_pinpoint_bridge::loadgen;
use otel_pinpoint_bridge::testdata::Shape;
use serde_json::Value;

struct Collector {
    child: Child,
    port: u16,
    control: u16,
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn collector() -> Collector {
    let mut child = Command::new(env!("CARGO_BIN_EXE_otel-pinpoint-bridge"))
        .arg("bench-collector")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("bench-collector");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("ports line");
    let ports: Value = serde_json::from_str(&line).expect("ports json");
    Collector {
        child,
        port: ports["span"].as_u64().expect("span") as u16,
        control: ports["control"].as_u64().expect("control") as u16,
    }
}

async fn get(url: String) -> String {
    reqwest::get(url)
        .await
        .expect("get")
        .text()
        .await
        .expect("text")
}

/// Sums the samples of `name` whose labels contain `label`.
fn sum(text: &str, name: &str, label: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_blackhole_counts_what_the_exporter_sent() {
    let c = collector();
    let gw = common::start(&common::whole::gateway_yaml(c.port)).await;
    let grpc = gw.grpc_addr.expect("grpc");
    let requests = 12u64;
    let report = loadgen::run(loadgen::Options {
        endpoint: format!("http://{grpc}"),
        protocol: loadgen::Protocol::Grpc,
        gzip: false,
        rate: None,
        duration: Duration::from_secs(60),
        concurrency: 2,
        timeout: Duration::from_secs(10),
        shape: Shape::default(),
        seed: 1,
        acked_ids: None,
        callee_first_lag: 0,
        count: Some(requests),
        // 5 templates, so rounds 0..2 all occur: ids must not collide across rounds.
        pool: 5,
    })
    .await
    .expect("loadgen runs");
    let spans = requests * Shape::default().spans as u64;
    assert_eq!(
        (
            report.requests,
            report.spans_accepted,
            report.refused,
            report.errors
        ),
        (requests, spans, 0, 0),
        "{report}"
    );

    let admin = gw.admin_addr;
    let deadline = Instant::now() + Duration::from_secs(30);
    let (metrics, stats) = loop {
        let metrics = get(format!("http://{admin}/metrics")).await;
        let stats: Value =
            serde_json::from_str(&get(format!("http://127.0.0.1:{}/stats", c.control)).await)
                .expect("stats json");
        let sent = sum(
            &metrics,
            "bridge_exporter_spans_sent_total",
            "exporter=\"pinpoint\"",
        );
        let built = sum(
            &metrics,
            "bridge_pinpoint_messages_total",
            "exporter=\"pinpoint\"",
        );
        let got = stats["spans"].as_u64().unwrap_or(0) + stats["chunks"].as_u64().unwrap_or(0);
        if (sent == spans && got == built) || Instant::now() > deadline {
            break (metrics, stats);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let label = |kind: &str| format!("exporter=\"pinpoint\",kind=\"{kind}\"");
    assert_eq!(
        sum(
            &metrics,
            "bridge_exporter_spans_sent_total",
            "exporter=\"pinpoint\""
        ),
        spans
    );
    let built_spans = sum(&metrics, "bridge_pinpoint_messages_total", &label("span"));
    let built_chunks = sum(&metrics, "bridge_pinpoint_messages_total", &label("chunk"));
    assert!(built_spans > 0, "{metrics}");
    assert_eq!(stats["spans"].as_u64(), Some(built_spans), "{stats}");
    assert_eq!(stats["chunks"].as_u64(), Some(built_chunks), "{stats}");
    assert_eq!(stats["decode_errors"].as_u64(), Some(0), "{stats}");
    assert!(stats["agent_infos"].as_u64() >= Some(1), "{stats}");
    assert!(stats["bytes"].as_u64() > Some(0), "{stats}");
    drop(gw.shutdown().await);
}
