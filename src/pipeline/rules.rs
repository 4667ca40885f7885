//! The routing rule language: the `match:` conditions of a route, read from the config
//! tree with a path for every problem, compiled once at load (globs and regexes
//! included), and evaluated on the data path without allocating; plus consistent
//! sampling by trace id.
//!
//! A condition is either a plain value (shorthand for `eq`) or a mapping of operators
//! that must all hold: `eq`, `ne`, `in`, `glob`, `regex`, `exists`, `gt`, `gte`, `lt`,
//! `lte`. Values compare by type and are never converted: a string matches only string
//! attributes, a number only int or double attributes (compared numerically, so `eq: 2`
//! matches the double `2.0`), a bool only bool attributes. In particular the numeric
//! operators never parse strings: `"500"` is not greater than `400`. A missing attribute
//! satisfies only `exists: false` and `ne`; `ne` is exactly "not `eq`".
//! Array, map and bytes attributes satisfy only `exists`.
//!
//! Where the router evaluates what (resource once per `ResourceSpans`, scope once per
//! `ScopeSpans`, the rest per span) is [`super::router`]'s business.

mod glob;
mod sampling;

pub use glob::Glob;
pub use sampling::{Sampler, randomness};

use std::fmt;

use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Span;
use serde_json::{Map, Value};

use crate::config::ConfigError;

/// A value of a resource, scope or span as the operators see it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Val<'a> {
    Str(&'a str),
    Int(i64),
    Double(f64),
    Bool(bool),
    /// Present, but an array, map, bytes or empty value.
    Other,
}

impl<'a> Val<'a> {
    /// Views an attribute value.
    #[must_use]
    pub fn of(v: Option<&'a AnyValue>) -> Self {
        match v.and_then(|v| v.value.as_ref()) {
            Some(any_value::Value::StringValue(s)) => Self::Str(s),
            Some(any_value::Value::IntValue(i)) => Self::Int(*i),
            Some(any_value::Value::DoubleValue(d)) => Self::Double(*d),
            Some(any_value::Value::BoolValue(b)) => Self::Bool(*b),
            _ => Self::Other,
        }
    }

    fn number(self) -> Option<f64> {
        match self {
            Self::Int(i) => Some(i as f64),
            Self::Double(d) => Some(d),
            _ => None,
        }
    }
}

/// The first attribute called `key`, if any.
#[must_use]
pub fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<Val<'a>> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| Val::of(kv.value.as_ref()))
}

