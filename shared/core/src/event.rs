//! What the poll emits and the queue carries.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::entity::Entity;
use crate::outcome::Failure;

/// A source row or a mapped destination record: field name → JSON value.
pub type Record = serde_json::Map<String, serde_json::Value>;

/// A SYSPRO key as read from the source.
///
/// SYSPRO keys are fixed-width, case-sensitive and compared with ANSI padding: leading zeros
/// and case are significant, trailing blanks are not. `raw` keeps what the source sent;
/// [`RecordKey::id`] is the identity used for external ids, record state and hashes, so one
/// record can never land under two ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordKey {
    /// The key exactly as read, padding included (composite parts joined by `|`).
    pub raw: String,
}

impl RecordKey {
    /// A key from one raw value.
    pub fn new(raw: impl Into<String>) -> Self {
        RecordKey { raw: raw.into() }
    }

    /// A composite key from its raw parts (e.g. Customer, Invoice, DocumentType).
    pub fn composite<S: AsRef<str>>(parts: &[S]) -> Self {
        RecordKey {
            raw: parts
                .iter()
                .map(|p| p.as_ref())
                .collect::<Vec<_>>()
                .join("|"),
        }
    }

    /// The identity: each part without trailing blanks, leading zeros and case kept.
    pub fn id(&self) -> String {
        self.raw
            .split('|')
            .map(|p| p.trim_end())
            .collect::<Vec<_>>()
            .join("|")
    }

    /// The identity's parts.
    pub fn parts(&self) -> Vec<String> {
        self.raw
            .split('|')
            .map(|p| p.trim_end().to_string())
            .collect()
    }
}

impl fmt::Display for RecordKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id())
    }
}

/// The version of one observation of a record, ordered so that a later observation is greater.
///
/// SYSPRO has no last-modified column and derived values (overdue, aging) change with the
/// calendar, not the data. So the ordering is the poll sequence of the flow (polls of a flow
/// never overlap: they hold a lease), then the row version when the entity exposes one.
/// A sink never applies a version lower than or equal to the one it applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SourceVersion {
    /// The poll sequence number of the flow that observed this state.
    pub poll_seq: u64,
    /// SQL `TimeStamp` rowversion (big-endian u64) when the entity exposes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_version: Option<u64>,
}

impl fmt::Display for SourceVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.row_version {
            Some(rv) => write!(f, "{}.{rv:016x}", self.poll_seq),
            None => write!(f, "{}", self.poll_seq),
        }
    }
}

/// One changed record, as polled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeEvent {
    /// The flow that polled it.
    pub flow: String,
    /// What it is in SYSPRO.
    pub entity: Entity,
    /// Its key, kept raw.
    pub key: RecordKey,
    /// The version of this observation.
    pub version: SourceVersion,
    /// Hash of what the destination will see (mapped record with derived status and aging).
    pub content_hash: String,
    /// The poll that observed it (`{flow}:{poll_seq}`).
    pub poll_id: String,
    /// When that poll ran (UTC).
    pub polled_at: DateTime<Utc>,
    /// The source row plus derived fields (`_Status`, `_DueDate`, `_Aging`, `_Balance`).
    pub record: Record,
    /// How many times a sink has tried this event already.
    #[serde(default)]
    pub attempt: u32,
    /// Why it was dead-lettered, when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
}

impl ChangeEvent {
    /// A compact label for logs: `flow/entity/key`.
    pub fn label(&self) -> String {
        format!("{}/{}/{}", self.flow, self.entity, self.key.id())
    }
}

/// The changes of one stream, in poll order: what one queue message carries.
///
/// A Lambda reading a FIFO queue gets at most 10 messages per invocation, so one record per
/// message would cap every destination call at 10 records. A batch holds as many changes of one
/// stream as fit the queue's message size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeBatch {
    /// The flow the batch belongs to.
    pub flow: String,
    /// The ordering stream (FIFO message group): one per flow for Salesforce, one per board for
    /// Monday.com.
    pub stream: String,
    /// The changes, in poll order.
    pub events: Vec<ChangeEvent>,
    /// Set on batches that re-send known versions on purpose (replay, partial retry) so the
    /// queue's dedup window does not swallow them; poll batches leave it empty, so a poll re-run
    /// after a crash is deduplicated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

impl ChangeBatch {
    /// Deduplication id: a hash of the batch's (entity, key, version, hash) tuples, so that the
    /// same batch sent twice (a poll re-run after a crash) is recognised by the queue.
    pub fn dedup_id(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.flow.as_bytes());
        h.update([0]);
        h.update(self.stream.as_bytes());
        if let Some(n) = &self.nonce {
            h.update([1]);
            h.update(n.as_bytes());
        }
        for e in &self.events {
            h.update([0]);
            h.update(e.entity.as_str().as_bytes());
            h.update([0]);
            h.update(e.key.id().as_bytes());
            h.update([0]);
            h.update(e.version.to_string().as_bytes());
            h.update([0]);
            h.update(e.content_hash.as_bytes());
        }
        hex::encode(&h.finalize()[..16])
    }

    /// The serialised size, as the queue will see it.
    pub fn encoded_len(&self) -> usize {
        serde_json::to_vec(self)
            .map(|v| v.len())
            .unwrap_or(usize::MAX)
    }
}

/// Splits events into batches whose JSON stays under `max_bytes` and `max_events`, keeping
/// order. An event larger than the limit on its own travels alone (the adapter then rejects it
/// with a clear error rather than losing it silently).
pub fn pack_batches(
    flow: &str,
    stream: &str,
    events: Vec<ChangeEvent>,
    max_bytes: usize,
    max_events: usize,
) -> Vec<ChangeBatch> {
    // Envelope overhead: flow, stream and the JSON punctuation around them.
    let overhead = 64 + flow.len() + stream.len();
    let mut out = Vec::new();
    let mut current: Vec<ChangeEvent> = Vec::new();
    let mut size = overhead;
    for e in events {
        let len = serde_json::to_vec(&e).map(|v| v.len()).unwrap_or(0) + 1;
        if !current.is_empty() && (size + len > max_bytes || current.len() >= max_events) {
            out.push(ChangeBatch {
                flow: flow.to_string(),
                stream: stream.to_string(),
                events: std::mem::take(&mut current),
                nonce: None,
            });
            size = overhead;
        }
        size += len;
        current.push(e);
    }
    if !current.is_empty() {
        out.push(ChangeBatch {
            flow: flow.to_string(),
            stream: stream.to_string(),
            events: current,
            nonce: None,
        });
    }
    out
}

/// Hash of a mapped record: SHA-256 over its canonical JSON (keys sorted by `serde_json`'s map).
pub fn content_hash(record: &Record) -> String {
    let bytes = serde_json::to_vec(record).unwrap_or_default();
    hex::encode(&Sha256::digest(&bytes)[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_identity_drops_trailing_blanks_only() {
        let k = RecordKey::composite(&["0000C01 ", "000100045", "I "]);
        assert_eq!(k.id(), "0000C01|000100045|I");
        assert_eq!(k.raw, "0000C01 |000100045|I ");
        assert_ne!(RecordKey::new("c01").id(), RecordKey::new("C01").id());
        assert_ne!(RecordKey::new("001").id(), RecordKey::new("1").id());
    }

    #[test]
    fn versions_order_by_poll_then_row_version() {
        let a = SourceVersion {
            poll_seq: 1,
            row_version: Some(99),
        };
        let b = SourceVersion {
            poll_seq: 2,
            row_version: Some(5),
        };
        assert!(a < b);
    }
}
