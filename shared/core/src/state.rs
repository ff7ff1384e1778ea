//! Record state: what was sent and what was applied, per (flow, entity, key).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::entity::Entity;
use crate::event::SourceVersion;

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

/// What the poll records after its batches were accepted by the queue.
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
}

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
