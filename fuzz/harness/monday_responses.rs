//! Harness of the `monday_responses` fuzz target, shared with mlc-monday's corpus replay test.
//! Input: two bytes of HTTP status (big-endian), one line taken as both the `Retry-After` and
//! the `RateLimit` header value, then the body. Covers every error format (`errors` objects,
//! plain strings, legacy top-level `error_code`), classification, the server's delay as the
//! sink uses it (jitter added), the `complexity` a body reports as the limiter records it, and
//! the column value shapes.

use std::sync::Arc;
use std::time::Duration;

use mlc_monday::retry::ResponseMeta;
use mlc_monday::retry::{classify, parse_errors, ratelimit_reset, server_delay, with_jitter};
use mlc_monday::{Limiter, LimiterConfig};
use serde_json::Value;

struct NoBudget;

#[async_trait::async_trait]
impl mlc_core::ports::Budget for NoBudget {
    async fn take(
        &self,
        _scope: &str,
        _window_start: chrono::DateTime<chrono::Utc>,
        _limit: u32,
        want: u32,
    ) -> mlc_core::PortResult<u32> {
        Ok(want)
    }
}

/// Runs one input. Panics only on a bug.
pub fn run(data: &[u8]) {
    if data.len() < 2 {
        return;
    }
    let status = u16::from_be_bytes([data[0], data[1]]);
    let rest = String::from_utf8_lossy(&data[2..]).into_owned();
    let (header, body) = rest.split_once('\n').unwrap_or(("", rest.as_str()));
    let meta = ResponseMeta {
        status,
        retry_after: header.trim().parse().ok(),
        ratelimit_reset: ratelimit_reset(header),
        ..Default::default()
    };
    let json: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let errors = parse_errors(&json);
    for e in &errors {
        let _ = classify(status, e);
        if let Some(d) = server_delay(Some(e), &meta) {
            let j = with_jitter(d);
            assert!(j >= d);
        }
    }
    if let Some(d) = server_delay(None, &meta) {
        let _ = with_jitter(d);
    }

    // `data.complexity { after reset_in_x_seconds }`, as the sink hands it to the limiter.
    let c = json.pointer("/data/complexity");
    if let (Some(after), Some(reset)) = (
        c.and_then(|c| c.get("after")).and_then(Value::as_u64),
        c.and_then(|c| c.get("reset_in_x_seconds"))
            .and_then(Value::as_u64),
    ) {
        let now = chrono::DateTime::from_timestamp(1_790_000_000, 0).unwrap_or_default();
        let limiter = Limiter::new(
            Arc::new(NoBudget),
            Arc::new(mlc_core::FixedClock::at(now)),
            LimiterConfig {
                window: Duration::from_secs(60),
                mutations_per_board: 100,
                requests: 100,
                tail_guard_permille: 20,
            },
        );
        limiter.note_complexity(after, reset);
        let _ = limiter.complexity_wait(10_000);
        let _ = limiter.complexity_allows(10_000, 40);
    }

    for ty in [
        "text",
        "long_text",
        "numbers",
        "date",
        "status",
        "dropdown",
        "email",
        "phone",
        "link",
    ] {
        let _ = mlc_monday::request_builder::column_value(ty, &json);
        let _ = mlc_monday::request_builder::column_value(ty, &Value::String(body.to_string()));
    }
}
