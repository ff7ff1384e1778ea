//! [`LambdaContext`]: built once per container, shared by every invocation it serves.
//!
//! [`LambdaContext::from_env`] reads the environment the IaC sets (table names, queue URLs,
//! flows file, audit TTL, optional pinned business date), parses the flows file, loads the SDK
//! configuration (no network call) and builds one HTTP client with timeouts. SYSPRO sources
//! and destination sinks are built on first use per flow and kept: their token caches and
//! connection pools then survive across warm invocations.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::NaiveDate;
use mlc_aws::schema::{AUDIT_TABLE_ENV, CONTROL_TABLE_ENV, RECORDS_TABLE_ENV};
use mlc_aws::{AwsContext, DynamoStore, QueueUrls, SecretsManagerSecrets, SqsQueue, TableNames};
use mlc_core::config::{ConnectorConfig, Destination, FlowConfig, Settings};
use mlc_core::ports::{
    AuditLog, Budget, Queue, RecordStateStore, Secrets, Sink, Source, WatermarkStore,
};
use mlc_core::{Clock, FixedClock, SystemClock};
use mlc_engine::{FlowRuntime, SinkSet};
use tracing::warn;

use crate::error::{Error, Result};

/// Queue URL of the Salesforce FIFO queue.
pub const SALESFORCE_QUEUE_URL_ENV: &str = "MLC_SALESFORCE_QUEUE_URL";
/// Queue URL of the Salesforce dead-letter queue.
pub const SALESFORCE_DLQ_URL_ENV: &str = "MLC_SALESFORCE_DLQ_URL";
/// Queue URL of the Monday.com FIFO queue.
pub const MONDAY_QUEUE_URL_ENV: &str = "MLC_MONDAY_QUEUE_URL";
/// Queue URL of the Monday.com dead-letter queue.
pub const MONDAY_DLQ_URL_ENV: &str = "MLC_MONDAY_DLQ_URL";
/// Path of the flows TOML (default: `flows.toml` next to the binary, then `/opt/flows.toml`).
pub const FLOWS_FILE_ENV: &str = "MLC_FLOWS_FILE";
/// The flows TOML itself, inline (tests, `cargo lambda watch`).
pub const FLOWS_TOML_ENV: &str = "MLC_FLOWS_TOML";
/// Days an audit entry is kept (DynamoDB TTL); unset or empty keeps them.
pub const AUDIT_TTL_DAYS_ENV: &str = "MLC_AUDIT_TTL_DAYS";
/// Pins the business date (`YYYY-MM-DD`) for overdue and aging.
pub const TODAY_ENV: &str = "ML_CONNECTOR_TODAY";

/// How long a poll's lease lasts before the poll renews it. Short, so that a poll killed by the
/// function timeout frees its flow within minutes; a running poll renews at half-life.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(300);
/// Timeout of one HTTP request to SYSPRO, Salesforce or Monday.com (each client may set a
/// shorter one per request from the flow's `timeout_secs`).
const HTTP_TIMEOUT: Duration = Duration::from_secs(60);

/// A destination: which queue and which sink kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// Salesforce.
    Salesforce,
    /// Monday.com.
    Monday,
}

impl Target {
    /// Both destinations.
    pub const ALL: [Target; 2] = [Target::Salesforce, Target::Monday];

    /// `salesforce` or `monday` (as `FlowConfig::destination_name`).
    pub fn name(self) -> &'static str {
        match self {
            Target::Salesforce => "salesforce",
            Target::Monday => "monday",
        }
    }

    /// The destination of a flow.
    pub fn of(flow: &FlowConfig) -> Target {
        match flow.destination {
            Destination::Salesforce(_) => Target::Salesforce,
            Destination::Monday(_) => Target::Monday,
        }
    }
}

/// Where the flows configuration comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlowsSource {
    /// A file (`MLC_FLOWS_FILE`, or the default locations in order).
    Files(Vec<PathBuf>),
    /// Inline TOML (`MLC_FLOWS_TOML`).
    Inline(String),
}

/// Everything the functions read from the environment.
#[derive(Debug, Clone)]
pub struct EnvSettings {
    /// DynamoDB tables.
    pub tables: TableNames,
    /// Salesforce queue and its DLQ.
    pub salesforce: QueueUrls,
    /// Monday.com queue and its DLQ.
    pub monday: QueueUrls,
    /// The flows configuration.
    pub flows: FlowsSource,
    /// Pinned business date.
    pub today: Option<NaiveDate>,
    /// Audit retention in days.
    pub audit_ttl_days: Option<u32>,
}

