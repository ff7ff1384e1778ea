//! The `trigger` function's logic: a Lambda function URL request → signature check (per-flow
//! secret from Secrets Manager) → replay refusal → coalescing → an asynchronous invoke of the
//! poll function → `202` with a run id. The rules are `mlc-trigger`'s, shared with the local
//! daemon; this crate maps them to function-URL events.
//!
//! Why a function URL and not an HTTP API: SYSPRO triggers cannot sign AWS requests, so the
//! HMAC check is the authentication either way; a function URL costs nothing when idle, needs
//! no extra resource, and its throttle is the function's reserved concurrency.

use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::lambda_function_urls::{
    LambdaFunctionUrlRequest, LambdaFunctionUrlResponse,
};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use mlc_lambda::LambdaContext;
use mlc_trigger::{
    claim_request_id, decide, verify, SignedRequest, TriggerError, HEADER_REQUEST_ID,
    HEADER_SIGNATURE, HEADER_TIMESTAMP,
};
use serde_json::json;
use tracing::{info, warn};

/// Starts a poll of a flow without waiting for it.
#[async_trait]
pub trait PollStarter: Send + Sync {
    /// Starts the poll; `run_id` travels with it for the logs.
    async fn start(&self, flow: &str, run_id: &str) -> Result<(), String>;
}

/// Asynchronous invoke of the poll function (`InvocationType=Event`).
#[derive(Debug, Clone)]
pub struct LambdaPollStarter {
    client: aws_sdk_lambda::Client,
    function: String,
}

impl LambdaPollStarter {
    /// A starter for the poll function named in `MLC_POLL_FUNCTION`.
    pub fn new(config: &aws_config::SdkConfig, function: String) -> Self {
        LambdaPollStarter {
            client: aws_sdk_lambda::Client::new(config),
            function,
        }
    }
}

#[async_trait]
impl PollStarter for LambdaPollStarter {
    async fn start(&self, flow: &str, run_id: &str) -> Result<(), String> {
        let payload = json!({ "flow": flow, "run_id": run_id }).to_string();
        self.client
            .invoke()
            .function_name(&self.function)
            .invocation_type(aws_sdk_lambda::types::InvocationType::Event)
            .payload(aws_sdk_lambda::primitives::Blob::new(payload.into_bytes()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                format!(
                    "invoking the poll function failed: {}",
                    aws_sdk_lambda::error::DisplayErrorContext(&e)
                )
            })
    }
}

/// Handles one function-URL request.
pub async fn handle(
    ctx: &LambdaContext,
    starter: &dyn PollStarter,
    coalesce: Duration,
    req: &LambdaFunctionUrlRequest,
) -> LambdaFunctionUrlResponse {
    let path = req.raw_path.as_deref().unwrap_or("/");
    let method = req.request_context.http.method.as_deref().unwrap_or("POST");
    let flow = path
        .strip_prefix("/flows/")
        .and_then(|p| p.strip_suffix("/sync"))
        .filter(|f| !f.is_empty() && !f.contains('/'));
    let Some(flow) = flow else {
        return answer(404, json!({ "error": "not found" }));
    };
    if !method.eq_ignore_ascii_case("POST") {
        return answer(405, json!({ "error": "method not allowed" }));
    }
    match accept(ctx, starter, coalesce, flow, req).await {
        Ok(body) => answer(202, body),
        Err(e) => answer(e.status(), json!({ "error": e.to_string() })),
    }
}

async fn accept(
    ctx: &LambdaContext,
    starter: &dyn PollStarter,
    coalesce: Duration,
    flow: &str,
    req: &LambdaFunctionUrlRequest,
) -> Result<serde_json::Value, TriggerError> {
    let Some(secret_ref) = ctx.flow(flow).ok().and_then(|f| f.trigger_secret.clone()) else {
        return Err(TriggerError::UnknownFlow);
    };
    let secret = ctx.ports().secrets.get(&secret_ref).await.map_err(|e| {
        warn!(flow, error = %e, "trigger secret unavailable");
        TriggerError::Unavailable("secret".into())
    })?;
    let body: Vec<u8> = match (&req.body, req.is_base64_encoded) {
        (Some(b), true) => base64::engine::general_purpose::STANDARD
            .decode(b)
            .map_err(|_| {
                TriggerError::Unauthorized(mlc_trigger::AuthFailure::BadSignatureFormat)
            })?,
        (Some(b), false) => b.clone().into_bytes(),
        (None, _) => Vec::new(),
    };
    let h = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
    let signed = SignedRequest {
        timestamp: h(HEADER_TIMESTAMP),
        request_id: h(HEADER_REQUEST_ID),
        signature: h(HEADER_SIGNATURE),
        body: &body,
    };
    let now = ctx.clock().now();
    let verified = verify(&signed, &secret, now).inspect_err(|e| {
        if let TriggerError::Unauthorized(why) = e {
            warn!(flow, reason = ?why, "trigger refused");
        }
    })?;
    claim_request_id(ctx.ports().budget.as_ref(), flow, &verified)
        .await
        .inspect_err(|e| {
            warn!(
                flow,
                request_id = verified.request_id,
                "trigger refused: {e}"
            )
        })?;
    let decision = decide(ctx.ports().watermarks.as_ref(), flow, coalesce, now).await?;
    if decision.coalesced {
        info!(flow, run_id = %decision.run_id, "trigger joined a running or recent poll");
        return Ok(json!(decision));
    }
    // Containers answer in parallel: the first trigger of a coalescing window starts the poll,
    // the others join it (one budget unit per flow and window, atomic in DynamoDB).
    let window = coalesce.as_secs().max(1) as i64;
    let bucket = now.timestamp() - now.timestamp().rem_euclid(window);
    let bucket_start = chrono_from(bucket, now);
    let run_id = format!("{flow}:trigger-{bucket}");
    let first = ctx
        .ports()
        .budget
        .take(&format!("trigger-start:{flow}"), bucket_start, 1, 1)
        .await
        .map_err(|e| TriggerError::Unavailable(e.to_string()))?;
    if first == 0 {
        return Ok(json!({ "run_id": run_id, "coalesced": true }));
    }
    starter.start(flow, &run_id).await.map_err(|e| {
        warn!(flow, error = %e, "could not start the poll");
        TriggerError::Unavailable(e)
    })?;
    info!(flow, run_id = %run_id, "poll started by trigger");
    Ok(json!({ "run_id": run_id, "coalesced": false }))
}

fn chrono_from(secs: i64, fallback: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap_or(fallback)
}

fn answer(status: u16, body: serde_json::Value) -> LambdaFunctionUrlResponse {
    let mut r = LambdaFunctionUrlResponse::default();
    r.status_code = i64::from(status);
    r.headers.insert(
        "content-type",
        aws_lambda_events::http::HeaderValue::from_static("application/json"),
    );
    r.body = Some(body.to_string());
    r
}
