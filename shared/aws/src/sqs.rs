//! [`SqsQueue`]: the change-batch queue on SQS FIFO with its dead-letter queue, queue setup for
//! tests, and the helpers the Lambda sink handlers use on SQS events.
//!
//! - `send`: `SendMessageBatch` calls of at most 10 entries and 256 KiB in total, in order;
//!   `MessageGroupId` = the batch's stream (hashed only if SQS would refuse it), `MessageDeduplicationId` = [`ChangeBatch::dedup_id`].
//!   Entries the service failed on its side are retried with backoff; an entry refused as the
//!   sender's fault, or still failing after the retries, makes `send` an error (never a silent
//!   drop). Callers re-send on error: dedup ids absorb what was already stored.
//!   Caveat: SQS may store a later entry of a group from the same call while an earlier one
//!   failed, so a retried entry lands after it. Sinks' version checks make that harmless for
//!   data; a dependent record (an invoice ahead of its account) fails retryably and comes back.
//! - Redrive to the DLQ is the queue's `RedrivePolicy` (`maxReceiveCount`), done by SQS.
//! - `dead_letter` sends straight to the DLQ (group = stream, dedup id = hash of the body).
//! - Replay has no `StartMessageMoveTask` (moto lacks it; replay filters anyway): it receives
//!   from the DLQ, sends to the main queue and deletes, through the port.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::types::{
    MessageSystemAttributeName, QueueAttributeName, SendMessageBatchRequestEntry,
};
use mlc_core::event::EncodedBatch;
use mlc_core::ports::{Delivery, Queue, QueueDepth};
use mlc_core::{ChangeBatch, PortError, PortResult};
use sha2::{Digest, Sha256};

use crate::codec::{encode_body, encoded_body, parse_sqs_body, SQS_MAX_MESSAGE_BYTES};
use crate::context::AwsContext;
use crate::dynamo::backoff;
use crate::error::{error_code, port_error, sdk_error, Error, Result};

/// SQS takes at most 10 entries per batch call.
const SEND_BATCH_MAX: usize = 10;
/// Visibility and delays are capped at 12 hours by SQS.
const MAX_VISIBILITY_SECS: u64 = 12 * 60 * 60;
/// Retries of entries that failed on the service's side.
const ENTRY_RETRIES: u32 = 5;

/// The main queue and its dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueUrls {
    /// The FIFO queue the poll fills and the sinks read.
    pub main: String,
    /// Its dead-letter queue (FIFO too).
    pub dead: String,
}

/// A change-batch queue on SQS FIFO.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    urls: QueueUrls,
    wait: Duration,
}

impl SqsQueue {
    /// A queue over existing queues, with the context's SQS client. Receives use short polling
    /// until [`SqsQueue::with_wait_time`] sets a long-poll wait.
    pub fn new(ctx: &AwsContext, urls: QueueUrls) -> Self {
        SqsQueue {
            client: ctx.sqs().clone(),
            urls,
            wait: Duration::ZERO,
        }
    }

    /// Long polling: how long a receive waits for messages (at most 20 s).
    pub fn with_wait_time(mut self, wait: Duration) -> Self {
        self.wait = wait.min(Duration::from_secs(20));
        self
    }

    /// The queue URLs.
    pub fn urls(&self) -> &QueueUrls {
        &self.urls
    }

    async fn send_entries(
        &self,
        mut entries: Vec<(SendMessageBatchRequestEntry, usize)>,
    ) -> PortResult<()> {
        let mut attempt = 0;
        while !entries.is_empty() {
            if attempt > 0 {
                if attempt > ENTRY_RETRIES {
                    return Err(PortError::Transient {
                        message: format!(
                            "SQS.SendMessageBatch: {} messages still failing after {ENTRY_RETRIES} retries",
                            entries.len()
                        ),
                        source: None,
                    });
                }
                tokio::time::sleep(backoff(attempt)).await;
            }
            attempt += 1;
            let resp = self
                .client
                .send_message_batch()
                .queue_url(&self.urls.main)
                .set_entries(Some(entries.iter().map(|(e, _)| e.clone()).collect()))
                .send()
                .await
                .map_err(|e| port_error("SQS.SendMessageBatch", e))?;
            let mut retry = Vec::new();
            for f in resp.failed() {
                let Some(pos) = entries.iter().position(|(e, _)| e.id() == f.id()) else {
                    continue;
                };
                if f.sender_fault() {
                    return Err(PortError::invalid(format!(
                        "SQS.SendMessageBatch refused change batch #{} ({}): {}",
                        entries[pos].1,
                        f.code(),
                        f.message().unwrap_or("no message")
                    )));
                }
                tracing::warn!(
                    code = f.code(),
                    batch = entries[pos].1,
                    "sqs entry failed on the service side; retrying"
                );
                retry.push(entries[pos].clone());
            }
            // An entry neither reported successful nor failed would be lost silently: retry it.
            for (e, i) in &entries {
                let ok = resp.successful().iter().any(|s| s.id() == e.id());
                let failed = resp.failed().iter().any(|f| f.id() == e.id());
                if !ok && !failed {
                    retry.push((e.clone(), *i));
                }
            }
            entries = retry;
        }
        Ok(())
    }

