//! Pinpoint annotations, service types and accept events → OTel semantic conventions
//! (the current names: `url.full`, `http.response.status_code`, `db.system.name`,
//! `db.query.text`, `server.address`...). An annotation with no mapping keeps its code as
//! `pinpoint.annotation.<code>`. Pure.

use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, KeyValue, KeyValueList, any_value,
};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;

use super::convert::{AnnotationSink, int_kv, str_kv};
use crate::exporter::pinpoint::codes as c;
use crate::exporter::pinpoint::proto::{
    PAcceptEvent, PAnnotation, PAttribute, PAttributeValue, PSpanEvent, p_annotation_value::Field,
    p_attribute_value,
};

const ANNO_SQL_ID: i32 = 20;
const ANNO_SQL_UID: i32 = 25;
const ANNO_HTTP_PARAM: i32 = 41;

/// The `API(12)` annotation's text, if any.
#[must_use]
pub fn api_annotation(annotations: &[PAnnotation]) -> Option<&str> {
    annotations
        .iter()
        .find_map(|a| match a.value.as_ref()?.field.as_ref()? {
            Field::StringValue(s) if a.key == c::ANNO_API => Some(s.as_str()),
            _ => None,
        })
}

/// `telemetry.sdk.language` of an application service type.
#[must_use]
pub fn sdk_language(service_type: i32) -> Option<&'static str> {
    Some(match service_type {
        c::NODE => "nodejs",
        c::PYTHON => "python",
        c::GO => "go",
        c::PHP => "php",
        c::C_CPP => "cpp",
        1000..=1299 => "java",
        _ => return None,
    })
}

/// Server-side attributes of a span's accept event.
pub fn accept_attributes(a: &PAcceptEvent, out: &mut Vec<KeyValue>) {
    if a.rpc.starts_with('/') {
        let (path, query) = a.rpc.split_once('?').unwrap_or((&a.rpc, ""));
        out.push(str_kv("url.path", path));
        if !query.is_empty() {
            out.push(str_kv("url.query", query));
        }
    } else if !a.rpc.is_empty() {
        out.push(str_kv("pinpoint.rpc", &a.rpc));
    }
    if let Some((host, port)) = host_port(&a.end_point) {
        out.push(str_kv("server.address", host));
        if let Some(p) = port {
            out.push(int_kv("server.port", i64::from(p)));
        }
    }
    if !a.remote_addr.is_empty() {
        out.push(str_kv("client.address", &a.remote_addr));
    }
    if let Some(p) = &a.parent_info {
        if !p.parent_application_name.is_empty() {
            out.push(str_kv(
                "pinpoint.parent.application_name",
                &p.parent_application_name,
            ));
            out.push(int_kv(
                "pinpoint.parent.application_type",
                i64::from(p.parent_application_type),
            ));
        }
        if !p.acceptor_host.is_empty() {
            out.push(str_kv("pinpoint.acceptor_host", &p.acceptor_host));
        }
    }
}

/// Splits `host:port` (also `[v6]:port`); `None` for an empty text.
fn host_port(s: &str) -> Option<(&str, Option<u16>)> {
    if s.is_empty() {
        return None;
    }
    if let Some(rest) = s.strip_prefix('[')
        && let Some((host, tail)) = rest.split_once(']')
    {
        return Some((host, tail.strip_prefix(':').and_then(|p| p.parse().ok())));
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => match p.parse::<u16>() {
            Ok(port) => Some((h, Some(port))),
            Err(_) => Some((s, None)),
        },
        _ => Some((s, None)),
    }
}

/// `destinationId` → `server.address` / `server.port`.
pub fn destination_attributes(destination: &str, out: &mut Vec<KeyValue>) {
    if let Some((host, port)) = host_port(destination) {
        out.push(str_kv("server.address", host));
        if let Some(p) = port {
            out.push(int_kv("server.port", i64::from(p)));
        }
    }
}

fn db_system(service_type: i32) -> Option<&'static str> {
    Some(match service_type {
        2100 | 2101 => "mysql",
        2150 | 2151 => "mariadb",
        2250 | 2251 => "microsoft.sql_server",
        2300 | 2301 => "oracle.db",
        2500 | 2501 => "postgresql",
        2600 | 2601 => "cassandra",
        2650 | 2651 => "mongodb",
        2800 | 2801 => "clickhouse",
        c::REDIS..=8209 => "redis",
        c::MEMCACHED => "memcached",
        2000..=2999 => "other_sql",
        _ => return None,
    })
}

