//! One SQLite connection per handle: opening (WAL, busy timeout, schema versions), running work
//! off the async runtime, and the column encodings every table uses.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use mlc_core::{PortError, PortResult};
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use crate::error::{Error, Result};

/// How long a statement waits for another connection's (or process's) write lock before
/// failing with a transient error. Write transactions are short; this is generous on purpose.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(15);

/// A connection shared by the clones of one handle. SQLite connections are not `Sync`, so work
/// runs under a mutex on a blocking thread; other handles (and processes) open their own.
pub(crate) struct Db {
    conn: Mutex<Connection>,
    path: PathBuf,
    /// Set after work ran on `conn`: the checkpointer has something to look at.
    written: Arc<AtomicBool>,
    /// Dropped with the handle: stops the checkpointer.
    _checkpointer: Option<mpsc::Sender<()>>,
}

/// How often the checkpointer copies the write-ahead log into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);
/// The connections' own checkpoint threshold, in pages: a backstop for when the checkpointer
/// falls behind (readers holding old snapshots), so the log still cannot grow without bound.
const BACKSTOP_CHECKPOINT_PAGES: i64 = 16_384;

/// Copies the log into the database on a thread of its own. With SQLite's default, the commit
/// that crosses 1,000 log pages runs the checkpoint itself, and its two fsyncs stall the writer
/// (a 100k-row poll waited ≈ 0.06 s of its ≈ 1 s there). Here the writer goes on while this
/// thread syncs. Durability is unchanged: in WAL mode with
/// `synchronous = NORMAL` a commit is in the log either way, and a checkpoint only moves it.
/// `PASSIVE` never blocks readers or writers.
fn start_checkpointer(path: &Path, written: Arc<AtomicBool>) -> Option<mpsc::Sender<()>> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).ok()?;
    let (stop, stopped) = mpsc::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            // Any message or the handle's drop ends the loop.
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(CHECKPOINT_EVERY)
            {
                if written.swap(false, Ordering::AcqRel) {
                    // Busy (another checkpoint running) or failed: the next round or the
                    // connections' backstop catches up.
                    let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                }
            }
        });
    spawned.ok().map(|_| stop)
}

/// A cheap-to-clone handle on a [`Db`].
#[derive(Clone)]
pub(crate) struct Handle(Arc<Db>);

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("path", &self.0.path)
            .finish()
    }
}

/// Schema of one component (`store`, `queue`): its DDL (idempotent) and version.
pub(crate) struct Schema {
    pub component: &'static str,
    pub version: i64,
    /// The current schema, idempotent (`IF NOT EXISTS`): creates a new file whole.
    pub ddl: &'static str,
    /// Steps that bring an older file up, as (version that introduced it, SQL): run in order,
    /// before `ddl`, on a file whose recorded version is below theirs.
    pub migrations: &'static [(i64, &'static str)],
}

impl Handle {
    /// Opens (creating if needed) the file at `path` and applies `schema`.
    pub(crate) fn open(path: &Path, schema: &Schema) -> Result<Self> {
        let path = path.to_path_buf();
        if let Some(parent) = path.parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent).map_err(|source| Error::CreateDir {
                    path: parent.to_path_buf(),
                    source,
                })?;
            }
        }
        let err = |context: &'static str| {
            let path = path.clone();
            move |source| Error::Sqlite {
                path,
                context,
                source,
            }
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(&path, flags).map_err(err("open"))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(err("set busy timeout"))?;
        // WAL lets readers and one writer (of any process) work at once; the mode is stored in
        // the file, so every later connection gets it.
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(err("set journal mode"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::NoWal { path, mode });
        }
        // NORMAL in WAL mode: a process crash loses nothing committed; a power loss may drop the
        // last transactions, always a suffix, never one from the middle. The pipeline is built
        // for that: a lost watermark re-polls, a lost ack or applied mark re-delivers, and every
        // write is an idempotent upsert under a version check. FULL would fsync every commit.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err("set synchronous"))?;
        // 512 KiB of page cache per connection (SQLite's default is 2 MiB): a poll or a sink pass
        // touches each leaf page about once per batch, so what the cache must keep is the
        // B-trees' upper levels, which fit; the OS page cache serves the rest. Each halving
        // took a few MB off a 1M-row poll's peak (36 → 33 → 28 MB with the chunked staging)
        // with no CPU change; the cache is what grows between a 10k and a 1M-row poll.
        conn.pragma_update(None, "cache_size", -512)
            .map_err(err("set cache size"))?;
        conn.set_prepared_statement_cache_capacity(64);
        let written = Arc::new(AtomicBool::new(false));
        let checkpointer = start_checkpointer(&path, written.clone());
        if checkpointer.is_some() {
            conn.pragma_update(None, "wal_autocheckpoint", BACKSTOP_CHECKPOINT_PAGES)
                .map_err(err("set checkpoint threshold"))?;
        }
        apply_schema(&mut conn, schema).map_err(|e| match e {
            SchemaError::Sql(source) => Error::Sqlite {
                path: path.clone(),
                context: "create schema",
                source,
            },
            SchemaError::TooNew(found) => Error::SchemaTooNew {
                path: path.clone(),
                component: schema.component,
                found,
                supported: schema.version,
            },
        })?;
        Ok(Handle(Arc::new(Db {
            conn: Mutex::new(conn),
            path,
            written,
            _checkpointer: checkpointer,
        })))
    }

    /// The database file.
    pub(crate) fn path(&self) -> &Path {
        &self.0.path
    }

    /// Runs `f` on a blocking thread with the connection: SQLite calls block (disk, locks held
    /// by other processes) and must never stall the async runtime.
    pub(crate) async fn run<T, F>(&self, what: &'static str, f: F) -> PortResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> PortResult<T> + Send + 'static,
    {
        let db = self.0.clone();
        let joined = tokio::task::spawn_blocking(move || {
            // A panic inside `f` rolled its transaction back when the guard's stack unwound;
            // the connection itself is still sound.
            let mut conn = db.conn.lock().unwrap_or_else(PoisonError::into_inner);
            let out = f(&mut conn);
            db.written.store(true, Ordering::Release);
            out
        })
        .await;
        match joined {
            Ok(r) => r,
            Err(e) if e.is_panic() => {
                Err(PortError::permanent(format!("sqlite {what} panicked"), e))
            }
            Err(e) => Err(PortError::transient(
                format!("sqlite {what} was cancelled"),
                e,
            )),
        }
    }
}

