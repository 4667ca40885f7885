//! Exporters: what leaves the gateway. Each exporter is a folder (or file) with a pure
//! `convert` part and a transport part, driven by one pipeline worker.
//!
//! An exporter sees only [`Batch`]es; it never touches receivers or other exporters.
//! Only kinds whose [`ExporterKind::takes_profiles`] is true get profile batches.

pub mod file;
pub mod http;
pub mod null;
pub mod otlp;
pub mod pinpoint;
pub mod pyroscope;
pub mod zipkin;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{ExporterConfig, ExporterKind};
use crate::ids::MappingCache;
use crate::pipeline::{Batch, QueueReceiver, worker};

/// Why one export call failed, and whether the worker should try the batch again.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ExportError {
    /// Worth retrying (timeouts, connection errors, 429/5xx); `after` honours a
    /// server's Retry-After.
    #[error("{message}")]
    Retryable {
        message: String,
        after: Option<Duration>,
    },
    /// Retrying cannot help (the backend rejected the data).
    #[error("{0}")]
    Permanent(String),
}

/// A destination for batches of spans.
pub trait Exporter: Send + 'static {
    /// Delivers one batch.
    ///
    /// # Errors
    /// [`ExportError`] saying whether a retry could help.
    fn export(&mut self, batch: &Batch) -> impl Future<Output = Result<(), ExportError>> + Send;

    /// Flushes and closes; called once after the last batch.
    fn shutdown(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// Spans that left the gateway since the last call, for exporters that hold spans
    /// back (a delivered batch's size would count held spans as sent). `None`: count
    /// every delivered batch's spans.
    fn take_spans_sent(&mut self) -> Option<u64> {
        None
    }

    /// How often the worker calls [`Exporter::tick`] (for exporters that hold data, such
    /// as segments waiting for their parents). `None`: never.
    fn tick_interval(&self) -> Option<Duration> {
        None
    }

    /// The worker gave up on `batch` (retries exhausted or a permanent error): drop
    /// what is still held to be sent for it, and say how many spans that was, which
    /// the worker counts as failed. `None`: the batch's spans (nothing is held).
    fn abandon(&mut self, batch: &Batch) -> Option<u64> {
        let _ = batch;
        None
    }

    /// Periodic work between batches.
    ///
    /// # Errors
    /// Like [`Exporter::export`]; the worker logs it and carries on.
    fn tick(&mut self) -> impl Future<Output = Result<(), ExportError>> + Send {
        async { Ok(()) }
    }
}

/// What exporters share across the process.
pub struct Shared {
    /// The identity mapping cache (parent resolution, Pinpoint-born txids).
    pub ids: Arc<MappingCache>,
}

/// An exporter that could not be built from its config.
#[derive(Debug, thiserror::Error)]
#[error("exporter `{name}`: {message}")]
pub struct BuildError {
    pub name: String,
    pub message: String,
}

impl ExporterKind {
    /// The `type:` value that selects this kind in config.
    #[must_use]
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::File(_) => "file",
            Self::Pinpoint(_) => "pinpoint",
            Self::Pyroscope(_) => "pyroscope",
            Self::Null => "null",
            Self::Otlp(_) => "otlp",
            Self::Zipkin(_) => "zipkin",
        }
    }

    /// Whether exporters of this kind take OTLP profiles (the others never see any).
    #[must_use]
    pub fn takes_profiles(&self) -> bool {
        matches!(self, Self::Pyroscope(_))
    }
}

/// Builds the exporter `cfg` describes and starts its worker on `queue`.
///
/// # Errors
/// [`BuildError`] when the exporter cannot start (e.g. its file cannot be opened, or no
/// CA certificate is found for an https endpoint).
pub async fn start(
    cfg: &ExporterConfig,
    shared: &Shared,
    queue: QueueReceiver,
    stop: watch::Receiver<bool>,
) -> Result<JoinHandle<()>, BuildError> {
    let fail = |message: String| BuildError {
        name: cfg.name.clone(),
        message,
    };
    Ok(match &cfg.kind {
        ExporterKind::File(f) => {
            let e = file::FileExporter::open(&cfg.name, f, Arc::clone(&shared.ids))
                .await
                .map_err(fail)?;
            tokio::spawn(worker::run(e, queue, stop))
        }
        ExporterKind::Pinpoint(p) => {
            let e = pinpoint::PinpointExporter::new(&cfg.name, p, Arc::clone(&shared.ids))
                .map_err(fail)?;
            tokio::spawn(worker::run(e, queue, stop))
        }
        ExporterKind::Zipkin(z) => {
            let e = zipkin::ZipkinExporter::new(&cfg.name, z).map_err(fail)?;
            tokio::spawn(worker::run(e, queue, stop))
        }
        ExporterKind::Pyroscope(p) => {
            let e = pyroscope::PyroscopeExporter::new(&cfg.name, p, &cfg.retry).map_err(fail)?;
            tokio::spawn(worker::run(e, queue, stop))
        }
        ExporterKind::Otlp(o) => {
            let e = otlp::build(&cfg.name, o, &cfg.batch, &cfg.retry).map_err(fail)?;
            tokio::spawn(worker::run(e, queue, stop))
        }
        ExporterKind::Null => tokio::spawn(worker::run(null::NullExporter, queue, stop)),
    })
}
