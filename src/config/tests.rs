//! Tests of the config module.

use super::*;

fn no_env(_: &str) -> Option<String> {
    None
}

const MINIMAL: &str = "receivers:\n  otlp:\n    grpc:\n      endpoint: 127.0.0.1:0\nexporters:\n  out:\n    type: null\n";

#[test]
fn embedded_default_is_valid() {
    let c = load(ConfigSource::Embedded).expect("embedded default must load");
    assert!(!c.exporters.is_empty());
}

#[test]
fn every_file_in_config_dir_is_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("config dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            // Example configs give every variable they use a default, so that they
            // load as shipped: read them with no variable set.
            let r = parse(&std::fs::read_to_string(&path).expect("read"), &no_env);
            assert!(r.is_ok(), "{}: {:?}", path.display(), r.err());
            seen += 1;
        }
    }
    assert!(seen >= 1);
}

#[test]
fn minimal_config_gets_documented_defaults() {
    let c = parse(MINIMAL, &no_env).expect("valid");
    assert_eq!(c.receivers.otlp.max_request_bytes, 64 << 20);
    assert!(c.receivers.otlp.http.is_none());
    let e = &c.exporters[0];
    assert_eq!(
        (e.queue.max_spans, e.queue.on_full),
        (100_000, OnFull::Refuse)
    );
    assert_eq!(
        (e.batch.max_spans, e.batch.timeout),
        (512, Duration::from_millis(200))
    );
    assert_eq!(c.admin.endpoint, "127.0.0.1:8888");
    assert_eq!(c.service.shutdown_grace, Duration::from_secs(10));
}

#[test]
fn reports_every_error_with_its_path() {
    let text = r#"
receivers:
  otlp:
    grpc: { endpoint: "nonsense" }
    max_request_bytes: 12parsecs
exporters:
  a:
    type: file
    pathh: x
  b:
    type: kafka
  c:
    type: null
    batch: { max_spans: 0, timeout: 5 }
admin: { endpoint: ":8888" }
colour: blue
"#;
    let errs = parse(text, &no_env).expect_err("invalid");
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    for want in [
        "colour",
        "receivers.otlp.grpc.endpoint",
        "receivers.otlp.max_request_bytes",
        "exporters.a.pathh",
        "exporters.a.path",
        "exporters.b.type",
        "exporters.c.batch.timeout",
        "exporters.c.batch.max_spans",
        "admin.endpoint",
    ] {
        assert!(paths.contains(&want), "missing {want} in {errs:?}");
    }
    let text = errs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(text.contains("unknown field `pathh`"), "{text}");
    assert!(text.contains("unknown exporter type `kafka`"), "{text}");
    assert!(text.contains("unknown section"), "{text}");
}

#[test]
fn semantic_errors_are_all_reported() {
    let text = "receivers:\n  otlp:\n    grpc: { endpoint: 'x:notaport' }\nexporters:\n  c:\n    type: null\n    batch: { max_spans: 0 }\n    queue: { max_spans: 10 }\n";
    let errs = parse(text, &no_env).expect_err("invalid");
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    assert!(paths.contains(&"receivers.otlp.grpc.endpoint"), "{errs:?}");
    assert!(paths.contains(&"exporters.c.batch.max_spans"), "{errs:?}");
}

#[test]
fn pinpoint_receiver_ports_are_in_the_conflict_check() {
    let text = "receivers:\n  otlp:\n    grpc: { endpoint: '127.0.0.1:4317' }\n  pinpoint: { agent_endpoint: '0.0.0.0:9991', stat_endpoint: '127.0.0.1:9991', span_endpoint: '127.0.0.1:4317' }\nexporters:\n  n: { type: null }\n";
    let errs = parse(text, &no_env).expect_err("conflicting ports");
    let find = |path: &str| errs.iter().find(|e| e.path == path).map(|e| e.to_string());
    let stat = find("receivers.pinpoint.stat_endpoint").expect("stat clash");
    assert!(
        stat.contains("port 9991 is already taken by receivers.pinpoint.agent_endpoint"),
        "{stat}"
    );
    let span = find("receivers.pinpoint.span_endpoint").expect("span clash");
    assert!(
        span.contains("already taken by receivers.otlp.grpc.endpoint"),
        "{span}"
    );
}

