//! Monday.com GraphQL simulator on loopback, schema-validated, with limits and faults.
//!
//! Used by tests, the benchmark and `ml-connector demo`. Every request is parsed and validated
//! (apollo-compiler) against a hand-written subset of Monday.com's schema (`schema.graphql`,
//! itself checked against the official SDL by `tests/schema.rs`), its variables coerced, and
//! executed on in-memory boards: `create_item`, `change_multiple_column_values`,
//! `items_page_by_column_values` + `next_items_page`, `boards { columns groups }`,
//! `complexity`. Aliased mutations run in order and are not atomic. Column values are checked
//! per column type with Monday.com's error bodies.
//!
//! Limits answer with the real bodies, HTTP codes and `retry_in_seconds`: per-board mutation
//! cap, complexity per window, requests per window, concurrency, daily calls. Every
//! "per minute" limit uses one window whose length is an option (and the clock is injectable),
//! so tests scale cap and window together. `Idempotency-Key`s are cached for 30 minutes.
//!
//! Module map:
//! - this file: [`MondaySim`], [`MondayOptions`], [`MondayHandle`] and the HTTP handler;
//! - `state`: boards, counters, cache; [`SimItem`], [`SimStats`], [`Fault`];
//! - `exec`: executing root fields and projecting selections;
//! - `columns`: column value validation per type;
//! - [`SUBSET_SDL`]: the schema subset.

mod columns;
mod exec;
mod state;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apollo_compiler::executable::ExecutableDocument;
use apollo_compiler::response::serde_json_bytes;
use apollo_compiler::validation::Valid;
use apollo_compiler::Schema;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
#[cfg(test)]
use chrono::TimeZone;
use chrono::{DateTime, Utc};
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};

use mlc_core::{Clock, SystemClock};

use state::{Cached, Inner, SimBoard, SimColumn};
pub use state::{Fault, SimItem, SimStats};

/// The hand-written schema subset the simulator validates against.
pub const SUBSET_SDL: &str = include_str!("schema.graphql");

/// The API versions the simulator knows; others are answered as the maintenance version.
const VERSIONS: &[&str] = &["2025-10", "2026-01", "2026-04", "2026-07", "2026-10"];

/// Parses and validates [`SUBSET_SDL`].
pub fn subset_schema() -> Result<Valid<Schema>, String> {
    Schema::parse_and_validate(SUBSET_SDL, "monday-subset.graphql")
        .map_err(|e| e.errors.to_string())
}

/// Simulator settings.
#[derive(Debug, Clone)]
pub struct MondayOptions {
    /// Accepted tokens (raw, or after `Bearer `).
    pub tokens: Vec<String>,
    /// Length of every "per minute" window (60 s like Monday.com; scale it in tests).
    pub window: Duration,
    /// Item mutations per board per window; `None` = no cap.
    pub mutations_per_board: Option<u32>,
    /// Complexity per window (personal token: 10M per minute).
    pub complexity_per_window: u64,
    /// Requests per window (Enterprise 5,000).
    pub requests_per_window: u32,
    /// Concurrent requests.
    pub max_concurrency: u32,
    /// Calls per UTC day; `None` = no limit.
    pub daily_calls: Option<u32>,
    /// How long `Idempotency-Key` answers are kept.
    pub idempotency_ttl: Duration,
    /// The clock every limit reads.
    pub clock: Arc<dyn Clock>,
}

impl Default for MondayOptions {
    fn default() -> Self {
        MondayOptions {
            tokens: vec!["sim-token".to_string()],
            window: Duration::from_secs(60),
            mutations_per_board: None,
            complexity_per_window: 10_000_000,
            requests_per_window: 5_000,
            max_concurrency: 250,
            daily_calls: None,
            idempotency_ttl: Duration::from_secs(30 * 60),
            clock: Arc::new(SystemClock),
        }
    }
}