    async fn receive_from(
        &self,
        url: &str,
        max: usize,
        visibility: Duration,
    ) -> PortResult<Vec<Delivery>> {
        let max = max.max(1);
        let visibility = i32::try_from(ceil_secs(visibility).min(MAX_VISIBILITY_SECS)).unwrap_or(0);
        let mut out = Vec::new();
        while out.len() < max {
            let want = (max - out.len()).min(SEND_BATCH_MAX);
            let resp = self
                .client
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(i32::try_from(want).unwrap_or(10))
                .visibility_timeout(visibility)
                .wait_time_seconds(i32::try_from(self.wait.as_secs()).unwrap_or(0))
                .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
                .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
                .send()
                .await
                .map_err(|e| port_error("SQS.ReceiveMessage", e))?;
            let msgs = resp.messages();
            if msgs.is_empty() {
                break;
            }
            for m in msgs {
                match delivery_from_message(m) {
                    Ok(d) => out.push(d),
                    // Left in flight: SQS redrives it to the DLQ after maxReceiveCount.
                    Err(e) => tracing::error!(
                        message_id = m.message_id().unwrap_or_default(),
                        error = %e,
                        "sqs message is not a change batch; leaving it for redrive"
                    ),
                }
            }
            if msgs.len() < want {
                break;
            }
        }
        Ok(out)
    }

    async fn approximate_count(&self, url: &str, names: &[QueueAttributeName]) -> PortResult<u64> {
        let resp = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .set_attribute_names(Some(names.to_vec()))
            .send()
            .await
            .map_err(|e| port_error("SQS.GetQueueAttributes", e))?;
        let attrs = resp.attributes();
        Ok(names
            .iter()
            .filter_map(|n| attrs.and_then(|a| a.get(n)))
            .filter_map(|v| v.parse::<u64>().ok())
            .sum())
    }
}

