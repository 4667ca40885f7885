//! `routes:` and `default_route:`: reading, checking and compiling routes' actions.

use super::exporters::valid_name;
use super::*;

/// `routes:` and `default_route:`: which exporters get which spans.
#[derive(Debug, Clone, Default)]
pub struct RoutingConfig {
    /// Tried in order for every span; the first whose `match:` holds decides.
    pub routes: Vec<RouteConfig>,
    /// For spans no route takes; `None` sends them to every exporter.
    pub default: Option<RouteAction>,
}

/// `routes[i]:`.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// Unique; labels the route's metrics.
    pub name: String,
    /// `match:` (absent = every span), compiled.
    pub matcher: Match,
    pub action: RouteAction,
}

/// What a route (or the default route) does with the spans it takes.
#[derive(Debug, Clone)]
pub struct RouteAction {
    pub destination: Destination,
    /// `sample:`: the fraction of traces kept (by trace id) for all of the route's
    /// exporters; the spans of the other traces are dropped.
    pub sample: Option<f64>,
    /// `pinpoint:`: service type and application name for the Pinpoint exporter.
    pub pinpoint: Option<RouteOverrides>,
}

/// `to: [...]` or `drop: true`.
#[derive(Debug, Clone, PartialEq)]
pub enum Destination {
    Exporters(Vec<ExporterRef>),
    Drop,
}

/// One entry of `to:`: an exporter name, or `{ exporter: NAME, sample: FRACTION }`.
#[derive(Debug, Clone, PartialEq)]
pub struct ExporterRef {
    pub exporter: String,
    /// This exporter gets only this fraction of the route's traces (by trace id), for
    /// instance a debug copy; the route's other exporters still get every span.
    pub sample: Option<f64>,
}

impl ExporterRef {
    /// An entry without its own sample.
    #[must_use]
    pub fn all(exporter: &str) -> Self {
        Self {
            exporter: exporter.to_owned(),
            sample: None,
        }
    }
}

const ROUTE_KEYS: &[&str] = &["name", "match", "to", "drop", "sample", "pinpoint"];
const ACTION_KEYS: &[&str] = &["to", "drop", "sample", "pinpoint"];

/// Reads `routes:` and `default_route:`, rejecting what cannot work as written:
/// unknown exporters, duplicate names, routes no span can reach, and actions that
/// contradict each other.
pub(super) fn routing(
    routes: Option<Value>,
    default: Option<Value>,
    exporters: &[String],
    errors: &mut Vec<ConfigError>,
) -> RoutingConfig {
    let items = match routes {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items,
        Some(_) => {
            errors.push(err("routes", "must be a list of routes"));
            Vec::new()
        }
    };
    let mut out = RoutingConfig::default();
    let mut names: Vec<(String, usize)> = Vec::new();
    // The first route that takes every span, and the `match:` of every route so far.
    let mut catch_all: Option<(usize, String)> = None;
    let mut earlier: Vec<Value> = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let path = format!("routes[{i}]");
        let Value::Object(map) = item else {
            errors.push(err(
                &path,
                "must be a mapping with `name`, an optional `match`, and `to` or `drop: true`",
            ));
            continue;
        };
        unknown_keys(&map, &path, ROUTE_KEYS, errors);
        let name = route_name(map.get("name"), &path, &names, errors);
        if let Some(n) = &name {
            names.push((n.clone(), i));
        }
        let written = match map.get("match") {
            None | Some(Value::Null) => Value::Object(Map::new()),
            Some(v) => v.clone(),
        };
        let matcher = Match::parse(&written, &join(&path, "match"), errors);
        if let Some((j, n)) = &catch_all {
            errors.push(err(
                &path,
                format!("unreachable: routes[{j}] (`{n}`) matches every span before it"),
            ));
        } else if let Some(j) = earlier.iter().position(|m| *m == written) {
            errors.push(err(
                &join(&path, "match"),
                format!(
                    "unreachable: the same match as routes[{j}], which takes these spans first"
                ),
            ));
        }
        earlier.push(written);
        if catch_all.is_none() && matcher.as_ref().is_some_and(Match::is_all) {
            catch_all = Some((i, name.clone().unwrap_or_default()));
        }
        let action = route_action(&map, &path, exporters, errors);
        if let (Some(name), Some(matcher), Some(action)) = (name, matcher, action) {
            out.routes.push(RouteConfig {
                name,
                matcher,
                action,
            });
        }
    }
    if let Some(v) = default {
        if let Some((j, n)) = &catch_all {
            errors.push(err(
                "default_route",
                format!("unreachable: routes[{j}] (`{n}`) matches every span"),
            ));
        }
        match v {
            Value::Object(map) => {
                unknown_keys(&map, "default_route", ACTION_KEYS, errors);
                out.default = route_action(&map, "default_route", exporters, errors);
            }
            _ => errors.push(err(
                "default_route",
                "must be a mapping with `to: [exporter, ...]` or `drop: true`",
            )),
        }
    }
    out
}

