//! One poll of a flow.
//!
//! Under the flow's lease, for each entity in order (masters first): build the change filter
//! from the watermark, read page by page, derive status and aging, hash each record once, drop
//! records whose hash equals the last one sent (one batched state read per page), pack the rest
//! into change batches, send them, record what was sent (the sent marks are the `queued` audit
//! entries), and only then advance the watermark. A crash anywhere before the watermark save
//! re-polls the same window; the queue's dedup ids and the sinks' version checks absorb the
//! repeats.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Days, NaiveDate, Utc};
use mlc_core::config::{ChangeDetection, EntityConfig};
use mlc_core::entity::derived;
use mlc_core::event::{BatchPacker, EventEncoder, RecordJson};
use mlc_core::ports::{Source, SourceError};
use mlc_core::query::{Filter, Literal, Op, PageCursor, SourcePage, SourceQuery};
use mlc_core::state::{LastSent, SentMark, StateKey};
use mlc_core::view::DestinationView;
use mlc_core::{Entity, Lease, Record, SourceVersion, Watermark, WatermarkValue};
use serde::Serialize;
use serde_json::Value;
use tracing::{info, warn};

use crate::children;
use crate::derive::{add_derived_for, balance_field, derivation_inputs, record_key};
use crate::error::{EngineError, Result};
use crate::runtime::FlowRuntime;

/// Events in sealed queue batches that trigger a flush (send, then record as sent): with the
/// open batch, what a poll buffers for the queue is about this many events' JSON (≈ 0.7 MB),
/// however many rows change.
const FLUSH_EVENTS: usize = 1_000;
/// Rows serialised, hashed and checked against record state together: one state read per
/// chunk, and a chunk's serialised rows are all that waits for that read.
const STAGE_CHUNK: usize = 1_000;
/// Keys fetched per by-key query (vanished open items, master lookups).
const KEYS_PER_QUERY: usize = 50;

/// Master records read during one poll: per master entity, per key identity, the looked-up
/// columns' values (nulls for a key SYSPRO does not have).
type LookupCache = HashMap<Entity, HashMap<String, Vec<Value>>>;

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
}

/// Options of one poll.
#[derive(Debug, Clone, Copy, Default)]
pub struct PollOptions {
    /// Read and compare only: send nothing, record nothing, keep the watermark.
    pub dry_run: bool,
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
    let mut poll = PollRun {
        rt,
        source,
        polled_at: now,
        today: rt.clock.today(flow.tz()),
        dry_run: opts.dry_run,
        encoder: EventEncoder::new(&flow.id, &lease.poll_id(), now),
        lease,
    };
    let result = poll.run().await;
    let finished = result.is_ok() && !opts.dry_run;
    if let Err(e) = rt
        .watermarks
        .release_lease(&poll.lease, finished, rt.clock.now())
        .await
    {
        warn!(flow = %flow.id, error = %e, "releasing the lease failed; it lapses at its expiry");
    }
    result
}

struct PollRun<'a> {
    rt: &'a FlowRuntime,
    source: &'a dyn Source,
    lease: Lease,
    polled_at: DateTime<Utc>,
    today: NaiveDate,
    dry_run: bool,
    encoder: EventEncoder,
}

/// Changes staged for the queue, written into batch bodies already; each event's tag is its
/// sent mark.
type Pending = BatchPacker<SentMark>;

