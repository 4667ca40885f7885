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
        if !["receivers", "exporters", "admin", "log", "service", "ids"].contains(&key.as_str()) {
            errors.push(err(
                key,
                "unknown section (expected receivers, exporters, admin, log, service, ids)",
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
            })
        }
        _ => Err(errors),
    }
}

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
