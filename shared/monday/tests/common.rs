//! Test doubles: in-memory state, budget and secrets; a flow; events; an engine-like driver.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use mlc_core::ports::{Budget, PendingWrite, RecordStateStore, Secrets, Sink, SinkError};
use mlc_core::secret::{SecretRef, SecretString};
use mlc_core::state::{AppliedMark, RecordState, SentMark, StateKey};
use mlc_core::{
    ChangeEvent, Entity, FailureKind, FlowConfig, PortResult, RecordKey, RecordOutcome,
    SourceVersion,
};
use mlc_monday::{MondaySink, SinkOptions};
use sim_monday::MondayHandle;

#[derive(Default)]
pub struct MemState(pub Mutex<HashMap<StateKey, RecordState>>);

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
        if s.applied_version.is_some_and(|v| v >= mark.version) {
            return Ok(false);
        }
        s.applied_version = Some(mark.version);
        s.applied_hash = Some(mark.hash.clone());
        s.destination_ids.extend(mark.destination_ids.clone());
        s.applied_at = Some(mark.at);
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

#[derive(Default)]
pub struct MemBudget(Mutex<HashMap<(String, DateTime<Utc>), u32>>);

#[async_trait]
impl Budget for MemBudget {
    async fn take(&self, scope: &str, ws: DateTime<Utc>, limit: u32, want: u32) -> PortResult<u32> {
        let mut m = self.0.lock().unwrap();
        let used = m.entry((scope.to_string(), ws)).or_default();
        let got = want.min(limit.saturating_sub(*used));
        *used += got;
        Ok(got)
    }
}

pub struct MemSecrets(pub String);

#[async_trait]
impl Secrets for MemSecrets {
    async fn get(&self, _r: &SecretRef) -> PortResult<SecretString> {
        Ok(SecretString::from(self.0.clone()))
    }
    async fn invalidate(&self, _r: &SecretRef) {}
}

pub const AP_BOARD: &str = "101";
pub const PO_BOARD: &str = "102";
pub const AR_BOARD: &str = "103";

pub fn status_settings() -> Value {
    json!({"labels": {"0": "open", "1": "overdue", "2": "paid", "5": "none", "6": "partial", "7": "received"}})
}

/// Three boards: AP invoices, purchase orders, AR invoices (+ payments).
pub fn create_boards(sim: &MondayHandle) {
    let cols = |extra: Vec<(&'static str, &'static str, &'static str, Value)>| {
        let mut v = vec![
            ("syspro_id", "SYSPRO ID", "text", Value::Null),
            ("status", "Status", "status", status_settings()),
            ("amount", "Amount", "numbers", Value::Null),
            ("due", "Due", "date", Value::Null),
        ];
        v.extend(extra);
        v
    };
    sim.create_board(
        AP_BOARD,
        "AP invoices",
        &cols(vec![
            ("supplier", "Supplier", "text", Value::Null),
            ("notes", "Notes", "long_text", Value::Null),
        ]),
    );
    sim.create_board(
        PO_BOARD,
        "Purchase orders",
        &cols(vec![("grn", "GRN", "status", status_settings())]),
    );
    sim.create_board(
        AR_BOARD,
        "AR invoices",
        &cols(vec![("paid_on", "Last payment", "date", Value::Null)]),
    );
    sim.add_group(AP_BOARD, "new_invoices", "New invoices");
}

pub fn flow(url: &str, cap: u32) -> FlowConfig {
    flow_with(url, cap, json!({}))
}

