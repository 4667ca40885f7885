//! Exporters: what leaves the gateway. Each exporter is a folder (or file) with a pure
//! `convert` part and a transport part, driven by one pipeline worker.
//!
//! An exporter sees only [`Batch`]es; it never touches receivers or other exporters.

pub mod file;
pub mod null;
pub mod zipkin;

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{ExporterConfig, ExporterKind};
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
            Self::Null => "null",
            Self::Zipkin(_) => "zipkin",
        }
    }
}

/// Builds the exporter `cfg` describes and starts its worker on `queue`.
///
/// # Errors
/// [`BuildError`] when the exporter cannot start (e.g. its file cannot be opened, or no
/// CA certificate is found for an https endpoint).
pub async fn start(
    cfg: &ExporterConfig,
    queue: QueueReceiver,
    stop: watch::Receiver<bool>,
) -> Result<JoinHandle<()>, BuildError> {
    let fail = |message: String| BuildError {
        name: cfg.name.clone(),
        message,
    };
    Ok(match &cfg.kind {
        ExporterKind::File(f) => {
            let e = file::FileExporter::open(&cfg.name, f).await.map_err(fail)?;
            tokio::spawn(worker::run(e, queue, stop))
        }
        ExporterKind::Zipkin(z) => {
            let e = zipkin::ZipkinExporter::new(&cfg.name, z).map_err(fail)?;
            tokio::spawn(worker::run(e, queue, stop))
        }
        ExporterKind::Null => tokio::spawn(worker::run(null::NullExporter, queue, stop)),
    })
}
