//! `incremental`: what polls cost SYSPRO once the backfill is done (issue 20). Against a
//! company of N invoices it runs the real poll (`poll_flow`, `SysproSource` over OData,
//! SQLite state and queue) of one `ArInvoice` flow with `change_detection = "rowversion"` and
//! a Salesforce view that reads `_Status` and `_Aging`, and counts what SYSPRO served:
//!
//! 1. the backfill poll and the lag poll after it (the first poll filters on rowversion 0);
//! 2. an idle poll (target: 0 data rows);
//! 3. a poll after payments on 1,000 invoices (target: ≤ 1.1 × 1,000 rows), and the lag poll
//!    after it, which reads them once more;
//! 4. a poll on the next business date (target: only the invoices whose status or aging bucket
//!    moves, read by key; the expected count is worked out here from the simulator's rows);
//! 5. the daily key sweep on its own (the main flow runs with `sweep = "off"`);
//! 6. the baseline: one `change_detection = "full-scan"` poll of the same table.
//!
//! The simulator runs in this process, on a runtime of its own (one worker thread), so payments
//! can be posted between polls and its counters read: rows served per table (`odata_rows:…`)
//! and OData requests. The poll runs on a current-thread runtime, as in a Lambda; one source
//! serves every poll, as a warm Lambda's does.

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::{Days, NaiveDate};
use mlc_core::config::Sweep;
use mlc_core::ports::Source;
use mlc_core::FixedClock;
use mlc_engine::{FlowRuntime, PollOptions};
use serde_json::{json, Value};
use sim_syspro::data::Cell;
use sim_syspro::SimHandle;

use crate::common::{self, Res};

/// Flow ids: the incremental flow, and the full-scan baseline over the same table.
const FLOW: &str = "bench-incremental";
const FULL: &str = "bench-full";
/// Name of the simulator runtime's threads (their CPU time is the simulator's).
const SIM_THREAD: &str = "sim-syspro";

/// CPU seconds the simulator's threads have used so far.
fn sim_cpu_seconds() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    tasks
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == SIM_THREAD)
        })
        .map(|t| common::cpu_seconds_of(&format!("self/task/{}", t.file_name().to_string_lossy())))
        .sum()
}

/// Two flows of the same `ArInvoice` → Salesforce mapping: `rowversion` with the sweep off
/// (its cost is measured on its own), and the `full-scan` baseline. The terms days are the
/// simulator's, so the poll derives the same due dates as [`expected_movers`].
fn flow_toml(base_url: &str, terms: &BTreeMap<String, u32>) -> String {
    let terms: Vec<String> = terms
        .iter()
        .map(|(c, d)| format!("\"{c}\" = {d}"))
        .collect();
    let flow = |id: &str, detection: &str| {
        format!(
            r#"[[flows]]
id = "{id}"
timezone = "Africa/Johannesburg"
schedule = "15m"

{syspro}terms_days = {{ {terms} }}

[[flows.entities]]
entity = "ArInvoice"
change_detection = "{detection}"
sweep = "off"
[flows.entities.mapping]
Amount = {{ from = "CurrencyValue", type = "number" }}

[flows.destination]
kind = "salesforce"
my_domain_url = "http://127.0.0.1:9"
client_id = "env:BENCH_SF_CLIENT_ID"
client_secret = "env:BENCH_SF_CLIENT_SECRET"
balance_field = "SYSPRO_Balance__c"
aging_field = "SYSPRO_Aging__c"
stage_map = {{ open = "Proposal/Price Quote", overdue = "Negotiation/Review", paid = "Closed Won", removed = "Closed Lost" }}
"#,
            syspro = common::syspro_toml(base_url),
            terms = terms.join(", "),
        )
    };
    format!(
        "[settings]\nstate_path = \"state.db\"\n\n{}\n{}",
        flow(FLOW, "rowversion"),
        flow(FULL, "full-scan")
    )
}

/// One poll's cost, as SYSPRO served it (the simulator's counters) and as the engine reported.
#[derive(Debug, Default)]
struct Cost {
    /// `ArInvoice` rows served.
    rows_read: u64,
    /// `ArCustomer` rows served (customer names for the Opportunity name).
    lookup_rows: u64,
    /// OData requests, data and `$metadata`.
    requests: u64,
    /// Rows the engine reports read (`EntityPollReport::rows_read`; the sweep is not in it).
    engine_rows_read: usize,
    queued: usize,
    calendar: usize,
    seconds: f64,
    /// CPU seconds of the simulator's thread (a by-key query scans its whole table).
    sim_cpu_seconds: f64,
}

impl Cost {
    fn json(&self) -> Value {
        json!({
            "rows_read": self.rows_read,
            "lookup_rows": self.lookup_rows,
            "requests": self.requests,
            "engine_rows_read": self.engine_rows_read,
            "queued": self.queued,
            "calendar": self.calendar,
            "seconds": common::round(self.seconds, 3),
            "sim_cpu_seconds": common::round(self.sim_cpu_seconds, 3),
        })
    }
}

