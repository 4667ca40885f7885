//! Config loading: YAML parsing, `${env:…}` substitution and validation never panic,
//! whatever the text (errors come back with paths).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let env = |name: &str| (name.len() % 2 == 0).then(|| format!("v-{name}"));
    let _ = otel_pinpoint_bridge::config::parse(text, &env);
});