/// A value written in config.
#[derive(Debug, Clone, PartialEq)]
enum Scalar {
    Str(Box<str>),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl Scalar {
    fn read(v: &Value) -> Option<Self> {
        Some(match v {
            Value::String(s) => Self::Str(s.as_str().into()),
            Value::Bool(b) => Self::Bool(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => Self::Int(i),
                None => Self::Float(n.as_f64()?),
            },
            _ => return None,
        })
    }

    #[inline]
    fn equals(&self, v: Val<'_>) -> bool {
        match (self, v) {
            (Self::Str(a), Val::Str(b)) => **a == *b,
            (Self::Int(a), Val::Int(b)) => *a == b,
            (Self::Bool(a), Val::Bool(b)) => *a == b,
            (Self::Int(_) | Self::Float(_), v) => v
                .number()
                .is_some_and(|b| self.as_val().number() == Some(b)),
            _ => false,
        }
    }

    fn as_val(&self) -> Val<'_> {
        match self {
            Self::Str(s) => Val::Str(s),
            Self::Int(i) => Val::Int(*i),
            Self::Float(f) => Val::Double(*f),
            Self::Bool(b) => Val::Bool(*b),
        }
    }
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Str(s) => write!(f, "{s:?}"),
            Self::Int(i) => write!(f, "{i}"),
            Self::Float(x) => write!(f, "{x}"),
            Self::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// One operator of a condition.
#[derive(Debug, Clone)]
enum Op {
    Eq(Scalar),
    Ne(Scalar),
    In(Box<[Scalar]>),
    Glob(Glob),
    Regex(regex::Regex),
    Exists(bool),
    Gt(f64),
    Gte(f64),
    Lt(f64),
    Lte(f64),
}

impl Op {
    #[inline]
    fn holds(&self, v: Option<Val<'_>>) -> bool {
        let Some(v) = v else {
            return matches!(self, Self::Exists(false) | Self::Ne(_));
        };
        match self {
            Self::Eq(s) => s.equals(v),
            Self::Ne(s) => !s.equals(v),
            Self::In(list) => list.iter().any(|s| s.equals(v)),
            Self::Glob(g) => matches!(v, Val::Str(s) if g.matches(s)),
            Self::Regex(r) => matches!(v, Val::Str(s) if r.is_match(s)),
            Self::Exists(want) => *want,
            Self::Gt(x) => v.number().is_some_and(|n| n > *x),
            Self::Gte(x) => v.number().is_some_and(|n| n >= *x),
            Self::Lt(x) => v.number().is_some_and(|n| n < *x),
            Self::Lte(x) => v.number().is_some_and(|n| n <= *x),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Eq(_) => "eq",
            Self::Ne(_) => "ne",
            Self::In(_) => "in",
            Self::Glob(_) => "glob",
            Self::Regex(_) => "regex",
            Self::Exists(_) => "exists",
            Self::Gt(_) => "gt",
            Self::Gte(_) => "gte",
            Self::Lt(_) => "lt",
            Self::Lte(_) => "lte",
        }
    }
}

const OPERATORS: &str = "eq, ne, in, glob, regex, exists, gt, gte, lt, lte";

/// What a condition applies to: an attribute (any type) or a name (always a string).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Attribute,
    Text,
}

/// Operators that must all hold for one value.
#[derive(Debug, Clone)]
pub struct Condition {
    ops: Box<[Op]>,
}

impl Condition {
    /// Whether the value (`None` = missing) satisfies every operator.
    #[must_use]
    #[inline]
    pub fn matches(&self, v: Option<Val<'_>>) -> bool {
        self.ops.iter().all(|op| op.holds(v))
    }

    /// Reads a condition at `path`; pushes every problem to `errors`.
    pub fn parse(
        v: &Value,
        path: &str,
        target: Target,
        errors: &mut Vec<ConfigError>,
    ) -> Option<Self> {
        let before = errors.len();
        let ops: Vec<Op> = match v {
            Value::Object(map) if map.is_empty() => {
                errors.push(err(path, format!("no operator (one of: {OPERATORS})")));
                Vec::new()
            }
            Value::Object(map) => map
                .iter()
                .filter_map(|(k, v)| read_op(k, v, &format!("{path}.{k}"), target, errors))
                .collect(),
            Value::Array(_) => {
                errors.push(err(
                    path,
                    "a condition is a value or a mapping of operators; for a list use `in: [...]`",
                ));
                Vec::new()
            }
            Value::Null => {
                errors.push(err(path, "missing condition"));
                Vec::new()
            }
            scalar => read_op("eq", scalar, path, target, errors)
                .into_iter()
                .collect(),
        };
        if errors.len() > before {
            return None;
        }
        check_satisfiable(&ops, path, errors);
        (errors.len() == before).then(|| Self { ops: ops.into() })
    }
}

fn text(v: &Value) -> Result<&str, String> {
    v.as_str().ok_or_else(|| "must be a string".to_owned())
}

/// A name (scope name or version, span name) as a value; empty counts as missing.
fn name_val(s: Option<&str>) -> Option<Val<'_>> {
    s.filter(|s| !s.is_empty()).map(Val::Str)
}

