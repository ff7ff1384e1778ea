//! Engine behaviour over the real SQLite stores and queue, with an in-memory SYSPRO table and a
//! recording destination (the real clients have their own tests against simulators; here the
//! subject is the engine's ordering, idempotency and failure handling).

mod common;

use common::*;

use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use mlc_core::ports::{AuditLog, Queue};
use mlc_core::{Entity, FixedClock, Record, SyncOutcome};
use mlc_embedded::SqliteStore;
use mlc_engine::local::{drain, DrainOptions};
use mlc_engine::{poll_flow, replay, ReplayFilter};
use serde_json::{json, Value};
#[tokio::test]
async fn sync_creates_each_record_once_and_repoll_writes_nothing() {
    let w = World::new();
    w.seed(5, 30);
    let r = w.sync("2026-11-24").await;
    assert_eq!(r.queued(), 35);
    {
        let d = w.dest.0.lock().unwrap();
        assert_eq!(d.records.len(), 35);
        assert!(d.records.values().all(|(_, creates)| *creates == 1));
        assert!(
            d.records.contains_key("0000003"),
            "identity drops trailing blanks, keeps zeros"
        );
        let inv = &d.records[&inv_key(7, 5)].0;
        assert_eq!(inv["_Status"], json!("open"));
        assert_eq!(inv["_DueDate"], json!("2026-12-01"));
    }
    let writes = w.dest.0.lock().unwrap().writes;
    let r2 = w.sync("2026-11-24").await;
    assert_eq!(r2.queued(), 0, "nothing changed: nothing queued");
    assert_eq!(
        w.dest.0.lock().unwrap().writes,
        writes,
        "no writes on an unchanged re-poll"
    );
}

/// Master lookups of later pages are read while the page before is written: every invoice,
/// whichever page first named its customer, carries that customer's name.
#[tokio::test]
async fn customers_first_named_on_later_pages_are_looked_up() {
    let w = World::new();
    // 12 customers over 24 invoices, 7 rows a page in key order: most customers first appear
    // after page 1.
    w.seed(12, 24);
    w.sync("2026-11-24").await;
    let d = w.dest.0.lock().unwrap();
    for i in 0..24 {
        let inv = &d.records[&inv_key(i, 12)].0;
        assert_eq!(
            inv["Customer.Name"],
            json!(format!("Customer {}", i % 12)),
            "invoice {i}"
        );
    }
}

#[tokio::test]
async fn overdue_and_paid_are_seen_without_a_date_change() {
    let w = World::new();
    w.seed(2, 4);
    w.sync("2026-11-24").await;
    // Calendar moves past the due date: status changes, no SYSPRO change.
    let r = w.sync("2026-12-05").await;
    assert_eq!(r.queued(), 4, "every open invoice turned overdue");
    assert_eq!(
        w.dest.0.lock().unwrap().records[&inv_key(1, 2)].0["_Status"],
        json!("overdue")
    );
    // A payment changes only the balance: the invoice leaves the open set and is fetched by key.
    w.source.upsert(
        Entity::ArInvoice,
        json!({"Customer": "0000001 ", "Invoice": "000100001", "DocumentType": "I ", "InvoiceDate": "2026-11-01",
               "TermsCode": "30", "CurrencyValue": 101.0, "InvoiceBal1": 0.0}),
    );
    w.sync("2026-12-05").await;
    let d = w.dest.0.lock().unwrap();
    assert_eq!(d.records[&inv_key(1, 2)].0["_Status"], json!("paid"));
    assert_eq!(
        d.records[&inv_key(1, 2)].1,
        1,
        "updated, never created twice"
    );
}

