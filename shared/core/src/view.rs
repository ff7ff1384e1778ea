//! What a destination sees of a record: the fields its payload reads, and a fingerprint of
//! everything in the flow that shapes that payload.
//!
//! Both decide "changed". The poll keeps only these fields in the record it sends (so a column
//! or derived value nobody maps — `_Aging` on a board without an aging column, a `TimeStamp`
//! bump from an unmapped column — never causes a write), and seeds the record's hash with the
//! fingerprint (so a mapping change re-sends every record of the entity once). A sink default
//! that reads a column (Opportunity `Amount` from `CurrencyValue`) is listed here, so the poll
//! reads what the sink will use.

use std::collections::BTreeSet;

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::config::{Destination, EntityConfig, FlowConfig, OPPORTUNITY_AMOUNT_FROM};
use crate::entity::derived;
use crate::event::Record;
use crate::mapping::{source_fields, template_fields};
use crate::Entity;

/// Bumped when the connector changes how a payload is built from the same record and
/// mapping, so that every record is re-sent once with the new shape.
const PAYLOAD_FORMAT: u32 = 1;

/// The destination's view of one entity of a flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationView {
    /// The entity.
    pub entity: Entity,
    /// Record fields the destination's payload reads: source columns, dotted master lookups
    /// (`Customer.Name`) and derived `_…` fields. Key columns are always kept besides these.
    pub fields: BTreeSet<String>,
    /// Hex digest of the mapping and the destination settings that shape the payload: seeds
    /// every record's hash, so a change re-sends every record of the entity once.
    pub fingerprint: String,
    /// `{fingerprint}.{digest of derivation inputs}` (terms, status rules): kept with the
    /// watermark; when it differs, the next poll reads the entity whole once, and the records'
    /// own hashes decide which of them are re-sent.
    pub read_under: String,
}

impl DestinationView {
    /// The view of `ec` in `flow`.
    pub fn of(flow: &FlowConfig, ec: &EntityConfig) -> Self {
        let mut fields: BTreeSet<String> = ec.mapping.values().flat_map(source_fields).collect();
        let mut shape = json!({
            "format": PAYLOAD_FORMAT,
            "entity": ec.entity,
            "mapping": ec.mapping,
            "salesforce": ec.salesforce,
            "monday": ec.monday,
        });
        match &flow.destination {
            Destination::Salesforce(sf) => {
                match ec.entity {
                    Entity::ArCustomer => {
                        fields.insert("Name".into());
                    }
                    Entity::ArInvoice => {
                        fields.extend(template_fields(&sf.opportunity_name));
                        fields.insert(OPPORTUNITY_AMOUNT_FROM.into());
                        // The customer's SYSPRO name: the Account of an invoice that arrives
                        // before its customer is made from it, and its absence says SYSPRO has
                        // no such customer yet.
                        fields.insert("Customer.Name".into());
                        fields.insert(derived::DUE_DATE.into());
                        if !sf.stage_map.is_empty() {
                            fields.insert(derived::STATUS.into());
                        }
                        if sf.aging_field.is_some() {
                            fields.insert(derived::AGING.into());
                        }
                        if sf.balance_field.is_some() {
                            fields.insert(derived::BALANCE.into());
                        }
                    }
                    _ => {}
                }
                shape["opportunity"] = json!({
                    "name": sf.opportunity_name,
                    "stage_map": sf.stage_map,
                    "aging_field": sf.aging_field,
                    "balance_field": sf.balance_field,
                });
            }
            Destination::Monday(_) => {
                if let Some(t) = &ec.monday {
                    fields.extend(template_fields(&t.item_name));
                }
            }
        }
        // Terms and status rules change derived values only: they are not part of the hash seed
        // (the projected `_DueDate`, `_Status`, `_Aging` carry their effect, so only the records
        // they move are re-sent), but a change of them re-reads the entity once.
        let calendar = [derived::DUE_DATE, derived::STATUS, derived::AGING]
            .iter()
            .any(|f| fields.contains(*f));
        let mut inputs = json!({});
        if ec.entity.is_invoice() && calendar {
            // The due date the calendar keeps must be current too.
            fields.insert(derived::DUE_DATE.into());
            if ec.entity == Entity::ArInvoice {
                inputs["terms"] = json!({
                    "days": flow.syspro.terms_days,
                    "default": flow.syspro.default_due_days,
                });
            }
        }
        if !ec.status_rules.is_default() {
            inputs["status_rules"] = json!(ec.status_rules);
        }
        let digest = Sha256::digest(shape.to_string().as_bytes());
        let fingerprint = hex::encode(&digest[..8]);
        let inputs = hex::encode(&Sha256::digest(inputs.to_string().as_bytes())[..4]);
        DestinationView {
            entity: ec.entity,
            fields,
            read_under: format!("{fingerprint}.{inputs}"),
            fingerprint,
        }
    }

