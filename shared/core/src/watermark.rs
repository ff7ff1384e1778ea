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
    /// What the calendar, the key sweep and the initial scope need to remember.
    #[serde(default, skip_serializing_if = "WatermarkNotes::is_empty")]
    pub notes: WatermarkNotes,
}

/// Facts about an entity's reads kept beside its watermark.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WatermarkNotes {
    /// The business date of the last poll: on a new one, records whose visible status or
    /// aging moves with the calendar are re-read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business_date: Option<NaiveDate>,
    /// The business date of the last key sweep (vanished records, restores).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swept: Option<NaiveDate>,
    /// Rows the last key sweep found: a table that shrinks below it is rescanned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swept_rows: Option<u64>,
    /// The first read under an initial scope other than `all`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub go_live: Option<GoLive>,
    /// A problem with the source data or the table that an operator should see (`status`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
    /// A read stopped at its deadline (a Lambda run's end) and continued by the next poll.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<ResumePoint>,
}

/// Where an interrupted read of an entity carries on: the same query from the page after the
/// last one whose records were sent, with what that read had found so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumePoint {
    /// The read's filter as it was, as JSON (`crate::query::Filter`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// The next page (the source's opaque keyset cursor).
    pub cursor: String,
    /// The highest rowversion read so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rv: Option<u64>,
    /// The latest date read so far (within tolerance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_date: Option<NaiveDate>,
    /// Rows read so far by this read, over all its slices.
    pub rows_read: u64,
    /// The read takes the whole entity (mapping change, restore, resync).
    #[serde(default)]
    pub whole: bool,
}

impl WatermarkNotes {
    /// True when nothing is noted.
    pub fn is_empty(&self) -> bool {
        self == &WatermarkNotes::default()
    }
}

/// The entity's first read under a narrower initial scope: rows it left out stay out until
/// SYSPRO changes them after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GoLive {
    /// The business date of the first read.
    pub date: NaiveDate,
    /// The table's highest rowversion then (rows at or below it obey the scope).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_version: Option<u64>,
    /// Rows the scope left out.
    pub out_of_scope: u64,
}

/// A watermark's value with its mapping fingerprint and notes beside it, as one JSON text
/// (for stores that keep the value in one column).
pub fn encode_value(wm: &Watermark) -> serde_json::Result<String> {
    let mut v = serde_json::to_value(&wm.value)?;
    if let Some(obj) = v.as_object_mut() {
        if let Some(m) = &wm.mapping {
            obj.insert("mapping".into(), serde_json::Value::String(m.clone()));
        }
        if !wm.notes.is_empty() {
            obj.insert("notes".into(), serde_json::to_value(&wm.notes)?);
        }
    }
    serde_json::to_string(&v)
}

/// The parts of a watermark [`encode_value`] keeps in one text.
pub type EncodedParts = (WatermarkValue, Option<String>, WatermarkNotes);

/// The inverse of [`encode_value`]; values stored before fingerprints or notes existed have
/// none.
pub fn decode_value(text: &str) -> serde_json::Result<EncodedParts> {
    let mut v: serde_json::Value = serde_json::from_str(text)?;
    let obj = v.as_object_mut();
    let (mapping, notes) = match obj {
        Some(o) => (o.remove("mapping"), o.remove("notes")),
        None => (None, None),
    };
    let mapping = mapping.and_then(|m| m.as_str().map(str::to_string));
    let notes = match notes {
        Some(n) => serde_json::from_value(n)?,
        None => WatermarkNotes::default(),
    };
    Ok((serde_json::from_value(v)?, mapping, notes))
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
