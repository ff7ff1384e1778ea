//! The ports: traits that adapters implement and the engine drives.
//!
//! Storage and queue semantics are pinned by the suites in [`crate::conformance`]; SQLite (local)
//! and DynamoDB/SQS (AWS) adapters both run them.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::audit::AuditEntry;
use crate::entity::Entity;
use crate::error::{PortError, PortResult};
use crate::event::{ChangeBatch, ChangeEvent, EncodedBatch};
use crate::outcome::{RecordOutcome, SyncOutcome};
use crate::preview::Preview;
use crate::query::{PageCursor, SourcePage, SourceQuery};
use crate::secret::{SecretRef, SecretString};
use crate::state::{AppliedMark, LastSent, RecordState, SentMark, StateKey};
use crate::watermark::{FlowRunInfo, Lease, Watermark};

/// A source error, classified so the poll knows whether to retry, stop, or report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// Credentials refused (wrong password, operator not enabled for OData): no retry.
    #[error("authentication failed: {0}")]
    Auth(String),
    /// Transient (5xx, timeout, truncated body, session evicted twice): retry later.
    #[error("transient source error: {0}")]
    Transient(String),
    /// The request is wrong (unknown table/column, business error): no retry.
    #[error("source rejected the request: {0}")]
    Rejected(String),
}

/// What a source says about itself on `ping`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceInfo {
    /// One line for people.
    pub summary: String,
    /// Problems found comparing the flow's mapping with `$metadata`.
    pub mismatches: Vec<String>,
}

/// SYSPRO, read page by page so memory stays flat however many rows change.
#[async_trait]
pub trait Source: Send + Sync {
    /// Reads one page of `query`, starting at `cursor` (`None` = first page).
    async fn read_page(
        &self,
        query: &SourceQuery,
        cursor: Option<&PageCursor>,
    ) -> Result<SourcePage, SourceError>;

    /// True when the entity exposes a rowversion (`TimeStamp`) column.
    async fn has_row_version(&self, entity: Entity) -> Result<bool, SourceError>;

    /// Checks credentials and endpoint, and the given fields against `$metadata`.
    async fn ping(&self, fields: &[(Entity, Vec<String>)]) -> Result<SourceInfo, SourceError>;

    /// Ends sessions (e.net `Logoff`). Safe to call twice.
    async fn close(&self) {}
}

/// One record handed to a sink, with what the pipeline already knows about it.
#[derive(Debug, Clone)]
pub struct PendingWrite {
    /// The change.
    pub event: ChangeEvent,
    /// Its state before this write (destination ids from earlier writes).
    pub prior: Option<RecordState>,
}

/// A whole-call failure that is not about one record.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// Credentials refused or revoked: stop the flow, report, retry later.
    #[error("destination authentication failed: {0}")]
    Auth(String),
    /// Configuration does not match the destination (missing board/column/field): stop.
    #[error("destination configuration error: {0}")]
    Config(String),
    /// The destination's daily allowance is spent: pause until `until`.
    #[error("destination daily limit reached: {message}")]
    DailyLimit {
        /// What the destination said.
        message: String,
        /// When to try again.
        until: DateTime<Utc>,
    },
    /// Transient failure of the whole call.
    #[error("transient destination error: {0}")]
    Transient(String),
}

/// A destination (Salesforce, Monday.com).
#[async_trait]
pub trait Sink: Send + Sync {
    /// `salesforce` or `monday`: names audit rows and record state.
    fn destination(&self) -> &'static str;

    /// Checks credentials, endpoint and the flow's mapping against the destination's schema.
    /// Writes nothing. Returns one line per thing checked.
    async fn ping(&self) -> Result<Vec<String>, SinkError>;

    /// Writes records. Returns exactly one outcome per input, in input order. The engine has
    /// already dropped records whose version was applied; sinks pack the rest as they can.
    async fn write(&self, batch: &[PendingWrite]) -> Result<Vec<RecordOutcome>, SinkError>;

    /// What `write` would do with each record, without writing: the payload `write` builds
    /// (through the same code), each field beside the destination's current value, and the
    /// action. Reads the destination; writes nothing. Exactly one preview per input, in order.
    async fn preview(&self, batch: &[PendingWrite]) -> Result<Vec<Preview>, SinkError>;
}

