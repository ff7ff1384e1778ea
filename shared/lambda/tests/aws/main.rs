//! The Lambda handlers end to end on moto (started by `tests/run`: `MLC_TEST_AWS_ENDPOINT`; a
//! missing emulator fails these tests) with the SYSPRO, Salesforce and Monday.com simulators
//! in-process. One test binary: the modules share setup and link once.
//!
//! - `e2e`: poll → FIFO queues → sink events → destinations; dead letters and replay; a crash
//!   between "sent" and "watermark saved"; concurrent polls of one flow.
//! - `batching`: 1,000 changed invoices cost the same Salesforce calls through SQS events of
//!   ≤ 10 messages as through the local SQLite drain; one bad record dead-letters alone.
//! - `fifo`: FIFO group hand-back and retry delays set on the queue.
//! - `checkpoint`: a first sync in deadline slices (poll handler) converges like one poll.
//! - `replay_deep`: replay finds a key behind 500 dead letters of one group; exact dry run.
//! - `cargo_lambda`: the `replay` binary under `cargo lambda watch`, invoked by
//!   `cargo lambda invoke`.
//! - `trigger`: the `trigger` binary the same way, with function-URL events: signature (secret
//!   from Secrets Manager), replay refusal, coalescing, and the asynchronous Invoke of the poll
//!   function on moto's Lambda.
//! - `watch` (helpers): building a function's binary, `cargo lambda watch`/`invoke`.

mod batching;
mod cargo_lambda;
mod checkpoint;
mod common;
mod e2e;
mod fifo;
mod replay_deep;
mod trigger;
mod watch;