struct Shared {
    opts: MondayOptions,
    schema: Valid<Schema>,
    inner: Mutex<Inner>,
    in_flight: AtomicU32,
}

/// Starts simulators.
#[derive(Debug, Clone, Copy)]
pub struct MondaySim;

impl MondaySim {
    /// Binds 127.0.0.1:0 and serves until the last handle is dropped.
    pub async fn start(opts: MondayOptions) -> MondayHandle {
        // The subset is part of this crate: a broken one is a bug here, not an input error.
        let schema =
            subset_schema().unwrap_or_else(|e| panic!("sim-monday schema subset is invalid: {e}"));
        let today = opts.clock.now().date_naive();
        let inner = Inner {
            boards: BTreeMap::new(),
            next_item_id: 1_000_000_000,
            next_cursor: 0,
            cursors: HashMap::new(),
            tokens: opts.tokens.iter().cloned().collect(),
            board_window: HashMap::new(),
            complexity_window: (0, 0),
            request_window: (0, 0),
            daily: (today, 0),
            idem: HashMap::new(),
            faults: VecDeque::new(),
            chaos: None,
            legacy: false,
            cap: opts.mutations_per_board,
            stats: SimStats::default(),
            next_request: 0,
        };
        let shared = Arc::new(Shared {
            opts,
            schema,
            inner: Mutex::new(inner),
            in_flight: AtomicU32::new(0),
        });
        let app = axum::Router::new()
            .route("/v2", axum::routing::post(graphql))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap_or_else(|e| panic!("sim-monday cannot bind loopback: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("sim-monday local addr: {e}"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        MondayHandle {
            shared,
            addr,
            _server: Arc::new(AbortOnDrop(task)),
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);
impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A running simulator.
#[derive(Clone)]
pub struct MondayHandle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    _server: Arc<AbortOnDrop>,
}

impl std::fmt::Debug for MondayHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MondayHandle")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl MondayHandle {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.shared.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The API URL (`http://127.0.0.1:PORT/v2`).
    pub fn url(&self) -> String {
        format!("http://{}/v2", self.addr)
    }

    /// Creates a board with columns `(id, title, type, settings)` and one group `topics`.
    pub fn create_board(&self, id: &str, name: &str, columns: &[(&str, &str, &str, Value)]) {
        let b = SimBoard {
            id: id.to_string(),
            name: name.to_string(),
            columns: columns
                .iter()
                .map(|(i, t, ty, s)| SimColumn {
                    id: i.to_string(),
                    title: t.to_string(),
                    ty: ty.to_string(),
                    settings: s.clone(),
                })
                .collect(),
            groups: vec![("topics".to_string(), "Group Title".to_string())],
            items: Vec::new(),
        };
        self.lock().boards.insert(id.to_string(), b);
    }

    /// Adds a group to a board.
    pub fn add_group(&self, board: &str, id: &str, title: &str) {
        if let Some(b) = self.lock().boards.get_mut(board) {
            b.groups.push((id.to_string(), title.to_string()));
        }
    }

    /// Puts an item on a board directly (as if someone created it by hand).
    pub fn insert_item(&self, board: &str, name: &str, values: BTreeMap<String, Value>) -> String {
        let mut g = self.lock();
        g.next_item_id += 1;
        let id = g.next_item_id.to_string();
        if let Some(b) = g.boards.get_mut(board) {
            let group = b.groups.first().map(|x| x.0.clone()).unwrap_or_default();
            b.items.push(SimItem {
                id: id.clone(),
                name: name.to_string(),
                group_id: group,
                values,
            });
        }
        id
    }

    /// Sets (or, with `Null`, clears) one column of an item directly, as someone editing the
    /// board by hand would: no validation, no request counted. False when there is no such
    /// item.
    pub fn set_value(&self, board: &str, item: &str, column: &str, value: Value) -> bool {
        let mut g = self.lock();
        let Some(it) = g
            .boards
            .get_mut(board)
            .and_then(|b| b.items.iter_mut().find(|i| i.id == item))
        else {
            return false;
        };
        if value.is_null() {
            it.values.remove(column);
        } else {
            it.values.insert(column.to_string(), value);
        }
        true
    }

    /// A snapshot of a board's items, oldest first.
    pub fn items(&self, board: &str) -> Vec<SimItem> {
        self.lock()
            .boards
            .get(board)
            .map(|b| b.items.clone())
            .unwrap_or_default()
    }

    /// The statistics so far.
    pub fn stats(&self) -> SimStats {
        self.lock().stats.clone()
    }

    /// Clears the statistics.
    pub fn reset_stats(&self) {
        self.lock().stats = SimStats::default();
    }

    /// Revokes every token: later requests get 401.
    pub fn revoke_token(&self) {
        self.lock().tokens.clear();
    }

    /// Accepts one more token.
    pub fn add_token(&self, token: &str) {
        self.lock().tokens.insert(token.to_string());
    }

    /// Queues a fault for each of the next `times` **mutation** requests.
    pub fn inject(&self, fault: Fault, times: usize) {
        let mut g = self.lock();
        for _ in 0..times {
            g.faults.push_back(fault);
        }
    }

    /// Chaos mode: each request draws a fault with probability `rate` (seeded).
    pub fn set_chaos(&self, rate: f64, seed: u64) {
        self.lock().chaos = Some((
            rate.clamp(0.0, 1.0),
            rand::rngs::StdRng::seed_from_u64(seed),
        ));
    }

    /// Clears queued faults and chaos.
    pub fn clear_faults(&self) {
        let mut g = self.lock();
        g.faults.clear();
        g.chaos = None;
    }

    /// Answers errors in the legacy format (`error_code`, `error_message`, string `errors`).
    pub fn set_legacy_errors(&self, on: bool) {
        self.lock().legacy = on;
    }

    /// Changes the per-board mutation cap.
    pub fn set_mutations_per_board(&self, cap: Option<u32>) {
        self.lock().cap = cap;
    }
}

fn window_index(now: DateTime<Utc>, window: Duration) -> i64 {
    now.timestamp_millis()
        .div_euclid((window.as_millis() as i64).max(1))
}

/// Whole seconds until the window ends (at least 1).
fn secs_left(now: DateTime<Utc>, window: Duration) -> u64 {
    let w = (window.as_millis() as i64).max(1);
    let end = (window_index(now, window) + 1) * w;
    let ms = (end - now.timestamp_millis()).max(0);
    ((ms + 999) / 1000).max(1) as u64
}

/// Scales a documented delay (e.g. 15 s for concurrency) to the window (at least 1 s).
fn scaled(secs: u64, window: Duration) -> u64 {
    ((secs as f64 * window.as_secs_f64() / 60.0).ceil() as u64).max(1)
}

fn throttle_body(code: &str, message: &str, retry: u64, request_id: &str) -> Value {
    json!({"errors": [{"message": message, "extensions": {"code": code, "retry_in_seconds": retry, "status_code": 429}}],
           "extensions": {"request_id": request_id}})
}

/// Rewrites a current-format body into the legacy one.
fn to_legacy(mut body: Value, status: u16) -> Value {
    let errs = body
        .get("errors")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let Some(first) = errs.first() else {
        return body;
    };
    let ext = first.get("extensions").cloned().unwrap_or(Value::Null);
    let o = body.as_object_mut();
    if let Some(o) = o {
        o.insert(
            "error_message".into(),
            first.get("message").cloned().unwrap_or(Value::Null),
        );
        o.insert(
            "error_code".into(),
            ext.get("code").cloned().unwrap_or(Value::Null),
        );
        let mut data = ext.get("error_data").cloned().unwrap_or(json!({}));
        if let (Some(r), Some(d)) = (ext.get("retry_in_seconds"), data.as_object_mut()) {
            d.insert("retry_in_seconds".into(), r.clone());
        }
        o.insert("error_data".into(), data);
        o.insert(
            "status_code".into(),
            ext.get("status_code").cloned().unwrap_or(json!(status)),
        );
        o.insert(
            "errors".into(),
            Value::Array(
                errs.iter()
                    .map(|e| e.get("message").cloned().unwrap_or(Value::Null))
                    .collect(),
            ),
        );
        o.insert("account_id".into(), json!(1));
        o.remove("extensions");
    }
    body
}

struct InFlight<'a>(&'a AtomicU32);
impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn graphql(State(sim): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let n = sim.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    let _guard = InFlight(&sim.in_flight);
    let opts = &sim.opts;
    let now = opts.clock.now();
    let version = headers
        .get("api-version")
        .and_then(|v| v.to_str().ok())
        .filter(|v| VERSIONS.contains(v))
        .unwrap_or("2026-07")
        .to_string();
    let idem_key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(|t| t.strip_prefix("Bearer ").unwrap_or(t).to_string());

    let (request_id, pre) = {
        let mut g = sim.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.stats.requests += 1;
        g.next_request += 1;
        let rid = format!("sim-{:08}", g.next_request);
        let pre = precheck(
            &mut g,
            opts,
            now,
            n,
            token.as_deref(),
            idem_key.as_deref(),
            &rid,
        );
        (rid, pre)
    };
    let reply = |status: u16, body: Value, replayed: bool, legacy: bool| -> Response {
        let body = if legacy && body.get("errors").is_some() {
            to_legacy(body, status)
        } else {
            body
        };
        let mut resp = (
            StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
            axum::Json(body),
        )
            .into_response();
        let h = resp.headers_mut();
        h.insert(
            "api-version",
            HeaderValue::from_str(&version).unwrap_or(HeaderValue::from_static("2026-07")),
        );
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            h.insert("x-request-id", v);
        }
        if replayed {
            h.insert("idempotency-replayed", HeaderValue::from_static("true"));
        }
        resp
    };
    if let Some((status, body, replayed)) = pre {
        let legacy = sim.inner.lock().map(|g| g.legacy).unwrap_or(false);
        let mut r = reply(status, body.clone(), replayed, legacy && !replayed);
        if let Some(secs) = body_retry(&body) {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                r.headers_mut().insert("retry-after", v);
            }
        }
        return r;
    }

    // Parse the body, then the document, then the variables.
    let parsed: Result<Value, _> = serde_json::from_slice(&body);
    let (query, vars) = match parsed {
        Ok(Value::Object(o)) => (
            o.get("query").and_then(Value::as_str).map(str::to_string),
            o.get("variables")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
        ),
        _ => (None, Map::new()),
    };
    let outcome = run(&sim, query, vars, now, &request_id);
    let legacy = sim.inner.lock().map(|g| g.legacy).unwrap_or(false);
    if let Some(k) = &idem_key {
        let mut g = sim.inner.lock().unwrap_or_else(|p| p.into_inner());
        let expires = now + chrono::Duration::from_std(opts.idempotency_ttl).unwrap_or_default();
        if outcome.executed {
            g.idem.insert(
                k.clone(),
                Cached {
                    expires,
                    answer: Some((outcome.status, outcome.body.clone())),
                },
            );
        } else {
            g.idem.remove(k);
        }
    }
    if let Some(d) = outcome.slow {
        tokio::time::sleep(d).await;
    }
    if outcome.lost {
        return (StatusCode::BAD_GATEWAY, "upstream connection lost").into_response();
    }
    let mut r = reply(outcome.status, outcome.body.clone(), false, legacy);
    if let Some(secs) = body_retry(&outcome.body) {
        if outcome.status == 429 {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                r.headers_mut().insert("retry-after", v);
            }
        }
    }
    r
}