/// The `MessageGroupId` of a stream: the stream itself when SQS accepts it (1–128 printable
/// ASCII characters), otherwise a stable hash of it, so an unusual board or flow name can
/// never make a send fail. The batch still carries its stream.
pub fn message_group_id(stream: &str) -> String {
    let valid = !stream.is_empty()
        && stream.len() <= 128
        && stream.bytes().all(|b| (33..=126).contains(&b));
    if valid {
        stream.to_string()
    } else {
        format!(
            "h-{}",
            hex::encode(&Sha256::digest(stream.as_bytes())[..16])
        )
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// A delivery from an SDK message.
fn delivery_from_message(m: &aws_sdk_sqs::types::Message) -> Result<Delivery> {
    let receive_count = m
        .attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    Ok(Delivery {
        message_id: m.message_id().unwrap_or_default().to_string(),
        receipt: m
            .receipt_handle()
            .ok_or_else(|| Error::body("message has no receipt handle"))?
            .to_string(),
        receive_count,
        batch: parse_sqs_body(m.body().unwrap_or_default())?,
    })
}

/// A [`Delivery`] from one record of an SQS Lambda event (the event source mapping has already
/// received it: the receipt handle and receive count come with the record).
pub fn delivery_from_lambda_record(
    record: &aws_lambda_events::sqs::SqsMessage,
) -> Result<Delivery> {
    let message_id = record
        .message_id
        .clone()
        .ok_or_else(|| Error::body("sqs event record has no messageId"))?;
    let receive_count = record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    Ok(Delivery {
        receipt: record.receipt_handle.clone().unwrap_or_default(),
        receive_count,
        batch: parse_sqs_body(record.body.as_deref().unwrap_or_default())?,
        message_id,
    })
}

/// The message group ([`message_group_id`] of the stream) of an SQS Lambda event record, when the event carries it
/// (FIFO sources do): sinks hand back every later message of a group once one is handed back.
pub fn message_group_of_lambda_record(record: &aws_lambda_events::sqs::SqsMessage) -> Option<&str> {
    record.attributes.get("MessageGroupId").map(String::as_str)
}

#[async_trait]
impl Queue for SqsQueue {
    async fn send_encoded(&self, batches: Vec<EncodedBatch>) -> PortResult<()> {
        // Encode everything first: a batch that cannot fit fails the call before anything is
        // sent.
        let mut encoded = Vec::with_capacity(batches.len());
        for (i, b) in batches.into_iter().enumerate() {
            let group = message_group_id(&b.stream);
            let dedup_id = b.dedup_id.clone();
            // The body moves into the request: no copy of up to 256 KiB per message.
            let body = encoded_body(b).map_err(PortError::from)?;
            encoded.push((i, group, dedup_id, body));
        }
        // Calls of at most 10 entries and 256 KiB of bodies, in order.
        let mut call: Vec<(SendMessageBatchRequestEntry, usize)> = Vec::new();
        let mut call_bytes = 0;
        for (i, group, dedup_id, body) in encoded {
            if !call.is_empty()
                && (call.len() >= SEND_BATCH_MAX || call_bytes + body.len() > SQS_MAX_MESSAGE_BYTES)
            {
                self.send_entries(std::mem::take(&mut call)).await?;
                call_bytes = 0;
            }
            call_bytes += body.len();
            let entry = SendMessageBatchRequestEntry::builder()
                .id(format!("m{i}"))
                .message_body(body)
                .message_group_id(group)
                .message_deduplication_id(dedup_id)
                .build()
                .map_err(|e| PortError::permanent("building SendMessageBatch entry", e))?;
            call.push((entry, i));
        }
        if !call.is_empty() {
            self.send_entries(call).await?;
        }
        Ok(())
    }

    async fn receive(&self, max: usize, visibility: Duration) -> PortResult<Vec<Delivery>> {
        self.receive_from(&self.urls.main, max, visibility).await
    }

    async fn ack(&self, receipt: &str) -> PortResult<()> {
        self.client
            .delete_message()
            .queue_url(&self.urls.main)
            .receipt_handle(receipt)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| port_error("SQS.DeleteMessage", e))
    }

    async fn nack(&self, receipt: &str, delay: Duration) -> PortResult<()> {
        // SQS caps a message's visibility at 12 hours counted from when it was received, and
        // refuses a longer total. The receive time is not known here, so a long delay steps
        // down until SQS accepts it: the message comes back at most that much earlier.
        let wanted = ceil_secs(delay).min(MAX_VISIBILITY_SECS);
        let mut tries = vec![wanted];
        if wanted > MAX_VISIBILITY_SECS - 900 {
            tries.extend([MAX_VISIBILITY_SECS - 900, MAX_VISIBILITY_SECS - 3600]);
        }
        if wanted > MAX_VISIBILITY_SECS / 2 {
            tries.push(MAX_VISIBILITY_SECS / 2);
        }
        let last = tries.len() - 1;
        for (i, secs) in tries.into_iter().enumerate() {
            let res = self
                .client
                .change_message_visibility()
                .queue_url(&self.urls.main)
                .receipt_handle(receipt)
                .visibility_timeout(i32::try_from(secs).unwrap_or(0))
                .send()
                .await;
            match res {
                Ok(_) => return Ok(()),
                Err(e) if i < last && error_code(&e) == Some("InvalidParameterValue") => continue,
                Err(e) => return Err(port_error("SQS.ChangeMessageVisibility", e)),
            }
        }
        Ok(())
    }

    async fn dead_letter(&self, batch: &ChangeBatch) -> PortResult<()> {
        let body = encode_body(batch).map_err(PortError::from)?;
        let dedup = hex::encode(Sha256::digest(body.as_bytes()));
        self.client
            .send_message()
            .queue_url(&self.urls.dead)
            .message_body(body)
            .message_group_id(message_group_id(&batch.stream))
            .message_deduplication_id(dedup)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| port_error("SQS.SendMessage (dead letter)", e))
    }

    async fn receive_dead(&self, max: usize, visibility: Duration) -> PortResult<Vec<Delivery>> {
        self.receive_from(&self.urls.dead, max, visibility).await
    }

    async fn ack_dead(&self, receipt: &str) -> PortResult<()> {
        self.client
            .delete_message()
            .queue_url(&self.urls.dead)
            .receipt_handle(receipt)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| port_error("SQS.DeleteMessage (dead letter)", e))
    }

    async fn nack_dead(&self, receipt: &str, delay: Duration) -> PortResult<()> {
        self.client
            .change_message_visibility()
            .queue_url(&self.urls.dead)
            .receipt_handle(receipt)
            .visibility_timeout(ceil_secs(delay).min(MAX_VISIBILITY_SECS) as i32)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| port_error("SQS.ChangeMessageVisibility (dead letter)", e))
    }

    async fn depth(&self) -> PortResult<QueueDepth> {
        use QueueAttributeName as A;
        let queued = self
            .approximate_count(
                &self.urls.main,
                &[
                    A::ApproximateNumberOfMessages,
                    A::ApproximateNumberOfMessagesDelayed,
                ],
            )
            .await?;
        let in_flight = self
            .approximate_count(&self.urls.main, &[A::ApproximateNumberOfMessagesNotVisible])
            .await?;
        let dead = self
            .approximate_count(
                &self.urls.dead,
                &[
                    A::ApproximateNumberOfMessages,
                    A::ApproximateNumberOfMessagesDelayed,
                    A::ApproximateNumberOfMessagesNotVisible,
                ],
            )
            .await?;
        Ok(QueueDepth {
            queued,
            in_flight,
            dead,
        })
    }
}

