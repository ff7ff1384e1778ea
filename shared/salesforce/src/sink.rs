//! The sink: a batch of change events → Accounts and Opportunities, one outcome per input.
//!
//! Steady state: one Composite request per ≤ 1,000 records (≤ 5 sObject Collections of ≤ 200),
//! Accounts before Opportunities. Backfills above `bulk_threshold`: Bulk API 2.0 jobs for each
//! object whose part of the batch is above the threshold, Composite for the other.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mlc_core::config::{Destination, EntityConfig, FlowConfig, SalesforceConnection};
use mlc_core::mapping::is_removed;
use mlc_core::ports::{PendingWrite, RecordStateStore, Secrets, Sink, SinkError};
use mlc_core::preview::Preview;
use mlc_core::state::StateKey;
use mlc_core::{ChangeEvent, Clock, Entity, ErrorLink, Failure, Record, RecordOutcome};
use reqwest::Method;
use serde_json::{json, Value};

use crate::auth::TokenManager;
use crate::bulk::{self, BulkSettings, Load, RowResult};
use crate::error::{Result, SalesforceError};
use crate::request_builder::{
    self as rb, collection_update_body, collection_upsert_body, composite_body, data_path,
    SubRequest, Target, COLLECTION_MAX, COMPOSITE_MAX_COLLECTIONS,
};
use crate::retry::{parse_errors, record_failure, Backoff};
use crate::service::{ReqBody, Service};

mod preview;

/// The destination-id key of record state.
pub const SALESFORCE_ID: &str = "salesforce_id";

/// Tuning that tests and operators may change; defaults suit a Lambda.
#[derive(Debug, Clone, Copy)]
pub struct SinkOptions {
    /// Attempts per request on 5xx / time-outs (first try included).
    pub max_attempts: u32,
    /// First backoff ceiling.
    pub backoff_base: Duration,
    /// Largest backoff (a Lambda must not sleep long: the queue brings records back).
    pub backoff_cap: Duration,
    /// Bulk: first wait between job status polls.
    pub bulk_poll_interval: Duration,
    /// Bulk: longest wait between polls.
    pub bulk_poll_max: Duration,
    /// Bulk: stop waiting for a job after this long.
    pub bulk_max_wait: Duration,
    /// Bulk: largest CSV per job.
    pub max_job_bytes: usize,
}

impl Default for SinkOptions {
    fn default() -> Self {
        SinkOptions {
            max_attempts: 3,
            backoff_base: Duration::from_millis(250),
            backoff_cap: Duration::from_secs(2),
            bulk_poll_interval: Duration::from_secs(2),
            bulk_poll_max: Duration::from_secs(20),
            bulk_max_wait: Duration::from_secs(600),
            max_job_bytes: 90 * 1024 * 1024,
        }
    }
}

/// Writes a flow's customers and invoices to Salesforce.
pub struct SalesforceSink {
    flow: String,
    conn: SalesforceConnection,
    customer_ec: Option<EntityConfig>,
    invoice_ec: Option<EntityConfig>,
    accounts: Target,
    opps: Target,
    version: String,
    svc: Service,
    state: Arc<dyn RecordStateStore>,
    opts: SinkOptions,
}

impl std::fmt::Debug for SalesforceSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SalesforceSink({}, {})",
            self.flow, self.conn.my_domain_url
        )
    }
}

/// An Account to write (or only to know).
#[derive(Debug, Clone)]
struct AccountItem {
    ext: String,
    fields: Record,
    inputs: Vec<usize>,
    /// The Id, when record state or the lookup knows it.
    known_id: Option<String>,
    /// Matched by legal name: update this Id and stamp the external id on it.
    stamp_id: Option<String>,
    /// Only known from an invoice: created from the customer's SYSPRO name when no Account
    /// exists; when SYSPRO has no such customer, never created (the invoice waits).
    phantom: bool,
    /// Nothing to write (phantom found by external id).
    skip: bool,
}

#[derive(Debug, Clone)]
struct OppItem {
    ext: String,
    fields: Record,
    inputs: Vec<usize>,
    customer: String,
}

#[derive(Debug, Clone)]
enum Unit {
    AccountUpsert(Vec<usize>),
    AccountStamp(Vec<usize>),
    Opp(Vec<usize>),
}

/// Work state of one `write` call.
struct Work {
    outcomes: Vec<Option<RecordOutcome>>,
    accts: Vec<AccountItem>,
    opps: Vec<OppItem>,
    /// customer → Account Id (known or just written).
    acct_ids: HashMap<String, String>,
    /// customer → why its Account could not be written or resolved.
    acct_fail: HashMap<String, (bool, Failure)>,
    /// Customers whose invoices wait when Salesforce has no Account for them yet.
    wait_for: HashSet<String>,
}

impl Work {
    fn set(&mut self, inputs: &[usize], o: RecordOutcome) {
        for &i in inputs {
            self.outcomes[i] = Some(o.clone());
        }
    }
}

/// What `write` sends for one record, before the Account link: built by
/// [`SalesforceSink::payload`] for `write` and `preview` alike, so a preview shows exactly
/// what a sync sends.
#[derive(Debug, Clone)]
enum Payload {
    /// Account fields, upserted by external id (the external id itself excluded).
    Account(Record),
    /// Opportunity fields, upserted by external id (the external id and `AccountId`
    /// excluded: the link is resolved at write time).
    Opportunity(Record),
    /// A removal the flow configures no field for: the destination keeps every value.
    NothingToRemove,
    /// A payment writes nothing by itself: the invoice's own balance change (polled as
    /// `ArInvoice`) moves its Opportunity's stage and balance; the standard `Invoice` object
    /// is update-only and no flow maps it yet.
    Payment,
    /// The record cannot be written (mapping error, entity not written to Salesforce).
    Refused(Failure),
}

