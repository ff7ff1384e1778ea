//! The audit trail: an append-only history per record.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::entity::Entity;
use crate::event::SourceVersion;
use crate::outcome::SyncOutcome;

/// One link of an error chain: what a vendor said, with enough to find the request again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ErrorLink {
    /// HTTP status, when there was a response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The vendor's error code (`UNABLE_TO_LOCK_ROW`, `ColumnValueException` …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The message (never with secrets in it: adapters redact).
    pub message: String,
    /// The vendor's request id (`x-request-id`), when sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// One step in one record's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// The flow.
    pub flow: String,
    /// The entity.
    pub entity: Entity,
    /// The key's identity.
    pub key: String,
    /// The poll that read this version.
    pub poll_id: String,
    /// When that poll ran.
    pub polled_at: DateTime<Utc>,
    /// The version.
    pub version: SourceVersion,
    /// Hash of the mapped record.
    pub content_hash: String,
    /// `salesforce`, `monday`, or `queue` for poll and replay steps.
    pub destination: String,
    /// Destination ids (Salesforce Id; Monday board and item id).
    #[serde(default)]
    pub destination_ids: BTreeMap<String, String>,
    /// What happened.
    pub outcome: SyncOutcome,
    /// Attempt number (1 = first try).
    pub attempt: u32,
    /// When (UTC).
    pub at: DateTime<Utc>,
    /// Why it failed, outermost first; empty on success.
    #[serde(default)]
    pub error_chain: Vec<ErrorLink>,
}
