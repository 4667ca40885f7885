//! The persistent queue with the real binary: SIGKILL under load against a slow Zipkin
//! backend (every acknowledged span arrives), SIGTERM keeping what it cannot deliver,
//! and a damaged queue file that is skipped while the rest is delivered.

mod common;

use common::whole::StandIn;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
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

/// Kills (SIGKILL) and reaps a child when dropped, so a failing test leaves nothing.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The slow Zipkin stand-in; returns it and its port.
fn start_sink(out: &Path, delay: f64) -> (Proc, u16) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/slow_zipkin_sink.py");
    let mut child = Command::new("python3")
        .arg(script)
        .arg("--out")
        .arg(out)
        .args(["--delay", &delay.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("port line");
    let v: serde_json::Value = serde_json::from_str(&line).expect("json");
    let port = v["port"].as_u64().expect("port") as u16;
    (Proc(child), port)
}

struct Gateway {
    cfg: PathBuf,
    http: u16,
    admin: u16,
}

impl Gateway {
    fn new(dir: &Path, sink: u16, grace: &str, max_spans: usize) -> Self {
        let gw = Self {
            cfg: dir.join("gw.yaml"),
            http: free_port(),
            admin: free_port(),
        };
        gw.write(dir, sink, grace, max_spans);
        gw
    }

    /// (Re)writes the config: same ports and queue directory, backend at `sink`.
    fn write(&self, dir: &Path, sink: u16, grace: &str, max_spans: usize) {
        let (http, admin) = (self.http, self.admin);
        std::fs::write(
            &self.cfg,
            format!(
                "receivers:\n  otlp:\n    http: {{ endpoint: 127.0.0.1:{http} }}\n\
                 exporters:\n  zipkin:\n    type: zipkin\n    endpoint: http://127.0.0.1:{sink}/api/v2/spans\n\
                 \x20   batch: {{ max_spans: {max_spans}, timeout: 100ms }}\n\
                 \x20   retry: {{ initial: 50ms, max: 500ms, max_elapsed: 10m }}\n\
                 \x20   queue:\n      max_spans: 50000\n      persistent: {{ dir: '{}', max_bytes: 512MiB }}\n\
                 admin: {{ endpoint: 127.0.0.1:{admin} }}\nlog: {{ format: json }}\n\
                 service: {{ shutdown_grace: {grace} }}\n",
                dir.join("queue").display()
            ),
        )
        .expect("write config");
    }

    fn spawn(&self, log: &Path) -> Proc {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log");
        Proc(
            Command::new(BIN)
                .args(["run", "--config"])
                .arg(&self.cfg)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("spawn gateway"),
        )
    }

    async fn ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{}/readyz", self.admin)).await
                && r.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("gateway never became ready");
    }

    /// The sum of one metric's samples on /metrics.
    async fn metric(&self, name: &str) -> f64 {
        let text = reqwest::get(format!("http://127.0.0.1:{}/metrics", self.admin))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        text.lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

fn sigterm(p: &Proc) {
    let ok = Command::new("kill")
        .args(["-TERM", &p.0.id().to_string()])
        .status()
        .expect("kill");
    assert!(ok.success());
}

fn wait_exit(p: &mut Proc, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(s) = p.0.try_wait().expect("wait") {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "gateway did not exit within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// SIGKILL five times under load with a slow backend, then SIGTERM with a backlog:
/// every span loadgen saw acknowledged reaches the backend; duplicates are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loop_under_load_loses_no_acknowledged_span() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (sink_out, acked, log) = (
        dir.path().join("sink.txt"),
        dir.path().join("acked.txt"),
        dir.path().join("gateway.log"),
    );
    // 0.5 s per POST of at most 1000 spans: the backend takes ~2000 spans/s at most,
    // the load offers 3000, so a backlog builds on disk.
    let (_sink, sink_port) = start_sink(&sink_out, 0.5);
    let gw = Gateway::new(dir.path(), sink_port, "1s", 1000);
    let mut g = gw.spawn(&log);
    gw.ready().await;
    let mut loadgen = Proc(
        Command::new(BIN)
            .args(["loadgen", "--protocol", "http-protobuf", "--rate", "3000"])
            .args(["--duration", "14s", "--batch", "50", "--concurrency", "8"])
            .args(["--timeout", "3s", "--json", "--endpoint"])
            .arg(format!("http://127.0.0.1:{}", gw.http))
            .arg("--acked-ids")
            .arg(&acked)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("loadgen"),
    );
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        // SIGKILL: no drain, no flush, nothing but what is on disk.
        let _ = g.0.kill();
        let _ = g.0.wait();
        g = gw.spawn(&log);
        gw.ready().await;
    }
    let status = wait_exit(&mut loadgen, Duration::from_secs(30));
    assert!(status.success());
    let mut report = String::new();
    std::io::Read::read_to_string(&mut loadgen.0.stdout.take().expect("stdout"), &mut report)
        .expect("report");
    let report: serde_json::Value = serde_json::from_str(&report).expect("loadgen json");
    // SIGTERM while a backlog remains: the grace period (1 s) is too short to deliver
    // it, so it stays on disk instead of being dropped...
    tokio::time::sleep(Duration::from_millis(300)).await;
    let replayed = gw.metric("bridge_persist_replayed_spans_total").await;
    sigterm(&g);
    assert!(wait_exit(&mut g, Duration::from_secs(15)).success());
    let delivered_before_restart = lines(&sink_out).len();
    // ...and the next start delivers it.
    g = gw.spawn(&log);
    gw.ready().await;
    let want: HashSet<String> = lines(&acked).into_iter().collect();
    assert!(want.len() > 10_000, "load happened: {report}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let missing = loop {
        let got: HashSet<String> = lines(&sink_out).into_iter().collect();
        let missing = want.difference(&got).count();
        if missing == 0 || Instant::now() > deadline {
            break missing;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    sigterm(&g);
    let _ = wait_exit(&mut g, Duration::from_secs(15));
    let got = lines(&sink_out);
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for id in &got {
        *counts.entry(id).or_default() += 1;
    }
    let duplicates: usize = counts.values().map(|c| c - 1).sum();
    eprintln!(
        "kill loop: {} spans acknowledged, {} received by the backend ({} distinct, {duplicates} \
         duplicates), {missing} missing; replayed before the last SIGTERM: {replayed}; \
         delivered before the last restart: {delivered_before_restart}; loadgen: {report}",
        want.len(),
        got.len(),
        counts.len()
    );
    assert_eq!(missing, 0, "acknowledged spans never reached the backend");
    assert!(replayed > 0.0, "the kills hit a backlog that was replayed");
    assert!(
        delivered_before_restart < want.len(),
        "SIGTERM left a backlog for the next start"
    );
    // At least once, and the duplicates are bounded by what a kill can catch in flight
    // or unacknowledged: far fewer than what was sent.
    assert!(duplicates < want.len() / 2, "{duplicates} duplicates");
    assert!(log_has(&log, "kept on disk for the next start"));
}

fn log_has(log: &Path, what: &str) -> bool {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .contains(what)
}

/// A record overwritten with junk and a record cut in half: both skipped and counted,
/// the gateway starts and delivers the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_queue_files_are_skipped_counted_and_the_rest_delivered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (sink_out, log) = (dir.path().join("sink.txt"), dir.path().join("gateway.log"));
    // No backend yet: port of a listener we close at once (connection refused).
    let dead = free_port();
    let gw = Gateway::new(dir.path(), dead, "1s", 1000);
    let mut g = gw.spawn(&log);
    gw.ready().await;
    let mut ids = Vec::new();
    for n in 0u8..10 {
        let spans: Vec<_> = (0..3).map(|i| common::span(n + 1, i + 1, 1, 2)).collect();
        let body = prost::Message::encode_to_vec(&common::request(spans));
        let r = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{}/v1/traces", gw.http))
            .header("content-type", "application/x-protobuf")
            .body(body)
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 200);
        ids.push(n);
    }
    let _ = g.0.kill();
    let _ = g.0.wait();
    let queue = dir.path().join("queue");
    let seg = std::fs::read_dir(&queue)
        .expect("queue dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "log"))
        .expect("a segment file");
    let mut data = std::fs::read(&seg).expect("read");
    // Record boundaries: each record starts with the magic "OPB1".
    let starts: Vec<usize> = data
        .windows(4)
        .enumerate()
        .filter(|(_, w)| *w == b"OPB1")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(starts.len(), 10, "one record per request");
    data[starts[2]..starts[3]].fill(b'#');
    let last = starts[9];
    data.truncate(last + (data.len() - last) / 2);
    std::fs::write(&seg, &data).expect("write");

    let (_sink, sink_port) = start_sink(&sink_out, 0.0);
    gw.write(dir.path(), sink_port, "1s", 1000);
    let gw2 = gw;
    let mut g = gw2.spawn(&log);
    gw2.ready().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while lines(&sink_out).len() < 24 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let damaged = gw2.metric("bridge_persist_damaged_records_total").await;
    sigterm(&g);
    let _ = wait_exit(&mut g, Duration::from_secs(10));
    // 8 intact requests of 3 spans each; records 2 and 9 are gone.
    assert_eq!(lines(&sink_out).len(), 24);
    assert_eq!(damaged, 2.0);
    assert!(log_has(&log, "damaged records skipped"));
}

/// Runs loadgen against `http` and returns its JSON report.
fn loadgen(http: u16, args: &[&str], acked: &Path) -> serde_json::Value {
    let out = Command::new(BIN)
        .args([
            "loadgen",
            "--protocol",
            "http-protobuf",
            "--json",
            "--timeout",
            "3s",
        ])
        .args(args)
        .arg("--endpoint")
        .arg(format!("http://127.0.0.1:{http}"))
        .arg("--acked-ids")
        .arg(acked)
        .output()
        .expect("loadgen");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("loadgen json")
}

/// The queue directory on a 2 MiB filesystem (a tmpfs in the gateway's own mount
/// namespace) with the backend down: the disk fills, requests get retryable refusals,
/// the gateway keeps running; once the backend is back, the backlog is delivered, the
/// room returns and requests are accepted again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_filesystem_refuses_with_retry_later_and_recovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (sink_out, log) = (dir.path().join("sink.txt"), dir.path().join("gateway.log"));
    let queue = dir.path().join("queue");
    std::fs::create_dir(&queue).expect("mount point");
    let sink_port = free_port();
    let gw = Gateway::new(dir.path(), sink_port, "1s", 1000);
    let logf = std::fs::File::create(&log).expect("log");
    // unshare -rm: a private mount namespace (as root of a user namespace), so the
    // tmpfs needs no cleanup and the test needs no privileges beyond user namespaces.
    let mut g = Proc(
        Command::new("unshare")
            .args(["-rm", "sh", "-c"])
            .arg("mount -t tmpfs -o size=2m tmpfs \"$0\" && exec \"$@\"")
            .arg(&queue)
            .arg(BIN)
            .args(["run", "--config"])
            .arg(&gw.cfg)
            .stdout(Stdio::null())
            .stderr(logf)
            .spawn()
            .expect("unshare"),
    );
    gw.ready().await;
    let full = loadgen(
        gw.http,
        &[
            "--batch",
            "100",
            "--concurrency",
            "4",
            "--duration",
            "4s",
            "--seed",
            "1",
        ],
        &dir.path().join("acked1.txt"),
    );
    assert!(
        full["refused"].as_u64() > Some(0),
        "the disk filled: {full}"
    );
    assert!(full["spans_accepted"].as_u64() > Some(1000), "{full}");
    assert_eq!(full["errors"].as_u64(), Some(0), "{full}");
    assert!(
        g.0.try_wait().expect("wait").is_none(),
        "the gateway is alive"
    );
    assert!(gw.metric("bridge_persist_write_errors_total").await > 0.0);
    assert!(log_has(&log, "No space left on device"));

    // The backend comes back: the backlog drains and frees the disk.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/slow_zipkin_sink.py");
    let _sink = Proc(
        Command::new("python3")
            .arg(script)
            .arg("--out")
            .arg(&sink_out)
            .args(["--delay", "0", "--port", &sink_port.to_string()])
            .stdout(Stdio::null())
            .spawn()
            .expect("sink"),
    );
    let first: HashSet<String> = lines(&dir.path().join("acked1.txt")).into_iter().collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let got: HashSet<String> = lines(&sink_out).into_iter().collect();
        if first.is_subset(&got) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let got: HashSet<String> = lines(&sink_out).into_iter().collect();
    assert!(first.is_subset(&got), "every acknowledged span arrived");
    let again = loadgen(
        gw.http,
        &[
            "--batch",
            "100",
            "--rate",
            "1000",
            "--duration",
            "3s",
            "--seed",
            "100000",
        ],
        &dir.path().join("acked2.txt"),
    );
    assert_eq!(again["refused"].as_u64(), Some(0), "room returned: {again}");
    assert!(again["spans_accepted"].as_u64() > Some(2000), "{again}");
    sigterm(&g);
    assert!(wait_exit(&mut g, Duration::from_secs(15)).success());
}

async fn collector_spans(collector: &StandIn) -> u64 {
    collector.get("/calltree").await["summary"]["spans"]
        .as_u64()
        .unwrap_or(0)
}

/// Persist before assembly, acknowledge when the segment is sent: spans held in the
/// Pinpoint exporter's segment assembly (waiting for a caller that has not arrived) when
/// the process is SIGKILLed are replayed at the next start and reach the collector.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinpoint_spans_held_in_assembly_survive_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("gateway.log");
    let collector = StandIn::start("3.1");
    let span_port = collector.port;
    let (http, admin) = (free_port(), free_port());
    let cfg = dir.path().join("gw.yaml");
    let write = |hold: &str| {
        std::fs::write(
            &cfg,
            format!(
                "receivers:\n  otlp:\n    http: {{ endpoint: 127.0.0.1:{http} }}\n\
                 exporters:\n  pinpoint:\n    type: pinpoint\n    host: 127.0.0.1\n    agent_port: {span_port}\n    span_port: {span_port}\n\
                 \x20   hold: {hold}\n    ping_interval: 20s\n    batch: {{ max_spans: 100, timeout: 50ms }}\n\
                 \x20   queue: {{ persistent: {{ dir: '{}' }} }}\n\
                 admin: {{ endpoint: 127.0.0.1:{admin} }}\nlog: {{ format: json }}\nservice: {{ shutdown_grace: 2s }}\n",
                dir.path().join("queue").display()
            ),
        )
        .expect("config");
    };
    let gw = Gateway {
        cfg: cfg.clone(),
        http,
        admin,
    };
    // A long hold: server spans whose callers never come stay in assembly.
    write("60s");
    let mut g = gw.spawn(&log);
    gw.ready().await;
    for t in 1u8..=5 {
        let mut s = common::span(t, 1, 1_000_000, 2_000_000);
        s.parent_span_id = vec![0xEE; 8];
        let body = prost::Message::encode_to_vec(&common::request(vec![s]));
        let r = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{http}/v1/traces"))
            .header("content-type", "application/x-protobuf")
            .body(body)
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 200);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while gw.metric("bridge_pinpoint_pending_spans").await < 5.0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        gw.metric("bridge_pinpoint_pending_spans").await,
        5.0,
        "held in assembly"
    );
    assert_eq!(collector_spans(&collector).await, 0);
    let _ = g.0.kill();
    let _ = g.0.wait();
    // Next start, with a short hold: replayed, held 1 s, emitted, sent.
    write("1s");
    let mut g = gw.spawn(&log);
    gw.ready().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while collector_spans(&collector).await < 5 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let replayed = gw.metric("bridge_persist_replayed_spans_total").await;
    assert_eq!(collector_spans(&collector).await, 5);
    assert_eq!(replayed, 5.0);
    // Sent, so acknowledged: a third start replays nothing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    sigterm(&g);
    assert!(wait_exit(&mut g, Duration::from_secs(10)).success());
    let mut g = gw.spawn(&log);
    gw.ready().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(gw.metric("bridge_persist_replayed_spans_total").await, 0.0);
    sigterm(&g);
    let _ = wait_exit(&mut g, Duration::from_secs(10));
}
