//! [`SqliteQueue`]: a durable queue of change batches with SQS FIFO semantics, in SQLite.
//!
//! - Order per stream (message group): only a stream's oldest message (its head) can be
//!   delivered, and while the head is in flight or delayed the stream delivers nothing; a
//!   receive may take several consecutive messages of one stream, like SQS.
//! - Visibility: a received message is hidden until acked, nacked or its timeout passes, then
//!   comes back with a higher receive count. Every receive issues a new receipt; a stale
//!   receipt never acks or nacks a later delivery (`PortError::Conflict`).
//! - Redrive: a message that was already received `max_receive_count` times moves to the
//!   dead-letter table on the receive that would exceed it, like SQS's redrive policy.
//! - Dedup: a batch whose `ChangeBatch::dedup_id` was sent within `dedup_window` is dropped.
//! - Durability: every transition is one `BEGIN IMMEDIATE` transaction in a WAL file, so
//!   several processes may share the file and a crash at any point loses nothing.
//!
//! Visibility and dedup windows use the machine's wall clock, as SQS does.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mlc_core::event::EncodedBatch;
use mlc_core::ports::{Delivery, Queue, QueueDepth};
use mlc_core::{ChangeBatch, PortError, PortResult};
use rusqlite::{params, Transaction};

use crate::db::{from_json, nanos, now_ns, write_tx, Handle, Schema};
use crate::error::{sql, Error, Result};

/// The largest message the queue takes (serialised `ChangeBatch`), the SQS limit the poll packs
/// batches for. Larger batches are refused rather than stored, so a local run fails the way
/// AWS would.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// The queue name [`SqliteQueue::open`] uses.
pub const DEFAULT_QUEUE: &str = "default";

