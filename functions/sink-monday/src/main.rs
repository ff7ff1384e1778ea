//! `sink-monday` Lambda function: change batches from the Monday.com FIFO queue.
//!
//! Event: SQS (FIFO, at most 10 messages); response: `ReportBatchItemFailures` at message
//! level, with retry delays set on the queue. Everything else lives in `mlc-lambda`.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use mlc_lambda::{sink_handler, LambdaContext, Target};

#[tokio::main]
async fn main() -> Result<(), Error> {
    mlc_lambda::init_tracing();
    tracing::debug!(allocator = mlc_alloc::allocator(), "starting");
    // Once per container: SDK clients, HTTP client, flows file; sinks are built on first use.
    let ctx = LambdaContext::from_env().await.inspect_err(|e| {
        tracing::error!(error = %mlc_lambda::error::chain(e), "cannot start the sink function");
    })?;
    let ctx = &ctx;
    run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, Error>(sink_handler(ctx, Target::Monday, event.payload).await)
    }))
    .await
}
