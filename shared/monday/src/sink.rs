//! The Monday.com sink: a board's records packed into one GraphQL request as aliased
//! mutations, within the board's mutation budget, the request budget and the complexity the
//! server reports; throttles hand the rest back with the server's delay.
//!
//! Per call: group records by board → check the board's columns against the mapping (once,
//! cached) → under the board's lock, repeatedly: take budget, find missing item ids
//! (`items_page_by_column_values`, exact match client-side), send one packed request with an
//! `Idempotency-Key` derived from its (flow, key, version, op) set, map each alias back to its
//! record. 423 / 5xx / timeouts are retried inside the call with the same key.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use mlc_core::config::{
    Destination, EntityConfig, FieldMapping, FlowConfig, MondayConnection, MondayTarget,
};
use mlc_core::mapping;
use mlc_core::ports::{Budget, PendingWrite, RecordStateStore, Secrets, Sink, SinkError};
use mlc_core::preview::Preview;
use mlc_core::state::StateKey;
use mlc_core::{Clock, Entity, ErrorLink, Failure, RecordOutcome};

use crate::client::{Answer, MondayClient, TransportError};
use crate::error::{MondayError, Result};
use crate::limiter::{Grant, Limiter, LimiterConfig};
use crate::request_builder::{self as rb, ItemColumns, WriteOp, MUTATION_COMPLEXITY};
use crate::retry::{self, ErrorClass, GqlError};

mod preview;

/// Tuning of the sink. Defaults suit production; tests shorten the window and backoff.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SinkOptions {
    /// Length of a budget window (60 s: "per minute"). Scale it with the caps in tests.
    pub window: Duration,
    /// Most mutations in one request. Default 40: the default per-board cap, so a board's whole
    /// minute goes out in one request (one request per board per minute, 0.025 requests per
    /// item); 40 × ≈10,000 complexity = 400k, far below the 5M per-query limit, and small
    /// enough that a timed-out request is cheap to replay under its `Idempotency-Key`.
    pub max_per_request: usize,
    /// Attempts of one request on 423 / 5xx / timeouts / 409 before handing records back.
    pub transient_attempts: u32,
    /// Backoff base for those retries (full jitter, doubling).
    pub backoff_base: Duration,
    /// Backoff ceiling.
    pub backoff_cap: Duration,
    /// Writes don't start in the last part of a window (per mille of the window), so a request
    /// lands in the window its budget was counted in.
    pub tail_guard_permille: u32,
}

impl Default for SinkOptions {
    fn default() -> Self {
        SinkOptions {
            window: Duration::from_secs(60),
            max_per_request: 40,
            transient_attempts: 4,
            backoff_base: Duration::from_millis(250),
            backoff_cap: Duration::from_secs(8),
            tail_guard_permille: 20,
        }
    }
}

/// A board's columns and groups, as discovered.
#[derive(Debug, Clone, Default)]
pub struct BoardInfo {
    /// Board name.
    pub name: String,
    /// Column id → (title, type).
    pub columns: HashMap<String, (String, String)>,
    /// Group ids.
    pub groups: HashSet<String>,
}

#[derive(Debug, Clone)]
enum Discovered {
    Found(BoardInfo),
    Missing,
}

/// One record ready to write.
#[derive(Debug, Clone)]
struct Prepared {
    idx: usize,
    /// The value of the id column that identifies the item (the invoice's key for payments).
    target: String,
    /// Where a previously applied item id may be stored.
    state_key: StateKey,
    item_id: Option<String>,
    may_create: bool,
    /// The key is gone from SYSPRO: only the removal columns change, never the name.
    removal: bool,
    item_name: String,
    group_id: Option<String>,
    values: Map<String, Value>,
    key: String,
    version: String,
}

/// Whole-call conditions that end a board's loop.
enum Stop {
    Auth(String),
    Daily(String),
}

/// The sink.
pub struct MondaySink {
    flow: FlowConfig,
    conn: MondayConnection,
    client: MondayClient,
    limiter: Limiter,
    budget: Arc<dyn Budget>,
    clock: Arc<dyn Clock>,
    state: Arc<dyn RecordStateStore>,
    opts: SinkOptions,
    board_locks: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    boards: tokio::sync::Mutex<HashMap<String, Discovered>>,
}

impl std::fmt::Debug for MondaySink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MondaySink")
            .field("flow", &self.flow.id)
            .finish_non_exhaustive()
    }
}

fn next_utc_midnight(now: DateTime<Utc>) -> DateTime<Utc> {
    let d = now.date_naive() + chrono::Days::new(1);
    d.and_hms_opt(0, 0, 0).map(|n| n.and_utc()).unwrap_or(now)
}

fn link(
    status: Option<u16>,
    e: Option<&GqlError>,
    message: &str,
    request_id: Option<&String>,
) -> ErrorLink {
    ErrorLink {
        status,
        code: e.and_then(|e| e.code.clone()),
        message: message.to_string(),
        request_id: request_id.cloned(),
    }
}

impl MondaySink {
    /// A sink for a Monday.com flow.
    pub fn new(
        flow: &FlowConfig,
        secrets: Arc<dyn Secrets>,
        http: reqwest::Client,
        clock: Arc<dyn Clock>,
        budget: Arc<dyn Budget>,
        state: Arc<dyn RecordStateStore>,
    ) -> Result<Self> {
        let conn = match &flow.destination {
            Destination::Monday(c) => c.clone(),
            _ => {
                return Err(MondayError::Config(format!(
                    "flow {}: destination is not monday",
                    flow.id
                )))
            }
        };
        if conn.mutations_per_board_per_minute == 0 || conn.requests_per_minute == 0 {
            return Err(MondayError::Config(format!(
                "flow {}: mutations_per_board_per_minute and requests_per_minute must be above 0",
                flow.id
            )));
        }
        let client = MondayClient::new(
            http,
            &conn.api_url,
            &conn.api_version,
            conn.token.clone(),
            secrets,
            Duration::from_secs(conn.timeout_secs.max(1)),
        )?;
        let opts = SinkOptions::default();
        let limiter = Limiter::new(
            budget.clone(),
            clock.clone(),
            Self::limiter_cfg(&conn, &opts),
        );
        Ok(MondaySink {
            flow: flow.clone(),
            conn,
            client,
            limiter,
            budget,
            clock,
            state,
            opts,
            board_locks: std::sync::Mutex::new(HashMap::new()),
            boards: tokio::sync::Mutex::new(HashMap::new()),
        })
    }

