//! Errors that every port may return. Adapters map their own errors into these kinds so that
//! the engine branches on a small kind, never on text.

/// Result of a port call.
pub type PortResult<T> = Result<T, PortError>;

/// An error from a storage, queue or secrets adapter.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PortError {
    /// An optimistic (conditional) write lost against a concurrent writer.
    #[error("conditional write lost: {0}")]
    Conflict(String),
    /// The thing asked for does not exist (a secret, a queue).
    #[error("not found: {0}")]
    NotFound(String),
    /// A transient failure: retrying later may succeed.
    #[error("transient failure: {message}")]
    Transient {
        /// What failed.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// A permanent failure: bad input, bad configuration, corrupt data.
    #[error("permanent failure: {message}")]
    Permanent {
        /// What failed.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl PortError {
    /// A transient error with a source.
    pub fn transient(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        PortError::Transient {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }

    /// A permanent error with a source.
    pub fn permanent(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        PortError::Permanent {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }

    /// A permanent error without a source.
    pub fn invalid(message: impl Into<String>) -> Self {
        PortError::Permanent {
            message: message.into(),
            source: None,
        }
    }

    /// True when retrying may help.
    pub fn is_transient(&self) -> bool {
        matches!(self, PortError::Transient { .. })
    }
}