fn messaging_system(service_type: i32) -> Option<&'static str> {
    Some(match service_type {
        c::RABBITMQ_CLIENT..=8309 => "rabbitmq",
        c::ACTIVEMQ_CLIENT..=8319 => "activemq",
        c::ROCKETMQ_CLIENT..=8409 => "rocketmq",
        c::KAFKA_CLIENT..=8669 => "kafka",
        _ => return None,
    })
}

/// The service type → `db.system.name` or `messaging.system`.
pub fn system_attributes(service_type: i32, out: &mut Vec<KeyValue>) {
    if let Some(s) = db_system(service_type) {
        out.push(str_kv("db.system.name", s));
    } else if let Some(s) = messaging_system(service_type) {
        out.push(str_kv("messaging.system", s));
    }
}

/// Span kind of an event: CLIENT when it called a traced service or a database/cache,
/// PRODUCER for message brokers, CLIENT for RPC-client codes that carry a URL, else
/// INTERNAL.
#[must_use]
pub fn event_kind(e: &PSpanEvent, remote: bool) -> SpanKind {
    let st = e.service_type;
    if (8300..=8799).contains(&st) {
        return SpanKind::Producer;
    }
    if remote || (2000..=2999).contains(&st) || (8000..=8299).contains(&st) {
        return SpanKind::Client;
    }
    let has_url = e.annotation.iter().any(|a| a.key == c::ANNO_HTTP_URL);
    if (9000..=9999).contains(&st) && has_url {
        SpanKind::Client
    } else {
        SpanKind::Internal
    }
}

fn text_of(f: &Field) -> String {
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    match f {
        Field::StringValue(v) => v.clone(),
        Field::BoolValue(v) => v.to_string(),
        Field::IntValue(v) | Field::ShortValue(v) | Field::ByteValue(v) => v.to_string(),
        Field::LongValue(v) => v.to_string(),
        Field::DoubleValue(v) => v.to_string(),
        Field::BinaryValue(v) => format!("{} bytes", v.len()),
        Field::IntStringValue(v) => format!("{} {}", v.int_value, s(&v.string_value)),
        Field::StringStringValue(v) => format!("{} {}", s(&v.string_value1), s(&v.string_value2)),
        Field::IntStringStringValue(v) => format!(
            "{} {} {}",
            v.int_value,
            s(&v.string_value1),
            s(&v.string_value2)
        ),
        Field::LongIntIntByteByteStringValue(v) => format!(
            "{} {} {} {} {} {}",
            v.long_value,
            v.int_value1,
            v.int_value2,
            v.byte_value1,
            v.byte_value2,
            s(&v.string_value)
        ),
        Field::IntBooleanIntBooleanValue(v) => format!(
            "{} {} {} {}",
            v.int_value1, v.bool_value1, v.int_value2, v.bool_value2
        ),
        Field::BytesStringStringValue(v) => format!(
            "{} bytes {} {}",
            v.bytes_value.len(),
            s(&v.string_value1),
            s(&v.string_value2)
        ),
    }
}

fn any_of(f: &Field) -> any_value::Value {
    match f {
        Field::StringValue(v) => any_value::Value::StringValue(v.clone()),
        Field::BoolValue(v) => any_value::Value::BoolValue(*v),
        Field::IntValue(v) | Field::ShortValue(v) | Field::ByteValue(v) => {
            any_value::Value::IntValue(i64::from(*v))
        }
        Field::LongValue(v) => any_value::Value::IntValue(*v),
        Field::DoubleValue(v) => any_value::Value::DoubleValue(*v),
        Field::BinaryValue(v) => any_value::Value::BytesValue(v.clone()),
        other => any_value::Value::StringValue(text_of(other)),
    }
}

fn kv(key: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key_strindex: 0,
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(v) }),
    }
}

