//! The Pyroscope exporter, two paths to one server:
//! - spans become trace-derived flame graphs (`folded.rs`): per service and interval,
//!   folded stacks of span names weighted by self time, pushed to `/ingest` as
//!   `format=folded` (one request per service, with retry, in `tick`);
//! - OTLP profiles (from the receivers' profiles endpoints) are forwarded as they are to
//!   `/v1development/profiles` (`mode: otlp`, Pyroscope ≥ 1.20), or converted to pprof
//!   (`pprof.rs`) and pushed to `/ingest` as `format=pprof` (`mode: pprof`, any version).
//!
//! `folded.rs`, `pprof.rs`, `name.rs` and `requests.rs` are pure; `transport.rs` is
//! the HTTP side.

pub mod folded;
pub mod name;
pub mod pprof;
pub mod requests;
pub mod transport;

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant, SystemTime};

use metrics::{Counter, Gauge};
use opentelemetry_proto::tonic::collector::profiles::v1development::{
    ExportProfilesServiceRequest, ExportProfilesServiceResponse,
};
use prost::Message;
use serde::Deserialize;

use super::{ExportError, Exporter};
use crate::config::{RetryConfig, de_duration};
use crate::pipeline::Batch;
use crate::selfmetrics as m;
use folded::Aggregator;
use transport::{Client, Credentials, Outgoing};

/// Encoded trace-derived requests waiting to be sent, at most (oldest dropped first).
const MAX_OUTBOX_BYTES: usize = 64 << 20;
/// How often the worker calls `tick` (settling traces, sending due requests).
const TICK: Duration = Duration::from_millis(200);

/// `exporters.<name>:` keys of `type: pyroscope`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PyroscopeConfig {
    /// Base URL of the Pyroscope server, e.g. `http://127.0.0.1:4040`. Required.
    pub endpoint: String,
    /// Sent as `X-Scope-OrgID` (multi-tenant Pyroscope). Default: none.
    #[serde(default)]
    pub tenant: Option<String>,
    /// Credentials for Pyroscope or the proxy in front of it. Default: none.
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// Reporting interval of trace-derived profiles. Default 10s.
    #[serde(default = "d_interval", deserialize_with = "de_duration")]
    pub interval: Duration,
    /// Derive flame graphs from spans. Default true (false: only forward profiles).
    #[serde(default = "d_true")]
    pub traces: bool,
    /// Distinct stacks per service per interval; more go to `[overflow]`. Default 10000.
    #[serde(default = "d_max_stacks")]
    pub max_stacks_per_service: usize,
    /// Services per interval; spans of more services are left out. Default 1000.
    #[serde(default = "d_max_services")]
    pub max_services: usize,
    /// Spans held until their trace settles; over it, the oldest traces are folded
    /// early. Default 100000.
    #[serde(default = "d_max_pending")]
    pub max_pending_spans: usize,
    /// Resource attributes that become labels, besides `service_name`. Default none.
    #[serde(default)]
    pub labels_from_resource: Vec<String>,
    /// Prefix stacks with the upstream services seen in the same trace. Default false.
    #[serde(default)]
    pub upstream_prefix: bool,
    /// How OTLP profiles are forwarded.
    #[serde(default)]
    pub profiles: ProfilesConfig,
    /// Per-request timeout. Default 10s.
    #[serde(default = "d_timeout", deserialize_with = "de_duration")]
    pub timeout: Duration,
}

/// `auth:` either `{basic: {username, password}}` or `{bearer: TOKEN}`.
#[derive(Clone, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthConfig {
    Basic { username: String, password: String },
    Bearer(String),
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
            Self::Bearer(_) => write!(f, "Bearer(<redacted>)"),
        }
    }
}

/// `profiles:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfilesConfig {
    /// `pprof` (default: converted, to `/ingest`, any Pyroscope) or `otlp` (as received,
    /// to `/v1development/profiles`, Pyroscope ≥ 1.20).
    #[serde(default)]
    pub mode: ProfilesMode,
}

/// See [`ProfilesConfig::mode`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProfilesMode {
    #[default]
    Pprof,
    Otlp,
}

