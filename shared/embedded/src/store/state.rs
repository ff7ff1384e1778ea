//! Record state. The poll side is the sent log `mlc_sent` (one row per record and poll that sent
//! it; the latest is the state, every row is also a `queued` audit entry); the sink side is the
//! applied columns of `mlc_record_state`. Separate tables and statements: neither side can
//! clobber the other.

use std::collections::BTreeMap;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use mlc_core::ports::{RecordStateStore, Unapplied};
use mlc_core::state::{AppliedMark, LastSent, SentMark, StateKey};
use mlc_core::{Entity, PortError, PortResult, RecordState, SourceVersion};
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

/// The poll side of a record: its latest `mlc_sent` row.
const LATEST_SENT: &str = "SELECT content_hash, poll_seq, row_version, is_open FROM mlc_sent
     WHERE flow = ?1 AND record_key = ?2 AND entity = ?3 ORDER BY poll_seq DESC LIMIT 1";

/// A [`LATEST_SENT`] row.
fn last_sent_row(r: &Row<'_>) -> rusqlite::Result<LastSent> {
    Ok(LastSent {
        hash: r.get(0)?,
        version: version(Some(r.get(1)?), r.get(2)?),
        open: r.get(3)?,
    })
}

/// The sink side of a record.
const APPLIED: &str = "SELECT applied_seq, applied_rv, applied_hash, destination_ids, applied_at
     FROM mlc_record_state WHERE flow = ?1 AND entity = ?2 AND record_key = ?3";

/// The columns of a sent row as the audit log reads them, in [`SentRow`] order.
pub(super) const SENT_COLUMNS: &str =
    "flow, record_key, entity, poll_seq, row_version, content_hash, is_open, polled_at";

/// One `mlc_sent` row.
pub(super) struct SentRow {
    flow: String,
    key: String,
    entity: String,
    poll_seq: i64,
    row_version: Option<i64>,
    content_hash: String,
    open: bool,
    polled_at: Option<i64>,
}

pub(super) fn sent_row(r: &Row<'_>) -> rusqlite::Result<SentRow> {
    Ok(SentRow {
        flow: r.get(0)?,
        key: r.get(1)?,
        entity: r.get(2)?,
        poll_seq: r.get(3)?,
        row_version: r.get(4)?,
        content_hash: r.get(5)?,
        open: r.get(6)?,
        polled_at: r.get(7)?,
    })
}

impl SentRow {
    /// The mark this row stores; `None` for a row carried over from version 2 (no poll time).
    pub(super) fn into_mark(self) -> PortResult<Option<SentMark>> {
        let Some(polled_at) = self.polled_at else {
            return Ok(None);
        };
        let entity = Entity::from_str(&self.entity).map_err(|_| {
            PortError::invalid(format!(
                "stored sent row has an unknown entity {:?}",
                self.entity
            ))
        })?;
        Ok(Some(SentMark {
            key: StateKey::new(self.flow, entity, self.key),
            version: SourceVersion {
                poll_seq: u64_from_key(self.poll_seq),
                row_version: self.row_version.map(u64_from_key),
            },
            hash: self.content_hash,
            open: self.open,
            due: None,
            polled_at: time_from(polled_at),
        }))
    }
}

/// The fence: marks of a poll older than the flow's latest lease are refused as a whole (a
/// poll whose lease lapsed and was taken must not make the next poll believe its data was the
/// last sent). One read per flow and call, not per mark.
fn fence(tx: &rusqlite::Transaction<'_>, rows: &SentRows) -> PortResult<()> {
    let mut checked: Vec<(&str, i64)> = Vec::new();
    for r in &rows.rows {
        let flow = rows.text(&r.flow);
        let seq = u64_from_key(r.poll_seq);
        let seq = i64::try_from(seq).unwrap_or(i64::MAX);
        match checked.iter_mut().find(|(f, _)| *f == flow) {
            Some((_, max)) => *max = (*max).max(seq),
            None => checked.push((flow, seq)),
        }
    }
    for (flow, seq) in checked {
        let latest: Option<i64> = tx
            .query_row(
                "SELECT poll_seq FROM mlc_flow WHERE flow = ?1",
                params![flow],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql("mark_sent fence"))?;
        if latest.is_some_and(|l| l > seq) {
            return Err(PortError::Conflict(format!(
                "flow {flow}: poll {seq} lost its lease to poll {}; its sent marks are refused",
                latest.unwrap_or_default()
            )));
        }
    }
    Ok(())
}

/// A date as days since 1970-01-01.
fn day_number(d: NaiveDate) -> i64 {
    (d - NaiveDate::default()).num_days()
}