#[test]
fn pinpoint_exporter_values_are_validated() {
    let text = "receivers:\n  otlp:\n    grpc: { endpoint: 127.0.0.1:0 }\nexporters:\n  pp:\n    type: pinpoint\n    host: ''\n    marker: 'bad marker!'\n    hold: 0s\n    ping_interval: 5s\n";
    let errs = parse(text, &no_env).expect_err("invalid");
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    for want in [
        "exporters.pp.host",
        "exporters.pp.marker",
        "exporters.pp.hold",
        "exporters.pp.ping_interval",
    ] {
        assert!(paths.contains(&want), "missing {want} in {errs:?}");
    }
}

#[test]
fn env_substitution() {
    let env = |k: &str| match k {
        "PORT" => Some("4317".to_owned()),
        "HOST" => Some("127.0.0.1".to_owned()),
        "SPANS" => Some("64".to_owned()),
        _ => None,
    };
    let text = "receivers:\n  otlp:\n    grpc: { endpoint: '${env:HOST}:${env:PORT}' }\nexporters:\n  c:\n    type: file\n    path: '$${literal}/${env:DIR:-out}/s.jsonl'\n    batch: { max_spans: '${env:SPANS}' }\n";
    let c = parse(text, &env).expect("valid");
    assert_eq!(
        c.receivers.otlp.grpc.as_ref().map(|g| g.endpoint.as_str()),
        Some("127.0.0.1:4317")
    );
    assert_eq!(c.exporters[0].batch.max_spans, 64);
    let ExporterKind::File(f) = &c.exporters[0].kind else {
        panic!("file")
    };
    assert_eq!(f.path, "${literal}/out/s.jsonl");
}

#[test]
fn missing_env_variable_is_an_error_with_path() {
    let text = "receivers:\n  otlp:\n    grpc: { endpoint: '${env:NOPE_NOT_SET}' }\nexporters:\n  c: { type: null }\n";
    let errs = parse(text, &no_env).expect_err("invalid");
    assert_eq!(errs[0].path, "receivers.otlp.grpc.endpoint");
    assert!(errs[0].message.contains("NOPE_NOT_SET"));
}

#[test]
fn durations_and_sizes() {
    let ok = [
        ("250ms", 250_000_000u128),
        ("10s", 10_000_000_000),
        ("1.5s", 1_500_000_000),
        ("5m", 300_000_000_000),
        ("2us", 2000),
    ];
    for (t, ns) in ok {
        assert_eq!(parse_duration(t).map(|d| d.as_nanos()), Ok(ns), "{t}");
    }
    for t in ["10", "ten s", "5 parsecs", "-1s"] {
        assert!(parse_duration(t).is_err(), "{t}");
    }
    assert_eq!(parse_bytes("64MiB"), Ok(64 << 20));
    assert_eq!(parse_bytes("1000"), Ok(1000));
    assert_eq!(parse_bytes("4MB"), Ok(4_000_000));
    assert!(parse_bytes("4XB").is_err());
}

const TWO_EXPORTERS: &str = "receivers:\n  otlp:\n    grpc: { endpoint: 127.0.0.1:0 }\nexporters:\n  pinpoint: { type: null }\n  zipkin: { type: null }\n";

