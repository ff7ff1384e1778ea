//! The reader against the simulator: paging, filters, normalisation, sessions, faults.

mod common;

use std::collections::BTreeSet;

use chrono::NaiveDate;
use common::*;
use mlc_core::config::ReadPath;
use mlc_core::ports::{Source, SourceError};
use mlc_core::query::{Filter, Literal, Op};
use mlc_core::Entity;
use serde_json::{json, Map};
use sim_syspro::{CompanyCounts, SimOptions};

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

#[tokio::test]
async fn no_record_missed_across_page_boundaries() {
    let sim = sim(SimOptions::default()).await;
    for path in BOTH {
        let src = source(&sim, path);
        for entity in [
            Entity::ArCustomer,
            Entity::ArInvoice,
            Entity::ArInvoicePay,
            Entity::PorMasterHdr,
        ] {
            let rows = read_all(&src, &query(entity, &[], None, 7)).await;
            let got = keys(entity, &rows);
            let set: BTreeSet<String> = got.iter().cloned().collect();
            assert_eq!(set.len(), got.len(), "{path:?} {entity}: duplicates");
            assert_eq!(set, snapshot_keys(&sim, entity), "{path:?} {entity}");
        }
    }
}

#[tokio::test]
async fn rows_are_normalised() {
    let sim = sim(SimOptions::default()).await;
    for path in BOTH {
        let src = source(&sim, path);
        let rows = read_all(
            &src,
            &query(
                Entity::ArInvoice,
                &["InvoiceDate", "PodEntryDate", "InvoiceBal1", "TimeStamp"],
                None,
                50,
            ),
        )
        .await;
        let r = &rows[0];
        assert!(
            r["InvoiceDate"].as_str().unwrap().len() == 10,
            "{path:?}: {r:?}"
        );
        assert!(r["InvoiceBal1"].is_number(), "{path:?}: {r:?}");
        assert!(r["TimeStamp"].is_u64(), "{path:?}: {r:?}");
        assert_eq!(r["DocumentType"], json!("I "), "{path:?}: raw padding kept");
        assert!(
            rows.iter().any(|r| r["PodEntryDate"].is_null()),
            "{path:?}: empty dates are null"
        );
        let customers = read_all(&src, &query(Entity::ArCustomer, &["Name"], None, 100)).await;
        let names: Vec<&str> = customers
            .iter()
            .map(|r| r["Name"].as_str().unwrap())
            .collect();
        for expected in [
            "O'Brien & Sons Ltd",
            "Müller Fahrräder GmbH",
            "\"Quick\" Cycles Inc.",
            "Back\\Slash Trading CC",
            "Peña <Hermanos> S.L.",
        ] {
            assert!(
                names.contains(&expected),
                "{path:?}: {expected} in {names:?}"
            );
        }
        assert!(customers
            .iter()
            .any(|r| r["Customer"].as_str().unwrap().ends_with(' ')));
    }
}

#[tokio::test]
async fn string_filters_are_escaped() {
    let sim = sim(SimOptions::default()).await;
    for path in BOTH {
        let src = source(&sim, path);
        for name in [
            "O'Brien & Sons Ltd",
            "\"Quick\" Cycles Inc.",
            "Back\\Slash Trading CC",
            "Peña <Hermanos> S.L.",
        ] {
            let f = Filter::cmp("Name", Op::Eq, Literal::Str(name.into()));
            let rows = read_all(&src, &query(Entity::ArCustomer, &["Name"], Some(f), 7)).await;
            assert_eq!(rows.len(), 1, "{path:?} {name}");
            assert_eq!(rows[0]["Name"], json!(name));
        }
    }
}

#[tokio::test]
async fn same_day_postings_and_watermark_ties() {
    let sim = sim(SimOptions::default()).await;
    let day = d("2026-11-20");
    let cust = "0000010";
    let mut posted = BTreeSet::new();
    for i in 0..17 {
        let no = sim.post_invoice(cust, day, 100.0 + f64::from(i), "30");
        posted.insert(format!("{cust}|{no}|I"));
    }
    for path in BOTH {
        let src = source(&sim, path);
        let f = Filter::cmp("InvoiceDate", Op::Ge, Literal::Date(day));
        let rows = read_all(
            &src,
            &query(Entity::ArInvoice, &["InvoiceDate"], Some(f), 3),
        )
        .await;
        let got: BTreeSet<String> = keys(Entity::ArInvoice, &rows).into_iter().collect();
        assert!(
            posted.is_subset(&got),
            "{path:?}: every same-day posting read"
        );
        let expected: BTreeSet<String> = sim.snapshot()["ArInvoice"]
            .iter()
            .filter(|r| r["InvoiceDate"].as_str().unwrap() >= "2026-11-20")
            .map(|r| key_of(Entity::ArInvoice, r))
            .collect();
        assert_eq!(got, expected, "{path:?}");
    }
}

