//! Tests of the parent module.

use super::*;
use opentelemetry_proto::tonic::common::v1::ArrayValue;
use serde_json::json;

fn cond(v: Value) -> Condition {
    let mut errors = Vec::new();
    Condition::parse(&v, "c", Target::Attribute, &mut errors)
        .unwrap_or_else(|| panic!("{v}: {errors:?}"))
}

fn errors_of(v: Value, target: Target) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let c = Condition::parse(&v, "c", target, &mut errors);
    assert!(c.is_none(), "{v} should be rejected");
    errors
}

const S: Val<'static> = Val::Str("payments");

#[test]
fn operators_on_every_value_type() {
    // (condition, value, expected)
    let cases: Vec<(Value, Option<Val<'_>>, bool)> = vec![
        // eq shorthand and eq
        (json!("payments"), Some(S), true),
        (json!("payment"), Some(S), false),
        (json!({"eq": "payments"}), Some(S), true),
        (json!({"eq": 500}), Some(Val::Int(500)), true),
        (json!({"eq": 500}), Some(Val::Double(500.0)), true),
        (json!({"eq": 0.5}), Some(Val::Double(0.5)), true),
        (json!({"eq": 2.0}), Some(Val::Int(2)), true),
        (json!({"eq": true}), Some(Val::Bool(true)), true),
        (json!({"eq": true}), Some(Val::Bool(false)), false),
        // type mismatches never convert
        (json!({"eq": 500}), Some(Val::Str("500")), false),
        (json!({"eq": "500"}), Some(Val::Int(500)), false),
        (json!({"eq": "true"}), Some(Val::Bool(true)), false),
        (json!({"eq": 1}), Some(Val::Bool(true)), false),
        (json!({"eq": "x"}), Some(Val::Other), false),
        // ne is "not eq": true for missing and mismatched types
        (json!({"ne": "payments"}), Some(S), false),
        (json!({"ne": "orders"}), Some(S), true),
        (json!({"ne": "x"}), None, true),
        (json!({"ne": 1}), Some(Val::Str("1")), true),
        // in
        (json!({"in": ["orders", "payments"]}), Some(S), true),
        (json!({"in": ["orders", 7]}), Some(Val::Int(7)), true),
        (json!({"in": ["orders"]}), Some(S), false),
        (json!({"in": ["orders"]}), None, false),
        // glob
        (json!({"glob": "pay*"}), Some(S), true),
        (json!({"glob": "*ments"}), Some(S), true),
        (json!({"glob": "*yme*"}), Some(S), true),
        (json!({"glob": "p?y*s"}), Some(S), true),
        (json!({"glob": "p?y*x"}), Some(S), false),
        (json!({"glob": "pay*"}), Some(Val::Int(1)), false),
        (json!({"glob": "*"}), Some(Val::Str("")), true),
        (json!({"glob": "*"}), None, false),
        // regex: unanchored search
        (json!({"regex": "^pay(ment)?s$"}), Some(S), true),
        (json!({"regex": "ymen"}), Some(S), true),
        (json!({"regex": "^ymen"}), Some(S), false),
        (json!({"regex": "5.."}), Some(Val::Int(500)), false),
        // exists
        (json!({"exists": true}), Some(Val::Other), true),
        (json!({"exists": true}), None, false),
        (json!({"exists": false}), None, true),
        (json!({"exists": false}), Some(S), false),
        // numeric comparisons: ints and doubles only, never strings
        (json!({"gte": 500}), Some(Val::Int(500)), true),
        (json!({"gt": 500}), Some(Val::Int(500)), false),
        (json!({"gt": 499.5}), Some(Val::Int(500)), true),
        (json!({"lt": 1}), Some(Val::Double(0.25)), true),
        (json!({"lte": 1}), Some(Val::Double(1.0)), true),
        (json!({"lt": 1}), Some(Val::Double(f64::NAN)), false),
        (json!({"gte": 500}), Some(Val::Str("503")), false),
        (json!({"gte": 500}), Some(Val::Bool(true)), false),
        (json!({"gte": 500}), None, false),
        (json!({"gte": 500, "lt": 600}), Some(Val::Int(599)), true),
        (json!({"gte": 500, "lt": 600}), Some(Val::Int(600)), false),
        // several operators: all must hold
        (json!({"glob": "pay*", "ne": "payroll"}), Some(S), true),
        (json!({"glob": "pay*", "ne": "payments"}), Some(S), false),
        (json!({"exists": false, "ne": "x"}), None, true),
    ];
    for (c, v, want) in cases {
        assert_eq!(cond(c.clone()).matches(v), want, "{c} on {v:?}");
    }
}

