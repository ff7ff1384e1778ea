//! A sink pass: change batches → destination, with per-record outcomes.
//!
//! For every record: drop it as `unchanged` when its version (or a newer one) was applied, or
//! when its hash equals the applied hash; keep only the newest version of a key within the
//! pass; write the rest in one call to the sink (which packs them); then record state, audit,
//! and dead-letter permanent failures. Each message gets a verdict: `Ack`, or `Retry` with a
//! delay when any of its records must be tried again (the records it already applied come back
//! as `unchanged`). On FIFO streams, once a message is handed back, the later messages of its
//! stream in the same pass are handed back too.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use mlc_core::audit::{AuditEntry, ErrorLink};
use mlc_core::ports::{Delivery, PendingWrite, Sink, SinkError};
use mlc_core::state::{AppliedMark, StateKey};
use mlc_core::{ChangeBatch, ChangeEvent, Failure, RecordOutcome, SyncOutcome};
use serde::Serialize;
use tracing::{info, warn};

use crate::error::Result;
use crate::runtime::FlowRuntime;

/// The sinks of the flows a queue carries, by flow id, with each flow's runtime.
pub type SinkSet = HashMap<String, (FlowRuntime, Arc<dyn Sink>)>;

/// What to do with one received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageVerdict {
    /// Done: delete it.
    Ack,
    /// Hand it back, visible again after the delay.
    Retry(Duration),
}

/// What a sink pass did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SinkReport {
    /// Records created in the destination.
    pub created: usize,
    /// Records updated.
    pub updated: usize,
    /// Records skipped (already applied).
    pub unchanged: usize,
    /// Records to be retried.
    pub retried: usize,
    /// Records dead-lettered.
    pub dead_lettered: usize,
    /// Per message id, the verdict.
    #[serde(skip)]
    pub verdicts: Vec<(String, MessageVerdict)>,
}

/// How the message of a record dead-lettered by its retry horizon starts (not a data error:
/// the record is re-sent from state later, see `heal`).
pub const RETRIES_EXHAUSTED: &str = "retries exhausted";

/// Delay when a failure says "later" without saying when.
const DEFAULT_RETRY: Duration = Duration::from_secs(30);
/// Delay after an authentication failure: someone must fix credentials.
const AUTH_RETRY: Duration = Duration::from_secs(300);
/// SQS caps a visibility change at 12 hours.
const MAX_DELAY: Duration = Duration::from_secs(12 * 3600);

struct Item {
    msg: usize,
    stream: String,
    event: ChangeEvent,
    attempt: u32,
}

