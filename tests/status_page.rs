//! What an operator sees: every metric the README documents is on `/metrics` from the
//! start, readiness follows the queues, and the live status page works in a real
//! browser (Debian's Chromium driven by npm `playwright-core`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_otel-pinpoint-bridge");

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

struct Gateway {
    child: Child,
    admin: String,
    grpc: String,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the real binary with `exporters`/`routes` YAML; waits for `/readyz`.
fn start(dir: &Path, receivers: &str, body: &str) -> Gateway {
    let (grpc, http, admin) = (free_port(), free_port(), free_port());
    let path = dir.join("gateway.yaml");
    std::fs::write(
        &path,
        format!(
            "receivers:\n  otlp:\n    grpc: {{ endpoint: 127.0.0.1:{grpc} }}\n    http: {{ endpoint: 127.0.0.1:{http} }}\n{receivers}\
             admin:\n  endpoint: 127.0.0.1:{admin}\n  links: {{ pinpoint: 'http://pinpoint-web:8080', zipkin: 'http://zipkin:9411/zipkin' }}\n{body}"
        ),
    )
    .expect("write config");
    let child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("stderr.log")).expect("log file"))
        .spawn()
        .expect("spawn");
    let gw = Gateway {
        child,
        admin: format!("127.0.0.1:{admin}"),
        grpc: format!("http://127.0.0.1:{grpc}"),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while get(&gw.admin, "/readyz").map(|(c, _)| c) != Some(200) {
        assert!(
            Instant::now() < deadline,
            "gateway never became ready: {}",
            std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    gw
}

/// A blocking HTTP GET (status, body) with Python's standard library, to keep this test
/// free of an async runtime.
fn get(admin: &str, path: &str) -> Option<(u16, String)> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys,urllib.request,urllib.error\n\
             try:\n r=urllib.request.urlopen(sys.argv[1],timeout=5); print(r.status); sys.stdout.write(r.read().decode())\n\
             except urllib.error.HTTPError as e:\n print(e.code); sys.stdout.write(e.read().decode())\n\
             except Exception:\n sys.exit(1)",
            &format!("http://{admin}{path}"),
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (code, body) = text.split_once('\n').unwrap_or((&text, ""));
    Some((code.trim().parse().ok()?, body.to_owned()))
}

/// Every exporter type, each pointing at a port where nothing listens (one with a
/// persistent queue in `queue_dir`).
fn every_exporter(dead: u16, queue_dir: &Path) -> String {
    let queue_dir = queue_dir.display();
    format!(
        "exporters:\n\
         \x20 file: {{ type: file, path: '-' }}\n\
         \x20 nothing: {{ type: null, queue: {{ persistent: {{ dir: '{queue_dir}' }} }} }}\n\
         \x20 zipkin: {{ type: zipkin, endpoint: 'http://127.0.0.1:{dead}/api/v2/spans' }}\n\
         \x20 pinpoint: {{ type: pinpoint, host: 127.0.0.1, agent_port: {dead}, span_port: {dead} }}\n\
         \x20 pyroscope: {{ type: pyroscope, endpoint: 'http://127.0.0.1:{dead}' }}\n\
         \x20 otlp: {{ type: otlp, resolve: {{ endpoint: 'http://localhost:{dead}' }} }}\n\
         ids: {{ store: {{ type: redis, url: 'redis://127.0.0.1:{dead}/0' }} }}\n\
         proxy:\n\
         \x20 application_name: status\n\
         \x20 ingress: {{ listen: '127.0.0.1:0', upstream: '127.0.0.1:{dead}' }}\n\
         \x20 egress: {{ listen: '127.0.0.1:0' }}\n\
         routes:\n\
         \x20 - {{ name: health, match: {{ span_name: {{ glob: 'GET /health*' }} }}, drop: true }}\n"
    )
}

/// Metric names in the README's metrics table, with `{a,b}` alternatives expanded.
fn documented_metrics() -> Vec<String> {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README");
    let section = readme
        .split("\n## Metrics\n")
        .nth(1)
        .expect("a Metrics section")
        .split("\n## ")
        .next()
        .unwrap_or_default();
    let mut names = Vec::new();
    for row in section.lines().filter(|l| l.starts_with("| `bridge_")) {
        let first = row.split(" | ").next().unwrap_or_default();
        for code in first.split('`').skip(1).step_by(2) {
            let name = code.split('{').next().unwrap_or_default();
            // `bridge_id_cache_{hits,misses}_total{map}`: alternatives inside the name.
            if let Some((head, rest)) = code.split_once('{')
                && let Some((alts, tail)) = rest.split_once('}')
                && alts.contains(',')
                && tail.starts_with('_')
            {
                let tail = tail.split('{').next().unwrap_or_default();
                names.extend(alts.split(',').map(|a| format!("{head}{a}{tail}")));
            } else {
                names.push(name.to_owned());
            }
        }
    }
    names
}

#[test]
fn every_documented_metric_is_on_metrics_from_the_start() {
    let names = documented_metrics();
    assert!(names.len() >= 35, "{names:?}");
    let dir = tempfile::tempdir().expect("tempdir");
    let gw = start(
        dir.path(),
        "  pinpoint: { agent_endpoint: '127.0.0.1:0', stat_endpoint: '127.0.0.1:0', span_endpoint: '127.0.0.1:0' }\n",
        &every_exporter(free_port(), &dir.path().join("queue")),
    );
    let (code, text) = get(&gw.admin, "/metrics").expect("metrics");
    assert_eq!(code, 200);
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| {
            !text.lines().any(|l| {
                l.strip_prefix(n.as_str()).is_some_and(|rest| {
                    rest.starts_with('{')
                        || rest.starts_with(' ')
                        || rest.starts_with("_bucket{")
                        || rest.starts_with("_count")
                })
            })
        })
        .collect();
    assert!(
        missing.is_empty(),
        "not on /metrics at start: {missing:?}\n{text}"
    );
}

