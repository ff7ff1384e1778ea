//! Watermark store semantics: exclusive lease per flow, optimistic saves.

use std::time::Duration;

use chrono::NaiveDate;

use super::{flow_id, t0};
use crate::entity::Entity;
use crate::error::PortError;
use crate::ports::WatermarkStore;
use crate::watermark::{Watermark, WatermarkValue};

const TTL: Duration = Duration::from_secs(300);

/// Two owners cannot hold one flow's lease at once; other flows are independent.
pub async fn lease_is_exclusive(s: &dyn WatermarkStore) {
    let flow = flow_id("lease");
    let a = s
        .acquire_lease(&flow, "a", TTL, t0())
        .await
        .expect("acquire");
    assert!(a.is_some(), "first owner gets it");
    let b = s
        .acquire_lease(&flow, "b", TTL, t0())
        .await
        .expect("acquire");
    assert!(b.is_none(), "second owner refused");
    let other = s
        .acquire_lease(&flow_id("lease"), "b", TTL, t0())
        .await
        .expect("acquire");
    assert!(other.is_some(), "another flow is free");
}

/// A lease whose holder crashed lapses at its expiry.
pub async fn lapsed_lease_can_be_taken(s: &dyn WatermarkStore) {
    let flow = flow_id("lapse");
    s.acquire_lease(&flow, "a", Duration::from_secs(60), t0())
        .await
        .expect("acquire")
        .expect("granted");
    let later = t0() + chrono::Duration::seconds(61);
    let b = s
        .acquire_lease(&flow, "b", TTL, later)
        .await
        .expect("acquire");
    assert_eq!(b.expect("lapsed lease taken").owner, "b");
}

/// Each grant carries a larger poll sequence number.
pub async fn poll_seq_increases(s: &dyn WatermarkStore) {
    let flow = flow_id("seq");
    let mut last = 0;
    for i in 0..3 {
        let l = s
            .acquire_lease(&flow, "a", TTL, t0())
            .await
            .expect("acquire")
            .expect("granted");
        assert!(l.poll_seq > last, "grant {i}: {} > {last}", l.poll_seq);
        last = l.poll_seq;
        assert_eq!(l.poll_id(), format!("{flow}:{last}"));
        s.release_lease(&l, true, t0()).await.expect("release");
    }
}

/// A released lease can be taken at once by someone else.
pub async fn released_lease_is_free(s: &dyn WatermarkStore) {
    let flow = flow_id("rel");
    let l = s
        .acquire_lease(&flow, "a", TTL, t0())
        .await
        .expect("acquire")
        .expect("granted");
    s.release_lease(&l, false, t0()).await.expect("release");
    assert!(s
        .acquire_lease(&flow, "b", TTL, t0())
        .await
        .expect("acquire")
        .is_some());
}

/// Renewing extends the expiry.
pub async fn renew_keeps_lease(s: &dyn WatermarkStore) {
    let flow = flow_id("renew");
    let l = s
        .acquire_lease(&flow, "a", Duration::from_secs(60), t0())
        .await
        .expect("acquire")
        .expect("granted");
    let at = t0() + chrono::Duration::seconds(50);
    let l2 = s
        .renew_lease(&l, Duration::from_secs(60), at)
        .await
        .expect("renew");
    assert!(l2.expires_at > l.expires_at);
    let probe = s
        .acquire_lease(&flow, "b", TTL, t0() + chrono::Duration::seconds(70))
        .await
        .expect("acquire");
    assert!(probe.is_none(), "renewed lease still held at +70s");
}

/// Renewing a lease that someone else took is a conflict.
pub async fn renew_after_loss_conflicts(s: &dyn WatermarkStore) {
    let flow = flow_id("lost");
    let l = s
        .acquire_lease(&flow, "a", Duration::from_secs(10), t0())
        .await
        .expect("acquire")
        .expect("granted");
    let later = t0() + chrono::Duration::seconds(20);
    s.acquire_lease(&flow, "b", TTL, later)
        .await
        .expect("acquire")
        .expect("granted to b");
    let r = s.renew_lease(&l, TTL, later).await;
    assert!(matches!(r, Err(PortError::Conflict(_))), "{r:?}");
}

