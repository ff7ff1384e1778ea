//! The sink against the simulated org: call counts, linking, matching, faults, Bulk.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use mlc_core::config::FlowConfig;
use mlc_core::ports::{PendingWrite, RecordStateStore, Secrets, Sink, SinkError};
use mlc_core::preview::{Preview, PreviewAction};
use mlc_core::secret::{SecretRef, SecretString};
use mlc_core::state::{AppliedMark, RecordState, SentMark, StateKey};
use mlc_core::{
    ChangeEvent, Entity, PortResult, RecordKey, RecordOutcome, SourceVersion, SystemClock,
};
use mlc_salesforce::{SalesforceSink, SinkOptions};
use serde_json::{json, Value};
use sim_salesforce::{Fault, OrgHandle, OrgOptions, OrgSim};

const FLOW: &str = "acme-sf";

struct MemSecrets(HashMap<String, String>);

#[async_trait]
impl Secrets for MemSecrets {
    async fn get(&self, r: &SecretRef) -> PortResult<SecretString> {
        self.0
            .get(&r.to_string())
            .map(|s| SecretString::from(s.clone()))
            .ok_or_else(|| mlc_core::PortError::NotFound(r.to_string()))
    }
    async fn invalidate(&self, _r: &SecretRef) {}
}

#[derive(Default)]
struct MemState(Mutex<HashMap<StateKey, RecordState>>);

impl MemState {
    fn remember(&self, entity: Entity, key: &str, id: &str) {
        let mut m = self.0.lock().unwrap();
        let s = m.entry(StateKey::new(FLOW, entity, key)).or_default();
        s.destination_ids.insert("salesforce_id".into(), id.into());
    }
    fn prior(&self, entity: Entity, key: &str) -> Option<RecordState> {
        self.0
            .lock()
            .unwrap()
            .get(&StateKey::new(FLOW, entity, key))
            .cloned()
    }
}

#[async_trait]
impl RecordStateStore for MemState {
    async fn get_many(&self, keys: &[StateKey]) -> PortResult<Vec<(StateKey, RecordState)>> {
        let m = self.0.lock().unwrap();
        Ok(keys
            .iter()
            .filter_map(|k| m.get(k).map(|s| (k.clone(), s.clone())))
            .collect())
    }
    async fn mark_sent(&self, _marks: &[SentMark]) -> PortResult<()> {
        Ok(())
    }
    async fn mark_applied(&self, mark: &AppliedMark) -> PortResult<bool> {
        let mut m = self.0.lock().unwrap();
        let s = m.entry(mark.key.clone()).or_default();
        s.destination_ids.extend(mark.destination_ids.clone());
        Ok(true)
    }
    async fn unapplied(
        &self,
        _flow: &str,
        _entities: &[Entity],
        _sent_before: chrono::DateTime<chrono::Utc>,
        _limit: usize,
    ) -> PortResult<Vec<mlc_core::ports::Unapplied>> {
        // Sink tests never poll: nothing is sent through this store.
        Ok(Vec::new())
    }
    async fn open_keys(&self, _flow: &str, _entity: Entity) -> PortResult<Vec<String>> {
        Ok(Vec::new())
    }
}

fn flow(url: &str, extra: Value) -> FlowConfig {
    let mut dest = json!({
        "kind": "salesforce",
        "my_domain_url": url,
        "client_id": "env:SF_ID",
        "client_secret": "env:SF_SECRET",
        "stage_map": {"open": "Prospecting", "overdue": "Negotiation/Review", "paid": "Closed Won", "removed": "Closed Lost"},
        "aging_field": "SYSPRO_Aging__c",
        "balance_field": "SYSPRO_Balance__c",
        "timeout_secs": 5
    });
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        dest[k] = v;
    }
    serde_json::from_value(json!({
        "id": FLOW,
        "syspro": {"base_url": "http://127.0.0.1:1", "company": "EDU1", "operator": "ADMIN", "password": "env:SYSPRO_PW"},
        "entities": [
            {"entity": "ArCustomer", "change_detection": "full-scan",
             "mapping": {"Name": {"from": "Name", "trim": true}, "Phone": {"from": "Telephone", "trim": true}}},
            {"entity": "ArInvoice", "change_detection": "open-items"}
        ],
        "destination": dest
    }))
    .unwrap()
}

struct Env {
    org: OrgHandle,
    state: Arc<MemState>,
    sink: SalesforceSink,
}

fn fast() -> SinkOptions {
    SinkOptions {
        backoff_base: Duration::from_millis(5),
        backoff_cap: Duration::from_millis(20),
        bulk_poll_interval: Duration::from_millis(5),
        bulk_poll_max: Duration::from_millis(20),
        ..SinkOptions::default()
    }
}

fn make_sink(org: &OrgHandle, state: Arc<MemState>, extra: Value, secret: &str) -> SalesforceSink {
    let secrets = MemSecrets(HashMap::from([
        ("env:SF_ID".to_string(), "sim-client-id".to_string()),
        ("env:SF_SECRET".to_string(), secret.to_string()),
    ]));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    SalesforceSink::new(
        &flow(&org.url(), extra),
        Arc::new(secrets),
        http,
        Arc::new(SystemClock),
        state,
    )
    .unwrap()
    .with_options(fast())
}

async fn env_with(opts: OrgOptions, extra: Value) -> Env {
    let org = OrgSim::start(opts).await.unwrap();
    let state = Arc::new(MemState::default());
    let sink = make_sink(&org, state.clone(), extra, "sim-client-secret");
    Env { org, state, sink }
}

async fn env() -> Env {
    env_with(OrgOptions::default(), json!({})).await
}

fn event(entity: Entity, key: RecordKey, record: Value) -> ChangeEvent {
    ChangeEvent {
        flow: FLOW.into(),
        entity,
        key,
        version: SourceVersion {
            poll_seq: 1,
            row_version: None,
        },
        content_hash: "h".into(),
        poll_id: format!("{FLOW}:1"),
        polled_at: Utc::now(),
        record: record.as_object().cloned().unwrap(),
        attempt: 0,
        failure: None,
        retry_since: None,
    }
}

