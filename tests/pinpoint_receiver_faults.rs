//! Faults around the Pinpoint receiver: the upstream collector down for 20 s while the
//! REAL Node agent keeps streaming; malformed and invalid messages (the collector's
//! statuses, a metric, no crash); and the tee forwarding the bytes exactly as received,
//! unknown fields included.

mod common;
mod pinpoint_receiver_support;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, Uri};
use common::capture::start_capture;
use otel_pinpoint_bridge::exporter::pinpoint::proto::{
    PAgentInfo, PApiMetaData, PResult, PSpan, PSpanMessage, PSpanMessageBatch, PSpanResultBatch,
    PTransactionId, p_span_message,
};
use otel_pinpoint_bridge::receiver::pinpoint::codec::RawCodec;
use pinpoint_receiver_support as s;
use prost::Message as _;
use tonic::transport::Channel;
use tonic::{Code, Request};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn gateway_yaml(upstream: u16, zipkin: std::net::SocketAddr) -> String {
    format!(
        "receivers:\n  otlp:\n    grpc: {{ endpoint: 127.0.0.1:0 }}\n  pinpoint:\n    agent_endpoint: 127.0.0.1:0\n    stat_endpoint: 127.0.0.1:0\n    span_endpoint: 127.0.0.1:0\n    upstream: {{ host: 127.0.0.1, agent_port: {upstream}, stat_port: {upstream}, span_port: {upstream}, connect_timeout: 500ms, retry_backoff: 1s }}\n\
         exporters:\n  zipkin:\n    type: zipkin\n    endpoint: http://{zipkin}/api/v2/spans\n    compression: none\n    batch: {{ timeout: 100ms }}\n\
         admin: {{ endpoint: 127.0.0.1:0 }}\nservice: {{ shutdown_grace: 5s }}\n"
    )
}

