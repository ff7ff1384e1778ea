//! The sink functions: an SQS FIFO event (at most 10 change batches) through the engine.
//!
//! Response: `ReportBatchItemFailures` at message level. A message the engine acks is left out
//! of the response (Lambda deletes it). A message to retry is handed back twice over: its
//! visibility is set to the engine's delay (`ChangeMessageVisibility` through the queue's
//! `nack`), because Lambda alone would only return it after the queue's visibility timeout, and
//! it is listed in `batchItemFailures`. Per-record outcomes stay inside the engine: permanent
//! failures go to the DLQ one record at a time, and a message with both dead-lettered and
//! retryable records re-sends only the retryable ones.
//!
//! FIFO: once a message of a group is handed back, every later message of that group in the
//! event is handed back too, whatever the engine said (it already does so by stream; this is
//! checked again here by `MessageGroupId`, which also covers bodies that cannot be decoded).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use mlc_aws::{delivery_from_lambda_record, message_group_id, message_group_of_lambda_record};
use mlc_core::ports::Delivery;
use mlc_engine::{process_deliveries, MessageVerdict};
use tracing::{error, info, warn};

use crate::context::{LambdaContext, Target};

/// Delay of every message of an event the engine could not process (a store or queue failed).
const FAILED_PASS_DELAY: Duration = Duration::from_secs(30);

/// What happens to one event record.
#[derive(Debug, Clone, PartialEq)]
enum Fate {
    /// Not decided yet: handed to the engine.
    Engine,
    /// Done: Lambda deletes it.
    Ack,
    /// Handed back, visible again after the delay (`None`: the queue's visibility timeout).
    Back(Option<Duration>),
}

/// Processes one SQS event for `target`'s flows.
pub async fn sink_handler(
    ctx: &LambdaContext,
    target: Target,
    event: SqsEvent,
) -> SqsBatchResponse {
    let records = event.records;
    let mut fates: Vec<Fate> = Vec::with_capacity(records.len());
    let mut groups: Vec<String> = Vec::with_capacity(records.len());
    let mut deliveries: Vec<Delivery> = Vec::new();
    let mut delivery_of: Vec<usize> = Vec::new();
    // Groups with a message handed back earlier in this event.
    let mut blocked: HashSet<String> = HashSet::new();

    for (i, rec) in records.iter().enumerate() {
        let parsed = delivery_from_lambda_record(rec);
        let group = match (message_group_of_lambda_record(rec), &parsed) {
            (Some(g), _) => g.to_string(),
            (None, Ok(d)) => message_group_id(&d.batch.stream),
            // Neither: it can only be ordered against itself.
            (None, Err(_)) => format!("message:{}", rec.message_id.as_deref().unwrap_or("?")),
        };
        groups.push(group.clone());
        if blocked.contains(&group) {
            fates.push(Fate::Back(None));
            continue;
        }
        match parsed {
            Ok(d) => {
                delivery_of.push(i);
                deliveries.push(d);
                fates.push(Fate::Engine);
            }
            Err(e) => {
                // Left to the queue's redrive policy: after maxReceiveCount it is in the DLQ.
                error!(message_id = rec.message_id.as_deref().unwrap_or_default(), group = %group, error = %crate::error::chain(&e), "undecodable message: handing it back");
                blocked.insert(group);
                fates.push(Fate::Back(None));
            }
        }
    }

    if !deliveries.is_empty() {
        let set = ctx.sink_set(target, deliveries.iter().map(|d| d.batch.flow.as_str()));
        match process_deliveries(&set, &deliveries).await {
            Ok(report) => {
                info!(
                    destination = target.name(),
                    messages = deliveries.len(),
                    created = report.created,
                    updated = report.updated,
                    unchanged = report.unchanged,
                    retried = report.retried,
                    dead_lettered = report.dead_lettered,
                    "sink pass finished"
                );
                let verdicts: HashMap<&str, &MessageVerdict> = report
                    .verdicts
                    .iter()
                    .map(|(id, v)| (id.as_str(), v))
                    .collect();
                for (d, &i) in deliveries.iter().zip(&delivery_of) {
                    fates[i] = match verdicts.get(d.message_id.as_str()) {
                        Some(MessageVerdict::Ack) => Fate::Ack,
                        Some(MessageVerdict::Retry(delay)) => Fate::Back(Some(*delay)),
                        None => {
                            warn!(message_id = %d.message_id, "the engine gave no verdict: handing the message back");
                            Fate::Back(Some(FAILED_PASS_DELAY))
                        }
                    };
                }
            }
            Err(e) => {
                // Records already applied come back as `unchanged`: handing everything back is safe.
                error!(destination = target.name(), error = %crate::error::chain(&e), "sink pass failed: handing every message back");
                for &i in &delivery_of {
                    fates[i] = Fate::Back(Some(FAILED_PASS_DELAY));
                }
            }
        }
    }

    // FIFO order, enforced on the final fates: after a hand-back, the rest of the group follows
    // with at least its delay.
    let mut group_delay: HashMap<&str, Option<Duration>> = HashMap::new();
    for (i, fate) in fates.iter_mut().enumerate() {
        let group = groups[i].as_str();
        match (fate.clone(), group_delay.get(group).copied()) {
            (Fate::Back(d), _) => {
                let prev = group_delay.get(group).copied().flatten();
                group_delay.insert(group, max_delay(prev, d));
            }
            (Fate::Ack | Fate::Engine, Some(d)) => {
                if *fate == Fate::Ack {
                    warn!(
                        message_id = records[i].message_id.as_deref().unwrap_or_default(),
                        group,
                        "acked after a handed-back message of its group: handing it back too"
                    );
                }
                *fate = Fate::Back(d);
            }
            (Fate::Ack, None) => {}
            (Fate::Engine, None) => *fate = Fate::Back(Some(FAILED_PASS_DELAY)),
        }
    }

    let queue = ctx.ports().queue(target);
    let mut response = SqsBatchResponse::default();
    for (rec, fate) in records.iter().zip(&fates) {
        let Fate::Back(delay) = fate else { continue };
        let id = rec.message_id.clone().unwrap_or_default();
        info!(message_id = %id, group = %groups_of(&records, &id), delay_ms = delay.map(|d| d.as_millis() as u64), "handing the message back");
        if let (Some(delay), Some(receipt)) = (delay, rec.receipt_handle.as_deref()) {
            if let Err(e) = queue.nack(receipt, *delay).await {
                // Still listed: it comes back after the queue's visibility timeout instead.
                warn!(message_id = %id, error = %e, "setting the retry delay failed");
            }
        }
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = id;
        response.batch_item_failures.push(failure);
    }
    response
}

fn groups_of(records: &[aws_lambda_events::sqs::SqsMessage], id: &str) -> String {
    records
        .iter()
        .find(|r| r.message_id.as_deref() == Some(id))
        .and_then(message_group_of_lambda_record)
        .unwrap_or_default()
        .to_string()
}

fn max_delay(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (x, None) | (None, x) => x,
    }
}