const SCHEMA: Schema = Schema {
    component: "queue",
    version: 1,
    migrations: &[],
    ddl: "
CREATE TABLE IF NOT EXISTS mlc_queue (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    queue         TEXT NOT NULL,
    message_id    TEXT NOT NULL UNIQUE,
    stream        TEXT NOT NULL,
    dedup_id      TEXT NOT NULL,
    body          TEXT NOT NULL,
    sent_at       INTEGER NOT NULL,
    visible_at    INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt       TEXT UNIQUE
);
CREATE INDEX IF NOT EXISTS mlc_queue_scan
    ON mlc_queue (queue, seq, stream, visible_at, receive_count);
CREATE TABLE IF NOT EXISTS mlc_queue_dead (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    queue         TEXT NOT NULL,
    message_id    TEXT NOT NULL UNIQUE,
    stream        TEXT NOT NULL,
    dedup_id      TEXT NOT NULL,
    body          TEXT NOT NULL,
    sent_at       INTEGER NOT NULL,
    visible_at    INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt       TEXT UNIQUE,
    dead_at       INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS mlc_queue_dead_scan
    ON mlc_queue_dead (queue, seq, stream, visible_at, receive_count);
CREATE TABLE IF NOT EXISTS mlc_queue_dedup (
    queue    TEXT NOT NULL,
    dedup_id TEXT NOT NULL,
    sent_at  INTEGER NOT NULL,
    PRIMARY KEY (queue, dedup_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS mlc_queue_dedup_age ON mlc_queue_dedup (queue, sent_at);
",
};

/// Options of a [`SqliteQueue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueOptions {
    /// Receives after which a message moves to the dead-letter table (SQS `maxReceiveCount`).
    /// Keep it high enough for ordinary throttling: a nacked message counts a receive.
    pub max_receive_count: u32,
    /// How long a dedup id is remembered (SQS: 5 minutes).
    pub dedup_window: Duration,
}

impl Default for QueueOptions {
    fn default() -> Self {
        QueueOptions {
            max_receive_count: 10,
            dedup_window: Duration::from_secs(5 * 60),
        }
    }
}

/// The two lanes of a queue, each its own table.
#[derive(Debug, Clone, Copy)]
enum Lane {
    Main,
    Dead,
}

impl Lane {
    fn table(self) -> &'static str {
        match self {
            Lane::Main => "mlc_queue",
            Lane::Dead => "mlc_queue_dead",
        }
    }
}

/// A durable FIFO queue of change batches with a dead-letter queue, in one SQLite file.
///
/// One file may hold several named queues (one per destination) next to a
/// [`crate::SqliteStore`]. Cloning is cheap; other handles and processes may open the same file.
#[derive(Clone, Debug)]
pub struct SqliteQueue {
    db: Handle,
    name: Arc<str>,
    opts: QueueOptions,
}

impl SqliteQueue {
    /// Opens the queue [`DEFAULT_QUEUE`] in the file at `path`, creating what is missing.
    /// Blocking: call it at startup (or inside `spawn_blocking`).
    pub fn open(path: &Path, opts: QueueOptions) -> Result<Self> {
        Self::open_named(path, DEFAULT_QUEUE, opts)
    }

    /// Opens the queue `name` in the file at `path` (e.g. one queue per destination).
    pub fn open_named(path: &Path, name: &str, opts: QueueOptions) -> Result<Self> {
        if opts.max_receive_count == 0 {
            return Err(Error::InvalidOptions(
                "max_receive_count must be at least 1".to_string(),
            ));
        }
        if name.is_empty() {
            return Err(Error::InvalidOptions("queue name is empty".to_string()));
        }
        Ok(SqliteQueue {
            db: Handle::open(path, &SCHEMA)?,
            name: Arc::from(name),
            opts,
        })
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        self.db.path()
    }

    /// The options it was opened with.
    pub fn options(&self) -> QueueOptions {
        self.opts
    }

    async fn settle(
        &self,
        what: &'static str,
        lane: Lane,
        receipt: &str,
        delay: Option<Duration>,
    ) -> PortResult<()> {
        let (queue, receipt) = (self.name.clone(), receipt.to_string());
        self.db
            .run(what, move |conn| {
                let tx = write_tx(conn)?;
                let n = match delay {
                    None => tx.execute(
                        &format!(
                            "DELETE FROM {} WHERE queue = ?1 AND receipt = ?2",
                            lane.table()
                        ),
                        params![queue.as_ref(), receipt],
                    ),
                    Some(d) => tx.execute(
                        &format!(
                            "UPDATE {} SET receipt = NULL, visible_at = ?3
                             WHERE queue = ?1 AND receipt = ?2",
                            lane.table()
                        ),
                        params![queue.as_ref(), receipt, now_ns().saturating_add(nanos(d))],
                    ),
                }
                .map_err(sql(what))?;
                if n == 0 {
                    return Err(PortError::Conflict(format!(
                        "{what}: receipt {receipt} is stale (the message was received again, \
                         handed back or deleted)"
                    )));
                }
                tx.commit().map_err(sql(what))?;
                Ok(())
            })
            .await
    }

    async fn receive_lane(
        &self,
        lane: Lane,
        max: usize,
        visibility: Duration,
    ) -> PortResult<Vec<Delivery>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let queue = self.name.clone();
        let redrive = match lane {
            Lane::Main => Some(i64::from(self.opts.max_receive_count)),
            Lane::Dead => None,
        };
        self.db
            .run("receive", move |conn| {
                let tx = write_tx(conn)?;
                let out = receive_tx(&tx, lane, &queue, max, nanos(visibility), redrive)?;
                tx.commit().map_err(sql("commit receive"))?;
                Ok(out)
            })
            .await
    }
}

/// What a receive does with one message.
enum Take {
    Deliver(i64),
    Redrive(i64),
}

