//! Backfills that finish in slices (issue 21): a read that reaches the poll's deadline sends
//! what it read, keeps its place in the watermark, and the next poll carries on; the records
//! sent end the same as one uninterrupted poll's.

mod common;

use common::*;

use std::time::Duration;

use chrono::Utc;
use mlc_core::config::ChangeDetection;
use mlc_core::ports::WatermarkStore;
use mlc_core::{Entity, Record};
use mlc_engine::local::{drain, DrainOptions};
use mlc_engine::{poll_flow_with, PollOptions};
use serde_json::{json, Value};

const DAY: &str = "2026-11-24";

fn world(strategy: ChangeDetection) -> World {
    let mut w = World::new();
    w.reconfigure(|f| f.entities[1].change_detection = strategy);
    w.seed(3, 30);
    let rows: Vec<Record> = w.source.0.lock().unwrap().rows[&Entity::ArInvoice].clone();
    for (n, mut row) in rows.into_iter().enumerate() {
        row.insert("TimeStamp".into(), json!(1000 + n));
        w.source.upsert(Entity::ArInvoice, Value::Object(row));
    }
    w
}

/// Polls with a deadline already past until the read is finished; the number of polls.
async fn poll_in_slices(w: &World) -> usize {
    let mut polls = 0;
    loop {
        let opts = PollOptions {
            deadline: Some(Utc::now() - chrono::Duration::seconds(1)),
            ..Default::default()
        };
        let r = poll_flow_with(&w.runtime(DAY), &w.source, "lambda", opts)
            .await
            .unwrap();
        polls += 1;
        assert!(polls < 50, "never finishes: {r:?}");
        if !r.unfinished() {
            return polls;
        }
    }
}

async fn deliver(w: &World) {
    drain(
        w.queue.as_ref(),
        &w.sinks(DAY),
        &DrainOptions {
            max_wait: Duration::from_secs(5),
            ..Default::default()
        },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_read_that_runs_out_of_time_carries_on_and_sends_what_one_poll_would() {
    for strategy in [
        ChangeDetection::Rowversion,
        ChangeDetection::OpenItems,
        ChangeDetection::FullScan,
    ] {
        let sliced = world(strategy);
        let polls = poll_in_slices(&sliced).await;
        // 30 invoices at 7 a page: five pages, four checkpoints, five polls.
        assert_eq!(polls, 5, "{strategy:?}");
        let wm = sliced
            .store
            .load(&sliced.flow.id, Entity::ArInvoice)
            .await
            .unwrap()
            .expect("watermark");
        assert_eq!(
            wm.notes.resume, None,
            "{strategy:?}: finished reads keep no resume point"
        );
        deliver(&sliced).await;

        let whole = world(strategy);
        whole.sync(DAY).await;
        let a = sliced.dest.0.lock().unwrap().records.clone();
        let b = whole.dest.0.lock().unwrap().records.clone();
        assert_eq!(a.len(), 33, "{strategy:?}");
        for (key, (rec, creates)) in &b {
            let (got, got_creates) = a
                .get(key)
                .unwrap_or_else(|| panic!("{strategy:?}: {key} missing"));
            assert_eq!(got, rec, "{strategy:?}: {key}");
            assert_eq!((*got_creates, *creates), (1, 1), "{strategy:?}: {key}");
        }
        // Carried on, then finished: the next polls send nothing new.
        let r = sliced.sync(DAY).await;
        assert_eq!(r.queued(), 0, "{strategy:?}: {r:?}");
    }
}
