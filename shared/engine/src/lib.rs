//! The pipeline engine shared by the local CLI and the AWS Lambda functions: poll → queue →
//! sink → audit, and replay, driven by the ports of `mlc-core` only.
//!
//! Module map:
//! - [`runtime`]: [`FlowRuntime`], the ports one flow runs on;
//! - [`derive`]: derived fields (status, due date, aging, balance) read from the one clock;
//! - [`poll`]: one poll of a flow under its lease: change detection, hashing, change batches,
//!   watermark advanced only after every batch was accepted;
//! - [`sink`]: change batches → destination with per-record outcomes, never-regress checks,
//!   dead-lettering and message verdicts (ack / retry with delay);
//! - [`replay`]: dead-letter queue → main queue, filtered and audited;
//! - [`local`]: the one-process driver the CLI uses (poll then drain the queue).
//!
//! Invariants: a sink never applies a version older than or equal to the one applied; the
//! watermark moves only after the queue accepted every batch of the poll; every record step is
//! audited.

pub mod children;
pub mod derive;
pub mod error;
pub mod local;
pub mod poll;
pub mod replay;
pub mod runtime;
pub mod sink;

pub use error::{EngineError, Result};
pub use poll::{poll_flow, poll_flow_with, PollOptions, PollReport};
pub use replay::{replay, ReplayFilter, ReplayReport};
pub use runtime::FlowRuntime;
pub use sink::{process_deliveries, MessageVerdict, SinkReport, SinkSet};