    /// Source columns to read for the view (no derived or dotted fields).
    pub fn columns(&self) -> impl Iterator<Item = &str> {
        self.fields
            .iter()
            .map(String::as_str)
            .filter(|f| !f.starts_with('_') && !f.contains('.'))
    }

    /// Dotted master lookups (`Customer.Name` → (`Customer`, `Name`)).
    pub fn lookups(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().filter_map(|f| f.split_once('.'))
    }

    /// Keeps only the key columns and the fields the destination reads.
    pub fn project(&self, record: &mut Record) {
        let keys = self.entity.key_fields();
        record.retain(|k, _| keys.contains(&k.as_str()) || self.fields.contains(k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConnectorConfig, FieldMapping};

    fn flow(extra_mapping: &str) -> FlowConfig {
        let toml = format!(
            r#"
[[flows]]
id = "f"
[flows.syspro]
base_url = "https://erp.example.com"
company = "A"
operator = "OP"
password = "env:P"
[flows.destination]
kind = "salesforce"
my_domain_url = "https://x.my.salesforce.com"
client_id = "env:C"
client_secret = "env:S"
stage_map = {{ open = "Open", overdue = "Late", paid = "Won" }}
[[flows.entities]]
entity = "ArInvoice"
change_detection = "rowversion"
[flows.entities.mapping]
{extra_mapping}
"#
        );
        let c: ConnectorConfig = toml::from_str(&toml).expect("config");
        c.flows.into_iter().next().expect("one flow")
    }

    #[test]
    fn sink_defaults_are_read_and_unmapped_fields_dropped() {
        let f = flow("");
        let v = DestinationView::of(&f, &f.entities[0]);
        assert!(v.fields.contains("CurrencyValue"), "{:?}", v.fields);
        assert!(v.fields.contains("_Status") && v.fields.contains("_DueDate"));
        assert!(
            !v.fields.contains("_Aging"),
            "no aging_field: aging is invisible"
        );
        assert!(v.lookups().any(|l| l == ("Customer", "Name")));
        let mut r: Record = serde_json::from_value(json!({
            "Customer": "C1", "Invoice": "1", "DocumentType": "I", "CurrencyValue": 5,
            "_Status": "open", "_Aging": "current", "TimeStamp": 99, "DiscBal": 1
        }))
        .unwrap();
        v.project(&mut r);
        let kept: Vec<&str> = r.keys().map(String::as_str).collect();
        assert_eq!(
            kept,
            [
                "CurrencyValue",
                "Customer",
                "DocumentType",
                "Invoice",
                "_Status"
            ]
        );
    }

    #[test]
    fn fingerprint_follows_the_mapping_only() {
        let a = flow("");
        let b = flow(r#"Description = { from = "CustomerPoNumber" }"#);
        let va = DestinationView::of(&a, &a.entities[0]);
        let vb = DestinationView::of(&b, &b.entities[0]);
        assert_ne!(va.fingerprint, vb.fingerprint);
        assert!(vb.fields.contains("CustomerPoNumber"));
        let mut a2 = a.clone();
        a2.schedule = "5m".into();
        a2.entities[0].overlap_days = 9;
        assert_eq!(
            DestinationView::of(&a2, &a2.entities[0]).fingerprint,
            va.fingerprint
        );
        assert!(matches!(
            b.entities[0].mapping.get("Description"),
            Some(FieldMapping::Rule(_))
        ));
    }
}
