//! Record state: what was sent and what was applied, per (flow, entity, key).

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::audit::AuditEntry;
use crate::entity::Entity;
use crate::event::SourceVersion;
use crate::outcome::SyncOutcome;

/// Identity of a record in the state store.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StateKey {
    /// The flow.
    pub flow: String,
    /// The entity.
    pub entity: Entity,
    /// The key's identity (`RecordKey::id`).
    pub key: String,
}

impl StateKey {
    /// Builds a key.
    pub fn new(flow: impl Into<String>, entity: Entity, key: impl Into<String>) -> Self {
        StateKey {
            flow: flow.into(),
            entity,
            key: key.into(),
        }
    }
}

/// What the pipeline knows about one record.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RecordState {
    /// Hash of the last version the poll sent (poll side: skip unchanged records).
    pub sent_hash: Option<String>,
    /// The last version the poll sent.
    pub sent_version: Option<SourceVersion>,
    /// True when the record was open (non-zero balance) when last polled: an open-item rescan
    /// fetches such keys by key when they vanish from the open set.
    pub open: bool,
    /// The last version a sink applied (sink side: never regress).
    pub applied_version: Option<SourceVersion>,
    /// Hash of that version.
    pub applied_hash: Option<String>,
    /// Destination ids: e.g. `salesforce_id`, `board_id`, `item_id`.
    pub destination_ids: BTreeMap<String, String>,
    /// When a sink last applied it.
    pub applied_at: Option<DateTime<Utc>>,
}

/// The poll side of a record's state: its last sent mark ([`crate::ports::RecordStateStore::last_sent`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastSent {
    /// Hash of the version sent.
    pub hash: String,
    /// The version sent (`None` only where a store kept no version).
    pub version: Option<SourceVersion>,
    /// Whether it was open.
    pub open: bool,
}

/// What the poll records after its batches were accepted by the queue.
///
/// A sent mark is also the record's `queued` audit entry ([`SentMark::queued_entry`]): "this
/// version went on the queue at this poll" is one fact, so stores keep it once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentMark {
    /// The record.
    pub key: StateKey,
    /// The version sent.
    pub version: SourceVersion,
    /// Its hash.
    pub hash: String,
    /// Whether it was open.
    pub open: bool,
    /// The due date of an open record whose status or aging moves with the calendar: a new
    /// business date re-reads exactly the records it moves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due: Option<NaiveDate>,
    /// When the poll that sent it ran.
    pub polled_at: DateTime<Utc>,
}

impl SentMark {
    /// The audit entry this mark stands for: outcome `queued`, destination `queue`, attempt 0,
    /// at the poll's time, poll id `{flow}:{poll_seq}`.
    pub fn queued_entry(&self) -> AuditEntry {
        AuditEntry {
            flow: self.key.flow.clone(),
            entity: self.key.entity,
            key: self.key.key.clone(),
            poll_id: format!("{}:{}", self.key.flow, self.version.poll_seq),
            polled_at: self.polled_at,
            version: self.version,
            content_hash: self.hash.clone(),
            destination: QUEUE_DESTINATION.to_string(),
            destination_ids: BTreeMap::new(),
            outcome: SyncOutcome::Queued,
            attempt: 0,
            at: self.polled_at,
            error_chain: Vec::new(),
        }
    }
}

/// The `destination` of audit entries written by the poll and by replays.
pub const QUEUE_DESTINATION: &str = "queue";

/// What a sink records after a write landed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedMark {
    /// The record.
    pub key: StateKey,
    /// The version applied.
    pub version: SourceVersion,
    /// Its hash.
    pub hash: String,
    /// Destination ids to merge into the stored ones.
    pub destination_ids: BTreeMap<String, String>,
    /// When.
    pub at: DateTime<Utc>,
}
