//! The Zipkin v2 span model, shaped like the wire format: the field names and JSON forms
//! of `zipkin2-api.yaml` (`ListOfSpans`, `Span`, `Endpoint`, `Annotation`, `Tags`).
//!
//! [`super::convert`] builds it from OTLP; serde writes it as Zipkin JSON and
//! [`super::proto`] as proto3 `ListOfSpans`. Nothing here knows about OpenTelemetry.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde::{Serialize, Serializer};

/// One Zipkin span. Absent or empty fields are left out of the JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Span {
    /// 128-bit trace id, written as 32 lower-case hex digits.
    #[serde(serialize_with = "hex")]
    pub trace_id: [u8; 16],
    /// Absent for a root span.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "hex_opt")]
    pub parent_id: Option<[u8; 8]>,
    #[serde(serialize_with = "hex")]
    pub id: [u8; 8],
    /// Absent for local (OTel INTERNAL) spans.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<Kind>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Epoch microseconds of the start; 0 (unknown) is left out.
    #[serde(skip_serializing_if = "is_zero")]
    pub timestamp: u64,
    /// Microseconds, at least 1.
    pub duration: u64,
    pub local_endpoint: Endpoint,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_endpoint: Option<Endpoint>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub annotations: Vec<Annotation>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// `Span.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Kind {
    Client,
    Server,
    Producer,
    Consumer,
}

/// The network context of one side of a span.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<Ipv4Addr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<Ipv6Addr>,
    /// Never 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// A timestamped event of a span.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Annotation {
    /// Epoch microseconds.
    pub timestamp: u64,
    pub value: String,
}

/// Lower-case hex of `bytes`.
#[must_use]
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

fn hex<S: Serializer, const N: usize>(bytes: &[u8; N], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&to_hex(bytes))
}

fn hex_opt<S: Serializer>(bytes: &Option<[u8; 8]>, s: S) -> Result<S::Ok, S::Error> {
    match bytes {
        Some(b) => hex(b, s),
        None => s.serialize_none(),
    }
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_zero(v: &u64) -> bool {
    *v == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_uses_zipkin_names_and_leaves_out_absent_fields() {
        let mut span = Span {
            trace_id: [0xab; 16],
            parent_id: None,
            id: [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0xff],
            kind: None,
            name: String::new(),
            timestamp: 0,
            duration: 1,
            local_endpoint: Endpoint::default(),
            remote_endpoint: None,
            annotations: Vec::new(),
            tags: BTreeMap::new(),
        };
        assert_eq!(
            serde_json::to_value(&span).expect("json"),
            json!({"traceId": "abababababababababababababababab", "id": "01020304050607ff", "duration": 1, "localEndpoint": {}})
        );
        span.parent_id = Some([0; 8]);
        span.kind = Some(Kind::Consumer);
        span.name = "poll".into();
        span.timestamp = 1_700_000_000_000_000;
        span.local_endpoint.service_name = Some("svc".into());
        span.remote_endpoint = Some(Endpoint {
            ipv4: Some(Ipv4Addr::new(10, 0, 0, 1)),
            ipv6: Some("2001:db8::1".parse().expect("ip")),
            port: Some(9092),
            ..Endpoint::default()
        });
        span.annotations.push(Annotation {
            timestamp: 5,
            value: "e".into(),
        });
        span.tags.insert("k".into(), "v".into());
        assert_eq!(
            serde_json::to_value(&span).expect("json"),
            json!({
                "traceId": "abababababababababababababababab", "parentId": "0000000000000000",
                "id": "01020304050607ff", "kind": "CONSUMER", "name": "poll",
                "timestamp": 1_700_000_000_000_000u64, "duration": 1,
                "localEndpoint": {"serviceName": "svc"},
                "remoteEndpoint": {"ipv4": "10.0.0.1", "ipv6": "2001:db8::1", "port": 9092},
                "annotations": [{"timestamp": 5, "value": "e"}],
                "tags": {"k": "v"}
            })
        );
    }
}
