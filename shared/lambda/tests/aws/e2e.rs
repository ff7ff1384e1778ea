//! Poll, sink and replay handlers together, the way AWS wires them.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mlc_core::ports::{RecordStateStore, WatermarkStore};
use mlc_core::state::{AppliedMark, RecordState, SentMark, StateKey};
use mlc_core::watermark::FlowRunInfo;
use mlc_core::{Entity, Lease, PortError, PortResult, Record, SyncOutcome, Watermark};
use mlc_engine::derive::{add_derived, record_key};
use mlc_lambda::{flow_of_event, poll_handler, replay_handler, ReplayEvent, Target};
use serde_json::json;
use sim_syspro::CompanyCounts;

use crate::common::{context, convergence, deliver, today, Sims, Stack, MONDAY_FLOW, SF_FLOW};

fn small_company() -> CompanyCounts {
    CompanyCounts {
        customers: 8,
        invoices: 30,
        payments: 8,
        suppliers: 5,
        ap_invoices: 10,
        purchase_orders: 6,
    }
}

const WAIT: Duration = Duration::from_secs(20);

/// An open AR invoice of the source: (key identity, invoice number).
fn an_open_invoice(sims: &Sims, config: &mlc_core::config::ConnectorConfig) -> (String, String) {
    let flow = config.flow(SF_FLOW).unwrap();
    for row in sims
        .syspro
        .snapshot()
        .get("ArInvoice")
        .into_iter()
        .flatten()
    {
        let mut r: Record = row.clone();
        let k = record_key(Entity::ArInvoice, &r).unwrap();
        if add_derived(flow, Entity::ArInvoice, &k, &mut r, today()) {
            let number = r["Invoice"].as_str().unwrap_or_default().trim().to_string();
            return (k.id(), number);
        }
    }
    panic!("the generated company has no open invoice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_sink_dead_letter_replay_and_converge() {
    let stack = Stack::new().await;
    let sims = Sims::start(small_company(), 11).await;
    let config = sims.config(&stack.secret);
    let ctx = context(config.clone(), stack.ports());

    // A permanent failure on one invoice, as Salesforce reports a validation rule.
    let (bad_key, bad_number) = an_open_invoice(&sims, &config);
    sims.salesforce.fail_record(
        &bad_key,
        "REQUIRED_FIELD_MISSING",
        "Required fields are missing: [CloseDate]",
        1_000,
    );

    // Poll: the rule's input, and an EventBridge event whose detail names the flow.
    let sf_flow = flow_of_event(&json!({ "flow": SF_FLOW })).unwrap();
    let sf = poll_handler(&ctx, &sf_flow, "req-sf-1").await.unwrap();
    let mon_flow = flow_of_event(&json!({
        "version": "0", "id": "e1", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": "2026-11-24T06:00:00Z", "region": "us-east-1",
        "resources": [], "detail": { "flow": MONDAY_FLOW }
    }))
    .unwrap();
    let mon = poll_handler(&ctx, &mon_flow, "req-mon-1").await.unwrap();
    assert!(!sf.skipped && !mon.skipped);
    assert!(sf.queued() > 0 && mon.queued() > 0, "{sf:?} {mon:?}");
    let sf_messages: usize = sf.entities.iter().map(|e| e.messages).sum();
    let mon_messages: usize = mon.entities.iter().map(|e| e.messages).sum();
    assert_eq!(
        stack.count(&stack.salesforce.main).await,
        sf_messages as u64
    );
    assert_eq!(stack.count(&stack.monday.main).await, mon_messages as u64);
    // Monday: one group per board, so at least one message per board.
    assert!(mon_messages >= 3, "{mon:?}");

    // Sink events built from what is in the queues.
    let d_sf = deliver(&ctx, &stack, Target::Salesforce, WAIT).await;
    let d_mon = deliver(&ctx, &stack, Target::Monday, WAIT).await;
    assert_eq!(d_sf.messages, sf_messages, "{d_sf:?}");
    assert_eq!(d_sf.failures, 0, "{d_sf:?}");
    assert_eq!(d_mon.failures, 0, "{d_mon:?}");
    assert_eq!(stack.count(&stack.salesforce.main).await, 0);
    assert_eq!(stack.count(&stack.monday.main).await, 0);

    // The bad record, and only it, is in the DLQ with its reason.
    assert_eq!(stack.count(&stack.salesforce.dead).await, 1);
    assert_eq!(stack.count(&stack.monday.dead).await, 0);
    let c = convergence(&sims, &config, std::slice::from_ref(&bad_key));
    assert!(c.problems.is_empty(), "{:#?}", c.problems);
    assert!(sims
        .salesforce
        .find("Opportunity", "SYSPRO_Invoice__c", &bad_key)
        .is_empty());
    let dry = replay_handler(
        &ctx,
        ReplayEvent {
            flow: Some(SF_FLOW.into()),
            keys: vec![bad_number.clone()],
            dry_run: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(dry.moved, 1, "{dry:?}");
    assert_eq!(
        dry.destinations.len(),
        1,
        "only the flow's destination is read"
    );
    let rec = &dry.destinations["salesforce"].records[0];
    assert!(rec.record.ends_with(&bad_key), "{rec:?}");
    assert!(rec.reason.contains("REQUIRED_FIELD_MISSING"), "{rec:?}");
    assert_eq!(
        stack.count(&stack.salesforce.dead).await,
        1,
        "a dry run moves nothing"
    );

    // Fault cleared: replay brings it back, the sink writes it.
    sims.salesforce.clear_faults();
    tokio::time::sleep(Duration::from_millis(1_200)).await; // the dry run's 1 s visibility
    let moved = replay_handler(
        &ctx,
        ReplayEvent {
            flow: Some(SF_FLOW.into()),
            keys: vec![bad_number],
            since: Some(DateTime::<Utc>::from_timestamp(0, 0).unwrap()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(moved.moved, 1, "{moved:?}");
    assert_eq!(stack.count(&stack.salesforce.dead).await, 0);
    assert_eq!(stack.count(&stack.salesforce.main).await, 1);
    let d = deliver(&ctx, &stack, Target::Salesforce, WAIT).await;
    assert_eq!((d.messages, d.failures), (1, 0), "{d:?}");

    // Final state equals the source, nothing twice.
    let c = convergence(&sims, &config, &[]);
    assert!(c.problems.is_empty(), "{:#?}", c.problems);
    assert!(c.accounts >= 8 && c.opportunities > 0, "{c:?}");
    assert!(sims
        .salesforce
        .duplicates("Account", "SYSPRO_Customer__c")
        .is_empty());
    assert!(sims
        .salesforce
        .duplicates("Opportunity", "SYSPRO_Invoice__c")
        .is_empty());
    let history = ctx
        .ports()
        .audit
        .history(Some(SF_FLOW), &bad_key)
        .await
        .unwrap();
    let outcomes: Vec<SyncOutcome> = history.iter().map(|e| e.outcome).collect();
    for o in [
        SyncOutcome::FailedPermanent,
        SyncOutcome::Replayed,
        SyncOutcome::Created,
    ] {
        assert!(outcomes.contains(&o), "{outcomes:?}");
    }

    // Nothing changed: the next polls queue nothing.
    let again = poll_handler(&ctx, SF_FLOW, "req-sf-2").await.unwrap();
    assert_eq!(again.queued(), 0, "{again:?}");
    let again = poll_handler(&ctx, MONDAY_FLOW, "req-mon-2").await.unwrap();
    assert_eq!(again.queued(), 0, "{again:?}");
}

/// Fails `save` the first `n` times (a crash after the queue accepted, before the watermark).
struct FlakyWatermarks {
    inner: Arc<dyn WatermarkStore>,
    fail_saves: AtomicU32,
}

#[async_trait]
impl WatermarkStore for FlakyWatermarks {
    async fn acquire_lease(
        &self,
        flow: &str,
        owner: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> PortResult<Option<Lease>> {
        self.inner.acquire_lease(flow, owner, ttl, now).await
    }
    async fn renew_lease(
        &self,
        lease: &Lease,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> PortResult<Lease> {
        self.inner.renew_lease(lease, ttl, now).await
    }
    async fn release_lease(
        &self,
        lease: &Lease,
        finished: bool,
        now: DateTime<Utc>,
    ) -> PortResult<()> {
        self.inner.release_lease(lease, finished, now).await
    }
    async fn load(&self, flow: &str, entity: Entity) -> PortResult<Option<Watermark>> {
        self.inner.load(flow, entity).await
    }
    async fn save(&self, wm: &Watermark) -> PortResult<()> {
        if self.fail_saves.load(Ordering::SeqCst) > 0 {
            self.fail_saves.fetch_sub(1, Ordering::SeqCst);
            return Err(PortError::Transient {
                message: "injected crash before the watermark save".into(),
                source: None,
            });
        }
        self.inner.save(wm).await
    }
    async fn list(&self, flow: &str) -> PortResult<Vec<Watermark>> {
        self.inner.list(flow).await
    }
    async fn run_info(&self, flow: &str) -> PortResult<FlowRunInfo> {
        self.inner.run_info(flow).await
    }
    async fn set_pause(
        &self,
        flow: &str,
        until: Option<DateTime<Utc>>,
        reason: Option<&str>,
    ) -> PortResult<()> {
        self.inner.set_pause(flow, until, reason).await
    }
}

/// Fails `mark_sent` the first `n` times (a crash right after the queue accepted).
struct FlakyState {
    inner: Arc<dyn RecordStateStore>,
    fail_marks: AtomicU32,
}

#[async_trait]
impl RecordStateStore for FlakyState {
    async fn get_many(&self, keys: &[StateKey]) -> PortResult<Vec<(StateKey, RecordState)>> {
        self.inner.get_many(keys).await
    }
    async fn mark_sent(&self, marks: &[SentMark]) -> PortResult<()> {
        if self.fail_marks.load(Ordering::SeqCst) > 0 {
            self.fail_marks.fetch_sub(1, Ordering::SeqCst);
            return Err(PortError::Transient {
                message: "injected crash after the send".into(),
                source: None,
            });
        }
        self.inner.mark_sent(marks).await
    }
    async fn mark_applied(&self, mark: &AppliedMark) -> PortResult<bool> {
        self.inner.mark_applied(mark).await
    }
    async fn open_keys(&self, flow: &str, entity: Entity) -> PortResult<Vec<String>> {
        self.inner.open_keys(flow, entity).await
    }
    async fn calendar_keys(
        &self,
        flow: &str,
        entity: Entity,
    ) -> PortResult<Vec<(String, chrono::NaiveDate)>> {
        self.inner.calendar_keys(flow, entity).await
    }
    async fn unapplied(
        &self,
        flow: &str,
        entities: &[Entity],
        sent_before: chrono::DateTime<chrono::Utc>,
        limit: usize,
    ) -> PortResult<Vec<mlc_core::ports::Unapplied>> {
        self.inner
            .unapplied(flow, entities, sent_before, limit)
            .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_sent_and_watermark_saved_duplicates_nothing() {
    let stack = Stack::new().await;
    let sims = Sims::start(small_company(), 12).await;
    let config = sims.config(&stack.secret);
    let mut ports = stack.ports();
    let flaky_state = Arc::new(FlakyState {
        inner: ports.state.clone(),
        fail_marks: AtomicU32::new(0),
    });
    ports.state = flaky_state.clone();
    let flaky_wm = Arc::new(FlakyWatermarks {
        inner: ports.watermarks.clone(),
        fail_saves: AtomicU32::new(0),
    });
    ports.watermarks = flaky_wm.clone();
    let ctx = context(config.clone(), ports);

    for (flow, target) in [(SF_FLOW, Target::Salesforce), (MONDAY_FLOW, Target::Monday)] {
        let url = stack.urls(target).main.clone();
        // 1: the queue took the first batches, then the process died before recording them.
        flaky_state.fail_marks.store(1, Ordering::SeqCst);
        let e = poll_handler(&ctx, flow, "crash-1").await.unwrap_err();
        assert!(
            mlc_lambda::error::chain(&e).contains("injected crash after the send"),
            "{e}"
        );
        let after_first = stack.count(&url).await;
        assert!(after_first > 0, "the crashed poll had sent messages");
        // 2: everything sent and recorded, then it died before the watermark save.
        flaky_wm.fail_saves.store(1, Ordering::SeqCst);
        let e = poll_handler(&ctx, flow, "crash-2").await.unwrap_err();
        assert!(
            mlc_lambda::error::chain(&e).contains("injected crash before the watermark"),
            "{e}"
        );
        let after_second = stack.count(&url).await;
        assert!(after_second > after_first, "the re-poll re-sent the window");
        // 3: a clean poll of the same window.
        let ok = poll_handler(&ctx, flow, "clean").await.unwrap();
        assert!(!ok.skipped, "a crashed poll released its lease");

        let d = deliver(&ctx, &stack, target, WAIT).await;
        assert_eq!(d.failures, 0, "{d:?}");
        assert_eq!(stack.count(&stack.urls(target).dead).await, 0);
    }
    // Every repeat was absorbed: one record per key in every destination.
    let c = convergence(&sims, &config, &[]);
    assert!(c.problems.is_empty(), "{:#?}", c.problems);
    assert!(sims
        .salesforce
        .duplicates("Account", "SYSPRO_Customer__c")
        .is_empty());
    assert!(sims
        .salesforce
        .duplicates("Opportunity", "SYSPRO_Invoice__c")
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_polls_of_one_flow_never_both_run() {
    let stack = Stack::new().await;
    let sims = Sims::start(small_company(), 13).await;
    let config = sims.config(&stack.secret);
    // Two containers: separate contexts over the same tables and queues.
    let a = context(config.clone(), stack.ports());
    let b = context(config, stack.ports());
    let (ra, rb) = tokio::join!(
        poll_handler(&a, SF_FLOW, "container-a"),
        poll_handler(&b, SF_FLOW, "container-b")
    );
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert!(
        ra.skipped ^ rb.skipped,
        "exactly one skipped: {ra:?} {rb:?}"
    );
    let ran = if ra.skipped { &rb } else { &ra };
    let skipped = if ra.skipped { &ra } else { &rb };
    assert!(ran.queued() > 0 && skipped.queued() == 0);
    assert!(skipped.poll_id.is_empty());
    // The lease was released: the next schedule runs.
    let next = poll_handler(&b, SF_FLOW, "container-b-2").await.unwrap();
    assert!(!next.skipped);
    assert_eq!(next.queued(), 0, "nothing changed since the poll that ran");
}