fn d_interval() -> Duration {
    Duration::from_secs(10)
}
fn d_true() -> bool {
    true
}
fn d_max_stacks() -> usize {
    10_000
}
fn d_max_services() -> usize {
    1000
}
fn d_max_pending() -> usize {
    100_000
}
fn d_timeout() -> Duration {
    Duration::from_secs(10)
}

impl PyroscopeConfig {
    /// Problems with the values, as `(key, message)`.
    #[must_use]
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut p = Vec::new();
        match self.endpoint.parse::<http::Uri>() {
            Ok(u) if !matches!(u.scheme_str(), Some("http" | "https")) => p.push((
                "endpoint",
                format!("`{}`: use an http:// or https:// URL", self.endpoint),
            )),
            Ok(u) if u.host().is_none_or(str::is_empty) => {
                p.push(("endpoint", format!("`{}` has no host", self.endpoint)));
            }
            Ok(u) if u.query().is_some() => p.push((
                "endpoint",
                format!("`{}`: give the base URL only", self.endpoint),
            )),
            Ok(_) => {}
            Err(e) => p.push(("endpoint", format!("`{}`: {e}", self.endpoint))),
        }
        if self.interval < Duration::from_secs(1) {
            p.push(("interval", "must be at least 1s".to_owned()));
        }
        if self.timeout.is_zero() {
            p.push(("timeout", "must be greater than 0".to_owned()));
        }
        for (key, v) in [
            ("max_stacks_per_service", self.max_stacks_per_service),
            ("max_services", self.max_services),
            ("max_pending_spans", self.max_pending_spans),
        ] {
            if v == 0 {
                p.push((key, "must be greater than 0".to_owned()));
            }
        }
        if let Some(t) = &self.tenant
            && (t.is_empty() || http::HeaderValue::from_str(t).is_err())
        {
            p.push(("tenant", "must be a non-empty header value".to_owned()));
        }
        let bad = |s: &str| s.chars().any(char::is_control);
        match &self.auth {
            Some(AuthConfig::Basic { username, password })
                if username.is_empty()
                    || username.contains(':')
                    || bad(username)
                    || bad(password) =>
            {
                p.push((
                    "auth.basic",
                    "username must be non-empty, without `:`; no control characters".to_owned(),
                ));
            }
            Some(AuthConfig::Bearer(t)) if t.is_empty() || bad(t) => {
                p.push(("auth.bearer", "must be a non-empty token".to_owned()));
            }
            _ => {}
        }
        let mut seen = std::collections::HashSet::new();
        for k in &self.labels_from_resource {
            let label = name::label_name(k);
            if k.trim().is_empty() || k == "service.name" || !seen.insert(label.clone()) {
                p.push((
                    "labels_from_resource",
                    format!("`{k}`: give each attribute once (service.name is always used)"),
                ));
            } else if label == "service_name" || label.starts_with("__") {
                p.push((
                    "labels_from_resource",
                    format!("`{k}` would become the reserved label `{label}`"),
                ));
            }
        }
        p
    }
}

/// A trace-derived request waiting in the outbox.
struct Pending {
    req: Outgoing,
    first_try: Instant,
    due: Instant,
    backoff: Duration,
}

/// Per-outcome request counters of one format.
struct Outcomes {
    ok: Counter,
    retry: Counter,
    rejected: Counter,
    dropped: Counter,
}

impl Outcomes {
    fn new(exporter: &str, format: &'static str) -> Self {
        let c = |outcome: &'static str| metrics::counter!(m::PYROSCOPE_REQUESTS, "exporter" => exporter.to_owned(), "format" => format, "outcome" => outcome);
        Self {
            ok: c("ok"),
            retry: c("retry"),
            rejected: c("rejected"),
            dropped: c("dropped"),
        }
    }
}

/// Sends trace-derived profiles and OTLP profiles to one Pyroscope server.
pub struct PyroscopeExporter {
    name: String,
    cfg: PyroscopeConfig,
    retry: RetryConfig,
    client: Client,
    aggregator: Aggregator,
    window_start: SystemTime,
    next_flush: Instant,
    outbox: VecDeque<Pending>,
    outbox_bytes: usize,
    /// Requests of the profile batch being sent (a retry resumes at the first unsent).
    profile_batch: Option<u64>,
    profile_reqs: VecDeque<Outgoing>,
    profile_rejected: Option<String>,
    folded: Outcomes,
    profiles: Outcomes,
    overflow: Counter,
    services_dropped: Counter,
    retries: Counter,
    pending_gauge: Gauge,
    last_counts: folded::Counts,
}