#[test]
fn routes_are_read_in_order_with_their_actions() {
    let text = format!(
        "{TWO_EXPORTERS}routes:\n\
             \x20 - name: payments-debug\n\
             \x20   match:\n\
             \x20     resource: {{ service.name: {{ glob: 'pay*' }} }}\n\
             \x20     scope: {{ name: io.opentelemetry.jdbc }}\n\
             \x20     span: {{ http.response.status_code: {{ gte: 500 }} }}\n\
             \x20     kind: [server, client]\n\
             \x20     status: [error]\n\
             \x20   sample: 0.1\n\
             \x20   to: [pinpoint, zipkin]\n\
             \x20   pinpoint: {{ service_type: 1700, application_name: payments }}\n\
             \x20 - name: health\n\
             \x20   match: {{ span_name: {{ glob: 'GET /health*' }} }}\n\
             \x20   drop: true\n\
             \x20 - name: copy\n\
             \x20   match: {{ kind: [internal] }}\n\
             \x20   to: [pinpoint, {{ exporter: zipkin, sample: 0.25 }}]\n\
             default_route: {{ to: zipkin }}\n"
    );
    let c = parse(&text, &no_env).unwrap_or_else(|e| panic!("{e:?}"));
    let r = &c.routing;
    assert_eq!(r.routes.len(), 3);
    assert_eq!(r.routes[0].name, "payments-debug");
    assert_eq!(
        r.routes[0].action.destination,
        Destination::Exporters(vec![
            ExporterRef::all("pinpoint"),
            ExporterRef::all("zipkin")
        ])
    );
    assert_eq!(r.routes[0].action.sample, Some(0.1));
    assert_eq!(
        r.routes[0].action.pinpoint,
        Some(RouteOverrides {
            service_type: Some(1700),
            application_name: Some("payments".into())
        })
    );
    let m = &r.routes[0].matcher;
    assert!(m.is_span_level() && !m.is_all());
    assert_eq!((m.resource.len(), m.span.len()), (1, 1));
    assert!(m.scope_name.is_some() && m.kinds.is_some() && m.statuses.is_some());
    assert_eq!(r.routes[1].action.destination, Destination::Drop);
    assert_eq!(
        r.routes[2].action.destination,
        Destination::Exporters(vec![
            ExporterRef::all("pinpoint"),
            ExporterRef {
                exporter: "zipkin".into(),
                sample: Some(0.25)
            }
        ])
    );
    assert_eq!(
        r.default.as_ref().map(|d| &d.destination),
        Some(&Destination::Exporters(vec![ExporterRef::all("zipkin")]))
    );
    // No routes section (or empty ones): no routes and no default (every exporter
    // gets everything).
    for extra in [
        "",
        "routes: []\ndefault_route: ~\n",
        "routes:\ndefault_route:\n",
    ] {
        let c = parse(&format!("{TWO_EXPORTERS}{extra}"), &no_env).expect(extra);
        assert!(c.routing.routes.is_empty() && c.routing.default.is_none());
    }
}

