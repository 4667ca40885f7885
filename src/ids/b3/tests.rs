//! Table of B3 single and multi header forms.

use super::*;

const T32: &str = "80f198ee56343ba864fe8b2a57d3eff7";
const T16: &str = "64fe8b2a57d3eff7";
const S: &str = "e457b5a2e4d86bd1";
const P: &str = "05e3ac9a4f6e3b90";

fn ctx(trace: &str, sampling: B3Sampling, parent: Option<&str>) -> B3 {
    let trace_id = if trace.len() == 16 {
        TraceId::from_hex(&format!("{:0>32}", trace)).expect("valid")
    } else {
        TraceId::from_hex(trace).expect("valid")
    };
    B3::Context(B3Context {
        trace_id,
        span_id: SpanId::from_hex(S).expect("valid"),
        parent_span_id: parent.map(|p| SpanId::from_hex(p).expect("valid")),
        sampling,
    })
}

#[test]
fn b3_single_forms() {
    use B3Sampling::*;
    let ok: Vec<(String, B3)> = vec![
        (format!("{T32}-{S}-1-{P}"), ctx(T32, Accept, Some(P))),
        (format!("{T32}-{S}-0"), ctx(T32, Deny, None)),
        (format!("{T32}-{S}-d"), ctx(T32, Debug, None)),
        (format!("{T32}-{S}"), ctx(T32, Deferred, None)),
        (format!("{T16}-{S}-1"), ctx(T16, Accept, None)),
        ("0".to_owned(), B3::SamplingOnly(Deny)),
        ("1".to_owned(), B3::SamplingOnly(Accept)),
        ("d".to_owned(), B3::SamplingOnly(Debug)),
    ];
    for (input, expected) in ok {
        assert_eq!(parse_single(&input), Ok(expected), "{input}");
    }
    let bad: Vec<(String, &str)> = vec![
        (String::new(), "b3: is empty"),
        (
            "true".to_owned(),
            "b3: \"true\" is neither a sampling state (0, 1, d) nor trace-id-span-id",
        ),
        (
            format!("{T32}-{S}-1-{P}-x"),
            "b3: has 5 '-'-separated fields, expected at most 4 (trace-span-sampled-parent)",
        ),
        (
            format!("{}-{S}-1", &T32[..20]),
            "b3: trace-id is 20 characters long, expected 16 or 32",
        ),
        (
            format!("{}-{S}", "0".repeat(32)),
            "b3: trace-id is all zeros",
        ),
        (
            format!("{}-{S}", "0".repeat(16)),
            "b3: trace-id is all zeros",
        ),
        (
            format!("{}-{S}", T32.to_uppercase()),
            "b3: trace-id has 'F' at index 2, expected lower-case hex (0-9, a-f)",
        ),
        (
            format!("{T32}-0000000000000000-1"),
            "b3: span-id is all zeros",
        ),
        (
            format!("{T32}-{}-1", &S[..15]),
            "b3: span-id is 15 characters long, expected 16",
        ),
        (
            format!("{T32}-{S}-x"),
            "b3: sampling state \"x\" is not one of 0, 1, d",
        ),
        (
            format!("{T32}-{S}-1-0000000000000000"),
            "b3: parent-span-id is all zeros",
        ),
        (
            format!("{T32}-{S}-1-"),
            "b3: parent-span-id is 0 characters long, expected 16",
        ),
    ];
    for (input, expected) in bad {
        assert_eq!(
            parse_single(&input).map_err(|e| e.to_string()),
            Err(expected.to_owned()),
            "{input}"
        );
    }
}

#[test]
fn b3_multi_forms() {
    use B3Sampling::*;
    let v = |t: Option<&'static str>, s: Option<&'static str>, p, sampled, flags| B3MultiValues {
        trace_id: t,
        span_id: s,
        parent_span_id: p,
        sampled,
        flags,
    };
    let ok: Vec<(B3MultiValues<'static>, Option<B3>)> = vec![
        (B3MultiValues::default(), None),
        (
            v(Some(T32), Some(S), Some(P), Some("1"), None),
            Some(ctx(T32, Accept, Some(P))),
        ),
        (
            v(Some(T16), Some(S), None, Some("0"), None),
            Some(ctx(T16, Deny, None)),
        ),
        (
            v(Some(T32), Some(S), None, Some("true"), None),
            Some(ctx(T32, Accept, None)),
        ),
        (
            v(Some(T32), Some(S), None, Some("false"), None),
            Some(ctx(T32, Deny, None)),
        ),
        (
            v(Some(T32), Some(S), None, None, None),
            Some(ctx(T32, Deferred, None)),
        ),
        // Debug implies sampled, whatever X-B3-Sampled says.
        (
            v(Some(T32), Some(S), None, Some("0"), Some("1")),
            Some(ctx(T32, Debug, None)),
        ),
        (
            v(None, None, None, Some("0"), None),
            Some(B3::SamplingOnly(Deny)),
        ),
        (
            v(None, None, None, None, Some("1")),
            Some(B3::SamplingOnly(Debug)),
        ),
    ];
    for (input, expected) in ok {
        assert_eq!(parse_multi(&input), Ok(expected), "{input:?}");
    }
    let bad: Vec<(B3MultiValues<'static>, &str)> = vec![
        (
            v(Some(T32), None, None, None, None),
            "B3 multi headers: X-B3-TraceId is present but X-B3-SpanId is missing",
        ),
        (
            v(None, Some(S), None, None, None),
            "B3 multi headers: X-B3-SpanId is present but X-B3-TraceId is missing",
        ),
        (
            v(None, None, Some(P), None, None),
            "B3 multi headers: X-B3-ParentSpanId is present but X-B3-TraceId is missing",
        ),
        (
            v(Some(T32), Some(S), None, Some("yes"), None),
            "X-B3-Sampled: sampling state \"yes\" is not one of 1, 0 (or legacy true, false)",
        ),
        (
            v(Some(T32), Some(S), None, None, Some("2")),
            "X-B3-Flags: sampling state \"2\" is not one of 1 (debug), 0",
        ),
        (
            v(Some("abc"), Some(S), None, None, None),
            "X-B3-TraceId: trace-id is 3 characters long, expected 16 or 32",
        ),
        (
            v(Some(T32), Some("0000000000000000"), None, None, None),
            "X-B3-SpanId: span-id is all zeros",
        ),
        (
            v(Some(T32), Some(S), Some("xyz"), None, None),
            "X-B3-ParentSpanId: parent-span-id is 3 characters long, expected 16",
        ),
    ];
    for (input, expected) in bad {
        assert_eq!(
            parse_multi(&input).map_err(|e| e.to_string()),
            Err(expected.to_owned()),
            "{input:?}"
        );
    }
}

#[test]
fn b3_single_round_trip() {
    for input in [
        format!("{T32}-{S}-1-{P}"),
        format!("{T32}-{S}-0"),
        format!("{T32}-{S}-d"),
        format!("{T32}-{S}"),
    ] {
        let Ok(B3::Context(c)) = parse_single(&input) else {
            panic!("{input} should parse");
        };
        let mut out = String::new();
        write_single(&c, &mut out);
        assert_eq!(out, input);
    }
}
