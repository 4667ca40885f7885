//! The `proxy:` section of the gateway config: listeners, the service's Pinpoint
//! identity, limits and the segment memory. Every key has a documented default except
//! the listeners' addresses and `application_name`.

use std::time::Duration;

use serde::Deserialize;

use crate::config::{de_duration, parse_bytes};
use crate::ids::pinpoint::validate_app_name;

/// `proxy:`. Absent means no proxy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// Pinpoint application name of the service this sidecar fronts: sent as
    /// `Pinpoint-pAppName` and in `pp` on its outbound calls. Must equal the name the
    /// bridge gives the service's spans (its `service.name`, fitted to Pinpoint's pattern).
    pub application_name: String,
    /// Pinpoint service type code of that application. Default 1700 (Python); the
    /// bridge uses 1400 for Node.js, 1800 for Go, 1000 for other SDKs.
    #[serde(default = "default_service_type")]
    pub service_type: i32,
    /// In front of the service: requests from callers.
    #[serde(default)]
    pub ingress: Option<ListenerConfig>,
    /// For the service's outbound calls.
    #[serde(default)]
    pub egress: Option<ListenerConfig>,
    /// What to do with trace headers that cannot be read: `forward` them unchanged
    /// (default) or `drop` them. The request is forwarded either way.
    #[serde(default)]
    pub bad_headers: BadHeaders,
    /// Ingress only: start a trace context (a `traceparent` and a `ppb` entry that marks
    /// the service's entry span as a root) for a request that carries none, so that the
    /// egress knows the service's segment. Default true.
    #[serde(default = "yes")]
    pub start_context: bool,
    /// Whether a started context is sampled. Default true.
    #[serde(default = "yes")]
    pub start_sampled: bool,
    /// Largest request head (request line and headers) accepted, HTTP/1 and HTTP/2.
    /// Default 64KiB; at least 8KiB.
    #[serde(default = "default_max_header_bytes", deserialize_with = "de_bytes")]
    pub max_header_bytes: usize,
    /// Open client connections per listener at most; more wait to be accepted.
    /// Default 1024.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Longest wait for the upstream's response headers (the body then streams without a
    /// limit). Default 30s.
    #[serde(default = "default_request_timeout", deserialize_with = "de_duration")]
    pub request_timeout: Duration,
    /// Longest wait to connect to the upstream. Default 5s.
    #[serde(default = "default_connect_timeout", deserialize_with = "de_duration")]
    pub connect_timeout: Duration,
    /// Idle upstream connections are closed after this. Default 90s.
    #[serde(default = "default_idle_timeout", deserialize_with = "de_duration")]
    pub idle_timeout: Duration,
    /// The memory of the service's current segment per trace (egress `pSpanID`).
    #[serde(default)]
    pub segments: SegmentsConfig,
}

/// `proxy.ingress` / `proxy.egress`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// `host:port` to listen on.
    pub listen: String,
    /// `host:port` every request is sent to. Required for the ingress (the service).
    /// For the egress, absent means forward-proxy mode: the target is the request's
    /// absolute URI (`HTTP_PROXY` style) or its `Host` header.
    #[serde(default)]
    pub upstream: Option<String>,
}

/// `proxy.bad_headers`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BadHeaders {
    /// Forward the request with its headers unchanged.
    #[default]
    Forward,
    /// Remove the trace-context headers that cannot be read, then forward.
    Drop,
}

/// `proxy.segments`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SegmentsConfig {
    /// Traces remembered at most. Default 100000.
    pub max_traces: u64,
    /// A trace is forgotten this long after its last ingress request. Default 5m.
    #[serde(deserialize_with = "de_duration")]
    pub ttl: Duration,
}

impl Default for SegmentsConfig {
    fn default() -> Self {
        Self {
            max_traces: 100_000,
            ttl: Duration::from_secs(300),
        }
    }
}

fn de_bytes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumOrText {
        Num(usize),
        Text(String),
    }
    match NumOrText::deserialize(d)? {
        NumOrText::Num(n) => Ok(n),
        NumOrText::Text(t) => parse_bytes(&t).map_err(serde::de::Error::custom),
    }
}

fn yes() -> bool {
    true
}
fn default_service_type() -> i32 {
    1700
}
fn default_max_header_bytes() -> usize {
    64 * 1024
}
fn default_max_connections() -> usize {
    1024
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_idle_timeout() -> Duration {
    Duration::from_secs(90)
}

fn is_host_port(s: &str) -> bool {
    s.rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
}

impl ProxyConfig {
    /// Checks the values; returns `(path below proxy, message)` per problem.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        let mut push = |path: &str, msg: String| errors.push((path.to_owned(), msg));
        if let Err(e) = validate_app_name(&self.application_name) {
            push("application_name", e.to_string());
        }
        if self.ingress.is_none() && self.egress.is_none() {
            push(
                "",
                "configure at least one of ingress and egress".to_owned(),
            );
        }
        for (name, l) in [("ingress", &self.ingress), ("egress", &self.egress)] {
            let Some(l) = l else { continue };
            if !is_host_port(&l.listen) {
                push(
                    &format!("{name}.listen"),
                    format!("`{}` is not host:port", l.listen),
                );
            }
            match &l.upstream {
                Some(u) if !is_host_port(u) => {
                    push(
                        &format!("{name}.upstream"),
                        format!("`{u}` is not host:port"),
                    );
                }
                None if name == "ingress" => push(
                    "ingress.upstream",
                    "missing: the ingress needs the service's host:port".to_owned(),
                ),
                _ => {}
            }
        }
        if !(8 * 1024..=(16 << 20)).contains(&self.max_header_bytes) {
            push(
                "max_header_bytes",
                "must be between 8KiB and 16MiB".to_owned(),
            );
        }
        if self.max_connections == 0 {
            push("max_connections", "must be at least 1".to_owned());
        }
        for (key, d) in [
            ("request_timeout", self.request_timeout),
            ("connect_timeout", self.connect_timeout),
            ("idle_timeout", self.idle_timeout),
            ("segments.ttl", self.segments.ttl),
        ] {
            if d.is_zero() {
                push(key, "must be greater than 0".to_owned());
            }
        }
        if self.segments.max_traces == 0 {
            push("segments.max_traces", "must be at least 1".to_owned());
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<ProxyConfig, String> {
        let v: serde_json::Value = serde_saphyr::from_str(yaml).map_err(|e| e.to_string())?;
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_validation() {
        let c = parse(
            "application_name: orders\ningress: { listen: 127.0.0.1:0, upstream: 127.0.0.1:8080 }\n",
        )
        .expect("valid");
        assert_eq!(c.service_type, 1700);
        assert_eq!(c.bad_headers, BadHeaders::Forward);
        assert!(c.start_context && c.start_sampled);
        assert_eq!(c.max_header_bytes, 65536);
        assert_eq!(c.segments.max_traces, 100_000);
        assert!(c.validate().is_empty());

        let bad = parse(
            "application_name: 'a b'\ningress: { listen: nowhere }\nmax_connections: 0\nrequest_timeout: 0s\n",
        )
        .expect("parses");
        let paths: Vec<String> = bad.validate().into_iter().map(|(p, _)| p).collect();
        assert_eq!(
            paths,
            [
                "application_name",
                "ingress.listen",
                "ingress.upstream",
                "max_connections",
                "request_timeout"
            ]
        );
        assert!(parse("application_name: a\nunknown: 1\n").is_err());
        assert!(parse("application_name: a\nbad_headers: explode\n").is_err());
    }
}
