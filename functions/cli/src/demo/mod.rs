//! `ml-connector demo`: SYSPRO, Salesforce and Monday.com simulators on loopback, a realistic
//! company, a sync, and a check of the destinations against the source.
//!
//! Three ways to run it:
//! - `demo`: simulators in this process, sync until converged, verify, print a summary;
//! - `demo --serve DIR`: simulators only, flows file in `DIR`, a control endpoint; runs until
//!   killed (the "vendors" of a kill-and-restart test: they outlive the connector);
//! - `demo --attach DIR`: the connector against simulators served by `--serve DIR`, with its
//!   state in `DIR` (kill it at any point and run it again).

mod serve;
pub mod verify;
pub mod world;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use mlc_core::ports::Queue;
use mlc_core::Clock;
use mlc_engine::local::DrainOptions;
use mlc_engine::{replay, ReplayFilter};
use serde::Serialize;

use crate::app::{App, AppError, DESTINATIONS};
use crate::commands::sync_pass;
use crate::output::print_table;
use verify::{verify, MustExist, Verification};
use world::{World, WorldSize};

/// Demo options.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Customers to generate.
    #[arg(long, default_value_t = 200)]
    pub customers: usize,
    /// AR invoices to generate.
    #[arg(long, default_value_t = 2000)]
    pub invoices: usize,
    /// Purchase orders to generate (as many AP invoices too).
    #[arg(long, default_value_t = 300)]
    pub pos: usize,
    /// Suppliers to generate.
    #[arg(long, default_value_t = 50)]
    pub suppliers: usize,
    /// Fault rate on every external call (0.0–1.0).
    #[arg(long, default_value_t = 0.0)]
    pub faults: f64,
    /// Seed for data and faults.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Keep the flows file and state in this folder (default: a temporary folder).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Serve the simulators only (flows file and control endpoint in this folder) until killed.
    #[arg(long, conflicts_with = "attach")]
    pub serve: Option<PathBuf>,
    /// Sync against simulators served by `--serve DIR`, with state in that folder.
    #[arg(long)]
    pub attach: Option<PathBuf>,
    /// Milliseconds that stand for Monday.com's one-minute budget window (the demo compresses
    /// time so 40 mutations per board per minute finish in seconds).
    #[arg(long, default_value_t = 1000)]
    pub monday_window_ms: u64,
    /// Sync rounds at most before giving up on convergence.
    #[arg(long, default_value_t = 30)]
    pub max_rounds: usize,
}

/// The JSON summary (`--json`). Field names are a contract read by outside checks.
#[derive(Debug, Serialize)]
pub struct DemoSummary {
    /// Destinations equal the source: nothing lost, duplicated or regressed, nothing left in
    /// a dead-letter queue.
    pub converged: bool,
    /// Records missing from a destination.
    pub lost: usize,
    /// Extra destination records for one key.
    pub duplicates: usize,
    /// Destination records differing from the source's final state.
    pub regressions: usize,
    /// Records left in dead-letter queues at the end.
    pub dead_lettered: u64,
    /// Records replayed from dead-letter queues during the run.
    pub replayed: usize,
    /// Source rows per entity.
    pub source: std::collections::BTreeMap<String, usize>,
    /// Salesforce totals.
    pub salesforce: verify::SalesforceCounts,
    /// Monday.com totals.
    pub monday: verify::MondayCounts,
    /// Wall time.
    pub elapsed_ms: u128,
    /// Sync rounds run.
    pub rounds: usize,
    /// The fault rate.
    pub faults: f64,
    /// The seed.
    pub seed: u64,
    /// The business date used.
    pub today: NaiveDate,
    /// What was checked and what differs.
    pub notes: Vec<String>,
    /// Records in a destination whose audit history lacks the poll that read them or the write
    /// that landed them.
    pub audit_incomplete: usize,
}