fn body_retry(body: &Value) -> Option<u64> {
    body.pointer("/errors/0/extensions/retry_in_seconds")
        .and_then(Value::as_u64)
}

fn count_code(g: &mut Inner, code: &str) {
    *g.stats.errors_by_code.entry(code.to_string()).or_default() += 1;
}

/// Auth, account limits and the idempotency cache: an answer when the request stops here.
fn precheck(
    g: &mut Inner,
    opts: &MondayOptions,
    now: DateTime<Utc>,
    in_flight: u32,
    token: Option<&str>,
    idem: Option<&str>,
    rid: &str,
) -> Option<(u16, Value, bool)> {
    if !token.is_some_and(|t| g.tokens.contains(t)) {
        count_code(g, "Unauthorized");
        return Some((
            401,
            json!({"errors": [{"message": "Not Authenticated", "extensions": {"code": "Unauthorized", "status_code": 401}}], "error_message": "Not Authenticated", "status_code": 401}),
            false,
        ));
    }
    if in_flight > opts.max_concurrency {
        g.stats.throttles += 1;
        count_code(g, "MAX_CONCURRENCY_EXCEEDED");
        return Some((
            429,
            throttle_body(
                "MAX_CONCURRENCY_EXCEEDED",
                "Max concurrency exceeded",
                scaled(15, opts.window),
                rid,
            ),
            false,
        ));
    }
    let today = now.date_naive();
    if g.daily.0 != today {
        g.daily = (today, 0);
    }
    if let Some(limit) = opts.daily_calls {
        if g.daily.1 >= limit {
            g.stats.throttles += 1;
            count_code(g, "DAILY_LIMIT_EXCEEDED");
            let midnight = (today + chrono::Days::new(1))
                .and_hms_opt(0, 0, 0)
                .map(|t| t.and_utc())
                .unwrap_or(now);
            let secs = (midnight - now).num_seconds().max(1) as u64;
            return Some((
                429,
                throttle_body("DAILY_LIMIT_EXCEEDED", "Daily limit exceeded", secs, rid),
                false,
            ));
        }
    }
    g.daily.1 += 1;
    let wi = window_index(now, opts.window);
    if g.request_window.0 != wi {
        g.request_window = (wi, 0);
    }
    if g.request_window.1 >= opts.requests_per_window {
        g.stats.throttles += 1;
        count_code(g, "MINUTE_RATE_LIMIT_EXCEEDED");
        return Some((
            429,
            throttle_body(
                "MINUTE_RATE_LIMIT_EXCEEDED",
                "Minute rate limit exceeded",
                secs_left(now, opts.window),
                rid,
            ),
            false,
        ));
    }
    g.request_window.1 += 1;
    if let Some(k) = idem {
        g.idem.retain(|_, c| c.expires > now);
        match g.idem.get(k) {
            Some(Cached {
                answer: Some((st, body)),
                ..
            }) => {
                let (st, body) = (*st, body.clone());
                g.stats.replays += 1;
                return Some((st, body, true));
            }
            Some(Cached { answer: None, .. }) => {
                g.stats.conflicts += 1;
                count_code(g, "IDEMPOTENCY_CONFLICT");
                return Some((
                    409,
                    json!({"errors": [{"message": "A request with this Idempotency-Key is already in progress", "extensions": {"code": "IDEMPOTENCY_CONFLICT", "status_code": 409}}]}),
                    false,
                ));
            }
            None => {
                let expires =
                    now + chrono::Duration::from_std(opts.idempotency_ttl).unwrap_or_default();
                g.idem.insert(
                    k.to_string(),
                    Cached {
                        expires,
                        answer: None,
                    },
                );
            }
        }
    }
    None
}