fn read_op(
    name: &str,
    v: &Value,
    path: &str,
    target: Target,
    errors: &mut Vec<ConfigError>,
) -> Option<Op> {
    let scalar = |v: &Value| -> Result<Scalar, String> {
        match Scalar::read(v) {
            Some(Scalar::Str(s)) => Ok(Scalar::Str(s)),
            Some(_) if target == Target::Text => {
                Err("must be a string (this field is always a string)".to_owned())
            }
            Some(s) => Ok(s),
            None => Err("must be a string, number or bool".to_owned()),
        }
    };
    let number = |v: &Value| -> Result<f64, String> {
        if target == Target::Text {
            return Err("numeric comparisons never hold on a name (always a string)".to_owned());
        }
        v.as_f64()
            .filter(|x| x.is_finite())
            .ok_or_else(|| "must be a number".to_owned())
    };
    let op = match name {
        "eq" => scalar(v).map(Op::Eq),
        "ne" => scalar(v).map(Op::Ne),
        "in" => match v {
            Value::Array(items) if items.is_empty() => {
                Err("must list at least one value (an empty list matches nothing)".to_owned())
            }
            Value::Array(items) => {
                let mut list = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    match scalar(item) {
                        Ok(s) => list.push(s),
                        Err(m) => {
                            errors.push(err(&format!("{path}[{i}]"), m));
                        }
                    }
                }
                if list.len() < items.len() {
                    return None;
                }
                Ok(Op::In(list.into()))
            }
            _ => Err("must be a list of values".to_owned()),
        },
        "glob" => text(v).and_then(Glob::new).map(Op::Glob),
        "regex" => text(v).and_then(|t| {
            regex::Regex::new(t).map(Op::Regex).map_err(|e| {
                // The parser's message draws a caret under the problem over several
                // lines; its last line says what the problem is.
                let text = e.to_string();
                let what = text.lines().last().unwrap_or_default();
                format!(
                    "invalid regex `{t}`: {}",
                    what.trim_start_matches("error: ")
                )
            })
        }),
        "exists" => v
            .as_bool()
            .map(Op::Exists)
            .ok_or_else(|| "must be true or false".to_owned()),
        "gt" => number(v).map(Op::Gt),
        "gte" => number(v).map(Op::Gte),
        "lt" => number(v).map(Op::Lt),
        "lte" => number(v).map(Op::Lte),
        other => Err(format!("unknown operator `{other}` (one of: {OPERATORS})")),
    };
    match op {
        Ok(op) => Some(op),
        Err(m) => {
            errors.push(err(path, m));
            None
        }
    }
}

/// Rejects conditions that no value can satisfy.
fn check_satisfiable(ops: &[Op], path: &str, errors: &mut Vec<ConfigError>) {
    let needs_value = |op: &Op| !matches!(op, Op::Exists(_) | Op::Ne(_));
    if ops.iter().any(|o| matches!(o, Op::Exists(false)))
        && let Some(o) = ops.iter().find(|o| needs_value(o))
    {
        errors.push(err(
            path,
            format!(
                "contradiction: `exists: false` and `{}` can never both hold",
                o.name()
            ),
        ));
        return;
    }
    // `eq` pins the value: every other operator must accept it.
    if let Some(Op::Eq(s)) = ops.iter().find(|o| matches!(o, Op::Eq(_))) {
        for o in ops {
            if !o.holds(Some(s.as_val())) {
                errors.push(err(
                    path,
                    format!(
                        "contradiction: `eq: {s}` does not satisfy `{}`, so nothing matches",
                        o.name()
                    ),
                ));
                return;
            }
        }
    }
    // Numeric bounds must leave room.
    let lower = ops
        .iter()
        .filter_map(|o| match o {
            Op::Gt(x) => Some((*x, false, "gt")),
            Op::Gte(x) => Some((*x, true, "gte")),
            _ => None,
        })
        .max_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)));
    let upper = ops
        .iter()
        .filter_map(|o| match o {
            Op::Lt(x) => Some((*x, false, "lt")),
            Op::Lte(x) => Some((*x, true, "lte")),
            _ => None,
        })
        .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    if let (Some((lo, lo_incl, lo_op)), Some((hi, hi_incl, hi_op))) = (lower, upper)
        && (lo > hi || (lo == hi && !(lo_incl && hi_incl)))
    {
        errors.push(err(
            path,
            format!(
                "contradiction: `{lo_op}: {lo}` and `{hi_op}: {hi}` leave no number between them"
            ),
        ));
    }
}

