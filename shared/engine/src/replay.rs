//! Replay: dead-letter queue → main queue, filtered by flow, keys and time, audited.
//!
//! SQS has no server-side filtered move (and moto lacks `StartMessageMoveTask`), so replay moves
//! messages itself: receive from the DLQ → split the batch into matching and other records →
//! send the matching ones to the main queue and the others back to the DLQ → delete the
//! original. A crash between those steps duplicates at most (never loses); sinks absorb
//! duplicates by version.

use std::time::Duration;

use chrono::{DateTime, Utc};
use mlc_core::audit::AuditEntry;
use mlc_core::ports::{AuditLog, Queue};
use mlc_core::{ChangeBatch, ChangeEvent, Clock, SyncOutcome};
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// Which dead letters to move. Empty fields match everything.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReplayFilter {
    /// Only this flow.
    #[serde(default)]
    pub flow: Option<String>,
    /// Only these record keys (identities, e.g. `100045` or `C0001|100045|I`). A bare invoice
    /// number also matches a composite key that contains it as a part.
    #[serde(default)]
    pub keys: Vec<String>,
    /// Only records polled at or after this time.
    #[serde(default)]
    pub since: Option<DateTime<Utc>>,
    /// At most this many records (default 500).
    #[serde(default)]
    pub limit: Option<usize>,
    /// Count only; move nothing.
    #[serde(default)]
    pub dry_run: bool,
}

impl ReplayFilter {
    fn matches(&self, e: &ChangeEvent) -> bool {
        if self.flow.as_deref().is_some_and(|f| f != e.flow) {
            return false;
        }
        if self.since.is_some_and(|s| e.polled_at < s) {
            return false;
        }
        if !self.keys.is_empty() {
            let id = e.key.id();
            let parts = e.key.parts();
            if !self
                .keys
                .iter()
                .any(|k| *k == id || parts.iter().any(|p| p == k))
            {
                return false;
            }
        }
        true
    }
}

/// What a replay did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplayReport {
    /// Records moved (or, on a dry run, that would move).
    pub moved: usize,
    /// Dead-lettered records left in place.
    pub left: usize,
    /// Dead-letter messages examined.
    pub messages: usize,
    /// True on a dry run.
    pub dry_run: bool,
    /// The moved records: `flow/entity/key` and the reason they had failed.
    pub records: Vec<ReplayedRecord>,
}

/// One moved record.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayedRecord {
    /// `flow/entity/key`.
    pub record: String,
    /// Why it had been dead-lettered.
    pub reason: String,
}

/// Moves matching dead letters back to the main queue.
///
/// A FIFO queue delivers nothing more from a message group while its head is in flight, so a
/// scan cannot hold the messages it leaves in place: each examined message that stays dead is
/// re-sent to the tail of the dead-letter queue (marked with this scan's id) and the original
/// deleted. The scan ends when a receive brings back only its own marked messages, so it
/// examines every dead letter once, however deep the queue and whatever the groups, and a dry
/// run counts exactly.
pub async fn replay(
    queue: &dyn Queue,
    audit: &dyn AuditLog,
    clock: &dyn Clock,
    filter: &ReplayFilter,
) -> Result<ReplayReport> {
    let limit = filter.limit.unwrap_or(500);
    let mut report = ReplayReport {
        dry_run: filter.dry_run,
        ..Default::default()
    };
    let marker = format!("replay-scan:{}:", uuid::Uuid::new_v4().simple());
    let visibility = Duration::from_secs(60);
    'outer: loop {
        let got = queue.receive_dead(10, visibility).await?;
        let mut examined = 0;
        for d in &got {
            if d.batch
                .nonce
                .as_deref()
                .is_some_and(|n| n.starts_with(&marker))
            {
                // Already examined by this scan: visible again for the next one.
                queue.nack_dead(&d.receipt, Duration::ZERO).await?;
                continue;
            }
            examined += 1;
            report.messages += 1;
            let (mut hit, mut rest): (Vec<ChangeEvent>, Vec<ChangeEvent>) = d
                .batch
                .events
                .iter()
                .cloned()
                .partition(|e| filter.matches(e));
            let room = limit.saturating_sub(report.moved);
            if hit.len() > room {
                rest.extend(hit.split_off(room));
            }
            report.left += rest.len();
            report.moved += hit.len();
            report.records.extend(hit.iter().map(replayed));
            if filter.dry_run {
                rest.append(&mut hit);
            } else if !hit.is_empty() {
                move_back(queue, audit, clock, &d.batch, hit).await?;
            }
            if !rest.is_empty() {
                queue
                    .dead_letter(&ChangeBatch {
                        flow: d.batch.flow.clone(),
                        stream: d.batch.stream.clone(),
                        events: rest,
                        nonce: Some(format!("{marker}{}", uuid::Uuid::new_v4().simple())),
                    })
                    .await?;
            }
            queue.ack_dead(&d.receipt).await?;
            if report.moved >= limit {
                break 'outer;
            }
        }
        if examined == 0 {
            break;
        }
    }
    Ok(report)
}

/// Sends dead letters back to the main queue as fresh records (attempts and failure cleared,
/// a new retry horizon), audited as `replayed`.
async fn move_back(
    queue: &dyn Queue,
    audit: &dyn AuditLog,
    clock: &dyn Clock,
    from: &ChangeBatch,
    hit: Vec<ChangeEvent>,
) -> Result<()> {
    let now = clock.now();
    let entries: Vec<AuditEntry> = hit.iter().map(|e| replay_entry(e, now)).collect();
    let events: Vec<ChangeEvent> = hit
        .into_iter()
        .map(|mut e| {
            e.failure = None;
            e.attempt = 0;
            e.retry_since = Some(now);
            e
        })
        .collect();
    queue
        .send(&[ChangeBatch {
            flow: from.flow.clone(),
            stream: from.stream.clone(),
            events,
            nonce: Some(uuid::Uuid::new_v4().to_string()),
        }])
        .await?;
    audit.append(&entries).await?;
    Ok(())
}

fn replayed(e: &ChangeEvent) -> ReplayedRecord {
    ReplayedRecord {
        record: e.label(),
        reason: e
            .failure
            .as_ref()
            .map(|f| f.message.clone())
            .unwrap_or_default(),
    }
}

fn replay_entry(e: &ChangeEvent, now: DateTime<Utc>) -> AuditEntry {
    AuditEntry {
        flow: e.flow.clone(),
        entity: e.entity,
        key: e.key.id(),
        poll_id: e.poll_id.clone(),
        polled_at: e.polled_at,
        version: e.version,
        content_hash: e.content_hash.clone(),
        destination: mlc_core::state::QUEUE_DESTINATION.into(),
        destination_ids: Default::default(),
        outcome: SyncOutcome::Replayed,
        attempt: e.attempt,
        at: now,
        error_chain: e
            .failure
            .as_ref()
            .map(|f| f.chain.clone())
            .unwrap_or_default(),
    }
}
