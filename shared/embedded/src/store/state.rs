//! Record state: poll-side and sink-side fields of one row, written by separate statements so
//! neither side clobbers the other.

use std::collections::BTreeMap;

use async_trait::async_trait;
use mlc_core::ports::RecordStateStore;
use mlc_core::state::{AppliedMark, SentMark, StateKey};
use mlc_core::{Entity, PortResult, RecordState, SourceVersion};
use rusqlite::{params, OptionalExtension, Row};

use super::SqliteStore;
use crate::db::{from_json, time, time_from, to_json, u64_from_key, u64_key, write_tx};
use crate::error::sql;

fn version(seq: Option<i64>, rv: Option<i64>) -> Option<SourceVersion> {
    seq.map(|s| SourceVersion {
        poll_seq: u64_from_key(s),
        row_version: rv.map(u64_from_key),
    })
}

fn state_row(r: &Row<'_>) -> rusqlite::Result<(RecordState, String)> {
    let st = RecordState {
        sent_hash: r.get(0)?,
        sent_version: version(r.get(1)?, r.get(2)?),
        open: r.get(3)?,
        applied_version: version(r.get(4)?, r.get(5)?),
        applied_hash: r.get(6)?,
        destination_ids: BTreeMap::new(),
        applied_at: r.get::<_, Option<i64>>(8)?.map(time_from),
    };
    Ok((st, r.get(7)?))
}

#[async_trait]
impl RecordStateStore for SqliteStore {
    async fn get_many(&self, keys: &[StateKey]) -> PortResult<Vec<(StateKey, RecordState)>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let keys = keys.to_vec();
        self.db
            .run("get_many", move |conn| {
                // One read transaction: a consistent snapshot, one lock acquisition.
                let tx = conn.transaction().map_err(sql("begin get_many"))?;
                let mut out = Vec::new();
                {
                    let mut stmt = tx
                        .prepare_cached(
                            "SELECT sent_hash, sent_seq, sent_rv, is_open, applied_seq, applied_rv,
                                    applied_hash, destination_ids, applied_at
                             FROM mlc_record_state
                             WHERE flow = ?1 AND entity = ?2 AND record_key = ?3",
                        )
                        .map_err(sql("get_many"))?;
                    for k in keys {
                        let row = stmt
                            .query_row(params![k.flow, k.entity.as_str(), k.key], state_row)
                            .optional()
                            .map_err(sql("get_many"))?;
                        if let Some((mut st, ids)) = row {
                            st.destination_ids = from_json(&ids, "destination ids")?;
                            out.push((k, st));
                        }
                    }
                }
                tx.commit().map_err(sql("end get_many"))?;
                Ok(out)
            })
            .await
    }

    async fn mark_sent(&self, marks: &[SentMark]) -> PortResult<()> {
        if marks.is_empty() {
            return Ok(());
        }
        let marks = marks.to_vec();
        self.db
            .run("mark_sent", move |conn| {
                let tx = write_tx(conn)?;
                {
                    let mut stmt = tx
                        .prepare_cached(
                            "INSERT INTO mlc_record_state
                                 (flow, entity, record_key, sent_hash, sent_seq, sent_rv, is_open)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                             ON CONFLICT (flow, entity, record_key) DO UPDATE SET
                                 sent_hash = excluded.sent_hash, sent_seq = excluded.sent_seq,
                                 sent_rv = excluded.sent_rv, is_open = excluded.is_open",
                        )
                        .map_err(sql("mark_sent"))?;
                    for m in &marks {
                        stmt.execute(params![
                            m.key.flow,
                            m.key.entity.as_str(),
                            m.key.key,
                            m.hash,
                            u64_key(m.version.poll_seq),
                            m.version.row_version.map(u64_key),
                            m.open,
                        ])
                        .map_err(sql("mark_sent"))?;
                    }
                }
                tx.commit().map_err(sql("commit mark_sent"))?;
                Ok(())
            })
            .await
    }

    async fn mark_applied(&self, mark: &AppliedMark) -> PortResult<bool> {
        let mark = mark.clone();
        let at = time(mark.at)?;
        self.db
            .run("mark_applied", move |conn| {
                let tx = write_tx(conn)?;
                let k = &mark.key;
                let stored: Option<(Option<i64>, Option<i64>, String)> = tx
                    .prepare_cached(
                        "SELECT applied_seq, applied_rv, destination_ids FROM mlc_record_state
                         WHERE flow = ?1 AND entity = ?2 AND record_key = ?3",
                    )
                    .and_then(|mut s| {
                        s.query_row(params![k.flow, k.entity.as_str(), k.key], |r| {
                            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                        })
                        .optional()
                    })
                    .map_err(sql("mark_applied"))?;
                let mut ids: BTreeMap<String, String> = BTreeMap::new();
                if let Some((seq, rv, stored_ids)) = stored {
                    // Compared as `SourceVersion`s (poll sequence, then row version, `None`
                    // lowest), decoded from the order-preserving columns.
                    if version(seq, rv).is_some_and(|applied| applied >= mark.version) {
                        return Ok(false);
                    }
                    ids = from_json(&stored_ids, "destination ids")?;
                }
                ids.extend(mark.destination_ids.clone());
                let ids = to_json(&ids, "destination ids")?;
                tx.prepare_cached(
                    "INSERT INTO mlc_record_state
                         (flow, entity, record_key, applied_seq, applied_rv, applied_hash,
                          destination_ids, applied_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT (flow, entity, record_key) DO UPDATE SET
                         applied_seq = excluded.applied_seq, applied_rv = excluded.applied_rv,
                         applied_hash = excluded.applied_hash,
                         destination_ids = excluded.destination_ids,
                         applied_at = excluded.applied_at",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        k.flow,
                        k.entity.as_str(),
                        k.key,
                        u64_key(mark.version.poll_seq),
                        mark.version.row_version.map(u64_key),
                        mark.hash,
                        ids,
                        at,
                    ])
                })
                .map_err(sql("mark_applied"))?;
                tx.commit().map_err(sql("commit mark_applied"))?;
                Ok(true)
            })
            .await
    }

    async fn open_keys(&self, flow: &str, entity: Entity) -> PortResult<Vec<String>> {
        let flow = flow.to_string();
        self.db
            .run("open_keys", move |conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT record_key FROM mlc_record_state
                         WHERE flow = ?1 AND entity = ?2 AND is_open = 1 ORDER BY record_key",
                    )
                    .map_err(sql("open_keys"))?;
                let keys = stmt
                    .query_map(params![flow, entity.as_str()], |r| r.get(0))
                    .and_then(|rows| rows.collect::<rusqlite::Result<Vec<String>>>())
                    .map_err(sql("open_keys"))?;
                Ok(keys)
            })
            .await
    }
}