/// A removal the flow configures no field for: the destination record keeps every value.
fn nothing_to_remove(prior_id: Option<String>) -> RecordOutcome {
    RecordOutcome::Unchanged {
        destination_ids: prior_id
            .map(|id| BTreeMap::from([(SALESFORCE_ID.to_string(), id)]))
            .unwrap_or_default(),
    }
}

fn applied(created: bool, id: &str) -> RecordOutcome {
    RecordOutcome::Applied {
        created,
        destination_ids: BTreeMap::from([(SALESFORCE_ID.to_string(), id.to_string())]),
    }
}

fn failed(retry: bool, f: Failure) -> RecordOutcome {
    if retry {
        RecordOutcome::Retry {
            after: Some(Duration::from_secs(30)),
            failure: f,
        }
    } else {
        RecordOutcome::Permanent(f)
    }
}

/// Parses `v62.0` into 62, refusing versions below 46 (older versions answer upserts with 204
/// and no body, so created/updated would be unknowable).
pub fn parse_api_version(v: &str) -> std::result::Result<u32, String> {
    let n = v
        .trim()
        .strip_prefix('v')
        .and_then(|x| x.split('.').next())
        .and_then(|x| x.parse::<u32>().ok())
        .ok_or_else(|| format!("api_version {v:?}: expected the form v62.0"))?;
    if n < 46 {
        return Err(format!("api_version {v}: versions below v46.0 are not supported (upserts answer 204 without a body)"));
    }
    Ok(n)
}

impl SalesforceSink {
    /// A sink for a flow whose destination is Salesforce.
    pub fn new(
        flow: &FlowConfig,
        secrets: Arc<dyn Secrets>,
        http: reqwest::Client,
        clock: Arc<dyn Clock>,
        state: Arc<dyn RecordStateStore>,
    ) -> Result<Self> {
        let Destination::Salesforce(conn) = &flow.destination else {
            return Err(SalesforceError::Config(format!(
                "flow {} does not write to Salesforce",
                flow.id
            )));
        };
        let n = parse_api_version(&conn.api_version).map_err(SalesforceError::Config)?;
        let version = format!("v{n}.0");
        crate::check_url("my_domain_url", &conn.my_domain_url).map_err(SalesforceError::Config)?;
        if let Some(u) = &conn.instance_url {
            crate::check_url("instance_url", u).map_err(SalesforceError::Config)?;
        }
        let opts = SinkOptions::default();
        let timeout = Duration::from_secs(conn.timeout_secs.max(1));
        let auth = TokenManager::new(
            http.clone(),
            &conn.my_domain_url,
            conn.client_id.clone(),
            conn.client_secret.clone(),
            secrets,
            conn.instance_url
                .as_ref()
                .map(|u| u.trim_end_matches('/').to_string()),
            Duration::from_secs(conn.session_timeout_minutes.max(1) * 60),
            clock.clone(),
            timeout,
        );
        let svc = Service::new(
            http,
            auth,
            timeout,
            Backoff {
                max_attempts: opts.max_attempts,
                base: opts.backoff_base,
                cap: opts.backoff_cap,
            },
            conn.daily_reserve_percent,
            clock,
        );
        let customer_ec = flow.entity(Entity::ArCustomer).cloned();
        let invoice_ec = flow.entity(Entity::ArInvoice).cloned();
        Ok(SalesforceSink {
            flow: flow.id.clone(),
            accounts: Target::of(customer_ec.as_ref(), rb::ACCOUNT),
            opps: Target::of(invoice_ec.as_ref(), rb::OPPORTUNITY),
            customer_ec,
            invoice_ec,
            conn: conn.clone(),
            version,
            svc,
            state,
            opts,
        })
    }

    /// Replaces the tuning.
    pub fn with_options(mut self, opts: SinkOptions) -> Self {
        self.opts = opts;
        self.svc.set_backoff(Backoff {
            max_attempts: opts.max_attempts.max(1),
            base: opts.backoff_base,
            cap: opts.backoff_cap,
        });
        self
    }

    /// The last `(used, max)` of the org's daily allowance, when seen.
    pub fn api_usage(&self) -> Option<(u64, u64)> {
        self.svc.usage()
    }

    /// API requests sent so far (retries included) and token requests.
    pub fn calls(&self) -> (u64, u64) {
        (self.svc.calls(), self.svc.auth.fetches())
    }

    fn data(&self) -> String {
        data_path(&self.version)
    }

    /// The payload of one record: the one mapping `write` and `preview` share.
    fn payload(&self, ev: &ChangeEvent) -> Payload {
        let (fields, account) = match ev.entity {
            Entity::ArCustomer => (
                rb::account_fields(self.customer_ec.as_ref(), &self.accounts, ev),
                true,
            ),
            Entity::ArInvoice => (
                rb::opportunity_fields(&self.conn, self.invoice_ec.as_ref(), &self.opps, ev),
                false,
            ),
            Entity::ArInvoicePay => return Payload::Payment,
            other => {
                return Payload::Refused(Failure::permanent(format!(
                    "{}: entity {other} is not written to Salesforce (only ArCustomer, ArInvoice, ArInvoicePay)",
                    ev.label()
                )))
            }
        };
        match fields {
            Ok(f) if f.is_empty() && is_removed(&ev.record) => Payload::NothingToRemove,
            Ok(f) if account => Payload::Account(f),
            Ok(f) => Payload::Opportunity(f),
            Err(f) => Payload::Refused(f),
        }
    }