fn unknown_keys(
    map: &Map<String, Value>,
    path: &str,
    allowed: &[&str],
    errors: &mut Vec<ConfigError>,
) {
    for k in map.keys().filter(|k| !allowed.contains(&k.as_str())) {
        errors.push(err(
            &join(path, k),
            format!("unknown key (one of: {})", allowed.join(", ")),
        ));
    }
}

fn route_name(
    v: Option<&Value>,
    path: &str,
    taken: &[(String, usize)],
    errors: &mut Vec<ConfigError>,
) -> Option<String> {
    let path = join(path, "name");
    let message = match v {
        None => "missing: every route needs a unique name (it labels the route's metrics)".into(),
        Some(Value::String(n)) if !valid_name(n) => "route names use [a-zA-Z0-9_-] only".into(),
        Some(Value::String(n)) if n == DEFAULT_ROUTE => {
            format!("`{DEFAULT_ROUTE}` is reserved for default_route")
        }
        Some(Value::String(n)) => match taken.iter().find(|(t, _)| t == n) {
            Some((_, j)) => format!("duplicate route name `{n}` (also routes[{j}])"),
            None => return Some(n.clone()),
        },
        Some(_) => "must be a string".into(),
    };
    errors.push(err(&path, message));
    None
}

/// `to` / `drop`, `sample` and `pinpoint` of a route or of `default_route`.
fn route_action(
    map: &Map<String, Value>,
    path: &str,
    exporters: &[String],
    errors: &mut Vec<ConfigError>,
) -> Option<RouteAction> {
    let before = errors.len();
    let drop = match map.get("drop") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            errors.push(err(&join(path, "drop"), "must be true or false"));
            false
        }
    };
    let to = map
        .get("to")
        .map(|v| exporter_list(v, &join(path, "to"), exporters, errors));
    let destination = match (to, drop) {
        (Some(_), true) => {
            errors.push(err(
                &join(path, "drop"),
                "contradiction: `drop: true` with `to:` (a route either sends or drops)",
            ));
            None
        }
        (Some(names), false) => Some(Destination::Exporters(names)),
        (None, true) => Some(Destination::Drop),
        (None, false) => {
            errors.push(err(path, "needs `to: [exporter, ...]` or `drop: true`"));
            None
        }
    };
    let sample = match map.get("sample") {
        None => None,
        Some(v) => match fraction(v) {
            Some(x) => {
                if drop {
                    errors.push(err(
                        &join(path, "sample"),
                        "contradiction: sampling on a route that drops",
                    ));
                }
                Some(x)
            }
            _ => {
                errors.push(err(
                    &join(path, "sample"),
                    "must be a number in (0, 1]: the fraction of traces kept",
                ));
                None
            }
        },
    };
    let pinpoint = map.get("pinpoint").and_then(|v| {
        let here = join(path, "pinpoint");
        if drop {
            errors.push(err(
                &here,
                "contradiction: Pinpoint settings on a route that drops",
            ));
        }
        pinpoint_overrides(v, &here, errors)
    });
    (errors.len() == before).then_some(RouteAction {
        destination: destination?,
        sample,
        pinpoint,
    })
}

/// How many entries of one `to:` may carry their own `sample` (each doubles the
/// destinations the route can pick from).
pub const MAX_SAMPLED_EXPORTERS: usize = 4;

