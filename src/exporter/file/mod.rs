//! The `file` exporter: writes each batch as one JSON line, to a file (appending) or
//! to standard output (`path: "-"`). The embedded default config uses it so that a
//! newcomer sees spans pass through without any backend.

pub mod convert;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::pinpoint::assemble::{self, Assembler};
use super::{ExportError, Exporter, zipkin};
use crate::ids::{AgentId, MappingCache};
use crate::pipeline::Batch;

/// `exporters.<name>:` keys of `type: file`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// File to append to; `-` is standard output. Parent folders are created.
    pub path: String,
    /// Line format. Default `otlp_json`.
    #[serde(default)]
    pub format: FileFormat,
}

/// See [`FileConfig::format`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    /// One OTLP/JSON `TracesData` object per batch.
    #[default]
    OtlpJson,
    /// One line per Pinpoint span or span chunk the Pinpoint exporter would send,
    /// assembled the same way (default Pinpoint settings: marker `otel`, 3 s hold).
    PinpointJson,
    /// One JSON array of Zipkin v2 spans per batch (what the `zipkin` exporter sends).
    ZipkinJson,
}

/// Writes batches as JSON lines.
pub struct FileExporter {
    /// The exporter's name (labels its rejected-span counts).
    name: String,
    out: Box<dyn AsyncWrite + Send + Unpin>,
    format: FileFormat,
    buf: Vec<u8>,
    /// For `pinpoint_json`: segments are assembled before they are written.
    assembler: Option<Assembler>,
}

impl FileExporter {
    /// Opens (creating, appending) the configured file, or standard output.
    ///
    /// # Errors
    /// A message naming the path when it cannot be opened.
    pub async fn open(
        name: &str,
        cfg: &FileConfig,
        ids: Arc<MappingCache>,
    ) -> Result<Self, String> {
        let out: Box<dyn AsyncWrite + Send + Unpin> = if cfg.path == "-" {
            Box::new(tokio::io::stdout())
        } else {
            let path = std::path::Path::new(&cfg.path);
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(|e| format!("cannot create folder {}: {e}", dir.display()))?;
            }
            let f = tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .await
                .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            Box::new(f)
        };
        let assembler = if cfg.format == FileFormat::PinpointJson {
            let marker = AgentId::new("otel").map_err(|e| e.to_string())?;
            let config = assemble::Config::with_defaults(marker);
            Some(Assembler::new(config, ids))
        } else {
            None
        };
        Ok(Self {
            name: name.to_owned(),
            out,
            format: cfg.format,
            buf: Vec::with_capacity(64 * 1024),
            assembler,
        })
    }

    /// Writes what the assembler has ready (`pinpoint_json` only).
    async fn write_ready(&mut self, force: bool) -> Result<(), ExportError> {
        let Some(a) = self.assembler.as_mut() else {
            return Ok(());
        };
        self.buf.clear();
        let mut holds = Vec::new();
        for o in a.flush(Instant::now(), force) {
            convert::pinpoint_json_line(&o, &mut self.buf)
                .map_err(|e| ExportError::Permanent(format!("cannot encode message: {e}")))?;
            holds.extend(o.holds);
        }
        self.write_buf().await?;
        // Written: the records of these spans in a persistent queue may go (on an error
        // the holds go unreleased and the batches are replayed on the next start).
        holds
            .into_iter()
            .for_each(crate::pipeline::persist::Hold::release);
        Ok(())
    }

    async fn write_buf(&mut self) -> Result<(), ExportError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let io = |e: std::io::Error| ExportError::Retryable {
            message: format!("write failed: {e}"),
            after: None,
        };
        self.out.write_all(&self.buf).await.map_err(io)?;
        self.out.flush().await.map_err(io)
    }
}

impl Exporter for FileExporter {
    async fn export(&mut self, batch: &Batch) -> Result<(), ExportError> {
        self.buf.clear();
        match self.format {
            FileFormat::OtlpJson => {
                convert::otlp_json_line(batch.resource_spans(), &mut self.buf)
                    .map_err(|e| ExportError::Permanent(format!("cannot encode batch: {e}")))?;
                self.write_buf().await
            }
            FileFormat::ZipkinJson => {
                let converted = zipkin::convert::convert(batch.resource_spans());
                zipkin::count_rejected(&self.name, &converted.rejected);
                serde_json::to_writer(&mut self.buf, &converted.spans)
                    .map_err(|e| ExportError::Permanent(format!("cannot encode batch: {e}")))?;
                self.buf.push(b'\n');
                self.write_buf().await
            }
            FileFormat::PinpointJson => {
                if let Some(a) = self.assembler.as_mut() {
                    let now = Instant::now();
                    let hold = batch.hold();
                    for block in batch.blocks() {
                        a.add_block_held(block, now, None, &hold);
                    }
                    hold.release();
                }
                self.write_ready(false).await
            }
        }
    }

    fn tick_interval(&self) -> Option<Duration> {
        self.assembler.as_ref().map(|_| Duration::from_millis(200))
    }

    async fn tick(&mut self) -> Result<(), ExportError> {
        self.write_ready(false).await
    }

    async fn shutdown(&mut self) {
        if let Err(e) = self.write_ready(true).await {
            tracing::warn!(error = %e, "file exporter: final write failed");
        }
        if let Err(e) = self.out.flush().await {
            tracing::warn!(error = %e, "file exporter: final flush failed");
        }
    }
}