/// A raw gRPC client call: `messages` as received bytes, `headers` as metadata.
async fn call(
    addr: std::net::SocketAddr,
    path: &'static str,
    headers: &[(&'static str, &str)],
    messages: Vec<Vec<u8>>,
) -> Result<Vec<Bytes>, tonic::Status> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let stream = tokio_stream::iter(messages.into_iter().map(Bytes::from));
    let mut req = Request::new(stream);
    for (k, v) in headers {
        req.metadata_mut().insert(*k, v.parse().expect("ascii"));
    }
    let resp = grpc
        .streaming(req, http::uri::PathAndQuery::from_static(path), RawCodec)
        .await?;
    let mut answers = resp.into_inner();
    let mut out = Vec::new();
    while let Some(m) = answers.message().await? {
        out.push(m);
    }
    Ok(out)
}

const AGENT: &[(&str, &str)] = &[
    ("agentid", "raw-1"),
    ("applicationname", "raw"),
    ("starttime", "1700000000000"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_down_for_20s_agents_keep_streaming_and_drops_are_counted() {
    let up = free_port();
    let standin = s::standin(up);
    let (zipkin, cap) = start_capture(vec![]).await;
    let gw = common::start(&gateway_yaml(up, zipkin)).await;
    let addrs = gw.pinpoint_addrs.expect("pinpoint receiver");
    let node_b = s::node_service("nodeB", "nodeB-1", addrs, None);
    let node_a = s::node_service("nodeA", "nodeA-1", addrs, None);
    let url = format!(
        "http://127.0.0.1:{}/call?to=http://127.0.0.1:{}/hello",
        node_a.port(),
        node_b.port()
    );

    let roots = |cap: &common::capture::Capture| -> BTreeSet<String> {
        cap.accepted_spans("/api/v2/spans")
            .iter()
            .filter(|z| z["parentId"].is_null())
            .map(|z| z["traceId"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(s::get(&url).await, "called 200: ok");
    let deadline = Instant::now() + Duration::from_secs(20);
    while s::span_messages(&s::control(&standin, "/messages").await).len() < 3 {
        assert!(
            Instant::now() < deadline,
            "the upstream never got the first transaction"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The collector goes away for 20 s; the agents keep sending through the bridge.
    drop(standin);
    let down_since = Instant::now();
    let mut sent = 1;
    while down_since.elapsed() < Duration::from_secs(20) {
        assert_eq!(s::get(&url).await, "called 200: ok");
        sent += 1;
        // Agent info is answered by the bridge, not the absent collector.
        let info = PAgentInfo {
            hostname: "h".into(),
            ..PAgentInfo::default()
        };
        let answer = call(
            addrs[0],
            "/v1.Agent/RequestAgentInfo",
            AGENT,
            vec![info.encode_to_vec()],
        )
        .await
        .expect("agent info answered while the upstream is down");
        assert!(PResult::decode(&answer[0][..]).expect("PResult").success);
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let standin = s::standin(up);
    // Let the tee's backoff run out, then one more transaction reaches the new collector.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(s::get(&url).await, "called 200: ok");
    sent += 1;

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = roots(&cap).len();
        let upstream = s::span_messages(&s::control(&standin, "/messages").await).len();
        if got >= sent && upstream >= 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{got} of {sent} transactions in Zipkin; {upstream} span messages at the restarted collector"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let zspans = cap.accepted_spans("/api/v2/spans");
    assert_eq!(roots(&cap).len(), sent, "Zipkin got every transaction");
    assert_eq!(zspans.len(), sent * 5, "every span of every transaction");
    let dropped = s::metric(
        gw.admin_addr,
        "bridge_pinpoint_tee_messages_dropped_total",
        "reason",
    )
    .await;
    assert!(
        dropped.values().sum::<f64>() > 0.0,
        "the tee's drops are counted: {dropped:?}"
    );
    drop(node_a);
    drop(node_b);
    gw.shutdown().await;
}

/// A raw gRPC upstream: records (path, headers, message bytes), answers OK with no message.
#[derive(Clone, Default)]
struct RawUpstream(Arc<Mutex<Vec<Forwarded>>>);

/// One call the upstream got: path, headers, message bytes.
type Forwarded = (String, HeaderMap, Vec<u8>);

async fn start_raw_upstream() -> (u16, RawUpstream) {
    let rec = RawUpstream::default();
    let r = rec.clone();
    let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
        let r = r.clone();
        async move {
            // One gRPC frame: flag, 4-byte length, message.
            let msg = body.get(5..).unwrap_or_default().to_vec();
            r.0.lock()
                .expect("lock")
                .push((uri.path().to_owned(), headers, msg));
            (
                [("content-type", "application/grpc"), ("grpc-status", "0")],
                Bytes::new(),
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, rec)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_the_collectors_status_and_the_tee_keeps_bytes() {
    let (up, upstream) = start_raw_upstream().await;
    let (zipkin, _cap) = start_capture(vec![]).await;
    let gw = common::start(&gateway_yaml(up, zipkin)).await;
    let [agent, _, span] = gw.pinpoint_addrs.expect("pinpoint receiver");

    // Headers as the collector checks them.
    let e = call(agent, "/v1.Metadata/RequestApiMetaData", &[], vec![vec![]])
        .await
        .expect_err("no headers");
    assert_eq!(
        (e.code(), e.message()),
        (Code::InvalidArgument, "agentid header is missing")
    );
    let e = call(
        agent,
        "/v1.Metadata/RequestApiMetaData",
        &[
            ("agentid", "a"),
            ("applicationname", "app"),
            ("starttime", "soon"),
        ],
        vec![vec![]],
    )
    .await
    .expect_err("bad starttime");
    assert_eq!(
        (e.code(), e.message()),
        (Code::InvalidArgument, "unsupported format")
    );

    // Undecodable bytes: INTERNAL, counted.
    let e = call(
        agent,
        "/v1.Metadata/RequestApiMetaData",
        AGENT,
        vec![vec![0xff, 0xff, 0xff]],
    )
    .await
    .expect_err("garbage");
    assert_eq!(e.code(), Code::Internal);
    assert!(
        e.message().starts_with("Invalid protobuf byte sequence"),
        "{}",
        e.message()
    );
    let e = call(span, "/v1.Span/SendSpan", AGENT, vec![vec![0x0a, 0xff]])
        .await
        .expect_err("garbage span");
    assert_eq!(e.code(), Code::Internal);

    // Unknown fields reach the upstream byte for byte, with the agent's headers.
    let mut bytes = PApiMetaData {
        api_id: 5,
        api_info: "Svc.run()".into(),
        ..PApiMetaData::default()
    }
    .encode_to_vec();
    bytes.extend_from_slice(&[0x9a, 0x06, 0x03, b'n', b'e', b'w']); // field 99, "new"
    let answer = call(
        agent,
        "/v1.Metadata/RequestApiMetaData",
        AGENT,
        vec![bytes.clone()],
    )
    .await
    .expect("valid with an unknown field");
    assert!(PResult::decode(&answer[0][..]).expect("PResult").success);

    // An invalid span in a batch is reported in partial success; the valid one is taken.
    let msg = |version: i32| PSpanMessage {
        field: Some(p_span_message::Field::Span(PSpan {
            version,
            transaction_id: Some(PTransactionId {
                agent_id: "raw-1".into(),
                agent_start_time: 1_700_000_000_000,
                sequence: 1,
            }),
            span_id: 7,
            parent_span_id: -1,
            start_time: 1_700_000_000_100,
            elapsed: 3,
            service_type: 1000,
            ..PSpan::default()
        })),
    };
    let batch = PSpanMessageBatch {
        span: vec![msg(2), msg(1)],
    };
    let answer = call(
        span,
        "/v1.Span/SendSpanBatch",
        AGENT,
        vec![batch.encode_to_vec()],
    )
    .await
    .expect("batch");
    let result = PSpanResultBatch::decode(&answer[0][..]).expect("PSpanResultBatch");
    let partial = result.partial_success.expect("partial success");
    assert_eq!(partial.rejected_spans, 1);
    assert!(
        partial.error_message.contains("unsupported version:2"),
        "{}",
        partial.error_message
    );
    // A stream keeps going past an invalid span (the collector drops it silently).
    call(
        span,
        "/v1.Span/SendSpan",
        AGENT,
        vec![msg(3).encode_to_vec(), msg(1).encode_to_vec()],
    )
    .await
    .expect("stream with an invalid span");
    // Pings are echoed.
    let pongs = call(agent, "/v1.Agent/PingSession", AGENT, vec![vec![], vec![]])
        .await
        .expect("pings");
    assert_eq!(pongs.len(), 2);

    let invalid = s::metric(
        gw.admin_addr,
        "bridge_pinpoint_receiver_messages_invalid_total",
        "reason",
    )
    .await;
    assert!(invalid.get("malformed") >= Some(&2.0), "{invalid:?}");
    assert!(invalid.get("version") >= Some(&2.0), "{invalid:?}");
    let rejected = s::metric(
        gw.admin_addr,
        "bridge_pinpoint_receiver_calls_rejected_total",
        "reason",
    )
    .await;
    assert!(rejected.get("headers") >= Some(&2.0), "{rejected:?}");

    let deadline = Instant::now() + Duration::from_secs(10);
    let forwarded = loop {
        let got: Vec<_> = upstream
            .0
            .lock()
            .expect("lock")
            .iter()
            .filter(|(p, _, _)| p == "/v1.Metadata/RequestApiMetaData")
            .cloned()
            .collect();
        if got.len() >= 2 || Instant::now() > deadline {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (_, headers, body) = forwarded
        .iter()
        .find(|(_, _, b)| b.len() > 3)
        .expect("the valid metadata call reached the upstream");
    assert_eq!(body, &bytes, "forwarded bytes differ from the agent's");
    assert_eq!(headers["agentid"], "raw-1");
    assert_eq!(headers["starttime"], "1700000000000");
    // Calls refused for their headers never reach the upstream.
    assert!(
        forwarded
            .iter()
            .all(|(_, h, _)| h.get("agentid").is_some_and(|v| v == "raw-1")),
        "only admitted calls are forwarded"
    );
    gw.shutdown().await;
}
