//! Watermarks (how far a flow has read each entity) and the per-flow poll lease.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::entity::Entity;

/// The high-water mark of one (flow, entity).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermark {
    /// The flow.
    pub flow: String,
    /// The entity.
    pub entity: Entity,
    /// How far the flow has read.
    pub value: WatermarkValue,
    /// Optimistic-concurrency version: a save succeeds only if the stored version is this
    /// value minus one (0 = never saved).
    pub version: u64,
    /// The poll that saved it.
    pub poll_id: String,
    /// When it was saved.
    pub updated_at: DateTime<Utc>,
    /// The fingerprint of the entity's mapping ([`crate::view::DestinationView`]) the last
    /// poll read under: a different one means the mapping changed, and the next poll reads the
    /// whole entity once so every record reaches the destination in its new shape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapping: Option<String>,
}

/// A watermark's value with its mapping fingerprint beside it, as one JSON text (for stores
/// that keep the value in one column).
pub fn encode_value(wm: &Watermark) -> serde_json::Result<String> {
    let mut v = serde_json::to_value(&wm.value)?;
    if let (Some(m), Some(obj)) = (&wm.mapping, v.as_object_mut()) {
        obj.insert("mapping".into(), serde_json::Value::String(m.clone()));
    }
    serde_json::to_string(&v)
}

/// The inverse of [`encode_value`]; values stored before fingerprints existed have none.
pub fn decode_value(text: &str) -> serde_json::Result<(WatermarkValue, Option<String>)> {
    let mut v: serde_json::Value = serde_json::from_str(text)?;
    let mapping = v
        .as_object_mut()
        .and_then(|o| o.remove("mapping"))
        .and_then(|m| m.as_str().map(str::to_string));
    Ok((serde_json::from_value(v)?, mapping))
}

/// How far an entity was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "kebab-case")]
pub enum WatermarkValue {
    /// Nothing read yet: the first poll is a full read (backfill).
    Empty,
    /// The highest SQL rowversion seen.
    RowVersion(u64),
    /// Rowversion with a one-poll lag: `bound` is what the next poll filters on (`gt`), `seen`
    /// the highest value this poll read. SQL Server assigns rowversions at write time, not at
    /// commit, and a row updated behind the reader's position during a poll can carry a value
    /// below the highest one read; filtering on the previous poll's high mark catches it.
    RowVersionLagged {
        /// Filter bound for the next poll.
        bound: u64,
        /// Highest value read by the last poll.
        seen: u64,
    },
    /// The latest business date seen (date-only, local to the company).
    Date(NaiveDate),
    /// Open-item rescans need no mark; the date of the last full rescan is kept.
    Rescanned(NaiveDate),
}

/// A lease on a flow: while held, no other poll of that flow runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The flow.
    pub flow: String,
    /// Who holds it (process / Lambda request id).
    pub owner: String,
    /// When it lapses if not released (a crashed holder cannot block the flow forever).
    pub expires_at: DateTime<Utc>,
    /// The poll sequence number granted with the lease: strictly increasing per flow.
    pub poll_seq: u64,
}

impl Lease {
    /// The poll id for audit and events.
    pub fn poll_id(&self) -> String {
        format!("{}:{}", self.flow, self.poll_seq)
    }
}

/// What the lease table says about a flow, for `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowRunInfo {
    /// The flow.
    pub flow: String,
    /// The last poll sequence granted.
    pub last_poll_seq: u64,
    /// When the last lease was granted.
    pub last_started_at: Option<DateTime<Utc>>,
    /// When the last poll finished (lease released after success).
    pub last_finished_at: Option<DateTime<Utc>>,
    /// The current holder, if a poll is running.
    pub running: Option<Lease>,
    /// Until when the flow is paused (daily API limit reached), if it is.
    #[serde(default)]
    pub paused_until: Option<DateTime<Utc>>,
    /// Why it is paused.
    #[serde(default)]
    pub pause_reason: Option<String>,
}
