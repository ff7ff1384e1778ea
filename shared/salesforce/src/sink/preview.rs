//! `preview`: what `write` would send for each record, beside what the org holds now.
//!
//! The payload comes from [`SalesforceSink::payload`], the function `write` plans with, so the
//! two cannot drift apart. Current values come from one SOQL query per object on the
//! external-id field, selecting only the payload's fields; an Account not found by its
//! external id (and unknown to record state) is looked up by exact legal name, as the first
//! sync matches it. Nothing is written.

use std::collections::{BTreeSet, HashMap};

use mlc_core::ports::PendingWrite;
use mlc_core::preview::{self, FieldPreview, Preview, PreviewAction};
use mlc_core::Record;
use reqwest::Method;
use serde_json::Value;

use super::{Payload, SalesforceSink, SALESFORCE_ID};
use crate::error::{Result, SalesforceError};
use crate::request_builder::{self as rb, Target};
use crate::service::ReqBody;

/// The org's rows of one object, by external id (trimmed).
type Rows = HashMap<String, Value>;

impl SalesforceSink {
    /// Previews a batch: one outcome per record, in order.
    pub(super) async fn preview_batch(&self, batch: &[PendingWrite]) -> Result<Vec<Preview>> {
        let payloads: Vec<Payload> = batch.iter().map(|pw| self.payload(&pw.event)).collect();
        let accounts = self
            .current_rows(&self.accounts, batch, &payloads, |p| match p {
                Payload::Account(f) => Some(f),
                _ => None,
            })
            .await?;
        let opps = self
            .current_rows(&self.opps, batch, &payloads, |p| match p {
                Payload::Opportunity(f) => Some(f),
                _ => None,
            })
            .await?;
        let by_name = self.name_candidates(batch, &payloads, &accounts).await?;
        let mut out = Vec::with_capacity(batch.len());
        for (pw, payload) in batch.iter().zip(payloads) {
            let ext = pw.event.key.id();
            let prior_id = pw
                .prior
                .as_ref()
                .and_then(|p| p.destination_ids.get(SALESFORCE_ID))
                .cloned();
            out.push(match payload {
                Payload::Account(fields) => match accounts.get(ext.trim()) {
                    Some(row) => self.compare(&self.accounts, &ext, &fields, Some(row)),
                    None if prior_id.is_none() => {
                        let name = fields.get("Name").and_then(Value::as_str).unwrap_or("");
                        self.by_name(&ext, &fields, by_name.get(name).map(Vec::as_slice))
                    }
                    None => self.compare(&self.accounts, &ext, &fields, None),
                },
                Payload::Opportunity(fields) => self
                    .compare(&self.opps, &ext, &fields, opps.get(ext.trim()))
                    .with_note(format!(
                        "AccountId is set at write time to the Account of customer {}",
                        rb::invoice_customer(&pw.event)
                    )),
                Payload::NothingToRemove => Preview {
                    destination: self.object_of(&pw.event).to_string(),
                    destination_id: prior_id,
                    fields: Vec::new(),
                    action: PreviewAction::Nothing,
                    note: Some(
                        "gone from SYSPRO, and the flow configures no field for removals".into(),
                    ),
                },
                Payload::Payment => Preview {
                    destination: self.opps.object.clone(),
                    destination_id: None,
                    fields: Vec::new(),
                    action: PreviewAction::Nothing,
                    note: Some(
                        "payments write nothing themselves: the invoice's balance moves its Opportunity".into(),
                    ),
                },
                Payload::Refused(f) => {
                    Preview::refused(self.object_of(&pw.event).to_string(), f.message)
                }
            });
        }
        Ok(out)
    }

    /// The sObject an entity is written to (`salesforce` for entities it never writes).
    fn object_of(&self, ev: &mlc_core::ChangeEvent) -> &str {
        match ev.entity {
            mlc_core::Entity::ArCustomer => &self.accounts.object,
            mlc_core::Entity::ArInvoice | mlc_core::Entity::ArInvoicePay => &self.opps.object,
            _ => "salesforce",
        }
    }

    /// The payload beside `row` (the org's record, `None` when it has none).
    fn compare(&self, t: &Target, ext: &str, fields: &Record, row: Option<&Value>) -> Preview {
        let current = |f: &str| row.map(|r| r.get(f).cloned().unwrap_or(Value::Null));
        let mut out: Vec<FieldPreview> = vec![preview::field(
            t.ext_field.clone(),
            Value::String(ext.to_string()),
            current(&t.ext_field),
        )];
        out.extend(
            fields
                .iter()
                .map(|(k, v)| preview::field(k.clone(), v.clone(), current(k))),
        );
        let id = row.and_then(|r| r["Id"].as_str()).map(str::to_string);
        Preview::from_fields(t.object.clone(), id, out)
    }

