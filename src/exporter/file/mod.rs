//! The `file` exporter: writes each batch as one JSON line, to a file (appending) or
//! to standard output (`path: "-"`): OTLP/JSON, or the Zipkin v2 model. The embedded
//! default config uses it so that a newcomer sees spans pass through without any backend.

pub mod convert;

use serde::Deserialize;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::{ExportError, Exporter, zipkin};
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
    /// One JSON array of Zipkin v2 spans per batch (what the `zipkin` exporter sends).
    ZipkinJson,
}

/// Writes batches as JSON lines.
pub struct FileExporter {
    name: String,
    out: Box<dyn AsyncWrite + Send + Unpin>,
    format: FileFormat,
    buf: Vec<u8>,
}

impl FileExporter {
    /// Opens (creating, appending) the configured file, or standard output, for the
    /// exporter called `name`.
    ///
    /// # Errors
    /// A message naming the path when it cannot be opened.
    pub async fn open(name: &str, cfg: &FileConfig) -> Result<Self, String> {
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
        Ok(Self {
            name: name.to_owned(),
            out,
            format: cfg.format,
            buf: Vec::with_capacity(64 * 1024),
        })
    }
}

impl Exporter for FileExporter {
    async fn export(&mut self, batch: &Batch) -> Result<(), ExportError> {
        self.buf.clear();
        match self.format {
            FileFormat::OtlpJson => convert::otlp_json_line(batch.resource_spans(), &mut self.buf)
                .map_err(|e| ExportError::Permanent(format!("cannot encode batch: {e}")))?,
            FileFormat::ZipkinJson => {
                let converted = zipkin::convert::convert(batch.resource_spans());
                zipkin::count_rejected(&self.name, &converted.rejected);
                serde_json::to_writer(&mut self.buf, &converted.spans)
                    .map_err(|e| ExportError::Permanent(format!("cannot encode batch: {e}")))?;
                self.buf.push(b'\n');
            }
        }
        let io = |e: std::io::Error| ExportError::Retryable {
            message: format!("write failed: {e}"),
            after: None,
        };
        self.out.write_all(&self.buf).await.map_err(io)?;
        self.out.flush().await.map_err(io)
    }

    async fn shutdown(&mut self) {
        if let Err(e) = self.out.flush().await {
            tracing::warn!(error = %e, "file exporter: final flush failed");
        }
    }
}
