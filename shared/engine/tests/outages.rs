//! Outages without losses (issue 21): transient failures are retried for the retry horizon,
//! not a number of attempts; credentials refused pause the flow without counting attempts and
//! resume by themselves.

mod common;

use common::*;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use mlc_core::ports::{AuditLog, Queue, WatermarkStore};
use mlc_core::{FixedClock, SyncOutcome};
use mlc_engine::local::{drain, DrainOptions};
use mlc_engine::{poll_flow, SinkSet};

const DAY: &str = "2026-11-24";

/// The sinks with their clock `hours` after now (the poll ran now).
fn sinks_at(w: &World, hours: i64) -> SinkSet {
    let mut set = w.sinks(DAY);
    for (rt, _) in set.values_mut() {
        rt.clock = Arc::new(FixedClock::at(Utc::now() + chrono::Duration::hours(hours)));
    }
    set
}

fn quick_drain() -> DrainOptions {
    DrainOptions {
        max_wait: Duration::from_secs(20),
        max_delay: Some(Duration::from_millis(50)),
        ..Default::default()
    }
}

async fn dead_letters(w: &World) -> Vec<String> {
    w.store
        .by_outcome(
            SyncOutcome::FailedPermanent,
            Utc::now() - chrono::Duration::days(1),
            100,
        )
        .await
        .unwrap()
        .into_iter()
        .map(|e| {
            e.error_chain
                .first()
                .map(|l| l.message.clone())
                .unwrap_or_default()
        })
        .collect()
}

#[tokio::test]
async fn an_outage_longer_than_the_attempt_budget_loses_nothing() {
    let w = World::new();
    w.seed(2, 6);
    poll_flow(&w.runtime(DAY), &w.source, "p").await.unwrap();
    // Far more failed calls than `max_attempts` (5), all within the retry horizon.
    w.dest.0.lock().unwrap().throttle_calls = 25;
    let r = drain(w.queue.as_ref(), &sinks_at(&w, 0), &quick_drain())
        .await
        .unwrap();
    assert_eq!(r.dead_lettered, 0, "{r:?}");
    assert_eq!(w.dest.0.lock().unwrap().records.len(), 8, "{r:?}");
    assert!(dead_letters(&w).await.is_empty());
}

#[tokio::test]
async fn past_the_retry_horizon_a_transient_failure_is_dead_lettered_with_its_reason() {
    let w = World::new();
    w.seed(1, 2);
    poll_flow(&w.runtime(DAY), &w.source, "p").await.unwrap();
    w.dest.0.lock().unwrap().throttle_calls = 1_000;
    // 25 hours later (a 24 h horizon) the destination still fails.
    let r = drain(w.queue.as_ref(), &sinks_at(&w, 25), &quick_drain())
        .await
        .unwrap();
    assert_eq!(r.dead_lettered, 3, "{r:?}");
    let reasons = dead_letters(&w).await;
    assert!(
        reasons
            .iter()
            .all(|m| m.contains("retries exhausted: failing since") && m.contains("throttled")),
        "{reasons:?}"
    );
    assert_eq!(
        w.queue.depth().await.unwrap().dead,
        2,
        "the customer and the invoice messages, their records with reasons"
    );
}

#[tokio::test]
async fn refused_credentials_pause_the_flow_count_no_attempt_and_resume_by_themselves() {
    let w = World::new();
    w.seed(2, 4);
    poll_flow(&w.runtime(DAY), &w.source, "p").await.unwrap();
    w.dest.0.lock().unwrap().auth_fail_calls = 1;
    let opts = DrainOptions {
        max_wait: Duration::from_millis(500),
        ..quick_drain()
    };
    let r = drain(w.queue.as_ref(), &sinks_at(&w, 0), &opts)
        .await
        .unwrap();
    assert_eq!(r.dead_lettered, 0, "{r:?}");
    let info = w.store.run_info(&w.flow.id).await.unwrap();
    assert!(
        info.paused_until.is_some_and(|u| u > Utc::now()),
        "{info:?}"
    );
    assert!(
        info.pause_reason
            .as_deref()
            .is_some_and(|m| m.contains("INVALID_SESSION_ID")),
        "{info:?}"
    );
    // Hours of hand-backs while paused never dead-letter; once the pause is over, the first
    // call succeeds and everything lands.
    for hours in [1, 2, 30] {
        drain(w.queue.as_ref(), &sinks_at(&w, hours), &opts)
            .await
            .unwrap();
    }
    assert_eq!(w.dest.0.lock().unwrap().records.len(), 6);
    assert!(dead_letters(&w).await.is_empty());
}

