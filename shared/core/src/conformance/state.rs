//! Record state semantics: poll side and sink side never clobber each other; applied versions
//! never go back.

use std::collections::BTreeMap;

use super::{flow_id, t0};
use crate::entity::Entity;
use crate::error::PortError;
use crate::event::SourceVersion;
use crate::ports::RecordStateStore;
use crate::state::{AppliedMark, SentMark, StateKey};

fn v(poll_seq: u64) -> SourceVersion {
    SourceVersion {
        poll_seq,
        row_version: Some(poll_seq * 10),
    }
}

fn applied(key: &StateKey, seq: u64, ids: &[(&str, &str)]) -> AppliedMark {
    AppliedMark {
        key: key.clone(),
        version: v(seq),
        hash: format!("h{seq}"),
        destination_ids: ids
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<BTreeMap<_, _>>(),
        at: t0(),
    }
}

/// Unknown records are absent from `get_many`.
pub async fn missing_state_is_absent(s: &dyn RecordStateStore) {
    let k = StateKey::new(flow_id("st"), Entity::ArCustomer, "NOPE");
    assert!(s.get_many(&[k]).await.expect("get").is_empty());
}

/// Sent and applied marks update their own fields only.
pub async fn sent_and_applied_do_not_clobber(s: &dyn RecordStateStore) {
    let k = StateKey::new(flow_id("st"), Entity::ArInvoice, "C1|00100045|I");
    s.mark_sent(&[SentMark {
        key: k.clone(),
        version: v(1),
        hash: "h1".into(),
        open: true,
        due: None,
        polled_at: t0(),
    }])
    .await
    .expect("sent");
    assert!(s
        .mark_applied(&applied(&k, 1, &[("salesforce_id", "006A")]))
        .await
        .expect("applied"));
    s.mark_sent(&[SentMark {
        key: k.clone(),
        version: v(2),
        hash: "h2".into(),
        open: false,
        due: None,
        polled_at: t0(),
    }])
    .await
    .expect("sent");
    let got = s.get_many(std::slice::from_ref(&k)).await.expect("get");
    assert_eq!(got.len(), 1);
    let st = &got[0].1;
    assert_eq!(got[0].0, k);
    assert_eq!(st.sent_hash.as_deref(), Some("h2"));
    assert_eq!(st.sent_version, Some(v(2)));
    assert!(!st.open);
    assert_eq!(st.applied_version, Some(v(1)));
    assert_eq!(st.applied_hash.as_deref(), Some("h1"));
    assert_eq!(
        st.destination_ids.get("salesforce_id").map(String::as_str),
        Some("006A")
    );
    assert_eq!(st.applied_at, Some(t0()));
}

/// An older or equal version is refused and changes nothing.
pub async fn applied_never_regresses(s: &dyn RecordStateStore) {
    let k = StateKey::new(flow_id("st"), Entity::ArInvoice, "K");
    assert!(s.mark_applied(&applied(&k, 5, &[])).await.expect("apply 5"));
    assert!(
        !s.mark_applied(&applied(&k, 4, &[])).await.expect("apply 4"),
        "older refused"
    );
    assert!(
        !s.mark_applied(&applied(&k, 5, &[]))
            .await
            .expect("apply 5 again"),
        "equal refused"
    );
    let st = s
        .get_many(std::slice::from_ref(&k))
        .await
        .expect("get")
        .remove(0)
        .1;
    assert_eq!(st.applied_version, Some(v(5)));
    assert!(s.mark_applied(&applied(&k, 6, &[])).await.expect("apply 6"));
}

/// Destination ids from later writes merge with earlier ones.
pub async fn destination_ids_merge(s: &dyn RecordStateStore) {
    let k = StateKey::new(flow_id("st"), Entity::ApInvoice, "S1|INV9");
    assert!(s
        .mark_applied(&applied(&k, 1, &[("board_id", "10"), ("item_id", "77")]))
        .await
        .expect("apply"));
    assert!(s
        .mark_applied(&applied(&k, 2, &[("item_id", "78")]))
        .await
        .expect("apply"));
    let st = s
        .get_many(std::slice::from_ref(&k))
        .await
        .expect("get")
        .remove(0)
        .1;
    assert_eq!(
        st.destination_ids.get("board_id").map(String::as_str),
        Some("10")
    );
    assert_eq!(
        st.destination_ids.get("item_id").map(String::as_str),
        Some("78")
    );
}

