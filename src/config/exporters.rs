//! `exporters:`: the common keys (queue, batch, retry) and each kind's own.

use super::*;

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
    Otlp(Box<crate::exporter::otlp::OtlpConfig>),
    Zipkin(crate::exporter::zipkin::ZipkinConfig),
}

impl ExporterKind {
    /// Where the exporter sends, for the status page: a URL, `host:ports` or a file.
    #[must_use]
    pub fn target(&self) -> String {
        match self {
            Self::File(f) if f.path == "-" => "standard output".to_owned(),
            Self::File(f) => f.path.clone(),
            Self::Pinpoint(p) => format!("{}:{}/{}", p.host, p.agent_port, p.span_port),
            Self::Pyroscope(p) => p.endpoint.clone(),
            Self::Zipkin(z) => z.endpoint.clone(),
            Self::Null => "nowhere (null)".to_owned(),
            Self::Otlp(o) => match (&o.endpoint, &o.resolve) {
                (Some(e), _) => e.clone(),
                (None, Some(r)) => format!("{} (resolved)", r.endpoint),
                (None, None) => o.endpoints.join(", "),
            },
        }
    }
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
const EXPORTER_TYPES: &[&str] = &[
    "file",
    "pinpoint",
    "zipkin",
    "pyroscope",
    "otlp",
    "null (or nop)",
];

/// `exporters.<name>.queue:`: the bounded queue in front of one exporter.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Spans held (queued and in flight) at most. Default 100 000.
    pub max_spans: usize,
    /// Bytes held at most, measured as the decoded spans take them in memory (charged
    /// in KiB). Default 128 MiB.
    #[serde(deserialize_with = "super::units::de_bytes")]
    pub max_bytes: usize,
    /// What a full queue does to a new request: `refuse` (the whole request gets a
    /// retryable status and no exporter takes it) or `drop` (this exporter skips it,
    /// counted; the others take it). Default `refuse`.
    pub on_full: OnFull,
    /// Write every admitted request to disk before answering the sender, and replay
    /// what was not delivered on the next start. Default: none (memory only).
    pub persistent: Option<crate::pipeline::persist::PersistConfig>,
}

/// Default `queue.max_bytes`.
pub const DEFAULT_QUEUE_MAX_BYTES: usize = 128 << 20;

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            max_spans: 100_000,
            max_bytes: DEFAULT_QUEUE_MAX_BYTES,
            on_full: OnFull::Refuse,
            persistent: None,
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

pub(super) fn read_exporters(v: Value, errors: &mut Vec<ConfigError>) -> Vec<ExporterConfig> {
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
    let mut dirs = BTreeMap::new();
    for e in &out {
        if let Some(p) = &e.queue.persistent
            && let Some(other) = dirs.insert(p.dir.trim_end_matches('/').to_owned(), &e.name)
        {
            errors.push(err(
                &join(&join("exporters", &e.name), "queue.persistent.dir"),
                format!("is also the queue directory of exporter `{other}` (each needs its own)"),
            ));
        }
    }
    out
}

pub(super) fn valid_name(name: &str) -> bool {
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
            "otlp" => {
                section(Value::Object(own), path, errors).map(|c| ExporterKind::Otlp(Box::new(c)))
            }
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
    if let ExporterKind::Otlp(o) = &kind {
        for (key, message) in o.problems() {
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
    if let Some(p) = &c.queue.persistent {
        for (key, message) in p.problems() {
            errors.push(err(&join(&join(path, "queue.persistent"), key), message));
        }
    }
    if !(1 << 20..=1 << 40).contains(&c.queue.max_bytes) {
        errors.push(err(
            &join(path, "queue.max_bytes"),
            "must be between 1MiB and 1TiB",
        ));
    }
    if c.retry.initial.is_zero() || c.retry.initial > c.retry.max {
        errors.push(err(
            &join(path, "retry.initial"),
            "must be greater than 0 and at most retry.max",
        ));
    }
}
