use super::*;
use opentelemetry_proto::tonic::common::v1::AnyValue;
use opentelemetry_proto::tonic::profiles::v1development::{
    Function as OFunction, KeyValueAndUnit, Line as OLine, Link, Location as OLocation,
    Mapping as OMapping, Stack, ValueType as OValueType,
};
use prost::Message;

const STRINGS: &[&str] = &[
    "",
    "cpu",
    "nanoseconds",
    "main",
    "main.go",
    "work",
    "libwork.so",
    "thread.name",
    "worker-1",
    "alloc.size",
    "bytes",
    "inlined",
    "samples",
    "count",
];

fn s(text: &str) -> i32 {
    STRINGS
        .iter()
        .position(|x| *x == text)
        .expect("string in table") as i32
}

fn attr(key: &str, value: Value, unit: &str) -> KeyValueAndUnit {
    KeyValueAndUnit {
        key_strindex: s(key),
        value: Some(AnyValue { value: Some(value) }),
        unit_strindex: s(unit),
    }
}

/// main (main.go:10) → work (libwork.so, line 42, with `inlined` inlined into it).
fn dictionary() -> ProfilesDictionary {
    ProfilesDictionary {
        mapping_table: vec![
            OMapping::default(),
            OMapping {
                memory_start: 0x1000,
                memory_limit: 0x2000,
                file_offset: 0,
                filename_strindex: s("libwork.so"),
                attribute_indices: vec![],
            },
        ],
        location_table: vec![
            OLocation::default(),
            OLocation {
                mapping_index: 0,
                address: 0,
                lines: vec![OLine {
                    function_index: 1,
                    line: 10,
                    column: 0,
                }],
                attribute_indices: vec![],
            },
            OLocation {
                mapping_index: 1,
                address: 0x1234,
                lines: vec![
                    OLine {
                        function_index: 3,
                        line: 7,
                        column: 0,
                    },
                    OLine {
                        function_index: 2,
                        line: 42,
                        column: 0,
                    },
                ],
                attribute_indices: vec![],
            },
        ],
        function_table: vec![
            OFunction::default(),
            OFunction {
                name_strindex: s("main"),
                system_name_strindex: s("main"),
                filename_strindex: s("main.go"),
                start_line: 1,
            },
            OFunction {
                name_strindex: s("work"),
                system_name_strindex: 0,
                filename_strindex: 0,
                start_line: 0,
            },
            OFunction {
                name_strindex: s("inlined"),
                ..OFunction::default()
            },
        ],
        link_table: vec![
            Link::default(),
            Link {
                trace_id: (1..=16).collect(),
                span_id: vec![0xab; 8],
            },
        ],
        string_table: STRINGS.iter().map(|x| (*x).to_owned()).collect(),
        attribute_table: vec![
            KeyValueAndUnit::default(),
            attr("thread.name", Value::StringValue("worker-1".into()), ""),
            attr("alloc.size", Value::IntValue(512), "bytes"),
        ],
        stack_table: vec![
            Stack::default(),
            Stack {
                location_indices: vec![2, 1],
            },
            Stack {
                location_indices: vec![1],
            },
        ],
    }
}

fn profile(samples: Vec<OtlpSample>) -> OtlpProfile {
    OtlpProfile {
        sample_type: Some(OValueType {
            type_strindex: s("cpu"),
            unit_strindex: s("nanoseconds"),
        }),
        samples,
        time_unix_nano: 1_700_000_000_000_000_000,
        duration_nano: 10_000_000_000,
        period_type: Some(OValueType {
            type_strindex: s("cpu"),
            unit_strindex: s("nanoseconds"),
        }),
        period: 10_000_000,
        ..OtlpProfile::default()
    }
}

fn sample(stack: i32, values: Vec<i64>, ts: usize, attrs: Vec<i32>, link: i32) -> OtlpSample {
    OtlpSample {
        stack_index: stack,
        attribute_indices: attrs,
        link_index: link,
        values,
        timestamps_unix_nano: vec![1; ts],
    }
}

