//! `poll` Lambda function: one poll of one flow per EventBridge schedule.
//!
//! Event: the rule's input `{"flow": "acme-sf"}` (or an EventBridge event with `detail.flow`).
//! Returns the poll report; a second concurrent invocation for the flow returns
//! `"skipped": true`. Everything else lives in `mlc-lambda`.

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use mlc_lambda::{flow_of_event, poll_handler_until, LambdaContext, DEADLINE_MARGIN};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    mlc_lambda::init_tracing();
    tracing::debug!(allocator = mlc_alloc::allocator(), "starting");
    // Once per container: SDK clients, HTTP client, flows file.
    let ctx = LambdaContext::from_env().await.inspect_err(|e| {
        tracing::error!(error = %mlc_lambda::error::chain(e), "cannot start the poll function");
    })?;
    let ctx = &ctx;
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        let flow = flow_of_event(&event.payload)?;
        // Stop reading before the run is cut off: the next scheduled run carries on.
        let deadline = chrono::DateTime::from_timestamp_millis(
            i64::try_from(event.context.deadline).unwrap_or(i64::MAX),
        )
        .and_then(|d| d.checked_sub_signed(chrono::Duration::from_std(DEADLINE_MARGIN).ok()?));
        poll_handler_until(ctx, &flow, &event.context.request_id, deadline).await
    }))
    .await
}
