//! `watermark show|reset` and the notes `status` shows, through the real binary against the
//! simulators: a reset moves what the next `sync --once` reads, a wrong `--to` exits 2 naming
//! the entity, a held lease refuses the reset.

use std::path::Path;
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use mlc_core::ports::WatermarkStore;
use mlc_core::watermark::{GoLive, WatermarkNotes};
use mlc_core::{Entity, Watermark};
use serde_json::Value;

mod common;

use common::run;

fn json(cfg: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let (code, out, err) = run(cfg, &all);
    assert_eq!(code, 0, "{args:?}: {out}{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: no JSON ({e}): {out}{err}"))
}

/// `watermark show --json` of one entity.
fn shown(cfg: &Path, entity: &str) -> Value {
    let v = json(
        cfg,
        &["watermark", "show", "--flow", "acme-sf", "--entity", entity],
    );
    assert_eq!(v.as_array().map(Vec::len), Some(1), "{v:#}");
    v[0].clone()
}

/// Rows the last `sync --once` read of an entity.
fn rows_read(sync: &Value, entity: &str) -> u64 {
    sync["polls"][0]["entities"]
        .as_array()
        .and_then(|es| es.iter().find(|e| e["entity"] == entity))
        .and_then(|e| e["rows_read"].as_u64())
        .unwrap_or_else(|| panic!("no rows_read for {entity}: {sync:#}"))
}

