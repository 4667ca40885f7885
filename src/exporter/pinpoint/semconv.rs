//! OTel semantic conventions → Pinpoint service types, annotations and server-map
//! fields. Reads both the current and the older attribute names. Pure.

use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value::Value};
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;

use super::codes as c;
use super::proto::{PAnnotation, PAnnotationValue, p_annotation_value::Field};

/// How one span looks in Pinpoint.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Mapped {
    pub service_type: i32,
    pub annotations: Vec<PAnnotation>,
    /// Server-map target of a client call (empty: no edge).
    pub destination_id: String,
    pub end_point: String,
    /// The call may reach a traced service: the event gets `nextSpanId = mix(span id)`.
    pub remote_call: bool,
    /// Attribute keys already shown by `annotations` (not repeated as args).
    pub consumed: Vec<&'static str>,
}

/// How an entry span's accept side looks (PSpan.acceptEvent and type).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Entry {
    pub service_type: i32,
    pub rpc: String,
    pub end_point: String,
    pub remote_addr: String,
    pub annotations: Vec<PAnnotation>,
    pub consumed: Vec<&'static str>,
}

/// A string annotation.
#[must_use]
pub fn anno_str(key: i32, s: impl Into<String>) -> PAnnotation {
    PAnnotation {
        key,
        value: Some(PAnnotationValue {
            field: Some(Field::StringValue(s.into())),
        }),
    }
}

/// An int annotation.
#[must_use]
pub fn anno_int(key: i32, i: i32) -> PAnnotation {
    PAnnotation {
        key,
        value: Some(PAnnotationValue {
            field: Some(Field::IntValue(i)),
        }),
    }
}

/// Finds the first of `keys` present; returns (key, value as text).
fn find(attrs: &[KeyValue], keys: &[&'static str]) -> Option<(&'static str, String)> {
    keys.iter().find_map(|k| {
        let kv = attrs.iter().find(|kv| kv.key == *k)?;
        let text = match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => s.clone(),
            Value::IntValue(i) => i.to_string(),
            Value::DoubleValue(d) => d.to_string(),
            Value::BoolValue(b) => b.to_string(),
            _ => return None,
        };
        Some((*k, text))
    })
}

struct Reader<'a> {
    attrs: &'a [KeyValue],
    consumed: Vec<&'static str>,
}

impl Reader<'_> {
    fn get(&mut self, keys: &[&'static str]) -> Option<String> {
        let (k, v) = find(self.attrs, keys)?;
        self.consumed.push(k);
        Some(v)
    }

    fn host_port(&mut self) -> String {
        let host = self.get(&[
            "server.address",
            "net.peer.name",
            "net.host.name",
            "network.peer.address",
        ]);
        let port = self.get(&[
            "server.port",
            "net.peer.port",
            "net.host.port",
            "network.peer.port",
        ]);
        match (host, port) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h,
            _ => String::new(),
        }
    }
}

const HTTP_METHOD: &[&str] = &["http.request.method", "http.method"];
const HTTP_STATUS: &[&str] = &["http.response.status_code", "http.status_code"];
const URL_FULL: &[&str] = &["url.full", "http.url"];
const URL_PATH: &[&str] = &["http.route", "url.path", "http.target"];
const DB_SYSTEM: &[&str] = &["db.system.name", "db.system"];
const DB_STATEMENT: &[&str] = &["db.query.text", "db.statement"];
const DB_NAME: &[&str] = &["db.namespace", "db.name"];

fn http_client_type(language: &str) -> i32 {
    match language {
        "python" => c::PYTHON_REMOTE_METHOD,
        "php" => c::PHP_REMOTE_METHOD,
        "cpp" => c::C_CPP_REMOTE_METHOD,
        "go" => c::GO_HTTP_CLIENT,
        "nodejs" => c::ASYNC_HTTP_CLIENT,
        _ => c::HTTP_CLIENT_4,
    }
}

