//! Engine errors.

use mlc_core::ports::{SinkError, SourceError};
use mlc_core::PortError;

/// Result of an engine step.
pub type Result<T> = std::result::Result<T, EngineError>;

/// Why a poll, sink pass or replay stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// A store or the queue failed.
    #[error("state store or queue failed")]
    Port(#[from] PortError),
    /// SYSPRO failed.
    #[error("flow {flow}: reading {entity} from SYSPRO failed")]
    Source {
        /// The flow.
        flow: String,
        /// The entity being read.
        entity: String,
        /// The cause.
        #[source]
        source: SourceError,
    },
    /// A destination failed as a whole.
    #[error("flow {flow}: destination failed")]
    Sink {
        /// The flow.
        flow: String,
        /// The cause.
        #[source]
        source: SinkError,
    },
    /// SYSPRO holds data the flow cannot work with (a reference table row, say).
    #[error("flow {flow}: {message}")]
    SourceData {
        /// The flow.
        flow: String,
        /// What, where and why.
        message: String,
    },
    /// The flow is not configured.
    #[error("unknown flow {0:?}")]
    UnknownFlow(String),
    /// Another poll holds the flow's lease.
    #[error("flow {0}: another poll holds the lease")]
    LeaseHeld(String),
    /// This poll's lease lapsed and another poll took it: it stopped before sending more.
    #[error("flow {0}: the poll's lease lapsed and another poll took it; stopped before sending")]
    LeaseLost(String),
    /// The flow does not sync this entity (`preview --entity`).
    #[error("flow {flow} does not sync entity {entity}")]
    UnknownEntity {
        /// The flow.
        flow: String,
        /// The entity asked for.
        entity: String,
    },
    /// SYSPRO has no record with this key (`preview`).
    #[error("flow {flow}: SYSPRO has no {entity} record with key {key:?}")]
    RecordNotFound {
        /// The flow.
        flow: String,
        /// The entities looked in, each with the form of its key.
        entity: String,
        /// The key as given.
        key: String,
    },
}
