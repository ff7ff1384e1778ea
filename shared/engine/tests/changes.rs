//! Reading what changed (issue 20): the initial scope, the calendar under every strategy, the
//! key sweep, watermark safety, rows that cannot be synced, and forced re-sends.

mod common;

use common::*;

use chrono::{DateTime, NaiveDate, Utc};
use mlc_core::config::{ChangeDetection, InitialScope, Sweep};
use mlc_core::ports::{AuditLog, WatermarkStore};
use mlc_core::{Entity, Record, SyncOutcome, WatermarkValue};
use mlc_engine::{poll_flow_with, PollOptions, PollReport, Resync};
use serde_json::{json, Value};

const INVOICE: usize = 1;

fn entity<'a>(r: &'a PollReport, name: &str) -> &'a mlc_engine::poll::EntityPollReport {
    r.entities
        .iter()
        .find(|e| e.entity == name)
        .unwrap_or_else(|| panic!("{name} not polled: {r:?}"))
}

/// Gives every row of `e` a rowversion, from `start` up, in key order.
fn stamp(w: &World, e: Entity, start: u64) {
    let rows: Vec<Record> = w.source.0.lock().unwrap().rows[&e].clone();
    for (n, mut row) in rows.into_iter().enumerate() {
        row.insert("TimeStamp".into(), json!(start + n as u64));
        w.source.upsert(e, Value::Object(row));
    }
}

/// Changes one invoice row (SYSPRO moves its rowversion to `rv`).
fn change(w: &World, invoice: &str, rv: u64, edit: impl FnOnce(&mut Record)) {
    let mut t = w.source.0.lock().unwrap();
    let row = t
        .rows
        .get_mut(&Entity::ArInvoice)
        .unwrap()
        .iter_mut()
        .find(|r| r["Invoice"] == json!(invoice))
        .expect("invoice row");
    edit(row);
    row.insert("TimeStamp".into(), json!(rv));
}

fn invoices(w: &mut World, strategy: ChangeDetection) {
    w.reconfigure(|f| {
        let e = &mut f.entities[INVOICE];
        e.change_detection = strategy;
        if strategy == ChangeDetection::DateWindow {
            e.date_field = Some("InvoiceDate".into());
        }
    });
}

async fn watermark(w: &World, e: Entity) -> mlc_core::Watermark {
    w.store
        .load(&w.flow.id, e)
        .await
        .unwrap()
        .expect("watermark")
}

fn status_of(w: &World, key: &str) -> Option<Value> {
    w.dest
        .0
        .lock()
        .unwrap()
        .records
        .get(key)
        .map(|(r, _)| r["_Status"].clone())
}

fn epoch() -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(0, 0).unwrap()
}

/// Two paid invoices: one dated long before go-live, one recently.
fn paid_history(w: &World) {
    w.seed(2, 6);
    for (inv, date) in [("000100000", "2026-01-15"), ("000100001", "2026-11-01")] {
        change(w, inv, 0, |r| {
            r.insert("InvoiceBal1".into(), json!(0.0));
            r.insert("InvoiceDate".into(), json!(date));
        });
    }
}

#[tokio::test]
async fn a_paid_before_go_live_invoice_arrives_under_all_and_since_and_is_counted_under_open() {
    let old = inv_key(0, 2);
    let recent = inv_key(1, 2);
    for strategy in [ChangeDetection::OpenItems, ChangeDetection::Rowversion] {
        let cases = [
            (InitialScope::All, None, true, true, 0),
            (InitialScope::Open, None, false, false, 2),
            (
                InitialScope::Since,
                NaiveDate::from_ymd_opt(2026, 6, 1),
                false,
                true,
                1,
            ),
        ];
        for (scope, since, old_arrives, recent_arrives, left_out) in cases {
            let mut w = World::new();
            invoices(&mut w, strategy);
            w.reconfigure(|f| {
                f.entities[INVOICE].initial_scope = scope;
                f.entities[INVOICE].since = since;
            });
            paid_history(&w);
            stamp(&w, Entity::ArInvoice, 5000);
            let case = format!("{strategy:?} {scope:?}");
            let r = w.sync("2026-11-24").await;
            assert_eq!(entity(&r, "ArInvoice").out_of_scope, left_out, "{case}");
            // Later polls (the rowversion lag re-reads the first one's range) keep to it.
            w.sync("2026-11-24").await;
            w.sync("2026-11-25").await;
            assert_eq!(
                status_of(&w, &old).is_some(),
                old_arrives,
                "{case}: old paid"
            );
            assert_eq!(
                status_of(&w, &recent).is_some(),
                recent_arrives,
                "{case}: recent paid"
            );
            let open = inv_key(3, 2);
            assert_eq!(status_of(&w, &open), Some(json!("open")), "{case}");
            let notes = watermark(&w, Entity::ArInvoice).await.notes;
            match scope {
                InitialScope::All => assert_eq!(notes.go_live, None, "{case}"),
                _ => assert_eq!(
                    notes.go_live.map(|g| g.out_of_scope),
                    Some(left_out as u64),
                    "{case}"
                ),
            }
        }
    }
}

