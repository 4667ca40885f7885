//! Rotel, a foreign OTLP collector (Rust, from PyPI `rotel`), receives the bridge's spans
//! over OTLP/gRPC and over OTLP/HTTP (protobuf, gzip) and forwards them to bridges with
//! a file exporter; a third bridge takes the exporter's OTLP/JSON directly. Every span
//! must come out exactly as it went in.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{file_gateway, free_port, index, out_path, post, rich_request, tmp, wait_spans};

/// The `rotel-agent` binary that PyPI's `rotel` package ships (installed into .venv by
/// scripts/setup-test-peers.sh).
fn rotel_agent() -> PathBuf {
    if let Ok(p) = std::env::var("BRIDGE_TEST_ROTEL") {
        return PathBuf::from(p);
    }
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/lib");
    let found = std::fs::read_dir(&lib)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path().join("site-packages/rotel/rotel-agent"))
        .find(|p| p.exists());
    found.unwrap_or_else(|| {
        panic!(
            "rotel-agent not found under {}: run scripts/setup-test-peers.sh (PyPI `rotel`)",
            lib.display()
        )
    })
}

/// A running rotel-agent, killed on drop.
struct Rotel(Child);

impl Drop for Rotel {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "rotel never listened on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts Rotel receiving on free ports and forwarding over OTLP/gRPC to `forward`.
fn start_rotel(dir: &Path, name: &str, forward: std::net::SocketAddr) -> (Rotel, u16, u16) {
    let (grpc, http) = (free_port(), free_port());
    let child = Command::new(rotel_agent())
        .arg("start")
        .args(["--otlp-grpc-endpoint", &format!("127.0.0.1:{grpc}")])
        .args(["--otlp-http-endpoint", &format!("127.0.0.1:{http}")])
        .args(["--exporter", "otlp"])
        .args(["--otlp-exporter-endpoint", &format!("http://{forward}")])
        .arg("--pid-file")
        .arg(dir.join(format!("{name}.pid")))
        .arg("--log-file")
        .arg(dir.join(format!("{name}.log")))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn rotel-agent");
    let rotel = Rotel(child);
    wait_listening(grpc);
    wait_listening(http);
    (rotel, grpc, http)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotel_and_a_second_bridge_receive_every_field_intact() {
    let dir = tmp();
    let (via_grpc, via_http, direct) = (
        out_path(&dir, "via-rotel-grpc"),
        out_path(&dir, "via-rotel-http"),
        out_path(&dir, "direct-json"),
    );
    let sink_grpc = file_gateway(&via_grpc, 0).await;
    let sink_http = file_gateway(&via_http, 0).await;
    let sink_direct = file_gateway(&direct, 0).await;
    let (_rotel_a, rotel_a_grpc, _) =
        start_rotel(dir.path(), "rotel-a", sink_grpc.grpc_addr.expect("grpc"));
    let (_rotel_b, _, rotel_b_http) =
        start_rotel(dir.path(), "rotel-b", sink_http.grpc_addr.expect("grpc"));
    let gw = crate::common::start(&format!(
        "receivers:\n  otlp:\n    http: {{ endpoint: 127.0.0.1:0 }}\n\
         exporters:\n\
         \x20 to_rotel_grpc:\n    type: otlp\n    endpoint: http://127.0.0.1:{rotel_a_grpc}\n    headers: {{ x-tenant: t1 }}\n    batch: {{ timeout: 50ms }}\n\
         \x20 to_rotel_http:\n    type: otlp\n    protocol: http/protobuf\n    endpoint: http://127.0.0.1:{rotel_b_http}\n    batch: {{ timeout: 50ms }}\n\
         \x20 to_bridge_json:\n    type: otlp\n    protocol: http/json\n    compression: none\n    endpoint: http://{}/v1/traces\n    batch: {{ timeout: 50ms }}\n\
         admin: {{ endpoint: 127.0.0.1:0 }}\nservice: {{ shutdown_grace: 2s }}\n",
        sink_direct.http_addr.expect("http")
    ))
    .await;
    let input = rich_request(1..41);
    post(&gw, &input).await;
    let want = index(std::slice::from_ref(&input));
    for (label, path) in [
        ("via Rotel over gRPC", &via_grpc),
        ("via Rotel over HTTP", &via_http),
        ("direct OTLP/JSON", &direct),
    ] {
        let got = wait_spans(path, want.len(), Duration::from_secs(20)).await;
        let missing: Vec<_> = want
            .keys()
            .filter(|k| !got.contains_key(*k))
            .map(|k| want[k].4.name.clone() + &format!("{:?}", k))
            .collect();
        assert_eq!(
            got.len(),
            want.len(),
            "{label}: span count; missing {missing:?}"
        );
        for (id, w) in &want {
            let g = got
                .get(id)
                .unwrap_or_else(|| panic!("{label}: span {id:?} missing"));
            assert_eq!(g.0, w.0, "{label}: resource");
            assert_eq!(g.2, w.2, "{label}: scope");
            assert_eq!(g.4, w.4, "{label}: span");
            assert_eq!((&g.1, &g.3), (&w.1, &w.3), "{label}: schema urls");
        }
    }
    gw.shutdown().await;
    for s in [sink_grpc, sink_http, sink_direct] {
        s.shutdown().await;
    }
}