struct Outcome {
    status: u16,
    body: Value,
    executed: bool,
    lost: bool,
    slow: Option<Duration>,
}

impl Outcome {
    fn plain(status: u16, body: Value) -> Self {
        Outcome {
            status,
            body,
            executed: false,
            lost: false,
            slow: None,
        }
    }
}

fn pick_fault(g: &mut Inner, is_mutation: bool) -> Option<Fault> {
    if is_mutation {
        if let Some(f) = g.faults.pop_front() {
            g.stats.faults += 1;
            return Some(f);
        }
    }
    let (rate, rng) = g.chaos.as_mut()?;
    if rng.random_range(0.0..1.0) >= *rate {
        return None;
    }
    const CHAOS: &[Fault] = &[
        Fault::ServerError,
        Fault::Unavailable,
        Fault::Locked,
        Fault::Throttle,
        Fault::LegacyComplexity,
        Fault::PartialThrottle,
        Fault::LostResponse,
    ];
    let f = CHAOS[rng.random_range(0..CHAOS.len())];
    g.stats.faults += 1;
    Some(f)
}

fn run(
    sim: &Shared,
    query: Option<String>,
    vars: Map<String, Value>,
    now: DateTime<Utc>,
    rid: &str,
) -> Outcome {
    let opts = &sim.opts;
    let Some(query) = query else {
        let mut g = sim.inner.lock().unwrap_or_else(|p| p.into_inner());
        count_code(&mut g, "JsonParseException");
        return Outcome::plain(
            400,
            json!({"errors": [{"message": "Unexpected end of JSON input", "extensions": {"code": "JsonParseException", "status_code": 400}}]}),
        );
    };
    let doc = match ExecutableDocument::parse_and_validate(&sim.schema, query, "request.graphql") {
        Ok(d) => d,
        Err(e) => {
            let mut g = sim.inner.lock().unwrap_or_else(|p| p.into_inner());
            g.stats.validation_errors += 1;
            count_code(&mut g, "GRAPHQL_VALIDATION_FAILED");
            let errs: Vec<Value> = e
                .errors
                .iter()
                .map(|d| {
                    let mut v = serde_json::to_value(d.to_json())
                        .unwrap_or(json!({"message": d.to_string()}));
                    v["extensions"] =
                        json!({"code": "GRAPHQL_VALIDATION_FAILED", "status_code": 400});
                    v
                })
                .collect();
            return Outcome::plain(200, json!({"errors": errs, "account_id": 1}));
        }
    };
    let Ok(op) = doc.operations.get(None) else {
        return Outcome::plain(
            200,
            json!({"errors": [{"message": "exactly one operation is supported", "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"}}]}),
        );
    };
    let is_mutation = op.operation_type == apollo_compiler::executable::OperationType::Mutation;
    // Variables: GraphQL coercion, then Monday's JSON scalar (a string must hold valid JSON).
    let jvars: serde_json_bytes::Map<serde_json_bytes::ByteString, serde_json_bytes::Value> = vars
        .iter()
        .map(|(k, v)| (k.as_str().into(), serde_json_bytes::Value::from(v.clone())))
        .collect();
    let coerced = match apollo_compiler::request::coerce_variable_values(&sim.schema, op, &jvars) {
        Ok(c) => serde_json::to_value(c.into_inner())
            .ok()
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default(),
        Err(e) => {
            let mut g = sim.inner.lock().unwrap_or_else(|p| p.into_inner());
            g.stats.validation_errors += 1;
            return Outcome::plain(
                200,
                json!({"errors": [{"message": e.message().to_string(), "extensions": {"problems": [{"path": [], "explanation": e.message().to_string()}]}}], "account_id": 1}),
            );
        }
    };
    for vd in &op.variables {
        if vd.ty.inner_named_type() == "JSON" {
            if let Some(Value::String(s)) = coerced.get(vd.name.as_str()) {
                if let Err(err) = serde_json::from_str::<Value>(s) {
                    let mut g = sim.inner.lock().unwrap_or_else(|p| p.into_inner());
                    g.stats.validation_errors += 1;
                    let m = format!(
                        "Variable ${} of type {} was provided invalid value",
                        vd.name, vd.ty
                    );
                    return Outcome::plain(
                        200,
                        json!({"errors": [{"message": m, "locations": [], "extensions": {"problems": [{"path": [], "explanation": err.to_string()}]}}], "account_id": 1}),
                    );
                }
            }
        }
    }

    let mut g = sim.inner.lock().unwrap_or_else(|p| p.into_inner());
    if is_mutation {
        g.stats.mutation_requests += 1;
    } else {
        g.stats.query_requests += 1;
    }
    let fault = pick_fault(&mut g, is_mutation);
    match fault {
        Some(Fault::ServerError) => {
            count_code(&mut g, "INTERNAL_SERVER_ERROR");
            return Outcome::plain(
                500,
                json!({"errors": [{"message": "Internal server error", "extensions": {"code": "INTERNAL_SERVER_ERROR", "status_code": 500}}]}),
            );
        }
        Some(Fault::Unavailable) => {
            count_code(&mut g, "TIMEOUT_EXCEEDED");
            return Outcome::plain(
                503,
                json!({"errors": [{"message": "Request timed out", "extensions": {"code": "TIMEOUT_EXCEEDED", "status_code": 503}}]}),
            );
        }
        Some(Fault::Locked) => {
            count_code(&mut g, "RESOURCE_LOCKED");
            return Outcome::plain(
                423,
                json!({"errors": [{"message": "Resource is currently locked", "extensions": {"code": "RESOURCE_LOCKED", "status_code": 423}}]}),
            );
        }
        Some(Fault::Throttle) => {
            g.stats.throttles += 1;
            count_code(&mut g, "MINUTE_RATE_LIMIT_EXCEEDED");
            return Outcome::plain(
                429,
                throttle_body(
                    "MINUTE_RATE_LIMIT_EXCEEDED",
                    "Minute rate limit exceeded",
                    secs_left(now, opts.window),
                    rid,
                ),
            );
        }
        Some(Fault::DailyLimit) => {
            g.stats.throttles += 1;
            count_code(&mut g, "DAILY_LIMIT_EXCEEDED");
            return Outcome::plain(
                429,
                throttle_body("DAILY_LIMIT_EXCEEDED", "Daily limit exceeded", 3599, rid),
            );
        }
        Some(Fault::LegacyComplexity) => {
            g.stats.throttles += 1;
            count_code(&mut g, "ComplexityException");
            let secs = secs_left(now, opts.window);
            return Outcome::plain(
                200,
                json!({"error_code": "ComplexityException", "status_code": 429, "account_id": 1,
                "error_message": format!("Complexity budget exhausted, query cost 10001 budget remaining 0 out of {} reset in {secs} seconds", opts.complexity_per_window),
                "error_data": {"retry_in_seconds": secs}, "errors": ["Complexity budget exhausted"]}),
            );
        }
        _ => {}
    }

    // Complexity: the whole query is charged before it runs.
    let roots = exec::root_fields(op);
    let cost: u64 = roots
        .iter()
        .map(|f| exec::field_cost(f.name.as_str()))
        .sum();
    if cost > 5_000_000 {
        count_code(&mut g, "maxComplexityExceeded");
        return Outcome::plain(
            200,
            json!({"errors": [{"message": format!("Query has complexity of {cost}, which exceeds max complexity of 5000000"), "extensions": {"code": "maxComplexityExceeded", "status_code": 200}}]}),
        );
    }
    let wi = window_index(now, opts.window);
    if g.complexity_window.0 != wi {
        g.complexity_window = (wi, 0);
    }
    let before = opts
        .complexity_per_window
        .saturating_sub(g.complexity_window.1);
    if cost > before {
        g.stats.throttles += 1;
        count_code(&mut g, "COMPLEXITY_BUDGET_EXHAUSTED");
        return Outcome::plain(
            429,
            throttle_body(
                "COMPLEXITY_BUDGET_EXHAUSTED",
                &format!(
                    "Complexity budget exhausted, query cost {cost} budget remaining {before}"
                ),
                secs_left(now, opts.window),
                rid,
            ),
        );
    }
    g.complexity_window.1 += cost;
    let complexity = json!({"before": before, "after": before - cost, "query": cost, "reset_in_x_seconds": secs_left(now, opts.window)});

    let sources = doc.sources.clone();
    let item_fields = roots
        .iter()
        .filter(|f| exec::field_cost(f.name.as_str()) == 10_000)
        .count();
    let partial_from = if fault == Some(Fault::PartialThrottle) {
        item_fields / 2
    } else {
        usize::MAX
    };
    let mut data = Map::new();
    let mut errors: Vec<Value> = Vec::new();
    let mut executed = false;
    let mut item_index = 0usize;
    for f in roots {
        let key = f.response_key().to_string();
        if !is_mutation {
            match exec::query_field(&mut g, f, &coerced, &sources, &complexity) {
                exec::FieldResult::Data(v) => {
                    data.insert(key, v);
                }
                exec::FieldResult::Error(e) => {
                    count_code(
                        &mut g,
                        e.pointer("/extensions/code")
                            .and_then(Value::as_str)
                            .unwrap_or("?"),
                    );
                    data.insert(key, Value::Null);
                    errors.push(e);
                }
            }
            continue;
        }
        if f.name == "complexity" {
            data.insert(key, exec::project(&complexity, &f.selection_set, &coerced));
            continue;
        }
        let this = item_index;
        item_index += 1;
        let board = exec::id_of(&exec::arg(f, "board_id", &coerced)).unwrap_or_default();
        let secs = secs_left(now, opts.window);
        let capped = g.cap.is_some_and(|cap| {
            g.board_window
                .get(&(board.clone(), wi))
                .copied()
                .unwrap_or(0)
                >= cap
        });
        if this >= partial_from || capped {
            g.stats.throttles += 1;
            count_code(&mut g, "tooManyRequests");
            data.insert(key, Value::Null);
            errors.push(exec::field_error(
                f,
                &sources,
                "tooManyRequests",
                "Too many requests, please try again later",
                Some(json!({"retry_in_seconds": secs})),
                Some(secs),
            ));
            continue;
        }
        match exec::mutation_field(&mut g, f, &coerced, &sources) {
            exec::FieldResult::Data(v) => {
                executed = true;
                g.stats.mutations += 1;
                *g.stats
                    .mutations_per_board
                    .entry(board.clone())
                    .or_default() += 1;
                let c = g.board_window.entry((board.clone(), wi)).or_default();
                *c += 1;
                let c = *c;
                let m = g.stats.max_board_window.entry(board.clone()).or_default();
                *m = (*m).max(c);
                g.stats
                    .board_windows
                    .entry(board.clone())
                    .or_default()
                    .insert(wi, c);
                data.insert(key, v);
            }
            exec::FieldResult::Error(e) => {
                count_code(
                    &mut g,
                    e.pointer("/extensions/code")
                        .and_then(Value::as_str)
                        .unwrap_or("?"),
                );
                data.insert(key, Value::Null);
                errors.push(e);
            }
        }
    }
    let mut body = json!({"data": data, "account_id": 1});
    if !errors.is_empty() {
        body["errors"] = Value::Array(errors);
    }
    let mut out = Outcome {
        status: 200,
        body,
        executed,
        lost: false,
        slow: None,
    };
    match fault {
        Some(Fault::LostResponse) => out.lost = true,
        Some(Fault::Slow(d)) => out.slow = Some(d),
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subset_parses_and_validates() {
        subset_schema().unwrap();
    }

    #[test]
    fn windows_scale() {
        let t = Utc.timestamp_millis_opt(10_250).unwrap();
        assert_eq!(window_index(t, Duration::from_secs(1)), 10);
        assert_eq!(secs_left(t, Duration::from_secs(1)), 1);
        assert_eq!(scaled(15, Duration::from_secs(60)), 15);
        assert_eq!(scaled(15, Duration::from_secs(1)), 1);
    }
}