async fn start() -> (
    sim_syspro::SimHandle,
    sim_salesforce::OrgHandle,
    tempfile::TempDir,
) {
    let sims = common::start("change_detection = \"open-items\"\ninitial_scope = \"open\"").await;
    (sims.syspro, sims.sf, sims.dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_and_reset_move_what_the_next_sync_reads() {
    let (syspro, _sf, dir) = start().await;
    let cfg = dir.path().join("flows.toml");
    let customers = syspro.snapshot()["ArCustomer"].len() as u64;
    assert!(customers > 0);

    // Before any poll: nothing stored, and show says the first poll reads everything.
    let before = shown(&cfg, "ArCustomer");
    assert!(before["value"].is_null(), "{before:#}");
    assert!(
        before["reads"]
            .as_str()
            .unwrap_or("")
            .contains("whole entity"),
        "{before:#}"
    );

    let first = json(&cfg, &["sync", "--once"]);
    assert_eq!(rows_read(&first, "ArCustomer"), customers, "{first:#}");

    // show: every entity, with its strategy, value in words, and who saved it.
    let all = json(&cfg, &["watermark", "show", "--flow", "acme-sf"]);
    let names: Vec<&str> = all
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|e| e["entity"].as_str())
        .collect();
    assert_eq!(names, ["ArCustomer", "ArInvoice"], "{all:#}");
    let cust = &all[0];
    assert_eq!(cust["change_detection"], "rowversion", "{cust:#}");
    assert_eq!(cust["value"]["kind"], "row-version-lagged", "{cust:#}");
    assert_eq!(cust["poll_id"], "acme-sf:1", "{cust:#}");
    assert_eq!(all[1]["initial_scope"], "open", "{all:#}");
    let seen = cust["value"]["value"]["seen"].as_u64().expect("seen");
    let (code, out, err) = run(&cfg, &["watermark", "show", "--flow", "acme-sf"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("acme-sf ArCustomer (rowversion)")
            && out.contains(&format!("rowversion {seen} (next poll reads > "))
            && out.contains("acme-sf ArInvoice (open-items)")
            && out.contains("by acme-sf:1"),
        "{out}"
    );

    // reset --to the highest rowversion: the next poll reads nothing of ArCustomer.
    let version = cust["version"].as_u64().expect("version");
    let (code, out, err) = run(
        &cfg,
        &[
            "watermark",
            "reset",
            "--flow",
            "acme-sf",
            "--entity",
            "ArCustomer",
            "--to",
            &seen.to_string(),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("acme-sf ArCustomer: rowversion") && out.contains('→'),
        "{out}"
    );
    let moved = shown(&cfg, "ArCustomer");
    assert_eq!(moved["value"]["value"]["bound"], seen, "{moved:#}");
    assert_eq!(moved["version"], version + 1, "{moved:#}");
    let second = json(&cfg, &["sync", "--once"]);
    assert_eq!(rows_read(&second, "ArCustomer"), 0, "{second:#}");

    // reset without --to: empty, and the next poll reads every customer again.
    let (code, out, err) = run(
        &cfg,
        &[
            "watermark",
            "reset",
            "--flow",
            "acme-sf",
            "--entity",
            "ArCustomer",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("→ empty (next poll reads the whole entity)"),
        "{out}"
    );
    let emptied = shown(&cfg, "ArCustomer");
    assert_eq!(emptied["value"]["kind"], "empty", "{emptied:#}");
    assert!(emptied["swept"].is_null(), "notes cleared: {emptied:#}");
    let third = json(&cfg, &["sync", "--once"]);
    assert_eq!(rows_read(&third, "ArCustomer"), customers, "{third:#}");
    assert_eq!(
        shown(&cfg, "ArCustomer")["value"]["kind"],
        "row-version-lagged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_to_exits_2_and_a_held_lease_refuses_the_reset() {
    let (_syspro, _sf, dir) = start().await;
    let cfg = dir.path().join("flows.toml");
    let (code, out, err) = run(&cfg, &["sync", "--once"]);
    assert_eq!(code, 0, "{out}{err}");
    let before = shown(&cfg, "ArCustomer");

    for (entity, to, why) in [
        ("ArCustomer", "2026-12-01", "rowversion"),
        ("ArInvoice", "12000", "open-items"),
        ("ArCustomer", "yesterday", "YYYY-MM-DD"),
    ] {
        let (code, out, err) = run(
            &cfg,
            &[
                "watermark",
                "reset",
                "--flow",
                "acme-sf",
                "--entity",
                entity,
                "--to",
                to,
            ],
        );
        assert_eq!(code, 2, "{entity} --to {to}: {out}{err}");
        assert!(
            err.contains("acme-sf")
                && err.contains(entity)
                && err.contains(to)
                && err.contains(why),
            "{err}"
        );
    }
    // Without --entity, one entity that cannot take the value stops the whole reset.
    let (code, _, err) = run(
        &cfg,
        &["watermark", "reset", "--flow", "acme-sf", "--to", "5"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("ArInvoice"), "{err}");
    let (code, _, err) = run(
        &cfg,
        &[
            "watermark",
            "reset",
            "--flow",
            "acme-sf",
            "--entity",
            "ApInvoice",
        ],
    );
    assert_eq!(code, 2, "an entity the flow does not have: {err}");
    assert_eq!(shown(&cfg, "ArCustomer"), before, "nothing changed");

    // A poll holding the lease: the reset is refused (exit 1) and changes nothing.
    let store = mlc_embedded::SqliteStore::open(&dir.path().join("state.db")).expect("store");
    let lease = store
        .acquire_lease(
            "acme-sf",
            "test-poller",
            Duration::from_secs(600),
            Utc::now(),
        )
        .await
        .expect("acquire")
        .expect("free lease");
    let (code, out, err) = run(&cfg, &["watermark", "reset", "--flow", "acme-sf"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("lease") && err.contains("test-poller"),
        "{err}"
    );
    assert_eq!(shown(&cfg, "ArCustomer"), before, "nothing changed");

    store
        .release_lease(&lease, false, Utc::now())
        .await
        .expect("release");
    let (code, out, err) = run(&cfg, &["watermark", "reset", "--flow", "acme-sf"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("acme-sf ArCustomer") && out.contains("acme-sf ArInvoice"),
        "{out}"
    );
    let after = json(&cfg, &["watermark", "show", "--flow", "acme-sf"]);
    for e in after.as_array().expect("array") {
        assert_eq!(e["value"]["kind"], "empty", "{e:#}");
        assert_eq!(e["poll_id"], "cli:watermark-reset", "{e:#}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_scope_sweep_and_alert_notes() {
    let (_syspro, _sf, dir) = start().await;
    let cfg = dir.path().join("flows.toml");
    let (code, out, err) = run(&cfg, &["sync", "--once"]);
    assert_eq!(code, 0, "{out}{err}");

    // Notes as a poll would leave them, written through the store.
    let store = mlc_embedded::SqliteStore::open(&dir.path().join("state.db")).expect("store");
    let day = NaiveDate::from_ymd_opt(2026, 12, 1).expect("date");
    let stored = store
        .load("acme-sf", Entity::ArInvoice)
        .await
        .expect("load")
        .expect("a watermark after sync");
    let noted = Watermark {
        version: stored.version + 1,
        notes: WatermarkNotes {
            business_date: Some(day),
            swept: Some(day),
            swept_rows: Some(812),
            go_live: Some(GoLive {
                date: day,
                row_version: None,
                out_of_scope: 75,
            }),
            alert: Some("the table shrank from 900 to 12 rows".into()),
            resume: None,
        },
        ..stored
    };
    store.save(&noted).await.expect("save notes");

    let (code, out, err) = run(&cfg, &["status"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("ALERT acme-sf ArInvoice: the table shrank from 900 to 12 rows"),
        "{out}"
    );
    assert!(
        out.contains("75 rows left out by initial_scope = open on 2026-12-01"),
        "{out}"
    );
    assert!(out.contains("last sweep 2026-12-01 (812 rows)"), "{out}");
    assert!(
        out.contains("acme-sf ArCustomer: initial scope all"),
        "{out}"
    );

    let st = json(&cfg, &["status"]);
    let inv = &st[0]["entities"]["ArInvoice"];
    assert_eq!(inv["initial_scope"], "open", "{st:#}");
    assert_eq!(inv["out_of_scope"], 75, "{st:#}");
    assert_eq!(inv["swept"], "2026-12-01", "{st:#}");
    assert_eq!(
        inv["alert"], "the table shrank from 900 to 12 rows",
        "{st:#}"
    );
    assert_eq!(st[0]["entities"]["ArCustomer"]["initial_scope"], "all");
    assert!(
        st[0]["watermarks"]["ArInvoice"].is_object(),
        "the existing names stay: {st:#}"
    );

    // watermark show carries the same notes.
    let shown = shown(&cfg, "ArInvoice");
    assert_eq!(shown["out_of_scope"], 75, "{shown:#}");
    assert_eq!(shown["business_date"], "2026-12-01", "{shown:#}");
    assert_eq!(shown["alert"], "the table shrank from 900 to 12 rows");
}
