//! OTLP/protobuf traces intake: the decoded-size estimate, decoding, the per-span
//! checks and admission never panic, and the estimate covers what decoding holds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use otel_pinpoint_bridge::memory::{scan, weigh};
use otel_pinpoint_bridge::receiver::decode::Wire;
use prost::Message;

#[path = "../intake.rs"]
mod intake;

fuzz_target!(|data: &[u8]| {
    let est = scan::traces(data, 16 << 20);
    if !est.stopped
        && let Ok(decoded) = ExportTraceServiceRequest::decode(data)
    {
        let held = weigh::request(&decoded);
        assert!(est.bytes >= held, "estimate {} < decoded {held}", est.bytes);
        let _ = otel_pinpoint_bridge::receiver::sanitize(decoded);
    }
    let _ = intake::run(intake::get().receive(data, Wire::Protobuf));
});