fn customer(code: &str, name: &str) -> ChangeEvent {
    event(
        Entity::ArCustomer,
        RecordKey::new(format!("{code:<7}")),
        json!({"Customer": format!("{code:<7}"), "Name": format!("{name}   "), "Telephone": "031 555 0100", "_Key": code}),
    )
}

fn invoice(cust: &str, inv: &str, cust_name: &str) -> ChangeEvent {
    event(
        Entity::ArInvoice,
        RecordKey::composite(&[format!("{cust:<7}"), inv.to_string(), "I".to_string()]),
        json!({"Customer": format!("{cust:<7}"), "Invoice": inv, "DocumentType": "I",
               "CurrencyValue": "   1250.50", "Customer.Name": cust_name,
               "_Status": "open", "_DueDate": "2026-12-31", "_Aging": "current", "_Balance": 1250.5}),
    )
}

fn pw(state: &MemState, e: ChangeEvent) -> PendingWrite {
    let prior = state.prior(e.entity, &e.key.id());
    PendingWrite { event: e, prior }
}

fn id_of(o: &RecordOutcome) -> String {
    match o {
        RecordOutcome::Applied {
            destination_ids, ..
        } => destination_ids["salesforce_id"].clone(),
        other => panic!("not applied: {other:?}"),
    }
}

/// Writes customers and records their Ids in state, as the engine would.
async fn sync_customers(e: &Env, n: usize) -> Vec<String> {
    let batch: Vec<PendingWrite> = (0..n)
        .map(|i| {
            pw(
                &e.state,
                customer(&format!("C{i:04}"), &format!("Customer {i} Ltd")),
            )
        })
        .collect();
    let out = e.sink.write(&batch).await.unwrap();
    let mut ids = Vec::new();
    for (p, o) in batch.iter().zip(&out) {
        let id = id_of(o);
        e.state.remember(Entity::ArCustomer, &p.event.key.id(), &id);
        ids.push(id);
    }
    ids
}

#[tokio::test]
async fn thousand_invoices_cost_two_calls_token_included() {
    let e = env().await;
    let ids = sync_customers(&e, 100).await;
    // A new process: fresh token.
    let sink = make_sink(&e.org, e.state.clone(), json!({}), "sim-client-secret");
    e.org.clear_requests();
    let batch: Vec<PendingWrite> = (0..1000)
        .map(|i| {
            pw(
                &e.state,
                invoice(
                    &format!("C{:04}", i % 100),
                    &format!("{:09}", 100000 + i),
                    "x",
                ),
            )
        })
        .collect();
    let out = sink.write(&batch).await.unwrap();
    assert_eq!(out.len(), 1000);
    let calls = e.org.total_calls();
    println!("1,000 invoices: {calls} calls (token included)");
    assert!(calls <= 2, "{:?}", e.org.requests());
    assert_eq!(e.org.token_calls(), 1);
    let opps = e.org.opportunities();
    assert_eq!(opps.len(), 1000);
    for (i, o) in out.iter().enumerate() {
        assert!(matches!(o, RecordOutcome::Applied { created: true, .. }));
        let rec = e.org.record(&id_of(o)).unwrap();
        assert_eq!(rec.text("AccountId").unwrap(), ids[i % 100]);
        assert_eq!(
            rec.text("SYSPRO_Invoice__c").unwrap(),
            format!("C{:04}|{:09}|I", i % 100, 100000 + i)
        );
        assert_eq!(rec.text("StageName").unwrap(), "Prospecting");
        assert_eq!(rec.text("CloseDate").unwrap(), "2026-12-31");
    }
}

#[tokio::test]
async fn token_expiry_mid_run_recovers_with_one_refresh() {
    let e = env().await;
    sync_customers(&e, 3).await;
    e.org.revoke_tokens();
    let batch: Vec<PendingWrite> = (0..5)
        .map(|i| pw(&e.state, invoice("C0001", &format!("{i}"), "x")))
        .collect();
    let out = e.sink.write(&batch).await.unwrap();
    assert!(
        out.iter()
            .all(|o| matches!(o, RecordOutcome::Applied { .. })),
        "{out:?}"
    );
    assert_eq!(
        e.org.token_calls(),
        2,
        "one initial token, exactly one refresh"
    );
    // Expiry by inactivity works the same way.
    e.org.set_token_ttl(Duration::from_millis(400));
    tokio::time::sleep(Duration::from_millis(600)).await;
    let out = e.sink.write(&batch).await.unwrap();
    assert!(out
        .iter()
        .all(|o| matches!(o, RecordOutcome::Applied { created: false, .. })));
    assert_eq!(e.org.token_calls(), 3);
}

#[tokio::test]
async fn nothing_to_write_costs_nothing() {
    let e = env().await;
    assert!(e.sink.write(&[]).await.unwrap().is_empty());
    let pay = event(
        Entity::ArInvoicePay,
        RecordKey::composite(&["C1", "100", "I", "1"]),
        json!({"TrnValue": 10}),
    );
    let out = e
        .sink
        .write(&[PendingWrite {
            event: pay,
            prior: None,
        }])
        .await
        .unwrap();
    assert!(matches!(out[0], RecordOutcome::Unchanged { .. }));
    assert_eq!(e.org.total_calls(), 0);
}