/// A flow over the three boards; `ap_extra` adds mappings to the AP entity.
pub fn flow_with(url: &str, cap: u32, ap_extra: Value) -> FlowConfig {
    let mut ap_map = json!({
        "status": {"from": "_Status", "column_type": "status"},
        "amount": {"from": "_Balance", "type": "number", "column_type": "numbers"},
        "due": {"from": "_DueDate", "type": "date", "column_type": "date"},
        "supplier": {"from": "SupplierName", "trim": true},
        "notes": {"template": "Invoice {Invoice} from {SupplierName}"},
    });
    for (k, v) in ap_extra.as_object().unwrap() {
        ap_map[k] = v.clone();
    }
    serde_json::from_value(json!({
        "id": "acme-monday",
        "syspro": {"base_url": "http://127.0.0.1:1", "company": "EDU1", "operator": "ADMIN", "password": "env:SYSPRO_PW"},
        "destination": {"kind": "monday", "api_url": url, "token": "env:MONDAY_TOKEN", "mutations_per_board_per_minute": cap, "timeout_secs": 5},
        "entities": [
            {"entity": "ApInvoice", "change_detection": "open-items", "mapping": ap_map,
             "monday": {"board_id": AP_BOARD, "group_id": "new_invoices", "item_name": "{Invoice} · {SupplierName}", "id_column": "syspro_id"}},
            {"entity": "PorMasterHdr", "change_detection": "rowversion",
             "mapping": {"status": {"from": "_Status", "column_type": "status"}, "amount": {"from": "_OrderValue", "type": "number"}, "grn": {"from": "_GrnStatus"}},
             "monday": {"board_id": PO_BOARD, "item_name": "PO {PurchaseOrder}", "id_column": "syspro_id"}},
            {"entity": "ArInvoice", "change_detection": "open-items",
             "mapping": {"status": {"from": "_Status"}, "amount": {"from": "_Balance", "type": "number"}, "due": {"from": "_DueDate", "type": "date"}},
             "monday": {"board_id": AR_BOARD, "item_name": "INV {Invoice}", "id_column": "syspro_id"}},
            {"entity": "ArInvoicePay", "change_detection": "rowversion",
             "mapping": {"status": {"value": "paid"}, "paid_on": {"from": "JournalDate", "type": "date"}},
             "monday": {"board_id": AR_BOARD, "item_name": "INV {Invoice}", "id_column": "syspro_id"}}
        ]
    }))
    .expect("flow config")
}

pub fn event(entity: Entity, key: &[&str], poll_seq: u64, record: Value) -> ChangeEvent {
    let key = RecordKey::composite(key);
    let mut rec = record.as_object().cloned().unwrap_or_default();
    rec.insert("_Key".into(), json!(key.id()));
    ChangeEvent {
        flow: "acme-monday".into(),
        entity,
        key,
        version: SourceVersion {
            poll_seq,
            row_version: None,
        },
        content_hash: format!("h{poll_seq}"),
        poll_id: format!("acme-monday:{poll_seq}"),
        polled_at: Utc::now(),
        record: rec,
        attempt: 0,
        failure: None,
        retry_since: None,
    }
}

pub fn ap_invoice(n: usize, poll_seq: u64, balance: f64, status: &str) -> ChangeEvent {
    event(
        Entity::ApInvoice,
        &["S001  ", &format!("AP{n:06}")],
        poll_seq,
        json!({"Supplier": "S001  ", "Invoice": format!("AP{n:06}"), "SupplierName": "Acme Steel  ",
               "_Status": status, "_Balance": format!("{balance:.2}"), "_DueDate": "2026-12-01"}),
    )
}

pub fn po(n: usize, poll_seq: u64) -> ChangeEvent {
    event(
        Entity::PorMasterHdr,
        &[&format!("PO{n:06}")],
        poll_seq,
        json!({"PurchaseOrder": format!("PO{n:06}"), "_Status": "open", "_OrderValue": 100.0 + n as f64, "_GrnStatus": "partial"}),
    )
}

pub fn ar_invoice(n: usize, poll_seq: u64) -> ChangeEvent {
    event(
        Entity::ArInvoice,
        &["C01", &format!("{n:09}"), "I"],
        poll_seq,
        json!({"Customer": "C01", "Invoice": format!("{n:09}"), "DocumentType": "I", "_Status": "open", "_Balance": "250.00", "_DueDate": "2026-12-15"}),
    )
}

pub fn sink(
    sim: &MondayHandle,
    flow: &FlowConfig,
    token: &str,
    state: Arc<MemState>,
    budget: Arc<MemBudget>,
    opts: SinkOptions,
) -> MondaySink {
    let _ = sim;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    MondaySink::new(
        flow,
        Arc::new(MemSecrets(token.into())),
        http,
        Arc::new(mlc_core::SystemClock),
        budget,
        state,
    )
    .unwrap()
    .with_options(opts)
}

pub fn fast_opts() -> SinkOptions {
    SinkOptions {
        window: Duration::from_secs(1),
        backoff_base: Duration::from_millis(5),
        backoff_cap: Duration::from_millis(40),
        ..SinkOptions::default()
    }
}

/// What the driver saw.
#[derive(Debug, Default)]
pub struct DriveReport {
    pub calls: usize,
    pub applied: usize,
    pub created: usize,
    pub permanent: Vec<(String, String)>,
    pub retries: usize,
    pub elapsed: Duration,
}