    fn limiter_cfg(conn: &MondayConnection, opts: &SinkOptions) -> LimiterConfig {
        LimiterConfig {
            window: opts.window,
            mutations_per_board: conn.mutations_per_board_per_minute,
            requests: conn.requests_per_minute,
            tail_guard_permille: opts.tail_guard_permille,
        }
    }

    /// Replaces the tuning (window length, pack size, backoff).
    pub fn with_options(mut self, opts: SinkOptions) -> Self {
        self.opts = SinkOptions {
            max_per_request: opts.max_per_request.max(1),
            ..opts
        };
        self.limiter = Limiter::new(
            self.budget.clone(),
            self.clock.clone(),
            Self::limiter_cfg(&self.conn, &self.opts),
        );
        self
    }

    /// The options in force.
    pub fn options(&self) -> SinkOptions {
        self.opts
    }

    fn board_lock(&self, board: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut m = self.board_locks.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(board.to_string()).or_default().clone()
    }

    fn targets(&self) -> Vec<(&EntityConfig, &MondayTarget)> {
        self.flow
            .entities
            .iter()
            .filter_map(|e| e.monday.as_ref().map(|t| (e, t)))
            .collect()
    }

    /// Posts with in-call retries of transient answers (same idempotency key each time).
    async fn post(
        &self,
        req: &rb::GraphqlRequest,
        key: Option<&str>,
    ) -> std::result::Result<Answer, (ErrorClass, ErrorLink)> {
        let mut last = ErrorLink::default();
        for attempt in 0..self.opts.transient_attempts.max(1) {
            if attempt > 0 {
                tokio::time::sleep(retry::backoff(
                    attempt,
                    self.opts.backoff_base,
                    self.opts.backoff_cap,
                ))
                .await;
            }
            match self.client.post(req, key).await {
                Err(TransportError::Secret(m)) => {
                    return Err((
                        ErrorClass::Auth,
                        ErrorLink {
                            message: m,
                            ..Default::default()
                        },
                    ))
                }
                Err(TransportError::NoAnswer(m)) => {
                    last = ErrorLink {
                        message: m,
                        ..Default::default()
                    };
                }
                Ok(a) => {
                    let st = a.meta.status;
                    let errs = retry::parse_errors(&a.body);
                    let first = errs.first();
                    let msg = first
                        .map(|e| e.message.clone())
                        .filter(|m| !m.is_empty())
                        .unwrap_or_else(|| format!("HTTP {st} {}", a.raw_excerpt.trim()));
                    let l = link(Some(st), first, &msg, a.meta.request_id.as_ref());
                    let class = if st == 200 {
                        None
                    } else if st == 401 || st == 403 {
                        Some(ErrorClass::Auth)
                    } else if st == 423 || st == 409 || st >= 500 {
                        Some(ErrorClass::Transient)
                    } else {
                        None
                    };
                    match class {
                        Some(ErrorClass::Auth) => {
                            self.client.invalidate_token().await;
                            return Err((ErrorClass::Auth, l));
                        }
                        Some(_) => last = l,
                        None => return Ok(a),
                    }
                }
            }
        }
        Err((ErrorClass::Transient, last))
    }

