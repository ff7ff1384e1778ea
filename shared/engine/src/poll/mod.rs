//! One poll of a flow.
//!
//! Under the flow's lease, for each entity in order (masters first): build the change filter
//! from the watermark, read page by page, derive status and aging, hash each record once, drop
//! records whose hash equals the last one sent (one batched state read per page), pack the rest
//! into change batches, send them, record what was sent (the sent marks are the `queued` audit
//! entries), and only then advance the watermark. A crash anywhere before the watermark save
//! re-polls the same window; the queue's dedup ids and the sinks' version checks absorb the
//! repeats.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};
use mlc_core::config::{ChangeDetection, EntityConfig};
use mlc_core::entity::derived;
use mlc_core::event::{resync_hash, BatchPacker, EventEncoder, RecordJson};
use mlc_core::ports::Source;
use mlc_core::query::PageCursor;
use mlc_core::state::{LastSent, SentMark, StateKey};
use mlc_core::view::DestinationView;
use mlc_core::watermark::{GoLive, ResumePoint};
use mlc_core::{Entity, Lease, Record, SourceVersion, Watermark, WatermarkValue};
use serde::Serialize;
use serde_json::Value;
use tracing::{info, warn};

use crate::derive::{add_derived_for, record_key};
use crate::error::{EngineError, Result};
use crate::plan::{change_filter, next_value, ReadPlan, Tally};
use crate::quality::{check_row, BadRow};
use crate::read::EntityReader;
use crate::runtime::FlowRuntime;
use crate::scope::scope_filters;
use crate::{calendar, children};

mod passes;

/// Events in sealed queue batches that trigger a flush (send, then record as sent): with the
/// open batch, what a poll buffers for the queue is about this many events' JSON (≈ 0.7 MB),
/// however many rows change.
const FLUSH_EVENTS: usize = 1_000;
/// Rows serialised, hashed and checked against record state together: one state read per
/// chunk, and a chunk's serialised rows are all that waits for that read.
const STAGE_CHUNK: usize = 1_000;

/// What one poll did, per entity.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PollReport {
    /// The flow.
    pub flow: String,
    /// `{flow}:{poll_seq}`, or empty when skipped.
    pub poll_id: String,
    /// True when another poll held the lease and this one did nothing.
    pub skipped: bool,
    /// Per entity: rows read, changes queued.
    pub entities: Vec<EntityPollReport>,
}

impl PollReport {
    /// True when the poll stopped at its deadline with a read unfinished (the next poll
    /// carries on).
    pub fn unfinished(&self) -> bool {
        self.entities.iter().any(|e| e.checkpointed)
    }
    /// Total changes queued.
    pub fn queued(&self) -> usize {
        self.entities.iter().map(|e| e.queued).sum()
    }
    /// Total rows read.
    pub fn read(&self) -> usize {
        self.entities.iter().map(|e| e.rows_read).sum()
    }
}

/// What one poll did for one entity.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EntityPollReport {
    /// The entity.
    pub entity: String,
    /// Rows read from SYSPRO.
    pub rows_read: usize,
    /// Changes put on the queue.
    pub queued: usize,
    /// Rows skipped because their hash equals the last one sent.
    pub unchanged: usize,
    /// Queue messages sent.
    pub messages: usize,
    /// Rows that cannot be synced as SYSPRO holds them (recorded as source-data errors).
    pub source_errors: usize,
    /// Rows the initial scope left out (first read only).
    pub out_of_scope: usize,
    /// Records re-read because the business date moved their status or aging.
    pub calendar: usize,
    /// Records found gone from SYSPRO (marked removed at the destination).
    pub removed: usize,
    /// Records sent long ago and never applied, re-sent.
    pub resent_unapplied: usize,
    /// The read stopped at the poll's deadline; the next poll carries on from there.
    pub checkpointed: bool,
}

