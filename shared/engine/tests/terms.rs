//! Invoice terms read from SYSPRO's `TblArTerms` (issue 19): due dates, status and aging follow
//! a terms change made in SYSPRO, under rowversion, without any invoice row changing.

mod common;

use common::*;

use mlc_core::config::{ChangeDetection, TermsSource};
use mlc_core::Entity;
use serde_json::json;

fn terms(w: &World, code: &str, days: u32) {
    w.source.upsert(
        Entity::TblArTerms,
        json!({"TermsCode": format!("{code:<2}"), "Description": "terms", "DueDays": days}),
    );
}

fn due(w: &World, key: &str) -> serde_json::Value {
    w.dest.0.lock().unwrap().records[key].0["_DueDate"].clone()
}

#[tokio::test]
async fn due_dates_follow_a_terms_change_in_syspro() {
    let mut w = World::new();
    w.reconfigure(|f| {
        f.syspro.terms_source = TermsSource::Syspro;
        // The flows file's map (30 → 30 days) is an override; this test's terms code is "60".
        f.entities[1].change_detection = ChangeDetection::Rowversion;
    });
    w.seed(2, 4);
    let rows: Vec<mlc_core::Record> = w.source.0.lock().unwrap().rows[&Entity::ArInvoice].clone();
    for (n, mut row) in rows.into_iter().enumerate() {
        row.insert("TermsCode".into(), json!("60"));
        row.insert("TimeStamp".into(), json!(100 + n));
        w.source
            .upsert(Entity::ArInvoice, serde_json::Value::Object(row));
    }
    terms(&w, "60", 60);
    w.sync("2026-11-24").await;
    w.sync("2026-11-24").await;
    let key = inv_key(1, 2);
    assert_eq!(due(&w, &key), json!("2026-12-31"), "2026-11-01 + 60 days");
    let idle = w.sync("2026-11-24").await;
    assert_eq!(idle.queued(), 0, "{idle:?}");

    // SYSPRO's terms change: no invoice row moves, yet every due date follows.
    terms(&w, "60", 14);
    let r = w.sync("2026-11-24").await;
    assert_eq!(World::queued(&r, "ArInvoice"), 4, "{r:?}");
    assert_eq!(due(&w, &key), json!("2026-11-15"));
    assert_eq!(
        w.dest.0.lock().unwrap().records[&key].0["_Status"],
        json!("overdue"),
        "past its new due date"
    );
    let again = w.sync("2026-11-24").await;
    assert_eq!(again.queued(), 0, "{again:?}");
}

#[tokio::test]
async fn the_flows_file_overrides_a_syspro_terms_code() {
    let mut w = World::new();
    w.reconfigure(|f| f.syspro.terms_source = TermsSource::Syspro);
    w.seed(2, 2);
    // The invoices use code "30"; SYSPRO says 45 days, the flows file says 30.
    terms(&w, "30", 45);
    w.sync("2026-11-24").await;
    assert_eq!(due(&w, &inv_key(0, 2)), json!("2026-12-01"));
    w.reconfigure(|f| f.syspro.terms_days.clear());
    w.sync("2026-11-24").await;
    assert_eq!(
        due(&w, &inv_key(0, 2)),
        json!("2026-12-16"),
        "SYSPRO's 45 days"
    );
}

#[tokio::test]
async fn status_rules_override_the_due_date_and_credit_notes() {
    let mut w = World::new();
    w.reconfigure(|f| {
        let r = &mut f.entities[1].status_rules;
        r.due_date_from = Some("PodEntryDate".into());
        r.credit_notes_fall_overdue = true;
    });
    w.seed(2, 2);
    w.source.upsert(
        Entity::ArInvoice,
        json!({"Customer": "0000000 ", "Invoice": "000100000", "DocumentType": "I ",
               "InvoiceDate": "2026-11-01", "PodEntryDate": "2026-11-20", "TermsCode": "30",
               "CurrencyValue": 100.0, "InvoiceBal1": 100.0}),
    );
    w.source.upsert(
        Entity::ArInvoice,
        json!({"Customer": "0000001 ", "Invoice": "000100001", "DocumentType": "C ",
               "InvoiceDate": "2026-11-01", "PodEntryDate": "2026-11-10", "TermsCode": "30",
               "CurrencyValue": -40.0, "InvoiceBal1": 40.0}),
    );
    w.sync("2026-11-24").await;
    let d = w.dest.0.lock().unwrap();
    let inv = &d.records[&inv_key(0, 2)].0;
    assert_eq!(
        inv["_DueDate"],
        json!("2026-11-20"),
        "from the column, not terms"
    );
    assert_eq!(inv["_Status"], json!("overdue"));
    let credit = &d.records["0000001|000100001|C"].0;
    assert_eq!(
        credit["_Status"],
        json!("overdue"),
        "the flow says credit notes fall overdue"
    );
}
