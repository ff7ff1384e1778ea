//! `trigger` Lambda function: `POST /flows/{flow}/sync` on the function URL, signed with the
//! flow's trigger secret, starts a poll of that flow now (see `mlc_trigger_fn`).

use std::time::Duration;

use aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use mlc_lambda::LambdaContext;
use mlc_trigger_fn::{handle, LambdaPollStarter};

#[tokio::main]
async fn main() -> Result<(), Error> {
    mlc_lambda::init_tracing();
    tracing::debug!(allocator = mlc_alloc::allocator(), "starting");
    // Once per container: SDK clients, the flows file, the poll function's name.
    let ctx = LambdaContext::from_env().await.inspect_err(|e| {
        tracing::error!(error = %mlc_lambda::error::chain(e), "cannot start the trigger function");
    })?;
    let poll_function =
        std::env::var("MLC_POLL_FUNCTION").map_err(|_| "MLC_POLL_FUNCTION is not set")?;
    let coalesce = std::env::var("MLC_TRIGGER_COALESCE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(60));
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let starter = LambdaPollStarter::new(&sdk, poll_function);
    let (ctx, starter) = (&ctx, &starter);
    run(service_fn(
        move |event: LambdaEvent<LambdaFunctionUrlRequest>| async move {
            Ok::<_, Error>(handle(ctx, starter, coalesce, &event.payload).await)
        },
    ))
    .await
}