#[tokio::test]
async fn a_left_out_invoice_changed_after_go_live_comes_in() {
    let mut w = World::new();
    invoices(&mut w, ChangeDetection::Rowversion);
    w.reconfigure(|f| f.entities[INVOICE].initial_scope = InitialScope::Open);
    paid_history(&w);
    stamp(&w, Entity::ArInvoice, 5000);
    w.sync("2026-11-24").await;
    w.sync("2026-11-24").await;
    assert_eq!(status_of(&w, &inv_key(0, 2)), None);
    // A reversal re-opens the old invoice after go-live: SYSPRO moves its rowversion.
    change(&w, "000100000", 9000, |r| {
        r.insert("InvoiceBal1".into(), json!(40.0));
    });
    w.sync("2026-11-24").await;
    assert_eq!(status_of(&w, &inv_key(0, 2)), Some(json!("overdue")));
}

#[tokio::test]
async fn an_invoice_falls_overdue_on_the_right_business_date_under_every_strategy() {
    for strategy in [
        ChangeDetection::Rowversion,
        ChangeDetection::DateWindow,
        ChangeDetection::OpenItems,
        ChangeDetection::FullScan,
    ] {
        let mut w = World::new();
        invoices(&mut w, strategy);
        w.seed(2, 4);
        stamp(&w, Entity::ArInvoice, 5000);
        // Due 2026-12-01 (invoice date 2026-11-01, 30 days).
        for day in ["2026-11-24", "2026-11-24", "2026-11-30", "2026-12-01"] {
            w.sync(day).await;
            for i in 0..4 {
                assert_eq!(
                    status_of(&w, &inv_key(i, 2)),
                    Some(json!("open")),
                    "{strategy:?} on {day}"
                );
            }
        }
        let r = w.sync("2026-12-02").await;
        for i in 0..4 {
            assert_eq!(
                status_of(&w, &inv_key(i, 2)),
                Some(json!("overdue")),
                "{strategy:?} on 2026-12-02"
            );
        }
        if strategy == ChangeDetection::Rowversion {
            let inv = entity(&r, "ArInvoice");
            assert_eq!(inv.calendar, 4, "{r:?}");
            assert_eq!(inv.rows_read, 4, "read by key, only the moved ones: {r:?}");
        }
        let again = w.sync("2026-12-02").await;
        assert_eq!(again.queued(), 0, "{strategy:?}: {again:?}");
    }
}

#[tokio::test]
async fn a_2099_date_neither_hides_later_rows_nor_moves_the_watermark() {
    let mut w = World::new();
    invoices(&mut w, ChangeDetection::DateWindow);
    w.seed(2, 4);
    change(&w, "000100002", 0, |r| {
        r.insert("InvoiceDate".into(), json!("2099-01-01"));
    });
    w.sync("2026-11-24").await;
    let wm = watermark(&w, Entity::ArInvoice).await;
    assert_eq!(
        wm.value,
        WatermarkValue::Date(NaiveDate::from_ymd_opt(2026, 11, 1).unwrap())
    );
    let alert = wm.notes.alert.expect("the future date is reported");
    assert!(alert.contains("2099-01-01"), "{alert}");
    w.source.upsert(
        Entity::ArInvoice,
        json!({"Customer": "0000001 ", "Invoice": "000200000", "DocumentType": "I ",
               "InvoiceDate": "2026-11-23", "TermsCode": "30", "CurrencyValue": 5.0, "InvoiceBal1": 5.0}),
    );
    w.sync("2026-11-24").await;
    assert_eq!(
        status_of(&w, "0000001|000200000|I"),
        Some(json!("open")),
        "a row dated after the mistyped one still arrives"
    );
}

#[tokio::test]
async fn a_restored_database_is_detected_and_rescanned() {
    let mut w = World::new();
    invoices(&mut w, ChangeDetection::Rowversion);
    w.seed(2, 6);
    stamp(&w, Entity::ArInvoice, 5000);
    for _ in 0..3 {
        w.sync("2026-11-24").await;
    }
    // Restored to an earlier point: every rowversion is lower, and a payment made after the
    // restore carries one below the watermark.
    stamp(&w, Entity::ArInvoice, 1000);
    change(&w, "000100002", 1100, |r| {
        r.insert("InvoiceBal1".into(), json!(0.0));
    });
    let same_day = w.sync("2026-11-24").await;
    assert_eq!(
        same_day.queued(),
        0,
        "the daily sweep has run today already"
    );
    w.sync("2026-11-25").await;
    assert_eq!(status_of(&w, &inv_key(2, 2)), Some(json!("paid")));
    let wm = watermark(&w, Entity::ArInvoice).await;
    let alert = wm.notes.alert.expect("restore flagged");
    assert!(alert.contains("restored"), "{alert}");
    assert_eq!(
        wm.value,
        WatermarkValue::RowVersionLagged {
            bound: 1100,
            seen: 1100
        }
    );
    // From there on, changes are read again.
    change(&w, "000100003", 1200, |r| {
        r.insert("InvoiceBal1".into(), json!(0.0));
    });
    w.sync("2026-11-25").await;
    assert_eq!(status_of(&w, &inv_key(3, 2)), Some(json!("paid")));
}