fn from_day_number(n: i64) -> Option<NaiveDate> {
    NaiveDate::default().checked_add_signed(chrono::Duration::days(n))
}

/// Sent marks as bound to the insert, their strings in one buffer: a poll marks thousands of
/// records per call, and a copy of each mark (three strings) cost more than its insert's SQL.
struct SentRows {
    text: String,
    rows: Vec<SentRowBind>,
}

struct SentRowBind {
    flow: std::ops::Range<usize>,
    key: std::ops::Range<usize>,
    hash: std::ops::Range<usize>,
    entity: &'static str,
    poll_seq: i64,
    row_version: Option<i64>,
    open: bool,
    polled_at: i64,
    due: Option<i64>,
}

impl SentRows {
    fn new(marks: &[SentMark]) -> PortResult<Self> {
        let mut text = String::new();
        let mut rows = Vec::with_capacity(marks.len());
        let mut last_flow: Option<(&str, std::ops::Range<usize>)> = None;
        let push = |text: &mut String, s: &str| {
            let start = text.len();
            text.push_str(s);
            start..text.len()
        };
        for m in marks {
            // Marks of one call share their flow: stored once.
            let flow = match &last_flow {
                Some((f, r)) if *f == m.key.flow => r.clone(),
                _ => {
                    let r = push(&mut text, &m.key.flow);
                    last_flow = Some((&m.key.flow, r.clone()));
                    r
                }
            };
            let key = push(&mut text, &m.key.key);
            let hash = push(&mut text, &m.hash);
            rows.push(SentRowBind {
                flow,
                key,
                hash,
                entity: m.key.entity.as_str(),
                poll_seq: u64_key(m.version.poll_seq),
                row_version: m.version.row_version.map(u64_key),
                open: m.open,
                polled_at: time(m.polled_at)?,
                due: m.due.map(day_number),
            });
        }
        Ok(SentRows { text, rows })
    }