/// Span kinds by their OTLP number (`SpanKind`), as written in config.
const KINDS: [&str; 6] = [
    "unspecified",
    "internal",
    "server",
    "client",
    "producer",
    "consumer",
];
/// Status codes by their OTLP number (`StatusCode`), as written in config.
const STATUSES: [&str; 3] = ["unset", "ok", "error"];

/// A set of small enum values (span kinds or status codes) as a bit mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeSet(u8);

impl CodeSet {
    /// Whether the OTLP enum number `code` is in the set.
    #[must_use]
    pub fn contains(self, code: i32) -> bool {
        (0..8).contains(&code) && self.0 & (1 << code) != 0
    }

    fn parse(v: &Value, names: &[&str], path: &str, errors: &mut Vec<ConfigError>) -> Option<Self> {
        let items: Vec<&Value> = match v {
            Value::Array(items) => items.iter().collect(),
            Value::String(_) => vec![v],
            _ => {
                errors.push(err(
                    path,
                    format!("must be a list of: {}", names.join(", ")),
                ));
                return None;
            }
        };
        if items.is_empty() {
            errors.push(err(
                path,
                "an empty list matches nothing (remove the key to match all)",
            ));
            return None;
        }
        let mut mask = 0u8;
        let before = errors.len();
        for (i, item) in items.iter().enumerate() {
            match item
                .as_str()
                .and_then(|s| names.iter().position(|n| n.eq_ignore_ascii_case(s)))
            {
                Some(code) => mask |= 1 << code,
                None => errors.push(err(
                    &format!("{path}[{i}]"),
                    format!("unknown value {item} (one of: {})", names.join(", ")),
                )),
            }
        }
        (errors.len() == before).then_some(Self(mask))
    }
}

/// `match:` of one route, compiled. Every condition present must hold (AND).
#[derive(Debug, Clone, Default)]
pub struct Match {
    /// Resource attribute conditions.
    pub resource: Vec<(Box<str>, Condition)>,
    pub scope_name: Option<Condition>,
    pub scope_version: Option<Condition>,
    /// Span attribute conditions.
    pub span: Vec<(Box<str>, Condition)>,
    pub span_name: Option<Condition>,
    pub kinds: Option<CodeSet>,
    pub statuses: Option<CodeSet>,
}

const MATCH_KEYS: &str = "resource, scope, span, span_name, kind, status";

impl Match {
    /// Reads a `match:` mapping at `path`; pushes every problem to `errors`.
    pub fn parse(v: &Value, path: &str, errors: &mut Vec<ConfigError>) -> Option<Self> {
        let before = errors.len();
        let mut m = Self::default();
        let Value::Object(map) = v else {
            if !v.is_null() {
                errors.push(err(
                    path,
                    format!("must be a mapping with keys among: {MATCH_KEYS}"),
                ));
            }
            return v.is_null().then_some(m);
        };
        for (key, value) in map {
            let here = format!("{path}.{key}");
            match key.as_str() {
                "resource" => m.resource = attributes(value, &here, errors),
                "span" => m.span = attributes(value, &here, errors),
                "scope" => {
                    for (k, c) in fields(value, &here, &["name", "version"], errors) {
                        if k == "name" {
                            m.scope_name = Some(c);
                        } else {
                            m.scope_version = Some(c);
                        }
                    }
                }
                "span_name" => m.span_name = Condition::parse(value, &here, Target::Text, errors),
                "kind" => m.kinds = CodeSet::parse(value, &KINDS, &here, errors),
                "status" => m.statuses = CodeSet::parse(value, &STATUSES, &here, errors),
                other => errors.push(err(
                    &here,
                    format!("unknown key `{other}` (one of: {MATCH_KEYS})"),
                )),
            }
        }
        (errors.len() == before).then_some(m)
    }