/// Watermarks and the per-flow poll lease.
#[async_trait]
pub trait WatermarkStore: Send + Sync {
    /// Takes the flow's lease if it is free or lapsed, granting the next poll sequence number.
    /// Returns `None` when another holder has it.
    async fn acquire_lease(
        &self,
        flow: &str,
        owner: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> PortResult<Option<Lease>>;

    /// Extends a held lease (long polls). `Conflict` if it was lost.
    async fn renew_lease(
        &self,
        lease: &Lease,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> PortResult<Lease>;

    /// Releases a held lease; records the finish time when `finished` is true.
    async fn release_lease(
        &self,
        lease: &Lease,
        finished: bool,
        now: DateTime<Utc>,
    ) -> PortResult<()>;

    /// The stored watermark.
    async fn load(&self, flow: &str, entity: Entity) -> PortResult<Option<Watermark>>;

    /// Saves `wm` if the stored version is `wm.version - 1` (0 = absent); `Conflict` otherwise.
    async fn save(&self, wm: &Watermark) -> PortResult<()>;

    /// Every watermark of a flow.
    async fn list(&self, flow: &str) -> PortResult<Vec<Watermark>>;

    /// The flow's run information (status).
    async fn run_info(&self, flow: &str) -> PortResult<FlowRunInfo>;

    /// Pauses a flow until a time (daily limit), or clears the pause with `None`.
    async fn set_pause(
        &self,
        flow: &str,
        until: Option<DateTime<Utc>>,
        reason: Option<&str>,
    ) -> PortResult<()>;
}

/// Record state per (flow, entity, key).
#[async_trait]
pub trait RecordStateStore: Send + Sync {
    /// States of many records (missing ones are absent from the result).
    async fn get_many(&self, keys: &[StateKey]) -> PortResult<Vec<(StateKey, RecordState)>>;

    /// The last sent mark of many records, in key order, for those that have one: all a poll
    /// needs to drop unchanged records. Stores that keep the two sides apart answer it without
    /// reading the sink side.
    async fn last_sent(&self, keys: &[StateKey]) -> PortResult<Vec<(StateKey, LastSent)>> {
        Ok(self
            .get_many(keys)
            .await?
            .into_iter()
            .filter_map(|(k, st)| {
                let hash = st.sent_hash?;
                Some((
                    k,
                    LastSent {
                        hash,
                        version: st.sent_version,
                        open: st.open,
                    },
                ))
            })
            .collect())
    }

    /// Records what the poll sent; touches only the poll-side fields.
    ///
    /// Each mark is also the record's `queued` audit entry ([`SentMark::queued_entry`]): a store
    /// that implements [`AuditLog`] too returns it from `history` and `by_outcome`, and the
    /// poll appends no separate entry. The fact is kept once, so the poll pays one write per
    /// record instead of two, and the state and the trail cannot disagree.
    async fn mark_sent(&self, marks: &[SentMark]) -> PortResult<()>;

    /// Records an applied write; touches only the sink-side fields and merges destination ids.
    /// Returns `false` (and changes nothing) when a version greater than or equal to this one
    /// is already applied.
    async fn mark_applied(&self, mark: &AppliedMark) -> PortResult<bool>;

    /// Keys of an entity that were open when last polled.
    async fn open_keys(&self, flow: &str, entity: Entity) -> PortResult<Vec<String>>;

    /// Records of a flow's `entities` whose latest sent version was sent before `sent_before`
    /// and was never applied (nor a newer one): in flight far too long, waiting, or
    /// dead-lettered. Oldest first, at most `limit`.
    async fn unapplied(
        &self,
        flow: &str,
        entities: &[Entity],
        sent_before: DateTime<Utc>,
        limit: usize,
    ) -> PortResult<Vec<Unapplied>>;

    /// Keys of an entity that were open when last polled and have a due date
    /// ([`crate::state::SentMark::due`]), with it. Stores used only by sinks keep no due dates
    /// and answer with none.
    async fn calendar_keys(
        &self,
        _flow: &str,
        _entity: Entity,
    ) -> PortResult<Vec<(String, chrono::NaiveDate)>> {
        Ok(Vec::new())
    }
}

/// A record sent and never applied ([`RecordStateStore::unapplied`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unapplied {
    /// The record.
    pub key: StateKey,
    /// The version sent.
    pub version: crate::SourceVersion,
    /// When the poll that sent it ran.
    pub sent_at: DateTime<Utc>,
}

/// The append-only audit trail.
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Appends entries.
    async fn append(&self, entries: &[AuditEntry]) -> PortResult<()>;