    /// Discovers the boards not yet known (one request for all of them).
    async fn discover(
        &self,
        boards: &[String],
    ) -> std::result::Result<(), (ErrorClass, ErrorLink, Option<Duration>)> {
        let mut known = self.boards.lock().await;
        let missing: Vec<String> = boards
            .iter()
            .filter(|b| !known.contains_key(*b))
            .cloned()
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let req = rb::board_schema(&missing);
        let a = self.post(&req, None).await.map_err(|(c, l)| (c, l, None))?;
        let errs = retry::parse_errors(&a.body);
        if let Some(e) = errs.first() {
            let class = retry::classify(a.meta.status, e);
            let l = link(
                Some(a.meta.status),
                Some(e),
                &e.message,
                a.meta.request_id.as_ref(),
            );
            let delay = retry::server_delay(Some(e), &a.meta);
            return Err((class, l, delay));
        }
        if a.meta.status != 200 {
            let l = link(
                Some(a.meta.status),
                None,
                &format!("HTTP {}", a.meta.status),
                a.meta.request_id.as_ref(),
            );
            let class = if a.meta.status == 429 {
                ErrorClass::Throttle
            } else {
                ErrorClass::Permanent
            };
            return Err((class, l, retry::server_delay(None, &a.meta)));
        }
        self.note_complexity(&a.body);
        let found = a
            .body
            .pointer("/data/boards")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for b in &missing {
            let info = found
                .iter()
                .find(|x| id_str(x.get("id")).as_deref() == Some(b.as_str()));
            let d = match info {
                None => Discovered::Missing,
                Some(x) => {
                    let mut bi = BoardInfo {
                        name: x
                            .get("name")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                        ..Default::default()
                    };
                    for c in x
                        .get("columns")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        if let Some(id) = id_str(c.get("id")) {
                            let title = c
                                .get("title")
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .to_string();
                            let ty = c
                                .get("type")
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .to_string();
                            bi.columns.insert(id, (title, ty));
                        }
                    }
                    for g in x
                        .get("groups")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        if let Some(id) = id_str(g.get("id")) {
                            bi.groups.insert(id);
                        }
                    }
                    Discovered::Found(bi)
                }
            };
            known.insert(b.clone(), d);
        }
        Ok(())
    }

    fn note_complexity(&self, body: &Value) {
        let c = body.pointer("/data/complexity");
        if let (Some(after), Some(reset)) = (
            c.and_then(|c| c.get("after")).and_then(Value::as_u64),
            c.and_then(|c| c.get("reset_in_x_seconds"))
                .and_then(Value::as_u64),
        ) {
            self.limiter.note_complexity(after, reset);
        }
    }

    /// Checks an entity's mapping against its board. `Err` is one clear message naming the
    /// flow, board and column.
    fn check_mapping(
        &self,
        ecfg: &EntityConfig,
        target: &MondayTarget,
        board: &Discovered,
    ) -> std::result::Result<(), String> {
        let flow = &self.flow.id;
        let b = &target.board_id;
        let info = match board {
            Discovered::Missing => {
                return Err(format!(
                    "flow {flow}, board {b}: board not found (or not visible to the token); entity {} cannot be written (id column {})",
                    ecfg.entity, target.id_column
                ))
            }
            Discovered::Found(i) => i,
        };
        match info.columns.get(&target.id_column) {
            None => return Err(format!("flow {flow}, board {b}, column {}: id column not found on the board", target.id_column)),
            Some((_, t)) if t != "text" => {
                return Err(format!(
                    "flow {flow}, board {b}, column {}: id column must be a text column, the board has {t}",
                    target.id_column
                ))
            }
            _ => {}
        }
        if let Some(g) = &target.group_id {
            if !info.groups.contains(g) {
                return Err(format!(
                    "flow {flow}, board {b}: group {g} not found on the board"
                ));
            }
        }
        for (col, rule) in &ecfg.mapping {
            let Some((_, ty)) = info.columns.get(col) else {
                return Err(format!(
                    "flow {flow}, board {b}, column {col}: column not found on the board"
                ));
            };
            if !rb::WRITABLE_TYPES.contains(&ty.as_str()) {
                return Err(format!("flow {flow}, board {b}, column {col}: column type {ty} is not one the connector writes"));
            }
            if let FieldMapping::Rule(r) = rule {
                if let Some(hint) = &r.column_type {
                    if hint != ty {
                        return Err(format!(
                            "flow {flow}, board {b}, column {col}: mapping writes a {hint} value but the column is {ty}"
                        ));
                    }
                }
                if !rb::kind_fits(r.kind, ty) {
                    return Err(format!(
                        "flow {flow}, board {b}, column {col}: mapping converts to {:?} which a {ty} column does not take",
                        r.kind
                    ));
                }
            }
        }
        Ok(())
    }

    /// Maps one record to its column values and name.
    fn prepare(
        &self,
        idx: usize,
        w: &PendingWrite,
        ecfg: &EntityConfig,
        t: &MondayTarget,
        info: &BoardInfo,
    ) -> std::result::Result<Option<Prepared>, Failure> {
        let flow = &self.flow.id;
        let b = &t.board_id;
        let ev = &w.event;
        // A record gone from SYSPRO writes only what the flow says a removal becomes.
        let removal =
            mapping::is_removed(&ev.record).then(|| mapping::removal_rules(&ecfg.mapping));
        let rules = removal.as_ref().unwrap_or(&ecfg.mapping);
        let mapped = mapping::apply(rules, &ev.record).map_err(|e| {
            Failure::permanent(format!(
                "flow {flow}, board {b}, column {}: {} (record {})",
                e.field,
                e.message,
                ev.label()
            ))
            .with_field(e.field.clone())
        })?;
        if removal.is_some() && mapped.is_empty() {
            return Ok(None);
        }
        let mut values = Map::new();
        for (col, v) in mapped {
            let ty = info
                .columns
                .get(&col)
                .map(|c| c.1.as_str())
                .unwrap_or("text");
            let shaped = rb::column_value(ty, &v).map_err(|m| {
                Failure::permanent(format!(
                    "flow {flow}, board {b}, column {col}: {m} (record {})",
                    ev.label()
                ))
                .with_field(col.clone())
            })?;
            values.insert(col, shaped);
        }
        let is_payment = ev.entity == Entity::ArInvoicePay;
        let key_id = ev.key.id();
        // A payment belongs to its invoice's item: the invoice key is the payment key without
        // its entry number. It updates that item and never creates one.
        let (target, state_key) = if is_payment {
            let parts = ev.key.parts();
            let inv = parts[..parts.len().saturating_sub(1).max(1)].join("|");
            (
                inv.clone(),
                StateKey::new(flow.clone(), Entity::ArInvoice, inv),
            )
        } else {
            (
                key_id.clone(),
                StateKey::new(flow.clone(), ev.entity, key_id.clone()),
            )
        };
        values.insert(t.id_column.clone(), Value::String(target.clone()));
        let mut name: String = mapping::render_template(&t.item_name, &ev.record)
            .trim()
            .chars()
            .take(255)
            .collect();
        if name.is_empty() {
            name = target.clone();
        }
        let item_id = if is_payment {
            None
        } else {
            w.prior.as_ref().and_then(|p| {
                let same_board = p.destination_ids.get("board_id").is_none_or(|x| x == b);
                p.destination_ids
                    .get("item_id")
                    .filter(|_| same_board)
                    .cloned()
            })
        };
        Ok(Some(Prepared {
            idx,
            target,
            state_key,
            item_id,
            may_create: !is_payment && removal.is_none(),
            removal: removal.is_some(),
            item_name: name,
            group_id: t.group_id.clone(),
            values,
            key: key_id,
            version: ev.version.to_string(),
        }))
    }

    /// Finds item ids for targets (exact match on the id column's text).
    async fn lookup(
        &self,
        board: &str,
        column: &str,
        targets: &[String],
    ) -> std::result::Result<HashMap<String, String>, (ErrorClass, ErrorLink, Option<Duration>)>
    {
        let items = self
            .fetch_items(
                board,
                column,
                targets,
                &[column.to_string()],
                ItemColumns::Text,
            )
            .await?;
        Ok(exact_matches(&items, column, targets)
            .into_iter()
            .filter_map(|(target, item)| Some((target, id_str(item.get("id"))?)))
            .collect())
    }

    /// The items whose id column holds one of `targets` (as the server matches:
    /// case-insensitively), with `columns` read as `read` says; every page, each page taking
    /// one request from the budget.
    async fn fetch_items(
        &self,
        board: &str,
        column: &str,
        targets: &[String],
        columns: &[String],
        read: ItemColumns,
    ) -> std::result::Result<Vec<Value>, (ErrorClass, ErrorLink, Option<Duration>)> {
        let mut items = Vec::new();
        let mut req =
            rb::lookup_items(board, column, targets, columns, read, rb::LOOKUP_PAGE_LIMIT);
        for _page in 0..20 {
            if let Grant::Wait(d) = self.limiter.take_request().await.map_err(port_err)? {
                return Err((
                    ErrorClass::Throttle,
                    ErrorLink {
                        message: "request budget spent".into(),
                        ..Default::default()
                    },
                    Some(d),
                ));
            }
            let a = self.post(&req, None).await.map_err(|(c, l)| (c, l, None))?;
            let errs = retry::parse_errors(&a.body);
            if let Some(e) = errs.first() {
                let class = retry::classify(a.meta.status, e);
                let l = link(
                    Some(a.meta.status),
                    Some(e),
                    &e.message,
                    a.meta.request_id.as_ref(),
                );
                return Err((class, l, retry::server_delay(Some(e), &a.meta)));
            }
            if a.meta.status == 429 {
                let l = link(Some(429), None, "throttled", a.meta.request_id.as_ref());
                return Err((ErrorClass::Throttle, l, retry::server_delay(None, &a.meta)));
            }
            self.note_complexity(&a.body);
            let page = a
                .body
                .pointer("/data/items_page_by_column_values")
                .or_else(|| a.body.pointer("/data/next_items_page"))
                .cloned()
                .unwrap_or(Value::Null);
            items.extend(
                page.get("items")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
            );
            match page.get("cursor").and_then(Value::as_str) {
                Some(c) if !c.is_empty() => {
                    req = rb::next_items(c, columns, read, rb::LOOKUP_PAGE_LIMIT)
                }
                _ => break,
            }
        }
        Ok(items)
    }

    fn idempotency_key(&self, chunk: &[(Prepared, WriteOp)]) -> String {
        let mut parts: Vec<String> = chunk
            .iter()
            .map(|(p, op)| {
                let o = match op {
                    WriteOp::Create { .. } => "create".to_string(),
                    WriteOp::Update { item_id, .. } => format!("update:{item_id}"),
                };
                format!("{}\u{1f}{}\u{1f}{}", p.key, p.version, o)
            })
            .collect();
        parts.sort();
        let mut h = Sha256::new();
        h.update(self.flow.id.as_bytes());
        for p in parts {
            h.update([0x1e]);
            h.update(p.as_bytes());
        }
        format!("mlc-{}", hex::encode(&h.finalize()[..16]))
    }

    /// Writes one board's records, in order, under the board's lock.
    async fn write_board(
        &self,
        board: &str,
        batch: &[PendingWrite],
        mut records: Vec<Prepared>,
        out: &mut [Option<RecordOutcome>],
    ) -> Option<Stop> {
        let lock = self.board_lock(board);
        let _guard = lock.lock().await;
        let flow = self.flow.id.clone();
        let id_column = records
            .first()
            .and_then(|p| self.flow.entity(batch[p.idx].event.entity))
            .and_then(|e| e.monday.as_ref())
            .map(|t| t.id_column.clone())
            .unwrap_or_default();

        // Item ids the state store knows for records that came without one.
        let need: Vec<StateKey> = records
            .iter()
            .filter(|p| p.item_id.is_none() && (batch[p.idx].prior.is_none() || !p.may_create))
            .map(|p| p.state_key.clone())
            .collect();
        if !need.is_empty() {
            if let Ok(states) = self.state.get_many(&need).await {
                let m: HashMap<StateKey, String> = states
                    .into_iter()
                    .filter_map(|(k, s)| {
                        let same_board =
                            s.destination_ids.get("board_id").is_none_or(|x| x == board);
                        s.destination_ids
                            .get("item_id")
                            .filter(|_| same_board)
                            .cloned()
                            .map(|i| (k, i))
                    })
                    .collect();
                for p in records.iter_mut().filter(|p| p.item_id.is_none()) {
                    p.item_id = m.get(&p.state_key).cloned();
                }
            }
        }

        let mut learned: HashMap<String, String> = HashMap::new();
        let mut pending: VecDeque<Prepared> = records.drain(..).collect();
        let retry_rest = |pending: &mut VecDeque<Prepared>,
                          out: &mut [Option<RecordOutcome>],
                          after: Option<Duration>,
                          f: &Failure| {
            for p in pending.drain(..) {
                out[p.idx] = Some(RecordOutcome::retry(after, f.clone()));
            }
        };

        while !pending.is_empty() {
            if let Some(w) = self.limiter.complexity_wait(MUTATION_COMPLEXITY) {
                let f = Failure::deferred(format!(
                    "flow {flow}, board {board}: complexity budget low, waiting for its reset"
                ));
                retry_rest(&mut pending, out, Some(retry::with_jitter(w)), &f);
                break;
            }
            let want = pending.len().min(self.opts.max_per_request) as u32;
            let want = self
                .limiter
                .complexity_allows(MUTATION_COMPLEXITY, want)
                .max(1);
            let granted = match self.limiter.take_mutations(board, want).await {
                Ok(Grant::Granted(n)) => n as usize,
                Ok(Grant::Wait(d)) => {
                    // Two reasons to wait, told apart for the audit trail.
                    let why = if self.limiter.window_ending() {
                        "the budget window is about to end (a write sent now could be counted \
                         in the next one): waiting for it"
                            .to_string()
                    } else {
                        format!(
                            "mutation budget of {} per window spent",
                            self.conn.mutations_per_board_per_minute
                        )
                    };
                    let f = Failure::deferred(format!("flow {flow}, board {board}: {why}"));
                    retry_rest(&mut pending, out, Some(d), &f);
                    break;
                }
                Err(e) => {
                    let f = Failure::retryable(format!(
                        "flow {flow}, board {board}: budget store failed: {e}"
                    ));
                    retry_rest(&mut pending, out, None, &f);
                    break;
                }
            };
            // The chunk: up to `granted` records, never two for one item (a second write to an
            // item created in the same request would not know its id yet).
            let mut chunk: Vec<Prepared> = Vec::new();
            let mut targets: HashSet<String> = HashSet::new();
            while chunk.len() < granted {
                match pending.front() {
                    Some(p) if !targets.contains(&p.target) => {
                        targets.insert(p.target.clone());
                        if let Some(p) = pending.pop_front() {
                            chunk.push(p);
                        }
                    }
                    _ => break,
                }
            }
            for p in chunk.iter_mut().filter(|p| p.item_id.is_none()) {
                p.item_id = learned.get(&p.target).cloned();
            }
            let unknown: Vec<String> = chunk
                .iter()
                .filter(|p| p.item_id.is_none())
                .map(|p| p.target.clone())
                .collect();
            if !unknown.is_empty() {
                match self.lookup(board, &id_column, &unknown).await {
                    Ok(found) => {
                        for p in chunk.iter_mut().filter(|p| p.item_id.is_none()) {
                            p.item_id = found.get(&p.target).cloned();
                        }
                    }
                    Err((class, l, delay)) => {
                        for p in chunk.into_iter().rev() {
                            pending.push_front(p);
                        }
                        match class {
                            ErrorClass::Auth => {
                                return Some(Stop::Auth(format!(
                                    "flow {flow}, board {board}: {}",
                                    l.message
                                )))
                            }
                            ErrorClass::Daily => return Some(Stop::Daily(l.message)),
                            ErrorClass::Permanent => {
                                let f = Failure::permanent(format!("flow {flow}, board {board}, column {id_column}: item lookup failed: {}", l.message)).with_link(l);
                                for p in pending.drain(..) {
                                    out[p.idx] = Some(RecordOutcome::Permanent(f.clone()));
                                }
                            }
                            _ => {
                                let f = Failure::retryable(format!(
                                    "flow {flow}, board {board}: item lookup failed: {}",
                                    l.message
                                ))
                                .with_link(l);
                                retry_rest(&mut pending, out, delay.map(retry::with_jitter), &f);
                            }
                        }
                        break;
                    }
                }
            }
            // Payments without an item wait for their invoice.
            let mut ops: Vec<(Prepared, WriteOp)> = Vec::new();
            for p in chunk {
                let op = match (&p.item_id, p.may_create) {
                    (Some(item), _) => {
                        let mut cv = p.values.clone();
                        if p.may_create && !p.removal {
                            cv.insert("name".into(), Value::String(p.item_name.clone()));
                        }
                        WriteOp::Update {
                            board_id: board.to_string(),
                            item_id: item.clone(),
                            column_values: cv,
                        }
                    }
                    (None, true) => WriteOp::Create {
                        board_id: board.to_string(),
                        group_id: p.group_id.clone(),
                        item_name: p.item_name.clone(),
                        column_values: p.values.clone(),
                    },
                    (None, false) if p.removal => {
                        // Never on the board: nothing to mark as removed.
                        out[p.idx] = Some(RecordOutcome::Unchanged {
                            destination_ids: BTreeMap::new(),
                        });
                        continue;
                    }
                    (None, false) => {
                        out[p.idx] = Some(RecordOutcome::retry(
                            Some(self.opts.window),
                            Failure::retryable(format!(
                                "flow {flow}, board {board}, column {id_column}: payment {} waits for its invoice {} (no item yet; payments never create items)",
                                p.key, p.target
                            )),
                        ));
                        continue;
                    }
                };
                ops.push((p, op));
            }
            if ops.is_empty() {
                continue;
            }
            match self.limiter.take_request().await {
                Ok(Grant::Granted(_)) => {}
                Ok(Grant::Wait(d)) => {
                    for (p, _) in ops.into_iter().rev() {
                        pending.push_front(p);
                    }
                    let f = Failure::deferred(format!(
                        "flow {flow}, board {board}: request budget spent"
                    ));
                    retry_rest(&mut pending, out, Some(d), &f);
                    break;
                }
                Err(e) => {
                    for (p, _) in ops.into_iter().rev() {
                        pending.push_front(p);
                    }
                    let f = Failure::retryable(format!(
                        "flow {flow}, board {board}: budget store failed: {e}"
                    ));
                    retry_rest(&mut pending, out, None, &f);
                    break;
                }
            }
            let key = self.idempotency_key(&ops);
            let only_ops: Vec<WriteOp> = ops.iter().map(|(_, o)| o.clone()).collect();
            let req = rb::packed_mutation(&only_ops);
            let sent_at = std::time::Instant::now();
            let posted = self.post(&req, Some(&key)).await;
            self.limiter.note_latency(sent_at.elapsed());
            let answer = match posted {
                Ok(a) => a,
                Err((class, l)) => {
                    for (p, _) in ops.into_iter().rev() {
                        pending.push_front(p);
                    }
                    if class == ErrorClass::Auth {
                        return Some(Stop::Auth(format!(
                            "flow {flow}, board {board}: {}",
                            l.message
                        )));
                    }
                    let f = Failure::retryable(format!(
                        "flow {flow}, board {board}: monday did not answer: {}",
                        l.message
                    ))
                    .with_link(l);
                    retry_rest(
                        &mut pending,
                        out,
                        Some(retry::with_jitter(self.opts.backoff_cap)),
                        &f,
                    );
                    break;
                }
            };
            match self.apply_answer(board, &answer, ops, &mut pending, &mut learned, out) {
                Ok(()) => {}
                Err(stop) => return Some(stop),
            }
        }
        None
    }

    /// Maps a mutation answer back to records. Records to try again are pushed back to the
    /// front of `pending` (bad-variable case) or handed back as `Retry` (throttles).
    fn apply_answer(
        &self,
        board: &str,
        a: &Answer,
        ops: Vec<(Prepared, WriteOp)>,
        pending: &mut VecDeque<Prepared>,
        learned: &mut HashMap<String, String>,
        out: &mut [Option<RecordOutcome>],
    ) -> std::result::Result<(), Stop> {
        let flow = &self.flow.id;
        self.note_complexity(&a.body);
        let errs = retry::parse_errors(&a.body);
        let data = a.body.get("data").filter(|d| d.is_object());
        let by_alias: HashMap<usize, &GqlError> = errs
            .iter()
            .filter_map(|e| {
                e.path_head
                    .as_deref()
                    .and_then(rb::alias_index)
                    .map(|i| (i, e))
            })
            .collect();
        let general: Option<&GqlError> = errs
            .iter()
            .find(|e| e.path_head.as_deref().and_then(rb::alias_index).is_none());
        let status = a.meta.status;

        // A variable problem names its variable (`$cv3`): that record is bad, the rest are
        // sent again (nothing executed).
        if data.is_none() {
            if let Some(e) = general {
                if let Some(i) = bad_variable_index(&e.message) {
                    if i < ops.len() && retry::classify(status, e) == ErrorClass::Permanent {
                        let mut rest = Vec::new();
                        for (j, (p, op)) in ops.into_iter().enumerate() {
                            if j == i {
                                let col = "column_values";
                                let msg = format!(
                                    "flow {flow}, board {board}, column {col}: {} (value {})",
                                    e.message,
                                    op_values(&op)
                                );
                                out[p.idx] = Some(RecordOutcome::Permanent(
                                    Failure::permanent(msg).with_field(col).with_link(link(
                                        Some(status),
                                        Some(e),
                                        &e.message,
                                        a.meta.request_id.as_ref(),
                                    )),
                                ));
                            } else {
                                rest.push(p);
                            }
                        }
                        for p in rest.into_iter().rev() {
                            pending.push_front(p);
                        }
                        return Ok(());
                    }
                }
            }
        }

        let mut throttle_delay: Option<Duration> = None;
        let mut daily: Option<String> = None;
        for (i, (p, op)) in ops.into_iter().enumerate() {
            let alias = rb::alias(i);
            let got = data.and_then(|d| d.get(&alias)).filter(|v| !v.is_null());
            if let Some(item) = got.and_then(|v| id_str(v.get("id"))) {
                learned.insert(p.target.clone(), item.clone());
                let ids = BTreeMap::from([
                    ("board_id".to_string(), board.to_string()),
                    ("item_id".to_string(), item),
                ]);
                out[p.idx] = Some(RecordOutcome::Applied {
                    created: op.is_create(),
                    destination_ids: ids,
                });
                continue;
            }
            let e = by_alias.get(&i).copied().or(general);
            let class = match e {
                Some(e) => retry::classify(status, e),
                None if status == 429 => ErrorClass::Throttle,
                None => ErrorClass::Transient,
            };
            let message = e
                .map(|e| e.message.clone())
                .unwrap_or_else(|| format!("HTTP {status}: no result for {alias}"));
            let l = link(Some(status), e, &message, a.meta.request_id.as_ref());
            match class {
                ErrorClass::Auth => {
                    return Err(Stop::Auth(format!("flow {flow}, board {board}: {message}")));
                }
                ErrorClass::Daily => {
                    daily = Some(message.clone());
                    out[p.idx] = Some(RecordOutcome::retry(
                        Some(
                            (next_utc_midnight(self.clock.now()) - self.clock.now())
                                .to_std()
                                .unwrap_or_default(),
                        ),
                        Failure::retryable(format!("flow {flow}, board {board}: {message}"))
                            .with_link(l),
                    ));
                }
                ErrorClass::Throttle => {
                    let d = retry::server_delay(e, &a.meta).unwrap_or(self.opts.window);
                    throttle_delay = Some(throttle_delay.map_or(d, |x| x.max(d)));
                    out[p.idx] = Some(RecordOutcome::retry(
                        Some(retry::with_jitter(d)),
                        Failure::retryable(format!(
                            "flow {flow}, board {board}: throttled: {message}"
                        ))
                        .with_link(l),
                    ));
                }
                ErrorClass::Transient => {
                    out[p.idx] = Some(RecordOutcome::retry(
                        Some(retry::backoff(
                            2,
                            self.opts.backoff_base,
                            self.opts.backoff_cap,
                        )),
                        Failure::retryable(format!("flow {flow}, board {board}: {message}"))
                            .with_link(l),
                    ));
                }
                ErrorClass::Permanent => {
                    let col = e
                        .and_then(|e| e.error_data.as_ref())
                        .and_then(|d| d.get("column_id"))
                        .and_then(Value::as_str)
                        .map(str::to_string)
                        .or_else(|| {
                            op_values_keys(&op)
                                .into_iter()
                                .find(|k| message.contains(k.as_str()))
                        });
                    let (col_txt, value) = match &col {
                        Some(c) => (c.clone(), op_value(&op, c)),
                        None => ("column_values".to_string(), op_values(&op)),
                    };
                    let f = Failure::permanent(format!(
                        "flow {flow}, board {board}, column {col_txt}: {}{message} (value {value}, record {})",
                        e.and_then(|e| e.code.as_ref()).map(|c| format!("{c}: ")).unwrap_or_default(),
                        p.key
                    ))
                    .with_field(col_txt)
                    .with_link(l);
                    out[p.idx] = Some(RecordOutcome::Permanent(f));
                }
            }
        }
        if let Some(m) = daily {
            return Err(Stop::Daily(m));
        }
        if let Some(d) = throttle_delay {
            let f = Failure::deferred(format!(
                "flow {flow}, board {board}: throttled by monday, handing back"
            ));
            let after = Some(retry::with_jitter(d));
            for p in pending.drain(..) {
                out[p.idx] = Some(RecordOutcome::retry(after, f.clone()));
            }
        }
        Ok(())
    }
}