fn wm(flow: &str, version: u64, day: u32) -> Watermark {
    Watermark {
        flow: flow.to_string(),
        entity: Entity::ArInvoice,
        value: WatermarkValue::Date(NaiveDate::from_ymd_opt(2026, 11, day).unwrap_or_default()),
        version,
        poll_id: format!("{flow}:{version}"),
        updated_at: t0(),
        mapping: None,
        notes: Default::default(),
    }
}

/// Saves are conditional on the previous version.
pub async fn save_is_optimistic(s: &dyn WatermarkStore) {
    let flow = flow_id("wm");
    s.save(&wm(&flow, 1, 1)).await.expect("first save");
    assert_eq!(
        s.load(&flow, Entity::ArInvoice).await.expect("load"),
        Some(wm(&flow, 1, 1))
    );
    s.save(&wm(&flow, 2, 2)).await.expect("second save");
    let stale = s.save(&wm(&flow, 2, 3)).await;
    assert!(matches!(stale, Err(PortError::Conflict(_))), "{stale:?}");
    let skip = s.save(&wm(&flow, 4, 3)).await;
    assert!(matches!(skip, Err(PortError::Conflict(_))), "{skip:?}");
    assert_eq!(
        s.load(&flow, Entity::ArInvoice).await.expect("load"),
        Some(wm(&flow, 2, 2))
    );
    let rv = Watermark {
        value: WatermarkValue::RowVersion(u64::MAX - 5),
        mapping: Some("0123abcd".into()),
        notes: crate::watermark::WatermarkNotes {
            business_date: chrono::NaiveDate::from_ymd_opt(2026, 12, 7),
            swept: chrono::NaiveDate::from_ymd_opt(2026, 12, 6),
            swept_rows: Some(381),
            go_live: Some(crate::watermark::GoLive {
                date: chrono::NaiveDate::from_ymd_opt(2026, 1, 2).expect("date"),
                row_version: Some(77),
                out_of_scope: 75,
            }),
            alert: Some("restore detected".into()),
            resume: Some(crate::watermark::ResumePoint {
                filter: Some("{}".into()),
                cursor: "k:0000001".into(),
                max_rv: Some(99),
                max_date: None,
                rows_read: 5000,
                whole: true,
            }),
        },
        ..wm(&flow, 3, 2)
    };
    s.save(&rv).await.expect("rowversion save");
    assert_eq!(
        s.load(&flow, Entity::ArInvoice).await.expect("load"),
        Some(rv)
    );
}

/// An entity never saved loads as `None`.
pub async fn load_missing_is_none(s: &dyn WatermarkStore) {
    assert_eq!(
        s.load(&flow_id("none"), Entity::ArCustomer)
            .await
            .expect("load"),
        None
    );
}

/// `list` returns a flow's watermarks; `run_info` reports lease history.
pub async fn list_and_run_info(s: &dyn WatermarkStore) {
    let flow = flow_id("list");
    s.save(&wm(&flow, 1, 1)).await.expect("save");
    let mut c = wm(&flow, 1, 1);
    c.entity = Entity::ArCustomer;
    s.save(&c).await.expect("save");
    let mut all = s.list(&flow).await.expect("list");
    all.sort_by_key(|w| w.entity);
    assert_eq!(all.len(), 2);
    let l = s
        .acquire_lease(&flow, "a", TTL, t0())
        .await
        .expect("acquire")
        .expect("granted");
    let info = s.run_info(&flow).await.expect("info");
    assert_eq!(info.running.as_ref().map(|r| r.owner.as_str()), Some("a"));
    assert_eq!(info.last_poll_seq, l.poll_seq);
    s.release_lease(&l, true, t0()).await.expect("release");
    let info = s.run_info(&flow).await.expect("info");
    assert!(info.running.is_none());
    assert_eq!(info.last_finished_at, Some(t0()));
}

/// A pause is stored and cleared.
pub async fn pause_and_resume(s: &dyn WatermarkStore) {
    let flow = flow_id("pause");
    let until = t0() + chrono::Duration::hours(3);
    s.set_pause(&flow, Some(until), Some("REQUEST_LIMIT_EXCEEDED"))
        .await
        .expect("pause");
    let info = s.run_info(&flow).await.expect("info");
    assert_eq!(info.paused_until, Some(until));
    assert_eq!(info.pause_reason.as_deref(), Some("REQUEST_LIMIT_EXCEEDED"));
    s.set_pause(&flow, None, None).await.expect("resume");
    assert_eq!(s.run_info(&flow).await.expect("info").paused_until, None);
}
