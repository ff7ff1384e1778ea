//! The commands, each returning an exit code.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use mlc_core::ports::Queue;
use mlc_engine::local::{drain, DrainOptions, DrainReport};
use mlc_engine::{poll_flow_with, replay, PollOptions, PollReport, ReplayFilter};
use serde::Serialize;
use tracing::error;

use crate::app::{App, AppError, DESTINATIONS};
use crate::output::{print_json, print_table};
use crate::{Cli, Command, ConfigArgs};

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> u8 {
    let json = cli.json;
    let clock = match crate::app::clock(cli.today.as_deref()) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let open = |cfg: &ConfigArgs| App::open(&cfg.config, cfg.state.as_deref(), clock.clone());
    let result = match cli.command {
        Command::Sync {
            cfg,
            once,
            flow,
            dry_run,
            listen,
            coalesce_secs,
        } => match open(&cfg) {
            Ok(app) => {
                if once || dry_run {
                    sync_once(&app, flow.as_deref(), dry_run, json).await
                } else {
                    crate::daemon::run(
                        app,
                        flow.as_deref(),
                        listen,
                        Duration::from_secs(coalesce_secs),
                    )
                    .await
                }
            }
            Err(e) => Err(e),
        },
        Command::Ping { cfg } => match open(&cfg) {
            Ok(app) => ping(&app, json).await,
            Err(e) => Err(e),
        },
        Command::Status { cfg } => match open(&cfg) {
            Ok(app) => status(&app, json).await,
            Err(e) => Err(e),
        },
        Command::Audit { cfg, key, flow } => match open(&cfg) {
            Ok(app) => audit(&app, &key, flow.as_deref(), json).await,
            Err(e) => Err(e),
        },
        Command::Replay {
            cfg,
            flow,
            keys,
            since,
            limit,
            dry_run,
        } => match open(&cfg) {
            Ok(app) => {
                let since = match since.as_deref().map(parse_time).transpose() {
                    Ok(s) => s,
                    Err(e) => return fail(&e),
                };
                let filter = ReplayFilter {
                    flow,
                    keys,
                    since,
                    limit: Some(limit),
                    dry_run,
                };
                replay_cmd(&app, &filter, json).await
            }
            Err(e) => Err(e),
        },
        Command::Demo(args) => crate::demo::run(args, clock, json).await,
        Command::Preview {
            cfg,
            flow,
            key,
            entity,
        } => match open(&cfg) {
            Ok(app) => crate::preview::run(&app, &flow, &key, entity.as_deref(), json).await,
            Err(e) => Err(e),
        },
        Command::Resync {
            cfg,
            flow,
            entity,
            key,
        } => match open(&cfg) {
            Ok(app) => {
                crate::resync::run(&app, &flow, entity.as_deref(), key.as_deref(), json).await
            }
            Err(e) => Err(e),
        },
        Command::Watermark { action } => crate::watermark::run(action, clock, json).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => fail(&e),
    }
}

fn fail(e: &AppError) -> u8 {
    eprintln!("error: {e}");
    e.code()
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, AppError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            AppError::Config(format!(
                "--since {s:?}: expected RFC 3339, e.g. 2026-11-01T00:00:00Z ({e})"
            ))
        })
}

fn runtime_err(e: impl std::fmt::Display) -> AppError {
    AppError::Runtime(e.to_string())
}

/// What `sync --once` did.
#[derive(Debug, Default, Serialize)]
pub struct SyncSummary {
    /// Per flow poll reports.
    pub polls: Vec<PollReport>,
    /// Per destination drain reports.
    pub deliveries: BTreeMap<String, DrainReport>,
    /// Flows whose poll failed, with the reason.
    pub failed_flows: BTreeMap<String, String>,
}

