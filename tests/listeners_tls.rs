//! TLS, mutual TLS and bearer/basic auth on the OTLP receivers and admin, driven by the
//! real OpenTelemetry Python SDK exporters (gRPC and HTTP/protobuf) and Python's own
//! `ssl`/`urllib`. Certificates are made at test time with the `openssl` CLI in a
//! temporary directory (a throw-away CA, a server certificate for 127.0.0.1 and a client
//! certificate); nothing secret is in the repository.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

struct Certs {
    dir: tempfile::TempDir,
}

impl Certs {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn arg(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("the openssl CLI is installed (.ci/run installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`ca.pem`), a server certificate for 127.0.0.1/localhost (`server.pem`,
/// `server.key`) and a client certificate (`client.pem`, `client.key`), all P-256.
fn make_certs() -> Certs {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=bridge test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(d, &ca);
    for (name, cn, ext) in [
        (
            "server",
            "localhost",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
        ),
        (
            "client",
            "bridge-test-client",
            "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n",
        ),
    ] {
        std::fs::write(d.join(format!("{name}.ext")), ext).expect("write ext");
        let mut req = vec!["req"];
        req.extend(ec);
        let (key, csr, subj) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("/CN={cn}"),
        );
        req.extend(["-keyout", &key, "-out", &csr, "-subj", &subj]);
        openssl(d, &req);
        let (pem, ext) = (format!("{name}.pem"), format!("{name}.ext"));
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "2",
                "-extfile",
                &ext,
            ],
        );
    }
    Certs { dir }
}

/// Runs `tests/python/<script>`; prints JSON. `requests` lets `REQUESTS_CA_BUNDLE` and
/// `CURL_CA_BUNDLE` override the CA file the HTTP exporter sets on its session
/// (psf/requests#3829), so they are removed: the exporter's own `certificate_file` counts.
fn python(script: &str, args: &[&str]) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(script);
    let out = Command::new(common::python())
        .arg(&path)
        .args(args)
        .env_remove("REQUESTS_CA_BUNDLE")
        .env_remove("CURL_CA_BUNDLE")
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{script} failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("script prints JSON")
}

fn export(protocol: &str, endpoint: &str, extra: &[&str]) -> Value {
    let mut args = vec![
        "--protocol",
        protocol,
        "--endpoint",
        endpoint,
        "--timeout",
        "4",
    ];
    args.extend(extra);
    python("secure_export.py", &args)
}

fn admin(url: &str, extra: &[&str]) -> Value {
    let mut args = vec!["--url", url];
    args.extend(extra);
    python("admin_get.py", &args)
}

