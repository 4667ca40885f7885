//! Table of every invalid traceparent case and the valid edge cases.

use super::*;

const VALID: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

fn check(input: &str, expected: Result<(&str, &str, u8), &str>) {
    let got = TraceParent::parse(input)
        .map(|tp| (tp.trace_id.to_hex(), tp.parent_id.to_hex(), tp.flags))
        .map_err(|e| e.to_string());
    let expected = expected
        .map(|(t, p, f)| (t.to_owned(), p.to_owned(), f))
        .map_err(str::to_owned);
    assert_eq!(got, expected, "input {input:?}");
}

#[test]
fn traceparent_valid_edge_cases() {
    let t = "0af7651916cd43dd8448eb211c80319c";
    let p = "b7ad6b7169203331";
    check(VALID, Ok((t, p, 0x01)));
    check(&VALID.replace("-01", "-00"), Ok((t, p, 0x00)));
    // Level 2 random flag, and unknown flag bits are accepted on input.
    check(&VALID.replace("-01", "-03"), Ok((t, p, 0x03)));
    check(&VALID.replace("-01", "-ff"), Ok((t, p, 0xff)));
    // Ids with a single non-zero bit are valid.
    check(
        "00-00000000000000000000000000000001-0000000000000001-01",
        Ok(("00000000000000000000000000000001", "0000000000000001", 1)),
    );
    // Higher versions: parsed by position, may continue with "-...".
    check(&format!("01{}", &VALID[2..]), Ok((t, p, 0x01)));
    check(
        &format!("cc{}-what-the-future-holds", &VALID[2..]),
        Ok((t, p, 0x01)),
    );
    check(&format!("fe{}", &VALID[2..]), Ok((t, p, 0x01)));
}

#[test]
fn traceparent_invalid_cases() {
    let cases: &[(String, &str)] = &[
        (String::new(), "traceparent: is empty"),
        (
            VALID[..54].to_owned(),
            "traceparent: is 54 characters long, expected 55",
        ),
        (
            "0".to_owned(),
            "traceparent: is 1 characters long, expected 55",
        ),
        (
            "00".to_owned(),
            "traceparent: is 2 characters long, expected 55",
        ),
        (
            format!("ff{}", &VALID[2..]),
            "traceparent: version ff is invalid",
        ),
        (
            format!("0g{}", &VALID[2..]),
            "traceparent: version starts with 'g', expected 2 lower-case hex characters",
        ),
        (
            format!("0A{}", &VALID[2..]),
            "traceparent: version starts with 'A', expected 2 lower-case hex characters",
        ),
        (
            format!("{VALID}-"),
            "traceparent: version 00 must be exactly 55 characters, found 56 (trailing data)",
        ),
        (
            format!("{VALID}-extra"),
            "traceparent: version 00 must be exactly 55 characters, found 61 (trailing data)",
        ),
        (
            format!("01{}x", &VALID[2..]),
            "traceparent: version 01 continues after index 55 with 'x', expected '-'",
        ),
        (
            VALID.replacen('-', "_", 1),
            "traceparent: expected '-' at index 2, found '_'",
        ),
        (
            format!("{}.{}", &VALID[..35], &VALID[36..]),
            "traceparent: expected '-' at index 35, found '.'",
        ),
        (
            format!("{} {}", &VALID[..52], &VALID[53..]),
            "traceparent: expected '-' at index 52, found ' '",
        ),
        (
            "00-00000000000000000000000000000000-b7ad6b7169203331-01".to_owned(),
            "traceparent: trace-id is all zeros",
        ),
        (
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01".to_owned(),
            "traceparent: parent-id is all zeros",
        ),
        (
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01".to_owned(),
            "traceparent: trace-id has 'A' at index 4, expected lower-case hex (0-9, a-f)",
        ),
        (
            "00-0af7651916cd43dd8448eb211c80319c-B7AD6B7169203331-01".to_owned(),
            "traceparent: parent-id has 'B' at index 36, expected lower-case hex (0-9, a-f)",
        ),
        (
            "00-0af7651916cd43dd8448eb211c80319z-b7ad6b7169203331-01".to_owned(),
            "traceparent: trace-id has 'z' at index 34, expected lower-case hex (0-9, a-f)",
        ),
        (
            VALID.replace("-01", "-0X"),
            "traceparent: trace-flags has 'X', expected 2 lower-case hex characters",
        ),
        (
            VALID.replace("-01", "-A1"),
            "traceparent: trace-flags has 'A', expected 2 lower-case hex characters",
        ),
        (
            // Wrong field widths with the right total length.
            "00-0af7651916cd43dd8448eb211c80319cb-7ad6b7169203331-01".to_owned(),
            "traceparent: expected '-' at index 35, found 'b'",
        ),
        (
            // Non-ASCII characters never panic on slicing.
            "00-0af7651916cd43dd8448eb211c8031é-b7ad6b7169203331-01".to_owned(),
            "traceparent: trace-id has 'é' at index 33, expected lower-case hex (0-9, a-f)",
        ),
        (
            format!(" {}", &VALID[..54]),
            "traceparent: version starts with ' ', expected 2 lower-case hex characters",
        ),
    ];
    for (input, expected) in cases {
        check(input, Err(expected));
    }
}

#[test]
fn traceparent_write_is_version_00_with_known_flags() {
    let tp = TraceParent::parse(&format!("cc{}-future", &VALID[2..]).replace("-01-", "-ff-"))
        .expect("valid future version");
    assert_eq!(
        tp.to_header(),
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03"
    );
    let parsed = TraceParent::parse(VALID).expect("valid");
    assert_eq!(parsed.to_header(), VALID);
    assert!(parsed.sampled());
}
