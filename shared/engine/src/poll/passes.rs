//! The passes of an entity's poll besides its main read: the key sweep, the calendar pass,
//! vanished records, and the checkpoint of a read that runs out of time.

use std::collections::HashSet;

use chrono::NaiveDate;
use mlc_core::config::{ChangeDetection, EntityConfig, Sweep};
use mlc_core::entity::derived;
use mlc_core::watermark::{ResumePoint, WatermarkNotes};
use mlc_core::{Entity, Record, Watermark, WatermarkValue};
use serde_json::Value;
use tracing::info;

use super::{EntityPollReport, Pending, PollRun};
use crate::calendar;
use crate::derive::record_key;
use crate::error::{EngineError, Result};
use crate::read::EntityReader;

impl PollRun<'_> {
    /// The filter an interrupted read used.
    pub(super) fn resume_filter(&self, r: &ResumePoint) -> Result<Option<mlc_core::query::Filter>> {
        r.filter
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| EngineError::SourceData {
                flow: self.flow.id.clone(),
                message: format!("the stored resume point of an interrupted read is corrupt ({e}); `ml-connector watermark reset` restarts the read"),
            })
    }

    pub(super) fn past_deadline(&self) -> bool {
        !self.dry_run && self.deadline.is_some_and(|d| self.rt.clock.now() >= d)
    }

    /// Saves where an interrupted read carries on; the watermark's value and mapping stay as
    /// they were, so the finished read moves them as an uninterrupted one would.
    pub(super) async fn checkpoint(
        &self,
        entity: Entity,
        stored: Option<Watermark>,
        mark: WatermarkValue,
        mut notes: WatermarkNotes,
        point: ResumePoint,
    ) -> Result<()> {
        let entity_rows = point.rows_read;
        notes.resume = Some(point);
        let wm = Watermark {
            flow: self.flow.id.clone(),
            entity,
            value: mark,
            version: stored.as_ref().map_or(0, |w| w.version) + 1,
            poll_id: self.poll_id.clone(),
            updated_at: self.rt.clock.now(),
            mapping: stored.and_then(|w| w.mapping),
            notes,
        };
        info!(flow = %self.flow.id, rows = entity_rows, "read checkpointed");
        self.rt.watermarks.save(&wm).await?;
        Ok(())
    }

    /// The key sweep runs for rowversion and date-window entities, at its cadence.
    pub(super) fn sweep_due(
        &self,
        ec: &EntityConfig,
        strategy: ChangeDetection,
        notes: &WatermarkNotes,
    ) -> bool {
        let applies = matches!(
            strategy,
            ChangeDetection::Rowversion | ChangeDetection::DateWindow
        );
        applies
            && match ec.sweep {
                Sweep::Off => false,
                Sweep::EveryPoll => true,
                Sweep::Daily => notes.swept.is_none_or(|d| d < self.today),
            }
    }

    /// Reads the key columns (and `TimeStamp`) of the rows `filter` selects (every row: the
    /// sweep; the rows an initial scope leaves out: their count): how many, their highest
    /// rowversion and their identities.
    pub(super) async fn scan_keys(
        &self,
        reader: &EntityReader<'_>,
        filter: Option<mlc_core::query::Filter>,
        has_rv: bool,
    ) -> Result<SweepFound> {
        let entity = reader.entity();
        let mut q = reader.query(filter);
        q.fields = entity.key_fields().iter().map(|f| f.to_string()).collect();
        if has_rv {
            q.fields.push("TimeStamp".into());
        }
        let mut found = SweepFound::default();
        let mut cursor = None;
        loop {
            self.renew_if_due().await?;
            let page = self
                .source
                .read_page(&q, cursor.as_ref())
                .await
                .map_err(|e| reader.source_err(entity, e))?;
            for row in &page.rows {
                found.rows += 1;
                if let Some(v) = row.get("TimeStamp").and_then(Value::as_u64) {
                    found.max_rv = Some(found.max_rv.map_or(v, |m| m.max(v)));
                }
                if let Some(k) = record_key(entity, row) {
                    found.keys.insert(k.id());
                }
            }
            match page.next {
                Some(n) => cursor = Some(n),
                None => return Ok(found),
            }
        }
    }

    /// Re-reads, by key, the open records whose visible status or aging the business date
    /// moved since the last poll (and that this poll has not read already).
    pub(super) async fn calendar_pass(
        &mut self,
        reader: &mut EntityReader<'_>,
        last_day: Option<NaiveDate>,
        seen: &HashSet<String>,
        pending: &mut Pending,
        report: &mut EntityPollReport,
    ) -> Result<()> {
        let Some(last_day) = last_day.filter(|d| *d != self.today) else {
            return Ok(());
        };
        let entity = reader.entity();
        let keys: Vec<String> = self
            .rt
            .state
            .calendar_keys(&self.flow.id, entity)
            .await?
            .into_iter()
            .filter(|(k, due)| !seen.contains(k) && calendar::moved(*due, last_day, self.today))
            .map(|(k, _)| k)
            .collect();
        report.calendar += keys.len();
        self.read_keys(reader, &keys, pending, report, false)
            .await?;
        Ok(())
    }

    /// Reads keys that were open and are no longer seen: those SYSPRO still has are staged as
    /// they are now (paid, reversed); those it does not are marked removed, never deleted.
    pub(super) async fn confirm_vanished(
        &mut self,
        reader: &mut EntityReader<'_>,
        vanished: &[String],
        pending: &mut Pending,
        report: &mut EntityPollReport,
    ) -> Result<()> {
        let found = self
            .read_keys(reader, vanished, pending, report, false)
            .await?;
        let removed: Vec<Record> = vanished
            .iter()
            .filter(|k| !found.contains(*k))
            .map(|k| removed_record(reader.entity(), k))
            .collect();
        if !removed.is_empty() {
            report.removed += removed.len();
            let ec = self.flow.entity(reader.entity()).cloned();
            if let Some(ec) = ec {
                self.stage_rows(&ec, &reader.view, removed, pending, report, false)
                    .await?;
            }
        }
        Ok(())
    }
}