    /// The history of one record (key identity), oldest first; all flows when `flow` is `None`.
    async fn history(&self, flow: Option<&str>, key: &str) -> PortResult<Vec<AuditEntry>>;

    /// Entries with an outcome since a time, oldest first, at most `limit`.
    async fn by_outcome(
        &self,
        outcome: SyncOutcome,
        since: DateTime<Utc>,
        limit: usize,
    ) -> PortResult<Vec<AuditEntry>>;
}

/// One message received from a queue.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Stable message id.
    pub message_id: String,
    /// Handle for ack / nack (changes per receive).
    pub receipt: String,
    /// How many times it has been received, this time included.
    pub receive_count: u32,
    /// The change batch.
    pub batch: ChangeBatch,
}

/// Queue depth for status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct QueueDepth {
    /// Messages waiting (visible or delayed).
    pub queued: u64,
    /// Messages received and not yet acked.
    pub in_flight: u64,
    /// Messages in the dead-letter queue.
    pub dead: u64,
}

/// A durable queue of change batches with a dead-letter queue: SQS FIFO semantics.
///
/// - Messages of one stream are delivered in order, and a stream with a message in flight
///   delivers nothing else (FIFO message groups).
/// - A received message is invisible until acked, nacked, or its visibility timeout passes.
/// - A message received more than the adapter's max receive count moves to the dead-letter
///   queue (redrive).
/// - Sending a batch with the same dedup id twice within the dedup window stores it once.
#[async_trait]
pub trait Queue: Send + Sync {
    /// Sends batches, all or an error (in which case some may have been stored: callers re-send,
    /// dedup ids absorb the repeats).
    async fn send(&self, batches: &[ChangeBatch]) -> PortResult<()> {
        let encoded = batches
            .iter()
            .map(EncodedBatch::encode)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| PortError::permanent("cannot encode change batch", e))?;
        self.send_encoded(encoded).await
    }

    /// [`Queue::send`] for batches serialised already (the poll serialises each event once);
    /// owned, so their bodies move into storage without a copy. Same contract: all or an error.
    async fn send_encoded(&self, batches: Vec<EncodedBatch>) -> PortResult<()>;

    /// Receives up to `max` messages, hidden for `visibility`.
    async fn receive(&self, max: usize, visibility: Duration) -> PortResult<Vec<Delivery>>;

    /// Deletes a received message.
    async fn ack(&self, receipt: &str) -> PortResult<()>;

    /// Hands a received message back, visible again after `delay`.
    async fn nack(&self, receipt: &str, delay: Duration) -> PortResult<()>;

    /// Puts a batch of failed events (each with its `failure`) on the dead-letter queue.
    async fn dead_letter(&self, batch: &ChangeBatch) -> PortResult<()>;

    /// Receives up to `max` dead-letter messages, hidden for `visibility`.
    async fn receive_dead(&self, max: usize, visibility: Duration) -> PortResult<Vec<Delivery>>;

    /// Deletes a received dead-letter message.
    async fn ack_dead(&self, receipt: &str) -> PortResult<()>;

    /// Leaves a received dead-letter message in place, visible again after `delay` (a dry-run
    /// replay looks without moving).
    async fn nack_dead(&self, receipt: &str, delay: Duration) -> PortResult<()>;

    /// Depth of the queue and its dead-letter queue (approximate on SQS).
    async fn depth(&self) -> PortResult<QueueDepth>;
}

/// Resolves secret references.
#[async_trait]
pub trait Secrets: Send + Sync {
    /// The secret's value (cached by adapters).
    async fn get(&self, reference: &SecretRef) -> PortResult<SecretString>;

    /// Drops a cached value after the credential was rejected, so the next `get` re-reads it.
    async fn invalidate(&self, reference: &SecretRef);
}

/// A shared rate budget: units (e.g. Monday.com mutations) per fixed window per scope (e.g. a
/// board), shared by every process and Lambda invocation that writes there.
#[async_trait]
pub trait Budget: Send + Sync {
    /// Takes up to `want` units from `scope`'s window starting at `window_start`, never letting
    /// the window's total pass `limit`. Returns how many were granted (0 when spent). Atomic
    /// across concurrent callers.
    async fn take(
        &self,
        scope: &str,
        window_start: DateTime<Utc>,
        limit: u32,
        want: u32,
    ) -> PortResult<u32>;
}
