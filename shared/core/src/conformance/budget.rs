//! Shared budget semantics: never over the limit, even under concurrency.

use std::sync::Arc;

use super::{flow_id, t0};
use crate::ports::Budget;

/// Grants stop at the limit and a new window starts fresh.
pub async fn grants_stop_at_limit(b: &dyn Budget) {
    let scope = flow_id("board");
    assert_eq!(b.take(&scope, t0(), 40, 30).await.expect("take"), 30);
    assert_eq!(
        b.take(&scope, t0(), 40, 30).await.expect("take"),
        10,
        "partial grant"
    );
    assert_eq!(b.take(&scope, t0(), 40, 1).await.expect("take"), 0, "spent");
    let next = t0() + chrono::Duration::seconds(60);
    assert_eq!(
        b.take(&scope, next, 40, 5).await.expect("take"),
        5,
        "new window"
    );
    assert_eq!(
        b.take(&flow_id("board"), t0(), 40, 40).await.expect("take"),
        40,
        "other scope"
    );
}

/// Concurrent takers never exceed the limit together.
pub async fn concurrent_takers_share_limit<B: Budget + Clone + 'static>(b: &B) {
    let scope = Arc::new(flow_id("conc"));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let b = b.clone();
        let scope = scope.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = 0;
            for _ in 0..10 {
                got += b.take(&scope, t0(), 50, 1).await.expect("take");
            }
            got
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("join");
    }
    assert_eq!(total, 50, "exactly the limit granted across 80 attempts");
}
