//! `ml-connector preview` against the simulators: a record before and after a sync, and after
//! someone edited it in Salesforce; `--json`; exit codes.

use serde_json::Value;

mod common;

use common::run;

fn json_preview(cfg: &std::path::Path, key: &str) -> Value {
    let (code, out, err) = run(
        cfg,
        &["--json", "preview", "--flow", "acme-sf", "--key", key],
    );
    assert_eq!(code, 0, "{out}{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn field<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["fields"]
        .as_array()
        .and_then(|a| a.iter().find(|f| f["field"] == name))
        .unwrap_or_else(|| panic!("no {name} in {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_before_and_after_a_sync_and_after_an_edit_in_salesforce() {
    let sims = common::start("change_detection = \"open-items\"").await;
    let (syspro, sf, cfg) = (&sims.syspro, &sims.sf, sims.cfg.clone());
    let snap = syspro.snapshot();
    let inv = snap["ArInvoice"]
        .iter()
        .find(|r| r["InvoiceBal1"].as_f64().unwrap_or(0.0) > 0.0)
        .expect("an open invoice");
    let part = |f: &str| inv[f].as_str().unwrap().trim_end().to_string();
    let key = format!(
        "{}|{}|{}",
        part("Customer"),
        part("Invoice"),
        part("DocumentType")
    );

    // Before any sync: the table and "would create"; nothing is written.
    let (code, out, err) = run(&cfg, &["preview", "--flow", "acme-sf", "--key", &key]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("SYSPRO → new value") && out.contains("destination now"),
        "{out}"
    );
    assert!(out.contains("would create"), "{out}");
    assert!(sf.opportunities().is_empty() && sf.accounts().is_empty());
    let v = json_preview(&cfg, &key);
    assert_eq!(v["flow"], "acme-sf");
    assert_eq!(v["entity"], "ArInvoice");
    assert_eq!(v["key"], key.as_str());
    assert_eq!(v["destination"], "Opportunity");
    assert_eq!(v["action"], "create");
    assert!(v["destination_id"].is_null());
    let amount = field(&v, "Amount");
    assert_eq!(amount["changed"], true);
    assert!(amount["current"].is_null(), "{amount}");

    // After a sync the org holds the previewed payload: nothing to write.
    let (code, out, err) = run(&cfg, &["sync", "--once"]);
    assert_eq!(code, 0, "{out}{err}");
    let opp = sf.find("Opportunity", "SYSPRO_Invoice__c", &key);
    assert_eq!(opp.len(), 1);
    assert_eq!(
        opp[0].fields["Amount"], amount["new"],
        "preview shows what the sync sent"
    );
    let v = json_preview(&cfg, &key);
    assert_eq!(v["action"], "nothing", "{v}");
    assert_eq!(v["destination_id"], opp[0].id.as_str());
    let (code, out, _) = run(&cfg, &["preview", "--flow", "acme-sf", "--key", &key]);
    assert_eq!(code, 0);
    assert!(out.contains("nothing to write"), "{out}");
    let customer = part("Customer");
    let c = json_preview(&cfg, &customer);
    assert_eq!(
        (c["entity"].as_str(), c["action"].as_str()),
        (Some("ArCustomer"), Some("nothing")),
        "{c}"
    );

    // Someone edits the Amount in Salesforce: one field would change.
    assert!(sf.edit(&opp[0].id, serde_json::json!({"Amount": 1})));
    let (code, out, _) = run(&cfg, &["preview", "--flow", "acme-sf", "--key", &key]);
    assert_eq!(code, 0);
    assert!(out.contains("would update 1 field: Amount"), "{out}");
    assert!(out.contains("next sync skips it"), "{out}");

    // Exit codes: unknown flow or entity 2, a key SYSPRO does not have 1 (naming it).
    let (code, _, err) = run(&cfg, &["preview", "--flow", "nope", "--key", &key]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = run(
        &cfg,
        &[
            "preview",
            "--flow",
            "acme-sf",
            "--key",
            "X",
            "--entity",
            "ApInvoice",
        ],
    );
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = run(
        &cfg,
        &["preview", "--flow", "acme-sf", "--key", "NO-SUCH-KEY"],
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("NO-SUCH-KEY") && err.contains("acme-sf"),
        "{err}"
    );
}