#[tokio::test]
async fn rows_inserted_and_deleted_during_a_poll() {
    let sim = sim(SimOptions::default()).await;
    for path in BOTH {
        let src = source(&sim, path);
        let before = snapshot_keys(&sim, Entity::ArInvoice);
        let first: Vec<String> = before.iter().take(3).cloned().collect();
        // After the first page: delete rows already read (a $skip reader would now skip one),
        // and insert rows before and after the current position.
        sim.after_next_page(move |c| {
            for k in &first {
                let parts: Vec<&str> = k.split('|').collect();
                let _ = c.delete("ArInvoice", &[parts[0], parts[1], "I "]);
            }
            c.post_invoice_numbered("0000010", "000001", d("2026-11-01"), 5.0, "30");
            c.post_invoice_numbered("0000099", "999999", d("2026-11-01"), 5.0, "30");
        });
        let rows = read_all(&src, &query(Entity::ArInvoice, &[], None, 7)).await;
        let got: Vec<String> = keys(Entity::ArInvoice, &rows);
        let set: BTreeSet<String> = got.iter().cloned().collect();
        assert_eq!(set.len(), got.len(), "{path:?}: no duplicates");
        let after = snapshot_keys(&sim, Entity::ArInvoice);
        let throughout: BTreeSet<String> = before.intersection(&after).cloned().collect();
        assert!(
            throughout.is_subset(&set),
            "{path:?}: every row present throughout is read"
        );
        sim.clear_faults();
    }
}

#[tokio::test]
async fn payment_that_only_changes_the_balance_is_seen() {
    let sim = sim(SimOptions::default()).await;
    let no = sim.post_invoice("0000011", d("2026-09-01"), 250.0, "30");
    for (i, path) in BOTH.into_iter().enumerate() {
        let src = source(&sim, path);
        assert!(src.has_row_version(Entity::ArInvoice).await.unwrap());
        let all = read_all(
            &src,
            &query(Entity::ArInvoice, &["TimeStamp", "InvoiceBal1"], None, 500),
        )
        .await;
        let high = all
            .iter()
            .map(|r| r["TimeStamp"].as_u64().unwrap())
            .max()
            .unwrap();
        // Open-items scan before the payment sees it open.
        let open = Filter::cmp("InvoiceBal1", Op::Ne, Literal::Num(0.0));
        let rows = read_all(
            &src,
            &query(Entity::ArInvoice, &["InvoiceBal1"], Some(open.clone()), 7),
        )
        .await;
        assert!(rows.iter().any(|r| r["Invoice"] == json!(no)));
        let amount = if i == 0 { 100.0 } else { 150.0 };
        sim.post_payment("0000011", &no, amount).unwrap();
        // rowversion watermark: exactly the changed rows.
        let f = Filter::cmp("TimeStamp", Op::Gt, Literal::RowVersion(high));
        let changed = read_all(
            &src,
            &query(
                Entity::ArInvoice,
                &["InvoiceBal1", "InvoiceDate", "TimeStamp"],
                Some(f),
                7,
            ),
        )
        .await;
        assert_eq!(changed.len(), 1, "{path:?}: {changed:?}");
        assert_eq!(
            changed[0]["InvoiceDate"],
            json!("2026-09-01"),
            "no date changed"
        );
        let bal = changed[0]["InvoiceBal1"].as_f64().unwrap();
        assert_eq!(bal, if i == 0 { 150.0 } else { 0.0 });
        if i == 1 {
            // Paid: gone from the open-items scan, found again by key.
            let rows = read_all(
                &src,
                &query(Entity::ArInvoice, &["InvoiceBal1"], Some(open), 7),
            )
            .await;
            assert!(!rows.iter().any(|r| r["Invoice"] == json!(no)));
            let by_key = Filter::keys(
                Entity::ArInvoice,
                &[vec!["0000011".into(), no.clone(), "I".into()]],
            );
            let rows = read_all(
                &src,
                &query(Entity::ArInvoice, &["InvoiceBal1"], Some(by_key), 7),
            )
            .await;
            assert_eq!(rows.len(), 1);
            assert_eq!(rows[0]["InvoiceBal1"], json!(0));
        }
    }
}