fn int_of(f: &Field) -> Option<i64> {
    match f {
        Field::IntValue(v) | Field::ShortValue(v) | Field::ByteValue(v) => Some(i64::from(*v)),
        Field::LongValue(v) => Some(*v),
        Field::StringValue(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Bind values (`a, b, c`, as Pinpoint joins them) → `db.query.parameter.<i>`.
fn bind_values(values: Option<&String>, out: &mut Vec<KeyValue>) {
    let Some(v) = values.filter(|v| !v.is_empty()) else {
        return;
    };
    for (i, p) in v.split(", ").enumerate() {
        out.push(str_kv(&format!("db.query.parameter.{i}"), p));
    }
}

/// Maps one annotation into `sink`.
pub(super) fn annotation_attribute(a: &PAnnotation, kind: SpanKind, sink: &mut AnnotationSink<'_>) {
    let Some(f) = a.value.as_ref().and_then(|v| v.field.as_ref()) else {
        return;
    };
    let out = &mut *sink.attributes;
    match (a.key, f) {
        // Used as the span name.
        (c::ANNO_API, _) => {}
        (c::ANNO_HTTP_URL, Field::StringValue(u)) => {
            let key = if kind == SpanKind::Server {
                "url.path"
            } else {
                "url.full"
            };
            out.push(str_kv(key, u));
        }
        (ANNO_HTTP_PARAM, Field::StringValue(q)) => out.push(str_kv("url.query", q)),
        (c::ANNO_HTTP_STATUS_CODE, f) if int_of(f).is_some() => {
            out.push(int_kv(
                "http.response.status_code",
                int_of(f).unwrap_or_default(),
            ));
        }
        (c::ANNO_HTTP_METHOD, Field::StringValue(m)) => out.push(str_kv("http.request.method", m)),
        (c::ANNO_SQL, Field::StringValue(sql)) => out.push(str_kv("db.query.text", sql)),
        (ANNO_SQL_ID, Field::IntStringStringValue(v)) => {
            match sink.meta.sql.get(&v.int_value) {
                Some(sql) => out.push(str_kv("db.query.text", sql)),
                None => {
                    sink.missing.sql += 1;
                    out.push(int_kv("pinpoint.sql_id", i64::from(v.int_value)));
                }
            }
            bind_values(v.string_value2.as_ref(), out);
        }
        (ANNO_SQL_UID, Field::BytesStringStringValue(v)) => {
            match sink.meta.sql_uid.get(&v.bytes_value) {
                Some(sql) => out.push(str_kv("db.query.text", sql)),
                None => sink.missing.sql += 1,
            }
            bind_values(v.string_value2.as_ref(), out);
        }
        (c::ANNO_KAFKA_TOPIC, Field::StringValue(t)) => {
            out.push(str_kv("messaging.destination.name", t));
        }
        (c::ANNO_KAFKA_PARTITION, f) if int_of(f).is_some() => {
            out.push(str_kv(
                "messaging.destination.partition.id",
                &int_of(f).unwrap_or_default().to_string(),
            ));
        }
        (c::ANNO_KAFKA_OFFSET, f) if int_of(f).is_some() => {
            out.push(int_kv(
                "messaging.kafka.offset",
                int_of(f).unwrap_or_default(),
            ));
        }
        (c::ANNO_GRPC_STATUS, f) if int_of(f).is_some() => {
            out.push(int_kv(
                "rpc.grpc.status_code",
                int_of(f).unwrap_or_default(),
            ));
        }
        (key, f) => out.push(kv(&format!("pinpoint.annotation.{key}"), any_of(f))),
    }
}

fn attribute_value(v: &PAttributeValue) -> Option<any_value::Value> {
    Some(match v.field.as_ref()? {
        p_attribute_value::Field::StringValue(s) => any_value::Value::StringValue(s.clone()),
        p_attribute_value::Field::BoolValue(b) => any_value::Value::BoolValue(*b),
        p_attribute_value::Field::LongValue(i) => any_value::Value::IntValue(*i),
        p_attribute_value::Field::DoubleValue(d) => any_value::Value::DoubleValue(*d),
        p_attribute_value::Field::BinaryValue(b) => any_value::Value::BytesValue(b.clone()),
        p_attribute_value::Field::ArrayValue(a) => any_value::Value::ArrayValue(ArrayValue {
            values: a
                .values
                .iter()
                .map(|v| AnyValue {
                    value: attribute_value(v),
                })
                .collect(),
        }),
        p_attribute_value::Field::KvlistValue(l) => any_value::Value::KvlistValue(KeyValueList {
            values: l
                .values
                .iter()
                .map(|a| KeyValue {
                    key_strindex: 0,
                    key: a.key.clone(),
                    value: Some(AnyValue {
                        value: a.value.as_ref().and_then(attribute_value),
                    }),
                })
                .collect(),
        }),
    })
}

/// 3.1's PAttribute list: copied under its own keys.
pub fn p_attributes(attrs: &[PAttribute], out: &mut Vec<KeyValue>) {
    for a in attrs {
        if a.key.is_empty() {
            continue;
        }
        if let Some(v) = a.value.as_ref().and_then(attribute_value) {
            out.push(kv(&a.key, v));
        }
    }
}
