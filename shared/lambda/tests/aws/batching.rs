//! The FIFO cap (a Lambda event holds at most 10 messages) does not cost Salesforce calls:
//! change batches carry many records each, so the AWS path makes the same calls as the local
//! path for the same data.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use mlc_core::config::ConnectorConfig;
use mlc_core::ports::{AuditLog, Queue, RecordStateStore, Sink, WatermarkStore};
use mlc_core::{Entity, FixedClock, Record};
use mlc_embedded::{QueueOptions, SqliteQueue, SqliteStore, StaticSecrets};
use mlc_engine::derive::{add_derived, record_key};
use mlc_engine::local::{drain, DrainOptions};
use mlc_engine::{poll_flow, FlowRuntime, SinkSet};
use mlc_lambda::{poll_handler, Target};
use sim_syspro::CompanyCounts;

use crate::common::{
    context, convergence, deliver, today, Sims, Stack, MAX_RECEIVE_COUNT, SF_FLOW,
};

const INVOICES: usize = 1_000;

fn company() -> CompanyCounts {
    CompanyCounts {
        customers: 25,
        invoices: INVOICES,
        payments: 0,
        suppliers: 1,
        ap_invoices: 0,
        purchase_orders: 0,
    }
}

/// Only the Salesforce flow.
fn sf_only(sims: &Sims, secret: &str) -> ConnectorConfig {
    let mut c = sims.config(secret);
    c.flows.retain(|f| f.id == SF_FLOW);
    c
}

/// Open invoices of the source as (customer, invoice number, key identity).
fn open_invoices(sims: &Sims, config: &ConnectorConfig) -> Vec<(String, String, String)> {
    let flow = config.flow(SF_FLOW).unwrap();
    let mut out = Vec::new();
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
            let s = |f: &str| r[f].as_str().unwrap_or_default().to_string();
            out.push((s("Customer"), s("Invoice"), k.id()));
        }
    }
    out
}

/// Changes every open invoice (a small payment: balance, status inputs and hash change).
fn pay_a_little(sims: &Sims, invoices: &[(String, String, String)]) -> usize {
    invoices
        .iter()
        .filter(|(c, i, _)| sims.syspro.post_payment(c, i, 1.0).is_ok())
        .count()
}

/// The local path: SQLite stores and queue, `poll_flow` then `drain` (what `sync --once` does).
struct Local {
    rt: FlowRuntime,
    queue: Arc<SqliteQueue>,
    sinks: SinkSet,
    source: Arc<dyn mlc_core::ports::Source>,
}

impl Local {
    fn new(dir: &Path, config: &ConnectorConfig, stack: &Stack) -> Local {
        let path = dir.join("state.db");
        let store = SqliteStore::open(&path).unwrap();
        let queue = Arc::new(
            SqliteQueue::open_named(
                &path,
                "salesforce",
                QueueOptions {
                    max_receive_count: MAX_RECEIVE_COUNT,
                    ..QueueOptions::default()
                },
            )
            .unwrap(),
        );
        let flow = Arc::new(config.flow(SF_FLOW).unwrap().clone());
        let clock: Arc<dyn mlc_core::Clock> = Arc::new(FixedClock::today(today()));
        let secrets = Arc::new(StaticSecrets::new(stack.secret_values()));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let state: Arc<dyn RecordStateStore> = Arc::new(store.clone());
        let rt = FlowRuntime {
            settings: Arc::new(config.settings.clone()),
            watermarks: Arc::new(store.clone()) as Arc<dyn WatermarkStore>,
            state: state.clone(),
            audit: Arc::new(store) as Arc<dyn AuditLog>,
            queue: queue.clone() as Arc<dyn Queue>,
            clock: clock.clone(),
            lease_ttl: Duration::from_secs(600),
            flow: flow.clone(),
        };
        let sink: Arc<dyn Sink> = Arc::new(
            mlc_salesforce::SalesforceSink::new(&flow, secrets.clone(), http.clone(), clock, state)
                .unwrap(),
        );
        let source: Arc<dyn mlc_core::ports::Source> =
            Arc::new(mlc_syspro::SysproSource::new(&flow.syspro, secrets, http).unwrap());
        let mut sinks = SinkSet::new();
        sinks.insert(SF_FLOW.to_string(), (rt.clone(), sink));
        Local {
            rt,
            queue,
            sinks,
            source,
        }
    }

