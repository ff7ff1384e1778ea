//! `ml-connector watermark show|reset`: how far each entity of a flow was read, in words, and
//! a way to start an entity over (or from a chosen point) without editing the state by hand.
//!
//! A reset is an ordinary optimistic save (stored version + 1): a poll that loaded the old
//! watermark then fails its own save with a conflict instead of silently undoing the reset. It
//! is refused outright while a poll holds the flow's lease. The notes beside a watermark
//! (initial scope, key sweep, alert) are also what `status` shows, so their wording lives here.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Days, NaiveDate, Utc};
use mlc_core::config::{ChangeDetection, EntityConfig, FlowConfig, InitialScope};
use mlc_core::ports::WatermarkStore;
use mlc_core::view::DestinationView;
use mlc_core::watermark::{GoLive, WatermarkNotes};
use mlc_core::{Clock, Entity, PortError, Watermark, WatermarkValue};
use serde::Serialize;

use crate::app::{App, AppError};
use crate::commands::error_chain;
use crate::output::print_json;
use crate::ConfigArgs;

/// Who a reset names as the saver: not a poll, so no `{flow}:{seq}` id.
const RESET_BY: &str = "cli:watermark-reset";

/// `watermark` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum WatermarkAction {
    /// Per entity: the stored watermark in words, who saved it, and the notes beside it.
    Show(WatermarkTarget),
    /// Start entities over (the next poll reads them whole, hash-diffed, so only real
    /// differences are sent), or restart them from a chosen point with `--to`.
    Reset {
        #[command(flatten)]
        target: WatermarkTarget,
        /// Restart point: a rowversion (number) for `rowversion` entities, a date
        /// (YYYY-MM-DD) for `date-window` entities.
        #[arg(long)]
        to: Option<String>,
    },
}

/// The flow and entities a `watermark` command acts on.
#[derive(Debug, clap::Args)]
pub struct WatermarkTarget {
    #[command(flatten)]
    cfg: ConfigArgs,
    /// The flow.
    #[arg(long)]
    flow: String,
    /// Only this entity (default: every entity of the flow).
    #[arg(long)]
    entity: Option<String>,
}

/// Runs `watermark show|reset`.
pub async fn run(
    action: WatermarkAction,
    clock: Arc<dyn Clock>,
    json: bool,
) -> Result<u8, AppError> {
    let target = match &action {
        WatermarkAction::Show(t) | WatermarkAction::Reset { target: t, .. } => t,
    };
    let app = App::open(&target.cfg.config, target.cfg.state.as_deref(), clock)?;
    let flow = selected_flow(&app, &target.flow)?;
    let entities = selected_entities(&flow, target.entity.as_deref())?;
    match &action {
        WatermarkAction::Show(_) => show(&app, &flow, &entities, json).await,
        WatermarkAction::Reset { to, .. } => {
            reset(&app, &flow, &entities, to.as_deref(), json).await
        }
    }
}

fn selected_flow(app: &App, id: &str) -> Result<Arc<FlowConfig>, AppError> {
    app.flows(Some(id))?
        .into_iter()
        .next()
        .ok_or_else(|| AppError::Config(format!("no flow {id:?} in the configuration")))
}

