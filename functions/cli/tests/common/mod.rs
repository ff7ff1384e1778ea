//! What the CLI tests share: the binary, a Salesforce flow over the simulators, and running
//! the binary against it with the flow's credentials in its environment.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The `ml-connector` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_ml-connector");

/// A flow syncing SYSPRO customers (rowversion) and invoices to Salesforce; `invoices` holds the
/// invoice entity's own keys (its `change_detection`, an `initial_scope` …).
pub fn config(syspro: &str, sf: &str, invoices: &str) -> String {
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
password = "env:C_SYSPRO"
[[flows.entities]]
entity = "ArCustomer"
change_detection = "rowversion"
[flows.entities.mapping]
Name = {{ from = "Name", trim = true }}
[[flows.entities]]
entity = "ArInvoice"
{invoices}
[flows.entities.mapping]
Amount = {{ from = "CurrencyValue", type = "number" }}
[flows.destination]
kind = "salesforce"
my_domain_url = "{sf}"
client_id = "env:C_SF_ID"
client_secret = "env:C_SF_SECRET"
stage_map = {{ open = "Prospecting", overdue = "Negotiation/Review", paid = "Closed Won", removed = "Closed Lost" }}
"#
    )
}

/// Runs the binary on 2026-11-24 with `args` and the flows file, the SYSPRO password given:
/// exit code, stdout, stderr.
pub fn run_as(cfg: &Path, args: &[&str], syspro_pw: &str) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(["--today", "2026-11-24"])
        .args(args)
        .args(["--config", cfg.to_str().expect("utf-8 path")])
        .env("C_SYSPRO", syspro_pw)
        .env("C_SF_ID", "sim-client-id")
        .env("C_SF_SECRET", "sim-client-secret")
        .output()
        .expect("run ml-connector");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// [`run_as`] with the simulator's password.
pub fn run(cfg: &Path, args: &[&str]) -> (i32, String, String) {
    run_as(cfg, args, "pw")
}

/// The SYSPRO and Salesforce simulators, and a flows file for them.
pub struct Sims {
    pub syspro: sim_syspro::SimHandle,
    pub sf: sim_salesforce::OrgHandle,
    pub dir: tempfile::TempDir,
    pub cfg: PathBuf,
}

/// Starts the simulators and writes the flows file (`invoices` as in [`config`]).
pub async fn start(invoices: &str) -> Sims {
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
    std::fs::write(&cfg, config(&syspro.base_url(), &sf.url(), invoices)).expect("write");
    Sims {
        syspro,
        sf,
        dir,
        cfg,
    }
}
