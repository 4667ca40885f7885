//! Trace-context headers: traceparent, tracestate, B3 (single and multi), Pinpoint
//! headers and whole-set translation (both ways, and back) never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otel_pinpoint_bridge::ids::entries::{BridgeEntry, PpEntry};
use otel_pinpoint_bridge::ids::tracestate::TraceStateRef;
use otel_pinpoint_bridge::ids::{
    TraceId, TraceParent, TransactionId, TranslateOptions, parse_header_lines, translate_headers,
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = TraceParent::parse(text);
    let _ = TraceStateRef::parse(text);
    let _ = otel_pinpoint_bridge::ids::b3::parse_single(text);
    let _ = TransactionId::parse(text);
    let _ = PpEntry::parse(text);
    let _ = BridgeEntry::parse(text);
    let _ = TraceId::from_hex(text);
    // `Name: value` lines, as the CLI and the admin endpoint read them.
    if let Ok(headers) = parse_header_lines(text) {
        let opts = TranslateOptions::default();
        if let Ok(t) = translate_headers(&headers, &opts) {
            let _ = translate_headers(&t.headers, &opts);
        }
    }
});
