//! Reading Monday.com answers: errors live in the body as often as in the status.
//!
//! HTTP 200 can carry errors (`errors` next to partial `data`); the legacy format puts
//! `error_code` / `error_message` / `error_data` at the top level and may hold `errors` as an
//! array of plain strings. So `errors` is read as untyped JSON and every shape is normalised
//! into [`GqlError`], then classified.

use std::time::Duration;

use rand::Rng;
use serde_json::Value;

/// One error, whatever format it came in.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GqlError {
    /// The message.
    pub message: String,
    /// `extensions.code` or the legacy `error_code`.
    pub code: Option<String>,
    /// The first element of `path` (the alias, for packed mutations).
    pub path_head: Option<String>,
    /// `extensions.retry_in_seconds`, then `error_data.retry_in_seconds`.
    pub retry_in_seconds: Option<u64>,
    /// `extensions.status_code` or the legacy `status_code`.
    pub status_code: Option<u16>,
    /// `error_data` (names the column and value for column errors).
    pub error_data: Option<Value>,
    /// True for a variable coercion problem (`extensions.problems`).
    pub variable_problem: bool,
}

/// What an error means for the records it touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Rate or complexity limit: stop and hand back with the server's delay.
    Throttle,
    /// The daily call allowance: pause until 00:00 UTC.
    Daily,
    /// 423 lock, 5xx, timeout: back off and retry with the same key.
    Transient,
    /// Credentials refused.
    Auth,
    /// The request is wrong for this record: dead-letter.
    Permanent,
}

