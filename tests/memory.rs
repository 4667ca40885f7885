//! Memory bounded by configuration, whatever the input, measured on the real binary
//! (VmRSS / VmHWM from /proc/<pid>/status): amplifying payloads are refused before
//! decoding, a dead backend fills the queue by bytes and the senders get retryable
//! refusals; and the HTTP body rules (gzip members, trailing data, a readable 413).

mod common;

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes};
use flate2::Compression;
use flate2::write::GzEncoder;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};

const BIN: &str = env!("CARGO_BIN_EXE_otel-pinpoint-bridge");
const MIB: usize = 1 << 20;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

struct Gateway {
    child: Child,
    http: String,
    grpc: String,
    admin: String,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Gateway {
    /// Starts the binary with `exporters` (YAML under `exporters:`) and `extra` top-level YAML.
    async fn start(exporters: &str, extra: &str) -> Self {
        let (h, g, a) = (free_port(), free_port(), free_port());
        let dir = std::env::temp_dir().join(format!("bridge-memory-{}-{h}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("gateway.yaml");
        std::fs::write(
            &path,
            format!(
                "receivers:\n  otlp:\n    grpc: {{ endpoint: 127.0.0.1:{g} }}\n    http: {{ endpoint: 127.0.0.1:{h} }}\n\
                 exporters:\n{exporters}\nadmin: {{ endpoint: 127.0.0.1:{a} }}\nlog: {{ level: warn }}\n{extra}"
            ),
        )
        .expect("write config");
        let child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start gateway");
        let gw = Self {
            child,
            http: format!("127.0.0.1:{h}"),
            grpc: format!("127.0.0.1:{g}"),
            admin: format!("127.0.0.1:{a}"),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(r) = reqwest::get(format!("http://{}/readyz", gw.admin)).await
                && r.status() == 200
            {
                return gw;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("gateway never became ready");
    }

    /// `(VmRSS, VmHWM)` in bytes.
    fn memory(&self) -> (usize, usize) {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("status");
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
                .map(|kb| kb * 1024)
                .expect("field")
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    async fn healthy(&self) -> bool {
        let started = Instant::now();
        let ok = reqwest::get(format!("http://{}/healthz", self.admin))
            .await
            .is_ok_and(|r| r.status() == 200);
        ok && started.elapsed() < Duration::from_secs(1)
    }
}

/// A length-delimited protobuf field.
fn field(number: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 12);
    let mut put = |mut v: u64| {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    };
    put(u64::from(number) << 3 | 2);
    put(body.len() as u64);
    out.extend_from_slice(body);
    out
}

/// The amplification payloads, each about `size` bytes of protobuf.
fn payloads(size: usize) -> Vec<(&'static str, Vec<u8>)> {
    let empty = |n: u32| [(n << 3 | 2) as u8, 0].repeat(size / 2);
    // Spans (ScopeSpans.spans = 2) in one scope in one resource.
    let spans = field(1, &field(2, &empty(2)));
    // Resources (request.resource_spans = 1), empty.
    let resources = empty(1);
    // Empty attributes (Span.attributes = 9) of one span.
    let attributes = field(1, &field(2, &field(2, &empty(9))));
    vec![
        ("empty spans", spans),
        ("empty resources", resources),
        ("tiny attributes", attributes),
    ]
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    enc.write_all(data).expect("gzip");
    enc.finish().expect("gzip")
}

/// Sends raw bytes as one gRPC message.
#[derive(Clone, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> Self {
        Self
    }
    fn decoder(&mut self) -> Self {
        Self
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;
    fn encode(&mut self, item: Bytes, buf: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        buf.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;
    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, tonic::Status> {
        use bytes::Buf;
        Ok(Some(buf.copy_to_bytes(buf.remaining())))
    }
}

async fn grpc_export(addr: &str, body: Vec<u8>) -> tonic::Status {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut grpc = tonic::client::Grpc::new(channel).send_compressed(CompressionEncoding::Gzip);
    grpc.ready().await.expect("ready");
    let path = http::uri::PathAndQuery::from_static(
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    );
    match grpc
        .unary(tonic::Request::new(Bytes::from(body)), path, RawCodec)
        .await
    {
        Ok(_) => tonic::Status::ok("accepted"),
        Err(s) => s,
    }
}

async fn http_export(addr: &str, body: Vec<u8>, content_type: &str) -> (u16, String) {
    let r = reqwest::Client::new()
        .post(format!("http://{addr}/v1/traces"))
        .header("content-type", content_type)
        .header("content-encoding", "gzip")
        .body(gzip(&body))
        .send()
        .await
        .expect("send");
    let status = r.status().as_u16();
    (status, r.text().await.unwrap_or_default())
}

/// What a refused amplifying request may add to the gateway's peak RSS: the wire
/// bytes it holds (compressed body, decompressed body of `size`, and the copies the
/// HTTP and gRPC stacks make of it) and no decoded form. Documented in the README.
fn refusal_bound(size: usize) -> usize {
    3 * size + 64 * MIB
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amplifying_payloads_are_refused_before_decoding_within_a_memory_bound() {
    let gw = Gateway::start("  sink: { type: null }", "").await;
    let (base, _) = gw.memory();
    for size in [4 * MIB, 64 * MIB - 64] {
        for (name, body) in payloads(size) {
            let (status, text) =
                http_export(&gw.http, body.clone(), "application/x-protobuf").await;
            assert_eq!(status, 413, "{name} {size} over HTTP: {text}");
            assert!(text.contains("once decoded"), "{name}: {text}");
            let s = grpc_export(&gw.grpc, body).await;
            assert_eq!(
                s.code(),
                tonic::Code::ResourceExhausted,
                "{name} {size} over gRPC: {s:?}"
            );
            assert!(
                s.message().contains("once decoded"),
                "{name}: {}",
                s.message()
            );
            let (rss, hwm) = gw.memory();
            println!(
                "{name}, {} MiB decompressed: RSS {} MiB, peak {} MiB (start {} MiB)",
                size / MIB,
                rss / MIB,
                hwm / MIB,
                base / MIB
            );
            assert!(
                hwm.saturating_sub(base) <= refusal_bound(size),
                "{name} at {size}: peak rose by {} MiB, bound {} MiB",
                (hwm - base) / MIB,
                refusal_bound(size) / MIB
            );
        }
        // OTLP/JSON: empty span objects.
        let json = format!(
            r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{}]}}]}}]}}"#,
            vec!["{}"; size / 3].join(",")
        );
        let (status, text) = http_export(&gw.http, json.into_bytes(), "application/json").await;
        assert_eq!(status, 413, "json {size}: {text}");
        assert!(text.contains("once decoded"), "{text}");
    }
    let (_, hwm) = gw.memory();
    assert!(
        hwm.saturating_sub(base) <= refusal_bound(64 * MIB),
        "peak rose by {} MiB",
        (hwm - base) / MIB
    );
    assert!(gw.healthy().await, "the gateway still answers");
}

