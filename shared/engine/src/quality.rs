//! Rows SYSPRO holds that cannot be synced as they are: a key column empty, a date that is not
//! a date, a balance that is not a number. Such a row is never skipped silently and never
//! sent half-understood: it becomes a source-data error (audit outcome `failed-permanent`,
//! destination `syspro`) naming flow, entity, the key parts present, the column, the raw value
//! and why. Fixing it in SYSPRO changes the row, and the next poll reads it again.

use chrono::{DateTime, Utc};
use mlc_core::audit::ErrorLink;
use mlc_core::config::EntityConfig;
use mlc_core::invoice::parse_business_date;
use mlc_core::money;
use mlc_core::{AuditEntry, Entity, Record, SourceVersion, SyncOutcome};
use serde_json::Value;

/// The `destination` of source-data errors in the audit trail.
pub const SOURCE_DESTINATION: &str = "syspro";

/// One row that cannot be synced, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    /// The entity.
    pub entity: Entity,
    /// The key parts present, `|`-joined; `?` for a missing part.
    pub key: String,
    /// The column at fault.
    pub column: String,
    /// Its raw value as SYSPRO sent it (`null` when absent).
    pub raw: String,
    /// Why it cannot be used.
    pub reason: &'static str,
    /// The row's rowversion, when read.
    pub row_version: Option<u64>,
}

impl BadRow {
    /// One line for people: flow, entity, key, column, value, why.
    pub fn message(&self, flow: &str) -> String {
        format!(
            "flow {flow}, {} {}: column {} value {}: {}",
            self.entity, self.key, self.column, self.raw, self.reason
        )
    }

    /// The audit entry that records it.
    pub fn audit_entry(&self, flow: &str, poll_seq: u64, polled_at: DateTime<Utc>) -> AuditEntry {
        AuditEntry {
            flow: flow.to_string(),
            entity: self.entity,
            key: self.key.clone(),
            poll_id: format!("{flow}:{poll_seq}"),
            polled_at,
            version: SourceVersion {
                poll_seq,
                row_version: self.row_version,
            },
            content_hash: String::new(),
            destination: SOURCE_DESTINATION.to_string(),
            destination_ids: Default::default(),
            outcome: SyncOutcome::FailedPermanent,
            attempt: 0,
            at: polled_at,
            error_chain: vec![ErrorLink {
                message: self.message(flow),
                ..Default::default()
            }],
        }
    }
}

/// Columns whose values derivations depend on, by kind.
fn checked_columns(ec: &EntityConfig) -> (Vec<&str>, &'static [&'static str]) {
    let mut dates: Vec<&str> = match ec.entity {
        Entity::ArInvoice => vec!["InvoiceDate"],
        Entity::ApInvoice => vec!["DueDate"],
        Entity::PorMasterHdr => vec!["OrderDueDate"],
        _ => vec![],
    };
    for d in [&ec.date_field, &ec.status_rules.due_date_from]
        .into_iter()
        .flatten()
    {
        if !dates.contains(&d.as_str()) {
            dates.push(d);
        }
    }
    let numbers: &'static [&'static str] = match ec.entity {
        Entity::ArInvoice => &["InvoiceBal1"],
        Entity::ApInvoice => &["MthInvBal1"],
        _ => &[],
    };
    (dates, numbers)
}

/// The first problem of `row`, if any. Blank values are not problems (they clear fields).
pub fn check_row(ec: &EntityConfig, row: &Record) -> Option<BadRow> {
    let entity = ec.entity;
    let bad = |column: &str, raw: Option<&Value>, reason| BadRow {
        entity,
        key: key_parts(entity, row),
        column: column.to_string(),
        raw: raw.map_or_else(|| "null".to_string(), Value::to_string),
        reason,
        row_version: row.get("TimeStamp").and_then(Value::as_u64),
    };
    for k in entity.key_fields() {
        let v = row.get(*k);
        let empty = match v {
            None | Some(Value::Null) => true,
            Some(Value::String(s)) => s.trim().is_empty(),
            Some(_) => false,
        };
        if empty {
            return Some(bad(
                k,
                v,
                "a key column is empty: the row cannot be told apart",
            ));
        }
    }
    let (dates, numbers) = checked_columns(ec);
    for c in dates {
        match row.get(c) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if s.trim().is_empty() => {}
            Some(Value::String(s)) if parse_business_date(s).is_some() => {}
            v => return Some(bad(c, v, "is not a date (YYYY-MM-DD)")),
        }
    }
    for &c in numbers {
        // A JSON number is a number; text (e.net, IEEE754-compatible OData) must parse.
        let v = row.get(c);
        if matches!(v, Some(Value::String(_))) && money::decimal(v).is_err() {
            return Some(bad(c, v, "is not a number"));
        }
        if matches!(v, Some(Value::Bool(_) | Value::Array(_) | Value::Object(_))) {
            return Some(bad(c, v, "is not a number"));
        }
    }
    None
}

/// The key parts a row has, `?` for one it lacks.
fn key_parts(entity: Entity, row: &Record) -> String {
    entity
        .key_fields()
        .iter()
        .map(|k| match row.get(*k) {
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => "?".to_string(),
        })
        .collect::<Vec<_>>()
        .join("|")
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlc_core::config::ChangeDetection;

    fn ec(entity: Entity) -> EntityConfig {
        let toml = format!("entity = \"{entity}\"\nchange_detection = \"rowversion\"\n");
        let mut e: EntityConfig = toml::from_str(&toml).expect("entity config");
        e.change_detection = ChangeDetection::Rowversion;
        e
    }

    fn row(pairs: &[(&str, Value)]) -> Record {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn a_blank_key_part_names_the_column_and_the_parts_present() {
        let r = row(&[
            ("Customer", Value::from("ACME01   ")),
            ("Invoice", Value::from("   ")),
            ("DocumentType", Value::from("I")),
        ]);
        let bad = check_row(&ec(Entity::ArInvoice), &r).expect("bad");
        assert_eq!(bad.column, "Invoice");
        assert_eq!(bad.key, "ACME01   |?|I");
        assert_eq!(bad.raw, "\"   \"");
    }

    #[test]
    fn a_bad_date_or_balance_is_named_a_blank_one_is_not() {
        let base = [
            ("Customer", Value::from("A")),
            ("Invoice", Value::from("1")),
            ("DocumentType", Value::from("I")),
        ];
        let mut r = row(&base);
        r.insert("InvoiceDate".into(), Value::from("2026-02-30"));
        let bad = check_row(&ec(Entity::ArInvoice), &r).expect("bad date");
        assert_eq!(
            (bad.column.as_str(), bad.raw.as_str()),
            ("InvoiceDate", "\"2026-02-30\"")
        );
        r.insert("InvoiceDate".into(), Value::from(""));
        assert_eq!(check_row(&ec(Entity::ArInvoice), &r), None);
        r.insert("InvoiceBal1".into(), Value::from("12,50"));
        let bad = check_row(&ec(Entity::ArInvoice), &r).expect("bad number");
        assert_eq!(bad.column, "InvoiceBal1");
        assert!(bad.message("f").contains(
            "flow f, ArInvoice A|1|I: column InvoiceBal1 value \"12,50\": is not a number"
        ));
    }
}
