//! The `null` exporter: accepts every batch and keeps nothing. For measuring the
//! gateway's own cost, and for pipelines that only feed metrics.

use super::{ExportError, Exporter};
use crate::pipeline::Batch;

/// Discards batches.
#[derive(Debug, Default)]
pub struct NullExporter;

impl Exporter for NullExporter {
    async fn export(&mut self, _batch: &Batch) -> Result<(), ExportError> {
        Ok(())
    }
}
