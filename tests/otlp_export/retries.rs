//! The OTLP retry rules against scripted receivers: a tonic OTLP/gRPC server answering
//! with chosen statuses (with `google.rpc.RetryInfo` details) and partial successes, and
//! the HTTP capture server answering 503 + Retry-After.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use otel_pinpoint_bridge::exporter::otlp::transport::status_details_with_retry;
use tonic::{Code, Request, Response, Status};

use crate::common::capture::{start_capture, wait_until};
use crate::{metric, post, rich_request};

/// What the scripted server answers, in order (OK once the script runs out).
#[derive(Clone)]
enum Answer {
    Fail(Code, Option<Duration>),
    Partial(i64),
}

#[derive(Clone, Default)]
struct Scripted {
    answers: Arc<Mutex<VecDeque<Answer>>>,
    /// (when, spans) of every call.
    calls: Arc<Mutex<Vec<(Instant, usize)>>>,
}

#[tonic::async_trait]
impl TraceService for Scripted {
    async fn export(
        &self,
        req: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let spans = req
            .get_ref()
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        self.calls
            .lock()
            .expect("lock")
            .push((Instant::now(), spans));
        let answer = self.answers.lock().expect("lock").pop_front();
        match answer {
            None => Ok(Response::new(ExportTraceServiceResponse::default())),
            Some(Answer::Partial(n)) => Ok(Response::new(ExportTraceServiceResponse {
                partial_success: Some(ExportTracePartialSuccess {
                    rejected_spans: n,
                    error_message: "too old".into(),
                }),
            })),
            Some(Answer::Fail(code, delay)) => {
                let details = delay
                    .map(|d| status_details_with_retry(code as i32, d))
                    .unwrap_or_default();
                Err(Status::with_details(code, "scripted", details.into()))
            }
        }
    }
}

async fn start_scripted(answers: Vec<Answer>) -> (std::net::SocketAddr, Scripted) {
    let s = Scripted::default();
    *s.answers.lock().expect("lock") = answers.into();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let svc = TraceServiceServer::new(s.clone())
        .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await;
    });
    (addr, s)
}

fn gateway_yaml(name: &str, protocol: &str, endpoint: &str) -> String {
    format!(
        "receivers:\n  otlp:\n    http: {{ endpoint: 127.0.0.1:0 }}\n\
         exporters:\n  {name}:\n    type: otlp\n    protocol: {protocol}\n    endpoint: {endpoint}\n    batch: {{ timeout: 20ms }}\n    retry: {{ initial: 10ms, max: 5s }}\n\
         admin: {{ endpoint: 127.0.0.1:0 }}\nservice: {{ shutdown_grace: 2s }}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_retry_info_honoured_partial_success_counted_invalid_argument_not_retried() {
    let (addr, server) = start_scripted(vec![
        Answer::Fail(Code::Unavailable, Some(Duration::from_millis(1200))),
        Answer::Fail(Code::ResourceExhausted, Some(Duration::from_millis(10))),
        Answer::Partial(2),
        Answer::Fail(Code::InvalidArgument, None),
        Answer::Fail(Code::ResourceExhausted, None),
    ])
    .await;
    let gw =
        crate::common::start(&gateway_yaml("g_retry", "grpc", &format!("http://{addr}"))).await;
    let calls = || server.calls.lock().expect("lock").clone();
    // Batch 1: UNAVAILABLE with RetryInfo 1.2 s, RESOURCE_EXHAUSTED with RetryInfo, then
    // delivered with 2 spans rejected (counted, not retried).
    post(&gw, &rich_request(1..2)).await;
    wait_until("three calls", || calls().len() == 3).await;
    let c = calls();
    assert!(
        c[1].0 - c[0].0 >= Duration::from_millis(1150),
        "RetryInfo not honoured: {:?}",
        c[1].0 - c[0].0
    );
    // Batch 2: INVALID_ARGUMENT is not retried. Batch 3: RESOURCE_EXHAUSTED without
    // RetryInfo is not retried either.
    post(&gw, &rich_request(2..3)).await;
    wait_until("four calls", || calls().len() == 4).await;
    post(&gw, &rich_request(3..4)).await;
    wait_until("five calls", || calls().len() == 5).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(calls().len(), 5, "nothing retried after a permanent error");
    let m = |name: &'static str, labels: Vec<(&'static str, &'static str)>| {
        let gw = &gw;
        async move { metric(gw, name, &labels).await }
    };
    assert_eq!(
        m(
            "bridge_exporter_retries_total",
            vec![("exporter", "g_retry")]
        )
        .await,
        2.0
    );
    assert_eq!(
        m(
            "bridge_exporter_spans_rejected_total",
            vec![("exporter", "g_retry"), ("reason", "partial_success")]
        )
        .await,
        2.0
    );
    assert_eq!(
        m(
            "bridge_exporter_spans_failed_total",
            vec![("exporter", "g_retry"), ("reason", "permanent")]
        )
        .await,
        6.0
    );
    assert_eq!(
        m(
            "bridge_exporter_spans_sent_total",
            vec![("exporter", "g_retry")]
        )
        .await,
        3.0
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_503_retry_after_honoured_then_the_same_body_is_delivered() {
    let (addr, cap) = start_capture(vec![(503, Some("1")), (400, None)]).await;
    let gw = crate::common::start(&gateway_yaml(
        "h_retry",
        "http/protobuf",
        &format!("http://{addr}"),
    ))
    .await;
    post(&gw, &rich_request(1..2)).await;
    wait_until("retry", || cap.requests("/v1/traces").len() == 2).await;
    let r = cap.requests("/v1/traces");
    assert_eq!(r[0].body, r[1].body, "a retry sends the same body");
    assert!(
        r[1].at - r[0].at >= Duration::from_millis(950),
        "Retry-After not honoured"
    );
    assert_eq!(
        r[0].headers.get("content-type").map(|v| v.as_bytes()),
        Some(&b"application/x-protobuf"[..])
    );
    assert_eq!(
        r[0].headers.get("content-encoding").map(|v| v.as_bytes()),
        Some(&b"gzip"[..])
    );
    let decoded: ExportTraceServiceRequest =
        prost::Message::decode(&r[0].body[..]).expect("protobuf");
    assert_eq!(decoded, rich_request(1..2));
    // The 400 was the answer to the retry: given up, not retried again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(cap.requests("/v1/traces").len(), 2);
    assert_eq!(
        metric(
            &gw,
            "bridge_exporter_spans_failed_total",
            &[("exporter", "h_retry")]
        )
        .await,
        3.0
    );
    gw.shutdown().await;
}
