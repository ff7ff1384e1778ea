//! Audit log semantics: append-only history per record, queryable by outcome and time.

use std::collections::BTreeMap;

use super::{flow_id, t0};
use crate::audit::{AuditEntry, ErrorLink};
use crate::entity::Entity;
use crate::event::SourceVersion;
use crate::outcome::SyncOutcome;
use crate::ports::{AuditLog, RecordStateStore};
use crate::state::{SentMark, StateKey};

fn entry(flow: &str, key: &str, outcome: SyncOutcome, secs: i64) -> AuditEntry {
    AuditEntry {
        flow: flow.to_string(),
        entity: Entity::ArInvoice,
        key: key.to_string(),
        poll_id: format!("{flow}:1"),
        polled_at: t0(),
        version: SourceVersion {
            poll_seq: 1,
            row_version: None,
        },
        content_hash: "abc".into(),
        destination: "salesforce".into(),
        destination_ids: BTreeMap::from([("salesforce_id".to_string(), "006X".to_string())]),
        outcome,
        attempt: 1,
        at: t0() + chrono::Duration::seconds(secs),
        error_chain: if outcome == SyncOutcome::FailedPermanent {
            vec![ErrorLink {
                status: Some(400),
                code: Some("REQUIRED_FIELD_MISSING".into()),
                message: "Required fields are missing: [Name]".into(),
                request_id: Some("req-1".into()),
            }]
        } else {
            Vec::new()
        },
    }
}

/// A record's history comes back oldest first, whole.
pub async fn history_in_order(a: &dyn AuditLog) {
    let flow = flow_id("aud");
    let key = format!("C1|{}|I", flow);
    let e1 = entry(&flow, &key, SyncOutcome::Queued, 0);
    let e2 = entry(&flow, &key, SyncOutcome::FailedPermanent, 1);
    let e3 = entry(&flow, &key, SyncOutcome::Replayed, 2);
    let e4 = entry(&flow, &key, SyncOutcome::Created, 3);
    a.append(&[e1.clone(), e2.clone()]).await.expect("append");
    a.append(&[e3.clone(), e4.clone()]).await.expect("append");
    a.append(&[entry(&flow, "other", SyncOutcome::Created, 1)])
        .await
        .expect("append");
    let h = a.history(Some(&flow), &key).await.expect("history");
    assert_eq!(h, vec![e1, e2, e3, e4]);
}

/// Without a flow, history spans flows; with one, only that flow.
pub async fn history_filters_by_flow(a: &dyn AuditLog) {
    let f1 = flow_id("aud1");
    let f2 = flow_id("aud2");
    let key = format!("K-{f1}");
    a.append(&[
        entry(&f1, &key, SyncOutcome::Created, 0),
        entry(&f2, &key, SyncOutcome::Updated, 1),
    ])
    .await
    .expect("append");
    assert_eq!(a.history(Some(&f1), &key).await.expect("h").len(), 1);
    assert_eq!(a.history(None, &key).await.expect("h").len(), 2);
}

/// Entries with an outcome since a time, oldest first, limited.
pub async fn by_outcome_since(a: &dyn AuditLog) {
    let flow = flow_id("out");
    // Far in the future so other cases' entries do not interfere.
    let base = 10_000_000;
    let mut es = Vec::new();
    for i in 0..5 {
        es.push(entry(
            &flow,
            &format!("K{i}"),
            SyncOutcome::FailedPermanent,
            base + i,
        ));
    }
    es.push(entry(&flow, "OK", SyncOutcome::Created, base + 2));
    a.append(&es).await.expect("append");
    let since = t0() + chrono::Duration::seconds(base + 1);
    let got = a
        .by_outcome(SyncOutcome::FailedPermanent, since, 3)
        .await
        .expect("query");
    let keys: Vec<_> = got
        .iter()
        .filter(|e| e.flow == flow)
        .map(|e| e.key.clone())
        .collect();
    assert_eq!(keys, vec!["K1", "K2", "K3"]);
}

/// Appending the same entry twice keeps both (append-only; nothing is overwritten).
pub async fn entries_are_append_only(a: &dyn AuditLog) {
    let flow = flow_id("app");
    let e = entry(&flow, "K", SyncOutcome::FailedRetryable, 0);
    a.append(std::slice::from_ref(&e)).await.expect("append");
    a.append(std::slice::from_ref(&e)).await.expect("append");
    assert_eq!(a.history(Some(&flow), "K").await.expect("h").len(), 2);
}

/// A sent mark is its record's `queued` audit entry: `history` (with and without the flow) and
/// `by_outcome` return it in order with what was appended after it, and `get_many` reads the
/// latest as the record's sent state.
pub async fn sent_marks_are_queued_entries<S: RecordStateStore + AuditLog>(s: &S) {
    let flow = flow_id("sent");
    let key = StateKey::new(flow.clone(), Entity::ArInvoice, "C9|00100077|I");
    // Far from other cases' times, so `by_outcome` sees only this case's entries of this flow.
    let at = |secs: i64| t0() + chrono::Duration::seconds(20_000_000 + secs);
    let mark = |seq: u64, secs: i64| SentMark {
        key: key.clone(),
        version: SourceVersion {
            poll_seq: seq,
            row_version: Some(seq * 100),
        },
        hash: format!("hash-{seq}"),
        open: seq == 1,
        due: None,
        polled_at: at(secs),
    };
    let (m1, m2) = (mark(1, 0), mark(2, 2));
    let mut created = entry(&flow, &key.key, SyncOutcome::Created, 0);
    created.at = at(1);
    s.mark_sent(std::slice::from_ref(&m1))
        .await
        .expect("sent 1");
    s.append(std::slice::from_ref(&created))
        .await
        .expect("append");
    s.mark_sent(std::slice::from_ref(&m2))
        .await
        .expect("sent 2");

    let q1 = m1.queued_entry();
    assert_eq!(q1.outcome, SyncOutcome::Queued);
    assert_eq!(q1.poll_id, format!("{flow}:1"));
    assert_eq!(q1.destination, "queue");
    assert_eq!(q1.content_hash, "hash-1");
    let want = vec![q1.clone(), created.clone(), m2.queued_entry()];
    assert_eq!(s.history(Some(&flow), &key.key).await.expect("h"), want);
    let all_flows = s.history(None, &key.key).await.expect("h");
    assert_eq!(all_flows, want);

    // This flow's `queued` entries since a time.
    let queued_since = |secs: i64| {
        let flow = flow.clone();
        async move {
            s.by_outcome(SyncOutcome::Queued, at(secs), 100_000)
                .await
                .expect("by outcome")
                .into_iter()
                .filter(|e| e.flow == flow)
                .collect::<Vec<AuditEntry>>()
        }
    };
    assert_eq!(queued_since(0).await, vec![q1, m2.queued_entry()]);
    let later = queued_since(2).await;
    assert_eq!(later, vec![m2.queued_entry()]);

    let state = s.get_many(std::slice::from_ref(&key)).await.expect("get");
    assert_eq!(state.len(), 1);
    assert_eq!(state[0].1.sent_hash.as_deref(), Some("hash-2"));
    assert_eq!(state[0].1.sent_version, Some(m2.version));
    assert!(!state[0].1.open);
    assert!(s
        .open_keys(&flow, Entity::ArInvoice)
        .await
        .expect("open keys")
        .is_empty());
}
