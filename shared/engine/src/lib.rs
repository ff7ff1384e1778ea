//! The pipeline engine shared by the local CLI and the AWS Lambda functions: poll → queue →
//! sink → audit, and replay, driven by the ports of `mlc-core` only.
//!
//! Module map:
//! - [`runtime`]: [`FlowRuntime`], the ports one flow runs on;
//! - [`derive`]: derived fields (status, due date, aging, balance) read from the one clock;
//! - [`read`]: an entity's rows as the destination needs them (lookups, child aggregates);
//! - [`plan`]: the change filter, the initial scope and the watermark's next value;
//! - [`calendar`]: which open records a new business date moves;
//! - [`heal`]: records sent long ago and never applied, re-sent from state;
//! - [`scope`]: the initial scope as filters;
//! - [`terms`]: invoice terms read from SYSPRO's `TblArTerms`;
//! - [`quality`]: rows that cannot be synced, recorded as source-data errors;
//! - [`poll`]: one poll of a flow under its lease: change detection, hashing, change batches,
//!   watermark advanced only after every batch was accepted;
//! - [`sink`]: change batches → destination with per-record outcomes, never-regress checks,
//!   dead-lettering and message verdicts (ack / retry with delay);
//! - [`replay`]: dead-letter queue → main queue, filtered and audited;
//! - [`preview`]: one record as a sync would write it now, beside the destination's values;
//! - [`local`]: the one-process driver the CLI uses (poll then drain the queue).
//!
//! Invariants: a sink never applies a version older than or equal to the one applied; the
//! watermark moves only after the queue accepted every batch of the poll; every record step is
//! audited.

pub mod calendar;
pub mod children;
pub mod derive;
pub mod error;
pub mod heal;
pub mod local;
pub mod plan;
pub mod poll;
pub mod preview;
pub mod quality;
pub mod read;
pub mod replay;
pub mod runtime;
pub mod scope;
pub mod sink;
pub mod terms;

pub use error::{EngineError, Result};
pub use poll::{poll_flow, poll_flow_with, PollOptions, PollReport, Resync};
pub use replay::{replay, ReplayFilter, ReplayReport};
pub use runtime::FlowRuntime;
pub use sink::{process_deliveries, MessageVerdict, SinkReport, SinkSet};