fn exporter_list(
    v: &Value,
    path: &str,
    exporters: &[String],
    errors: &mut Vec<ConfigError>,
) -> Vec<ExporterRef> {
    let items = match v {
        Value::Array(items) => items.as_slice(),
        Value::String(_) => std::slice::from_ref(v),
        _ => {
            errors.push(err(path, "must be a list of exporter names"));
            return Vec::new();
        }
    };
    if items.is_empty() {
        errors.push(err(
            path,
            "must name at least one exporter (to drop spans, write `drop: true`)",
        ));
    }
    let mut refs: Vec<ExporterRef> = Vec::with_capacity(items.len());
    for (j, item) in items.iter().enumerate() {
        let here = format!("{path}[{j}]");
        let (name, name_path, sample) = match item {
            Value::String(n) => (n.as_str(), here.clone(), None),
            Value::Object(map) => {
                unknown_keys(map, &here, &["exporter", "sample"], errors);
                let sample = map.get("sample").and_then(|v| {
                    let x = fraction(v);
                    if x.is_none() {
                        errors.push(err(
                            &join(&here, "sample"),
                            "must be a number in (0, 1]: the fraction of traces this exporter gets",
                        ));
                    }
                    x
                });
                match map.get("exporter").and_then(Value::as_str) {
                    Some(n) => (n, join(&here, "exporter"), sample),
                    None => {
                        errors.push(err(
                            &join(&here, "exporter"),
                            "missing: the exporter's name",
                        ));
                        continue;
                    }
                }
            }
            _ => {
                errors.push(err(
                    &here,
                    "must be an exporter name or { exporter: NAME, sample: FRACTION }",
                ));
                continue;
            }
        };
        if !exporters.iter().any(|e| e == name) {
            errors.push(err(
                &name_path,
                format!(
                    "unknown exporter `{name}` (exporters: {})",
                    exporters.join(", ")
                ),
            ));
        } else if refs.iter().any(|r| r.exporter == name) {
            errors.push(err(&name_path, format!("`{name}` is listed twice")));
        } else {
            refs.push(ExporterRef {
                exporter: name.to_owned(),
                sample,
            });
        }
    }
    if refs.iter().filter(|r| r.sample.is_some()).count() > MAX_SAMPLED_EXPORTERS {
        errors.push(err(
            path,
            format!(
                "at most {MAX_SAMPLED_EXPORTERS} exporters of one route may have their own sample"
            ),
        ));
    }
    refs
}

/// A sampling ratio: a number in (0, 1].
fn fraction(v: &Value) -> Option<f64> {
    v.as_f64().filter(|x| *x > 0.0 && *x <= 1.0)
}

/// The longest application name every Pinpoint collector accepts (later versions take
/// more), and the characters Pinpoint allows in ids.
const PINPOINT_APP_NAME_MAX: usize = 24;

fn pinpoint_overrides(
    v: &Value,
    path: &str,
    errors: &mut Vec<ConfigError>,
) -> Option<RouteOverrides> {
    let Value::Object(map) = v else {
        errors.push(err(
            path,
            "must be a mapping with service_type and/or application_name",
        ));
        return None;
    };
    let before = errors.len();
    unknown_keys(map, path, &["service_type", "application_name"], errors);
    if map.is_empty() {
        errors.push(err(path, "set service_type and/or application_name"));
    }
    let service_type = map.get("service_type").and_then(|v| {
        let t = v
            .as_i64()
            .and_then(|n| i16::try_from(n).ok())
            .filter(|n| *n > 0);
        if t.is_none() {
            errors.push(err(
                &join(path, "service_type"),
                "must be a Pinpoint service type code, 1 to 32767",
            ));
        }
        t
    });
    let application_name = map.get("application_name").and_then(|v| {
        let name = v.as_str().filter(|n| {
            (1..=PINPOINT_APP_NAME_MAX).contains(&n.len())
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        });
        if name.is_none() {
            errors.push(err(
                &join(path, "application_name"),
                format!(
                    "must be 1 to {PINPOINT_APP_NAME_MAX} characters of [a-zA-Z0-9._-] (what Pinpoint accepts)"
                ),
            ));
        }
        name.map(str::to_owned)
    });
    (errors.len() == before).then_some(RouteOverrides {
        service_type,
        application_name,
    })
}