fn db_type(system: &str) -> i32 {
    match system {
        "mysql" => c::MYSQL_EXECUTE_QUERY,
        "mariadb" => c::MARIADB_EXECUTE_QUERY,
        "postgresql" => c::POSTGRESQL_EXECUTE_QUERY,
        "oracle" | "oracle.db" => c::ORACLE_EXECUTE_QUERY,
        "mssql" | "microsoft.sql_server" => c::MSSQL_EXECUTE_QUERY,
        "mongodb" => c::MONGO_EXECUTE_QUERY,
        "cassandra" => c::CASSANDRA_EXECUTE_QUERY,
        "clickhouse" => c::CLICKHOUSE_EXECUTE_QUERY,
        _ => c::UNKNOWN_DB_EXECUTE_QUERY,
    }
}

fn queue_type(system: &str) -> Option<i32> {
    match system {
        "kafka" => Some(c::KAFKA_CLIENT),
        "rabbitmq" => Some(c::RABBITMQ_CLIENT),
        "activemq" | "jms" => Some(c::ACTIVEMQ_CLIENT),
        "rocketmq" => Some(c::ROCKETMQ_CLIENT),
        _ => None,
    }
}

/// Maps a non-entry span (a PSpanEvent) by its kind and attributes.
#[must_use]
pub fn map_event(span: &Span, language: &str) -> Mapped {
    let mut r = Reader {
        attrs: &span.attributes,
        consumed: Vec::new(),
    };
    let kind = SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified);
    let outgoing = matches!(kind, SpanKind::Client | SpanKind::Producer);
    let mut m = Mapped::default();

    if let Some(system) = r.get(DB_SYSTEM) {
        let is_redis = system == "redis";
        m.service_type = match (is_redis, language) {
            (true, "python" | "go") => c::REDIS_REDISSON,
            (true, _) => c::REDIS,
            (false, _) if system == "memcached" => c::MEMCACHED,
            _ => db_type(&system),
        };
        m.end_point = r.host_port();
        let db_name = r.get(DB_NAME);
        m.destination_id = match (is_redis, db_name) {
            (true, _) => "REDIS".to_owned(),
            (false, Some(n)) => n,
            (false, None) if !m.end_point.is_empty() => m.end_point.clone(),
            (false, None) => system.clone(),
        };
        if let Some(sql) = r.get(DB_STATEMENT) {
            let key = if is_redis { c::ANNO_ARGS0 } else { c::ANNO_SQL };
            m.annotations.push(anno_str(key, sql));
        }
    } else if let Some(system) = r.get(&["messaging.system"]) {
        m.service_type = queue_type(&system).unwrap_or_else(|| http_client_type(language));
        let dest = r
            .get(&["messaging.destination.name", "messaging.destination"])
            .unwrap_or_default();
        let broker = r.host_port();
        m.end_point = broker.clone();
        m.destination_id = if dest.is_empty() {
            broker.clone()
        } else {
            dest.clone()
        };
        m.remote_call = outgoing;
        if system == "kafka" {
            if !dest.is_empty() {
                m.annotations
                    .push(anno_str(c::ANNO_KAFKA_TOPIC, dest.clone()));
            }
            if let Some(p) = r.get(&[
                "messaging.destination.partition.id",
                "messaging.kafka.destination.partition",
            ]) && let Ok(p) = p.parse()
            {
                m.annotations.push(anno_int(c::ANNO_KAFKA_PARTITION, p));
            }
            if let Some(o) = r.get(&["messaging.kafka.message.offset", "messaging.kafka.offset"]) {
                m.annotations.push(anno_str(c::ANNO_KAFKA_OFFSET, o));
            }
        }
        let url = if broker.is_empty() {
            format!("{system}://{dest}")
        } else {
            format!("{system}://{broker}/{dest}")
        };
        m.annotations.push(anno_str(c::ANNO_MESSAGE_QUEUE_URL, url));
    } else if r.get(&["rpc.system"]).is_some_and(|s| s == "grpc") && outgoing {
        m.service_type = c::GRPC;
        m.end_point = r.host_port();
        m.destination_id = m.end_point.clone();
        m.remote_call = true;
        let service = r.get(&["rpc.service"]).unwrap_or_default();
        let method = r.get(&["rpc.method"]).unwrap_or_default();
        m.annotations
            .push(anno_str(c::ANNO_HTTP_URL, format!("/{service}/{method}")));
        if let Some(code) = r.get(&["rpc.grpc.status_code"]) {
            m.annotations.push(anno_str(c::ANNO_GRPC_STATUS, code));
        }
    } else if outgoing && find(&span.attributes, HTTP_METHOD).is_some() {
        m.service_type = http_client_type(language);
        r.get(HTTP_METHOD);
        m.end_point = r.host_port();
        let url = r.get(URL_FULL);
        if m.end_point.is_empty() {
            m.end_point = url.as_deref().and_then(authority).unwrap_or_default();
        }
        m.destination_id = m.end_point.clone();
        m.remote_call = true;
        if let Some(u) = url {
            m.annotations.push(anno_str(c::ANNO_HTTP_URL, u));
        }
        push_status(&mut r, &mut m.annotations);
    } else if outgoing {
        // An unrecognized outgoing call: a generic remote method.
        m.service_type = http_client_type(language);
        m.end_point = r.host_port();
        m.destination_id = m.end_point.clone();
        m.remote_call = true;
    } else {
        m.service_type = c::INTERNAL_METHOD;
    }
    m.consumed = r.consumed;
    m
}

