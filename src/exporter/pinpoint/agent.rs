//! Virtual agents: the Pinpoint identity of one OTel service instance, computed from its
//! resource attributes with the same chain as Pinpoint 3.1's own OTLP ingest, so that one
//! service keeps one identity whichever path its spans take. Pure.

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use sha2::{Digest, Sha256};

use super::codes;
use crate::pipeline::router::RouteOverrides;

/// Longest agent id and application name every collector version accepts.
pub const MAX_ID_LEN: usize = 24;

/// Who a virtual agent is, and what its AgentInfo says.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AgentIdentity {
    pub application_name: String,
    pub agent_id: String,
    /// The untruncated name the agent id came from (`agentname` header, ≤ 255).
    pub agent_name: String,
    /// The application's service type (`servicetype` header, AgentInfo, PSpan).
    pub service_type: i32,
    pub language: String,
    pub hostname: String,
    pub ip: String,
    pub pid: i32,
    pub agent_version: String,
    pub vm_version: String,
    pub container: bool,
}

/// Reads a string-ish attribute (strings, ints, and the first element of an array).
pub fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
}

/// The attribute as text, if it is a non-empty string, an int or a bool.
pub fn attr_text(attrs: &[KeyValue], key: &str) -> Option<String> {
    match attr(attrs, key)?.value.as_ref()? {
        Value::StringValue(s) if !s.is_empty() => Some(s.clone()),
        Value::IntValue(i) => Some(i.to_string()),
        Value::BoolValue(b) => Some(b.to_string()),
        Value::ArrayValue(a) => a.values.first().and_then(|v| match v.value.as_ref()? {
            Value::StringValue(s) if !s.is_empty() => Some(s.clone()),
            _ => None,
        }),
        _ => None,
    }
}

/// Computes the identity of the agent that a resource's spans belong to.
///
/// - applicationName: `pinpoint.applicationName`, else `service.name`, else `unknown_service`;
/// - agentId: `pinpoint.agentId`, else `service.instance.id`, else `k8s.pod.uid`, else
///   `container.id` (first 16 bytes of SHA-256, base64url), else `host.name`, else the
///   application name; a UUID becomes its 16 bytes in base64url (22 characters);
/// - both fitted to [`MAX_ID_LEN`] by [`fit_id`].
#[must_use]
pub fn identify(resource: Option<&Resource>) -> AgentIdentity {
    let empty = Vec::new();
    let a = resource.map_or(&empty, |r| &r.attributes);
    let text = |k: &str| attr_text(a, k);
    let app = text("pinpoint.applicationName")
        .or_else(|| text("service.name"))
        .unwrap_or_else(|| "unknown_service".to_owned());
    let raw_agent = text("pinpoint.agentId")
        .or_else(|| text("service.instance.id").map(|s| uuid_to_base64url(&s).unwrap_or(s)))
        .or_else(|| text("k8s.pod.uid").map(|s| uuid_to_base64url(&s).unwrap_or(s)))
        .or_else(|| text("container.id").map(|s| base64url(&Sha256::digest(s.as_bytes())[..16])))
        .or_else(|| text("host.name"))
        .unwrap_or_else(|| app.clone());
    let language = text("telemetry.sdk.language").unwrap_or_default();
    let service_type = application_type(&language, text("webengine.name").as_deref());
    let runtime = [
        text("process.runtime.name"),
        text("process.runtime.version"),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" ");
    AgentIdentity {
        application_name: fit_id(&app),
        agent_id: fit_id(&raw_agent),
        agent_name: raw_agent.chars().take(255).collect(),
        service_type,
        language,
        hostname: text("host.name").unwrap_or_default(),
        ip: text("host.ip").unwrap_or_default(),
        pid: text("process.pid")
            .and_then(|p| p.parse().ok())
            .unwrap_or(0),
        agent_version: text("telemetry.sdk.version").map_or_else(
            || env!("CARGO_PKG_VERSION").to_owned(),
            |v| v.chars().take(64).collect(),
        ),
        vm_version: runtime,
        container: text("container.id").is_some() || text("k8s.pod.uid").is_some(),
    }
}

/// The identity with a route's Pinpoint overrides applied (application name fitted
/// like any other).
#[must_use]
pub fn identify_with(
    resource: Option<&Resource>,
    overrides: Option<&RouteOverrides>,
) -> AgentIdentity {
    let mut id = identify(resource);
    if let Some(o) = overrides {
        if let Some(name) = &o.application_name {
            id.application_name = fit_id(name);
        }
        if let Some(t) = o.service_type {
            id.service_type = i32::from(t);
        }
    }
    id
}

/// The application service type for an SDK language.
#[must_use]
pub fn application_type(language: &str, webengine: Option<&str>) -> i32 {
    match language {
        "python" => codes::PYTHON,
        "go" => codes::GO,
        "nodejs" => codes::NODE,
        "php" => codes::PHP,
        "cpp" => codes::C_CPP,
        "java" if webengine.is_some_and(|w| w.eq_ignore_ascii_case("tomcat")) => codes::TOMCAT,
        _ => codes::STAND_ALONE,
    }
}