/// `open_keys` lists the keys whose last sent mark was open, for that flow and entity only.
pub async fn open_keys_track_open_flag(s: &dyn RecordStateStore) {
    let flow = flow_id("open");
    let mark = |key: &str, open: bool, entity: Entity| SentMark {
        key: StateKey::new(flow.clone(), entity, key),
        version: v(1),
        hash: "h".into(),
        open,
        due: None,
        polled_at: t0(),
    };
    s.mark_sent(&[
        mark("A", true, Entity::ArInvoice),
        mark("B", true, Entity::ArInvoice),
        mark("C", false, Entity::ArInvoice),
        mark("D", true, Entity::ApInvoice),
    ])
    .await
    .expect("sent");
    s.mark_sent(&[mark("B", false, Entity::ArInvoice)])
        .await
        .expect("sent");
    let mut keys = s.open_keys(&flow, Entity::ArInvoice).await.expect("open");
    keys.sort();
    assert_eq!(keys, vec!["A".to_string()]);
}

/// `calendar_keys` lists open keys with a due date, each with its latest mark's date; a key
/// whose latest mark is closed or has no due date is not listed.
pub async fn calendar_keys_carry_the_latest_due_date(s: &dyn RecordStateStore) {
    let flow = flow_id("calendar");
    let day = |d: u32| chrono::NaiveDate::from_ymd_opt(2026, 12, d);
    let mark = |key: &str, seq: u64, open: bool, due| SentMark {
        key: StateKey::new(flow.clone(), Entity::ArInvoice, key),
        version: v(seq),
        hash: "h".into(),
        open,
        due,
        polled_at: t0(),
    };
    s.mark_sent(&[
        mark("A", 1, true, day(1)),
        mark("B", 1, true, day(2)),
        mark("C", 1, true, None),
        mark("D", 1, true, day(4)),
    ])
    .await
    .expect("sent");
    s.mark_sent(&[mark("A", 2, true, day(9)), mark("D", 2, false, None)])
        .await
        .expect("sent");
    let mut keys = s
        .calendar_keys(&flow, Entity::ArInvoice)
        .await
        .expect("calendar keys");
    keys.sort();
    let want: Vec<(String, chrono::NaiveDate)> = [("A", 9), ("B", 2)]
        .into_iter()
        .map(|(k, d)| (k.to_string(), day(d).expect("date")))
        .collect();
    assert_eq!(keys, want);
    assert!(s
        .calendar_keys(&flow, Entity::ApInvoice)
        .await
        .expect("other entity")
        .is_empty());
}

/// `unapplied` lists records whose latest sent version is older than the bound and was not
/// applied (nor a newer one), oldest first, for the entities asked only.
pub async fn unapplied_lists_old_sends_no_sink_applied(s: &dyn RecordStateStore) {
    let flow = flow_id("unapplied");
    let at = |minutes: i64| t0() + chrono::Duration::minutes(minutes);
    let mark = |key: &str, seq: u64, entity: Entity, minutes: i64| SentMark {
        key: StateKey::new(flow.clone(), entity, key),
        version: v(seq),
        hash: "h".into(),
        open: true,
        due: None,
        polled_at: at(minutes),
    };
    s.mark_sent(&[
        mark("A", 1, Entity::ArInvoice, 0),
        mark("B", 1, Entity::ArInvoice, 0),
        mark("C", 1, Entity::ArInvoice, 0),
        mark("E", 1, Entity::ApInvoice, 0),
    ])
    .await
    .expect("sent");
    s.mark_sent(&[
        mark("C", 2, Entity::ArInvoice, 10),
        mark("D", 2, Entity::ArInvoice, 120),
    ])
    .await
    .expect("sent");
    let key = |k: &str| StateKey::new(flow.clone(), Entity::ArInvoice, k);
    assert!(s
        .mark_applied(&applied(&key("B"), 1, &[]))
        .await
        .expect("B"));
    assert!(s
        .mark_applied(&applied(&key("C"), 1, &[]))
        .await
        .expect("C"));
    let got = s
        .unapplied(&flow, &[Entity::ArInvoice], at(60), 100)
        .await
        .expect("unapplied");
    let keys: Vec<(&str, u64)> = got
        .iter()
        .map(|u| (u.key.key.as_str(), u.version.poll_seq))
        .collect();
    // A never applied; C applied at 1 but sent again at 2; D too recent; B done; E elsewhere.
    assert_eq!(keys, [("A", 1), ("C", 2)]);
    assert_eq!(got[0].sent_at, at(0));
    let one = s
        .unapplied(&flow, &[Entity::ArInvoice, Entity::ApInvoice], at(60), 1)
        .await
        .expect("limit");
    assert_eq!(one.len(), 1);
}

