//! The audit log: append-only rows (a trigger refuses updates). An entry is kept in columns;
//! only destination ids and the error chain, when there are any, go to the `entry` column as
//! JSON. A poll appends one row per changed record, so a lean row is most of its write cost.
//! Rows of store version 1 (the whole entry as JSON) are still read.

use std::collections::BTreeMap;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mlc_core::ports::AuditLog;
use mlc_core::{AuditEntry, Entity, ErrorLink, PortError, PortResult, SourceVersion, SyncOutcome};
use rusqlite::{params, Row};
use serde::{Deserialize, Serialize};

use super::state::{sent_row, SentRow, SENT_COLUMNS};
use super::SqliteStore;
use crate::db::{from_json, time, time_from, to_json, u64_from_key, u64_key, write_tx};
use crate::error::sql;

/// What the columns do not hold.
#[derive(Serialize, Deserialize, Default)]
struct Extras {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    destination_ids: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    error_chain: Vec<ErrorLink>,
}

/// The columns every query selects, in [`StoredRow`] order.
const COLUMNS: &str = "entry, flow, entity, record_key, outcome, at, poll_id, polled_at, \
                       version_seq, version_rv, content_hash, destination, attempt";

/// One stored row, as read.
struct StoredRow {
    entry: String,
    flow: String,
    entity: String,
    key: String,
    outcome: String,
    at: i64,
    poll_id: Option<String>,
    polled_at: Option<i64>,
    version_seq: Option<i64>,
    version_rv: Option<i64>,
    content_hash: Option<String>,
    destination: Option<String>,
    attempt: Option<i64>,
}

fn stored_row(r: &Row<'_>) -> rusqlite::Result<StoredRow> {
    Ok(StoredRow {
        entry: r.get(0)?,
        flow: r.get(1)?,
        entity: r.get(2)?,
        key: r.get(3)?,
        outcome: r.get(4)?,
        at: r.get(5)?,
        poll_id: r.get(6)?,
        polled_at: r.get(7)?,
        version_seq: r.get(8)?,
        version_rv: r.get(9)?,
        content_hash: r.get(10)?,
        destination: r.get(11)?,
        attempt: r.get(12)?,
    })
}

fn decode_row(row: StoredRow) -> PortResult<AuditEntry> {
    let (Some(poll_id), Some(polled_at), Some(seq)) = (row.poll_id, row.polled_at, row.version_seq)
    else {
        // A version 1 row: the whole entry is its JSON.
        return from_json(&row.entry, "audit entry");
    };
    let corrupt = |what: &str| PortError::invalid(format!("stored audit row has {what}"));
    let extras: Extras = if row.entry.is_empty() {
        Extras::default()
    } else {
        from_json(&row.entry, "audit extras")?
    };
    Ok(AuditEntry {
        flow: row.flow,
        entity: Entity::from_str(&row.entity)
            .map_err(|_| corrupt(&format!("an unknown entity {:?}", row.entity)))?,
        key: row.key,
        poll_id,
        polled_at: time_from(polled_at),
        version: SourceVersion {
            poll_seq: u64_from_key(seq),
            row_version: row.version_rv.map(u64_from_key),
        },
        content_hash: row.content_hash.unwrap_or_default(),
        destination: row.destination.unwrap_or_default(),
        destination_ids: extras.destination_ids,
        outcome: SyncOutcome::parse(&row.outcome)
            .ok_or_else(|| corrupt(&format!("an unknown outcome {:?}", row.outcome)))?,
        attempt: row.attempt.and_then(|a| u32::try_from(a).ok()).unwrap_or(0),
        at: time_from(row.at),
        error_chain: extras.error_chain,
    })
}

fn decode(rows: Vec<StoredRow>) -> PortResult<Vec<AuditEntry>> {
    rows.into_iter().map(decode_row).collect()
}

/// An entry as bound to the insert.
struct NewRow {
    flow: String,
    entity: &'static str,
    key: String,
    outcome: &'static str,
    at: i64,
    extras: String,
    poll_id: String,
    polled_at: i64,
    version_seq: i64,
    version_rv: Option<i64>,
    content_hash: String,
    destination: String,
    attempt: u32,
}

