//! The real binary: `check-config`, SIGTERM draining, and the README's newcomer command
//! (`run` on the embedded default config).

mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_otel-pinpoint-bridge");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(ok.success());
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(s) = child.try_wait().expect("wait") {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("gateway did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

async fn wait_ready(admin: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(r) = reqwest::get(format!("http://{admin}/readyz")).await
            && r.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("gateway at {admin} never became ready");
}

fn stderr_of(child: &mut Child) -> String {
    let mut s = String::new();
    if let Some(e) = child.stderr.as_mut() {
        let _ = e.read_to_string(&mut s);
    }
    s
}

/// Every kind of problem `check-config` must find, all at once, each at its exact path:
/// unknown keys at any depth, several errors inside one exporter, bad values, missing
/// required keys, unset variables, listener conflicts, a bad log filter, route errors.
#[test]
fn check_config_lists_every_error_and_exits_64() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("broken.yaml");
    std::fs::write(
        &path,
        r#"receivers:
  otlp:
    grpc: { endpoint: nowhere }
    http: { endpoint: 127.0.0.1:4318 }
    max_requst_bytes: 1MiB
exporters:
  a: { type: file }
  b: { type: carrier-pigeon }
  c:
    type: null
    batch: { timeout: fast, max_spans: 0 }
  z:
    type: zipkin
    endpoint: ftp://x
    encoding: thrift
    colour: red
admin: { endpoint: 0.0.0.0:4318 }
log: { level: loud }
service: { shutdown_grace: '${env:BRIDGE_TEST_SURELY_UNSET}' }
routes:
  - name: r
    match: { span: { k: { regex: '(' } } }
    to: [nope]
"#,
    )
    .expect("write");
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    let table = [
        ("receivers.otlp.grpc.endpoint", "`nowhere` is not host:port"),
        (
            "receivers.otlp.max_requst_bytes",
            "unknown field `max_requst_bytes`",
        ),
        ("exporters.a.path", "missing (required)"),
        ("exporters.b.type", "unknown exporter type `carrier-pigeon`"),
        ("exporters.c.batch.timeout", "`fast` is not a duration"),
        ("exporters.c.batch.max_spans", "must be greater than 0"),
        (
            "exporters.z.endpoint",
            "endpoint `ftp://x` is not an http:// or https:// URL",
        ),
        ("exporters.z.encoding", "unknown variant `thrift`"),
        ("exporters.z.colour", "unknown field `colour`"),
        (
            "admin.endpoint",
            "port 4318 is already taken by receivers.otlp.http.endpoint",
        ),
        ("log.level", "`loud` is not a level"),
        (
            "service.shutdown_grace",
            "environment variable `BRIDGE_TEST_SURELY_UNSET` is not set",
        ),
        ("routes[0].to[0]", "unknown exporter `nope`"),
        (
            "routes[0].match.span[\"k\"].regex",
            "invalid regex `(`: unclosed group",
        ),
    ];
    for (path, message) in table {
        let want = format!("  {path}: {message}");
        assert!(err.contains(&want), "missing `{want}` in:\n{err}");
    }
    assert!(err.contains(&format!("{} error(s)", table.len())), "{err}");
}

/// Without `--config`, `check-config` checks the embedded default.
#[test]
fn check_config_checks_the_embedded_default() {
    let out = Command::new(BIN).arg("check-config").output().expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("config/gateway.yaml (embedded): OK"),
        "{text}"
    );
}

