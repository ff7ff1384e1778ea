//! Pure: change events → Salesforce payloads and request bodies (record fields, collections,
//! Composite, SOQL with escaped literals, Bulk CSV). No I/O here, so every shape is unit-tested.

use mlc_core::config::{EntityConfig, SalesforceConnection, ValueKind, OPPORTUNITY_AMOUNT_FROM};
use mlc_core::entity::derived;
use mlc_core::mapping::{apply, convert, is_removed, removal_rules, render_template, REMOVED};
use mlc_core::{ChangeEvent, Failure, Record};
use serde_json::{json, Value};

/// Default target of customers.
pub const ACCOUNT: (&str, &str) = ("Account", "SYSPRO_Customer__c");
/// Default target of invoices.
pub const OPPORTUNITY: (&str, &str) = ("Opportunity", "SYSPRO_Invoice__c");
/// Salesforce's limit on Opportunity names.
pub const OPPORTUNITY_NAME_MAX: usize = 120;
/// Records per sObject Collections request.
pub const COLLECTION_MAX: usize = 200;
/// Subrequests per Composite request.
pub const COMPOSITE_MAX_SUBREQUESTS: usize = 25;
/// Collections or queries per Composite request.
pub const COMPOSITE_MAX_COLLECTIONS: usize = 5;
/// Longest SOQL text we put in one query URL (REST URIs are limited to 16,384 bytes).
pub const SOQL_MAX_ENCODED: usize = 12_000;

/// An sObject and its external-id field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `Account`, `Opportunity`.
    pub object: String,
    /// `SYSPRO_Customer__c` …
    pub ext_field: String,
}

impl Target {
    /// The entity's configured target, or the default.
    pub fn of(ec: Option<&EntityConfig>, default: (&str, &str)) -> Self {
        match ec.and_then(|e| e.salesforce.as_ref()) {
            Some(t) => Target {
                object: t.object.clone(),
                ext_field: t.external_id_field.clone(),
            },
            None => Target {
                object: default.0.to_string(),
                ext_field: default.1.to_string(),
            },
        }
    }
}

/// Escapes a SOQL string literal's content: `\ ' " \n \r \t \b \f` get a backslash. Nothing
/// else may be escaped (Salesforce rejects unknown escapes), so nothing else is touched.
pub fn escape_soql(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c => out.push(c),
        }
    }
    out
}

fn quoted(s: &str) -> String {
    format!("'{}'", escape_soql(s))
}

fn encoded_len(s: &str) -> usize {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .map(|p| p.len())
        .sum()
}

/// Queries that find Accounts by external id or by exact name, chunked so each stays under the
/// URI limit: `SELECT Id, Name, <ext> FROM <obj> WHERE <ext> IN (…) OR Name IN (…)`.
/// Salesforce compares text case-insensitively: callers compare the rows exactly.
pub fn lookup_queries(target: &Target, exts: &[String], names: &[String]) -> Vec<String> {
    let head = format!(
        "SELECT Id, Name, {ext} FROM {obj} WHERE ",
        ext = target.ext_field,
        obj = target.object
    );
    let mut out = Vec::new();
    let (mut e_chunk, mut n_chunk): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
    let mut size = encoded_len(&head) + 40;
    let flush = |e: &mut Vec<String>, n: &mut Vec<String>, out: &mut Vec<String>| {
        if e.is_empty() && n.is_empty() {
            return;
        }
        let mut parts = Vec::new();
        if !e.is_empty() {
            parts.push(format!("{} IN ({})", target.ext_field, e.join(", ")));
        }
        if !n.is_empty() {
            parts.push(format!("Name IN ({})", n.join(", ")));
        }
        out.push(format!("{head}{}", parts.join(" OR ")));
        e.clear();
        n.clear();
    };
    let items = exts
        .iter()
        .map(|e| (true, e))
        .chain(names.iter().map(|n| (false, n)));
    for (is_ext, v) in items {
        let lit = quoted(v);
        let len = encoded_len(&lit) + 6;
        if size + len > SOQL_MAX_ENCODED && !(e_chunk.is_empty() && n_chunk.is_empty()) {
            flush(&mut e_chunk, &mut n_chunk, &mut out);
            size = encoded_len(&head) + 40;
        }
        size += len;
        if is_ext {
            e_chunk.push(lit);
        } else {
            n_chunk.push(lit);
        }
    }
    flush(&mut e_chunk, &mut n_chunk, &mut out);
    out
}