#[tokio::test]
async fn keys_filter_coerces_numeric_key_parts() {
    let sim = sim(SimOptions::default()).await;
    let pays = sim.snapshot()["ArInvoicePay"].clone();
    let p = &pays[0];
    let parts: Vec<String> = ["Customer", "Invoice", "DocumentType", "EntryNumber"]
        .iter()
        .map(|k| match &p[*k] {
            serde_json::Value::String(s) => s.trim_end().to_string(),
            v => v.to_string(),
        })
        .collect();
    for path in BOTH {
        let src = source(&sim, path);
        let f = Filter::keys(Entity::ArInvoicePay, std::slice::from_ref(&parts));
        let rows = read_all(
            &src,
            &query(Entity::ArInvoicePay, &["TrnValue"], Some(f), 7),
        )
        .await;
        assert_eq!(rows.len(), 1, "{path:?}");
        let none = Filter::keys(Entity::ArInvoicePay, &[]);
        let rows = read_all(
            &src,
            &query(Entity::ArInvoicePay, &["TrnValue"], Some(none), 7),
        )
        .await;
        assert!(rows.is_empty());
    }
}

#[tokio::test]
async fn server_driven_paging_reads_every_row_once() {
    let sim = sim(SimOptions {
        server_page: Some(3),
        ..SimOptions::default()
    })
    .await;
    let src = source(&sim, ReadPath::Odata);
    let rows = read_all(&src, &query(Entity::ArInvoice, &[], None, 7)).await;
    let got: BTreeSet<String> = keys(Entity::ArInvoice, &rows).into_iter().collect();
    assert_eq!(got.len(), rows.len());
    assert_eq!(got, snapshot_keys(&sim, Entity::ArInvoice));
    assert_eq!(
        sim.count("odata_skip"),
        0,
        "the $skip nextLink is never followed"
    );
}

/// An `ArCustomer` row with just a key and a name.
fn customer(code: &str) -> Map<String, serde_json::Value> {
    let mut m = Map::new();
    m.insert("Customer".into(), json!(code));
    m.insert("Name".into(), json!(format!("Inserted {code}")));
    m
}

#[tokio::test]
async fn capped_pages_continue_by_keyset_not_by_skip() {
    // Issue 20: the server returns 3 rows where 7 were asked for, with a `$skip` nextLink.
    let sim = sim(SimOptions {
        max_page: 3,
        ..SimOptions::default()
    })
    .await;
    let src = source(&sim, ReadPath::Odata);
    let q = query(Entity::ArCustomer, &["Name"], None, 7);
    let first = src.read_page(&q, None).await.unwrap();
    assert_eq!(first.rows.len(), 3, "the server capped the page");
    let code = |i: usize| {
        first.rows[i]["Customer"]
            .as_str()
            .unwrap()
            .trim_end()
            .to_string()
    };
    // Between two page reads: a row after this page's last key and before every later row,
    // and one before it (an offset-based next page would now read a row twice).
    let after = format!("{}A", code(2));
    let before = format!("{}A", code(0));
    sim.insert("ArCustomer", &customer(&after)).unwrap();
    sim.insert("ArCustomer", &customer(&before)).unwrap();
    let mut rows = first.rows;
    let mut cursor = first.next;
    while let Some(c) = cursor {
        let page = src.read_page(&q, Some(&c)).await.unwrap();
        rows.extend(page.rows);
        cursor = page.next;
    }
    let got = keys(Entity::ArCustomer, &rows);
    let set: BTreeSet<String> = got.iter().cloned().collect();
    assert_eq!(set.len(), got.len(), "no row read twice: {got:?}");
    assert!(
        set.contains(&after),
        "the row inserted ahead is read in this poll"
    );
    let mut expected = snapshot_keys(&sim, Entity::ArCustomer);
    expected.remove(&before);
    let without_before: BTreeSet<String> = set.into_iter().filter(|k| *k != before).collect();
    assert_eq!(
        without_before, expected,
        "every row present throughout is read"
    );
    assert!(
        sim.count("odata") > 2,
        "the read spanned several capped pages"
    );
    assert_eq!(sim.count("odata_skip"), 0, "no request paged with $skip");
}

