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

use crate::ids::CacheConfig;
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
}

/// `receivers:`. The OTLP receivers; a missing `grpc` or `http` key disables that one.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiversConfig {
    pub otlp: OtlpReceiverConfig,
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
}

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

/// A listening address, `host:port` (port 0 picks a free port).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    pub endpoint: String,
}

/// `exporters.<name>:` after splitting the common keys from the kind's own keys.
#[derive(Debug, Clone)]
pub struct ExporterConfig {
    pub name: String,
    pub queue: QueueConfig,
    pub batch: BatchConfig,
    pub retry: RetryConfig,
    pub kind: ExporterKind,
}

/// What an exporter is, chosen by its `type:` key.
#[derive(Debug, Clone)]
pub enum ExporterKind {
    File(crate::exporter::file::FileConfig),
    Pinpoint(Box<crate::exporter::pinpoint::PinpointConfig>),
    Pyroscope(Box<crate::exporter::pyroscope::PyroscopeConfig>),
    Null,
    Zipkin(crate::exporter::zipkin::ZipkinConfig),
}

/// The keys every exporter has besides its `type`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct CommonExporterKeys {
    queue: QueueConfig,
    batch: BatchConfig,
    retry: RetryConfig,
}

const COMMON_EXPORTER_KEYS: &[&str] = &["type", "queue", "batch", "retry"];
const EXPORTER_TYPES: &[&str] = &["file", "pinpoint", "zipkin", "pyroscope", "null (or nop)"];

/// `exporters.<name>.queue:`: the bounded queue in front of one exporter.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Spans held (queued and in flight) at most. Default 100 000.
    pub max_spans: usize,
    /// What a full queue does to a new request: `refuse` (the whole request gets a
    /// retryable status and no exporter takes it) or `drop` (this exporter skips it,
    /// counted; the others take it). Default `refuse`.
    pub on_full: OnFull,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            max_spans: 100_000,
            on_full: OnFull::Refuse,
        }
    }
}

/// See [`QueueConfig::on_full`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFull {
    Refuse,
    Drop,
}

/// `exporters.<name>.batch:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// A batch is sent once it holds this many spans. Default 512.
    pub max_spans: usize,
    /// ...or this long after its first span arrived. Default 200ms.
    #[serde(deserialize_with = "de_duration")]
    pub timeout: Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_spans: 512,
            timeout: Duration::from_millis(200),
        }
    }
}

/// `exporters.<name>.retry:`: exponential backoff for retryable export failures.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// First wait. Default 100ms.
    #[serde(deserialize_with = "de_duration")]
    pub initial: Duration,
    /// Longest wait. Default 5s.
    #[serde(deserialize_with = "de_duration")]
    pub max: Duration,
    /// Give up on a batch after this long (counted as failed). Default 60s.
    #[serde(deserialize_with = "de_duration")]
    pub max_elapsed: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(5),
            max_elapsed: Duration::from_secs(60),
        }
    }
}

