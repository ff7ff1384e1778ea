//! SQLite adapters for every store and a durable queue: the default local runtime.
//!
//! The CLI runs the whole pipeline in one process (or several sharing one file) over these
//! adapters; they pass the same conformance suites (`mlc_core::conformance`) as the DynamoDB
//! and SQS adapters, so the engine sees one semantics locally and in AWS.
//!
//! Files are SQLite databases in WAL mode with a busy timeout, so other connections and other
//! processes may open the same file; every state transition is one `BEGIN IMMEDIATE`
//! transaction, and batched calls are one transaction each (no per-record commits). All
//! SQLite work runs on tokio's blocking pool, never on the async runtime's threads; each handle
//! also has a thread that checkpoints the write-ahead log, so writers never wait for its fsyncs.
//! What a poll sent is kept once, in a sent log whose rows are both the record's poll-side
//! state and its `queued` audit entries (store schema 3).
//!
//! Module map:
//! - [`store`]: [`SqliteStore`], the watermark store and poll lease, record state, audit log
//!   and rate budget;
//! - [`queue`]: [`SqliteQueue`], SQS FIFO semantics (streams, visibility, redrive, dedup) with
//!   its dead-letter table;
//! - [`secrets`]: [`EnvSecrets`] (`env:NAME`) and [`StaticSecrets`] (tests, demo);
//! - [`error`]: errors of opening a file, and the mapping of SQLite errors to `PortError`;
//! - `db` (private): connection setup, schema versions (`mlc_schema` table), column encodings.

mod db;
pub mod error;
pub mod queue;
pub mod secrets;
pub mod store;

pub use error::{Error, Result};
pub use queue::{QueueOptions, SqliteQueue, DEFAULT_QUEUE, MAX_MESSAGE_BYTES};
pub use secrets::{EnvSecrets, StaticSecrets};
pub use store::SqliteStore;