/// Queries reading `fields` of the records of `object` whose `by` field is one of `values`,
/// chunked so each stays under the URI limit: `SELECT Id, f, … FROM obj WHERE by IN ('…')`.
/// Values are escaped literals; field and object names come from the flow's configuration.
/// Salesforce compares text case-insensitively: callers compare the rows exactly.
pub fn values_queries(object: &str, fields: &[String], by: &str, values: &[String]) -> Vec<String> {
    let mut select = vec!["Id".to_string()];
    for f in std::iter::once(by).chain(fields.iter().map(String::as_str)) {
        if !select.iter().any(|s| s == f) {
            select.push(f.to_string());
        }
    }
    let head = format!("SELECT {} FROM {object} WHERE {by} IN (", select.join(", "));
    let budget = SOQL_MAX_ENCODED.saturating_sub(encoded_len(&head) + 8);
    let mut out = Vec::new();
    let mut chunk: Vec<String> = Vec::new();
    let mut size = 0;
    for v in values {
        let lit = quoted(v);
        let len = encoded_len(&lit) + 6;
        if size + len > budget && !chunk.is_empty() {
            out.push(format!("{head}{})", chunk.join(", ")));
            chunk.clear();
            size = 0;
        }
        size += len;
        chunk.push(lit);
    }
    if !chunk.is_empty() {
        out.push(format!("{head}{})", chunk.join(", ")));
    }
    out
}

