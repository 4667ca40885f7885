//! Reading one section into its typed struct while reporting every problem in it with
//! its exact path. serde stops at the first error, so the reader retries: after an
//! unknown key or a bad value it removes that key from the tree and reads again, until
//! the section reads cleanly or no further progress is possible. A "missing field"
//! that only follows from removing a bad value is not reported twice.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use serde_path_to_error::Segment;

use super::{ConfigError, err};

/// At most this many problems are collected from one section.
const MAX_ERRORS_PER_SECTION: usize = 64;

/// Reads `v` (at `path`) as a `T`, pushing every problem found to `errors`.
/// When the problems could be removed (unknown keys, bad optional values), the rest
/// is still returned, so the caller's value checks can report their problems too; the
/// caller must treat a non-empty `errors` as failure. `None` when nothing usable remains.
pub(super) fn section<T: DeserializeOwned>(
    v: Value,
    path: &str,
    errors: &mut Vec<ConfigError>,
) -> Option<T> {
    // An empty YAML section (`admin:`) reads as null: treat it as an empty mapping.
    let mut v = if v.is_null() {
        Value::Object(Map::new())
    } else {
        v
    };
    let mut removed: Vec<String> = Vec::new();
    for _ in 0..MAX_ERRORS_PER_SECTION {
        let e = match serde_path_to_error::deserialize::<_, T>(&v) {
            Ok(t) => return Some(t),
            Err(e) => e,
        };
        let mut segs: Vec<Key> = e.path().iter().filter_map(Key::of).collect();
        let message = e.into_inner().to_string();
        // serde names the offending key in the message for unknown and missing fields;
        // make the path end at that key.
        let named =
            quoted(&message, "unknown field `").or_else(|| quoted(&message, "missing field `"));
        if let Some(k) = named
            && segs.last() != Some(&Key::Field(k.to_owned()))
        {
            segs.push(Key::Field(k.to_owned()));
        }
        let full = render(path, &segs);
        let missing = message.starts_with("missing field");
        if missing {
            if !removed.contains(&full) {
                errors.push(err(&full, "missing (required)"));
            }
            return None;
        }
        errors.push(err(&full, tidy(&message)));
        if !remove(&mut v, &segs) {
            return None;
        }
        removed.push(full);
    }
    None
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    Field(String),
    Index(usize),
}

impl Key {
    fn of(s: &Segment) -> Option<Self> {
        match s {
            Segment::Map { key } => Some(Self::Field(key.clone())),
            Segment::Seq { index } => Some(Self::Index(*index)),
            Segment::Enum { .. } | Segment::Unknown => None,
        }
    }
}

fn render(base: &str, segs: &[Key]) -> String {
    let mut out = base.to_owned();
    for s in segs {
        match s {
            Key::Field(k) if out.is_empty() => out.push_str(k),
            Key::Field(k) => {
                out.push('.');
                out.push_str(k);
            }
            Key::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// The text between `prefix` and the next backtick.
fn quoted<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = &message[message.find(prefix)? + prefix.len()..];
    rest.split('`').next()
}

/// serde_json appends no position for values, but keep messages to one line.
fn tidy(message: &str) -> String {
    message.replace('\n', " ")
}

/// Removes the value at `segs`; false when there is nothing there to remove.
fn remove(root: &mut Value, segs: &[Key]) -> bool {
    let Some((last, parents)) = segs.split_last() else {
        return false;
    };
    let mut cur = root;
    for s in parents {
        cur = match (s, cur) {
            (Key::Field(k), Value::Object(m)) => match m.get_mut(k) {
                Some(v) => v,
                None => return false,
            },
            (Key::Index(i), Value::Array(a)) => match a.get_mut(*i) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, cur) {
        (Key::Field(k), Value::Object(m)) => m.remove(k).is_some(),
        // Removing an element would shift the indices of later errors; blank it instead
        // only when that cannot loop (a null element fails again at the same path).
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        inner: Inner,
        #[serde(default)]
        n: u32,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        endpoint: String,
        #[serde(default)]
        size: u32,
    }

    fn paths(v: Value) -> Vec<String> {
        let mut errors = Vec::new();
        let _ = section::<Outer>(v, "sec", &mut errors);
        errors.into_iter().map(|e| e.path).collect()
    }

    #[test]
    fn every_problem_with_its_exact_path() {
        let cases: &[(Value, &[&str])] = &[
            (json!({"inner": {"endpoint": "a"}}), &[]),
            (
                json!({"inner": {"endpoint": "a", "sise": 1}}),
                &["sec.inner.sise"],
            ),
            (
                json!({"inner": {"endpoint": "a", "sise": 1, "size": "x"}, "m": 1, "n": -1}),
                &["sec.inner.sise", "sec.inner.size", "sec.m", "sec.n"],
            ),
            // A bad required value is reported once, not again as missing.
            (json!({"inner": {"endpoint": 5}}), &["sec.inner.endpoint"]),
            (json!({"inner": {}}), &["sec.inner.endpoint"]),
            (json!({}), &["sec.inner"]),
        ];
        for (input, want) in cases {
            let mut got = paths(input.clone());
            got.sort();
            let mut want: Vec<String> = want.iter().map(|s| (*s).to_owned()).collect();
            want.sort();
            assert_eq!(got, want, "input {input}");
        }
    }

    #[test]
    fn messages_name_the_problem() {
        let mut errors = Vec::new();
        let _ = section::<Outer>(
            json!({"inner": {"endpoint": "a", "size": "x"}}),
            "s",
            &mut errors,
        );
        assert!(errors[0].message.contains("invalid type"), "{errors:?}");
    }
}