    async fn sync(&self) {
        let r = poll_flow(&self.rt, self.source.as_ref(), "local")
            .await
            .unwrap();
        assert!(!r.skipped);
        drain(self.queue.as_ref(), &self.sinks, &DrainOptions::default())
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_changed_invoices_cost_the_same_salesforce_calls_as_locally() {
    let stack = Stack::new().await;
    // The same generated company twice (same seed): one for each path.
    let aws_sims = Sims::start(company(), 21).await;
    let local_sims = Sims::start(company(), 21).await;
    assert_eq!(aws_sims.syspro.snapshot(), local_sims.syspro.snapshot());
    let config = sf_only(&aws_sims, &stack.secret);
    let local_config = sf_only(&local_sims, &stack.secret);
    let ctx = context(config.clone(), stack.ports());
    let dir = tempfile::tempdir().unwrap();
    let local = Local::new(dir.path(), &local_config, &stack);

    // First sync on both paths.
    poll_handler(&ctx, SF_FLOW, "first").await.unwrap();
    let first = deliver(&ctx, &stack, Target::Salesforce, Duration::from_secs(30)).await;
    local.sync().await;
    let first_aws = aws_sims.salesforce.total_calls();
    let first_local = local_sims.salesforce.total_calls();

    // 1,000 changed invoices, one of which Salesforce refuses.
    let open = open_invoices(&aws_sims, &config);
    assert!(
        open.len() >= INVOICES * 9 / 10,
        "{} open invoices",
        open.len()
    );
    let changed = pay_a_little(&aws_sims, &open);
    assert_eq!(pay_a_little(&local_sims, &open), changed);
    assert!(changed >= INVOICES * 9 / 10, "{changed} changed");
    let bad = open[open.len() / 2].2.clone();
    for s in [&aws_sims, &local_sims] {
        s.salesforce.fail_record(
            &bad,
            "FIELD_CUSTOM_VALIDATION_EXCEPTION",
            "Amount below the approved threshold",
            1_000,
        );
        s.salesforce.clear_requests();
    }

    let report = poll_handler(&ctx, SF_FLOW, "second").await.unwrap();
    assert_eq!(report.queued(), changed, "{report:?}");
    let messages = stack.count(&stack.salesforce.main).await;
    let second = deliver(&ctx, &stack, Target::Salesforce, Duration::from_secs(30)).await;
    local.sync().await;
    let aws_calls = aws_sims.salesforce.total_calls();
    let local_calls = local_sims.salesforce.total_calls();
    eprintln!(
        "first sync: {first_aws} Salesforce calls via AWS ({} events, {} messages), {first_local} locally; \
         {changed} changed invoices: {aws_calls} via AWS ({messages} messages in {} events), {local_calls} locally",
        first.invocations, first.messages, second.invocations
    );
    assert!(second.largest_event <= 10 && first.largest_event <= 10);
    assert!(
        messages < changed as u64 / 50,
        "{messages} messages carry {changed} records"
    );
    assert_eq!(
        aws_calls, local_calls,
        "AWS path vs local path, {changed} changed invoices"
    );
    assert_eq!(first_aws, first_local, "AWS path vs local path, first sync");

    // Only the bad record was dead-lettered, with its reason; the rest arrived.
    assert_eq!(second.failures, 0, "{second:?}");
    assert_eq!(stack.count(&stack.salesforce.dead).await, 1);
    let dead = ctx
        .ports()
        .salesforce
        .receive_dead(10, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    let events = &dead[0].batch.events;
    assert_eq!(events.len(), 1, "one record dead-lettered, not its batch");
    assert_eq!(events[0].key.id(), bad);
    let reason = &events[0].failure.as_ref().unwrap().message;
    assert!(
        reason.contains("FIELD_CUSTOM_VALIDATION_EXCEPTION"),
        "{reason}"
    );
    let c = convergence(&aws_sims, &config, &[]);
    assert!(c.problems.is_empty(), "{:#?}", c.problems);
    assert!(aws_sims
        .salesforce
        .duplicates("Opportunity", "SYSPRO_Invoice__c")
        .is_empty());
}