#[tokio::test]
async fn session_eviction_mid_read_recovers_with_one_relogon() {
    let sim = sim(SimOptions::default()).await;
    let src = source(&sim, ReadPath::Enet);
    let q = query(Entity::ArInvoice, &[], None, 7);
    let first = src.read_page(&q, None).await.unwrap();
    assert_eq!(sim.count("logon"), 1);
    sim.evict_sessions();
    let mut rows = first.rows;
    let mut cursor = first.next;
    while let Some(c) = cursor {
        let p = src.read_page(&q, Some(&c)).await.unwrap();
        rows.extend(p.rows);
        cursor = p.next;
    }
    assert_eq!(sim.count("logon"), 2, "exactly one re-logon");
    assert_eq!(src.logon_count(), 2);
    let got: BTreeSet<String> = keys(Entity::ArInvoice, &rows).into_iter().collect();
    assert_eq!(got, snapshot_keys(&sim, Entity::ArInvoice));
    src.close().await;
    src.close().await;
    assert_eq!(sim.count("logoff"), 1, "close logs off once");
}

#[tokio::test]
async fn wrong_password_fails_fast_without_retries() {
    let sim = sim(SimOptions::default()).await;
    let src = source_with(&sim, ReadPath::Enet, "not-the-password");
    let err = src
        .read_page(&query(Entity::ArCustomer, &[], None, 7), None)
        .await
        .unwrap_err();
    match &err {
        SourceError::Auth(m) => {
            assert!(m.contains("Invalid operator password"), "{m}");
            assert!(!m.contains("not-the-password"));
        }
        other => panic!("expected auth error, got {other:?}"),
    }
    assert_eq!(sim.count("logon"), 1, "one logon attempt, no retry storm");
    assert_eq!(sim.count("query"), 0);

    let src = source_with(&sim, ReadPath::Odata, "not-the-password");
    let err = src
        .read_page(&query(Entity::ArCustomer, &[], None, 7), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, SourceError::Auth(ref m) if m.contains("OData")),
        "{err:?}"
    );
    assert_eq!(sim.count("unauthorized"), 1);
}

#[tokio::test]
async fn password_changed_mid_process_is_an_auth_error_after_one_relogon() {
    let sim = sim(SimOptions::default()).await;
    let src = source(&sim, ReadPath::Enet);
    src.read_page(&query(Entity::ArCustomer, &[], None, 7), None)
        .await
        .unwrap();
    sim.set_password("ADMIN", "rotated");
    sim.evict_sessions();
    let err = src
        .read_page(&query(Entity::ArCustomer, &[], None, 7), None)
        .await
        .unwrap_err();
    assert!(matches!(err, SourceError::Auth(_)), "{err:?}");
    assert_eq!(sim.count("logon"), 2);
}

#[tokio::test]
async fn transient_faults_are_retried() {
    let sim = sim(SimOptions::default()).await;
    for path in BOTH {
        let src = source(&sim, path);
        let q = query(Entity::ArCustomer, &["Name"], None, 7);
        src.read_page(&q, None).await.unwrap(); // metadata / logon out of the way
        sim.fail_next(2);
        assert_eq!(
            src.read_page(&q, None).await.unwrap().rows.len(),
            7,
            "{path:?} 5xx"
        );
        sim.truncate_next(1);
        assert_eq!(
            src.read_page(&q, None).await.unwrap().rows.len(),
            7,
            "{path:?} truncated"
        );
        sim.set_delay(std::time::Duration::from_millis(50));
        assert_eq!(
            src.read_page(&q, None).await.unwrap().rows.len(),
            7,
            "{path:?} slow"
        );
        sim.set_delay(std::time::Duration::ZERO);
        sim.fail_next(10);
        let err = src.read_page(&q, None).await.unwrap_err();
        assert!(matches!(err, SourceError::Transient(_)), "{path:?} {err:?}");
        sim.clear_faults();
    }
    assert!(sim.count("fault_5xx") >= 4);
    assert_eq!(sim.count("fault_truncated"), 2);
}

