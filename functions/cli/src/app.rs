//! Wiring for local runs: configuration, SQLite stores and queues, secrets, clock, and the
//! SYSPRO source and destination sinks of each flow.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mlc_core::config::{ConnectorConfig, Destination, FlowConfig};
use mlc_core::ports::{
    AuditLog, Budget, Queue, RecordStateStore, Secrets, Sink, Source, WatermarkStore,
};
use mlc_core::{Clock, FixedClock, SystemClock};
use mlc_embedded::{EnvSecrets, QueueOptions, SqliteQueue, SqliteStore};
use mlc_engine::{FlowRuntime, SinkSet};

/// Receives before the local queue dead-letters a message by itself (as SQS's
/// `maxReceiveCount`, at its maximum): the sink decides dead letters by the retry horizon, with
/// the reason; the queue's own redrive is only the last resort for a message that crashes
/// every pass. Hand-backs back off to 15 minutes, so a day of retries is ≈ 100 receives.
const QUEUE_MAX_RECEIVES: u32 = 1000;

/// A failure while wiring, with its exit code.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Bad configuration or arguments (exit 2).
    #[error("{0}")]
    Config(String),
    /// Anything else (exit 1).
    #[error("{0}")]
    Runtime(String),
}

impl AppError {
    /// The process exit code.
    pub fn code(&self) -> u8 {
        match self {
            AppError::Config(_) => 2,
            AppError::Runtime(_) => 1,
        }
    }
}

/// The clock from `--today` / `ML_CONNECTOR_TODAY`.
pub fn clock(today: Option<&str>) -> Result<Arc<dyn Clock>, AppError> {
    match today {
        Some(s) => {
            let d = mlc_core::clock::parse_today(s).map_err(AppError::Config)?;
            Ok(Arc::new(FixedClock::today(d)))
        }
        None => Ok(Arc::new(SystemClock)),
    }
}

