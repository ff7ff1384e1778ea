//! `bootstrap` (function binary sizes) and `report`: merges the subcommands' JSON lines into
//! the contract figures, prints the table, then the one-line JSON object last.

use std::path::Path;

use serde_json::{json, Map, Value};

use crate::common::{self, Res};

/// The Lambda functions and their binary names.
pub const FUNCTIONS: [&str; 4] = ["poll", "sink-salesforce", "sink-monday", "replay"];

/// Sizes in MB of each function's release binary (`target/lambda/<name>/bootstrap` when
/// `cargo lambda` built it, else `target/release/<name>`); null when neither exists.
pub fn bootstrap(target: &Path) -> Res<()> {
    let mut sizes = Map::new();
    for f in FUNCTIONS {
        let candidates = [
            target.join("lambda").join(f).join("bootstrap"),
            target.join("release").join(f),
        ];
        let size = candidates
            .iter()
            .find_map(|p| std::fs::metadata(p).ok().filter(|m| m.is_file()))
            .map(|m| common::round(m.len() as f64 / (1024.0 * 1024.0), 2));
        sizes.insert(f.to_string(), json!(size));
    }
    common::emit(&json!({"bench": "bootstrap", "bootstrap_mb": sizes}));
    Ok(())
}

fn f(v: &Value, path: &str) -> Option<f64> {
    v.pointer(path).and_then(Value::as_f64)
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Value {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => json!(common::round(a / b, 4)),
        _ => Value::Null,
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::Null => "—".into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Reads the JSON line files `files` (`name=path`), prints the table and the final line.
pub fn report(size: &str, files: &[(String, String)]) -> Res<()> {
    let mut by: Map<String, Value> = Map::new();
    for (name, path) in files {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        // The subcommand's figures are its last stdout line.
        let v = text
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
            .unwrap_or(Value::Null);
        by.insert(name.clone(), v);
    }
    let null = Value::Null;
    let get = |k: &str| by.get(k).unwrap_or(&null);
    let poll = get("poll");
    let sf = get("salesforce");
    let mo = get("monday");
    let sf_calls = f(sf, "/sf_calls_per_1000");
    let sf_backfill = f(sf, "/sf_calls_per_1000_backfill");
    let base = f(sf, "/baseline_calls_per_1000");
    let mo_req = f(mo, "/monday_requests_per_item");
    let mo_base = f(mo, "/monday_baseline_requests_per_item");
    let rss_10k = f(get("rss_10k"), "/peak_rss_mb");
    let rss_1m = f(get("rss_1m"), "/peak_rss_mb");

    let mut out = Map::new();
    out.insert("size".into(), json!(size));
    out.insert(
        "poll_records_per_s".into(),
        json!(f(poll, "/records_per_s")),
    );
    out.insert("poll_peak_rss_mb_10k".into(), json!(rss_10k));
    out.insert("poll_peak_rss_mb_1m".into(), json!(rss_1m));
    out.insert("sf_calls_per_1000".into(), json!(sf_calls));
    out.insert("sf_calls_per_1000_backfill".into(), json!(sf_backfill));
    out.insert(
        "sf_calls_per_1000_unchanged".into(),
        json!(f(sf, "/sf_calls_per_1000_unchanged")),
    );
    for k in [
        "monday_mutations_per_record",
        "monday_cap_utilisation",
        "monday_throttled",
        "monday_requests_per_item",
    ] {
        out.insert(k.into(), mo.get(k).cloned().unwrap_or(Value::Null));
    }
    out.insert("baseline_calls_per_1000".into(), json!(base));
    out.insert(
        "bootstrap_mb".into(),
        get("bootstrap")
            .get("bootstrap_mb")
            .cloned()
            .unwrap_or_else(|| json!({})),
    );
    out.insert("sf_ratio_vs_baseline".into(), ratio(sf_calls, base));
    out.insert(
        "sf_backfill_ratio_vs_baseline".into(),
        ratio(sf_backfill, base),
    );
    out.insert("monday_baseline_requests_per_item".into(), json!(mo_base));
    out.insert(
        "monday_requests_ratio_vs_baseline".into(),
        ratio(mo_req, mo_base),
    );
    out.insert("poll_rss_ratio_1m_vs_10k".into(), ratio(rss_1m, rss_10k));
    out.insert(
        "poll_records_per_cpu_s".into(),
        json!(f(poll, "/records_per_cpu_s")),
    );
    out.insert("poll_rows".into(), json!(f(poll, "/rows")));
    out.insert("sf_changed_records".into(), json!(f(sf, "/steady/queued")));
    out.insert(
        "sf_backfill_records".into(),
        json!(f(sf, "/backfill/queued")),
    );
    let load = syspro_load(get("incremental"));
    out.insert("syspro_load".into(), load.clone());

    // The table: figure, target (issue 8 / issue 10; issue 20 for `syspro_*`), measured.
    let rows: Vec<(&str, &str, String)> = vec![
        (
            "poll_records_per_s",
            "≥ 20,000 / ≥ 100,000",
            show(&out["poll_records_per_s"]),
        ),
        (
            "poll_records_per_cpu_s",
            "(info)",
            show(&out["poll_records_per_cpu_s"]),
        ),
        (
            "poll_peak_rss_mb_10k",
            "(base)",
            show(&out["poll_peak_rss_mb_10k"]),
        ),
        (
            "poll_peak_rss_mb_1m",
            "≤ 1.2 × 10k",
            show(&out["poll_peak_rss_mb_1m"]),
        ),
        (
            "sf_calls_per_1000",
            "≤ 6 / ≤ 1.2",
            show(&out["sf_calls_per_1000"]),
        ),
        (
            "sf_calls_per_1000_backfill",
            "≤ 1 / ≤ 0.2",
            show(&out["sf_calls_per_1000_backfill"]),
        ),
        (
            "sf_calls_per_1000_unchanged",
            "0",
            show(&out["sf_calls_per_1000_unchanged"]),
        ),
        (
            "baseline_calls_per_1000",
            "(naive)",
            show(&out["baseline_calls_per_1000"]),
        ),
        (
            "sf_ratio_vs_baseline",
            "(lower is better)",
            show(&out["sf_ratio_vs_baseline"]),
        ),
        (
            "monday_mutations_per_record",
            "1",
            show(&out["monday_mutations_per_record"]),
        ),
        (
            "monday_cap_utilisation",
            "≥ 0.95",
            show(&out["monday_cap_utilisation"]),
        ),
        ("monday_throttled", "0", show(&out["monday_throttled"])),
        (
            "monday_requests_per_item",
            "≤ 0.1",
            show(&out["monday_requests_per_item"]),
        ),
        (
            "monday_requests_ratio_vs_baseline",
            "(lower is better)",
            show(&out["monday_requests_ratio_vs_baseline"]),
        ),
        ("bootstrap_mb", "≤ 20 each", show(&out["bootstrap_mb"])),
    ];
    let mut rows = rows;
    rows.extend(syspro_load_rows(&load));
    let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let w1 = rows.iter().map(|r| r.1.chars().count()).max().unwrap_or(0);
    println!("figure{}  target{}  measured", " ".repeat(w0 - 6), {
        " ".repeat(w1.saturating_sub(6))
    });
    for (a, b, c) in &rows {
        let pad = w1.saturating_sub(b.chars().count());
        println!("{a:<w0$}  {b}{}  {c}", " ".repeat(pad));
    }
    println!("{}", Value::Object(out));
    Ok(())
}

/// Figures of `incremental` that go under `syspro_load` in the final line (issue 20).
const SYSPRO_LOAD: [&str; 24] = [
    "rows",
    "backfill_rows_read",
    "lag_backfill_rows_read",
    "idle_rows_read",
    "idle_requests",
    "changes",
    "changes_rows_read",
    "changes_lookup_rows",
    "changes_requests",
    "lag_rows_read",
    "lag_lookup_rows",
    "lag_requests",
    "date_change_movers",
    "date_change_calendar",
    "date_change_rows_read",
    "date_change_lookup_rows",
    "date_change_requests",
    "date_change_queued",
    "sweep_rows_read",
    "sweep_requests",
    "full_rows_read",
    "full_lookup_rows",
    "full_requests",
    "changes_ratio",
];

/// The `syspro_load` object: the `incremental` figures, and rows read per changed row.
fn syspro_load(inc: &Value) -> Value {
    let mut m = Map::new();
    for k in SYSPRO_LOAD {
        m.insert(k.into(), inc.get(k).cloned().unwrap_or(Value::Null));
    }
    m.insert(
        "changes_ratio".into(),
        ratio(f(inc, "/changes_rows_read"), f(inc, "/changes")),
    );
    Value::Object(m)
}

/// Table rows of the SYSPRO load, with issue 20's targets: rows of the polled table, with the
/// customer rows the Opportunity name looks up and the OData requests beside them.
fn syspro_load_rows(load: &Value) -> Vec<(&'static str, &'static str, String)> {
    let g = |k: &str| show(load.get(k).unwrap_or(&Value::Null));
    let cost = |p: &str| {
        let lookups = load
            .get(format!("{p}_lookup_rows").as_str())
            .map(show)
            .map(|l| format!(" + {l} customer rows"))
            .unwrap_or_default();
        format!(
            "{}{lookups}, {} requests",
            g(&format!("{p}_rows_read")),
            g(&format!("{p}_requests"))
        )
    };
    vec![
        ("syspro_idle_rows_read", "0", cost("idle")),
        (
            "syspro_changes_rows_read",
            "≤ 1.1 × changes",
            format!(
                "{} ({} changed, × {})",
                cost("changes"),
                g("changes"),
                g("changes_ratio")
            ),
        ),
        ("syspro_lag_rows_read", "(the poll after)", cost("lag")),
        (
            "syspro_date_change_rows_read",
            "= movers",
            format!(
                "{} ({} movers, {} by calendar)",
                cost("date_change"),
                g("date_change_movers"),
                g("date_change_calendar")
            ),
        ),
        (
            "syspro_sweep_rows_read",
            "(daily, keys only)",
            cost("sweep"),
        ),
        ("syspro_full_rows_read", "(baseline)", cost("full")),
        (
            "syspro_lag_backfill_rows_read",
            "(after backfill)",
            g("lag_backfill_rows_read"),
        ),
    ]
}
