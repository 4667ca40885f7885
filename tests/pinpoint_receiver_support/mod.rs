//! Real peers for the Pinpoint receiver tests: the stand-in collector (the tee's
//! upstream), the real pinpoint-node-agent and pinpoint-python-agent services, the OTel
//! SDK HTTP service, and helpers to read the gateway's metrics and the Zipkin output.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A child process that prints one JSON line with its ports first; killed on drop.
pub struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
    pub ports: Value,
}

impl Peer {
    fn spawn(mut cmd: Command, what: &str) -> Self {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let stdin = child.stdin.take();
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let ports = loop {
            let line = lines
                .next()
                .unwrap_or_else(|| panic!("{what} exited before printing its port"))
                .expect("line");
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && v.is_object()
            {
                break v;
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Self {
            child,
            stdin,
            ports,
        }
    }

    pub fn port(&self) -> u16 {
        self.ports["port"].as_u64().expect("port") as u16
    }

    /// Closes stdin (a clean exit: agents and SDKs flush) and waits up to 10 s.
    pub fn stop(mut self) {
        self.stdin.take();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The stand-in Pinpoint collector on one port (`0` = any).
pub fn standin(port: u16) -> Peer {
    let dir = root().join("tests/peers/pinpoint-collector");
    assert!(
        dir.join("node_modules").exists(),
        "run scripts/setup-test-peers.sh to install the stand-in collector and the Node agent"
    );
    let mut cmd = Command::new("node");
    cmd.arg(dir.join("server.js")).args([
        "--port",
        &port.to_string(),
        "--control-port",
        "0",
        "--exit-with-stdin",
    ]);
    Peer::spawn(cmd, "stand-in collector")
}

/// A Node service with the real pinpoint-node-agent reporting to `addrs` (agent, stat, span).
pub fn node_service(
    app: &str,
    agent_id: &str,
    addrs: [SocketAddr; 3],
    extra_headers: Option<&str>,
) -> Peer {
    let mut cmd = Command::new("node");
    cmd.arg(root().join("tests/peers/pinpoint-apps/node_service.js"))
        .env("PINPOINT_APPLICATION_NAME", app)
        .env("PINPOINT_AGENT_ID", agent_id)
        .env("PINPOINT_COLLECTOR_IP", addrs[0].ip().to_string())
        .env("PINPOINT_COLLECTOR_TCP_PORT", addrs[0].port().to_string())
        .env("PINPOINT_COLLECTOR_STAT_PORT", addrs[1].port().to_string())
        .env("PINPOINT_COLLECTOR_SPAN_PORT", addrs[2].port().to_string())
        .env("PINPOINT_SAMPLING_RATE", "1");
    if let Some(h) = extra_headers {
        cmd.env("EXTRA_HEADERS", h);
    }
    Peer::spawn(cmd, "node service")
}

/// A Python service with the real pinpoint-python-agent reporting to `addrs`.
pub fn python_service(app: &str, agent_name: &str, addrs: [SocketAddr; 3]) -> Peer {
    let mut cmd = Command::new(python());
    cmd.arg(root().join("tests/peers/pinpoint-apps/python_service.py"))
        .args([app, agent_name])
        .env("PINPOINT_PY_COLLECTOR_HOST", addrs[0].ip().to_string())
        .env(
            "PINPOINT_PY_COLLECTOR_AGENT_PORT",
            addrs[0].port().to_string(),
        )
        .env(
            "PINPOINT_PY_COLLECTOR_STAT_PORT",
            addrs[1].port().to_string(),
        )
        .env(
            "PINPOINT_PY_COLLECTOR_SPAN_PORT",
            addrs[2].port().to_string(),
        );
    Peer::spawn(cmd, "python service")
}

/// An HTTP service traced with the OpenTelemetry Python SDK (default batch settings).
pub fn otel_service(otlp_grpc: SocketAddr, service: &str) -> Peer {
    let mut cmd = Command::new(python());
    cmd.arg(root().join("tests/python/otel_http_server.py"))
        .args([format!("http://{otlp_grpc}"), service.to_owned()]);
    Peer::spawn(cmd, "otel service")
}

pub fn python() -> PathBuf {
    if let Ok(p) = std::env::var("BRIDGE_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let p = root().join(".venv/bin/python");
    assert!(p.exists(), "run scripts/setup-test-peers.sh first");
    p
}

/// GET on a stand-in's control port.
pub async fn control(standin: &Peer, path: &str) -> Value {
    let port = standin.ports["control"].as_u64().expect("control");
    let t = reqwest::get(format!("http://127.0.0.1:{port}{path}"))
        .await
        .expect("control")
        .text()
        .await
        .expect("text");
    serde_json::from_str(&t).unwrap_or_else(|e| panic!("{path}: {e}: {t}"))
}

/// GET `url`; the body as text.
pub async fn get(url: &str) -> String {
    let r = reqwest::get(url)
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    assert!(r.status().is_success(), "{url}: {}", r.status());
    r.text().await.expect("body")
}

/// Sums of the gateway's counters named `name`, per value of `label`.
pub async fn metric(admin: SocketAddr, name: &str, label: &str) -> BTreeMap<String, f64> {
    let text = reqwest::get(format!("http://{admin}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with(name)) {
        let Some((head, value)) = line.rsplit_once(' ') else {
            continue;
        };
        if !(head == name || head.starts_with(&format!("{name}{{"))) {
            continue;
        }
        let key = head
            .split(&format!("{label}=\""))
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or("")
            .to_owned();
        *out.entry(key).or_default() += value.parse::<f64>().unwrap_or(0.0);
    }
    out
}

/// Validates Zipkin bodies with tests/python/validate_zipkin.py against zipkin2-api.yaml.
pub fn validate_zipkin(bodies: &[Vec<u8>], dir: &Path) -> Value {
    let schema = root().join("../shared/ref/zipkin2-api.yaml");
    let mut args = vec![
        root()
            .join("tests/python/validate_zipkin.py")
            .display()
            .to_string(),
        "--schema".to_owned(),
        schema.display().to_string(),
    ];
    for (i, b) in bodies.iter().enumerate() {
        let p = dir.join(format!("body{i}.json"));
        std::fs::write(&p, b).expect("write body");
        args.push(p.display().to_string());
    }
    let out = Command::new(python())
        .args(&args)
        .output()
        .expect("validator");
    assert!(
        out.status.success(),
        "validator: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("validator JSON")
}

/// The recorded Span-service messages of the stand-in: (txid, PSpan or PSpanChunk JSON).
pub fn span_messages(messages: &Value) -> Vec<(String, Value)> {
    messages
        .as_array()
        .expect("array")
        .iter()
        .filter(|m| m["service"] == "Span")
        .map(|m| {
            let body = if m["message"]["span"].is_object() {
                m["message"]["span"].clone()
            } else {
                m["message"]["spanChunk"].clone()
            };
            let t = &body["transactionId"];
            let agent = t["agentId"]
                .as_str()
                .filter(|a| !a.is_empty())
                .unwrap_or_else(|| m["headers"]["agentid"].as_str().expect("agentid"));
            let txid = format!(
                "{agent}^{}^{}",
                t["agentStartTime"].as_str().expect("start"),
                t["sequence"].as_str().expect("seq")
            );
            (txid, body)
        })
        .collect()
}
