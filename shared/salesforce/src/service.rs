//! Sends one REST request: bearer token, time-out, `Sforce-Limit-Info` bookkeeping, one
//! refresh-and-retry on an expired session, bounded backoff on 5xx / time-outs, and the
//! classification of whole-call failures.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mlc_core::secret::ExposeSecret;
use mlc_core::{Clock, ErrorLink};
use reqwest::Method;
use serde_json::Value;

use crate::auth::{redact, TokenManager};
use crate::error::{Result, SalesforceError};
use crate::retry::{classify_call, parse_errors, Backoff, CallVerdict};

/// A request body.
#[derive(Debug, Clone)]
pub enum ReqBody {
    /// No body.
    None,
    /// JSON.
    Json(Value),
    /// CSV (Bulk uploads).
    Csv(String),
}

/// A successful (2xx) or caller-handled (other 4xx) answer.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    /// HTTP status.
    pub status: u16,
    /// Body text.
    pub body: String,
    /// Request id header, when the org sends one.
    pub request_id: Option<String>,
}

impl ApiResponse {
    /// The body as JSON (`Null` when empty or not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// An error link describing this answer.
    pub fn link(&self) -> ErrorLink {
        let errs = parse_errors(&self.json());
        let first = errs.first();
        ErrorLink {
            status: Some(self.status),
            code: first.map(|e| e.code.clone()).filter(|c| !c.is_empty()),
            message: first
                .map(|e| e.message.clone())
                .unwrap_or_else(|| self.body.chars().take(300).collect()),
            request_id: self.request_id.clone(),
        }
    }
}

/// Parses `Sforce-Limit-Info` loosely: `api-usage=used/max`, other parts ignored.
pub fn parse_limit_info(h: &str) -> Option<(u64, u64)> {
    h.split([';', ','])
        .map(|p| p.trim())
        .find_map(|p| p.strip_prefix("api-usage="))
        .and_then(|v| {
            let (u, m) = v.split_once('/')?;
            Some((u.trim().parse().ok()?, m.trim().parse().ok()?))
        })
}

/// The REST client of one org.
pub struct Service {
    http: reqwest::Client,
    /// Tokens.
    pub auth: TokenManager,
    timeout: Duration,
    backoff: Backoff,
    usage: Mutex<Option<(u64, u64)>>,
    reserve_percent: u8,
    clock: Arc<dyn Clock>,
    calls: AtomicU64,
}

impl Service {
    /// A client.
    pub fn new(
        http: reqwest::Client,
        auth: TokenManager,
        timeout: Duration,
        backoff: Backoff,
        reserve_percent: u8,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Service {
            http,
            auth,
            timeout,
            backoff,
            usage: Mutex::new(None),
            reserve_percent,
            clock,
            calls: AtomicU64::new(0),
        }
    }

    /// Replaces the backoff policy.
    pub fn set_backoff(&mut self, b: Backoff) {
        self.backoff = b;
    }

