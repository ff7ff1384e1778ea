//! `replay` Lambda function: moves matching dead letters back to their main queue.
//!
//! Console test event: `{"flow": "acme-sf", "since": "2026-11-01T00:00:00Z", "keys":
//! ["100045"], "limit": 500, "dry_run": true}` (every field optional). Returns a summary per
//! destination. Everything else lives in `mlc-lambda`.

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use mlc_lambda::{replay_handler, LambdaContext, ReplayEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    mlc_lambda::init_tracing();
    tracing::debug!(allocator = mlc_alloc::allocator(), "starting");
    // Once per container: SDK clients and the flows file.
    let ctx = LambdaContext::from_env().await.inspect_err(|e| {
        tracing::error!(error = %mlc_lambda::error::chain(e), "cannot start the replay function");
    })?;
    let ctx = &ctx;
    run(service_fn(move |event: LambdaEvent<ReplayEvent>| async move {
        replay_handler(ctx, event.payload).await
    }))
    .await
}
