//! `monday`: three boards of new items (suppliers, AP invoices, purchase orders) through the
//! real pipeline (poll → SQLite queue → `mlc_engine::local::drain` → `MondaySink`) against the
//! Monday.com simulator, with the per-board mutation cap and a scaled window (the same window
//! length for the simulator and the sink: 1 s stands for Monday.com's minute). The boards are
//! separate FIFO streams, so one drain pass hands the sink all three and it writes them in
//! parallel. Figures come from the simulator's own counters.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mlc_core::ports::{Budget, RecordStateStore, Sink, Source};
use mlc_engine::local::{drain, DrainOptions};
use mlc_engine::{poll_flow, SinkSet};
use serde_json::{json, Value};
use sim_monday::{MondayOptions, MondaySim};
use sim_syspro::{SimOptions, SysproSim};

use crate::common::{self, Local, Res};

const SUPPLIER_BOARD: &str = "5001";
const AP_BOARD: &str = "5002";
const PO_BOARD: &str = "5003";

fn flow_toml(syspro: &str, monday: &str, cap: u32) -> String {
    format!(
        r#"[settings]
state_path = "state.db"

[[flows]]
id = "bench-monday"
timezone = "Africa/Johannesburg"
schedule = "5m"

{syspro_toml}
[[flows.entities]]
entity = "ApSupplier"
change_detection = "full-scan"
[flows.entities.mapping]
supplier_name = {{ from = "SupplierName", trim = true, column_type = "text" }}
balance = {{ from = "CurrentBalance", type = "number", column_type = "numbers" }}
currency = {{ from = "Currency", trim = true, column_type = "text" }}
[flows.entities.monday]
board_id = "{SUPPLIER_BOARD}"
item_name = "{{SupplierName}}"
id_column = "syspro_id"

[[flows.entities]]
entity = "ApInvoice"
change_detection = "full-scan"
[flows.entities.mapping]
supplier = {{ from = "Supplier.SupplierName", column_type = "text" }}
amount = {{ from = "OrigInvValue", type = "number", column_type = "numbers" }}
balance = {{ from = "_Balance", type = "number", column_type = "numbers" }}
due = {{ from = "_DueDate", type = "date", column_type = "date" }}
status = {{ from = "_Status", column_type = "status" }}
[flows.entities.monday]
board_id = "{AP_BOARD}"
item_name = "{{Invoice}} · {{Supplier.SupplierName}}"
id_column = "syspro_id"

[[flows.entities]]
entity = "PorMasterHdr"
change_detection = "rowversion"
[flows.entities.mapping]
supplier = {{ from = "Supplier", trim = true, column_type = "text" }}
due = {{ from = "_DueDate", type = "date", column_type = "date" }}
status = {{ from = "_Status", column_type = "status" }}
[flows.entities.monday]
board_id = "{PO_BOARD}"
item_name = "PO {{PurchaseOrder}}"
id_column = "syspro_id"

[flows.destination]
kind = "monday"
api_url = "{monday}"
token = "env:BENCH_MONDAY_TOKEN"
mutations_per_board_per_minute = {cap}
timeout_secs = 10
"#,
        syspro_toml = common::syspro_toml(syspro),
    )
}

fn status_settings(labels: &[&str]) -> Value {
    let m: serde_json::Map<String, Value> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (i.to_string(), Value::String((*l).to_string())))
        .collect();
    json!({ "labels": m })
}

/// Cap utilisation of one board: mutations in its busy windows ÷ (cap × busy windows). Busy
/// windows run from the first window with a mutation to the one before the last (the last
/// holds only what was left of the backlog); idle windows in between count as unused budget.
fn utilisation(windows: &BTreeMap<i64, u32>, cap: u32) -> Option<(f64, usize)> {
    let first = *windows.keys().next()?;
    let last = *windows.keys().next_back()?;
    if last == first {
        return None;
    }
    let busy = (last - first) as usize;
    let used: u64 = windows
        .range(first..last)
        .map(|(_, c)| u64::from((*c).min(cap)))
        .sum();
    Some((used as f64 / (f64::from(cap) * busy as f64), busy))
}