/// The process-wide HTTP client: one connection pool, timeouts always set.
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, AppError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(60))
        .user_agent(concat!("ml-connector/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| AppError::Runtime(format!("cannot build the HTTP client: {e}")))
}

/// Everything a local run needs.
pub struct App {
    /// The configuration.
    pub config: Arc<ConnectorConfig>,
    /// Stores.
    pub store: SqliteStore,
    /// One queue per destination (`salesforce`, `monday`), like the AWS deployment.
    pub queues: BTreeMap<&'static str, Arc<SqliteQueue>>,
    /// Secrets.
    pub secrets: Arc<dyn Secrets>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// HTTP client.
    pub http: reqwest::Client,
    /// Monday.com budget window override (the demo scales "a minute" to seconds).
    pub monday_window: Option<Duration>,
    /// How long a poll's lease lasts without renewal (polls renew it every page): a crashed
    /// process blocks its flows for at most this long.
    pub lease_ttl: Duration,
}

/// Destinations, in the order they are drained.
pub const DESTINATIONS: [&str; 2] = ["salesforce", "monday"];

impl App {
    /// Loads the configuration and opens local state.
    pub fn open(
        config_path: &Path,
        state: Option<&Path>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, AppError> {
        let config = mlc_config::load(config_path).map_err(|e| AppError::Config(e.to_string()))?;
        Self::with_config(
            config,
            config_path,
            state,
            clock,
            Arc::new(EnvSecrets::new()),
        )
    }

    /// Builds from an already loaded configuration (the demo).
    pub fn with_config(
        config: ConnectorConfig,
        config_path: &Path,
        state: Option<&Path>,
        clock: Arc<dyn Clock>,
        secrets: Arc<dyn Secrets>,
    ) -> Result<Self, AppError> {
        let state_path = match state {
            Some(p) => p.to_path_buf(),
            None => {
                let rel = PathBuf::from(&config.settings.state_path);
                if rel.is_absolute() {
                    rel
                } else {
                    config_path.parent().unwrap_or(Path::new(".")).join(rel)
                }
            }
        };
        let store = SqliteStore::open(&state_path).map_err(|e| {
            AppError::Runtime(format!("cannot open state {}: {e}", state_path.display()))
        })?;
        let mut queues = BTreeMap::new();
        for d in DESTINATIONS {
            let opts = QueueOptions {
                max_receive_count: QUEUE_MAX_RECEIVES,
                ..QueueOptions::default()
            };
            let q = SqliteQueue::open_named(&state_path, d, opts)
                .map_err(|e| AppError::Runtime(format!("cannot open queue {d}: {e}")))?;
            queues.insert(d, Arc::new(q));
        }
        Ok(App {
            config: Arc::new(config),
            store,
            queues,
            secrets,
            clock,
            http: http_client(Duration::from_secs(60))?,
            monday_window: None,
            lease_ttl: Duration::from_secs(60),
        })
    }

    /// The flows selected by `--flow` (all when `None`).
    pub fn flows(&self, only: Option<&str>) -> Result<Vec<Arc<FlowConfig>>, AppError> {
        let flows: Vec<Arc<FlowConfig>> = self
            .config
            .flows
            .iter()
            .filter(|f| only.is_none_or(|o| o == f.id))
            .cloned()
            .map(Arc::new)
            .collect();
        if flows.is_empty() {
            return Err(AppError::Config(match only {
                Some(f) => format!("no flow {f:?} in the configuration"),
                None => "the configuration has no flows".into(),
            }));
        }
        Ok(flows)
    }

    /// The queue of a flow's destination.
    pub fn queue_for(&self, flow: &FlowConfig) -> Arc<SqliteQueue> {
        self.queues[flow.destination_name()].clone()
    }

    /// The runtime of a flow.
    pub fn runtime(&self, flow: Arc<FlowConfig>) -> FlowRuntime {
        let store = Arc::new(self.store.clone());
        let queue: Arc<dyn Queue> = self.queue_for(&flow);
        FlowRuntime {
            settings: Arc::new(self.config.settings.clone()),
            watermarks: store.clone() as Arc<dyn WatermarkStore>,
            state: store.clone() as Arc<dyn RecordStateStore>,
            audit: store as Arc<dyn AuditLog>,
            queue,
            clock: self.clock.clone(),
            lease_ttl: self.lease_ttl,
            flow,
        }
    }

    /// The SYSPRO source of a flow.
    pub fn source(&self, flow: &FlowConfig) -> Result<Arc<dyn Source>, AppError> {
        let s =
            mlc_syspro::SysproSource::new(&flow.syspro, self.secrets.clone(), self.http.clone())
                .map_err(|e| AppError::Config(format!("flow {}: SYSPRO: {e}", flow.id)))?;
        Ok(Arc::new(s))
    }

    /// The destination sink of a flow.
    pub fn sink(&self, flow: &FlowConfig) -> Result<Arc<dyn Sink>, AppError> {
        let state: Arc<dyn RecordStateStore> = Arc::new(self.store.clone());
        match &flow.destination {
            Destination::Salesforce(_) => {
                let s = mlc_salesforce::SalesforceSink::new(
                    flow,
                    self.secrets.clone(),
                    self.http.clone(),
                    self.clock.clone(),
                    state,
                )
                .map_err(|e| AppError::Config(format!("flow {}: Salesforce: {e}", flow.id)))?;
                Ok(Arc::new(s))
            }
            Destination::Monday(_) => {
                let budget: Arc<dyn Budget> = Arc::new(self.store.clone());
                let mut s = mlc_monday::MondaySink::new(
                    flow,
                    self.secrets.clone(),
                    self.http.clone(),
                    self.clock.clone(),
                    budget,
                    state,
                )
                .map_err(|e| AppError::Config(format!("flow {}: Monday.com: {e}", flow.id)))?;
                if let Some(window) = self.monday_window {
                    s = s.with_options(mlc_monday::SinkOptions {
                        window,
                        ..Default::default()
                    });
                }
                Ok(Arc::new(s))
            }
        }
    }

    /// Sinks for every flow of a destination.
    pub fn sink_set(&self, destination: &str) -> Result<SinkSet, AppError> {
        let mut set = SinkSet::new();
        for f in self
            .config
            .flows
            .iter()
            .filter(|f| f.destination_name() == destination)
        {
            let flow = Arc::new(f.clone());
            set.insert(
                f.id.clone(),
                (self.runtime(flow.clone()), self.sink(&flow)?),
            );
        }
        Ok(set)
    }
}
