//! OTLP profiles end to end: a profile built here goes in over OTLP/HTTP and OTLP/gRPC
//! and comes out at a stand-in Pyroscope, as pprof on `/ingest` (decoded by the
//! independent npm pprof-format and compared sample by sample) or as OTLP on
//! `/v1development/profiles`; bad input and Pyroscope's 400/429/5xx answers.

mod common;
mod pyroscope_support;

use std::time::Duration;

use opentelemetry_proto::tonic::collector::profiles::v1development::profiles_service_client::ProfilesServiceClient;
use opentelemetry_proto::tonic::collector::profiles::v1development::{
    ExportProfilesServiceRequest, ExportProfilesServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::profiles::v1development::{
    Function, KeyValueAndUnit, Line, Link, Location, Mapping, Profile, ProfilesDictionary,
    ResourceProfiles, Sample, ScopeProfiles, Stack, ValueType,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use pyroscope_support::{StandIn, decode_pprof, metric, metrics_text};
use serde_json::json;

const TIME: u64 = 1_700_000_000_000_000_000;
const STRINGS: &[&str] = &[
    "",
    "cpu",
    "nanoseconds",
    "main",
    "main.go",
    "compute",
    "pricing.go",
    "round",
    "pricing-bin",
    "thread.name",
    "worker-1",
    "span_name",
    "POST /price",
    "retries",
];

fn s(text: &str) -> i32 {
    STRINGS.iter().position(|x| *x == text).expect("in table") as i32
}

fn attr(key: &str, value: Value) -> KeyValueAndUnit {
    KeyValueAndUnit {
        key_strindex: s(key),
        value: Some(AnyValue { value: Some(value) }),
        unit_strindex: 0,
    }
}

/// main (main.go:10) calls compute (pricing.go:42, in pricing-bin at 0x1234), into
/// which round (line 7) is inlined.
fn dictionary() -> ProfilesDictionary {
    let line = |f, l| Line {
        function_index: f,
        line: l,
        column: 0,
    };
    let function = |name, file, start| Function {
        name_strindex: s(name),
        system_name_strindex: s(name),
        filename_strindex: s(file),
        start_line: start,
    };
    ProfilesDictionary {
        mapping_table: vec![
            Mapping::default(),
            Mapping {
                memory_start: 0x1000,
                memory_limit: 0x9000,
                file_offset: 0,
                filename_strindex: s("pricing-bin"),
                attribute_indices: vec![],
            },
        ],
        location_table: vec![
            Location::default(),
            Location {
                mapping_index: 0,
                address: 0,
                lines: vec![line(1, 10)],
                attribute_indices: vec![],
            },
            Location {
                mapping_index: 1,
                address: 0x1234,
                lines: vec![line(3, 7), line(2, 42)],
                attribute_indices: vec![],
            },
        ],
        function_table: vec![
            Function::default(),
            function("main", "main.go", 1),
            function("compute", "pricing.go", 30),
            function("round", "pricing.go", 5),
        ],
        link_table: vec![
            Link::default(),
            Link {
                trace_id: (1..=16).collect(),
                span_id: vec![0xab; 8],
            },
        ],
        string_table: STRINGS.iter().map(|x| (*x).to_owned()).collect(),
        attribute_table: vec![
            KeyValueAndUnit::default(),
            attr("thread.name", Value::StringValue("worker-1".into())),
            attr("span_name", Value::StringValue("POST /price".into())),
            attr("retries", Value::IntValue(2)),
        ],
        stack_table: vec![
            Stack::default(),
            Stack {
                location_indices: vec![2, 1],
            },
            Stack {
                location_indices: vec![1],
            },
        ],
    }
}

fn cpu() -> Option<ValueType> {
    Some(ValueType {
        type_strindex: s("cpu"),
        unit_strindex: s("nanoseconds"),
    })
}

fn good_profile() -> Profile {
    Profile {
        sample_type: cpu(),
        samples: vec![
            Sample {
                stack_index: 1,
                attribute_indices: vec![1, 2, 3],
                link_index: 1,
                values: vec![30_000_000],
                timestamps_unix_nano: vec![],
            },
            Sample {
                stack_index: 2,
                attribute_indices: vec![],
                link_index: 0,
                values: vec![],
                timestamps_unix_nano: vec![TIME + 1, TIME + 2, TIME + 3],
            },
        ],
        time_unix_nano: TIME,
        duration_nano: 10_000_000_000,
        period_type: cpu(),
        period: 10_000_000,
        ..Profile::default()
    }
}

/// The good profile, and optionally a bad one (stack index 99) beside it.
fn request(with_bad: bool) -> ExportProfilesServiceRequest {
    let mut profiles = vec![good_profile()];
    if with_bad {
        let mut bad = good_profile();
        bad.samples[1].stack_index = 99;
        profiles.push(bad);
    }
    ExportProfilesServiceRequest {
        resource_profiles: vec![ResourceProfiles {
            resource: Some(Resource {
                attributes: ["service.name", "deployment.environment"]
                    .iter()
                    .zip(["shop.pricing", "prod"])
                    .map(|(k, v)| KeyValue {
                        key: (*k).into(),
                        value: Some(AnyValue {
                            value: Some(Value::StringValue(v.into())),
                        }),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }),
            scope_profiles: vec![ScopeProfiles {
                profiles,
                ..Default::default()
            }],
            ..Default::default()
        }],
        dictionary: Some(dictionary()),
    }
}

fn config(standin_url: &str, name: &str, extra: &str) -> String {
    format!(
        "receivers:\n  otlp:\n    grpc: {{ endpoint: 127.0.0.1:0 }}\n    http: {{ endpoint: 127.0.0.1:0 }}\n\
         exporters:\n  {name}:\n    type: pyroscope\n    endpoint: {standin_url}\n    traces: false\n\
         \x20   labels_from_resource: [deployment.environment]\n\
         \x20   retry: {{ initial: 100ms, max: 2s, max_elapsed: 10s }}\n{extra}\
         admin: {{ endpoint: 127.0.0.1:0 }}\nservice: {{ shutdown_grace: 5s }}\n"
    )
}

async fn post(
    http: std::net::SocketAddr,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let resp = reqwest::Client::new()
        .post(format!("http://{http}/v1development/profiles"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("post");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.bytes().await.expect("body").to_vec())
}

/// What pprof-format must show for the good profile: built from the OTLP input above,
/// not from the converter.
fn expected_pprof() -> serde_json::Value {
    let frames = [
        "round@pricing.go:7",
        "compute@pricing.go:42",
        "main@main.go:10",
    ];
    json!({
        "sampleType": [{"type": "cpu", "unit": "nanoseconds"}],
        "periodType": {"type": "cpu", "unit": "nanoseconds"},
        "period": 10_000_000,
        "timeNanos": TIME.to_string(),
        "durationNanos": 10_000_000_000u64,
        "defaultSampleType": "cpu",
        "samples": [
            {
                "locations": [1, 2],
                "frames": frames,
                "values": [30_000_000],
                "labels": {
                    "thread.name": "worker-1",
                    "span_name": "POST /price",
                    "retries": "2",
                    "span_id": "abababababababab",
                    "trace_id": "0102030405060708090a0b0c0d0e0f10",
                },
            },
            {"locations": [2], "frames": ["main@main.go:10"], "values": [3], "labels": {}},
        ],
        "locations": [
            {"id": 1, "mapping": 1, "address": 0x1234, "lines": &frames[..2]},
            {"id": 2, "mapping": 0, "address": 0, "lines": ["main@main.go:10"]},
        ],
        "mappings": [{
            "id": 1, "start": 0x1000, "limit": 0x9000, "offset": 0, "file": "pricing-bin",
            "hasFunctions": true, "hasFilenames": true, "hasLineNumbers": true,
            "hasInlineFrames": true,
        }],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_become_pprof_that_an_independent_decoder_reads_back() {
    let standin = StandIn::start().await;
    let gw = common::start(&config(&standin.url(), "pyro-pprof", "")).await;

    // Over HTTP, with a bad profile beside the good one: the bad one is reported back.
    let (status, _, body) = post(
        gw.http_addr.expect("http"),
        "application/x-protobuf",
        request(true).encode_to_vec(),
    )
    .await;
    assert_eq!(status, 200);
    let reply = ExportProfilesServiceResponse::decode(&body[..]).expect("response");
    let partial = reply.partial_success.expect("partial success");
    assert_eq!(partial.rejected_profiles, 1);
    assert!(
        partial
            .error_message
            .contains("profiles[1]: samples[1]: stack_index 99"),
        "{}",
        partial.error_message
    );
    // Over gRPC, the good profile alone.
    let mut client =
        ProfilesServiceClient::connect(format!("http://{}", gw.grpc_addr.expect("grpc")))
            .await
            .expect("connect");
    let reply = client
        .export(request(false))
        .await
        .expect("export")
        .into_inner();
    assert_eq!(reply.partial_success, None);

    let got = standin.wait_for(2, |c| c.path == "/ingest").await;
    assert_eq!(got.len(), 2, "one pprof per good profile: {got:?}");
    for c in &got {
        let q: Vec<(&str, &str)> = c
            .query
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            q,
            [
                (
                    "name",
                    "shop.pricing{service_name=shop.pricing,deployment_environment=prod}"
                ),
                ("from", "1700000000"),
                ("until", "1700000010"),
                ("format", "pprof"),
                ("sampleRate", "100"),
                ("spyName", "otel-pinpoint-bridge"),
            ]
        );
        assert_eq!(c.header("content-type"), Some("binary/octet-stream"));
        assert_eq!(c.header("content-encoding"), Some("gzip"));
        assert_eq!(decode_pprof(&c.plain_body()), expected_pprof());
    }
    // The comparison can fail: one value changed is seen by the decoder.
    use otel_pinpoint_bridge::exporter::pyroscope::pprof;
    let mut wrong = pprof::Profile::decode(&got[0].plain_body()[..]).expect("pprof");
    wrong.sample[1].value[0] += 1;
    assert_ne!(decode_pprof(&wrong.encode_to_vec()), expected_pprof());
    let text = metrics_text(gw.admin_addr).await;
    let m = |name, labels: &[(&str, &str)]| metric(&text, name, labels);
    // Receiver metrics are per receiver, shared by the tests of this process: at least.
    assert!(
        m("bridge_receiver_profiles_accepted_total", &[]) >= 2.0,
        "{text}"
    );
    assert!(
        m(
            "bridge_receiver_profiles_rejected_total",
            &[("reason", "invalid")]
        ) >= 1.0
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_mode_forwards_the_request_as_received() {
    let standin = StandIn::start().await;
    let gw = common::start(&config(
        &standin.url(),
        "pyro-otlp",
        "    profiles: { mode: otlp }\n    tenant: team-b\n    auth: { bearer: s3cret }\n",
    ))
    .await;
    let (status, _, _) = post(
        gw.http_addr.expect("http"),
        "application/x-protobuf",
        request(true).encode_to_vec(),
    )
    .await;
    assert_eq!(status, 200);
    let got = standin.wait_for(1, |_| true).await;
    assert_eq!(got.len(), 1);
    let c = &got[0];
    assert_eq!(c.path, "/v1development/profiles");
    assert_eq!(c.header("content-type"), Some("application/x-protobuf"));
    assert_eq!(c.header("x-scope-orgid"), Some("team-b"));
    assert_eq!(c.header("authorization"), Some("Bearer s3cret"));
    let forwarded = ExportProfilesServiceRequest::decode(&c.plain_body()[..]).expect("OTLP");
    assert_eq!(
        forwarded,
        request(false),
        "the bad profile is not forwarded"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_a_message() {
    let standin = StandIn::start().await;
    let gw = common::start(&config(&standin.url(), "pyro-bad", "")).await;
    let http = gw.http_addr.expect("http");
    let (status, headers, body) =
        post(http, "application/x-protobuf", b"\x0a\xff\xff".to_vec()).await;
    assert_eq!(status, 400);
    assert_eq!(headers["content-type"], "application/x-protobuf");
    let st =
        otel_pinpoint_bridge::receiver::otlp_http::RpcStatus::decode(&body[..]).expect("status");
    assert!(st.message.contains("invalid protobuf"), "{}", st.message);
    let (status, _, body) = post(http, "application/json", b"{}".to_vec()).await;
    assert_eq!(status, 415);
    assert!(String::from_utf8_lossy(&body).contains("send application/x-protobuf"));
    let mut client =
        ProfilesServiceClient::connect(format!("http://{}", gw.grpc_addr.expect("grpc")))
            .await
            .expect("connect");
    let mut bad = request(false);
    bad.resource_profiles[0].scope_profiles[0].profiles[0].sample_type = None;
    let reply = client.export(bad).await.expect("export").into_inner();
    let partial = reply.partial_success.expect("partial");
    assert_eq!(partial.rejected_profiles, 1);
    assert!(partial.error_message.contains("sample_type is missing"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        standin.requests().is_empty(),
        "nothing invalid reaches Pyroscope"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_profile_exporter_profiles_are_refused_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gw = common::start(&common::file_config(&dir.path().join("out.jsonl"), "")).await;
    let (status, _, body) = post(
        gw.http_addr.expect("http"),
        "application/x-protobuf",
        request(false).encode_to_vec(),
    )
    .await;
    assert_eq!(status, 404);
    let st =
        otel_pinpoint_bridge::receiver::otlp_http::RpcStatus::decode(&body[..]).expect("status");
    assert_eq!(st.code, 12);
    assert!(
        st.message.contains("no exporter takes OTLP profiles"),
        "{}",
        st.message
    );
    let mut client =
        ProfilesServiceClient::connect(format!("http://{}", gw.grpc_addr.expect("grpc")))
            .await
            .expect("connect");
    let e = client.export(request(false)).await.expect_err("refused");
    assert_eq!(e.code(), tonic::Code::Unimplemented);
    assert!(e.message().contains("type pyroscope"), "{}", e.message());
    gw.shutdown().await;
}

/// 400 is final; 429 waits for Retry-After; 5xx is retried with backoff. Each counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyroscope_errors_are_retried_or_given_up_and_counted() {
    let standin = StandIn::start().await;
    let gw = common::start(&config(&standin.url(), "pyro-err", "")).await;
    let http = gw.http_addr.expect("http");
    let send = || {
        post(
            http,
            "application/x-protobuf",
            request(false).encode_to_vec(),
        )
    };
    let ingest = |c: &pyroscope_support::Captured| c.path == "/ingest";

    standin.answer_next(&[(400, None)]);
    assert_eq!(send().await.0, 200);
    assert_eq!(standin.wait_for(1, ingest).await.len(), 1);

    standin.answer_next(&[(429, Some("1"))]);
    assert_eq!(send().await.0, 200);
    let got = standin.wait_for(3, ingest).await;
    assert_eq!(got.len(), 3);
    let waited = got[2].at - got[1].at;
    assert!(
        waited >= Duration::from_millis(950),
        "Retry-After honoured: {waited:?}"
    );

    standin.answer_next(&[(503, None), (500, None)]);
    assert_eq!(send().await.0, 200);
    assert_eq!(
        standin.wait_for(6, ingest).await.len(),
        6,
        "503, 500, then accepted"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(standin.requests().len(), 6, "the 400 was not retried");

    let text = metrics_text(gw.admin_addr).await;
    let req = |outcome| {
        metric(
            &text,
            "bridge_pyroscope_requests_total",
            &[
                ("exporter", "pyro-err"),
                ("format", "pprof"),
                ("outcome", outcome),
            ],
        )
    };
    assert_eq!(
        (req("ok"), req("retry"), req("rejected")),
        (2.0, 3.0, 1.0),
        "{text}"
    );
    let m = |name, labels: &[(&str, &str)]| metric(&text, name, labels);
    assert_eq!(
        m("bridge_exporter_retries_total", &[("exporter", "pyro-err")]),
        3.0
    );
    assert_eq!(
        m(
            "bridge_exporter_profiles_failed_total",
            &[("exporter", "pyro-err"), ("reason", "permanent")]
        ),
        1.0
    );
    assert_eq!(
        m(
            "bridge_exporter_profiles_sent_total",
            &[("exporter", "pyro-err")]
        ),
        2.0
    );
    gw.shutdown().await;
}
