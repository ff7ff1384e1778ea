//! Derived fields: what the destinations see besides the SYSPRO columns. Status and aging
//! depend on today's date in the company's time zone, so an invoice turning overdue changes
//! the record's hash (and the destination) without any SYSPRO change.

use chrono::NaiveDate;
use mlc_core::config::{FlowConfig, StatusRules};
use mlc_core::entity::derived;
use mlc_core::invoice::{aging_bucket, due_from_terms, parse_business_date, status, DocumentKind};
use mlc_core::money::{self, Decimal};
use mlc_core::{Entity, Record, RecordKey};
use serde_json::Value;

/// Reads a decimal that may be a JSON number or a space-padded string (never through `f64`).
pub fn decimal(record: &Record, field: &str) -> Option<Decimal> {
    money::decimal(record.get(field)).ok().flatten()
}

fn text<'a>(record: &'a Record, field: &str) -> Option<&'a str> {
    record.get(field).and_then(Value::as_str)
}

fn date(record: &Record, field: &str) -> Option<NaiveDate> {
    text(record, field).and_then(parse_business_date)
}

/// The record key from the entity's key columns, raw (padding kept).
pub fn record_key(entity: Entity, record: &Record) -> Option<RecordKey> {
    use std::fmt::Write as _;
    // The parts joined by `|` as `RecordKey::composite` does, written into one buffer.
    let mut raw = String::with_capacity(32);
    for (i, f) in entity.key_fields().iter().enumerate() {
        if i > 0 {
            raw.push('|');
        }
        match record.get(*f)? {
            Value::String(s) => raw.push_str(s),
            Value::Null => return None,
            Value::Number(n) => {
                let _ = write!(raw, "{n}");
            }
            other => {
                let _ = write!(raw, "{other}");
            }
        }
    }
    Some(RecordKey::new(raw))
}

/// Adds the derived fields to a row. Returns whether the record is open (has a balance).
pub fn add_derived(
    flow: &FlowConfig,
    entity: Entity,
    key: &RecordKey,
    record: &mut Record,
    today: NaiveDate,
) -> bool {
    add_derived_for(flow, entity, &key.id(), record, today)
}

/// [`add_derived`] for a key whose identity ([`RecordKey::id`]) the caller has already.
pub fn add_derived_for(
    flow: &FlowConfig,
    entity: Entity,
    key_id: &str,
    record: &mut Record,
    today: NaiveDate,
) -> bool {
    record.insert(derived::KEY.into(), Value::String(key_id.to_string()));
    let default_rules = StatusRules::default();
    let rules = flow
        .entity(entity)
        .map_or(&default_rules, |e| &e.status_rules);
    let (balance, due, kind) = match entity {
        Entity::ArInvoice => {
            let balance = decimal(record, "InvoiceBal1");
            let due = match &rules.due_date_from {
                Some(col) => date(record, col),
                None => date(record, "InvoiceDate").map(|d| {
                    let days = text(record, "TermsCode")
                        .and_then(|t| flow.syspro.terms_days.get(t.trim()))
                        .copied()
                        .unwrap_or(flow.syspro.default_due_days);
                    due_from_terms(d, days)
                }),
            };
            let kind = if rules.credit_notes_fall_overdue {
                DocumentKind::Debit
            } else {
                DocumentKind::from_document_type(text(record, "DocumentType"))
            };
            (balance, due, kind)
        }
        Entity::ApInvoice => (
            decimal(record, "MthInvBal1"),
            date(record, rules.due_date_from.as_deref().unwrap_or("DueDate")),
            DocumentKind::Debit,
        ),
        Entity::PorMasterHdr => {
            let st = text(record, "OrderStatus").map(str::trim).unwrap_or("");
            let label = match rules.order_status.get(st) {
                Some(l) => l.clone(),
                None => match st {
                    "9" => "complete",
                    "*" => "cancelled",
                    "" => "unknown",
                    _ => "open",
                }
                .to_string(),
            };
            let open = label == "open";
            record.insert(derived::STATUS.into(), Value::String(label));
            if let Some(d) = date(record, "OrderDueDate") {
                record.insert(derived::DUE_DATE.into(), Value::String(iso_date(d)));
            }
            return open;
        }
        _ => return false,
    };
    let Some(balance) = balance else {
        return false;
    };
    let st = status(balance, due, today, kind);
    record.insert(derived::STATUS.into(), Value::String(st.as_str().into()));
    record.insert(
        derived::BALANCE.into(),
        money::to_json(money::round_half_up(balance, 2)),
    );
    record.insert(
        derived::DUE_DATE.into(),
        due.map(|d| Value::String(iso_date(d)))
            .unwrap_or(Value::Null),
    );
    record.insert(
        derived::AGING.into(),
        Value::String(aging_bucket(st, due, today).into()),
    );
    st != mlc_core::invoice::InvoiceStatus::Paid
}

