//! [`SqliteStore`]: watermarks and leases, record state, the audit log and rate budgets in one
//! SQLite file.
//!
//! Every port call is one transaction; batched calls (`mark_sent`, `get_many`, `append`) run
//! all their rows through one cached prepared statement inside it, so a 10k-record poll costs
//! one commit, not 10k.

mod audit;
mod budget;
mod state;
mod watermark;

use std::path::Path;

use crate::db::{Handle, Schema};
use crate::error::Result;

/// Version 3's sent log. One row per (record, poll) that sent it: the latest row of a record is
/// its poll-side state (hash, version, open), and every row is also its `queued` audit entry
/// (`SentMark::queued_entry`). A poll thus pays one B-tree insert per changed record, where
/// version 2 paid four (state row, its open index, audit row, audit key index). The key puts the
/// record before the entity so a record's history in a flow is one range; rows carried over from
/// version 2 have no `polled_at` (their audit entry is an `mlc_audit` row).
macro_rules! sent_table {
    () => {
        sent_table!("")
    };
    ($extra:literal) => {
        concat!(
            "
CREATE TABLE IF NOT EXISTS mlc_sent (
    flow         TEXT NOT NULL,
    record_key   TEXT NOT NULL,
    entity       TEXT NOT NULL,
    poll_seq     INTEGER NOT NULL,
    row_version  INTEGER,
    content_hash TEXT NOT NULL,
    is_open      INTEGER NOT NULL,
    polled_at    INTEGER,",
            $extra,
            "
    PRIMARY KEY (flow, record_key, entity, poll_seq)
) WITHOUT ROWID;
"
        )
    };
}

/// Tables of the store. Times are integer nanoseconds since the epoch (UTC); source versions are
/// stored order-preserving (see `db::u64_key`) so SQL compares them like `SourceVersion` does.
const SCHEMA: Schema = Schema {
    component: "store",
    version: 4,
    migrations: &[(2, AUDIT_COLUMNS_V2), (3, SENT_LOG_V3), (4, SENT_DUE_V4)],
    ddl: concat!(
        "
CREATE TABLE IF NOT EXISTS mlc_flow (
    flow             TEXT PRIMARY KEY,
    owner            TEXT,
    expires_at       INTEGER,
    poll_seq         INTEGER NOT NULL DEFAULT 0,
    last_started_at  INTEGER,
    last_finished_at INTEGER,
    paused_until     INTEGER,
    pause_reason     TEXT
);
CREATE TABLE IF NOT EXISTS mlc_watermark (
    flow       TEXT NOT NULL,
    entity     TEXT NOT NULL,
    value      TEXT NOT NULL,
    version    INTEGER NOT NULL,
    poll_id    TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (flow, entity)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS mlc_record_state (
    flow            TEXT NOT NULL,
    entity          TEXT NOT NULL,
    record_key      TEXT NOT NULL,
    applied_seq     INTEGER,
    applied_rv      INTEGER,
    applied_hash    TEXT,
    destination_ids TEXT NOT NULL DEFAULT '{}',
    applied_at      INTEGER,
    PRIMARY KEY (flow, entity, record_key)
) WITHOUT ROWID;
-- Version 3: the table holds the sink side only; the poll side is `mlc_sent`. Files of
-- versions 1 and 2 keep their old poll-side columns (sent_*, is_open), read once by the
-- migration and unused after it; their open index goes.
DROP INDEX IF EXISTS mlc_record_state_open;
CREATE TABLE IF NOT EXISTS mlc_audit (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    flow         TEXT NOT NULL,
    entity       TEXT NOT NULL,
    record_key   TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    at           INTEGER NOT NULL,
    entry        TEXT NOT NULL,
    poll_id      TEXT,
    polled_at    INTEGER,
    version_seq  INTEGER,
    version_rv   INTEGER,
    content_hash TEXT,
    destination  TEXT,
    attempt      INTEGER
);
CREATE INDEX IF NOT EXISTS mlc_audit_key ON mlc_audit (record_key, at, seq);
-- Version 2: every poll appends one `queued` row per changed record, so each index on the
-- audit table is paid per record polled. A record's history is found through its key (the flow
-- is filtered among its few rows), and `queued` rows, the bulk of the table, are left out of
-- the outcome index: it serves the lookups of failures and dead letters.
DROP INDEX IF EXISTS mlc_audit_record;
DROP INDEX IF EXISTS mlc_audit_outcome;
CREATE INDEX IF NOT EXISTS mlc_audit_outcome_v2 ON mlc_audit (outcome, at, seq)
    WHERE outcome <> 'queued';
CREATE TRIGGER IF NOT EXISTS mlc_audit_append_only BEFORE UPDATE ON mlc_audit
BEGIN
    SELECT RAISE(ABORT, 'audit entries are append-only');
END;
CREATE TABLE IF NOT EXISTS mlc_budget (
    scope        TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    used         INTEGER NOT NULL,
    PRIMARY KEY (scope, window_start)
) WITHOUT ROWID;
",
        sent_table!("\n    due          INTEGER,")
    ),
};

/// Version 4 keeps, per sent mark, the due date of a record whose status moves with the
/// calendar (days since 1970-01-01): a new business date re-reads exactly those it moves.
const SENT_DUE_V4: &str = "ALTER TABLE mlc_sent ADD COLUMN due INTEGER;";

/// Version 3 moves what the poll sent from `mlc_record_state` to `mlc_sent`.
const SENT_LOG_V3: &str = concat!(
    sent_table!(),
    "
INSERT OR IGNORE INTO mlc_sent
    (flow, record_key, entity, poll_seq, row_version, content_hash, is_open, polled_at)
SELECT flow, record_key, entity, sent_seq, sent_rv, sent_hash, is_open, NULL
FROM mlc_record_state WHERE sent_seq IS NOT NULL AND sent_hash IS NOT NULL;
"
);

/// Version 2 keeps an audit entry in columns; `entry` holds only what columns cannot (destination
/// ids, error chain) as JSON, or nothing. Version 1 rows (whole entry as JSON, these columns
/// null) are still read.
const AUDIT_COLUMNS_V2: &str = "
ALTER TABLE mlc_audit ADD COLUMN poll_id TEXT;
ALTER TABLE mlc_audit ADD COLUMN polled_at INTEGER;
ALTER TABLE mlc_audit ADD COLUMN version_seq INTEGER;
ALTER TABLE mlc_audit ADD COLUMN version_rv INTEGER;
ALTER TABLE mlc_audit ADD COLUMN content_hash TEXT;
ALTER TABLE mlc_audit ADD COLUMN destination TEXT;
ALTER TABLE mlc_audit ADD COLUMN attempt INTEGER;
";

/// The local store: implements [`mlc_core::ports::WatermarkStore`],
/// [`mlc_core::ports::RecordStateStore`], [`mlc_core::ports::AuditLog`] and
/// [`mlc_core::ports::Budget`] over one SQLite file (WAL mode).
///
/// Cloning is cheap and clones share one connection. Other handles and other processes may
/// open the same file: every read-modify-write runs in a `BEGIN IMMEDIATE` transaction.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    db: Handle,
}

impl SqliteStore {
    /// Opens the store at `path`, creating the file, its parent directories and its tables
    /// when missing. Blocking: call it at startup (or inside `spawn_blocking`).
    pub fn open(path: &Path) -> Result<Self> {
        Ok(SqliteStore {
            db: Handle::open(path, &SCHEMA)?,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        self.db.path()
    }
}
