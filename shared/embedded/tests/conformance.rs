//! Every conformance suite of `mlc_core` against the SQLite adapters, one fresh file per case.

use std::time::Duration;

use mlc_embedded::{QueueOptions, SqliteQueue, SqliteStore};

/// A store in a fresh file; the directory lives as long as the store (leaked on purpose: the
/// test process ends right after).
async fn store() -> SqliteStore {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state").join("store.sqlite");
    std::mem::forget(dir);
    SqliteStore::open(&path).expect("open store")
}

async fn queue() -> SqliteQueue {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("queue.sqlite");
    std::mem::forget(dir);
    SqliteQueue::open(
        &path,
        QueueOptions {
            max_receive_count: 3,
            dedup_window: Duration::from_secs(300),
        },
    )
    .expect("open queue")
}

mod queue_suite {
    mlc_core::queue_conformance!(super::queue());
}

mod watermark_suite {
    mlc_core::watermark_conformance!(super::store());
}

mod state_suite {
    mlc_core::state_conformance!(super::store());
}

mod audit_suite {
    mlc_core::audit_conformance!(super::store());
}

mod budget_suite {
    mlc_core::budget_conformance!(super::store());
}
