//! Field mapping: source record → destination fields, with small transforms. Pure.
//!
//! The user's reference for every rule key is `docs/mapping.md`.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::Value;

use crate::config::{FieldMapping, MappingRule, ValueKind};
use crate::event::Record;
use crate::invoice::parse_business_date;
use crate::money;

/// A record that cannot be mapped: which destination field, from which source field, why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field {field}: {message}")]
pub struct MappingError {
    /// The destination field.
    pub field: String,
    /// What went wrong (names the source field and value).
    pub message: String,
}

/// Maps a whole record. Fails on the first field that cannot be mapped.
pub fn apply(
    mapping: &BTreeMap<String, FieldMapping>,
    record: &Record,
) -> Result<Record, MappingError> {
    let mut out = Record::new();
    for (dest, rule) in mapping {
        let v = apply_one(dest, rule, record)?;
        out.insert(dest.clone(), v);
    }
    Ok(out)
}

/// The status a record carries when its key is gone from SYSPRO.
pub const REMOVED: &str = "removed";

/// True for the record of a key that no longer exists in SYSPRO (`_Status = removed`).
pub fn is_removed(record: &Record) -> bool {
    record
        .get(crate::entity::derived::STATUS)
        .and_then(Value::as_str)
        == Some(REMOVED)
}

