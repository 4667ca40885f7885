//! The command line: `run`, `check-config`, `translate`, `loadgen`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{self, ConfigSource, LogFormat};

/// Exit code for a bad config (EX_CONFIG from sysexits is 78; like linkerd we use
/// EX_USAGE, 64, for "the input you gave me is wrong").
pub const EXIT_BAD_CONFIG: u8 = 64;

/// A gateway between OpenTelemetry (OTLP, W3C) and Pinpoint APM.
#[derive(Debug, Parser)]
#[command(name = "otel-pinpoint-bridge", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Run {
        /// Config file; without it the embedded default (config/gateway.yaml) is used.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Validate a config file and print every error with its path (exit 64 if invalid).
    CheckConfig {
        /// Config file; without it the embedded default (config/gateway.yaml) is checked.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Translate trace-context headers between W3C/B3 and Pinpoint, either way.
    ///
    /// Headers come as arguments (`'traceparent: 00-…'`) or, without any, from standard
    /// input, one `Name: value` per line. Prints the translated headers, or with `--json`
    /// the whole translation (direction, decoded ids, warnings).
    Translate {
        /// `Name: value` headers; read from standard input when none are given.
        headers: Vec<String>,
        /// Print the translation as JSON.
        #[arg(long)]
        json: bool,
        /// agentId of bridge-born transaction ids.
        #[arg(long, default_value = "otel")]
        marker: String,
        /// Parent application to write as Pinpoint-pAppName when the input has none.
        #[arg(long)]
        app_name: Option<String>,
        /// Service type code to write as Pinpoint-pAppType with --app-name.
        #[arg(long)]
        app_type: Option<i32>,
        /// host:port to write as Pinpoint-Host.
        #[arg(long)]
        target_host: Option<String>,
    },
    /// Send synthetic OTLP traces to a gateway (or any OTLP receiver) and report the
    /// achieved rate, refusals, errors and export latency.
    Loadgen(LoadgenArgs),
    /// A blackhole Pinpoint collector for benchmarks (src/blackhole.rs): answers the
    /// exporter's calls, counts, keeps nothing.
    #[command(hide = true)]
    BenchCollector(BenchCollectorArgs),
}

/// Options of `bench-collector`.
#[derive(Debug, clap::Args)]
pub struct BenchCollectorArgs {
    /// gRPC address: every Pinpoint service on one port (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
    /// HTTP address of `GET /stats` (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    control: std::net::SocketAddr,
    /// Decode every span message fully with the generated types (slower).
    #[arg(long)]
    verify: bool,
}

/// Options of `loadgen`.
#[derive(Debug, clap::Args)]
pub struct LoadgenArgs {
    /// Target: `http://host:port` (gRPC), or the OTLP/HTTP base or `/v1/traces` URL.
    #[arg(long, default_value = "http://127.0.0.1:4317")]
    endpoint: String,
    #[arg(long, value_enum, default_value = "grpc")]
    protocol: crate::loadgen::Protocol,
    /// Gzip each request.
    #[arg(long)]
    gzip: bool,
    /// Spans per second; omit (or 0) for unbounded.
    #[arg(long)]
    rate: Option<f64>,
    /// How long to send, e.g. `30s`, `2m`.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: std::time::Duration,
    /// Spans per request.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Spans per trace.
    #[arg(long, default_value_t = 10)]
    spans_per_trace: usize,
    /// Services (one `ResourceSpans` each) per request.
    #[arg(long, default_value_t = 5)]
    services: usize,
    /// Extra string attributes per span, beyond the semantic-convention ones.
    #[arg(long, default_value_t = 0)]
    attributes: usize,
    /// Length of each extra attribute value, in bytes.
    #[arg(long, default_value_t = 16)]
    attribute_len: usize,
    /// Fraction of spans with status ERROR.
    #[arg(long, default_value_t = 0.05)]
    error_ratio: f64,
    /// Requests in flight at most.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Per-request timeout.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    timeout: std::time::Duration,
    /// First seed; request n uses seed + n.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Callee-first traffic: each trace's services call each other in a chain, and each
    /// service's spans are sent this many requests after its callee's (0 = off).
    #[arg(long, default_value_t = 0)]
    callee_first_lag: u64,
    /// Stop after this many requests (the run still ends at `--duration`); request n of
    /// those sent uses seed + n, so the bytes sent are the same on every run.
    #[arg(long)]
    count: Option<u64>,
    /// Encode this many requests at start and reuse them, trace ids rewritten per round
    /// (gRPC only; 0 = generate every request): loadgen costs far less per request.
    #[arg(long, default_value_t = 0)]
    pool: usize,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
    /// Write the span id of every acknowledged span to this file (hex, one a line).
    #[arg(long)]
    acked_ids: Option<PathBuf>,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    crate::config::parse_duration(s)
}

/// Exit code for input that cannot be translated (EX_DATAERR).
pub const EXIT_BAD_INPUT: u8 = 65;

