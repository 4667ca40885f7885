//! The header-translating sidecar proxy with real peers: the real `pinpoint-node-agent`
//! (npm) and OpenTelemetry Python SDK services (default BatchSpanProcessor: exports every
//! 5 s, so callees often arrive first), each OTel service with its own sidecar process
//! (the gateway binary: proxy + bridge, no shared store), all reporting to the stand-in
//! Pinpoint collector, whose checker applies the Pinpoint web's call-tree rules.

mod proxy_support;

use std::collections::HashMap;
use std::time::Duration;

use proxy_support::{Sidecar, StandIn, free_port, node_service, python_service, run_python};
use serde_json::Value;

/// A Pinpoint span or chunk as recorded, with the application that sent it.
#[derive(Debug, Clone)]
struct Seg {
    app: String,
    txid: String,
    span_id: String,
    parent_span_id: String,
    parent_app: Option<String>,
    parent_type: Option<i64>,
    acceptor: Option<String>,
    service_type: i64,
}

#[derive(Debug, Clone)]
struct Call {
    app: String,
    txid: String,
    from_span: String,
    next_span_id: String,
    destination: String,
}

fn txid_of(body: &Value) -> String {
    let t = &body["transactionId"];
    format!(
        "{}^{}^{}",
        t["agentId"].as_str().unwrap_or(""),
        t["agentStartTime"],
        t["sequence"]
    )
    .replace('"', "")
}

