//! The command line against the simulators: exit codes, ping, sync --once, status, audit,
//! replay, and configuration errors with file:line.

use std::process::Command;

use serde_json::Value;

mod common;

use common::BIN;

fn run(cfg: &std::path::Path, args: &[&str], syspro_pw: &str) -> (i32, String, String) {
    common::run_as(cfg, args, syspro_pw)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_sync_status_audit_replay() {
    let sims = common::start("change_detection = \"open-items\"").await;
    let (syspro, sf, cfg) = (&sims.syspro, &sims.sf, sims.cfg.clone());

    // ping: one line per system, exit 0; a wrong SYSPRO password fails with 4 and writes nothing.
    let (code, out, err) = run(&cfg, &["ping"], "pw");
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("acme-sf syspro") && out.contains("acme-sf salesforce"),
        "{out}"
    );
    let (code, out, err) = run(&cfg, &["ping"], "Xq7-not-the-password");
    assert_eq!(code, 4, "{out}");
    assert!(out.contains("FAIL acme-sf syspro"), "{out}");
    assert!(
        !out.contains("Xq7-not") && !err.contains("Xq7-not"),
        "the password never appears: {out}{err}"
    );
    assert_eq!(sf.accounts().len(), 0, "ping writes nothing");

    // One record made invalid in Salesforce: it is dead-lettered, the rest lands (exit 3).
    let snap = syspro.snapshot();
    let inv = &snap["ArInvoice"]
        .iter()
        .find(|r| r["InvoiceBal1"].as_f64().unwrap_or(0.0) > 0.0)
        .expect("an open invoice");
    let key = format!(
        "{}|{}|{}",
        inv["Customer"].as_str().unwrap().trim_end(),
        inv["Invoice"].as_str().unwrap().trim_end(),
        inv["DocumentType"].as_str().unwrap().trim_end()
    );
    sf.fail_record(
        &key,
        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        "Amount must be approved",
        1000,
    );
    let (code, out, err) = run(&cfg, &["--json", "sync", "--once"], "pw");
    assert_eq!(code, 3, "{out}{err}");
    let v: Value = serde_json::from_str(&out).expect("sync json");
    assert_eq!(v["deliveries"]["salesforce"]["dead_lettered"], 1, "{v}");
    assert!(!sf.accounts().is_empty());

    // status shows the dead letter and the watermarks.
    let (code, out, _) = run(&cfg, &["--json", "status"], "pw");
    assert_eq!(code, 0);
    let st: Value = serde_json::from_str(&out).expect("status json");
    assert_eq!(st[0]["flow"], "acme-sf");
    assert_eq!(st[0]["dead_lettered"], 1, "{st}");
    assert!(st[0]["watermarks"]["ArCustomer"].is_object(), "{st}");

    // audit: the whole history of that invoice, with the vendor's error.
    let (code, out, _) = run(&cfg, &["audit", &key], "pw");
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("queued") && out.contains("failed-permanent"),
        "{out}"
    );
    assert!(out.contains("FIELD_CUSTOM_VALIDATION_EXCEPTION"), "{out}");
    let (code, _, _) = run(&cfg, &["audit", "NO-SUCH-KEY"], "pw");
    assert_eq!(code, 3);

    // replay: dry run moves nothing; after the fix, a replay and a sync land it.
    let (code, out, _) = run(&cfg, &["replay", "--dry-run", "--key", &key], "pw");
    assert_eq!(code, 0);
    assert!(out.contains("would move 1"), "{out}");
    sf.clear_faults();
    let (code, out, _) = run(&cfg, &["replay", "--key", &key], "pw");
    assert_eq!(code, 0);
    assert!(out.contains("salesforce: moved 1"), "{out}");
    let (code, out, err) = run(&cfg, &["sync", "--once"], "pw");
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(sf.find("Opportunity", "SYSPRO_Invoice__c", &key).len(), 1);
    let (_, out, _) = run(&cfg, &["audit", &key], "pw");
    assert!(out.contains("replayed") && out.contains("created"), "{out}");
}

#[test]
fn config_mistakes_exit_2_with_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("flows.toml");
    std::fs::write(
        &cfg,
        concat!(
            "[[flows]]\n",
            "id = \"Bad Id\"\n",
            "[flows.syspro]\n",
            "base_url = \"http://erp.example.com\"\n",
            "company = \"X\"\n",
            "operator = \"O\"\n",
            "password = \"hunter2\"\n",
            "[[flows.entities]]\n",
            "entity = \"ArCustomer\"\n",
            "change_detection = \"rowversion\"\n",
            "[flows.destination]\n",
            "kind = \"salesforce\"\n",
            "my_domain_url = \"https://acme.my.salesforce.com\"\n",
            "client_id = \"env:A\"\n",
            "client_secret = \"env:B\"\n",
        ),
    )
    .expect("write");
    let out = Command::new(BIN)
        .args(["status", "--config", cfg.to_str().unwrap()])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("flows.toml:2:"), "{err}");
    assert!(
        err.contains("flows.toml:4:"),
        "plain http to a non-loopback host: {err}"
    );
    assert!(err.contains("flows.toml:7:"), "inline secret: {err}");
    assert!(
        !err.contains("hunter2"),
        "the inline secret is not echoed: {err}"
    );
}

#[test]
fn today_flag_must_be_a_date() {
    let out = Command::new(BIN)
        .args(["--today", "24/11/2026", "demo"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("YYYY-MM-DD"));
}
