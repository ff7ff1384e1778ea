//! Harness of the `mapping` fuzz target, shared with mlc-core's corpus replay test.
//! Input: three parts separated by NUL bytes: a mapping (JSON object of destination field →
//! rule, the shape flows files hold), a record (JSON object) and a template. The rules are
//! applied to the record; the template is rendered against it; each record value is converted
//! to every kind.

use std::collections::BTreeMap;

use mlc_core::config::{FieldMapping, ValueKind};
use mlc_core::mapping::{apply, convert, render_template, template_fields};
use mlc_core::Record;

/// Runs one input. Panics only on a bug.
pub fn run(data: &[u8]) {
    let mut parts = data.splitn(3, |b| *b == 0);
    let mapping_bytes = parts.next().unwrap_or_default();
    let record_bytes = parts.next().unwrap_or_default();
    let template = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let record: Record = serde_json::from_slice(record_bytes).unwrap_or_default();
    if let Ok(mapping) = serde_json::from_slice::<BTreeMap<String, FieldMapping>>(mapping_bytes) {
        if let Ok(out) = apply(&mapping, &record) {
            assert_eq!(out.len(), mapping.len());
        }
    }
    let rendered = render_template(&template, &record);
    if !template.contains('{') {
        assert_eq!(rendered, template);
    }
    let _ = template_fields(&template);
    for v in record.values() {
        for k in [
            ValueKind::Text,
            ValueKind::Number,
            ValueKind::Date,
            ValueKind::Bool,
        ] {
            let _ = convert(v.clone(), k);
        }
    }
}
