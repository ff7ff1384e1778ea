//! The sink handler's message-level contract on a real FIFO queue: a handed-back message keeps
//! its group's order (everything after it in the event comes back too), and its retry delay is
//! set on the queue, not left to the visibility timeout.

use std::time::{Duration, Instant};

use aws_sdk_sqs::types::QueueAttributeName;
use mlc_lambda::{poll_handler, sink_handler, Target};
use serde_json::json;
use sim_syspro::CompanyCounts;

use crate::common::{context, convergence, deliver, lambda_event, receive, Sims, Stack, SF_FLOW};

fn company() -> CompanyCounts {
    CompanyCounts {
        customers: 6,
        invoices: 20,
        payments: 4,
        suppliers: 1,
        ap_invoices: 0,
        purchase_orders: 0,
    }
}

async fn visible(stack: &Stack, url: &str) -> u64 {
    let out = stack
        .aws
        .sqs()
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .unwrap();
    out.attributes()
        .and_then(|a| a.get(&QueueAttributeName::ApproximateNumberOfMessages))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_head_hands_back_the_rest_of_its_group() {
    let stack = Stack::new().await;
    let sims = Sims::start(company(), 31).await;
    let mut config = sims.config(&stack.secret);
    config.flows.retain(|f| f.id == SF_FLOW);
    let ctx = context(config.clone(), stack.ports());
    poll_handler(&ctx, SF_FLOW, "p1").await.unwrap();
    let url = stack.salesforce.main.clone();
    let msgs = receive(&stack, &url).await;
    assert!(
        msgs.len() >= 2,
        "customers and invoices: {} messages",
        msgs.len()
    );

    // A record of the same group that is not a change batch, ahead of the real ones.
    let mut event = lambda_event(&url, &msgs);
    let garbage = serde_json::from_value(json!({
        "messageId": "garbage-1",
        "receiptHandle": "not-a-receipt",
        "body": "{\"not\": \"a change batch\"}",
        "attributes": { "ApproximateReceiveCount": "1", "MessageGroupId": SF_FLOW },
        "eventSource": "aws:sqs",
    }))
    .unwrap();
    event.records.insert(0, garbage);
    let response = sink_handler(&ctx, Target::Salesforce, event).await;
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed.len(), msgs.len() + 1, "{failed:?}");
    assert_eq!(failed[0], "garbage-1");
    assert!(
        sims.salesforce.accounts().is_empty(),
        "nothing after the bad head was written"
    );

    // As if their visibility timeout passed: everything is delivered in order afterwards.
    for m in &msgs {
        stack
            .aws
            .sqs()
            .change_message_visibility()
            .queue_url(&url)
            .receipt_handle(m.receipt_handle().unwrap())
            .visibility_timeout(0)
            .send()
            .await
            .unwrap();
    }
    let d = deliver(&ctx, &stack, Target::Salesforce, Duration::from_secs(20)).await;
    assert_eq!((d.messages, d.failures), (msgs.len(), 0), "{d:?}");
    let c = convergence(&sims, &config, &[]);
    assert!(c.problems.is_empty(), "{:#?}", c.problems);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_message_comes_back_after_the_engines_delay() {
    let stack = Stack::new().await;
    let sims = Sims::start(company(), 32).await;
    let mut config = sims.config(&stack.secret);
    config.flows.retain(|f| f.id == SF_FLOW);
    let ctx = context(config.clone(), stack.ports());
    poll_handler(&ctx, SF_FLOW, "p1").await.unwrap();
    let url = stack.salesforce.main.clone();

    // Every Account answers a retryable error for longer than the sink retries inside
    // one call, so the customers' message makes no progress and is handed back whole.
    for row in &sims.syspro.snapshot()["ArCustomer"] {
        let key = mlc_engine::derive::record_key(mlc_core::Entity::ArCustomer, row).unwrap();
        sims.salesforce.fail_record(
            &key.id(),
            "UNKNOWN_EXCEPTION",
            "an unexpected error occurred",
            1_000,
        );
    }
    let msgs = receive(&stack, &url).await;
    assert!(
        msgs.len() >= 2,
        "customers then invoices: {} messages",
        msgs.len()
    );
    let response = sink_handler(&ctx, Target::Salesforce, lambda_event(&url, &msgs)).await;
    // The customers' message, and every later message of the group with it.
    assert_eq!(
        response.batch_item_failures.len(),
        msgs.len(),
        "{response:?}"
    );
    sims.salesforce.clear_faults();
    // Lambda deletes what was not reported.
    for m in &msgs {
        let id = m.message_id().unwrap();
        if !response
            .batch_item_failures
            .iter()
            .any(|f| f.item_identifier == id)
        {
            stack
                .aws
                .sqs()
                .delete_message()
                .queue_url(&url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
    // The queue's visibility timeout is 300 s; the engine's delay (30 s plus jitter: the
    // invoices wait for their Accounts) was set on the messages, so they are back long before.
    let started = Instant::now();
    while visible(&stack, &url).await == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the handed-back messages did not come back within 90 s (the delay was not set)"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        started.elapsed() > Duration::from_secs(1),
        "handed back without a delay"
    );
    let d = deliver(&ctx, &stack, Target::Salesforce, Duration::from_secs(20)).await;
    assert_eq!(d.failures, 0, "{d:?}");
    let c = convergence(&sims, &config, &[]);
    assert!(c.problems.is_empty(), "{:#?}", c.problems);
    assert!(sims
        .salesforce
        .duplicates("Account", "SYSPRO_Customer__c")
        .is_empty());
}