#[test]
fn glob_forms() {
    let cases = [
        ("abc", "abc", true),
        ("abc", "abcd", false),
        ("a*", "a", true),
        ("*c", "abc", true),
        ("*b*", "abc", true),
        ("a*c", "abbbc", true),
        ("a*c", "abbbd", false),
        ("a*b*c", "aXbYbZc", true),
        ("a**c", "ac", true),
        ("?", "é", true),
        ("??", "é", false),
        ("*.?", "x.yz", false),
        ("*.??", "x.yz", true),
        (r"a\*", "a*", true),
        (r"a\*", "ab", false),
        (r"\?x", "?x", true),
        ("*ab", "aab", true),
        ("*a?c*", "xxabcxabd", true),
        ("", "", true),
        ("", "x", false),
    ];
    for (p, s, want) in cases {
        let g = Glob::new(p).expect("valid glob");
        assert_eq!(g.matches(s), want, "{p} on {s}");
    }
    assert!(Glob::new("a\\").is_err());
}

#[test]
fn bad_conditions_are_errors_with_paths() {
    let cases: Vec<(Value, Target, &str, &str)> = vec![
        (json!({}), Target::Attribute, "c", "no operator"),
        (json!(null), Target::Attribute, "c", "missing condition"),
        (json!(["a"]), Target::Attribute, "c", "use `in"),
        (
            json!({"like": "a"}),
            Target::Attribute,
            "c.like",
            "unknown operator `like`",
        ),
        (
            json!({"regex": "("}),
            Target::Attribute,
            "c.regex",
            "invalid regex",
        ),
        (
            json!({"glob": 5}),
            Target::Attribute,
            "c.glob",
            "must be a string",
        ),
        (
            json!({"in": []}),
            Target::Attribute,
            "c.in",
            "at least one value",
        ),
        (
            json!({"in": ["a", ["b"]]}),
            Target::Attribute,
            "c.in[1]",
            "string, number or bool",
        ),
        (
            json!({"gt": "5"}),
            Target::Attribute,
            "c.gt",
            "must be a number",
        ),
        (
            json!({"exists": "yes"}),
            Target::Attribute,
            "c.exists",
            "true or false",
        ),
        (
            json!({"gt": 5}),
            Target::Text,
            "c.gt",
            "never hold on a name",
        ),
        (json!({"eq": 5}), Target::Text, "c.eq", "must be a string"),
        // contradictions
        (
            json!({"gt": 600, "lt": 500}),
            Target::Attribute,
            "c",
            "`gt: 600` and `lt: 500`",
        ),
        (
            json!({"gte": 5, "lt": 5}),
            Target::Attribute,
            "c",
            "leave no number",
        ),
        (
            json!({"gt": 5, "lte": 5}),
            Target::Attribute,
            "c",
            "leave no number",
        ),
        (
            json!({"exists": false, "eq": "a"}),
            Target::Attribute,
            "c",
            "`exists: false` and `eq`",
        ),
        (
            json!({"eq": "a", "ne": "a"}),
            Target::Attribute,
            "c",
            "does not satisfy `ne`",
        ),
        (
            json!({"eq": "a", "in": ["b"]}),
            Target::Attribute,
            "c",
            "does not satisfy `in`",
        ),
        (
            json!({"eq": "abc", "glob": "x*"}),
            Target::Attribute,
            "c",
            "does not satisfy `glob`",
        ),
        (
            json!({"eq": 7, "gt": 8}),
            Target::Attribute,
            "c",
            "does not satisfy `gt`",
        ),
    ];
    for (v, target, path, msg) in cases {
        let errors = errors_of(v.clone(), target);
        assert!(
            errors
                .iter()
                .any(|e| e.path == path && e.message.contains(msg)),
            "{v}: want {path}: {msg}, got {errors:?}"
        );
    }
    // A closed range that holds one value is fine.
    assert!(cond(json!({"gte": 5, "lte": 5})).matches(Some(Val::Int(5))));
}

fn span(kind: i32, status: i32, name: &str, attrs: Vec<KeyValue>) -> Span {
    use opentelemetry_proto::tonic::trace::v1::Status;
    Span {
        kind,
        name: name.to_owned(),
        status: Some(Status {
            code: status,
            ..Default::default()
        }),
        attributes: attrs,
        ..Default::default()
    }
}