fn new_row(e: &AuditEntry) -> PortResult<NewRow> {
    let extras = if e.destination_ids.is_empty() && e.error_chain.is_empty() {
        String::new()
    } else {
        to_json(
            &Extras {
                destination_ids: e.destination_ids.clone(),
                error_chain: e.error_chain.clone(),
            },
            "audit extras",
        )?
    };
    Ok(NewRow {
        flow: e.flow.clone(),
        entity: e.entity.as_str(),
        key: e.key.clone(),
        outcome: e.outcome.as_str(),
        at: time(e.at)?,
        extras,
        poll_id: e.poll_id.clone(),
        polled_at: time(e.polled_at)?,
        version_seq: u64_key(e.version.poll_seq),
        version_rv: e.version.row_version.map(u64_key),
        content_hash: e.content_hash.clone(),
        destination: e.destination.clone(),
        attempt: e.attempt,
    })
}

#[async_trait]
impl AuditLog for SqliteStore {
    async fn append(&self, entries: &[AuditEntry]) -> PortResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        // Encode before going to the blocking thread: the rows carry only what SQL needs.
        let rows = entries
            .iter()
            .map(new_row)
            .collect::<PortResult<Vec<_>>>()?;
        self.db
            .run("append", move |conn| {
                let tx = write_tx(conn)?;
                {
                    let mut stmt = tx
                        .prepare_cached(
                            "INSERT INTO mlc_audit (flow, entity, record_key, outcome, at, entry,
                                 poll_id, polled_at, version_seq, version_rv, content_hash,
                                 destination, attempt)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                        )
                        .map_err(sql("append audit"))?;
                    for r in &rows {
                        stmt.execute(params![
                            r.flow,
                            r.entity,
                            r.key,
                            r.outcome,
                            r.at,
                            r.extras,
                            r.poll_id,
                            r.polled_at,
                            r.version_seq,
                            r.version_rv,
                            r.content_hash,
                            r.destination,
                            r.attempt,
                        ])
                        .map_err(sql("append audit"))?;
                    }
                }
                tx.commit().map_err(sql("commit audit"))?;
                Ok(())
            })
            .await
    }

    async fn history(&self, flow: Option<&str>, key: &str) -> PortResult<Vec<AuditEntry>> {
        let flow = flow.map(str::to_string);
        let key = key.to_string();
        self.db
            .run("history", move |conn| {
                let tx = conn.transaction().map_err(sql("begin history"))?;
                let (rows, sent) = match &flow {
                    Some(flow) => (
                        tx.prepare_cached(&format!(
                            "SELECT {COLUMNS} FROM mlc_audit WHERE flow = ?1 AND record_key = ?2
                                 ORDER BY at, seq"
                        ))
                        .and_then(|mut s| {
                            s.query_map(params![flow, key], stored_row)?
                                .collect::<rusqlite::Result<Vec<_>>>()
                        }),
                        tx.prepare_cached(&format!(
                            "SELECT {SENT_COLUMNS} FROM mlc_sent
                             WHERE flow = ?1 AND record_key = ?2 AND polled_at IS NOT NULL"
                        ))
                        .and_then(|mut s| {
                            s.query_map(params![flow, key], sent_row)?
                                .collect::<rusqlite::Result<Vec<_>>>()
                        }),
                    ),
                    None => (
                        tx.prepare_cached(&format!(
                            "SELECT {COLUMNS} FROM mlc_audit WHERE record_key = ?1
                                 ORDER BY at, seq"
                        ))
                        .and_then(|mut s| {
                            s.query_map(params![key], stored_row)?
                                .collect::<rusqlite::Result<Vec<_>>>()
                        }),
                        // The sent log is keyed by flow first: visit its few flows by skipping
                        // from one to the next (each step one seek), then seek the key in each.
                        tx.prepare_cached(&format!(
                            "WITH RECURSIVE flows(f) AS (
                                 SELECT min(flow) FROM mlc_sent
                                 UNION ALL
                                 SELECT (SELECT min(flow) FROM mlc_sent WHERE flow > flows.f)
                                 FROM flows WHERE flows.f IS NOT NULL
                             )
                             SELECT {SENT_COLUMNS} FROM flows JOIN mlc_sent
                                 ON mlc_sent.flow = flows.f AND mlc_sent.record_key = ?1
                             WHERE mlc_sent.polled_at IS NOT NULL"
                        ))
                        .and_then(|mut s| {
                            s.query_map(params![key], sent_row)?
                                .collect::<rusqlite::Result<Vec<_>>>()
                        }),
                    ),
                };
                let rows = rows.map_err(sql("history"))?;
                let sent = sent.map_err(sql("history"))?;
                tx.commit().map_err(sql("end history"))?;
                merge(decode(rows)?, sent, usize::MAX)
            })
            .await
    }

    async fn by_outcome(
        &self,
        outcome: SyncOutcome,
        since: DateTime<Utc>,
        limit: usize,
    ) -> PortResult<Vec<AuditEntry>> {
        let since = time(since)?;
        let max = i64::try_from(limit).unwrap_or(i64::MAX);
        self.db
            .run("by_outcome", move |conn| {
                let tx = conn.transaction().map_err(sql("begin by_outcome"))?;
                // The outcome index leaves `queued` rows out (see the schema): the extra term
                // lets SQLite use it. `queued` entries are the sent log's rows (and version 2's
                // audit rows), found by a scan: an operator's question, not a poll's.
                let query = if outcome == SyncOutcome::Queued {
                    format!(
                        "SELECT {COLUMNS} FROM mlc_audit WHERE outcome = ?1 AND at >= ?2
                         ORDER BY at, seq LIMIT ?3"
                    )
                } else {
                    format!(
                        "SELECT {COLUMNS} FROM mlc_audit
                         WHERE outcome = ?1 AND at >= ?2 AND outcome <> 'queued'
                         ORDER BY at, seq LIMIT ?3"
                    )
                };
                let rows = tx
                    .prepare_cached(&query)
                    .and_then(|mut s| {
                        s.query_map(params![outcome.as_str(), since, max], stored_row)?
                            .collect::<rusqlite::Result<Vec<_>>>()
                    })
                    .map_err(sql("by_outcome"))?;
                let sent = if outcome == SyncOutcome::Queued {
                    tx.prepare_cached(&format!(
                        "SELECT {SENT_COLUMNS} FROM mlc_sent WHERE polled_at >= ?1
                         ORDER BY polled_at, poll_seq LIMIT ?2"
                    ))
                    .and_then(|mut s| {
                        s.query_map(params![since, max], sent_row)?
                            .collect::<rusqlite::Result<Vec<_>>>()
                    })
                    .map_err(sql("by_outcome"))?
                } else {
                    Vec::new()
                };
                tx.commit().map_err(sql("end by_outcome"))?;
                merge(decode(rows)?, sent, limit)
            })
            .await
    }
}

/// Audit rows (in `at, seq` order) and sent-log rows as one history, oldest first, at most
/// `limit`. Ties on time go by poll sequence, and a poll's `queued` entry comes before what
/// happened to that version later at the same instant (a fixed test clock gives every step one
/// time).
fn merge(
    mut entries: Vec<AuditEntry>,
    sent: Vec<SentRow>,
    limit: usize,
) -> PortResult<Vec<AuditEntry>> {
    let mut queued = Vec::with_capacity(sent.len());
    for row in sent {
        if let Some(mark) = row.into_mark()? {
            queued.push(mark.queued_entry());
        }
    }
    if !queued.is_empty() {
        queued.extend(entries);
        // Stable: audit rows keep their `seq` order among equals.
        queued.sort_by_key(|e| (e.at, e.version.poll_seq));
        entries = queued;
    }
    entries.truncate(limit);
    Ok(entries)
}
