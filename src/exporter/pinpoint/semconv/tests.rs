//! Tests of the parent module.
use super::*;
use opentelemetry_proto::tonic::common::v1::AnyValue;

fn kv(k: &str, v: Value) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}
fn s(v: &str) -> Value {
    Value::StringValue(v.into())
}

fn span(kind: SpanKind, attrs: Vec<KeyValue>) -> Span {
    Span {
        kind: kind as i32,
        attributes: attrs,
        name: "op".into(),
        ..Default::default()
    }
}

fn anno(m: &[PAnnotation], key: i32) -> Option<Field> {
    m.iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.clone()?.field)
}

#[test]
fn client_events() {
    // (span, language, service type, destinationId, remote call)
    let cases = vec![
        (
            span(
                SpanKind::Client,
                vec![
                    kv("http.request.method", s("GET")),
                    kv("url.full", s("http://b:8080/x?q=1")),
                    kv("http.response.status_code", Value::IntValue(503)),
                ],
            ),
            "python",
            9900,
            "b:8080",
            true,
        ),
        (
            span(
                SpanKind::Client,
                vec![
                    kv("http.method", s("POST")),
                    kv("net.peer.name", s("pay")),
                    kv("net.peer.port", Value::IntValue(80)),
                ],
            ),
            "java",
            9052,
            "pay:80",
            true,
        ),
        (
            span(
                SpanKind::Client,
                vec![
                    kv("http.request.method", s("GET")),
                    kv("server.address", s("g")),
                ],
            ),
            "go",
            9401,
            "g",
            true,
        ),
        (
            span(
                SpanKind::Client,
                vec![
                    kv("db.system", s("postgresql")),
                    kv("db.name", s("orders")),
                    kv("db.statement", s("SELECT 1")),
                    kv("server.address", s("db")),
                    kv("server.port", Value::IntValue(5432)),
                ],
            ),
            "python",
            2501,
            "orders",
            false,
        ),
        (
            span(
                SpanKind::Client,
                vec![
                    kv("db.system.name", s("mysql")),
                    kv("server.address", s("my")),
                ],
            ),
            "java",
            2101,
            "my",
            false,
        ),
        (
            span(SpanKind::Client, vec![kv("db.system", s("oracle"))]),
            "java",
            2301,
            "oracle",
            false,
        ),
        (
            span(SpanKind::Client, vec![kv("db.system", s("mssql"))]),
            "java",
            2251,
            "mssql",
            false,
        ),
        (
            span(SpanKind::Client, vec![kv("db.system", s("mongodb"))]),
            "java",
            2651,
            "mongodb",
            false,
        ),
        (
            span(SpanKind::Client, vec![kv("db.system", s("cassandra"))]),
            "java",
            2601,
            "cassandra",
            false,
        ),
        (
            span(SpanKind::Client, vec![kv("db.system", s("clickhouse"))]),
            "java",
            2801,
            "clickhouse",
            false,
        ),
        (
            span(SpanKind::Client, vec![kv("db.system", s("couchdb"))]),
            "java",
            2051,
            "couchdb",
            false,
        ),
        (
            span(
                SpanKind::Client,
                vec![kv("db.system", s("redis")), kv("db.statement", s("GET k"))],
            ),
            "java",
            8200,
            "REDIS",
            false,
        ),
        (
            span(SpanKind::Client, vec![kv("db.system", s("redis"))]),
            "python",
            8203,
            "REDIS",
            false,
        ),
        (
            span(
                SpanKind::Producer,
                vec![
                    kv("messaging.system", s("kafka")),
                    kv("messaging.destination.name", s("orders")),
                    kv("messaging.destination.partition.id", s("3")),
                ],
            ),
            "java",
            8660,
            "orders",
            true,
        ),
        (
            span(
                SpanKind::Producer,
                vec![
                    kv("messaging.system", s("rabbitmq")),
                    kv("messaging.destination.name", s("q")),
                ],
            ),
            "java",
            8300,
            "q",
            true,
        ),
        (
            span(
                SpanKind::Consumer,
                vec![
                    kv("messaging.system", s("kafka")),
                    kv("messaging.destination.name", s("t")),
                ],
            ),
            "java",
            8660,
            "t",
            false,
        ),
        (
            span(
                SpanKind::Client,
                vec![
                    kv("rpc.system", s("grpc")),
                    kv("rpc.service", s("Greeter")),
                    kv("rpc.method", s("Hi")),
                    kv("server.address", s("gs")),
                    kv("server.port", Value::IntValue(50051)),
                ],
            ),
            "go",
            9160,
            "gs:50051",
            true,
        ),
        (
            span(SpanKind::Client, vec![kv("server.address", s("thing"))]),
            "php",
            9700,
            "thing",
            true,
        ),
        (
            span(SpanKind::Internal, vec![kv("x", s("y"))]),
            "python",
            5000,
            "",
            false,
        ),
    ];
    for (sp, lang, ty, dest, remote) in cases {
        let m = map_event(&sp, lang);
        assert_eq!(
            (m.service_type, m.destination_id.as_str(), m.remote_call),
            (ty, dest, remote),
            "{:?}",
            sp.attributes
        );
    }
}

