//! OTel semantic conventions → Pinpoint service types, annotations and server-map
//! fields. Reads both the current and the older attribute names. Pure.

use std::borrow::Cow;

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
/// A string value is borrowed: most are only compared, parsed or formatted, and the
/// ones that end up in a message are copied there once.
fn find<'a>(attrs: &'a [KeyValue], keys: &[&'static str]) -> Option<(&'static str, Cow<'a, str>)> {
    keys.iter().find_map(|k| {
        let kv = attrs.iter().find(|kv| kv.key == *k)?;
        let text = match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Cow::Borrowed(s.as_str()),
            Value::IntValue(i) => Cow::Owned(i.to_string()),
            Value::DoubleValue(d) => Cow::Owned(d.to_string()),
            Value::BoolValue(b) => Cow::Owned(b.to_string()),
            _ => return None,
        };
        Some((*k, text))
    })
}

struct Reader<'a> {
    attrs: &'a [KeyValue],
    consumed: Vec<&'static str>,
}

impl<'a> Reader<'a> {
    fn get(&mut self, keys: &[&'static str]) -> Option<Cow<'a, str>> {
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
            (Some(h), None) => h.into_owned(),
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
            (false, Some(n)) => n.into_owned(),
            (false, None) if !m.end_point.is_empty() => m.end_point.clone(),
            (false, None) => system.into_owned(),
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
            dest.to_string()
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
            .or_else(|| r.get(URL_FULL).map(|u| Cow::Owned(path_of(&u))));
        e.rpc = path.map_or_else(|| span.name.clone(), Cow::into_owned);
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
        .map(Cow::into_owned)
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
mod tests;
