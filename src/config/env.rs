//! `${env:NAME}` substitution in the config tree.

use super::*;

/// Replaces `${env:NAME}` references in every string of the tree.
pub(super) fn substitute_env(
    v: &mut Value,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<ConfigError>,
) {
    match v {
        Value::String(s) if s.contains("${") => match expand(s, env) {
            Ok(Expanded::Whole(text)) => {
                *v = match serde_saphyr::from_str::<Value>(&text) {
                    Ok(x @ (Value::Bool(_) | Value::Number(_) | Value::String(_))) => x,
                    _ => Value::String(text),
                }
            }
            Ok(Expanded::Text(text)) => *s = text,
            Err(m) => errors.push(err(path, m)),
        },
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                substitute_env(item, &format!("{path}[{i}]"), env, errors);
            }
        }
        Value::Object(map) => {
            for (k, item) in map.iter_mut() {
                substitute_env(item, &join(path, k), env, errors);
            }
        }
        _ => {}
    }
}

enum Expanded {
    /// The value was exactly one reference.
    Whole(String),
    Text(String),
}

fn expand(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Expanded, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    let mut refs = 0;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(t) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = t;
        } else if let Some(t) = tail.strip_prefix("${") {
            let end = t
                .find('}')
                .ok_or_else(|| format!("unclosed `${{` in `{s}`"))?;
            let reference = &t[..end];
            let spec = reference.strip_prefix("env:").ok_or_else(|| {
                format!("`${{{reference}}}`: only `${{env:NAME}}` references are supported")
            })?;
            let (var, default) = match spec.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (spec, None),
            };
            if var.is_empty() || !var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(format!(
                    "`${{{reference}}}`: `{var}` is not an environment variable name"
                ));
            }
            match (env(var), default) {
                (Some(value), _) => out.push_str(&value),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    return Err(format!(
                        "environment variable `{var}` is not set (referenced as `${{{reference}}}`)"
                    ));
                }
            }
            refs += 1;
            rest = &t[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    let whole =
        refs == 1 && s.starts_with("${") && s.ends_with('}') && s.matches("${").count() == 1;
    Ok(if whole {
        Expanded::Whole(out)
    } else {
        Expanded::Text(out)
    })
}