/// Creates a FIFO queue `{name}.fifo` and its dead-letter queue `{name}-dlq.fifo` (kept 14
/// days), with a redrive policy after `max_receive_count` receives. Existing queues with the
/// same attributes are reused (SQS CreateQueue is idempotent). For tests and local stacks:
/// production queues come from the IaC.
pub async fn create_fifo_queues(
    ctx: &AwsContext,
    name: &str,
    max_receive_count: u32,
    visibility_timeout: Duration,
) -> Result<QueueUrls> {
    let sqs = ctx.sqs();
    let dead = sqs
        .create_queue()
        .queue_name(format!("{name}-dlq.fifo"))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(QueueAttributeName::MessageRetentionPeriod, "1209600")
        .send()
        .await
        .map_err(|e| sdk_error("SQS.CreateQueue (dead letter)", e))?;
    let dead_url = dead
        .queue_url()
        .ok_or_else(|| Error::Config("CreateQueue returned no dead-letter queue url".into()))?
        .to_string();
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&dead_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| sdk_error("SQS.GetQueueAttributes", e))?;
    let dead_arn = attrs
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .ok_or_else(|| Error::Config("dead-letter queue has no arn".into()))?
        .clone();
    let redrive = serde_json::json!({
        "deadLetterTargetArn": dead_arn,
        "maxReceiveCount": max_receive_count,
    })
    .to_string();
    let main = sqs
        .create_queue()
        .queue_name(format!("{name}.fifo"))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(QueueAttributeName::ContentBasedDeduplication, "false")
        .attributes(QueueAttributeName::RedrivePolicy, redrive)
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            ceil_secs(visibility_timeout)
                .min(MAX_VISIBILITY_SECS)
                .to_string(),
        )
        .send()
        .await
        .map_err(|e| sdk_error("SQS.CreateQueue", e))?;
    let main_url = main
        .queue_url()
        .ok_or_else(|| Error::Config("CreateQueue returned no queue url".into()))?
        .to_string();
    Ok(QueueUrls {
        main: main_url,
        dead: dead_url,
    })
}

#[cfg(test)]
mod tests {
    use super::message_group_id;

    #[test]
    fn group_ids_are_streams_unless_sqs_would_refuse_them() {
        assert_eq!(message_group_id("acme-mon:board-123"), "acme-mon:board-123");
        let odd = message_group_id("Board with spaces ünï");
        assert!(odd.starts_with("h-") && odd.len() == 34, "{odd}");
        assert_eq!(odd, message_group_id("Board with spaces ünï"), "stable");
        assert!(message_group_id(&"x".repeat(129)).starts_with("h-"));
        assert!(message_group_id("").starts_with("h-"));
    }
}