/// A record for a key that no longer exists in SYSPRO: its key columns and `_Status = removed`.
pub(super) fn removed_record(entity: Entity, key: &str) -> Record {
    let mut r = Record::new();
    for (f, part) in entity.key_fields().iter().zip(key.split('|')) {
        r.insert((*f).to_string(), Value::String(part.to_string()));
    }
    r.insert(derived::STATUS.into(), Value::String("removed".into()));
    r
}

/// What a key sweep (or a count of rows left out) found.
#[derive(Debug, Default)]
pub(super) struct SweepFound {
    pub(super) rows: u64,
    pub(super) max_rv: Option<u64>,
    pub(super) keys: HashSet<String>,
}

impl SweepFound {
    /// A restored database (highest rowversion below the one already read) or a table that
    /// shrank: said for `status`, answered by reading the whole entity once (hash-diffed).
    pub(super) fn alert(&self, mark: &WatermarkValue, swept_rows: Option<u64>) -> Option<String> {
        let seen = match mark {
            WatermarkValue::RowVersion(v) => Some(*v),
            WatermarkValue::RowVersionLagged { seen, .. } => Some(*seen),
            _ => None,
        };
        if let (Some(seen), Some(max)) = (seen, self.max_rv) {
            if max < seen {
                return Some(format!(
                    "the table's highest TimeStamp ({max}) is below the one already read ({seen}): \
                     the SYSPRO database looks restored to an earlier point; the whole entity was \
                     read again"
                ));
            }
        }
        match swept_rows {
            Some(before) if self.rows < before => Some(format!(
                "the table shrank from {before} to {} rows since the last sweep: the whole entity \
                 was read again",
                self.rows
            )),
            _ => None,
        }
    }
}
