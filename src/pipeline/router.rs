//! Routing: which exporters receive which spans.
//!
//! This is the seam for config-driven routing rules. Today there is one route, "every
//! exporter gets every span", which shares one block among all exporters without copying.
//! A rule-based router replaces [`Router::route`]'s body and may split a block into
//! per-exporter parts; the pipeline around it does not change.

use std::sync::Arc;

use super::{Block, SharedBlock};

/// Decides the exporters (by index, in config order) for each block.
#[derive(Debug, Clone)]
pub struct Router {
    exporters: usize,
}

impl Router {
    /// Every exporter gets every span.
    #[must_use]
    pub fn all(exporters: usize) -> Self {
        Self { exporters }
    }

    /// Returns `(exporter index, the part of the block for it)` pairs.
    #[must_use]
    pub fn route(&self, block: Block) -> Vec<(usize, SharedBlock)> {
        let shared = Arc::new(block);
        (0..self.exporters)
            .map(|i| (i, Arc::clone(&shared)))
            .collect()
    }
}
