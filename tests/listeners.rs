//! Listener hygiene with raw TCP clients: header, body and idle timeouts, the connection
//! limit (idle connections make room, busy ones do not), config validation, and a pure
//! admin translate.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use otel_pinpoint_bridge::config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the peer closes (or `limit` passes); returns what came and when it closed
/// (time since `started`).
async fn read_since(
    s: &mut TcpStream,
    started: Instant,
    limit: Duration,
) -> (String, Option<Duration>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                return (
                    String::from_utf8_lossy(&got).into_owned(),
                    Some(started.elapsed()),
                );
            }
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), None),
        }
    }
}

fn config(out: &std::path::Path, limits: &str) -> String {
    format!(
        "receivers:\n  otlp:\n    http: {{ endpoint: 127.0.0.1:0, limits: {limits} }}\n\
         exporters:\n  out:\n    type: file\n    path: '{}'\n    batch: {{ max_spans: 1000, timeout: 50ms }}\n\
         admin: {{ endpoint: 127.0.0.1:0 }}\nservice: {{ shutdown_grace: 5s }}\n",
        out.display()
    )
}

const EMPTY_EXPORT: &[u8] = b"POST /v1/traces HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n";

async fn read_until_closed(s: &mut TcpStream, limit: Duration) -> (String, Option<Duration>) {
    read_since(s, Instant::now(), limit).await
}

async fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_body_and_idle_timeouts_close_what_clients_leave_hanging() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gw = common::start(&config(
        &dir.path().join("out.jsonl"),
        "{ header_read_timeout: 400ms, body_read_timeout: 400ms, idle_timeout: 600ms }",
    ))
    .await;
    let http = gw.http_addr.expect("http");
    let started = Instant::now();

    // Connects and says nothing.
    let mut silent = connect(http).await;
    // Sends half a request head.
    let mut slow_head = connect(http).await;
    slow_head
        .write_all(b"POST /v1/traces HTTP/1.1\r\nHost: t\r\n")
        .await
        .expect("write");
    // Announces 100 bytes of body and sends 10.
    let mut short_body = connect(http).await;
    short_body
        .write_all(b"POST /v1/traces HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-protobuf\r\nContent-Length: 100\r\n\r\n0123456789")
        .await
        .expect("write");
    // One good request, then silence on a kept-alive connection.
    let mut kept = connect(http).await;
    kept.write_all(EMPTY_EXPORT).await.expect("write");

    let limit = Duration::from_secs(5);
    let (got, closed) = read_since(&mut silent, started, limit).await;
    assert!(got.is_empty(), "{got}");
    let closed = closed.expect("a silent connection is closed");
    assert!(closed < Duration::from_secs(2), "{closed:?}");

    let (_, closed) = read_since(&mut slow_head, started, limit).await;
    assert!(closed.expect("a half head is cut off") < Duration::from_secs(2));

    let (got, _) = read_until_closed(&mut short_body, limit).await;
    assert!(got.starts_with("HTTP/1.1 400"), "{got}");
    assert!(got.contains("body_read_timeout"), "the 400 says why: {got}");

    let (got, closed) = read_since(&mut kept, started, limit).await;
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    let closed = closed.expect("an idle kept-alive connection is closed");
    assert!(
        closed >= Duration::from_millis(500) && closed < Duration::from_secs(3),
        "closed after {closed:?}"
    );

    let metrics = reqwest::get(format!("http://{}/metrics", gw.admin_addr))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for needle in [
        "bridge_listener_connections_closed_total{listener=\"otlp_http\",reason=\"header_timeout\"}",
        "bridge_listener_connections_closed_total{listener=\"otlp_http\",reason=\"idle_timeout\"}",
        "bridge_listener_body_timeouts_total{listener=\"otlp_http\"}",
    ] {
        assert!(metrics.contains(needle), "{needle} missing");
    }
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_limit_idle_connections_make_room_and_busy_ones_do_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gw = common::start(&config(
        &dir.path().join("out.jsonl"),
        "{ max_connections: 2, header_read_timeout: 30s, body_read_timeout: 30s }",
    ))
    .await;
    let http = gw.http_addr.expect("http");
    let busy_head =
        b"POST /v1/traces HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-protobuf\r\nContent-Length: 100\r\n\r\n01";

    // Two idle connections fill the listener; a third (a good request) evicts the older.
    let mut idle_a = connect(http).await;
    let _idle_b = connect(http).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut good = connect(http).await;
    good.write_all(EMPTY_EXPORT).await.expect("write");
    let mut buf = [0u8; 12];
    good.read_exact(&mut buf).await.expect("answer");
    assert_eq!(&buf, b"HTTP/1.1 200");
    let (_, closed) = read_until_closed(&mut idle_a, Duration::from_secs(2)).await;
    assert!(closed.is_some(), "the oldest idle connection made room");
    drop(good);
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Two busy connections (bodies in flight): a third is refused at once.
    let mut busy_a = connect(http).await;
    busy_a.write_all(busy_head).await.expect("write");
    let mut busy_b = connect(http).await;
    busy_b.write_all(busy_head).await.expect("write");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = connect(http).await;
    let (got, closed) = read_until_closed(&mut third, Duration::from_secs(2)).await;
    assert!(
        got.is_empty() && closed.is_some(),
        "refused: {got:?} {closed:?}"
    );
    // The busy ones are untouched: finishing a body gets its answer.
    busy_a.write_all(&[b'x'; 98]).await.expect("write");
    let mut buf = [0u8; 9];
    busy_a.read_exact(&mut buf).await.expect("answer");
    assert_eq!(&buf, b"HTTP/1.1 ");

    let metrics = reqwest::get(format!("http://{}/metrics", gw.admin_addr))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for needle in [
        "bridge_listener_connections_closed_total{listener=\"otlp_http\",reason=\"evicted\"}",
        "bridge_listener_connections_refused_total{listener=\"otlp_http\",reason=\"limit\"}",
    ] {
        assert!(metrics.contains(needle), "{needle} missing");
    }
    drop(busy_b);
    gw.shutdown().await;
}