/// Processes received messages. Messages of flows without a sink are handed back (a config
/// change may have removed the flow; they must not be lost).
pub async fn process_deliveries(sinks: &SinkSet, deliveries: &[Delivery]) -> Result<SinkReport> {
    let mut report = SinkReport::default();
    let mut msg_retry: Vec<Option<Duration>> = vec![None; deliveries.len()];
    let mut msg_resend: Vec<Vec<ChangeEvent>> = vec![Vec::new(); deliveries.len()];

    // Group items by flow, keeping message order.
    let mut by_flow: BTreeMap<String, Vec<Item>> = BTreeMap::new();
    for (i, d) in deliveries.iter().enumerate() {
        if !sinks.contains_key(&d.batch.flow) {
            warn!(flow = %d.batch.flow, message = %d.message_id, "no sink configured for this flow: handing the message back");
            msg_retry[i] = Some(AUTH_RETRY);
            continue;
        }
        for e in &d.batch.events {
            by_flow.entry(d.batch.flow.clone()).or_default().push(Item {
                msg: i,
                stream: d.batch.stream.clone(),
                event: e.clone(),
                attempt: d.receive_count.max(1) + e.attempt,
            });
        }
    }

    for (flow_id, items) in by_flow {
        let Some((rt, sink)) = sinks.get(&flow_id) else {
            continue;
        };
        let ctx = FlowPass {
            rt,
            sink: sink.as_ref(),
            now: rt.clock.now(),
        };
        ctx.run(items, &mut report, &mut msg_retry, &mut msg_resend)
            .await?;
    }

    // Records that must be retried inside a message that also had permanent failures go back as
    // a new batch (so the dead-lettered ones are not dead-lettered twice); a message whose
    // retryable records are all its unfinished ones is handed back whole.
    for (i, d) in deliveries.iter().enumerate() {
        let resend = std::mem::take(&mut msg_resend[i]);
        if !resend.is_empty() {
            let sink_rt = sinks.get(&d.batch.flow).map(|(rt, _)| rt);
            if let Some(rt) = sink_rt {
                let b = ChangeBatch {
                    flow: d.batch.flow.clone(),
                    stream: d.batch.stream.clone(),
                    events: resend,
                    nonce: Some(uuid::Uuid::new_v4().to_string()),
                };
                match rt.queue.send(std::slice::from_ref(&b)).await {
                    Ok(()) => {}
                    Err(e) => {
                        warn!(flow = %d.batch.flow, error = %e, "re-queueing retryable records failed: handing the whole message back");
                        msg_retry[i] = Some(msg_retry[i].unwrap_or(DEFAULT_RETRY));
                    }
                }
            }
        }
    }

    // FIFO: once a message of a stream is handed back, later messages of that stream follow.
    let mut blocked: HashMap<&str, Duration> = HashMap::new();
    for (i, d) in deliveries.iter().enumerate() {
        let stream = d.batch.stream.as_str();
        let verdict = match (msg_retry[i], blocked.get(stream)) {
            (Some(delay), _) => {
                blocked.insert(stream, delay);
                MessageVerdict::Retry(delay.min(MAX_DELAY))
            }
            (None, Some(delay)) => MessageVerdict::Retry((*delay).min(MAX_DELAY)),
            (None, None) => MessageVerdict::Ack,
        };
        report.verdicts.push((d.message_id.clone(), verdict));
    }
    Ok(report)
}

struct FlowPass<'a> {
    rt: &'a FlowRuntime,
    sink: &'a dyn Sink,
    now: DateTime<Utc>,
}

