//! Watermarks (optimistic saves) and the per-flow poll lease.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mlc_core::entity::Entity;
use mlc_core::ports::WatermarkStore;
use mlc_core::watermark::{decode_value, encode_value, FlowRunInfo};
use mlc_core::{Lease, PortError, PortResult, Watermark};
use rusqlite::{params, OptionalExtension, Row};

use super::SqliteStore;
use crate::db::{counter, counter_from, time, time_from, write_tx};
use crate::error::sql;

/// A `mlc_flow` row.
struct FlowRow {
    owner: Option<String>,
    expires_at: Option<i64>,
    poll_seq: i64,
    last_started_at: Option<i64>,
    last_finished_at: Option<i64>,
    paused_until: Option<i64>,
    pause_reason: Option<String>,
}

const FLOW_COLUMNS: &str =
    "owner, expires_at, poll_seq, last_started_at, last_finished_at, paused_until, pause_reason";

fn flow_row(r: &Row<'_>) -> rusqlite::Result<FlowRow> {
    Ok(FlowRow {
        owner: r.get(0)?,
        expires_at: r.get(1)?,
        poll_seq: r.get(2)?,
        last_started_at: r.get(3)?,
        last_finished_at: r.get(4)?,
        paused_until: r.get(5)?,
        pause_reason: r.get(6)?,
    })
}

fn load_flow(conn: &rusqlite::Connection, flow: &str) -> PortResult<Option<FlowRow>> {
    conn.prepare_cached(&format!(
        "SELECT {FLOW_COLUMNS} FROM mlc_flow WHERE flow = ?1"
    ))
    .and_then(|mut s| s.query_row([flow], flow_row).optional())
    .map_err(sql("load flow"))
}

fn expiry(now: DateTime<Utc>, ttl: Duration) -> PortResult<DateTime<Utc>> {
    chrono::Duration::from_std(ttl)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .ok_or_else(|| PortError::invalid(format!("lease ttl {ttl:?} is out of range")))
}

type WatermarkRow = (String, String, i64, String, i64);