/// The poll at `hours` after now (a later business date).
async fn poll_at(w: &World, hours: i64) -> mlc_engine::PollReport {
    let mut rt = w.runtime(DAY);
    rt.clock = Arc::new(FixedClock::at(Utc::now() + chrono::Duration::hours(hours)));
    poll_flow(&rt, &w.source, "p").await.unwrap()
}

#[tokio::test]
async fn records_sent_and_never_applied_are_re_sent_from_state_but_data_errors_stay() {
    let w = World::new();
    w.seed(2, 4);
    // Due long after the days this test runs on: no status moves with the calendar.
    let rows: Vec<mlc_core::Record> =
        w.source.0.lock().unwrap().rows[&mlc_core::Entity::ArInvoice].clone();
    for mut row in rows {
        row.insert("InvoiceDate".into(), serde_json::json!("2027-03-01"));
        w.source
            .upsert(mlc_core::Entity::ArInvoice, serde_json::Value::Object(row));
    }
    w.dest
        .0
        .lock()
        .unwrap()
        .reject
        .insert("0000001".to_string());
    poll_flow(&w.runtime(DAY), &w.source, "p").await.unwrap();
    // The invoices' message is lost in flight (acked, never written); the customers' message
    // is written, one customer refused for its data.
    let got = w.queue.receive(10, Duration::from_secs(30)).await.unwrap();
    for d in &got {
        if d.batch
            .events
            .iter()
            .any(|e| e.entity == mlc_core::Entity::ArInvoice)
        {
            w.queue.ack(&d.receipt).await.unwrap();
        } else {
            w.queue.nack(&d.receipt, Duration::ZERO).await.unwrap();
        }
    }
    drain(w.queue.as_ref(), &sinks_at(&w, 0), &quick_drain())
        .await
        .unwrap();
    assert_eq!(
        w.dest.0.lock().unwrap().records.len(),
        1,
        "one customer written"
    );
    let same_day = poll_flow(&w.runtime(DAY), &w.source, "p").await.unwrap();
    assert_eq!(same_day.queued(), 0, "unchanged in SYSPRO: nothing to send");

    // Two days later the poll finds the four invoices sent and never applied.
    let r = poll_at(&w, 49).await;
    let inv = r.entities.iter().find(|e| e.entity == "ArInvoice").unwrap();
    assert_eq!(inv.resent_unapplied, 4, "{r:?}");
    let cust = r
        .entities
        .iter()
        .find(|e| e.entity == "ArCustomer")
        .unwrap();
    assert_eq!(
        cust.resent_unapplied, 0,
        "the refused customer waits for a fix: {r:?}"
    );
    drain(w.queue.as_ref(), &sinks_at(&w, 49), &quick_drain())
        .await
        .unwrap();
    assert_eq!(w.dest.0.lock().unwrap().records.len(), 5);
}

#[tokio::test]
async fn a_drain_stops_waiting_when_what_is_left_is_due_only_after_its_bound() {
    let w = World::new();
    w.seed(1, 2);
    poll_flow(&w.runtime(DAY), &w.source, "p").await.unwrap();
    {
        let mut d = w.dest.0.lock().unwrap();
        d.throttle_calls = 1_000;
        d.throttle_after = Duration::from_secs(600);
    }
    let opts = DrainOptions {
        max_wait: Duration::from_secs(30),
        ..Default::default()
    };
    let started = std::time::Instant::now();
    let r = drain(w.queue.as_ref(), &sinks_at(&w, 0), &opts)
        .await
        .unwrap();
    assert!(r.left_queued > 0, "{r:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "returned after {:?}, not after max_wait",
        started.elapsed()
    );
}