impl PyroscopeExporter {
    /// # Errors
    /// A message when the config cannot make an HTTP client.
    pub fn new(name: &str, cfg: &PyroscopeConfig, retry: &RetryConfig) -> Result<Self, String> {
        let credentials = cfg.auth.as_ref().map(|a| match a {
            AuthConfig::Basic { username, password } => Credentials::Basic {
                username: username.clone(),
                password: password.clone(),
            },
            AuthConfig::Bearer(t) => Credentials::Bearer(t.clone()),
        });
        let client = Client::new(
            &cfg.endpoint,
            cfg.tenant.as_deref(),
            credentials.as_ref(),
            cfg.timeout,
        )?;
        let aggregator = Aggregator::new(folded::Config {
            labels_from_resource: cfg.labels_from_resource.clone(),
            upstream_prefix: cfg.upstream_prefix,
            max_stacks_per_service: cfg.max_stacks_per_service,
            max_services: cfg.max_services,
            max_pending_spans: cfg.max_pending_spans,
            settle: cfg.interval,
        });
        let format = match cfg.profiles.mode {
            ProfilesMode::Pprof => "pprof",
            ProfilesMode::Otlp => "otlp",
        };
        let l = || [("exporter", name.to_owned())];
        Ok(Self {
            name: name.to_owned(),
            cfg: cfg.clone(),
            retry: retry.clone(),
            client,
            aggregator,
            window_start: SystemTime::now(),
            next_flush: Instant::now() + cfg.interval,
            outbox: VecDeque::new(),
            outbox_bytes: 0,
            profile_batch: None,
            profile_reqs: VecDeque::new(),
            profile_rejected: None,
            folded: Outcomes::new(name, "folded"),
            profiles: Outcomes::new(name, format),
            overflow: metrics::counter!(m::PYROSCOPE_STACKS_OVERFLOW, &l()),
            services_dropped: metrics::counter!(m::PYROSCOPE_SPANS_DROPPED, "exporter" => name.to_owned(), "reason" => "max_services"),
            retries: metrics::counter!(m::EXPORTER_RETRIES, &l()),
            pending_gauge: metrics::gauge!(m::PYROSCOPE_PENDING_SPANS, &l()),
            last_counts: folded::Counts::default(),
        })
    }

    /// Ends the interval: one `/ingest` request per service joins the outbox.
    fn close_interval(&mut self, now: Instant, force: bool) {
        self.aggregator.settle(now, force);
        let until = SystemTime::now();
        let (from_s, until_s) = (unix_secs(self.window_start), unix_secs(until));
        for p in self.aggregator.take_interval() {
            let req = requests::folded(&p.key, &p.lines, from_s, until_s.max(from_s + 1));
            self.enqueue(req, now);
        }
        self.window_start = until;
        self.update_counts();
    }

    fn enqueue(&mut self, req: Outgoing, now: Instant) {
        self.outbox_bytes += req.body.len();
        self.outbox.push_back(Pending {
            req,
            first_try: now,
            due: now,
            backoff: self.retry.initial,
        });
        while self.outbox_bytes > MAX_OUTBOX_BYTES {
            let Some(old) = self.outbox.pop_front() else {
                break;
            };
            self.outbox_bytes -= old.req.body.len();
            self.folded.dropped.increment(1);
            tracing::error!(exporter = %self.name, "pyroscope outbox full: oldest profile dropped");
        }
    }

    fn update_counts(&mut self) {
        let c = self.aggregator.counts;
        self.overflow
            .increment(c.overflow_spans - self.last_counts.overflow_spans);
        self.services_dropped
            .increment(c.dropped_spans - self.last_counts.dropped_spans);
        self.last_counts = c;
        self.pending_gauge.set(self.aggregator.pending() as f64);
    }