fn watermark_row(r: &Row<'_>) -> rusqlite::Result<WatermarkRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

fn to_watermark(
    flow: &str,
    (entity, value, version, poll_id, updated_at): WatermarkRow,
) -> PortResult<Watermark> {
    let (value, mapping, notes) = decode_value(&value)
        .map_err(|e| PortError::permanent("stored watermark value is corrupt", e))?;
    Ok(Watermark {
        flow: flow.to_string(),
        entity: Entity::from_str(&entity)
            .map_err(|e| PortError::permanent("stored watermark has an unknown entity", e))?,
        value,
        version: counter_from(version),
        poll_id,
        updated_at: time_from(updated_at),
        mapping,
        notes,
    })
}

#[async_trait]
impl WatermarkStore for SqliteStore {
    async fn acquire_lease(
        &self,
        flow: &str,
        owner: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> PortResult<Option<Lease>> {
        let (flow, owner) = (flow.to_string(), owner.to_string());
        let expires = expiry(now, ttl)?;
        let (now_ns, expires_ns) = (time(now)?, time(expires)?);
        self.db
            .run("acquire_lease", move |conn| {
                let tx = write_tx(conn)?;
                let row = load_flow(&tx, &flow)?;
                let held = row
                    .as_ref()
                    .is_some_and(|r| r.owner.is_some() && r.expires_at.is_some_and(|e| e > now_ns));
                if held {
                    return Ok(None);
                }
                let seq = row.as_ref().map_or(0, |r| counter_from(r.poll_seq)) + 1;
                tx.execute(
                    "INSERT INTO mlc_flow (flow, owner, expires_at, poll_seq, last_started_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (flow) DO UPDATE SET owner = excluded.owner,
                         expires_at = excluded.expires_at, poll_seq = excluded.poll_seq,
                         last_started_at = excluded.last_started_at",
                    params![
                        flow,
                        owner,
                        expires_ns,
                        counter(seq, "poll sequence")?,
                        now_ns
                    ],
                )
                .map_err(sql("acquire lease"))?;
                tx.commit().map_err(sql("commit lease"))?;
                Ok(Some(Lease {
                    flow,
                    owner,
                    expires_at: expires,
                    poll_seq: seq,
                }))
            })
            .await
    }

    async fn renew_lease(
        &self,
        lease: &Lease,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> PortResult<Lease> {
        let lease = lease.clone();
        let expires = expiry(now, ttl)?;
        let expires_ns = time(expires)?;
        self.db
            .run("renew_lease", move |conn| {
                let tx = write_tx(conn)?;
                // Still ours if nobody was granted a later sequence number: a lapsed lease that
                // no one took can be renewed (no other poll ran meanwhile).
                let n = tx
                    .execute(
                        "UPDATE mlc_flow SET expires_at = ?1
                         WHERE flow = ?2 AND owner = ?3 AND poll_seq = ?4",
                        params![
                            expires_ns,
                            lease.flow,
                            lease.owner,
                            counter(lease.poll_seq, "poll sequence")?
                        ],
                    )
                    .map_err(sql("renew lease"))?;
                if n == 0 {
                    return Err(PortError::Conflict(format!(
                        "lease {} of {} was lost",
                        lease.poll_id(),
                        lease.owner
                    )));
                }
                tx.commit().map_err(sql("commit lease"))?;
                Ok(Lease {
                    expires_at: expires,
                    ..lease
                })
            })
            .await
    }

    async fn release_lease(
        &self,
        lease: &Lease,
        finished: bool,
        now: DateTime<Utc>,
    ) -> PortResult<()> {
        let lease = lease.clone();
        let now_ns = time(now)?;
        self.db
            .run("release_lease", move |conn| {
                let tx = write_tx(conn)?;
                let seq = counter(lease.poll_seq, "poll sequence")?;
                let row = load_flow(&tx, &lease.flow)?;
                let ours = row.as_ref().is_some_and(|r| {
                    r.poll_seq == seq
                        && (r.owner.is_none() || r.owner.as_deref() == Some(lease.owner.as_str()))
                });
                if !ours {
                    return Err(PortError::Conflict(format!(
                        "lease {} of {} was lost before release",
                        lease.poll_id(),
                        lease.owner
                    )));
                }
                tx.execute(
                    "UPDATE mlc_flow SET owner = NULL, expires_at = NULL,
                         last_finished_at = CASE WHEN ?2 THEN ?3 ELSE last_finished_at END
                     WHERE flow = ?1",
                    params![lease.flow, finished, now_ns],
                )
                .map_err(sql("release lease"))?;
                tx.commit().map_err(sql("commit lease"))?;
                Ok(())
            })
            .await
    }

    async fn load(&self, flow: &str, entity: Entity) -> PortResult<Option<Watermark>> {
        let flow = flow.to_string();
        self.db
            .run("load", move |conn| {
                let row = conn
                    .prepare_cached(
                        "SELECT entity, value, version, poll_id, updated_at FROM mlc_watermark
                         WHERE flow = ?1 AND entity = ?2",
                    )
                    .and_then(|mut s| {
                        s.query_row(params![flow, entity.as_str()], watermark_row)
                            .optional()
                    })
                    .map_err(sql("load watermark"))?;
                row.map(|r| to_watermark(&flow, r)).transpose()
            })
            .await
    }

    async fn save(&self, wm: &Watermark) -> PortResult<()> {
        let wm = wm.clone();
        let value = encode_value(&wm)
            .map_err(|e| PortError::permanent("cannot encode watermark value", e))?;
        let updated = time(wm.updated_at)?;
        let version = counter(wm.version, "watermark version")?;
        if version < 1 {
            return Err(PortError::invalid(format!(
                "watermark {}/{} has version 0: the first save is version 1",
                wm.flow, wm.entity
            )));
        }
        self.db
            .run("save", move |conn| {
                let tx = write_tx(conn)?;
                let stored: i64 = tx
                    .query_row(
                        "SELECT version FROM mlc_watermark WHERE flow = ?1 AND entity = ?2",
                        params![wm.flow, wm.entity.as_str()],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(sql("read watermark version"))?
                    .unwrap_or(0);
                if stored != version - 1 {
                    return Err(PortError::Conflict(format!(
                        "watermark {}/{} is at version {stored}, save expected {}",
                        wm.flow,
                        wm.entity,
                        version - 1
                    )));
                }
                tx.execute(
                    "INSERT INTO mlc_watermark (flow, entity, value, version, poll_id, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (flow, entity) DO UPDATE SET value = excluded.value,
                         version = excluded.version, poll_id = excluded.poll_id,
                         updated_at = excluded.updated_at",
                    params![
                        wm.flow,
                        wm.entity.as_str(),
                        value,
                        version,
                        wm.poll_id,
                        updated
                    ],
                )
                .map_err(sql("save watermark"))?;
                tx.commit().map_err(sql("commit watermark"))?;
                Ok(())
            })
            .await
    }

    async fn list(&self, flow: &str) -> PortResult<Vec<Watermark>> {
        let flow = flow.to_string();
        self.db
            .run("list", move |conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT entity, value, version, poll_id, updated_at FROM mlc_watermark
                         WHERE flow = ?1 ORDER BY entity",
                    )
                    .map_err(sql("list watermarks"))?;
                let rows = stmt
                    .query_map([&flow], watermark_row)
                    .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                    .map_err(sql("list watermarks"))?;
                rows.into_iter().map(|r| to_watermark(&flow, r)).collect()
            })
            .await
    }

    async fn run_info(&self, flow: &str) -> PortResult<FlowRunInfo> {
        let flow = flow.to_string();
        self.db
            .run("run_info", move |conn| {
                let row = load_flow(conn, &flow)?;
                let Some(r) = row else {
                    return Ok(FlowRunInfo {
                        flow,
                        last_poll_seq: 0,
                        last_started_at: None,
                        last_finished_at: None,
                        running: None,
                        paused_until: None,
                        pause_reason: None,
                    });
                };
                // No clock here: a holder is reported until it releases; `expires_at` tells
                // the reader whether it lapsed.
                let running = match (&r.owner, r.expires_at) {
                    (Some(owner), Some(exp)) => Some(Lease {
                        flow: flow.clone(),
                        owner: owner.clone(),
                        expires_at: time_from(exp),
                        poll_seq: counter_from(r.poll_seq),
                    }),
                    _ => None,
                };
                Ok(FlowRunInfo {
                    last_poll_seq: counter_from(r.poll_seq),
                    last_started_at: r.last_started_at.map(time_from),
                    last_finished_at: r.last_finished_at.map(time_from),
                    running,
                    paused_until: r.paused_until.map(time_from),
                    pause_reason: r.pause_reason,
                    flow,
                })
            })
            .await
    }

    async fn set_pause(
        &self,
        flow: &str,
        until: Option<DateTime<Utc>>,
        reason: Option<&str>,
    ) -> PortResult<()> {
        let flow = flow.to_string();
        let until = until.map(time).transpose()?;
        let reason = reason.map(str::to_string);
        self.db
            .run("set_pause", move |conn| {
                conn.prepare_cached(
                    "INSERT INTO mlc_flow (flow, paused_until, pause_reason) VALUES (?1, ?2, ?3)
                     ON CONFLICT (flow) DO UPDATE SET paused_until = excluded.paused_until,
                         pause_reason = excluded.pause_reason",
                )
                .and_then(|mut s| s.execute(params![flow, until, reason]))
                .map_err(sql("set pause"))?;
                Ok(())
            })
            .await
    }
}
