//! Zipkin's proto3 `ListOfSpans`, written by hand from the field numbers of
//! openzipkin/zipkin-api `zipkin.proto` (package `zipkin.proto3`), and the encoding of
//! the [`model`] into it. Pure.

use std::collections::BTreeMap;

use super::model::{self, Kind};

/// `zipkin.proto3.ListOfSpans`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ListOfSpans {
    #[prost(message, repeated, tag = "1")]
    pub spans: Vec<Span>,
}

/// `zipkin.proto3.Span`. Zero values mean "absent", as in the JSON model.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Span {
    /// 16 bytes, big-endian.
    #[prost(bytes = "vec", tag = "1")]
    pub trace_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub parent_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    pub id: Vec<u8>,
    #[prost(enumeration = "SpanKind", tag = "4")]
    pub kind: i32,
    #[prost(string, tag = "5")]
    pub name: String,
    /// Epoch microseconds.
    #[prost(fixed64, tag = "6")]
    pub timestamp: u64,
    /// Microseconds.
    #[prost(uint64, tag = "7")]
    pub duration: u64,
    #[prost(message, optional, tag = "8")]
    pub local_endpoint: Option<Endpoint>,
    #[prost(message, optional, tag = "9")]
    pub remote_endpoint: Option<Endpoint>,
    #[prost(message, repeated, tag = "10")]
    pub annotations: Vec<Annotation>,
    #[prost(btree_map = "string, string", tag = "11")]
    pub tags: BTreeMap<String, String>,
    #[prost(bool, tag = "12")]
    pub debug: bool,
    #[prost(bool, tag = "13")]
    pub shared: bool,
}

/// `zipkin.proto3.Span.Kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum SpanKind {
    SpanKindUnspecified = 0,
    Client = 1,
    Server = 2,
    Producer = 3,
    Consumer = 4,
}

/// `zipkin.proto3.Endpoint`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Endpoint {
    #[prost(string, tag = "1")]
    pub service_name: String,
    /// 4 bytes.
    #[prost(bytes = "vec", tag = "2")]
    pub ipv4: Vec<u8>,
    /// 16 bytes.
    #[prost(bytes = "vec", tag = "3")]
    pub ipv6: Vec<u8>,
    #[prost(int32, tag = "4")]
    pub port: i32,
}

/// `zipkin.proto3.Annotation`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Annotation {
    #[prost(fixed64, tag = "1")]
    pub timestamp: u64,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// Appends `spans` as one proto3 `ListOfSpans` to `out`.
///
/// # Errors
/// Only if `out` cannot grow, which a `Vec` always can.
pub fn encode(spans: &[model::Span], out: &mut Vec<u8>) -> Result<(), prost::EncodeError> {
    let list = ListOfSpans {
        spans: spans.iter().map(span).collect(),
    };
    prost::Message::encode(&list, out)
}

fn span(s: &model::Span) -> Span {
    Span {
        trace_id: s.trace_id.to_vec(),
        parent_id: s.parent_id.map(|p| p.to_vec()).unwrap_or_default(),
        id: s.id.to_vec(),
        kind: match s.kind {
            None => SpanKind::SpanKindUnspecified,
            Some(Kind::Client) => SpanKind::Client,
            Some(Kind::Server) => SpanKind::Server,
            Some(Kind::Producer) => SpanKind::Producer,
            Some(Kind::Consumer) => SpanKind::Consumer,
        } as i32,
        name: s.name.clone(),
        timestamp: s.timestamp,
        duration: s.duration,
        local_endpoint: Some(endpoint(&s.local_endpoint)),
        remote_endpoint: s.remote_endpoint.as_ref().map(endpoint),
        annotations: s
            .annotations
            .iter()
            .map(|a| Annotation {
                timestamp: a.timestamp,
                value: a.value.clone(),
            })
            .collect(),
        tags: s.tags.clone(),
        debug: false,
        shared: false,
    }
}

fn endpoint(e: &model::Endpoint) -> Endpoint {
    Endpoint {
        service_name: e.service_name.clone().unwrap_or_default(),
        ipv4: e.ipv4.map(|ip| ip.octets().to_vec()).unwrap_or_default(),
        ipv6: e.ipv6.map(|ip| ip.octets().to_vec()).unwrap_or_default(),
        port: e.port.map_or(0, i32::from),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    #[test]
    fn field_numbers_and_wire_types_match_zipkin_proto() {
        let s = model::Span {
            trace_id: [1; 16],
            parent_id: None,
            id: [2; 8],
            kind: Some(Kind::Producer),
            name: "n".into(),
            timestamp: 7,
            duration: 3,
            local_endpoint: model::Endpoint {
                port: Some(80),
                ..model::Endpoint::default()
            },
            remote_endpoint: None,
            annotations: vec![],
            tags: BTreeMap::new(),
        };
        let mut out = Vec::new();
        encode(&[s], &mut out).expect("encodes");
        // ListOfSpans.spans: field 1, length-delimited.
        assert_eq!(out[0], 1 << 3 | 2);
        let inner = &out[2..];
        let mut want = vec![1 << 3 | 2, 16];
        want.extend([1; 16]);
        want.extend([3 << 3 | 2, 8]);
        want.extend([2; 8]);
        want.extend([4 << 3, 3]); // kind PRODUCER = 3 (varint)
        want.extend([5 << 3 | 2, 1, b'n']);
        want.push(6 << 3 | 1); // timestamp: fixed64
        want.extend(7u64.to_le_bytes());
        want.extend([7 << 3, 3]); // duration: varint
        want.extend([8 << 3 | 2, 2, 4 << 3, 80]); // localEndpoint { port: 80 }
        assert_eq!(inner, &want[..]);
        let back = ListOfSpans::decode(&out[..]).expect("decodes");
        assert_eq!(back.spans[0].kind, SpanKind::Producer as i32);
        assert_eq!(
            back.spans[0].local_endpoint.as_ref().map(|e| e.port),
            Some(80)
        );
    }
}