    /// Sends every due outbox request once; `final_try` drops what fails.
    async fn send_due(&mut self, now: Instant, final_try: bool) -> Result<(), ExportError> {
        let mut first_error = None;
        let mut kept = VecDeque::with_capacity(self.outbox.len());
        while let Some(mut p) = self.outbox.pop_front() {
            if p.due > now && !final_try {
                kept.push_back(p);
                continue;
            }
            match self.client.send(&p.req).await {
                Ok(_) => {
                    self.outbox_bytes -= p.req.body.len();
                    self.folded.ok.increment(1);
                }
                Err(ExportError::Retryable { message, after })
                    if !final_try
                        && now.duration_since(p.first_try) + after.unwrap_or(p.backoff)
                            <= self.retry.max_elapsed =>
                {
                    let wait = after.unwrap_or(p.backoff).min(self.retry.max);
                    p.due = now + wait;
                    p.backoff = (p.backoff * 2).min(self.retry.max);
                    self.folded.retry.increment(1);
                    self.retries.increment(1);
                    tracing::warn!(exporter = %self.name, error = %message, retry_in_ms = wait.as_millis() as u64, "pyroscope push failed; will retry");
                    first_error.get_or_insert(ExportError::Retryable { message, after });
                    kept.push_back(p);
                }
                Err(e) => {
                    self.outbox_bytes -= p.req.body.len();
                    match &e {
                        ExportError::Permanent(_) => self.folded.rejected.increment(1),
                        ExportError::Retryable { .. } => self.folded.dropped.increment(1),
                    }
                    tracing::error!(exporter = %self.name, error = %e, "pyroscope push failed; profile dropped");
                    first_error.get_or_insert(e);
                }
            }
        }
        self.outbox = kept;
        first_error.map_or(Ok(()), Err)
    }