fn op_map(op: &WriteOp) -> &Map<String, Value> {
    match op {
        WriteOp::Create { column_values, .. } | WriteOp::Update { column_values, .. } => {
            column_values
        }
    }
}
fn op_values(op: &WriteOp) -> String {
    Value::Object(op_map(op).clone()).to_string()
}
fn op_values_keys(op: &WriteOp) -> Vec<String> {
    op_map(op).keys().cloned().collect()
}
fn op_value(op: &WriteOp, col: &str) -> String {
    op_map(op)
        .get(col)
        .map(Value::to_string)
        .unwrap_or_else(|| "none".into())
}

/// `Variable $cv3 of type JSON …` → 3.
fn bad_variable_index(message: &str) -> Option<usize> {
    let rest = &message[message.find("$cv")? + 3..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

fn id_str(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The text of an item's column, from a lookup answer.
fn column_text<'a>(item: &'a Value, column: &str) -> Option<&'a str> {
    item.get("column_values")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| c.get("id").and_then(Value::as_str) == Some(column))?
        .get("text")
        .and_then(Value::as_str)
}

/// Target → item, for items whose id column's text is exactly a target. The server matches
/// case-insensitively: only an exact match is ours. The oldest item wins when a board already
/// holds duplicates.
fn exact_matches<'a>(
    items: &'a [Value],
    column: &str,
    targets: &[String],
) -> HashMap<String, &'a Value> {
    let want: HashSet<&str> = targets.iter().map(String::as_str).collect();
    let mut found = HashMap::new();
    for it in items {
        if let Some(text) = column_text(it, column).filter(|t| want.contains(t)) {
            found.entry(text.to_string()).or_insert(it);
        }
    }
    found
}

