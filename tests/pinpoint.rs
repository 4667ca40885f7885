//! Real traces from the OpenTelemetry Python SDK (three services A → B → C, a DB call and
//! an error) pass through the bridge to a stand-in Pinpoint collector built from
//! Pinpoint's own generated code, whose checker applies the Pinpoint web's call-tree and
//! server-map rules.

mod common;

use std::time::{Duration, Instant};

use otel_pinpoint_bridge::ids::{AgentId, TraceId, mapping};
use serde_json::{Value, json};

use common::whole::{self, Endpoints, StandIn, Traffic};

fn gateway_config(port: u16, extra: &str) -> String {
    format!(
        "receivers:\n  otlp:\n    grpc: {{ endpoint: 127.0.0.1:0 }}\n\
         exporters:\n  pinpoint:\n    type: pinpoint\n    host: 127.0.0.1\n    agent_port: {port}\n    span_port: {port}\n    hold: 3s\n    ping_interval: 20s\n    batch: {{ max_spans: 1000, timeout: 50ms }}\n{extra}\
         admin: {{ endpoint: 127.0.0.1:0 }}\nservice: {{ shutdown_grace: 5s }}\n"
    )
}

async fn run_scenario(version: &str, order: &str, chunks: u64) -> (Value, Value, StandIn) {
    run_scenario_with(version, order, chunks, "").await
}

async fn run_scenario_with(
    version: &str,
    order: &str,
    chunks: u64,
    routes: &str,
) -> (Value, Value, StandIn) {
    let standin = StandIn::start(version);
    let gw = common::start(&format!("{}{routes}", gateway_config(standin.port, ""))).await;
    let endpoint = format!("http://{}", gw.grpc_addr.expect("grpc"));
    let order_owned = order.to_owned();
    let sent = tokio::task::spawn_blocking(move || {
        common::run_python(
            "three_services.py",
            &["--endpoint", &endpoint, "--order", &order_owned],
        )
    })
    .await
    .expect("python");
    let report = standin.wait_calltree(3, chunks).await;
    gw.shutdown().await;
    (sent, report, standin)
}

