//! Configuration: the one place that reads config files and the environment.
//!
//! A config is YAML. Loading runs in three steps, and each step reports every problem it
//! finds (with its path, such as `exporters.console.batch.max_spans`) before giving up:
//! 1. parse the YAML into a generic tree;
//! 2. substitute `${env:NAME}` and `${env:NAME:-default}` in string values (`$${` is a
//!    literal `${`); a value that is exactly one reference is re-read as a YAML scalar, so
//!    `port: ${env:PORT}` gives a number;
//! 3. read each section into its typed struct (`deny_unknown_fields`), then validate
//!    the values and the references between sections.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

mod checks;
mod env;
mod exporters;
mod lenient;
mod pinpoint_loop;
mod routes;
mod units;

use env::substitute_env;
use exporters::read_exporters;
pub use exporters::{BatchConfig, ExporterConfig, ExporterKind, OnFull, QueueConfig, RetryConfig};
use lenient::section;
use routes::routing;
pub use routes::{Destination, ExporterRef, RouteAction, RouteConfig, RoutingConfig};
pub use units::{de_bytes, de_duration, parse_bytes, parse_duration};

use crate::ids::CacheConfig;
use crate::listener::{AuthConfig, LimitsConfig, Protection, TlsConfig};
use crate::pipeline::router::{DEFAULT_ROUTE, RouteOverrides};
use crate::pipeline::rules::Match;

/// The embedded default config (`config/gateway.yaml`): no external servers needed.
pub const EMBEDDED_DEFAULT: &str = include_str!("../config/gateway.yaml");

/// The whole gateway configuration, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub receivers: ReceiversConfig,
    /// Exporters in the order the file names them.
    pub exporters: Vec<ExporterConfig>,
    pub admin: AdminConfig,
    pub log: LogConfig,
    pub service: ServiceConfig,
    /// `ids:`: the identity mapping cache.
    pub ids: CacheConfig,
    /// `routes:` and `default_route:`.
    pub routing: RoutingConfig,
    /// `memory:`: the process-wide soft memory limit.
    pub memory: crate::memory::MemoryConfig,
    /// `proxy:`: the header-translating sidecar proxy; absent = none.
    pub proxy: Option<crate::proxy::ProxyConfig>,
}

/// `receivers:`. The OTLP receivers; a missing `grpc` or `http` key disables that one.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiversConfig {
    pub otlp: OtlpReceiverConfig,
    /// `receivers.pinpoint:`: Pinpoint agents in (absent: off).
    #[serde(default)]
    pub pinpoint: Option<crate::receiver::pinpoint::PinpointReceiverConfig>,
}

/// `receivers.otlp:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpReceiverConfig {
    /// OTLP/gRPC listener; absent disables it.
    #[serde(default)]
    pub grpc: Option<Listener>,
    /// OTLP/HTTP listener; absent disables it.
    #[serde(default)]
    pub http: Option<Listener>,
    /// Largest request accepted, measured after decompression. Default 64 MiB.
    #[serde(default = "default_max_request_bytes", deserialize_with = "de_bytes")]
    pub max_request_bytes: usize,
    /// Largest memory one request may take once decoded (estimated before decoding).
    /// Default: a quarter of `memory.limit`, at most 256 MiB.
    #[serde(default, deserialize_with = "de_opt_bytes")]
    pub max_decoded_bytes: Option<usize>,
}

fn de_opt_bytes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    de_bytes(d).map(Some)
}

/// A listening address, `host:port` (port 0 picks a free port), and how it protects
/// itself (see [`crate::listener`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    pub endpoint: String,
    /// Connection limit and timeouts; unset keys take the receiver defaults.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// TLS (and mutual TLS); absent: plain TCP.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Bearer or basic credentials; absent: none asked.
    #[serde(default)]
    pub auth: Option<AuthConfig>,
}

impl Listener {
    /// This listener's `limits`, `tls` and `auth`.
    #[must_use]
    pub fn protection(&self) -> Protection<'_> {
        Protection {
            limits: &self.limits,
            tls: self.tls.as_ref(),
            auth: self.auth.as_ref(),
        }
    }
}

