//! Errors of the Salesforce client, and their mapping onto the sink port's errors.

use chrono::{DateTime, Utc};
use mlc_core::ports::SinkError;
use mlc_core::ErrorLink;

/// Result alias.
pub type Result<T> = std::result::Result<T, SalesforceError>;

/// A whole-call failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SalesforceError {
    /// The flow's configuration cannot work (version, URL, missing field, bad stage).
    #[error("salesforce configuration error: {0}")]
    Config(String),
    /// Credentials refused, or the session is not usable by the REST API.
    #[error("salesforce authentication failed: {0}")]
    Auth(String),
    /// The org's daily allowance (or the reserve kept for other integrations) is spent.
    #[error("salesforce daily API allowance reached: {message}")]
    DailyLimit {
        /// What happened.
        message: String,
        /// When to try again.
        until: DateTime<Utc>,
    },
    /// 5xx, time-out, broken connection, concurrent-request limit: retry later.
    #[error("salesforce transient error: {}", .link.message)]
    Transient {
        /// What Salesforce (or the network) said.
        link: ErrorLink,
    },
    /// The request was refused as a whole (4xx other than the above).
    #[error("salesforce rejected the request: {}", .link.message)]
    Rejected {
        /// What Salesforce said.
        link: ErrorLink,
    },
}

impl SalesforceError {
    /// The error link, when there is one.
    pub fn link(&self) -> ErrorLink {
        match self {
            SalesforceError::Transient { link } | SalesforceError::Rejected { link } => {
                link.clone()
            }
            other => ErrorLink {
                message: other.to_string(),
                ..Default::default()
            },
        }
    }
}

impl From<SalesforceError> for SinkError {
    fn from(e: SalesforceError) -> Self {
        match e {
            SalesforceError::Config(m) => SinkError::Config(m),
            SalesforceError::Auth(m) => SinkError::Auth(m),
            SalesforceError::DailyLimit { message, until } => {
                SinkError::DailyLimit { message, until }
            }
            SalesforceError::Transient { link } => SinkError::Transient(link.message),
            SalesforceError::Rejected { link } => SinkError::Config(format!(
                "salesforce rejected the request ({}): {}",
                link.code.as_deref().unwrap_or("no code"),
                link.message
            )),
        }
    }
}
