//! Compares the simulators' final state with the source. Nothing here trusts the connector's
//! own counters: `lost`, `duplicates` and `regressions` come from what the destinations hold.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::NaiveDate;
use mlc_core::config::{ConnectorConfig, Destination};
use mlc_core::{Entity, Record};
use mlc_engine::derive::{add_derived, record_key};
use serde::Serialize;
use serde_json::Value;

use super::world::{World, AP_BOARD, PO_BOARD, SUPPLIER_BOARD};

/// The verdict of one comparison.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct Verification {
    /// Records that should be in a destination and are not.
    pub lost: usize,
    /// Extra destination records for one SYSPRO key.
    pub duplicates: usize,
    /// Destination records whose content differs from the source's final state (an older
    /// version, or a change that never arrived).
    pub regressions: usize,
    /// Source rows per entity.
    pub source: BTreeMap<String, usize>,
    /// Salesforce totals.
    pub salesforce: SalesforceCounts,
    /// Monday.com totals.
    pub monday: MondayCounts,
    /// Up to 20 examples of what differs, for people.
    pub examples: Vec<String>,
}

/// Salesforce totals.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct SalesforceCounts {
    /// Accounts in the org.
    pub accounts: usize,
    /// Opportunities in the org.
    pub opportunities: usize,
    /// API calls the org counted (token requests included).
    pub api_calls: usize,
}

/// Monday.com totals.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct MondayCounts {
    /// Items on all boards.
    pub items: usize,
    /// Item mutations executed.
    pub mutations: u64,
    /// Throttle answers the simulator gave.
    pub throttled: u64,
    /// HTTP requests received.
    pub requests: u64,
}

/// Keys that must exist in a destination because they were open at some sync (open-item
/// entities only sync what was open when polled).
#[derive(Debug, Clone, Default)]
pub struct MustExist {
    /// AR invoice identities.
    pub ar: BTreeSet<String>,
    /// AP invoice identities.
    pub ap: BTreeSet<String>,
}

impl MustExist {
    /// Adds the invoices open in the source now.
    pub fn add_open_now(&mut self, world: &World, config: &ConnectorConfig, today: NaiveDate) {
        let snap = world.syspro.snapshot();
        for (table, entity, set) in [
            ("ArInvoice", Entity::ArInvoice, &mut self.ar),
            ("ApInvoice", Entity::ApInvoice, &mut self.ap),
        ] {
            let flow = match entity {
                Entity::ArInvoice => config.flow("demo-sf"),
                _ => config.flow("demo-monday"),
            };
            let Some(flow) = flow else { continue };
            for row in snap.get(table).into_iter().flatten() {
                let mut r: Record = row.clone();
                let Some(k) = record_key(entity, &r) else {
                    continue;
                };
                if add_derived(flow, entity, &k, &mut r, today) {
                    set.insert(k.id());
                }
            }
        }
    }
}

fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn num(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn close(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => (a - b).abs() < 0.005,
        (None, None) => true,
        _ => false,
    }
}