#[tokio::test]
async fn a_deleted_invoice_is_found_by_the_key_sweep_under_rowversion() {
    let mut w = World::new();
    invoices(&mut w, ChangeDetection::Rowversion);
    w.seed(2, 4);
    stamp(&w, Entity::ArInvoice, 5000);
    w.sync("2026-11-24").await;
    w.source
        .0
        .lock()
        .unwrap()
        .rows
        .get_mut(&Entity::ArInvoice)
        .unwrap()
        .retain(|r| r["Invoice"] != json!("000100001"));
    let r = w.sync("2026-11-24").await;
    assert_eq!(entity(&r, "ArInvoice").removed, 0, "swept today already");
    let r = w.sync("2026-11-25").await;
    assert_eq!(entity(&r, "ArInvoice").removed, 1, "{r:?}");
    assert_eq!(status_of(&w, &inv_key(1, 2)), Some(json!("removed")));
    // A sweep at every poll finds the next one the same day.
    w.reconfigure(|f| f.entities[INVOICE].sweep = Sweep::EveryPoll);
    w.source
        .0
        .lock()
        .unwrap()
        .rows
        .get_mut(&Entity::ArInvoice)
        .unwrap()
        .retain(|r| r["Invoice"] != json!("000100002"));
    w.sync("2026-11-25").await;
    assert_eq!(status_of(&w, &inv_key(2, 2)), Some(json!("removed")));
}

#[tokio::test]
async fn a_keyless_row_and_a_bad_date_are_recorded_naming_the_column() {
    let w = World::new();
    w.seed(2, 4);
    w.source.upsert(
        Entity::ArInvoice,
        json!({"Customer": "0000001 ", "Invoice": "         ", "DocumentType": "I ",
               "InvoiceDate": "2026-11-01", "TermsCode": "30", "CurrencyValue": 5.0, "InvoiceBal1": 5.0}),
    );
    change(&w, "000100003", 0, |r| {
        r.insert("InvoiceDate".into(), json!("2026-02-30"));
    });
    let r = w.sync("2026-11-24").await;
    assert_eq!(entity(&r, "ArInvoice").source_errors, 2, "{r:?}");
    for i in 0..3 {
        assert_eq!(
            status_of(&w, &inv_key(i, 2)),
            Some(json!("open")),
            "the rest goes on"
        );
    }
    assert_eq!(
        status_of(&w, &inv_key(3, 2)),
        None,
        "never sent half-understood"
    );
    let errors = w
        .store
        .by_outcome(SyncOutcome::FailedPermanent, epoch(), 10)
        .await
        .unwrap();
    let messages: Vec<String> = errors
        .iter()
        .filter(|e| e.destination == "syspro")
        .map(|e| e.error_chain[0].message.clone())
        .collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(
        messages
            .iter()
            .any(|m| m.contains("ArInvoice 0000001 |?|I ")
                && m.contains("column Invoice value \"         \"")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("000100003")
            && m.contains("column InvoiceDate value \"2026-02-30\": is not a date")),
        "{messages:?}"
    );
    // Fixed in SYSPRO, the row comes in (open-items re-reads it; the error stays in the trail).
    change(&w, "000100003", 0, |r| {
        r.insert("InvoiceDate".into(), json!("2026-11-01"));
    });
    w.sync("2026-11-24").await;
    assert_eq!(status_of(&w, &inv_key(3, 2)), Some(json!("open")));
}

#[tokio::test]
async fn resync_resends_a_key_or_an_entity_and_the_sink_writes_it() {
    let w = World::new();
    w.seed(3, 6);
    w.sync("2026-11-24").await;
    let writes = |w: &World| w.dest.0.lock().unwrap().writes;
    let before = writes(&w);
    let resync = |entity: Option<Entity>, key: Option<&str>| PollOptions {
        resync: Some(Resync {
            entity,
            key: key.map(str::to_string),
        }),
        ..Default::default()
    };
    let run = |opts: PollOptions| {
        let rt = w.runtime("2026-11-24");
        let source = w.source.clone();
        async move { poll_flow_with(&rt, &source, "resync", opts).await.unwrap() }
    };
    let r = run(resync(Some(Entity::ArInvoice), Some(&inv_key(4, 3)))).await;
    assert_eq!(r.queued(), 1, "{r:?}");
    w.sync("2026-11-24").await;
    assert_eq!(writes(&w), before + 1, "written although unchanged");
    let r = run(resync(Some(Entity::ArCustomer), None)).await;
    assert_eq!(r.queued(), 3, "{r:?}");
    assert_eq!(r.entities.len(), 1, "only the entity asked for");
    w.sync("2026-11-24").await;
    assert_eq!(writes(&w), before + 4);
    let after = w.sync("2026-11-24").await;
    assert_eq!(
        after.queued(),
        0,
        "a normal poll sends nothing more: {after:?}"
    );
    assert_eq!(writes(&w), before + 4);
}
