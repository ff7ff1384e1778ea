//! DynamoDB adapter behaviour beyond the conformance suites, against moto.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use mlc_aws::schema::{AUDIT_BY_KEY, AUDIT_BY_OUTCOME, TTL_ATTRIBUTE};
use mlc_core::conformance::{flow_id, t0};
use mlc_core::ports::{AuditLog, Budget, RecordStateStore, WatermarkStore};
use mlc_core::state::{AppliedMark, SentMark, StateKey};
use mlc_core::{AuditEntry, Entity, PortError, SourceVersion, SyncOutcome};

fn entry(flow: &str, key: &str, outcome: SyncOutcome, secs: i64) -> AuditEntry {
    AuditEntry {
        flow: flow.into(),
        entity: Entity::ArInvoice,
        key: key.into(),
        poll_id: format!("{flow}:1"),
        polled_at: t0(),
        version: SourceVersion {
            poll_seq: 1,
            row_version: None,
        },
        content_hash: "h".into(),
        destination: "monday".into(),
        destination_ids: BTreeMap::new(),
        outcome,
        attempt: 1,
        at: t0() + chrono::Duration::seconds(secs),
        error_chain: Vec::new(),
    }
}

#[tokio::test]
async fn audit_pages_through_many_entries_and_sets_ttl() {
    let store = common::store().await;
    let flow = flow_id("aud");
    let entries: Vec<_> = (0..60)
        .map(|i| entry(&flow, "K", SyncOutcome::FailedRetryable, i))
        .collect();
    store
        .append(&entries)
        .await
        .expect("append 60 (three BatchWrite calls)");
    assert_eq!(
        store.history(Some(&flow), "K").await.expect("history"),
        entries
    );
    assert_eq!(store.history(None, "K").await.expect("history").len(), 60);
    let got = store
        .by_outcome(
            SyncOutcome::FailedRetryable,
            t0() + chrono::Duration::seconds(10),
            45,
        )
        .await
        .expect("by outcome");
    assert_eq!(got, entries[10..55].to_vec());

    let ctx = common::ctx().await;
    let scan = ctx
        .dynamodb()
        .scan()
        .table_name(&store.tables().audit)
        .limit(1)
        .send()
        .await
        .expect("scan");
    let item = &scan.items()[0];
    let at: i64 = item[TTL_ATTRIBUTE]
        .as_n()
        .expect("ttl number")
        .parse()
        .expect("ttl");
    assert!(
        (t0() + chrono::Duration::days(400)).timestamp() <= at,
        "ttl is 400 days after the entry"
    );
}

#[tokio::test]
async fn tables_match_the_schema_constants() {
    let store = common::store().await;
    let ctx = common::ctx().await;
    let d = ctx
        .dynamodb()
        .describe_table()
        .table_name(&store.tables().audit)
        .send()
        .await
        .expect("describe");
    let mut names: Vec<_> = d
        .table()
        .expect("table")
        .global_secondary_indexes()
        .iter()
        .filter_map(|g| g.index_name())
        .collect();
    names.sort();
    assert_eq!(names, vec![AUDIT_BY_KEY.name, AUDIT_BY_OUTCOME.name]);
    let ttl = ctx
        .dynamodb()
        .describe_time_to_live()
        .table_name(&store.tables().audit)
        .send()
        .await
        .expect("ttl");
    assert_eq!(
        ttl.time_to_live_description()
            .and_then(|t| t.attribute_name()),
        Some(TTL_ATTRIBUTE)
    );
}

#[tokio::test]
async fn version_order_includes_row_version_presence() {
    let store = common::store().await;
    let k = StateKey::new(flow_id("v"), Entity::ArInvoice, "K");
    let mark = |row_version| AppliedMark {
        key: k.clone(),
        version: SourceVersion {
            poll_seq: 7,
            row_version,
        },
        hash: "h".into(),
        destination_ids: BTreeMap::new(),
        at: t0(),
    };
    assert!(store.mark_applied(&mark(None)).await.expect("apply"));
    assert!(
        store.mark_applied(&mark(Some(0))).await.expect("apply"),
        "Some(0) > None"
    );
    assert!(store
        .mark_applied(&mark(Some(u64::MAX)))
        .await
        .expect("apply"));
    assert!(!store
        .mark_applied(&mark(Some(u64::MAX - 1)))
        .await
        .expect("apply"));
    let st = store
        .get_many(std::slice::from_ref(&k))
        .await
        .expect("get")
        .remove(0)
        .1;
    assert_eq!(
        st.applied_version,
        Some(SourceVersion {
            poll_seq: 7,
            row_version: Some(u64::MAX)
        })
    );
    assert_eq!(st.sent_version, None, "sink side alone");
}

