//! The sidecar proxy as an HTTP proxy, in-process against an echo upstream: random
//! (and hostile) trace header sets never fail a request, bodies pass untouched, and
//! upgraded connections are spliced end to end.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An upstream that answers with the request's headers (JSON) and, for POST, its body;
/// `Upgrade: echo` switches protocols and echoes bytes.
async fn echo_upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|mut req: Request<Incoming>| async move {
                    if req.headers().get("upgrade").is_some() {
                        let on = hyper::upgrade::on(&mut req);
                        tokio::spawn(async move {
                            if let Ok(up) = on.await {
                                let mut io = TokioIo::new(up);
                                let mut buf = [0u8; 64];
                                while let Ok(n) = io.read(&mut buf).await {
                                    if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                                        break;
                                    }
                                }
                            }
                        });
                        let mut r = Response::new(Full::new(Bytes::new()));
                        *r.status_mut() = http::StatusCode::SWITCHING_PROTOCOLS;
                        r.headers_mut()
                            .insert("connection", "upgrade".parse().expect("v"));
                        r.headers_mut()
                            .insert("upgrade", "echo".parse().expect("v"));
                        return Ok::<_, Infallible>(r);
                    }
                    let headers: serde_json::Map<String, serde_json::Value> = req
                        .headers()
                        .iter()
                        .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
                        .collect();
                    let body = req
                        .into_body()
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    let out = if body.is_empty() {
                        Bytes::from(serde_json::to_vec(&headers).unwrap_or_default())
                    } else {
                        body
                    };
                    Ok(Response::new(Full::new(out)))
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

async fn proxy_for(upstream: SocketAddr, extra: &str) -> otel_pinpoint_bridge::app::Running {
    common::start(&format!(
        "receivers:\n  otlp:\n    grpc: {{ endpoint: 127.0.0.1:0 }}\nexporters:\n  none:\n    type: null\n\
         admin: {{ endpoint: 127.0.0.1:0 }}\nservice: {{ shutdown_grace: 2s }}\n\
         proxy:\n  application_name: svc\n{extra}  ingress: {{ listen: 127.0.0.1:0, upstream: {upstream} }}\n  egress: {{ listen: 127.0.0.1:0, upstream: {upstream} }}\n"
    ))
    .await
}

fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("traceparent"),
        Just("tracestate"),
        Just("b3"),
        Just("x-b3-traceid"),
        Just("x-b3-spanid"),
        Just("pinpoint-traceid"),
        Just("pinpoint-spanid"),
        Just("pinpoint-pspanid"),
        Just("pinpoint-sampled"),
        Just("pinpoint-pappname"),
        Just("pinpoint-papptype"),
        Just("pinpoint-host"),
    ]
    .prop_map(str::to_owned)
}

fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_vec()),
        Just(b"ppb=tx:a^1^2;ps:-1;sp:5,pp=svc:;app:x;type:1".to_vec()),
        Just(b"agentA^1700000000000^42".to_vec()),
        Just(b"-1".to_vec()),
        Just(b"0".to_vec()),
        "-?[0-9]{1,20}".prop_map(String::into_bytes),
        "[ -~]{0,200}".prop_map(|s| s.trim().as_bytes().to_vec()),
        // Not text: obs-text bytes are valid in a header value but not UTF-8.
        proptest::collection::vec(0x80u8..=0xff, 1..16),
        "[a-z=,;:^-]{300,2000}".prop_map(String::into_bytes),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    /// Whatever the trace headers, the request reaches the upstream and its answer
    /// comes back (200), through both listeners and both `bad_headers` modes; headers
    /// that are not trace headers arrive untouched.
    #[test]
    fn prop_trace_headers_never_fail_a_request(
        headers in proptest::collection::vec((header_name(), header_value()), 0..8),
        drop_bad in any::<bool>(),
    ) {
        let rt = tokio::runtime::Runtime::new().expect("rt");
        rt.block_on(async {
            let upstream = echo_upstream().await;
            let extra = if drop_bad { "  bad_headers: drop\n" } else { "" };
            let gw = proxy_for(upstream, extra).await;
            for port in [gw.proxy_ingress_addr, gw.proxy_egress_addr] {
                let addr = port.expect("listener");
                let mut req = Request::get(format!("http://{addr}/x"))
                    .header("x-keep", "kept")
                    .body(Full::new(Bytes::new()))
                    .expect("request");
                for (n, v) in &headers {
                    if let Ok(v) = http::HeaderValue::from_bytes(v) {
                        req.headers_mut().append(http::HeaderName::from_bytes(n.as_bytes()).expect("name"), v);
                    }
                }
                let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
                    .build_http::<Full<Bytes>>();
                let resp = client.request(req).await.expect("response");
                assert_eq!(resp.status(), 200, "{headers:?}");
                let body = resp.into_body().collect().await.expect("body").to_bytes();
                let seen: serde_json::Value = serde_json::from_slice(&body).expect("json");
                assert_eq!(seen["x-keep"], "kept");
            }
            gw.shutdown().await;
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_stream_untouched_and_upgrades_are_spliced() {
    let upstream = echo_upstream().await;
    let gw = proxy_for(upstream, "").await;
    let ingress = gw.proxy_ingress_addr.expect("ingress");

    // A 1 MiB body comes back byte for byte.
    let payload: Vec<u8> = (0..1_048_576u32).map(|i| (i % 251) as u8).collect();
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let req = Request::post(format!("http://{ingress}/upload"))
        .body(Full::new(Bytes::from(payload.clone())))
        .expect("request");
    let resp = client.request(req).await.expect("response");
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(body.len(), payload.len());
    assert!(body == payload, "body changed in transit");

    // The ingress started a context for that context-less request; Host is kept.
    let req = Request::get(format!("http://{ingress}/h"))
        .header("host", "shop.example:8080")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let body = client
        .request(req)
        .await
        .expect("resp")
        .into_body()
        .collect()
        .await
        .expect("b")
        .to_bytes();
    let seen: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(seen["host"], "shop.example:8080");
    assert!(
        seen["traceparent"].as_str().is_some_and(|t| t.len() == 55),
        "{seen}"
    );
    assert!(
        seen["tracestate"]
            .as_str()
            .is_some_and(|t| t.starts_with("ppb=ps:-1;sp:")),
        "{seen}"
    );

    // An upgrade (websocket-style) is passed through and spliced.
    let mut s = tokio::net::TcpStream::connect(ingress)
        .await
        .expect("connect");
    s.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
        .await
        .expect("write");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).await.expect("read head");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: echo"), "{head}");
    s.write_all(b"ping over the upgraded connection")
        .await
        .expect("write");
    let mut back = [0u8; 33];
    s.read_exact(&mut back).await.expect("echo");
    assert_eq!(&back, b"ping over the upgraded connection");
    gw.shutdown().await;
}

/// Egress without `upstream` is a forward proxy: an absolute-form request goes to the
/// URI's host:port, which is also what `Pinpoint-Host` names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn egress_without_upstream_forwards_to_the_absolute_uri() {
    let upstream = echo_upstream().await;
    let gw = common::start(
        "receivers:\n  otlp:\n    grpc: { endpoint: 127.0.0.1:0 }\nexporters:\n  none:\n    type: null\n\
         admin: { endpoint: 127.0.0.1:0 }\nservice: { shutdown_grace: 2s }\n\
         proxy:\n  application_name: svc\n  egress: { listen: 127.0.0.1:0 }\n",
    )
    .await;
    let egress = gw.proxy_egress_addr.expect("egress");
    let mut s = tokio::net::TcpStream::connect(egress)
        .await
        .expect("connect");
    let req = format!(
        "GET http://{upstream}/x HTTP/1.1\r\nHost: {upstream}\r\ntraceparent: 00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.expect("read");
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    let seen: serde_json::Value = serde_json::from_str(body).expect("json");
    assert_eq!(seen["pinpoint-host"], upstream.to_string());
    assert_eq!(seen["pinpoint-pappname"], "svc");
    assert_eq!(
        seen["pinpoint-traceid"],
        "otel^790211418057950173^-8914616934935285348"
    );
    gw.shutdown().await;
}