/// Compares every destination with the source.
pub fn verify(
    world: &World,
    config: &ConnectorConfig,
    today: NaiveDate,
    must: &MustExist,
) -> Verification {
    let mut v = Verification::default();
    let snap = world.syspro.snapshot();
    for (t, rows) in &snap {
        v.source.insert(t.clone(), rows.len());
    }
    let note = |v: &mut Verification, s: String| {
        if v.examples.len() < 20 {
            v.examples.push(s);
        }
    };

    // ---- Salesforce
    if let Some(flow) = config.flow("demo-sf") {
        let stage_map = match &flow.destination {
            Destination::Salesforce(sf) => sf.stage_map.clone(),
            _ => BTreeMap::new(),
        };
        let accounts = world.salesforce.accounts();
        let opps = world.salesforce.opportunities();
        v.salesforce.accounts = accounts.len();
        v.salesforce.opportunities = opps.len();
        v.salesforce.api_calls = world.salesforce.total_calls();
        let mut by_ext: HashMap<String, Vec<&sim_salesforce::SObject>> = HashMap::new();
        for a in &accounts {
            by_ext
                .entry(a.text("SYSPRO_Customer__c").unwrap_or_default())
                .or_default()
                .push(a);
        }
        for row in snap.get("ArCustomer").into_iter().flatten() {
            let Some(k) = record_key(Entity::ArCustomer, row) else {
                continue;
            };
            let id = k.id();
            match by_ext.get(&id).map(|x| x.as_slice()).unwrap_or(&[]) {
                [] => {
                    v.lost += 1;
                    note(&mut v, format!("salesforce: no Account for customer {id}"));
                }
                [a] => {
                    let want = text(row.get("Name")).trim().to_string();
                    if a.text("Name").unwrap_or_default() != want {
                        v.regressions += 1;
                        note(
                            &mut v,
                            format!(
                                "salesforce: Account {id} named {:?}, SYSPRO says {want:?}",
                                a.text("Name")
                            ),
                        );
                    }
                }
                many => {
                    v.duplicates += many.len() - 1;
                    note(
                        &mut v,
                        format!("salesforce: {} Accounts for customer {id}", many.len()),
                    );
                }
            }
        }
        let mut opp_by_ext: HashMap<String, Vec<&sim_salesforce::SObject>> = HashMap::new();
        for o in &opps {
            opp_by_ext
                .entry(o.text("SYSPRO_Invoice__c").unwrap_or_default())
                .or_default()
                .push(o);
        }
        for row in snap.get("ArInvoice").into_iter().flatten() {
            let mut r: Record = row.clone();
            let Some(k) = record_key(Entity::ArInvoice, &r) else {
                continue;
            };
            add_derived(flow, Entity::ArInvoice, &k, &mut r, today);
            let id = k.id();
            match opp_by_ext.get(&id).map(|x| x.as_slice()).unwrap_or(&[]) {
                [] => {
                    if must.ar.contains(&id) {
                        v.lost += 1;
                        note(
                            &mut v,
                            format!("salesforce: no Opportunity for invoice {id}"),
                        );
                    }
                }
                [o] => {
                    let status = text(r.get("_Status"));
                    let want_stage = stage_map.get(&status).cloned().unwrap_or_default();
                    let stage = o.text("StageName").unwrap_or_default();
                    let amount_ok = close(num(o.fields.get("Amount")), num(r.get("CurrencyValue")));
                    if stage != want_stage || !amount_ok {
                        v.regressions += 1;
                        note(&mut v, format!("salesforce: Opportunity {id} at {stage:?}, SYSPRO status {status} → {want_stage:?} (amount ok: {amount_ok})"));
                    }
                }
                many => {
                    v.duplicates += many.len() - 1;
                    note(
                        &mut v,
                        format!("salesforce: {} Opportunities for invoice {id}", many.len()),
                    );
                }
            }
        }
    }

    // ---- Monday.com
    if let Some(flow) = config.flow("demo-monday") {
        let stats = world.monday.stats();
        v.monday.mutations = stats.mutations;
        v.monday.throttled = stats.throttles;
        v.monday.requests = stats.requests;
        let boards = [
            (SUPPLIER_BOARD, "ApSupplier", Entity::ApSupplier),
            (AP_BOARD, "ApInvoice", Entity::ApInvoice),
            (PO_BOARD, "PorMasterHdr", Entity::PorMasterHdr),
        ];
        for (board, table, entity) in boards {
            let items = world.monday.items(board);
            v.monday.items += items.len();
            let mut by_id: HashMap<String, Vec<&sim_monday::SimItem>> = HashMap::new();
            for it in &items {
                by_id
                    .entry(text(it.values.get("syspro_id")))
                    .or_default()
                    .push(it);
            }
            for row in snap.get(table).into_iter().flatten() {
                let mut r: Record = row.clone();
                let Some(k) = record_key(entity, &r) else {
                    continue;
                };
                add_derived(flow, entity, &k, &mut r, today);
                let id = k.id();
                let required = entity != Entity::ApInvoice || must.ap.contains(&id);
                match by_id.get(&id).map(|x| x.as_slice()).unwrap_or(&[]) {
                    [] => {
                        if required {
                            v.lost += 1;
                            note(
                                &mut v,
                                format!("monday: no item for {table} {id} on board {board}"),
                            );
                        }
                    }
                    [it] => {
                        let want_status = text(r.get("_Status"));
                        let got_status = it
                            .values
                            .get("status")
                            .and_then(|s| s.get("label"))
                            .map(|l| text(Some(l)))
                            .unwrap_or_default();
                        let stale = match entity {
                            Entity::ApSupplier => {
                                text(it.values.get("supplier_name"))
                                    != text(r.get("SupplierName")).trim()
                            }
                            _ => got_status != want_status,
                        };
                        if stale {
                            v.regressions += 1;
                            note(&mut v, format!("monday: {table} {id} on board {board} shows {got_status:?}, SYSPRO says {want_status:?}"));
                        }
                    }
                    many => {
                        v.duplicates += many.len() - 1;
                        note(
                            &mut v,
                            format!(
                                "monday: {} items for {table} {id} on board {board}",
                                many.len()
                            ),
                        );
                    }
                }
            }
        }
    }
    v
}