/// Runs the demo.
pub async fn run(args: DemoArgs, clock: Arc<dyn Clock>, json: bool) -> Result<u8, AppError> {
    if let Some(dir) = args.serve.clone() {
        return serve::serve(args, dir, clock).await;
    }
    if let Some(dir) = args.attach.clone() {
        return serve::attach(args, dir, clock, json).await;
    }
    let started = Instant::now();
    let today = clock.today(chrono_tz::Tz::Africa__Johannesburg);
    let size = WorldSize {
        customers: args.customers,
        invoices: args.invoices,
        pos: args.pos,
        suppliers: args.suppliers,
    };
    let window = Duration::from_millis(args.monday_window_ms.max(50));
    let world = World::start(size, args.seed, today, clock.clone(), window)
        .await
        .map_err(|e| AppError::Runtime(format!("cannot start the simulators: {e}")))?;
    let (_tmp, dir) = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d)
                .map_err(|e| AppError::Runtime(format!("cannot create {}: {e}", d.display())))?;
            (None, d.clone())
        }
        None => {
            let t = tempfile_dir()?;
            let p = t.path().to_path_buf();
            (Some(t), p)
        }
    };
    let config_path = dir.join("flows.toml");
    std::fs::write(&config_path, &world.config_toml)
        .map_err(|e| AppError::Runtime(format!("cannot write {}: {e}", config_path.display())))?;
    let config = mlc_config::load(&config_path)
        .map_err(|e| AppError::Config(format!("demo config: {e}")))?;
    let mut app = App::with_config(
        config.clone(),
        &config_path,
        None,
        clock.clone(),
        Arc::new(world::secrets()),
    )?;
    app.monday_window = Some(window);
    app.lease_ttl = Duration::from_secs(5);

    world.set_faults(args.faults, args.seed);
    let mut must = MustExist::default();
    must.add_open_now(&world, &config, today);

    // Round 1: first sync (a backfill) until the queues are empty.
    let mut rounds = converge(&app, &args, json, "first sync").await?;

    // Then SYSPRO moves on: payments that change only balances, new invoices, a renamed
    // customer. The next sync must carry exactly those changes.
    mutate(&world, args.seed, today);
    must.add_open_now(&world, &config, today);
    rounds += converge(&app, &args, json, "incremental sync").await?;

    // Whatever was dead-lettered converges after one replay, with faults off.
    world.clear_faults();
    let replayed = replay_all(&app).await?;
    if replayed > 0 {
        rounds += converge(&app, &args, json, "after replay").await?;
    }
    let dead = dead_letters(&app).await?;
    let mut v = verify(&world, &config, today, &must);
    let (checked, incomplete) = audit_gaps(&app, &world).await?;
    if incomplete > 0 {
        v.examples.push(format!(
            "audit: {incomplete} of {checked} synced records lack a complete history"
        ));
    }
    let mut summary = summarize(v, dead, replayed, rounds, &args, today, started);
    summary.audit_incomplete = incomplete;
    summary.converged &= incomplete == 0;
    print_summary(&summary, json, &dir);
    Ok(if summary.converged { 0 } else { 3 })
}

fn tempfile_dir() -> Result<tempfile::TempDir, AppError> {
    tempfile::Builder::new()
        .prefix("ml-connector-demo-")
        .tempdir()
        .map_err(|e| AppError::Runtime(format!("cannot create a temporary folder: {e}")))
}