    /// The requests that carry one OTLP profiles request, per the configured mode.
    fn profile_requests(&self, req: &ExportProfilesServiceRequest) -> Vec<Outgoing> {
        match self.cfg.profiles.mode {
            ProfilesMode::Otlp => vec![requests::otlp(req)],
            ProfilesMode::Pprof => {
                let now = unix_secs(SystemTime::now());
                let (out, failed) = requests::pprof(req, &self.cfg.labels_from_resource, now);
                for e in failed {
                    tracing::warn!(exporter = %self.name, error = %e, "profile not converted to pprof; left out");
                }
                out
            }
        }
    }
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Exporter for PyroscopeExporter {
    async fn export(&mut self, batch: &Batch) -> Result<(), ExportError> {
        if batch.profiles().is_empty() {
            if self.cfg.traces {
                let now = Instant::now();
                for rs in batch.resource_spans() {
                    self.aggregator.add(rs, now);
                }
                self.update_counts();
            }
            return Ok(());
        }
        if self.profile_batch != Some(batch.id()) {
            self.profile_batch = Some(batch.id());
            self.profile_rejected = None;
            self.profile_reqs = batch
                .profiles()
                .iter()
                .flat_map(|p| self.profile_requests(&p.request))
                .collect();
        }
        while let Some(req) = self.profile_reqs.front() {
            match self.client.send(req).await {
                Ok(body) => {
                    self.profiles.ok.increment(1);
                    if req.path.starts_with("/v1development")
                        && let Ok(r) = ExportProfilesServiceResponse::decode(body)
                        && let Some(ps) = r.partial_success.filter(|p| p.rejected_profiles > 0)
                    {
                        tracing::warn!(exporter = %self.name, rejected = ps.rejected_profiles, message = %ps.error_message, "Pyroscope rejected some profiles");
                    }
                }
                Err(e @ ExportError::Retryable { .. }) => {
                    self.profiles.retry.increment(1);
                    return Err(e);
                }
                Err(ExportError::Permanent(message)) => {
                    self.profiles.rejected.increment(1);
                    tracing::error!(exporter = %self.name, error = %message, "Pyroscope rejected a profile");
                    self.profile_rejected.get_or_insert(message);
                }
            }
            self.profile_reqs.pop_front();
        }
        match self.profile_rejected.take() {
            Some(message) => Err(ExportError::Permanent(message)),
            None => Ok(()),
        }
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(TICK)
    }

    async fn tick(&mut self) -> Result<(), ExportError> {
        let now = Instant::now();
        if self.cfg.traces {
            if now >= self.next_flush {
                self.close_interval(now, false);
                self.next_flush = now + self.cfg.interval;
            } else {
                self.pending_gauge.set(self.aggregator.pending() as f64);
            }
        }
        self.send_due(now, false).await
    }

    async fn shutdown(&mut self) {
        let now = Instant::now();
        if self.cfg.traces {
            self.close_interval(now, true);
        }
        if let Err(e) = self.send_due(now, true).await {
            tracing::error!(exporter = %self.name, error = %e, "pyroscope: final push failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<PyroscopeConfig, String> {
        serde_saphyr::from_str(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_auth_forms() {
        let c = parse("endpoint: http://127.0.0.1:4040\n").expect("valid");
        assert_eq!(c.interval, Duration::from_secs(10));
        assert_eq!((c.max_stacks_per_service, c.max_services), (10_000, 1000));
        assert_eq!(c.profiles.mode, ProfilesMode::Pprof);
        assert!(c.traces && !c.upstream_prefix && c.problems().is_empty());
        let c = parse("endpoint: http://h\nauth: {basic: {username: u, password: p}}\n")
            .expect("basic");
        assert!(matches!(c.auth, Some(AuthConfig::Basic { .. })));
        assert_eq!(format!("{:?}", c.auth), "Some(Basic(u, <redacted>))");
        let c = parse("endpoint: http://h\nauth: {bearer: t0k}\nprofiles: {mode: otlp}\n")
            .expect("bearer");
        assert!(matches!(c.auth, Some(AuthConfig::Bearer(ref t)) if t == "t0k"));
        assert_eq!(c.profiles.mode, ProfilesMode::Otlp);
        assert!(parse("endpoint: http://h\nauth: {token: x}\n").is_err());
        assert!(parse("endpoint: http://h\nprofiles: {mode: jfr}\n").is_err());
    }

    #[test]
    fn problems_table() {
        let check = |yaml: &str, key: &str| {
            let c = parse(&format!("endpoint: http://h:4040\n{yaml}")).expect("parses");
            let p = c.problems();
            assert!(p.iter().any(|(k, _)| *k == key), "{yaml}: {p:?}");
        };
        check("interval: 0s\n", "interval");
        check("interval: 500ms\n", "interval");
        check("timeout: 0s\n", "timeout");
        check("max_stacks_per_service: 0\n", "max_stacks_per_service");
        check("max_services: 0\n", "max_services");
        check("tenant: ''\n", "tenant");
        check("labels_from_resource: [a.b, a_b]\n", "labels_from_resource");
        check("labels_from_resource: [__name__]\n", "labels_from_resource");
        check(
            "labels_from_resource: [service_name]\n",
            "labels_from_resource",
        );
        check("auth: {bearer: ''}\n", "auth.bearer");
        check(
            "auth: {basic: {username: 'a:b', password: p}}\n",
            "auth.basic",
        );
        check("labels_from_resource: [a, a]\n", "labels_from_resource");
        check(
            "labels_from_resource: [service.name]\n",
            "labels_from_resource",
        );
        for bad in ["nonsense", "ftp://h", "http://", "http://h?x=1"] {
            let c = parse(&format!("endpoint: '{bad}'\n")).expect("parses");
            assert!(c.problems().iter().any(|(k, _)| *k == "endpoint"), "{bad}");
        }
    }

    #[test]
    fn config_errors_carry_their_paths() {
        let text = "receivers:\n  otlp:\n    grpc: { endpoint: 127.0.0.1:0 }\nexporters:\n  p:\n    type: pyroscope\n    endpoint: 'ftp://x'\n    interval: 0s\n    auth: { bearer: '' }\n  q:\n    type: pyroscope\n    endpoint: http://h\n    colour: red\n  r:\n    type: pyroscope\n";
        let errs = crate::config::parse(text, &|_| None).expect_err("invalid");
        let text = errs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n");
        for want in [
            "exporters.p.endpoint: `ftp://x`: use an http:// or https:// URL",
            "exporters.p.interval: must be at least 1s",
            "exporters.p.auth.bearer: must be a non-empty token",
            "exporters.q.colour: unknown field `colour`",
            "exporters.r.endpoint: missing (required)",
        ] {
            assert!(text.contains(want), "missing {want:?} in:\n{text}");
        }
    }
}
