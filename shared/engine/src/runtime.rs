//! The ports one flow runs on.

use std::sync::Arc;
use std::time::Duration;

use mlc_core::config::{FlowConfig, Settings};
use mlc_core::ports::{AuditLog, Queue, RecordStateStore, WatermarkStore};
use mlc_core::Clock;

/// Everything a poll or a sink pass of one flow needs besides the source and the sink.
#[derive(Clone)]
pub struct FlowRuntime {
    /// The flow's configuration.
    pub flow: Arc<FlowConfig>,
    /// Process-wide settings (batch sizes, attempts).
    pub settings: Arc<Settings>,
    /// Watermarks and leases.
    pub watermarks: Arc<dyn WatermarkStore>,
    /// Record state.
    pub state: Arc<dyn RecordStateStore>,
    /// Audit trail.
    pub audit: Arc<dyn AuditLog>,
    /// The destination's queue.
    pub queue: Arc<dyn Queue>,
    /// The one clock.
    pub clock: Arc<dyn Clock>,
    /// How long a poll's lease lasts before it must be renewed.
    pub lease_ttl: Duration,
}

impl std::fmt::Debug for FlowRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowRuntime")
            .field("flow", &self.flow.id)
            .finish_non_exhaustive()
    }
}
