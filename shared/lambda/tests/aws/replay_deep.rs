//! Replay on a real SQS FIFO dead-letter queue (moto): a key behind 500 other dead letters of
//! one message group is found, and a dry run counts exactly.

use mlc_core::conformance::batch;
use mlc_core::FixedClock;
use mlc_engine::{replay, ReplayFilter};

use crate::common::Stack;

const BEHIND: usize = 500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_finds_a_key_behind_500_dead_letters_of_one_group_on_sqs() {
    let stack = Stack::new().await;
    let ports = stack.ports();
    let queue = ports.salesforce.clone();
    let clock = FixedClock::today(chrono::NaiveDate::from_ymd_opt(2026, 12, 7).unwrap());
    for i in 0..BEHIND {
        let key = format!("C{i:05}");
        queue
            .dead_letter(&batch("acme-sf", "ArCustomer", &[&key], 1))
            .await
            .unwrap();
    }
    queue
        .dead_letter(&batch("acme-sf", "ArCustomer", &["WANTED"], 2))
        .await
        .unwrap();
    let filter = |dry_run| ReplayFilter {
        keys: vec!["WANTED".into()],
        dry_run,
        ..Default::default()
    };
    let dry = replay(queue.as_ref(), ports.audit.as_ref(), &clock, &filter(true))
        .await
        .unwrap();
    assert_eq!((dry.moved, dry.messages), (1, BEHIND + 1), "{dry:?}");
    let moved = replay(queue.as_ref(), ports.audit.as_ref(), &clock, &filter(false))
        .await
        .unwrap();
    assert_eq!(moved.moved, 1, "{moved:?}");
    assert_eq!(stack.count(&stack.salesforce.main).await, 1);
    assert_eq!(stack.count(&stack.salesforce.dead).await, BEHIND as u64);
}
