//! Fenced polls (issue 21): a poll whose lease lapsed and was taken by another poll stops
//! before it sends anything more, and the other poll's work stands.

mod common;

use common::*;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

use async_trait::async_trait;
use mlc_core::ports::{Source, SourceError, SourceInfo, WatermarkStore};
use mlc_core::query::{PageCursor, SourcePage, SourceQuery};
use mlc_core::Entity;
use mlc_engine::{poll_flow, EngineError};

/// A clock tests move by hand (shared by the poll and the other poller).
#[derive(Debug)]
struct ManualClock(Mutex<DateTime<Utc>>);

impl mlc_core::Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

/// SYSPRO that is slow enough, on the first invoice page, for the poll's lease to lapse (the
/// clock moves five minutes) and another poller to take the flow.
struct SlowSyspro<'a> {
    inner: MemSource,
    world: &'a World,
    clock: Arc<ManualClock>,
    stolen: AtomicBool,
}

#[async_trait]
impl Source for SlowSyspro<'_> {
    async fn read_page(
        &self,
        q: &SourceQuery,
        cursor: Option<&PageCursor>,
    ) -> Result<SourcePage, SourceError> {
        if q.entity == Entity::ArInvoice && !self.stolen.swap(true, Ordering::SeqCst) {
            let later = {
                let mut now = self.clock.0.lock().unwrap();
                *now += chrono::Duration::minutes(5);
                *now
            };
            let other = self
                .world
                .store
                .acquire_lease(
                    &self.world.flow.id,
                    "other-poller",
                    Duration::from_secs(60),
                    later,
                )
                .await
                .expect("lease store");
            assert!(other.is_some(), "the lapsed lease is taken");
        }
        self.inner.read_page(q, cursor).await
    }
    async fn has_row_version(&self, e: Entity) -> Result<bool, SourceError> {
        self.inner.has_row_version(e).await
    }
    async fn ping(&self, f: &[(Entity, Vec<String>)]) -> Result<SourceInfo, SourceError> {
        self.inner.ping(f).await
    }
}

#[tokio::test]
async fn a_poll_that_lost_its_lease_stops_before_sending() {
    let w = World::new();
    w.seed(3, 12);
    let clock = Arc::new(ManualClock(Mutex::new(Utc::now())));
    let slow = SlowSyspro {
        inner: w.source.clone(),
        world: &w,
        clock: clock.clone(),
        stolen: AtomicBool::new(false),
    };
    let mut rt = w.runtime("2026-11-24");
    rt.clock = clock;
    let err = poll_flow(&rt, &slow, "first")
        .await
        .expect_err("the poll must stop");
    assert!(matches!(err, EngineError::LeaseLost(_)), "{err}");
    let depth = mlc_core::ports::Queue::depth(w.queue.as_ref())
        .await
        .unwrap();
    let got = mlc_core::ports::Queue::receive(w.queue.as_ref(), 100, Duration::from_secs(30))
        .await
        .unwrap();
    let invoices: usize = got
        .iter()
        .flat_map(|d| d.batch.events.iter())
        .filter(|e| e.entity == Entity::ArInvoice)
        .count();
    assert_eq!(
        invoices, 0,
        "nothing sent after the lease was lost ({depth:?})"
    );
}
