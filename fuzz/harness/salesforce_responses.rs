//! Harness of the `salesforce_responses` fuzz target, shared with mlc-salesforce's corpus
//! replay test. Input: two bytes of HTTP status (big-endian), then the body. The body goes
//! through everything that reads a Salesforce answer: whole-call classification, both error
//! shapes (`[{errorCode, message, fields}]` and `{errors: [{statusCode, …}]}`), the Composite
//! `compositeResponse` walk with per-record Collections results as the sink reads them, the
//! `Sforce-Limit-Info` header, Bulk result CSV and `sf__Error`, and SOQL escaping.

use mlc_salesforce::request_builder::{escape_soql, parse_csv, split_bulk_error};
use mlc_salesforce::retry::{classify_call, parse_errors, record_failure};
use mlc_salesforce::service::{parse_limit_info, ApiResponse};
use serde_json::Value;

/// Runs one input. Panics only on a bug.
pub fn run(data: &[u8]) {
    if data.len() < 2 {
        return;
    }
    let status = u16::from_be_bytes([data[0], data[1]]);
    let body = String::from_utf8_lossy(&data[2..]).into_owned();
    let resp = ApiResponse {
        status,
        body: body.clone(),
        request_id: None,
    };
    let json = resp.json();
    let _ = resp.link();
    let _ = classify_call(status, &json);
    let errs = parse_errors(&json);
    let _ = record_failure("fuzz", Some(status), &errs);

    // Composite: each sub-response carries a status and a Collections body (or errors).
    for sub in json["compositeResponse"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let sub_status = sub["httpStatusCode"].as_u64().unwrap_or(0) as u16;
        let sub_errs = parse_errors(&sub["body"]);
        let _ = record_failure("fuzz sub", Some(sub_status), &sub_errs);
        collection_results(sub_status, &sub["body"]);
    }
    // A Collections answer on its own.
    collection_results(status, &json);

    let _ = parse_limit_info(&body);
    for row in parse_csv(&body) {
        for cell in &row {
            let _ = split_bulk_error(cell);
        }
    }
    // SOQL escaping: once escapes are read, no bare quote is left to end the literal.
    let escaped = escape_soql(&body);
    let mut chars = escaped.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let next = chars.next();
                assert!(next.is_some(), "dangling backslash in {escaped:?}");
            }
            '\'' => panic!("unescaped quote in {escaped:?}"),
            _ => {}
        }
    }
    let _ = mlc_salesforce::sink::parse_api_version(&body);
}

/// Per-record results of a Collections upsert/update, read as the sink does.
fn collection_results(status: u16, body: &Value) {
    for r in body.as_array().cloned().unwrap_or_default() {
        let ok = r["success"] == Value::Bool(true);
        let id = r["id"].as_str().map(String::from);
        let _created = r["created"].as_bool().unwrap_or(false);
        if !(ok && id.is_some()) {
            let _ = record_failure("fuzz record", Some(status), &parse_errors(&r));
        }
    }
}
