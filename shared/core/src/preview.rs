//! What a sync would do to one record, without doing it: the payload a sink would send, field
//! by field, beside the destination's current value, and the resulting action.
//!
//! Sinks build a [`Preview`] from the very function their `write` uses to build a record's
//! payload, so a preview can never show something other than what a sync sends. The
//! comparison helpers here are pure so both sinks judge "changed" the same way.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::invoice::parse_business_date;
use crate::money;

/// One field of the payload beside the destination's value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldPreview {
    /// The destination's field or column id.
    pub field: String,
    /// The value a sync sends, exactly as the sink would send it.
    pub new: Value,
    /// The destination's value now; `None` when the record does not exist there (or the
    /// field could not be read).
    pub current: Option<Value>,
    /// Whether writing `new` would change the destination (compared by type: decimals
    /// numerically, dates as dates, blank and missing alike).
    pub changed: bool,
}

/// What a sync would do with a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum PreviewAction {
    /// A new destination record.
    Create,
    /// An existing record gets these fields.
    Update {
        /// The fields whose value would change.
        fields: Vec<String>,
    },
    /// The destination already holds every value (or the record writes nothing).
    Nothing,
    /// The sink would refuse the record (mapping error, ambiguous match): a sync would
    /// dead-letter it with this reason.
    Refuse {
        /// Why.
        reason: String,
    },
}

/// The preview of one record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preview {
    /// Where it goes: the sObject (`Account`) or the board (`board 123`).
    pub destination: String,
    /// The existing destination record's id, when one was found.
    pub destination_id: Option<String>,
    /// The payload, field by field.
    pub fields: Vec<FieldPreview>,
    /// What a sync would do.
    pub action: PreviewAction,
    /// Anything the operator should know that the fields do not show (e.g. a link written
    /// only at write time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Preview {
    /// A preview whose action follows from its fields: create when nothing exists, update
    /// the changed fields, otherwise nothing.
    pub fn from_fields(
        destination: String,
        destination_id: Option<String>,
        fields: Vec<FieldPreview>,
    ) -> Self {
        let action = match &destination_id {
            None => PreviewAction::Create,
            Some(_) => {
                let changed: Vec<String> = fields
                    .iter()
                    .filter(|f| f.changed)
                    .map(|f| f.field.clone())
                    .collect();
                if changed.is_empty() {
                    PreviewAction::Nothing
                } else {
                    PreviewAction::Update { fields: changed }
                }
            }
        };
        Preview {
            destination,
            destination_id,
            fields,
            action,
            note: None,
        }
    }

    /// A record the sink would not write, with the reason.
    pub fn refused(destination: String, reason: String) -> Self {
        Preview {
            destination,
            destination_id: None,
            fields: Vec::new(),
            action: PreviewAction::Refuse { reason },
            note: None,
        }
    }

    /// Adds a note.
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }
}

/// A field beside its current value, `changed` judged by [`same_value`]; a field of a record
/// that does not exist yet (`current` `None`) is always a change.
pub fn field(name: impl Into<String>, new: Value, current: Option<Value>) -> FieldPreview {
    let changed = match &current {
        None => true,
        Some(c) => !same_value(&new, c),
    };
    FieldPreview {
        field: name.into(),
        new,
        current,
        changed,
    }
}

/// True for null, a blank string, an empty array or object: what destinations show as "no
/// value", so blank and missing are alike.
pub fn is_blank(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// Whether writing `new` over `current` changes nothing. Numbers compare as decimals when
/// either side is a JSON number (`"100.5"` and `100.50` are equal; text fields holding digits
/// stay text); a `YYYY-MM-DD` date equals the same date in any form the destination returns;
/// text compares trimmed (SYSPRO pads, destinations trim); blank equals missing.
pub fn same_value(new: &Value, current: &Value) -> bool {
    match (is_blank(new), is_blank(current)) {
        (true, true) => return true,
        (true, false) | (false, true) => return false,
        _ => {}
    }
    if new.is_number() || current.is_number() {
        return same_decimal(new, current);
    }
    match (new, current) {
        (Value::String(a), Value::String(b)) => same_date(a, b) || a.trim() == b.trim(),
        (a, b) => a == b,
    }
}

/// Both sides as decimals, equal numerically; false when either is not a number.
pub fn same_decimal(a: &Value, b: &Value) -> bool {
    match (money::decimal(Some(a)), money::decimal(Some(b))) {
        (Ok(Some(x)), Ok(Some(y))) => x == y,
        _ => false,
    }
}

/// `a` is a `YYYY-MM-DD` date and `b` the same day (a date or a date-time).
pub fn same_date(a: &str, b: &str) -> bool {
    let a = a.trim();
    if a.len() != 10 {
        return false;
    }
    match (parse_business_date(a), parse_business_date(b)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decimals_compare_numerically() {
        assert!(same_value(&json!(100.5), &json!("100.50")));
        assert!(same_value(&json!("100.5"), &json!(100.50)));
        assert!(same_value(&json!(1250), &json!(1250.0)));
        assert!(!same_value(&json!(100.5), &json!(100.51)));
        assert!(!same_value(&json!(100), &json!("abc")));
        // Text holding digits stays text: leading zeros matter.
        assert!(!same_value(&json!("0315550100"), &json!("315550100")));
    }

    #[test]
    fn dates_text_and_blanks() {
        assert!(same_value(
            &json!("2026-12-31"),
            &json!("2026-12-31T00:00:00.000+0000")
        ));
        assert!(!same_value(&json!("2026-12-31"), &json!("2026-12-30")));
        assert!(same_value(&json!("ACME01  "), &json!("ACME01")));
        assert!(!same_value(&json!("acme01"), &json!("ACME01")));
        assert!(same_value(&Value::Null, &json!("  ")));
        assert!(!same_value(&json!("x"), &Value::Null));
        assert!(same_value(&json!(true), &json!(true)));
        assert!(!same_value(&json!(true), &json!(false)));
    }

    #[test]
    fn action_follows_fields() {
        let p = Preview::from_fields(
            "Account".into(),
            None,
            vec![field("Name", json!("A"), None)],
        );
        assert_eq!(p.action, PreviewAction::Create);
        let p = Preview::from_fields(
            "Account".into(),
            Some("001".into()),
            vec![
                field("Name", json!("A"), Some(json!("A"))),
                field("Amount", json!(5), Some(json!(6))),
            ],
        );
        assert_eq!(
            p.action,
            PreviewAction::Update {
                fields: vec!["Amount".into()]
            }
        );
        let p = Preview::from_fields(
            "Account".into(),
            Some("001".into()),
            vec![field("Name", json!("A"), Some(json!("A ")))],
        );
        assert_eq!(p.action, PreviewAction::Nothing);
    }
}
