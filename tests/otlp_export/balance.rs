//! Trace-id load balancing over three downstream bridges (real processes of the
//! binary, each with a file exporter).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use otel_pinpoint_bridge::app::Running;

use crate::{free_port, index, metric, post, rich_request, tmp, trace_id};

const BIN: &str = env!("CARGO_BIN_EXE_otel-pinpoint-bridge");

/// A downstream bridge process: OTLP/gRPC in on a fixed port, file exporter out.
pub struct Downstream {
    pub grpc: u16,
    pub out: PathBuf,
    cfg: PathBuf,
    admin: u16,
    child: Option<Child>,
}

impl Downstream {
    pub async fn start(dir: &Path, name: &str) -> Self {
        let (grpc, admin) = (free_port(), free_port());
        let out = dir.join(format!("{name}.jsonl"));
        let cfg = dir.join(format!("{name}.yaml"));
        std::fs::write(
            &cfg,
            format!(
                "receivers:\n  otlp:\n    grpc: {{ endpoint: 127.0.0.1:{grpc} }}\n\
                 exporters:\n  out:\n    type: file\n    path: '{}'\n    batch: {{ max_spans: 5000, timeout: 50ms }}\n\
                 admin: {{ endpoint: 127.0.0.1:{admin} }}\nservice: {{ shutdown_grace: 2s }}\n",
                out.display()
            ),
        )
        .expect("write config");
        let mut d = Self {
            grpc,
            out,
            cfg,
            admin,
            child: None,
        };
        d.run().await;
        d
    }

    async fn run(&mut self) {
        let child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(&self.cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn downstream bridge");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{}/readyz", self.admin)).await
                && r.status() == 200
            {
                return;
            }
            assert!(Instant::now() < deadline, "downstream never became ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: no draining, the port closes at once.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub async fn restart(&mut self) {
        self.kill();
        self.run().await;
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc)
    }
}

impl Drop for Downstream {
    fn drop(&mut self) {
        self.kill();
    }
}

pub async fn three(dir: &Path) -> Vec<Downstream> {
    let mut v = Vec::new();
    for i in 1..=3 {
        v.push(Downstream::start(dir, &format!("down{i}")).await);
    }
    v
}

/// A gateway balancing over `endpoints` (OTLP/gRPC) with `retry`.
pub async fn balancer(name: &str, endpoints: &[String], retry: &str) -> Running {
    crate::common::start(&format!(
        "receivers:\n  otlp:\n    http: {{ endpoint: 127.0.0.1:0 }}\n\
         exporters:\n  {name}:\n    type: otlp\n    endpoints: [{}]\n    batch: {{ timeout: 50ms }}\n    retry: {retry}\n\
         admin: {{ endpoint: 127.0.0.1:0 }}\nservice: {{ shutdown_grace: 2s }}\n",
        endpoints.join(", ")
    ))
    .await
}

/// Sends traces `range` as a service would see them exported: each callee's spans in
/// one request, the callers' in a later one (different batches).
pub async fn send_traces(gw: &Running, range: std::ops::Range<u64>, salt: u8) {
    let mut req = rich_request(range);
    for rs in &mut req.resource_spans {
        for sp in rs.scope_spans.iter_mut().flat_map(|s| &mut s.spans) {
            sp.span_id[1] = salt;
            if !sp.parent_span_id.is_empty() {
                sp.parent_span_id[1] = salt;
            }
        }
    }
    for rs in req.resource_spans.into_iter().rev() {
        post(
            gw,
            &ExportTraceServiceRequest {
                resource_spans: vec![rs],
            },
        )
        .await;
        tokio::time::sleep(Duration::from_millis(120)).await;
    }
}

/// For each trace id: the downstreams (by index) its spans with `salt` landed on, and
/// how many spans it has there in all.
fn placement(downs: &[Downstream], salt: u8) -> BTreeMap<Vec<u8>, (BTreeSet<usize>, usize)> {
    let mut out: BTreeMap<Vec<u8>, (BTreeSet<usize>, usize)> = BTreeMap::new();
    for (i, d) in downs.iter().enumerate() {
        for (id, (.., span)) in index(&crate::common::read_lines(&d.out)) {
            if id[1] == salt {
                let e = out.entry(span.trace_id.clone()).or_default();
                e.0.insert(i);
                e.1 += 1;
            }
        }
    }
    out
}