fn valid_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// Fits a name to Pinpoint's id pattern `[a-zA-Z0-9._-]{1,24}`, deterministically.
///
/// A valid name is kept. Otherwise invalid characters become `_`, and because that (or
/// truncation) could make two names equal, the result is the first 15 characters, a `-`,
/// and 8 base64url characters of the SHA-256 of the original name: two different names
/// collide only if their hashes' first 48 bits do.
#[must_use]
pub fn fit_id(name: &str) -> String {
    if !name.is_empty() && name.len() <= MAX_ID_LEN && name.chars().all(valid_char) {
        return name.to_owned();
    }
    let cleaned: String = name
        .chars()
        .map(|c| if valid_char(c) { c } else { '_' })
        .take(15)
        .collect();
    let hash = base64url(&Sha256::digest(name.as_bytes())[..6]);
    format!("{cleaned}-{hash}")
}

/// Unpadded base64url (RFC 4648 §5).
#[must_use]
pub fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// A UUID in its canonical 36-character form becomes 22 base64url characters.
#[must_use]
pub fn uuid_to_base64url(s: &str) -> Option<String> {
    let b = s.as_bytes();
    if b.len() != 36 || [8, 13, 18, 23].iter().any(|&i| b[i] != b'-') {
        return None;
    }
    let hex: Vec<u8> = b.iter().copied().filter(|c| *c != b'-').collect();
    let mut bytes = [0u8; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).ok()?;
        *bytes.get_mut(i)? = u8::from_str_radix(s, 16).ok()?;
    }
    Some(base64url(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(k: &str, v: &str) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue {
                value: Some(Value::StringValue(v.into())),
            }),
            ..Default::default()
        }
    }

    fn res(pairs: &[(&str, &str)]) -> Resource {
        Resource {
            attributes: pairs.iter().map(|(k, v)| kv(k, v)).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn identity_chain() {
        let uuid = "3f1c2a4e-8b7d-4c6e-9f10-112233445566";
        let check = |pairs: &[(&str, &str)], app: &str, agent: &str| {
            let id = identify(Some(&res(pairs)));
            assert_eq!(
                (id.application_name.as_str(), id.agent_id.as_str()),
                (app, agent),
                "{pairs:?}"
            );
        };
        check(
            &[
                ("service.name", "checkout"),
                ("pinpoint.applicationName", "shop"),
                ("pinpoint.agentId", "a1"),
            ],
            "shop",
            "a1",
        );
        check(
            &[("service.name", "checkout"), ("service.instance.id", uuid)],
            "checkout",
            "PxwqTot9TG6fEBEiM0RVZg",
        );
        check(
            &[("service.name", "c"), ("service.instance.id", "pod-7")],
            "c",
            "pod-7",
        );
        check(
            &[
                ("service.name", "c"),
                ("k8s.pod.uid", uuid),
                ("host.name", "h"),
            ],
            "c",
            "PxwqTot9TG6fEBEiM0RVZg",
        );
        check(
            &[("service.name", "c"), ("host.name", "web-1")],
            "c",
            "web-1",
        );
        check(&[], "unknown_service", "unknown_service");
        let container = identify(Some(&res(&[
            ("service.name", "c"),
            ("container.id", "abc"),
        ])));
        assert_eq!(container.agent_id.len(), 22);
        assert!(container.container);
    }

    #[test]
    fn base64url_known_values() {
        assert_eq!(base64url(b""), "");
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(b"foo"), "Zm9v");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
        assert_eq!(uuid_to_base64url("not-a-uuid"), None);
        assert_eq!(
            uuid_to_base64url("3f1c2a4e-8b7d-4c6e-9f10-11223344556z"),
            None
        );
    }

    #[test]
    fn fitting_is_valid_deterministic_and_collision_safe() {
        let names = [
            "ok-name.v1",
            "a-very-long-service-name-that-is-too-long",
            "a-very-long-service-name-that-is-too-lonG",
            "has space",
            "has_space",
            "ünïcödé",
            "",
        ];
        let fitted: Vec<String> = names.iter().map(|n| fit_id(n)).collect();
        for (n, f) in names.iter().zip(&fitted) {
            assert!(
                !f.is_empty() && f.len() <= MAX_ID_LEN && f.chars().all(valid_char),
                "{n} -> {f}"
            );
            assert_eq!(&fit_id(n), f, "deterministic");
        }
        assert_eq!(fitted[0], "ok-name.v1");
        assert_eq!(fitted[4], "has_space");
        let unique: std::collections::HashSet<_> = fitted.iter().collect();
        assert_eq!(unique.len(), names.len(), "{fitted:?}");
    }

    #[test]
    fn route_overrides_win() {
        let r = res(&[
            ("service.name", "checkout"),
            ("telemetry.sdk.language", "python"),
        ]);
        let o = RouteOverrides {
            service_type: Some(1010),
            application_name: Some("shop-api".into()),
        };
        let id = identify_with(Some(&r), Some(&o));
        assert_eq!(
            (id.application_name.as_str(), id.service_type),
            ("shop-api", 1010)
        );
        assert_eq!(identify_with(Some(&r), None).service_type, 1700);
    }

    #[test]
    fn service_types_by_language() {
        for (lang, web, want) in [
            ("python", None, 1700),
            ("go", None, 1800),
            ("nodejs", None, 1400),
            ("php", None, 1500),
            ("cpp", None, 1300),
            ("java", None, 1000),
            ("java", Some("Tomcat"), 1010),
            ("rust", None, 1000),
        ] {
            assert_eq!(application_type(lang, web), want, "{lang}");
        }
    }
}
