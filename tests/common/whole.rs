//! "100 % whole" in Pinpoint: the stand-in collector (tests/peers/pinpoint-collector),
//! realistic SDK traffic (tests/python/five_services.py: five processes, real HTTP,
//! BatchSpanProcessor defaults) and the check that every trace sent became one
//! transaction with one root, no UNKNOWN, no CORRUPTED and a segment of every service.
//!
//! Reusable with any gateway layout: start the stand-in, start gateways with
//! [`gateway_yaml`] (or your own config using [`pinpoint_exporter_yaml`]), run
//! [`five_services`] with [`Endpoints`] pointing at them, then [`wait_whole`].

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use otel_pinpoint_bridge::ids::{AgentId, TraceId, mapping};
use serde_json::Value;

/// The stand-in Pinpoint collector as a child process; killed on drop.
pub struct StandIn {
    child: Child,
    /// Its one port for the agent, metadata, stat and span services.
    pub port: u16,
    /// Its HTTP control port.
    pub control: u16,
}

impl StandIn {
    /// Starts it as a collector of `version` (`3.0` or `3.1`).
    pub fn start(version: &str) -> Self {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/pinpoint-collector");
        assert!(
            dir.join("node_modules").exists(),
            "run scripts/test.sh (or scripts/setup-test-peers.sh) to install the stand-in collector"
        );
        let mut child = Command::new("node")
            .arg(dir.join("server.js"))
            .args([
                "--port",
                "0",
                "--control-port",
                "0",
                "--version",
                version,
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
        let ports: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad ports line {line:?}: {e}"));
        let port = ports["span"].as_u64().expect("span port") as u16;
        let control = ports["control"].as_u64().expect("control port") as u16;
        Self {
            child,
            port,
            control,
        }
    }

    /// GETs a control path and parses the JSON answer.
    pub async fn get(&self, path: &str) -> Value {
        let t = reqwest::get(format!("http://127.0.0.1:{}{path}", self.control))
            .await
            .expect("control")
            .text()
            .await
            .expect("text");
        serde_json::from_str(&t).unwrap_or_else(|e| panic!("{path}: {e}: {t}"))
    }

    /// Waits until the checker has seen `spans` spans and `chunks` chunks (20 s at most).
    pub async fn wait_calltree(&self, spans: u64, chunks: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let report = self.get("/calltree").await;
            let s = &report["summary"];
            let done = s["spans"].as_u64() >= Some(spans) && s["chunks"].as_u64() >= Some(chunks);
            if done || Instant::now() > deadline {
                return report;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An `exporters:` entry named `name` of `type: pinpoint` with every setting at its
/// default except where the stand-in listens.
pub fn pinpoint_exporter_yaml(name: &str, standin_port: u16) -> String {
    format!(
        "  {name}:\n    type: pinpoint\n    host: 127.0.0.1\n    agent_port: {standin_port}\n    span_port: {standin_port}\n"
    )
}

/// A gateway config: the OTLP/gRPC receiver and admin on free ports, and one Pinpoint
/// exporter on its defaults (see [`pinpoint_exporter_yaml`]).
pub fn gateway_yaml(standin_port: u16) -> String {
    format!(
        "receivers:\n  otlp:\n    grpc: {{ endpoint: 127.0.0.1:0 }}\nexporters:\n{}admin: {{ endpoint: 127.0.0.1:0 }}\n",
        pinpoint_exporter_yaml("pinpoint", standin_port)
    )
}

/// Where the five services export (OTLP/gRPC URLs such as `http://127.0.0.1:4317`).
pub enum Endpoints {
    /// Every service to one gateway.
    One(String),
    /// Each service to its own gateway (sidecars): (service, url) for all five
    /// services (`edge`, `orders`, `payments`, `ledger`, `inventory`).
    PerService(Vec<(String, String)>),
    /// Every exporter sends its batches to these in turn (replicas behind a
    /// trace-unaware balancer).
    RoundRobin(Vec<String>),
}

/// How much traffic.
#[derive(Debug, Clone, Copy)]
pub struct Traffic {
    pub traces: usize,
    /// Start instants are spread at random over this many seconds.
    pub seconds: f64,
    pub seed: u64,
}

impl Default for Traffic {
    fn default() -> Self {
        Self {
            traces: 200,
            seconds: 30.0,
            seed: 1,
        }
    }
}

/// The five services of five_services.py.
pub const SERVICES: [&str; 5] = ["edge", "orders", "payments", "ledger", "inventory"];

/// Runs tests/python/five_services.py (blocking: call it from `spawn_blocking`) and
/// returns its JSON report (`traces`: the trace ids sent).
pub fn five_services(endpoints: &Endpoints, traffic: Traffic) -> Value {
    let mut args: Vec<String> = Vec::new();
    match endpoints {
        Endpoints::One(url) => args.extend(["--endpoint".into(), url.clone()]),
        Endpoints::PerService(list) => {
            for (service, url) in list {
                args.extend(["--service-endpoint".into(), format!("{service}={url}")]);
            }
        }
        Endpoints::RoundRobin(urls) => args.extend(["--endpoints".into(), urls.join(",")]),
    }
    args.extend([
        "--traces".into(),
        traffic.traces.to_string(),
        "--seconds".into(),
        traffic.seconds.to_string(),
        "--seed".into(),
        traffic.seed.to_string(),
    ]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let sent = super::run_python("five_services.py", &refs);
    assert_eq!(sent["ok"], true, "five_services.py: {sent}");
    sent
}

/// How whole the sent traces are in Pinpoint.
#[derive(Debug)]
pub struct Wholeness {
    pub traces: usize,
    pub whole: usize,
    /// What is wrong with the first broken traces.
    pub problems: Vec<String>,
    pub summary: Value,
}

impl Wholeness {
    /// Panics unless every trace is whole.
    pub fn assert_all_whole(&self) {
        assert!(
            self.traces > 0 && self.whole == self.traces,
            "{} of {} traces whole; summary {}; first problems:\n{}",
            self.whole,
            self.traces,
            self.summary,
            self.problems.join("\n")
        );
    }
}

fn applications(node: &Value, out: &mut Vec<String>) {
    if node["type"] == "span"
        && let Some(a) = node["application"].as_str()
    {
        out.push(a.to_owned());
    }
    for c in node["children"].as_array().into_iter().flatten() {
        applications(c, out);
    }
}

/// Judges every trace of `sent` (five_services.py's report) in `report` (`/calltree`).
pub fn judge(sent: &Value, report: &Value) -> Wholeness {
    let marker = AgentId::new("otel").expect("marker");
    let by_txid: std::collections::HashMap<&str, &Value> = report["transactions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| Some((t["transactionId"].as_str()?, t)))
        .collect();
    let want: BTreeSet<String> = SERVICES.iter().map(|s| (*s).to_owned()).collect();
    let traces = sent["traces"].as_array().expect("traces");
    let mut whole = 0;
    let mut problems = Vec::new();
    for t in traces {
        let hex = t.as_str().expect("trace id");
        let txid = mapping::trace_id_to_txid(TraceId::from_hex(hex).expect("hex"), marker);
        let Some(tx) = by_txid.get(txid.to_string().as_str()) else {
            problems.push(format!("{hex}: no transaction {txid}"));
            continue;
        };
        let mut apps = Vec::new();
        for n in tx["tree"].as_array().into_iter().flatten() {
            applications(n, &mut apps);
        }
        let len = |k: &str| tx[k].as_array().map_or(0, Vec::len);
        let got: BTreeSet<String> = apps.iter().cloned().collect();
        let ok = len("roots") == 1
            && len("unknown") == 0
            && len("corrupted") == 0
            && len("orphanChunks") == 0
            && len("duplicateSpans") == 0
            && got == want
            && apps.len() == want.len();
        if ok {
            whole += 1;
        } else if problems.len() < 10 {
            problems.push(format!(
                "{hex}: roots {} unknown {} corrupted {} applications {apps:?}: {}",
                len("roots"),
                tx["unknown"],
                tx["corrupted"],
                tx["issues"]
            ));
        }
    }
    Wholeness {
        traces: traces.len(),
        whole,
        problems,
        summary: report["summary"].clone(),
    }
}

/// Polls the stand-in until every trace of `sent` is whole or `timeout` passes, and
/// returns the last judgement.
pub async fn wait_whole(standin: &StandIn, sent: &Value, timeout: Duration) -> Wholeness {
    let deadline = Instant::now() + timeout;
    let want = sent["traces"].as_array().map_or(0, Vec::len) * SERVICES.len();
    loop {
        let report = standin.get("/calltree").await;
        let spans = report["summary"]["spans"].as_u64().unwrap_or(0) as usize;
        if spans >= want || Instant::now() > deadline {
            let w = judge(sent, &report);
            if w.whole == w.traces || Instant::now() > deadline {
                return w;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