/// Runs the parsed command line.
#[must_use]
pub fn main(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Run { config } => run(config),
        Command::CheckConfig { config } => check_config(config.as_ref()),
        Command::Translate {
            headers,
            json,
            marker,
            app_name,
            app_type,
            target_host,
        } => {
            let opts = crate::ids::TranslateOptions {
                marker,
                app_name,
                app_type,
                caller_span_id: None,
                target_host,
            };
            translate(&headers, json, &opts)
        }
        Command::Loadgen(args) => loadgen(args),
        Command::BenchCollector(a) => bench_collector(a),
    }
}

fn bench_collector(a: BenchCollectorArgs) -> ExitCode {
    // One worker: the collector should take as little of the benchmark's load core as
    // it can, and one thread is plenty for a blackhole.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let opts = crate::blackhole::Options {
        listen: a.listen,
        control: a.control,
        verify: a.verify,
    };
    match runtime.block_on(crate::blackhole::run(opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-collector: {e}");
            ExitCode::FAILURE
        }
    }
}

fn loadgen(a: LoadgenArgs) -> ExitCode {
    let opts = crate::loadgen::Options {
        endpoint: a.endpoint,
        protocol: a.protocol,
        gzip: a.gzip,
        rate: a.rate.filter(|r| *r != 0.0),
        duration: a.duration,
        concurrency: a.concurrency,
        timeout: a.timeout,
        shape: crate::testdata::Shape {
            services: a.services,
            spans: a.batch,
            spans_per_trace: a.spans_per_trace,
            error_ratio: a.error_ratio,
            extra_attributes: a.attributes,
            attribute_len: a.attribute_len,
        },
        seed: a.seed,
        acked_ids: a.acked_ids,
        callee_first_lag: a.callee_first_lag,
        count: a.count,
        pool: a.pool,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(crate::loadgen::run(opts)) {
        Ok(report) if a.json => match serde_json::to_string(&report) {
            Ok(s) => out(&s),
            Err(e) => {
                eprintln!("cannot print the report: {e}");
                ExitCode::FAILURE
            }
        },
        Ok(report) => out(report.to_string().trim_end()),
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}

fn load(path: Option<&PathBuf>) -> Result<config::Config, ExitCode> {
    let source = path.map_or(ConfigSource::Embedded, |p| ConfigSource::File(p));
    config::load(source).map_err(|e| {
        eprint!("invalid config {e}");
        ExitCode::from(EXIT_BAD_CONFIG)
    })
}

fn translate(args: &[String], json: bool, opts: &crate::ids::TranslateOptions) -> ExitCode {
    let text = if args.is_empty() {
        let mut s = String::new();
        if let Err(e) = std::io::Read::read_to_string(&mut std::io::stdin(), &mut s) {
            eprintln!("cannot read standard input: {e}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
        s
    } else {
        args.join("\n")
    };
    let result = crate::ids::parse_header_lines(&text)
        .and_then(|pairs| crate::ids::translate_headers(&pairs, opts));
    match result {
        Ok(t) if json => match serde_json::to_string_pretty(&t) {
            Ok(s) => out(&s),
            Err(e) => {
                eprintln!("cannot print the translation: {e}");
                ExitCode::FAILURE
            }
        },
        Ok(t) => {
            for w in &t.warnings {
                eprintln!("warning: {w}");
            }
            let lines: Vec<String> = t.headers.iter().map(|(n, v)| format!("{n}: {v}")).collect();
            out(&lines.join("\n"))
        }
        Err(e) => {
            eprintln!("cannot translate: {e}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}

fn check_config(path: Option<&PathBuf>) -> ExitCode {
    match load(path) {
        Ok(c) => {
            let name = path.map_or_else(
                || "config/gateway.yaml (embedded)".to_owned(),
                |p| p.display().to_string(),
            );
            out(&format!(
                "{name}: OK ({} exporter(s), {} route(s))",
                c.exporters.len(),
                c.routing.routes.len()
            ))
        }
        Err(code) => code,
    }
}

/// Writes one line to standard output. A closed pipe (`… | head`) ends the command
/// quietly with success: the reader has what it wanted.
fn out(line: &str) -> ExitCode {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{line}").and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cannot write to standard output: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(cfg: &config::LogConfig) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cfg.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(
            cfg.color
                .enabled(std::io::IsTerminal::is_terminal(&std::io::stderr())),
        )
        .with_writer(std::io::stderr);
    let _ = match cfg.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

fn run(path: Option<PathBuf>) -> ExitCode {
    let config = match load(path.as_ref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    init_logging(&config.log);
    match path {
        Some(p) => tracing::info!(config = %p.display(), "config loaded"),
        None => tracing::info!(config = "config/gateway.yaml (embedded)", "config loaded"),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let release_startup_pages = config.memory.release_startup_pages;
    runtime.block_on(async move {
        let running = match crate::app::start(config).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), "cannot start");
                return ExitCode::FAILURE;
            }
        };
        if release_startup_pages {
            let bytes = crate::memory::trim::release_startup_pages();
            tracing::debug!(bytes, "start-up pages handed back");
        }
        wait_for_signal().await;
        let report = running.shutdown().await;
        if report.undrained.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    })
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => tracing::info!(signal = "SIGINT", "signal received"),
                    _ = term.recv() => tracing::info!(signal = "SIGTERM", "signal received"),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only SIGINT stops the gateway");
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