/// A reader that stops early (`translate … | head -1`) ends the command quietly.
#[test]
fn translate_into_a_closed_pipe_is_quiet() {
    let mut child = Command::new(BIN)
        .args([
            "translate",
            "--json",
            "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take());
    let status = child.wait().expect("wait");
    let err = stderr_of(&mut child);
    assert!(!err.contains("panicked"), "{err}");
    assert!(status.success(), "{err}");
}

#[test]
fn check_config_accepts_every_shipped_config() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    for entry in std::fs::read_dir(dir).expect("config dir") {
        let path = entry.expect("entry").path();
        let out = Command::new(BIN)
            .args(["check-config", "--config"])
            .arg(&path)
            .env("BRIDGE_CONFIG_TEST", "1")
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Spans waiting for a long batch timeout are exported when SIGTERM arrives, and the
/// process exits 0 after draining.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_the_queues() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("spans.jsonl");
    let (http, admin) = (free_port(), free_port());
    let cfg = dir.path().join("gw.yaml");
    std::fs::write(
        &cfg,
        format!(
            "receivers:\n  otlp:\n    http: {{ endpoint: 127.0.0.1:{http} }}\nexporters:\n  out:\n    type: file\n    path: '{}'\n    batch: {{ max_spans: 100000, timeout: 1h }}\nadmin: {{ endpoint: 127.0.0.1:{admin} }}\nlog: {{ format: json }}\nservice: {{ shutdown_grace: 5s }}\n",
            out.display()
        ),
    )
    .expect("write");
    let mut child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_ready(&format!("127.0.0.1:{admin}")).await;
    let body = prost::Message::encode_to_vec(&common::request(vec![
        common::span(3, 1, 1, 2),
        common::span(3, 2, 1, 2),
    ]));
    let resp = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{http}/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(body)
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        common::read_lines(&out).is_empty(),
        "the batch should still be waiting"
    );
    sigterm(&child);
    let status = wait_exit(&mut child, Duration::from_secs(10));
    let log = stderr_of(&mut child);
    assert!(status.success(), "exit {status}: {log}");
    assert_eq!(
        common::spans_of(&common::read_lines(&out)).len(),
        2,
        "{log}"
    );
    assert!(
        log.contains("SIGTERM") && log.contains("all queues drained"),
        "{log}"
    );
}

/// The README's command: `run` with no config uses the embedded default, which prints
/// every batch to stdout as OTLP/JSON. It binds the documented fixed ports
/// (4317, 4318, 8888), so it fails clearly if another gateway already runs here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_default_runs_and_prints_spans() {
    // Several checkouts on one machine may run their suites at once: take turns on the
    // fixed ports (released when the file closes, also if the test panics).
    let lock =
        std::fs::File::create(std::env::temp_dir().join("otel-pinpoint-bridge-default-ports.lock"))
            .expect("lock file");
    lock.lock().expect("lock");
    let mut child = Command::new(BIN)
        .arg("run")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_ready("127.0.0.1:8888").await;
    let sent = tokio::task::spawn_blocking(|| {
        common::run_python(
            "send_trace.py",
            &["--protocol", "grpc", "--endpoint", "http://127.0.0.1:4317"],
        )
    })
    .await
    .expect("python");
    // Batches close after 1 s in the default config.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    sigterm(&child);
    let status = wait_exit(&mut child, Duration::from_secs(15));
    let mut stdout = String::new();
    child
        .stdout
        .as_mut()
        .expect("stdout")
        .read_to_string(&mut stdout)
        .expect("read");
    assert!(status.success(), "{}", stderr_of(&mut child));
    let trace_id = sent["trace_id"].as_str().expect("trace id");
    assert!(
        stdout.contains(&format!("\"traceId\":\"{trace_id}\"")),
        "stdout: {stdout}"
    );
}

#[test]
fn translate_cli_both_ways_and_errors() {
    let out = Command::new(BIN)
        .args([
            "translate",
            "--json",
            "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        t["ids"]["transaction_id"], "otel^790211418057950173^-8914616934935285348",
        "{t}"
    );
    let headers = t["headers"].to_string();
    assert!(headers.contains("Pinpoint-TraceID"), "{headers}");

    // Pinpoint → W3C from standard input.
    let mut child = Command::new(BIN)
        .arg("translate")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    std::io::Write::write_all(
        child.stdin.as_mut().expect("stdin"),
        b"Pinpoint-TraceID: agentA^1700000000000^42\nPinpoint-SpanID: 12345\nPinpoint-pSpanID: 777\nPinpoint-pAppName: shop\nPinpoint-pAppType: 1010\n",
    )
    .expect("write");
    let out = child.wait_with_output().expect("wait");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("traceparent: 00-d753c5cba22eb84c93f5d8478fd545f2-"),
        "{text}"
    );
    assert!(
        text.contains("pp=") && text.contains("app:shop") && text.contains("ppb="),
        "{text}"
    );

    let out = Command::new(BIN)
        .args([
            "translate",
            "traceparent: 00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected lower-case hex"));
    let out = Command::new(BIN)
        .args(["translate", "no colon here"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(65));
}
