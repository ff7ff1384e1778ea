//! Transport: one GraphQL POST, with the token, the pinned `API-Version` and an optional
//! `Idempotency-Key`; answers are read whole (body and the headers that matter) and never
//! judged here: [`crate::retry`] classifies them.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use mlc_core::ports::Secrets;
use mlc_core::secret::{ExposeSecret, SecretRef};

use crate::error::{MondayError, Result};
use crate::request_builder::GraphqlRequest;
use crate::retry::{ratelimit_reset, ResponseMeta};

/// A whole answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Status and headers.
    pub meta: ResponseMeta,
    /// The JSON body (`Null` when the body was not JSON).
    pub body: Value,
    /// The first characters of a non-JSON body, for messages.
    pub raw_excerpt: String,
}

/// Why no answer came.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// Timed out or the connection broke: the request may have been applied.
    #[error("no answer from monday: {0}")]
    NoAnswer(String),
    /// The token could not be read.
    #[error("monday token could not be read: {0}")]
    Secret(String),
}

/// The Monday.com GraphQL client.
pub struct MondayClient {
    http: reqwest::Client,
    api_url: String,
    api_version: String,
    token: SecretRef,
    secrets: Arc<dyn Secrets>,
    timeout: Duration,
    version_logged: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for MondayClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MondayClient")
            .field("api_url", &self.api_url)
            .field("api_version", &self.api_version)
            .finish_non_exhaustive()
    }
}

/// Checks the URL: `https://`, or plain `http://` on loopback only.
pub fn check_url(api_url: &str) -> Result<()> {
    let u = url::Url::parse(api_url)
        .map_err(|e| MondayError::Config(format!("api_url {api_url:?}: {e}")))?;
    match u.scheme() {
        "https" => Ok(()),
        "http" => {
            let loopback = match u.host() {
                Some(url::Host::Domain(d)) => d == "localhost",
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            };
            if loopback {
                Ok(())
            } else {
                Err(MondayError::Config(format!(
                    "api_url {api_url:?}: plain http is only allowed on loopback; use https"
                )))
            }
        }
        s => Err(MondayError::Config(format!(
            "api_url {api_url:?}: unsupported scheme {s}"
        ))),
    }
}

impl MondayClient {
    /// A client. `http` is the shared reqwest client (built with a timeout by the caller); the
    /// per-request timeout is applied on top.
    pub fn new(
        http: reqwest::Client,
        api_url: &str,
        api_version: &str,
        token: SecretRef,
        secrets: Arc<dyn Secrets>,
        timeout: Duration,
    ) -> Result<Self> {
        check_url(api_url)?;
        Ok(MondayClient {
            http,
            api_url: api_url.to_string(),
            api_version: api_version.to_string(),
            token,
            secrets,
            timeout,
            version_logged: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Drops the cached token after a 401/403, so the next call re-reads it.
    pub async fn invalidate_token(&self) {
        self.secrets.invalidate(&self.token).await;
    }

    /// POSTs one request.
    pub async fn post(
        &self,
        req: &GraphqlRequest,
        idempotency_key: Option<&str>,
    ) -> std::result::Result<Answer, TransportError> {
        let token = self
            .secrets
            .get(&self.token)
            .await
            .map_err(|e| TransportError::Secret(e.to_string()))?;
        let mut rb = self
            .http
            .post(&self.api_url)
            .timeout(self.timeout)
            .header("Authorization", token.expose_secret())
            .header("API-Version", &self.api_version)
            .json(req);
        if let Some(k) = idempotency_key {
            rb = rb.header("Idempotency-Key", k);
        }
        // reqwest errors may carry the URL, never the token (it lives in a header).
        let resp = rb
            .send()
            .await
            .map_err(|e| TransportError::NoAnswer(e.without_url().to_string()))?;
        let h = resp.headers();
        let get = |name: &str| {
            h.get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let meta = ResponseMeta {
            status: resp.status().as_u16(),
            retry_after: get("retry-after").and_then(|v| v.trim().parse().ok()),
            ratelimit_reset: get("ratelimit").as_deref().and_then(ratelimit_reset),
            request_id: get("x-request-id"),
            api_version: get("api-version"),
            replayed: get("idempotency-replayed").is_some_and(|v| v.eq_ignore_ascii_case("true")),
        };
        if let Some(v) = &meta.api_version {
            if !self
                .version_logged
                .swap(true, std::sync::atomic::Ordering::Relaxed)
            {
                if *v == self.api_version {
                    tracing::info!(api_version = %v, "monday answered with the pinned API-Version");
                } else {
                    tracing::warn!(pinned = %self.api_version, answered = %v, "monday answered with another API-Version");
                }
            }
        }
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| TransportError::NoAnswer(e.without_url().to_string()))?;
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let raw_excerpt = if body.is_null() {
            String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned()
        } else {
            String::new()
        };
        Ok(Answer {
            meta,
            body,
            raw_excerpt,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_on_loopback() {
        assert!(check_url("https://api.monday.com/v2").is_ok());
        assert!(check_url("http://127.0.0.1:9/v2").is_ok());
        assert!(check_url("http://localhost:9/v2").is_ok());
        assert!(check_url("http://api.monday.com/v2").is_err());
    }
}