    /// True when the match has no condition at all: it takes every span.
    #[must_use]
    pub fn is_all(&self) -> bool {
        self.resource.is_empty()
            && self.scope_name.is_none()
            && self.scope_version.is_none()
            && !self.is_span_level()
    }

    /// True when some condition looks at the span itself (not only its resource/scope).
    #[must_use]
    pub fn is_span_level(&self) -> bool {
        !self.span.is_empty()
            || self.span_name.is_some()
            || self.kinds.is_some()
            || self.statuses.is_some()
    }

    /// The resource conditions.
    #[must_use]
    pub fn resource_matches(&self, resource: Option<&Resource>) -> bool {
        let attrs = resource.map_or(&[][..], |r| &r.attributes[..]);
        self.resource
            .iter()
            .all(|(k, c)| c.matches(attribute(attrs, k)))
    }

    /// The scope conditions. An empty scope name or version counts as missing.
    #[must_use]
    pub fn scope_matches(&self, scope: Option<&InstrumentationScope>) -> bool {
        self.scope_name
            .as_ref()
            .is_none_or(|c| c.matches(name_val(scope.map(|s| s.name.as_str()))))
            && self
                .scope_version
                .as_ref()
                .is_none_or(|c| c.matches(name_val(scope.map(|s| s.version.as_str()))))
    }

    /// The span conditions, looking attributes up directly (the router instead resolves
    /// them once per span for all routes). An empty span name counts as missing.
    #[must_use]
    pub fn span_matches(&self, span: &Span) -> bool {
        self.kinds.is_none_or(|k| k.contains(span.kind))
            && self
                .statuses
                .is_none_or(|s| s.contains(span.status.as_ref().map_or(0, |s| s.code)))
            && self.span_name.as_ref().is_none_or(|c| {
                c.matches(
                    Some(span.name.as_str())
                        .filter(|n| !n.is_empty())
                        .map(Val::Str),
                )
            })
            && self
                .span
                .iter()
                .all(|(k, c)| c.matches(attribute(&span.attributes, k)))
    }
}

/// `{ <attribute key>: <condition> }`.
fn attributes(v: &Value, path: &str, errors: &mut Vec<ConfigError>) -> Vec<(Box<str>, Condition)> {
    let Value::Object(map) = v else {
        errors.push(err(path, "must be a mapping of attribute key to condition"));
        return Vec::new();
    };
    map.iter()
        .filter_map(|(k, c)| {
            let here = format!("{path}[{k:?}]");
            if k.is_empty() {
                errors.push(err(&here, "attribute key must not be empty"));
                return None;
            }
            Condition::parse(c, &here, Target::Attribute, errors).map(|c| (k.as_str().into(), c))
        })
        .collect()
}

/// `{ <field>: <condition> }` over a fixed set of string fields.
fn fields(
    v: &Value,
    path: &str,
    allowed: &[&str],
    errors: &mut Vec<ConfigError>,
) -> Vec<(String, Condition)> {
    let empty = Map::new();
    let map = match v {
        Value::Object(map) => map,
        _ => {
            errors.push(err(
                path,
                format!("must be a mapping with keys among: {}", allowed.join(", ")),
            ));
            &empty
        }
    };
    map.iter()
        .filter_map(|(k, c)| {
            let here = format!("{path}.{k}");
            if !allowed.contains(&k.as_str()) {
                errors.push(err(
                    &here,
                    format!("unknown key `{k}` (one of: {})", allowed.join(", ")),
                ));
                return None;
            }
            Condition::parse(c, &here, Target::Text, errors).map(|c| (k.clone(), c))
        })
        .collect()
}

fn err(path: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        path: path.to_owned(),
        message: message.into(),
    }
}

#[cfg(test)]
mod tests;