fn port_err(e: mlc_core::PortError) -> (ErrorClass, ErrorLink, Option<Duration>) {
    (
        ErrorClass::Transient,
        ErrorLink {
            message: format!("budget store failed: {e}"),
            ..Default::default()
        },
        None,
    )
}

#[async_trait]
impl Sink for MondaySink {
    fn destination(&self) -> &'static str {
        "monday"
    }

    async fn ping(&self) -> std::result::Result<Vec<String>, SinkError> {
        let targets = self.targets();
        let mut boards: Vec<String> = targets.iter().map(|(_, t)| t.board_id.clone()).collect();
        boards.sort();
        boards.dedup();
        if let Err((class, l, _)) = self.discover(&boards).await {
            return Err(match class {
                ErrorClass::Auth => {
                    SinkError::Auth(format!("flow {}: {}", self.flow.id, l.message))
                }
                ErrorClass::Permanent => {
                    SinkError::Config(format!("flow {}: {}", self.flow.id, l.message))
                }
                _ => SinkError::Transient(format!("flow {}: {}", self.flow.id, l.message)),
            });
        }
        let known = self.boards.lock().await;
        let mut lines = Vec::new();
        let mut problems = Vec::new();
        for (e, t) in targets {
            let d = known
                .get(&t.board_id)
                .cloned()
                .unwrap_or(Discovered::Missing);
            match self.check_mapping(e, t, &d) {
                Ok(()) => {
                    let name = match &d {
                        Discovered::Found(i) => i.name.clone(),
                        Discovered::Missing => String::new(),
                    };
                    lines.push(format!(
                        "flow {}, board {} ({name}): {} mapped columns and id column {} match the board",
                        self.flow.id,
                        t.board_id,
                        e.mapping.len(),
                        t.id_column
                    ));
                }
                Err(m) => problems.push(m),
            }
        }
        if !problems.is_empty() {
            return Err(SinkError::Config(problems.join("; ")));
        }
        Ok(lines)
    }

    async fn preview(
        &self,
        batch: &[PendingWrite],
    ) -> std::result::Result<Vec<Preview>, SinkError> {
        self.preview_batch(batch).await
    }

    async fn write(
        &self,
        batch: &[PendingWrite],
    ) -> std::result::Result<Vec<RecordOutcome>, SinkError> {
        let flow = self.flow.id.clone();
        let mut out: Vec<Option<RecordOutcome>> = vec![None; batch.len()];

        // Versions already applied are unchanged; only the newest version of a key is written,
        // older copies in the same batch follow its outcome.
        let mut latest: HashMap<(Entity, String), usize> = HashMap::new();
        for (i, w) in batch.iter().enumerate() {
            let k = (w.event.entity, w.event.key.id());
            match latest.get(&k) {
                Some(&j) if batch[j].event.version > w.event.version => {}
                _ => {
                    latest.insert(k, i);
                }
            }
        }

        let mut by_board: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, w) in batch.iter().enumerate() {
            if let Some(p) = &w.prior {
                if p.applied_version.is_some_and(|v| v >= w.event.version) {
                    out[i] = Some(RecordOutcome::Unchanged {
                        destination_ids: p.destination_ids.clone(),
                    });
                    continue;
                }
            }
            if latest.get(&(w.event.entity, w.event.key.id())) != Some(&i) {
                continue;
            }
            match self
                .flow
                .entity(w.event.entity)
                .and_then(|e| e.monday.as_ref())
            {
                Some(t) => by_board.entry(t.board_id.clone()).or_default().push(i),
                None => {
                    out[i] = Some(RecordOutcome::Permanent(Failure::permanent(format!(
                        "flow {flow}: entity {} has no monday board configured (record {})",
                        w.event.entity,
                        w.event.label()
                    ))))
                }
            }
        }

        let boards: Vec<String> = by_board.keys().cloned().collect();
        if !boards.is_empty() {
            if let Err((class, l, delay)) = self.discover(&boards).await {
                match class {
                    ErrorClass::Auth => {
                        return Err(SinkError::Auth(format!("flow {flow}: {}", l.message)))
                    }
                    ErrorClass::Daily => {
                        return Err(SinkError::DailyLimit {
                            message: l.message,
                            until: next_utc_midnight(self.clock.now()),
                        })
                    }
                    _ => {
                        let f = Failure::retryable(format!(
                            "flow {flow}: board discovery failed: {}",
                            l.message
                        ))
                        .with_link(l);
                        for idx in by_board.values().flatten() {
                            out[*idx] = Some(RecordOutcome::retry(
                                delay.map(retry::with_jitter),
                                f.clone(),
                            ));
                        }
                        by_board.clear();
                    }
                }
            }
        }

        // Prepare per board; a bad mapping fails every record of its board with one message.
        let known = self.boards.lock().await.clone();
        let mut work: Vec<(String, Vec<Prepared>)> = Vec::new();
        for (board, idxs) in &by_board {
            let d = known.get(board).cloned().unwrap_or(Discovered::Missing);
            let mut prepared = Vec::new();
            for &i in idxs {
                let w = &batch[i];
                let Some(ecfg) = self.flow.entity(w.event.entity) else {
                    continue;
                };
                let Some(t) = ecfg.monday.as_ref() else {
                    continue;
                };
                if let Err(m) = self.check_mapping(ecfg, t, &d) {
                    out[i] = Some(RecordOutcome::Permanent(Failure::permanent(m)));
                    continue;
                }
                let Discovered::Found(info) = &d else {
                    continue;
                };
                match self.prepare(i, w, ecfg, t, info) {
                    Ok(Some(p)) => prepared.push(p),
                    // A removal the flow configures no column for: the item keeps every value.
                    Ok(None) => {
                        out[i] = Some(RecordOutcome::Unchanged {
                            destination_ids: w
                                .prior
                                .as_ref()
                                .map(|p| p.destination_ids.clone())
                                .unwrap_or_default(),
                        })
                    }
                    Err(f) => out[i] = Some(RecordOutcome::Permanent(f)),
                }
            }
            if !prepared.is_empty() {
                work.push((board.clone(), prepared));
            }
        }

        // Boards are independent: write them concurrently, each serialised by its own lock.
        let futs = work.into_iter().map(|(board, prepared)| async move {
            let mut local: Vec<Option<RecordOutcome>> = vec![None; batch.len()];
            let stop = self
                .write_board(&board, batch, prepared.clone(), &mut local)
                .await;
            let idxs: Vec<usize> = prepared.iter().map(|p| p.idx).collect();
            (idxs, local, stop, board, std::time::Instant::now())
        });
        let results = futures::future::join_all(futs).await;
        let mut auth: Option<String> = None;
        let mut daily: Option<String> = None;
        for (idxs, local, stop, board, done) in results {
            // Delays were computed when this board stopped; other boards may have taken longer,
            // so count the time since then (a late return must not skip a whole window).
            let lag = done.elapsed();
            for i in idxs {
                out[i] = local[i].clone().map(|o| match o {
                    RecordOutcome::Retry {
                        after: Some(a),
                        failure,
                    } => RecordOutcome::Retry {
                        after: Some(a.saturating_sub(lag)),
                        failure,
                    },
                    o => o,
                });
            }
            match stop {
                Some(Stop::Auth(m)) => auth = Some(m),
                Some(Stop::Daily(m)) => daily = Some(format!("board {board}: {m}")),
                None => {}
            }
        }
        if let Some(m) = auth {
            return Err(SinkError::Auth(m));
        }
        let applied = out
            .iter()
            .any(|o| matches!(o, Some(RecordOutcome::Applied { .. })));
        let until = next_utc_midnight(self.clock.now());
        if let Some(m) = &daily {
            if !applied {
                return Err(SinkError::DailyLimit {
                    message: format!("flow {flow}, {m}"),
                    until,
                });
            }
        }
        let wait_daily = (until - self.clock.now()).to_std().unwrap_or_default();

        // Older copies follow their newest version; anything left unanswered is handed back.
        let mut result = Vec::with_capacity(batch.len());
        for (i, w) in batch.iter().enumerate() {
            let o = match &out[i] {
                Some(o) => o.clone(),
                None => match latest
                    .get(&(w.event.entity, w.event.key.id()))
                    .and_then(|&j| out[j].clone())
                {
                    Some(RecordOutcome::Applied {
                        destination_ids, ..
                    })
                    | Some(RecordOutcome::Unchanged { destination_ids })
                        if latest.get(&(w.event.entity, w.event.key.id())) != Some(&i) =>
                    {
                        RecordOutcome::Unchanged { destination_ids }
                    }
                    Some(o) if latest.get(&(w.event.entity, w.event.key.id())) != Some(&i) => o,
                    _ => RecordOutcome::retry(
                        Some(if daily.is_some() {
                            wait_daily
                        } else {
                            self.opts.window
                        }),
                        Failure::retryable(format!(
                            "flow {flow}: not written in this call ({})",
                            w.event.label()
                        )),
                    ),
                },
            };
            result.push(o);
        }
        Ok(result)
    }
}