#[tokio::test]
async fn http_200_error_bodies_are_classified() {
    let sim = sim(SimOptions::default()).await;
    let src = source(&sim, ReadPath::Enet);
    let q = query(Entity::ArCustomer, &["Name"], None, 7);
    src.read_page(&q, None).await.unwrap();
    sim.error_body_next("Business object COMFND is not licensed");
    let err = src.read_page(&q, None).await.unwrap_err();
    assert!(
        matches!(err, SourceError::Rejected(ref m) if m.contains("not licensed")),
        "{err:?}"
    );
    // A session error as an HTTP-200 body: one re-logon, then success.
    sim.error_body_next("The supplied UserID is invalid. Either you were not logged in; or your session has expired.");
    src.read_page(&q, None).await.unwrap();
    assert_eq!(sim.count("logon"), 2);
    // Business error XML: unknown column.
    let bad = query(Entity::ArCustomer, &["NoSuchColumn"], None, 7);
    let err = src.read_page(&bad, None).await.unwrap_err();
    assert!(
        matches!(err, SourceError::Rejected(ref m) if m.contains("NoSuchColumn")),
        "{err:?}"
    );
}

#[tokio::test]
async fn metadata_drives_row_version_and_ping() {
    let sim = sim(SimOptions {
        hide_row_version: vec!["ApSupplier".into()],
        ..SimOptions::default()
    })
    .await;
    let src = source(&sim, ReadPath::Odata);
    assert!(src.has_row_version(Entity::ArInvoice).await.unwrap());
    assert!(!src.has_row_version(Entity::ApSupplier).await.unwrap());
    let info = src
        .ping(&[
            (
                Entity::ArInvoice,
                vec!["InvoiceBal1".into(), "DueDate".into(), "_Status".into()],
            ),
            (Entity::ArCustomer, vec!["Name".into()]),
        ])
        .await
        .unwrap();
    assert_eq!(
        info.mismatches,
        vec!["ArInvoice.DueDate is not in $metadata".to_string()]
    );
    assert_eq!(sim.count("metadata"), 1, "metadata read once per process");

    let src = source(&sim, ReadPath::Enet);
    let info = src
        .ping(&[(
            Entity::ArInvoice,
            vec!["InvoiceBal1".into(), "DueDate".into()],
        )])
        .await
        .unwrap();
    assert_eq!(info.mismatches.len(), 1, "{info:?}");
    assert!(info.summary.contains("8.0"), "{}", info.summary);
}

#[tokio::test]
async fn columns_outside_the_built_in_list_are_read() {
    // Issue 19: `OnHold` is a real ApSupplier column; the server's $metadata says so.
    let sim = sim(SimOptions::default()).await;
    let expected: BTreeSet<(String, String)> = sim.snapshot()["ApSupplier"]
        .iter()
        .map(|r| {
            let on_hold = r["OnHold"].as_str().unwrap().to_string();
            (key_of(Entity::ApSupplier, r), on_hold)
        })
        .collect();
    let values: BTreeSet<&str> = expected.iter().map(|(_, v)| v.as_str()).collect();
    assert_eq!(
        values,
        BTreeSet::from(["", "N", "Y"]),
        "generated Y, N and blank"
    );
    for path in BOTH {
        let src = source(&sim, path);
        let q = query(Entity::ApSupplier, &["SupplierName", "OnHold"], None, 3);
        let rows = read_all(&src, &q).await;
        let got: BTreeSet<(String, String)> = rows
            .iter()
            .map(|r| {
                let on_hold = r["OnHold"].as_str().unwrap_or_default().to_string();
                (key_of(Entity::ApSupplier, r), on_hold)
            })
            .collect();
        assert_eq!(got, expected, "{path:?}");
        let info = src
            .ping(&[(
                Entity::ApSupplier,
                vec!["SupplierName".into(), "OnHold".into()],
            )])
            .await
            .unwrap();
        assert!(info.mismatches.is_empty(), "{path:?}: {info:?}");
    }
}