/// What the benchmark drives: the simulator, the poll's runtime, source and state.
struct Bench {
    sim: SimHandle,
    rt: tokio::runtime::Runtime,
    source: mlc_syspro::SysproSource,
}

impl Bench {
    /// Polls once under `flow` and returns what it cost (counters zeroed first).
    fn poll(&self, name: &str, flow: &FlowRuntime, dry_run: bool) -> Res<Cost> {
        self.sim.reset_counters();
        let sim_cpu0 = sim_cpu_seconds();
        let t0 = Instant::now();
        let opts = PollOptions {
            dry_run,
            ..PollOptions::default()
        };
        let report = self.rt.block_on(mlc_engine::poll_flow_with(
            flow,
            &self.source,
            "bench",
            opts,
        ))?;
        let seconds = t0.elapsed().as_secs_f64();
        if report.skipped {
            return Err(format!("{name}: the lease was held").into());
        }
        let c = self.sim.counters();
        let n = |k: &str| c.get(k).copied().unwrap_or(0);
        let cost = Cost {
            rows_read: n("odata_rows:ArInvoice"),
            lookup_rows: n("odata_rows:ArCustomer"),
            requests: n("odata") + n("metadata"),
            engine_rows_read: report.read(),
            queued: report.queued(),
            calendar: report.entities.iter().map(|e| e.calendar).sum(),
            seconds,
            sim_cpu_seconds: sim_cpu_seconds() - sim_cpu0,
        };
        eprintln!("incremental: {name}: {cost:?}");
        Ok(cost)
    }
}

/// Runs the measurements over `rows` invoices with `changes` payments, prints one JSON line.
pub fn run(rows: usize, changes: usize) -> Res<()> {
    let customers = (rows / 50).max(1);
    let changes = changes.min(rows);
    eprintln!("incremental: generating {rows} invoices, {customers} customers…");
    let sim_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(SIM_THREAD)
        .enable_all()
        .build()?;
    let sim = sim_rt.block_on(sim_syspro::SysproSim::start(sim_syspro::SimOptions {
        counts: sim_syspro::CompanyCounts {
            customers,
            invoices: rows,
            payments: 0,
            suppliers: 0,
            ap_invoices: 0,
            purchase_orders: 0,
        },
        today: common::today(),
        operators: vec![(
            common::SYSPRO_OPERATOR.into(),
            common::SYSPRO_PASSWORD.into(),
        )],
        ..sim_syspro::SimOptions::default()
    }))?;
    let terms = sim.terms_days();
    let config = common::parse_config(&flow_toml(&sim.base_url(), &terms))?;
    let flow_of = |id: &str| {
        config
            .flows
            .iter()
            .find(|f| f.id == id)
            .cloned()
            .ok_or_else(|| format!("no flow {id}"))
    };
    let flow = flow_of(FLOW)?;
    let full_flow = flow_of(FULL)?;
    let dir = tempfile::Builder::new()
        .prefix("mlc-bench-incremental-")
        .tempdir()?;
    let local = common::Local::open(dir.path(), "salesforce")?;
    let source = mlc_syspro::SysproSource::new(&flow.syspro, common::secrets(), common::http()?)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let bench = Bench { sim, rt, source };
    let t0 = Instant::now();

    // 1–2: backfill, its lag poll, then idle.
    let mut inc = local.runtime(&config, &flow);
    let backfill = bench.poll("backfill", &inc, false)?;
    let lag_backfill = bench.poll("lag after backfill", &inc, false)?;
    let idle = bench.poll("idle", &inc, false)?;

    // 3: payments on `changes` invoices spread over the table, half settled in full.
    let paid = pay(&bench.sim, changes)?;
    let changed = bench.poll("after changes", &inc, false)?;
    let lag = bench.poll("lag after changes", &inc, false)?;

    // 4: the next business date.
    let today = common::today();
    let tomorrow = today
        .checked_add_days(Days::new(1))
        .ok_or("no next business date")?;
    let movers = bench
        .sim
        .with_company(|c| expected_movers(c, &terms, today, tomorrow))?;
    inc.clock = std::sync::Arc::new(FixedClock::today(tomorrow));
    let date_change = bench.poll("business date change", &inc, false)?;

    // 5: the daily key sweep alone: the same flow with `sweep = "daily"` on a date it has not
    // swept; its incremental read is idle, so what it costs above an idle poll is the sweep.
    let mut swept = flow.clone();
    for e in &mut swept.entities {
        e.sweep = Sweep::Daily;
    }
    let mut sweep_rt = local.runtime(&config, &swept);
    sweep_rt.clock = inc.clock.clone();
    let sweep = bench.poll("daily sweep", &sweep_rt, false)?;

    // 6: the baseline: every row read again (dry run: the reads are those of a full scan, the
    // queue is spared 100k messages nobody needs).
    let full = bench.poll("full re-read", &local.runtime(&config, &full_flow), true)?;
    bench.rt.block_on(bench.source.close());
    let seconds = t0.elapsed().as_secs_f64();

    common::emit(&json!({
        "bench": "incremental",
        "rows": rows,
        "customers": customers,
        "backfill_rows_read": backfill.rows_read,
        "lag_backfill_rows_read": lag_backfill.rows_read,
        "idle_rows_read": idle.rows_read,
        "idle_requests": idle.requests,
        "idle_queued": idle.queued,
        "changes": paid,
        "changes_rows_read": changed.rows_read,
        "changes_lookup_rows": changed.lookup_rows,
        "changes_requests": changed.requests,
        "changes_queued": changed.queued,
        "lag_rows_read": lag.rows_read,
        "lag_lookup_rows": lag.lookup_rows,
        "lag_requests": lag.requests,
        "lag_queued": lag.queued,
        "date_change_movers": movers,
        "date_change_calendar": date_change.calendar,
        "date_change_rows_read": date_change.rows_read,
        "date_change_lookup_rows": date_change.lookup_rows,
        "date_change_requests": date_change.requests,
        "date_change_queued": date_change.queued,
        "sweep_rows_read": sweep.rows_read.saturating_sub(sweep.engine_rows_read as u64),
        "sweep_requests": sweep.requests.saturating_sub(idle.requests),
        "full_rows_read": full.rows_read,
        "full_lookup_rows": full.lookup_rows,
        "full_requests": full.requests,
        "seconds": common::round(seconds, 1),
        "polls": {
            "backfill": backfill.json(),
            "lag_backfill": lag_backfill.json(),
            "idle": idle.json(),
            "changes": changed.json(),
            "lag": lag.json(),
            "date_change": date_change.json(),
            "sweep": sweep.json(),
            "full": full.json(),
        },
    }));
    Ok(())
}

