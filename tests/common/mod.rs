//! Test support shared by the integration tests: starting the gateway in-process on
//! `127.0.0.1:0`, running the real OpenTelemetry Python SDK, reading the file exporter.
#![allow(dead_code)]

pub mod capture;
pub mod whole;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use otel_pinpoint_bridge::{app, config};

/// The Python interpreter with the OpenTelemetry SDK (from scripts/setup-test-peers.sh).
pub fn python() -> PathBuf {
    if let Ok(p) = std::env::var("BRIDGE_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run scripts/test.sh (or scripts/setup-test-peers.sh) to install the \
         OpenTelemetry Python SDK the tests use",
        p.display()
    );
    p
}

/// Runs `tests/python/<script>` with `args`; returns its stdout parsed as JSON.
pub fn run_python(script: &str, args: &[&str]) -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(script);
    let out = Command::new(python())
        .arg(&path)
        .args(args)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{script} failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("script prints JSON")
}

/// A config with both receivers and the admin endpoint on free ports, and one file
/// exporter writing to `out`, plus `extra` YAML appended under `exporters.out`.
pub fn file_config(out: &Path, extra: &str) -> String {
    format!(
        "receivers:\n  otlp:\n    grpc: {{ endpoint: 127.0.0.1:0 }}\n    http: {{ endpoint: 127.0.0.1:0 }}\n    max_request_bytes: 64KiB\n\
         exporters:\n  out:\n    type: file\n    path: '{}'\n    batch: {{ max_spans: 1000, timeout: 50ms }}\n{extra}\
         admin: {{ endpoint: 127.0.0.1:0 }}\nservice: {{ shutdown_grace: 5s }}\n",
        out.display()
    )
}

/// Starts the gateway in-process.
pub async fn start(yaml: &str) -> app::Running {
    let cfg =
        config::parse(yaml, &|_| None).unwrap_or_else(|e| panic!("test config invalid: {e:?}"));
    app::start(cfg).await.expect("gateway starts")
}

/// Reads every JSON line of the file exporter's output.
pub fn read_lines(path: &Path) -> Vec<ExportTraceServiceRequest> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l}: {e}")))
        .collect()
}

/// A span with its resource attributes (debug-printed values) and `scope@version`.
pub type FoundSpan = (Vec<(String, String)>, String, Span);

/// All spans in the output, with their resource and scope.
pub fn spans_of(lines: &[ExportTraceServiceRequest]) -> Vec<FoundSpan> {
    let mut out = Vec::new();
    for req in lines {
        for rs in &req.resource_spans {
            let resource: Vec<(String, String)> = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .map(|kv| (kv.key.clone(), format!("{:?}", kv.value)))
                .collect();
            for ss in &rs.scope_spans {
                let scope = ss
                    .scope
                    .as_ref()
                    .map(|s| format!("{}@{}", s.name, s.version))
                    .unwrap_or_default();
                for s in &ss.spans {
                    out.push((resource.clone(), scope.clone(), s.clone()));
                }
            }
        }
    }
    out
}

/// Polls the file exporter's output until `want` spans are there (or 10 s pass).
pub async fn wait_for_spans(path: &Path, want: usize) -> Vec<ExportTraceServiceRequest> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lines = read_lines(path);
        let n = spans_of(&lines).len();
        if n >= want || Instant::now() > deadline {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A span with the given ids and times, for hand-built requests.
pub fn span(trace: u8, id: u8, start: u64, end: u64) -> Span {
    Span {
        trace_id: vec![trace; 16],
        span_id: vec![id; 8],
        name: format!("span-{id}"),
        kind: 2,
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        ..Default::default()
    }
}

/// A request holding `spans` under one resource and scope.
pub fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}
