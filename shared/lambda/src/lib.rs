//! What the Lambda functions share, so that each function's `main.rs` stays a few lines: one
//! [`LambdaContext`] per container and one library function per handler.
//!
//! - `poll` (EventBridge `{"flow": "…"}`) → [`poll_handler`]: one poll of one flow under its
//!   lease; a concurrent second invocation for the same flow returns a report with
//!   `skipped: true`.
//! - `sink-salesforce`, `sink-monday` (SQS FIFO events) → [`sink_handler`]: change batches
//!   through the engine, `ReportBatchItemFailures` at message level; a message handed back gets
//!   its delay through `ChangeMessageVisibility`, and every later message of its FIFO group in
//!   the same event is handed back too.
//! - `replay` (console test event) → [`replay_handler`]: matching dead letters back to the
//!   main queue(s), audited.
//!
//! Cold start: [`LambdaContext::from_env`] reads the environment and the flows file and builds
//! the SDK clients and one HTTP client; it makes no network call. Sources and sinks are built on
//! first use per flow and cached for the container's life.
//!
//! Module map:
//! - [`context`]: [`LambdaContext`], [`Ports`], environment variables, lazily built sources/sinks
//! - [`poll`]: the scheduled event's flow, [`poll_handler`]
//! - [`sink`]: [`sink_handler`], FIFO group hand-back
//! - [`replay`]: [`ReplayEvent`], [`replay_handler`], [`ReplaySummary`]
//! - [`logging`]: JSON logs via `tracing-subscriber`
//! - [`error`]: [`Error`] and its mapping onto `lambda_runtime::Diagnostic`

pub mod context;
pub mod error;
pub mod logging;
pub mod poll;
pub mod replay;
pub mod sink;

pub use context::{EnvSettings, LambdaContext, Ports, Target};
pub use error::{Error, Result};
pub use logging::init_tracing;
pub use poll::{flow_of_event, poll_handler, poll_handler_until, DEADLINE_MARGIN};
pub use replay::{replay_handler, ReplayEvent, ReplaySummary};
pub use sink::sink_handler;