/// `admin:`: health, readiness, metrics and the status page.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Default `127.0.0.1:8888`.
    pub endpoint: String,
    /// Base URLs of the UIs the status page's id lookup links to.
    pub links: LinksConfig,
    /// Connection limit and timeouts; unset keys take the admin defaults.
    pub limits: LimitsConfig,
    /// TLS (and mutual TLS); absent: plain TCP.
    pub tls: Option<TlsConfig>,
    /// Bearer or basic credentials for everything but `/healthz` and `/readyz`.
    pub auth: Option<AuthConfig>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            endpoint: "127.0.0.1:8888".to_owned(),
            links: LinksConfig::default(),
            limits: LimitsConfig::default(),
            tls: None,
            auth: None,
        }
    }
}

impl AdminConfig {
    /// The admin endpoint's `limits`, `tls` and `auth`.
    #[must_use]
    pub fn protection(&self) -> Protection<'_> {
        Protection {
            limits: &self.limits,
            tls: self.tls.as_ref(),
            auth: self.auth.as_ref(),
        }
    }
}

/// `admin.links:`: where the lookup box's links point; absent = no link.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinksConfig {
    /// Pinpoint web's root, e.g. `http://pinpoint-web:8080`.
    pub pinpoint: Option<String>,
    /// Zipkin UI's root, e.g. `http://zipkin:9411/zipkin`.
    pub zipkin: Option<String>,
    /// Jaeger UI's root, e.g. `http://jaeger:16686`.
    pub jaeger: Option<String>,
}

/// `log:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A `tracing` filter such as `info` or `info,otel_pinpoint_bridge=debug`. Default `info`.
    /// The `RUST_LOG` environment variable, when set, wins.
    pub level: String,
    /// `text` (default) or `json`.
    pub format: LogFormat,
    /// ANSI colours in text logs: `auto` (default: only when stderr is a terminal),
    /// `always` or `never`.
    pub color: LogColor,
}

/// See [`LogConfig::color`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogColor {
    #[default]
    Auto,
    Always,
    Never,
}

impl LogColor {
    /// Whether to colour, given whether stderr is a terminal.
    #[must_use]
    pub fn enabled(self, terminal: bool) -> bool {
        match self {
            Self::Auto => terminal,
            Self::Always => true,
            Self::Never => false,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
            format: LogFormat::Text,
            color: LogColor::Auto,
        }
    }
}

/// See [`LogConfig::format`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

/// `service:`: process-wide behaviour.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceConfig {
    /// How long shutdown waits for queues to drain. Default 10s.
    #[serde(deserialize_with = "de_duration")]
    pub shutdown_grace: Duration,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

fn default_max_request_bytes() -> usize {
    64 * 1024 * 1024
}