/// Plays the engine: writes, records applied state, hands retries back after their delay.
pub async fn drive(
    sink: &MondaySink,
    state: &MemState,
    events: Vec<ChangeEvent>,
    max_calls: usize,
) -> DriveReport {
    let mut rep = DriveReport::default();
    let start = std::time::Instant::now();
    let mut pending = events;
    while !pending.is_empty() && rep.calls < max_calls {
        rep.calls += 1;
        let keys: Vec<StateKey> = pending
            .iter()
            .map(|e| StateKey::new(&e.flow, e.entity, e.key.id()))
            .collect();
        let states: HashMap<StateKey, RecordState> =
            state.get_many(&keys).await.unwrap().into_iter().collect();
        let batch: Vec<PendingWrite> = pending
            .iter()
            .zip(&keys)
            .map(|(e, k)| PendingWrite {
                event: e.clone(),
                prior: states.get(k).cloned(),
            })
            .collect();
        let outcomes = sink.write(&batch).await.expect("write");
        assert_eq!(outcomes.len(), batch.len());
        let mut next = Vec::new();
        let mut wait = Duration::ZERO;
        for (w, o) in batch.into_iter().zip(outcomes) {
            match o {
                RecordOutcome::Applied {
                    created,
                    destination_ids,
                } => {
                    rep.applied += 1;
                    rep.created += usize::from(created);
                    let key = StateKey::new(&w.event.flow, w.event.entity, w.event.key.id());
                    state
                        .mark_applied(&AppliedMark {
                            key,
                            version: w.event.version,
                            hash: w.event.content_hash.clone(),
                            destination_ids,
                            at: Utc::now(),
                        })
                        .await
                        .unwrap();
                }
                RecordOutcome::Unchanged { .. } => rep.applied += 1,
                RecordOutcome::Retry { after, .. } => {
                    rep.retries += 1;
                    wait = wait.max(after.unwrap_or(Duration::from_millis(50)));
                    next.push(w.event);
                }
                RecordOutcome::Permanent(f) => rep.permanent.push((w.event.key.id(), f.message)),
            }
        }
        pending = next;
        if !pending.is_empty() {
            // The queue's visibility delay: the smallest wait that brings everything back.
            tokio::time::sleep(wait.min(Duration::from_secs(3))).await;
        }
    }
    rep.elapsed = start.elapsed();
    assert!(
        pending.is_empty(),
        "records still pending after {max_calls} calls"
    );
    rep
}

/// Board snapshot keyed by the SYSPRO id column.
pub fn by_syspro_id(sim: &MondayHandle, board: &str) -> BTreeMap<String, Vec<sim_monday::SimItem>> {
    let mut m: BTreeMap<String, Vec<sim_monday::SimItem>> = BTreeMap::new();
    for it in sim.items(board) {
        let id = it
            .values
            .get("syspro_id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        m.entry(id).or_default().push(it);
    }
    m
}

/// `sink.write`, with the records it deferred written again after the delay it gave, as the
/// queue would bring them back. The limiter defers writes near the end of a budget window (its
/// tail guard grows with observed latency), so on a loaded machine a single write now and then
/// lands in the tail: tests of other behaviour must not depend on where the clock is.
pub async fn write_settled<S: Sink + ?Sized>(
    sink: &S,
    batch: &[PendingWrite],
) -> Result<Vec<RecordOutcome>, SinkError> {
    let mut out = sink.write(batch).await?;
    for _ in 0..5 {
        let deferred: Vec<usize> = out
            .iter()
            .enumerate()
            .filter(|(_, o)| {
                matches!(o, RecordOutcome::Retry { failure, .. } if failure.kind == FailureKind::Deferred)
            })
            .map(|(i, _)| i)
            .collect();
        if deferred.is_empty() {
            break;
        }
        let wait = deferred
            .iter()
            .filter_map(|&i| match &out[i] {
                RecordOutcome::Retry { after, .. } => *after,
                _ => None,
            })
            .max()
            .unwrap_or(Duration::from_millis(50));
        tokio::time::sleep(wait).await;
        let again: Vec<PendingWrite> = deferred.iter().map(|&i| batch[i].clone()).collect();
        let settled = sink.write(&again).await?;
        for (i, o) in deferred.into_iter().zip(settled) {
            out[i] = o;
        }
    }
    Ok(out)
}
