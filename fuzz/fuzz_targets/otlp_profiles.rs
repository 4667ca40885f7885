//! OTLP/protobuf profiles intake: estimate, decoding, the per-profile dictionary
//! checks and admission never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../intake.rs"]
mod intake;

fuzz_target!(|data: &[u8]| {
    let _ = otel_pinpoint_bridge::memory::scan::profiles(data, 16 << 20);
    let _ = intake::run(intake::get().receive_profiles(data));
});