/// One problem in a config, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted path such as `exporters.console.batch`; empty for the whole file.
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Every problem found in one config.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigErrors {
    /// Where the config came from (a path, or the embedded default).
    pub source_name: String,
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}: {} error(s)", self.source_name, self.errors.len())?;
        for e in &self.errors {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

/// Where a config is read from.
#[derive(Debug, Clone)]
pub enum ConfigSource<'a> {
    Embedded,
    File(&'a Path),
}

/// Reads and validates a config.
///
/// # Errors
/// Every problem found: unreadable file, YAML syntax, a missing environment variable,
/// unknown keys, wrong types and invalid values, each with its path.
pub fn load(source: ConfigSource<'_>) -> Result<Config, ConfigErrors> {
    let (name, text) = match source {
        ConfigSource::Embedded => (
            "config/gateway.yaml (embedded)".to_owned(),
            EMBEDDED_DEFAULT.to_owned(),
        ),
        ConfigSource::File(path) => {
            let name = path.display().to_string();
            match std::fs::read_to_string(path) {
                Ok(text) => (name, text),
                Err(e) => {
                    return Err(ConfigErrors {
                        source_name: name,
                        errors: vec![err("", format!("cannot read file: {e}"))],
                    });
                }
            }
        }
    };
    parse(&text, &|k| std::env::var(k).ok()).map_err(|errors| ConfigErrors {
        source_name: name,
        errors,
    })
}

/// Parses config text; `env` looks up environment variables.
///
/// # Errors
/// Every problem found, each with its path.
pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, Vec<ConfigError>> {
    let mut tree: Value = match serde_saphyr::from_str(text) {
        Ok(Value::Null) => Value::Object(Map::new()),
        Ok(v) => v,
        Err(e) => return Err(vec![err("", format!("invalid YAML: {e}"))]),
    };
    let mut errors = Vec::new();
    substitute_env(&mut tree, "", env, &mut errors);
    let Value::Object(mut top) = tree else {
        errors.push(err("", "the config must be a mapping of sections"));
        return Err(errors);
    };
    for key in top.keys() {
        if !SECTIONS.contains(&key.as_str()) {
            errors.push(err(
                key,
                format!("unknown section (expected {})", SECTIONS.join(", ")),
            ));
        }
    }
    let receivers = match top.remove("receivers") {
        Some(v) => section::<ReceiversConfig>(v, "receivers", &mut errors),
        None => {
            errors.push(err(
                "receivers",
                "missing: at least one OTLP receiver is needed",
            ));
            None
        }
    };
    // Routes may name any exporter the file declares, valid or not (its own errors are
    // reported at its own path).
    let exporter_names: Vec<String> = match top.get("exporters") {
        Some(Value::Object(map)) => map.keys().cloned().collect(),
        _ => Vec::new(),
    };
    let exporters = match top.remove("exporters") {
        Some(v) => read_exporters(v, &mut errors),
        None => {
            errors.push(err("exporters", "missing: at least one exporter is needed"));
            Vec::new()
        }
    };
    let admin = optional_section::<AdminConfig>(&mut top, "admin", &mut errors);
    let log = optional_section::<LogConfig>(&mut top, "log", &mut errors);
    let service = optional_section::<ServiceConfig>(&mut top, "service", &mut errors);
    let ids = optional_section::<CacheConfig>(&mut top, "ids", &mut errors);
    let memory = optional_section::<crate::memory::MemoryConfig>(&mut top, "memory", &mut errors);
    if let Some(c) = &ids
        && let Err(e) = c.validate()
    {
        errors.push(err("ids", e.to_string()));
    }
    if let Some(c) = &ids {
        for e in c.validate_store() {
            errors.push(err(&format!("ids.store.{}", e.key), e.message));
        }
    }
    let routing = routing(
        top.remove("routes"),
        top.remove("default_route").filter(|v| !v.is_null()),
        &exporter_names,
        &mut errors,
    );

    let proxy = match top.remove("proxy").filter(|v| !v.is_null()) {
        Some(v) => section::<crate::proxy::ProxyConfig>(v, "proxy", &mut errors),
        None => None,
    };
    for (path, message) in proxy.iter().flat_map(crate::proxy::ProxyConfig::validate) {
        let path = if path.is_empty() {
            "proxy".to_owned()
        } else {
            join("proxy", &path)
        };
        errors.push(err(&path, message));
    }

    if let Some(r) = &receivers {
        validate_receivers(r, &mut errors);
        if let Some(p) = &r.pinpoint {
            pinpoint_loop::check(p, &exporters, &routing, &mut errors);
        }
    }
    if let Some(a) = &admin {
        check_endpoint(&a.endpoint, "admin.endpoint", &mut errors);
        check_protection(a.protection(), "admin", &mut errors);
        for (key, url) in [
            ("pinpoint", &a.links.pinpoint),
            ("zipkin", &a.links.zipkin),
            ("jaeger", &a.links.jaeger),
        ] {
            if let Some(u) = url
                && !(u.starts_with("http://") || u.starts_with("https://"))
            {
                errors.push(err(
                    &format!("admin.links.{key}"),
                    format!("`{u}` is not an http:// or https:// URL"),
                ));
            }
        }
    }
    if let Some(l) = &log
        && let Err(e) = checks::log_level(&l.level)
    {
        errors.push(err("log.level", e));
    }
    let listeners = checks::PartialListeners {
        grpc: receivers
            .as_ref()
            .and_then(|r| r.otlp.grpc.as_ref())
            .map(|l| l.endpoint.as_str()),
        http: receivers
            .as_ref()
            .and_then(|r| r.otlp.http.as_ref())
            .map(|l| l.endpoint.as_str()),
        admin: admin.as_ref().map(|a| a.endpoint.as_str()),
        proxy_ingress: proxy
            .as_ref()
            .and_then(|p| p.ingress.as_ref())
            .map(|l| l.listen.as_str()),
        proxy_egress: proxy
            .as_ref()
            .and_then(|p| p.egress.as_ref())
            .map(|l| l.listen.as_str()),
    };
    checks::listener_conflicts(&checks::listeners(&listeners), &mut errors);
    if let Some(s) = &service
        && s.shutdown_grace.is_zero()
    {
        errors.push(err("service.shutdown_grace", "must be greater than 0"));
    }
    // One error per path: a later one there (e.g. "not host:port" after a missing
    // variable) is a consequence of the first.
    let mut seen = std::collections::HashSet::new();
    errors.retain(|e| seen.insert(e.path.clone()));
    match (receivers, admin, log, service, ids, memory) {
        (Some(receivers), Some(admin), Some(log), Some(service), Some(ids), Some(memory))
            if errors.is_empty() =>
        {
            Ok(Config {
                receivers,
                exporters,
                admin,
                log,
                service,
                ids,
                routing,
                memory,
                proxy,
            })
        }
        _ => Err(errors),
    }
}

const SECTIONS: &[&str] = &[
    "receivers",
    "exporters",
    "routes",
    "default_route",
    "admin",
    "log",
    "service",
    "ids",
    "memory",
    "proxy",
];

fn err(path: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        path: path.to_owned(),
        message: message.into(),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn optional_section<T: DeserializeOwned + Default>(
    top: &mut Map<String, Value>,
    key: &str,
    errors: &mut Vec<ConfigError>,
) -> Option<T> {
    match top.remove(key) {
        Some(v) => section(v, key, errors),
        None => Some(T::default()),
    }
}

fn validate_receivers(r: &ReceiversConfig, errors: &mut Vec<ConfigError>) {
    let o = &r.otlp;
    if o.grpc.is_none() && o.http.is_none() {
        errors.push(err(
            "receivers.otlp",
            "enable at least one of grpc and http",
        ));
    }
    if let Some(g) = &o.grpc {
        check_endpoint(&g.endpoint, "receivers.otlp.grpc.endpoint", errors);
        check_protection(g.protection(), "receivers.otlp.grpc", errors);
    }
    if let Some(h) = &o.http {
        check_endpoint(&h.endpoint, "receivers.otlp.http.endpoint", errors);
        check_protection(h.protection(), "receivers.otlp.http", errors);
    }
    if let Some(p) = &r.pinpoint {
        for (key, message) in p.problems() {
            errors.push(err(&join("receivers.pinpoint", &key), message));
        }
        for (key, e) in [
            ("agent_endpoint", &p.agent_endpoint),
            ("stat_endpoint", &p.stat_endpoint),
            ("span_endpoint", &p.span_endpoint),
        ] {
            check_endpoint(e, &join("receivers.pinpoint", key), errors);
        }
    }
    if !(1024..=(1 << 30)).contains(&o.max_request_bytes) {
        errors.push(err(
            "receivers.otlp.max_request_bytes",
            "must be between 1KiB and 1GiB",
        ));
    }
    if o.max_decoded_bytes.is_some_and(|n| n < 1 << 20) {
        errors.push(err(
            "receivers.otlp.max_decoded_bytes",
            "must be at least 1MiB",
        ));
    }
}

fn check_protection(p: Protection<'_>, path: &str, errors: &mut Vec<ConfigError>) {
    for (key, message) in crate::listener::config::validate(p.limits, p.auth) {
        errors.push(err(&join(path, key), message));
    }
    for (key, file) in crate::listener::config::files(p.tls, p.auth) {
        if !file.is_file() {
            errors.push(err(
                &join(path, key),
                format!("`{}` is not a readable file", file.display()),
            ));
        }
    }
}

fn check_endpoint(endpoint: &str, path: &str, errors: &mut Vec<ConfigError>) {
    let ok = endpoint
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !ok {
        errors.push(err(path, format!("`{endpoint}` is not host:port")));
    }
}

/// Names of the exporters, for validating references (routes) against them.
#[must_use]
pub fn exporter_names(c: &Config) -> BTreeMap<&str, &ExporterConfig> {
    c.exporters.iter().map(|e| (e.name.as_str(), e)).collect()
}

#[cfg(test)]
mod tests;
