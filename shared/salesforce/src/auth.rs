//! OAuth 2.0 client credentials: one token per process, cached with its `instance_url`,
//! refreshed proactively after the org's session timeout and on demand after a 401.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use mlc_core::ports::Secrets;
use mlc_core::secret::{ExposeSecret, SecretRef, SecretString};
use mlc_core::{Clock, ErrorLink};
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::error::{Result, SalesforceError};

/// A usable session.
#[derive(Clone)]
pub struct Session {
    /// The bearer token.
    pub token: SecretString,
    /// Where API calls go.
    pub instance_url: String,
    /// Which token this is (so a 401 invalidates only the token that failed).
    pub generation: u64,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Session({}, #{})", self.instance_url, self.generation)
    }
}

struct Cached {
    session: Session,
    obtained: DateTime<Utc>,
}

/// Fetches and caches tokens.
pub struct TokenManager {
    http: reqwest::Client,
    token_url: String,
    client_id: SecretRef,
    client_secret: SecretRef,
    secrets: Arc<dyn Secrets>,
    instance_override: Option<String>,
    session_timeout: chrono::Duration,
    clock: Arc<dyn Clock>,
    timeout: Duration,
    cache: Mutex<Option<Cached>>,
    generation: AtomicU64,
    fetches: AtomicU64,
}

#[derive(Deserialize)]
struct TokenOk {
    access_token: String,
    instance_url: Option<String>,
}

#[derive(Deserialize)]
struct TokenErr {
    error: String,
    #[serde(default)]
    error_description: String,
}

/// The likely cause of a token error, for people.
pub fn token_error_hint(error: &str, description: &str) -> String {
    let cause = match error {
        "invalid_client" => "the consumer secret is wrong (or belongs to another connected app)",
        "invalid_client_id" => "the consumer key is wrong, or the connected app is not available yet (new apps take a few minutes)",
        "unsupported_grant_type" => "the client credentials flow is not enabled on the connected app",
        "invalid_grant" if description.contains("not supported on this domain") => {
            "the token URL must be the org's My Domain (https://<domain>.my.salesforce.com), not login or test.salesforce.com"
        }
        "invalid_grant" if description.contains("user") => {
            "the connected app has no \"Run As\" user for the client credentials flow"
        }
        "invalid_grant" => "the grant was refused: check the Run-As user, the My Domain URL and the app's policies",
        _ => "see the error description",
    };
    format!("{error}: {description} — likely cause: {cause}")
}

impl TokenManager {
    /// A manager for one org.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        http: reqwest::Client,
        my_domain_url: &str,
        client_id: SecretRef,
        client_secret: SecretRef,
        secrets: Arc<dyn Secrets>,
        instance_override: Option<String>,
        session_timeout: Duration,
        clock: Arc<dyn Clock>,
        timeout: Duration,
    ) -> Self {
        TokenManager {
            http,
            token_url: format!(
                "{}/services/oauth2/token",
                my_domain_url.trim_end_matches('/')
            ),
            client_id,
            client_secret,
            secrets,
            instance_override,
            session_timeout: chrono::Duration::from_std(session_timeout)
                .unwrap_or(chrono::Duration::hours(2)),
            clock,
            timeout,
            cache: Mutex::new(None),
            generation: AtomicU64::new(0),
            fetches: AtomicU64::new(0),
        }
    }

    /// How many token requests this manager made.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// The cached session, or a new one when none is cached or it is older than the session
    /// timeout. One caller fetches; the others wait for it (the lock is held while fetching).
    pub async fn session(&self) -> Result<Session> {
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.as_ref() {
            if self.clock.now() - c.obtained < self.session_timeout {
                return Ok(c.session.clone());
            }
            tracing::debug!("salesforce token older than the session timeout: refreshing");
        }
        let session = self.fetch().await?;
        *cache = Some(Cached {
            session: session.clone(),
            obtained: self.clock.now(),
        });
        Ok(session)
    }

    /// Drops the cached token if it is still `generation` (a 401 said it died).
    pub async fn invalidate(&self, generation: u64) {
        let mut cache = self.cache.lock().await;
        if cache.as_ref().map(|c| c.session.generation) == Some(generation) {
            *cache = None;
        }
    }

    async fn fetch(&self) -> Result<Session> {
        let secret_err = |what: &str, e: mlc_core::PortError| {
            if e.is_transient() {
                SalesforceError::Transient {
                    link: ErrorLink {
                        message: format!("reading the {what}: {e}"),
                        ..Default::default()
                    },
                }
            } else {
                SalesforceError::Auth(format!("reading the {what}: {e}"))
            }
        };
        let id = self
            .secrets
            .get(&self.client_id)
            .await
            .map_err(|e| secret_err("consumer key", e))?;
        let secret = self
            .secrets
            .get(&self.client_secret)
            .await
            .map_err(|e| secret_err("consumer secret", e))?;
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", id.expose_secret()),
            ("client_secret", secret.expose_secret()),
        ];
        let resp = self
            .http
            .post(&self.token_url)
            .form(&form)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| SalesforceError::Transient {
                link: ErrorLink {
                    message: format!("token request to {} failed: {}", self.token_url, redact(&e)),
                    ..Default::default()
                },
            })?;
        let status = resp.status().as_u16();
        let body = resp.text().await.map_err(|e| SalesforceError::Transient {
            link: ErrorLink {
                status: Some(status),
                message: format!("token response lost: {}", redact(&e)),
                ..Default::default()
            },
        })?;
        if status == 200 {
            let ok: TokenOk =
                serde_json::from_str(&body).map_err(|e| SalesforceError::Transient {
                    link: ErrorLink {
                        status: Some(status),
                        message: format!("token response is not the expected JSON: {e}"),
                        ..Default::default()
                    },
                })?;
            let instance_url = match (&self.instance_override, ok.instance_url) {
                (Some(o), _) => o.clone(),
                (None, Some(u)) => u,
                (None, None) => {
                    return Err(SalesforceError::Auth(
                        "token response carries no instance_url: set instance_url in the flow"
                            .into(),
                    ))
                }
            };
            crate::check_url("instance_url", &instance_url).map_err(SalesforceError::Config)?;
            let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
            return Ok(Session {
                token: SecretString::from(ok.access_token),
                instance_url: instance_url.trim_end_matches('/').to_string(),
                generation,
            });
        }
        if status >= 500 {
            return Err(SalesforceError::Transient {
                link: ErrorLink {
                    status: Some(status),
                    message: format!("token endpoint answered HTTP {status}"),
                    ..Default::default()
                },
            });
        }
        // A refused credential: let the secrets adapter re-read it next time (rotation).
        self.secrets.invalidate(&self.client_id).await;
        self.secrets.invalidate(&self.client_secret).await;
        match serde_json::from_str::<TokenErr>(&body) {
            Ok(e) => Err(SalesforceError::Auth(token_error_hint(&e.error, &e.error_description))),
            Err(_) => Err(SalesforceError::Auth(format!(
                "token endpoint {} answered HTTP {status} without an OAuth error body: check my_domain_url",
                self.token_url
            ))),
        }
    }
}

/// A reqwest error without its URL's query string (none of ours carry secrets, but stay safe).
pub(crate) fn redact(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "response body broken"
    } else {
        "request failed"
    };
    let mut s = kind.to_string();
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}