/// Ready means "a request sent now will be accepted": with its backend down, an
/// exporter's queue fills, and then (not before) `/readyz` says why; `/healthz` stays ok.
#[test]
fn readiness_turns_off_when_a_refusing_queue_is_full() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dead = free_port();
    let gw = start(
        dir.path(),
        "",
        &format!(
            "exporters:\n  zipkin:\n    type: zipkin\n    endpoint: 'http://127.0.0.1:{dead}/api/v2/spans'\n    queue: {{ max_spans: 200 }}\n    batch: {{ max_spans: 100 }}\n    retry: {{ initial: 1s, max: 5s, max_elapsed: 5m }}\n"
        ),
    );
    assert_eq!(get(&gw.admin, "/readyz").map(|r| r.0), Some(200));
    let out = Command::new(BIN)
        .args([
            "loadgen",
            "--endpoint",
            &gw.grpc,
            "--rate",
            "1000",
            "--batch",
            "100",
        ])
        .args(["--duration", "2s", "--json"])
        .output()
        .expect("loadgen");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, body) = get(&gw.admin, "/readyz").expect("readyz");
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains("queue of exporter `zipkin` is full (200 spans)"),
        "{body}"
    );
    assert_eq!(get(&gw.admin, "/healthz").map(|r| r.0), Some(200));
}

/// The status page in headless Chromium: numbers and sparklines move without a
/// reload while traces arrive, and the lookup box answers a trace id and a txid.
/// The screenshot is kept as `target/test-artifacts/status-page.png`.
#[test]
fn status_page_is_live_in_a_real_browser() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gw = start(dir.path(), "", "exporters:\n  sink: { type: null }\n");
    let artifacts = root().join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).expect("artifacts dir");
    let shot: PathBuf = artifacts.join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    let out = Command::new("node")
        .arg(root().join("tests/peers/status-page/check.js"))
        .arg(format!("http://{}", gw.admin))
        .arg(BIN)
        .arg(&gw.grpc)
        .arg(&shot)
        .output()
        .expect("node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json");
    assert_eq!(
        r["txid"], "otel^790211418057950173^-8914616934935285348",
        "{r}"
    );
    assert_eq!(r["traceOfTxid"], "d753c5cba22eb84c93f5d8478fd545f2", "{r}");
    assert_eq!(
        r["zipkinLink"], "http://zipkin:9411/zipkin/traces/0af7651916cd43dd8448eb211c80319c",
        "{r}"
    );
    assert_eq!(r["injected"], 0, "{r}");
    assert!(
        r["badInput"]
            .as_str()
            .is_some_and(|s| s.contains("neither")),
        "{r}"
    );
    assert!(
        shot.metadata().is_ok_and(|m| m.len() > 10_000),
        "no screenshot"
    );
}