#[tokio::test]
async fn duplicate_keys_in_one_call_are_fine() {
    let store = common::store().await;
    let flow = flow_id("dup");
    let k = StateKey::new(flow.clone(), Entity::ArCustomer, "C1");
    let sent = |hash: &str, open| SentMark {
        key: k.clone(),
        version: SourceVersion {
            poll_seq: 1,
            row_version: None,
        },
        hash: hash.into(),
        open,
        due: None,
        polled_at: t0(),
    };
    store
        .mark_sent(&[sent("first", true), sent("last", false)])
        .await
        .expect("sent");
    let got = store.get_many(&[k.clone(), k.clone()]).await.expect("get");
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].1.sent_hash.as_deref(),
        Some("last"),
        "last mark wins"
    );
    assert!(store
        .open_keys(&flow, Entity::ArCustomer)
        .await
        .expect("open")
        .is_empty());
}

#[tokio::test]
async fn lease_edge_cases() {
    let store = common::store().await;
    let flow = flow_id("lease");
    let ttl = Duration::from_secs(10);
    let a = store
        .acquire_lease(&flow, "a", ttl, t0())
        .await
        .expect("acquire")
        .expect("granted");
    let later = t0() + chrono::Duration::seconds(11);
    let b = store
        .acquire_lease(&flow, "b", ttl, later)
        .await
        .expect("acquire")
        .expect("lapsed");
    assert!(b.poll_seq > a.poll_seq);
    let r = store.release_lease(&a, true, later).await;
    assert!(
        matches!(r, Err(PortError::Conflict(_))),
        "a lost lease is not released: {r:?}"
    );
    let info = store.run_info(&flow).await.expect("info");
    assert_eq!(info.running.map(|l| l.owner), Some("b".to_string()));
    assert_eq!(info.last_started_at, Some(later));

    let bad = mlc_core::Watermark {
        flow: flow.clone(),
        entity: Entity::ArCustomer,
        value: mlc_core::WatermarkValue::Empty,
        version: 0,
        poll_id: "x".into(),
        updated_at: t0(),
        mapping: None,
        notes: Default::default(),
    };
    assert!(matches!(
        store.save(&bad).await,
        Err(PortError::Permanent { .. })
    ));
}

#[tokio::test]
async fn budget_edges() {
    let store = common::store().await;
    let scope = flow_id("b");
    assert_eq!(
        store.take(&scope, t0(), 10, 25).await.expect("take"),
        10,
        "want above limit"
    );
    assert_eq!(store.take(&scope, t0(), 10, 1).await.expect("take"), 0);
    assert_eq!(store.take(&scope, t0(), 0, 1).await.expect("take"), 0);
    assert_eq!(store.take(&scope, t0(), 10, 0).await.expect("take"), 0);
    // A larger limit for the same window (configuration change) grants the difference.
    assert_eq!(store.take(&scope, t0(), 15, 10).await.expect("take"), 5);
}

/// The production path: `from_env` picks the endpoint from `AWS_ENDPOINT_URL` (tests/run points
/// it at moto) and credentials from the environment.
#[tokio::test]
async fn from_env_honours_aws_endpoint_url() {
    let Ok(expected) = std::env::var("AWS_ENDPOINT_URL") else {
        panic!("AWS_ENDPOINT_URL is not set: run these tests through tests/run (it starts moto)");
    };
    let ctx = mlc_aws::AwsContext::from_env()
        .await
        .expect("context from env");
    assert_eq!(ctx.sdk_config().endpoint_url(), Some(expected.as_str()));
    let store = common::store().await;
    ctx.dynamodb()
        .describe_table()
        .table_name(&store.tables().control)
        .send()
        .await
        .expect("the env-configured client reaches the tables on moto");
}