/// Posts payments on `n` invoices spread evenly over the table (every other one settles the
/// invoice, the rest pay a third): each changes `InvoiceBal1` and bumps the row's `TimeStamp`.
/// Returns the invoices changed.
fn pay(sim: &SimHandle, n: usize) -> Res<usize> {
    let picked: Vec<(String, String, f64)> = sim.with_company(|c| {
        let Some(t) = c.table("ArInvoice") else {
            return Vec::new();
        };
        let col = |name: &str| t.schema.col(name);
        let (Some(cu), Some(inv), Some(bal)) =
            (col("Customer"), col("Invoice"), col("InvoiceBal1"))
        else {
            return Vec::new();
        };
        let step = (t.rows.len() / n.max(1)).max(1);
        t.rows
            .values()
            .step_by(step)
            .take(n)
            .filter_map(|r| match (&r[cu], &r[inv], &r[bal]) {
                (Cell::Str(c), Cell::Str(i), Cell::Num(b)) => Some((c.clone(), i.clone(), *b)),
                _ => None,
            })
            .collect()
    });
    if picked.len() < n {
        return Err(format!("only {} invoices to pay, wanted {n}", picked.len()).into());
    }
    for (i, (customer, invoice, balance)) in picked.iter().enumerate() {
        let amount = if i % 2 == 0 { *balance } else { balance / 3.0 };
        sim.post_payment(customer, invoice, amount)
            .map_err(|e| format!("payment on {customer}|{invoice}: {e}"))?;
    }
    Ok(picked.len())
}

/// Open invoices whose status or aging bucket differs between `from` and `to`: what the poll on
/// the new business date must re-read. Worked out from the rows with the rules written out
/// again here (due = `InvoiceDate` + the terms' days, 30 when unknown; overdue the day after
/// due; buckets 1-30, 31-60, 61-90, 90+ days past due), not with the engine's code.
fn expected_movers(
    c: &sim_syspro::Company,
    terms: &BTreeMap<String, u32>,
    from: NaiveDate,
    to: NaiveDate,
) -> Res<usize> {
    let t = c.table("ArInvoice").ok_or("no ArInvoice table")?;
    let col = |name: &str| t.schema.col(name).ok_or(format!("no column {name}"));
    let (date, term, bal) = (col("InvoiceDate")?, col("TermsCode")?, col("InvoiceBal1")?);
    // 0 = not yet due; 1–4 = the buckets past due.
    let class = |due: NaiveDate, day: NaiveDate| match (day - due).num_days() {
        ..=0 => 0,
        1..=30 => 1,
        31..=60 => 2,
        61..=90 => 3,
        _ => 4,
    };
    let mut movers = 0;
    for r in t.rows.values() {
        let open = matches!(r[bal], Cell::Num(b) if (b * 100.0).round() != 0.0);
        let (Cell::Date(Some(d)), Cell::Str(code)) = (&r[date], &r[term]) else {
            continue;
        };
        let days = terms.get(code.trim()).copied().unwrap_or(30);
        let Some(due) = d.checked_add_days(Days::new(u64::from(days))) else {
            continue;
        };
        if open && class(due, from) != class(due, to) {
            movers += 1;
        }
    }
    Ok(movers)
}