/// Picks and delivers up to `max` messages in one transaction.
fn receive_tx(
    tx: &Transaction<'_>,
    lane: Lane,
    queue: &str,
    max: usize,
    visibility_ns: i64,
    redrive: Option<i64>,
) -> PortResult<Vec<Delivery>> {
    let now = now_ns();
    let table = lane.table();
    let mut takes = Vec::new();
    {
        // Walk the lane in send order. A stream's first row is its head: if the head is hidden
        // (in flight or delayed) the stream is blocked; otherwise its consecutive visible
        // messages may be taken.
        let mut stmt = tx
            .prepare_cached(&format!(
                "SELECT seq, stream, visible_at, receive_count FROM {table}
                 WHERE queue = ?1 ORDER BY seq"
            ))
            .map_err(sql("receive"))?;
        let mut rows = stmt.query([queue]).map_err(sql("receive"))?;
        let mut open: HashMap<String, bool> = HashMap::new();
        let mut delivered = 0;
        while let Some(row) = rows.next().map_err(sql("receive"))? {
            let seq: i64 = row.get(0).map_err(sql("receive"))?;
            let stream: String = row.get(1).map_err(sql("receive"))?;
            let visible = row.get::<_, i64>(2).map_err(sql("receive"))? <= now;
            let count: i64 = row.get(3).map_err(sql("receive"))?;
            let entry = open.entry(stream).or_insert(true);
            if !*entry {
                continue;
            }
            if !visible {
                *entry = false;
                continue;
            }
            if redrive.is_some_and(|max_count| count >= max_count) {
                takes.push(Take::Redrive(seq));
            } else {
                takes.push(Take::Deliver(seq));
                delivered += 1;
                if delivered >= max {
                    break;
                }
            }
        }
    }
    let mut out = Vec::with_capacity(takes.len());
    for take in takes {
        match take {
            Take::Redrive(seq) => {
                tx.prepare_cached(
                    "INSERT INTO mlc_queue_dead (queue, message_id, stream, dedup_id, body,
                         sent_at, visible_at, receive_count, receipt, dead_at)
                     SELECT queue, message_id, stream, dedup_id, body, sent_at, ?2, 0, NULL, ?2
                     FROM mlc_queue WHERE seq = ?1",
                )
                .and_then(|mut s| s.execute(params![seq, now]))
                .map_err(sql("redrive"))?;
                tx.prepare_cached("DELETE FROM mlc_queue WHERE seq = ?1")
                    .and_then(|mut s| s.execute([seq]))
                    .map_err(sql("redrive"))?;
            }
            Take::Deliver(seq) => {
                let receipt = uuid::Uuid::new_v4().simple().to_string();
                let (message_id, count, body): (String, i64, String) = tx
                    .prepare_cached(&format!(
                        "UPDATE {table} SET receive_count = receive_count + 1, receipt = ?2,
                             visible_at = ?3
                         WHERE seq = ?1 RETURNING message_id, receive_count, body"
                    ))
                    .and_then(|mut s| {
                        s.query_row(
                            params![seq, receipt, now.saturating_add(visibility_ns)],
                            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                        )
                    })
                    .map_err(sql("receive"))?;
                let batch: ChangeBatch = from_json(&body, &format!("queue message {message_id}"))?;
                out.push(Delivery {
                    message_id,
                    receipt,
                    receive_count: u32::try_from(count).unwrap_or(u32::MAX),
                    batch,
                });
            }
        }
    }
    Ok(out)
}

/// A batch ready to store.
struct Encoded {
    stream: String,
    dedup_id: String,
    body: String,
}

/// Refuses what SQS would refuse: a body over the message limit.
fn checked(b: EncodedBatch) -> PortResult<Encoded> {
    if b.json.len() > MAX_MESSAGE_BYTES {
        return Err(PortError::invalid(format!(
            "change batch of stream {} is {} bytes, over the {MAX_MESSAGE_BYTES}-byte \
             message limit ({} events)",
            b.stream,
            b.json.len(),
            b.events
        )));
    }
    Ok(Encoded {
        stream: b.stream,
        dedup_id: b.dedup_id,
        body: b.json,
    })
}

fn encode(batch: &ChangeBatch) -> PortResult<Encoded> {
    let e = EncodedBatch::encode(batch)
        .map_err(|e| PortError::permanent("cannot encode change batch", e))?;
    checked(e)
}