fn u64_of(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().map(|f| f.max(0.0).ceil() as u64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Every error in a response body, in order (current array, legacy top level, string errors).
pub fn parse_errors(body: &Value) -> Vec<GqlError> {
    let mut out = Vec::new();
    if let Some(arr) = body.get("errors").and_then(Value::as_array) {
        for e in arr {
            match e {
                Value::String(s) => out.push(GqlError {
                    message: s.clone(),
                    ..Default::default()
                }),
                Value::Object(o) => {
                    let ext = o.get("extensions");
                    let error_data = ext
                        .and_then(|x| x.get("error_data"))
                        .or_else(|| o.get("error_data"))
                        .cloned();
                    let retry = u64_of(ext.and_then(|x| x.get("retry_in_seconds"))).or_else(|| {
                        u64_of(error_data.as_ref().and_then(|d| d.get("retry_in_seconds")))
                    });
                    out.push(GqlError {
                        message: o
                            .get("message")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                        code: ext
                            .and_then(|x| x.get("code"))
                            .and_then(Value::as_str)
                            .map(str::to_string),
                        path_head: o
                            .get("path")
                            .and_then(Value::as_array)
                            .and_then(|p| p.first())
                            .and_then(Value::as_str)
                            .map(str::to_string),
                        retry_in_seconds: retry,
                        status_code: u64_of(ext.and_then(|x| x.get("status_code")))
                            .map(|s| s as u16),
                        error_data,
                        variable_problem: ext.is_some_and(|x| x.get("problems").is_some()),
                    })
                }
                other => out.push(GqlError {
                    message: other.to_string(),
                    ..Default::default()
                }),
            }
        }
    }
    // Legacy top-level keys: one error, which may repeat a string already in `errors`.
    let legacy_code = body.get("error_code").and_then(Value::as_str);
    let legacy_msg = body.get("error_message").and_then(Value::as_str);
    if legacy_code.is_some() || legacy_msg.is_some() {
        let error_data = body.get("error_data").cloned();
        let legacy = GqlError {
            message: legacy_msg.unwrap_or("").to_string(),
            code: legacy_code.map(str::to_string),
            path_head: None,
            retry_in_seconds: u64_of(error_data.as_ref().and_then(|d| d.get("retry_in_seconds"))),
            status_code: u64_of(body.get("status_code")).map(|s| s as u16),
            error_data,
            variable_problem: false,
        };
        // Drop the bare string copies of the same message: the legacy entry carries the code.
        out.retain(|e| !(e.code.is_none() && e.message == legacy.message));
        out.insert(0, legacy);
    }
    out
}

const THROTTLE_CODES: &[&str] = &[
    "COMPLEXITY_BUDGET_EXHAUSTED",
    "MINUTE_RATE_LIMIT_EXCEEDED",
    "MAX_CONCURRENCY_EXCEEDED",
    "maxConcurrencyExceeded",
    "ComplexityException",
    "tooManyRequests",
    "RATE_LIMIT_EXCEEDED",
    "Rate Limit Exceeded",
    "IP_RATE_LIMIT_EXCEEDED",
];

const PERMANENT_CODES: &[&str] = &[
    "ColumnValueException",
    "InvalidColumnIdException",
    "InvalidBoardIdException",
    "InvalidItemIdException",
    "InvalidGroupIdException",
    "ResourceNotFoundException",
    "DATA_VALIDATIONS_ERROR",
    "JsonParseException",
    "InvalidArgumentException",
    "ItemNameTooLongException",
    "GRAPHQL_VALIDATION_FAILED",
    "maxComplexityExceeded",
    "CreateBoardException",
    "ItemsLimitationException",
];

/// Classifies one error, given the HTTP status of its response.
pub fn classify(status: u16, e: &GqlError) -> ErrorClass {
    let code = e.code.as_deref().unwrap_or("");
    if code == "DAILY_LIMIT_EXCEEDED" {
        return ErrorClass::Daily;
    }
    if THROTTLE_CODES.contains(&code) {
        return ErrorClass::Throttle;
    }
    if PERMANENT_CODES.contains(&code) || e.variable_problem {
        return ErrorClass::Permanent;
    }
    let lc = code.to_ascii_lowercase();
    if lc.contains("limit") || lc.contains("complexity") || lc.contains("concurrency") {
        return ErrorClass::Throttle;
    }
    if matches!(
        code,
        "UNAUTHENTICATED" | "USER_UNAUTHORIZED" | "Unauthorized" | "UserUnauthorizedException"
    ) {
        return ErrorClass::Auth;
    }
    let st = e.status_code.unwrap_or(status);
    match st {
        401 | 403 => ErrorClass::Auth,
        429 => ErrorClass::Throttle,
        409 | 423 | 408 | 500..=599 => ErrorClass::Transient,
        _ if status == 401 || status == 403 => ErrorClass::Auth,
        _ if status == 429 => ErrorClass::Throttle,
        _ if status == 423 || status >= 500 => ErrorClass::Transient,
        // An error without a code on HTTP 200 (a bad JSON variable reported without a code)
        // or a 4xx: retrying the same request would fail the same way.
        _ => ErrorClass::Permanent,
    }
}

/// The response headers that matter for retries and audit.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResponseMeta {
    /// HTTP status.
    pub status: u16,
    /// `Retry-After` in seconds.
    pub retry_after: Option<u64>,
    /// The smallest `t=` of the `RateLimit` header.
    pub ratelimit_reset: Option<u64>,
    /// `x-request-id`.
    pub request_id: Option<String>,
    /// The `API-Version` the server answered with.
    pub api_version: Option<String>,
    /// `Idempotency-Replayed: true`.
    pub replayed: bool,
}

/// Parses a `RateLimit` header (`"minuteRate";r=0;t=45, "concurrency";r=249`) for the
/// smallest reset among exhausted (`r=0`) policies, or among all when none is exhausted.
pub fn ratelimit_reset(header: &str) -> Option<u64> {
    let mut exhausted = None::<u64>;
    let mut any = None::<u64>;
    for part in header.split(',') {
        let mut r = None::<u64>;
        let mut t = None::<u64>;
        for kv in part.split(';') {
            let kv = kv.trim();
            if let Some(v) = kv.strip_prefix("r=") {
                r = v.trim().parse().ok();
            } else if let Some(v) = kv.strip_prefix("t=") {
                t = v.trim().parse().ok();
            }
        }
        if let Some(t) = t {
            any = Some(any.map_or(t, |a| a.min(t)));
            if r == Some(0) {
                exhausted = Some(exhausted.map_or(t, |a| a.min(t)));
            }
        }
    }
    exhausted.or(any)
}

/// The server's delay: `extensions.retry_in_seconds`, then `error_data.retry_in_seconds`
/// (both folded into [`GqlError::retry_in_seconds`]), then `Retry-After`, then `RateLimit` `t=`.
pub fn server_delay(e: Option<&GqlError>, meta: &ResponseMeta) -> Option<Duration> {
    e.and_then(|e| e.retry_in_seconds)
        .or(meta.retry_after)
        .or(meta.ratelimit_reset)
        .map(Duration::from_secs)
}

/// Adds up to 10 % (at least 100 ms, at most 5 s) of random jitter so parallel consumers do
/// not come back in step.
pub fn with_jitter(d: Duration) -> Duration {
    let span = (d / 10).clamp(Duration::from_millis(100), Duration::from_secs(5));
    // Saturating: the server's delay is untrusted, and `+` panics past `Duration::MAX` (found by
    // fuzz target monday_responses; callers cap the delay afterwards).
    d.saturating_add(span.mul_f64(rand::rng().random_range(0.0..1.0)))
}

/// Exponential backoff with full jitter: random in `[0, min(cap, base·2^attempt)]`.
pub fn backoff(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let ceiling = base.saturating_mul(1u32 << attempt.min(16)).min(cap);
    ceiling.mul_f64(rand::rng().random_range(0.0..1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn throttle_bodies_classify_and_give_their_delay() {
        let b = json!({"errors":[{"message":"Minute rate limit exceeded","extensions":{"code":"MINUTE_RATE_LIMIT_EXCEEDED","retry_in_seconds":58}}],"extensions":{"request_id":"r1"}});
        let e = parse_errors(&b);
        assert_eq!(classify(429, &e[0]), ErrorClass::Throttle);
        assert_eq!(
            server_delay(e.first(), &ResponseMeta::default()),
            Some(Duration::from_secs(58))
        );
        let daily = json!({"errors":[{"message":"Daily limit exceeded","extensions":{"code":"DAILY_LIMIT_EXCEEDED","retry_in_seconds":3599}}]});
        assert_eq!(classify(429, &parse_errors(&daily)[0]), ErrorClass::Daily);
    }

    #[test]
    fn legacy_and_string_errors_are_read() {
        let b = json!({"error_code":"ComplexityException","error_message":"Complexity budget exhausted","error_data":{"retry_in_seconds":12},"status_code":429,"errors":["Complexity budget exhausted"]});
        let e = parse_errors(&b);
        assert_eq!(e.len(), 1);
        assert_eq!(classify(200, &e[0]), ErrorClass::Throttle);
        assert_eq!(e[0].retry_in_seconds, Some(12));
        let s = json!({"errors":["something odd"]});
        assert_eq!(parse_errors(&s)[0].message, "something odd");
    }

    #[test]
    fn permanent_and_transient() {
        let cv = json!({"data":{"m0":null},"errors":[{"message":"invalid value","path":["m0"],"extensions":{"code":"ColumnValueException","error_data":{"column_id":"date4"}}}]});
        let e = parse_errors(&cv);
        assert_eq!(e[0].path_head.as_deref(), Some("m0"));
        assert_eq!(classify(200, &e[0]), ErrorClass::Permanent);
        let var = json!({"errors":[{"message":"Variable $cv of type JSON! was provided invalid value","extensions":{"problems":[{"path":[],"explanation":"bad"}]}}]});
        assert_eq!(classify(200, &parse_errors(&var)[0]), ErrorClass::Permanent);
        let to = json!({"errors":[{"message":"timeout","extensions":{"code":"TIMEOUT_EXCEEDED"}}]});
        assert_eq!(classify(503, &parse_errors(&to)[0]), ErrorClass::Transient);
        assert_eq!(classify(423, &GqlError::default()), ErrorClass::Transient);
        assert_eq!(classify(401, &GqlError::default()), ErrorClass::Auth);
    }

    #[test]
    fn delay_order_and_ratelimit_header() {
        assert_eq!(
            ratelimit_reset("\"minuteRate\";r=4999;t=45, \"complexityMinute\";r=0;t=12"),
            Some(12)
        );
        let meta = ResponseMeta {
            retry_after: Some(7),
            ratelimit_reset: Some(3),
            ..Default::default()
        };
        assert_eq!(server_delay(None, &meta), Some(Duration::from_secs(7)));
        let d = with_jitter(Duration::from_secs(10));
        assert!(d >= Duration::from_secs(10) && d <= Duration::from_secs(11));
        assert!(
            backoff(3, Duration::from_millis(100), Duration::from_millis(500))
                <= Duration::from_millis(500)
        );
    }
}