impl PollRun<'_> {
    async fn run(&mut self) -> Result<PollReport> {
        let flow = self.rt.flow.clone();
        let mut report = PollReport {
            flow: flow.id.clone(),
            poll_id: self.lease.poll_id(),
            ..Default::default()
        };
        for ec in &flow.entities {
            let r = self.poll_entity(ec).await?;
            info!(flow = %flow.id, entity = %ec.entity, rows = r.rows_read, queued = r.queued, "entity polled");
            report.entities.push(r);
        }
        Ok(report)
    }

    fn source_err(&self, entity: Entity, source: SourceError) -> EngineError {
        EngineError::Source {
            flow: self.rt.flow.id.clone(),
            entity: entity.to_string(),
            source,
        }
    }

    async fn renew_if_due(&mut self) -> Result<()> {
        let now = self.rt.clock.now();
        let half = chrono::Duration::from_std(self.rt.lease_ttl / 2).unwrap_or_default();
        if self.lease.expires_at - now < half {
            self.lease = self
                .rt
                .watermarks
                .renew_lease(&self.lease, self.rt.lease_ttl, now)
                .await?;
        }
        Ok(())
    }

    /// Columns to read: keys, the columns the destination reads, derivation inputs, the date
    /// field and `TimeStamp`. Any column the server has may be named (the reader checks them
    /// against `$metadata`).
    fn select(ec: &EntityConfig, view: &DestinationView, with_rowversion: bool) -> Vec<String> {
        let entity = ec.entity;
        let mut set: BTreeSet<String> = entity.key_fields().iter().map(|s| s.to_string()).collect();
        set.extend(view.columns().map(str::to_string));
        set.extend(derivation_inputs(entity).iter().map(|f| f.to_string()));
        if let Some(d) = &ec.date_field {
            set.insert(d.clone());
        }
        if with_rowversion {
            set.insert("TimeStamp".into());
        }
        set.into_iter().collect()
    }

    /// Master-record lookups the destination reads (`Customer.Name`,
    /// `Supplier.SupplierName`): (master entity, key column on the row, master columns).
    fn lookups(view: &DestinationView) -> Vec<(Entity, &'static str, Vec<String>)> {
        let mut out: Vec<(Entity, &'static str, Vec<String>)> = Vec::new();
        for (prefix, col) in view.lookups() {
            let (master, key_col) = match prefix {
                "Customer" if view.entity != Entity::ArCustomer => (Entity::ArCustomer, "Customer"),
                "Supplier" if view.entity != Entity::ApSupplier => (Entity::ApSupplier, "Supplier"),
                _ => continue,
            };
            match out.iter_mut().find(|(m, ..)| *m == master) {
                Some((_, _, cols)) if !cols.iter().any(|c| c == col) => cols.push(col.to_string()),
                Some(_) => {}
                None => out.push((master, key_col, vec![col.to_string()])),
            }
        }
        out
    }

    async fn poll_entity(&mut self, ec: &EntityConfig) -> Result<EntityPollReport> {
        let entity = ec.entity;
        let flow_id = self.rt.flow.id.clone();
        let mut report = EntityPollReport {
            entity: entity.to_string(),
            ..Default::default()
        };
        let stored = self.rt.watermarks.load(&flow_id, entity).await?;
        let mark = stored
            .as_ref()
            .map(|w| w.value.clone())
            .unwrap_or(WatermarkValue::Empty);

        let mut strategy = ec.change_detection;
        let has_rv = if strategy == ChangeDetection::Rowversion {
            self.source
                .has_row_version(entity)
                .await
                .map_err(|e| self.source_err(entity, e))?
        } else {
            false
        };
        if strategy == ChangeDetection::Rowversion && !has_rv {
            warn!(flow = %flow_id, entity = %entity, "no TimeStamp column exposed: falling back to a hash-diffed full scan");
            strategy = ChangeDetection::FullScan;
        }

        let view = DestinationView::of(&self.rt.flow, ec);
        // A mapping the entity was not read under yet: read it whole once, so every record
        // (not only the ones SYSPRO changes next) reaches the destination in its new shape.
        let remapped = stored
            .as_ref()
            .is_some_and(|w| w.mapping.as_deref() != Some(view.fingerprint.as_str()));
        if remapped {
            info!(flow = %flow_id, entity = %entity, "mapping changed since the last poll: reading the whole entity once");
        }
        let filter = match (strategy, &mark) {
            _ if remapped => None,
            (ChangeDetection::Rowversion, WatermarkValue::RowVersion(rv)) => {
                Some(Filter::cmp("TimeStamp", Op::Gt, Literal::RowVersion(*rv)))
            }
            (ChangeDetection::Rowversion, WatermarkValue::RowVersionLagged { bound, .. }) => Some(
                Filter::cmp("TimeStamp", Op::Gt, Literal::RowVersion(*bound)),
            ),
            (ChangeDetection::DateWindow, WatermarkValue::Date(d)) => {
                let from = d
                    .checked_sub_days(Days::new(u64::from(ec.overlap_days)))
                    .unwrap_or(*d);
                let field = ec.date_field.clone().unwrap_or_default();
                Some(Filter::cmp(field, Op::Ge, Literal::Date(from)))
            }
            (ChangeDetection::OpenItems, _) => {
                balance_field(entity).map(|f| Filter::cmp(f, Op::Ne, Literal::Num(0.0)))
            }
            _ => None,
        };

        let query = SourceQuery {
            entity,
            fields: Self::select(ec, &view, has_rv),
            filter,
            page_size: self.rt.flow.syspro.page_size,
        };
        let lookups = Self::lookups(&view);
        let mut names: LookupCache = HashMap::new();

        let mut max_rv: Option<u64> = None;
        let mut max_date: Option<NaiveDate> = None;
        let mut seen_open: HashSet<String> = HashSet::new();
        let track_vanished = strategy == ChangeDetection::OpenItems;
        // Rowversion polls also ask the child tables what changed since the same bound.
        let child_bound = match (strategy, &mark) {
            _ if remapped || children::child_tables(&view).is_empty() => None,
            (ChangeDetection::Rowversion, WatermarkValue::RowVersionLagged { bound, .. }) => {
                Some(*bound)
            }
            (ChangeDetection::Rowversion, WatermarkValue::RowVersion(rv)) => Some(*rv),
            _ => None,
        };
        let mut seen_parents: HashSet<String> = HashSet::new();

        let mut pending: Pending = BatchPacker::new(
            &flow_id,
            &self.rt.flow.stream_for(entity),
            self.rt.settings.max_message_bytes,
            self.rt.settings.max_batch_records,
        );
        self.renew_if_due().await?;
        let mut page = self
            .read_with_lookups(&query, None, &lookups, &view, &mut names)
            .await?;
        loop {
            report.rows_read += page.rows.len();
            let rows = std::mem::take(&mut page.rows);
            for row in &rows {
                if child_bound.is_some() {
                    seen_parents.extend(record_key(entity, row).map(|k| k.id()));
                }
                if let Some(Value::Number(n)) = row.get("TimeStamp") {
                    if let Some(v) = n.as_u64() {
                        max_rv = Some(max_rv.map_or(v, |m| m.max(v)));
                    }
                }
                if let (ChangeDetection::DateWindow, Some(df)) = (strategy, &ec.date_field) {
                    if let Some(d) = row
                        .get(df)
                        .and_then(Value::as_str)
                        .and_then(mlc_core::invoice::parse_business_date)
                    {
                        max_date = Some(max_date.map_or(d, |m| m.max(d)));
                    }
                }
            }
            self.renew_if_due().await?;
            // SYSPRO produces the next page, and answers its master lookups, while this one is
            // hashed, serialised and written: the two overlap instead of taking turns. Only the
            // fetch side calls SYSPRO, one call after the other, so the source never sees two
            // calls at once.
            let next = page.next.take();
            let this = &*self;
            let names = &mut names;
            let fetch = async {
                let Some(cursor) = &next else {
                    return Ok(None);
                };
                this.read_with_lookups(&query, Some(cursor), &lookups, &view, names)
                    .await
                    .map(Some)
            };
            let work = async {
                // The request for the next page is only queued when `fetch` is first polled:
                // the HTTP connection task writes it when this task yields. Yield once before
                // the CPU-bound staging, or SYSPRO would hear of the request only at the first
                // store call, half a page later, and the overlap would be lost.
                tokio::task::yield_now().await;
                let keys = this
                    .stage_rows(&view, rows, &mut pending, &mut report)
                    .await?;
                Ok::<_, EngineError>(keys)
            };
            let (fetched, keys) = tokio::join!(fetch, work);
            let keys = keys?;
            if track_vanished {
                seen_open.extend(keys);
            }
            match fetched? {
                Some(p) => page = p,
                None => break,
            }
        }

        if track_vanished {
            // Keys open last time and absent now were paid, reversed or deleted: fetch them by key.
            let previously_open = self.rt.state.open_keys(&flow_id, entity).await?;
            let vanished: Vec<String> = previously_open
                .into_iter()
                .filter(|k| !seen_open.contains(k))
                .collect();
            for chunk in vanished.chunks(KEYS_PER_QUERY) {
                let found = self
                    .read_keys(
                        &query,
                        chunk,
                        &lookups,
                        &view,
                        &mut names,
                        &mut pending,
                        &mut report,
                    )
                    .await?;
                // Gone from SYSPRO altogether: the destination record is marked, never deleted.
                let removed: Vec<Record> = chunk
                    .iter()
                    .filter(|k| !found.contains(*k))
                    .map(|k| removed_record(entity, k))
                    .collect();
                if !removed.is_empty() {
                    self.stage_rows(&view, removed, &mut pending, &mut report)
                        .await?;
                }
            }
        }
        if let Some(bound) = child_bound {
            // A line or GRN changed under a purchase order SYSPRO did not touch: re-read it.
            let (parents, child_rv) =
                children::changed_parents(self.source, &view, bound, query.page_size)
                    .await
                    .map_err(|e| self.source_err(entity, e))?;
            if let Some(v) = child_rv {
                max_rv = Some(max_rv.map_or(v, |m| m.max(v)));
            }
            let todo: Vec<String> = parents
                .into_iter()
                .filter(|p| !seen_parents.contains(p))
                .collect();
            for chunk in todo.chunks(KEYS_PER_QUERY) {
                self.read_keys(
                    &query,
                    chunk,
                    &lookups,
                    &view,
                    &mut names,
                    &mut pending,
                    &mut report,
                )
                .await?;
            }
        }
        pending.seal();
        self.flush(&mut pending, &mut report).await?;
        if self.dry_run {
            return Ok(report);
        }

        // Only now, with every batch accepted by the queue, does the watermark move.
        let value = match strategy {
            ChangeDetection::Rowversion => {
                let prev_seen = match &mark {
                    WatermarkValue::RowVersionLagged { seen, .. } => Some(*seen),
                    WatermarkValue::RowVersion(v) => Some(*v),
                    _ => None,
                };
                let seen = max_rv.max(prev_seen).unwrap_or(0);
                // Filter next time on the previous poll's high mark (see RowVersionLagged).
                let bound = prev_seen.unwrap_or(0).min(seen);
                WatermarkValue::RowVersionLagged { bound, seen }
            }
            ChangeDetection::DateWindow => {
                let prev = match &mark {
                    WatermarkValue::Date(d) => Some(*d),
                    _ => None,
                };
                match max_date.max(prev) {
                    Some(d) => WatermarkValue::Date(d),
                    None => WatermarkValue::Empty,
                }
            }
            ChangeDetection::OpenItems | ChangeDetection::FullScan => {
                WatermarkValue::Rescanned(self.today)
            }
        };
        let wm = Watermark {
            flow: flow_id.clone(),
            entity,
            value,
            version: stored.map(|w| w.version).unwrap_or(0) + 1,
            poll_id: self.lease.poll_id(),
            updated_at: self.rt.clock.now(),
            mapping: Some(view.fingerprint.clone()),
        };
        self.rt.watermarks.save(&wm).await?;
        Ok(report)
    }

    /// Reads the rows of `keys` (identities) with `query`'s columns and stages them; returns
    /// the identities SYSPRO still has.
    #[allow(clippy::too_many_arguments)]
    async fn read_keys(
        &self,
        query: &SourceQuery,
        keys: &[String],
        lookups: &[(Entity, &'static str, Vec<String>)],
        view: &DestinationView,
        names: &mut LookupCache,
        pending: &mut Pending,
        report: &mut EntityPollReport,
    ) -> Result<HashSet<String>> {
        let entity = query.entity;
        let parts: Vec<Vec<String>> = keys
            .iter()
            .map(|k| k.split('|').map(str::to_string).collect())
            .collect();
        let by_key = SourceQuery {
            entity,
            fields: query.fields.clone(),
            filter: Some(Filter::keys(entity, &parts)),
            page_size: query.page_size,
        };
        let mut found: HashSet<String> = HashSet::new();
        let mut cursor = None;
        loop {
            let page = self
                .read_with_lookups(&by_key, cursor.as_ref(), lookups, view, names)
                .await?;
            report.rows_read += page.rows.len();
            found.extend(
                page.rows
                    .iter()
                    .filter_map(|r| record_key(entity, r))
                    .map(|k| k.id()),
            );
            self.stage_rows(view, page.rows, pending, report).await?;
            match page.next {
                Some(n) => cursor = Some(n),
                None => return Ok(found),
            }
        }
    }

    /// One page of `query`, its master lookups filled.
    async fn read_with_lookups(
        &self,
        query: &SourceQuery,
        cursor: Option<&PageCursor>,
        lookups: &[(Entity, &'static str, Vec<String>)],
        view: &DestinationView,
        cache: &mut LookupCache,
    ) -> Result<SourcePage> {
        let mut page = self
            .source
            .read_page(query, cursor)
            .await
            .map_err(|e| self.source_err(query.entity, e))?;
        for l in lookups {
            self.fill_lookups(l, &mut page.rows, cache).await?;
        }
        children::fill(self.source, view, &mut page.rows, query.page_size)
            .await
            .map_err(|e| self.source_err(query.entity, e))?;
        Ok(page)
    }

    /// Fills `Master.Column` fields of rows from their master records, one query per 50 keys,
    /// cached for the whole poll (the values trimmed once, when cached).
    async fn fill_lookups(
        &self,
        (master, key_col, cols): &(Entity, &'static str, Vec<String>),
        rows: &mut [Record],
        cache: &mut LookupCache,
    ) -> Result<()> {
        let prefix = *key_col;
        let known = cache.entry(*master).or_default();
        let missing: BTreeSet<String> = rows
            .iter()
            .filter_map(|r| r.get(prefix).and_then(Value::as_str))
            .map(str::trim_end)
            .filter(|c| !known.contains_key(*c))
            .map(str::to_string)
            .collect();
        let missing: Vec<String> = missing.into_iter().collect();
        let mut fields: Vec<String> = vec![prefix.to_string()];
        fields.extend(cols.iter().cloned());
        for chunk in missing.chunks(KEYS_PER_QUERY) {
            let parts: Vec<Vec<String>> = chunk.iter().map(|c| vec![c.clone()]).collect();
            let q = SourceQuery {
                entity: *master,
                fields: fields.clone(),
                filter: Some(Filter::keys(*master, &parts)),
                page_size: self.rt.flow.syspro.page_size,
            };
            let mut cursor = None;
            loop {
                let page = self
                    .source
                    .read_page(&q, cursor.as_ref())
                    .await
                    .map_err(|e| self.source_err(*master, e))?;
                for r in page.rows {
                    if let Some(k) = r.get(prefix).and_then(Value::as_str) {
                        let values = cols
                            .iter()
                            .map(|c| match r.get(c) {
                                Some(Value::String(s)) => Value::String(s.trim().to_string()),
                                Some(v) => v.clone(),
                                None => Value::Null,
                            })
                            .collect();
                        known.insert(k.trim_end().to_string(), values);
                    }
                }
                match page.next {
                    Some(n) => cursor = Some(n),
                    None => break,
                }
            }
            // Keys SYSPRO does not know get nulls, and are not asked again.
            for c in chunk {
                known
                    .entry(c.clone())
                    .or_insert_with(|| vec![Value::Null; cols.len()]);
            }
        }
        let names: Vec<String> = cols.iter().map(|c| format!("{prefix}.{c}")).collect();
        for r in rows.iter_mut() {
            let Some(values) = r
                .get(prefix)
                .and_then(Value::as_str)
                .and_then(|k| known.get(k.trim_end()))
            else {
                continue;
            };
            for (name, v) in names.iter().zip(values) {
                r.insert(name.clone(), v.clone());
            }
        }
        Ok(())
    }

    /// Turns rows into events, dropping those whose hash equals the last one sent, a chunk at
    /// a time; flushes whenever enough batches are sealed. Returns the identities of rows that
    /// are open.
    async fn stage_rows(
        &self,
        view: &DestinationView,
        rows: Vec<Record>,
        pending: &mut Pending,
        report: &mut EntityPollReport,
    ) -> Result<Vec<String>> {
        let flow = &self.rt.flow;
        let entity = view.entity;
        let mut open_keys = Vec::new();
        let mut rows = rows.into_iter().peekable();
        let mut staged = Vec::with_capacity(STAGE_CHUNK.min(rows.len()));
        while rows.peek().is_some() {
            // Each row is serialised once, and dropped: the hash is taken from the bytes the
            // queue message carries.
            for mut row in rows.by_ref().take(STAGE_CHUNK) {
                // Read before the row is projected onto what the destination sees.
                let row_version = row.get("TimeStamp").and_then(Value::as_u64);
                let Some(key) = record_key(entity, &row) else {
                    warn!(flow = %flow.id, entity = %entity, "row without its key columns: skipped");
                    continue;
                };
                let id = key.id();
                let open = if row.get(derived::STATUS).and_then(Value::as_str) == Some("removed") {
                    false
                } else {
                    let open = add_derived_for(flow, entity, &id, &mut row, self.today);
                    view.project(&mut row);
                    open
                };
                if open {
                    open_keys.push(id.clone());
                }
                let json = RecordJson::seeded(&view.fingerprint, &row);
                staged.push((key, id, json, row_version, open));
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
            for ((key, id, json, row_version, open), sk) in staged.drain(..).zip(state_keys) {
                if known
                    .get(&sk)
                    .is_some_and(|last| last.hash == json.hash && last.open == open)
                {
                    report.unchanged += 1;
                    continue;
                }
                let version = SourceVersion {
                    poll_seq: self.lease.poll_seq,
                    row_version,
                };
                let RecordJson { json, hash } = json;
                let encoder = &self.encoder;
                let write = |out: &mut Vec<u8>| {
                    encoder.encode_into(out, entity, &key, version, &hash, &json);
                };
                let mark = SentMark {
                    key: sk,
                    version,
                    hash: hash.clone(),
                    open,
                    polled_at: self.polled_at,
                };
                pending.push(mark, entity, &id, version, &hash, write);
            }
            if pending.sealed_events() >= FLUSH_EVENTS {
                self.flush(pending, report).await?;
            }
        }
        Ok(open_keys)
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
        self.rt.queue.send_encoded(batches).await?;
        // The marks are the `queued` audit entries too (see `RecordStateStore::mark_sent`).
        self.rt.state.mark_sent(&marks).await?;
        Ok(())
    }
}

/// A record for a key that no longer exists in SYSPRO: its key columns and `_Status = removed`.
fn removed_record(entity: Entity, key: &str) -> Record {
    let mut r = Record::new();
    for (f, part) in entity.key_fields().iter().zip(key.split('|')) {
        r.insert((*f).to_string(), Value::String(part.to_string()));
    }
    r.insert(derived::STATUS.into(), Value::String("removed".into()));
    r
}
