//! The reference comparison with the Python SDK's Zipkin exporter, schema validation,
//! the proto3 decode and the file exporter's `zipkin_json` lines.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::common;
use crate::common::capture::{start_capture, wait_until};

fn schema_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/ref/zipkin2-api.yaml")
}

/// Runs the schema validator on JSON bodies; returns its report.
fn validate(dir: &Path, bodies: &[Vec<u8>]) -> Value {
    let mut args = vec!["--schema".to_owned(), schema_path().display().to_string()];
    for (i, body) in bodies.iter().enumerate() {
        let p = dir.join(format!("body-{i}-{}.json", bodies.len()));
        std::fs::write(&p, body).expect("write body");
        args.push(p.display().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    common::run_python("validate_zipkin.py", &args)
}

fn by_id(spans: &[Value]) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for s in spans {
        let id = s["id"].as_str().expect("id").to_owned();
        assert!(
            out.insert(id.clone(), s.clone()).is_none(),
            "span {id} twice"
        );
    }
    out
}

fn obj(v: &mut Value) -> &mut Map<String, Value> {
    v.as_object_mut().expect("object")
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a u64: {v}"))
}

/// The Pinpoint txid of an OTel-born trace (ids.md section 2), computed here.
fn txid(trace_hex: &str) -> String {
    let hi = u64::from_str_radix(&trace_hex[..16], 16).expect("hex") as i64;
    let lo = u64::from_str_radix(&trace_hex[16..], 16).expect("hex") as i64;
    format!("otel^{hi}^{lo}")
}

/// A tag value the reference wrote for an array: its elements as strings.
fn array_elements_as_text(v: &Value) -> Option<Vec<String>> {
    let items = serde_json::from_str::<Value>(v.as_str()?).ok()?;
    Some(
        items
            .as_array()?
            .iter()
            .map(|x| match x {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect(),
    )
}

/// Removes from `ours` and `theirs` every expected difference, after checking that it is
/// exactly as expected, so that what is left must be equal.
///
/// The differences between the bridge and the Python SDK's Zipkin exporter (1.45.1):
/// 1. `kind`: the reference writes `"kind": null` for INTERNAL spans (which fails the
///    schema); ours leaves the key out, as the OTel mapping says.
/// 2. `timestamp`, `duration`, annotation timestamps: the reference rounds nanoseconds to
///    the nearest microsecond (a 400 ns span gets duration 0, which fails the schema);
///    ours rounds down and makes every duration at least 1 µs (the spec's decision).
/// 3. `debug`: the reference sets `debug: true` on every sampled span, which asks Zipkin
///    to keep it whatever its sampling; ours never sets `debug`.
/// 4. `remoteEndpoint`: ours fills it for CLIENT and PRODUCER spans from the ranked
///    attributes (peer.service > server.address > ... > network.peer.address + port);
///    the reference never writes it.
/// 5. Tags only ours has: `w3c.tracestate` (spans with a tracestate), and
///    `pinpoint.transaction_id` / `pinpoint.span_id` (bridge extras).
/// 6. Tag only the reference has: `service.name` (ours has it as
///    `localEndpoint.serviceName` only).
/// 7. Tag `error` from an attribute on a span without ERROR status: the reference keeps it
///    (`"false"`), which Zipkin shows as a failed span; ours drops it.
/// 8. Arrays: the reference writes every element as a JSON string (`["1","2","3"]`,
///    `["true","false"]`); ours keeps JSON types (`[1,2,3]`, `[true,false]`). String
///    arrays are the same.
/// 9. Annotation values: the reference writes `{"<name>": {<attributes>}}` (also
///    `{"<name>": {}}` without attributes); ours writes `<name>: {<attributes>}`, or just
///    `<name>`, as the spec decides. Names and attribute values must agree.
///
/// A 200-character attribute value comes out whole from both (the reference cuts values
/// only when given `max_tag_value_length`).
fn reconcile(ours: &mut Value, theirs: &mut Value, made: &Value, sent: &Value) {
    let name = made["name"].as_str().expect("name").to_owned();
    let (o, t) = (obj(ours), obj(theirs));

    // 1. kind
    if made["kind"] == "INTERNAL" {
        assert_eq!(
            t.remove("kind"),
            Some(Value::Null),
            "{name}: reference kind"
        );
        assert_eq!(o.get("kind"), None, "{name}: our kind");
    }
    // 2. timing
    let (start, end) = (u(&made["start"]), u(&made["end"]));
    let (o_ts, t_ts) = (u(&o["timestamp"]), u(&t["timestamp"]));
    assert_eq!(
        (o_ts, t_ts),
        (start / 1000, (start + 500) / 1000),
        "{name}: timestamps"
    );
    let (o_d, t_d) = (u(&o["duration"]), u(&t["duration"]));
    assert_eq!(o_d, ((end - start) / 1000).max(1), "{name}: our duration");
    assert_eq!(
        t_d,
        (end - start + 500) / 1000,
        "{name}: reference duration"
    );
    for m in [&mut *o, &mut *t] {
        m.remove("timestamp");
        m.remove("duration");
    }
    // 3. debug
    assert_eq!(
        t.remove("debug"),
        Some(json!(true)),
        "{name}: reference debug"
    );
    assert_eq!(o.get("debug"), None);
    // 4. remoteEndpoint
    let remote = match name.as_str() {
        "SELECT orders" => Some(json!({"serviceName": "db.internal"})),
        "charge card" => Some(json!({"serviceName": "payments"})),
        "publish order" => Some(json!({"ipv4": "10.9.8.7", "port": 9092})),
        _ => None,
    };
    assert_eq!(
        o.remove("remoteEndpoint"),
        remote,
        "{name}: our remoteEndpoint"
    );
    assert_eq!(t.get("remoteEndpoint"), None);

    let mut o_tags = o.remove("tags").unwrap_or_default();
    let mut t_tags = t.remove("tags").unwrap_or_default();
    let (ot, tt) = (obj(&mut o_tags), obj(&mut t_tags));
    // 5. tags only ours has
    let trace = made["trace_id"].as_str().expect("trace id");
    let tracestate =
        (trace == "0af7651916cd43dd8448eb211c80319c").then(|| sent["tracestate"].clone());
    assert_eq!(
        ot.remove("w3c.tracestate"),
        tracestate,
        "{name}: tracestate"
    );
    assert_eq!(
        ot.remove("pinpoint.transaction_id"),
        Some(json!(txid(trace))),
        "{name}"
    );
    let pp_span = ot.remove("pinpoint.span_id").expect("pinpoint.span_id");
    assert!(
        pp_span.as_str().is_some_and(|s| s.parse::<i64>().is_ok()),
        "{name}: {pp_span}"
    );
    // 6. service.name
    assert_eq!(tt.remove("service.name"), Some(json!("checkout")), "{name}");
    // 7. `error` without ERROR status
    if made["status"] != "ERROR" && tt.contains_key("error") {
        assert_eq!(
            tt.remove("error"),
            Some(json!("false")),
            "{name}: reference error tag"
        );
        assert_eq!(ot.get("error"), None, "{name}: our error tag");
    }
    // 8. arrays
    for (key, theirs) in tt.iter_mut() {
        let Some(ours) = ot.get(key) else { continue };
        let as_text = array_elements_as_text(ours);
        if ours != theirs && as_text.is_some() && as_text == array_elements_as_text(theirs) {
            *theirs = ours.clone();
        }
    }
    // 9. annotations
    let o_ann = o.remove("annotations").unwrap_or(json!([]));
    let t_ann = t.remove("annotations").unwrap_or(json!([]));
    let events = made["events"].as_array().expect("events");
    let (o_ann, t_ann) = (
        o_ann.as_array().expect("array"),
        t_ann.as_array().expect("array"),
    );
    assert_eq!(
        (o_ann.len(), t_ann.len()),
        (events.len(), events.len()),
        "{name}: annotations"
    );
    for ((oa, ta), ev) in o_ann.iter().zip(t_ann).zip(events) {
        let time = u(&ev["time"]);
        assert_eq!(
            (u(&oa["timestamp"]), u(&ta["timestamp"])),
            (time / 1000, (time + 500) / 1000)
        );
        let ev_name = ev["name"].as_str().expect("event name");
        let ours = oa["value"].as_str().expect("value");
        let o_attrs = match ours.strip_prefix(ev_name) {
            Some("") => Map::new(),
            Some(rest) => {
                let json = rest
                    .strip_prefix(": ")
                    .unwrap_or_else(|| panic!("{name}: annotation {ours}"));
                serde_json::from_str(json).expect("attributes JSON")
            }
            None => panic!("{name}: annotation {ours} does not start with {ev_name}"),
        };
        let theirs: Value =
            serde_json::from_str(ta["value"].as_str().expect("value")).expect("reference JSON");
        let t_attrs = theirs[ev_name]
            .as_object()
            .unwrap_or_else(|| panic!("{name}: {theirs}"));
        assert_eq!(&o_attrs, t_attrs, "{name}: attributes of event {ev_name}");
    }
    o.insert("tags".into(), o_tags);
    t.insert("tags".into(), t_tags);
}

fn reference_config(cap: SocketAddr, file: &Path) -> String {
    format!(
        "receivers:\n  otlp:\n    http: {{ endpoint: 127.0.0.1:0 }}\n\
         exporters:\n\
         \x20 zjson:\n    type: zipkin\n    endpoint: http://{cap}/api/v2/spans\n    batch: {{ timeout: 50ms }}\n\
         \x20 zproto:\n    type: zipkin\n    endpoint: http://{cap}/proto\n    encoding: proto\n    compression: none\n    headers: {{ x-test: abc }}\n    batch: {{ timeout: 50ms }}\n\
         \x20 zfile:\n    type: file\n    path: '{}'\n    format: zipkin_json\n    batch: {{ timeout: 50ms }}\n\
         admin: {{ endpoint: 127.0.0.1:0 }}\nservice: {{ shutdown_grace: 5s }}\n",
        file.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agrees_with_the_python_sdk_zipkin_exporter_and_the_schema() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("zipkin.jsonl");
    let (cap_addr, cap) = start_capture(vec![]).await;
    let gw = common::start(&reference_config(cap_addr, &file)).await;
    let otlp = format!("http://{}/v1/traces", gw.http_addr.expect("http"));
    let reference = format!("http://{cap_addr}/reference");
    let sent = tokio::task::spawn_blocking(move || {
        common::run_python(
            "zipkin_reference.py",
            &["--otlp-endpoint", &otlp, "--zipkin-endpoint", &reference],
        )
    })
    .await
    .expect("python");
    let made = sent["spans"].as_array().expect("spans").clone();
    assert_eq!(made.len(), 8);

    wait_until("both Zipkin outputs", || {
        cap.accepted_spans("/api/v2/spans").len() >= made.len()
            && cap.accepted_spans("/reference").len() >= made.len()
    })
    .await;
    wait_until("the proto and file outputs", || {
        cap.requests("/proto").len() >= cap.requests("/api/v2/spans").len()
            && std::fs::read_to_string(&file).is_ok_and(|t| {
                t.lines()
                    .map(|l| serde_json::from_str::<Vec<Value>>(l).map_or(0, |v| v.len()))
                    .sum::<usize>()
                    >= made.len()
            })
    })
    .await;
    let ours = by_id(&cap.accepted_spans("/api/v2/spans"));
    let theirs = by_id(&cap.accepted_spans("/reference"));
    assert_eq!(ours.len(), made.len());

    // Field by field, span by span.
    for m in &made {
        let id = m["span_id"].as_str().expect("id");
        let (mut o, mut t) = (ours[id].clone(), theirs[id].clone());
        reconcile(&mut o, &mut t, m, &sent);
        assert_eq!(
            o, t,
            "span {} differs beyond the listed differences",
            m["name"]
        );
    }
    // A deliberately wrong reference (one tag changed) does not pass the comparison.
    let root = &made[0];
    let id = root["span_id"].as_str().expect("id");
    let (mut o, mut t) = (ours[id].clone(), theirs[id].clone());
    obj(&mut t["tags"]).insert("http.request.method".into(), json!("POST"));
    reconcile(&mut o, &mut t, root, &sent);
    assert_ne!(o, t, "the comparison must catch a changed tag");

    // Every body we sent validates against zipkin2-api.yaml...
    let json_requests = cap.requests("/api/v2/spans");
    for r in &json_requests {
        assert_eq!(r.headers["content-type"], "application/json");
        assert_eq!(r.headers["content-encoding"], "gzip");
    }
    let bodies: Vec<Vec<u8>> = json_requests.iter().map(|r| r.body.clone()).collect();
    let report = validate(dir.path(), &bodies);
    assert_eq!(report["errors"], json!([]), "our JSON fails the schema");
    assert_eq!(report["spans"], json!(made.len()));
    // ...the reference's does not: `kind: null` (difference 1) and a 0 µs duration
    // (difference 2) are invalid.
    let bodies: Vec<Vec<u8>> = cap
        .requests("/reference")
        .iter()
        .map(|r| r.body.clone())
        .collect();
    let report = validate(dir.path(), &bodies);
    let messages: Vec<&str> = report["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["message"].as_str().expect("message"))
        .collect();
    assert!(
        messages.contains(&"None is not of type 'string'"),
        "{report}"
    );
    assert!(
        messages.contains(&"0 is less than the minimum of 1"),
        "{report}"
    );
    for m in &messages {
        assert!(
            m.starts_with("None is not") || *m == "0 is less than the minimum of 1",
            "unexpected: {m}"
        );
    }

    // The proto3 bodies decode (independently of our encoder) to the same spans.
    let mut decoded = Vec::new();
    for (i, r) in cap.requests("/proto").iter().enumerate() {
        assert_eq!(r.headers["content-type"], "application/x-protobuf");
        assert_eq!(r.headers.get("content-encoding"), None);
        assert_eq!(r.headers["x-test"], "abc");
        let p = dir.path().join(format!("proto-{i}.bin"));
        std::fs::write(&p, &r.body).expect("write");
        let spans = common::run_python("decode_zipkin_proto.py", &[p.to_str().expect("path")]);
        decoded.extend(spans.as_array().expect("array").clone());
    }
    assert_eq!(by_id(&decoded), ours, "proto and JSON exports differ");

    // The file exporter's zipkin_json lines hold the same spans.
    let text = std::fs::read_to_string(&file).expect("file");
    let lines: Vec<Value> = text
        .lines()
        .flat_map(|l| serde_json::from_str::<Vec<Value>>(l).expect("JSON array line"))
        .collect();
    assert_eq!(by_id(&lines), ours);
    gw.shutdown().await;
}

/// The validator is not a rubber stamp: a body with a bad id, an unknown kind, a zero
/// duration, a bad address and a numeric tag fails, one error each.
#[test]
fn schema_validator_rejects_an_invalid_body() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = json!([{"traceId": "0af7651916cd43dd8448eb211c80319c", "id": "b7ad6b7169203331", "duration": 1}]);
    let bad = json!([{
        "traceId": "0af7651916cd43dd8448eb211c80319c", "id": "b7ad6b71",
        "kind": "INTERNAL", "duration": 0,
        "localEndpoint": {"ipv4": "10.0.0.300"},
        "tags": {"http.status_code": 200}
    }]);
    let report = validate(dir.path(), &[good.to_string().into_bytes()]);
    assert_eq!(report["errors"], json!([]));
    let report = validate(dir.path(), &[bad.to_string().into_bytes()]);
    let paths: Vec<&str> = report["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["path"].as_str().expect("path"))
        .collect();
    for want in [
        "0/id",
        "0/kind",
        "0/duration",
        "0/localEndpoint/ipv4",
        "0/tags/http.status_code",
    ] {
        assert!(paths.contains(&want), "{want} not reported: {report}");
    }
}