fn kv(key: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn matcher(v: Value) -> Match {
    let mut errors = Vec::new();
    Match::parse(&v, "m", &mut errors).unwrap_or_else(|| panic!("{v}: {errors:?}"))
}

#[test]
fn span_level_matching() {
    use any_value::Value as V;
    let get = span(
        2,
        2,
        "GET /pay",
        vec![
            kv("http.response.status_code", V::IntValue(503)),
            kv("tags", V::ArrayValue(ArrayValue::default())),
        ],
    );
    let cases = [
        (json!({"kind": ["server", "client"]}), true),
        (json!({"kind": "client"}), false),
        (json!({"status": ["error"]}), true),
        (json!({"status": ["ok", "unset"]}), false),
        (json!({"span_name": {"glob": "GET *"}}), true),
        (json!({"span_name": {"exists": false}}), false),
        (
            json!({"span": {"http.response.status_code": {"gte": 500}}}),
            true,
        ),
        (
            json!({"span": {"http.response.status_code": {"lt": 500}}}),
            false,
        ),
        (json!({"span": {"tags": {"exists": true}}}), true),
        (json!({"span": {"tags": "x"}}), false),
        (
            json!({"span": {"missing": {"exists": false}}, "kind": ["SERVER"]}),
            true,
        ),
        (json!({}), true),
    ];
    for (m, want) in cases {
        let m2 = matcher(m.clone());
        assert_eq!(m2.span_matches(&get), want, "{m}");
    }
    // A span kind or status outside the enum matches no listed value.
    assert!(!matcher(json!({"kind": ["server"]})).span_matches(&span(42, 0, "x", vec![])));
    assert!(matcher(json!({"span_name": {"exists": false}})).span_matches(&span(1, 0, "", vec![])));
}

#[test]
fn resource_and_scope_matching() {
    use any_value::Value as V;
    let resource = Resource {
        attributes: vec![kv("service.name", V::StringValue("payments".into()))],
        ..Default::default()
    };
    let scope = InstrumentationScope {
        name: "io.opentelemetry.jdbc".into(),
        version: String::new(),
        ..Default::default()
    };
    let m = matcher(json!({"resource": {"service.name": {"glob": "pay*"}}}));
    assert!(m.resource_matches(Some(&resource)));
    assert!(!m.resource_matches(None));
    let m = matcher(
        json!({"scope": {"name": {"glob": "io.opentelemetry.*"}, "version": {"exists": false}}}),
    );
    assert!(m.scope_matches(Some(&scope)));
    assert!(!m.scope_matches(None), "a missing scope has no name");
    let m = matcher(json!({"scope": {"name": {"exists": false}}}));
    assert!(m.scope_matches(None));
}

#[test]
fn bad_match_keys_are_errors_with_paths() {
    let cases = [
        (json!({"resorce": {}}), "m.resorce", "unknown key"),
        (
            json!({"kind": ["server", "sever"]}),
            "m.kind[1]",
            "unknown value",
        ),
        (json!({"status": []}), "m.status", "matches nothing"),
        (json!({"scope": {"nme": "x"}}), "m.scope.nme", "unknown key"),
        (
            json!({"span": {"": "x"}}),
            "m.span[\"\"]",
            "must not be empty",
        ),
        (
            json!({"span": {"http.route": {"regex": "["}}}),
            "m.span[\"http.route\"].regex",
            "invalid regex",
        ),
        (
            json!({"resource": ["service.name"]}),
            "m.resource",
            "mapping",
        ),
        (json!("all"), "m", "mapping"),
    ];
    for (v, path, msg) in cases {
        let mut errors = Vec::new();
        assert!(Match::parse(&v, "m", &mut errors).is_none(), "{v}");
        assert!(
            errors
                .iter()
                .any(|e| e.path == path && e.message.contains(msg)),
            "{v}: want {path}: {msg}, got {errors:?}"
        );
    }
    let mut errors = Vec::new();
    assert!(Match::parse(&Value::Null, "m", &mut errors).is_some_and(|m| m.is_all()));
}

/// A small deterministic generator for the sampling test (splitmix64).
fn ids(n: usize) -> impl Iterator<Item = [u8; 16]> {
    let mut state = 0x1234_5678_9abc_def0u64;
    (0..n).map(move |_| {
        let mut next = || {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&next().to_be_bytes());
        id[8..].copy_from_slice(&next().to_be_bytes());
        id
    })
}

#[test]
fn sampling_is_a_pure_function_of_the_trace_id() {
    // Fixed points: these never change between versions or instances.
    let half = Sampler::new(0.5);
    assert_eq!(half.threshold(), 1 << 55);
    let mut id = [0u8; 16];
    id[9..].copy_from_slice(&[0x80, 0, 0, 0, 0, 0, 0]);
    assert!(half.keeps(&id));
    id[9] = 0x7f;
    assert!(!half.keeps(&id));
    // The first 9 bytes do not take part.
    id[..9].copy_from_slice(&[0xff; 9]);
    assert!(!half.keeps(&id));
    assert_eq!(Sampler::new(1.0).threshold(), 0);
    assert!(Sampler::new(1.0).keeps(&[0; 16]));
    assert_eq!(randomness(&[1, 2, 3]), 0x01_0203);

    for ratio in [0.01, 0.1, 0.5, 0.9] {
        let s = Sampler::new(ratio);
        let n = 100_000;
        let kept = ids(n).filter(|id| s.keeps(id)).count();
        let got = kept as f64 / n as f64;
        // 5 standard deviations of a binomial proportion.
        let tolerance = 5.0 * (ratio * (1.0 - ratio) / n as f64).sqrt();
        assert!((got - ratio).abs() < tolerance, "ratio {ratio}: kept {got}");
        // Same trace, same decision; and decisions nest (kept at r ⇒ kept at 2r).
        let wider = Sampler::new((ratio * 2.0).min(1.0));
        for id in ids(1000) {
            assert_eq!(s.keeps(&id), s.keeps(&id));
            assert!(!s.keeps(&id) || wider.keeps(&id));
        }
    }
}