/// Sync passes until every poll succeeded and the queues are empty.
async fn converge(app: &App, args: &DemoArgs, json: bool, label: &str) -> Result<usize, AppError> {
    let opts = DrainOptions {
        max_wait: Duration::from_secs(120),
        max_delay: Some(Duration::from_millis(500)),
        // A killed run's in-flight messages come back quickly.
        visibility: Duration::from_secs(10),
        ..DrainOptions::default()
    };
    let pb = progress(json, label);
    let mut rounds = 0;
    while rounds < args.max_rounds {
        rounds += 1;
        let s = sync_pass(app, None, false, &opts).await?;
        if let Some(pb) = &pb {
            let queued: usize = s.polls.iter().map(|p| p.queued()).sum();
            pb.set_message(format!("{label}: round {rounds}, {queued} changes queued"));
        }
        let left: u64 = s.deliveries.values().map(|d| d.left_queued).sum();
        if s.polls.iter().any(|p| p.skipped) {
            // A killed run's lease lapses within the lease TTL.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        if s.failed_flows.is_empty() && left == 0 && s.polls.iter().all(|p| !p.skipped) {
            // One more poll must find nothing new: the watermarks and hashes agree with SYSPRO.
            let again = sync_pass(app, None, false, &opts).await?;
            rounds += 1;
            let queued: usize = again.polls.iter().map(|p| p.queued()).sum();
            let left: u64 = again.deliveries.values().map(|d| d.left_queued).sum();
            if again.failed_flows.is_empty() && queued == 0 && left == 0 {
                break;
            }
        }
    }
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    Ok(rounds)
}

fn progress(json: bool, label: &str) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if json || !std::io::stderr().is_terminal() {
        return None;
    }
    let pb = indicatif::ProgressBar::new_spinner();
    pb.set_message(label.to_string());
    pb.enable_steady_tick(Duration::from_millis(120));
    Some(pb)
}

/// Payments on some open invoices (balance only), new invoices, a renamed customer.
pub fn mutate(world: &World, seed: u64, today: NaiveDate) {
    let snap = world.syspro.snapshot();
    let invoices = snap.get("ArInvoice").cloned().unwrap_or_default();
    let s =
        |v: Option<&serde_json::Value>| v.and_then(|x| x.as_str()).unwrap_or_default().to_string();
    let mut paid = 0;
    for (i, row) in invoices.iter().enumerate() {
        let bal = row
            .get("InvoiceBal1")
            .and_then(|v| v.as_f64())
            .unwrap_or(0.0);
        if bal > 0.0 && (i as u64 + seed).is_multiple_of(7) && paid < 50 {
            let _ = world
                .syspro
                .post_payment(&s(row.get("Customer")), &s(row.get("Invoice")), bal);
            paid += 1;
        }
    }
    let customers = snap.get("ArCustomer").cloned().unwrap_or_default();
    for row in customers.iter().take(5) {
        let _ = world
            .syspro
            .post_invoice(&s(row.get("Customer")), today, 1234.5, "30");
    }
    if let Some(row) = customers.get(1) {
        let mut ch = serde_json::Map::new();
        ch.insert(
            "Name".into(),
            serde_json::Value::String(format!("{} (Pty) Ltd", s(row.get("Name")).trim())),
        );
        let _ = world.syspro.edit_customer(&s(row.get("Customer")), &ch);
    }
}

/// Checks that every record a destination holds has a complete audit history: the poll that
/// queued it and the write that landed it (created or updated), oldest first.
async fn audit_gaps(app: &App, world: &World) -> Result<(usize, usize), AppError> {
    use mlc_core::ports::AuditLog;
    use mlc_core::SyncOutcome;
    let mut keys: Vec<(&str, String)> = Vec::new();
    for a in world.salesforce.accounts() {
        keys.push(("demo-sf", a.text("SYSPRO_Customer__c").unwrap_or_default()));
    }
    for o in world.salesforce.opportunities() {
        keys.push(("demo-sf", o.text("SYSPRO_Invoice__c").unwrap_or_default()));
    }
    for board in [world::SUPPLIER_BOARD, world::AP_BOARD, world::PO_BOARD] {
        for it in world.monday.items(board) {
            let id = it
                .values
                .get("syspro_id")
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string();
            keys.push(("demo-monday", id));
        }
    }
    let mut incomplete = 0;
    for (flow, key) in &keys {
        let h = app
            .store
            .history(Some(flow), key)
            .await
            .map_err(|e| AppError::Runtime(e.to_string()))?;
        let queued = h.iter().position(|e| e.outcome == SyncOutcome::Queued);
        let landed = h
            .iter()
            .rposition(|e| matches!(e.outcome, SyncOutcome::Created | SyncOutcome::Updated));
        let complete = matches!((queued, landed), (Some(q), Some(l)) if q < l)
            && h.iter()
                .all(|e| !e.poll_id.is_empty() && !e.content_hash.is_empty());
        if !complete {
            incomplete += 1;
        }
    }
    Ok((keys.len(), incomplete))
}

