//! Attribute values as Zipkin text: tag values and the JSON inside annotations. Pure.

use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value::Value as AV};
use serde_json::Value;

/// An attribute value as a Zipkin tag: strings as they are, numbers and booleans in
/// their usual text form, arrays and maps as JSON, bytes as base64. `None` for an
/// empty value.
pub fn tag_value(v: Option<&AnyValue>) -> Option<String> {
    Some(match v?.value.as_ref()? {
        AV::StringValue(s) => s.clone(),
        AV::BoolValue(b) => b.to_string(),
        AV::IntValue(i) => i.to_string(),
        AV::DoubleValue(d) => double_text(*d),
        AV::BytesValue(b) => base64(b),
        other @ (AV::ArrayValue(_) | AV::KvlistValue(_)) => json_value(Some(&AnyValue {
            value: Some(other.clone()),
        }))
        .to_string(),
        AV::StringValueStrindex(_) => return None,
    })
}

/// An attribute value as JSON (for arrays, maps and event attributes).
pub fn json_value(v: Option<&AnyValue>) -> Value {
    match v.and_then(|v| v.value.as_ref()) {
        Some(AV::StringValue(s)) => Value::String(s.clone()),
        Some(AV::BoolValue(b)) => Value::Bool(*b),
        Some(AV::IntValue(i)) => Value::from(*i),
        Some(AV::DoubleValue(d)) => serde_json::Number::from_f64(*d)
            .map_or_else(|| Value::String(double_text(*d)), Value::Number),
        Some(AV::BytesValue(b)) => Value::String(base64(b)),
        Some(AV::ArrayValue(a)) => {
            Value::Array(a.values.iter().map(|x| json_value(Some(x))).collect())
        }
        Some(AV::KvlistValue(kv)) => Value::Object(
            kv.values
                .iter()
                .map(|kv| (kv.key.clone(), json_value(kv.value.as_ref())))
                .collect(),
        ),
        Some(AV::StringValueStrindex(_)) | None => Value::Null,
    }
}

/// A double as JSON writes it (`0.25`, `1.0`, `1e-7`); `NaN`, `Infinity`, `-Infinity`.
fn double_text(d: f64) -> String {
    match serde_json::Number::from_f64(d) {
        Some(n) => n.to_string(),
        None if d.is_nan() => "NaN".to_owned(),
        None if d > 0.0 => "Infinity".to_owned(),
        None => "-Infinity".to_owned(),
    }
}

/// Standard base64 with padding (how OTLP/JSON writes bytes).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 0x3f) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValue, KeyValueList};

    fn v(value: AV) -> AnyValue {
        AnyValue { value: Some(value) }
    }

    #[test]
    fn tag_values() {
        let check = |value: Option<AV>, want: Option<&str>| {
            let any = AnyValue { value };
            assert_eq!(tag_value(Some(&any)).as_deref(), want, "{any:?}");
        };
        check(Some(AV::StringValue("a b".into())), Some("a b"));
        check(Some(AV::BoolValue(true)), Some("true"));
        check(Some(AV::IntValue(-42)), Some("-42"));
        check(Some(AV::DoubleValue(0.25)), Some("0.25"));
        check(Some(AV::DoubleValue(1.0)), Some("1.0"));
        check(Some(AV::DoubleValue(f64::NAN)), Some("NaN"));
        check(Some(AV::DoubleValue(f64::NEG_INFINITY)), Some("-Infinity"));
        check(Some(AV::BytesValue(b"hello".to_vec())), Some("aGVsbG8="));
        check(Some(AV::BytesValue(b"hi!".to_vec())), Some("aGkh"));
        check(Some(AV::BytesValue(b"h".to_vec())), Some("aA=="));
        check(
            Some(AV::ArrayValue(ArrayValue {
                values: vec![
                    v(AV::StringValue("x".into())),
                    v(AV::IntValue(1)),
                    v(AV::BoolValue(false)),
                    v(AV::DoubleValue(f64::INFINITY)),
                ],
            })),
            Some(r#"["x",1,false,"Infinity"]"#),
        );
        check(
            Some(AV::KvlistValue(KeyValueList {
                values: vec![KeyValue {
                    key: "k".into(),
                    value: Some(v(AV::ArrayValue(ArrayValue { values: vec![] }))),
                    ..Default::default()
                }],
            })),
            Some(r#"{"k":[]}"#),
        );
        check(None, None);
        check(Some(AV::StringValueStrindex(3)), None);
        assert_eq!(tag_value(None), None);
    }
}
