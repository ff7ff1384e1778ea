//! `poll` Lambda function: one poll of one flow per EventBridge schedule.
//!
//! Event: the rule's input `{"flow": "acme-sf"}` (or an EventBridge event with `detail.flow`).
//! Returns the poll report; a second concurrent invocation for the flow returns
//! `"skipped": true`. Everything else lives in `mlc-lambda`.

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use mlc_lambda::{flow_of_event, poll_handler, LambdaContext};
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
        poll_handler(ctx, &flow, &event.context.request_id).await
    }))
    .await
}
