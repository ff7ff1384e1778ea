//! `ml-connector`: the command line. Runs the whole pipeline on one machine over SQLite (the
//! default runtime), checks credentials, shows status and audit history, replays dead letters,
//! and runs a demo against simulators.
//!
//! Exit codes (scripts rely on them):
//! - 0: success;
//! - 1: runtime failure (a store, a network call);
//! - 2: usage or configuration error;
//! - 3: finished, but records were dead-lettered or the demo did not converge;
//! - 4: a credential or endpoint check failed (`ping`);
//! - 5: `sync --once` finished, but records remain queued for a retry or waiting (deferred).

mod app;
mod commands;
mod daemon;
mod demo;
mod output;
mod preview;
mod resync;
mod watermark;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Keeps SYSPRO aligned with Salesforce and Monday.com.
#[derive(Debug, Parser)]
#[command(name = "ml-connector", version, about)]
pub struct Cli {
    /// Pin "today" (YYYY-MM-DD) for overdue and aging; reproducible runs.
    #[arg(long, global = true, env = "ML_CONNECTOR_TODAY")]
    pub today: Option<String>,
    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Log filter (e.g. `info`, `ml_connector=debug`); logs go to stderr.
    #[arg(long, global = true, env = "ML_CONNECTOR_LOG", default_value = "warn")]
    pub log: String,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by commands that read a configuration.
#[derive(Debug, clap::Args, Clone)]
pub struct ConfigArgs {
    /// The flows file (TOML).
    #[arg(long, short = 'c', env = "ML_CONNECTOR_CONFIG")]
    pub config: PathBuf,
    /// Where local state lives (SQLite file); default from the config's `settings.state_path`.
    #[arg(long, env = "ML_CONNECTOR_STATE")]
    pub state: Option<PathBuf>,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Poll flows and push changes to their destinations.
    Sync {
        #[command(flatten)]
        cfg: ConfigArgs,
        /// One poll of each flow, deliver what it queued, then exit.
        #[arg(long)]
        once: bool,
        /// Only this flow.
        #[arg(long)]
        flow: Option<String>,
        /// Read SYSPRO and report what would change; write nothing anywhere.
        #[arg(long)]
        dry_run: bool,
        /// Serve `POST /flows/{flow}/sync` (signed), `GET /healthz` and `GET /flows` here
        /// (long-running mode only), e.g. `127.0.0.1:8787`.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Triggers within this many seconds after a poll started join it.
        #[arg(long, default_value_t = 30)]
        coalesce_secs: u64,
    },
    /// Check every credential and endpoint; writes no data.
    Ping {
        #[command(flatten)]
        cfg: ConfigArgs,
    },
    /// Per flow: watermarks, lag, queued, dead-lettered, last run.
    Status {
        #[command(flatten)]
        cfg: ConfigArgs,
    },
    /// The full history of one record (`100045`, `C0001|100045|I`).
    Audit {
        #[command(flatten)]
        cfg: ConfigArgs,
        /// The record key.
        key: String,
        /// Only this flow.
        #[arg(long)]
        flow: Option<String>,
    },
    /// Move dead-lettered records back to the queue.
    Replay {
        #[command(flatten)]
        cfg: ConfigArgs,
        /// Only this flow.
        #[arg(long)]
        flow: Option<String>,
        /// Only these keys (repeatable).
        #[arg(long = "key")]
        keys: Vec<String>,
        /// Only records polled since (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// At most this many records.
        #[arg(long, default_value_t = 500)]
        limit: usize,
        /// Count only.
        #[arg(long)]
        dry_run: bool,
    },
    /// Start SYSPRO, Salesforce and Monday.com simulators, sync a realistic company, check the
    /// destinations against the source and print a summary.
    Demo(demo::DemoArgs),
    /// Show one record as a sync would write it now, field by field, beside the destination's
    /// current values, and what the sync would do. Writes nothing.
    Preview {
        #[command(flatten)]
        cfg: ConfigArgs,
        /// The flow.
        #[arg(long)]
        flow: String,
        /// The record key (`ACME01`, `ACME01|100045|I`).
        #[arg(long)]
        key: String,
        /// The entity (default: the first of the flow's entities that has the key).
        #[arg(long)]
        entity: Option<String>,
    },
    /// Re-send records as SYSPRO has them now, whatever was sent before, and deliver them:
    /// one key, one entity, or every entity of a flow.
    Resync {
        #[command(flatten)]
        cfg: ConfigArgs,
        /// The flow.
        #[arg(long)]
        flow: String,
        /// The entity (default: every entity of the flow).
        #[arg(long)]
        entity: Option<String>,
        /// One record key (`ACME01`, `ACME01|100045|I`); needs --entity when the flow reads
        /// several entities.
        #[arg(long)]
        key: Option<String>,
    },
    /// Show a flow's watermarks in words, or reset them so the next poll reads an entity whole
    /// (or from a chosen rowversion or date).
    Watermark {
        /// `show` or `reset`.
        #[command(subcommand)]
        action: watermark::WatermarkAction,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    output::init_logging(&cli.log);
    tracing::debug!(allocator = mlc_alloc::allocator(), "starting");
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let code = rt.block_on(commands::run(cli));
    ExitCode::from(code)
}
