//! The one-process driver: poll a flow, then drain the queue through the sinks until nothing
//! is left that can be delivered before a deadline. The CLI's `sync --once` and `demo` use it.

use std::collections::HashMap;
use std::time::Duration;

use mlc_core::ports::{Queue, Source};
use serde::Serialize;
use tracing::debug;

use crate::error::Result;
use crate::poll::{poll_flow, PollReport};
use crate::runtime::FlowRuntime;
use crate::sink::{process_deliveries, MessageVerdict, SinkReport, SinkSet};

/// Totals of a drain.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DrainReport {
    /// Messages processed.
    pub messages: usize,
    /// Sink totals.
    pub created: usize,
    /// Records updated.
    pub updated: usize,
    /// Records skipped.
    pub unchanged: usize,
    /// Record retries.
    pub retried: usize,
    /// Records dead-lettered.
    pub dead_lettered: usize,
    /// Messages still queued (delayed) when the drain stopped.
    pub left_queued: u64,
}

impl DrainReport {
    fn add(&mut self, r: &SinkReport) {
        self.created += r.created;
        self.updated += r.updated;
        self.unchanged += r.unchanged;
        self.retried += r.retried;
        self.dead_lettered += r.dead_lettered;
    }
}

/// Options for a drain.
#[derive(Debug, Clone)]
pub struct DrainOptions {
    /// Messages per receive, which is also the size of a sink pass: on a FIFO queue a stream
    /// with a message in flight delivers nothing more, so a second receive cannot grow the
    /// pass. A FIFO Lambda event carries at most 10; locally a pass may see more, so a
    /// backfill reaches Bulk API sizes (fewer API calls per record). See [`PASS_MESSAGES`].
    pub batch: usize,
    /// Visibility timeout of a received message.
    pub visibility: Duration,
    /// Stop waiting for delayed messages after this long.
    pub max_wait: Duration,
    /// Longest single sleep while waiting for delayed messages.
    pub idle_sleep: Duration,
    /// Caps the delay of handed-back messages (the demo compresses time); `None` keeps the
    /// destination's delay.
    pub max_delay: Option<Duration>,
}

/// Default messages per local sink pass.
///
/// A Bulk API 2.0 job costs ≈ 6 calls whatever its size (create, upload, close, two or more
/// status polls, successful results), so a backfill is cheapest in few, large passes. 128
/// messages carry up to ≈ 53,000 records of ≈ 590 bytes (a message holds at most 240 KiB of
/// change batches): a 100k-record backfill takes two Bulk jobs, 0.18 calls per 1,000 (three
/// jobs and 0.24 at 100 messages; one job and 0.12 at 256). The bound is memory: a pass holds
/// ≤ 30 MiB of encoded change batches, decoded and copied a few times on the way to the CSV;
/// the 100k Salesforce benchmark (both simulators in the process) peaked at 1.0–1.2 GB RSS with
/// 100 or 128 messages and at 2.1 GB with 256. The CSV of a pass (a few hundred bytes a row,
/// ≈ 10–20 MB) stays far below Salesforce's 100 MB per-job upload limit, and the sink splits larger loads anyway.
pub const PASS_MESSAGES: usize = 128;

impl Default for DrainOptions {
    fn default() -> Self {
        DrainOptions {
            batch: PASS_MESSAGES,
            // Long enough for a Bulk API job over a large pass.
            visibility: Duration::from_secs(600),
            max_wait: Duration::from_secs(60),
            idle_sleep: Duration::from_millis(200),
            max_delay: None,
        }
    }
}

/// Polls one flow once.
pub async fn poll_once(rt: &FlowRuntime, source: &dyn Source, owner: &str) -> Result<PollReport> {
    poll_flow(rt, source, owner).await
}

/// Delivers messages from `queue` until it is empty, or only delayed messages remain past
/// `max_wait`.
pub async fn drain(queue: &dyn Queue, sinks: &SinkSet, opts: &DrainOptions) -> Result<DrainReport> {
    let mut report = DrainReport::default();
    let started = tokio::time::Instant::now();
    let give_up = started + opts.max_wait;
    // When each message this drain handed back is due again: once all of them are due only
    // after `max_wait`, waiting longer delivers nothing (the next run will).
    let mut due: HashMap<String, tokio::time::Instant> = HashMap::new();
    loop {
        let got = queue.receive(opts.batch, opts.visibility).await?;
        if got.is_empty() {
            let depth = queue.depth().await?;
            report.left_queued = depth.queued + depth.in_flight;
            let all_due_later = !due.is_empty()
                && due.len() as u64 >= report.left_queued
                && due.values().all(|d| *d > give_up);
            if report.left_queued == 0 || started.elapsed() >= opts.max_wait || all_due_later {
                break;
            }
            debug!(
                queued = depth.queued,
                in_flight = depth.in_flight,
                "waiting for delayed messages"
            );
            tokio::time::sleep(opts.idle_sleep).await;
            continue;
        }
        report.messages += got.len();
        let r = process_deliveries(sinks, &got).await?;
        report.add(&r);
        for (d, (_, verdict)) in got.iter().zip(r.verdicts.iter()) {
            match verdict {
                MessageVerdict::Ack => {
                    due.remove(&d.message_id);
                    queue.ack(&d.receipt).await?
                }
                MessageVerdict::Retry(delay) => {
                    // Locally a long delay would stall the run: the queue keeps the message and
                    // the next run delivers it; within this run wait at most `max_wait`.
                    let delay = opts.max_delay.map_or(*delay, |m| (*delay).min(m));
                    due.insert(d.message_id.clone(), tokio::time::Instant::now() + delay);
                    queue.nack(&d.receipt, delay).await?
                }
            }
        }
    }
    Ok(report)
}