/// A span with one attribute of `len` bytes, in a request of `spans` such spans.
fn big_spans(seed: u8, spans: usize, len: usize) -> Vec<u8> {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use prost::Message;
    let value: String = (0..len)
        .map(|i| char::from(b'a' + ((i * 7 + usize::from(seed)) % 26) as u8))
        .collect();
    let spans = (0..spans)
        .map(|i| Span {
            trace_id: vec![seed.max(1); 16],
            span_id: vec![(i as u8).wrapping_add(1); 8],
            name: "big".into(),
            start_time_unix_nano: 1,
            end_time_unix_nano: 2,
            attributes: vec![KeyValue {
                key: "blob".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(value.clone())),
                }),
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

/// The queue's bytes plus what the exporter holds while encoding one batch (a Zipkin
/// batch is converted and serialized: two more copies of at most a queue's worth) and
/// the requests in flight. Documented in the README.
fn queue_bound(max_bytes: usize) -> usize {
    3 * max_bytes + 64 * MIB
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_backend_with_1mib_spans_fills_the_queue_by_bytes_and_refuses_retryably() {
    let dead = free_port();
    let max_bytes = 32 * MIB;
    let gw = Gateway::start(
        &format!(
            "  zipkin:\n    type: zipkin\n    endpoint: http://127.0.0.1:{dead}/api/v2/spans\n    \
             queue: {{ max_bytes: 32MiB }}\n    batch: {{ max_spans: 64, timeout: 50ms }}\n    \
             retry: {{ initial: 100ms, max: 1s, max_elapsed: 5m }}"
        ),
        "",
    )
    .await;
    let (base, _) = gw.memory();
    let client = reqwest::Client::new();
    let (mut accepted, mut refused) = (0, 0);
    for i in 0..80u8 {
        let r = client
            .post(format!("http://{}/v1/traces", gw.http))
            .header("content-type", "application/x-protobuf")
            .body(big_spans(i, 2, MIB))
            .send()
            .await
            .expect("send");
        match r.status().as_u16() {
            200 => accepted += 2,
            429 => {
                assert!(r.headers().contains_key("retry-after"), "retryable");
                let text = r.text().await.unwrap_or_default();
                assert!(
                    text.contains("queue of exporter `zipkin` is full"),
                    "{text}"
                );
                refused += 2;
            }
            other => panic!("unexpected {other}: {}", r.text().await.unwrap_or_default()),
        }
    }
    let (rss, hwm) = gw.memory();
    println!(
        "1 MiB spans, dead Zipkin, queue.max_bytes 32 MiB: {accepted} spans accepted, {refused} refused; RSS {} MiB, peak {} MiB (start {} MiB)",
        rss / MIB,
        hwm / MIB,
        base / MIB
    );
    assert!(
        (16..=40).contains(&accepted),
        "the queue holds about 32 MiB of 1 MiB spans: {accepted}"
    );
    assert!(refused > 0);
    assert!(
        hwm.saturating_sub(base) <= queue_bound(max_bytes),
        "peak rose by {} MiB, bound {} MiB",
        (hwm - base) / MIB,
        queue_bound(max_bytes) / MIB
    );
    assert!(gw.healthy().await);
}

#[tokio::test]
async fn gzip_members_are_all_read_and_trailing_garbage_is_a_400() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out.jsonl");
    let gw = common::start(&common::file_config(&out, "")).await;
    let addr = gw.http_addr.expect("http");
    let one = |trace: u8| {
        use prost::Message;
        common::request(vec![common::span(trace, 1, 1, 2)]).encode_to_vec()
    };
    // Two members, each a whole request: protobuf concatenation merges them.
    let mut body = gzip(&one(1));
    body.extend(gzip(&one(2)));
    let client = reqwest::Client::new();
    let post = |body: Vec<u8>| {
        client
            .post(format!("http://{addr}/v1/traces"))
            .header("content-type", "application/x-protobuf")
            .header("content-encoding", "gzip")
            .body(body)
            .send()
    };
    let r = post(body).await.expect("send");
    assert_eq!(r.status(), 200);
    let lines = common::wait_for_spans(&out, 2).await;
    assert_eq!(
        common::spans_of(&lines).len(),
        2,
        "both members' spans arrived"
    );

    let mut garbage = gzip(&one(3));
    garbage.extend_from_slice(b"\0\0trailing");
    let r = post(garbage).await.expect("send");
    assert_eq!(r.status(), 400);
    let text = String::from_utf8_lossy(&r.bytes().await.expect("body")).into_owned();
    assert!(text.contains("invalid gzip data"), "{text}");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_body_gets_a_readable_413() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out.jsonl");
    let gw = common::start(&common::file_config(&out, "")).await; // 64 KiB limit
    let addr = gw.http_addr.expect("http");
    let body = vec![0u8; 4 * MIB];
    for chunked in [false, true] {
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let head = if chunked {
            "POST /v1/traces HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-protobuf\r\ntransfer-encoding: chunked\r\n\r\n".to_owned()
        } else {
            format!(
                "POST /v1/traces HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-protobuf\r\ncontent-length: {}\r\n\r\n",
                body.len()
            )
        };
        let writer = std::thread::spawn({
            let mut s = s.try_clone().expect("clone");
            let body = body.clone();
            move || {
                let _ = s.write_all(head.as_bytes());
                for part in body.chunks(64 * 1024) {
                    let ok = if chunked {
                        s.write_all(format!("{:x}\r\n", part.len()).as_bytes())
                            .and_then(|()| s.write_all(part))
                            .and_then(|()| s.write_all(b"\r\n"))
                    } else {
                        s.write_all(part)
                    };
                    if ok.is_err() {
                        return false;
                    }
                }
                if chunked {
                    let _ = s.write_all(b"0\r\n\r\n");
                }
                true
            }
        });
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        let sent_all = writer.join().expect("writer");
        let text = String::from_utf8_lossy(&answer);
        assert!(
            text.starts_with("HTTP/1.1 413"),
            "chunked={chunked}: {text:.200}"
        );
        assert!(
            text.to_ascii_lowercase().contains("connection: close"),
            "{text:.300}"
        );
        assert!(
            sent_all,
            "chunked={chunked}: the client could send its whole body"
        );
    }
    gw.shutdown().await;
}
