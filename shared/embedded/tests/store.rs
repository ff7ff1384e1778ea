//! SQLite store behaviour beyond the conformance suites: big batches in one call, version
//! ordering near `u64::MAX`, several handles on one file, schema versions, append-only audit.

use std::collections::BTreeMap;
use std::time::Duration;

use mlc_core::conformance::t0;
use mlc_core::ports::{AuditLog, Budget, RecordStateStore, WatermarkStore};
use mlc_core::state::{AppliedMark, SentMark, StateKey};
use mlc_core::{AuditEntry, Entity, SourceVersion, SyncOutcome};
use mlc_embedded::{Error, SqliteStore};

fn temp_store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("store.sqlite")).expect("open");
    (dir, store)
}

fn sv(poll_seq: u64, row_version: Option<u64>) -> SourceVersion {
    SourceVersion {
        poll_seq,
        row_version,
    }
}

fn applied(key: &StateKey, version: SourceVersion) -> AppliedMark {
    AppliedMark {
        key: key.clone(),
        version,
        hash: format!("h{version}"),
        destination_ids: BTreeMap::new(),
        at: t0(),
    }
}

/// Commits only append to the write-ahead log; a background thread copies them into the
/// database file (writers never wait for that copy's fsyncs). 20k marks are far below the
/// connections' own checkpoint threshold, so only that thread can have grown the file.
#[tokio::test]
async fn commits_reach_the_database_file_without_the_writer_checkpointing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.sqlite");
    let s = SqliteStore::open(&path).expect("open");
    let before = std::fs::metadata(&path).expect("db file").len();
    let marks: Vec<SentMark> = (0..20_000u64)
        .map(|i| SentMark {
            key: StateKey::new("f", Entity::ArInvoice, format!("C{i:07}|INV|I")),
            version: sv(7, Some(i)),
            hash: format!("{i:064x}"),
            open: true,
            due: None,
            polled_at: t0(),
        })
        .collect();
    s.mark_sent(&marks).await.expect("mark 20k");
    let wal = path.with_extension("sqlite-wal");
    assert!(
        std::fs::metadata(&wal).expect("wal").len() > 1_000_000,
        "the marks went to the log"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::fs::metadata(&path).expect("db file").len() < before + 1_000_000 {
        assert!(
            std::time::Instant::now() < deadline,
            "the log was not copied into the database file"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Still one store: what was written reads back.
    let got = s.get_many(&[marks[19_999].key.clone()]).await.expect("get");
    assert_eq!(got[0].1.sent_hash, Some(marks[19_999].hash.clone()));
}

#[tokio::test]
async fn mark_sent_and_get_many_of_20k_in_one_call() {
    let (_dir, s) = temp_store();
    let marks: Vec<SentMark> = (0..20_000u64)
        .map(|i| SentMark {
            key: StateKey::new("f", Entity::ArInvoice, format!("C{i:07}|INV|I")),
            version: sv(7, Some(u64::MAX - i)),
            hash: format!("h{i}"),
            open: i % 2 == 0,
            due: None,
            polled_at: t0(),
        })
        .collect();
    s.mark_sent(&marks).await.expect("mark 20k");
    let keys: Vec<StateKey> = marks.iter().map(|m| m.key.clone()).collect();
    let got = s.get_many(&keys).await.expect("get 20k");
    assert_eq!(got.len(), 20_000);
    for ((k, st), m) in got.iter().zip(&marks) {
        assert_eq!(k, &m.key, "input order kept");
        assert_eq!(st.sent_version, Some(m.version));
        assert_eq!(st.sent_hash.as_deref(), Some(m.hash.as_str()));
        assert_eq!(st.open, m.open);
    }
    assert_eq!(
        s.open_keys("f", Entity::ArInvoice)
            .await
            .expect("open")
            .len(),
        10_000
    );
}

#[tokio::test]
async fn applied_versions_order_like_source_version_near_u64_max() {
    let (_dir, s) = temp_store();
    let k = StateKey::new("f", Entity::ArCustomer, "C1");
    let steps = [
        (sv(1, None), true),
        (sv(1, Some(0)), true),
        (sv(1, Some(i64::MAX as u64)), true),
        (sv(1, Some(i64::MAX as u64 + 1)), true),
        (sv(1, Some(u64::MAX - 1)), true),
        (sv(1, Some(5)), false),
        (sv(1, None), false),
        (sv(1, Some(u64::MAX)), true),
        (sv(1, Some(u64::MAX)), false),
        (sv(2, None), true),
        (sv(1, Some(u64::MAX)), false),
        (sv(u64::MAX, None), true),
        (sv(u64::MAX - 1, Some(u64::MAX)), false),
        (sv(u64::MAX, Some(0)), true),
    ];
    let mut current = None;
    for (i, (v, want)) in steps.into_iter().enumerate() {
        let got = s.mark_applied(&applied(&k, v)).await.expect("apply");
        assert_eq!(got, want, "step {i}: {v} over {current:?}");
        assert_eq!(
            want,
            current.is_none_or(|c| v > c),
            "step {i}: test agrees with Ord"
        );
        if got {
            current = Some(v);
        }
        let st = s
            .get_many(std::slice::from_ref(&k))
            .await
            .expect("get")
            .remove(0)
            .1;
        assert_eq!(st.applied_version, current, "step {i}: stored exactly");
    }
}

#[tokio::test]
async fn two_handles_on_one_file_share_leases_and_budgets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nested").join("dirs").join("store.sqlite");
    let a = SqliteStore::open(&path).expect("open a");
    let b = SqliteStore::open(&path).expect("open b");
    let ttl = Duration::from_secs(60);
    let la = a
        .acquire_lease("flow", "a", ttl, t0())
        .await
        .expect("acquire");
    assert!(la.is_some());
    assert!(b
        .acquire_lease("flow", "b", ttl, t0())
        .await
        .expect("acquire")
        .is_none());
    a.release_lease(&la.expect("lease"), true, t0())
        .await
        .expect("release");
    let lb = b
        .acquire_lease("flow", "b", ttl, t0())
        .await
        .expect("acquire")
        .expect("free now");
    assert_eq!(lb.poll_seq, 2, "sequence continues across handles");

    let mut tasks = Vec::new();
    for s in [a.clone(), b.clone(), a, b] {
        tasks.push(tokio::spawn(async move {
            let mut got = 0;
            for _ in 0..25 {
                got += s.take("board", t0(), 60, 1).await.expect("take");
            }
            got
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("join");
    }
    assert_eq!(total, 60);
}

#[tokio::test]
async fn audit_rows_cannot_be_updated_and_history_keeps_insertion_order() {
    let (dir, s) = temp_store();
    let entry = |outcome| AuditEntry {
        flow: "f".into(),
        entity: Entity::ArInvoice,
        key: "K".into(),
        poll_id: "f:1".into(),
        polled_at: t0(),
        version: sv(1, None),
        content_hash: "h".into(),
        destination: "salesforce".into(),
        destination_ids: BTreeMap::new(),
        outcome,
        attempt: 1,
        at: t0(),
        error_chain: Vec::new(),
    };
    let same_time: Vec<_> = [
        SyncOutcome::Queued,
        SyncOutcome::FailedRetryable,
        SyncOutcome::Updated,
    ]
    .into_iter()
    .map(entry)
    .collect();
    s.append(&same_time).await.expect("append");
    assert_eq!(s.history(Some("f"), "K").await.expect("history"), same_time);

    let raw = rusqlite::Connection::open(dir.path().join("store.sqlite")).expect("raw open");
    let r = raw.execute("UPDATE mlc_audit SET outcome = 'created'", []);
    assert!(r.is_err(), "audit rows are append-only");
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.sqlite");
    drop(SqliteStore::open(&path).expect("create"));
    let raw = rusqlite::Connection::open(&path).expect("raw open");
    raw.execute(
        "UPDATE mlc_schema SET version = 99 WHERE component = 'store'",
        [],
    )
    .expect("bump");
    drop(raw);
    match SqliteStore::open(&path) {
        Err(Error::SchemaTooNew { found: 99, .. }) => {}
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

#[test]
fn reopening_keeps_data_and_schema() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.sqlite");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let s = SqliteStore::open(&path).expect("open");
        s.mark_sent(&[SentMark {
            key: StateKey::new("f", Entity::ArCustomer, "C1"),
            version: sv(3, Some(9)),
            hash: "h".into(),
            open: true,
            due: None,
            polled_at: t0(),
        }])
        .await
        .expect("mark");
    });
    rt.block_on(async {
        let s = SqliteStore::open(&path).expect("reopen");
        assert_eq!(
            s.open_keys("f", Entity::ArCustomer).await.expect("open"),
            vec!["C1"]
        );
    });
}

#[tokio::test]
async fn version_1_files_get_the_lean_audit_indexes_and_failures_use_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.sqlite");
    let entry = |key: &str, outcome: SyncOutcome| AuditEntry {
        flow: "f".into(),
        entity: Entity::ArInvoice,
        key: key.into(),
        poll_id: "f:1".into(),
        polled_at: t0(),
        version: sv(1, Some(7)),
        content_hash: "h".into(),
        destination: "salesforce".into(),
        destination_ids: BTreeMap::new(),
        outcome,
        attempt: 1,
        at: t0(),
        error_chain: Vec::new(),
    };
    // A file as version 1 wrote it: the audit table without its columns, two more indexes,
    // one entry kept whole as JSON, and a record's sent state in the state table (version 3
    // moves it to the sent log).
    let old = entry("OLD", SyncOutcome::Created);
    let raw = rusqlite::Connection::open(&path).expect("raw open");
    raw.execute_batch(
        "CREATE TABLE mlc_schema (component TEXT PRIMARY KEY, version INTEGER NOT NULL);
         INSERT INTO mlc_schema VALUES ('store', 1);
         CREATE TABLE mlc_audit (
             seq INTEGER PRIMARY KEY AUTOINCREMENT, flow TEXT NOT NULL, entity TEXT NOT NULL,
             record_key TEXT NOT NULL, outcome TEXT NOT NULL, at INTEGER NOT NULL,
             entry TEXT NOT NULL);
         CREATE INDEX mlc_audit_record ON mlc_audit (flow, record_key, at, seq);
         CREATE INDEX mlc_audit_key ON mlc_audit (record_key, at, seq);
         CREATE INDEX mlc_audit_outcome ON mlc_audit (outcome, at, seq);
         CREATE TABLE mlc_record_state (
             flow TEXT NOT NULL, entity TEXT NOT NULL, record_key TEXT NOT NULL,
             sent_hash TEXT, sent_seq INTEGER, sent_rv INTEGER,
             is_open INTEGER NOT NULL DEFAULT 0, applied_seq INTEGER, applied_rv INTEGER,
             applied_hash TEXT, destination_ids TEXT NOT NULL DEFAULT '{}', applied_at INTEGER,
             PRIMARY KEY (flow, entity, record_key)) WITHOUT ROWID;
         CREATE INDEX mlc_record_state_open ON mlc_record_state (flow, entity) WHERE is_open = 1;
         -- Versions are stored order-preserving: u64 1 and 7 with the top bit flipped.
         INSERT INTO mlc_record_state (flow, entity, record_key, sent_hash, sent_seq, sent_rv, is_open)
             VALUES ('f', 'ArInvoice', 'OLD', 'h-old', -9223372036854775807, -9223372036854775801, 1);",
    )
    .expect("version 1 schema");
    raw.execute(
        "INSERT INTO mlc_audit (flow, entity, record_key, outcome, at, entry)
         VALUES ('f', 'ArInvoice', 'OLD', 'created', 0, ?1)",
        [serde_json::to_string(&old).expect("json")],
    )
    .expect("version 1 row");
    drop(raw);

    let s = SqliteStore::open(&path).expect("upgrade");
    let raw = rusqlite::Connection::open(&path).expect("raw open");
    let version: i64 = raw
        .query_row(
            "SELECT version FROM mlc_schema WHERE component = 'store'",
            [],
            |r| r.get(0),
        )
        .expect("version");
    assert_eq!(version, 4);
    let sent_columns: Vec<String> = raw
        .prepare("SELECT name FROM pragma_table_info('mlc_sent')")
        .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
        .expect("columns");
    assert!(sent_columns.iter().any(|c| c == "due"), "{sent_columns:?}");
    let indexes: Vec<String> = raw
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'mlc_audit' ORDER BY name")
        .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
        .expect("indexes");
    assert_eq!(indexes, ["mlc_audit_key", "mlc_audit_outcome_v2"]);

    // The carried-over sent state reads back, and its audit entry is not doubled.
    assert_eq!(s.history(Some("f"), "OLD").await.expect("old"), [old]);
    let old_key = StateKey::new("f", Entity::ArInvoice, "OLD");
    let state = s.get_many(&[old_key]).await.expect("old state");
    assert_eq!(state.len(), 1);
    assert_eq!(state[0].1.sent_hash.as_deref(), Some("h-old"));
    assert_eq!(state[0].1.sent_version, Some(sv(1, Some(7))));
    assert_eq!(
        s.open_keys("f", Entity::ArInvoice).await.expect("open"),
        ["OLD"]
    );

    let entries: Vec<AuditEntry> = (0..20)
        .map(|i| {
            let outcome = if i % 5 == 0 {
                SyncOutcome::FailedPermanent
            } else {
                SyncOutcome::Queued
            };
            entry(&format!("K{i}"), outcome)
        })
        .collect();
    s.append(&entries).await.expect("append");
    let failed = s
        .by_outcome(SyncOutcome::FailedPermanent, t0(), 100)
        .await
        .expect("failed");
    let keys: Vec<&str> = failed.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["K0", "K5", "K10", "K15"]);
    let queued = s
        .by_outcome(SyncOutcome::Queued, t0(), 100)
        .await
        .expect("queued");
    assert_eq!(queued.len(), 16);
    assert_eq!(queued[0], entries[1]);
    // Destination ids and an error chain round-trip through the extras column.
    let mut rich = entry("RICH", SyncOutcome::FailedRetryable);
    rich.destination_ids
        .insert("salesforce".into(), "006XX".into());
    rich.error_chain.push(mlc_core::ErrorLink {
        status: Some(503),
        code: Some("SERVER_UNAVAILABLE".into()),
        message: "try later".into(),
        request_id: None,
    });
    s.append(std::slice::from_ref(&rich))
        .await
        .expect("append rich");
    assert_eq!(s.history(None, "RICH").await.expect("rich"), [rich]);
    // The failure lookup reads the partial index, not the whole table.
    let plan: Vec<String> = raw
        .prepare(
            "EXPLAIN QUERY PLAN SELECT entry FROM mlc_audit
             WHERE outcome = ?1 AND at >= ?2 AND outcome <> 'queued' ORDER BY at, seq LIMIT ?3",
        )
        .and_then(|mut st| {
            st.query_map(rusqlite::params!["failed_permanent", 0, 10], |r| r.get(3))?
                .collect()
        })
        .expect("plan");
    assert!(
        plan.iter().any(|p| p.contains("mlc_audit_outcome_v2")),
        "{plan:?}"
    );
}
