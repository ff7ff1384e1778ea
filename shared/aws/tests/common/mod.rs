//! Shared setup: every test gets its own tables and queues (random names) on the one moto
//! that `tests/run` started, so tests never see each other's data.
#![allow(dead_code)]

use std::time::Duration;

use mlc_aws::{create_fifo_queues, create_tables, AwsContext, DynamoStore, SqsQueue, TableNames};

/// The redrive count the queue conformance suite requires.
pub const MAX_RECEIVE_COUNT: u32 = 3;

pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// A context on moto. Panics (test failure, not skip) when `MLC_TEST_AWS_ENDPOINT` is unset.
pub async fn ctx() -> AwsContext {
    AwsContext::for_tests().await
}

pub async fn store() -> DynamoStore {
    let ctx = ctx().await;
    let names = TableNames::with_prefix(&unique("mlc"));
    if let Err(e) = create_tables(&ctx, &names).await {
        panic!("creating tables on moto: {e}");
    }
    DynamoStore::new(&ctx, names).with_audit_ttl_days(Some(400))
}

pub async fn queue() -> SqsQueue {
    let ctx = ctx().await;
    let urls = match create_fifo_queues(
        &ctx,
        &unique("mlc"),
        MAX_RECEIVE_COUNT,
        Duration::from_secs(30),
    )
    .await
    {
        Ok(u) => u,
        Err(e) => panic!("creating queues on moto: {e}"),
    };
    SqsQueue::new(&ctx, urls)
}
