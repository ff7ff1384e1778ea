//! The poll function: one poll of one flow per scheduled invocation.
//!
//! The EventBridge rule's `Input` replaces the event, so the payload is `{"flow": "acme-sf"}`;
//! a scheduled event whose `detail` carries the flow (a rule without `Input`, or EventBridge
//! Scheduler with a templated detail) is accepted too. Polls of one flow never overlap: a second
//! invocation while the lease is held returns at once with `skipped: true`.

use mlc_engine::{poll_flow_with, PollOptions, PollReport};
use serde_json::Value;
use tracing::info;

use crate::context::LambdaContext;
use crate::error::{Error, Result};

/// The flow named by a poll event: `{"flow": "…"}`, or an EventBridge event with
/// `detail.flow`.
pub fn flow_of_event(event: &Value) -> Result<String> {
    let named = |v: &Value| {
        v.get("flow")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    if let Some(f) = named(event) {
        return Ok(f);
    }
    if let Some(f) = event.get("detail").and_then(named) {
        return Ok(f);
    }
    Err(Error::Event(
        "a poll event is {\"flow\": \"<flow id>\"} (the schedule's input) or an EventBridge event whose detail has \"flow\"".into(),
    ))
}

/// Polls `flow_id` once. `request_id` (the Lambda request id) names the poller in the lease.
pub async fn poll_handler(
    ctx: &LambdaContext,
    flow_id: &str,
    request_id: &str,
) -> Result<PollReport> {
    poll_handler_until(ctx, flow_id, request_id, None).await
}

/// Time left for sending and saving once the poll stops reading at its deadline.
pub const DEADLINE_MARGIN: std::time::Duration = std::time::Duration::from_secs(20);

/// [`poll_handler`] that stops reading at `deadline` (the run's end less
/// [`DEADLINE_MARGIN`]) with a checkpoint: a first sync larger than one run finishes over the
/// following scheduled runs instead of starting again each time.
pub async fn poll_handler_until(
    ctx: &LambdaContext,
    flow_id: &str,
    request_id: &str,
    deadline: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<PollReport> {
    let flow = ctx.flow(flow_id)?;
    let source = ctx.source(&flow)?;
    let rt = ctx.runtime(flow.clone());
    let owner = if request_id.is_empty() {
        "lambda"
    } else {
        request_id
    };
    let opts = PollOptions {
        deadline,
        ..Default::default()
    };
    let result = poll_flow_with(&rt, source.as_ref(), owner, opts).await;
    // A frozen container cannot keep an e.net session alive, and SYSPRO allows one per operator:
    // end it now; the next poll logs on again.
    source.close().await;
    // Flow lag, on failed runs too: the alarm fires when polls keep failing or stop arriving.
    if let Ok(info) = rt.watermarks.run_info(&flow.id).await {
        let now = ctx.clock().now();
        if let Some(line) = flow_lag_metric(&flow.id, info.last_finished_at, now) {
            println!("{line}");
        }
    }
    let report = result?;
    info!(
        flow = %flow.id,
        poll_id = %report.poll_id,
        skipped = report.skipped,
        read = report.read(),
        queued = report.queued(),
        unfinished = report.unfinished(),
        "poll finished"
    );
    Ok(report)
}

/// The `FlowLagSeconds` metric (namespace `MlConnector`, dimension `Flow`) as a CloudWatch
/// embedded-metric-format line: now minus the end of the last poll that enqueued everything it
/// read. `None` before the first successful poll (the alarm treats missing data as breaching).
pub fn flow_lag_metric(
    flow: &str,
    last_finished_at: Option<chrono::DateTime<chrono::Utc>>,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<String> {
    let lag = (now - last_finished_at?).num_seconds().max(0);
    Some(
        serde_json::json!({
            "_aws": {
                "Timestamp": now.timestamp_millis(),
                "CloudWatchMetrics": [{
                    "Namespace": "MlConnector",
                    "Dimensions": [["Flow"]],
                    "Metrics": [{"Name": "FlowLagSeconds", "Unit": "Seconds"}]
                }]
            },
            "Flow": flow,
            "FlowLagSeconds": lag
        })
        .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flow_lag_is_an_embedded_metric() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-24T10:15:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let line =
            flow_lag_metric("acme-sf", Some(now - chrono::Duration::minutes(15)), now).unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["FlowLagSeconds"], 900);
        assert_eq!(v["Flow"], "acme-sf");
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "MlConnector"
        );
        assert!(flow_lag_metric("acme-sf", None, now).is_none());
    }

    #[test]
    fn accepts_the_rule_input_and_an_eventbridge_event() {
        assert_eq!(
            flow_of_event(&json!({"flow": "acme-sf"})).unwrap(),
            "acme-sf"
        );
        let scheduled = json!({
            "version": "0", "id": "x", "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "1", "time": "2026-11-24T08:00:00Z", "region": "us-east-1",
            "resources": ["arn:aws:events:us-east-1:1:rule/p"], "detail": {"flow": "globex-mon"}
        });
        assert_eq!(flow_of_event(&scheduled).unwrap(), "globex-mon");
        for bad in [
            json!({}),
            json!({"flow": ""}),
            json!({"detail": {}}),
            json!("acme"),
        ] {
            assert!(matches!(flow_of_event(&bad), Err(Error::Event(_))), "{bad}");
        }
    }
}
