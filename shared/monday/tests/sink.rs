//! The Monday.com sink against the simulator: packing at the per-board cap, faults, config
//! errors, payments and dedupe.

mod common;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use common::*;
use mlc_core::ports::{PendingWrite, Sink, SinkError};
use mlc_core::preview::{FieldPreview, Preview, PreviewAction};
use mlc_core::state::StateKey;
use mlc_core::{Entity, RecordOutcome};
use sim_monday::{Fault, MondayOptions, MondaySim};

fn sim_opts(cap: u32) -> MondayOptions {
    MondayOptions {
        window: Duration::from_secs(1),
        mutations_per_board: Some(cap),
        ..MondayOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_boards_of_500_new_items_at_the_cap_without_throttles() {
    let cap = 40;
    let sim = MondaySim::start(sim_opts(cap)).await;
    create_boards(&sim);
    let flow = flow(&sim.url(), cap);
    let state = Arc::new(MemState::default());
    let sink = sink(
        &sim,
        &flow,
        "sim-token",
        state.clone(),
        Arc::new(MemBudget::default()),
        fast_opts(),
    );
    let mut events = Vec::new();
    for n in 0..500 {
        events.push(ap_invoice(n, 1, 100.0 + n as f64, "open"));
        events.push(po(n, 1));
        events.push(ar_invoice(n, 1));
    }
    let rep = drive(&sink, &state, events, 200).await;
    let st = sim.stats();
    let records = 1500.0;
    let mut utils = Vec::new();
    for board in [AP_BOARD, PO_BOARD, AR_BOARD] {
        let windows = &st.board_windows[board];
        let first = *windows.keys().next().unwrap();
        let last = *windows.keys().last().unwrap();
        let spanned = (last - first + 1) as f64;
        let used: u32 = windows.values().sum();
        let util = f64::from(used) / (spanned * f64::from(cap));
        println!("board {board}: {used} mutations over {spanned} windows of 1 s, cap {cap}: utilisation {util:.3} {:?}", windows.values().collect::<Vec<_>>());
        assert_eq!(sim.items(board).len(), 500);
        assert!(
            by_syspro_id(&sim, board).values().all(|v| v.len() == 1),
            "duplicates on {board}"
        );
        assert!(st.max_board_window[board] <= cap);
        utils.push(util);
    }
    let util = utils.iter().cloned().fold(f64::MAX, f64::min);
    let mutations_per_record = st.mutations as f64 / records;
    let requests_per_item = st.requests as f64 / records;
    println!(
        "monday: utilisation(min) {util:.3}, mutations/record {mutations_per_record:.3}, requests/item {requests_per_item:.4} ({} requests: {} mutation, {} query), throttles {}, elapsed {:?}, sink calls {}",
        st.requests, st.mutation_requests, st.query_requests, st.throttles, rep.elapsed, rep.calls
    );
    assert_eq!(st.throttles, 0, "{:?}", st.errors_by_code);
    assert!(util >= 0.95, "utilisation {util}");
    assert_eq!(mutations_per_record, 1.0);
    assert!(requests_per_item <= 0.1, "{requests_per_item}");
    assert_eq!(rep.created, 1500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttles_locks_5xx_and_lost_responses_never_duplicate_or_lose() {
    let sim = MondaySim::start(sim_opts(40)).await;
    create_boards(&sim);
    let flow = flow(&sim.url(), 40);
    let state = Arc::new(MemState::default());
    let sink = sink(
        &sim,
        &flow,
        "sim-token",
        state.clone(),
        Arc::new(MemBudget::default()),
        fast_opts(),
    );
    sim.inject(Fault::LostResponse, 2);
    sim.inject(Fault::ServerError, 1);
    sim.inject(Fault::Locked, 1);
    sim.inject(Fault::PartialThrottle, 1);
    sim.inject(Fault::Unavailable, 1);
    sim.inject(Fault::Throttle, 1);
    sim.inject(Fault::LegacyComplexity, 1);
    sim.inject(Fault::Slow(Duration::from_millis(50)), 1);
    let first: Vec<_> = (0..120).map(|n| ap_invoice(n, 1, 500.0, "open")).collect();
    let rep1 = drive(&sink, &state, first, 100).await;
    // Second poll: a third of them changed (partly paid), under seeded chaos.
    sim.set_chaos(0.3, 7);
    let second: Vec<_> = (0..120)
        .filter(|n| n % 3 == 0)
        .map(|n| ap_invoice(n, 2, 125.0, "overdue"))
        .collect();
    let rep2 = drive(&sink, &state, second, 100).await;
    sim.clear_faults();
    let st = sim.stats();
    println!(
        "faults: {} injected, {} replays, {} throttles, codes {:?}; calls {} + {}",
        st.faults, st.replays, st.throttles, st.errors_by_code, rep1.calls, rep2.calls
    );
    assert!(
        rep1.permanent.is_empty() && rep2.permanent.is_empty(),
        "{:?} {:?}",
        rep1.permanent,
        rep2.permanent
    );
    let items = by_syspro_id(&sim, AP_BOARD);
    assert_eq!(items.len(), 120, "every record landed");
    for (id, v) in &items {
        assert_eq!(v.len(), 1, "duplicate items for {id}");
        let n: usize = id.trim_start_matches("S001|AP").parse().unwrap();
        let it = &v[0];
        let (amount, status) = if n % 3 == 0 {
            // Decimal text, trailing zeros dropped (never binary-float text).
            ("125", "overdue")
        } else {
            ("500", "open")
        };
        assert_eq!(it.values["amount"], json!(amount), "{id}");
        assert_eq!(it.values["status"], json!({"label": status}), "{id}");
        assert_eq!(it.group_id, "new_invoices");
        assert_eq!(it.name, format!("AP{n:06} · Acme Steel"));
    }
    assert!(
        st.replays >= 1,
        "a lost response was replayed from the idempotency cache"
    );
}

#[tokio::test]
async fn wrong_column_type_and_missing_board_fail_only_their_records() {
    let sim = MondaySim::start(sim_opts(40)).await;
    create_boards(&sim);
    // AP maps a date into the numbers column; the PO board does not exist.
    let mut flow = flow_with(
        &sim.url(),
        40,
        json!({"amount": {"from": "_DueDate", "type": "date", "column_type": "date"}}),
    );
    flow.entities[1].monday.as_mut().unwrap().board_id = "999".into();
    let state = Arc::new(MemState::default());
    let sink = sink(
        &sim,
        &flow,
        "sim-token",
        state.clone(),
        Arc::new(MemBudget::default()),
        fast_opts(),
    );

    let err = sink.ping().await.unwrap_err();
    let msg = err.to_string();
    println!("ping: {msg}");
    assert!(matches!(err, SinkError::Config(_)));
    assert!(
        msg.contains("flow acme-monday, board 101, column amount") && msg.contains("numbers"),
        "{msg}"
    );
    assert!(
        msg.contains("flow acme-monday, board 999") && msg.contains("syspro_id"),
        "{msg}"
    );

    let batch: Vec<PendingWrite> = [
        ap_invoice(1, 1, 10.0, "open"),
        po(1, 1),
        ar_invoice(1, 1),
        ap_invoice(2, 1, 10.0, "open"),
    ]
    .into_iter()
    .map(|event| PendingWrite { event, prior: None })
    .collect();
    let out = write_settled(&sink, &batch).await.unwrap();
    let perm = |o: &RecordOutcome| match o {
        RecordOutcome::Permanent(f) => f.message.clone(),
        other => panic!("expected permanent, got {other:?}"),
    };
    assert!(
        perm(&out[0]).contains("board 101, column amount"),
        "{}",
        perm(&out[0])
    );
    assert_eq!(
        perm(&out[0]),
        perm(&out[3]),
        "one clear error for the board"
    );
    assert!(perm(&out[1]).contains("board 999"));
    assert!(
        matches!(&out[2], RecordOutcome::Applied { created: true, .. }),
        "{:?}",
        out[2]
    );
    assert_eq!(sim.items(AR_BOARD).len(), 1);
    assert!(sim.items(AP_BOARD).is_empty());
}

#[tokio::test]
async fn revoked_token_is_an_auth_error_and_other_flows_go_on() {
    let sim = MondaySim::start(sim_opts(40)).await;
    create_boards(&sim);
    let flow = flow(&sim.url(), 40);
    let sink_a = sink(
        &sim,
        &flow,
        "sim-token",
        Arc::new(MemState::default()),
        Arc::new(MemBudget::default()),
        fast_opts(),
    );
    let ok = write_settled(
        &sink_a,
        &[PendingWrite {
            event: ar_invoice(1, 1),
            prior: None,
        }],
    )
    .await
    .unwrap();
    assert!(
        matches!(ok[0], RecordOutcome::Applied { .. }),
        "{:?}",
        ok[0]
    );
    sim.revoke_token();
    sim.add_token("other-customer-token");
    let err = write_settled(
        &sink_a,
        &[PendingWrite {
            event: ar_invoice(2, 1),
            prior: None,
        }],
    )
    .await
    .unwrap_err();
    println!("revoked: {err}");
    assert!(matches!(err, SinkError::Auth(_)));
    assert!(
        err.to_string().contains("flow acme-monday, board 103"),
        "{err}"
    );
    let sink_b = sink(
        &sim,
        &flow,
        "other-customer-token",
        Arc::new(MemState::default()),
        Arc::new(MemBudget::default()),
        fast_opts(),
    );
    let ok = write_settled(
        &sink_b,
        &[PendingWrite {
            event: ar_invoice(3, 1),
            prior: None,
        }],
    )
    .await
    .unwrap();
    assert!(matches!(ok[0], RecordOutcome::Applied { .. }));
}

#[tokio::test]
async fn a_bad_record_in_a_packed_request_dead_letters_only_itself() {
    let sim = MondaySim::start(sim_opts(40)).await;
    create_boards(&sim);
    let flow = flow(&sim.url(), 40);
    let sink = sink(
        &sim,
        &flow,
        "sim-token",
        Arc::new(MemState::default()),
        Arc::new(MemBudget::default()),
        fast_opts(),
    );
    // "disputed" is no label of the status column: the server rejects that alias only.
    let batch: Vec<PendingWrite> = (0..5)
        .map(|n| ap_invoice(n, 1, 1.0, if n == 2 { "disputed" } else { "open" }))
        .map(|event| PendingWrite { event, prior: None })
        .collect();
    let out = write_settled(&sink, &batch).await.unwrap();
    for (i, o) in out.iter().enumerate() {
        if i == 2 {
            let RecordOutcome::Permanent(f) = o else {
                panic!("{o:?}")
            };
            println!("bad record: {}", f.message);
            assert!(
                f.message
                    .contains("flow acme-monday, board 101, column status")
                    && f.message.contains("disputed"),
                "{}",
                f.message
            );
            assert_eq!(f.chain[0].code.as_deref(), Some("ColumnValueException"));
            assert!(f.chain[0].request_id.is_some());
        } else {
            assert!(
                matches!(o, RecordOutcome::Applied { created: true, .. }),
                "{o:?}"
            );
        }
    }
    assert_eq!(sim.items(AP_BOARD).len(), 4);
    assert_eq!(sim.stats().mutation_requests, 1, "one packed request");
}

#[tokio::test]
async fn a_payment_updates_its_invoice_and_never_creates() {
    let sim = MondaySim::start(sim_opts(40)).await;
    create_boards(&sim);
    let flow = flow(&sim.url(), 40);
    let state = Arc::new(MemState::default());
    let sink = sink(
        &sim,
        &flow,
        "sim-token",
        state.clone(),
        Arc::new(MemBudget::default()),
        fast_opts(),
    );
    drive(&sink, &state, vec![ar_invoice(7, 1)], 5).await;
    let pay = |inv: usize| {
        event(
            Entity::ArInvoicePay,
            &["C01", &format!("{inv:09}"), "I", "1"],
            2,
            json!({"Customer": "C01", "Invoice": format!("{inv:09}"), "JournalDate": "2026-11-20", "TrnValue": "250.00"}),
        )
    };
    let out = write_settled(
        &sink,
        &[
            PendingWrite {
                event: pay(7),
                prior: None,
            },
            PendingWrite {
                event: pay(8),
                prior: None,
            },
        ],
    )
    .await
    .unwrap();
    assert!(
        matches!(&out[0], RecordOutcome::Applied { created: false, .. }),
        "{:?}",
        out[0]
    );
    assert!(
        matches!(&out[1], RecordOutcome::Retry { .. }),
        "{:?}",
        out[1]
    );
    let items = sim.items(AR_BOARD);
    assert_eq!(items.len(), 1, "a payment never creates an item");
    assert_eq!(items[0].values["status"], json!({"label": "paid"}));
    assert_eq!(items[0].values["paid_on"], json!({"date": "2026-11-20"}));
}

#[tokio::test]
async fn without_state_the_item_is_found_by_exact_syspro_id() {
    let sim = MondaySim::start(sim_opts(40)).await;
    create_boards(&sim);
    let flow = flow(&sim.url(), 40);
    let id_of = |k: &str| {
        [("syspro_id".to_string(), Value::String(k.into()))]
            .into_iter()
            .collect()
    };
    // A case variant first (the server matches case-insensitively), then the real one.
    sim.insert_item(AP_BOARD, "variant", id_of("s001|ap000001"));
    let real = sim.insert_item(AP_BOARD, "real", id_of("S001|AP000001"));
    let sink = sink(
        &sim,
        &flow,
        "sim-token",
        Arc::new(MemState::default()),
        Arc::new(MemBudget::default()),
        fast_opts(),
    );
    let out = write_settled(
        &sink,
        &[PendingWrite {
            event: ap_invoice(1, 3, 9.0, "open"),
            prior: None,
        }],
    )
    .await
    .unwrap();
    let RecordOutcome::Applied {
        created,
        destination_ids,
    } = &out[0]
    else {
        panic!("{:?}", out[0])
    };
    assert!(!created);
    assert_eq!(destination_ids["item_id"], real);
    assert_eq!(destination_ids["board_id"], AP_BOARD);
    assert_eq!(sim.items(AP_BOARD).len(), 2);
    let lines = sink.ping().await.unwrap();
    assert_eq!(lines.len(), 4, "{lines:?}");
}

#[tokio::test]
async fn daily_limit_pauses_until_midnight_utc() {
    let sim = MondaySim::start(sim_opts(40)).await;
    create_boards(&sim);
    let flow = flow(&sim.url(), 40);
    let sink = sink(
        &sim,
        &flow,
        "sim-token",
        Arc::new(MemState::default()),
        Arc::new(MemBudget::default()),
        fast_opts(),
    );
    sink.ping().await.unwrap();
    sim.inject(Fault::DailyLimit, 1);
    let mut ev = ar_invoice(1, 1);
    ev.record.remove("_Key");
    let existing = sim.insert_item(
        AR_BOARD,
        "x",
        [("syspro_id".to_string(), json!("C01|000000001|I"))]
            .into_iter()
            .collect(),
    );
    let _ = existing;
    let err = write_settled(
        &sink,
        &[PendingWrite {
            event: ev,
            prior: None,
        }],
    )
    .await
    .unwrap_err();
    match err {
        SinkError::DailyLimit { until, .. } => assert_eq!(until.time(), chrono::NaiveTime::MIN),
        other => panic!("{other:?}"),
    }
}

fn field<'a>(p: &'a Preview, name: &str) -> &'a FieldPreview {
    p.fields
        .iter()
        .find(|f| f.field == name)
        .unwrap_or_else(|| panic!("no field {name} in {p:?}"))
}

#[tokio::test]
async fn preview_shows_create_then_nothing_after_write_then_the_drifted_amount() {
    let sim = MondaySim::start(sim_opts(40)).await;
    create_boards(&sim);
    let flow = flow(&sim.url(), 40);
    let state = Arc::new(MemState::default());
    let sink = sink(
        &sim,
        &flow,
        "sim-token",
        state.clone(),
        Arc::new(MemBudget::default()),
        fast_opts(),
    );
    let ev = ap_invoice(1, 1, 1234.5, "open");
    let key = StateKey::new("acme-monday", Entity::ApInvoice, ev.key.id());
    let with_state = |ev: &mlc_core::ChangeEvent| {
        let prior = state.0.lock().unwrap().get(&key).cloned();
        PendingWrite {
            event: ev.clone(),
            prior,
        }
    };

    // Not on the board yet: it would be created, with the values the mapping makes.
    let before = sink.preview(&[with_state(&ev)]).await.unwrap();
    assert_eq!(before[0].action, PreviewAction::Create, "{:?}", before[0]);
    assert_eq!(before[0].destination, format!("board {AP_BOARD}"));
    assert_eq!(field(&before[0], "amount").new, json!("1234.5"));
    assert_eq!(field(&before[0], "status").new, json!({"label": "open"}));
    assert_eq!(
        field(&before[0], "name").new,
        json!("AP000001 · Acme Steel")
    );
    assert!(sim.items(AP_BOARD).is_empty(), "preview writes nothing");

    // Written by `write`: the board holds exactly the previewed values, and the preview now
    // says there is nothing to write (by the item id in state, and by the SYSPRO id without).
    drive(&sink, &state, vec![ev.clone()], 5).await;
    let items = sim.items(AP_BOARD);
    assert_eq!(items.len(), 1);
    for f in &before[0].fields {
        if f.field == "name" {
            assert_eq!(json!(items[0].name), f.new);
        } else {
            assert_eq!(items[0].values.get(&f.field), Some(&f.new), "{}", f.field);
        }
    }
    for pw in [
        with_state(&ev),
        PendingWrite {
            event: ev.clone(),
            prior: None,
        },
    ] {
        let after = sink.preview(&[pw]).await.unwrap();
        assert_eq!(after[0].action, PreviewAction::Nothing, "{:?}", after[0]);
        assert_eq!(
            after[0].destination_id.as_deref(),
            Some(items[0].id.as_str())
        );
        assert_eq!(field(&after[0], "amount").current, Some(json!("1234.5")));
    }

    // The same amount written another way is no change; another amount is.
    assert!(sim.set_value(AP_BOARD, &items[0].id, "amount", json!("1234.50")));
    let same = sink.preview(&[with_state(&ev)]).await.unwrap();
    assert_eq!(same[0].action, PreviewAction::Nothing, "{:?}", same[0]);
    assert!(sim.set_value(AP_BOARD, &items[0].id, "amount", json!("99")));
    let drift = sink.preview(&[with_state(&ev)]).await.unwrap();
    assert_eq!(
        drift[0].action,
        PreviewAction::Update {
            fields: vec!["amount".into()]
        },
        "{:?}",
        drift[0]
    );
    assert_eq!(field(&drift[0], "amount").current, Some(json!("99")));
    assert_eq!(sim.items(AP_BOARD)[0].values["amount"], json!("99"));
}

#[tokio::test]
async fn preview_of_a_payment_without_its_invoice_item_says_it_waits() {
    let sim = MondaySim::start(sim_opts(40)).await;
    create_boards(&sim);
    let flow = flow(&sim.url(), 40);
    let sink = sink(
        &sim,
        &flow,
        "sim-token",
        Arc::new(MemState::default()),
        Arc::new(MemBudget::default()),
        fast_opts(),
    );
    let pay = event(
        Entity::ArInvoicePay,
        &["C01", "000000009", "I", "1"],
        2,
        json!({"Customer": "C01", "Invoice": "000000009", "JournalDate": "2026-11-20"}),
    );
    let p = sink
        .preview(&[PendingWrite {
            event: pay,
            prior: None,
        }])
        .await
        .unwrap();
    assert_eq!(p[0].action, PreviewAction::Nothing, "{:?}", p[0]);
    assert!(
        p[0].note.as_deref().unwrap_or("").contains("waits"),
        "{:?}",
        p[0]
    );
}