#[async_trait]
impl Queue for SqliteQueue {
    async fn send_encoded(&self, batches: Vec<EncodedBatch>) -> PortResult<()> {
        if batches.is_empty() {
            return Ok(());
        }
        // Every size is checked before anything is stored.
        let encoded = batches
            .into_iter()
            .map(checked)
            .collect::<PortResult<Vec<_>>>()?;
        let queue = self.name.clone();
        let window = nanos(self.opts.dedup_window);
        self.db
            .run("send", move |conn| {
                let now = now_ns();
                let tx = write_tx(conn)?;
                tx.prepare_cached("DELETE FROM mlc_queue_dedup WHERE queue = ?1 AND sent_at <= ?2")
                    .and_then(|mut s| s.execute(params![queue.as_ref(), now.saturating_sub(window)]))
                    .map_err(sql("prune dedup ids"))?;
                for e in &encoded {
                    let fresh = tx
                        .prepare_cached(
                            "INSERT INTO mlc_queue_dedup (queue, dedup_id, sent_at) VALUES (?1, ?2, ?3)
                             ON CONFLICT (queue, dedup_id) DO NOTHING",
                        )
                        .and_then(|mut s| s.execute(params![queue.as_ref(), e.dedup_id, now]))
                        .map_err(sql("send"))?;
                    if fresh == 0 {
                        continue;
                    }
                    tx.prepare_cached(
                        "INSERT INTO mlc_queue (queue, message_id, stream, dedup_id, body, sent_at,
                             visible_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
                    )
                    .and_then(|mut s| {
                        s.execute(params![
                            queue.as_ref(),
                            uuid::Uuid::new_v4().to_string(),
                            e.stream,
                            e.dedup_id,
                            e.body,
                            now
                        ])
                    })
                    .map_err(sql("send"))?;
                }
                tx.commit().map_err(sql("commit send"))?;
                Ok(())
            })
            .await
    }

    async fn receive(&self, max: usize, visibility: Duration) -> PortResult<Vec<Delivery>> {
        self.receive_lane(Lane::Main, max, visibility).await
    }

    async fn ack(&self, receipt: &str) -> PortResult<()> {
        self.settle("ack", Lane::Main, receipt, None).await
    }

    async fn nack(&self, receipt: &str, delay: Duration) -> PortResult<()> {
        self.settle("nack", Lane::Main, receipt, Some(delay)).await
    }

    async fn dead_letter(&self, batch: &ChangeBatch) -> PortResult<()> {
        // Not deduplicated: a record dead-lettered, replayed and failing again within the
        // window must land in the dead-letter queue again, and a duplicate there is harmless.
        let e = encode(batch)?;
        let queue = self.name.clone();
        self.db
            .run("dead_letter", move |conn| {
                let now = now_ns();
                let tx = write_tx(conn)?;
                tx.prepare_cached(
                    "INSERT INTO mlc_queue_dead (queue, message_id, stream, dedup_id, body, sent_at,
                         visible_at, dead_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?6)",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        queue.as_ref(),
                        uuid::Uuid::new_v4().to_string(),
                        e.stream,
                        e.dedup_id,
                        e.body,
                        now
                    ])
                })
                .map_err(sql("dead_letter"))?;
                tx.commit().map_err(sql("commit dead_letter"))?;
                Ok(())
            })
            .await
    }

    async fn receive_dead(&self, max: usize, visibility: Duration) -> PortResult<Vec<Delivery>> {
        self.receive_lane(Lane::Dead, max, visibility).await
    }

    async fn ack_dead(&self, receipt: &str) -> PortResult<()> {
        self.settle("ack_dead", Lane::Dead, receipt, None).await
    }

    async fn nack_dead(&self, receipt: &str, delay: Duration) -> PortResult<()> {
        self.settle("nack_dead", Lane::Dead, receipt, Some(delay))
            .await
    }

    async fn depth(&self) -> PortResult<QueueDepth> {
        let queue = self.name.clone();
        self.db
            .run("depth", move |conn| {
                let now = now_ns();
                let tx = conn.transaction().map_err(sql("begin depth"))?;
                let (queued, in_flight): (i64, i64) = tx
                    .prepare_cached(
                        "SELECT
                             COALESCE(SUM(receipt IS NULL OR visible_at <= ?2), 0),
                             COALESCE(SUM(receipt IS NOT NULL AND visible_at > ?2), 0)
                         FROM mlc_queue WHERE queue = ?1",
                    )
                    .and_then(|mut s| {
                        s.query_row(params![queue.as_ref(), now], |r| Ok((r.get(0)?, r.get(1)?)))
                    })
                    .map_err(sql("depth"))?;
                let dead: i64 = tx
                    .prepare_cached("SELECT COUNT(*) FROM mlc_queue_dead WHERE queue = ?1")
                    .and_then(|mut s| s.query_row([queue.as_ref()], |r| r.get(0)))
                    .map_err(sql("depth"))?;
                tx.commit().map_err(sql("end depth"))?;
                let n = |v: i64| u64::try_from(v).unwrap_or(0);
                Ok(QueueDepth {
                    queued: n(queued),
                    in_flight: n(in_flight),
                    dead: n(dead),
                })
            })
            .await
    }
}
