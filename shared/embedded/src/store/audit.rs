//! The audit log: append-only rows (a trigger refuses updates), the whole entry kept as JSON
//! beside the columns it is queried by.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mlc_core::ports::AuditLog;
use mlc_core::{AuditEntry, PortResult, SyncOutcome};
use rusqlite::params;

use super::SqliteStore;
use crate::db::{from_json, time, to_json, write_tx};
use crate::error::sql;

fn decode(rows: Vec<String>) -> PortResult<Vec<AuditEntry>> {
    rows.iter().map(|s| from_json(s, "audit entry")).collect()
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
            .map(|e| {
                Ok((
                    e.flow.clone(),
                    e.entity.as_str(),
                    e.key.clone(),
                    e.outcome.as_str(),
                    time(e.at)?,
                    to_json(e, "audit entry")?,
                ))
            })
            .collect::<PortResult<Vec<_>>>()?;
        self.db
            .run("append", move |conn| {
                let tx = write_tx(conn)?;
                {
                    let mut stmt = tx
                        .prepare_cached(
                            "INSERT INTO mlc_audit (flow, entity, record_key, outcome, at, entry)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        )
                        .map_err(sql("append audit"))?;
                    for (flow, entity, key, outcome, at, entry) in &rows {
                        stmt.execute(params![flow, entity, key, outcome, at, entry])
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
                let rows = match &flow {
                    Some(flow) => conn
                        .prepare_cached(
                            "SELECT entry FROM mlc_audit WHERE flow = ?1 AND record_key = ?2
                             ORDER BY at, seq",
                        )
                        .and_then(|mut s| {
                            s.query_map(params![flow, key], |r| r.get(0))?
                                .collect::<rusqlite::Result<Vec<String>>>()
                        }),
                    None => conn
                        .prepare_cached(
                            "SELECT entry FROM mlc_audit WHERE record_key = ?1 ORDER BY at, seq",
                        )
                        .and_then(|mut s| {
                            s.query_map(params![key], |r| r.get(0))?
                                .collect::<rusqlite::Result<Vec<String>>>()
                        }),
                }
                .map_err(sql("history"))?;
                decode(rows)
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
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.db
            .run("by_outcome", move |conn| {
                // The outcome index leaves `queued` rows out (see the schema): the extra term
                // lets SQLite use it; `queued` rows are found by a scan.
                let query = if outcome == SyncOutcome::Queued {
                    "SELECT entry FROM mlc_audit WHERE outcome = ?1 AND at >= ?2
                     ORDER BY at, seq LIMIT ?3"
                } else {
                    "SELECT entry FROM mlc_audit
                     WHERE outcome = ?1 AND at >= ?2 AND outcome <> 'queued'
                     ORDER BY at, seq LIMIT ?3"
                };
                let rows = conn
                    .prepare_cached(query)
                    .and_then(|mut s| {
                        s.query_map(params![outcome.as_str(), since, limit], |r| r.get(0))?
                            .collect::<rusqlite::Result<Vec<String>>>()
                    })
                    .map_err(sql("by_outcome"))?;
                decode(rows)
            })
            .await
    }
}