/// The checks every scenario must pass.
async fn assert_transaction(sent: &Value, report: &Value, standin: &StandIn) {
    let s = &report["summary"];
    let pretty = serde_json::to_string_pretty(report).unwrap_or_default();
    assert_eq!(
        s["transactions"], 1,
        "one TransactionId for every span: {pretty}"
    );
    assert_eq!(s["spans"], 3, "{pretty}");
    assert_eq!(s["unknownNodes"], 0, "{pretty}");
    assert_eq!(s["corruptedNodes"], 0, "{pretty}");
    assert_eq!(s["ok"], true, "{pretty}");

    // The TransactionId is the lossless OTel-born one (ids.md section 2).
    let trace = TraceId::from_hex(sent["trace_id"].as_str().expect("trace id")).expect("hex");
    let txid = mapping::trace_id_to_txid(trace, AgentId::new("otel").expect("marker"));
    assert_eq!(
        report["transactions"][0]["transactionId"],
        json!(txid.to_string()),
        "{pretty}"
    );

    // Server map: USER → frontend → orders → {payments, shop (PostgreSQL)}.
    let edges: Vec<(String, String)> = report["transactions"][0]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| {
            (
                e["from"]["application"].as_str().unwrap_or("").to_owned(),
                e["to"]["application"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    for want in [
        ("USER", "frontend"),
        ("frontend", "orders"),
        ("orders", "payments"),
        ("orders", "shop"),
    ] {
        assert!(
            edges.iter().any(|(f, t)| f == want.0 && t == want.1),
            "missing edge {want:?} in {edges:?}"
        );
    }
    assert!(
        report["transactions"][0]["edges"]
            .as_array()
            .expect("edges")
            .iter()
            .all(|e| e["unresolved"].is_null()),
        "every RPC edge resolves to a real application (acceptorHost = destinationId): {pretty}"
    );

    // Every agent got AgentInfo and a ping with a socketid.
    let messages = standin.get("/messages").await;
    let all = messages.as_array().expect("messages");
    let agents_of = |method: &str| -> std::collections::BTreeSet<String> {
        all.iter()
            .filter(|m| m["method"] == method)
            .map(|m| {
                format!(
                    "{}/{}",
                    m["headers"]["applicationname"].as_str().unwrap_or(""),
                    m["headers"]["agentid"].as_str().unwrap_or("")
                )
            })
            .collect()
    };
    let span_agents = agents_of(if all.iter().any(|m| m["method"] == "SendSpanBatch") {
        "SendSpanBatch"
    } else {
        "SendSpan"
    });
    assert_eq!(span_agents.len(), 3, "{span_agents:?}");
    assert_eq!(agents_of("RequestAgentInfo"), span_agents);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let messages = standin
            .get("/messages?service=Agent&method=PingSession")
            .await;
        let pinged: std::collections::BTreeSet<String> = messages
            .as_array()
            .expect("pings")
            .iter()
            .filter(|m| m["socketidPresent"] == true)
            .map(|m| {
                format!(
                    "{}/{}",
                    m["headers"]["applicationname"].as_str().unwrap_or(""),
                    m["headers"]["agentid"].as_str().unwrap_or("")
                )
            })
            .collect();
        if pinged == span_agents {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "pings {pinged:?} vs agents {span_agents:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The identity chain: service.instance.id UUID → 22-char base64url agent id.
    assert!(
        span_agents.contains("orders/IiIiIiIiQiKCIiIiIiIiIg"),
        "{span_agents:?}"
    );
    // The error: C's span carries err and an exceptionInfo whose class was registered.
    let strings = standin
        .get("/messages?service=Metadata&method=RequestStringMetaData")
        .await;
    assert!(strings.to_string().contains("ValueError"), "{strings}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_services_on_a_3_1_collector() {
    let (sent, report, standin) = run_scenario("3.1", "natural", 0).await;
    assert_transaction(&sent, &report, &standin).await;
    let stats = standin.get("/stats").await;
    assert!(
        stats.to_string().contains("SendSpanBatch"),
        "3.1 collectors get SendSpanBatch: {stats}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_services_on_a_3_0_collector_use_the_stream() {
    let (sent, report, standin) = run_scenario("3.0", "natural", 0).await;
    assert_transaction(&sent, &report, &standin).await;
    let messages = standin.get("/messages?service=Span&method=SendSpan").await;
    assert_eq!(
        messages.as_array().map(Vec::len),
        Some(3),
        "spans came over the SendSpan stream"
    );
}

/// The callees' spans arrive before the caller's: the hold window joins them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callee_spans_first_are_held_until_the_caller_arrives() {
    let (sent, report, standin) = run_scenario("3.1", "callee-first", 0).await;
    assert_transaction(&sent, &report, &standin).await;
}

/// A span ending after its segment was sent arrives as a chunk, and the tree stays valid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_span_becomes_a_chunk() {
    let (sent, report, standin) = run_scenario("3.1", "late", 1).await;
    assert_eq!(report["summary"]["chunks"], 1, "{report}");
    assert_transaction(&sent, &report, &standin).await;
}

/// A route's `pinpoint:` overrides rename the application and set its type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_overrides_name_the_application() {
    let routes = "routes:\n  - name: payments-as-tomcat\n    match: { resource: { service.name: payments } }\n    to: [pinpoint]\n    pinpoint: { application_name: billing, service_type: 1010 }\n";
    let (_sent, report, standin) = run_scenario_with("3.1", "natural", 0, routes).await;
    assert_eq!(report["summary"]["ok"], true, "{report}");
    let info = standin
        .get("/messages?service=Agent&method=RequestAgentInfo&applicationname=billing")
        .await;
    let info = info.as_array().expect("messages");
    assert_eq!(info.len(), 1, "{info:?}");
    assert_eq!(info[0]["headers"]["servicetype"], "1010");
    let edges = report["transactions"][0]["edges"].to_string();
    assert!(
        edges.contains("\"billing\""),
        "the server map shows the new name: {edges}"
    );
}

/// As deployed: five services in five processes with the real SDK at its default
/// BatchSpanProcessor settings (5 s delay), calling each other over HTTP, 200 traces
/// started at random over 30 s, through one gateway on its default Pinpoint settings.
/// Callees' spans usually arrive first; every trace must be whole in Pinpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_services_at_sdk_defaults_are_all_whole() {
    let standin = StandIn::start("3.1");
    let gw = common::start(&whole::gateway_yaml(standin.port)).await;
    let endpoint = Endpoints::One(format!("http://{}", gw.grpc_addr.expect("grpc")));
    let sent =
        tokio::task::spawn_blocking(move || whole::five_services(&endpoint, Traffic::default()))
            .await
            .expect("python");
    // Every provider has shut down (flushed): all spans reached the gateway. Whole
    // traces need no hold to run out, so give it only the time to send.
    let w = whole::wait_whole(&standin, &sent, Duration::from_secs(15)).await;
    gw.shutdown().await;
    w.assert_all_whole();
}