/// The rules a removal may write: those that read only `_Status` and say what `removed`
/// becomes (no map, or a map with a `removed` entry; with labels for `_Status`, a `removed`
/// label, and the map, if any, has an entry for that label). A record gone from SYSPRO carries
/// only its key, so every other field would be written empty: those keep their destination
/// value.
pub fn removal_rules(mapping: &BTreeMap<String, FieldMapping>) -> BTreeMap<String, FieldMapping> {
    use crate::entity::derived::STATUS;
    mapping
        .iter()
        .filter(|(_, rule)| {
            let reads = source_fields(rule);
            let status_only = !reads.is_empty() && reads.iter().all(|f| f == STATUS);
            let maps_removed = match rule {
                FieldMapping::Rule(r) => {
                    let removed = match r.labels.as_ref().and_then(|l| l.get(STATUS)) {
                        Some(labels) => labels.get(REMOVED).map(|l| l.trim()),
                        None => Some(REMOVED),
                    };
                    removed.is_some_and(|v| r.map.as_ref().is_none_or(|m| m.contains_key(v)))
                }
                FieldMapping::Field(_) => true,
            };
            status_only && maps_removed
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The source fields a mapping reads (for validation against the entity's columns, and so the
/// poll selects them). Fields with `labels` are read like any other.
pub fn source_fields(rule: &FieldMapping) -> Vec<String> {
    match rule {
        FieldMapping::Field(f) => vec![f.clone()],
        FieldMapping::Rule(r) => {
            let mut v = Vec::new();
            if let Some(f) = &r.from {
                v.push(f.clone());
            }
            if let Some(c) = &r.concat {
                v.extend(c.iter().cloned());
            }
            if let Some(t) = &r.template {
                v.extend(template_fields(t));
            }
            v
        }
    }
}

/// The `{Field}` placeholders of a template.
pub fn template_fields(template: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        match after.find('}') {
            Some(end) => {
                out.push(after[..end].to_string());
                rest = &after[end + 1..];
            }
            None => break,
        }
    }
    out
}

/// Renders a template; missing fields render empty. Values are trimmed (SYSPRO pads).
pub fn render_template(template: &str, record: &Record) -> String {
    match render_with(template, |name| {
        Ok::<_, std::convert::Infallible>(record.get(name).map(as_text))
    }) {
        Ok(s) => s,
        Err(never) => match never {},
    }
}

/// Renders a template, each placeholder's text given by `field` (`None`: renders empty).
fn render_with<'v, E>(
    template: &str,
    mut field: impl FnMut(&str) -> Result<Option<Cow<'v, str>>, E>,
) -> Result<String, E> {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find('}') {
            Some(end) => {
                if let Some(v) = field(&after[..end])? {
                    out.push_str(v.trim());
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// A rule's `labels`: source field → (trimmed value → label).
type Labels = BTreeMap<String, BTreeMap<String, String>>;

/// The label of `field`'s value `v`: `None` when the rule has no labels for the field or the
/// value is blank (a blank stays blank); an error when the value has no label.
fn label_of<'l>(
    field: &str,
    v: &Value,
    labels: Option<&'l Labels>,
) -> Result<Option<&'l str>, String> {
    let Some(known) = labels.and_then(|l| l.get(field)) else {
        return Ok(None);
    };
    let text = as_text(v);
    let key = text.trim();
    if key.is_empty() {
        return Ok(None);
    }
    match known.get(key) {
        Some(label) => Ok(Some(label.as_str())),
        None => Err(format!(
            "value {key:?} from {field} has no entry in its labels (known: {})",
            known.keys().cloned().collect::<Vec<_>>().join(", ")
        )),
    }
}

/// The text of a source field for `concat` and `template`, through its labels (`None`: the
/// field is missing).
fn field_text<'a>(
    record: &'a Record,
    field: &str,
    labels: Option<&'a Labels>,
) -> Result<Option<Cow<'a, str>>, String> {
    let Some(v) = record.get(field) else {
        return Ok(None);
    };
    Ok(Some(match label_of(field, v, labels)? {
        Some(label) => Cow::Borrowed(label),
        None => as_text(v),
    }))
}

fn as_text(v: &Value) -> Cow<'_, str> {
    match v {
        Value::String(s) => Cow::Borrowed(s.as_str()),
        Value::Null => Cow::Borrowed(""),
        other => Cow::Owned(other.to_string()),
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        _ => false,
    }
}

fn apply_one(dest: &str, rule: &FieldMapping, record: &Record) -> Result<Value, MappingError> {
    let err = |message: String| MappingError {
        field: dest.to_string(),
        message,
    };
    let rule = match rule {
        FieldMapping::Field(f) => {
            return Ok(record.get(f).cloned().unwrap_or(Value::Null));
        }
        FieldMapping::Rule(r) => r,
    };
    let MappingRule {
        from,
        concat,
        separator,
        template,
        value,
        labels,
        trim,
        map,
        default,
        kind,
        max_len,
        round,
        column_type: _,
    } = rule;

    let labels = labels.as_ref();
    let mut v = if let Some(f) = from {
        match record.get(f) {
            Some(raw) => match label_of(f, raw, labels).map_err(err)? {
                Some(label) => Value::String(label.to_string()),
                None => raw.clone(),
            },
            None => Value::Null,
        }
    } else if let Some(fields) = concat {
        let sep = separator.as_deref().unwrap_or(" ");
        let mut parts: Vec<String> = Vec::with_capacity(fields.len());
        for f in fields {
            if let Some(text) = field_text(record, f, labels).map_err(err)? {
                let text = text.trim();
                if !text.is_empty() {
                    parts.push(text.to_string());
                }
            }
        }
        Value::String(parts.join(sep))
    } else if let Some(t) = template {
        Value::String(render_with(t, |name| field_text(record, name, labels)).map_err(err)?)
    } else if let Some(c) = value {
        c.clone()
    } else {
        Value::Null
    };

    if *trim {
        if let Value::String(s) = &v {
            v = Value::String(s.trim().to_string());
        }
    }
    if let Some(m) = map {
        if !is_empty(&v) {
            let key = as_text(&v).trim().to_string();
            match m.get(&key) {
                Some(mapped) => v = Value::String(mapped.clone()),
                None => {
                    return Err(err(format!(
                        "value {key:?} from {} has no entry in the map (known: {})",
                        from.as_deref().unwrap_or("source"),
                        m.keys().cloned().collect::<Vec<_>>().join(", ")
                    )))
                }
            }
        }
    }
    if is_empty(&v) {
        if let Some(d) = default {
            v = d.clone();
        }
    }
    if let Some(k) = kind {
        v = convert(v, *k).map_err(|m| {
            err(format!(
                "{m} (source {})",
                from.as_deref().unwrap_or("value")
            ))
        })?;
    }
    if let Some(places) = round {
        v = match money::decimal(Some(&v)).map_err(|m| err(format!("round: {m}")))? {
            Some(d) => money::to_json(money::round_half_up(d, *places)),
            None => Value::Null,
        };
    }
    if let (Some(n), Value::String(s)) = (max_len, &v) {
        if s.chars().count() > *n {
            v = Value::String(s.chars().take(*n).collect());
        }
    }
    Ok(v)
}

/// Converts a value to a kind. SYSPRO numbers may arrive space-padded (`"     2.2046"`) and
/// dates as `…T00:00:00+02:00` or `0000-00-00` (none).
pub fn convert(v: Value, kind: ValueKind) -> Result<Value, String> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    match kind {
        ValueKind::Text => Ok(match v {
            Value::String(s) => Value::String(s),
            other => Value::String(other.to_string()),
        }),
        // Through `Decimal`, never `f64`: the destination receives the exact decimal text.
        ValueKind::Number => match money::decimal(Some(&v))? {
            Some(d) => Ok(money::to_json(d)),
            None => Ok(Value::Null),
        },
        ValueKind::Date => match &v {
            Value::String(s) if s.trim().is_empty() || s.starts_with("0000-00-00") => {
                Ok(Value::Null)
            }
            Value::String(s) => parse_business_date(s)
                .map(|d| Value::String(d.format("%Y-%m-%d").to_string()))
                .ok_or_else(|| format!("{s:?} is not a date (expected YYYY-MM-DD)")),
            other => Err(format!("{other} is not a date")),
        },
        ValueKind::Bool => match &v {
            Value::Bool(_) => Ok(v),
            Value::String(s) => match s.trim().to_ascii_uppercase().as_str() {
                "Y" | "YES" | "TRUE" | "1" => Ok(Value::Bool(true)),
                "N" | "NO" | "FALSE" | "0" | "" => Ok(Value::Bool(false)),
                _ => Err(format!("{s:?} is not a boolean")),
            },
            other => Err(format!("{other} is not a boolean")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(v: Value) -> Record {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn transforms_apply_in_order() {
        let r = rec(
            json!({"Name": "  Acme Steel  ", "Bal": "   12.50", "D": "2026-11-24T00:00:00+02:00",
                           "_Status": "overdue", "A1": "1 Main St", "A2": "", "A3": "Durban"}),
        );
        let mut m = BTreeMap::new();
        m.insert(
            "Name".into(),
            FieldMapping::Rule(MappingRule {
                from: Some("Name".into()),
                trim: true,
                ..Default::default()
            }),
        );
        m.insert(
            "Amount".into(),
            FieldMapping::Rule(MappingRule {
                from: Some("Bal".into()),
                kind: Some(ValueKind::Number),
                ..Default::default()
            }),
        );
        m.insert(
            "CloseDate".into(),
            FieldMapping::Rule(MappingRule {
                from: Some("D".into()),
                kind: Some(ValueKind::Date),
                ..Default::default()
            }),
        );
        m.insert(
            "StageName".into(),
            FieldMapping::Rule(MappingRule {
                from: Some("_Status".into()),
                map: Some([("overdue".to_string(), "Negotiation".to_string())].into()),
                ..Default::default()
            }),
        );
        m.insert(
            "Street".into(),
            FieldMapping::Rule(MappingRule {
                concat: Some(vec!["A1".into(), "A2".into(), "A3".into()]),
                separator: Some(", ".into()),
                ..Default::default()
            }),
        );
        m.insert(
            "Phone".into(),
            FieldMapping::Rule(MappingRule {
                from: Some("Missing".into()),
                default: Some(json!("n/a")),
                ..Default::default()
            }),
        );
        let out = apply(&m, &r).unwrap();
        assert_eq!(out["Name"], json!("Acme Steel"));
        assert_eq!(out["Amount"], json!(12.5));
        assert_eq!(out["CloseDate"], json!("2026-11-24"));
        assert_eq!(out["StageName"], json!("Negotiation"));
        assert_eq!(out["Street"], json!("1 Main St, Durban"));
        assert_eq!(out["Phone"], json!("n/a"));
    }

    #[test]
    fn bad_number_names_field_and_source() {
        let r = rec(json!({"Bal": "abc"}));
        let mut m = BTreeMap::new();
        m.insert(
            "Amount".into(),
            FieldMapping::Rule(MappingRule {
                from: Some("Bal".into()),
                kind: Some(ValueKind::Number),
                ..Default::default()
            }),
        );
        let e = apply(&m, &r).unwrap_err();
        assert_eq!(e.field, "Amount");
        assert!(
            e.message.contains("Bal") && e.message.contains("abc"),
            "{e}"
        );
    }

    #[test]
    fn removal_writes_only_status_rules_that_know_removed() {
        let rule = |from: &str, map: Option<&[(&str, &str)]>| {
            FieldMapping::Rule(MappingRule {
                from: Some(from.into()),
                map: map.map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect()
                }),
                ..Default::default()
            })
        };
        let mut m = BTreeMap::new();
        m.insert("Amount".into(), rule("CurrencyValue", None));
        m.insert(
            "Stage".into(),
            rule("_Status", Some(&[("open", "Open"), ("removed", "Gone")])),
        );
        m.insert("Label".into(), rule("_Status", Some(&[("open", "Open")])));
        m.insert("Raw".into(), FieldMapping::Field("_Status".into()));
        let kept: Vec<String> = removal_rules(&m).into_keys().collect();
        assert_eq!(kept, ["Raw", "Stage"]);
        let r = rec(json!({"Customer": "C1", "_Status": "removed"}));
        assert!(is_removed(&r));
        let out = apply(&removal_rules(&m), &r).unwrap();
        assert_eq!(out["Stage"], json!("Gone"));
        assert_eq!(out.len(), 2);
    }

    fn value_map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// `DocumentType = { C = "Credit note", I = "Invoice", D = "Debit note" }`.
    fn document_labels() -> Option<BTreeMap<String, BTreeMap<String, String>>> {
        Some(
            [(
                "DocumentType".to_string(),
                value_map(&[("C", "Credit note"), ("I", "Invoice"), ("D", "Debit note")]),
            )]
            .into(),
        )
    }

    fn one(dest: &str, rule: MappingRule, r: &Record) -> Result<Value, MappingError> {
        let m: BTreeMap<String, FieldMapping> =
            [(dest.to_string(), FieldMapping::Rule(rule))].into();
        apply(&m, r).map(|mut out| out.remove(dest).unwrap())
    }

    #[test]
    fn labels_in_a_template() {
        let rule = MappingRule {
            template: Some("{DocumentType} {Invoice}".into()),
            labels: document_labels(),
            ..Default::default()
        };
        // SYSPRO pads char columns: "C " is C.
        for (doc, invoice, want) in [
            ("C ", "100031", "Credit note 100031"),
            ("I", "100032 ", "Invoice 100032"),
            ("  D  ", "100033", "Debit note 100033"),
        ] {
            let r = rec(json!({"DocumentType": doc, "Invoice": invoice}));
            assert_eq!(
                one("Name", rule.clone(), &r).unwrap(),
                json!(want),
                "{doc:?}"
            );
        }
        // The labelled field is still read (the poll selects it).
        assert_eq!(
            source_fields(&FieldMapping::Rule(rule)),
            ["DocumentType", "Invoice"]
        );
    }

    #[test]
    fn labels_in_concat_and_from() {
        let concat = MappingRule {
            concat: Some(vec!["DocumentType".into(), "Invoice".into()]),
            separator: Some(" · ".into()),
            labels: document_labels(),
            ..Default::default()
        };
        let r = rec(json!({"DocumentType": "D ", "Invoice": " 100033"}));
        assert_eq!(
            one("Title", concat.clone(), &r).unwrap(),
            json!("Debit note · 100033")
        );
        // A blank labelled part is skipped like any blank part.
        let r = rec(json!({"DocumentType": "  ", "Invoice": "100033"}));
        assert_eq!(one("Title", concat, &r).unwrap(), json!("100033"));

        let from = MappingRule {
            from: Some("DocumentType".into()),
            labels: document_labels(),
            ..Default::default()
        };
        let r = rec(json!({"DocumentType": "C   "}));
        assert_eq!(one("Kind", from.clone(), &r).unwrap(), json!("Credit note"));
        // Labels come before the transforms: map sees the label.
        let mapped = MappingRule {
            map: Some(value_map(&[("Credit note", "CR"), ("Invoice", "IN")])),
            ..from
        };
        let r = rec(json!({"DocumentType": "I"}));
        assert_eq!(one("Kind", mapped, &r).unwrap(), json!("IN"));
    }

    #[test]
    fn a_value_without_a_label_names_field_source_value_and_labels() {
        for rule in [
            MappingRule {
                template: Some("{DocumentType} {Invoice}".into()),
                labels: document_labels(),
                ..Default::default()
            },
            MappingRule {
                concat: Some(vec!["DocumentType".into(), "Invoice".into()]),
                labels: document_labels(),
                ..Default::default()
            },
            MappingRule {
                from: Some("DocumentType".into()),
                labels: document_labels(),
                ..Default::default()
            },
        ] {
            let r = rec(json!({"DocumentType": "P ", "Invoice": "100034"}));
            let e = one("Name", rule, &r).unwrap_err();
            assert_eq!(e.field, "Name");
            assert_eq!(
                e.to_string(),
                "field Name: value \"P\" from DocumentType has no entry in its labels (known: C, D, I)"
            );
        }
    }

    #[test]
    fn blank_labelled_values_stay_blank() {
        let template = MappingRule {
            template: Some("{DocumentType} {Invoice}".into()),
            labels: document_labels(),
            ..Default::default()
        };
        for r in [
            json!({"Invoice": "100035", "DocumentType": ""}),
            json!({"Invoice": "100035", "DocumentType": "   "}),
            json!({"Invoice": "100035", "DocumentType": null}),
            json!({"Invoice": "100035"}),
        ] {
            let r = rec(r);
            assert_eq!(
                one("Name", template.clone(), &r).unwrap(),
                json!(" 100035"),
                "{r:?}"
            );
        }
        // From a blank labelled field, `default` still applies.
        let from = MappingRule {
            from: Some("DocumentType".into()),
            labels: document_labels(),
            default: Some(json!("Unknown")),
            ..Default::default()
        };
        for (r, want) in [
            (json!({"DocumentType": " "}), "Unknown"),
            (json!({"DocumentType": null}), "Unknown"),
            (json!({}), "Unknown"),
            (json!({"DocumentType": "C"}), "Credit note"),
        ] {
            assert_eq!(one("Kind", from.clone(), &rec(r)).unwrap(), json!(want));
        }
    }

    #[test]
    fn on_hold_flag_maps_to_labels_with_a_default_for_blank() {
        // OnHold = { from = "OnHold", map = { Y = "Yes", N = "No" }, default = "No" }
        let rule = MappingRule {
            from: Some("OnHold".into()),
            map: Some(value_map(&[("Y", "Yes"), ("N", "No")])),
            default: Some(json!("No")),
            ..Default::default()
        };
        for (r, want) in [
            (json!({"OnHold": "Y"}), "Yes"),
            (json!({"OnHold": "Y "}), "Yes"),
            (json!({"OnHold": "N"}), "No"),
            (json!({"OnHold": ""}), "No"),
            (json!({"OnHold": "  "}), "No"),
            (json!({"OnHold": null}), "No"),
            (json!({}), "No"),
        ] {
            assert_eq!(
                one("OnHold", rule.clone(), &rec(r.clone())).unwrap(),
                json!(want),
                "{r}"
            );
        }
        let e = one("OnHold", rule, &rec(json!({"OnHold": "X"}))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "field OnHold: value \"X\" from OnHold has no entry in the map (known: N, Y)"
        );
    }

    #[test]
    fn removal_reads_status_labels() {
        let status_labels =
            |pairs: &[(&str, &str)]| Some([("_Status".to_string(), value_map(pairs))].into());
        let mut m = BTreeMap::new();
        m.insert(
            "Known".into(),
            FieldMapping::Rule(MappingRule {
                template: Some("{_Status}".into()),
                labels: status_labels(&[("open", "Open"), ("removed", "Gone")]),
                ..Default::default()
            }),
        );
        m.insert(
            "Unknown".into(),
            FieldMapping::Rule(MappingRule {
                from: Some("_Status".into()),
                labels: status_labels(&[("open", "Open")]),
                ..Default::default()
            }),
        );
        m.insert(
            "Mapped".into(),
            FieldMapping::Rule(MappingRule {
                from: Some("_Status".into()),
                labels: status_labels(&[("removed", "Gone")]),
                map: Some(value_map(&[("Gone", "Closed")])),
                ..Default::default()
            }),
        );
        let kept: Vec<String> = removal_rules(&m).into_keys().collect();
        assert_eq!(kept, ["Known", "Mapped"]);
        let out = apply(&removal_rules(&m), &rec(json!({"_Status": "removed"}))).unwrap();
        assert_eq!(out["Known"], json!("Gone"));
        assert_eq!(out["Mapped"], json!("Closed"));
    }

    #[test]
    fn templates_render_and_list_fields() {
        let r = rec(json!({"Invoice": "100045", "Customer.Name": "Acme Steel "}));
        assert_eq!(
            render_template("INV {Invoice} · {Customer.Name}", &r),
            "INV 100045 · Acme Steel"
        );
        assert_eq!(template_fields("{A}-{B}"), vec!["A", "B"]);
    }
}