/// Options of one poll.
#[derive(Debug, Clone, Default)]
pub struct PollOptions {
    /// Read and compare only: send nothing, record nothing, keep the watermark.
    pub dry_run: bool,
    /// Re-send records whatever was sent before (`ml-connector resync`).
    pub resync: Option<Resync>,
    /// Stop reading at a page boundary once this time has passed, with a checkpoint the next
    /// poll carries on from (a Lambda run's end, less a margin).
    pub deadline: Option<DateTime<Utc>>,
}

/// What a forced re-send covers: one entity or every entity of the flow, one key or all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resync {
    /// The entity; `None` for all of the flow's.
    pub entity: Option<Entity>,
    /// The key identity (parts joined by `|`); `None` for every record.
    pub key: Option<String>,
}

impl Resync {
    fn covers(&self, entity: Entity) -> bool {
        self.entity.is_none_or(|e| e == entity)
    }
}

/// Polls one flow once. `owner` names this poller in the lease (process id, Lambda request id).
pub async fn poll_flow(rt: &FlowRuntime, source: &dyn Source, owner: &str) -> Result<PollReport> {
    poll_flow_with(rt, source, owner, PollOptions::default()).await
}

/// [`poll_flow`] with options.
pub async fn poll_flow_with(
    rt: &FlowRuntime,
    source: &dyn Source,
    owner: &str,
    opts: PollOptions,
) -> Result<PollReport> {
    let flow = &rt.flow;
    let now = rt.clock.now();
    let Some(lease) = rt
        .watermarks
        .acquire_lease(&flow.id, owner, rt.lease_ttl, now)
        .await?
    else {
        info!(flow = %flow.id, "another poll holds the lease: skipping");
        return Ok(PollReport {
            flow: flow.id.clone(),
            skipped: true,
            ..Default::default()
        });
    };
    let effective = match crate::terms::effective_flow(&rt.flow, source).await {
        Ok(f) => f,
        Err(e) => {
            release(rt, &lease, false).await;
            return Err(e);
        }
    };
    let mut poll = PollRun {
        rt,
        flow: effective,
        source,
        polled_at: now,
        today: rt.clock.today(flow.tz()),
        dry_run: opts.dry_run,
        resync: opts.resync.clone(),
        deadline: opts.deadline,
        encoder: EventEncoder::new(&flow.id, &lease.poll_id(), now),
        poll_seq: lease.poll_seq,
        poll_id: lease.poll_id(),
        lease: std::sync::Mutex::new(lease),
    };
    let result = poll.run().await;
    let finished = result.is_ok() && !opts.dry_run;
    release(rt, &poll.lease(), finished).await;
    result
}

/// Releases the lease; a failure only means it lapses at its expiry.
async fn release(rt: &FlowRuntime, lease: &Lease, finished: bool) {
    if let Err(e) = rt
        .watermarks
        .release_lease(lease, finished, rt.clock.now())
        .await
    {
        warn!(flow = %rt.flow.id, error = %e, "releasing the lease failed; it lapses at its expiry");
    }
}

struct PollRun<'a> {
    rt: &'a FlowRuntime,
    /// The lease's poll sequence: every event's version and sent mark carries it.
    poll_seq: u64,
    /// `{flow}:{poll_seq}`.
    poll_id: String,
    /// The flow as this poll derives it (terms from SYSPRO when configured).
    flow: std::sync::Arc<mlc_core::FlowConfig>,
    source: &'a dyn Source,
    /// Renewed while the poll runs (interior: the staging side renews it before it sends).
    lease: std::sync::Mutex<Lease>,
    polled_at: DateTime<Utc>,
    today: NaiveDate,
    dry_run: bool,
    resync: Option<Resync>,
    deadline: Option<DateTime<Utc>>,
    encoder: EventEncoder,
}

/// Changes staged for the queue, written into batch bodies already; each event's tag is its
/// sent mark.
type Pending = BatchPacker<SentMark>;