async fn wait_placed(
    downs: &[Downstream],
    salt: u8,
    spans: usize,
    within: Duration,
) -> BTreeMap<Vec<u8>, (BTreeSet<usize>, usize)> {
    let deadline = Instant::now() + within;
    loop {
        let p = placement(downs, salt);
        let n: usize = p.values().map(|(_, c)| c).sum();
        if n >= spans || Instant::now() > deadline {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every trace whole on exactly one downstream; returns trace -> downstream.
fn whole(p: &BTreeMap<Vec<u8>, (BTreeSet<usize>, usize)>, traces: u64) -> BTreeMap<Vec<u8>, usize> {
    assert_eq!(p.len() as u64, traces, "traces seen");
    p.iter()
        .map(|(t, (on, n))| {
            assert_eq!(on.len(), 1, "trace {t:?} split over downstreams {on:?}");
            assert_eq!(*n, 3, "trace {t:?} has {n} spans, not 3");
            (t.clone(), *on.iter().next().expect("one"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_trace_whole_on_one_downstream_and_removal_moves_only_its_share() {
    let dir = tmp();
    let downs = three(dir.path()).await;
    let n = 600u64;
    let all: Vec<String> = downs.iter().map(Downstream::endpoint).collect();
    let gw = balancer("lb_a", &all, "{ initial: 50ms, max: 1s }").await;
    send_traces(&gw, 1..n + 1, 1).await;
    let before = whole(
        &wait_placed(&downs, 1, 3 * n as usize, Duration::from_secs(30)).await,
        n,
    );
    for i in 0..3 {
        let share = before.values().filter(|d| **d == i).count() as f64 / n as f64;
        assert!(
            (share - 1.0 / 3.0).abs() < 0.1,
            "downstream {i} got {share} of the traces"
        );
    }
    assert_eq!(
        metric(
            &gw,
            "bridge_exporter_spans_failed_total",
            &[("exporter", "lb_a")]
        )
        .await,
        0.0
    );
    gw.shutdown().await;

    // The same trace ids through a gateway that knows only the first two downstreams.
    let gw = balancer("lb_b", &all[..2], "{ initial: 50ms, max: 1s }").await;
    send_traces(&gw, 1..n + 1, 2).await;
    let after = whole(
        &wait_placed(&downs, 2, 3 * n as usize, Duration::from_secs(30)).await,
        n,
    );
    let mut moved = 0;
    for (t, d) in &after {
        if before[t] != *d {
            assert_eq!(
                before[t], 2,
                "only the removed downstream's traces move ({t:?})"
            );
            moved += 1;
        }
    }
    let frac = f64::from(moved) / n as f64;
    assert!(frac <= 1.0 / 3.0 + 0.05, "{frac} of the traces moved");
    assert!(moved > 0, "the removed downstream had traces");
    gw.shutdown().await;
    assert_eq!(trace_id(1).len(), 16);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_downstream_killed_for_10s_loses_nothing_and_retries_are_counted() {
    let dir = tmp();
    let mut downs = three(dir.path()).await;
    let all: Vec<String> = downs.iter().map(Downstream::endpoint).collect();
    let gw = balancer(
        "lb_kill",
        &all,
        "{ initial: 200ms, max: 2s, max_elapsed: 60s }",
    )
    .await;
    let n = 300u64;
    send_traces(&gw, 1..n / 2 + 1, 3).await;
    wait_placed(&downs, 3, 3 * (n / 2) as usize, Duration::from_secs(30)).await;
    downs[1].kill();
    let killed = Instant::now();
    send_traces(&gw, n / 2 + 1..n + 1, 3).await;
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(killed.elapsed())).await;
    let retries = metric(
        &gw,
        "bridge_exporter_retries_total",
        &[("exporter", "lb_kill")],
    )
    .await;
    assert!(
        retries > 0.0,
        "retries against the dead downstream are counted"
    );
    downs[1].restart().await;
    let placed = whole(
        &wait_placed(&downs, 3, 3 * n as usize, Duration::from_secs(30)).await,
        n,
    );
    assert!(
        placed.values().any(|d| *d == 1),
        "the restarted downstream got its traces"
    );
    assert_eq!(
        metric(
            &gw,
            "bridge_exporter_spans_failed_total",
            &[("exporter", "lb_kill")]
        )
        .await,
        0.0,
        "nothing given up"
    );
    assert_eq!(
        metric(
            &gw,
            "bridge_otlp_delivered_spans_total",
            &[("exporter", "lb_kill")]
        )
        .await,
        (3 * n) as f64
    );
    gw.shutdown().await;
}

/// `resolve:` turns a DNS name into endpoints: `localhost` resolves to the downstream's
/// address (an IPv6 `::1` answer, where a machine gives one, is a dead endpoint here:
/// `reroute_after` moves its traces to the live one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dns_name_is_resolved_into_endpoints() {
    let dir = tmp();
    let out = dir.path().join("dns.jsonl");
    let down = crate::file_gateway(&out, 0).await;
    let port = down.grpc_addr.expect("grpc").port();
    let gw = crate::common::start(&format!(
        "receivers:\n  otlp:\n    http: {{ endpoint: 127.0.0.1:0 }}\n\
         exporters:\n  lb_dns:\n    type: otlp\n    resolve: {{ endpoint: 'http://localhost:{port}', interval: 1s }}\n    balance: {{ reroute_after: 500ms }}\n    batch: {{ timeout: 50ms }}\n    retry: {{ initial: 50ms, max: 200ms }}\n\
         admin: {{ endpoint: 127.0.0.1:0 }}\nservice: {{ shutdown_grace: 2s }}\n"
    ))
    .await;
    // The first lookup may not have happened yet: the pipeline retries until it has.
    send_traces(&gw, 1..21, 4).await;
    let found = crate::wait_spans(&out, 60, Duration::from_secs(20)).await;
    assert_eq!(found.len(), 60);
    assert!(
        metric(
            &gw,
            "bridge_otlp_resolve_total",
            &[("exporter", "lb_dns"), ("outcome", "ok")]
        )
        .await
            >= 1.0
    );
    assert!(
        metric(
            &gw,
            "bridge_otlp_endpoints",
            &[("exporter", "lb_dns"), ("state", "up")]
        )
        .await
            >= 1.0
    );
    gw.shutdown().await;
    down.shutdown().await;
}

/// With `reroute_after`, a dead downstream's traces go to the next endpoints on the
/// ring (counted as moved) instead of waiting; still every trace whole on one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reroute_after_moves_a_dead_downstreams_traces_whole() {
    let dir = tmp();
    let mut downs = three(dir.path()).await;
    let all: Vec<String> = downs.iter().map(Downstream::endpoint).collect();
    let gw = crate::common::start(&format!(
        "receivers:\n  otlp:\n    http: {{ endpoint: 127.0.0.1:0 }}\n\
         exporters:\n  lb_move:\n    type: otlp\n    endpoints: [{}]\n    balance: {{ reroute_after: 1s }}\n    batch: {{ timeout: 50ms }}\n    retry: {{ initial: 100ms, max: 500ms }}\n\
         admin: {{ endpoint: 127.0.0.1:0 }}\nservice: {{ shutdown_grace: 2s }}\n",
        all.join(", ")
    ))
    .await;
    downs[2].kill();
    let n = 150u64;
    send_traces(&gw, 1..n + 1, 5).await;
    let placed = whole(
        &wait_placed(&downs, 5, 3 * n as usize, Duration::from_secs(20)).await,
        n,
    );
    assert!(
        placed.values().all(|d| *d != 2),
        "nothing on the dead downstream"
    );
    let moved = metric(
        &gw,
        "bridge_otlp_spans_moved_total",
        &[("exporter", "lb_move"), ("reason", "endpoint_down")],
    )
    .await;
    assert!(
        moved > 0.0,
        "the dead downstream's spans were moved and counted"
    );
    assert_eq!(
        metric(
            &gw,
            "bridge_exporter_spans_failed_total",
            &[("exporter", "lb_move")]
        )
        .await,
        0.0
    );
    assert_eq!(
        metric(
            &gw,
            "bridge_otlp_endpoints",
            &[("exporter", "lb_move"), ("state", "down")]
        )
        .await,
        1.0
    );
    gw.shutdown().await;
}