#[test]
fn route_contradictions_are_errors_with_paths() {
    let route = "  - name: ok\n    match: { kind: [server] }\n    to: [pinpoint]\n";
    // (routes section, path, part of the message)
    let cases: Vec<(String, &str, &str)> = vec![
            (
                format!("routes:\n{route}  - name: both\n    to: [zipkin]\n    drop: true\n"),
                "routes[1].drop",
                "contradiction",
            ),
            (
                "routes:\n  - name: all\n    to: [pinpoint]\n  - name: later\n    match: { kind: [client] }\n    to: [zipkin]\n".into(),
                "routes[1]",
                "unreachable: routes[0] (`all`)",
            ),
            (
                "routes:\n  - name: all\n    match: {}\n    drop: true\ndefault_route: { to: [pinpoint] }\n".into(),
                "default_route",
                "unreachable",
            ),
            (
                format!("routes:\n{route}  - name: again\n    match: {{ kind: [server] }}\n    to: [zipkin]\n"),
                "routes[1].match",
                "the same match as routes[0]",
            ),
            (
                format!("routes:\n{route}  - name: s\n    sample: 0\n    to: [zipkin]\n"),
                "routes[1].sample",
                "(0, 1]",
            ),
            (
                format!("routes:\n{route}  - name: s\n    sample: 1.5\n    to: [zipkin]\n"),
                "routes[1].sample",
                "(0, 1]",
            ),
            (
                format!("routes:\n{route}  - name: s\n    sample: half\n    to: [zipkin]\n"),
                "routes[1].sample",
                "(0, 1]",
            ),
            (
                format!("routes:\n{route}  - name: s\n    match: {{ kind: [client] }}\n    sample: 0.5\n    drop: true\n"),
                "routes[1].sample",
                "sampling on a route that drops",
            ),
            (
                format!("routes:\n{route}  - name: r\n    match: {{ span: {{ http.response.status_code: {{ gt: 599, lt: 500 }} }} }}\n    to: [zipkin]\n"),
                "routes[1].match.span[\"http.response.status_code\"]",
                "`gt: 599` and `lt: 500`",
            ),
            (
                format!("routes:\n{route}  - name: r\n    match: {{ kind: [client] }}\n    to: [zipkin]\n  - name: u\n    match: {{ kind: [producer] }}\n    to: [pinpoint, jaeger]\n"),
                "routes[2].to[1]",
                "unknown exporter `jaeger` (exporters: pinpoint, zipkin)",
            ),
            (
                format!("routes:\n{route}  - name: r\n    match: {{ kind: [client] }}\n    to: [zipkin, zipkin]\n"),
                "routes[1].to[1]",
                "listed twice",
            ),
            (
                format!("routes:\n{route}  - name: ok\n    match: {{ kind: [client] }}\n    to: [zipkin]\n"),
                "routes[1].name",
                "duplicate route name `ok` (also routes[0])",
            ),
            (
                format!("routes:\n{route}  - name: r\n    match: {{ kind: [client] }}\n    to: []\n"),
                "routes[1].to",
                "at least one exporter",
            ),
            (
                format!("routes:\n{route}  - name: r\n    match: {{ kind: [client] }}\n"),
                "routes[1]",
                "needs `to",
            ),
            (
                format!("routes:\n{route}  - match: {{ kind: [client] }}\n    to: [zipkin]\n"),
                "routes[1].name",
                "missing",
            ),
            (
                format!("routes:\n{route}  - name: default\n    match: {{ kind: [client] }}\n    to: [zipkin]\n"),
                "routes[1].name",
                "reserved",
            ),
            (
                format!("routes:\n{route}  - name: 'a b'\n    match: {{ kind: [client] }}\n    to: [zipkin]\n"),
                "routes[1].name",
                "[a-zA-Z0-9_-]",
            ),
            (
                format!("routes:\n{route}  - name: r\n    match: {{ kind: [client] }}\n    tos: [zipkin]\n    to: [zipkin]\n"),
                "routes[1].tos",
                "unknown key",
            ),
            (
                format!("routes:\n{route}  - name: r\n    match: {{ span_name: {{ regex: 'GET (' }} }}\n    to: [zipkin]\n"),
                "routes[1].match.span_name.regex",
                "invalid regex",
            ),
            (
                format!("routes:\n{route}  - name: r\n    match: {{ kind: [client] }}\n    to: [zipkin]\n    pinpoint: {{ service_type: 70000 }}\n"),
                "routes[1].pinpoint.service_type",
                "1 to 32767",
            ),
            (
                format!("routes:\n{route}  - name: r\n    match: {{ kind: [client] }}\n    to: [zipkin]\n    pinpoint: {{ application_name: 'a-name-much-longer-than-pinpoint-allows' }}\n"),
                "routes[1].pinpoint.application_name",
                "1 to 24 characters",
            ),
            (
                format!("routes:\n{route}  - name: r\n    match: {{ kind: [client] }}\n    drop: true\n    pinpoint: {{ service_type: 1000 }}\n"),
                "routes[1].pinpoint",
                "contradiction",
            ),
            (
                format!("routes:\n{route}  - name: r\n    match: {{ kind: [client] }}\n    to: [zipkin]\n    pinpoint: {{}}\n"),
                "routes[1].pinpoint",
                "service_type and/or application_name",
            ),
            (
                format!("routes:\n{route}  - name: r\n    match: {{ kind: [client] }}\n    to: [zipkin, {{ exporter: pinpoint, sample: 0 }}]\n"),
                "routes[1].to[1].sample",
                "(0, 1]",
            ),
            (
                format!("routes:\n{route}  - name: r\n    match: {{ kind: [client] }}\n    to: [{{ sample: 0.5 }}]\n"),
                "routes[1].to[0].exporter",
                "missing",
            ),
            (
                format!("routes:\n{route}  - name: r\n    match: {{ kind: [client] }}\n    to: [{{ exporter: jaeger }}]\n"),
                "routes[1].to[0].exporter",
                "unknown exporter",
            ),
            (
                format!("routes:\n{route}  - name: r\n    match: {{ kind: [client] }}\n    to: [{{ exporter: zipkin, rate: 1 }}]\n"),
                "routes[1].to[0].rate",
                "unknown key",
            ),
            (
                format!("routes:\n{route}  - name: r\n    match: {{ kind: [client] }}\n    to: [[zipkin]]\n"),
                "routes[1].to[0]",
                "exporter name or",
            ),
            ("routes: { name: x }\n".into(), "routes", "list"),
            (
                "default_route: { to: [pinpoint], match: { kind: [server] } }\n".into(),
                "default_route.match",
                "unknown key",
            ),
            ("default_route: {}\n".into(), "default_route", "needs `to"),
        ];
    for (routes, path, message) in cases {
        let text = format!("{TWO_EXPORTERS}{routes}");
        let errs = parse(&text, &no_env).expect_err(&routes);
        assert!(
            errs.iter()
                .any(|e| e.path == path && e.message.contains(message)),
            "{routes}\nwant {path}: {message}\ngot {errs:?}"
        );
    }
}