    fn text(&self, r: &std::ops::Range<usize>) -> &str {
        self.text.get(r.clone()).unwrap_or_default()
    }
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
                    let mut sent = tx.prepare_cached(LATEST_SENT).map_err(sql("get_many"))?;
                    let mut applied = tx.prepare_cached(APPLIED).map_err(sql("get_many"))?;
                    for k in keys {
                        let entity = k.entity.as_str();
                        let poll_side = sent
                            .query_row(params![k.flow, k.key, entity], last_sent_row)
                            .optional()
                            .map_err(sql("get_many"))?;
                        let sink_side = applied
                            .query_row(params![k.flow, entity, k.key], |r| {
                                Ok((
                                    version(r.get(0)?, r.get(1)?),
                                    r.get::<_, Option<String>>(2)?,
                                    r.get::<_, String>(3)?,
                                    r.get::<_, Option<i64>>(4)?,
                                ))
                            })
                            .optional()
                            .map_err(sql("get_many"))?;
                        if poll_side.is_none() && sink_side.is_none() {
                            continue;
                        }
                        let mut st = RecordState::default();
                        if let Some(last) = poll_side {
                            st.sent_hash = Some(last.hash);
                            st.sent_version = last.version;
                            st.open = last.open;
                        }
                        if let Some((applied_version, hash, ids, at)) = sink_side {
                            st.applied_version = applied_version;
                            st.applied_hash = hash;
                            st.destination_ids = from_json(&ids, "destination ids")?;
                            st.applied_at = at.map(time_from);
                        }
                        out.push((k, st));
                    }
                }
                tx.commit().map_err(sql("end get_many"))?;
                Ok(out)
            })
            .await
    }

    async fn last_sent(&self, keys: &[StateKey]) -> PortResult<Vec<(StateKey, LastSent)>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let keys = keys.to_vec();
        self.db
            .run("last_sent", move |conn| {
                let tx = conn.transaction().map_err(sql("begin last_sent"))?;
                let mut out = Vec::new();
                {
                    let mut sent = tx.prepare_cached(LATEST_SENT).map_err(sql("last_sent"))?;
                    for k in keys {
                        let found = sent
                            .query_row(params![k.flow, k.key, k.entity.as_str()], last_sent_row)
                            .optional()
                            .map_err(sql("last_sent"))?;
                        if let Some(last) = found {
                            out.push((k, last));
                        }
                    }
                }
                tx.commit().map_err(sql("end last_sent"))?;
                Ok(out)
            })
            .await
    }

    async fn mark_sent(&self, marks: &[SentMark]) -> PortResult<()> {
        if marks.is_empty() {
            return Ok(());
        }
        let rows = SentRows::new(marks)?;
        self.db
            .run("mark_sent", move |conn| {
                let tx = write_tx(conn)?;
                fence(&tx, &rows)?;
                {
                    // A key sent twice by one poll keeps its last mark, as a state would.
                    let mut stmt = tx
                        .prepare_cached(
                            "INSERT OR REPLACE INTO mlc_sent
                                 (flow, record_key, entity, poll_seq, row_version, content_hash,
                                  is_open, polled_at, due)
                             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9",
                        )
                        .map_err(sql("mark_sent"))?;
                    for r in &rows.rows {
                        stmt.execute(params![
                            rows.text(&r.flow),
                            rows.text(&r.key),
                            r.entity,
                            r.poll_seq,
                            r.row_version,
                            rows.text(&r.hash),
                            r.open,
                            r.polled_at,
                            r.due,
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
                    // SQLite takes the bare column `is_open` from the row with max(poll_seq):
                    // each record's latest mark decides.
                    .prepare_cached(
                        "SELECT record_key, is_open, max(poll_seq) FROM mlc_sent
                         WHERE flow = ?1 AND entity = ?2 GROUP BY record_key ORDER BY record_key",
                    )
                    .map_err(sql("open_keys"))?;
                let rows = stmt
                    .query_map(params![flow, entity.as_str()], |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?))
                    })
                    .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                    .map_err(sql("open_keys"))?;
                Ok(rows
                    .into_iter()
                    .filter_map(|(key, open)| open.then_some(key))
                    .collect())
            })
            .await
    }

    async fn unapplied(
        &self,
        flow: &str,
        entities: &[Entity],
        sent_before: DateTime<Utc>,
        limit: usize,
    ) -> PortResult<Vec<Unapplied>> {
        let flow = flow.to_string();
        let entities: Vec<&'static str> = entities.iter().map(|e| e.as_str()).collect();
        let before = time(sent_before)?;
        self.db
            .run("unapplied", move |conn| {
                // Each record's latest sent row (the max poll_seq of its key), compared with
                // what its sink side applied.
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT s.entity, s.record_key, s.poll_seq, s.row_version, s.polled_at
                         FROM mlc_sent s
                         LEFT JOIN mlc_record_state r
                           ON r.flow = s.flow AND r.entity = s.entity
                          AND r.record_key = s.record_key
                         WHERE s.flow = ?1 AND s.polled_at IS NOT NULL AND s.polled_at < ?2
                           AND s.poll_seq = (SELECT max(x.poll_seq) FROM mlc_sent x
                                             WHERE x.flow = s.flow AND x.record_key = s.record_key
                                               AND x.entity = s.entity)
                           AND (r.applied_seq IS NULL OR r.applied_seq < s.poll_seq)
                         ORDER BY s.polled_at",
                    )
                    .map_err(sql("unapplied"))?;
                let rows = stmt
                    .query_map(params![flow, before], |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, i64>(2)?,
                            r.get::<_, Option<i64>>(3)?,
                            r.get::<_, i64>(4)?,
                        ))
                    })
                    .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                    .map_err(sql("unapplied"))?;
                let mut out = Vec::new();
                for (entity, key, seq, rv, at) in rows {
                    if !entities.contains(&entity.as_str()) {
                        continue;
                    }
                    if out.len() >= limit {
                        break;
                    }
                    let entity = Entity::from_str(&entity).map_err(|_| {
                        PortError::invalid(format!(
                            "stored sent row has an unknown entity {entity:?}"
                        ))
                    })?;
                    out.push(Unapplied {
                        key: StateKey::new(flow.clone(), entity, key),
                        version: SourceVersion {
                            poll_seq: u64_from_key(seq),
                            row_version: rv.map(u64_from_key),
                        },
                        sent_at: time_from(at),
                    });
                }
                Ok(out)
            })
            .await
    }

    async fn calendar_keys(
        &self,
        flow: &str,
        entity: Entity,
    ) -> PortResult<Vec<(String, NaiveDate)>> {
        let flow = flow.to_string();
        self.db
            .run("calendar_keys", move |conn| {
                let mut stmt = conn
                    // Each record's latest mark decides, as in `open_keys`.
                    .prepare_cached(
                        "SELECT record_key, is_open, due, max(poll_seq) FROM mlc_sent
                         WHERE flow = ?1 AND entity = ?2 GROUP BY record_key ORDER BY record_key",
                    )
                    .map_err(sql("calendar_keys"))?;
                let rows = stmt
                    .query_map(params![flow, entity.as_str()], |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, bool>(1)?,
                            r.get::<_, Option<i64>>(2)?,
                        ))
                    })
                    .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                    .map_err(sql("calendar_keys"))?;
                Ok(rows
                    .into_iter()
                    .filter_map(|(key, open, due)| {
                        Some((key, from_day_number(due.filter(|_| open)?)?))
                    })
                    .collect())
            })
            .await
    }
}