impl EnvSettings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `get` (a variable's value, `None` when unset); every problem is
    /// reported at once.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |name: &str| {
            get(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let mut missing = Vec::new();
        let mut req = |name: &'static str| {
            get(name).unwrap_or_else(|| {
                missing.push(name);
                String::new()
            })
        };
        let tables = TableNames {
            control: req(CONTROL_TABLE_ENV),
            records: req(RECORDS_TABLE_ENV),
            audit: req(AUDIT_TABLE_ENV),
        };
        let salesforce = QueueUrls {
            main: req(SALESFORCE_QUEUE_URL_ENV),
            dead: req(SALESFORCE_DLQ_URL_ENV),
        };
        let monday = QueueUrls {
            main: req(MONDAY_QUEUE_URL_ENV),
            dead: req(MONDAY_DLQ_URL_ENV),
        };
        let mut problems: Vec<String> = missing.iter().map(|n| format!("{n} is not set")).collect();
        let flows = match (get(FLOWS_FILE_ENV), get(FLOWS_TOML_ENV)) {
            (Some(_), Some(_)) => {
                problems.push(format!(
                    "set {FLOWS_FILE_ENV} or {FLOWS_TOML_ENV}, not both"
                ));
                FlowsSource::Inline(String::new())
            }
            (Some(path), None) => FlowsSource::Files(vec![PathBuf::from(path)]),
            (None, Some(text)) => FlowsSource::Inline(text),
            (None, None) => FlowsSource::Files(default_flows_paths()),
        };
        let today = match get(TODAY_ENV) {
            Some(s) => match mlc_core::clock::parse_today(&s) {
                Ok(d) => Some(d),
                Err(e) => {
                    problems.push(format!("{TODAY_ENV}: {e}"));
                    None
                }
            },
            None => None,
        };
        let audit_ttl_days = match get(AUDIT_TTL_DAYS_ENV) {
            Some(s) => match s.parse::<u32>() {
                Ok(0) => None,
                Ok(d) => Some(d),
                Err(_) => {
                    problems.push(format!(
                        "{AUDIT_TTL_DAYS_ENV} {s:?} is not a whole number of days"
                    ));
                    None
                }
            },
            None => None,
        };
        if !problems.is_empty() {
            return Err(Error::Env(problems.join("; ")));
        }
        Ok(EnvSettings {
            tables,
            salesforce,
            monday,
            flows,
            today,
            audit_ttl_days,
        })
    }

    /// Reads and validates the flows configuration.
    pub fn load_flows(&self) -> Result<ConnectorConfig> {
        match &self.flows {
            FlowsSource::Inline(text) => {
                mlc_config::parse(FLOWS_TOML_ENV, text).map_err(Error::Flows)
            }
            FlowsSource::Files(paths) => {
                let found = paths.iter().find(|p| p.is_file()).or(paths.first());
                match found {
                    Some(p) => mlc_config::load(p).map_err(Error::Flows),
                    None => Err(Error::Env(format!(
                        "no flows file: set {FLOWS_FILE_ENV} or {FLOWS_TOML_ENV}"
                    ))),
                }
            }
        }
    }

    /// The clock: pinned business date when `ML_CONNECTOR_TODAY` is set.
    pub fn clock(&self) -> Arc<dyn Clock> {
        match self.today {
            Some(d) => Arc::new(FixedClock::today(d)),
            None => Arc::new(SystemClock),
        }
    }
}

/// `flows.toml` next to the binary (`/var/task` in Lambda), then `/opt/flows.toml` (a layer).
fn default_flows_paths() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.to_path_buf()))
    {
        out.push(dir.join("flows.toml"));
    }
    out.push(PathBuf::from("/opt/flows.toml"));
    out
}

/// The ports a container runs on. Public fields so that tests can wrap one (e.g. a watermark
/// store that fails once).
#[derive(Clone)]
pub struct Ports {
    /// Watermarks and leases.
    pub watermarks: Arc<dyn WatermarkStore>,
    /// Record state.
    pub state: Arc<dyn RecordStateStore>,
    /// Audit trail.
    pub audit: Arc<dyn AuditLog>,
    /// Shared rate budgets (Monday.com).
    pub budget: Arc<dyn Budget>,
    /// The Salesforce queue.
    pub salesforce: Arc<dyn Queue>,
    /// The Monday.com queue.
    pub monday: Arc<dyn Queue>,
    /// Secrets.
    pub secrets: Arc<dyn Secrets>,
}

impl std::fmt::Debug for Ports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ports").finish_non_exhaustive()
    }
}

impl Ports {
    /// DynamoDB stores, the two SQS FIFO queues and Secrets Manager, all on one context.
    pub fn aws(
        aws: &AwsContext,
        tables: TableNames,
        salesforce: QueueUrls,
        monday: QueueUrls,
        audit_ttl_days: Option<u32>,
    ) -> Ports {
        let store = Arc::new(DynamoStore::new(aws, tables).with_audit_ttl_days(audit_ttl_days));
        Ports {
            watermarks: store.clone(),
            state: store.clone(),
            audit: store.clone(),
            budget: store,
            salesforce: Arc::new(SqsQueue::new(aws, salesforce)),
            monday: Arc::new(SqsQueue::new(aws, monday)),
            secrets: Arc::new(SecretsManagerSecrets::new(aws)),
        }
    }