#[test]
fn every_route_error_is_reported_at_once() {
    let text = format!(
        "{TWO_EXPORTERS}routes:\n\
             \x20 - name: a\n    match: {{ span: {{ k: {{ regex: '[' }} }} }}\n    to: [nope]\n\
             \x20 - name: a\n    match: {{ kind: [sever] }}\n    sample: 2\n    to: [zipkin]\n\
             exporters_typo: 1\n"
    );
    let errs = parse(&text, &no_env).expect_err("invalid");
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    for want in [
        "routes[0].match.span[\"k\"].regex",
        "routes[0].to[0]",
        "routes[1].name",
        "routes[1].match.kind[0]",
        "routes[1].sample",
        "exporters_typo",
    ] {
        assert!(paths.contains(&want), "missing {want} in {errs:?}");
    }
}

#[test]
fn a_route_may_name_an_exporter_whose_own_config_is_wrong() {
    // Only the exporter's own error is reported, not a confusing "unknown exporter".
    let text = "receivers:\n  otlp:\n    grpc: { endpoint: 127.0.0.1:0 }\nexporters:\n  broken: { type: file }\nroutes:\n  - name: r\n    to: [broken]\n";
    let errs = parse(text, &no_env).expect_err("invalid");
    assert!(
        errs.iter().all(|e| e.path.starts_with("exporters.broken")),
        "{errs:?}"
    );
}

#[test]
fn zipkin_exporter_defaults_and_errors() {
    let text = "receivers:\n  otlp:\n    grpc: { endpoint: 127.0.0.1:0 }\nexporters:\n  z:\n    type: zipkin\n    endpoint: http://127.0.0.1:9411/api/v2/spans\n";
    let c = parse(text, &no_env).expect("valid");
    let ExporterKind::Zipkin(z) = &c.exporters[0].kind else {
        panic!("zipkin")
    };
    use crate::exporter::zipkin::{Compression, Encoding};
    assert_eq!(
        (z.encoding, z.compression, z.timeout, z.headers.len()),
        (
            Encoding::Json,
            Compression::Gzip,
            Duration::from_secs(10),
            0
        )
    );
    assert_eq!(c.exporters[0].kind.type_name(), "zipkin");

    let text = r#"
receivers: { otlp: { grpc: { endpoint: 127.0.0.1:0 } } }
exporters:
  a: { type: zipkin, endpoint: "127.0.0.1:9411", timeout: 0s, headers: { "bad name": x } }
  b: { type: zipkin, endpoint: "https://zipkin.example/api/v2/spans", encoding: thrift }
  c: { type: zipkin, endpoint: "http://z:9411/api/v2/spans", compression: none, encoding: proto, gzip: true }
  d: { type: zipkin }
"#;
    let errs = parse(text, &no_env).expect_err("invalid");
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    for want in [
        "exporters.a.endpoint",
        "exporters.a.headers",
        "exporters.a.timeout",
        "exporters.b.encoding",
        "exporters.c.gzip",
        "exporters.d.endpoint",
    ] {
        assert!(paths.contains(&want), "missing {want} in {errs:?}");
    }
    let text = errs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(text.contains("not an http:// or https:// URL"), "{text}");
    assert!(text.contains("unknown variant `thrift`"), "{text}");
    assert!(text.contains("unknown field `gzip`"), "{text}");
    assert!(
        text.contains("exporters.d.endpoint: missing (required)"),
        "{text}"
    );
}