#[tokio::test]
async fn invoice_before_its_customer_links_with_two_requests_by_default() {
    let e = env().await;
    let out = e
        .sink
        .write(&[pw(&e.state, invoice("C0042", "000100045", "Acme Steel"))])
        .await
        .unwrap();
    let opp = e.org.record(&id_of(&out[0])).unwrap();
    let accts = e.org.accounts();
    assert_eq!(accts.len(), 1);
    assert_eq!(accts[0].text("Name").unwrap(), "Acme Steel");
    assert_eq!(accts[0].text("SYSPRO_Customer__c").unwrap(), "C0042");
    assert_eq!(opp.text("AccountId").unwrap(), accts[0].id);
    assert_eq!(opp.text("Name").unwrap(), "INV 000100045 · Acme Steel");
    // token + lookup + accounts + opportunities.
    println!(
        "invoice before customer (default path): {} calls",
        e.org.total_calls()
    );
    assert_eq!(e.org.total_calls(), 4, "{:?}", e.org.requests());
    // The customer arrives later: same Account, updated.
    let out = e
        .sink
        .write(&[pw(&e.state, customer("C0042", "Acme Steel (Pty) Ltd"))])
        .await
        .unwrap();
    assert!(matches!(
        out[0],
        RecordOutcome::Applied { created: false, .. }
    ));
    assert_eq!(id_of(&out[0]), accts[0].id);
    assert_eq!(e.org.accounts().len(), 1);
}

#[tokio::test]
async fn invoice_before_its_customer_links_in_one_composite_with_nested_reference() {
    let e = env_with(
        OrgOptions::default(),
        json!({"nested_account_reference": true}),
    )
    .await;
    let out = e
        .sink
        .write(&[pw(&e.state, invoice("C0042", "000100045", "Acme Steel"))])
        .await
        .unwrap();
    let opp = e.org.record(&id_of(&out[0])).unwrap();
    let accts = e.org.accounts();
    assert_eq!(opp.text("AccountId").unwrap(), accts[0].id);
    // token + lookup + one composite carrying the Account then the Opportunity.
    assert_eq!(e.org.total_calls(), 3, "{:?}", e.org.requests());
}