    /// The queue of a destination.
    pub fn queue(&self, target: Target) -> &Arc<dyn Queue> {
        match target {
            Target::Salesforce => &self.salesforce,
            Target::Monday => &self.monday,
        }
    }
}

/// What every invocation of a container shares.
pub struct LambdaContext {
    config: Arc<ConnectorConfig>,
    settings: Arc<Settings>,
    flows: HashMap<String, Arc<FlowConfig>>,
    ports: Ports,
    clock: Arc<dyn Clock>,
    http: reqwest::Client,
    lease_ttl: Duration,
    sources: Mutex<HashMap<String, Arc<dyn Source>>>,
    sinks: Mutex<HashMap<String, Arc<dyn Sink>>>,
}

impl std::fmt::Debug for LambdaContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut flows: Vec<&String> = self.flows.keys().collect();
        flows.sort();
        f.debug_struct("LambdaContext")
            .field("flows", &flows)
            .finish_non_exhaustive()
    }
}

/// Locks a cache, recovering from poisoning (a panicked invocation must not wedge the container).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl LambdaContext {
    /// The container's context from the environment (see the `*_ENV` constants). Reads the
    /// flows file; makes no network call.
    pub async fn from_env() -> Result<Self> {
        let env = EnvSettings::from_env()?;
        let config = env.load_flows()?;
        let aws = AwsContext::from_env().await?;
        let ports = Ports::aws(
            &aws,
            env.tables.clone(),
            env.salesforce.clone(),
            env.monday.clone(),
            env.audit_ttl_days,
        );
        LambdaContext::new(config, ports, env.clock())
    }

    /// A context over given ports (tests, other runtimes).
    pub fn new(config: ConnectorConfig, ports: Ports, clock: Arc<dyn Clock>) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(50))
            .user_agent(concat!("ml-connector-lambda/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(Error::Http)?;
        let flows = config
            .flows
            .iter()
            .map(|f| (f.id.clone(), Arc::new(f.clone())))
            .collect();
        Ok(LambdaContext {
            settings: Arc::new(config.settings.clone()),
            config: Arc::new(config),
            flows,
            ports,
            clock,
            http,
            lease_ttl: DEFAULT_LEASE_TTL,
            sources: Mutex::new(HashMap::new()),
            sinks: Mutex::new(HashMap::new()),
        })
    }

    /// Overrides the poll lease's time to live.
    pub fn with_lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }

    /// The configuration.
    pub fn config(&self) -> &ConnectorConfig {
        &self.config
    }

    /// The ports.
    pub fn ports(&self) -> &Ports {
        &self.ports
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// A configured flow.
    pub fn flow(&self, id: &str) -> Result<Arc<FlowConfig>> {
        self.flows
            .get(id)
            .cloned()
            .ok_or_else(|| Error::UnknownFlow(id.to_string()))
    }

    /// The runtime of a flow: its destination's queue and the shared stores.
    pub fn runtime(&self, flow: Arc<FlowConfig>) -> FlowRuntime {
        FlowRuntime {
            settings: self.settings.clone(),
            watermarks: self.ports.watermarks.clone(),
            state: self.ports.state.clone(),
            audit: self.ports.audit.clone(),
            queue: self.ports.queue(Target::of(&flow)).clone(),
            clock: self.clock.clone(),
            lease_ttl: self.lease_ttl,
            flow,
        }
    }

    /// The SYSPRO source of a flow, built on first use.
    pub fn source(&self, flow: &FlowConfig) -> Result<Arc<dyn Source>> {
        if let Some(s) = lock(&self.sources).get(&flow.id) {
            return Ok(s.clone());
        }
        let s: Arc<dyn Source> = Arc::new(
            mlc_syspro::SysproSource::new(
                &flow.syspro,
                self.ports.secrets.clone(),
                self.http.clone(),
            )
            .map_err(|e| Error::Wiring {
                flow: flow.id.clone(),
                what: format!("SYSPRO source: {}", crate::error::chain(&e)),
            })?,
        );
        Ok(lock(&self.sources)
            .entry(flow.id.clone())
            .or_insert(s)
            .clone())
    }

    /// The destination sink of a flow, built on first use.
    pub fn sink(&self, flow: &FlowConfig) -> Result<Arc<dyn Sink>> {
        if let Some(s) = lock(&self.sinks).get(&flow.id) {
            return Ok(s.clone());
        }
        let wiring = |what: String| Error::Wiring {
            flow: flow.id.clone(),
            what,
        };
        let s: Arc<dyn Sink> = match &flow.destination {
            Destination::Salesforce(_) => Arc::new(
                mlc_salesforce::SalesforceSink::new(
                    flow,
                    self.ports.secrets.clone(),
                    self.http.clone(),
                    self.clock.clone(),
                    self.ports.state.clone(),
                )
                .map_err(|e| wiring(format!("Salesforce sink: {}", crate::error::chain(&e))))?,
            ),
            Destination::Monday(_) => Arc::new(
                mlc_monday::MondaySink::new(
                    flow,
                    self.ports.secrets.clone(),
                    self.http.clone(),
                    self.clock.clone(),
                    self.ports.budget.clone(),
                    self.ports.state.clone(),
                )
                .map_err(|e| wiring(format!("Monday.com sink: {}", crate::error::chain(&e))))?,
            ),
        };
        Ok(lock(&self.sinks)
            .entry(flow.id.clone())
            .or_insert(s)
            .clone())
    }

    /// Sinks of the given flows that write to `target`. Flows that are unknown, write elsewhere
    /// or whose sink cannot be built are left out (the engine hands their messages back, so
    /// nothing is lost while the configuration is fixed) and logged.
    pub fn sink_set<'a>(
        &self,
        target: Target,
        flows: impl IntoIterator<Item = &'a str>,
    ) -> SinkSet {
        let mut set = SinkSet::new();
        for id in flows {
            if set.contains_key(id) {
                continue;
            }
            let flow = match self.flow(id) {
                Ok(f) => f,
                Err(_) => {
                    warn!(flow = %id, destination = target.name(), "change batch for a flow that is not configured");
                    continue;
                }
            };
            if Target::of(&flow) != target {
                warn!(flow = %id, destination = target.name(), "change batch for a flow of another destination");
                continue;
            }
            match self.sink(&flow) {
                Ok(sink) => {
                    set.insert(id.to_string(), (self.runtime(flow), sink));
                }
                Err(e) => {
                    warn!(flow = %id, error = %crate::error::chain(&e), "cannot build the sink")
                }
            }
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(name: &str) -> Option<String> {
        Some(format!("value-of-{name}"))
    }

    #[test]
    fn every_missing_variable_is_named_at_once() {
        let Err(Error::Env(msg)) = EnvSettings::from_lookup(|_| None) else {
            panic!("expected an environment error");
        };
        for n in [
            CONTROL_TABLE_ENV,
            RECORDS_TABLE_ENV,
            AUDIT_TABLE_ENV,
            SALESFORCE_QUEUE_URL_ENV,
            SALESFORCE_DLQ_URL_ENV,
            MONDAY_QUEUE_URL_ENV,
            MONDAY_DLQ_URL_ENV,
        ] {
            assert!(msg.contains(n), "{msg}");
        }
    }

    #[test]
    fn flows_file_or_inline_not_both() {
        let both = EnvSettings::from_lookup(|n| match n {
            TODAY_ENV | AUDIT_TTL_DAYS_ENV => None,
            _ => full(n),
        });
        assert!(matches!(both, Err(Error::Env(m)) if m.contains("not both")));

        let inline = EnvSettings::from_lookup(|n| match n {
            FLOWS_FILE_ENV | TODAY_ENV => None,
            AUDIT_TTL_DAYS_ENV => Some("400".into()),
            _ => full(n),
        })
        .unwrap();
        assert_eq!(
            inline.flows,
            FlowsSource::Inline(format!("value-of-{FLOWS_TOML_ENV}"))
        );
        assert_eq!(inline.audit_ttl_days, Some(400));
        assert!(inline.today.is_none());

        let default = EnvSettings::from_lookup(|n| match n {
            FLOWS_FILE_ENV | FLOWS_TOML_ENV | AUDIT_TTL_DAYS_ENV => None,
            TODAY_ENV => Some("2026-11-24".into()),
            _ => full(n),
        })
        .unwrap();
        let FlowsSource::Files(paths) = &default.flows else {
            panic!("expected default paths");
        };
        assert!(paths.iter().any(|p| p.ends_with("flows.toml")));
        assert_eq!(default.today, NaiveDate::from_ymd_opt(2026, 11, 24));
    }

    #[test]
    fn bad_values_are_reported() {
        let r = EnvSettings::from_lookup(|n| match n {
            FLOWS_FILE_ENV => None,
            TODAY_ENV => Some("24/11/2026".into()),
            AUDIT_TTL_DAYS_ENV => Some("a year".into()),
            _ => full(n),
        });
        let Err(Error::Env(msg)) = r else {
            panic!("expected an environment error")
        };
        assert!(
            msg.contains(TODAY_ENV) && msg.contains(AUDIT_TTL_DAYS_ENV),
            "{msg}"
        );
    }
}