#[test]
fn invalid_yaml_is_reported() {
    let errs = parse("receivers: [unclosed", &no_env).expect_err("invalid");
    assert!(errs[0].message.starts_with("invalid YAML"), "{errs:?}");
}

#[test]
fn persistent_queue_defaults_and_problems_with_paths() {
    use crate::pipeline::persist::SyncPolicy;
    let ok = "receivers:\n  otlp:\n    grpc:\n      endpoint: 127.0.0.1:0\nexporters:\n  out:\n    type: null\n    queue:\n      persistent: { dir: /tmp/q }\n";
    let c = parse(ok, &no_env).expect("valid");
    let p = c.exporters[0]
        .queue
        .persistent
        .as_ref()
        .expect("persistent");
    assert_eq!(
        (p.dir.as_str(), p.max_bytes, p.sync),
        ("/tmp/q", 1 << 30, SyncPolicy::Always)
    );
    let bad = "receivers:\n  otlp:\n    grpc:\n      endpoint: 127.0.0.1:0\nexporters:\n  a:\n    type: null\n    queue:\n      persistent: { dir: /d, max_bytes: 1KiB, sync: 0s }\n  e:\n    type: null\n    queue: { persistent: { dir: /q } }\n  b:\n    type: null\n    queue: { persistent: { dir: /q/ } }\n  c:\n    type: null\n    queue: { persistent: { dir: /c, sync: sometimes } }\n";
    let errors: Vec<String> = parse(bad, &no_env)
        .expect_err("invalid")
        .iter()
        .map(ToString::to_string)
        .collect();
    let all = errors.join("\n");
    for want in [
        "exporters.a.queue.persistent.max_bytes: must be at least 1MiB",
        "exporters.a.queue.persistent.sync: an interval must be greater than 0",
        "exporters.c.queue.persistent.sync: expected `always`, `never` or a duration",
        "queue.persistent.dir: is also the queue directory of exporter",
    ] {
        assert!(all.contains(want), "missing `{want}` in:\n{all}");
    }
}

#[test]
fn ids_store_reads_env_and_reports_errors_with_paths() {
    let env = |k: &str| (k == "REDIS_PASSWORD").then(|| "s3cret".to_owned());
    let text = format!(
        "{MINIMAL}ids:\n  store:\n    type: redis\n    url: redis://127.0.0.1:6379/0\n    password: ${{env:REDIS_PASSWORD}}\n    ttl: 10m\n"
    );
    let c = parse(&text, &env).expect("valid");
    let r = c.ids.store.as_ref().expect("store").redis();
    assert_eq!(r.password.as_deref(), Some("s3cret"));
    assert_eq!(r.ttl, std::time::Duration::from_secs(600));

    let text = format!(
        "{MINIMAL}ids:\n  store:\n    type: redis\n    url: 'http://x'\n    max_in_flight: 0\n"
    );
    let errs = parse(&text, &no_env).expect_err("invalid");
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        ["ids.store.url", "ids.store.max_in_flight"],
        "{errs:?}"
    );
    let text = format!("{MINIMAL}ids:\n  store:\n    type: redis\n    urll: x\n");
    let errs = parse(&text, &no_env).expect_err("invalid");
    assert!(errs[0].message.contains("unknown field `urll`"), "{errs:?}");
}
