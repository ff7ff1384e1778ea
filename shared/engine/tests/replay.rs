//! Replay over the real SQLite queue: a key sitting behind hundreds of other dead letters in
//! one FIFO group is found, a dry run counts exactly, and what is not asked for stays dead.

use std::sync::Arc;
use std::time::Duration;

use mlc_core::conformance::batch;
use mlc_core::ports::Queue;
use mlc_core::FixedClock;
use mlc_embedded::{QueueOptions, SqliteQueue, SqliteStore};
use mlc_engine::{replay, ReplayFilter};

const BEHIND: usize = 500;

#[tokio::test]
async fn replay_finds_a_key_behind_500_dead_letters_in_one_group_and_dry_run_counts_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = SqliteStore::open(&path).unwrap();
    let queue = Arc::new(SqliteQueue::open(&path, QueueOptions::default()).unwrap());
    let clock = FixedClock::today(chrono::NaiveDate::from_ymd_opt(2026, 12, 7).unwrap());
    for i in 0..BEHIND {
        let key = format!("C{i:05}");
        queue
            .dead_letter(&batch("acme-sf", "ArCustomer", &[&key], 1))
            .await
            .unwrap();
    }
    queue
        .dead_letter(&batch("acme-sf", "ArCustomer", &["WANTED", "C00007"], 2))
        .await
        .unwrap();

    let dry = ReplayFilter {
        keys: vec!["WANTED".into()],
        dry_run: true,
        ..Default::default()
    };
    let r = replay(queue.as_ref(), &store, &clock, &dry).await.unwrap();
    assert_eq!((r.moved, r.messages), (1, BEHIND + 1), "{r:?}");
    let all = ReplayFilter {
        dry_run: true,
        limit: Some(10_000),
        ..Default::default()
    };
    let r = replay(queue.as_ref(), &store, &clock, &all).await.unwrap();
    assert_eq!(r.moved, BEHIND + 2, "a dry run changes nothing: {r:?}");

    let real = ReplayFilter {
        keys: vec!["WANTED".into()],
        ..Default::default()
    };
    let r = replay(queue.as_ref(), &store, &clock, &real).await.unwrap();
    assert_eq!(r.moved, 1, "{r:?}");
    let got = queue.receive(10, Duration::from_secs(30)).await.unwrap();
    let keys: Vec<String> = got
        .iter()
        .flat_map(|d| d.batch.events.iter().map(|e| e.key.id()))
        .collect();
    assert_eq!(keys, ["WANTED"]);
    assert_eq!(queue.depth().await.unwrap().dead, BEHIND as u64 + 1);
    let r = replay(queue.as_ref(), &store, &clock, &all).await.unwrap();
    assert_eq!(r.moved, BEHIND + 1, "the rest is still dead: {r:?}");
}
