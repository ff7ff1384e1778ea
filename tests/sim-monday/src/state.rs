//! In-memory boards, limit counters, the idempotency cache and statistics.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use rand::rngs::StdRng;
use serde_json::Value;

/// A column.
#[derive(Debug, Clone)]
pub(crate) struct SimColumn {
    pub id: String,
    pub title: String,
    pub ty: String,
    pub settings: Value,
}

/// A board.
#[derive(Debug, Clone)]
pub(crate) struct SimBoard {
    pub id: String,
    pub name: String,
    pub columns: Vec<SimColumn>,
    pub groups: Vec<(String, String)>,
    pub items: Vec<SimItem>,
}

/// An item as the simulator holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct SimItem {
    /// Item id.
    pub id: String,
    /// Item name.
    pub name: String,
    /// Group id.
    pub group_id: String,
    /// Column id → stored value (the shape Monday.com was sent).
    pub values: BTreeMap<String, Value>,
}

/// What the simulator counted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SimStats {
    /// Every HTTP request received.
    pub requests: u64,
    /// Requests holding a mutation operation.
    pub mutation_requests: u64,
    /// Requests holding a query operation.
    pub query_requests: u64,
    /// Item mutations that executed.
    pub mutations: u64,
    /// Item mutations that executed, per board.
    pub mutations_per_board: BTreeMap<String, u64>,
    /// The most mutations one board took in one window.
    pub max_board_window: BTreeMap<String, u32>,
    /// Throttles returned (429 answers, legacy complexity errors, per-alias `tooManyRequests`).
    pub throttles: u64,
    /// Faults injected (switches and chaos).
    pub faults: u64,
    /// Answers replayed from the idempotency cache.
    pub replays: u64,
    /// 409 `IDEMPOTENCY_CONFLICT` answers.
    pub conflicts: u64,
    /// Documents or variables rejected by validation.
    pub validation_errors: u64,
    /// Error codes returned, counted.
    pub errors_by_code: BTreeMap<String, u64>,
    /// Windows (index) in which each board received mutations, with their counts.
    pub board_windows: BTreeMap<String, BTreeMap<i64, u32>>,
}

/// A cached answer.
#[derive(Debug, Clone)]
pub(crate) struct Cached {
    pub expires: DateTime<Utc>,
    pub answer: Option<(u16, Value)>,
}

/// A fault switch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// HTTP 500 before executing.
    ServerError,
    /// HTTP 503 `TIMEOUT_EXCEEDED` before executing.
    Unavailable,
    /// HTTP 423 "Resource is currently locked".
    Locked,
    /// HTTP 429 `MINUTE_RATE_LIMIT_EXCEEDED`.
    Throttle,
    /// HTTP 200, legacy body `ComplexityException` (nothing executed).
    LegacyComplexity,
    /// HTTP 200 with partial data: the first half of the aliases execute, the rest fail with
    /// `tooManyRequests`.
    PartialThrottle,
    /// Executes and caches the answer under the `Idempotency-Key`, then answers 502 with no
    /// body: the mutation applied but the response was lost.
    LostResponse,
    /// Executes, then waits this long before answering (the client may time out).
    Slow(Duration),
    /// HTTP 429 `DAILY_LIMIT_EXCEEDED`.
    DailyLimit,
}

/// Everything behind the lock.
pub(crate) struct Inner {
    pub boards: BTreeMap<String, SimBoard>,
    pub next_item_id: u64,
    pub next_cursor: u64,
    pub cursors: HashMap<String, (String, Vec<String>)>,
    pub tokens: HashSet<String>,
    pub board_window: HashMap<(String, i64), u32>,
    pub complexity_window: (i64, u64),
    pub request_window: (i64, u32),
    pub daily: (NaiveDate, u32),
    pub idem: HashMap<String, Cached>,
    pub faults: VecDeque<Fault>,
    pub chaos: Option<(f64, StdRng)>,
    pub legacy: bool,
    pub cap: Option<u32>,
    pub stats: SimStats,
    pub next_request: u64,
}
