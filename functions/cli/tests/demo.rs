//! The demo end to end, through the real binary: converges, survives faults, and survives being
//! killed mid-sync and restarted.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_ml-connector");

fn demo_json(args: &[&str]) -> (i32, Value) {
    let out = Command::new(BIN)
        .args(["--today", "2026-11-24", "--json", "demo"])
        .args(args)
        .output()
        .expect("run ml-connector demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "demo --json printed no JSON ({e}); stdout: {stdout}; stderr tail: {}",
            tail(&String::from_utf8_lossy(&out.stderr))
        )
    });
    (out.status.code().unwrap_or(-1), v)
}

fn tail(s: &str) -> String {
    s.lines()
        .rev()
        .take(15)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n")
}

fn assert_converged(v: &Value) {
    assert_eq!(v["converged"], Value::Bool(true), "{v:#}");
    assert_eq!(v["lost"], 0, "{v:#}");
    assert_eq!(v["duplicates"], 0, "{v:#}");
    assert_eq!(v["regressions"], 0, "{v:#}");
    assert_eq!(v["dead_lettered"], 0, "{v:#}");
    assert_eq!(
        v["audit_incomplete"], 0,
        "every synced record has a complete audit history: {v:#}"
    );
}

#[test]
fn demo_converges_and_reports_the_contract_fields() {
    let (code, v) = demo_json(&[
        "--customers",
        "30",
        "--invoices",
        "300",
        "--pos",
        "40",
        "--suppliers",
        "10",
        "--monday-window-ms",
        "200",
    ]);
    assert_eq!(code, 0, "{v:#}");
    assert_converged(&v);
    for k in [
        "converged",
        "lost",
        "duplicates",
        "regressions",
        "dead_lettered",
        "source",
        "salesforce",
        "monday",
        "elapsed_ms",
    ] {
        assert!(v.get(k).is_some(), "missing {k}: {v:#}");
    }
    assert_eq!(v["source"]["ArCustomer"], 30);
    assert_eq!(v["salesforce"]["accounts"], 30);
    assert!(v["salesforce"]["opportunities"].as_u64().unwrap() > 0);
    assert!(v["salesforce"]["api_calls"].as_u64().unwrap() > 0);
    // Suppliers and POs all sync; AP invoices sync while open.
    let items = v["monday"]["items"].as_u64().unwrap();
    assert!((10 + 40..=10 + 40 + 40).contains(&items), "{v:#}");
    assert_eq!(
        v["monday"]["mutations"].as_u64().unwrap(),
        items,
        "one mutation per record: {v:#}"
    );
    assert_eq!(
        v["monday"]["throttled"], 0,
        "the sink stays inside the board budget: {v:#}"
    );
}

/// The chaos run: faults on every external call; three fixed seeds.
#[test]
fn chaos_runs_converge_with_nothing_lost_duplicated_or_regressed() {
    for seed in [1u64, 2, 3] {
        let (code, v) = demo_json(&[
            "--customers",
            "100",
            "--invoices",
            "1500",
            "--pos",
            "150",
            "--suppliers",
            "30",
            "--faults",
            "0.1",
            "--seed",
            &seed.to_string(),
            "--monday-window-ms",
            "250",
        ]);
        assert_eq!(code, 0, "seed {seed}: {v:#}");
        assert_converged(&v);
    }
}

fn wait_for(path: &Path, timeout: Duration) {
    let t = Instant::now();
    while !path.exists() {
        assert!(t.elapsed() < timeout, "{} never appeared", path.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Kill the connector in the middle of a sync (SIGKILL, no clean-up), run it again: it ends
/// converged with nothing lost and nothing duplicated.
#[test]
fn killed_mid_sync_and_restarted_converges() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_str().expect("utf-8 path");
    let mut sims = Command::new(BIN)
        .args([
            "--today",
            "2026-11-24",
            "demo",
            "--serve",
            d,
            "--customers",
            "60",
            "--invoices",
            "1200",
            "--pos",
            "80",
            "--suppliers",
            "20",
            "--monday-window-ms",
            "300",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start simulators");
    wait_for(&dir.path().join("demo.json"), Duration::from_secs(30));

    for kill_after_ms in [400u64, 900, 1500] {
        let mut conn = Command::new(BIN)
            .args(["--today", "2026-11-24", "--json", "demo", "--attach", d])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start connector");
        std::thread::sleep(Duration::from_millis(kill_after_ms));
        let _ = conn.kill(); // SIGKILL
        let _ = conn.wait();
    }
    let out = Command::new(BIN)
        .args(["--today", "2026-11-24", "--json", "demo", "--attach", d])
        .output()
        .expect("run connector to the end");
    let _ = sims.kill();
    let _ = sims.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON ({e}): {stdout} / {}",
            tail(&String::from_utf8_lossy(&out.stderr))
        )
    });
    assert_converged(&v);
    assert_eq!(v["salesforce"]["accounts"], 60, "{v:#}");
}
