//! Real processes for the sidecar proxy tests: the stand-in Pinpoint collector, sidecars
//! (the gateway binary with a `proxy:` section and a Pinpoint exporter), Node.js services
//! with the real `pinpoint-node-agent`, and OpenTelemetry Python SDK services. Every
//! child is killed on drop.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_otel-pinpoint-bridge");

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A free port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A child process, killed on drop; `stdin` is kept open until then.
pub struct Proc {
    pub child: Child,
    stdin: Option<ChildStdin>,
    pub name: String,
}

impl Proc {
    fn spawn(name: &str, cmd: &mut Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let stdin = child.stdin.take();
        Self {
            child,
            stdin,
            name: name.to_owned(),
        }
    }

    /// The first line the child prints, as JSON.
    fn first_line(&mut self) -> Value {
        let mut line = String::new();
        BufReader::new(self.child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("first line");
        serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("{}: bad line {line:?}: {e}", self.name))
    }

    /// Closes stdin (the services flush and exit) and waits up to `within`.
    pub fn finish(&mut self, within: Duration) {
        drop(self.stdin.take());
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The stand-in Pinpoint collector.
pub struct StandIn {
    pub proc: Proc,
    pub port: u16,
    pub control: u16,
}

impl StandIn {
    pub fn start() -> Self {
        let dir = root().join("tests/peers/pinpoint-collector");
        assert!(
            dir.join("node_modules").exists(),
            "run scripts/setup-test-peers.sh to install the stand-in collector"
        );
        let mut proc = Proc::spawn(
            "collector",
            Command::new("node").arg(dir.join("server.js")).args([
                "--port",
                "0",
                "--control-port",
                "0",
                "--exit-with-stdin",
            ]),
        );
        let ports = proc.first_line();
        Self {
            port: ports["span"].as_u64().expect("span") as u16,
            control: ports["control"].as_u64().expect("control") as u16,
            proc,
        }
    }

    pub async fn get(&self, path: &str) -> Value {
        let t = reqwest::get(format!("http://127.0.0.1:{}{path}", self.control))
            .await
            .expect("control")
            .text()
            .await
            .expect("text");
        serde_json::from_str(&t).unwrap_or_else(|e| panic!("{path}: {e}: {t}"))
    }

    /// Waits until the call tree holds `spans` spans in `transactions` transactions and
    /// stays so for a moment (late spans would show up), or `within` passes.
    pub async fn wait_calltree(&self, spans: u64, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let report = self.get("/calltree").await;
            let s = &report["summary"];
            if s["spans"].as_u64() >= Some(spans) || Instant::now() > deadline {
                tokio::time::sleep(Duration::from_millis(500)).await;
                return self.get("/calltree").await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Every span and span chunk recorded, as (kind, message body).
    pub async fn spans(&self) -> Vec<(String, Value)> {
        let all = self.get("/messages?service=Span").await;
        all.as_array()
            .expect("messages")
            .iter()
            .filter_map(|m| {
                let field = m["message"]["field"].as_str()?.to_owned();
                let body = m["message"][&field].clone();
                Some((field, body))
            })
            .collect()
    }
}

/// One sidecar process: the bridge (OTLP/gRPC receiver → Pinpoint exporter) plus the
/// proxy, configured by `proxy_yaml` (the body of the `proxy:` section).
pub struct Sidecar {
    pub proc: Proc,
    pub otlp: u16,
    pub admin: u16,
    _dir: tempfile::TempDir,
}

impl Sidecar {
    pub async fn start(collector_port: u16, proxy_yaml: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let (otlp, admin) = (free_port(), free_port());
        let cfg = dir.path().join("sidecar.yaml");
        std::fs::write(
            &cfg,
            format!(
                "receivers:\n  otlp:\n    grpc: {{ endpoint: 127.0.0.1:{otlp} }}\n\
                 exporters:\n  pinpoint:\n    type: pinpoint\n    host: 127.0.0.1\n    agent_port: {collector_port}\n    span_port: {collector_port}\n    hold: 3s\n    batch: {{ max_spans: 1000, timeout: 50ms }}\n\
                 admin: {{ endpoint: 127.0.0.1:{admin} }}\nservice: {{ shutdown_grace: 5s }}\n\
                 proxy:\n{proxy_yaml}"
            ),
        )
        .expect("write config");
        let proc = Proc::spawn(
            "sidecar",
            Command::new(BIN)
                .args(["run", "--config"])
                .arg(&cfg)
                .env("RUST_LOG", "warn"),
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{admin}/readyz")).await
                && r.status() == 200
            {
                break;
            }
            assert!(Instant::now() < deadline, "sidecar never became ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self {
            proc,
            otlp,
            admin,
            _dir: dir,
        }
    }

    /// The sidecar's Prometheus text.
    pub async fn metrics(&self) -> String {
        reqwest::get(format!("http://127.0.0.1:{}/metrics", self.admin))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    }
}

/// A Node.js HTTP service with the real pinpoint-node-agent.
pub fn node_service(app: &str, agent: &str, collector_port: u16) -> (Proc, u16) {
    let mut p = Proc::spawn(
        app,
        Command::new("node")
            .arg(root().join("tests/peers/node-service/service.js"))
            .env("PINPOINT_APPLICATION_NAME", app)
            .env("PINPOINT_AGENT_ID", agent)
            .env("PINPOINT_COLLECTOR_IP", "127.0.0.1")
            .env("PINPOINT_COLLECTOR_TCP_PORT", collector_port.to_string())
            .env("PINPOINT_COLLECTOR_STAT_PORT", collector_port.to_string())
            .env("PINPOINT_COLLECTOR_SPAN_PORT", collector_port.to_string())
            .env("PINPOINT_SAMPLING_RATE", "1")
            .env("PINPOINT_LOG_LEVEL", "WARN"),
    );
    let port = p.first_line()["port"].as_u64().expect("port") as u16;
    (p, port)
}

fn python() -> PathBuf {
    std::env::var("BRIDGE_TEST_PYTHON")
        .map_or_else(|_| root().join(".venv/bin/python"), PathBuf::from)
}

/// An OpenTelemetry Python SDK service (`tests/python/proxy_service.py`) listening on
/// `port`, exporting to `otlp_port`, calling out through `egress`.
pub fn python_service(
    mode: &str,
    name: &str,
    port: u16,
    otlp_port: u16,
    egress: Option<u16>,
    public: Option<u16>,
) -> Proc {
    let script = root().join("tests/python/proxy_service.py");
    let mut cmd = Command::new(python());
    cmd.arg(&script).args([
        "--mode",
        mode,
        "--name",
        name,
        "--port",
        &port.to_string(),
        "--otlp",
        &format!("http://127.0.0.1:{otlp_port}"),
    ]);
    if let Some(e) = egress {
        cmd.args(["--egress", &format!("127.0.0.1:{e}")]);
    }
    if let Some(p) = public {
        cmd.args(["--public", &format!("127.0.0.1:{p}")]);
    }
    let mut p = Proc::spawn(name, &mut cmd);
    let _ = p.first_line();
    p
}

/// Runs a Python helper script to completion; returns stdout as text.
pub fn run_python(script: &str, args: &[&str]) -> String {
    let out = Command::new(python())
        .arg(Path::new(&root()).join("tests/python").join(script))
        .args(args)
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