/// `admin:`: health, readiness, metrics and the status page.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Default `127.0.0.1:8888`.
    pub endpoint: String,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            endpoint: "127.0.0.1:8888".to_owned(),
        }
    }
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
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
            format: LogFormat::Text,
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
        Some(v) => exporters(v, &mut errors),
        None => {
            errors.push(err("exporters", "missing: at least one exporter is needed"));
            Vec::new()
        }
    };
    let admin = optional_section::<AdminConfig>(&mut top, "admin", &mut errors);
    let log = optional_section::<LogConfig>(&mut top, "log", &mut errors);
    let service = optional_section::<ServiceConfig>(&mut top, "service", &mut errors);
    let ids = optional_section::<CacheConfig>(&mut top, "ids", &mut errors);
    if let Some(c) = &ids
        && let Err(e) = c.validate()
    {
        errors.push(err("ids", e.to_string()));
    }
    let routing = routing(
        top.remove("routes"),
        top.remove("default_route").filter(|v| !v.is_null()),
        &exporter_names,
        &mut errors,
    );

    if let Some(r) = &receivers {
        validate_receivers(r, &mut errors);
    }
    if let Some(a) = &admin {
        check_endpoint(&a.endpoint, "admin.endpoint", &mut errors);
    }
    if let Some(l) = &log
        && let Err(e) = tracing_subscriber::EnvFilter::try_new(&l.level)
    {
        errors.push(err("log.level", format!("invalid filter: {e}")));
    }
    if let Some(s) = &service
        && s.shutdown_grace.is_zero()
    {
        errors.push(err("service.shutdown_grace", "must be greater than 0"));
    }
    // One error per path: a later one there (e.g. "not host:port" after a missing
    // variable) is a consequence of the first.
    let mut seen = std::collections::HashSet::new();
    errors.retain(|e| seen.insert(e.path.clone()));
    match (receivers, admin, log, service, ids) {
        (Some(receivers), Some(admin), Some(log), Some(service), Some(ids))
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

fn section<T: DeserializeOwned>(v: Value, path: &str, errors: &mut Vec<ConfigError>) -> Option<T> {
    // An empty YAML section (`admin:`) reads as null: treat it as an empty mapping.
    let v = if v.is_null() {
        Value::Object(Map::new())
    } else {
        v
    };
    match serde_json::from_value::<T>(v) {
        Ok(t) => Some(t),
        Err(e) => {
            errors.push(err(path, e.to_string()));
            None
        }
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

fn exporters(v: Value, errors: &mut Vec<ConfigError>) -> Vec<ExporterConfig> {
    let Value::Object(map) = v else {
        errors.push(err(
            "exporters",
            "must be a mapping of exporter name to settings",
        ));
        return Vec::new();
    };
    if map.is_empty() {
        errors.push(err("exporters", "at least one exporter is needed"));
    }
    let mut out = Vec::new();
    for (name, body) in map {
        let path = join("exporters", &name);
        if !valid_name(&name) {
            errors.push(err(&path, "exporter names use [a-zA-Z0-9_-] only"));
        }
        if let Some(e) = exporter(&name, body, &path, errors) {
            out.push(e);
        }
    }
    out
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn exporter(
    name: &str,
    body: Value,
    path: &str,
    errors: &mut Vec<ConfigError>,
) -> Option<ExporterConfig> {
    let Value::Object(map) = body else {
        errors.push(err(path, "must be a mapping with at least a `type` key"));
        return None;
    };
    let (common, own): (Map<String, Value>, Map<String, Value>) = map
        .into_iter()
        .partition(|(k, _)| COMMON_EXPORTER_KEYS.contains(&k.as_str()));
    let kind_name = match common.get("type") {
        Some(Value::String(t)) => t.clone(),
        // `type: null` reads as YAML null; it means the null exporter.
        Some(Value::Null) => "null".to_owned(),
        Some(_) => {
            errors.push(err(&join(path, "type"), "must be a string"));
            return None;
        }
        None => {
            errors.push(err(
                &join(path, "type"),
                format!("missing (one of: {})", EXPORTER_TYPES.join(", ")),
            ));
            return None;
        }
    };
    let mut common = common;
    common.remove("type");
    let common = section::<CommonExporterKeys>(Value::Object(common), path, errors);
    let kind =
        match kind_name.as_str() {
            "file" => section(Value::Object(own), path, errors).map(ExporterKind::File),
            "pinpoint" => section(Value::Object(own), path, errors)
                .map(|c| ExporterKind::Pinpoint(Box::new(c))),
            "zipkin" => section(Value::Object(own), path, errors).map(ExporterKind::Zipkin),
            "pyroscope" => section(Value::Object(own), path, errors)
                .map(|c| ExporterKind::Pyroscope(Box::new(c))),
            "null" | "nop" => {
                if let Some(k) = own.keys().next() {
                    errors.push(err(
                        &join(path, k),
                        "unknown key (the null exporter has no settings)",
                    ));
                }
                Some(ExporterKind::Null)
            }
            other => {
                errors.push(err(
                    &join(path, "type"),
                    format!(
                        "unknown exporter type `{other}` (one of: {})",
                        EXPORTER_TYPES.join(", ")
                    ),
                ));
                None
            }
        };
    let (common, kind) = (common?, kind?);
    let before = errors.len();
    validate_exporter_common(&common, path, errors);
    if let ExporterKind::Pyroscope(p) = &kind {
        for (key, message) in p.problems() {
            errors.push(err(&join(path, key), message));
        }
    }
    if let ExporterKind::File(f) = &kind
        && f.path.trim().is_empty()
    {
        errors.push(err(
            &join(path, "path"),
            "must not be empty (use \"-\" for stdout)",
        ));
    }
    if let ExporterKind::Zipkin(z) = &kind {
        for (key, message) in z.problems() {
            errors.push(err(&join(path, key), message));
        }
    }
    if let ExporterKind::Pinpoint(p) = &kind {
        for (key, message) in p.problems() {
            errors.push(err(&join(path, key), message));
        }
    }
    (errors.len() == before).then(|| ExporterConfig {
        name: name.to_owned(),
        queue: common.queue,
        batch: common.batch,
        retry: common.retry,
        kind,
    })
}

fn validate_exporter_common(c: &CommonExporterKeys, path: &str, errors: &mut Vec<ConfigError>) {
    if c.batch.max_spans == 0 {
        errors.push(err(
            &join(path, "batch.max_spans"),
            "must be greater than 0",
        ));
    }
    if c.batch.timeout.is_zero() {
        errors.push(err(&join(path, "batch.timeout"), "must be greater than 0"));
    }
    if c.queue.max_spans < c.batch.max_spans {
        errors.push(err(
            &join(path, "queue.max_spans"),
            format!("must be at least batch.max_spans ({})", c.batch.max_spans),
        ));
    }
    if c.queue.max_spans > u32::MAX as usize / 2 {
        errors.push(err(
            &join(path, "queue.max_spans"),
            "must be at most 2147483647",
        ));
    }
    if c.retry.initial.is_zero() || c.retry.initial > c.retry.max {
        errors.push(err(
            &join(path, "retry.initial"),
            "must be greater than 0 and at most retry.max",
        ));
    }
}

const ROUTE_KEYS: &[&str] = &["name", "match", "to", "drop", "sample", "pinpoint"];
const ACTION_KEYS: &[&str] = &["to", "drop", "sample", "pinpoint"];

/// Reads `routes:` and `default_route:`, rejecting what cannot work as written:
/// unknown exporters, duplicate names, routes no span can reach, and actions that
/// contradict each other.
fn routing(
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
    }
    if let Some(h) = &o.http {
        check_endpoint(&h.endpoint, "receivers.otlp.http.endpoint", errors);
    }
    if let (Some(g), Some(h)) = (&o.grpc, &o.http)
        && g.endpoint == h.endpoint
        && !g.endpoint.ends_with(":0")
    {
        errors.push(err(
            "receivers.otlp.http.endpoint",
            "same address as the grpc receiver",
        ));
    }
    if !(1024..=(1 << 30)).contains(&o.max_request_bytes) {
        errors.push(err(
            "receivers.otlp.max_request_bytes",
            "must be between 1KiB and 1GiB",
        ));
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

/// Replaces `${env:NAME}` references in every string of the tree.
fn substitute_env(
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

/// Reads a duration written with a unit: `250ms`, `10s`, `5m`, `24h` (also `us`, `ns`).
///
/// # Errors
/// A message naming what is wrong with the text.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (write e.g. 250ms, 10s, 5m, 24h)"))?;
    let secs = match unit.trim() {
        "ns" => value / 1e9,
        "us" | "µs" => value / 1e6,
        "ms" => value / 1e3,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        "" => return Err(format!("`{text}` needs a unit (ns, us, ms, s, m, h)")),
        u => {
            return Err(format!(
                "`{text}`: unknown unit `{u}` (ns, us, ms, s, m, h)"
            ));
        }
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("`{text}` is out of range"))
}

/// Reads a size: a plain number of bytes, or one with a unit (`KiB`, `MiB`, `GiB`, `KB`, `MB`, `GB`).
///
/// # Errors
/// A message naming what is wrong with the text.
pub fn parse_bytes(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: usize = num
        .parse()
        .map_err(|_| format!("`{text}` is not a size (write e.g. 4MiB)"))?;
    let mult: usize = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        u => {
            return Err(format!(
                "`{text}`: unknown unit `{u}` (B, KiB, MiB, GiB, KB, MB, GB)"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("`{text}` is too large"))
}

/// serde helper: a duration string such as `200ms`.
///
/// # Errors
/// When the value is not a string with a unit.
pub fn de_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s).map_err(serde::de::Error::custom)
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

/// Names of the exporters, for validating references (routes) against them.
#[must_use]
pub fn exporter_names(c: &Config) -> BTreeMap<&str, &ExporterConfig> {
    c.exporters.iter().map(|e| (e.name.as_str(), e)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    const MINIMAL: &str = "receivers:\n  otlp:\n    grpc:\n      endpoint: 127.0.0.1:0\nexporters:\n  out:\n    type: null\n";

    #[test]
    fn embedded_default_is_valid() {
        let c = load(ConfigSource::Embedded).expect("embedded default must load");
        assert!(!c.exporters.is_empty());
    }

    #[test]
    fn every_file_in_config_dir_is_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).expect("config dir") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                // Example configs give every variable they use a default, so that they
                // load as shipped: read them with no variable set.
                let r = parse(&std::fs::read_to_string(&path).expect("read"), &no_env);
                assert!(r.is_ok(), "{}: {:?}", path.display(), r.err());
                seen += 1;
            }
        }
        assert!(seen >= 1);
    }

    #[test]
    fn minimal_config_gets_documented_defaults() {
        let c = parse(MINIMAL, &no_env).expect("valid");
        assert_eq!(c.receivers.otlp.max_request_bytes, 64 << 20);
        assert!(c.receivers.otlp.http.is_none());
        let e = &c.exporters[0];
        assert_eq!(
            (e.queue.max_spans, e.queue.on_full),
            (100_000, OnFull::Refuse)
        );
        assert_eq!(
            (e.batch.max_spans, e.batch.timeout),
            (512, Duration::from_millis(200))
        );
        assert_eq!(c.admin.endpoint, "127.0.0.1:8888");
        assert_eq!(c.service.shutdown_grace, Duration::from_secs(10));
    }

    #[test]
    fn reports_every_error_with_its_path() {
        let text = r#"
receivers:
  otlp:
    grpc: { endpoint: "nonsense" }
    max_request_bytes: 12parsecs
exporters:
  a:
    type: file
    pathh: x
  b:
    type: kafka
  c:
    type: null
    batch: { max_spans: 0, timeout: 5 }
admin: { endpoint: ":8888" }
colour: blue
"#;
        let errs = parse(text, &no_env).expect_err("invalid");
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        for want in [
            "colour",
            "receivers",
            "exporters.a",
            "exporters.b.type",
            "exporters.c",
            "admin.endpoint",
        ] {
            assert!(paths.contains(&want), "missing {want} in {errs:?}");
        }
        let text = errs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n");
        assert!(text.contains("unknown field `pathh`"), "{text}");
        assert!(text.contains("unknown exporter type `kafka`"), "{text}");
        assert!(text.contains("unknown section"), "{text}");
    }

    #[test]
    fn semantic_errors_are_all_reported() {
        let text = "receivers:\n  otlp:\n    grpc: { endpoint: 'x:notaport' }\nexporters:\n  c:\n    type: null\n    batch: { max_spans: 0 }\n    queue: { max_spans: 10 }\n";
        let errs = parse(text, &no_env).expect_err("invalid");
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        assert!(paths.contains(&"receivers.otlp.grpc.endpoint"), "{errs:?}");
        assert!(paths.contains(&"exporters.c.batch.max_spans"), "{errs:?}");
    }

    #[test]
    fn pinpoint_exporter_values_are_validated() {
        let text = "receivers:\n  otlp:\n    grpc: { endpoint: 127.0.0.1:0 }\nexporters:\n  pp:\n    type: pinpoint\n    host: ''\n    marker: 'bad marker!'\n    hold: 0s\n    ping_interval: 5s\n";
        let errs = parse(text, &no_env).expect_err("invalid");
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        for want in [
            "exporters.pp.host",
            "exporters.pp.marker",
            "exporters.pp.hold",
            "exporters.pp.ping_interval",
        ] {
            assert!(paths.contains(&want), "missing {want} in {errs:?}");
        }
    }

    #[test]
    fn env_substitution() {
        let env = |k: &str| match k {
            "PORT" => Some("4317".to_owned()),
            "HOST" => Some("127.0.0.1".to_owned()),
            "SPANS" => Some("64".to_owned()),
            _ => None,
        };
        let text = "receivers:\n  otlp:\n    grpc: { endpoint: '${env:HOST}:${env:PORT}' }\nexporters:\n  c:\n    type: file\n    path: '$${literal}/${env:DIR:-out}/s.jsonl'\n    batch: { max_spans: '${env:SPANS}' }\n";
        let c = parse(text, &env).expect("valid");
        assert_eq!(
            c.receivers.otlp.grpc.as_ref().map(|g| g.endpoint.as_str()),
            Some("127.0.0.1:4317")
        );
        assert_eq!(c.exporters[0].batch.max_spans, 64);
        let ExporterKind::File(f) = &c.exporters[0].kind else {
            panic!("file")
        };
        assert_eq!(f.path, "${literal}/out/s.jsonl");
    }

    #[test]
    fn missing_env_variable_is_an_error_with_path() {
        let text = "receivers:\n  otlp:\n    grpc: { endpoint: '${env:NOPE_NOT_SET}' }\nexporters:\n  c: { type: null }\n";
        let errs = parse(text, &no_env).expect_err("invalid");
        assert_eq!(errs[0].path, "receivers.otlp.grpc.endpoint");
        assert!(errs[0].message.contains("NOPE_NOT_SET"));
    }

    #[test]
    fn durations_and_sizes() {
        let ok = [
            ("250ms", 250_000_000u128),
            ("10s", 10_000_000_000),
            ("1.5s", 1_500_000_000),
            ("5m", 300_000_000_000),
            ("2us", 2000),
        ];
        for (t, ns) in ok {
            assert_eq!(parse_duration(t).map(|d| d.as_nanos()), Ok(ns), "{t}");
        }
        for t in ["10", "ten s", "5 parsecs", "-1s"] {
            assert!(parse_duration(t).is_err(), "{t}");
        }
        assert_eq!(parse_bytes("64MiB"), Ok(64 << 20));
        assert_eq!(parse_bytes("1000"), Ok(1000));
        assert_eq!(parse_bytes("4MB"), Ok(4_000_000));
        assert!(parse_bytes("4XB").is_err());
    }

    const TWO_EXPORTERS: &str = "receivers:\n  otlp:\n    grpc: { endpoint: 127.0.0.1:0 }\nexporters:\n  pinpoint: { type: null }\n  zipkin: { type: null }\n";

    #[test]
    fn routes_are_read_in_order_with_their_actions() {
        let text = format!(
            "{TWO_EXPORTERS}routes:\n\
             \x20 - name: payments-debug\n\
             \x20   match:\n\
             \x20     resource: {{ service.name: {{ glob: 'pay*' }} }}\n\
             \x20     scope: {{ name: io.opentelemetry.jdbc }}\n\
             \x20     span: {{ http.response.status_code: {{ gte: 500 }} }}\n\
             \x20     kind: [server, client]\n\
             \x20     status: [error]\n\
             \x20   sample: 0.1\n\
             \x20   to: [pinpoint, zipkin]\n\
             \x20   pinpoint: {{ service_type: 1700, application_name: payments }}\n\
             \x20 - name: health\n\
             \x20   match: {{ span_name: {{ glob: 'GET /health*' }} }}\n\
             \x20   drop: true\n\
             \x20 - name: copy\n\
             \x20   match: {{ kind: [internal] }}\n\
             \x20   to: [pinpoint, {{ exporter: zipkin, sample: 0.25 }}]\n\
             default_route: {{ to: zipkin }}\n"
        );
        let c = parse(&text, &no_env).unwrap_or_else(|e| panic!("{e:?}"));
        let r = &c.routing;
        assert_eq!(r.routes.len(), 3);
        assert_eq!(r.routes[0].name, "payments-debug");
        assert_eq!(
            r.routes[0].action.destination,
            Destination::Exporters(vec![
                ExporterRef::all("pinpoint"),
                ExporterRef::all("zipkin")
            ])
        );
        assert_eq!(r.routes[0].action.sample, Some(0.1));
        assert_eq!(
            r.routes[0].action.pinpoint,
            Some(RouteOverrides {
                service_type: Some(1700),
                application_name: Some("payments".into())
            })
        );
        let m = &r.routes[0].matcher;
        assert!(m.is_span_level() && !m.is_all());
        assert_eq!((m.resource.len(), m.span.len()), (1, 1));
        assert!(m.scope_name.is_some() && m.kinds.is_some() && m.statuses.is_some());
        assert_eq!(r.routes[1].action.destination, Destination::Drop);
        assert_eq!(
            r.routes[2].action.destination,
            Destination::Exporters(vec![
                ExporterRef::all("pinpoint"),
                ExporterRef {
                    exporter: "zipkin".into(),
                    sample: Some(0.25)
                }
            ])
        );
        assert_eq!(
            r.default.as_ref().map(|d| &d.destination),
            Some(&Destination::Exporters(vec![ExporterRef::all("zipkin")]))
        );
        // No routes section (or empty ones): no routes and no default (every exporter
        // gets everything).
        for extra in [
            "",
            "routes: []\ndefault_route: ~\n",
            "routes:\ndefault_route:\n",
        ] {
            let c = parse(&format!("{TWO_EXPORTERS}{extra}"), &no_env).expect(extra);
            assert!(c.routing.routes.is_empty() && c.routing.default.is_none());
        }
    }

    #[test]
    fn route_contradictions_are_errors_with_paths() {
        let route = "  - name: ok\n    match: { kind: [server] }\n    to: [pinpoint]\n";
        // (routes section, path, part of the message)
        let cases: Vec<(String, &str, &str)> = vec![
            (
                format!("routes:\n{route}  - name: both\n    to: [zipkin]\n    drop: true\n"),
                "routes[1].drop",
                "contradiction",
            ),
            (
                "routes:\n  - name: all\n    to: [pinpoint]\n  - name: later\n    match: { kind: [client] }\n    to: [zipkin]\n".into(),
                "routes[1]",
                "unreachable: routes[0] (`all`)",
            ),
            (
                "routes:\n  - name: all\n    match: {}\n    drop: true\ndefault_route: { to: [pinpoint] }\n".into(),
                "default_route",
                "unreachable",
            ),
            (
                format!("routes:\n{route}  - name: again\n    match: {{ kind: [server] }}\n    to: [zipkin]\n"),
                "routes[1].match",
                "the same match as routes[0]",
            ),
            (
                format!("routes:\n{route}  - name: s\n    sample: 0\n    to: [zipkin]\n"),
                "routes[1].sample",
                "(0, 1]",
            ),
            (
                format!("routes:\n{route}  - name: s\n    sample: 1.5\n    to: [zipkin]\n"),
                "routes[1].sample",
                "(0, 1]",
            ),
            (
                format!("routes:\n{route}  - name: s\n    sample: half\n    to: [zipkin]\n"),
                "routes[1].sample",
                "(0, 1]",
            ),
            (
                format!("routes:\n{route}  - name: s\n    match: {{ kind: [client] }}\n    sample: 0.5\n    drop: true\n"),
                "routes[1].sample",
                "sampling on a route that drops",
            ),
            (
                format!("routes:\n{route}  - name: r\n    match: {{ span: {{ http.response.status_code: {{ gt: 599, lt: 500 }} }} }}\n    to: [zipkin]\n"),
                "routes[1].match.span[\"http.response.status_code\"]",
                "`gt: 599` and `lt: 500`",
            ),
            (
                format!("routes:\n{route}  - name: r\n    match: {{ kind: [client] }}\n    to: [zipkin]\n  - name: u\n    match: {{ kind: [producer] }}\n    to: [pinpoint, jaeger]\n"),
                "routes[2].to[1]",
                "unknown exporter `jaeger` (exporters: pinpoint, zipkin)",
            ),
            (
                format!("routes:\n{route}  - name: r\n    match: {{ kind: [client] }}\n    to: [zipkin, zipkin]\n"),
                "routes[1].to[1]",
                "listed twice",
            ),
            (
                format!("routes:\n{route}  - name: ok\n    match: {{ kind: [client] }}\n    to: [zipkin]\n"),
                "routes[1].name",
                "duplicate route name `ok` (also routes[0])",
            ),
            (
                format!("routes:\n{route}  - name: r\n    match: {{ kind: [client] }}\n    to: []\n"),
                "routes[1].to",
                "at least one exporter",
            ),
            (
                format!("routes:\n{route}  - name: r\n    match: {{ kind: [client] }}\n"),
                "routes[1]",
                "needs `to",
            ),
            (
                format!("routes:\n{route}  - match: {{ kind: [client] }}\n    to: [zipkin]\n"),
                "routes[1].name",
                "missing",
            ),
            (
                format!("routes:\n{route}  - name: default\n    match: {{ kind: [client] }}\n    to: [zipkin]\n"),
                "routes[1].name",
                "reserved",
            ),
            (
                format!("routes:\n{route}  - name: 'a b'\n    match: {{ kind: [client] }}\n    to: [zipkin]\n"),
                "routes[1].name",
                "[a-zA-Z0-9_-]",
            ),
            (
                format!("routes:\n{route}  - name: r\n    match: {{ kind: [client] }}\n    tos: [zipkin]\n    to: [zipkin]\n"),
                "routes[1].tos",
                "unknown key",
            ),
            (
                format!("routes:\n{route}  - name: r\n    match: {{ span_name: {{ regex: 'GET (' }} }}\n    to: [zipkin]\n"),
                "routes[1].match.span_name.regex",
                "invalid regex",
            ),
            (
                format!("routes:\n{route}  - name: r\n    match: {{ kind: [client] }}\n    to: [zipkin]\n    pinpoint: {{ service_type: 70000 }}\n"),
                "routes[1].pinpoint.service_type",
                "1 to 32767",
            ),
            (
                format!("routes:\n{route}  - name: r\n    match: {{ kind: [client] }}\n    to: [zipkin]\n    pinpoint: {{ application_name: 'a-name-much-longer-than-pinpoint-allows' }}\n"),
                "routes[1].pinpoint.application_name",
                "1 to 24 characters",
            ),
            (
                format!("routes:\n{route}  - name: r\n    match: {{ kind: [client] }}\n    drop: true\n    pinpoint: {{ service_type: 1000 }}\n"),
                "routes[1].pinpoint",
                "contradiction",
            ),
            (
                format!("routes:\n{route}  - name: r\n    match: {{ kind: [client] }}\n    to: [zipkin]\n    pinpoint: {{}}\n"),
                "routes[1].pinpoint",
                "service_type and/or application_name",
            ),
            (
                format!("routes:\n{route}  - name: r\n    match: {{ kind: [client] }}\n    to: [zipkin, {{ exporter: pinpoint, sample: 0 }}]\n"),
                "routes[1].to[1].sample",
                "(0, 1]",
            ),
            (
                format!("routes:\n{route}  - name: r\n    match: {{ kind: [client] }}\n    to: [{{ sample: 0.5 }}]\n"),
                "routes[1].to[0].exporter",
                "missing",
            ),
            (
                format!("routes:\n{route}  - name: r\n    match: {{ kind: [client] }}\n    to: [{{ exporter: jaeger }}]\n"),
                "routes[1].to[0].exporter",
                "unknown exporter",
            ),
            (
                format!("routes:\n{route}  - name: r\n    match: {{ kind: [client] }}\n    to: [{{ exporter: zipkin, rate: 1 }}]\n"),
                "routes[1].to[0].rate",
                "unknown key",
            ),
            (
                format!("routes:\n{route}  - name: r\n    match: {{ kind: [client] }}\n    to: [[zipkin]]\n"),
                "routes[1].to[0]",
                "exporter name or",
            ),
            ("routes: { name: x }\n".into(), "routes", "list"),
            (
                "default_route: { to: [pinpoint], match: { kind: [server] } }\n".into(),
                "default_route.match",
                "unknown key",
            ),
            ("default_route: {}\n".into(), "default_route", "needs `to"),
        ];
        for (routes, path, message) in cases {
            let text = format!("{TWO_EXPORTERS}{routes}");
            let errs = parse(&text, &no_env).expect_err(&routes);
            assert!(
                errs.iter()
                    .any(|e| e.path == path && e.message.contains(message)),
                "{routes}\nwant {path}: {message}\ngot {errs:?}"
            );
        }
    }

    #[test]
    fn every_route_error_is_reported_at_once() {
        let text = format!(
            "{TWO_EXPORTERS}routes:\n\
             \x20 - name: a\n    match: {{ span: {{ k: {{ regex: '[' }} }} }}\n    to: [nope]\n\
             \x20 - name: a\n    match: {{ kind: [sever] }}\n    sample: 2\n    to: [zipkin]\n\
             exporters_typo: 1\n"
        );
        let errs = parse(&text, &no_env).expect_err("invalid");
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        for want in [
            "routes[0].match.span[\"k\"].regex",
            "routes[0].to[0]",
            "routes[1].name",
            "routes[1].match.kind[0]",
            "routes[1].sample",
            "exporters_typo",
        ] {
            assert!(paths.contains(&want), "missing {want} in {errs:?}");
        }
    }

    #[test]
    fn a_route_may_name_an_exporter_whose_own_config_is_wrong() {
        // Only the exporter's own error is reported, not a confusing "unknown exporter".
        let text = "receivers:\n  otlp:\n    grpc: { endpoint: 127.0.0.1:0 }\nexporters:\n  broken: { type: file }\nroutes:\n  - name: r\n    to: [broken]\n";
        let errs = parse(text, &no_env).expect_err("invalid");
        assert!(
            errs.iter().all(|e| e.path.starts_with("exporters.broken")),
            "{errs:?}"
        );
    }

    #[test]
    fn zipkin_exporter_defaults_and_errors() {
        let text = "receivers:\n  otlp:\n    grpc: { endpoint: 127.0.0.1:0 }\nexporters:\n  z:\n    type: zipkin\n    endpoint: http://127.0.0.1:9411/api/v2/spans\n";
        let c = parse(text, &no_env).expect("valid");
        let ExporterKind::Zipkin(z) = &c.exporters[0].kind else {
            panic!("zipkin")
        };
        use crate::exporter::zipkin::{Compression, Encoding};
        assert_eq!(
            (z.encoding, z.compression, z.timeout, z.headers.len()),
            (
                Encoding::Json,
                Compression::Gzip,
                Duration::from_secs(10),
                0
            )
        );
        assert_eq!(c.exporters[0].kind.type_name(), "zipkin");

        let text = r#"
receivers: { otlp: { grpc: { endpoint: 127.0.0.1:0 } } }
exporters:
  a: { type: zipkin, endpoint: "127.0.0.1:9411", timeout: 0s, headers: { "bad name": x } }
  b: { type: zipkin, endpoint: "https://zipkin.example/api/v2/spans", encoding: thrift }
  c: { type: zipkin, endpoint: "http://z:9411/api/v2/spans", compression: none, encoding: proto, gzip: true }
  d: { type: zipkin }
"#;
        let errs = parse(text, &no_env).expect_err("invalid");
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        for want in [
            "exporters.a.endpoint",
            "exporters.a.headers",
            "exporters.a.timeout",
            "exporters.b",
            "exporters.c",
            "exporters.d",
        ] {
            assert!(paths.contains(&want), "missing {want} in {errs:?}");
        }
        let text = errs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n");
        assert!(text.contains("not an http:// or https:// URL"), "{text}");
        assert!(text.contains("unknown variant `thrift`"), "{text}");
        assert!(text.contains("unknown field `gzip`"), "{text}");
        assert!(text.contains("missing field `endpoint`"), "{text}");
    }

    #[test]
    fn invalid_yaml_is_reported() {
        let errs = parse("receivers: [unclosed", &no_env).expect_err("invalid");
        assert!(errs[0].message.starts_with("invalid YAML"), "{errs:?}");
    }
}