/// What one call of [`PollRun::stage_rows`] found besides the events it staged.
#[derive(Default)]
struct Staged {
    /// Identities of the rows staged.
    keys: Vec<String>,
    /// Those that are open.
    open: Vec<String>,
}

impl PollRun<'_> {
    async fn run(&mut self) -> Result<PollReport> {
        let flow = self.flow.clone();
        let mut report = PollReport {
            flow: flow.id.clone(),
            poll_id: self.poll_id.clone(),
            ..Default::default()
        };
        for ec in &flow.entities {
            if self.resync.as_ref().is_some_and(|r| !r.covers(ec.entity)) {
                continue;
            }
            let r = self.poll_entity(ec).await?;
            info!(flow = %flow.id, entity = %ec.entity, rows = r.rows_read, queued = r.queued, "entity polled");
            let stop = r.checkpointed;
            report.entities.push(r);
            if stop {
                info!(flow = %flow.id, entity = %ec.entity, "deadline reached: the next poll carries on");
                break;
            }
        }
        Ok(report)
    }

    /// The lease as last renewed.
    fn lease(&self) -> Lease {
        self.lease
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Renews the lease once half of it is spent. A poll whose lease another poll has taken
    /// stops here, before it sends anything more: two polls of a flow never send at once, and
    /// an older one never overwrites what a newer one sent.
    async fn renew_if_due(&self) -> Result<()> {
        let now = self.rt.clock.now();
        let current = self.lease();
        let half = chrono::Duration::from_std(self.rt.lease_ttl / 2).unwrap_or_default();
        if current.expires_at - now >= half {
            return Ok(());
        }
        let renewed = self
            .rt
            .watermarks
            .renew_lease(&current, self.rt.lease_ttl, now)
            .await
            .map_err(|e| match e {
                mlc_core::PortError::Conflict(_) => EngineError::LeaseLost(self.flow.id.clone()),
                other => other.into(),
            })?;
        *self
            .lease
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = renewed;
        Ok(())
    }

    /// The strategy this entity is read with, and whether the server exposes `TimeStamp`.
    async fn strategy(
        &self,
        reader: &EntityReader<'_>,
        ec: &EntityConfig,
    ) -> Result<(ChangeDetection, bool)> {
        if ec.change_detection != ChangeDetection::Rowversion {
            return Ok((ec.change_detection, false));
        }
        let has_rv = self
            .source
            .has_row_version(ec.entity)
            .await
            .map_err(|e| reader.source_err(ec.entity, e))?;
        if has_rv {
            Ok((ChangeDetection::Rowversion, true))
        } else {
            warn!(flow = %self.flow.id, entity = %ec.entity, "no TimeStamp column exposed: falling back to a hash-diffed full scan");
            Ok((ChangeDetection::FullScan, false))
        }
    }

    async fn poll_entity(&mut self, ec: &EntityConfig) -> Result<EntityPollReport> {
        let entity = ec.entity;
        let flow_cfg = self.flow.clone();
        let mut report = EntityPollReport {
            entity: entity.to_string(),
            ..Default::default()
        };
        let stored = self.rt.watermarks.load(&flow_cfg.id, entity).await?;
        let probe = EntityReader::new(&flow_cfg, self.source, ec, false);
        let (strategy, has_rv) = self.strategy(&probe, ec).await?;
        drop(probe);
        let mut reader = EntityReader::new(&flow_cfg, self.source, ec, has_rv);
        let view = reader.view.clone();
        let mark = stored
            .as_ref()
            .map(|w| w.value.clone())
            .unwrap_or(WatermarkValue::Empty);
        let mut notes = stored.as_ref().map(|w| w.notes.clone()).unwrap_or_default();
        let forced = self.resync.clone().filter(|r| r.covers(entity));
        let mut pending: Pending = BatchPacker::new(
            &flow_cfg.id,
            &flow_cfg.stream_for(entity),
            self.rt.settings.max_message_bytes,
            self.rt.settings.max_batch_records,
        );
        if let Some(key) = forced.as_ref().and_then(|r| r.key.clone()) {
            // One record, re-sent as SYSPRO has it now; the watermark stays where it is.
            self.read_keys(&mut reader, &[key], &mut pending, &mut report, true)
                .await?;
            pending.seal();
            self.flush(&mut pending, &mut report).await?;
            return Ok(report);
        }

        // A mapping the entity was not read under yet: read it whole once, so every record
        // (not only the ones SYSPRO changes next) reaches the destination in its new shape.
        let remapped = stored
            .as_ref()
            .is_some_and(|w| w.mapping.as_deref() != Some(view.read_under.as_str()));
        if remapped {
            info!(flow = %flow_cfg.id, entity = %entity, "mapping changed since the last poll: reading the whole entity once");
        }
        let resume = notes.resume.take();
        let mut sweep = None;
        let first_read = matches!(mark, WatermarkValue::Empty);
        if resume.is_some() {
            // The sweep waits for the interrupted read to finish.
        } else if first_read && self.sweep_due(ec, strategy, &notes) {
            // The first read sees every row: nothing to compare a sweep with yet.
            notes.swept = Some(self.today);
        } else if self.sweep_due(ec, strategy, &notes) && !self.dry_run {
            let found = self.scan_keys(&reader, None, has_rv).await?;
            notes.swept = Some(self.today);
            if let Some(alert) = found.alert(&mark, notes.swept_rows) {
                warn!(flow = %flow_cfg.id, entity = %entity, "{alert}");
                notes.alert = Some(alert);
                sweep = Some((found, true));
            } else {
                sweep = Some((found, false));
            }
            notes.swept_rows = sweep.as_ref().map(|(f, _)| f.rows);
        }
        let rescan = sweep.as_ref().is_some_and(|(_, restored)| *restored);
        let go_live = notes.go_live.clone();
        let plan = ReadPlan {
            ec,
            strategy,
            mark: &mark,
            whole: remapped
                || rescan
                || forced.is_some()
                || resume.as_ref().is_some_and(|r| r.whole),
            scope: scope_filters(ec),
            go_live: go_live.as_ref(),
            today: self.today,
        };
        let first = plan.first();
        let (query, start) = match &resume {
            // An interrupted read carries on: its own query, from the page it stopped before.
            Some(r) => (
                reader.query(self.resume_filter(r)?),
                Some(PageCursor(r.cursor.clone())),
            ),
            None => (reader.query(change_filter(&plan)), None),
        };
        let force = forced.is_some();

        let mut tally = Tally::default();
        if let Some(r) = &resume {
            tally.max_rv = r.max_rv;
            tally.max_date = r.max_date;
        }
        self.renew_if_due().await?;
        let mut page = reader.page(&query, start.as_ref()).await?;
        loop {
            report.rows_read += page.rows.len();
            let rows = std::mem::take(&mut page.rows);
            tally.observe(ec, strategy, &rows, self.today);
            self.renew_if_due().await?;
            if page.next.is_some() && self.past_deadline() {
                // Out of time (a Lambda run's end): send what was read, keep the place.
                self.stage_rows(ec, &view, rows, &mut pending, &mut report, force)
                    .await?;
                pending.seal();
                self.flush(&mut pending, &mut report).await?;
                let point = ResumePoint {
                    filter: query
                        .filter
                        .as_ref()
                        .map(|f| serde_json::to_string(f).unwrap_or_default()),
                    cursor: page.next.take().map(|c| c.0).unwrap_or_default(),
                    max_rv: tally.max_rv,
                    max_date: tally.max_date,
                    rows_read: resume.as_ref().map_or(0, |r| r.rows_read) + report.rows_read as u64,
                    whole: plan.whole,
                };
                self.checkpoint(entity, stored, mark.clone(), notes, point)
                    .await?;
                report.checkpointed = true;
                return Ok(report);
            }
            // SYSPRO produces the next page, and answers its master lookups, while this one is
            // hashed, serialised and written: the two overlap instead of taking turns. Only the
            // fetch side calls SYSPRO, one call after the other, so the source never sees two
            // calls at once.
            let next = page.next.take();
            let this = &*self;
            let reader = &mut reader;
            let fetch = async {
                let Some(cursor) = &next else {
                    return Ok(None);
                };
                reader.page(&query, Some(cursor)).await.map(Some)
            };
            let work = async {
                // The request for the next page is only queued when `fetch` is first polled:
                // the HTTP connection task writes it when this task yields. Yield once before
                // the CPU-bound staging, or SYSPRO would hear of the request only at the first
                // store call, half a page later, and the overlap would be lost.
                tokio::task::yield_now().await;
                let mut r = EntityPollReport::default();
                let staged = this
                    .stage_rows(ec, &view, rows, &mut pending, &mut r, force)
                    .await?;
                Ok::<_, crate::EngineError>((staged, r))
            };
            let (fetched, staged) = tokio::join!(fetch, work);
            let (staged, r) = staged?;
            report.absorb(r);
            tally.seen.extend(staged.keys);
            tally.open.extend(staged.open);
            match fetched? {
                Some(p) => page = p,
                None => break,
            }
        }

        if first && !self.dry_run {
            if let Some(scope) = &plan.scope {
                let left = self
                    .scan_keys(&reader, Some(scope.leave.clone()), has_rv)
                    .await?;
                report.out_of_scope = left.rows as usize;
                notes.go_live = Some(GoLive {
                    date: self.today,
                    row_version: tally.max_rv.max(left.max_rv),
                    out_of_scope: left.rows,
                });
                info!(flow = %flow_cfg.id, entity = %entity, rows = left.rows, scope = ec.initial_scope.as_str(), "rows left out by the initial scope");
            }
        }
        // A read resumed from a checkpoint saw the open set in slices: no vanishing from it.
        if strategy == ChangeDetection::OpenItems && resume.is_none() {
            // Keys open last time and absent now were paid, reversed or deleted.
            let previously_open = self.rt.state.open_keys(&flow_cfg.id, entity).await?;
            let vanished: Vec<String> = previously_open
                .into_iter()
                .filter(|k| !tally.open.contains(k))
                .collect();
            self.confirm_vanished(&mut reader, &vanished, &mut pending, &mut report)
                .await?;
        }
        if let Some((found, _)) = &sweep {
            let previously_open = self.rt.state.open_keys(&flow_cfg.id, entity).await?;
            let vanished: Vec<String> = previously_open
                .into_iter()
                .filter(|k| !found.keys.contains(k) && !tally.seen.contains(k))
                .collect();
            self.confirm_vanished(&mut reader, &vanished, &mut pending, &mut report)
                .await?;
        }
        if let Some(bound) = plan.child_bound(children::child_tables(&view).is_empty()) {
            // A line or GRN changed under a purchase order SYSPRO did not touch: re-read it.
            let (parents, child_rv) =
                children::changed_parents(self.source, &view, bound, query.page_size)
                    .await
                    .map_err(|e| reader.source_err(entity, e))?;
            tally.max_rv = tally.max_rv.max(child_rv);
            let todo: Vec<String> = parents
                .into_iter()
                .filter(|p| !tally.seen.contains(p))
                .collect();
            self.read_keys(&mut reader, &todo, &mut pending, &mut report, false)
                .await?;
        }
        if !first && !plan.reads_every_open_row() && calendar::visible(&view) {
            self.calendar_pass(
                &mut reader,
                notes.business_date,
                &tally.seen,
                &mut pending,
                &mut report,
            )
            .await?;
        }
        if !first && !self.dry_run && notes.business_date.is_some_and(|d| d < self.today) {
            // Once per business date: what was sent long ago and never applied goes again.
            let keys = crate::heal::keys_to_resend(self.rt, entity, self.rt.clock.now()).await?;
            if !keys.is_empty() {
                warn!(flow = %self.flow.id, entity = %entity, records = keys.len(), "re-sending records sent long ago and never applied");
                report.resent_unapplied += keys.len();
                self.read_keys(&mut reader, &keys, &mut pending, &mut report, true)
                    .await?;
            }
        }
        pending.seal();
        self.flush(&mut pending, &mut report).await?;
        if self.dry_run {
            return Ok(report);
        }

        // Only now, with every batch accepted by the queue, does the watermark move.
        if let Some(alert) = tally.future_alert(ec) {
            warn!(flow = %flow_cfg.id, entity = %entity, "{alert}");
            notes.alert = Some(alert);
        }
        notes.business_date = Some(self.today);
        let wm = Watermark {
            flow: flow_cfg.id.clone(),
            entity,
            value: next_value(strategy, &mark, &tally, rescan, self.today),
            version: stored.map(|w| w.version).unwrap_or(0) + 1,
            poll_id: self.poll_id.clone(),
            updated_at: self.rt.clock.now(),
            mapping: Some(view.read_under.clone()),
            notes,
        };
        self.rt.watermarks.save(&wm).await?;
        Ok(report)
    }

    /// Reads the rows of `keys` (identities) and stages them; returns the identities SYSPRO
    /// still has.
    async fn read_keys(
        &mut self,
        reader: &mut EntityReader<'_>,
        keys: &[String],
        pending: &mut Pending,
        report: &mut EntityPollReport,
        force: bool,
    ) -> Result<HashSet<String>> {
        if keys.is_empty() {
            return Ok(HashSet::new());
        }
        self.renew_if_due().await?;
        let (rows, found) = reader.by_keys(keys).await?;
        report.rows_read += rows.len();
        let Some(ec) = self.flow.entity(reader.entity()).cloned() else {
            return Ok(found);
        };
        self.stage_rows(&ec, &reader.view, rows, pending, report, force)
            .await?;
        Ok(found)
    }

    /// Records rows that cannot be synced as source-data errors in the audit trail.
    async fn record_bad_rows(&self, bad: &[BadRow]) -> Result<()> {
        let flow = &self.flow.id;
        for b in bad {
            warn!(flow = %flow, "source-data error: {}", b.message(flow));
        }
        if self.dry_run || bad.is_empty() {
            return Ok(());
        }
        let entries: Vec<_> = bad
            .iter()
            .map(|b| b.audit_entry(flow, self.poll_seq, self.polled_at))
            .collect();
        self.rt.audit.append(&entries).await?;
        Ok(())
    }

    /// Turns rows into events, dropping those whose hash equals the last one sent, a chunk at
    /// a time; flushes whenever enough batches are sealed. Rows that cannot be synced are
    /// recorded as source-data errors instead. `force` (resync) stages every row, with a
    /// content hash apart from the last one applied.
    async fn stage_rows(
        &self,
        ec: &EntityConfig,
        view: &DestinationView,
        rows: Vec<Record>,
        pending: &mut Pending,
        report: &mut EntityPollReport,
        force: bool,
    ) -> Result<Staged> {
        let flow = &self.flow;
        let entity = view.entity;
        let mut out = Staged::default();
        let mut bad = Vec::new();
        let mut rows = rows.into_iter().peekable();
        let mut staged = Vec::with_capacity(STAGE_CHUNK.min(rows.len()));
        while rows.peek().is_some() {
            // Each row is serialised once, and dropped: the hash is taken from the bytes the
            // queue message carries.
            for mut row in rows.by_ref().take(STAGE_CHUNK) {
                // Read before the row is projected onto what the destination sees.
                let row_version = row.get("TimeStamp").and_then(Value::as_u64);
                let removed = row.get(derived::STATUS).and_then(Value::as_str) == Some("removed");
                if !removed {
                    if let Some(b) = check_row(ec, &row) {
                        bad.push(b);
                        continue;
                    }
                }
                let Some(key) = record_key(entity, &row) else {
                    continue;
                };
                let id = key.id();
                let (open, due) = if removed {
                    (false, None)
                } else {
                    let open = add_derived_for(flow, entity, &id, &mut row, self.today);
                    let due = calendar::due_to_keep(&row, open);
                    view.project(&mut row);
                    (open, due)
                };
                out.keys.push(id.clone());
                if open {
                    out.open.push(id.clone());
                }
                let json = RecordJson::seeded(&view.fingerprint, &row);
                staged.push((key, id, json, row_version, open, due));
            }
            let state_keys: Vec<StateKey> = staged
                .iter()
                .map(|(_, id, ..)| StateKey::new(flow.id.clone(), entity, id.clone()))
                .collect();
            let known: HashMap<StateKey, LastSent> = self
                .rt
                .state
                .last_sent(&state_keys)
                .await?
                .into_iter()
                .collect();
            for ((key, id, json, row_version, open, due), sk) in staged.drain(..).zip(state_keys) {
                if !force
                    && known
                        .get(&sk)
                        .is_some_and(|last| last.hash == json.hash && last.open == open)
                {
                    report.unchanged += 1;
                    continue;
                }
                let version = SourceVersion {
                    poll_seq: self.poll_seq,
                    row_version,
                };
                let RecordJson { json, hash } = json;
                let sent_hash = if force {
                    resync_hash(&hash, self.poll_seq)
                } else {
                    hash.clone()
                };
                let encoder = &self.encoder;
                let write = |out: &mut Vec<u8>| {
                    encoder.encode_into(out, entity, &key, version, &sent_hash, &json);
                };
                let mark = SentMark {
                    key: sk,
                    version,
                    hash,
                    open,
                    due,
                    polled_at: self.polled_at,
                };
                pending.push(mark, entity, &id, version, &sent_hash, write);
            }
            if pending.sealed_events() >= FLUSH_EVENTS {
                self.flush(pending, report).await?;
            }
        }
        report.source_errors += bad.len();
        self.record_bad_rows(&bad).await?;
        Ok(out)
    }

    /// Sends the sealed batches, then records their events as sent (which audits them).
    async fn flush(&self, pending: &mut Pending, report: &mut EntityPollReport) -> Result<()> {
        let sealed = pending.take_sealed();
        if sealed.is_empty() {
            return Ok(());
        }
        let mut batches = Vec::with_capacity(sealed.len());
        let mut marks = Vec::new();
        for (batch, tags) in sealed {
            batches.push(batch);
            marks.extend(tags);
        }
        report.queued += marks.len();
        if self.dry_run {
            return Ok(());
        }
        report.messages += batches.len();
        // The fence: with less than half of its lease left the poll renews before it sends,
        // and stops if another poll took the flow. With more left, no other poll can hold it.
        self.renew_if_due().await?;
        self.rt.queue.send_encoded(batches).await?;
        // The marks are the `queued` audit entries too (see `RecordStateStore::mark_sent`).
        self.rt.state.mark_sent(&marks).await?;
        Ok(())
    }
}

impl EntityPollReport {
    /// Adds the counts of `other` (a part of this entity's poll).
    fn absorb(&mut self, other: EntityPollReport) {
        self.rows_read += other.rows_read;
        self.queued += other.queued;
        self.unchanged += other.unchanged;
        self.messages += other.messages;
        self.source_errors += other.source_errors;
        self.out_of_scope += other.out_of_scope;
        self.calendar += other.calendar;
        self.removed += other.removed;
        self.resent_unapplied += other.resent_unapplied;
        self.checkpointed |= other.checkpointed;
    }
}
