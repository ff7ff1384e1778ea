//! `resync`, through the real binary against the simulators: records re-sent and written
//! although unchanged, nothing more on the next sync, and clear refusals.

use std::path::Path;

use serde_json::Value;

mod common;

use common::run;

fn json_ok(cfg: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let (code, out, err) = run(cfg, &all);
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
    let sims = common::start("change_detection = \"rowversion\"").await;
    let (syspro, cfg) = (&sims.syspro, sims.cfg.clone());

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

    let (code, out, err) = run(
        &cfg,
        &["--json", "resync", "--flow", "acme-sf", "--key", "X"],
    );
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
