//! The `name` query parameter of Pyroscope's `/ingest`: `<app>[.<type>]{k=v,...}`. Pure.
//!
//! Pyroscope's rules (its label-set parser and ingest adapter):
//! - the application name may hold `[A-Za-z0-9_.\-/]`; anything else fails the request;
//! - label names may hold `[A-Za-z0-9_.]`; a value ends at `,` or `}` and is trimmed;
//! - for text formats (folded), the last dotted part of the application name is the
//!   profile type (`my.app` reads as app `my` with type `app`, an unknown type), so the
//!   bridge always appends an explicit type. A pprof body carries its own types, so the
//!   name gets no suffix there.
//!
//! Label names are written with `_` for anything but `[A-Za-z0-9_]` (so
//! `deployment.environment` becomes `deployment_environment`, the way Prometheus-style
//! label names look in Grafana).

use super::folded::ServiceKey;

/// The profile type of trace-derived profiles: Pyroscope reads `wall` as wall-clock
/// time, and with `sampleRate=1000000000` takes each unit as one nanosecond.
pub const TRACE_PROFILE_TYPE: &str = "wall";

/// `service` made acceptable as a Pyroscope application name.
#[must_use]
pub fn app_name(service: &str) -> String {
    let out: String = service
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() {
        "unknown_service".to_owned()
    } else {
        out
    }
}

/// A resource attribute key as a label name.
#[must_use]
pub fn label_name(key: &str) -> String {
    key.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// A label value without the characters that end a value (`,` `}`) or open or assign
/// one (`{` `=`), trimmed, as Pyroscope would trim it.
#[must_use]
pub fn label_value(value: &str) -> String {
    value
        .chars()
        .map(|c| match c {
            ',' | '{' | '}' | '=' => '_',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect::<String>()
        .trim()
        .to_owned()
}

/// The full `name` parameter: the application (plus `.{profile_type}` when given), then
/// `service_name` and the key's labels; labels with empty values are left out.
#[must_use]
pub fn ingest_name(key: &ServiceKey, profile_type: Option<&str>) -> String {
    let mut out = app_name(&key.service);
    if let Some(t) = profile_type {
        out.push('.');
        out.push_str(t);
    }
    out.push_str("{service_name=");
    match label_value(&key.service) {
        v if v.is_empty() => out.push_str("unknown_service"),
        v => out.push_str(&v),
    }
    for (k, v) in &key.labels {
        let v = label_value(v);
        let k = label_name(k);
        if v.is_empty() || k == "service_name" {
            continue;
        }
        out.push(',');
        out.push_str(&k);
        out.push('=');
        out.push_str(&v);
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(service: &str, labels: &[(&str, &str)]) -> ServiceKey {
        ServiceKey {
            service: service.into(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
        }
    }

    #[test]
    fn names_table() {
        let check = |k: ServiceKey, t: Option<&str>, want: &str| {
            assert_eq!(ingest_name(&k, t), want, "{k:?}");
        };
        check(
            key("checkout", &[]),
            Some("wall"),
            "checkout.wall{service_name=checkout}",
        );
        // A dotted service keeps its dots; the explicit type keeps Pyroscope from
        // reading `api` as the profile type.
        check(
            key("shop.api", &[("deployment.environment", "prod")]),
            Some("wall"),
            "shop.api.wall{service_name=shop.api,deployment_environment=prod}",
        );
        check(
            key("shop.api", &[]),
            None,
            "shop.api{service_name=shop.api}",
        );
        check(
            key("unknown_service:python", &[("k8s.pod.name", " a,b}c=d ")]),
            Some("wall"),
            "unknown_service_python.wall{service_name=unknown_service:python,k8s_pod_name=a_b_c_d}",
        );
        check(
            key("s", &[("empty", " "), ("service_name", "x")]),
            Some("wall"),
            "s.wall{service_name=s}",
        );
        check(
            key("  ", &[]),
            None,
            "unknown_service{service_name=unknown_service}",
        );
    }
}
