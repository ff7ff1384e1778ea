//! What every benchmark shares: the business date, secrets, local state (SQLite store and
//! queue) wired into a [`FlowRuntime`], process figures read from `/proc`, and the one-line JSON
//! a subcommand prints.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use mlc_core::config::{ConnectorConfig, FlowConfig};
use mlc_core::ports::{AuditLog, Queue, RecordStateStore, WatermarkStore};
use mlc_core::secret::{SecretRef, SecretString};
use mlc_core::{Clock, FixedClock};
use mlc_embedded::{QueueOptions, SqliteQueue, SqliteStore, StaticSecrets};
use mlc_engine::FlowRuntime;
use serde_json::Value;

/// Boxed error for the benchmark binary (not a library: messages go to stderr and exit 1).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Result alias.
pub type Res<T> = std::result::Result<T, BoxError>;

/// The simulators' "today": derived fields (overdue, aging) are reproducible run to run.
pub fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 24).unwrap_or_default()
}

/// Today pinned, time itself real (leases, token lifetimes and Monday.com windows need it).
pub fn clock() -> Arc<dyn Clock> {
    Arc::new(FixedClock::today(today()))
}

/// SYSPRO operator and password of the benchmark simulators.
pub const SYSPRO_OPERATOR: &str = "BENCH";
/// Its password.
pub const SYSPRO_PASSWORD: &str = "bench-odata-password";
/// Salesforce connected app.
pub const SF_CLIENT_ID: &str = "bench-client-id";
/// Its secret.
pub const SF_CLIENT_SECRET: &str = "bench-client-secret";
/// Monday.com token.
pub const MONDAY_TOKEN: &str = "bench-monday-token";

/// The secrets the benchmark flows reference (`env:BENCH_*`, resolved here, never from the
/// environment).
pub fn secrets() -> Arc<StaticSecrets> {
    let s = |n: &str| SecretRef::Env(n.to_string());
    Arc::new(StaticSecrets::new([
        (
            s("BENCH_SYSPRO_PASSWORD"),
            SecretString::from(SYSPRO_PASSWORD.to_string()),
        ),
        (
            s("BENCH_SF_CLIENT_ID"),
            SecretString::from(SF_CLIENT_ID.to_string()),
        ),
        (
            s("BENCH_SF_CLIENT_SECRET"),
            SecretString::from(SF_CLIENT_SECRET.to_string()),
        ),
        (
            s("BENCH_MONDAY_TOKEN"),
            SecretString::from(MONDAY_TOKEN.to_string()),
        ),
    ]))
}

/// The `[flows.syspro]` table of a benchmark flow.
pub fn syspro_toml(base_url: &str) -> String {
    format!(
        r#"[flows.syspro]
base_url = "{base_url}"
company = "EDU1"
auth = "basic"
operator = "{SYSPRO_OPERATOR}"
password = "env:BENCH_SYSPRO_PASSWORD"
timeout_secs = 120
"#
    )
}

/// Parses a flows file written by a benchmark.
pub fn parse_config(text: &str) -> Res<ConnectorConfig> {
    mlc_config::parse("bench-flows.toml", text).map_err(|e| format!("bench config: {e}").into())
}

/// The HTTP client every benchmark uses (timeouts always set).
pub fn http() -> Res<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .connect_timeout(Duration::from_secs(10))
        .build()?)
}

/// Local state of one benchmark: a SQLite store and one queue in one file.
pub struct Local {
    /// Watermarks, leases, record state, audit, budgets.
    pub store: SqliteStore,
    /// The destination's queue.
    pub queue: Arc<SqliteQueue>,
}

impl Local {
    /// Opens `state.db` in `dir`.
    pub fn open(dir: &Path, queue_name: &str) -> Res<Local> {
        let path = dir.join("state.db");
        let store = SqliteStore::open(&path)?;
        let queue = SqliteQueue::open_named(
            &path,
            queue_name,
            QueueOptions {
                max_receive_count: 1000,
                ..QueueOptions::default()
            },
        )?;
        Ok(Local {
            store,
            queue: Arc::new(queue),
        })
    }

    /// The runtime of `flow` over this state, as the CLI wires it.
    pub fn runtime(&self, config: &ConnectorConfig, flow: &FlowConfig) -> FlowRuntime {
        let store = Arc::new(self.store.clone());
        let queue: Arc<dyn Queue> = self.queue.clone();
        FlowRuntime {
            flow: Arc::new(flow.clone()),
            settings: Arc::new(config.settings.clone()),
            watermarks: store.clone() as Arc<dyn WatermarkStore>,
            state: store.clone() as Arc<dyn RecordStateStore>,
            audit: store as Arc<dyn AuditLog>,
            queue,
            clock: clock(),
            lease_ttl: Duration::from_secs(120),
        }
    }
}

/// A field of `/proc/self/status` in kB (`VmHWM:`, `VmRSS:`).
pub fn status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// CPU seconds (user + system, every thread) this process has used so far.
pub fn cpu_seconds() -> f64 {
    cpu_seconds_of("self")
}

/// CPU seconds (user + system) of process `pid` (`self` for this one).
pub fn cpu_seconds_of(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, indexes 11 and 12 after the ')'.
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // USER_HZ is 100 on every Linux the benchmark targets.
    (ticks(11) + ticks(12)) / 100.0
}

/// Rounds to `d` decimals for printing.
pub fn round(x: f64, d: i32) -> f64 {
    let p = 10f64.powi(d);
    (x * p).round() / p
}

/// Prints a subcommand's figures: one JSON object on one stdout line.
pub fn emit(v: &Value) {
    println!("{v}");
}

/// `x` per 1,000 of `n` (None when `n` is 0).
pub fn per_1000(x: usize, n: usize) -> Option<f64> {
    (n > 0).then(|| x as f64 * 1000.0 / n as f64)
}