#[test]
fn annotations() {
    let http = map_event(
        &span(
            SpanKind::Client,
            vec![
                kv("http.request.method", s("GET")),
                kv("url.full", s("http://b:8080/x")),
                kv("http.response.status_code", Value::IntValue(503)),
            ],
        ),
        "python",
    );
    assert_eq!(
        anno(&http.annotations, 40),
        Some(Field::StringValue("http://b:8080/x".into()))
    );
    assert_eq!(anno(&http.annotations, 46), Some(Field::IntValue(503)));
    assert!(http.consumed.contains(&"url.full") && http.consumed.contains(&"http.request.method"));
    let db = map_event(
        &span(
            SpanKind::Client,
            vec![
                kv("db.system", s("postgresql")),
                kv("db.statement", s("SELECT 1")),
            ],
        ),
        "go",
    );
    assert_eq!(
        anno(&db.annotations, 21),
        Some(Field::StringValue("SELECT 1".into()))
    );
    let kafka = map_event(
        &span(
            SpanKind::Producer,
            vec![
                kv("messaging.system", s("kafka")),
                kv("messaging.destination.name", s("orders")),
                kv("messaging.destination.partition.id", s("3")),
                kv("server.address", s("k1")),
                kv("server.port", Value::IntValue(9092)),
            ],
        ),
        "java",
    );
    assert_eq!(
        anno(&kafka.annotations, 140),
        Some(Field::StringValue("orders".into()))
    );
    assert_eq!(anno(&kafka.annotations, 141), Some(Field::IntValue(3)));
    assert_eq!(
        anno(&kafka.annotations, 100),
        Some(Field::StringValue("kafka://k1:9092/orders".into()))
    );
    let grpc = map_event(
        &span(
            SpanKind::Client,
            vec![
                kv("rpc.system", s("grpc")),
                kv("rpc.service", s("G")),
                kv("rpc.method", s("M")),
                kv("rpc.grpc.status_code", Value::IntValue(0)),
            ],
        ),
        "go",
    );
    assert_eq!(
        anno(&grpc.annotations, 160),
        Some(Field::StringValue("0".into()))
    );
    assert_eq!(
        anno(&grpc.annotations, 40),
        Some(Field::StringValue("/G/M".into()))
    );
}

#[test]
fn entries() {
    let http = map_entry(
        &span(
            SpanKind::Server,
            vec![
                kv("http.request.method", s("GET")),
                kv("http.route", s("/orders/{id}")),
                kv("server.address", s("shop")),
                kv("server.port", Value::IntValue(8080)),
                kv("client.address", s("10.0.0.9")),
                kv("http.response.status_code", Value::IntValue(200)),
            ],
        ),
        1700,
        true,
    );
    assert_eq!(
        (
            http.service_type,
            http.rpc.as_str(),
            http.end_point.as_str(),
            http.remote_addr.as_str()
        ),
        (1700, "/orders/{id}", "shop:8080", "10.0.0.9")
    );
    assert_eq!(anno(&http.annotations, 46), Some(Field::IntValue(200)));
    assert_eq!(
        anno(&http.annotations, 50),
        Some(Field::StringValue("GET".into()))
    );
    let no_method = map_entry(
        &span(
            SpanKind::Server,
            vec![
                kv("http.method", s("GET")),
                kv("http.url", s("http://h/p?q")),
            ],
        ),
        1000,
        false,
    );
    assert_eq!(
        (no_method.rpc.as_str(), anno(&no_method.annotations, 50)),
        ("/p?q", None)
    );
    let grpc = map_entry(
        &span(
            SpanKind::Server,
            vec![
                kv("rpc.system", s("grpc")),
                kv("rpc.service", s("G")),
                kv("rpc.method", s("M")),
            ],
        ),
        1800,
        true,
    );
    assert_eq!((grpc.service_type, grpc.rpc.as_str()), (1130, "/G/M"));
    let consumer = map_entry(
        &span(
            SpanKind::Consumer,
            vec![
                kv("messaging.system", s("kafka")),
                kv("messaging.destination.name", s("t")),
            ],
        ),
        1000,
        true,
    );
    assert_eq!(
        (consumer.service_type, consumer.rpc.as_str()),
        (8660, "kafka://t")
    );
    let plain = map_entry(&span(SpanKind::Server, vec![]), 1000, true);
    assert_eq!(plain.rpc, "op");
}

#[test]
fn url_authority() {
    assert_eq!(authority("http://u:p@h:1/x").as_deref(), Some("h:1"));
    assert_eq!(authority("https://h?x").as_deref(), Some("h"));
    assert_eq!(authority("nope"), None);
}
