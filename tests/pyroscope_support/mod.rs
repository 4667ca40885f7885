//! A stand-in Pyroscope server for the Pyroscope exporter's tests: it answers every
//! request (200 unless told otherwise) and keeps each one whole (method, path, query,
//! headers, body, arrival time). Also: reading the gateway's metrics, and decoding pprof
//! with the independent decoder in tests/peers/pprof-decode (npm pprof-format).
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// One request as the stand-in saw it.
#[derive(Debug, Clone)]
pub struct Captured {
    pub method: String,
    pub path: String,
    /// Decoded query pairs in order.
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Captured {
    pub fn param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body with any gzip `Content-Encoding` undone.
    pub fn plain_body(&self) -> Vec<u8> {
        if self.header("content-encoding") == Some("gzip") {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&self.body[..])
                .read_to_end(&mut out)
                .expect("gzip body");
            out
        } else {
            self.body.clone()
        }
    }
}

#[derive(Default)]
struct Shared {
    seen: Vec<Captured>,
    /// Answers for the next requests: `(status, Retry-After)`.
    script: VecDeque<(u16, Option<&'static str>)>,
}

/// A running stand-in.
pub struct StandIn {
    pub addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
}

impl StandIn {
    pub async fn start() -> Self {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let app = axum::Router::new()
            .fallback(capture)
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, shared }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next requests get these answers, in order; then 200 again.
    pub fn answer_next(&self, answers: &[(u16, Option<&'static str>)]) {
        self.shared
            .lock()
            .expect("lock")
            .script
            .extend(answers.iter().copied());
    }

    pub fn requests(&self) -> Vec<Captured> {
        self.shared.lock().expect("lock").seen.clone()
    }

    /// Waits (10 s at most) until `want` requests match `pred`; returns those.
    pub async fn wait_for(&self, want: usize, pred: impl Fn(&Captured) -> bool) -> Vec<Captured> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got: Vec<Captured> = self.requests().into_iter().filter(|c| pred(c)).collect();
            if got.len() >= want || Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn capture(
    State(shared): State<Arc<Mutex<Shared>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query = reqwest::Url::parse(&format!("http://x{uri}"))
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default();
    let mut s = shared.lock().expect("lock");
    s.seen.push(Captured {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query,
        headers,
        body: body.to_vec(),
        at: Instant::now(),
    });
    match s.script.pop_front() {
        Some((status, retry_after)) => {
            let status = StatusCode::from_u16(status).expect("status");
            let mut r = (status, format!("stand-in says {status}")).into_response();
            if let Some(ra) = retry_after {
                r.headers_mut()
                    .insert("retry-after", ra.parse().expect("header value"));
            }
            r
        }
        None => StatusCode::OK.into_response(),
    }
}

/// The gateway's `/metrics` text.
pub async fn metrics_text(admin: SocketAddr) -> String {
    reqwest::get(format!("http://{admin}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

/// The value of the sample of `name` whose labels include every pair of `labels`.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Decodes pprof bytes with npm pprof-format (tests/peers/pprof-decode).
pub fn decode_pprof(bytes: &[u8]) -> serde_json::Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let peer = root.join("tests/peers/pprof-decode");
    assert!(
        peer.join("node_modules/pprof-format").exists(),
        "tests/peers/pprof-decode is not installed: run scripts/setup-test-peers.sh"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("profile.pb");
    std::fs::write(&file, bytes).expect("write");
    let out = Command::new("node")
        .arg(peer.join("decode.js"))
        .arg(&file)
        .output()
        .expect("run node");
    assert!(
        out.status.success(),
        "pprof-format could not decode the profile: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("decoder prints JSON")
}