impl FlowPass<'_> {
    async fn run(
        &self,
        items: Vec<Item>,
        report: &mut SinkReport,
        msg_retry: &mut [Option<Duration>],
        msg_resend: &mut [Vec<ChangeEvent>],
    ) -> Result<()> {
        let rt = self.rt;
        let flow = &rt.flow.id;
        let destination = self.sink.destination();
        let mut audit = Vec::new();

        // A flow paused by a destination's daily limit writes nothing until the pause ends.
        let info = rt.watermarks.run_info(flow).await?;
        if let Some(until) = info.paused_until.filter(|u| *u > self.now) {
            let delay = (until - self.now).to_std().unwrap_or(DEFAULT_RETRY);
            info!(flow = %flow, until = %until, "flow paused: handing messages back");
            for it in &items {
                set_retry(msg_retry, it.msg, delay);
            }
            report.retried += items.len();
            return Ok(());
        }

        // Newest version per key wins within the pass.
        let mut newest: HashMap<StateKey, usize> = HashMap::new();
        for (idx, it) in items.iter().enumerate() {
            let k = StateKey::new(flow.clone(), it.event.entity, it.event.key.id());
            match newest.get(&k) {
                Some(&j) if items[j].event.version >= it.event.version => {}
                _ => {
                    newest.insert(k, idx);
                }
            }
        }
        let keys: Vec<StateKey> = newest.keys().cloned().collect();
        let states: HashMap<StateKey, mlc_core::RecordState> =
            rt.state.get_many(&keys).await?.into_iter().collect();

        let mut to_write: Vec<(usize, PendingWrite)> = Vec::new();
        let mut skipped_msgs: HashSet<usize> = HashSet::new();
        for (idx, it) in items.iter().enumerate() {
            let k = StateKey::new(flow.clone(), it.event.entity, it.event.key.id());
            let superseded = newest.get(&k) != Some(&idx);
            let prior = states.get(&k);
            let applied_newer = prior
                .and_then(|s| s.applied_version)
                .is_some_and(|v| v >= it.event.version);
            let same_hash = prior.and_then(|s| s.applied_hash.as_deref())
                == Some(it.event.content_hash.as_str());
            if superseded || applied_newer {
                report.unchanged += 1;
                skipped_msgs.insert(it.msg);
                audit.push(entry(
                    &it.event,
                    destination,
                    SyncOutcome::Unchanged,
                    it.attempt,
                    self.now,
                    prior.map(|s| s.destination_ids.clone()).unwrap_or_default(),
                    Vec::new(),
                ));
                continue;
            }
            if same_hash {
                // Same content under a newer version: remember the version, write nothing.
                let ids = prior.map(|s| s.destination_ids.clone()).unwrap_or_default();
                rt.state
                    .mark_applied(&applied_mark(&k, &it.event, ids.clone(), self.now))
                    .await?;
                report.unchanged += 1;
                skipped_msgs.insert(it.msg);
                audit.push(entry(
                    &it.event,
                    destination,
                    SyncOutcome::Unchanged,
                    it.attempt,
                    self.now,
                    ids,
                    Vec::new(),
                ));
                continue;
            }
            to_write.push((
                idx,
                PendingWrite {
                    event: it.event.clone(),
                    prior: prior.cloned(),
                },
            ));
        }

        let outcomes: Vec<RecordOutcome> = if to_write.is_empty() {
            Vec::new()
        } else {
            let batch: Vec<PendingWrite> = to_write.iter().map(|(_, w)| w.clone()).collect();
            match self.sink.write(&batch).await {
                Ok(o) if o.len() == batch.len() => o,
                Ok(o) => {
                    warn!(flow = %flow, expected = batch.len(), got = o.len(), "sink returned a wrong number of outcomes: retrying the batch");
                    vec![
                        RecordOutcome::retry(
                            None,
                            Failure::retryable("sink returned a wrong number of outcomes")
                        );
                        batch.len()
                    ]
                }
                Err(e) => self.whole_call_failure(e, batch.len()).await?,
            }
        };

        let mut dead: BTreeMap<usize, Vec<ChangeEvent>> = BTreeMap::new();
        // Messages in which at least one record reached a final outcome in this pass.
        let mut progress: HashSet<usize> = skipped_msgs;
        // Messages holding a retry that counts as an attempt (a transient failure, not a
        // deferral), and messages that had records dead-lettered in this pass.
        let mut counted_retry: HashSet<usize> = HashSet::new();
        let mut had_dead: HashSet<usize> = HashSet::new();
        for ((idx, w), outcome) in to_write.into_iter().zip(outcomes) {
            let it = &items[idx];
            let k = StateKey::new(flow.clone(), w.event.entity, w.event.key.id());
            // A transient failure is retried until the retry horizon has passed since the
            // record was read (or replayed), and at least `max_attempts` times; only then is it
            // a permanent failure. Deferrals never count.
            let outcome = match outcome {
                RecordOutcome::Retry { failure, .. }
                    if failure.kind != mlc_core::FailureKind::Deferred
                        && self.horizon_passed(&w.event, it.attempt) =>
                {
                    RecordOutcome::Permanent(Failure {
                        kind: mlc_core::FailureKind::Permanent,
                        message: format!(
                            "{RETRIES_EXHAUSTED}: failing since {} ({} attempts, retry horizon {} h): {}",
                            w.event.retrying_since().format("%Y-%m-%d %H:%M UTC"),
                            it.attempt,
                            rt.settings.retry_horizon_hours,
                            failure.message
                        ),
                        ..failure
                    })
                }
                other => other,
            };
            match outcome {
                RecordOutcome::Applied {
                    created,
                    destination_ids,
                } => {
                    progress.insert(it.msg);
                    let mut ids = w
                        .prior
                        .as_ref()
                        .map(|p| p.destination_ids.clone())
                        .unwrap_or_default();
                    ids.extend(destination_ids);
                    rt.state
                        .mark_applied(&applied_mark(&k, &w.event, ids.clone(), self.now))
                        .await?;
                    let outcome = if created {
                        SyncOutcome::Created
                    } else {
                        SyncOutcome::Updated
                    };
                    if created {
                        report.created += 1;
                    } else {
                        report.updated += 1;
                    }
                    audit.push(entry(
                        &w.event,
                        destination,
                        outcome,
                        it.attempt,
                        self.now,
                        ids,
                        Vec::new(),
                    ));
                }
                RecordOutcome::Unchanged { destination_ids } => {
                    progress.insert(it.msg);
                    let mut ids = w
                        .prior
                        .as_ref()
                        .map(|p| p.destination_ids.clone())
                        .unwrap_or_default();
                    ids.extend(destination_ids);
                    rt.state
                        .mark_applied(&applied_mark(&k, &w.event, ids.clone(), self.now))
                        .await?;
                    report.unchanged += 1;
                    audit.push(entry(
                        &w.event,
                        destination,
                        SyncOutcome::Unchanged,
                        it.attempt,
                        self.now,
                        ids,
                        Vec::new(),
                    ));
                }
                RecordOutcome::Permanent(failure) => {
                    progress.insert(it.msg);
                    report.dead_lettered += 1;
                    warn!(flow = %flow, entity = %w.event.entity, key = %w.event.key, reason = %failure.message, "dead-lettered");
                    audit.push(entry(
                        &w.event,
                        destination,
                        SyncOutcome::FailedPermanent,
                        it.attempt,
                        self.now,
                        Default::default(),
                        chain_of(&failure),
                    ));
                    let mut ev = w.event.clone();
                    ev.attempt = it.attempt;
                    ev.failure = Some(failure);
                    had_dead.insert(items[idx].msg);
                    dead.entry(items[idx].msg).or_default().push(ev);
                }
                RecordOutcome::Retry { after, failure } => {
                    let deferred = failure.kind == mlc_core::FailureKind::Deferred;
                    report.retried += 1;
                    audit.push(entry(
                        &w.event,
                        destination,
                        SyncOutcome::FailedRetryable,
                        it.attempt,
                        self.now,
                        Default::default(),
                        chain_of(&failure),
                    ));
                    // Deferrals back off too (from 30 s): a record waiting hours for what it
                    // depends on costs a few receives an hour, not hundreds.
                    let delay = jitter(after.unwrap_or_else(|| {
                        if deferred {
                            DEFAULT_RETRY.max(backoff(it.attempt))
                        } else {
                            backoff(it.attempt)
                        }
                    }));
                    set_retry(msg_retry, it.msg, delay);
                    // A deferral is not an attempt: a backfill may wait many budget windows.
                    let mut ev = w.event.clone();
                    ev.attempt = if deferred {
                        it.attempt.saturating_sub(1)
                    } else {
                        it.attempt
                    };
                    msg_resend[it.msg].push(ev);
                    if !deferred {
                        counted_retry.insert(it.msg);
                    }
                }
            }
        }

        // Dead letters must be stored before their messages are acked.
        let mut dead_letter_failed: HashSet<usize> = HashSet::new();
        for (msg, events) in dead {
            let stream = items
                .iter()
                .find(|i| i.msg == msg)
                .map(|i| i.stream.clone())
                .unwrap_or_else(|| flow.clone());
            let b = ChangeBatch {
                flow: flow.clone(),
                stream,
                events,
                nonce: Some(uuid::Uuid::new_v4().to_string()),
            };
            if let Err(e) = rt.queue.dead_letter(&b).await {
                warn!(flow = %flow, error = %e, "dead-lettering failed: handing the message back");
                set_retry(msg_retry, msg, DEFAULT_RETRY);
                dead_letter_failed.insert(msg);
            }
        }
        // Which messages re-send only their unfinished records (as a new message, acking the
        // original) instead of being handed back whole with the delay:
        // - a message with dead-lettered records always (handing it back would dead-letter them
        //   twice);
        // - a message that made progress and waits only on deferrals (budgets): its receive
        //   count starts over, so a long backfill never reaches the redrive limit.
        // A message with transient failures is handed back whole, so the destination's delay is
        // honoured (FIFO queues have no per-message delay for a re-sent message); what it had
        // applied comes back as `unchanged`.
        for (msg, resend) in msg_resend.iter_mut().enumerate() {
            if resend.is_empty() || !items.iter().any(|i| i.msg == msg) {
                continue;
            }
            let resend_it = had_dead.contains(&msg)
                || (progress.contains(&msg) && !counted_retry.contains(&msg));
            if resend_it && !dead_letter_failed.contains(&msg) {
                msg_retry[msg] = None;
            } else {
                resend.clear();
            }
        }
        rt.audit.append(&audit).await?;
        Ok(())
    }

    /// True when a record failing transiently has used its retry horizon (and its minimum
    /// attempts): from then on it is dead-lettered.
    fn horizon_passed(&self, event: &ChangeEvent, attempt: u32) -> bool {
        let horizon = chrono::Duration::hours(i64::from(self.rt.settings.retry_horizon_hours));
        attempt >= self.rt.settings.max_attempts && self.now - event.retrying_since() >= horizon
    }

    /// Maps a whole-call failure to per-record outcomes.
    async fn whole_call_failure(&self, e: SinkError, n: usize) -> Result<Vec<RecordOutcome>> {
        let flow = &self.rt.flow.id;
        let (after, failure) = match &e {
            SinkError::DailyLimit { message, until } => {
                // Pause the whole flow until the allowance returns, and say so in `status`.
                self.rt
                    .watermarks
                    .set_pause(flow, Some(*until), Some(message))
                    .await?;
                let wait = (*until - self.now).to_std().unwrap_or(DEFAULT_RETRY);
                (Some(wait), Failure::retryable(e.to_string()))
            }
            SinkError::Auth(_) | SinkError::Config(_) => {
                // No retry of a record fixes credentials or configuration: pause the flow (said
                // in `status`), count no attempt, and probe again when the pause ends.
                let until = self.now
                    + chrono::Duration::from_std(AUTH_RETRY)
                        .unwrap_or_else(|_| chrono::Duration::minutes(5));
                self.rt
                    .watermarks
                    .set_pause(flow, Some(until), Some(&e.to_string()))
                    .await?;
                (Some(AUTH_RETRY), Failure::deferred(e.to_string()))
            }
            _ => (None, Failure::retryable(e.to_string())),
        };
        warn!(flow = %flow, error = %e, "destination call failed as a whole");
        Ok(vec![RecordOutcome::retry(after, failure); n])
    }
}

