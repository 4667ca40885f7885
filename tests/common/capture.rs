//! An in-process stand-in for an HTTP collector (axum on 127.0.0.1:0): records every
//! request (path, headers, body gunzipped when the request said gzip) and answers with
//! scripted statuses (202 once the script runs out).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use serde_json::Value;

#[derive(Debug, Clone)]
pub struct Captured {
    pub path: String,
    pub headers: HeaderMap,
    /// Decompressed when the request said `content-encoding: gzip`.
    pub body: Vec<u8>,
    pub status: u16,
    pub at: Instant,
}

#[derive(Default)]
pub struct CaptureState {
    pub requests: Vec<Captured>,
    /// Answers to give, in order; 202 once they run out.
    pub answers: VecDeque<(u16, Option<&'static str>)>,
}

#[derive(Clone, Default)]
pub struct Capture(pub Arc<Mutex<CaptureState>>);

impl Capture {
    pub fn requests(&self, path: &str) -> Vec<Captured> {
        let s = self.0.lock().expect("lock");
        s.requests
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// The spans of every accepted JSON body sent to `path`.
    pub fn accepted_spans(&self, path: &str) -> Vec<Value> {
        self.requests(path)
            .iter()
            .filter(|r| (200..300).contains(&r.status))
            .flat_map(|r| match serde_json::from_slice(&r.body) {
                Ok(Value::Array(spans)) => spans,
                _ => panic!(
                    "{path}: not a JSON array: {}",
                    String::from_utf8_lossy(&r.body)
                ),
            })
            .collect()
    }
}

async fn record(
    State(cap): State<Capture>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, HeaderMap) {
    let gzip = headers.get("content-encoding").is_some_and(|v| v == "gzip");
    let body = if gzip {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut out)
            .expect("gzip body");
        out
    } else {
        body.to_vec()
    };
    let mut s = cap.0.lock().expect("lock");
    let (status, retry_after) = s.answers.pop_front().unwrap_or((202, None));
    s.requests.push(Captured {
        path: uri.path().to_owned(),
        headers,
        body,
        status,
        at: Instant::now(),
    });
    let mut reply = HeaderMap::new();
    if let Some(v) = retry_after {
        reply.insert("retry-after", v.parse().expect("header"));
    }
    (StatusCode::from_u16(status).expect("status"), reply)
}

/// Starts a capture server that gives `answers` (status, Retry-After) in order.
pub async fn start_capture(answers: Vec<(u16, Option<&'static str>)>) -> (SocketAddr, Capture) {
    let cap = Capture::default();
    cap.0.lock().expect("lock").answers = answers.into();
    let app = axum::Router::new().fallback(record).with_state(cap.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, cap)
}

/// Polls `done` every 50 ms; fails the test after 20 s.
pub async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