/// The flow's entities, or the one named, which must be one of them.
fn selected_entities<'a>(
    flow: &'a FlowConfig,
    only: Option<&str>,
) -> Result<Vec<&'a EntityConfig>, AppError> {
    let Some(name) = only else {
        return Ok(flow.entities.iter().collect());
    };
    let entity: Entity = name
        .parse()
        .map_err(|e| AppError::Config(format!("flow {}: --entity: {e}", flow.id)))?;
    match flow.entity(entity) {
        Some(ec) => Ok(vec![ec]),
        None => Err(AppError::Config(format!(
            "flow {} has no entity {entity} (it has {})",
            flow.id,
            flow.entities
                .iter()
                .map(|e| e.entity.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

fn store_err(flow: &FlowConfig, entity: Entity, e: &PortError) -> AppError {
    AppError::Runtime(format!(
        "flow {}, entity {entity}: watermark store: {}",
        flow.id,
        error_chain(e)
    ))
}

/// The name of a change detection in the flows file.
pub fn strategy_name(cd: ChangeDetection) -> &'static str {
    match cd {
        ChangeDetection::Rowversion => "rowversion",
        ChangeDetection::DateWindow => "date-window",
        ChangeDetection::OpenItems => "open-items",
        ChangeDetection::FullScan => "full-scan",
    }
}

// ---------------------------------------------------------------------------------------
// Wording

/// A watermark value in words with what the next poll reads because of it, given the
/// entity's change detection (a value left over from another strategy is ignored by polls).
fn describe_value(ec: &EntityConfig, value: &WatermarkValue) -> String {
    let what = match value {
        WatermarkValue::Empty => "empty".to_string(),
        WatermarkValue::RowVersion(n) | WatermarkValue::RowVersionLagged { seen: n, .. } => {
            format!("rowversion {n}")
        }
        WatermarkValue::Date(d) => format!("date {d}"),
        WatermarkValue::Rescanned(d) => format!("rescanned {d}"),
    };
    format!("{what} ({})", next_read(ec, value).0)
}

/// What the next poll reads under this value, and whether that is the whole entity.
fn next_read(ec: &EntityConfig, value: &WatermarkValue) -> (String, bool) {
    use ChangeDetection as C;
    use WatermarkValue as V;
    match (ec.change_detection, value) {
        // An empty mark is a first read: it takes every row (within the initial scope).
        (C::OpenItems, v) if *v != V::Empty => ("every poll reads the open items".into(), false),
        (C::FullScan, _) => (
            "every poll reads the whole entity, hash-diffed".into(),
            true,
        ),
        (C::Rowversion, V::RowVersion(b) | V::RowVersionLagged { bound: b, .. }) => {
            (format!("next poll reads > {b}"), false)
        }
        (C::DateWindow, V::Date(d)) => {
            let from = d
                .checked_sub_days(Days::new(u64::from(ec.overlap_days)))
                .unwrap_or(*d);
            let field = ec.date_field.as_deref().unwrap_or("the date field");
            (format!("next poll reads {field} >= {from}"), false)
        }
        _ => (
            format!("next poll reads the whole entity{}", within_scope(ec)),
            true,
        ),
    }
}

/// Whole reads of an entity with a narrower initial scope keep to it, as its first read did.
fn within_scope(ec: &EntityConfig) -> String {
    match (ec.initial_scope, ec.since) {
        (InitialScope::All, _) => String::new(),
        (InitialScope::Since, Some(s)) => format!(" within initial_scope = since {s}"),
        (s, _) => format!(" within initial_scope = {}", s.as_str()),
    }
}

/// The stored watermark in words. A mapping fingerprint other than the current one (or none)
/// makes the next poll read the whole entity once, whatever the value says.
fn describe(ec: &EntityConfig, stored: Option<&Watermark>, fingerprint: &str) -> String {
    let Some(w) = stored else {
        return "none yet (the first poll reads the whole entity)".to_string();
    };
    let base = describe_value(ec, &w.value);
    let whole_anyway = next_read(ec, &w.value).1;
    // The stored value is `{fingerprint}.{inputs}`: the mapping is its first part (terms read
    // from SYSPRO change only the second, and the poll alone knows them).
    let stored_mapping = w.mapping.as_deref().and_then(|m| m.split('.').next());
    if stored_mapping != Some(fingerprint) && !whole_anyway {
        format!(
            "{base}; the mapping differs from the last poll's, so the next poll reads the whole entity{} once",
            within_scope(ec)
        )
    } else {
        base
    }
}

/// "75 rows left out by initial_scope = open on 2026-12-01".
fn out_of_scope_words(ec: &EntityConfig, g: &GoLive) -> String {
    let scope = match (ec.initial_scope, ec.since) {
        (InitialScope::All, _) => "the initial scope".to_string(),
        (InitialScope::Since, Some(s)) => format!("initial_scope = since {s}"),
        (s, _) => format!("initial_scope = {}", s.as_str()),
    };
    format!("{} rows left out by {scope} on {}", g.out_of_scope, g.date)
}

/// The configured initial scope, with what its first read left out when that is known.
fn scope_words(ec: &EntityConfig, notes: &WatermarkNotes) -> String {
    let configured = match (ec.initial_scope, ec.since) {
        (InitialScope::Since, Some(s)) => format!("since {s}"),
        (s, _) => s.as_str().to_string(),
    };
    match (&notes.go_live, ec.initial_scope) {
        (Some(g), _) => format!("{configured}: {}", out_of_scope_words(ec, g)),
        (None, InitialScope::All) => configured,
        (None, _) => format!("{configured} (no first read recorded yet)"),
    }
}

/// "2026-12-01 (812 rows)", or "never".
fn sweep_words(swept: Option<NaiveDate>, rows: Option<u64>) -> String {
    match (swept, rows) {
        (Some(d), Some(n)) => format!("{d} ({n} rows)"),
        (Some(d), None) => d.to_string(),
        (None, _) => "never".to_string(),
    }
}

// ---------------------------------------------------------------------------------------
// Notes, as `status` and `watermark show` report them

/// What an entity's notes say, under the names `status --json` promises.
#[derive(Debug, Clone, Serialize)]
pub struct EntityNotes {
    /// `all`, `open` or `since` (flows file).
    pub initial_scope: &'static str,
    /// The first date `initial_scope = "since"` takes.
    pub since: Option<NaiveDate>,
    /// Rows the first read under the initial scope left out.
    pub out_of_scope: Option<u64>,
    /// The business date of that first read.
    pub go_live: Option<NaiveDate>,
    /// The business date of the last key sweep.
    pub swept: Option<NaiveDate>,
    /// Rows that sweep found.
    pub swept_rows: Option<u64>,
    /// A problem an operator should see.
    pub alert: Option<String>,
    /// Rows read so far by a read that stopped at a run's deadline (the next poll carries on).
    pub read_in_progress: Option<u64>,
    /// The initial scope and out-of-scope count in words.
    #[serde(skip)]
    scope_text: String,
}

impl EntityNotes {
    fn of(ec: &EntityConfig, notes: &WatermarkNotes) -> Self {
        EntityNotes {
            initial_scope: ec.initial_scope.as_str(),
            since: ec.since,
            out_of_scope: notes.go_live.as_ref().map(|g| g.out_of_scope),
            go_live: notes.go_live.as_ref().map(|g| g.date),
            swept: notes.swept,
            swept_rows: notes.swept_rows,
            alert: notes.alert.clone(),
            read_in_progress: notes.resume.as_ref().map(|r| r.rows_read),
            scope_text: scope_words(ec, notes),
        }
    }
}

/// The notes of every configured entity of a flow, keyed by entity (no watermark: no notes).
pub fn flow_notes(flow: &FlowConfig, wms: &[Watermark]) -> BTreeMap<String, EntityNotes> {
    let empty = WatermarkNotes::default();
    flow.entities
        .iter()
        .map(|ec| {
            let notes = wms
                .iter()
                .find(|w| w.entity == ec.entity)
                .map_or(&empty, |w| &w.notes);
            (ec.entity.to_string(), EntityNotes::of(ec, notes))
        })
        .collect()
}

/// Alerts first and loud: they are why an operator opens `status`.
pub fn print_alerts(flow: &str, notes: &BTreeMap<String, EntityNotes>) {
    for (entity, n) in notes {
        if let Some(a) = &n.alert {
            println!("ALERT {flow} {entity}: {a}");
        }
    }
}

/// One line per entity: initial scope (and what it left out) and the last key sweep.
pub fn print_notes(flow: &str, notes: &BTreeMap<String, EntityNotes>) {
    for (entity, n) in notes {
        let sweep = match n.swept {
            Some(_) => format!(" · last sweep {}", sweep_words(n.swept, n.swept_rows)),
            None => String::new(),
        };
        let progress = match n.read_in_progress {
            Some(rows) => {
                format!(" · read in progress: {rows} rows so far, the next poll carries on")
            }
            None => String::new(),
        };
        println!(
            "  {flow} {entity}: initial scope {}{sweep}{progress}",
            n.scope_text
        );
    }
}

// ---------------------------------------------------------------------------------------
// show

/// One entity's watermark as `watermark show` reports it.
#[derive(Debug, Serialize)]
struct Shown {
    flow: String,
    entity: String,
    change_detection: &'static str,
    /// The stored value (`null` when never saved).
    value: Option<WatermarkValue>,
    /// The value in words, with what the next poll reads.
    reads: String,
    version: u64,
    poll_id: Option<String>,
    updated_at: Option<DateTime<Utc>>,
    business_date: Option<NaiveDate>,
    #[serde(flatten)]
    notes: EntityNotes,
}

impl Shown {
    fn of(flow: &FlowConfig, ec: &EntityConfig, stored: Option<&Watermark>) -> Self {
        let fingerprint = DestinationView::of(flow, ec).fingerprint;
        let empty = WatermarkNotes::default();
        let notes = stored.map_or(&empty, |w| &w.notes);
        Shown {
            flow: flow.id.clone(),
            entity: ec.entity.to_string(),
            change_detection: strategy_name(ec.change_detection),
            value: stored.map(|w| w.value.clone()),
            reads: describe(ec, stored, &fingerprint),
            version: stored.map_or(0, |w| w.version),
            poll_id: stored.map(|w| w.poll_id.clone()),
            updated_at: stored.map(|w| w.updated_at),
            business_date: notes.business_date,
            notes: EntityNotes::of(ec, notes),
        }
    }

    fn print(&self) {
        println!("{} {} ({})", self.flow, self.entity, self.change_detection);
        println!("  value          {}", self.reads);
        match (&self.poll_id, self.updated_at) {
            (Some(p), Some(t)) => println!(
                "  saved          by {p} at {} (version {})",
                t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                self.version
            ),
            _ => println!("  saved          never"),
        }
        let date = self
            .business_date
            .map_or_else(|| "none".to_string(), |d| d.to_string());
        println!("  business date  {date}");
        let sweep = sweep_words(self.notes.swept, self.notes.swept_rows);
        println!("  last sweep     {sweep}");
        println!("  initial scope  {}", self.notes.scope_text);
        if let Some(a) = &self.notes.alert {
            println!("  ALERT          {a}");
        }
    }
}

async fn show(
    app: &App,
    flow: &FlowConfig,
    entities: &[&EntityConfig],
    json: bool,
) -> Result<u8, AppError> {
    let mut shown = Vec::with_capacity(entities.len());
    for ec in entities {
        let stored = app
            .store
            .load(&flow.id, ec.entity)
            .await
            .map_err(|e| store_err(flow, ec.entity, &e))?;
        shown.push(Shown::of(flow, ec, stored.as_ref()));
    }
    if json {
        print_json(&shown);
    } else {
        for s in &shown {
            s.print();
        }
    }
    Ok(0)
}

// ---------------------------------------------------------------------------------------
// reset

/// Where a reset puts an entity.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Restart {
    /// Empty value, no mapping fingerprint, no notes: the next poll reads the whole entity.
    Whole,
    /// A chosen position; the mapping and notes stay, so only the position moves.
    From(WatermarkValue),
}

/// Parses `--to` for one entity, refusing a value its change detection cannot use (exit 2).
fn restart_for(
    flow: &FlowConfig,
    ec: &EntityConfig,
    to: Option<&str>,
) -> Result<Restart, AppError> {
    let Some(raw) = to else {
        return Ok(Restart::Whole);
    };
    let refuse = |why: String| {
        AppError::Config(format!(
            "flow {}, entity {}: cannot reset to {raw:?}: {why}",
            flow.id, ec.entity
        ))
    };
    let strategy = strategy_name(ec.change_detection);
    let text = raw.trim();
    if let Ok(n) = text.parse::<u64>() {
        return match ec.change_detection {
            ChangeDetection::Rowversion => Ok(Restart::From(WatermarkValue::RowVersionLagged {
                bound: n,
                seen: n,
            })),
            _ => Err(refuse(format!(
                "a number is a rowversion, but {} uses change_detection = \"{strategy}\"{}",
                ec.entity,
                hint(ec.change_detection)
            ))),
        };
    }
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return match ec.change_detection {
            ChangeDetection::DateWindow => Ok(Restart::From(WatermarkValue::Date(d))),
            _ => Err(refuse(format!(
                "a date is a date-window position, but {} uses change_detection = \"{strategy}\"{}",
                ec.entity,
                hint(ec.change_detection)
            ))),
        };
    }
    Err(refuse(
        "expected a rowversion (a whole number) for a rowversion entity or a date (YYYY-MM-DD) for a date-window entity"
            .to_string(),
    ))
}

/// What `--to` the strategy would take instead.
fn hint(cd: ChangeDetection) -> &'static str {
    match cd {
        ChangeDetection::Rowversion => " (give a rowversion number, or no --to to read it whole)",
        ChangeDetection::DateWindow => " (give a date YYYY-MM-DD, or no --to to read it whole)",
        ChangeDetection::OpenItems | ChangeDetection::FullScan => {
            " (it keeps no position: reset it without --to)"
        }
    }
}

/// The watermark a reset saves: one version above the stored one (1 when none is stored).
/// With no stored watermark, a `--to` position takes the current mapping's fingerprint, since
/// a missing one would make the next poll read everything and ignore the position.
fn reset_watermark(
    flow: &FlowConfig,
    ec: &EntityConfig,
    stored: Option<&Watermark>,
    restart: &Restart,
    now: DateTime<Utc>,
) -> Watermark {
    let (value, mapping, notes) = match restart {
        Restart::Whole => (WatermarkValue::Empty, None, WatermarkNotes::default()),
        Restart::From(v) => match stored {
            Some(w) => (v.clone(), w.mapping.clone(), w.notes.clone()),
            None => (
                v.clone(),
                Some(DestinationView::of(flow, ec).read_under),
                WatermarkNotes::default(),
            ),
        },
    };
    Watermark {
        flow: flow.id.clone(),
        entity: ec.entity,
        value,
        version: stored.map_or(0, |w| w.version) + 1,
        poll_id: RESET_BY.to_string(),
        updated_at: now,
        mapping,
        notes,
    }
}

/// Refuses while a poll holds the flow's lease (a lapsed one belongs to a crashed process and
/// would be taken over by the next poll anyway).
async fn refuse_while_polling(app: &App, flow: &FlowConfig) -> Result<(), AppError> {
    let info = app.store.run_info(&flow.id).await.map_err(|e| {
        AppError::Runtime(format!(
            "flow {}: watermark store: {}",
            flow.id,
            error_chain(&e)
        ))
    })?;
    match info.running {
        Some(lease) if lease.expires_at > app.clock.now() => Err(AppError::Runtime(format!(
            "flow {}: poll {} (owner {}) holds the lease until {}: nothing was reset; run it again when the poll has finished",
            flow.id,
            lease.poll_id(),
            lease.owner,
            lease.expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ))),
        _ => Ok(()),
    }
}

/// One entity's reset, old → new.
#[derive(Debug, Serialize)]
struct Change {
    flow: String,
    entity: String,
    old: Option<WatermarkValue>,
    new: WatermarkValue,
    old_reads: String,
    new_reads: String,
    version: u64,
    notes_cleared: bool,
}

async fn reset_entity(
    app: &App,
    flow: &FlowConfig,
    ec: &EntityConfig,
    restart: &Restart,
) -> Result<Change, AppError> {
    let stored = app
        .store
        .load(&flow.id, ec.entity)
        .await
        .map_err(|e| store_err(flow, ec.entity, &e))?;
    let wm = reset_watermark(flow, ec, stored.as_ref(), restart, app.clock.now());
    app.store.save(&wm).await.map_err(|e| match e {
        PortError::Conflict(_) => AppError::Runtime(format!(
            "flow {}, entity {}: a poll saved the watermark meanwhile, so it was not reset; run it again",
            flow.id, ec.entity
        )),
        other => store_err(flow, ec.entity, &other),
    })?;
    let fingerprint = DestinationView::of(flow, ec).fingerprint;
    Ok(Change {
        flow: flow.id.clone(),
        entity: ec.entity.to_string(),
        old: stored.as_ref().map(|w| w.value.clone()),
        new: wm.value.clone(),
        old_reads: describe(ec, stored.as_ref(), &fingerprint),
        new_reads: describe(ec, Some(&wm), &fingerprint),
        version: wm.version,
        notes_cleared: *restart == Restart::Whole,
    })
}

async fn reset(
    app: &App,
    flow: &FlowConfig,
    entities: &[&EntityConfig],
    to: Option<&str>,
    json: bool,
) -> Result<u8, AppError> {
    // Every entity's `--to` is checked before anything is saved: a mistake changes nothing.
    let plan = entities
        .iter()
        .map(|ec| Ok((*ec, restart_for(flow, ec, to)?)))
        .collect::<Result<Vec<_>, AppError>>()?;
    refuse_while_polling(app, flow).await?;
    let mut changes = Vec::with_capacity(plan.len());
    let mut failure = None;
    for (ec, restart) in &plan {
        match reset_entity(app, flow, ec, restart).await {
            Ok(c) => changes.push(c),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    // What was reset before a failure is reported too: it happened.
    print_changes(&changes, json);
    match failure {
        Some(e) => Err(e),
        None => Ok(0),
    }
}

fn print_changes(changes: &[Change], json: bool) {
    if json {
        print_json(&changes);
        return;
    }
    for c in changes {
        let cleared = if c.notes_cleared {
            ", mapping fingerprint and notes cleared"
        } else {
            ""
        };
        println!(
            "{} {}: {} → {} [version {}{cleared}]",
            c.flow, c.entity, c.old_reads, c.new_reads, c.version
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow() -> FlowConfig {
        let toml = r#"
[[flows]]
id = "acme-sf"
[flows.syspro]
base_url = "http://127.0.0.1:1"
company = "DEMO"
operator = "OP"
password = "env:P"
[[flows.entities]]
entity = "ArCustomer"
change_detection = "rowversion"
[[flows.entities]]
entity = "ArInvoice"
change_detection = "date-window"
date_field = "InvoiceDate"
initial_scope = "open"
[[flows.entities]]
entity = "ArInvoicePay"
change_detection = "full-scan"
[flows.destination]
kind = "salesforce"
my_domain_url = "http://127.0.0.1:2"
client_id = "env:A"
client_secret = "env:B"
stage_map = { open = "Prospecting", overdue = "Negotiation/Review", paid = "Closed Won", removed = "Closed Lost" }
"#;
        let cfg = mlc_config::parse("flows.toml", toml).expect("config");
        cfg.flows.into_iter().next().expect("a flow")
    }

    fn stored(flow: &FlowConfig, entity: Entity, value: WatermarkValue) -> Watermark {
        let ec = flow.entity(entity).expect("entity");
        Watermark {
            flow: flow.id.clone(),
            entity,
            value,
            version: 7,
            poll_id: "acme-sf:7".into(),
            updated_at: Utc::now(),
            mapping: Some(DestinationView::of(flow, ec).read_under),
            notes: WatermarkNotes {
                business_date: NaiveDate::from_ymd_opt(2026, 12, 1),
                alert: Some("table shrank".into()),
                ..Default::default()
            },
        }
    }

    #[test]
    fn to_must_match_the_change_detection() {
        let f = flow();
        let cust = f.entity(Entity::ArCustomer).expect("customer");
        let inv = f.entity(Entity::ArInvoice).expect("invoice");
        let pay = f.entity(Entity::ArInvoicePay).expect("payments");
        assert_eq!(
            restart_for(&f, cust, Some("12000")).expect("number"),
            Restart::From(WatermarkValue::RowVersionLagged {
                bound: 12000,
                seen: 12000
            })
        );
        assert_eq!(
            restart_for(&f, inv, Some("2026-12-01")).expect("date"),
            Restart::From(WatermarkValue::Date(
                NaiveDate::from_ymd_opt(2026, 12, 1).expect("date")
            ))
        );
        for (ec, to) in [(cust, "2026-12-01"), (inv, "5"), (pay, "5"), (cust, "soon")] {
            let e = restart_for(&f, ec, Some(to)).expect_err("refused");
            assert_eq!(e.code(), 2);
            let msg = e.to_string();
            assert!(
                msg.contains("acme-sf") && msg.contains(ec.entity.as_str()) && msg.contains(to),
                "{msg}"
            );
        }
        assert_eq!(restart_for(&f, pay, None).expect("whole"), Restart::Whole);
    }

    #[test]
    fn reset_bumps_the_version_and_clears_only_on_a_whole_reset() {
        let f = flow();
        let ec = f.entity(Entity::ArCustomer).expect("customer");
        let old = stored(&f, Entity::ArCustomer, WatermarkValue::RowVersion(900));
        let whole = reset_watermark(&f, ec, Some(&old), &Restart::Whole, Utc::now());
        assert_eq!(whole.version, 8);
        assert_eq!(whole.value, WatermarkValue::Empty);
        assert!(whole.mapping.is_none() && whole.notes.is_empty());
        let to = Restart::From(WatermarkValue::RowVersionLagged { bound: 5, seen: 5 });
        let moved = reset_watermark(&f, ec, Some(&old), &to, Utc::now());
        assert_eq!(moved.mapping, old.mapping);
        assert_eq!(moved.notes, old.notes);
        let first = reset_watermark(&f, ec, None, &to, Utc::now());
        assert_eq!(first.version, 1);
        assert_eq!(
            first.mapping,
            Some(DestinationView::of(&f, ec).read_under),
            "a position with no fingerprint would be ignored by the next poll"
        );
    }

    #[test]
    fn values_read_as_what_the_next_poll_does() {
        let f = flow();
        let cust = f.entity(Entity::ArCustomer).expect("customer");
        let inv = f.entity(Entity::ArInvoice).expect("invoice");
        let lagged = WatermarkValue::RowVersionLagged {
            bound: 12000,
            seen: 12345,
        };
        assert_eq!(
            describe_value(cust, &lagged),
            "rowversion 12345 (next poll reads > 12000)"
        );
        let d = NaiveDate::from_ymd_opt(2026, 12, 1).expect("date");
        assert_eq!(
            describe_value(inv, &WatermarkValue::Date(d)),
            "date 2026-12-01 (next poll reads InvoiceDate >= 2026-11-28)"
        );
        assert_eq!(
            describe_value(cust, &WatermarkValue::Empty),
            "empty (next poll reads the whole entity)"
        );
        assert_eq!(
            describe_value(inv, &WatermarkValue::Empty),
            "empty (next poll reads the whole entity within initial_scope = open)"
        );
        let mut old = stored(&f, Entity::ArCustomer, lagged);
        old.mapping = Some("another".into());
        assert!(describe(cust, Some(&old), "current").contains("reads the whole entity once"));
    }

    #[test]
    fn notes_name_the_scope_and_what_it_left_out() {
        let f = flow();
        let inv = f.entity(Entity::ArInvoice).expect("invoice");
        let notes = WatermarkNotes {
            go_live: Some(GoLive {
                date: NaiveDate::from_ymd_opt(2026, 12, 1).expect("date"),
                row_version: None,
                out_of_scope: 75,
            }),
            ..Default::default()
        };
        let n = EntityNotes::of(inv, &notes);
        assert_eq!(n.out_of_scope, Some(75));
        assert_eq!(
            n.scope_text,
            "open: 75 rows left out by initial_scope = open on 2026-12-01"
        );
    }
}