/// Replays every dead letter of every destination.
pub async fn replay_all(app: &App) -> Result<usize, AppError> {
    let mut moved = 0;
    for d in DESTINATIONS {
        let q = app.queues[d].clone();
        let r = replay(
            q.as_ref(),
            &app.store,
            app.clock.as_ref(),
            &ReplayFilter {
                limit: Some(usize::MAX),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| AppError::Runtime(crate::commands::error_chain(&e)))?;
        moved += r.moved;
    }
    Ok(moved)
}

/// Messages left in the dead-letter queues.
pub async fn dead_letters(app: &App) -> Result<u64, AppError> {
    let mut dead = 0;
    for d in DESTINATIONS {
        dead += app.queues[d]
            .depth()
            .await
            .map_err(|e| AppError::Runtime(e.to_string()))?
            .dead;
    }
    Ok(dead)
}

/// Builds the summary from a verification.
pub fn summarize(
    v: Verification,
    dead: u64,
    replayed: usize,
    rounds: usize,
    args: &DemoArgs,
    today: NaiveDate,
    started: Instant,
) -> DemoSummary {
    DemoSummary {
        converged: v.lost == 0 && v.duplicates == 0 && v.regressions == 0 && dead == 0,
        lost: v.lost,
        duplicates: v.duplicates,
        regressions: v.regressions,
        dead_lettered: dead,
        replayed,
        source: v.source,
        salesforce: v.salesforce,
        monday: v.monday,
        elapsed_ms: started.elapsed().as_millis(),
        rounds,
        faults: args.faults,
        seed: args.seed,
        today,
        notes: v.examples,
        audit_incomplete: 0,
    }
}

/// Prints the summary table (or JSON).
pub fn print_summary(s: &DemoSummary, json: bool, dir: &std::path::Path) {
    if json {
        crate::output::print_json(s);
        return;
    }
    println!("ml-connector demo — SYSPRO → Salesforce and Monday.com (simulators on loopback)");
    println!(
        "business date {} · seed {} · fault rate {} · {} sync rounds · {:.1} s",
        s.today,
        s.seed,
        s.faults,
        s.rounds,
        s.elapsed_ms as f64 / 1000.0
    );
    println!(
        "Monday.com's per-minute limits are compressed to --monday-window-ms; ratios are the same."
    );
    println!();
    let src = |t: &str| s.source.get(t).copied().unwrap_or(0).to_string();
    print_table(
        &["", "SYSPRO rows", "destination"],
        &[
            vec![
                "customers → Accounts".into(),
                src("ArCustomer"),
                s.salesforce.accounts.to_string(),
            ],
            vec![
                "AR invoices → Opportunities (open ones sync)".into(),
                src("ArInvoice"),
                s.salesforce.opportunities.to_string(),
            ],
            vec![
                "suppliers, AP invoices, POs → Monday items".into(),
                format!(
                    "{} + {} + {}",
                    src("ApSupplier"),
                    src("ApInvoice"),
                    src("PorMasterHdr")
                ),
                s.monday.items.to_string(),
            ],
        ],
    );
    println!();
    println!(
        "Salesforce API calls {} · Monday.com mutations {} in {} requests, throttled {}",
        s.salesforce.api_calls, s.monday.mutations, s.monday.requests, s.monday.throttled
    );
    println!(
        "lost {} · duplicates {} · regressions {} · dead-lettered {} · replayed {}",
        s.lost, s.duplicates, s.regressions, s.dead_lettered, s.replayed
    );
    for n in &s.notes {
        println!("  {n}");
    }
    println!(
        "{}",
        if s.converged {
            "converged: destinations equal the source"
        } else {
            "NOT converged"
        }
    );
    println!("flows file and state: {} (kept with --dir)", dir.display());
}