#[tokio::test]
async fn name_matching_is_exact_and_injection_safe() {
    let e = env().await;
    let tricky = r#"O'Brien "Steel" \ Works"#;
    let exact = e.org.seed("Account", json!({"Name": tricky}));
    let _case = e
        .org
        .seed("Account", json!({"Name": r#"o'brien "steel" \ works"#}));
    e.org.seed("Account", json!({"Name": "Twin Co"}));
    e.org.seed("Account", json!({"Name": "Twin Co"}));
    let other = e.org.seed(
        "Account",
        json!({"Name": "Linked Co", "SYSPRO_Customer__c": "OTHER"}),
    );
    let injection = "x' OR Name != '";
    let batch = vec![
        pw(&e.state, customer("C1", tricky)),
        pw(&e.state, customer("C2", "Twin Co")),
        pw(&e.state, customer("C3", "Brand New Co")),
        pw(&e.state, customer("C4", injection)),
        pw(&e.state, customer("C5", "Linked Co")),
    ];
    let out = e.sink.write(&batch).await.unwrap();
    // Matched by exact name: the external id is stamped on it, nothing created.
    assert!(
        matches!(out[0], RecordOutcome::Applied { created: false, .. }),
        "{:?}",
        out[0]
    );
    assert_eq!(id_of(&out[0]), exact);
    assert_eq!(
        e.org
            .record(&exact)
            .unwrap()
            .text("SYSPRO_Customer__c")
            .unwrap(),
        "C1"
    );
    match &out[1] {
        RecordOutcome::Permanent(f) => assert!(
            f.message.contains("ambiguous: 2 Accounts named"),
            "{}",
            f.message
        ),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        out[2],
        RecordOutcome::Applied { created: true, .. }
    ));
    assert!(matches!(
        out[3],
        RecordOutcome::Applied { created: true, .. }
    ));
    assert_eq!(
        e.org.record(&id_of(&out[3])).unwrap().text("Name").unwrap(),
        injection
    );
    // An Account already linked to another SYSPRO customer is never taken over.
    assert!(matches!(
        out[4],
        RecordOutcome::Applied { created: true, .. }
    ));
    assert_eq!(
        e.org
            .record(&other)
            .unwrap()
            .text("SYSPRO_Customer__c")
            .unwrap(),
        "OTHER"
    );
    assert!(e.org.duplicates("Account", "SYSPRO_Customer__c").is_empty());
    assert_eq!(e.org.accounts().len(), 5 + 3);
    // token + one lookup composite + one write composite.
    assert_eq!(e.org.total_calls(), 3, "{:?}", e.org.requests());
}

#[tokio::test]
async fn one_bad_record_in_200_fails_only_itself() {
    let e = env().await;
    sync_customers(&e, 2).await;
    let mut batch: Vec<PendingWrite> = (0..200)
        .map(|i| pw(&e.state, invoice("C0001", &format!("{i:06}"), "x")))
        .collect();
    batch[17].event.record.remove("_DueDate");
    e.org.lock_record("C0001|000042|I", 1);
    let out = e.sink.write(&batch).await.unwrap();
    match &out[17] {
        RecordOutcome::Permanent(f) => {
            assert_eq!(f.field.as_deref(), Some("CloseDate"));
            assert_eq!(f.chain[0].code.as_deref(), Some("REQUIRED_FIELD_MISSING"));
            assert!(f.message.contains("C0001|000017|I"), "{}", f.message);
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(&out[42], RecordOutcome::Retry { failure, .. } if failure.chain[0].code.as_deref() == Some("UNABLE_TO_LOCK_ROW"))
    );
    let applied = out
        .iter()
        .filter(|o| matches!(o, RecordOutcome::Applied { .. }))
        .count();
    assert_eq!(applied, 198);
}

#[tokio::test]
async fn lost_response_then_retry_creates_nothing_twice() {
    let e = env().await;
    sync_customers(&e, 5).await;
    let batch: Vec<PendingWrite> = (0..50)
        .map(|i| {
            pw(
                &e.state,
                invoice(&format!("C{:04}", i % 5), &format!("{i:06}"), "x"),
            )
        })
        .collect();
    e.org.fail_path("/composite", Fault::LostResponse, 1);
    let out = e.sink.write(&batch).await.unwrap();
    assert!(
        out.iter()
            .all(|o| matches!(o, RecordOutcome::Applied { .. })),
        "{out:?}"
    );
    e.org.fail_path("/composite", Fault::BadGateway, 1);
    let again = e.sink.write(&batch).await.unwrap();
    assert!(again
        .iter()
        .all(|o| matches!(o, RecordOutcome::Applied { created: false, .. })));
    for (a, b) in out.iter().zip(&again) {
        assert_eq!(id_of(a), id_of(b));
    }
    assert_eq!(e.org.opportunities().len(), 50);
    assert!(e
        .org
        .duplicates("Opportunity", "SYSPRO_Invoice__c")
        .is_empty());
}

#[tokio::test]
async fn server_errors_retry_inside_the_call_then_hand_back() {
    let e = env().await;
    sync_customers(&e, 1).await;
    let batch = vec![pw(&e.state, invoice("C0000", "1", "x"))];
    e.org.fail_path("/composite", Fault::ServiceUnavailable, 2);
    let out = e.sink.write(&batch).await.unwrap();
    assert!(matches!(out[0], RecordOutcome::Applied { .. }), "{out:?}");
    e.org.fail_path("/composite", Fault::InternalError, 10);
    e.org.clear_requests();
    let out = e.sink.write(&batch).await.unwrap();
    match &out[0] {
        RecordOutcome::Retry { failure, .. } => assert_eq!(failure.chain[0].status, Some(500)),
        other => panic!("{other:?}"),
    }
    assert_eq!(e.org.api_calls(), 3, "bounded attempts");
    e.org.clear_faults();
    e.org.fail_next(Fault::ConcurrentLimit, 1);
    let out = e.sink.write(&batch).await.unwrap();
    assert!(matches!(out[0], RecordOutcome::Applied { .. }));
}

#[tokio::test]
async fn daily_limit_and_reserve_stop_writing() {
    let e = env().await;
    sync_customers(&e, 1).await;
    let batch = vec![pw(&e.state, invoice("C0000", "1", "x"))];
    e.org.fail_next(Fault::RequestLimit, 1);
    match e.sink.write(&batch).await {
        Err(SinkError::DailyLimit { until, message }) => {
            assert!(until > Utc::now() + chrono::Duration::minutes(59));
            assert!(message.contains("1 hour"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // 85% spent, 20% reserve: the first answer tells, the next write stops before sending.
    e.org.set_api_usage(85_000, 100_000);
    e.sink.write(&batch).await.unwrap();
    e.org.clear_requests();
    match e.sink.write(&batch).await {
        Err(SinkError::DailyLimit { message, .. }) => {
            assert!(message.contains("reserve"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(e.org.total_calls(), 0);
}

#[tokio::test]
async fn bad_credentials_one_token_call_clear_error() {
    let org = OrgSim::start(OrgOptions::default()).await.unwrap();
    let sink = make_sink(
        &org,
        Arc::new(MemState::default()),
        json!({}),
        "wrong-secret",
    );
    match sink
        .write(&[pw(&MemState::default(), customer("C1", "A"))])
        .await
    {
        Err(SinkError::Auth(m)) => {
            assert!(
                m.contains("invalid_client") && m.contains("consumer secret"),
                "{m}"
            );
            assert!(!m.contains("wrong-secret"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(org.total_calls(), 1);
    let no_user = OrgSim::start(OrgOptions {
        run_as_user: false,
        ..OrgOptions::default()
    })
    .await
    .unwrap();
    let sink = make_sink(
        &no_user,
        Arc::new(MemState::default()),
        json!({}),
        "sim-client-secret",
    );
    match sink.ping().await {
        Err(SinkError::Auth(m)) => assert!(m.contains("Run As"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn session_not_valid_for_rest_is_an_auth_error_without_a_loop() {
    let e = env_with(
        OrgOptions {
            rest_api_enabled: false,
            ..OrgOptions::default()
        },
        json!({}),
    )
    .await;
    match e.sink.write(&[pw(&e.state, customer("C1", "A"))]).await {
        Err(SinkError::Auth(m)) => {
            assert!(m.contains("not valid for use with the REST API"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(e.org.token_calls(), 1);
    assert_eq!(e.org.total_calls(), 2);
}

#[tokio::test]
async fn ping_validates_stages_fields_and_reports_payment_mode() {
    let e = env().await;
    let lines = e.sink.ping().await.unwrap();
    let all = lines.join("\n");
    assert!(all.contains("no Invoice object"), "{all}");
    assert!(
        all.contains("Opportunity.SYSPRO_Invoice__c is an external id"),
        "{all}"
    );
    assert!(e.org.accounts().is_empty() && e.org.opportunities().is_empty());

    let org = OrgSim::start(OrgOptions {
        invoice_object: true,
        ..OrgOptions::default()
    })
    .await
    .unwrap();
    let sink = make_sink(
        &org,
        Arc::new(MemState::default()),
        json!({"stage_map": {"open": "Open Invoice", "overdue": "Overdue", "paid": "Closed Won"}}),
        "sim-client-secret",
    );
    match sink.ping().await {
        Err(SinkError::Config(m)) => {
            assert!(m.contains("stage_map.open = \"Open Invoice\""), "{m}");
            assert!(m.contains("stage_map.overdue = \"Overdue\""), "{m}");
            assert!(!m.contains("Closed Won\" is not"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    org.set_stages(&["Open Invoice", "Overdue", "Closed Won"]);
    let all = sink.ping().await.unwrap().join("\n");
    assert!(all.contains("has the standard Invoice object"), "{all}");
}

#[tokio::test]
async fn old_api_versions_and_plain_http_are_refused() {
    let org = OrgSim::start(OrgOptions::default()).await.unwrap();
    let secrets = Arc::new(MemSecrets(HashMap::new()));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let st = Arc::new(MemState::default());
    let f = flow(&org.url(), json!({"api_version": "v45.0"}));
    assert!(SalesforceSink::new(
        &f,
        secrets.clone(),
        http.clone(),
        Arc::new(SystemClock),
        st.clone()
    )
    .is_err());
    let f = flow("http://acme.my.salesforce.com", json!({}));
    assert!(SalesforceSink::new(&f, secrets, http, Arc::new(SystemClock), st).is_err());
}

#[tokio::test]
async fn bulk_path_splits_jobs_and_maps_failures_back() {
    let e = env().await;
    let sink = make_sink(
        &e.org,
        e.state.clone(),
        json!({"bulk_threshold": 500}),
        "sim-client-secret",
    )
    .with_options(SinkOptions {
        max_job_bytes: 60 * 1024,
        ..fast()
    });
    // First sync: 20 new customers and 1,000 of their invoices in one backfill batch.
    let mut batch: Vec<PendingWrite> = (0..20)
        .map(|i| {
            pw(
                &e.state,
                customer(&format!("B{i:03}"), &format!("Backfill {i}")),
            )
        })
        .collect();
    batch.extend((0..1000).map(|i| {
        pw(
            &e.state,
            invoice(&format!("B{:03}", i % 20), &format!("{i:06}"), "x"),
        )
    }));
    batch[500]
        .event
        .record
        .insert("_DueDate".into(), json!("2026-02-30"));
    let out = sink.write(&batch).await.unwrap();
    assert_eq!(out.len(), 1020);
    match &out[500] {
        RecordOutcome::Permanent(f) => assert_eq!(
            f.chain[0].code.as_deref(),
            Some("INVALID_TYPE_ON_FIELD_IN_RECORD"),
            "{f:?}"
        ),
        other => panic!("{other:?}"),
    }
    let applied = out
        .iter()
        .filter(|o| matches!(o, RecordOutcome::Applied { created: true, .. }))
        .count();
    assert_eq!(applied, 1019);
    assert_eq!(e.org.opportunities().len(), 999);
    let jobs = e
        .org
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/jobs/ingest"))
        .count();
    assert!(jobs >= 2, "opportunities split into several jobs ({jobs})");
    // The 20 customers (below the threshold) went through Composite, not a job of their own.
    assert_eq!(e.org.accounts().len(), 20);
    assert_eq!(results_gets(&e.org, "successfulResults"), jobs);
    // Only the job holding the bad row has failed results to read, and no job stopped short.
    assert_eq!(results_gets(&e.org, "failedResults"), 1);
    assert_eq!(results_gets(&e.org, "unprocessedrecords"), 0);
    let acct = e
        .org
        .find("Account", "SYSPRO_Customer__c", "B007")
        .pop()
        .unwrap();
    let opp = e
        .org
        .find("Opportunity", "SYSPRO_Invoice__c", "B007|000007|I")
        .pop()
        .unwrap();
    assert_eq!(opp.text("AccountId").unwrap(), acct.id);
}

/// `GET …/jobs/ingest/{id}/{which}/` requests the org saw.
fn results_gets(org: &OrgHandle, which: &str) -> usize {
    org.requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.trim_end_matches('/').ends_with(which))
        .count()
}

/// `POST …/jobs/ingest` requests the org saw.
fn jobs_created(org: &OrgHandle) -> usize {
    org.requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/jobs/ingest"))
        .count()
}

/// 10 customers already synced, and 400 new invoices of theirs for a sink whose
/// `bulk_threshold` (100) sends them through one Bulk job.
async fn bulk_of_400() -> (Env, SalesforceSink, Vec<PendingWrite>) {
    let e = env().await;
    sync_customers(&e, 10).await;
    let sink = make_sink(
        &e.org,
        e.state.clone(),
        json!({"bulk_threshold": 100}),
        "sim-client-secret",
    );
    let batch: Vec<PendingWrite> = (0..400)
        .map(|i| {
            pw(
                &e.state,
                invoice(&format!("C{:04}", i % 10), &format!("{i:06}"), "x"),
            )
        })
        .collect();
    (e, sink, batch)
}

#[tokio::test]
async fn bulk_failures_dead_letter_exactly_the_failed_records() {
    let (e, sink, batch) = bulk_of_400().await;
    let bad = ["C0003|000013|I", "C0007|000217|I", "C0001|000391|I"];
    for b in bad {
        e.org.fail_record(
            b,
            "FIELD_CUSTOM_VALIDATION_EXCEPTION",
            "Amount must be positive",
            1,
        );
    }
    e.org.clear_requests();
    let out = sink.write(&batch).await.unwrap();
    for (i, o) in out.iter().enumerate() {
        let ext = format!("C{:04}|{i:06}|I", i % 10);
        if bad.contains(&ext.as_str()) {
            match o {
                RecordOutcome::Permanent(f) => assert_eq!(
                    f.chain[0].code.as_deref(),
                    Some("FIELD_CUSTOM_VALIDATION_EXCEPTION"),
                    "{f:?}"
                ),
                other => panic!("{ext}: {other:?}"),
            }
        } else {
            assert!(
                matches!(o, RecordOutcome::Applied { created: true, .. }),
                "{ext}: {o:?}"
            );
            assert!(!id_of(o).is_empty());
        }
    }
    assert_eq!(jobs_created(&e.org), 1);
    assert_eq!(results_gets(&e.org, "successfulResults"), 1);
    assert_eq!(results_gets(&e.org, "failedResults"), 1);
    assert_eq!(results_gets(&e.org, "unprocessedrecords"), 0);
    assert_eq!(e.org.opportunities().len(), 397);
}

#[tokio::test]
async fn bulk_job_stopped_part_way_hands_the_rest_back() {
    let (e, sink, batch) = bulk_of_400().await;
    e.org.stop_next_job_after(150);
    e.org.clear_requests();
    let out = sink.write(&batch).await.unwrap();
    let applied = out
        .iter()
        .filter(|o| matches!(o, RecordOutcome::Applied { created: true, .. }))
        .count();
    let retried = out
        .iter()
        .filter(|o| matches!(o, RecordOutcome::Retry { .. }))
        .count();
    assert_eq!((applied, retried), (150, 250), "{out:?}");
    assert_eq!(e.org.opportunities().len(), 150);
    assert_eq!(results_gets(&e.org, "successfulResults"), 1);
    assert_eq!(results_gets(&e.org, "failedResults"), 0);
    assert_eq!(results_gets(&e.org, "unprocessedrecords"), 1);
    // The records handed back land on the next write, once each.
    let again: Vec<PendingWrite> = batch
        .iter()
        .zip(&out)
        .filter(|(_, o)| matches!(o, RecordOutcome::Retry { .. }))
        .map(|(p, _)| p.clone())
        .collect();
    let out = sink.write(&again).await.unwrap();
    assert!(out
        .iter()
        .all(|o| matches!(o, RecordOutcome::Applied { created: true, .. })));
    assert_eq!(e.org.opportunities().len(), 400);
    assert!(e
        .org
        .duplicates("Opportunity", "SYSPRO_Invoice__c")
        .is_empty());
}

#[tokio::test]
async fn bulk_job_still_running_at_the_deadline_hands_everything_back() {
    let e = env_with(
        OrgOptions {
            bulk_in_progress_polls: 1_000,
            ..OrgOptions::default()
        },
        json!({}),
    )
    .await;
    sync_customers(&e, 10).await;
    let sink = make_sink(
        &e.org,
        e.state.clone(),
        json!({"bulk_threshold": 100}),
        "sim-client-secret",
    )
    .with_options(SinkOptions {
        bulk_max_wait: Duration::from_millis(100),
        ..fast()
    });
    let batch: Vec<PendingWrite> = (0..200)
        .map(|i| {
            pw(
                &e.state,
                invoice(&format!("C{:04}", i % 10), &format!("{i:06}"), "x"),
            )
        })
        .collect();
    e.org.clear_requests();
    let out = sink.write(&batch).await.unwrap();
    assert!(out.iter().all(|o| matches!(o, RecordOutcome::Retry { .. })));
    // Nothing to read from a job that has not finished.
    assert_eq!(results_gets(&e.org, "successfulResults"), 0);
    assert_eq!(results_gets(&e.org, "failedResults"), 0);
    assert_eq!(results_gets(&e.org, "unprocessedrecords"), 0);
}

#[tokio::test]
async fn bulk_pass_sends_each_object_by_its_own_size() {
    let e = env().await;
    let sink = make_sink(
        &e.org,
        e.state.clone(),
        json!({"bulk_threshold": 50}),
        "sim-client-secret",
    );
    // Many customers, few invoices: the Accounts go in a Bulk job, the invoices through one
    // Composite call linked by the Account Ids the job reported.
    let mut batch: Vec<PendingWrite> = (0..120)
        .map(|i| {
            pw(
                &e.state,
                customer(&format!("M{i:04}"), &format!("Many {i}")),
            )
        })
        .collect();
    batch.extend((0..10).map(|i| {
        pw(
            &e.state,
            invoice(&format!("M{:04}", i * 7), &format!("{i:06}"), "x"),
        )
    }));
    e.org.clear_requests();
    let out = sink.write(&batch).await.unwrap();
    assert!(out
        .iter()
        .all(|o| matches!(o, RecordOutcome::Applied { created: true, .. })));
    assert_eq!(jobs_created(&e.org), 1);
    let composite = e
        .org
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/composite"))
        .count();
    // Lookups for the new customers, then one write of the invoices.
    assert!(composite >= 2, "{:?}", e.org.requests());
    let acct = e
        .org
        .find("Account", "SYSPRO_Customer__c", "M0063")
        .pop()
        .unwrap();
    assert_eq!(id_of(&out[63]), acct.id);
    let opp = e
        .org
        .find("Opportunity", "SYSPRO_Invoice__c", "M0063|000009|I")
        .pop()
        .unwrap();
    assert_eq!(opp.text("AccountId").unwrap(), acct.id);
}

#[tokio::test]
async fn bulk_backfill_of_100k_costs_under_a_fifth_of_a_call_per_thousand() {
    let e = env().await;
    for i in 0..1000 {
        let code = format!("K{i:04}");
        let id = e.org.seed(
            "Account",
            json!({"Name": format!("Known {i}"), "SYSPRO_Customer__c": code}),
        );
        e.state.remember(Entity::ArCustomer, &code, &id);
    }
    let batch: Vec<PendingWrite> = (0..100_000)
        .map(|i| {
            let ev = invoice(&format!("K{:04}", i % 1000), &format!("{i:09}"), "x");
            PendingWrite {
                event: ev,
                prior: None,
            }
        })
        .collect();
    let out = e.sink.write(&batch).await.unwrap();
    assert!(out
        .iter()
        .all(|o| matches!(o, RecordOutcome::Applied { created: true, .. })));
    let calls = e.org.total_calls();
    let per_1000 = calls as f64 / 100.0;
    println!("100k backfill: {calls} calls ({per_1000} per 1,000, token included)");
    assert!(per_1000 <= 0.2, "{:?}", e.org.requests());
    assert_eq!(e.org.opportunities().len(), 100_000);
    // A clean job: its status proves there is nothing failed or unprocessed to read.
    let jobs = jobs_created(&e.org);
    assert_eq!(results_gets(&e.org, "successfulResults"), jobs);
    assert_eq!(results_gets(&e.org, "failedResults"), 0);
    assert_eq!(results_gets(&e.org, "unprocessedrecords"), 0);
}

#[derive(Debug)]
struct StepClock(Mutex<chrono::DateTime<Utc>>);

impl mlc_core::Clock for StepClock {
    fn now(&self) -> chrono::DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

#[tokio::test]
async fn token_is_refreshed_proactively_after_the_session_timeout() {
    let org = OrgSim::start(OrgOptions::default()).await.unwrap();
    let clock = Arc::new(StepClock(Mutex::new(Utc::now())));
    let secrets = MemSecrets(HashMap::from([
        ("env:SF_ID".to_string(), "sim-client-id".to_string()),
        ("env:SF_SECRET".to_string(), "sim-client-secret".to_string()),
    ]));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let state = Arc::new(MemState::default());
    let sink = SalesforceSink::new(
        &flow(&org.url(), json!({})),
        Arc::new(secrets),
        http,
        clock.clone(),
        state.clone(),
    )
    .unwrap()
    .with_options(fast());
    let batch = vec![pw(&state, customer("C1", "A"))];
    sink.write(&batch).await.unwrap();
    sink.write(&batch).await.unwrap();
    assert_eq!(org.token_calls(), 1);
    *clock.0.lock().unwrap() += chrono::Duration::minutes(121);
    sink.write(&batch).await.unwrap();
    assert_eq!(org.token_calls(), 2);
    assert!(org.requests().iter().all(|r| r.status != 401));
}

#[tokio::test]
async fn chaos_converges_without_duplicates() {
    let e = env().await;
    sync_customers(&e, 10).await;
    let batch: Vec<PendingWrite> = (0..300)
        .map(|i| {
            pw(
                &e.state,
                invoice(&format!("C{:04}", i % 10), &format!("{i:06}"), "x"),
            )
        })
        .collect();
    e.org.set_chaos(0.3, 42);
    let mut pending: Vec<usize> = (0..batch.len()).collect();
    for _ in 0..30 {
        if pending.is_empty() {
            break;
        }
        let sub: Vec<PendingWrite> = pending.iter().map(|&i| batch[i].clone()).collect();
        let out = e.sink.write(&sub).await.unwrap();
        pending = pending
            .into_iter()
            .zip(out)
            .filter(|(_, o)| !matches!(o, RecordOutcome::Applied { .. }))
            .map(|(i, o)| {
                assert!(matches!(o, RecordOutcome::Retry { .. }), "{o:?}");
                i
            })
            .collect();
    }
    assert!(pending.is_empty());
    e.org.clear_faults();
    assert_eq!(e.org.opportunities().len(), 300);
    assert!(e
        .org
        .duplicates("Opportunity", "SYSPRO_Invoice__c")
        .is_empty());
}

/// The event of an invoice gone from SYSPRO, as the poll sends it: its key and the status.
fn removed_invoice(cust: &str, inv: &str) -> ChangeEvent {
    event(
        Entity::ArInvoice,
        RecordKey::composite(&[format!("{cust:<7}"), inv.to_string(), "I".to_string()]),
        json!({"Customer": format!("{cust:<7}"), "Invoice": inv, "DocumentType": "I", "_Status": "removed"}),
    )
}

#[tokio::test]
async fn a_removed_invoice_changes_only_its_stage() {
    let e = env().await;
    sync_customers(&e, 1).await;
    let out = e
        .sink
        .write(&[pw(&e.state, invoice("C0000", "000100001", "x"))])
        .await
        .unwrap();
    let id = id_of(&out[0]);
    e.state
        .remember(Entity::ArInvoice, "C0000|000100001|I", &id);
    let before = e.org.record(&id).unwrap();

    let out = e
        .sink
        .write(&[pw(&e.state, removed_invoice("C0000", "000100001"))])
        .await
        .unwrap();
    assert!(
        matches!(out[0], RecordOutcome::Applied { created: false, .. }),
        "{out:?}"
    );
    let after = e.org.record(&id).unwrap();
    assert_eq!(after.text("StageName").unwrap(), "Closed Lost");
    for f in [
        "Name",
        "Amount",
        "CloseDate",
        "SYSPRO_Balance__c",
        "SYSPRO_Aging__c",
        "AccountId",
    ] {
        assert_eq!(
            after.fields.get(f),
            before.fields.get(f),
            "{f} kept its value"
        );
    }
    assert_eq!(after.text("Amount").as_deref(), Some("1250.5"));

    // A flow that maps no stage for `removed`: nothing is written at all.
    let sink = make_sink(
        &e.org,
        e.state.clone(),
        json!({"stage_map": {"open": "Prospecting", "overdue": "Negotiation/Review", "paid": "Closed Won"}}),
        "sim-client-secret",
    );
    e.org.clear_requests();
    let out = sink
        .write(&[pw(&e.state, removed_invoice("C0000", "000100001"))])
        .await
        .unwrap();
    assert!(matches!(out[0], RecordOutcome::Unchanged { .. }), "{out:?}");
    assert_eq!(
        e.org.record(&id).unwrap().text("StageName").unwrap(),
        "Closed Lost"
    );
    assert_eq!(e.org.total_calls(), 0, "{:?}", e.org.requests());
}

#[tokio::test]
async fn an_invoice_whose_customer_is_not_in_syspro_waits_then_links_to_the_real_account() {
    let e = env().await;
    // The poll's master lookup found no ArCustomer row: no `Customer.Name`.
    let mut orphan = invoice("C0077", "000100077", "x");
    orphan.record.remove("Customer.Name");
    let out = e.sink.write(&[pw(&e.state, orphan.clone())]).await.unwrap();
    match &out[0] {
        RecordOutcome::Retry { failure, .. } => {
            assert!(
                failure.message.contains("waiting for customer C0077"),
                "{failure:?}"
            )
        }
        other => panic!("expected to wait, got {other:?}"),
    }
    assert!(e.org.accounts().is_empty(), "no Account named after a code");
    assert!(e.org.opportunities().is_empty());

    // The customer is posted in SYSPRO and synced: the invoice then links to its Account.
    let ids = {
        let out = e
            .sink
            .write(&[pw(&e.state, customer("C0077", "Umhlanga Cycles"))])
            .await
            .unwrap();
        let id = id_of(&out[0]);
        e.state.remember(Entity::ArCustomer, "C0077", &id);
        id
    };
    let out = e.sink.write(&[pw(&e.state, orphan)]).await.unwrap();
    let opp = e.org.record(&id_of(&out[0])).unwrap();
    assert_eq!(opp.text("AccountId").unwrap(), ids);
    let accts = e.org.accounts();
    assert_eq!(accts.len(), 1);
    assert_eq!(accts[0].text("Name").unwrap(), "Umhlanga Cycles");
}

fn field<'a>(p: &'a Preview, name: &str) -> &'a mlc_core::preview::FieldPreview {
    p.fields
        .iter()
        .find(|f| f.field == name)
        .unwrap_or_else(|| panic!("no field {name} in {p:?}"))
}

/// Each preview field's `new` is exactly what the org stored from `write`.
fn assert_payload_was_written(org: &OrgHandle, p: &Preview, id: &str) {
    let rec = org.record(id).unwrap();
    for f in &p.fields {
        assert_eq!(
            rec.fields.get(&f.field),
            Some(&f.new),
            "{}: preview and write differ",
            f.field
        );
    }
}

fn soql_queries(org: &OrgHandle) -> usize {
    org.requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.ends_with("/query"))
        .count()
}

#[tokio::test]
async fn preview_shows_create_then_nothing_after_write_then_the_drifted_amount() {
    let e = env().await;
    let batch = || {
        vec![
            pw(&e.state, customer("C0042", "Berea Tools")),
            pw(&e.state, invoice("C0042", "000100042", "Berea Tools")),
        ]
    };

    // Nothing in the org yet: both would be created, with the values the mapping makes.
    let before = e.sink.preview(&batch()).await.unwrap();
    assert_eq!(before.len(), 2);
    assert_eq!(before[0].action, PreviewAction::Create, "{:?}", before[0]);
    assert_eq!(before[1].action, PreviewAction::Create, "{:?}", before[1]);
    assert_eq!(before[0].destination, "Account");
    assert_eq!(field(&before[0], "Name").new, json!("Berea Tools"));
    assert_eq!(field(&before[1], "Amount").new, json!(1250.5));
    assert_eq!(field(&before[1], "StageName").new, json!("Prospecting"));
    assert!(field(&before[1], "Amount").current.is_none());
    assert!(e.org.accounts().is_empty() && e.org.opportunities().is_empty());

    // Written by `write`: the org holds exactly the previewed payload, and the preview now
    // says there is nothing to write.
    let out = e.sink.write(&batch()).await.unwrap();
    let (acct, opp) = (id_of(&out[0]), id_of(&out[1]));
    e.state.remember(Entity::ArCustomer, "C0042", &acct);
    assert_payload_was_written(&e.org, &before[0], &acct);
    assert_payload_was_written(&e.org, &before[1], &opp);
    e.org.clear_requests();
    let after = e.sink.preview(&batch()).await.unwrap();
    assert_eq!(after[0].action, PreviewAction::Nothing, "{:?}", after[0]);
    assert_eq!(after[1].action, PreviewAction::Nothing, "{:?}", after[1]);
    assert_eq!(after[0].destination_id.as_deref(), Some(acct.as_str()));
    assert_eq!(after[1].destination_id.as_deref(), Some(opp.as_str()));
    assert_eq!(field(&after[1], "Amount").current, Some(json!(1250.5)));
    assert_eq!(soql_queries(&e.org), 2, "one query per object");
    assert_eq!(e.org.api_calls(), 2, "{:?}", e.org.requests());

    // Someone edits the Amount in Salesforce: the preview shows that one field would change.
    assert!(e.org.edit(&opp, json!({"Amount": 999})));
    let drift = e.sink.preview(&batch()).await.unwrap();
    assert_eq!(
        drift[1].action,
        PreviewAction::Update {
            fields: vec!["Amount".into()]
        }
    );
    let amount = field(&drift[1], "Amount");
    assert!(amount.changed);
    assert_eq!(amount.current, Some(json!(999)));
    assert_eq!(drift[0].action, PreviewAction::Nothing);
    assert_eq!(
        e.org.opportunities()[0].fields["Amount"],
        json!(999),
        "preview writes nothing"
    );
}

#[tokio::test]
async fn preview_matches_by_exact_name_and_escapes_values() {
    let e = env().await;
    // An Account made by hand before the connector, with a quote in its name.
    let id = e
        .org
        .seed("Account", json!({"Name": "O'Brien \"Steel\" \\ Co"}));
    let batch = vec![pw(&e.state, customer("C0007", "O'Brien \"Steel\" \\ Co"))];
    let p = e.sink.preview(&batch).await.unwrap();
    assert_eq!(
        p[0].destination_id.as_deref(),
        Some(id.as_str()),
        "{:?}",
        p[0]
    );
    assert_eq!(
        p[0].action,
        PreviewAction::Update {
            fields: vec!["SYSPRO_Customer__c".into(), "Phone".into()]
        },
        "the first sync stamps the external id (and the phone) on the Account it matched by name"
    );
    // The sync does what the preview said: it updates that Account, creates none.
    let out = e.sink.write(&batch).await.unwrap();
    assert_eq!(id_of(&out[0]), id);
    assert_eq!(e.org.accounts().len(), 1);

    // Two Accounts with one name: the sync refuses to guess, and so does the preview.
    e.org.seed("Account", json!({"Name": "Twin Ltd"}));
    e.org.seed("Account", json!({"Name": "Twin Ltd"}));
    let p = e
        .sink
        .preview(&[pw(&e.state, customer("C0008", "Twin Ltd"))])
        .await
        .unwrap();
    assert!(
        matches!(&p[0].action, PreviewAction::Refuse { reason } if reason.contains("ambiguous")),
        "{:?}",
        p[0]
    );
}

#[tokio::test]
async fn preview_of_a_field_the_org_lacks_is_a_configuration_error() {
    let e = env_with(
        OrgOptions::default(),
        json!({"aging_field": "No_Such_Field__c"}),
    )
    .await;
    let err = e
        .sink
        .preview(&[pw(&e.state, invoice("C0001", "000000001", "x"))])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SinkError::Config(m) if m.contains("No_Such_Field__c")),
        "{err}"
    );
}