/// The fence: once a newer poll holds the flow's lease, the sent marks of the older poll are
/// refused (`Conflict`) and the newer poll's stay. Stores that keep leases and record state
/// together.
pub async fn older_polls_sent_marks_are_refused<S>(s: &S)
where
    S: RecordStateStore + crate::ports::WatermarkStore,
{
    let flow = flow_id("fence");
    let key = StateKey::new(flow.clone(), Entity::ArInvoice, "C1|100|I");
    let mark = |seq: u64, hash: &str| SentMark {
        key: key.clone(),
        version: v(seq),
        hash: hash.into(),
        open: true,
        due: None,
        polled_at: t0(),
    };
    let ttl = std::time::Duration::from_secs(60);
    let a = s
        .acquire_lease(&flow, "a", ttl, t0())
        .await
        .expect("lease")
        .expect("a");
    s.mark_sent(&[mark(a.poll_seq, "a")])
        .await
        .expect("a holds the lease");
    let later = t0() + chrono::Duration::seconds(120);
    let b = s
        .acquire_lease(&flow, "b", ttl, later)
        .await
        .expect("lease")
        .expect("b");
    assert!(b.poll_seq > a.poll_seq);
    s.mark_sent(&[mark(b.poll_seq, "b")]).await.expect("b");
    let late = s.mark_sent(&[mark(a.poll_seq, "a-late")]).await;
    assert!(matches!(late, Err(PortError::Conflict(_))), "{late:?}");
    let last = s.last_sent(std::slice::from_ref(&key)).await.expect("last");
    assert_eq!(last[0].1.hash, "b");
}

/// `get_many` handles more keys than one backend request takes (DynamoDB: 100).
pub async fn get_many_large(s: &dyn RecordStateStore) {
    let flow = flow_id("many");
    let marks: Vec<SentMark> = (0..250)
        .map(|i| SentMark {
            key: StateKey::new(flow.clone(), Entity::ArCustomer, format!("{i:06}")),
            version: v(1),
            hash: format!("h{i}"),
            open: false,
            due: None,
            polled_at: t0(),
        })
        .collect();
    s.mark_sent(&marks).await.expect("sent");
    let mut keys: Vec<StateKey> = marks.iter().map(|m| m.key.clone()).collect();
    keys.push(StateKey::new(flow.clone(), Entity::ArCustomer, "missing"));
    let got = s.get_many(&keys).await.expect("get");
    assert_eq!(got.len(), 250);
    for (k, st) in got {
        let i: usize = k.key.parse().expect("numeric key");
        assert_eq!(st.sent_hash, Some(format!("h{i}")));
    }
}

/// `last_sent` is the poll side of `get_many`: the last mark's hash, version and open flag, and
/// nothing for a record no poll sent (even when a sink applied it).
pub async fn last_sent_is_the_poll_side(s: &dyn RecordStateStore) {
    let flow = flow_id("last");
    let sent = StateKey::new(flow.clone(), Entity::ArInvoice, "C1|00100045|I");
    let only_applied = StateKey::new(flow.clone(), Entity::ArInvoice, "C1|00100046|I");
    let unknown = StateKey::new(flow.clone(), Entity::ArInvoice, "C1|00100047|I");
    for (seq, open) in [(1, true), (2, false)] {
        s.mark_sent(&[SentMark {
            key: sent.clone(),
            version: v(seq),
            hash: format!("h{seq}"),
            open,
            due: None,
            polled_at: t0(),
        }])
        .await
        .expect("sent");
    }
    assert!(s
        .mark_applied(&applied(&only_applied, 1, &[("salesforce_id", "006B")]))
        .await
        .expect("applied"));
    let keys = [sent.clone(), only_applied, unknown];
    let last = s.last_sent(&keys).await.expect("last sent");
    assert_eq!(
        last,
        vec![(
            sent.clone(),
            crate::state::LastSent {
                hash: "h2".into(),
                version: Some(v(2)),
                open: false,
            }
        )]
    );
    let full = s.get_many(&keys).await.expect("get many");
    let poll_side: Vec<_> = full
        .iter()
        .filter(|(_, st)| st.sent_hash.is_some())
        .map(|(k, st)| (k.clone(), st.sent_hash.clone(), st.sent_version, st.open))
        .collect();
    assert_eq!(
        poll_side,
        vec![(sent, Some("h2".to_string()), Some(v(2)), false)]
    );
}
