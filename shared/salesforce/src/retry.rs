//! Classifiers: what an error body means (retry, stop, dead-letter), and the backoff policy.
//! Pure: bodies in, decisions out.

use std::time::Duration;

use mlc_core::{ErrorLink, Failure};
use rand::Rng;
use serde_json::Value;

/// Per-record codes that are worth retrying (another transaction holds the row, …).
const RETRYABLE: &[&str] = &[
    "UNABLE_TO_LOCK_ROW",
    "SERVER_UNAVAILABLE",
    "REQUEST_LIMIT_EXCEEDED",
    "PROCESSING_HALTED",
    "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "UNKNOWN_EXCEPTION",
];

/// One error as Salesforce reports it (`errorCode` at top level, `statusCode` in collections).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ApiError {
    /// The code.
    pub code: String,
    /// The message.
    pub message: String,
    /// Fields at fault.
    pub fields: Vec<String>,
}

/// Parses either error shape (array of errors, one error object, or an `errors` array).
pub fn parse_errors(body: &Value) -> Vec<ApiError> {
    let one = |v: &Value| ApiError {
        code: v
            .get("errorCode")
            .or_else(|| v.get("statusCode"))
            .and_then(|c| c.as_str())
            .unwrap_or("")
            .to_string(),
        message: v
            .get("message")
            .and_then(|c| c.as_str())
            .unwrap_or("")
            .to_string(),
        fields: v
            .get("fields")
            .and_then(|f| f.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default(),
    };
    match body {
        Value::Array(a) => a.iter().map(one).collect(),
        Value::Object(m) if m.contains_key("errors") => m["errors"]
            .as_array()
            .map(|a| a.iter().map(one).collect())
            .unwrap_or_default(),
        Value::Object(_) => vec![one(body)],
        _ => Vec::new(),
    }
}

/// Whether a per-record error code is retryable.
pub fn is_retryable_code(code: &str) -> bool {
    RETRYABLE.contains(&code)
}

/// The failure for one record: retryable or permanent, with the field and an error link.
pub fn record_failure(label: &str, status: Option<u16>, errors: &[ApiError]) -> (bool, Failure) {
    let first = errors.first().cloned().unwrap_or(ApiError {
        code: "UNKNOWN".into(),
        message: "salesforce reported a failure without an error".into(),
        fields: Vec::new(),
    });
    let retry = is_retryable_code(&first.code);
    let field = first.fields.first().cloned();
    let msg = match &field {
        Some(f) => format!("{label}: field {f}: {} ({})", first.message, first.code),
        None => format!("{label}: {} ({})", first.message, first.code),
    };
    let mut failure = if retry {
        Failure::retryable(msg)
    } else {
        Failure::permanent(msg)
    };
    if let Some(f) = field {
        failure = failure.with_field(f);
    }
    for e in errors {
        failure = failure.with_link(ErrorLink {
            status,
            code: Some(e.code.clone()).filter(|c| !c.is_empty()),
            message: e.message.clone(),
            request_id: None,
        });
    }
    (retry, failure)
}

/// What to do with a whole-call answer that is not a success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallVerdict {
    /// Fine: hand the body to the caller.
    Ok,
    /// Token expired or revoked: refresh once, retry once.
    RefreshSession,
    /// Set-up error: stop (no loop).
    Auth(String),
    /// Daily allowance spent.
    DailyLimit(String),
    /// Retry with backoff (5xx, concurrent-request limit).
    Transient(String),
    /// The request is wrong: report.
    Rejected,
}

/// Classifies a whole-call answer by status and body.
pub fn classify_call(status: u16, body: &Value) -> CallVerdict {
    let errs = parse_errors(body);
    let first = errs.first().cloned().unwrap_or_default();
    match status {
        200..=299 => CallVerdict::Ok,
        401 => {
            if first
                .message
                .contains("not valid for use with the REST API")
            {
                CallVerdict::Auth(format!(
                    "{} — the connected app's session cannot call the REST API: give the Run-As user \"API Enabled\" and the app the \"api\" scope",
                    first.message
                ))
            } else {
                CallVerdict::RefreshSession
            }
        }
        403 if first.code == "REQUEST_LIMIT_EXCEEDED" => {
            if first.message.contains("ConcurrentPerOrgLongTxn") {
                CallVerdict::Transient(first.message)
            } else {
                CallVerdict::DailyLimit(first.message)
            }
        }
        500 | 502 | 503 | 504 => CallVerdict::Transient(if first.message.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("{} ({})", first.message, first.code)
        }),
        _ => CallVerdict::Rejected,
    }
}

/// Exponential backoff with full jitter, capped, for a bounded number of attempts.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// Attempts in all (first try included).
    pub max_attempts: u32,
    /// First delay ceiling.
    pub base: Duration,
    /// Largest delay.
    pub cap: Duration,
}

impl Backoff {
    /// The delay before attempt `n + 1` (n ≥ 1 attempts done).
    pub fn delay(&self, attempts_done: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << attempts_done.saturating_sub(1).min(16));
        let ceiling = exp.min(self.cap);
        let ms = ceiling.as_millis() as u64;
        Duration::from_millis(if ms == 0 {
            0
        } else {
            rand::rng().random_range(ms / 2..=ms)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn classifies_calls_and_records() {
        assert_eq!(
            classify_call(
                403,
                &json!([{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}])
            ),
            CallVerdict::DailyLimit("TotalRequests Limit exceeded.".into())
        );
        assert!(matches!(
            classify_call(
                403,
                &json!([{"message":"ConcurrentPerOrgLongTxn Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}])
            ),
            CallVerdict::Transient(_)
        ));
        assert_eq!(
            classify_call(
                401,
                &json!([{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}])
            ),
            CallVerdict::RefreshSession
        );
        assert!(matches!(
            classify_call(
                401,
                &json!([{"message":"This session is not valid for use with the REST API","errorCode":"INVALID_SESSION_ID"}])
            ),
            CallVerdict::Auth(_)
        ));
        let errs = parse_errors(
            &json!({"success":false,"errors":[{"statusCode":"REQUIRED_FIELD_MISSING","message":"Required fields are missing: [Name]","fields":["Name"]}]}),
        );
        let (retry, f) = record_failure("Account C1", Some(200), &errs);
        assert!(!retry);
        assert_eq!(f.field.as_deref(), Some("Name"));
        assert_eq!(f.chain[0].code.as_deref(), Some("REQUIRED_FIELD_MISSING"));
        let (retry, _) = record_failure(
            "x",
            None,
            &[ApiError {
                code: "UNABLE_TO_LOCK_ROW".into(),
                ..Default::default()
            }],
        );
        assert!(retry);
    }
}
