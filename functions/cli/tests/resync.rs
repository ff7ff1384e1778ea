//! `resync`, through the real binary against the simulators: records re-sent and written
//! although unchanged, nothing more on the next sync, and clear refusals.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_ml-connector");

fn config(syspro: &str, sf: &str) -> String {
    format!(
        r#"
[settings]
state_path = "state.db"

[[flows]]
id = "acme-sf"
[flows.syspro]
base_url = "{syspro}"
company = "DEMO"
operator = "OP"
password = "env:R_SYSPRO"
[[flows.entities]]
entity = "ArCustomer"
change_detection = "rowversion"
[flows.entities.mapping]
Name = {{ from = "Name", trim = true }}
[[flows.entities]]
entity = "ArInvoice"
change_detection = "rowversion"
[flows.entities.mapping]
Amount = {{ from = "CurrencyValue", type = "number" }}
[flows.destination]
kind = "salesforce"
my_domain_url = "{sf}"
client_id = "env:R_SF_ID"
client_secret = "env:R_SF_SECRET"
stage_map = {{ open = "Prospecting", overdue = "Negotiation/Review", paid = "Closed Won", removed = "Closed Lost" }}
"#
    )
}

fn run(cfg: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(["--today", "2026-11-24", "--json"])
        .args(args)
        .args(["--config", cfg.to_str().expect("utf-8 path")])
        .env("R_SYSPRO", "pw")
        .env("R_SF_ID", "sim-client-id")
        .env("R_SF_SECRET", "sim-client-secret")
        .output()
        .expect("run ml-connector");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn json_ok(cfg: &Path, args: &[&str]) -> Value {
    let (code, out, err) = run(cfg, args);
    assert_eq!(code, 0, "{args:?}: {out}{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: no JSON ({e}): {out}{err}"))
}

fn queued(sync: &Value) -> u64 {
    sync["polls"][0]["entities"]
        .as_array()
        .map(|es| es.iter().filter_map(|e| e["queued"].as_u64()).sum())
        .unwrap_or_else(|| panic!("no polls: {sync:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resync_rewrites_unchanged_records_once_and_refuses_what_it_cannot_do() {
    let syspro = sim_syspro::SysproSim::start(sim_syspro::SimOptions {
        company_id: "DEMO".into(),
        operators: vec![("OP".into(), "pw".into())],
        ..Default::default()
    })
    .await
    .expect("syspro sim");
    let sf = sim_salesforce::OrgSim::start(Default::default())
        .await
        .expect("sf sim");
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("flows.toml");
    std::fs::write(&cfg, config(&syspro.base_url(), &sf.url())).expect("write");

    json_ok(&cfg, &["sync", "--once"]);
    let idle = json_ok(&cfg, &["sync", "--once"]);
    assert_eq!(queued(&idle), 0, "{idle:#}");

    let customers = syspro.snapshot()["ArCustomer"].len() as u64;
    let r = json_ok(
        &cfg,
        &["resync", "--flow", "acme-sf", "--entity", "ArCustomer"],
    );
    assert_eq!(
        r["poll"]["entities"].as_array().map(Vec::len),
        Some(1),
        "{r:#}"
    );
    assert_eq!(r["updated"].as_u64(), Some(customers), "{r:#}");
    let after = json_ok(&cfg, &["sync", "--once"]);
    assert_eq!(
        queued(&after),
        0,
        "the next sync sends nothing more: {after:#}"
    );

    let (code, out, err) = run(&cfg, &["resync", "--flow", "acme-sf", "--key", "X"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("--key needs --entity"), "{err}");
    let (code, out, err) = run(
        &cfg,
        &[
            "resync",
            "--flow",
            "acme-sf",
            "--entity",
            "ArCustomer",
            "--key",
            "NO-SUCH-CUSTOMER",
        ],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("NO-SUCH-CUSTOMER not found in SYSPRO"),
        "{err}"
    );
}