fn text(v: Option<&Value>) -> Option<String> {
    match v {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

fn mapping_failure(label: &str, e: mlc_core::mapping::MappingError) -> Failure {
    Failure::permanent(format!("{label}: cannot map: {e}")).with_field(e.field)
}

/// The customer code an invoice belongs to (first key part).
pub fn invoice_customer(event: &ChangeEvent) -> String {
    let parts = event.key.parts();
    if parts.len() > 1 {
        return parts[0].clone();
    }
    text(event.record.get("Customer"))
        .map(|s| s.trim_end().to_string())
        .unwrap_or_else(|| parts[0].clone())
}

/// Account fields of a customer (the external id excluded: the caller places it).
pub fn account_fields(
    ec: Option<&EntityConfig>,
    target: &Target,
    event: &ChangeEvent,
) -> Result<Record, Failure> {
    let label = event.label();
    if is_removed(&event.record) {
        return removal_fields(None, ec, target, event);
    }
    let mut out = match ec {
        Some(ec) => apply(&ec.mapping, &event.record).map_err(|e| mapping_failure(&label, e))?,
        None => Record::new(),
    };
    if !out.contains_key("Name") {
        if let Some(n) = text(event.record.get("Name")) {
            out.insert("Name".into(), Value::String(n));
        }
    }
    out.remove(&target.ext_field);
    out.remove("Id");
    Ok(out)
}

/// A minimal Account for a customer only known from its invoice.
pub fn minimal_account(customer: &str, name: Option<&str>) -> Record {
    let mut r = Record::new();
    r.insert(
        "Name".into(),
        Value::String(
            name.filter(|n| !n.trim().is_empty())
                .unwrap_or(customer)
                .trim()
                .to_string(),
        ),
    );
    r
}

/// Opportunity fields of an invoice (without the external id and the Account link).
pub fn opportunity_fields(
    conn: &SalesforceConnection,
    ec: Option<&EntityConfig>,
    target: &Target,
    event: &ChangeEvent,
) -> Result<Record, Failure> {
    let label = event.label();
    let rec = &event.record;
    if is_removed(rec) {
        return removal_fields(conn.stage_map.get(REMOVED), ec, target, event);
    }
    let mut out = Record::new();
    let name: String = render_template(&conn.opportunity_name, rec)
        .chars()
        .take(OPPORTUNITY_NAME_MAX)
        .collect();
    out.insert("Name".into(), Value::String(name));
    if let Some(v) = rec.get(OPPORTUNITY_AMOUNT_FROM).filter(|v| !v.is_null()) {
        let n = convert(v.clone(), ValueKind::Number).map_err(|m| {
            Failure::permanent(format!(
                "{label}: Amount from {OPPORTUNITY_AMOUNT_FROM}: {m}"
            ))
            .with_field("Amount")
        })?;
        out.insert("Amount".into(), n);
    }
    if let Some(d) = text(rec.get(derived::DUE_DATE)) {
        out.insert("CloseDate".into(), Value::String(d));
    }
    let status = text(rec.get(derived::STATUS));
    if !conn.stage_map.is_empty() {
        let Some(status) = status else {
            return Err(Failure::permanent(format!(
                "{label}: no {} to map to a stage",
                derived::STATUS
            ))
            .with_field("StageName"));
        };
        let Some(stage) = conn.stage_map.get(&status) else {
            return Err(Failure::permanent(format!(
                "{label}: status {status:?} has no entry in stage_map (known: {})",
                conn.stage_map
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .with_field("StageName"));
        };
        out.insert("StageName".into(), Value::String(stage.clone()));
    }
    if let Some(f) = &conn.aging_field {
        out.insert(
            f.clone(),
            rec.get(derived::AGING).cloned().unwrap_or(Value::Null),
        );
    }
    if let Some(f) = &conn.balance_field {
        let v = rec.get(derived::BALANCE).cloned().unwrap_or(Value::Null);
        let n = convert(v, ValueKind::Number).map_err(|m| {
            Failure::permanent(format!("{label}: {f} from {}: {m}", derived::BALANCE))
                .with_field(f.clone())
        })?;
        out.insert(f.clone(), n);
    }
    if let Some(ec) = ec {
        let mapped = apply(&ec.mapping, rec).map_err(|e| mapping_failure(&label, e))?;
        for (k, v) in mapped {
            out.insert(k, v);
        }
    }
    out.remove(&target.ext_field);
    out.remove("Id");
    Ok(out)
}

/// The fields a removal writes: the stage configured for `removed` and the mapped fields that
/// say what `removed` becomes ([`removal_rules`]); every other field keeps its value. Empty when
/// the flow configures nothing for removals.
fn removal_fields(
    stage: Option<&String>,
    ec: Option<&EntityConfig>,
    target: &Target,
    event: &ChangeEvent,
) -> Result<Record, Failure> {
    let mut out = Record::new();
    if let Some(stage) = stage {
        out.insert("StageName".into(), Value::String(stage.clone()));
    }
    if let Some(ec) = ec {
        let mapped = apply(&removal_rules(&ec.mapping), &event.record)
            .map_err(|e| mapping_failure(&event.label(), e))?;
        out.extend(mapped);
    }
    out.remove(&target.ext_field);
    out.remove("Id");
    Ok(out)
}

/// The API path prefix (`/services/data/v62.0`).
pub fn data_path(version: &str) -> String {
    format!("/services/data/{version}")
}

/// Body of an sObject Collections upsert: `PATCH {data}/composite/sobjects/{obj}/{ext}`.
pub fn collection_upsert_body(target: &Target, records: &[(String, Record)]) -> Value {
    let recs: Vec<Value> = records
        .iter()
        .map(|(ext, fields)| {
            let mut m = fields.clone();
            m.insert("attributes".into(), json!({"type": target.object}));
            m.insert(target.ext_field.clone(), Value::String(ext.clone()));
            Value::Object(m)
        })
        .collect();
    json!({"allOrNone": false, "records": recs})
}

/// Body of an sObject Collections update by Id: `PATCH {data}/composite/sobjects`.
pub fn collection_update_body(object: &str, records: &[(String, Record)]) -> Value {
    let recs: Vec<Value> = records
        .iter()
        .map(|(id, fields)| {
            let mut m = fields.clone();
            m.insert("attributes".into(), json!({"type": object}));
            m.insert("Id".into(), Value::String(id.clone()));
            Value::Object(m)
        })
        .collect();
    json!({"allOrNone": false, "records": recs})
}

/// One Composite subrequest.
#[derive(Debug, Clone, PartialEq)]
pub struct SubRequest {
    /// `GET`, `PATCH` …
    pub method: &'static str,
    /// Full path from the host (`/services/data/v62.0/…`).
    pub url: String,
    /// Letters, digits and underscores.
    pub reference: String,
    /// JSON body.
    pub body: Option<Value>,
}

/// A Composite request body: `allOrNone:false` so each subrequest stands alone, and
/// `collateSubrequests:false` so subrequests run in the order given (Accounts before the
/// Opportunities that point at them).
pub fn composite_body(subs: &[SubRequest]) -> Value {
    let reqs: Vec<Value> = subs
        .iter()
        .map(|s| {
            let mut v = json!({"method": s.method, "url": s.url, "referenceId": s.reference});
            if let Some(b) = &s.body {
                v["body"] = b.clone();
            }
            v
        })
        .collect();
    json!({"allOrNone": false, "collateSubrequests": false, "compositeRequest": reqs})
}

/// A query subrequest's URL.
pub fn query_url(version: &str, soql: &str) -> String {
    let q: String = url::form_urlencoded::byte_serialize(soql.as_bytes()).collect();
    format!("{}/query?q={q}", data_path(version))
}

/// Quotes one CSV field (always quoted: names carry commas and quotes).
pub fn csv_field(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// A CSV value: text as is, numbers and booleans printed, null as `#N/A` (Bulk 2.0 "set null").
pub fn csv_value(v: Option<&Value>) -> String {
    match v {
        None => String::new(),
        Some(Value::Null) => "#N/A".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// Parses RFC 4180 CSV (Bulk results).
pub fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut in_quotes = false;
    let mut any = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        any = true;
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                c => field.push(c),
            }
            continue;
        }
        match c {
            '"' => in_quotes = true,
            ',' => row.push(std::mem::take(&mut field)),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
                any = false;
            }
            c => field.push(c),
        }
    }
    if any {
        row.push(field);
        rows.push(row);
    }
    rows
}

/// Splits a Bulk `sf__Error` (`CODE:message:fields --`) into code and message.
pub fn split_bulk_error(e: &str) -> (String, String) {
    let e = e.trim().trim_end_matches("--").trim();
    match e.split_once(':') {
        Some((code, rest))
            if !code.is_empty() && code.chars().all(|c| c.is_ascii_uppercase() || c == '_') =>
        {
            (code.to_string(), rest.trim_end_matches(':').to_string())
        }
        _ => (String::new(), e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soql_escaping_is_exact() {
        assert_eq!(
            escape_soql(r#"O'Brien "Steel" \ Co"#),
            r#"O\'Brien \"Steel\" \\ Co"#
        );
        assert_eq!(escape_soql("a\nb\tc\r\u{8}\u{c}"), "a\\nb\\tc\\r\\b\\f");
        assert_eq!(escape_soql("100% _x"), "100% _x");
        let t = Target {
            object: "Account".into(),
            ext_field: "SYSPRO_Customer__c".into(),
        };
        let q = lookup_queries(&t, &["C1".into()], &["A'B".into()]);
        assert_eq!(
            q,
            vec![
                r"SELECT Id, Name, SYSPRO_Customer__c FROM Account WHERE SYSPRO_Customer__c IN ('C1') OR Name IN ('A\'B')"
            ]
        );
    }

    #[test]
    fn lookup_queries_chunk_under_the_uri_limit() {
        let t = Target {
            object: "Account".into(),
            ext_field: "X__c".into(),
        };
        let names: Vec<String> = (0..2000)
            .map(|i| format!("Customer number {i} (Pty) Ltd"))
            .collect();
        let q = lookup_queries(&t, &[], &names);
        assert!(q.len() > 1);
        for s in &q {
            assert!(encoded_len(s) <= SOQL_MAX_ENCODED, "{}", encoded_len(s));
        }
        let total: usize = q.iter().map(|s| s.matches("Customer number").count()).sum();
        assert_eq!(total, 2000);
    }

    #[test]
    fn values_queries_escape_and_chunk() {
        let q = values_queries(
            "Opportunity",
            &["Amount".into(), "Name".into(), "SYSPRO_Invoice__c".into()],
            "SYSPRO_Invoice__c",
            &["C1|1'0|I".into()],
        );
        assert_eq!(
            q,
            vec![
                r"SELECT Id, SYSPRO_Invoice__c, Amount, Name FROM Opportunity WHERE SYSPRO_Invoice__c IN ('C1|1\'0|I')"
            ]
        );
        let many: Vec<String> = (0..3000).map(|i| format!("CUSTOMER{i:06}")).collect();
        let q = values_queries("Account", &["Name".into()], "X__c", &many);
        assert!(q.len() > 1);
        for s in &q {
            assert!(encoded_len(s) <= SOQL_MAX_ENCODED, "{}", encoded_len(s));
        }
        let total: usize = q.iter().map(|s| s.matches("CUSTOMER").count()).sum();
        assert_eq!(total, 3000);
    }

    #[test]
    fn bulk_errors_split() {
        assert_eq!(
            split_bulk_error("REQUIRED_FIELD_MISSING:Required fields are missing: [Name]:Name --"),
            (
                "REQUIRED_FIELD_MISSING".into(),
                "Required fields are missing: [Name]:Name".into()
            )
        );
    }
}