fn trace_ids(out: &Path) -> Vec<String> {
    common::spans_of(&common::read_lines(out))
        .iter()
        .map(|(_, _, s)| s.trace_id.iter().map(|b| format!("{b:02x}")).collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_tokens_with_the_python_sdk_exporters_and_a_protected_admin() {
    let certs = make_certs();
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out.jsonl");
    let token_file = dir.path().join("admin-token");
    std::fs::write(&token_file, "admin-s3cret\n").expect("write token");
    let tls = format!(
        "tls: {{ cert_file: '{}', key_file: '{}' }}",
        certs.arg("server.pem"),
        certs.arg("server.key")
    );
    let yaml = format!(
        "receivers:\n  otlp:\n\
         \x20   grpc: {{ endpoint: 127.0.0.1:0, {tls}, auth: {{ bearer: {{ token: grpc-s3cret }} }} }}\n\
         \x20   http: {{ endpoint: 127.0.0.1:0, {tls}, auth: {{ bearer: {{ token: http-s3cret }}, basic: {{ username: otel, password: 'pa:ss word' }} }} }}\n\
         exporters:\n  out:\n    type: file\n    path: '{}'\n    batch: {{ max_spans: 1000, timeout: 50ms }}\n\
         admin: {{ endpoint: 127.0.0.1:0, {tls}, auth: {{ bearer: {{ token_file: '{}' }} }} }}\n\
         service: {{ shutdown_grace: 5s }}\n",
        out.display(),
        token_file.display()
    );
    let gw = common::start(&yaml).await;
    let grpc = format!("https://127.0.0.1:{}", gw.grpc_addr.expect("grpc").port());
    let http = format!(
        "https://127.0.0.1:{}/v1/traces",
        gw.http_addr.expect("http").port()
    );
    let ca = certs.arg("ca.pem");

    // Right token over TLS: delivered.
    let ok_grpc = export(
        "grpc",
        &grpc,
        &["--ca", &ca, "--authorization", "Bearer grpc-s3cret"],
    );
    assert_eq!(
        ok_grpc["ok"], true,
        "gRPC over TLS with the token: {ok_grpc}"
    );
    let ok_http = export(
        "http",
        &http,
        &["--ca", &ca, "--authorization", "Bearer http-s3cret"],
    );
    assert_eq!(
        ok_http["ok"], true,
        "HTTP over TLS with the token: {ok_http}"
    );
    // Basic auth (base64 of `otel:pa:ss word`).
    let ok_basic = export(
        "http",
        &http,
        &["--ca", &ca, "--authorization", "Basic b3RlbDpwYTpzcyB3b3Jk"],
    );
    assert_eq!(
        ok_basic["ok"], true,
        "HTTP over TLS with basic auth: {ok_basic}"
    );
    // Wrong or missing token: refused (UNAUTHENTICATED / 401, not retried by the SDK).
    let bad_grpc = export(
        "grpc",
        &grpc,
        &["--ca", &ca, "--authorization", "Bearer http-s3cret"],
    );
    assert_eq!(
        bad_grpc["ok"], false,
        "gRPC with the wrong token: {bad_grpc}"
    );
    let no_http = export("http", &http, &["--ca", &ca]);
    assert_eq!(no_http["ok"], false, "HTTP without a token: {no_http}");
    // Plain text to a TLS listener: refused.
    let plain = export(
        "grpc",
        &grpc.replace("https", "http"),
        &["--authorization", "Bearer grpc-s3cret"],
    );
    assert_eq!(
        plain["ok"], false,
        "plain gRPC to the TLS listener: {plain}"
    );

    let lines = common::wait_for_spans(&out, 3).await;
    let got = trace_ids(&out);
    assert_eq!(
        common::spans_of(&lines).len(),
        3,
        "exactly the three authorized traces: {got:?}"
    );
    for good in [&ok_grpc, &ok_http, &ok_basic] {
        assert!(got.contains(&good["trace_id"].as_str().expect("id").to_owned()));
    }
    for bad in [&bad_grpc, &no_http, &plain] {
        assert!(!got.contains(&bad["trace_id"].as_str().expect("id").to_owned()));
    }

    // Admin over TLS: probes open, everything else behind the token.
    let base = format!("https://127.0.0.1:{}", gw.admin_addr.port());
    let healthz = admin(&format!("{base}/healthz"), &["--ca", &ca]);
    assert_eq!(healthz["status"], 200, "{healthz}");
    let denied = admin(&format!("{base}/metrics"), &["--ca", &ca]);
    assert_eq!(denied["status"], 401, "{denied}");
    let wrong = admin(
        &format!("{base}/metrics"),
        &["--ca", &ca, "--authorization", "Bearer nope"],
    );
    assert_eq!(wrong["status"], 401, "{wrong}");
    let translate = admin(
        &format!("{base}/v1/context/translate"),
        &[
            "--ca",
            &ca,
            "--post",
            r#"{"headers":{"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}"#,
        ],
    );
    assert_eq!(translate["status"], 401, "{translate}");
    let metrics = admin(
        &format!("{base}/metrics"),
        &["--ca", &ca, "--authorization", "Bearer admin-s3cret"],
    );
    assert_eq!(metrics["status"], 200, "{metrics}");
    let text = metrics["body"].as_str().expect("body");
    for (listener, reason) in [
        ("otlp_grpc", "invalid"),
        ("otlp_http", "missing"),
        ("admin", "missing"),
        ("admin", "invalid"),
    ] {
        let needle = format!(
            "bridge_listener_auth_failures_total{{listener=\"{listener}\",reason=\"{reason}\"}}"
        );
        assert!(text.contains(&needle), "{needle} missing from /metrics");
    }
    assert!(
        text.contains(
            "bridge_listener_connections_closed_total{listener=\"otlp_grpc\",reason=\"tls_error\"}"
        ),
        "the plain-text client is counted as a TLS error"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_needs_a_client_certificate_signed_by_the_configured_ca() {
    let certs = make_certs();
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out.jsonl");
    let tls = format!(
        "tls: {{ cert_file: '{}', key_file: '{}', client_ca_file: '{}' }}",
        certs.arg("server.pem"),
        certs.arg("server.key"),
        certs.arg("ca.pem")
    );
    let yaml = format!(
        "receivers:\n  otlp:\n    grpc: {{ endpoint: 127.0.0.1:0, {tls} }}\n    http: {{ endpoint: 127.0.0.1:0, {tls} }}\n\
         exporters:\n  out:\n    type: file\n    path: '{}'\n    batch: {{ max_spans: 1000, timeout: 50ms }}\n\
         admin: {{ endpoint: 127.0.0.1:0 }}\nservice: {{ shutdown_grace: 5s }}\n",
        out.display()
    );
    let gw = common::start(&yaml).await;
    let grpc = format!("https://127.0.0.1:{}", gw.grpc_addr.expect("grpc").port());
    let http = format!(
        "https://127.0.0.1:{}/v1/traces",
        gw.http_addr.expect("http").port()
    );
    let (ca, cert, key) = (
        certs.arg("ca.pem"),
        certs.arg("client.pem"),
        certs.arg("client.key"),
    );
    let with_cert = [
        "--ca",
        ca.as_str(),
        "--cert",
        cert.as_str(),
        "--key",
        key.as_str(),
    ];

    let ok_grpc = export("grpc", &grpc, &with_cert);
    assert_eq!(
        ok_grpc["ok"], true,
        "gRPC with a client certificate: {ok_grpc}"
    );
    let ok_http = export("http", &http, &with_cert);
    assert_eq!(
        ok_http["ok"], true,
        "HTTP with a client certificate: {ok_http}"
    );
    let no_cert_grpc = export("grpc", &grpc, &["--ca", &ca]);
    assert_eq!(
        no_cert_grpc["ok"], false,
        "gRPC without a client certificate: {no_cert_grpc}"
    );
    let no_cert_http = export("http", &http, &["--ca", &ca]);
    assert_eq!(
        no_cert_http["ok"], false,
        "HTTP without a client certificate: {no_cert_http}"
    );
    // A certificate the CA did not sign: the server's own (a serverAuth certificate from
    // the same CA is still not a client certificate).
    let (scert, skey) = (certs.arg("server.pem"), certs.arg("server.key"));
    let wrong = export(
        "http",
        &http,
        &["--ca", &ca, "--cert", &scert, "--key", &skey],
    );
    assert_eq!(
        wrong["ok"], false,
        "HTTP with a server certificate as client certificate: {wrong}"
    );

    let lines = common::wait_for_spans(&out, 2).await;
    assert_eq!(common::spans_of(&lines).len(), 2);
    let got = trace_ids(&out);
    assert!(got.contains(&ok_grpc["trace_id"].as_str().expect("id").to_owned()));
    assert!(got.contains(&ok_http["trace_id"].as_str().expect("id").to_owned()));
    gw.shutdown().await;
}