/// One poll of each selected flow, then drain their destinations' queues.
pub async fn sync_pass(
    app: &App,
    only: Option<&str>,
    dry_run: bool,
    drain_opts: &DrainOptions,
) -> Result<SyncSummary, AppError> {
    let flows = app.flows(only)?;
    let owner = format!(
        "cli-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    );
    let mut summary = SyncSummary::default();
    for flow in &flows {
        let rt = app.runtime(flow.clone());
        let source = app.source(flow)?;
        let r = poll_flow_with(
            &rt,
            source.as_ref(),
            &owner,
            PollOptions {
                dry_run,
                ..Default::default()
            },
        )
        .await;
        source.close().await;
        match r {
            Ok(r) => summary.polls.push(r),
            Err(e) => {
                error!(flow = %flow.id, error = %error_chain(&e), "poll failed");
                summary
                    .failed_flows
                    .insert(flow.id.clone(), error_chain(&e));
            }
        }
    }
    if dry_run {
        return Ok(summary);
    }
    // Each destination drains at its own pace: a slow or failing one never holds up another.
    let mut drains = Vec::new();
    for d in DESTINATIONS {
        if !flows.iter().any(|f| f.destination_name() == d) {
            continue;
        }
        let sinks = app.sink_set(d)?;
        let q = app.queues[d].clone();
        drains.push(async move {
            let r = drain(q.as_ref(), &sinks, drain_opts).await;
            (d, r)
        });
    }
    for (d, r) in futures::future::join_all(drains).await {
        let r = r.map_err(|e| runtime_err(error_chain(&e)))?;
        summary.deliveries.insert(d.to_string(), r);
    }
    Ok(summary)
}

/// `Display` of an error with its sources.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

async fn sync_once(
    app: &App,
    only: Option<&str>,
    dry_run: bool,
    json: bool,
) -> Result<u8, AppError> {
    let pb = progress(json, "syncing");
    let summary = sync_pass(app, only, dry_run, &DrainOptions::default()).await?;
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    if json {
        print_json(&summary);
    } else {
        let rows: Vec<Vec<String>> = summary
            .polls
            .iter()
            .map(|p| {
                vec![
                    p.flow.clone(),
                    if p.skipped {
                        "skipped (lease held)".into()
                    } else {
                        p.poll_id.clone()
                    },
                    p.read().to_string(),
                    p.queued().to_string(),
                ]
            })
            .collect();
        print_table(
            &[
                "flow",
                "poll",
                "rows read",
                if dry_run { "would queue" } else { "queued" },
            ],
            &rows,
        );
        for (d, r) in &summary.deliveries {
            println!(
                "{d}: created {} · updated {} · unchanged {} · retried {} · dead-lettered {} · still queued {}",
                r.created, r.updated, r.unchanged, r.retried, r.dead_lettered, r.left_queued
            );
        }
        for (f, e) in &summary.failed_flows {
            println!("{f}: poll failed: {e}");
        }
    }
    let dead: usize = summary.deliveries.values().map(|r| r.dead_lettered).sum();
    let left: u64 = summary.deliveries.values().map(|r| r.left_queued).sum();
    Ok(if !summary.failed_flows.is_empty() {
        1
    } else if dead > 0 {
        3
    } else if left > 0 && !dry_run {
        // Records wait for a retry or a deferral (their customer, a destination limit): the
        // next run delivers them, and scripts learn that this one did not finish.
        5
    } else {
        0
    })
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn progress(json: bool, msg: &'static str) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if json || !std::io::stderr().is_terminal() {
        return None;
    }
    let pb = indicatif::ProgressBar::new_spinner();
    pb.set_message(msg);
    pb.enable_steady_tick(Duration::from_millis(120));
    Some(pb)
}

#[derive(Debug, Serialize)]
struct PingLine {
    system: String,
    ok: bool,
    detail: String,
}

async fn ping(app: &App, json: bool) -> Result<u8, AppError> {
    let mut lines = Vec::new();
    for flow in app.flows(None)? {
        let fields: Vec<(mlc_core::Entity, Vec<String>)> = flow
            .entities
            .iter()
            .map(|e| {
                let mut f: Vec<String> = e
                    .mapping
                    .values()
                    .flat_map(mlc_core::mapping::source_fields)
                    .collect();
                f.retain(|x| !x.starts_with('_') && !x.contains('.'));
                (e.entity, f)
            })
            .collect();
        let mut fields = fields;
        if flow.syspro.terms_source == mlc_core::config::TermsSource::Syspro {
            // Due dates read TblArTerms at every poll: the operator must be able to read it.
            fields.push((
                mlc_core::Entity::TblArTerms,
                vec!["TermsCode".into(), "DueDays".into()],
            ));
        }
        lines.push(PingLine {
            system: format!("{} plan", flow.id),
            ok: true,
            detail: read_plan(&flow),
        });
        match app.source(&flow) {
            Ok(src) => {
                let r = src.ping(&fields).await;
                src.close().await;
                lines.push(match r {
                    Ok(info) if info.mismatches.is_empty() => PingLine {
                        system: format!("{} syspro", flow.id),
                        ok: true,
                        detail: info.summary,
                    },
                    Ok(info) => PingLine {
                        system: format!("{} syspro", flow.id),
                        ok: false,
                        detail: format!("{}; {}", info.summary, info.mismatches.join("; ")),
                    },
                    Err(e) => PingLine {
                        system: format!("{} syspro", flow.id),
                        ok: false,
                        detail: e.to_string(),
                    },
                });
            }
            Err(e) => lines.push(PingLine {
                system: format!("{} syspro", flow.id),
                ok: false,
                detail: e.to_string(),
            }),
        }
        let name = flow.destination_name();
        match app.sink(&flow) {
            Ok(sink) => lines.push(match sink.ping().await {
                Ok(l) => PingLine {
                    system: format!("{} {name}", flow.id),
                    ok: true,
                    detail: l.join("; "),
                },
                Err(e) => PingLine {
                    system: format!("{} {name}", flow.id),
                    ok: false,
                    detail: e.to_string(),
                },
            }),
            Err(e) => lines.push(PingLine {
                system: format!("{} {name}", flow.id),
                ok: false,
                detail: e.to_string(),
            }),
        }
    }
    let ok = lines.iter().all(|l| l.ok);
    if json {
        print_json(&lines);
    } else {
        for l in &lines {
            println!(
                "{} {}: {}",
                if l.ok { "ok  " } else { "FAIL" },
                l.system,
                l.detail
            );
        }
    }
    Ok(if ok { 0 } else { 4 })
}

/// How each entity of a flow is read, in words: strategy, initial scope, sweep, terms.
fn read_plan(flow: &mlc_core::FlowConfig) -> String {
    use mlc_core::config::{InitialScope, Sweep};
    let mut parts: Vec<String> = flow
        .entities
        .iter()
        .map(|e| {
            let strategy = serde_json::to_value(e.change_detection)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            let mut p = format!("{} {strategy}", e.entity);
            match (e.initial_scope, e.since) {
                (InitialScope::All, _) if e.entity.is_invoice() => {
                    p.push_str(", initial scope all (paid invoices too)")
                }
                (InitialScope::Open, _) => {
                    p.push_str(", initial scope open (paid invoices left out and counted)")
                }
                (InitialScope::Since, Some(d)) => {
                    p.push_str(&format!(", initial scope open and since {d}"))
                }
                _ => {}
            }
            if matches!(
                e.change_detection,
                mlc_core::config::ChangeDetection::Rowversion
                    | mlc_core::config::ChangeDetection::DateWindow
            ) {
                p.push_str(match e.sweep {
                    Sweep::Daily => ", key sweep daily",
                    Sweep::EveryPoll => ", key sweep every poll",
                    Sweep::Off => ", no key sweep",
                });
            }
            p
        })
        .collect();
    if flow.entity(mlc_core::Entity::ArInvoice).is_some() {
        parts.push(match flow.syspro.terms_source {
            mlc_core::config::TermsSource::Syspro => "terms from SYSPRO TblArTerms".to_string(),
            mlc_core::config::TermsSource::FlowsFile => format!(
                "terms from the flows file ({} codes, else {} days)",
                flow.syspro.terms_days.len(),
                flow.syspro.default_due_days
            ),
        });
    }
    parts.join("; ")
}

#[derive(Debug, Serialize)]
struct FlowStatus {
    flow: String,
    destination: String,
    last_poll: Option<String>,
    last_started_at: Option<DateTime<Utc>>,
    last_finished_at: Option<DateTime<Utc>>,
    lag_seconds: Option<i64>,
    running: bool,
    paused_until: Option<DateTime<Utc>>,
    pause_reason: Option<String>,
    queued: u64,
    in_flight: u64,
    dead_lettered: u64,
    watermarks: BTreeMap<String, serde_json::Value>,
    /// Per entity: initial scope, what it left out, last sweep, alert (from the notes).
    entities: BTreeMap<String, crate::watermark::EntityNotes>,
    /// Records sent over an hour ago and not applied (at most `UNAPPLIED_SHOWN` counted).
    unapplied: usize,
    /// The oldest of them.
    oldest_unapplied: Option<UnappliedRecord>,
}

/// A record sent and not applied, for `status`.
#[derive(Debug, Serialize)]
struct UnappliedRecord {
    record: String,
    sent_at: DateTime<Utc>,
}

/// Records sent and not applied that `status` counts at most.
const UNAPPLIED_SHOWN: usize = 10_000;

async fn status(app: &App, json: bool) -> Result<u8, AppError> {
    use mlc_core::ports::WatermarkStore;
    let now = app.clock.now();
    let mut out = Vec::new();
    for flow in app.flows(None)? {
        let info = app.store.run_info(&flow.id).await.map_err(runtime_err)?;
        let wms = app.store.list(&flow.id).await.map_err(runtime_err)?;
        let entities = crate::watermark::flow_notes(&flow, &wms);
        let depth = app.queue_for(&flow).depth().await.map_err(runtime_err)?;
        // Sent over an hour ago and not applied: waiting, retrying, dead-lettered or lost.
        let names: Vec<mlc_core::Entity> = flow.entities.iter().map(|e| e.entity).collect();
        let unapplied = mlc_core::ports::RecordStateStore::unapplied(
            &app.store,
            &flow.id,
            &names,
            now - chrono::Duration::hours(1),
            UNAPPLIED_SHOWN,
        )
        .await
        .map_err(runtime_err)?;
        out.push(FlowStatus {
            unapplied: unapplied.len(),
            oldest_unapplied: unapplied.first().map(|u| UnappliedRecord {
                record: format!("{}/{}", u.key.entity, u.key.key),
                sent_at: u.sent_at,
            }),
            flow: flow.id.clone(),
            destination: flow.destination_name().into(),
            last_poll: (info.last_poll_seq > 0)
                .then(|| format!("{}:{}", flow.id, info.last_poll_seq)),
            last_started_at: info.last_started_at,
            last_finished_at: info.last_finished_at,
            lag_seconds: info.last_finished_at.map(|t| (now - t).num_seconds()),
            running: info.running.is_some(),
            paused_until: info.paused_until.filter(|u| *u > now),
            pause_reason: info
                .pause_reason
                .clone()
                .filter(|_| info.paused_until.is_some_and(|u| u > now)),
            queued: depth.queued,
            in_flight: depth.in_flight,
            dead_lettered: depth.dead,
            watermarks: wms
                .into_iter()
                .map(|w| {
                    (
                        w.entity.to_string(),
                        serde_json::to_value(&w.value).unwrap_or_default(),
                    )
                })
                .collect(),
            entities,
        });
    }
    if json {
        print_json(&out);
    } else {
        for s in &out {
            crate::watermark::print_alerts(&s.flow, &s.entities);
        }
        let rows: Vec<Vec<String>> = out
            .iter()
            .map(|s| {
                vec![
                    s.flow.clone(),
                    s.destination.clone(),
                    s.last_finished_at
                        .map(|t| t.to_rfc3339())
                        .unwrap_or_else(|| "never".into()),
                    s.lag_seconds
                        .map(|l| format!("{l}s"))
                        .unwrap_or_else(|| "-".into()),
                    format!("{}", s.queued + s.in_flight),
                    s.dead_lettered.to_string(),
                    match (&s.paused_until, &s.pause_reason) {
                        (Some(u), r) => {
                            format!("paused until {u} ({})", r.clone().unwrap_or_default())
                        }
                        _ if s.running => "polling".into(),
                        _ => "idle".into(),
                    },
                ]
            })
            .collect();
        print_table(
            &[
                "flow",
                "destination",
                "last run",
                "lag",
                "queued*",
                "dead-lettered*",
                "state",
            ],
            &rows,
        );
        println!("* queue figures are per destination queue, shared by that destination's flows");
        for s in &out {
            if let Some(o) = &s.oldest_unapplied {
                println!(
                    "  {}: {} record(s) sent over an hour ago and not applied (oldest {} sent {}); re-sent from state after settings.resend_unapplied_after_hours",
                    s.flow, s.unapplied, o.record, o.sent_at
                );
            }
            for (e, w) in &s.watermarks {
                println!("  {} {e}: {w}", s.flow);
            }
            crate::watermark::print_notes(&s.flow, &s.entities);
        }
    }
    Ok(0)
}

async fn audit(app: &App, key: &str, flow: Option<&str>, json: bool) -> Result<u8, AppError> {
    use mlc_core::ports::AuditLog;
    let h = app.store.history(flow, key).await.map_err(runtime_err)?;
    if json {
        print_json(&h);
        return Ok(if h.is_empty() { 3 } else { 0 });
    }
    if h.is_empty() {
        println!("no history for {key:?} (keys are SYSPRO identities: leading zeros and case kept, e.g. C0001|100045|I)");
        return Ok(3);
    }
    let rows: Vec<Vec<String>> = h
        .iter()
        .map(|e| {
            vec![
                e.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                e.flow.clone(),
                e.entity.to_string(),
                e.poll_id.clone(),
                e.version.to_string(),
                e.outcome.as_str().to_string(),
                e.destination.clone(),
                e.destination_ids
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" "),
                e.attempt.to_string(),
                e.error_chain
                    .iter()
                    .map(|l| {
                        let mut s = String::new();
                        if let Some(st) = l.status {
                            s.push_str(&format!("{st} "));
                        }
                        if let Some(c) = &l.code {
                            s.push_str(&format!("{c}: "));
                        }
                        s.push_str(&l.message);
                        if let Some(r) = &l.request_id {
                            s.push_str(&format!(" (request {r})"));
                        }
                        s
                    })
                    .collect::<Vec<_>>()
                    .join(" <- "),
            ]
        })
        .collect();
    print_table(
        &[
            "at (UTC)",
            "flow",
            "entity",
            "poll",
            "version",
            "outcome",
            "destination",
            "ids",
            "attempt",
            "error",
        ],
        &rows,
    );
    Ok(0)
}

async fn replay_cmd(app: &App, filter: &ReplayFilter, json: bool) -> Result<u8, AppError> {
    let mut total = BTreeMap::new();
    for d in DESTINATIONS {
        let q: Arc<dyn Queue> = app.queues[d].clone();
        let r = replay(q.as_ref(), &app.store, app.clock.as_ref(), filter)
            .await
            .map_err(|e| runtime_err(error_chain(&e)))?;
        total.insert(d.to_string(), r);
    }
    if json {
        print_json(&total);
    } else {
        for (d, r) in &total {
            println!(
                "{d}: {} {} record(s), {} left in the dead-letter queue",
                if r.dry_run { "would move" } else { "moved" },
                r.moved,
                r.left
            );
            for rec in &r.records {
                println!("  {} — was: {}", rec.record, rec.reason);
            }
        }
    }
    Ok(0)
}