    /// Builds items from the batch; records that cannot be mapped get their outcome now.
    fn plan(&self, batch: &[PendingWrite]) -> Work {
        let mut w = Work {
            outcomes: vec![None; batch.len()],
            accts: Vec::new(),
            opps: Vec::new(),
            acct_ids: HashMap::new(),
            acct_fail: HashMap::new(),
            wait_for: HashSet::new(),
        };
        let mut acct_ix: HashMap<String, usize> = HashMap::new();
        let mut opp_ix: HashMap<String, usize> = HashMap::new();
        for (i, pw) in batch.iter().enumerate() {
            let ev = &pw.event;
            let ext = ev.key.id();
            let prior_id = pw
                .prior
                .as_ref()
                .and_then(|p| p.destination_ids.get(SALESFORCE_ID))
                .cloned();
            match self.payload(ev) {
                Payload::NothingToRemove => w.outcomes[i] = Some(nothing_to_remove(prior_id)),
                Payload::Account(fields) => {
                    if let Some(id) = &prior_id {
                        w.acct_ids.insert(ext.clone(), id.clone());
                    }
                    // The same customer twice in a batch: write the last version once.
                    match acct_ix.get(&ext) {
                        Some(&j) => {
                            w.accts[j].fields = fields;
                            w.accts[j].inputs.push(i);
                            if w.accts[j].known_id.is_none() {
                                w.accts[j].known_id = prior_id;
                            }
                        }
                        None => {
                            acct_ix.insert(ext.clone(), w.accts.len());
                            w.accts.push(AccountItem {
                                ext,
                                fields,
                                inputs: vec![i],
                                known_id: prior_id,
                                stamp_id: None,
                                phantom: false,
                                skip: false,
                            });
                        }
                    }
                }
                Payload::Opportunity(fields) => {
                    let customer = rb::invoice_customer(ev);
                    match opp_ix.get(&ext) {
                        Some(&j) => {
                            w.opps[j].fields = fields;
                            w.opps[j].inputs.push(i);
                        }
                        None => {
                            opp_ix.insert(ext.clone(), w.opps.len());
                            w.opps.push(OppItem {
                                ext,
                                fields,
                                inputs: vec![i],
                                customer,
                            });
                        }
                    }
                }
                Payload::Payment => {
                    w.outcomes[i] = Some(RecordOutcome::Unchanged {
                        destination_ids: BTreeMap::new(),
                    })
                }
                Payload::Refused(f) => w.outcomes[i] = Some(RecordOutcome::Permanent(f)),
            }
        }
        // Invoices whose customer is not in the batch: a phantom Account entry, written only if
        // Salesforce has none (invoice before its customer).
        for o in 0..w.opps.len() {
            let cust = w.opps[o].customer.clone();
            if acct_ix.contains_key(&cust) {
                continue;
            }
            let first = w.opps[o].inputs[0];
            let name = batch[first]
                .event
                .record
                .get("Customer.Name")
                .and_then(|v| v.as_str())
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty());
            if name.is_none() {
                // The customer is not in SYSPRO (its master lookup found no row): no Account
                // is made up from a code; the invoice waits and links once the real one exists.
                w.wait_for.insert(cust.clone());
            }
            acct_ix.insert(cust.clone(), w.accts.len());
            w.accts.push(AccountItem {
                ext: cust.clone(),
                fields: rb::minimal_account(&cust, name.as_deref()),
                inputs: Vec::new(),
                known_id: None,
                stamp_id: None,
                phantom: true,
                skip: false,
            });
        }
        w
    }

    /// Fills Account Ids from record state for customers not in the batch.
    async fn resolve_from_state(&self, w: &mut Work) -> Result<()> {
        let keys: Vec<StateKey> = w
            .accts
            .iter()
            .filter(|a| a.phantom && a.known_id.is_none())
            .map(|a| StateKey::new(self.flow.clone(), Entity::ArCustomer, a.ext.clone()))
            .collect();
        if keys.is_empty() {
            return Ok(());
        }
        let found = self.state.get_many(&keys).await.map_err(|e| {
            if e.is_transient() {
                SalesforceError::Transient {
                    link: ErrorLink {
                        message: format!("reading record state: {e}"),
                        ..Default::default()
                    },
                }
            } else {
                SalesforceError::Config(format!("reading record state: {e}"))
            }
        })?;
        let ids: HashMap<String, String> = found
            .into_iter()
            .filter_map(|(k, s)| {
                s.destination_ids
                    .get(SALESFORCE_ID)
                    .map(|id| (k.key, id.clone()))
            })
            .collect();
        for a in w.accts.iter_mut().filter(|a| a.phantom) {
            if let Some(id) = ids.get(&a.ext) {
                a.known_id = Some(id.clone());
                a.skip = true;
                w.acct_ids.insert(a.ext.clone(), id.clone());
            }
        }
        Ok(())
    }

    /// First sync of customers: find their Accounts by external id, else by exact legal name.
    /// One Composite call carries up to five lookup queries.
    async fn match_accounts(&self, w: &mut Work) -> Result<()> {
        let todo: Vec<usize> = (0..w.accts.len())
            .filter(|&j| w.accts[j].known_id.is_none() && !w.accts[j].skip)
            .collect();
        if todo.is_empty() {
            return Ok(());
        }
        let exts: Vec<String> = todo.iter().map(|&j| w.accts[j].ext.clone()).collect();
        let names: BTreeSet<String> = todo
            .iter()
            .filter_map(|&j| {
                w.accts[j]
                    .fields
                    .get("Name")
                    .and_then(|v| v.as_str())
                    .map(String::from)
            })
            .filter(|n| !n.is_empty())
            .collect();
        let names: Vec<String> = names.into_iter().collect();
        let queries = rb::lookup_queries(&self.accounts, &exts, &names);
        let mut rows: Vec<Value> = Vec::new();
        for group in queries.chunks(COMPOSITE_MAX_COLLECTIONS) {
            let subs: Vec<SubRequest> = group
                .iter()
                .enumerate()
                .map(|(k, q)| SubRequest {
                    method: "GET",
                    url: rb::query_url(&self.version, q),
                    reference: format!("q{k}"),
                    body: None,
                })
                .collect();
            self.svc.check_reserve()?;
            let resp = self
                .svc
                .call(
                    Method::POST,
                    &format!("{}/composite", self.data()),
                    &ReqBody::Json(composite_body(&subs)),
                )
                .await?;
            if resp.status >= 300 {
                return Err(SalesforceError::Rejected { link: resp.link() });
            }
            let body = resp.json();
            for sub in body["compositeResponse"]
                .as_array()
                .cloned()
                .unwrap_or_default()
            {
                let status = sub["httpStatusCode"].as_u64().unwrap_or(0) as u16;
                if status >= 300 {
                    let errs = parse_errors(&sub["body"]);
                    let first = errs.first().cloned().unwrap_or_default();
                    return Err(SalesforceError::Rejected {
                        link: ErrorLink {
                            status: Some(status),
                            code: Some(first.code),
                            message: format!("Account lookup query failed: {}", first.message),
                            request_id: None,
                        },
                    });
                }
                let mut page = sub["body"].clone();
                loop {
                    rows.extend(page["records"].as_array().cloned().unwrap_or_default());
                    let next = page["nextRecordsUrl"].as_str().map(String::from);
                    match next {
                        Some(url) if page["done"] != json!(true) => {
                            let r = self.svc.call(Method::GET, &url, &ReqBody::None).await?;
                            if r.status >= 300 {
                                return Err(SalesforceError::Rejected { link: r.link() });
                            }
                            page = r.json();
                        }
                        _ => break,
                    }
                }
            }
        }
        let ext_f = self.accounts.ext_field.clone();
        let by_ext: HashMap<String, String> = rows
            .iter()
            .filter_map(|r| {
                Some((
                    r[&ext_f].as_str()?.to_string(),
                    r["Id"].as_str()?.to_string(),
                ))
            })
            .collect();
        // Name candidates: exact (case-sensitive) matches not yet linked to any SYSPRO customer.
        let mut by_name: HashMap<String, Vec<String>> = HashMap::new();
        for r in &rows {
            let linked = r[&ext_f].as_str().map(|s| !s.is_empty()).unwrap_or(false);
            if let (Some(n), Some(id), false) = (r["Name"].as_str(), r["Id"].as_str(), linked) {
                by_name
                    .entry(n.to_string())
                    .or_default()
                    .push(id.to_string());
            }
        }
        let mut claimed: HashMap<String, String> = HashMap::new();
        for &j in &todo {
            let ext = w.accts[j].ext.clone();
            if let Some(id) = by_ext.get(&ext) {
                w.accts[j].known_id = Some(id.clone());
                w.acct_ids.insert(ext.clone(), id.clone());
                if w.accts[j].phantom {
                    w.accts[j].skip = true;
                }
                continue;
            }
            let name = w.accts[j]
                .fields
                .get("Name")
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string();
            let candidates = by_name.get(&name).cloned().unwrap_or_default();
            match candidates.len() {
                0 => {}
                1 if !claimed.contains_key(&candidates[0]) => {
                    let id = candidates[0].clone();
                    claimed.insert(id.clone(), ext.clone());
                    w.accts[j].stamp_id = Some(id.clone());
                    w.accts[j].known_id = Some(id.clone());
                    w.acct_ids.insert(ext.clone(), id);
                    if w.accts[j].phantom {
                        // Known only from an invoice: stamp the id, leave the Account's fields.
                        w.accts[j].fields = Record::new();
                    }
                }
                n => {
                    let msg = if n == 1 {
                        format!(
                            "customer {ext}: ambiguous: the only Account named {name:?} ({}) also matches customer {} in this batch; set {ext_f} on the right Account",
                            candidates[0],
                            claimed.get(&candidates[0]).cloned().unwrap_or_default()
                        )
                    } else {
                        format!(
                            "customer {ext}: ambiguous: {n} Accounts named {name:?} ({}); set {ext_f} = {ext} on the right one, the connector never guesses",
                            candidates.join(", ")
                        )
                    };
                    let f = Failure::permanent(msg.clone())
                        .with_field("Name")
                        .with_link(ErrorLink {
                            status: None,
                            code: Some("AMBIGUOUS_ACCOUNT_NAME".into()),
                            message: msg,
                            request_id: None,
                        });
                    let inputs = w.accts[j].inputs.clone();
                    w.set(&inputs, RecordOutcome::Permanent(f.clone()));
                    w.accts[j].skip = true;
                    w.acct_fail.insert(ext.clone(), (false, f));
                }
            }
        }
        Ok(())
    }

    /// Invoices whose customer has no Account anywhere (not in the batch, not in record state,
    /// not in Salesforce) wait for it, retryable, instead of linking to a made-up Account.
    fn hold_for_customers(&self, w: &mut Work) {
        for a in w.accts.iter_mut() {
            if !a.phantom || a.skip || a.known_id.is_some() || !w.wait_for.contains(&a.ext) {
                continue;
            }
            a.skip = true;
            let f = Failure::retryable(format!(
                "waiting for customer {}: no Account carries its SYSPRO id yet (the customer is not in SYSPRO or not synced yet); the invoice links to it once it exists",
                a.ext
            ))
            .with_field("AccountId");
            w.acct_fail.insert(a.ext.clone(), (true, f));
        }
    }

    /// Sends units in Composite requests of ≤ 5 collections, in order; maps every result back.
    /// A request that still fails after backoff hands its records (and the rest) back as retries.
    async fn run_units(&self, w: &mut Work, units: Vec<Unit>) -> Result<()> {
        let mut rest: &[Unit] = &units;
        while !rest.is_empty() {
            let take = rest.len().min(COMPOSITE_MAX_COLLECTIONS);
            let (now, later) = rest.split_at(take);
            rest = later;
            let subs: Vec<SubRequest> = now
                .iter()
                .enumerate()
                .map(|(k, u)| self.subrequest(w, u, k))
                .collect();
            let sent = match self.svc.check_reserve() {
                Ok(()) => {
                    self.svc
                        .call(
                            Method::POST,
                            &format!("{}/composite", self.data()),
                            &ReqBody::Json(composite_body(&subs)),
                        )
                        .await
                }
                Err(e) => Err(e),
            };
            let resp = match sent {
                Ok(r) if r.status < 300 => r,
                Ok(r) => {
                    let link = r.link();
                    let f =
                        Failure::permanent(format!("composite request refused: {}", link.message))
                            .with_link(link);
                    for u in now.iter().chain(rest.iter()) {
                        self.fail_unit(w, u, false, f.clone());
                    }
                    return Ok(());
                }
                Err(SalesforceError::Transient { link }) => {
                    let f = Failure::retryable(format!("salesforce unavailable: {}", link.message))
                        .with_link(link);
                    for u in now.iter().chain(rest.iter()) {
                        self.fail_unit(w, u, true, f.clone());
                    }
                    return Ok(());
                }
                Err(e) => return Err(e),
            };
            let body = resp.json();
            let results = body["compositeResponse"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for (k, u) in now.iter().enumerate() {
                let reference = format!("u{k}");
                let sub = results
                    .iter()
                    .find(|r| r["referenceId"] == json!(reference))
                    .cloned()
                    .unwrap_or(Value::Null);
                self.apply_results(w, u, &sub, resp.request_id.clone());
            }
        }
        Ok(())
    }

    fn subrequest(&self, w: &Work, u: &Unit, k: usize) -> SubRequest {
        let reference = format!("u{k}");
        match u {
            Unit::AccountUpsert(items) => {
                let recs: Vec<(String, Record)> = items
                    .iter()
                    .map(|&j| (w.accts[j].ext.clone(), w.accts[j].fields.clone()))
                    .collect();
                SubRequest {
                    method: "PATCH",
                    url: format!(
                        "{}/composite/sobjects/{}/{}",
                        self.data(),
                        self.accounts.object,
                        self.accounts.ext_field
                    ),
                    reference,
                    body: Some(collection_upsert_body(&self.accounts, &recs)),
                }
            }
            Unit::AccountStamp(items) => {
                let recs: Vec<(String, Record)> = items
                    .iter()
                    .map(|&j| {
                        let a = &w.accts[j];
                        let mut f = a.fields.clone();
                        f.insert(
                            self.accounts.ext_field.clone(),
                            Value::String(a.ext.clone()),
                        );
                        (a.stamp_id.clone().unwrap_or_default(), f)
                    })
                    .collect();
                SubRequest {
                    method: "PATCH",
                    url: format!("{}/composite/sobjects", self.data()),
                    reference,
                    body: Some(collection_update_body(&self.accounts.object, &recs)),
                }
            }
            Unit::Opp(items) => {
                let recs: Vec<(String, Record)> = items
                    .iter()
                    .map(|&j| {
                        let o = &w.opps[j];
                        let mut f = o.fields.clone();
                        match w.acct_ids.get(&o.customer) {
                            Some(id) => {
                                f.insert("AccountId".into(), Value::String(id.clone()));
                            }
                            None => {
                                // Only reached with nested_account_reference on.
                                let rel = self.accounts.object.clone();
                                f.insert(
                                    rel,
                                    json!({ self.accounts.ext_field.clone(): o.customer }),
                                );
                            }
                        }
                        (o.ext.clone(), f)
                    })
                    .collect();
                SubRequest {
                    method: "PATCH",
                    url: format!(
                        "{}/composite/sobjects/{}/{}",
                        self.data(),
                        self.opps.object,
                        self.opps.ext_field
                    ),
                    reference,
                    body: Some(collection_upsert_body(&self.opps, &recs)),
                }
            }
        }
    }

    fn fail_unit(&self, w: &mut Work, u: &Unit, retry: bool, f: Failure) {
        match u {
            Unit::AccountUpsert(items) | Unit::AccountStamp(items) => {
                for &j in items {
                    let inputs = w.accts[j].inputs.clone();
                    w.set(&inputs, failed(retry, f.clone()));
                    w.acct_fail
                        .insert(w.accts[j].ext.clone(), (retry, f.clone()));
                }
            }
            Unit::Opp(items) => {
                for &j in items {
                    let inputs = w.opps[j].inputs.clone();
                    w.set(&inputs, failed(retry, f.clone()));
                }
            }
        }
    }

    fn apply_results(&self, w: &mut Work, u: &Unit, sub: &Value, request_id: Option<String>) {
        let status = sub["httpStatusCode"].as_u64().unwrap_or(0) as u16;
        let items: Vec<usize> = match u {
            Unit::AccountUpsert(v) | Unit::AccountStamp(v) | Unit::Opp(v) => v.clone(),
        };
        let results = sub["body"].as_array().cloned().unwrap_or_default();
        if status != 200 || results.len() != items.len() {
            let errs = parse_errors(&sub["body"]);
            let label = match u {
                Unit::Opp(_) => "Opportunity collection",
                _ => "Account collection",
            };
            let (retry, mut f) = if status == 0 {
                (
                    true,
                    Failure::retryable(format!("{label}: no result in the composite response")),
                )
            } else {
                record_failure(label, Some(status), &errs)
            };
            for l in f.chain.iter_mut() {
                l.request_id = request_id.clone();
            }
            self.fail_unit(w, u, retry, f);
            return;
        }
        for (pos, &j) in items.iter().enumerate() {
            let r = &results[pos];
            let ok = r["success"] == json!(true);
            let id = r["id"].as_str().map(String::from);
            let created = r["created"].as_bool().unwrap_or(false);
            match u {
                Unit::AccountUpsert(_) | Unit::AccountStamp(_) => {
                    let a = w.accts[j].clone();
                    match (ok, id) {
                        (true, Some(id)) => {
                            w.acct_ids.insert(a.ext.clone(), id.clone());
                            let created = matches!(u, Unit::AccountUpsert(_)) && created;
                            w.set(&a.inputs, applied(created, &id));
                        }
                        _ => {
                            let label = format!("{}/{}/{}", self.flow, Entity::ArCustomer, a.ext);
                            let (retry, mut f) =
                                record_failure(&label, Some(status), &parse_errors(r));
                            for l in f.chain.iter_mut() {
                                l.request_id = request_id.clone();
                            }
                            w.set(&a.inputs, failed(retry, f.clone()));
                            w.acct_fail.insert(a.ext.clone(), (retry, f));
                        }
                    }
                }
                Unit::Opp(_) => {
                    let o = w.opps[j].clone();
                    match (ok, id) {
                        (true, Some(id)) => w.set(&o.inputs, applied(created, &id)),
                        _ => {
                            let label = format!("{}/{}/{}", self.flow, Entity::ArInvoice, o.ext);
                            let (retry, mut f) =
                                record_failure(&label, Some(status), &parse_errors(r));
                            for l in f.chain.iter_mut() {
                                l.request_id = request_id.clone();
                            }
                            w.set(&o.inputs, failed(retry, f));
                        }
                    }
                }
            }
        }
    }

    /// An invoice whose customer's Account failed inherits that failure.
    fn inherit_account_failure(&self, w: &mut Work, o: usize) -> bool {
        let cust = w.opps[o].customer.clone();
        if let Some((retry, f)) = w.acct_fail.get(&cust).cloned() {
            let mut g = f.clone();
            g.message = format!(
                "{}/{}/{}: its customer's Account could not be written: {}",
                self.flow,
                Entity::ArInvoice,
                w.opps[o].ext,
                f.message
            );
            let inputs = w.opps[o].inputs.clone();
            w.set(&inputs, failed(retry, g));
            return true;
        }
        false
    }

    fn chunk_units(items: Vec<usize>, make: fn(Vec<usize>) -> Unit) -> Vec<Unit> {
        items
            .chunks(COLLECTION_MAX)
            .map(|c| make(c.to_vec()))
            .collect()
    }

    async fn write_composite(&self, w: &mut Work) -> Result<()> {
        let upserts: Vec<usize> = (0..w.accts.len())
            .filter(|&j| !w.accts[j].skip && w.accts[j].stamp_id.is_none())
            .collect();
        let stamps: Vec<usize> = (0..w.accts.len())
            .filter(|&j| !w.accts[j].skip && w.accts[j].stamp_id.is_some())
            .collect();
        let new_accounts: BTreeSet<String> = upserts
            .iter()
            .filter(|&&j| !w.acct_ids.contains_key(&w.accts[j].ext))
            .map(|&j| w.accts[j].ext.clone())
            .collect();
        // One customer's invoices stay together (they lock the same Account).
        let mut opp_order: Vec<usize> = (0..w.opps.len()).collect();
        opp_order.sort_by(|&a, &b| w.opps[a].customer.cmp(&w.opps[b].customer));
        let (mut ready, mut deferred) = (Vec::new(), Vec::new());
        for o in opp_order {
            if self.inherit_account_failure(w, o) {
                continue;
            }
            let cust = &w.opps[o].customer;
            if w.acct_ids.contains_key(cust)
                || (self.conn.nested_account_reference && new_accounts.contains(cust))
            {
                ready.push(o);
            } else {
                deferred.push(o);
            }
        }
        let mut units = Self::chunk_units(upserts, Unit::AccountUpsert);
        units.extend(Self::chunk_units(stamps, Unit::AccountStamp));
        units.extend(Self::chunk_units(ready, Unit::Opp));
        self.run_units(w, units).await?;
        if deferred.is_empty() {
            return Ok(());
        }
        // Invoices of Accounts created just now: their Ids are known from the results.
        let mut second = Vec::new();
        for o in deferred {
            if self.inherit_account_failure(w, o) {
                continue;
            }
            if w.acct_ids.contains_key(&w.opps[o].customer) {
                second.push(o);
            } else {
                self.wait_for_account(w, o);
            }
        }
        let units = Self::chunk_units(second, Unit::Opp);
        self.run_units(w, units).await
    }

    /// An invoice whose Account has no Id yet waits for a later pass (retryable).
    fn wait_for_account(&self, w: &mut Work, o: usize) {
        let f = Failure::retryable(format!(
            "{}/{}/{}: the Account of customer {} is not known yet",
            self.flow,
            Entity::ArInvoice,
            w.opps[o].ext,
            w.opps[o].customer
        ));
        let inputs = w.opps[o].inputs.clone();
        w.set(&inputs, failed(true, f));
    }

    async fn write_bulk(&self, w: &mut Work) -> Result<()> {
        let settings = BulkSettings {
            poll_interval: self.opts.bulk_poll_interval,
            poll_max: self.opts.bulk_poll_max,
            max_wait: self.opts.bulk_max_wait,
            max_job_bytes: self.opts.max_job_bytes,
        };
        // Name-matched Accounts are stamped by Id (few: first sync only) through Composite.
        let stamps: Vec<usize> = (0..w.accts.len())
            .filter(|&j| !w.accts[j].skip && w.accts[j].stamp_id.is_some())
            .collect();
        let upserts: Vec<usize> = (0..w.accts.len())
            .filter(|&j| !w.accts[j].skip && w.accts[j].stamp_id.is_none())
            .collect();
        // Each object takes its own path: a Bulk job costs ≈ 6 calls whatever its size, so an
        // object's load at or below the threshold (a backfill's 2,000 customers beside its
        // 98,000 invoices) is cheaper through Composite, 1 call per 1,000 records.
        let accounts_in_bulk = upserts.len() > self.conn.bulk_threshold;
        let mut units = Self::chunk_units(stamps, Unit::AccountStamp);
        if !accounts_in_bulk {
            units.extend(Self::chunk_units(upserts.clone(), Unit::AccountUpsert));
        }
        if !units.is_empty() {
            self.run_units(w, units).await?;
        }
        if accounts_in_bulk {
            let mut cols: BTreeSet<String> = BTreeSet::new();
            for &j in &upserts {
                cols.extend(w.accts[j].fields.keys().cloned());
            }
            let mut header = vec![self.accounts.ext_field.clone()];
            header.extend(cols.iter().cloned());
            let rows = upserts
                .iter()
                .map(|&j| {
                    let a = &w.accts[j];
                    let mut vals = vec![a.ext.clone()];
                    vals.extend(cols.iter().map(|c| rb::csv_value(a.fields.get(c))));
                    (a.ext.clone(), vals)
                })
                .collect();
            let load = Load {
                object: self.accounts.object.clone(),
                ext_field: self.accounts.ext_field.clone(),
                header,
                rows,
            };
            self.svc.check_reserve()?;
            let res = self.bulk_or_retry(
                w,
                bulk::upsert(&self.svc, &self.version, &load, &settings).await,
                |w| {
                    upserts
                        .iter()
                        .flat_map(|&j| w.accts[j].inputs.clone())
                        .collect()
                },
            )?;
            let Some(res) = res else { return Ok(()) };
            for &j in &upserts {
                let a = w.accts[j].clone();
                let label = format!("{}/{}/{}", self.flow, Entity::ArCustomer, a.ext);
                match res.get(&a.ext) {
                    Some(RowResult::Ok { id, created }) => {
                        w.acct_ids.insert(a.ext.clone(), id.clone());
                        w.set(&a.inputs, applied(*created, id));
                    }
                    other => {
                        let (retry, f) = bulk_failure(&label, other);
                        w.set(&a.inputs, failed(retry, f.clone()));
                        w.acct_fail.insert(a.ext.clone(), (retry, f));
                    }
                }
            }
        }
        let mut opps: Vec<usize> = Vec::new();
        for o in 0..w.opps.len() {
            if !self.inherit_account_failure(w, o) {
                opps.push(o);
            }
        }
        if opps.is_empty() {
            return Ok(());
        }
        opps.sort_by(|&a, &b| w.opps[a].customer.cmp(&w.opps[b].customer));
        if opps.len() <= self.conn.bulk_threshold {
            // Few invoices beside many customers: Composite, linked by the Account Ids just
            // written (or known before).
            let mut ready = Vec::new();
            for o in opps {
                if w.acct_ids.contains_key(&w.opps[o].customer)
                    || self.conn.nested_account_reference
                {
                    ready.push(o);
                } else {
                    self.wait_for_account(w, o);
                }
            }
            return self.run_units(w, Self::chunk_units(ready, Unit::Opp)).await;
        }
        let mut cols: BTreeSet<String> = BTreeSet::new();
        for &o in &opps {
            cols.extend(w.opps[o].fields.keys().cloned());
        }
        let parent = format!("{}.{}", self.accounts.object, self.accounts.ext_field);
        let mut header = vec![self.opps.ext_field.clone()];
        header.extend(cols.iter().cloned());
        header.push(parent);
        let rows = opps
            .iter()
            .map(|&o| {
                let x = &w.opps[o];
                let mut vals = vec![x.ext.clone()];
                vals.extend(cols.iter().map(|c| rb::csv_value(x.fields.get(c))));
                vals.push(x.customer.clone());
                (x.ext.clone(), vals)
            })
            .collect();
        let load = Load {
            object: self.opps.object.clone(),
            ext_field: self.opps.ext_field.clone(),
            header,
            rows,
        };
        self.svc.check_reserve()?;
        let res = self.bulk_or_retry(
            w,
            bulk::upsert(&self.svc, &self.version, &load, &settings).await,
            |w| {
                opps.iter()
                    .flat_map(|&o| w.opps[o].inputs.clone())
                    .collect()
            },
        )?;
        let Some(res) = res else { return Ok(()) };
        for &o in &opps {
            let x = w.opps[o].clone();
            let label = format!("{}/{}/{}", self.flow, Entity::ArInvoice, x.ext);
            match res.get(&x.ext) {
                Some(RowResult::Ok { id, created }) => w.set(&x.inputs, applied(*created, id)),
                other => {
                    let (retry, f) = bulk_failure(&label, other);
                    w.set(&x.inputs, failed(retry, f));
                }
            }
        }
        Ok(())
    }

    /// Transient bulk failures hand the load's records back; others stop the write.
    fn bulk_or_retry<T>(
        &self,
        w: &mut Work,
        r: Result<T>,
        inputs: impl Fn(&Work) -> Vec<usize>,
    ) -> Result<Option<T>> {
        match r {
            Ok(x) => Ok(Some(x)),
            Err(SalesforceError::Transient { link }) => {
                let f = Failure::retryable(format!("bulk load interrupted: {}", link.message))
                    .with_link(link);
                let ins = inputs(w);
                w.set(&ins, failed(true, f));
                Ok(None)
            }
            Err(SalesforceError::Rejected { link }) => {
                let f = Failure::permanent(format!("bulk job refused: {}", link.message))
                    .with_link(link);
                let ins = inputs(w);
                w.set(&ins, failed(false, f));
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    async fn describe(&self, object: &str) -> Result<Option<Value>> {
        let r = self
            .svc
            .call(
                Method::GET,
                &format!("{}/sobjects/{object}/describe", self.data()),
                &ReqBody::None,
            )
            .await?;
        match r.status {
            200 => Ok(Some(r.json())),
            404 => Ok(None),
            _ => Err(SalesforceError::Rejected { link: r.link() }),
        }
    }
}

fn bulk_failure(label: &str, r: Option<&RowResult>) -> (bool, Failure) {
    match r {
        Some(RowResult::Failed { code, message }) => {
            let errs = vec![crate::retry::ApiError {
                code: code.clone(),
                message: message.clone(),
                fields: Vec::new(),
            }];
            record_failure(label, None, &errs)
        }
        Some(RowResult::Unprocessed(m)) => (true, Failure::retryable(format!("{label}: {m}"))),
        _ => (
            true,
            Failure::retryable(format!(
                "{label}: the bulk job reported nothing for this record"
            )),
        ),
    }
}

fn field_names(describe: &Value) -> HashMap<String, Value> {
    describe["fields"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| Some((f["name"].as_str()?.to_string(), f.clone())))
                .collect()
        })
        .unwrap_or_default()
}

#[async_trait]
impl Sink for SalesforceSink {
    fn destination(&self) -> &'static str {
        "salesforce"
    }

    async fn ping(&self) -> std::result::Result<Vec<String>, SinkError> {
        let mut lines = Vec::new();
        let mut problems = Vec::new();
        let session = self.svc.auth.session().await?;
        lines.push(format!("token: ok (instance {})", session.instance_url));
        for (t, role) in [(&self.accounts, "customers"), (&self.opps, "invoices")] {
            let Some(d) = self.describe(&t.object).await? else {
                problems.push(format!(
                    "{role}: object {} does not exist or is not visible to the Run-As user",
                    t.object
                ));
                continue;
            };
            let fields = field_names(&d);
            match fields.get(&t.ext_field) {
                Some(f) if f["externalId"] == json!(true) => lines.push(format!(
                    "{role}: {}.{} is an external id",
                    t.object, t.ext_field
                )),
                Some(_) => problems.push(format!(
                    "{role}: {}.{} exists but is not marked External ID",
                    t.object, t.ext_field
                )),
                None => problems.push(format!(
                    "{role}: {}.{} does not exist or is not visible",
                    t.object, t.ext_field
                )),
            }
            if t.object == self.opps.object {
                let stages: Vec<String> = fields
                    .get("StageName")
                    .and_then(|f| f["picklistValues"].as_array().cloned())
                    .unwrap_or_default()
                    .iter()
                    .filter(|p| p["active"] != json!(false))
                    .filter_map(|p| p["value"].as_str().map(String::from))
                    .collect();
                let mut bad = 0;
                for (status, stage) in &self.conn.stage_map {
                    if !stages.contains(stage) {
                        bad += 1;
                        problems.push(format!(
                            "stage_map.{status} = {stage:?} is not a StageName value of this org (values: {})",
                            stages.join(", ")
                        ));
                    }
                }
                if bad == 0 && !self.conn.stage_map.is_empty() {
                    lines.push(format!(
                        "stage_map: {} statuses map to valid stages",
                        self.conn.stage_map.len()
                    ));
                }
                for f in [&self.conn.aging_field, &self.conn.balance_field]
                    .into_iter()
                    .flatten()
                {
                    if fields.contains_key(f) {
                        lines.push(format!("invoices: {}.{f} exists", t.object));
                    } else {
                        problems.push(format!(
                            "invoices: {}.{f} does not exist or is not visible",
                            t.object
                        ));
                    }
                }
            }
        }
        match self.describe("Invoice").await? {
            Some(_) => lines.push(
                "payments: the org has the standard Invoice object (update-only); this flow maps no payments to it, so payments move the Opportunity stage and balance".into(),
            ),
            None => lines.push(
                "payments: no Invoice object in this org (needs Revenue Cloud / Order Management): payments move the Opportunity stage and balance".into(),
            ),
        }
        if let Some((used, max)) = self.svc.usage() {
            lines.push(format!(
                "daily API usage: {used}/{max} (reserve {}%)",
                self.conn.daily_reserve_percent
            ));
        }
        if !problems.is_empty() {
            return Err(SinkError::Config(problems.join("; ")));
        }
        Ok(lines)
    }

    async fn preview(
        &self,
        batch: &[PendingWrite],
    ) -> std::result::Result<Vec<Preview>, SinkError> {
        Ok(self.preview_batch(batch).await?)
    }

    async fn write(
        &self,
        batch: &[PendingWrite],
    ) -> std::result::Result<Vec<RecordOutcome>, SinkError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let mut w = self.plan(batch);
        self.resolve_from_state(&mut w).await?;
        let to_write = w.accts.iter().filter(|a| !a.skip).count() + w.opps.len();
        if to_write > 0 {
            self.svc.check_reserve()?;
            match self.match_accounts(&mut w).await {
                Ok(()) => {}
                Err(SalesforceError::Transient { link }) => {
                    let f = Failure::retryable(format!("salesforce unavailable: {}", link.message))
                        .with_link(link);
                    for o in w.outcomes.iter_mut().filter(|o| o.is_none()) {
                        *o = Some(failed(true, f.clone()));
                    }
                }
                Err(e) => return Err(e.into()),
            }
            self.hold_for_customers(&mut w);
            let pending = w.outcomes.iter().any(|o| o.is_none());
            if pending {
                let to_write = w.accts.iter().filter(|a| !a.skip).count() + w.opps.len();
                if to_write > self.conn.bulk_threshold {
                    self.write_bulk(&mut w).await?;
                } else {
                    self.write_composite(&mut w).await?;
                }
            }
        }
        Ok(w.outcomes
            .into_iter()
            .map(|o| {
                o.unwrap_or_else(|| {
                    failed(
                        true,
                        Failure::retryable("salesforce sink: no result for this record (retrying)"),
                    )
                })
            })
            .collect())
    }
}