#[tokio::test]
async fn crash_after_send_before_watermark_repolls_without_duplicates() {
    let w = World::new();
    w.seed(3, 10);
    let rt = w.runtime("2026-11-24");
    // First poll sends its batches, then "crashes": its state marks are lost (as if the process
    // died between the queue accepting the batches and anything after).
    poll_flow(&rt, &w.source, "a").await.unwrap();
    let fresh = World {
        store: SqliteStore::open(&w._dir.path().join("other.db")).unwrap(),
        ..w
    };
    let w = fresh;
    let mut rt2 = w.runtime("2026-11-24");
    rt2.watermarks = Arc::new(w.store.clone());
    rt2.state = Arc::new(w.store.clone());
    poll_flow(&rt2, &w.source, "b").await.unwrap();
    drain(
        w.queue.as_ref(),
        &w.sinks("2026-11-24"),
        &DrainOptions {
            max_wait: Duration::from_secs(5),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let d = w.dest.0.lock().unwrap();
    assert_eq!(d.records.len(), 13);
    assert!(
        d.records.values().all(|(_, c)| *c == 1),
        "each record created exactly once"
    );
    assert_eq!(
        d.writes, 13,
        "the re-sent copies were recognised as unchanged"
    );
}

#[tokio::test]
async fn older_version_never_overwrites_newer() {
    let w = World::new();
    w.seed(1, 1);
    w.sync("2026-11-24").await;
    // Capture the old version's message by polling a change but not draining yet.
    w.source.upsert(Entity::ArInvoice, json!({"Customer": "0000000 ", "Invoice": "000100000", "DocumentType": "I ",
        "InvoiceDate": "2026-11-01", "TermsCode": "30", "CurrencyValue": 500.0, "InvoiceBal1": 500.0}));
    poll_flow(&w.runtime("2026-11-24"), &w.source, "t")
        .await
        .unwrap();
    let old = w.queue.receive(10, Duration::from_secs(60)).await.unwrap();
    assert_eq!(old.len(), 1);
    let mut old_batch = old[0].batch.clone();
    // A duplicate delivery, not a re-send the dedup window would swallow.
    old_batch.nonce = Some("late-duplicate".into());
    w.queue.ack(&old[0].receipt).await.unwrap();
    w.source.upsert(Entity::ArInvoice, json!({"Customer": "0000000 ", "Invoice": "000100000", "DocumentType": "I ",
        "InvoiceDate": "2026-11-01", "TermsCode": "30", "CurrencyValue": 500.0, "InvoiceBal1": 0.0}));
    w.sync("2026-11-24").await;
    assert_eq!(
        w.dest.0.lock().unwrap().records[&inv_key(0, 1)].0["_Status"],
        json!("paid")
    );
    // The older version arrives late (a duplicate delivery): it must not regress the record.
    w.queue.send(&[old_batch]).await.unwrap();
    drain(
        w.queue.as_ref(),
        &w.sinks("2026-11-24"),
        &DrainOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        w.dest.0.lock().unwrap().records[&inv_key(0, 1)].0["_Status"],
        json!("paid")
    );
    let h = w
        .store
        .history(Some("acme-sf"), &inv_key(0, 1))
        .await
        .unwrap();
    assert_eq!(h.last().unwrap().outcome, SyncOutcome::Unchanged);
}

#[tokio::test]
async fn bad_record_is_dead_lettered_alone_and_replay_brings_it_back() {
    let w = World::new();
    w.seed(2, 6);
    let bad = inv_key(3, 2);
    w.dest.0.lock().unwrap().reject.insert(bad.clone());
    w.sync("2026-11-24").await;
    {
        let d = w.dest.0.lock().unwrap();
        assert_eq!(d.records.len(), 7, "the rest of the batch went on");
        assert!(!d.records.contains_key(&bad));
    }
    assert_eq!(w.queue.depth().await.unwrap().dead, 1);
    let h = w.store.history(None, &bad).await.unwrap();
    let last = h.last().unwrap();
    assert_eq!(last.outcome, SyncOutcome::FailedPermanent);
    assert!(
        last.error_chain[0].message.contains("Name"),
        "{:?}",
        last.error_chain
    );
    // Fix the cause, replay that key only, sync again.
    w.dest.0.lock().unwrap().reject.clear();
    let clock = FixedClock::today(NaiveDate::from_ymd_opt(2026, 11, 24).unwrap());
    let r = replay(
        w.queue.as_ref(),
        &w.store,
        &clock,
        &ReplayFilter {
            keys: vec!["000100003".into()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(r.moved, 1);
    drain(
        w.queue.as_ref(),
        &w.sinks("2026-11-24"),
        &DrainOptions::default(),
    )
    .await
    .unwrap();
    assert!(w.dest.0.lock().unwrap().records.contains_key(&bad));
    let outcomes: Vec<SyncOutcome> = w
        .store
        .history(None, &bad)
        .await
        .unwrap()
        .iter()
        .map(|e| e.outcome)
        .collect();
    assert_eq!(
        outcomes,
        vec![
            SyncOutcome::Queued,
            SyncOutcome::FailedPermanent,
            SyncOutcome::Replayed,
            SyncOutcome::Created
        ]
    );
}

#[tokio::test]
async fn throttled_batch_comes_back_and_lands() {
    let w = World::new();
    w.seed(2, 4);
    w.dest.0.lock().unwrap().throttle_calls = 2;
    w.sync("2026-11-24").await;
    let d = w.dest.0.lock().unwrap();
    assert_eq!(d.records.len(), 6);
    assert!(d.records.values().all(|(_, c)| *c == 1));
}

#[tokio::test]
async fn concurrent_polls_of_one_flow_never_both_run() {
    let w = World::new();
    w.seed(3, 300);
    let rt = w.runtime("2026-11-24");
    let (a, b) = tokio::join!(
        poll_flow(&rt, &w.source, "a"),
        poll_flow(&rt, &w.source, "b")
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(
        a.skipped ^ b.skipped,
        "exactly one ran: {} {}",
        a.skipped,
        b.skipped
    );
    assert_eq!(a.queued() + b.queued(), 303);
}

// ---------------------------------------------------------------- property

mod property {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Step {
        /// Post an invoice for customer c with amount.
        Post(u8, u16),
        /// Pay invoice i (index into posted) fully or partly.
        Pay(u8, bool),
        /// Rename customer c.
        Rename(u8),
        /// Poll (and deliver) now.
        Sync,
        /// Move the calendar forward by days.
        Advance(u8),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            3 => (0u8..4, 1u16..5000).prop_map(|(c, a)| Step::Post(c, a)),
            2 => (any::<u8>(), any::<bool>()).prop_map(|(i, full)| Step::Pay(i, full)),
            1 => (0u8..4).prop_map(Step::Rename),
            2 => Just(Step::Sync),
            1 => (1u8..40).prop_map(Step::Advance),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]
        /// For random sequences of SYSPRO mutations and poll times, what the destination holds at
        /// the end is the final version of every record: the union of polled versions always
        /// includes the last one.
        #[test]
        fn destination_ends_at_the_final_version(steps in proptest::collection::vec(step(), 1..25)) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let w = World::new();
                for c in 0..4 {
                    w.source.upsert(Entity::ArCustomer, json!({"Customer": format!("C{c:03} "), "Name": format!("Customer {c}")}));
                }
                let mut invoices: Vec<(u8, String, f64)> = Vec::new();
                let mut day = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
                for s in steps {
                    match s {
                        Step::Post(c, a) => {
                            let no = format!("{:09}", 100000 + invoices.len());
                            w.source.upsert(Entity::ArInvoice, json!({"Customer": format!("C{c:03} "), "Invoice": no, "DocumentType": "I ",
                                "InvoiceDate": day.to_string(), "TermsCode": "30", "CurrencyValue": a as f64, "InvoiceBal1": a as f64}));
                            invoices.push((c, no, a as f64));
                        }
                        Step::Pay(i, full) if !invoices.is_empty() => {
                            let (c, no, bal) = invoices[i as usize % invoices.len()].clone();
                            let new = if full { 0.0 } else { (bal / 2.0).floor() };
                            w.source.upsert(Entity::ArInvoice, json!({"Customer": format!("C{c:03} "), "Invoice": no.clone(), "DocumentType": "I ",
                                "InvoiceDate": "2026-11-01", "TermsCode": "30", "CurrencyValue": 1.0, "InvoiceBal1": new}));
                            let k = invoices.iter().position(|x| x.1 == no).unwrap();
                            invoices[k].2 = new;
                        }
                        Step::Pay(..) => {}
                        Step::Rename(c) => {
                            w.source.upsert(Entity::ArCustomer, json!({"Customer": format!("C{c:03} "), "Name": format!("Renamed {c} {day}")}));
                        }
                        Step::Sync => {
                            w.sync(&day.to_string()).await;
                        }
                        Step::Advance(d) => {
                            day = day.checked_add_days(chrono::Days::new(u64::from(d))).unwrap();
                        }
                    }
                }
                w.sync(&day.to_string()).await;
                // Expected: every customer, and every invoice that was open at some sync or is
                // now (open-items strategy), at its final derived state.
                let d = w.dest.0.lock().unwrap();
                let tables = w.source.0.lock().unwrap();
                for row in &tables.rows[&Entity::ArCustomer] {
                    let id = row["Customer"].as_str().unwrap().trim_end().to_string();
                    let got = &d.records.get(&id).expect("customer synced").0;
                    prop_assert_eq!(&got["Name"], &row["Name"]);
                }
                for row in tables.rows.get(&Entity::ArInvoice).into_iter().flatten() {
                    let mut r = row.clone();
                    let key = mlc_engine::derive::record_key(Entity::ArInvoice, &r).unwrap();
                    let open = mlc_engine::derive::add_derived(&w.flow, Entity::ArInvoice, &key, &mut r, day);
                    match d.records.get(&key.id()) {
                        Some((got, creates)) => {
                            prop_assert_eq!(*creates, 1);
                            prop_assert_eq!(&got["_Status"], &r["_Status"], "invoice {}", key.id());
                            prop_assert_eq!(&got["InvoiceBal1"], &r["InvoiceBal1"]);
                        }
                        None => prop_assert!(!open, "open invoice {} never reached the destination", key.id()),
                    }
                }
                Ok(())
            })?;
        }
    }
}

// ---------------------------------------------------------------- what the destination sees

#[tokio::test]
async fn a_mapping_change_resends_exactly_the_entity_it_touched() {
    let mut w = World::new();
    w.seed(5, 30);
    w.sync("2026-11-24").await;
    w.reconfigure(|f| {
        f.entities[0].mapping.insert(
            "AccountNumber".into(),
            rule(r#"{ from = "Customer", trim = true }"#),
        );
    });
    let r = w.sync("2026-11-24").await;
    assert_eq!(World::queued(&r, "ArCustomer"), 5, "{r:?}");
    assert_eq!(World::queued(&r, "ArInvoice"), 0, "{r:?}");
    let writes = w.dest.0.lock().unwrap().writes;
    let again = w.sync("2026-11-24").await;
    assert_eq!(again.queued(), 0, "{again:?}");
    assert_eq!(w.dest.0.lock().unwrap().writes, writes);
}

#[tokio::test]
async fn calendar_changes_nobody_maps_write_nothing() {
    // Due 2026-12-01 (30 days terms): overdue 1-30 on 12-05, 31-60 on 01-05, status unchanged.
    let w = World::new();
    w.seed(3, 12);
    w.sync("2026-12-05").await;
    let r = w.sync("2027-01-05").await;
    assert_eq!(r.queued(), 0, "the aging bucket is mapped nowhere: {r:?}");

    let mut w = World::new();
    w.reconfigure(|f| {
        if let mlc_core::config::Destination::Salesforce(sf) = &mut f.destination {
            sf.aging_field = Some("Aging__c".into());
        }
    });
    w.seed(3, 12);
    w.sync("2026-12-05").await;
    let r = w.sync("2027-01-05").await;
    assert_eq!(
        World::queued(&r, "ArInvoice"),
        12,
        "the aging field is mapped: {r:?}"
    );
    let d = w.dest.0.lock().unwrap();
    assert_eq!(d.records[&inv_key(4, 3)].0["_Aging"], json!("31-60"));
}

#[tokio::test]
async fn the_poll_reads_the_columns_the_sink_defaults_use() {
    // No mapping names CurrencyValue: the Salesforce sink fills Amount from it by default.
    let mut w = World::new();
    w.reconfigure(|f| f.entities[1].mapping.clear());
    w.seed(2, 4);
    w.sync("2026-11-24").await;
    let d = w.dest.0.lock().unwrap();
    let inv = &d.records[&inv_key(3, 2)].0;
    assert_eq!(inv["CurrencyValue"], json!(103.0), "{inv:?}");
    assert!(inv.get("TimeStamp").is_none() && inv.get("InvoiceBal1").is_none());
}

#[tokio::test]
async fn a_credit_note_never_falls_overdue() {
    let w = World::new();
    w.seed(1, 0);
    for (no, doc, bal) in [
        ("900001", "C ", -250.0),
        ("900002", "D ", 40.0),
        ("900003", "I", -5.0),
    ] {
        w.source.upsert(
            Entity::ArInvoice,
            json!({"Customer": "0000000 ", "Invoice": no, "DocumentType": doc,
                   "InvoiceDate": "2026-01-10", "TermsCode": "30", "CurrencyValue": bal, "InvoiceBal1": bal}),
        );
    }
    w.sync("2026-11-24").await;
    let d = w.dest.0.lock().unwrap();
    let status = |k: &str| d.records[k].0["_Status"].clone();
    assert_eq!(status("0000000|900001|C"), json!("open"), "credit note");
    assert_eq!(status("0000000|900002|D"), json!("overdue"), "debit note");
    assert_eq!(status("0000000|900003|I"), json!("open"), "credit balance");
}

#[tokio::test]
async fn a_mapping_change_reaches_records_a_rowversion_poll_would_not_read() {
    let mut w = World::new();
    w.reconfigure(|f| {
        f.entities[1].change_detection = mlc_core::config::ChangeDetection::Rowversion;
    });
    w.seed(2, 6);
    let invoices: Vec<Record> = w.source.0.lock().unwrap().rows[&Entity::ArInvoice].clone();
    for (n, mut row) in invoices.into_iter().enumerate() {
        row.insert("TimeStamp".into(), json!(5000 + n));
        w.source.upsert(Entity::ArInvoice, Value::Object(row));
    }
    // The second poll re-reads the first one's rows (the rowversion lag); the third is idle.
    w.sync("2026-11-24").await;
    w.sync("2026-11-24").await;
    let idle = w.sync("2026-11-24").await;
    assert_eq!(World::queued(&idle, "ArInvoice"), 0);
    let read_idle = idle
        .entities
        .iter()
        .find(|e| e.entity == "ArInvoice")
        .map(|e| e.rows_read);
    assert_eq!(read_idle, Some(0), "an idle rowversion poll reads nothing");

    w.reconfigure(|f| {
        f.entities[1].mapping.insert(
            "Description".into(),
            rule(r#"{ template = "PO {CustomerPoNumber}" }"#),
        );
    });
    let r = w.sync("2026-11-24").await;
    assert_eq!(World::queued(&r, "ArInvoice"), 6, "{r:?}");
    assert_eq!(World::queued(&r, "ArCustomer"), 0, "{r:?}");
    let again = w.sync("2026-11-24").await;
    assert_eq!(again.queued(), 0, "{again:?}");
}

#[tokio::test]
async fn purchase_orders_take_value_and_receipt_from_their_lines_and_follow_child_changes() {
    let mut w = World::new();
    w.reconfigure(|f| {
        let po: mlc_core::config::EntityConfig = toml::from_str(
            r#"
entity = "PorMasterHdr"
change_detection = "rowversion"
[mapping]
Value = { from = "_OrderValue", type = "number" }
Receipt = "_GrnStatus"
Lines = "_LineCount"
Received = { from = "_ReceivedValue", type = "number" }
"#,
        )
        .unwrap();
        f.entities.push(po);
    });
    let src = &w.source;
    for (po, rv) in [("000000000150802", 100), ("000000000150803", 101)] {
        src.upsert(
            Entity::PorMasterHdr,
            json!({"PurchaseOrder": po, "Supplier": "S1", "OrderStatus": "1", "TimeStamp": rv}),
        );
    }
    let line = |line: u32, qty: &str, price: &str, got: &str, rv: u64| {
        json!({"PurchaseOrder": "000000000150802", "Line": line, "MOrderQty": qty,
               "MPrice": price, "MReceivedQty": got, "TimeStamp": rv})
    };
    // 2.5 × 1.01 = 2.525 → 2.53 (half-up per line); 0.333333 × 30.00003 = 9.99999… → 10.00.
    src.upsert(Entity::PorMasterDetail, line(1, "2.5", "1.01", "0", 110));
    src.upsert(
        Entity::PorMasterDetail,
        line(2, "0.333333", "30.00003", "0.333333", 111),
    );
    src.upsert(
        Entity::GrnDetails,
        json!({"Grn": "G1", "GrnSource": "P", "Journal": 1, "JournalEntry": 1,
               "PurchaseOrder": "000000000150802", "OrigGrnValue": 10.0, "TimeStamp": 112}),
    );
    w.sync("2026-11-24").await;
    let po = |w: &World, k: &str| w.dest.0.lock().unwrap().records[k].0.clone();
    let p1 = po(&w, "000000000150802");
    assert_eq!(p1["_OrderValue"].to_string(), "12.53", "{p1:?}");
    assert_eq!(p1["_GrnStatus"], json!("partial"));
    assert_eq!(p1["_LineCount"], json!(2));
    assert_eq!(p1["_ReceivedValue"].to_string(), "10");
    let p2 = po(&w, "000000000150803");
    assert_eq!(p2["_LineCount"], json!(0));
    assert_eq!(p2["_GrnStatus"], json!("none"));

    // The rest of line 1 is received: only the line changes, the header keeps its rowversion.
    w.sync("2026-11-24").await;
    src.upsert(Entity::PorMasterDetail, line(1, "2.5", "1.01", "2.5", 120));
    let r = w.sync("2026-11-24").await;
    assert_eq!(World::queued(&r, "PorMasterHdr"), 1, "{r:?}");
    assert_eq!(po(&w, "000000000150802")["_GrnStatus"], json!("received"));
    let idle = w.sync("2026-11-24").await;
    assert_eq!(idle.queued(), 0, "{idle:?}");
}