#[test]
fn listener_settings_are_validated_with_their_paths() {
    let yaml = "receivers:\n  otlp:\n\
        \x20   grpc: { endpoint: 127.0.0.1:0, limits: { max_connections: 0, idle_timeout: 0s }, auth: {} }\n\
        \x20   http: { endpoint: 127.0.0.1:0, auth: { bearer: { token: a, token_file: /x } } }\n\
        exporters:\n  n: { type: null }\n\
        admin: { endpoint: 127.0.0.1:0, auth: { basic: { username: 'a:b', password: '' } }, limits: { max_concurrent_streams: 0 } }\n";
    let errors = config::parse(yaml, &|_| None).expect_err("invalid");
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    for want in [
        "receivers.otlp.grpc.limits.max_connections: must be at least 1",
        "receivers.otlp.grpc.limits.idle_timeout: must be greater than 0",
        "receivers.otlp.grpc.auth: set `bearer` or `basic`",
        "admin.auth.basic.username: must be non-empty without `:`",
        "admin.auth.basic.password: must not be empty",
        "admin.limits.max_concurrent_streams: must be at least 1",
    ] {
        assert!(
            text.iter().any(|t| t.starts_with(want)),
            "{want} not in {text:#?}"
        );
    }
    assert!(
        text.iter().any(|t| t.starts_with(
            "receivers.otlp.http.auth.bearer: set exactly one of `token` and `token_file`"
        )),
        "{text:#?}"
    );
    assert!(
        text.iter().any(|t| t
            == "receivers.otlp.http.auth.bearer.token_file: `/x` is not a readable file"),
        "{text:#?}"
    );
    // A TLS section without its key file is reported at the missing key.
    let yaml = "receivers:\n  otlp:\n    http: { endpoint: 127.0.0.1:0, tls: { cert_file: /c } }\n\
        exporters:\n  n: { type: null }\n";
    let errors = config::parse(yaml, &|_| None).expect_err("invalid");
    assert!(
        errors
            .iter()
            .any(|e| e.path == "receivers.otlp.http.tls.key_file" && e.message.contains("missing")),
        "{errors:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_translate_never_writes_the_exporters_mapping_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gw = common::start(&config(&dir.path().join("out.jsonl"), "{}")).await;
    let client = reqwest::Client::new();
    let inserts = || async {
        let text = client
            .get(format!("http://{}/metrics", gw.admin_addr))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        text.lines()
            .filter(|l| l.starts_with("bridge_id_cache_inserts_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    let before = inserts().await;
    for i in 0..200 {
        // Pinpoint-born transactions: a writing translator would remember each txid.
        let body = format!(
            r#"{{"headers":{{"Pinpoint-TraceID":"agent-{i}^1700000000000^{i}","Pinpoint-SpanID":"7","Pinpoint-pSpanID":"8"}}}}"#
        );
        let r = client
            .post(format!("http://{}/v1/context/translate", gw.admin_addr))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("translate");
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    }
    assert_eq!(
        inserts().await,
        before,
        "admin translate wrote to the cache"
    );
    gw.shutdown().await;
}