    /// API requests sent (retries included; token requests not).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// The last `(used, max)` the org reported.
    pub fn usage(&self) -> Option<(u64, u64)> {
        *self.usage.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn daily_limit(&self, message: String) -> SalesforceError {
        SalesforceError::DailyLimit {
            message: format!(
                "{message}; the allowance is a rolling 24 h window: trying again in 1 hour"
            ),
            until: self.clock.now() + chrono::Duration::hours(1),
        }
    }

    /// Refuses to write when what is left of the daily allowance is below the reserve kept for
    /// the org's other integrations.
    pub fn check_reserve(&self) -> Result<()> {
        if let Some((used, max)) = self.usage() {
            let remaining = max.saturating_sub(used);
            if max > 0
                && remaining.saturating_mul(100)
                    < u64::from(self.reserve_percent).saturating_mul(max)
            {
                return Err(self.daily_limit(format!(
                    "only {remaining} of {max} daily API calls left, below the {}% reserve kept for the org's other integrations",
                    self.reserve_percent
                )));
            }
        }
        Ok(())
    }

    /// Sends a request to `path` (from the host: `/services/data/v62.0/…`). Returns 2xx and
    /// 4xx answers the caller should read (e.g. 404 on describe); raises the rest.
    pub async fn call(&self, method: Method, path: &str, body: &ReqBody) -> Result<ApiResponse> {
        let mut refreshed = false;
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let session = self.auth.session().await?;
            let url = format!("{}{}", session.instance_url, path);
            let mut req = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(session.token.expose_secret())
                .timeout(self.timeout)
                .header("Accept", "application/json");
            req = match body {
                ReqBody::None => req,
                ReqBody::Json(v) => req.json(v),
                ReqBody::Csv(s) => req.header("Content-Type", "text/csv").body(s.clone()),
            };
            self.calls.fetch_add(1, Ordering::Relaxed);
            let outcome = match req.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    if let Some(u) = resp
                        .headers()
                        .get("sforce-limit-info")
                        .and_then(|v| v.to_str().ok())
                        .and_then(parse_limit_info)
                    {
                        *self.usage.lock().unwrap_or_else(|e| e.into_inner()) = Some(u);
                    }
                    let request_id = resp
                        .headers()
                        .get("x-request-id")
                        .or_else(|| resp.headers().get("sforce-call-id"))
                        .and_then(|v| v.to_str().ok())
                        .map(String::from);
                    match resp.text().await {
                        Ok(text) => Ok(ApiResponse {
                            status,
                            body: text,
                            request_id,
                        }),
                        Err(e) => Err(ErrorLink {
                            status: Some(status),
                            code: None,
                            message: format!("{method} {path}: response lost: {}", redact(&e)),
                            request_id,
                        }),
                    }
                }
                Err(e) => Err(ErrorLink {
                    status: None,
                    code: None,
                    message: format!("{method} {path}: {}", redact(&e)),
                    request_id: None,
                }),
            };
            let resp = match outcome {
                Ok(r) => r,
                Err(link) => {
                    if attempts < self.backoff.max_attempts {
                        tracing::warn!(%link.message, attempts, "salesforce call failed; retrying");
                        tokio::time::sleep(self.backoff.delay(attempts)).await;
                        continue;
                    }
                    return Err(SalesforceError::Transient { link });
                }
            };
            match classify_call(resp.status, &resp.json()) {
                CallVerdict::Ok | CallVerdict::Rejected => return Ok(resp),
                CallVerdict::RefreshSession => {
                    if refreshed {
                        return Err(SalesforceError::Auth(
                            "a fresh token was refused too (INVALID_SESSION_ID): the session is revoked as soon as it is issued; check the connected app's session policies".into(),
                        ));
                    }
                    tracing::info!(
                        "salesforce session expired or revoked: fetching a new token once"
                    );
                    self.auth.invalidate(session.generation).await;
                    refreshed = true;
                    attempts -= 1;
                }
                CallVerdict::Auth(m) => return Err(SalesforceError::Auth(m)),
                CallVerdict::DailyLimit(m) => return Err(self.daily_limit(m)),
                CallVerdict::Transient(m) => {
                    if attempts < self.backoff.max_attempts {
                        tracing::warn!(message = %m, attempts, "salesforce transient error; retrying");
                        tokio::time::sleep(self.backoff.delay(attempts)).await;
                        continue;
                    }
                    let mut link = resp.link();
                    link.message = format!("{method} {path}: {m}");
                    return Err(SalesforceError::Transient { link });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_info_parses_loosely() {
        assert_eq!(
            parse_limit_info("api-usage=1234/100000"),
            Some((1234, 100000))
        );
        assert_eq!(
            parse_limit_info("api-usage=5/15000; api-bursts=1/10"),
            Some((5, 15000))
        );
        assert_eq!(parse_limit_info("per-app-api-usage=1/2"), None);
    }
}