/// Runs the benchmark: `items` new items per board, `cap` mutations per board per window of
/// `window`.
pub async fn run(items: usize, cap: u32, window: Duration) -> Res<()> {
    let clock = common::clock();
    let syspro = SysproSim::start(SimOptions {
        counts: sim_syspro::CompanyCounts {
            customers: 0,
            invoices: 0,
            payments: 0,
            suppliers: items,
            ap_invoices: items,
            purchase_orders: items,
        },
        today: common::today(),
        operators: vec![(
            common::SYSPRO_OPERATOR.into(),
            common::SYSPRO_PASSWORD.into(),
        )],
        ..SimOptions::default()
    })
    .await?;
    let monday = MondaySim::start(MondayOptions {
        tokens: vec![common::MONDAY_TOKEN.into()],
        window,
        mutations_per_board: Some(cap),
        clock: clock.clone(),
        ..MondayOptions::default()
    })
    .await;
    monday.create_board(
        SUPPLIER_BOARD,
        "Suppliers",
        &[
            ("syspro_id", "SYSPRO ID", "text", Value::Null),
            ("supplier_name", "Supplier", "text", Value::Null),
            ("balance", "Balance", "numbers", Value::Null),
            ("currency", "Currency", "text", Value::Null),
        ],
    );
    monday.create_board(
        AP_BOARD,
        "AP invoices",
        &[
            ("syspro_id", "SYSPRO ID", "text", Value::Null),
            ("supplier", "Supplier", "text", Value::Null),
            ("amount", "Amount", "numbers", Value::Null),
            ("balance", "Balance", "numbers", Value::Null),
            ("due", "Due", "date", Value::Null),
            (
                "status",
                "Status",
                "status",
                status_settings(&["open", "overdue", "paid", "removed"]),
            ),
        ],
    );
    monday.create_board(
        PO_BOARD,
        "Purchase orders",
        &[
            ("syspro_id", "SYSPRO ID", "text", Value::Null),
            ("supplier", "Supplier", "text", Value::Null),
            ("due", "Due", "date", Value::Null),
            (
                "status",
                "Status",
                "status",
                status_settings(&["open", "complete", "cancelled", "unknown", "removed"]),
            ),
        ],
    );
    let config = common::parse_config(&flow_toml(&syspro.base_url(), &monday.url(), cap))?;
    let flow = config.flows.first().ok_or("no flow")?.clone();
    let dir = tempfile::Builder::new()
        .prefix("mlc-bench-monday-")
        .tempdir()?;
    let local = Local::open(dir.path(), "monday")?;
    let http = common::http()?;
    let rt = local.runtime(&config, &flow);

    let source = mlc_syspro::SysproSource::new(&flow.syspro, common::secrets(), http.clone())?;
    let poll = poll_flow(&rt, &source, "bench").await?;
    source.close().await;
    let records = poll.queued();
    eprintln!(
        "monday: polled {} rows, queued {records} records",
        poll.read()
    );

    let state: Arc<dyn RecordStateStore> = Arc::new(local.store.clone());
    let budget: Arc<dyn Budget> = Arc::new(local.store.clone());
    let sink = mlc_monday::MondaySink::new(
        &flow,
        common::secrets(),
        http.clone(),
        clock.clone(),
        budget,
        state,
    )?
    .with_options(mlc_monday::SinkOptions {
        window,
        ..mlc_monday::SinkOptions::default()
    });
    let mut sinks = SinkSet::new();
    sinks.insert(flow.id.clone(), (rt, Arc::new(sink) as Arc<dyn Sink>));
    // The local driver's idle sleep scaled like the window (200 ms of a minute).
    let scale = window.as_secs_f64() / 60.0;
    let opts = DrainOptions {
        idle_sleep: Duration::from_secs_f64((0.2 * scale).max(0.001)),
        max_wait: Duration::from_secs(600),
        ..DrainOptions::default()
    };
    monday.reset_stats();
    let t0 = Instant::now();
    let report = drain(local.queue.as_ref(), &sinks, &opts).await?;
    let secs = t0.elapsed().as_secs_f64();
    let stats = monday.stats();

    let mut per_board = serde_json::Map::new();
    let (mut used_sum, mut busy_sum) = (0.0, 0usize);
    for (board, windows) in &stats.board_windows {
        let u = utilisation(windows, cap);
        if let Some((x, busy)) = u {
            used_sum += x * busy as f64;
            busy_sum += busy;
        }
        per_board.insert(
            board.clone(),
            json!({
                "mutations": stats.mutations_per_board.get(board),
                "windows": windows.len(),
                "busy_windows": u.map(|x| x.1),
                "utilisation": u.map(|x| common::round(x.0, 3)),
                "max_in_window": stats.max_board_window.get(board),
            }),
        );
    }
    let utilisation = (busy_sum > 0).then(|| used_sum / busy_sum as f64);
    let items_total: usize = monday
        .items(SUPPLIER_BOARD)
        .len()
        .saturating_add(monday.items(AP_BOARD).len())
        .saturating_add(monday.items(PO_BOARD).len());
    eprintln!(
        "monday: {records} records → {items_total} items, {} mutations, {} requests ({} mutation requests), {} throttles in {secs:.1} s; created {} dead {} left {}",
        stats.mutations,
        stats.requests,
        stats.mutation_requests,
        stats.throttles,
        report.created,
        report.dead_lettered,
        report.left_queued
    );
    let per_record = |x: u64| (records > 0).then(|| common::round(x as f64 / records as f64, 4));
    common::emit(&json!({
        "bench": "monday",
        "records": records,
        "items": items_total,
        "created": report.created,
        "dead_lettered": report.dead_lettered,
        "left_queued": report.left_queued,
        "messages": report.messages,
        "seconds": common::round(secs, 2),
        "window_ms": window.as_millis() as u64,
        "cap": cap,
        "mutations": stats.mutations,
        "requests": stats.requests,
        "mutation_requests": stats.mutation_requests,
        "query_requests": stats.query_requests,
        "boards": per_board,
        "monday_mutations_per_record": per_record(stats.mutations),
        "monday_cap_utilisation": utilisation.map(|x| common::round(x, 3)),
        "monday_throttled": stats.throttles,
        "monday_requests_per_item": per_record(stats.requests),
        // One request per item: the naive client's figure, by construction.
        "monday_baseline_requests_per_item": 1.0,
    }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utilisation_counts_idle_windows_and_ignores_the_tail() {
        // Full windows 10 and 11, an idle window 12, a full 13, and a tail of 5 in 14.
        let w: BTreeMap<i64, u32> = [(10, 40), (11, 40), (13, 40), (14, 5)].into();
        let (u, busy) = utilisation(&w, 40).expect("busy windows");
        assert_eq!(busy, 4);
        assert!((u - 0.75).abs() < 1e-9);
        // One window only: nothing to measure.
        assert!(utilisation(&[(3, 12)].into(), 40).is_none());
    }
}