fn push_status(r: &mut Reader<'_>, out: &mut Vec<PAnnotation>) {
    if let Some(code) = r.get(HTTP_STATUS).and_then(|s| s.parse::<i32>().ok()) {
        out.push(anno_int(c::ANNO_HTTP_STATUS_CODE, code));
    }
}

/// `host:port` of an absolute URL.
fn authority(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let auth = &rest[..end];
    let auth = auth.rsplit_once('@').map_or(auth, |(_, h)| h);
    (!auth.is_empty()).then(|| auth.to_owned())
}

/// Maps an entry span (the PSpan of a segment). `app_type` is the agent's type;
/// `http_method_annotation` adds annotation 50 (Pinpoint 3.1+).
#[must_use]
pub fn map_entry(span: &Span, app_type: i32, http_method_annotation: bool) -> Entry {
    let mut r = Reader {
        attrs: &span.attributes,
        consumed: Vec::new(),
    };
    let mut e = Entry {
        service_type: app_type,
        ..Entry::default()
    };
    let grpc = find(&span.attributes, &["rpc.system"]).is_some_and(|(_, s)| s == "grpc");
    if grpc {
        r.get(&["rpc.system"]);
        e.service_type = c::GRPC_SERVER;
        let service = r.get(&["rpc.service"]).unwrap_or_default();
        let method = r.get(&["rpc.method"]).unwrap_or_default();
        e.rpc = format!("/{service}/{method}");
        if let Some(code) = r.get(&["rpc.grpc.status_code"]) {
            e.annotations.push(anno_str(c::ANNO_GRPC_STATUS, code));
        }
    } else if let Some(system) = r.get(&["messaging.system"]) {
        let dest = r
            .get(&["messaging.destination.name", "messaging.destination"])
            .unwrap_or_default();
        e.rpc = format!("{system}://{dest}");
        if let Some(t) = queue_type(&system) {
            e.service_type = t;
        }
    } else {
        let method = r.get(HTTP_METHOD);
        let path = r
            .get(URL_PATH)
            .or_else(|| r.get(URL_FULL).map(|u| path_of(&u)));
        e.rpc = path.unwrap_or_else(|| span.name.clone());
        if let Some(m) = method.filter(|_| http_method_annotation) {
            e.annotations.push(anno_str(c::ANNO_HTTP_METHOD, m));
        }
        if let Some(u) = r.get(URL_FULL) {
            e.annotations.push(anno_str(c::ANNO_HTTP_URL, u));
        }
        push_status(&mut r, &mut e.annotations);
    }
    e.end_point = r.host_port();
    e.remote_addr = r
        .get(&[
            "client.address",
            "http.client_ip",
            "net.sock.peer.addr",
            "net.peer.ip",
        ])
        .unwrap_or_default();
    e.consumed = r.consumed;
    e
}

fn path_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.find('/')
        .map_or_else(|| "/".to_owned(), |i| rest[i..].to_owned())
}

#[cfg(test)]
mod tests {
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
        assert!(
            http.consumed.contains(&"url.full") && http.consumed.contains(&"http.request.method")
        );
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
}