/// What a decoder would show: (frames leaf first, value, labels as text).
fn readable(p: &Profile) -> Vec<(Vec<String>, i64, Vec<String>)> {
    let st = |i: i64| p.string_table[i as usize].clone();
    p.sample
        .iter()
        .map(|smp| {
            let frames = smp
                .location_id
                .iter()
                .flat_map(|id| {
                    let loc = &p.location[*id as usize - 1];
                    assert_eq!(loc.id, *id);
                    loc.line.iter().map(|l| {
                        let f = &p.function[l.function_id as usize - 1];
                        format!("{}:{}", st(f.name), l.line)
                    })
                })
                .collect();
            let labels = smp
                .label
                .iter()
                .map(|l| {
                    if l.str != 0 {
                        format!("{}={}", st(l.key), st(l.str))
                    } else {
                        format!("{}={}{}", st(l.key), l.num, st(l.num_unit))
                    }
                })
                .collect();
            (frames, smp.value[0], labels)
        })
        .collect()
}

#[test]
fn converts_samples_locations_and_labels() {
    let p = profile(vec![
        sample(1, vec![30], 0, vec![1, 2], 1),
        sample(2, vec![], 4, vec![], 0),
        sample(1, vec![2, 3], 2, vec![], 0),
    ]);
    let out = convert(&p, &dictionary()).expect("converts");
    let tid = "0102030405060708090a0b0c0d0e0f10";
    assert_eq!(
        readable(&out),
        vec![
            (
                vec!["inlined:7".into(), "work:42".into(), "main:10".into()],
                30,
                vec![
                    "thread.name=worker-1".into(),
                    "alloc.size=512bytes".into(),
                    "span_id=abababababababab".into(),
                    format!("trace_id={tid}"),
                ]
            ),
            (vec!["main:10".into()], 4, vec![]),
            (
                vec!["inlined:7".into(), "work:42".into(), "main:10".into()],
                5,
                vec![]
            ),
        ]
    );
    assert_eq!(out.string_table[0], "");
    assert_eq!(
        out.location.len(),
        2,
        "locations are shared between samples"
    );
    let st = |i: i64| out.string_table[i as usize].as_str();
    assert_eq!(
        (st(out.sample_type[0].ty), st(out.sample_type[0].unit)),
        ("cpu", "nanoseconds")
    );
    assert_eq!(st(out.default_sample_type), "cpu");
    assert_eq!(
        (out.period, out.duration_nanos),
        (10_000_000, 10_000_000_000)
    );
    let m = out.mapping[0];
    assert_eq!(
        (m.id, m.memory_start, st(m.filename)),
        (1, 0x1000, "libwork.so")
    );
    assert!(m.has_functions && m.has_inline_frames && m.has_line_numbers && !m.has_filenames);
    // The work location sits in the mapping; main's has none.
    assert_eq!(
        out.location
            .iter()
            .map(|l| l.mapping_id)
            .collect::<Vec<_>>(),
        vec![1, 0]
    );
    let f = out
        .function
        .iter()
        .find(|f| st(f.name) == "main")
        .expect("main");
    assert_eq!((st(f.filename), f.start_line), ("main.go", 1));
    // Round trip through the wire format.
    assert_eq!(Profile::decode(out.encode_to_vec().as_slice()), Ok(out));
}

#[test]
fn bad_references_are_errors_not_panics() {
    let d = dictionary();
    let check = |p: OtlpProfile, d: &ProfilesDictionary, want: &str| {
        let e = convert(&p, d).expect_err("invalid");
        assert!(e.to_string().contains(want), "{e} / {want}");
    };
    check(
        profile(vec![sample(9, vec![1], 0, vec![], 0)]),
        &d,
        "stack_table[9]",
    );
    check(
        profile(vec![sample(-1, vec![1], 0, vec![], 0)]),
        &d,
        "stack_table[-1]",
    );
    check(
        profile(vec![sample(1, vec![1], 0, vec![7], 0)]),
        &d,
        "attribute_table[7]",
    );
    check(
        profile(vec![sample(1, vec![1], 0, vec![], 5)]),
        &d,
        "link_table[5]",
    );
    check(
        profile(vec![sample(1, vec![], 0, vec![], 0)]),
        &d,
        "neither values",
    );
    let mut no_type = profile(vec![]);
    no_type.sample_type = None;
    check(no_type, &d, "no sample_type");
    let mut broken = dictionary();
    broken.location_table[2].lines[0].function_index = 40;
    check(
        profile(vec![sample(1, vec![1], 0, vec![], 0)]),
        &broken,
        "function_table[40]",
    );
    let mut broken = dictionary();
    broken.string_table.truncate(5);
    check(
        profile(vec![sample(1, vec![1], 0, vec![], 0)]),
        &broken,
        "string_table[",
    );
    check(
        profile(vec![]),
        &ProfilesDictionary::default(),
        "string_table[1]",
    );
}
