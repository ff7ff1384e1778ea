//! Domain types and ports of ml-connector. This crate does no I/O.
//!
//! Everything else plugs into the ports defined here:
//! - [`ports::Source`] reads SYSPRO (OData or e.net), page by page;
//! - [`ports::Sink`] writes one destination (Salesforce, Monday.com);
//! - [`ports::WatermarkStore`], [`ports::RecordStateStore`], [`ports::AuditLog`] and
//!   [`ports::Queue`] hold the pipeline's state (SQLite locally, DynamoDB/SQS in AWS);
//! - [`ports::Secrets`] resolves secret references (env vars locally, Secrets Manager in AWS).
//!
//! Module map:
//! - [`event`]: `RecordKey`, `SourceVersion`, `ChangeEvent`, `ChangeBatch` (what travels on the queue)
//! - [`watermark`], [`state`], [`audit`]: what the stores hold
//! - [`outcome`]: per-record results (`SyncOutcome`, `RecordOutcome`, `Failure`)
//! - [`config`]: `FlowConfig` and friends (parsing and validation live in `mlc-config`)
//! - [`entity`]: the SYSPRO entities we poll, their keys and columns
//! - [`mapping`]: field mapping with small transforms, pure
//! - [`money`]: decimals for money and quantities (never `f64`)
//! - [`view`]: the fields a destination reads and the fingerprint of its mapping
//! - [`preview`]: what a sync would do to one record (payload beside the destination's values)
//! - [`invoice`]: status (open / overdue / paid), due date and aging, from one clock
//! - [`clock`]: the one clock that tests and operators can set
//! - [`secret`]: redacting secret wrapper and references
//! - [`query`]: the source query (filter AST) that source adapters translate
//! - [`conformance`] (feature `conformance`): suites every storage/queue adapter runs

pub mod audit;
pub mod clock;
pub mod config;
pub mod entity;
pub mod error;
pub mod event;
pub mod invoice;
pub mod mapping;
pub mod money;
pub mod outcome;
pub mod ports;
pub mod preview;
pub mod query;
pub mod secret;
pub mod state;
pub mod view;
pub mod watermark;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use audit::{AuditEntry, ErrorLink};
pub use clock::{Clock, FixedClock, SystemClock};
pub use config::FlowConfig;
pub use entity::Entity;
pub use error::{PortError, PortResult};
pub use event::{ChangeBatch, ChangeEvent, Record, RecordKey, SourceVersion};
pub use outcome::{Failure, FailureKind, RecordOutcome, SyncOutcome};
pub use state::RecordState;
pub use watermark::{Lease, Watermark, WatermarkValue};