fn set_retry(msg_retry: &mut [Option<Duration>], msg: usize, delay: Duration) {
    let slot = &mut msg_retry[msg];
    *slot = Some(slot.map_or(delay, |d| d.max(delay)));
}

/// Exponential backoff by attempt: 2, 4, 8 … seconds, capped at 15 minutes.
fn backoff(attempt: u32) -> Duration {
    let secs = 2u64.saturating_pow(attempt.min(10)).min(900);
    Duration::from_secs(secs)
}

/// Adds up to 20 % jitter so handed-back messages do not all return at once.
fn jitter(d: Duration) -> Duration {
    let extra = rand::random::<f64>() * 0.2 * d.as_secs_f64();
    d + Duration::from_secs_f64(extra)
}

fn chain_of(f: &Failure) -> Vec<ErrorLink> {
    if f.chain.is_empty() {
        vec![ErrorLink {
            message: match &f.field {
                Some(field) => format!("{} (field {field})", f.message),
                None => f.message.clone(),
            },
            ..Default::default()
        }]
    } else {
        f.chain.clone()
    }
}

fn applied_mark(
    k: &StateKey,
    e: &ChangeEvent,
    ids: BTreeMap<String, String>,
    now: DateTime<Utc>,
) -> AppliedMark {
    AppliedMark {
        key: k.clone(),
        version: e.version,
        hash: e.content_hash.clone(),
        destination_ids: ids,
        at: now,
    }
}

fn entry(
    e: &ChangeEvent,
    destination: &str,
    outcome: SyncOutcome,
    attempt: u32,
    at: DateTime<Utc>,
    ids: BTreeMap<String, String>,
    chain: Vec<ErrorLink>,
) -> AuditEntry {
    AuditEntry {
        flow: e.flow.clone(),
        entity: e.entity,
        key: e.key.id(),
        poll_id: e.poll_id.clone(),
        polled_at: e.polled_at,
        version: e.version,
        content_hash: e.content_hash.clone(),
        destination: destination.to_string(),
        destination_ids: ids,
        outcome,
        attempt,
        at,
        error_chain: chain,
    }
}