/// `YYYY-MM-DD`, as `NaiveDate`'s `Display` writes it for years 0–9999, in one allocation
/// (called for every invoice a poll reads).
fn iso_date(d: NaiveDate) -> String {
    use chrono::Datelike as _;
    use std::fmt::Write as _;
    if !(0..=9999).contains(&d.year()) {
        return d.to_string();
    }
    let mut s = String::with_capacity(10);
    let _ = write!(s, "{:04}-{:02}-{:02}", d.year(), d.month(), d.day());
    s
}

/// The column whose non-zero value marks an open item, for `open-items` rescans.
pub fn balance_field(entity: Entity) -> Option<&'static str> {
    match entity {
        Entity::ArInvoice => Some("InvoiceBal1"),
        Entity::ApInvoice => Some("MthInvBal1"),
        _ => None,
    }
}

/// Columns the derivations read, per entity.
pub fn derivation_inputs(entity: Entity) -> &'static [&'static str] {
    match entity {
        Entity::ArInvoice => &["InvoiceBal1", "InvoiceDate", "TermsCode", "DocumentType"],
        Entity::ApInvoice => &["MthInvBal1", "DueDate"],
        Entity::PorMasterHdr => &["OrderStatus", "OrderDueDate"],
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn po_flow(order_status: &str) -> FlowConfig {
        let toml = format!(
            r#"
id = "po"
destination = {{ kind = "monday", token = "env:T" }}
syspro = {{ base_url = "http://127.0.0.1:1", company = "A", operator = "O", password = "env:P" }}
[[entities]]
entity = "PorMasterHdr"
change_detection = "rowversion"
status_rules = {{ order_status = {{ {order_status} }} }}
"#
        );
        toml::from_str(&toml).expect("flow")
    }

    #[test]
    fn order_status_codes_follow_the_flow_then_the_defaults() {
        let flow = po_flow(r#""4" = "partly received", "S" = "open""#);
        let day = NaiveDate::from_ymd_opt(2026, 12, 7).expect("date");
        for (code, label, open) in [
            ("4", "partly received", false),
            ("S", "open", true),
            ("9", "complete", false),
            ("1", "open", true),
            ("*", "cancelled", false),
        ] {
            let mut r = Record::new();
            r.insert("OrderStatus".into(), Value::String(format!("{code} ")));
            let got = add_derived_for(&flow, Entity::PorMasterHdr, "P1", &mut r, day);
            assert_eq!(r[derived::STATUS], Value::String(label.into()), "{code}");
            assert_eq!(got, open, "{code}");
        }
    }

    #[test]
    fn iso_dates_match_chrono() {
        for (y, m, d) in [
            (2026, 12, 3),
            (1, 1, 1),
            (999, 10, 31),
            (9999, 2, 28),
            (10_000, 1, 1),
        ] {
            let date = NaiveDate::from_ymd_opt(y, m, d).expect("valid date");
            assert_eq!(iso_date(date), date.to_string());
        }
    }
}