    /// An Account found by neither external id nor record state: the first sync updates the
    /// one unlinked Account with exactly this name (stamping the external id on it), refuses
    /// when several have it, and creates one otherwise.
    fn by_name(&self, ext: &str, fields: &Record, candidates: Option<&[Value]>) -> Preview {
        match candidates.unwrap_or(&[]) {
            [] => self.compare(&self.accounts, ext, fields, None),
            [row] => self
                .compare(&self.accounts, ext, fields, Some(row))
                .with_note(
                    "matched by exact legal name: the sync stamps the external id on this Account",
                ),
            many => {
                let ids: Vec<&str> = many.iter().filter_map(|r| r["Id"].as_str()).collect();
                Preview::refused(
                    self.accounts.object.clone(),
                    format!(
                        "customer {ext}: ambiguous: {} Accounts named {:?} ({}); set {} = {ext} on the right one, the connector never guesses",
                        many.len(),
                        fields.get("Name").and_then(Value::as_str).unwrap_or(""),
                        ids.join(", "),
                        self.accounts.ext_field
                    ),
                )
            }
        }
    }

    /// The org's records of `t` for the batch's payloads of one kind, by external id: one
    /// query (per URI-sized chunk) selecting only the payload's fields.
    async fn current_rows(
        &self,
        t: &Target,
        batch: &[PendingWrite],
        payloads: &[Payload],
        pick: impl Fn(&Payload) -> Option<&Record>,
    ) -> Result<Rows> {
        let mut exts: BTreeSet<String> = BTreeSet::new();
        let mut fields: BTreeSet<String> = BTreeSet::new();
        for (pw, p) in batch.iter().zip(payloads) {
            if let Some(f) = pick(p) {
                exts.insert(pw.event.key.id());
                fields.extend(f.keys().cloned());
            }
        }
        if exts.is_empty() {
            return Ok(Rows::new());
        }
        let fields: Vec<String> = fields.into_iter().collect();
        let exts: Vec<String> = exts.into_iter().collect();
        let mut rows = Rows::new();
        for q in rb::values_queries(&t.object, &fields, &t.ext_field, &exts) {
            for r in self.query_all(&q).await? {
                // Salesforce matched case-insensitively: keep only the exact external id.
                let Some(e) = r[&t.ext_field].as_str().map(|s| s.trim().to_string()) else {
                    continue;
                };
                if exts.binary_search(&e).is_ok() {
                    rows.entry(e).or_insert(r);
                }
            }
        }
        Ok(rows)
    }

    /// Unlinked Accounts named exactly like the batch's customers that neither the org (by
    /// external id) nor record state knows, by name.
    async fn name_candidates(
        &self,
        batch: &[PendingWrite],
        payloads: &[Payload],
        found: &Rows,
    ) -> Result<HashMap<String, Vec<Value>>> {
        let mut names: BTreeSet<String> = BTreeSet::new();
        let mut fields: BTreeSet<String> = BTreeSet::new();
        for (pw, p) in batch.iter().zip(payloads) {
            let Payload::Account(f) = p else { continue };
            let known = pw
                .prior
                .as_ref()
                .is_some_and(|s| s.destination_ids.contains_key(SALESFORCE_ID));
            if known || found.contains_key(pw.event.key.id().trim()) {
                continue;
            }
            if let Some(n) = f
                .get("Name")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
            {
                names.insert(n.to_string());
                fields.extend(f.keys().cloned());
            }
        }
        let mut out: HashMap<String, Vec<Value>> = HashMap::new();
        if names.is_empty() {
            return Ok(out);
        }
        fields.insert(self.accounts.ext_field.clone());
        let fields: Vec<String> = fields.into_iter().collect();
        let names: Vec<String> = names.into_iter().collect();
        for q in rb::values_queries(&self.accounts.object, &fields, "Name", &names) {
            for r in self.query_all(&q).await? {
                let linked = r[&self.accounts.ext_field]
                    .as_str()
                    .is_some_and(|s| !s.is_empty());
                match r["Name"].as_str() {
                    // Exact (case-sensitive) names only, as the sync matches them.
                    Some(n) if !linked && names.binary_search(&n.to_string()).is_ok() => {
                        out.entry(n.to_string()).or_default().push(r.clone());
                    }
                    _ => {}
                }
            }
        }
        Ok(out)
    }

    /// Every row of a query, following `nextRecordsUrl`.
    async fn query_all(&self, soql: &str) -> Result<Vec<Value>> {
        let mut resp = self
            .svc
            .call(
                Method::GET,
                &rb::query_url(&self.version, soql),
                &ReqBody::None,
            )
            .await?;
        let mut rows = Vec::new();
        loop {
            if resp.status >= 300 {
                return Err(SalesforceError::Rejected { link: resp.link() });
            }
            let page = resp.json();
            rows.extend(page["records"].as_array().cloned().unwrap_or_default());
            match page["nextRecordsUrl"].as_str() {
                Some(next) if page["done"] != Value::Bool(true) => {
                    resp = self.svc.call(Method::GET, next, &ReqBody::None).await?;
                }
                _ => return Ok(rows),
            }
        }
    }
}