#[tokio::test]
async fn a_column_missing_from_metadata_fails_the_read_by_name() {
    let sim = sim(SimOptions {
        hide_row_version: vec!["ApSupplier".into()],
        ..SimOptions::default()
    })
    .await;
    let src = source(&sim, ReadPath::Odata);
    // The key the reader adds, and no `TimeStamp` asked for: nothing to refuse.
    let rows = read_all(&src, &query(Entity::ApSupplier, &["OnHold"], None, 50)).await;
    assert_eq!(rows.len(), sim.snapshot()["ApSupplier"].len());
    let requests = sim.count("odata");
    for (fields, missing) in [
        (&["OnHold", "OnHld"][..], "\"OnHld\""),
        (&["OnHold", "TimeStamp"][..], "\"TimeStamp\""),
    ] {
        let err = src
            .read_page(&query(Entity::ApSupplier, fields, None, 50), None)
            .await
            .unwrap_err();
        match &err {
            SourceError::Rejected(m) => {
                assert!(m.contains("ApSupplier"), "{m}");
                assert!(m.contains(missing), "{m}");
                assert!(m.contains("not in the server's $metadata"), "{m}");
                assert!(
                    !m.contains("\"OnHold\""),
                    "only the missing column is named: {m}"
                );
            }
            other => panic!("expected Rejected, got {other:?}"),
        }
    }
    assert_eq!(sim.count("odata"), requests, "refused before any request");
}

#[tokio::test]
async fn bad_filters_are_rejected_not_ignored() {
    let sim = sim(SimOptions::default()).await;
    for path in BOTH {
        let src = source(&sim, path);
        let f = Filter::cmp("NoSuchColumn", Op::Eq, Literal::Str("x".into()));
        let err = src
            .read_page(&query(Entity::ArCustomer, &[], Some(f), 7), None)
            .await
            .unwrap_err();
        assert!(matches!(err, SourceError::Rejected(_)), "{path:?} {err:?}");
    }
}

#[tokio::test]
async fn urls_are_checked_and_errors_redacted() {
    let sim = sim(SimOptions::default()).await;
    let mut c = conn(&sim, ReadPath::Enet);
    c.base_url = "http://erp.example.com:40001".into();
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(2))
        .build()
        .unwrap();
    let secrets = std::sync::Arc::new(FixedSecrets("pw".into()));
    assert!(mlc_syspro::SysproSource::new(&c, secrets.clone(), http.clone()).is_err());
    c.base_url = "https://erp.example.com:40001/".into();
    assert!(mlc_syspro::SysproSource::new(&c, secrets.clone(), http.clone()).is_ok());
    // Nothing listens there: transport errors, retried, and no password in the message.
    c.base_url = "http://127.0.0.1:9".into();
    let src = mlc_syspro::SysproSource::new(
        &c,
        std::sync::Arc::new(FixedSecrets("hunter2-secret".into())),
        http,
    )
    .unwrap()
    .with_retry_policy(mlc_syspro::RetryPolicy {
        attempts: 2,
        base: std::time::Duration::from_millis(1),
        cap: std::time::Duration::from_millis(2),
    });
    let err = src
        .read_page(&query(Entity::ArCustomer, &[], None, 7), None)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, SourceError::Transient(_)), "{text}");
    assert!(!text.contains("hunter2-secret"), "{text}");
}

#[tokio::test]
async fn generator_is_realistic() {
    let today = d("2026-11-24");
    let c = sim_syspro::Company::generate(3, CompanyCounts::default(), today);
    let snap = c.snapshot();
    let inv = &snap["ArInvoice"];
    assert!(
        inv.iter().any(|r| r["InvoiceBal1"] == json!(0)),
        "some paid"
    );
    assert!(
        inv.iter().any(|r| {
            let bal = r["InvoiceBal1"].as_f64().unwrap();
            let date = d(r["InvoiceDate"].as_str().unwrap());
            bal > 0.0 && date + chrono::Days::new(60) < today
        }),
        "some overdue"
    );
    assert!(!snap["PorMasterDetail"].is_empty());
    assert!(c.terms_days().contains_key("30"));
    let mut m = Map::new();
    m.insert("Name".into(), json!("Renamed 'Ltd'"));
    let sim = sim(SimOptions::default()).await;
    sim.edit_customer("0000010", &m).unwrap();
    assert_eq!(
        sim.snapshot()["ArCustomer"][0]["Name"],
        json!("Renamed 'Ltd'")
    );
}
