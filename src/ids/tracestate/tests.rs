//! Table of tracestate limits, invalid members and ordering rules.

use super::*;

fn check(input: &str, expected: Result<&[(&str, &str)], &str>) {
    let got = TraceStateRef::parse(input)
        .map(|ts| {
            ts.members()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect::<Vec<_>>()
        })
        .map_err(|e| e.to_string());
    let expected = expected
        .map(|m| {
            m.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<Vec<_>>()
        })
        .map_err(str::to_owned);
    assert_eq!(got, expected, "input {input:?}");
}

fn members(n: usize) -> String {
    (0..n)
        .map(|i| format!("k{i}=v{i}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn tracestate_valid_edge_cases() {
    check("", Ok(&[]));
    check("   ", Ok(&[]));
    check("congo=t61rcWkgMzE", Ok(&[("congo", "t61rcWkgMzE")]));
    check(
        "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
        Ok(&[("rojo", "00f067aa0ba902b7"), ("congo", "t61rcWkgMzE")]),
    );
    // Optional whitespace around members, empty members ignored.
    check(" a=1 ,\t, b=2\t,,", Ok(&[("a", "1"), ("b", "2")]));
    // Multi-tenant and digit-first keys, all key characters.
    check(
        "fw529a3039@dt=abc,0k_-*/@x=1",
        Ok(&[("fw529a3039@dt", "abc"), ("0k_-*/@x", "1")]),
    );
    // Value: printable ASCII incl. inner and leading spaces, ':', ';', '^'.
    check(
        "ppb=tx:agentA^1^2;ps:-5,x= a b~!",
        Ok(&[("ppb", "tx:agentA^1^2;ps:-5"), ("x", " a b~!")]),
    );
    // Exactly 32 members; 256-character key and value.
    let m32 = members(32);
    let parsed = TraceStateRef::parse(&m32).expect("32 members are valid");
    assert_eq!(parsed.len(), 32);
    let long_key = format!("a{}", "b".repeat(255));
    let long_value = "v".repeat(256);
    let input = format!("{long_key}={long_value}");
    let parsed = TraceStateRef::parse(&input).expect("limits are inclusive");
    assert_eq!(parsed.get(&long_key), Some(long_value.as_str()));
}

#[test]
fn tracestate_invalid_cases() {
    let long_key = format!("a{}", "b".repeat(256));
    let long_value = "v".repeat(257);
    let long_key_msg = format!(
        "tracestate: key \"a{}...\" is 257 characters long, at most 256 are allowed",
        "b".repeat(63)
    );
    let cases: Vec<(String, &str)> = vec![
        (
            members(33),
            "tracestate: has more than 32 list-members (found 33 so far)",
        ),
        (
            "a=1,novalue".to_owned(),
            "tracestate: list-member 2 \"novalue\" has no '='",
        ),
        (
            "=1".to_owned(),
            "tracestate: list-member 1 has an empty key",
        ),
        (
            "Upper=1".to_owned(),
            "tracestate: key \"Upper\" has 'U' at index 0; keys are [a-z0-9][a-z0-9_-*/@]*",
        ),
        (
            "_a=1".to_owned(),
            "tracestate: key \"_a\" has '_' at index 0; keys are [a-z0-9][a-z0-9_-*/@]*",
        ),
        (
            "a.b=1".to_owned(),
            "tracestate: key \"a.b\" has '.' at index 1; keys are [a-z0-9][a-z0-9_-*/@]*",
        ),
        (
            "a b=1".to_owned(),
            "tracestate: key \"a b\" has ' ' at index 1; keys are [a-z0-9][a-z0-9_-*/@]*",
        ),
        (format!("{long_key}=1"), long_key_msg.as_str()),
        ("a=".to_owned(), "tracestate: value of key \"a\" is empty"),
        ("a= ".to_owned(), "tracestate: value of key \"a\" is empty"),
        (
            format!("a={long_value}"),
            "tracestate: value of key \"a\" is 257 characters long, at most 256 are allowed",
        ),
        (
            "a=b=c".to_owned(),
            "tracestate: value of key \"a\" has '=' at index 1; values are printable ASCII without ',' and '='",
        ),
        (
            "a=x\u{7f}".to_owned(),
            "tracestate: value of key \"a\" has '\\u{7f}' at index 1; values are printable ASCII without ',' and '='",
        ),
        (
            "a=é".to_owned(),
            "tracestate: value of key \"a\" has 'é' at index 0; values are printable ASCII without ',' and '='",
        ),
        (
            "a=x\ty".to_owned(),
            "tracestate: value of key \"a\" has '\\t' at index 1; values are printable ASCII without ',' and '='",
        ),
        (
            "a=1,b=2,a=3".to_owned(),
            "tracestate: key \"a\" appears more than once",
        ),
    ];
    for (input, expected) in &cases {
        check(input, Err(expected));
    }
}

#[test]
fn tracestate_upsert_moves_left_and_caps_at_32() {
    let mut ts = TraceState::parse("a=1,b=2,c=3").expect("valid");
    assert_eq!(ts.upsert("b", "9"), Ok(0));
    assert_eq!(ts.to_header(), "b=9,a=1,c=3");
    assert_eq!(ts.upsert("new", "x"), Ok(0));
    assert_eq!(ts.to_header(), "new=x,b=9,a=1,c=3");

    let mut full = TraceState::parse(&members(32)).expect("valid");
    assert_eq!(full.upsert("ppb", "ps:1"), Ok(1));
    assert_eq!(full.len(), 32);
    assert_eq!(full.members().next(), Some(("ppb", "ps:1")));
    assert_eq!(full.get("k31"), None, "right-most member is dropped");
    assert_eq!(full.get("k30"), Some("v30"));

    // An invalid update leaves the list unchanged.
    let before = full.clone();
    assert!(full.upsert("ppb", "a,b").is_err());
    assert!(full.upsert("PPB", "x").is_err());
    assert_eq!(full, before);

    assert_eq!(full.remove("ppb").as_deref(), Some("ps:1"));
    assert_eq!(full.len(), 31);
}