enum SchemaError {
    Sql(rusqlite::Error),
    TooNew(i64),
}

impl From<rusqlite::Error> for SchemaError {
    fn from(e: rusqlite::Error) -> Self {
        SchemaError::Sql(e)
    }
}

/// Creates the component's tables in one immediate transaction, so two processes opening a new
/// file at once do not interleave, and records its version in `mlc_schema`.
fn apply_schema(conn: &mut Connection, schema: &Schema) -> std::result::Result<(), SchemaError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS mlc_schema (
             component TEXT PRIMARY KEY,
             version   INTEGER NOT NULL
         )",
    )?;
    let found: Option<i64> = tx
        .query_row(
            "SELECT version FROM mlc_schema WHERE component = ?1",
            [schema.component],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(found) = found {
        if found > schema.version {
            return Err(SchemaError::TooNew(found));
        }
    }
    if let Some(found) = found {
        for (introduced, sql) in schema.migrations {
            if found < *introduced {
                tx.execute_batch(sql)?;
            }
        }
    }
    tx.execute_batch(schema.ddl)?;
    tx.execute(
        "INSERT INTO mlc_schema (component, version) VALUES (?1, ?2)
         ON CONFLICT (component) DO UPDATE SET version = excluded.version",
        rusqlite::params![schema.component, schema.version],
    )?;
    tx.commit()?;
    Ok(())
}

/// Starts a write transaction that takes the write lock at once (`BEGIN IMMEDIATE`): a read
/// followed by a write in a deferred transaction can fail with `SQLITE_BUSY` without waiting
/// for the busy timeout when another connection wrote in between.
pub(crate) fn write_tx(conn: &mut Connection) -> PortResult<rusqlite::Transaction<'_>> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(crate::error::sql("begin immediate"))
}

/// Order-preserving `u64` → `i64`: flips the top bit, so `0` maps to `i64::MIN` and `u64::MAX`
/// to `i64::MAX` and SQL comparisons order them like the `u64`s (a plain bit-cast would put
/// values above `i64::MAX` below zero).
pub(crate) fn u64_key(v: u64) -> i64 {
    (v ^ (1 << 63)) as i64
}

/// Inverse of [`u64_key`].
pub(crate) fn u64_from_key(v: i64) -> u64 {
    (v as u64) ^ (1 << 63)
}

/// A counter (poll sequence, watermark version, budget units) as stored: plain, readable.
pub(crate) fn counter(v: u64, what: &str) -> PortResult<i64> {
    i64::try_from(v).map_err(|_| PortError::invalid(format!("{what} {v} is too large to store")))
}

/// A stored counter back to `u64`.
pub(crate) fn counter_from(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// A time as integer nanoseconds since the epoch: exact round trip and correct SQL ordering.
pub(crate) fn time(t: DateTime<Utc>) -> PortResult<i64> {
    t.timestamp_nanos_opt().ok_or_else(|| {
        PortError::invalid(format!(
            "time {t} is outside the storable range (1677..2262)"
        ))
    })
}

/// Inverse of [`time`].
pub(crate) fn time_from(ns: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_nanos(ns)
}

/// A duration in nanoseconds, saturating (a duration of centuries is "forever").
pub(crate) fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// The machine's time in nanoseconds (queue visibility and dedup windows are wall-clock
/// durations, like SQS's).
pub(crate) fn now_ns() -> i64 {
    Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// Serialises a value stored as JSON.
pub(crate) fn to_json<T: serde::Serialize>(v: &T, what: &str) -> PortResult<String> {
    serde_json::to_string(v).map_err(|e| PortError::permanent(format!("cannot encode {what}"), e))
}

/// Parses a value stored as JSON; a failure means a corrupt or foreign row.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(s: &str, what: &str) -> PortResult<T> {
    serde_json::from_str(s)
        .map_err(|e| PortError::permanent(format!("stored {what} is corrupt"), e))
}