async fn recorded(standin: &StandIn) -> (Vec<Seg>, Vec<Call>) {
    let all = standin.get("/messages?service=Span").await;
    let (mut segs, mut calls) = (Vec::new(), Vec::new());
    for m in all.as_array().expect("messages") {
        let app = m["headers"]["applicationname"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let Some(field) = m["message"]["field"].as_str() else {
            continue;
        };
        let body = &m["message"][field];
        let span_id = body["spanId"].as_str().unwrap_or("").to_owned();
        let txid = txid_of(body);
        if field == "span" {
            let pi = &body["acceptEvent"]["parentInfo"];
            segs.push(Seg {
                app: app.clone(),
                txid: txid.clone(),
                span_id: span_id.clone(),
                parent_span_id: body["parentSpanId"].as_str().unwrap_or("").to_owned(),
                parent_app: pi["parentApplicationName"]
                    .as_str()
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
                parent_type: pi["parentApplicationType"].as_i64(),
                acceptor: pi["acceptorHost"]
                    .as_str()
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
                service_type: body["applicationServiceType"].as_i64().unwrap_or(0),
            });
        }
        for ev in body["spanEvent"].as_array().into_iter().flatten() {
            let me = &ev["nextEvent"]["messageEvent"];
            let Some(next) = me["nextSpanId"].as_str() else {
                continue;
            };
            if next == "-1" || next == "0" {
                continue;
            }
            calls.push(Call {
                app: app.clone(),
                txid: txid.clone(),
                from_span: span_id.clone(),
                next_span_id: next.to_owned(),
                destination: me["destinationId"].as_str().unwrap_or("").to_owned(),
            });
        }
    }
    (segs, calls)
}

/// The calltree report is clean, and every call `caller_app → callee_app` links exactly:
/// the caller event's nextSpanId is the callee's spanId, the callee's parentSpanId is
/// the caller's spanId, its parentInfo names the caller, and acceptorHost ==
/// destinationId.
async fn assert_linked(
    standin: &StandIn,
    report: &Value,
    transactions: u64,
    links: &[(&str, &str)],
) {
    let pretty = serde_json::to_string_pretty(report).unwrap_or_default();
    let s = &report["summary"];
    assert_eq!(s["transactions"], transactions, "{pretty}");
    assert_eq!(s["unknownNodes"], 0, "{pretty}");
    assert_eq!(s["corruptedNodes"], 0, "{pretty}");
    assert_eq!(s["ok"], true, "{pretty}");
    for tx in report["transactions"].as_array().expect("transactions") {
        // Edges from service types the checker does not know (`assumedStatistics`) are
        // left out: the Node agent's own ASYNC_HTTP_CLIENT_INTERNAL (9057) event carries
        // its own host as destinationId, which no acceptor can match.
        for e in tx["edges"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["assumedStatistics"] != true)
        {
            assert!(
                e["unresolved"].is_null(),
                "unresolved edge (acceptorHost != destinationId): {e}\n{pretty}"
            );
        }
    }
    let (segs, calls) = recorded(standin).await;
    let by_id: HashMap<(&str, &str), &Seg> = segs
        .iter()
        .map(|s| ((s.txid.as_str(), s.span_id.as_str()), s))
        .collect();
    for (caller_app, callee_app) in links {
        let call = calls
            .iter()
            .find(|c| c.app == *caller_app && by_id.get(&(c.txid.as_str(), c.next_span_id.as_str())).is_some_and(|s| s.app == *callee_app))
            .unwrap_or_else(|| panic!("no call {caller_app} -> {callee_app} whose nextSpanId is a {callee_app} span: {calls:#?}\n{segs:#?}"));
        let callee = by_id[&(call.txid.as_str(), call.next_span_id.as_str())];
        let caller = by_id
            .get(&(call.txid.as_str(), call.from_span.as_str()))
            .unwrap_or_else(|| panic!("caller segment {} missing: {segs:#?}", call.from_span));
        assert_eq!(
            callee.parent_span_id, caller.span_id,
            "{caller_app} -> {callee_app}: parentSpanId\n{segs:#?}"
        );
        assert_eq!(
            callee.parent_app.as_deref(),
            Some(*caller_app),
            "{callee:?}"
        );
        if caller.service_type != 0 {
            assert_eq!(
                callee.parent_type,
                Some(caller.service_type),
                "{callee:?} vs {caller:?}"
            );
        }
        assert_eq!(
            callee.acceptor.as_deref(),
            Some(call.destination.as_str()),
            "acceptorHost == destinationId: {callee:?} {call:?}"
        );
    }
}

async fn http_get(url: &str) -> String {
    let r = reqwest::get(url).await.expect("get");
    assert_eq!(r.status(), 200, "{url}");
    r.text().await.expect("text")
}

/// Both directions between a real Pinpoint agent (Node) and an OTel Python service:
/// Python → (its egress) → Node, and Node → (Python's ingress) → Python. Each request is
/// one transaction with 0 UNKNOWN and 0 CORRUPTED, linked exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinpoint_agent_and_otel_service_link_both_ways_through_the_proxy() {
    let standin = StandIn::start();
    let (_node, node_port) = node_service("node-app", "node-agent-1", standin.port);
    let (py_port, ingress, egress) = (free_port(), free_port(), free_port());
    let sidecar = Sidecar::start(
        standin.port,
        &format!(
            "  application_name: py-app\n  ingress: {{ listen: 127.0.0.1:{ingress}, upstream: 127.0.0.1:{py_port} }}\n  egress: {{ listen: 127.0.0.1:{egress}, upstream: 127.0.0.1:{node_port} }}\n"
        ),
    )
    .await;
    let mut py = python_service("http", "py-app", py_port, sidecar.otlp, Some(egress), None);

    // OTel → Pinpoint: a request without context enters Python; Python calls Node.
    let body = http_get(&format!("http://127.0.0.1:{ingress}/hop?depth=1")).await;
    assert_eq!(body, "hello from py-app <- hello from node");
    // Pinpoint → OTel: Node (the agent starts the trace) calls Python's ingress.
    let body = http_get(&format!(
        "http://127.0.0.1:{node_port}/call?url=http://127.0.0.1:{ingress}/hop%3Fdepth%3D0"
    ))
    .await;
    assert_eq!(body, "node got 200: hello from py-app");

    py.finish(Duration::from_secs(10));
    let report = standin.wait_calltree(4, Duration::from_secs(30)).await;
    assert_linked(
        &standin,
        &report,
        2,
        &[("py-app", "node-app"), ("node-app", "py-app")],
    )
    .await;

    let metrics = sidecar.metrics().await;
    for want in [
        "bridge_proxy_trace_headers_total{listener=\"ingress\",action=\"started\"} 1",
        "bridge_proxy_trace_headers_total{listener=\"ingress\",action=\"pinpoint_to_w3c\"} 1",
        "bridge_proxy_trace_headers_total{listener=\"egress\",action=\"w3c_to_pinpoint\"} 1",
        "bridge_proxy_egress_segments_total{source=\"confirmed\"} 1",
        "bridge_pinpoint_unresolved_parent_links_total",
    ] {
        if want.starts_with("bridge_pinpoint_unresolved") {
            assert!(
                !metrics
                    .lines()
                    .any(|l| l.starts_with(want) && !l.ends_with(" 0")),
                "{metrics}"
            );
        } else {
            assert!(metrics.contains(want), "missing {want}:\n{metrics}");
        }
    }
}

