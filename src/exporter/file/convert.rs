//! Pure conversion of a batch into the file exporter's line formats. No I/O.

use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use serde_json::json;

use crate::exporter::pinpoint::assemble::Output;
use crate::exporter::pinpoint::proto::p_span_message::Field;

/// Appends one OTLP/JSON `TracesData` object holding `resource_spans`, and a newline,
/// to `out`. The JSON follows the OTLP/JSON encoding: hex ids, lowerCamelCase keys,
/// integer enums, 64-bit integers as strings.
///
/// # Errors
/// Only if serialization fails, which the OTLP types do not do in practice.
pub fn otlp_json_line<'a>(
    resource_spans: impl Iterator<Item = &'a ResourceSpans>,
    out: &mut Vec<u8>,
) -> Result<(), serde_json::Error> {
    out.extend_from_slice(b"{\"resourceSpans\":[");
    for (i, rs) in resource_spans.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, rs)?;
    }
    out.extend_from_slice(b"]}\n");
    Ok(())
}

/// Appends one line `{"pinpoint": {"agent": {...}, "span" | "spanChunk": {...}}}` for a
/// message the Pinpoint exporter would send, with the agent headers it would use.
///
/// # Errors
/// Only if serialization fails.
pub fn pinpoint_json_line(o: &Output, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    let agent = json!({
        "applicationName": o.agent.application_name,
        "agentId": o.agent.agent_id,
        "serviceType": o.agent.service_type,
        "hostname": o.agent.hostname,
    });
    let line = match &o.message.field {
        Some(Field::Span(s)) => json!({"pinpoint": {"agent": agent, "span": s}}),
        Some(Field::SpanChunk(c)) => json!({"pinpoint": {"agent": agent, "spanChunk": c}}),
        None => return Ok(()),
    };
    serde_json::to_writer(&mut *out, &line)?;
    out.push(b'\n');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::trace::v1::{ScopeSpans, Span};

    #[test]
    fn line_is_otlp_json_that_reads_back() {
        let rs = ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: vec![0xab; 16],
                    span_id: vec![0x01; 8],
                    name: "GET /".into(),
                    kind: 2,
                    start_time_unix_nano: 1_700_000_000_000_000_001,
                    end_time_unix_nano: 1_700_000_000_000_000_002,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let mut out = Vec::new();
        otlp_json_line([&rs, &rs].into_iter(), &mut out).expect("serializes");
        assert_eq!(out.last(), Some(&b'\n'));
        let text = String::from_utf8(out).expect("utf8");
        assert!(
            text.contains("\"traceId\":\"abababababababababababababababab\""),
            "{text}"
        );
        assert!(
            text.contains("\"startTimeUnixNano\":\"1700000000000000001\""),
            "{text}"
        );
        assert!(text.contains("\"kind\":2"), "{text}");
        let back: ExportTraceServiceRequest = serde_json::from_str(&text).expect("reads back");
        assert_eq!(back.resource_spans, vec![rs.clone(), rs]);
    }
}
