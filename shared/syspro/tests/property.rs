//! Property: for random sequences of source mutations interleaved with page reads, keyset
//! paging reads every row that exists for the whole poll (once), and a poll after the
//! mutations sees the final version of every row.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use common::*;
use mlc_core::config::ReadPath;
use mlc_core::ports::Source;
use mlc_core::Entity;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use sim_syspro::{CompanyCounts, SimOptions};

#[derive(Debug, Clone)]
enum Step {
    Read,
    Insert(u8, u16),
    Delete(u16),
    Pay(u16),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => Just(Step::Read),
        1 => (0u8..12, 0u16..999).prop_map(|(c, n)| Step::Insert(c, n)),
        1 => any::<u16>().prop_map(Step::Delete),
        1 => any::<u16>().prop_map(Step::Pay),
    ]
}

#[test]
fn keyset_paging_reads_every_row_present_throughout() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut runner = TestRunner::new(Config {
        cases: 40,
        ..Config::default()
    });
    let strategy = (
        proptest::collection::vec(step(), 0..40),
        1u32..9,
        any::<bool>(),
    );
    runner
        .run(&strategy, |(steps, page, enet)| {
            rt.block_on(run_case(steps, page, enet));
            Ok(())
        })
        .unwrap();
}

async fn run_case(steps: Vec<Step>, page: u32, enet: bool) {
    let sim = sim(SimOptions {
        counts: CompanyCounts {
            customers: 12,
            invoices: 30,
            payments: 5,
            suppliers: 1,
            ap_invoices: 0,
            purchase_orders: 0,
        },
        ..SimOptions::default()
    })
    .await;
    let path = if enet {
        ReadPath::Enet
    } else {
        ReadPath::Odata
    };
    let src = source(&sim, path);
    let q = query(Entity::ArInvoice, &["InvoiceBal1"], None, page);
    let initial = snapshot_keys(&sim, Entity::ArInvoice);
    let mut deleted = BTreeSet::new();
    let mut read: Vec<String> = Vec::new();
    let mut cursor = None;
    let mut done = false;
    let day = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
    let current = |sim: &sim_syspro::SimHandle| -> Vec<Vec<String>> {
        sim.snapshot()["ArInvoice"]
            .iter()
            .map(|r| {
                ["Customer", "Invoice", "DocumentType"]
                    .iter()
                    .map(|k| r[*k].as_str().unwrap().to_string())
                    .collect()
            })
            .collect()
    };
    for s in steps {
        match s {
            Step::Read if !done => {
                let p = src.read_page(&q, cursor.as_ref()).await.unwrap();
                read.extend(keys(Entity::ArInvoice, &p.rows));
                cursor = p.next;
                done = cursor.is_none();
            }
            Step::Read => {}
            Step::Insert(c, n) => {
                let cust = format!("{:07}", 10 + u32::from(c));
                sim.with_company(|co| {
                    co.post_invoice_numbered(
                        &cust,
                        &format!("{:06}", 100_000 + u32::from(n)),
                        day,
                        10.0,
                        "30",
                    )
                });
            }
            Step::Delete(i) => {
                let rows = current(&sim);
                if !rows.is_empty() {
                    let r = &rows[usize::from(i) % rows.len()];
                    sim.delete("ArInvoice", &[&r[0], &r[1], &r[2]]).unwrap();
                    deleted.insert(mlc_core::RecordKey::composite(r).id());
                }
            }
            Step::Pay(i) => {
                let rows = current(&sim);
                if !rows.is_empty() {
                    let r = &rows[usize::from(i) % rows.len()];
                    sim.post_payment(&r[0], &r[1], 1.0).unwrap();
                }
            }
        }
    }
    while !done {
        let p = src.read_page(&q, cursor.as_ref()).await.unwrap();
        read.extend(keys(Entity::ArInvoice, &p.rows));
        cursor = p.next;
        done = cursor.is_none();
    }
    let set: BTreeSet<String> = read.iter().cloned().collect();
    assert_eq!(set.len(), read.len(), "no row read twice");
    for k in initial.difference(&deleted) {
        assert!(
            set.contains(k),
            "{path:?} page {page}: {k} was present throughout but not read"
        );
    }
    // The next poll sees the final version of every row.
    let rows = read_all(&src, &q).await;
    let got: BTreeMap<String, serde_json::Value> = rows
        .iter()
        .map(|r| (key_of(Entity::ArInvoice, r), r["InvoiceBal1"].clone()))
        .collect();
    let want: BTreeMap<String, serde_json::Value> = sim.snapshot()["ArInvoice"]
        .iter()
        .map(|r| (key_of(Entity::ArInvoice, r), r["InvoiceBal1"].clone()))
        .collect();
    assert_eq!(got, want);
}