/// A chain of OTel services, each with its own sidecar process (proxy + bridge, no
/// shared store): the caller's egress forwards to the callee's ingress.
struct Chain {
    sidecars: Vec<Sidecar>,
    services: Vec<proxy_support::Proc>,
    /// Ingress port of each service.
    ingress: Vec<u16>,
    /// Egress port of each service.
    egress: Vec<u16>,
}

async fn chain(standin: &StandIn, mode: &str, names: &[&str]) -> Chain {
    let n = names.len();
    let svc: Vec<u16> = (0..n).map(|_| free_port()).collect();
    let ingress: Vec<u16> = (0..n).map(|_| free_port()).collect();
    let egress: Vec<u16> = (0..n).map(|_| free_port()).collect();
    let mut sidecars = Vec::new();
    let mut services = Vec::new();
    for i in 0..n {
        let mut yaml = format!(
            "  application_name: {}\n  ingress: {{ listen: 127.0.0.1:{}, upstream: 127.0.0.1:{} }}\n",
            names[i], ingress[i], svc[i]
        );
        if i + 1 < n {
            yaml.push_str(&format!(
                "  egress: {{ listen: 127.0.0.1:{}, upstream: 127.0.0.1:{} }}\n",
                egress[i],
                ingress[i + 1]
            ));
        }
        let sidecar = Sidecar::start(standin.port, &yaml).await;
        // For gRPC the server span's address is what the caller dialed: its egress.
        let public = if i == 0 { ingress[0] } else { egress[i - 1] };
        services.push(python_service(
            mode,
            names[i],
            svc[i],
            sidecar.otlp,
            (i + 1 < n).then_some(egress[i]),
            Some(public),
        ));
        sidecars.push(sidecar);
    }
    Chain {
        sidecars,
        services,
        ingress,
        egress,
    }
}

/// Three OTel services, each with its own sidecar and no shared store, link with 0
/// UNKNOWN: every egress writes `ppb` `ps`/`sp`, which the callee's bridge reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_otel_services_with_own_sidecars_link_without_a_shared_store() {
    let standin = StandIn::start();
    let mut c = chain(&standin, "http", &["svc-a", "svc-b", "svc-c"]).await;
    let body = http_get(&format!("http://127.0.0.1:{}/hop?depth=2", c.ingress[0])).await;
    assert_eq!(
        body,
        "hello from svc-a <- hello from svc-b <- hello from svc-c"
    );
    for s in &mut c.services {
        s.finish(Duration::from_secs(10));
    }
    let report = standin.wait_calltree(3, Duration::from_secs(30)).await;
    assert_linked(
        &standin,
        &report,
        1,
        &[("svc-a", "svc-b"), ("svc-b", "svc-c")],
    )
    .await;
    let b = c.sidecars[1].metrics().await;
    assert!(
        b.contains("bridge_proxy_egress_segments_total{source=\"confirmed\"} 1"),
        "{b}"
    );
    let _ = &c.egress;
}

/// gRPC (h2c) through the proxy: an OTel gRPC client and server (grpcio, propagation
/// by the SDK's propagator in the metadata), each with its own sidecar.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_between_otel_services_links_through_the_proxy() {
    let standin = StandIn::start();
    let mut c = chain(&standin, "grpc", &["grpc-a", "grpc-b"]).await;
    let out = run_python(
        "proxy_grpc_call.py",
        &[
            "--target",
            &format!("127.0.0.1:{}", c.ingress[0]),
            "--depth",
            "1",
        ],
    );
    assert_eq!(out.trim(), "hello from grpc-a <- hello from grpc-b");
    for s in &mut c.services {
        s.finish(Duration::from_secs(10));
    }
    let report = standin.wait_calltree(2, Duration::from_secs(30)).await;
    assert_linked(&standin, &report, 1, &[("grpc-a", "grpc-b")]).await;
    let a = c.sidecars[0].metrics().await;
    assert!(
        a.contains("bridge_proxy_requests_total{listener=\"egress\",outcome=\"2xx\"} 1"),
        "{a}"
    );
}
