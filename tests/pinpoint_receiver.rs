//! Pinpoint agents in, OpenTelemetry out. The REAL pinpoint-node-agent (0.8.7) and the
//! REAL pinpoint-python-agent (1.1.0) report to the bridge's Pinpoint receiver, which
//! tees every call to the stand-in collector and converts the spans into the pipeline
//! (Zipkin exporter). Their HTTP services call each other:
//!
//! - nodeA → nodeB, nodeA → pyC `/sql` (a real SQLite query the Python agent records
//!   with SQL metadata), pyC → nodeB;
//! - nodeA → a test relay that translates the Pinpoint headers with the bridge's own
//!   `translate_headers` (standing in for the sidecar proxy of issue 12) → an HTTP
//!   service traced by the OpenTelemetry Python SDK, which exports to the bridge's OTLP
//!   receiver: one trace on the OTel side.

mod common;
mod pinpoint_receiver_support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use common::capture::start_capture;
use otel_pinpoint_bridge::ids::{
    AgentId, TransactionId, TranslateOptions, mapping, translate_headers,
};
use pinpoint_receiver_support as s;
use serde_json::Value;

fn service(z: &Value) -> String {
    z["localEndpoint"]["serviceName"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase()
}

fn i64_hex(v: &Value) -> String {
    let n: i64 = v.as_str().expect("i64 as string").parse().expect("i64");
    n.to_be_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// Forwards `GET /` to `target`, translating the caller's Pinpoint headers to W3C.
async fn start_relay(target: u16) -> SocketAddr {
    let handler = move |headers: HeaderMap| async move {
        let input: Vec<(String, String)> = headers
            .iter()
            .filter(|(k, _)| k.as_str().starts_with("pinpoint-"))
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    v.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let t = translate_headers(&input, &TranslateOptions::default())
            .expect("translatable Pinpoint headers");
        let client = reqwest::Client::new();
        let mut req = client.get(format!("http://127.0.0.1:{target}/mixed"));
        for (k, v) in &t.headers {
            req = req.header(k, v);
        }
        req.send()
            .await
            .expect("otel service")
            .text()
            .await
            .expect("body")
    };
    let app = axum::Router::new().fallback(handler);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_agents_tee_and_convert_into_one_trace_per_transaction() {
    let standin = s::standin(0);
    let up = standin.ports["agent"].as_u64().expect("port");
    let (zipkin, cap) = start_capture(vec![]).await;
    let yaml = format!(
        "receivers:\n  otlp:\n    grpc: {{ endpoint: 127.0.0.1:0 }}\n  pinpoint:\n    agent_endpoint: 127.0.0.1:0\n    stat_endpoint: 127.0.0.1:0\n    span_endpoint: 127.0.0.1:0\n    upstream: {{ host: 127.0.0.1, agent_port: {up}, stat_port: {up}, span_port: {up} }}\n\
         exporters:\n  zipkin:\n    type: zipkin\n    endpoint: http://{zipkin}/api/v2/spans\n    compression: none\n    batch: {{ timeout: 100ms }}\n\
         admin: {{ endpoint: 127.0.0.1:0 }}\nservice: {{ shutdown_grace: 5s }}\n"
    );
    let gw = common::start(&yaml).await;
    let addrs = gw.pinpoint_addrs.expect("pinpoint receiver");
    let otlp = gw.grpc_addr.expect("otlp grpc");

    let node_b = s::node_service("nodeB", "nodeB-1", addrs, None);
    let py_c = s::python_service("pyC", "pyC-1", addrs);
    let otel_d = s::otel_service(otlp, "otelD");
    let relay = start_relay(otel_d.port()).await;
    let node_a = s::node_service("nodeA", "nodeA-1", addrs, None);
    let (a, b, c) = (node_a.port(), node_b.port(), py_c.port());

    let body = s::get(&format!(
        "http://127.0.0.1:{a}/call?to=http://127.0.0.1:{b}/hello"
    ))
    .await;
    assert_eq!(body, "called 200: ok");
    let body = s::get(&format!(
        "http://127.0.0.1:{a}/call?to=http://127.0.0.1:{c}/sql"
    ))
    .await;
    assert_eq!(body, "called 200: name=pear");
    let body = s::get(&format!(
        "http://127.0.0.1:{c}/call?to=http://127.0.0.1:{b}/hello"
    ))
    .await;
    assert_eq!(body, "called 200: ok");
    let body = s::get(&format!("http://127.0.0.1:{a}/call?to=http://{relay}/")).await;
    assert_eq!(body, "called 200: otel ok");

    // Wait until the upstream has the spans of the four transactions and Zipkin has
    // every span converted from them plus the OTel service's span.
    let deadline = Instant::now() + Duration::from_secs(40);
    let (recorded, zspans) = loop {
        let messages = s::control(&standin, "/messages").await;
        let recorded = s::span_messages(&messages);
        let txids: BTreeSet<&String> = recorded.iter().map(|(t, _)| t).collect();
        let entry_spans = recorded
            .iter()
            .filter(|(_, b)| b["parentSpanId"].is_string())
            .count();
        let want: usize = recorded
            .iter()
            .map(|(_, b)| {
                b["spanEvent"].as_array().map_or(0, Vec::len)
                    + usize::from(b["parentSpanId"].is_string())
            })
            .sum();
        let zspans = cap.accepted_spans("/api/v2/spans");
        let otel = zspans.iter().filter(|z| service(z) == "oteld").count();
        // nodeA ×3 roots, nodeB ×2, pyC ×2 entries: 7 PSpans.
        if txids.len() >= 4 && entry_spans >= 7 && zspans.len() > want && otel >= 1 {
            break (recorded, zspans);
        }
        assert!(
            Instant::now() < deadline,
            "timed out: {} txids, {entry_spans} PSpans upstream, {} of {} spans in Zipkin (+{otel} OTel)",
            txids.len(),
            zspans.len(),
            want + 1
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    // Schema-valid Zipkin.
    let dir = tempfile::tempdir().expect("tempdir");
    let bodies: Vec<Vec<u8>> = cap
        .requests("/api/v2/spans")
        .into_iter()
        .map(|r| r.body)
        .collect();
    let report = s::validate_zipkin(&bodies, dir.path());
    assert_eq!(report["errors"], serde_json::json!([]), "{report}");

    // One trace per transaction, with the trace id `translate` gives for the txid.
    let marker = AgentId::new("otel").expect("marker");
    let by_id: HashMap<String, &Value> = zspans
        .iter()
        .map(|z| (z["id"].as_str().expect("id").to_owned(), z))
        .collect();
    let mut trace_of_tx: BTreeMap<String, String> = BTreeMap::new();
    for (txid, body) in &recorded {
        let tx = TransactionId::parse(txid).expect("txid");
        let want = mapping::txid_to_trace_id(&tx, marker).to_hex();
        trace_of_tx.insert(txid.clone(), want.clone());
        if body["parentSpanId"].is_string() {
            let z = by_id
                .get(&i64_hex(&body["spanId"]))
                .unwrap_or_else(|| panic!("PSpan {} of {txid} missing in Zipkin", body["spanId"]));
            assert_eq!(z["traceId"], want.as_str(), "trace id of {txid}");
        }
    }
    let zipkin_traces: BTreeSet<&str> = zspans
        .iter()
        .map(|z| z["traceId"].as_str().expect("traceId"))
        .collect();
    let tx_traces: BTreeSet<&str> = trace_of_tx.values().map(String::as_str).collect();
    assert_eq!(
        zipkin_traces, tx_traces,
        "one Zipkin trace per transaction, the OTel service's span included"
    );
    let summary: Vec<String> = zspans
        .iter()
        .map(|z| {
            format!(
                "{} {} {:?} {} {}",
                z["traceId"],
                z["id"],
                z["parentId"],
                service(z),
                z["name"]
            )
        })
        .collect();
    assert_eq!(
        tx_traces.len(),
        4,
        "{trace_of_tx:#?}\n{}",
        summary.join("\n")
    );

    // Every parent/child link intact: each parent is in the same trace.
    for z in &zspans {
        if let Some(p) = z["parentId"].as_str() {
            let parent = by_id
                .get(p)
                .unwrap_or_else(|| panic!("parent {p} of {z} missing"));
            assert_eq!(parent["traceId"], z["traceId"]);
        }
    }
    let roots = zspans.iter().filter(|z| z["parentId"].is_null()).count();
    assert_eq!(roots, 4, "one root per transaction");

    // Names from metadata; SQL text from SQL metadata.
    let names: BTreeSet<String> = zspans
        .iter()
        .map(|z| z["name"].as_str().unwrap_or_default().to_lowercase())
        .collect();
    assert!(!names.contains("api-metadata-not-found"), "{names:?}");
    assert!(
        names.contains("asynchronous invocation"),
        "Node API metadata: {names:?}"
    );
    assert!(
        names.contains("__main__.cursor.execute"),
        "Python API metadata: {names:?}"
    );
    let sql = zspans
        .iter()
        .find(|z| z["tags"]["db.query.text"].is_string())
        .expect("a span with db.query.text");
    assert_eq!(
        sql["tags"]["db.query.text"],
        "SELECT name FROM items WHERE id = ?"
    );
    assert_eq!(sql["kind"], "CLIENT");

    // The mixed trace: the OTel server span's parent is nodeA's converted CLIENT span.
    let otel = zspans
        .iter()
        .find(|z| service(z) == "oteld")
        .expect("OTel service span");
    let parent = by_id[otel["parentId"].as_str().expect("has a parent")];
    assert_eq!(parent["kind"], "CLIENT");
    assert_eq!(service(parent), "nodea");
    assert_eq!(parent["traceId"], otel["traceId"]);

    // The tee: the upstream got what the agents sent, with their headers.
    let rx = s::metric(
        gw.admin_addr,
        "bridge_pinpoint_receiver_messages_total",
        "method",
    )
    .await;
    let stats = s::control(&standin, "/stats").await;
    for (method, key) in [
        ("RequestAgentInfo", "Agent/RequestAgentInfo"),
        ("RequestApiMetaData", "Metadata/RequestApiMetaData"),
        ("RequestSqlMetaData", "Metadata/RequestSqlMetaData"),
        ("RequestStringMetaData", "Metadata/RequestStringMetaData"),
        ("SendSpan", "Span/SendSpan"),
        ("SendSpanBatch", "Span/SendSpanBatch"),
    ] {
        let got = stats["methods"][key]["messages"].as_f64().unwrap_or(0.0);
        let sent = rx.get(method).copied().unwrap_or(0.0);
        // A batch call is one message to the bridge and one entry per span upstream.
        if method == "SendSpanBatch" {
            assert!(
                sent >= 1.0 && got >= sent,
                "{method}: bridge {sent}, upstream {got}"
            );
        } else {
            assert_eq!(
                got, sent,
                "{method}: bridge received {sent}, upstream recorded {got}"
            );
        }
    }
    assert!(
        stats["methods"]["Agent/PingSession"]["messages"].as_f64() >= Some(3.0),
        "{stats}"
    );
    assert_eq!(stats["rejections"], 0, "{stats}");
    let messages = s::control(&standin, "/messages").await;
    let py = messages
        .as_array()
        .expect("array")
        .iter()
        .find(|m| m["headers"]["applicationname"] == "pyC")
        .expect("pyC messages upstream");
    assert_eq!(
        py["headers"]["agentname"], "pyC-1",
        "the agent's own headers are kept"
    );
    assert_eq!(py["headers"]["servicetype"], "1700");
    let ping = messages
        .as_array()
        .expect("array")
        .iter()
        .find(|m| m["method"] == "PingSession" && m["headers"]["agentid"] == "nodeA-1")
        .expect("nodeA's ping stream upstream");
    assert_eq!(ping["socketidPresent"], true);

    for p in [node_a, node_b, py_c, otel_d] {
        p.stop();
    }
    gw.shutdown().await;
}
